//! The running cluster member: the Raft instance, membership (create, join, leave), writes
//! through the leader, and the control loops.
//!
//! - **Writes** ([`Cluster::write`]) go to the local Raft when it leads, else to the leader's
//!   `Cluster.Write` over its cached channel; the caller then waits until its own state
//!   machine applied the entry, so a write is visible locally when it returns.
//! - **Heartbeat** (every `renew`): the node's lease, the routers connected to it and the
//!   leases of the routers it owns, in one command.
//! - **Balance** (on the leader, on every state change and every `renew / 2`): each router
//!   connected somewhere without a live owner goes to the least-loaded live node connected to
//!   it, in a new epoch; members' node entries are cleaned up; learners are promoted while the
//!   cluster has fewer voters than configured.
//! - **Publish**: every applied change is turned into [`RouterView`]s for the drivers and into
//!   the node's [`Catalog`].
//!
//! Leases are Unix-ms instants compared across nodes: the leader hands a router to another
//! node only once the owner's lease is `clock_skew` past, and an owner stops acting when its
//! lease, last renewed through Raft, runs out — so a node cut off from the majority has
//! stopped before anyone else starts.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{ChangeMembers, Raft, ServerState, SnapshotPolicy};
use sae_proto::v1 as pb;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::channels::Channels;
use super::network::Network;
use super::ownership::{Ownership, RouterView};
use super::state::{Command, ControlState, Refusal, Response};
use super::types::{Member, NodeId, StoredMembership, TypeConfig};
use super::{CACHE_BYTES, LogStore, StateMachineStore};
use crate::catalog::{Catalog, CatalogFile};
use crate::config::ClusterConfig;
use crate::model::{UnixMs, now_ms};
use crate::store::StoreError;

/// The local tree of the Raft database that holds this node's id.
const LOCAL_TREE: &str = "cluster_local";
const NODE_ID: &[u8] = b"node_id";

/// How long joining (id, admission) keeps trying the given members.
const JOIN_PATIENCE: Duration = Duration::from_secs(120);

/// Why a cluster operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("raft: {0}")]
    Raft(String),
    #[error("no leader is known")]
    NoLeader,
    #[error("{addr}: {reason}")]
    Peer { addr: String, reason: String },
    #[error("{0}")]
    Refused(#[from] Refusal),
    #[error("{0}")]
    Invalid(String),
    #[error("timed out: {0}")]
    Timeout(String),
    /// The leader does not count this node as a member (it was removed).
    #[error("this node is not a member of the cluster")]
    NotMember,
    /// An operator removed this node: it is not admitted again under its id.
    #[error(
        "node {0} was removed from the cluster by an operator; start it with an empty data directory to add it again"
    )]
    Evicted(NodeId),
}

fn raft_err(e: impl std::fmt::Display) -> ClusterError {
    ClusterError::Raft(e.to_string())
}

fn peer_err(addr: &str, e: impl std::fmt::Display) -> ClusterError {
    ClusterError::Peer {
        addr: addr.to_owned(),
        reason: e.to_string(),
    }
}

/// This node's part of the cluster.
pub struct Cluster {
    pub id: NodeId,
    pub member: Member,
    pub raft: Raft<TypeConfig>,
    pub sm: StateMachineStore,
    pub ownership: Arc<Ownership>,
    pub settings: ClusterConfig,
    channels: Channels,
    db: sled::Db,
    leaving: AtomicBool,
    /// Wakes the heartbeat loop at once (a router connected).
    nudge: Arc<Notify>,
    /// The last log index whose state the node published (router views, catalog).
    published: tokio::sync::watch::Sender<u64>,
    /// On the leader: when each unassigned router was first reported connected.
    first_seen: Mutex<HashMap<String, std::time::Instant>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("id", &self.id)
            .field("member", &self.member)
            .finish_non_exhaustive()
    }
}

/// The cluster as one node sees it, for the management API.
#[derive(Debug, Clone)]
pub struct ClusterView {
    pub id: NodeId,
    pub leader: Option<NodeId>,
    pub term: u64,
    pub last_applied: u64,
    pub membership: StoredMembership,
    pub state: ControlState,
    pub now_ms: UnixMs,
}

