//! Aggregate sessions, driven: one task per aggregate service session (an actor that owns its
//! [`Aggregate`] machine and talks by messages), and the node's registry of them.
//!
//! A session starts a fragment by evaluating its reference expression over the aggregate
//! subscriber's fields and substitutions, resolving the reference through the NIC, and
//! activating the fragment service on the one session it names. It watches the node's session
//! events: a fragment service deactivated or failed, or its session gone, is a lost fragment;
//! the aggregate subscriber's own logout deactivates the aggregate (which stays listed until
//! its fragments have stopped).
//!
//! This version starts fragments on sessions of this node only: a reference resolved to a
//! session on another node is a start that fails (and is retried within the timers), until
//! the node-to-node fragment service exists.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use sae_nic::{Expression, NodeId, Reference, Value};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::machine::{Action, Aggregate, FragmentRule, FragmentState, Place, State, Timers};
use super::propagation::{self, Activation, AggregateContext};
use crate::catalog::ServiceDef;
use crate::events::{EventKind, SessionEvent};

/// A boxed future, for the node's services passed in.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A session a reference named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub node: NodeId,
    pub session_id: String,
}

/// What an aggregate session uses of its node (handles passed in at construction).
pub trait Host: Send + Sync + 'static {
    /// This node's id.
    fn node(&self) -> NodeId;
    /// The sessions bound to a reference, on any node.
    fn resolve(&self, reference: Reference) -> BoxFuture<Result<Vec<Located>, String>>;
    /// Activates a service on one of this node's sessions.
    fn activate(
        &self,
        session_id: String,
        service: String,
        substitutions: BTreeMap<String, String>,
    ) -> BoxFuture<Result<(), String>>;
    /// Deactivates a service on one of this node's sessions.
    fn deactivate(&self, session_id: String, service: String) -> BoxFuture<Result<(), String>>;
    /// A catalog service.
    fn service(&self, name: &str) -> Option<ServiceDef>;
    /// The node's session events from now on.
    fn events(&self) -> broadcast::Receiver<SessionEvent>;
    /// Publishes an event of the aggregate (to `WatchEvents`).
    fn publish(&self, event: SessionEvent);
    /// Counts what became of an aggregate (`active`, `failed`, `deactivated`) or of a fragment
    /// (`started`, `start-failed`, `lost`).
    fn count(&self, fragment: bool, outcome: &'static str);
}

/// One fragment as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentView {
    pub name: String,
    pub service: String,
    /// The reference its expression gave (empty until evaluated).
    pub reference: String,
    /// Where it resolved to.
    pub target: Option<Located>,
    pub state: String,
    pub error: String,
}

/// An aggregate session as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateView {
    pub id: u64,
    pub service: String,
    /// The aggregate subscriber's session.
    pub session_id: String,
    pub state: String,
    /// Why it failed or ended, if it did.
    pub reason: String,
    pub fragments: Vec<FragmentView>,
}

enum Command {
    Deactivate,
}

struct Handle {
    view: Arc<Mutex<AggregateView>>,
    commands: mpsc::UnboundedSender<Command>,
}

/// The node's aggregate sessions.
pub struct Aggregates {
    host: Arc<dyn Host>,
    timers: Timers,
    sessions: Mutex<BTreeMap<u64, Handle>>,
    next_id: std::sync::atomic::AtomicU64,
}

/// How an activation ended.
pub type Outcome = Result<(), String>;

impl Aggregates {
    pub fn new(host: Arc<dyn Host>, timers: Timers) -> Arc<Aggregates> {
        Arc::new(Aggregates {
            host,
            timers,
            sessions: Mutex::new(BTreeMap::new()),
            next_id: std::sync::atomic::AtomicU64::new(1),
        })
    }

