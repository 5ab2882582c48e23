//! COPS objects (RFC 2748 section 2.2): the 4-octet object header and every C-Num / C-Type.
//!
//! Decoding shares the message buffer: opaque payloads (Handle, ClientSI, Decision data,
//! Integrity digest) are `Bytes` slices of it. An object with a C-Num or C-Type this module
//! does not know decodes as [`Object::Unknown`], so the caller can answer Error 13.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::DecodeError;

/// Object header length.
pub const OBJECT_HEADER_LEN: usize = 4;
/// Largest value of the 16-bit object Length field.
pub const MAX_OBJECT_LEN: usize = u16::MAX as usize;

/// Rounds `n` up to a multiple of 4.
pub const fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

/// C-Num values (RFC 2748 section 2.2).
pub mod c_num {
    pub const HANDLE: u8 = 1;
    pub const CONTEXT: u8 = 2;
    pub const IN_INTERFACE: u8 = 3;
    pub const OUT_INTERFACE: u8 = 4;
    pub const REASON: u8 = 5;
    pub const DECISION: u8 = 6;
    pub const LPDP_DECISION: u8 = 7;
    pub const ERROR: u8 = 8;
    pub const CLIENT_SI: u8 = 9;
    pub const KA_TIMER: u8 = 10;
    pub const PEP_ID: u8 = 11;
    pub const REPORT_TYPE: u8 = 12;
    pub const PDP_REDIRECT: u8 = 13;
    pub const LAST_PDP_ADDR: u8 = 14;
    pub const ACCT_TIMER: u8 = 15;
    pub const INTEGRITY: u8 = 16;
}

/// An object as it is on the wire: C-Num, C-Type and the data without padding.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawObject {
    pub c_num: u8,
    pub c_type: u8,
    pub data: Bytes,
}

impl RawObject {
    /// Length on the wire including padding.
    pub fn encoded_len(&self) -> usize {
        pad4(OBJECT_HEADER_LEN + self.data.len())
    }
}

/// Splits the objects out of `body` (the octets after the common header). `base` is the
/// offset of `body` in the message, for error reports.
pub fn split_objects(body: &Bytes, base: usize) -> Objects {
    Objects {
        body: body.clone(),
        pos: 0,
        base,
    }
}

/// Iterator over the raw objects of a message body; stops after the first error.
#[derive(Debug, Clone)]
pub struct Objects {
    body: Bytes,
    pos: usize,
    base: usize,
}

impl Iterator for Objects {
    /// The object and its offset in the message.
    type Item = Result<(usize, RawObject), DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.body.len() - self.pos;
        if rest == 0 {
            return None;
        }
        let offset = self.base + self.pos;
        if rest < OBJECT_HEADER_LEN {
            self.pos = self.body.len();
            return Some(Err(DecodeError::TruncatedObject {
                offset,
                available: rest,
            }));
        }
        let b = &self.body[self.pos..];
        let length = u16::from_be_bytes([b[0], b[1]]) as usize;
        let (c_num, c_type) = (b[2], b[3]);
        if length < OBJECT_HEADER_LEN || pad4(length) > rest {
            self.pos = self.body.len();
            return Some(Err(DecodeError::InvalidObjectLength {
                c_num,
                c_type,
                length,
                offset,
            }));
        }
        let data = self
            .body
            .slice(self.pos + OBJECT_HEADER_LEN..self.pos + length);
        self.pos += pad4(length);
        Some(Ok((
            offset,
            RawObject {
                c_num,
                c_type,
                data,
            },
        )))
    }
}

/// Client Handle (C-Num 1, C-Type 1): opaque, unique per client type on a connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Handle(pub Bytes);

impl Handle {
    /// A 4-octet handle from a number, the usual choice of PEPs.
    pub fn from_u32(v: u32) -> Self {
        Handle(Bytes::copy_from_slice(&v.to_be_bytes()))
    }
    /// The handle as a number when it has 4 octets.
    pub fn as_u32(&self) -> Option<u32> {
        <[u8; 4]>::try_from(&self.0[..])
            .ok()
            .map(u32::from_be_bytes)
    }
}

