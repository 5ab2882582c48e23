//! What the router state's tests share: a router connected to one SAE, subscribers, the
//! SAE's requests and answers.

use std::net::Ipv4Addr;
use std::time::Instant;

use sae_diameter::codes::{app, avp, command};
use sae_diameter::jsrc::{self, AcctRecord, PolicyInstall, SubscriberMessage};
use sae_diameter::{Avp, Message, Value};

use super::{LoginSpec, Outgoing, RouterConfig, RouterState, utf8};
use crate::events::SimEvent;

pub(super) const SAE1: &str = "sae-1.sae.localdomain";
pub(super) const SAE2: &str = "sae-2.sae.localdomain";

pub(super) fn router(confirm: bool) -> RouterState {
    let mut cfg = RouterConfig::new("rtr.test.realm", "test.realm", app::JSRC);
    cfg.confirm = confirm;
    cfg.session_id_high = 7;
    let mut r = RouterState::new(cfg);
    r.sae_up(SAE1, "sae.localdomain");
    r
}

pub(super) fn spec(user: &str) -> LoginSpec {
    LoginSpec {
        user: user.into(),
        ip: Ipv4Addr::new(10, 0, 0, 1),
        nas_port_id: "ge-0/0/0.1".into(),
        n: Some(1),
    }
}

pub(super) fn events(r: &mut RouterState) -> Vec<SimEvent> {
    std::iter::from_fn(|| r.poll_event()).collect()
}

pub(super) fn outgoing(r: &mut RouterState) -> Vec<Outgoing> {
    std::iter::from_fn(|| r.poll_outgoing()).collect()
}

pub(super) fn install(name: &str, acct: bool) -> PolicyInstall {
    PolicyInstall {
        policy_name: name.into(),
        definition: None,
        collect_accounting: acct,
    }
}

pub(super) fn answer_to(req: &Message, from: &str, code: u32) -> Message {
    let mut a = Message::answer_to(req);
    a.set_result_code(code);
    a.push_origin(from, "sae.localdomain");
    a
}

/// Logs `user` in through SAE1; the AAA installs `policies`. Returns the Session-Id.
pub(super) fn logged_in(
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

pub(super) fn ppr(from: &str, sid: &str, installs: &[(&str, bool)], removes: &[&str]) -> Message {
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

pub(super) fn sae_request(code: u32, from: &str, sid: Option<&str>) -> Message {
    let mut m = Message::request(code, app::JSRC, true);
    if let Some(sid) = sid {
        m.push(utf8(avp::SESSION_ID, sid));
    }
    m.push_origin(from, "sae.localdomain");
    m
}

pub(super) fn acct_records(m: &Message) -> Vec<AcctRecord> {
    m.acct_records().unwrap()
}

/// An answer refusing `req`: 3006 naming `to` in a Redirect-Host (DiameterURI), or 3004.
pub(super) fn refusal(req: &Message, from: &str, code: u32, to: Option<&str>) -> Message {
    let mut a = answer_to(req, from, code);
    if let Some(to) = to {
        a.push(Avp::mandatory(
            avp::REDIRECT_HOST,
            &Value::DiameterUri(format!("aaa://{to}:3868;transport=tcp")),
        ));
    }
    a
}

pub(super) fn srq_from(r: &mut RouterState, now: Instant, sae: &str) {
    let srr = r
        .handle_request(now, sae, &sae_request(command::SESSION_RESYNC, sae, None))
        .unwrap();
    assert_eq!(srr.result_code(), Some(2001));
}

pub(super) fn realm_of(m: &Message) -> &str {
    m.find(avp::DESTINATION_REALM, 0).unwrap().as_str().unwrap()
}
