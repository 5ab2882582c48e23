//! Properties of the codec, the frame decoder and the responder under arbitrary input.

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;
use sae_diameter::codes::{avp, command};
use sae_diameter::{
    Address, Avp, AvpFlags, AvpType, CommandFlags, DecodeError, DiameterTime, Event, Frame,
    FrameDecoder, Header, Limits, Message, PeerState, Value,
};

use crate::support::*;

fn float32() -> impl Strategy<Value = f32> {
    any::<u32>()
        .prop_map(f32::from_bits)
        .prop_filter("finite", |f| f.is_finite())
}

fn float64() -> impl Strategy<Value = f64> {
    any::<u64>()
        .prop_map(f64::from_bits)
        .prop_filter("finite", |f| f.is_finite())
}

fn address() -> impl Strategy<Value = Address> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|o| Address::V4(Ipv4Addr::from(o))),
        any::<[u8; 16]>().prop_map(|o| Address::V6(Ipv6Addr::from(o))),
        (
            any::<u16>().prop_filter("not IPv4 or IPv6", |f| *f != 1 && *f != 2),
            vec(any::<u8>(), 0..20)
        )
            .prop_map(|(family, a)| Address::Other {
                family,
                address: Bytes::from(a),
            }),
    ]
}

/// A value of every type but Grouped.
fn leaf_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        vec(any::<u8>(), 0..40).prop_map(|v| Value::OctetString(Bytes::from(v))),
        any::<i32>().prop_map(Value::Integer32),
        any::<i64>().prop_map(Value::Integer64),
        any::<u32>().prop_map(Value::Unsigned32),
        any::<u64>().prop_map(Value::Unsigned64),
        float32().prop_map(Value::Float32),
        float64().prop_map(Value::Float64),
        address().prop_map(Value::Address),
        any::<u32>().prop_map(|t| Value::Time(DiameterTime(t))),
        ".{0,16}".prop_map(Value::Utf8String),
        "[A-Za-z0-9_-]{1,12}(\\.[A-Za-z0-9_-]{1,12}){0,3}".prop_map(Value::DiameterIdentity),
        "aaas?://[a-z0-9.-]{1,20}(:[0-9]{1,5})?(;transport=(tcp|sctp))?"
            .prop_map(Value::DiameterUri),
        any::<i32>().prop_map(Value::Enumerated),
    ]
}

/// An AVP carrying `value`, with an arbitrary code, vendor and flags.
fn avp_with(value: impl Strategy<Value = Value>) -> impl Strategy<Value = Avp> {
    (
        any::<u32>(),
        prop_oneof![Just(0u32), any::<u32>()],
        any::<u8>(),
        value,
    )
        .prop_map(|(code, vendor, flags, v)| Avp::new(code, vendor, AvpFlags::from_bits(flags), &v))
}

/// A value of any type, Grouped ones nested up to three levels.
fn value() -> impl Strategy<Value = Value> {
    leaf_value().prop_recursive(3, 24, 4, |inner| {
        vec(avp_with(inner), 0..4).prop_map(Value::Grouped)
    })
}

fn any_avp() -> impl Strategy<Value = Avp> {
    avp_with(value())
}

fn header() -> impl Strategy<Value = Header> {
    (
        any::<u8>(),
        0u32..=0x00ff_ffff,
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(
            |(flags, command_code, application_id, hop_by_hop, end_to_end)| Header {
                flags: CommandFlags::from_bits(flags),
                command_code,
                application_id,
                hop_by_hop,
                end_to_end,
            },
        )
}

fn message() -> impl Strategy<Value = Message> {
    (header(), vec(any_avp(), 0..6)).prop_map(|(header, avps)| Message { header, avps })
}

/// A header with the right version and length in front of arbitrary (four-aligned) AVP octets,
/// so that the AVP decoder sees most of the input.
fn framed_garbage() -> impl Strategy<Value = Vec<u8>> {
    (any::<[u8; 16]>(), vec(any::<[u8; 4]>(), 0..32)).prop_map(|(head, words)| {
        let len = 20 + 4 * words.len();
        let mut out = vec![1, (len >> 16) as u8, (len >> 8) as u8, len as u8];
        out.extend_from_slice(&head);
        out.extend(words.into_iter().flatten());
        out
    })
}

/// Cuts `bytes` at the given points (taken modulo the length).
fn split(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    if bytes.is_empty() {
        return vec![];
    }
    let mut points: Vec<usize> = cuts.iter().map(|c| c % bytes.len()).collect();
    points.push(0);
    points.push(bytes.len());
    points.sort_unstable();
    points.dedup();
    points
        .windows(2)
        .map(|w| bytes[w[0]..w[1]].to_vec())
        .collect()
}

/// Runs chunks through a frame decoder until it has nothing more or fails.
fn decode_stream(limits: Limits, chunks: &[Vec<u8>]) -> (Vec<Frame>, bool) {
    let mut dec = FrameDecoder::new(limits);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(_) => return (frames, true),
            }
        }
    }
    (frames, false)
}

