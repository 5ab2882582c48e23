//! The router's own actions on its session table: login (and the confirmation AAR),
//! activity, logout and idle logout, ACRs (START, INTERIM, STOP), its SRQ and the replays that
//! follow an SRR, listing; and what the final outcome of each of its requests changes.

use std::collections::BTreeMap;
use std::time::Instant;

use sae_diameter::codes::{avp, command, result};
use sae_diameter::jsrc::{self, PolicyInstall, RequestType, SubscriberMessage};
use sae_diameter::peer::RequestFailure;
use sae_diameter::{Avp, Message, Value};

use super::outgoing::{InFlight, Pending};
use super::{
    AcctType, CAUSE_IDLE_TIMEOUT, CAUSE_LOGOUT, LoginSpec, Policy, RouterState, Session, SrqReason,
    check_answer, identity, utf8,
};
use crate::events::SimEvent;

impl RouterState {
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

    pub(super) fn srq_to(&mut self, to: &str, reason: SrqReason) {
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
    pub(super) fn send_acr(
        &mut self,
        now: Instant,
        sid: &str,
        kind: AcctType,
        names: &[String],
        to: &str,
    ) {
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
    pub(super) fn end_session(&mut self, now: Instant, sid: &str, cause: i32, to: &str) {
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
    pub(super) fn replay_all(&mut self, to: &str) -> usize {
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
    pub(super) fn install(
        &mut self,
        now: Instant,
        sid: &str,
        installs: Vec<PolicyInstall>,
    ) -> Vec<String> {
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

    /// A request's final outcome.
    pub(super) fn complete(
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
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::{Duration, Instant};

    use sae_diameter::Message;
    use sae_diameter::codes::{app, avp, command, result};
    use sae_diameter::jsrc::{RequestType, SubscriberMessage};
    use sae_diameter::peer::RequestFailure;

    use crate::events::SimEvent;
    use crate::router_state::test_support::*;
    use crate::router_state::*;

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
}
