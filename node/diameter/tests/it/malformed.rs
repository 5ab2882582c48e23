//! Hostile bytes on an open connection: the SAE answers with the RFC 6733 Result-Code and keeps
//! the connection when the framing is intact, and closes it when it is not.

use std::sync::Arc;
use std::time::Instant;

use sae_diameter::codes::{app, avp, command, juniper, result, vendor};
use sae_diameter::{
    Avp, AvpFlags, CloseReason, Dictionary, Event, Limits, Message, PeerState, Value,
};

use crate::support::raw;
use crate::support::*;

/// The SAE with an open connection to the router; the router end is dropped so the test can
/// write whatever bytes it likes.
fn open_sae(limits: Limits) -> (Instant, Endpoint) {
    open_sae_with(limits, dictionary())
}

/// The same, the SAE using `dictionary`.
fn open_sae_with(limits: Limits, dictionary: Arc<Dictionary>) -> (Instant, Endpoint) {
    let mut sae = sae_config();
    sae.limits = limits;
    sae.dictionary = dictionary;
    let mut link = Link::new(router_config(), sae);
    link.open();
    link.responder.sent.clear();
    (link.now(), link.responder)
}

/// The built-in dictionary with an operator's file merged over it.
fn site_dictionary(toml: &str) -> Arc<Dictionary> {
    let mut d = Dictionary::base();
    d.load_str(toml).expect("the site dictionary loads");
    Arc::new(d)
}

/// The answer carries an Error-Message (without the M bit) that says each of `words`.
fn assert_error_message(answer: &Message, words: &[&str]) {
    let em = answer
        .find(avp::ERROR_MESSAGE, 0)
        .expect("the answer carries Error-Message");
    assert!(
        !em.flags().is_mandatory(),
        "Error-Message never has the M bit"
    );
    let text = answer.error_message().expect("Error-Message is UTF-8");
    for w in words {
        assert!(
            text.contains(w),
            "Error-Message {text:?} does not say {w:?}"
        );
    }
}

/// Feeds `bytes` and returns what the SAE wrote back.
fn feed(sae: &mut Endpoint, now: Instant, bytes: &[u8]) -> Vec<Message> {
    sae.receive(now, bytes);
    sae.take_sent_messages()
}

/// The single answer written, checked against the request's Hop-by-Hop identifier.
fn one_answer(sent: &[Message], hop_by_hop: u32) -> &Message {
    let [answer] = sent else {
        panic!("expected one answer, got {sent:?}");
    };
    assert!(!answer.is_request());
    assert_eq!(answer.header.hop_by_hop, hop_by_hop);
    assert_eq!(answer.origin_host(), Some(SAE_HOST));
    answer
}

/// The connection still works: a DWR gets its DWA.
fn assert_still_open(sae: &mut Endpoint, now: Instant) {
    assert_eq!(sae.state(), PeerState::Open);
    let sent = feed(sae, now, &raw::dwr(0x7777));
    let dwa = one_answer(&sent, 0x7777);
    assert_eq!(dwa.header.command_code, command::DEVICE_WATCHDOG);
    assert_eq!(dwa.result_code(), Some(result::SUCCESS));
    assert!(
        !sae.take_events()
            .iter()
            .any(|e| matches!(e, Event::Closed(_)))
    );
}

fn assert_closed_for_protocol_violation(sae: &mut Endpoint) {
    assert_eq!(sae.state(), PeerState::Closed);
    let events = sae.take_events();
    assert!(
        matches!(
            events.last(),
            Some(Event::Closed(CloseReason::ProtocolViolation(_)))
        ),
        "{events:?}"
    );
}

fn dwr_with(hop_by_hop: u32, extra: &[u8]) -> Vec<u8> {
    let mut body = raw::origin_avps();
    body.extend_from_slice(extra);
    raw::message(
        1,
        0x80,
        command::DEVICE_WATCHDOG,
        0,
        hop_by_hop,
        &body,
        None,
    )
}

#[test]
fn partial_frame_waits_for_the_rest() {
    let (now, mut sae) = open_sae(Limits::default());
    let dwr = raw::dwr(0x10);
    assert!(feed(&mut sae, now, &dwr[..12]).is_empty(), "partial header");
    assert!(feed(&mut sae, now, &dwr[12..24]).is_empty(), "partial body");
    assert_eq!(sae.buffered(), 24);
    assert_eq!(sae.take_events(), vec![]);
    let sent = feed(&mut sae, now, &dwr[24..]);
    assert_eq!(one_answer(&sent, 0x10).result_code(), Some(result::SUCCESS));
    assert_eq!(sae.buffered(), 0);
}

