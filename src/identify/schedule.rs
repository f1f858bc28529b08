//! The sans-IO identify schedule: buckets, window and daily budget, fed the
//! current `Instant` (`docs/rate-limits.md#identify-concurrency`).
//! [`LocalIdentifyQueue`](super::LocalIdentifyQueue) wraps it with a timer.
//!
//! Each bucket is a first-come, first-served line. A request is granted when it
//! heads its bucket's line, the previous grant has been released (its READY
//! came, or its attempt failed: see
//! `docs/rate-limits.md#holding-the-bucket-until-ready`), and a full spacing
//! has passed since that grant, measured when the grant happens rather than
//! planned ahead: a shard that is late to take its turn (a busy executor)
//! pushes the next one back instead of letting two Identifies arrive closer
//! than the window.
//!
//! A grant holds its bucket for [`IdentifyLimits::max_hold`] at most: a
//! permit never released (its shard's driver is no longer polled) cannot
//! block the bucket forever.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::limits::{IdentifyLimits, OnBudgetExhausted, BUDGET_PERIOD};
use super::IdentifyError;
use crate::shard_id::ShardId;

/// A place in a bucket's line, from [`IdentifySchedule::reserve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    id: u64,
    bucket: usize,
}

/// What [`IdentifySchedule::poll_grant`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Turn {
    /// Identify now; release the reservation once READY (or failure) came.
    Granted,
    /// Not yet: ask again at this instant (an estimate; asking earlier is fine).
    Wait(Instant),
    /// Refused (the daily budget is at its reserve); the reservation has
    /// left the line.
    Refused(IdentifyError),
}

#[derive(Debug, Clone)]
struct Budget {
    total: u32,
    remaining: u32,
    resets_at: Instant,
}

