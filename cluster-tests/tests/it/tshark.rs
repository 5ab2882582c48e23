//! Every Diameter message the SAE's code emits, decoded by tshark (Wireshark's dissector).
//!
//! Two `sae_diameter::peer::Peer`s, a router (initiator) and the SAE (responder), talk to each
//! other in memory; every octet either of them transmits is captured. What the SAE sends is
//! built by the node's own builders (`sae_node::diameter::messages`: SRQ, AAA, PPR, ACR, ASR,
//! answers and refusals); the router's side is built with `sae_diameter::jsrc`; all of it goes
//! through the same peers, so it also passes the receiving side's dictionary validation. The
//! capture becomes a text2pcap hexdump (one packet per message, router 40000 → SAE 3868 and
//! back), and tshark must find nothing malformed, no warning, and the same command codes, flags
//! and Result-Codes as we put in.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use sae_diameter::codes::{DisconnectCause, app, avp, command, result, vendor};
use sae_diameter::jsrc::{self, AcctRecord, RequestType};
use sae_diameter::{
    Avp, AvpFlags, Capabilities, Dictionary, Event, FrameDecoder, JuniperCodes, Message, Peer,
    PeerConfig, PeerFilter, Role, Value, VendorApplication,
};
use sae_node::diameter::messages as node_messages;
use sae_node::model::{Attachment, ServiceSession, ServiceState, SessionState, SubscriberRecord};

use crate::support::{
    od_hexdump, require_juniper_dictionary, require_tshark, run_ok, tshark_findings,
};
use sae_sim::diameter_router::{self, RouterIdentity};

const SAE: &str = "sae.test.realm";
const ROUTER: &str = "router1.test.realm";
const REALM: &str = "test.realm";
/// 3GPP's vendor id and its Charging-Rule-Base-Name AVP (TS 29.212), outside the SAE's dictionary.
const VENDOR_3GPP: u32 = 10415;
const CHARGING_RULE_BASE_NAME: u32 = 1004;

/// Which way a captured message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    RouterToSae,
    SaeToRouter,
}

/// One message as it left a peer.
#[derive(Debug, Clone)]
struct Captured {
    dir: Dir,
    bytes: Bytes,
}

fn ident(code: u32, s: &str) -> Avp {
    Avp::mandatory(code, &Value::DiameterIdentity(s.into()))
}

fn u32_avp(code: u32, v: u32) -> Avp {
    Avp::mandatory(code, &Value::Unsigned32(v))
}

fn enumerated(code: u32, v: i32) -> Avp {
    Avp::mandatory(code, &Value::Enumerated(v))
}

fn utf8(code: u32, s: &str) -> Avp {
    Avp::mandatory(code, &Value::Utf8String(s.into()))
}

fn sae_capabilities() -> Capabilities {
    Capabilities {
        origin_host: SAE.into(),
        origin_realm: REALM.into(),
        host_ip_addresses: vec!["127.0.0.1".parse().unwrap()],
        vendor_id: vendor::JUNIPER,
        product_name: "SAE".into(),
        origin_state_id: Some(1_700_000_000),
        firmware_revision: Some(1),
        supported_vendor_ids: vec![vendor::JUNIPER],
        vendor_specific_applications: [app::JSRC, app::PTSP]
            .into_iter()
            .map(|id| VendorApplication::auth(vendor::JUNIPER, id))
            .collect(),
        ..Default::default()
    }
}

fn router_capabilities(applications: &[u32]) -> Capabilities {
    let identity = RouterIdentity {
        origin_host: ROUTER.into(),
        origin_realm: REALM.into(),
        applications: applications.to_vec(),
        watchdog_interval: Duration::from_secs(6),
    };
    diameter_router::capabilities(&identity, "127.0.0.1".parse().unwrap())
}

fn config(role: Role, local: Capabilities, allowed: PeerFilter) -> Arc<PeerConfig> {
    let mut c = PeerConfig::new(role, local, Arc::new(Dictionary::base()));
    c.watchdog_interval = Duration::from_secs(6);
    c.allowed_peers = allowed;
    Arc::new(c)
}

/// A router and an SAE peer connected back to back in memory.
struct Link {
    router: Peer,
    sae: Peer,
    now: Instant,
    captured: Vec<Captured>,
    router_events: Vec<Event>,
    sae_events: Vec<Event>,
}

fn deliver(peer: &mut Peer, now: Instant, bytes: &[u8]) {
    let mut buf = BytesMut::from(bytes);
    let mut decoder = FrameDecoder::new(peer.limits());
    loop {
        match decoder.decode(&mut buf) {
            Ok(Some(frame)) => peer.handle_frame(now, frame),
            Ok(None) => break,
            Err(e) => {
                peer.handle_framing_error(now, e);
                break;
            }
        }
    }
    assert!(buf.is_empty(), "a whole message was delivered");
}

impl Link {
    /// Connects and exchanges CER/CEA (the SAE accepts when `accept` is set).
    fn new(sae_allowed: PeerFilter, router_apps: &[u32], accept: bool) -> Link {
        let now = Instant::now();
        let router = Peer::new(
            config(
                Role::Initiator,
                router_capabilities(router_apps),
                PeerFilter::Any,
            ),
            1,
            false,
        );
        let sae = Peer::new(
            config(Role::Responder, sae_capabilities(), sae_allowed),
            2,
            false,
        );
        let mut link = Link {
            router,
            sae,
            now,
            captured: Vec::new(),
            router_events: Vec::new(),
            sae_events: Vec::new(),
        };
        link.sae.connected(now);
        link.router.connected(now);
        link.pump(accept);
        link
    }

