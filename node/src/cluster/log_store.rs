//! The Raft log on sled: [`LogStore`] (openraft's `RaftLogStorage`) and [`LogReader`].
//!
//! Trees: `raft_log` (key: the entry's index as big-endian `u64`, so iteration follows the
//! log; value: the JSON [`Entry`]) and `raft_log_meta` (keys `vote`, `committed` and
//! `last_purged`, JSON values).
//!
//! Writes go to one writer thread, in order; the async methods wait for their write to be
//! applied (so a read that follows sees it) but never block the executor. Log appends are
//! acknowledged to openraft — [`LogFlushed::log_io_completed`] — only after a sled flush that
//! covers them has completed; appends queued while a flush runs share the next one. A vote is
//! flushed before [`save_vote`](RaftLogStorage::save_vote) returns, and so is a truncation;
//! the committed log id and purges are flushed with the next flush (losing them in a crash
//! is harmless: openraft re-reads committed entries, and purged entries are never read).
//! Reads go to sled directly (its page cache).

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::mpsc;
use std::thread::JoinHandle;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{AnyError, OptionalSend, RaftLogReader, StorageIOError};
use tokio::sync::oneshot;

use super::types::{Entry, LogId, LogState, StorageError, TypeConfig, Vote};
use crate::store::StoreError;

/// The log entries' tree.
pub const LOG_TREE: &str = "raft_log";
/// The vote, committed and last purged log ids' tree.
pub const LOG_META_TREE: &str = "raft_log_meta";

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const LAST_PURGED: &[u8] = b"last_purged";

/// Reads log entries; a cheap clone of the [`LogStore`]'s tree.
#[derive(Debug, Clone)]
pub struct LogReader {
    log: sled::Tree,
}

/// The Raft log, vote and committed log id in sled.
pub struct LogStore {
    reader: LogReader,
    meta: sled::Tree,
    tx: mpsc::Sender<Op>,
    writer: Option<JoinHandle<()>>,
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").finish_non_exhaustive()
    }
}

/// The result of a write in the writer thread (its failure as text).
type WriteResult = Result<(), String>;

/// Who waits for a write to be durable.
enum Durable {
    /// openraft's append callback.
    Flushed(LogFlushed<TypeConfig>),
    /// An async caller.
    Ack(oneshot::Sender<WriteResult>),
}

impl Durable {
    fn complete(self, result: WriteResult) {
        match self {
            Durable::Flushed(callback) => {
                callback.log_io_completed(result.map_err(std::io::Error::other))
            }
            Durable::Ack(tx) => {
                // The caller may be gone (its task cancelled); nothing to do then.
                let _ = tx.send(result);
            }
        }
    }
}

/// One queued write: batches for the meta and log trees (meta applied first).
struct Write {
    meta: Option<sled::Batch>,
    log: Option<sled::Batch>,
    /// Told once the batches are applied (visible to readers).
    applied: Option<oneshot::Sender<WriteResult>>,
    /// Told once they are flushed to disk.
    durable: Option<Durable>,
}

enum Op {
    Write(Write),
    Close,
}

impl LogStore {
    /// Opens the log's trees in `db` and starts the writer thread.
    pub fn open(db: &sled::Db) -> Result<LogStore, StoreError> {
        let log = db.open_tree(LOG_TREE)?;
        let meta = db.open_tree(LOG_META_TREE)?;
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            db: db.clone(),
            log: log.clone(),
            meta: meta.clone(),
            rx,
        };
        let handle = std::thread::Builder::new()
            .name("sae-raft-log".into())
            .spawn(move || writer.run())
            .map_err(|e| StoreError::Sled(sled::Error::Io(e)))?;
        Ok(LogStore {
            reader: LogReader { log },
            meta,
            tx,
            writer: Some(handle),
        })
    }

    /// Queues a write and waits until it is applied, or (`durable`) flushed.
    async fn write(
        &self,
        meta: Option<sled::Batch>,
        log: Option<sled::Batch>,
        durable: bool,
    ) -> WriteResult {
        let (tx, rx) = oneshot::channel();
        let (applied, durable) = if durable {
            (None, Some(Durable::Ack(tx)))
        } else {
            (Some(tx), None)
        };
        self.send(Write {
            meta,
            log,
            applied,
            durable,
        })?;
        rx.await
            .map_err(|_| "the raft log writer is gone".to_owned())?
    }

    fn send(&self, write: Write) -> WriteResult {
        self.tx
            .send(Op::Write(write))
            .map_err(|_| "the raft log writer is gone".to_owned())
    }

    fn read_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        match self.meta.get(key)? {
            None => Ok(None),
            Some(value) => {
                serde_json::from_slice(&value)
                    .map(Some)
                    .map_err(|e| StoreError::Corrupt {
                        tree: LOG_META_TREE,
                        key: String::from_utf8_lossy(key).into_owned(),
                        reason: e.to_string(),
                    })
            }
        }
    }
}

