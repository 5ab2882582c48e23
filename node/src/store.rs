//! Subscriber sessions and usage records on disk, in sled, behind the [`SessionStore`] trait
//! so the engine can be swapped. (The service catalog is replicated control state: see
//! `cluster`.)
//!
//! Session and usage writes never block the caller: they are encoded on the caller's thread and
//! queued to one background writer thread. The writer drains its queue, coalesces it (the last
//! put of a session wins, a remove cancels a queued put), applies one sled batch per tree and
//! flushes to disk at most every [`FLUSH_EVERY`] (sooner when [`FLUSH_AFTER_OPS`] writes are
//! waiting). Applied writes are visible to readers at once; [`SessionStore::flush`] is the
//! barrier that makes everything queued before it durable. Dropping a [`SledStore`] (or
//! [`SledStore::close`]) writes and flushes what is queued and stops the writer.
//!
//! Trees: `sessions` (key: Session-Id, value: JSON [`SubscriberRecord`]), `usage` (key: the
//! record id as big-endian `u64`, so iteration follows ids; value: JSON [`UsageRecord`]).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::model::{SubscriberRecord, UsageFilter, UsageRecord};

/// The longest a write applied by the writer waits before it is flushed to disk.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// Writes applied since the last flush that trigger a flush at once.
pub const FLUSH_AFTER_OPS: usize = 4096;
/// Queued operations the writer coalesces into one batch at most.
const MAX_BATCH_OPS: usize = 4096;
/// sled's page cache.
pub const CACHE_BYTES: u64 = 64 * 1024 * 1024;
/// Records returned by [`SessionStore::usage`] when the filter's limit is 0.
pub const DEFAULT_USAGE_LIMIT: usize = 100;
/// Records returned by [`SessionStore::usage`] at most, whatever the filter asks.
pub const MAX_USAGE_LIMIT: usize = 10_000;

/// How long [`SledStore::open`] waits for the database's file lock.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The sled engine failed (I/O, corruption).
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    /// A value could not be encoded.
    #[error("encoding {what}: {source}")]
    Encode {
        what: &'static str,
        source: serde_json::Error,
    },
    /// A stored entry could not be decoded.
    #[error("tree {tree}, key {key:?}: {reason}")]
    Corrupt {
        tree: &'static str,
        key: String,
        reason: String,
    },
    /// A queued write failed in the writer thread since the last flush.
    #[error("background write failed: {0}")]
    Write(String),
    /// The writer thread has stopped (store closed, or it panicked).
    #[error("the store writer is gone")]
    WriterGone,
}

/// Subscriber sessions and usage records.
pub trait SessionStore: Send + Sync + 'static {
    /// Queues the write of a session (insert or replace). Never blocks on disk.
    fn put_session(&self, rec: &SubscriberRecord);

    /// Queues the removal of a session. Never blocks on disk.
    fn remove_session(&self, session_id: &str);

    /// Assigns the next usage id, queues the write and returns the record as stored.
    fn append_usage(&self, rec: UsageRecord) -> UsageRecord;

    /// Every stored session; used once at start to recover. Entries that cannot be decoded
    /// are logged and skipped (the routers' resynchronization replays them).
    fn load_sessions(&self) -> Result<Vec<SubscriberRecord>, StoreError>;

    /// Usage records matching `filter`, by increasing id, at most `filter.limit` (0:
    /// [`DEFAULT_USAGE_LIMIT`], capped at [`MAX_USAGE_LIMIT`]). Writes still queued are not
    /// seen; [`SessionStore::flush`] first for read-your-writes.
    fn usage(&self, filter: &UsageFilter) -> Result<Vec<UsageRecord>, StoreError>;

    /// Usage records stored or queued.
    fn usage_count(&self) -> u64;

    /// Blocks until everything queued before the call is written and flushed to disk. Reports
    /// a background write that failed since the previous flush.
    fn flush(&self) -> Result<(), StoreError>;
}

