//! COPS messages (RFC 2748 section 3): the 8-octet common header and the object grammar of
//! each op-code.
//!
//! [`Message::decode`] checks the whole grammar: mandatory objects, allowed objects and their
//! order, Decision groups, Integrity last. Every failure is a [`DecodeError`] that names the
//! Error object to answer with.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, Error};
use crate::object::{
    ClientSi, Context, DecisionFlags, DecisionObject, ErrorObject, Handle, Integrity, Interface,
    MAX_OBJECT_LEN, OBJECT_HEADER_LEN, Object, PdpAddress, Reason, ReportType, c_num,
    split_objects,
};

/// Common header length.
pub const HEADER_LEN: usize = 8;
/// The only protocol version.
pub const VERSION: u8 = 1;
/// Solicited Message flag.
pub const FLAG_SOLICITED: u8 = 0x1;
/// Registered TCP port.
pub const PORT: u16 = 3288;

/// Op-codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    Request = 1,
    Decision = 2,
    Report = 3,
    DeleteRequest = 4,
    SyncStateRequest = 5,
    ClientOpen = 6,
    ClientAccept = 7,
    ClientClose = 8,
    KeepAlive = 9,
    SyncComplete = 10,
}

impl OpCode {
    /// From the header octet.
    pub fn from_u8(v: u8) -> Option<OpCode> {
        use OpCode::*;
        Some(match v {
            1 => Request,
            2 => Decision,
            3 => Report,
            4 => DeleteRequest,
            5 => SyncStateRequest,
            6 => ClientOpen,
            7 => ClientAccept,
            8 => ClientClose,
            9 => KeepAlive,
            10 => SyncComplete,
            _ => return None,
        })
    }
}

/// The common header as received, unchecked (see [`Header::check`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    pub version: u8,
    pub flags: u8,
    pub op_code: u8,
    pub client_type: u16,
    pub length: u32,
}

impl Header {
    /// Reads the first 8 octets.
    pub fn parse(buf: &[u8]) -> Result<Header, DecodeError> {
        if buf.len() < HEADER_LEN {
            return Err(DecodeError::TruncatedHeader {
                available: buf.len(),
            });
        }
        Ok(Header {
            version: buf[0] >> 4,
            flags: buf[0] & 0x0f,
            op_code: buf[1],
            client_type: u16::from_be_bytes([buf[2], buf[3]]),
            length: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
        })
    }

    /// Checks version, flags, op-code and the length's form (at least the header, a multiple
    /// of 4).
    pub fn check(&self) -> Result<OpCode, DecodeError> {
        if self.version != VERSION {
            return Err(DecodeError::UnsupportedVersion(self.version));
        }
        let length = self.length as usize;
        if length < HEADER_LEN || !length.is_multiple_of(4) {
            return Err(DecodeError::InvalidMessageLength {
                length,
                available: length,
            });
        }
        if self.flags & !FLAG_SOLICITED != 0 {
            return Err(DecodeError::ReservedFlags(self.flags));
        }
        OpCode::from_u8(self.op_code).ok_or(DecodeError::UnknownOpCode(self.op_code))
    }

    /// Is the Solicited Message flag set?
    pub fn solicited(&self) -> bool {
        self.flags & FLAG_SOLICITED != 0
    }
}

/// A Decision in a DEC: Context, Flags and the optional data objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub context: Context,
    pub flags: DecisionFlags,
    pub stateless: Option<Bytes>,
    pub replacement: Option<Bytes>,
    pub client_specific: Option<Bytes>,
    pub named: Option<Bytes>,
}

impl Decision {
    /// A decision with flags only.
    pub fn new(context: Context, flags: DecisionFlags) -> Self {
        Decision {
            context,
            flags,
            stateless: None,
            replacement: None,
            client_specific: None,
            named: None,
        }
    }
    /// With Named Decision Data (builder style).
    pub fn with_named(mut self, data: Bytes) -> Self {
        self.named = Some(data);
        self
    }
}

/// An LPDP Decision in a REQ: like [`Decision`], the Context is optional.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LpdpDecision {
    pub context: Option<Context>,
    pub flags: DecisionFlags,
    pub stateless: Option<Bytes>,
    pub replacement: Option<Bytes>,
    pub client_specific: Option<Bytes>,
    pub named: Option<Bytes>,
}

