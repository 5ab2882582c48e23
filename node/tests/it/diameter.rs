//! The node's Diameter listener against raw clients.

use std::time::Duration;

use sae_diameter::codes::{app, avp, command, juniper, result, vendor};
use sae_diameter::{Avp, AvpFlags, Capabilities, Message, Value};
use sae_node::Node;

use crate::client::{Client, aar, cer, config, ident, jsrc};

pub(crate) async fn start(extra: &str) -> (Node, std::net::SocketAddr) {
    let node = sae_node::start(config(extra)).await.unwrap();
    let addr = node.listeners()[0].addr;
    (node, addr)
}

pub(crate) async fn open_client(addr: std::net::SocketAddr, host: &str) -> Client {
    let mut c = Client::connect(addr).await;
    let cea = c.exchange_capabilities(host, &[jsrc()]).await;
    assert_eq!(cea.result_code(), Some(result::SUCCESS));
    // The SAE's first message on a new connection is SRQ; answer it (nothing to replay).
    let srq = c.expect_message().await;
    assert!(srq.is_request());
    assert_eq!(srq.header.command_code, command::SESSION_RESYNC);
    let mut srr = Message::answer_to(&srq);
    srr.set_result_code(result::SUCCESS);
    srr.push_origin(host, "test.realm");
    c.send(srr).await;
    c
}

#[actix::test]
async fn cea_announces_the_juniper_applications() {
    let (_node, addr) = start("").await;
    let mut c = Client::connect(addr).await;
    let cea = c
        .exchange_capabilities("router1.test.realm", &[jsrc()])
        .await;
    assert_eq!(cea.result_code(), Some(result::SUCCESS));
    let caps = Capabilities::from_message(&cea).unwrap();
    assert_eq!(caps.origin_host, "sae.test.realm");
    assert!(caps.supported_vendor_ids.contains(&vendor::JUNIPER));
    let apps = caps.application_ids();
    assert!(
        apps.contains(&app::JSRC) && apps.contains(&app::PTSP),
        "{apps:?}"
    );
    assert!(
        caps.vendor_specific_applications
            .iter()
            .all(|v| v.vendor_id == vendor::JUNIPER)
    );
    assert!(!caps.host_ip_addresses.is_empty());
}

#[actix::test]
async fn peer_not_on_the_allow_list_gets_3010_and_is_closed() {
    let (_node, addr) = start("allowed_peers = [\"router1.test.realm\"]").await;
    let mut c = Client::connect(addr).await;
    let cea = c
        .exchange_capabilities("intruder.test.realm", &[jsrc()])
        .await;
    assert_eq!(cea.result_code(), Some(result::UNKNOWN_PEER));
    assert!(cea.header.flags.is_error());
    c.expect_closed().await;
    // The allowed router still gets in.
    open_client(addr, "router1.test.realm").await;
}

#[actix::test]
async fn no_common_application_gets_5010() {
    let (_node, addr) = start("").await;
    let mut c = Client::connect(addr).await;
    let cea = c
        .exchange_capabilities("router1.test.realm", &[app::NASREQ])
        .await;
    assert_eq!(cea.result_code(), Some(result::NO_COMMON_APPLICATION));
    c.expect_closed().await;
}

#[actix::test]
async fn a_request_before_cer_closes_the_connection() {
    let (_node, addr) = start("").await;
    let mut c = Client::connect(addr).await;
    c.send(aar("router1.test.realm", jsrc())).await;
    c.expect_closed().await;
}

#[actix::test]
async fn second_connection_with_the_same_origin_host_replaces_the_first() {
    let (node, addr) = start("").await;
    let mut first = open_client(addr, "router1.test.realm").await;
    let mut second = open_client(addr, "router1.test.realm").await;
    first.expect_closed().await;
    // The second one is the registered, working connection.
    let hbh = second.send(aar("router1.test.realm", jsrc())).await;
    let aaa = second.expect_message().await;
    assert_eq!(aaa.header.hop_by_hop, hbh);
    let peers = node.diameter().peers();
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].origin_host, "router1.test.realm");
}

