//! The Raft state machine on sled: [`StateMachineStore`] (openraft's `RaftStateMachine`) and
//! its [`SnapshotBuilder`].
//!
//! The applied state ([`Applied`]: last applied log id, membership, [`ControlState`]) lives in
//! memory for reads and in the `raft_sm` tree, one value per entry (keys `service/<name>`,
//! `rule/<name>`, `router/<name>`, JSON values) plus `meta/last_applied` and
//! `meta/membership`. Each batch of entries openraft applies is written as one sled batch (only
//! the entries its commands touched) and flushed before `apply` returns; the write and flush
//! run on tokio's blocking pool.
//!
//! A snapshot is the JSON of [`Applied`]. The current one is kept in the `raft_snapshot` tree
//! (keys `meta` and `data`), written and flushed when built or installed; an older snapshot
//! never replaces a newer one. Installing a snapshot replaces the whole `raft_sm` tree in one
//! batch: a node that joins late, or fell behind the purged log, catches up that way.

use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use openraft::storage::RaftStateMachine;
use openraft::{AnyError, EntryPayload, OptionalSend, RaftSnapshotBuilder, StorageIOError};
use serde::{Deserialize, Serialize};

use super::state::{ControlState, Key, Response};
use super::types::{
    Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use crate::store::StoreError;

/// The applied state's tree.
pub const SM_TREE: &str = "raft_sm";
/// The current snapshot's tree.
pub const SNAPSHOT_TREE: &str = "raft_snapshot";

const LAST_APPLIED: &[u8] = b"meta/last_applied";
const MEMBERSHIP: &[u8] = b"meta/membership";
const SNAPSHOT_META: &[u8] = b"meta";
const SNAPSHOT_DATA: &[u8] = b"data";

/// The state machine's content: what a snapshot holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The last log entry applied.
    pub last_applied: Option<LogId>,
    /// The last membership applied: node ids, each node's gRPC address.
    pub membership: StoredMembership,
    /// Catalog and routers.
    pub state: ControlState,
}

/// What the state machine and its snapshot builders share.
#[derive(Debug)]
struct Shared {
    db: sled::Db,
    sm: sled::Tree,
    snapshots: sled::Tree,
    applied: RwLock<Applied>,
    /// Serializes snapshot writes (the newest wins).
    snapshot_write: Mutex<()>,
    /// Makes snapshot ids unique.
    snapshot_seq: AtomicU64,
    /// Bumped after every applied batch and installed snapshot (for [`StateMachineStore::subscribe`]).
    changes: tokio::sync::watch::Sender<u64>,
}

/// The state machine in sled. Cloning gives another handle on the same state (for reads
/// outside openraft: [`StateMachineStore::read`]).
#[derive(Debug, Clone)]
pub struct StateMachineStore {
    shared: Arc<Shared>,
}

/// Builds snapshots of the state as it is when [`RaftSnapshotBuilder::build_snapshot`] runs.
#[derive(Debug, Clone)]
pub struct SnapshotBuilder {
    shared: Arc<Shared>,
}

fn corrupt(tree: &'static str, key: &[u8], e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        tree,
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    }
}

fn encode<T: Serialize>(value: &T, what: &'static str) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|source| StoreError::Encode { what, source })
}

fn sm_write_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::write_state_machine(AnyError::error(e)).into()
}

fn snapshot_read_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::read_snapshot(None, AnyError::error(e)).into()
}

fn snapshot_write_err(meta: &SnapshotMeta, e: impl std::fmt::Display) -> StorageError {
    StorageIOError::write_snapshot(Some(meta.signature()), AnyError::error(e)).into()
}

/// Runs blocking sled work on tokio's blocking pool.
async fn blocking<T, F>(f: F) -> Result<T, StoreError>
where
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Write(format!("blocking task: {e}")))?
}

