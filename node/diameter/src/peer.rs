//! The Diameter peer state machine for one transport connection, sans-IO.
//!
//! The driver feeds it the connection coming up, decoded frames, timeouts (all with a `now`)
//! and the application's requests and answers; it hands back encoded messages to write
//! ([`Peer::poll_transmit`]), events ([`Peer::poll_event`]) and its next deadline
//! ([`Peer::poll_timeout`]). It covers the responder side (the SAE answering a router's CER)
//! and the initiator side (a router or simulator sending CER), the RFC 3539 watchdog, DPR/DPA,
//! Hop-by-Hop and End-to-End identifiers and the table of requests awaiting answers.
//!
//! # Watchdog and application traffic (RFC 3539)
//!
//! - Application requests go out only while the watchdog is OKAY: in REOPEN, SUSPECT or DOWN
//!   [`Peer::send_request`] refuses them with [`SendRequestError::WatchdogNotOkay`]. A connection
//!   opened with `reopen` is [`Event::Up`] before it is usable: wait for
//!   `Event::Watchdog(WatchdogState::Okay)`.
//! - Entering SUSPECT fails every pending request over: [`Event::Watchdog`] (SUSPECT) is
//!   reported first, then one [`Event::RequestFailed`] with [`RequestFailure::Failover`]
//!   per request, so that the application can send it elsewhere (RFC 6733 section 5.5.4). An
//!   answer that still arrives for such a request is discarded like any unmatched answer.
//! - Any message received resets the watchdog timer (RFC 3539 section 3.4.1), except that in
//!   REOPEN only DWAs count; so does a frame
//!   that framed as a message but did not decode, since the peer demonstrably sent it. Only a
//!   DWA whose Hop-by-Hop identifier matches the outstanding DWR counts as a DWA (clears the
//!   pending DWR, counts towards the three DWAs of REOPEN); any other DWA is discarded with a
//!   warning and otherwise counts as ordinary traffic.
//! - A DWA with a Result-Code other than 2001 still counts: RFC 3539 asks only that the peer
//!   answers the watchdog, and an answer at all is the proof of life it looks for; the code is
//!   logged.
//! - Application requests received in REOPEN are answered 3002 (DIAMETER_UNABLE_TO_DELIVER,
//!   with the E bit) where RFC 3539 would throw them away: a silent drop would leave the
//!   sender waiting for its own timeout, while the protocol error lets it retry elsewhere at
//!   once, and sending an answer does not change the watchdog's view of this connection.
//!
//! # Identifiers
//!
//! Hop-by-Hop identifiers are per connection (random start, then increasing). End-to-End
//! identifiers come from the [`EndToEndIds`] shared by a node's connections: the high 12 bits
//! from the wall-clock seconds given at start-up, the low 20 bits random, then incremented; the
//! generator never yields 0. A request handed over with End-to-End 0 gets the next identifier;
//! any other value is kept (a retransmission keeps its End-to-End identifier).
//!
//! # Election and duplicate connections
//!
//! RFC 6733 section 5.6.4: when a node has both initiated a connection to a peer and received
//! one from it, the responder side compares the two Origin-Hosts as octet strings and the
//! higher one wins ([`election_won`]); the loser's received connection is refused with 4003
//! (DIAMETER_ELECTION_LOST). The SAE never initiates connections, so the election cannot arise
//! there; the helper serves initiators that also accept connections.
//!
//! What the SAE does see is a second *received* connection from an Origin-Host that is already
//! up (a router that reconnected before the old connection was noticed dead). The node decides
//! that on [`Event::CapabilitiesReceived`] with its `duplicate_peer` setting: `replace` (the
//! default) accepts the new connection and ends the old one with [`Peer::replaced`] (closed
//! with [`CloseReason::Replaced`], its pending requests failed); `reject` answers the new CER
//! with 4003 through [`Peer::reject`] and keeps the old connection.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::avp::{Avp, Value};
use crate::capabilities::Capabilities;
use crate::codes::{DisconnectCause, avp, command, result};
use crate::dictionary::Dictionary;
use crate::error::Error;
use crate::frame::{Frame, FramingError, Limits};
use crate::message::Message;
use crate::validate::{
    ErrorAnswer, ProtocolError, check_answer_rules, validate_answer, validate_request,
};
use crate::watchdog::{Watchdog, WatchdogAction, WatchdogState};

/// Which side opened the transport connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We accepted the connection and wait for CER (the SAE).
    Responder,
    /// We opened the connection and send CER (a router, the simulator).
    Initiator,
}

/// Which peers a responder accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerFilter {
    /// Any Origin-Host.
    Any,
    /// Only these Origin-Hosts (compared case-insensitively).
    Only(BTreeSet<String>),
}

impl PeerFilter {
    /// Does the filter let `origin_host` in?
    pub fn allows(&self, origin_host: &str) -> bool {
        match self {
            PeerFilter::Any => true,
            PeerFilter::Only(hosts) => hosts.iter().any(|h| h.eq_ignore_ascii_case(origin_host)),
        }
    }
}

