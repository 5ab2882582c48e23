//! Diameter messages: the 20-octet header and the AVPs that follow.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use crate::avp::{Avp, Value, decode_avps};
use crate::codes::{avp, result};
use crate::error::{DecodeError, Error};

/// Header length.
pub const HEADER_LEN: usize = 20;
/// The only protocol version.
pub const VERSION: u8 = 1;
/// Largest value of the 24-bit Message Length field.
pub const MAX_LENGTH_FIELD: usize = 0x00ff_ffff;

/// Command flag bits (RFC 6733 section 3).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CommandFlags(u8);

impl CommandFlags {
    pub const REQUEST: u8 = 0x80;
    pub const PROXIABLE: u8 = 0x40;
    pub const ERROR: u8 = 0x20;
    pub const RETRANSMIT: u8 = 0x10;

    /// From the raw octet.
    pub const fn from_bits(bits: u8) -> Self {
        CommandFlags(bits)
    }
    /// The raw octet.
    pub const fn bits(self) -> u8 {
        self.0
    }
    /// R bit.
    pub const fn is_request(self) -> bool {
        self.0 & Self::REQUEST != 0
    }
    /// P bit.
    pub const fn is_proxiable(self) -> bool {
        self.0 & Self::PROXIABLE != 0
    }
    /// E bit.
    pub const fn is_error(self) -> bool {
        self.0 & Self::ERROR != 0
    }
    /// T bit.
    pub const fn is_retransmit(self) -> bool {
        self.0 & Self::RETRANSMIT != 0
    }
    /// With `bit` set or cleared.
    pub const fn with(self, bit: u8, on: bool) -> Self {
        CommandFlags(if on { self.0 | bit } else { self.0 & !bit })
    }
}

impl fmt::Debug for CommandFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bit = |mask, c| if self.0 & mask != 0 { c } else { '-' };
        write!(
            f,
            "{}{}{}{}",
            bit(Self::REQUEST, 'R'),
            bit(Self::PROXIABLE, 'P'),
            bit(Self::ERROR, 'E'),
            bit(Self::RETRANSMIT, 'T')
        )
    }
}

/// The header fields other than version and length (those follow from the message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    pub flags: CommandFlags,
    pub command_code: u32,
    pub application_id: u32,
    pub hop_by_hop: u32,
    pub end_to_end: u32,
}

impl Header {
    /// Reads the header fields from the first 20 octets (version and length are not checked).
    pub fn parse(buf: &[u8]) -> Result<Header, DecodeError> {
        if buf.len() < HEADER_LEN {
            return Err(DecodeError::TruncatedHeader {
                available: buf.len(),
            });
        }
        let word = |i: usize| u32::from_be_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
        Ok(Header {
            flags: CommandFlags(buf[4]),
            command_code: word(4) & 0x00ff_ffff,
            application_id: word(8),
            hop_by_hop: word(12),
            end_to_end: word(16),
        })
    }

    /// The header of the answer to a request with this header: R and E cleared, P kept,
    /// identifiers echoed.
    pub fn answer(&self) -> Header {
        Header {
            flags: CommandFlags(self.flags.0 & CommandFlags::PROXIABLE),
            ..*self
        }
    }
}

/// A Diameter message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub header: Header,
    pub avps: Vec<Avp>,
}

impl Message {
    /// A new request. Hop-by-Hop and End-to-End are left 0 for the peer state machine to fill.
    pub fn request(command_code: u32, application_id: u32, proxiable: bool) -> Self {
        let flags = CommandFlags(CommandFlags::REQUEST).with(CommandFlags::PROXIABLE, proxiable);
        Message {
            header: Header {
                flags,
                command_code,
                application_id,
                hop_by_hop: 0,
                end_to_end: 0,
            },
            avps: Vec::new(),
        }
    }

    /// The empty answer to `request` (same command, application and identifiers). When the
    /// request carries a Session-Id, the answer starts with it, as RFC 6733 requires.
    pub fn answer_to(request: &Message) -> Self {
        let mut answer = Message {
            header: request.header.answer(),
            avps: Vec::new(),
        };
        if let Some(sid) = request.find(avp::SESSION_ID, 0) {
            answer.avps.push(sid.clone());
        }
        answer
    }

    /// Is this a request?
    pub fn is_request(&self) -> bool {
        self.header.flags.is_request()
    }

    /// Appends an AVP (builder style).
    pub fn with(mut self, avp: Avp) -> Self {
        self.avps.push(avp);
        self
    }

    /// Appends an AVP.
    pub fn push(&mut self, avp: Avp) {
        self.avps.push(avp);
    }

    /// Appends Origin-Host and Origin-Realm.
    pub fn push_origin(&mut self, host: &str, realm: &str) {
        self.avps.push(Avp::mandatory(
            avp::ORIGIN_HOST,
            &Value::DiameterIdentity(host.to_owned()),
        ));
        self.avps.push(Avp::mandatory(
            avp::ORIGIN_REALM,
            &Value::DiameterIdentity(realm.to_owned()),
        ));
    }

    /// The first top-level AVP with this code and vendor (0 for IETF).
    pub fn find(&self, code: u32, vendor: u32) -> Option<&Avp> {
        self.avps.iter().find(|a| a.is(code, vendor))
    }

    /// Every top-level AVP with this code and vendor.
    pub fn find_all(&self, code: u32, vendor: u32) -> impl Iterator<Item = &Avp> {
        self.avps.iter().filter(move |a| a.is(code, vendor))
    }

    /// Session-Id, if present and valid UTF-8.
    pub fn session_id(&self) -> Option<&str> {
        self.find(avp::SESSION_ID, 0).and_then(|a| a.as_str().ok())
    }

