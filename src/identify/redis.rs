//! An identify queue shared through Redis
//! (`docs/rate-limits.md#identify-concurrency`,
//! `docs/sharding.md#shard-formula`, `docs/edge-cases.md#identify-collisions`):
//! every process of a bot, on any machine, takes the same buckets and the same
//! daily budget.
//!
//! One Lua script does the whole decision atomically on the server, and
//! Redis's own clock decides every expiry, so machines with skewed clocks
//! agree. Keys (all under one hash tag, so the script runs in Redis Cluster):
//!
//! - `{prefix}:bucket:<n>`: the lease of bucket `n = shard_id % max_concurrency`,
//!   set when an Identify is granted, for one window plus its margin
//!   ([`IdentifyLimits::spacing`]). Its value names the
//!   holder and is unique to one acquire (`pid <pid> shard [id, total] nonce
//!   <random>-<count>`), so a retried script knows its own grant. Nothing
//!   ever deletes it: it expires, so a process that crashes holding it
//!   blocks the bucket for at most one window.
//! - `{prefix}:budget`: session starts left in the daily window, expiring when
//!   the window resets (only when the limits carry a
//!   [`SessionStartLimit`](super::SessionStartLimit)).
//! - `{prefix}:budget:seeded`: outlives the budget key by 24 h, so that an
//!   absent budget key is known to mean "the window has reset" rather than
//!   "never seeded".

use std::sync::Arc;
use std::time::{Duration, Instant};

use ::redis::{ErrorKind, RedisError, RetryMethod, Script, Value};
use futures_util::future::BoxFuture;

use super::limits::{IdentifyLimits, OnBudgetExhausted, BUDGET_PERIOD};
use super::schedule::later;
use super::{IdentifyError, IdentifyPermit, IdentifyQueue};
use crate::shard_id::ShardId;

/// First wait after a transient Redis error; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between retries after transient Redis errors.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Longest sleep before asking Redis again while the budget is exhausted
/// (so an operator's change to the budget key is noticed).
const MAX_BUDGET_POLL: Duration = Duration::from_secs(60);
/// Shortest sleep before asking again about a busy bucket (PTTL rounds down).
const MIN_WAIT: Duration = Duration::from_millis(1);

/// The key prefix used when the caller passes an empty one: an empty hash tag
/// `{}` would not pin the keys to one cluster slot.
const DEFAULT_PREFIX: &str = "discord-gateway-stream:identify";

/// The lease-and-budget decision, atomic on the server.
///
/// KEYS: bucket lease, budget, budget marker. ARGV: holder, spacing ms, budget
/// tracked (`1`/`0`), seed value, seed ttl ms, reserve, budget period ms, total.
///
/// The marker holds the end of the current budget window (Redis `TIME`, ms)
/// and the starts last known left (`end:left`, updated with every start),
/// and outlives the budget key by a period, so the windows are fixed,
/// `reset_after` + k × 24 h, as in [`LocalIdentifyQueue`](super::LocalIdentifyQueue).
/// An absent budget key is then:
/// - a reset, if the marker's window has ended: `total` until the next end;
/// - a loss (eviction, a failover to a lagging replica), if it has not:
///   reseeded with the fewest of the marker's last known count and the
///   caller's most careful `remaining` (never more than it last saw), until
///   the marker's end;
/// - the first use, without a marker: the caller's limits.
///
/// A lease that already holds this acquire's holder nonce is the grant of an
/// earlier run whose reply was lost (a response timeout, a dropped
/// connection) and that the caller retried: it is granted again with the
/// budget as it is, without another `DECR`.
///
/// Replies `{0, remaining or -1, reset ms}` (granted), `{1, wait ms}`
/// (bucket leased) or `{2, remaining, reset ms}` (budget at its reserve).
///
/// Needs Redis 5.0 or later: it writes after reading `TIME`, which needs
/// script effects replication, the default since 5.0. It avoids `KEEPTTL`
/// (6.0) by rewriting the marker with its own remaining `PTTL`.
const ACQUIRE_SCRIPT: &str = r"
if redis.pcall('GET', KEYS[1]) == ARGV[1] then
  local remaining, reset = -1, 0
  if ARGV[3] == '1' then
    local left = redis.call('GET', KEYS[2])
    if left then
      remaining = tonumber(left) or -1
      reset = math.max(redis.call('PTTL', KEYS[2]), 0)
    end
  end
  return {0, remaining, reset}