impl Cluster {
    /// Opens the Raft database in `dir`, finds (or obtains, from `settings.join`) this node's
    /// id, and starts Raft. The node must serve the `Cluster` gRPC service before
    /// [`Cluster::bootstrap`].
    pub async fn open(
        dir: &Path,
        member: Member,
        settings: ClusterConfig,
        ownership: Arc<Ownership>,
    ) -> Result<Arc<Cluster>, ClusterError> {
        let db = crate::store::open_db(dir, CACHE_BYTES)?;
        let log = LogStore::open(&db)?;
        let sm = StateMachineStore::open(&db)?;
        let local = db.open_tree(LOCAL_TREE).map_err(StoreError::from)?;
        let channels = Channels::default();
        let stored = local
            .get(NODE_ID)
            .map_err(StoreError::from)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(u64::from_be_bytes);
        let id = match stored {
            Some(id) => id,
            None => {
                let id = if settings.join.is_empty() {
                    1
                } else {
                    allocate_id(&channels, &settings.join, &member).await?
                };
                local
                    .insert(NODE_ID, &id.to_be_bytes())
                    .map_err(StoreError::from)?;
                db.flush().map_err(StoreError::from)?;
                id
            }
        };
        let election = settings.election_timeout.as_millis() as u64;
        let config = openraft::Config {
            cluster_name: "sae".into(),
            heartbeat_interval: settings.heartbeat.as_millis() as u64,
            election_timeout_min: election,
            election_timeout_max: election * 2,
            install_snapshot_timeout: 2000,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(settings.snapshot_after),
            max_in_snapshot_log_to_keep: settings.snapshot_after / 2,
            ..Default::default()
        }
        .validate()
        .map_err(raft_err)?;
        let raft = Raft::new(
            id,
            Arc::new(config),
            Network {
                channels: channels.clone(),
            },
            log,
            sm.clone(),
        )
        .await
        .map_err(raft_err)?;
        Ok(Arc::new(Cluster {
            id,
            member,
            raft,
            sm,
            ownership,
            settings,
            channels,
            db,
            leaving: AtomicBool::new(false),
            nudge: Arc::new(Notify::new()),
            published: tokio::sync::watch::channel(0).0,
            first_seen: Mutex::new(HashMap::new()),
            tasks: Mutex::new(Vec::new()),
        }))
    }

    /// Creates the single-node cluster (first start without `join`) or asks to be admitted
    /// (with `join`), starts the control loops, waits for a leader and writes the configured
    /// catalog if the cluster has none yet.
    pub async fn bootstrap(
        self: &Arc<Self>,
        seed: CatalogFile,
        catalog: Arc<Catalog>,
    ) -> Result<(), ClusterError> {
        self.spawn_loops(catalog);
        let initialized = self.raft.is_initialized().await.map_err(raft_err)?;
        if !initialized && self.settings.join.is_empty() {
            let members = BTreeMap::from([(self.id, self.member.clone())]);
            self.raft.initialize(members).await.map_err(raft_err)?;
            tracing::info!(node = self.id, "created a single-node cluster");
        } else {
            // Restarted (or first start with `join`): ask to be a member again — admission is
            // idempotent, and a node that left gracefully, or whose addresses changed, is
            // otherwise not one. Without `join`, the other members it knew are asked.
            let candidates: Vec<String> = if self.settings.join.is_empty() {
                self.other_members()
            } else {
                self.settings.join.clone()
            };
            if !candidates.is_empty() {
                self.join(&candidates).await?;
            }
        }
        let leader = self.wait_leader(Duration::from_secs(60)).await?;
        tracing::info!(node = self.id, leader, "cluster has a leader");
        // Alive in the control state before the node says it is ready.
        self.heartbeat().await;
        if self.settings.join.is_empty() && !self.sm.read(|a| a.state.meta.catalog_seeded) {
            match self.write(Command::SeedCatalog(seed)).await {
                Ok((Response::Refused(r), _)) => return Err(r.into()),
                Ok(_) => {}
                Err(e) => tracing::warn!("catalog seed not written: {e}"),
            }
        }
        Ok(())
    }

