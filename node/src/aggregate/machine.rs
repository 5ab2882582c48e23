//! An aggregate service session's logic (seed 003), sans-IO: fragment events and a `now` in;
//! actions (start, stop, keepalive a fragment; the aggregate's state changes) and a deadline
//! out. The driver does the work an action asks for (evaluate the fragment's reference, resolve
//! it through the NIC, activate the fragment service here or on the SAE that holds the session)
//! and reports back; it calls [`Aggregate::handle_timeout`] when [`Aggregate::poll_timeout`]
//! passes.
//!
//! The rules:
//!
//! - The aggregate is **active** when every mandatory fragment is active and each redundancy
//!   group has at least one active fragment; with no mandatory fragment, when at least one
//!   fragment is active (and every group has one).
//! - A **mandatory fragment that does not start** fails the activation: every fragment started
//!   is stopped and the aggregate ends with the reason. A fragment that is not mandatory is
//!   retried every keepalive retry wait until the activation-deactivation time has passed since
//!   the activation began; then it is given up. An aggregate not active by then fails.
//! - **While active**, losing a mandatory fragment, or the last active fragment of a redundancy
//!   group, ends the aggregate: its other fragments are stopped. Losing any other fragment
//!   starts its retries again, for another activation-deactivation time.
//! - **Remote fragments** are kept alive: a keepalive every keepalive interval, repeated every
//!   keepalive retry wait while unanswered; a fragment unanswered for the failure-notification
//!   time is lost.
//! - **Deactivation** stops every fragment, retrying a stop that failed every keepalive retry
//!   wait until the activation-deactivation time (the maximum retry time) has passed; the
//!   aggregate is inactive when every fragment has stopped or been abandoned. A start still in
//!   flight is stopped once it completes.
//!
//! Deviations from SRC: the keepalive retry wait doubles as the pause between attempts to
//! start or stop a fragment (SRC has no separate setting for it).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The four timers of seed 003.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// Between keepalives to a remote fragment.
    pub keepalive_interval: Duration,
    /// Before an unanswered keepalive is sent again; also between attempts to start or stop
    /// a fragment.
    pub keepalive_retry_wait: Duration,
    /// How long starting (or stopping) a fragment is retried.
    pub activation_deactivation_time: Duration,
    /// How long a remote fragment may leave keepalives unanswered before it counts as lost.
    pub failure_notification_time: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            keepalive_interval: Duration::from_secs(10),
            keepalive_retry_wait: Duration::from_secs(2),
            activation_deactivation_time: Duration::from_secs(60),
            failure_notification_time: Duration::from_secs(30),
        }
    }
}

/// What the machine knows of a fragment's definition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FragmentRule {
    pub mandatory: bool,
    pub group: Option<String>,
}

/// Where a started fragment runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// On this node: its session reports a loss directly.
    Local,
    /// On another SAE: kept alive.
    Remote,
}

/// A fragment's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FragmentState {
    /// Not started; next attempt at `retry_at` (now when `None`), until `until`.
    Waiting {
        retry_at: Option<Instant>,
        until: Instant,
        error: Option<String>,
    },
    /// A start is in flight.
    Starting {
        until: Instant,
    },
    Active {
        place: Place,
        keepalive: Keepalive,
    },
    /// A stop is in flight.
    Stopping,
    /// A stop failed; next attempt at `retry_at`.
    StopWaiting {
        retry_at: Instant,
        error: String,
    },
    /// Nothing of it runs.
    Stopped,
    /// Not started within the activation-deactivation time.
    GaveUp {
        error: String,
    },
    /// Not stopped within the maximum retry time.
    Abandoned {
        error: String,
    },
}

impl FragmentState {
    pub fn name(&self) -> &'static str {
        match self {
            FragmentState::Waiting { .. } => "waiting",
            FragmentState::Starting { .. } => "starting",
            FragmentState::Active { .. } => "active",
            FragmentState::Stopping => "stopping",
            FragmentState::StopWaiting { .. } => "stop-retrying",
            FragmentState::Stopped => "stopped",
            FragmentState::GaveUp { .. } => "gave-up",
            FragmentState::Abandoned { .. } => "abandoned",
        }
    }

    fn is_active(&self) -> bool {
        matches!(self, FragmentState::Active { .. })
    }

    /// Nothing more will happen to it.
    fn is_settled(&self) -> bool {
        matches!(
            self,
            FragmentState::Stopped | FragmentState::GaveUp { .. } | FragmentState::Abandoned { .. }
        )
    }
}

