//! The node as COPS PDP against a PEP built from `sae_cops::pep` over real TCP: OPN/CAT, refusals,
//! missed keep-alives, SBC call admission at the budget edge, COPS-PR subscriber provisioning
//! (REQ → DEC with the policies and usage policies → RPT → accounting → DRQ), and a PEP that
//! reconnects with the same PEPID and takes its state over (SSQ, re-sent requests, SSC).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use sae_cops::message::DecisionContent;
use sae_cops::object::{
    ClientSi, Command, Context, ErrorCode, ErrorObject, Handle, Reason, ReasonCode, ReportType,
};
use sae_cops::pep::{PepConfig, PepConnection, PepEvent};
use sae_cops::pib::{CallRequest, PolicyInstance, SubscriberInterface};
use sae_cops::pr::{AccountingReport, RequestClientSi};
use sae_cops::usage::{Linkage, TrafficUsage, UsageClass};
use sae_cops::{FrameDecoder, Limits};
use sae_node::Node;
use sae_node::model::{ServiceState, UsageFilter};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::config_cops;

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// A PEP over TCP, driven by the test.
struct Pep {
    stream: TcpStream,
    conn: PepConnection,
    frames: FrameDecoder,
    buf: BytesMut,
}

impl Pep {
    async fn connect(addr: std::net::SocketAddr, client_type: u16, pepid: &str) -> Pep {
        Self::connect_with(addr, PepConfig::new(client_type, pepid)).await
    }

    async fn connect_with(addr: std::net::SocketAddr, config: PepConfig) -> Pep {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let frames = match &config.integrity {
            Some(i) => FrameDecoder::with_verifier(Limits::default(), i.verifier()),
            None => FrameDecoder::new(Limits::default()),
        };
        let mut pep = Pep {
            stream,
            conn: PepConnection::new(Arc::new(config), 7),
            frames,
            buf: BytesMut::new(),
        };
        pep.conn.connected(now());
        pep.flush().await;
        pep
    }

    async fn flush(&mut self) {
        while let Some(b) = self.conn.poll_transmit() {
            self.stream.write_all(&b).await.expect("write");
        }
    }

    /// The next event, reading from the node as needed (10 s at most).
    async fn event(&mut self) -> PepEvent {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(e) = self.conn.poll_event() {
                self.flush().await;
                return e;
            }
            let mut progressed = false;
            loop {
                match self.frames.decode(&mut self.buf) {
                    Ok(Some(frame)) => {
                        self.conn.handle_frame(now(), frame);
                        progressed = true;
                    }
                    Ok(None) => break,
                    Err(e) => panic!("node sent unframeable bytes: {e}"),
                }
            }
            if progressed {
                self.flush().await;
                continue;
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut chunk))
                .await
                .expect("no event from the node within 10 s")
                .expect("read");
            if n == 0 {
                self.conn.transport_closed(now());
            } else {
                self.buf.extend_from_slice(&chunk[..n]);
            }
        }
    }

    async fn accepted(&mut self) -> (Option<Duration>, Option<Duration>) {
        match self.event().await {
            PepEvent::Accepted {
                keepalive,
                accounting_timer,
            } => (keepalive, accounting_timer),
            other => panic!("expected CAT, got {other:?}"),
        }
    }

    /// CAT, then the node's SSQ answered with SSC (nothing held).
    async fn accepted_synced(&mut self) -> (Option<Duration>, Option<Duration>) {
        let timers = self.accepted().await;
        match self.event().await {
            PepEvent::SyncRequest { handle: None } => {}
            other => panic!("expected SSQ, got {other:?}"),
        }
        self.conn.sync_complete(now(), None).unwrap();
        self.flush().await;
        timers
    }

    async fn decision(&mut self) -> (Handle, DecisionContent) {
        loop {
            match self.event().await {
                PepEvent::Decision {
                    handle, decision, ..
                } => return (handle, decision),
                PepEvent::SyncRequest { .. } => continue,
                other => panic!("expected DEC, got {other:?}"),
            }
        }
    }

    async fn closed_with(&mut self) -> ErrorObject {
        loop {
            match self.event().await {
                PepEvent::Closed(sae_cops::pep::CloseReason::PdpClosed { error, .. }) => {
                    return error;
                }
                PepEvent::SyncRequest { .. } => continue,
                other => panic!("expected CC, got {other:?}"),
            }
        }
    }

    async fn request(&mut self, handle: u32, instance: sae_cops::pr::PrInstance) {
        let si = sae_cops::pr::encode_request_client_si(&RequestClientSi(vec![instance])).unwrap();
        self.conn
            .request(
                now(),
                Handle::from_u32(handle),
                Context::configuration(),
                vec![ClientSi::Named(si)],
            )
            .unwrap();
        self.flush().await;
    }
}

