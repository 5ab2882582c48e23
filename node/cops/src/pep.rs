//! The PEP end of one COPS connection (RFC 2748), sans-IO: what a router or SBC does, for
//! the simulator and tests.
//!
//! [`PepConnection::connected`] sends OPN; CAT brings the connection up
//! ([`PepEvent::Accepted`]), CC ends it ([`PepEvent::Closed`], with the PDP's Error and
//! PDP-Redirect). Once up, the PEP sends KA at a uniformly random point between 1/4 and 3/4
//! of the KA timer after its previous KA, and declares the PDP lost (CC Error 9, then
//! [`CloseReason::KeepAliveTimeout`]) when nothing arrives for a whole KA timer.
//!
//! After a failure the owner reconnects after [`crate::Backoff`] delays, with a new
//! `PepConnection` on the same [`PepConfig`] (same PEPID and client type, also after an HA
//! switch-over), and meanwhile admits new calls per [`AdmissionWhileDown`]. Calls already up
//! are not affected by the connection going down.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::error::{DecodeError, Error};
use crate::frame::{Frame, FrameDecoder, FramingError, Limits};
use crate::integrity::Signer;
use crate::message::{
    Body, ClientClose, ClientOpen, DecisionContent, DeleteRequest, Header, Message, OpCode, Report,
    Request,
};
use crate::object::{
    ClientSi, Context, ErrorCode, ErrorObject, Handle, PdpAddress, Reason, ReportType,
};
use crate::pdp::IntegrityConfig;
use crate::timer::{Rng, keepalive_interval};

/// Configuration of a PEP: shared by its successive connections, so a reconnect (or the HA
/// mate) opens with the same PEPID and client type.
#[derive(Debug, Clone)]
pub struct PepConfig {
    pub client_type: u16,
    pub pep_id: String,
    /// ClientSI for the OPN (e.g. COPS-PR capabilities).
    pub client_si: Option<ClientSi>,
    /// How long to wait for CAT.
    pub accept_timeout: Duration,
    /// Limits on received messages.
    pub limits: Limits,
    /// Sign outgoing and check incoming messages.
    pub integrity: Option<IntegrityConfig>,
}

impl PepConfig {
    /// No ClientSI, 30 s to get CAT, default limits, no integrity.
    pub fn new(client_type: u16, pep_id: impl Into<String>) -> Self {
        PepConfig {
            client_type,
            pep_id: pep_id.into(),
            client_si: None,
            accept_timeout: Duration::from_secs(30),
            limits: Limits::default(),
            integrity: None,
        }
    }
}

/// Why the connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The PDP sent CC: refused (e.g. Error 6), redirected (Error 12 with the address) or
    /// closed.
    PdpClosed {
        error: ErrorObject,
        redirect: Option<PdpAddress>,
    },
    /// No CAT in time.
    AcceptTimeout,
    /// Nothing from the PDP within the KA timer; CC Error 9 was sent.
    KeepAliveTimeout,
    /// We sent CC.
    LocalClose(ErrorObject),
    /// The PDP broke the protocol or the byte stream; CC with `error` was sent.
    ProtocolError { error: ErrorObject, detail: String },
    /// The transport closed under us.
    TransportClosed,
}

/// What the connection reports to its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PepEvent {
    /// CAT: the connection is up. `keepalive` is `None` for KA timer 0; `accounting_timer`
    /// is `None` without the object, `Some(ZERO)` for no unsolicited accounting reports.
    Accepted {
        keepalive: Option<Duration>,
        accounting_timer: Option<Duration>,
    },
    /// A DEC.
    Decision {
        handle: Handle,
        decision: DecisionContent,
        solicited: bool,
    },
    /// A DEC that could not be decoded: the state was deleted with DRQ `reason`.
    MalformedDecision { handle: Handle, reason: Reason },
    /// SSQ: re-send the state (all of it, or for `handle`), then
    /// [`PepConnection::sync_complete`].
    SyncRequest { handle: Option<Handle> },
    /// The connection is over: write out what is queued, then close the transport.
    Closed(CloseReason),
}

