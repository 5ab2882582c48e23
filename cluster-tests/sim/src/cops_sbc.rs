//! The SBC PEP role of `sae-sim sbc`, sans-IO: the call table and every admission decision.
//!
//! - A new call while the COPS connection is up is a REQ with a fresh handle and one
//!   [`CallRequest`] in a named ClientSI; DEC Install admits it, DEC Remove (or a DEC Error)
//!   denies it (the PEP then deletes the request state with DRQ).
//! - While the connection is down, new calls are denied locally (`denied-while-down`, the 503
//!   of an SBC) unless `allow_while_down` (then `admitted-while-down`: the PDP never hears of
//!   them). A call waiting for its DEC when the connection fails counts as new.
//! - Calls already up are not affected by failures. Hanging one up sends DRQ (reason Tear) if
//!   connected; a PDP-admitted call hung up while down has its DRQ queued for the next
//!   connection; a call admitted while down is just dropped.
//! - SSQ: every PDP-admitted call's REQ is re-sent (same handle), then SSC.
//! - `--calls N --rate R`: N calls `call{n}` at R per second from the first CAT, each hung up
//!   after `--hold-secs` (0: kept).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use sae_cops::message::DecisionContent;
use sae_cops::object::{ClientSi, Command, Context, Handle, RType, Reason, ReasonCode};
use sae_cops::pep::{AdmissionWhileDown, PepConnection};
use sae_cops::pib::CallRequest;
use sae_cops::pr::{RequestClientSi, encode_request_client_si};
use sae_cops::usage::UsageClass;

use crate::cops_driver::{Directive, PepRole};
use crate::cops_events::{CopsEvent, handle_hex};

/// Client types an SBC may open with.
pub const SBC_CLIENT_TYPES: [u16; 3] = [0x800A, 0x7926, 0x7929];

/// How the SBC behaves.
#[derive(Debug, Clone)]
pub struct SbcConfig {
    /// Admit new calls while the COPS connection is down.
    pub while_down: AdmissionWhileDown,
    /// Bandwidth of a call when the command does not say.
    pub bandwidth_kbps: u32,
    /// Realm of a call when the command does not say.
    pub realm: String,
    /// Media streams per call.
    pub media_streams: u32,
    /// Calls of the plan (`call0` … `call{N-1}`), started at the first CAT.
    pub calls: u64,
    /// Plan pacing, calls per second (0: all at once).
    pub rate: f64,
    /// Hang plan calls up after this long (`None`: keep them).
    pub hold: Option<Duration>,
}

impl Default for SbcConfig {
    fn default() -> Self {
        SbcConfig {
            while_down: AdmissionWhileDown::default(),
            bandwidth_kbps: 64,
            realm: String::new(),
            media_streams: 1,
            calls: 0,
            rate: 10.0,
            hold: None,
        }
    }
}

/// The SBC's control commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SbcCommand {
    /// `call <call-id> [bandwidth-kbps] [realm]`
    Call {
        call_id: String,
        bandwidth_kbps: Option<u32>,
        realm: Option<String>,
    },
    /// `hangup <call-id>`
    Hangup(String),
    /// `drop`: close the TCP connection abruptly.
    Drop,
    /// `cc`: send CC.
    Cc,
    /// `list`
    List,
    /// `quit`
    Quit,
}

impl SbcCommand {
    /// Parses a line; `Ok(None)` for blank lines and `#` comments.
    pub fn parse(line: &str) -> Result<Option<SbcCommand>, String> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return Ok(None);
        }
        let w: Vec<&str> = line.split_whitespace().collect();
        let cmd = match (w[0], w.len()) {
            ("call", 2..=4) => SbcCommand::Call {
                call_id: w[1].to_owned(),
                bandwidth_kbps: match w.get(2) {
                    Some(b) => Some(b.parse().map_err(|e| format!("bad bandwidth {b:?}: {e}"))?),
                    None => None,
                },
                realm: w.get(3).map(|s| (*s).to_owned()),
            },
            ("hangup", 2) => SbcCommand::Hangup(w[1].to_owned()),
            ("drop", 1) => SbcCommand::Drop,
            ("cc", 1) => SbcCommand::Cc,
            ("list", 1) => SbcCommand::List,
            ("quit", 1) => SbcCommand::Quit,
            ("call" | "hangup" | "drop" | "cc" | "list" | "quit", _) => {
                return Err(format!("wrong number of arguments: {line}"));
            }
            (other, _) => return Err(format!("unknown command {other:?}")),
        };
        Ok(Some(cmd))
    }
}

