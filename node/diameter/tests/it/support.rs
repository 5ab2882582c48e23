//! Shared pieces: the two nodes' capabilities, a synthetic clock, and two peers wired together
//! in memory through their frame decoders.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use sae_diameter::codes::{app, avp, command, vendor};
use sae_diameter::peer::{EndToEndIds, RequestId};
use sae_diameter::{
    Avp, AvpFlags, Capabilities, Dictionary, Event, FrameDecoder, Message, Peer, PeerConfig,
    PeerInfo, PeerState, Role, Value, VendorApplication,
};

pub const SAE_HOST: &str = "sae1.example.net";
pub const ROUTER_HOST: &str = "mx1.example.net";
pub const REALM: &str = "example.net";

/// The built-in dictionary, parsed once for the whole binary.
pub fn dictionary() -> Arc<Dictionary> {
    static DICT: OnceLock<Arc<Dictionary>> = OnceLock::new();
    DICT.get_or_init(|| Arc::new(Dictionary::base())).clone()
}

/// The SAE: JSRC and PTSP, both as Juniper vendor-specific applications.
pub fn sae_capabilities() -> Capabilities {
    Capabilities {
        origin_host: SAE_HOST.into(),
        origin_realm: REALM.into(),
        host_ip_addresses: vec!["192.0.2.1".parse().unwrap()],
        vendor_id: vendor::JUNIPER,
        product_name: "SAE".into(),
        origin_state_id: Some(1_700_000_000),
        supported_vendor_ids: vec![vendor::JUNIPER],
        vendor_specific_applications: vec![
            VendorApplication::auth(vendor::JUNIPER, app::JSRC),
            VendorApplication::auth(vendor::JUNIPER, app::PTSP),
        ],
        ..Default::default()
    }
}

/// A router speaking NASREQ and JSRC: JSRC is the only application in common with the SAE.
pub fn router_capabilities() -> Capabilities {
    Capabilities {
        origin_host: ROUTER_HOST.into(),
        origin_realm: REALM.into(),
        host_ip_addresses: vec![
            "192.0.2.10".parse().unwrap(),
            "2001:db8::10".parse().unwrap(),
        ],
        vendor_id: vendor::JUNIPER,
        product_name: "MX960".into(),
        origin_state_id: Some(42),
        firmware_revision: Some(2301),
        supported_vendor_ids: vec![vendor::JUNIPER],
        auth_application_ids: vec![app::NASREQ],
        vendor_specific_applications: vec![VendorApplication::auth(vendor::JUNIPER, app::JSRC)],
        ..Default::default()
    }
}

/// The applications the SAE and the router have in common.
pub fn common_applications() -> BTreeSet<u32> {
    BTreeSet::from([app::JSRC])
}

/// A configuration with the crate's defaults (Tw 30 s, 10 s capabilities and request
/// timeouts, 5 s disconnect timeout).
pub fn config(role: Role, local: Capabilities) -> PeerConfig {
    let mut c = PeerConfig::new(role, local, dictionary());
    c.end_to_end = Arc::new(EndToEndIds::new(1_700_000_000, 7));
    c
}

pub fn sae_config() -> PeerConfig {
    config(Role::Responder, sae_capabilities())
}

pub fn router_config() -> PeerConfig {
    config(Role::Initiator, router_capabilities())
}

/// Time that only moves when a test says so.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: Instant,
    now: Instant,
}

impl Clock {
    pub fn new() -> Self {
        let base = Instant::now();
        Clock { base, now: base }
    }

    pub fn now(&self) -> Instant {
        self.now
    }

    /// Time since the clock was made.
    pub fn elapsed(&self) -> Duration {
        self.now - self.base
    }

    /// Moves to `t`, which must not be in the past.
    pub fn set(&mut self, t: Instant) -> Instant {
        assert!(t >= self.now, "the clock never goes back");
        self.now = t;
        t
    }
}

/// One end of a connection: the peer, its receive buffer and frame decoder, and what it has
/// reported and sent so far.
pub struct Endpoint {
    pub peer: Peer,
    decoder: FrameDecoder,
    rx: BytesMut,
    events: Vec<Event>,
    /// Every message this end has written, decoded (each must decode).
    pub sent: Vec<Message>,
}

impl Endpoint {
    pub fn new(config: PeerConfig, seed: u64, reopen: bool) -> Self {
        let peer = Peer::new(Arc::new(config), seed, reopen);
        let decoder = FrameDecoder::new(peer.limits());
        Endpoint {
            peer,
            decoder,
            rx: BytesMut::new(),
            events: Vec::new(),
            sent: Vec::new(),
        }
    }

    /// Bytes from the transport: every complete frame goes to the peer; a stream that cannot
    /// be framed any further is reported and the rest of the buffer dropped.
    pub fn receive(&mut self, now: Instant, bytes: &[u8]) {
        self.rx.extend_from_slice(bytes);
        loop {
            match self.decoder.decode(&mut self.rx) {
                Ok(Some(frame)) => self.peer.handle_frame(now, frame),
                Ok(None) => break,
                Err(err) => {
                    self.peer.handle_framing_error(now, err);
                    self.rx.clear();
                    break;
                }
            }
        }
        self.collect_events();
    }