/// REQ: Handle, Context, [In-Int], [Out-Int], ClientSI*, LPDP Decision*.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub handle: Handle,
    pub context: Context,
    pub in_interface: Option<Interface>,
    pub out_interface: Option<Interface>,
    pub client_si: Vec<ClientSi>,
    pub lpdp_decisions: Vec<LpdpDecision>,
}

/// What a DEC carries after the Handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecisionContent {
    /// One or more decisions.
    Decisions(Vec<Decision>),
    /// The request could not be processed.
    Error(ErrorObject),
}

/// DEC: Handle, then Decision(s) or Error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionMessage {
    pub handle: Handle,
    pub content: DecisionContent,
}

/// RPT: Handle, Report-Type, [ClientSI].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub handle: Handle,
    pub report_type: ReportType,
    pub client_si: Option<ClientSi>,
}

/// DRQ: Handle, Reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteRequest {
    pub handle: Handle,
    pub reason: Reason,
}

/// OPN: PEPID, [ClientSI], [Last-PDP-Addr].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOpen {
    pub pep_id: String,
    pub client_si: Option<ClientSi>,
    pub last_pdp_addr: Option<PdpAddress>,
}

/// CAT: KA Timer, [Accounting Timer].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAccept {
    /// Seconds; 0 means no keep-alive.
    pub ka_timer: u16,
    /// Seconds; `Some(0)` means no unsolicited accounting reports.
    pub acct_timer: Option<u16>,
}

/// CC: Error, [PDP-Redirect].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientClose {
    pub error: ErrorObject,
    pub redirect: Option<PdpAddress>,
}

/// The op-code specific part of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Request(Request),
    Decision(DecisionMessage),
    Report(Report),
    DeleteRequest(DeleteRequest),
    /// SSQ, for one handle or (without) for all state.
    SyncStateRequest(Option<Handle>),
    ClientOpen(ClientOpen),
    ClientAccept(ClientAccept),
    ClientClose(ClientClose),
    KeepAlive,
    /// SSC, for one handle or (without) for all state.
    SyncComplete(Option<Handle>),
}

impl Body {
    /// The op-code.
    pub fn op_code(&self) -> OpCode {
        match self {
            Body::Request(_) => OpCode::Request,
            Body::Decision(_) => OpCode::Decision,
            Body::Report(_) => OpCode::Report,
            Body::DeleteRequest(_) => OpCode::DeleteRequest,
            Body::SyncStateRequest(_) => OpCode::SyncStateRequest,
            Body::ClientOpen(_) => OpCode::ClientOpen,
            Body::ClientAccept(_) => OpCode::ClientAccept,
            Body::ClientClose(_) => OpCode::ClientClose,
            Body::KeepAlive => OpCode::KeepAlive,
            Body::SyncComplete(_) => OpCode::SyncComplete,
        }
    }

    /// The Client Handle, for the messages that carry one.
    pub fn handle(&self) -> Option<&Handle> {
        match self {
            Body::Request(m) => Some(&m.handle),
            Body::Decision(m) => Some(&m.handle),
            Body::Report(m) => Some(&m.handle),
            Body::DeleteRequest(m) => Some(&m.handle),
            Body::SyncStateRequest(h) | Body::SyncComplete(h) => h.as_ref(),
            _ => None,
        }
    }
}

/// A COPS message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub client_type: u16,
    /// Solicited Message flag: set on messages answering a request (DEC to a REQ, RPT to a
    /// DEC, SSC to an SSQ, a KA answer).
    pub solicited: bool,
    pub body: Body,
    /// The Integrity object, last on the wire. See [`crate::integrity`] to sign and check.
    pub integrity: Option<Integrity>,
}

impl Message {
    /// An unsolicited message without Integrity.
    pub fn new(client_type: u16, body: Body) -> Self {
        Message {
            client_type,
            solicited: false,
            body,
            integrity: None,
        }
    }

    /// A keep-alive (client type 0, as RFC 2748 requires).
    pub fn keep_alive() -> Self {
        Message::new(0, Body::KeepAlive)
    }

    /// With the Solicited flag set (builder style).
    pub fn solicited(mut self) -> Self {
        self.solicited = true;
        self
    }

    /// The op-code.
    pub fn op_code(&self) -> OpCode {
        self.body.op_code()
    }

    /// The Client Handle, if the message has one.
    pub fn handle(&self) -> Option<&Handle> {
        self.body.handle()
    }

