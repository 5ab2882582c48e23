//! The replicated control state and its apply logic, as plain code: no openraft, no storage.
//!
//! [`ControlState`] holds the service catalog (services and rules), and per router the active
//! SAE node, its epoch and lease, and the Juniper-Last-Origin-Host. [`ControlState::apply`]
//! runs one [`Command`] and returns the [`Response`]; it is deterministic: it reads no clock
//! (times come in the commands, from the node that proposed them) and every replica that
//! applies the same commands in the same order holds the same state. A refused command changes
//! nothing.
//!
//! Router ownership: [`Command::AssignRouter`] makes a node the router's active SAE and bumps
//! the router's epoch; only the active node, with the current epoch, can renew its lease
//! ([`Command::Heartbeat`]) or give the router up ([`Command::ReleaseRouter`]). Another node
//! can be assigned only once the current owner's lease has run out (at the proposer's
//! `now_ms`), so a node cut off from the majority loses the router only after its lease ends.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::types::NodeId;
use crate::catalog::{CatalogFile, Rule, ServiceDef};
use crate::model::UnixMs;

/// A change to the control state: the Raft log's application data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Inserts or replaces a service (validated; the policy name is defaulted).
    PutService(ServiceDef),
    /// Deletes a service no rule names.
    DeleteService { name: String },
    /// Inserts or replaces a rule (validated; its services must exist).
    PutRule(Rule),
    /// Deletes a rule.
    DeleteRule { name: String },
    /// Makes `node` the router's active SAE with a lease until `until_ms`, and bumps the
    /// router's epoch. Refused when `epoch` is given and is not the router's current epoch
    /// (the proposer decided on a stale view), or when another node still holds a lease at
    /// `now_ms`.
    AssignRouter {
        router: String,
        node: NodeId,
        epoch: Option<u64>,
        now_ms: UnixMs,
        until_ms: UnixMs,
    },
    /// The active node gives the router up (graceful shutdown, hand-over). Refused unless
    /// `node` is the active node and `epoch` the current epoch.
    ReleaseRouter {
        router: String,
        node: NodeId,
        epoch: u64,
    },
    /// Records the Juniper-Last-Origin-Host the router remembers.
    SetLastOriginHost { router: String, host: String },
    /// Moves the router to `node` while its owner may still hold a lease: a new epoch whose
    /// owner acts only from `not_before_ms` (past the previous lease) to `until_ms`. Refused
    /// unless `epoch` is the current epoch.
    MoveRouter {
        router: String,
        node: NodeId,
        epoch: u64,
        not_before_ms: UnixMs,
        until_ms: UnixMs,
    },
    /// Hands out a node id (never the same twice; 1 is the node that started the cluster).
    AllocateNodeId,
    /// A node's periodic renewal: its own lease (it is alive until `until_ms`), the routers
    /// connected to it, and the leases of the routers it owns at the given epochs (routers
    /// it no longer owns at that epoch are skipped). `leaving`: it is handing its routers
    /// over and must not be given new ones.
    Heartbeat {
        node: NodeId,
        until_ms: UnixMs,
        connected: BTreeSet<String>,
        owned: Vec<(String, u64)>,
        leaving: bool,
    },
    /// Forgets a node that left the membership; the routers it owned have no owner. `evict`:
    /// an operator removed it, and it is not admitted again under this id.
    ForgetNode {
        node: NodeId,
        #[serde(default)]
        evict: bool,
    },
    /// Writes the configured catalog once, when the cluster is created; a no-op afterwards.
    SeedCatalog(CatalogFile),
}

/// What became of a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// Applied (also the answer for blank and membership entries).
    Applied,
    /// [`Command::AssignRouter`] applied: the router's new epoch.
    Assigned { epoch: u64 },
    /// [`Command::AllocateNodeId`] applied.
    NodeId { id: NodeId },
    /// Not applied; the state is unchanged.
    Refused(Refusal),
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// A service or rule that does not validate.
    #[error("invalid: {0}")]
    Invalid(String),
    /// No service, rule or router of that name.
    #[error("{kind} {name:?} not found")]
    NotFound { kind: String, name: String },
    /// The service is named by rules or is a fragment of aggregates.
    #[error(
        "service {service:?} is used by {}",
        crate::catalog::users(rules, aggregates)
    )]
    InUse {
        service: String,
        rules: Vec<String>,
        #[serde(default)]
        aggregates: Vec<String>,
    },
    /// The epoch given is not the router's current epoch.
    #[error("router {router:?}: stale epoch {given} (current {current})")]
    StaleEpoch {
        router: String,
        given: u64,
        current: u64,
    },
    /// The node is not the router's active node.
    #[error("router {router:?}: node {node} is not the active node ({active:?})")]
    NotActive {
        router: String,
        node: NodeId,
        active: Option<NodeId>,
    },
    /// Another node holds the router's lease.
    #[error("router {router:?}: node {active} holds the lease until {until_ms} ms")]
    LeaseHeld {
        router: String,
        active: NodeId,
        until_ms: UnixMs,
    },
}

