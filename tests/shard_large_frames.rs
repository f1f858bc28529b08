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
use support::alloc_counter::{self, count_this_thread, thread_live_bytes as live_bytes};
use support::client::sim_config;

#[global_allocator]
static GLOBAL: alloc_counter::Counting = alloc_counter::Counting;

const WAIT: Duration = Duration::from_secs(20);

/// A GUILD_CREATE-like `d` of about `bytes` bytes of JSON.
fn big(n: usize, bytes: usize) -> Value {
    let mut state = n as u64 + 1;
    let mut noise = move || {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        format!("{:016x}", state >> 1)
    };
    let members: Vec<Value> =
        (0..bytes / 100).map(|_| json!({ "user": { "id": noise(), "avatar": noise() }, "roles": [] })).collect();
    json!({ "id": n.to_string(), "name": format!("guild {n}"), "members": members })
}

/// A `d` whose JSON is exactly `len` bytes (`len` ≥ 40).
fn exact(n: usize, len: usize) -> Value {
    let bare = serde_json::to_string(&json!({ "id": n.to_string(), "pad": "" })).expect("JSON").len();
    let d = json!({ "id": n.to_string(), "pad": "x".repeat(len - bare) });
    assert_eq!(serde_json::to_string(&d).expect("JSON").len(), len);
    d
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
        // Frames on both sides of the 64 KiB line (`d` plus the envelope,
        // about 40 bytes), and well past it.
        let mut sent: Vec<(&str, Value)> = Vec::new();
        for (n, len) in (65_400..65_560).step_by(8).enumerate() {
            sent.extend([("GUILD_CREATE", exact(n, len)), ("MESSAGE_CREATE", small(n))]);
        }
        for (n, bytes) in [300_000, 1_200_000].into_iter().enumerate() {
            sent.extend([("GUILD_CREATE", big(n, bytes)), ("MESSAGE_CREATE", small(n))]);
        }
        let seqs = sim.dispatch_many(sent.iter().map(|(event, d)| (*event, d.clone())));
        assert_eq!(seqs.len(), sent.len());
        let mut lengths = Vec::new();
        for ((event, d), seq) in sent.iter().zip(seqs) {
            let dispatch = next(&mut shard).await;
            lengths.push(dispatch.frame().len());
            assert_eq!((dispatch.event(), dispatch.seq()), (*event, seq));
            let got: Value = serde_json::from_str(dispatch.data()).expect("d is JSON");
            assert_eq!(&got, d, "seq {seq}: d byte for byte");
            assert!(dispatch.frame().ends_with(&format!("{}}}", dispatch.data())), "seq {seq}: d ends the frame");
        }
        const LINE: usize = 64 * 1024;
        assert!(lengths.iter().any(|&l| (LINE - 8..LINE).contains(&l)), "a frame just under the line: {lengths:?}");
        assert!(
            lengths.iter().any(|&l| (LINE..LINE + 8).contains(&l)),
            "a frame just at or over the line: {lengths:?}"
        );
    });
}

/// Counted on this thread only: the shard is polled here (`Shard::new`
/// drives its connection from the stream), so its driver, tungstenite's read
/// buffer and every dispatch live on it; the simulator's threads are not
/// counted.
#[test]
fn a_burst_of_large_uncompressed_payloads_leaves_no_large_buffer_behind() {
    let _alone = MEMORY_TESTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
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
        // Traffic as usual after the burst: well over one read buffer's
        // worth (16 KiB) on the wire, compressed or not, so tungstenite has
        // read past whatever of the last large frame's allocation it was
        // still reading into (until then that allocation stays, by design).
        let after = count_this_thread_uncounted(|| sim.dispatch_many((50..2050).map(|n| ("MESSAGE_CREATE", small(n)))));
        for _ in 0..after.len() {
            drop(next(&mut shard).await);
        }
        // Then a quiet trickle, one at a time: the event ring that traffic
        // grew shrinks back once it drains after a calm stretch.
        for n in 0..3 {
            count_this_thread_uncounted(|| sim.dispatch("MESSAGE_CREATE", small(3000 + n)));
            drop(next(&mut shard).await);
        }
        // Let the shard sit idle a moment (polled, so its timers run), so
        // what is left is what nothing gives back.
        let quiet = async_io::Timer::after(Duration::from_millis(500));
        futures::select! {
            item = shard.next() => panic!("nothing was sent, got {:?}", item.map(|i| i.map(|d| d.seq()))),
            _ = futures::FutureExt::fuse(quiet) => {}
        }
        let grown = live_bytes() - idle;
        // Copying each frame instead, tungstenite kept a read buffer the
        // size of the largest frames it had read (1.95 MB here) for the
        // connection's life; keeping frames without holding the last one
        // until tungstenite has left its allocation, 1.0-1.5 MB (both
        // tried).
        assert!(grown < 64 * 1024, "{grown} bytes still held after the burst (largest payload {largest} bytes)");
    });
    count_this_thread(false);
}

/// A driver on a thread of its own reads ahead of the application. When the
/// application keeps a large dispatch until the driver has read well past
/// it, and only then drops it, with nothing more coming, the driver (which
/// holds the frame as well) must still notice and let go.
#[test]
fn a_spawned_driver_lets_go_of_a_kept_frame_the_application_dropped_late() {
    let _alone = MEMORY_TESTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let (sim, mut shard) = start();
    let driver = shard.take_driver().expect("a driver");
    std::thread::spawn(move || {
        count_this_thread(true);
        async_io::block_on(driver);
    });
    count_this_thread(true);
    async_io::block_on(async {
        assert_eq!(next(&mut shard).await.event(), "READY");
        let warm = count_this_thread_uncounted(|| sim.dispatch_many((0..50).map(|n| ("MESSAGE_CREATE", small(n)))));
        for _ in 0..warm.len() {
            drop(next(&mut shard).await);
        }
        let idle = alloc_counter::live_bytes();
        let sent = count_this_thread_uncounted(|| {
            sim.dispatch_many(
                std::iter::once(("GUILD_CREATE", big(0, 1_000_000)))
                    .chain((0..400).map(|n| ("MESSAGE_CREATE", small(n)))),
            )
        });
        let kept = next(&mut shard).await;
        assert!(kept.frame().len() > 500_000);
        for _ in 1..sent.len() {
            drop(next(&mut shard).await);
        }
        drop(kept);
        // Nothing more arrives; give the driver a moment.
        async_io::Timer::after(Duration::from_millis(300)).await;
        let grown = alloc_counter::live_bytes() - idle;
        assert!(grown < 64 * 1024, "{grown} bytes still held after the application dropped the large dispatch");
    });
    count_this_thread(false);
}

/// Taken by every test that counts allocations: the spawned-driver test
/// reads the global count (over every counted thread), which the others'
/// counted threads would add to.
static MEMORY_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `f` (the simulator's side: building and queueing frames) uncounted.
fn count_this_thread_uncounted<R>(f: impl FnOnce() -> R) -> R {
    alloc_counter::uncounted(f)
}