#[test]
fn unsupported_version_is_answered_5011_then_closed() {
    let (now, mut sae) = open_sae(Limits::default());
    let mut dwr = raw::dwr(0x11);
    dwr[0] = 2;
    let sent = feed(&mut sae, now, &dwr);
    let answer = one_answer(&sent, 0x11);
    assert_eq!(answer.result_code(), Some(result::UNSUPPORTED_VERSION));
    assert_eq!(answer.header.command_code, command::DEVICE_WATCHDOG);
    assert_error_message(answer, &["unsupported protocol version 2"]);
    assert_closed_for_protocol_violation(&mut sae);
}

#[test]
fn message_length_not_a_multiple_of_four_is_5015_and_the_stream_continues() {
    let (now, mut sae) = open_sae(Limits::default());
    let mut body = raw::origin_avps();
    body.extend_from_slice(&[0, 0]);
    let bytes = raw::message(1, 0x80, command::DEVICE_WATCHDOG, 0, 0x12, &body, None);
    assert_eq!(bytes.len() % 4, 2);
    let sent = feed(&mut sae, now, &bytes);
    let answer = one_answer(&sent, 0x12);
    assert_eq!(answer.result_code(), Some(result::INVALID_MESSAGE_LENGTH));
    assert_error_message(
        answer,
        &["invalid message length", &bytes.len().to_string()],
    );
    assert_still_open(&mut sae, now);
}

#[test]
fn length_below_the_header_closes_without_an_answer() {
    let (now, mut sae) = open_sae(Limits::default());
    let sent = feed(&mut sae, now, &[1, 0, 0, 8, 0x80, 0, 1, 24]);
    assert!(sent.is_empty());
    assert_closed_for_protocol_violation(&mut sae);
}

#[test]
fn length_below_the_header_with_a_whole_header_is_answered_5015_then_closed() {
    let (now, mut sae) = open_sae(Limits::default());
    let bytes = raw::message(1, 0x80, command::DEVICE_WATCHDOG, 0, 0x13, &[], Some(12));
    let sent = feed(&mut sae, now, &bytes);
    let answer = one_answer(&sent, 0x13);
    assert_eq!(answer.result_code(), Some(result::INVALID_MESSAGE_LENGTH));
    assert_error_message(answer, &["invalid message length 12"]);
    assert_closed_for_protocol_violation(&mut sae);
}

#[test]
fn avp_length_past_the_end_of_the_message_is_5014_with_failed_avp() {
    let (now, mut sae) = open_sae(Limits::default());
    let overrun = raw::avp(
        avp::ORIGIN_STATE_ID,
        AvpFlags::MANDATORY,
        None,
        &[0, 0, 0, 1],
        Some(200),
        true,
    );
    let sent = feed(&mut sae, now, &dwr_with(0x14, &overrun));
    let answer = one_answer(&sent, 0x14);
    assert_eq!(answer.result_code(), Some(result::INVALID_AVP_LENGTH));
    assert_error_message(answer, &["AVP 278", "invalid length 200"]);
    let failed = failed_avps(answer);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].code(), avp::ORIGIN_STATE_ID);
    assert!(failed[0].flags().is_mandatory());
    assert_still_open(&mut sae, now);
}

#[test]
fn last_avp_without_padding_is_5015() {
    let (now, mut sae) = open_sae(Limits::default());
    let unpadded = raw::avp(avp::USER_NAME, AvpFlags::MANDATORY, None, b"a", None, false);
    let sent = feed(&mut sae, now, &dwr_with(0x15, &unpadded));
    let answer = one_answer(&sent, 0x15);
    assert_eq!(answer.result_code(), Some(result::INVALID_MESSAGE_LENGTH));
    assert_error_message(answer, &["invalid message length"]);
    assert_still_open(&mut sae, now);
}

