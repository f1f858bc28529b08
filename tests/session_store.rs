//! Crash-safe sessions (issue 13.5): the stores on their own, shards that
//! checkpoint into them and resume from them, and a process killed with
//! SIGKILL whose successor resumes every shard without an Identify.
#![cfg(feature = "testing")]

mod support;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use discord_gateway_stream::store::{FileSessionStore, MemorySessionStore, SessionStore, SessionStoreError};
use discord_gateway_stream::testing::{Simulator, SimulatorConfig};
use discord_gateway_stream::{
    CloseMode, Compression, Config, Dispatch, Intents, Session, Shard, ShardError, ShardGroup, ShardId, ShardSession,
};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use serde_json::json;
use support::client::sim_config;

const WAIT: Duration = Duration::from_secs(10);

fn simulator() -> Simulator {
    Simulator::start(SimulatorConfig::new().heartbeat_interval(Duration::from_millis(400))).expect("simulator starts")
}

fn config(sim_url: &str) -> Config {
    sim_config(sim_url.to_owned(), Intents::GUILDS | Intents::GUILD_MESSAGES).compression(Compression::None)
}

/// A shard on `sim` that checkpoints in `store` at most once per `every`.
fn checkpointing(sim: &Simulator, store: impl SessionStore, every: Duration) -> Shard {
    Shard::builder(config(&sim.url())).session_store(store).checkpoint_interval(every).build().unwrap()
}

fn block_on<T>(future: impl Future<Output = T>) -> T {
    async_io::block_on(future)
}

async fn next(shard: &mut Shard) -> Result<Dispatch, ShardError> {
    let timeout = async_io::Timer::after(WAIT);
    futures::select! {
        item = shard.next() => item.expect("stream ended"),
        _ = FutureExt::fuse(timeout) => panic!("no stream item within {WAIT:?}"),
    }
}

/// Reads until a dispatch named `event` arrived; returns everything read.
async fn read_until(shard: &mut Shard, event: &str) -> Vec<Dispatch> {
    let mut all = Vec::new();
    loop {
        let dispatch = next(shard).await.expect("no error");
        let done = dispatch.event() == event;
        all.push(dispatch);
        if done {
            return all;
        }
    }
}

/// Polls `done` until it holds, or panics after [`WAIT`].
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dgs-session-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn session(id: &str, seq: u64) -> Session {
    Session { id: id.into(), seq, resume_url: None }
}

// ---------------------------------------------------------------------------
// The stores on their own.

#[test]
fn memory_store_saves_loads_and_clears_per_shard_and_total() {
    block_on(async {
        let store = MemorySessionStore::new();
        let a = ShardId::new(0, 2).unwrap();
        let b = ShardId::new(0, 4).unwrap();
        store.save(ShardSession { shard: a, session: session("a", 3) }).await.unwrap();
        store.save(ShardSession { shard: a, session: session("a", 9) }).await.unwrap();
        assert_eq!(store.load(a).await.unwrap().map(|s| s.session), Some(session("a", 9)));
        assert_eq!(store.load(b).await.unwrap(), None, "another total is another key");
        store.clear(a).await.unwrap();
        store.clear(a).await.unwrap();
        assert_eq!(store.load(a).await.unwrap(), None);
        assert!(!format!("{store:?}").contains("\"a\""));
    });
}

