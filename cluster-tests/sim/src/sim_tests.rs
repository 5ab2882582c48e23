//! End-to-end tests of the router driver against scripted SAEs: real TCP peers on 127.0.0.1
//! built from `sae-diameter` and the same `connection::drive`, answering the router's requests
//! by script and sending PPR/ASR/ACR/SRQ of their own.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sae_diameter::codes::{DisconnectCause, app, avp, command, vendor};
use sae_diameter::jsrc::{AcctRecord, PolicyInstall, RequestType, SubscriberMessage};
use sae_diameter::peer::{RequestFailure, Role};
use sae_diameter::tokio::connection::{self, ConnectionHandle, ConnectionHooks};
use sae_diameter::{
    Avp, Capabilities, CloseReason, Dictionary, Message, Peer, PeerConfig, PeerInfo, Value,
    VendorApplication, jsrc,
};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::control::Control;
use crate::diameter_router::RouterIdentity;
use crate::events::SimEvent;
use crate::router_state::RouterConfig;
use crate::sim::{self, Outcome, Plan, RouterHandle, SimConfig};
use crate::subscribers::{Scenario, Templates};

const RTR: &str = "rtr.test.realm";
const WAIT: Duration = Duration::from_secs(5);

type Answerer = Arc<dyn Fn(&str, &Message) -> Message + Send + Sync>;

/// The answer a cooperative SAE gives: 2001; a login AAA installs `gold` with accounting;
/// ACA echoes the record type and number.
fn cooperative(host: &str, req: &Message) -> Message {
    let mut a = Message::answer_to(req);
    a.set_result_code(2001);
    a.push_origin(host, "sae.localdomain");
    match req.header.command_code {
        command::AA => {
            a.push(Avp::mandatory(
                avp::AUTH_APPLICATION_ID,
                &Value::Unsigned32(app::JSRC),
            ));
            if req.request_type() == Some(RequestType::AddressAuthorization) {
                a.push(install("gold", true).to_avp());
            }
        }
        command::ACCOUNTING => {
            for code in [avp::ACCOUNTING_RECORD_TYPE, avp::ACCOUNTING_RECORD_NUMBER] {
                if let Some(x) = req.find(code, 0) {
                    a.push(x.clone());
                }
            }
        }
        _ => {}
    }
    a
}

fn install(name: &str, acct: bool) -> PolicyInstall {
    PolicyInstall {
        policy_name: name.into(),
        definition: None,
        collect_accounting: acct,
    }
}

struct SaeHooks {
    host: String,
    answer: Answerer,
    seen: mpsc::UnboundedSender<Message>,
}

impl ConnectionHooks for SaeHooks {
    fn capabilities(&mut self, _info: &PeerInfo) -> Result<(), (u32, String)> {
        Ok(())
    }
    fn up(&mut self, _info: &PeerInfo) {}
    fn request(&mut self, request: Message) -> Message {
        let _ = self.seen.send(request.clone());
        (self.answer)(&self.host, &request)
    }
    fn closed(&mut self, _reason: &CloseReason) {}
}

/// A scripted SAE: accepts connections, answers by script, records every request.
struct Sae {
    host: String,
    addr: SocketAddr,
    requests: mpsc::UnboundedReceiver<Message>,
    conns: mpsc::UnboundedReceiver<(ConnectionHandle, JoinHandle<CloseReason>)>,
    conn: Option<(ConnectionHandle, JoinHandle<CloseReason>)>,
}

impl Sae {
    async fn start(host: &str, answer: Answerer) -> Sae {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (seen, requests) = mpsc::unbounded_channel();
        let (conn_tx, conns) = mpsc::unbounded_channel();
        let host_owned = host.to_owned();
        tokio::spawn(async move {
            while let Ok((stream, remote)) = listener.accept().await {
                let caps = Capabilities {
                    origin_host: host_owned.clone(),
                    origin_realm: "sae.localdomain".into(),
                    host_ip_addresses: vec![addr.ip()],
                    vendor_id: vendor::JUNIPER,
                    product_name: "scripted-sae".into(),
                    supported_vendor_ids: vec![vendor::JUNIPER],
                    vendor_specific_applications: vec![
                        VendorApplication::auth(vendor::JUNIPER, app::JSRC),
                        VendorApplication::auth(vendor::JUNIPER, app::PTSP),
                    ],
                    ..Default::default()
                };
                let config = PeerConfig::new(Role::Responder, caps, Arc::new(Dictionary::base()));
                let peer = Peer::new(Arc::new(config), u64::from(remote.port()), false);
                let hooks = SaeHooks {
                    host: host_owned.clone(),
                    answer: answer.clone(),
                    seen: seen.clone(),
                };
                let (handle, commands) = connection::channel(remote);
                let task = tokio::spawn(connection::drive(stream, peer, hooks, commands));
                let _ = conn_tx.send((handle, task));
            }
        });
        Sae {
            host: host.to_owned(),
            addr,
            requests,
            conns,
            conn: None,
        }
    }

    async fn handle(&mut self) -> ConnectionHandle {
        if self.conn.is_none() {
            self.conn = tokio::time::timeout(WAIT, self.conns.recv())
                .await
                .ok()
                .flatten();
        }
        self.conn.as_ref().expect("a router connected").0.clone()
    }

    /// The next request the SAE received (skipping none).
    async fn next_request(&mut self, what: &str) -> Message {
        tokio::time::timeout(WAIT, self.requests.recv())
            .await
            .unwrap_or_else(|_| panic!("{}: no {what} in time", self.host))
            .expect("SAE running")
    }