    /// Connects; the SAE refuses the CER with `code` (the node's driver does so with 4003 for
    /// an Origin-Host that already has a connection, when configured to reject).
    fn refused(code: u32, message: &'static str) -> Link {
        let mut link = Link::new(PeerFilter::Any, &[app::JSRC], false);
        assert!(
            link.sae_events
                .iter()
                .any(|e| matches!(e, Event::CapabilitiesReceived(_))),
            "the SAE holds the CER for its driver's decision"
        );
        link.sae.reject(link.now, code, message);
        link.pump(false);
        link
    }

    /// Moves bytes both ways until neither side has anything to send.
    fn pump(&mut self, accept: bool) {
        loop {
            let mut moved = false;
            while let Some(b) = self.router.poll_transmit() {
                self.captured.push(Captured {
                    dir: Dir::RouterToSae,
                    bytes: b.clone(),
                });
                deliver(&mut self.sae, self.now, &b);
                moved = true;
            }
            while let Some(e) = self.sae.poll_event() {
                if matches!(e, Event::CapabilitiesReceived(_)) && accept {
                    self.sae.accept(self.now);
                }
                self.sae_events.push(e);
            }
            while let Some(b) = self.sae.poll_transmit() {
                self.captured.push(Captured {
                    dir: Dir::SaeToRouter,
                    bytes: b.clone(),
                });
                deliver(&mut self.router, self.now, &b);
                moved = true;
            }
            while let Some(e) = self.router.poll_event() {
                self.router_events.push(e);
            }
            if !moved {
                break;
            }
        }
    }

    /// Moves the clock to `at` and lets both peers' timers run.
    fn advance_to(&mut self, at: Instant) {
        self.now = self.now.max(at);
        self.router.handle_timeout(self.now);
        self.sae.handle_timeout(self.now);
        self.pump(true);
    }

    /// Router → SAE request; returns the request the SAE's driver received.
    fn router_request(&mut self, request: Message) -> Message {
        let before = self.sae_events.len();
        self.router
            .send_request(self.now, request)
            .expect("router connection is open");
        self.pump(true);
        self.sae_events[before..]
            .iter()
            .find_map(|e| match e {
                Event::Request(m) => Some(m.clone()),
                _ => None,
            })
            .unwrap_or_else(|| {
                panic!(
                    "the SAE did not accept the request; events {:?}, last message sent back: {:?}",
                    &self.sae_events[before..],
                    self.captured
                        .last()
                        .map(|c| Message::decode(c.bytes.clone()))
                )
            })
    }

    /// SAE → router request; returns the request the router's driver received.
    fn sae_request(&mut self, request: Message) -> Message {
        let before = self.router_events.len();
        self.sae
            .send_request(self.now, request)
            .expect("SAE connection is open");
        self.pump(true);
        self.router_events[before..]
            .iter()
            .find_map(|e| match e {
                Event::Request(m) => Some(m.clone()),
                _ => None,
            })
            .unwrap_or_else(|| {
                panic!(
                    "the router did not accept the request; events {:?}",
                    &self.router_events[before..]
                )
            })
    }

    fn sae_answer(&mut self, answer: Message) {
        let before = self.router_events.len();
        self.sae
            .send_answer(answer)
            .expect("SAE connection is open");
        self.pump(true);
        assert!(
            self.router_events[before..]
                .iter()
                .any(|e| matches!(e, Event::Answer { .. })),
            "the router did not take the answer: {:?}",
            &self.router_events[before..]
        );
    }

    fn router_answer(&mut self, answer: Message) {
        let before = self.sae_events.len();
        self.router
            .send_answer(answer)
            .expect("router connection is open");
        self.pump(true);
        assert!(
            self.sae_events[before..]
                .iter()
                .any(|e| matches!(e, Event::Answer { .. })),
            "the SAE did not take the answer: {:?}",
            &self.sae_events[before..]
        );
    }

    /// Router → SAE request that the SAE must refuse; returns the SAE's answer as sent.
    fn router_request_refused(&mut self, request: Message) -> Message {
        let before = self.captured.len();
        self.router
            .send_request(self.now, request)
            .expect("router connection is open");
        self.pump(true);
        self.answer_since(before)
    }

    /// Raw bytes (a message no peer of ours would build) straight into the SAE; the SAE's
    /// answer is captured, the bytes themselves are not.
    fn inject_into_sae(&mut self, bytes: &[u8]) -> Message {
        let before = self.captured.len();
        deliver(&mut self.sae, self.now, bytes);
        self.pump(true);
        self.answer_since(before)
    }

    fn answer_since(&self, index: usize) -> Message {
        let c = self.captured[index..]
            .iter()
            .find(|c| c.dir == Dir::SaeToRouter)
            .expect("the SAE answered");
        Message::decode(c.bytes.clone()).expect("the SAE's answer decodes")
    }
}

fn session(n: u32) -> Avp {
    utf8(avp::SESSION_ID, &format!("{ROUTER};1700000000;{n}"))
}

fn origin(host: &str) -> [Avp; 2] {
    [
        ident(avp::ORIGIN_HOST, host),
        ident(avp::ORIGIN_REALM, REALM),
    ]
}