/// One queued write.
enum Op {
    PutSession { id: String, value: Vec<u8> },
    RemoveSession { id: String },
    Usage { id: u64, value: Vec<u8> },
    Flush(mpsc::SyncSender<Result<(), StoreError>>),
    Close(mpsc::SyncSender<Result<(), StoreError>>),
}

/// [`SessionStore`] on a sled database, with one writer thread.
pub struct SledStore {
    /// Kept open for as long as the store is.
    _db: sled::Db,
    sessions: sled::Tree,
    usage: sled::Tree,
    next_usage_id: AtomicU64,
    usage_count: AtomicU64,
    tx: mpsc::Sender<Op>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("next_usage_id", &self.next_usage_id)
            .field("usage_count", &self.usage_count)
            .finish_non_exhaustive()
    }
}

impl SledStore {
    /// Opens (or creates) the database in `dir` and starts the writer thread. Usage ids
    /// continue after the last stored one.
    pub fn open(dir: &Path) -> Result<SledStore, StoreError> {
        // The page cache is bounded well below sled's 1 GiB default: sessions live in the actors,
        // the store is read at start.
        let db = open_db(dir, CACHE_BYTES)?;
        let sessions = db.open_tree("sessions")?;
        let usage = db.open_tree("usage")?;
        let last_id = match usage.last()? {
            Some((key, _)) => usage_id(&key)?,
            None => 0,
        };
        let count = usage.len() as u64;
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            db: db.clone(),
            sessions: sessions.clone(),
            usage: usage.clone(),
            rx,
            pending: Pending::default(),
            unflushed: 0,
            last_flush: Instant::now(),
            failed: None,
        };
        let handle = std::thread::Builder::new()
            .name("sae-store-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| StoreError::Sled(sled::Error::Io(e)))?;
        tracing::debug!(dir = %dir.display(), last_usage_id = last_id, usage_records = count, "store opened");
        Ok(SledStore {
            _db: db,
            sessions,
            usage,
            next_usage_id: AtomicU64::new(last_id + 1),
            usage_count: AtomicU64::new(count),
            tx,
            writer: Mutex::new(Some(handle)),
        })
    }

    /// Writes and flushes what is queued, then stops the writer thread. Later writes are
    /// logged and lost. Called by `Drop`; calling it again does nothing.
    pub fn close(&self) -> Result<(), StoreError> {
        let Some(handle) = self.writer.lock().expect("store writer lock").take() else {
            return Ok(());
        };
        let (ack, done) = mpsc::sync_channel(1);
        let result = match self.tx.send(Op::Close(ack)) {
            Ok(()) => done.recv().unwrap_or(Err(StoreError::WriterGone)),
            Err(_) => Err(StoreError::WriterGone),
        };
        if handle.join().is_err() {
            tracing::error!("the store writer thread panicked");
            return Err(StoreError::WriterGone);
        }
        result
    }

    fn send(&self, op: Op, what: &str) {
        if self.tx.send(op).is_err() {
            tracing::error!("store writer is gone: {what} lost");
        }
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::error!("closing the store: {e}");
        }
    }
}

impl SessionStore for SledStore {
    fn put_session(&self, rec: &SubscriberRecord) {
        match serde_json::to_vec(rec) {
            Ok(value) => self.send(
                Op::PutSession {
                    id: rec.session_id.clone(),
                    value,
                },
                "session write",
            ),
            Err(e) => tracing::error!(session_id = %rec.session_id, "encoding a session: {e}"),
        }
    }

    fn remove_session(&self, session_id: &str) {
        self.send(
            Op::RemoveSession {
                id: session_id.to_owned(),
            },
            "session removal",
        );
    }

    fn append_usage(&self, mut rec: UsageRecord) -> UsageRecord {
        rec.id = self.next_usage_id.fetch_add(1, Ordering::Relaxed);
        match serde_json::to_vec(&rec) {
            Ok(value) => {
                self.usage_count.fetch_add(1, Ordering::Relaxed);
                self.send(Op::Usage { id: rec.id, value }, "usage record");
            }
            Err(e) => tracing::error!(session_id = %rec.session_id, "encoding a usage record: {e}"),
        }
        rec
    }

