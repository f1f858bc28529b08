//! What a `ShardHandle` reports about a running shard against the
//! simulator: exact counters after a scripted session, latency, the session
//! and awaited status changes. Timeouts are generous bounds, never the
//! thing measured.
#![cfg(feature = "testing")]

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

mod support;

use discord_gateway_stream::identify::{IdentifyLimits, LocalIdentifyQueue};
use discord_gateway_stream::protocol::Status;
use discord_gateway_stream::testing::{Simulator, SimulatorConfig};
use discord_gateway_stream::{
    CloseMode, Compression, Config, Dispatch, Intents, Session, Shard, ShardGroup, ShardHandle, ShardId, ShardStats,
    StatusWatcher,
};
use futures::task::ArcWake;
use futures::{Stream, StreamExt};
use serde_json::json;
use support::client::sim_config;

const WAIT: Duration = Duration::from_secs(20);

fn simulator(compression: bool) -> Simulator {
    Simulator::start(SimulatorConfig::new().heartbeat_interval(Duration::from_millis(200)).compression(compression))
        .expect("simulator starts")
}

fn config(sim: &Simulator, compression: Compression) -> Config {
    sim_config(sim.url(), Intents::GUILDS | Intents::GUILD_MESSAGES).compression(compression).rng_seed(11)
}

/// `future`, or a panic after a generous bound.
fn block_on_within<T>(what: &str, future: impl Future<Output = T>) -> T {
    async_io::block_on(async {
        let timeout = futures::FutureExt::fuse(async_io::Timer::after(WAIT));
        let future = futures::FutureExt::fuse(future);
        futures::pin_mut!(timeout, future);
        futures::select! {
            out = future => out,
            _ = timeout => panic!("{what}: not done within {WAIT:?}"),
        }
    })
}

async fn next_dispatch(shard: &mut Shard) -> Dispatch {
    shard.next().await.expect("stream open").expect("no error")
}

fn run_counted_session(compression: bool) {
    let sim = simulator(compression);
    let mode = if compression { Compression::ZlibStream } else { Compression::None };
    let mut shard = Shard::new(config(&sim, mode)).unwrap();
    let handle = shard.handle();
    assert_eq!(handle.stats(), Default::default());
    assert_eq!((handle.session(), handle.last_seq()), (None, None));
    let mut seen = Vec::new();
    block_on_within("scripted session", async {
        seen.push(next_dispatch(&mut shard).await);
        assert_eq!(seen[0].event(), "READY");
        let session = handle.session().expect("a session after READY");
        assert_eq!(Some(session.id.as_str()), sim.session_id().as_deref());
        assert_eq!(session.seq, 1);
        assert!(session.resume_url.is_some());
        assert_eq!(handle.last_seq(), Some(1));

        sim.dispatch_many((0..30).map(|i| ("MESSAGE_CREATE", json!({ "n": i }))));
        while seen.len() < 31 {
            seen.push(next_dispatch(&mut shard).await);
        }
        assert!(sim.reconnect());
        // Committed while the client reconnects: replayed on resume.
        sim.dispatch_many((30..50).map(|i| ("MESSAGE_CREATE", json!({ "n": i }))));
        let messages = |seen: &[Dispatch]| seen.iter().filter(|d| d.event() == "MESSAGE_CREATE").count();
        while messages(&seen) < 50 || !seen.iter().any(|d| d.event() == "RESUMED") {
            seen.push(next_dispatch(&mut shard).await);
        }
    });
    // Published before the wake's dispatches reach the stream: exact now.
    let stats = handle.stats();
    assert_eq!(seen.len(), 1 + 50 + 1, "READY, 50 MESSAGE_CREATE, RESUMED");
    assert_eq!(stats.dispatches, 52);
    assert_eq!((stats.identifies, stats.resumes, stats.reconnects), (1, 1, 1));
    assert_eq!(stats.skipped_payloads, 0);
    assert_eq!(sim.identifies().len() as u64, stats.identifies);
    assert_eq!(sim.resumes().len() as u64, stats.resumes);
    assert!(stats.messages >= 2 + 52, "Hello twice, every dispatch, op 7: {stats:?}");
    let json: u64 = seen.iter().map(|d| d.frame().len() as u64).sum();
    assert!(stats.bytes_decompressed > json, "{stats:?}");
    if compression {
        assert!(stats.bytes_received < stats.bytes_decompressed, "{stats:?}");
    } else {
        assert_eq!(stats.bytes_received, stats.bytes_decompressed);
    }
    assert!(stats.heartbeats_acked <= stats.heartbeats_sent);
    assert_eq!(shard.stats(), stats);

    let last = seen.iter().map(Dispatch::seq).max();
    assert_eq!(handle.last_seq(), last);
    let session = handle.session().expect("resumed session");
    assert_eq!((Some(session.seq), Some(session.id.as_str())), (last, sim.session_id().as_deref()));
    assert!(!format!("{session:?}").contains(&session.id), "Debug redacts the session id");
    let closed = block_on_within("close", shard.close(CloseMode::Resumable)).expect("a session");
    assert_eq!(closed, session);
    assert_eq!(handle.session(), None, "no session once closed");
}