/// End-to-End identifiers, unique per originating host (RFC 6733 section 3): the high 12 bits
/// from the low 12 bits of the clock at start-up, the low 20 bits random, then incremented.
/// Shared by all of a node's connections. Never yields 0, so a request cannot leave with the
/// value that asks [`Peer::send_request`] for a fresh identifier.
#[derive(Debug)]
pub struct EndToEndIds(AtomicU32);

impl EndToEndIds {
    /// Seeded with the start-up time in seconds since the Unix epoch (only its low 12 bits are
    /// used) and a random value (only its low 20 bits are used).
    pub fn new(startup_unix_seconds: u64, random: u32) -> Self {
        EndToEndIds(AtomicU32::new(
            ((startup_unix_seconds as u32 & 0xfff) << 20) | (random & 0xf_ffff),
        ))
    }

    /// Seeded with the start-up time in seconds since the Unix epoch and a random low part.
    pub fn with_time(startup_unix_seconds: u64) -> Self {
        Self::new(startup_unix_seconds, rand::random())
    }

    /// Seeded at random in all 32 bits, for callers without a wall clock (the default of
    /// [`PeerConfig::new`]); prefer [`EndToEndIds::with_time`] where the time is known.
    pub fn random() -> Self {
        EndToEndIds(AtomicU32::new(rand::random()))
    }

    /// The next identifier (never 0).
    pub fn next(&self) -> u32 {
        loop {
            let id = self.0.fetch_add(1, Ordering::Relaxed);
            if id != 0 {
                return id;
            }
        }
    }
}

/// Default for [`PeerConfig::max_pending_requests`].
pub const DEFAULT_MAX_PENDING_REQUESTS: usize = 4096;

/// RFC 6733 section 5.6.4 election, decided by the responder of a connection when it has also
/// initiated one to the same peer: the Origin-Hosts are compared as octet strings and the local
/// node wins when its own is the higher. The winner closes its initiated connection and keeps
/// the received one; the loser refuses the received CER with 4003 (DIAMETER_ELECTION_LOST).
/// Equal Origin-Hosts (a misconfiguration) are no win.
pub fn election_won(local_origin_host: &str, remote_origin_host: &str) -> bool {
    local_origin_host.as_bytes() > remote_origin_host.as_bytes()
}

/// Configuration shared by all connections of one role.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    pub role: Role,
    /// What we announce in CER/CEA.
    pub local: Capabilities,
    pub dictionary: Arc<Dictionary>,
    pub limits: Limits,
    /// Tw of RFC 3539 (at least 6 s).
    pub watchdog_interval: Duration,
    /// How long to wait for CER (responder) or CEA (initiator).
    pub capabilities_timeout: Duration,
    /// How long to wait for DPA after sending DPR.
    pub disconnect_timeout: Duration,
    /// Default time to wait for the answer to a request we send.
    pub request_timeout: Duration,
    /// Responder: which peers may connect.
    pub allowed_peers: PeerFilter,
    /// Most requests awaiting answers at once; [`Peer::send_request`] refuses more with
    /// [`SendRequestError::TooManyPending`].
    pub max_pending_requests: usize,
    /// End-to-End identifiers; share one generator between a node's connections.
    pub end_to_end: Arc<EndToEndIds>,
}

impl PeerConfig {
    /// Defaults: Tw 30 s, 10 s for capabilities exchange and for answers, 5 s for DPA,
    /// [`DEFAULT_MAX_PENDING_REQUESTS`] requests awaiting answers, End-to-End identifiers from
    /// [`EndToEndIds::random`] (a node replaces them with one [`EndToEndIds::with_time`] for all
    /// its connections).
    pub fn new(role: Role, local: Capabilities, dictionary: Arc<Dictionary>) -> Self {
        PeerConfig {
            role,
            local,
            dictionary,
            limits: Limits::default(),
            watchdog_interval: Duration::from_secs(30),
            capabilities_timeout: Duration::from_secs(10),
            disconnect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            allowed_peers: PeerFilter::Any,
            max_pending_requests: DEFAULT_MAX_PENDING_REQUESTS,
            end_to_end: Arc::new(EndToEndIds::random()),
        }
    }
}

/// The remote peer, as learned in capabilities exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    pub capabilities: Capabilities,
    /// Applications both sides support.
    pub applications: BTreeSet<u32>,
}

/// Handle of a request we sent: its Hop-by-Hop identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u32);

/// Why a request we sent got no usable answer.
#[derive(Debug, Clone, PartialEq)]
pub enum RequestFailure {
    /// No answer before the deadline.
    Timeout,
    /// The connection closed first: the request may be sent again over another connection.
    ConnectionClosed,
    /// RFC 3539 failover: the watchdog suspects the connection (reported just before as
    /// `Event::Watchdog(WatchdogState::Suspect)`); the request may be sent again over another
    /// connection.
    Failover,
    /// The request was never sent (the connection's state refused it; the text says why).
    NotSent(String),
    /// The answer could not be decoded or broke the dictionary's rules.
    InvalidAnswer(ProtocolError),
}

