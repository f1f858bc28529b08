//! Reconnect pacing (`docs/connection.md#reconnect-pacing`,
//! `docs/edge-cases.md#reconnect-loops`): exponential backoff with full jitter
//! and a cap, reset only once a connection has stayed healthy.

use std::time::Duration;

use super::rng::Rng;

/// How reconnects are paced. Every field is public and has a documented default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// Ceiling of the first backed-off delay; doubles with every further
    /// consecutive failure. Default 1 s.
    pub base: Duration,
    /// Largest ceiling the doubling reaches. Default 60 s.
    pub cap: Duration,
    /// Smallest backed-off delay, so full jitter never degenerates into a
    /// tight loop (discord.js#9517 waits at least 500 ms). Default 500 ms.
    pub floor: Duration,
    /// How long a connection must stay Active (READY/RESUMED seen) before the
    /// failure count resets. A connection that flaps faster than this keeps
    /// backing off instead of spinning identify calls. Default 30 s.
    pub healthy_after: Duration,
    /// Consecutive resumes that may fail before the session is dropped and a
    /// new one identified (`docs/edge-cases.md#resumes-that-keep-failing`). Default 3.
    pub max_resume_attempts: u32,
    /// Range of the random wait after op 9 `d:false` before identifying again
    /// (`docs/connection.md#invalid-session-op-9`). Default 1 s to 5 s.
    pub invalid_session_wait: (Duration, Duration),
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
            floor: Duration::from_millis(500),
            healthy_after: Duration::from_secs(30),
            max_resume_attempts: 3,
            invalid_session_wait: (Duration::from_secs(1), Duration::from_secs(5)),
        }
    }
}

/// Whether a disconnect refused us outright or dropped a working connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureKind {
    /// The socket never opened, or closed before Hello: back off from the first retry.
    Refused,
    /// A connection that got going was lost: the first retry is immediate
    /// (`docs/connection.md#reconnect-pacing`).
    Dropped,
}

/// Consecutive-failure counter and delay computation.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    failures: u32,
}

impl Backoff {
    pub(crate) fn new() -> Backoff {
        Backoff { failures: 0 }
    }

    /// Consecutive failures since the last healthy connection.
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }

    /// Forgets past failures: the last connection was healthy.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }

    /// Records a failure and returns how long to wait before reconnecting.
    pub(crate) fn next_delay(&mut self, kind: FailureKind, policy: &ReconnectPolicy, rng: &mut Rng) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let backed_off = match kind {
            FailureKind::Refused => self.failures,
            // The first loss after a healthy run reconnects at once.
            FailureKind::Dropped => self.failures - 1,
        };
        if backed_off == 0 {
            return Duration::ZERO;
        }
        let ceiling = ceiling(backed_off, policy);
        rng.duration_between(policy.floor.min(ceiling), ceiling)
    }
}

/// `min(cap, base × 2^(n−1))` for the n-th backed-off attempt.
pub(crate) fn ceiling(n: u32, policy: &ReconnectPolicy) -> Duration {
    let doublings = n.saturating_sub(1).min(31);
    policy.base.saturating_mul(1u32 << doublings).min(policy.cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ReconnectPolicy {
        ReconnectPolicy::default()
    }

    #[test]
    fn first_drop_after_a_healthy_run_reconnects_immediately() {
        // docs/connection.md#reconnect-pacing: op 7, a zombie or a first resume
        // attempt reconnect right away.
        let mut backoff = Backoff::new();
        let delay = backoff.next_delay(FailureKind::Dropped, &policy(), &mut Rng::new(1));
        assert_eq!(delay, Duration::ZERO);
    }

    #[test]
    fn refusals_back_off_from_the_first_retry() {
        // Peers reconnect with no growing delay when refused before Hello.
        let mut backoff = Backoff::new();
        let delay = backoff.next_delay(FailureKind::Refused, &policy(), &mut Rng::new(1));
        assert!(delay >= Duration::from_millis(500) && delay <= Duration::from_secs(1), "{delay:?}");
    }

    #[test]
    fn ceilings_double_up_to_the_cap() {
        let p = policy();
        let ceilings: Vec<u64> = (1..=9).map(|n| ceiling(n, &p).as_secs()).collect();
        assert_eq!(ceilings, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(ceiling(u32::MAX, &p), p.cap);
    }

    #[test]
    fn repeated_refusals_grow_the_delay_with_full_jitter_inside_bounds() {
        let p = policy();
        // Averaged over many seeds, each further refusal waits longer.
        let mut means = Vec::new();
        for attempt in 1..=7u32 {
            let mut total = Duration::ZERO;
            for seed in 0..400u64 {
                let mut backoff = Backoff::new();
                let mut rng = Rng::new(seed);
                let mut delay = Duration::ZERO;
                for _ in 0..attempt {
                    delay = backoff.next_delay(FailureKind::Refused, &p, &mut rng);
                }
                assert!(delay >= p.floor && delay <= ceiling(attempt, &p), "attempt {attempt}: {delay:?}");
                total += delay;
            }
            means.push(total / 400);
        }
        assert!(means.windows(2).all(|w| w[1] > w[0]), "{means:?}");
    }

    #[test]
    fn reset_returns_to_an_immediate_first_retry() {
        let p = policy();
        let mut rng = Rng::new(9);
        let mut backoff = Backoff::new();
        for _ in 0..5 {
            backoff.next_delay(FailureKind::Dropped, &p, &mut rng);
        }
        assert_eq!(backoff.failures(), 5);
        backoff.reset();
        assert_eq!(backoff.next_delay(FailureKind::Dropped, &p, &mut rng), Duration::ZERO);
    }
}
