//! The SubscriberSession actor: one per subscriber session. It owns the session's record (login
//! identity, services and their policies, state), answers the router's requests about the session
//! (confirm and replay AARs, ACR, STR), carries out the operator's (activation, deactivation,
//! logout, usage collection) as PPR/ASR/ACR with timeouts and bounded retries, publishes every
//! change to the registry, the store and the event bus, and ends the session at logout or when a
//! resynchronization does not replay it.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use sae_diameter::Message;
use sae_diameter::codes::{command, result};
use sae_diameter::jsrc::{RequestType, SubscriberMessage};

use super::messages;
use crate::events::EventKind;
use crate::model::{
    ServiceSession, ServiceState, SessionState, SubscriberRecord, UsageKind, UsageRecord,
};
use crate::sae::{Sae, SendError, SubscriberError};

/// A request from the router about this session; the answer goes back to the router.
#[derive(Message)]
#[rtype(result = "Message")]
pub struct RouterRequest(pub Message);

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

/// Install a service (PPR with Juniper-Policy-Install).
#[derive(Message)]
#[rtype(result = "Result<ChangeOutcome, SubscriberError>")]
pub struct Activate {
    pub service: ServiceSession,
}

/// Remove a service (PPR with Juniper-Policy-Remove).
#[derive(Message)]
#[rtype(result = "Result<ChangeOutcome, SubscriberError>")]
pub struct Deactivate {
    pub service: String,
}

/// Log the subscriber out (ASR).
#[derive(Message)]
#[rtype(result = "Result<LogoutOutcome, SubscriberError>")]
pub struct Logout;

/// Ask the router for statistics (ACR).
#[derive(Message)]
#[rtype(result = "Result<CollectOutcome, SubscriberError>")]
pub struct Collect;

/// End the session (COPS DRQ, a replaced request state).
#[derive(Message)]
#[rtype(result = "()")]
pub struct EndSession {
    pub detail: String,
}

/// A COPS-PR report about the session's request state: the outcome of the installed policies
/// or usage (accounting).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CopsReport {
    pub report_type: sae_cops::object::ReportType,
    /// Named ClientSI (PRID/EPD sub-objects), if any.
    pub named: Option<bytes::Bytes>,
    pub solicited: bool,
}

/// What a PPR achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeOutcome {
    pub session_id: String,
    pub service: String,
    pub policy_name: String,
    pub success: bool,
    /// PPA Result-Code; 0 when the router never answered.
    pub result_code: u32,
    pub state: Option<ServiceState>,
    pub message: String,
    pub attempts: u32,
}

/// What an ASR achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutOutcome {
    pub session_id: String,
    pub result_code: u32,
    pub usage: Vec<UsageRecord>,
}

/// What a statistics request returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectOutcome {
    pub session_id: String,
    pub result_code: u32,
    pub usage: Vec<UsageRecord>,
}

