//! Errors: [`DecodeError`] for bytes that are not a well-formed Diameter message,
//! [`AvpDataError`] for AVP data that does not fit its type, and [`Error`] for everything else
//! the crate reports (dictionary files, receive limits, requests the peer state machine cannot
//! take). With the `tokio` feature, [`CodecError`] is why a framed byte stream stopped.

use crate::avp::AvpFlags;
#[cfg(feature = "tokio")]
use crate::frame::FramingError;

/// Bytes that do not form a Diameter message. Every variant maps to an RFC 6733 Result-Code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("truncated header: {available} of 20 octets")]
    TruncatedHeader { available: usize },
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u8),
    #[error("invalid message length {length}")]
    InvalidMessageLength { length: usize },
    #[error("message length {length} exceeds the limit of {limit}")]
    MessageTooLarge { length: usize, limit: usize },
    #[error("truncated AVP header at offset {offset} ({available} octets left)")]
    TruncatedAvp { offset: usize, available: usize },
    #[error("AVP {code} (vendor {vendor_id:?}) at offset {offset} has invalid length {length}")]
    InvalidAvpLength {
        code: u32,
        vendor_id: Option<u32>,
        flags: AvpFlags,
        length: usize,
        offset: usize,
    },
}

/// AVP data that does not match the AVP's type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AvpDataError {
    #[error("data length {actual}, the type needs {expected}")]
    Length { expected: usize, actual: usize },
    #[error("invalid value: {0}")]
    Value(&'static str),
    #[error("grouped data: {0}")]
    Grouped(DecodeError),
}

/// Errors of this crate other than decoding.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("dictionary: {0}")]
    Dictionary(String),
    #[error("dictionary file is not valid TOML: {0}")]
    DictionaryToml(#[from] toml::de::Error),
    #[error("invalid receive limit: {0}")]
    InvalidLimit(String),
    #[error("message of {0} octets is too large to encode (the length field has 24 bits)")]
    MessageTooLarge(usize),
    #[error("the peer connection is not open")]
    NotOpen,
    #[error("not a request: {0}")]
    NotARequest(&'static str),
    #[error("no pending request with Hop-by-Hop identifier {0:#x}")]
    UnknownRequest(u32),
}

/// Why a framed byte stream ([`crate::tokio::DiameterCodec`]) stopped yielding frames: the
/// octets cannot be framed any further, or reading failed.
#[cfg(feature = "tokio")]
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error(transparent)]
    Framing(#[from] FramingError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
