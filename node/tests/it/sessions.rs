//! Subscriber flows against a node started in-process, driven by a raw Diameter client playing
//! the router: login, refusal, confirmation, activation through PPR (accepted, refused, timed
//! out and retried), accounting, STR, router-initiated resynchronization.

use std::collections::BTreeMap;
use std::time::Duration;

use sae_diameter::codes::{app, avp, command, result};
use sae_diameter::jsrc::{AcctRecord, PolicyInstall, RequestType, SubscriberMessage};
use sae_diameter::{Avp, Message, Value};
use sae_node::Node;
use sae_node::model::{ServiceState, SessionState, UsageFilter};
use sae_node::subscriber::registry::SubscriberRef;

use crate::client::{Client, config_in, ident};
use crate::diameter::{open_client, start};

const ROUTER: &str = "router1.test.realm";

/// Session settings and a catalog: a service with a template, substitutions and accounting,
/// one without, a rule refusing a domain and a default rule.
fn catalog(sessions: &str) -> String {
    format!(
        r#"
[sessions]
arbiters = 1
{sessions}

[[service]]
name = "gold"
policy_name = "gold-policy"
template_name = "rate-limit"
substitutions = {{ rate = "100m" }}
accounting = true

[[service]]
name = "video"
template_name = "video-boost"

[[rule]]
name = "blocked"
priority = 1
domain = "blocked.example"
reject = true

[[rule]]
name = "default"
priority = 10
services = ["gold"]
subscriber_dn = "uniqueID=<userName>,ou=<domain>,o=users"
retailer_dn = "ou=<domain>,o=retailers"
subscriptions = ["video"]
virtual_router = "internet"
"#
    )
}

/// A node with the catalog; `sessions` holds extra `[sessions]` keys.
async fn node(sessions: &str) -> (Node, std::net::SocketAddr) {
    start(&catalog(sessions)).await
}

fn utf8(code: u32, s: &str) -> Avp {
    Avp::mandatory(code, &Value::Utf8String(s.into()))
}

fn login(session: &str, user: &str, request_type: Option<RequestType>) -> Message {
    let mut m = Message::request(command::AA, app::JSRC, true)
        .with(utf8(avp::SESSION_ID, session))
        .with(Avp::mandatory(
            avp::AUTH_APPLICATION_ID,
            &Value::Unsigned32(app::JSRC),
        ))
        .with(ident(avp::ORIGIN_HOST, ROUTER))
        .with(ident(avp::ORIGIN_REALM, "test.realm"))
        .with(ident(avp::DESTINATION_REALM, "test.realm"))
        .with(utf8(avp::USER_NAME, user))
        .with(Avp::mandatory(
            avp::FRAMED_IP_ADDRESS,
            &Value::OctetString(vec![10, 0, 0, 7].into()),
        ))
        .with(utf8(avp::NAS_PORT_ID, "ge-0/0/0.7"));
    if let Some(t) = request_type {
        m.push(t.to_avp());
    }
    m
}

fn session_request(cmd: u32, session: &str) -> Message {
    Message::request(cmd, app::JSRC, true)
        .with(utf8(avp::SESSION_ID, session))
        .with(ident(avp::ORIGIN_HOST, ROUTER))
        .with(ident(avp::ORIGIN_REALM, "test.realm"))
        .with(ident(avp::DESTINATION_REALM, "test.realm"))
}

fn str_request(session: &str, usage: Option<AcctRecord>) -> Message {
    let mut m = session_request(command::SESSION_TERMINATION, session)
        .with(Avp::mandatory(
            avp::AUTH_APPLICATION_ID,
            &Value::Unsigned32(app::JSRC),
        ))
        .with(Avp::mandatory(
            avp::TERMINATION_CAUSE,
            &Value::Enumerated(1),
        ));
    if let Some(u) = usage {
        m.push(u.to_avp());
    }
    m
}

fn answer(request: &Message, code: u32) -> Message {
    let mut a = Message::answer_to(request);
    a.set_result_code(code);
    a.push_origin(ROUTER, "test.realm");
    a
}