/// A remote fragment's keepalive exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// When the fragment last answered (or started).
    pub answered: Instant,
    /// When the next keepalive goes out (`None`: local fragment, none).
    pub next: Option<Instant>,
}

/// The aggregate's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Activating,
    Active,
    /// Stopping its fragments: deactivated, or failed with `reason`.
    Deactivating {
        reason: Option<String>,
    },
    /// Ended: deactivated, or failed with `reason`.
    Inactive {
        reason: Option<String>,
    },
}

impl State {
    pub fn name(&self) -> &'static str {
        match self {
            State::Activating => "activating",
            State::Active => "active",
            State::Deactivating { .. } => "deactivating",
            State::Inactive { .. } => "inactive",
        }
    }
}

/// What the driver is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Resolve fragment `i`'s session and activate its service there; answer with
    /// [`Aggregate::handle_started`] or [`Aggregate::handle_start_failed`].
    Start(usize),
    /// Deactivate fragment `i`; answer with [`Aggregate::handle_stopped`] or
    /// [`Aggregate::handle_stop_failed`].
    Stop(usize),
    /// Send a keepalive to remote fragment `i`; an answer is [`Aggregate::handle_keepalive_ack`].
    Keepalive(usize),
    /// The aggregate's state changed.
    Changed(State),
}

/// One aggregate session's fragments and timers.
#[derive(Debug, Clone)]
pub struct Aggregate {
    rules: Vec<FragmentRule>,
    fragments: Vec<FragmentState>,
    /// A start in flight when the aggregate began deactivating: stop it once started.
    stop_when_started: Vec<bool>,
    state: State,
    timers: Timers,
    /// When deactivation gives up on stops.
    stop_until: Option<Instant>,
    actions: VecDeque<Action>,
}

impl Aggregate {
    /// An aggregate activated at `now`: every fragment is to be started.
    pub fn new(rules: Vec<FragmentRule>, timers: Timers, now: Instant) -> Aggregate {
        let until = now + timers.activation_deactivation_time;
        let n = rules.len();
        let mut a = Aggregate {
            fragments: vec![
                FragmentState::Waiting {
                    retry_at: None,
                    until,
                    error: None,
                };
                n
            ],
            stop_when_started: vec![false; n],
            rules,
            state: State::Activating,
            timers,
            stop_until: None,
            actions: VecDeque::new(),
        };
        a.step(now);
        a
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn fragments(&self) -> &[FragmentState] {
        &self.fragments
    }

    /// The next thing to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Aggregate::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let stop_until = self.stop_until;
        self.fragments
            .iter()
            .filter_map(|f| match f {
                FragmentState::Waiting {
                    retry_at: Some(r),
                    until,
                    ..
                } => Some((*r).min(*until)),
                FragmentState::Waiting { until, .. } => Some(*until),
                FragmentState::Active {
                    keepalive:
                        Keepalive {
                            answered,
                            next: Some(next),
                        },
                    ..
                } => Some((*next).min(*answered + self.timers.failure_notification_time)),
                FragmentState::StopWaiting { retry_at, .. } => {
                    Some(stop_until.map_or(*retry_at, |u| (*retry_at).min(u)))
                }
                _ => None,
            })
            .min()
    }