impl StateMachineStore {
    /// Opens the state machine's trees in `db` and loads the applied state.
    pub fn open(db: &sled::Db) -> Result<StateMachineStore, StoreError> {
        let sm = db.open_tree(SM_TREE)?;
        let snapshots = db.open_tree(SNAPSHOT_TREE)?;
        let mut applied = Applied::default();
        for item in sm.iter() {
            let (key, value) = item?;
            if *key == *LAST_APPLIED {
                applied.last_applied =
                    serde_json::from_slice(&value).map_err(|e| corrupt(SM_TREE, &key, e))?;
            } else if *key == *MEMBERSHIP {
                applied.membership =
                    serde_json::from_slice(&value).map_err(|e| corrupt(SM_TREE, &key, e))?;
            } else if let Some(k) = Key::decode(&key) {
                applied
                    .state
                    .insert_entry(k, &value)
                    .map_err(|e| corrupt(SM_TREE, &key, e))?;
            } else {
                tracing::warn!(key = %String::from_utf8_lossy(&key), "unknown key in the raft state machine");
            }
        }
        Ok(StateMachineStore {
            shared: Arc::new(Shared {
                db: db.clone(),
                sm,
                snapshots,
                applied: RwLock::new(applied),
                snapshot_write: Mutex::new(()),
                snapshot_seq: AtomicU64::new(0),
                changes: tokio::sync::watch::channel(0).0,
            }),
        })
    }

    /// Wakes the receiver whenever the applied state changed (after the change is stored).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.changes.subscribe()
    }

    fn changed(&self) {
        self.shared.changes.send_modify(|n| *n += 1);
    }

    /// Reads the applied state (a cheap read lock: do not block inside `f`).
    pub fn read<R>(&self, f: impl FnOnce(&Applied) -> R) -> R {
        f(&self.shared.applied.read().expect("state machine lock"))
    }
}

impl Shared {
    /// The stored current snapshot.
    fn current_snapshot(&self) -> Result<Option<(SnapshotMeta, Vec<u8>)>, StoreError> {
        let Some(meta) = self.snapshots.get(SNAPSHOT_META)? else {
            return Ok(None);
        };
        let meta: SnapshotMeta =
            serde_json::from_slice(&meta).map_err(|e| corrupt(SNAPSHOT_TREE, SNAPSHOT_META, e))?;
        let Some(data) = self.snapshots.get(SNAPSHOT_DATA)? else {
            return Err(corrupt(SNAPSHOT_TREE, SNAPSHOT_DATA, "missing"));
        };
        Ok(Some((meta, data.to_vec())))
    }