/// Misuse of the owner's actions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PepError {
    #[error("the connection is not up")]
    NotUp,
    #[error(transparent)]
    Encode(#[from] Error),
}

/// Connection states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PepState {
    /// Transport not connected yet.
    Idle,
    /// OPN sent, waiting for CAT.
    WaitAccept,
    /// CAT received.
    Up,
    /// Done.
    Closed,
}

/// Whether new calls (new request states) are admitted while the COPS connection is down:
/// SBCs deny them (503) unless configured to allow. Calls already up are never affected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AdmissionWhileDown {
    /// Allow new calls without the PDP (it will not know about them).
    pub allow: bool,
}

impl AdmissionWhileDown {
    /// Is a new call admitted, given whether the connection is up?
    pub fn admits_new_call(self, connection_up: bool) -> bool {
        connection_up || self.allow
    }
}

/// The PEP end of one TCP connection.
#[derive(Debug)]
pub struct PepConnection {
    config: Arc<PepConfig>,
    last_pdp_addr: Option<PdpAddress>,
    state: PepState,
    rng: Rng,
    ka: Option<Duration>,
    acct: Option<Duration>,
    accept_deadline: Option<Instant>,
    next_ka: Option<Instant>,
    silence_deadline: Option<Instant>,
    handles: HashSet<Handle>,
    signer: Option<Signer>,
    transmit: VecDeque<Bytes>,
    events: VecDeque<PepEvent>,
}

impl PepConnection {
    /// A connection; `seed` drives the KA jitter and the initial Integrity sequence number.
    pub fn new(config: Arc<PepConfig>, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let signer = config
            .integrity
            .as_ref()
            .and_then(|i| i.signer(rng.next_u32()));
        PepConnection {
            config,
            last_pdp_addr: None,
            state: PepState::Idle,
            rng,
            ka: None,
            acct: None,
            accept_deadline: None,
            next_ka: None,
            silence_deadline: None,
            handles: HashSet::new(),
            signer,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// With Last-PDP-Addr in the OPN: the PDP this PEP was connected to before.
    pub fn with_last_pdp_addr(mut self, addr: PdpAddress) -> Self {
        self.last_pdp_addr = Some(addr);
        self
    }

    /// A frame decoder with this connection's limits and (if configured) integrity check.
    pub fn frame_decoder(&self) -> FrameDecoder {
        match &self.config.integrity {
            Some(i) => FrameDecoder::with_verifier(self.config.limits, i.verifier()),
            None => FrameDecoder::new(self.config.limits),
        }
    }

    /// Current state.
    pub fn state(&self) -> PepState {
        self.state
    }

    /// Is the connection up (CAT received)?
    pub fn is_up(&self) -> bool {
        self.state == PepState::Up
    }

    /// The configuration.
    pub fn config(&self) -> &PepConfig {
        &self.config
    }

    /// KA timer granted by the PDP, once up (`None` for 0).
    pub fn keepalive(&self) -> Option<Duration> {
        self.ka
    }

    /// Accounting Timer granted by the PDP, once up.
    pub fn accounting_timer(&self) -> Option<Duration> {
        self.acct
    }

    /// The request states of this connection (REQ sent, no DRQ yet).
    pub fn handles(&self) -> &HashSet<Handle> {
        &self.handles
    }

    /// Next encoded message to write.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmit.pop_front()
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<PepEvent> {
        self.events.pop_front()
    }

    /// The earliest deadline; call [`PepConnection::handle_timeout`] when it passes.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == PepState::Closed {
            return None;
        }
        [self.accept_deadline, self.next_ka, self.silence_deadline]
            .into_iter()
            .flatten()
            .min()
    }

