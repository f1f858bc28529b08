//! The simulator serves many shards at once: identify concurrency buckets
//! (`docs/rate-limits.md#identify-concurrency`), guild routing across shard
//! sets (`docs/sharding.md#shard-formula`) and per-shard controls, checked with
//! a raw tungstenite client.
#![cfg(feature = "testing")]

mod support;

use std::thread;
use std::time::{Duration, Instant};

use discord_gateway_stream::testing::{IdentifyTooFast, Simulator, SimulatorConfig};
use discord_gateway_stream::ShardId;
use serde_json::{json, Value};
use support::raw_client::{Client, Received, INTENTS, QUIET, TOKEN, WAIT};

/// A window short enough to wait out in a test.
const WINDOW: Duration = Duration::from_millis(300);
/// A window no test waits out, so "too fast" holds even on a loaded machine.
const LONG_WINDOW: Duration = Duration::from_secs(30);

fn shard(id: u32, total: u32) -> ShardId {
    ShardId { id, total }
}

fn sim(config: SimulatorConfig) -> Simulator {
    Simulator::start(config).expect("start")
}

/// Sends an Identify with `shard` (`None`: without the field).
fn identify(c: &mut Client, shard: Option<ShardId>) {
    let mut d = json!({
        "token": TOKEN,
        "properties": { "os": "linux", "browser": "sim-test", "device": "sim-test" },
        "intents": INTENTS,
    });
    if let (Some(s), Some(obj)) = (shard, d.as_object_mut()) {
        obj.insert("shard".into(), json!([s.id, s.total]));
    }
    c.send(&json!({ "op": 2, "d": d }));
}

/// Connects, reads Hello and identifies as `shard`, without reading the answer.
fn connect_and_identify(sim: &Simulator, shard: Option<ShardId>) -> Client {
    let mut c = Client::plain(&sim.url());
    c.hello();
    identify(&mut c, shard);
    c
}

/// Reads READY and returns its `d`.
fn ready(c: &mut Client) -> Value {
    let ready = c.payload();
    assert_eq!(ready["t"], "READY", "{ready}");
    ready["d"].clone()
}

/// Connects, identifies as `shard` and reads READY; returns the client and its session id.
fn start_shard(sim: &Simulator, shard: ShardId) -> (Client, String) {
    let mut c = connect_and_identify(sim, Some(shard));
    let d = ready(&mut c);
    assert_eq!(d["shard"], json!([shard.id, shard.total]));
    let session = d["session_id"].as_str().expect("session_id").to_owned();
    (c, session)
}

fn assert_invalid_session_false(c: &mut Client) {
    let op9 = c.payload();
    assert_eq!(op9, json!({ "t": null, "s": null, "op": 9, "d": false }));
}

fn assert_quiet(c: &mut Client) {
    match c.recv(QUIET) {
        Received::Timeout => {}
        other => panic!("expected nothing, got {other:?}"),
    }
}

/// The next dispatch; asserts its event name and returns `(s, d)`.
fn dispatch(c: &mut Client, event: &str) -> (u64, Value) {
    let p = c.payload();
    assert_eq!((p["op"].clone(), p["t"].clone()), (json!(0), json!(event)), "{p}");
    (p["s"].as_u64().expect("s"), p["d"].clone())
}

// docs/rate-limits.md#identify-concurrency: identify concurrency.

#[test]
fn second_identify_in_a_bucket_within_the_window_gets_op9_d_false() {
    // docs/rate-limits.md#identify-concurrency: the bucket is
    // shard_id % max_concurrency; one Identify per bucket per window, and one
    // over the limit is answered with op 9.
    let sim = sim(SimulatorConfig::new().max_concurrency(2).identify_window(LONG_WINDOW));
    let (_a, _) = start_shard(&sim, shard(0, 4));
    // Shard 2 of 4 shares bucket 0 with shard 0.
    let mut b = connect_and_identify(&sim, Some(shard(2, 4)));
    assert_invalid_session_false(&mut b);

    let violations = sim.identify_violations();
    assert_eq!(violations.len(), 1, "{violations:?}");
    let v = &violations[0];
    assert_eq!((v.connection, v.shard, v.bucket, v.accepted), (1, Some(shard(2, 4)), Some(0), false));
    let log = sim.identify_log();
    assert_eq!(log.len(), 2);
    assert_eq!((log[0].shard, log[0].bucket, log[0].accepted), (Some(shard(0, 4)), Some(0), true));
    assert!(log[0].at <= log[1].at);
    // The rejected Identify started no session.
    assert_eq!(sim.shard_session_id(shard(2, 4)), None);
    assert_eq!(sim.live_shards(), vec![shard(0, 4)]);
    assert!(sim.connections()[1].end.is_none(), "op 9 leaves the connection open");
}

