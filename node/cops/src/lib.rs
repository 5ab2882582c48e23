//! `sae-cops`: a sans-IO COPS codec (RFC 2748), with COPS-PR sub-objects (RFC 3084) and usage
//! feedback (RFC 3483).
//!
//! - [`object`]: every RFC 2748 object; unknown ones stay raw.
//! - [`message`]: the common header and the object grammar of each message.
//! - [`frame`]: frame detection on a byte stream and receive limits.
//! - [`integrity`]: HMAC-MD5 signing and checking with sequence numbers.
//! - [`error`]: decode errors, each mapped to the COPS Error object to send.
//! - [`pr`], [`usage`]: COPS-PR sub-objects and RFC 3483 structures inside ClientSI and Named
//!   Decision Data.
//! - [`pdp`], [`pep`]: the connection state machines of each end; [`backoff`]: PEP reconnect
//!   delays.
//!
//! Nothing here reads a clock or touches a socket: callers move the bytes. The `tokio`
//! feature (off by default) adds `tokio`: a tokio-util codec over [`FrameDecoder`].

#![forbid(unsafe_code)]

pub mod backoff;
pub mod error;
pub mod frame;
pub mod integrity;
pub mod message;
pub mod object;
pub mod pdp;
pub mod pep;
pub mod pib;
pub mod pr;
mod timer;
#[cfg(feature = "tokio")]
pub mod tokio;
pub mod usage;

pub use backoff::Backoff;
#[cfg(feature = "tokio")]
pub use error::CodecError;
pub use error::{AuthFailure, DecodeError, Error};
pub use frame::{Frame, FrameDecoder, FrameStatus, FramingError, Limits, frame_status};
pub use integrity::{KeyTable, Signer, Verifier};
pub use message::{
    Body, ClientAccept, ClientClose, ClientOpen, Decision, DecisionContent, DecisionMessage,
    DeleteRequest, Header, LpdpDecision, Message, OpCode, Report, Request,
};
pub use object::{
    ClientSi, Command, Context, DecisionFlags, DecisionObject, ErrorCode, ErrorObject, Handle,
    Integrity, Interface, Object, PdpAddress, RType, RawObject, Reason, ReasonCode, ReportType,
};
pub use pdp::{
    CloseReason as PdpCloseReason, IntegrityConfig, PdpConfig, PdpConnection, PdpError, PdpEvent,
    PdpState,
};
pub use pep::{
    AdmissionWhileDown, CloseReason as PepCloseReason, PepConfig, PepConnection, PepError,
    PepEvent, PepState,
};
