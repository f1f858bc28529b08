//! `RedisIdentifyQueue` against a real `redis-server` on loopback
//! (`docs/rate-limits.md#identify-concurrency`,
//! `docs/sharding.md#shard-formula`, `docs/edge-cases.md#identify-collisions`):
//! buckets and the daily budget shared by queues, connections and OS processes.
//!
//! Each test starts its own `redis-server` on a free port. Without one on
//! `PATH` each test prints one line saying how to run it and passes, so the
//! README's test command works on a machine with nothing but Rust; with
//! `DGS_REQUIRE_REDIS=1` (which `.ci/run` sets) a missing server fails the
//! test instead, so CI can never skip them silently.
#![cfg(feature = "redis")]

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use discord_gateway_stream::identify::{
    IdentifyError, IdentifyLimits, IdentifyQueue, OnBudgetExhausted, RedisIdentifyQueue, SessionStartLimit,
};
use discord_gateway_stream::{fuzzing, ShardId};
use redis::aio::{ConnectionManager, MultiplexedConnection};

#[macro_use]
mod support;

use support::redis_server::{connect, RedisServer};

/// A short window, so the tests take a second, not a minute.
const WINDOW: Duration = Duration::from_millis(300);
/// Grants are timed on the client, one loopback round trip after Redis
/// decided; two decisions a window apart may be seen this much closer.
const SLACK: Duration = Duration::from_millis(30);

fn shard(id: u32) -> ShardId {
    ShardId::new(id, 64).expect("valid shard")
}

fn budget(total: u32, remaining: u32, reset_after: Duration, max_concurrency: u32) -> IdentifyLimits {
    IdentifyLimits::from_session_start_limit(SessionStartLimit {
        total,
        remaining,
        reset_after: u64::try_from(reset_after.as_millis()).unwrap(),
        max_concurrency,
    })
}

/// Asserts that, per bucket, grants are at least one window (less the
/// round-trip slack) apart.
fn assert_spaced(grants: &[(u32, Duration)], window: Duration) {
    let mut by_bucket: BTreeMap<u32, Vec<Duration>> = BTreeMap::new();
    for (bucket, at) in grants {
        by_bucket.entry(*bucket).or_default().push(*at);
    }
    for (bucket, mut times) in by_bucket {
        times.sort();
        for pair in times.windows(2) {
            assert!(pair[1] - pair[0] >= window - SLACK, "bucket {bucket} granted twice within the window: {times:?}");
        }
    }
}

/// `docs/rate-limits.md#identify-concurrency`,
/// `docs/edge-cases.md#identify-collisions`: two queues (separate connections,
/// as two processes would have) share the buckets: one Identify per bucket per
/// window, every bucket in parallel.
#[tokio::test]
async fn queues_sharing_redis_space_a_bucket_by_the_window_and_run_buckets_together() {
    let server = redis_server!();
    let limits = IdentifyLimits::new(2).with_window(WINDOW);
    let a = RedisIdentifyQueue::new(server.connection().await, "bot", limits);
    let b = RedisIdentifyQueue::new(server.connection().await, "bot", limits);
    let start = Instant::now();
    let requests = [(&a, 0), (&b, 2), (&a, 4), (&b, 6), (&a, 1), (&b, 3)];
    let grants = futures::future::join_all(requests.iter().map(|(queue, id)| async move {
        drop(queue.acquire(shard(*id)).await.expect("permit"));
        (id % 2, start.elapsed())
    }))
    .await;
    assert_spaced(&grants, WINDOW);
    let first = |bucket: u32| grants.iter().filter(|(b, _)| *b == bucket).map(|(_, at)| *at).min().unwrap();
    assert!(first(0) < WINDOW / 2 && first(1) < WINDOW / 2, "buckets 0 and 1 go together: {grants:?}");
    let last = grants.iter().map(|(_, at)| *at).max().unwrap();
    assert!(last >= WINDOW * 3 - SLACK, "four identifies in bucket 0 span three windows: {grants:?}");
    assert!(last < WINDOW * 3 + Duration::from_millis(400), "no needless waiting: {grants:?}");
}

