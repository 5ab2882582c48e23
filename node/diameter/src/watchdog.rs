//! The RFC 3539 transport watchdog (section 3.4), sans-IO.
//!
//! Times come in as `Instant`s supplied by the caller; the jitter comes from a seeded PRNG so
//! tests are reproducible.

use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Smallest Tw the RFC allows.
pub const MIN_INTERVAL: Duration = Duration::from_secs(6);
/// Jitter applied to every Tw: plus or minus two seconds.
pub const JITTER: Duration = Duration::from_secs(2);

/// Watchdog states of RFC 3539.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WatchdogState {
    Initial,
    Okay,
    Suspect,
    Down,
    Reopen,
}

impl WatchdogState {
    /// Lower-case name for logs and the API.
    pub fn name(self) -> &'static str {
        match self {
            WatchdogState::Initial => "initial",
            WatchdogState::Okay => "okay",
            WatchdogState::Suspect => "suspect",
            WatchdogState::Down => "down",
            WatchdogState::Reopen => "reopen",
        }
    }
}

/// What the watchdog wants done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchdogAction {
    /// Nothing.
    None,
    /// Send a DWR.
    SendDwr,
    /// Close the transport connection: the peer is considered down.
    Close,
}

/// The watchdog of one peer.
#[derive(Debug)]
pub struct Watchdog {
    interval: Duration,
    state: WatchdogState,
    pending: bool,
    num_dwa: i32,
    deadline: Option<Instant>,
    rng: SmallRng,
}

impl Watchdog {
    /// A watchdog with Tw = `interval` (raised to the RFC minimum of 6 s).
    pub fn new(interval: Duration, seed: u64) -> Self {
        Watchdog {
            interval: interval.max(MIN_INTERVAL),
            state: WatchdogState::Initial,
            pending: false,
            num_dwa: 0,
            deadline: None,
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    /// Current state.
    pub fn state(&self) -> WatchdogState {
        self.state
    }

    /// When the watchdog timer fires next.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    fn set(&mut self, now: Instant) {
        let jitter_ms = JITTER.as_millis() as i64;
        let offset = self.rng.gen_range(-jitter_ms..=jitter_ms);
        let base = self.interval.as_millis() as i64;
        self.deadline = Some(now + Duration::from_millis((base + offset) as u64));
    }

    /// The transport connection is up (after capabilities exchange). A first connection goes
    /// to OKAY; one after a failure goes to REOPEN and needs three DWAs before traffic.
    pub fn connection_up(&mut self, now: Instant) -> WatchdogAction {
        match self.state {
            WatchdogState::Down => {
                self.num_dwa = 0;
                self.pending = true;
                self.state = WatchdogState::Reopen;
                self.set(now);
                WatchdogAction::SendDwr
            }
            _ => {
                self.state = WatchdogState::Okay;
                self.pending = false;
                self.set(now);
                WatchdogAction::None
            }
        }
    }

    /// A message arrived. Returns false when it must be thrown away (REOPEN, non-DWA).
    pub fn received(&mut self, now: Instant, is_dwa: bool) -> bool {
        match self.state {
            WatchdogState::Okay | WatchdogState::Suspect => {
                if is_dwa {
                    self.pending = false;
                }
                self.state = WatchdogState::Okay;
                self.set(now);
                true
            }
            WatchdogState::Reopen => {
                if is_dwa {
                    self.pending = false;
                    self.num_dwa += 1;
                    if self.num_dwa >= 3 {
                        self.state = WatchdogState::Okay;
                    }
                    true
                } else {
                    false
                }
            }
            WatchdogState::Initial | WatchdogState::Down => true,
        }
    }

    /// The timer fired at `now`.
    pub fn timeout(&mut self, now: Instant) -> WatchdogAction {
        match self.deadline {
            Some(d) if d <= now => {}
            _ => return WatchdogAction::None,
        }
        match self.state {
            WatchdogState::Okay if !self.pending => {
                self.pending = true;
                self.set(now);
                WatchdogAction::SendDwr
            }
            WatchdogState::Okay => {
                self.state = WatchdogState::Suspect;
                self.set(now);
                WatchdogAction::None
            }
            WatchdogState::Suspect => self.down(now),
            WatchdogState::Reopen if self.pending && self.num_dwa < 0 => self.down(now),
            WatchdogState::Reopen if self.pending => {
                self.num_dwa = -1;
                self.set(now);
                WatchdogAction::None
            }
            WatchdogState::Reopen => {
                self.pending = true;
                self.set(now);
                WatchdogAction::SendDwr
            }
            WatchdogState::Initial | WatchdogState::Down => {
                self.deadline = None;
                WatchdogAction::None
            }
        }
    }

    fn down(&mut self, _now: Instant) -> WatchdogAction {
        self.state = WatchdogState::Down;
        self.deadline = None;
        self.pending = false;
        WatchdogAction::Close
    }

    /// The transport connection went down for another reason.
    pub fn connection_down(&mut self) {
        self.state = WatchdogState::Down;
        self.deadline = None;
        self.pending = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fire(w: &mut Watchdog) -> (Instant, WatchdogAction) {
        let at = w.deadline().expect("armed");
        (at, w.timeout(at))
    }

    #[test]
    fn okay_sends_dwr_then_suspects_then_closes() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(Duration::from_secs(30), 1);
        assert_eq!(w.connection_up(t0), WatchdogAction::None);
        let d = w.deadline().unwrap() - t0;
        assert!(
            d >= Duration::from_secs(28) && d <= Duration::from_secs(32),
            "{d:?}"
        );
        assert_eq!(fire(&mut w).1, WatchdogAction::SendDwr);
        assert_eq!(fire(&mut w).1, WatchdogAction::None);
        assert_eq!(w.state(), WatchdogState::Suspect);
        assert_eq!(fire(&mut w).1, WatchdogAction::Close);
        assert_eq!(w.state(), WatchdogState::Down);
    }

    #[test]
    fn traffic_in_suspect_fails_back_to_okay() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(Duration::from_secs(30), 2);
        w.connection_up(t0);
        fire(&mut w);
        let (at, _) = fire(&mut w);
        assert_eq!(w.state(), WatchdogState::Suspect);
        assert!(w.received(at + Duration::from_secs(1), true));
        assert_eq!(w.state(), WatchdogState::Okay);
    }