#[test]
fn counters_after_a_scripted_session_uncompressed() {
    run_counted_session(false);
}

#[test]
fn counters_after_a_scripted_session_over_zlib_stream() {
    run_counted_session(true);
}

#[test]
fn latency_reaches_the_handle() {
    let sim = simulator(false);
    let mut shard = Shard::new(config(&sim, Compression::None)).unwrap();
    let handle = shard.handle();
    let driver = shard.take_driver().expect("driver");
    let driving = std::thread::spawn(move || async_io::block_on(driver));
    block_on_within("two heartbeat ACKs", async {
        next_dispatch(&mut shard).await;
        while handle.latency().heartbeats_acked() < 2 {
            async_io::Timer::after(Duration::from_millis(20)).await;
        }
    });
    let latency = handle.latency();
    assert_eq!(latency.recent().len(), 2);
    assert!(latency.average().is_some() && latency.last().is_some());
    assert!(latency.acked_at() >= latency.sent_at(), "{latency:?}");
    let stats = handle.stats();
    assert!(stats.heartbeats_sent >= 2 && stats.heartbeats_acked >= 2, "{stats:?}");
    block_on_within("close", handle.close(CloseMode::Final));
    driving.join().unwrap();
}

#[test]
fn awaiting_status_changes_through_a_reconnect_and_a_close() {
    let sim = simulator(false);
    let mut shard = Shard::new(config(&sim, Compression::None)).unwrap();
    let handle = shard.handle();
    let driver = shard.take_driver().expect("driver");
    let driving = std::thread::spawn(move || async_io::block_on(driver));
    let active = block_on_within("Active", handle.wait_for_status(|s| *s == Status::Active));
    assert_eq!(active, Some(Status::Active));
    // Already Active: resolves at once.
    assert_eq!(block_on_within("Active again", handle.wait_for_status(|s| *s == Status::Active)), Some(Status::Active));

    let mut changes = handle.watch_status();
    let next_change = handle.status_changed();
    assert!(sim.reconnect());
    let first = block_on_within("a change", next_change);
    assert!(matches!(first, Some(Status::Reconnecting { resume: true, .. })), "{first:?}");
    let mut seen = Vec::new();
    block_on_within("Active after resuming", async {
        while let Some(status) = changes.next().await {
            let done = status == Status::Active;
            seen.push(status);
            if done {
                break;
            }
        }
    });
    // Every change, in order: none is lost to a watcher that polls late.
    assert!(matches!(seen[0], Status::Reconnecting { resume: true, .. }), "{seen:?}");
    assert_eq!(
        seen[1..],
        [Status::Connecting { resume: true }, Status::AwaitingHello, Status::Resuming, Status::Active],
        "{seen:?}"
    );
    assert_eq!(changes.current(), Status::Active);

    let closed = handle.status_changed();
    block_on_within("close", handle.close(CloseMode::Final));
    assert_eq!(block_on_within("Closed", closed), Some(Status::Closed));
    driving.join().unwrap();
    // The driver has finished: the watcher yields what is left, then ends.
    let rest: Vec<Status> = block_on_within("the end", changes.collect());
    assert_eq!(rest, [Status::Closed]);
    assert_eq!(block_on_within("after the end", handle.status_changed()), None);
    drop(shard);
}