    async fn join(&self, addrs: &[String]) -> Result<(), ClusterError> {
        let deadline = tokio::time::Instant::now() + JOIN_PATIENCE;
        let mut last = None;
        while tokio::time::Instant::now() < deadline {
            for addr in addrs {
                let request = pb::JoinRequest {
                    node_id: self.id,
                    member: Some(pb::MemberInfo::from(&self.member)),
                };
                match self.channels.client(addr) {
                    Ok(mut c) => match c.join(request).await {
                        Err(status) if status.code() == tonic::Code::PermissionDenied => {
                            return Err(ClusterError::Evicted(self.id));
                        }
                        Ok(reply) => {
                            let reply = reply.into_inner();
                            tracing::info!(
                                node = self.id,
                                via = %addr,
                                voter = reply.voter,
                                leader = reply.leader_id,
                                "joined the cluster"
                            );
                            return Ok(());
                        }
                        Err(status) => last = Some(peer_err(addr, status.message())),
                    },
                    Err(e) => last = Some(peer_err(addr, e)),
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(last.unwrap_or_else(|| ClusterError::Invalid("no member to join".into())))
    }

    /// Waits until some node leads; returns its id.
    pub async fn wait_leader(&self, patience: Duration) -> Result<NodeId, ClusterError> {
        let mut rx = self.raft.metrics();
        let wait = async {
            loop {
                if let Some(l) = rx.borrow_and_update().current_leader {
                    return Ok(l);
                }
                if rx.changed().await.is_err() {
                    return Err(ClusterError::Raft("raft stopped".into()));
                }
            }
        };
        tokio::time::timeout(patience, wait)
            .await
            .map_err(|_| ClusterError::Timeout("waiting for a leader".into()))?
    }

    /// The leader's id and member data, if known.
    pub fn leader(&self) -> Option<(NodeId, Member)> {
        let m = self.raft.metrics().borrow().clone();
        let id = m.current_leader?;
        let member = m.membership_config.membership().get_node(&id).cloned()?;
        Some((id, member))
    }

    /// The gRPC addresses of the other members in the membership this node applied.
    fn other_members(&self) -> Vec<String> {
        self.sm.read(|a| {
            a.membership
                .membership()
                .nodes()
                .filter(|(id, _)| **id != self.id)
                .map(|(_, m)| m.grpc.clone())
                .collect()
        })
    }

    /// The other members of the membership this node knows, with their gRPC addresses.
    pub fn peers(&self) -> Vec<(NodeId, String)> {
        self.sm.read(|a| {
            a.membership
                .membership()
                .nodes()
                .filter(|(id, _)| **id != self.id)
                .map(|(id, m)| (*id, m.grpc.clone()))
                .collect()
        })
    }

    /// The name of every member this node knows, by id.
    pub fn member_names(&self) -> BTreeMap<NodeId, String> {
        self.sm.read(|a| {
            a.membership
                .membership()
                .nodes()
                .map(|(id, m)| (*id, m.name.clone()))
                .collect()
        })
    }

    /// Every router (and PEP) of the control state, by its owned key: active node and epoch.
    pub fn router_owners(&self) -> Vec<(String, Option<NodeId>, u64)> {
        self.sm.read(|a| {
            a.state
                .routers
                .iter()
                .map(|(name, r)| (name.clone(), r.active, r.epoch))
                .collect()
        })
    }

    /// The cached channel to a member's gRPC listener.
    pub fn channel(&self, addr: &str) -> Result<tonic::transport::Channel, ClusterError> {
        self.channels.get(addr).map_err(|e| peer_err(addr, e))
    }

    /// Whether `id` is a member in the membership this node knows.
    pub fn is_member(&self, id: NodeId) -> bool {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&id)
            .is_some()
    }

    /// The voters of the membership this node knows.
    pub fn voters(&self) -> BTreeSet<NodeId> {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .collect()
    }

    /// Whether this node leads.
    pub fn is_leader(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.current_leader == Some(self.id) && m.state == ServerState::Leader
    }

    /// Writes a command through the leader and waits until this node applied it.
    pub async fn write(&self, cmd: Command) -> Result<(Response, u64), ClusterError> {
        let (response, index) = self.write_on_leader(cmd).await?;
        self.wait_applied(index).await?;
        Ok((response, index))
    }

    /// Writes a command through the leader (without waiting for the local apply).
    pub async fn write_on_leader(&self, cmd: Command) -> Result<(Response, u64), ClusterError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.raft.client_write(cmd.clone()).await {
                Ok(r) => return Ok((r.data, r.log_id.index)),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                    if let Some(node) = f.leader_node {
                        return self.forward_write(&node.grpc, &cmd).await;
                    }
                    // No leader known here (an election, or this node was cut off or removed
                    // and hears from nobody): any other member forwards to the leader it knows.
                    if attempts % 5 == 0 {
                        for addr in self.other_members() {
                            match self.forward_write(&addr, &cmd).await {
                                Ok(r) => return Ok(r),
                                Err(ClusterError::NotMember) => {
                                    return Err(ClusterError::NotMember);
                                }
                                Err(e) => tracing::debug!(via = %addr, "write: {e}"),
                            }
                        }
                    }
                    if attempts >= 30 {
                        return Err(ClusterError::NoLeader);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(raft_err(e)),
            }
        }
    }

    async fn forward_write(
        &self,
        addr: &str,
        cmd: &Command,
    ) -> Result<(Response, u64), ClusterError> {
        let json = serde_json::to_vec(cmd).map_err(|e| ClusterError::Invalid(e.to_string()))?;
        let mut client = self.channels.client(addr).map_err(|e| peer_err(addr, e))?;
        let call = client.write(pb::RaftPayload { json });
        let reply = tokio::time::timeout(Duration::from_secs(5), call)
            .await
            .map_err(|_| ClusterError::Timeout(format!("write through {addr}")))?
            .map_err(|s| match s.code() {
                tonic::Code::FailedPrecondition => ClusterError::NotMember,
                _ => peer_err(addr, s.message()),
            })?
            .into_inner();
        let response: Response =
            serde_json::from_slice(&reply.json).map_err(|e| peer_err(addr, e))?;
        Ok((response, reply.index))
    }

    /// Waits until this node applied log index `index` and published the result (its
    /// catalog and router views show it).
    pub async fn wait_applied(&self, index: u64) -> Result<(), ClusterError> {
        let mut rx = self.published.subscribe();
        let wait = rx.wait_for(|p| *p >= index);
        match tokio::time::timeout(Duration::from_secs(10), wait).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(ClusterError::Raft("the node is stopping".into())),
            Err(_) => Err(ClusterError::Timeout(format!(
                "log index {index} not applied here"
            ))),
        }
    }

