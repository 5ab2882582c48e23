//! AVPs: header, flags, padding, and every RFC 6733 data type.
//!
//! An [`Avp`] keeps its data as raw `Bytes` (a slice of the received buffer when decoded), so
//! decoding a message copies nothing; typed views come from [`Avp::value`] with the type the
//! dictionary gives, and typed constructors encode straight into the data bytes.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{AvpDataError, DecodeError};

/// AVP header length without the Vendor-Id field.
pub const AVP_HEADER_LEN: usize = 8;

/// AVP flag bits (RFC 6733 section 4.1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AvpFlags(u8);

impl AvpFlags {
    /// Vendor-Specific: the Vendor-Id field is present.
    pub const VENDOR: u8 = 0x80;
    /// Mandatory: the receiver must understand the AVP or reject the message.
    pub const MANDATORY: u8 = 0x40;
    /// Protected (kept for compatibility with older specifications).
    pub const PROTECTED: u8 = 0x20;

    /// Flags with the M bit set.
    pub const fn mandatory() -> Self {
        AvpFlags(Self::MANDATORY)
    }

    /// Flags with no bit set.
    pub const fn none() -> Self {
        AvpFlags(0)
    }

    /// From the raw octet; reserved bits are kept as received.
    pub const fn from_bits(bits: u8) -> Self {
        AvpFlags(bits)
    }

    /// The raw octet.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Is the M bit set?
    pub const fn is_mandatory(self) -> bool {
        self.0 & Self::MANDATORY != 0
    }

    /// Is the P bit set?
    pub const fn is_protected(self) -> bool {
        self.0 & Self::PROTECTED != 0
    }

    /// Is the V bit set?
    pub const fn is_vendor(self) -> bool {
        self.0 & Self::VENDOR != 0
    }
}

impl fmt::Debug for AvpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bit = |mask, c| if self.0 & mask != 0 { c } else { '-' };
        write!(
            f,
            "{}{}{}",
            bit(Self::VENDOR, 'V'),
            bit(Self::MANDATORY, 'M'),
            bit(Self::PROTECTED, 'P')
        )
    }
}

/// The data types of RFC 6733 section 4.2 and 4.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AvpType {
    OctetString,
    Integer32,
    Integer64,
    Unsigned32,
    Unsigned64,
    Float32,
    Float64,
    Grouped,
    Address,
    Time,
    Utf8String,
    DiameterIdentity,
    DiameterUri,
    Enumerated,
}

impl AvpType {
    /// Every data type of RFC 6733 sections 4.2 and 4.3.
    pub const ALL: [AvpType; 14] = [
        AvpType::OctetString,
        AvpType::Integer32,
        AvpType::Integer64,
        AvpType::Unsigned32,
        AvpType::Unsigned64,
        AvpType::Float32,
        AvpType::Float64,
        AvpType::Grouped,
        AvpType::Address,
        AvpType::Time,
        AvpType::Utf8String,
        AvpType::DiameterIdentity,
        AvpType::DiameterUri,
        AvpType::Enumerated,
    ];

    /// The fixed data length of the type, if it has one.
    pub fn fixed_len(self) -> Option<usize> {
        match self {
            AvpType::Integer32
            | AvpType::Unsigned32
            | AvpType::Float32
            | AvpType::Time
            | AvpType::Enumerated => Some(4),
            AvpType::Integer64 | AvpType::Unsigned64 | AvpType::Float64 => Some(8),
            _ => None,
        }
    }

    /// The name used in dictionary files.
    pub fn name(self) -> &'static str {
        match self {
            AvpType::OctetString => "OctetString",
            AvpType::Integer32 => "Integer32",
            AvpType::Integer64 => "Integer64",
            AvpType::Unsigned32 => "Unsigned32",
            AvpType::Unsigned64 => "Unsigned64",
            AvpType::Float32 => "Float32",
            AvpType::Float64 => "Float64",
            AvpType::Grouped => "Grouped",
            AvpType::Address => "Address",
            AvpType::Time => "Time",
            AvpType::Utf8String => "UTF8String",
            AvpType::DiameterIdentity => "DiameterIdentity",
            AvpType::DiameterUri => "DiameterURI",
            AvpType::Enumerated => "Enumerated",
        }
    }

    /// Parses a dictionary type name.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "OctetString" => AvpType::OctetString,
            "Integer32" => AvpType::Integer32,
            "Integer64" => AvpType::Integer64,
            "Unsigned32" => AvpType::Unsigned32,
            "Unsigned64" => AvpType::Unsigned64,
            "Float32" => AvpType::Float32,
            "Float64" => AvpType::Float64,
            "Grouped" => AvpType::Grouped,
            "Address" => AvpType::Address,
            "Time" => AvpType::Time,
            "UTF8String" => AvpType::Utf8String,
            "DiameterIdentity" => AvpType::DiameterIdentity,
            "DiameterURI" => AvpType::DiameterUri,
            "Enumerated" => AvpType::Enumerated,
            _ => return None,
        })
    }
}