#[test]
fn a_dropped_driver_ends_its_watchers() {
    let sim = simulator(false);
    let mut shard = Shard::new(config(&sim, Compression::None)).unwrap();
    let handle = shard.handle();
    let mut changes = handle.watch_status();
    drop(shard.take_driver());
    assert_eq!(handle.status(), Status::Closed);
    assert_eq!(block_on_within("Closed", changes.next()), Some(Status::Closed));
    assert_eq!(block_on_within("end", changes.next()), None);
}

#[test]
fn a_group_reads_every_shards_stats() {
    let sim = Simulator::start(SimulatorConfig::new().heartbeat_interval(Duration::from_millis(200))).unwrap();
    let mut group = ShardGroup::builder(config(&sim, Compression::None), 2)
        .identify_queue(LocalIdentifyQueue::new(IdentifyLimits::new(2).with_window(Duration::from_millis(100))))
        .build()
        .unwrap();
    let mut readies = 0;
    block_on_within("two READYs", async {
        while readies < 2 {
            let dispatch = group.next().await.expect("group open").expect("no error");
            readies += usize::from(dispatch.event() == "READY");
        }
    });
    let ids: Vec<ShardId> = group.handles().iter().map(|handle| handle.id()).collect();
    assert_eq!(ids, [ShardId::new(0, 2).unwrap(), ShardId::new(1, 2).unwrap()]);
    let stats = group.shard_stats();
    assert_eq!(stats.len(), 2);
    for (id, stats) in stats {
        assert_eq!((stats.dispatches, stats.identifies), (1, 1), "{id}");
        assert_eq!(group.stats(id).map(|s| s.identifies), Some(1));
        assert_eq!(group.handle(id).and_then(|h| h.session()).map(|s| s.seq), Some(1));
    }
    assert_eq!(group.stats(ShardId::new(0, 3).unwrap()), None);
}

/// A watcher whose waker, at the very moment the driver wakes it (what a
/// watcher task on another thread may observe as soon as it is woken),
/// records each status it yields with what the handle reads then.
struct Probe {
    handle: ShardHandle,
    watcher: Mutex<Option<StatusWatcher>>,
    log: Mutex<Vec<(Status, Option<Session>, ShardStats)>>,
}

impl ArcWake for Probe {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        let waker = futures::task::waker(Arc::clone(arc_self));
        let mut cx = Context::from_waker(&waker);
        let mut watcher = arc_self.watcher.lock().unwrap();
        let Some(watcher) = watcher.as_mut() else { return };
        while let Poll::Ready(Some(status)) = std::pin::Pin::new(&mut *watcher).poll_next(&mut cx) {
            let entry = (status, arc_self.handle.session(), arc_self.handle.stats());
            arc_self.log.lock().unwrap().push(entry);
        }
    }
}

