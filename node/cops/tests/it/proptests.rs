//! Properties: every generated message survives encode → decode unchanged (also through the
//! frame decoder in arbitrary chunks, and signed), and no byte string makes a decoder panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use sae_cops::integrity::KeyTable;
use sae_cops::object::split_objects;
use sae_cops::*;

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn handle() -> impl Strategy<Value = Handle> {
    vec(any::<u8>(), 1..12).prop_map(|v| Handle(Bytes::from(v)))
}

fn context() -> impl Strategy<Value = Context> {
    (any::<u16>(), any::<u16>()).prop_map(|(r, m)| Context {
        r_type: RType(r),
        m_type: m,
    })
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        any::<u128>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
    ]
}

fn interface() -> impl Strategy<Value = Interface> {
    (ip(), any::<u32>()).prop_map(|(address, if_index)| Interface { address, if_index })
}

fn pdp() -> impl Strategy<Value = PdpAddress> {
    (ip(), any::<u16>()).prop_map(|(address, port)| PdpAddress { address, port })
}

fn client_si() -> impl Strategy<Value = ClientSi> {
    prop_oneof![
        bytes(40).prop_map(ClientSi::Signaled),
        bytes(40).prop_map(ClientSi::Named)
    ]
}

fn flags() -> impl Strategy<Value = DecisionFlags> {
    (
        prop_oneof![
            Just(Command::Null),
            Just(Command::Install),
            Just(Command::Remove)
        ],
        any::<u16>(),
    )
        .prop_map(|(command, flags)| DecisionFlags { command, flags })
}

type Data = (Option<Bytes>, Option<Bytes>, Option<Bytes>, Option<Bytes>);

fn data() -> impl Strategy<Value = Data> {
    (
        option::of(bytes(20)),
        option::of(bytes(20)),
        option::of(bytes(20)),
        option::of(bytes(20)),
    )
}

fn decision() -> impl Strategy<Value = Decision> {
    (context(), flags(), data()).prop_map(|(context, flags, (s, r, c, n))| Decision {
        context,
        flags,
        stateless: s,
        replacement: r,
        client_specific: c,
        named: n,
    })
}

fn lpdp() -> impl Strategy<Value = LpdpDecision> {
    (option::of(context()), flags(), data()).prop_map(|(context, flags, (s, r, c, n))| {
        LpdpDecision {
            context,
            flags,
            stateless: s,
            replacement: r,
            client_specific: c,
            named: n,
        }
    })
}

fn error_object() -> impl Strategy<Value = ErrorObject> {
    (any::<u16>(), any::<u16>()).prop_map(|(c, s)| ErrorObject {
        code: c.into(),
        sub_code: s,
    })
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        (
            handle(),
            context(),
            option::of(interface()),
            option::of(interface()),
            vec(client_si(), 0..3),
            vec(lpdp(), 0..3)
        )
            .prop_map(|(handle, context, i, o, client_si, lpdp_decisions)| {
                Body::Request(Request {
                    handle,
                    context,
                    in_interface: i,
                    out_interface: o,
                    client_si,
                    lpdp_decisions,
                })
            }),
        (
            handle(),
            prop_oneof![
                vec(decision(), 1..4).prop_map(DecisionContent::Decisions),
                error_object().prop_map(DecisionContent::Error)
            ]
        )
            .prop_map(|(handle, content)| Body::Decision(DecisionMessage { handle, content })),
        (handle(), any::<u16>(), option::of(client_si())).prop_map(|(handle, t, client_si)| {
            Body::Report(Report {
                handle,
                report_type: t.into(),
                client_si,
            })
        }),
        (handle(), any::<u16>(), any::<u16>()).prop_map(|(handle, c, s)| {
            Body::DeleteRequest(DeleteRequest {
                handle,
                reason: Reason {
                    code: c.into(),
                    sub_code: s,
                },
            })
        }),
        option::of(handle()).prop_map(Body::SyncStateRequest),
        option::of(handle()).prop_map(Body::SyncComplete),
        (
            "[ -~&&[^\0]]{1,30}",
            option::of(client_si()),
            option::of(pdp())
        )
            .prop_map(
                |(pep_id, client_si, last_pdp_addr)| Body::ClientOpen(ClientOpen {
                    pep_id,
                    client_si,
                    last_pdp_addr
                })
            ),
        (any::<u16>(), option::of(any::<u16>())).prop_map(|(ka_timer, acct_timer)| {
            Body::ClientAccept(ClientAccept {
                ka_timer,
                acct_timer,
            })
        }),
        (error_object(), option::of(pdp()))
            .prop_map(|(error, redirect)| Body::ClientClose(ClientClose { error, redirect })),
        Just(Body::KeepAlive),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    (
        any::<u16>(),
        any::<bool>(),
        body(),
        option::of((any::<u32>(), any::<u32>(), bytes(20))),
    )
        .prop_map(|(client_type, solicited, body, integrity)| Message {
            client_type,
            solicited,
            body,
            integrity: integrity.map(|(key_id, sequence, digest)| Integrity {
                key_id,
                sequence,
                digest,
            }),
        })
}