    /// Stores a snapshot as the current one unless a newer one is stored, and flushes.
    fn store_snapshot(&self, meta: &SnapshotMeta, data: &[u8]) -> Result<(), StoreError> {
        let _guard = self
            .snapshot_write
            .lock()
            .expect("snapshot write lock poisoned");
        if let Some((current, _)) = self.current_snapshot()?
            && current.last_log_id > meta.last_log_id
        {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        batch.insert(SNAPSHOT_META, encode(meta, "snapshot metadata")?);
        batch.insert(SNAPSHOT_DATA, data);
        self.snapshots.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let applied = self
            .shared
            .applied
            .read()
            .expect("state machine lock")
            .clone();
        let data = serde_json::to_vec(&applied).map_err(snapshot_read_err)?;
        let seq = self.shared.snapshot_seq.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match &applied.last_applied {
            Some(id) => format!("{}-{}-{seq}", id.leader_id, id.index),
            None => format!("none-{seq}"),
        };
        let meta = SnapshotMeta {
            last_log_id: applied.last_applied,
            last_membership: applied.membership,
            snapshot_id,
        };
        let shared = self.shared.clone();
        let (m, d) = (meta.clone(), data.clone());
        blocking(move || shared.store_snapshot(&m, &d))
            .await
            .map_err(|e| snapshot_write_err(&meta, e))?;
        tracing::debug!(snapshot = %meta.snapshot_id, bytes = data.len(), "raft snapshot built");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok(self.read(|a| (a.last_applied, a.membership.clone())))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut responses = Vec::new();
        let mut batch = sled::Batch::default();
        {
            let mut applied = self.shared.applied.write().expect("state machine lock");
            let mut membership_changed = false;
            for entry in entries {
                applied.last_applied = Some(entry.log_id);
                let response = match entry.payload {
                    EntryPayload::Blank => Response::Applied,
                    EntryPayload::Normal(cmd) => {
                        let mut touched = Vec::new();
                        let response = applied.state.apply_tracked(&cmd, &mut touched);
                        for key in touched {
                            match applied.state.encode_entry(&key).map_err(sm_write_err)? {
                                Some(value) => batch.insert(key.encode(), value),
                                None => batch.remove(key.encode()),
                            }
                        }
                        response
                    }
                    EntryPayload::Membership(m) => {
                        applied.membership = StoredMembership::new(Some(entry.log_id), m);
                        membership_changed = true;
                        Response::Applied
                    }
                };
                responses.push(response);
            }
            if responses.is_empty() {
                return Ok(responses);
            }
            batch.insert(
                LAST_APPLIED,
                encode(&applied.last_applied, "the last applied log id").map_err(sm_write_err)?,
            );
            if membership_changed {
                batch.insert(
                    MEMBERSHIP,
                    encode(&applied.membership, "the membership").map_err(sm_write_err)?,
                );
            }
        }
        let shared = self.shared.clone();
        blocking(move || {
            shared.sm.apply_batch(batch)?;
            shared.db.flush()?;
            Ok(())
        })
        .await
        .map_err(sm_write_err)?;
        self.changed();
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            shared: self.shared.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let mut applied: Applied =
            serde_json::from_slice(&data).map_err(|e| snapshot_write_err(meta, e))?;
        // The metadata is authoritative.
        applied.last_applied = meta.last_log_id;
        applied.membership = meta.last_membership.clone();
        let shared = self.shared.clone();
        let (m, state) = (meta.clone(), applied.clone());
        blocking(move || {
            // Replace the whole applied state in one batch, then keep the snapshot.
            let mut batch = sled::Batch::default();
            for item in shared.sm.iter() {
                let (key, _) = item?;
                batch.remove(key);
            }
            for key in state.state.keys() {
                let value =
                    state
                        .state
                        .encode_entry(&key)
                        .map_err(|source| StoreError::Encode {
                            what: "a state entry",
                            source,
                        })?;
                if let Some(value) = value {
                    batch.insert(key.encode(), value);
                }
            }
            batch.insert(
                LAST_APPLIED,
                encode(&state.last_applied, "the last applied log id")?,
            );
            batch.insert(MEMBERSHIP, encode(&state.membership, "the membership")?);
            shared.sm.apply_batch(batch)?;
            shared.store_snapshot(&m, &data)
        })
        .await
        .map_err(|e| snapshot_write_err(meta, e))?;
        tracing::info!(snapshot = %meta.snapshot_id, last_log_id = ?meta.last_log_id, "raft snapshot installed");
        *self.shared.applied.write().expect("state machine lock") = applied;
        self.changed();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let current = self.shared.current_snapshot().map_err(snapshot_read_err)?;
        Ok(current.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, Membership};

    use super::*;
    use crate::catalog::{Rule, ServiceDef};
    use crate::cluster::state::Command;

    fn log_id(term: u64, index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    fn normal(index: u64, cmd: Command) -> Entry {
        Entry {
            log_id: log_id(1, index),
            payload: EntryPayload::Normal(cmd),
        }
    }

    fn open(dir: &std::path::Path) -> StateMachineStore {
        super::super::open(dir).unwrap().1
    }

    fn commands() -> Vec<Entry> {
        let nodes = [
            (1, crate::cluster::types::Member::at("10.0.0.1:50051")),
            (2, crate::cluster::types::Member::at("10.0.0.2:50051")),
        ];
        let membership = Membership::new(
            vec![[1, 2].into()],
            nodes
                .into_iter()
                .collect::<std::collections::BTreeMap<_, _>>(),
        );
        vec![
            Entry {
                log_id: log_id(1, 1),
                payload: EntryPayload::Membership(membership),
            },
            normal(
                2,
                Command::PutService(ServiceDef {
                    name: "gold".into(),
                    ..ServiceDef::default()
                }),
            ),
            normal(
                3,
                Command::PutRule(Rule {
                    name: "all".into(),
                    services: vec!["gold".into()],
                    ..Rule::default()
                }),
            ),
            normal(
                4,
                Command::AssignRouter {
                    router: "edge-1".into(),
                    node: 2,
                    epoch: None,
                    now_ms: 1_000,
                    until_ms: 11_000,
                },
            ),
            normal(
                5,
                Command::SetLastOriginHost {
                    router: "edge-1".into(),
                    host: "sae-2".into(),
                },
            ),
            normal(
                6,
                Command::DeleteRule {
                    name: "none".into(),
                },
            ),
        ]
    }

    #[tokio::test]
    async fn applied_state_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let before = {
            let mut sm = open(dir.path());
            let responses = sm.apply(commands()).await.unwrap();
            assert_eq!(responses.len(), 6);
            assert_eq!(responses[3], Response::Assigned { epoch: 1 });
            assert!(matches!(responses[5], Response::Refused(_)));
            sm.read(Applied::clone)
        };
        assert_eq!(before.last_applied, Some(log_id(1, 6)));
        assert_eq!(before.state.routers["edge-1"].active, Some(2));
        assert_eq!(
            before
                .membership
                .nodes()
                .map(|(id, n)| (*id, n.grpc.clone()))
                .collect::<Vec<_>>(),
            vec![
                (1, "10.0.0.1:50051".to_owned()),
                (2, "10.0.0.2:50051".to_owned())
            ]
        );
        let mut sm = open(dir.path());
        assert_eq!(sm.read(Applied::clone), before);
        let (last, membership) = sm.applied_state().await.unwrap();
        assert_eq!((last, membership), (before.last_applied, before.membership));
    }

    /// A node that joins late gets the state through a snapshot, and keeps it.
    #[tokio::test]
    async fn a_late_node_catches_up_from_a_snapshot() {
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut a = open(dir_a.path());
        a.apply(commands()).await.unwrap();
        let built = a
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        assert_eq!(built.meta.last_log_id, Some(log_id(1, 6)));
        let current = a.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, built.meta);

        let expected = a.read(Applied::clone);
        {
            let mut b = open(dir_b.path());
            // Something stale that the snapshot replaces.
            b.apply([normal(
                1,
                Command::PutService(ServiceDef {
                    name: "stale".into(),
                    ..ServiceDef::default()
                }),
            )])
            .await
            .unwrap();
            let mut data = b.begin_receiving_snapshot().await.unwrap();
            *data = *current.snapshot;
            b.install_snapshot(&current.meta, data).await.unwrap();
            assert_eq!(b.read(Applied::clone), expected);
            let got = b.get_current_snapshot().await.unwrap().unwrap();
            assert_eq!(got.meta, current.meta);
        }
        let mut b = open(dir_b.path());
        assert_eq!(b.read(Applied::clone), expected);
        assert_eq!(
            b.get_current_snapshot().await.unwrap().unwrap().meta,
            current.meta
        );
        // It goes on applying after the snapshot.
        let r = b
            .apply([normal(
                7,
                Command::Heartbeat {
                    node: 2,
                    until_ms: 20_000,
                    connected: Default::default(),
                    owned: vec![("edge-1".into(), 1)],
                    leaving: false,
                },
            )])
            .await
            .unwrap();
        assert_eq!(r, vec![Response::Applied]);
        assert_eq!(
            b.read(|a| a.state.routers["edge-1"].lease_until_ms),
            20_000,
            "the renewal applied on top of the installed snapshot"
        );
    }

    #[tokio::test]
    async fn an_older_snapshot_does_not_replace_a_newer_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = open(dir.path());
        let entries = commands();
        sm.apply(entries[..2].to_vec()).await.unwrap();
        let mut old_builder = sm.get_snapshot_builder().await;
        let old = old_builder.build_snapshot().await.unwrap();
        sm.apply(entries[2..].to_vec()).await.unwrap();
        let new = sm
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        let shared = sm.shared.clone();
        shared.store_snapshot(&old.meta, b"{}").unwrap();
        assert_eq!(
            sm.get_current_snapshot().await.unwrap().unwrap().meta,
            new.meta
        );
    }
}