end
local lease = redis.call('PTTL', KEYS[1])
if lease == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, tonumber(ARGV[2])}
end
if lease >= 0 then
  return {1, lease}
end
local remaining = -1
local reset = 0
if ARGV[3] == '1' then
  local period = tonumber(ARGV[7])
  local marker = redis.call('GET', KEYS[3])
  local window_end, known = nil, nil
  if marker then
    local w, k = string.match(marker, '^(%d+):?(%d*)$')
    window_end, known = tonumber(w), tonumber(k)
  end
  if redis.call('EXISTS', KEYS[2]) == 0 then
    local clock = redis.call('TIME')
    local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
    local value = tonumber(ARGV[4])
    if window_end == nil then
      window_end = now + tonumber(ARGV[5])
    elseif window_end <= now then
      while window_end <= now do
        window_end = window_end + period
      end
      value = tonumber(ARGV[8])
    elseif known ~= nil and known < value then
      value = known
    end
    redis.call('SET', KEYS[2], value, 'PX', window_end - now)
    redis.call('SET', KEYS[3], string.format('%d:%d', window_end, value), 'PX', window_end - now + period)
  end
  local left = tonumber(redis.call('GET', KEYS[2]))
  if left == nil then
    return redis.error_reply('ERR identify budget key ' .. KEYS[2] .. ' does not hold an integer')
  end
  reset = redis.call('PTTL', KEYS[2])
  if reset < 0 then
    redis.call('PEXPIRE', KEYS[2], period)
    reset = period
  end
  if left <= tonumber(ARGV[6]) then
    return {2, left, reset}
  end
  remaining = redis.call('DECR', KEYS[2])
  local current = redis.call('GET', KEYS[3])
  if current then
    local w = string.match(current, '^(%d+)')
    local ttl = redis.call('PTTL', KEYS[3])
    if w and ttl > 0 then
      redis.call('SET', KEYS[3], w .. ':' .. remaining, 'PX', ttl)
    elseif w and ttl == -1 then
      redis.call('SET', KEYS[3], w .. ':' .. remaining)
    end
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {0, remaining, reset}
";