#[test]
fn avp_without_padding_followed_by_another_is_5014() {
    let (now, mut sae) = open_sae(Limits::default());
    // 9 + 11 octets: the message length is a multiple of four, but the second AVP starts
    // where the first one's padding should be.
    let mut extra = raw::avp(avp::USER_NAME, AvpFlags::MANDATORY, None, b"a", None, false);
    extra.extend(raw::avp(
        avp::USER_NAME,
        AvpFlags::MANDATORY,
        None,
        &[0, 0, 0],
        None,
        false,
    ));
    assert_eq!(extra.len(), 20);
    let sent = feed(&mut sae, now, &dwr_with(0x16, &extra));
    let answer = one_answer(&sent, 0x16);
    assert_eq!(answer.result_code(), Some(result::INVALID_AVP_LENGTH));
    assert_error_message(answer, &["has invalid length"]);
    assert_eq!(failed_avps(answer).len(), 1);
    assert_still_open(&mut sae, now);
}

#[test]
fn truncated_avp_header_at_the_end_is_5015() {
    let (now, mut sae) = open_sae(Limits::default());
    let sent = feed(&mut sae, now, &dwr_with(0x17, &[0, 0, 1, 22]));
    let answer = one_answer(&sent, 0x17);
    assert_eq!(answer.result_code(), Some(result::INVALID_MESSAGE_LENGTH));
    assert_error_message(answer, &["truncated AVP header"]);
    assert_still_open(&mut sae, now);
}

#[test]
fn unknown_mandatory_avp_is_5001() {
    let (now, mut sae) = open_sae(Limits::default());
    let odd = raw::avp(
        99_999,
        AvpFlags::MANDATORY,
        Some(vendor::JUNIPER),
        b"xyz",
        None,
        true,
    );
    let sent = feed(&mut sae, now, &dwr_with(0x18, &odd));
    let answer = one_answer(&sent, 0x18);
    assert_eq!(answer.result_code(), Some(result::AVP_UNSUPPORTED));
    assert_error_message(answer, &["AVP 99999 (vendor 2636) is not supported"]);
    let failed = failed_avps(answer);
    assert_eq!(failed[0].code(), 99_999);
    assert_eq!(failed[0].vendor_id(), Some(vendor::JUNIPER));
    assert_eq!(&failed[0].data()[..], b"xyz");
    assert_still_open(&mut sae, now);
}

#[test]
fn unsigned32_with_three_octets_is_5014() {
    let (now, mut sae) = open_sae(Limits::default());
    let short = raw::mandatory(avp::ORIGIN_STATE_ID, &[0, 0, 1]);
    let sent = feed(&mut sae, now, &dwr_with(0x19, &short));
    let answer = one_answer(&sent, 0x19);
    assert_eq!(answer.result_code(), Some(result::INVALID_AVP_LENGTH));
    assert_error_message(answer, &["Origin-State-Id", "length 3", "needs 4"]);
    let failed = failed_avps(answer);
    assert_eq!(failed[0].code(), avp::ORIGIN_STATE_ID);
    assert_eq!(&failed[0].data()[..], &[0, 0, 1]);
    assert_still_open(&mut sae, now);
}

fn policy_name() -> Avp {
    Avp::vendor_mandatory(
        juniper::POLICY_NAME,
        vendor::JUNIPER,
        &Value::OctetString(bytes::Bytes::from_static(b"gold")),
    )
}

/// `depth` Juniper-Policy-Install AVPs nested in one another, each with the Juniper-Policy-Name
/// its rules require (the next level is an AVP its `*[AVP]` lets in).
fn nested_groups(depth: usize) -> Vec<u8> {
    let mut inner = policy_name();
    for level in 0..depth {
        let mut content = vec![inner];
        if level > 0 {
            content.insert(0, policy_name());
        }
        inner = Avp::vendor_mandatory(
            juniper::POLICY_INSTALL,
            vendor::JUNIPER,
            &Value::Grouped(content),
        );
    }
    let mut buf = bytes::BytesMut::new();
    inner.encode_to(&mut buf);
    buf.to_vec()
}

#[test]
fn grouped_nesting_up_to_the_limit_is_accepted_and_deeper_is_5004() {
    let limits = Limits {
        max_grouped_depth: 3,
        ..Limits::default()
    };
    let (now, mut sae) = open_sae(limits);
    let sent = feed(&mut sae, now, &dwr_with(0x1a, &nested_groups(3)));
    assert_eq!(
        one_answer(&sent, 0x1a).result_code(),
        Some(result::SUCCESS),
        "three levels of Grouped AVPs are within a limit of 3"
    );
    let sent = feed(&mut sae, now, &dwr_with(0x1b, &nested_groups(4)));
    let answer = one_answer(&sent, 0x1b);
    assert_eq!(answer.result_code(), Some(result::INVALID_AVP_VALUE));
    assert_error_message(answer, &["nested deeper than 3"]);
    assert_eq!(failed_avps(answer)[0].code(), juniper::POLICY_INSTALL);
    assert_still_open(&mut sae, now);
}

