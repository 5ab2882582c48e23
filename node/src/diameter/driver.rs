//! The RouterDriver actor: one per router connection. It owns the socket and the sans-IO
//! [`Peer`] state machine, turns the router's requests into session events (new logins through
//! [`Sae::login`], the rest to the session's actor), sends the SAE's own requests and matches
//! their answers, and keeps the router registry up to date. Its first request on every new
//! connection is SRQ: the router replays its sessions and the node rebuilds or ends its own.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::io::{WriteHandler, Writer};
use actix::prelude::*;
use sae_diameter::codes::{DisconnectCause, command, result};
use sae_diameter::jsrc::{RequestType, SubscriberMessage};
use sae_diameter::peer::{PeerFilter, RequestFailure, RequestId};
use sae_diameter::tokio::DiameterCodec;
use sae_diameter::watchdog::WatchdogState;
use sae_diameter::{CloseReason, CodecError, Event, Frame, Message, Peer, PeerConfig, PeerInfo};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{oneshot, watch};
use tokio_stream::wrappers::WatchStream;
use tokio_util::codec::FramedRead;

use super::messages;
use super::routers::PeerStatus;
use super::shared::Diameter;
use crate::cluster::RouterView;
use crate::config::DuplicatePeer;
use crate::events::{EventKind, SessionEvent};
use crate::model::{SubscriberRecord, UsageKind};
use crate::subscriber::link::SendError;
use crate::subscriber::session::{Report, RouterReport};
use crate::timer::{DeadlineTimer, now};

/// What every driver of a listener shares.
pub struct DriverShared {
    pub peer_config: Arc<PeerConfig>,
    pub duplicate_peer: DuplicatePeer,
    pub diameter: Arc<Diameter>,
}

/// Send a request to the router; the answer (or why there is none) is the result.
#[derive(Message)]
#[rtype(result = "Result<Message, RequestFailure>")]
pub struct SendRequest {
    pub request: Message,
    pub timeout: Option<Duration>,
}

/// Send DPR with this cause and close on DPA.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Disconnect(pub DisconnectCause);

/// Another connection of the same router took over: close now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Replace;

/// Send SRQ now; the result is the SRR's Result-Code.
#[derive(Message)]
#[rtype(result = "Result<u32, SendError>")]
pub struct Resync;

/// Which answer a session's reply becomes.
#[derive(Debug, Clone, Copy)]
enum ReportKind {
    /// AAA with the session's services.
    Relogin,
    /// ACA.
    Accounting,
    /// A plain success answer.
    Other,
}

impl ReportKind {
    fn of(report: &RouterReport) -> ReportKind {
        match report {
            RouterReport::Relogin => ReportKind::Relogin,
            RouterReport::Usage(_) => ReportKind::Accounting,
            _ => ReportKind::Other,
        }
    }
}

/// Router requests held at most this long while the cluster decides who serves the router.
const HOLD_FOR: Duration = Duration::from_secs(4);
/// Router requests held at most (beyond: 3004 DIAMETER_TOO_BUSY).
const MAX_HELD: usize = 8192;

/// Back-off of an unanswered SRQ: the second attempt goes 1 s after the first timed out,
/// each further one waits twice as long, at most [`SRQ_RETRY_MAX`].
const SRQ_RETRY_FIRST: Duration = Duration::from_secs(1);
const SRQ_RETRY_MAX: Duration = Duration::from_secs(30);

/// The wait before SRQ attempt `attempt` (2 for the first retry).
fn srq_retry_delay(attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(2).min(16);
    SRQ_RETRY_FIRST
        .saturating_mul(1 << doublings)
        .min(SRQ_RETRY_MAX)
}

/// One resynchronization of the router: which one (a new one starts with every epoch and
/// every operator request) and how many SRQs it has sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ResyncAttempt {
    generation: u64,
    attempt: u32,
}

struct Waiting {
    reply: Option<oneshot::Sender<Result<Message, RequestFailure>>>,
    command: u32,
    sent: Instant,
}