#[test]
fn file_store_replaces_one_file_per_shard_atomically() {
    let dir = temp_dir("file");
    let store = FileSessionStore::new(&dir).expect("store").durable(true);
    let a = ShardId::new(1, 3).unwrap();
    block_on(async {
        assert_eq!(store.load(a).await.unwrap(), None);
        store.save(ShardSession { shard: a, session: session("abc", 5) }).await.unwrap();
        store.save(ShardSession { shard: a, session: session("abc", 6) }).await.unwrap();
        let loaded = store.load(a).await.unwrap().expect("saved");
        assert_eq!((loaded.shard, loaded.session), (a, session("abc", 6)));
        // Another total: another file.
        assert_eq!(store.load(ShardId::new(1, 4).unwrap()).await.unwrap(), None);
        // A second store on the same directory (the next process) reads it.
        let next = FileSessionStore::new(&dir).unwrap();
        assert_eq!(next.load(a).await.unwrap().map(|s| s.session.seq), Some(6));
    });
    // Only the shard's file: no temporary left behind.
    let names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names, vec!["shard-1-of-3.json".to_owned()]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(store.path(a)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the session id is for the owner only");
    }
    block_on(async {
        // Too old to be worth a resume: not loaded.
        let strict = FileSessionStore::new(&dir).unwrap().max_age(Some(Duration::ZERO));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(strict.load(a).await.unwrap(), None);
        // A torn or foreign file is an error (the shard identifies), not a panic.
        std::fs::write(store.path(a), b"{\"shard\":").unwrap();
        assert!(matches!(store.load(a).await, Err(SessionStoreError::Corrupt(_))));
        // Its error says where and what, never what the record holds.
        std::fs::write(store.path(a), b"{\"shard\":\"secret-session-id\"}").unwrap();
        let error = store.load(a).await.unwrap_err();
        assert!(matches!(error, SessionStoreError::Corrupt(_)));
        assert!(!error.to_string().contains("secret"), "{error}");
        store.clear(a).await.unwrap();
        store.clear(a).await.unwrap();
        assert_eq!(store.load(a).await.unwrap(), None);
    });
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------
// Shards with a store.

/// Wraps a store and counts its requests.
#[derive(Clone, Default)]
struct Counting {
    inner: MemorySessionStore,
    saves: Arc<AtomicUsize>,
    clears: Arc<AtomicUsize>,
}

impl SessionStore for Counting {
    fn load(&self, shard: ShardId) -> BoxFuture<'static, Result<Option<ShardSession>, SessionStoreError>> {
        self.inner.load(shard)
    }
    fn save(&self, session: ShardSession) -> BoxFuture<'static, Result<(), SessionStoreError>> {
        self.saves.fetch_add(1, Ordering::SeqCst);
        self.inner.save(session)
    }
    fn clear(&self, shard: ShardId) -> BoxFuture<'static, Result<(), SessionStoreError>> {
        self.clears.fetch_add(1, Ordering::SeqCst);
        self.inner.clear(shard)
    }
}

