//! Chaos soak: one shard against the simulator while it injects random
//! faults (drops, corrupt zlib, op 7, op 9 true/false, resumable and
//! re-identify close codes, withheld ACKs, server heartbeat requests,
//! garbage payloads, payloads split at random points) and hostile inputs
//! (payloads over `max_message_size` through the zlib stream and as plain
//! WebSocket text, decompression bombs, op 1 floods, Hellos with a
//! heartbeat interval under the client's minimum).
//!
//! Asserts every dispatch committed to a session is delivered exactly once
//! and in order, with re-identify boundaries visible as READY; no connection
//! ever gets more than 120 client frames in 60 s; a Hello with a tiny
//! interval gets no frame and a close from the client; the client's heap
//! stays bounded (its peak far under a bomb's size, no growth over the run).
//!
//! CI runs 50,000 dispatches and 1,000 faults. Longer:
//! `CHAOS_DISPATCHES=1000000 CHAOS_FAULTS=20000 cargo test --release --all-features --test chaos_soak -- --nocapture`;
//! replay a failure with `CHAOS_SEED=<seed printed on failure>`.
#![cfg(feature = "testing")]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use discord_gateway_stream::protocol::ReconnectPolicy;
use discord_gateway_stream::testing::{ConnectionEnd, Simulator, SimulatorConfig};
use discord_gateway_stream::{CloseMode, Compression, Config, Intents, Shard};
use futures::StreamExt;
use serde_json::json;

mod support;
use support::alloc_counter;

use alloc_counter::{count_this_thread, live_bytes as client_heap, peak_live_bytes, uncounted};

/// Only the driver's and consumer's threads are counted, not the simulator's.
#[global_allocator]
static GLOBAL: alloc_counter::Counting = alloc_counter::Counting;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// What the client logged, counted by [`ClientLog`]: why each connection
/// ended (the `reason` of "connection lost", its variant name; a
/// decompression error past the cap as "Decompression (cap)"), and op 1
/// requests skipped for want of send budget.
static CLIENT_LOG: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());

/// A `tracing` layer that fills [`CLIENT_LOG`].
struct ClientLog;

#[derive(Default)]
struct LogFields {
    message: String,
    reason: String,
}

impl tracing::field::Visit for LogFields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "reason" => self.reason = format!("{value:?}"),
            _ => {}
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ClientLog {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        uncounted(|| {
            let mut fields = LogFields::default();
            event.record(&mut fields);
            // The driver logs socket errors as "connection lost" too, with
            // no `reason`; the machine's loss follows.
            let key = if fields.message == "connection lost" && !fields.reason.is_empty() {
                let variant = fields.reason.split([' ', '{', '(']).next().unwrap_or_default();
                if variant == "Decompression" && fields.reason.contains("past the") {
                    "Decompression (cap)".to_owned()
                } else {
                    variant.to_owned()
                }
            } else if fields.message.starts_with("heartbeat request with no send budget left") {
                "op 1 skipped (no budget)".to_owned()
            } else {
                return;
            };
            *CLIENT_LOG.lock().unwrap().entry(key).or_default() += 1;
        });
    }
}

fn client_log(key: &str) -> u64 {
    CLIENT_LOG.lock().unwrap().get(key).copied().unwrap_or(0)
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

/// The client's cap on one payload, decompressed (the default is 64 MiB).
const MAX_MESSAGE_SIZE: usize = 256 * 1024;
/// The simulator's usual heartbeat interval in the soak.
const HEARTBEAT: Duration = Duration::from_millis(250);
/// The client's floor on the Hello's interval in the soak.
const MIN_HEARTBEAT: Duration = Duration::from_millis(100);
/// The client's heap may never exceed this: the cap and the default
/// dispatch buffer (1 MiB) with room to spare, under the smallest bomb.
const HEAP_PEAK_LIMIT: i64 = 3 << 20;
/// Discord's send limit (`docs/rate-limits.md#send-limit`).
const SEND_LIMIT: usize = 120;
const SEND_WINDOW: Duration = Duration::from_secs(60);

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
    /// A dispatch-shaped payload `extra` bytes over the cap, never
    /// committed (a resume does not replay it): through the zlib stream
    /// (the inflater refuses it) or, with `text`, as one uncompressed
    /// WebSocket text message (the WebSocket layer refuses it).
    Oversize {
        extra: usize,
        text: bool,
    },
    /// A dispatch-shaped payload of `mib` MiB, nearly all one character,
    /// through the zlib stream (about 1 KiB compressed per MiB), never
    /// committed.
    Bomb {
        mib: usize,
    },
    /// This many op 1 in a row.
    HeartbeatFlood(usize),
    /// The Hello of the next `connections` connections announces
    /// `interval_ms`, under the client's minimum; then back to normal.
    TinyHeartbeat {
        interval_ms: u64,
        connections: usize,
    },
}

