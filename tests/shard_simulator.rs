//! The real `Shard` (async-tungstenite over async-std TCP) against the
//! simulator: `docs/connection.md#resume-or-identify` rows and
//! `docs/close-codes.md#gateway-close-codes` classes end to end.
#![cfg(feature = "testing")]

use std::future::Future;
use std::time::{Duration, Instant};

mod support;

use discord_gateway_stream::protocol::ReconnectPolicy;
use discord_gateway_stream::testing::{ConnectionEnd, OnConnect, Simulator, SimulatorConfig};
use discord_gateway_stream::{CloseMode, Compression, Config, Dispatch, Intents, Shard, ShardError};
use futures::StreamExt;
use serde_json::json;
use support::client::{fast_policy, sim_config, LogCapture};

const WAIT: Duration = Duration::from_secs(10);

fn simulator(compression: bool) -> Simulator {
    Simulator::start(SimulatorConfig::new().heartbeat_interval(Duration::from_millis(400)).compression(compression))
        .expect("simulator starts")
}

fn config(sim: &Simulator, compression: Compression) -> Config {
    sim_config(sim.url(), Intents::GUILDS | Intents::GUILD_MESSAGES).compression(compression).rng_seed(7)
}

fn block_on<T>(future: impl Future<Output = T>) -> T {
    async_io::block_on(future)
}

/// The next stream item, or a panic after a generous bound.
async fn next(shard: &mut Shard) -> Option<Result<Dispatch, ShardError>> {
    let timeout = async_io::Timer::after(WAIT);
    futures::select! {
        item = shard.next() => item,
        _ = futures::FutureExt::fuse(timeout) => panic!("no stream item within {WAIT:?}"),
    }
}

async fn next_dispatch(shard: &mut Shard) -> Dispatch {
    next(shard).await.expect("stream ended").expect("no error")
}

/// Reads until `count` dispatches other than READY/RESUMED arrived; returns all read.
async fn collect_events(shard: &mut Shard, count: usize) -> Vec<Dispatch> {
    let mut all = Vec::new();
    while all.iter().filter(|d: &&Dispatch| !matches!(d.event(), "READY" | "RESUMED")).count() < count {
        all.push(next_dispatch(shard).await);
    }
    all
}

/// Polls the shard in the background of `work` so the connection keeps moving.
async fn drive_while<T>(shard: &mut Shard, seen: &mut Vec<Dispatch>, work: impl Future<Output = T>) -> T {
    let work = std::pin::pin!(futures::FutureExt::fuse(work));
    let mut work = work;
    loop {
        futures::select! {
            out = work => return out,
            item = shard.next() => seen.push(item.expect("stream open").expect("no error")),
        }
    }
}

fn payload_seqs(dispatches: &[Dispatch]) -> Vec<u64> {
    dispatches.iter().filter(|d| d.event() == "MESSAGE_CREATE").map(|d| d.seq()).collect()
}