impl Drop for LogStore {
    /// Flushes what was written and stops the writer thread.
    fn drop(&mut self) {
        if let Some(handle) = self.writer.take() {
            let _ = self.tx.send(Op::Close);
            if handle.join().is_err() {
                tracing::error!("the raft log writer thread panicked");
            }
        }
    }
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn encode<T: serde::Serialize>(value: &T, what: &'static str) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|source| StoreError::Encode { what, source })
}

fn decode_entry(key: &[u8], value: &[u8]) -> Result<Entry, StoreError> {
    serde_json::from_slice(value).map_err(|e| StoreError::Corrupt {
        tree: LOG_TREE,
        key: format!("{key:02x?}"),
        reason: e.to_string(),
    })
}

fn read_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::read_logs(AnyError::error(e)).into()
}

fn write_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::write_logs(AnyError::error(e)).into()
}

impl LogReader {
    fn entries(&self, start: u64, end: Option<u64>) -> Result<Vec<Entry>, StoreError> {
        let mut out = Vec::new();
        for item in self.log.range(index_key(start)..) {
            let (key, value) = item?;
            let entry = decode_entry(&key, &value)?;
            if end.is_some_and(|end| entry.log_id.index >= end) {
                break;
            }
            out.push(entry);
        }
        Ok(out)
    }

    fn last(&self) -> Result<Option<LogId>, StoreError> {
        match self.log.last()? {
            None => Ok(None),
            Some((key, value)) => Ok(Some(decode_entry(&key, &value)?.log_id)),
        }
    }
}