#[test]
fn file_store_removes_temporary_files_a_crashed_process_left_behind() {
    let dir = temp_dir("stale-temporaries");
    std::fs::create_dir_all(&dir).unwrap();
    let stale = dir.join(".shard-0-of-1.json.4242.0.tmp");
    let fresh = dir.join(".shard-0-of-1.json.4243.0.tmp");
    let other = dir.join("notes.tmp");
    for path in [&stale, &fresh, &other] {
        std::fs::write(path, b"{}").unwrap();
    }
    let long_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    for path in [&stale, &other] {
        std::fs::File::options().write(true).open(path).unwrap().set_modified(long_ago).unwrap();
    }
    FileSessionStore::new(&dir).unwrap();
    assert!(!stale.exists(), "a crashed process's temporary file is removed");
    assert!(fresh.exists(), "a recent one may be a live process's save in progress");
    assert!(other.exists(), "files that are not the store's are left alone");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_shard_checkpoints_and_the_next_one_resumes_from_the_store_without_identifying() {
    let sim = simulator();
    let store = Counting::default();
    let one = ShardId::ONE;
    let mut shard = checkpointing(&sim, store.clone(), Duration::from_millis(50));
    block_on(async {
        read_until(&mut shard, "READY").await;
        assert!(sim.wait_until_live(WAIT));
        for n in 0..20 {
            sim.dispatch("MESSAGE_CREATE", json!({ "n": n }));
        }
        let mut last = 0;
        while last < 21 {
            last = next(&mut shard).await.unwrap().seq();
        }
        // The checkpoint follows what was handled (the last one is handled
        // when the next item is asked for: poll once more).
        let poll_once = futures::future::poll_fn(|cx| {
            let _ = shard.poll_next_unpin(cx);
            std::task::Poll::Ready(())
        });
        poll_once.await;
        let deadline = Instant::now() + WAIT;
        while store.inner.get(one).map(|s| s.seq) != Some(21) {
            assert!(Instant::now() < deadline, "checkpoint reached 21: {:?}", store.inner.get(one));
            let _ = futures::future::select(shard.next(), async_io::Timer::after(Duration::from_millis(20))).await;
        }
    });
    let stored = store.inner.get(one).expect("checkpointed");
    assert_eq!(Some(stored.id.clone()), sim.session_id());
    // Saves are bounded by the interval, not one per dispatch.
    assert!(store.saves.load(Ordering::SeqCst) < 20, "saves: {}", store.saves.load(Ordering::SeqCst));
    // A crash: the shard and its driver vanish without closing.
    drop(shard);
    eventually("the simulator sees the connection gone", || !sim.is_live());
    for n in 20..25 {
        sim.dispatch("MESSAGE_CREATE", json!({ "n": n }));
    }
    let identifies = sim.identifies().len();
    let mut shard = Shard::builder(config(&sim.url())).session_store(store.clone()).build().unwrap();
    let seqs: Vec<u64> = block_on(read_until(&mut shard, "RESUMED")).iter().map(Dispatch::seq).collect();
    assert_eq!(seqs, (22..=27).collect::<Vec<_>>(), "replayed from the checkpoint, then RESUMED");
    assert_eq!(sim.identifies().len(), identifies, "no Identify");
    assert_eq!(sim.resumes().last().and_then(|r| r.d().cloned()).unwrap()["seq"], 21);
}

#[test]
fn a_rejected_stored_session_is_cleared_then_overwritten_by_the_new_one() {
    let sim = simulator();
    let store = Counting::default();
    block_on(store.inner.save(ShardSession { shard: ShardId::ONE, session: session("expired", 40) })).unwrap();
    let mut shard = checkpointing(&sim, store.clone(), Duration::from_millis(20));
    block_on(async {
        read_until(&mut shard, "READY").await;
        let deadline = Instant::now() + WAIT;
        while store.inner.get(ShardId::ONE).map(|s| s.id) != sim.session_id() {
            assert!(Instant::now() < deadline, "the new session overwrote the stale one");
            let _ = futures::future::select(shard.next(), async_io::Timer::after(Duration::from_millis(20))).await;
        }
    });
    assert_eq!(sim.resumes().len(), 1, "the stored session was tried");
    assert_eq!(sim.identifies().len(), 1);
    assert_eq!(store.clears.load(Ordering::SeqCst), 1, "op 9 cleared it before the new session");
}

/// Answers every load with a session of shard [0, 2].
struct OtherTotal;

impl SessionStore for OtherTotal {
    fn load(&self, _: ShardId) -> BoxFuture<'static, Result<Option<ShardSession>, SessionStoreError>> {
        let shard = ShardId::new(0, 2).unwrap();
        futures::future::ready(Ok(Some(ShardSession { shard, session: session("other", 3) }))).boxed()
    }
    fn save(&self, _: ShardSession) -> BoxFuture<'static, Result<(), SessionStoreError>> {
        futures::future::ready(Ok(())).boxed()
    }
    fn clear(&self, _: ShardId) -> BoxFuture<'static, Result<(), SessionStoreError>> {
        futures::future::ready(Ok(())).boxed()
    }
}

#[test]
fn a_session_saved_by_a_shard_of_another_total_is_not_used() {
    let sim = simulator();
    let mut shard = Shard::builder(config(&sim.url())).session_store(OtherTotal).build().unwrap();
    block_on(read_until(&mut shard, "READY"));
    assert_eq!(sim.resumes().len(), 0);
    assert_eq!(sim.identifies().len(), 1);
}