    #[test]
    fn reopen_needs_three_dwas() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(Duration::from_secs(30), 3);
        w.connection_up(t0);
        w.connection_down();
        assert_eq!(w.connection_up(t0), WatchdogAction::SendDwr);
        assert_eq!(w.state(), WatchdogState::Reopen);
        assert!(
            !w.received(t0, false),
            "non-DWA traffic is not accepted while reopening"
        );
        for i in 0..3 {
            assert!(w.received(t0, true));
            if i < 2 {
                assert_eq!(w.state(), WatchdogState::Reopen);
                assert_eq!(fire(&mut w).1, WatchdogAction::SendDwr);
            }
        }
        assert_eq!(w.state(), WatchdogState::Okay);
    }

    #[test]
    fn reopen_without_answers_closes_after_two_intervals() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(Duration::from_secs(30), 4);
        w.connection_down();
        w.connection_up(t0);
        assert_eq!(fire(&mut w).1, WatchdogAction::None);
        assert_eq!(fire(&mut w).1, WatchdogAction::Close);
    }

    #[test]
    fn interval_is_at_least_six_seconds() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(Duration::from_secs(1), 5);
        w.connection_up(t0);
        assert!(w.deadline().unwrap() - t0 >= Duration::from_secs(4));
    }

    #[test]
    fn jitter_varies_the_interval() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(Duration::from_secs(30), 6);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..20 {
            w.connection_up(t0);
            seen.insert(w.deadline().unwrap() - t0);
        }
        assert!(seen.len() > 1);
    }
}