    /// Octets buffered but not yet framed.
    pub fn buffered(&self) -> usize {
        self.rx.len()
    }

    /// Everything the peer wants written, in order. Each buffer must be one whole message.
    pub fn take_transmit(&mut self) -> Vec<Bytes> {
        let mut out = Vec::new();
        while let Some(bytes) = self.peer.poll_transmit() {
            let msg = Message::decode(bytes.clone())
                .unwrap_or_else(|e| panic!("peer wrote an undecodable message ({e}): {bytes:?}"));
            self.sent.push(msg);
            out.push(bytes);
        }
        out
    }

    /// Like [`Endpoint::take_transmit`], decoded.
    pub fn take_sent_messages(&mut self) -> Vec<Message> {
        let n = self.sent.len();
        self.take_transmit();
        self.sent[n..].to_vec()
    }

    fn collect_events(&mut self) {
        while let Some(e) = self.peer.poll_event() {
            self.events.push(e);
        }
    }

    /// The events reported since the last call.
    pub fn take_events(&mut self) -> Vec<Event> {
        self.collect_events();
        std::mem::take(&mut self.events)
    }

    pub fn state(&self) -> PeerState {
        self.peer.state()
    }
}

/// A router (initiator) and the SAE (responder) on one in-memory connection.
pub struct Link {
    pub clock: Clock,
    pub initiator: Endpoint,
    pub responder: Endpoint,
    /// When false, what the initiator writes is lost.
    pub initiator_to_responder: bool,
    /// When false, what the responder writes is lost.
    pub responder_to_initiator: bool,
}

impl Link {
    pub fn new(initiator: PeerConfig, responder: PeerConfig) -> Self {
        Self::with_reopen(initiator, responder, false)
    }

    /// `reopen`: the initiator's previous connection to this peer failed.
    pub fn with_reopen(initiator: PeerConfig, responder: PeerConfig, reopen: bool) -> Self {
        Link {
            clock: Clock::new(),
            initiator: Endpoint::new(initiator, 0x1111, reopen),
            responder: Endpoint::new(responder, 0x2222, false),
            initiator_to_responder: true,
            responder_to_initiator: true,
        }
    }

    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Both ends see the transport come up; the initiator's CER is delivered.
    pub fn connect(&mut self) {
        let now = self.now();
        self.initiator.peer.connected(now);
        self.responder.peer.connected(now);
        self.pump();
    }

    /// Moves bytes both ways until neither end has anything more to write.
    pub fn pump(&mut self) {
        let now = self.now();
        loop {
            let from_initiator = self.initiator.take_transmit();
            let from_responder = self.responder.take_transmit();
            if from_initiator.is_empty() && from_responder.is_empty() {
                break;
            }
            if self.initiator_to_responder {
                for b in &from_initiator {
                    self.responder.receive(now, b);
                }
            }
            if self.responder_to_initiator {
                for b in &from_responder {
                    self.initiator.receive(now, b);
                }
            }
        }
    }

    /// The router (initiator) sends `request`, with `timeout` or the configured default; the
    /// SAE (responder) must report it as its only event. Returns the router's id for it and
    /// the request as the SAE received it.
    pub fn router_request(
        &mut self,
        request: Message,
        timeout: Option<Duration>,
    ) -> (RequestId, Message) {
        let now = self.now();
        let id = match timeout {
            Some(t) => self
                .initiator
                .peer
                .send_request_with_timeout(now, request, t),
            None => self.initiator.peer.send_request(now, request),
        }
        .unwrap();
        self.pump();
        let events = self.responder.take_events();
        let [Event::Request(received)] = &events[..] else {
            panic!("request not delivered to the SAE: {events:?}");
        };
        (id, received.clone())
    }

    /// Connects, accepts the router's CER and checks that both ends come up. Returns the
    /// `PeerInfo` each end reported in `Event::Up` (initiator's, responder's).
    pub fn open(&mut self) -> (PeerInfo, PeerInfo) {
        self.connect();
        self.accept()
    }

    /// After [`Link::connect`]: the responder accepts the CER it reported; both ends come up.
    pub fn accept(&mut self) -> (PeerInfo, PeerInfo) {
        let received = self.responder.take_events();
        let [Event::CapabilitiesReceived(offered)] = &received[..] else {
            panic!("responder should report the CER: {received:?}");
        };
        let offered = offered.clone();
        self.responder.peer.accept(self.now());
        self.pump();
        let up = |events: Vec<Event>| -> PeerInfo {
            events
                .into_iter()
                .find_map(|e| match e {
                    Event::Up(info) => Some(info),
                    _ => None,
                })
                .expect("Event::Up")
        };
        let at_initiator = up(self.initiator.take_events());
        let at_responder = up(self.responder.take_events());
        assert_eq!(at_responder, offered);
        assert_eq!(self.initiator.state(), PeerState::Open);
        assert_eq!(self.responder.state(), PeerState::Open);
        (at_initiator, at_responder)
    }

