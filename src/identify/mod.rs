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

mod error;
mod limits;
mod local;
mod permit;
#[cfg(feature = "redis")]
mod redis;
pub(crate) mod schedule;

use futures::future::BoxFuture;

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