    fn no_request(&mut self) -> bool {
        self.requests.try_recv().is_err()
    }

    /// A request of the SAE to the router with the AVPs the dictionary requires.
    fn request(&self, code: u32, session_id: Option<&str>) -> Message {
        // SRQ is not proxiable (the dictionary's P bit rule); the subscriber commands are.
        let proxiable = code != command::SESSION_RESYNC;
        let mut m = Message::request(code, app::JSRC, proxiable);
        if let Some(sid) = session_id {
            m.push(Avp::mandatory(
                avp::SESSION_ID,
                &Value::Utf8String(sid.to_owned()),
            ));
        }
        m.push(Avp::mandatory(
            avp::AUTH_APPLICATION_ID,
            &Value::Unsigned32(app::JSRC),
        ));
        m.push_origin(&self.host, "sae.localdomain");
        m.push(Avp::mandatory(
            avp::DESTINATION_REALM,
            &Value::DiameterIdentity("test.realm".into()),
        ));
        m.push(Avp::mandatory(
            avp::DESTINATION_HOST,
            &Value::DiameterIdentity(RTR.into()),
        ));
        m
    }

    async fn send(&mut self, req: Message) -> Result<Message, RequestFailure> {
        self.handle().await.request(req, Some(WAIT)).await
    }
}

/// The router's events, with what was seen so far for failure messages.
struct Events {
    rx: mpsc::UnboundedReceiver<SimEvent>,
    seen: Vec<SimEvent>,
}

impl Events {
    async fn wait(&mut self, what: &str, pred: impl Fn(&SimEvent) -> bool) -> SimEvent {
        let found = tokio::time::timeout(WAIT, async {
            loop {
                let e = self.rx.recv().await?;
                self.seen.push(e.clone());
                if pred(&e) {
                    return Some(e);
                }
            }
        })
        .await;
        match found {
            Ok(Some(e)) => e,
            _ => panic!("no {what}; events so far:\n{:#?}", self.seen),
        }
    }
}

fn config(connect: Vec<SocketAddr>) -> SimConfig {
    let mut router = RouterConfig::new(RTR, "test.realm", app::JSRC);
    router.inactivity = None;
    router.session_id_high = 1;
    SimConfig {
        connect: connect.into_iter().map(Into::into).collect(),
        identity: RouterIdentity {
            origin_host: RTR.into(),
            origin_realm: "test.realm".into(),
            applications: vec![app::JSRC],
            watchdog_interval: Duration::from_secs(30),
        },
        router,
        reopen: false,
        startup_srq: false,
        request_timeout: Duration::from_secs(2),
        connect_timeout: sim::DEFAULT_CONNECT_TIMEOUT,
        templates: Templates::default(),
        plan: Plan::None,
        rate: 0.0,
        reconnect: None,
    }
}

fn start(cfg: SimConfig) -> (RouterHandle, JoinHandle<Outcome>, Events) {
    let (sink, rx) = mpsc::unbounded_channel();
    let (handle, task) = sim::spawn(cfg, sink);
    (handle, task, Events { rx, seen: vec![] })
}

fn login(user: &str) -> Control {
    Control::Login {
        user: user.into(),
        ip: None,
        nas_port_id: None,
    }
}

async fn logged_in(ev: &mut Events, user: &str) -> String {
    match ev
        .wait(&format!("login of {user}"), |e| {
            matches!(e, SimEvent::Login { user: u, .. } | SimEvent::LoginFailed { user: u, .. } if u == user)
        })
        .await
    {
        SimEvent::Login { session_id, .. } => session_id,
        other => panic!("login failed: {other:?}"),
    }
}

async fn finish(handle: RouterHandle, task: JoinHandle<Outcome>) -> Outcome {
    handle.control(Control::Quit);
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("router ends")
        .expect("router task")
}