    /// The earliest deadline of either end.
    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.initiator.peer.poll_timeout(),
            self.responder.peer.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Moves the clock to the earliest deadline, lets both ends handle it and delivers what
    /// they write. Returns the new time.
    pub fn fire_next_timeout(&mut self) -> Instant {
        let t = self.next_deadline().expect("a deadline is armed");
        self.clock.set(t);
        self.initiator.peer.handle_timeout(t);
        self.responder.peer.handle_timeout(t);
        self.pump();
        t
    }
}

/// A DiameterIdentity AVP with the M bit.
pub fn ident(code: u32, s: &str) -> Avp {
    Avp::mandatory(code, &Value::DiameterIdentity(s.into()))
}

/// A JSRC AA-Request from the router, as the SAE expects it.
pub fn aar(session_id: &str, user: &str) -> Message {
    Message::request(command::AA, app::JSRC, true)
        .with(Avp::mandatory(
            avp::SESSION_ID,
            &Value::Utf8String(session_id.into()),
        ))
        .with(Avp::mandatory(
            avp::AUTH_APPLICATION_ID,
            &Value::Unsigned32(app::JSRC),
        ))
        .with(ident(avp::ORIGIN_HOST, ROUTER_HOST))
        .with(ident(avp::ORIGIN_REALM, REALM))
        .with(ident(avp::DESTINATION_REALM, REALM))
        .with(Avp::mandatory(
            avp::USER_NAME,
            &Value::Utf8String(user.into()),
        ))
}

/// A JSRC Push-Profile-Request from the SAE to the router.
pub fn ppr(session_id: &str) -> Message {
    Message::request(command::PUSH_PROFILE, app::JSRC, true)
        .with(Avp::mandatory(
            avp::SESSION_ID,
            &Value::Utf8String(session_id.into()),
        ))
        .with(Avp::mandatory(
            avp::AUTH_APPLICATION_ID,
            &Value::Unsigned32(app::JSRC),
        ))
        .with(ident(avp::ORIGIN_HOST, SAE_HOST))
        .with(ident(avp::ORIGIN_REALM, REALM))
        .with(ident(avp::DESTINATION_REALM, REALM))
        .with(ident(avp::DESTINATION_HOST, ROUTER_HOST))
}

/// The Failed-AVP content of an answer: the AVPs inside the first Failed-AVP.
pub fn failed_avps(answer: &Message) -> Vec<Avp> {
    answer
        .find(avp::FAILED_AVP, 0)
        .expect("answer carries Failed-AVP")
        .grouped()
        .expect("Failed-AVP is well-formed")
}

/// Raw encodings written by hand, independent of the codec, for hostile input.
pub mod raw {
    use super::*;

    /// An AVP: `length` overrides the Length field; `pad` says whether padding follows.
    pub fn avp(
        code: u32,
        flags: u8,
        vendor_id: Option<u32>,
        data: &[u8],
        length: Option<u32>,
        pad: bool,
    ) -> Vec<u8> {
        let mut flags = flags;
        if vendor_id.is_some() {
            flags |= AvpFlags::VENDOR;
        }
        let header = 8 + if vendor_id.is_some() { 4 } else { 0 };
        let len = length.unwrap_or((header + data.len()) as u32);
        let mut b = BytesMut::new();
        b.put_u32(code);
        b.put_u32((u32::from(flags) << 24) | (len & 0x00ff_ffff));
        if let Some(v) = vendor_id {
            b.put_u32(v);
        }
        b.put_slice(data);
        if pad {
            b.put_bytes(0, (4 - data.len() % 4) % 4);
        }
        b.to_vec()
    }

    /// A well-formed AVP with the M bit, padded.
    pub fn mandatory(code: u32, data: &[u8]) -> Vec<u8> {
        avp(code, AvpFlags::MANDATORY, None, data, None, true)
    }

    /// A message; `length` overrides the Message Length field (default: the octets written).
    pub fn message(
        version: u8,
        flags: u8,
        command_code: u32,
        application_id: u32,
        hop_by_hop: u32,
        body: &[u8],
        length: Option<u32>,
    ) -> Vec<u8> {
        let len = length.unwrap_or((20 + body.len()) as u32);
        let mut b = BytesMut::new();
        b.put_u32((u32::from(version) << 24) | (len & 0x00ff_ffff));
        b.put_u32((u32::from(flags) << 24) | command_code);
        b.put_u32(application_id);
        b.put_u32(hop_by_hop);
        b.put_u32(0x5a5a_0000 | (hop_by_hop & 0xffff));
        b.put_slice(body);
        b.to_vec()
    }

    /// Origin-Host and Origin-Realm of the router, as a DWR body starts.
    pub fn origin_avps() -> Vec<u8> {
        let mut body = mandatory(avp::ORIGIN_HOST, ROUTER_HOST.as_bytes());
        body.extend(mandatory(avp::ORIGIN_REALM, REALM.as_bytes()));
        body
    }

    /// A well-formed DWR with this Hop-by-Hop identifier.
    pub fn dwr(hop_by_hop: u32) -> Vec<u8> {
        message(
            1,
            0x80,
            command::DEVICE_WATCHDOG,
            0,
            hop_by_hop,
            &origin_avps(),
            None,
        )
    }
}