/// The AAR a router sends when a subscriber logs in.
fn aar(session_no: u32) -> Message {
    let mut m = Message::request(command::AA, app::JSRC, true)
        .with(session(session_no))
        .with(u32_avp(avp::AUTH_APPLICATION_ID, app::JSRC));
    m.avps.extend(origin(ROUTER));
    m.with(ident(avp::DESTINATION_REALM, REALM))
        .with(enumerated(274, 2)) // Auth-Request-Type AUTHORIZE_ONLY
        .with(utf8(avp::USER_NAME, "subscriber-1@isp.example"))
        .with(Avp::mandatory(
            avp::FRAMED_IP_ADDRESS,
            &Value::OctetString(Bytes::from_static(&[192, 0, 2, 10])),
        ))
        .with(utf8(avp::NAS_PORT_ID, "ge-1/0/0.100"))
        .with(RequestType::AddressAuthorization.to_avp())
}

fn answer(request: &Message, code: u32, from: &str) -> Message {
    let mut a = Message::answer_to(request);
    a.set_result_code(code);
    a.avps.extend(origin(from));
    a
}

/// The node's own record of the subscriber of `session(n)`, for its message builders.
fn node_record(n: u32) -> SubscriberRecord {
    let service = |name: &str, policy: &str, template: &str| ServiceSession {
        service: name.into(),
        policy_name: policy.into(),
        template_name: template.into(),
        substitutions: [("downstream".to_owned(), "100m".to_owned())].into(),
        accounting: true,
        state: ServiceState::Active,
        result_code: 2001,
        error: String::new(),
        activated_ms: 1_700_000_000_000,
    };
    SubscriberRecord {
        session_id: format!("{ROUTER};1700000000;{n}"),
        router: ROUTER.into(),
        attachment: Attachment::Diameter {
            realm: REALM.into(),
            application_id: app::JSRC,
        },
        user_name: Some("subscriber-1@isp.example".into()),
        framed_ip: Some([192, 0, 2, 10].into()),
        nas_port_id: Some("ge-1/0/0.100".into()),
        login_ms: 1_700_000_000_000,
        confirmed: true,
        state: SessionState::Active,
        services: vec![
            service("gold", "gold-100M", "rate-limit"),
            service("parental", "parental-control", ""),
        ],
        attributes: Default::default(),
    }
}

fn local() -> node_messages::Local {
    node_messages::Local {
        origin_host: SAE.into(),
        origin_realm: REALM.into(),
    }
}

fn acct_record(name: &str) -> Avp {
    AcctRecord {
        policy_name: name.into(),
        input_octets: Some(123_456_789),
        output_octets: Some(987_654_321),
        input_packets: Some(1_000),
        output_packets: Some(2_000),
    }
    .to_avp()
}

