//! The SubscriberSession actor: one per subscriber session, whatever its protocol. It owns the
//! session's record (login identity, services and their policies, state), takes in what the
//! router reports about the session (confirmation, replay, usage, termination), carries out the
//! operator's requests (activation, deactivation, logout, usage collection) through its
//! [`PolicyLink`], publishes every change to the registry, the store and the event bus, and ends
//! the session at logout or when a resynchronization does not replay it.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::engine::{Engine, SubscriberError};
use super::link::{Answered, Change, Pending, PolicyLink, SendError};
use crate::events::EventKind;
use crate::model::{ServiceSession, ServiceState, SessionState, SubscriberRecord, UsageRecord};

/// What the router reports about the session, in the protocol's terms turned into the
/// session's: the reply is the session's services after the report.
#[derive(Debug)]
pub enum RouterReport {
    /// The router installed what it was given (a confirmation, a success report).
    Confirm { detail: &'static str },
    /// The router replays the session after a resynchronization: `services` are the policies
    /// it holds (each named by its policy until the session names it) and the subscriber's
    /// address.
    Replay {
        services: Vec<ServiceSession>,
        framed_ip: Option<Ipv4Addr>,
    },
    /// One address family of a dual-stack subscriber went down; the session goes on.
    FamilyDown,
    /// The same session logging in again, or another address family coming up: it keeps what
    /// it has.
    Relogin,
    /// Usage the router reported.
    Usage(Vec<UsageRecord>),
    /// The router ended the session, with its final usage.
    Terminate {
        usage: Vec<UsageRecord>,
        detail: String,
    },
    /// The router could not install the policies being installed.
    InstallFailed { detail: String },
}

/// A [`RouterReport`] to the session.
#[derive(Message)]
#[rtype(result = "Vec<ServiceSession>")]
pub struct Report(pub RouterReport);

/// The router is asked to replay its sessions (SRQ sent, or its own SRQ answered): this one
/// waits for its replay. The window that ends it unreplayed starts with [`ResyncAnswered`].
#[derive(Message)]
#[rtype(result = "()")]
pub struct StartResync;

/// The router answered the SRQ (or the node answered the router's): a session still waiting
/// for its replay `window` from now is ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ResyncAnswered {
    pub window: Duration,
}

/// Install a service.
#[derive(Message)]
#[rtype(result = "Result<ChangeOutcome, SubscriberError>")]
pub struct Activate {
    pub service: ServiceSession,
}

/// Remove a service.
#[derive(Message)]
#[rtype(result = "Result<ChangeOutcome, SubscriberError>")]
pub struct Deactivate {
    pub service: String,
}

/// Log the subscriber out.
#[derive(Message)]
#[rtype(result = "Result<LogoutOutcome, SubscriberError>")]
pub struct Logout;

/// Ask the router for the session's usage.
#[derive(Message)]
#[rtype(result = "Result<CollectOutcome, SubscriberError>")]
pub struct Collect;

/// End the session (the router deleted its request state).
#[derive(Message)]
#[rtype(result = "()")]
pub struct EndSession {
    pub detail: String,
}

/// What an install or a removal achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeOutcome {
    pub session_id: String,
    pub service: String,
    pub policy_name: String,
    pub success: bool,
    /// The router's result code; 0 when it never answered (or answers in a later report).
    pub result_code: u32,
    pub state: Option<ServiceState>,
    pub message: String,
    pub attempts: u32,
}

/// What a logout achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutOutcome {
    pub session_id: String,
    pub result_code: u32,
    pub usage: Vec<UsageRecord>,
}

/// What a usage request returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectOutcome {
    pub session_id: String,
    pub result_code: u32,
    pub usage: Vec<UsageRecord>,
}

/// The actor.
pub struct SubscriberSession {
    engine: Arc<Engine>,
    link: Arc<dyn PolicyLink>,
    record: Arc<SubscriberRecord>,
    resync_timer: Option<SpawnHandle>,
    logout_timer: Option<SpawnHandle>,
    ended: bool,
    /// Operator requests waiting on the router; an ended session stops when they are done.
    inflight: u32,
}

