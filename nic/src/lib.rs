//! `sae-nic`: the network information collector of the SAE cluster.
//!
//! It answers "which SAE node, and which subscriber session, does this subscriber reference
//! name?" for the management API (any node acts on any subscriber) and for aggregate services
//! (fragments live on sessions anywhere in the cluster). The core is plain data and pure
//! functions, with no runtime, sockets or clocks:
//!
//! - [`reference`]: subscriber references (`ip=…`, `loginName=…`, `dn=…`, `interfaceName=…;
//!   router=…`, `vr=…`, `accountingId=…`, `sessionId=…` and combinations), parsed and printed;
//! - [`directory`]: the bindings nodes publish for their sessions, router owners and address
//!   pools, with the epoch rule that keeps a stale publication from overwriting a newer owner's;
//! - [`scenario`]: resolution graphs modelled on SRC's NIC configuration scenarios;
//! - [`expr`]: the safe evaluator of subscriber reference expressions (a Python subset);
//! - [`config`]: the TOML table that chooses a scenario and lists address pools.
#![forbid(unsafe_code)]

pub mod config;
pub mod directory;
pub mod reference;
pub mod scenario;

pub use directory::{
    Applied, Attributes, Binding, Directory, NodeId, Pool, Publication, SessionKey,
};
pub use reference::{KeyKind, Reference, ReferenceError, Vr};
pub use scenario::{Match, Resolution, ResolveError, Scenario, ScenarioError};

/// Errors of the NIC library.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error("{0}")]
    Config(String),
    /// An expression's result is not a subscriber reference.
    #[error(
        "expression {expression:?} gave {value:?}, which is not a subscriber reference: {reason}"
    )]
    NotAReference {
        expression: String,
        value: String,
        reason: String,
    },
}
