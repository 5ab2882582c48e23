//! The CopsDriver actor: one per PEP connection (the node is the PDP and never opens
//! connections). It owns the socket and the sans-IO [`PdpConnection`], validates OPN (client
//! type → profile, PEPID allow-list), and serves each client type by its profile:
//!
//! - provisioning (COPS-PR): a REQ per subscriber interface becomes a subscriber session (the
//!   same model and catalog rules as Diameter logins); the DEC installs the services' policies
//!   as PRID/EPD; RPT success/failure is recorded on the session; accounting RPTs become usage
//!   records; DRQ ends the session;
//! - admission (SBC): a REQ per call is admitted (DEC Install) or denied (DEC Remove) from the
//!   budgets; DRQ releases the call's share.
//!
//! A PEP that reconnects with the same PEPID and client type takes over the request states of
//! its previous connection.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use actix::io::{WriteHandler, Writer};
use actix::prelude::*;
use sae_cops::message::{Decision, Request};
use sae_cops::object::{ClientSi, Command, DecisionFlags, ErrorCode, ErrorObject, Handle};
use sae_cops::pdp::{PdpConfig, PdpConnection, PdpEvent};
use sae_cops::pib::{CallRequest, SubscriberInterface};
use sae_cops::pr::{PrInstance, decode_request_client_si};
use sae_cops::tokio::CopsCodec;
use sae_cops::usage::UsageClass;
use sae_cops::{CodecError, Frame, object::ReportType};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::WatchStream;
use tokio_util::codec::FramedRead;

use super::admission::{CallAsk, Verdict};
use super::decisions::{failure_detail, install_decision, usage_records};
use super::{CopsShared, CopsStatus, session_id_for};
use crate::cluster::RouterView;
use crate::config::CopsProfile;
use crate::events::{EventKind, SessionEvent};
use crate::model::{
    Attachment, LoginType, ServiceState, SessionState, SubscriberAttributes, SubscriberRecord,
    UsageKind, now_ms,
};
use crate::subscriber::session::{EndSession, Report, RouterReport};
use crate::timer::{DeadlineTimer, now};

/// Close now: another connection of the same PEP and client type took over.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Replace {
    pub client_type: u16,
}

/// Send a decision for one of this connection's handles (usage feedback control).
#[derive(Message)]
#[rtype(result = "bool")]
pub struct SendDecision {
    pub client_type: u16,
    pub handle: Handle,
    pub decisions: Vec<Decision>,
}

/// Close the connection (shutdown): CC with Error 11.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// An OPN waits at most this long for the cluster to decide who serves the PEP.
const HOLD_FOR: std::time::Duration = std::time::Duration::from_secs(4);

/// The key of a PEP in the cluster's router table.
pub fn ownership_key(pepid: &str) -> String {
    crate::cluster::OwnedKey::pep(pepid).to_string()
}

/// The cluster's view of a PEP changed.
struct PepView {
    pepid: String,
    view: RouterView,
}

impl Message for PepView {
    type Result = ();
}

/// Where the cluster says a PEP belongs.
enum Placement {
    /// This node, in this epoch.
    Here(u64),
    /// Another live node, at this COPS address (`host:port`; resolved only when a client is
    /// redirected, so that a view change never waits on a name lookup).
    Elsewhere(String),
    /// Not decided yet (or this node's lease lapsed).
    Undecided,
}

fn placement(view: &RouterView) -> Placement {
    let now = now_ms();
    if let Some(epoch) = view.serving_at(now) {
        return Placement::Here(epoch);
    }
    match &view.owner_cops {
        Some(addr) if view.owned_elsewhere_at(now) => Placement::Elsewhere(addr.clone()),
        _ => Placement::Undecided,
    }
}

fn resolve(addr: &str) -> Option<SocketAddr> {
    use std::net::ToSocketAddrs as _;
    addr.parse()
        .ok()
        .or_else(|| addr.to_socket_addrs().ok()?.next())
}