/// The actor.
pub struct RouterDriver {
    shared: Arc<DriverShared>,
    connection: u64,
    remote: SocketAddr,
    peer: Peer,
    writer: Writer<OwnedWriteHalf, io::Error>,
    timer: DeadlineTimer,
    waiting: HashMap<RequestId, Waiting>,
    /// Lower-cased Origin-Host once the connection is open.
    router: Option<String>,
    router_realm: String,
    applications: Vec<u32>,
    span: tracing::Span,
    closed: bool,
    /// The router as the cluster sees it.
    view: RouterView,
    /// The epoch this driver serves the router in (it sent SRQ in it).
    serving: Option<u64>,
    /// The router's view as the cluster publishes it, read before every message sent.
    view_rx: Option<watch::Receiver<RouterView>>,
    /// The resynchronization in progress: SRQ sent (or to be sent again), no final SRR yet.
    resync: Option<ResyncAttempt>,
    /// The epoch's SRQ could not go out or was failed over (the watchdog was not OKAY): it
    /// goes again when the watchdog is back to OKAY.
    resync_owed: bool,
    /// Router requests waiting for the cluster to decide who serves the router.
    held: VecDeque<(Message, Instant)>,
}

impl RouterDriver {
    /// Starts a driver for an accepted connection on the current arbiter.
    pub fn start_for(
        shared: Arc<DriverShared>,
        stream: TcpStream,
        remote: SocketAddr,
        connection: u64,
    ) -> Addr<RouterDriver> {
        let _ = stream.set_nodelay(true);
        RouterDriver::create(move |ctx| {
            let (read, write) = stream.into_split();
            let seed = rand::random::<u64>() ^ connection;
            let peer = Peer::new(shared.peer_config.clone(), seed, false);
            ctx.add_stream(FramedRead::new(read, DiameterCodec::new(peer.limits())));
            let writer = Writer::new(write, ctx);
            RouterDriver {
                span: tracing::info_span!("diameter_peer", %remote, connection),
                shared,
                connection,
                remote,
                peer,
                writer,
                timer: DeadlineTimer::default(),
                waiting: HashMap::new(),
                router: None,
                router_realm: String::new(),
                applications: Vec::new(),
                closed: false,
                view: RouterView::default(),
                serving: None,
                view_rx: None,
                resync: None,
                resync_owed: false,
                held: VecDeque::new(),
            }
        })
    }

    fn side(&self) -> &Arc<Diameter> {
        &self.shared.diameter
    }

    fn name(&self, code: u32, request: bool) -> String {
        self.shared
            .peer_config
            .dictionary
            .message_name(code, request)
    }

    /// Runs the state machine's output: events, bytes, the next timer.
    fn step(&mut self, ctx: &mut Context<Self>) {
        let _enter = self.span.clone().entered();
        while let Some(event) = self.peer.poll_event() {
            self.on_event(event, ctx);
        }
        while let Some(bytes) = self.peer.poll_transmit() {
            self.writer.write(&bytes);
        }
        if self.closed {
            return;
        }
        let deadline = self.peer.poll_timeout();
        self.timer.arm(
            ctx,
            deadline,
            |act: &mut Self| &mut act.timer,
            |act, ctx| {
                act.peer.handle_timeout(now());
                act.step(ctx);
            },
        );
    }