#[actix::test]
async fn second_connection_is_refused_with_4003_under_the_reject_policy() {
    let (_node, addr) = start("duplicate_peer = \"reject\"").await;
    let mut first = open_client(addr, "router1.test.realm").await;
    let mut second = Client::connect(addr).await;
    let cea = second
        .exchange_capabilities("router1.test.realm", &[jsrc()])
        .await;
    assert_eq!(cea.result_code(), Some(result::ELECTION_LOST));
    second.expect_closed().await;
    let hbh = first.send(aar("router1.test.realm", jsrc())).await;
    assert_eq!(first.expect_message().await.header.hop_by_hop, hbh);
}

#[actix::test]
async fn the_first_message_on_a_new_connection_is_srq() {
    let (_node, addr) = start("").await;
    let mut c = Client::connect(addr).await;
    let cea = c
        .exchange_capabilities("router1.test.realm", &[jsrc()])
        .await;
    assert_eq!(cea.result_code(), Some(result::SUCCESS));
    let srq = c.expect_message().await;
    assert!(srq.is_request());
    assert_eq!(srq.header.command_code, command::SESSION_RESYNC);
    assert_eq!(srq.header.application_id, app::JSRC);
    assert_eq!(
        srq.find(avp::DESTINATION_HOST, 0)
            .unwrap()
            .as_str()
            .unwrap(),
        "router1.test.realm"
    );
    assert_eq!(
        srq.find(juniper::LAST_ORIGIN_HOST, vendor::JUNIPER)
            .unwrap()
            .as_str()
            .unwrap(),
        "sae.test.realm"
    );
}

#[actix::test]
async fn request_for_an_application_not_negotiated_gets_3007() {
    let (_node, addr) = start("").await;
    let mut c = open_client(addr, "router1.test.realm").await;
    // PTSP is served by the node but this router only announced JSRC.
    c.send(aar("router1.test.realm", app::PTSP)).await;
    let ans = c.expect_message().await;
    assert_eq!(ans.result_code(), Some(result::APPLICATION_UNSUPPORTED));
    assert!(ans.header.flags.is_error());
    // An application the dictionary does not know at all.
    c.send(aar("router1.test.realm", 16_777_238)).await;
    assert_eq!(
        c.expect_message().await.result_code(),
        Some(result::APPLICATION_UNSUPPORTED)
    );
}

#[actix::test]
async fn malformed_requests_get_rfc_answers_and_the_connection_survives() {
    let (_node, addr) = start("").await;
    let mut c = open_client(addr, "router1.test.realm").await;

    // Unknown mandatory vendor AVP: 5001 with Failed-AVP.
    c.send(
        aar("router1.test.realm", jsrc()).with(Avp::vendor_mandatory(
            4242,
            vendor::JUNIPER,
            &Value::Unsigned32(1),
        )),
    )
    .await;
    let ans = c.expect_message().await;
    assert_eq!(ans.result_code(), Some(result::AVP_UNSUPPORTED));
    let failed = ans.find(avp::FAILED_AVP, 0).unwrap().grouped().unwrap();
    assert!(failed[0].is(4242, vendor::JUNIPER));

    // Unsigned32 with three octets: 5014.
    let short = Avp::from_raw(
        avp::ORIGIN_STATE_ID,
        AvpFlags::mandatory(),
        None,
        bytes::Bytes::from_static(b"abc"),
    );
    c.send(aar("router1.test.realm", jsrc()).with(short)).await;
    assert_eq!(
        c.expect_message().await.result_code(),
        Some(result::INVALID_AVP_LENGTH)
    );

    // Missing Destination-Realm: 5005.
    let mut m = aar("router1.test.realm", jsrc());
    m.avps.retain(|a| !a.is(avp::DESTINATION_REALM, 0));
    c.send(m).await;
    assert_eq!(
        c.expect_message().await.result_code(),
        Some(result::MISSING_AVP)
    );

    // Grouped nesting past the limit: 5004.
    let mut nested = Avp::vendor_mandatory(
        juniper::POLICY_NAME,
        vendor::JUNIPER,
        &Value::OctetString("p".into()),
    );
    for _ in 0..12 {
        nested = Avp::vendor_mandatory(
            juniper::POLICY_INSTALL,
            vendor::JUNIPER,
            &Value::Grouped(vec![nested]),
        );
    }
    c.send(aar("router1.test.realm", jsrc()).with(nested)).await;
    assert_eq!(
        c.expect_message().await.result_code(),
        Some(result::INVALID_AVP_VALUE)
    );

    // An AVP whose length runs past the message: 5014, answered from the header alone.
    let mut bytes = aar("router1.test.realm", jsrc()).encode().unwrap().to_vec();
    let last_avp = bytes.len() - 20; // User-Name "alice@isp": 8 header + 9 data + 3 padding
    bytes[last_avp + 7] = 200;
    c.write_raw(&bytes).await;
    assert_eq!(
        c.expect_message().await.result_code(),
        Some(result::INVALID_AVP_LENGTH)
    );

    // A length that is not a multiple of four: 5015.
    let mut bytes = aar("router1.test.realm", jsrc()).encode().unwrap().to_vec();
    bytes.push(0);
    let len = bytes.len() as u32;
    bytes[1..4].copy_from_slice(&len.to_be_bytes()[1..]);
    c.write_raw(&bytes).await;
    assert_eq!(
        c.expect_message().await.result_code(),
        Some(result::INVALID_MESSAGE_LENGTH)
    );

    // E bit on a request: 3008.
    let mut m = aar("router1.test.realm", jsrc());
    m.header.flags = m.header.flags.with(sae_diameter::CommandFlags::ERROR, true);
    c.send(m).await;
    let ans = c.expect_message().await;
    assert_eq!(ans.result_code(), Some(result::INVALID_HDR_BITS));
    assert!(ans.header.flags.is_error());

    // After all that, the connection still serves requests.
    let hbh = c.send(aar("router1.test.realm", jsrc())).await;
    assert_eq!(c.expect_message().await.header.hop_by_hop, hbh);
}