/// An Address AVP value: a two-octet IANA address family followed by the address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// Family 1.
    V4(Ipv4Addr),
    /// Family 2.
    V6(Ipv6Addr),
    /// Any other family (E.164 is 8, for example), kept as raw octets.
    Other { family: u16, address: Bytes },
}

impl From<IpAddr> for Address {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Address::V4(v4),
            IpAddr::V6(v6) => Address::V6(v6),
        }
    }
}

impl Address {
    /// The IP address, for the IPv4 and IPv6 families.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Address::V4(a) => Some(IpAddr::V4(*a)),
            Address::V6(a) => Some(IpAddr::V6(*a)),
            Address::Other { .. } => None,
        }
    }
}

/// A Time AVP value: seconds since 1900-01-01 00:00 UTC as in NTP, 32 bits, which wraps in
/// February 2036. As RFC 6733 section 4.3.1 asks (through the SNTP rule of RFC 4330, NTP eras
/// of RFC 5905): a value with the top bit set is in era 0 (1968-01-20 to 2036-02-07), one
/// without it in era 1 (2036-02-07 to 2104-02-26).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DiameterTime(pub u32);

const NTP_TO_UNIX: i64 = 2_208_988_800;

impl DiameterTime {
    /// Earliest time a Time value says, in seconds since the Unix epoch (1968-01-20 03:14:08
    /// UTC, before the epoch).
    pub const MIN_UNIX_SECONDS: i64 = 0x8000_0000 - NTP_TO_UNIX;
    /// Latest time a Time value says, in seconds since the Unix epoch (2104-02-26 09:42:23
    /// UTC).
    pub const MAX_UNIX_SECONDS: i64 = 0x8000_0000 + (1 << 32) - 1 - NTP_TO_UNIX;

    /// From seconds since the Unix epoch. Times outside
    /// [`MIN_UNIX_SECONDS`](Self::MIN_UNIX_SECONDS)..=[`MAX_UNIX_SECONDS`](Self::MAX_UNIX_SECONDS)
    /// wrap around the 32-bit NTP seconds.
    pub fn from_unix_seconds(secs: u64) -> Self {
        DiameterTime((secs as i64).wrapping_add(NTP_TO_UNIX) as u32)
    }

    /// Seconds since the Unix epoch, negative before 1970. Total: every value maps to its
    /// instant in era 0 or era 1.
    pub fn to_unix_seconds(self) -> i64 {
        let ntp = i64::from(self.0);
        let era = if self.0 & 0x8000_0000 == 0 {
            1 << 32
        } else {
            0
        };
        ntp + era - NTP_TO_UNIX
    }
}

/// A decoded AVP value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    OctetString(Bytes),
    Integer32(i32),
    Integer64(i64),
    Unsigned32(u32),
    Unsigned64(u64),
    Float32(f32),
    Float64(f64),
    Grouped(Vec<Avp>),
    Address(Address),
    Time(DiameterTime),
    Utf8String(String),
    DiameterIdentity(String),
    DiameterUri(String),
    Enumerated(i32),
}

impl Value {
    /// The type of this value.
    pub fn avp_type(&self) -> AvpType {
        match self {
            Value::OctetString(_) => AvpType::OctetString,
            Value::Integer32(_) => AvpType::Integer32,
            Value::Integer64(_) => AvpType::Integer64,
            Value::Unsigned32(_) => AvpType::Unsigned32,
            Value::Unsigned64(_) => AvpType::Unsigned64,
            Value::Float32(_) => AvpType::Float32,
            Value::Float64(_) => AvpType::Float64,
            Value::Grouped(_) => AvpType::Grouped,
            Value::Address(_) => AvpType::Address,
            Value::Time(_) => AvpType::Time,
            Value::Utf8String(_) => AvpType::Utf8String,
            Value::DiameterIdentity(_) => AvpType::DiameterIdentity,
            Value::DiameterUri(_) => AvpType::DiameterUri,
            Value::Enumerated(_) => AvpType::Enumerated,
        }
    }