    /// Activates `service` (an aggregate) for the subscriber session `session_id` whose
    /// fields are `fields`; answers once the aggregate is active, or failed with the reason.
    pub async fn activate(
        self: &Arc<Self>,
        service: ServiceDef,
        session_id: String,
        fields: BTreeMap<String, Value>,
        activation: Activation,
    ) -> Outcome {
        if self.find(&session_id, &service.name).is_some() {
            return Err(format!(
                "aggregate {:?} is already active on session {session_id:?}",
                service.name
            ));
        }
        let mut expressions = Vec::new();
        for f in &service.fragments {
            expressions.push(
                Expression::parse(&f.expression)
                    .map_err(|e| format!("fragment {:?}: expression: {e}", f.name))?,
            );
        }
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let view = Arc::new(Mutex::new(AggregateView {
            id,
            service: service.name.clone(),
            session_id: session_id.clone(),
            state: State::Activating.name().into(),
            reason: String::new(),
            fragments: service
                .fragments
                .iter()
                .map(|f| FragmentView {
                    name: f.name.clone(),
                    service: f.service.clone(),
                    reference: String::new(),
                    target: None,
                    state: "waiting".into(),
                    error: String::new(),
                })
                .collect(),
        }));
        let (commands, rx) = mpsc::unbounded_channel();
        let (done_tx, done_rx) = oneshot::channel();
        // Subscribed before the task starts, so that no event of its fragments is missed.
        let events = self.host.events();
        self.sessions.lock().expect("aggregates lock").insert(
            id,
            Handle {
                view: view.clone(),
                commands,
            },
        );
        let run = Run {
            id,
            host: self.host.clone(),
            ctx: AggregateContext {
                service: service.name.clone(),
                session_name: format!("aggregate-{id}"),
                fields,
            },
            session_id,
            service,
            activation,
            expressions,
            view,
            targets: Vec::new(),
            done: Some(done_tx),
        };
        let registry = Arc::downgrade(self);
        let timers = self.timers;
        tokio::spawn(async move {
            run.drive(timers, rx, events).await;
            if let Some(r) = registry.upgrade() {
                r.sessions.lock().expect("aggregates lock").remove(&id);
            }
        });
        done_rx
            .await
            .unwrap_or_else(|_| Err("the aggregate session stopped".into()))
    }

    fn find(&self, session_id: &str, service: &str) -> Option<u64> {
        self.sessions
            .lock()
            .expect("aggregates lock")
            .iter()
            .find(|(_, h)| {
                let v = h.view.lock().expect("aggregate view lock");
                v.session_id == session_id && v.service == service && v.state != "deactivating"
            })
            .map(|(id, _)| *id)
    }

    /// Deactivates the aggregate `service` of a session; false when there is none.
    pub fn deactivate(&self, session_id: &str, service: &str) -> bool {
        let Some(id) = self.find(session_id, service) else {
            return false;
        };
        let sessions = self.sessions.lock().expect("aggregates lock");
        sessions
            .get(&id)
            .is_some_and(|h| h.commands.send(Command::Deactivate).is_ok())
    }

    /// Every aggregate session of this node, deactivating ones included.
    pub fn list(&self) -> Vec<AggregateView> {
        self.sessions
            .lock()
            .expect("aggregates lock")
            .values()
            .map(|h| h.view.lock().expect("aggregate view lock").clone())
            .collect()
    }

    /// Whether `service` is an aggregate the catalog knows.
    pub fn is_aggregate(&self, service: &str) -> Option<ServiceDef> {
        self.host.service(service).filter(ServiceDef::is_aggregate)
    }
}

/// What a fragment's start or stop came to.
enum Report {
    Started(usize, Result<(Located, String), String>),
    Stopped(usize, Result<(), String>),
}

struct Run {
    id: u64,
    host: Arc<dyn Host>,
    ctx: AggregateContext,
    session_id: String,
    service: ServiceDef,
    activation: Activation,
    expressions: Vec<Expression>,
    view: Arc<Mutex<AggregateView>>,
    /// Where each started fragment runs.
    targets: Vec<Option<Located>>,
    done: Option<oneshot::Sender<Outcome>>,
}

