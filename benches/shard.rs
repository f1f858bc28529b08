//! Costs of a running `Shard`, measured against the simulator on loopback:
//! allocations per dispatch in steady state, heap per idle shard, and
//! reconnect latency (op 7 received → Resume sent).
//!
//! `cargo bench --bench shard` (add `-- --shards N` to change the idle count).
//! A counting global allocator counts only on threads that run client code
//! (the simulator's threads are not counted).

use std::time::Duration;

use discord_gateway_stream::protocol::ReconnectPolicy;
use discord_gateway_stream::testing::{Simulator, SimulatorConfig};
use discord_gateway_stream::{Compression, Config, Intents, Shard};
use futures::StreamExt;
use serde_json::json;

#[path = "../tests/support/alloc_counter.rs"]
mod alloc_counter;

use alloc_counter::{allocations, count_this_thread as count_here, live_bytes};

#[global_allocator]
static GLOBAL: alloc_counter::Counting = alloc_counter::Counting;

fn config(sim: &Simulator, compression: Compression) -> Config {
    Config::new("bench-token", Intents::GUILDS).base_url(sim.url()).compression(compression).reconnect_policy(
        ReconnectPolicy {
            base: Duration::from_millis(10),
            floor: Duration::from_millis(1),
            ..ReconnectPolicy::default()
        },
    )
}

/// Allocations per dispatch on the client side, in steady state.
fn allocations_per_dispatch(compression: Compression) -> f64 {
    let sim = Simulator::start(SimulatorConfig::new().compression(compression == Compression::ZlibStream)).unwrap();
    let mut shard = Shard::new(config(&sim, compression)).unwrap();
    let message = json!({"id": "1180000000000000000", "channel_id": "1170000000000000000", "content": "steady state",
        "author": {"id": "1160000000000000000", "username": "bench"}, "mentions": [], "embeds": []});
    async_io::block_on(async {
        count_here(true);
        let _ready = shard.next().await;
        // The simulator's own work is not the client's: don't count it.
        let run = |n: usize| {
            count_here(false);
            sim.dispatch_many((0..n).map(|_| ("MESSAGE_CREATE", message.clone())));
            count_here(true);
            n
        };
        // Warm up: buffers reach their working size.
        let warm = run(2_000);
        for _ in 0..warm {
            let _ = shard.next().await;
        }
        let before = allocations();
        let measured = run(20_000);
        for _ in 0..measured {
            let item = shard.next().await;
            drop(item);
        }
        let after = allocations();
        count_here(false);
        (after - before) as f64 / measured as f64
    })
}

/// Heap held per connected, idle shard (READY received, nothing flowing).
fn heap_per_idle_shard(count: usize) -> f64 {
    let sim = Simulator::start(SimulatorConfig::new().heartbeat_interval(Duration::from_secs(40))).unwrap();
    async_io::block_on(async {
        count_here(true);
        let base = live_bytes();
        let mut shards: Vec<Shard> =
            (0..count).map(|_| Shard::new(config(&sim, Compression::ZlibStream)).unwrap()).collect();
        let mut ready = 0;
        // Each shard's first item is its READY; poll them all concurrently.
        let mut pending: futures::stream::FuturesUnordered<_> =
            shards.iter_mut().map(|shard| async move { shard.next().await.is_some() }).collect();
        while let Some(ok) = pending.next().await {
            ready += usize::from(ok);
        }
        drop(pending);
        let held = live_bytes() - base;
        count_here(false);
        assert_eq!(ready, count, "every shard reached READY");
        let per_shard = held as f64 / count as f64;
        drop(shards);
        per_shard
    })
}

/// op 7 → Resume on the new socket, as the simulator sees it (includes TCP
/// connect, the WebSocket upgrade and Hello on loopback).
fn reconnect_latency(rounds: usize) -> Vec<Duration> {
    let sim = Simulator::start(SimulatorConfig::new().compression(true)).unwrap();
    // Each connection lives past `healthy_after`, so every op 7 is a first,
    // immediate reconnect (docs/connection.md#reconnect-pacing) rather than a backed-off one.
    let policy = ReconnectPolicy { healthy_after: Duration::from_millis(10), ..ReconnectPolicy::default() };
    let mut shard = Shard::new(config(&sim, Compression::ZlibStream).reconnect_policy(policy)).unwrap();
    let driver = shard.take_driver().unwrap();
    let runner = std::thread::spawn(move || async_io::block_on(driver));
    async_io::block_on(shard.next());
    let mut latencies = Vec::with_capacity(rounds);
    for round in 0..rounds {
        assert!(sim.wait_until_live(Duration::from_secs(5)));
        // Let the connection settle; spacing reconnects also keeps them "healthy".
        std::thread::sleep(Duration::from_millis(20));
        assert!(sim.reconnect());
        let resume = sim.wait_for_frame(|f| f.op == Some(6) && f.connection == round + 1, Duration::from_secs(5));
        let resume = resume.unwrap_or_else(|| {
            let frames: Vec<_> = sim.client_frames().iter().map(|f| (f.connection, f.op)).collect();
            panic!("no Resume after op 7 in round {round}: {frames:?}")
        });
        // From the moment the simulator wrote op 7 to the socket.
        let op7 = sim
            .server_frames()
            .into_iter()
            .rev()
            .find(|f| f.connection == round && f.text.contains(r#""op":7"#))
            .expect("op 7 recorded");
        latencies.push(resume.at.saturating_duration_since(op7.at));
        // Consume what the stream produced (RESUMED) so nothing backs up.
        let _ = async_io::block_on(shard.next());
    }
    drop(shard);
    let _ = runner.join();
    latencies
}

fn main() {
    let mut shards = 1000;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--shards" {
            shards = args.next().and_then(|n| n.parse().ok()).unwrap_or(shards);
        }
    }
    println!("| measure | value |");
    println!("|---|---|");
    for (name, compression) in [("zlib-stream", Compression::ZlibStream), ("uncompressed", Compression::None)] {
        let per = allocations_per_dispatch(compression);
        println!("| allocations per dispatch, {name} (client side, steady state) | {per:.2} |");
    }
    let per_shard = heap_per_idle_shard(shards);
    println!("| heap per idle shard ({shards} shards, zlib-stream) | {:.1} KiB |", per_shard / 1024.0);
    let mut latencies = reconnect_latency(200);
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    println!(
        "| reconnect latency op 7 → Resume (200 rounds, loopback) | median {:?}, p90 {:?}, max {:?} |",
        pick(0.5),
        pick(0.9),
        pick(1.0)
    );
}