#[test]
fn a_resumable_close_saves_the_final_session_and_a_final_close_clears_it() {
    let sim = simulator();
    let store = MemorySessionStore::new();
    // A long interval: only the close can have saved the last state.
    let build = || checkpointing(&sim, store.clone(), Duration::from_secs(3600));
    let mut shard = build();
    block_on(async {
        read_until(&mut shard, "READY").await;
        assert!(sim.wait_until_live(WAIT));
        sim.dispatch("MESSAGE_CREATE", json!({}));
        assert_eq!(next(&mut shard).await.unwrap().seq(), 2);
        let closed = shard.close(CloseMode::Resumable).await.expect("a session");
        assert_eq!(closed.seq, 2);
        // Drain: the stream ends once the driver has left the session in the store.
        while let Some(item) = shard.next().await {
            item.unwrap();
        }
    });
    assert_eq!(store.get(ShardId::ONE).map(|s| s.seq), Some(2));
    let mut shard = build();
    block_on(async {
        read_until(&mut shard, "RESUMED").await;
        assert!(shard.close(CloseMode::Final).await.is_none());
        while shard.next().await.is_some() {}
    });
    assert_eq!(store.get(ShardId::ONE), None, "a final close ends the session: nothing to resume");
}

/// A store whose saves never complete.
#[derive(Clone, Default)]
struct Stuck {
    saves: Arc<AtomicUsize>,
}

impl SessionStore for Stuck {
    fn load(&self, _: ShardId) -> BoxFuture<'static, Result<Option<ShardSession>, SessionStoreError>> {
        futures::future::ready(Ok(None)).boxed()
    }
    fn save(&self, _: ShardSession) -> BoxFuture<'static, Result<(), SessionStoreError>> {
        self.saves.fetch_add(1, Ordering::SeqCst);
        futures::future::pending().boxed()
    }
    fn clear(&self, _: ShardId) -> BoxFuture<'static, Result<(), SessionStoreError>> {
        futures::future::pending().boxed()
    }
}

#[test]
fn a_store_that_never_answers_neither_stalls_dispatches_nor_piles_up_saves() {
    let sim = simulator();
    let store = Stuck::default();
    let mut shard = checkpointing(&sim, store.clone(), Duration::from_millis(10));
    const EVENTS: u64 = 2_000;
    let started = Instant::now();
    block_on(async {
        read_until(&mut shard, "READY").await;
        assert!(sim.wait_until_live(WAIT));
        let mut seq = 1;
        for n in 0..EVENTS {
            sim.dispatch("MESSAGE_CREATE", json!({ "n": n }));
            if n % 100 == 99 {
                // Let the checkpoint interval pass now and then.
                async_io::Timer::after(Duration::from_millis(15)).await;
            }
            while seq < n + 2 {
                let dispatch = next(&mut shard).await.unwrap();
                assert_eq!(dispatch.seq(), seq + 1);
                seq = dispatch.seq();
            }
        }
    });
    assert!(started.elapsed() < Duration::from_secs(20), "delivery took {:?}", started.elapsed());
    assert_eq!(store.saves.load(Ordering::SeqCst), 1, "one save in flight, the rest coalesced behind it");
}

// ---------------------------------------------------------------------------
// Checkpoints that must not pass what the application has handled, nor stop
// for good, nor let a live session's record expire (review of issue 13.5).

async fn next_group(group: &mut ShardGroup) -> Dispatch {
    match futures::future::select(group.next(), async_io::Timer::after(WAIT)).await {
        futures::future::Either::Left((item, _)) => item.expect("stream ended").expect("no error"),
        futures::future::Either::Right(_) => panic!("no group item within {WAIT:?}"),
    }
}

fn spawn_on_thread(driver: discord_gateway_stream::ShardDriver) {
    std::thread::spawn(move || async_io::block_on(driver));
}