/// `docs/rate-limits.md#daily-session-start-budget`: the daily budget is shared; at
/// its reserve the queue refuses with `BudgetExhausted` (reset time from
/// Redis), and a queue created later with a fresher `remaining` does not reseed
/// it.
#[tokio::test]
async fn at_the_budget_reserve_acquire_fails_with_budget_exhausted() {
    let server = redis_server!();
    let limits = budget(1000, 2, Duration::from_secs(60), 16);
    let queue = RedisIdentifyQueue::new(server.connection().await, "bot", limits);
    assert_eq!(queue.remaining().await, Ok(Some(2)), "not seeded yet: the limits' remaining");
    drop(queue.acquire(shard(0)).await.expect("first start"));
    drop(queue.acquire(shard(1)).await.expect("second start"));
    match queue.acquire(shard(2)).await {
        Err(IdentifyError::BudgetExhausted { remaining: 0, reserve: 0, reset_after }) => {
            assert!(reset_after <= Duration::from_secs(60) && reset_after > Duration::from_secs(55), "{reset_after:?}");
        }
        other => panic!("expected BudgetExhausted, got {other:?}"),
    }
    assert_eq!(queue.remaining().await, Ok(Some(0)));
    let later =
        RedisIdentifyQueue::new(server.connection().await, "bot", budget(1000, 1000, Duration::from_secs(60), 16));
    assert!(matches!(later.acquire(shard(3)).await, Err(IdentifyError::BudgetExhausted { remaining: 0, .. })));

    // The reserve is kept unused.
    let reserved = RedisIdentifyQueue::new(server.connection().await, "reserve", limits.reserve(1));
    drop(reserved.acquire(shard(0)).await.expect("one start above the reserve"));
    assert!(matches!(
        reserved.acquire(shard(1)).await,
        Err(IdentifyError::BudgetExhausted { remaining: 1, reserve: 1, .. })
    ));
}

/// `docs/rate-limits.md#daily-session-start-budget`: with `WaitForReset` an identify
/// past the budget waits until the window resets, then the budget is `total`
/// again.
#[tokio::test]
async fn with_wait_for_reset_an_exhausted_budget_holds_the_identify_until_the_reset() {
    let server = redis_server!();
    let reset_after = Duration::from_millis(600);
    let limits = budget(5, 1, reset_after, 4).on_exhausted(OnBudgetExhausted::WaitForReset);
    let queue = RedisIdentifyQueue::new(server.connection().await, "bot", limits);
    let start = Instant::now();
    drop(queue.acquire(shard(0)).await.expect("the last start"));
    assert!(start.elapsed() < Duration::from_millis(200));
    drop(queue.acquire(shard(1)).await.expect("after the reset"));
    let waited = start.elapsed();
    assert!(waited >= reset_after - SLACK, "granted before the reset: {waited:?}");
    assert!(waited < reset_after + Duration::from_millis(500), "waited too long: {waited:?}");
    // Not the stale `remaining` (1) of the limits: a fresh window of `total` (5), one used.
    assert_eq!(queue.remaining().await, Ok(Some(4)));
}

/// A crashed holder cannot wedge a bucket: its lease expires by Redis's
/// clock and the next identify goes then.
#[tokio::test]
async fn a_lease_left_by_a_crashed_holder_delays_the_next_identify_only_until_it_expires() {
    let server = redis_server!();
    let queue = RedisIdentifyQueue::new(server.connection().await, "bot", IdentifyLimits::new(1).with_window(WINDOW));
    let mut raw = server.connection().await;
    let lease = Duration::from_millis(400);
    let _: () = redis::cmd("SET")
        .arg(fuzzing::redis_bucket_key(&queue, 0))
        .arg("pid 1 shard [0, 1] (crashed)")
        .arg("PX")
        .arg(400)
        .query_async(&mut raw)
        .await
        .unwrap();
    let start = Instant::now();
    drop(queue.acquire(shard(0)).await.expect("permit"));
    let waited = start.elapsed();
    assert!(waited >= lease - SLACK && waited < lease + Duration::from_millis(300), "waited {waited:?}");

    // A lease someone set without an expiry is given one window, not forever.
    let _: () = redis::cmd("SET")
        .arg(fuzzing::redis_bucket_key(&queue, 0))
        .arg("no expiry")
        .query_async(&mut raw)
        .await
        .unwrap();
    let start = Instant::now();
    drop(queue.acquire(shard(1)).await.expect("permit"));
    let waited = start.elapsed();
    assert!(waited >= WINDOW - SLACK && waited < WINDOW + Duration::from_millis(300), "waited {waited:?}");
}