/// An [`IdentifyQueue`] shared through Redis: one Identify per
/// `shard_id % max_concurrency` bucket per window (5 s) and one daily
/// session-start budget for every process that uses the same Redis and key
/// prefix
/// (`docs/rate-limits.md#identify-concurrency`,
/// `docs/sharding.md#shard-formula`, `docs/edge-cases.md#identify-collisions`).
///
/// `C` is your async Redis connection: a `ConnectionManager` (reconnects by
/// itself: use this one) or a cluster connection. A plain
/// [`MultiplexedConnection`](::redis::aio::MultiplexedConnection) works
/// until Redis restarts, then never reconnects, and the queue would retry on
/// it forever. After a failover the connection must follow the new primary:
/// `READONLY` from a demoted node is retried, not escaped. It is cloned for
/// every request. The `redis` feature turns on
/// redis-rs's `smol-comp`, whose timers run on any executor, so the shards'
/// acquire futures may be polled anywhere; add `tokio-comp` to your own
/// `redis` dependency to run connections on tokio (redis-rs then uses tokio
/// inside a tokio runtime and smol elsewhere). Use `redis` 1.x.
///
/// Needs Redis 5.0 or later (tested with 7.0): the script writes after
/// reading the server's `TIME`, which needs script effects replication, the
/// default since 5.0.
///
/// How it decides:
///
/// - A Lua script checks the bucket's lease key, then the budget key, then
///   sets the lease (`PX` window plus margin, [`IdentifyLimits::spacing`])
///   and counts the start, all atomically; Redis's
///   clock decides every expiry. A busy bucket answers with its remaining
///   lease, which the caller sleeps ([`async_io::Timer`], any runtime).
/// - The budget key is seeded once with the limits' `remaining`, expiring at
///   their `reset_after` (counted from [`new`](Self::new)); windows are then
///   fixed, `reset_after` + k × 24 h, as in the local queue. A marker key
///   keeps the window's end and the count left, so a budget key evicted or
///   lost mid-window is reseeded with no more than that count (and never
///   more than this process last saw), not taken for a reset. Run Redis
///   without eviction of these keys (`noeviction`) and with persistence.
///   Without a [`SessionStartLimit`](super::SessionStartLimit) in the limits
///   there is no budget key.
/// - Within one process the waiters of a bucket queue up locally, so only the
///   first asks Redis at each expiry.
/// - Transient Redis errors (I/O, dropped connection, timeouts, `LOADING`,
///   `BUSY`, `TRYAGAIN`, `CLUSTERDOWN`, `MASTERDOWN`, `READONLY`, `OOM`, a
///   script cache lost twice, …) are logged and retried with a backoff from
///   100 ms to 5 s, for as long as it takes. Anything else (a script error,
///   a key of the wrong type, refused authentication or permission, an
///   unexpected reply) resolves
///   [`IdentifyError::Backend`].
/// - Retries are idempotent: each acquire leases its bucket under a holder
///   nonce of its own, so a script that ran but whose reply was lost
///   (redis-rs's response timeout) finds its own lease when retried and is
///   granted without counting a second start. A retry later than the lease
///   (one spacing) counts again, erring on the safe side: a start may be
///   counted twice, never missed.
/// - Dropping the future is safe: nothing is held in Redis while waiting. If
///   it is dropped while the script is in flight, the script may still grant:
///   the bucket then stays leased for one window and one start is counted,
///   erring on the safe side.
///
/// A crashed process cannot wedge a bucket: its lease simply expires (a lease
/// found without an expiry is given one window).
///
/// Keys, under the prefix given to [`new`](Self::new): `{prefix}:bucket:<n>`
/// holds the lease of concurrency bucket `n`, `{prefix}:budget` the session
/// starts left, and `{prefix}:budget:seeded` records that a budget window was
/// seeded. Delete the last two together to make the next Identify seed the
/// budget from its queue's limits again.
///
/// Clone it (cheap) to share it between shards and groups; every clone is
/// the same queue.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use discord_gateway_stream::identify::{IdentifyLimits, RedisIdentifyQueue, SessionStartLimit};
/// let client = redis::Client::open("redis://127.0.0.1/")?;
/// let connection = client.get_multiplexed_async_connection().await?;
/// // From GET /gateway/bot's `session_start_limit`:
/// let limit = SessionStartLimit { total: 1000, remaining: 990, reset_after: 3_600_000, max_concurrency: 16 };
/// let queue = RedisIdentifyQueue::new(connection, "my-bot", IdentifyLimits::from_session_start_limit(limit));
/// # Ok(())
/// # }
/// ```
pub struct RedisIdentifyQueue<C> {
    inner: Arc<Inner<C>>,
}

struct Inner<C> {
    connection: C,
    /// `{prefix}`: the hash tag every key starts with.
    tag: String,
    limits: IdentifyLimits,
    /// When `limits`' `reset_after` started counting.
    created: Instant,
    /// One waiting line per bucket, in this process.
    lines: Vec<async_lock::Mutex<()>>,
    script: Script,
    /// The fewest starts Redis reported left, and until when that window
    /// lasts: a budget key lost in Redis is never reseeded above it.
    last_seen: std::sync::Mutex<Option<(u32, Instant)>>,
}

impl<C> RedisIdentifyQueue<C>
where
    C: ::redis::aio::ConnectionLike + Clone + Send + Sync + 'static,
{
    /// A queue enforcing `limits` through Redis, under keys starting with
    /// `{key_prefix}` (an empty prefix becomes
    /// `discord-gateway-stream:identify`). Every process of the bot must use
    /// the same prefix and the same limits; the budget's `reset_after` counts
    /// from now. The prefix is the keys' cluster hash tag, so it should not
    /// contain `{` or `}`. Sends nothing to Redis until the first
    /// [`acquire`](IdentifyQueue::acquire).
    pub fn new(connection: C, key_prefix: impl Into<String>, limits: IdentifyLimits) -> Self {
        // Braces would end the hash tag early (CROSSSLOT in a cluster).
        let mut prefix = key_prefix.into().replace(['{', '}'], "_");
        if prefix.is_empty() {
            prefix = DEFAULT_PREFIX.to_owned();
        }
        let buckets = usize::try_from(limits.max_concurrency).unwrap_or(1).max(1);
        RedisIdentifyQueue {
            inner: Arc::new(Inner {
                connection,
                tag: format!("{{{prefix}}}"),
                limits,
                created: Instant::now(),
                lines: (0..buckets).map(|_| async_lock::Mutex::new(())).collect(),
                script: Script::new(ACQUIRE_SCRIPT),
                last_seen: std::sync::Mutex::new(None),
            }),
        }
    }

    /// The limits this queue enforces.
    pub fn limits(&self) -> IdentifyLimits {
        self.inner.limits
    }

    /// Session starts left in the shared budget window: `None` when the
    /// limits track no budget; the value the next Identify would seed when
    /// no process has seeded it yet (or it has reset).
    pub async fn remaining(&self) -> Result<Option<u32>, IdentifyError> {
        if self.inner.limits.budget.is_none() {
            return Ok(None);
        }
        let mut connection = self.inner.connection.clone();
        let (left, marker): (Option<i64>, Option<String>) = ::redis::cmd("MGET")
            .arg(self.inner.budget_key())
            .arg(self.inner.marker_key())
            .query_async(&mut connection)
            .await
            .map_err(|error| IdentifyError::Backend(format!("reading the identify budget: {error}")))?;
        Ok(match (left, marker, self.inner.limits.budget) {
            (Some(left), _, _) => Some(u32::try_from(left.max(0)).unwrap_or(u32::MAX)),
            (None, Some(_), Some(limit)) => Some(limit.total),
            (None, _, _) => self.inner.seed(Instant::now()).map(|(seed, _)| seed),
        })
    }
}

