//! The COPS-PR subscriber-provisioning PEP role of `sae-sim copspr` (an ERX-style router),
//! sans-IO: the subscriber interface table, installed policies and RFC 3483 usage feedback.
//!
//! - Login: a REQ per subscriber interface with one [`SubscriberInterface`] in a named ClientSI
//!   (a login while down waits for the connection). DEC Install with [`PolicyInstance`]s
//!   installs them and is answered by RPT success, or RPT failure with a CPERR per policy whose
//!   name matches a `--fail-policy` glob (those are not installed). DEC Remove (or a DEC Error)
//!   refuses the subscriber; the state is deleted with DRQ.
//! - Usage (RFC 3483): the PDP's usage policies in the install decision are honoured: per
//!   [`Linkage`] (with its [`SelectionCriteria`] and optional [`Threshold`] from the same DEC)
//!   every installed policy the selection selects gets a [`ReportSchedule`] following the
//!   linkage (interval count, threshold, report-on-change, clear-on-report) inside the
//!   subscriber's [`ContextSchedule`]. A DEC with accounted policies but no Linkage falls back
//!   to a local linkage per accounted policy (`LINKAGE_ENTRY.<policy id>`, one Accounting Timer
//!   interval, cumulative counters). Every scheduled policy counts synthetic octets
//!   (`--usage-octets-per-s`, packets = octets / 1000); unsolicited accounting RPTs
//!   ([`TrafficUsage`], `linkage` = the linkage PRID, `selected` = the PolicyInstance PRID)
//!   come as the schedules say, never more often than the CAT Accounting Timer, never with
//!   timer 0.
//! - FeedbackAction in an unsolicited DEC: solicit (solicited RPT at once), suspend/resume
//!   reporting, suspend/resume monitoring (with the report the PDP asks for on suspension);
//!   a target (a linkage PRID) limits it to that linkage's schedules, none means all.
//! - Logout: the final accounting RPT, then DRQ (RFC 3483 §9); a logout while down is sent
//!   after reconnecting. A DEC Remove of an installed subscriber does the same (by the PDP);
//!   a named DEC Remove of some policies reports their final usage and RPT success.
//! - Failover (RFC 3483 §10): counting goes on while disconnected; after the next CAT every
//!   installed subscriber's cached usage is reported (trigger `reconnected`) and the schedule
//!   restarts with the new timer; REQs that got no DEC are re-sent. SSQ: RPT success again for
//!   installed subscribers, REQ for waiting ones, then SSC.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sae_cops::message::DecisionContent;
use sae_cops::object::{
    ClientSi, Command, Context, ErrorCode, Handle, Reason, ReasonCode, ReportType,
};
use sae_cops::pep::PepConnection;
use sae_cops::pib::{POLICY_ENTRY, PolicyInstance, SubscriberInterface};
use sae_cops::pr::{
    AccountingReport, ClassReport, Cperr, CperrCode, OutcomeReport, Prid, RemoveTarget,
    RequestClientSi, decode_install_decision, decode_remove_decision, encode_accounting_report,
    encode_outcome_report, encode_request_client_si,
};
use sae_cops::usage::{
    ActionKind, ContextSchedule, FeedbackAction, LINKAGE_ENTRY, Linkage, ReportSchedule,
    ReportTrigger, SelectionCriteria, TRAFFIC_USAGE_ENTRY, Threshold, TrafficUsage, Usage,
    UsageClass, UsageReport,
};

use crate::cops_driver::{Directive, PepRole};
use crate::cops_events::{CopsEvent, handle_hex};

/// How generated subscriber interfaces look; `{n}` stands for the number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrTemplates {
    pub if_name: String,
    pub user: String,
    /// Interface `n` gets this address plus `n`.
    pub ip_base: Ipv4Addr,
}

impl Default for PrTemplates {
    fn default() -> Self {
        PrTemplates {
            if_name: "fastEthernet 3/0.{n}".into(),
            user: "user{n}@example.net".into(),
            ip_base: Ipv4Addr::new(10, 2, 0, 1),
        }
    }
}

impl PrTemplates {
    fn if_name(&self, n: u64) -> String {
        self.if_name.replace("{n}", &n.to_string())
    }
    fn user(&self, n: u64) -> String {
        self.user.replace("{n}", &n.to_string())
    }
    fn ip(&self, n: u64) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.ip_base).wrapping_add(n as u32))
    }
}

/// How the router behaves.
#[derive(Debug, Clone)]
pub struct PrConfig {
    pub templates: PrTemplates,
    /// Interfaces `first .. first + subscribers` log in from the first CAT.
    pub subscribers: u64,
    /// Number of the first generated interface.
    pub first: u64,
    /// Logins per second (0: all at once).
    pub rate: f64,
    /// Policy names (globs) whose installation fails.
    pub fail_policy: Vec<String>,
    /// Synthetic traffic of every accounted policy.
    pub usage_octets_per_s: u64,
    /// Virtual router of the interfaces (`vr@router`).
    pub virtual_router: String,
}

impl Default for PrConfig {
    fn default() -> Self {
        PrConfig {
            templates: PrTemplates::default(),
            subscribers: 0,
            first: 0,
            rate: 10.0,
            fail_policy: Vec::new(),
            usage_octets_per_s: 1000,
            virtual_router: "default@sim".into(),
        }
    }
}

/// The router's control commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrCommand {
    /// `login <if-name> [ip] [user]` (an if-name with spaces may be quoted).
    Login {
        if_name: String,
        ip: Option<Ipv4Addr>,
        user: Option<String>,
    },
    /// `logout <if-name>`
    Logout(String),
    /// `drop`
    Drop,
    /// `list`
    List,
    /// `quit`
    Quit,
}

fn tokens(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut t = String::new();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some(c) => t.push(c),
                    None => return Err(format!("unterminated quote: {s}")),
                }
            }
            out.push(t);
        } else {
            let mut t = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                t.push(c);
                chars.next();
            }
            out.push(t);
        }
    }
    Ok(out)
}

impl PrCommand {
    /// Parses a line; `Ok(None)` for blank lines and `#` comments. In `login`, the if-name runs
    /// up to the first IPv4 address unless quoted; in `logout` it is the rest of the line.
    pub fn parse(line: &str) -> Result<Option<PrCommand>, String> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return Ok(None);
        }
        let (cmd, rest) = line
            .split_once(char::is_whitespace)
            .map(|(c, r)| (c, r.trim()))
            .unwrap_or((line, ""));
        let c = match (cmd, rest.is_empty()) {
            ("login", false) => {
                let t = tokens(rest)?;
                let ip_at = t
                    .iter()
                    .skip(1)
                    .position(|w| w.parse::<Ipv4Addr>().is_ok())
                    .map(|i| i + 1);
                let (name_end, ip) = match ip_at {
                    Some(k) => (k, t[k].parse().ok()),
                    None if t.len() <= 1 || !rest.starts_with('"') => (t.len(), None),
                    None => return Err(format!("login <if-name> [ip] [user]: {line}")),
                };
                let user_at = if ip.is_some() { name_end + 1 } else { name_end };
                if t.len() > user_at + 1 {
                    return Err(format!("too many arguments: {line}"));
                }
                PrCommand::Login {
                    if_name: t[..name_end].join(" "),
                    ip,
                    user: t.get(user_at).cloned(),
                }
            }
            ("logout", false) => {
                let t = tokens(rest)?;
                PrCommand::Logout(t.join(" "))
            }
            ("drop", true) => PrCommand::Drop,
            ("list", true) => PrCommand::List,
            ("quit", true) => PrCommand::Quit,
            ("login" | "logout" | "drop" | "list" | "quit", _) => {
                return Err(format!("wrong number of arguments: {line}"));
            }
            (other, _) => return Err(format!("unknown command {other:?}")),
        };
        Ok(Some(c))
    }
}

/// One installed policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub id: u32,
    pub name: String,
    pub template: String,
    pub accounting: bool,
}

/// Where a subscriber interface stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubState {
    /// Logged in while down: the REQ goes out once connected.
    Waiting,
    /// REQ sent at this instant, no DEC yet.
    Requested(Instant),
    /// DEC Install received.
    Installed,
}

impl SubState {
    fn name(self) -> &'static str {
        match self {
            SubState::Waiting => "waiting",
            SubState::Requested(_) => "requested",
            SubState::Installed => "installed",
        }
    }
}