    fn load_sessions(&self) -> Result<Vec<SubscriberRecord>, StoreError> {
        let mut out = Vec::new();
        for item in self.sessions.iter() {
            let (key, value) = item?;
            match serde_json::from_slice::<SubscriberRecord>(&value) {
                Ok(rec) => out.push(rec),
                Err(e) => tracing::error!(
                    key = %String::from_utf8_lossy(&key),
                    "skipping a stored session that cannot be decoded: {e}"
                ),
            }
        }
        Ok(out)
    }

    fn usage(&self, filter: &UsageFilter) -> Result<Vec<UsageRecord>, StoreError> {
        let limit = match filter.limit {
            0 => DEFAULT_USAGE_LIMIT,
            n => n.min(MAX_USAGE_LIMIT),
        };
        let start = filter.after_id.saturating_add(1).to_be_bytes();
        let mut out = Vec::new();
        for item in self.usage.range(start..) {
            let (key, value) = item?;
            let id = usage_id(&key)?;
            let mut rec = match serde_json::from_slice::<UsageRecord>(&value) {
                Ok(rec) => rec,
                Err(e) => {
                    tracing::error!(id, "skipping a usage record that cannot be decoded: {e}");
                    continue;
                }
            };
            rec.id = id;
            if filter.matches(&rec) {
                out.push(rec);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn usage_count(&self) -> u64 {
        self.usage_count.load(Ordering::Relaxed)
    }

    fn flush(&self) -> Result<(), StoreError> {
        let (ack, done) = mpsc::sync_channel(1);
        self.tx
            .send(Op::Flush(ack))
            .map_err(|_| StoreError::WriterGone)?;
        done.recv().unwrap_or(Err(StoreError::WriterGone))
    }
}

/// Opens a sled database with a page cache of `cache_bytes`, waiting up to [`LOCK_WAIT`] for its
/// file lock: sled releases it from a background thread shortly after the previous `Db` in this
/// process is dropped. sled's own periodic flusher is off: the callers flush where durability
/// matters.
pub(crate) fn open_db(dir: &Path, cache_bytes: u64) -> Result<sled::Db, StoreError> {
    let config = sled::Config::new()
        .path(dir)
        .flush_every_ms(None)
        .cache_capacity(cache_bytes);
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match config.open() {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return Ok(other?),
        }
    }
}

fn usage_id(key: &[u8]) -> Result<u64, StoreError> {
    let bytes: [u8; 8] = key.try_into().map_err(|_| StoreError::Corrupt {
        tree: "usage",
        key: format!("{key:02x?}"),
        reason: "the key is not an 8-byte id".into(),
    })?;
    Ok(u64::from_be_bytes(bytes))
}

/// Operations drained from the queue, coalesced, not applied yet.
#[derive(Default)]
struct Pending {
    /// Session-Id → the last put (`Some`) or a removal (`None`).
    sessions: HashMap<String, Option<Vec<u8>>>,
    usage: Vec<(u64, Vec<u8>)>,
    /// Operations drained into this batch (before coalescing).
    ops: usize,
}

/// A barrier: the acknowledgement to send once written and flushed, and whether to stop.
type Barrier = (mpsc::SyncSender<Result<(), StoreError>>, bool);

impl Pending {
    /// Coalesces a write into the batch, or returns a barrier untouched.
    fn add(&mut self, op: Op) -> Option<Barrier> {
        match op {
            Op::PutSession { id, value } => {
                self.sessions.insert(id, Some(value));
            }
            Op::RemoveSession { id } => {
                self.sessions.insert(id, None);
            }
            Op::Usage { id, value } => self.usage.push((id, value)),
            Op::Flush(ack) => return Some((ack, false)),
            Op::Close(ack) => return Some((ack, true)),
        }
        self.ops += 1;
        None
    }
}

/// The writer thread's state.
struct Writer {
    db: sled::Db,
    sessions: sled::Tree,
    usage: sled::Tree,
    rx: mpsc::Receiver<Op>,
    pending: Pending,
    /// Operations applied since the last flush.
    unflushed: usize,
    last_flush: Instant,
    /// The first failure since the last flush barrier.
    failed: Option<String>,
}

impl Writer {
    fn run(mut self) {
        loop {
            let first = if self.unflushed > 0 {
                let wait =
                    (self.last_flush + FLUSH_EVERY).saturating_duration_since(Instant::now());
                match self.rx.recv_timeout(wait) {
                    Ok(op) => Some(op),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match self.rx.recv() {
                    Ok(op) => Some(op),
                    Err(_) => break,
                }
            };
            // Drain what is queued, up to a barrier or a full batch.
            let mut barrier = None;
            let mut next = first;
            while let Some(op) = next {
                if let Some(b) = self.pending.add(op) {
                    barrier = Some(b);
                    break;
                }
                if self.pending.ops >= MAX_BATCH_OPS {
                    break;
                }
                next = self.rx.try_recv().ok();
            }
            self.apply();
            let due = barrier.is_some()
                || self.unflushed >= FLUSH_AFTER_OPS
                || (self.unflushed > 0 && self.last_flush.elapsed() >= FLUSH_EVERY);
            if due {
                self.flush();
            }
            if let Some((ack, close)) = barrier {
                let result = match self.failed.take() {
                    Some(e) => Err(StoreError::Write(e)),
                    None => Ok(()),
                };
                // The caller may have given up waiting; nothing to do then.
                let _ = ack.send(result);
                if close {
                    return;
                }
            }
        }
        // Every sender is gone without a Close: keep what was applied.
        self.apply();
        self.flush();
    }

    /// Applies the pending operations as one batch per tree.
    fn apply(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        if pending.ops == 0 {
            return;
        }
        if !pending.sessions.is_empty() {
            let mut batch = sled::Batch::default();
            for (id, value) in pending.sessions {
                match value {
                    Some(value) => batch.insert(id.into_bytes(), value),
                    None => batch.remove(id.into_bytes()),
                }
            }
            if let Err(e) = self.sessions.apply_batch(batch) {
                self.fail(format!("writing sessions: {e}"));
            }
        }
        if !pending.usage.is_empty() {
            let mut batch = sled::Batch::default();
            for (id, value) in pending.usage {
                batch.insert(&id.to_be_bytes()[..], value);
            }
            if let Err(e) = self.usage.apply_batch(batch) {
                self.fail(format!("writing usage records: {e}"));
            }
        }
        self.unflushed += pending.ops;
    }

    fn flush(&mut self) {
        if let Err(e) = self.db.flush() {
            self.fail(format!("flushing: {e}"));
        }
        self.unflushed = 0;
        self.last_flush = Instant::now();
    }

    fn fail(&mut self, reason: String) {
        tracing::error!("store writer: {reason}");
        self.failed.get_or_insert(reason);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::model::{ServiceSession, ServiceState, SessionState, UsageKind};

    fn session(id: &str, user: &str) -> SubscriberRecord {
        SubscriberRecord {
            session_id: id.into(),
            router: "bng1.example.net".into(),
            attachment: crate::model::Attachment::Diameter {
                realm: "example.net".into(),
                application_id: 16_777_244,
            },
            user_name: Some(user.into()),
            framed_ip: Some("10.0.0.7".parse().expect("ip")),
            nas_port_id: Some("ge-0/0/1.100".into()),
            login_ms: 1_700_000_000_000,
            confirmed: true,
            state: SessionState::Active,
            services: vec![ServiceSession {
                service: "gold".into(),
                policy_name: "gold-policy".into(),
                template_name: String::new(),
                substitutions: BTreeMap::from([("rate".into(), "10M".into())]),
                accounting: true,
                state: ServiceState::Active,
                result_code: 2001,
                error: String::new(),
                activated_ms: 1_700_000_000_500,
            }],
            attributes: Default::default(),
        }
    }

    fn usage(session_id: &str, user: &str, policy: &str) -> UsageRecord {
        UsageRecord {
            id: 0,
            session_id: session_id.into(),
            user_name: Some(user.into()),
            router: "bng1.example.net".into(),
            policy_name: policy.into(),
            kind: UsageKind::Interim,
            record_number: 1,
            input_octets: 100,
            output_octets: 200,
            input_packets: 3,
            output_packets: 4,
            time_ms: 1_700_000_001_000,
        }
    }

    fn sorted(mut v: Vec<SubscriberRecord>) -> Vec<SubscriberRecord> {
        v.sort_by(|a, b| a.session_id.cmp(&b.session_id));
        v
    }

    #[test]
    fn sessions_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = SledStore::open(dir.path()).expect("open");
            store.put_session(&session("s1", "alice"));
            store.put_session(&session("s2", "bob"));
            store.put_session(&session("s3", "carol"));
            store.remove_session("s2");
        }
        let store = SledStore::open(dir.path()).expect("reopen");
        let loaded = sorted(store.load_sessions().expect("load"));
        assert_eq!(loaded, vec![session("s1", "alice"), session("s3", "carol")]);
    }

    #[test]
    fn flush_makes_writes_visible_to_a_fresh_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path()).expect("open");
        store.put_session(&session("s1", "alice"));
        let rec = store.append_usage(usage("s1", "alice", "gold"));
        store.flush().expect("flush");
        drop(store);
        let store = SledStore::open(dir.path()).expect("reopen");
        assert_eq!(
            store.load_sessions().expect("load"),
            vec![session("s1", "alice")]
        );
        let got = store.usage(&UsageFilter::default()).expect("usage");
        assert_eq!(got, vec![rec]);
    }

