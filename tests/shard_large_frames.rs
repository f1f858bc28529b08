//! Large uncompressed payloads become their dispatch as the WebSocket
//! frame's own bytes, not a copy (`KEEP_FRAMES_FROM` in src/shard.rs): they
//! arrive byte for byte and in order between small ones, and a burst of
//! them leaves no read buffer of their size behind (lean-hot-path issue:
//! "buffers a burst grew are given back once the burst is over").
#![cfg(feature = "testing")]

use std::time::Duration;

mod support;

use discord_gateway_stream::testing::{Simulator, SimulatorConfig};
use discord_gateway_stream::{Compression, Dispatch, Intents, Shard};
use futures::StreamExt;
use serde_json::{json, Value};
use support::alloc_counter::{self, count_this_thread, live_bytes};
use support::client::sim_config;

#[global_allocator]
static GLOBAL: alloc_counter::Counting = alloc_counter::Counting;

const WAIT: Duration = Duration::from_secs(20);

/// A GUILD_CREATE-like `d` of about `bytes` bytes of JSON.
fn big(n: usize, bytes: usize) -> Value {
    let members: Vec<Value> = (0..bytes / 100)
        .map(|i| json!({ "user": { "id": format!("{:019}", 1_100_000_000_000_000_000u64 + i as u64), "username": "member" }, "roles": [] }))
        .collect();
    json!({ "id": n.to_string(), "name": format!("guild {n}"), "members": members })
}

fn small(n: usize) -> Value {
    json!({ "id": n.to_string(), "content": "small" })
}

/// The next dispatch (READY included), or a panic after a generous bound.
async fn next(shard: &mut Shard) -> Dispatch {
    let timeout = async_io::Timer::after(WAIT);
    futures::select! {
        item = shard.next() => item.expect("stream open").expect("no error"),
        _ = futures::FutureExt::fuse(timeout) => panic!("no dispatch within {WAIT:?}"),
    }
}

fn start() -> (Simulator, Shard) {
    let sim = Simulator::start(SimulatorConfig::new().heartbeat_interval(Duration::from_secs(40)).compression(false))
        .expect("simulator starts");
    let config = sim_config(sim.url(), Intents::GUILDS).compression(Compression::None).rng_seed(11);
    let shard = Shard::new(config).expect("shard");
    (sim, shard)
}

#[test]
fn large_uncompressed_payloads_arrive_byte_for_byte_between_small_ones() {
    let (sim, mut shard) = start();
    async_io::block_on(async {
        assert_eq!(next(&mut shard).await.event(), "READY");
        // Around the 64 KiB line, and well past it.
        let sizes = [1_000, 65_000, 66_000, 70_000, 300_000, 1_200_000, 2_000];
        let sent: Vec<(&str, Value)> = sizes
            .iter()
            .enumerate()
            .flat_map(|(n, &bytes)| [("GUILD_CREATE", big(n, bytes)), ("MESSAGE_CREATE", small(n))])
            .collect();
        let seqs = sim.dispatch_many(sent.iter().map(|(event, d)| (*event, d.clone())));
        assert_eq!(seqs.len(), sent.len());
        for ((event, d), seq) in sent.iter().zip(seqs) {
            let dispatch = next(&mut shard).await;
            assert_eq!((dispatch.event(), dispatch.seq()), (*event, seq));
            let got: Value = serde_json::from_str(dispatch.data()).expect("d is JSON");
            assert_eq!(&got, d, "seq {seq}: d byte for byte");
            assert!(dispatch.frame().ends_with(&format!("{}}}", dispatch.data())), "seq {seq}: d ends the frame");
        }
    });
}

/// Counted on this thread only: the shard is polled here (`Shard::new`
/// drives its connection from the stream), so its driver, tungstenite's read
/// buffer and every dispatch live on it; the simulator's threads are not
/// counted.
#[test]
fn a_burst_of_large_uncompressed_payloads_leaves_no_large_buffer_behind() {
    count_this_thread(true);
    let (sim, mut shard) = start();
    async_io::block_on(async {
        assert_eq!(next(&mut shard).await.event(), "READY");
        let warm = count_this_thread_uncounted(|| sim.dispatch_many((0..50).map(|n| ("MESSAGE_CREATE", small(n)))));
        for _ in 0..warm.len() {
            drop(next(&mut shard).await);
        }
        let idle = live_bytes();
        let burst = count_this_thread_uncounted(|| {
            sim.dispatch_many(
                [400_000, 1_000_000, 700_000, 1_500_000]
                    .iter()
                    .enumerate()
                    .flat_map(|(n, &bytes)| [("GUILD_CREATE", big(n, bytes)), ("MESSAGE_CREATE", small(n))]),
            )
        });
        let mut largest = 0;
        for _ in 0..burst.len() {
            let dispatch = next(&mut shard).await;
            largest = largest.max(dispatch.frame().len());
        }
        assert!(largest > 1_000_000, "the burst had megabyte payloads ({largest} bytes)");
        // Traffic as usual after the burst: more than one read buffer's
        // worth (16 KiB), so tungstenite has read past whatever of the last
        // large frame's allocation it was still reading into.
        let after = count_this_thread_uncounted(|| sim.dispatch_many((50..450).map(|n| ("MESSAGE_CREATE", small(n)))));
        for _ in 0..after.len() {
            drop(next(&mut shard).await);
        }
        let grown = live_bytes() - idle;
        // Copying each frame instead, tungstenite kept a read buffer the
        // size of the largest frames it had read (1.95 MB here) for the
        // connection's life; keeping frames without holding the last one
        // until tungstenite has left its allocation, 1.0-1.5 MB (both tried).
        assert!(grown < 64 * 1024, "{grown} bytes still held after the burst (largest payload {largest} bytes)");
    });
    count_this_thread(false);
}

/// Runs `f` (the simulator's side: building and queueing frames) uncounted.
fn count_this_thread_uncounted<R>(f: impl FnOnce() -> R) -> R {
    alloc_counter::uncounted(f)
}