    fn on_event(&mut self, event: Event, ctx: &mut Context<Self>) {
        let now = now();
        match event {
            Event::CapabilitiesReceived(info) => match self.check_capabilities(&info) {
                Ok(()) => self.peer.accept(now),
                Err((code, message)) => self.peer.reject(now, code, &message),
            },
            Event::Up(info) => self.on_up(&info, ctx),
            Event::Request(request) => self.on_request(request, ctx),
            Event::Answer { id, answer } => {
                if let Some(mut w) = self.waiting.remove(&id) {
                    let name = self.name(w.command, false);
                    self.side()
                        .engine
                        .metrics
                        .message("in", &name, answer.result_code());
                    self.side()
                        .engine
                        .metrics
                        .round_trip(&self.name(w.command, true), w.sent.elapsed());
                    if let Some(reply) = w.reply.take() {
                        let _ = reply.send(Ok(answer));
                    }
                }
                self.publish_pending();
            }
            Event::RequestFailed { id, reason } => {
                if let Some(mut w) = self.waiting.remove(&id)
                    && let Some(reply) = w.reply.take()
                {
                    let _ = reply.send(Err(reason));
                }
                self.publish_pending();
            }
            Event::Watchdog(state) => {
                tracing::info!(state = state.name(), "watchdog");
                if let Some(host) = &self.router {
                    self.side()
                        .routers()
                        .update(host, self.connection, |s| s.watchdog = state);
                }
                if state == WatchdogState::Okay && self.resync_owed && self.acting() {
                    self.resync_owed = false;
                    self.send_srq(ctx, None);
                }
            }
            Event::Closed(reason) => self.on_closed(&reason, ctx),
        }
    }

    fn check_capabilities(&self, info: &PeerInfo) -> Result<(), (u32, String)> {
        let host = info.capabilities.origin_host.to_ascii_lowercase();
        if self.shared.peer_config.allowed_peers == PeerFilter::Any {
            tracing::warn!(peer = %info.capabilities.origin_host, "accepting a peer with no allow-list configured");
        }
        if let Some((_, existing)) = self.side().routers().get(&host) {
            match self.shared.duplicate_peer {
                DuplicatePeer::Reject => {
                    return Err((
                        result::ELECTION_LOST,
                        format!(
                            "{} already has an open connection",
                            info.capabilities.origin_host
                        ),
                    ));
                }
                DuplicatePeer::Replace => {
                    tracing::info!(peer = %host, "new connection replaces the open one");
                    existing.do_send(Replace);
                }
            }
        }
        Ok(())
    }

    fn on_up(&mut self, info: &PeerInfo, ctx: &mut Context<Self>) {
        let caps = &info.capabilities;
        let host = caps.origin_host.to_ascii_lowercase();
        tracing::info!(peer = %caps.origin_host, realm = %caps.origin_realm, product = %caps.product_name, applications = ?info.applications, "peer open");
        self.applications = info.applications.iter().copied().collect();
        self.router_realm = caps.origin_realm.clone();
        let status = PeerStatus {
            origin_host: caps.origin_host.clone(),
            origin_realm: caps.origin_realm.clone(),
            remote: self.remote,
            product_name: caps.product_name.clone(),
            applications: self.applications.clone(),
            watchdog: WatchdogState::Okay,
            last_origin_host: None,
            pending_requests: 0,
        };
        let side = self.side().clone();
        side.routers()
            .insert(self.connection, ctx.address(), status);
        side.engine
            .metrics
            .diameter_peers
            .set(side.routers().len() as i64);
        self.router = Some(host.clone());
        side.engine.events.publish(SessionEvent::router(
            EventKind::RouterUp,
            &host,
            format!("connected from {}", self.remote),
        ));
        // Serve the router once the cluster says this node owns it; the first message to it
        // is then SRQ.
        let view_rx = side.ownership().watch(&host);
        self.view_rx = Some(view_rx.clone());
        ctx.add_stream(WatchStream::new(view_rx));
        side.router_presence_changed();
    }

    /// Whether this driver may act on the router now (owner, epoch, lease).
    fn acting(&self) -> bool {
        match (self.serving, &self.view_rx) {
            (Some(epoch), Some(rx)) => {
                rx.borrow().serving_at(crate::model::now_ms()) == Some(epoch)
            }
            _ => false,
        }
    }