/// R-Type flags of the Context object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RType(pub u16);

impl RType {
    /// Incoming-Message / Admission Control request.
    pub const INCOMING: RType = RType(0x01);
    /// Resource-Allocation request.
    pub const RESOURCE_ALLOCATION: RType = RType(0x02);
    /// Outgoing-Message request.
    pub const OUTGOING: RType = RType(0x04);
    /// Configuration request.
    pub const CONFIGURATION: RType = RType(0x08);

    /// Are all bits of `other` set?
    pub const fn contains(self, other: RType) -> bool {
        self.0 & other.0 == other.0
    }
}

/// Context (C-Num 2, C-Type 1): request type flags and a client-specific message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Context {
    pub r_type: RType,
    pub m_type: u16,
}

impl Context {
    /// A configuration request context (the COPS-PR provisioning case).
    pub const fn configuration() -> Self {
        Context {
            r_type: RType::CONFIGURATION,
            m_type: 0,
        }
    }
}

/// In-Interface / Out-Interface (C-Num 3/4; C-Type 1 IPv4, 2 IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interface {
    pub address: IpAddr,
    pub if_index: u32,
}

macro_rules! code_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $val:expr),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $var,)+
            /// A value RFC 2748 does not define.
            Other(u16),
        }
        impl From<u16> for $name {
            fn from(v: u16) -> Self {
                match v {
                    $($val => $name::$var,)+
                    v => $name::Other(v),
                }
            }
        }
        impl From<$name> for u16 {
            fn from(c: $name) -> u16 {
                match c {
                    $($name::$var => $val,)+
                    $name::Other(v) => v,
                }
            }
        }
    };
}

code_enum! {
    /// Reason-Code of the Reason object (RFC 2748 section 2.2.5).
    ReasonCode {
        Unspecified = 1,
        Management = 2,
        Preempted = 3,
        Tear = 4,
        Timeout = 5,
        RouteChange = 6,
        InsufficientResources = 7,
        PdpDirective = 8,
        UnsupportedDecision = 9,
        SynchronizeHandleUnknown = 10,
        TransientHandle = 11,
        MalformedDecision = 12,
        /// Sub-code: C-Num in the high octet, C-Type in the low one.
        UnknownObject = 13,
    }
}

code_enum! {
    /// Error-Code of the Error object (RFC 2748 section 2.2.8).
    ErrorCode {
        BadHandle = 1,
        InvalidHandleReference = 2,
        BadMessageFormat = 3,
        UnableToProcess = 4,
        MandatoryClientSpecificInfoMissing = 5,
        UnsupportedClientType = 6,
        MandatoryObjectMissing = 7,
        ClientFailure = 8,
        CommunicationFailure = 9,
        Unspecified = 10,
        ShuttingDown = 11,
        RedirectToPreferredServer = 12,
        /// Sub-code: C-Num in the high octet, C-Type in the low one.
        UnknownObject = 13,
        AuthenticationFailure = 14,
        AuthenticationRequired = 15,
    }
}

code_enum! {
    /// Report-Type (RFC 2748 section 2.2.12).
    ReportType {
        Success = 1,
        Failure = 2,
        Accounting = 3,
    }
}

/// Reason (C-Num 5, C-Type 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Reason {
    pub code: ReasonCode,
    pub sub_code: u16,
}

impl Reason {
    /// A reason with sub-code 0.
    pub const fn new(code: ReasonCode) -> Self {
        Reason { code, sub_code: 0 }
    }
}

/// Error (C-Num 8, C-Type 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorObject {
    pub code: ErrorCode,
    pub sub_code: u16,
}

