//! COPS-PR (RFC 3084) sub-objects carried in ClientSI (C-Num 9) and Named Decision Data
//! (Decision C-Type 5).
//!
//! A sub-object is `length (16) · S-Num (8) · S-Type (8) · data`, padded with zero octets to
//! a 4-octet boundary; the length counts the 4-octet header and the data but not the padding
//! (RFC 3084 §4, as for COPS objects in RFC 2748 §2.2). Every S-Num defined here uses
//! S-Type 1 (BER). OIDs and attribute values are BER-encoded with `rasn`.
//!
//! All functions work on the object's data: the octets after the 4-octet COPS object header.
//! Decoding never panics; every defect is a [`PrDecodeError`], which maps to the GPERR/CPERR
//! (or COPS Error code) to answer with.

use bytes::{BufMut, Bytes, BytesMut};
use rasn::prelude::{AsnType, Decode, Encode};
use rasn::types::{Any, FixedOctetString, ObjectIdentifier, OctetString};

/// S-Type 1: the data is BER-encoded (RFC 3084 §4).
pub const S_TYPE_BER: u8 = 1;
/// Octets in a sub-object header (length, S-Num, S-Type).
pub const SUB_OBJECT_HEADER_LEN: usize = 4;
/// Largest data part of one sub-object (the 16-bit length includes the header).
pub const MAX_SUB_OBJECT_DATA: usize = u16::MAX as usize - SUB_OBJECT_HEADER_LEN;
/// Most sub-identifiers an OID may have (RFC 2578 §3.5, kept by SPPI, RFC 3159).
pub const MAX_OID_ARCS: usize = 128;

/// S-Num values of RFC 3084 §4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SNum {
    /// Complete provisioning instance identifier (§4.1).
    Prid = 1,
    /// Prefix PRID (§4.2).
    Pprid = 2,
    /// Encoded provisioning instance data (§4.3).
    Epd = 3,
    /// Global provisioning error (§4.4).
    Gperr = 4,
    /// PRC class provisioning error (§4.5).
    Cperr = 5,
    /// PRID of the instance that caused an error (§4.6).
    ErrorPrid = 6,
}

impl SNum {
    /// The S-Num for an octet, if RFC 3084 defines it.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Prid,
            2 => Self::Pprid,
            3 => Self::Epd,
            4 => Self::Gperr,
            5 => Self::Cperr,
            6 => Self::ErrorPrid,
            _ => return None,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why COPS-PR data could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PrDecodeError {
    /// Fewer than 4 octets left where a sub-object header should start.
    #[error("sub-object header truncated: {available} octets left")]
    TruncatedHeader { available: usize },
    /// The length field is smaller than the header itself.
    #[error("sub-object length {length} is smaller than its 4-octet header")]
    LengthTooShort { length: u16 },
    /// The length field runs past the end of the data.
    #[error("sub-object length {length} runs past the end ({available} octets left)")]
    LengthPastEnd { length: u16, available: usize },
    /// Padding to the 4-octet boundary is missing or not zero.
    #[error("S-Num {s_num}: padding missing or not zero")]
    BadPadding { s_num: u8 },
    /// S-Num not defined by RFC 3084.
    #[error("unknown S-Num {s_num}")]
    UnknownSNum { s_num: u8 },
    /// S-Type other than 1 (BER).
    #[error("S-Num {s_num}: S-Type {s_type} is not BER (1)")]
    WrongSType { s_num: u8, s_type: u8 },
    /// A sub-object in a place the RFC 3084 §4 grammar does not allow.
    #[error("unexpected S-Num {found} where {expected} was expected")]
    UnexpectedSubObject { expected: &'static str, found: u8 },
    /// A sub-object the grammar requires is missing at the end.
    #[error("missing {expected} at the end of the data")]
    MissingSubObject { expected: &'static str },
    /// A BER length or value runs past the end of the sub-object.
    #[error("S-Num {s_num}: BER value truncated")]
    BerTruncated { s_num: u8 },
    /// A BER value with an unexpected tag (e.g. a PRID that is not an OID).
    #[error("S-Num {s_num}: unexpected ASN.1 tag")]
    UnexpectedTag { s_num: u8 },
    /// A BER value that is malformed in another way.
    #[error("S-Num {s_num}: malformed BER")]
    BerInvalid { s_num: u8 },
    /// Octets after the single BER value a PRID, PPRID or ErrorPRID carries.
    #[error("S-Num {s_num}: {extra} octets after the BER value")]
    TrailingData { s_num: u8, extra: usize },
    /// An OID with more than [`MAX_OID_ARCS`] sub-identifiers.
    #[error("S-Num {s_num}: OID has {arcs} sub-identifiers (at most {MAX_OID_ARCS})")]
    TooManyArcs { s_num: u8, arcs: usize },
    /// An OID whose first two arcs are not valid.
    #[error("S-Num {s_num}: invalid OID")]
    InvalidOid { s_num: u8 },
    /// An EPD attribute whose tag is known but whose value is malformed or out of range.
    #[error("EPD attribute {index}: malformed value")]
    BadAttribute { index: usize },
    /// GPERR or CPERR data is not exactly 4 octets.
    #[error("S-Num {s_num}: error data must be 4 octets, got {len}")]
    BadErrorLength { s_num: u8, len: usize },
}

/// What a receiver reports for a [`PrDecodeError`]: a global or a class error (RFC 3084 §4.4,
/// §4.5). A CPERR goes with the ErrorPRID of the offending instance, which the caller adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProvisioningError {
    /// Report as GPERR.
    Global(Gperr),
    /// Report as CPERR (with an ErrorPRID).
    Class(Cperr),
}

/// COPS Error code 3 (RFC 2748 §2.2.8): bad message format.
pub const COPS_ERROR_BAD_MESSAGE_FORMAT: u16 = 3;
/// COPS Error code 4 (RFC 2748 §2.2.8): unable to process.
pub const COPS_ERROR_UNABLE_TO_PROCESS: u16 = 4;

impl PrDecodeError {
    /// The GPERR or CPERR a PEP reports in a failure RPT for this defect in a decision, or a
    /// PDP would use to describe it (RFC 3084 §4.4, §4.5).
    pub fn provisioning_error(&self) -> ProvisioningError {
        use GperrCode as G;
        let global = |code| ProvisioningError::Global(Gperr { code, sub_code: 0 });
        match self {
            Self::TruncatedHeader { .. }
            | Self::LengthTooShort { .. }
            | Self::LengthPastEnd { .. }
            | Self::UnexpectedSubObject { .. }
            | Self::MissingSubObject { .. }
            | Self::BadErrorLength { .. } => global(G::MalformedDecision),
            Self::BadPadding { .. } => global(G::InvalidObjectPad),
            Self::UnknownSNum { .. } | Self::WrongSType { .. } => global(G::UnknownCopsPrObject),
            Self::BerTruncated { .. } | Self::TrailingData { .. } => global(G::InvalidAsn1Length),
            Self::UnexpectedTag { .. } => global(G::UnknownAsn1Tag),
            Self::BerInvalid { .. } | Self::InvalidOid { .. } | Self::TooManyArcs { .. } => {
                global(G::UnknownPibData)
            }
            Self::BadAttribute { .. } => ProvisioningError::Class(Cperr {
                code: CperrCode::AttrValueInvalid,
                sub_code: 0,
            }),
        }
    }

    /// The COPS Error code (RFC 2748 §2.2.8) for a PDP that rejects a REQ or RPT carrying
    /// this data: 3 (bad message format) for framing and BER defects, 4 (unable to process)
    /// for well-formed data it cannot use.
    pub fn cops_error_code(&self) -> u16 {
        match self {
            Self::UnknownSNum { .. }
            | Self::WrongSType { .. }
            | Self::TooManyArcs { .. }
            | Self::InvalidOid { .. }
            | Self::BadAttribute { .. } => COPS_ERROR_UNABLE_TO_PROCESS,
            _ => COPS_ERROR_BAD_MESSAGE_FORMAT,
        }
    }
}

/// Why a value could not be encoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PrEncodeError {
    /// The data does not fit the 16-bit sub-object length.
    #[error("S-Num {s_num}: {len} data octets do not fit one sub-object")]
    TooLong { s_num: u8, len: usize },
    /// The BER encoder refused a value.
    #[error("BER encoding failed: {0}")]
    Ber(String),
}

// ---------------------------------------------------------------------------------------------
// Error codes (RFC 3084 §4.4, §4.5)
// ---------------------------------------------------------------------------------------------

macro_rules! code_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $val:literal,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $var,)*
            /// A code this table does not name.
            Other(u16),
        }
        impl $name {
            /// The code for a wire value.
            pub fn from_u16(v: u16) -> Self {
                match v { $($val => Self::$var,)* other => Self::Other(other) }
            }
            /// The wire value.
            pub fn to_u16(self) -> u16 {
                match self { $(Self::$var => $val,)* Self::Other(v) => v }
            }
        }
    };
}

