//! Codec cost of a typical COPS-PR exchange: the router's configuration REQ for a subscriber
//! interface and the SAE's DEC installing two policies (encode, decode, decode through the
//! frame decoder, sign and verify).

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sae_cops::integrity::KeyTable;
use sae_cops::*;

const JUNIPER: u16 = 0x800b;

/// A COPS-PR sub-object: length, S-Num, S-Type 1 (BER), data, padding.
fn sub(s_num: u8, data: &[u8]) -> Vec<u8> {
    let len = 4 + data.len();
    let mut v = vec![(len >> 8) as u8, len as u8, s_num, 1];
    v.extend_from_slice(data);
    v.resize(v.len().next_multiple_of(4), 0);
    v
}

/// PRID (BER OID) then EPD (a BER sequence of attribute values).
fn prid_epd(instance: u8, values: &[&[u8]]) -> Vec<u8> {
    let mut v = sub(
        1,
        &[
            0x06, 0x0b, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x81, 0x4c, 0x05, 0x02, 0x01, instance,
        ],
    );
    let mut epd = Vec::new();
    for x in values {
        epd.extend_from_slice(&[0x04, x.len() as u8]);
        epd.extend_from_slice(x);
    }
    v.extend(sub(3, &epd));
    v
}

fn req() -> Message {
    let mut si = prid_epd(1, &[b"ge-1/0/0.100", b"alice@isp.example", b"100.64.12.34"]);
    si.extend(prid_epd(2, &[b"default", b"vr1"]));
    Message::new(
        JUNIPER,
        Body::Request(Request {
            handle: Handle::from_u32(0x0001_2345),
            context: Context::configuration(),
            in_interface: Some(Interface {
                address: "100.64.12.34".parse().unwrap(),
                if_index: 1234,
            }),
            out_interface: None,
            client_si: vec![ClientSi::Named(Bytes::from(si))],
            lpdp_decisions: vec![],
        }),
    )
}

fn dec() -> Message {
    let install = |i: u8, name: &[u8]| {
        Decision::new(
            Context::configuration(),
            DecisionFlags::new(Command::Install),
        )
        .with_named(Bytes::from(prid_epd(
            i,
            &[name, b"rate=10000000", b"burst=1500000"],
        )))
    };
    Message::new(
        JUNIPER,
        Body::Decision(DecisionMessage {
            handle: Handle::from_u32(0x0001_2345),
            content: DecisionContent::Decisions(vec![
                install(10, b"video-boost-in"),
                install(11, b"video-boost-out"),
            ]),
        }),
    )
    .solicited()
}

fn bench(c: &mut Criterion) {
    for (name, m) in [("req", req()), ("dec", dec())] {
        let wire = m.encode().unwrap();
        let mut g = c.benchmark_group(format!("cops_pr_{name}"));
        g.throughput(Throughput::Bytes(wire.len() as u64));
        g.bench_function("encode", |b| b.iter(|| black_box(&m).encode().unwrap()));
        g.bench_function("decode", |b| {
            b.iter(|| Message::decode(black_box(wire.clone())).unwrap())
        });
        g.bench_function("frame_decode", |b| {
            let mut dec = FrameDecoder::default();
            b.iter(|| {
                let mut buf = BytesMut::from(&wire[..]);
                dec.decode(&mut buf).unwrap().unwrap()
            })
        });
        let keys = KeyTable::new().with(1, &b"a shared secret"[..]);
        g.bench_function("sign", |b| {
            let mut s = Signer::new(keys.clone(), 1, 0).unwrap();
            let mut m = m.clone();
            b.iter(|| s.sign(&mut m).unwrap())
        });
        let signed = Signer::new(keys.clone(), 1, 0)
            .unwrap()
            .sign(&mut m.clone())
            .unwrap();
        g.bench_function("decode_verify", |b| {
            b.iter(|| {
                let mut v = Verifier::new(keys.clone(), true);
                v.decode(black_box(signed.clone())).unwrap()
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
