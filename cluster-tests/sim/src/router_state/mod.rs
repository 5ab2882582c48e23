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
//!
//! The code is split by job: this file holds the router's configuration, its table and the
//! messages every request starts from; `sessions` the router's own actions on its table
//! (login, logout, accounting, SRQ and replays, timers) and what their answers change;
//! `outgoing` the requests in flight (sending, re-addressing, and the retry of refused or
//! failed ones: redirect, hold, back-off); `answers` its answers to the SAE's requests (PPR,
//! ASR, ACR, SRQ).

mod answers;
mod outgoing;
mod sessions;
#[cfg(test)]
mod test_support;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sae_diameter::codes::{avp, command, result};
use sae_diameter::jsrc::{self, AcctRecord, PolicyInstall, RequestType};
use sae_diameter::peer::{EndToEndIds, RequestFailure};
use sae_diameter::{Avp, Message, Value};
use wildmatch::WildMatch;

use crate::events::SimEvent;
use outgoing::{Held, InFlight};
pub use outgoing::{redirect_hosts, uri_host};

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
}