#[test]
fn default_limit_rejects_deep_nesting() {
    let (now, mut sae) = open_sae(Limits::default());
    let depth = Limits::default().max_grouped_depth;
    let sent = feed(&mut sae, now, &dwr_with(0x1c, &nested_groups(depth)));
    assert_eq!(one_answer(&sent, 0x1c).result_code(), Some(result::SUCCESS));
    let sent = feed(&mut sae, now, &dwr_with(0x1d, &nested_groups(depth + 1)));
    assert_eq!(
        one_answer(&sent, 0x1d).result_code(),
        Some(result::INVALID_AVP_VALUE)
    );
}

fn oversized_dwr(hop_by_hop: u32, limit: usize) -> Vec<u8> {
    // Not mandatory and unknown: only its size is wrong.
    let filler = raw::avp(99_998, 0, None, &vec![0xab; limit], None, true);
    dwr_with(hop_by_hop, &filler)
}

#[test]
fn oversized_message_received_whole_is_5015_and_the_next_one_decodes() {
    let limits = Limits {
        max_message_len: 4096,
        ..Limits::default()
    };
    let (now, mut sae) = open_sae(limits);
    let mut stream = oversized_dwr(0x1e, 4096);
    assert!(stream.len() > 4096);
    stream.extend(raw::dwr(0x1f));
    let sent = feed(&mut sae, now, &stream);
    let [too_big, dwa] = &sent[..] else {
        panic!("two answers expected: {sent:?}");
    };
    assert_eq!(too_big.header.hop_by_hop, 0x1e);
    assert_eq!(too_big.result_code(), Some(result::INVALID_MESSAGE_LENGTH));
    assert_error_message(too_big, &["exceeds the limit of 4096"]);
    assert_eq!(dwa.header.hop_by_hop, 0x1f);
    assert_eq!(dwa.result_code(), Some(result::SUCCESS));
    assert_still_open(&mut sae, now);
}

#[test]
fn oversized_message_arriving_in_pieces_is_skipped_without_buffering() {
    let limits = Limits {
        max_message_len: 4096,
        ..Limits::default()
    };
    let (now, mut sae) = open_sae(limits);
    let mut stream = oversized_dwr(0x20, 64 * 1024);
    stream.extend(raw::dwr(0x21));
    let mut answers = Vec::new();
    for chunk in stream.chunks(1000) {
        answers.extend(feed(&mut sae, now, chunk));
        assert!(sae.buffered() <= 1000, "the oversized message is not kept");
    }
    let [too_big, dwa] = &answers[..] else {
        panic!("two answers expected: {answers:?}");
    };
    assert_eq!(too_big.header.hop_by_hop, 0x20);
    assert_eq!(too_big.result_code(), Some(result::INVALID_MESSAGE_LENGTH));
    assert_eq!(dwa.header.hop_by_hop, 0x21);
    assert_eq!(dwa.result_code(), Some(result::SUCCESS));
    assert_still_open(&mut sae, now);
}

#[test]
fn error_bit_on_a_request_is_3008() {
    let (now, mut sae) = open_sae(Limits::default());
    let bytes = raw::message(
        1,
        0x80 | 0x20,
        command::DEVICE_WATCHDOG,
        0,
        0x22,
        &raw::origin_avps(),
        None,
    );
    let sent = feed(&mut sae, now, &bytes);
    let answer = one_answer(&sent, 0x22);
    assert_eq!(answer.result_code(), Some(result::INVALID_HDR_BITS));
    assert!(answer.header.flags.is_error());
    assert_error_message(answer, &["E bit"]);
    assert_still_open(&mut sae, now);
}

#[test]
fn malformed_answer_to_nothing_is_ignored() {
    let (now, mut sae) = open_sae(Limits::default());
    let overrun = raw::avp(
        avp::RESULT_CODE,
        AvpFlags::MANDATORY,
        None,
        &[0; 4],
        Some(99),
        true,
    );
    let mut body = raw::origin_avps();
    body.extend(overrun);
    let bytes = raw::message(1, 0, command::DEVICE_WATCHDOG, 0, 0x23, &body, None);
    assert!(feed(&mut sae, now, &bytes).is_empty());
    assert_still_open(&mut sae, now);
}

