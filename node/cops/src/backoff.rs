//! Reconnect back-off for a PEP (sans-IO): delays that double from an initial value to a
//! ceiling (5 minutes by default, as SBCs do), with downward jitter, reset on success.
//!
//! The PDP never opens connections; this is for the PEP side (routers, SBCs, the simulator).

use std::time::{Duration, Instant};

use crate::timer::Rng;

/// Reconnect delays: `initial`, `2 × initial`, … up to `ceiling`, each shortened by a random
/// fraction of at most `jitter_percent`, so delays never exceed the ceiling.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    ceiling: Duration,
    jitter_percent: u8,
    base: Duration,
    attempts: u32,
    rng: Rng,
}

impl Backoff {
    /// First delay before jitter.
    pub const DEFAULT_INITIAL: Duration = Duration::from_secs(1);
    /// Longest delay: 5 minutes.
    pub const DEFAULT_CEILING: Duration = Duration::from_secs(300);
    /// Each delay is shortened by up to this share.
    pub const DEFAULT_JITTER_PERCENT: u8 = 20;

    /// 1 s doubling to 5 minutes, 20 % jitter.
    pub fn new(seed: u64) -> Self {
        Backoff::with_limits(
            Backoff::DEFAULT_INITIAL,
            Backoff::DEFAULT_CEILING,
            Backoff::DEFAULT_JITTER_PERCENT,
            seed,
        )
    }

    /// Custom limits; `jitter_percent` is capped at 100, `initial` at `ceiling`.
    pub fn with_limits(
        initial: Duration,
        ceiling: Duration,
        jitter_percent: u8,
        seed: u64,
    ) -> Self {
        let initial = initial.min(ceiling);
        Backoff {
            initial,
            ceiling,
            jitter_percent: jitter_percent.min(100),
            base: initial,
            attempts: 0,
            rng: Rng::new(seed),
        }
    }

    /// The delay before the next attempt; the one after will be twice as long (up to the
    /// ceiling).
    pub fn next_delay(&mut self) -> Duration {
        let base = self.base;
        let lo = base * u32::from(100 - self.jitter_percent) / 100;
        let delay = self.rng.between(lo, base);
        self.base = base.saturating_mul(2).min(self.ceiling);
        self.attempts = self.attempts.saturating_add(1);
        delay
    }

    /// When to make the next attempt, after a failure at `now`.
    pub fn next_attempt(&mut self, now: Instant) -> Instant {
        let d = self.next_delay();
        now.checked_add(d).unwrap_or(now)
    }

    /// The connection succeeded (CAT received): start again from the initial delay.
    pub fn reset(&mut self) {
        self.base = self.initial;
        self.attempts = 0;
    }

    /// Delays handed out since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The un-jittered delay the next attempt will get.
    pub fn interval(&self) -> Duration {
        self.base
    }

    /// The ceiling.
    pub fn ceiling(&self) -> Duration {
        self.ceiling
    }
}