    /// The objects in wire order (Integrity included).
    pub fn objects(&self) -> Vec<Object> {
        let mut v = Vec::new();
        let push_decision = |v: &mut Vec<Object>,
                             wrap: fn(DecisionObject) -> Object,
                             flags: DecisionFlags,
                             data: [&Option<Bytes>; 4]| {
            v.push(wrap(DecisionObject::Flags(flags)));
            let kinds: [fn(Bytes) -> DecisionObject; 4] = [
                DecisionObject::Stateless,
                DecisionObject::Replacement,
                DecisionObject::ClientSpecific,
                DecisionObject::Named,
            ];
            for (d, k) in data.into_iter().zip(kinds) {
                if let Some(b) = d {
                    v.push(wrap(k(b.clone())));
                }
            }
        };
        match &self.body {
            Body::Request(r) => {
                v.push(Object::Handle(r.handle.clone()));
                v.push(Object::Context(r.context));
                v.extend(r.in_interface.map(Object::InInterface));
                v.extend(r.out_interface.map(Object::OutInterface));
                v.extend(r.client_si.iter().cloned().map(Object::ClientSi));
                for d in &r.lpdp_decisions {
                    v.extend(d.context.map(Object::Context));
                    push_decision(
                        &mut v,
                        Object::LpdpDecision,
                        d.flags,
                        [&d.stateless, &d.replacement, &d.client_specific, &d.named],
                    );
                }
            }
            Body::Decision(d) => {
                v.push(Object::Handle(d.handle.clone()));
                match &d.content {
                    DecisionContent::Error(e) => v.push(Object::Error(*e)),
                    DecisionContent::Decisions(ds) => {
                        for d in ds {
                            v.push(Object::Context(d.context));
                            push_decision(
                                &mut v,
                                Object::Decision,
                                d.flags,
                                [&d.stateless, &d.replacement, &d.client_specific, &d.named],
                            );
                        }
                    }
                }
            }
            Body::Report(r) => {
                v.push(Object::Handle(r.handle.clone()));
                v.push(Object::ReportType(r.report_type));
                v.extend(r.client_si.clone().map(Object::ClientSi));
            }
            Body::DeleteRequest(d) => {
                v.push(Object::Handle(d.handle.clone()));
                v.push(Object::Reason(d.reason));
            }
            Body::SyncStateRequest(h) | Body::SyncComplete(h) => {
                v.extend(h.clone().map(Object::Handle));
            }
            Body::ClientOpen(o) => {
                v.push(Object::PepId(o.pep_id.clone()));
                v.extend(o.client_si.clone().map(Object::ClientSi));
                v.extend(o.last_pdp_addr.map(Object::LastPdpAddr));
            }
            Body::ClientAccept(a) => {
                v.push(Object::KaTimer(a.ka_timer));
                v.extend(a.acct_timer.map(Object::AcctTimer));
            }
            Body::ClientClose(c) => {
                v.push(Object::Error(c.error));
                v.extend(c.redirect.map(Object::PdpRedirect));
            }
            Body::KeepAlive => {}
        }
        v.extend(self.integrity.clone().map(Object::Integrity));
        v
    }