    /// Encodes the value into AVP data octets (without padding).
    pub fn encode(&self) -> Bytes {
        match self {
            Value::OctetString(b) => b.clone(),
            Value::Integer32(v) | Value::Enumerated(v) => Bytes::copy_from_slice(&v.to_be_bytes()),
            Value::Integer64(v) => Bytes::copy_from_slice(&v.to_be_bytes()),
            Value::Unsigned32(v) => Bytes::copy_from_slice(&v.to_be_bytes()),
            Value::Unsigned64(v) => Bytes::copy_from_slice(&v.to_be_bytes()),
            Value::Float32(v) => Bytes::copy_from_slice(&v.to_be_bytes()),
            Value::Float64(v) => Bytes::copy_from_slice(&v.to_be_bytes()),
            Value::Time(t) => Bytes::copy_from_slice(&t.0.to_be_bytes()),
            Value::Grouped(avps) => {
                let mut buf = BytesMut::with_capacity(avps.iter().map(Avp::encoded_len).sum());
                for avp in avps {
                    avp.encode_to(&mut buf);
                }
                buf.freeze()
            }
            Value::Address(addr) => {
                let mut buf = BytesMut::with_capacity(18);
                match addr {
                    Address::V4(a) => {
                        buf.put_u16(1);
                        buf.put_slice(&a.octets());
                    }
                    Address::V6(a) => {
                        buf.put_u16(2);
                        buf.put_slice(&a.octets());
                    }
                    Address::Other { family, address } => {
                        buf.put_u16(*family);
                        buf.put_slice(address);
                    }
                }
                buf.freeze()
            }
            Value::Utf8String(s) | Value::DiameterIdentity(s) | Value::DiameterUri(s) => {
                Bytes::copy_from_slice(s.as_bytes())
            }
        }
    }

    /// Checks that AVP data octets are a valid `ty` without building the value (no
    /// allocation). Grouped data is not looked into: decoding the children checks it.
    pub fn check(ty: AvpType, data: &Bytes) -> Result<(), AvpDataError> {
        if let Some(len) = ty.fixed_len()
            && data.len() != len
        {
            return Err(AvpDataError::Length {
                expected: len,
                actual: data.len(),
            });
        }
        match ty {
            AvpType::Address => decode_address(data).map(drop),
            AvpType::Utf8String => utf8(data).map(drop),
            AvpType::DiameterIdentity => {
                if data.is_empty() || !data.iter().all(|b| is_identity_byte(*b)) {
                    return Err(AvpDataError::Value("DiameterIdentity is not an FQDN"));
                }
                Ok(())
            }
            AvpType::DiameterUri => {
                let s = utf8(data)?;
                if !(s.starts_with("aaa://") || s.starts_with("aaas://")) {
                    return Err(AvpDataError::Value(
                        "DiameterURI must start with aaa:// or aaas://",
                    ));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Decodes AVP data octets as `ty`. Grouped values are decoded one level deep.
    pub fn decode(ty: AvpType, data: &Bytes) -> Result<Value, AvpDataError> {
        Self::check(ty, data)?;
        let be4 = || <[u8; 4]>::try_from(&data[..4]).expect("length checked");
        let be8 = || <[u8; 8]>::try_from(&data[..8]).expect("length checked");
        let text = || utf8(data).map(str::to_owned);
        Ok(match ty {
            AvpType::OctetString => Value::OctetString(data.clone()),
            AvpType::Integer32 => Value::Integer32(i32::from_be_bytes(be4())),
            AvpType::Enumerated => Value::Enumerated(i32::from_be_bytes(be4())),
            AvpType::Unsigned32 => Value::Unsigned32(u32::from_be_bytes(be4())),
            AvpType::Float32 => Value::Float32(f32::from_be_bytes(be4())),
            AvpType::Time => Value::Time(DiameterTime(u32::from_be_bytes(be4()))),
            AvpType::Integer64 => Value::Integer64(i64::from_be_bytes(be8())),
            AvpType::Unsigned64 => Value::Unsigned64(u64::from_be_bytes(be8())),
            AvpType::Float64 => Value::Float64(f64::from_be_bytes(be8())),
            AvpType::Grouped => {
                Value::Grouped(decode_avps(data.clone()).map_err(AvpDataError::Grouped)?)
            }
            AvpType::Address => Value::Address(decode_address(data)?),
            AvpType::Utf8String => Value::Utf8String(text()?),
            AvpType::DiameterIdentity => Value::DiameterIdentity(text()?),
            AvpType::DiameterUri => Value::DiameterUri(text()?),
        })
    }
}

fn is_identity_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')
}

fn utf8(data: &[u8]) -> Result<&str, AvpDataError> {
    std::str::from_utf8(data).map_err(|_| AvpDataError::Value("invalid UTF-8"))
}

fn decode_address(data: &Bytes) -> Result<Address, AvpDataError> {
    if data.len() < 2 {
        return Err(AvpDataError::Length {
            expected: 2,
            actual: data.len(),
        });
    }
    let family = u16::from_be_bytes([data[0], data[1]]);
    let rest = &data[2..];
    match family {
        1 => <[u8; 4]>::try_from(rest)
            .map(|o| Address::V4(Ipv4Addr::from(o)))
            .map_err(|_| AvpDataError::Length {
                expected: 6,
                actual: data.len(),
            }),
        2 => <[u8; 16]>::try_from(rest)
            .map(|o| Address::V6(Ipv6Addr::from(o)))
            .map_err(|_| AvpDataError::Length {
                expected: 18,
                actual: data.len(),
            }),
        _ => Ok(Address::Other {
            family,
            address: data.slice(2..),
        }),
    }
}

/// One AVP: code, flags, optional Vendor-Id and raw data (without padding).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Avp {
    code: u32,
    flags: AvpFlags,
    vendor_id: Option<u32>,
    data: Bytes,
}

impl fmt::Debug for Avp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Avp");
        d.field("code", &self.code);
        if let Some(v) = self.vendor_id {
            d.field("vendor", &v);
        }
        d.field("flags", &self.flags)
            .field("data", &self.data)
            .finish()
    }
}

