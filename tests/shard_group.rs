//! `ShardGroup` against the simulator: many shards, one merged stream, identify
//! pacing, isolation of failures, resharding and zero-downtime handover
//! (`docs/connection.md#resume-and-resumed`,
//! `docs/close-codes.md#our-own-close-codes`,
//! `docs/close-codes.md#gateway-close-codes`,
//! `docs/rate-limits.md#identify-concurrency`,
//! `docs/sharding.md#shard-formula`, `docs/edge-cases.md#identify-collisions`).
#![cfg(all(feature = "testing", feature = "async-std"))]

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use discord_gateway_stream::identify::{
    IdentifyError, IdentifyLimits, IdentifyPermit, IdentifyQueue, LocalIdentifyQueue, SessionStartLimit,
};
mod support;

use discord_gateway_stream::protocol::Status;
use discord_gateway_stream::testing::{Simulator, SimulatorConfig};
use discord_gateway_stream::transport::{AsyncIoConnector, Connector, Target};
use discord_gateway_stream::{
    shard_for_guild, CloseMode, Compression, Config, ControlError, Dispatch, GroupError, Intents, Session, ShardError,
    ShardGroup, ShardGroupBuilder, ShardId, ShardSession,
};
use futures::future::BoxFuture;
use futures::StreamExt;
use serde_json::json;
use support::client::sim_config;

const WAIT: Duration = Duration::from_secs(20);
const WINDOW: Duration = Duration::from_millis(300);
/// The queue's spacing beyond the window. Its default (2%, 6 ms here) covers
/// the jitter between a grant and the Identify's arrival on an idle machine;
/// these tests run beside many others on two cores, where a shard identifying
/// a few milliseconds late made the next Identify of its bucket arrive inside
/// the simulator's window (op 9, one Identify more than the test expects).
const MARGIN: Duration = Duration::from_millis(50);

fn simulator(max_concurrency: u32) -> Simulator {
    Simulator::start(
        SimulatorConfig::new()
            .heartbeat_interval(Duration::from_millis(500))
            .max_concurrency(max_concurrency)
            .identify_window(WINDOW),
    )
    .expect("simulator starts")
}

fn config(sim: &Simulator) -> Config {
    sim_config(sim.url(), Intents::GUILDS).compression(Compression::ZlibStream)
}

fn queue(max_concurrency: u32) -> LocalIdentifyQueue {
    LocalIdentifyQueue::new(IdentifyLimits::new(max_concurrency).with_window(WINDOW).with_margin(MARGIN))
}

/// A group whose connections run on async-std's executor, so the test
/// thread may block on the simulator while they heartbeat.
fn spawned(builder: ShardGroupBuilder) -> ShardGroup {
    builder
        .spawn_drivers(|driver| {
            async_std::task::spawn(driver);
        })
        .build()
        .expect("group builds")
}

fn shard(id: u32, total: u32) -> ShardId {
    ShardId::new(id, total).expect("valid shard")
}

fn block_on<T>(future: impl Future<Output = T>) -> T {
    async_io::block_on(future)
}

/// Whether `future` completes within `limit` (it is dropped otherwise).
fn finishes_within(limit: Duration, future: impl Future) -> bool {
    block_on(async {
        let timer = async_io::Timer::after(limit);
        matches!(futures::future::select(std::pin::pin!(future), timer).await, futures::future::Either::Left(_))
    })
}

async fn next(group: &mut ShardGroup) -> Result<Dispatch, GroupError> {
    let timeout = async_io::Timer::after(WAIT);
    match futures::future::select(group.next(), timeout).await {
        futures::future::Either::Left((item, _)) => item.expect("group stream ended"),
        futures::future::Either::Right(_) => panic!("no group item within {WAIT:?}"),
    }
}

async fn next_dispatch(group: &mut ShardGroup) -> Dispatch {
    next(group).await.expect("no shard error")
}

/// Reads until `count` dispatches named `event` arrived; returns them.
async fn collect(group: &mut ShardGroup, event: &str, count: usize) -> Vec<Dispatch> {
    let mut got = Vec::new();
    while got.len() < count {
        let dispatch = next_dispatch(group).await;
        if dispatch.event() == event {
            got.push(dispatch);
        }
    }
    got
}

/// Reads READYs (and RESUMEDs) until every shard in `shards` has sent one.
async fn until_live(group: &mut ShardGroup, shards: &[ShardId], event: &str) {
    let mut waiting: BTreeSet<ShardId> = shards.iter().copied().collect();
    while !waiting.is_empty() {
        let dispatch = next_dispatch(group).await;
        if dispatch.event() == event {
            waiting.remove(&dispatch.shard());
        }
    }
}