    /// Value of the Message Length field.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN
            + self
                .objects()
                .iter()
                .map(Object::encoded_len)
                .sum::<usize>()
    }

    /// Encodes the message.
    pub fn encode(&self) -> Result<Bytes, Error> {
        let mut buf = BytesMut::new();
        self.encode_to(&mut buf)?;
        Ok(buf.freeze())
    }

    /// Appends the encoded message to `buf`. Refuses what the decoder would reject: empty
    /// handle, a DEC without decisions, a PEPID that is not NUL-free ASCII, oversized objects.
    pub fn encode_to(&self, buf: &mut BytesMut) -> Result<(), Error> {
        if self.handle().is_some_and(|h| h.0.is_empty()) {
            return Err(Error::InvalidMessage("empty client handle"));
        }
        match &self.body {
            Body::Decision(DecisionMessage {
                content: DecisionContent::Decisions(ds),
                ..
            }) if ds.is_empty() => {
                return Err(Error::InvalidMessage("DEC without decisions"));
            }
            Body::ClientOpen(o)
                if o.pep_id.is_empty() || !o.pep_id.is_ascii() || o.pep_id.contains('\0') =>
            {
                return Err(Error::InvalidMessage(
                    "PEPID must be non-empty ASCII without NUL",
                ));
            }
            _ => {}
        }
        let objects = self.objects();
        let mut len = HEADER_LEN;
        for o in &objects {
            let data = o.data_len();
            if data + OBJECT_HEADER_LEN > MAX_OBJECT_LEN {
                let (c_num, c_type) = o.kind();
                return Err(Error::ObjectTooLarge {
                    c_num,
                    c_type,
                    len: data + OBJECT_HEADER_LEN,
                });
            }
            len += o.encoded_len();
        }
        let length = u32::try_from(len).map_err(|_| Error::MessageTooLarge(len))?;
        buf.reserve(len);
        let flags = if self.solicited { FLAG_SOLICITED } else { 0 };
        buf.put_u8(VERSION << 4 | flags);
        buf.put_u8(self.op_code() as u8);
        buf.put_u16(self.client_type);
        buf.put_u32(length);
        for o in &objects {
            o.encode(buf);
        }
        Ok(())
    }

    /// Decodes one whole message; `frame` must hold exactly the Message Length octets.
    pub fn decode(frame: Bytes) -> Result<Message, DecodeError> {
        let header = Header::parse(&frame)?;
        let op = header.check()?;
        if header.length as usize != frame.len() {
            return Err(DecodeError::InvalidMessageLength {
                length: header.length as usize,
                available: frame.len(),
            });
        }
        let body = frame.slice(HEADER_LEN..);
        let mut objects = Vec::with_capacity(8);
        for item in split_objects(&body, HEADER_LEN) {
            let (_, raw) = item?;
            match Object::decode(raw)? {
                Object::Unknown(r) => {
                    return Err(DecodeError::UnknownObject {
                        c_num: r.c_num,
                        c_type: r.c_type,
                    });
                }
                o => objects.push(o),
            }
        }
        let integrity = match objects.last() {
            Some(Object::Integrity(_)) => match objects.pop() {
                Some(Object::Integrity(i)) => Some(i),
                _ => None,
            },
            _ => None,
        };
        if objects.iter().any(|o| matches!(o, Object::Integrity(_))) {
            return Err(DecodeError::IntegrityNotLast);
        }
        let mut p = Parser {
            op,
            objects: objects.into_iter().peekable(),
        };
        let body = p.body()?;
        p.finish()?;
        Ok(Message {
            client_type: header.client_type,
            solicited: header.solicited(),
            body,
            integrity,
        })
    }
}

/// Finds the Client Handle of a message that failed to decode, so the error can be answered
/// for that handle (DEC with Error for a bad REQ). Looks only at the first object.
pub fn peek_handle(frame: &Bytes) -> Option<Handle> {
    let body = frame.get(HEADER_LEN..).map(|_| frame.slice(HEADER_LEN..))?;
    let (_, raw) = split_objects(&body, HEADER_LEN).next()?.ok()?;
    match Object::decode(raw) {
        Ok(Object::Handle(h)) => Some(h),
        _ => None,
    }
}

struct Parser {
    op: OpCode,
    objects: std::iter::Peekable<std::vec::IntoIter<Object>>,
}

impl Parser {
    fn missing(&self, c_num: u8) -> DecodeError {
        DecodeError::MissingObject { op: self.op, c_num }
    }

    /// The next object if `f` accepts it.
    fn take<T>(&mut self, f: impl Fn(&Object) -> Option<T>) -> Option<T> {
        let v = f(self.objects.peek()?)?;
        self.objects.next();
        Some(v)
    }

    fn require<T>(
        &mut self,
        c_num: u8,
        f: impl Fn(&Object) -> Option<T>,
    ) -> Result<T, DecodeError> {
        self.take(f).ok_or_else(|| self.missing(c_num))
    }

    fn handle(&mut self) -> Result<Handle, DecodeError> {
        self.require(c_num::HANDLE, handle_of)
    }

    fn opt_handle(&mut self) -> Option<Handle> {
        self.take(handle_of)
    }