impl Fault {
    fn kind(self) -> &'static str {
        match self {
            Fault::Drop => "drop",
            Fault::Corrupt => "corrupt zlib",
            Fault::Reconnect => "op 7",
            Fault::InvalidResumable => "op 9 true",
            Fault::InvalidFinal => "op 9 false",
            Fault::CloseResumable(_) => "resumable close",
            Fault::CloseIdentify(_) => "re-identify close",
            Fault::Zombie => "withheld ACKs",
            Fault::HeartbeatRequest => "op 1",
            Fault::Garbage => "garbage",
            Fault::Split(_) => "split frames",
            Fault::Oversize { text: false, .. } => "oversize (zlib)",
            Fault::Oversize { text: true, .. } => "oversize (text)",
            Fault::Bomb { .. } => "bomb",
            Fault::HeartbeatFlood(_) => "op 1 flood",
            Fault::TinyHeartbeat { .. } => "tiny heartbeat",
        }
    }
}

fn pick(rng: &mut Rng) -> Fault {
    // The slow kinds (withheld ACKs: 600 ms each; tiny heartbeat: a few
    // reconnects; bombs: the simulator compresses megabytes) are rare, so
    // that a default run takes about 30 s in a debug build.
    match rng.below(100) {
        0..=15 => Fault::Drop,
        16..=23 => Fault::Corrupt,
        24..=34 => Fault::Reconnect,
        35..=41 => Fault::InvalidResumable,
        42..=45 => Fault::InvalidFinal,
        46..=56 => Fault::CloseResumable([4000, 4002, 4008, 1000, 1001, 1011][rng.below(6) as usize]),
        57..=60 => Fault::CloseIdentify([4007, 4009, 4003][rng.below(3) as usize]),
        61..=63 => Fault::Zombie,
        64..=69 => Fault::HeartbeatRequest,
        70..=77 => Fault::Garbage,
        78..=84 => Fault::Split(1 + rng.below(6) as usize),
        85..=88 => Fault::Oversize { extra: 1 + rng.below(64 * 1024) as usize, text: rng.below(2) == 0 },
        89..=91 => Fault::Bomb { mib: [4, 16][rng.below(2) as usize] },
        92..=97 => Fault::HeartbeatFlood(50 + rng.below(151) as usize),
        _ => Fault::TinyHeartbeat {
            interval_ms: [0, 1, 10, 50, MIN_HEARTBEAT.as_millis() as u64 - 1][rng.below(5) as usize],
            connections: 1 + rng.below(5) as usize,
        },
    }
}

