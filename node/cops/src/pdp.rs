//! The PDP end of one COPS connection (RFC 2748), sans-IO.
//!
//! The SAE never opens COPS connections: the PEP connects, sends OPN per client type, and the
//! owner decides with [`PdpConnection::accept`], [`PdpConnection::reject`] or
//! [`PdpConnection::redirect`]. The driver feeds decoded frames ([`PdpConnection::handle_frame`],
//! built with [`PdpConnection::frame_decoder`] so integrity is checked), timeouts and the
//! transport closing, all with a `now`; it takes encoded messages from
//! [`PdpConnection::poll_transmit`], events from [`PdpConnection::poll_event`] and the next
//! deadline from [`PdpConnection::poll_timeout`].
//!
//! Handled here: OPN wait, CAT with the KA and Accounting timers, KA echo and the KA timeout
//! (CC Error 9), CC both ways, the handles installed per client type (REQ adds, DRQ removes),
//! SSQ/SSC with the handles the PEP did not re-send, and the COPS answer to bad input: DEC
//! with Error for a bad REQ, CC with Error for anything else that cannot be processed.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::error::{DecodeError, Error};
use crate::frame::{Frame, FrameDecoder, FramingError, Limits};
use crate::integrity::{KeyTable, Signer, Verifier};
use crate::message::{
    Body, ClientAccept, ClientClose, ClientOpen, Decision, DecisionContent, DecisionMessage,
    Header, Message, OpCode, Report, Request,
};
use crate::object::{ClientSi, ErrorCode, ErrorObject, Handle, PdpAddress, Reason, ReportType};
use crate::timer::Rng;

/// Integrity (RFC 2748 §4.1, §4.2): the key to sign with and the keys accepted.
#[derive(Debug, Clone)]
pub struct IntegrityConfig {
    keys: KeyTable,
    key_id: u32,
    required: bool,
}

impl IntegrityConfig {
    /// Sign with `key_id` of `keys`; with `required`, messages without Integrity are refused
    /// (Error 15).
    pub fn new(keys: KeyTable, key_id: u32, required: bool) -> Result<Self, Error> {
        if keys.get(key_id).is_none() {
            return Err(Error::UnknownKey(key_id));
        }
        Ok(IntegrityConfig {
            keys,
            key_id,
            required,
        })
    }

    /// A verifier for received messages; it takes the peer's first sequence number as start.
    pub fn verifier(&self) -> Verifier {
        Verifier::new(self.keys.clone(), self.required)
    }

    pub(crate) fn signer(&self, initial_sequence: u32) -> Option<Signer> {
        Signer::new(self.keys.clone(), self.key_id, initial_sequence).ok()
    }
}

/// Configuration shared by all PDP connections.
#[derive(Debug, Clone)]
pub struct PdpConfig {
    /// KA timer granted in CAT, in seconds; 0 = no keep-alive.
    pub ka_timer: u16,
    /// Accounting Timer granted in CAT, in seconds: `None` leaves the object out, `Some(0)`
    /// means no unsolicited accounting reports.
    pub acct_timer: Option<u16>,
    /// How long to wait for the first OPN (and the owner's decision on it).
    pub open_timeout: Duration,
    /// Limits on received messages.
    pub limits: Limits,
    /// Client types open (or awaiting a decision) at once on one connection.
    pub max_client_types: usize,
    /// Request states per client type; a REQ beyond it gets DEC Error 4.
    pub max_handles: usize,
    /// Sign outgoing and check incoming messages.
    pub integrity: Option<IntegrityConfig>,
}

impl Default for PdpConfig {
    /// KA 45 s, no Accounting Timer, 30 s to open, 4 client types, 100 000 handles each.
    fn default() -> Self {
        PdpConfig {
            ka_timer: 45,
            acct_timer: None,
            open_timeout: Duration::from_secs(30),
            limits: Limits::default(),
            max_client_types: 4,
            max_handles: 100_000,
            integrity: None,
        }
    }
}

