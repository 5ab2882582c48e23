//! The PDP state machine, wired back to back with the PEP through bytes in memory under
//! virtual time (a base `Instant` plus offsets; the machines never read the clock), and fed
//! hand-built hostile bytes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use sae_cops::pr::{
    EpdValue, InstallDecision, PrInstance, Prid, RequestClientSi, decode_install_decision,
    decode_request_client_si, encode_install_decision, encode_request_client_si,
};
use sae_cops::*;

use crate::support::{context, decision_flags, handle, msg, obj, pep_id};

pub const CT: u16 = 0x800b;
const SECOND_CT: u16 = 0x7926;

/// Both machines and the bytes between them.
pub struct Wire {
    pub base: Instant,
    pub now: Instant,
    pub pdp: PdpConnection,
    pub pep: PepConnection,
    pdp_rx: (FrameDecoder, BytesMut),
    pep_rx: (FrameDecoder, BytesMut),
    pub pdp_events: Vec<PdpEvent>,
    pub pep_events: Vec<PepEvent>,
    /// What the PEP sent, decoded, with the time since `base`.
    pub from_pep: Vec<(Duration, Message)>,
    /// What the PDP sent.
    pub from_pdp: Vec<(Duration, Message)>,
    /// Drop what the PEP sends (a PEP gone silent).
    pub drop_from_pep: bool,
    /// Drop what the PDP sends.
    pub drop_from_pdp: bool,
    pdp_closed: bool,
    pep_closed: bool,
}

pub fn pdp_config() -> PdpConfig {
    PdpConfig {
        ka_timer: 45,
        acct_timer: Some(30),
        ..PdpConfig::default()
    }
}

pub fn pep_config() -> PepConfig {
    PepConfig::new(CT, "erx-1.example")
}

impl Wire {
    /// Connects at `base`: the PEP sends OPN, the PDP has it (not yet decided).
    pub fn connect(pdp: PdpConfig, pep: PepConfig, seed: u64) -> Wire {
        Wire::connect_at(
            Instant::now(),
            pdp,
            PepConnection::new(Arc::new(pep), seed),
            seed,
        )
    }

    pub fn connect_at(base: Instant, pdp: PdpConfig, pep: PepConnection, seed: u64) -> Wire {
        let pdp = PdpConnection::new(Arc::new(pdp), base, seed ^ 0x5a5a);
        let mut w = Wire {
            base,
            now: base,
            pdp_rx: (pdp.frame_decoder(), BytesMut::new()),
            pep_rx: (pep.frame_decoder(), BytesMut::new()),
            pdp,
            pep,
            pdp_events: Vec::new(),
            pep_events: Vec::new(),
            from_pep: Vec::new(),
            from_pdp: Vec::new(),
            drop_from_pep: false,
            drop_from_pdp: false,
            pdp_closed: false,
            pep_closed: false,
        };
        w.pep.connected(base);
        w.pump();
        w
    }

    /// Connects and accepts.
    pub fn up(pdp: PdpConfig, pep: PepConfig, seed: u64) -> Wire {
        let mut w = Wire::connect(pdp, pep, seed);
        let ct = w.pep.config().client_type;
        w.pdp.accept(w.now, ct).unwrap();
        w.pump();
        assert!(w.pep.is_up());
        w.pdp_events.clear();
        w.pep_events.clear();
        w
    }

    pub fn at(&self) -> Duration {
        self.now - self.base
    }

    /// Moves bytes both ways until nothing moves; a side that closed closes the transport
    /// once its bytes are out.
    pub fn pump(&mut self) {
        loop {
            let mut moved = false;
            while let Some(b) = self.pdp.poll_transmit() {
                moved = true;
                self.from_pdp.push((self.at(), decode(&b)));
                if !self.drop_from_pdp && !self.pep_closed {
                    self.pep_rx.1.extend_from_slice(&b);
                }
            }
            while let Some(b) = self.pep.poll_transmit() {
                moved = true;
                self.from_pep.push((self.at(), decode(&b)));
                if !self.drop_from_pep && !self.pdp_closed {
                    self.pdp_rx.1.extend_from_slice(&b);
                }
            }
            moved |= self.deliver();
            while let Some(e) = self.pdp.poll_event() {
                moved = true;
                if matches!(e, PdpEvent::Closed(_)) && !self.pdp_closed {
                    self.pdp_closed = true;
                }
                self.pdp_events.push(e);
            }
            while let Some(e) = self.pep.poll_event() {
                moved = true;
                if matches!(e, PepEvent::Closed(_)) && !self.pep_closed {
                    self.pep_closed = true;
                }
                self.pep_events.push(e);
            }
            if !moved {
                break;
            }
        }
        // The closed side's bytes are out: the transport goes down for the other one.
        if self.pdp_closed {
            self.pep.transport_closed(self.now);
        }
        if self.pep_closed {
            self.pdp.transport_closed(self.now);
        }
        while let Some(e) = self.pdp.poll_event() {
            self.pdp_closed = true;
            self.pdp_events.push(e);
        }
        while let Some(e) = self.pep.poll_event() {
            self.pep_closed = true;
            self.pep_events.push(e);
        }
    }