impl ErrorObject {
    /// An error with sub-code 0.
    pub const fn new(code: ErrorCode) -> Self {
        ErrorObject { code, sub_code: 0 }
    }
    /// Error 13 for an object with this C-Num and C-Type.
    pub const fn unknown_object(c_num: u8, c_type: u8) -> Self {
        ErrorObject {
            code: ErrorCode::UnknownObject,
            sub_code: (c_num as u16) << 8 | c_type as u16,
        }
    }
}

/// Command-Code of the Decision Flags object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// No configuration data available.
    Null = 0,
    /// Admit request / install configuration.
    Install = 1,
    /// Remove request / remove configuration.
    Remove = 2,
}

/// Decision Flags (C-Type 1 of Decision and LPDP Decision).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DecisionFlags {
    pub command: Command,
    /// The Flags field; [`DecisionFlags::TRIGGER_ERROR`] is the only one defined.
    pub flags: u16,
}

impl DecisionFlags {
    /// Trigger an error message if set.
    pub const TRIGGER_ERROR: u16 = 0x0001;

    /// Flags with no flag bit set.
    pub const fn new(command: Command) -> Self {
        DecisionFlags { command, flags: 0 }
    }
    /// Is Trigger-Error set?
    pub const fn trigger_error(self) -> bool {
        self.flags & Self::TRIGGER_ERROR != 0
    }
}

/// One Decision or LPDP Decision object, by C-Type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DecisionObject {
    /// C-Type 1.
    Flags(DecisionFlags),
    /// C-Type 2: stateless policy data.
    Stateless(Bytes),
    /// C-Type 3: replacement data.
    Replacement(Bytes),
    /// C-Type 4: client-specific decision data.
    ClientSpecific(Bytes),
    /// C-Type 5: named decision data (COPS-PR: PRID/EPD sub-objects).
    Named(Bytes),
}

impl DecisionObject {
    /// The C-Type.
    pub fn c_type(&self) -> u8 {
        match self {
            DecisionObject::Flags(_) => 1,
            DecisionObject::Stateless(_) => 2,
            DecisionObject::Replacement(_) => 3,
            DecisionObject::ClientSpecific(_) => 4,
            DecisionObject::Named(_) => 5,
        }
    }
}

/// ClientSI (C-Num 9).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientSi {
    /// C-Type 1: signaled client information.
    Signaled(Bytes),
    /// C-Type 2: named client information (COPS-PR: PRID/EPD sub-objects).
    Named(Bytes),
}

impl ClientSi {
    /// The raw data.
    pub fn data(&self) -> &Bytes {
        match self {
            ClientSi::Signaled(b) | ClientSi::Named(b) => b,
        }
    }
}

/// PDP-Redirect / Last-PDP-Addr (C-Num 13/14; C-Type 1 IPv4, 2 IPv6): address and TCP port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PdpAddress {
    pub address: IpAddr,
    pub port: u16,
}

/// Integrity (C-Num 16, C-Type 1: HMAC digest).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Integrity {
    pub key_id: u32,
    pub sequence: u32,
    pub digest: Bytes,
}

/// A decoded object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Object {
    Handle(Handle),
    Context(Context),
    InInterface(Interface),
    OutInterface(Interface),
    Reason(Reason),
    Decision(DecisionObject),
    LpdpDecision(DecisionObject),
    Error(ErrorObject),
    ClientSi(ClientSi),
    /// Keep-alive timer in seconds; 0 means none.
    KaTimer(u16),
    /// ASCII, without the terminating NUL.
    PepId(String),
    ReportType(ReportType),
    PdpRedirect(PdpAddress),
    LastPdpAddr(PdpAddress),
    /// Accounting timer in seconds; 0 means no unsolicited accounting reports.
    AcctTimer(u16),
    Integrity(Integrity),
    /// A C-Num or C-Type not defined by RFC 2748.
    Unknown(RawObject),
}

fn fixed<const N: usize>(raw: &RawObject) -> Result<[u8; N], DecodeError> {
    <[u8; N]>::try_from(&raw.data[..]).map_err(|_| invalid(raw, "wrong length for its C-Type"))
}

