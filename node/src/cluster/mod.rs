//! The cluster's replicated control state: the storage half of its Raft group (openraft 0.9,
//! storage v2).
//!
//! - [`types`]: the Raft type configuration ([`TypeConfig`]) and aliases.
//! - [`state`]: the control state ([`ControlState`]: service catalog, router → active node
//!   with epoch and lease, Juniper-Last-Origin-Host per router), the [`Command`]s that change
//!   it and their [`Response`]s, as plain deterministic code.
//! - [`log_store`]: the Raft log, vote and committed log id in sled ([`LogStore`]); appends
//!   are acknowledged to openraft only after a sled flush.
//! - [`state_machine`]: the applied state and snapshots in sled ([`StateMachineStore`]).
//!
//! - [`network`]: openraft's RPCs over tonic, on [`channels`] (one cached channel per member,
//!   shared with every other call to a member); the server side is `grpc::cluster`.
//! - [`runtime`]: the running member ([`Cluster`]): membership, writes through the leader,
//!   leases, router assignment, and publication of the state to the node.
//! - [`ownership`]: the router views drivers act on ([`Ownership`]).
//!
//! Both halves share one sled database, opened by [`open`] in its own directory (not the
//! session store's). They are openraft's `RaftLogStorage` and `RaftStateMachine`, the traits
//! `openraft::Raft::new` takes, so another engine can replace sled behind them; the sled
//! implementation passes openraft's storage test suite (`suite_tests`).

pub mod channels;
pub mod log_store;
pub mod network;
pub mod ownership;
pub mod runtime;
pub mod state;
pub mod state_machine;
pub mod types;

#[cfg(test)]
mod suite_tests;

use std::path::Path;

pub use log_store::{LogReader, LogStore};
pub use ownership::{OwnedKey, Ownership, RouterView};
pub use runtime::{Cluster, ClusterError, ClusterView};
pub use state::{Command, ControlState, Refusal, Response, RouterEntry};
pub use state_machine::{Applied, SnapshotBuilder, StateMachineStore};
pub use types::{Member, NodeId, TypeConfig};

use crate::store::StoreError;

/// sled's page cache for the Raft database.
pub const CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// Opens (or creates) the Raft database in `dir`: the log store (with its writer thread) and
/// the state machine, with the applied state loaded.
pub fn open(dir: &Path) -> Result<(LogStore, StateMachineStore), StoreError> {
    let db = crate::store::open_db(dir, CACHE_BYTES)?;
    Ok((LogStore::open(&db)?, StateMachineStore::open(&db)?))
}