#[test]
fn rejected_identify_does_not_restart_the_window_and_a_later_one_is_accepted() {
    // docs/rate-limits.md#identify-concurrency: the bucket's clock runs from
    // its last *accepted* Identify; the connection that got op 9 may identify
    // again once the window is over.
    let sim = sim(SimulatorConfig::new().max_concurrency(1).identify_window(WINDOW));
    let (_a, _) = start_shard(&sim, shard(0, 2));
    let accepted_at = sim.identify_log()[0].at;
    let mut b = connect_and_identify(&sim, Some(shard(1, 2)));
    assert_invalid_session_false(&mut b);

    let wait = (accepted_at + WINDOW).saturating_duration_since(Instant::now());
    thread::sleep(wait + Duration::from_millis(20));
    identify(&mut b, Some(shard(1, 2)));
    let d = ready(&mut b);
    assert_eq!(d["shard"], json!([1, 2]));
    let log = sim.identify_log();
    assert_eq!(log.iter().map(|r| r.accepted).collect::<Vec<_>>(), [true, false, true]);
    assert!(log[2].at.duration_since(accepted_at) >= WINDOW);
    assert_eq!(sim.identify_violations().len(), 1);
    assert!(sim.wait_for_live_shards(2, WAIT));
    assert_eq!(sim.live_shards(), vec![shard(0, 2), shard(1, 2)]);
}

#[test]
fn too_fast_identify_closes_with_the_configured_code() {
    // docs/rate-limits.md#identify-concurrency with
    // `on_identify_too_fast(Close(4009))`; 4009 is not resumable
    // (docs/close-codes.md#gateway-close-codes).
    let config = SimulatorConfig::new()
        .max_concurrency(1)
        .identify_window(LONG_WINDOW)
        .on_identify_too_fast(IdentifyTooFast::Close(4009));
    let sim = sim(config);
    let (_a, _) = start_shard(&sim, shard(0, 2));
    let mut b = connect_and_identify(&sim, Some(shard(1, 2)));
    assert_eq!(b.expect_close(), Some(4009));
    assert_eq!(sim.identify_violations().len(), 1);
    assert_eq!(sim.live_shards(), vec![shard(0, 2)]);

    // The setter switches to op 9 for later Identifies.
    sim.set_on_identify_too_fast(IdentifyTooFast::InvalidSession);
    let mut c = connect_and_identify(&sim, Some(shard(1, 2)));
    assert_invalid_session_false(&mut c);
    assert_eq!(sim.identify_violations().len(), 2);
}

#[test]
fn identifies_in_different_buckets_are_accepted_at_the_same_time() {
    // docs/rate-limits.md#identify-concurrency: shards 0..max_concurrency may identify together.
    let sim = sim(SimulatorConfig::new().max_concurrency(4).identify_window(LONG_WINDOW));
    let mut clients: Vec<Client> = (0..4).map(|id| connect_and_identify(&sim, Some(shard(id, 8)))).collect();
    for c in &mut clients {
        ready(c);
    }
    assert!(sim.wait_for_identifies(4, WAIT));
    assert!(sim.identify_violations().is_empty());
    let mut buckets: Vec<_> = sim.identify_log().iter().map(|r| r.bucket).collect();
    buckets.sort_unstable();
    assert_eq!(buckets, [Some(0), Some(1), Some(2), Some(3)]);
    assert_eq!(sim.live_shards(), (0..4).map(|id| shard(id, 8)).collect::<Vec<_>>());
}

