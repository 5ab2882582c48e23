//! The Raft type configuration and the aliases the cluster code uses.

use std::io::Cursor;

use openraft::BasicNode;

use super::state::{Command, Response};

/// A node's Raft id.
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// The cluster's Raft types: [`Command`] in, [`Response`] out, nodes known by a
    /// [`BasicNode`] holding their gRPC address, snapshots as in-memory JSON.
    pub TypeConfig:
        D = Command,
        R = Response,
        NodeId = NodeId,
        Node = BasicNode,
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
pub type StoredMembership = openraft::StoredMembership<NodeId, BasicNode>;
/// A snapshot's metadata.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, BasicNode>;
/// A snapshot: metadata and data.
pub type Snapshot = openraft::Snapshot<TypeConfig>;
/// A storage failure as openraft sees it.
pub type StorageError = openraft::StorageError<NodeId>;
/// The state of the log (last purged and last log ids).
pub type LogState = openraft::storage::LogState<TypeConfig>;