proptest! {
    #[test]
    fn encode_then_decode_is_identity(m in message()) {
        let b = m.encode().unwrap();
        prop_assert_eq!(b.len(), m.encoded_len());
        prop_assert_eq!(b.len() % 4, 0);
        prop_assert_eq!(Message::decode(b).unwrap(), m);
    }

    #[test]
    fn frame_decoder_reassembles_chunks(ms in vec(message(), 1..5), cut in vec(1usize..40, 1..20)) {
        let mut wire = BytesMut::new();
        for m in &ms {
            m.encode_to(&mut wire).unwrap();
        }
        let mut dec = FrameDecoder::default();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut pos = 0;
        let mut i = 0;
        while pos < wire.len() {
            let n = cut[i % cut.len()].min(wire.len() - pos);
            i += 1;
            buf.extend_from_slice(&wire[pos..pos + n]);
            pos += n;
            while let Some(f) = dec.decode(&mut buf).unwrap() {
                match f {
                    Frame::Message(m) => got.push(m),
                    Frame::Malformed { error, .. } => prop_assert!(false, "{}", error),
                }
            }
        }
        prop_assert_eq!(got, ms);
    }

    #[test]
    fn signed_messages_verify(ms in vec(message(), 1..4), start in any::<u32>()) {
        let keys = KeyTable::new().with(5, &b"proptest key"[..]);
        let mut s = Signer::new(keys.clone(), 5, start).unwrap();
        let mut v = Verifier::new(keys, true);
        for mut m in ms {
            let b = s.sign(&mut m).unwrap();
            prop_assert_eq!(v.decode(b).unwrap(), m);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in vec(any::<u8>(), 0..300)) {
        let b = Bytes::from(data);
        if let Err(e) = Message::decode(b.clone()) {
            let _ = e.error_object();
            let _ = e.reason();
        }
        for o in split_objects(&b, 0).flatten() {
            let _ = Object::decode(o.1);
        }
        let _ = frame_status(&b);
        let mut v = Verifier::new(KeyTable::new().with(0, &b"k"[..]), false);
        let _ = v.decode(b.clone());
    }

    #[test]
    fn arbitrary_bodies_behind_a_valid_header_never_panic(
        op in 0u8..12, flags in 0u8..2, words in vec(any::<u32>(), 0..40)
    ) {
        // A plausible header makes the object and grammar code run on hostile objects.
        let mut wire = BytesMut::new();
        wire.extend_from_slice(&[0x10 | flags, op, 0, 1]);
        wire.extend_from_slice(&((8 + 4 * words.len()) as u32).to_be_bytes());
        for w in &words {
            // Keep object lengths small so more objects are seen.
            wire.extend_from_slice(&(w & 0x003f_ffff | 0x0004_0000).to_be_bytes());
        }
        let b = wire.freeze();
        match Message::decode(b.clone()) {
            Ok(m) => {
                // Whatever decodes re-encodes to a message that decodes the same.
                let again = m.encode().unwrap();
                prop_assert_eq!(Message::decode(again).unwrap(), m);
            }
            Err(e) => { let _ = e.error_object(); }
        }
        let mut dec = FrameDecoder::default();
        let mut buf = BytesMut::from(&b[..]);
        let _ = dec.decode(&mut buf);
    }

    #[test]
    fn stream_of_garbage_never_panics(data in vec(any::<u8>(), 0..600), chunk in 1usize..64) {
        let mut dec = FrameDecoder::new(Limits { max_message_len: 128 });
        let mut buf = BytesMut::new();
        'outer: for c in data.chunks(chunk) {
            buf.extend_from_slice(c);
            loop {
                match dec.decode(&mut buf) {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => break 'outer,
                }
            }
        }
    }
}