/// Why the connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// No client type was accepted within the open timeout.
    OpenTimeout,
    /// Nothing from the PEP within the KA timer; CC Error 9 was sent.
    KeepAliveTimeout,
    /// The PEP sent CC for the last client type.
    PeerClosed {
        client_type: u16,
        error: ErrorObject,
    },
    /// We sent CC for the last client type (reject, redirect or close).
    LocalClose {
        error: ErrorObject,
        redirect: Option<PdpAddress>,
    },
    /// The PEP broke the protocol or the byte stream; CC with `error` was sent.
    ProtocolError { error: ErrorObject, detail: String },
    /// The transport closed under us.
    TransportClosed,
}

/// What the connection reports to its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PdpEvent {
    /// An OPN: decide with [`PdpConnection::accept`], [`PdpConnection::reject`] or
    /// [`PdpConnection::redirect`].
    Open {
        client_type: u16,
        pep_id: String,
        last_pdp_addr: Option<PdpAddress>,
        client_si: Option<ClientSi>,
    },
    /// A REQ; `update` says the handle was already installed (new state for it).
    Request {
        client_type: u16,
        handle: Handle,
        request: Request,
        update: bool,
    },
    /// An RPT for an installed handle.
    Report {
        client_type: u16,
        handle: Handle,
        report_type: ReportType,
        client_si: Option<ClientSi>,
        solicited: bool,
    },
    /// A DRQ: the handle is no longer installed.
    Delete {
        client_type: u16,
        handle: Handle,
        reason: Reason,
    },
    /// An SSC. `stale` are the handles covered by our SSQ that the PEP did not re-send (REQ
    /// or RPT) meanwhile; they are no longer installed.
    SyncComplete {
        client_type: u16,
        handle: Option<Handle>,
        stale: Vec<Handle>,
    },
    /// The PEP closed one client type; others stay open.
    ClientClosed {
        client_type: u16,
        error: ErrorObject,
    },
    /// The PEP sent something we could not take. `error` went back in a DEC for a REQ; an
    /// RPT for an unknown handle got DEC Error 2; a DRQ for an unknown handle needs no answer.
    /// Messages that cannot be processed otherwise close the client type (see `Closed`).
    Invalid {
        client_type: u16,
        handle: Option<Handle>,
        error: ErrorObject,
        detail: String,
    },
    /// The connection is over: write out what is queued, then close the transport.
    Closed(CloseReason),
}

/// Misuse of the owner's actions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PdpError {
    #[error("the connection is closed")]
    Closed,
    #[error("client type {0} has no OPN awaiting a decision")]
    NotPending(u16),
    #[error("client type {0} is not open")]
    NotOpen(u16),
    #[error("handle {handle:?} is not installed for client type {client_type}")]
    UnknownHandle { client_type: u16, handle: Handle },
    #[error(transparent)]
    Encode(#[from] Error),
}

/// Connection states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PdpState {
    /// Waiting for the first accepted OPN.
    WaitOpen,
    /// At least one client type accepted.
    Open,
    /// Done.
    Closed,
}

#[derive(Debug)]
struct Sync {
    handle: Option<Handle>,
    seen: HashSet<Handle>,
}

#[derive(Debug)]
struct Client {
    pep_id: String,
    handles: HashSet<Handle>,
    sync: Option<Sync>,
}

#[derive(Debug)]
enum ClientState {
    Pending(ClientOpen),
    Accepted(Client),
}

/// The PDP end of one TCP connection.
#[derive(Debug)]
pub struct PdpConnection {
    config: Arc<PdpConfig>,
    state: PdpState,
    clients: BTreeMap<u16, ClientState>,
    open_deadline: Option<Instant>,
    ka: Option<Duration>,
    ka_deadline: Option<Instant>,
    signer: Option<Signer>,
    transmit: VecDeque<Bytes>,
    events: VecDeque<PdpEvent>,
}