fn invalid(raw: &RawObject, what: &'static str) -> DecodeError {
    DecodeError::InvalidObject {
        c_num: raw.c_num,
        c_type: raw.c_type,
        what,
    }
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn interface(raw: &RawObject) -> Result<Interface, DecodeError> {
    Ok(match raw.c_type {
        1 => {
            let b: [u8; 8] = fixed(raw)?;
            Interface {
                address: IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])),
                if_index: u32_at(&b, 4),
            }
        }
        _ => {
            let b: [u8; 20] = fixed(raw)?;
            let mut a = [0u8; 16];
            a.copy_from_slice(&b[..16]);
            Interface {
                address: IpAddr::V6(Ipv6Addr::from(a)),
                if_index: u32_at(&b, 16),
            }
        }
    })
}

fn pdp_address(raw: &RawObject) -> Result<PdpAddress, DecodeError> {
    Ok(match raw.c_type {
        1 => {
            let b: [u8; 8] = fixed(raw)?;
            PdpAddress {
                address: IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])),
                port: u16_at(&b, 6),
            }
        }
        _ => {
            let b: [u8; 20] = fixed(raw)?;
            let mut a = [0u8; 16];
            a.copy_from_slice(&b[..16]);
            PdpAddress {
                address: IpAddr::V6(Ipv6Addr::from(a)),
                port: u16_at(&b, 18),
            }
        }
    })
}

fn decision(raw: &RawObject) -> Result<DecisionObject, DecodeError> {
    Ok(match raw.c_type {
        1 => {
            let b: [u8; 4] = fixed(raw)?;
            let command = match u16_at(&b, 0) {
                0 => Command::Null,
                1 => Command::Install,
                2 => Command::Remove,
                _ => return Err(invalid(raw, "unknown decision command code")),
            };
            DecisionObject::Flags(DecisionFlags {
                command,
                flags: u16_at(&b, 2),
            })
        }
        2 => DecisionObject::Stateless(raw.data.clone()),
        3 => DecisionObject::Replacement(raw.data.clone()),
        4 => DecisionObject::ClientSpecific(raw.data.clone()),
        _ => DecisionObject::Named(raw.data.clone()),
    })
}

fn pep_id(raw: &RawObject) -> Result<String, DecodeError> {
    let end = raw
        .data
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(raw.data.len());
    let s = &raw.data[..end];
    if s.is_empty() {
        return Err(invalid(raw, "empty PEPID"));
    }
    if !s.is_ascii() || raw.data[end..].iter().any(|&b| b != 0) {
        return Err(invalid(raw, "PEPID is not a NUL-terminated ASCII string"));
    }
    // ASCII is valid UTF-8.
    Ok(String::from_utf8_lossy(s).into_owned())
}

/// Is (C-Num, C-Type) defined by RFC 2748?
pub fn is_known(c_num: u8, c_type: u8) -> bool {
    use c_num::*;
    match c_num {
        HANDLE | CONTEXT | REASON | ERROR | KA_TIMER | PEP_ID | REPORT_TYPE | ACCT_TIMER
        | INTEGRITY => c_type == 1,
        IN_INTERFACE | OUT_INTERFACE | CLIENT_SI | PDP_REDIRECT | LAST_PDP_ADDR => {
            matches!(c_type, 1 | 2)
        }
        DECISION | LPDP_DECISION => (1..=5).contains(&c_type),
        _ => false,
    }
}

