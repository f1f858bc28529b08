//! The sans-IO identify schedule: buckets, window and daily budget, fed the
//! current `Instant` (gateway-protocol §7.2). [`LocalIdentifyQueue`](super::LocalIdentifyQueue)
//! wraps it with a timer.
//!
//! Each bucket is a first-come, first-served line. A request is granted
//! when it heads its bucket's line, the previous grant has been released
//! (its READY came, or its attempt failed: E15 holds the key until READY),
//! and a full spacing has passed since that grant, measured when the grant
//! happens rather than planned ahead: a shard that is late to take its turn
//! (a busy executor) pushes the next one back instead of letting two
//! Identifies arrive closer than the window.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::limits::{IdentifyLimits, OnBudgetExhausted, BUDGET_PERIOD};
use super::IdentifyError;
use crate::ShardId;

/// A place in a bucket's line, from [`IdentifySchedule::reserve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    id: u64,
    bucket: usize,
    /// Not before this (a start counted in the next budget window).
    not_before: Option<Instant>,
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
            resets_at: now + Duration::from_millis(limit.reset_after),
            not_before: None,
            epoch: 0,
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

    /// Joins the line of `shard`'s bucket and counts one session start.
    /// Errors when the budget is at its reserve and the policy is
    /// [`OnBudgetExhausted::Fail`].
    pub fn reserve(&mut self, shard: ShardId, now: Instant) -> Result<Reservation, IdentifyError> {
        let bucket = usize::try_from(self.limits.bucket(shard.id)).unwrap_or(0) % self.buckets.len();
        let mut not_before = None;
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
            not_before = budget.not_before.filter(|at| *at > now);
            budget.remaining -= 1;
            epoch = Some(budget.epoch);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.buckets[bucket].line.push_back(id);
        Ok(Reservation { id, bucket, not_before, epoch })
    }

    /// Grants `reservation` if its turn has come at `now` (it leaves the
    /// line and the bucket's spacing restarts from `now`); otherwise returns
    /// when to ask again. A reservation no longer in line (granted or
    /// cancelled) is granted at once.
    pub fn poll_grant(&mut self, reservation: &Reservation, now: Instant) -> Result<(), Instant> {
        let spacing = self.limits.spacing();
        let Some(bucket) = self.buckets.get_mut(reservation.bucket) else { return Ok(()) };
        let Some(position) = bucket.line.iter().position(|id| *id == reservation.id) else { return Ok(()) };
        let mut turn = bucket.last_grant.map_or(now, |last| last + spacing);
        if let Some(not_before) = reservation.not_before {
            turn = turn.max(not_before);
        }
        if bucket.holder.is_some() && now >= turn {
            // The previous Identify has not seen READY yet: ask again soon
            // (a release does not wake waiters; they poll at 1/20 spacing).
            return Err(now + spacing / 20);
        }
        if position == 0 && now >= turn {
            bucket.line.pop_front();
            bucket.last_grant = Some(now);
            bucket.holder = Some(reservation.id);
            return Ok(());
        }
        // An estimate: those ahead take one spacing each, if on time.
        let ahead = u32::try_from(position).unwrap_or(u32::MAX);
        Err(turn.max(now) + spacing.saturating_mul(ahead))
    }

    /// The granted `reservation`'s Identify has its outcome (READY, or the
    /// attempt failed): the bucket's next turn no longer waits for it.
    pub fn release(&mut self, reservation: &Reservation) {
        if let Some(bucket) = self.buckets.get_mut(reservation.bucket) {
            if bucket.holder == Some(reservation.id) {
                bucket.holder = None;
            }
        }
    }

    /// Withdraws a reservation that was not granted: it leaves the line and
    /// its session start is refunded.
    pub fn cancel(&mut self, reservation: &Reservation) {
        let Some(bucket) = self.buckets.get_mut(reservation.bucket) else { return };
        let Some(position) = bucket.line.iter().position(|id| *id == reservation.id) else { return };
        bucket.line.remove(position);
        if let (Some(budget), Some(epoch)) = (self.budget.as_mut(), reservation.epoch) {
            if budget.epoch == epoch {
                budget.remaining = (budget.remaining + 1).min(budget.total);
            }
        }
    }
}
