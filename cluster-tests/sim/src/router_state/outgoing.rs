//! The router's requests in flight: sending them (each keeps its End-to-End Identifier),
//! re-addressing them, and what a refused or failed one does next. A 3006 naming a connected
//! SAE sends it there at once (the first two times); anything else holds it until an SAE sends
//! SRQ or its back-off ends; after [`super::RouterConfig::max_attempts`] sends (or
//! [`RouterState::abandon_held`]) the last outcome completes it.

use std::time::{Duration, Instant};

use sae_diameter::codes::{avp, juniper, result, vendor};
use sae_diameter::jsrc::{self, SubscriberMessage};
use sae_diameter::peer::RequestFailure;
use sae_diameter::{CommandFlags, Message};

use super::{
    AcctType, Outgoing, RouterState, Session, SrqReason, check_answer, command_name, failure_text,
    identity,
};
use crate::events::SimEvent;

/// What a request of the router is for, and what its answer completes.
#[derive(Debug)]
pub(super) enum Pending {
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
pub(super) struct InFlight {
    pub(super) what: Pending,
    /// As sent; re-addressed and sent again on a retry.
    request: Message,
    /// The SAE it went to last.
    pub(super) to: String,
    /// Sends so far.
    attempts: u32,
}

/// A request waiting for an SAE to become active (SRQ) or for its back-off to end.
#[derive(Debug)]
pub(super) struct Held {
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

impl RouterState {
    pub(super) fn send(&mut self, to: &str, mut request: Message, pending: Pending) -> u64 {
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

    /// The answer (or failure) of the request sent with `token`. A 3006 or 3004 answer (and,
    /// with [`super::RouterConfig::retry_failures`], a timeout or a closed connection) sends
    /// the request again while attempts are left: a 3006 naming a connected SAE at once to it,
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
    pub(super) fn release_held(&mut self, to: &str) {
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
    pub(super) fn retry_due(&mut self, now: Instant) {
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
}

#[cfg(test)]
mod tests {

    use std::time::{Duration, Instant};

    use sae_diameter::jsrc::{RequestType, SubscriberMessage};
    use sae_diameter::peer::RequestFailure;

    use crate::events::SimEvent;
    use crate::router_state::test_support::*;
    use crate::router_state::*;

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