/// What the cluster knows of one router.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterEntry {
    /// The active SAE node, if any.
    pub active: Option<NodeId>,
    /// Bumped by every assignment; 0 until the first one. Kept when the router is released.
    pub epoch: u64,
    /// The active node's lease runs until then (Unix ms); 0 without an active node.
    pub lease_until_ms: UnixMs,
    /// The Juniper-Last-Origin-Host the router remembers.
    pub last_origin_host: Option<String>,
    /// The active node must not act before then: the previous owner's lease (a move while
    /// it ran).
    #[serde(default)]
    pub not_before_ms: UnixMs,
}

impl RouterEntry {
    /// The active node if its lease still runs at `now_ms`.
    pub fn owner_at(&self, now_ms: UnixMs) -> Option<NodeId> {
        self.active.filter(|_| self.lease_until_ms > now_ms)
    }
}

/// What the cluster knows of one node beyond the membership.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEntry {
    /// The node is alive until then (Unix ms), as long as it renews.
    pub lease_until_ms: UnixMs,
    /// Routers connected to the node.
    pub connected: BTreeSet<String>,
    /// Handing its routers over: not to be given new ones.
    pub leaving: bool,
}

/// Cluster-wide counters and flags.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// The next id [`Command::AllocateNodeId`] hands out (at least 2).
    pub next_node_id: NodeId,
    /// The configured catalog was written ([`Command::SeedCatalog`]).
    pub catalog_seeded: bool,
    /// Node ids an operator removed: not admitted again.
    #[serde(default)]
    pub evicted: BTreeSet<NodeId>,
}

/// The replicated control state (what a snapshot holds, with the membership).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlState {
    pub services: BTreeMap<String, ServiceDef>,
    pub rules: BTreeMap<String, Rule>,
    pub routers: BTreeMap<String, RouterEntry>,
    #[serde(default)]
    pub nodes: BTreeMap<NodeId, NodeEntry>,
    #[serde(default)]
    pub meta: Meta,
}

/// The one entry of the state a command can change (how the state is stored: one value per
/// key).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Key {
    Service(String),
    Rule(String),
    Router(String),
    Node(NodeId),
    Meta,
}

impl Key {
    const SERVICE: &'static str = "service/";
    const RULE: &'static str = "rule/";
    const ROUTER: &'static str = "router/";
    const NODE: &'static str = "node/";
    const META: &'static str = "cluster/meta";

    pub(crate) fn encode(&self) -> Vec<u8> {
        let (prefix, name) = match self {
            Key::Service(n) => (Key::SERVICE, n.clone()),
            Key::Rule(n) => (Key::RULE, n.clone()),
            Key::Router(n) => (Key::ROUTER, n.clone()),
            Key::Node(id) => (Key::NODE, format!("{id:020}")),
            Key::Meta => (Key::META, String::new()),
        };
        format!("{prefix}{name}").into_bytes()
    }

    /// `None` for keys that are not state entries.
    pub(crate) fn decode(key: &[u8]) -> Option<Key> {
        let key = std::str::from_utf8(key).ok()?;
        if key == Key::META {
            Some(Key::Meta)
        } else if let Some(n) = key.strip_prefix(Key::SERVICE) {
            Some(Key::Service(n.to_owned()))
        } else if let Some(n) = key.strip_prefix(Key::RULE) {
            Some(Key::Rule(n.to_owned()))
        } else if let Some(n) = key.strip_prefix(Key::NODE) {
            n.parse().ok().map(Key::Node)
        } else {
            key.strip_prefix(Key::ROUTER)
                .map(|n| Key::Router(n.to_owned()))
        }
    }
}