#[tokio::test]
async fn login_ppr_acr_asr_against_a_scripted_sae() {
    let mut sae = Sae::start("sae-1.sae.localdomain", Arc::new(cooperative)).await;
    let (h, task, mut ev) = start(config(vec![sae.addr]));
    ev.wait(
        "connected",
        |e| matches!(e, SimEvent::Connected { sae, .. } if sae == "sae-1.sae.localdomain"),
    )
    .await;
    ev.wait("ready", |e| matches!(e, SimEvent::Ready { .. }))
        .await;

    h.control(Control::Login {
        user: "alice@example.net".into(),
        ip: Some(Ipv4Addr::new(10, 9, 0, 1)),
        nas_port_id: Some("ge-1/0/0.7".into()),
    });
    let aar = sae.next_request("login AAR").await;
    assert_eq!(aar.request_type(), Some(RequestType::AddressAuthorization));
    assert_eq!(aar.user_name(), Some("alice@example.net"));
    assert_eq!(aar.framed_ip(), Some(Ipv4Addr::new(10, 9, 0, 1)));
    assert_eq!(aar.nas_port_id(), Some("ge-1/0/0.7"));
    assert_eq!(
        aar.find(avp::DESTINATION_REALM, 0)
            .unwrap()
            .as_str()
            .unwrap(),
        "sae.localdomain",
        "the SAE's realm from its CEA"
    );
    let sid = match ev
        .wait("login", |e| matches!(e, SimEvent::Login { .. }))
        .await
    {
        SimEvent::Login {
            session_id,
            policies,
            accounting,
            result,
            ..
        } => {
            assert_eq!(result, 2001);
            assert_eq!(policies, ["gold"]);
            assert_eq!(accounting, ["gold"]);
            session_id
        }
        _ => unreachable!(),
    };
    assert!(sid.starts_with("rtr.test.realm;1;"), "{sid}");
    let confirm = sae.next_request("confirmation AAR").await;
    assert_eq!(confirm.request_type(), Some(RequestType::Provisioning));
    assert_eq!(confirm.session_id(), Some(sid.as_str()));
    assert_eq!(confirm.last_origin_host(), Some("sae-1.sae.localdomain"));
    let start = sae.next_request("ACR START").await;
    assert_eq!(start.accounting_record_type(), Some(2));
    ev.wait("confirmed", |e| {
        matches!(
            e,
            SimEvent::Confirmed {
                result: Some(2001),
                ..
            }
        )
    })
    .await;
    ev.wait(
        "acct start",
        |e| matches!(e, SimEvent::Acct { kind, result: Some(2001), .. } if kind == "start"),
    )
    .await;

    // PPR: remove gold, install silver with accounting.
    let mut ppr = sae.request(command::PUSH_PROFILE, Some(&sid));
    ppr.push(install("silver", true).to_avp());
    ppr.push(jsrc::policy_remove("gold"));
    let ppa = sae.send(ppr).await.expect("PPA");
    assert_eq!(ppa.result_code(), Some(2001));
    assert_eq!(ppa.session_id(), Some(sid.as_str()));
    assert_eq!(ppa.origin_host(), Some(RTR));
    ev.wait("PPR event", |e| {
        matches!(e, SimEvent::Request { command, from, result: Some(2001), install: Some(i), remove: Some(r), .. }
            if command == "PPR" && from == "sae-1.sae.localdomain" && i == &["silver"] && r == &["gold"])
    })
    .await;
    let stop = sae.next_request("ACR STOP for gold").await;
    assert_eq!(stop.accounting_record_type(), Some(4));
    assert_eq!(stop.acct_records().unwrap()[0].policy_name, "gold");
    let start = sae.next_request("ACR START for silver").await;
    assert_eq!(start.accounting_record_type(), Some(2));
    assert_eq!(start.acct_records().unwrap()[0].policy_name, "silver");

    // ACR from the SAE asking for silver's counters.
    let mut acr = sae.request(command::ACCOUNTING, Some(&sid));
    acr.push(Avp::mandatory(
        avp::ACCOUNTING_RECORD_TYPE,
        &Value::Enumerated(1),
    ));
    acr.push(Avp::mandatory(
        avp::ACCOUNTING_RECORD_NUMBER,
        &Value::Unsigned32(0),
    ));
    acr.push(
        AcctRecord {
            policy_name: "silver".into(),
            ..Default::default()
        }
        .to_avp(),
    );
    let aca = sae.send(acr).await.expect("ACA");
    assert_eq!(aca.result_code(), Some(2001));
    assert_eq!(aca.accounting_record_type(), Some(1));
    let recs = aca.acct_records().unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].policy_name, "silver");
    assert!(recs[0].input_octets.is_some());

    // PPR for an unknown session.
    let ppa = sae
        .send(sae.request(command::PUSH_PROFILE, Some("nobody;1;2;3")))
        .await
        .expect("PPA");
    assert_eq!(ppa.result_code(), Some(5002));

    // ASR: ASA 2001, then ACR STOP and STR cause 4 with silver's final usage.
    let asa = sae
        .send(sae.request(command::ABORT_SESSION, Some(&sid)))
        .await
        .expect("ASA");
    assert_eq!(asa.result_code(), Some(2001));
    let stop = sae.next_request("ACR STOP at the end").await;
    assert_eq!(stop.accounting_record_type(), Some(4));
    let str_ = sae.next_request("STR").await;
    assert_eq!(str_.header.command_code, command::SESSION_TERMINATION);
    assert_eq!(str_.termination_cause(), Some(4));
    assert_eq!(str_.session_id(), Some(sid.as_str()));
    let recs = str_.acct_records().unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].policy_name, "silver");
    ev.wait("logout", |e| {
        matches!(
            e,
            SimEvent::Logout {
                cause: 4,
                result: Some(2001),
                ..
            }
        )
    })
    .await;
    h.control(Control::List);
    ev.wait("empty list", |e| matches!(e, SimEvent::Listed { count: 0 }))
        .await;

    assert_eq!(
        finish(h, task).await,
        Outcome::Finished {
            requested: true,
            ever_up: true
        }
    );
}

#[tokio::test]
async fn srq_from_the_sae_is_answered_and_every_session_replayed() {
    let mut sae = Sae::start("sae-1.sae.localdomain", Arc::new(cooperative)).await;
    let mut cfg = config(vec![sae.addr]);
    cfg.router.confirm = false;
    let (h, task, mut ev) = start(cfg);
    ev.wait("ready", |e| matches!(e, SimEvent::Ready { .. }))
        .await;
    h.control(login("alice"));
    let alice = logged_in(&mut ev, "alice").await;
    h.control(login("bob"));
    let bob = logged_in(&mut ev, "bob").await;
    // Drain the logins' AARs and ACR STARTs.
    for _ in 0..4 {
        sae.next_request("login traffic").await;
    }

    let srr = sae
        .send(sae.request(command::SESSION_RESYNC, None))
        .await
        .expect("SRR");
    assert_eq!(srr.result_code(), Some(2001));
    let mut replayed = vec![];
    for _ in 0..2 {
        let aar = sae.next_request("replay AAR").await;
        assert_eq!(aar.request_type(), Some(RequestType::Synchronization));
        assert_eq!(aar.policy_installs().unwrap(), vec![install("gold", true)]);
        assert_eq!(aar.last_origin_host(), Some("sae-1.sae.localdomain"));
        replayed.push(aar.session_id().unwrap().to_owned());
    }
    replayed.sort();
    let mut expected = vec![alice, bob];
    expected.sort();
    assert_eq!(replayed, expected);
    for _ in 0..2 {
        ev.wait("replayed", |e| {
            matches!(
                e,
                SimEvent::Replayed {
                    result: Some(2001),
                    ..
                }
            )
        })
        .await;
    }
    finish(h, task).await;
}