    /// Time has come: retries, keepalives, losses, deadlines.
    pub fn handle_timeout(&mut self, now: Instant) {
        let silence = self.timers.failure_notification_time;
        for i in 0..self.fragments.len() {
            match self.fragments[i].clone() {
                FragmentState::Active {
                    place,
                    keepalive:
                        Keepalive {
                            answered,
                            next: Some(next),
                        },
                } => {
                    if now >= answered + silence {
                        let error = format!("no keepalive answer for {} s", silence.as_secs());
                        self.lost(i, &error, now);
                    } else if now >= next {
                        self.fragments[i] = FragmentState::Active {
                            place,
                            keepalive: Keepalive {
                                answered,
                                next: Some(now + self.timers.keepalive_retry_wait),
                            },
                        };
                        self.actions.push_back(Action::Keepalive(i));
                    }
                }
                FragmentState::Waiting { until, error, .. } if now >= until => {
                    let error = error.unwrap_or_else(|| "not started".into());
                    self.fragments[i] = FragmentState::GaveUp {
                        error: format!("{error} (activation-deactivation time passed)"),
                    };
                }
                FragmentState::Waiting {
                    retry_at: Some(r),
                    until,
                    error,
                } if now >= r => {
                    self.fragments[i] = FragmentState::Waiting {
                        retry_at: None,
                        until,
                        error,
                    };
                }
                FragmentState::StopWaiting { error, .. }
                    if self.stop_until.is_some_and(|u| now >= u) =>
                {
                    self.fragments[i] = FragmentState::Abandoned {
                        error: format!("{error} (maximum retry time passed)"),
                    };
                }
                FragmentState::StopWaiting { retry_at, .. } if now >= retry_at => {
                    self.fragments[i] = FragmentState::Stopping;
                    self.actions.push_back(Action::Stop(i));
                }
                _ => {}
            }
        }
        self.step(now);
    }

    /// Fragment `i` runs at `place`.
    pub fn handle_started(&mut self, i: usize, place: Place, now: Instant) {
        if !matches!(self.fragments.get(i), Some(FragmentState::Starting { .. })) {
            return;
        }
        if std::mem::take(&mut self.stop_when_started[i]) {
            self.fragments[i] = FragmentState::Stopping;
            self.actions.push_back(Action::Stop(i));
        } else {
            let next = (place == Place::Remote).then(|| now + self.timers.keepalive_interval);
            self.fragments[i] = FragmentState::Active {
                place,
                keepalive: Keepalive {
                    answered: now,
                    next,
                },
            };
        }
        self.step(now);
    }

    /// Fragment `i` could not be started (no session resolved, the router refused, …).
    pub fn handle_start_failed(&mut self, i: usize, error: &str, now: Instant) {
        let Some(FragmentState::Starting { until }) = self.fragments.get(i).cloned() else {
            return;
        };
        if std::mem::take(&mut self.stop_when_started[i]) {
            self.fragments[i] = FragmentState::Stopped;
        } else if self.rules[i].mandatory && self.state == State::Activating {
            self.fragments[i] = FragmentState::GaveUp {
                error: error.to_owned(),
            };
            self.end(
                Some(format!("mandatory fragment {i} did not start: {error}")),
                now,
            );
        } else {
            self.fragments[i] = FragmentState::Waiting {
                retry_at: Some(now + self.timers.keepalive_retry_wait),
                until,
                error: Some(error.to_owned()),
            };
        }
        self.step(now);
    }

    /// Fragment `i` no longer runs (its stop completed).
    pub fn handle_stopped(&mut self, i: usize, now: Instant) {
        if matches!(self.fragments.get(i), Some(FragmentState::Stopping)) {
            self.fragments[i] = FragmentState::Stopped;
        }
        self.step(now);
    }

    /// Fragment `i`'s stop failed; retried until the maximum retry time.
    pub fn handle_stop_failed(&mut self, i: usize, error: &str, now: Instant) {
        if matches!(self.fragments.get(i), Some(FragmentState::Stopping)) {
            self.fragments[i] = if self.stop_until.is_some_and(|u| now >= u) {
                FragmentState::Abandoned {
                    error: format!("{error} (maximum retry time passed)"),
                }
            } else {
                FragmentState::StopWaiting {
                    retry_at: now + self.timers.keepalive_retry_wait,
                    error: error.to_owned(),
                }
            };
        }
        self.step(now);
    }

    /// Remote fragment `i` answered a keepalive.
    pub fn handle_keepalive_ack(&mut self, i: usize, now: Instant) {
        if let Some(FragmentState::Active { keepalive, .. }) = self.fragments.get_mut(i)
            && keepalive.next.is_some()
        {
            keepalive.answered = now;
            keepalive.next = Some(now + self.timers.keepalive_interval);
        }
    }

    /// Fragment `i` is gone (removed from its router, its session ended, its SAE said so).
    pub fn handle_lost(&mut self, i: usize, error: &str, now: Instant) {
        self.lost(i, error, now);
        self.step(now);
    }

