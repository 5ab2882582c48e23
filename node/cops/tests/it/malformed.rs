//! Hostile bytes: each case names the COPS Error (code and sub-code) the receiver must send.

use bytes::{Bytes, BytesMut};
use sae_cops::integrity::{HMAC_MD5_LEN, KeyTable};
use sae_cops::*;

use crate::support::*;

/// Error code and sub-code `Message::decode` leads to.
fn code(frame: Bytes) -> (u16, u16) {
    let e = Message::decode(frame).expect_err("must not decode");
    let o = e.error_object();
    (o.code.into(), o.sub_code)
}

fn req_ok() -> Vec<Vec<u8>> {
    vec![handle(1), context(8, 0)]
}

#[test]
fn a_valid_base_decodes() {
    Message::decode(msg(1, 0x800b, &req_ok())).unwrap();
}

#[test]
fn bad_version_closes_with_bad_message_format() {
    let mut b = BytesMut::from(&msg(1, 0x800b, &req_ok())[..]);
    b[0] = 0x20;
    let err = FrameDecoder::default().decode(&mut b.clone()).unwrap_err();
    assert_eq!(err.error, DecodeError::UnsupportedVersion(2));
    assert_eq!(err.error.error_object().code, ErrorCode::BadMessageFormat);
    assert_eq!(code(b.freeze()), (3, 0));
}

#[test]
fn reserved_flags_and_unknown_op_code() {
    assert_eq!(code(msg_flags(0x2, 1, 1, &req_ok())), (3, 0));
    assert_eq!(code(msg(0, 1, &[])), (3, 0));
    assert_eq!(code(msg(11, 1, &[])), (3, 0));
}

#[test]
fn wrong_message_lengths() {
    let good = msg(1, 1, &req_ok());
    // Length field larger than the frame (truncated message).
    assert_eq!(code(good.slice(..good.len() - 4)), (3, 0));
    // Length field smaller than the frame.
    let mut b = BytesMut::from(&good[..]);
    b.extend_from_slice(&[0; 4]);
    assert_eq!(code(b.freeze()), (3, 0));
    // Not a multiple of 4, and below the header: fatal for the stream.
    for len in [10u32, 4, 0] {
        let mut b = BytesMut::from(&good[..]);
        b[4..8].copy_from_slice(&len.to_be_bytes());
        let err = FrameDecoder::default().decode(&mut b).unwrap_err();
        assert_eq!(err.error.error_object().code, ErrorCode::BadMessageFormat);
    }
    // Truncated header.
    assert!(matches!(
        Message::decode(Bytes::from_static(&[0x10, 1, 0])),
        Err(DecodeError::TruncatedHeader { available: 3 })
    ));
}

#[test]
fn wrong_object_lengths() {
    // Object length below the object header.
    let mut bad = handle(1);
    bad[1] = 2;
    assert_eq!(code(msg(1, 1, &[bad, context(8, 0)])), (3, 0));
    // Object running past the end of the message (truncated object).
    let mut bad = context(8, 0);
    bad[1] = 12;
    assert_eq!(code(msg(1, 1, &[handle(1), bad])), (3, 0));
    // Fixed-size objects with the wrong size.
    for o in [
        obj(2, 1, &[0, 8]),
        obj(2, 1, &[0, 8, 0, 0, 0, 0, 0, 0]),
        obj(3, 1, &[10, 0, 0, 1]),
        obj(3, 2, &[0; 8]),
    ] {
        assert_eq!(code(msg(1, 1, &[handle(1), o])), (3, 0));
    }
    assert_eq!(code(msg(7, 1, &[obj(10, 1, &[0, 0, 0, 0, 0, 0])])), (3, 0));
    assert_eq!(code(msg(8, 1, &[obj(8, 1, &[0, 3])])), (3, 0));
    assert_eq!(
        code(msg(8, 1, &[two_u16(8, 3, 0), obj(13, 1, &[1, 2, 3, 4])])),
        (3, 0)
    );
    assert_eq!(
        code(msg(2, 1, &[handle(1), context(8, 0), obj(6, 1, &[0, 1])])),
        (3, 0)
    );
    assert_eq!(code(msg(9, 0, &[obj(16, 1, &[0, 0, 0, 1])])), (3, 0));
}