code_enum! {
    /// GPERR error codes (RFC 3084 §4.4).
    GperrCode {
        /// availMemLow.
        AvailMemLow = 1,
        /// availMemExhausted.
        AvailMemExhausted = 2,
        /// unknownASN.1Tag.
        UnknownAsn1Tag = 3,
        /// maxMsgSizeExceeded.
        MaxMsgSizeExceeded = 4,
        /// unknownError.
        UnknownError = 5,
        /// maxRequestStatesOpen.
        MaxRequestStatesOpen = 6,
        /// invalidASN.1Length.
        InvalidAsn1Length = 7,
        /// invalidObjectPad.
        InvalidObjectPad = 8,
        /// unknownPIBData.
        UnknownPibData = 9,
        /// unknownCOPSPRObject.
        UnknownCopsPrObject = 10,
        /// malformedDecision.
        MalformedDecision = 11,
    }
}

code_enum! {
    /// CPERR error codes (RFC 3084 §4.5).
    CperrCode {
        /// priSpaceExhausted.
        PriSpaceExhausted = 1,
        /// priInstanceInvalid.
        PriInstanceInvalid = 2,
        /// attrValueInvalid.
        AttrValueInvalid = 3,
        /// attrValueSupLimited.
        AttrValueSupLimited = 4,
        /// attrEnumSupLimited.
        AttrEnumSupLimited = 5,
        /// attrMaxLengthExceeded.
        AttrMaxLengthExceeded = 6,
        /// attrReferenceUnknown.
        AttrReferenceUnknown = 7,
        /// priNotifyOnly.
        PriNotifyOnly = 8,
        /// unknownPrc.
        UnknownPrc = 9,
        /// tooFewAttrs.
        TooFewAttrs = 10,
        /// invalidAttrType.
        InvalidAttrType = 11,
        /// deletedInRef.
        DeletedInRef = 12,
        /// priSpecificError.
        PriSpecificError = 13,
    }
}

/// Global provisioning error (S-Num 4): error code and sub-code, 16 bits each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Gperr {
    pub code: GperrCode,
    pub sub_code: u16,
}

/// PRC class provisioning error (S-Num 5): error code and sub-code, 16 bits each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cperr {
    pub code: CperrCode,
    pub sub_code: u16,
}

// ---------------------------------------------------------------------------------------------
// PRID
// ---------------------------------------------------------------------------------------------

/// An OBJECT IDENTIFIER as used by COPS-PR: a PRID (whose last arc is the instance id), a
/// PPRID, an ErrorPRID, or an OID-valued attribute.
///
/// Always 2..=[`MAX_OID_ARCS`] arcs, first arc 0..=2, second arc 0..=39 under 0 and 1.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prid(Vec<u32>);

impl Prid {
    /// An OID from its arcs; `None` unless it is valid (see the type docs).
    pub fn new(arcs: impl Into<Vec<u32>>) -> Option<Self> {
        let arcs = arcs.into();
        Self::valid(&arcs).then_some(Self(arcs))
    }

    fn valid(arcs: &[u32]) -> bool {
        match arcs {
            [first, second, ..] => {
                arcs.len() <= MAX_OID_ARCS
                    && match first {
                        0 | 1 => *second <= 39,
                        2 => *second <= u32::MAX - 80,
                        _ => false,
                    }
            }
            _ => false,
        }
    }

    /// The PRID of instance `instance` of the PRC whose entry OID is `prc`.
    pub fn instance_of(prc: &Prid, instance: u32) -> Option<Self> {
        let mut arcs = prc.0.clone();
        arcs.push(instance);
        Self::new(arcs)
    }

    /// The arcs.
    pub fn arcs(&self) -> &[u32] {
        &self.0
    }

    /// The last arc: the instance id when this is a PRID.
    pub fn instance_id(&self) -> u32 {
        // Never empty: at least two arcs by construction.
        self.0.last().copied().unwrap_or_default()
    }

    /// The PRC entry OID: all arcs but the last; `None` if that would leave one arc.
    pub fn prc(&self) -> Option<Prid> {
        Self::new(&self.0[..self.0.len() - 1])
    }

    /// Whether `prefix` is a prefix of (or equal to) this OID, as a PPRID selects instances.
    pub fn starts_with(&self, prefix: &Prid) -> bool {
        self.0.starts_with(&prefix.0)
    }

    /// The BER encoding (tag 06).
    pub fn to_ber(&self) -> Result<Vec<u8>, PrEncodeError> {
        let oid = ObjectIdentifier::new_unchecked(self.0.clone().into());
        rasn::ber::encode(&oid).map_err(|e| PrEncodeError::Ber(e.to_string()))
    }

    /// Decodes one BER OID filling `data` exactly; `s_num` labels errors.
    pub fn from_ber(data: &[u8], s_num: u8) -> Result<Self, PrDecodeError> {
        let (oid, rest) = rasn::ber::decode_with_remainder::<ObjectIdentifier>(data)
            .map_err(|e| ber_error(&e, s_num))?;
        if !rest.is_empty() {
            return Err(PrDecodeError::TrailingData {
                s_num,
                extra: rest.len(),
            });
        }
        Self::from_rasn(&oid, s_num)
    }

    fn from_rasn(oid: &ObjectIdentifier, s_num: u8) -> Result<Self, PrDecodeError> {
        let arcs: &[u32] = oid;
        if arcs.len() > MAX_OID_ARCS {
            return Err(PrDecodeError::TooManyArcs {
                s_num,
                arcs: arcs.len(),
            });
        }
        Self::new(arcs).ok_or(PrDecodeError::InvalidOid { s_num })
    }
}

impl std::fmt::Display for Prid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, arc) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{arc}")?;
        }
        Ok(())
    }
}

/// Maps a rasn BER error to a decode error for sub-object `s_num`.
fn ber_error(e: &rasn::error::DecodeError, s_num: u8) -> PrDecodeError {
    use rasn::error::{BerDecodeErrorKind, CodecDecodeError, DecodeErrorKind};
    match &*e.kind {
        DecodeErrorKind::Incomplete { .. } => PrDecodeError::BerTruncated { s_num },
        DecodeErrorKind::CodecSpecific {
            inner: CodecDecodeError::Ber(BerDecodeErrorKind::MismatchedTag { .. }),
        } => PrDecodeError::UnexpectedTag { s_num },
        DecodeErrorKind::Parser { msg } if msg.contains("Eof") => {
            PrDecodeError::BerTruncated { s_num }
        }
        _ => PrDecodeError::BerInvalid { s_num },
    }
}