impl Avp {
    /// An AVP from raw data. The V flag follows `vendor_id`; the M and P bits come from `flags`.
    pub fn from_raw(code: u32, flags: AvpFlags, vendor_id: Option<u32>, data: Bytes) -> Self {
        let bits = flags.bits() & !AvpFlags::VENDOR
            | if vendor_id.is_some() {
                AvpFlags::VENDOR
            } else {
                0
            };
        Avp {
            code,
            flags: AvpFlags(bits),
            vendor_id,
            data,
        }
    }

    /// An AVP with the value encoded; vendor 0 means no Vendor-Id field.
    pub fn new(code: u32, vendor: u32, flags: AvpFlags, value: &Value) -> Self {
        let vendor_id = (vendor != 0).then_some(vendor);
        Self::from_raw(code, flags, vendor_id, value.encode())
    }

    /// An IETF AVP with the M bit set, the usual case for base-protocol AVPs.
    pub fn mandatory(code: u32, value: &Value) -> Self {
        Self::new(code, 0, AvpFlags::mandatory(), value)
    }

    /// A vendor AVP with V and M set.
    pub fn vendor_mandatory(code: u32, vendor: u32, value: &Value) -> Self {
        Self::new(code, vendor, AvpFlags::mandatory(), value)
    }

    /// AVP code.
    pub fn code(&self) -> u32 {
        self.code
    }

    /// Flags, V bit included.
    pub fn flags(&self) -> AvpFlags {
        self.flags
    }

    /// Vendor-Id, if the V bit is set.
    pub fn vendor_id(&self) -> Option<u32> {
        self.vendor_id
    }

    /// Vendor-Id or 0 for IETF AVPs.
    pub fn vendor(&self) -> u32 {
        self.vendor_id.unwrap_or(0)
    }

    /// Raw data (no padding).
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    /// Is this the AVP `code` of `vendor` (0 for IETF)?
    pub fn is(&self, code: u32, vendor: u32) -> bool {
        self.code == code && self.vendor() == vendor
    }

    /// Header length: 8, or 12 with a Vendor-Id.
    pub fn header_len(&self) -> usize {
        AVP_HEADER_LEN + if self.vendor_id.is_some() { 4 } else { 0 }
    }

    /// Value of the AVP Length field (header and data, no padding).
    pub fn length_field(&self) -> usize {
        self.header_len() + self.data.len()
    }

    /// Encoded length, padding included.
    pub fn encoded_len(&self) -> usize {
        padded(self.length_field())
    }

    /// Appends the encoded AVP, padding included.
    pub fn encode_to(&self, buf: &mut BytesMut) {
        let len = self.length_field();
        buf.reserve(padded(len));
        buf.put_u32(self.code);
        buf.put_u32((u32::from(self.flags.bits()) << 24) | (len as u32 & 0x00ff_ffff));
        if let Some(v) = self.vendor_id {
            buf.put_u32(v);
        }
        buf.put_slice(&self.data);
        buf.put_bytes(0, padded(len) - len);
    }