fn wait_until(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "condition not met within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Asserts that the simulator accepted no two Identifies of one bucket
/// within the window (`docs/rate-limits.md#identify-concurrency`).
fn assert_buckets_spaced(sim: &Simulator, max_concurrency: u32) {
    let log = sim.identify_log();
    assert!(sim.identify_violations().is_empty(), "identifies too fast: {:?}", sim.identify_violations());
    for bucket in 0..max_concurrency {
        let times: Vec<Instant> = log.iter().filter(|r| r.accepted && r.bucket == Some(bucket)).map(|r| r.at).collect();
        for pair in times.windows(2) {
            // The client's timer and the simulator's clock differ by
            // scheduling only; allow 10 ms of it.
            assert!(pair[1] - pair[0] + Duration::from_millis(10) >= WINDOW, "bucket {bucket}: {times:?}");
        }
    }
}

/// `docs/rate-limits.md#identify-concurrency` and
/// `docs/edge-cases.md#identify-collisions`: with the queue, every shard
/// identifies once, one per bucket per window, buckets in parallel; the
/// simulator sees no violation. Driven only by polling the group (no spawned
/// drivers).
#[test]
fn every_shard_identifies_once_paced_by_its_bucket() {
    let sim = simulator(2);
    let mut group = ShardGroup::builder(config(&sim), 6).identify_queue(queue(2)).build().unwrap();
    let all: Vec<ShardId> = (0..6).map(|id| shard(id, 6)).collect();
    let started = Instant::now();
    block_on(until_live(&mut group, &all, "READY"));
    // Three rounds of two buckets: at least two windows.
    assert!(started.elapsed() >= WINDOW * 2, "{:?}", started.elapsed());
    let t0 = sim.identify_log().first().map(|r| r.at).unwrap();
    let log: Vec<_> = sim.identify_log().iter().map(|r| (r.at - t0, r.shard, r.accepted)).collect();
    assert_eq!(sim.identifies().len(), 6, "{log:?}");
    assert_buckets_spaced(&sim, 2);
    assert_eq!(group.active_count(Some(6)), 6);
    let statuses = group.statuses();
    assert_eq!(statuses.len(), 6);
    assert!(statuses.iter().all(|(_, status)| *status == Status::Active), "{statuses:?}");
}

/// The negative control: a queue that claims more buckets than the gateway
/// allows makes the simulator reject identifies (op 9), so the test above
/// can fail. The shards still recover.
#[test]
fn a_queue_with_too_many_buckets_is_caught_by_the_simulator() {
    let sim = simulator(1);
    let group = spawned(ShardGroup::builder(config(&sim), 3).identify_queue(queue(3)));
    wait_until(|| sim.live_shards().len() == 3);
    assert!(!sim.identify_violations().is_empty());
    drop(group);
}

/// `docs/sharding.md#shard-formula`: dispatches of every shard reach the one
/// stream, each tagged with the shard whose session it came from, routed by
/// `(guild_id >> 22) % total`.
#[test]
fn dispatches_of_every_shard_arrive_tagged_with_their_shard() {
    let sim = simulator(4);
    let mut group = spawned(ShardGroup::builder(config(&sim), 4).identify_queue(queue(4)));
    let all: Vec<ShardId> = (0..4).map(|id| shard(id, 4)).collect();
    block_on(until_live(&mut group, &all, "READY"));
    let guilds: Vec<u64> = (0..12u64).map(|i| (i * 7 + 3) << 22).collect();
    for guild in &guilds {
        let reached = sim.dispatch_guild(*guild, "MESSAGE_CREATE", json!({ "guild_id": guild.to_string() }));
        assert_eq!(reached.len(), 1);
    }
    let got = block_on(collect(&mut group, "MESSAGE_CREATE", guilds.len()));
    for dispatch in &got {
        let value: serde_json::Value = dispatch.deserialize().unwrap();
        let guild: u64 = value["guild_id"].as_str().unwrap().parse().unwrap();
        assert_eq!(Some(dispatch.shard()), shard_for_guild(guild, 4), "guild {guild}");
    }
    let mut seen: Vec<u64> = got
        .iter()
        .map(|d| d.deserialize::<serde_json::Value>().unwrap()["guild_id"].as_str().unwrap().parse().unwrap())
        .collect();
    seen.sort_unstable();
    let mut expected = guilds.clone();
    expected.sort_unstable();
    assert_eq!(seen, expected, "each dispatch exactly once");
}

/// One busy shard cannot starve another: with 200 dispatches buffered on
/// shard 0 and one on shard 1, shard 1's arrives among the first few items.
#[test]
fn a_busy_shard_does_not_starve_the_others() {
    let sim = simulator(2);
    let mut group = spawned(ShardGroup::builder(config(&sim), 2).identify_queue(queue(2)));
    block_on(until_live(&mut group, &[shard(0, 2), shard(1, 2)], "READY"));
    for i in 0..200 {
        sim.dispatch_to_shard(shard(0, 2), "MESSAGE_CREATE", json!({ "n": i }));
    }
    sim.dispatch_to_shard(shard(1, 2), "MESSAGE_CREATE", json!({ "n": "quiet" }));
    // Let the spawned drivers read everything into their buffers (256 each).
    std::thread::sleep(Duration::from_secs(2));
    let first: Vec<Dispatch> = block_on(collect(&mut group, "MESSAGE_CREATE", 4));
    assert!(
        first.iter().any(|d| d.shard() == shard(1, 2)),
        "{:?}",
        first.iter().map(Dispatch::shard).collect::<Vec<_>>()
    );
}

/// `docs/close-codes.md#gateway-close-codes`: a fatal close on one shard
/// surfaces as that shard's error; the others keep their sessions and keep
/// delivering.
#[test]
fn a_fatal_close_stops_only_its_own_shard() {
    let sim = simulator(3);
    let mut group = spawned(ShardGroup::builder(config(&sim), 3).identify_queue(queue(3)));
    let all: Vec<ShardId> = (0..3).map(|id| shard(id, 3)).collect();
    block_on(until_live(&mut group, &all, "READY"));
    assert!(sim.close_shard(shard(1, 3), 4004));
    let error = match block_on(next(&mut group)) {
        Err(error) => error,
        Ok(dispatch) => panic!("unexpected {dispatch:?}"),
    };
    assert_eq!(error.shard, shard(1, 3));
    assert_eq!(error.error.close_code(), Some(4004));
    assert!(matches!(group.status(shard(1, 3)), Some(Status::Fatal(_))), "{:?}", group.status(shard(1, 3)));
    sim.dispatch_to_shard(shard(0, 3), "MESSAGE_CREATE", json!({ "n": 0 }));
    sim.dispatch_to_shard(shard(2, 3), "MESSAGE_CREATE", json!({ "n": 2 }));
    let got = block_on(collect(&mut group, "MESSAGE_CREATE", 2));
    let shards: BTreeSet<ShardId> = got.iter().map(Dispatch::shard).collect();
    assert_eq!(shards, [shard(0, 3), shard(2, 3)].into_iter().collect());
    assert_eq!(group.status(shard(0, 3)), Some(Status::Active));
    assert!(!group.is_running(shard(1, 3)));
    assert_eq!(sim.identifies().len(), 3, "no shard re-identified");
}

/// Counts permits asked for (Resumes never ask,
/// `docs/rate-limits.md#identify-concurrency`) and released.
#[derive(Clone)]
struct Counting {
    inner: LocalIdentifyQueue,
    acquired: Arc<AtomicUsize>,
    released: Arc<AtomicUsize>,
    released_at: Arc<std::sync::Mutex<Vec<(ShardId, Instant)>>>,
}

impl Counting {
    fn new(inner: LocalIdentifyQueue) -> Counting {
        Counting { inner, acquired: Arc::default(), released: Arc::default(), released_at: Arc::default() }
    }
}

impl IdentifyQueue for Counting {
    fn acquire(&self, shard: ShardId) -> BoxFuture<'static, Result<IdentifyPermit, IdentifyError>> {
        self.acquired.fetch_add(1, Ordering::SeqCst);
        let granting = self.inner.acquire(shard);
        let released = Arc::clone(&self.released);
        let released_at = Arc::clone(&self.released_at);
        Box::pin(async move {
            let inner = granting.await?;
            Ok(IdentifyPermit::on_release(move || {
                drop(inner);
                released_at.lock().unwrap().push((shard, Instant::now()));
                released.fetch_add(1, Ordering::SeqCst);
            }))
        })
    }
}