/// The actor.
pub struct SubscriberSession {
    sae: Arc<Sae>,
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

/// A PPR sent until answered or out of attempts.
async fn push_with_retry(
    sae: Arc<Sae>,
    router: String,
    request: Message,
) -> (Result<Message, SendError>, u32) {
    let attempts = 1 + sae.settings.ppr_retries;
    let mut last = Err(SendError::NotConnected(router.clone()));
    for attempt in 1..=attempts {
        let started = std::time::Instant::now();
        last = sae
            .request(&router, request.clone(), sae.settings.ppr_timeout)
            .await;
        match &last {
            Ok(_) => {
                sae.metrics.round_trip("PPR", started.elapsed());
                return (last, attempt);
            }
            // Not connected or not ours: retrying will not help within this request.
            Err(SendError::NotConnected(_) | SendError::NotServed(_)) => return (last, attempt),
            Err(SendError::Failed { reason, .. }) => {
                tracing::info!(%router, attempt, %reason, "PPR not answered");
                if attempt < attempts {
                    // A short pause lets a reconnecting router come back.
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
            }
        }
    }
    (last, attempts)
}

impl SubscriberSession {
    pub fn new(sae: Arc<Sae>, record: Arc<SubscriberRecord>) -> SubscriberSession {
        SubscriberSession {
            sae,
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
        self.sae.sessions.update(self.record.clone());
        self.sae.store.put_session(&self.record);
    }

    fn event(&self, kind: EventKind, service: &str, detail: impl Into<String>) {
        self.sae.session_event(kind, &self.record, service, detail);
    }

    fn store_usage(&self, records: Vec<UsageRecord>) -> Vec<UsageRecord> {
        let stored: Vec<UsageRecord> = records
            .into_iter()
            .map(|r| self.sae.store.append_usage(r))
            .collect();
        for r in &stored {
            self.sae.metrics.usage_records.inc();
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
        self.sae.sessions.remove(&self.record.session_id, &addr);
        self.sae.store.remove_session(&self.record.session_id);
        self.sae
            .metrics
            .subscriber_sessions
            .set(self.sae.sessions.len() as i64);
        if self.inflight == 0 {
            ctx.stop();
        }
    }

    /// A change is only attempted while the router is connected; otherwise nothing is
    /// recorded (the router never heard of it).
    fn router_connected(&self) -> Result<(), SubscriberError> {
        match self.sae.routers.get(&self.record.router) {
            Some(_) => Ok(()),
            None => Err(SubscriberError::Router(SendError::NotConnected(
                self.record.router.clone(),
            ))),
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

    fn acct_records(&self, m: &Message, kind: UsageKind, number: u32) -> Vec<UsageRecord> {
        match m.acct_records_with(&self.sae.juniper_codes) {
            Ok(r) => messages::usage_records(&r, &self.record, kind, number),
            Err(e) => {
                tracing::warn!(session = %self.record.session_id, error = %e, "unreadable Juniper-Acct-Record");
                Vec::new()
            }
        }
    }

    fn on_aar(&mut self, request: &Message, ctx: &mut Context<Self>) -> Message {
        let sae = self.sae.clone();
        let local = &sae.local;
        let codes = &sae.juniper_codes;
        match request.request_type_with(codes) {
            Some(RequestType::Provisioning) => {
                let r = self.record_mut();
                r.confirmed = true;
                for s in &mut r.services {
                    if s.state == ServiceState::Installing {
                        s.state = ServiceState::Active;
                    }
                }
                self.publish();
                self.event(
                    EventKind::Confirmed,
                    "",
                    "router confirmed the provisioning",
                );
                messages::answer(request, local, result::SUCCESS)
            }
            Some(RequestType::Synchronization) => {
                let installs = match request.policy_installs_with(codes) {
                    Ok(i) => i,
                    Err(e) => return messages::bad_policy_install(request, local, codes, &e),
                };
                if let Some(t) = self.resync_timer.take() {
                    ctx.cancel_future(t);
                }
                // The router is the source of truth: the services are what it holds.
                let services: Vec<ServiceSession> = installs
                    .iter()
                    .map(|p| {
                        let name = self
                            .record
                            .services
                            .iter()
                            .find(|s| s.policy_name == p.policy_name)
                            .map(|s| s.service.clone())
                            .unwrap_or_else(|| self.sae.service_for_policy(&p.policy_name));
                        messages::service_from_install(p, &name)
                    })
                    .collect();
                let r = self.record_mut();
                r.services = services;
                r.state = SessionState::Active;
                r.confirmed = true;
                if let Some(ip) = request.framed_ip() {
                    r.framed_ip = Some(ip);
                }
                self.publish();
                self.event(EventKind::SessionReplayed, "", "replayed by the router");
                messages::answer(request, local, result::SUCCESS)
            }
            Some(RequestType::FamilyDeactivation) => {
                // One address family of a dual-stack subscriber went down; the session and its
                // services go on with the other.
                self.event(EventKind::Confirmed, "", "an address family went down");
                messages::answer(request, local, result::SUCCESS)
            }
            _ => {
                // The same Session-Id logging in again, or a second address family coming up
                // (Juniper-Request-Type 4): answer with what it has.
                messages::login_answer(request, local, codes, &self.record.services)
            }
        }
    }

    fn on_acr(&mut self, request: &Message) -> Message {
        let kind = request
            .accounting_record_type()
            .and_then(UsageKind::from_record_type)
            .unwrap_or(UsageKind::Event);
        let number = request.accounting_record_number().unwrap_or(0);
        let records = self.acct_records(request, kind, number);
        self.store_usage(records);
        messages::accounting_answer(request, &self.sae.local, result::SUCCESS)
    }

    fn on_str(&mut self, request: &Message, ctx: &mut Context<Self>) -> Message {
        let records = self.acct_records(request, UsageKind::Final, 0);
        self.store_usage(records);
        let cause = request.termination_cause().unwrap_or(0);
        let answer = messages::answer(request, &self.sae.local, result::SUCCESS);
        self.end(
            ctx,
            &format!("router ended the session (Termination-Cause {cause})"),
        );
        answer
    }
}

impl Handler<RouterRequest> for SubscriberSession {
    type Result = MessageResult<RouterRequest>;

    fn handle(&mut self, msg: RouterRequest, ctx: &mut Context<Self>) -> Self::Result {
        let _span = self.span();
        let request = msg.0;
        let answer = match request.header.command_code {
            command::AA => self.on_aar(&request, ctx),
            command::ACCOUNTING => self.on_acr(&request),
            command::SESSION_TERMINATION => self.on_str(&request, ctx),
            _ => messages::refusal(
                &request,
                &self.sae.local,
                result::COMMAND_UNSUPPORTED,
                "not a subscriber session request",
            ),
        };
        MessageResult(answer)
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
        if self.record.router_interface.is_some() {
            return Box::pin(fut::ready(self.cops_change(msg.service, true)));
        }
        if let Err(e) = self.router_connected() {
            return Box::pin(fut::ready(Err(e)));
        }
        let service = msg.service;
        let name = service.service.clone();
        let request = messages::push_profile(
            &self.record,
            &self.sae.local,
            &self.sae.juniper_codes,
            &[&service],
            &[],
        );
        let r = self.record_mut();
        match r.services.iter_mut().find(|s| s.service == name) {
            Some(existing) => *existing = service,
            None => r.services.push(service),
        }
        self.publish();
        self.op_started();
        let sae = self.sae.clone();
        let router = self.record.router.clone();
        Box::pin(push_with_retry(sae, router, request).into_actor(self).map(
            move |(outcome, attempts), act, ctx| {
                let r = act.ppr_done(&name, true, outcome, attempts);
                act.op_done(ctx);
                r
            },
        ))
    }
}

impl Handler<Deactivate> for SubscriberSession {
    type Result = ResponseActFuture<Self, Result<ChangeOutcome, SubscriberError>>;

    fn handle(&mut self, msg: Deactivate, _ctx: &mut Context<Self>) -> Self::Result {
        let _span = self.span();
        if self.record.router_interface.is_some() {
            let Some(service) = self
                .record
                .services
                .iter()
                .find(|s| s.service == msg.service)
                .cloned()
            else {
                let err =
                    SubscriberError::ServiceNotActive(self.record.session_id.clone(), msg.service);
                return Box::pin(fut::ready(Err(err)));
            };
            return Box::pin(fut::ready(self.cops_change(service, false)));
        }
        if let Err(e) = self.router_connected() {
            return Box::pin(fut::ready(Err(e)));
        }
        let name = msg.service;
        let Some(service) = self.record.services.iter().find(|s| s.service == name) else {
            let err = SubscriberError::ServiceNotActive(self.record.session_id.clone(), name);
            return Box::pin(fut::ready(Err(err)));
        };
        let request = messages::push_profile(
            &self.record,
            &self.sae.local,
            &self.sae.juniper_codes,
            &[],
            &[service.policy_name.as_str()],
        );
        if let Some(s) = self
            .record_mut()
            .services
            .iter_mut()
            .find(|s| s.service == name)
        {
            s.state = ServiceState::Removing;
        }
        self.publish();
        self.op_started();
        let sae = self.sae.clone();
        let router = self.record.router.clone();
        Box::pin(push_with_retry(sae, router, request).into_actor(self).map(
            move |(outcome, attempts), act, ctx| {
                let r = act.ppr_done(&name, false, outcome, attempts);
                act.op_done(ctx);
                r
            },
        ))
    }
}

impl SubscriberSession {
    /// Records a PPA (or its absence) for one service.
    fn ppr_done(
        &mut self,
        name: &str,
        install: bool,
        outcome: Result<Message, SendError>,
        attempts: u32,
    ) -> Result<ChangeOutcome, SubscriberError> {
        if self.ended {
            return Err(SubscriberError::SessionGone);
        }
        let session_id = self.record.session_id.clone();
        let (code, message) = match &outcome {
            Ok(answer) => (
                answer.result_code().unwrap_or(0),
                answer.error_message().unwrap_or("").to_owned(),
            ),
            Err(e) => (0, e.to_string()),
        };
        let success = code == result::SUCCESS;
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
}

impl Handler<Logout> for SubscriberSession {
    type Result = ResponseActFuture<Self, Result<LogoutOutcome, SubscriberError>>;

    fn handle(&mut self, _msg: Logout, _ctx: &mut Context<Self>) -> Self::Result {
        let _span = self.span();
        let request = messages::abort_session(&self.record, &self.sae.local);
        let sae = self.sae.clone();
        let router = self.record.router.clone();
        let timeout = sae.settings.request_timeout;
        self.op_started();
        Box::pin(
            async move {
                let started = std::time::Instant::now();
                let r = sae.request(&router, request, timeout).await;
                if r.is_ok() {
                    sae.metrics.round_trip("ASR", started.elapsed());
                }
                r
            }
            .into_actor(self)
            .map(|outcome, act, ctx| {
                act.op_done(ctx);
                let answer = outcome?;
                let code = answer.result_code().unwrap_or(0);
                let session_id = act.record.session_id.clone();
                if act.ended {
                    // The router's STR got here first.
                    return Ok(LogoutOutcome {
                        session_id,
                        result_code: code,
                        usage: Vec::new(),
                    });
                }
                let records = act.acct_records(&answer, UsageKind::Final, 0);
                let usage = act.store_usage(records);
                match code {
                    result::SUCCESS => {
                        act.record_mut().state = SessionState::LoggingOut;
                        act.publish();
                        // The router follows with STR; end the session anyway if it does not.
                        let wait = act.sae.settings.logout_timeout;
                        act.logout_timer = Some(ctx.run_later(wait, |act, ctx| {
                            act.end(ctx, "logged out by the operator (no STR from the router)");
                        }));
                    }
                    result::UNKNOWN_SESSION_ID => {
                        act.end(
                            ctx,
                            "logged out by the operator; the router did not know it",
                        );
                    }
                    _ => {}
                }
                Ok(LogoutOutcome {
                    session_id,
                    result_code: code,
                    usage,
                })
            }),
        )
    }
}

impl Handler<Collect> for SubscriberSession {
    type Result = ResponseActFuture<Self, Result<CollectOutcome, SubscriberError>>;

    fn handle(&mut self, _msg: Collect, _ctx: &mut Context<Self>) -> Self::Result {
        let _span = self.span();
        let number = self.sae.next_acct_number();
        let request = messages::collect_usage(
            &self.record,
            &self.sae.local,
            &self.sae.juniper_codes,
            number,
        );
        let sae = self.sae.clone();
        let router = self.record.router.clone();
        let timeout = sae.settings.request_timeout;
        self.op_started();
        Box::pin(
            async move { sae.request(&router, request, timeout).await }
                .into_actor(self)
                .map(move |outcome, act, ctx| {
                    act.op_done(ctx);
                    let answer = outcome?;
                    let code = answer.result_code().unwrap_or(0);
                    let records = if code == result::SUCCESS {
                        act.acct_records(&answer, UsageKind::Collected, number)
                    } else {
                        Vec::new()
                    };
                    let usage = act.store_usage(records);
                    Ok(CollectOutcome {
                        session_id: act.record.session_id.clone(),
                        result_code: code,
                        usage,
                    })
                }),
        )
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

impl Handler<CopsReport> for SubscriberSession {
    type Result = ();

    fn handle(&mut self, msg: CopsReport, _ctx: &mut Context<Self>) {
        let _span = self.span();
        use sae_cops::object::ReportType;
        match msg.report_type {
            ReportType::Success => {
                let r = self.record_mut();
                r.confirmed = true;
                for s in &mut r.services {
                    if s.state == ServiceState::Installing {
                        s.state = ServiceState::Active;
                    }
                }
                self.publish();
                self.event(
                    EventKind::Confirmed,
                    "",
                    "PEP reported the policies installed",
                );
            }
            ReportType::Failure => {
                let detail = msg
                    .named
                    .as_ref()
                    .and_then(|b| sae_cops::pr::decode_outcome_report(b).ok())
                    .map(|r| format!("{r:?}"))
                    .unwrap_or_else(|| "failure report".into());
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
            ReportType::Accounting => {
                let kind = if msg.solicited {
                    UsageKind::Collected
                } else {
                    UsageKind::Interim
                };
                let records = msg
                    .named
                    .as_ref()
                    .map(|b| self.cops_usage(b, kind))
                    .unwrap_or_default();
                self.store_usage(records);
            }
            ReportType::Other(code) => {
                tracing::info!(session = %self.record.session_id, code, "report of an unknown type");
            }
        }
    }
}

impl SubscriberSession {
    /// COPS-PR: installs or removes a service's policy with an unsolicited DEC on the session's
    /// request state. The PEP's next report confirms an install (or marks it failed).
    fn cops_change(
        &mut self,
        service: ServiceSession,
        install: bool,
    ) -> Result<ChangeOutcome, SubscriberError> {
        use sae_cops::message::Decision;
        use sae_cops::object::{Command, Context as CopsContext, DecisionFlags};
        let not_connected =
            || SubscriberError::Router(SendError::NotConnected(self.record.router.clone()));
        let Some((pepid, client_type, handle)) =
            crate::cops::parse_session_id(&self.record.session_id)
        else {
            return Err(not_connected());
        };
        let Some(driver) = self
            .sae
            .cops
            .get()
            .and_then(std::sync::Weak::upgrade)
            .and_then(|c| c.driver(&pepid, client_type))
            .map(|(d, _)| d)
        else {
            return Err(not_connected());
        };
        let interface = self.record.router_interface.unwrap_or(0);
        let (command, named) = if install {
            (
                Command::Install,
                crate::cops::driver::install_decision(interface, std::slice::from_ref(&service)),
            )
        } else {
            (
                Command::Remove,
                crate::cops::driver::remove_decision(&service),
            )
        };
        let named = named.map_err(|e| {
            SubscriberError::Router(SendError::Failed {
                router: self.record.router.clone(),
                reason: e,
            })
        })?;
        let mut decision = Decision::new(CopsContext::configuration(), DecisionFlags::new(command));
        decision.named = Some(named);
        driver.do_send(crate::cops::driver::SendDecision {
            client_type,
            handle,
            decisions: vec![decision],
        });
        let name = service.service.clone();
        let policy_name = service.policy_name.clone();
        let r = self.record_mut();
        let state = if install {
            let mut s = service;
            s.state = ServiceState::Installing;
            match r.services.iter_mut().find(|x| x.service == name) {
                Some(existing) => *existing = s,
                None => r.services.push(s),
            }
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
        self.event(kind, &name, "DEC sent to the PEP");
        Ok(ChangeOutcome {
            session_id: self.record.session_id.clone(),
            service: name,
            policy_name,
            success: true,
            result_code: 0,
            state,
            message: "DEC sent; the PEP's report confirms it".into(),
            attempts: 1,
        })
    }

    /// Usage records from an accounting RPT: each RFC 3483 usage instance names the policy
    /// instance it monitors (its id is the service's [`crate::cops::policy_id`]).
    fn cops_usage(&self, named: &bytes::Bytes, kind: UsageKind) -> Vec<UsageRecord> {
        use sae_cops::usage::{TrafficUsage, UsageClass};
        let report = match sae_cops::pr::decode_accounting_report(named) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(session = %self.record.session_id, error = %e, "unreadable accounting report");
                return Vec::new();
            }
        };
        let time_ms = crate::model::now_ms();
        report
            .0
            .iter()
            .filter_map(|pri| TrafficUsage::from_instance(pri).ok())
            .map(|u| {
                let id = u.selected.instance_id();
                let policy_name = self
                    .record
                    .services
                    .iter()
                    .find(|s| crate::cops::policy_id(&s.service) == id)
                    .map(|s| s.policy_name.clone())
                    .unwrap_or_else(|| u.selected.to_string());
                UsageRecord {
                    id: 0,
                    session_id: self.record.session_id.clone(),
                    user_name: self.record.user_name.clone(),
                    router: self.record.router.clone(),
                    policy_name,
                    kind,
                    record_number: u.id,
                    input_octets: u.octets,
                    output_octets: 0,
                    input_packets: u.packets,
                    output_packets: 0,
                    time_ms,
                }
            })
            .collect()
    }
}