#[test]
fn request_with_a_command_outside_the_application_is_3001() {
    let (now, mut sae) = open_sae(Limits::default());
    let bytes = raw::message(1, 0x80, command::AA, 0, 0x24, &raw::origin_avps(), None);
    let sent = feed(&mut sae, now, &bytes);
    let answer = one_answer(&sent, 0x24);
    assert_eq!(answer.result_code(), Some(result::COMMAND_UNSUPPORTED));
    assert!(answer.header.flags.is_error());
    assert_error_message(answer, &["command 265", "Diameter Common Messages"]);
    assert_still_open(&mut sae, now);
}

#[test]
fn a_single_write_carrying_several_requests_is_answered_in_order() {
    let (now, mut sae) = open_sae(Limits::default());
    let mut stream = Vec::new();
    for hbh in 0x30..0x35 {
        stream.extend(raw::dwr(hbh));
    }
    let sent = feed(&mut sae, now, &stream);
    let hbhs: Vec<u32> = sent.iter().map(|m| m.header.hop_by_hop).collect();
    assert_eq!(hbhs, (0x30..0x35).collect::<Vec<_>>());
}

#[test]
fn proxiable_bit_on_a_dwr_is_3008() {
    let (now, mut sae) = open_sae(Limits::default());
    let bytes = raw::message(
        1,
        0x80 | 0x40,
        command::DEVICE_WATCHDOG,
        0,
        0x40,
        &raw::origin_avps(),
        None,
    );
    let sent = feed(&mut sae, now, &bytes);
    let answer = one_answer(&sent, 0x40);
    assert_eq!(answer.result_code(), Some(result::INVALID_HDR_BITS));
    assert!(answer.header.flags.is_error());
    assert!(
        answer.header.flags.is_proxiable(),
        "the answer keeps the request's P bit"
    );
    assert_error_message(answer, &["P bit set in DWR", "not proxiable"]);
    assert!(answer.find(avp::FAILED_AVP, 0).is_none());
    assert_still_open(&mut sae, now);
}

#[test]
fn aar_without_the_proxiable_bit_is_3008() {
    let (now, mut sae) = open_sae(Limits::default());
    let mut aar = aar("mx1;1;1", "kim");
    aar.header.flags = aar
        .header
        .flags
        .with(sae_diameter::CommandFlags::PROXIABLE, false);
    aar.header.hop_by_hop = 0x41;
    let sent = feed(&mut sae, now, &aar.encode().unwrap());
    let answer = one_answer(&sent, 0x41);
    assert_eq!(answer.result_code(), Some(result::INVALID_HDR_BITS));
    assert_eq!(answer.session_id(), Some("mx1;1;1"));
    assert_error_message(answer, &["P bit clear in AAR"]);
    assert!(
        sae.take_events().is_empty(),
        "not handed to the application"
    );
    assert_still_open(&mut sae, now);
}

#[test]
fn m_bit_on_a_must_not_avp_is_3009() {
    let (now, mut sae) = open_sae(Limits::default());
    let error_message = raw::mandatory(avp::ERROR_MESSAGE, b"hello");
    let sent = feed(&mut sae, now, &dwr_with(0x42, &error_message));
    let answer = one_answer(&sent, 0x42);
    assert_eq!(answer.result_code(), Some(result::INVALID_AVP_BITS));
    assert!(answer.header.flags.is_error(), "3009 is a protocol error");
    let failed = failed_avps(answer);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].code(), avp::ERROR_MESSAGE);
    assert!(failed[0].flags().is_mandatory());
    assert_eq!(&failed[0].data()[..], b"hello");
    assert_error_message(answer, &["Error-Message must not have the M bit"]);
    assert_still_open(&mut sae, now);
}