impl Actor for SubscriberSession {
    type Context = Context<Self>;
}

impl SubscriberSession {
    pub fn new(
        engine: Arc<Engine>,
        link: Arc<dyn PolicyLink>,
        record: Arc<SubscriberRecord>,
    ) -> SubscriberSession {
        SubscriberSession {
            engine,
            link,
            record,
            resync_timer: None,
            logout_timer: None,
            ended: false,
            inflight: 0,
        }
    }

    /// The span a handler runs in: the session and its router on every log line. Made per
    /// message, not kept, so an idle session costs no span; at debug level, so that at the
    /// default level it costs nothing either.
    fn span(&self) -> tracing::span::EnteredSpan {
        tracing::debug_span!(
            "subscriber_session",
            session = %self.record.session_id,
            router = %self.record.router
        )
        .entered()
    }

    fn record_mut(&mut self) -> &mut SubscriberRecord {
        Arc::make_mut(&mut self.record)
    }

    /// Makes the current record visible: registry, store.
    fn publish(&self) {
        if self.ended {
            return;
        }
        self.engine.sessions.update(self.record.clone());
        self.engine.store.put_session(&self.record);
    }

    fn event(&self, kind: EventKind, service: &str, detail: impl Into<String>) {
        self.engine
            .session_event(kind, &self.record, service, detail);
    }

    fn store_usage(&self, records: Vec<UsageRecord>) -> Vec<UsageRecord> {
        let stored: Vec<UsageRecord> = records
            .into_iter()
            .map(|r| self.engine.store.append_usage(r))
            .collect();
        for r in &stored {
            self.engine.metrics.usage_records.inc();
            self.event(
                EventKind::Usage,
                "",
                format!(
                    "{} {} in={} out={}",
                    r.policy_name,
                    r.kind.name(),
                    r.input_octets,
                    r.output_octets
                ),
            );
        }
        stored
    }

    /// Ends the session: removed from the registry and the store, actor stopped.
    fn end(&mut self, ctx: &mut Context<Self>, detail: &str) {
        self.end_as(ctx, EventKind::Logout, detail);
    }

    /// [`SubscriberSession::end`], announced as `kind`.
    fn end_as(&mut self, ctx: &mut Context<Self>, kind: EventKind, detail: &str) {
        if self.ended {
            return;
        }
        self.event(kind, "", detail);
        self.ended = true;
        let addr = ctx.address();
        self.engine.sessions.remove(&self.record.session_id, &addr);
        self.engine.store.remove_session(&self.record.session_id);
        self.engine
            .metrics
            .subscriber_sessions
            .set(self.engine.sessions.len() as i64);
        if self.inflight == 0 {
            ctx.stop();
        }
    }

    /// An operator request starts waiting on the router.
    fn op_started(&mut self) {
        self.inflight += 1;
    }

    /// An operator request is done; an ended session stops once none is left.
    fn op_done(&mut self, ctx: &mut Context<Self>) {
        self.inflight = self.inflight.saturating_sub(1);
        if self.ended && self.inflight == 0 {
            ctx.stop();
        }
    }

    /// Services still being installed are now active.
    fn confirm(&mut self, detail: &'static str) {
        let r = self.record_mut();
        r.confirmed = true;
        for s in &mut r.services {
            if s.state == ServiceState::Installing {
                s.state = ServiceState::Active;
            }
        }
        self.publish();
        self.event(EventKind::Confirmed, "", detail);
    }

