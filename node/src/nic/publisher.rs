//! The publisher: drains the registry's changes in batches, stamps them with the router's
//! ownership epoch, applies them to this node's directory (when it embeds one) and sends them
//! to every target: the other members, or the standalone NIC endpoints. Each target has its
//! own queue and task so that a slow or unreachable one delays nobody.
//!
//! A target's queue that overflows, or a send that fails, turns into a replay of every binding
//! of this node to that target once it answers again (retried with a growing pause). The
//! owners of routers are taken from this node's copy of the control state whenever it changes,
//! and published too (a standalone NIC has no control state of its own); every replay starts
//! with them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sae_nic::{Publication, SessionKey};
use tokio::sync::mpsc;

use super::{Change, Changes, Nic, binding, ownership_key};
use crate::cluster::{NodeId, Ownership};
use crate::model::SubscriberRecord;

/// Most publications sent in one request.
const BATCH: usize = 2048;
/// How long changes are gathered before a batch goes out.
const LINGER: Duration = Duration::from_millis(20);
/// Batches one member's queue holds before it falls back to a replay.
const PEER_QUEUE: usize = 256;
/// How often the member list and the router owners are looked at.
const REFRESH: Duration = Duration::from_millis(250);
/// Pause after a failed send, doubled up to [`MAX_BACKOFF`].
const BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often an idle target is sent an empty batch, to learn whether it restarted.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// Margin after a resynchronization window before `Synced` goes out.
const SYNC_MARGIN: Duration = Duration::from_millis(500);

/// Sends one batch to the member (or NIC) at a gRPC address; answers the receiving
/// directory's instance (a new one: it restarted empty and needs a replay).
pub type SendFn = Arc<
    dyn Fn(
            String,
            Arc<Vec<Publication>>,
        ) -> Pin<Box<dyn Future<Output = Result<u64, String>> + Send>>
        + Send
        + Sync,
>;

/// Every router of the control state: name, active node, epoch.
pub type Owners = Vec<(String, Option<NodeId>, u64)>;

/// What the publisher reads of the node.
pub struct Sources {
    /// This node's id, the publisher of every binding.
    pub node: NodeId,
    /// Every session this node holds.
    pub sessions: Arc<dyn Fn() -> Vec<Arc<SubscriberRecord>> + Send + Sync>,
    /// Where publications go: the other members (or the NIC endpoints), by id and gRPC address.
    pub peers: Arc<dyn Fn() -> Vec<(NodeId, String)> + Send + Sync>,
    /// Every router of the control state with its active node and epoch (router names as
    /// sessions carry them).
    pub owners: Arc<dyn Fn() -> Owners + Send + Sync>,
    pub ownership: Arc<Ownership>,
    pub send: SendFn,
    pub metrics: Arc<crate::metrics::Metrics>,
}

struct Peer {
    addr: String,
    tx: mpsc::Sender<Arc<Vec<Publication>>>,
    replay: Arc<AtomicBool>,
    task: tokio::task::AbortHandle,
}

/// This node's directory, when it embeds one.
type Local = Option<Arc<Nic>>;

fn apply_local(local: &Local, publications: &[Publication]) {
    if let Some(nic) = local {
        nic.apply(publications.iter().cloned());
    }
}