/// Key names, for the crate's tests (through `fuzzing`).
#[cfg_attr(not(feature = "fuzzing"), allow(dead_code))]
impl<C> RedisIdentifyQueue<C> {
    /// The Redis key holding the lease of `bucket` (`{prefix}:bucket:<bucket>`).
    pub(crate) fn bucket_key(&self, bucket: u32) -> String {
        self.inner.bucket_key(bucket)
    }

    /// The Redis key holding the session starts left (`{prefix}:budget`).
    pub(crate) fn budget_key(&self) -> String {
        self.inner.budget_key()
    }

    /// The Redis key recording that a budget window was seeded
    /// (`{prefix}:budget:seeded`).
    pub(crate) fn budget_marker_key(&self) -> String {
        self.inner.marker_key()
    }
}

impl<C> Inner<C> {
    fn bucket_key(&self, bucket: u32) -> String {
        format!("{}:bucket:{bucket}", self.tag)
    }

    fn budget_key(&self) -> String {
        format!("{}:budget", self.tag)
    }

    fn marker_key(&self) -> String {
        format!("{}:budget:seeded", self.tag)
    }

    /// What to seed an absent budget key with, and for how many ms: the
    /// limits' `remaining` until their `reset_after` has passed, then `total`
    /// for a full period.
    fn seed(&self, now: Instant) -> Option<(u32, u64)> {
        let limit = self.limits.budget?;
        // A malformed `reset_after` above a day is taken as a day.
        let resets_at = later(self.created, self.limits.budget_reset_after().unwrap_or(Duration::ZERO));
        let (value, ttl) = if now < resets_at {
            (limit.remaining.min(limit.total), millis(resets_at - now).max(1))
        } else {
            (limit.total, millis(BUDGET_PERIOD))
        };
        // Never more than Redis last said was left in a window still running.
        let seen = *self.last_seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let value = match seen {
            Some((left, until)) if now < until => value.min(left),
            _ => value,
        };
        Some((value, ttl))
    }

    /// Remembers what Redis reported left, for [`seed`](Self::seed).
    fn saw_remaining(&self, remaining: i64, reset_after: Duration) {
        let Ok(remaining) = u32::try_from(remaining) else { return };
        // `reset_after` is Redis's PTTL: never trusted not to overflow.
        let until = later(Instant::now(), reset_after);
        let mut seen = self.last_seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *seen = Some(match *seen {
            Some((left, end)) if Instant::now() < end && left < remaining => (left, end),
            _ => (remaining, until),
        });
    }
}

impl<C> Clone for RedisIdentifyQueue<C> {
    fn clone(&self) -> Self {
        RedisIdentifyQueue { inner: Arc::clone(&self.inner) }
    }
}

impl<C> std::fmt::Debug for RedisIdentifyQueue<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisIdentifyQueue")
            .field("prefix", &self.inner.tag)
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

impl<C> IdentifyQueue for RedisIdentifyQueue<C>
where
    C: ::redis::aio::ConnectionLike + Clone + Send + Sync + 'static,
{
    fn acquire(&self, shard: ShardId) -> BoxFuture<'static, Result<IdentifyPermit, IdentifyError>> {
        let inner = Arc::clone(&self.inner);
        // The lease alone spaces Identifies: holding it until READY would
        // need renewing it while held, or a crashed holder would block the
        // bucket for the whole hold.
        Box::pin(async move { inner.acquire(shard).await.map(|()| IdentifyPermit::new()) })
    }
}