/// Why [`Peer::send_request`] did not send a request.
#[derive(Debug, thiserror::Error)]
pub enum SendRequestError {
    /// Capabilities are not exchanged yet, or the connection is closing or closed.
    #[error("the peer connection is not open")]
    NotOpen,
    /// RFC 3539: application requests wait until the watchdog is OKAY (it is REOPEN after a
    /// failed connection, SUSPECT when the peer stopped answering).
    #[error("the peer connection's watchdog is {}, not okay", .0.name())]
    WatchdogNotOkay(WatchdogState),
    /// [`PeerConfig::max_pending_requests`] requests already await answers.
    #[error("{limit} requests already await answers on this connection")]
    TooManyPending { limit: usize },
    /// The message has the R bit clear.
    #[error("not a request: the R bit is clear")]
    NotARequest,
    /// The request cannot be encoded (too large).
    #[error(transparent)]
    Encode(#[from] Error),
}

/// Why the connection ended.
#[derive(Debug, Clone, PartialEq)]
pub enum CloseReason {
    /// We sent DPR and got DPA (or gave up waiting for it).
    LocalDisconnect,
    /// The peer sent DPR; we answered.
    PeerDisconnected(Option<DisconnectCause>),
    /// Capabilities exchange failed: the Result-Code sent or received.
    CapabilitiesFailed { result_code: u32, message: String },
    /// No CER/CEA in time.
    CapabilitiesTimeout,
    /// The watchdog declared the peer down.
    WatchdogExpired,
    /// The byte stream cannot be framed any further, or the peer broke the protocol.
    ProtocolViolation(String),
    /// The transport closed under us.
    TransportClosed,
    /// Another connection of the same peer took over.
    Replaced,
}

/// What the state machine reports to its driver.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Responder: a valid CER from an allowed peer with a common application. Answer with
    /// [`Peer::accept`] or [`Peer::reject`].
    CapabilitiesReceived(PeerInfo),
    /// Capabilities exchanged; the connection is open.
    Up(PeerInfo),
    /// An application request that passed validation; answer it with [`Peer::send_answer`].
    Request(Message),
    /// The answer to a request we sent.
    Answer { id: RequestId, answer: Message },
    /// A request we sent got no usable answer.
    RequestFailed {
        id: RequestId,
        reason: RequestFailure,
    },
    /// The watchdog changed state.
    Watchdog(WatchdogState),
    /// The connection is over: write out what is queued, then close the transport.
    Closed(CloseReason),
}

/// Connection states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// Not connected yet.
    Idle,
    /// Responder: waiting for CER.
    WaitCer,
    /// Responder: CER received, waiting for the driver to accept or reject.
    WaitAccept,
    /// Initiator: CER sent, waiting for CEA.
    WaitCea,
    /// Capabilities exchanged.
    Open,
    /// DPR sent, waiting for DPA.
    Closing,
    /// Done.
    Closed,
}

impl PeerState {
    /// Lower-case name for logs and the API.
    pub fn name(self) -> &'static str {
        match self {
            PeerState::Idle => "idle",
            PeerState::WaitCer => "wait-cer",
            PeerState::WaitAccept => "wait-accept",
            PeerState::WaitCea => "wait-cea",
            PeerState::Open => "open",
            PeerState::Closing => "closing",
            PeerState::Closed => "closed",
        }
    }
}

struct Pending {
    deadline: Instant,
    command_code: u32,
}

/// One peer connection.
pub struct Peer {
    config: Arc<PeerConfig>,
    state: PeerState,
    watchdog: Watchdog,
    /// CER/CEA wait, or DPA wait.
    state_deadline: Option<Instant>,
    remote: Option<PeerInfo>,
    /// CER waiting for accept/reject.
    pending_cer: Option<Message>,
    cer_hop_by_hop: u32,
    dpr_hop_by_hop: u32,
    /// The DWR awaiting its DWA, if any.
    outstanding_dwr: Option<u32>,
    next_hop_by_hop: u32,
    pending: HashMap<u32, Pending>,
    transmit: VecDeque<Bytes>,
    events: VecDeque<Event>,
}