#[actix::test]
async fn oversized_message_gets_5015_and_the_stream_continues() {
    let (_node, addr) = start("max_message_len = 1024").await;
    let mut c = open_client(addr, "router1.test.realm").await;
    let big = aar("router1.test.realm", jsrc()).with(Avp::new(
        avp::USER_NAME + 1000,
        0,
        AvpFlags::none(),
        &Value::OctetString(vec![7u8; 4000].into()),
    ));
    c.send(big).await;
    assert_eq!(
        c.expect_message().await.result_code(),
        Some(result::INVALID_MESSAGE_LENGTH)
    );
    let hbh = c.send(aar("router1.test.realm", jsrc())).await;
    assert_eq!(c.expect_message().await.header.hop_by_hop, hbh);
}

#[actix::test]
async fn bad_version_is_answered_5011_then_closed_and_the_node_keeps_serving() {
    let (_node, addr) = start("").await;
    let mut c = open_client(addr, "router1.test.realm").await;
    let mut bytes = aar("router1.test.realm", jsrc()).encode().unwrap().to_vec();
    bytes[0] = 2;
    c.write_raw(&bytes).await;
    let ans = c.expect_message().await;
    assert_eq!(ans.result_code(), Some(result::UNSUPPORTED_VERSION));
    c.expect_closed().await;
    open_client(addr, "router2.test.realm").await;
}

#[actix::test]
async fn impossible_length_closes_cleanly() {
    let (_node, addr) = start("").await;
    let mut c = open_client(addr, "router1.test.realm").await;
    c.write_raw(&[1, 0, 0, 8, 0x80, 0, 1, 24]).await;
    c.expect_closed().await;
    open_client(addr, "router2.test.realm").await;
}

#[actix::test]
async fn garbage_before_cer_closes_cleanly() {
    let (_node, addr) = start("").await;
    let mut c = Client::connect(addr).await;
    c.write_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    c.expect_closed().await;
    open_client(addr, "router1.test.realm").await;
}

