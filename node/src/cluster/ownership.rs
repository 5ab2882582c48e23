//! Which routers this node may act on, as router drivers see it.
//!
//! The cluster publishes one [`RouterView`] per router from the applied control state
//! ([`Ownership::publish`]) and re-publishes views whose lease ran out ([`Ownership::expire`]);
//! drivers watch their router's view ([`Ownership::watch`]) to serve or stand by, and check
//! the watched view (owner, epoch, lease at this instant: [`RouterView::serving_at`]) before
//! each message they send, without a lock.
//! A node outside a cluster ([`Ownership::standalone`]) owns every router.

use std::collections::{BTreeSet, HashMap};
use std::sync::RwLock;

use tokio::sync::watch;

use super::types::NodeId;
use crate::model::{UnixMs, now_ms};

/// What the cluster places on a node: a Diameter router (by its Origin-Host) or a COPS PEP (by
/// its PEPID). The control state, the ownership views and the API name it by its string form:
/// the router's host, or `cops:<pepid>` (lower-cased) for a PEP. Built and read here only.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OwnedKey {
    Router(String),
    Pep(String),
}

impl OwnedKey {
    const PEP_PREFIX: &'static str = "cops:";

    /// A COPS PEP's key (PEPIDs compare without case).
    pub fn pep(pepid: &str) -> OwnedKey {
        OwnedKey::Pep(pepid.to_ascii_lowercase())
    }

    /// The key a string form names.
    pub fn parse(key: &str) -> OwnedKey {
        match key.strip_prefix(Self::PEP_PREFIX) {
            Some(pepid) => OwnedKey::Pep(pepid.to_owned()),
            None => OwnedKey::Router(key.to_owned()),
        }
    }

    /// The router name its subscriber sessions are filed under (the host, or the PEPID).
    pub fn sessions_router(&self) -> &str {
        match self {
            OwnedKey::Router(host) => host,
            OwnedKey::Pep(pepid) => pepid,
        }
    }
}

impl std::fmt::Display for OwnedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OwnedKey::Router(host) => f.write_str(host),
            OwnedKey::Pep(pepid) => write!(f, "{}{pepid}", Self::PEP_PREFIX),
        }
    }
}

/// One router as this node sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouterView {
    /// The active node, if any.
    pub owner: Option<NodeId>,
    /// The router's current epoch.
    pub epoch: u64,
    /// The owner's lease runs until then (Unix ms).
    pub until_ms: UnixMs,
    /// The owner must not act before then (a router moved while its previous owner's lease
    /// was still running).
    pub not_before_ms: UnixMs,
    /// This node is the owner.
    pub mine: bool,
    /// This node is the owner and its lease runs (as of the last publication).
    pub live: bool,
    /// The owner's Diameter Origin-Host and addresses, when known.
    pub owner_origin_host: Option<String>,
    pub owner_diameter: Option<String>,
    pub owner_cops: Option<String>,
}

impl RouterView {
    /// The epoch this node may act in at `now`, if any.
    pub fn serving_at(&self, now: UnixMs) -> Option<u64> {
        (self.mine && self.not_before_ms <= now && now < self.until_ms).then_some(self.epoch)
    }

    /// Whether another node owns the router with a lease running at `now`.
    pub fn owned_elsewhere_at(&self, now: UnixMs) -> bool {
        !self.mine && self.owner.is_some() && now < self.until_ms
    }

    fn with_live(mut self, now: UnixMs) -> RouterView {
        self.live = self.serving_at(now).is_some();
        self
    }
}

/// The views, one watch channel per router.
#[derive(Debug)]
pub struct Ownership {
    standalone: bool,
    routers: RwLock<HashMap<String, watch::Sender<RouterView>>>,
    /// Routers this node owned and another node owns now (whether or not a driver is
    /// connected): their sessions here end.
    lost: tokio::sync::broadcast::Sender<String>,
}

impl Ownership {
    /// Views published by a cluster.
    pub fn clustered() -> Ownership {
        Ownership {
            standalone: false,
            routers: RwLock::new(HashMap::new()),
            lost: tokio::sync::broadcast::channel(1024).0,
        }
    }

    /// Every router is this node's, in epoch 0, for ever.
    pub fn standalone() -> Ownership {
        Ownership {
            standalone: true,
            routers: RwLock::new(HashMap::new()),
            lost: tokio::sync::broadcast::channel(1).0,
        }
    }

    fn default_view(&self) -> RouterView {
        if self.standalone {
            RouterView {
                mine: true,
                live: true,
                until_ms: UnixMs::MAX,
                ..RouterView::default()
            }
        } else {
            RouterView::default()
        }
    }

    /// Routers this node loses to another node, as they are published.
    pub fn subscribe_lost(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.lost.subscribe()
    }

    /// Watches a router's view (a driver, while its connection is open).
    pub fn watch(&self, router: &str) -> watch::Receiver<RouterView> {
        let mut map = self.routers.write().expect("ownership lock");
        map.entry(router.to_owned())
            .or_insert_with(|| watch::channel(self.default_view()).0)
            .subscribe()
    }

    /// The router's view now.
    pub fn view(&self, router: &str) -> RouterView {
        let map = self.routers.read().expect("ownership lock");
        map.get(router)
            .map(|tx| tx.borrow().clone())
            .unwrap_or_else(|| self.default_view())
    }

