//! The driver's outbox against a simulator that stops reading (issue 12.2,
//! 12.8): the frames the driver holds for a blocked socket stay bounded, and
//! the commands among them are handed back to the core when the connection
//! drops, so they go out after the resume, once each and in order.
//!
//! Loopback TCP autotunes its buffers to megabytes, more than a minute of
//! commands; a small receive buffer on the simulator and a small send buffer
//! on the client make writes block after a few KiB.
#![cfg(all(feature = "testing", feature = "async-std"))]

mod support;

use std::net::ToSocketAddrs;
use std::time::{Duration, Instant};

use discord_gateway_stream::protocol::Command;
use discord_gateway_stream::testing::{ClientFrame, Simulator, SimulatorConfig};
use discord_gateway_stream::transport::Target;
use discord_gateway_stream::{CloseMode, Compression, Config, Intents, Shard, ShardHandle};
use futures::StreamExt;
use support::client::fast_policy;

const WAIT: Duration = Duration::from_secs(15);
/// Commands sent while the simulator does not read: fewer than the 116 the
/// send budget lets out per minute, so without a bound the driver takes them all.
const COMMANDS: usize = 100;
/// Frames the driver may hold for the socket (see `Shard`'s docs).
const OUTBOX_FRAMES: usize = 16;
/// What the socket itself can swallow before blocking: the client's 4 KiB
/// send buffer and the simulator's receive window (Linux doubles both), in
/// ~2 KiB frames, plus the one frame the WebSocket holds and the up to 8 KiB
/// the simulator's reader took before it paused.
const SOCKET_SLACK: usize = 16;

fn simulator() -> Simulator {
    // A long heartbeat interval: no zombie detection while reads are paused.
    let config =
        SimulatorConfig::new().heartbeat_interval(Duration::from_secs(30)).compression(false).receive_buffer(4096);
    Simulator::start(config).expect("simulator starts")
}

fn config(sim: &Simulator) -> Config {
    Config::new("sim-token", Intents::GUILDS)
        .base_url(sim.url())
        .compression(Compression::None)
        .reconnect_policy(fast_policy())
        .rng_seed(7)
}

/// TCP with a 4 KiB send buffer (which also turns off its autotuning).
async fn small_send_buffer(target: Target) -> std::io::Result<async_std::net::TcpStream> {
    use socket2::{Domain, Socket, Type};
    let addr = (target.host.as_str(), target.port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_send_buffer_size(4096)?;
    socket.set_tcp_nodelay(true)?;
    // Loopback: the blocking connect returns at once.
    socket.connect(&addr.into())?;
    Ok(async_std::net::TcpStream::from(std::net::TcpStream::from(socket)))
}

/// Command `n`: a ~2 KiB Request Guild Members naming guild `n`.
fn command(n: usize) -> Command {
    let d = serde_json::json!({ "guild_id": n.to_string(), "query": "q".repeat(2000), "limit": 0 });
    Command::new(8, &d.to_string()).unwrap()
}

fn guild(frame: &ClientFrame) -> Option<usize> {
    (frame.op == Some(8)).then(|| frame.d()?["guild_id"].as_str()?.parse().ok()).flatten()
}

/// `(connection, n)` of every command the simulator received, in arrival order.
fn received(sim: &Simulator) -> Vec<(usize, usize)> {
    sim.client_frames().iter().filter_map(|f| Some((f.connection, guild(f)?))).collect()
}

/// How many commands the driver has taken from the core, once that stops
/// changing (the socket is blocked).
fn taken_once_blocked(handle: &ShardHandle) -> usize {
    let deadline = Instant::now() + WAIT;
    let mut last = usize::MAX;
    let mut since = Instant::now();
    while Instant::now() < deadline {
        let taken = COMMANDS - handle.queued_commands();
        if taken != last {
            last = taken;
            since = Instant::now();
        } else if since.elapsed() >= Duration::from_millis(600) {
            return taken;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the driver kept taking commands");
}

/// A shard against `sim` with its driver on a thread, past READY.
fn start(sim: &Simulator) -> (Shard, ShardHandle, std::thread::JoinHandle<()>) {
    let mut shard = Shard::with_connector(config(sim), small_send_buffer).unwrap();
    let handle = shard.handle();
    let driver = shard.take_driver().unwrap();
    let runner = std::thread::spawn(move || async_io::block_on(driver));
    let ready = async_io::block_on(shard.next()).unwrap().unwrap();
    assert_eq!(ready.event(), "READY");
    (shard, handle, runner)
}

#[test]
fn a_server_that_stops_reading_leaves_the_commands_in_the_core() {
    let sim = simulator();
    let (mut shard, handle, runner) = start(&sim);
    sim.pause_reading(true);
    for n in 0..COMMANDS {
        handle.send(command(n)).unwrap();
    }
    let taken = taken_once_blocked(&handle);
    // Without the bound the driver took all 100 into its outbox.
    assert!(taken <= OUTBOX_FRAMES + SOCKET_SLACK, "the driver took {taken} commands for a socket that does not drain");
    sim.pause_reading(false);
    let all_in = sim.wait_for_frames(|frames| frames.iter().filter(|f| guild(f).is_some()).count() >= COMMANDS, WAIT);
    assert!(all_in, "every command is delivered once the simulator reads again");
    let got = received(&sim);
    assert_eq!(got, (0..COMMANDS).map(|n| (0, n)).collect::<Vec<_>>(), "once each, in order, on one connection");
    assert_eq!(handle.queued_commands(), 0);
    async_io::block_on(shard.close(CloseMode::Final));
    runner.join().unwrap();
}

#[test]
fn commands_the_driver_held_when_the_connection_dropped_go_out_after_the_resume() {
    let sim = simulator();
    let (mut shard, handle, runner) = start(&sim);
    sim.pause_reading(true);
    for n in 0..COMMANDS {
        handle.send(command(n)).unwrap();
    }
    // Commands 0..taken left the core: the first ones went into the socket
    // (and are lost with it), the last ones wait in the driver's outbox.
    let taken = taken_once_blocked(&handle);
    assert!(taken < COMMANDS);
    assert!(sim.drop_connection());
    assert!(sim.wait_for_connection_end(0, WAIT));
    sim.pause_reading(false);
    let done = sim.wait_for_frames(|frames| frames.iter().any(|f| guild(f) == Some(COMMANDS - 1)), WAIT);
    assert!(done, "the commands go out after the resume");
    assert_eq!(sim.resumes().len(), 1);
    assert_eq!(sim.identifies().len(), 1, "resumed, not re-identified");
    let got = received(&sim);
    let ns: Vec<usize> = got.iter().map(|&(_, n)| n).collect();
    assert!(ns.windows(2).all(|w| w[0] < w[1]), "once each and in order: {ns:?}");
    // What is missing is one run of commands that had gone into the dropped
    // socket; everything the driver still held arrives on the new connection.
    let after: Vec<usize> = got.iter().filter(|&&(c, _)| c > 0).map(|&(_, n)| n).collect();
    let first_after = after.first().copied().unwrap_or(COMMANDS);
    assert_eq!(after, (first_after..COMMANDS).collect::<Vec<_>>());
    assert!(first_after < taken, "the commands held in the outbox ({first_after}..{taken}) were handed back, not lost");
    assert_eq!(handle.queued_commands(), 0);
    async_io::block_on(shard.close(CloseMode::Final));
    runner.join().unwrap();
}