impl PdpConnection {
    /// A connection the PEP has just opened at `now`. `seed` picks the initial Integrity
    /// sequence number.
    pub fn new(config: Arc<PdpConfig>, now: Instant, seed: u64) -> Self {
        let signer = config
            .integrity
            .as_ref()
            .and_then(|i| i.signer(Rng::new(seed).next_u32()));
        let open_deadline = now.checked_add(config.open_timeout);
        PdpConnection {
            config,
            state: PdpState::WaitOpen,
            clients: BTreeMap::new(),
            open_deadline,
            ka: None,
            ka_deadline: None,
            signer,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// A frame decoder with this connection's limits and (if configured) integrity check.
    pub fn frame_decoder(&self) -> FrameDecoder {
        match &self.config.integrity {
            Some(i) => FrameDecoder::with_verifier(self.config.limits, i.verifier()),
            None => FrameDecoder::new(self.config.limits),
        }
    }

    /// Current state.
    pub fn state(&self) -> PdpState {
        self.state
    }

    /// The configuration.
    pub fn config(&self) -> &PdpConfig {
        &self.config
    }

    /// The accepted client types.
    pub fn client_types(&self) -> impl Iterator<Item = u16> + '_ {
        self.clients
            .iter()
            .filter(|(_, c)| matches!(c, ClientState::Accepted(_)))
            .map(|(t, _)| *t)
    }

    /// The PEPID of an accepted client type.
    pub fn pep_id(&self, client_type: u16) -> Option<&str> {
        self.client(client_type).map(|c| c.pep_id.as_str())
    }

    /// The handles installed for an accepted client type.
    pub fn handles(&self, client_type: u16) -> Option<&HashSet<Handle>> {
        self.client(client_type).map(|c| &c.handles)
    }

    /// Is `handle` installed for `client_type`?
    pub fn is_installed(&self, client_type: u16, handle: &Handle) -> bool {
        self.handles(client_type)
            .is_some_and(|h| h.contains(handle))
    }

    /// The KA timer in force (after the first CAT), if any.
    pub fn keepalive(&self) -> Option<Duration> {
        self.ka
    }

    /// Next encoded message to write.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmit.pop_front()
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<PdpEvent> {
        self.events.pop_front()
    }

    /// The earliest deadline; call [`PdpConnection::handle_timeout`] when it passes.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == PdpState::Closed {
            return None;
        }
        [self.open_deadline, self.ka_deadline]
            .into_iter()
            .flatten()
            .min()
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == PdpState::Closed {
            return;
        }
        if self.open_deadline.is_some_and(|d| d <= now) {
            return self.finish(CloseReason::OpenTimeout);
        }
        if self.ka_deadline.is_some_and(|d| d <= now) {
            self.cc_all(ErrorObject::new(ErrorCode::CommunicationFailure));
            self.finish(CloseReason::KeepAliveTimeout);
        }
    }

    /// The transport closed (EOF or error).
    pub fn transport_closed(&mut self, _now: Instant) {
        if self.state != PdpState::Closed {
            self.finish(CloseReason::TransportClosed);
        }
    }

    /// The byte stream cannot be framed any further: CC with the error, then close.
    pub fn handle_framing_error(&mut self, _now: Instant, err: FramingError) {
        if self.state == PdpState::Closed {
            return;
        }
        let ct = err.header.client_type;
        self.fatal_for(ct, err.error.error_object(), err.error.to_string());
    }

    /// A frame arrived. Anything received restarts the KA clock.
    pub fn handle_frame(&mut self, now: Instant, frame: Frame) {
        if self.state == PdpState::Closed {
            return;
        }
        if let Some(ka) = self.ka {
            self.ka_deadline = now.checked_add(ka);
        }
        match frame {
            Frame::Message(msg) => self.handle_message(now, msg),
            Frame::Malformed {
                header,
                handle,
                error,
            } => self.handle_malformed(header, handle, error),
        }
    }

    /// Accepts the OPN of `client_type`: CAT with the configured timers.
    pub fn accept(&mut self, now: Instant, client_type: u16) -> Result<(), PdpError> {
        self.accept_with_state(now, client_type, HashSet::new())
    }

    /// Accepts like [`PdpConnection::accept`], with `handles` already installed: the request
    /// states this PEP had on a previous connection (failure, HA switch-over), so a REQ that
    /// re-sends one is an update and an SSQ covers them.
    pub fn accept_with_state(
        &mut self,
        now: Instant,
        client_type: u16,
        handles: HashSet<Handle>,
    ) -> Result<(), PdpError> {
        let Some(ClientState::Pending(open)) = self.clients.get(&client_type) else {
            return Err(self.not(PdpError::NotPending(client_type)));
        };
        let pep_id = open.pep_id.clone();
        let cat = ClientAccept {
            ka_timer: self.config.ka_timer,
            acct_timer: self.config.acct_timer,
        };
        self.send(Message::new(client_type, Body::ClientAccept(cat)))?;
        self.clients.insert(
            client_type,
            ClientState::Accepted(Client {
                pep_id,
                handles,
                sync: None,
            }),
        );
        if self.state == PdpState::WaitOpen {
            self.state = PdpState::Open;
            self.open_deadline = None;
            self.ka = (cat.ka_timer > 0).then(|| Duration::from_secs(cat.ka_timer.into()));
            self.ka_deadline = self.ka.and_then(|ka| now.checked_add(ka));
        }
        Ok(())
    }

    /// Refuses the OPN of `client_type` with CC carrying `code`/`sub_code` (e.g. 6 Unsupported
    /// client type, 14 for a PEPID not allowed). The connection closes if nothing else is open.
    pub fn reject(
        &mut self,
        _now: Instant,
        client_type: u16,
        code: ErrorCode,
        sub_code: u16,
    ) -> Result<(), PdpError> {
        if !matches!(
            self.clients.get(&client_type),
            Some(ClientState::Pending(_))
        ) {
            return Err(self.not(PdpError::NotPending(client_type)));
        }
        self.close_client(client_type, ErrorObject { code, sub_code }, None);
        Ok(())
    }

    /// Sends the PEP of `client_type` elsewhere: CC with Error 12 and PDP-Redirect.
    pub fn redirect(
        &mut self,
        _now: Instant,
        client_type: u16,
        address: PdpAddress,
    ) -> Result<(), PdpError> {
        if !self.clients.contains_key(&client_type) {
            return Err(self.not(PdpError::NotOpen(client_type)));
        }
        let error = ErrorObject::new(ErrorCode::RedirectToPreferredServer);
        self.close_client(client_type, error, Some(address));
        Ok(())
    }

    /// Closes one client type (pending or accepted) with CC; the connection closes if it was
    /// the last.
    pub fn close_client_type(
        &mut self,
        _now: Instant,
        client_type: u16,
        error: ErrorObject,
        redirect: Option<PdpAddress>,
    ) -> Result<(), PdpError> {
        if !self.clients.contains_key(&client_type) {
            return Err(self.not(PdpError::NotOpen(client_type)));
        }
        self.close_client(client_type, error, redirect);
        Ok(())
    }

    /// Closes the connection: CC with `code` for every client type.
    pub fn close(&mut self, _now: Instant, code: ErrorCode) {
        if self.state == PdpState::Closed {
            return;
        }
        let error = ErrorObject::new(code);
        self.cc_all(error);
        self.finish(CloseReason::LocalClose {
            error,
            redirect: None,
        });
    }

    /// Sends a DEC for an installed handle; `solicited` when it answers a REQ.
    pub fn send_decision(
        &mut self,
        _now: Instant,
        client_type: u16,
        handle: Handle,
        content: DecisionContent,
        solicited: bool,
    ) -> Result<(), PdpError> {
        let client = self.client_checked(client_type)?;
        if !client.handles.contains(&handle) {
            return Err(PdpError::UnknownHandle {
                client_type,
                handle,
            });
        }
        let mut msg = Message::new(
            client_type,
            Body::Decision(DecisionMessage { handle, content }),
        );
        msg.solicited = solicited;
        self.send(msg)?;
        Ok(())
    }

    /// Sends a DEC with these decisions.
    pub fn send_decisions(
        &mut self,
        now: Instant,
        client_type: u16,
        handle: Handle,
        decisions: Vec<Decision>,
        solicited: bool,
    ) -> Result<(), PdpError> {
        let content = DecisionContent::Decisions(decisions);
        self.send_decision(now, client_type, handle, content, solicited)
    }

    /// Sends a DEC with an Error for an installed handle (the request cannot be processed).
    pub fn send_decision_error(
        &mut self,
        now: Instant,
        client_type: u16,
        handle: Handle,
        error: ErrorObject,
        solicited: bool,
    ) -> Result<(), PdpError> {
        let content = DecisionContent::Error(error);
        self.send_decision(now, client_type, handle, content, solicited)
    }

    /// Sends SSQ for one handle or (with `None`) all state of the client type. The
    /// [`PdpEvent::SyncComplete`] that follows lists what the PEP did not re-send.
    pub fn synchronize(
        &mut self,
        _now: Instant,
        client_type: u16,
        handle: Option<Handle>,
    ) -> Result<(), PdpError> {
        self.client_checked(client_type)?;
        let msg = Message::new(client_type, Body::SyncStateRequest(handle.clone()));
        self.send(msg)?;
        if let Some(ClientState::Accepted(c)) = self.clients.get_mut(&client_type) {
            c.sync = Some(Sync {
                handle,
                seen: HashSet::new(),
            });
        }
        Ok(())
    }

    fn not(&self, e: PdpError) -> PdpError {
        if self.state == PdpState::Closed {
            PdpError::Closed
        } else {
            e
        }
    }

    fn client(&self, client_type: u16) -> Option<&Client> {
        match self.clients.get(&client_type) {
            Some(ClientState::Accepted(c)) => Some(c),
            _ => None,
        }
    }

    fn client_checked(&self, client_type: u16) -> Result<&Client, PdpError> {
        self.client(client_type)
            .ok_or_else(|| self.not(PdpError::NotOpen(client_type)))
    }

    fn send(&mut self, mut msg: Message) -> Result<(), Error> {
        let mut buf = BytesMut::new();
        match &mut self.signer {
            Some(s) => s.sign_to(&mut msg, &mut buf)?,
            None => msg.encode_to(&mut buf)?,
        }
        self.transmit.push_back(buf.freeze());
        Ok(())
    }

    /// Sends a message built here from valid parts; it cannot fail to encode.
    fn send_internal(&mut self, msg: Message) {
        if let Err(e) = self.send(msg) {
            debug_assert!(false, "internal message failed to encode: {e}");
        }
    }

    fn cc(&mut self, client_type: u16, error: ErrorObject, redirect: Option<PdpAddress>) {
        let body = Body::ClientClose(ClientClose { error, redirect });
        self.send_internal(Message::new(client_type, body));
    }

    fn cc_all(&mut self, error: ErrorObject) {
        let types: Vec<u16> = self.clients.keys().copied().collect();
        for t in types {
            self.cc(t, error, None);
        }
    }

    fn finish(&mut self, reason: CloseReason) {
        self.state = PdpState::Closed;
        self.clients.clear();
        self.open_deadline = None;
        self.ka_deadline = None;
        self.events.push_back(PdpEvent::Closed(reason));
    }

    /// CC for `client_type` only; closes the connection if nothing else is open.
    fn close_client(&mut self, client_type: u16, error: ErrorObject, redirect: Option<PdpAddress>) {
        self.cc(client_type, error, redirect);
        self.clients.remove(&client_type);
        if self.clients.is_empty() {
            self.finish(CloseReason::LocalClose { error, redirect });
        }
    }

    /// The PEP broke the protocol: CC for every client type (or the one named, if none is
    /// open), then close.
    fn fatal_for(&mut self, client_type: u16, error: ErrorObject, detail: String) {
        if self.clients.contains_key(&client_type) || self.clients.is_empty() {
            self.cc(client_type, error, None);
            self.clients.remove(&client_type);
        }
        self.cc_all(error);
        self.finish(CloseReason::ProtocolError { error, detail });
    }

    /// A message that cannot be processed for `client_type`: CC for that client type if it
    /// is open and others remain, otherwise for everything.
    fn refuse_client(&mut self, client_type: u16, error: ErrorObject, detail: String) {
        if self.clients.keys().any(|t| *t != client_type) {
            self.clients.remove(&client_type);
            self.cc(client_type, error, None);
            self.events.push_back(PdpEvent::Invalid {
                client_type,
                handle: None,
                error,
                detail,
            });
        } else {
            self.fatal_for(client_type, error, detail);
        }
    }

    fn handle_malformed(&mut self, header: Header, handle: Option<Handle>, error: DecodeError) {
        let ct = header.client_type;
        let eo = error.error_object();
        let detail = error.to_string();
        if matches!(
            error,
            DecodeError::AuthenticationRequired | DecodeError::AuthenticationFailure(_)
        ) {
            return self.fatal_for(ct, eo, detail);
        }
        let is_req = OpCode::from_u8(header.op_code) == Some(OpCode::Request);
        match handle {
            Some(handle) if is_req && self.client(ct).is_some() => {
                let body = Body::Decision(DecisionMessage {
                    handle: handle.clone(),
                    content: DecisionContent::Error(eo),
                });
                self.send_internal(Message::new(ct, body).solicited());
                self.events.push_back(PdpEvent::Invalid {
                    client_type: ct,
                    handle: Some(handle),
                    error: eo,
                    detail,
                });
            }
            _ => self.refuse_client(ct, eo, detail),
        }
    }

    fn handle_message(&mut self, _now: Instant, msg: Message) {
        let ct = msg.client_type;
        let solicited = msg.solicited;
        let op = msg.op_code();
        match msg.body {
            Body::KeepAlive => self.send_internal(Message::keep_alive().solicited()),
            Body::ClientOpen(open) => self.on_open(ct, open),
            Body::ClientClose(cc) => self.on_client_close(ct, cc),
            Body::Request(_) | Body::Report(_) | Body::DeleteRequest(_) | Body::SyncComplete(_)
                if self.client(ct).is_none() =>
            {
                let error = ErrorObject::new(ErrorCode::UnsupportedClientType);
                let detail = format!("{op:?} for client type {ct}, which is not open");
                self.refuse_client(ct, error, detail);
            }
            Body::Request(req) => self.on_request(ct, req),
            Body::Report(rpt) => self.on_report(ct, rpt, solicited),
            Body::DeleteRequest(drq) => {
                let known = match self.clients.get_mut(&ct) {
                    Some(ClientState::Accepted(c)) => c.handles.remove(&drq.handle),
                    _ => false,
                };
                self.events.push_back(if known {
                    PdpEvent::Delete {
                        client_type: ct,
                        handle: drq.handle,
                        reason: drq.reason,
                    }
                } else {
                    PdpEvent::Invalid {
                        client_type: ct,
                        handle: Some(drq.handle),
                        error: ErrorObject::new(ErrorCode::InvalidHandleReference),
                        detail: "DRQ for a handle that is not installed".into(),
                    }
                });
            }
            Body::SyncComplete(handle) => self.on_sync_complete(ct, handle),
            Body::Decision(_) | Body::SyncStateRequest(_) | Body::ClientAccept(_) => {
                let error = ErrorObject::new(ErrorCode::BadMessageFormat);
                self.fatal_for(ct, error, format!("{op:?} sent by a PEP"));
            }
        }
    }

    fn on_open(&mut self, ct: u16, open: ClientOpen) {
        if self.clients.contains_key(&ct) {
            let error = ErrorObject::new(ErrorCode::BadMessageFormat);
            return self.fatal_for(ct, error, format!("second OPN for client type {ct}"));
        }
        if self.clients.len() >= self.config.max_client_types {
            // Refuse this one only; the open ones stay.
            let error = ErrorObject::new(ErrorCode::UnableToProcess);
            self.cc(ct, error, None);
            self.events.push_back(PdpEvent::Invalid {
                client_type: ct,
                handle: None,
                error,
                detail: "too many client types on one connection".into(),
            });
            return;
        }
        self.events.push_back(PdpEvent::Open {
            client_type: ct,
            pep_id: open.pep_id.clone(),
            last_pdp_addr: open.last_pdp_addr,
            client_si: open.client_si.clone(),
        });
        self.clients.insert(ct, ClientState::Pending(open));
    }

    fn on_client_close(&mut self, ct: u16, cc: ClientClose) {
        if self.clients.remove(&ct).is_none() && !self.clients.is_empty() {
            // CC for a client type that is not open: nothing to close.
            return;
        }
        if self.clients.is_empty() {
            self.finish(CloseReason::PeerClosed {
                client_type: ct,
                error: cc.error,
            });
        } else {
            self.events.push_back(PdpEvent::ClientClosed {
                client_type: ct,
                error: cc.error,
            });
        }
    }

    fn on_request(&mut self, ct: u16, req: Request) {
        let max = self.config.max_handles;
        let Some(ClientState::Accepted(c)) = self.clients.get_mut(&ct) else {
            return;
        };
        let update = c.handles.contains(&req.handle);
        if !update && c.handles.len() >= max {
            let error = ErrorObject::new(ErrorCode::UnableToProcess);
            let body = Body::Decision(DecisionMessage {
                handle: req.handle.clone(),
                content: DecisionContent::Error(error),
            });
            self.send_internal(Message::new(ct, body).solicited());
            self.events.push_back(PdpEvent::Invalid {
                client_type: ct,
                handle: Some(req.handle),
                error,
                detail: format!("more than {max} request states"),
            });
            return;
        }
        c.handles.insert(req.handle.clone());
        if let Some(s) = &mut c.sync {
            s.seen.insert(req.handle.clone());
        }
        self.events.push_back(PdpEvent::Request {
            client_type: ct,
            handle: req.handle.clone(),
            request: req,
            update,
        });
    }

    fn on_report(&mut self, ct: u16, rpt: Report, solicited: bool) {
        let Some(ClientState::Accepted(c)) = self.clients.get_mut(&ct) else {
            return;
        };
        if !c.handles.contains(&rpt.handle) {
            let error = ErrorObject::new(ErrorCode::InvalidHandleReference);
            let body = Body::Decision(DecisionMessage {
                handle: rpt.handle.clone(),
                content: DecisionContent::Error(error),
            });
            self.send_internal(Message::new(ct, body));
            self.events.push_back(PdpEvent::Invalid {
                client_type: ct,
                handle: Some(rpt.handle),
                error,
                detail: "RPT for a handle that is not installed".into(),
            });
            return;
        }
        if let Some(s) = &mut c.sync {
            s.seen.insert(rpt.handle.clone());
        }
        self.events.push_back(PdpEvent::Report {
            client_type: ct,
            handle: rpt.handle,
            report_type: rpt.report_type,
            client_si: rpt.client_si,
            solicited,
        });
    }

    fn on_sync_complete(&mut self, ct: u16, handle: Option<Handle>) {
        let Some(ClientState::Accepted(c)) = self.clients.get_mut(&ct) else {
            return;
        };
        let mut stale = Vec::new();
        if let Some(sync) = c.sync.take() {
            stale = match &sync.handle {
                Some(h) => vec![h.clone()],
                None => c.handles.iter().cloned().collect(),
            };
            stale.retain(|h| c.handles.contains(h) && !sync.seen.contains(h));
            for h in &stale {
                c.handles.remove(h);
            }
        }
        self.events.push_back(PdpEvent::SyncComplete {
            client_type: ct,
            handle,
            stale,
        });
    }
}