fn run_basic(compression: bool) {
    let sim = simulator(compression);
    let mode = if compression { Compression::ZlibStream } else { Compression::None };
    let mut shard = Shard::new(config(&sim, mode)).unwrap();
    block_on(async {
        let ready = next_dispatch(&mut shard).await;
        assert_eq!((ready.event(), ready.seq()), ("READY", 1));
        let session: serde_json::Value = ready.deserialize().unwrap();
        assert_eq!(session["session_id"].as_str(), sim.session_id().as_deref());
        for i in 0..20 {
            sim.dispatch("MESSAGE_CREATE", json!({"content": format!("m{i}"), "n": i}));
        }
        let got = collect_events(&mut shard, 20).await;
        assert_eq!(payload_seqs(&got), (2..22).collect::<Vec<_>>());
        assert_eq!(got[0].data(), r#"{"content":"m0","n":0}"#);
    });
    let record = &sim.connections()[0];
    assert_eq!(record.version.as_deref(), Some("10"));
    assert_eq!(record.compressed, compression);
    let identify = &sim.identifies()[0];
    assert_eq!(identify.d().unwrap()["token"], "sim-token");
    assert_eq!(identify.d().unwrap()["compress"], false);
}

#[test]
fn identify_ready_and_dispatches_in_order_exactly_once_over_zlib_stream() {
    run_basic(true);
}

#[test]
fn identify_ready_and_dispatches_in_order_exactly_once_uncompressed() {
    run_basic(false);
}

#[test]
fn op7_reconnect_resumes_on_the_resume_url_with_no_loss_or_duplicates() {
    // docs/connection.md#resume-or-identify; docs/edge-cases.md#resume-url-query.
    let sim = simulator(true);
    let mut shard = Shard::new(config(&sim, Compression::ZlibStream)).unwrap();
    block_on(async {
        next_dispatch(&mut shard).await;
        sim.dispatch_many((0..5).map(|i| ("MESSAGE_CREATE", json!({ "n": i }))));
        let mut seen = collect_events(&mut shard, 5).await;
        assert!(sim.reconnect());
        // Committed while the client reconnects: replayed on resume.
        sim.dispatch_many((5..10).map(|i| ("MESSAGE_CREATE", json!({ "n": i }))));
        seen.extend(collect_events(&mut shard, 5).await);
        assert_eq!(payload_seqs(&seen), (2..12).collect::<Vec<_>>());
    });
    let connections = sim.connections();
    assert_eq!(connections.len(), 2);
    assert!(connections[1].via_resume_url, "resume goes to resume_gateway_url");
    assert_eq!(connections[1].compress.as_deref(), Some("zlib-stream"), "same query on resume");
    assert_eq!(sim.resumes().len(), 1);
    assert_eq!(sim.identifies().len(), 1);
    // docs/edge-cases.md#wrong-close-code
    assert!(sim.client_closes().iter().all(|c| c.code != Some(1000)), "never 1000 on a reconnect");
}

#[test]
fn network_drop_resumes_and_replays_exactly_what_was_missed() {
    // docs/connection.md#resume-or-identify; docs/connection.md#replay-and-duplicates.
    let sim = simulator(true);
    let mut shard = Shard::new(config(&sim, Compression::ZlibStream)).unwrap();
    block_on(async {
        next_dispatch(&mut shard).await;
        sim.dispatch("MESSAGE_CREATE", json!({"n": 0}));
        let mut seen = collect_events(&mut shard, 1).await;
        assert!(sim.drop_connection());
        sim.dispatch_many((1..8).map(|i| ("MESSAGE_CREATE", json!({ "n": i }))));
        seen.extend(collect_events(&mut shard, 7).await);
        while !seen.iter().any(|d| d.event() == "RESUMED") {
            seen.push(next_dispatch(&mut shard).await);
        }
        assert_eq!(payload_seqs(&seen), (2..10).collect::<Vec<_>>());
    });
    assert_eq!(sim.resumes()[0].d().unwrap()["seq"], 2);
}

#[test]
fn zombie_connection_closes_resumably_and_resumes() {
    // docs/connection.md#resume-or-identify; docs/connection.md#zombie-connections.
    let sim = simulator(false);
    let mut shard = Shard::new(config(&sim, Compression::None)).unwrap();
    block_on(async {
        next_dispatch(&mut shard).await;
        sim.withhold_acks(true);
        let mut seen = Vec::new();
        let zombie = drive_while(&mut shard, &mut seen, async {
            async_io::Timer::after(Duration::from_millis(50)).await;
            until(|| sim.connections().len() >= 2, WAIT).await
        })
        .await;
        assert!(zombie, "a second connection after withheld ACKs");
        sim.withhold_acks(false);
        let seq = sim.dispatch("MESSAGE_CREATE", json!({})).expect("a session");
        seen.extend(collect_events(&mut shard, 1).await);
        assert_eq!(payload_seqs(&seen), [seq]);
    });
    assert_eq!(sim.resumes().len(), 1);
    assert!(sim.client_closes().iter().any(|c| c.code == Some(4000)));
}

/// Waits (asynchronously, so the shard keeps being polled) until `condition` holds.
async fn until(mut condition: impl FnMut() -> bool, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while !condition() {
        if Instant::now() >= deadline {
            return false;
        }
        async_io::Timer::after(Duration::from_millis(10)).await;
    }
    true
}

#[test]
fn close_4007_and_4009_start_a_new_session_without_resuming() {
    // docs/connection.md#resume-or-identify: peers resume here and waste a round trip.
    for code in [4007u16, 4009] {
        let sim = simulator(false);
        let mut shard = Shard::new(config(&sim, Compression::None)).unwrap();
        block_on(async {
            next_dispatch(&mut shard).await;
            assert!(sim.close(code));
            let ready = next_dispatch(&mut shard).await;
            assert_eq!(ready.event(), "READY", "close {code}");
        });
        assert_eq!(sim.identifies().len(), 2, "close {code}");
        assert!(sim.resumes().is_empty(), "close {code}: no resume");
    }
}

#[test]
fn every_close_code_of_6_1_gets_its_documented_next_step() {
    // docs/close-codes.md#gateway-close-codes ("Crate" column), end to end;
    // docs/edge-cases.md#reconnect-loops (fatal codes never loop),
    // docs/edge-cases.md#undocumented-close-codes,
    // docs/edge-cases.md#session-invalidated-while-connected.
    for code in 4000u16..=4014 {
        let sim = simulator(false);
        let mut shard = Shard::new(config(&sim, Compression::None)).unwrap();
        block_on(async {
            next_dispatch(&mut shard).await;
            assert!(sim.close(code));
            match code {
                4000 | 4002 | 4008 => {
                    let seq = sim.dispatch("MESSAGE_CREATE", json!({})).expect("session kept");
                    assert_eq!(payload_seqs(&collect_events(&mut shard, 1).await), [seq], "{code}");
                }
                4001 | 4003 | 4005 | 4006 | 4007 | 4009 => {
                    assert_eq!(next_dispatch(&mut shard).await.event(), "READY", "{code}");
                }
                _ => {
                    let err = next(&mut shard).await.expect("an item").expect_err("fatal");
                    assert_eq!(err.close_code(), Some(code));
                    assert!(next(&mut shard).await.is_none(), "{code}: the stream ends");
                }
            }
        });
        let (resumes, identifies) = (sim.resumes().len(), sim.identifies().len());
        match code {
            4000 | 4002 | 4008 => assert_eq!((resumes, identifies), (1, 1), "{code} resumes"),
            4001 | 4003 | 4005 | 4006 | 4007 | 4009 => assert_eq!((resumes, identifies), (0, 2), "{code} identifies"),
            _ => {
                std::thread::sleep(Duration::from_millis(200));
                assert_eq!(sim.connections().len(), 1, "{code}: no reconnect");
            }
        }
    }
}

#[test]
fn connections_that_fail_before_hello_keep_the_session_and_fall_back_to_the_base_url() {
    // docs/connection.md#resume-url: a resume URL that fails is dropped for the
    // base URL. Connections that never reach Hello are not failed resumes (no
    // Resume was sent), so the session is kept: a short network blip costs no
    // Identify. Resumes that are sent and keep failing fall back to Identify
    // (docs/edge-cases.md#resumes-that-keep-failing), pinned with the fake
    // clock in protocol_resume_or_identify.rs.
    let sim = simulator(false);
    let mut shard = Shard::new(config(&sim, Compression::None)).unwrap();
    block_on(async {
        next_dispatch(&mut shard).await;
        for _ in 0..3 {
            sim.push_on_connect(OnConnect::DropTcp);
        }
        assert!(sim.drop_connection());
        let resumed = next_dispatch(&mut shard).await;
        assert_eq!(resumed.event(), "RESUMED");
    });
    let connections = sim.connections();
    assert_eq!(connections.len(), 5, "first, three dropped before Hello, the resume");
    // (DropTcp ends connections before their path is read; the resume-URL
    // fallback itself is pinned in protocol_rules.rs.)
    assert!(!connections[4].via_resume_url, "the resume goes to the base URL");
    assert_eq!(sim.identifies().len(), 1);
    assert_eq!(sim.resumes().len(), 1);
}

#[test]
fn a_refused_websocket_upgrade_is_logged_and_retried_and_the_session_kept() {
    // docs/connection.md#gateway-url: a failed upgrade is an ordinary
    // transport failure. The shard's own handshake
    // (src/transport/handshake.rs) refuses any answer but 101, the error
    // naming the status.
    let capture = LogCapture::default();
    let sim = simulator(false);
    tracing::dispatcher::with_default(&capture.dispatch(tracing::Level::WARN), || {
        let mut shard = Shard::new(config(&sim, Compression::None)).unwrap();
        block_on(async {
            next_dispatch(&mut shard).await;
            sim.push_on_connect(OnConnect::RefuseHandshake(429));
            sim.push_on_connect(OnConnect::RefuseHandshake(503));
            assert!(sim.drop_connection());
            let resumed = next_dispatch(&mut shard).await;
            assert_eq!(resumed.event(), "RESUMED");
        });
    });
    let ends: Vec<_> = sim.connections().into_iter().map(|connection| connection.end).collect();
    assert_eq!(ends.len(), 4, "{ends:?}");
    assert_eq!(ends[1..3], [Some(ConnectionEnd::Refused(429)), Some(ConnectionEnd::Refused(503))]);
    let logs = capture.text();
    for status in [429, 503] {
        let line = format!("WebSocket handshake: the server answered HTTP {status} instead of 101 Switching Protocols");
        assert!(logs.contains(&line), "{line:?} not in {logs}");
    }
    assert_eq!((sim.identifies().len(), sim.resumes().len()), (1, 1));
}

#[test]
fn a_wrong_token_ends_with_4004_naming_the_fix() {
    let sim = Simulator::start(SimulatorConfig::new().token("right")).unwrap();
    let mut shard = Shard::new(config(&sim, Compression::ZlibStream)).unwrap();
    block_on(async {
        let err = next(&mut shard).await.unwrap().unwrap_err();
        assert!(err.to_string().contains("4004"));
        assert!(err.to_string().contains("token"));
    });
}

#[test]
fn op9_false_forgets_the_session_and_identifies_after_one_to_five_seconds() {
    // docs/connection.md#resume-or-identify, with the default 1-5 s wait.
    let sim = simulator(false);
    let policy =
        ReconnectPolicy { invalid_session_wait: ReconnectPolicy::default().invalid_session_wait, ..fast_policy() };
    let mut shard = Shard::new(config(&sim, Compression::None).reconnect_policy(policy)).unwrap();
    block_on(async {
        next_dispatch(&mut shard).await;
        let sent = Instant::now();
        assert!(sim.invalid_session(false));
        let ready = next_dispatch(&mut shard).await;
        assert_eq!(ready.event(), "READY");
        assert!(sent.elapsed() >= Duration::from_secs(1), "{:?}", sent.elapsed());
    });
    let connections = sim.connections();
    assert!(!connections[1].via_resume_url, "new sessions use the base URL");
    let gap = connections[1].opened_at - connections[0].opened_at;
    assert!(gap >= Duration::from_secs(1) && gap < Duration::from_secs(9), "{gap:?}");
}

#[test]
fn op9_true_resumes() {
    let sim = simulator(false);
    let mut shard = Shard::new(config(&sim, Compression::None)).unwrap();
    block_on(async {
        next_dispatch(&mut shard).await;
        assert!(sim.invalid_session(true));
        sim.dispatch("MESSAGE_CREATE", json!({}));
        let seen = collect_events(&mut shard, 1).await;
        assert_eq!(payload_seqs(&seen), [2]);
    });
    assert_eq!(sim.resumes().len(), 1);
}

#[test]
fn corrupt_zlib_resumes_with_a_fresh_inflater() {
    // docs/edge-cases.md#zlib-stream-framing-and-state.
    let sim = simulator(true);
    let mut shard = Shard::new(config(&sim, Compression::ZlibStream)).unwrap();
    block_on(async {
        next_dispatch(&mut shard).await;
        assert!(sim.send_corrupt_frame());
        sim.dispatch("MESSAGE_CREATE", json!({"after": "corruption"}));
        let seen = collect_events(&mut shard, 1).await;
        assert_eq!(payload_seqs(&seen), [2]);
    });
    assert_eq!(sim.resumes().len(), 1);
}

#[test]
fn unknown_opcodes_and_bad_json_are_skipped_without_losing_later_events() {
    let sim = simulator(true);
    let mut shard = Shard::new(config(&sim, Compression::ZlibStream)).unwrap();
    block_on(async {
        next_dispatch(&mut shard).await;
        assert!(sim.send_raw_payload(r#"{"op":99,"d":{"future":true}}"#));
        assert!(sim.send_raw_payload(r#"{"op":0,"t":"MESSAGE_CREATE","s":"#));
        sim.dispatch_many((0..3).map(|i| ("MESSAGE_CREATE", json!({ "n": i }))));
        let seen = collect_events(&mut shard, 3).await;
        assert_eq!(payload_seqs(&seen), [2, 3, 4]);
    });
    assert_eq!(sim.connections().len(), 1, "no reconnect for skipped payloads");
}

#[test]
fn payloads_split_over_frames_with_a_straddled_marker_arrive() {
    // docs/compression.md#zlib-stream: peers stall when 00 00 ff ff straddles two frames.
    let sim = Simulator::start(SimulatorConfig::new().split_frames(4)).unwrap();
    let mut shard = Shard::new(config(&sim, Compression::ZlibStream)).unwrap();
    block_on(async {
        next_dispatch(&mut shard).await;
        let big = "x".repeat(300_000);
        sim.dispatch("GUILD_CREATE", json!({"blob": big}));
        sim.dispatch("MESSAGE_CREATE", json!({}));
        let seen = collect_events(&mut shard, 2).await;
        assert_eq!(seen.iter().map(|d| d.seq()).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(seen[0].data().len(), r#"{"blob":""}"#.len() + 300_000);
    });
}

#[test]
fn close_final_sends_1000_and_close_resumable_hands_over_a_session() {
    let sim = simulator(false);
    let mut first = Shard::new(config(&sim, Compression::None)).unwrap();
    let session = block_on(async {
        next_dispatch(&mut first).await;
        sim.dispatch("MESSAGE_CREATE", json!({}));
        collect_events(&mut first, 1).await;
        first.close(CloseMode::Resumable).await.expect("a session")
    });
    assert!(sim.wait_for_client_closes(1, WAIT));
    assert_eq!(sim.client_closes()[0].code, Some(4000));
    assert_eq!(session.seq, 2);
    // Another process resumes it: no Identify, the missed events replayed.
    sim.dispatch("MESSAGE_CREATE", json!({"missed": true}));
    let saved = serde_json::to_string(&session).unwrap();
    let mut second =
        Shard::new(config(&sim, Compression::None).resume_from(serde_json::from_str(&saved).unwrap())).unwrap();
    block_on(async {
        let seen = collect_events(&mut second, 1).await;
        assert_eq!(payload_seqs(&seen), [3]);
        assert_eq!(second.close(CloseMode::Final).await, None);
    });
    assert_eq!(sim.identifies().len(), 1);
    assert_eq!(sim.resumes().len(), 1);
    assert!(sim.wait_for_client_closes(2, WAIT));
    assert_eq!(sim.client_closes()[1].code, Some(1000));
}

#[test]
fn commands_are_queued_until_ready_and_sent_with_exact_bytes() {
    let sim = simulator(false);
    let mut shard = Shard::new(config(&sim, Compression::None)).unwrap();
    let handle = shard.handle();
    let presence = discord_gateway_stream::commands::Presence::online();
    handle.update_presence(&presence).unwrap();
    handle
        .request_guild_members(&discord_gateway_stream::commands::RequestGuildMembers::query(81384788765712384, "", 0))
        .unwrap();
    block_on(async {
        next_dispatch(&mut shard).await;
        let mut seen = Vec::new();
        let commands_seen = || sim.client_frames().iter().filter(|f| matches!(f.op, Some(3 | 8))).count() == 2;
        let arrived = drive_while(&mut shard, &mut seen, until(commands_seen, WAIT)).await;
        assert!(arrived);
    });
    let frames = sim.client_frames();
    let ops: Vec<u64> = frames.iter().filter_map(|f| f.op).filter(|op| *op != 1).collect();
    assert_eq!(ops, [2, 3, 8], "Identify first, then the queued commands");
    let request = frames.iter().find(|f| f.op == Some(8)).unwrap();
    assert_eq!(request.raw, r#"{"op":8,"d":{"guild_id":"81384788765712384","query":"","limit":0}}"#);
}

#[test]
fn refusals_before_hello_back_off_with_growing_gaps() {
    // docs/connection.md#reconnect-pacing: a peer reconnects without growing
    // backoff when refused before Hello.
    let sim = Simulator::start(SimulatorConfig::new().on_connect(OnConnect::Close(1011))).unwrap();
    let policy = ReconnectPolicy {
        base: Duration::from_millis(100),
        floor: Duration::from_millis(50),
        cap: Duration::from_secs(5),
        ..ReconnectPolicy::default()
    };
    let mut shard = Shard::new(config(&sim, Compression::None).reconnect_policy(policy)).unwrap();
    let mut seen = Vec::new();
    let reached =
        block_on(drive_while(&mut shard, &mut seen, until(|| sim.connections().len() >= 6, Duration::from_secs(20))));
    assert!(reached);
    let opened: Vec<Instant> = sim.connections().iter().map(|c| c.opened_at).collect();
    let gaps: Vec<Duration> = opened.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.iter().all(|g| *g >= Duration::from_millis(50)), "{gaps:?}");
    let early: Duration = gaps[..2].iter().sum();
    let late: Duration = gaps[3..5].iter().sum();
    assert!(late > early, "backoff grows: {gaps:?}");
}

#[test]
fn a_paused_consumer_with_a_spawned_driver_keeps_the_connection_alive() {
    // Slow consumers: heartbeats continue while the application sleeps 3 intervals.
    let sim = Simulator::start(
        SimulatorConfig::new().heartbeat_interval(Duration::from_millis(300)).enforce_heartbeats(true),
    )
    .unwrap();
    let mut shard = Shard::new(config(&sim, Compression::ZlibStream)).unwrap();
    let driver = shard.take_driver().unwrap();
    let runner = std::thread::spawn(move || async_io::block_on(driver));
    block_on(async {
        next_dispatch(&mut shard).await;
        sim.dispatch_many((0..10).map(|i| ("MESSAGE_CREATE", json!({ "n": i }))));
        std::thread::sleep(Duration::from_millis(900));
        let seen = collect_events(&mut shard, 10).await;
        assert_eq!(payload_seqs(&seen), (2..12).collect::<Vec<_>>());
    });
    assert_eq!(sim.connections().len(), 1, "no reconnect: heartbeats kept going");
    assert!(sim.heartbeats().len() >= 2);
    block_on(shard.close(CloseMode::Final));
    runner.join().unwrap();
}

#[test]
fn a_paused_consumer_without_a_spawned_driver_resumes_and_loses_nothing() {
    let sim = Simulator::start(
        SimulatorConfig::new().heartbeat_interval(Duration::from_millis(300)).enforce_heartbeats(true),
    )
    .unwrap();
    let mut shard = Shard::new(config(&sim, Compression::ZlibStream)).unwrap();
    block_on(async {
        next_dispatch(&mut shard).await;
        sim.dispatch_many((0..5).map(|i| ("MESSAGE_CREATE", json!({ "n": i }))));
        std::thread::sleep(Duration::from_millis(900));
        sim.dispatch_many((5..10).map(|i| ("MESSAGE_CREATE", json!({ "n": i }))));
        let seen = collect_events(&mut shard, 10).await;
        assert_eq!(payload_seqs(&seen), (2..12).collect::<Vec<_>>());
    });
}

#[test]
fn the_token_never_appears_in_logs_at_any_level() {
    let capture = LogCapture::default();
    let token = "SECRET.token-value.do-not-log";
    let sim = simulator(true);
    tracing::dispatcher::with_default(&capture.dispatch(tracing::Level::TRACE), || {
        let shard = Shard::new(config(&sim, Compression::ZlibStream)).unwrap();
        let shard_debug = format!("{shard:?} {:?}", config(&sim, Compression::ZlibStream));
        assert!(!shard_debug.contains("sim-token"));
        drop(shard);
        let config = Config::new(token, Intents::GUILDS)
            .base_url(sim.url())
            .reconnect_policy(fast_policy())
            .min_heartbeat_interval(Duration::from_millis(100));
        let mut shard = Shard::new(config).unwrap();
        block_on(async {
            next_dispatch(&mut shard).await; // identify
            sim.drop_connection();
            sim.dispatch("MESSAGE_CREATE", json!({}));
            collect_events(&mut shard, 1).await; // resume
            sim.close(4004);
            while next(&mut shard).await.expect("the fatal error before the end").is_ok() {}
        });
    });
    let logs = capture.text();
    assert!(logs.contains("identifying") && logs.contains("resuming"), "logs were captured: {logs}");
    assert!(!logs.contains(token), "token leaked into logs");
    assert!(!logs.contains("SECRET"), "token leaked into logs");
}

#[test]
fn an_event_filter_delivers_only_named_events_across_a_resume() {
    let sim = simulator(true);
    let mut shard = Shard::new(config(&sim, Compression::ZlibStream).events(["MESSAGE_CREATE"])).unwrap();
    block_on(async {
        // s = 2, 4, 6: MESSAGE_CREATE; s = 3, 5, 7: TYPING_START.
        let mixed = |from: u64| {
            (from..from + 6).map(|i| (if i % 2 == 0 { "MESSAGE_CREATE" } else { "TYPING_START" }, json!({ "n": i })))
        };
        let mut seen = Vec::new();
        // READY is not delivered: wait for the Identify, driving the shard.
        let identified = drive_while(&mut shard, &mut seen, until(|| !sim.identifies().is_empty(), WAIT)).await;
        assert!(identified && seen.is_empty());
        sim.dispatch_many(mixed(0));
        for _ in 0..3 {
            seen.push(next_dispatch(&mut shard).await);
        }
        // The last dispatch, s = 7, is filtered out; a heartbeat carrying 7
        // shows the shard counted it all the same.
        let beat_7 = || sim.heartbeats().iter().any(|f| f.value.as_ref().is_some_and(|v| v["d"] == 7));
        assert!(drive_while(&mut shard, &mut seen, until(beat_7, WAIT)).await, "a heartbeat with d = 7");
        assert!(sim.reconnect());
        sim.dispatch_many(mixed(6));
        for _ in 0..3 {
            seen.push(next_dispatch(&mut shard).await);
        }
        // READY (s=1) and RESUMED are handled, not delivered; every second
        // dispatch is filtered out, yet each seq arrives once.
        assert!(seen.iter().all(|d| d.event() == "MESSAGE_CREATE"));
        assert_eq!(seen.iter().map(Dispatch::seq).collect::<Vec<_>>(), vec![2, 4, 6, 8, 10, 12]);
    });
    let resumes = sim.resumes();
    assert_eq!(resumes.len(), 1, "the filter does not cost the session");
    assert_eq!(resumes[0].value.as_ref().map(|v| v["d"]["seq"].clone()), Some(json!(7)), "resumed from the filtered s");
    assert_eq!(sim.identifies().len(), 1);
}