/// One subscriber interface.
#[derive(Debug, Clone)]
pub struct Subscriber {
    pub handle: Handle,
    pub iface: SubscriberInterface,
    pub state: SubState,
    pub policies: BTreeMap<u32, Policy>,
    /// Report schedules by key (see `bindings`).
    schedule: ContextSchedule,
    /// What each schedule key reports on.
    bindings: BTreeMap<u32, Binding>,
    next_key: u32,
    accrued_at: Instant,
    carry: u128,
    octets_total: u64,
    next_usage_id: u32,
    /// The last reported usage per policy (for the `list` event).
    reported: BTreeMap<u32, u64>,
}

impl Subscriber {
    /// Octets counted (and not cleared) over the report schedules.
    pub fn usage(&mut self) -> u64 {
        let keys: Vec<u32> = self.bindings.keys().copied().collect();
        keys.iter()
            .filter_map(|k| self.schedule.get_mut(*k).map(|s| s.usage().octets))
            .sum()
    }

    /// The schedule keys a feedback action target (a linkage PRID) names; none: all.
    fn keys_for(&self, target: Option<&Prid>) -> Vec<u32> {
        self.bindings
            .iter()
            .filter(|(_, b)| target.is_none_or(|t| *t == b.linkage))
            .map(|(k, _)| *k)
            .collect()
    }

    /// Removes a schedule: its binding and final report.
    fn remove_schedule(&mut self, key: u32) -> Option<(Binding, UsageReport)> {
        let b = self.bindings.remove(&key)?;
        let r = self.schedule.remove(key)?;
        Some((b, r))
    }

    /// Labels reports by schedule key with their bindings.
    fn labelled(&self, reports: Vec<(u32, UsageReport)>) -> Vec<(Binding, UsageReport)> {
        reports
            .into_iter()
            .filter_map(|(k, r)| Some((self.bindings.get(&k)?.clone(), r)))
            .collect()
    }

    /// Final reports of every schedule; the schedules are gone.
    fn final_reports(&mut self) -> Vec<(Binding, UsageReport)> {
        let reports = self.schedule.final_reports();
        let out = self.labelled(reports);
        self.bindings.clear();
        out
    }

    fn policy_names(&self) -> Vec<String> {
        self.policies.values().map(|p| p.name.clone()).collect()
    }
}

#[derive(Debug, Clone)]
struct Plan {
    next: u64,
    count: u64,
    next_at: Instant,
    interval: Duration,
    installed: u64,
    refused: u64,
    done: bool,
}

/// A logout that waits for the connection: its final reports, then DRQ.
#[derive(Debug, Clone)]
struct PendingLogout {
    sub: Subscriber,
    reports: Vec<(Binding, UsageReport)>,
}

/// What one report schedule of a subscriber reports on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Binding {
    /// The linkage PRID the usage instances name: the PDP's, or `LINKAGE_ENTRY.<policy id>`
    /// for the local fallback.
    linkage: Prid,
    /// The PDP's linkage and its threshold (`None`: the local fallback).
    pdp: Option<(Linkage, Option<Threshold>)>,
    /// The selected policy.
    policy: u32,
}

impl Binding {
    /// The linkage the schedule follows.
    fn linkage(&self) -> Option<Linkage> {
        match &self.pdp {
            Some((l, _)) => Some(l.clone()),
            None => linkage_for(self.policy),
        }
    }

    fn threshold(&self) -> Option<&Threshold> {
        self.pdp.as_ref().and_then(|(_, t)| t.as_ref())
    }
}

/// The RFC 3483 usage policies of an install decision.
#[derive(Debug, Clone, Default)]
struct UsagePolicies {
    selections: Vec<SelectionCriteria>,
    linkages: Vec<Linkage>,
    thresholds: Vec<Threshold>,
}

impl UsagePolicies {
    fn from_instances(instances: &[sae_cops::pr::PrInstance]) -> Result<Self, String> {
        let err = |e: sae_cops::usage::UsageError| e.to_string();
        Ok(UsagePolicies {
            selections: sae_cops::pib::all(instances).map_err(err)?,
            linkages: sae_cops::pib::all(instances).map_err(err)?,
            thresholds: sae_cops::pib::all(instances).map_err(err)?,
        })
    }

    /// The schedules wanted for `policies`: per PDP linkage, each policy its selection
    /// selects; without linkages, the local linkage of each accounted policy.
    fn bindings(&self, policies: &BTreeMap<u32, Policy>) -> Vec<Binding> {
        if self.linkages.is_empty() {
            return policies
                .values()
                .filter(|p| p.accounting)
                .filter_map(|p| {
                    Some(Binding {
                        linkage: linkage_prid(p.id)?,
                        pdp: None,
                        policy: p.id,
                    })
                })
                .collect();
        }
        let mut out = Vec::new();
        for l in &self.linkages {
            let Ok(prid) = l.prid() else { continue };
            if l.usage_prc.arcs() != TRAFFIC_USAGE_ENTRY {
                tracing::warn!(linkage = %prid, usage = %l.usage_prc, "unsupported usage class");
                continue;
            }
            let Some(selection) = self
                .selections
                .iter()
                .find(|s| s.prid().is_ok_and(|p| p == l.selection))
            else {
                tracing::warn!(linkage = %prid, "selection criteria not in the decision");
                continue;
            };
            let threshold = l.threshold.as_ref().and_then(|t| {
                let found = self
                    .thresholds
                    .iter()
                    .find(|x| x.prid().is_ok_and(|p| p == *t));
                if found.is_none() {
                    tracing::warn!(linkage = %prid, "threshold not in the decision");
                }
                found.cloned()
            });
            for p in policies.values() {
                if policy_prid(p.id).is_some_and(|pp| selection.selects(&pp)) {
                    out.push(Binding {
                        linkage: prid.clone(),
                        pdp: Some((l.clone(), threshold.clone())),
                        policy: p.id,
                    });
                }
            }
        }
        out
    }
}

/// The router: subscriber interfaces, policies, usage.
#[derive(Debug)]
pub struct PrState {
    config: PrConfig,
    subs: BTreeMap<String, Subscriber>,
    by_handle: HashMap<Handle, String>,
    next_handle: u32,
    next_iface: u32,
    acct_timer: Duration,
    up: bool,
    pending_logouts: Vec<PendingLogout>,
    plan: Option<Plan>,
    events: VecDeque<CopsEvent>,
}

fn policy_prid(id: u32) -> Option<Prid> {
    Prid::instance_of(&Prid::new(POLICY_ENTRY)?, id)
}

fn linkage_prid(id: u32) -> Option<Prid> {
    Prid::instance_of(&Prid::new(LINKAGE_ENTRY)?, id)
}

/// The local linkage of an accounted policy: one Accounting Timer interval, cumulative.
fn linkage_for(policy: u32) -> Option<Linkage> {
    Some(Linkage {
        id: policy,
        selection: policy_prid(policy)?,
        usage_prc: Prid::new(TRAFFIC_USAGE_ENTRY)?,
        interval_count: 1,
        threshold: None,
        report_on_change: false,
        clear_on_report: false,
    })
}

fn trigger_name(t: ReportTrigger) -> &'static str {
    match t {
        ReportTrigger::Periodic => "periodic",
        ReportTrigger::Threshold => "threshold",
        ReportTrigger::Solicited => "solicited",
        ReportTrigger::Suspended => "suspended",
        ReportTrigger::ContextDeactivated => "context-deactivated",
        ReportTrigger::Final => "final",
        ReportTrigger::Reconnected => "reconnected",
    }
}

fn action_name(a: ActionKind) -> &'static str {
    match a {
        ActionKind::SuspendReporting => "suspend-reporting",
        ActionKind::ResumeReporting => "resume-reporting",
        ActionKind::SuspendMonitoring => "suspend-monitoring",
        ActionKind::ResumeMonitoring => "resume-monitoring",
        ActionKind::Solicit => "solicit",
    }
}

impl PrState {
    /// A router with no subscribers; handles start at `first_handle`.
    pub fn new(config: PrConfig, first_handle: u32) -> Self {
        PrState {
            config,
            subs: BTreeMap::new(),
            by_handle: HashMap::new(),
            next_handle: first_handle.max(1),
            next_iface: 1,
            acct_timer: Duration::ZERO,
            up: false,
            pending_logouts: Vec::new(),
            plan: None,
            events: VecDeque::new(),
        }
    }

