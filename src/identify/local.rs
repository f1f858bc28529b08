//! The in-process identify queue.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use futures_util::future::BoxFuture;

use super::schedule::{IdentifySchedule, Reservation, Turn};
use super::{IdentifyError, IdentifyLimits, IdentifyPermit, IdentifyQueue};
use crate::shard_id::ShardId;

/// An [`IdentifyQueue`] for shards in one process: one Identify per
/// `shard_id % max_concurrency` bucket per window (5 s), buckets in parallel,
/// first come first served, within the daily budget when one is given. A
/// bucket is held until the previous Identify's READY (or failure), even
/// past the window (`docs/rate-limits.md#holding-the-bucket-until-ready`), but never longer than
/// [`IdentifyLimits::max_hold`] (default: 60 s plus the spacing), so a shard
/// whose driver is no longer polled cannot block its bucket forever.
///
/// Clone it (cheap) to share it between shards and groups; every clone is
/// the same queue.
///
/// ```
/// use discord_gateway_stream::identify::{IdentifyLimits, LocalIdentifyQueue, SessionStartLimit};
/// // From GET /gateway/bot's `session_start_limit`:
/// let limit = SessionStartLimit { total: 1000, remaining: 1000, reset_after: 0, max_concurrency: 16 };
/// let queue = LocalIdentifyQueue::new(IdentifyLimits::from_session_start_limit(limit));
/// ```
#[derive(Clone)]
pub struct LocalIdentifyQueue {
    schedule: Arc<Mutex<IdentifySchedule>>,
}

impl LocalIdentifyQueue {
    /// A queue enforcing `limits`; the budget's `reset_after` counts from now.
    pub fn new(limits: IdentifyLimits) -> LocalIdentifyQueue {
        LocalIdentifyQueue { schedule: Arc::new(Mutex::new(IdentifySchedule::new(limits, Instant::now()))) }
    }

    /// Session starts left in the budget window (`None`: no budget tracked).
    pub fn remaining(&self) -> Option<u32> {
        self.lock().remaining(Instant::now())
    }

    /// The limits this queue enforces.
    pub fn limits(&self) -> IdentifyLimits {
        self.lock().limits()
    }

    fn lock(&self) -> MutexGuard<'_, IdentifySchedule> {
        lock(&self.schedule)
    }
}

/// The schedule, whatever a panicking holder left: nothing panics while
/// holding it, and its state stays consistent either way.
fn lock(schedule: &Mutex<IdentifySchedule>) -> MutexGuard<'_, IdentifySchedule> {
    schedule.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Default for LocalIdentifyQueue {
    /// One bucket, 5 s window, no budget tracking: safe for any bot.
    fn default() -> Self {
        LocalIdentifyQueue::new(IdentifyLimits::new(1))
    }
}

impl std::fmt::Debug for LocalIdentifyQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalIdentifyQueue").field("limits", &self.limits()).finish()
    }
}

/// Gives the reservation back if the waiting future is dropped before its slot.
struct Pending {
    schedule: Arc<Mutex<IdentifySchedule>>,
    reservation: Option<Reservation>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(reservation) = self.reservation.take() {
            lock(&self.schedule).cancel(&reservation);
        }
    }
}

impl IdentifyQueue for LocalIdentifyQueue {
    fn acquire(&self, shard: ShardId) -> BoxFuture<'static, Result<IdentifyPermit, IdentifyError>> {
        let schedule = Arc::clone(&self.schedule);
        Box::pin(async move {
            let reservation = lock(&schedule).reserve(shard, Instant::now())?;
            let mut pending = Pending { schedule, reservation: Some(reservation) };
            loop {
                let polled = lock(&pending.schedule).poll_grant(&reservation, Instant::now());
                match polled {
                    Turn::Granted => {
                        pending.reservation = None;
                        let schedule = Arc::clone(&pending.schedule);
                        return Ok(IdentifyPermit::on_release(move || {
                            lock(&schedule).release(&reservation);
                        }));
                    }
                    Turn::Refused(error) => {
                        pending.reservation = None;
                        return Err(error);
                    }
                    Turn::Wait(retry_at) => {
                        tracing::trace!(%shard, wait = ?retry_at.saturating_duration_since(Instant::now()), "waiting for an identify slot");
                        async_io::Timer::at(retry_at).await;
                    }
                }
            }
        })
    }
}
