//! Chaos soak: one shard against the simulator while it injects random
//! faults (drops, corrupt zlib, op 7, op 9 true/false, resumable and
//! re-identify close codes, withheld ACKs, server heartbeat requests,
//! garbage payloads, payloads split at random points).
//!
//! Asserts every dispatch committed to a session is delivered exactly once
//! and in order, with re-identify boundaries visible as READY.
//!
//! CI runs 50,000 dispatches and 1,000 faults. Longer:
//! `CHAOS_DISPATCHES=1000000 CHAOS_FAULTS=20000 cargo test --release --all-features --test chaos_soak -- --nocapture`;
//! replay a failure with `CHAOS_SEED=<seed printed on failure>`.
#![cfg(all(feature = "testing", feature = "async-std"))]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use discord_gateway_stream::protocol::ReconnectPolicy;
use discord_gateway_stream::testing::{Simulator, SimulatorConfig};
use discord_gateway_stream::{CloseMode, Compression, Config, Intents, Shard};
use futures::StreamExt;
use serde_json::json;

#[path = "alloc_counter/mod.rs"]
mod alloc_counter;

use alloc_counter::{count_this_thread, live_bytes as client_heap};

/// Only the driver's and consumer's threads are counted, not the simulator's.
#[global_allocator]
static GLOBAL: alloc_counter::Counting = alloc_counter::Counting;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// xorshift64*: the test's own seeded generator.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Drop,
    Corrupt,
    Reconnect,
    InvalidResumable,
    InvalidFinal,
    CloseResumable(u16),
    CloseIdentify(u16),
    Zombie,
    HeartbeatRequest,
    Garbage,
    Split(usize),
}

fn pick(rng: &mut Rng) -> Fault {
    match rng.below(100) {
        0..=17 => Fault::Drop,
        18..=27 => Fault::Corrupt,
        28..=39 => Fault::Reconnect,
        40..=47 => Fault::InvalidResumable,
        48..=51 => Fault::InvalidFinal,
        52..=63 => Fault::CloseResumable([4000, 4002, 4008, 1000, 1001, 1011][rng.below(6) as usize]),
        64..=67 => Fault::CloseIdentify([4007, 4009, 4003][rng.below(3) as usize]),
        68..=71 => Fault::Zombie,
        72..=79 => Fault::HeartbeatRequest,
        80..=89 => Fault::Garbage,
        _ => Fault::Split(1 + rng.below(6) as usize),
    }
}

#[test]
fn every_committed_dispatch_arrives_once_in_order_through_random_faults() {
    let dispatches = env_or("CHAOS_DISPATCHES", 50_000);
    let faults = env_or("CHAOS_FAULTS", 1_000);
    let seed = env_or("CHAOS_SEED", {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos());
        (nanos as u64) | 1
    });
    eprintln!("chaos soak: seed {seed}, {dispatches} dispatches, {faults} faults (replay with CHAOS_SEED={seed})");
    let outcome = std::panic::catch_unwind(|| soak(seed, dispatches, faults));
    if let Err(panic) = outcome {
        eprintln!("chaos soak FAILED with seed {seed}; replay with CHAOS_SEED={seed}");
        std::panic::resume_unwind(panic);
    }
}