    /// The cluster's view of the router changed.
    fn on_view(&mut self, view: RouterView, ctx: &mut Context<Self>) {
        let _enter = self.span.clone().entered();
        self.view = view;
        let Some(router) = self.router.clone() else {
            return;
        };
        match self.view.serving_at(crate::model::now_ms()) {
            Some(epoch) => {
                if self.serving != Some(epoch) {
                    tracing::info!(%router, epoch, "serving the router");
                    self.serving = Some(epoch);
                    // The SAE's first message to a router it becomes active for is SRQ.
                    self.send_resync(ctx, None);
                    self.release_held(ctx);
                }
            }
            None => {
                if let Some(epoch) = self.serving.take() {
                    if self.view.mine {
                        tracing::warn!(%router, epoch, "lease lapsed: not acting on the router");
                    } else {
                        // Its sessions here end as the cluster publishes the move
                        // (`Sae::hand_over`).
                        tracing::info!(%router, epoch, owner = ?self.view.owner, "router handed over");
                    }
                }
                if self.owner_elsewhere().is_some() {
                    self.release_held(ctx);
                }
            }
        }
    }

    /// The DiameterURI of the node that serves the router, when another live node does.
    fn owner_elsewhere(&self) -> Option<String> {
        let v = &self.view;
        if !v.owned_elsewhere_at(crate::model::now_ms()) {
            return None;
        }
        let host = v.owner_origin_host.as_deref().filter(|h| !h.is_empty())?;
        let port = v
            .owner_diameter
            .as_deref()
            .and_then(|a| a.rsplit_once(':'))
            .map(|(_, p)| p)
            .unwrap_or("3868");
        Some(format!("aaa://{host}:{port}"))
    }

    /// Handles the held requests again (the cluster decided).
    fn release_held(&mut self, ctx: &mut Context<Self>) {
        let held: Vec<_> = self.held.drain(..).collect();
        for (request, started) in held {
            self.handle_request(request, started, ctx);
        }
    }

    /// Answers 3004 to requests held too long.
    fn expire_held(&mut self, ctx: &mut Context<Self>) {
        while let Some((_, started)) = self.held.front() {
            if started.elapsed() < HOLD_FOR {
                break;
            }
            let (request, started) = self.held.pop_front().expect("front exists");
            let answer = messages::refusal(
                &request,
                self.side().local(),
                result::TOO_BUSY,
                "no SAE of the cluster serves this router yet",
            );
            self.send_answer(answer, started, ctx);
        }
        if let Some((_, started)) = self.held.front() {
            let left = HOLD_FOR.saturating_sub(started.elapsed());
            ctx.run_later(left, |act, ctx| act.expire_held(ctx));
        }
    }

    /// Starts the resynchronization of the router: marks its sessions as waiting for replay
    /// and sends SRQ, again after each timeout (with back-off) until the router answers, the
    /// connection closes or the epoch ends.
    fn send_resync(
        &mut self,
        ctx: &mut Context<Self>,
        reply: Option<oneshot::Sender<Result<u32, SendError>>>,
    ) {
        let Some(router) = self.router.clone() else {
            if let Some(r) = reply {
                let _ = r.send(Err(SendError::NotConnected(String::new())));
            }
            return;
        };
        if !self.acting() {
            if let Some(r) = reply {
                let _ = r.send(Err(SendError::NotServed(router)));
            }
            return;
        }
        self.resync = Some(ResyncAttempt {
            generation: self.resync.map_or(1, |r| r.generation + 1),
            attempt: 1,
        });
        self.resync_owed = false;
        self.side().engine.start_resync(&router);
        self.send_srq(ctx, reply);
    }