/// The `IdentifyQueue` contract: dropping a waiting acquire withdraws it and
/// leaves the bucket usable (no lease is held while waiting, and the local
/// line moves on).
#[tokio::test]
async fn dropping_a_waiting_acquire_does_not_wedge_the_bucket() {
    let server = redis_server!();
    let queue = RedisIdentifyQueue::new(server.connection().await, "bot", IdentifyLimits::new(2).with_window(WINDOW));
    let start = Instant::now();
    drop(queue.acquire(shard(0)).await.expect("first permit"));
    // Shard 2 waits first in line for bucket 0, shard 4 behind it; shard 2 gives up.
    let withdrawn = tokio::time::timeout(Duration::from_millis(50), queue.acquire(shard(2)));
    let next = async {
        drop(queue.acquire(shard(4)).await.expect("permit after the withdrawn one"));
        start.elapsed()
    };
    let (withdrawn, granted) = futures::join!(withdrawn, next);
    assert!(withdrawn.is_err(), "shard 2 was still waiting when dropped");
    assert!(granted >= WINDOW - SLACK && granted < WINDOW * 2 - SLACK, "shard 4 got the next slot: {granted:?}");

    // Dropped before its first poll, and dropped while first in line: the line is free.
    drop(queue.acquire(shard(6)));
    let _ = tokio::time::timeout(Duration::from_millis(20), queue.acquire(shard(8))).await;
    let again = Instant::now();
    drop(queue.acquire(shard(10)).await.expect("the bucket still works"));
    assert!(again.elapsed() < WINDOW + Duration::from_millis(200));
}

/// Non-transient errors end the acquire with `Backend`: here a budget key
/// of the wrong type.
#[tokio::test]
async fn a_budget_key_of_the_wrong_type_is_a_backend_error() {
    let server = redis_server!();
    let queue =
        RedisIdentifyQueue::new(server.connection().await, "bot", budget(1000, 1000, Duration::from_secs(60), 1));
    let mut raw = server.connection().await;
    let _: () = redis::cmd("HSET")
        .arg(fuzzing::redis_budget_key(&queue))
        .arg("field")
        .arg(1)
        .query_async(&mut raw)
        .await
        .unwrap();
    let result = tokio::time::timeout(Duration::from_secs(5), queue.acquire(shard(0))).await.expect("no retrying");
    assert!(matches!(result, Err(IdentifyError::Backend(ref message)) if message.contains("WRONGTYPE")), "{result:?}");
}

/// Transient errors (Redis restarting) are retried, not reported: the
/// acquire resolves once Redis is back.
#[tokio::test]
async fn transient_redis_errors_are_retried_until_redis_is_back() {
    let mut server = redis_server!();
    let port = server.port;
    let client = redis::Client::open(server.url()).unwrap();
    let manager = ConnectionManager::new(client).await.expect("connection manager");
    let queue = RedisIdentifyQueue::new(manager, "bot", IdentifyLimits::new(1).with_window(WINDOW));
    drop(queue.acquire(shard(0)).await.expect("permit while Redis is up"));
    server.stop();
    let restart = async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        RedisServer::start_on(port).expect("restart redis-server on the same port")
    };
    let acquire = tokio::time::timeout(Duration::from_secs(20), queue.acquire(shard(1)));
    let (_restarted, result) = futures::join!(restart, acquire);
    drop(result.expect("resolved once Redis was back").expect("permit after the restart"));
}

// ---------------------------------------------------------------------------
// Two OS processes sharing one Redis.