/// A node whose `[cops]` section gets `cops` (a line starting with `[cops.` opens a sub-table)
/// and whose `[diameter]` section gets `extra`.
async fn start(cops: &str, extra: &str) -> (Node, std::net::SocketAddr) {
    let node = sae_node::start(config_cops(extra, cops)).await.unwrap();
    let addr = node
        .listeners()
        .into_iter()
        .find(|l| l.protocol == "cops")
        .unwrap()
        .addr;
    (node, addr)
}

fn call(id: u32, kbps: u32) -> sae_cops::pr::PrInstance {
    CallRequest {
        id,
        call_id: format!("call-{id}"),
        realm: String::new(),
        media_streams: 1,
        bandwidth_kbps: kbps,
    }
    .to_instance()
    .unwrap()
}

fn command(d: &DecisionContent) -> Command {
    match d {
        DecisionContent::Decisions(v) => v[0].flags.command,
        DecisionContent::Error(e) => panic!("DEC with Error {e:?}"),
    }
}

#[actix::test]
async fn an_sbc_is_admitted_up_to_its_budget_and_a_released_call_frees_room() {
    let (node, addr) = start(
        "keepalive_secs = 45\nbudgets = [{ pepid = \"sbc1\", calls = 2 }]",
        "",
    )
    .await;
    let mut sbc = Pep::connect(addr, 0x800A, "sbc1").await;
    let (ka, _) = sbc.accepted_synced().await;
    assert_eq!(ka, Some(Duration::from_secs(45)));
    for id in 1..=2 {
        sbc.request(id, call(id, 64)).await;
        let (h, d) = sbc.decision().await;
        assert_eq!((h.as_u32(), command(&d)), (Some(id), Command::Install));
    }
    sbc.request(3, call(3, 64)).await;
    assert_eq!(command(&sbc.decision().await.1), Command::Remove);
    let budgets = node.cops().admission.lock().unwrap().status();
    assert_eq!(budgets[0].calls, 2);
    // DRQ releases the call; the next one fits.
    sbc.conn
        .delete(
            now(),
            Handle::from_u32(1),
            Reason {
                code: ReasonCode::Tear,
                sub_code: 0,
            },
        )
        .unwrap();
    sbc.request(4, call(4, 64)).await;
    assert_eq!(command(&sbc.decision().await.1), Command::Install);
    let statuses = node.cops().statuses();
    assert_eq!(statuses.len(), 1);
    assert_eq!((statuses[0].0.pepid.as_str(), statuses[0].1), ("sbc1", 3));
    let metrics = node.engine().metrics.encode();
    for line in [
        r#"sae_cops_messages_total{direction="out",op="DEC",outcome="install"} 3"#,
        r#"sae_cops_messages_total{direction="out",op="DEC",outcome="remove"} 1"#,
        r#"sae_cops_messages_total{direction="in",op="REQ",outcome=""} 4"#,
        r#"sae_cops_messages_total{direction="out",op="CAT",outcome=""} 1"#,
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
}

#[actix::test]
async fn unsupported_client_types_and_unknown_pepids_are_refused_with_cc() {
    let (_node, addr) = start("allowed_pepids = [\"erx1\"]", "").await;
    let mut pep = Pep::connect(addr, 0x1234, "erx1").await;
    assert_eq!(
        pep.closed_with().await.code,
        ErrorCode::UnsupportedClientType
    );
    let mut pep = Pep::connect(addr, 0x800B, "stranger").await;
    assert_eq!(
        pep.closed_with().await.code,
        ErrorCode::AuthenticationFailure
    );
    let mut pep = Pep::connect(addr, 0x800B, "erx1").await;
    pep.accepted_synced().await;
}

#[actix::test]
async fn a_silent_pep_is_closed_after_the_keepalive_timer() {
    let (_node, addr) = start("keepalive_secs = 1", "").await;
    let mut pep = Pep::connect(addr, 0x800A, "sbc1").await;
    pep.accepted().await;
    // The test never lets its PEP send a KA.
    let started = Instant::now();
    let error = pep.closed_with().await;
    assert_eq!(error.code, ErrorCode::CommunicationFailure);
    assert!(started.elapsed() >= Duration::from_millis(900));
}

const CATALOG: &str = r#"
[[service]]
name = "gold"
policy_name = "gold-100m"
template_name = "rate-limit"
substitutions = { rate = "100m" }
accounting = true

[[service]]
name = "video"
template_name = "video-boost"

[[rule]]
name = "default"
services = ["gold"]
"#;

fn interface(id: u32) -> sae_cops::pr::PrInstance {
    SubscriberInterface {
        id,
        if_name: format!("fastEthernet 3/0.{id}"),
        address: [10, 2, 0, id as u8],
        login_name: format!("user{id}@isp.example"),
        virtual_router: if id == 7 {
            "cust1".into()
        } else {
            "default@erx1".into()
        },
    }
    .to_instance()
    .unwrap()
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
async fn cops_pr_provisioning_installs_policies_records_reports_and_usage_and_ends_on_drq() {
    let (node, addr) = start("accounting_timer_secs = 30", CATALOG).await;
    let sae = node.engine().clone();
    let mut erx = Pep::connect(addr, 0x800B, "erx1").await;
    let (_, acct) = erx.accepted_synced().await;
    assert_eq!(acct, Some(Duration::from_secs(30)));
    erx.request(7, interface(7)).await;
    let (handle, d) = erx.decision().await;
    let DecisionContent::Decisions(decisions) = d else {
        panic!("DEC with an Error");
    };
    assert_eq!(decisions[0].flags.command, Command::Install);
    let named = decisions[0].named.clone().expect("named decision data");
    let install = sae_cops::pr::decode_install_decision(&named).unwrap();
    let policies = sae_cops::pib::all::<PolicyInstance>(&install.0).unwrap();
    assert_eq!(policies.len(), 1);
    assert_eq!(policies[0].policy_name, "gold-100m");
    assert_eq!(policies[0].interface, 7);
    assert!(policies[0].accounting);
    // An RFC 3483 usage policy comes with the accounted policy.
    let linkages = sae_cops::pib::all::<Linkage>(&install.0).unwrap();
    assert_eq!(linkages.len(), 1);
    assert_eq!(linkages[0].interval_count, 1);

    let session_id = "cops;erx1;800b;00000007";
    let entry = sae.sessions.get(session_id).expect("session");
    assert_eq!(
        entry.record.nas_port_id.as_deref(),
        Some("fastEthernet 3/0.7")
    );
    assert_eq!(entry.record.user_name.as_deref(), Some("user7@isp.example"));
    assert_eq!(entry.record.services[0].state, ServiceState::Installing);
    // The interface and its virtual router (a bare VR name is on the PEP's router).
    let a = &entry.record.attributes;
    assert_eq!(a.interface_name.as_deref(), Some("fastEthernet 3/0.7"));
    assert_eq!(a.login_type.name(), "AUTHINTF");
    assert_eq!(entry.record.virtual_router(), "cust1@erx1");
    assert_eq!(
        entry.record.attributes.accounting_id.as_deref(),
        Some("user7@isp.example")
    );

    erx.conn
        .report(now(), handle.clone(), ReportType::Success, None, true)
        .unwrap();
    erx.flush().await;
    eventually(|| {
        sae.sessions.get(session_id).unwrap().record.services[0].state == ServiceState::Active
    })
    .await;

    // Usage of the installed policy.
    let policy_prid = PolicyInstance::to_instance(&policies[0]).unwrap().prid;
    let usage = TrafficUsage {
        id: 1,
        linkage: linkages[0].prid().unwrap(),
        selected: policy_prid,
        assignment: bytes::Bytes::new(),
        packets: 10,
        octets: 12_345,
    };
    let report = sae_cops::pr::encode_accounting_report(&AccountingReport(vec![
        usage.to_instance().unwrap(),
    ]))
    .unwrap();
    erx.conn
        .report(
            now(),
            handle.clone(),
            ReportType::Accounting,
            Some(ClientSi::Named(report)),
            false,
        )
        .unwrap();
    erx.flush().await;
    eventually(|| sae.store.usage_count() == 1).await;
    sae.store.flush().unwrap();
    let records = sae.store.usage(&UsageFilter::default()).unwrap();
    assert_eq!(records[0].policy_name, "gold-100m");
    assert_eq!(records[0].input_octets, 12_345);
    assert_eq!(records[0].session_id, session_id);

    erx.conn
        .delete(
            now(),
            handle,
            Reason {
                code: ReasonCode::Management,
                sub_code: 0,
            },
        )
        .unwrap();
    erx.flush().await;
    eventually(|| sae.sessions.is_empty()).await;
}

#[actix::test]
async fn a_reconnecting_pep_takes_its_state_over_and_stale_states_end() {
    let (node, addr) = start("", CATALOG).await;
    let sae = node.engine().clone();
    let mut erx = Pep::connect(addr, 0x800B, "erx1").await;
    erx.accepted_synced().await;
    for id in [7, 8] {
        erx.request(id, interface(id)).await;
        erx.decision().await;
    }
    assert_eq!(sae.sessions.len(), 2);
    drop(erx);

    // Same PEPID and client type on a new connection: the node asks what it still holds
    // (it does so on every open; here it knows two request states).
    let mut erx = Pep::connect(addr, 0x800B, "erx1").await;
    erx.accepted().await;
    match erx.event().await {
        PepEvent::SyncRequest { handle: None } => {}
        other => panic!("expected SSQ, got {other:?}"),
    }
    // Only interface 7 is still there.
    erx.request(7, interface(7)).await;
    let (_, d) = erx.decision().await;
    assert_eq!(command(&d), Command::Install);
    erx.conn.sync_complete(now(), None).unwrap();
    erx.flush().await;
    eventually(|| sae.sessions.len() == 1).await;
    assert!(sae.sessions.get("cops;erx1;800b;00000007").is_some());
    let statuses = node.cops().statuses();
    assert!(statuses[0].0.resumed);
    assert_eq!(statuses[0].1, 1);
}

#[actix::test]
async fn after_a_restart_the_pep_resends_what_it_holds_and_the_rest_is_ended() {
    let data = tempfile::tempdir().unwrap();
    let config = || crate::client::config_cops_in(data.path(), CATALOG, "");
    let node = sae_node::start(config()).await.unwrap();
    let addr = cops_addr(&node);
    let mut erx = Pep::connect(addr, 0x800B, "erx1").await;
    erx.accepted_synced().await;
    for id in [7, 8] {
        erx.request(id, interface(id)).await;
        erx.decision().await;
    }
    drop(erx);
    let sae = node.engine().clone();
    eventually(|| sae.sessions.len() == 2).await;
    node.shutdown().await;
    drop(sae);

    let node = sae_node::start(config()).await.unwrap();
    let sae = node.engine().clone();
    assert_eq!(sae.sessions.len(), 2, "recovered from storage");
    let mut erx = Pep::connect(cops_addr(&node), 0x800B, "erx1").await;
    erx.accepted().await;
    match erx.event().await {
        PepEvent::SyncRequest { handle: None } => {}
        other => panic!("expected SSQ, got {other:?}"),
    }
    erx.request(8, interface(8)).await;
    assert_eq!(command(&erx.decision().await.1), Command::Install);
    erx.conn.sync_complete(now(), None).unwrap();
    erx.flush().await;
    eventually(|| sae.sessions.len() == 1).await;
    assert!(sae.sessions.get("cops;erx1;800b;00000008").is_some());
}

fn cops_addr(node: &Node) -> std::net::SocketAddr {
    node.listeners()
        .into_iter()
        .find(|l| l.protocol == "cops")
        .unwrap()
        .addr
}

/// Writes raw bytes to the node's COPS port and returns the first message it answers with
/// (or `None` when it closes without one).
async fn raw_exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> Option<sae_cops::Message> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut frames = FrameDecoder::new(Limits::default());
    let mut buf = BytesMut::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(f) = frames
            .decode(&mut buf)
            .expect("node sent unframeable bytes")
        {
            match f {
                sae_cops::Frame::Message(m) => return Some(m),
                other => panic!("node sent a malformed message: {other:?}"),
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk))
            .await
            .expect("an answer within 10 s")
            .unwrap_or(0);
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn cops_message(version_flags: u8, op: u8, client_type: u16, objects: &[&[u8]]) -> Vec<u8> {
    let body: Vec<u8> = objects.concat();
    let mut m = vec![version_flags, op];
    m.extend_from_slice(&client_type.to_be_bytes());
    m.extend_from_slice(&(8 + body.len() as u32).to_be_bytes());
    m.extend_from_slice(&body);
    m
}

fn close_error(m: Option<sae_cops::Message>) -> ErrorObject {
    match m.map(|m| m.body) {
        Some(sae_cops::message::Body::ClientClose(cc)) => cc.error,
        other => panic!("expected CC, got {other:?}"),
    }
}

#[actix::test]
async fn malformed_opens_get_a_cc_with_the_right_error_and_the_node_keeps_serving() {
    let (_node, addr) = start("", "").await;
    // PEPID "sbc1": length 8, C-Num 11, C-Type 1.
    let pepid: &[u8] = &[0, 8, 11, 1, b's', b'b', b'c', b'1'];
    // A Decision (C-Num 6, flags: Install) has no place in an OPN.
    let decision: &[u8] = &[0, 8, 6, 1, 0, 1, 0, 0];
    let cc = raw_exchange(addr, &cops_message(0x10, 6, 0x800A, &[pepid, decision])).await;
    assert_eq!(close_error(cc).code, ErrorCode::BadMessageFormat);
    // An unknown C-Num: Error 13 with C-Num/C-Type as sub-code.
    let unknown: &[u8] = &[0, 8, 99, 1, 0, 0, 0, 0];
    let cc = raw_exchange(addr, &cops_message(0x10, 6, 0x800A, &[pepid, unknown])).await;
    let e = close_error(cc);
    assert_eq!(
        (e.code, e.sub_code),
        (ErrorCode::UnknownObject, 99 << 8 | 1)
    );
    // Version 2: the node does not speak it; it closes (CC or not at all), never panics.
    let v2 = cops_message(0x20, 6, 0x800A, &[pepid]);
    if let Some(m) = raw_exchange(addr, &v2).await {
        assert!(
            matches!(m.body, sae_cops::message::Body::ClientClose(_)),
            "{m:?}"
        );
    }
    // A length shorter than the header.
    let mut short = cops_message(0x10, 6, 0x800A, &[pepid]);
    short[4..8].copy_from_slice(&4u32.to_be_bytes());
    if let Some(m) = raw_exchange(addr, &short).await {
        assert!(
            matches!(m.body, sae_cops::message::Body::ClientClose(_)),
            "{m:?}"
        );
    }
    // And a well-formed PEP is still served.
    let mut pep = Pep::connect(addr, 0x800A, "sbc1").await;
    pep.accepted_synced().await;
}

#[actix::test]
async fn with_integrity_configured_signed_peps_are_served_and_unsigned_ones_refused() {
    let (_node, addr) = start(
        "[cops.integrity]\nkey_id = 1\nkeys = { 1 = \"00112233445566778899aabbccddeeff\" }",
        "",
    )
    .await;
    let keys = sae_cops::KeyTable::new().with(1, hex_key());
    let mut config = PepConfig::new(0x800A, "sbc1");
    config.integrity = Some(sae_cops::pdp::IntegrityConfig::new(keys, 1, true).unwrap());
    let mut signed = Pep::connect_with(addr, config).await;
    signed.accepted_synced().await;
    signed.request(1, call(1, 64)).await;
    assert_eq!(command(&signed.decision().await.1), Command::Install);

    let mut unsigned = Pep::connect(addr, 0x800A, "sbc2").await;
    assert_eq!(
        unsigned.closed_with().await.code,
        ErrorCode::AuthenticationRequired
    );
    let wrong = sae_cops::KeyTable::new().with(1, vec![9u8; 16]);
    let mut config = PepConfig::new(0x800A, "sbc3");
    config.integrity = Some(sae_cops::pdp::IntegrityConfig::new(wrong, 1, true).unwrap());
    let mut forged = Pep::connect_with(addr, config).await;
    let e = forged.event().await;
    assert!(
        matches!(&e, PepEvent::Closed(_)),
        "a wrongly keyed PEP must be closed, got {e:?}"
    );
}

fn hex_key() -> Vec<u8> {
    (0u8..16).map(|i| i * 0x11).collect()
}

#[actix::test]
async fn operators_activate_and_deactivate_services_of_cops_pr_sessions_with_unsolicited_decs() {
    use sae_node::subscriber::registry::SubscriberRef;
    let (node, addr) = start("", CATALOG).await;
    let sae = node.engine().clone();
    let mut erx = Pep::connect(addr, 0x800B, "erx1").await;
    erx.accepted_synced().await;
    erx.request(9, interface(9)).await;
    let (handle, _) = erx.decision().await;
    let who = SubscriberRef::UserName("user9@isp.example".into());

    let outcome = sae
        .activate(&who, "video", Default::default())
        .await
        .unwrap();
    assert!(outcome.success);
    assert_eq!(outcome.state, Some(ServiceState::Installing));
    let (h, d) = erx.decision().await;
    assert_eq!(h, handle);
    let DecisionContent::Decisions(decisions) = d else {
        panic!("DEC with an Error");
    };
    assert_eq!(decisions[0].flags.command, Command::Install);
    let install =
        sae_cops::pr::decode_install_decision(decisions[0].named.as_ref().unwrap()).unwrap();
    let policies = sae_cops::pib::all::<PolicyInstance>(&install.0).unwrap();
    assert_eq!(policies[0].policy_name, "video");
    assert_eq!(policies[0].interface, 9);
    erx.conn
        .report(now(), handle.clone(), ReportType::Success, None, false)
        .unwrap();
    erx.flush().await;
    let session_id = "cops;erx1;800b;00000009";
    eventually(|| {
        sae.sessions
            .get(session_id)
            .unwrap()
            .record
            .services
            .iter()
            .any(|s| s.service == "video" && s.state == ServiceState::Active)
    })
    .await;

    let outcome = sae.deactivate(&who, "video").await.unwrap();
    assert!(outcome.success);
    let (_, d) = erx.decision().await;
    let DecisionContent::Decisions(decisions) = d else {
        panic!("DEC with an Error");
    };
    assert_eq!(decisions[0].flags.command, Command::Remove);
    let removed =
        sae_cops::pr::decode_remove_decision(decisions[0].named.as_ref().unwrap()).unwrap();
    assert_eq!(removed.0.len(), 1);
    let rec = sae.sessions.get(session_id).unwrap().record;
    assert!(rec.services.iter().all(|s| s.service != "video"));
    assert!(rec.services.iter().any(|s| s.service == "gold"));
}

/// Copies a directory tree.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// `tests/data/before-attachment` is the data directory of a node of the version before
/// session records said how they are attached to their router, written by that version (commit
/// 12372ff): two Diameter sessions of router1.test.realm, two COPS-PR sessions of PEP erx1,
/// then a graceful stop. Today's node recovers all four with their attachment; the router is asked to replay
/// and the PEP takes its request states over.
#[actix::test]
async fn a_data_directory_of_the_previous_version_is_recovered() {
    use sae_diameter::codes::{app, command, result};
    use sae_node::model::{Attachment, SessionState};
    let data = tempfile::tempdir().unwrap();
    copy_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/before-attachment"),
        data.path(),
    );
    let node = sae_node::start(crate::client::config_cops_in(data.path(), CATALOG, ""))
        .await
        .unwrap();
    let engine = node.engine().clone();
    assert_eq!(engine.sessions.len(), 4);
    for id in ["r1;9;1", "r1;9;2"] {
        let r = engine.sessions.get(id).unwrap().record;
        assert_eq!(r.router, "router1.test.realm");
        assert_eq!(r.state, SessionState::Resyncing);
        assert_eq!(
            r.attachment,
            Attachment::Diameter {
                realm: "test.realm".into(),
                application_id: app::JSRC
            }
        );
    }
    for id in [7u8, 8] {
        let r = engine
            .sessions
            .get(&format!("cops;erx1;800b;000000{id:02x}"))
            .unwrap()
            .record;
        assert_eq!(
            r.attachment,
            Attachment::Cops {
                pepid: "erx1".into(),
                client_type: 0x800B,
                handle: vec![0, 0, 0, id],
                interface: u32::from(id),
            }
        );
    }

    // The PEP takes both request states over and keeps the one it re-sends.
    let mut erx = Pep::connect(cops_addr(&node), 0x800B, "erx1").await;
    erx.accepted().await;
    match erx.event().await {
        PepEvent::SyncRequest { handle: None } => {}
        other => panic!("expected SSQ, got {other:?}"),
    }
    assert_eq!(node.cops().statuses()[0].1, 2);
    erx.request(8, interface(8)).await;
    assert_eq!(command(&erx.decision().await.1), Command::Install);

    // The router is asked to replay its sessions first.
    let mut c = crate::client::Client::connect(node.listeners()[0].addr).await;
    c.exchange_capabilities("router1.test.realm", &[app::JSRC])
        .await;
    let srq = c.expect_message().await;
    assert_eq!(srq.header.command_code, command::SESSION_RESYNC);
    let mut srr = sae_diameter::Message::answer_to(&srq);
    srr.set_result_code(result::SUCCESS);
    srr.push_origin("router1.test.realm", "test.realm");
    c.send(srr).await;
    erx.conn.sync_complete(now(), None).unwrap();
    erx.flush().await;
    // Nothing replayed or re-sent within the window is ended; what was re-sent stays.
    eventually(|| engine.sessions.get("cops;erx1;800b;00000007").is_none()).await;
    assert!(engine.sessions.get("cops;erx1;800b;00000008").is_some());
}