/// The actor.
pub struct CopsDriver {
    shared: Arc<CopsShared>,
    connection: u64,
    remote: SocketAddr,
    pdp: PdpConnection,
    writer: Writer<OwnedWriteHalf, io::Error>,
    timer: DeadlineTimer,
    /// Accepted client types and their PEPID.
    clients: Vec<(u16, String)>,
    /// OPNs waiting for the cluster: client type, PEPID, when.
    pending: Vec<(u16, String, std::time::Instant)>,
    /// PEPIDs whose ownership this driver watches, with the view as the cluster publishes it
    /// (read before every decision sent).
    watched: HashMap<String, tokio::sync::watch::Receiver<RouterView>>,
    /// PEPIDs this driver serves, with the epoch.
    serving: HashMap<String, u64>,
    span: tracing::Span,
    closed: bool,
}

impl CopsDriver {
    /// Starts a driver for an accepted connection on the current arbiter.
    pub fn start_for(
        shared: Arc<CopsShared>,
        pdp_config: Arc<PdpConfig>,
        stream: TcpStream,
        remote: SocketAddr,
        connection: u64,
    ) -> Addr<CopsDriver> {
        let _ = stream.set_nodelay(true);
        CopsDriver::create(move |ctx| {
            let (read, write) = stream.into_split();
            let pdp = PdpConnection::new(pdp_config, now(), rand::random::<u64>() ^ connection);
            ctx.add_stream(FramedRead::new(read, CopsCodec::new(pdp.frame_decoder())));
            let writer = Writer::new(write, ctx);
            CopsDriver {
                span: tracing::info_span!("cops_pep", %remote, connection),
                shared,
                connection,
                remote,
                pdp,
                writer,
                timer: DeadlineTimer::default(),
                clients: Vec::new(),
                pending: Vec::new(),
                watched: HashMap::new(),
                serving: HashMap::new(),
                closed: false,
            }
        })
    }

    fn pepid(&self, client_type: u16) -> String {
        self.clients
            .iter()
            .find(|(ct, _)| *ct == client_type)
            .map(|(_, p)| p.clone())
            .unwrap_or_default()
    }

    fn step(&mut self, ctx: &mut Context<Self>) {
        let _enter = self.span.clone().entered();
        while let Some(event) = self.pdp.poll_event() {
            self.on_event(event, ctx);
        }
        while let Some(bytes) = self.pdp.poll_transmit() {
            self.writer.write(&bytes);
        }
        if self.closed {
            return;
        }
        let deadline = self.pdp.poll_timeout();
        self.timer.arm(
            ctx,
            deadline,
            |act: &mut Self| &mut act.timer,
            |act, ctx| {
                act.pdp.handle_timeout(now());
                act.step(ctx);
            },
        );
    }

    fn on_event(&mut self, event: PdpEvent, ctx: &mut Context<Self>) {
        let engine = self.shared.engine.clone();
        match event {
            PdpEvent::Open {
                client_type,
                pep_id,
                ..
            } => self.on_open(client_type, pep_id, ctx),
            PdpEvent::Request {
                client_type,
                handle,
                request,
                update,
            } => {
                let pepid = self.pepid(client_type);
                self.shared.remember(&pepid, client_type, &handle);
                engine.metrics.cops("in", "REQ", "");
                match self.shared.profile(client_type) {
                    Some(CopsProfile::Admission) => {
                        self.admission_request(client_type, &pepid, handle, request)
                    }
                    Some(CopsProfile::Provisioning) => {
                        self.provisioning_request(client_type, &pepid, handle, request, update)
                    }
                    None => {}
                }
            }
            PdpEvent::Report {
                client_type,
                handle,
                report_type,
                client_si,
                solicited,
            } => {
                engine.metrics.cops("in", "RPT", "");
                let pepid = self.pepid(client_type);
                self.on_report(
                    client_type,
                    &pepid,
                    &handle,
                    report_type,
                    client_si,
                    solicited,
                );
            }
            PdpEvent::Delete {
                client_type,
                handle,
                reason,
            } => {
                engine.metrics.cops("in", "DRQ", "");
                let pepid = self.pepid(client_type);
                self.shared.forget(&pepid, client_type, &handle);
                self.on_delete(client_type, &pepid, &handle, &format!("{:?}", reason.code));
            }
            PdpEvent::SyncComplete {
                client_type, stale, ..
            } => {
                let pepid = self.pepid(client_type);
                for h in stale {
                    self.shared.forget(&pepid, client_type, &h);
                    self.on_delete(client_type, &pepid, &h, "not reported after SSQ");
                }
                // The PEP has re-sent all it holds: what the NICs still have of it from an
                // earlier owner is gone.
                if let Some(o) = engine.sessions.observer() {
                    let key = crate::cluster::OwnedKey::pep(&pepid).to_string();
                    o.resync_window(&key, std::time::Duration::ZERO);
                }
            }
            PdpEvent::ClientClosed { client_type, error } => {
                tracing::info!(client_type, ?error, "PEP closed a client type");
                let pepid = self.pepid(client_type);
                self.shared.unregister(&pepid, client_type, self.connection);
                self.clients.retain(|(ct, _)| *ct != client_type);
            }
            PdpEvent::Invalid {
                client_type,
                error,
                detail,
                ..
            } => {
                tracing::warn!(client_type, ?error, %detail, "invalid message from the PEP");
            }
            PdpEvent::Closed(reason) => {
                tracing::info!(?reason, "COPS connection closed");
                self.closed = true;
                for (ct, pepid) in std::mem::take(&mut self.clients) {
                    if self.shared.unregister(&pepid, ct, self.connection) {
                        engine.events.publish(SessionEvent::router(
                            EventKind::RouterDown,
                            &pepid,
                            format!("COPS client type {ct:#06x}: {reason:?}"),
                        ));
                    }
                }
                self.timer.cancel(ctx);
                self.writer.close();
            }
        }
    }