    /// The subscriber interfaces by name.
    pub fn subscribers(&self) -> &BTreeMap<String, Subscriber> {
        &self.subs
    }

    /// A subscriber interface by name.
    pub fn subscriber_mut(&mut self, if_name: &str) -> Option<&mut Subscriber> {
        self.subs.get_mut(if_name)
    }

    fn emit(&mut self, e: CopsEvent) {
        self.events.push_back(e);
    }

    /// Counts synthetic usage up to `now` for every installed subscriber.
    fn accrue(&mut self, now: Instant) {
        let rate = u128::from(self.config.usage_octets_per_s);
        for sub in self.subs.values_mut() {
            if sub.state != SubState::Installed || now <= sub.accrued_at {
                continue;
            }
            let elapsed = now - sub.accrued_at;
            sub.accrued_at = now;
            let total = elapsed.as_nanos() * rate + sub.carry;
            sub.carry = total % 1_000_000_000;
            let octets = u64::try_from(total / 1_000_000_000).unwrap_or(u64::MAX);
            if octets == 0 {
                continue;
            }
            let before = sub.octets_total;
            sub.octets_total = before.saturating_add(octets);
            let packets = sub.octets_total / 1000 - before / 1000;
            let keys: Vec<u32> = sub.bindings.keys().copied().collect();
            for key in keys {
                if let Some(s) = sub.schedule.get_mut(key) {
                    s.record(Usage { packets, octets });
                }
            }
        }
    }

    /// Logs a subscriber interface in.
    pub fn login(
        &mut self,
        now: Instant,
        pep: Option<&mut PepConnection>,
        if_name: &str,
        ip: Option<Ipv4Addr>,
        user: Option<String>,
    ) {
        if self.subs.contains_key(if_name) {
            self.emit(CopsEvent::Error {
                error: format!("interface {if_name:?} is logged in"),
            });
            return;
        }
        let handle = Handle::from_u32(self.next_handle);
        self.next_handle = self.next_handle.wrapping_add(1).max(1);
        let id = self.next_iface;
        self.next_iface = self.next_iface.wrapping_add(1).max(1);
        let iface = SubscriberInterface {
            id,
            if_name: if_name.to_owned(),
            address: ip.map(|a| a.octets()).unwrap_or([0; 4]),
            login_name: user.unwrap_or_default(),
            virtual_router: self.config.virtual_router.clone(),
        };
        let mut sub = Subscriber {
            handle: handle.clone(),
            iface,
            state: SubState::Waiting,
            policies: BTreeMap::new(),
            schedule: ContextSchedule::new(),
            bindings: BTreeMap::new(),
            next_key: 1,
            accrued_at: now,
            carry: 0,
            octets_total: 0,
            next_usage_id: 1,
            reported: BTreeMap::new(),
        };
        if let Some(pep) = pep.filter(|p| p.is_up()) {
            self.request(now, pep, &mut sub);
        }
        self.by_handle.insert(handle, if_name.to_owned());
        self.subs.insert(if_name.to_owned(), sub);
    }

    fn request(&mut self, now: Instant, pep: &mut PepConnection, sub: &mut Subscriber) {
        let res = sub
            .iface
            .to_instance()
            .map_err(|e| e.to_string())
            .and_then(|i| {
                encode_request_client_si(&RequestClientSi(vec![i])).map_err(|e| e.to_string())
            })
            .and_then(|named| {
                pep.request(
                    now,
                    sub.handle.clone(),
                    Context::configuration(),
                    vec![ClientSi::Named(named)],
                )
                .map_err(|e| e.to_string())
            });
        match res {
            Ok(()) => sub.state = SubState::Requested(now),
            Err(error) => self.emit(CopsEvent::Error { error }),
        }
    }

    /// Logs a subscriber interface out: final accounting RPT, then DRQ (later if down).
    pub fn logout(&mut self, now: Instant, pep: Option<&mut PepConnection>, if_name: &str) {
        self.accrue(now);
        let Some(mut sub) = self.subs.remove(if_name) else {
            self.emit(CopsEvent::Error {
                error: format!("no interface {if_name:?}"),
            });
            return;
        };
        self.by_handle.remove(&sub.handle);
        let reports = sub.final_reports();
        if sub.state == SubState::Waiting {
            self.logout_event(&sub, "local");
            return;
        }
        let pending = PendingLogout { sub, reports };
        match pep.filter(|p| p.is_up()) {
            Some(pep) => self.finish_logout(now, pep, pending, "local"),
            None => self.pending_logouts.push(pending),
        }
    }

    fn logout_event(&mut self, sub: &Subscriber, by: &str) {
        self.emit(CopsEvent::Logout {
            if_name: sub.iface.if_name.clone(),
            handle: handle_hex(&sub.handle),
            by: by.into(),
        });
    }

    fn finish_logout(
        &mut self,
        now: Instant,
        pep: &mut PepConnection,
        mut pending: PendingLogout,
        by: &str,
    ) {
        if !pending.reports.is_empty() {
            let reports = std::mem::take(&mut pending.reports);
            self.send_accounting(now, pep, &mut pending.sub, reports, false);
        }
        let _ = pep.delete(
            now,
            pending.sub.handle.clone(),
            Reason::new(ReasonCode::Tear),
        );
        self.logout_event(&pending.sub, by);
    }

    /// Sends one accounting RPT with a TrafficUsage instance per report.
    fn send_accounting(
        &mut self,
        now: Instant,
        pep: &mut PepConnection,
        sub: &mut Subscriber,
        reports: Vec<(Binding, UsageReport)>,
        solicited: bool,
    ) {
        let trigger = reports
            .first()
            .map(|(_, r)| trigger_name(r.trigger).to_owned());
        let mut instances = Vec::new();
        let mut names = Vec::new();
        let mut octets = 0u64;
        for (b, r) in &reports {
            let Some(selected) = policy_prid(b.policy) else {
                continue;
            };
            let usage = TrafficUsage {
                id: sub.next_usage_id,
                linkage: b.linkage.clone(),
                selected,
                assignment: Bytes::copy_from_slice(sub.iface.if_name.as_bytes()),
                packets: r.usage.packets,
                octets: r.usage.octets,
            };
            sub.next_usage_id = sub.next_usage_id.wrapping_add(1).max(1);
            match usage.to_instance() {
                Ok(i) => instances.push(i),
                Err(e) => {
                    tracing::warn!(error = %e, "usage instance");
                    continue;
                }
            }
            octets = octets.saturating_add(r.usage.octets);
            sub.reported.insert(b.policy, r.usage.octets);
            names.push(
                sub.policies
                    .get(&b.policy)
                    .map(|p| p.name.clone())
                    .unwrap_or_else(|| b.policy.to_string()),
            );
        }
        let client_si = if instances.is_empty() {
            None
        } else {
            match encode_accounting_report(&AccountingReport(instances)) {
                Ok(b) => Some(ClientSi::Named(b)),
                Err(e) => {
                    self.emit(CopsEvent::Error {
                        error: format!("accounting report: {e}"),
                    });
                    return;
                }
            }
        };
        if let Err(e) = pep.report(
            now,
            sub.handle.clone(),
            ReportType::Accounting,
            client_si,
            solicited,
        ) {
            self.emit(CopsEvent::Error {
                error: format!("accounting report: {e}"),
            });
            return;
        }
        self.emit(CopsEvent::Report {
            if_name: sub.iface.if_name.clone(),
            handle: handle_hex(&sub.handle),
            kind: "accounting".into(),
            solicited,
            policies: names,
            octets,
            trigger,
        });
    }