#[test]
fn an_avp_occurring_too_often_is_5009() {
    let (now, mut sae) = open_sae(Limits::default());
    let again = raw::mandatory(avp::ORIGIN_HOST, b"again.example.net");
    let sent = feed(&mut sae, now, &dwr_with(0x43, &again));
    let answer = one_answer(&sent, 0x43);
    assert_eq!(
        answer.result_code(),
        Some(result::AVP_OCCURS_TOO_MANY_TIMES)
    );
    assert!(!answer.header.flags.is_error());
    let failed = failed_avps(answer);
    assert_eq!(failed[0].code(), avp::ORIGIN_HOST);
    assert_eq!(
        &failed[0].data()[..],
        b"again.example.net",
        "the one too many"
    );
    assert_error_message(answer, &["Origin-Host occurs 2 times", "at most 1"]);
    assert_still_open(&mut sae, now);
}

/// An operator's file that forbids Origin-State-Id in DWR.
const NO_STATE_IN_DWR: &str = r#"
[[command]]
code = 280
name = "Device-Watchdog"
request_name = "DWR"
answer_name = "DWA"
request = ["{Origin-Host}", "{Origin-Realm}", "*0[Origin-State-Id]", "*[AVP]"]
answer = ["{Result-Code}", "{Origin-Host}", "{Origin-Realm}", "[Error-Message]", "[Failed-AVP]",
  "[Origin-State-Id]", "*[AVP]"]
"#;

#[test]
fn an_avp_the_operator_forbids_is_5008() {
    let (now, mut sae) = open_sae_with(Limits::default(), site_dictionary(NO_STATE_IN_DWR));
    // Allowed by the built-in dictionary, forbidden by the operator's.
    let state = raw::mandatory(avp::ORIGIN_STATE_ID, &[0, 0, 0, 9]);
    let sent = feed(&mut sae, now, &dwr_with(0x44, &state));
    let answer = one_answer(&sent, 0x44);
    assert_eq!(answer.result_code(), Some(result::AVP_NOT_ALLOWED));
    assert!(!answer.header.flags.is_error());
    let failed = failed_avps(answer);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].code(), avp::ORIGIN_STATE_ID);
    assert_eq!(failed[0].as_u32(), Ok(9));
    assert_error_message(answer, &["Origin-State-Id is not allowed"]);
    assert_still_open(&mut sae, now);

    let (now, mut plain) = open_sae(Limits::default());
    let sent = feed(&mut plain, now, &dwr_with(0x45, &state));
    assert_eq!(one_answer(&sent, 0x45).result_code(), Some(result::SUCCESS));
}

#[test]
fn a_bad_avp_header_inside_a_grouped_avp_is_5014_with_the_group_around_it() {
    let (now, mut sae) = open_sae(Limits::default());
    // A Juniper-Policy-Install whose Juniper-Policy-Name claims 200 octets.
    let inner = raw::avp(
        juniper::POLICY_NAME,
        AvpFlags::MANDATORY,
        Some(vendor::JUNIPER),
        b"gold",
        Some(200),
        true,
    );
    let group = raw::avp(
        juniper::POLICY_INSTALL,
        AvpFlags::MANDATORY,
        Some(vendor::JUNIPER),
        &inner,
        None,
        true,
    );
    let sent = feed(&mut sae, now, &dwr_with(0x46, &group));
    let answer = one_answer(&sent, 0x46);
    assert_eq!(answer.result_code(), Some(result::INVALID_AVP_LENGTH));
    let failed = failed_avps(answer);
    assert_eq!(failed.len(), 1);
    assert!(failed[0].is(juniper::POLICY_INSTALL, vendor::JUNIPER));
    let inside = failed[0]
        .grouped()
        .expect("the group holds the offending header");
    assert_eq!(inside.len(), 1);
    assert!(inside[0].is(juniper::POLICY_NAME, vendor::JUNIPER));
    assert!(inside[0].flags().is_mandatory());
    assert!(
        inside[0].data().is_empty(),
        "OctetString: zero-length payload"
    );
    assert_error_message(
        answer,
        &["in Juniper-Policy-Install", "AVP 2021", "length 200"],
    );
    assert_still_open(&mut sae, now);
}