/// Runs the publisher until the node stops (the sink is dropped).
pub async fn run(local: Local, mut changes: Changes, sources: Sources) {
    let sources = Arc::new(sources);
    // Every task the publisher starts (one per member, resync timers) ends with it.
    let mut tasks = tokio::task::JoinSet::new();
    let mut peers: HashMap<NodeId, Peer> = HashMap::new();
    let mut owners: BTreeMap<String, (Option<NodeId>, u64)> = BTreeMap::new();
    let mut refresh = tokio::time::interval(REFRESH);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let first = tokio::select! {
            change = changes.rx.recv() => match change {
                Some(c) => Some(c),
                None => break,
            },
            _ = refresh.tick() => None,
        };
        while tasks.try_join_next().is_some() {}
        if first.is_none() {
            if let Some(nic) = &local {
                sources
                    .metrics
                    .nic_bindings
                    .set(nic.stats().bindings as i64);
            }
            let changed = refresh_owners(&sources, &mut owners);
            if !changed.is_empty() {
                apply_local(&local, &changed);
                send_all(&peers, Arc::new(changed));
            }
            refresh_peers(&sources, &mut peers, &mut tasks);
            if changes.overflow.swap(false, Ordering::Relaxed) {
                tracing::warn!("NIC publications overflowed: replaying every binding");
                apply_local(&local, &replay(&sources));
                for p in peers.values() {
                    p.replay.store(true, Ordering::Relaxed);
                }
            }
            continue;
        }
        // Changes gather for LINGER without the publisher waking for each one (at thousands
        // of logins a second a wake per login costs more than its publication), then
        // everything queued goes out, in batches of at most BATCH.
        let mut batch = Vec::new();
        if let Some(change) = first {
            publication(&local, &sources, change, &mut batch, &mut tasks);
        }
        tokio::time::sleep(LINGER).await;
        let mut taken = 0;
        while taken < super::QUEUE
            && let Ok(change) = changes.rx.try_recv()
        {
            taken += 1;
            publication(&local, &sources, change, &mut batch, &mut tasks);
            if batch.len() >= BATCH {
                flush(&local, &peers, std::mem::take(&mut batch));
            }
        }
        flush(&local, &peers, batch);
    }
    tasks.abort_all();
}

/// Applies a batch here and queues it for every target.
fn flush(local: &Local, peers: &HashMap<NodeId, Peer>, batch: Vec<Publication>) {
    if batch.is_empty() {
        return;
    }
    apply_local(local, &batch);
    send_all(peers, Arc::new(batch));
}

/// Queues a batch for every target; a full queue makes that target's next send a replay.
fn send_all(peers: &HashMap<NodeId, Peer>, batch: Arc<Vec<Publication>>) {
    for p in peers.values() {
        if p.tx.try_send(batch.clone()).is_err() {
            p.replay.store(true, Ordering::Relaxed);
        }
    }
}

/// The publication for one change, if this node may still speak for the router.
fn publication(
    local: &Local,
    sources: &Arc<Sources>,
    change: Change,
    out: &mut Vec<Publication>,
    tasks: &mut tokio::task::JoinSet<()>,
) {
    match change {
        Change::Bound(record) => {
            let (mine, epoch) = sources.ownership.standing(&ownership_key(&record));
            if mine {
                out.push(Publication::bind(binding(&record, sources.node, epoch)));
            }
        }
        Change::Unbound(record) => {
            let (mine, epoch) = sources.ownership.standing(&ownership_key(&record));
            // A node that lost the router removes only what it published itself: bindings
            // of an older epoch than the router's current one.
            let epoch = if mine { epoch } else { epoch.saturating_sub(1) };
            out.push(Publication::Unbind {
                session: SessionKey::new(&record.router, &record.session_id),
                node: sources.node,
                epoch,
            });
        }
        Change::Resync { router, window } => {
            let (mine, epoch) = sources.ownership.standing(&router);
            if !mine {
                return;
            }
            let local = local.clone();
            let sources = sources.clone();
            let name = crate::cluster::OwnedKey::parse(&router)
                .sessions_router()
                .to_owned();
            tasks.spawn(async move {
                tokio::time::sleep(window + SYNC_MARGIN).await;
                if sources.ownership.standing(&router) != (true, epoch) {
                    return;
                }
                let synced = Publication::Synced {
                    router: name,
                    node: sources.node,
                    epoch,
                };
                apply_local(&local, std::slice::from_ref(&synced));
                let batch = Arc::new(vec![synced]);
                for (_, addr) in (sources.peers)() {
                    let _ = (sources.send)(addr, batch.clone()).await;
                }
            });
        }
    }
}

