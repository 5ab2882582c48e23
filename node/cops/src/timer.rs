//! Keep-alive timing and a small seeded PRNG (SplitMix64), so the state machines draw their
//! random delays deterministically from a seed the caller chooses.

use std::time::Duration;

/// SplitMix64: tiny, fast, and good enough for timer jitter (not for secrets).
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub(crate) fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// Uniform in `[lo, hi]` (nanosecond resolution); `lo` if `hi <= lo`.
    pub(crate) fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        if hi <= lo {
            return lo;
        }
        let span = (hi - lo).as_nanos().min(u128::from(u64::MAX - 1)) + 1;
        let r = (u128::from(self.next_u64()) * span) >> 64;
        lo + Duration::from_nanos(u64::try_from(r).unwrap_or(u64::MAX))
    }
}

/// The delay until the PEP's next KA: uniform between 1/4 and 3/4 of the KA timer.
pub(crate) fn keepalive_interval(ka_timer: Duration, rng: &mut Rng) -> Duration {
    rng.between(ka_timer / 4, ka_timer * 3 / 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn between_stays_in_bounds_and_spreads() {
        let mut rng = Rng::new(7);
        let (lo, hi) = (Duration::from_secs(10), Duration::from_secs(30));
        let draws: Vec<_> = (0..1000).map(|_| rng.between(lo, hi)).collect();
        assert!(draws.iter().all(|d| (lo..=hi).contains(d)));
        let low_half = draws
            .iter()
            .filter(|d| **d < Duration::from_secs(20))
            .count();
        assert!((400..600).contains(&low_half), "{low_half}");
        assert_eq!(rng.between(hi, lo), hi);
    }

    #[test]
    fn keepalive_between_quarter_and_three_quarters() {
        let ka = Duration::from_secs(45);
        for seed in 0..200 {
            let d = keepalive_interval(ka, &mut Rng::new(seed));
            assert!(d >= ka / 4 && d <= ka * 3 / 4, "{d:?}");
        }
    }
}
