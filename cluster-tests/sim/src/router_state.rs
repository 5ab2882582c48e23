//! The simulated router's subscriber table and every decision it takes, sans-IO.
//!
//! [`RouterState`] is the router's source of truth: Session-Id → subscriber (user, IPv4 address,
//! NAS-Port-Id, installed policies with their accounting flag and synthetic counters, last
//! activity). It answers the SAE's requests synchronously ([`RouterState::handle_request`]),
//! builds the router's own requests (login and confirmation AARs, synchronization replays,
//! ACRs, STRs, SRQs) as [`Outgoing`] messages addressed to an SAE by Origin-Host, and takes
//! their answers back through [`RouterState::handle_answer`]. What happened comes out as
//! [`SimEvent`]s. Time is passed in (`now`); nothing here touches a socket or a clock.
//!
//! Behaviour (the router side of seed 001):
//! - Login: AAR with Juniper-Request-Type 1; AAA 2001 keeps the session with the policies of its
//!   Juniper-Policy-Install AVPs, then (if configured) a confirmation AAR with Request-Type 2
//!   carrying the installed policies, and ACR START for the accounted ones (Juniper-Acct-Collect).
//!   Any other answer, or none, and no session is kept.
//! - PPR: Juniper-Policy-Remove then Juniper-Policy-Install applied to the session, PPA 2001;
//!   unknown (or terminating) session 5002; a policy matching a `fail` glob → 5012 and nothing
//!   applied; matching a `drop` glob → no answer at all. Removing an accounted policy sends ACR
//!   STOP for it; installing one sends ACR START.
//! - ASR: ASA 2001 (5002 unknown), then the session ends with Termination-Cause 4.
//! - Ending a session (ASR, logout, inactivity): ACR STOP for the policies whose accounting was
//!   started, then STR carrying a final Juniper-Acct-Record per accounted policy; the session is
//!   dropped when the STA (or no answer) comes back. While the STR is outstanding the session
//!   counts as unknown to the SAE's requests.
//! - ACR from the SAE: ACA 2001 with a Juniper-Acct-Record for each policy named in its
//!   Juniper-Acct-Record AVPs (none named: every installed policy), Accounting-Record-Type and
//!   -Number echoed; 5002 for an unknown session.
//! - SRQ from an SAE: SRR 2001, that SAE becomes the active one (Juniper-Last-Origin-Host), and
//!   every live session is replayed to it as an AAR with Request-Type 3 and a
//!   Juniper-Policy-Install per installed policy. The first [`RouterConfig::drop_srq`] SRQs
//!   (and as many more as [`RouterState::set_drop_srq`] asks for) get no answer and change
//!   nothing, as if the router were not ready yet or had lost them.
//! - Multi-SAE rule: a request other than SRQ from an Origin-Host other than the remembered one
//!   is answered, then the router sends an SRQ to that SAE (Juniper-Last-Origin-Host = the old
//!   one) and replays after its SRR 2001. The remembered host is set by a received SRQ, by an
//!   SRR 2001 to the router's SRQ, or, when none is known yet, by the first successful AAA.
//! - Cluster (the SAE nodes not owning the router refuse its requests): an answer 3006
//!   (DIAMETER_REDIRECT_INDICATION, Redirect-Host a DiameterURI naming the owner's
//!   Origin-Host) or 3004 (TOO_BUSY, no owner yet) to a login or confirmation AAR, an ACR, an
//!   STR or an SRQ of the router keeps the request ([`RouterConfig::max_attempts`] sends at
//!   most, then the last answer is its outcome): a 3006 naming a connected SAE re-sends it
//!   there at once (the first two times), anything else holds it until an SAE sends SRQ
//!   (then, after the replay, it goes to that SAE; a held SRQ of the router is superseded)
//!   or its back-off ends (then to the Redirect-Host if connected, else to
//!   [`RouterState::target`]). With [`RouterConfig::retry_failures`], timeouts and closed
//!   connections are held the same way. Replays are never re-sent.
//! - Activity (for `inactivity`): the login, every PPR applied to the session and
//!   [`RouterState::touch`]. A session idle for `inactivity` ends with Termination-Cause 14.
//! - Counters grow with the time since a policy was installed: 12.5 kB/s in, 50 kB/s out,
//!   400-octet input packets and 1200-octet output packets.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sae_diameter::codes::{avp, command, juniper, result, vendor};
use sae_diameter::jsrc::{self, AcctRecord, PolicyInstall, RequestType, SubscriberMessage};
use sae_diameter::peer::{EndToEndIds, RequestFailure};
use sae_diameter::{Avp, CommandFlags, Message, ProtocolError, Value};
use wildmatch::WildMatch;

use crate::events::SimEvent;

/// Termination-Cause DIAMETER_LOGOUT.
pub const CAUSE_LOGOUT: i32 = 1;
/// Termination-Cause DIAMETER_ADMINISTRATIVE (after an ASR).
pub const CAUSE_ADMINISTRATIVE: i32 = 4;
/// Termination-Cause IDLE_TIMEOUT (RFC 7155).
pub const CAUSE_IDLE_TIMEOUT: i32 = 14;
/// [`RouterConfig::max_attempts`] by default.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 20;
/// [`RouterConfig::retry_backoff`] by default.
pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_millis(250);

/// How the router behaves.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    pub origin_host: String,
    pub origin_realm: String,
    /// JSRC or PTSP Application-Id: the header and Auth-Application-Id of every request.
    pub application: u32,
    /// Send the provisioning confirmation AAR after a successful login.
    pub confirm: bool,
    /// ACR INTERIM period for sessions with started accounting; `None`: no interims.
    pub interim: Option<Duration>,
    /// Idle time after which the router logs a subscriber out; `None`: never.
    pub inactivity: Option<Duration>,
    /// PPRs installing a policy that matches one of these globs are refused with 5012.
    pub fail_ppr: Vec<String>,
    /// PPRs installing a policy that matches one of these globs are never answered.
    pub drop_ppr: Vec<String>,
    /// The first this many SRQs from the SAEs are never answered (and change nothing).
    pub drop_srq: u32,
    /// The high 32 bits of every Session-Id (RFC 6733 suggests the start time).
    pub session_id_high: u32,
    /// Most sends of one request of the router (the first included) while its answers are
    /// 3006 (redirect) or 3004 (too busy) or, with `retry_failures`, it times out or its
    /// connection closes; then that last outcome is reported as usual. 1: no retries.
    pub max_attempts: u32,
    /// Back-off of a held request before it is sent to the active SAE anyway (unless an SRQ
    /// releases it first): this, doubled per attempt up to 8 times this.
    pub retry_backoff: Duration,
    /// Also retry requests that time out or whose connection closes.
    pub retry_failures: bool,
}

impl RouterConfig {
    /// A configuration with the defaults of `sae-sim router` (confirm on, no interims, 30
    /// minutes of inactivity, 20 attempts on redirects) but for `retry_failures` (off).
    pub fn new(origin_host: &str, origin_realm: &str, application: u32) -> Self {
        RouterConfig {
            origin_host: origin_host.to_owned(),
            origin_realm: origin_realm.to_owned(),
            application,
            confirm: true,
            interim: None,
            inactivity: Some(Duration::from_secs(1800)),
            fail_ppr: Vec::new(),
            drop_ppr: Vec::new(),
            drop_srq: 0,
            session_id_high: 0,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            retry_backoff: DEFAULT_RETRY_BACKOFF,
            retry_failures: false,
        }
    }
}

/// A subscriber to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginSpec {
    pub user: String,
    pub ip: Ipv4Addr,
    pub nas_port_id: String,
    /// The subscriber's number (the last part of its Session-Id); `None`: the login counter.
    pub n: Option<u64>,
}

/// Accounting-Record-Type values the router sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcctType {
    Start,
    Interim,
    Stop,
}

impl AcctType {
    /// Wire value.
    pub fn value(self) -> i32 {
        match self {
            AcctType::Start => 2,
            AcctType::Interim => 3,
            AcctType::Stop => 4,
        }
    }

    /// Name in events and control commands.
    pub fn name(self) -> &'static str {
        match self {
            AcctType::Start => "start",
            AcctType::Interim => "interim",
            AcctType::Stop => "stop",
        }
    }
}

/// Why the router sends an SRQ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrqReason {
    /// After connecting (the router's own restart).
    Startup,
    /// A request came from an SAE other than the remembered one.
    DifferentSae,
    /// Asked for on the control channel.
    Control,
}

impl SrqReason {
    /// Name in events.
    pub fn name(self) -> &'static str {
        match self {
            SrqReason::Startup => "startup",
            SrqReason::DifferentSae => "different-sae",
            SrqReason::Control => "control",
        }
    }
}

/// An installed policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// As the SAE sent it (replayed as is in synchronization).
    pub install: PolicyInstall,
    pub installed_at: Instant,
    /// ACR START sent and no STOP since.
    pub acct_started: bool,
}

impl Policy {
    /// Juniper-Acct-Collect was present.
    pub fn accounting(&self) -> bool {
        self.install.collect_accounting
    }

    /// The synthetic counters at `now`.
    pub fn usage(&self, now: Instant) -> AcctRecord {
        let ms = u64::try_from(now.saturating_duration_since(self.installed_at).as_millis())
            .unwrap_or(u64::MAX);
        let input = ms.saturating_mul(25) / 2;
        let output = ms.saturating_mul(50);
        AcctRecord {
            policy_name: self.install.policy_name.clone(),
            input_octets: Some(input),
            output_octets: Some(output),
            input_packets: Some(input.div_ceil(400)),
            output_packets: Some(output.div_ceil(1200)),
        }
    }
}

/// A logged-in subscriber.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub id: String,
    pub user: String,
    pub ip: Ipv4Addr,
    pub nas_port_id: String,
    pub policies: BTreeMap<String, Policy>,
    pub last_activity: Instant,
    /// Accounting-Record-Number of the next ACR.
    pub next_record_number: u32,
    pub next_interim: Option<Instant>,
    /// STR sent with this Termination-Cause; waiting for the STA.
    pub ending: Option<i32>,
}

impl Session {
    fn accounted(&self) -> impl Iterator<Item = &Policy> {
        self.policies.values().filter(|p| p.accounting())
    }

    fn started(&self) -> impl Iterator<Item = &Policy> {
        self.policies
            .values()
            .filter(|p| p.accounting() && p.acct_started)
    }
}

/// A request of the router, for the SAE whose Origin-Host is `to`.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// Hand the answer back with this token.
    pub token: u64,
    pub to: String,
    pub request: Message,
}

#[derive(Debug)]
enum Pending {
    Login {
        session: Box<Session>,
        sent_at: Instant,
        to: String,
    },
    Confirm {
        sid: String,
        user: String,
        to: String,
    },
    Replay {
        sid: String,
        user: String,
        to: String,
    },
    Acct {
        sid: String,
        user: String,
        kind: AcctType,
        number: u32,
        policies: Vec<String>,
    },
    Terminate {
        sid: String,
        user: String,
        cause: i32,
    },
    /// [`RouterState::str_unchecked`].
    StrOnly {
        sid: String,
        user: String,
    },
    Srq {
        to: String,
        reason: SrqReason,
    },
}

impl Pending {
    /// Worth sending again after a redirect: everything but replays (a new active SAE asks
    /// for those itself with its SRQ).
    fn retryable(&self) -> bool {
        !matches!(self, Pending::Replay { .. })
    }

    /// The request now goes to `host`: follow-ups go there too.
    fn set_to(&mut self, host: &str) {
        match self {
            Pending::Login { to, .. }
            | Pending::Confirm { to, .. }
            | Pending::Replay { to, .. }
            | Pending::Srq { to, .. } => host.clone_into(to),
            Pending::Acct { .. } | Pending::Terminate { .. } | Pending::StrOnly { .. } => {}
        }
    }
}

/// A request of the router awaiting its answer.
#[derive(Debug)]
struct InFlight {
    what: Pending,
    /// As sent; re-addressed and sent again on a retry.
    request: Message,
    /// The SAE it went to last.
    to: String,
    /// Sends so far.
    attempts: u32,
}

/// A request waiting for an SAE to become active (SRQ) or for its back-off to end.
#[derive(Debug)]
struct Held {
    flight: InFlight,
    /// Send it to `hint` (when connected) or the active SAE at this time.
    retry_at: Instant,
    /// The Redirect-Host of the last 3006.
    hint: Option<String>,
    /// What the last attempt got: reported if no attempt is left.
    last: Result<Message, RequestFailure>,
}

/// What to do after an answer that did not serve a request.
enum Retry {
    /// Send it to this (connected) SAE now.
    To(String),
    /// Hold it; the Redirect-Host of a 3006 if any.
    Hold(Option<String>),
}