    /// The aggregate is deactivated (by an operator, or its subscriber session ended).
    pub fn deactivate(&mut self, now: Instant) {
        if matches!(self.state, State::Activating | State::Active) {
            self.end(None, now);
            self.step(now);
        }
    }

    fn lost(&mut self, i: usize, error: &str, now: Instant) {
        if !self.fragments.get(i).is_some_and(FragmentState::is_active) {
            return;
        }
        let ending = matches!(
            self.state,
            State::Deactivating { .. } | State::Inactive { .. }
        );
        if ending {
            self.fragments[i] = FragmentState::Stopped;
            return;
        }
        self.fragments[i] = FragmentState::Waiting {
            retry_at: Some(now + self.timers.keepalive_retry_wait),
            until: now + self.timers.activation_deactivation_time,
            error: Some(error.to_owned()),
        };
        if self.state == State::Active {
            if self.rules[i].mandatory {
                self.fragments[i] = FragmentState::Stopped;
                self.end(Some(format!("mandatory fragment {i} lost: {error}")), now);
            } else if let Some(group) = &self.rules[i].group
                && !self.group_has_active(group)
            {
                let reason =
                    format!("redundancy group {group} lost its last fragment ({i}: {error})");
                self.fragments[i] = FragmentState::Stopped;
                self.end(Some(reason), now);
            }
        }
    }

    fn group_has_active(&self, group: &str) -> bool {
        self.rules
            .iter()
            .zip(&self.fragments)
            .any(|(r, f)| r.group.as_deref() == Some(group) && f.is_active())
    }

    /// Whether the activation rules hold.
    fn satisfied(&self) -> bool {
        let pairs = || self.rules.iter().zip(&self.fragments);
        let mandatory_ok = pairs().all(|(r, f)| !r.mandatory || f.is_active());
        let groups_ok =
            pairs().all(|(r, _)| r.group.as_deref().is_none_or(|g| self.group_has_active(g)));
        let any_mandatory = self.rules.iter().any(|r| r.mandatory);
        let some_active = self.fragments.iter().any(FragmentState::is_active);
        mandatory_ok && groups_ok && (any_mandatory || some_active)
    }

    /// Starts deactivating: every fragment that runs is stopped.
    fn end(&mut self, reason: Option<String>, now: Instant) {
        self.state = State::Deactivating { reason };
        self.actions.push_back(Action::Changed(self.state.clone()));
        self.stop_until = Some(now + self.timers.activation_deactivation_time);
        for i in 0..self.fragments.len() {
            match &self.fragments[i] {
                FragmentState::Active { .. } => {
                    self.fragments[i] = FragmentState::Stopping;
                    self.actions.push_back(Action::Stop(i));
                }
                FragmentState::Starting { .. } => self.stop_when_started[i] = true,
                FragmentState::Waiting { .. } => self.fragments[i] = FragmentState::Stopped,
                _ => {}
            }
        }
    }

    /// Issues the starts that are due and moves the aggregate's state on.
    fn step(&mut self, now: Instant) {
        if matches!(self.state, State::Activating | State::Active) {
            for i in 0..self.fragments.len() {
                if let FragmentState::Waiting {
                    retry_at: None,
                    until,
                    ..
                } = self.fragments[i]
                {
                    self.fragments[i] = FragmentState::Starting { until };
                    self.actions.push_back(Action::Start(i));
                }
            }
        }
        match &self.state {
            State::Activating if self.satisfied() => {
                self.state = State::Active;
                self.actions.push_back(Action::Changed(State::Active));
            }
            State::Activating
                if self
                    .fragments
                    .iter()
                    .all(|f| f.is_settled() || f.is_active()) =>
            {
                let gave_up: Vec<String> = self
                    .fragments
                    .iter()
                    .enumerate()
                    .filter_map(|(i, f)| match f {
                        FragmentState::GaveUp { error } => Some(format!("{i}: {error}")),
                        _ => None,
                    })
                    .collect();
                self.end(
                    Some(format!(
                        "not active within the activation-deactivation time ({})",
                        gave_up.join("; ")
                    )),
                    now,
                );
                self.step(now);
            }
            State::Deactivating { reason }
                if self.fragments.iter().all(FragmentState::is_settled) =>
            {
                self.state = State::Inactive {
                    reason: reason.clone(),
                };
                self.actions.push_back(Action::Changed(self.state.clone()));
            }
            _ => {}
        }
    }
}