#[test]
fn unknown_objects_are_error_13_with_c_num_and_c_type() {
    let mut objs = req_ok();
    objs.push(obj(42, 7, b"hello"));
    assert_eq!(code(msg(1, 1, &objs)), (13, 0x2a07));
    // Known C-Num, unknown C-Type.
    assert_eq!(
        code(msg(1, 1, &[obj(1, 2, &[1, 2, 3, 4]), context(8, 0)])),
        (13, 0x0102)
    );
    assert_eq!(
        code(msg(2, 1, &[handle(1), context(8, 0), obj(6, 6, &[0; 4])])),
        (13, 0x0606)
    );
    assert_eq!(
        code(msg(6, 1, &[pep_id("p"), obj(9, 3, b"x")])),
        (13, 0x0903)
    );
    assert_eq!(code(msg(9, 0, &[obj(0, 0, &[])])), (13, 0));
    // The PEP's side: a bad DEC is reported with Reason 13 and the same sub-code.
    let e =
        Message::decode(msg(2, 1, &[handle(1), context(8, 0), obj(6, 6, &[0; 4])])).unwrap_err();
    assert_eq!(
        e.reason(),
        Reason {
            code: ReasonCode::UnknownObject,
            sub_code: 0x0606
        }
    );
}

#[test]
fn objects_that_do_not_belong() {
    // A Decision in an OPN.
    assert_eq!(
        code(msg(6, 1, &[pep_id("pep"), decision_flags(1, 0)])),
        (3, 0)
    );
    // A Handle in a KA, a Context in a CAT.
    assert_eq!(code(msg(9, 0, &[handle(1)])), (3, 0));
    assert_eq!(
        code(msg(7, 1, &[two_u16(10, 0, 30), context(8, 0)])),
        (3, 0)
    );
    // Two Handles in an RPT; two ClientSI in an RPT.
    assert_eq!(
        code(msg(3, 1, &[handle(1), two_u16(12, 1, 0), handle(2)])),
        (3, 0)
    );
    assert_eq!(
        code(msg(
            3,
            1,
            &[
                handle(1),
                two_u16(12, 1, 0),
                obj(9, 2, b"a"),
                obj(9, 2, b"b")
            ]
        )),
        (3, 0)
    );
    // Out-Interface before In-Interface in a REQ.
    let out = obj(4, 1, &[10, 0, 0, 1, 0, 0, 0, 1]);
    let inn = obj(3, 1, &[10, 0, 0, 2, 0, 0, 0, 1]);
    assert_eq!(
        code(msg(1, 1, &[handle(1), context(1, 0), out, inn])),
        (3, 0)
    );
    // Error and Decision together in a DEC.
    assert_eq!(
        code(msg(
            2,
            1,
            &[
                handle(1),
                two_u16(8, 4, 0),
                context(8, 0),
                decision_flags(1, 0)
            ]
        )),
        (3, 0)
    );
    // Decision data out of C-Type order.
    assert_eq!(
        code(msg(
            2,
            1,
            &[
                handle(1),
                context(8, 0),
                decision_flags(1, 0),
                obj(6, 5, b"n"),
                obj(6, 2, b"s")
            ]
        )),
        (3, 0)
    );
    // A second Decision Flags reads as a second decision without its Context: 7.
    assert_eq!(
        code(msg(
            2,
            1,
            &[
                handle(1),
                context(8, 0),
                decision_flags(1, 0),
                decision_flags(2, 0)
            ]
        )),
        (7, 0)
    );
    // Repeated data C-Type.
    assert_eq!(
        code(msg(
            2,
            1,
            &[
                handle(1),
                context(8, 0),
                decision_flags(1, 0),
                obj(6, 3, b"r"),
                obj(6, 3, b"r")
            ]
        )),
        (3, 0)
    );
    // A Decision object in a REQ, an LPDP Decision in a DEC.
    assert_eq!(
        code(msg(1, 1, &[handle(1), context(8, 0), decision_flags(1, 0)])),
        (3, 0)
    );
    assert_eq!(
        code(msg(
            2,
            1,
            &[
                handle(1),
                context(8, 0),
                decision_flags(1, 0),
                obj(7, 1, &[0, 1, 0, 0])
            ]
        )),
        (3, 0)
    );
    // Integrity not last.
    let integrity = obj(16, 1, &[0; 8 + HMAC_MD5_LEN]);
    assert_eq!(code(msg(5, 1, &[integrity, handle(1)])), (3, 0));
}

#[test]
fn mandatory_objects_missing_are_error_7() {
    for (op, objs) in [
        (1, vec![context(8, 0)]),                             // REQ without Handle
        (1, vec![handle(1)]),                                 // REQ without Context
        (2, vec![handle(1)]),                                 // DEC with nothing
        (2, vec![handle(1), decision_flags(1, 0)]),           // DEC without Context
        (2, vec![handle(1), context(8, 0)]),                  // DEC without Decision Flags
        (2, vec![handle(1), context(8, 0), obj(6, 5, b"n")]), // data without flags
        (3, vec![handle(1)]),                                 // RPT without Report-Type
        (4, vec![handle(1)]),                                 // DRQ without Reason
        (4, vec![two_u16(5, 1, 0)]),                          // DRQ without Handle
        (6, vec![]),                                          // OPN without PEPID
        (7, vec![]),                                          // CAT without KA Timer
        (8, vec![]),                                          // CC without Error
        (1, vec![handle(1), context(8, 0), context(1, 0)]),   // LPDP Context without flags
    ] {
        assert_eq!(code(msg(op, 1, &objs)), (7, 0), "op {op} {objs:?}");
    }
    // A second decision group missing its flags.
    assert_eq!(
        code(msg(
            2,
            1,
            &[
                handle(1),
                context(8, 0),
                decision_flags(1, 0),
                context(8, 0)
            ]
        )),
        (7, 0)
    );
}

