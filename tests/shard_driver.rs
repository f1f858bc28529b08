//! The shard driver against the simulator, in the situations it once got
//! wrong: reading the stream after a local close (no panic), a stalled write
//! (neither freezes the driver nor hides a zombie), a slow consumer (not taken
//! for a zombie), the connect deadline (starts when the shard first runs), the
//! command queue bound, unreadable payloads (counted, not skipped unseen),
//! and a payload over the cap replayed on every resume (stops the shard,
//! naming its size).
#![cfg(all(feature = "testing", feature = "async-std"))]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use discord_gateway_stream::testing::{Simulator, SimulatorConfig};
use discord_gateway_stream::transport::Target;
use discord_gateway_stream::{CloseMode, Compression, Config, Intents, Shard};
use futures::StreamExt;
use serde_json::json;

fn config(sim: &Simulator) -> Config {
    Config::new("sim-token", Intents::GUILDS)
        .base_url(sim.url())
        .compression(Compression::None)
        .rng_seed(7)
        // The simulator heartbeats far faster than Discord; lower the floor.
        .min_heartbeat_interval(Duration::from_millis(100))
}

#[test]
fn the_stream_is_readable_after_a_local_close_without_panicking() {
    let sim = Simulator::start(SimulatorConfig::new().heartbeat_interval(Duration::from_millis(400))).unwrap();
    let mut shard = Shard::new(config(&sim)).unwrap();
    async_io::block_on(async {
        assert_eq!(shard.next().await.unwrap().unwrap().event(), "READY");
        let _ = shard.close(CloseMode::Final).await;
        // Polling after close used to resume the finished driver and panic.
        while let Some(item) = shard.next().await {
            item.unwrap();
        }
        assert!(shard.next().await.is_none());
    });
}

#[test]
fn a_slow_consumer_with_a_spawned_driver_is_not_taken_for_a_zombie() {
    // 400 dispatches fill the 256-dispatch buffer; reading stops for ~6
    // heartbeat intervals while heartbeats go on.
    let sim = Simulator::start(SimulatorConfig::new().heartbeat_interval(Duration::from_millis(300))).unwrap();
    let mut shard = Shard::new(config(&sim)).unwrap();
    let driver = shard.take_driver().unwrap();
    let runner = std::thread::spawn(move || async_io::block_on(driver));
    async_io::block_on(async {
        shard.next().await.unwrap().unwrap();
        sim.dispatch_many((0..400).map(|i| ("MESSAGE_CREATE", json!({ "n": i }))));
        std::thread::sleep(Duration::from_millis(2000));
        let mut n = 0;
        while n < 400 {
            if shard.next().await.unwrap().unwrap().event() == "MESSAGE_CREATE" {
                n += 1;
            }
        }
    });
    assert_eq!(sim.connections().len(), 1, "no reconnect because the consumer was slow");
    assert!(sim.client_closes().is_empty());
    async_io::block_on(shard.close(CloseMode::Final));
    runner.join().unwrap();
}

/// A stream whose writes stop making progress on demand (a peer gone with a
/// full send buffer), while reads keep working.
struct Stalling {
    inner: async_std::net::TcpStream,
    stall: Arc<AtomicBool>,
}