    fn install(
        &mut self,
        now: Instant,
        pep: &mut PepConnection,
        sub: &mut Subscriber,
        policies: Vec<PolicyInstance>,
        usage: &UsagePolicies,
        solicited: bool,
    ) {
        let was_requested = matches!(sub.state, SubState::Requested(_));
        let globs: Vec<wildmatch::WildMatch> = self
            .config
            .fail_policy
            .iter()
            .map(|g| wildmatch::WildMatch::new(g))
            .collect();
        let (failed, ok): (Vec<_>, Vec<_>) = policies
            .into_iter()
            .partition(|p| globs.iter().any(|g| g.matches(&p.policy_name)));
        let new: BTreeMap<u32, Policy> = ok
            .into_iter()
            .map(|p| {
                (
                    p.id,
                    Policy {
                        id: p.id,
                        name: p.policy_name,
                        template: p.template_name,
                        accounting: p.accounting,
                    },
                )
            })
            .collect();
        // Schedules of policies or linkages replaced or gone report their final usage; the
        // unchanged ones go on.
        let mut wanted = usage.bindings(&new);
        let gone: Vec<u32> = sub
            .bindings
            .iter()
            .filter(|(_, b)| {
                let same_policy = sub.policies.get(&b.policy) == new.get(&b.policy);
                match wanted.iter().position(|w| w == *b) {
                    Some(i) if same_policy => {
                        wanted.swap_remove(i);
                        false
                    }
                    _ => true,
                }
            })
            .map(|(k, _)| *k)
            .collect();
        let finals: Vec<(Binding, UsageReport)> = gone
            .into_iter()
            .filter_map(|k| sub.remove_schedule(k))
            .collect();
        if !finals.is_empty() {
            self.send_accounting(now, pep, sub, finals, false);
        }
        for b in wanted {
            let Some(l) = b.linkage() else { continue };
            let key = sub.next_key;
            sub.next_key = sub.next_key.wrapping_add(1).max(1);
            sub.schedule.insert(
                key,
                ReportSchedule::new(now, self.acct_timer, &l, b.threshold()),
            );
            sub.bindings.insert(key, b);
        }
        sub.policies = new;
        sub.state = SubState::Installed;
        sub.accrued_at = now;
        let accounting = sub
            .policies
            .values()
            .filter(|p| p.accounting)
            .map(|p| p.name.clone())
            .collect();
        self.emit(CopsEvent::Installed {
            if_name: sub.iface.if_name.clone(),
            handle: handle_hex(&sub.handle),
            policies: sub.policy_names(),
            accounting,
        });
        if was_requested && let Some(p) = &mut self.plan {
            p.installed += 1;
        }
        self.outcome_report(now, pep, sub, &failed, solicited);
        self.plan_done();
    }

    /// RPT success, or failure with a CPERR per failed policy.
    fn outcome_report(
        &mut self,
        now: Instant,
        pep: &mut PepConnection,
        sub: &Subscriber,
        failed: &[PolicyInstance],
        solicited: bool,
    ) {
        let (report_type, client_si, names) = if failed.is_empty() {
            (ReportType::Success, None, sub.policy_names())
        } else {
            let reports = failed
                .iter()
                .filter_map(|p| {
                    Some(ClassReport {
                        error_prid: policy_prid(p.id)?,
                        cperr: Cperr {
                            code: CperrCode::PriSpecificError,
                            sub_code: 0,
                        },
                        instances: Vec::new(),
                    })
                })
                .collect();
            let named = encode_outcome_report(&OutcomeReport {
                gperr: None,
                reports,
            })
            .ok()
            .map(ClientSi::Named);
            let names = failed.iter().map(|p| p.policy_name.clone()).collect();
            (ReportType::Failure, named, names)
        };
        let kind = if report_type == ReportType::Success {
            "success"
        } else {
            "failure"
        };
        if let Err(e) = pep.report(now, sub.handle.clone(), report_type, client_si, solicited) {
            self.emit(CopsEvent::Error {
                error: format!("{kind} report: {e}"),
            });
            return;
        }
        self.emit(CopsEvent::Report {
            if_name: sub.iface.if_name.clone(),
            handle: handle_hex(&sub.handle),
            kind: kind.into(),
            solicited,
            policies: names,
            octets: 0,
            trigger: None,
        });
    }

    fn refuse(
        &mut self,
        now: Instant,
        pep: &mut PepConnection,
        sub: Subscriber,
        error: Option<String>,
    ) {
        self.by_handle.remove(&sub.handle);
        let _ = pep.delete(now, sub.handle.clone(), Reason::new(ReasonCode::Tear));
        self.emit(CopsEvent::Refused {
            if_name: sub.iface.if_name.clone(),
            handle: handle_hex(&sub.handle),
            error,
        });
        if let Some(p) = &mut self.plan {
            p.refused += 1;
        }
        self.plan_done();
    }

    fn plan_done(&mut self) {
        if let Some(p) = &mut self.plan
            && !p.done
            && p.installed + p.refused >= p.count
            && p.next == p.count
        {
            p.done = true;
            let (installed, refused) = (p.installed, p.refused);
            self.emit(CopsEvent::LoginsDone { installed, refused });
        }
    }

    fn feedback(
        &mut self,
        now: Instant,
        pep: &mut PepConnection,
        sub: &mut Subscriber,
        actions: Vec<FeedbackAction>,
    ) {
        for action in actions {
            self.emit(CopsEvent::Feedback {
                if_name: sub.iface.if_name.clone(),
                handle: handle_hex(&sub.handle),
                action: action_name(action.action).into(),
            });
            let reports = match &action.target {
                None => sub.schedule.apply(now, &action),
                // The schedules are keyed by our own keys: apply per key of the linkage.
                Some(target) => sub
                    .keys_for(Some(target))
                    .into_iter()
                    .filter_map(|key| {
                        let keyed = FeedbackAction {
                            target: Some(linkage_prid(key)?),
                            ..action.clone()
                        };
                        Some(sub.schedule.apply(now, &keyed))
                    })
                    .flatten()
                    .collect(),
            };
            let reports = sub.labelled(reports);
            let solicited = action.action == ActionKind::Solicit;
            if !reports.is_empty() || solicited {
                self.send_accounting(now, pep, sub, reports, solicited);
            }
        }
    }

    fn list(&mut self) {
        let mut entries = Vec::new();
        for sub in self.subs.values_mut() {
            let octets = sub.usage();
            entries.push(CopsEvent::Subscriber {
                if_name: sub.iface.if_name.clone(),
                handle: handle_hex(&sub.handle),
                state: sub.state.name().into(),
                policies: sub.policy_names(),
                octets,
            });
        }
        let count = entries.len();
        self.events.extend(entries);
        self.emit(CopsEvent::Listed { count });
    }

    fn start_plan(&mut self, now: Instant) {
        if self.plan.is_some() || self.config.subscribers == 0 {
            return;
        }
        let interval = if self.config.rate > 0.0 {
            Duration::try_from_secs_f64(1.0 / self.config.rate).unwrap_or(Duration::ZERO)
        } else {
            Duration::ZERO
        };
        self.plan = Some(Plan {
            next: 0,
            count: self.config.subscribers,
            next_at: now,
            interval,
            installed: 0,
            refused: 0,
            done: false,
        });
    }

    fn run_plan(&mut self, now: Instant, mut pep: Option<&mut PepConnection>) {
        loop {
            let Some(p) = &mut self.plan else { return };
            if p.next >= p.count || p.next_at > now {
                return;
            }
            let n = self.config.first + p.next;
            p.next += 1;
            p.next_at = if p.interval.is_zero() {
                now
            } else {
                p.next_at + p.interval
            };
            let t = &self.config.templates;
            let (if_name, ip, user) = (t.if_name(n), t.ip(n), t.user(n));
            self.login(now, pep.as_deref_mut(), &if_name, Some(ip), Some(user));
        }
    }

    /// Takes a subscriber out of the table while it is worked on.
    fn take(&mut self, handle: &Handle) -> Option<Subscriber> {
        let name = self.by_handle.get(handle)?;
        self.subs.remove(name)
    }

    fn put(&mut self, sub: Subscriber) {
        self.subs.insert(sub.iface.if_name.clone(), sub);
    }
}

impl PepRole for PrState {
    type Command = PrCommand;