    fn deliver(&mut self) -> bool {
        let mut any = false;
        let now = self.now;
        loop {
            match self.pdp_rx.0.decode(&mut self.pdp_rx.1) {
                Ok(Some(f)) => self.pdp.handle_frame(now, f),
                Ok(None) => break,
                Err(e) => {
                    self.pdp_rx.1.clear();
                    self.pdp.handle_framing_error(now, e);
                }
            }
            any = true;
        }
        loop {
            match self.pep_rx.0.decode(&mut self.pep_rx.1) {
                Ok(Some(f)) => self.pep.handle_frame(now, f),
                Ok(None) => break,
                Err(e) => {
                    self.pep_rx.1.clear();
                    self.pep.handle_framing_error(now, e);
                }
            }
            any = true;
        }
        any
    }

    /// Raw bytes to the PDP, as if the PEP had sent them.
    pub fn inject_to_pdp(&mut self, b: &[u8]) {
        self.pdp_rx.1.extend_from_slice(b);
        self.pump();
    }

    /// Raw bytes to the PEP, as if the PDP had sent them.
    pub fn inject_to_pep(&mut self, b: &[u8]) {
        self.pep_rx.1.extend_from_slice(b);
        self.pump();
    }

    /// Runs every timeout up to `now + d`.
    pub fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        loop {
            let next = [self.pdp.poll_timeout(), self.pep.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= target => {
                    self.now = self.now.max(t);
                    self.pdp.handle_timeout(self.now);
                    self.pep.handle_timeout(self.now);
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = target;
        self.pump();
    }

    pub fn pdp_closed(&self) -> Option<&PdpCloseReason> {
        self.pdp_events.iter().find_map(|e| match e {
            PdpEvent::Closed(r) => Some(r),
            _ => None,
        })
    }

    pub fn pep_closed(&self) -> Option<&PepCloseReason> {
        self.pep_events.iter().find_map(|e| match e {
            PepEvent::Closed(r) => Some(r),
            _ => None,
        })
    }

    pub fn take_pdp_events(&mut self) -> Vec<PdpEvent> {
        std::mem::take(&mut self.pdp_events)
    }

    pub fn take_pep_events(&mut self) -> Vec<PepEvent> {
        std::mem::take(&mut self.pep_events)
    }

    /// The CCs the PDP sent.
    pub fn pdp_ccs(&self) -> Vec<ClientClose> {
        self.from_pdp
            .iter()
            .filter_map(|(_, m)| match &m.body {
                Body::ClientClose(c) => Some(*c),
                _ => None,
            })
            .collect()
    }
}

pub fn decode(b: &Bytes) -> Message {
    // Integrity is checked by the receiving machine; this copy is for assertions only.
    Message::decode(b.clone()).expect("the machines send well-formed messages")
}

pub fn h(n: u32) -> Handle {
    Handle::from_u32(n)
}

fn addr(s: &str) -> PdpAddress {
    PdpAddress {
        address: s.parse().unwrap(),
        port: 3288,
    }
}

fn pr_instance(arcs: &[u32], values: Vec<EpdValue>) -> PrInstance {
    PrInstance {
        prid: Prid::new(arcs.to_vec()).unwrap(),
        epd: pr::Epd(values),
    }
}

#[test]
fn open_accept_keepalive_and_close() {
    let mut pep = pep_config();
    pep.client_si = Some(ClientSi::Named(Bytes::from_static(b"\x00\x04\x01\x01")));
    let conn = PepConnection::new(Arc::new(pep), 1).with_last_pdp_addr(addr("192.0.2.9"));
    let mut w = Wire::connect_at(Instant::now(), pdp_config(), conn, 1);
    assert_eq!(
        w.take_pdp_events(),
        vec![PdpEvent::Open {
            client_type: CT,
            pep_id: "erx-1.example".into(),
            last_pdp_addr: Some(addr("192.0.2.9")),
            client_si: Some(ClientSi::Named(Bytes::from_static(b"\x00\x04\x01\x01"))),
        }]
    );
    assert_eq!(w.pdp.state(), PdpState::WaitOpen);
    assert!(matches!(
        w.pdp.accept(w.now, 0x1234),
        Err(PdpError::NotPending(0x1234))
    ));
    w.pdp.accept(w.now, CT).unwrap();
    w.pump();
    assert_eq!(
        w.take_pep_events(),
        vec![PepEvent::Accepted {
            keepalive: Some(Duration::from_secs(45)),
            accounting_timer: Some(Duration::from_secs(30)),
        }]
    );
    assert_eq!(w.pdp.state(), PdpState::Open);
    assert_eq!(w.pdp.client_types().collect::<Vec<_>>(), vec![CT]);
    assert_eq!(w.pdp.pep_id(CT), Some("erx-1.example"));
    assert_eq!(w.pdp.keepalive(), Some(Duration::from_secs(45)));
    let cat = w.from_pdp.iter().find_map(|(_, m)| match m.body {
        Body::ClientAccept(c) => Some(c),
        _ => None,
    });
    assert_eq!(
        cat,
        Some(ClientAccept {
            ka_timer: 45,
            acct_timer: Some(30)
        })
    );
    // An hour of keep-alives: nobody closes, every KA is echoed.
    w.advance(Duration::from_secs(3600));
    assert!(w.pdp_closed().is_none() && w.pep_closed().is_none());
    let kas =
        |v: &[(Duration, Message)]| v.iter().filter(|(_, m)| m.body == Body::KeepAlive).count();
    assert!(kas(&w.from_pep) >= 3600 / 34, "{}", kas(&w.from_pep));
    assert_eq!(kas(&w.from_pep), kas(&w.from_pdp));
    assert!(
        w.from_pdp
            .iter()
            .filter(|(_, m)| m.body == Body::KeepAlive)
            .all(|(_, m)| m.solicited && m.client_type == 0)
    );
    // The PEP closes.
    w.pep
        .close(w.now, ErrorObject::new(ErrorCode::ShuttingDown));
    w.pump();
    assert_eq!(
        w.pdp_closed(),
        Some(&PdpCloseReason::PeerClosed {
            client_type: CT,
            error: ErrorObject::new(ErrorCode::ShuttingDown)
        })
    );
    assert_eq!(w.pdp.state(), PdpState::Closed);
    assert_eq!(w.pdp.poll_timeout(), None);
}

#[test]
fn no_keepalive_when_the_timer_is_zero() {
    let cfg = PdpConfig {
        ka_timer: 0,
        ..pdp_config()
    };
    let mut w = Wire::up(cfg, pep_config(), 3);
    assert_eq!(w.pdp.poll_timeout(), None);
    assert_eq!(w.pep.poll_timeout(), None);
    w.advance(Duration::from_secs(86_400));
    assert!(w.from_pep.iter().all(|(_, m)| m.body != Body::KeepAlive));
    assert!(w.pdp_closed().is_none());
}

#[test]
fn unsupported_client_type_is_refused_with_error_6() {
    let mut w = Wire::connect(pdp_config(), PepConfig::new(0x4242, "sbc-1"), 2);
    w.pdp
        .reject(w.now, 0x4242, ErrorCode::UnsupportedClientType, 0)
        .unwrap();
    w.pump();
    let refused = ErrorObject::new(ErrorCode::UnsupportedClientType);
    assert_eq!(
        w.pep_closed(),
        Some(&PepCloseReason::PdpClosed {
            error: refused,
            redirect: None
        })
    );
    assert_eq!(
        w.pdp_closed(),
        Some(&PdpCloseReason::LocalClose {
            error: refused,
            redirect: None
        })
    );
    assert_eq!(w.from_pdp.len(), 1);
    assert_eq!(w.from_pdp[0].1.client_type, 0x4242);
}

#[test]
fn pep_id_not_allowed_is_refused() {
    let mut w = Wire::connect(pdp_config(), PepConfig::new(CT, "intruder"), 2);
    let Some(PdpEvent::Open { pep_id, .. }) = w.pdp_events.first() else {
        panic!("{:?}", w.pdp_events)
    };
    assert_eq!(pep_id, "intruder");
    w.pdp
        .reject(w.now, CT, ErrorCode::AuthenticationFailure, 0)
        .unwrap();
    w.pump();
    assert!(matches!(
        w.pep_closed(),
        Some(PepCloseReason::PdpClosed { error, redirect: None })
            if error.code == ErrorCode::AuthenticationFailure
    ));
    assert!(matches!(
        w.pdp.reject(w.now, CT, ErrorCode::UnsupportedClientType, 0),
        Err(PdpError::Closed)
    ));
}

#[test]
fn redirect_carries_the_address_to_the_pep() {
    let mut w = Wire::connect(pdp_config(), pep_config(), 4);
    w.pdp.redirect(w.now, CT, addr("2001:db8::7")).unwrap();
    w.pump();
    assert_eq!(
        w.pep_closed(),
        Some(&PepCloseReason::PdpClosed {
            error: ErrorObject::new(ErrorCode::RedirectToPreferredServer),
            redirect: Some(addr("2001:db8::7")),
        })
    );
    assert!(matches!(
        w.pdp_closed(),
        Some(PdpCloseReason::LocalClose {
            redirect: Some(_),
            ..
        })
    ));
}

#[test]
fn no_opn_in_time_closes() {
    let cfg = PdpConfig {
        open_timeout: Duration::from_secs(5),
        ..pdp_config()
    };
    let base = Instant::now();
    let mut pdp = PdpConnection::new(Arc::new(cfg), base, 0);
    assert_eq!(pdp.poll_timeout(), Some(base + Duration::from_secs(5)));
    pdp.handle_timeout(base + Duration::from_secs(4));
    assert_eq!(pdp.poll_event(), None);
    pdp.handle_timeout(base + Duration::from_secs(5));
    assert_eq!(
        pdp.poll_event(),
        Some(PdpEvent::Closed(PdpCloseReason::OpenTimeout))
    );
    assert_eq!(pdp.poll_transmit(), None);
}

#[test]
fn pdp_closes_after_a_silent_keepalive_interval() {
    let mut w = Wire::up(pdp_config(), pep_config(), 5);
    w.advance(Duration::from_secs(100));
    assert!(w.pdp_closed().is_none());
    // The PEP goes silent (its KAs are lost) right after its last message.
    let last = w.from_pep.last().map(|(t, _)| *t).unwrap();
    w.drop_from_pep = true;
    w.advance(Duration::from_secs(100));
    assert_eq!(w.pdp_closed(), Some(&PdpCloseReason::KeepAliveTimeout));
    let (t, cc) = w
        .from_pdp
        .iter()
        .find_map(|(t, m)| match m.body {
            Body::ClientClose(c) => Some((*t, c)),
            _ => None,
        })
        .unwrap();
    assert_eq!(t, last + Duration::from_secs(45));
    assert_eq!(cc.error.code, ErrorCode::CommunicationFailure);
}

/// A bare PDP fed raw frames.
struct Bare {
    pdp: PdpConnection,
    dec: FrameDecoder,
}

impl Bare {
    fn new(cfg: PdpConfig, base: Instant) -> Bare {
        let pdp = PdpConnection::new(Arc::new(cfg), base, 1);
        Bare {
            dec: pdp.frame_decoder(),
            pdp,
        }
    }

    fn feed(&mut self, now: Instant, bytes: &[u8]) -> Vec<Message> {
        let mut buf = BytesMut::from(bytes);
        while let Some(f) = self.dec.decode(&mut buf).unwrap() {
            self.pdp.handle_frame(now, f);
        }
        std::iter::from_fn(|| self.pdp.poll_transmit())
            .map(|b| decode(&b))
            .collect()
    }
}

#[test]
fn any_message_counts_as_activity_for_the_pdp() {
    let base = Instant::now();
    let mut b = Bare::new(pdp_config(), base);
    b.feed(base, &msg(6, CT, &[pep_id("p")]));
    b.pdp.accept(base, CT).unwrap();
    let mut t = base;
    for i in 0..10u32 {
        t += Duration::from_secs(40);
        b.pdp.handle_timeout(t);
        b.feed(t, &msg(1, CT, &[handle(i), context(8, 0)]));
    }
    assert_eq!(b.pdp.state(), PdpState::Open);
    assert_eq!(b.pdp.poll_timeout(), Some(t + Duration::from_secs(45)));
    b.pdp.handle_timeout(t + Duration::from_secs(45));
    let cc = std::iter::from_fn(|| b.pdp.poll_transmit())
        .map(|m| decode(&m))
        .collect::<Vec<_>>();
    assert!(matches!(
        &cc[..],
        [Message { body: Body::ClientClose(c), client_type: CT, .. }]
            if c.error.code == ErrorCode::CommunicationFailure
    ));
}

#[test]
fn request_decision_report_round_trip_with_cops_pr_data() {
    let mut w = Wire::up(pdp_config(), pep_config(), 7);
    let si = encode_request_client_si(&RequestClientSi(vec![pr_instance(
        &[1, 3, 6, 1, 4, 1, 4874, 2, 2, 1, 1, 1],
        vec![
            EpdValue::OctetString(Bytes::from_static(b"ge-0/0/1.100")),
            EpdValue::Unsigned32(100),
        ],
    )]))
    .unwrap();
    w.pep
        .request(
            w.now,
            h(1),
            Context::configuration(),
            vec![ClientSi::Named(si.clone())],
        )
        .unwrap();
    w.pump();
    let ev = w.take_pdp_events();
    let [
        PdpEvent::Request {
            client_type: CT,
            handle,
            request,
            update: false,
        },
    ] = &ev[..]
    else {
        panic!("{ev:?}")
    };
    assert_eq!(handle, &h(1));
    assert!(w.pdp.is_installed(CT, &h(1)));
    let got = decode_request_client_si(request.client_si[0].data()).unwrap();
    assert_eq!(got.0[0].epd.0[1], EpdValue::Unsigned32(100));

    let install = InstallDecision(vec![pr_instance(
        &[1, 3, 6, 1, 4, 1, 4874, 2, 2, 2, 1, 7],
        vec![EpdValue::OctetString(Bytes::from_static(b"gold"))],
    )]);
    let named = encode_install_decision(&install).unwrap();
    let decision = Decision::new(
        Context::configuration(),
        DecisionFlags::new(Command::Install),
    )
    .with_named(named);
    w.pdp
        .send_decisions(w.now, CT, h(1), vec![decision.clone()], true)
        .unwrap();
    w.pump();
    let ev = w.take_pep_events();
    let [
        PepEvent::Decision {
            handle,
            decision: DecisionContent::Decisions(ds),
            solicited: true,
        },
    ] = &ev[..]
    else {
        panic!("{ev:?}")
    };
    assert_eq!(handle, &h(1));
    assert_eq!(ds, &vec![decision]);
    let named = ds[0].named.as_ref().unwrap();
    assert_eq!(decode_install_decision(named).unwrap(), install);

    w.pep
        .report(w.now, h(1), ReportType::Success, None, true)
        .unwrap();
    w.pump();
    assert_eq!(
        w.take_pdp_events(),
        vec![PdpEvent::Report {
            client_type: CT,
            handle: h(1),
            report_type: ReportType::Success,
            client_si: None,
            solicited: true,
        }]
    );
    // The same handle again is an update.
    w.pep
        .request(w.now, h(1), Context::configuration(), vec![])
        .unwrap();
    w.pump();
    assert!(matches!(
        &w.take_pdp_events()[..],
        [PdpEvent::Request { update: true, .. }]
    ));
    // DRQ.
    w.pep
        .delete(w.now, h(1), Reason::new(ReasonCode::Management))
        .unwrap();
    w.pump();
    assert_eq!(
        w.take_pdp_events(),
        vec![PdpEvent::Delete {
            client_type: CT,
            handle: h(1),
            reason: Reason::new(ReasonCode::Management),
        }]
    );
    assert!(!w.pdp.is_installed(CT, &h(1)));
    assert!(w.pep.handles().is_empty());
    // No decisions for a handle that is gone, nor for a client type not open.
    assert!(matches!(
        w.pdp.send_decision_error(
            w.now,
            CT,
            h(1),
            ErrorObject::new(ErrorCode::Unspecified),
            false
        ),
        Err(PdpError::UnknownHandle { .. })
    ));
    assert!(matches!(
        w.pdp.synchronize(w.now, 9, None),
        Err(PdpError::NotOpen(9))
    ));
}

#[test]
fn synchronize_lists_what_the_pep_did_not_resend() {
    let mut w = Wire::up(pdp_config(), pep_config(), 8);
    for i in 1..=3 {
        w.pep
            .request(w.now, h(i), Context::configuration(), vec![])
            .unwrap();
    }
    w.pump();
    w.take_pdp_events();
    w.pdp.synchronize(w.now, CT, None).unwrap();
    w.pump();
    assert_eq!(
        w.take_pep_events(),
        vec![PepEvent::SyncRequest { handle: None }]
    );
    // The PEP re-sends state for 1 (RPT) and 2 (REQ) but no longer holds 3.
    w.pep
        .report(w.now, h(1), ReportType::Success, None, true)
        .unwrap();
    w.pep
        .request(w.now, h(2), Context::configuration(), vec![])
        .unwrap();
    w.pep.sync_complete(w.now, None).unwrap();
    w.pump();
    let ev = w.take_pdp_events();
    assert!(matches!(ev[1], PdpEvent::Request { update: true, .. }));
    assert_eq!(
        ev[2],
        PdpEvent::SyncComplete {
            client_type: CT,
            handle: None,
            stale: vec![h(3)],
        }
    );
    let mut left: Vec<_> = w.pdp.handles(CT).unwrap().iter().cloned().collect();
    left.sort_by_key(|h| h.as_u32());
    assert_eq!(left, vec![h(1), h(2)]);
    // One handle only.
    w.pdp.synchronize(w.now, CT, Some(h(2))).unwrap();
    w.pep.sync_complete(w.now, Some(h(2))).unwrap();
    w.pump();
    assert!(matches!(
        &w.take_pdp_events()[..],
        [PdpEvent::SyncComplete { stale, handle: Some(_), .. }] if stale == &vec![h(2)]
    ));
    assert_eq!(w.pdp.handles(CT).unwrap().len(), 1);
}

#[test]
fn several_client_types_on_one_connection() {
    let mut w = Wire::up(pdp_config(), pep_config(), 9);
    // The second client type is played by hand; the PEP machine would refuse its CAT.
    w.drop_from_pdp = true;
    w.inject_to_pdp(&msg(6, SECOND_CT, &[pep_id("erx-1.example")]));
    assert!(matches!(
        &w.take_pdp_events()[..],
        [PdpEvent::Open {
            client_type: SECOND_CT,
            ..
        }]
    ));
    w.pdp.accept(w.now, SECOND_CT).unwrap();
    w.pump();
    let mut types: Vec<_> = w.pdp.client_types().collect();
    types.sort();
    assert_eq!(types, vec![SECOND_CT, CT]);
    // A REQ for the second one, then the PEP closes it: the first stays.
    w.inject_to_pdp(&msg(1, SECOND_CT, &[handle(5), context(1, 0)]));
    assert!(w.pdp.is_installed(SECOND_CT, &h(5)));
    assert!(!w.pdp.is_installed(CT, &h(5)));
    w.inject_to_pdp(&msg(8, SECOND_CT, &[crate::support::two_u16(8, 10, 0)]));
    assert!(matches!(
        &w.take_pdp_events()[..],
        [
            PdpEvent::Request { .. },
            PdpEvent::ClientClosed {
                client_type: SECOND_CT,
                ..
            }
        ]
    ));
    assert_eq!(w.pdp.client_types().collect::<Vec<_>>(), vec![CT]);
    assert!(w.pdp_closed().is_none());
    // The owner closes the whole connection: one CC per client type left.
    w.drop_from_pdp = false;
    w.from_pdp.clear();
    w.pdp.close(w.now, ErrorCode::ShuttingDown);
    w.pump();
    assert_eq!(w.pdp_ccs().len(), 1);
    assert!(matches!(
        w.pep_closed(),
        Some(PepCloseReason::PdpClosed { error, .. }) if error.code == ErrorCode::ShuttingDown
    ));
}

#[test]
fn accept_with_state_taken_over_from_a_previous_connection() {
    let mut w = Wire::connect(pdp_config(), pep_config(), 22);
    let previous: std::collections::HashSet<Handle> = [h(1), h(2)].into_iter().collect();
    w.pdp.accept_with_state(w.now, CT, previous).unwrap();
    w.pump();
    assert!(w.pep.is_up());
    assert!(w.pdp.is_installed(CT, &h(1)));
    // The PEP re-sends state 1: an update. An RPT for 2 is for a known handle.
    w.pep
        .request(w.now, h(1), Context::configuration(), vec![])
        .unwrap();
    w.pump();
    assert!(matches!(
        &w.take_pdp_events()[..],
        [
            PdpEvent::Open { .. },
            PdpEvent::Request { update: true, .. }
        ]
    ));
    w.pdp.synchronize(w.now, CT, None).unwrap();
    w.pep.sync_complete(w.now, None).unwrap();
    w.pump();
    assert!(matches!(
        &w.take_pdp_events()[..],
        [PdpEvent::SyncComplete { stale, .. }] if stale.len() == 2
    ));
}

#[test]
fn request_limit_answers_dec_error_4() {
    let cfg = PdpConfig {
        max_handles: 2,
        ..pdp_config()
    };
    let mut w = Wire::up(cfg, pep_config(), 10);
    for i in 1..=3 {
        w.pep
            .request(w.now, h(i), Context::configuration(), vec![])
            .unwrap();
    }
    w.pump();
    let ev = w.take_pep_events();
    assert_eq!(
        ev,
        vec![PepEvent::Decision {
            handle: h(3),
            decision: DecisionContent::Error(ErrorObject::new(ErrorCode::UnableToProcess)),
            solicited: true,
        }]
    );
    assert_eq!(w.pdp.handles(CT).unwrap().len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------------

fn last_pdp_message(w: &Wire) -> &Message {
    &w.from_pdp.last().unwrap().1
}

#[test]
fn decision_object_in_an_opn_is_refused_with_cc_3() {
    // The first OPN carries a Decision object.
    let base = Instant::now();
    let mut b = Bare::new(pdp_config(), base);
    let out = b.feed(base, &msg(6, CT, &[pep_id("x"), decision_flags(1, 0)]));
    let [cc] = &out[..] else { panic!("{out:?}") };
    assert_eq!(cc.client_type, CT);
    assert!(matches!(
        cc.body,
        Body::ClientClose(ClientClose { error, redirect: None })
            if error == ErrorObject::new(ErrorCode::BadMessageFormat)
    ));
    assert!(matches!(
        b.pdp.poll_event(),
        Some(PdpEvent::Closed(PdpCloseReason::ProtocolError { .. }))
    ));
}

#[test]
fn unknown_object_in_a_request_gets_dec_error_13_and_the_connection_stays() {
    let mut w = Wire::up(pdp_config(), pep_config(), 12);
    w.inject_to_pdp(&msg(
        1,
        CT,
        &[handle(7), context(8, 0), obj(99, 3, &[1, 2, 3, 4])],
    ));
    assert_eq!(
        last_pdp_message(&w).body,
        Body::Decision(DecisionMessage {
            handle: h(7),
            content: DecisionContent::Error(ErrorObject::unknown_object(99, 3)),
        })
    );
    assert!(last_pdp_message(&w).solicited);
    assert!(matches!(
        &w.take_pdp_events()[..],
        [PdpEvent::Invalid { handle: Some(_), error, .. }] if error.sub_code == 0x6303
    ));
    assert!(!w.pdp.is_installed(CT, &h(7)));
    assert_eq!(w.pdp.state(), PdpState::Open);
    // The PEP machine got the DEC for a handle it never requested: passed on as is.
    assert!(matches!(
        &w.take_pep_events()[..],
        [PepEvent::Decision {
            decision: DecisionContent::Error(_),
            ..
        }]
    ));
}

#[test]
fn unknown_object_in_an_opn_gets_cc_13() {
    let mut w = Wire::connect(pdp_config(), pep_config(), 13);
    w.pdp.accept(w.now, CT).unwrap();
    w.pump();
    w.inject_to_pdp(&msg(6, SECOND_CT, &[pep_id("x"), obj(77, 1, &[0; 4])]));
    let m = last_pdp_message(&w);
    assert_eq!(m.client_type, SECOND_CT);
    assert_eq!(
        m.body,
        Body::ClientClose(ClientClose {
            error: ErrorObject::unknown_object(77, 1),
            redirect: None
        })
    );
    // The client type already open is not affected.
    assert!(w.pdp_closed().is_none());
    assert_eq!(w.pdp.client_types().collect::<Vec<_>>(), vec![CT]);
}

#[test]
fn missing_handle_and_unknown_handles() {
    let mut w = Wire::up(pdp_config(), pep_config(), 14);
    // RPT for a handle never requested: DEC Error 2.
    w.inject_to_pdp(&msg(
        3,
        CT,
        &[handle(40), crate::support::two_u16(12, 1, 0)],
    ));
    assert_eq!(
        last_pdp_message(&w).body,
        Body::Decision(DecisionMessage {
            handle: h(40),
            content: DecisionContent::Error(ErrorObject::new(ErrorCode::InvalidHandleReference)),
        })
    );
    // DRQ for an unknown handle: nothing to answer, reported to the owner.
    let sent = w.from_pdp.len();
    w.inject_to_pdp(&msg(4, CT, &[handle(41), crate::support::two_u16(5, 4, 0)]));
    assert_eq!(w.from_pdp.len(), sent);
    assert!(matches!(
        w.pdp_events.last(),
        Some(PdpEvent::Invalid { error, .. }) if error.code == ErrorCode::InvalidHandleReference
    ));
    // A REQ without its Handle cannot be answered per handle: CC 7 and the connection ends.
    w.inject_to_pdp(&msg(1, CT, &[context(1, 0)]));
    assert_eq!(
        w.pdp_ccs().last().map(|c| c.error.code),
        Some(ErrorCode::MandatoryObjectMissing)
    );
    assert!(matches!(
        w.pdp_closed(),
        Some(PdpCloseReason::ProtocolError { .. })
    ));
}

#[test]
fn messages_for_a_client_type_not_open_and_pdp_only_messages() {
    let mut w = Wire::up(pdp_config(), pep_config(), 15);
    // A REQ before OPN for its client type, with another one open: CC 6 for it, rest stays.
    w.inject_to_pdp(&msg(1, SECOND_CT, &[handle(1), context(1, 0)]));
    let cc = w.pdp_ccs();
    assert_eq!(
        cc.last().unwrap().error.code,
        ErrorCode::UnsupportedClientType
    );
    assert!(w.pdp_closed().is_none());
    // A DEC from the PEP is a protocol error.
    w.inject_to_pdp(&msg(
        2,
        CT,
        &[handle(1), context(1, 0), decision_flags(1, 0)],
    ));
    assert!(matches!(
        w.pdp_closed(),
        Some(PdpCloseReason::ProtocolError { error, .. }) if error.code == ErrorCode::BadMessageFormat
    ));
}

#[test]
fn unframeable_bytes_get_cc_and_close() {
    let mut w = Wire::up(pdp_config(), pep_config(), 16);
    // Version 2.
    w.inject_to_pdp(&[0x20, 9, 0, 0, 0, 0, 0, 8]);
    assert_eq!(
        w.pdp_ccs().last().map(|c| c.error.code),
        Some(ErrorCode::BadMessageFormat)
    );
    assert!(matches!(
        w.pdp_closed(),
        Some(PdpCloseReason::ProtocolError { .. })
    ));
    assert!(matches!(
        w.pep_closed(),
        Some(PepCloseReason::PdpClosed { .. })
    ));
}

#[test]
fn second_opn_for_an_open_client_type_is_a_protocol_error() {
    let mut w = Wire::up(pdp_config(), pep_config(), 17);
    w.inject_to_pdp(&msg(6, CT, &[pep_id("again")]));
    assert!(matches!(
        w.pdp_closed(),
        Some(PdpCloseReason::ProtocolError { .. })
    ));
}

#[test]
fn integrity_end_to_end_and_failures() {
    let keys = KeyTable::new().with(3, &b"shared secret"[..]);
    let integrity = IntegrityConfig::new(keys.clone(), 3, true).unwrap();
    assert!(IntegrityConfig::new(keys, 4, true).is_err());
    let pdp = PdpConfig {
        integrity: Some(integrity.clone()),
        ..pdp_config()
    };
    let mut pep = pep_config();
    pep.integrity = Some(integrity);
    let mut w = Wire::up(pdp.clone(), pep.clone(), 18);
    assert!(w.from_pep.iter().all(|(_, m)| m.integrity.is_some()));
    assert!(w.from_pdp.iter().all(|(_, m)| m.integrity.is_some()));
    w.pep
        .request(w.now, h(1), Context::configuration(), vec![])
        .unwrap();
    w.advance(Duration::from_secs(300));
    assert!(w.pdp.is_installed(CT, &h(1)));
    assert!(w.pdp_closed().is_none() && w.pep_closed().is_none());
    // A PEP without integrity facing a PDP that requires it: CC 15.
    let mut w = Wire::connect(pdp.clone(), pep_config(), 19);
    assert_eq!(
        w.pdp_ccs().last().map(|c| c.error.code),
        Some(ErrorCode::AuthenticationRequired)
    );
    assert!(w.pdp_closed().is_some());
    assert!(
        w.take_pdp_events()
            .iter()
            .all(|e| !matches!(e, PdpEvent::Open { .. }))
    );
    // A PEP with another key under the same id: CC 14.
    let mut bad = pep_config();
    bad.integrity =
        Some(IntegrityConfig::new(KeyTable::new().with(3, &b"wrong"[..]), 3, true).unwrap());
    let w = Wire::connect(pdp, bad, 20);
    assert_eq!(
        w.pdp_ccs().last().map(|c| c.error.code),
        Some(ErrorCode::AuthenticationFailure)
    );
}

#[test]
fn actions_after_close_fail_cleanly() {
    let mut w = Wire::up(pdp_config(), pep_config(), 21);
    w.pdp.close(w.now, ErrorCode::ShuttingDown);
    w.pump();
    assert!(matches!(w.pdp.accept(w.now, CT), Err(PdpError::Closed)));
    assert!(matches!(
        w.pdp.synchronize(w.now, CT, None),
        Err(PdpError::Closed)
    ));
    let n = w.from_pdp.len();
    w.pdp.close(w.now, ErrorCode::ShuttingDown);
    w.pdp.handle_timeout(w.now + Duration::from_secs(1000));
    w.pump();
    assert_eq!(w.from_pdp.len(), n);
    assert_eq!(
        w.pdp_events
            .iter()
            .filter(|e| matches!(e, PdpEvent::Closed(_)))
            .count(),
        1
    );
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_pdp(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
        accept in any::<bool>(),
    ) {
        let base = Instant::now();
        let mut pdp = PdpConnection::new(Arc::new(pdp_config()), base, 0);
        let mut dec = pdp.frame_decoder();
        let mut buf = BytesMut::new();
        // Sometimes start from an open connection.
        if accept {
            buf.extend_from_slice(&msg(6, CT, &[pep_id("p")]));
        }
        let mut t = base;
        let mut first = true;
        for c in chunks {
            buf.extend_from_slice(&c);
            loop {
                match dec.decode(&mut buf) {
                    Ok(Some(f)) => pdp.handle_frame(t, f),
                    Ok(None) => break,
                    Err(e) => {
                        pdp.handle_framing_error(t, e);
                        buf.clear();
                        break;
                    }
                }
                if first && accept {
                    first = false;
                    let _ = pdp.accept(t, CT);
                }
            }
            while pdp.poll_transmit().is_some() {}
            while pdp.poll_event().is_some() {}
            t += Duration::from_secs(20);
            pdp.handle_timeout(t);
        }
    }
}
