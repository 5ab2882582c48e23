//! Errors: [`DecodeError`] for bytes that are not an acceptable COPS message (each maps to
//! the Error object to send back), and [`Error`] for everything else the crate reports. With
//! the `tokio` feature, [`CodecError`] is why a framed byte stream stopped.

#[cfg(feature = "tokio")]
use crate::frame::FramingError;
use crate::message::OpCode;
use crate::object::{ErrorCode, ErrorObject, Reason, ReasonCode};

/// Why a message failed authentication (Error 14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// The Key ID is not in the key table.
    UnknownKey(u32),
    /// The keyed digest does not match.
    BadDigest,
    /// The sequence number is not the one expected.
    BadSequence { expected: u32, received: u32 },
}

/// Bytes that do not form an acceptable COPS message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("truncated header: {available} of 8 octets")]
    TruncatedHeader { available: usize },
    #[error("unsupported COPS version {0}")]
    UnsupportedVersion(u8),
    #[error("reserved header flags set: {0:#x}")]
    ReservedFlags(u8),
    #[error("unknown op-code {0}")]
    UnknownOpCode(u8),
    #[error("invalid message length {length} ({available} octets framed)")]
    InvalidMessageLength { length: usize, available: usize },
    #[error("message length {length} exceeds the limit of {limit}")]
    MessageTooLarge { length: usize, limit: usize },
    #[error("truncated object header at offset {offset} ({available} octets left)")]
    TruncatedObject { offset: usize, available: usize },
    #[error("object {c_num}/{c_type} at offset {offset} has invalid length {length}")]
    InvalidObjectLength {
        c_num: u8,
        c_type: u8,
        length: usize,
        offset: usize,
    },
    #[error("invalid object {c_num}/{c_type}: {what}")]
    InvalidObject {
        c_num: u8,
        c_type: u8,
        what: &'static str,
    },
    #[error("empty client handle")]
    EmptyHandle,
    #[error("unknown object C-Num {c_num} C-Type {c_type}")]
    UnknownObject { c_num: u8, c_type: u8 },
    #[error("object {c_num}/{c_type} not allowed here in {op:?}")]
    UnexpectedObject { op: OpCode, c_num: u8, c_type: u8 },
    #[error("mandatory object C-Num {c_num} missing in {op:?}")]
    MissingObject { op: OpCode, c_num: u8 },
    #[error("Integrity object is not the last object")]
    IntegrityNotLast,
    #[error("Integrity object required")]
    AuthenticationRequired,
    #[error("authentication failure: {0:?}")]
    AuthenticationFailure(AuthFailure),
}

impl DecodeError {
    /// The Error-Code to report.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            DecodeError::EmptyHandle => ErrorCode::BadHandle,
            DecodeError::MessageTooLarge { .. } => ErrorCode::UnableToProcess,
            DecodeError::UnknownObject { .. } => ErrorCode::UnknownObject,
            DecodeError::MissingObject { .. } => ErrorCode::MandatoryObjectMissing,
            DecodeError::AuthenticationRequired => ErrorCode::AuthenticationRequired,
            DecodeError::AuthenticationFailure(_) => ErrorCode::AuthenticationFailure,
            _ => ErrorCode::BadMessageFormat,
        }
    }

    /// The Error object to send (in a DEC for a request, or a CC): Error 13 carries the
    /// C-Num and C-Type in its sub-code, every other one sub-code 0.
    pub fn error_object(&self) -> ErrorObject {
        match *self {
            DecodeError::UnknownObject { c_num, c_type } => {
                ErrorObject::unknown_object(c_num, c_type)
            }
            _ => ErrorObject::new(self.error_code()),
        }
    }

    /// The Reason a PEP gives when it deletes a request state over a bad DEC: 13 with
    /// C-Num/C-Type for an unknown object, 12 (malformed decision) otherwise.
    pub fn reason(&self) -> Reason {
        match *self {
            DecodeError::UnknownObject { c_num, c_type } => Reason {
                code: ReasonCode::UnknownObject,
                sub_code: (c_num as u16) << 8 | c_type as u16,
            },
            _ => Reason::new(ReasonCode::MalformedDecision),
        }
    }
}

/// Errors of this crate other than decoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("message of {0} octets is too large to encode")]
    MessageTooLarge(usize),
    #[error("object {c_num}/{c_type} of {len} octets does not fit the 16-bit length")]
    ObjectTooLarge { c_num: u8, c_type: u8, len: usize },
    #[error("cannot encode: {0}")]
    InvalidMessage(&'static str),
    #[error("no integrity key with id {0}")]
    UnknownKey(u32),
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// Why a framed byte stream ([`crate::tokio::CopsCodec`]) stopped yielding frames: the octets
/// cannot be framed any further, or reading failed.
#[cfg(feature = "tokio")]
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error(transparent)]
    Framing(#[from] FramingError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(
            DecodeError::UnsupportedVersion(2).error_object(),
            ErrorObject::new(ErrorCode::BadMessageFormat)
        );
        let e = DecodeError::UnknownObject {
            c_num: 40,
            c_type: 2,
        };
        assert_eq!(e.error_object().sub_code, 0x2802);
        assert_eq!(e.reason().code, ReasonCode::UnknownObject);
        assert_eq!(e.reason().sub_code, 0x2802);
        assert_eq!(
            DecodeError::MissingObject {
                op: OpCode::Request,
                c_num: 1
            }
            .error_code(),
            ErrorCode::MandatoryObjectMissing
        );
        assert_eq!(DecodeError::EmptyHandle.error_code(), ErrorCode::BadHandle);
        assert_eq!(
            DecodeError::AuthenticationFailure(AuthFailure::BadDigest).error_code(),
            ErrorCode::AuthenticationFailure
        );
        assert_eq!(
            DecodeError::AuthenticationRequired.error_code(),
            ErrorCode::AuthenticationRequired
        );
        assert_eq!(
            DecodeError::IntegrityNotLast.reason().code,
            ReasonCode::MalformedDecision
        );
    }
}
