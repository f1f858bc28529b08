//! Identify coordination (`docs/rate-limits.md#identify-concurrency`): who may
//! send Identify, and when.
//!
//! Every Identify a shard sends waits for an [`IdentifyQueue`]; Resumes never
//! do. Discord allows one Identify per `shard_id % max_concurrency` bucket per
//! 5 s and a daily budget of session starts, shared by every shard of the bot,
//! across processes and machines. Exceeding the buckets earns op 9; exceeding
//! the daily budget resets the bot's token.
//!
//! - [`LocalIdentifyQueue`]: the in-process implementation.
//! - `RedisIdentifyQueue` (feature `redis`): the same rules shared through Redis
//!   by every process, on every machine.
//!
//! # In one process: [`LocalIdentifyQueue`]
//!
//! It keeps one first-come line per bucket, buckets in parallel, and spaces
//! grants by the window plus a margin (2%, 100 ms of Discord's 5 s) measured
//! from the actual grant, so a shard late to take its turn pushes the next
//! one back instead of letting two Identifies arrive too close. A shard holds
//! its [`IdentifyPermit`] until READY (or until the attempt fails), and the
//! bucket waits for it even past the window: a slow READY would otherwise
//! earn the next shard op 9 (`docs/rate-limits.md#holding-the-bucket-until-ready`).
//! The hold is capped by [`IdentifyLimits::max_hold`]. The daily budget is
//! counted; at its [`reserve`](IdentifyLimits::reserve) the queue fails the
//! shard with `ShardError::Identify(IdentifyError::BudgetExhausted { reset_after, .. })`
//! (default) or, with [`OnBudgetExhausted::WaitForReset`], holds it until the
//! reset. Share one queue (clone it) between every group of the process.
//!
//! # Across processes: `RedisIdentifyQueue` (feature `redis`)
//!
//! Discord allows one Identify per bucket per 5 s and one daily budget across
//! **all** processes of the bot (`docs/rate-limits.md#identify-concurrency`).
//! With shards spread over several processes or machines, give every
//! [`ShardGroup`](crate::ShardGroup) the same `RedisIdentifyQueue`:
//!
//! ```ignore
//! let conn = redis::Client::open("redis://redis.internal/")?.get_connection_manager().await?; // or multiplexed / cluster
//! let limits = IdentifyLimits::from_session_start_limit(session_start_limit); // from GET /gateway/bot
//! let queue = RedisIdentifyQueue::new(conn, "my-bot", limits);
//! let group = ShardGroup::builder(config, 64).shards(16..32).identify_queue(queue).build()?;
//! ```
//!
//! - Use the same key prefix and limits in every process. One Lua script takes
//!   the bucket's lease (`PX` = window + margin) and counts the start,
//!   atomically; Redis's clock decides every expiry, so machines with skewed
//!   clocks agree. The lease is not held until READY (unlike the local queue):
//!   that would need renewing it while held, or a crashed holder would block
//!   the bucket for the whole hold.
//! - A crashed process cannot wedge a bucket: its lease expires after one
//!   window. While Redis is unreachable, identifies wait and retry (backoff up
//!   to 5 s, logged); resumes never wait. Script or type errors end the shard
//!   with [`IdentifyError::Backend`].
//! - Within a process, waiters of a bucket line up locally (a fair lock) and
//!   only the first asks Redis.
//! - Retries are idempotent: every acquire takes its lease under its own
//!   holder nonce, and a retry whose first reply was lost (a response
//!   timeout) gets the same grant back without counting a second start. A
//!   retry after the lease expired (one window) counts again: a start may be
//!   counted twice, never missed. Needs Redis 5.0 or later (no `KEEPTTL`).
//! - The budget follows fixed windows (`reset_after` + k × 24 h), as in the
//!   local queue. A window marker remembers the window's end and the count
//!   left, so an evicted budget key is not mistaken for a reset; if Redis
//!   loses everything, each process reseeds no higher than it last saw.
//!   Still, run Redis with `maxmemory-policy noeviction` (or no maxmemory) and
//!   persistence for these keys.
//! - Use a `ConnectionManager` (or a cluster connection): a plain
//!   `MultiplexedConnection` does not reconnect after Redis restarts, and the
//!   queue would retry on it forever. After a failover, the connection must
//!   follow the new primary (a `READONLY` replica is retried, not escaped).
//! - Redis Cluster: every key shares the hash tag `{prefix}`, so the scripts'
//!   keys live in one slot. The feature enables redis-rs's `smol-comp`, so the
//!   queue works on any executor; add `tokio-comp` to your own `redis`
//!   dependency to run its connections on tokio.
//! - Tested with a real `redis-server` on loopback (`tests/identify_redis.rs`;
//!   `.ci/run` installs it): two OS processes, each running a `ShardGroup` of
//!   3 of 6 shards (max_concurrency 3, Discord's 5 s window) against one
//!   simulator and one Redis, all 6 Identifies accepted, no bucket twice
//!   within 5 s; and the negative control, a local queue per process, which
//!   the simulator catches colliding.

mod error;
mod limits;
mod local;
mod permit;
#[cfg(feature = "redis")]
mod redis;
pub(crate) mod schedule;

use futures_util::future::BoxFuture;

#[cfg(feature = "redis")]
pub use self::redis::RedisIdentifyQueue;
pub use error::IdentifyError;
pub use limits::{IdentifyLimits, OnBudgetExhausted, SessionStartLimit, IDENTIFY_WINDOW};
pub use local::LocalIdentifyQueue;
pub use permit::IdentifyPermit;

use crate::shard_id::ShardId;

/// Decides when a shard may send Identify.
///
/// A shard calls [`acquire`](Self::acquire) before every Identify (never before
/// a Resume) and identifies once the future resolves `Ok`. It holds the
/// [`IdentifyPermit`] until the Identify's outcome is known (READY, or the
/// attempt failed: op 9, a lost connection, a timeout) and then drops it, so a
/// queue can hold the bucket until READY
/// (`docs/rate-limits.md#holding-the-bucket-until-ready`). Dropping the future
/// withdraws the request (the connection ended while waiting); an
/// implementation should give back what it reserved for it. An `Err` is final
/// for that shard: it stops and reports the error.
///
/// Implement it to plug in your own coordinator (a gateway proxy, a database).
pub trait IdentifyQueue: Send + Sync + 'static {
    /// Resolves when `shard` may identify.
    fn acquire(&self, shard: ShardId) -> BoxFuture<'static, Result<IdentifyPermit, IdentifyError>>;
}

impl<Q: IdentifyQueue + ?Sized> IdentifyQueue for std::sync::Arc<Q> {
    fn acquire(&self, shard: ShardId) -> BoxFuture<'static, Result<IdentifyPermit, IdentifyError>> {
        (**self).acquire(shard)
    }
}
