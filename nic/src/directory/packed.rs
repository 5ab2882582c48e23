//! A stored binding's text, addresses and prefixes packed into one allocation.
//!
//! A directory holds a million bindings or more; a binding kept as a [`Binding`] costs a dozen
//! allocations (each string, each list) and some 300 bytes of fixed fields before any text.
//! Packed, it is one boxed byte string: each text field as a tag (LEB128) and its bytes, then
//! the addresses and the prefixes, each list with its count first. A tag is 0 for an absent
//! field, 1 for a field equal to an earlier one (whose number follows: an accounting id that is
//! the login name, a VR on the session's own router, is stored once), and the length plus 2
//! for text. Fields are read in place, without copying.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::{Attributes, Binding, NodeId, SessionKey};
use crate::reference::Vr;

// The text fields, in packing order.
pub(super) const ROUTER: usize = 0;
pub(super) const SESSION_ID: usize = 1;
pub(super) const LOGIN: usize = 2;
pub(super) const PRIMARY: usize = 3;
pub(super) const DN: usize = 4;
pub(super) const INTERFACE: usize = 5;
pub(super) const ACCOUNTING: usize = 6;
pub(super) const VR_NAME: usize = 7;
pub(super) const VR_ROUTER: usize = 8;
const FIELDS: usize = 9;

fn put_len(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Reads a length at `*at`; packed bytes are only ever made by [`pack`], so they are well
/// formed, but a short read still ends cleanly (as zero) rather than panicking.
fn get_len(bytes: &[u8], at: &mut usize) -> usize {
    let mut n = 0usize;
    let mut shift = 0;
    while let Some(&byte) = bytes.get(*at) {
        *at += 1;
        n |= usize::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    n
}

const ABSENT: usize = 0;
const SAME_AS: usize = 1;
const TEXT: usize = 2;

/// Packs the text fields in order: each literal, or a reference to an earlier equal one.
fn put_texts(out: &mut Vec<u8>, fields: &[Option<&str>; FIELDS]) {
    for (i, field) in fields.iter().enumerate() {
        let Some(text) = field else {
            put_len(out, ABSENT);
            continue;
        };
        if let Some(earlier) = fields[..i].iter().position(|f| f == field) {
            put_len(out, SAME_AS);
            put_len(out, earlier);
            continue;
        }
        put_len(out, text.len() + TEXT);
        out.extend_from_slice(text.as_bytes());
    }
}

fn put_addr(out: &mut Vec<u8>, addr: &IpAddr) {
    match addr {
        IpAddr::V4(a) => {
            out.push(4);
            out.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            out.push(6);
            out.extend_from_slice(&a.octets());
        }
    }
}

fn get_addr(bytes: &[u8], at: &mut usize) -> Option<IpAddr> {
    let tag = *bytes.get(*at)?;
    let len = if tag == 4 { 4 } else { 16 };
    let raw = bytes.get(*at + 1..*at + 1 + len)?;
    *at += 1 + len;
    Some(if tag == 4 {
        IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(raw).ok()?))
    } else {
        IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(raw).ok()?))
    })
}

/// Packs a session's key and attributes.
pub(super) fn pack(session: &SessionKey, a: &Attributes) -> Box<[u8]> {
    let fields = [
        Some(session.router.as_str()),
        Some(session.session_id.as_str()),
        a.login_name.as_deref(),
        a.primary_user_name.as_deref(),
        a.dn.as_deref(),
        a.interface_name.as_deref(),
        a.accounting_id.as_deref(),
        a.vr.as_ref().map(|vr| vr.name.as_str()),
        a.vr.as_ref().map(|vr| vr.router.as_str()),
    ];
    let text_len: usize = fields.iter().map(|t| t.map_or(1, |t| t.len() + 2)).sum();
    let mut out = Vec::with_capacity(text_len + 2 + 17 * a.addresses.len() + 18 * a.prefixes.len());
    put_texts(&mut out, &fields);
    put_len(&mut out, a.addresses.len());
    for addr in &a.addresses {
        put_addr(&mut out, addr);
    }
    put_len(&mut out, a.prefixes.len());
    for net in &a.prefixes {
        put_addr(&mut out, &net.addr());
        out.push(net.prefix_len());
    }
    // Copied out at its exact size: shrinking in place would leave the allocator a fragment.
    Box::from(out.as_slice())
}