    #[test]
    fn many_puts_of_one_session_leave_one_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path()).expect("open");
        let mut rec = session("s1", "alice");
        for i in 0..1000 {
            rec.login_ms = i;
            store.put_session(&rec);
        }
        store.flush().expect("flush");
        assert_eq!(store.load_sessions().expect("load"), vec![rec]);
    }

    #[test]
    fn a_batch_coalesces_per_session() {
        let put = |id: &str, v: u8| Op::PutSession {
            id: id.into(),
            value: vec![v],
        };
        let mut pending = Pending::default();
        for v in 0..100 {
            assert!(pending.add(put("s1", v)).is_none());
            assert!(pending.add(put("s2", v)).is_none());
        }
        assert!(pending.add(Op::RemoveSession { id: "s2".into() }).is_none());
        assert!(pending.add(put("s3", 1)).is_none());
        assert!(pending.add(Op::RemoveSession { id: "s3".into() }).is_none());
        assert!(pending.add(put("s3", 2)).is_none());
        assert!(
            pending
                .add(Op::Usage {
                    id: 1,
                    value: vec![]
                })
                .is_none()
        );
        let (ack, _done) = mpsc::sync_channel(1);
        assert!(matches!(pending.add(Op::Flush(ack)), Some((_, false))));
        assert_eq!(pending.ops, 205);
        let sessions: BTreeMap<_, _> = pending.sessions.into_iter().collect();
        assert_eq!(
            sessions,
            BTreeMap::from([
                ("s1".to_string(), Some(vec![99])),
                ("s2".to_string(), None),
                ("s3".to_string(), Some(vec![2])),
            ])
        );
        assert_eq!(pending.usage.len(), 1);
    }

    #[test]
    fn remove_after_put_in_one_batch_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path()).expect("open");
        // An earlier, flushed version must go too.
        store.put_session(&session("s1", "alice"));
        store.flush().expect("flush");
        for _ in 0..10 {
            store.put_session(&session("s1", "alice"));
            store.put_session(&session("s2", "bob"));
        }
        store.remove_session("s1");
        store.remove_session("s2");
        store.flush().expect("flush");
        assert!(store.load_sessions().expect("load").is_empty());
        drop(store);
        let store = SledStore::open(dir.path()).expect("reopen");
        assert!(store.load_sessions().expect("load").is_empty());
    }

    #[test]
    fn put_after_remove_keeps_the_put() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path()).expect("open");
        store.remove_session("s1");
        store.put_session(&session("s1", "alice"));
        store.flush().expect("flush");
        assert_eq!(
            store.load_sessions().expect("load"),
            vec![session("s1", "alice")]
        );
    }

    #[test]
    fn usage_ids_increase_across_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first: Vec<u64> = {
            let store = SledStore::open(dir.path()).expect("open");
            (0..5)
                .map(|_| store.append_usage(usage("s1", "alice", "gold")).id)
                .collect()
        };
        assert_eq!(first, vec![1, 2, 3, 4, 5]);
        let store = SledStore::open(dir.path()).expect("reopen");
        assert_eq!(store.usage_count(), 5);
        let next = store.append_usage(usage("s1", "alice", "gold"));
        assert_eq!(next.id, 6);
        assert_eq!(store.usage_count(), 6);
        store.flush().expect("flush");
        let ids: Vec<u64> = store
            .usage(&UsageFilter::default())
            .expect("usage")
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn usage_filter_and_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path()).expect("open");
        for i in 0..30 {
            let (sid, user) = if i % 2 == 0 {
                ("s1", "alice")
            } else {
                ("s2", "bob")
            };
            let policy = if i % 3 == 0 { "gold" } else { "silver" };
            store.append_usage(usage(sid, user, policy));
        }
        store.flush().expect("flush");
        let ids = |f: UsageFilter| -> Vec<u64> {
            store
                .usage(&f)
                .expect("usage")
                .iter()
                .map(|r| r.id)
                .collect()
        };
        // Ids start at 1: record i has id i + 1.
        let all = ids(UsageFilter::default());
        assert_eq!(all, (1..=30).collect::<Vec<_>>());
        let by_session = ids(UsageFilter {
            session_id: Some("s2".into()),
            ..Default::default()
        });
        assert_eq!(by_session, (1..=15).map(|i| 2 * i).collect::<Vec<_>>());
        let by_user_policy = ids(UsageFilter {
            user_name: Some("alice".into()),
            policy_name: Some("gold".into()),
            ..Default::default()
        });
        assert_eq!(by_user_policy, vec![1, 7, 13, 19, 25]);
        let page = ids(UsageFilter {
            session_id: Some("s1".into()),
            after_id: 10,
            limit: 3,
            ..Default::default()
        });
        assert_eq!(page, vec![11, 13, 15]);
        assert!(
            ids(UsageFilter {
                user_name: Some("nobody".into()),
                ..Default::default()
            })
            .is_empty()
        );
        assert!(
            ids(UsageFilter {
                after_id: u64::MAX,
                ..Default::default()
            })
            .is_empty()
        );
    }

    #[test]
    fn default_limit_applies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path()).expect("open");
        for _ in 0..(DEFAULT_USAGE_LIMIT + 5) {
            store.append_usage(usage("s1", "alice", "gold"));
        }
        store.flush().expect("flush");
        assert_eq!(
            store.usage(&UsageFilter::default()).expect("usage").len(),
            DEFAULT_USAGE_LIMIT
        );
        let all = store
            .usage(&UsageFilter {
                limit: 1000,
                ..Default::default()
            })
            .expect("usage");
        assert_eq!(all.len(), DEFAULT_USAGE_LIMIT + 5);
    }

    #[test]
    fn writes_from_many_threads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn SessionStore> = Arc::new(SledStore::open(dir.path()).expect("open"));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for i in 0..200 {
                        store.put_session(&session(&format!("t{t}-{}", i % 10), "u"));
                        store.append_usage(usage("s", "u", "p"));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        store.flush().expect("flush");
        assert_eq!(store.load_sessions().expect("load").len(), 40);
        assert_eq!(store.usage_count(), 800);
        let all = store
            .usage(&UsageFilter {
                limit: 1000,
                ..Default::default()
            })
            .expect("usage");
        assert_eq!(all.len(), 800);
        assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    }

    #[test]
    fn close_stops_the_writer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path()).expect("open");
        store.put_session(&session("s1", "alice"));
        store.close().expect("close");
        store.close().expect("second close");
        assert!(matches!(store.flush(), Err(StoreError::WriterGone)));
        // Logged and lost, no panic.
        store.put_session(&session("s2", "bob"));
        assert_eq!(
            store.load_sessions().expect("load"),
            vec![session("s1", "alice")]
        );
    }
}