    /// The epoch this node may act on the router in right now, if any (checked before every
    /// message to a router: no copy of the view).
    pub fn serving(&self, router: &str) -> Option<u64> {
        let now = now_ms();
        let map = self.routers.read().expect("ownership lock");
        match map.get(router) {
            Some(tx) => tx.borrow().serving_at(now),
            None => self.standalone.then_some(0),
        }
    }

    /// Whether this node owns the router (any lease state), and the router's epoch: the
    /// view's two fields, without copying it.
    pub fn standing(&self, router: &str) -> (bool, u64) {
        let map = self.routers.read().expect("ownership lock");
        match map.get(router) {
            Some(tx) => {
                let v = tx.borrow();
                (v.mine, v.epoch)
            }
            None => (self.standalone, 0),
        }
    }

    /// Routers a driver currently watches (connected to this node).
    pub fn connected(&self) -> BTreeSet<String> {
        let map = self.routers.read().expect("ownership lock");
        map.iter()
            .filter(|(_, tx)| tx.receiver_count() > 0)
            .map(|(r, _)| r.clone())
            .collect()
    }

    /// Publishes the views computed from the control state; routers absent from `views` keep
    /// theirs (a router the state does not know has no owner yet).
    pub fn publish(&self, views: impl IntoIterator<Item = (String, RouterView)>) {
        if self.standalone {
            return;
        }
        let now = now_ms();
        let mut map = self.routers.write().expect("ownership lock");
        for (router, view) in views {
            let view = view.with_live(now);
            match map.get(&router) {
                Some(tx) => {
                    let was_mine = tx.borrow().mine;
                    if was_mine && !view.mine && view.owner.is_some() {
                        let _ = self.lost.send(router.clone());
                    }
                    tx.send_if_modified(|v| {
                        let changed = *v != view;
                        if changed {
                            *v = view;
                        }
                        changed
                    });
                }
                None => {
                    map.insert(router, watch::channel(view).0);
                }
            }
        }
    }

    /// Re-publishes views whose liveness changed with time (a lease that ran out, a
    /// not-before that passed).
    pub fn expire(&self) {
        let now = now_ms();
        let map = self.routers.read().expect("ownership lock");
        for tx in map.values() {
            tx.send_if_modified(|v| {
                let live = v.serving_at(now).is_some();
                let changed = live != v.live;
                v.live = live;
                changed
            });
        }
    }

    /// This node stops acting on every router (graceful leave): every view says "not mine".
    pub fn relinquish_all(&self) {
        let map = self.routers.read().expect("ownership lock");
        for (router, tx) in map.iter() {
            if tx.borrow().mine {
                let _ = self.lost.send(router.clone());
            }
            tx.send_if_modified(|v| {
                let changed = v.mine || v.live;
                v.mine = false;
                v.live = false;
                changed
            });
        }
    }

    /// Routers this node owns (any lease state), with epochs.
    pub fn owned(&self) -> Vec<(String, u64)> {
        let map = self.routers.read().expect("ownership lock");
        map.iter()
            .filter_map(|(r, tx)| {
                let v = tx.borrow();
                v.mine.then(|| (r.clone(), v.epoch))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_keys_read_back_as_written() {
        let pep = OwnedKey::pep("ERX1");
        assert_eq!(pep.to_string(), "cops:erx1");
        assert_eq!(OwnedKey::parse("cops:erx1"), pep);
        assert_eq!(pep.sessions_router(), "erx1");
        let router = OwnedKey::parse("mx1.example.net");
        assert_eq!(router, OwnedKey::Router("mx1.example.net".into()));
        assert_eq!(router.to_string(), "mx1.example.net");
        assert_eq!(router.sessions_router(), "mx1.example.net");
    }

    #[test]
    fn standalone_owns_everything() {
        let o = Ownership::standalone();
        assert!(o.serving("r1") == Some(0));
        let rx = o.watch("r1");
        assert!(rx.borrow().live);
        assert_eq!(o.connected().len(), 1, "a watched router is connected");
        drop(rx);
        assert!(o.connected().is_empty());
    }

    #[test]
    fn a_view_is_live_only_inside_its_lease_and_epoch() {
        let o = Ownership::clustered();
        let rx = o.watch("r1");
        assert!(!rx.borrow().live);
        let now = now_ms();
        o.publish([(
            "r1".to_owned(),
            RouterView {
                owner: Some(1),
                epoch: 3,
                until_ms: now + 60_000,
                mine: true,
                ..RouterView::default()
            },
        )]);
        assert!(rx.borrow().live);
        assert!(o.serving("r1") == Some(3));
        assert_ne!(o.serving("r1"), Some(2), "a stale epoch is refused");
        o.publish([(
            "r1".to_owned(),
            RouterView {
                owner: Some(1),
                epoch: 3,
                until_ms: now - 1,
                mine: true,
                ..RouterView::default()
            },
        )]);
        assert!(!rx.borrow().live, "an expired lease is not served");
        assert_ne!(o.serving("r1"), Some(3));
    }

    #[test]
    fn not_before_delays_a_moved_router() {
        let now = now_ms();
        let v = RouterView {
            owner: Some(2),
            epoch: 5,
            until_ms: now + 10_000,
            not_before_ms: now + 5_000,
            mine: true,
            ..RouterView::default()
        };
        assert_eq!(v.serving_at(now), None);
        assert_eq!(v.serving_at(now + 5_000), Some(5));
    }
}