impl Peer {
    /// A new connection. `reopen` says that the previous connection to this peer failed, so
    /// the watchdog starts in REOPEN (RFC 3539) once capabilities are exchanged.
    pub fn new(config: Arc<PeerConfig>, seed: u64, reopen: bool) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut watchdog = Watchdog::new(config.watchdog_interval, rng.r#gen());
        if reopen {
            watchdog.connection_down();
        }
        Peer {
            config,
            state: PeerState::Idle,
            watchdog,
            state_deadline: None,
            remote: None,
            pending_cer: None,
            cer_hop_by_hop: 0,
            dpr_hop_by_hop: 0,
            outstanding_dwr: None,
            next_hop_by_hop: rng.r#gen(),
            pending: HashMap::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Current state.
    pub fn state(&self) -> PeerState {
        self.state
    }

    /// Watchdog state.
    pub fn watchdog_state(&self) -> WatchdogState {
        self.watchdog.state()
    }

    /// The remote peer, once known.
    pub fn remote(&self) -> Option<&PeerInfo> {
        self.remote.as_ref()
    }

    /// The configuration.
    pub fn config(&self) -> &PeerConfig {
        &self.config
    }

    /// Limits on received messages, for drivers that build the frame decoder.
    pub fn limits(&self) -> Limits {
        self.config.limits
    }

    /// Number of requests awaiting answers.
    pub fn pending_requests(&self) -> usize {
        self.pending.len()
    }

    /// Next encoded message to write.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmit.pop_front()
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The earliest deadline; call [`Peer::handle_timeout`] when it passes.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == PeerState::Closed {
            return None;
        }
        let requests = self.pending.values().map(|p| p.deadline).min();
        [self.state_deadline, requests, self.watchdog_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    fn watchdog_deadline(&self) -> Option<Instant> {
        matches!(self.state, PeerState::Open | PeerState::Closing)
            .then(|| self.watchdog.deadline())
            .flatten()
    }

    /// The transport connection is established.
    pub fn connected(&mut self, now: Instant) {
        if self.state != PeerState::Idle {
            return;
        }
        self.state_deadline = Some(now + self.config.capabilities_timeout);
        match self.config.role {
            Role::Responder => self.state = PeerState::WaitCer,
            Role::Initiator => {
                let mut cer = Message::request(command::CAPABILITIES_EXCHANGE, 0, false);
                cer.avps = self.config.local.to_avps();
                self.cer_hop_by_hop = self.stamp(&mut cer);
                self.queue(&cer);
                self.state = PeerState::WaitCea;
            }
        }
    }

    /// A frame arrived.
    pub fn handle_frame(&mut self, now: Instant, frame: Frame) {
        if self.state == PeerState::Closed {
            return;
        }
        match frame {
            Frame::Message(msg) => self.handle_message(now, msg),
            Frame::Malformed { header, error } => {
                let err = ProtocolError::from_decode(&self.config.dictionary, &error);
                tracing::warn!(command = header.command_code, %error, "malformed Diameter message");
                if !matches!(
                    self.state,
                    PeerState::Open | PeerState::Closing | PeerState::WaitCea
                ) {
                    // Nothing but a well-formed CER is acceptable before capabilities exchange.
                    return self.close(CloseReason::ProtocolViolation(error.to_string()));
                }
                if self.state != PeerState::WaitCea {
                    // It framed as a message, so the peer sent it: traffic for the watchdog
                    // (never a DWA, even with command 280: a DWA that does not decode proves
                    // less than one that does).
                    self.watchdog_received(now, false);
                }
                if header.flags.is_request() {
                    let answer = err.answer(
                        &header,
                        None,
                        &self.config.local.origin_host,
                        &self.config.local.origin_realm,
                    );
                    self.queue(&answer);
                } else if self.pending.remove(&header.hop_by_hop).is_some() {
                    self.events.push_back(Event::RequestFailed {
                        id: RequestId(header.hop_by_hop),
                        reason: RequestFailure::InvalidAnswer(err),
                    });
                } else if self.state == PeerState::WaitCea
                    && header.hop_by_hop == self.cer_hop_by_hop
                {
                    self.close(CloseReason::ProtocolViolation(format!(
                        "malformed CEA: {error}"
                    )));
                }
            }
        }
    }

    /// The byte stream could not be framed: answer if possible, then close.
    pub fn handle_framing_error(&mut self, _now: Instant, err: FramingError) {
        if let Some(header) = err.header.filter(|h| h.flags.is_request()) {
            let answer = ProtocolError::from_decode(&self.config.dictionary, &err.error).answer(
                &header,
                None,
                &self.config.local.origin_host,
                &self.config.local.origin_realm,
            );
            self.queue(&answer);
        }
        self.close(CloseReason::ProtocolViolation(err.error.to_string()));
    }

    /// The transport closed (EOF or error).
    pub fn transport_closed(&mut self, _now: Instant) {
        if self.state != PeerState::Closed {
            let reason = match self.state {
                PeerState::Closing => CloseReason::LocalDisconnect,
                _ => CloseReason::TransportClosed,
            };
            self.close(reason);
        }
    }

    /// Another connection of the same peer has taken over; this one ends.
    pub fn replaced(&mut self, _now: Instant) {
        self.close(CloseReason::Replaced);
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == PeerState::Closed {
            return;
        }
        if self.state_deadline.is_some_and(|d| d <= now) {
            self.state_deadline = None;
            match self.state {
                PeerState::WaitCer | PeerState::WaitCea => {
                    return self.close(CloseReason::CapabilitiesTimeout);
                }
                PeerState::Closing => return self.close(CloseReason::LocalDisconnect),
                _ => {}
            }
        }
        let expired: Vec<u32> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(h, _)| *h)
            .collect();
        for hbh in expired {
            self.pending.remove(&hbh);
            self.events.push_back(Event::RequestFailed {
                id: RequestId(hbh),
                reason: RequestFailure::Timeout,
            });
        }
        if self.watchdog_deadline().is_some_and(|d| d <= now) {
            let before = self.watchdog.state();
            let action = self.watchdog.timeout(now);
            self.watchdog_changed(before);
            if self.watchdog.state() == WatchdogState::Suspect && before != WatchdogState::Suspect {
                // RFC 3539 Failover(): the requests in flight go elsewhere if they can.
                self.fail_pending(RequestFailure::Failover);
            }
            match action {
                WatchdogAction::SendDwr => self.send_dwr(),
                WatchdogAction::Close => self.close(CloseReason::WatchdogExpired),
                WatchdogAction::None => {}
            }
        }
    }

    /// Responder: accept the peer announced by [`Event::CapabilitiesReceived`].
    pub fn accept(&mut self, now: Instant) {
        if self.state != PeerState::WaitAccept {
            return;
        }
        let Some(cer) = self.pending_cer.take() else {
            return;
        };
        let cea = self.cea(&cer, result::SUCCESS, "", None);
        self.queue(&cea);
        self.open(now);
    }

    /// Responder: refuse the peer (for example 3010 or 4003) and close.
    pub fn reject(&mut self, _now: Instant, result_code: u32, message: &str) {
        if self.state != PeerState::WaitAccept {
            return;
        }
        if let Some(cer) = self.pending_cer.take() {
            let cea = self.cea(&cer, result_code, message, None);
            self.queue(&cea);
        }
        self.close(CloseReason::CapabilitiesFailed {
            result_code,
            message: message.to_owned(),
        });
    }

    /// Sends a request with the default timeout. Hop-by-Hop and (if 0) End-to-End are set here.
    ///
    /// Refused unless the connection is open with its watchdog OKAY and fewer than
    /// [`PeerConfig::max_pending_requests`] requests await answers.
    pub fn send_request(
        &mut self,
        now: Instant,
        request: Message,
    ) -> Result<RequestId, SendRequestError> {
        let timeout = self.config.request_timeout;
        self.send_request_with_timeout(now, request, timeout)
    }

    /// Sends a request that fails with [`RequestFailure::Timeout`] after `timeout`.
    pub fn send_request_with_timeout(
        &mut self,
        now: Instant,
        mut request: Message,
        timeout: Duration,
    ) -> Result<RequestId, SendRequestError> {
        if self.state != PeerState::Open {
            return Err(SendRequestError::NotOpen);
        }
        if !request.is_request() {
            return Err(SendRequestError::NotARequest);
        }
        let watchdog = self.watchdog.state();
        if watchdog != WatchdogState::Okay {
            return Err(SendRequestError::WatchdogNotOkay(watchdog));
        }
        let limit = self.config.max_pending_requests;
        if self.pending.len() >= limit {
            return Err(SendRequestError::TooManyPending { limit });
        }
        let hbh = self.stamp(&mut request);
        let bytes = request.encode()?;
        self.pending.insert(
            hbh,
            Pending {
                deadline: now + timeout,
                command_code: request.header.command_code,
            },
        );
        self.transmit.push_back(bytes);
        Ok(RequestId(hbh))
    }

    /// Sends the answer to a request delivered by [`Event::Request`].
    pub fn send_answer(&mut self, answer: Message) -> Result<(), Error> {
        if answer.is_request() {
            return Err(Error::NotARequest("an answer must have the R bit clear"));
        }
        if !matches!(self.state, PeerState::Open | PeerState::Closing) {
            return Err(Error::NotOpen);
        }
        self.transmit.push_back(answer.encode()?);
        Ok(())
    }

    /// Starts a graceful disconnect: DPR now, close on DPA or after the disconnect timeout.
    pub fn disconnect(&mut self, now: Instant, cause: DisconnectCause) {
        match self.state {
            PeerState::Open => {
                let mut dpr = Message::request(command::DISCONNECT_PEER, 0, false);
                self.push_origin(&mut dpr);
                dpr.push(Avp::mandatory(
                    avp::DISCONNECT_CAUSE,
                    &Value::Enumerated(cause.value()),
                ));
                self.dpr_hop_by_hop = self.stamp(&mut dpr);
                self.queue(&dpr);
                self.state = PeerState::Closing;
                self.state_deadline = Some(now + self.config.disconnect_timeout);
            }
            PeerState::Closing | PeerState::Closed => {}
            _ => self.close(CloseReason::LocalDisconnect),
        }
    }

    fn handle_message(&mut self, now: Instant, msg: Message) {
        match self.state {
            PeerState::Idle | PeerState::Closed => {}
            PeerState::WaitCer => self.handle_cer(now, msg),
            PeerState::WaitAccept => self.close(CloseReason::ProtocolViolation(
                "message before CEA was sent".into(),
            )),
            PeerState::WaitCea => self.handle_cea(now, msg),
            PeerState::Open | PeerState::Closing => {
                let is_dwa =
                    !msg.is_request() && msg.header.command_code == command::DEVICE_WATCHDOG;
                let answers_dwr = is_dwa && self.take_dwa(&msg);
                let accepted = self.watchdog_received(now, answers_dwr);
                if msg.is_request() {
                    self.handle_request(msg, accepted);
                } else if !is_dwa {
                    self.handle_answer(msg);
                }
            }
        }
    }

    /// A message arrived: tells the watchdog (reporting a change of state); false when RFC 3539
    /// says to throw it away (REOPEN, anything but the DWA).
    fn watchdog_received(&mut self, now: Instant, answers_dwr: bool) -> bool {
        let before = self.watchdog.state();
        let accepted = self.watchdog.received(now, answers_dwr);
        self.watchdog_changed(before);
        accepted
    }

    /// Is this DWA the answer to the outstanding DWR? If so the DWR is no longer outstanding.
    fn take_dwa(&mut self, dwa: &Message) -> bool {
        let hbh = dwa.header.hop_by_hop;
        if self.outstanding_dwr != Some(hbh) {
            tracing::warn!(
                hop_by_hop = hbh,
                outstanding = ?self.outstanding_dwr,
                "discarding DWA that answers no outstanding DWR"
            );
            return false;
        }
        self.outstanding_dwr = None;
        let code = dwa.result_code();
        if code != Some(result::SUCCESS) {
            // Still a sign of life: the peer answered the watchdog (RFC 3539 section 3.4).
            tracing::warn!(result_code = ?code, "DWA without DIAMETER_SUCCESS");
        }
        true
    }

    /// Fails every pending request, in Hop-by-Hop order.
    fn fail_pending(&mut self, reason: RequestFailure) {
        let mut failed: Vec<u32> = self.pending.drain().map(|(h, _)| h).collect();
        failed.sort_unstable();
        for hbh in failed {
            self.events.push_back(Event::RequestFailed {
                id: RequestId(hbh),
                reason: reason.clone(),
            });
        }
    }

    fn handle_request(&mut self, msg: Message, accepted: bool) {
        let (origin_host, origin_realm) = (
            &self.config.local.origin_host,
            &self.config.local.origin_realm,
        );
        if let Err(err) = validate_request(&self.config.dictionary, &msg, &self.config.limits) {
            tracing::info!(command = msg.header.command_code, code = err.result_code, error = %err.message, "rejecting request");
            let answer = err.answer_to(&self.config.dictionary, &msg, origin_host, origin_realm);
            return self.queue(&answer);
        }
        match msg.header.command_code {
            command::DEVICE_WATCHDOG => {
                let mut dwa = Message::answer_to(&msg);
                dwa.set_result_code(result::SUCCESS);
                self.push_origin(&mut dwa);
                if let Some(id) = self.config.local.origin_state_id {
                    dwa.push(Avp::mandatory(avp::ORIGIN_STATE_ID, &Value::Unsigned32(id)));
                }
                self.queue(&dwa);
            }
            command::DISCONNECT_PEER => {
                let cause = msg
                    .find(avp::DISCONNECT_CAUSE, 0)
                    .and_then(|a| a.as_i32().ok())
                    .and_then(DisconnectCause::from_value);
                let mut dpa = Message::answer_to(&msg);
                dpa.set_result_code(result::SUCCESS);
                self.push_origin(&mut dpa);
                self.queue(&dpa);
                self.close(CloseReason::PeerDisconnected(cause));
            }
            command::CAPABILITIES_EXCHANGE => {
                let err = ProtocolError::new(
                    result::UNABLE_TO_COMPLY,
                    "capabilities were already exchanged on this connection",
                );
                let cea = self.cea(&msg, err.result_code, &err.message, None);
                self.queue(&cea);
            }
            _ => {
                let served = self
                    .remote
                    .as_ref()
                    .is_some_and(|r| r.applications.contains(&msg.header.application_id));
                if !served {
                    let err = ProtocolError::new(
                        result::APPLICATION_UNSUPPORTED,
                        format!(
                            "application {} was not negotiated on this connection",
                            msg.header.application_id
                        ),
                    );
                    let answer = err.answer(
                        &msg.header,
                        msg.find(avp::SESSION_ID, 0),
                        origin_host,
                        origin_realm,
                    );
                    return self.queue(&answer);
                }
                if !accepted {
                    // RFC 3539 throws non-DWA traffic away in REOPEN. We answer instead (never
                    // a silent drop): 3002 with the E bit tells the sender at once to try
                    // another path, where a dropped request would hold it until its own
                    // timeout; the answer does not count for our watchdog either way.
                    let err = ProtocolError::new(
                        result::UNABLE_TO_DELIVER,
                        "connection is re-opening (RFC 3539 REOPEN)",
                    );
                    let answer = err.answer(
                        &msg.header,
                        msg.find(avp::SESSION_ID, 0),
                        origin_host,
                        origin_realm,
                    );
                    return self.queue(&answer);
                }
                self.events.push_back(Event::Request(msg));
            }
        }
    }

    fn handle_answer(&mut self, msg: Message) {
        let hbh = msg.header.hop_by_hop;
        if self.state == PeerState::Closing && msg.header.command_code == command::DISCONNECT_PEER {
            if hbh == self.dpr_hop_by_hop {
                self.close(CloseReason::LocalDisconnect);
            }
            return;
        }
        let Some(p) = self.pending.remove(&hbh) else {
            tracing::warn!(
                command = msg.header.command_code,
                hop_by_hop = hbh,
                "discarding answer that matches no pending request"
            );
            return;
        };
        if p.command_code != msg.header.command_code {
            self.events.push_back(Event::RequestFailed {
                id: RequestId(hbh),
                reason: RequestFailure::InvalidAnswer(ProtocolError::new(
                    result::UNABLE_TO_COMPLY,
                    format!(
                        "answer has command {} for a request of command {}",
                        msg.header.command_code, p.command_code
                    ),
                )),
            });
            return;
        }
        let event = match validate_answer(&self.config.dictionary, &msg, &self.config.limits) {
            Ok(()) => Event::Answer {
                id: RequestId(hbh),
                answer: msg,
            },
            Err(err) => Event::RequestFailed {
                id: RequestId(hbh),
                reason: RequestFailure::InvalidAnswer(err),
            },
        };
        self.events.push_back(event);
    }

    fn handle_cer(&mut self, _now: Instant, cer: Message) {
        if !cer.is_request() || cer.header.command_code != command::CAPABILITIES_EXCHANGE {
            return self.close(CloseReason::ProtocolViolation(format!(
                "expected CER, got command {}",
                cer.header.command_code
            )));
        }
        let checked = validate_request(&self.config.dictionary, &cer, &self.config.limits)
            .and_then(|()| Capabilities::from_message(&cer));
        let caps = match checked {
            Ok(caps) => caps,
            Err(err) => return self.fail_cer(&cer, err),
        };
        if !self.config.allowed_peers.allows(&caps.origin_host) {
            let err = ProtocolError::new(
                result::UNKNOWN_PEER,
                format!("peer {} is not configured", caps.origin_host),
            );
            return self.fail_cer(&cer, err);
        }
        let applications = self.config.local.common_applications(&caps);
        if applications.is_empty() {
            let err = ProtocolError::new(result::NO_COMMON_APPLICATION, "no application in common");
            return self.fail_cer(&cer, err);
        }
        let info = PeerInfo {
            capabilities: caps,
            applications,
        };
        self.remote = Some(info.clone());
        self.pending_cer = Some(cer);
        self.state = PeerState::WaitAccept;
        self.state_deadline = None;
        self.events.push_back(Event::CapabilitiesReceived(info));
    }

    fn fail_cer(&mut self, cer: &Message, err: ProtocolError) {
        tracing::info!(peer = cer.origin_host().unwrap_or("?"), code = err.result_code, error = %err.message, "refusing CER");
        let cea = self.cea(cer, err.result_code, &err.message, err.failed_avp.clone());
        self.queue(&cea);
        self.close(CloseReason::CapabilitiesFailed {
            result_code: err.result_code,
            message: err.message,
        });
    }

    fn handle_cea(&mut self, now: Instant, cea: Message) {
        let is_cea = !cea.is_request()
            && cea.header.command_code == command::CAPABILITIES_EXCHANGE
            && cea.header.hop_by_hop == self.cer_hop_by_hop;
        if !is_cea {
            return self.close(CloseReason::ProtocolViolation(format!(
                "expected CEA, got command {}",
                cea.header.command_code
            )));
        }
        // A refusal is reported with the peer's own Result-Code and Error-Message, whatever
        // else the CEA holds (error answers may follow the shorter generic answer format).
        if let Some(result_code) = cea.result_code()
            && !result::is_success(result_code)
        {
            let message = cea.error_message().unwrap_or("").to_owned();
            return self.close(CloseReason::CapabilitiesFailed {
                result_code,
                message,
            });
        }
        // A successful CEA is held to the same rules as a CER: the dictionary's AVP and
        // occurrence rules (Result-Code, Origin-Host, Origin-Realm, Host-IP-Address, Vendor-Id,
        // Product-Name), then the typed reading.
        let dictionary = &self.config.dictionary;
        let checked = validate_answer(dictionary, &cea, &self.config.limits)
            .and_then(|()| check_answer_rules(dictionary, &cea))
            .and_then(|()| Capabilities::from_message(&cea));
        let caps = match checked {
            Ok(caps) => caps,
            Err(err) => {
                tracing::warn!(peer = cea.origin_host().unwrap_or("?"), code = err.result_code, error = %err.message, "invalid CEA");
                return self.close(CloseReason::CapabilitiesFailed {
                    result_code: err.result_code,
                    message: format!("invalid CEA: {}", err.message),
                });
            }
        };
        let applications = self.config.local.common_applications(&caps);
        if applications.is_empty() {
            return self.close(CloseReason::CapabilitiesFailed {
                result_code: result::NO_COMMON_APPLICATION,
                message: "CEA names no application in common".into(),
            });
        }
        self.remote = Some(PeerInfo {
            capabilities: caps,
            applications,
        });
        self.open(now);
    }

    fn open(&mut self, now: Instant) {
        self.state = PeerState::Open;
        self.state_deadline = None;
        let before = self.watchdog.state();
        if self.watchdog.connection_up(now) == WatchdogAction::SendDwr {
            self.send_dwr();
        }
        self.watchdog_changed(before);
        let info = self.remote.clone().expect("remote known when opening");
        self.events.push_back(Event::Up(info));
    }

    fn watchdog_changed(&mut self, before: WatchdogState) {
        let after = self.watchdog.state();
        if after != before {
            self.events.push_back(Event::Watchdog(after));
        }
    }

    fn send_dwr(&mut self) {
        let mut dwr = Message::request(command::DEVICE_WATCHDOG, 0, false);
        self.push_origin(&mut dwr);
        if let Some(id) = self.config.local.origin_state_id {
            dwr.push(Avp::mandatory(avp::ORIGIN_STATE_ID, &Value::Unsigned32(id)));
        }
        self.outstanding_dwr = Some(self.stamp(&mut dwr));
        self.queue(&dwr);
    }

    fn cea(&self, cer: &Message, result_code: u32, message: &str, failed: Option<Avp>) -> Message {
        if result::is_protocol_error(result_code) {
            // 3010 and the other protocol errors: the generic answer-message, without the
            // capabilities (RFC 6733 section 7.2).
            let (host, realm) = (
                &self.config.local.origin_host,
                &self.config.local.origin_realm,
            );
            return ErrorAnswer {
                result_code,
                message: message.to_owned(),
                failed_avp: failed,
                redirect: None,
            }
            .to_request(cer, host, realm);
        }
        let mut cea = Message::answer_to(cer);
        cea.set_result_code(result_code);
        cea.avps.extend(self.config.local.to_avps());
        if !message.is_empty() {
            cea.push(Avp::new(
                avp::ERROR_MESSAGE,
                0,
                crate::avp::AvpFlags::none(),
                &Value::Utf8String(message.into()),
            ));
        }
        if let Some(f) = failed {
            cea.push(Avp::mandatory(avp::FAILED_AVP, &Value::Grouped(vec![f])));
        }
        cea
    }

    fn push_origin(&self, msg: &mut Message) {
        msg.push_origin(
            &self.config.local.origin_host,
            &self.config.local.origin_realm,
        );
    }

    /// Gives a request its Hop-by-Hop (always) and End-to-End (when 0: the generator never
    /// yields 0, so no request leaves with it) identifiers.
    fn stamp(&mut self, request: &mut Message) -> u32 {
        loop {
            let hbh = self.next_hop_by_hop;
            self.next_hop_by_hop = self.next_hop_by_hop.wrapping_add(1);
            if !self.pending.contains_key(&hbh) {
                request.header.hop_by_hop = hbh;
                break;
            }
        }
        if request.header.end_to_end == 0 {
            request.header.end_to_end = self.config.end_to_end.next();
        }
        request.header.hop_by_hop
    }

    fn queue(&mut self, msg: &Message) {
        match msg.encode() {
            Ok(bytes) => self.transmit.push_back(bytes),
            // Only our own oversized messages can fail to encode; report rather than send.
            Err(e) => {
                tracing::error!(error = %e, command = msg.header.command_code, "cannot encode message")
            }
        }
    }

    fn close(&mut self, reason: CloseReason) {
        if self.state == PeerState::Closed {
            return;
        }
        tracing::debug!(?reason, "peer connection closing");
        self.state = PeerState::Closed;
        self.state_deadline = None;
        self.watchdog.connection_down();
        self.outstanding_dwr = None;
        self.fail_pending(RequestFailure::ConnectionClosed);
        self.events.push_back(Event::Closed(reason));
    }
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("role", &self.config.role)
            .field("state", &self.state)
            .field("watchdog", &self.watchdog.state())
            .field(
                "remote",
                &self.remote.as_ref().map(|r| &r.capabilities.origin_host),
            )
            .field("pending", &self.pending.len())
            .finish()
    }
}