// ---------------------------------------------------------------------------------------------
// EPD
// ---------------------------------------------------------------------------------------------

/// One attribute value of an EPD, with its SMIv2/SPPI BER tag.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EpdValue {
    /// ASN.1 NULL (05): the attribute is absent from the instance (RFC 3084 §4.3).
    Null,
    /// Integer32 and enumerations: INTEGER (02).
    Integer32(i32),
    /// OCTET STRING (04), also BITS and textual conventions on it.
    OctetString(Bytes),
    /// OBJECT IDENTIFIER (06), also ReferenceId, Prid and PrcIdentifierOid.
    Oid(Prid),
    /// IpAddress: [APPLICATION 0] IMPLICIT OCTET STRING (SIZE (4)).
    IpAddress([u8; 4]),
    /// Counter32: [APPLICATION 1].
    Counter32(u32),
    /// Unsigned32 / Gauge32: [APPLICATION 2].
    Unsigned32(u32),
    /// TimeTicks: [APPLICATION 3].
    TimeTicks(u32),
    /// Opaque: [APPLICATION 4].
    Opaque(Bytes),
    /// Counter64: [APPLICATION 6].
    Counter64(u64),
    /// Integer64: [APPLICATION 10] (SPPI, RFC 3159).
    Integer64(i64),
    /// Unsigned64: [APPLICATION 11] (SPPI, RFC 3159).
    Unsigned64(u64),
    /// A complete primitive TLV with any other tag, kept verbatim (must be one well-formed
    /// BER TLV whose tag is none of the above, or it will not round-trip as `Raw`).
    Raw(Bytes),
}

impl EpdValue {
    /// The value of an unsigned integer attribute (Counter32, Unsigned32, TimeTicks,
    /// Counter64, Unsigned64, or a non-negative Integer32/Integer64).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Self::Counter32(v) | Self::Unsigned32(v) | Self::TimeTicks(v) => Some(v.into()),
            Self::Counter64(v) | Self::Unsigned64(v) => Some(v),
            Self::Integer32(v) => u64::try_from(v).ok(),
            Self::Integer64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value of an integer attribute that fits 32 bits unsigned.
    pub fn as_u32(&self) -> Option<u32> {
        self.as_u64().and_then(|v| u32::try_from(v).ok())
    }

    /// The value of an Integer32 attribute.
    pub fn as_i32(&self) -> Option<i32> {
        match *self {
            Self::Integer32(v) => Some(v),
            _ => None,
        }
    }

    /// The value of an OID attribute.
    pub fn as_oid(&self) -> Option<&Prid> {
        match self {
            Self::Oid(p) => Some(p),
            _ => None,
        }
    }

    /// The octets of an OCTET STRING or Opaque attribute.
    pub fn as_octets(&self) -> Option<&Bytes> {
        match self {
            Self::OctetString(b) | Self::Opaque(b) => Some(b),
            _ => None,
        }
    }
}

/// The BER forms `EpdValue` uses, dispatched on the tag by rasn.
#[derive(AsnType, Decode, Encode, Debug)]
#[rasn(choice)]
enum SmiValue {
    Null(()),
    Integer(i32),
    OctetString(OctetString),
    Oid(ObjectIdentifier),
    #[rasn(tag(application, 0))]
    IpAddress(FixedOctetString<4>),
    #[rasn(tag(application, 1))]
    Counter32(u32),
    #[rasn(tag(application, 2))]
    Unsigned32(u32),
    #[rasn(tag(application, 3))]
    TimeTicks(u32),
    #[rasn(tag(application, 4))]
    Opaque(OctetString),
    #[rasn(tag(application, 6))]
    Counter64(u64),
    #[rasn(tag(application, 10))]
    Integer64(i64),
    #[rasn(tag(application, 11))]
    Unsigned64(u64),
}

/// The constructed bit of a BER identifier octet (X.690 §8.1.2.5).
const CONSTRUCTED: u8 = 0x20;

/// Encoded Provisioning Instance Data (S-Num 3): the BER encodings of the instance's
/// attribute values, concatenated in attribute order without an outer SEQUENCE
/// (RFC 3084 §4.3).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Epd(pub Vec<EpdValue>);

impl Epd {
    /// The BER encoding of the attribute values.
    pub fn to_ber(&self) -> Result<Vec<u8>, PrEncodeError> {
        let mut out = Vec::new();
        for v in &self.0 {
            let smi = match v {
                EpdValue::Raw(raw) => {
                    out.extend_from_slice(raw);
                    continue;
                }
                EpdValue::Null => SmiValue::Null(()),
                EpdValue::Integer32(i) => SmiValue::Integer(*i),
                EpdValue::OctetString(b) => SmiValue::OctetString(OctetString::from_slice(b)),
                EpdValue::Oid(p) => {
                    SmiValue::Oid(ObjectIdentifier::new_unchecked(p.0.clone().into()))
                }
                EpdValue::IpAddress(a) => SmiValue::IpAddress(FixedOctetString::new(*a)),
                EpdValue::Counter32(n) => SmiValue::Counter32(*n),
                EpdValue::Unsigned32(n) => SmiValue::Unsigned32(*n),
                EpdValue::TimeTicks(n) => SmiValue::TimeTicks(*n),
                EpdValue::Opaque(b) => SmiValue::Opaque(OctetString::from_slice(b)),
                EpdValue::Counter64(n) => SmiValue::Counter64(*n),
                EpdValue::Integer64(n) => SmiValue::Integer64(*n),
                EpdValue::Unsigned64(n) => SmiValue::Unsigned64(*n),
            };
            let ber = rasn::ber::encode(&smi).map_err(|e| PrEncodeError::Ber(e.to_string()))?;
            out.extend_from_slice(&ber);
        }
        Ok(out)
    }

    /// Decodes concatenated BER values. A TLV with an unknown tag becomes [`EpdValue::Raw`];
    /// a known tag with a malformed value, or any constructed encoding, is
    /// [`PrDecodeError::BadAttribute`].
    pub fn from_ber(data: &[u8]) -> Result<Self, PrDecodeError> {
        const S: u8 = SNum::Epd as u8;
        let mut values = Vec::new();
        let mut rest = data;
        while let Some(&identifier) = rest.first() {
            let index = values.len();
            // SMIv2/SPPI values are primitive. rasn recurses into constructed encodings, so
            // refusing them here keeps hostile nesting from exhausting the stack.
            if identifier & CONSTRUCTED != 0 {
                return Err(PrDecodeError::BadAttribute { index });
            }
            let (any, tail) = rasn::ber::decode_with_remainder::<Any>(rest).map_err(|e| {
                match ber_error(&e, S) {
                    PrDecodeError::BerInvalid { .. } | PrDecodeError::UnexpectedTag { .. } => {
                        PrDecodeError::BadAttribute { index }
                    }
                    other => other,
                }
            })?;
            rest = tail;
            let tlv = any.as_bytes();
            let value = match rasn::ber::decode_with_remainder::<SmiValue>(tlv) {
                Ok((smi, [])) => from_smi(smi, index)?,
                Ok(_) => return Err(PrDecodeError::BadAttribute { index }),
                Err(e) => match &*e.kind {
                    rasn::error::DecodeErrorKind::NoValidChoice { .. } => {
                        EpdValue::Raw(Bytes::copy_from_slice(tlv))
                    }
                    _ => return Err(PrDecodeError::BadAttribute { index }),
                },
            };
            values.push(value);
        }
        Ok(Self(values))
    }
}