    /// Sends the SRQ of the resynchronization in progress (`self.resync`).
    fn send_srq(
        &mut self,
        ctx: &mut Context<Self>,
        reply: Option<oneshot::Sender<Result<u32, SendError>>>,
    ) {
        let (Some(router), Some(resync)) = (self.router.clone(), self.resync) else {
            return;
        };
        if !self.acting() {
            if let Some(r) = reply {
                let _ = r.send(Err(SendError::NotServed(router)));
            }
            return;
        }
        let side = self.side().clone();
        let app = messages::preferred_application(&self.applications);
        let srq = messages::session_resync_with(
            side.local(),
            side.codes(),
            &router,
            &self.router_realm,
            app,
        );
        let rx = self.send_request(srq, Some(side.engine.settings.request_timeout));
        let r2 = router.clone();
        ctx.spawn(
            async move { rx.await.unwrap_or(Err(RequestFailure::ConnectionClosed)) }
                .into_actor(self)
                .map(move |outcome, act, ctx| {
                    let current = act.resync == Some(resync);
                    let res = match outcome {
                        Ok(answer) => {
                            let code = answer.result_code().unwrap_or(0);
                            tracing::info!(router = %r2, code, attempt = resync.attempt, "SRR");
                            if current && result::is_protocol_error(code) {
                                // 3002, 3004, …: the router (or an agent) says "not now".
                                act.retry_srq(ctx, &format!("answered {code}"));
                            } else if current {
                                act.resync = None;
                                if code == result::SUCCESS {
                                    // The router now remembers this node as its
                                    // Juniper-Last-Origin-Host; so does the cluster.
                                    act.side().record_last_origin_host(&r2);
                                }
                                // The window for the sessions it does not replay starts now.
                                act.side().engine.resync_answered(&r2);
                            }
                            Ok(code)
                        }
                        Err(e) => {
                            tracing::warn!(router = %r2, reason = ?e, attempt = resync.attempt, "SRQ not answered");
                            if current {
                                match &e {
                                    RequestFailure::NotSent(_) | RequestFailure::Failover => {
                                        // Again when the watchdog is back to OKAY.
                                        act.resync_owed = true;
                                    }
                                    RequestFailure::Timeout => act.retry_srq(ctx, "timed out"),
                                    RequestFailure::InvalidAnswer(_) => {
                                        act.retry_srq(ctx, "answered with an invalid SRR");
                                    }
                                    RequestFailure::ConnectionClosed => act.resync = None,
                                }
                            }
                            Err(SendError::Failed {
                                router: r2.clone(),
                                reason: format!("{e:?}"),
                            })
                        }
                    };
                    if let Some(r) = reply {
                        let _ = r.send(res);
                    }
                }),
        );
    }

    /// Sends the SRQ in progress again after its back-off, if the resynchronization is still
    /// the current one by then ([`Self::send_srq`] checks that the driver still acts).
    fn retry_srq(&mut self, ctx: &mut Context<Self>, why: &str) {
        let (Some(router), Some(resync)) = (self.router.clone(), self.resync) else {
            return;
        };
        let next = ResyncAttempt {
            attempt: resync.attempt + 1,
            ..resync
        };
        let delay = srq_retry_delay(next.attempt);
        self.resync = Some(next);
        tracing::warn!(%router, attempt = next.attempt, delay_ms = delay.as_millis() as u64, "SRQ {why}: sending it again");
        self.side().resync_retry(&router, next.attempt, delay, why);
        ctx.run_later(delay, move |act, ctx| {
            if act.resync == Some(next) {
                act.send_srq(ctx, None);
                act.step(ctx);
            }
        });
    }

    fn send_request(
        &mut self,
        request: Message,
        timeout: Option<Duration>,
    ) -> oneshot::Receiver<Result<Message, RequestFailure>> {
        let (tx, rx) = oneshot::channel();
        let now = now();
        let cmd = request.header.command_code;
        let sent = match timeout {
            Some(t) => self.peer.send_request_with_timeout(now, request, t),
            None => self.peer.send_request(now, request),
        };
        match sent {
            Ok(id) => {
                self.side()
                    .engine
                    .metrics
                    .message("out", &self.name(cmd, true), None);
                self.waiting.insert(
                    id,
                    Waiting {
                        reply: Some(tx),
                        command: cmd,
                        sent: now,
                    },
                );
                self.publish_pending();
            }
            Err(e) => {
                let _ = tx.send(Err(RequestFailure::NotSent(e.to_string())));
            }
        }
        rx
    }