/// Where a call stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    /// REQ sent at this instant, no DEC yet.
    Pending(Instant),
    /// DEC Install received.
    Admitted,
    /// Admitted locally while the connection was down; the PDP does not know it.
    AdmittedWhileDown,
}

impl CallState {
    fn name(self) -> &'static str {
        match self {
            CallState::Pending(_) => "pending",
            CallState::Admitted => "admitted",
            CallState::AdmittedWhileDown => "admitted-while-down",
        }
    }
}

/// One call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub call_id: String,
    pub handle: Option<Handle>,
    pub request: CallRequest,
    pub state: CallState,
    /// Plan calls: hang up at this instant.
    pub hangup_at: Option<Instant>,
}

#[derive(Debug, Clone)]
struct Plan {
    next: u64,
    count: u64,
    next_at: Instant,
    interval: Duration,
    outcomes: u64,
    admitted: u64,
    denied: u64,
}

/// The SBC: calls and decisions.
#[derive(Debug)]
pub struct SbcState {
    config: SbcConfig,
    calls: BTreeMap<String, Call>,
    by_handle: HashMap<Handle, String>,
    next_handle: u32,
    next_instance: u32,
    up: bool,
    /// DRQs of calls hung up while down, for the next connection.
    queued_drq: Vec<Handle>,
    plan: Option<Plan>,
    events: VecDeque<CopsEvent>,
}

impl SbcState {
    /// An SBC with no calls; `first_handle` lets tests and restarts pick distinct handles.
    pub fn new(config: SbcConfig, first_handle: u32) -> Self {
        SbcState {
            config,
            calls: BTreeMap::new(),
            by_handle: HashMap::new(),
            next_handle: first_handle.max(1),
            next_instance: 1,
            up: false,
            queued_drq: Vec::new(),
            plan: None,
            events: VecDeque::new(),
        }
    }

    /// The call table.
    pub fn calls(&self) -> &BTreeMap<String, Call> {
        &self.calls
    }

    /// DRQs waiting for a connection.
    pub fn queued_drqs(&self) -> &[Handle] {
        &self.queued_drq
    }

    fn emit(&mut self, e: CopsEvent) {
        self.events.push_back(e);
    }

    fn call_event(
        &mut self,
        call_id: &str,
        result: &str,
        latency: Option<Duration>,
        handle: Option<&Handle>,
        error: Option<String>,
    ) {
        self.emit(CopsEvent::Call {
            call_id: call_id.to_owned(),
            result: result.to_owned(),
            latency_us: latency.map(|d| d.as_micros() as u64),
            handle: handle.map(handle_hex),
            error,
        });
        if let Some(p) = &mut self.plan
            && call_id.starts_with("call")
            && call_id[4..].parse::<u64>().is_ok_and(|n| n < p.count)
            && result != "pending"
        {
            p.outcomes += 1;
            if result.starts_with("admitted") {
                p.admitted += 1;
            } else {
                p.denied += 1;
            }
            if p.outcomes == p.count {
                let (admitted, denied) = (p.admitted, p.denied);
                self.emit(CopsEvent::CallsDone { admitted, denied });
            }
        }
    }