/// Redis loses its data (a restart without persistence, FLUSHALL,
/// a failover to a lagging replica). The queue must not reseed the budget above
/// what Redis last told it was left
/// (`docs/rate-limits.md#daily-session-start-budget`: past the cap the token
/// is reset).
#[tokio::test]
async fn a_budget_lost_in_redis_is_not_reseeded_above_what_was_last_seen() {
    let server = redis_server!();
    let queue =
        RedisIdentifyQueue::new(server.connection().await, "bot", budget(1000, 2, Duration::from_secs(3600), 16));
    drop(queue.acquire(shard(0)).await.expect("first start"));
    drop(queue.acquire(shard(1)).await.expect("second start"));
    assert!(matches!(queue.acquire(shard(2)).await, Err(IdentifyError::BudgetExhausted { .. })));
    let mut raw = server.connection().await;
    let () = redis::cmd("FLUSHALL").query_async(&mut raw).await.expect("FLUSHALL");
    let again = queue.acquire(shard(3)).await;
    assert!(matches!(again, Err(IdentifyError::BudgetExhausted { .. })), "granted past the cap: {again:?}");
}

/// An evicted budget key (it has the shortest TTL, so a
/// `volatile-ttl` policy takes it first) is not a reset while the stored
/// window has not ended.
#[tokio::test]
async fn an_evicted_budget_key_is_not_taken_for_a_reset() {
    let server = redis_server!();
    let queue =
        RedisIdentifyQueue::new(server.connection().await, "bot", budget(1000, 1, Duration::from_secs(3600), 16));
    drop(queue.acquire(shard(0)).await.expect("the last start"));
    assert!(matches!(queue.acquire(shard(1)).await, Err(IdentifyError::BudgetExhausted { .. })));
    // As an eviction would: the budget goes, the window marker stays.
    let mut raw = server.connection().await;
    let () = redis::cmd("DEL").arg(fuzzing::redis_budget_key(&queue)).query_async(&mut raw).await.expect("DEL");
    // Another process, with a stale snapshot of its own, must not revive it
    // either: the window marker remembers the count.
    let other =
        RedisIdentifyQueue::new(server.connection().await, "bot", budget(1000, 1000, Duration::from_secs(3600), 16));
    let revived = other.acquire(shard(2)).await;
    assert!(matches!(revived, Err(IdentifyError::BudgetExhausted { .. })), "budget revived: {revived:?}");
    let here = queue.acquire(shard(3)).await;
    assert!(matches!(here, Err(IdentifyError::BudgetExhausted { .. })), "budget revived here: {here:?}");
}

/// The reserve never takes the last start (as in the local
/// queue), so `reserve >= total` cannot refuse every Identify forever.
#[tokio::test]
async fn the_reserve_never_takes_the_whole_budget() {
    let server = redis_server!();
    let limits = budget(3, 3, Duration::from_secs(60), 1).reserve(3);
    let queue = RedisIdentifyQueue::new(server.connection().await, "bot", limits);
    drop(queue.acquire(shard(0)).await.expect("one start above the capped reserve"));
}