    fn publish_pending(&self) {
        if let Some(router) = &self.router {
            let n = self.waiting.len();
            self.side().pending_requests(router, n);
            self.side()
                .routers()
                .update(router, self.connection, |s| s.pending_requests = n);
        }
    }

    fn send_answer(&mut self, answer: Message, started: Instant, ctx: &mut Context<Self>) {
        // Kept for a re-sent duplicate of the request, unless it says "try again" (3xxx:
        // redirect, too busy, protocol errors), when a re-sent request deserves a new look.
        if let (Some(router), Some(code)) = (&self.router, answer.result_code())
            && !result::is_protocol_error(code)
        {
            let end_to_end = answer.header.end_to_end;
            self.side()
                .answers
                .lock()
                .expect("answer cache lock")
                .record(now(), router, end_to_end, &answer);
        }
        let name = self.name(answer.header.command_code, false);
        let req_name = self.name(answer.header.command_code, true);
        self.side()
            .engine
            .metrics
            .message("out", &name, answer.result_code());
        self.side()
            .engine
            .metrics
            .answered(&req_name, started.elapsed());
        if let Err(e) = self.peer.send_answer(answer) {
            tracing::warn!(error = %e, "answer not sent");
        }
        self.step(ctx);
    }

    fn on_request(&mut self, request: Message, ctx: &mut Context<Self>) {
        let started = now();
        let cmd = request.header.command_code;
        self.side()
            .engine
            .metrics
            .message("in", &self.name(cmd, true), None);
        if request.header.flags.is_retransmit()
            && let Some(router) = &self.router
        {
            let again = self
                .side()
                .answers
                .lock()
                .expect("answer cache lock")
                .duplicate_answer(started, router, &request);
            if let Some(answer) = again {
                // RFC 6733 section 6.1.2: a duplicate gets the original's answer.
                tracing::info!(
                    command = %self.name(cmd, true),
                    end_to_end = request.header.end_to_end,
                    "re-sent request answered as before"
                );
                return self.send_answer(answer, started, ctx);
            }
        }
        self.handle_request(request, started, ctx);
    }