impl Object {
    /// Decodes the data of a raw object according to its C-Num and C-Type.
    pub fn decode(raw: RawObject) -> Result<Object, DecodeError> {
        use c_num::*;
        if !is_known(raw.c_num, raw.c_type) {
            return Ok(Object::Unknown(raw));
        }
        Ok(match raw.c_num {
            HANDLE => {
                if raw.data.is_empty() {
                    return Err(DecodeError::EmptyHandle);
                }
                Object::Handle(Handle(raw.data))
            }
            CONTEXT => {
                let b: [u8; 4] = fixed(&raw)?;
                Object::Context(Context {
                    r_type: RType(u16_at(&b, 0)),
                    m_type: u16_at(&b, 2),
                })
            }
            IN_INTERFACE => Object::InInterface(interface(&raw)?),
            OUT_INTERFACE => Object::OutInterface(interface(&raw)?),
            REASON => {
                let b: [u8; 4] = fixed(&raw)?;
                Object::Reason(Reason {
                    code: u16_at(&b, 0).into(),
                    sub_code: u16_at(&b, 2),
                })
            }
            DECISION => Object::Decision(decision(&raw)?),
            LPDP_DECISION => Object::LpdpDecision(decision(&raw)?),
            ERROR => {
                let b: [u8; 4] = fixed(&raw)?;
                Object::Error(ErrorObject {
                    code: u16_at(&b, 0).into(),
                    sub_code: u16_at(&b, 2),
                })
            }
            CLIENT_SI => Object::ClientSi(if raw.c_type == 1 {
                ClientSi::Signaled(raw.data)
            } else {
                ClientSi::Named(raw.data)
            }),
            KA_TIMER => Object::KaTimer(u16_at(&fixed::<4>(&raw)?, 2)),
            PEP_ID => Object::PepId(pep_id(&raw)?),
            REPORT_TYPE => Object::ReportType(u16_at(&fixed::<4>(&raw)?, 0).into()),
            PDP_REDIRECT => Object::PdpRedirect(pdp_address(&raw)?),
            LAST_PDP_ADDR => Object::LastPdpAddr(pdp_address(&raw)?),
            ACCT_TIMER => Object::AcctTimer(u16_at(&fixed::<4>(&raw)?, 2)),
            _ => {
                if raw.data.len() < 8 {
                    return Err(invalid(&raw, "Integrity shorter than key id and sequence"));
                }
                Object::Integrity(Integrity {
                    key_id: u32_at(&raw.data, 0),
                    sequence: u32_at(&raw.data, 4),
                    digest: raw.data.slice(8..),
                })
            }
        })
    }

    /// C-Num and C-Type.
    pub fn kind(&self) -> (u8, u8) {
        use c_num::*;
        let ip = |a: &IpAddr| if a.is_ipv4() { 1 } else { 2 };
        match self {
            Object::Handle(_) => (HANDLE, 1),
            Object::Context(_) => (CONTEXT, 1),
            Object::InInterface(i) => (IN_INTERFACE, ip(&i.address)),
            Object::OutInterface(i) => (OUT_INTERFACE, ip(&i.address)),
            Object::Reason(_) => (REASON, 1),
            Object::Decision(d) => (DECISION, d.c_type()),
            Object::LpdpDecision(d) => (LPDP_DECISION, d.c_type()),
            Object::Error(_) => (ERROR, 1),
            Object::ClientSi(ClientSi::Signaled(_)) => (CLIENT_SI, 1),
            Object::ClientSi(ClientSi::Named(_)) => (CLIENT_SI, 2),
            Object::KaTimer(_) => (KA_TIMER, 1),
            Object::PepId(_) => (PEP_ID, 1),
            Object::ReportType(_) => (REPORT_TYPE, 1),
            Object::PdpRedirect(a) => (PDP_REDIRECT, ip(&a.address)),
            Object::LastPdpAddr(a) => (LAST_PDP_ADDR, ip(&a.address)),
            Object::AcctTimer(_) => (ACCT_TIMER, 1),
            Object::Integrity(_) => (INTEGRITY, 1),
            Object::Unknown(r) => (r.c_num, r.c_type),
        }
    }