/// Runs every exchange and returns the capture.
fn every_message() -> Vec<Captured> {
    let mut link = Link::new(PeerFilter::Any, &[app::JSRC], true);
    assert!(
        link.router_events.iter().any(|e| matches!(e, Event::Up(_))),
        "CER/CEA failed: {:?} / {:?}",
        link.router_events,
        link.sae_events
    );

    // DWR/DWA in both directions: each side's watchdog fires in turn.
    for _ in 0..2 {
        let router_due = link.router.poll_timeout().expect("router watchdog armed");
        link.advance_to(router_due);
        let sae_due = link.sae.poll_timeout().expect("SAE watchdog armed");
        link.advance_to(sae_due);
    }

    // The messages the SAE sends are built by the node's own builders
    // (`sae_node::diameter::messages`), exactly as its actors send them.
    let local = local();
    let codes = JuniperCodes::DEFAULT;
    let record = node_record(1);

    // The node's first message on a router connection: SRQ, SRR.
    let srq = node_messages::session_resync_with(&local, &codes, ROUTER, REALM, app::JSRC);
    let req = link.sae_request(srq);
    link.router_answer(
        answer(&req, result::SUCCESS, ROUTER).with(u32_avp(avp::AUTH_APPLICATION_ID, app::JSRC)),
    );

    // Subscriber login: AAR, AAA with two policies (one defined by template, one by name).
    let req = link.router_request(aar(1));
    let aaa = node_messages::login_answer(&req, &local, &codes, &record.services);
    link.sae_answer(aaa);

    // A dual-stack subscriber's second address family comes up (Juniper-Request-Type 4) with
    // the AVPs a router with dualstack-support adds: the SAE's dictionary takes them.
    let octets = |code: u32, vendor_id: Option<u32>, data: &'static [u8]| match vendor_id {
        Some(v) => Avp::vendor_mandatory(code, v, &Value::OctetString(Bytes::from_static(data))),
        None => Avp::mandatory(code, &Value::OctetString(Bytes::from_static(data))),
    };
    let mut dual = aar(1);
    dual.avps.retain(|a| !a.is(2050, vendor::JUNIPER));
    let dual = dual
        .with(RequestType::FamilyActivation.to_avp())
        .with(octets(9, None, &[255, 255, 255, 0]))
        .with(octets(
            168,
            None,
            &[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        ))
        .with(octets(
            2200,
            Some(vendor::JUNIPER),
            &[64, 0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0],
        ))
        .with(octets(2201, Some(vendor::JUNIPER), &[64]))
        .with(octets(2202, Some(vendor::JUNIPER), b"ge-1/0/0:100"))
        .with(octets(2203, Some(vendor::JUNIPER), b"remote-1"));
    let req = link.router_request(dual);
    link.sae_answer(node_messages::login_answer(
        &req,
        &local,
        &codes,
        &record.services,
    ));

    // A node that does not serve the router redirects it to the one that does (3006 with
    // Redirect-Host, a DiameterURI), as the SAE's answer builder writes it.
    let req = link.router_request(aar(7));
    let redirect = node_messages::redirect(&req, &local, "aaa://sae-2.test.realm:3868");
    assert!(redirect.header.flags.is_error());
    link.sae_answer(redirect);

    // The node's other refusals of router requests: 3004 while no node serves the router yet,
    // 5002 for a confirmation of a session it does not hold, 5012 for a refused login, 3001
    // for a command a router must not send.
    for (n, code, text) in [
        (
            8,
            result::TOO_BUSY,
            "no SAE of the cluster serves this router yet",
        ),
        (
            9,
            result::UNKNOWN_SESSION_ID,
            "confirmation for a session this SAE does not hold",
        ),
        (
            10,
            result::UNABLE_TO_COMPLY,
            "login refused by rule blocked",
        ),
    ] {
        let req = link.router_request(aar(n));
        link.sae_answer(node_messages::refusal(&req, &local, code, text));
    }

    // SAE pushes a policy change: PPR with an install and a remove, PPA.
    let gold: Vec<&ServiceSession> = record.services.iter().take(1).collect();
    let ppr = node_messages::push_profile(&record, &local, &codes, &gold, &["parental-control"]);
    let req = link.sae_request(ppr);
    link.router_answer(answer(&req, result::SUCCESS, ROUTER));

    // SAE asks for statistics: ACR (EVENT) with a Juniper-Acct-Record per policy, ACA.
    let acr = node_messages::collect_usage(&record, &local, &codes, 1);
    let req = link.sae_request(acr);
    link.router_answer(
        answer(&req, result::SUCCESS, ROUTER)
            .with(enumerated(avp::ACCOUNTING_RECORD_TYPE, 1))
            .with(u32_avp(avp::ACCOUNTING_RECORD_NUMBER, 1))
            .with(acct_record("gold-100M")),
    );

    // Router reports usage: ACR (interim) with a Juniper-Acct-Record, ACA.
    let mut acr = Message::request(command::ACCOUNTING, app::JSRC, true).with(session(1));
    acr.avps.extend(origin(ROUTER));
    let acr = acr
        .with(ident(avp::DESTINATION_REALM, REALM))
        .with(enumerated(avp::ACCOUNTING_RECORD_TYPE, 3))
        .with(u32_avp(avp::ACCOUNTING_RECORD_NUMBER, 1))
        .with(u32_avp(avp::AUTH_APPLICATION_ID, app::JSRC))
        .with(Avp::mandatory(
            avp::EVENT_TIMESTAMP,
            &Value::Time(sae_diameter::DiameterTime::from_unix_seconds(1_700_000_600)),
        ))
        .with(acct_record("gold-100M"));
    let req = link.router_request(acr.clone());
    link.sae_answer(node_messages::accounting_answer(
        &req,
        &local,
        result::SUCCESS,
    ));
    // The same report for a session the node does not hold: ACA 5002 with Error-Message.
    let mut unknown = acr;
    unknown.avps[0] = session(11);
    let req = link.router_request(unknown);
    let mut aca = node_messages::accounting_answer(&req, &local, result::UNKNOWN_SESSION_ID);
    aca.push(jsrc::error_message("unknown Session-Id"));
    link.sae_answer(aca);
    // A command no router sends to an SAE (an ASR): 3001 with the E bit.
    let mut asr = Message::request(command::ABORT_SESSION, app::JSRC, true).with(session(12));
    asr.avps.extend(origin(ROUTER));
    let asr = asr
        .with(ident(avp::DESTINATION_REALM, REALM))
        .with(ident(avp::DESTINATION_HOST, SAE))
        .with(u32_avp(avp::AUTH_APPLICATION_ID, app::JSRC));
    let req = link.router_request(asr);
    let a = node_messages::refusal(
        &req,
        &local,
        result::COMMAND_UNSUPPORTED,
        "ASR is not accepted from a router",
    );
    assert!(a.header.flags.is_error());
    link.sae_answer(a);

    // SAE aborts a session: ASR, ASA with the final counters.
    let mut aborted = node_record(2);
    aborted.state = SessionState::LoggingOut;
    let req = link.sae_request(node_messages::abort_session(&aborted, &local));
    link.router_answer(answer(&req, result::SUCCESS, ROUTER).with(acct_record("gold-100M")));

    // Subscriber logout: STR, STA.
    let mut str_ = Message::request(command::SESSION_TERMINATION, app::JSRC, true).with(session(1));
    str_.avps.extend(origin(ROUTER));
    let str_ = str_
        .with(ident(avp::DESTINATION_REALM, REALM))
        .with(u32_avp(avp::AUTH_APPLICATION_ID, app::JSRC))
        .with(enumerated(avp::TERMINATION_CAUSE, 1))
        .with(acct_record("gold-100M"));
    let req = link.router_request(str_);
    link.sae_answer(node_messages::answer(&req, &local, result::SUCCESS));

    // Router asks to resynchronise after a failover: SRQ with the last SAE it talked to, SRR.
    let mut srq = Message::request(command::SESSION_RESYNC, app::JSRC, false);
    srq.avps.extend(origin(ROUTER));
    let srq = srq
        .with(ident(avp::DESTINATION_REALM, REALM))
        .with(u32_avp(avp::AUTH_APPLICATION_ID, app::JSRC))
        .with(jsrc::last_origin_host("sae-old.test.realm"));
    let req = link.router_request(srq);
    link.sae_answer(node_messages::answer(&req, &local, result::SUCCESS));

    // The protocol-error answers of the node to the other router requests (3006 from a node
    // that does not serve the router, 3004 while nobody does, 3001 for a PPR, which only an
    // SAE sends), each in the answer-message format of RFC 6733 section 7.2.
    let mut acr_again = Message::request(command::ACCOUNTING, app::JSRC, true).with(session(13));
    acr_again.avps.extend(origin(ROUTER));
    let acr_again = acr_again
        .with(ident(avp::DESTINATION_REALM, REALM))
        .with(enumerated(avp::ACCOUNTING_RECORD_TYPE, 3))
        .with(u32_avp(avp::ACCOUNTING_RECORD_NUMBER, 2));
    let mut str_again =
        Message::request(command::SESSION_TERMINATION, app::JSRC, true).with(session(14));
    str_again.avps.extend(origin(ROUTER));
    let str_again = str_again
        .with(ident(avp::DESTINATION_REALM, REALM))
        .with(u32_avp(avp::AUTH_APPLICATION_ID, app::JSRC))
        .with(enumerated(avp::TERMINATION_CAUSE, 1));
    let mut srq_again = Message::request(command::SESSION_RESYNC, app::JSRC, false);
    srq_again.avps.extend(origin(ROUTER));
    let srq_again = srq_again
        .with(ident(avp::DESTINATION_REALM, REALM))
        .with(u32_avp(avp::AUTH_APPLICATION_ID, app::JSRC));
    for request in [acr_again, str_again, srq_again] {
        let req = link.router_request(request.clone());
        link.sae_answer(node_messages::redirect(
            &req,
            &local,
            "aaa://sae-2.test.realm:3868",
        ));
        let req = link.router_request(request);
        link.sae_answer(node_messages::refusal(
            &req,
            &local,
            result::TOO_BUSY,
            "no SAE of the cluster serves this router yet",
        ));
    }
    let mut ppr = Message::request(command::PUSH_PROFILE, app::JSRC, true).with(session(15));
    ppr.avps
        .insert(1, u32_avp(avp::AUTH_APPLICATION_ID, app::JSRC));
    ppr.avps.extend(origin(ROUTER));
    let ppr = ppr
        .with(ident(avp::DESTINATION_REALM, REALM))
        .with(ident(avp::DESTINATION_HOST, SAE));
    let req = link.router_request(ppr);
    link.sae_answer(node_messages::refusal(
        &req,
        &local,
        result::COMMAND_UNSUPPORTED,
        "PPR is not accepted from a router",
    ));

    // Protocol errors of the SAE's peer layer: an unknown command (3001), the E bit in a
    // request (3008), the M bit on an AVP that must not have it (3009).
    // Credit-Control (272): tshark knows it, the SAE's dictionary does not.
    let mut unknown_command = aar(16);
    unknown_command.header.command_code = 272;
    let mut e_bit = aar(17);
    e_bit.header.flags = e_bit
        .header
        .flags
        .with(sae_diameter::CommandFlags::ERROR, true);
    let m_bit = aar(18).with(utf8(avp::ERROR_MESSAGE, "M bit where it must not be"));
    for (i, (mut request, code)) in [
        (unknown_command, result::COMMAND_UNSUPPORTED),
        (e_bit, result::INVALID_HDR_BITS),
        (m_bit, result::INVALID_AVP_BITS),
    ]
    .into_iter()
    .enumerate()
    {
        request.header.hop_by_hop = 0x3000_0001 + i as u32;
        request.header.end_to_end = 0x3000_0001 + i as u32;
        let a = link.inject_into_sae(&request.encode().unwrap());
        assert_eq!(
            (a.result_code(), a.header.flags.is_error()),
            (Some(code), true)
        );
    }

    // Error answers the SAE's peer layer produces.
    let mut nasreq = aar(3);
    nasreq.header.application_id = app::NASREQ;
    nasreq.avps[1] = u32_avp(avp::AUTH_APPLICATION_ID, app::NASREQ);
    let a = link.router_request_refused(nasreq);
    assert_eq!(
        (a.result_code(), a.header.flags.is_error()),
        (Some(result::APPLICATION_UNSUPPORTED), true)
    );

    // A 3GPP AVP (Charging-Rule-Base-Name, M bit) that tshark knows and the SAE does not.
    let unknown = Avp::vendor_mandatory(
        CHARGING_RULE_BASE_NAME,
        VENDOR_3GPP,
        &Value::Utf8String("gold-100M".into()),
    );
    let a = link.router_request_refused(aar(4).with(unknown));
    assert_eq!(a.result_code(), Some(result::AVP_UNSUPPORTED));
    assert!(a.find(avp::FAILED_AVP, 0).is_some(), "5001 names the AVP");

    let mut missing = aar(5);
    missing.avps.retain(|a| !a.is(avp::DESTINATION_REALM, 0));
    let a = link.router_request_refused(missing);
    assert_eq!(a.result_code(), Some(result::MISSING_AVP));
    assert!(a.find(avp::FAILED_AVP, 0).is_some(), "5005 names the AVP");

    // An Unsigned32 AVP with three octets of data (valid AVP framing, wrong length for the
    // type): 5014 from dictionary validation.
    let mut short = aar(6).with(Avp::from_raw(
        avp::ORIGIN_STATE_ID,
        AvpFlags::mandatory(),
        None,
        Bytes::from_static(b"abc"),
    ));
    short.header.hop_by_hop = 0x5014_0001;
    short.header.end_to_end = 0x5014_0001;
    let a = link.inject_into_sae(&short.encode().unwrap());
    assert_eq!(a.result_code(), Some(result::INVALID_AVP_LENGTH));

    // Graceful close: DPR from the router, DPA from the SAE.
    link.router.disconnect(link.now, DisconnectCause::Rebooting);
    link.pump(true);
    assert!(
        link.sae_events
            .iter()
            .any(|e| matches!(e, Event::Closed(_))),
        "the SAE closed after DPR/DPA: {:?}",
        link.sae_events
    );

    let mut captured = link.captured;

    // Failed capabilities exchanges: unknown peer (3010) and no common application (5010).
    let only_others = PeerFilter::Only(BTreeSet::from(["client.test.realm".to_owned()]));
    let refused = Link::new(only_others, &[app::JSRC], true);
    let cea = refused.captured.last().expect("a CEA");
    let m = Message::decode(cea.bytes.clone()).unwrap();
    assert_eq!(
        (m.result_code(), m.header.flags.is_error()),
        (Some(result::UNKNOWN_PEER), true)
    );
    captured.extend(refused.captured);

    let no_common = Link::new(PeerFilter::Any, &[4], true);
    let cea = no_common.captured.last().expect("a CEA");
    let m = Message::decode(cea.bytes.clone()).unwrap();
    assert_eq!(m.result_code(), Some(result::NO_COMMON_APPLICATION));
    captured.extend(no_common.captured);

    // A second connection for an Origin-Host already up, refused (duplicate_peer = "reject").
    let duplicate = Link::refused(
        result::ELECTION_LOST,
        "router1.test.realm already has an open connection",
    );
    let cea = duplicate.captured.last().expect("a CEA");
    let m = Message::decode(cea.bytes.clone()).unwrap();
    assert_eq!(m.result_code(), Some(result::ELECTION_LOST));
    captured.extend(duplicate.captured);

    captured
}