/// A management call on a group (`remove`, `restart`, `shutdown`, ...)
/// drives the group and stashes what the shards deliver meanwhile. A
/// stashed dispatch counts as handled only once the application takes the
/// next item from the group, so no checkpoint covers one it has not seen
/// (a crash would otherwise lose it: the next process resumes past it).
#[test]
fn dispatches_stashed_by_a_management_call_are_not_checkpointed() {
    let sim = simulator();
    let store = MemorySessionStore::new();
    let s0 = ShardId::new(0, 2).unwrap();
    let s1 = ShardId::new(1, 2).unwrap();
    let mut group = ShardGroup::builder(config(&sim.url()), 2)
        .session_store(store.clone())
        .checkpoint_interval(Duration::from_millis(10))
        .spawn_drivers(spawn_on_thread)
        .build()
        .unwrap();
    let mut taken: HashMap<u32, u64> = HashMap::new();
    block_on(async {
        let mut readies = 0;
        while readies < 2 {
            let dispatch = next_group(&mut group).await;
            readies += usize::from(dispatch.event() == "READY");
            taken.insert(dispatch.shard().id, dispatch.seq());
        }
        // Ask for the next item (nothing more is sent yet): both READYs are
        // handled, so shard 0 checkpoints its READY.
        let asked = futures::future::select(group.next(), async_io::Timer::after(Duration::from_millis(50))).await;
        if let futures::future::Either::Left((Some(Ok(dispatch)), _)) = asked {
            taken.insert(dispatch.shard().id, dispatch.seq());
        }
        assert!(sim.wait_for_live_shards(2, WAIT));
        for n in 0..50 {
            sim.dispatch_to_shard(s0, "MESSAGE_CREATE", json!({ "n": n }));
        }
        // Shard 0's driver receives them into its buffer.
        async_io::Timer::after(Duration::from_millis(300)).await;
        // Any management call; this one closes the *other* shard.
        group.remove(s1, CloseMode::Final).await.unwrap();
        // The application has not taken a single one of the 50 dispatches.
        // Give shard 0's (spawned) driver time to checkpoint.
        async_io::Timer::after(Duration::from_millis(300)).await;
    });
    let stored = store.get(s0).expect("shard 0 checkpointed its READY").seq;
    let taken = taken[&0];
    assert!(
        stored <= taken,
        "checkpoint of shard 0 is at seq {stored}, but the application has only taken up to seq {taken}: \
         the dispatches after it sit unhandled in the group's stash and a crash now loses them"
    );
}

/// `restart` (here from a `GroupController`, so nothing is stashed): the
/// new connection resumes the closed one's session, and saves nothing until
/// the application has handled a dispatch of its own, so the old
/// connection's dispatches still queued ahead of it are never covered.
#[test]
fn a_restarted_shard_does_not_checkpoint_past_the_old_connections_unhandled_dispatches() {
    let sim = simulator();
    let store = MemorySessionStore::new();
    let s0 = ShardId::new(0, 1).unwrap();
    let mut group = ShardGroup::builder(config(&sim.url()), 1)
        .session_store(store.clone())
        .checkpoint_interval(Duration::from_millis(10))
        .spawn_drivers(spawn_on_thread)
        .build()
        .unwrap();
    let mut last_taken = 0;
    block_on(async {
        last_taken = next_group(&mut group).await.seq();
        // Ask for the next item (nothing more is sent yet): READY is handled
        // and checkpointed before the test begins.
        let asked = futures::future::select(group.next(), async_io::Timer::after(Duration::from_millis(50))).await;
        if let futures::future::Either::Left((Some(Ok(dispatch)), _)) = asked {
            last_taken = dispatch.seq();
        }
        assert!(sim.wait_until_live(WAIT));
        eventually("READY checkpointed", || store.get(s0).is_some());
        for n in 0..50 {
            sim.dispatch_to_shard(s0, "MESSAGE_CREATE", json!({ "n": n }));
        }
        async_io::Timer::after(Duration::from_millis(300)).await;
        let controller = group.controller();
        let restart = std::thread::spawn(move || block_on(controller.restart(s0)));
        // The application takes one dispatch at a time (slowly) while the
        // group carries out the restart.
        while !restart.is_finished() {
            let step = futures::future::select(group.next(), async_io::Timer::after(Duration::from_millis(20))).await;
            if let futures::future::Either::Left((Some(Ok(dispatch)), _)) = step {
                last_taken = dispatch.seq();
                // Working on it.
                async_io::Timer::after(Duration::from_millis(20)).await;
            }
        }
        restart.join().unwrap().unwrap();
        // Now the application pauses; the new connection runs (spawned).
        async_io::Timer::after(Duration::from_millis(500)).await;
    });
    let stored = store.get(s0).expect("checkpointed").seq;
    assert!(
        stored <= last_taken,
        "checkpoint at seq {stored}, but the application has only taken up to seq {last_taken}"
    );
}