fn feed_chunks(sae: &mut Endpoint, chunks: &[Vec<u8>]) -> Vec<Message> {
    let now = std::time::Instant::now();
    let mut out = Vec::new();
    for c in chunks {
        sae.receive(now, c);
        out.extend(sae.take_sent_messages());
    }
    out
}

/// Arbitrary octets, biased towards the lengths the fixed-size types and the address families
/// want, and towards well-framed Grouped data.
fn value_octets() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..48),
        prop::sample::select(vec![4usize, 8]).prop_flat_map(|n| vec(any::<u8>(), n)),
        (
            prop::sample::select(vec![1u16, 2, 8]),
            vec(any::<u8>(), 0..20)
        )
            .prop_map(|(family, rest)| {
                let mut v = family.to_be_bytes().to_vec();
                v.extend(rest);
                v
            }),
        vec(any_avp(), 0..3).prop_map(|avps| Value::Grouped(avps).encode().to_vec()),
    ]
}

fn open_sae() -> Endpoint {
    let mut link = Link::new(router_config(), sae_config());
    link.open();
    link.responder.sent.clear();
    link.responder
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn message_round_trips(m in message()) {
        let bytes = m.encode().unwrap();
        prop_assert_eq!(bytes.len(), m.encoded_len());
        prop_assert_eq!(bytes.len() % 4, 0);
        prop_assert_eq!(Message::decode(bytes).unwrap(), m);
    }

    #[test]
    fn value_round_trips(v in value()) {
        prop_assert_eq!(Value::decode(v.avp_type(), &v.encode()), Ok(v));
    }

    #[test]
    fn grouped_value_decodes_as_its_avps(avps in vec(any_avp(), 0..5)) {
        let code = avp::FAILED_AVP;
        let outer = Avp::mandatory(code, &Value::Grouped(avps.clone()));
        prop_assert_eq!(outer.grouped().unwrap(), avps);
    }

    #[test]
    fn message_decode_never_panics(bytes in vec(any::<u8>(), 0..256)) {
        let _ = Message::decode(Bytes::from(bytes));
    }

    #[test]
    fn strict_grammar_check_never_panics(m in message(), bytes in framed_garbage()) {
        let dict = sae_diameter::Dictionary::base();
        let _ = sae_diameter::validate::check_strict(&dict, &m);
        let _ = sae_diameter::validate::check_answer_rules(&dict, &m);
        if let Ok(m) = Message::decode(Bytes::from(bytes)) {
            let _ = sae_diameter::validate::check_strict(&dict, &m);
        }
    }

    #[test]
    fn message_decode_of_framed_garbage_never_panics(bytes in framed_garbage()) {
        if let Ok(m) = Message::decode(Bytes::from(bytes.clone())) {
            // What decodes re-encodes to the same length and decodes to the same message.
            let again = m.encode().unwrap();
            prop_assert_eq!(again.len(), bytes.len());
            prop_assert_eq!(Message::decode(again).unwrap(), m);
        }
    }

    #[test]
    fn typed_decoding_of_arbitrary_bytes_never_panics_and_round_trips(
        ty in prop::sample::select(AvpType::ALL.to_vec()),
        data in value_octets(),
    ) {
        let data = Bytes::from(data);
        let checked = Value::check(ty, &data);
        match Value::decode(ty, &data) {
            Ok(v) => {
                prop_assert_eq!(v.avp_type(), ty);
                prop_assert!(checked.is_ok(), "decode accepted what check refused");
                let again = v.encode();
                if ty == AvpType::Grouped {
                    // Padding octets are not kept: the same length, the same AVPs.
                    prop_assert_eq!(again.len(), data.len());
                    let back = Value::decode(ty, &again).unwrap();
                    prop_assert_eq!(back.encode(), again);
                } else {
                    // Byte for byte (floats included, NaN payloads too).
                    prop_assert_eq!(&again, &data);
                }
            }
            Err(_) if ty == AvpType::Grouped => {}
            Err(e) => prop_assert_eq!(checked, Err(e)),
        }
        // The typed readers never panic either.
        let a = Avp::from_raw(1, AvpFlags::mandatory(), None, data);
        let _ = (a.as_u32(), a.as_u64(), a.as_i32(), a.as_str(), a.as_address(), a.grouped());
    }

    #[test]
    fn every_time_value_maps_to_one_instant_in_era_0_or_1(t in any::<u32>()) {
        let secs = DiameterTime(t).to_unix_seconds();
        prop_assert!(
            (DiameterTime::MIN_UNIX_SECONDS..=DiameterTime::MAX_UNIX_SECONDS).contains(&secs)
        );
        // Era 0 (top bit set) ends where era 1 begins: 2036-02-07 06:28:16 UTC.
        prop_assert_eq!(t >= 0x8000_0000, secs < 2_085_978_496);
        // Back to the same Time value (times before 1970 through the wrap of the u64).
        prop_assert_eq!(DiameterTime::from_unix_seconds(secs as u64), DiameterTime(t));
        // Later values within an era are later instants.
        if let Some(next) = t.checked_add(1).filter(|n| *n != 0x8000_0000) {
            prop_assert_eq!(DiameterTime(next).to_unix_seconds(), secs + 1);
        }
    }

    #[test]
    fn fixed_size_types_reject_every_other_length(len in 0usize..16) {
        for ty in [
            AvpType::Integer32, AvpType::Integer64, AvpType::Unsigned32, AvpType::Unsigned64,
            AvpType::Float32, AvpType::Float64, AvpType::Time, AvpType::Enumerated,
        ] {
            let ok = ty.fixed_len() == Some(len);
            prop_assert_eq!(Value::decode(ty, &Bytes::from(vec![0u8; len])).is_ok(), ok);
        }
    }

    #[test]
    fn frame_decoder_never_panics_on_arbitrary_chunks(
        chunks in vec(vec(any::<u8>(), 0..64), 0..16),
        max in 20usize..512,
    ) {
        let limits = Limits { max_message_len: max, ..Limits::default() };
        let (frames, _) = decode_stream(limits, &chunks);
        for f in frames {
            if let Frame::Message(m) = f {
                prop_assert!(m.encoded_len() <= max);
                prop_assert_eq!(Message::decode(m.encode().unwrap()).unwrap(), m);
            }
        }
    }

    #[test]
    fn frame_decoder_recovers_every_message_however_the_stream_is_cut(
        msgs in vec(message(), 1..5),
        cuts in vec(any::<usize>(), 0..12),
        max in 20usize..600,
    ) {
        let encoded: Vec<Bytes> = msgs.iter().map(|m| m.encode().unwrap()).collect();
        let stream: Vec<u8> = encoded.iter().flat_map(|b| b.iter().copied()).collect();
        let limits = Limits { max_message_len: max, ..Limits::default() };
        let (frames, failed) = decode_stream(limits, &split(&stream, &cuts));
        prop_assert!(!failed);
        prop_assert_eq!(frames.len(), msgs.len());
        for ((frame, m), bytes) in frames.into_iter().zip(&msgs).zip(&encoded) {
            if bytes.len() > max {
                prop_assert_eq!(frame, Frame::Malformed {
                    header: m.header,
                    error: DecodeError::MessageTooLarge { length: bytes.len(), limit: max },
                });
            } else {
                prop_assert_eq!(frame, Frame::Message(m.clone()));
            }
        }
    }

    #[test]
    fn responder_waiting_for_cer_survives_arbitrary_bytes(
        chunks in vec(vec(any::<u8>(), 0..64), 1..8),
    ) {
        let mut sae = Endpoint::new(sae_config(), 1, false);
        sae.peer.connected(std::time::Instant::now());
        for m in feed_chunks(&mut sae, &chunks) {
            prop_assert!(!m.is_request(), "the responder only answers: {:?}", m);
        }
    }

    #[test]
    fn open_responder_survives_arbitrary_bytes(
        chunks in vec(vec(any::<u8>(), 0..64), 1..8),
    ) {
        let mut sae = open_sae();
        for m in feed_chunks(&mut sae, &chunks) {
            prop_assert!(!m.is_request(), "the responder only answers: {:?}", m);
        }
    }

    #[test]
    fn open_responder_survives_framed_garbage(frames in vec(framed_garbage(), 1..6)) {
        let mut sae = open_sae();
        for m in feed_chunks(&mut sae, &frames) {
            prop_assert!(!m.is_request());
        }
        // Each frame is well framed, so the connection survives unless one was a DPR.
        if sae.state() == PeerState::Closed {
            let events = sae.take_events();
            prop_assert!(
                matches!(events.last(), Some(Event::Closed(_))),
                "{:?}", events
            );
        }
    }

    #[test]
    fn open_responder_answers_every_request_or_hands_it_over(msgs in vec(message(), 1..6)) {
        let mut sae = open_sae();
        let now = std::time::Instant::now();
        for m in msgs {
            if sae.state() != PeerState::Open {
                break;
            }
            sae.receive(now, &m.encode().unwrap());
            let sent = sae.take_sent_messages();
            let delivered: Vec<Message> = sae
                .take_events()
                .into_iter()
                .filter_map(|e| match e { Event::Request(r) => Some(r), _ => None })
                .collect();
            if m.is_request() {
                let answered = sent.iter().filter(|a| {
                    !a.is_request()
                        && a.header.hop_by_hop == m.header.hop_by_hop
                        && a.header.end_to_end == m.header.end_to_end
                        && a.header.command_code == m.header.command_code
                }).count();
                prop_assert_eq!(
                    answered + delivered.len(), 1,
                    "request {:?} got {:?} and {:?}", m, sent, delivered
                );
                prop_assert_eq!(sent.len(), answered, "nothing but the answer is written");
                let accepted_dpr = m.header.command_code == command::DISCONNECT_PEER
                    && sent.first().is_some_and(|a| a.result_code() == Some(2001));
                if accepted_dpr {
                    prop_assert_eq!(sae.state(), PeerState::Closed);
                }
            } else {
                prop_assert!(sent.is_empty(), "answers are never answered: {:?}", sent);
                prop_assert!(delivered.is_empty());
            }
        }
    }
}
