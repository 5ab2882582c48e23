//! The router's answers to the SAE's requests: PPR (policies removed and installed, the
//! `--fail-ppr` and `--drop-ppr` globs), ASR, ACR (the counters asked for), SRQ (the SAE
//! becomes the active one, every session is replayed to it, `--drop-srq`), 3001 for anything
//! else; and the multi-SAE rule after each of them.

use std::time::Instant;

use sae_diameter::codes::{avp, command, result};
use sae_diameter::jsrc::{self, SubscriberMessage};
use sae_diameter::{Avp, Message, ProtocolError, Value};

use super::{AcctType, CAUSE_ADMINISTRATIVE, RouterState, SrqReason, command_name};
use crate::events::SimEvent;

impl RouterState {
    /// Answers a request of the SAE that came over the connection to `via`; `None` means the
    /// request is deliberately left unanswered (`--drop-ppr`, `--drop-srq`). Follow-up
    /// requests (STR after ASR, ACRs, SRQ to a different SAE, replays) are queued as
    /// [`super::Outgoing`].
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

    use std::time::{Duration, Instant};

    use sae_diameter::codes::{app, avp, command, juniper, result, vendor};
    use sae_diameter::jsrc::{AcctRecord, RequestType, SubscriberMessage};

    use sae_diameter::{Avp, Value};

    use crate::events::SimEvent;
    use crate::router_state::test_support::*;
    use crate::router_state::*;

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
}