fn not_found(kind: &str, name: &str) -> Response {
    Response::Refused(Refusal::NotFound {
        kind: kind.to_owned(),
        name: name.to_owned(),
    })
}

impl ControlState {
    /// Applies one command.
    pub fn apply(&mut self, cmd: &Command) -> Response {
        self.apply_tracked(cmd, &mut Vec::new())
    }

    /// Applies one command and lists the entries it may have changed in `touched` (nothing
    /// when refused).
    pub(crate) fn apply_tracked(&mut self, cmd: &Command, touched: &mut Vec<Key>) -> Response {
        let mark = touched.len();
        let response = self.apply_inner(cmd, touched);
        if matches!(response, Response::Refused(_)) {
            touched.truncate(mark);
        }
        response
    }

    fn apply_inner(&mut self, cmd: &Command, touched: &mut Vec<Key>) -> Response {
        match cmd {
            Command::PutService(def) => match def.validated().and_then(|def| {
                crate::catalog::check_fragments(&def, &self.services)?;
                Ok(def)
            }) {
                Ok(def) => {
                    touched.push(Key::Service(def.name.clone()));
                    self.services.insert(def.name.clone(), def);
                    Response::Applied
                }
                Err(e) => Response::Refused(Refusal::Invalid(e.to_string())),
            },
            Command::DeleteService { name } => {
                if !self.services.contains_key(name) {
                    return not_found("service", name);
                }
                let rules: Vec<String> = self
                    .rules
                    .values()
                    .filter(|r| r.services.iter().chain(&r.subscriptions).any(|s| s == name))
                    .map(|r| r.name.clone())
                    .collect();
                let aggregates = crate::catalog::aggregates_using(name, &self.services);
                if !rules.is_empty() || !aggregates.is_empty() {
                    return Response::Refused(Refusal::InUse {
                        service: name.clone(),
                        rules,
                        aggregates,
                    });
                }
                self.services.remove(name);
                touched.push(Key::Service(name.clone()));
                Response::Applied
            }
            Command::PutRule(rule) => {
                // The catalog's own validation: names, patterns, services that exist.
                let file = CatalogFile {
                    services: self.services.values().cloned().collect(),
                    rules: vec![rule.clone()],
                };
                if let Err(e) = file.validate() {
                    return Response::Refused(Refusal::Invalid(e.to_string()));
                }
                self.rules.insert(rule.name.clone(), rule.clone());
                touched.push(Key::Rule(rule.name.clone()));
                Response::Applied
            }
            Command::DeleteRule { name } => match self.rules.remove(name) {
                Some(_) => {
                    touched.push(Key::Rule(name.clone()));
                    Response::Applied
                }
                None => not_found("rule", name),
            },
            Command::AssignRouter {
                router,
                node,
                epoch,
                now_ms,
                until_ms,
            } => {
                touched.push(Key::Router(router.clone()));
                let entry = self.routers.entry(router.clone()).or_default();
                if let Some(given) = *epoch
                    && given != entry.epoch
                {
                    return Response::Refused(Refusal::StaleEpoch {
                        router: router.clone(),
                        given,
                        current: entry.epoch,
                    });
                }
                if let Some(active) = entry.owner_at(*now_ms)
                    && active != *node
                {
                    return Response::Refused(Refusal::LeaseHeld {
                        router: router.clone(),
                        active,
                        until_ms: entry.lease_until_ms,
                    });
                }
                entry.epoch += 1;
                entry.active = Some(*node);
                entry.lease_until_ms = *until_ms;
                entry.not_before_ms = 0;
                Response::Assigned { epoch: entry.epoch }
            }
            Command::ReleaseRouter {
                router,
                node,
                epoch,
            } => match self.owned_entry(router, *node, *epoch) {
                Ok(entry) => {
                    entry.active = None;
                    entry.lease_until_ms = 0;
                    touched.push(Key::Router(router.clone()));
                    Response::Applied
                }
                Err(refusal) => refusal,
            },
            Command::SetLastOriginHost { router, host } => {
                self.routers
                    .entry(router.clone())
                    .or_default()
                    .last_origin_host = Some(host.clone());
                touched.push(Key::Router(router.clone()));
                Response::Applied
            }
            Command::MoveRouter {
                router,
                node,
                epoch,
                not_before_ms,
                until_ms,
            } => {
                let Some(entry) = self.routers.get_mut(router) else {
                    return not_found("router", router);
                };
                if *epoch != entry.epoch {
                    return Response::Refused(Refusal::StaleEpoch {
                        router: router.clone(),
                        given: *epoch,
                        current: entry.epoch,
                    });
                }
                entry.epoch += 1;
                entry.active = Some(*node);
                entry.not_before_ms = *not_before_ms;
                entry.lease_until_ms = *until_ms;
                touched.push(Key::Router(router.clone()));
                Response::Assigned { epoch: entry.epoch }
            }
            Command::AllocateNodeId => {
                let id = self.meta.next_node_id.max(2);
                self.meta.next_node_id = id + 1;
                touched.push(Key::Meta);
                Response::NodeId { id }
            }
            // A lease never shrinks; routers the node no longer owns in that epoch are skipped.
            Command::Heartbeat {
                node,
                until_ms,
                connected,
                owned,
                leaving,
            } => {
                let entry = self.nodes.entry(*node).or_default();
                entry.lease_until_ms = entry.lease_until_ms.max(*until_ms);
                entry.connected = connected.clone();
                entry.leaving = *leaving;
                touched.push(Key::Node(*node));
                for (router, epoch) in owned {
                    if let Some(r) = self.routers.get_mut(router)
                        && r.active == Some(*node)
                        && r.epoch == *epoch
                    {
                        r.lease_until_ms = r.lease_until_ms.max(*until_ms);
                        touched.push(Key::Router(router.clone()));
                    }
                }
                Response::Applied
            }
            Command::ForgetNode { node, evict } => {
                if self.nodes.remove(node).is_some() {
                    touched.push(Key::Node(*node));
                }
                if *evict && self.meta.evicted.insert(*node) {
                    touched.push(Key::Meta);
                }
                for (name, r) in &mut self.routers {
                    if r.active == Some(*node) {
                        r.active = None;
                        r.lease_until_ms = 0;
                        touched.push(Key::Router(name.clone()));
                    }
                }
                Response::Applied
            }
            Command::SeedCatalog(file) => {
                if self.meta.catalog_seeded {
                    return Response::Applied;
                }
                if let Err(e) = file.validate() {
                    return Response::Refused(Refusal::Invalid(e.to_string()));
                }
                for def in &file.services {
                    if let Ok(def) = def.validated() {
                        touched.push(Key::Service(def.name.clone()));
                        self.services.insert(def.name.clone(), def);
                    }
                }
                for rule in &file.rules {
                    touched.push(Key::Rule(rule.name.clone()));
                    self.rules.insert(rule.name.clone(), rule.clone());
                }
                self.meta.catalog_seeded = true;
                touched.push(Key::Meta);
                Response::Applied
            }
        }
    }