/// The SAE's answer to an AAR carrying an AVP whose length field (4) is below the AVP header
/// size, which the decoder (not the dictionary) rejects with 5014.
fn short_avp_header_answer() -> Vec<Captured> {
    let mut link = Link::new(PeerFilter::Any, &[app::JSRC], true);
    let mut bad = BytesMut::from(&aar(7).encode().unwrap()[..]);
    bad.put_u32(avp::ORIGIN_STATE_ID);
    bad.put_u32(0x4000_0004); // M bit, length 4
    let len = bad.len() as u32;
    bad[1..4].copy_from_slice(&len.to_be_bytes()[1..]);
    bad[12..20].copy_from_slice(&[0x50, 0x14, 0, 2, 0x50, 0x14, 0, 2]);
    let before = link.captured.len();
    let a = link.inject_into_sae(&bad);
    assert_eq!(a.result_code(), Some(result::INVALID_AVP_LENGTH));
    let failed = a
        .find(avp::FAILED_AVP, 0)
        .expect("5014 carries Failed-AVP")
        .grouped()
        .expect("Failed-AVP decodes");
    assert_eq!(
        failed[0].code(),
        avp::ORIGIN_STATE_ID,
        "Failed-AVP names the AVP"
    );
    link.captured.split_off(before)
}