/// The file store refuses records older than `max_age` (default 10 min) and
/// Redis expires them after its TTL (default 10 min), counted from the last
/// save. A shard whose guilds are quiet for longer than that (heartbeats
/// only: the session is alive) re-saves its unchanged session every third
/// of the store's expiry, so a crash still resumes instead of identifying.
/// Scaled down: max_age 500 ms, quiet for 1.5 s.
#[test]
fn a_quiet_but_alive_shard_still_resumes_after_a_crash() {
    quiet_shard(Some(Duration::from_millis(500)));
}

/// The control for the test above: the same run without an age limit resumes.
#[test]
fn a_quiet_shard_resumes_when_records_never_expire() {
    quiet_shard(None);
}

fn quiet_shard(max_age: Option<Duration>) {
    let sim = simulator();
    let dir = temp_dir(&format!("quiet-{}", max_age.is_some()));
    let store = FileSessionStore::new(&dir).unwrap().max_age(max_age);
    let mut shard = checkpointing(&sim, store.clone(), Duration::from_millis(10));
    block_on(async {
        assert_eq!(next(&mut shard).await.unwrap().event(), "READY");
        // Keep asking for the next item (READY handled); nothing arrives.
        let until = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < until {
            let _ = futures::future::select(shard.next(), async_io::Timer::after(Duration::from_millis(50))).await;
        }
    });
    assert!(sim.is_live(), "the session is alive and heartbeating");
    let raw = FileSessionStore::new(&dir).unwrap().max_age(None);
    assert!(block_on(raw.load(ShardId::ONE)).unwrap().is_some(), "a checkpoint was written");
    // A crash.
    drop(shard);
    let deadline = Instant::now() + WAIT;
    while sim.is_live() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    let identifies = sim.identifies().len();
    let mut shard = Shard::builder(config(&sim.url())).session_store(store).build().unwrap();
    let first = block_on(next(&mut shard)).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        (first.event(), sim.identifies().len()),
        ("RESUMED", identifies),
        "the session was alive when the process died, yet the next one identified"
    );
}

/// A store whose first save never answers (a lost reply, a hung
/// connection) and which works afterwards.
#[derive(Clone, Default)]
struct StuckOnce {
    inner: MemorySessionStore,
    saves: Arc<AtomicUsize>,
}

impl SessionStore for StuckOnce {
    fn load(&self, shard: ShardId) -> BoxFuture<'static, Result<Option<ShardSession>, SessionStoreError>> {
        self.inner.load(shard)
    }
    fn save(&self, session: ShardSession) -> BoxFuture<'static, Result<(), SessionStoreError>> {
        if self.saves.fetch_add(1, Ordering::SeqCst) == 0 {
            return futures::future::pending().boxed();
        }
        self.inner.save(session)
    }
    fn clear(&self, shard: ShardId) -> BoxFuture<'static, Result<(), SessionStoreError>> {
        self.inner.clear(shard)
    }
}