    /// Origin-Host, if present and valid UTF-8.
    pub fn origin_host(&self) -> Option<&str> {
        self.find(avp::ORIGIN_HOST, 0).and_then(|a| a.as_str().ok())
    }

    /// Origin-Realm, if present and valid UTF-8.
    pub fn origin_realm(&self) -> Option<&str> {
        self.find(avp::ORIGIN_REALM, 0)
            .and_then(|a| a.as_str().ok())
    }

    /// Result-Code, if present and well-formed.
    pub fn result_code(&self) -> Option<u32> {
        self.find(avp::RESULT_CODE, 0).and_then(|a| a.as_u32().ok())
    }

    /// Error-Message, if present.
    pub fn error_message(&self) -> Option<&str> {
        self.find(avp::ERROR_MESSAGE, 0)
            .and_then(|a| a.as_str().ok())
    }

    /// Sets Result-Code (and the E bit for protocol errors) on an answer.
    pub fn set_result_code(&mut self, code: u32) {
        self.avps.retain(|a| !a.is(avp::RESULT_CODE, 0));
        self.avps
            .push(Avp::mandatory(avp::RESULT_CODE, &Value::Unsigned32(code)));
        self.header.flags = self
            .header
            .flags
            .with(CommandFlags::ERROR, result::is_protocol_error(code));
    }

    /// Value of the Message Length field.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.avps.iter().map(Avp::encoded_len).sum::<usize>()
    }

    /// Encodes the message.
    pub fn encode(&self) -> Result<Bytes, Error> {
        let mut buf = BytesMut::with_capacity(self.encoded_len());
        self.encode_to(&mut buf)?;
        Ok(buf.freeze())
    }

    /// Appends the encoded message to `buf`.
    pub fn encode_to(&self, buf: &mut BytesMut) -> Result<(), Error> {
        let len = self.encoded_len();
        if len > MAX_LENGTH_FIELD {
            return Err(Error::MessageTooLarge(len));
        }
        buf.reserve(len);
        buf.put_u32((u32::from(VERSION) << 24) | len as u32);
        buf.put_u32(
            (u32::from(self.header.flags.0) << 24) | (self.header.command_code & 0x00ff_ffff),
        );
        buf.put_u32(self.header.application_id);
        buf.put_u32(self.header.hop_by_hop);
        buf.put_u32(self.header.end_to_end);
        for avp in &self.avps {
            avp.encode_to(buf);
        }
        Ok(())
    }

    /// Decodes exactly one message from `buf`. AVP data shares `buf`'s storage.
    pub fn decode(buf: Bytes) -> Result<Message, DecodeError> {
        let header = Header::parse(&buf)?;
        check_version_and_length(&buf)?;
        let avps = decode_avps(buf.slice(HEADER_LEN..))?;
        Ok(Message { header, avps })
    }
}

/// Checks version and Message Length of a complete frame in `buf`.
fn check_version_and_length(buf: &[u8]) -> Result<(), DecodeError> {
    if buf[0] != VERSION {
        return Err(DecodeError::UnsupportedVersion(buf[0]));
    }
    let length = u32::from_be_bytes([0, buf[1], buf[2], buf[3]]) as usize;
    if length != buf.len() || length < HEADER_LEN || !length.is_multiple_of(4) {
        return Err(DecodeError::InvalidMessageLength { length });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::command;

    fn dwr() -> Message {
        let mut m = Message::request(command::DEVICE_WATCHDOG, 0, false);
        m.header.hop_by_hop = 0x0102_0304;
        m.header.end_to_end = 0x0a0b_0c0d;
        m.with(Avp::mandatory(
            avp::ORIGIN_HOST,
            &Value::DiameterIdentity("a.example".into()),
        ))
        .with(Avp::mandatory(
            avp::ORIGIN_REALM,
            &Value::DiameterIdentity("example".into()),
        ))
    }

    #[test]
    fn header_is_laid_out_as_rfc_6733() {
        let bytes = dwr().encode().unwrap();
        assert_eq!(bytes[0], 1);
        assert_eq!(
            u32::from_be_bytes([0, bytes[1], bytes[2], bytes[3]]) as usize,
            bytes.len()
        );
        assert_eq!(bytes[4], 0x80);
        assert_eq!(&bytes[5..8], &[0, 1, 24]);
        assert_eq!(&bytes[12..16], &[1, 2, 3, 4]);
        assert_eq!(Message::decode(bytes).unwrap(), dwr());
    }

    #[test]
    fn answer_echoes_identifiers_and_session_id() {
        let mut req = dwr();
        req.avps.insert(
            0,
            Avp::mandatory(avp::SESSION_ID, &Value::Utf8String("s;1".into())),
        );
        let mut ans = Message::answer_to(&req);
        ans.set_result_code(result::UNKNOWN_PEER);
        assert!(!ans.is_request());
        assert!(ans.header.flags.is_error());
        assert_eq!(ans.header.hop_by_hop, req.header.hop_by_hop);
        assert_eq!(ans.session_id(), Some("s;1"));
        assert_eq!(ans.result_code(), Some(3010));
    }

    #[test]
    fn bad_version_and_lengths_are_reported() {
        let mut bytes = BytesMut::from(&dwr().encode().unwrap()[..]);
        bytes[0] = 2;
        assert_eq!(
            Message::decode(bytes.clone().freeze()),
            Err(DecodeError::UnsupportedVersion(2))
        );
        bytes[0] = 1;
        bytes[3] -= 4;
        assert!(matches!(
            Message::decode(bytes.freeze()),
            Err(DecodeError::InvalidMessageLength { .. })
        ));
    }
}