    /// A new call.
    pub fn call(
        &mut self,
        now: Instant,
        pep: Option<&mut PepConnection>,
        call_id: &str,
        bandwidth_kbps: Option<u32>,
        realm: Option<String>,
    ) {
        if self.calls.contains_key(call_id) {
            self.emit(CopsEvent::Error {
                error: format!("call {call_id} exists"),
            });
            return;
        }
        let id = self.next_instance;
        self.next_instance = self.next_instance.wrapping_add(1).max(1);
        let request = CallRequest {
            id,
            call_id: call_id.to_owned(),
            realm: realm.unwrap_or_else(|| self.config.realm.clone()),
            media_streams: self.config.media_streams,
            bandwidth_kbps: bandwidth_kbps.unwrap_or(self.config.bandwidth_kbps),
        };
        let hangup_at = self.plan_hangup(now, call_id);
        let mut call = Call {
            call_id: call_id.to_owned(),
            handle: None,
            request,
            state: CallState::Pending(now),
            hangup_at,
        };
        match pep.filter(|p| p.is_up()) {
            Some(pep) => {
                let handle = Handle::from_u32(self.next_handle);
                self.next_handle = self.next_handle.wrapping_add(1).max(1);
                match send_call_request(now, pep, &handle, &call.request) {
                    Ok(()) => {
                        call.handle = Some(handle.clone());
                        self.by_handle.insert(handle, call_id.to_owned());
                        self.calls.insert(call_id.to_owned(), call);
                    }
                    Err(e) => {
                        self.call_event(call_id, "denied", Some(Duration::ZERO), None, Some(e))
                    }
                }
            }
            None => self.while_down(call),
        }
    }

    fn plan_hangup(&self, now: Instant, call_id: &str) -> Option<Instant> {
        let p = self.plan.as_ref()?;
        let n: u64 = call_id.strip_prefix("call")?.parse().ok()?;
        (n < p.count)
            .then_some(self.config.hold)
            .flatten()
            .and_then(|h| now.checked_add(h))
    }

    /// A new call (or one whose DEC will not come) while the connection is down.
    fn while_down(&mut self, mut call: Call) {
        let latency = match call.state {
            CallState::Pending(_) => Some(Duration::ZERO),
            _ => None,
        };
        if let Some(h) = call.handle.take() {
            self.by_handle.remove(&h);
        }
        if self.config.while_down.admits_new_call(false) {
            call.state = CallState::AdmittedWhileDown;
            let id = call.call_id.clone();
            self.calls.insert(id.clone(), call);
            self.call_event(&id, "admitted-while-down", latency, None, None);
        } else {
            self.calls.remove(&call.call_id);
            self.call_event(&call.call_id, "denied-while-down", latency, None, None);
        }
    }

    /// Ends a call.
    pub fn hangup(&mut self, now: Instant, pep: Option<&mut PepConnection>, call_id: &str) {
        let Some(call) = self.calls.remove(call_id) else {
            self.emit(CopsEvent::Error {
                error: format!("no call {call_id}"),
            });
            return;
        };
        let drq = match (call.state, call.handle) {
            (CallState::AdmittedWhileDown, _) | (_, None) => "none",
            (_, Some(h)) => {
                self.by_handle.remove(&h);
                match pep.filter(|p| p.is_up()) {
                    Some(pep) => {
                        let _ = pep.delete(now, h, Reason::new(ReasonCode::Tear));
                        "sent"
                    }
                    None => {
                        self.queued_drq.push(h);
                        "queued"
                    }
                }
            }
        };
        if let CallState::Pending(started) = call.state {
            self.call_event(
                call_id,
                "abandoned",
                Some(now.saturating_duration_since(started)),
                None,
                None,
            );
        }
        self.emit(CopsEvent::Hangup {
            call_id: call_id.to_owned(),
            by: "local".into(),
            drq: drq.into(),
        });
    }

    fn list(&mut self) {
        let entries: Vec<CopsEvent> = self
            .calls
            .values()
            .map(|c| CopsEvent::CallEntry {
                call_id: c.call_id.clone(),
                state: c.state.name().into(),
                handle: c.handle.as_ref().map(handle_hex),
                realm: c.request.realm.clone(),
                bandwidth_kbps: c.request.bandwidth_kbps,
            })
            .collect();
        let count = entries.len();
        self.events.extend(entries);
        self.emit(CopsEvent::Listed { count });
    }

    fn start_plan(&mut self, now: Instant) {
        if self.plan.is_some() || self.config.calls == 0 {
            return;
        }
        let interval = if self.config.rate > 0.0 {
            Duration::try_from_secs_f64(1.0 / self.config.rate).unwrap_or(Duration::ZERO)
        } else {
            Duration::ZERO
        };
        self.plan = Some(Plan {
            next: 0,
            count: self.config.calls,
            next_at: now,
            interval,
            outcomes: 0,
            admitted: 0,
            denied: 0,
        });
    }