    /// A router connected or went away: renew soon so the leader hears of it.
    pub fn nudge(&self) {
        self.nudge.notify_one();
    }

    /// The cluster as this node sees it.
    pub fn view(&self) -> ClusterView {
        let m = self.raft.metrics().borrow().clone();
        let (membership, state) = self.sm.read(|a| (a.membership.clone(), a.state.clone()));
        ClusterView {
            id: self.id,
            leader: m.current_leader,
            term: m.current_term,
            last_applied: m.last_applied.map_or(0, |l| l.index),
            membership,
            state,
            now_ms: now_ms(),
        }
    }

    // ------------------------------------------------------------------ leader side

    /// Admits a node (on the leader; other members forward): learner, then voter while the
    /// cluster has fewer voters than configured. Returns whether it votes.
    pub async fn admit(&self, id: NodeId, member: Member) -> Result<bool, ClusterError> {
        if self.sm.read(|a| a.state.meta.evicted.contains(&id)) {
            return Err(ClusterError::Evicted(id));
        }
        let membership = self.raft.metrics().borrow().membership_config.clone();
        let current = membership.membership();
        if let Some(known) = current.get_node(&id) {
            if *known != member {
                // Same node, new addresses (a restarted container).
                let change = ChangeMembers::SetNodes(BTreeMap::from([(id, member.clone())]));
                self.raft
                    .change_membership(change, true)
                    .await
                    .map_err(raft_err)?;
            }
        } else {
            self.raft
                .add_learner(id, member, true)
                .await
                .map_err(raft_err)?;
        }
        let voters = self.voters();
        if voters.contains(&id) {
            return Ok(true);
        }
        if voters.len() < self.settings.voters {
            self.raft
                .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), true)
                .await
                .map_err(raft_err)?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Removes a node (on the leader): its routers lose their owner, it leaves the
    /// membership, and a learner is promoted if voters are missing.
    pub async fn remove(&self, id: NodeId, evict: bool) -> Result<(), ClusterError> {
        let membership = self.raft.metrics().borrow().membership_config.clone();
        let current = membership.membership();
        if current.get_node(&id).is_none() {
            return Err(ClusterError::Invalid(format!("node {id} is not a member")));
        }
        let voters: BTreeSet<NodeId> = current.voter_ids().collect();
        if voters.len() == 1 && voters.contains(&id) {
            return Err(ClusterError::Invalid(format!(
                "node {id} is the only voter; it cannot leave"
            )));
        }
        self.write_on_leader(Command::ForgetNode { node: id, evict })
            .await?;
        let change = if voters.contains(&id) {
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        };
        self.raft
            .change_membership(change, false)
            .await
            .map_err(raft_err)?;
        tracing::info!(node = id, "node removed from the cluster");
        Ok(())
    }