/// `[start, end)` of a range of indexes; `end` is `None` when unbounded.
fn index_range<RB: RangeBounds<u64>>(range: &RB) -> (u64, Option<u64>) {
    let start = match range.start_bound() {
        Bound::Included(&i) => i,
        Bound::Excluded(&i) => i.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&i) => i.checked_add(1),
        Bound::Excluded(&i) => Some(i),
        Bound::Unbounded => None,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let (start, end) = index_range(&range);
        self.entries(start, end).map_err(read_err)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        self.reader.try_get_log_entries(range).await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState, StorageError> {
        let last_purged: Option<LogId> = self.read_meta(LAST_PURGED).map_err(read_err)?;
        let last = self.reader.last().map_err(read_err)?;
        // Entries up to the last purged one may outlive a crash during a purge; they count
        // as purged.
        let last_log_id = last.max(last_purged);
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> LogReader {
        self.reader.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let value =
            encode(vote, "the vote").map_err(|e| StorageIOError::write_vote(AnyError::new(&e)))?;
        let mut batch = sled::Batch::default();
        batch.insert(VOTE, value);
        self.write(Some(batch), None, true)
            .await
            .map_err(|e| StorageIOError::write_vote(AnyError::error(e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.read_meta(VOTE)
            .map_err(|e| StorageIOError::read_vote(AnyError::new(&e)).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        match committed {
            Some(id) => batch.insert(
                COMMITTED,
                encode(&id, "the committed log id").map_err(write_err)?,
            ),
            None => batch.remove(COMMITTED),
        }
        self.write(Some(batch), None, false)
            .await
            .map_err(write_err)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        self.read_meta(COMMITTED).map_err(read_err)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = sled::Batch::default();
        for entry in entries {
            let value = encode(&entry, "a log entry").map_err(write_err)?;
            batch.insert(&index_key(entry.log_id.index)[..], value);
        }
        let (tx, rx) = oneshot::channel();
        self.send(Write {
            meta: None,
            log: Some(batch),
            applied: Some(tx),
            durable: Some(Durable::Flushed(callback)),
        })
        .map_err(write_err)?;
        // Applied: readers see the entries. The callback is called by the writer after the
        // flush.
        rx.await
            .map_err(|_| write_err("the raft log writer is gone"))?
            .map_err(write_err)
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        for item in self.reader.log.range(index_key(log_id.index)..) {
            let (key, _) = item.map_err(write_err)?;
            batch.remove(key);
        }
        self.write(None, Some(batch), true).await.map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut meta = sled::Batch::default();
        meta.insert(
            LAST_PURGED,
            encode(&log_id, "the last purged log id").map_err(write_err)?,
        );
        let mut log = sled::Batch::default();
        for item in self.reader.log.range(..=index_key(log_id.index)) {
            let (key, _) = item.map_err(write_err)?;
            log.remove(key);
        }
        // The last purged id is written before the entries go.
        self.write(Some(meta), Some(log), false)
            .await
            .map_err(write_err)
    }
}

/// The writer thread.
struct Writer {
    db: sled::Db,
    log: sled::Tree,
    meta: sled::Tree,
    rx: mpsc::Receiver<Op>,
}

impl Writer {
    fn run(self) {
        loop {
            let Ok(first) = self.rx.recv() else {
                // Every sender is gone without a Close.
                self.flush().ok();
                return;
            };
            // Apply what is queued; one flush covers every write waiting for durability.
            let mut waiting = Vec::new();
            let mut close = false;
            let mut next = Some(first);
            while let Some(op) = next {
                match op {
                    Op::Close => {
                        close = true;
                        break;
                    }
                    Op::Write(write) => {
                        let result = self.apply(write.meta, write.log);
                        if let Some(applied) = write.applied {
                            let _ = applied.send(result.clone());
                        }
                        if let Some(durable) = write.durable {
                            waiting.push((durable, result));
                        }
                    }
                }
                next = self.rx.try_recv().ok();
            }
            if !waiting.is_empty() || close {
                let flushed = self.flush();
                for (durable, result) in waiting {
                    durable.complete(result.and(flushed.clone()));
                }
            }
            if close {
                return;
            }
        }
    }

    fn apply(&self, meta: Option<sled::Batch>, log: Option<sled::Batch>) -> WriteResult {
        if let Some(batch) = meta {
            self.meta
                .apply_batch(batch)
                .map_err(|e| format!("writing raft log metadata: {e}"))?;
        }
        if let Some(batch) = log {
            self.log
                .apply_batch(batch)
                .map_err(|e| format!("writing raft log entries: {e}"))?;
        }
        Ok(())
    }

    fn flush(&self) -> WriteResult {
        self.db.flush().map(|_| ()).map_err(|e| {
            tracing::error!("flushing the raft log: {e}");
            format!("flushing the raft log: {e}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn log_id(term: u64, index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    fn blank(term: u64, index: u64) -> Entry {
        Entry {
            log_id: log_id(term, index),
            payload: EntryPayload::Blank,
        }
    }

    #[test]
    fn index_ranges() {
        assert_eq!(index_range(&(3..7)), (3, Some(7)));
        assert_eq!(index_range(&(3..=7)), (3, Some(8)));
        assert_eq!(index_range(&(..)), (0, None));
        assert_eq!(index_range(&(5..=u64::MAX)), (5, None));
        // Keys sort like indexes.
        assert!(index_key(255) < index_key(256));
    }

    /// What the log holds survives closing and reopening the database.
    #[tokio::test]
    async fn log_vote_and_committed_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = crate::store::open_db(dir.path(), super::super::CACHE_BYTES).unwrap();
            let mut store = LogStore::open(&db).unwrap();
            store.save_vote(&Vote::new(2, 1)).await.unwrap();
            let entries: Vec<Entry> = (1..=5).map(|i| blank(2, i)).collect();
            openraft::storage::RaftLogStorageExt::blocking_append(&mut store, entries)
                .await
                .unwrap();
            store.save_committed(Some(log_id(2, 4))).await.unwrap();
            store.purge(log_id(2, 1)).await.unwrap();
            store.truncate(log_id(2, 5)).await.unwrap();
        }
        let db = crate::store::open_db(dir.path(), super::super::CACHE_BYTES).unwrap();
        let mut store = LogStore::open(&db).unwrap();
        assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(2, 1)));
        assert_eq!(store.read_committed().await.unwrap(), Some(log_id(2, 4)));
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id(2, 1)));
        assert_eq!(state.last_log_id, Some(log_id(2, 4)));
        let got = store.try_get_log_entries(..).await.unwrap();
        let ids: Vec<u64> = got.iter().map(|e| e.log_id.index).collect();
        assert_eq!(ids, vec![2, 3, 4]);
    }
}