/// What we expect tshark to read from one packet.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Summary {
    command_code: u32,
    request: bool,
    error: bool,
    application_id: u32,
    result_code: Option<u32>,
}

fn summarize(bytes: &Bytes) -> Summary {
    let m = Message::decode(bytes.clone()).expect("captured messages decode");
    Summary {
        command_code: m.header.command_code,
        request: m.is_request(),
        error: m.header.flags.is_error(),
        application_id: m.header.application_id,
        result_code: m.result_code(),
    }
}

/// Writes the capture as a pcap file via text2pcap.
fn write_pcap(captured: &[Captured], dir: &std::path::Path) -> std::path::PathBuf {
    let mut dump = String::new();
    for c in captured {
        // text2pcap -D: 'I' (inbound) keeps the -4/-T order, router 127.0.0.1:40000 → SAE
        // 127.0.0.2:3868; 'O' (outbound) swaps it.
        let d = match c.dir {
            Dir::RouterToSae => 'I',
            Dir::SaeToRouter => 'O',
        };
        od_hexdump(d, &c.bytes, &mut dump);
    }
    let hex = dir.join("diameter.hex");
    let pcap = dir.join("diameter.pcap");
    std::fs::write(&hex, dump).expect("write hexdump");
    let mut cmd = Command::new("text2pcap");
    cmd.args(["-q", "-D", "-4", "127.0.0.1,127.0.0.2", "-T", "40000,3868"])
        .arg(&hex)
        .arg(&pcap);
    run_ok(cmd);
    pcap
}

fn parse_bool(s: &str) -> bool {
    matches!(s, "1" | "True" | "true")
}