/// A store request that never answers (a lost reply, a hung connection) is
/// dropped after its timeout and the next checkpoint is tried: one lost
/// reply does not end checkpointing for the life of the shard.
#[test]
fn one_lost_store_reply_does_not_end_checkpointing_for_good() {
    let sim = simulator();
    let store = StuckOnce::default();
    let mut shard = checkpointing(&sim, store.clone(), Duration::from_millis(10));
    block_on(async {
        assert_eq!(next(&mut shard).await.unwrap().event(), "READY");
        assert!(sim.wait_until_live(WAIT));
        for n in 0..5 {
            sim.dispatch("MESSAGE_CREATE", json!({ "n": n }));
        }
        // Handle everything, for 30 s (far beyond any sensible store timeout).
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until && store.inner.get(ShardId::ONE).is_none() {
            let _ = futures::future::select(shard.next(), async_io::Timer::after(Duration::from_millis(50))).await;
        }
    });
    assert!(
        store.inner.get(ShardId::ONE).is_some(),
        "no checkpoint in 30 s after one lost reply (saves attempted: {})",
        store.saves.load(Ordering::SeqCst)
    );
}

// ---------------------------------------------------------------------------
// SIGKILL end to end: a child process streams a group of shards from the
// simulator (which lives in this process) with a file store, is killed, and
// its successor resumes every shard.

const CHILD_SIM_URL: &str = "DGS_STORE_CHILD_SIM_URL";
const CHILD_DIR: &str = "DGS_STORE_CHILD_DIR";
const CHILD_TEST: &str = "child_process_streams_a_group_with_a_file_store";
const TOTAL: u32 = 3;
const CHILD_INTERVAL: Duration = Duration::from_millis(100);

/// Not a test on its own: the body of the child processes of
/// [`a_process_killed_mid_stream_is_resumed_by_the_next_without_an_identify`].
/// Returns at once unless the parent set its environment.
#[test]
fn child_process_streams_a_group_with_a_file_store() {
    let (Ok(url), Ok(dir)) = (std::env::var(CHILD_SIM_URL), std::env::var(CHILD_DIR)) else {
        return;
    };
    let store = FileSessionStore::new(dir).expect("store");
    let mut group = ShardGroup::builder(config(&url), TOTAL)
        .session_store(store)
        .checkpoint_interval(CHILD_INTERVAL)
        .build()
        .expect("group");
    block_on(async {
        // The parent kills us long before; never outlive it by much.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let timeout = async_io::Timer::at(deadline);
            let item = match futures::future::select(group.next(), timeout).await {
                futures::future::Either::Left((item, _)) => item,
                futures::future::Either::Right(_) => return,
            };
            let dispatch = item.expect("group stream ended").expect("no shard stops");
            // Line by line (stdout is line buffered): printed means handled.
            println!("SEQ {} {} {}", dispatch.shard().id, dispatch.seq(), dispatch.event());
        }
    });
}

/// What a child printed: per shard, the `(seq, event)` pairs in order.
type Printed = Arc<Mutex<BTreeMap<u32, Vec<(u64, String)>>>>;

fn spawn_child(url: &str, dir: &Path) -> (Child, Printed) {
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = Command::new(exe)
        .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD_SIM_URL, url)
        .env(CHILD_DIR, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the child test process");
    let printed: Printed = Arc::default();
    let out = child.stdout.take().unwrap();
    let sink = Arc::clone(&printed);
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            // libtest's "test … " may precede the first line on the same line.
            let Some(at) = line.find("SEQ ") else { continue };
            let fields: Vec<&str> = line[at..].split_whitespace().collect();
            let [_, shard, seq, event] = fields[..] else { panic!("bad line {line:?}") };
            let entry = (seq.parse().unwrap(), event.to_owned());
            sink.lock().unwrap().entry(shard.parse().unwrap()).or_default().push(entry);
        }
    });
    (child, printed)
}