fn from_smi(smi: SmiValue, index: usize) -> Result<EpdValue, PrDecodeError> {
    Ok(match smi {
        SmiValue::Null(()) => EpdValue::Null,
        SmiValue::Integer(i) => EpdValue::Integer32(i),
        SmiValue::OctetString(b) => EpdValue::OctetString(Bytes::copy_from_slice(&b)),
        SmiValue::Oid(oid) => EpdValue::Oid(
            Prid::from_rasn(&oid, SNum::Epd as u8)
                .map_err(|_| PrDecodeError::BadAttribute { index })?,
        ),
        SmiValue::IpAddress(a) => EpdValue::IpAddress(*a),
        SmiValue::Counter32(n) => EpdValue::Counter32(n),
        SmiValue::Unsigned32(n) => EpdValue::Unsigned32(n),
        SmiValue::TimeTicks(n) => EpdValue::TimeTicks(n),
        SmiValue::Opaque(b) => EpdValue::Opaque(Bytes::copy_from_slice(&b)),
        SmiValue::Counter64(n) => EpdValue::Counter64(n),
        SmiValue::Integer64(n) => EpdValue::Integer64(n),
        SmiValue::Unsigned64(n) => EpdValue::Unsigned64(n),
    })
}

// ---------------------------------------------------------------------------------------------
// Sub-object framing
// ---------------------------------------------------------------------------------------------

/// One framed sub-object, data without padding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubObject {
    pub s_num: u8,
    pub s_type: u8,
    pub data: Bytes,
}

/// Appends one sub-object (header, data, zero padding).
pub fn encode_sub_object(
    out: &mut BytesMut,
    s_num: u8,
    s_type: u8,
    data: &[u8],
) -> Result<(), PrEncodeError> {
    let len =
        u16::try_from(data.len() + SUB_OBJECT_HEADER_LEN).map_err(|_| PrEncodeError::TooLong {
            s_num,
            len: data.len(),
        })?;
    out.put_u16(len);
    out.put_u8(s_num);
    out.put_u8(s_type);
    out.put_slice(data);
    out.put_bytes(0, padding(data.len()));
    Ok(())
}

fn padding(data_len: usize) -> usize {
    (4 - (SUB_OBJECT_HEADER_LEN + data_len) % 4) % 4
}

/// Splits object data into sub-objects, checking lengths and zero padding.
pub fn decode_sub_objects(data: &Bytes) -> Result<Vec<SubObject>, PrDecodeError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let available = data.len() - pos;
        let Some(hdr) = data.get(pos..pos + SUB_OBJECT_HEADER_LEN) else {
            return Err(PrDecodeError::TruncatedHeader { available });
        };
        let length = u16::from_be_bytes([hdr[0], hdr[1]]);
        let (s_num, s_type) = (hdr[2], hdr[3]);
        let len = usize::from(length);
        if len < SUB_OBJECT_HEADER_LEN {
            return Err(PrDecodeError::LengthTooShort { length });
        }
        if len > available {
            return Err(PrDecodeError::LengthPastEnd { length, available });
        }
        let pad = padding(len - SUB_OBJECT_HEADER_LEN);
        match data.get(pos + len..pos + len + pad) {
            Some(p) if p.iter().all(|b| *b == 0) => {}
            _ => return Err(PrDecodeError::BadPadding { s_num }),
        }
        out.push(SubObject {
            s_num,
            s_type,
            data: data.slice(pos + SUB_OBJECT_HEADER_LEN..pos + len),
        });
        pos += len + pad;
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Typed sub-objects
// ---------------------------------------------------------------------------------------------

/// A decoded COPS-PR sub-object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrObject {
    /// S-Num 1.
    Prid(Prid),
    /// S-Num 2.
    Pprid(Prid),
    /// S-Num 3.
    Epd(Epd),
    /// S-Num 4.
    Gperr(Gperr),
    /// S-Num 5.
    Cperr(Cperr),
    /// S-Num 6.
    ErrorPrid(Prid),
}

impl PrObject {
    /// The S-Num.
    pub fn s_num(&self) -> SNum {
        match self {
            Self::Prid(_) => SNum::Prid,
            Self::Pprid(_) => SNum::Pprid,
            Self::Epd(_) => SNum::Epd,
            Self::Gperr(_) => SNum::Gperr,
            Self::Cperr(_) => SNum::Cperr,
            Self::ErrorPrid(_) => SNum::ErrorPrid,
        }
    }

    /// Appends the framed sub-object.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), PrEncodeError> {
        let s_num = self.s_num() as u8;
        let data = match self {
            Self::Prid(p) | Self::Pprid(p) | Self::ErrorPrid(p) => p.to_ber()?,
            Self::Epd(e) => e.to_ber()?,
            Self::Gperr(g) => error_data(g.code.to_u16(), g.sub_code),
            Self::Cperr(c) => error_data(c.code.to_u16(), c.sub_code),
        };
        encode_sub_object(out, s_num, S_TYPE_BER, &data)
    }

    /// Decodes the data of a framed sub-object.
    pub fn decode(sub: &SubObject) -> Result<Self, PrDecodeError> {
        let s_num = sub.s_num;
        let Some(kind) = SNum::from_u8(s_num) else {
            return Err(PrDecodeError::UnknownSNum { s_num });
        };
        if sub.s_type != S_TYPE_BER {
            return Err(PrDecodeError::WrongSType {
                s_num,
                s_type: sub.s_type,
            });
        }
        let d = &sub.data[..];
        Ok(match kind {
            SNum::Prid => Self::Prid(Prid::from_ber(d, s_num)?),
            SNum::Pprid => Self::Pprid(Prid::from_ber(d, s_num)?),
            SNum::ErrorPrid => Self::ErrorPrid(Prid::from_ber(d, s_num)?),
            SNum::Epd => Self::Epd(Epd::from_ber(d)?),
            SNum::Gperr | SNum::Cperr => {
                let [a, b, c, e] = *d else {
                    return Err(PrDecodeError::BadErrorLength {
                        s_num,
                        len: d.len(),
                    });
                };
                let (code, sub_code) = (u16::from_be_bytes([a, b]), u16::from_be_bytes([c, e]));
                if kind == SNum::Gperr {
                    Self::Gperr(Gperr {
                        code: GperrCode::from_u16(code),
                        sub_code,
                    })
                } else {
                    Self::Cperr(Cperr {
                        code: CperrCode::from_u16(code),
                        sub_code,
                    })
                }
            }
        })
    }
}

fn error_data(code: u16, sub_code: u16) -> Vec<u8> {
    let mut v = Vec::with_capacity(4);
    v.extend_from_slice(&code.to_be_bytes());
    v.extend_from_slice(&sub_code.to_be_bytes());
    v
}

/// Encodes sub-objects back to back.
pub fn encode_pr_objects(objects: &[PrObject]) -> Result<Bytes, PrEncodeError> {
    let mut out = BytesMut::new();
    for o in objects {
        o.encode(&mut out)?;
    }
    Ok(out.freeze())
}

/// Decodes every sub-object of the data.
pub fn decode_pr_objects(data: &Bytes) -> Result<Vec<PrObject>, PrDecodeError> {
    decode_sub_objects(data)?
        .iter()
        .map(PrObject::decode)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// RFC 3084 §4 structures
// ---------------------------------------------------------------------------------------------

/// One provisioning instance: `<PRID> <EPD>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrInstance {
    pub prid: Prid,
    pub epd: Epd,
}