    /// Flags and optional data objects of one (LPDP) Decision, in C-Type order.
    fn decision_tail(
        &mut self,
        lpdp: bool,
    ) -> Result<(DecisionFlags, [Option<Bytes>; 4]), DecodeError> {
        let pick = move |o: &Object| match (o, lpdp) {
            (Object::Decision(d), false) | (Object::LpdpDecision(d), true) => Some(d.clone()),
            _ => None,
        };
        let c_num = if lpdp {
            c_num::LPDP_DECISION
        } else {
            c_num::DECISION
        };
        let flags = self.require(c_num, |o| match pick(o) {
            Some(DecisionObject::Flags(f)) => Some(f),
            _ => None,
        })?;
        let mut data: [Option<Bytes>; 4] = Default::default();
        let mut last = 1;
        while let Some(d) = self.take(|o| pick(o).filter(|d| d.c_type() != 1)) {
            let t = d.c_type();
            if t <= last {
                // Repeated or out of C-Type order.
                return Err(DecodeError::UnexpectedObject {
                    op: self.op,
                    c_num,
                    c_type: t,
                });
            }
            last = t;
            data[usize::from(t) - 2] = Some(match d {
                DecisionObject::Stateless(b)
                | DecisionObject::Replacement(b)
                | DecisionObject::ClientSpecific(b)
                | DecisionObject::Named(b) => b,
                DecisionObject::Flags(_) => unreachable!("filtered out"),
            });
        }
        Ok((flags, data))
    }

    fn body(&mut self) -> Result<Body, DecodeError> {
        Ok(match self.op {
            OpCode::Request => {
                let handle = self.handle()?;
                let context = self.require(c_num::CONTEXT, context_of)?;
                let in_interface = self.take(|o| match o {
                    Object::InInterface(i) => Some(*i),
                    _ => None,
                });
                let out_interface = self.take(|o| match o {
                    Object::OutInterface(i) => Some(*i),
                    _ => None,
                });
                let mut client_si = Vec::new();
                while let Some(c) = self.take(client_si_of) {
                    client_si.push(c);
                }
                let mut lpdp_decisions = Vec::new();
                loop {
                    let context = self.take(context_of);
                    let starts = matches!(self.objects.peek(), Some(Object::LpdpDecision(_)));
                    if context.is_none() && !starts {
                        break;
                    }
                    let (flags, [stateless, replacement, client_specific, named]) =
                        self.decision_tail(true)?;
                    lpdp_decisions.push(LpdpDecision {
                        context,
                        flags,
                        stateless,
                        replacement,
                        client_specific,
                        named,
                    });
                }
                Body::Request(Request {
                    handle,
                    context,
                    in_interface,
                    out_interface,
                    client_si,
                    lpdp_decisions,
                })
            }
            OpCode::Decision => {
                let handle = self.handle()?;
                let content = if let Some(e) = self.take(error_of) {
                    DecisionContent::Error(e)
                } else {
                    let mut ds = Vec::new();
                    loop {
                        let context = match self.take(context_of) {
                            Some(c) => c,
                            None if ds.is_empty()
                                || matches!(self.objects.peek(), Some(Object::Decision(_))) =>
                            {
                                return Err(self.missing(c_num::CONTEXT));
                            }
                            None => break,
                        };
                        let (flags, [stateless, replacement, client_specific, named]) =
                            self.decision_tail(false)?;
                        ds.push(Decision {
                            context,
                            flags,
                            stateless,
                            replacement,
                            client_specific,
                            named,
                        });
                    }
                    DecisionContent::Decisions(ds)
                };
                Body::Decision(DecisionMessage { handle, content })
            }
            OpCode::Report => Body::Report(Report {
                handle: self.handle()?,
                report_type: self.require(c_num::REPORT_TYPE, |o| match o {
                    Object::ReportType(t) => Some(*t),
                    _ => None,
                })?,
                client_si: self.take(client_si_of),
            }),
            OpCode::DeleteRequest => Body::DeleteRequest(DeleteRequest {
                handle: self.handle()?,
                reason: self.require(c_num::REASON, |o| match o {
                    Object::Reason(r) => Some(*r),
                    _ => None,
                })?,
            }),
            OpCode::SyncStateRequest => Body::SyncStateRequest(self.opt_handle()),
            OpCode::SyncComplete => Body::SyncComplete(self.opt_handle()),
            OpCode::ClientOpen => Body::ClientOpen(ClientOpen {
                pep_id: self.require(c_num::PEP_ID, |o| match o {
                    Object::PepId(s) => Some(s.clone()),
                    _ => None,
                })?,
                client_si: self.take(client_si_of),
                last_pdp_addr: self.take(|o| match o {
                    Object::LastPdpAddr(a) => Some(*a),
                    _ => None,
                }),
            }),
            OpCode::ClientAccept => Body::ClientAccept(ClientAccept {
                ka_timer: self.require(c_num::KA_TIMER, |o| match o {
                    Object::KaTimer(t) => Some(*t),
                    _ => None,
                })?,
                acct_timer: self.take(|o| match o {
                    Object::AcctTimer(t) => Some(*t),
                    _ => None,
                }),
            }),
            OpCode::ClientClose => Body::ClientClose(ClientClose {
                error: self.require(c_num::ERROR, error_of)?,
                redirect: self.take(|o| match o {
                    Object::PdpRedirect(a) => Some(*a),
                    _ => None,
                }),
            }),
            OpCode::KeepAlive => Body::KeepAlive,
        })
    }