/// A stored binding, read in place.
#[derive(Debug, Clone, Copy)]
pub struct BindingRef<'a> {
    packed: &'a [u8],
    pub node: NodeId,
    pub epoch: u64,
}

impl<'a> BindingRef<'a> {
    pub(super) fn new(packed: &'a [u8], node: NodeId, epoch: u64) -> Self {
        BindingRef {
            packed,
            node,
            epoch,
        }
    }

    /// The bytes of text field `which` (`None`: absent), and the offset past the field.
    fn span(&self, which: usize) -> (Option<&'a [u8]>, usize) {
        let packed = self.packed;
        let mut at = 0;
        for field in 0..FIELDS {
            let found = match get_len(packed, &mut at) {
                ABSENT => None,
                SAME_AS => {
                    let earlier = get_len(packed, &mut at);
                    if field == which && earlier < field {
                        self.span(earlier).0
                    } else {
                        None
                    }
                }
                tag => {
                    let start = at.min(packed.len());
                    at = (at + tag - TEXT).min(packed.len());
                    Some(&packed[start..at])
                }
            };
            if field == which {
                return (found, at);
            }
        }
        (None, at)
    }

    /// The bytes of text field `which`, for the indexes (which hash and compare bytes).
    pub(super) fn raw(&self, which: usize) -> Option<&'a [u8]> {
        self.span(which).0
    }

    fn text(&self, which: usize) -> Option<&'a str> {
        std::str::from_utf8(self.raw(which)?).ok()
    }

    /// Lower case.
    pub fn router(&self) -> &'a str {
        self.text(ROUTER).unwrap_or_default()
    }

    pub fn session_id(&self) -> &'a str {
        self.text(SESSION_ID).unwrap_or_default()
    }

    pub fn login_name(&self) -> Option<&'a str> {
        self.text(LOGIN)
    }

    pub fn primary_user_name(&self) -> Option<&'a str> {
        self.text(PRIMARY)
    }

    pub fn dn(&self) -> Option<&'a str> {
        self.text(DN)
    }

    pub fn interface_name(&self) -> Option<&'a str> {
        self.text(INTERFACE)
    }

    pub fn accounting_id(&self) -> Option<&'a str> {
        self.text(ACCOUNTING)
    }

    /// The virtual router's name and router, when the session names one.
    pub fn vr_parts(&self) -> Option<(&'a str, &'a str)> {
        Some((self.text(VR_NAME)?, self.text(VR_ROUTER)?))
    }

    pub fn vr(&self) -> Option<Vr> {
        self.vr_parts().map(|(name, router)| Vr {
            name: name.to_owned(),
            router: router.to_owned(),
        })
    }

    fn lists_start(&self) -> usize {
        self.span(FIELDS - 1).1
    }

    /// The assigned addresses.
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> + 'a {
        let packed = self.packed;
        let mut at = self.lists_start();
        let count = get_len(packed, &mut at);
        (0..count).map_while(move |_| get_addr(packed, &mut at))
    }

    /// The framed and delegated prefixes.
    pub fn prefixes(&self) -> impl Iterator<Item = IpNet> + 'a {
        let packed = self.packed;
        let mut at = self.lists_start();
        let addresses = get_len(packed, &mut at);
        for _ in 0..addresses {
            if get_addr(packed, &mut at).is_none() {
                break;
            }
        }
        let count = get_len(packed, &mut at);
        (0..count).map_while(move |_| {
            let addr = get_addr(packed, &mut at)?;
            let len = *packed.get(at)?;
            at += 1;
            IpNet::new(addr, len).ok()
        })
    }

    pub fn session(&self) -> SessionKey {
        SessionKey {
            router: self.router().to_owned(),
            session_id: self.session_id().to_owned(),
        }
    }

    pub fn attributes(&self) -> Attributes {
        let owned = |t: Option<&str>| t.map(str::to_owned);
        Attributes {
            addresses: self.addresses().collect(),
            prefixes: self.prefixes().collect(),
            login_name: owned(self.login_name()),
            primary_user_name: owned(self.primary_user_name()),
            dn: owned(self.dn()),
            interface_name: owned(self.interface_name()),
            vr: self.vr(),
            accounting_id: owned(self.accounting_id()),
        }
    }

    /// The binding as published.
    pub fn to_binding(&self) -> Binding {
        Binding {
            session: self.session(),
            node: self.node,
            epoch: self.epoch,
            attributes: self.attributes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(session: SessionKey, a: Attributes) {
        let packed = pack(&session, &a);
        let b = BindingRef::new(&packed, 3, 9).to_binding();
        assert_eq!(b.session, session);
        assert_eq!(b.attributes, a);
        assert_eq!((b.node, b.epoch), (3, 9));
    }

    #[test]
    fn every_field_comes_back() {
        round_trip(
            SessionKey::new("bng1.example.net", "bng1.example.net;1;2"),
            Attributes {
                addresses: vec!["10.0.0.5".parse().unwrap(), "2001:db8::5".parse().unwrap()],
                prefixes: vec!["2001:db8:1::/48".parse().unwrap()],
                login_name: Some("alice@isp.example".into()),
                primary_user_name: Some("alice".into()),
                dn: Some("uniqueID=alice,ou=isp.example,o=users".into()),
                interface_name: Some("ge-0/0/1.100".into()),
                vr: Some(Vr::new("cust1", "bng2")),
                accounting_id: Some("acct-1".into()),
            },
        );
        round_trip(SessionKey::new("r", ""), Attributes::default());
        let mut same_router = Attributes {
            vr: Some(Vr::default_of("bng1")),
            ..Attributes::default()
        };
        round_trip(SessionKey::new("bng1", "s"), same_router.clone());
        same_router.login_name = Some("x".repeat(70_000));
        round_trip(SessionKey::new("bng1", "s"), same_router);
    }

    #[test]
    fn a_field_equal_to_an_earlier_one_is_stored_once() {
        let session = SessionKey::new("bng1", "s1");
        let mut a = Attributes {
            login_name: Some("alice@isp.example".into()),
            accounting_id: Some("alice@isp.example".into()),
            ..Attributes::default()
        };
        let shared = pack(&session, &a).len();
        round_trip(session.clone(), a.clone());
        a.accounting_id = Some("alice@isp.exampl3".into());
        assert_eq!(pack(&session, &a).len(), shared + 17 + 1 - 2);
        round_trip(session, a);
    }

    proptest! {
        #[test]
        fn any_binding_round_trips(
            router in "[a-z0-9.]{0,40}",
            id in "\\PC{0,60}",
            login in proptest::option::of("\\PC{0,300}"),
            dn in proptest::option::of("\\PC{0,80}"),
            v4 in proptest::collection::vec(any::<u32>(), 0..4),
            v6 in proptest::collection::vec((any::<u128>(), 0u8..=128), 0..3),
            vr in proptest::option::of(("[a-z]{1,8}", "[a-z0-9.]{0,12}")),
        ) {
            let a = Attributes {
                addresses: v4.iter().map(|a| IpAddr::V4(Ipv4Addr::from(*a))).collect(),
                prefixes: v6
                    .iter()
                    .map(|(a, len)| IpNet::new(IpAddr::V6(Ipv6Addr::from(*a)), *len).unwrap())
                    .collect(),
                login_name: login,
                dn,
                vr: vr.map(|(name, r)| Vr::new(name, if r.is_empty() { router.clone() } else { r })),
                ..Attributes::default()
            };
            round_trip(SessionKey::new(router, id), a);
        }
    }
}