/// The script's answer.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    /// Identify now; the budget has this many starts left (`None`:
    /// untracked) until it resets.
    Granted { remaining: Option<i64>, reset_after: Duration },
    /// The bucket is leased for this long.
    Busy(Duration),
    /// The budget is at its reserve; it resets in this long.
    Exhausted { remaining: i64, reset_after: Duration },
}

impl<C> Inner<C>
where
    C: ::redis::aio::ConnectionLike + Clone + Send + Sync + 'static,
{
    async fn acquire(&self, shard: ShardId) -> Result<(), IdentifyError> {
        let bucket = self.limits.bucket(shard.id);
        let line = usize::try_from(bucket).unwrap_or(0) % self.lines.len();
        // First in this process's line for the bucket; dropped (with the
        // future) when granted, refused or withdrawn.
        let _turn = self.lines[line].lock().await;
        // The same for every retry of this acquire, never another's.
        let holder = holder_nonce(shard);
        let bucket_key = self.bucket_key(bucket);
        let budget_key = self.budget_key();
        let marker_key = self.marker_key();
        let total = self.limits.budget.map_or(0, |limit| limit.total);
        let spacing = millis(self.limits.spacing()).max(1);
        let mut connection = self.connection.clone();
        let mut backoff = MIN_BACKOFF;
        loop {
            let seed = self.seed(Instant::now());
            let mut invocation = self.script.key(&bucket_key);
            invocation
                .key(&budget_key)
                .key(&marker_key)
                .arg(&holder)
                .arg(spacing)
                .arg(if seed.is_some() { "1" } else { "0" })
                .arg(seed.map_or(0, |(value, _)| value))
                .arg(seed.map_or(1, |(_, ttl)| ttl))
                .arg(self.limits.effective_reserve())
                .arg(millis(BUDGET_PERIOD))
                .arg(total);
            let reply = match invocation.invoke_async::<Value>(&mut connection).await {
                Ok(reply) => reply,
                Err(error) if is_transient(&error) => {
                    tracing::warn!(%shard, %error, retry_in = ?backoff, "identify queue: Redis failed; retrying");
                    async_io::Timer::after(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
                Err(error) => {
                    tracing::error!(%shard, %error, "identify queue: Redis refused the identify script");
                    return Err(IdentifyError::Backend(format!("identify script failed: {error}")));
                }
            };
            backoff = MIN_BACKOFF;
            match decode(&reply)? {
                Decision::Granted { remaining, reset_after } => {
                    tracing::debug!(%shard, bucket, ?remaining, "identify permit granted by Redis");
                    if let Some(remaining) = remaining {
                        self.saw_remaining(remaining, reset_after);
                    }
                    return Ok(());
                }
                Decision::Busy(wait) => {
                    tracing::debug!(%shard, bucket, ?wait, "waiting for an identify slot (Redis lease)");
                    async_io::Timer::after(wait.max(MIN_WAIT)).await;
                }
                Decision::Exhausted { remaining, reset_after } => {
                    self.saw_remaining(remaining, reset_after);
                    let remaining = u32::try_from(remaining.max(0)).unwrap_or(u32::MAX);
                    match self.limits.on_exhausted {
                        OnBudgetExhausted::Fail => {
                            return Err(IdentifyError::BudgetExhausted {
                                remaining,
                                reserve: self.limits.effective_reserve(),
                                reset_after,
                            });
                        }
                        OnBudgetExhausted::WaitForReset => {
                            tracing::warn!(
                                %shard,
                                remaining,
                                ?reset_after,
                                "session start budget exhausted; identify waits for the reset"
                            );
                            async_io::Timer::after(reset_after.clamp(MIN_WAIT, MAX_BUDGET_POLL)).await;
                        }
                    }
                }
            }
        }
    }
}

/// Reads the script's reply; anything else is a backend error.
fn decode(reply: &Value) -> Result<Decision, IdentifyError> {
    let unexpected = || IdentifyError::Backend(format!("unexpected reply from the identify script: {reply:?}"));
    let Value::Array(items) = reply else {
        return Err(unexpected());
    };
    let mut numbers = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::Int(number) => numbers.push(*number),
            _ => return Err(unexpected()),
        }
    }
    let duration = |ms: i64| Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    match numbers.as_slice() {
        [0, remaining, reset] => {
            Ok(Decision::Granted { remaining: (*remaining >= 0).then_some(*remaining), reset_after: duration(*reset) })
        }
        [1, wait] => Ok(Decision::Busy(duration(*wait))),
        [2, remaining, reset] => Ok(Decision::Exhausted { remaining: *remaining, reset_after: duration(*reset) }),
        _ => Err(unexpected()),
    }
}

