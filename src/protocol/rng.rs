//! A small seeded random generator, so every random protocol choice
//! (heartbeat jitter, backoff jitter, the op 9 wait) replays exactly in tests.

use std::time::Duration;

/// SplitMix64: tiny, fast, statistically fine for jitter; not for secrets.
#[derive(Debug, Clone)]
pub(crate) struct Rng {
    state: u64,
}

impl Rng {
    /// A generator that yields the same sequence for the same seed.
    pub(crate) fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        // 53 random bits are exactly representable in an f64 mantissa.
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[low, high]` (returns `low` when `high <= low`).
    pub(crate) fn duration_between(&mut self, low: Duration, high: Duration) -> Duration {
        match high.checked_sub(low) {
            Some(span) if !span.is_zero() => low + span.mul_f64(self.unit()),
            _ => low,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        assert!((0..100).all(|_| a.next_u64() == b.next_u64()));
    }

    #[test]
    fn unit_stays_in_half_open_range_and_spreads() {
        let mut rng = Rng::new(1);
        let draws: Vec<f64> = (0..10_000).map(|_| rng.unit()).collect();
        assert!(draws.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((0.45..0.55).contains(&mean), "mean {mean}");
    }

    #[test]
    fn duration_between_respects_bounds() {
        let mut rng = Rng::new(3);
        let (lo, hi) = (Duration::from_secs(1), Duration::from_secs(5));
        for _ in 0..1000 {
            let d = rng.duration_between(lo, hi);
            assert!(d >= lo && d <= hi);
        }
        assert_eq!(rng.duration_between(hi, lo), hi);
    }
}
