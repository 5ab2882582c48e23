//! The Raft type configuration and the aliases the cluster code uses.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use super::state::{Command, Response};

/// A node's Raft id.
pub type NodeId = u64;

/// How the cluster reaches a node and how routers see it: the membership's node data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The node's name (logs, the management API).
    pub name: String,
    /// `host:port` of its gRPC listener (Raft, membership, management API).
    pub grpc: String,
    /// `host:port` routers use for Diameter.
    pub diameter: String,
    /// `host:port` PEPs use for COPS.
    pub cops: String,
    /// Its Diameter Origin-Host.
    pub origin_host: String,
}

impl Member {
    /// A member known only by its gRPC address (tests).
    pub fn at(grpc: &str) -> Member {
        Member {
            grpc: grpc.to_owned(),
            ..Member::default()
        }
    }
}

openraft::declare_raft_types!(
    /// The cluster's Raft types: [`Command`] in, [`Response`] out, nodes known by their
    /// [`Member`] addresses, snapshots as in-memory JSON.
    pub TypeConfig:
        D = Command,
        R = Response,
        NodeId = NodeId,
        Node = Member,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A log entry.
pub type Entry = openraft::Entry<TypeConfig>;
/// A log entry's id (term, leader, index).
pub type LogId = openraft::LogId<NodeId>;
/// A vote.
pub type Vote = openraft::Vote<NodeId>;
/// The membership and the log id where it was set.
pub type StoredMembership = openraft::StoredMembership<NodeId, Member>;
/// A snapshot's metadata.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Member>;
/// A snapshot: metadata and data.
pub type Snapshot = openraft::Snapshot<TypeConfig>;
/// A storage failure as openraft sees it.
pub type StorageError = openraft::StorageError<NodeId>;
/// The state of the log (last purged and last log ids).
pub type LogState = openraft::storage::LogState<TypeConfig>;
