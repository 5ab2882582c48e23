//! Shared pieces of the fuzz targets: the SAE's responder configuration, a router's CER,
//! feeding bytes through the frame decoder into a peer, the built-in dictionary and sample
//! messages to validate against a fuzzed one.
//!
//! This library and every target forbid unsafe code, as the workspace does. In a target the
//! lint does not see the `#[no_mangle]` entry points `fuzz_target!` generates (they come from
//! libfuzzer-sys' macro), so it covers exactly the target's own code.

#![forbid(unsafe_code)]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use sae_diameter::codes::{app, avp, command, juniper, vendor};
use sae_diameter::{
    Avp, AvpFlags, Capabilities, Dictionary, Event, FrameDecoder, Message, Peer, PeerConfig, Role,
    Value, VendorApplication,
};

/// The built-in dictionary, parsed once.
pub fn base_dictionary() -> &'static Dictionary {
    static DICT: OnceLock<Dictionary> = OnceLock::new();
    DICT.get_or_init(Dictionary::base)
}

/// Messages of the flows (CER, DWR, AAR with a policy, ACR, STR, an SRQ with a misplaced
/// Session-Id, a PPA) to validate against a fuzzed dictionary.
pub fn sample_messages() -> &'static [Message] {
    static MESSAGES: OnceLock<Vec<Message>> = OnceLock::new();
    MESSAGES.get_or_init(build_samples)
}

fn build_samples() -> Vec<Message> {
    let ident = |code, s: &str| Avp::mandatory(code, &Value::DiameterIdentity(s.to_owned()));
    let jnpr = |code, v: &Value| Avp::vendor_mandatory(code, vendor::JUNIPER, v);
    let octets = |s: &'static str| Value::OctetString(Bytes::from_static(s.as_bytes()));
    let sid = Avp::mandatory(avp::SESSION_ID, &Value::Utf8String("mx1;1;1".into()));
    let origin = [
        ident(avp::ORIGIN_HOST, "mx1.example.net"),
        ident(avp::ORIGIN_REALM, "example.net"),
    ];
    let session = |code, proxiable| {
        Message::request(code, app::JSRC, proxiable)
            .with(sid.clone())
            .with(Avp::mandatory(
                avp::AUTH_APPLICATION_ID,
                &Value::Unsigned32(app::JSRC),
            ))
            .with(origin[0].clone())
            .with(origin[1].clone())
            .with(ident(avp::DESTINATION_REALM, "example.net"))
    };
    let install = jnpr(
        juniper::POLICY_INSTALL,
        &Value::Grouped(vec![
            jnpr(juniper::POLICY_NAME, &octets("gold")),
            jnpr(
                juniper::POLICY_DEFINITION,
                &Value::Grouped(vec![
                    jnpr(juniper::TEMPLATE_NAME, &octets("rate")),
                    jnpr(
                        juniper::SUBSTITUTION,
                        &Value::Grouped(vec![
                            jnpr(juniper::SUBSTITUTION_NAME, &octets("r")),
                            jnpr(juniper::SUBSTITUTION_VALUE, &octets("1m")),
                        ]),
                    ),
                ]),
            ),
            jnpr(juniper::ACCT_COLLECT, &Value::Enumerated(1)),
        ]),
    );
    let aar = session(command::AA, true)
        .with(jnpr(juniper::REQUEST_TYPE, &Value::Enumerated(2)))
        .with(install.clone());
    let acr = session(command::ACCOUNTING, true)
        .with(Avp::mandatory(
            avp::ACCOUNTING_RECORD_TYPE,
            &Value::Enumerated(3),
        ))
        .with(Avp::mandatory(
            avp::ACCOUNTING_RECORD_NUMBER,
            &Value::Unsigned32(1),
        ));
    let str_ = session(command::SESSION_TERMINATION, true).with(Avp::mandatory(
        avp::TERMINATION_CAUSE,
        &Value::Enumerated(14),
    ));
    let mut srq = session(command::SESSION_RESYNC, false);
    srq.avps.rotate_left(1);
    let dwr = Message::request(command::DEVICE_WATCHDOG, app::COMMON, false)
        .with(origin[0].clone())
        .with(origin[1].clone())
        .with(Avp::new(
            avp::ORIGIN_STATE_ID,
            0,
            AvpFlags::none(),
            &Value::Unsigned32(7),
        ));
    let mut ppa = Message::answer_to(&session(command::PUSH_PROFILE, true));
    ppa.set_result_code(2001);
    ppa.push_origin("mx1.example.net", "example.net");
    ppa.push(install);
    vec![router_cer(), dwr, aar, acr, str_, srq, ppa]
}