    fn on_open(&mut self, client_type: u16, pep_id: String, ctx: &mut Context<Self>) {
        let now = now();
        let metrics = self.shared.engine.metrics.clone();
        metrics.cops("in", "OPN", "");
        if self.shared.profile(client_type).is_none() {
            metrics.cops("out", "CC", "unsupported-client-type");
            tracing::info!(client_type, %pep_id, "OPN for an unsupported client type");
            let _ = self
                .pdp
                .reject(now, client_type, ErrorCode::UnsupportedClientType, 0);
            return;
        }
        if let Some(allowed) = &self.shared.config.allowed_pepids
            && !allowed.contains(&pep_id)
        {
            tracing::info!(client_type, %pep_id, "OPN from a PEPID not allowed");
            metrics.cops("out", "CC", "pepid-not-allowed");
            let _ = self
                .pdp
                .reject(now, client_type, ErrorCode::AuthenticationFailure, 0);
            return;
        }
        // Only the node the cluster gives the PEP to serves it.
        let key = ownership_key(&pep_id);
        if !self.watched.contains_key(&pep_id) {
            let view_rx = self.shared.ownership.watch(&key);
            self.watched.insert(pep_id.clone(), view_rx.clone());
            let p = pep_id.clone();
            ctx.add_stream(WatchStream::new(view_rx).map(move |view| PepView {
                pepid: p.clone(),
                view,
            }));
            self.shared.cluster.nudge();
        }
        match placement(&self.shared.ownership.view(&key)) {
            Placement::Here(epoch) => {
                self.serving.insert(pep_id.clone(), epoch);
                self.accept(client_type, pep_id, ctx);
            }
            Placement::Elsewhere(address) => self.redirect(client_type, &pep_id, &address),
            Placement::Undecided => {
                if self.pending.is_empty() {
                    ctx.run_later(HOLD_FOR, |act, ctx| {
                        act.expire_pending();
                        act.step(ctx);
                    });
                }
                self.pending
                    .push((client_type, pep_id, std::time::Instant::now()));
            }
        }
    }

    /// CC with PDP-Redirect: another node (COPS at `owner`) serves this PEP. An address that
    /// does not resolve closes the client type without a redirect (the PEP tries its others).
    fn redirect(&mut self, client_type: u16, pep_id: &str, owner: &str) {
        let Some(addr) = resolve(owner) else {
            tracing::warn!(client_type, %pep_id, %owner, "the serving node's address does not resolve");
            self.shared.engine.metrics.cops("out", "CC", "unplaced");
            let _ = self.pdp.close_client_type(
                now(),
                client_type,
                ErrorObject::new(ErrorCode::UnableToProcess),
                None,
            );
            return;
        };
        let address = sae_cops::object::PdpAddress {
            address: addr.ip(),
            port: addr.port(),
        };
        tracing::info!(client_type, %pep_id, to = %address.address, port = address.port, "PEP redirected to its PDP");
        self.shared.engine.metrics.cops("out", "CC", "redirect");
        if let Err(e) = self.pdp.redirect(now(), client_type, address) {
            tracing::debug!(error = %e, "redirect");
        }
    }