/// The router's replay of a session holding the gold policy (synchronization AAR).
fn replay_with_gold(session: &str, user: &str) -> Message {
    login(session, user, Some(RequestType::Synchronization)).with(
        PolicyInstall {
            policy_name: "gold-policy".into(),
            definition: None,
            collect_accounting: true,
        }
        .to_avp(),
    )
}

async fn logged_in(c: &mut Client, session: &str, user: &str) -> Message {
    c.send(login(session, user, None)).await;
    let aaa = c.expect_message().await;
    assert_eq!(aaa.result_code(), Some(result::SUCCESS), "{aaa:?}");
    aaa
}

/// Polls a condition on the node (actors run on other threads).
async fn eventually(mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached within 5 s");
}

#[actix::test]
async fn login_installs_the_rule_services_and_confirmation_is_acknowledged() {
    let (node, addr) = node("").await;
    let mut c = open_client(addr, ROUTER).await;
    let aaa = logged_in(&mut c, "r1;1;1", "alice@isp.example").await;
    let installs = aaa.policy_installs().unwrap();
    assert_eq!(installs.len(), 1);
    let p: &PolicyInstall = &installs[0];
    assert_eq!(p.policy_name, "gold-policy");
    assert!(p.collect_accounting);
    let d = p.definition.as_ref().unwrap();
    assert_eq!(d.template_name, "rate-limit");
    assert_eq!(
        (
            d.substitutions[0].name.as_str(),
            d.substitutions[0].value.as_str()
        ),
        ("rate", "100m")
    );
    let sae = node.engine().clone();
    let entry = sae
        .sessions
        .find(&SubscriberRef::UserName("alice@isp.example".into()))
        .unwrap();
    assert_eq!(entry.record.framed_ip, Some("10.0.0.7".parse().unwrap()));
    assert_eq!(entry.record.nas_port_id.as_deref(), Some("ge-0/0/0.7"));
    assert!(!entry.record.confirmed);

    c.send(login(
        "r1;1;1",
        "alice@isp.example",
        Some(RequestType::Provisioning),
    ))
    .await;
    let ack = c.expect_message().await;
    assert_eq!(ack.result_code(), Some(result::SUCCESS));
    eventually(|| sae.sessions.get("r1;1;1").unwrap().record.confirmed).await;

    // A confirmation for a session the SAE does not hold.
    c.send(login("r1;9;9", "nobody", Some(RequestType::Provisioning)))
        .await;
    assert_eq!(
        c.expect_message().await.result_code(),
        Some(result::UNKNOWN_SESSION_ID)
    );
}

#[actix::test]
async fn a_login_keeps_what_the_router_and_the_rule_say_about_the_subscriber() {
    let (node, addr) = node("").await;
    let mut c = open_client(addr, ROUTER).await;
    let prefix =
        |code, data: &[u8]| Avp::mandatory(code, &Value::OctetString(data.to_vec().into()));
    let aar = login("r1;1;3", "carol@isp.example", None)
        .with(prefix(
            avp::FRAMED_IPV6_PREFIX,
            &[0, 64, 0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 7],
        ))
        .with(prefix(
            avp::DELEGATED_IPV6_PREFIX,
            &[0, 56, 0x20, 0x01, 0x0d, 0xb8, 0, 2, 0x07],
        ))
        .with(prefix(avp::NAS_IP_ADDRESS, &[192, 0, 2, 1]))
        .with(utf8(avp::CALLING_STATION_ID, "00:11:22:33:44:55"))
        .with(prefix(avp::CLASS, b"gold-class"));
    c.send(aar).await;
    assert_eq!(
        c.expect_message().await.result_code(),
        Some(result::SUCCESS)
    );
    let record = node.engine().sessions.get("r1;1;3").unwrap().record;
    let a = &record.attributes;
    assert_eq!(a.login_type.name(), "AUTHINTF");
    assert_eq!(a.framed_ipv6_prefixes, ["2001:db8:1:7::/64"]);
    assert_eq!(a.delegated_ipv6_prefixes, ["2001:db8:2:700::/56"]);
    assert_eq!(a.nas_ip, Some("192.0.2.1".parse().unwrap()));
    assert_eq!(a.mac_address.as_deref(), Some("00:11:22:33:44:55"));
    assert_eq!(a.radius_class.as_deref(), Some("gold-class"));
    assert_eq!(a.interface_name.as_deref(), Some("ge-0/0/0.7"));
    assert_eq!(a.primary_user_name.as_deref(), Some("carol@isp.example"));
    assert_eq!(
        a.subscriber_dn.as_deref(),
        Some("uniqueID=carol,ou=isp.example,o=users")
    );
    assert_eq!(a.retailer_dn.as_deref(), Some("ou=isp.example,o=retailers"));
    assert_eq!(a.accounting_id.as_deref(), Some("carol@isp.example"));
    assert_eq!(a.subscriptions, ["video"]);
    assert_eq!(record.virtual_router(), format!("internet@{ROUTER}"));

    // A malformed prefix is the router's error: 5004 naming the AVP, and no session.
    c.send(
        login("r1;1;4", "dave@isp.example", None).with(prefix(avp::FRAMED_IPV6_PREFIX, &[0, 200])),
    )
    .await;
    let aaa = c.expect_message().await;
    assert_eq!(aaa.result_code(), Some(result::INVALID_AVP_VALUE));
    let failed = aaa.find(avp::FAILED_AVP, 0).expect("Failed-AVP");
    let inner = failed.grouped().unwrap();
    assert_eq!(inner[0].code(), avp::FRAMED_IPV6_PREFIX);
    assert!(node.engine().sessions.get("r1;1;4").is_none());
}