#[tokio::test]
async fn a_request_from_another_sae_makes_the_router_resynchronize_with_it() {
    let mut a = Sae::start("sae-a.sae.localdomain", Arc::new(cooperative)).await;
    let mut b = Sae::start("sae-b.sae.localdomain", Arc::new(cooperative)).await;
    let mut cfg = config(vec![a.addr, b.addr]);
    cfg.router.confirm = false;
    let (h, task, mut ev) = start(cfg);
    for _ in 0..2 {
        ev.wait("connected", |e| matches!(e, SimEvent::Connected { .. }))
            .await;
    }
    h.control(login("alice"));
    let sid = logged_in(&mut ev, "alice").await;
    let first = ev
        .seen
        .iter()
        .find_map(|e| match e {
            SimEvent::Login { sae, .. } => Some(sae.clone()),
            _ => None,
        })
        .unwrap();
    // Whichever came up first got the login and is now the remembered SAE.
    let (active, other) = if first == a.host {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    active.next_request("login AAR").await;
    active.next_request("ACR START").await;

    let mut ppr = other.request(command::PUSH_PROFILE, Some(&sid));
    ppr.push(install("silver", false).to_avp());
    let ppa = other.send(ppr).await.expect("PPA");
    assert_eq!(ppa.result_code(), Some(2001), "answered first");
    let srq = other.next_request("SRQ from the router").await;
    assert_eq!(srq.header.command_code, command::SESSION_RESYNC);
    assert_eq!(srq.last_origin_host(), Some(active.host.as_str()));
    assert_eq!(
        srq.find(avp::DESTINATION_HOST, 0)
            .unwrap()
            .as_str()
            .unwrap(),
        other.host
    );
    let replay = other.next_request("replay AAR").await;
    assert_eq!(replay.request_type(), Some(RequestType::Synchronization));
    assert_eq!(replay.session_id(), Some(sid.as_str()));
    assert_eq!(replay.last_origin_host(), Some(other.host.as_str()));
    let names: Vec<String> = replay
        .policy_installs()
        .unwrap()
        .into_iter()
        .map(|p| p.policy_name)
        .collect();
    assert_eq!(names, ["gold", "silver"]);
    let other_host = other.host.clone();
    let active_host = active.host.clone();
    ev.wait("srq-sent", |e| {
        matches!(e, SimEvent::SrqSent { to, reason, last_origin_host: Some(l) }
            if to == &other_host && reason == "different-sae" && l == &active_host)
    })
    .await;
    ev.wait(
        "active-sae",
        |e| matches!(e, SimEvent::ActiveSae { sae, .. } if sae == &other_host),
    )
    .await;
    ev.wait(
        "replayed",
        |e| matches!(e, SimEvent::Replayed { sae, result: Some(2001), .. } if sae == &other_host),
    )
    .await;

    // New logins go to the new active SAE; the old one sees nothing more.
    h.control(login("bob"));
    logged_in(&mut ev, "bob").await;
    let aar = other.next_request("bob's AAR").await;
    assert_eq!(aar.user_name(), Some("bob"));
    assert_eq!(aar.last_origin_host(), Some(other.host.as_str()));
    assert!(active.no_request());
    finish(h, task).await;
}

#[tokio::test]
async fn fail_and_drop_ppr_globs() {
    let mut sae = Sae::start("sae-1.sae.localdomain", Arc::new(cooperative)).await;
    let mut cfg = config(vec![sae.addr]);
    cfg.router.confirm = false;
    cfg.router.drop_ppr = vec!["slow*".into()];
    let (h, task, mut ev) = start(cfg);
    ev.wait("ready", |e| matches!(e, SimEvent::Ready { .. }))
        .await;
    h.control(login("alice"));
    let sid = logged_in(&mut ev, "alice").await;

    let mut ppr = sae.request(command::PUSH_PROFILE, Some(&sid));
    ppr.push(install("slow-1", false).to_avp());
    let handle = sae.handle().await;
    let dropped = handle.request(ppr, Some(Duration::from_millis(500))).await;
    assert_eq!(dropped, Err(RequestFailure::Timeout));
    ev.wait("dropped PPR", |e| {
        matches!(
            e,
            SimEvent::Request {
                dropped: true,
                result: None,
                ..
            }
        )
    })
    .await;

    h.control(Control::FailPpr(Some("bad-*".into())));
    ev.wait(
        "fail-ppr",
        |e| matches!(e, SimEvent::Control { command, .. } if command == "fail-ppr"),
    )
    .await;
    let mut ppr = sae.request(command::PUSH_PROFILE, Some(&sid));
    ppr.push(install("bad-1", false).to_avp());
    let ppa = sae.send(ppr).await.expect("PPA");
    assert_eq!(ppa.result_code(), Some(5012));
    h.control(Control::FailPpr(None));
    let mut ppr = sae.request(command::PUSH_PROFILE, Some(&sid));
    ppr.push(install("bad-1", false).to_avp());
    assert_eq!(sae.send(ppr).await.unwrap().result_code(), Some(2001));
    h.control(Control::List);
    match ev
        .wait("session", |e| matches!(e, SimEvent::Session { .. }))
        .await
    {
        SimEvent::Session { policies, .. } => assert_eq!(policies, ["bad-1", "gold"]),
        _ => unreachable!(),
    }
    finish(h, task).await;
}

#[tokio::test]
async fn odd_answers_are_reported_not_fatal() {
    let answer: Answerer = Arc::new(|host: &str, req: &Message| {
        let mut a = cooperative(host, req);
        match req.user_name() {
            Some("no-result") => a.avps.retain(|x| !x.is(avp::RESULT_CODE, 0)),
            Some("wrong-sid") => {
                a.avps[0] = Avp::mandatory(avp::SESSION_ID, &Value::Utf8String("x;1;2".into()))
            }
            Some("rejected") => a.set_result_code(5003),
            _ => {}
        }
        a
    });
    let sae = Sae::start("sae-1.sae.localdomain", answer).await;
    let mut cfg = config(vec![sae.addr]);
    cfg.router.confirm = false;
    let (h, task, mut ev) = start(cfg);
    ev.wait("ready", |e| matches!(e, SimEvent::Ready { .. }))
        .await;
    for (user, result) in [
        ("no-result", None),
        ("wrong-sid", Some(2001)),
        ("rejected", Some(5003)),
    ] {
        h.control(login(user));
        let e = ev
            .wait(user, |e| matches!(e, SimEvent::LoginFailed { user: u, .. } | SimEvent::Login { user: u, .. } if u == user))
            .await;
        assert!(
            matches!(&e, SimEvent::LoginFailed { result: r, .. } if *r == result),
            "{e:?}"
        );
    }
    // A login after all that still works.
    h.control(login("fine"));
    logged_in(&mut ev, "fine").await;
    h.control(Control::List);
    ev.wait("one session", |e| {
        matches!(e, SimEvent::Listed { count: 1 })
    })
    .await;
    // A bad control command is an error event.
    h.control(Control::Logout("nobody".into()));
    ev.wait("error", |e| matches!(e, SimEvent::Error { .. }))
        .await;
    finish(h, task).await;
}

#[tokio::test]
async fn idle_logout_then_drop_without_dpr() {
    let mut sae = Sae::start("sae-1.sae.localdomain", Arc::new(cooperative)).await;
    let mut cfg = config(vec![sae.addr]);
    cfg.router.confirm = false;
    cfg.router.inactivity = Some(Duration::from_secs(1));
    let (h, task, mut ev) = start(cfg);
    ev.wait("ready", |e| matches!(e, SimEvent::Ready { .. }))
        .await;
    h.control(login("alice"));
    let sid = logged_in(&mut ev, "alice").await;
    sae.next_request("AAR").await;
    sae.next_request("ACR START").await;
    let stop = sae.next_request("ACR STOP").await;
    assert_eq!(stop.accounting_record_type(), Some(4));
    let str_ = sae.next_request("STR").await;
    assert_eq!(str_.termination_cause(), Some(14));
    assert_eq!(str_.session_id(), Some(sid.as_str()));
    assert_eq!(str_.acct_records().unwrap()[0].policy_name, "gold");
    ev.wait("idle logout", |e| {
        matches!(e, SimEvent::Logout { cause: 14, .. })
    })
    .await;

    h.control(Control::Drop);
    ev.wait(
        "disconnected",
        |e| matches!(e, SimEvent::Disconnected { reason, .. } if reason == "dropped"),
    )
    .await;
    let outcome = tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
    assert_eq!(
        outcome,
        Outcome::Finished {
            requested: true,
            ever_up: true
        }
    );
    let (_, sae_task) = match sae.conn.take() {
        Some(c) => c,
        None => sae.conns.recv().await.expect("the router's connection"),
    };
    let reason = tokio::time::timeout(WAIT, sae_task).await.unwrap().unwrap();
    assert_eq!(
        reason,
        CloseReason::TransportClosed,
        "the SAE saw the TCP connection close without DPR"
    );
}

#[tokio::test]
async fn startup_srq_then_a_scenario() {
    let mut sae = Sae::start("sae-1.sae.localdomain", Arc::new(cooperative)).await;
    let mut cfg = config(vec![sae.addr]);
    cfg.router.confirm = false;
    cfg.startup_srq = true;
    cfg.plan = Plan::Scenario(
        Scenario::parse(
            r#"
            [[subscriber]]
            user = "alice"
            ip = "10.7.0.1"
            steps = [{ after = 0.2, action = "interim" }, { after = 0.4, action = "logout" }]
            [[subscriber]]
            user = "bob"
            "#,
        )
        .unwrap(),
    );
    let (h, task, mut ev) = start(cfg);
    let srq = sae.next_request("startup SRQ").await;
    assert_eq!(srq.header.command_code, command::SESSION_RESYNC);
    assert_eq!(srq.last_origin_host(), None);
    ev.wait("srq-answered", |e| matches!(e, SimEvent::SrqAnswered { reason, result: Some(2001), sessions: 0, .. } if reason == "startup"))
        .await;
    ev.wait("ready", |e| matches!(e, SimEvent::Ready { .. }))
        .await;
    ev.wait("logins-done", |e| {
        matches!(e, SimEvent::LoginsDone { ok: 2, failed: 0 })
    })
    .await;
    let aar = sae.next_request("alice's AAR").await;
    assert_eq!(aar.framed_ip(), Some(Ipv4Addr::new(10, 7, 0, 1)));
    ev.wait(
        "interim",
        |e| matches!(e, SimEvent::Acct { kind, user, .. } if kind == "interim" && user == "alice"),
    )
    .await;
    ev.wait("logout", |e| matches!(e, SimEvent::Logout { cause: 1, user, result: Some(2001), .. } if user == "alice"))
        .await;
    finish(h, task).await;
}

#[tokio::test]
async fn load_run_over_two_routers() {
    let sae = Sae::start("sae-1.sae.localdomain", Arc::new(cooperative)).await;
    let cfg = crate::load::LoadConfig {
        connect: sae.addr.into(),
        routers: 2,
        subscribers: 40,
        first: 0,
        rate: None,
        concurrency: Some(8),
        origin_host_template: "load{r}.test.realm".into(),
        origin_realm: "test.realm".into(),
        application: app::JSRC,
        watchdog_interval: Duration::from_secs(30),
        request_timeout: Duration::from_secs(2),
        connect_timeout: sim::DEFAULT_CONNECT_TIMEOUT,
        confirm: false,
        startup_srq: false,
        inactivity: None,
        templates: Templates::default(),
        verbose: false,
    };
    let (report, run) = crate::load::run(&cfg).await.expect("load run");
    assert_eq!(report.ok, 40, "{report:?}");
    assert_eq!(report.failed, 0);
    assert!(report.latency_us.max >= report.latency_us.p50);
    assert!(report.latency_us.p50 > 0);
    let v = serde_json::to_value(&report).unwrap();
    assert_eq!(v["mode"], "load");
    assert!(v["latency_us"]["p999"].is_u64());
    tokio::time::timeout(WAIT, run.hold(async {}))
        .await
        .expect("routers disconnect");
}

#[tokio::test]
async fn reconnects_keeping_the_sessions_and_replays_on_the_saes_srq() {
    let mut sae = Sae::start("sae-1.sae.localdomain", Arc::new(cooperative)).await;
    let mut cfg = config(vec![sae.addr]);
    cfg.router.confirm = false;
    cfg.reconnect = Some(Duration::from_millis(200));
    let (h, task, mut ev) = start(cfg);
    ev.wait("ready", |e| matches!(e, SimEvent::Ready { .. }))
        .await;
    h.control(login("alice"));
    let sid = logged_in(&mut ev, "alice").await;
    sae.next_request("AAR").await;
    sae.next_request("ACR START").await;

    // The SAE drops the connection; the router comes back on its own.
    let (old, _) = sae
        .conn
        .take()
        .or(sae.conns.try_recv().ok())
        .expect("connection");
    old.send(connection::Command::Replace).await;
    ev.wait("disconnected", |e| {
        matches!(e, SimEvent::Disconnected { .. })
    })
    .await;
    ev.wait("reconnecting", |e| {
        matches!(e, SimEvent::Reconnecting { .. })
    })
    .await;
    ev.wait("connected again", |e| {
        matches!(e, SimEvent::Connected { .. })
    })
    .await;
    // Like a restarted SAE, it sends SRQ first; the router replays what it kept.
    let srr = sae
        .send(sae.request(command::SESSION_RESYNC, None))
        .await
        .expect("SRR");
    assert_eq!(srr.result_code(), Some(2001));
    let replay = sae.next_request("replay").await;
    assert_eq!(replay.request_type(), Some(RequestType::Synchronization));
    assert_eq!(replay.session_id(), Some(sid.as_str()));
    ev.wait("replayed", |e| {
        matches!(
            e,
            SimEvent::Replayed {
                result: Some(2001),
                ..
            }
        )
    })
    .await;
    assert_eq!(
        finish(h, task).await,
        Outcome::Finished {
            requested: true,
            ever_up: true
        }
    );
}

/// An SAE of a cluster: serves the router while `owner` is set; otherwise answers 3006 with a
/// Redirect-Host naming `redirect` or, without one, 3004.
fn cluster_member(owner: Arc<AtomicBool>, redirect: Option<&'static str>) -> Answerer {
    Arc::new(move |host: &str, req: &Message| {
        if owner.load(Ordering::SeqCst) {
            return cooperative(host, req);
        }
        let mut a = Message::answer_to(req);
        a.push_origin(host, "sae.localdomain");
        match redirect {
            Some(to) => {
                a.set_result_code(3006);
                a.push(Avp::mandatory(
                    avp::REDIRECT_HOST,
                    &Value::DiameterUri(format!("aaa://{to}:3868;transport=tcp")),
                ));
            }
            None => a.set_result_code(3004),
        }
        a
    })
}

#[tokio::test]
async fn a_login_refused_by_non_owners_goes_through_once_the_owner_sends_srq() {
    const SAE1: &str = "sae-1.sae.localdomain";
    const SAE2: &str = "sae-2.sae.localdomain";
    let owner1 = Arc::new(AtomicBool::new(false));
    let owner2 = Arc::new(AtomicBool::new(false));
    let mut sae1 = Sae::start(SAE1, cluster_member(owner1.clone(), Some(SAE2))).await;
    let mut sae2 = Sae::start(SAE2, cluster_member(owner2.clone(), None)).await;
    let mut cfg = config(vec![sae1.addr, sae2.addr]);
    // Only an SRQ releases a held request in this test.
    cfg.router.retry_backoff = Duration::from_secs(30);
    let (h, task, mut ev) = start(cfg);
    for _ in 0..2 {
        ev.wait("connected", |e| matches!(e, SimEvent::Connected { .. }))
            .await;
    }
    // No SRQ yet: the AAR goes to a non-owner (SAE1 redirects to SAE2, SAE2 has no owner
    // yet: 3004) and is held.
    h.control(login("alice"));
    ev.wait(
        "held AAR",
        |e| matches!(e, SimEvent::Redirected { to: None, command, .. } if command == "AAR"),
    )
    .await;
    // SAE2 becomes the owner: its SRQ first, then the AAR reaches it.
    owner2.store(true, Ordering::SeqCst);
    let srr = sae2
        .send(sae2.request(command::SESSION_RESYNC, None))
        .await
        .expect("SRR");
    assert_eq!(srr.result_code(), Some(2001));
    ev.wait(
        "resent",
        |e| matches!(e, SimEvent::Resent { to, reason, .. } if to == SAE2 && reason == "srq"),
    )
    .await;
    let login_event = ev
        .wait("login", |e| {
            matches!(e, SimEvent::Login { .. } | SimEvent::LoginFailed { .. })
        })
        .await;
    let SimEvent::Login {
        sae, session_id, ..
    } = login_event
    else {
        panic!("{login_event:?}");
    };
    assert_eq!(sae, SAE2);
    ev.wait(
        "confirmed",
        |e| matches!(e, SimEvent::Confirmed { sae, result: Some(2001), .. } if sae == SAE2),
    )
    .await;
    ev.wait(
        "ACR START",
        |e| matches!(e, SimEvent::Acct { sae, result: Some(2001), .. } if sae == SAE2),
    )
    .await;

    // Handover to SAE1: SAE2 stops serving, SAE1's SRQ makes it active; the session is
    // replayed to it and the logout goes to it.
    owner2.store(false, Ordering::SeqCst);
    owner1.store(true, Ordering::SeqCst);
    let srr = sae1
        .send(sae1.request(command::SESSION_RESYNC, None))
        .await
        .expect("SRR");
    assert_eq!(srr.result_code(), Some(2001));
    ev.wait(
        "replayed",
        |e| matches!(e, SimEvent::Replayed { sae, result: Some(2001), .. } if sae == SAE1),
    )
    .await;
    h.control(Control::Logout(session_id.clone()));
    ev.wait(
        "logout",
        |e| matches!(e, SimEvent::Logout { sae, result: Some(2001), .. } if sae == SAE1),
    )
    .await;
    assert_eq!(
        crate::events::check_single_active_events(&ev.seen),
        Ok(()),
        "{:#?}",
        ev.seen
    );
    finish(h, task).await;
}

/// The SAE ends the router's connection with DPR and `cause`; returns the delay the router
/// announces for its next attempt.
async fn dpr_from_the_sae(
    cause: DisconnectCause,
) -> (Sae, RouterHandle, JoinHandle<Outcome>, Events, f64) {
    let mut sae = Sae::start("sae-1.sae.localdomain", Arc::new(cooperative)).await;
    let mut cfg = config(vec![sae.addr]);
    cfg.reconnect = Some(Duration::from_millis(200));
    let (h, task, mut ev) = start(cfg);
    ev.wait("ready", |e| matches!(e, SimEvent::Ready { .. }))
        .await;
    sae.handle()
        .await
        .send(connection::Command::Disconnect(cause))
        .await;
    let expected = format!("peer-disconnected {cause:?}");
    ev.wait(
        "disconnected with the cause",
        |e| matches!(e, SimEvent::Disconnected { reason, .. } if *reason == expected),
    )
    .await;
    let after = match ev
        .wait("reconnecting", |e| {
            matches!(e, SimEvent::Reconnecting { .. })
        })
        .await
    {
        SimEvent::Reconnecting { after_s, .. } => after_s,
        _ => unreachable!(),
    };
    (sae, h, task, ev, after)
}

/// No `connected` among the events that arrive within `window`.
async fn stays_disconnected(ev: &mut Events, window: Duration) {
    let _ = tokio::time::timeout(window, async {
        while let Some(e) = ev.rx.recv().await {
            assert!(
                !matches!(e, SimEvent::Connected { .. }),
                "reconnected too early: {e:?}"
            );
            ev.seen.push(e);
        }
    })
    .await;
}

#[tokio::test]
async fn a_dpr_rebooting_is_followed_by_a_prompt_reconnect() {
    // What a node sends when it stops: the router is back as soon as the node is.
    let (_sae, h, task, mut ev, after) = dpr_from_the_sae(DisconnectCause::Rebooting).await;
    assert!((after - 0.2).abs() < 1e-9, "{after}");
    ev.wait("connected again", |e| {
        matches!(e, SimEvent::Connected { .. })
    })
    .await;
    finish(h, task).await;
}

#[tokio::test]
async fn a_dpr_busy_backs_off_until_told() {
    let (_sae, h, task, mut ev, after) = dpr_from_the_sae(DisconnectCause::Busy).await;
    assert!(after >= sim::BUSY_BACKOFF.as_secs_f64(), "{after}");
    stays_disconnected(&mut ev, Duration::from_secs(1)).await;
    // Told to, it reconnects at once.
    assert!(h.reconnect());
    ev.wait(
        "reconnecting now",
        |e| matches!(e, SimEvent::Reconnecting { after_s, .. } if *after_s == 0.0),
    )
    .await;
    ev.wait("connected again", |e| {
        matches!(e, SimEvent::Connected { .. })
    })
    .await;
    finish(h, task).await;
}

#[tokio::test]
async fn a_dpr_do_not_want_to_talk_to_you_keeps_the_router_away() {
    let (_sae, h, task, mut ev, after) =
        dpr_from_the_sae(DisconnectCause::DoNotWantToTalkToYou).await;
    assert!(after >= sim::UNWANTED_BACKOFF.as_secs_f64(), "{after}");
    assert!(after > sim::BUSY_BACKOFF.as_secs_f64());
    stays_disconnected(&mut ev, Duration::from_secs(1)).await;
    assert_eq!(
        finish(h, task).await,
        Outcome::Finished {
            requested: true,
            ever_up: true
        }
    );
}

#[test]
fn reconnect_delay_follows_the_disconnect_cause() {
    let base = Duration::from_secs(1);
    let dpr = |c| Some(CloseReason::PeerDisconnected(Some(c)));
    let delay = |r: Option<CloseReason>| sim::reconnect_delay(base, r.as_ref());
    assert_eq!(delay(dpr(DisconnectCause::Rebooting)), base);
    assert_eq!(delay(None), base, "connection could not be opened");
    assert_eq!(delay(Some(CloseReason::TransportClosed)), base);
    assert_eq!(delay(Some(CloseReason::WatchdogExpired)), base);
    assert_eq!(delay(Some(CloseReason::PeerDisconnected(None))), base);
    assert_eq!(delay(dpr(DisconnectCause::Busy)), sim::BUSY_BACKOFF);
    assert_eq!(
        delay(dpr(DisconnectCause::DoNotWantToTalkToYou)),
        sim::UNWANTED_BACKOFF
    );
    // A long configured delay is multiplied, not replaced.
    let long = Duration::from_secs(10);
    assert_eq!(
        sim::reconnect_delay(long, dpr(DisconnectCause::Busy).as_ref()),
        Duration::from_secs(100)
    );
}

#[tokio::test]
async fn a_connect_that_hangs_holds_up_neither_the_other_sae_nor_the_timers() {
    let dead = crate::endpoint::UnansweredListener::new();
    let dead_addr = dead.addr.to_string();
    let mut sae = Sae::start("sae-1.sae.localdomain", Arc::new(cooperative)).await;
    // The unanswered address first: it is tried first.
    let mut cfg = config(vec![dead.addr, sae.addr]);
    cfg.router.confirm = false;
    cfg.router.interim = Some(Duration::from_millis(200));
    let timeout = Duration::from_secs(2);
    cfg.connect_timeout = timeout;
    cfg.reconnect = Some(Duration::from_millis(100));
    let started = std::time::Instant::now();
    let (h, task, mut ev) = start(cfg);

    // The other SAE serves the router while the first attempt hangs.
    ev.wait("ready", |e| matches!(e, SimEvent::Ready { .. }))
        .await;
    h.control(login("alice"));
    logged_in(&mut ev, "alice").await;
    sae.next_request("AAR").await;
    sae.next_request("ACR START").await;
    let served = started.elapsed();
    assert!(served < timeout, "served after {served:?}");
    assert!(
        !ev.seen
            .iter()
            .any(|e| matches!(e, SimEvent::ConnectFailed { .. })),
        "{:#?}",
        ev.seen
    );

    // The attempt gives up at its deadline and the next one is planned.
    let failed = ev
        .wait(
            "connect-failed",
            |e| matches!(e, SimEvent::ConnectFailed { addr, .. } if *addr == dead_addr),
        )
        .await;
    let gave_up = started.elapsed();
    assert!(gave_up >= timeout, "gave up after {gave_up:?}");
    let SimEvent::ConnectFailed { error, .. } = failed else {
        unreachable!()
    };
    assert!(error.contains("timed out after 2s"), "{error}");
    ev.wait(
        "reconnecting",
        |e| matches!(e, SimEvent::Reconnecting { addr, .. } if *addr == dead_addr),
    )
    .await;

    // While the next attempt hangs: interim accounting (the router's timers) goes on, and a
    // login goes through at once.
    let mark = ev.seen.len();
    let retry_started = std::time::Instant::now();
    h.control(login("bob"));
    logged_in(&mut ev, "bob").await;
    assert!(
        retry_started.elapsed() < Duration::from_secs(1),
        "{:?}",
        retry_started.elapsed()
    );
    ev.wait(
        "the attempt giving up again",
        |e| matches!(e, SimEvent::ConnectFailed { addr, .. } if *addr == dead_addr),
    )
    .await;
    let interims = ev.seen[mark..]
        .iter()
        .filter(
            |e| matches!(e, SimEvent::Acct { kind, result: Some(2001), .. } if kind == "interim"),
        )
        .count();
    assert!(
        interims >= 4,
        "{interims} interims in {:?}: {:#?}",
        retry_started.elapsed(),
        &ev.seen[mark..]
    );

    // Told to quit while an attempt hangs, the router ends at once.
    ev.wait(
        "reconnecting",
        |e| matches!(e, SimEvent::Reconnecting { addr, .. } if *addr == dead_addr),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let quit = std::time::Instant::now();
    assert_eq!(
        finish(h, task).await,
        Outcome::Finished {
            requested: true,
            ever_up: true
        }
    );
    assert!(
        quit.elapsed() < Duration::from_secs(1),
        "{:?}",
        quit.elapsed()
    );
}

#[tokio::test]
async fn an_unanswered_connect_fails_at_the_connect_timeout() {
    let dead = crate::endpoint::UnansweredListener::new();
    let mut cfg = config(vec![dead.addr]);
    cfg.connect_timeout = Duration::from_secs(1);
    let started = tokio::time::Instant::now();
    let (_h, task, mut ev) = start(cfg);
    let outcome = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the router ends")
        .expect("router task");
    assert_eq!(outcome, Outcome::ConnectFailed);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    let failed = ev
        .wait("connect-failed", |e| {
            matches!(e, SimEvent::ConnectFailed { .. })
        })
        .await;
    assert!(
        matches!(&failed, SimEvent::ConnectFailed { addr, error }
            if *addr == dead.addr.to_string() && error.contains("timed out after 1s")),
        "{failed:?}"
    );
}
