//! Codec cost of the JSRC messages on the SAE's hot path: the router's AA-Request (encode,
//! decode, decode and validate) and the SAE's AA-Answer with two policies (encode, decode and
//! read the policies).

use std::hint::black_box;
use std::net::Ipv4Addr;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sae_diameter::codes::{app, avp, command, result};
use sae_diameter::jsrc::{
    PolicyDefinition, PolicyInstall, RequestType, SubscriberMessage, Substitution,
};
use sae_diameter::validate::validate_request;
use sae_diameter::{Avp, Dictionary, Limits, Message, Value};

const SESSION_ID: &str = "mx1.example.net;1700000000;4242;ge-1/0/0.100";

fn ident(code: u32, s: &str) -> Avp {
    Avp::mandatory(code, &Value::DiameterIdentity(s.into()))
}

fn stamped(mut m: Message) -> Message {
    m.header.hop_by_hop = 0x1234_5678;
    m.header.end_to_end = 0x9abc_def0;
    m
}

/// The router's AA-Request for a subscriber coming up.
fn aar() -> Message {
    stamped(
        Message::request(command::AA, app::JSRC, true)
            .with(Avp::mandatory(
                avp::SESSION_ID,
                &Value::Utf8String(SESSION_ID.into()),
            ))
            .with(Avp::mandatory(
                avp::AUTH_APPLICATION_ID,
                &Value::Unsigned32(app::JSRC),
            ))
            .with(ident(avp::ORIGIN_HOST, "mx1.example.net"))
            .with(ident(avp::ORIGIN_REALM, "example.net"))
            .with(ident(avp::DESTINATION_REALM, "example.net"))
            .with(Avp::mandatory(
                avp::USER_NAME,
                &Value::Utf8String("alice@isp.example".into()),
            ))
            .with(Avp::mandatory(
                avp::FRAMED_IP_ADDRESS,
                &Value::OctetString(Bytes::copy_from_slice(
                    &Ipv4Addr::new(100, 64, 12, 34).octets(),
                )),
            ))
            .with(Avp::mandatory(
                avp::NAS_PORT_ID,
                &Value::Utf8String("ge-1/0/0.100".into()),
            ))
            .with(RequestType::AddressAuthorization.to_avp())
            .with(Avp::mandatory(
                avp::ORIGIN_STATE_ID,
                &Value::Unsigned32(1_700_000_000),
            )),
    )
}

fn policy(name: &str, template: &str, rate: &str, burst: &str) -> PolicyInstall {
    PolicyInstall {
        policy_name: name.into(),
        definition: Some(PolicyDefinition {
            policy_name: name.into(),
            template_name: template.into(),
            substitutions: vec![
                Substitution {
                    name: "rate".into(),
                    value: rate.into(),
                },
                Substitution {
                    name: "burst".into(),
                    value: burst.into(),
                },
            ],
        }),
        collect_accounting: true,
    }
}

/// The SAE's AA-Answer installing an upstream and a downstream policy.
fn aaa() -> Message {
    let mut aaa = Message::answer_to(&aar());
    aaa.push(Avp::mandatory(
        avp::AUTH_APPLICATION_ID,
        &Value::Unsigned32(app::JSRC),
    ));
    aaa.set_result_code(result::SUCCESS);
    aaa.push(ident(avp::ORIGIN_HOST, "sae1.example.net"));
    aaa.push(ident(avp::ORIGIN_REALM, "example.net"));
    aaa.push(policy("gold-up", "rate-limit-in", "20m", "2m").to_avp());
    aaa.push(policy("gold-down", "rate-limit-out", "100m", "10m").to_avp());
    aaa
}

fn bench_aar(c: &mut Criterion) {
    let dict = Dictionary::base();
    let limits = Limits::default();
    let msg = aar();
    let bytes = msg.encode().expect("AAR encodes");
    println!("AAR: {} octets", bytes.len());
    // Guard against benchmarking an error path.
    validate_request(&dict, &msg, &limits).expect("the AAR is valid");

    let mut g = c.benchmark_group("aar");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("encode", |b| b.iter(|| black_box(&msg).encode().unwrap()));
    g.bench_function("decode", |b| {
        b.iter(|| Message::decode(black_box(bytes.clone())).unwrap())
    });
    g.bench_function("decode+validate", |b| {
        b.iter(|| {
            let m = Message::decode(black_box(bytes.clone())).unwrap();
            validate_request(&dict, &m, &limits).unwrap();
            m
        })
    });
    g.finish();
}

fn bench_aaa(c: &mut Criterion) {
    let msg = aaa();
    let bytes = msg.encode().expect("AAA encodes");
    println!("AAA: {} octets", bytes.len());
    let decoded = Message::decode(bytes.clone()).unwrap();
    assert_eq!(decoded.policy_installs().unwrap().len(), 2);

    let mut g = c.benchmark_group("aaa");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("encode", |b| b.iter(|| black_box(&msg).encode().unwrap()));
    g.bench_function("decode", |b| {
        b.iter(|| Message::decode(black_box(bytes.clone())).unwrap())
    });
    g.bench_function("decode+policies", |b| {
        b.iter(|| {
            let m = Message::decode(black_box(bytes.clone())).unwrap();
            m.policy_installs().unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench_aar, bench_aaa);
criterion_main!(benches);