#[actix::test]
async fn dwr_is_answered_and_dpr_closes() {
    let (node, addr) = start("").await;
    let mut c = open_client(addr, "router1.test.realm").await;
    let dwr = Message::request(command::DEVICE_WATCHDOG, 0, false)
        .with(ident(avp::ORIGIN_HOST, "router1.test.realm"))
        .with(ident(avp::ORIGIN_REALM, "test.realm"));
    let hbh = c.send(dwr).await;
    let dwa = c.expect_message().await;
    assert_eq!(
        (dwa.header.command_code, dwa.header.hop_by_hop),
        (command::DEVICE_WATCHDOG, hbh)
    );
    assert_eq!(dwa.result_code(), Some(result::SUCCESS));
    assert!(dwa.find(avp::ORIGIN_STATE_ID, 0).is_some());

    let dpr = Message::request(command::DISCONNECT_PEER, 0, false)
        .with(ident(avp::ORIGIN_HOST, "router1.test.realm"))
        .with(ident(avp::ORIGIN_REALM, "test.realm"))
        .with(Avp::mandatory(avp::DISCONNECT_CAUSE, &Value::Enumerated(2)));
    c.send(dpr).await;
    let dpa = c.expect_message().await;
    assert_eq!(
        (dpa.header.command_code, dpa.result_code()),
        (command::DISCONNECT_PEER, Some(result::SUCCESS))
    );
    c.expect_closed().await;
    wait_for(|| node.diameter().peers().is_empty()).await;
}

#[actix::test]
async fn shutdown_sends_dpr_to_every_peer() {
    let (node, addr) = start("").await;
    let mut c = open_client(addr, "router1.test.realm").await;
    assert_eq!(node.diameter().peers().len(), 1);
    let stop = tokio::spawn(node.shutdown());
    let dpr = c.expect_message().await;
    assert!(dpr.is_request());
    assert_eq!(dpr.header.command_code, command::DISCONNECT_PEER);
    assert_eq!(
        dpr.find(avp::DISCONNECT_CAUSE, 0)
            .unwrap()
            .as_i32()
            .unwrap(),
        0,
        "REBOOTING"
    );
    let mut dpa = Message::answer_to(&dpr);
    dpa.set_result_code(result::SUCCESS);
    c.write_raw(
        &dpa.with(ident(avp::ORIGIN_HOST, "router1.test.realm"))
            .with(ident(avp::ORIGIN_REALM, "test.realm"))
            .encode()
            .unwrap(),
    )
    .await;
    c.expect_closed().await;
    stop.await.unwrap();
}

#[actix::test]
async fn watchdog_probes_an_idle_router_and_drops_a_silent_one() {
    // Virtual time once the router is served (the cluster decides that on real time).
    let (node, addr) = start("").await;
    let mut c = open_client(addr, "router1.test.realm").await;
    tokio::time::pause();
    let start = tokio::time::Instant::now();
    // Idle for Tw (6 s ± 2 s): the node sends DWR.
    let dwr = c.expect_message().await;
    assert!(dwr.is_request() && dwr.header.command_code == command::DEVICE_WATCHDOG);
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(4) && waited <= Duration::from_secs(8),
        "{waited:?}"
    );
    let mut dwa = Message::answer_to(&dwr);
    dwa.set_result_code(result::SUCCESS);
    let dwa = dwa
        .with(ident(avp::ORIGIN_HOST, "router1.test.realm"))
        .with(ident(avp::ORIGIN_REALM, "test.realm"));
    c.write_raw(&dwa.encode().unwrap()).await;
    // Answered: the next DWR comes one interval later, and the router stays registered.
    let again = c.expect_message().await;
    assert_eq!(again.header.command_code, command::DEVICE_WATCHDOG);
    assert_eq!(node.diameter().peers().len(), 1);
    // Stop answering: SUSPECT after one more interval, then the node closes the connection.
    let silent_since = tokio::time::Instant::now();
    c.expect_closed().await;
    let silent = silent_since.elapsed();
    assert!(
        silent >= Duration::from_secs(8) && silent <= Duration::from_secs(16),
        "{silent:?}"
    );
    wait_for(|| node.diameter().peers().is_empty()).await;
}

async fn wait_for(mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached");
}

#[test]
fn cer_helper_builds_a_valid_cer() {
    let dict = sae_diameter::Dictionary::base();
    sae_diameter::validate::validate_request(
        &dict,
        &cer("r.test.realm", &[jsrc()]),
        &sae_diameter::Limits::default(),
    )
    .unwrap();
}