    /// Anything left over does not belong in this message (or not at this place).
    fn finish(&mut self) -> Result<(), DecodeError> {
        match self.objects.next() {
            None => Ok(()),
            Some(o) => {
                let (c_num, c_type) = o.kind();
                Err(DecodeError::UnexpectedObject {
                    op: self.op,
                    c_num,
                    c_type,
                })
            }
        }
    }
}

fn handle_of(o: &Object) -> Option<Handle> {
    match o {
        Object::Handle(h) => Some(h.clone()),
        _ => None,
    }
}

fn context_of(o: &Object) -> Option<Context> {
    match o {
        Object::Context(c) => Some(*c),
        _ => None,
    }
}

fn error_of(o: &Object) -> Option<ErrorObject> {
    match o {
        Object::Error(e) => Some(*e),
        _ => None,
    }
}

fn client_si_of(o: &Object) -> Option<ClientSi> {
    match o {
        Object::ClientSi(c) => Some(c.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::{Command, ErrorCode, RType, ReasonCode};

    fn rt(m: &Message) -> Bytes {
        let b = m.encode().unwrap();
        assert_eq!(b.len(), m.encoded_len());
        assert_eq!(Message::decode(b.clone()).as_ref(), Ok(m));
        b
    }

    fn h() -> Handle {
        Handle::from_u32(0x0102_0304)
    }

    #[test]
    fn header_parse_and_check() {
        let hd = Header::parse(&[0x11, 2, 0x80, 0x0b, 0, 0, 0, 8]).unwrap();
        assert_eq!(hd.version, 1);
        assert!(hd.solicited());
        assert_eq!(hd.client_type, 0x800b);
        assert_eq!(hd.check(), Ok(OpCode::Decision));
        let bad = Header { version: 2, ..hd };
        assert_eq!(bad.check(), Err(DecodeError::UnsupportedVersion(2)));
        let bad = Header { flags: 2, ..hd };
        assert_eq!(bad.check(), Err(DecodeError::ReservedFlags(2)));
        let bad = Header { op_code: 11, ..hd };
        assert_eq!(bad.check(), Err(DecodeError::UnknownOpCode(11)));
        let bad = Header { length: 10, ..hd };
        assert!(matches!(
            bad.check(),
            Err(DecodeError::InvalidMessageLength { .. })
        ));
    }

    #[test]
    fn request_with_everything() {
        let m = Message::new(
            0x800b,
            Body::Request(Request {
                handle: h(),
                context: Context::configuration(),
                in_interface: Some(Interface {
                    address: "10.0.0.1".parse().unwrap(),
                    if_index: 3,
                }),
                out_interface: Some(Interface {
                    address: "::1".parse().unwrap(),
                    if_index: 4,
                }),
                client_si: vec![
                    ClientSi::Named(Bytes::from_static(b"abc")),
                    ClientSi::Signaled(Bytes::from_static(b"d")),
                ],
                lpdp_decisions: vec![
                    LpdpDecision {
                        context: Some(Context {
                            r_type: RType::INCOMING,
                            m_type: 1,
                        }),
                        flags: DecisionFlags::new(Command::Install),
                        stateless: Some(Bytes::from_static(b"s")),
                        replacement: None,
                        client_specific: None,
                        named: Some(Bytes::from_static(b"n")),
                    },
                    LpdpDecision {
                        context: None,
                        flags: DecisionFlags::new(Command::Null),
                        stateless: None,
                        replacement: Some(Bytes::from_static(b"r")),
                        client_specific: Some(Bytes::from_static(b"c")),
                        named: None,
                    },
                ],
            }),
        );
        rt(&m);
    }

    #[test]
    fn decision_groups_and_error() {
        let ctx = Context::configuration();
        let m = Message::new(
            0x800b,
            Body::Decision(DecisionMessage {
                handle: h(),
                content: DecisionContent::Decisions(vec![
                    Decision::new(ctx, DecisionFlags::new(Command::Install))
                        .with_named(Bytes::from_static(b"\x00\x08\x01\x01abcd")),
                    Decision::new(
                        Context {
                            r_type: RType::OUTGOING,
                            m_type: 0,
                        },
                        DecisionFlags::new(Command::Remove),
                    ),
                ]),
            }),
        )
        .solicited();
        rt(&m);
        let m = Message::new(
            1,
            Body::Decision(DecisionMessage {
                handle: h(),
                content: DecisionContent::Error(ErrorObject::new(ErrorCode::UnableToProcess)),
            }),
        );
        rt(&m);
        let empty = Message::new(
            1,
            Body::Decision(DecisionMessage {
                handle: h(),
                content: DecisionContent::Decisions(vec![]),
            }),
        );
        assert!(empty.encode().is_err());
    }

    #[test]
    fn other_messages() {
        let addr = PdpAddress {
            address: "192.0.2.2".parse().unwrap(),
            port: PORT,
        };
        for body in [
            Body::Report(Report {
                handle: h(),
                report_type: ReportType::Accounting,
                client_si: Some(ClientSi::Named(Bytes::from_static(b"usage"))),
            }),
            Body::Report(Report {
                handle: h(),
                report_type: ReportType::Success,
                client_si: None,
            }),
            Body::DeleteRequest(DeleteRequest {
                handle: h(),
                reason: Reason::new(ReasonCode::Management),
            }),
            Body::SyncStateRequest(None),
            Body::SyncStateRequest(Some(h())),
            Body::SyncComplete(None),
            Body::SyncComplete(Some(h())),
            Body::ClientOpen(ClientOpen {
                pep_id: "erx-1.example".into(),
                client_si: Some(ClientSi::Named(Bytes::from_static(b"caps"))),
                last_pdp_addr: Some(addr),
            }),
            Body::ClientOpen(ClientOpen {
                pep_id: "sbc".into(),
                client_si: None,
                last_pdp_addr: None,
            }),
            Body::ClientAccept(ClientAccept {
                ka_timer: 45,
                acct_timer: Some(60),
            }),
            Body::ClientClose(ClientClose {
                error: ErrorObject::new(ErrorCode::RedirectToPreferredServer),
                redirect: Some(addr),
            }),
            Body::KeepAlive,
        ] {
            rt(&Message::new(0x7926, body));
        }
        rt(&Message::keep_alive().solicited());
    }

    #[test]
    fn order_and_membership_are_enforced() {
        // Context before Handle in a REQ.
        let mut buf = BytesMut::new();
        buf.put_slice(&[0x10, 1, 0, 1, 0, 0, 0, 24]);
        Object::Context(Context::configuration()).encode(&mut buf);
        Object::Handle(h()).encode(&mut buf);
        assert_eq!(
            Message::decode(buf.freeze()),
            Err(DecodeError::MissingObject {
                op: OpCode::Request,
                c_num: c_num::HANDLE
            })
        );
        // KA Timer in a KA.
        let mut buf = BytesMut::new();
        buf.put_slice(&[0x10, 9, 0, 0, 0, 0, 0, 16]);
        Object::KaTimer(1).encode(&mut buf);
        assert_eq!(
            Message::decode(buf.freeze()),
            Err(DecodeError::UnexpectedObject {
                op: OpCode::KeepAlive,
                c_num: c_num::KA_TIMER,
                c_type: 1
            })
        );
    }

    #[test]
    fn peek_handle_of_a_bad_request() {
        let mut buf = BytesMut::new();
        buf.put_slice(&[0x10, 1, 0, 1, 0, 0, 0, 16]);
        Object::Handle(h()).encode(&mut buf);
        let frame = buf.freeze();
        assert!(Message::decode(frame.clone()).is_err());
        assert_eq!(peek_handle(&frame), Some(h()));
        assert_eq!(peek_handle(&Bytes::from_static(&[1, 2])), None);
    }
}
