//! The sans-IO identify schedule: buckets, window and daily budget, fed the
//! current `Instant` (gateway-protocol §7.2). [`LocalIdentifyQueue`](super::LocalIdentifyQueue)
//! wraps it with a timer.

use std::time::{Duration, Instant};

use super::limits::{IdentifyLimits, OnBudgetExhausted, BUDGET_PERIOD};
use super::IdentifyError;
use crate::ShardId;

/// When one shard may identify, as handed out by [`IdentifySchedule::reserve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    /// The earliest instant the Identify may be sent.
    pub at: Instant,
    bucket: usize,
    /// The bucket's `next_free` before this reservation, to give the slot back.
    previous: Option<Instant>,
    /// Which budget window the start was counted in (`None`: no budget).
    epoch: Option<u64>,
}

#[derive(Debug, Clone)]
struct Budget {
    total: u32,
    remaining: u32,
    resets_at: Instant,
    /// Starts counted in this window may not happen before this instant
    /// (set when a waiting reservation rolled the window over early).
    not_before: Option<Instant>,
    epoch: u64,
}

impl Budget {
    /// Starts a new window once the old one has reset.
    fn roll(&mut self) {
        self.not_before = Some(self.resets_at);
        self.remaining = self.total;
        self.resets_at += BUDGET_PERIOD;
        self.epoch += 1;
    }
}

/// First-come, first-served identify slots: one per bucket per window, all
/// buckets in parallel, within the daily budget. Reads no clock.
#[derive(Debug, Clone)]
pub struct IdentifySchedule {
    limits: IdentifyLimits,
    /// Per bucket: the earliest instant its next Identify may go.
    next_free: Vec<Option<Instant>>,
    budget: Option<Budget>,
}

impl IdentifySchedule {
    /// A schedule for `limits`; `now` anchors the budget's `reset_after`.
    pub fn new(limits: IdentifyLimits, now: Instant) -> IdentifySchedule {
        let buckets = usize::try_from(limits.max_concurrency).unwrap_or(1).max(1);
        let budget = limits.budget.map(|limit| Budget {
            total: limit.total,
            remaining: limit.remaining.min(limit.total),
            resets_at: now + Duration::from_millis(limit.reset_after),
            not_before: None,
            epoch: 0,
        });
        IdentifySchedule { limits, next_free: vec![None; buckets], budget }
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

    /// Reserves the next Identify slot of `shard`'s bucket and counts one
    /// session start. Errors when the budget is at its reserve and the
    /// policy is [`OnBudgetExhausted::Fail`].
    pub fn reserve(&mut self, shard: ShardId, now: Instant) -> Result<Reservation, IdentifyError> {
        let bucket = usize::try_from(self.limits.bucket(shard.id)).unwrap_or(0) % self.next_free.len();
        let previous = self.next_free[bucket];
        let mut at = previous.map_or(now, |free| free.max(now));
        let mut epoch = None;
        if let Some(budget) = self.budget.as_mut() {
            while now >= budget.resets_at {
                budget.roll();
            }
            if budget.remaining <= self.limits.reserve {
                match self.limits.on_exhausted {
                    OnBudgetExhausted::Fail => {
                        return Err(IdentifyError::BudgetExhausted {
                            remaining: budget.remaining,
                            reserve: self.limits.reserve,
                            reset_after: budget.resets_at.saturating_duration_since(now),
                        });
                    }
                    OnBudgetExhausted::WaitForReset => {
                        tracing::warn!(
                            remaining = budget.remaining,
                            reset_after = ?budget.resets_at.saturating_duration_since(now),
                            "session start budget exhausted; identify waits for the reset"
                        );
                        budget.roll();
                    }
                }
            }
            if let Some(not_before) = budget.not_before {
                at = at.max(not_before);
            }
            budget.remaining -= 1;
            epoch = Some(budget.epoch);
        }
        self.next_free[bucket] = Some(at + self.limits.spacing());
        Ok(Reservation { at, bucket, previous, epoch })
    }

    /// Gives back a reservation whose Identify was never sent: the session
    /// start is refunded and, if nobody reserved after it, the slot too.
    pub fn cancel(&mut self, reservation: Reservation) {
        if let (Some(budget), Some(epoch)) = (self.budget.as_mut(), reservation.epoch) {
            if budget.epoch == epoch {
                budget.remaining = (budget.remaining + 1).min(budget.total);
            }
        }
        if let Some(slot) = self.next_free.get_mut(reservation.bucket) {
            if *slot == Some(reservation.at + self.limits.spacing()) {
                *slot = reservation.previous;
            }
        }
    }
}