    /// Decodes the value as `ty`.
    pub fn value(&self, ty: AvpType) -> Result<Value, AvpDataError> {
        Value::decode(ty, &self.data)
    }

    /// Reads an Unsigned32 value.
    pub fn as_u32(&self) -> Result<u32, AvpDataError> {
        match self.value(AvpType::Unsigned32)? {
            Value::Unsigned32(v) => Ok(v),
            _ => unreachable!("decoded as Unsigned32"),
        }
    }

    /// Reads an Unsigned64 value.
    pub fn as_u64(&self) -> Result<u64, AvpDataError> {
        match self.value(AvpType::Unsigned64)? {
            Value::Unsigned64(v) => Ok(v),
            _ => unreachable!("decoded as Unsigned64"),
        }
    }

    /// Reads an Integer32 or Enumerated value.
    pub fn as_i32(&self) -> Result<i32, AvpDataError> {
        match self.value(AvpType::Integer32)? {
            Value::Integer32(v) => Ok(v),
            _ => unreachable!("decoded as Integer32"),
        }
    }

    /// Reads a UTF8String (or DiameterIdentity) value without copying the checks elsewhere.
    pub fn as_str(&self) -> Result<&str, AvpDataError> {
        std::str::from_utf8(&self.data).map_err(|_| AvpDataError::Value("invalid UTF-8"))
    }

    /// Reads an Address value.
    pub fn as_address(&self) -> Result<Address, AvpDataError> {
        decode_address(&self.data)
    }

    /// Decodes the data as a list of AVPs (a Grouped value), sharing the buffer.
    pub fn grouped(&self) -> Result<Vec<Avp>, DecodeError> {
        decode_avps(self.data.clone())
    }
}

/// Rounds up to a multiple of four.
pub const fn padded(len: usize) -> usize {
    (len + 3) & !3
}

/// Decodes a sequence of AVPs filling `buf` exactly. Each AVP's data shares `buf`.
pub fn decode_avps(buf: Bytes) -> Result<Vec<Avp>, DecodeError> {
    let mut avps = Vec::new();
    let mut offset = 0;
    while offset < buf.len() {
        let (avp, next) = decode_avp_at(&buf, offset)?;
        avps.push(avp);
        offset = next;
    }
    Ok(avps)
}