    /// Length of the data, without header and padding.
    pub fn data_len(&self) -> usize {
        let ip = |a: &IpAddr| if a.is_ipv4() { 4 } else { 16 };
        match self {
            Object::Handle(h) => h.0.len(),
            Object::Context(_)
            | Object::Reason(_)
            | Object::Error(_)
            | Object::KaTimer(_)
            | Object::ReportType(_)
            | Object::AcctTimer(_)
            | Object::Decision(DecisionObject::Flags(_))
            | Object::LpdpDecision(DecisionObject::Flags(_)) => 4,
            Object::InInterface(i) | Object::OutInterface(i) => ip(&i.address) + 4,
            Object::PdpRedirect(a) | Object::LastPdpAddr(a) => ip(&a.address) + 4,
            Object::Decision(
                DecisionObject::Stateless(b)
                | DecisionObject::Replacement(b)
                | DecisionObject::ClientSpecific(b)
                | DecisionObject::Named(b),
            )
            | Object::LpdpDecision(
                DecisionObject::Stateless(b)
                | DecisionObject::Replacement(b)
                | DecisionObject::ClientSpecific(b)
                | DecisionObject::Named(b),
            ) => b.len(),
            Object::ClientSi(c) => c.data().len(),
            Object::PepId(s) => s.len() + 1,
            Object::Integrity(i) => 8 + i.digest.len(),
            Object::Unknown(r) => r.data.len(),
        }
    }

    /// Length on the wire including header and padding.
    pub fn encoded_len(&self) -> usize {
        pad4(OBJECT_HEADER_LEN + self.data_len())
    }

