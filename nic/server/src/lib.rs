//! The NIC as a gRPC service (`sae.v1.Nic`): a [`nic::Nic`] (a `sae_nic` directory and the
//! scenario it resolves with), the [`service`] that takes publications and answers
//! resolutions, listings and invalidation watches, and the [`convert`]ers between the prost
//! types and `sae_nic`'s.
//!
//! Every SAE node embeds one; the `sae-nic` binary of this crate runs one on its own, with its
//! [`config`], [`metrics`] and health, for sites whose nodes resolve through NIC endpoints.
#![forbid(unsafe_code)]

pub mod config;
pub mod convert;
pub mod metrics;
pub mod nic;
pub mod service;

pub use nic::{BatchOutcome, Nic};
pub use service::{Hooks, NicService};

/// Errors of the NIC service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A message from a peer that cannot be used.
    #[error("{0}")]
    Invalid(String),
    /// A configuration that cannot be used: the field and why.
    #[error("{0}")]
    Config(String),
}