/// Before: the driver set the status inside `apply_outputs` and published
/// the counters and the session only afterwards, so a task woken by
/// `Active` read no session and one woken by `Reconnecting` read a
/// `reconnects` that did not count it yet.
#[test]
fn a_task_woken_by_a_status_change_reads_the_stats_and_session_of_that_change() {
    let sim = simulator(false);
    let mut shard = Shard::new(config(&sim, Compression::None)).unwrap();
    let handle = shard.handle();
    let probe = Arc::new(Probe {
        handle: handle.clone(),
        watcher: Mutex::new(Some(handle.watch_status())),
        log: Mutex::new(Vec::new()),
    });
    ArcWake::wake_by_ref(&probe); // registers the watcher
    block_on_within("READY, reconnect, RESUMED", async {
        assert_eq!(next_dispatch(&mut shard).await.event(), "READY");
        assert!(sim.reconnect());
        while next_dispatch(&mut shard).await.event() != "RESUMED" {}
    });
    let log = probe.log.lock().unwrap().clone();
    let active: Vec<_> = log.iter().filter(|(status, _, _)| *status == Status::Active).collect();
    assert_eq!(active.len(), 2, "READY and RESUMED");
    for (_, session, stats) in active {
        let session = session.as_ref().expect("woken by Active: the session is published");
        assert_eq!(Some(session.id.as_str()), sim.session_id().as_deref());
        assert!(stats.dispatches >= 1, "woken by Active: READY or RESUMED counted, {stats:?}");
    }
    let (_, _, stats) =
        log.iter().find(|(status, _, _)| matches!(status, Status::Reconnecting { .. })).expect("Reconnecting seen");
    assert_eq!(stats.reconnects, 1, "woken by Reconnecting: the reconnect counted");
}

/// Before: a watcher that had not yielded the older changes walked its
/// history when the current status failed the predicate, and returned a
/// stale `Active` although the shard had closed for good.
#[test]
fn wait_for_never_returns_a_status_older_than_the_current_one() {
    let sim = simulator(false);
    let mut shard = Shard::new(config(&sim, Compression::None)).unwrap();
    let handle = shard.handle();
    let mut changes = handle.watch_status();
    block_on_within("READY", async {
        assert_eq!(next_dispatch(&mut shard).await.event(), "READY");
    });
    block_on_within("close", shard.close(CloseMode::Final));
    drop(shard);
    assert_eq!(handle.status(), Status::Closed);
    let got = block_on_within("wait_for Active", changes.wait_for(|status| *status == Status::Active));
    assert_eq!(got, None, "the shard is closed for good, yet wait_for said {got:?}");
    // Every change up to the current one was skipped.
    assert_eq!(block_on_within("end", changes.next()), None);
}

/// A driver dropped without a close (the `Shard` dropped, or the task
/// running the driver panicked) never handed its session to anyone: it is
/// still resumable, and `session()` keeps it readable so that a new shard
/// can resume it instead of identifying again.
#[test]
fn a_dropped_driver_leaves_its_session_readable_for_a_resume() {
    let sim = simulator(false);
    let mut shard = Shard::new(config(&sim, Compression::None)).unwrap();
    let handle = shard.handle();
    block_on_within("READY", async {
        assert_eq!(next_dispatch(&mut shard).await.event(), "READY");
    });
    drop(shard);
    assert_eq!(handle.status(), Status::Closed);
    let session = handle.session().expect("a dropped shard's session stays readable");
    assert_eq!(Some(session.id.as_str()), sim.session_id().as_deref());
    assert_eq!(handle.last_seq(), Some(session.seq));
    let mut second = Shard::new(config(&sim, Compression::None).resume_from(session.clone())).unwrap();
    let second_handle = second.handle();
    let probe = Arc::new(Probe {
        handle: second_handle.clone(),
        watcher: Mutex::new(Some(second_handle.watch_status())),
        log: Mutex::new(Vec::new()),
    });
    ArcWake::wake_by_ref(&probe); // registers the watcher
    block_on_within("RESUMED", async { while next_dispatch(&mut second).await.event() != "RESUMED" {} });
    assert_eq!(sim.identifies().len(), 1, "resumed, not identified again");
    // A shard given a session reports it from its first wake, before RESUMED.
    let log = probe.log.lock().unwrap().clone();
    let (first, first_session, _) = log.first().expect("a status change");
    assert_eq!(first_session.as_ref().map(|s| &s.id), Some(&session.id), "woken by {first:?}");
    assert_eq!(second_handle.session().map(|s| s.id), Some(session.id));
    drop(second);
}
