//! Helpers shared by the unit tests of the COPS PEP roles: a PEP connection brought up by a CAT,
//! and the messages it wrote.

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use sae_cops::message::{Body, ClientAccept, Message};
use sae_cops::pep::{PepConfig, PepConnection};
use sae_cops::{Frame, FrameDecoder};

/// A PEP of `client_type` that sent OPN and got a CAT with these timers; its OPN is drained.
pub fn up_pep(
    t0: Instant,
    client_type: u16,
    pep_id: &str,
    ka_timer: u16,
    acct_timer: Option<u16>,
) -> PepConnection {
    let mut pep = PepConnection::new(Arc::new(PepConfig::new(client_type, pep_id)), 1);
    pep.connected(t0);
    let cat = Message::new(
        client_type,
        Body::ClientAccept(ClientAccept {
            ka_timer,
            acct_timer,
        }),
    );
    pep.handle_frame(t0, Frame::Message(cat));
    assert!(pep.is_up());
    while pep.poll_event().is_some() {}
    sent(&mut pep);
    pep
}

/// Messages the PEP wrote since the last call.
pub fn sent(pep: &mut PepConnection) -> Vec<Message> {
    let mut buf = BytesMut::new();
    while let Some(b) = pep.poll_transmit() {
        buf.extend_from_slice(&b);
    }
    let mut dec = FrameDecoder::default();
    let mut out = Vec::new();
    while let Some(Frame::Message(m)) = dec.decode(&mut buf).unwrap() {
        out.push(m);
    }
    out
}