/// The remote side of a fragment: the SAE that runs a fragment for an aggregate elsewhere
/// expects its keepalives, and deactivates the fragment when none came for the
/// failure-notification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentWatch {
    last: Instant,
    silence: Duration,
}

impl FragmentWatch {
    pub fn new(timers: &Timers, now: Instant) -> FragmentWatch {
        FragmentWatch {
            last: now,
            silence: timers.failure_notification_time,
        }
    }

    /// A keepalive came.
    pub fn handle_keepalive(&mut self, now: Instant) {
        self.last = self.last.max(now);
    }

    pub fn poll_timeout(&self) -> Instant {
        self.last + self.silence
    }

    /// Whether the aggregate is to be given up for lost at `now`.
    pub fn expired(&self, now: Instant) -> bool {
        now >= self.poll_timeout()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timers() -> Timers {
        Timers {
            keepalive_interval: Duration::from_secs(10),
            keepalive_retry_wait: Duration::from_secs(2),
            activation_deactivation_time: Duration::from_secs(20),
            failure_notification_time: Duration::from_secs(30),
        }
    }

    fn rule(mandatory: bool, group: Option<&str>) -> FragmentRule {
        FragmentRule {
            mandatory,
            group: group.map(str::to_owned),
        }
    }

    /// Every action queued.
    fn drain(a: &mut Aggregate) -> Vec<Action> {
        std::iter::from_fn(|| a.poll_action()).collect()
    }

    /// Runs the machine's timers from `from` until `to`, firing each deadline as it comes,
    /// and returns the actions.
    fn run_until(a: &mut Aggregate, from: Instant, to: Instant) -> Vec<Action> {
        let mut now = from;
        let mut out = Vec::new();
        while let Some(t) = a.poll_timeout() {
            if t > to {
                break;
            }
            now = now.max(t);
            a.handle_timeout(now);
            out.extend(drain(a));
        }
        out
    }

    fn changed(actions: &[Action]) -> Vec<State> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Changed(s) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn active_when_every_mandatory_fragment_and_one_per_group_is() {
        let t0 = Instant::now();
        let mut a = Aggregate::new(
            vec![
                rule(true, None),
                rule(false, Some("g")),
                rule(false, Some("g")),
            ],
            timers(),
            t0,
        );
        assert_eq!(
            drain(&mut a),
            [Action::Start(0), Action::Start(1), Action::Start(2)]
        );
        a.handle_started(0, Place::Local, t0);
        assert_eq!(a.state(), &State::Activating, "group g has none yet");
        a.handle_start_failed(1, "no session", t0);
        a.handle_started(2, Place::Remote, t0);
        assert_eq!(a.state(), &State::Active);
        assert_eq!(changed(&drain(&mut a)), [State::Active]);
        // The failed member of the group is retried after the retry wait.
        let retry = a.poll_timeout().unwrap();
        assert_eq!(retry, t0 + Duration::from_secs(2));
        a.handle_timeout(retry);
        assert_eq!(drain(&mut a), [Action::Start(1)]);
    }

    #[test]
    fn with_no_mandatory_fragment_one_active_is_enough() {
        let t0 = Instant::now();
        let mut a = Aggregate::new(vec![rule(false, None), rule(false, None)], timers(), t0);
        drain(&mut a);
        a.handle_start_failed(0, "refused", t0);
        assert_eq!(a.state(), &State::Activating);
        a.handle_started(1, Place::Local, t0);
        assert_eq!(a.state(), &State::Active);
    }

    #[test]
    fn a_mandatory_fragment_that_fails_rolls_the_others_back() {
        let t0 = Instant::now();
        let mut a = Aggregate::new(vec![rule(false, None), rule(true, None)], timers(), t0);
        drain(&mut a);
        a.handle_started(0, Place::Local, t0);
        a.handle_start_failed(1, "router refused the policy", t0);
        let actions = drain(&mut a);
        assert!(actions.contains(&Action::Stop(0)), "{actions:?}");
        let State::Deactivating {
            reason: Some(reason),
        } = a.state().clone()
        else {
            panic!("{:?}", a.state());
        };
        assert!(
            reason.contains("mandatory fragment 1") && reason.contains("refused"),
            "{reason}"
        );
        a.handle_stopped(0, t0);
        assert!(matches!(a.state(), State::Inactive { reason: Some(_) }));
        assert!(matches!(
            changed(&drain(&mut a))[..],
            [State::Inactive { .. }]
        ));
    }

    #[test]
    fn fragments_that_never_start_are_given_up_and_fail_an_inactive_aggregate() {
        let t0 = Instant::now();
        let mut a = Aggregate::new(vec![rule(false, None), rule(false, None)], timers(), t0);
        drain(&mut a);
        a.handle_start_failed(0, "no session bound to ip=10.0.0.9", t0);
        a.handle_start_failed(1, "no session bound to dn=x", t0);
        // Retried every 2 s; each retry fails again.
        let mut now = t0;
        let mut starts = 0;
        while let Some(t) = a.poll_timeout() {
            now = t;
            a.handle_timeout(now);
            for action in drain(&mut a) {
                if let Action::Start(i) = action {
                    starts += 1;
                    a.handle_start_failed(i, "still nothing", now);
                }
            }
            if matches!(a.state(), State::Inactive { .. }) {
                break;
            }
        }
        assert_eq!(
            now,
            t0 + Duration::from_secs(20),
            "the activation-deactivation time"
        );
        assert!(starts >= 16, "retried every retry wait: {starts}");
        let State::Inactive {
            reason: Some(reason),
        } = a.state()
        else {
            panic!("{:?}", a.state());
        };
        assert!(reason.contains("activation-deactivation time"), "{reason}");
        assert!(
            a.fragments()
                .iter()
                .all(|f| matches!(f, FragmentState::GaveUp { .. }))
        );
    }

    #[test]
    fn losing_a_mandatory_fragment_or_a_whole_group_ends_an_active_aggregate() {
        let t0 = Instant::now();
        let rules = vec![rule(true, None), rule(false, Some("g")), rule(false, None)];
        let start_all = |a: &mut Aggregate| {
            drain(a);
            for i in 0..3 {
                a.handle_started(i, Place::Local, t0);
            }
            drain(a);
        };
        let mut a = Aggregate::new(rules.clone(), timers(), t0);
        start_all(&mut a);
        assert_eq!(a.state(), &State::Active);
        // A plain fragment lost: retried, the aggregate stays.
        a.handle_lost(2, "removed from its router", t0);
        assert_eq!(a.state(), &State::Active);
        assert!(matches!(a.fragments()[2], FragmentState::Waiting { .. }));
        // The last of group g lost: the aggregate ends and stops the rest.
        a.handle_lost(1, "router logged out", t0);
        let actions = drain(&mut a);
        assert!(
            matches!(a.state(), State::Deactivating { reason: Some(r) } if r.contains("group g"))
        );
        assert_eq!(
            actions
                .iter()
                .filter(|a| matches!(a, Action::Stop(_)))
                .count(),
            1,
            "{actions:?}"
        );
        a.handle_stopped(0, t0);
        assert!(matches!(a.state(), State::Inactive { .. }));

        let mut a = Aggregate::new(rules, timers(), t0);
        start_all(&mut a);
        a.handle_lost(0, "session ended", t0);
        assert!(
            matches!(a.state(), State::Deactivating { reason: Some(r) } if r.contains("mandatory fragment 0 lost"))
        );
        assert!(drain(&mut a).contains(&Action::Stop(1)));
    }

    #[test]
    fn remote_fragments_are_kept_alive_and_lost_when_silent() {
        let t0 = Instant::now();
        let mut a = Aggregate::new(vec![rule(false, None), rule(false, None)], timers(), t0);
        drain(&mut a);
        a.handle_started(0, Place::Remote, t0);
        a.handle_started(1, Place::Local, t0);
        drain(&mut a);
        // Keepalive after the interval; answered: the next after another interval.
        assert_eq!(a.poll_timeout(), Some(t0 + Duration::from_secs(10)));
        a.handle_timeout(t0 + Duration::from_secs(10));
        assert_eq!(drain(&mut a), [Action::Keepalive(0)]);
        a.handle_keepalive_ack(0, t0 + Duration::from_secs(10));
        assert_eq!(a.poll_timeout(), Some(t0 + Duration::from_secs(20)));
        // Unanswered from then on: repeated every retry wait, lost after 30 s of silence.
        let actions = run_until(
            &mut a,
            t0 + Duration::from_secs(20),
            t0 + Duration::from_secs(40),
        );
        let keepalives = actions
            .iter()
            .filter(|a| **a == Action::Keepalive(0))
            .count();
        assert_eq!(
            keepalives,
            1 + 9,
            "at 20 s, then every 2 s until 38 s: {actions:?}"
        );
        assert!(
            matches!(a.fragments()[0], FragmentState::Waiting { .. }),
            "{:?}",
            a.fragments()[0]
        );
        assert_eq!(
            a.poll_timeout(),
            Some(t0 + Duration::from_secs(42)),
            "retried"
        );
        assert_eq!(a.state(), &State::Active, "fragment 1 still holds it");
    }

    #[test]
    fn deactivation_retries_stops_until_the_maximum_retry_time() {
        let t0 = Instant::now();
        let mut a = Aggregate::new(vec![rule(true, None), rule(false, None)], timers(), t0);
        drain(&mut a);
        a.handle_started(0, Place::Local, t0);
        assert_eq!(
            changed(&drain(&mut a)),
            [State::Active],
            "the mandatory one is enough"
        );
        a.deactivate(t0);
        // Fragment 1's start was in flight: it is stopped once it starts.
        assert_eq!(
            drain(&mut a),
            [
                Action::Changed(State::Deactivating { reason: None }),
                Action::Stop(0)
            ]
        );
        a.handle_started(1, Place::Remote, t0);
        assert_eq!(drain(&mut a), [Action::Stop(1)]);
        a.handle_stopped(1, t0);
        // Fragment 0's stop keeps failing: retried every 2 s, abandoned after 20 s.
        a.handle_stop_failed(0, "router not connected", t0);
        let mut stops = 0;
        let mut now = t0;
        while let Some(t) = a.poll_timeout() {
            now = t;
            a.handle_timeout(now);
            for action in drain(&mut a) {
                if action == Action::Stop(0) {
                    stops += 1;
                    a.handle_stop_failed(0, "router not connected", now);
                }
            }
        }
        assert!(stops >= 9, "{stops}");
        assert_eq!(now, t0 + Duration::from_secs(20));
        assert!(matches!(a.fragments()[0], FragmentState::Abandoned { .. }));
        assert_eq!(a.state(), &State::Inactive { reason: None });
    }

    #[test]
    fn late_answers_and_unknown_fragments_change_nothing() {
        let t0 = Instant::now();
        let mut a = Aggregate::new(vec![rule(false, None)], timers(), t0);
        drain(&mut a);
        a.handle_started(7, Place::Local, t0);
        a.handle_stopped(0, t0);
        a.handle_keepalive_ack(0, t0);
        a.handle_lost(3, "x", t0);
        assert_eq!(a.state(), &State::Activating);
        a.handle_started(0, Place::Local, t0);
        a.handle_started(0, Place::Local, t0);
        assert_eq!(changed(&drain(&mut a)), [State::Active]);
        a.deactivate(t0);
        a.deactivate(t0);
        a.handle_stopped(0, t0);
        a.handle_stopped(0, t0);
        assert_eq!(
            changed(&drain(&mut a)),
            [
                State::Deactivating { reason: None },
                State::Inactive { reason: None }
            ]
        );
    }

    #[test]
    fn a_fragment_watch_expires_after_the_failure_notification_time() {
        let t0 = Instant::now();
        let mut w = FragmentWatch::new(&timers(), t0);
        assert!(!w.expired(t0 + Duration::from_secs(29)));
        w.handle_keepalive(t0 + Duration::from_secs(25));
        assert!(!w.expired(t0 + Duration::from_secs(54)));
        assert!(w.expired(t0 + Duration::from_secs(55)));
        assert_eq!(w.poll_timeout(), t0 + Duration::from_secs(55));
    }
}