    /// Moves a router to `node` (on the leader): a new epoch in which `node` acts once the
    /// previous owner's lease is over.
    pub async fn move_router(&self, router: &str, node: NodeId) -> Result<u64, ClusterError> {
        let now = now_ms();
        let (entry, target) = self.sm.read(|a| {
            (
                a.state.routers.get(router).cloned(),
                a.membership.membership().get_node(&node).is_some(),
            )
        });
        let Some(entry) = entry else {
            return Err(Refusal::NotFound {
                kind: "router".into(),
                name: router.into(),
            }
            .into());
        };
        if !target {
            return Err(ClusterError::Invalid(format!(
                "node {node} is not a member"
            )));
        }
        if entry.active == Some(node) && entry.owner_at(now).is_some() {
            return Ok(entry.epoch);
        }
        let skew = self.settings.clock_skew.as_millis() as UnixMs;
        let lease = self.settings.lease.as_millis() as UnixMs;
        let not_before = if entry.active.is_some() {
            entry.lease_until_ms.max(now) + skew
        } else {
            now
        };
        let cmd = Command::MoveRouter {
            router: router.into(),
            node,
            epoch: entry.epoch,
            not_before_ms: not_before,
            until_ms: not_before + lease,
        };
        match self.write(cmd).await? {
            (Response::Assigned { epoch }, _) => Ok(epoch),
            (Response::Refused(r), _) => Err(r.into()),
            (other, _) => Err(ClusterError::Raft(format!("unexpected {other:?}"))),
        }
    }

    /// New routers not yet reported by every live node, seen for less than one renewal
    /// period.
    fn settling(
        &self,
        wanted: &BTreeSet<&String>,
        live: &[NodeId],
        state: &ControlState,
    ) -> BTreeSet<String> {
        let mut first_seen = self.first_seen.lock().expect("first-seen lock");
        first_seen.retain(|r, _| wanted.contains(r) && !state.routers.contains_key(r));
        let mut settling = BTreeSet::new();
        for router in wanted {
            if state.routers.contains_key(*router) {
                continue;
            }
            let seen = *first_seen
                .entry((*router).clone())
                .or_insert_with(std::time::Instant::now);
            let everywhere = live
                .iter()
                .all(|id| state.nodes[id].connected.contains(*router));
            if !everywhere && seen.elapsed() < self.settings.renew {
                settling.insert((*router).clone());
            }
        }
        settling
    }