/// A MESSAGE_CREATE of exactly `len` bytes, with `s` and `n: 0` (a client
/// that let it through would deliver an `n` the soak never committed) and
/// filler from `fill`.
fn fake_dispatch(len: usize, s: u64, mut fill: impl FnMut() -> u8) -> String {
    let head = format!(r#"{{"t":"MESSAGE_CREATE","s":{s},"op":0,"d":{{"n":0,"blob":""#);
    let tail = r#""}}"#;
    let mut text = String::with_capacity(len);
    text.push_str(&head);
    while text.len() < len.saturating_sub(tail.len()) {
        text.push(char::from(fill()));
    }
    text.push_str(tail);
    text
}

/// The most frames in any `SEND_WINDOW` among frames arriving at `times`
/// (in arrival order).
fn busiest_window(times: &[Instant]) -> usize {
    let mut start = 0;
    let mut most = 0;
    for (end, t) in times.iter().enumerate() {
        while times.get(start).is_some_and(|s| t.saturating_duration_since(*s) >= SEND_WINDOW) {
            start += 1;
        }
        most = most.max(end + 1 - start);
    }
    most
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
    {
        use tracing_subscriber::filter::LevelFilter;
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::Layer;
        let subscriber = tracing_subscriber::registry().with(ClientLog.with_filter(LevelFilter::INFO));
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
    }
    let sim = Arc::new(
        Simulator::start(
            // Discord's send limit, 120 frames per 60 s (the default): over
            // it the simulator closes with 4008, which the soak checks for.
            SimulatorConfig::new().heartbeat_interval(HEARTBEAT),
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
        .min_heartbeat_interval(MIN_HEARTBEAT)
        .max_message_size(MAX_MESSAGE_SIZE)
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
    // Why the stream ended early, if it did: the soak then fails with it
    // instead of waiting for a session that will never come.
    let stopped: Arc<Mutex<Option<String>>> = Arc::default();
    let consumer = {
        let stopped = Arc::clone(&stopped);
        let received = Arc::clone(&received);
        let delivered_n = Arc::clone(&delivered_n);
        let done = Arc::clone(&consumer_done);
        std::thread::spawn(move || {
            count_this_thread(true);
            async_io::block_on(async {
                while let Some(item) = shard.next().await {
                    let dispatch = match item {
                        Ok(dispatch) => dispatch,
                        Err(error) => {
                            *stopped.lock().unwrap() = Some(format!("{error:?} (status {:?})", shard.status()));
                            break;
                        }
                    };
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
    // Per kind: how often picked, how often it reached a connection, and
    // how long the soak spent on it.
    let mut fault_counts: BTreeMap<&'static str, (u64, u64, Duration)> = BTreeMap::new();
    let mut identify_boundaries = 0usize;
    // Connections whose Hello announced a tiny interval, with that interval.
    let mut tiny_connections: Vec<(usize, u64)> = Vec::new();
    let mut closes_4008 = 0usize;
    let mut heap_early: Option<i64> = None;
    let bombs: BTreeMap<usize, String> = [4, 16].map(|mib| (mib, fake_dispatch(mib << 20, 1, || b'a'))).into();
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
                None => {
                    if consumer.is_finished() {
                        let why = stopped.lock().unwrap().clone();
                        panic!("the shard stopped during the soak: {}", why.as_deref().unwrap_or("its stream ended"));
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        if heap_early.is_none() && next_n > total / 10 {
            wait_delivered(next_n - 1);
            heap_early = Some(client_heap());
        }
        if faults_done < fault_count {
            let fault = pick(&mut rng);
            faults_done += 1;
            let fault_started = Instant::now();
            let landed = match fault {
                Fault::Drop => sim.drop_connection(),
                Fault::Corrupt => sim.send_corrupt_frame(),
                Fault::Reconnect => sim.reconnect(),
                Fault::InvalidResumable => sim.invalid_session(true),
                Fault::CloseResumable(code) => {
                    let closed = sim.close(code);
                    closes_4008 += usize::from(closed && code == 4008);
                    closed
                }
                // These end the session: what was committed but not yet
                // delivered would be lost by design, so let it arrive first.
                Fault::InvalidFinal => {
                    wait_delivered(next_n - 1);
                    let sent = sim.invalid_session(false);
                    identify_boundaries += usize::from(sent);
                    sent
                }
                Fault::CloseIdentify(code) => {
                    wait_delivered(next_n - 1);
                    let sent = sim.close(code);
                    identify_boundaries += usize::from(sent);
                    sent
                }
                Fault::Zombie => {
                    sim.withhold_acks(true);
                    std::thread::sleep(Duration::from_millis(600));
                    sim.withhold_acks(false);
                    true
                }
                Fault::HeartbeatRequest => sim.request_heartbeat(),
                Fault::Garbage => {
                    sim.send_raw_payload(r#"{"op":0,"t":"MESSAGE_CREATE","s":"#)
                        | sim.send_raw_payload(r#"{"op":77,"d":{"unknown":true}}"#)
                }
                Fault::Split(k) => {
                    sim.set_split_frames(k);
                    true
                }
                // Not committed: the resume after it replays only what was.
                Fault::Oversize { extra, text } => {
                    let s = sim.last_seq().unwrap_or(0) + 1;
                    let payload =
                        fake_dispatch(MAX_MESSAGE_SIZE + extra, s, || b"0123456789abcdef"[rng.below(16) as usize]);
                    if text {
                        sim.send_raw_text(&payload)
                    } else {
                        sim.send_raw_payload(&payload)
                    }
                }
                Fault::Bomb { mib } => sim.send_raw_payload(&bombs[&mib]),
                Fault::HeartbeatFlood(count) => (0..count).fold(false, |any, _| sim.request_heartbeat() | any),
                Fault::TinyHeartbeat { interval_ms, connections } => {
                    // The client refuses such a Hello and reconnects; a resume
                    // refused `max_resume_attempts` times starts a new session,
                    // which loses what was not yet delivered
                    // (docs/edge-cases.md#resumes-that-keep-failing).
                    wait_delivered(next_n - 1);
                    sim.set_heartbeat_interval(Duration::from_millis(interval_ms));
                    // Every connection from here on announces the tiny
                    // interval (it is read after the handshake).
                    let first = sim.connections().len();
                    // The open connection keeps its interval: end it.
                    sim.drop_connection();
                    for index in first..first + connections {
                        assert!(
                            sim.wait_for_connection_end(index, Duration::from_secs(30)),
                            "connection {index} with a {interval_ms} ms Hello did not end in 30 s"
                        );
                        tiny_connections.push((index, interval_ms));
                    }
                    sim.set_heartbeat_interval(HEARTBEAT);
                    // A connection opened before the restore may still get
                    // the tiny interval: the next dispatches wait for the
                    // session (resumed or new) to be live again.
                    assert!(sim.wait_until_live(Duration::from_secs(30)), "no session live 30 s after a tiny Hello");
                    true
                }
            };
            let counts = fault_counts.entry(fault.kind()).or_default();
            counts.0 += 1;
            counts.1 += u64::from(landed);
            counts.2 += fault_started.elapsed();
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
    let heap_peak = peak_live_bytes();
    let connections = sim.connections();
    let kinds: Vec<String> = fault_counts
        .iter()
        .map(|(kind, (picked, landed, spent))| format!("{kind} {landed}/{picked} ({:.1} s)", spent.as_secs_f64()))
        .collect();
    eprintln!(
        "chaos soak: {total} dispatches, {faults_done} faults, {} connections, {readies} READY, {resumed} RESUMED in {:.1} s; client heap {} KiB at 10%, {} KiB at the end, {} KiB at its peak",
        connections.len(),
        elapsed.as_secs_f64(),
        heap_early / 1024,
        heap_late / 1024,
        heap_peak / 1024,
    );
    eprintln!("chaos soak: faults landed/picked (time spent): {}", kinds.join(", "));
    let log: Vec<String> = CLIENT_LOG.lock().unwrap().iter().map(|(key, n)| format!("{key} {n}")).collect();
    eprintln!("chaos soak: the client's connection losses by reason: {}", log.join(", "));
    assert!(
        heap_late - heap_early < 1 << 20,
        "client heap grew from {heap_early} to {heap_late} bytes between 10% and 100% of the soak"
    );
    // Bombs and oversize payloads are refused at the cap, not read whole.
    assert!(heap_peak < HEAP_PEAK_LIMIT, "client heap peaked at {heap_peak} bytes");

    // No connection ever got more than Discord's 120 frames in 60 s (the
    // op 1 floods), so no 4008 the soak did not send itself.
    let frames = sim.client_frames();
    let mut arrivals: BTreeMap<usize, Vec<Instant>> = BTreeMap::new();
    for frame in &frames {
        arrivals.entry(frame.connection).or_default().push(frame.at);
    }
    for (connection, times) in &arrivals {
        let most = busiest_window(times);
        assert!(most <= SEND_LIMIT, "connection {connection} got {most} client frames within 60 s");
    }
    let ended_4008 = connections.iter().filter(|c| c.end == Some(ConnectionEnd::ServerClose(Some(4008)))).count();
    assert!(ended_4008 <= closes_4008, "{ended_4008} connections closed with 4008, the soak sent {closes_4008}");

    // A Hello under the minimum interval gets no frame (no Identify, Resume
    // or heartbeat) and a close from the client.
    let hellos: BTreeMap<usize, u64> = sim
        .server_frames()
        .iter()
        .filter_map(|f| {
            let v: serde_json::Value = serde_json::from_str(&f.text).ok()?;
            (v["op"] == 10).then(|| (f.connection, v["d"]["heartbeat_interval"].as_u64().unwrap_or(u64::MAX)))
        })
        .collect();
    for &(index, interval_ms) in &tiny_connections {
        assert_eq!(hellos.get(&index), Some(&interval_ms), "connection {index}: Hello with {interval_ms} ms");
        assert!(!arrivals.contains_key(&index), "connection {index}: a frame after a {interval_ms} ms Hello");
        let end = connections.get(index).and_then(|c| c.end.clone());
        assert_eq!(
            end,
            Some(ConnectionEnd::ClientClose(Some(4000))),
            "connection {index} after a {interval_ms} ms Hello"
        );
    }
    assert!(client_log("BadHello") >= tiny_connections.len() as u64);

    // Every hostile input reached the client in a default-sized run.
    if fault_count >= 1_000 {
        for kind in ["oversize (zlib)", "oversize (text)", "bomb", "op 1 flood", "tiny heartbeat"] {
            let landed = fault_counts.get(kind).map_or(0, |c| c.1);
            assert!(landed > 0, "no {kind} fault reached the client");
        }
        // ... and the client refused each at the cap.
        assert!(client_log("MessageTooLarge") > 0, "no message refused by the WebSocket layer");
        assert!(client_log("Decompression (cap)") > 0, "no payload refused by the inflater at the cap");
        assert!(client_log("op 1 skipped (no budget)") > 0, "no op 1 flood reached the send budget");
    }
}

#[test]
fn busiest_window_counts_frames_less_than_60_s_apart() {
    let t = Instant::now();
    let at = |ms: u64| t + Duration::from_millis(ms);
    assert_eq!(busiest_window(&[]), 0);
    assert_eq!(busiest_window(&[at(0), at(59_999), at(60_000), at(60_001)]), 3);
    assert_eq!(busiest_window(&[at(0), at(1), at(2), at(70_000)]), 3);
}