#[actix::test]
async fn a_refused_login_leaves_no_session() {
    let (node, addr) = node("").await;
    let mut c = open_client(addr, ROUTER).await;
    c.send(login("r1;1;2", "mallory@blocked.example", None))
        .await;
    let aaa = c.expect_message().await;
    assert_eq!(aaa.result_code(), Some(result::UNABLE_TO_COMPLY));
    assert!(aaa.error_message().unwrap().contains("blocked"));
    assert!(aaa.policy_installs().unwrap().is_empty());
    assert!(node.engine().sessions.is_empty());
}

#[actix::test]
async fn str_ends_the_session_with_its_final_usage_and_an_unknown_one_gets_5002() {
    let (node, addr) = node("").await;
    let mut c = open_client(addr, ROUTER).await;
    c.send(str_request("r1;0;0", None)).await;
    let sta = c.expect_message().await;
    assert_eq!(sta.header.command_code, command::SESSION_TERMINATION);
    assert_eq!(sta.result_code(), Some(result::UNKNOWN_SESSION_ID));

    logged_in(&mut c, "r1;1;3", "bob@isp.example").await;
    let usage = AcctRecord {
        policy_name: "gold-policy".into(),
        input_octets: Some(1000),
        output_octets: Some(2000),
        input_packets: Some(10),
        output_packets: Some(20),
    };
    c.send(str_request("r1;1;3", Some(usage))).await;
    assert_eq!(
        c.expect_message().await.result_code(),
        Some(result::SUCCESS)
    );
    let sae = node.engine().clone();
    eventually(|| sae.sessions.is_empty()).await;
    sae.store.flush().unwrap();
    let records = sae
        .store
        .usage(&UsageFilter {
            session_id: Some("r1;1;3".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].output_octets, 2000);
    assert_eq!(records[0].kind.name(), "final");
    assert!(sae.store.load_sessions().unwrap().is_empty());
}

#[actix::test]
async fn accounting_from_the_router_is_stored_and_echoed() {
    let (node, addr) = node("").await;
    let mut c = open_client(addr, ROUTER).await;
    logged_in(&mut c, "r1;1;4", "carol@isp.example").await;
    let acr = session_request(command::ACCOUNTING, "r1;1;4")
        .with(Avp::mandatory(
            avp::ACCOUNTING_RECORD_TYPE,
            &Value::Enumerated(3),
        ))
        .with(Avp::mandatory(
            avp::ACCOUNTING_RECORD_NUMBER,
            &Value::Unsigned32(2),
        ))
        .with(
            AcctRecord {
                policy_name: "gold-policy".into(),
                input_octets: Some(5),
                ..Default::default()
            }
            .to_avp(),
        );
    c.send(acr).await;
    let aca = c.expect_message().await;
    assert_eq!(aca.result_code(), Some(result::SUCCESS));
    assert_eq!(aca.accounting_record_type(), Some(3));
    let sae = node.engine().clone();
    eventually(|| sae.store.usage_count() == 1).await;
    sae.store.flush().unwrap();
    let r = &sae.store.usage(&UsageFilter::default()).unwrap()[0];
    assert_eq!(
        (r.kind.name(), r.record_number, r.input_octets),
        ("interim", 2, 5)
    );
}

#[actix::test]
async fn a_re_sent_request_gets_the_same_answer_and_is_not_counted_twice() {
    let (node, addr) = node("").await;
    let mut c = open_client(addr, ROUTER).await;
    logged_in(&mut c, "r1;1;9", "erin@isp.example").await;
    let acr = |hop_by_hop: u32, end_to_end: u32, retransmit: bool| {
        let mut m = session_request(command::ACCOUNTING, "r1;1;9")
            .with(Avp::mandatory(
                avp::ACCOUNTING_RECORD_TYPE,
                &Value::Enumerated(3),
            ))
            .with(Avp::mandatory(
                avp::ACCOUNTING_RECORD_NUMBER,
                &Value::Unsigned32(4),
            ))
            .with(
                AcctRecord {
                    policy_name: "gold-policy".into(),
                    input_octets: Some(700),
                    ..Default::default()
                }
                .to_avp(),
            );
        m.header.hop_by_hop = hop_by_hop;
        m.header.end_to_end = end_to_end;
        m.header.flags = m
            .header
            .flags
            .with(sae_diameter::CommandFlags::RETRANSMIT, retransmit);
        m.encode().unwrap()
    };
    let sae = node.engine().clone();
    c.write_raw(&acr(0x0901, 0x7777_0001, false)).await;
    let first = c.expect_message().await;
    assert_eq!(first.result_code(), Some(result::SUCCESS));
    eventually(|| sae.store.usage_count() == 1).await;

    // The router lost the answer and re-sends the request (T bit, same End-to-End id).
    c.write_raw(&acr(0x0902, 0x7777_0001, true)).await;
    let again = c.expect_message().await;
    assert_eq!(again.header.hop_by_hop, 0x0902);
    assert_eq!(again.header.end_to_end, 0x7777_0001);
    assert_eq!(again.avps, first.avps, "the same answer");
    // A new request (another End-to-End id) is processed: two records, not three.
    c.write_raw(&acr(0x0903, 0x7777_0002, false)).await;
    assert_eq!(
        c.expect_message().await.result_code(),
        Some(result::SUCCESS)
    );
    eventually(|| sae.store.usage_count() == 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        sae.store.usage_count(),
        2,
        "the re-sent request was not stored"
    );
}

/// Runs an operator action on the node while the test plays the router.
fn spawn<F>(f: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + 'static,
    F::Output: 'static,
{
    actix::spawn(f)
}

#[actix::test]
async fn activation_and_deactivation_go_through_ppr_and_record_the_router_result() {
    let (node, addr) = node("").await;
    let mut c = open_client(addr, ROUTER).await;
    logged_in(&mut c, "r1;1;5", "dave@isp.example").await;
    let sae = node.engine().clone();
    let who = SubscriberRef::UserName("dave@isp.example".into());

    // Accepted.
    let (s, w) = (sae.clone(), who.clone());
    let op = spawn(async move {
        s.activate(&w, "video", BTreeMap::from([("x".into(), "1".into())]))
            .await
    });
    let ppr = c.expect_message().await;
    assert_eq!(ppr.header.command_code, command::PUSH_PROFILE);
    assert_eq!(ppr.session_id(), Some("r1;1;5"));
    assert_eq!(
        ppr.find(avp::DESTINATION_HOST, 0)
            .unwrap()
            .as_str()
            .unwrap(),
        ROUTER
    );
    let install = &ppr.policy_installs().unwrap()[0];
    assert_eq!(install.policy_name, "video");
    assert_eq!(
        install.definition.as_ref().unwrap().substitutions[0].value,
        "1"
    );
    c.send(answer(&ppr, result::SUCCESS)).await;
    let outcome = op.await.unwrap().unwrap();
    assert!(outcome.success);
    assert_eq!(outcome.state, Some(ServiceState::Active));

    // Refused by the router: recorded as failed with its Result-Code.
    let (s, w) = (sae.clone(), who.clone());
    let op = spawn(async move { s.activate(&w, "gold", BTreeMap::new()).await });
    let ppr = c.expect_message().await;
    c.send(answer(&ppr, result::UNABLE_TO_COMPLY)).await;
    let outcome = op.await.unwrap().unwrap();
    assert!(!outcome.success);
    assert_eq!(outcome.result_code, result::UNABLE_TO_COMPLY);
    let rec = sae.sessions.find(&who).unwrap().record;
    let gold = rec.services.iter().find(|s| s.service == "gold").unwrap();
    assert_eq!((gold.state, gold.result_code), (ServiceState::Failed, 5012));

    // Deactivation removes the policy by name.
    let (s, w) = (sae.clone(), who.clone());
    let op = spawn(async move { s.deactivate(&w, "video").await });
    let ppr = c.expect_message().await;
    assert_eq!(ppr.policy_removes().unwrap(), vec!["video".to_string()]);
    c.send(answer(&ppr, result::SUCCESS)).await;
    assert!(op.await.unwrap().unwrap().success);
    let rec = sae.sessions.find(&who).unwrap().record;
    assert!(rec.services.iter().all(|s| s.service != "video"));
}

#[actix::test]
async fn an_unanswered_ppr_is_retried_a_bounded_number_of_times() {
    let (node, addr) = node("ppr_timeout_secs = 1\nppr_retries = 1").await;
    let mut c = open_client(addr, ROUTER).await;
    logged_in(&mut c, "r1;1;6", "erin@isp.example").await;
    let sae = node.engine().clone();
    let who = SubscriberRef::SessionId("r1;1;6".into());
    let (s, w) = (sae.clone(), who.clone());
    let op = spawn(async move { s.activate(&w, "video", BTreeMap::new()).await });
    let first = c.expect_message().await;
    // Not answered: the node sends it again after the timeout.
    let second = c.expect_message().await;
    assert_eq!(second.header.command_code, command::PUSH_PROFILE);
    assert_ne!(first.header.hop_by_hop, second.header.hop_by_hop);
    c.send(answer(&second, result::SUCCESS)).await;
    let outcome = op.await.unwrap().unwrap();
    assert!(outcome.success);
    assert_eq!(outcome.attempts, 2);

    // Never answered: failed after 1 + 1 attempts.
    let (s, w) = (sae.clone(), who.clone());
    let op = spawn(async move { s.activate(&w, "gold", BTreeMap::new()).await });
    c.expect_message().await;
    c.expect_message().await;
    let outcome = op.await.unwrap().unwrap();
    assert!(!outcome.success);
    assert_eq!((outcome.attempts, outcome.result_code), (2, 0));
    assert_eq!(outcome.state, Some(ServiceState::Failed));
}

#[actix::test]
async fn router_srq_mid_life_keeps_replayed_sessions_and_ends_the_others() {
    let (node, addr) = node("resync_window_secs = 1").await;
    let mut c = open_client(addr, ROUTER).await;
    logged_in(&mut c, "r1;2;1", "kept@isp.example").await;
    logged_in(&mut c, "r1;2;2", "gone@isp.example").await;
    let sae = node.engine().clone();
    assert_eq!(sae.sessions.len(), 2);

    let srq = Message::request(command::SESSION_RESYNC, app::JSRC, false)
        .with(ident(avp::ORIGIN_HOST, ROUTER))
        .with(ident(avp::ORIGIN_REALM, "test.realm"))
        .with(ident(avp::DESTINATION_REALM, "test.realm"))
        .with(Avp::mandatory(
            avp::AUTH_APPLICATION_ID,
            &Value::Unsigned32(app::JSRC),
        ))
        .with(sae_diameter::jsrc::last_origin_host("sae.test.realm"));
    c.send(srq).await;
    let srr = c.expect_message().await;
    assert_eq!(srr.header.command_code, command::SESSION_RESYNC);
    assert_eq!(srr.result_code(), Some(result::SUCCESS));

    // Replay one session with the policy the router holds.
    let held = PolicyInstall {
        policy_name: "gold-policy".into(),
        definition: None,
        collect_accounting: true,
    };
    let replay = login(
        "r1;2;1",
        "kept@isp.example",
        Some(RequestType::Synchronization),
    )
    .with(held.to_avp());
    c.send(replay).await;
    assert_eq!(
        c.expect_message().await.result_code(),
        Some(result::SUCCESS)
    );
    eventually(|| sae.sessions.len() == 1).await;
    let kept = sae.sessions.get("r1;2;1").unwrap().record;
    assert_eq!(kept.state, SessionState::Active);
    assert_eq!(kept.services[0].service, "gold");
    assert!(kept.services[0].accounting);
}

#[actix::test]
async fn an_unanswered_srq_is_sent_again_and_the_window_starts_with_the_srr() {
    // SRQ times out after 1 s; the next goes 1 s later. The window (1 s) would have ended both
    // sessions before the second SRQ if it started with the first.
    let (node, addr) = start(&format!(
        "request_timeout_secs = 1\n{}",
        catalog("resync_window_secs = 1")
    ))
    .await;
    let mut c = open_client(addr, ROUTER).await;
    logged_in(&mut c, "r1;5;1", "replayed@isp.example").await;
    logged_in(&mut c, "r1;5;2", "forgotten@isp.example").await;
    let sae = node.engine().clone();
    let mut events = sae.events.subscribe();
    let resync = {
        let diameter = node.diameter().diameter().clone();
        spawn(async move { diameter.resync_router(ROUTER).await })
    };
    // The router is not ready: the first SRQ is lost.
    let first = c.expect_message().await;
    assert_eq!(first.header.command_code, command::SESSION_RESYNC);
    let lost_at = std::time::Instant::now();
    assert!(
        resync.await.unwrap().is_err(),
        "the operator hears that the SRQ was not answered"
    );
    let again = c.expect_message().await;
    let waited = lost_at.elapsed();
    assert_eq!(again.header.command_code, command::SESSION_RESYNC);
    assert!(again.is_request());
    assert_ne!(again.header.hop_by_hop, first.header.hop_by_hop);
    assert!(
        waited >= Duration::from_millis(1900),
        "timeout plus back-off: {waited:?}"
    );
    // Nothing ended while the router had not answered.
    assert_eq!(sae.sessions.len(), 2);
    let retries = sae
        .metrics
        .srq_retries
        .get_or_create(&sae_node::metrics::RouterLabels {
            router: ROUTER.into(),
        })
        .get();
    assert_eq!(retries, 1);
    let mut kinds = Vec::new();
    while let Ok(e) = events.try_recv() {
        kinds.push(e.kind.name());
    }
    assert!(kinds.contains(&"resync-retried"), "{kinds:?}");

    c.send(answer(&again, result::SUCCESS)).await;
    let replay = replay_with_gold("r1;5;1", "replayed@isp.example");
    c.send(replay).await;
    assert_eq!(
        c.expect_message().await.result_code(),
        Some(result::SUCCESS)
    );
    // The session the router did not replay ends once the window after the SRR closes.
    eventually(|| sae.sessions.len() == 1).await;
    assert_eq!(
        sae.sessions.get("r1;5;1").unwrap().record.state,
        SessionState::Active
    );
    // Answered: no further SRQ.
    assert_eq!(
        sae.metrics
            .srq_retries
            .get_or_create(&sae_node::metrics::RouterLabels {
                router: ROUTER.into(),
            })
            .get(),
        1
    );
}

#[actix::test]
async fn a_restarted_node_recovers_its_sessions_and_resyncs_them_with_the_router() {
    let data = tempfile::tempdir().unwrap();
    let extra = catalog("resync_window_secs = 1");
    let node = sae_node::start(config_in(data.path(), &extra))
        .await
        .unwrap();
    let addr = node.listeners()[0].addr;
    let mut c = open_client(addr, ROUTER).await;
    logged_in(&mut c, "r1;3;1", "replayed@isp.example").await;
    logged_in(&mut c, "r1;3;2", "forgotten@isp.example").await;
    let first = node.engine().clone();
    eventually(|| first.sessions.len() == 2).await;
    drop(c);
    node.shutdown().await;
    drop(first);

    let node = sae_node::start(config_in(data.path(), &extra))
        .await
        .unwrap();
    let sae = node.engine().clone();
    // Recovered from storage, waiting for the router.
    assert_eq!(sae.sessions.len(), 2);
    assert!(
        sae.sessions
            .list(&Default::default(), None, 10)
            .0
            .iter()
            .all(|r| r.state == SessionState::Resyncing)
    );
    let addr = node.listeners()[0].addr;
    let mut c = Client::connect(addr).await;
    c.exchange_capabilities(ROUTER, &[app::JSRC]).await;
    // The restarted SAE's first message is SRQ.
    let srq = c.expect_message().await;
    assert_eq!(srq.header.command_code, command::SESSION_RESYNC);
    c.send(answer(&srq, result::SUCCESS)).await;
    let replay = replay_with_gold("r1;3;1", "replayed@isp.example");
    c.send(replay).await;
    assert_eq!(
        c.expect_message().await.result_code(),
        Some(result::SUCCESS)
    );
    // The session the router did not replay is ended when the window closes.
    eventually(|| sae.sessions.len() == 1).await;
    let kept = sae.sessions.get("r1;3;1").unwrap().record;
    assert_eq!(kept.state, SessionState::Active);
    assert_eq!(kept.user_name.as_deref(), Some("replayed@isp.example"));
}

/// `GET /metrics` over plain HTTP/1.0.
async fn scrape(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    assert!(body.starts_with("HTTP/1.0 200"), "{body}");
    body
}

#[actix::test]
async fn metrics_count_messages_by_command_and_result_and_sessions() {
    let (node, addr) = node("").await;
    let metrics = node
        .listeners()
        .into_iter()
        .find(|l| l.protocol == "metrics")
        .unwrap()
        .addr;
    let mut c = open_client(addr, ROUTER).await;
    logged_in(&mut c, "r1;4;1", "frank@isp.example").await;
    c.send(login("r1;4;2", "mallory@blocked.example", None))
        .await;
    c.expect_message().await;
    let text = scrape(metrics).await;
    for line in [
        r#"sae_diameter_messages_total{direction="in",command="AAR",result=""} 2"#,
        r#"sae_diameter_messages_total{direction="out",command="AAA",result="2001"} 1"#,
        r#"sae_diameter_messages_total{direction="out",command="AAA",result="5012"} 1"#,
        r#"sae_diameter_messages_total{direction="out",command="SRQ",result=""} 1"#,
        r#"sae_diameter_messages_total{direction="in",command="SRR",result="2001"} 1"#,
        "sae_subscriber_sessions 1",
        "sae_diameter_peers 1",
        "sae_logins_total 1",
        "sae_logins_refused_total 1",
        r#"sae_diameter_answer_seconds_count{command="AAR"} 2"#,
        r#"sae_diameter_pending_requests{router="router1.test.realm"} 0"#,
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

#[actix::test]
async fn address_family_changes_of_a_dual_stack_subscriber_keep_the_session() {
    let (node, addr) = node("").await;
    let mut c = open_client(addr, ROUTER).await;
    logged_in(&mut c, "r1;6;1", "dual@isp.example").await;
    let sae = node.engine().clone();
    // The second family comes up: answered with the session's policies.
    c.send(login(
        "r1;6;1",
        "dual@isp.example",
        Some(RequestType::FamilyActivation),
    ))
    .await;
    let aaa = c.expect_message().await;
    assert_eq!(aaa.result_code(), Some(result::SUCCESS));
    assert_eq!(aaa.policy_installs().unwrap().len(), 1);
    // One family goes down: the session goes on.
    c.send(login(
        "r1;6;1",
        "dual@isp.example",
        Some(RequestType::FamilyDeactivation),
    ))
    .await;
    assert_eq!(
        c.expect_message().await.result_code(),
        Some(result::SUCCESS)
    );
    assert_eq!(sae.sessions.len(), 1);
    // For a session the node does not hold: 5002, and no session is made.
    c.send(login(
        "r1;6;2",
        "other@isp.example",
        Some(RequestType::FamilyDeactivation),
    ))
    .await;
    assert_eq!(
        c.expect_message().await.result_code(),
        Some(result::UNKNOWN_SESSION_ID)
    );
    assert_eq!(sae.sessions.len(), 1);
}
