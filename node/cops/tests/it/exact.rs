//! Byte-exact messages written out by hand from RFC 2748 sections 2.1, 2.2 and 3, compared with
//! what the encoder produces and decoded back.

use bytes::Bytes;
use hmac::{Hmac, Mac};
use sae_cops::integrity::KeyTable;
use sae_cops::*;

fn check(m: &Message, wire: &[u8]) {
    assert_eq!(&m.encode().unwrap()[..], wire);
    assert_eq!(&Message::decode(Bytes::copy_from_slice(wire)).unwrap(), m);
}

#[test]
fn client_accept() {
    #[rustfmt::skip]
    let wire = [
        0x10, 0x07, 0x80, 0x0b, 0x00, 0x00, 0x00, 0x18, // v1, CAT, Juniper, length 24
        0x00, 0x08, 0x0a, 0x01, 0x00, 0x00, 0x00, 0x2d, // KA Timer 45 s
        0x00, 0x08, 0x0f, 0x01, 0x00, 0x00, 0x00, 0x3c, // Accounting Timer 60 s
    ];
    let m = Message::new(
        0x800b,
        Body::ClientAccept(ClientAccept {
            ka_timer: 45,
            acct_timer: Some(60),
        }),
    );
    check(&m, &wire);
}

#[test]
fn client_open_with_last_pdp() {
    #[rustfmt::skip]
    let wire = [
        0x10, 0x06, 0x79, 0x26, 0x00, 0x00, 0x00, 0x20, // v1, OPN, 0x7926, length 32
        0x00, 0x0b, 0x0b, 0x01, b's', b'b', b'c', b'-', // PEPID "sbc-01" + NUL: length 11
        b'0', b'1', 0x00, 0x00,                         //   NUL, one octet of padding
        0x00, 0x0c, 0x0e, 0x01, 0xc0, 0x00, 0x02, 0x01, // Last-PDP-Addr IPv4 192.0.2.1
        0x00, 0x00, 0x0c, 0xd8,                         //   reserved, port 3288
    ];
    let m = Message::new(
        0x7926,
        Body::ClientOpen(ClientOpen {
            pep_id: "sbc-01".into(),
            client_si: None,
            last_pdp_addr: Some(PdpAddress {
                address: "192.0.2.1".parse().unwrap(),
                port: 3288,
            }),
        }),
    );
    check(&m, &wire);
}

#[test]
fn cops_pr_request() {
    #[rustfmt::skip]
    let wire = [
        0x10, 0x01, 0x80, 0x0b, 0x00, 0x00, 0x00, 0x24, // v1, REQ, length 36
        0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x00, 0x2a, // Handle 42
        0x00, 0x08, 0x02, 0x01, 0x00, 0x08, 0x00, 0x01, // Context: config, M-Type 1
        0x00, 0x0a, 0x09, 0x02, 0x00, 0x06, 0x01, 0x01, // Named ClientSI, 6 octets of data
        0x2b, 0x06, 0x00, 0x00,                         //   + 2 octets of padding
    ];
    let m = Message::new(
        0x800b,
        Body::Request(Request {
            handle: Handle::from_u32(42),
            context: Context {
                r_type: RType::CONFIGURATION,
                m_type: 1,
            },
            in_interface: None,
            out_interface: None,
            client_si: vec![ClientSi::Named(Bytes::from_static(&[0, 6, 1, 1, 0x2b, 6]))],
            lpdp_decisions: vec![],
        }),
    );
    check(&m, &wire);
}

#[test]
fn solicited_decision_install() {
    #[rustfmt::skip]
    let wire = [
        0x11, 0x02, 0x80, 0x0b, 0x00, 0x00, 0x00, 0x28, // v1, solicited, DEC, length 40
        0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x00, 0x2a, // Handle 42
        0x00, 0x08, 0x02, 0x01, 0x00, 0x08, 0x00, 0x00, // Context: config
        0x00, 0x08, 0x06, 0x01, 0x00, 0x01, 0x00, 0x01, // Decision Flags: install, trigger error
        0x00, 0x08, 0x06, 0x05, 0xde, 0xad, 0xbe, 0xef, // Named Decision Data
    ];
    let m = Message::new(
        0x800b,
        Body::Decision(DecisionMessage {
            handle: Handle::from_u32(42),
            content: DecisionContent::Decisions(vec![
                Decision::new(
                    Context::configuration(),
                    DecisionFlags {
                        command: Command::Install,
                        flags: DecisionFlags::TRIGGER_ERROR,
                    },
                )
                .with_named(Bytes::from_static(&[0xde, 0xad, 0xbe, 0xef])),
            ]),
        }),
    )
    .solicited();
    check(&m, &wire);
}

#[test]
fn client_close_with_redirect_v6() {
    #[rustfmt::skip]
    let wire = [
        0x10, 0x08, 0x80, 0x0a, 0x00, 0x00, 0x00, 0x28, // v1, CC, PacketCable MM, length 40
        0x00, 0x08, 0x08, 0x01, 0x00, 0x0c, 0x00, 0x00, // Error 12 redirect
        0x00, 0x18, 0x0d, 0x02, 0x20, 0x01, 0x0d, 0xb8, // PDP-Redirect IPv6 2001:db8::2
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x0c, 0xd8, //   reserved, port 3288
    ];
    let m = Message::new(
        0x800a,
        Body::ClientClose(ClientClose {
            error: ErrorObject::new(ErrorCode::RedirectToPreferredServer),
            redirect: Some(PdpAddress {
                address: "2001:db8::2".parse().unwrap(),
                port: 3288,
            }),
        }),
    );
    check(&m, &wire);
}

#[test]
fn signed_keep_alive() {
    #[rustfmt::skip]
    let mut wire = vec![
        0x10, 0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x24, // v1, KA, client type 0, length 36
        0x00, 0x1c, 0x10, 0x01, 0x00, 0x00, 0x00, 0x03, // Integrity, Key ID 3
        0x00, 0x00, 0x00, 0x10,                         //   Sequence 16
    ];
    let mut mac = Hmac::<md5::Md5>::new_from_slice(b"cops-key").unwrap();
    mac.update(&wire);
    wire.extend_from_slice(&mac.finalize().into_bytes());

    let keys = KeyTable::new().with(3, &b"cops-key"[..]);
    let mut signer = Signer::new(keys.clone(), 3, 16).unwrap();
    let mut m = Message::keep_alive();
    assert_eq!(&signer.sign(&mut m).unwrap()[..], &wire[..]);
    let mut v = Verifier::new(keys, true);
    assert_eq!(v.decode(Bytes::from(wire)).unwrap(), m);
}