impl futures::io::AsyncRead for Stalling {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl futures::io::AsyncWrite for Stalling {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if self.stall.load(Ordering::SeqCst) {
            return std::task::Poll::Pending;
        }
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_close(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_close(cx)
    }
}

#[test]
fn a_stalled_write_neither_hides_a_zombie_nor_blocks_close() {
    let sim = Simulator::start(SimulatorConfig::new().heartbeat_interval(Duration::from_millis(300))).unwrap();
    let stall = Arc::new(AtomicBool::new(false));
    let switch = Arc::clone(&stall);
    let connector = move |target: Target| {
        let stall = Arc::clone(&switch);
        async move {
            let inner = async_std::net::TcpStream::connect((target.host.as_str(), target.port)).await?;
            Ok(Stalling { inner, stall })
        }
    };
    let mut shard = Shard::with_connector(config(&sim), connector).unwrap();
    let handle = shard.handle();
    let driver = shard.take_driver().unwrap();
    let runner = std::thread::spawn(move || async_io::block_on(driver));
    async_io::block_on(async { shard.next().await.unwrap().unwrap() });
    stall.store(true, Ordering::SeqCst);
    sim.withhold_acks(true);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sim.connections().len() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(sim.connections().len() >= 2, "the zombie was detected and the shard reconnected");
    let closed = async_io::block_on(async {
        let close = std::pin::pin!(handle.close(CloseMode::Final));
        let bound = std::pin::pin!(async_io::Timer::after(Duration::from_secs(5)));
        matches!(futures::future::select(close, bound).await, futures::future::Either::Left(_))
    });
    assert!(closed, "close resolves while writes are stalled");
    drop(shard);
    runner.join().unwrap();
}

#[test]
fn the_connect_deadline_starts_when_the_shard_first_runs() {
    let sim = Simulator::start(SimulatorConfig::new().heartbeat_interval(Duration::from_millis(400))).unwrap();
    let mut first = Shard::new(config(&sim)).unwrap();
    let session = async_io::block_on(async {
        first.next().await.unwrap().unwrap();
        first.close(CloseMode::Resumable).await.unwrap()
    });
    let before = sim.connections().len();
    let mut second = Shard::new(config(&sim).connect_timeout(Duration::from_millis(300)).resume_from(session)).unwrap();
    // Built up front, started later: longer than the connect timeout.
    std::thread::sleep(Duration::from_millis(400));
    async_io::block_on(async { second.next().await.unwrap().unwrap() });
    let paths: Vec<String> = sim.connections()[before..].iter().map(|c| c.path.clone()).collect();
    assert_eq!(paths, ["/resumed-host"], "one connect, on the resume URL");
}

#[test]
fn commands_held_by_the_machine_still_count_against_the_queue_bound() {
    // Before: the handle forgot commands once the driver passed them to the
    // machine, so send() said Ok to commands the machine then dropped.
    let sim = Simulator::start(SimulatorConfig::new().on_connect(discord_gateway_stream::testing::OnConnect::Silence))
        .unwrap();
    let mut shard = Shard::new(config(&sim).max_queued_commands(2)).unwrap();
    let handle = shard.handle();
    let presence = discord_gateway_stream::commands::Presence::online();
    let driver = shard.take_driver().unwrap();
    let runner = std::thread::spawn(move || async_io::block_on(driver));
    handle.update_presence(&presence).unwrap();
    handle.update_presence(&presence).unwrap();
    // Let the driver move them into the machine (no session: they wait there).
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        handle.update_presence(&presence),
        Err(discord_gateway_stream::protocol::CommandError::QueueFull { limit: 2 })
    );
    async_io::block_on(shard.close(CloseMode::Final));
    runner.join().unwrap();
}

#[test]
fn unreadable_payloads_are_counted_on_the_shard_and_its_handle() {
    let sim = Simulator::start(SimulatorConfig::new().heartbeat_interval(Duration::from_millis(400))).unwrap();
    let mut shard = Shard::new(config(&sim)).unwrap();
    let handle = shard.handle();
    async_io::block_on(async {
        assert_eq!(shard.next().await.unwrap().unwrap().event(), "READY");
        assert_eq!(shard.skipped_payloads(), 0);
        assert!(sim.send_raw_payload(r#"{"op":0,"t":"MESSAGE_CREATE","s":"#));
        assert!(sim.send_raw_payload(r#"{"op":0,"t":"MESSAGE_CREATE","d":{}}"#));
        sim.dispatch("MESSAGE_CREATE", json!({ "n": 1 }));
        let next = shard.next().await.unwrap().unwrap();
        assert_eq!(next.event(), "MESSAGE_CREATE");
    });
    assert_eq!((shard.skipped_payloads(), handle.skipped_payloads()), (2, 2));
    assert_eq!(sim.connections().len(), 1, "skipped, not reconnected");
}

#[test]
fn a_message_over_the_cap_replayed_on_resume_stops_the_shard_with_its_size() {
    use discord_gateway_stream::protocol::{FatalError, ReconnectPolicy};
    use discord_gateway_stream::ShardError;
    // No resume retries: the second failure at the same point (the live one,
    // then the replay on the resume) is the limit, so the driver must report
    // the refused message for what it is (a plain connection loss would
    // re-identify instead).
    let sim = Simulator::start(SimulatorConfig::new().heartbeat_interval(Duration::from_millis(400))).unwrap();
    let policy = ReconnectPolicy {
        base: Duration::from_millis(20),
        floor: Duration::from_millis(10),
        cap: Duration::from_millis(100),
        max_resume_attempts: 0,
        ..ReconnectPolicy::default()
    };
    let config = config(&sim).max_message_size(64 * 1024).reconnect_policy(policy);
    let mut shard = Shard::new(config).unwrap();
    let error = async_io::block_on(async {
        assert_eq!(shard.next().await.unwrap().unwrap().event(), "READY");
        sim.dispatch("GUILD_CREATE", json!({ "blob": "z".repeat(100_000) }));
        match shard.next().await.expect("an error before the end") {
            Ok(dispatch) => panic!("delivered {}", dispatch.event()),
            Err(error) => error,
        }
    });
    let ShardError::Fatal(FatalError::PayloadTooLarge { after_seq: Some(1), size: Some(size), failures: 2, .. }) =
        error
    else {
        panic!("{error:?}");
    };
    assert!(size > 100_000, "{size}");
    assert_eq!(error.close_code(), None);
    assert!(error.to_string().contains("max_message_size"), "{error}");
    assert_eq!(sim.identifies().len(), 1);
    assert_eq!(sim.resumes().len(), 1);
}