/// Install decision (Named Decision Data with the Install command): `*(<PRID> <EPD>)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstallDecision(pub Vec<PrInstance>);

/// What a remove decision deletes: one instance or every instance under a prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoveTarget {
    /// `<PRID>`: one instance.
    Instance(Prid),
    /// `<PPRID>`: all instances under the prefix.
    Prefix(Prid),
}

/// Remove decision (Named Decision Data with the Remove command): `*(<PRID> | <PPRID>)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemoveDecision(pub Vec<RemoveTarget>);

/// Named ClientSI of a REQ: `*(<PRID> <EPD>)`, the PEP's request instances (RFC 3084 §4).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestClientSi(pub Vec<PrInstance>);

/// One `<report> ::= <ErrorPRID> <CPERR> *(<PRID> <EPD>)` of a success/failure RPT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassReport {
    pub error_prid: Prid,
    pub cperr: Cperr,
    pub instances: Vec<PrInstance>,
}

/// Named ClientSI of a success or failure RPT: `[<GPERR>] *(<report>)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutcomeReport {
    pub gperr: Option<Gperr>,
    pub reports: Vec<ClassReport>,
}

/// Named ClientSI of an accounting RPT: `*(<PRID> <EPD>)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountingReport(pub Vec<PrInstance>);

fn push_instances(objs: &mut Vec<PrObject>, instances: &[PrInstance]) {
    for i in instances {
        objs.push(PrObject::Prid(i.prid.clone()));
        objs.push(PrObject::Epd(i.epd.clone()));
    }
}

fn s_num_name(s: SNum) -> &'static str {
    match s {
        SNum::Prid => "PRID",
        SNum::Pprid => "PPRID",
        SNum::Epd => "EPD",
        SNum::Gperr => "GPERR",
        SNum::Cperr => "CPERR",
        SNum::ErrorPrid => "ErrorPRID",
    }
}

/// Reads `*(<PRID> <EPD>)`, stopping before anything that is not a PRID.
fn take_instances(
    objs: &mut std::iter::Peekable<std::vec::IntoIter<PrObject>>,
) -> Result<Vec<PrInstance>, PrDecodeError> {
    let mut out = Vec::new();
    while let Some(PrObject::Prid(_)) = objs.peek() {
        let Some(PrObject::Prid(prid)) = objs.next() else {
            break;
        };
        match objs.next() {
            Some(PrObject::Epd(epd)) => out.push(PrInstance { prid, epd }),
            Some(other) => {
                return Err(PrDecodeError::UnexpectedSubObject {
                    expected: "EPD",
                    found: other.s_num() as u8,
                });
            }
            None => return Err(PrDecodeError::MissingSubObject { expected: "EPD" }),
        }
    }
    Ok(out)
}

fn decode_instance_list(data: &Bytes) -> Result<Vec<PrInstance>, PrDecodeError> {
    let mut objs = decode_pr_objects(data)?.into_iter().peekable();
    let out = take_instances(&mut objs)?;
    match objs.next() {
        None => Ok(out),
        Some(o) => Err(PrDecodeError::UnexpectedSubObject {
            expected: "PRID",
            found: o.s_num() as u8,
        }),
    }
}

fn encode_instance_list(instances: &[PrInstance]) -> Result<Bytes, PrEncodeError> {
    let mut objs = Vec::with_capacity(instances.len() * 2);
    push_instances(&mut objs, instances);
    encode_pr_objects(&objs)
}

/// Encodes an install decision.
pub fn encode_install_decision(d: &InstallDecision) -> Result<Bytes, PrEncodeError> {
    encode_instance_list(&d.0)
}

/// Decodes an install decision.
pub fn decode_install_decision(data: &Bytes) -> Result<InstallDecision, PrDecodeError> {
    decode_instance_list(data).map(InstallDecision)
}

/// Encodes a remove decision.
pub fn encode_remove_decision(d: &RemoveDecision) -> Result<Bytes, PrEncodeError> {
    let objs: Vec<PrObject> =
        d.0.iter()
            .map(|t| match t {
                RemoveTarget::Instance(p) => PrObject::Prid(p.clone()),
                RemoveTarget::Prefix(p) => PrObject::Pprid(p.clone()),
            })
            .collect();
    encode_pr_objects(&objs)
}

/// Decodes a remove decision.
pub fn decode_remove_decision(data: &Bytes) -> Result<RemoveDecision, PrDecodeError> {
    decode_pr_objects(data)?
        .into_iter()
        .map(|o| match o {
            PrObject::Prid(p) => Ok(RemoveTarget::Instance(p)),
            PrObject::Pprid(p) => Ok(RemoveTarget::Prefix(p)),
            other => Err(PrDecodeError::UnexpectedSubObject {
                expected: "PRID or PPRID",
                found: other.s_num() as u8,
            }),
        })
        .collect::<Result<_, _>>()
        .map(RemoveDecision)
}

/// Encodes the Named ClientSI of a REQ.
pub fn encode_request_client_si(r: &RequestClientSi) -> Result<Bytes, PrEncodeError> {
    encode_instance_list(&r.0)
}

/// Decodes the Named ClientSI of a REQ.
pub fn decode_request_client_si(data: &Bytes) -> Result<RequestClientSi, PrDecodeError> {
    decode_instance_list(data).map(RequestClientSi)
}

/// Encodes the Named ClientSI of an accounting RPT.
pub fn encode_accounting_report(r: &AccountingReport) -> Result<Bytes, PrEncodeError> {
    encode_instance_list(&r.0)
}

/// Decodes the Named ClientSI of an accounting RPT.
pub fn decode_accounting_report(data: &Bytes) -> Result<AccountingReport, PrDecodeError> {
    decode_instance_list(data).map(AccountingReport)
}

/// Encodes the Named ClientSI of a success or failure RPT.
pub fn encode_outcome_report(r: &OutcomeReport) -> Result<Bytes, PrEncodeError> {
    let mut objs = Vec::new();
    if let Some(g) = r.gperr {
        objs.push(PrObject::Gperr(g));
    }
    for rep in &r.reports {
        objs.push(PrObject::ErrorPrid(rep.error_prid.clone()));
        objs.push(PrObject::Cperr(rep.cperr));
        push_instances(&mut objs, &rep.instances);
    }
    encode_pr_objects(&objs)
}