    /// The transport connection is established: sends OPN.
    pub fn connected(&mut self, now: Instant) {
        if self.state != PepState::Idle {
            return;
        }
        let open = ClientOpen {
            pep_id: self.config.pep_id.clone(),
            client_si: self.config.client_si.clone(),
            last_pdp_addr: self.last_pdp_addr,
        };
        let msg = Message::new(self.config.client_type, Body::ClientOpen(open));
        if let Err(e) = self.send(msg) {
            let error = ErrorObject::new(ErrorCode::ClientFailure);
            return self.finish(CloseReason::ProtocolError {
                error,
                detail: format!("cannot encode OPN: {e}"),
            });
        }
        self.state = PepState::WaitAccept;
        self.accept_deadline = now.checked_add(self.config.accept_timeout);
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            PepState::WaitAccept if self.accept_deadline.is_some_and(|d| d <= now) => {
                self.finish(CloseReason::AcceptTimeout);
            }
            PepState::Up => {
                if self.silence_deadline.is_some_and(|d| d <= now) {
                    self.cc(ErrorObject::new(ErrorCode::CommunicationFailure));
                    return self.finish(CloseReason::KeepAliveTimeout);
                }
                if let (Some(at), Some(ka)) = (self.next_ka, self.ka)
                    && at <= now
                {
                    self.send_internal(Message::keep_alive());
                    self.next_ka = now.checked_add(keepalive_interval(ka, &mut self.rng));
                }
            }
            _ => {}
        }
    }

    /// The transport closed (EOF or error).
    pub fn transport_closed(&mut self, _now: Instant) {
        if self.state != PepState::Closed {
            self.finish(CloseReason::TransportClosed);
        }
    }

    /// The byte stream cannot be framed any further: CC with the error, then close.
    pub fn handle_framing_error(&mut self, _now: Instant, err: FramingError) {
        if self.state != PepState::Closed {
            self.fatal(err.error.error_object(), err.error.to_string());
        }
    }

    /// A frame arrived. Anything received shows the PDP is alive.
    pub fn handle_frame(&mut self, now: Instant, frame: Frame) {
        if matches!(self.state, PepState::Idle | PepState::Closed) {
            return;
        }
        if let Some(ka) = self.ka {
            self.silence_deadline = now.checked_add(ka);
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

    /// Sends REQ for a new or updated request state.
    pub fn request(
        &mut self,
        now: Instant,
        handle: Handle,
        context: Context,
        client_si: Vec<ClientSi>,
    ) -> Result<(), PepError> {
        let req = Request {
            handle,
            context,
            in_interface: None,
            out_interface: None,
            client_si,
            lpdp_decisions: Vec::new(),
        };
        self.send_request(now, req)
    }

    /// Sends a REQ built by the caller.
    pub fn send_request(&mut self, _now: Instant, req: Request) -> Result<(), PepError> {
        self.check_up()?;
        let handle = req.handle.clone();
        self.send(Message::new(self.config.client_type, Body::Request(req)))?;
        self.handles.insert(handle);
        Ok(())
    }

    /// Sends RPT; `solicited` when it answers a DEC (or an SSQ).
    pub fn report(
        &mut self,
        _now: Instant,
        handle: Handle,
        report_type: ReportType,
        client_si: Option<ClientSi>,
        solicited: bool,
    ) -> Result<(), PepError> {
        self.check_up()?;
        let body = Body::Report(Report {
            handle,
            report_type,
            client_si,
        });
        let mut msg = Message::new(self.config.client_type, body);
        msg.solicited = solicited;
        self.send(msg)?;
        Ok(())
    }

    /// Sends DRQ; the state is gone. Send the final accounting RPT first (RFC 3483 §9).
    pub fn delete(
        &mut self,
        _now: Instant,
        handle: Handle,
        reason: Reason,
    ) -> Result<(), PepError> {
        self.check_up()?;
        self.handles.remove(&handle);
        let body = Body::DeleteRequest(DeleteRequest { handle, reason });
        self.send(Message::new(self.config.client_type, body))?;
        Ok(())
    }

    /// Sends SSC after re-sending the state an SSQ asked for.
    pub fn sync_complete(&mut self, _now: Instant, handle: Option<Handle>) -> Result<(), PepError> {
        self.check_up()?;
        let msg = Message::new(self.config.client_type, Body::SyncComplete(handle));
        self.send(msg.solicited())?;
        Ok(())
    }

    /// Closes the connection with CC carrying `error`.
    pub fn close(&mut self, _now: Instant, error: ErrorObject) {
        if matches!(self.state, PepState::WaitAccept | PepState::Up) {
            self.cc(error);
        }
        if self.state != PepState::Closed {
            self.finish(CloseReason::LocalClose(error));
        }
    }

    fn check_up(&self) -> Result<(), PepError> {
        if self.state == PepState::Up {
            Ok(())
        } else {
            Err(PepError::NotUp)
        }
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

    fn cc_for(&mut self, client_type: u16, error: ErrorObject) {
        let body = Body::ClientClose(ClientClose {
            error,
            redirect: None,
        });
        self.send_internal(Message::new(client_type, body));
    }

    fn cc(&mut self, error: ErrorObject) {
        self.cc_for(self.config.client_type, error);
    }

    fn finish(&mut self, reason: CloseReason) {
        self.state = PepState::Closed;
        self.accept_deadline = None;
        self.next_ka = None;
        self.silence_deadline = None;
        self.events.push_back(PepEvent::Closed(reason));
    }

    fn fatal(&mut self, error: ErrorObject, detail: String) {
        self.cc(error);
        self.finish(CloseReason::ProtocolError { error, detail });
    }

    fn handle_malformed(&mut self, header: Header, handle: Option<Handle>, error: DecodeError) {
        let is_dec = OpCode::from_u8(header.op_code) == Some(OpCode::Decision);
        let auth = matches!(
            error,
            DecodeError::AuthenticationRequired | DecodeError::AuthenticationFailure(_)
        );
        match handle {
            Some(handle)
                if is_dec
                    && !auth
                    && self.state == PepState::Up
                    && header.client_type == self.config.client_type
                    && self.handles.contains(&handle) =>
            {
                let reason = error.reason();
                self.handles.remove(&handle);
                let body = Body::DeleteRequest(DeleteRequest {
                    handle: handle.clone(),
                    reason,
                });
                self.send_internal(Message::new(self.config.client_type, body));
                self.events
                    .push_back(PepEvent::MalformedDecision { handle, reason });
            }
            _ => self.fatal(error.error_object(), error.to_string()),
        }
    }

    fn handle_message(&mut self, now: Instant, msg: Message) {
        let op = msg.op_code();
        if op != OpCode::KeepAlive && msg.client_type != self.config.client_type {
            // Not our client type: tell the PDP, keep ours.
            let error = ErrorObject::new(ErrorCode::UnsupportedClientType);
            return self.cc_for(msg.client_type, error);
        }
        let solicited = msg.solicited;
        match (self.state, msg.body) {
            (_, Body::KeepAlive) => {}
            (_, Body::ClientClose(cc)) => self.finish(CloseReason::PdpClosed {
                error: cc.error,
                redirect: cc.redirect,
            }),
            (PepState::WaitAccept, Body::ClientAccept(cat)) => {
                let ka = (cat.ka_timer > 0).then(|| Duration::from_secs(cat.ka_timer.into()));
                let acct = cat.acct_timer.map(|t| Duration::from_secs(t.into()));
                self.state = PepState::Up;
                self.accept_deadline = None;
                self.ka = ka;
                self.acct = acct;
                if let Some(ka) = ka {
                    self.next_ka = now.checked_add(keepalive_interval(ka, &mut self.rng));
                    self.silence_deadline = now.checked_add(ka);
                }
                self.events.push_back(PepEvent::Accepted {
                    keepalive: ka,
                    accounting_timer: acct,
                });
            }
            (PepState::Up, Body::Decision(dec)) => self.events.push_back(PepEvent::Decision {
                handle: dec.handle,
                decision: dec.content,
                solicited,
            }),
            (PepState::Up, Body::SyncStateRequest(handle)) => {
                self.events.push_back(PepEvent::SyncRequest { handle });
            }
            _ => {
                let error = ErrorObject::new(ErrorCode::BadMessageFormat);
                self.fatal(error, format!("unexpected {op:?} from the PDP"));
            }
        }
    }
}