    fn replay(
        &mut self,
        services: Vec<ServiceSession>,
        framed_ip: Option<Ipv4Addr>,
        ctx: &mut Context<Self>,
    ) {
        if let Some(t) = self.resync_timer.take() {
            ctx.cancel_future(t);
        }
        // The router is the source of truth: the services are what it holds.
        let services: Vec<ServiceSession> = services
            .into_iter()
            .map(|mut s| {
                s.service = self
                    .record
                    .services
                    .iter()
                    .find(|known| known.policy_name == s.policy_name)
                    .map(|known| known.service.clone())
                    .unwrap_or_else(|| self.engine.service_for_policy(&s.policy_name));
                s
            })
            .collect();
        let r = self.record_mut();
        r.services = services;
        r.state = SessionState::Active;
        r.confirmed = true;
        if let Some(ip) = framed_ip {
            r.framed_ip = Some(ip);
        }
        self.publish();
        self.event(EventKind::SessionReplayed, "", "replayed by the router");
    }

    fn install_failed(&mut self, detail: String) {
        let r = self.record_mut();
        for s in &mut r.services {
            if s.state == ServiceState::Installing {
                s.state = ServiceState::Failed;
                s.error = detail.clone();
            }
        }
        self.publish();
        self.event(EventKind::ServiceFailed, "", detail);
    }

    /// Waits for the router's answer to a change and records it.
    fn change(
        &mut self,
        name: String,
        install: bool,
        pending: Pending<Change>,
    ) -> ResponseActFuture<Self, Result<ChangeOutcome, SubscriberError>> {
        self.op_started();
        Box::pin(pending.into_actor(self).map(move |outcome, act, ctx| {
            let r = act.change_done(&name, install, outcome);
            act.op_done(ctx);
            r
        }))
    }

    /// Records what the router made of a change of one service.
    fn change_done(
        &mut self,
        name: &str,
        install: bool,
        outcome: Result<Change, SendError>,
    ) -> Result<ChangeOutcome, SubscriberError> {
        if self.ended {
            return Err(SubscriberError::SessionGone);
        }
        let session_id = self.record.session_id.clone();
        if outcome == Ok(Change::Sent) {
            return Ok(self.change_sent(name, install));
        }
        let (outcome, attempts) = match outcome {
            Ok(Change::Unanswered { error, attempts }) => (Err(error), attempts),
            Err(error) => (Err(error), 1),
            Ok(answered) => (Ok(answered), 1),
        };
        let (success, code, message, attempts) = match &outcome {
            Ok(Change::Answered {
                success,
                result_code,
                message,
                attempts,
            }) => (*success, *result_code, message.clone(), *attempts),
            Ok(_) => unreachable!("sent and unanswered changes are handled above"),
            Err(e) => (false, 0, e.to_string(), attempts),
        };
        let r = self.record_mut();
        let Some(idx) = r.services.iter().position(|s| s.service == name) else {
            return Err(SubscriberError::ServiceNotActive(
                session_id,
                name.to_owned(),
            ));
        };
        let policy_name = r.services[idx].policy_name.clone();
        let state = if install {
            let s = &mut r.services[idx];
            s.result_code = code;
            s.error = message.clone();
            s.state = if success {
                ServiceState::Active
            } else {
                ServiceState::Failed
            };
            Some(s.state)
        } else if success {
            r.services.remove(idx);
            None
        } else {
            // The router kept the policy.
            let s = &mut r.services[idx];
            s.result_code = code;
            s.error = message.clone();
            s.state = ServiceState::Active;
            Some(s.state)
        };
        self.publish();
        let kind = match (install, success) {
            (true, true) => EventKind::ServiceActivated,
            (false, true) => EventKind::ServiceDeactivated,
            _ => EventKind::ServiceFailed,
        };
        let detail = if success {
            format!("PPA {code}")
        } else if code == 0 {
            message.clone()
        } else {
            format!("PPA {code} {message}")
        };
        self.event(kind, name, detail);
        match outcome {
            Err(SendError::NotConnected(_)) => {
                return Err(SubscriberError::Router(SendError::NotConnected(
                    self.record.router.clone(),
                )));
            }
            Err(SendError::NotServed(_)) => {
                return Err(SubscriberError::Router(SendError::NotServed(
                    self.record.router.clone(),
                )));
            }
            _ => {}
        }
        Ok(ChangeOutcome {
            session_id,
            service: name.to_owned(),
            policy_name,
            success,
            result_code: code,
            state,
            message,
            attempts,
        })
    }