    /// The routers `node` owns at `now_ms`, with their epochs.
    pub fn owned_by(&self, node: NodeId, now_ms: UnixMs) -> Vec<(String, u64)> {
        self.routers
            .iter()
            .filter(|(_, r)| r.owner_at(now_ms) == Some(node))
            .map(|(n, r)| (n.clone(), r.epoch))
            .collect()
    }

    /// Whether `node` renewed its lease past `now_ms`.
    pub fn node_alive(&self, node: NodeId, now_ms: UnixMs) -> bool {
        self.nodes
            .get(&node)
            .is_some_and(|n| n.lease_until_ms > now_ms)
    }

    /// The router's entry when `node` is its active node at `epoch`.
    fn owned_entry(
        &mut self,
        router: &str,
        node: NodeId,
        epoch: u64,
    ) -> Result<&mut RouterEntry, Response> {
        let Some(entry) = self.routers.get_mut(router) else {
            return Err(not_found("router", router));
        };
        if epoch != entry.epoch {
            return Err(Response::Refused(Refusal::StaleEpoch {
                router: router.to_owned(),
                given: epoch,
                current: entry.epoch,
            }));
        }
        if entry.active != Some(node) {
            return Err(Response::Refused(Refusal::NotActive {
                router: router.to_owned(),
                node,
                active: entry.active,
            }));
        }
        Ok(entry)
    }