#[test]
fn identify_without_shard_counts_as_shard_zero() {
    // docs/rate-limits.md#identify-concurrency buckets by shard_id; an Identify
    // without `shard` is shard [0, 1] (docs/sharding.md#identify-shard-field).
    let sim = sim(SimulatorConfig::new().max_concurrency(2).identify_window(LONG_WINDOW));
    let mut a = connect_and_identify(&sim, None);
    let d = ready(&mut a);
    // docs/sharding.md#identify-shard-field
    assert!(d.get("shard").is_none(), "READY echoes shard only when sent");
    assert_eq!(sim.live_shards(), vec![ShardId::ONE]);
    // Shard 2 of 4 is in bucket 0 too.
    let mut b = connect_and_identify(&sim, Some(shard(2, 4)));
    assert_invalid_session_false(&mut b);
    let log = sim.identify_log();
    assert_eq!((log[0].shard, log[0].bucket), (None, Some(0)));
    assert_eq!((log[1].bucket, log[1].accepted), (Some(0), false));
}

#[test]
fn resume_is_not_limited_by_identify_concurrency() {
    // docs/rate-limits.md#daily-session-start-budget: the limits count
    // Identify calls; resumes are not counted.
    let sim = sim(SimulatorConfig::new().max_concurrency(1).identify_window(LONG_WINDOW));
    let (mut a, session) = start_shard(&sim, shard(0, 1));
    assert!(sim.drop_shard_connection(shard(0, 1)));
    a.expect_dropped();
    let mut again = Client::plain(&sim.url());
    again.hello();
    again.send_resume(&session, 1);
    let (_, _) = dispatch(&mut again, "RESUMED");
    assert!(sim.identify_violations().is_empty());
    assert_eq!(sim.live_shards(), vec![shard(0, 1)]);
}

#[test]
fn without_max_concurrency_every_identify_is_accepted() {
    // The limit is off by default: buckets are `None`.
    let sim = sim(SimulatorConfig::new());
    let (_a, first) = start_shard(&sim, shard(0, 1));
    let (_b, second) = start_shard(&sim, shard(0, 1));
    assert_ne!(first, second);
    let log = sim.identify_log();
    assert!(log.iter().all(|r| r.accepted && r.bucket.is_none()), "{log:?}");
    // Both sessions of [0, 1] are live; the newest is the shard's session.
    assert_eq!(sim.live_shards(), vec![shard(0, 1), shard(0, 1)]);
    assert_eq!(sim.shard_session_id(shard(0, 1)), Some(second));

    // The setter turns the limit on for later Identifies.
    sim.set_max_concurrency(1);
    sim.set_identify_window(LONG_WINDOW);
    let (_c, _) = start_shard(&sim, shard(0, 1));
    let mut d = connect_and_identify(&sim, Some(shard(0, 1)));
    assert_invalid_session_false(&mut d);
}

// docs/sharding.md#shard-formula: sharding.

#[test]
fn dispatch_guild_goes_to_shard_guild_id_shifted_22_mod_total() {
    // docs/sharding.md#shard-formula: shard_id = (guild_id >> 22) % num_shards.
    let sim = sim(SimulatorConfig::new());
    let mut clients: Vec<Client> = (0..3).map(|id| start_shard(&sim, shard(id, 3)).0).collect();
    assert!(sim.wait_for_live_shards(3, WAIT));
    let guild = (7u64 << 22) | 12345; // 7 % 3 == 1; the low 22 bits do not count.
    let reached = sim.dispatch_guild(guild, "MESSAGE_CREATE", json!({ "guild_id": guild.to_string() }));
    // READY was s=1 on that session.
    assert_eq!(reached, vec![(shard(1, 3), 2)]);
    let (seq, d) = dispatch(&mut clients[1], "MESSAGE_CREATE");
    assert_eq!((seq, d), (2, json!({ "guild_id": guild.to_string() })));
    assert_quiet(&mut clients[0]);
    assert_quiet(&mut clients[2]);
    assert_eq!(sim.shard_session_log(shard(1, 3)).len(), 2);
    assert_eq!(sim.shard_session_log(shard(0, 3)).len(), 1);
}