    /// A change sent to a router that confirms it in a report of its own: an install stays
    /// `Installing` until then, a removal is done.
    fn change_sent(&mut self, name: &str, install: bool) -> ChangeOutcome {
        let r = self.record_mut();
        let policy_name = r
            .services
            .iter()
            .find(|x| x.service == name)
            .map(|x| x.policy_name.clone())
            .unwrap_or_default();
        let state = if install {
            Some(ServiceState::Installing)
        } else {
            r.services.retain(|x| x.service != name);
            None
        };
        self.publish();
        let kind = if install {
            EventKind::ServiceActivated
        } else {
            EventKind::ServiceDeactivated
        };
        self.event(kind, name, "DEC sent to the PEP");
        ChangeOutcome {
            session_id: self.record.session_id.clone(),
            service: name.to_owned(),
            policy_name,
            success: true,
            result_code: 0,
            state,
            message: "DEC sent; the PEP's report confirms it".into(),
            attempts: 1,
        }
    }
}

impl Handler<Report> for SubscriberSession {
    type Result = MessageResult<Report>;

    fn handle(&mut self, msg: Report, ctx: &mut Context<Self>) -> Self::Result {
        let _span = self.span();
        match msg.0 {
            RouterReport::Confirm { detail } => self.confirm(detail),
            RouterReport::Replay {
                services,
                framed_ip,
            } => self.replay(services, framed_ip, ctx),
            RouterReport::FamilyDown => {
                self.event(EventKind::Confirmed, "", "an address family went down");
            }
            RouterReport::Relogin => {}
            RouterReport::Usage(records) => {
                self.store_usage(records);
            }
            RouterReport::Terminate { usage, detail } => {
                self.store_usage(usage);
                let services = self.record.services.clone();
                self.end(ctx, &detail);
                return MessageResult(services);
            }
            RouterReport::InstallFailed { detail } => self.install_failed(detail),
        }
        MessageResult(self.record.services.clone())
    }
}

impl Handler<StartResync> for SubscriberSession {
    type Result = ();

    fn handle(&mut self, _msg: StartResync, ctx: &mut Context<Self>) {
        let _span = self.span();
        self.record_mut().state = SessionState::Resyncing;
        self.publish();
        // Until the router answers, a window from an earlier SRQ no longer applies.
        if let Some(t) = self.resync_timer.take() {
            ctx.cancel_future(t);
        }
    }
}

impl Handler<ResyncAnswered> for SubscriberSession {
    type Result = ();

    fn handle(&mut self, msg: ResyncAnswered, ctx: &mut Context<Self>) {
        let _span = self.span();
        if self.record.state != SessionState::Resyncing {
            return;
        }
        if let Some(t) = self.resync_timer.take() {
            ctx.cancel_future(t);
        }
        self.resync_timer = Some(ctx.run_later(msg.window, |act, ctx| {
            act.resync_timer = None;
            if act.record.state == SessionState::Resyncing {
                act.end(ctx, "not replayed by the router within the resync window");
            }
        }));
    }
}

impl Handler<Activate> for SubscriberSession {
    type Result = ResponseActFuture<Self, Result<ChangeOutcome, SubscriberError>>;

    fn handle(&mut self, msg: Activate, _ctx: &mut Context<Self>) -> Self::Result {
        let _span = self.span();
        if let Err(e) = self.link.ready(&self.record) {
            return Box::pin(fut::ready(Err(e.into())));
        }
        let mut service = msg.service;
        let pending = match self.link.install(&self.record, &service) {
            Ok(p) => p,
            Err(e) => return Box::pin(fut::ready(Err(e.into()))),
        };
        service.state = ServiceState::Installing;
        let name = service.service.clone();
        let r = self.record_mut();
        match r.services.iter_mut().find(|s| s.service == name) {
            Some(existing) => *existing = service,
            None => r.services.push(service),
        }
        self.publish();
        self.change(name, true, pending)
    }
}