    fn run_plan(&mut self, now: Instant, mut pep: Option<&mut PepConnection>) {
        loop {
            let Some(p) = &mut self.plan else { return };
            if p.next >= p.count || p.next_at > now {
                return;
            }
            let n = p.next;
            p.next += 1;
            p.next_at = if p.interval.is_zero() {
                now
            } else {
                p.next_at + p.interval
            };
            let id = format!("call{n}");
            self.call(now, pep.as_deref_mut(), &id, None, None);
        }
    }

    fn run_hangups(&mut self, now: Instant, mut pep: Option<&mut PepConnection>) {
        let due: Vec<String> = self
            .calls
            .values()
            .filter(|c| c.hangup_at.is_some_and(|t| t <= now))
            .filter(|c| !matches!(c.state, CallState::Pending(_)))
            .map(|c| c.call_id.clone())
            .collect();
        for id in due {
            self.hangup(now, pep.as_deref_mut(), &id);
        }
    }
}

fn send_call_request(
    now: Instant,
    pep: &mut PepConnection,
    handle: &Handle,
    call: &CallRequest,
) -> Result<(), String> {
    let instance = call.to_instance().map_err(|e| e.to_string())?;
    let named =
        encode_request_client_si(&RequestClientSi(vec![instance])).map_err(|e| e.to_string())?;
    let context = Context {
        r_type: RType::RESOURCE_ALLOCATION,
        m_type: 0,
    };
    pep.request(now, handle.clone(), context, vec![ClientSi::Named(named)])
        .map_err(|e| e.to_string())
}

impl PepRole for SbcState {
    type Command = SbcCommand;

    fn up(&mut self, now: Instant, pep: &mut PepConnection) {
        self.up = true;
        for h in std::mem::take(&mut self.queued_drq) {
            let _ = pep.delete(now, h, Reason::new(ReasonCode::Tear));
        }
        self.start_plan(now);
        self.run_plan(now, Some(pep));
    }

    fn down(&mut self, _now: Instant) {
        self.up = false;
        let pending: Vec<Call> = self
            .calls
            .values()
            .filter(|c| matches!(c.state, CallState::Pending(_)))
            .cloned()
            .collect();
        for c in pending {
            self.while_down(c);
        }
    }

    fn decision(
        &mut self,
        now: Instant,
        pep: &mut PepConnection,
        handle: Handle,
        decision: DecisionContent,
        _solicited: bool,
    ) {
        let Some(call_id) = self.by_handle.get(&handle).cloned() else {
            tracing::debug!(?handle, "DEC for an unknown handle");
            return;
        };
        let Some(call) = self.calls.get_mut(&call_id) else {
            return;
        };
        let (admit, error) = match &decision {
            DecisionContent::Decisions(d) => match d.first().map(|d| d.flags.command) {
                Some(Command::Install) => (true, None),
                Some(Command::Remove) => (false, None),
                _ => (false, Some("DEC without Install or Remove".to_owned())),
            },
            DecisionContent::Error(e) => (false, Some(format!("DEC Error {:?}", e.code))),
        };
        match (call.state, admit) {
            (CallState::Pending(started), true) => {
                call.state = CallState::Admitted;
                let latency = now.saturating_duration_since(started);
                self.call_event(&call_id, "admitted", Some(latency), Some(&handle), None);
            }
            (CallState::Pending(started), false) => {
                self.calls.remove(&call_id);
                self.by_handle.remove(&handle);
                let _ = pep.delete(now, handle.clone(), Reason::new(ReasonCode::Tear));
                let latency = now.saturating_duration_since(started);
                self.call_event(&call_id, "denied", Some(latency), Some(&handle), error);
            }
            (_, true) => {}
            (_, false) => {
                // The PDP takes an admitted call back (preemption).
                self.calls.remove(&call_id);
                self.by_handle.remove(&handle);
                let _ = pep.delete(now, handle, Reason::new(ReasonCode::Preempted));
                self.emit(CopsEvent::Hangup {
                    call_id,
                    by: "pdp".into(),
                    drq: "sent".into(),
                });
            }
        }
    }