/// Whether retrying later may succeed: connection trouble, a server that is
/// loading, failing over or out of memory, a script running too long.
/// Script errors, wrong types, permissions and authentication are final.
fn is_transient(error: &RedisError) -> bool {
    if matches!(error.kind(), ErrorKind::AuthenticationFailed | ErrorKind::InvalidClientConfig) {
        return false;
    }
    // NOSCRIPT twice (the cache lost between redis-rs's load and its retry,
    // a restart or failover): the next attempt loads the script again.
    if matches!(error.code(), Some("BUSY" | "OOM" | "MISCONF" | "NOREPLICAS" | "LOADING" | "NOSCRIPT"))
        || error.kind() == ErrorKind::Server(::redis::ServerErrorKind::NoScript)
    {
        return true;
    }
    !matches!(error.retry_method(), RetryMethod::NoRetry)
}

/// The lease value of one acquire: who holds it, and a nonce no other
/// acquire uses, in this process (a counter) or any other on any machine
/// (a random per-process key: process ids repeat across machines).
fn holder_nonce(shard: ShardId) -> String {
    use std::hash::BuildHasher;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    static COUNT: AtomicU64 = AtomicU64::new(0);
    static PROCESS_KEY: OnceLock<u64> = OnceLock::new();
    // RandomState's keys come from the OS's randomness; the time and pid
    // only add to it.
    let key = *PROCESS_KEY.get_or_init(|| {
        let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        std::collections::hash_map::RandomState::new().hash_one((std::process::id(), since_epoch))
    });
    let count = COUNT.fetch_add(1, Ordering::Relaxed);
    format!("pid {} shard {shard} nonce {key:016x}-{count}", std::process::id())
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The script's three answers, and nothing else, are understood.
    #[test]
    fn decode_reads_the_three_answers_and_refuses_the_rest() {
        let reply = |numbers: &[i64]| Value::Array(numbers.iter().map(|n| Value::Int(*n)).collect());
        let ms = Duration::from_millis;
        assert_eq!(decode(&reply(&[0, 7, 900])), Ok(Decision::Granted { remaining: Some(7), reset_after: ms(900) }));
        assert_eq!(decode(&reply(&[0, -1, 0])), Ok(Decision::Granted { remaining: None, reset_after: ms(0) }));
        assert_eq!(decode(&reply(&[1, 250])), Ok(Decision::Busy(Duration::from_millis(250))));
        assert_eq!(
            decode(&reply(&[2, 0, 9000])),
            Ok(Decision::Exhausted { remaining: 0, reset_after: Duration::from_secs(9) })
        );
        assert!(matches!(decode(&reply(&[3, 1])), Err(IdentifyError::Backend(_))));
        assert!(matches!(decode(&Value::Nil), Err(IdentifyError::Backend(_))));
    }

    /// Issue 12.5: every acquire leases under a nonce of its own, naming
    /// its shard; the script needs nothing newer than Redis 5.0 (`KEEPTTL`
    /// is 6.0).
    #[test]
    fn every_acquire_has_its_own_holder_nonce_and_the_script_avoids_keepttl() {
        let shard = ShardId::new(3, 8).expect("valid shard");
        let (a, b) = (holder_nonce(shard), holder_nonce(shard));
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("pid {} shard {shard} nonce ", std::process::id())), "{a}");
        assert!(!ACQUIRE_SCRIPT.contains("KEEPTTL"));
    }

    /// Connection trouble is retried; a script error is not.
    #[test]
    fn transient_errors_are_told_from_final_ones() {
        let io = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(is_transient(&io));
        let script = RedisError::from((ErrorKind::Server(::redis::ServerErrorKind::ResponseError), "script failed"));
        assert!(!is_transient(&script));
        let loading = RedisError::from((ErrorKind::Server(::redis::ServerErrorKind::BusyLoading), "loading"));
        assert!(is_transient(&loading));
    }
}