impl Handler<Deactivate> for SubscriberSession {
    type Result = ResponseActFuture<Self, Result<ChangeOutcome, SubscriberError>>;

    fn handle(&mut self, msg: Deactivate, _ctx: &mut Context<Self>) -> Self::Result {
        let _span = self.span();
        if let Err(e) = self.link.ready(&self.record) {
            return Box::pin(fut::ready(Err(e.into())));
        }
        let name = msg.service;
        let Some(service) = self.record.services.iter().find(|s| s.service == name) else {
            let err = SubscriberError::ServiceNotActive(self.record.session_id.clone(), name);
            return Box::pin(fut::ready(Err(err)));
        };
        let pending = match self.link.remove(&self.record, service) {
            Ok(p) => p,
            Err(e) => return Box::pin(fut::ready(Err(e.into()))),
        };
        if let Some(s) = self
            .record_mut()
            .services
            .iter_mut()
            .find(|s| s.service == name)
        {
            s.state = ServiceState::Removing;
        }
        self.publish();
        self.change(name, false, pending)
    }
}

impl Handler<Logout> for SubscriberSession {
    type Result = ResponseActFuture<Self, Result<LogoutOutcome, SubscriberError>>;

    fn handle(&mut self, _msg: Logout, _ctx: &mut Context<Self>) -> Self::Result {
        let _span = self.span();
        let pending = self.link.abort(&self.record);
        self.op_started();
        Box::pin(pending.into_actor(self).map(|outcome, act, ctx| {
            act.op_done(ctx);
            let answer: Answered = outcome?;
            let session_id = act.record.session_id.clone();
            if act.ended {
                // The router's own termination got here first.
                return Ok(LogoutOutcome {
                    session_id,
                    result_code: answer.result_code,
                    usage: Vec::new(),
                });
            }
            let usage = act.store_usage(answer.usage);
            if answer.success {
                act.record_mut().state = SessionState::LoggingOut;
                act.publish();
                // The router follows with its termination; end the session anyway if not.
                let wait = act.engine.settings.logout_timeout;
                act.logout_timer = Some(ctx.run_later(wait, |act, ctx| {
                    act.end(ctx, "logged out by the operator (no STR from the router)");
                }));
            } else if answer.unknown_session {
                act.end(
                    ctx,
                    "logged out by the operator; the router did not know it",
                );
            }
            Ok(LogoutOutcome {
                session_id,
                result_code: answer.result_code,
                usage,
            })
        }))
    }
}

impl Handler<Collect> for SubscriberSession {
    type Result = ResponseActFuture<Self, Result<CollectOutcome, SubscriberError>>;

    fn handle(&mut self, _msg: Collect, _ctx: &mut Context<Self>) -> Self::Result {
        let _span = self.span();
        let pending = self.link.collect(&self.record);
        self.op_started();
        Box::pin(pending.into_actor(self).map(|outcome, act, ctx| {
            act.op_done(ctx);
            let answer = outcome?;
            let usage = act.store_usage(answer.usage);
            Ok(CollectOutcome {
                session_id: act.record.session_id.clone(),
                result_code: answer.result_code,
                usage,
            })
        }))
    }
}

impl Handler<EndSession> for SubscriberSession {
    type Result = ();

    fn handle(&mut self, msg: EndSession, ctx: &mut Context<Self>) {
        let _span = self.span();
        self.end(ctx, &msg.detail);
    }
}

/// The session's router moved to another node: end the session here without a word to the
/// router (the new owner rebuilds it from the router's replay).
#[derive(Message)]
#[rtype(result = "()")]
pub struct HandOver {
    pub detail: String,
}

impl Handler<HandOver> for SubscriberSession {
    type Result = ();

    fn handle(&mut self, msg: HandOver, ctx: &mut Context<Self>) {
        let _span = self.span();
        self.end_as(ctx, EventKind::HandedOver, &msg.detail);
    }
}