    fn handle_request(&mut self, request: Message, started: Instant, ctx: &mut Context<Self>) {
        let side = self.side().clone();
        let cmd = request.header.command_code;
        let Some(router) = self.router.clone() else {
            return;
        };
        if !self.acting() {
            // Another node serves the router: redirect. Nobody yet (or this node, not yet
            // live): hold the request until the cluster decides.
            let answer = if let Some(uri) = self.owner_elsewhere() {
                messages::redirect(&request, side.local(), &uri)
            } else if self.held.len() < MAX_HELD {
                if self.held.is_empty() {
                    ctx.run_later(HOLD_FOR, |act, ctx| act.expire_held(ctx));
                }
                self.held.push_back((request, started));
                return;
            } else {
                messages::refusal(
                    &request,
                    side.local(),
                    result::TOO_BUSY,
                    "no SAE of the cluster serves this router yet",
                )
            };
            self.send_answer(answer, started, ctx);
            return;
        }
        if let Some(last) = request.last_origin_host_with(side.codes()) {
            let last = last.to_owned();
            side.routers().update(&router, self.connection, |s| {
                s.last_origin_host = Some(last)
            });
        }
        let local = side.local();
        let session = request
            .session_id()
            .and_then(|id| side.engine.sessions.get(id));
        let immediate = match (cmd, session) {
            (command::AA | command::ACCOUNTING | command::SESSION_TERMINATION, Some(entry)) => {
                let report = match self.report(&request, &entry.record) {
                    Ok(report) => report,
                    Err(refusal) => return self.send_answer(refusal, started, ctx),
                };
                let kind = ReportKind::of(&report);
                // The session's actor takes it in; the answer follows.
                ctx.spawn(entry.addr.send(Report(report)).into_actor(self).map(
                    move |services, act, ctx| {
                        let side = act.side().clone();
                        let local = side.local();
                        let answer = match services {
                            Err(_) => messages::refusal(
                                &request,
                                local,
                                result::UNKNOWN_SESSION_ID,
                                "the session has ended",
                            ),
                            Ok(services) => match kind {
                                ReportKind::Relogin => {
                                    messages::login_answer(&request, local, side.codes(), &services)
                                }
                                ReportKind::Accounting => {
                                    messages::accounting_answer(&request, local, result::SUCCESS)
                                }
                                ReportKind::Other => {
                                    messages::answer(&request, local, result::SUCCESS)
                                }
                            },
                        };
                        act.send_answer(answer, started, ctx);
                    },
                ));
                return;
            }
            (command::AA, None) => match request.request_type_with(side.codes()) {
                Some(RequestType::Provisioning) => messages::refusal(
                    &request,
                    local,
                    result::UNKNOWN_SESSION_ID,
                    "confirmation for a session this SAE does not hold",
                ),
                Some(RequestType::FamilyDeactivation) => messages::refusal(
                    &request,
                    local,
                    result::UNKNOWN_SESSION_ID,
                    "address family of a session this SAE does not hold",
                ),
                _ => side.login(&request, &router, &self.router_realm),
            },
            (command::ACCOUNTING, None) => {
                let mut a =
                    messages::accounting_answer(&request, local, result::UNKNOWN_SESSION_ID);
                a.push(sae_diameter::jsrc::error_message("unknown Session-Id"));
                a
            }
            (command::SESSION_TERMINATION, None) => messages::refusal(
                &request,
                local,
                result::UNKNOWN_SESSION_ID,
                "unknown Session-Id",
            ),
            (command::SESSION_RESYNC, _) => {
                // The router asks for resynchronization: it replays its sessions next.
                tracing::info!(%router, "router asked for resynchronization");
                side.engine.start_resync(&router);
                // Answered at once: the window starts with the SRR.
                side.engine.resync_answered(&router);
                messages::answer(&request, local, result::SUCCESS)
            }
            _ => messages::refusal(
                &request,
                local,
                result::COMMAND_UNSUPPORTED,
                &format!("{} is not accepted from a router", self.name(cmd, true)),
            ),
        };
        self.send_answer(immediate, started, ctx);
    }

    /// A router's AAR, ACR or STR about a session it holds, in the session's terms; or the
    /// answer refusing it.
    fn report(
        &self,
        request: &Message,
        record: &SubscriberRecord,
    ) -> Result<RouterReport, Message> {
        let side = self.side();
        let link = &side.link;
        let codes = side.codes();
        Ok(match request.header.command_code {
            command::AA => match request.request_type_with(codes) {
                Some(RequestType::Provisioning) => RouterReport::Confirm {
                    detail: "router confirmed the provisioning",
                },
                Some(RequestType::Synchronization) => {
                    let installs = request.policy_installs_with(codes).map_err(|e| {
                        messages::bad_policy_install(request, side.local(), codes, &e)
                    })?;
                    RouterReport::Replay {
                        services: installs
                            .iter()
                            .map(|p| messages::service_from_install(p, &p.policy_name))
                            .collect(),
                        framed_ip: request.framed_ip(),
                    }
                }
                Some(RequestType::FamilyDeactivation) => RouterReport::FamilyDown,
                // The same Session-Id logging in again, or a second address family coming up
                // (Juniper-Request-Type 4): answered with what it has.
                _ => RouterReport::Relogin,
            },
            command::ACCOUNTING => {
                let kind = request
                    .accounting_record_type()
                    .and_then(UsageKind::from_record_type)
                    .unwrap_or(UsageKind::Event);
                let number = request.accounting_record_number().unwrap_or(0);
                RouterReport::Usage(link.usage(request, record, kind, number))
            }
            _ => {
                let cause = request.termination_cause().unwrap_or(0);
                RouterReport::Terminate {
                    usage: link.usage(request, record, UsageKind::Final, 0),
                    detail: format!("router ended the session (Termination-Cause {cause})"),
                }
            }
        })
    }