/// Decodes the AVP starting at `offset`, returning it and the offset of the next one.
pub(crate) fn decode_avp_at(buf: &Bytes, offset: usize) -> Result<(Avp, usize), DecodeError> {
    let rest = &buf[offset..];
    if rest.len() < AVP_HEADER_LEN {
        return Err(DecodeError::TruncatedAvp {
            offset,
            available: rest.len(),
        });
    }
    let code = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
    let flags = AvpFlags(rest[4]);
    let length = u32::from_be_bytes([0, rest[5], rest[6], rest[7]]) as usize;
    let header_len = if flags.is_vendor() {
        AVP_HEADER_LEN + 4
    } else {
        AVP_HEADER_LEN
    };
    let vendor_id = if flags.is_vendor() {
        if rest.len() < header_len {
            return Err(DecodeError::TruncatedAvp {
                offset,
                available: rest.len(),
            });
        }
        Some(u32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]))
    } else {
        None
    };
    // The AVP's own length must cover its header and fit in what is left; the padding after
    // the last AVP must be there too, since the enclosing length is a multiple of four.
    if length < header_len || length > rest.len() || padded(length) > rest.len() {
        return Err(DecodeError::InvalidAvpLength {
            code,
            vendor_id,
            flags,
            length,
            offset,
        });
    }
    let data = buf.slice(offset + header_len..offset + length);
    Ok((
        Avp {
            code,
            flags,
            vendor_id,
            data,
        },
        offset + padded(length),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsigned32_avp_encodes_as_rfc_example() {
        let avp = Avp::mandatory(268, &Value::Unsigned32(2001));
        let mut buf = BytesMut::new();
        avp.encode_to(&mut buf);
        assert_eq!(&buf[..], &[0, 0, 1, 12, 0x40, 0, 0, 12, 0, 0, 0x07, 0xd1]);
    }

    #[test]
    fn vendor_avp_is_padded_and_round_trips() {
        let avp = Avp::vendor_mandatory(
            2021,
            2636,
            &Value::OctetString(Bytes::from_static(b"abcde")),
        );
        let mut buf = BytesMut::new();
        avp.encode_to(&mut buf);
        assert_eq!(buf.len(), 20, "12 header + 5 data + 3 padding");
        assert_eq!(&buf[5..8], &[0, 0, 17]);
        assert_eq!(&buf[17..], &[0, 0, 0]);
        let decoded = decode_avps(buf.freeze()).unwrap();
        assert_eq!(decoded, vec![avp]);
    }

    #[test]
    fn every_type_round_trips() {
        let values = [
            Value::OctetString(Bytes::from_static(b"\x00\x01")),
            Value::Integer32(-5),
            Value::Integer64(-1 << 40),
            Value::Unsigned32(7),
            Value::Unsigned64(1 << 40),
            Value::Float32(1.5),
            Value::Float64(-2.25),
            Value::Grouped(vec![Avp::mandatory(1, &Value::Utf8String("u".into()))]),
            Value::Address(Address::V4(Ipv4Addr::new(10, 0, 0, 1))),
            Value::Address(Address::V6(Ipv6Addr::LOCALHOST)),
            Value::Address(Address::Other {
                family: 8,
                address: Bytes::from_static(b"4912345"),
            }),
            Value::Time(DiameterTime::from_unix_seconds(1_700_000_000)),
            Value::Utf8String("Grüße".into()),
            Value::DiameterIdentity("sae1.example.net".into()),
            Value::DiameterUri("aaa://sae1.example.net:3868;transport=tcp".into()),
            Value::Enumerated(3),
        ];
        for v in values {
            let back = Value::decode(v.avp_type(), &v.encode()).unwrap();
            assert_eq!(back, v);
        }
    }

    #[test]
    fn wrong_fixed_length_is_a_length_error() {
        let err = Value::decode(AvpType::Unsigned32, &Bytes::from_static(b"\0\0\0")).unwrap_err();
        assert_eq!(
            err,
            AvpDataError::Length {
                expected: 4,
                actual: 3
            }
        );
    }

    #[test]
    fn time_survives_the_2036_rollover() {
        let t = DiameterTime::from_unix_seconds(2_200_000_000); // year 2039
        assert!(t.0 < 0x8000_0000);
        assert_eq!(t.to_unix_seconds(), 2_200_000_000);
    }

    #[test]
    fn time_before_the_unix_epoch_is_negative_not_a_panic() {
        // 1968-01-20 03:14:08 UTC, the first second of what a Time value says.
        assert_eq!(DiameterTime(0x8000_0000).to_unix_seconds(), -61_505_152);
        assert_eq!(
            DiameterTime(0x8000_0000).to_unix_seconds(),
            DiameterTime::MIN_UNIX_SECONDS
        );
        // The second before the Unix epoch, and the epoch itself.
        assert_eq!(DiameterTime(2_208_988_799).to_unix_seconds(), -1);
        assert_eq!(DiameterTime(2_208_988_800).to_unix_seconds(), 0);
        assert_eq!(DiameterTime(u32::MAX).to_unix_seconds(), 2_085_978_495);
        // Era 1 starts on 2036-02-07 06:28:16 UTC and ends in 2104.
        assert_eq!(DiameterTime(0).to_unix_seconds(), 2_085_978_496);
        assert_eq!(
            DiameterTime(0x7fff_ffff).to_unix_seconds(),
            DiameterTime::MAX_UNIX_SECONDS
        );
        assert_eq!(DiameterTime::MAX_UNIX_SECONDS, 4_233_462_143);
        // Far-off times wrap instead of overflowing.
        assert_eq!(
            DiameterTime::from_unix_seconds(u64::MAX),
            DiameterTime(2_208_988_799)
        );
    }

    #[test]
    fn avp_length_shorter_than_header_is_rejected() {
        let buf = Bytes::from_static(&[0, 0, 1, 8, 0x40, 0, 0, 4]);
        assert!(matches!(
            decode_avps(buf),
            Err(DecodeError::InvalidAvpLength { code: 264, .. })
        ));
    }

    #[test]
    fn missing_padding_is_rejected() {
        // Length 9 (one data octet) but no padding octets follow.
        let buf = Bytes::from_static(&[0, 0, 0, 1, 0x40, 0, 0, 9, b'a']);
        assert!(matches!(
            decode_avps(buf),
            Err(DecodeError::InvalidAvpLength { .. })
        ));
    }
}