    /// Appends the object with its padding. The caller checks [`Object::data_len`] first:
    /// the Length field has 16 bits.
    pub fn encode(&self, buf: &mut BytesMut) {
        let (c_num, c_type) = self.kind();
        let len = OBJECT_HEADER_LEN + self.data_len();
        debug_assert!(len <= MAX_OBJECT_LEN);
        buf.put_u16(len as u16);
        buf.put_u8(c_num);
        buf.put_u8(c_type);
        let put_ip = |buf: &mut BytesMut, a: &IpAddr| match a {
            IpAddr::V4(a) => buf.put_slice(&a.octets()),
            IpAddr::V6(a) => buf.put_slice(&a.octets()),
        };
        match self {
            Object::Handle(h) => buf.put_slice(&h.0),
            Object::Context(c) => {
                buf.put_u16(c.r_type.0);
                buf.put_u16(c.m_type);
            }
            Object::InInterface(i) | Object::OutInterface(i) => {
                put_ip(buf, &i.address);
                buf.put_u32(i.if_index);
            }
            Object::Reason(r) => {
                buf.put_u16(r.code.into());
                buf.put_u16(r.sub_code);
            }
            Object::Decision(d) | Object::LpdpDecision(d) => match d {
                DecisionObject::Flags(f) => {
                    buf.put_u16(f.command as u16);
                    buf.put_u16(f.flags);
                }
                DecisionObject::Stateless(b)
                | DecisionObject::Replacement(b)
                | DecisionObject::ClientSpecific(b)
                | DecisionObject::Named(b) => buf.put_slice(b),
            },
            Object::Error(e) => {
                buf.put_u16(e.code.into());
                buf.put_u16(e.sub_code);
            }
            Object::ClientSi(c) => buf.put_slice(c.data()),
            Object::KaTimer(t) | Object::AcctTimer(t) => {
                buf.put_u16(0);
                buf.put_u16(*t);
            }
            Object::PepId(s) => {
                buf.put_slice(s.as_bytes());
                buf.put_u8(0);
            }
            Object::ReportType(t) => {
                buf.put_u16((*t).into());
                buf.put_u16(0);
            }
            Object::PdpRedirect(a) | Object::LastPdpAddr(a) => {
                put_ip(buf, &a.address);
                buf.put_u16(0);
                buf.put_u16(a.port);
            }
            Object::Integrity(i) => {
                buf.put_u32(i.key_id);
                buf.put_u32(i.sequence);
                buf.put_slice(&i.digest);
            }
            Object::Unknown(r) => buf.put_slice(&r.data),
        }
        buf.put_bytes(0, pad4(len) - len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(o: Object) -> Bytes {
        let mut buf = BytesMut::new();
        o.encode(&mut buf);
        assert_eq!(buf.len(), o.encoded_len());
        assert_eq!(buf.len() % 4, 0);
        let bytes = buf.freeze();
        let mut it = split_objects(&bytes, 0);
        let (_, raw) = it.next().unwrap().unwrap();
        assert!(it.next().is_none());
        assert_eq!(Object::decode(raw).unwrap(), o);
        bytes
    }

    #[test]
    fn handle_is_opaque_and_padded() {
        let b = roundtrip(Object::Handle(Handle(Bytes::from_static(b"abcde"))));
        assert_eq!(&b[..], b"\x00\x09\x01\x01abcde\x00\x00\x00");
        assert_eq!(Handle::from_u32(7).as_u32(), Some(7));
    }

    #[test]
    fn context_layout() {
        let b = roundtrip(Object::Context(Context {
            r_type: RType(RType::INCOMING.0 | RType::OUTGOING.0),
            m_type: 0x1234,
        }));
        assert_eq!(&b[..], &[0, 8, 2, 1, 0, 5, 0x12, 0x34]);
        assert!(RType(5).contains(RType::OUTGOING));
    }

    #[test]
    fn interfaces_v4_and_v6() {
        let v4 = Interface {
            address: "192.0.2.1".parse().unwrap(),
            if_index: 9,
        };
        let b = roundtrip(Object::InInterface(v4));
        assert_eq!(&b[..], &[0, 12, 3, 1, 192, 0, 2, 1, 0, 0, 0, 9]);
        let v6 = Interface {
            address: "2001:db8::1".parse().unwrap(),
            if_index: 1,
        };
        let b = roundtrip(Object::OutInterface(v6));
        assert_eq!(&b[..4], &[0, 24, 4, 2]);
    }

    #[test]
    fn reason_error_and_codes() {
        let b = roundtrip(Object::Reason(Reason {
            code: ReasonCode::UnknownObject,
            sub_code: 0x0601,
        }));
        assert_eq!(&b[..], &[0, 8, 5, 1, 0, 13, 6, 1]);
        roundtrip(Object::Error(ErrorObject::unknown_object(20, 3)));
        assert_eq!(ErrorObject::unknown_object(20, 3).sub_code, 0x1403);
        assert_eq!(ErrorCode::from(99), ErrorCode::Other(99));
        assert_eq!(u16::from(ErrorCode::AuthenticationRequired), 15);
        assert_eq!(ReasonCode::from(10), ReasonCode::SynchronizeHandleUnknown);
    }

    #[test]
    fn decision_c_types() {
        let b = roundtrip(Object::Decision(DecisionObject::Flags(DecisionFlags {
            command: Command::Remove,
            flags: DecisionFlags::TRIGGER_ERROR,
        })));
        assert_eq!(&b[..], &[0, 8, 6, 1, 0, 2, 0, 1]);
        for d in [
            DecisionObject::Stateless(Bytes::from_static(b"s")),
            DecisionObject::Replacement(Bytes::from_static(b"rr")),
            DecisionObject::ClientSpecific(Bytes::from_static(b"ccc")),
            DecisionObject::Named(Bytes::from_static(b"nnnn")),
        ] {
            let c_type = d.c_type();
            let b = roundtrip(Object::LpdpDecision(d));
            assert_eq!(b[2..4], [7, c_type]);
        }
        let raw = RawObject {
            c_num: 6,
            c_type: 1,
            data: Bytes::from_static(&[0, 3, 0, 0]),
        };
        assert!(matches!(
            Object::decode(raw),
            Err(DecodeError::InvalidObject { c_num: 6, .. })
        ));
    }

    #[test]
    fn client_si_timers_report_type() {
        roundtrip(Object::ClientSi(ClientSi::Signaled(Bytes::from_static(
            b"x",
        ))));
        roundtrip(Object::ClientSi(ClientSi::Named(Bytes::new())));
        let b = roundtrip(Object::KaTimer(45));
        assert_eq!(&b[..], &[0, 8, 10, 1, 0, 0, 0, 45]);
        let b = roundtrip(Object::AcctTimer(300));
        assert_eq!(&b[..], &[0, 8, 15, 1, 0, 0, 1, 44]);
        let b = roundtrip(Object::ReportType(ReportType::Accounting));
        assert_eq!(&b[..], &[0, 8, 12, 1, 0, 3, 0, 0]);
    }

    #[test]
    fn pep_id_is_nul_terminated_ascii() {
        let b = roundtrip(Object::PepId("erx1".into()));
        assert_eq!(&b[..], b"\x00\x09\x0b\x01erx1\x00\x00\x00\x00");
        // A sender counting the padding in the length is accepted.
        let raw = RawObject {
            c_num: 11,
            c_type: 1,
            data: Bytes::from_static(b"erx1\0\0\0\0"),
        };
        assert_eq!(Object::decode(raw).unwrap(), Object::PepId("erx1".into()));
        for bad in [&b"\0abc"[..], b"a\0b", b"\xffab"] {
            let raw = RawObject {
                c_num: 11,
                c_type: 1,
                data: Bytes::copy_from_slice(bad),
            };
            assert!(Object::decode(raw).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pdp_addresses() {
        let b = roundtrip(Object::PdpRedirect(PdpAddress {
            address: "192.0.2.7".parse().unwrap(),
            port: 3288,
        }));
        assert_eq!(&b[..], &[0, 12, 13, 1, 192, 0, 2, 7, 0, 0, 0x0c, 0xd8]);
        let b = roundtrip(Object::LastPdpAddr(PdpAddress {
            address: "2001:db8::7".parse().unwrap(),
            port: 3288,
        }));
        assert_eq!(&b[..4], &[0, 24, 14, 2]);
        assert_eq!(&b[20..], &[0, 0, 0x0c, 0xd8]);
    }

    #[test]
    fn integrity_layout() {
        let b = roundtrip(Object::Integrity(Integrity {
            key_id: 1,
            sequence: 2,
            digest: Bytes::from_static(&[0xaa; 16]),
        }));
        assert_eq!(b.len(), 28);
        assert_eq!(&b[..12], &[0, 28, 16, 1, 0, 0, 0, 1, 0, 0, 0, 2]);
    }

    #[test]
    fn unknown_objects_stay_raw() {
        for (n, t) in [(17, 1), (1, 2), (6, 6), (0, 0)] {
            let o = Object::Unknown(RawObject {
                c_num: n,
                c_type: t,
                data: Bytes::from_static(b"zz"),
            });
            roundtrip(o);
        }
    }

    #[test]
    fn lengths_are_checked() {
        let bytes = Bytes::from_static(&[0, 3, 1, 1]);
        assert!(matches!(
            split_objects(&bytes, 8).next(),
            Some(Err(DecodeError::InvalidObjectLength { offset: 8, .. }))
        ));
        let bytes = Bytes::from_static(&[0, 9, 1, 1, 1, 2, 3, 4, 5]);
        assert!(matches!(
            split_objects(&bytes, 0).next(),
            Some(Err(DecodeError::InvalidObjectLength { length: 9, .. }))
        ));
        let bytes = Bytes::from_static(&[0, 8]);
        assert!(matches!(
            split_objects(&bytes, 0).next(),
            Some(Err(DecodeError::TruncatedObject { available: 2, .. }))
        ));
        let raw = RawObject {
            c_num: 2,
            c_type: 1,
            data: Bytes::from_static(&[0, 1]),
        };
        assert!(Object::decode(raw).is_err());
        let raw = RawObject {
            c_num: 1,
            c_type: 1,
            data: Bytes::new(),
        };
        assert_eq!(Object::decode(raw), Err(DecodeError::EmptyHandle));
    }
}