impl Run {
    async fn drive(
        mut self,
        timers: Timers,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut events: broadcast::Receiver<SessionEvent>,
    ) {
        let rules = self
            .service
            .fragments
            .iter()
            .map(|f| FragmentRule {
                mandatory: f.mandatory,
                group: f.redundancy_group.clone(),
            })
            .collect();
        self.targets = vec![None; self.service.fragments.len()];
        let mut machine = Aggregate::new(rules, timers, Instant::now());
        let (reports_tx, mut reports) = mpsc::unbounded_channel::<Report>();
        // A closed channel is read once (it deactivates the aggregate), then no more.
        let (mut commands_open, mut events_open) = (true, true);
        loop {
            while let Some(action) = machine.poll_action() {
                match action {
                    Action::Start(i) => self.start(i, reports_tx.clone()),
                    Action::Stop(i) => self.stop(i, reports_tx.clone()),
                    // Local fragments only: no keepalive goes out.
                    Action::Keepalive(_) => {}
                    Action::Changed(state) => self.changed(&state),
                }
            }
            self.show(&machine);
            if matches!(machine.state(), State::Inactive { .. }) {
                return;
            }
            let deadline = machine.poll_timeout();
            tokio::select! {
                command = commands.recv(), if commands_open => {
                    commands_open = command.is_some();
                    machine.deactivate(Instant::now());
                }
                Some(report) = reports.recv() => {
                    let now = Instant::now();
                    match report {
                        Report::Started(i, Ok((target, reference))) => {
                            self.host.count(true, "started");
                            let f = &self.service.fragments[i];
                            self.event(
                                EventKind::FragmentStarted,
                                format!("{}: {} on {} ({reference})", f.name, f.service, target.session_id),
                            );
                            self.set_target(i, Some(target.clone()), &reference);
                            self.targets[i] = Some(target);
                            machine.handle_started(i, Place::Local, now);
                        }
                        Report::Started(i, Err(e)) => {
                            self.host.count(true, "start-failed");
                            machine.handle_start_failed(i, &e, now);
                        }
                        Report::Stopped(i, Ok(())) => machine.handle_stopped(i, now),
                        Report::Stopped(i, Err(e)) => machine.handle_stop_failed(i, &e, now),
                    }
                }
                event = events.recv(), if events_open => match event {
                    Ok(e) => self.on_event(&mut machine, &e),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(aggregate = self.id, missed = n, "aggregate session missed session events");
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        events_open = false;
                        machine.deactivate(Instant::now());
                    }
                },
                _ = sleep_until(deadline) => machine.handle_timeout(Instant::now()),
            }
        }
    }

    fn start(&self, i: usize, reports: mpsc::UnboundedSender<Report>) {
        let fragment = self.service.fragments[i].clone();
        let env = propagation::expression_env(&self.service, &self.activation, &self.ctx);
        let reference = sae_nic::evaluate_reference(&self.expressions[i], &env);
        let host = self.host.clone();
        let ctx = self.ctx.clone();
        let aggregate = self.service.clone();
        let activation = self.activation.clone();
        tokio::spawn(async move {
            let result = async {
                let reference = reference.map_err(|e| e.to_string())?;
                let text = reference.to_string();
                let found = host.resolve(reference).await?;
                let target = match found.as_slice() {
                    [] => return Err(format!("{text} names no session")),
                    [one] => one.clone(),
                    many => {
                        return Err(format!(
                            "{text} names {} sessions; a fragment runs on one",
                            many.len()
                        ));
                    }
                };
                if target.node != host.node() {
                    return Err(format!(
                        "{text} is on node {}: fragments on other nodes are not available in this version",
                        target.node
                    ));
                }
                let fragment_service = host
                    .service(&fragment.service)
                    .ok_or_else(|| format!("no service {:?} in the catalog", fragment.service))?;
                let activation = propagation::fragment_activation(
                    &ctx,
                    &aggregate,
                    &activation,
                    &fragment,
                    &fragment_service,
                    true,
                    &target.session_id,
                )
                .map_err(|e| e.to_string())?;
                host.activate(
                    target.session_id.clone(),
                    activation.service,
                    activation.substitutions,
                )
                .await?;
                Ok((target, text))
            }
            .await;
            let _ = reports.send(Report::Started(i, result));
        });
    }

    fn stop(&self, i: usize, reports: mpsc::UnboundedSender<Report>) {
        let Some(target) = self.targets[i].clone() else {
            let _ = reports.send(Report::Stopped(i, Ok(())));
            return;
        };
        let host = self.host.clone();
        let service = self.service.fragments[i].service.clone();
        tokio::spawn(async move {
            let result = host.deactivate(target.session_id, service).await;
            let _ = reports.send(Report::Stopped(i, result));
        });
    }

    fn on_event(&mut self, machine: &mut Aggregate, e: &SessionEvent) {
        let now = Instant::now();
        if e.session_id == self.session_id
            && matches!(e.kind, EventKind::Logout | EventKind::HandedOver)
        {
            machine.deactivate(now);
            return;
        }
        let mut lost_now = Vec::new();
        for (i, target) in self.targets.iter().enumerate() {
            let Some(target) = target else { continue };
            if target.session_id != e.session_id {
                continue;
            }
            let fragment_service = &self.service.fragments[i].service;
            let lost = match e.kind {
                EventKind::Logout | EventKind::HandedOver => true,
                EventKind::ServiceDeactivated | EventKind::ServiceFailed => {
                    e.service == *fragment_service
                }
                _ => false,
            };
            if lost && matches!(machine.fragments()[i], FragmentState::Active { .. }) {
                let what = format!("{} on {}: {}", e.kind.name(), e.session_id, e.detail);
                lost_now.push((i, what));
            }
        }
        for (i, what) in lost_now {
            self.host.count(true, "lost");
            let name = self.service.fragments[i].name.clone();
            self.event(EventKind::FragmentLost, format!("{name}: {what}"));
            machine.handle_lost(i, &what, now);
        }
    }

    fn event(&self, kind: EventKind, detail: String) {
        self.host.publish(SessionEvent {
            time_ms: crate::model::now_ms(),
            kind,
            session_id: self.session_id.clone(),
            user_name: self.ctx.field("loginName"),
            router: self.ctx.field("router"),
            service: self.service.name.clone(),
            detail,
        });
    }

    fn changed(&mut self, state: &State) {
        tracing::info!(aggregate = self.id, service = %self.service.name, session = %self.session_id, state = state.name(), "aggregate session");
        match state {
            State::Active => {
                self.host.count(false, "active");
                self.event(EventKind::AggregateActive, format!("aggregate {}", self.id));
            }
            State::Deactivating { reason: Some(r) } => {
                self.host.count(false, "failed");
                self.event(EventKind::AggregateFailed, r.clone());
            }
            State::Inactive { reason } => {
                if reason.is_none() {
                    self.host.count(false, "deactivated");
                }
                self.event(
                    EventKind::AggregateInactive,
                    reason.clone().unwrap_or_else(|| "deactivated".into()),
                );
            }
            _ => {}
        }
        let outcome = match state {
            State::Active => Some(Ok(())),
            State::Deactivating { reason: Some(r) } | State::Inactive { reason: Some(r) } => {
                Some(Err(r.clone()))
            }
            State::Inactive { reason: None } => {
                Some(Err("deactivated before it was active".into()))
            }
            _ => None,
        };
        if let (Some(outcome), Some(done)) = (outcome, self.done.take()) {
            let _ = done.send(outcome);
        }
    }

    fn set_target(&self, i: usize, target: Option<Located>, reference: &str) {
        let mut view = self.view.lock().expect("aggregate view lock");
        if let Some(f) = view.fragments.get_mut(i) {
            f.target = target;
            f.reference = reference.to_owned();
        }
    }

    fn show(&self, machine: &Aggregate) {
        let mut view = self.view.lock().expect("aggregate view lock");
        view.state = machine.state().name().into();
        if let State::Deactivating { reason: Some(r) } | State::Inactive { reason: Some(r) } =
            machine.state()
        {
            view.reason = r.clone();
        }
        for (f, state) in view.fragments.iter_mut().zip(machine.fragments()) {
            f.state = state.name().into();
            f.error = match state {
                FragmentState::Waiting { error: Some(e), .. }
                | FragmentState::StopWaiting { error: e, .. }
                | FragmentState::GaveUp { error: e }
                | FragmentState::Abandoned { error: e } => e.clone(),
                _ => String::new(),
            };
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}