fn shard(id: u32) -> ShardId {
    ShardId::new(id, TOTAL).unwrap()
}

fn checkpoint(dir: &Path, id: u32) -> Option<ShardSession> {
    let store = FileSessionStore::new(dir).unwrap().max_age(None);
    block_on(store.load(shard(id))).unwrap()
}

#[test]
fn a_process_killed_mid_stream_is_resumed_by_the_next_without_an_identify() {
    let sim = simulator();
    let dir = temp_dir("sigkill");
    let url = sim.url();
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        // Events for every shard, before, during and after the crash.
        scope.spawn(|| {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for id in 0..TOTAL {
                    sim.dispatch_to_shard(shard(id), "MESSAGE_CREATE", json!({ "n": n }));
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
        });

        let (mut first, printed) = spawn_child(&url, &dir);
        assert!(sim.wait_for_live_shards(TOTAL as usize, WAIT * 3), "three shards identified");
        // Mid-stream: every shard has handled plenty and checkpointed past READY.
        eventually("checkpoints past READY", || {
            (0..TOTAL).all(|id| checkpoint(&dir, id).is_some_and(|c| c.session.seq > 50))
        });
        first.kill().expect("SIGKILL the child");
        first.wait().unwrap();
        eventually("the simulator sees the shards gone", || sim.live_shards().is_empty());
        let first_printed = printed.lock().unwrap().clone();
        let checkpoints: Vec<ShardSession> =
            (0..TOTAL).map(|id| checkpoint(&dir, id).expect("a checkpoint survives the kill")).collect();
        let identifies = sim.identifies().len();
        assert_eq!(identifies, TOTAL as usize);

        let (mut second, printed) = spawn_child(&url, &dir);
        assert!(sim.wait_for_live_shards(TOTAL as usize, WAIT * 3), "three shards resumed");
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        // Everything committed reaches the second child.
        let last: Vec<u64> = (0..TOTAL).map(|id| sim.shard_session_log(shard(id)).last().unwrap().seq).collect();
        eventually("the second child received everything", || {
            let printed = printed.lock().unwrap();
            (0..TOTAL).all(|id| {
                printed.get(&id).and_then(|seqs| seqs.last()).is_some_and(|(seq, _)| *seq >= last[id as usize])
            })
        });
        second.kill().unwrap();
        second.wait().unwrap();
        let second_printed = printed.lock().unwrap().clone();

        assert_eq!(sim.identifies().len(), identifies, "zero Identifies in the second run");
        let resumes = sim.resumes();
        assert_eq!(resumes.len(), TOTAL as usize, "one Resume per shard");
        for (id, stored) in (0..TOTAL).zip(&checkpoints) {
            assert_eq!(stored.shard, shard(id));
            assert_eq!(Some(&stored.session.id), sim.shard_session_id(shard(id)).as_ref());
            let c = stored.session.seq;
            // The checkpoint never claims what the first child had not handled.
            let handled = first_printed[&id].last().unwrap().0;
            assert!(c <= handled, "shard {id}: checkpoint {c} after the last handled {handled}");
            let resumed = resumes.iter().find(|r| r.d().unwrap()["session_id"] == stored.session.id.as_str());
            assert_eq!(resumed.expect("resumed its session").d().unwrap()["seq"], c);
            // At least once from the checkpoint: the second child starts at
            // or before c + 1 and has no gap up to the end.
            let seqs: Vec<u64> = second_printed[&id].iter().map(|(seq, _)| *seq).collect();
            assert!(seqs[0] <= c + 1, "shard {id}: first seq {} after checkpoint {c}", seqs[0]);
            assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "shard {id}: gap in {seqs:?}");
            assert!(*seqs.last().unwrap() >= last[id as usize]);
            assert!(second_printed[&id].iter().any(|(_, event)| event == "RESUMED"));
            assert!(second_printed[&id].iter().all(|(_, event)| event != "READY"));
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
}