#[test]
fn dispatch_guild_reaches_both_shard_sets_while_resharding() {
    // docs/sharding.md#several-totals-side-by-side: sessions with different totals may run
    // side by side (resharding with no downtime); each set gets the guild on
    // its own routing shard.
    let sim = sim(SimulatorConfig::new());
    let (mut old_one, _) = start_shard(&sim, shard(1, 2));
    let (mut old_zero, _) = start_shard(&sim, shard(0, 2));
    let (mut new_three, _) = start_shard(&sim, shard(3, 4));
    let (mut new_one, _) = start_shard(&sim, shard(1, 4));
    let guild = 3u64 << 22; // 3 % 2 == 1, 3 % 4 == 3
    let reached = sim.dispatch_guild(guild, "GUILD_UPDATE", json!({ "id": guild.to_string() }));
    assert_eq!(reached, vec![(shard(1, 2), 2), (shard(3, 4), 2)]);
    dispatch(&mut old_one, "GUILD_UPDATE");
    dispatch(&mut new_three, "GUILD_UPDATE");
    assert_quiet(&mut old_zero);
    assert_quiet(&mut new_one);

    // A guild whose routing shard has no session in a set only reaches the other set.
    // Invalidate while its connection is live (after the client goes, the
    // simulator may already have seen the EOF and have no connection to target).
    assert!(sim.invalid_session_shard(shard(0, 2), false));
    drop(old_zero);
    let guild = 4u64 << 22; // 4 % 2 == 0 (gone), 4 % 4 == 0 (none)
    assert_eq!(sim.dispatch_guild(guild, "GUILD_UPDATE", json!({})), vec![]);
    let guild = 5u64 << 22; // 5 % 2 == 1, 5 % 4 == 1
    assert_eq!(sim.dispatch_guild(guild, "GUILD_UPDATE", json!({})), vec![(shard(1, 2), 3), (shard(1, 4), 2)]);
    dispatch(&mut old_one, "GUILD_UPDATE");
    dispatch(&mut new_one, "GUILD_UPDATE");
}

#[test]
fn dispatch_to_shard_waits_in_the_log_while_the_shard_is_away() {
    // docs/connection.md#resume-and-resumed, docs/connection.md#replay-and-duplicates:
    // a shard's dispatches committed while it is disconnected are replayed on
    // resume; other shards are not affected.
    let sim = sim(SimulatorConfig::new());
    let (mut zero, _) = start_shard(&sim, shard(0, 2));
    let (mut one, session) = start_shard(&sim, shard(1, 2));
    assert!(sim.drop_shard_connection(shard(1, 2)));
    one.expect_dropped();
    assert_eq!(sim.live_shards(), vec![shard(0, 2)]);
    assert_eq!(sim.dispatch_to_shard(shard(1, 2), "TYPING_START", json!({ "n": 1 })), Some(2));
    assert_eq!(sim.dispatch_to_shard(shard(0, 2), "TYPING_START", json!({ "n": 0 })), Some(2));
    assert_eq!(sim.dispatch_to_shard(shard(0, 3), "TYPING_START", json!({})), None);
    assert_eq!(dispatch(&mut zero, "TYPING_START"), (2, json!({ "n": 0 })));

    let mut back = Client::plain(&sim.url());
    back.hello();
    back.send_resume(&session, 1);
    assert_eq!(dispatch(&mut back, "TYPING_START"), (2, json!({ "n": 1 })));
    assert_eq!(dispatch(&mut back, "RESUMED").0, 3);
    // The resumed session keeps its shard.
    assert!(sim.wait_for_live_shards(2, WAIT));
    assert_eq!(sim.live_shards(), vec![shard(0, 2), shard(1, 2)]);
    assert_eq!(sim.dispatch_to_shard(shard(1, 2), "TYPING_START", json!({ "n": 2 })), Some(4));
    assert_eq!(dispatch(&mut back, "TYPING_START"), (4, json!({ "n": 2 })));
    let events: Vec<_> = sim.shard_session_log(shard(1, 2)).into_iter().map(|l| l.event).collect();
    assert_eq!(events, ["READY", "TYPING_START", "TYPING_START"]);
}