/// The host part of a DiameterURI (`aaa://host:port;transport=tcp`), or the text itself when
/// it is a plain host name.
pub fn uri_host(uri: &str) -> &str {
    let rest = uri.split_once("://").map_or(uri, |(_, r)| r);
    let end = rest.find([':', ';', '/']).unwrap_or(rest.len());
    &rest[..end]
}

/// The hosts of an answer's Redirect-Host AVPs, in order.
pub fn redirect_hosts(answer: &Message) -> Vec<String> {
    answer
        .redirect_hosts()
        .into_iter()
        .map(uri_host)
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The simulated router.
#[derive(Debug)]
pub struct RouterState {
    cfg: RouterConfig,
    fail_ppr: Vec<(String, WildMatch)>,
    drop_ppr: Vec<(String, WildMatch)>,
    /// SRQs from the SAEs still to be left unanswered.
    srq_to_drop: u32,
    sessions: HashMap<String, Session>,
    /// User → Session-Id, for live sessions and logins in flight.
    by_user: HashMap<String, String>,
    /// Connected SAEs in connection order: Origin-Host → Origin-Realm.
    saes: Vec<(String, String)>,
    /// Juniper-Last-Origin-Host: the SAE the router considers active.
    active_sae: Option<String>,
    /// SAE an SRQ of ours is outstanding to.
    srq_in_flight: Option<String>,
    /// No inactivity or interim deadline is earlier than this (`None`: no deadline at all);
    /// [`RouterState::handle_timeout`] scans the table only once it has passed.
    wake_at: Option<Instant>,
    session_counter: u32,
    next_token: u64,
    pending: HashMap<u64, InFlight>,
    /// Requests waiting for an active SAE, in the order they were held.
    held: Vec<Held>,
    /// [`RouterState::abandon_held`] was called: no more retries.
    give_up: bool,
    events: VecDeque<SimEvent>,
    outgoing: VecDeque<Outgoing>,
    /// The router's End-to-End Identifiers: set once per request, kept when it is re-sent, so
    /// an SAE can tell a re-sent request (T bit) from a new one.
    end_to_end: EndToEndIds,
}

fn globs(list: &[String]) -> Vec<(String, WildMatch)> {
    list.iter()
        .map(|g| (g.clone(), WildMatch::new(g)))
        .collect()
}

fn utf8(code: u32, s: &str) -> Avp {
    Avp::mandatory(code, &Value::Utf8String(s.to_owned()))
}

fn identity(code: u32, s: &str) -> Avp {
    Avp::mandatory(code, &Value::DiameterIdentity(s.to_owned()))
}

/// The short name of a command, for events.
pub fn command_name(code: u32, request: bool) -> String {
    let (req, ans) = match code {
        command::AA => ("AAR", "AAA"),
        command::ACCOUNTING => ("ACR", "ACA"),
        command::ABORT_SESSION => ("ASR", "ASA"),
        command::SESSION_TERMINATION => ("STR", "STA"),
        command::SESSION_RESYNC => ("SRQ", "SRR"),
        command::PUSH_PROFILE => ("PPR", "PPA"),
        command::CAPABILITIES_EXCHANGE => ("CER", "CEA"),
        command::DEVICE_WATCHDOG => ("DWR", "DWA"),
        command::DISCONNECT_PEER => ("DPR", "DPA"),
        other => return format!("{other}{}", if request { "-request" } else { "-answer" }),
    };
    (if request { req } else { ans }).to_owned()
}

/// A request failure as event text.
pub fn failure_text(f: &RequestFailure) -> String {
    match f {
        RequestFailure::Timeout => "timeout".into(),
        RequestFailure::ConnectionClosed => "connection-closed".into(),
        RequestFailure::Failover => "failover".into(),
        RequestFailure::NotSent(why) => format!("not-sent: {why}"),
        RequestFailure::InvalidAnswer(e) => {
            format!("invalid answer: {} {}", e.result_code, e.message)
        }
    }
}

/// What an answer says: its Result-Code, or why it cannot be used.
fn check_answer(
    answer: &Result<Message, RequestFailure>,
    session_id: Option<&str>,
) -> (Option<u32>, Option<String>) {
    let msg = match answer {
        Ok(m) => m,
        Err(f) => return (None, Some(failure_text(f))),
    };
    if let Some(sid) = session_id
        && msg.session_id() != Some(sid)
    {
        return (
            msg.result_code(),
            Some(format!(
                "answer Session-Id {:?} does not match {sid:?}",
                msg.session_id()
            )),
        );
    }
    match msg.result_code() {
        None => (None, Some("answer without Result-Code".into())),
        Some(result::SUCCESS) => (Some(result::SUCCESS), None),
        Some(code) => (Some(code), msg.error_message().map(str::to_owned)),
    }
}

impl RouterState {
    /// A router with an empty table.
    pub fn new(cfg: RouterConfig) -> Self {
        RouterState {
            fail_ppr: globs(&cfg.fail_ppr),
            drop_ppr: globs(&cfg.drop_ppr),
            srq_to_drop: cfg.drop_srq,
            cfg,
            sessions: HashMap::new(),
            by_user: HashMap::new(),
            saes: Vec::new(),
            active_sae: None,
            srq_in_flight: None,
            wake_at: None,
            session_counter: 0,
            next_token: 1,
            pending: HashMap::new(),
            held: Vec::new(),
            give_up: false,
            events: VecDeque::new(),
            outgoing: VecDeque::new(),
            end_to_end: EndToEndIds::random(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RouterConfig {
        &self.cfg
    }

    /// Next event to report.
    pub fn poll_event(&mut self) -> Option<SimEvent> {
        self.events.pop_front()
    }

    /// Next request to send.
    pub fn poll_outgoing(&mut self) -> Option<Outgoing> {
        self.outgoing.pop_front()
    }

    /// Live sessions (including those waiting for their STA).
    pub fn sessions(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values()
    }

    /// One session.
    pub fn session(&self, session_id: &str) -> Option<&Session> {
        self.sessions.get(session_id)
    }

    /// The Session-Id of a user's live session or login in flight.
    pub fn session_of(&self, user: &str) -> Option<&str> {
        self.by_user.get(user).map(String::as_str)
    }

    /// Requests of ours awaiting answers (sent, or held for a retry).
    pub fn pending_requests(&self) -> usize {
        self.pending.len() + self.held.len()
    }

    /// Requests of ours held for a retry.
    pub fn held_requests(&self) -> usize {
        self.held.len()
    }

    /// The remembered active SAE (Juniper-Last-Origin-Host).
    pub fn active_sae(&self) -> Option<&str> {
        self.active_sae.as_deref()
    }

    /// Where the router's own requests go: the active SAE when connected, else the first
    /// connected SAE.
    pub fn target(&self) -> Option<&str> {
        let active = self.active_sae.as_deref().and_then(|a| {
            self.saes
                .iter()
                .find(|(h, _)| h.eq_ignore_ascii_case(a))
                .map(|(h, _)| h.as_str())
        });
        active.or_else(|| self.saes.first().map(|(h, _)| h.as_str()))
    }

    /// A connection to the SAE `host` (Origin-Realm `realm`) is open.
    pub fn sae_up(&mut self, host: &str, realm: &str) {
        self.saes.retain(|(h, _)| h != host);
        self.saes.push((host.to_owned(), realm.to_owned()));
    }

    /// The connection to the SAE `host` closed.
    pub fn sae_down(&mut self, host: &str) {
        self.saes.retain(|(h, _)| h != host);
    }

    /// Replaces the `--fail-ppr` globs.
    pub fn set_fail_ppr(&mut self, list: Vec<String>) {
        self.fail_ppr = globs(&list);
        self.cfg.fail_ppr = list;
    }

    /// Replaces the `--drop-ppr` globs.
    pub fn set_drop_ppr(&mut self, list: Vec<String>) {
        self.drop_ppr = globs(&list);
        self.cfg.drop_ppr = list;
    }

    /// Leaves the next `n` SRQs from the SAEs unanswered (0: answers every SRQ again).
    pub fn set_drop_srq(&mut self, n: u32) {
        self.srq_to_drop = n;
    }

    /// SRQs from the SAEs still to be left unanswered.
    pub fn srq_to_drop(&self) -> u32 {
        self.srq_to_drop
    }

    /// Looks a session up by Session-Id or user name.
    pub fn resolve(&self, who: &str) -> Option<String> {
        if self.sessions.contains_key(who) {
            return Some(who.to_owned());
        }
        self.by_user
            .get(who)
            .filter(|sid| self.sessions.contains_key(*sid))
            .cloned()
    }

    fn realm_of(&self, host: &str) -> String {
        self.saes
            .iter()
            .find(|(h, _)| h == host)
            .map(|(_, r)| r.clone())
            // Not connected (any more): the message fails when sent; the realm only has to
            // be plausible.
            .unwrap_or_else(|| self.cfg.origin_realm.clone())
    }

    fn send(&mut self, to: &str, mut request: Message, pending: Pending) -> u64 {
        if request.header.end_to_end == 0 {
            request.header.end_to_end = self.end_to_end.next();
        }
        self.dispatch(InFlight {
            what: pending,
            request,
            to: to.to_owned(),
            attempts: 0,
        })
    }

    /// Sends (again) to `flight.to`.
    fn dispatch(&mut self, mut flight: InFlight) -> u64 {
        let token = self.next_token;
        self.next_token += 1;
        flight.attempts = flight.attempts.saturating_add(1);
        self.outgoing.push_back(Outgoing {
            token,
            to: flight.to.clone(),
            request: flight.request.clone(),
        });
        self.pending.insert(token, flight);
        token
    }

    /// Points a request at `to`: Destination-Realm (and Destination-Host when present) name
    /// it, a Juniper-Last-Origin-Host names the SAE remembered now.
    fn readdress(&mut self, flight: &mut InFlight, to: &str) {
        let realm = self.realm_of(to);
        for a in &mut flight.request.avps {
            if a.is(avp::DESTINATION_REALM, 0) {
                *a = identity(avp::DESTINATION_REALM, &realm);
            } else if a.is(avp::DESTINATION_HOST, 0) {
                *a = identity(avp::DESTINATION_HOST, to);
            } else if a.is(juniper::LAST_ORIGIN_HOST, vendor::JUNIPER)
                && let Some(last) = &self.active_sae
            {
                *a = jsrc::last_origin_host(last);
            }
        }
        to.clone_into(&mut flight.to);
        flight.what.set_to(to);
        if let Pending::Srq { .. } = flight.what {
            self.srq_in_flight = Some(to.to_owned());
        }
    }

    /// The connected SAE named `host` (as its CEA spells it).
    fn connected(&self, host: &str) -> Option<String> {
        self.saes
            .iter()
            .find(|(h, _)| h.eq_ignore_ascii_case(host))
            .map(|(h, _)| h.clone())
    }

    /// The back-off after `attempts` sends.
    fn backoff(&self, attempts: u32) -> Duration {
        self.cfg.retry_backoff * (1u32 << attempts.saturating_sub(1).min(3))
    }

    fn wake_by(&mut self, deadline: Instant) {
        self.wake_at = Some(self.wake_at.map_or(deadline, |w| w.min(deadline)));
    }

    fn set_active(&mut self, host: &str) {
        if self.active_sae.as_deref() == Some(host) {
            return;
        }
        let previous = self.active_sae.replace(host.to_owned());
        self.events.push_back(SimEvent::ActiveSae {
            sae: host.to_owned(),
            previous,
        });
    }

    /// A request with the fields every router request carries.
    fn request(&self, code: u32, session_id: Option<&str>, to: &str) -> Message {
        // Every command the router sends is proxiable but SRQ (as the dictionary says).
        let proxiable = code != command::SESSION_RESYNC;
        let mut m = Message::request(code, self.cfg.application, proxiable);
        if let Some(sid) = session_id {
            m.push(utf8(avp::SESSION_ID, sid));
        }
        if code != command::ACCOUNTING {
            m.push(Avp::mandatory(
                avp::AUTH_APPLICATION_ID,
                &Value::Unsigned32(self.cfg.application),
            ));
        }
        m.push_origin(&self.cfg.origin_host, &self.cfg.origin_realm);
        m.push(identity(avp::DESTINATION_REALM, &self.realm_of(to)));
        m
    }

    fn aar(&self, s: &Session, kind: RequestType, to: &str, with_policies: bool) -> Message {
        let mut m = self.request(command::AA, Some(&s.id), to);
        m.push(utf8(avp::USER_NAME, &s.user));
        m.push(Avp::mandatory(
            avp::FRAMED_IP_ADDRESS,
            &Value::OctetString(Bytes::copy_from_slice(&s.ip.octets())),
        ));
        m.push(utf8(avp::NAS_PORT_ID, &s.nas_port_id));
        m.push(kind.to_avp());
        if let Some(last) = &self.active_sae {
            m.push(jsrc::last_origin_host(last));
        }
        if with_policies {
            for p in s.policies.values() {
                m.push(p.install.to_avp());
            }
        }
        m
    }

    // ------------------------------------------------------------------ router-initiated

    /// Starts a login: AAR with Juniper-Request-Type 1 to [`RouterState::target`]. Returns
    /// the new Session-Id; the outcome comes as a `login` or `login-failed` event (at once
    /// when there is no SAE to ask or the user is already logged in).
    pub fn login(&mut self, now: Instant, spec: LoginSpec) -> String {
        self.session_counter = self.session_counter.wrapping_add(1);
        let lo = self.session_counter;
        let sid = format!(
            "{};{};{};{}",
            self.cfg.origin_host,
            self.cfg.session_id_high,
            lo,
            spec.n.unwrap_or(u64::from(lo))
        );
        let failed = |error: String| SimEvent::LoginFailed {
            session_id: sid.clone(),
            user: spec.user.clone(),
            sae: None,
            result: None,
            error: Some(error),
            latency_us: None,
        };
        if let Some(other) = self.by_user.get(&spec.user) {
            let e = failed(format!("{} is already logged in ({other})", spec.user));
            self.events.push_back(e);
            return sid;
        }
        let Some(to) = self.target().map(str::to_owned) else {
            let e = failed("no SAE connection".into());
            self.events.push_back(e);
            return sid;
        };
        let session = Session {
            id: sid.clone(),
            user: spec.user.clone(),
            ip: spec.ip,
            nas_port_id: spec.nas_port_id,
            policies: BTreeMap::new(),
            last_activity: now,
            next_record_number: 0,
            next_interim: None,
            ending: None,
        };
        let aar = self.aar(&session, RequestType::AddressAuthorization, &to, false);
        self.by_user.insert(spec.user, sid.clone());
        self.send(
            &to,
            aar,
            Pending::Login {
                session: Box::new(session),
                sent_at: now,
                to: to.clone(),
            },
        );
        sid
    }

    /// Marks subscriber activity (resets the inactivity timer).
    pub fn touch(&mut self, now: Instant, who: &str) -> Result<String, String> {
        let sid = self
            .resolve(who)
            .ok_or_else(|| format!("no session {who}"))?;
        if let Some(s) = self.sessions.get_mut(&sid) {
            s.last_activity = now;
        }
        Ok(sid)
    }

    /// Logs a subscriber out (STR with `cause`, after ACR STOP for started accounting).
    pub fn logout(&mut self, now: Instant, who: &str, cause: i32) -> Result<(), String> {
        let sid = self
            .resolve(who)
            .ok_or_else(|| format!("no session {who}"))?;
        let to = self
            .target()
            .map(str::to_owned)
            .ok_or("no SAE connection")?;
        if self.sessions.get(&sid).is_some_and(|s| s.ending.is_some()) {
            return Err(format!("{sid} is already ending"));
        }
        self.end_session(now, &sid, cause, &to);
        Ok(())
    }

    /// Sends an STR (cause 1) for `session_id` whatever the table holds, and changes nothing
    /// in it: to see how the SAE answers an STR for a session it does not know. The STA comes
    /// back as a `logout` event.
    pub fn str_unchecked(&mut self, session_id: &str) -> Result<(), String> {
        let to = self
            .target()
            .map(str::to_owned)
            .ok_or("no SAE connection")?;
        let mut str_ = self.request(command::SESSION_TERMINATION, Some(session_id), &to);
        str_.push(Avp::mandatory(
            avp::TERMINATION_CAUSE,
            &Value::Enumerated(CAUSE_LOGOUT),
        ));
        let user = self
            .sessions
            .get(session_id)
            .map(|s| s.user.clone())
            .unwrap_or_default();
        self.send(
            &to,
            str_,
            Pending::StrOnly {
                sid: session_id.to_owned(),
                user,
            },
        );
        Ok(())
    }

    /// Sends an ACR of `kind` for the session: START for every accounted policy, INTERIM for
    /// those started, STOP for those started (which then count as stopped).
    pub fn account(&mut self, now: Instant, who: &str, kind: AcctType) -> Result<(), String> {
        let sid = self
            .resolve(who)
            .ok_or_else(|| format!("no session {who}"))?;
        let to = self
            .target()
            .map(str::to_owned)
            .ok_or("no SAE connection")?;
        let names: Vec<String> = match self.sessions.get(&sid) {
            Some(s) if s.ending.is_none() => match kind {
                AcctType::Start => s
                    .accounted()
                    .map(|p| p.install.policy_name.clone())
                    .collect(),
                _ => s.started().map(|p| p.install.policy_name.clone()).collect(),
            },
            _ => return Err(format!("{sid} is ending")),
        };
        self.send_acr(now, &sid, kind, &names, &to);
        Ok(())
    }

    /// Sends an SRQ to [`RouterState::target`]; after its SRR 2001 every session is replayed.
    pub fn send_srq(&mut self, reason: SrqReason) -> Result<(), String> {
        let to = self
            .target()
            .map(str::to_owned)
            .ok_or("no SAE connection")?;
        self.srq_to(&to, reason);
        Ok(())
    }

    fn srq_to(&mut self, to: &str, reason: SrqReason) {
        let mut srq = self.request(command::SESSION_RESYNC, None, to);
        srq.push(identity(avp::DESTINATION_HOST, to));
        let last = self.active_sae.clone();
        if let Some(last) = &last {
            srq.push(jsrc::last_origin_host(last));
        }
        self.srq_in_flight = Some(to.to_owned());
        self.events.push_back(SimEvent::SrqSent {
            to: to.to_owned(),
            reason: reason.name().into(),
            last_origin_host: last,
        });
        self.send(
            to,
            srq,
            Pending::Srq {
                to: to.to_owned(),
                reason,
            },
        );
    }

    /// Sends an ACR with a Juniper-Acct-Record per named policy; START marks them started,
    /// STOP stopped. The records are read at `now`.
    fn send_acr(&mut self, now: Instant, sid: &str, kind: AcctType, names: &[String], to: &str) {
        let base = self.request(command::ACCOUNTING, Some(sid), to);
        let last = self.active_sae.clone();
        let Some(s) = self.sessions.get_mut(sid) else {
            return;
        };
        let mut acr = base;
        acr.push(Avp::mandatory(
            avp::ACCOUNTING_RECORD_TYPE,
            &Value::Enumerated(kind.value()),
        ));
        let number = s.next_record_number;
        s.next_record_number = s.next_record_number.wrapping_add(1);
        acr.push(Avp::mandatory(
            avp::ACCOUNTING_RECORD_NUMBER,
            &Value::Unsigned32(number),
        ));
        acr.push(Avp::mandatory(
            avp::AUTH_APPLICATION_ID,
            &Value::Unsigned32(self.cfg.application),
        ));
        acr.push(utf8(avp::USER_NAME, &s.user));
        if let Some(last) = &last {
            acr.push(jsrc::last_origin_host(last));
        }
        for name in names {
            if let Some(p) = s.policies.get_mut(name) {
                acr.push(p.usage(now).to_avp());
                match kind {
                    AcctType::Start => p.acct_started = true,
                    AcctType::Stop => p.acct_started = false,
                    AcctType::Interim => {}
                }
            }
        }
        match kind {
            AcctType::Start | AcctType::Interim => {
                if let Some(every) = self.cfg.interim {
                    s.next_interim = Some(now + every);
                }
            }
            AcctType::Stop => {
                if !s.policies.values().any(|p| p.acct_started) {
                    s.next_interim = None;
                }
            }
        }
        let user = s.user.clone();
        if let Some(t) = s.next_interim {
            self.wake_by(t);
        }
        self.send(
            to,
            acr,
            Pending::Acct {
                sid: sid.to_owned(),
                user,
                kind,
                number,
                policies: names.to_vec(),
            },
        );
    }

    /// ACR STOP for started accounting, then STR with a final record per accounted policy.
    fn end_session(&mut self, now: Instant, sid: &str, cause: i32, to: &str) {
        let Some(s) = self.sessions.get(sid) else {
            return;
        };
        let started: Vec<String> = s.started().map(|p| p.install.policy_name.clone()).collect();
        if !started.is_empty() {
            self.send_acr(now, sid, AcctType::Stop, &started, to);
        }
        let mut str_ = self.request(command::SESSION_TERMINATION, Some(sid), to);
        let Some(s) = self.sessions.get_mut(sid) else {
            return;
        };
        s.ending = Some(cause);
        s.next_interim = None;
        str_.push(Avp::mandatory(
            avp::TERMINATION_CAUSE,
            &Value::Enumerated(cause),
        ));
        str_.push(utf8(avp::USER_NAME, &s.user));
        for p in s.accounted() {
            str_.push(p.usage(now).to_avp());
        }
        let user = s.user.clone();
        self.send(
            to,
            str_,
            Pending::Terminate {
                sid: sid.to_owned(),
                user,
                cause,
            },
        );
    }

    /// Replays every live session to `to` (AAR, Request-Type 3); returns how many.
    fn replay_all(&mut self, to: &str) -> usize {
        let mut live: Vec<&Session> = self
            .sessions
            .values()
            .filter(|s| s.ending.is_none())
            .collect();
        live.sort_by(|a, b| a.id.cmp(&b.id));
        let replays: Vec<(String, String, Message)> = live
            .into_iter()
            .map(|s| {
                (
                    s.id.clone(),
                    s.user.clone(),
                    self.aar(s, RequestType::Synchronization, to, true),
                )
            })
            .collect();
        let count = replays.len();
        for (sid, user, aar) in replays {
            self.send(
                to,
                aar,
                Pending::Replay {
                    sid,
                    user,
                    to: to.to_owned(),
                },
            );
        }
        count
    }

    /// Installs policies on a session; returns the names that start accounting.
    fn install(&mut self, now: Instant, sid: &str, installs: Vec<PolicyInstall>) -> Vec<String> {
        let Some(s) = self.sessions.get_mut(sid) else {
            return Vec::new();
        };
        let mut start = Vec::new();
        for install in installs {
            let name = install.policy_name.clone();
            match s.policies.get_mut(&name) {
                Some(p) => {
                    if install.collect_accounting && !p.acct_started {
                        start.push(name);
                    }
                    p.install = install;
                }
                None => {
                    if install.collect_accounting {
                        start.push(name.clone());
                    }
                    s.policies.insert(
                        name,
                        Policy {
                            install,
                            installed_at: now,
                            acct_started: false,
                        },
                    );
                }
            }
        }
        start
    }

    /// Time-driven decisions: held requests whose back-off ended, inactivity logouts and
    /// interim accounting due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.retry_due(now);
        if self.wake_at.is_none_or(|w| now < w) {
            return;
        }
        let Some(to) = self.target().map(str::to_owned) else {
            return;
        };
        let mut idle = Vec::new();
        let mut interim = Vec::new();
        let mut wake: Option<Instant> = None;
        let mut later = |t: Instant| wake = Some(wake.map_or(t, |w| w.min(t)));
        for s in self.sessions.values().filter(|s| s.ending.is_none()) {
            let idle_at = self.cfg.inactivity.map(|limit| s.last_activity + limit);
            if idle_at.is_some_and(|t| t <= now) {
                idle.push(s.id.clone());
                continue;
            }
            if let Some(t) = idle_at {
                later(t);
            }
            match s.next_interim {
                Some(t) if t <= now => {
                    let names: Vec<String> =
                        s.started().map(|p| p.install.policy_name.clone()).collect();
                    interim.push((s.id.clone(), names));
                }
                Some(t) => later(t),
                None => {}
            }
        }
        self.wake_at = wake;
        idle.sort();
        interim.sort();
        for sid in idle {
            self.end_session(now, &sid, CAUSE_IDLE_TIMEOUT, &to);
        }
        for (sid, names) in interim {
            if names.is_empty() {
                if let Some(s) = self.sessions.get_mut(&sid) {
                    s.next_interim = None;
                }
            } else {
                self.send_acr(now, &sid, AcctType::Interim, &names, &to);
            }
        }
    }

    /// Pushes a `session` event per session and a `listed` event.
    pub fn list(&mut self, now: Instant) {
        let mut all: Vec<&Session> = self.sessions.values().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        let events: Vec<SimEvent> = all
            .iter()
            .map(|s| SimEvent::Session {
                session_id: s.id.clone(),
                user: s.user.clone(),
                ip: s.ip.to_string(),
                nas_port_id: s.nas_port_id.clone(),
                policies: s.policies.keys().cloned().collect(),
                accounting: s
                    .accounted()
                    .map(|p| p.install.policy_name.clone())
                    .collect(),
                idle_s: now.saturating_duration_since(s.last_activity).as_secs(),
                ending: s.ending.is_some(),
            })
            .collect();
        let count = events.len();
        self.events.extend(events);
        self.events.push_back(SimEvent::Listed { count });
    }

    // ------------------------------------------------------------------ answers

    /// The answer (or failure) of the request sent with `token`. A 3006 or 3004 answer (and,
    /// with [`RouterConfig::retry_failures`], a timeout or a closed connection) sends the
    /// request again while attempts are left: a 3006 naming a connected SAE at once to it,
    /// anything else once an SAE sends SRQ (to that SAE) or after the back-off (to
    /// [`RouterState::target`]).
    pub fn handle_answer(
        &mut self,
        now: Instant,
        token: u64,
        answer: Result<Message, RequestFailure>,
    ) {
        let Some(mut flight) = self.pending.remove(&token) else {
            return;
        };
        let Some(retry) = self.retry_decision(&flight, &answer) else {
            return self.complete(now, flight, answer);
        };
        if matches!(
            answer,
            Err(RequestFailure::Timeout
                | RequestFailure::ConnectionClosed
                | RequestFailure::Failover)
        ) {
            // Sent, never answered: it goes again as a possible duplicate (RFC 6733 T bit,
            // same End-to-End Identifier), which an SAE that did get it answers as before.
            flight.request.header.flags = flight
                .request
                .header
                .flags
                .with(CommandFlags::RETRANSMIT, true);
        }
        let (result, error, from) = match &answer {
            Ok(m) => (
                m.result_code(),
                m.error_message().map(str::to_owned),
                m.origin_host().unwrap_or(&flight.to).to_owned(),
            ),
            Err(f) => (None, Some(failure_text(f)), flight.to.clone()),
        };
        let redirect_host = match &answer {
            Ok(m) if result == Some(result::REDIRECT_INDICATION) => {
                redirect_hosts(m).into_iter().next()
            }
            _ => None,
        };
        self.events.push_back(SimEvent::Redirected {
            command: command_name(flight.request.header.command_code, true),
            session_id: flight.request.session_id().map(str::to_owned),
            from,
            to: match &retry {
                Retry::To(h) => Some(h.clone()),
                Retry::Hold(_) => None,
            },
            result,
            redirect_host,
            error,
            attempt: flight.attempts,
        });
        match retry {
            Retry::To(host) => {
                self.readdress(&mut flight, &host);
                self.dispatch(flight);
            }
            Retry::Hold(hint) => {
                if matches!(flight.what, Pending::Srq { .. })
                    && self.srq_in_flight.as_deref() == Some(flight.to.as_str())
                {
                    self.srq_in_flight = None;
                }
                let retry_at = now + self.backoff(flight.attempts);
                self.held.push(Held {
                    flight,
                    retry_at,
                    hint,
                    last: answer,
                });
            }
        }
    }

    /// Whether (and where) to send a request again after `answer`.
    fn retry_decision(
        &self,
        flight: &InFlight,
        answer: &Result<Message, RequestFailure>,
    ) -> Option<Retry> {
        if self.give_up || !flight.what.retryable() || flight.attempts >= self.cfg.max_attempts {
            return None;
        }
        match answer {
            Ok(m) => match m.result_code()? {
                result::REDIRECT_INDICATION => {
                    let answered_by = m.origin_host().unwrap_or(&flight.to);
                    let hosts = redirect_hosts(m);
                    let now_to = hosts
                        .iter()
                        .filter(|h| !h.eq_ignore_ascii_case(answered_by))
                        .find_map(|h| self.connected(h));
                    // At once while that cannot ping-pong for long; then with a back-off.
                    match now_to {
                        Some(to) if flight.attempts < 3 => Some(Retry::To(to)),
                        _ => Some(Retry::Hold(hosts.into_iter().next())),
                    }
                }
                result::TOO_BUSY => Some(Retry::Hold(None)),
                _ => None,
            },
            Err(
                RequestFailure::Timeout
                | RequestFailure::ConnectionClosed
                | RequestFailure::Failover
                | RequestFailure::NotSent(_),
            ) if self.cfg.retry_failures => Some(Retry::Hold(None)),
            Err(_) => None,
        }
    }

    /// Sends every held request to `to`, which just became the active SAE (its SRQ, or its
    /// SRR 2001 to ours). A held SRQ of ours is superseded: reported as answered.
    fn release_held(&mut self, to: &str) {
        for held in std::mem::take(&mut self.held) {
            let Held {
                mut flight, last, ..
            } = held;
            if let Pending::Srq { to: srq_to, reason } = &flight.what {
                let (result, _) = check_answer(&last, None);
                self.events.push_back(SimEvent::SrqAnswered {
                    to: srq_to.clone(),
                    sae: to.to_owned(),
                    reason: reason.name().into(),
                    result,
                    error: Some(format!("superseded: {to} is active")),
                    sessions: 0,
                });
                continue;
            }
            self.readdress(&mut flight, to);
            self.resend(flight, "srq");
        }
    }

    fn resend(&mut self, flight: InFlight, reason: &str) {
        self.events.push_back(SimEvent::Resent {
            command: command_name(flight.request.header.command_code, true),
            session_id: flight.request.session_id().map(str::to_owned),
            to: flight.to.clone(),
            reason: reason.into(),
            attempt: flight.attempts.saturating_add(1),
        });
        self.dispatch(flight);
    }

    /// Held requests whose back-off has ended: to their Redirect-Host when connected, else to
    /// [`RouterState::target`]; with no SAE to send to, the wait counts as an attempt.
    fn retry_due(&mut self, now: Instant) {
        if self.held.iter().all(|h| h.retry_at > now) {
            return;
        }
        let (due, wait): (Vec<Held>, Vec<Held>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|h| h.retry_at <= now);
        self.held = wait;
        for mut held in due {
            let to = held
                .hint
                .as_deref()
                .and_then(|h| self.connected(h))
                .or_else(|| self.target().map(str::to_owned));
            match to {
                Some(to) if !self.give_up => {
                    let mut flight = held.flight;
                    self.readdress(&mut flight, &to);
                    self.resend(flight, "backoff");
                }
                _ if !self.give_up && held.flight.attempts < self.cfg.max_attempts => {
                    held.flight.attempts += 1;
                    held.retry_at = now + self.backoff(held.flight.attempts);
                    self.held.push(held);
                }
                _ => self.complete(now, held.flight, held.last),
            }
        }
    }

    /// Reports every held request with the last outcome it got, and retries nothing from now
    /// on (the router is ending, or has no connection left).
    pub fn abandon_held(&mut self, now: Instant) {
        self.give_up = true;
        for held in std::mem::take(&mut self.held) {
            self.complete(now, held.flight, held.last);
        }
    }

    /// A request's final outcome.
    fn complete(
        &mut self,
        now: Instant,
        flight: InFlight,
        answer: Result<Message, RequestFailure>,
    ) {
        let sae = answer
            .as_ref()
            .ok()
            .and_then(Message::origin_host)
            .unwrap_or(&flight.to)
            .to_owned();
        match flight.what {
            Pending::Login {
                session,
                sent_at,
                to,
            } => self.login_answered(now, *session, sent_at, &to, answer),
            Pending::Confirm { sid, user, to } => {
                let (result, error) = check_answer(&answer, Some(&sid));
                self.events.push_back(SimEvent::Confirmed {
                    session_id: sid.clone(),
                    user,
                    sae,
                    result,
                    error: error.clone(),
                });
                if result == Some(result::SUCCESS) && error.is_none() {
                    self.installs_from_answer(now, &sid, &answer, &to);
                }
            }
            Pending::Replay { sid, user, to } => {
                let (result, error) = check_answer(&answer, Some(&sid));
                self.events.push_back(SimEvent::Replayed {
                    session_id: sid.clone(),
                    user,
                    sae,
                    result,
                    error: error.clone(),
                });
                if result == Some(result::SUCCESS) && error.is_none() {
                    self.installs_from_answer(now, &sid, &answer, &to);
                }
            }
            Pending::Acct {
                sid,
                user,
                kind,
                number,
                policies,
            } => {
                let (result, error) = check_answer(&answer, Some(&sid));
                self.events.push_back(SimEvent::Acct {
                    session_id: sid,
                    user,
                    kind: kind.name().into(),
                    record_number: number,
                    policies,
                    sae,
                    result,
                    error,
                });
            }
            Pending::Terminate { sid, user, cause } => {
                let (result, error) = check_answer(&answer, Some(&sid));
                self.sessions.remove(&sid);
                if self.by_user.get(&user) == Some(&sid) {
                    self.by_user.remove(&user);
                }
                self.events.push_back(SimEvent::Logout {
                    session_id: sid,
                    user,
                    cause,
                    sae,
                    result,
                    error,
                });
            }
            Pending::StrOnly { sid, user } => {
                let (result, error) = check_answer(&answer, Some(&sid));
                self.events.push_back(SimEvent::Logout {
                    session_id: sid,
                    user,
                    cause: CAUSE_LOGOUT,
                    sae,
                    result,
                    error,
                });
            }
            Pending::Srq { to, reason } => {
                if self.srq_in_flight.as_deref() == Some(to.as_str()) {
                    self.srq_in_flight = None;
                }
                let (result, error) = check_answer(&answer, None);
                let ok = result == Some(result::SUCCESS) && error.is_none();
                let mut sessions = 0;
                if ok {
                    let host = answer
                        .as_ref()
                        .ok()
                        .and_then(Message::origin_host)
                        .unwrap_or(&to)
                        .to_owned();
                    self.set_active(&host);
                    sessions = self
                        .sessions
                        .values()
                        .filter(|s| s.ending.is_none())
                        .count();
                }
                self.events.push_back(SimEvent::SrqAnswered {
                    to: to.clone(),
                    sae,
                    reason: reason.name().into(),
                    result,
                    error,
                    sessions,
                });
                if ok {
                    self.replay_all(&to);
                    self.release_held(&to);
                }
            }
        }
    }

    /// Policies an AAA (to a confirmation or a replay) adds.
    fn installs_from_answer(
        &mut self,
        now: Instant,
        sid: &str,
        answer: &Result<Message, RequestFailure>,
        to: &str,
    ) {
        let Ok(msg) = answer else { return };
        match msg.policy_installs() {
            Ok(installs) if !installs.is_empty() => {
                if self.sessions.get(sid).is_none_or(|s| s.ending.is_some()) {
                    return;
                }
                let start = self.install(now, sid, installs);
                if !start.is_empty() {
                    self.send_acr(now, sid, AcctType::Start, &start, to);
                }
            }
            Ok(_) => {}
            Err(e) => self.events.push_back(SimEvent::Error {
                error: format!("{sid}: AAA with a bad Juniper-Policy-Install: {e}"),
            }),
        }
    }

    fn login_answered(
        &mut self,
        now: Instant,
        mut session: Session,
        sent_at: Instant,
        to: &str,
        answer: Result<Message, RequestFailure>,
    ) {
        let latency_us =
            u64::try_from(now.saturating_duration_since(sent_at).as_micros()).unwrap_or(u64::MAX);
        let (result, mut error) = check_answer(&answer, Some(&session.id));
        let mut installs = Vec::new();
        if let (Ok(aaa), Some(result::SUCCESS), None) = (&answer, result, &error) {
            match aaa.policy_installs() {
                Ok(list) => installs = list,
                Err(e) => error = Some(format!("bad Juniper-Policy-Install: {e}")),
            }
        }
        let origin = answer
            .as_ref()
            .ok()
            .and_then(Message::origin_host)
            .unwrap_or(to)
            .to_owned();
        if result != Some(result::SUCCESS) || error.is_some() {
            if self.by_user.get(&session.user) == Some(&session.id) {
                self.by_user.remove(&session.user);
            }
            self.events.push_back(SimEvent::LoginFailed {
                session_id: session.id,
                user: session.user,
                sae: Some(origin),
                result,
                error,
                latency_us: answer.is_ok().then_some(latency_us),
            });
            return;
        }
        session.last_activity = now;
        let sid = session.id.clone();
        self.events.push_back(SimEvent::Login {
            session_id: sid.clone(),
            user: session.user.clone(),
            ip: session.ip.to_string(),
            nas_port_id: session.nas_port_id.clone(),
            result: result::SUCCESS,
            policies: installs.iter().map(|p| p.policy_name.clone()).collect(),
            accounting: installs
                .iter()
                .filter(|p| p.collect_accounting)
                .map(|p| p.policy_name.clone())
                .collect(),
            sae: origin.clone(),
            latency_us,
        });
        self.sessions.insert(sid.clone(), session);
        if let Some(limit) = self.cfg.inactivity {
            self.wake_by(now + limit);
        }
        let start = self.install(now, &sid, installs);
        if self.active_sae.is_none() {
            self.set_active(&origin);
        }
        if self.cfg.confirm
            && let Some(s) = self.sessions.get(&sid)
        {
            let aar = self.aar(s, RequestType::Provisioning, to, true);
            let user = s.user.clone();
            self.send(
                to,
                aar,
                Pending::Confirm {
                    sid: sid.clone(),
                    user,
                    to: to.to_owned(),
                },
            );
        }
        if !start.is_empty() {
            self.send_acr(now, &sid, AcctType::Start, &start, to);
        }
    }

    // ------------------------------------------------------------------ SAE requests

    /// Answers a request of the SAE that came over the connection to `via`; `None` means the
    /// request is deliberately left unanswered (`--drop-ppr`, `--drop-srq`). Follow-up requests (STR after
    /// ASR, ACRs, SRQ to a different SAE, replays) are queued as [`Outgoing`].
    pub fn handle_request(
        &mut self,
        now: Instant,
        via: &str,
        request: &Message,
    ) -> Option<Message> {
        let from = request.origin_host().unwrap_or(via).to_owned();
        let code = request.header.command_code;
        let mut event = RequestEvent::default();
        let before = self.events.len();
        let answer = match code {
            command::PUSH_PROFILE => self.ppr(now, via, request, &mut event),
            command::ABORT_SESSION => Some(self.asr(now, via, request)),
            command::ACCOUNTING => Some(self.acr(now, request, &mut event)),
            command::SESSION_RESYNC if self.srq_to_drop > 0 => {
                self.srq_to_drop -= 1;
                None
            }
            command::SESSION_RESYNC => Some(self.srq_received(via, &from, request)),
            _ => Some(
                ProtocolError::new(
                    result::COMMAND_UNSUPPORTED,
                    format!(
                        "a router does not serve {}",
                        command_name(code, request.is_request())
                    ),
                )
                .answer(
                    &request.header,
                    request.find(avp::SESSION_ID, 0),
                    &self.cfg.origin_host,
                    &self.cfg.origin_realm,
                ),
            ),
        };
        let result = answer.as_ref().and_then(Message::result_code);
        if event.error.is_none() {
            event.error = answer
                .as_ref()
                .and_then(Message::error_message)
                .map(str::to_owned);
        }
        // The request event comes before what handling it caused.
        self.events.insert(
            before,
            SimEvent::Request {
                command: command_name(code, true),
                from: from.clone(),
                session_id: request.session_id().map(str::to_owned),
                result,
                install: event.install,
                remove: event.remove,
                policies: event.policies,
                record_type: event.record_type,
                dropped: answer.is_none(),
                error: event.error,
            },
        );
        if code != command::SESSION_RESYNC
            && let Some(active) = &self.active_sae
            && !active.eq_ignore_ascii_case(&from)
            && self.srq_in_flight.as_deref() != Some(via)
        {
            self.srq_to(via, SrqReason::DifferentSae);
        }
        answer
    }

    fn answer(&self, request: &Message, code: u32) -> Message {
        let mut a = Message::answer_to(request);
        a.set_result_code(code);
        a.push_origin(&self.cfg.origin_host, &self.cfg.origin_realm);
        a
    }

    fn live_session(&self, request: &Message) -> Option<String> {
        let sid = request.session_id()?;
        self.sessions
            .get(sid)
            .filter(|s| s.ending.is_none())
            .map(|s| s.id.clone())
    }

    fn ppr(
        &mut self,
        now: Instant,
        via: &str,
        request: &Message,
        event: &mut RequestEvent,
    ) -> Option<Message> {
        let installs = request.policy_installs();
        let removes = request.policy_removes();
        event.install = Some(
            installs
                .as_ref()
                .map(|l| l.iter().map(|p| p.policy_name.clone()).collect())
                .unwrap_or_default(),
        );
        event.remove = Some(removes.as_ref().cloned().unwrap_or_default());
        let (installs, removes) = match (installs, removes) {
            (Ok(i), Ok(r)) => (i, r),
            (Err(e), _) | (_, Err(e)) => {
                let mut a = self.answer(request, result::INVALID_AVP_VALUE);
                a.push(jsrc::error_message(&format!("bad policy AVP: {e}")));
                return Some(a);
            }
        };
        let Some(sid) = self.live_session(request) else {
            return Some(self.answer(request, result::UNKNOWN_SESSION_ID));
        };
        if installs
            .iter()
            .any(|p| self.drop_ppr.iter().any(|(_, g)| g.matches(&p.policy_name)))
        {
            return None;
        }
        if let Some((p, glob)) = installs.iter().find_map(|p| {
            self.fail_ppr
                .iter()
                .find(|(_, g)| g.matches(&p.policy_name))
                .map(|(glob, _)| (p.policy_name.clone(), glob.clone()))
        }) {
            let mut a = self.answer(request, result::UNABLE_TO_COMPLY);
            a.push(jsrc::error_message(&format!(
                "policy {p} refused (--fail-ppr {glob})"
            )));
            return Some(a);
        }
        let mut stop = Vec::new();
        if let Some(s) = self.sessions.get_mut(&sid) {
            s.last_activity = now;
            for name in &removes {
                if s.policies
                    .get(name)
                    .is_some_and(|p| p.accounting() && p.acct_started)
                {
                    stop.push(name.clone());
                }
            }
        }
        // ACR STOP reads the counters of the policies before they go.
        if !stop.is_empty() {
            self.send_acr(now, &sid, AcctType::Stop, &stop, via);
        }
        if let Some(s) = self.sessions.get_mut(&sid) {
            for name in &removes {
                s.policies.remove(name);
            }
        }
        let start = self.install(now, &sid, installs);
        if !start.is_empty() {
            self.send_acr(now, &sid, AcctType::Start, &start, via);
        }
        Some(self.answer(request, result::SUCCESS))
    }

    fn asr(&mut self, now: Instant, via: &str, request: &Message) -> Message {
        let Some(sid) = self.live_session(request) else {
            return self.answer(request, result::UNKNOWN_SESSION_ID);
        };
        self.end_session(now, &sid, CAUSE_ADMINISTRATIVE, via);
        self.answer(request, result::SUCCESS)
    }

    fn acr(&mut self, now: Instant, request: &Message, event: &mut RequestEvent) -> Message {
        event.record_type = request.accounting_record_type();
        let mut answer = match self.live_session(request) {
            None => self.answer(request, result::UNKNOWN_SESSION_ID),
            Some(sid) => match request.acct_records() {
                Err(e) => {
                    event.error = Some(format!("bad Juniper-Acct-Record: {e}"));
                    self.answer(request, result::INVALID_AVP_VALUE)
                }
                Ok(asked) => {
                    let mut a = self.answer(request, result::SUCCESS);
                    let mut reported = Vec::new();
                    if let Some(s) = self.sessions.get(&sid) {
                        let names: Vec<String> = if asked.is_empty() {
                            s.policies.keys().cloned().collect()
                        } else {
                            asked.into_iter().map(|r| r.policy_name).collect()
                        };
                        for name in names {
                            if let Some(p) = s.policies.get(&name) {
                                a.push(p.usage(now).to_avp());
                                reported.push(name);
                            }
                        }
                    }
                    event.policies = Some(reported);
                    a
                }
            },
        };
        for code in [avp::ACCOUNTING_RECORD_TYPE, avp::ACCOUNTING_RECORD_NUMBER] {
            if let Some(a) = request.find(code, 0) {
                answer.push(a.clone());
            }
        }
        answer
    }

    fn srq_received(&mut self, via: &str, from: &str, request: &Message) -> Message {
        let mut srr = self.answer(request, result::SUCCESS);
        srr.push(Avp::mandatory(
            avp::AUTH_APPLICATION_ID,
            &Value::Unsigned32(self.cfg.application),
        ));
        self.set_active(from);
        if self.srq_in_flight.as_deref() == Some(via) {
            // The SAE synchronizes anyway: our SRQ's replay would only repeat this one.
            self.srq_in_flight = None;
        }
        self.replay_all(via);
        self.release_held(via);
        srr
    }
}

/// Command-specific details of a `request` event.
#[derive(Debug, Default)]
struct RequestEvent {
    install: Option<Vec<String>>,
    remove: Option<Vec<String>>,
    policies: Option<Vec<String>>,
    record_type: Option<i32>,
    error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use sae_diameter::codes::app;

    const SAE1: &str = "sae-1.sae.localdomain";
    const SAE2: &str = "sae-2.sae.localdomain";

    fn router(confirm: bool) -> RouterState {
        let mut cfg = RouterConfig::new("rtr.test.realm", "test.realm", app::JSRC);
        cfg.confirm = confirm;
        cfg.session_id_high = 7;
        let mut r = RouterState::new(cfg);
        r.sae_up(SAE1, "sae.localdomain");
        r
    }

    fn spec(user: &str) -> LoginSpec {
        LoginSpec {
            user: user.into(),
            ip: Ipv4Addr::new(10, 0, 0, 1),
            nas_port_id: "ge-0/0/0.1".into(),
            n: Some(1),
        }
    }

    fn events(r: &mut RouterState) -> Vec<SimEvent> {
        std::iter::from_fn(|| r.poll_event()).collect()
    }

    fn outgoing(r: &mut RouterState) -> Vec<Outgoing> {
        std::iter::from_fn(|| r.poll_outgoing()).collect()
    }

    fn install(name: &str, acct: bool) -> PolicyInstall {
        PolicyInstall {
            policy_name: name.into(),
            definition: None,
            collect_accounting: acct,
        }
    }

    fn answer_to(req: &Message, from: &str, code: u32) -> Message {
        let mut a = Message::answer_to(req);
        a.set_result_code(code);
        a.push_origin(from, "sae.localdomain");
        a
    }

    /// Logs `user` in through SAE1; the AAA installs `policies`. Returns the Session-Id.
    fn logged_in(
        r: &mut RouterState,
        now: Instant,
        user: &str,
        policies: &[(&str, bool)],
    ) -> String {
        r.login(now, spec(user));
        let aar = outgoing(r).pop().expect("AAR");
        let mut aaa = answer_to(&aar.request, SAE1, 2001);
        for (name, acct) in policies {
            aaa.push(install(name, *acct).to_avp());
        }
        r.handle_answer(now, aar.token, Ok(aaa));
        let sid = r.session_of(user).expect("session").to_owned();
        events(r);
        // ACR STARTs answered
        for o in outgoing(r) {
            let a = answer_to(&o.request, SAE1, 2001);
            r.handle_answer(now, o.token, Ok(a));
        }
        events(r);
        sid
    }

    fn ppr(from: &str, sid: &str, installs: &[(&str, bool)], removes: &[&str]) -> Message {
        let mut m = Message::request(command::PUSH_PROFILE, app::JSRC, true);
        m.push(utf8(avp::SESSION_ID, sid));
        m.push_origin(from, "sae.localdomain");
        for (n, a) in installs {
            m.push(install(n, *a).to_avp());
        }
        for n in removes {
            m.push(jsrc::policy_remove(n));
        }
        m
    }

    fn sae_request(code: u32, from: &str, sid: Option<&str>) -> Message {
        let mut m = Message::request(code, app::JSRC, true);
        if let Some(sid) = sid {
            m.push(utf8(avp::SESSION_ID, sid));
        }
        m.push_origin(from, "sae.localdomain");
        m
    }

    fn acct_records(m: &Message) -> Vec<AcctRecord> {
        m.acct_records().unwrap()
    }

    #[test]
    fn login_sends_aar_and_keeps_the_session_on_2001() {
        let now = Instant::now();
        let mut r = router(true);
        r.login(now, spec("alice"));
        let out = outgoing(&mut r);
        assert_eq!(out.len(), 1);
        let aar = &out[0].request;
        assert_eq!(out[0].to, SAE1);
        assert_eq!(aar.header.command_code, command::AA);
        assert_eq!(aar.header.application_id, app::JSRC);
        let sid = aar.session_id().unwrap().to_owned();
        assert_eq!(sid, "rtr.test.realm;7;1;1");
        assert_eq!(aar.user_name(), Some("alice"));
        assert_eq!(aar.framed_ip(), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(aar.nas_port_id(), Some("ge-0/0/0.1"));
        assert_eq!(aar.request_type(), Some(RequestType::AddressAuthorization));
        assert_eq!(aar.last_origin_host(), None, "no active SAE known yet");
        assert_eq!(
            aar.find(avp::DESTINATION_REALM, 0)
                .unwrap()
                .as_str()
                .unwrap(),
            "sae.localdomain"
        );
        assert!(r.session(&sid).is_none(), "not a session before the AAA");

        let mut aaa = answer_to(aar, SAE1, 2001);
        aaa.push(install("gold", true).to_avp());
        aaa.push(install("web", false).to_avp());
        r.handle_answer(now, out[0].token, Ok(aaa));
        let ev = events(&mut r);
        assert!(
            matches!(&ev[0], SimEvent::Login { policies, accounting, result: 2001, .. }
            if policies == &["gold", "web"] && accounting == &["gold"])
        );
        assert!(matches!(&ev[1], SimEvent::ActiveSae { sae, previous: None } if sae == SAE1));
        let s = r.session(&sid).unwrap();
        assert_eq!(s.policies.len(), 2);
        assert_eq!(r.active_sae(), Some(SAE1));

        // Confirmation (type 2, with the installed policies), then ACR START for "gold".
        let out = outgoing(&mut r);
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[0].request.request_type(),
            Some(RequestType::Provisioning)
        );
        assert_eq!(out[0].request.session_id(), Some(sid.as_str()));
        assert_eq!(out[0].request.last_origin_host(), Some(SAE1));
        assert_eq!(out[0].request.policy_installs().unwrap().len(), 2);
        assert_eq!(out[1].request.header.command_code, command::ACCOUNTING);
        assert_eq!(out[1].request.accounting_record_type(), Some(2));
        let recs = acct_records(&out[1].request);
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].policy_name, "gold");
        r.handle_answer(
            now,
            out[0].token,
            Ok(answer_to(&out[0].request, SAE1, 2001)),
        );
        assert!(matches!(
            &events(&mut r)[..],
            [SimEvent::Confirmed {
                result: Some(2001),
                ..
            }]
        ));
    }

    #[test]
    fn failed_login_keeps_no_session() {
        let now = Instant::now();
        let mut r = router(true);
        r.login(now, spec("bob"));
        let out = outgoing(&mut r);
        let aaa = answer_to(&out[0].request, SAE1, 5012);
        r.handle_answer(now, out[0].token, Ok(aaa));
        assert!(matches!(
            &events(&mut r)[..],
            [SimEvent::LoginFailed {
                result: Some(5012),
                ..
            }]
        ));
        assert_eq!(r.sessions().count(), 0);
        assert!(r.session_of("bob").is_none());
        assert!(
            outgoing(&mut r).is_empty(),
            "no confirmation after a failure"
        );

        // No answer at all, and an answer without Result-Code: failures, no panic.
        r.login(now, spec("bob"));
        let out = outgoing(&mut r);
        r.handle_answer(now, out[0].token, Err(RequestFailure::Timeout));
        assert!(
            matches!(&events(&mut r)[..], [SimEvent::LoginFailed { result: None, error: Some(e), .. }] if e == "timeout")
        );
        r.login(now, spec("bob"));
        let out = outgoing(&mut r);
        let mut bare = Message::answer_to(&out[0].request);
        bare.push_origin(SAE1, "x");
        r.handle_answer(now, out[0].token, Ok(bare));
        assert!(matches!(
            &events(&mut r)[..],
            [SimEvent::LoginFailed {
                result: None,
                error: Some(_),
                ..
            }]
        ));
        // An AAA for another Session-Id.
        r.login(now, spec("bob"));
        let out = outgoing(&mut r);
        let mut wrong = answer_to(&out[0].request, SAE1, 2001);
        wrong.avps[0] = utf8(avp::SESSION_ID, "other;1;2");
        r.handle_answer(now, out[0].token, Ok(wrong));
        assert!(matches!(
            &events(&mut r)[..],
            [SimEvent::LoginFailed {
                result: Some(2001),
                error: Some(_),
                ..
            }]
        ));
        assert_eq!(r.sessions().count(), 0);
    }

    #[test]
    fn ppr_installs_and_removes_policies() {
        let now = Instant::now();
        let mut r = router(false);
        let sid = logged_in(&mut r, now, "alice", &[("gold", true)]);
        let later = now + Duration::from_secs(10);
        let req = ppr(SAE1, &sid, &[("video", true), ("web", false)], &["gold"]);
        let ppa = r.handle_request(later, SAE1, &req).expect("answered");
        assert_eq!(ppa.result_code(), Some(2001));
        assert_eq!(ppa.session_id(), Some(sid.as_str()));
        assert_eq!(ppa.origin_host(), Some("rtr.test.realm"));
        assert!(!ppa.is_request());
        let s = r.session(&sid).unwrap();
        assert_eq!(s.policies.keys().collect::<Vec<_>>(), ["video", "web"]);
        assert_eq!(s.last_activity, later);
        let ev = events(&mut r);
        assert!(
            matches!(&ev[0], SimEvent::Request { command, from, result: Some(2001), install: Some(i), remove: Some(rm), .. }
            if command == "PPR" && from == SAE1 && i == &["video", "web"] && rm == &["gold"])
        );
        // STOP for the removed accounted policy (final counters), START for the new one.
        let out = outgoing(&mut r);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].request.accounting_record_type(), Some(4));
        let stop = acct_records(&out[0].request);
        assert_eq!(stop[0].policy_name, "gold");
        assert_eq!(stop[0].input_octets, Some(125_000));
        assert_eq!(out[1].request.accounting_record_type(), Some(2));
        assert_eq!(acct_records(&out[1].request)[0].policy_name, "video");
        // No SRQ: the PPR came from the active SAE.
        assert!(
            out.iter()
                .all(|o| o.request.header.command_code == command::ACCOUNTING)
        );
    }

    #[test]
    fn ppr_for_unknown_session_is_5002() {
        let now = Instant::now();
        let mut r = router(false);
        let ppa = r
            .handle_request(now, SAE1, &ppr(SAE1, "nobody;1;1", &[("gold", false)], &[]))
            .unwrap();
        assert_eq!(ppa.result_code(), Some(result::UNKNOWN_SESSION_ID));
        assert_eq!(ppa.session_id(), Some("nobody;1;1"));
        let ev = events(&mut r);
        assert!(matches!(
            &ev[0],
            SimEvent::Request {
                result: Some(5002),
                ..
            }
        ));
    }

    #[test]
    fn fail_and_drop_globs() {
        let now = Instant::now();
        let mut r = router(false);
        r.set_fail_ppr(vec!["bad-*".into()]);
        r.set_drop_ppr(vec!["slow?".into()]);
        let sid = logged_in(&mut r, now, "alice", &[]);
        let ppa = r
            .handle_request(
                now,
                SAE1,
                &ppr(SAE1, &sid, &[("ok", false), ("bad-1", false)], &[]),
            )
            .unwrap();
        assert_eq!(ppa.result_code(), Some(result::UNABLE_TO_COMPLY));
        assert!(ppa.error_message().unwrap().contains("bad-1"));
        assert!(
            r.session(&sid).unwrap().policies.is_empty(),
            "nothing applied"
        );

        let dropped = r.handle_request(now, SAE1, &ppr(SAE1, &sid, &[("slow1", false)], &[]));
        assert!(dropped.is_none());
        assert!(r.session(&sid).unwrap().policies.is_empty());
        let ev = events(&mut r);
        assert!(matches!(
            &ev.last().unwrap(),
            SimEvent::Request {
                result: None,
                dropped: true,
                ..
            }
        ));

        // Off again: installs.
        r.set_fail_ppr(vec![]);
        let ppa = r
            .handle_request(now, SAE1, &ppr(SAE1, &sid, &[("bad-1", false)], &[]))
            .unwrap();
        assert_eq!(ppa.result_code(), Some(2001));
        assert!(r.session(&sid).unwrap().policies.contains_key("bad-1"));
    }

    #[test]
    fn asr_answers_then_str_with_final_usage() {
        let now = Instant::now();
        let mut r = router(false);
        let sid = logged_in(&mut r, now, "alice", &[("gold", true), ("web", false)]);
        let later = now + Duration::from_secs(2);
        let asr = sae_request(command::ABORT_SESSION, SAE1, Some(&sid));
        let asa = r.handle_request(later, SAE1, &asr).unwrap();
        assert_eq!(asa.result_code(), Some(2001));
        assert_eq!(asa.session_id(), Some(sid.as_str()));
        let out = outgoing(&mut r);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].request.accounting_record_type(), Some(4), "ACR STOP");
        let str_ = &out[1].request;
        assert_eq!(str_.header.command_code, command::SESSION_TERMINATION);
        assert_eq!(str_.termination_cause(), Some(CAUSE_ADMINISTRATIVE));
        let recs = acct_records(str_);
        assert_eq!(recs.len(), 1, "one record per accounted policy");
        assert_eq!(recs[0].policy_name, "gold");
        assert_eq!(recs[0].input_octets, Some(25_000));
        assert_eq!(recs[0].output_octets, Some(100_000));
        // Ending: a second ASR or PPR is for an unknown session.
        assert_eq!(
            r.handle_request(later, SAE1, &asr).unwrap().result_code(),
            Some(5002)
        );
        // STA drops the session.
        r.handle_answer(later, out[1].token, Ok(answer_to(str_, SAE1, 2001)));
        assert!(r.session(&sid).is_none());
        assert!(r.session_of("alice").is_none());
        let ev = events(&mut r);
        assert!(matches!(
            ev.last().unwrap(),
            SimEvent::Logout {
                cause: 4,
                result: Some(2001),
                ..
            }
        ));
        // Unknown session.
        let asa = r
            .handle_request(
                later,
                SAE1,
                &sae_request(command::ABORT_SESSION, SAE1, Some("x;1;1")),
            )
            .unwrap();
        assert_eq!(asa.result_code(), Some(5002));
    }

    #[test]
    fn the_first_srqs_are_left_unanswered_when_asked() {
        let now = Instant::now();
        let mut cfg = RouterConfig::new("rtr.test.realm", "test.realm", app::JSRC);
        cfg.confirm = false;
        cfg.session_id_high = 7;
        cfg.drop_srq = 2;
        let mut r = RouterState::new(cfg);
        r.sae_up(SAE1, "sae.localdomain");
        r.sae_up(SAE2, "sae.localdomain");
        let alice = logged_in(&mut r, now, "alice", &[("gold", true)]);
        assert_eq!(r.active_sae(), Some(SAE1));
        let srq = sae_request(command::SESSION_RESYNC, SAE2, None);
        for left in [1, 0] {
            assert!(r.handle_request(now, SAE2, &srq).is_none(), "no SRR");
            assert_eq!(r.srq_to_drop(), left);
            let ev = events(&mut r);
            assert!(
                matches!(&ev[..], [SimEvent::Request { command, from, result: None, dropped: true, .. }]
                    if command == "SRQ" && from == SAE2),
                "{ev:?}"
            );
            assert!(outgoing(&mut r).is_empty(), "no replay");
            assert_eq!(
                r.active_sae(),
                Some(SAE1),
                "the dropped SRQ changes nothing"
            );
        }
        // The next one is answered, and the session replayed.
        let srr = r.handle_request(now, SAE2, &srq).expect("SRR");
        assert_eq!(srr.result_code(), Some(2001));
        assert_eq!(r.active_sae(), Some(SAE2));
        let out = outgoing(&mut r);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].request.session_id(), Some(alice.as_str()));
        assert_eq!(
            out[0].request.request_type(),
            Some(RequestType::Synchronization)
        );
        events(&mut r);
        // Asked for again while running.
        r.set_drop_srq(1);
        let srq1 = sae_request(command::SESSION_RESYNC, SAE1, None);
        assert!(r.handle_request(now, SAE1, &srq1).is_none());
        assert_eq!(r.active_sae(), Some(SAE2));
        assert!(outgoing(&mut r).is_empty());
        assert!(r.handle_request(now, SAE1, &srq1).is_some());
        assert_eq!(r.active_sae(), Some(SAE1));
    }

    #[test]
    fn srq_answers_srr_and_replays_every_session() {
        let now = Instant::now();
        let mut r = router(false);
        r.sae_up(SAE2, "sae.localdomain");
        let a = logged_in(&mut r, now, "alice", &[("gold", true), ("web", false)]);
        let b = logged_in(&mut r, now, "bob", &[]);
        let mut srq = sae_request(command::SESSION_RESYNC, SAE2, None);
        srq.push(identity(avp::DESTINATION_REALM, "test.realm"));
        let srr = r.handle_request(now, SAE2, &srq).unwrap();
        assert_eq!(srr.result_code(), Some(2001));
        assert!(srr.find(avp::AUTH_APPLICATION_ID, 0).is_some());
        assert_eq!(r.active_sae(), Some(SAE2));
        let ev = events(&mut r);
        assert!(
            matches!(&ev[0], SimEvent::Request { command, result: Some(2001), .. } if command == "SRQ")
        );
        assert!(
            matches!(&ev[1], SimEvent::ActiveSae { sae, previous: Some(p) } if sae == SAE2 && p == SAE1)
        );
        let out = outgoing(&mut r);
        assert_eq!(out.len(), 2, "one replay per session, no SRQ of ours");
        let mut sids = vec![];
        for o in &out {
            assert_eq!(o.to, SAE2);
            assert_eq!(o.request.request_type(), Some(RequestType::Synchronization));
            assert_eq!(o.request.last_origin_host(), Some(SAE2));
            sids.push(o.request.session_id().unwrap().to_owned());
        }
        let mut expected = vec![a.clone(), b];
        expected.sort();
        assert_eq!(sids, expected);
        let alice = out
            .iter()
            .find(|o| o.request.session_id() == Some(&a))
            .unwrap();
        let installs = alice.request.policy_installs().unwrap();
        assert_eq!(installs, vec![install("gold", true), install("web", false)]);
        for o in out {
            let aaa = answer_to(&o.request, SAE2, 2001);
            r.handle_answer(now, o.token, Ok(aaa));
        }
        let ev = events(&mut r);
        assert_eq!(ev.len(), 2);
        assert!(ev.iter().all(|e| matches!(
            e,
            SimEvent::Replayed {
                result: Some(2001),
                ..
            }
        )));
    }

    #[test]
    fn request_from_a_different_sae_triggers_srq_then_replay() {
        let now = Instant::now();
        let mut r = router(false);
        r.sae_up(SAE2, "sae.localdomain");
        let sid = logged_in(&mut r, now, "alice", &[("gold", false)]);
        assert_eq!(r.active_sae(), Some(SAE1));
        // A PPR from SAE2: answered, then an SRQ to SAE2 naming SAE1.
        let ppa = r
            .handle_request(now, SAE2, &ppr(SAE2, &sid, &[("silver", false)], &[]))
            .unwrap();
        assert_eq!(ppa.result_code(), Some(2001));
        let ev = events(&mut r);
        assert!(matches!(&ev[0], SimEvent::Request { from, .. } if from == SAE2));
        assert!(
            matches!(&ev[1], SimEvent::SrqSent { to, reason, last_origin_host: Some(l) }
            if to == SAE2 && reason == "different-sae" && l == SAE1)
        );
        let out = outgoing(&mut r);
        assert_eq!(out.len(), 1);
        let srq = &out[0].request;
        assert_eq!(srq.header.command_code, command::SESSION_RESYNC);
        assert_eq!(srq.last_origin_host(), Some(SAE1));
        assert_eq!(
            srq.find(avp::DESTINATION_HOST, 0)
                .unwrap()
                .as_str()
                .unwrap(),
            SAE2
        );
        // A second request from SAE2 while the SRQ is outstanding sends no second SRQ.
        r.handle_request(now, SAE2, &ppr(SAE2, &sid, &[], &["silver"]))
            .unwrap();
        assert!(outgoing(&mut r).is_empty());
        events(&mut r);
        // SRR 2001: SAE2 is active, and the session is replayed to it.
        r.handle_answer(now, out[0].token, Ok(answer_to(srq, SAE2, 2001)));
        assert_eq!(r.active_sae(), Some(SAE2));
        let ev = events(&mut r);
        assert!(matches!(&ev[0], SimEvent::ActiveSae { sae, .. } if sae == SAE2));
        assert!(matches!(
            &ev[1],
            SimEvent::SrqAnswered {
                result: Some(2001),
                sessions: 1,
                ..
            }
        ));
        let out = outgoing(&mut r);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].to, SAE2);
        assert_eq!(
            out[0].request.request_type(),
            Some(RequestType::Synchronization)
        );
        assert_eq!(
            out[0].request.policy_installs().unwrap(),
            vec![install("gold", false)]
        );
        // Now SAE2 is the remembered one: its requests trigger nothing, SAE1's would.
        r.handle_request(now, SAE2, &ppr(SAE2, &sid, &[], &[]))
            .unwrap();
        assert!(
            outgoing(&mut r)
                .iter()
                .all(|o| o.request.header.command_code != command::SESSION_RESYNC)
        );
        // An SRQ from a different SAE is not itself a trigger.
        r.handle_request(now, SAE1, &sae_request(command::SESSION_RESYNC, SAE1, None))
            .unwrap();
        assert!(
            outgoing(&mut r)
                .iter()
                .all(|o| o.request.header.command_code != command::SESSION_RESYNC)
        );
        assert_eq!(r.active_sae(), Some(SAE1));
    }

    #[test]
    fn inactivity_logout_follows_the_clock() {
        let now = Instant::now();
        let mut r = router(false);
        r.cfg.inactivity = Some(Duration::from_secs(1800));
        let sid = logged_in(&mut r, now, "alice", &[("gold", true)]);
        r.handle_timeout(now + Duration::from_secs(1799));
        assert!(outgoing(&mut r).is_empty());
        // Activity pushes the deadline.
        r.touch(now + Duration::from_secs(1000), "alice").unwrap();
        r.handle_timeout(now + Duration::from_secs(2000));
        assert!(outgoing(&mut r).is_empty());
        r.handle_timeout(now + Duration::from_secs(2800));
        let out = outgoing(&mut r);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].request.accounting_record_type(), Some(4));
        assert_eq!(out[1].request.termination_cause(), Some(CAUSE_IDLE_TIMEOUT));
        assert_eq!(acct_records(&out[1].request)[0].policy_name, "gold");
        assert!(r.session(&sid).unwrap().ending.is_some());
        // Not twice.
        r.handle_timeout(now + Duration::from_secs(4000));
        assert!(outgoing(&mut r).is_empty());
    }

    #[test]
    fn accounting_records_are_numbered_per_session() {
        let now = Instant::now();
        let mut r = router(false);
        r.cfg.interim = Some(Duration::from_secs(60));
        r.cfg.inactivity = None;
        r.login(now, spec("alice"));
        let aar = outgoing(&mut r).pop().unwrap();
        let mut aaa = answer_to(&aar.request, SAE1, 2001);
        aaa.push(install("gold", true).to_avp());
        r.handle_answer(now, aar.token, Ok(aaa));
        let number = |m: &Message| {
            m.find(avp::ACCOUNTING_RECORD_NUMBER, 0)
                .unwrap()
                .as_u32()
                .unwrap()
        };
        let start = outgoing(&mut r).pop().unwrap();
        assert_eq!(start.request.accounting_record_type(), Some(2));
        assert_eq!(number(&start.request), 0);
        r.handle_timeout(now + Duration::from_secs(59));
        assert!(outgoing(&mut r).is_empty());
        r.handle_timeout(now + Duration::from_secs(60));
        let interim = outgoing(&mut r).pop().unwrap();
        assert_eq!(interim.request.accounting_record_type(), Some(3));
        assert_eq!(number(&interim.request), 1);
        let recs = acct_records(&interim.request);
        assert_eq!(recs[0].input_octets, Some(750_000));
        assert_eq!(recs[0].input_packets, Some(1875));
        r.handle_timeout(now + Duration::from_secs(120));
        let interim2 = outgoing(&mut r).pop().unwrap();
        assert_eq!(number(&interim2.request), 2);
        r.account(now + Duration::from_secs(121), "alice", AcctType::Stop)
            .unwrap();
        let stop = outgoing(&mut r).pop().unwrap();
        assert_eq!(stop.request.accounting_record_type(), Some(4));
        assert_eq!(number(&stop.request), 3);
        // Stopped: no more interims.
        r.handle_timeout(now + Duration::from_secs(500));
        assert!(outgoing(&mut r).is_empty());
        r.handle_answer(now, stop.token, Ok(answer_to(&stop.request, SAE1, 2001)));
        assert!(events(&mut r).iter().any(|e| matches!(e, SimEvent::Acct { kind, record_number: 3, result: Some(2001), .. } if kind == "stop")));
    }

    #[test]
    fn acr_from_the_sae_reports_counters() {
        let now = Instant::now();
        let mut r = router(false);
        let sid = logged_in(&mut r, now, "alice", &[("gold", true), ("web", false)]);
        let mut acr = sae_request(command::ACCOUNTING, SAE1, Some(&sid));
        acr.push(Avp::mandatory(
            avp::ACCOUNTING_RECORD_TYPE,
            &Value::Enumerated(1),
        ));
        acr.push(Avp::mandatory(
            avp::ACCOUNTING_RECORD_NUMBER,
            &Value::Unsigned32(9),
        ));
        acr.push(
            AcctRecord {
                policy_name: "web".into(),
                ..Default::default()
            }
            .to_avp(),
        );
        let aca = r
            .handle_request(now + Duration::from_secs(1), SAE1, &acr)
            .unwrap();
        assert_eq!(aca.result_code(), Some(2001));
        assert_eq!(aca.accounting_record_type(), Some(1));
        assert_eq!(
            aca.find(avp::ACCOUNTING_RECORD_NUMBER, 0)
                .unwrap()
                .as_u32()
                .unwrap(),
            9
        );
        let recs = aca.acct_records().unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].policy_name, "web");
        assert_eq!(recs[0].output_octets, Some(50_000));
        // None named: every policy.
        acr.avps
            .retain(|a| !a.is(juniper::ACCT_RECORD, vendor::JUNIPER));
        let aca = r.handle_request(now, SAE1, &acr).unwrap();
        assert_eq!(aca.acct_records().unwrap().len(), 2);
        // Unknown session: 5002, fields echoed.
        acr.avps[0] = utf8(avp::SESSION_ID, "nope;1;1");
        let aca = r.handle_request(now, SAE1, &acr).unwrap();
        assert_eq!(aca.result_code(), Some(5002));
        assert_eq!(aca.accounting_record_type(), Some(1));
    }

    #[test]
    fn logout_and_unsupported_requests() {
        let now = Instant::now();
        let mut r = router(false);
        let sid = logged_in(&mut r, now, "alice", &[]);
        assert!(r.logout(now, "nobody", CAUSE_LOGOUT).is_err());
        r.logout(now, "alice", CAUSE_LOGOUT).unwrap();
        let out = outgoing(&mut r);
        assert_eq!(out.len(), 1, "no ACR STOP without accounting");
        assert_eq!(out[0].request.termination_cause(), Some(1));
        assert!(acct_records(&out[0].request).is_empty());
        assert!(r.logout(now, &sid, CAUSE_LOGOUT).is_err(), "already ending");
        // No STA (timeout): the session is gone anyway.
        r.handle_answer(now, out[0].token, Err(RequestFailure::Timeout));
        assert!(r.session(&sid).is_none());
        // An STR sent to the router: 3001 with the E bit.
        let a = r
            .handle_request(
                now,
                SAE1,
                &sae_request(command::SESSION_TERMINATION, SAE1, Some(&sid)),
            )
            .unwrap();
        assert_eq!(a.result_code(), Some(result::COMMAND_UNSUPPORTED));
        assert!(a.header.flags.is_error());
    }

    #[test]
    fn str_unchecked_leaves_the_table_alone() {
        let now = Instant::now();
        let mut r = router(false);
        let sid = logged_in(&mut r, now, "alice", &[]);
        r.str_unchecked("gone;1;2;3").unwrap();
        let out = outgoing(&mut r);
        assert_eq!(out[0].request.session_id(), Some("gone;1;2;3"));
        assert_eq!(out[0].request.termination_cause(), Some(CAUSE_LOGOUT));
        r.handle_answer(
            now,
            out[0].token,
            Ok(answer_to(&out[0].request, SAE1, 5002)),
        );
        assert!(matches!(
            &events(&mut r)[..],
            [SimEvent::Logout {
                result: Some(5002),
                ..
            }]
        ));
        assert!(r.session(&sid).is_some());
    }

    #[test]
    fn router_srq_replays_after_srr_and_not_after_a_refusal() {
        let now = Instant::now();
        let mut r = router(false);
        logged_in(&mut r, now, "alice", &[]);
        r.send_srq(SrqReason::Control).unwrap();
        let out = outgoing(&mut r);
        assert_eq!(out[0].request.last_origin_host(), Some(SAE1));
        r.handle_answer(
            now,
            out[0].token,
            Ok(answer_to(&out[0].request, SAE1, 5012)),
        );
        assert!(outgoing(&mut r).is_empty());
        let ev = events(&mut r);
        assert!(matches!(
            &ev[1],
            SimEvent::SrqAnswered {
                result: Some(5012),
                sessions: 0,
                ..
            }
        ));
        r.send_srq(SrqReason::Control).unwrap();
        let out = outgoing(&mut r);
        r.handle_answer(
            now,
            out[0].token,
            Ok(answer_to(&out[0].request, SAE1, 2001)),
        );
        assert_eq!(outgoing(&mut r).len(), 1);
    }

    #[test]
    fn no_sae_connection_fails_logins_without_panicking() {
        let now = Instant::now();
        let mut r = router(false);
        r.sae_down(SAE1);
        r.login(now, spec("alice"));
        assert!(outgoing(&mut r).is_empty());
        assert!(matches!(
            &events(&mut r)[..],
            [SimEvent::LoginFailed { error: Some(_), .. }]
        ));
        assert!(r.send_srq(SrqReason::Control).is_err());
        // Answers for unknown tokens are ignored.
        r.handle_answer(now, 999, Err(RequestFailure::ConnectionClosed));
    }

    // ------------------------------------------------------------- cluster: redirects

    /// An answer refusing `req`: 3006 naming `to` in a Redirect-Host (DiameterURI), or 3004.
    fn refusal(req: &Message, from: &str, code: u32, to: Option<&str>) -> Message {
        let mut a = answer_to(req, from, code);
        if let Some(to) = to {
            a.push(Avp::mandatory(
                avp::REDIRECT_HOST,
                &Value::DiameterUri(format!("aaa://{to}:3868;transport=tcp")),
            ));
        }
        a
    }

    fn srq_from(r: &mut RouterState, now: Instant, sae: &str) {
        let srr = r
            .handle_request(now, sae, &sae_request(command::SESSION_RESYNC, sae, None))
            .unwrap();
        assert_eq!(srr.result_code(), Some(2001));
    }

    fn realm_of(m: &Message) -> &str {
        m.find(avp::DESTINATION_REALM, 0).unwrap().as_str().unwrap()
    }

    #[test]
    fn redirect_host_uris_name_hosts() {
        assert_eq!(
            uri_host("aaa://sae-2.sae.localdomain:3868"),
            "sae-2.sae.localdomain"
        );
        assert_eq!(uri_host("aaas://sae-2;transport=tcp"), "sae-2");
        assert_eq!(uri_host("aaa://sae-2/x"), "sae-2");
        assert_eq!(uri_host("sae-2.sae.localdomain"), "sae-2.sae.localdomain");
    }

    #[test]
    fn a_3006_sends_the_login_to_the_connected_owner() {
        let now = Instant::now();
        let mut r = router(true);
        r.sae_up(SAE2, "other.realm");
        r.login(now, spec("alice"));
        let out = outgoing(&mut r);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].to, SAE1, "no SRQ yet: the first connected SAE");
        let sid = out[0].request.session_id().unwrap().to_owned();
        let redirect = refusal(&out[0].request, SAE1, 3006, Some("SAE-2.sae.localdomain"));
        assert!(redirect.header.flags.is_error(), "3006 has the E bit");
        r.handle_answer(now, out[0].token, Ok(redirect));
        let ev = events(&mut r);
        assert!(
            matches!(&ev[..], [SimEvent::Redirected { command, session_id: Some(s), from, to: Some(to), result: Some(3006), redirect_host: Some(h), attempt: 1, .. }]
            if command == "AAR" && *s == sid && from == SAE1 && to == SAE2 && h == "SAE-2.sae.localdomain"),
            "{ev:?}"
        );
        assert!(r.session(&sid).is_none());
        assert_eq!(
            r.session_of("alice"),
            Some(sid.as_str()),
            "still logging in"
        );
        // The same AAR, now for SAE2 (its realm).
        let out = outgoing(&mut r);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].to, SAE2);
        assert_eq!(out[0].request.session_id(), Some(sid.as_str()));
        assert_eq!(
            out[0].request.request_type(),
            Some(RequestType::AddressAuthorization)
        );
        assert_eq!(realm_of(&out[0].request), "other.realm");
        let mut aaa = answer_to(&out[0].request, SAE2, 2001);
        aaa.push(install("gold", true).to_avp());
        r.handle_answer(now, out[0].token, Ok(aaa));
        let ev = events(&mut r);
        assert!(
            matches!(&ev[0], SimEvent::Login { sae, session_id, .. } if sae == SAE2 && *session_id == sid)
        );
        assert_eq!(r.active_sae(), Some(SAE2));
        // Confirmation and ACR START follow the login to SAE2. The ACR is redirected too.
        let out = outgoing(&mut r);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|o| o.to == SAE2));
        r.handle_answer(
            now,
            out[1].token,
            Ok(refusal(&out[1].request, SAE2, 3006, Some(SAE1))),
        );
        let again = outgoing(&mut r);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].to, SAE1);
        assert_eq!(again[0].request.accounting_record_type(), Some(2));
        r.handle_answer(
            now,
            again[0].token,
            Ok(answer_to(&again[0].request, SAE1, 2001)),
        );
        let ev = events(&mut r);
        assert!(matches!(&ev[0], SimEvent::Redirected { command, .. } if command == "ACR"));
        assert!(
            matches!(&ev[1], SimEvent::Acct { sae, result: Some(2001), record_number: 0, .. } if sae == SAE1)
        );
        // A redirect to an SAE that is not connected holds the request.
        r.handle_answer(
            now,
            out[0].token,
            Ok(refusal(&out[0].request, SAE2, 3006, Some("sae-9.nowhere"))),
        );
        assert!(outgoing(&mut r).is_empty());
        assert_eq!(r.held_requests(), 1);
        assert!(matches!(
            &events(&mut r)[..],
            [SimEvent::Redirected { to: None, .. }]
        ));
    }

    #[test]
    fn a_3004_is_held_until_an_srq_then_sent_to_its_sender() {
        let now = Instant::now();
        let mut r = router(true);
        r.sae_up(SAE2, "sae.localdomain");
        r.login(now, spec("alice"));
        let aar = outgoing(&mut r).pop().unwrap();
        let sid = aar.request.session_id().unwrap().to_owned();
        r.handle_answer(now, aar.token, Ok(refusal(&aar.request, SAE1, 3004, None)));
        assert!(
            matches!(&events(&mut r)[..], [SimEvent::Redirected { from, to: None, result: Some(3004), attempt: 1, .. }] if from == SAE1)
        );
        assert!(outgoing(&mut r).is_empty(), "held");
        assert_eq!(r.pending_requests(), 1);
        // Before its back-off ends nothing is sent.
        r.handle_timeout(now + Duration::from_millis(100));
        assert!(outgoing(&mut r).is_empty());
        // SAE2 takes the router over: SRQ → SRR, then the held AAR goes to SAE2.
        srq_from(&mut r, now, SAE2);
        let ev = events(&mut r);
        assert!(matches!(&ev[0], SimEvent::Request { command, .. } if command == "SRQ"));
        assert!(matches!(&ev[1], SimEvent::ActiveSae { sae, .. } if sae == SAE2));
        assert!(
            matches!(&ev[2], SimEvent::Resent { to, reason, attempt: 2, .. } if to == SAE2 && reason == "srq")
        );
        let out = outgoing(&mut r);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].to, SAE2);
        assert_eq!(out[0].request.session_id(), Some(sid.as_str()));
        assert_eq!(
            out[0].request.request_type(),
            Some(RequestType::AddressAuthorization)
        );
        r.handle_answer(
            now,
            out[0].token,
            Ok(answer_to(&out[0].request, SAE2, 2001)),
        );
        assert!(matches!(&events(&mut r)[..], [SimEvent::Login { sae, .. }] if sae == SAE2));
        assert!(r.session(&sid).is_some());
        assert_eq!(r.held_requests(), 0);

        // Without an SRQ, the back-off sends it to the active SAE anyway.
        r.login(now, spec("bob"));
        let aar = outgoing(&mut r).pop().unwrap();
        assert_eq!(aar.to, SAE2);
        r.handle_answer(now, aar.token, Ok(refusal(&aar.request, SAE2, 3004, None)));
        events(&mut r);
        r.handle_timeout(now + DEFAULT_RETRY_BACKOFF);
        let out = outgoing(&mut r);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].to, SAE2);
        assert!(
            matches!(&events(&mut r)[..], [SimEvent::Resent { reason, attempt: 2, .. }] if reason == "backoff")
        );
    }

    #[test]
    fn a_held_router_srq_is_superseded_by_the_owner_srq() {
        let now = Instant::now();
        let mut r = router(false);
        r.sae_up(SAE2, "sae.localdomain");
        r.send_srq(SrqReason::Startup).unwrap();
        let srq = outgoing(&mut r).pop().unwrap();
        assert_eq!(srq.to, SAE1);
        r.handle_answer(
            now,
            srq.token,
            Ok(refusal(&srq.request, SAE1, 3006, Some("sae-3"))),
        );
        assert!(outgoing(&mut r).is_empty());
        events(&mut r);
        srq_from(&mut r, now, SAE2);
        let ev = events(&mut r);
        assert!(
            ev.iter().any(|e| matches!(e, SimEvent::SrqAnswered { reason, sae, error: Some(_), .. } if reason == "startup" && sae == SAE2)),
            "{ev:?}"
        );
        assert_eq!(r.held_requests(), 0);
        assert!(
            outgoing(&mut r).is_empty(),
            "nothing to replay, SRQ not re-sent"
        );
    }

    #[test]
    fn the_retry_bound_fails_the_login() {
        let now = Instant::now();
        let mut r = router(false);
        r.cfg.max_attempts = 4;
        r.sae_up(SAE2, "sae.localdomain");
        r.login(now, spec("alice"));
        let mut o = outgoing(&mut r).pop().unwrap();
        // Two SAEs that keep naming each other: at once twice, then with back-off.
        let mut redirects = 0;
        loop {
            let other = if o.to == SAE1 { SAE2 } else { SAE1 };
            r.handle_answer(
                now,
                o.token,
                Ok(refusal(&o.request, &o.to, 3006, Some(other))),
            );
            let ev = events(&mut r);
            if let [SimEvent::LoginFailed { result, sae, .. }] = &ev[..] {
                assert_eq!(*result, Some(3006));
                assert_eq!(sae.as_deref(), Some(o.to.as_str()));
                break;
            }
            redirects += 1;
            assert!(redirects < 10, "unbounded: {ev:?}");
            o = match outgoing(&mut r).pop() {
                Some(o) => o,
                None => {
                    r.handle_timeout(now + Duration::from_secs(60));
                    assert!(matches!(&events(&mut r)[..], [SimEvent::Resent { .. }]));
                    outgoing(&mut r).pop().expect("sent after the back-off")
                }
            };
        }
        assert_eq!(
            redirects, 3,
            "4 attempts: 3 redirects followed, the 4th answer reported"
        );
        assert!(r.session_of("alice").is_none());
        assert_eq!(r.sessions().count(), 0);
        assert_eq!(r.pending_requests(), 0);
    }

    #[test]
    fn a_request_sent_but_never_answered_goes_again_with_the_t_bit_and_its_end_to_end_id() {
        let now = Instant::now();
        let mut r = router(false);
        r.cfg.retry_failures = true;
        r.login(now, spec("alice"));
        let first = outgoing(&mut r).pop().unwrap();
        assert!(!first.request.header.flags.is_retransmit());
        assert_ne!(first.request.header.end_to_end, 0);
        r.handle_answer(now, first.token, Err(RequestFailure::Timeout));
        r.handle_timeout(now + Duration::from_secs(60));
        let again = outgoing(&mut r).pop().expect("re-sent after the back-off");
        assert!(again.request.header.flags.is_retransmit(), "T bit");
        assert_eq!(
            again.request.header.end_to_end,
            first.request.header.end_to_end
        );
        // A new request has a new End-to-End Identifier and no T bit.
        r.login(now, spec("bob"));
        let bob = outgoing(&mut r).pop().unwrap();
        assert!(!bob.request.header.flags.is_retransmit());
        assert_ne!(
            bob.request.header.end_to_end,
            first.request.header.end_to_end
        );
    }

    #[test]
    fn failures_retry_only_when_asked_and_replays_never() {
        let now = Instant::now();
        let mut r = router(false);
        r.login(now, spec("alice"));
        let aar = outgoing(&mut r).pop().unwrap();
        r.handle_answer(now, aar.token, Err(RequestFailure::Timeout));
        assert!(matches!(
            &events(&mut r)[..],
            [SimEvent::LoginFailed { .. }]
        ));

        r.cfg.retry_failures = true;
        r.login(now, spec("bob"));
        let aar = outgoing(&mut r).pop().unwrap();
        r.handle_answer(now, aar.token, Err(RequestFailure::ConnectionClosed));
        assert!(
            matches!(&events(&mut r)[..], [SimEvent::Redirected { result: None, error: Some(e), to: None, .. }] if e == "connection-closed")
        );
        // No SAE left: the back-off passes without a send, then the router gives up.
        r.sae_down(SAE1);
        r.handle_timeout(now + Duration::from_secs(60));
        assert!(outgoing(&mut r).is_empty());
        assert_eq!(r.held_requests(), 1);
        r.abandon_held(now);
        assert!(
            matches!(&events(&mut r)[..], [SimEvent::LoginFailed { user, error: Some(_), .. }] if user == "bob")
        );
        assert_eq!(r.pending_requests(), 0);

        // A replay refused with 3006 is reported, not re-sent.
        let mut r = router(false);
        logged_in(&mut r, now, "carol", &[]);
        srq_from(&mut r, now, SAE1);
        let replay = outgoing(&mut r).pop().unwrap();
        r.handle_answer(
            now,
            replay.token,
            Ok(refusal(&replay.request, SAE1, 3006, Some(SAE1))),
        );
        assert!(outgoing(&mut r).is_empty());
        assert!(events(&mut r).iter().any(|e| matches!(
            e,
            SimEvent::Replayed {
                result: Some(3006),
                ..
            }
        )));
    }
}