    fn malformed_decision(&mut self, now: Instant, handle: Handle) {
        if let Some(call_id) = self.by_handle.remove(&handle)
            && let Some(call) = self.calls.remove(&call_id)
        {
            match call.state {
                CallState::Pending(started) => self.call_event(
                    &call_id,
                    "denied",
                    Some(now.saturating_duration_since(started)),
                    Some(&handle),
                    Some("malformed DEC".into()),
                ),
                _ => self.emit(CopsEvent::Hangup {
                    call_id,
                    by: "pdp".into(),
                    drq: "sent".into(),
                }),
            }
        }
    }

    fn sync(&mut self, now: Instant, pep: &mut PepConnection, handle: Option<Handle>) {
        for c in self.calls.values() {
            let Some(h) = &c.handle else { continue };
            if handle.as_ref().is_some_and(|x| x != h) {
                continue;
            }
            let _ = send_call_request(now, pep, h, &c.request);
        }
        let _ = pep.sync_complete(now, handle);
    }

    fn command(
        &mut self,
        now: Instant,
        pep: Option<&mut PepConnection>,
        command: SbcCommand,
    ) -> Directive {
        match command {
            SbcCommand::Call {
                call_id,
                bandwidth_kbps,
                realm,
            } => self.call(now, pep, &call_id, bandwidth_kbps, realm),
            SbcCommand::Hangup(id) => self.hangup(now, pep, &id),
            SbcCommand::List => self.list(),
            SbcCommand::Drop => return Directive::Drop,
            SbcCommand::Cc => return Directive::ClientClose,
            SbcCommand::Quit => return Directive::Quit,
        }
        Directive::Continue
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let plan = self
            .plan
            .as_ref()
            .filter(|p| p.next < p.count)
            .map(|p| p.next_at);
        let hangup = self
            .calls
            .values()
            .filter(|c| !matches!(c.state, CallState::Pending(_)))
            .filter_map(|c| c.hangup_at)
            .min();
        plan.into_iter().chain(hangup).min()
    }

    fn timeout(&mut self, now: Instant, mut pep: Option<&mut PepConnection>) {
        self.run_plan(now, pep.as_deref_mut());
        self.run_hangups(now, pep);
    }