/// `docs/rate-limits.md#holding-the-bucket-until-ready`: each shard holds its identify
/// permit until its READY, then releases it (the local queue holds the bucket
/// that long).
#[test]
fn every_permit_is_held_until_ready_then_released() {
    let sim = simulator(2);
    let counting = Counting::new(queue(2));
    let all: Vec<ShardId> = (0..4).map(|id| shard(id, 4)).collect();
    let mut group = spawned(ShardGroup::builder(config(&sim), 4).identify_queue(counting.clone()));
    block_on(until_live(&mut group, &all, "READY"));
    wait_until(|| counting.released.load(Ordering::SeqCst) == 4);
    assert_eq!(counting.acquired.load(Ordering::SeqCst), 4);
    // Each release came after the simulator sent that shard's READY.
    let log = sim.identify_log();
    let sent = sim.server_frames();
    for (id, released) in counting.released_at.lock().unwrap().iter() {
        let connection = log.iter().find(|r| r.accepted && r.shard == Some(*id)).expect("identified").connection;
        let ready =
            sent.iter().find(|f| f.connection == connection && f.text.contains(r#""t":"READY""#)).expect("READY sent");
        assert!(*released >= ready.at, "shard {id} released its permit before READY was sent");
    }
}

/// `docs/connection.md#resume-and-resumed`,
/// `docs/close-codes.md#our-own-close-codes`: a zero-downtime deploy. The old
/// process shuts down with 4000 and hands its sessions (serialized) to the new
/// one, which resumes every shard without a single Identify or permit, and gets
/// every dispatch sent in between exactly once.
#[test]
fn a_new_process_resumes_every_shard_of_a_shut_down_group_without_identify() {
    let sim = simulator(2);
    let all: Vec<ShardId> = (0..4).map(|id| shard(id, 4)).collect();
    let mut old = spawned(ShardGroup::builder(config(&sim), 4).identify_queue(queue(2)));
    block_on(until_live(&mut old, &all, "READY"));
    for id in &all {
        sim.dispatch_to_shard(*id, "MESSAGE_CREATE", json!({ "phase": "before" }));
    }
    let sessions = block_on(old.shutdown());
    assert_eq!(sessions.len(), 4);
    // The old stream yields what its shards had received, then ends; the
    // rest of "before" was not read yet and will be replayed on resume.
    let drained: Vec<Dispatch> = block_on(old.by_ref().map(|item| item.expect("no error")).collect());
    let mut events: Vec<(ShardId, String)> =
        drained.iter().filter(|d| d.event() == "MESSAGE_CREATE").map(|d| (d.shard(), d.data().to_owned())).collect();
    // Every old connection is gone, each closed with 4000 (resumable). Under
    // load a shard may have reconnected (and resumed) before the shutdown, so
    // there can be more closes than shards.
    wait_until(|| sim.live_shards().is_empty() && sim.client_closes().len() >= 4);
    assert!(sim.client_closes().iter().all(|c| c.code == Some(4000)), "{:?}", sim.client_closes());

    // Dispatched while no process is connected: they wait for the resume.
    for id in &all {
        sim.dispatch_to_shard(*id, "MESSAGE_CREATE", json!({ "phase": "gap" }));
    }
    let saved = serde_json::to_string(&sessions).unwrap();
    let restored: Vec<ShardSession> = serde_json::from_str(&saved).unwrap();
    let counting = Counting::new(queue(2));
    let mut new = spawned(ShardGroup::builder(config(&sim), 4).identify_queue(counting.clone()).resume(restored));
    block_on(async {
        let mut resumed = BTreeSet::new();
        while resumed.len() < 4 || events.len() < 8 {
            let dispatch = next_dispatch(&mut new).await;
            match dispatch.event() {
                "RESUMED" => {
                    resumed.insert(dispatch.shard());
                }
                "MESSAGE_CREATE" => events.push((dispatch.shard(), dispatch.data().to_owned())),
                other => panic!("unexpected {other}"),
            }
        }
    });
    // Every dispatch of both phases exactly once, across the two processes.
    events.sort();
    let mut expected: Vec<(ShardId, String)> =
        all.iter().flat_map(|id| ["before", "gap"].map(|phase| (*id, format!(r#"{{"phase":"{phase}"}}"#)))).collect();
    expected.sort();
    assert_eq!(events, expected);
    assert_eq!(sim.identifies().len(), 4, "no Identify after the handover");
    assert_eq!(sim.resumes().len(), 4);
    assert_eq!(counting.acquired.load(Ordering::SeqCst), 0, "no permit asked for a Resume");
}

/// A shutdown right after start, while most shards still wait for a
/// connecting slot, hands back every session it was given: none is lost.
#[test]
fn a_shutdown_before_every_shard_connected_returns_every_session() {
    let sim = simulator(4);
    let all: Vec<ShardId> = (0..4).map(|id| shard(id, 4)).collect();
    let mut first = spawned(ShardGroup::builder(config(&sim), 4).identify_queue(queue(4)));
    block_on(until_live(&mut first, &all, "READY"));
    let sessions = block_on(first.shutdown());
    assert_eq!(sessions.len(), 4);
    let mut second = ShardGroup::builder(config(&sim), 4)
        .identify_queue(queue(4))
        .max_connecting(1)
        .resume(sessions.clone())
        .build()
        .unwrap();
    let statuses = second.statuses();
    assert_eq!(statuses.len(), 4);
    assert!(statuses.iter().all(|(_, s)| matches!(s, Status::Connecting { resume: true })), "{statuses:?}");
    let handed_back = block_on(second.shutdown());
    let ids = |list: &[ShardSession]| list.iter().map(|s| (s.shard, s.session.id.clone())).collect::<Vec<_>>();
    assert_eq!(ids(&handed_back), ids(&sessions));
    // And they still resume.
    let mut third = spawned(ShardGroup::builder(config(&sim), 4).identify_queue(queue(4)).resume(handed_back));
    block_on(until_live(&mut third, &all, "RESUMED"));
    assert_eq!(sim.identifies().len(), 4);
}

/// Restarting a running shard resumes it (no Identify); removing one
/// closes it with 1000 and the rest go on.
#[test]
fn restart_resumes_and_remove_closes_one_shard() {
    let sim = simulator(2);
    let all = [shard(0, 2), shard(1, 2)];
    let mut group = spawned(ShardGroup::builder(config(&sim), 2).identify_queue(queue(2)));
    block_on(until_live(&mut group, &all, "READY"));
    block_on(group.restart(shard(0, 2))).unwrap();
    block_on(until_live(&mut group, &[shard(0, 2)], "RESUMED"));
    assert_eq!(sim.identifies().len(), 2);
    assert_eq!(sim.resumes().len(), 1);
    assert!(group.add(shard(0, 2)).is_err(), "already running");
    let session = block_on(group.remove(shard(1, 2), CloseMode::Final)).unwrap();
    assert!(session.is_none(), "a final close ends the session");
    wait_until(|| sim.client_closes().iter().any(|c| c.code == Some(1000)));
    assert_eq!(group.shard_ids(), vec![shard(0, 2)]);
    sim.dispatch_to_shard(shard(0, 2), "MESSAGE_CREATE", json!({}));
    let got = block_on(collect(&mut group, "MESSAGE_CREATE", 1));
    assert_eq!(got[0].shard(), shard(0, 2));
}

/// `docs/sharding.md#several-totals-side-by-side`: resharding without downtime. A new total
/// runs beside the old one (a guild's events reach both), then the old set is
/// drained and closed.
#[test]
fn resharding_runs_the_new_total_beside_the_old_then_drains_it() {
    let sim = simulator(4);
    let old: Vec<ShardId> = (0..2).map(|id| shard(id, 2)).collect();
    let new: Vec<ShardId> = (0..4).map(|id| shard(id, 4)).collect();
    let mut group = spawned(ShardGroup::builder(config(&sim), 2).identify_queue(queue(4)));
    block_on(until_live(&mut group, &old, "READY"));
    group.add_range(4, 0..4).unwrap();
    block_on(until_live(&mut group, &new, "READY"));
    assert_eq!(group.active_count(Some(4)), 4);
    let guild = 5u64 << 22;
    assert_eq!(sim.dispatch_guild(guild, "MESSAGE_CREATE", json!({ "overlap": true })).len(), 2);
    let both: BTreeSet<ShardId> =
        block_on(collect(&mut group, "MESSAGE_CREATE", 2)).iter().map(Dispatch::shard).collect();
    assert_eq!(both, [shard(1, 2), shard(1, 4)].into_iter().collect());
    let closed = block_on(group.remove_total(2, CloseMode::Final));
    assert!(closed.is_empty(), "final closes return no session");
    assert_eq!(group.shard_ids(), new);
    wait_until(|| sim.live_shards().iter().all(|s| s.total == 4));
    assert_eq!(sim.dispatch_guild(guild, "MESSAGE_CREATE", json!({ "overlap": false })).len(), 1);
    let after = block_on(collect(&mut group, "MESSAGE_CREATE", 1));
    assert_eq!(after[0].shard(), shard(1, 4));
}

/// `docs/rate-limits.md#daily-session-start-budget`: with the daily budget down to
/// its reserve, the queue refuses and the shard stops with a clear error
/// instead of spending the last starts.
#[test]
fn an_exhausted_session_budget_stops_the_shard_with_a_clear_error() {
    let sim = simulator(2);
    let limit = SessionStartLimit { total: 1000, remaining: 1, reset_after: 3_600_000, max_concurrency: 2 };
    let queue = LocalIdentifyQueue::new(
        IdentifyLimits::from_session_start_limit(limit).with_window(WINDOW).with_margin(MARGIN),
    );
    let mut group = spawned(ShardGroup::builder(config(&sim), 2).identify_queue(queue.clone()));
    let mut ready = 0;
    let mut refused = None;
    block_on(async {
        while ready < 1 || refused.is_none() {
            match next(&mut group).await {
                Ok(dispatch) if dispatch.event() == "READY" => ready += 1,
                Ok(_) => {}
                Err(error) => refused = Some(error),
            }
        }
    });
    let refused = refused.unwrap();
    assert!(
        matches!(refused.error, ShardError::Identify(IdentifyError::BudgetExhausted { remaining: 0, .. })),
        "{refused}"
    );
    assert!(refused.to_string().contains("budget exhausted"), "{refused}");
    assert_eq!(sim.identifies().len(), 1);
    assert_eq!(queue.remaining(), Some(0));
}

/// A `GroupController` on another thread restarts (resume, no Identify),
/// removes, adds and finally shuts the group down, while this thread only
/// consumes the stream, which drives every connection (no spawned driver).
#[test]
fn a_controller_on_another_thread_manages_the_group_while_it_streams() {
    let sim = simulator(2);
    let both = [shard(0, 2), shard(1, 2)];
    let mut group = ShardGroup::builder(config(&sim), 2).identify_queue(queue(2)).build().unwrap();
    block_on(until_live(&mut group, &both, "READY"));
    let control = group.controller();
    let mut seen: Vec<(ShardId, String)> = Vec::new();
    let (removed, unknown) = std::thread::scope(|scope| {
        let manager = scope.spawn(|| {
            block_on(async {
                control.restart(shard(0, 2)).await.expect("restart");
                let removed = control.remove(shard(1, 2), CloseMode::Resumable).await.expect("remove");
                let unknown = control.remove(shard(1, 2), CloseMode::Final).await;
                control.add(shard(1, 2)).await.expect("add back");
                (removed, unknown)
            })
        });
        // Only this thread polls the stream, and so drives every connection.
        block_on(async {
            while !manager.is_finished() {
                let timeout = async_io::Timer::after(Duration::from_millis(20));
                if let futures::future::Either::Left((item, _)) = futures::future::select(group.next(), timeout).await {
                    let dispatch = item.expect("stream open").expect("no shard error");
                    seen.push((dispatch.shard(), dispatch.event().to_owned()));
                }
            }
        });
        manager.join().expect("manager thread")
    });
    assert!(removed.is_some(), "a resumable remove returns the session");
    assert!(matches!(unknown, Err(ControlError::UnknownShard(_))), "{unknown:?}");
    // Shard 0 resumes; shard 1 identifies again.
    block_on(async {
        let wanted = [(shard(0, 2), "RESUMED"), (shard(1, 2), "READY")];
        while !wanted.iter().all(|(id, event)| seen.iter().any(|(s, e)| s == id && e == event)) {
            let dispatch = next_dispatch(&mut group).await;
            seen.push((dispatch.shard(), dispatch.event().to_owned()));
        }
    });
    assert_eq!(sim.identifies().len(), 3);
    assert_eq!(sim.resumes().len(), 1);
    let control = group.controller();
    let shutting = std::thread::spawn(move || block_on(control.shutdown()));
    let rest: Vec<Dispatch> = block_on(group.by_ref().map(|item| item.expect("no error")).collect());
    assert!(rest.iter().all(|d| d.event() != "READY"), "nothing new after the shutdown");
    let sessions = shutting.join().expect("shutdown thread").expect("shutdown");
    assert_eq!(sessions.iter().map(|s| s.shard).collect::<Vec<_>>(), both.to_vec());
    // The group is gone: a controller says so.
    let control = group.controller();
    drop(group);
    assert_eq!(block_on(control.add(shard(0, 2))), Err(ControlError::GroupGone));
}

/// Regression: after `restart()`, the new connection (RESUMED, live
/// events) waits until the old one has handed over every dispatch it had
/// buffered, so one shard's dispatches stay in `s` order.
#[test]
fn a_restarted_shard_keeps_its_dispatches_in_order() {
    let sim = simulator(1);
    let only = shard(0, 1);
    let mut group = spawned(ShardGroup::builder(config(&sim), 1).identify_queue(queue(1)));
    block_on(until_live(&mut group, &[only], "READY"));
    for n in 0..20 {
        sim.dispatch_to_shard(only, "MESSAGE_CREATE", json!({ "n": n }));
    }
    // Let the spawned driver buffer them before the restart.
    std::thread::sleep(Duration::from_millis(500));
    block_on(group.restart(only)).unwrap();
    wait_until(|| sim.resumes().len() == 1 && sim.live_shards() == vec![only]);
    sim.dispatch_to_shard(only, "MESSAGE_CREATE", json!({ "n": "after" }));
    let got: Vec<Dispatch> = block_on(async {
        let mut got = Vec::new();
        while got.len() < 22 {
            got.push(next_dispatch(&mut group).await);
        }
        got
    });
    let seqs: Vec<(u64, &str)> = got.iter().map(|d| (d.seq(), d.event())).collect();
    // RESUMED carries the last `s` again; everything else strictly increases.
    assert!(got.windows(2).all(|w| w[0].seq() < w[1].seq() || w[1].event() == "RESUMED"), "{seqs:?}");
    assert_eq!(got.iter().filter(|d| d.event() == "MESSAGE_CREATE").count(), 21, "{seqs:?}");
}

/// Regression: right after a shard's `GroupError` it is no longer
/// running, so it can be added again at once; a re-added shard waiting for
/// a connecting slot is listed once, as connecting.
#[test]
fn a_failed_shard_can_be_added_again_at_once() {
    let sim = simulator(2);
    let (zero, one) = (shard(0, 2), shard(1, 2));
    let mut group = spawned(ShardGroup::builder(config(&sim), 2).identify_queue(queue(2)).max_connecting(1));
    block_on(until_live(&mut group, &[zero, one], "READY"));
    assert!(sim.close_shard(zero, 4004));
    let error = block_on(next(&mut group)).expect_err("a GroupError");
    assert_eq!(error.shard, zero);
    assert!(!group.is_running(zero));
    block_on(group.restart(one)).unwrap(); // takes the only connecting slot
    group.add(zero).unwrap();
    assert_eq!(group.shard_ids(), vec![zero, one]);
    assert_eq!(group.status(zero), Some(Status::Connecting { resume: false }));
}

/// Regression: a driver that never runs (a spawner that drops it) must
/// not hold a connecting slot forever; its shard reads as closed and the
/// group ends instead of hanging.
#[test]
fn a_driver_that_never_runs_does_not_wedge_the_group() {
    let sim = simulator(1);
    let mut group = ShardGroup::builder(config(&sim), 2).max_connecting(1).spawn_drivers(drop).build().unwrap();
    assert!(block_on(async { group.next().await }).is_none(), "the group ends");
    let statuses = group.statuses();
    assert!(statuses.iter().all(|(_, status)| *status == Status::Closed), "{statuses:?}");
    assert_eq!(statuses.len(), 2, "the queued shard was started, then ended too");
}

/// Polls the group on this thread while `work` runs on another (the
/// controller's futures resolve only while the group is polled).
fn drive_while<T: Send>(group: &mut ShardGroup, work: impl FnOnce() -> T + Send) -> (T, Vec<Dispatch>) {
    let mut seen = Vec::new();
    let out = std::thread::scope(|scope| {
        let worker = scope.spawn(work);
        block_on(async {
            let deadline = Instant::now() + WAIT;
            while !worker.is_finished() {
                assert!(Instant::now() < deadline, "controller request never resolved");
                let timeout = async_io::Timer::after(Duration::from_millis(20));
                if let futures::future::Either::Left((Some(Ok(d)), _)) =
                    futures::future::select(group.next(), timeout).await
                {
                    seen.push(d);
                }
            }
        });
        worker.join().expect("worker")
    });
    (out, seen)
}

/// Restarts wait for a connecting slot like every other start: with
/// `max_connecting(1)`, two shards restarted together never open their
/// sockets at the same time (each connect here takes 200 ms), and both
/// resume.
#[test]
fn restarted_shards_wait_for_a_connecting_slot() {
    let sim = simulator(2);
    let all = [shard(0, 2), shard(1, 2)];
    let (connecting, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let connector = {
        let (connecting, most) = (Arc::clone(&connecting), Arc::clone(&most));
        move |target: Target| {
            let (connecting, most) = (Arc::clone(&connecting), Arc::clone(&most));
            async move {
                most.fetch_max(connecting.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                async_io::Timer::after(Duration::from_millis(200)).await;
                let stream = AsyncIoConnector.connect(target).await;
                connecting.fetch_sub(1, Ordering::SeqCst);
                stream
            }
        }
    };
    let mut group = ShardGroup::builder(config(&sim), 2)
        .identify_queue(queue(2))
        .max_connecting(1)
        .connector(connector)
        .build()
        .unwrap();
    block_on(until_live(&mut group, &all, "READY"));
    assert_eq!(most.load(Ordering::SeqCst), 1, "the first starts keep to the limit");
    let control = group.controller();
    let (results, mut seen) =
        drive_while(&mut group, || block_on(futures::future::join(control.restart(all[0]), control.restart(all[1]))));
    assert!(results.0.is_ok() && results.1.is_ok(), "{results:?}");
    block_on(async {
        while !all.iter().all(|id| seen.iter().any(|d| d.shard() == *id && d.event() == "RESUMED")) {
            seen.push(next_dispatch(&mut group).await);
        }
    });
    assert_eq!(most.load(Ordering::SeqCst), 1, "two restarted shards connected at once");
    assert_eq!(sim.identifies().len(), 2);
    assert_eq!(sim.resumes().len(), 2);
}

/// Management requests run one at a time. Two restarts of
/// one shard sent together resume it twice in turn (no extra Identify, no
/// unreachable connection), and a shutdown afterwards ends everything.
#[test]
fn two_concurrent_restarts_of_one_shard_leave_one_connection() {
    let sim = simulator(1);
    let only = shard(0, 1);
    let mut group = ShardGroup::builder(config(&sim), 1).identify_queue(queue(1)).build().unwrap();
    block_on(until_live(&mut group, &[only], "READY"));
    let control = group.controller();
    let (results, _) =
        drive_while(&mut group, || block_on(futures::future::join(control.restart(only), control.restart(only))));
    assert!(results.0.is_ok() && results.1.is_ok());
    std::thread::sleep(Duration::from_millis(800));
    // Keep polling a bit so connections progress.
    block_on(async {
        let t = async_io::Timer::after(Duration::from_millis(800));
        let _ = futures::future::select(
            std::pin::pin!(async {
                loop {
                    let _ = group.next().await;
                }
            }),
            t,
        )
        .await;
    });
    let extra_identify = sim.identifies().len() != 1;
    // After a shutdown nothing of shard 0 may stay connected and the stream must end.
    let control = group.controller();
    let (sessions, _) = drive_while(&mut group, || block_on(control.shutdown()));
    assert_eq!(sessions.expect("shutdown").len(), 1);
    assert!(!sim.resumes().is_empty(), "the shard resumed (the first restart's connection may close before it could)");
    let ended = finishes_within(Duration::from_secs(3), async { while group.next().await.is_some() {} });
    assert!(
        !extra_identify && ended,
        "extra identify={extra_identify}, stream ended={ended}, live={:?}",
        sim.live_shards()
    );
}

/// A shutdown sent while a restart is in flight waits for
/// it, then closes the restarted connection and returns its session.
#[test]
fn a_shutdown_queued_behind_a_restart_gets_the_restarted_session() {
    let sim = simulator(1);
    let only = shard(0, 1);
    let mut group = ShardGroup::builder(config(&sim), 1).identify_queue(queue(1)).build().unwrap();
    block_on(until_live(&mut group, &[only], "READY"));
    let control = group.controller();
    let (results, _) =
        drive_while(&mut group, || block_on(futures::future::join(control.restart(only), control.shutdown())));
    let sessions = results.1.expect("shutdown");
    let n = sessions.len();
    let ended = finishes_within(Duration::from_secs(3), async { while group.next().await.is_some() {} });
    assert!(n == 1 && ended, "sessions={n} ended={ended} live={:?}", sim.live_shards());
}

/// A remove sent while a restart is in flight waits for it,
/// then removes the shard and returns its session.
#[test]
fn a_remove_queued_behind_a_restart_removes_the_shard() {
    let sim = simulator(1);
    let only = shard(0, 1);
    let mut group = ShardGroup::builder(config(&sim), 1).identify_queue(queue(1)).build().unwrap();
    block_on(until_live(&mut group, &[only], "READY"));
    let control = group.controller();
    let (results, _) = drive_while(&mut group, || {
        block_on(futures::future::join(control.restart(only), control.remove(only, CloseMode::Resumable)))
    });
    assert!(results.1.as_ref().unwrap().is_some(), "remove(Resumable) must return the session");
    assert!(!group.is_running(only), "removed shard is running again");
}

/// A connection already closed (through its handle) whose
/// driver waits to hand over a full buffer must not make `shutdown()` wait
/// forever for a close nobody reads.
#[test]
fn shutdown_returns_for_a_closed_shard_with_a_full_buffer() {
    let sim = simulator(1);
    let only = shard(0, 1);
    let mut group = spawned(ShardGroup::builder(config(&sim), 1).identify_queue(queue(1)));
    block_on(until_live(&mut group, &[only], "READY"));
    for n in 0..300 {
        sim.dispatch_to_shard(only, "MESSAGE_CREATE", json!({ "n": n }));
    }
    std::thread::sleep(Duration::from_millis(500));
    let handle = group.handle(only).unwrap();
    let closed = block_on(handle.close(CloseMode::Resumable));
    assert!(closed.is_some());
    assert!(group.is_running(only));
    let done = finishes_within(Duration::from_secs(5), group.shutdown());
    assert!(done, "ShardGroup::shutdown never returned");
}

/// The same after a fatal close read while the consumer lags
/// with a full buffer.
#[test]
fn shutdown_returns_after_a_fatal_close_with_a_full_buffer() {
    let sim = simulator(1);
    let only = shard(0, 1);
    let mut group = spawned(ShardGroup::builder(config(&sim), 1).identify_queue(queue(1)));
    block_on(until_live(&mut group, &[only], "READY"));
    for n in 0..256 {
        sim.dispatch_to_shard(only, "MESSAGE_CREATE", json!({ "n": n }));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(sim.close_shard(only, 4004));
    std::thread::sleep(Duration::from_millis(300));
    let done = finishes_within(Duration::from_secs(5), group.shutdown());
    assert!(done, "ShardGroup::shutdown never returned");
}

#[test]
fn each_shard_is_checked_for_the_identify_its_own_id_makes() {
    // The template is checked once; each shard again only for what its id
    // changes, Identify's `shard` field. Padded so that Identify is at the
    // 4096-byte limit for shard [0, 1], it is 2 bytes over for [10, 11].
    let with = |pad: usize| Config::new("token", Intents::GUILDS).presence(&json!({ "p": "x".repeat(pad) }));
    let builds = |pad: usize, total: u32, first: u32| {
        ShardGroup::builder(with(pad), total)
            .shards(first..first + 1)
            .connector(|_| async { Err::<async_std::net::TcpStream, _>(std::io::Error::other("offline")) })
            .build()
    };
    let (mut fits, mut over) = (0, 4096);
    while over - fits > 1 {
        let mid = (fits + over) / 2;
        if builds(mid, 1, 0).is_ok() {
            fits = mid;
        } else {
            over = mid;
        }
    }
    assert!(builds(fits, 9, 3).is_ok(), "the same digits fit");
    match builds(fits, 11, 10) {
        Err(ShardError::Config(error)) => assert!(error.to_string().contains("4098 bytes"), "{error}"),
        other => panic!("{other:?}"),
    }
}

/// Review of c3157f6: a restart answers for its own shard only. Shard 0
/// holds the only connecting slot (its connect never completes) and shard 1,
/// whose configuration `configure` makes invalid, waits behind it. Restarting
/// shard 0 puts it back in line behind shard 1 and frees the slot; the
/// restart's `start_queued` then tried shard 1 first and handed its error to
/// `restart(0)` (shard 0 was fine and started right after), while shard 1
/// left the group without a `GroupError` on the stream. (Shard 0's driver is
/// spawned and starts late, so its close is answered while the group waits,
/// and the group handles the answer before it sees the old stream end.)
#[test]
fn a_restart_does_not_answer_with_another_shards_start_error() {
    let (zero, one) = (shard(0, 2), shard(1, 2));
    let connector = |_: Target| futures::future::pending::<std::io::Result<async_std::net::TcpStream>>();
    let mut group = ShardGroup::builder(Config::new("token", Intents::GUILDS), 2)
        .max_connecting(1)
        .connector(connector)
        .configure(|id, config| if id.id == 1 { config.large_threshold(10) } else { config })
        .spawn_drivers(|driver| {
            async_std::task::spawn(async move {
                async_io::Timer::after(Duration::from_millis(300)).await;
                driver.await;
            });
        })
        .build()
        .expect("shard 0 builds; shard 1 waits for the connecting slot");
    assert_eq!(group.status(one), Some(Status::Connecting { resume: false }), "waiting");
    let control = group.controller();
    let mut errors = Vec::new();
    let restarted = std::thread::scope(|scope| {
        let worker = scope.spawn(|| block_on(control.restart(zero)));
        block_on(async {
            while !worker.is_finished() {
                let timeout = async_io::Timer::after(Duration::from_millis(20));
                if let futures::future::Either::Left((Some(Err(error)), _)) =
                    futures::future::select(group.next(), timeout).await
                {
                    errors.push(error);
                }
            }
        });
        worker.join().expect("worker")
    });
    assert_eq!(restarted, Ok(()), "shard 0's restart answered with shard 1's error");
    // Shard 1's failure is the stream's to report, with its id.
    if errors.is_empty() {
        errors.push(block_on(next(&mut group)).expect_err("shard 1's GroupError"));
    }
    assert_eq!(errors.iter().map(|error| error.shard).collect::<Vec<_>>(), [one]);
}

/// A shard whose connection cannot be built (here `configure` makes its
/// configuration invalid) never used the session it was to resume: the
/// group keeps it, and a shutdown hands it back for the next process.
#[test]
fn a_shard_that_fails_to_start_keeps_the_session_it_was_to_resume() {
    let (zero, one) = (shard(0, 2), shard(1, 2));
    let given = Session { id: "given".into(), seq: 7, resume_url: None };
    let connector = |_: Target| futures::future::pending::<std::io::Result<async_std::net::TcpStream>>();
    let mut group = ShardGroup::builder(Config::new("token", Intents::GUILDS), 2)
        .max_connecting(1)
        .connector(connector)
        .configure(|id, config| if id.id == 1 { config.large_threshold(10) } else { config })
        .resume([ShardSession { shard: one, session: given.clone() }])
        .spawn_drivers(|driver| {
            async_std::task::spawn(driver);
        })
        .build()
        .expect("shard 0 builds; shard 1 waits for the connecting slot");
    assert_eq!(group.status(one), Some(Status::Connecting { resume: true }));
    // Restarting shard 0 frees the slot: shard 1 is started, and fails.
    let control = group.controller();
    let (restarted, _) = drive_while(&mut group, || block_on(control.restart(zero)));
    assert_eq!(restarted, Ok(()));
    assert_eq!(group.status(one), None, "shard 1 failed to start and left the group");
    let (sessions, _) = drive_while(&mut group, || block_on(control.shutdown()));
    assert_eq!(sessions.expect("shutdown"), [ShardSession { shard: one, session: given }]);
}