    /// The stored form of one entry: `None` when absent.
    pub(crate) fn encode_entry(&self, key: &Key) -> Result<Option<Vec<u8>>, serde_json::Error> {
        match key {
            Key::Service(n) => self.services.get(n).map(serde_json::to_vec).transpose(),
            Key::Rule(n) => self.rules.get(n).map(serde_json::to_vec).transpose(),
            Key::Router(n) => self.routers.get(n).map(serde_json::to_vec).transpose(),
            Key::Node(id) => self.nodes.get(id).map(serde_json::to_vec).transpose(),
            Key::Meta => serde_json::to_vec(&self.meta).map(Some),
        }
    }

    /// Loads one stored entry.
    pub(crate) fn insert_entry(&mut self, key: Key, value: &[u8]) -> Result<(), serde_json::Error> {
        match key {
            Key::Service(n) => {
                self.services.insert(n, serde_json::from_slice(value)?);
            }
            Key::Rule(n) => {
                self.rules.insert(n, serde_json::from_slice(value)?);
            }
            Key::Router(n) => {
                self.routers.insert(n, serde_json::from_slice(value)?);
            }
            Key::Node(id) => {
                self.nodes.insert(id, serde_json::from_slice(value)?);
            }
            Key::Meta => self.meta = serde_json::from_slice(value)?,
        }
        Ok(())
    }