    fn up(&mut self, now: Instant, pep: &mut PepConnection) {
        self.accrue(now);
        self.up = true;
        self.acct_timer = pep.accounting_timer().unwrap_or(Duration::ZERO);
        let names: Vec<String> = self.subs.keys().cloned().collect();
        for name in names {
            let Some(mut sub) = self.subs.remove(&name) else {
                continue;
            };
            match sub.state {
                SubState::Installed => {
                    // RFC 3483 §10: report all cached usage, restart the schedule.
                    let keys: Vec<u32> = sub.bindings.keys().copied().collect();
                    let reports: Vec<(u32, UsageReport)> = keys
                        .into_iter()
                        .filter_map(|key| {
                            let s = sub.schedule.get_mut(key)?;
                            Some((key, s.reconnected(now, self.acct_timer)))
                        })
                        .collect();
                    let reports = sub.labelled(reports);
                    if !reports.is_empty() {
                        self.send_accounting(now, pep, &mut sub, reports, false);
                    }
                }
                SubState::Waiting | SubState::Requested(_) => self.request(now, pep, &mut sub),
            }
            self.put(sub);
        }
        for pending in std::mem::take(&mut self.pending_logouts) {
            self.finish_logout(now, pep, pending, "local");
        }
        self.start_plan(now);
        self.run_plan(now, Some(pep));
    }

    fn down(&mut self, now: Instant) {
        self.accrue(now);
        self.up = false;
    }

    fn decision(
        &mut self,
        now: Instant,
        pep: &mut PepConnection,
        handle: Handle,
        decision: DecisionContent,
        solicited: bool,
    ) {
        self.accrue(now);
        let Some(mut sub) = self.take(&handle) else {
            tracing::debug!(?handle, "DEC for an unknown handle");
            return;
        };
        let d = match decision {
            DecisionContent::Error(e) => {
                let requested = matches!(sub.state, SubState::Requested(_));
                if !requested
                    && matches!(
                        e.code,
                        ErrorCode::InvalidHandleReference | ErrorCode::BadHandle
                    )
                {
                    // The PDP lost this state: ask again.
                    self.request(now, pep, &mut sub);
                    self.put(sub);
                } else if requested {
                    self.refuse(now, pep, sub, Some(format!("DEC Error {:?}", e.code)));
                } else {
                    self.put(sub);
                }
                return;
            }
            DecisionContent::Decisions(d) => d,
        };
        let Some(d) = d.into_iter().next() else {
            self.put(sub);
            return;
        };
        match (d.flags.command, d.named) {
            (Command::Install, Some(named)) => {
                let instances = match decode_install_decision(&named) {
                    Ok(i) => i.0,
                    Err(e) => {
                        self.emit(CopsEvent::Error {
                            error: format!("install decision: {e}"),
                        });
                        self.put(sub);
                        return;
                    }
                };
                let actions: Vec<FeedbackAction> = instances
                    .iter()
                    .filter_map(|i| FeedbackAction::from_instance(i).ok())
                    .collect();
                if !actions.is_empty() {
                    self.feedback(now, pep, &mut sub, actions);
                } else {
                    let policies =
                        sae_cops::pib::all::<PolicyInstance>(&instances).unwrap_or_default();
                    let usage = UsagePolicies::from_instances(&instances).unwrap_or_else(|e| {
                        tracing::warn!(error = %e, "usage policies");
                        UsagePolicies::default()
                    });
                    self.install(now, pep, &mut sub, policies, &usage, solicited);
                }
                self.put(sub);
            }
            (Command::Install, None) => {
                self.install(
                    now,
                    pep,
                    &mut sub,
                    Vec::new(),
                    &UsagePolicies::default(),
                    solicited,
                );
                self.put(sub);
            }
            (Command::Remove, None) => match sub.state {
                SubState::Installed => {
                    self.by_handle.remove(&sub.handle);
                    let reports = sub.final_reports();
                    self.finish_logout(now, pep, PendingLogout { sub, reports }, "pdp");
                }
                _ => self.refuse(now, pep, sub, None),
            },
            (Command::Remove, Some(named)) => {
                let targets = decode_remove_decision(&named)
                    .map(|r| r.0)
                    .unwrap_or_default();
                let removed = |p: &Prid| {
                    targets.iter().any(|t| match t {
                        RemoveTarget::Instance(i) => i == p,
                        RemoveTarget::Prefix(x) => p.starts_with(x),
                    })
                };
                let gone: Vec<u32> = sub
                    .policies
                    .keys()
                    .copied()
                    .filter(|id| policy_prid(*id).is_some_and(|p| removed(&p)))
                    .collect();
                // Schedules of removed policies or removed linkages.
                let keys: Vec<u32> = sub
                    .bindings
                    .iter()
                    .filter(|(_, b)| gone.contains(&b.policy) || removed(&b.linkage))
                    .map(|(k, _)| *k)
                    .collect();
                let finals: Vec<(Binding, UsageReport)> = keys
                    .into_iter()
                    .filter_map(|k| sub.remove_schedule(k))
                    .collect();
                if !finals.is_empty() {
                    self.send_accounting(now, pep, &mut sub, finals, false);
                }
                for id in gone {
                    sub.policies.remove(&id);
                }
                self.outcome_report(now, pep, &sub, &[], solicited);
                self.put(sub);
            }
            (Command::Null, _) => self.put(sub),
        }
    }

    fn malformed_decision(&mut self, _now: Instant, handle: Handle) {
        if let Some(sub) = self.take(&handle) {
            self.by_handle.remove(&handle);
            self.emit(CopsEvent::Refused {
                if_name: sub.iface.if_name.clone(),
                handle: handle_hex(&handle),
                error: Some("malformed DEC".into()),
            });
        }
    }

    fn sync(&mut self, now: Instant, pep: &mut PepConnection, handle: Option<Handle>) {
        self.accrue(now);
        let names: Vec<String> = self
            .subs
            .values()
            .filter(|s| handle.as_ref().is_none_or(|h| *h == s.handle))
            .map(|s| s.iface.if_name.clone())
            .collect();
        let mut count = 0;
        for name in names {
            let Some(mut sub) = self.subs.remove(&name) else {
                continue;
            };
            match sub.state {
                SubState::Installed => {
                    let ok = pep
                        .report(now, sub.handle.clone(), ReportType::Success, None, true)
                        .is_ok();
                    count += usize::from(ok);
                }
                SubState::Waiting | SubState::Requested(_) => {
                    self.request(now, pep, &mut sub);
                    count += 1;
                }
            }
            self.put(sub);
        }
        let _ = pep.sync_complete(now, handle);
        self.emit(CopsEvent::Sync { handles: count });
    }

    fn command(
        &mut self,
        now: Instant,
        pep: Option<&mut PepConnection>,
        command: PrCommand,
    ) -> Directive {
        self.accrue(now);
        match command {
            PrCommand::Login { if_name, ip, user } => self.login(now, pep, &if_name, ip, user),
            PrCommand::Logout(if_name) => self.logout(now, pep, &if_name),
            PrCommand::List => self.list(),
            PrCommand::Drop => return Directive::Drop,
            PrCommand::Quit => return Directive::Quit,
        }
        Directive::Continue
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let plan = self
            .plan
            .as_ref()
            .filter(|p| p.next < p.count)
            .map(|p| p.next_at);
        let reports = self
            .up
            .then(|| {
                self.subs
                    .values()
                    .filter(|s| s.state == SubState::Installed)
                    .filter_map(|s| s.schedule.next_deadline())
                    .min()
            })
            .flatten();
        plan.into_iter().chain(reports).min()
    }

    fn timeout(&mut self, now: Instant, mut pep: Option<&mut PepConnection>) {
        self.accrue(now);
        if let Some(pep) = pep.as_deref_mut() {
            let names: Vec<String> = self.subs.keys().cloned().collect();
            for name in names {
                let Some(mut sub) = self.subs.remove(&name) else {
                    continue;
                };
                if sub.state == SubState::Installed {
                    let reports = sub.schedule.poll(now);
                    let reports = sub.labelled(reports);
                    if !reports.is_empty() {
                        self.send_accounting(now, pep, &mut sub, reports, false);
                    }
                }
                self.put(sub);
            }
        }
        self.run_plan(now, pep);
    }