    /// One round of the leader's duties; on followers, an election when the leader left the
    /// membership (a removed leader steps down without naming a successor).
    async fn balance(&self) {
        if !self.is_leader() {
            let m = self.raft.metrics().borrow().clone();
            let voters: BTreeSet<NodeId> = m.membership_config.membership().voter_ids().collect();
            if let Some(leader) = m.current_leader
                && !voters.contains(&leader)
                && voters.contains(&self.id)
            {
                tracing::info!(
                    left = leader,
                    "the leader left the cluster: calling an election"
                );
                let _ = self.raft.trigger().elect().await;
            }
            return;
        }
        let (membership, state) = self.sm.read(|a| (a.membership.clone(), a.state.clone()));
        let members: BTreeMap<NodeId, Member> = membership
            .membership()
            .nodes()
            .map(|(id, m)| (*id, m.clone()))
            .collect();
        let now = now_ms();
        let skew = self.settings.clock_skew.as_millis() as UnixMs;
        let lease = self.settings.lease.as_millis() as UnixMs;
        // Node entries of nodes that are no longer members.
        for id in state.nodes.keys() {
            if !members.contains_key(id)
                && let Err(e) = self
                    .write_on_leader(Command::ForgetNode {
                        node: *id,
                        evict: false,
                    })
                    .await
            {
                tracing::debug!(node = id, "forget node: {e}");
            }
        }
        let live: Vec<NodeId> = members
            .keys()
            .copied()
            .filter(|id| {
                state
                    .nodes
                    .get(id)
                    .is_some_and(|n| n.lease_until_ms > now && !n.leaving)
            })
            .collect();
        // Members dead for long (no lease renewal) are removed; a learner takes a voter's
        // place below.
        if let Some(after) = self.settings.remove_dead_after {
            let after = after.as_millis() as UnixMs;
            for (id, entry) in &state.nodes {
                if *id != self.id && members.contains_key(id) && entry.lease_until_ms + after < now
                {
                    tracing::warn!(node = id, "removing a member dead for {after} ms");
                    if let Err(e) = self.remove(*id, false).await {
                        tracing::warn!(node = id, "removing a dead member: {e}");
                    }
                    return;
                }
            }
        }
        // Promote a live learner while voters are missing.
        let voters: BTreeSet<NodeId> = membership.membership().voter_ids().collect();
        if voters.len() < self.settings.voters
            && let Some(learner) = live.iter().find(|id| !voters.contains(id))
        {
            let change = ChangeMembers::AddVoterIds(BTreeSet::from([*learner]));
            match self.raft.change_membership(change, true).await {
                Ok(_) => tracing::info!(node = learner, "learner promoted to voter"),
                Err(e) => tracing::debug!(node = learner, "promotion: {e}"),
            }
        }
        // Routers without a live owner go to the least-loaded live node connected to them.
        let mut load: HashMap<NodeId, usize> = live.iter().map(|id| (*id, 0)).collect();
        for r in state.routers.values() {
            if let Some(owner) = r.owner_at(now)
                && let Some(n) = load.get_mut(&owner)
            {
                *n += 1;
            }
        }
        let wanted: BTreeSet<&String> = live
            .iter()
            .filter_map(|id| state.nodes.get(id))
            .flat_map(|n| n.connected.iter())
            .collect();
        // A router that was never placed waits (one renewal period at most) until every live
        // node reports it, so that it goes to the least-loaded of all the nodes it connects
        // to, not to the first that noticed it.
        let settling = self.settling(&wanted, &live, &state);
        for router in wanted {
            if settling.contains(router) {
                continue;
            }
            let entry = state.routers.get(router).cloned().unwrap_or_default();
            if entry.active.is_some() && entry.lease_until_ms > now - skew {
                continue;
            }
            let best = live
                .iter()
                .filter(|id| state.nodes[id].connected.contains(router))
                // Ties go to a node other than the leader, so that losing the leader does
                // not also wait for an election before its routers move.
                .min_by_key(|id| (load[id], **id == self.id, **id));
            let Some(&node) = best else { continue };
            let cmd = Command::AssignRouter {
                router: router.clone(),
                node,
                epoch: Some(entry.epoch),
                now_ms: now - skew,
                until_ms: now + lease,
            };
            match self.write_on_leader(cmd).await {
                Ok((Response::Assigned { epoch }, _)) => {
                    tracing::info!(%router, node, epoch, previous = ?entry.active, "router assigned");
                    *load.entry(node).or_default() += 1;
                }
                Ok((other, _)) => tracing::debug!(%router, "assignment: {other:?}"),
                Err(e) => tracing::debug!(%router, "assignment: {e}"),
            }
        }
    }

    // ------------------------------------------------------------------ loops