/// Decodes the Named ClientSI of a success or failure RPT.
pub fn decode_outcome_report(data: &Bytes) -> Result<OutcomeReport, PrDecodeError> {
    let mut objs = decode_pr_objects(data)?.into_iter().peekable();
    let gperr = match objs.peek() {
        Some(PrObject::Gperr(g)) => {
            let g = *g;
            objs.next();
            Some(g)
        }
        _ => None,
    };
    let mut reports = Vec::new();
    while let Some(o) = objs.next() {
        let PrObject::ErrorPrid(error_prid) = o else {
            return Err(PrDecodeError::UnexpectedSubObject {
                expected: s_num_name(SNum::ErrorPrid),
                found: o.s_num() as u8,
            });
        };
        let cperr = match objs.next() {
            Some(PrObject::Cperr(c)) => c,
            Some(other) => {
                return Err(PrDecodeError::UnexpectedSubObject {
                    expected: s_num_name(SNum::Cperr),
                    found: other.s_num() as u8,
                });
            }
            None => {
                return Err(PrDecodeError::MissingSubObject {
                    expected: s_num_name(SNum::Cperr),
                });
            }
        };
        let instances = take_instances(&mut objs)?;
        reports.push(ClassReport {
            error_prid,
            cperr,
            instances,
        });
    }
    Ok(OutcomeReport { gperr, reports })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn prid(arcs: &[u32]) -> Prid {
        Prid::new(arcs).expect("valid test OID")
    }

    /// X.690 §8.19: 1.3 → 40*1+3 = 0x2b; arcs below 128 are one octet each.
    const PRID_BER: [u8; 11] = [
        0x06, 0x09, 0x2b, 0x06, 0x01, 0x02, 0x02, 0x02, 0x01, 0x02, 0x01,
    ];

    #[test]
    fn prid_ber_matches_x690_by_hand() {
        let p = prid(&[1, 3, 6, 1, 2, 2, 2, 1, 2, 1]);
        assert_eq!(p.to_ber().unwrap(), PRID_BER);
        assert_eq!(Prid::from_ber(&PRID_BER, 1).unwrap(), p);
    }

    /// RFC 3084 §4: length 4 + 11 = 15 (padding not counted), one zero pad octet.
    #[test]
    fn prid_sub_object_framing_rfc3084_s4() {
        let p = prid(&[1, 3, 6, 1, 2, 2, 2, 1, 2, 1]);
        let bytes = encode_pr_objects(&[PrObject::Prid(p.clone())]).unwrap();
        let mut want = vec![0x00, 0x0f, 0x01, 0x01];
        want.extend_from_slice(&PRID_BER);
        want.push(0);
        assert_eq!(&bytes[..], &want[..]);
        assert_eq!(decode_pr_objects(&bytes).unwrap(), vec![PrObject::Prid(p)]);
    }

    /// Multi-octet arc: 200 = 0b1_1001000 → 81 48 (X.690 §8.19.2).
    #[test]
    fn prid_multi_octet_arc_by_hand() {
        let p = prid(&[1, 3, 6, 1, 4, 1, 200, 16384]);
        // 16384 = 2^14 → 81 80 00.
        let want = [
            0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x81, 0x48, 0x81, 0x80, 0x00,
        ];
        assert_eq!(p.to_ber().unwrap(), want);
        assert_eq!(Prid::from_ber(&want, 1).unwrap(), p);
    }

    /// EPD by hand (RFC 3084 §4.3, X.690 §8.3, §8.7, §8.8, RFC 2578 §7.1):
    /// Integer32 5 → 02 01 05; Integer32 -1 → 02 01 ff; Unsigned32 300 → 42 02 01 2c;
    /// OCTET STRING "ab" → 04 02 61 62; NULL → 05 00; IpAddress 10.0.0.1 → 40 04 0a 00 00 01;
    /// Counter64 2^32 → 46 05 01 00 00 00 00; Counter32 0xffffffff → 41 05 00 ff ff ff ff;
    /// OID 1.3.6 → 06 02 2b 06.
    #[test]
    fn epd_ber_matches_x690_by_hand() {
        let epd = Epd(vec![
            EpdValue::Integer32(5),
            EpdValue::Integer32(-1),
            EpdValue::Unsigned32(300),
            EpdValue::OctetString(Bytes::from_static(b"ab")),
            EpdValue::Null,
            EpdValue::IpAddress([10, 0, 0, 1]),
            EpdValue::Counter64(1 << 32),
            EpdValue::Counter32(u32::MAX),
            EpdValue::Oid(prid(&[1, 3, 6])),
        ]);
        let want: Vec<u8> = [
            &[0x02, 0x01, 0x05][..],
            &[0x02, 0x01, 0xff],
            &[0x42, 0x02, 0x01, 0x2c],
            &[0x04, 0x02, 0x61, 0x62],
            &[0x05, 0x00],
            &[0x40, 0x04, 0x0a, 0x00, 0x00, 0x01],
            &[0x46, 0x05, 0x01, 0x00, 0x00, 0x00, 0x00],
            &[0x41, 0x05, 0x00, 0xff, 0xff, 0xff, 0xff],
            &[0x06, 0x02, 0x2b, 0x06],
        ]
        .concat();
        assert_eq!(epd.to_ber().unwrap(), want);
        assert_eq!(Epd::from_ber(&want).unwrap(), epd);
        // Framed: 4 + 40 = 44 octets, already aligned.
        let framed = encode_pr_objects(&[PrObject::Epd(epd)]).unwrap();
        assert_eq!(&framed[..4], &[0x00, 44, 0x03, 0x01]);
        assert_eq!(framed.len(), 44);
    }

    #[test]
    fn epd_spi_64_bit_and_other_application_tags() {
        // Integer64 -2 → 4a 01 fe; Unsigned64 1 → 4b 01 01; TimeTicks 1 → 43 01 01;
        // Opaque 00 → 44 01 00.
        let want = [
            0x4a, 0x01, 0xfe, 0x4b, 0x01, 0x01, 0x43, 0x01, 0x01, 0x44, 0x01, 0x00,
        ];
        let epd = Epd(vec![
            EpdValue::Integer64(-2),
            EpdValue::Unsigned64(1),
            EpdValue::TimeTicks(1),
            EpdValue::Opaque(Bytes::from_static(&[0])),
        ]);
        assert_eq!(epd.to_ber().unwrap(), want);
        assert_eq!(Epd::from_ber(&want).unwrap(), epd);
    }

    #[test]
    fn epd_unknown_tag_kept_raw() {
        // [APPLICATION 20] 2 octets, BOOLEAN true.
        let data = [0x54, 0x02, 0xaa, 0xbb, 0x01, 0x01, 0xff];
        let epd = Epd::from_ber(&data).unwrap();
        assert_eq!(
            epd.0,
            vec![
                EpdValue::Raw(Bytes::from_static(&[0x54, 0x02, 0xaa, 0xbb])),
                EpdValue::Raw(Bytes::from_static(&[0x01, 0x01, 0xff])),
            ]
        );
        assert_eq!(epd.to_ber().unwrap(), data);
    }

    #[test]
    fn epd_malformed_known_tag_is_bad_attribute() {
        // IpAddress with 3 octets; Integer32 too wide for 32 bits.
        let e = Epd::from_ber(&[0x02, 0x01, 0x01, 0x40, 0x03, 1, 2, 3]).unwrap_err();
        assert_eq!(e, PrDecodeError::BadAttribute { index: 1 });
        let e = Epd::from_ber(&[0x02, 0x05, 0x01, 0, 0, 0, 0]).unwrap_err();
        assert_eq!(e, PrDecodeError::BadAttribute { index: 0 });
        assert_eq!(
            e.provisioning_error(),
            ProvisioningError::Class(Cperr {
                code: CperrCode::AttrValueInvalid,
                sub_code: 0
            })
        );
    }

    #[test]
    fn epd_truncated_ber() {
        let e = Epd::from_ber(&[0x04, 0x05, 0x61]).unwrap_err();
        assert_eq!(e, PrDecodeError::BerTruncated { s_num: 3 });
        assert_eq!(
            e.provisioning_error(),
            ProvisioningError::Global(Gperr {
                code: GperrCode::InvalidAsn1Length,
                sub_code: 0
            })
        );
    }

    #[test]
    fn prid_errors() {
        // Truncated OID.
        assert_eq!(
            Prid::from_ber(&[0x06, 0x05, 0x2b, 0x06], 1),
            Err(PrDecodeError::BerTruncated { s_num: 1 })
        );
        // Not an OID.
        assert_eq!(
            Prid::from_ber(&[0x02, 0x01, 0x01], 1),
            Err(PrDecodeError::UnexpectedTag { s_num: 1 })
        );
        // Trailing octets.
        assert_eq!(
            Prid::from_ber(&[0x06, 0x01, 0x2b, 0x00], 1),
            Err(PrDecodeError::TrailingData { s_num: 1, extra: 1 })
        );
        // 129 arcs.
        let mut many = vec![0x06, 0x80, 0x2b];
        many.extend(std::iter::repeat_n(0x01, 127));
        many[1] = 128;
        let mut long_form = vec![0x06, 0x81, 128];
        long_form.extend_from_slice(&many[2..]);
        assert_eq!(
            Prid::from_ber(&long_form, 1),
            Err(PrDecodeError::TooManyArcs {
                s_num: 1,
                arcs: 129
            })
        );
        // Exactly 128 arcs is fine.
        let mut ok = vec![0x06, 0x7f, 0x2b];
        ok.extend(std::iter::repeat_n(0x01, 126));
        assert_eq!(Prid::from_ber(&ok, 1).unwrap().arcs().len(), 128);
        assert!(Prid::new(vec![1; 129]).is_none());
        assert!(Prid::new(vec![1]).is_none());
        assert!(Prid::new(vec![3, 1]).is_none());
        assert!(Prid::new(vec![1, 40]).is_none());
    }

    #[test]
    fn prid_helpers() {
        let prc = prid(&[1, 3, 6, 1, 2, 2, 2, 1, 2, 1]);
        let p = Prid::instance_of(&prc, 7).unwrap();
        assert_eq!(p.instance_id(), 7);
        assert_eq!(p.prc().unwrap(), prc);
        assert!(p.starts_with(&prc));
        assert!(!prc.starts_with(&p));
        assert_eq!(p.to_string(), "1.3.6.1.2.2.2.1.2.1.7");
        assert!(prid(&[1, 3]).prc().is_none());
    }

    #[test]
    fn framing_errors() {
        let b = |v: &[u8]| Bytes::copy_from_slice(v);
        assert_eq!(
            decode_sub_objects(&b(&[0, 8, 1])),
            Err(PrDecodeError::TruncatedHeader { available: 3 })
        );
        assert_eq!(
            decode_sub_objects(&b(&[0, 3, 1, 1])),
            Err(PrDecodeError::LengthTooShort { length: 3 })
        );
        assert_eq!(
            decode_sub_objects(&b(&[0, 9, 1, 1, 6, 1, 0x2b, 0])),
            Err(PrDecodeError::LengthPastEnd {
                length: 9,
                available: 8
            })
        );
        // Missing padding, then non-zero padding.
        assert_eq!(
            decode_sub_objects(&b(&[0, 7, 1, 1, 6, 1, 0x2b])),
            Err(PrDecodeError::BadPadding { s_num: 1 })
        );
        let e = decode_sub_objects(&b(&[0, 7, 1, 1, 6, 1, 0x2b, 9])).unwrap_err();
        assert_eq!(e, PrDecodeError::BadPadding { s_num: 1 });
        assert_eq!(
            e.provisioning_error(),
            ProvisioningError::Global(Gperr {
                code: GperrCode::InvalidObjectPad,
                sub_code: 0
            })
        );
        // Wrong S-Type, unknown S-Num.
        assert_eq!(
            decode_pr_objects(&b(&[0, 7, 1, 2, 6, 1, 0x2b, 0])),
            Err(PrDecodeError::WrongSType {
                s_num: 1,
                s_type: 2
            })
        );
        assert_eq!(
            decode_pr_objects(&b(&[0, 4, 7, 1])),
            Err(PrDecodeError::UnknownSNum { s_num: 7 })
        );
        assert_eq!(
            decode_pr_objects(&b(&[0, 6, 4, 1, 0, 1, 0, 0])),
            Err(PrDecodeError::BadErrorLength { s_num: 4, len: 2 })
        );
    }

    #[test]
    fn gperr_cperr_wire_and_tables() {
        let g = Gperr {
            code: GperrCode::MalformedDecision,
            sub_code: 2,
        };
        let c = Cperr {
            code: CperrCode::PriSpecificError,
            sub_code: 0x1234,
        };
        let bytes = encode_pr_objects(&[PrObject::Gperr(g), PrObject::Cperr(c)]).unwrap();
        assert_eq!(
            &bytes[..],
            &[0, 8, 4, 1, 0, 11, 0, 2, 0, 8, 5, 1, 0, 13, 0x12, 0x34]
        );
        assert_eq!(
            decode_pr_objects(&bytes).unwrap(),
            vec![PrObject::Gperr(g), PrObject::Cperr(c)]
        );
        for v in 0..=14u16 {
            assert_eq!(GperrCode::from_u16(v).to_u16(), v);
            assert_eq!(CperrCode::from_u16(v).to_u16(), v);
        }
        assert_eq!(GperrCode::from_u16(12), GperrCode::Other(12));
        assert_eq!(CperrCode::from_u16(9), CperrCode::UnknownPrc);
    }

    fn instance(arc: u32, v: i32) -> PrInstance {
        PrInstance {
            prid: prid(&[1, 3, 6, 1, 2, 2, 2, 1, 2, 1, arc]),
            epd: Epd(vec![EpdValue::Integer32(v)]),
        }
    }

    #[test]
    fn install_decision_grammar_rfc3084_s4() {
        let d = InstallDecision(vec![instance(1, 10), instance(2, 20)]);
        let bytes = encode_install_decision(&d).unwrap();
        assert_eq!(decode_install_decision(&bytes).unwrap(), d);
        // PRID without EPD.
        let only_prid = encode_pr_objects(&[PrObject::Prid(prid(&[1, 3, 6]))]).unwrap();
        assert_eq!(
            decode_install_decision(&only_prid),
            Err(PrDecodeError::MissingSubObject { expected: "EPD" })
        );
        // EPD first.
        let epd_first = encode_pr_objects(&[PrObject::Epd(Epd::default())]).unwrap();
        let e = decode_install_decision(&epd_first).unwrap_err();
        assert_eq!(
            e,
            PrDecodeError::UnexpectedSubObject {
                expected: "PRID",
                found: 3
            }
        );
        assert_eq!(e.cops_error_code(), COPS_ERROR_BAD_MESSAGE_FORMAT);
        // Empty data is an empty decision.
        assert_eq!(
            decode_install_decision(&Bytes::new()).unwrap(),
            InstallDecision::default()
        );
    }

    #[test]
    fn remove_decision_grammar_rfc3084_s4() {
        let d = RemoveDecision(vec![
            RemoveTarget::Instance(prid(&[1, 3, 6, 1, 7])),
            RemoveTarget::Prefix(prid(&[1, 3, 6, 1])),
        ]);
        let bytes = encode_remove_decision(&d).unwrap();
        assert_eq!(bytes[2], 1);
        assert_eq!(decode_remove_decision(&bytes).unwrap(), d);
        let with_epd = encode_pr_objects(&[PrObject::Epd(Epd::default())]).unwrap();
        assert!(matches!(
            decode_remove_decision(&with_epd),
            Err(PrDecodeError::UnexpectedSubObject { found: 3, .. })
        ));
    }

    #[test]
    fn request_and_accounting_client_si() {
        let r = RequestClientSi(vec![instance(1, 1)]);
        assert_eq!(
            decode_request_client_si(&encode_request_client_si(&r).unwrap()).unwrap(),
            r
        );
        let a = AccountingReport(vec![instance(3, 3), instance(4, 4)]);
        assert_eq!(
            decode_accounting_report(&encode_accounting_report(&a).unwrap()).unwrap(),
            a
        );
    }

    #[test]
    fn outcome_report_rfc3084_s4() {
        let r = OutcomeReport {
            gperr: Some(Gperr {
                code: GperrCode::AvailMemLow,
                sub_code: 0,
            }),
            reports: vec![
                ClassReport {
                    error_prid: prid(&[1, 3, 6, 1, 9]),
                    cperr: Cperr {
                        code: CperrCode::AttrValueInvalid,
                        sub_code: 2,
                    },
                    instances: vec![instance(9, 1)],
                },
                ClassReport {
                    error_prid: prid(&[1, 3, 6, 1, 10]),
                    cperr: Cperr {
                        code: CperrCode::UnknownPrc,
                        sub_code: 0,
                    },
                    instances: vec![],
                },
            ],
        };
        let bytes = encode_outcome_report(&r).unwrap();
        assert_eq!(decode_outcome_report(&bytes).unwrap(), r);
        assert_eq!(
            decode_outcome_report(&Bytes::new()).unwrap(),
            OutcomeReport::default()
        );
        // ErrorPRID without CPERR.
        let bad = encode_pr_objects(&[PrObject::ErrorPrid(prid(&[1, 3]))]).unwrap();
        assert_eq!(
            decode_outcome_report(&bad),
            Err(PrDecodeError::MissingSubObject { expected: "CPERR" })
        );
        // GPERR after a report.
        let bad = encode_pr_objects(&[
            PrObject::ErrorPrid(prid(&[1, 3])),
            PrObject::Cperr(Cperr {
                code: CperrCode::UnknownPrc,
                sub_code: 0,
            }),
            PrObject::Gperr(Gperr {
                code: GperrCode::UnknownError,
                sub_code: 0,
            }),
        ])
        .unwrap();
        assert!(matches!(
            decode_outcome_report(&bad),
            Err(PrDecodeError::UnexpectedSubObject { found: 4, .. })
        ));
    }

    #[test]
    fn oversized_sub_object_is_an_encode_error() {
        let big = Epd(vec![EpdValue::OctetString(Bytes::from(vec![0u8; 70_000]))]);
        assert!(matches!(
            encode_pr_objects(&[PrObject::Epd(big)]),
            Err(PrEncodeError::TooLong { s_num: 3, .. })
        ));
    }

    #[test]
    fn deeply_nested_indefinite_ber_does_not_crash() {
        // Constructed OCTET STRING, indefinite length, nested thousands deep.
        let mut data = Vec::new();
        for _ in 0..30_000 {
            data.extend_from_slice(&[0x24, 0x80]);
        }
        assert_eq!(
            Epd::from_ber(&data),
            Err(PrDecodeError::BadAttribute { index: 0 })
        );
        // Definite-length nesting behind a valid value.
        let mut nested = vec![0x05, 0x00];
        for _ in 0..15_000 {
            nested.extend_from_slice(&[0x24, 0x82, 0xff, 0xff]);
        }
        assert_eq!(
            Epd::from_ber(&nested),
            Err(PrDecodeError::BadAttribute { index: 1 })
        );
        // A constructed OID, nested.
        let mut oid = Vec::new();
        for _ in 0..30_000 {
            oid.extend_from_slice(&[0x26, 0x80]);
        }
        assert!(Prid::from_ber(&oid, 1).is_err());
        let mut framed = BytesMut::new();
        encode_sub_object(&mut framed, 3, 1, &data[..60_000]).unwrap();
        assert!(decode_install_decision(&framed.freeze()).is_err());
    }

    // ---- proptests ----

    fn arb_prid() -> impl Strategy<Value = Prid> {
        (
            0u32..=2,
            0u32..=39,
            proptest::collection::vec(any::<u32>(), 0..20),
        )
            .prop_map(|(a, b, rest)| {
                let mut arcs = vec![a, b];
                arcs.extend(rest);
                Prid::new(arcs).expect("generated OID is valid")
            })
    }

    fn arb_value() -> impl Strategy<Value = EpdValue> {
        prop_oneof![
            Just(EpdValue::Null),
            any::<i32>().prop_map(EpdValue::Integer32),
            proptest::collection::vec(any::<u8>(), 0..40)
                .prop_map(|v| EpdValue::OctetString(v.into())),
            arb_prid().prop_map(EpdValue::Oid),
            any::<[u8; 4]>().prop_map(EpdValue::IpAddress),
            any::<u32>().prop_map(EpdValue::Counter32),
            any::<u32>().prop_map(EpdValue::Unsigned32),
            any::<u32>().prop_map(EpdValue::TimeTicks),
            proptest::collection::vec(any::<u8>(), 0..10).prop_map(|v| EpdValue::Opaque(v.into())),
            any::<u64>().prop_map(EpdValue::Counter64),
            any::<i64>().prop_map(EpdValue::Integer64),
            any::<u64>().prop_map(EpdValue::Unsigned64),
            // [APPLICATION 20] primitive, unknown to the table.
            proptest::collection::vec(any::<u8>(), 0..10).prop_map(|v| {
                let mut raw = vec![0x54, v.len() as u8];
                raw.extend(v);
                EpdValue::Raw(raw.into())
            }),
        ]
    }

    fn arb_epd() -> impl Strategy<Value = Epd> {
        proptest::collection::vec(arb_value(), 0..8).prop_map(Epd)
    }

    fn arb_instance() -> impl Strategy<Value = PrInstance> {
        (arb_prid(), arb_epd()).prop_map(|(prid, epd)| PrInstance { prid, epd })
    }

    proptest! {
        #[test]
        fn prop_prid_round_trip(p in arb_prid()) {
            let bytes = encode_pr_objects(&[PrObject::Prid(p.clone())]).unwrap();
            prop_assert_eq!(bytes.len() % 4, 0);
            prop_assert_eq!(decode_pr_objects(&bytes).unwrap(), vec![PrObject::Prid(p)]);
        }

        #[test]
        fn prop_epd_round_trip(e in arb_epd()) {
            let ber = e.to_ber().unwrap();
            prop_assert_eq!(Epd::from_ber(&ber).unwrap(), e);
        }

        #[test]
        fn prop_install_round_trip(v in proptest::collection::vec(arb_instance(), 0..6)) {
            let d = InstallDecision(v);
            let bytes = encode_install_decision(&d).unwrap();
            prop_assert_eq!(decode_install_decision(&bytes).unwrap(), d);
        }

        #[test]
        fn prop_remove_round_trip(
            v in proptest::collection::vec((any::<bool>(), arb_prid()), 0..8)
        ) {
            let d = RemoveDecision(
                v.into_iter()
                    .map(|(inst, p)| if inst { RemoveTarget::Instance(p) } else { RemoveTarget::Prefix(p) })
                    .collect(),
            );
            let bytes = encode_remove_decision(&d).unwrap();
            prop_assert_eq!(decode_remove_decision(&bytes).unwrap(), d);
        }

        #[test]
        fn prop_arbitrary_bytes_never_panic(v in proptest::collection::vec(any::<u8>(), 0..256)) {
            let b = Bytes::from(v.clone());
            let _ = decode_install_decision(&b);
            let _ = decode_remove_decision(&b);
            let _ = decode_outcome_report(&b);
            let _ = decode_accounting_report(&b);
            let _ = Epd::from_ber(&v);
            let _ = Prid::from_ber(&v, 1);
        }

        /// Valid framing around arbitrary BER bodies reaches the BER decoders.
        #[test]
        fn prop_framed_garbage_never_panics(
            parts in proptest::collection::vec(
                (1u8..=6, proptest::collection::vec(any::<u8>(), 0..40)), 0..6)
        ) {
            let mut out = BytesMut::new();
            for (s_num, data) in &parts {
                encode_sub_object(&mut out, *s_num, 1, data).unwrap();
            }
            let b = out.freeze();
            let _ = decode_install_decision(&b);
            let _ = decode_outcome_report(&b);
            let _ = decode_remove_decision(&b);
        }
    }
}