#[test]
fn bad_handle_and_bad_values() {
    assert_eq!(code(msg(4, 1, &[obj(1, 1, &[]), two_u16(5, 1, 0)])), (1, 0));
    // Unknown decision command.
    assert_eq!(
        code(msg(2, 1, &[handle(1), context(8, 0), decision_flags(3, 0)])),
        (3, 0)
    );
    // PEPID not ASCII, or empty.
    assert_eq!(code(msg(6, 1, &[obj(11, 1, b"\xc3\xa9\0")])), (3, 0));
    assert_eq!(code(msg(6, 1, &[obj(11, 1, b"\0")])), (3, 0));
}

#[test]
fn a_bad_request_is_answered_for_its_handle() {
    let frame = msg(1, 0x800b, &[handle(77), obj(50, 1, b"??")]);
    let mut buf = BytesMut::from(&frame[..]);
    match FrameDecoder::default().decode(&mut buf).unwrap() {
        Some(Frame::Malformed {
            header,
            handle,
            error,
        }) => {
            assert_eq!(header.op_code, 1);
            assert_eq!(header.client_type, 0x800b);
            assert_eq!(handle, Some(Handle::from_u32(77)));
            assert_eq!(error.error_object(), ErrorObject::unknown_object(50, 1));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn oversized_messages_are_unable_to_process() {
    let frame = msg(1, 1, &[handle(1), context(8, 0), obj(9, 2, &[0; 200])]);
    let mut dec = FrameDecoder::new(Limits {
        max_message_len: 64,
    });
    let mut buf = BytesMut::from(&frame[..]);
    match dec.decode(&mut buf).unwrap() {
        Some(Frame::Malformed { error, .. }) => {
            assert_eq!(
                error.error_object(),
                ErrorObject::new(ErrorCode::UnableToProcess)
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(Limits::default().max_message_len, 65536);
}

#[test]
fn authentication_errors_are_14_and_15() {
    let keys = KeyTable::new().with(1, &b"k1"[..]);
    let verifier = || Verifier::new(keys.clone(), true);
    let mut signer = Signer::new(keys.clone(), 1, 1000).unwrap();
    let mut m = Message::new(1, Body::SyncStateRequest(None));
    let good = signer.sign(&mut m).unwrap();

    let dec = |v: &mut Verifier, b: Bytes| {
        let mut buf = BytesMut::from(&b[..]);
        let mut d = FrameDecoder::with_verifier(Limits::default(), v.clone());
        let f = d.decode(&mut buf).unwrap().unwrap();
        *v = d.verifier_mut().unwrap().clone();
        match f {
            Frame::Message(_) => None,
            Frame::Malformed { error, .. } => Some(u16::from(error.error_code())),
        }
    };
    // Missing Integrity.
    let plain = Message::new(1, Body::SyncStateRequest(None))
        .encode()
        .unwrap();
    assert_eq!(dec(&mut verifier(), plain), Some(15));
    // Flipped digest bit.
    let mut t = BytesMut::from(&good[..]);
    let last = t.len() - 1;
    t[last] ^= 0x80;
    assert_eq!(dec(&mut verifier(), t.freeze()), Some(14));
    // Changed sequence number (digest no longer matches).
    let mut t = BytesMut::from(&good[..]);
    t[19] ^= 1;
    assert_eq!(dec(&mut verifier(), t.freeze()), Some(14));
    // Unknown key id.
    let mut other = Signer::new(KeyTable::new().with(2, &b"k2"[..]), 2, 0).unwrap();
    let mut m2 = Message::keep_alive();
    assert_eq!(dec(&mut verifier(), other.sign(&mut m2).unwrap()), Some(14));
    // Replay and a skipped number.
    let mut v = verifier();
    assert_eq!(dec(&mut v, good.clone()), None);
    assert_eq!(dec(&mut v, good), Some(14));
    let mut m3 = Message::keep_alive();
    signer.set_next_sequence(1005);
    assert_eq!(dec(&mut v, signer.sign(&mut m3).unwrap()), Some(14));
    signer.set_next_sequence(1001);
    let mut m4 = Message::keep_alive();
    assert_eq!(dec(&mut v, signer.sign(&mut m4).unwrap()), None);
}
