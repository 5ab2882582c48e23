//! `sae-diameter`: a sans-IO Diameter stack (RFC 6733, RFC 3539 watchdog).
//!
//! - [`avp`], [`message`]: the codec; decoding shares the receive buffer (`bytes::Bytes`).
//! - [`frame`]: frame detection on a byte stream and receive limits.
//! - [`dictionary`]: AVPs, applications and command rules as data (built-in TOML plus the
//!   operator's file).
//! - [`validate`]: checks against the dictionary and the RFC 6733 error answers.
//! - [`capabilities`], [`jsrc`]: typed views of CER/CEA and of the Juniper subscriber messages.
//! - [`peer`], [`watchdog`]: the per-connection state machine, for both ends.
//! - [`duplicate`]: the answers sent recently, repeated to re-sent (T bit) duplicates.
//!
//! Nothing here reads a clock or touches a socket: callers pass `now` and move the bytes.
//! The `tokio` feature (off by default) adds the one exception, `tokio`: a tokio-util codec
//! over [`FrameDecoder`] and a tokio driver of a [`Peer`] on a TCP stream.

#![forbid(unsafe_code)]

pub mod avp;
pub mod capabilities;
pub mod codes;
pub mod dictionary;
pub mod duplicate;
pub mod error;
pub mod frame;
pub mod jsrc;
pub mod message;
pub mod peer;
#[cfg(feature = "tokio")]
pub mod tokio;
pub mod validate;
pub mod watchdog;

pub use avp::{Address, Avp, AvpFlags, AvpType, DiameterTime, Value};
pub use capabilities::{Capabilities, VendorApplication};
pub use dictionary::Dictionary;
pub use duplicate::AnswerCache;
#[cfg(feature = "tokio")]
pub use error::CodecError;
pub use error::{AvpDataError, DecodeError, Error};
pub use frame::{Frame, FrameDecoder, FramingError, Limits};
pub use jsrc::{InvalidAvp, Ipv6Prefix, JuniperCodes};
pub use message::{CommandFlags, Header, Message};
pub use peer::{
    CloseReason, Event, Peer, PeerConfig, PeerFilter, PeerInfo, PeerState, RequestId, Role,
};
pub use validate::ProtocolError;
