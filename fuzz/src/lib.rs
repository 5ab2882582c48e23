//! Shared pieces of the fuzz targets: the SAE's responder configuration, a router's CER, and
//! feeding bytes through the frame decoder into a peer.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use sae_diameter::codes::{app, command, vendor};
use sae_diameter::{
    Capabilities, Dictionary, Event, FrameDecoder, Message, Peer, PeerConfig, Role,
    VendorApplication,
};

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