#[test]
fn every_emitted_message_is_clean_for_tshark() {
    require_tshark();
    require_juniper_dictionary();
    let captured = every_message();
    let dir = tempfile::tempdir().unwrap();
    let pcap = write_pcap(&captured, dir.path());

    let findings = tshark_findings(&pcap, &["-o", "diameter.desegment:FALSE"], None);
    let expected: Vec<Summary> = captured.iter().map(|c| summarize(&c.bytes)).collect();
    let mut listing = String::new();
    for (i, s) in expected.iter().enumerate() {
        let _ = writeln!(listing, "frame {}: {s:?}", i + 1);
    }
    // RFC 6733 itself puts two things tshark remarks on into Failed-AVP: the offending AVP as
    // received for 5014 (section 7.1.5; here an Unsigned32 with 3 octets), and an empty payload
    // for a missing AVP whose minimum length is not fixed for 5005 (section 7.5; here the
    // DiameterIdentity Destination-Realm). Those two remarks, on those frames only, are expected.
    let unexpected: Vec<&str> = findings
        .lines()
        .filter(|line| {
            let mut f = line.splitn(2, '\t');
            let frame: usize = f.next().unwrap().parse().expect("frame number");
            let message = f.next().unwrap_or("");
            let rc = expected[frame - 1].result_code;
            let required_by_rfc = (rc == Some(result::INVALID_AVP_LENGTH)
                && message == "Bad Unsigned32 Length (3)")
                || (rc == Some(result::MISSING_AVP) && message == "Data is empty");
            !required_by_rfc
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "tshark reports problems (frame, expert message):\n{}\nframes:\n{listing}",
        unexpected.join("\n")
    );

    // A strict peer (M-bit AVPs checked against the grammar, the answer-message for E-bit
    // answers) accepts everything the SAE wrote.
    let dict = Dictionary::base();
    for (i, c) in captured.iter().enumerate() {
        if c.dir != Dir::SaeToRouter {
            continue;
        }
        let m = Message::decode(c.bytes.clone()).unwrap();
        sae_diameter::validate::check_strict(&dict, &m)
            .unwrap_or_else(|e| panic!("frame {}: {e:?}\n{m:?}", i + 1));
    }

    // tshark reads the same header and Result-Code out of every packet.
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(&pcap).args([
        "-o",
        "diameter.desegment:FALSE",
        "-T",
        "fields",
        "-E",
        "occurrence=f",
        "-e",
        "frame.number",
        "-e",
        "diameter.cmd.code",
        "-e",
        "diameter.flags.request",
        "-e",
        "diameter.flags.error",
        "-e",
        "diameter.applicationId",
        "-e",
        "diameter.Result-Code",
        "-e",
        "tcp.dstport",
    ]);
    let rows = run_ok(cmd);
    let mut directions = Vec::new();
    let seen: Vec<Summary> = rows
        .lines()
        .map(|row| {
            let f: Vec<&str> = row.split('\t').collect();
            assert_eq!(f.len(), 7, "unexpected tshark row {row:?}");
            directions.push(f[6] == "3868");
            Summary {
                command_code: f[1]
                    .parse()
                    .unwrap_or_else(|_| panic!("no Diameter in {row:?}")),
                request: parse_bool(f[2]),
                error: parse_bool(f[3]),
                application_id: f[4].parse().unwrap(),
                result_code: (!f[5].is_empty()).then(|| f[5].parse().unwrap()),
            }
        })
        .collect();
    assert_eq!(
        seen, expected,
        "tshark reads different headers/Result-Codes"
    );
    let sent_to_sae: Vec<bool> = captured.iter().map(|c| c.dir == Dir::RouterToSae).collect();
    assert_eq!(
        directions, sent_to_sae,
        "router → SAE packets go to port 3868"
    );

    // The capture really covers every message type the SAE's peer layer and JSRC code emit.
    let kinds: BTreeSet<(u32, bool, Option<u32>)> = expected
        .iter()
        .map(|s| (s.command_code, s.request, s.result_code))
        .collect();
    let wanted: &[(u32, bool, Option<u32>)] = &[
        (command::CAPABILITIES_EXCHANGE, true, None),
        (command::CAPABILITIES_EXCHANGE, false, Some(result::SUCCESS)),
        (
            command::CAPABILITIES_EXCHANGE,
            false,
            Some(result::UNKNOWN_PEER),
        ),
        (
            command::CAPABILITIES_EXCHANGE,
            false,
            Some(result::NO_COMMON_APPLICATION),
        ),
        (command::DEVICE_WATCHDOG, true, None),
        (command::DEVICE_WATCHDOG, false, Some(result::SUCCESS)),
        (command::DISCONNECT_PEER, true, None),
        (command::DISCONNECT_PEER, false, Some(result::SUCCESS)),
        (command::AA, true, None),
        (command::AA, false, Some(result::SUCCESS)),
        (command::AA, false, Some(result::APPLICATION_UNSUPPORTED)),
        (command::AA, false, Some(result::AVP_UNSUPPORTED)),
        (command::AA, false, Some(result::MISSING_AVP)),
        (command::AA, false, Some(result::INVALID_AVP_LENGTH)),
        (command::AA, false, Some(result::REDIRECT_INDICATION)),
        (command::AA, false, Some(result::TOO_BUSY)),
        (command::AA, false, Some(result::UNKNOWN_SESSION_ID)),
        (command::AA, false, Some(result::UNABLE_TO_COMPLY)),
        (
            command::ABORT_SESSION,
            false,
            Some(result::COMMAND_UNSUPPORTED),
        ),
        (command::ACCOUNTING, false, Some(result::UNKNOWN_SESSION_ID)),
        (
            command::ACCOUNTING,
            false,
            Some(result::REDIRECT_INDICATION),
        ),
        (command::ACCOUNTING, false, Some(result::TOO_BUSY)),
        (
            command::SESSION_TERMINATION,
            false,
            Some(result::REDIRECT_INDICATION),
        ),
        (command::SESSION_TERMINATION, false, Some(result::TOO_BUSY)),
        (
            command::SESSION_RESYNC,
            false,
            Some(result::REDIRECT_INDICATION),
        ),
        (command::SESSION_RESYNC, false, Some(result::TOO_BUSY)),
        (
            command::PUSH_PROFILE,
            false,
            Some(result::COMMAND_UNSUPPORTED),
        ),
        (command::AA, false, Some(result::INVALID_HDR_BITS)),
        (command::AA, false, Some(result::INVALID_AVP_BITS)),
        (
            command::CAPABILITIES_EXCHANGE,
            false,
            Some(result::ELECTION_LOST),
        ),
        (command::PUSH_PROFILE, true, None),
        (command::PUSH_PROFILE, false, Some(result::SUCCESS)),
        (command::ACCOUNTING, true, None),
        (command::ACCOUNTING, false, Some(result::SUCCESS)),
        (command::ABORT_SESSION, true, None),
        (command::ABORT_SESSION, false, Some(result::SUCCESS)),
        (command::SESSION_TERMINATION, true, None),
        (command::SESSION_TERMINATION, false, Some(result::SUCCESS)),
        (command::SESSION_RESYNC, true, None),
        (command::SESSION_RESYNC, false, Some(result::SUCCESS)),
    ];
    for w in wanted {
        assert!(kinds.contains(w), "capture lacks {w:?}");
    }
    // The 3006 redirect names the serving node in Redirect-Host, as tshark reads it.
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(&pcap).args([
        "-o",
        "diameter.desegment:FALSE",
        "-Y",
        "diameter.Result-Code == 3006",
        "-T",
        "fields",
        "-e",
        "diameter.Redirect-Host",
    ]);
    let hosts = run_ok(cmd);
    let hosts: Vec<&str> = hosts.lines().collect();
    assert_eq!(hosts.len(), 4, "AAA, ACA, STA and SRR redirects: {hosts:?}");
    assert!(
        hosts.iter().all(|h| *h == "aaa://sae-2.test.realm:3868"),
        "{hosts:?}"
    );

    let dwr_directions: BTreeSet<bool> = captured
        .iter()
        .filter(|c| {
            let s = summarize(&c.bytes);
            s.command_code == command::DEVICE_WATCHDOG && s.request
        })
        .map(|c| c.dir == Dir::RouterToSae)
        .collect();
    assert_eq!(dwr_directions.len(), 2, "DWR sent by both sides");
}

#[test]
fn juniper_avps_decode_by_name() {
    require_juniper_dictionary();
    let captured = every_message();
    let dir = tempfile::tempdir().unwrap();
    let pcap = write_pcap(&captured, dir.path());
    let mut cmd = Command::new("tshark");
    cmd.arg("-r")
        .arg(&pcap)
        .args(["-o", "diameter.desegment:FALSE", "-V"]);
    let text = run_ok(cmd);
    for needle in [
        "Command Code: Session-Resync (277)",
        "Command Code: Push-Profile (288)",
        "ApplicationId: Juniper Policy-Control-JSRC (16777244)",
        "AVP: Juniper-Policy-Install(2020)",
        "AVP: Juniper-Policy-Name(2021)",
        "AVP: Juniper-Policy-Definition(2022)",
        "AVP: Juniper-Template-Name(2023)",
        "AVP: Juniper-Substitution(2024)",
        "AVP: Juniper-Substitution-Name(2025)",
        "AVP: Juniper-Substitution-Value(2026)",
        "AVP: Juniper-Policy-Remove(2027)",
        "Juniper-Request-Type: address-authorization (1)",
        "Juniper-Request-Type: family-activation (4)",
        "AVP: Juniper-IPv6-Ndra-Prefix(2200)",
        "AVP: Juniper-Framed-IPv6-Netmask(2201)",
        "AVP: Juniper-Agent-Circuit-Id(2202)",
        "AVP: Juniper-Remote-Circuit-Id(2203)",
        "AVP: Framed-IPv6-Address(168)",
        "AVP: Juniper-Acct-Record(2053)",
        "Juniper-Acct-Collect: collect (1)",
        "Juniper-Last-Origin-Host: sae-old.test.realm",
        "Accounting-Input-Octets: 123456789",
        "AVP: Vendor-Specific-Application-Id(260)",
        "AVP: Failed-AVP(279)",
    ] {
        assert!(text.contains(needle), "tshark -V output lacks {needle:?}");
    }
    assert!(
        !text.contains("Unknown AVP"),
        "tshark found AVPs it cannot name:\n{}",
        text.lines()
            .filter(|l| l.contains("Unknown AVP"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn avp_header_length_error_answer_is_clean_for_tshark() {
    // RFC 6733 section 7.1.5: when an AVP's length is below the AVP header size, Failed-AVP
    // carries the AVP header "and a zero filled payload of the minimum required length for the
    // payload's data type" (4 octets for Origin-State-Id, an Unsigned32).
    require_tshark();
    let captured = short_avp_header_answer();
    let dir = tempfile::tempdir().unwrap();
    let pcap = write_pcap(&captured, dir.path());
    let findings = tshark_findings(&pcap, &["-o", "diameter.desegment:FALSE"], None);
    assert!(
        findings.trim().is_empty(),
        "tshark reports problems in the SAE's 5014 answer (frame, expert message):\n{findings}"
    );
}