#[test]
fn a_grouped_avp_missing_a_required_child_is_5005() {
    let (now, mut sae) = open_sae(Limits::default());
    // Proxy-Info (RFC 6733: {Proxy-Host} {Proxy-State}) with its Proxy-Host only.
    let host = raw::avp(280, AvpFlags::MANDATORY, None, b"relay.example", None, true);
    let proxy_info = raw::avp(284, AvpFlags::MANDATORY, None, &host, None, true);
    let sent = feed(&mut sae, now, &dwr_with(0x47, &proxy_info));
    let answer = one_answer(&sent, 0x47);
    assert_eq!(answer.result_code(), Some(result::MISSING_AVP));
    let failed = failed_avps(answer);
    assert!(failed[0].is(284, 0));
    let example = failed[0].grouped().unwrap();
    assert_eq!(example.len(), 1);
    assert!(example[0].is(33, 0), "a Proxy-State example");
    assert_error_message(answer, &["in Proxy-Info: missing Proxy-State"]);
    assert_still_open(&mut sae, now);
}

#[test]
fn an_enumerated_value_the_dictionary_does_not_list_is_5004() {
    let (now, mut sae) = open_sae(Limits::default());
    // DPR with Disconnect-Cause 7: answered, and the connection stays.
    let mut body = raw::origin_avps();
    body.extend(raw::mandatory(avp::DISCONNECT_CAUSE, &[0, 0, 0, 7]));
    let bytes = raw::message(1, 0x80, command::DISCONNECT_PEER, 0, 0x48, &body, None);
    let sent = feed(&mut sae, now, &bytes);
    let answer = one_answer(&sent, 0x48);
    assert_eq!(answer.result_code(), Some(result::INVALID_AVP_VALUE));
    let failed = failed_avps(answer);
    assert_eq!(failed[0].code(), avp::DISCONNECT_CAUSE);
    assert_eq!(failed[0].as_i32(), Ok(7));
    assert_error_message(answer, &["Disconnect-Cause: 7 is not a defined value"]);
    assert_still_open(&mut sae, now);
}

#[test]
fn session_id_after_another_avp_is_5005_naming_it() {
    let (now, mut sae) = open_sae(Limits::default());
    let mut aar = aar("mx1;1;2", "kim");
    aar.avps.swap(0, 1);
    aar.header.hop_by_hop = 0x49;
    assert_eq!(aar.header.application_id, app::JSRC);
    let sent = feed(&mut sae, now, &aar.encode().unwrap());
    let answer = one_answer(&sent, 0x49);
    assert_eq!(answer.result_code(), Some(result::MISSING_AVP));
    let failed = failed_avps(answer);
    assert_eq!(failed[0].code(), avp::SESSION_ID);
    assert_eq!(failed[0].as_str(), Ok("mx1;1;2"));
    assert_error_message(answer, &["Session-Id must be AVP number 1 but is number 2"]);
    assert!(sae.take_events().is_empty());
    assert_still_open(&mut sae, now);
}

#[test]
fn an_application_error_answer_carries_what_its_command_requires() {
    let (now, mut sae) = open_sae(Limits::default());
    let mut request = aar("mx1;1;77", "lea");
    request.push(Avp::vendor_mandatory(
        99_999,
        vendor::JUNIPER,
        &Value::Unsigned32(1),
    ));
    request.header.hop_by_hop = 0x77;
    request.header.end_to_end = 0x77;
    let sent = feed(&mut sae, now, &request.encode().unwrap());
    let answer = one_answer(&sent, 0x77);
    assert_eq!(answer.result_code(), Some(result::AVP_UNSUPPORTED));
    assert!(
        !answer.header.flags.is_error(),
        "5001 is not a protocol error"
    );
    // An AAA still: Session-Id first, the Auth-Application-Id the AAA rules require.
    assert_eq!(answer.avps[0].code(), avp::SESSION_ID);
    assert_eq!(answer.session_id(), Some("mx1;1;77"));
    assert_eq!(
        answer
            .find(avp::AUTH_APPLICATION_ID, 0)
            .and_then(|a| a.as_u32().ok()),
        Some(app::JSRC)
    );
    sae_diameter::validate::check_answer_rules(&dictionary(), answer)
        .expect("the error answer meets the AAA's rules");

    // A protocol error (3xxx, E bit) keeps the generic answer-message format.
    let mut request = aar("mx1;1;78", "max");
    request.header.flags = request
        .header
        .flags
        .with(sae_diameter::CommandFlags::ERROR, true);
    request.header.hop_by_hop = 0x78;
    let sent = feed(&mut sae, now, &request.encode().unwrap());
    let answer = one_answer(&sent, 0x78);
    assert_eq!(answer.result_code(), Some(result::INVALID_HDR_BITS));
    assert!(answer.find(avp::AUTH_APPLICATION_ID, 0).is_none());
}