/// Windows are fixed, `reset_after` + k × 24 h, in both
/// queues; the next window is not anchored at the first Identify after
/// the reset.
#[tokio::test]
async fn the_next_budget_window_ends_a_day_after_the_reset() {
    let server = redis_server!();
    let reset_after = Duration::from_millis(200);
    let created = Instant::now();
    let queue = RedisIdentifyQueue::new(server.connection().await, "bot", budget(5, 1, reset_after, 4));
    drop(queue.acquire(shard(0)).await.expect("the old window's last start"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    drop(queue.acquire(shard(1)).await.expect("the new window's first start"));
    let mut raw = server.connection().await;
    let pttl: i64 =
        redis::cmd("PTTL").arg(fuzzing::redis_budget_key(&queue)).query_async(&mut raw).await.expect("PTTL");
    let expected = (reset_after + Duration::from_secs(86_400)).saturating_sub(created.elapsed());
    let drift = pttl - i64::try_from(expected.as_millis()).expect("ms");
    assert!(drift.abs() < 200, "the new window ends {drift} ms away from reset_after + 24 h");
}

/// Issue 12.11: a window, margin and `reset_after` too long for `Instant`
/// and for Redis's `PX` are taken as a day each: the acquire is granted (no
/// backend error, no panic) and the keys expire within days.
#[tokio::test]
async fn huge_durations_are_capped_at_a_day() {
    let server = redis_server!();
    let day: i64 = 24 * 60 * 60 * 1000;
    let limits = IdentifyLimits::from_session_start_limit(SessionStartLimit {
        total: 1000,
        remaining: 1000,
        reset_after: u64::MAX,
        max_concurrency: 1,
    })
    .with_window(Duration::MAX)
    .with_margin(Duration::MAX);
    let queue = RedisIdentifyQueue::new(server.connection().await, "bot", limits);
    let granted = tokio::time::timeout(Duration::from_secs(5), queue.acquire(shard(0))).await.expect("resolves");
    assert!(granted.is_ok(), "{granted:?}");
    let mut raw = server.connection().await;
    let lease: i64 =
        redis::cmd("PTTL").arg(fuzzing::redis_bucket_key(&queue, 0)).query_async(&mut raw).await.expect("PTTL");
    assert!(lease > 2 * day - 60_000 && lease <= 2 * day, "the lease lasts the capped spacing: {lease} ms");
    let reset: i64 =
        redis::cmd("PTTL").arg(fuzzing::redis_budget_key(&queue)).query_async(&mut raw).await.expect("PTTL");
    assert!(reset > day - 60_000 && reset <= day, "the budget resets within a day: {reset} ms");
    assert_eq!(queue.remaining().await, Ok(Some(999)));
}

/// Runs the identify script for real but loses its first reply, as
/// redis-rs's response timeout does when the reply is slow.
#[derive(Clone)]
struct LoseFirstScriptReply {
    inner: MultiplexedConnection,
    lost: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl redis::aio::ConnectionLike for LoseFirstScriptReply {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, redis::Value> {
        Box::pin(async move {
            let is_script = cmd.args_iter().next().is_some_and(|arg| {
                matches!(arg, redis::Arg::Simple(name) if name.eq_ignore_ascii_case(b"EVALSHA") || name.eq_ignore_ascii_case(b"EVAL"))
            });
            let reply = self.inner.req_packed_command(cmd).await?;
            // Only a script that ran (not NOSCRIPT before redis-rs loads it).
            let ran = !matches!(reply, redis::Value::ServerError(_));
            if is_script && ran && !self.lost.swap(true, std::sync::atomic::Ordering::SeqCst) {
                return Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into());
            }
            Ok(reply)
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        self.inner.req_packed_commands(pipeline, offset, count)
    }

    fn get_db(&self) -> i64 {
        0
    }
}

/// Issue 12.5: a script that granted but whose reply was lost is retried;
/// the retry finds the acquire's own lease and is granted at once, with
/// one start counted, not two (nor a window's wait behind itself).
#[tokio::test]
async fn a_retry_after_a_lost_reply_counts_the_start_once() {
    let server = redis_server!();
    let lost = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let connection = LoseFirstScriptReply { inner: server.connection().await, lost: std::sync::Arc::clone(&lost) };
    let period = Duration::from_secs(24 * 60 * 60);
    let limits = budget(1000, 10, Duration::from_secs(60), 1).with_window(WINDOW);
    let queue = RedisIdentifyQueue::new(connection, "bot", limits);
    let start = Instant::now();
    let granted = tokio::time::timeout(Duration::from_secs(10), queue.acquire(shard(0))).await.expect("resolves");
    assert!(granted.is_ok(), "{granted:?}");
    assert!(lost.load(std::sync::atomic::Ordering::SeqCst), "the first reply was lost");
    let waited = start.elapsed();
    assert_eq!(queue.remaining().await, Ok(Some(9)), "one start counted");
    assert!(waited < WINDOW, "the retry did not wait for its own lease: {waited:?}");

    // The marker kept its expiry (the window's end plus a period) through
    // the grant, without KEEPTTL.
    let mut raw = server.connection().await;
    let marker: i64 =
        redis::cmd("PTTL").arg(fuzzing::redis_budget_marker_key(&queue)).query_async(&mut raw).await.expect("PTTL");
    let expected = i64::try_from((Duration::from_secs(60) + period).as_millis()).expect("ms");
    assert!(marker <= expected && marker > expected - 5_000, "marker PTTL {marker} ms");
    let value: String =
        redis::cmd("GET").arg(fuzzing::redis_budget_marker_key(&queue)).query_async(&mut raw).await.expect("GET");
    assert!(value.ends_with(":9"), "the marker knows the count: {value}");

    // Another acquire is another holder: it waits for the lease and counts.
    drop(queue.acquire(shard(1)).await.expect("the next start"));
    assert!(start.elapsed() >= WINDOW - SLACK);
    assert_eq!(queue.remaining().await, Ok(Some(8)));
}

/// Loses the script cache once, right after redis-rs loaded the script (a
/// restart or failover in that gap).
#[derive(Clone)]
struct FlushOnceAfterLoad {
    inner: MultiplexedConnection,
    side: MultiplexedConnection,
    flushed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl redis::aio::ConnectionLike for FlushOnceAfterLoad {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, redis::Value> {
        Box::pin(async move {
            let is_load = cmd
                .args_iter()
                .next()
                .is_some_and(|arg| matches!(arg, redis::Arg::Simple(name) if name.eq_ignore_ascii_case(b"SCRIPT")));
            let reply = self.inner.req_packed_command(cmd).await;
            if is_load && !self.flushed.swap(true, std::sync::atomic::Ordering::SeqCst) {
                let () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut self.side).await?;
            }
            reply
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        self.inner.req_packed_commands(pipeline, offset, count)
    }

    fn get_db(&self) -> i64 {
        0
    }
}

/// NOSCRIPT a second time is retried (the next attempt loads
/// the script again), not a final error that stops the shard.
#[tokio::test]
async fn a_script_cache_lost_during_the_reload_is_retried() {
    let server = redis_server!();
    let connection = FlushOnceAfterLoad {
        inner: server.connection().await,
        side: server.connection().await,
        flushed: std::sync::Arc::default(),
    };
    let queue = RedisIdentifyQueue::new(connection, "bot", IdentifyLimits::new(1).with_window(WINDOW));
    let granted = tokio::time::timeout(Duration::from_secs(10), queue.acquire(shard(0))).await.expect("resolves");
    assert!(granted.is_ok(), "{granted:?}");
}

const CHILD_URL: &str = "DGS_REDIS_CHILD_URL";
const CHILD_SHARDS: &str = "DGS_REDIS_CHILD_SHARDS";
const CHILD_TEST: &str = "child_process_acquires_the_shards_named_in_its_environment";
const PROCESS_MAX_CONCURRENCY: u32 = 3;

/// Not a test on its own: the body of the child processes of
/// [`two_processes_sharing_redis_never_grant_a_bucket_twice_within_the_window`].
/// Returns at once unless the parent set its environment.
#[tokio::test]
async fn child_process_acquires_the_shards_named_in_its_environment() {
    let (Ok(url), Ok(shards)) = (std::env::var(CHILD_URL), std::env::var(CHILD_SHARDS)) else {
        return;
    };
    let limits = IdentifyLimits::new(PROCESS_MAX_CONCURRENCY).with_window(WINDOW);
    let queue = RedisIdentifyQueue::new(connect(&url).await, "multi-process", limits);
    let ids: Vec<u32> = shards.split(',').map(|id| id.parse().expect("shard id")).collect();
    let acquiring = futures::future::join_all(ids.iter().map(|id| {
        let queue = queue.clone();
        async move {
            drop(queue.acquire(shard(*id)).await.expect("permit"));
            let at = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970");
            (*id, at.as_micros())
        }
    }));
    // Never hang the parent: fail instead.
    let grants = tokio::time::timeout(Duration::from_secs(60), acquiring).await.expect("permits within 60 s");
    let mut out = std::io::stdout().lock();
    for (id, micros) in grants {
        writeln!(out, "GRANT {} {id} {micros}", std::process::id()).unwrap();
    }
}

/// `docs/rate-limits.md#identify-concurrency` (one queue for the whole bot,
/// across processes), `docs/edge-cases.md#identify-collisions`: two OS
/// processes whose shards share buckets never identify in the same bucket
/// within one window.
#[test]
fn two_processes_sharing_redis_never_grant_a_bucket_twice_within_the_window() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let exe = std::env::current_exe().expect("test binary path");
    let spawn = |shards: &str| {
        Command::new(&exe)
            .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
            .env(CHILD_URL, server.url())
            .env(CHILD_SHARDS, shards)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the child test process")
    };
    // Buckets (shard % 3): each process has two shards in every bucket.
    let children = [spawn("0,1,2,3,4,5"), spawn("6,7,8,9,10,11")];
    let mut grants = Vec::new();
    let mut pids = Vec::new();
    for child in children {
        let pid = child.id();
        let output = child.wait_with_output().expect("child output");
        assert!(output.status.success(), "child {pid} failed: {}", output.status);
        let stdout = String::from_utf8(output.stdout).expect("utf-8 output");
        // libtest's "test … " may precede the first line on the same line.
        let lines: Vec<&str> = stdout.lines().filter_map(|line| line.find("GRANT ").map(|at| &line[at..])).collect();
        assert_eq!(lines.len(), 6, "child {pid} printed six grants:\n{stdout}");
        for line in lines {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [_, process, id, micros] = fields[..] else { panic!("bad line {line:?}") };
            let id: u32 = id.parse().unwrap();
            pids.push(process.to_owned());
            grants.push((id % PROCESS_MAX_CONCURRENCY, Duration::from_micros(micros.parse().unwrap())));
        }
    }
    pids.dedup();
    assert_eq!(pids.len(), 2, "grants came from two processes");
    assert_spaced(&grants, WINDOW);
    let first = grants.iter().map(|(_, at)| *at).min().unwrap();
    let last = grants.iter().map(|(_, at)| *at).max().unwrap();
    assert!(last - first >= WINDOW * 3 - SLACK, "four grants per bucket span three windows");
}

// ---------------------------------------------------------------------------
// End to end: two OS processes, each running a `ShardGroup`, against one
// simulator and one Redis.

#[cfg(feature = "async-std")]
mod groups {
    use std::collections::BTreeSet;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use super::support::client::fast_policy;
    use discord_gateway_stream::identify::{IdentifyLimits, LocalIdentifyQueue, RedisIdentifyQueue, IDENTIFY_WINDOW};
    use discord_gateway_stream::testing::{IdentifyRecord, Simulator, SimulatorConfig};
    use discord_gateway_stream::{Compression, Config, Intents, ShardGroup, ShardId};
    use futures::StreamExt;

    use super::{connect, RedisServer};

    const SIM_URL: &str = "DGS_GROUP_CHILD_SIM_URL";
    const REDIS_URL: &str = "DGS_GROUP_CHILD_REDIS_URL";
    const RANGE_START: &str = "DGS_GROUP_CHILD_FIRST_SHARD";
    const QUEUE: &str = "DGS_GROUP_CHILD_QUEUE";
    const CHILD_TEST: &str = "groups::child_process_runs_the_shard_group_named_in_its_environment";
    const TOTAL: u32 = 6;
    const PER_PROCESS: u32 = 3;
    const MAX_CONCURRENCY: u32 = 3;
    /// How long a child waits for its shards to be READY.
    const CHILD_WAIT: Duration = Duration::from_secs(45);

    /// Not a test on its own: the body of the child processes of the two
    /// tests below. Returns at once unless the parent set its environment.
    #[tokio::test]
    async fn child_process_runs_the_shard_group_named_in_its_environment() {
        let (Ok(sim_url), Ok(first), Ok(kind)) =
            (std::env::var(SIM_URL), std::env::var(RANGE_START), std::env::var(QUEUE))
        else {
            return;
        };
        let first: u32 = first.parse().expect("first shard");
        let config = Config::new("sim-token", Intents::GUILDS)
            .base_url(sim_url)
            .compression(Compression::None)
            .reconnect_policy(fast_policy());
        // Discord's numbers: three buckets, 5 s.
        let limits = IdentifyLimits::new(MAX_CONCURRENCY);
        let builder = ShardGroup::builder(config, TOTAL).shards(first..first + PER_PROCESS).spawn_drivers(|driver| {
            async_std::task::spawn(driver);
        });
        let builder = match kind.as_str() {
            "redis" => {
                let redis_url = std::env::var(REDIS_URL).expect("redis url");
                builder.identify_queue(RedisIdentifyQueue::new(connect(&redis_url).await, "groups", limits))
            }
            _ => builder.identify_queue(LocalIdentifyQueue::new(limits)),
        };
        let mut group = builder.build().expect("group builds");
        let mut waiting: BTreeSet<u32> = (first..first + PER_PROCESS).collect();
        let deadline = async_io::Timer::after(CHILD_WAIT);
        let until_ready = async {
            while !waiting.is_empty() {
                let item = group.next().await.expect("group stream ended");
                let dispatch = item.expect("no shard stops");
                if dispatch.event() == "READY" {
                    waiting.remove(&dispatch.shard().id);
                    println!("\nREADY {}", dispatch.shard().id);
                }
            }
        };
        futures::pin_mut!(until_ready);
        if let futures::future::Either::Right(_) = futures::future::select(until_ready, deadline).await {
            panic!("shards not READY within {CHILD_WAIT:?}");
        }
    }

    /// Starts a simulator with Discord's limits (3 buckets, 5 s), runs shards
    /// 0..3 and 3..6 of 6 in two child processes with `queue`, and returns
    /// the simulator's identify log once both children saw their shards READY.
    fn run_two_processes(queue: &str, redis: Option<&RedisServer>) -> (Simulator, Vec<IdentifyRecord>) {
        let sim =
            Simulator::start(SimulatorConfig::new().max_concurrency(MAX_CONCURRENCY).identify_window(IDENTIFY_WINDOW))
                .expect("simulator starts");
        let exe = std::env::current_exe().expect("test binary path");
        let children: Vec<_> = [0, PER_PROCESS]
            .into_iter()
            .map(|first| {
                let mut command = Command::new(&exe);
                command
                    .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
                    .env(SIM_URL, sim.url())
                    .env(RANGE_START, first.to_string())
                    .env(QUEUE, queue)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit());
                if let Some(redis) = redis {
                    command.env(REDIS_URL, redis.url());
                }
                command.spawn().expect("spawn the child test process")
            })
            .collect();
        let mut ready = BTreeSet::new();
        for child in children {
            let pid = child.id();
            let output = child.wait_with_output().expect("child output");
            let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
            assert!(output.status.success(), "child {pid} failed: {}\n{stdout}", output.status);
            for line in stdout.lines() {
                if let Some(id) = line.strip_prefix("READY ") {
                    ready.insert(id.parse::<u32>().expect("shard id"));
                }
            }
        }
        assert_eq!(ready, (0..TOTAL).collect(), "every shard of both processes was READY");
        let log = sim.identify_log();
        (sim, log)
    }

    /// `docs/rate-limits.md#identify-concurrency` (every shard of the bot goes
    /// through one queue, across processes),
    /// `docs/edge-cases.md#identify-collisions`: two processes sharing
    /// `RedisIdentifyQueue` identify all 6 shards with no bucket seeing two
    /// Identifies within 5 s.
    #[test]
    fn two_processes_with_shard_groups_sharing_redis_identify_within_discords_limits() {
        let Some(redis) = RedisServer::start() else {
            return;
        };
        let started = Instant::now();
        let (sim, log) = run_two_processes("redis", Some(&redis));
        assert!(sim.identify_violations().is_empty(), "identifies too fast: {:?}", sim.identify_violations());
        let accepted: BTreeSet<ShardId> = log.iter().filter(|r| r.accepted).filter_map(|r| r.shard).collect();
        assert_eq!(accepted.len(), 6, "{log:?}");
        assert_eq!(log.len(), 6, "exactly one Identify per shard: {log:?}");
        for bucket in 0..MAX_CONCURRENCY {
            let times: Vec<Instant> = log.iter().filter(|r| r.bucket == Some(bucket)).map(|r| r.at).collect();
            assert_eq!(times.len(), 2, "bucket {bucket}: one shard of each process");
            assert!(times[1] - times[0] >= IDENTIFY_WINDOW, "bucket {bucket}: {times:?}");
        }
        assert!(started.elapsed() >= IDENTIFY_WINDOW);
    }

    /// The negative control: with a `LocalIdentifyQueue` in each process,
    /// the processes do not see each other's Identifies and the simulator
    /// rejects some (the test above can fail).
    #[test]
    fn two_processes_with_a_local_queue_each_collide_in_the_simulator() {
        let (sim, _log) = run_two_processes("local", None);
        assert!(!sim.identify_violations().is_empty(), "expected a bucket collision: {:?}", sim.identify_log());
    }
}