/// The owners this node knows, then every binding of this node, framed as a replay.
fn replay(sources: &Sources) -> Vec<Publication> {
    let node = sources.node;
    let mut out = vec![Publication::ReplayStart { node }];
    out.extend(
        (sources.owners)()
            .into_iter()
            .filter_map(|(router, owner, epoch)| {
                owner.map(|node| Publication::Owner {
                    router,
                    node,
                    epoch,
                })
            }),
    );
    for record in (sources.sessions)() {
        let (mine, epoch) = sources.ownership.standing(&ownership_key(&record));
        if mine {
            out.push(Publication::bind(binding(&record, node, epoch)));
        }
    }
    out.push(Publication::ReplayEnd { node });
    out
}

/// The owners of the control state that changed since last looked at.
fn refresh_owners(
    sources: &Sources,
    known: &mut BTreeMap<String, (Option<NodeId>, u64)>,
) -> Vec<Publication> {
    let mut changed = Vec::new();
    for (router, owner, epoch) in (sources.owners)() {
        if known.get(&router) != Some(&(owner, epoch)) {
            known.insert(router.clone(), (owner, epoch));
            if let Some(node) = owner {
                changed.push(Publication::Owner {
                    router,
                    node,
                    epoch,
                });
            }
        }
    }
    changed
}

/// Starts a task (and a replay) for each new member; stops those of members gone.
fn refresh_peers(
    sources: &Arc<Sources>,
    peers: &mut HashMap<NodeId, Peer>,
    tasks: &mut tokio::task::JoinSet<()>,
) {
    let now: HashMap<NodeId, String> = (sources.peers)().into_iter().collect();
    let gone: HashSet<NodeId> = peers
        .iter()
        .filter(|(id, p)| now.get(id) != Some(&p.addr))
        .map(|(id, _)| *id)
        .collect();
    for id in gone {
        if let Some(p) = peers.remove(&id) {
            p.task.abort();
        }
    }
    for (id, addr) in now {
        if peers.contains_key(&id) {
            continue;
        }
        let (tx, rx) = mpsc::channel(PEER_QUEUE);
        let replay = Arc::new(AtomicBool::new(true));
        // A target that appears gets a replay first.
        let task = tasks.spawn(peer_task(sources.clone(), addr.clone(), rx, replay.clone()));
        peers.insert(
            id,
            Peer {
                addr,
                tx,
                replay,
                task,
            },
        );
    }
}