#[test]
fn per_shard_controls_target_that_shards_connection() {
    // docs/close-codes.md#gateway-close-codes: 4000 is resumable; op 7
    // (docs/connection.md#opcodes) asks only that shard to reconnect.
    let sim = sim(SimulatorConfig::new());
    let (mut zero, _) = start_shard(&sim, shard(0, 2));
    let (mut one, _) = start_shard(&sim, shard(1, 2));
    assert!(sim.close_shard(shard(0, 2), 4000));
    assert_eq!(zero.expect_close(), Some(4000));
    assert_quiet(&mut one);
    assert_eq!(sim.live_shards(), vec![shard(1, 2)]);
    // 4000 keeps the session: it still takes dispatches for a resume.
    assert!(sim.shard_session_id(shard(0, 2)).is_some());
    assert!(!sim.close_shard(shard(0, 2), 4000), "no live connection left");

    assert!(sim.reconnect_shard(shard(1, 2)));
    let op7 = one.payload();
    assert_eq!(op7["op"], 7);
    assert!(sim.live_shards().is_empty());
    assert!(!sim.reconnect_shard(shard(1, 2)));

    // A non-resumable close code invalidates that shard's session only.
    let (mut two, _) = start_shard(&sim, shard(0, 3));
    let (_three, _) = start_shard(&sim, shard(1, 3));
    assert!(sim.close_shard(shard(0, 3), 4009));
    assert_eq!(two.expect_close(), Some(4009));
    assert_eq!(sim.shard_session_id(shard(0, 3)), None);
    assert!(sim.shard_session_id(shard(1, 3)).is_some());
    assert_eq!(sim.live_shards(), vec![shard(1, 3)]);
}

#[test]
fn dispatch_still_goes_to_the_current_session() {
    // With several shards, `dispatch` keeps its meaning: the newest READY/RESUMED.
    let sim = sim(SimulatorConfig::new());
    let (mut zero, _) = start_shard(&sim, shard(0, 2));
    let (mut one, session) = start_shard(&sim, shard(1, 2));
    assert_eq!(sim.session_id(), Some(session));
    assert_eq!(sim.dispatch("MESSAGE_CREATE", json!({})), Some(2));
    dispatch(&mut one, "MESSAGE_CREATE");
    assert_quiet(&mut zero);
}

/// Opens `n` connections from `n` threads at once; each identifies as shard
/// `[i, n]` and waits for READY. Returns the clients, by shard id.
fn open_shards(sim: &Simulator, n: u32) -> Vec<Client> {
    let url = sim.url();
    let threads: Vec<_> = (0..n)
        .map(|id| {
            let url = url.clone();
            thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    let mut c = Client::plain(&url);
                    c.hello();
                    identify(&mut c, Some(shard(id, n)));
                    ready(&mut c);
                    c
                })
                .expect("spawn")
        })
        .collect();
    threads.into_iter().map(|t| t.join().expect("client thread")).collect()
}

fn many_shards(n: u32) {
    let sim = sim(SimulatorConfig::new().max_concurrency(n).identify_window(LONG_WINDOW));
    let started = Instant::now();
    let mut clients = open_shards(&sim, n);
    assert!(sim.wait_for_live_shards(n as usize, WAIT));
    eprintln!("{n} shards live in {:?}", started.elapsed());
    assert!(sim.identify_violations().is_empty());
    assert_eq!(sim.live_shards(), (0..n).map(|id| shard(id, n)).collect::<Vec<_>>());
    for id in (0..n).step_by(7) {
        let guild = u64::from(id + n) << 22;
        assert_eq!(sim.dispatch_guild(guild, "MESSAGE_CREATE", json!({ "id": id })), vec![(shard(id, n), 2)]);
    }
    for id in (0..n).step_by(7) {
        let c = clients.get_mut(id as usize).expect("client");
        assert_eq!(dispatch(c, "MESSAGE_CREATE"), (2, json!({ "id": id })));
    }
    assert!(sim.close_shard(shard(n - 1, n), 4000));
    assert_eq!(clients.last_mut().expect("client").expect_close(), Some(4000));
    assert!(sim.wait_for_live_shards(n as usize - 1, WAIT));
    assert_eq!(sim.live_shards().len(), n as usize - 1);
}

#[test]
fn a_hundred_simultaneous_shards_each_get_their_own_session() {
    // docs/sharding.md#several-totals-side-by-side: one session per [id, n], all identified
    // at once in distinct buckets (docs/rate-limits.md#identify-concurrency).
    many_shards(100);
}

#[test]
#[ignore = "slow: 1,000 client threads; run with --ignored"]
fn a_thousand_simultaneous_shards_each_get_their_own_session() {
    many_shards(1000);
}