impl Budget {
    /// Starts the windows that have reset by `now`.
    fn roll_to(&mut self, now: Instant) {
        while now >= self.resets_at {
            self.remaining = self.total;
            let next = later(self.resets_at, BUDGET_PERIOD);
            if next == self.resets_at {
                // At the end of `Instant`'s range: nothing later to move to.
                break;
            }
            self.resets_at = next;
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Bucket {
    last_grant: Option<Instant>,
    /// The granted reservation whose outcome (READY or failure) is pending.
    holder: Option<u64>,
    line: VecDeque<u64>,
}

/// One Identify per bucket per spacing, all buckets in parallel, within the
/// daily budget. Reads no clock.
#[derive(Debug, Clone)]
pub struct IdentifySchedule {
    limits: IdentifyLimits,
    buckets: Vec<Bucket>,
    budget: Option<Budget>,
    next_id: u64,
}

impl IdentifySchedule {
    /// A schedule for `limits`; `now` anchors the budget's `reset_after`.
    pub fn new(limits: IdentifyLimits, now: Instant) -> IdentifySchedule {
        let buckets = usize::try_from(limits.max_concurrency).unwrap_or(1).max(1);
        let budget = limits.budget.map(|limit| Budget {
            total: limit.total,
            remaining: limit.remaining.min(limit.total),
            resets_at: later(now, limits.budget_reset_after().unwrap_or(Duration::ZERO)),
        });
        IdentifySchedule { limits, buckets: vec![Bucket::default(); buckets], budget, next_id: 0 }
    }

    /// The limits this schedule enforces.
    pub fn limits(&self) -> IdentifyLimits {
        self.limits
    }

    /// Session starts left in the current budget window (`None`: untracked).
    pub fn remaining(&self, now: Instant) -> Option<u32> {
        let budget = self.budget.as_ref()?;
        Some(if now >= budget.resets_at { budget.total } else { budget.remaining })
    }

    /// The budget's verdict at `now`: `None` when a start may be counted.
    fn budget_refusal(&mut self, now: Instant) -> Option<IdentifyError> {
        let floor = self.limits.effective_reserve();
        let budget = self.budget.as_mut()?;
        budget.roll_to(now);
        (budget.remaining <= floor).then(|| IdentifyError::BudgetExhausted {
            remaining: budget.remaining,
            reserve: floor,
            reset_after: budget.resets_at.saturating_duration_since(now),
        })
    }

    /// Joins the line of `shard`'s bucket. The session start is counted
    /// when it is granted, in the budget window it is granted in. Errors at
    /// once when the budget is already at its reserve and the policy is
    /// [`OnBudgetExhausted::Fail`].
    pub fn reserve(&mut self, shard: ShardId, now: Instant) -> Result<Reservation, IdentifyError> {
        let bucket = usize::try_from(self.limits.bucket(shard.id)).unwrap_or(0) % self.buckets.len();
        if let Some(refusal) = self.budget_refusal(now) {
            if self.limits.on_exhausted == OnBudgetExhausted::Fail {
                return Err(refusal);
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        self.buckets[bucket].line.push_back(id);
        Ok(Reservation { id, bucket })
    }

    /// Grants `reservation` if its turn has come at `now` (it leaves the
    /// line, one session start is counted, and the bucket's spacing
    /// restarts from `now`); otherwise says when to ask again, or refuses
    /// it when the budget is at its reserve under [`OnBudgetExhausted::Fail`].
    /// A reservation no longer in line (granted or cancelled) is granted
    /// at once.
    pub fn poll_grant(&mut self, reservation: &Reservation, now: Instant) -> Turn {
        let spacing = self.limits.spacing();
        let max_hold = self.limits.max_hold();
        let Some(bucket) = self.buckets.get_mut(reservation.bucket) else { return Turn::Granted };
        let Some(position) = bucket.line.iter().position(|id| *id == reservation.id) else { return Turn::Granted };
        let turn = bucket.last_grant.map_or(now, |last| later(last, spacing));
        // The holder's grant is the bucket's last one.
        let hold_ends = bucket.last_grant.map_or(now, |granted| later(granted, max_hold));
        if bucket.holder.is_some() && now >= hold_ends {
            tracing::warn!(
                bucket = reservation.bucket,
                ?max_hold,
                "an identify permit held its bucket past the hold cap (its shard is no longer polled?); the bucket moves on"
            );
            bucket.holder = None;
        }
        if bucket.holder.is_some() && now >= turn {
            // The previous Identify has not seen READY yet. A release wakes
            // nobody, so the head asks again at 1/20 spacing (or when the
            // hold ends); the rest of the line, once a spacing, so a line
            // behind a slow READY does not spin.
            let retry = if position == 0 { later(now, spacing / 20).min(hold_ends) } else { later(now, spacing) };
            return Turn::Wait(retry);
        }
        if position != 0 || now < turn {
            // An estimate: those ahead take one spacing each, if on time;
            // never more than one spacing away, so a waiter moves up soon
            // after one ahead of it withdraws.
            let ahead = u32::try_from(position).unwrap_or(u32::MAX);
            let estimate = later(turn.max(now), spacing.saturating_mul(ahead));
            return Turn::Wait(estimate.min(turn.max(later(now, spacing))));
        }
        if let Some(refusal) = self.budget_refusal(now) {
            return match (self.limits.on_exhausted, &refusal) {
                (OnBudgetExhausted::WaitForReset, IdentifyError::BudgetExhausted { reset_after, .. }) => {
                    tracing::warn!(?reset_after, "session start budget exhausted; identify waits for the reset");
                    Turn::Wait(later(now, *reset_after))
                }
                _ => {
                    self.cancel(reservation);
                    Turn::Refused(refusal)
                }
            };
        }
        if let Some(budget) = self.budget.as_mut() {
            budget.remaining -= 1;
        }
        let Some(bucket) = self.buckets.get_mut(reservation.bucket) else { return Turn::Granted };
        bucket.line.pop_front();
        bucket.last_grant = Some(now);
        bucket.holder = Some(reservation.id);
        Turn::Granted
    }

    /// The granted `reservation`'s Identify has its outcome (READY, or the
    /// attempt failed): the bucket's next turn no longer waits for it. A
    /// release after the hold cap, when the bucket has moved on, changes
    /// nothing.
    pub fn release(&mut self, reservation: &Reservation) {
        if let Some(bucket) = self.buckets.get_mut(reservation.bucket) {
            if bucket.holder == Some(reservation.id) {
                bucket.holder = None;
            }
        }
    }

    /// Withdraws a reservation that was not granted: it leaves the line
    /// (nothing was counted for it).
    pub fn cancel(&mut self, reservation: &Reservation) {
        let Some(bucket) = self.buckets.get_mut(reservation.bucket) else { return };
        if let Some(position) = bucket.line.iter().position(|id| *id == reservation.id) {
            bucket.line.remove(position);
        }
    }
}

/// `at + by`, or when that overflows an instant at least half as far from
/// `at` as the latest one `Instant` can represent: never a panic, whatever
/// durations the limits (or Redis) carry.
pub(crate) fn later(at: Instant, by: Duration) -> Instant {
    let mut by = by;
    loop {
        if let Some(instant) = at.checked_add(by) {
            return instant;
        }
        // Halving ends at zero, and `at + 0` always exists.
        by /= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 12.11: an overflowing sum is the latest representable instant,
    /// not a panic.
    #[test]
    fn later_saturates_instead_of_overflowing() {
        let now = Instant::now();
        assert_eq!(later(now, Duration::from_secs(5)), now + Duration::from_secs(5));
        let far = later(now, Duration::MAX);
        assert!(far > now);
        assert!(later(far, Duration::MAX) >= far);
    }
}