fn soak(seed: u64, total: u64, fault_count: u64) {
    let sim = Arc::new(
        Simulator::start(
            SimulatorConfig::new()
                .heartbeat_interval(Duration::from_millis(250))
                .send_limit(10_000, Duration::from_secs(60)),
        )
        .expect("simulator"),
    );
    let policy = ReconnectPolicy {
        base: Duration::from_millis(5),
        cap: Duration::from_millis(40),
        floor: Duration::from_millis(1),
        healthy_after: Duration::from_millis(200),
        max_resume_attempts: 3,
        invalid_session_wait: (Duration::from_millis(5), Duration::from_millis(20)),
    };
    let config = Config::new("chaos-token", Intents::GUILDS)
        .base_url(sim.url())
        .compression(Compression::ZlibStream)
        .reconnect_policy(policy)
        .ready_timeout(Duration::from_secs(5))
        // The simulator heartbeats every 250 ms; Discord's floor is 10 s.
        .min_heartbeat_interval(Duration::from_millis(100))
        // The soak ends sessions on purpose, far more often than the daily
        // Identify guard allows a real shard to.
        .max_identifies_per_day(u32::MAX)
        .rng_seed(seed);
    let mut shard = Shard::new(config).expect("shard");
    let driver = shard.take_driver().expect("driver");
    // Memory freed on one client thread may have been allocated on the other;
    // the sum over both is what is measured.
    let driver_thread = std::thread::spawn(move || {
        count_this_thread(true);
        async_io::block_on(driver)
    });

    // The consumer records (event, n) of every dispatch.
    let received: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let delivered_n = Arc::new(AtomicU64::new(0));
    let consumer_done = Arc::new(AtomicBool::new(false));
    let consumer = {
        let received = Arc::clone(&received);
        let delivered_n = Arc::clone(&delivered_n);
        let done = Arc::clone(&consumer_done);
        std::thread::spawn(move || {
            count_this_thread(true);
            async_io::block_on(async {
                while let Some(item) = shard.next().await {
                    let dispatch = item.expect("no fatal error in the soak");
                    let n = if dispatch.event() == "MESSAGE_CREATE" {
                        let d: serde_json::Value = dispatch.deserialize().expect("valid d");
                        let n = d["n"].as_u64().expect("n");
                        delivered_n.store(n, Ordering::Release);
                        n
                    } else {
                        0
                    };
                    let is_message = dispatch.event() == "MESSAGE_CREATE";
                    // The record of what arrived is the test's, not the client's.
                    count_this_thread(false);
                    received.lock().unwrap().push((dispatch.event().to_owned(), n));
                    count_this_thread(true);
                    drop(dispatch); // counted: it was allocated on a client thread
                    if done.load(Ordering::Acquire) && is_message && n == u64::MAX {
                        break;
                    }
                }
                shard.close(CloseMode::Final).await;
            });
        })
    };

    let started = Instant::now();
    let mut rng = Rng(seed);
    let fault_every = (total / fault_count.max(1)).max(1);
    let mut next_n = 1u64;
    let mut faults_done = 0u64;
    let mut fault_log = Vec::new();
    let mut identify_boundaries = 0usize;
    let mut heap_early: Option<i64> = None;
    let wait_delivered = |upto: u64| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while delivered_n.load(Ordering::Acquire) < upto {
            assert!(Instant::now() < deadline, "dispatch {upto} not delivered in 30 s");
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    while next_n <= total {
        // Commit a batch; dispatch() refuses (None) while no session exists.
        let batch = (total - next_n + 1).min(fault_every);
        let mut committed = 0;
        while committed < batch {
            match sim.dispatch("MESSAGE_CREATE", json!({ "n": next_n })) {
                Some(_) => {
                    next_n += 1;
                    committed += 1;
                }
                None => std::thread::sleep(Duration::from_millis(1)),
            }
        }
        if heap_early.is_none() && next_n > total / 10 {
            wait_delivered(next_n - 1);
            heap_early = Some(client_heap());
        }
        if faults_done < fault_count {
            let fault = pick(&mut rng);
            fault_log.push(fault);
            faults_done += 1;
            match fault {
                Fault::Drop => {
                    sim.drop_connection();
                }
                Fault::Corrupt => {
                    sim.send_corrupt_frame();
                }
                Fault::Reconnect => {
                    sim.reconnect();
                }
                Fault::InvalidResumable => {
                    sim.invalid_session(true);
                }
                Fault::CloseResumable(code) => {
                    sim.close(code);
                }
                // These end the session: what was committed but not yet
                // delivered would be lost by design, so let it arrive first.
                Fault::InvalidFinal => {
                    wait_delivered(next_n - 1);
                    identify_boundaries += usize::from(sim.invalid_session(false));
                }
                Fault::CloseIdentify(code) => {
                    wait_delivered(next_n - 1);
                    identify_boundaries += usize::from(sim.close(code));
                }
                Fault::Zombie => {
                    sim.withhold_acks(true);
                    std::thread::sleep(Duration::from_millis(600));
                    sim.withhold_acks(false);
                }
                Fault::HeartbeatRequest => {
                    sim.request_heartbeat();
                }
                Fault::Garbage => {
                    sim.send_raw_payload(r#"{"op":0,"t":"MESSAGE_CREATE","s":"#);
                    sim.send_raw_payload(r#"{"op":77,"d":{"unknown":true}}"#);
                }
                Fault::Split(k) => sim.set_split_frames(k),
            }
        }
    }
    wait_delivered(total);
    let heap_late = client_heap();
    consumer_done.store(true, Ordering::Release);
    // A sentinel wakes the consumer so it stops.
    while sim.dispatch("MESSAGE_CREATE", json!({ "n": u64::MAX })).is_none() {
        std::thread::sleep(Duration::from_millis(1));
    }
    consumer.join().expect("consumer");
    driver_thread.join().expect("driver");
    let elapsed = started.elapsed();

    let received = received.lock().unwrap();
    let ns: Vec<u64> =
        received.iter().filter(|(e, _)| e == "MESSAGE_CREATE").map(|(_, n)| *n).filter(|n| *n != u64::MAX).collect();
    assert_eq!(ns.len() as u64, total, "every committed dispatch delivered exactly once");
    assert!(ns.iter().enumerate().all(|(i, n)| *n == i as u64 + 1), "in order, no gaps, no duplicates");
    let readies = received.iter().filter(|(e, _)| e == "READY").count();
    let resumed = received.iter().filter(|(e, _)| e == "RESUMED").count();
    assert!(readies > identify_boundaries, "each re-identify boundary is reported through READY");
    assert!(resumed > 0);
    let heap_early = heap_early.unwrap_or(heap_late);
    assert!(
        heap_late - heap_early < 1 << 20,
        "client heap grew from {heap_early} to {heap_late} bytes between 10% and 100% of the soak"
    );
    eprintln!(
        "chaos soak: {total} dispatches, {faults_done} faults, {} connections, {readies} READY, {resumed} RESUMED in {:.1} s; client heap {} KiB at 10%, {} KiB at the end",
        sim.connections().len(),
        elapsed.as_secs_f64(),
        heap_early / 1024,
        heap_late / 1024
    );
}