/// Sends one member its batches, replaying first whenever it may have missed some.
async fn peer_task(
    sources: Arc<Sources>,
    addr: String,
    mut rx: mpsc::Receiver<Arc<Vec<Publication>>>,
    replay_needed: Arc<AtomicBool>,
) {
    let mut backoff = BACKOFF;
    // The target's directory instance the last replay went to.
    let mut instance: Option<u64> = None;
    let mut idle = tokio::time::Instant::now();
    loop {
        if replay_needed.swap(false, Ordering::Relaxed) {
            // What is queued now is older than the replay's snapshot: drop it.
            while rx.try_recv().is_ok() {}
            let all = replay(&sources);
            let n = all
                .iter()
                .filter(|p| matches!(p, Publication::Bind(_)))
                .count();
            let mut ok = true;
            let mut started = None;
            for chunk in all.chunks(BATCH) {
                match (sources.send)(addr.clone(), Arc::new(chunk.to_vec())).await {
                    // The target restarted during the replay: start again.
                    Ok(i) if started.is_some_and(|s| s != i) => {
                        ok = false;
                        break;
                    }
                    Ok(i) => started = Some(i),
                    Err(e) => {
                        tracing::debug!(peer = %addr, "NIC replay: {e}");
                        sources.metrics.nic_published("failed", chunk.len());
                        ok = false;
                        break;
                    }
                }
                sources.metrics.nic_published("replayed", chunk.len());
            }
            instance = started;
            if !ok {
                replay_needed.store(true, Ordering::Relaxed);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            tracing::debug!(peer = %addr, bindings = n, "NIC bindings replayed");
            backoff = BACKOFF;
        }
        let batch = tokio::select! {
            b = rx.recv() => match b {
                Some(b) => b,
                None => return,
            },
            // Looks at the replay flag now and then (set by an overflow), and asks an idle
            // target whether it is still the directory the last replay went to.
            _ = tokio::time::sleep(REFRESH) => {
                if idle.elapsed() < HEARTBEAT {
                    continue;
                }
                Arc::new(Vec::new())
            }
        };
        idle = tokio::time::Instant::now();
        let n = batch.len();
        match (sources.send)(addr.clone(), batch).await {
            Ok(i) if instance != Some(i) => {
                tracing::info!(peer = %addr, "NIC directory restarted: replaying every binding");
                replay_needed.store(true, Ordering::Relaxed);
            }
            Ok(_) => sources.metrics.nic_published("sent", n),
            Err(e) => {
                tracing::debug!(peer = %addr, "NIC publish: {e}");
                sources.metrics.nic_published("failed", n);
                replay_needed.store(true, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::RouterView;
    use crate::model::{Attachment, SessionState, SubscriberAttributes};

    fn record(router: &str, id: &str) -> Arc<SubscriberRecord> {
        Arc::new(SubscriberRecord {
            session_id: id.into(),
            router: router.into(),
            attachment: Attachment::Diameter {
                realm: "isp".into(),
                application_id: 1,
            },
            user_name: Some(format!("{id}@isp.example")),
            framed_ip: None,
            nas_port_id: None,
            login_ms: 0,
            confirmed: true,
            state: SessionState::Active,
            services: vec![],
            attributes: SubscriberAttributes::default(),
        })
    }

    /// Node 1's publisher sources: it owns bng1 (epoch 4) and lost bng2 (now node 2's, epoch 7).
    fn sources(sessions: Vec<Arc<SubscriberRecord>>) -> Arc<Sources> {
        let ownership = Arc::new(Ownership::clustered());
        let view = |owner, epoch, mine| RouterView {
            owner: Some(owner),
            epoch,
            until_ms: i64::MAX,
            mine,
            ..RouterView::default()
        };
        ownership.publish([
            ("bng1".to_string(), view(1, 4, true)),
            ("bng2".to_string(), view(2, 7, false)),
        ]);
        Arc::new(Sources {
            node: 1,
            sessions: Arc::new(move || sessions.clone()),
            peers: Arc::new(Vec::new),
            owners: Arc::new(Vec::new),
            ownership,
            send: Arc::new(|_, _| Box::pin(async { Ok(1) })),
            metrics: Arc::new(crate::metrics::Metrics::new()),
        })
    }

    fn nic() -> Arc<Nic> {
        Arc::new(Nic::new(sae_nic::config::Resolution::default()))
    }

    #[tokio::test]
    async fn changes_are_stamped_with_the_epoch_this_node_serves_the_router_in() {
        let (local, sources) = (Some(nic()), sources(vec![]));
        let mut tasks = tokio::task::JoinSet::new();
        let mut out = Vec::new();
        publication(
            &local,
            &sources,
            Change::Bound(record("bng1", "s1")),
            &mut out,
            &mut tasks,
        );
        // A router this node no longer serves: no binding in its name.
        publication(
            &local,
            &sources,
            Change::Bound(record("bng2", "s2")),
            &mut out,
            &mut tasks,
        );
        publication(
            &local,
            &sources,
            Change::Unbound(record("bng1", "s1")),
            &mut out,
            &mut tasks,
        );
        // Its removal only reaches what it published under an older epoch.
        publication(
            &local,
            &sources,
            Change::Unbound(record("bng2", "s2")),
            &mut out,
            &mut tasks,
        );
        assert_eq!(out.len(), 3, "{out:?}");
        let Publication::Bind(b) = &out[0] else {
            panic!("{:?}", out[0])
        };
        assert_eq!(
            (b.node, b.epoch, b.session.session_id.as_str()),
            (1, 4, "s1")
        );
        assert!(
            matches!(out[1], Publication::Unbind { epoch: 4, .. }),
            "{:?}",
            out[1]
        );
        assert!(
            matches!(out[2], Publication::Unbind { epoch: 6, .. }),
            "{:?}",
            out[2]
        );
    }

    #[tokio::test]
    async fn a_replay_frames_every_binding_of_the_routers_this_node_serves() {
        let all = vec![
            record("bng1", "s1"),
            record("bng1", "s3"),
            record("bng2", "s2"),
        ];
        let (nic, sources) = (nic(), sources(all));
        let replayed = replay(&sources);
        assert!(matches!(
            replayed.first(),
            Some(Publication::ReplayStart { node: 1 })
        ));
        assert!(matches!(
            replayed.last(),
            Some(Publication::ReplayEnd { node: 1 })
        ));
        let bound: Vec<&str> = replayed
            .iter()
            .filter_map(|p| match p {
                Publication::Bind(b) => Some(b.session.session_id.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(bound.len(), 2);
        assert!(bound.contains(&"s1") && bound.contains(&"s3"), "{bound:?}");
        // Applied to a directory that held a session since gone, the replay drops it.
        nic.apply([Publication::bind(binding(&record("bng1", "gone"), 1, 4))]);
        nic.apply(replayed);
        assert_eq!(nic.stats().bindings, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn synced_follows_the_resync_window_of_a_router_still_served() {
        let (nic, sources) = (nic(), sources(vec![]));
        // A binding of bng1 from its previous owner (epoch 3) that the router did not replay.
        nic.apply([Publication::bind(binding(&record("bng1", "old"), 9, 3))]);
        nic.apply([Publication::Owner {
            router: "bng1".into(),
            node: 1,
            epoch: 4,
        }]);
        let mut tasks = tokio::task::JoinSet::new();
        let mut out = Vec::new();
        let resync = Change::Resync {
            router: "bng1".into(),
            window: Duration::from_secs(2),
        };
        publication(&Some(nic.clone()), &sources, resync, &mut out, &mut tasks);
        assert_eq!(nic.stats().bindings, 1, "kept during the window");
        tokio::time::sleep(Duration::from_secs(3)).await;
        while tasks.join_next().await.is_some() {}
        assert_eq!(nic.stats().bindings, 0, "dropped once the window passed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_target_that_restarted_empty_gets_a_replay() {
        use std::sync::Mutex;
        use std::sync::atomic::AtomicU64;
        let instance = Arc::new(AtomicU64::new(1));
        let replays = Arc::new(Mutex::new(Vec::new()));
        let base = sources(vec![record("bng1", "s1")]);
        let send: SendFn = {
            let (instance, replays) = (instance.clone(), replays.clone());
            Arc::new(move |_, batch: Arc<Vec<Publication>>| {
                let now = instance.load(Ordering::Relaxed);
                if matches!(batch.first(), Some(Publication::ReplayStart { .. })) {
                    replays.lock().unwrap().push(now);
                }
                Box::pin(async move { Ok(now) })
            })
        };
        let sources = Arc::new(Sources {
            node: 1,
            sessions: base.sessions.clone(),
            peers: Arc::new(Vec::new),
            owners: Arc::new(Vec::new),
            ownership: base.ownership.clone(),
            send,
            metrics: base.metrics.clone(),
        });
        let (_tx, rx) = mpsc::channel(4);
        let task = tokio::spawn(peer_task(
            sources,
            "nic:1".into(),
            rx,
            Arc::new(AtomicBool::new(true)),
        ));
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(*replays.lock().unwrap(), [1], "one replay, then heartbeats");
        instance.store(2, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(
            *replays.lock().unwrap(),
            [1, 2],
            "the new instance is replayed to"
        );
        task.abort();
    }
}
