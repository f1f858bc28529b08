//! Streams gateway dispatches to stdout, one line each: the demo and an
//! external test harness.
//!
//! ```text
//! cargo run --example firehose -- [--url URL] [--token T] [--intents N] [--shard ID/TOTAL]
//!                                 [--compression zlib-stream|zstd-stream|none] [--limit N] [--quiet]
//! ```
//!
//! stdout: `<shard id> <seq> <EVENT_NAME> <bytes of raw d>` per dispatch,
//! flushed per line, nothing else. Logs and the summary go to stderr.
//! With no token and no `--url`, it runs against the built-in simulator: a
//! scripted session with a disconnect and a resume, then exits 0.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use discord_gateway_stream::protocol::DEFAULT_GATEWAY_URL;
use discord_gateway_stream::testing::{Simulator, SimulatorConfig};
use discord_gateway_stream::{CloseMode, Compression, Config, Intents, Shard, ShardId};
use futures::StreamExt;
use serde_json::json;

const USAGE: &str = "usage: firehose [--url URL] [--token T] [--intents N] [--shard ID/TOTAL] \
                     [--compression zlib-stream|zstd-stream|none] [--limit N] [--quiet]";

/// Dispatches the simulated session produces: READY, 3 GUILD_CREATE,
/// 20 MESSAGE_CREATE (half of them replayed after a drop) and RESUMED.
const SIMULATED_DISPATCHES: u64 = 1 + 3 + 20 + 1;

struct Args {
    url: Option<String>,
    token: Option<String>,
    intents: Intents,
    shard: ShardId,
    compression: Compression,
    limit: u64,
    quiet: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        url: None,
        token: std::env::var("DISCORD_TOKEN").ok().filter(|t| !t.trim().is_empty()),
        intents: Intents::non_privileged(),
        shard: ShardId::ONE,
        compression: Compression::ZlibStream,
        limit: 0,
        quiet: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--quiet" {
            args.quiet = true;
            continue;
        }
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--url" => args.url = Some(value),
            "--token" => args.token = Some(value),
            "--intents" => {
                let bits: u64 = value.parse().map_err(|_| format!("--intents: not a number: {value}"))?;
                args.intents = Intents::from_bits(bits).ok_or("--intents: undocumented bits would close with 4013")?;
            }
            "--shard" => {
                let (id, total) = value.split_once('/').ok_or("--shard takes ID/TOTAL")?;
                let (id, total) = (id.parse(), total.parse());
                args.shard = match (id, total) {
                    (Ok(id), Ok(total)) => ShardId::new(id, total).ok_or("--shard: ID must be below TOTAL")?,
                    _ => return Err("--shard takes ID/TOTAL".into()),
                };
            }
            "--compression" => {
                args.compression = match value.as_str() {
                    "zlib-stream" => Compression::ZlibStream,
                    "zstd-stream" => Compression::ZstdStream,
                    "none" => Compression::None,
                    other => return Err(format!("--compression: zlib-stream, zstd-stream or none, not {other}")),
                }
            }
            "--limit" => args.limit = value.parse().map_err(|_| format!("--limit: not a number: {value}"))?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(args)
}

/// Plays a session on the simulator: events, a dropped connection, more events.
fn script(sim: &Simulator) {
    if !sim.wait_until_live(Duration::from_secs(10)) {
        return;
    }
    for i in 0..10 {
        sim.dispatch("MESSAGE_CREATE", json!({"id": (1000 + i).to_string(), "content": format!("message {i}")}));
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("simulator: dropping the connection; the client resumes and gets a replay");
    sim.drop_connection();
    for i in 10..20 {
        sim.dispatch("MESSAGE_CREATE", json!({"id": (1000 + i).to_string(), "content": format!("message {i}")}));
    }
}

fn main() -> ExitCode {
    let mut args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("firehose: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(if args.quiet { "error" } else { "info" })
        .init();

    let mut simulator = None;
    let url = match (&args.url, &args.token) {
        (Some(url), _) => url.clone(),
        (None, Some(_)) => DEFAULT_GATEWAY_URL.to_owned(),
        (None, None) => {
            eprintln!("firehose: no token and no --url: streaming from the built-in simulator");
            let config = SimulatorConfig::new().heartbeat_interval(Duration::from_millis(500)).guilds([
                81_384_788_765_712_384,
                197_038_439_483_310_086,
                41_771_983_423_143_937,
            ]);
            let sim = match Simulator::start(config) {
                Ok(sim) => sim,
                Err(error) => {
                    eprintln!("firehose: cannot start the simulator: {error}");
                    return ExitCode::FAILURE;
                }
            };
            if args.limit == 0 {
                args.limit = SIMULATED_DISPATCHES;
            }
            let url = sim.url();
            simulator = Some(std::sync::Arc::new(sim));
            url
        }
    };
    let token = args.token.clone().unwrap_or_else(|| "simulated-token".to_owned());
    let mut config =
        Config::new(token, args.intents).base_url(url).shard(args.shard).compression(args.compression).rng_seed(seed());
    if simulator.is_some() {
        // The built-in simulator heartbeats every 500 ms; Discord's floor is 10 s.
        config = config.min_heartbeat_interval(Duration::from_millis(500));
    }
    let mut shard = match Shard::new(config) {
        Ok(shard) => shard,
        Err(error) => {
            eprintln!("firehose: {error}");
            return ExitCode::from(2);
        }
    };
    let script_thread = simulator.clone().map(|sim| std::thread::spawn(move || script(&sim)));

    let started = Instant::now();
    let (mut count, mut bytes) = (0u64, 0usize);
    let stdout = std::io::stdout();
    let code = async_io::block_on(async {
        while let Some(item) = shard.next().await {
            match item {
                Ok(dispatch) => {
                    count += 1;
                    bytes += dispatch.data().len();
                    let mut out = stdout.lock();
                    let line = writeln!(
                        out,
                        "{} {} {} {}",
                        dispatch.shard().id,
                        dispatch.seq(),
                        dispatch.event(),
                        dispatch.data().len()
                    );
                    if line.and_then(|()| out.flush()).is_err() {
                        return ExitCode::SUCCESS; // stdout closed (e.g. `| head`)
                    }
                    if args.limit != 0 && count >= args.limit {
                        shard.close(CloseMode::Final).await;
                        return ExitCode::SUCCESS;
                    }
                }
                Err(error) => {
                    eprintln!("firehose: fatal: {error}");
                    return ExitCode::FAILURE;
                }
            }
        }
        ExitCode::SUCCESS
    });
    if let Some(thread) = script_thread {
        let _ = thread.join();
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "firehose: {count} dispatches, {bytes} bytes of d in {secs:.2} s ({:.0} dispatches/s)",
        count as f64 / secs.max(1e-9)
    );
    code
}

/// A different jitter sequence per run; the machine stays deterministic per seed.
fn seed() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    (nanos as u64) ^ u64::from(std::process::id()).rotate_left(32)
}