    fn poll_event(&mut self) -> Option<CopsEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {

    use sae_cops::message::{Body, Decision, Message};
    use sae_cops::object::DecisionFlags;
    use sae_cops::pr::{
        InstallDecision, decode_accounting_report, decode_request_client_si,
        encode_install_decision,
    };

    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn up_pep(t0: Instant, acct: u16) -> PepConnection {
        crate::cops_test_support::up_pep(t0, 0x800B, "erx1", 0, Some(acct))
    }

    use crate::cops_test_support::sent;

    fn events(s: &mut PrState) -> Vec<CopsEvent> {
        std::iter::from_fn(|| s.poll_event()).collect()
    }

    fn policy(id: u32, name: &str, accounting: bool) -> PolicyInstance {
        PolicyInstance {
            id,
            interface: 1,
            policy_name: name.into(),
            template_name: String::new(),
            accounting,
        }
    }

    fn install(instances: Vec<sae_cops::pr::PrInstance>) -> DecisionContent {
        let named = encode_install_decision(&InstallDecision(instances)).unwrap();
        DecisionContent::Decisions(vec![
            Decision::new(
                Context::configuration(),
                DecisionFlags::new(Command::Install),
            )
            .with_named(named),
        ])
    }

    fn policies() -> DecisionContent {
        install(vec![
            policy(1, "gold-in", true).to_instance().unwrap(),
            policy(2, "gold-out", false).to_instance().unwrap(),
        ])
    }

    fn action(kind: ActionKind) -> DecisionContent {
        install(vec![
            FeedbackAction {
                id: 1,
                action: kind,
                target: None,
                report_now: matches!(
                    kind,
                    ActionKind::SuspendReporting | ActionKind::SuspendMonitoring
                ),
            }
            .to_instance()
            .unwrap(),
        ])
    }

    /// (report type, solicited, usages) of the RPTs among `msgs`.
    fn reports(msgs: &[Message]) -> Vec<(ReportType, bool, Vec<TrafficUsage>)> {
        msgs.iter()
            .filter_map(|m| match &m.body {
                Body::Report(r) => {
                    let usages = match (&r.report_type, &r.client_si) {
                        (ReportType::Accounting, Some(ClientSi::Named(b))) => {
                            decode_accounting_report(b)
                                .unwrap()
                                .0
                                .iter()
                                .map(|i| TrafficUsage::from_instance(i).unwrap())
                                .collect()
                        }
                        _ => Vec::new(),
                    };
                    Some((r.report_type, m.solicited, usages))
                }
                _ => None,
            })
            .collect()
    }

    /// A router with one installed subscriber `if0` (handle 1) on a connection with
    /// Accounting Timer `acct`, 1000 octets/s.
    fn installed(t0: Instant, acct: u16) -> (PrState, PepConnection) {
        let mut pep = up_pep(t0, acct);
        let mut s = PrState::new(PrConfig::default(), 1);
        s.up(t0, &mut pep);
        s.login(
            t0,
            Some(&mut pep),
            "if0",
            Some(Ipv4Addr::new(10, 2, 0, 1)),
            Some("u0".into()),
        );
        sent(&mut pep);
        s.decision(t0, &mut pep, Handle::from_u32(1), policies(), true);
        sent(&mut pep);
        events(&mut s);
        (s, pep)
    }

    #[test]
    fn a_login_is_a_req_and_install_is_answered_with_rpt_success() {
        let t0 = Instant::now();
        let mut pep = up_pep(t0, 0);
        let mut s = PrState::new(PrConfig::default(), 5);
        s.up(t0, &mut pep);
        s.login(
            t0,
            Some(&mut pep),
            "fastEthernet 3/0.1",
            Some(Ipv4Addr::new(10, 2, 0, 2)),
            Some("alice".into()),
        );
        let msgs = sent(&mut pep);
        let Body::Request(req) = &msgs[0].body else {
            panic!("{msgs:?}")
        };
        assert_eq!(req.handle, Handle::from_u32(5));
        let ClientSi::Named(named) = &req.client_si[0] else {
            panic!()
        };
        let inst = decode_request_client_si(named).unwrap();
        let iface = sae_cops::pib::find::<SubscriberInterface>(&inst.0)
            .unwrap()
            .unwrap();
        assert_eq!(iface.if_name, "fastEthernet 3/0.1");
        assert_eq!(iface.address, [10, 2, 0, 2]);
        assert_eq!(iface.login_name, "alice");

        s.decision(t0, &mut pep, Handle::from_u32(5), policies(), true);
        let r = reports(&sent(&mut pep));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].0, ReportType::Success);
        let e = events(&mut s);
        assert!(e.iter().any(|e| matches!(e, CopsEvent::Installed { policies, accounting, .. } if policies.len() == 2 && accounting == &vec!["gold-in".to_owned()])));
        assert_eq!(
            s.subscribers()["fastEthernet 3/0.1"].state,
            SubState::Installed
        );
    }

    #[test]
    fn a_failing_policy_gives_rpt_failure_and_dec_remove_refuses() {
        let t0 = Instant::now();
        let mut pep = up_pep(t0, 0);
        let cfg = PrConfig {
            fail_policy: vec!["*-out".into()],
            ..PrConfig::default()
        };
        let mut s = PrState::new(cfg, 1);
        s.up(t0, &mut pep);
        s.login(t0, Some(&mut pep), "a", None, None);
        s.login(t0, Some(&mut pep), "b", None, None);
        sent(&mut pep);
        s.decision(t0, &mut pep, Handle::from_u32(1), policies(), true);
        let msgs = sent(&mut pep);
        let Body::Report(r) = &msgs[0].body else {
            panic!()
        };
        assert_eq!(r.report_type, ReportType::Failure);
        let Some(ClientSi::Named(b)) = &r.client_si else {
            panic!()
        };
        let out = sae_cops::pr::decode_outcome_report(b).unwrap();
        assert_eq!(out.reports[0].error_prid, policy_prid(2).unwrap());
        assert_eq!(s.subscribers()["a"].policies.len(), 1);

        let remove = DecisionContent::Decisions(vec![Decision::new(
            Context::configuration(),
            DecisionFlags::new(Command::Remove),
        )]);
        s.decision(t0, &mut pep, Handle::from_u32(2), remove, true);
        let msgs = sent(&mut pep);
        assert!(
            matches!(&msgs[..], [m] if matches!(&m.body, Body::DeleteRequest(d) if d.handle == Handle::from_u32(2)))
        );
        assert!(
            events(&mut s)
                .iter()
                .any(|e| matches!(e, CopsEvent::Refused { if_name, .. } if if_name == "b"))
        );
        assert!(!s.subscribers().contains_key("b"));
    }

    #[test]
    fn usage_is_reported_per_accounting_timer_and_solicit_does_not_move_the_schedule() {
        let t0 = Instant::now();
        let (mut s, mut pep) = installed(t0, 10);
        assert_eq!(s.poll_timeout(), Some(t0 + 10 * SEC));
        s.timeout(t0 + 5 * SEC, Some(&mut pep));
        assert!(sent(&mut pep).is_empty());
        s.timeout(t0 + 10 * SEC, Some(&mut pep));
        let r = reports(&sent(&mut pep));
        assert_eq!(r.len(), 1);
        let (kind, solicited, usage) = &r[0];
        assert_eq!((*kind, *solicited), (ReportType::Accounting, false));
        assert_eq!(usage.len(), 1, "only the accounted policy");
        assert_eq!(usage[0].octets, 10_000);
        assert_eq!(usage[0].packets, 10);
        assert_eq!(usage[0].selected, policy_prid(1).unwrap());
        assert_eq!(
            usage[0].linkage,
            linkage_prid(1).unwrap(),
            "no PDP linkage: the local fallback"
        );
        assert_eq!(usage[0].assignment.as_ref(), b"if0");

        // Solicited at 12 s: answered at once, the next periodic report stays at 20 s.
        s.decision(
            t0 + 12 * SEC,
            &mut pep,
            Handle::from_u32(1),
            action(ActionKind::Solicit),
            false,
        );
        let r = reports(&sent(&mut pep));
        assert_eq!(r.len(), 1);
        assert!(r[0].1, "solicited");
        assert_eq!(r[0].2[0].octets, 12_000);
        assert!(
            events(&mut s)
                .iter()
                .any(|e| matches!(e, CopsEvent::Feedback { action, .. } if action == "solicit"))
        );
        assert_eq!(s.poll_timeout(), Some(t0 + 20 * SEC));
        s.timeout(t0 + 15 * SEC, Some(&mut pep));
        assert!(sent(&mut pep).is_empty());
        s.timeout(t0 + 20 * SEC, Some(&mut pep));
        assert_eq!(reports(&sent(&mut pep))[0].2[0].octets, 20_000);
    }

    #[test]
    fn a_zero_accounting_timer_gives_no_unsolicited_reports_but_solicit_works() {
        let t0 = Instant::now();
        let (mut s, mut pep) = installed(t0, 0);
        assert_eq!(s.poll_timeout(), None);
        s.timeout(t0 + 100 * SEC, Some(&mut pep));
        assert!(sent(&mut pep).is_empty());
        s.decision(
            t0 + 100 * SEC,
            &mut pep,
            Handle::from_u32(1),
            action(ActionKind::Solicit),
            false,
        );
        assert_eq!(reports(&sent(&mut pep))[0].2[0].octets, 100_000);
    }

    #[test]
    fn suspend_and_resume_reporting_and_monitoring() {
        let t0 = Instant::now();
        let (mut s, mut pep) = installed(t0, 10);
        // Suspend reporting at 5 s: the current usage is reported, periodic reports stop.
        s.decision(
            t0 + 5 * SEC,
            &mut pep,
            Handle::from_u32(1),
            action(ActionKind::SuspendReporting),
            false,
        );
        let r = reports(&sent(&mut pep));
        assert_eq!(r[0].2[0].octets, 5_000);
        assert_eq!(s.poll_timeout(), None);
        s.timeout(t0 + 30 * SEC, Some(&mut pep));
        assert!(sent(&mut pep).is_empty());
        // Resume: the missed deadline gives one report, monitoring went on meanwhile.
        s.decision(
            t0 + 31 * SEC,
            &mut pep,
            Handle::from_u32(1),
            action(ActionKind::ResumeReporting),
            false,
        );
        assert!(sent(&mut pep).is_empty());
        s.timeout(t0 + 31 * SEC, Some(&mut pep));
        assert_eq!(reports(&sent(&mut pep))[0].2[0].octets, 31_000);

        // Suspend monitoring at 40 s: reported, then nothing counted until resumed at 60 s.
        s.decision(
            t0 + 40 * SEC,
            &mut pep,
            Handle::from_u32(1),
            action(ActionKind::SuspendMonitoring),
            false,
        );
        assert_eq!(reports(&sent(&mut pep))[0].2[0].octets, 40_000);
        s.decision(
            t0 + 60 * SEC,
            &mut pep,
            Handle::from_u32(1),
            action(ActionKind::ResumeMonitoring),
            false,
        );
        s.decision(
            t0 + 65 * SEC,
            &mut pep,
            Handle::from_u32(1),
            action(ActionKind::Solicit),
            false,
        );
        assert_eq!(reports(&sent(&mut pep))[0].2[0].octets, 45_000);
        let names: Vec<String> = events(&mut s)
            .into_iter()
            .filter_map(|e| match e {
                CopsEvent::Feedback { action, .. } => Some(action),
                _ => None,
            })
            .collect();
        assert_eq!(
            names,
            [
                "suspend-reporting",
                "resume-reporting",
                "suspend-monitoring",
                "resume-monitoring",
                "solicit"
            ]
        );
    }

    #[test]
    fn logout_sends_the_final_report_then_drq() {
        let t0 = Instant::now();
        let (mut s, mut pep) = installed(t0, 10);
        s.logout(t0 + 3 * SEC, Some(&mut pep), "if0");
        let msgs = sent(&mut pep);
        assert_eq!(msgs.len(), 2);
        let r = reports(&msgs[..1]);
        assert_eq!(r[0].0, ReportType::Accounting);
        assert_eq!(r[0].2[0].octets, 3_000);
        assert!(matches!(&msgs[1].body, Body::DeleteRequest(d) if d.handle == Handle::from_u32(1)));
        let e = events(&mut s);
        assert!(
            e.iter()
                .any(|e| matches!(e, CopsEvent::Report { trigger: Some(t), .. } if t == "final"))
        );
        assert!(
            e.iter()
                .any(|e| matches!(e, CopsEvent::Logout { by, .. } if by == "local"))
        );
        assert!(s.subscribers().is_empty());
    }

    #[test]
    fn usage_counted_while_disconnected_is_reported_after_reconnecting() {
        let t0 = Instant::now();
        let (mut s, mut pep) = installed(t0, 10);
        s.timeout(t0 + 10 * SEC, Some(&mut pep));
        sent(&mut pep);
        s.down(t0 + 12 * SEC);
        // No reports while down; a logout waits for the connection.
        assert_eq!(s.poll_timeout(), None);
        s.timeout(t0 + 20 * SEC, None);
        s.login(t0 + 20 * SEC, None, "if1", None, None);
        let mut pep = up_pep(t0 + 30 * SEC, 15);
        s.up(t0 + 30 * SEC, &mut pep);
        let msgs = sent(&mut pep);
        let r = reports(&msgs);
        assert_eq!(r.len(), 1);
        assert!(!r[0].1);
        assert_eq!(r[0].2[0].octets, 30_000, "counting went on while down");
        assert!(
            msgs.iter()
                .any(|m| matches!(&m.body, Body::Request(r) if r.handle == Handle::from_u32(2)))
        );
        assert!(events(&mut s).iter().any(
            |e| matches!(e, CopsEvent::Report { trigger: Some(t), .. } if t == "reconnected")
        ));
        // The schedule restarts with the new timer.
        assert_eq!(s.poll_timeout(), Some(t0 + 45 * SEC));

        // A logout while down: final report and DRQ after the next CAT.
        s.down(t0 + 50 * SEC);
        s.logout(t0 + 50 * SEC, None, "if0");
        assert!(
            !events(&mut s)
                .iter()
                .any(|e| matches!(e, CopsEvent::Logout { .. }))
        );
        let mut pep = up_pep(t0 + 60 * SEC, 15);
        s.up(t0 + 60 * SEC, &mut pep);
        let msgs = sent(&mut pep);
        let accounting: Vec<_> = reports(&msgs);
        assert_eq!(accounting.len(), 1);
        assert_eq!(accounting[0].2[0].octets, 50_000);
        let drq = msgs.iter().position(
            |m| matches!(&m.body, Body::DeleteRequest(d) if d.handle == Handle::from_u32(1)),
        );
        let rpt = msgs.iter().position(|m| matches!(&m.body, Body::Report(_)));
        assert!(rpt < drq && drq.is_some());
    }

    fn selection(id: u32, policy: u32) -> SelectionCriteria {
        SelectionCriteria {
            id,
            target: policy_prid(policy).unwrap(),
            all_instances: false,
        }
    }

    fn pdp_linkage(id: u32, interval_count: u32, threshold: Option<Prid>) -> Linkage {
        Linkage {
            id,
            selection: selection(id, 1).prid().unwrap(),
            usage_prc: Prid::new(TRAFFIC_USAGE_ENTRY).unwrap(),
            interval_count,
            threshold,
            report_on_change: false,
            clear_on_report: false,
        }
    }

    /// Policies 1 (accounted) and 2 (not) with PDP linkages 7 (every 2 intervals, policy 1)
    /// and 8 (every 3 intervals, policy 2, clear on report).
    fn policies_with_linkages() -> DecisionContent {
        install(vec![
            policy(1, "gold-in", true).to_instance().unwrap(),
            policy(2, "gold-out", false).to_instance().unwrap(),
            selection(7, 1).to_instance().unwrap(),
            pdp_linkage(7, 2, None).to_instance().unwrap(),
            selection(8, 2).to_instance().unwrap(),
            Linkage {
                selection: selection(8, 2).prid().unwrap(),
                clear_on_report: true,
                ..pdp_linkage(8, 3, None)
            }
            .to_instance()
            .unwrap(),
        ])
    }

    fn installed_with(t0: Instant, acct: u16, dec: DecisionContent) -> (PrState, PepConnection) {
        let mut pep = up_pep(t0, acct);
        let mut s = PrState::new(PrConfig::default(), 1);
        s.up(t0, &mut pep);
        s.login(t0, Some(&mut pep), "if0", None, None);
        sent(&mut pep);
        s.decision(t0, &mut pep, Handle::from_u32(1), dec, true);
        let r = reports(&sent(&mut pep));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].0, ReportType::Success);
        events(&mut s);
        (s, pep)
    }

    fn linkage_prid_of(id: u32) -> Prid {
        pdp_linkage(id, 1, None).prid().unwrap()
    }

    #[test]
    fn pdp_linkages_name_the_reports_and_set_the_interval_count() {
        let t0 = Instant::now();
        let (mut s, mut pep) = installed_with(t0, 10, policies_with_linkages());
        // No local schedule per accounted policy: linkage 7 reports every 20 s, 8 every 30 s.
        assert_eq!(s.poll_timeout(), Some(t0 + 20 * SEC));
        s.timeout(t0 + 10 * SEC, Some(&mut pep));
        assert!(sent(&mut pep).is_empty());
        s.timeout(t0 + 20 * SEC, Some(&mut pep));
        let r = reports(&sent(&mut pep));
        assert_eq!(r.len(), 1);
        let usage = &r[0].2;
        assert_eq!(usage.len(), 1);
        assert_eq!(usage[0].linkage, linkage_prid_of(7));
        assert_eq!(usage[0].selected, policy_prid(1).unwrap());
        assert_eq!(usage[0].octets, 20_000);
        assert_eq!(s.poll_timeout(), Some(t0 + 30 * SEC));
        s.timeout(t0 + 30 * SEC, Some(&mut pep));
        let r = reports(&sent(&mut pep));
        let usage = &r[0].2;
        assert_eq!(usage.len(), 1);
        assert_eq!(usage[0].linkage, linkage_prid_of(8));
        assert_eq!(usage[0].selected, policy_prid(2).unwrap());
        assert_eq!(usage[0].octets, 30_000);
        // At 60 s both: 7 cumulative, 8 cleared at 30 s.
        s.timeout(t0 + 40 * SEC, Some(&mut pep));
        sent(&mut pep);
        s.timeout(t0 + 60 * SEC, Some(&mut pep));
        let r = reports(&sent(&mut pep));
        let mut got: Vec<(Prid, u64)> = r[0]
            .2
            .iter()
            .map(|u| (u.linkage.clone(), u.octets))
            .collect();
        got.sort();
        let mut want = vec![(linkage_prid_of(7), 60_000), (linkage_prid_of(8), 30_000)];
        want.sort();
        assert_eq!(got, want);

        // The same linkages again keep their schedules; a named remove of linkage 8 ends it
        // with its final report.
        s.decision(
            t0 + 61 * SEC,
            &mut pep,
            Handle::from_u32(1),
            policies_with_linkages(),
            false,
        );
        assert_eq!(reports(&sent(&mut pep)).len(), 1, "only RPT success");
        let remove = sae_cops::pr::encode_remove_decision(&sae_cops::pr::RemoveDecision(vec![
            RemoveTarget::Instance(linkage_prid_of(8)),
        ]))
        .unwrap();
        let remove = DecisionContent::Decisions(vec![
            Decision::new(
                Context::configuration(),
                DecisionFlags::new(Command::Remove),
            )
            .with_named(remove),
        ]);
        s.decision(t0 + 62 * SEC, &mut pep, Handle::from_u32(1), remove, false);
        let r = reports(&sent(&mut pep));
        assert_eq!(r[0].0, ReportType::Accounting);
        assert_eq!(r[0].2.len(), 1);
        assert_eq!(r[0].2[0].linkage, linkage_prid_of(8));
        assert_eq!(r[0].2[0].octets, 2_000);
        assert_eq!(s.subscribers()["if0"].bindings.len(), 1);
    }

    #[test]
    fn a_pdp_threshold_gives_an_early_report() {
        let t0 = Instant::now();
        let threshold = Threshold {
            id: 3,
            packets: None,
            octets: Some(5_000),
        };
        let dec = install(vec![
            policy(1, "gold-in", true).to_instance().unwrap(),
            selection(7, 1).to_instance().unwrap(),
            pdp_linkage(7, 3, Some(threshold.prid().unwrap()))
                .to_instance()
                .unwrap(),
            threshold.to_instance().unwrap(),
        ]);
        let (mut s, mut pep) = installed_with(t0, 10, dec);
        s.timeout(t0 + 10 * SEC, Some(&mut pep));
        let r = reports(&sent(&mut pep));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].2[0].linkage, linkage_prid_of(7));
        assert_eq!(r[0].2[0].octets, 10_000);
        assert!(
            events(&mut s).iter().any(
                |e| matches!(e, CopsEvent::Report { trigger: Some(t), .. } if t == "threshold")
            )
        );
    }

    #[test]
    fn a_feedback_action_with_a_linkage_target_applies_to_that_linkage_only() {
        let t0 = Instant::now();
        let (mut s, mut pep) = installed_with(t0, 10, policies_with_linkages());
        let suspend = install(vec![
            FeedbackAction {
                id: 1,
                action: ActionKind::SuspendReporting,
                target: Some(linkage_prid_of(7)),
                report_now: true,
            }
            .to_instance()
            .unwrap(),
        ]);
        s.decision(t0 + 5 * SEC, &mut pep, Handle::from_u32(1), suspend, false);
        let r = reports(&sent(&mut pep));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].2.len(), 1, "only the targeted linkage reports");
        assert_eq!(r[0].2[0].linkage, linkage_prid_of(7));
        assert_eq!(r[0].2[0].octets, 5_000);
        // Linkage 7 is suspended, 8 goes on.
        assert_eq!(s.poll_timeout(), Some(t0 + 30 * SEC));
        s.timeout(t0 + 20 * SEC, Some(&mut pep));
        assert!(sent(&mut pep).is_empty());
        s.timeout(t0 + 30 * SEC, Some(&mut pep));
        let r = reports(&sent(&mut pep));
        assert_eq!(r[0].2.len(), 1);
        assert_eq!(r[0].2[0].linkage, linkage_prid_of(8));
        // Solicit without a target: both.
        s.decision(
            t0 + 31 * SEC,
            &mut pep,
            Handle::from_u32(1),
            action(ActionKind::Solicit),
            false,
        );
        let r = reports(&sent(&mut pep));
        assert!(r[0].1, "solicited");
        assert_eq!(r[0].2.len(), 2);
        // A target naming no linkage of ours touches nothing.
        let other = install(vec![
            FeedbackAction {
                id: 2,
                action: ActionKind::SuspendMonitoring,
                target: Some(linkage_prid_of(99)),
                report_now: true,
            }
            .to_instance()
            .unwrap(),
        ]);
        s.decision(t0 + 32 * SEC, &mut pep, Handle::from_u32(1), other, false);
        assert!(sent(&mut pep).is_empty());
    }

    #[test]
    fn ssq_resends_rpt_and_req_then_ssc() {
        let t0 = Instant::now();
        let (mut s, mut pep) = installed(t0, 0);
        s.login(t0, Some(&mut pep), "if1", None, None);
        sent(&mut pep);
        s.sync(t0, &mut pep, None);
        let msgs = sent(&mut pep);
        assert_eq!(msgs.len(), 3);
        assert!(matches!(&msgs[0].body, Body::Report(r) if r.report_type == ReportType::Success));
        assert!(matches!(&msgs[1].body, Body::Request(_)));
        assert!(matches!(&msgs[2].body, Body::SyncComplete(None)));
        assert!(
            events(&mut s)
                .iter()
                .any(|e| matches!(e, CopsEvent::Sync { handles: 2 }))
        );
    }

    #[test]
    fn commands_parse() {
        let p = |l: &str| PrCommand::parse(l).unwrap().unwrap();
        assert_eq!(
            p("login fastEthernet 3/0.100 10.2.0.5 alice@isp"),
            PrCommand::Login {
                if_name: "fastEthernet 3/0.100".into(),
                ip: Some(Ipv4Addr::new(10, 2, 0, 5)),
                user: Some("alice@isp".into())
            }
        );
        assert_eq!(
            p("login \"fastEthernet 3/0.1\""),
            PrCommand::Login {
                if_name: "fastEthernet 3/0.1".into(),
                ip: None,
                user: None
            }
        );
        assert_eq!(
            p("login ge-0/0/0.1"),
            PrCommand::Login {
                if_name: "ge-0/0/0.1".into(),
                ip: None,
                user: None
            }
        );
        assert_eq!(
            p("logout fastEthernet 3/0.100"),
            PrCommand::Logout("fastEthernet 3/0.100".into())
        );
        assert_eq!(p("drop"), PrCommand::Drop);
        assert_eq!(p("list"), PrCommand::List);
        assert_eq!(p("quit"), PrCommand::Quit);
        for bad in [
            "login",
            "logout",
            "list x",
            "frob",
            "login a 10.0.0.1 u extra",
            "login \"a",
        ] {
            assert!(PrCommand::parse(bad).is_err(), "{bad}");
        }
    }
}