    fn spawn_loops(self: &Arc<Self>, catalog: Arc<Catalog>) {
        let mut tasks = self.tasks.lock().expect("tasks lock");
        // Publish: applied state → router views and catalog.
        let me = self.clone();
        tasks.push(tokio::spawn(async move {
            let mut rx = me.sm.subscribe();
            let mut last_catalog: Option<CatalogFile> = None;
            loop {
                me.publish(&catalog, &mut last_catalog);
                if rx.changed().await.is_err() {
                    return;
                }
            }
        }));
        // Lease expiry as time passes.
        let me = self.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                me.ownership.expire();
            }
        }));
        // Heartbeat.
        let me = self.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(me.settings.renew) => {}
                    _ = me.nudge.notified() => {}
                }
                if me.leaving.load(Ordering::SeqCst) {
                    return;
                }
                me.heartbeat().await;
            }
        }));
        // Balance, on the leader.
        let me = self.clone();
        tasks.push(tokio::spawn(async move {
            let mut rx = me.sm.subscribe();
            let period = me.settings.renew / 2;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(period) => {}
                    r = rx.changed() => if r.is_err() { return },
                }
                me.balance().await;
            }
        }));
    }

    async fn heartbeat(&self) {
        let lease = self.settings.lease.as_millis() as UnixMs;
        let connected = self.ownership.connected();
        // Only routers still connected here are renewed; the others' leases run out and the
        // leader moves them to a node they are connected to.
        let owned = self
            .ownership
            .owned()
            .into_iter()
            .filter(|(r, _)| connected.contains(r))
            .collect();
        let cmd = Command::Heartbeat {
            node: self.id,
            until_ms: now_ms() + lease,
            connected,
            owned,
            leaving: false,
        };
        // The membership this node applied may already say it was removed.
        let outcome = if self.is_member(self.id) {
            tokio::time::timeout(self.settings.lease, self.write_on_leader(cmd)).await
        } else {
            Ok(Err(ClusterError::NotMember))
        };
        match outcome {
            Ok(Ok(_)) => {}
            Ok(Err(ClusterError::NotMember)) => {
                // Removed while it was away (cut off, or silent for too long): ask again.
                tracing::warn!(
                    node = self.id,
                    "no longer a member: asking to be admitted again"
                );
                let mut candidates = self.settings.join.clone();
                candidates.extend(self.other_members());
                match self.join(&candidates).await {
                    Ok(()) => {}
                    Err(e @ ClusterError::Evicted(_)) => {
                        // Stop renewing: this node serves nothing any more.
                        tracing::error!(node = self.id, "{e}");
                        self.leaving.store(true, Ordering::SeqCst);
                        self.ownership.relinquish_all();
                    }
                    Err(e) => tracing::warn!(node = self.id, "admission: {e}"),
                }
            }
            Ok(Err(e)) => tracing::debug!("lease renewal: {e}"),
            Err(_) => tracing::debug!("lease renewal timed out"),
        }
    }

    fn publish(&self, catalog: &Catalog, last_catalog: &mut Option<CatalogFile>) {
        let (views, file, index) = self.sm.read(|a| {
            let members = a.membership.membership();
            let views: Vec<(String, RouterView)> = a
                .state
                .routers
                .iter()
                .map(|(name, r)| {
                    let owner = r.active.and_then(|id| members.get_node(&id));
                    let view = RouterView {
                        owner: r.active,
                        epoch: r.epoch,
                        until_ms: r.lease_until_ms,
                        not_before_ms: r.not_before_ms,
                        mine: r.active == Some(self.id) && !self.leaving.load(Ordering::SeqCst),
                        live: false,
                        owner_origin_host: owner.map(|m| m.origin_host.clone()),
                        owner_diameter: owner.map(|m| m.diameter.clone()),
                        owner_cops: owner.map(|m| m.cops.clone()),
                    };
                    (name.clone(), view)
                })
                .collect();
            let file = a.state.catalog();
            (views, file, a.last_applied.map_or(0, |l| l.index))
        });
        self.ownership.publish(views);
        if last_catalog.as_ref() != Some(&file) {
            if let Err(e) = catalog.replace(&file) {
                tracing::error!("the replicated catalog does not build: {e}");
            }
            *last_catalog = Some(file);
        }
        self.published.send_if_modified(|p| {
            let newer = index > *p;
            if newer {
                *p = index;
            }
            newer
        });
    }

    // ------------------------------------------------------------------ leaving

    /// Graceful leave: stop acting on every router, hand them back through Raft (the leader
    /// gives them to other nodes), leave the membership, stop Raft.
    pub async fn leave(&self) {
        self.leaving.store(true, Ordering::SeqCst);
        let owned = self.ownership.owned();
        let voters = self.voters();
        let alone = voters.len() <= 1 && voters.contains(&self.id);
        if !alone {
            // Drivers stop first (their views say "not mine"), then the release is written.
            // (A node alone keeps its routers and sessions for its next start.)
            self.ownership.relinquish_all();
            let lease = self.settings.lease.as_millis() as UnixMs;
            let hb = Command::Heartbeat {
                node: self.id,
                until_ms: now_ms() + lease,
                connected: BTreeSet::new(),
                owned: Vec::new(),
                leaving: true,
            };
            let _ = tokio::time::timeout(Duration::from_secs(3), self.write_on_leader(hb)).await;
            for (router, epoch) in owned {
                let cmd = Command::ReleaseRouter {
                    router: router.clone(),
                    node: self.id,
                    epoch,
                };
                match tokio::time::timeout(Duration::from_secs(3), self.write_on_leader(cmd)).await
                {
                    Ok(Ok(_)) => tracing::info!(%router, "router handed back"),
                    Ok(Err(e)) => tracing::warn!(%router, "router not handed back: {e}"),
                    Err(_) => tracing::warn!(%router, "router hand-back timed out"),
                }
            }
            match tokio::time::timeout(Duration::from_secs(10), self.request_leave()).await {
                Ok(Ok(())) => tracing::info!(node = self.id, "left the cluster"),
                Ok(Err(e)) => tracing::warn!(node = self.id, "leaving the membership: {e}"),
                Err(_) => tracing::warn!(node = self.id, "leaving the membership timed out"),
            }
        }
        for t in self.tasks.lock().expect("tasks lock").drain(..) {
            t.abort();
        }
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!("raft shutdown: {e}");
        }
        if let Err(e) = self.db.flush() {
            tracing::warn!("raft database flush: {e}");
        }
    }

    async fn request_leave(&self) -> Result<(), ClusterError> {
        if self.is_leader() {
            return self.remove(self.id, false).await;
        }
        let (_, leader) = self.leader().ok_or(ClusterError::NoLeader)?;
        let mut client = self
            .channels
            .client(&leader.grpc)
            .map_err(|e| peer_err(&leader.grpc, e))?;
        client
            .leave(pb::LeaveRequest { node_id: self.id })
            .await
            .map_err(|s| peer_err(&leader.grpc, s.message()))?;
        Ok(())
    }

    /// The cached channel to the leader's gRPC listener (its cluster service and management
    /// API), for calls only the leader serves.
    pub fn leader_channel(&self) -> Result<tonic::transport::Channel, ClusterError> {
        let (_, leader) = self.leader().ok_or(ClusterError::NoLeader)?;
        self.channels
            .get(&leader.grpc)
            .map_err(|e| peer_err(&leader.grpc, e))
    }

    /// A client of the leader's cluster service, for forwarding membership calls.
    pub fn leader_client(
        &self,
    ) -> Result<sae_proto::v1::cluster_client::ClusterClient<tonic::transport::Channel>, ClusterError>
    {
        self.leader_channel()
            .map(sae_proto::v1::cluster_client::ClusterClient::new)
    }
}

/// Asks the given members for a node id until one answers.
async fn allocate_id(
    channels: &Channels,
    addrs: &[String],
    member: &Member,
) -> Result<NodeId, ClusterError> {
    let deadline = tokio::time::Instant::now() + JOIN_PATIENCE;
    let mut last = None;
    while tokio::time::Instant::now() < deadline {
        for addr in addrs {
            let request = pb::AllocateNodeIdRequest {
                member: Some(pb::MemberInfo::from(member)),
            };
            match channels.client(addr) {
                Ok(mut c) => match c.allocate_node_id(request).await {
                    Ok(reply) => return Ok(reply.into_inner().node_id),
                    Err(status) => last = Some(peer_err(addr, status.message())),
                },
                Err(e) => last = Some(peer_err(addr, e)),
            }
        }
        tracing::info!("waiting for a cluster member to hand out a node id: {last:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(last.unwrap_or_else(|| ClusterError::Invalid("no member to join".into())))
}
