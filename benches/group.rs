//! 1,000 shards in one `ShardGroup` against the simulator: time until every
//! shard is READY versus the identify-window minimum, and heap per idle
//! shard (`docs/rate-limits.md#identify-concurrency`, `docs/sharding.md#shard-formula`).
//!
//! `cargo bench --bench group` (options: `-- --shards N --max-concurrency M
//! --window-ms W --margin-ms G --max-connecting C`; `GROUP_BENCH_DEBUG=1` lists each rejected
//! Identify). The identify window is Discord's 5 s in production; here both
//! the simulator and the queue use `W` (default 50 ms).
//!
//! The simulator runs in a child process (this binary, re-executed), so
//! its two threads per connection do not compete with the client inside
//! one address space.

#[path = "../tests/support/alloc_counter.rs"]
mod alloc_counter;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use alloc_counter::{count_this_thread as count_here, live_bytes};
use discord_gateway_stream::identify::{IdentifyLimits, LocalIdentifyQueue};
use discord_gateway_stream::testing::{Simulator, SimulatorConfig};
use discord_gateway_stream::{Compression, Config, Intents, ShardGroup};
use futures::StreamExt;

#[global_allocator]
static GLOBAL: alloc_counter::Counting = alloc_counter::Counting;

const CHILD_FLAG: &str = "--simulator-child";

struct Options {
    shards: u32,
    max_concurrency: u32,
    window: Duration,
    margin: Option<Duration>,
    max_connecting: usize,
}

fn options() -> Options {
    let mut options = Options {
        shards: 1000,
        max_concurrency: 16,
        window: Duration::from_millis(50),
        // 10% of the window: the simulator's clock jitters by a few ms on a
        // small machine; Discord's 5 s window gets the default 2% (100 ms).
        margin: Some(Duration::from_millis(5)),
        max_connecting: 4,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().and_then(|v| v.parse::<u64>().ok());
        match (arg.as_str(), value) {
            ("--shards", Some(n)) => options.shards = u32::try_from(n).unwrap_or(options.shards),
            ("--max-concurrency", Some(n)) => {
                options.max_concurrency = u32::try_from(n).unwrap_or(options.max_concurrency)
            }
            ("--window-ms", Some(ms)) => options.window = Duration::from_millis(ms),
            ("--margin-ms", Some(ms)) => options.margin = Some(Duration::from_millis(ms)),
            ("--max-connecting", Some(n)) => options.max_connecting = usize::try_from(n).unwrap_or(4),
            _ => {}
        }
    }
    options
}

/// The child: serves the simulator, prints `PORT p`, and when stdin ends
/// prints `IDENTIFIES accepted rejected`.
fn simulator_child(options: &Options) {
    let sim = Simulator::start(
        SimulatorConfig::new()
            // Idle connections: heartbeats are rare.
            .heartbeat_interval(Duration::from_secs(40))
            .max_concurrency(options.max_concurrency)
            .identify_window(options.window),
    )
    .expect("simulator starts");
    println!("PORT {}", sim.port());
    let _ = std::io::stdout().flush();
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    let log = sim.identify_log();
    let violations = log.iter().filter(|r| !r.accepted).count();
    if std::env::var_os("GROUP_BENCH_DEBUG").is_some() {
        let t0 = log.first().map(|r| r.at);
        for (i, record) in log.iter().enumerate().filter(|(_, r)| !r.accepted) {
            let previous = log[..i].iter().rev().find(|r| r.accepted && r.bucket == record.bucket);
            eprintln!(
                "rejected at {:?}: bucket {:?}, {:?} after the previous accepted",
                t0.map(|t| record.at - t),
                record.bucket,
                previous.map(|p| record.at - p.at)
            );
        }
    }
    println!("IDENTIFIES {} {violations}", log.len() - violations);
}

fn main() {
    let options = options();
    if std::env::args().any(|arg| arg == CHILD_FLAG) {
        return simulator_child(&options);
    }
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .args(std::env::args().skip(1))
        .arg(CHILD_FLAG)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("simulator child starts");
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let port: u16 = lines
        .find_map(|line| line.ok()?.strip_prefix("PORT ")?.trim().parse().ok())
        .expect("the child prints its port");
    let mut limits = IdentifyLimits::new(options.max_concurrency).with_window(options.window);
    if let Some(margin) = options.margin {
        limits = limits.with_margin(margin);
    }
    let config = Config::new("sim-token", Intents::GUILDS)
        .base_url(format!("ws://127.0.0.1:{port}"))
        .compression(Compression::ZlibStream);

    let (elapsed, per_shard) = async_io::block_on(async {
        count_here(true);
        let base = live_bytes();
        let started = Instant::now();
        let mut group = ShardGroup::builder(config, options.shards)
            .identify_queue(LocalIdentifyQueue::new(limits))
            .max_connecting(options.max_connecting)
            .build()
            .expect("group builds");
        let mut ready = HashSet::new();
        while ready.len() < options.shards as usize {
            match group.next().await {
                Some(Ok(dispatch)) if dispatch.event() == "READY" => {
                    ready.insert(dispatch.shard());
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => panic!("{error}"),
                None => panic!("group ended"),
            }
        }
        let elapsed = started.elapsed();
        drop(ready);
        let held = live_bytes() - base;
        count_here(false);
        (elapsed, held as f64 / f64::from(options.shards))
    });

    let rounds = options.shards.div_ceil(options.max_concurrency);
    let minimum = limits.window() * rounds;
    drop(child.stdin.take());
    let (accepted, violations): (usize, usize) = lines
        .find_map(|line| {
            let line = line.ok()?;
            let mut counts = line.strip_prefix("IDENTIFIES ")?.split(' ').map(|n| n.parse().ok());
            Some((counts.next()??, counts.next()??))
        })
        .expect("the child reports identifies");
    let _ = child.wait();
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| shards / max_concurrency / identify window | {} / {} / {:?} (spacing {:?}) |",
        options.shards,
        options.max_concurrency,
        limits.window(),
        limits.spacing()
    );
    println!("| time until all READY | {elapsed:.3?} |");
    println!("| minimum, ⌈{}/{}⌉ = {rounds} windows | {minimum:.3?} |", options.shards, options.max_concurrency);
    println!("| ratio (target ≤ 1.2) | {:.3} |", elapsed.as_secs_f64() / minimum.as_secs_f64());
    println!("| identifies accepted / rejected by the simulator | {accepted} / {violations} |");
    println!("| heap per idle shard (client, after all READY) | {:.1} KiB |", per_shard / 1024.0);
}