    /// Every entry, as keys.
    pub(crate) fn keys(&self) -> impl Iterator<Item = Key> + '_ {
        let services = self.services.keys().map(|n| Key::Service(n.clone()));
        let rules = self.rules.keys().map(|n| Key::Rule(n.clone()));
        let routers = self.routers.keys().map(|n| Key::Router(n.clone()));
        let nodes = self.nodes.keys().map(|id| Key::Node(*id));
        services
            .chain(rules)
            .chain(routers)
            .chain(nodes)
            .chain(std::iter::once(Key::Meta))
    }

    /// The catalog in the configuration's form.
    pub fn catalog(&self) -> CatalogFile {
        CatalogFile {
            services: self.services.values().cloned().collect(),
            rules: self.rules.values().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(name: &str) -> ServiceDef {
        ServiceDef {
            name: name.into(),
            ..ServiceDef::default()
        }
    }

    fn rule(name: &str, services: &[&str]) -> Rule {
        Rule {
            name: name.into(),
            services: services.iter().map(|s| s.to_string()).collect(),
            ..Rule::default()
        }
    }

    fn assign(router: &str, node: NodeId, epoch: Option<u64>, now_ms: UnixMs) -> Command {
        Command::AssignRouter {
            router: router.into(),
            node,
            epoch,
            now_ms,
            until_ms: now_ms + 10_000,
        }
    }

    #[test]
    fn node_ids_moves_forgotten_nodes_and_the_seed() {
        let mut st = ControlState::default();
        assert_eq!(
            st.apply(&Command::AllocateNodeId),
            Response::NodeId { id: 2 }
        );
        assert_eq!(
            st.apply(&Command::AllocateNodeId),
            Response::NodeId { id: 3 }
        );
        // A move starts a new epoch whose owner waits for the old lease.
        st.apply(&assign("r", 1, None, 0));
        let moved = Command::MoveRouter {
            router: "r".into(),
            node: 2,
            epoch: 1,
            not_before_ms: 10_500,
            until_ms: 12_500,
        };
        assert_eq!(st.apply(&moved), Response::Assigned { epoch: 2 });
        assert_eq!(
            (st.routers["r"].active, st.routers["r"].not_before_ms),
            (Some(2), 10_500)
        );
        assert!(matches!(
            st.apply(&moved),
            Response::Refused(Refusal::StaleEpoch { .. })
        ));
        // A forgotten node owns nothing; an evicted one is remembered.
        st.apply(&heartbeat(2, 12_000, &[("r", 2)]));
        st.apply(&Command::ForgetNode {
            node: 2,
            evict: true,
        });
        assert!(!st.nodes.contains_key(&2));
        assert_eq!(st.routers["r"].active, None);
        assert!(st.meta.evicted.contains(&2));
        // The seed is written once.
        let seed = CatalogFile {
            services: vec![service("gold")],
            rules: vec![rule("default", &["gold"])],
        };
        assert_eq!(st.apply(&Command::SeedCatalog(seed)), Response::Applied);
        assert!(st.meta.catalog_seeded && st.rules.contains_key("default"));
        st.apply(&Command::DeleteRule {
            name: "default".into(),
        });
        let again = CatalogFile {
            services: vec![service("silver")],
            rules: vec![],
        };
        assert_eq!(st.apply(&Command::SeedCatalog(again)), Response::Applied);
        assert!(
            !st.services.contains_key("silver"),
            "a second seed is ignored"
        );
    }

    #[test]
    fn services_are_validated_and_defaulted() {
        let mut st = ControlState::default();
        assert_eq!(
            st.apply(&Command::PutService(service("gold"))),
            Response::Applied
        );
        assert_eq!(st.services["gold"].policy_name, "gold");
        let bad = st.apply(&Command::PutService(service("bad name!")));
        assert!(
            matches!(bad, Response::Refused(Refusal::Invalid(_))),
            "{bad:?}"
        );
        assert!(!st.services.contains_key("bad name!"));
    }

    #[test]
    fn aggregates_need_normal_fragment_services_and_keep_them_in_use() {
        let mut st = ControlState::default();
        let vod = ServiceDef {
            name: "vod".into(),
            kind: crate::catalog::ServiceKind::Aggregate,
            fragments: vec![crate::catalog::FragmentDef {
                name: "sub".into(),
                service: "qos".into(),
                expression: "'ip=%s' % user_IpAddress".into(),
                ..Default::default()
            }],
            ..ServiceDef::default()
        };
        let r = st.apply(&Command::PutService(vod.clone()));
        assert!(
            matches!(&r, Response::Refused(Refusal::Invalid(e)) if e.contains("unknown service \"qos\"")),
            "{r:?}"
        );
        st.apply(&Command::PutService(service("qos")));
        assert_eq!(st.apply(&Command::PutService(vod)), Response::Applied);
        assert_eq!(
            st.apply(&Command::DeleteService { name: "qos".into() }),
            Response::Refused(Refusal::InUse {
                service: "qos".into(),
                rules: Vec::new(),
                aggregates: vec!["vod".into()],
            })
        );
    }

    #[test]
    fn rules_need_their_services_and_keep_services_in_use() {
        let mut st = ControlState::default();
        let r = st.apply(&Command::PutRule(rule("r1", &["gold"])));
        assert!(matches!(r, Response::Refused(Refusal::Invalid(_))), "{r:?}");
        st.apply(&Command::PutService(service("gold")));
        assert_eq!(
            st.apply(&Command::PutRule(rule("r1", &["gold"]))),
            Response::Applied
        );
        assert_eq!(
            st.apply(&Command::DeleteService {
                name: "gold".into()
            }),
            Response::Refused(Refusal::InUse {
                service: "gold".into(),
                rules: vec!["r1".into()],
                aggregates: Vec::new(),
            })
        );
        assert_eq!(
            st.apply(&Command::DeleteRule { name: "r1".into() }),
            Response::Applied
        );
        assert_eq!(
            st.apply(&Command::DeleteRule { name: "r1".into() }),
            Response::Refused(Refusal::NotFound {
                kind: "rule".into(),
                name: "r1".into()
            })
        );
        assert_eq!(
            st.apply(&Command::DeleteService {
                name: "gold".into()
            }),
            Response::Applied
        );
        assert_eq!(st.catalog(), CatalogFile::default());
    }

    #[test]
    fn assignment_bumps_the_epoch_and_respects_leases() {
        let mut st = ControlState::default();
        assert_eq!(
            st.apply(&assign("r", 1, None, 1_000)),
            Response::Assigned { epoch: 1 }
        );
        // Node 2 cannot take the router while node 1's lease runs.
        assert_eq!(
            st.apply(&assign("r", 2, Some(1), 5_000)),
            Response::Refused(Refusal::LeaseHeld {
                router: "r".into(),
                active: 1,
                until_ms: 11_000
            })
        );
        // A stale view is refused.
        assert_eq!(
            st.apply(&assign("r", 2, Some(0), 20_000)),
            Response::Refused(Refusal::StaleEpoch {
                router: "r".into(),
                given: 0,
                current: 1
            })
        );
        // Once the lease ran out, node 2 takes over with a new epoch.
        assert_eq!(
            st.apply(&assign("r", 2, Some(1), 20_000)),
            Response::Assigned { epoch: 2 }
        );
        assert_eq!(st.routers["r"].owner_at(20_000), Some(2));
        // The node that holds the router can be reassigned to itself (new epoch).
        assert_eq!(
            st.apply(&assign("r", 2, None, 21_000)),
            Response::Assigned { epoch: 3 }
        );
    }

    fn heartbeat(node: NodeId, until_ms: UnixMs, owned: &[(&str, u64)]) -> Command {
        Command::Heartbeat {
            node,
            until_ms,
            connected: BTreeSet::from(["r".to_owned()]),
            owned: owned.iter().map(|(r, e)| ((*r).to_owned(), *e)).collect(),
            leaving: false,
        }
    }

    #[test]
    fn renew_and_release_need_the_active_node_and_current_epoch() {
        let mut st = ControlState::default();
        st.apply(&assign("r", 1, None, 0));
        assert_eq!(
            st.apply(&heartbeat(1, 50_000, &[("r", 1)])),
            Response::Applied
        );
        assert_eq!(st.routers["r"].lease_until_ms, 50_000);
        // The node is alive until then and the router is recorded as connected to it.
        assert!(st.node_alive(1, 49_999) && !st.node_alive(1, 50_000));
        assert!(st.nodes[&1].connected.contains("r"));
        // A lease never shrinks.
        assert_eq!(
            st.apply(&heartbeat(1, 20_000, &[("r", 1)])),
            Response::Applied
        );
        assert_eq!(st.routers["r"].lease_until_ms, 50_000);
        // A stale epoch, another node, or a router nobody knows: the router's lease stays.
        st.apply(&heartbeat(1, 60_000, &[("r", 0)]));
        st.apply(&heartbeat(2, 60_000, &[("r", 1)]));
        st.apply(&heartbeat(1, 60_000, &[("other", 1)]));
        assert_eq!(st.routers["r"].lease_until_ms, 50_000);
        assert!(!st.routers.contains_key("other"));
        assert_eq!(st.owned_by(1, 0), vec![("r".to_owned(), 1)]);
        let release = |node, epoch| Command::ReleaseRouter {
            router: "r".into(),
            node,
            epoch,
        };
        assert!(matches!(
            st.apply(&release(2, 1)),
            Response::Refused(Refusal::NotActive { .. })
        ));
        assert_eq!(st.apply(&release(1, 1)), Response::Applied);
        let entry = &st.routers["r"];
        assert_eq!(
            (entry.active, entry.epoch, entry.lease_until_ms),
            (None, 1, 0)
        );
        // Released: anyone can take it at once, and the epoch goes on.
        assert_eq!(
            st.apply(&assign("r", 3, Some(1), 1)),
            Response::Assigned { epoch: 2 }
        );
    }

    #[test]
    fn last_origin_host_is_kept_per_router() {
        let mut st = ControlState::default();
        let set = |host: &str| Command::SetLastOriginHost {
            router: "r".into(),
            host: host.into(),
        };
        assert_eq!(st.apply(&set("sae-1")), Response::Applied);
        st.apply(&assign("r", 1, None, 0));
        assert_eq!(st.apply(&set("sae-2")), Response::Applied);
        let entry = &st.routers["r"];
        assert_eq!(entry.last_origin_host.as_deref(), Some("sae-2"));
        assert_eq!(entry.active, Some(1));
    }

    #[test]
    fn entries_round_trip_through_keys() {
        let mut st = ControlState::default();
        st.apply(&Command::PutService(service("gold")));
        st.apply(&Command::PutRule(rule("r1", &["gold"])));
        st.apply(&assign("edge/1", 1, None, 0));
        let mut copy = ControlState::default();
        for key in st.keys() {
            let encoded = key.encode();
            let value = st.encode_entry(&key).unwrap().unwrap();
            copy.insert_entry(Key::decode(&encoded).unwrap(), &value)
                .unwrap();
        }
        assert_eq!(copy, st);
        assert_eq!(Key::decode(b"meta/x"), None);
        assert_eq!(st.encode_entry(&Key::Service("none".into())).unwrap(), None);
    }

    #[test]
    fn commands_are_plain_json() {
        let cmd = assign("r", 1, Some(2), 3);
        let json = serde_json::to_string(&cmd).unwrap();
        assert_eq!(
            json,
            r#"{"assign_router":{"router":"r","node":1,"epoch":2,"now_ms":3,"until_ms":10003}}"#
        );
        assert_eq!(serde_json::from_str::<Command>(&json).unwrap(), cmd);
    }
}