    /// Closes OPNs the cluster did not place in time.
    fn expire_pending(&mut self) {
        let now = now();
        let (old, keep): (Vec<_>, Vec<_>) = self
            .pending
            .drain(..)
            .partition(|(_, _, at)| at.elapsed() >= HOLD_FOR);
        self.pending = keep;
        for (client_type, pep_id, _) in old {
            tracing::warn!(client_type, %pep_id, "no node of the cluster serves this PEP yet");
            self.shared.engine.metrics.cops("out", "CC", "unplaced");
            let _ = self.pdp.close_client_type(
                now,
                client_type,
                ErrorObject::new(ErrorCode::UnableToProcess),
                None,
            );
        }
    }

    /// The cluster's view of a PEP changed: serve it, send it elsewhere, or stop.
    fn on_pep_view(&mut self, pepid: String, view: RouterView, ctx: &mut Context<Self>) {
        let _enter = self.span.clone().entered();
        match placement(&view) {
            Placement::Here(epoch) => {
                let was = self.serving.insert(pepid.clone(), epoch);
                if was != Some(epoch) {
                    tracing::info!(%pepid, epoch, "serving the PEP");
                }
                let ready: Vec<_> = self
                    .pending
                    .iter()
                    .filter(|(_, p, _)| *p == pepid)
                    .map(|(ct, p, _)| (*ct, p.clone()))
                    .collect();
                self.pending.retain(|(_, p, _)| *p != pepid);
                for (ct, p) in ready {
                    self.accept(ct, p, ctx);
                }
            }
            placed => {
                let was = self.serving.remove(&pepid);
                let mine: Vec<u16> = self
                    .clients
                    .iter()
                    .filter(|(_, p)| *p == pepid)
                    .map(|(ct, _)| *ct)
                    .chain(
                        self.pending
                            .iter()
                            .filter(|(_, p, _)| *p == pepid)
                            .map(|(ct, _, _)| *ct),
                    )
                    .collect();
                match placed {
                    Placement::Elsewhere(address) => {
                        self.pending.retain(|(_, p, _)| *p != pepid);
                        self.clients.retain(|(_, p)| *p != pepid);
                        for ct in mine {
                            self.redirect(ct, &pepid, &address);
                        }
                        if was.is_some() {
                            tracing::info!(%pepid, owner = ?view.owner, "PEP handed over");
                        }
                    }
                    _ if was.is_some() => {
                        // The lease lapsed: stop serving; the PEP reconnects to a node that can.
                        tracing::warn!(%pepid, "lease lapsed: closing the PEP's client types");
                        self.clients.retain(|(_, p)| *p != pepid);
                        for ct in mine {
                            let _ = self.pdp.close_client_type(
                                now(),
                                ct,
                                ErrorObject::new(ErrorCode::UnableToProcess),
                                None,
                            );
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Accepts a client type (CAT), takes over its state from an earlier connection, and asks
    /// the PEP to synchronize (SSQ).
    fn accept(&mut self, client_type: u16, pep_id: String, ctx: &mut Context<Self>) {
        let now = now();
        let metrics = self.shared.engine.metrics.clone();
        // The same PEP and client type on another connection (failure or HA switch-over): that
        // connection is closed and this one takes its request states over.
        let (previous, handles) = self.shared.take_over(&pep_id, client_type);
        if let Some(old) = &previous {
            old.do_send(Replace { client_type });
        }
        let resumed = !handles.is_empty() || previous.is_some();
        if let Err(e) = self.pdp.accept_with_state(now, client_type, handles) {
            tracing::warn!(error = %e, "accept failed");
            return;
        }
        metrics.cops("out", "CAT", "");
        // Ask the PEP what it holds (RFC 2748 synchronization, as JunosE routers expect after
        // OPN): it re-sends its requests and SSC; request states it does not re-send are ended,
        // and calls or sessions the node lost (a restart) are rebuilt from the re-sent requests.
        if let Err(e) = self.pdp.synchronize(now, client_type, None) {
            tracing::warn!(error = %e, "SSQ not sent");
        }
        self.clients.push((client_type, pep_id.clone()));
        let status = CopsStatus {
            pepid: pep_id.clone(),
            client_type,
            profile: self
                .shared
                .profile(client_type)
                .unwrap_or(CopsProfile::Admission),
            remote: self.remote,
            keepalive_secs: self.shared.config.keepalive_secs,
            accounting_timer_secs: self.shared.config.accounting_timer_secs,
            opened_ms: now_ms(),
            resumed,
        };
        self.shared.register(status, self.connection, ctx.address());
        tracing::info!(client_type, %pep_id, resumed, "PEP open");
        self.shared.engine.events.publish(SessionEvent::router(
            EventKind::RouterUp,
            &pep_id,
            format!("COPS client type {client_type:#06x} from {}", self.remote),
        ));
    }

    fn decide(&mut self, client_type: u16, handle: Handle, decisions: Vec<Decision>) {
        let outcome = match decisions.first().map(|d| d.flags.command) {
            Some(Command::Install) => "install",
            Some(Command::Remove) => "remove",
            _ => "null",
        };
        self.shared.engine.metrics.cops("out", "DEC", outcome);
        if let Err(e) = self
            .pdp
            .send_decisions(now(), client_type, handle, decisions, true)
        {
            tracing::warn!(error = %e, "DEC not sent");
        }
    }

    fn decision_error(&mut self, client_type: u16, handle: Handle, code: ErrorCode, why: &str) {
        tracing::info!(client_type, %why, "request refused with a DEC Error");
        self.shared.engine.metrics.cops("out", "DEC", "error");
        if let Err(e) =
            self.pdp
                .send_decision_error(now(), client_type, handle, ErrorObject::new(code), true)
        {
            tracing::warn!(error = %e, "DEC not sent");
        }
    }

    fn named_instances(request: &Request) -> Result<Vec<PrInstance>, String> {
        let Some(named) = request.client_si.iter().find_map(|c| match c {
            ClientSi::Named(b) => Some(b.clone()),
            ClientSi::Signaled(_) => None,
        }) else {
            return Err("no named ClientSI".into());
        };
        decode_request_client_si(&named)
            .map(|r| r.0)
            .map_err(|e| e.to_string())
    }

    /// The one instance of class `C` in the request's named ClientSI.
    fn instance<C: UsageClass>(request: &Request, missing: &str) -> Result<C, String> {
        let instances = Self::named_instances(request)?;
        match sae_cops::pib::find::<C>(&instances) {
            Some(Ok(c)) => Ok(c),
            Some(Err(e)) => Err(e.to_string()),
            None => Err(missing.to_owned()),
        }
    }

    fn admission_request(
        &mut self,
        client_type: u16,
        pepid: &str,
        handle: Handle,
        request: Request,
    ) {
        let call = match Self::instance::<CallRequest>(&request, "no call instance") {
            Ok(c) => c,
            Err(why) => {
                self.decision_error(
                    client_type,
                    handle,
                    ErrorCode::MandatoryClientSpecificInfoMissing,
                    &why,
                );
                return;
            }
        };
        let ask = CallAsk {
            pepid: pepid.to_owned(),
            client_type,
            handle: handle.0.clone(),
            call_id: call.call_id.clone(),
            realm: call.realm.clone(),
            bandwidth_kbps: call.bandwidth_kbps,
        };
        let verdict = self
            .shared
            .admission
            .lock()
            .expect("admission lock")
            .admit(&ask);
        let (command, detail) = match &verdict {
            Verdict::Admit { key } => (Command::Install, format!("admitted on {key}")),
            Verdict::Deny { reason, .. } => (Command::Remove, format!("denied: {reason}")),
        };
        tracing::info!(call = %call.call_id, %detail, "call admission");
        self.decide(
            client_type,
            handle,
            vec![Decision::new(request.context, DecisionFlags::new(command))],
        );
    }

    fn provisioning_request(
        &mut self,
        client_type: u16,
        pepid: &str,
        handle: Handle,
        request: Request,
        update: bool,
    ) {
        let iface = match Self::instance::<SubscriberInterface>(
            &request,
            "no subscriber interface instance",
        ) {
            Ok(i) => i,
            Err(why) => {
                self.decision_error(
                    client_type,
                    handle,
                    ErrorCode::MandatoryClientSpecificInfoMissing,
                    &why,
                );
                return;
            }
        };
        let engine = self.shared.engine.clone();
        let session_id = session_id_for(pepid, client_type, &handle);
        let router = pepid.to_ascii_lowercase();
        let user_name = (!iface.login_name.is_empty()).then(|| iface.login_name.clone());
        let framed_ip = (iface.address != [0, 0, 0, 0]).then(|| iface.address.into());
        // A REQ for a handle that already has a session (a PEP re-sending its state after a
        // reconnect or an SSQ, or repeating itself) keeps the session and gets its policies.
        if let Some(existing) = engine.sessions.get(&session_id) {
            tracing::debug!(%session_id, update, "request for a known session");
            match install_decision(iface.id, &existing.record.services) {
                Ok(install) => {
                    let mut d =
                        Decision::new(request.context, DecisionFlags::new(Command::Install));
                    d.named = Some(install);
                    self.decide(client_type, handle, vec![d]);
                }
                Err(why) => {
                    self.decision_error(client_type, handle, ErrorCode::UnableToProcess, &why)
                }
            }
            return;
        }
        let mut record = SubscriberRecord {
            session_id,
            router: router.clone(),
            attachment: Attachment::Cops {
                pepid: pepid.to_owned(),
                client_type,
                handle: handle.0.to_vec(),
                interface: iface.id,
            },
            user_name,
            framed_ip,
            nas_port_id: Some(iface.if_name.clone()),
            login_ms: now_ms(),
            confirmed: false,
            state: SessionState::Active,
            services: Vec::new(),
            attributes: SubscriberAttributes {
                login_type: LoginType::of_router_login(false, !iface.login_name.is_empty()),
                interface_name: Some(iface.if_name.clone()),
                port_id: Some(iface.if_name.clone()),
                virtual_router: match iface.virtual_router.as_str() {
                    "" => None,
                    vr if vr.contains('@') => Some(vr.to_owned()),
                    vr => Some(format!("{vr}@{router}")),
                },
                primary_user_name: (!iface.login_name.is_empty()).then(|| iface.login_name.clone()),
                ..SubscriberAttributes::default()
            },
        };
        record.services = match engine.admit(&mut record, ServiceState::Installing, 0) {
            Err(_) => {
                self.decide(
                    client_type,
                    handle,
                    vec![Decision::new(
                        request.context,
                        DecisionFlags::new(Command::Remove),
                    )],
                );
                return;
            }
            Ok(services) => services,
        };
        let install = match install_decision(iface.id, &record.services) {
            Ok(b) => b,
            Err(why) => {
                self.decision_error(client_type, handle, ErrorCode::UnableToProcess, &why);
                return;
            }
        };
        let mut decision = Decision::new(request.context, DecisionFlags::new(Command::Install));
        decision.named = Some(install);
        engine.logged_in(record, self.shared.session_link.clone(), "COPS-PR: ");
        self.decide(client_type, handle, vec![decision]);
    }

    fn on_report(
        &mut self,
        client_type: u16,
        pepid: &str,
        handle: &Handle,
        report_type: ReportType,
        client_si: Option<ClientSi>,
        solicited: bool,
    ) {
        if self.shared.profile(client_type) != Some(CopsProfile::Provisioning) {
            tracing::debug!(client_type, ?report_type, "admission report");
            return;
        }
        let engine = &self.shared.engine;
        let session_id = session_id_for(pepid, client_type, handle);
        let Some(entry) = engine.sessions.get(&session_id) else {
            return;
        };
        let named = client_si.and_then(|c| match c {
            ClientSi::Named(b) => Some(b),
            ClientSi::Signaled(_) => None,
        });
        let report = match report_type {
            ReportType::Success => RouterReport::Confirm {
                detail: "PEP reported the policies installed",
            },
            ReportType::Failure => RouterReport::InstallFailed {
                detail: failure_detail(named.as_ref()),
            },
            ReportType::Accounting => {
                let kind = if solicited {
                    UsageKind::Collected
                } else {
                    UsageKind::Interim
                };
                RouterReport::Usage(
                    named
                        .as_ref()
                        .map(|b| usage_records(b, &entry.record, kind))
                        .unwrap_or_default(),
                )
            }
            ReportType::Other(code) => {
                tracing::info!(%session_id, code, "report of an unknown type");
                return;
            }
        };
        entry.addr.do_send(Report(report));
    }

    fn on_delete(&mut self, client_type: u16, pepid: &str, handle: &Handle, why: &str) {
        match self.shared.profile(client_type) {
            Some(CopsProfile::Admission) => {
                let released = self
                    .shared
                    .admission
                    .lock()
                    .expect("admission lock")
                    .release(pepid, client_type, &handle.0);
                tracing::info!(?released, %why, "call released");
            }
            Some(CopsProfile::Provisioning) => {
                let session_id = session_id_for(pepid, client_type, handle);
                if let Some(entry) = self.shared.engine.sessions.get(&session_id) {
                    entry.addr.do_send(EndSession {
                        detail: format!("DRQ from the PEP ({why})"),
                    });
                }
            }
            None => {}
        }
    }
}

impl Actor for CopsDriver {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.step(ctx);
    }
}

impl StreamHandler<Result<Frame, CodecError>> for CopsDriver {
    fn handle(&mut self, item: Result<Frame, CodecError>, ctx: &mut Context<Self>) {
        let now = now();
        match item {
            Ok(frame) => self.pdp.handle_frame(now, frame),
            Err(CodecError::Framing(e)) => self.pdp.handle_framing_error(now, e),
            Err(CodecError::Io(e)) => {
                tracing::debug!(error = %e, "read failed");
                self.pdp.transport_closed(now);
            }
        }
        self.step(ctx);
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        self.pdp.transport_closed(now());
        self.step(ctx);
        if !self.closed {
            ctx.stop();
        }
    }
}

impl WriteHandler<io::Error> for CopsDriver {
    fn error(&mut self, err: io::Error, ctx: &mut Context<Self>) -> Running {
        tracing::debug!(error = %err, "write failed");
        self.pdp.transport_closed(now());
        self.step(ctx);
        Running::Stop
    }
}

impl Handler<Replace> for CopsDriver {
    type Result = ();

    fn handle(&mut self, msg: Replace, ctx: &mut Context<Self>) {
        // The new connection holds the state now: forget the client type without a CC to
        // the PEP, which has already moved.
        self.clients.retain(|(ct, _)| *ct != msg.client_type);
        if self.clients.is_empty() {
            self.pdp.transport_closed(now());
        }
        self.step(ctx);
    }
}

impl StreamHandler<PepView> for CopsDriver {
    fn handle(&mut self, item: PepView, ctx: &mut Context<Self>) {
        self.on_pep_view(item.pepid, item.view, ctx);
        self.step(ctx);
    }

    /// The ownership channel closes only when the node stops; the connection goes on.
    fn finished(&mut self, _ctx: &mut Context<Self>) {}
}

impl Handler<SendDecision> for CopsDriver {
    type Result = bool;

    fn handle(&mut self, msg: SendDecision, ctx: &mut Context<Self>) -> bool {
        let served = self
            .clients
            .iter()
            .find(|(ct, _)| *ct == msg.client_type)
            .and_then(|(_, p)| Some((self.watched.get(p)?, *self.serving.get(p)?)))
            .is_some_and(|(rx, epoch)| {
                rx.borrow().serving_at(crate::model::now_ms()) == Some(epoch)
            });
        if !served {
            return false;
        }
        let ok = self
            .pdp
            .send_decisions(now(), msg.client_type, msg.handle, msg.decisions, false)
            .is_ok();
        self.step(ctx);
        ok
    }
}

impl Handler<Shutdown> for CopsDriver {
    type Result = ();

    fn handle(&mut self, _msg: Shutdown, ctx: &mut Context<Self>) {
        self.pdp.close(now(), ErrorCode::ShuttingDown);
        self.step(ctx);
    }
}

/// Handles known for a PEP, for [`PdpConnection::accept_with_state`].
pub type Handles = HashSet<Handle>;