    fn poll_event(&mut self) -> Option<CopsEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {

    use sae_cops::Backoff;
    use sae_cops::message::{Body, Decision};
    use sae_cops::object::DecisionFlags;
    use sae_cops::pr::decode_request_client_si;

    use super::*;

    fn up_pep(t0: Instant) -> PepConnection {
        crate::cops_test_support::up_pep(t0, 0x800A, "sbc1", 30, None)
    }

    use crate::cops_test_support::sent;

    fn events(s: &mut SbcState) -> Vec<CopsEvent> {
        std::iter::from_fn(|| s.poll_event()).collect()
    }

    fn dec(command: Command) -> DecisionContent {
        DecisionContent::Decisions(vec![Decision::new(
            Context {
                r_type: RType::RESOURCE_ALLOCATION,
                m_type: 0,
            },
            DecisionFlags::new(command),
        )])
    }

    fn result_of(e: &[CopsEvent], id: &str) -> Option<String> {
        e.iter().find_map(|e| match e {
            CopsEvent::Call {
                call_id, result, ..
            } if call_id == id => Some(result.clone()),
            _ => None,
        })
    }

    #[test]
    fn a_call_is_a_req_with_a_call_request_and_install_admits_remove_denies() {
        let t0 = Instant::now();
        let mut pep = up_pep(t0);
        let mut s = SbcState::new(SbcConfig::default(), 100);
        s.call(t0, Some(&mut pep), "a", Some(128), Some("voice".into()));
        s.call(t0, Some(&mut pep), "b", None, None);
        let msgs = sent(&mut pep);
        assert_eq!(msgs.len(), 2);
        let Body::Request(req) = &msgs[0].body else {
            panic!("{msgs:?}")
        };
        assert_eq!(req.handle, Handle::from_u32(100));
        let ClientSi::Named(named) = &req.client_si[0] else {
            panic!()
        };
        let inst = decode_request_client_si(named).unwrap();
        let call = sae_cops::pib::find::<CallRequest>(&inst.0)
            .unwrap()
            .unwrap();
        assert_eq!(call.call_id, "a");
        assert_eq!(call.bandwidth_kbps, 128);
        assert_eq!(call.realm, "voice");

        let t1 = t0 + Duration::from_millis(3);
        s.decision(
            t1,
            &mut pep,
            Handle::from_u32(100),
            dec(Command::Install),
            true,
        );
        s.decision(
            t1,
            &mut pep,
            Handle::from_u32(101),
            dec(Command::Remove),
            true,
        );
        let e = events(&mut s);
        assert_eq!(result_of(&e, "a").as_deref(), Some("admitted"));
        assert_eq!(result_of(&e, "b").as_deref(), Some("denied"));
        assert!(e.iter().any(|e| matches!(e, CopsEvent::Call { call_id, latency_us: Some(3000), .. } if call_id == "a")));
        // The denied call's state is deleted at the PDP.
        let msgs = sent(&mut pep);
        assert!(
            matches!(&msgs[..], [m] if matches!(&m.body, Body::DeleteRequest(d) if d.handle == Handle::from_u32(101)))
        );
        assert_eq!(s.calls().len(), 1);

        s.hangup(t1, Some(&mut pep), "a");
        let msgs = sent(&mut pep);
        assert!(
            matches!(&msgs[..], [m] if matches!(&m.body, Body::DeleteRequest(d) if d.handle == Handle::from_u32(100) && d.reason.code == ReasonCode::Tear))
        );
        assert!(
            events(&mut s)
                .iter()
                .any(|e| matches!(e, CopsEvent::Hangup { drq, .. } if drq == "sent"))
        );
        assert!(s.calls().is_empty());
    }

    #[test]
    fn while_down_new_calls_are_denied_and_calls_up_stay() {
        let t0 = Instant::now();
        let mut pep = up_pep(t0);
        let mut s = SbcState::new(SbcConfig::default(), 1);
        s.up(t0, &mut pep);
        s.call(t0, Some(&mut pep), "up", None, None);
        s.call(t0, Some(&mut pep), "waiting", None, None);
        s.decision(
            t0,
            &mut pep,
            Handle::from_u32(1),
            dec(Command::Install),
            true,
        );
        events(&mut s);
        // The connection fails: the call waiting for its DEC is a new call while down.
        s.down(t0);
        let e = events(&mut s);
        assert_eq!(
            result_of(&e, "waiting").as_deref(),
            Some("denied-while-down")
        );
        s.call(t0, None, "new", None, None);
        let e = events(&mut s);
        assert_eq!(result_of(&e, "new").as_deref(), Some("denied-while-down"));
        assert_eq!(s.calls().len(), 1);
        assert_eq!(s.calls()["up"].state, CallState::Admitted);

        // Hanging up the admitted call while down queues its DRQ for the next connection.
        s.hangup(t0, None, "up");
        assert!(
            events(&mut s)
                .iter()
                .any(|e| matches!(e, CopsEvent::Hangup { drq, .. } if drq == "queued"))
        );
        assert_eq!(s.queued_drqs(), &[Handle::from_u32(1)]);
        let mut pep = up_pep(t0);
        s.up(t0, &mut pep);
        let msgs = sent(&mut pep);
        assert!(
            matches!(&msgs[..], [m] if matches!(&m.body, Body::DeleteRequest(d) if d.handle == Handle::from_u32(1)))
        );
        assert!(s.queued_drqs().is_empty());
    }

    #[test]
    fn allow_while_down_admits_locally_and_hangup_sends_nothing() {
        let t0 = Instant::now();
        let cfg = SbcConfig {
            while_down: AdmissionWhileDown { allow: true },
            ..SbcConfig::default()
        };
        let mut s = SbcState::new(cfg, 1);
        s.call(t0, None, "x", None, None);
        let e = events(&mut s);
        assert_eq!(result_of(&e, "x").as_deref(), Some("admitted-while-down"));
        assert_eq!(s.calls()["x"].state, CallState::AdmittedWhileDown);
        assert!(s.calls()["x"].handle.is_none());
        let mut pep = up_pep(t0);
        s.up(t0, &mut pep);
        s.hangup(t0, Some(&mut pep), "x");
        assert!(sent(&mut pep).is_empty());
        assert!(
            events(&mut s)
                .iter()
                .any(|e| matches!(e, CopsEvent::Hangup { drq, .. } if drq == "none"))
        );
    }

    #[test]
    fn ssq_resends_the_admitted_calls_then_ssc() {
        let t0 = Instant::now();
        let mut pep = up_pep(t0);
        let mut s = SbcState::new(SbcConfig::default(), 7);
        s.call(t0, Some(&mut pep), "a", None, None);
        s.decision(
            t0,
            &mut pep,
            Handle::from_u32(7),
            dec(Command::Install),
            true,
        );
        sent(&mut pep);
        s.sync(t0, &mut pep, None);
        let msgs = sent(&mut pep);
        assert!(matches!(&msgs[0].body, Body::Request(r) if r.handle == Handle::from_u32(7)));
        assert!(matches!(&msgs[1].body, Body::SyncComplete(None)));
        // A second Install for the same call changes nothing.
        s.decision(
            t0,
            &mut pep,
            Handle::from_u32(7),
            dec(Command::Install),
            true,
        );
        assert_eq!(s.calls()["a"].state, CallState::Admitted);
    }

    #[test]
    fn the_plan_paces_calls_and_hangs_them_up_after_the_hold() {
        let t0 = Instant::now();
        let mut pep = up_pep(t0);
        let cfg = SbcConfig {
            calls: 3,
            rate: 10.0,
            hold: Some(Duration::from_secs(1)),
            ..SbcConfig::default()
        };
        let mut s = SbcState::new(cfg, 1);
        s.up(t0, &mut pep);
        assert_eq!(s.calls().len(), 1);
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_millis(100)));
        s.timeout(t0 + Duration::from_millis(250), Some(&mut pep));
        assert_eq!(s.calls().len(), 3);
        for h in 1..=3 {
            s.decision(
                t0,
                &mut pep,
                Handle::from_u32(h),
                dec(Command::Install),
                true,
            );
        }
        assert!(events(&mut s).iter().any(|e| matches!(
            e,
            CopsEvent::CallsDone {
                admitted: 3,
                denied: 0
            }
        )));
        sent(&mut pep);
        // call0 went at 0 s, call1 and call2 at the 250 ms tick.
        s.timeout(t0 + Duration::from_millis(1150), Some(&mut pep));
        assert_eq!(s.calls().len(), 2);
        s.timeout(t0 + Duration::from_secs(2), Some(&mut pep));
        assert!(s.calls().is_empty());
        assert_eq!(sent(&mut pep).len(), 3);
    }

    #[test]
    fn backoff_delays_double_up_to_the_ceiling() {
        let mut b = Backoff::with_limits(Duration::from_secs(1), Duration::from_secs(300), 20, 3);
        let delays: Vec<Duration> = (0..12).map(|_| b.next_delay()).collect();
        assert!(delays[0] <= Duration::from_secs(1) && delays[0] >= Duration::from_millis(800));
        assert!(delays[1] >= Duration::from_millis(1600));
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(300)));
        assert!(delays[11] >= Duration::from_secs(240), "{delays:?}");
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs(1));
    }

    #[test]
    fn commands_parse() {
        let p = |l: &str| SbcCommand::parse(l).unwrap().unwrap();
        assert_eq!(
            p("call c1 128 voice.example"),
            SbcCommand::Call {
                call_id: "c1".into(),
                bandwidth_kbps: Some(128),
                realm: Some("voice.example".into())
            }
        );
        assert_eq!(
            p("call c1"),
            SbcCommand::Call {
                call_id: "c1".into(),
                bandwidth_kbps: None,
                realm: None
            }
        );
        assert_eq!(p("hangup c1"), SbcCommand::Hangup("c1".into()));
        assert_eq!(p("drop"), SbcCommand::Drop);
        assert_eq!(p("cc"), SbcCommand::Cc);
        assert_eq!(p("list"), SbcCommand::List);
        assert_eq!(p("quit"), SbcCommand::Quit);
        assert_eq!(SbcCommand::parse(" # x").unwrap(), None);
        for bad in ["call", "call a fast", "hangup", "drop x", "dial a"] {
            assert!(SbcCommand::parse(bad).is_err(), "{bad}");
        }
    }
}