    fn on_closed(&mut self, reason: &CloseReason, ctx: &mut Context<Self>) {
        tracing::info!(?reason, "connection closed");
        self.closed = true;
        for (_, mut w) in self.waiting.drain() {
            if let Some(reply) = w.reply.take() {
                let _ = reply.send(Err(RequestFailure::ConnectionClosed));
            }
        }
        if let Some(host) = self.router.take() {
            let side = self.side().clone();
            side.pending_requests(&host, 0);
            if side.routers().remove(&host, self.connection) {
                side.engine
                    .metrics
                    .diameter_peers
                    .set(side.routers().len() as i64);
                side.router_presence_changed();
                side.engine.events.publish(SessionEvent::router(
                    EventKind::RouterDown,
                    &host,
                    format!("{reason:?}"),
                ));
            }
        }
        self.timer.cancel(ctx);
        // Flushes what is queued (a CEA refusal, a DPA) and then stops the actor.
        self.writer.close();
    }
}

impl Actor for RouterDriver {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.peer.connected(now());
        self.step(ctx);
    }
}

impl StreamHandler<Result<Frame, CodecError>> for RouterDriver {
    fn handle(&mut self, item: Result<Frame, CodecError>, ctx: &mut Context<Self>) {
        let now = now();
        match item {
            Ok(frame) => self.peer.handle_frame(now, frame),
            Err(CodecError::Framing(e)) => self.peer.handle_framing_error(now, e),
            Err(CodecError::Io(e)) => {
                tracing::debug!(error = %e, "read failed");
                self.peer.transport_closed(now);
            }
        }
        self.step(ctx);
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        self.peer.transport_closed(now());
        self.step(ctx);
        if !self.closed {
            ctx.stop();
        }
    }
}

impl WriteHandler<io::Error> for RouterDriver {
    fn error(&mut self, err: io::Error, ctx: &mut Context<Self>) -> Running {
        tracing::debug!(error = %err, "write failed");
        self.peer.transport_closed(now());
        self.step(ctx);
        Running::Stop
    }
}

impl StreamHandler<RouterView> for RouterDriver {
    fn handle(&mut self, view: RouterView, ctx: &mut Context<Self>) {
        self.on_view(view, ctx);
        self.step(ctx);
    }

    /// The ownership channel closes only when the node stops; the connection goes on.
    fn finished(&mut self, _ctx: &mut Context<Self>) {}
}

impl Handler<SendRequest> for RouterDriver {
    type Result = ResponseFuture<Result<Message, RequestFailure>>;

    fn handle(&mut self, msg: SendRequest, ctx: &mut Context<Self>) -> Self::Result {
        if !self.acting() {
            // The lease ran out or the router moved since the caller looked.
            return Box::pin(async { Err(RequestFailure::ConnectionClosed) });
        }
        let rx = self.send_request(msg.request, msg.timeout);
        self.step(ctx);
        Box::pin(async move { rx.await.unwrap_or(Err(RequestFailure::ConnectionClosed)) })
    }
}

impl Handler<Disconnect> for RouterDriver {
    type Result = ();

    fn handle(&mut self, msg: Disconnect, ctx: &mut Context<Self>) {
        self.peer.disconnect(now(), msg.0);
        self.step(ctx);
    }
}

impl Handler<Replace> for RouterDriver {
    type Result = ();

    fn handle(&mut self, _msg: Replace, ctx: &mut Context<Self>) {
        self.peer.replaced(now());
        self.step(ctx);
    }
}

impl Handler<Resync> for RouterDriver {
    type Result = ResponseFuture<Result<u32, SendError>>;

    fn handle(&mut self, _msg: Resync, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.send_resync(ctx, Some(tx));
        self.step(ctx);
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err(SendError::NotConnected(String::new())))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srq_retries_back_off_up_to_a_ceiling() {
        let delays: Vec<u64> = (2..=9).map(|a| srq_retry_delay(a).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(srq_retry_delay(u32::MAX), SRQ_RETRY_MAX);
    }
}