fn jsrc() -> VendorApplication {
    VendorApplication::auth(vendor::JUNIPER, app::JSRC)
}

/// The SAE answering routers: JSRC only. Built once: the dictionary is parsed from TOML.
pub fn sae_config() -> Arc<PeerConfig> {
    static CONFIG: OnceLock<Arc<PeerConfig>> = OnceLock::new();
    CONFIG.get_or_init(|| Arc::new(build_sae_config())).clone()
}

fn build_sae_config() -> PeerConfig {
    let local = Capabilities {
        origin_host: "sae1.example.net".into(),
        origin_realm: "example.net".into(),
        host_ip_addresses: vec!["192.0.2.1".parse().unwrap()],
        vendor_id: vendor::JUNIPER,
        product_name: "SAE".into(),
        supported_vendor_ids: vec![vendor::JUNIPER],
        vendor_specific_applications: vec![jsrc()],
        ..Default::default()
    };
    PeerConfig::new(Role::Responder, local, Arc::new(Dictionary::base()))
}

/// A router's CER advertising JSRC.
pub fn router_cer() -> Message {
    let caps = Capabilities {
        origin_host: "mx1.example.net".into(),
        origin_realm: "example.net".into(),
        host_ip_addresses: vec!["192.0.2.10".parse().unwrap()],
        vendor_id: vendor::JUNIPER,
        product_name: "MX960".into(),
        vendor_specific_applications: vec![jsrc()],
        ..Default::default()
    };
    let mut cer = Message::request(command::CAPABILITIES_EXCHANGE, 0, false);
    cer.avps = caps.to_avps();
    cer.header.hop_by_hop = 1;
    cer.header.end_to_end = 1;
    cer
}

/// A responder peer with its frame decoder and receive buffer.
pub struct Responder {
    pub peer: Peer,
    decoder: FrameDecoder,
    rx: BytesMut,
    pub now: Instant,
}

impl Responder {
    /// Connected and waiting for CER.
    pub fn waiting_for_cer() -> Self {
        let config = sae_config();
        let peer = Peer::new(config, 0x5ae, false);
        let decoder = FrameDecoder::new(peer.limits());
        let now = Instant::now();
        let mut r = Responder {
            peer,
            decoder,
            rx: BytesMut::new(),
            now,
        };
        r.peer.connected(now);
        r
    }

    /// Capabilities exchanged with a router: open.
    pub fn open() -> Self {
        let mut r = Self::waiting_for_cer();
        r.feed(&router_cer().encode().expect("CER encodes"));
        while let Some(e) = r.peer.poll_event() {
            if matches!(e, Event::CapabilitiesReceived(_)) {
                r.peer.accept(r.now);
            }
        }
        r.drain();
        assert_eq!(r.peer.state(), sae_diameter::PeerState::Open);
        r
    }

    /// Bytes from the transport, framed and handed to the peer.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.rx.extend_from_slice(bytes);
        loop {
            match self.decoder.decode(&mut self.rx) {
                Ok(Some(frame)) => self.peer.handle_frame(self.now, frame),
                Ok(None) => break,
                Err(err) => {
                    self.peer.handle_framing_error(self.now, err);
                    self.rx.clear();
                    break;
                }
            }
        }
    }

    /// Takes everything written and every event; every written buffer must be one message.
    pub fn drain(&mut self) {
        while let Some(bytes) = self.peer.poll_transmit() {
            if let Err(e) = Message::decode(bytes.clone()) {
                panic!("the peer wrote an undecodable message ({e}): {bytes:?}");
            }
        }
        while self.peer.poll_event().is_some() {}
    }

    /// Lets the peer's timers run out, then drains.
    pub fn expire_timers(&mut self) {
        for _ in 0..4 {
            match self.peer.poll_timeout() {
                Some(t) => {
                    self.now = self.now.max(t) + Duration::from_millis(1);
                    self.peer.handle_timeout(self.now);
                    self.drain();
                }
                None => break,
            }
        }
    }
}

/// Splits `data` into chunks whose sizes are chosen by the first octet.
pub fn chunks(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let (step, rest) = match data.split_first() {
        Some((b, rest)) => (usize::from(*b % 64) + 1, rest),
        None => (1, data),
    };
    rest.chunks(step)
}
