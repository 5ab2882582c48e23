//! A NIC: one [`Directory`] behind a lock, the scenario it resolves with, and the watchers told
//! what each applied batch may have changed.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use sae_nic::cache::Invalidation;
use sae_nic::directory::DirectoryStats;
use sae_nic::{
    Applied, Binding, Directory, NodeId, Publication, Reference, Resolution, ResolveError, Scenario,
};
use tokio::sync::broadcast;

/// Invalidations a slow watcher may fall behind by before it is told to drop everything.
const WATCH_QUEUE: usize = 1024;

/// What a batch of publications did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub changed: u32,
    pub stale: u32,
    /// Neither (the same binding again, an unbind of an unknown session).
    pub same: u32,
}

/// The NIC.
#[derive(Debug)]
pub struct Nic {
    scenario: Scenario,
    directory: RwLock<Directory>,
    watch: broadcast::Sender<Arc<Invalidation>>,
    /// Node names as publishers gave them.
    names: RwLock<BTreeMap<NodeId, String>>,
    instance: u64,
}

impl Nic {
    pub fn new(resolution: sae_nic::config::Resolution) -> Nic {
        Nic {
            scenario: resolution.scenario,
            directory: RwLock::new(Directory::new(resolution.pools)),
            watch: broadcast::channel(WATCH_QUEUE).0,
            names: RwLock::new(BTreeMap::new()),
            instance: new_instance(),
        }
    }

    /// This directory's instance: chosen at random when it starts, so that publishers learn
    /// from their next answer that it restarted empty.
    pub fn instance(&self) -> u64 {
        self.instance
    }

    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// Applies publications in order; watchers learn what they may have changed.
    pub fn apply(&self, publications: impl IntoIterator<Item = Publication>) -> BatchOutcome {
        let mut outcome = BatchOutcome::default();
        let watched = self.watch.receiver_count() > 0;
        let mut change = Invalidation::default();
        {
            let mut directory = self.directory.write().expect("nic lock");
            for p in publications {
                let applied = if watched {
                    directory.apply_noting(p, &mut change)
                } else {
                    directory.apply(p)
                };
                match applied {
                    Applied::Changed => outcome.changed += 1,
                    Applied::Stale => outcome.stale += 1,
                    Applied::Unchanged => outcome.same += 1,
                }
            }
        }
        if watched && !change.is_empty() {
            // No receiver left is not an error: nobody caches.
            let _ = self.watch.send(Arc::new(change));
        }
        outcome
    }

    /// Resolves a reference with the configured scenario.
    pub fn resolve(&self, reference: &Reference) -> Result<Resolution, ResolveError> {
        let directory = self.directory.read().expect("nic lock");
        self.scenario.resolve(&directory, reference)
    }

    /// Up to `limit` bindings matching every key of `filter` (all when `None`), by router and
    /// Session-Id, and the number of bindings in all.
    pub fn bindings(&self, filter: Option<&Reference>, limit: usize) -> (Vec<Binding>, usize) {
        let directory = self.directory.read().expect("nic lock");
        let total = directory.stats().bindings;
        let mut found: Vec<Binding> = match filter {
            None => directory.entries().map(|b| b.to_binding()).collect(),
            Some(r) => match self.scenario.resolve(&directory, r) {
                Ok(res) => res
                    .matches
                    .iter()
                    .filter_map(|m| m.session.as_ref().and_then(|s| directory.get(s)))
                    .map(|b| b.to_binding())
                    .collect(),
                Err(_) => Vec::new(),
            },
        };
        found.sort_by(|a, b| a.session.cmp(&b.session));
        found.dedup_by(|a, b| a.session == b.session);
        found.truncate(limit);
        (found, total)
    }

    pub fn stats(&self) -> DirectoryStats {
        self.directory.read().expect("nic lock").stats()
    }

    /// A receiver of the invalidations of every batch applied from now on.
    pub fn watch(&self) -> broadcast::Receiver<Arc<Invalidation>> {
        self.watch.subscribe()
    }

    /// How many watchers there are.
    pub fn watchers(&self) -> usize {
        self.watch.receiver_count()
    }

    /// Records the name a publisher gave.
    pub fn learn_name(&self, node: NodeId, name: &str) {
        if name.is_empty() {
            return;
        }
        let known = self.names.read().expect("names lock").get(&node).cloned();
        if known.as_deref() != Some(name) {
            self.names
                .write()
                .expect("names lock")
                .insert(node, name.to_owned());
        }
    }

    /// The name a publisher gave, if any.
    pub fn node_name(&self, node: NodeId) -> Option<String> {
        self.names.read().expect("names lock").get(&node).cloned()
    }

    /// How many nodes have published here.
    pub fn publishers(&self) -> usize {
        self.names.read().expect("names lock").len()
    }
}

fn new_instance() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS's randomness; mixing in the time keeps two in one
    // process apart as well.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sae_nic::{Attributes, Binding, SessionKey};

    fn bind(id: &str, login: &str) -> Publication {
        Publication::bind(Binding {
            session: SessionKey::new("bng1", id),
            node: 1,
            epoch: 1,
            attributes: Attributes {
                login_name: Some(login.into()),
                ..Attributes::default()
            },
        })
    }

    #[test]
    fn watchers_hear_of_changes_only() {
        let nic = Nic::new(sae_nic::config::Resolution::default());
        nic.apply([bind("s1", "alice")]);
        let mut rx = nic.watch();
        let outcome = nic.apply([bind("s1", "alice"), bind("s2", "bob")]);
        assert_eq!(
            outcome,
            BatchOutcome {
                changed: 1,
                stale: 0,
                same: 1
            }
        );
        let change = rx.try_recv().unwrap();
        assert!(change.tokens.contains(&"loginName=bob".to_string()));
        assert!(!change.tokens.contains(&"loginName=alice".to_string()));
        nic.apply([bind("s2", "bob")]);
        assert!(rx.try_recv().is_err(), "nothing changed, nothing sent");
        let res = nic
            .resolve(&Reference::parse("loginName=bob").unwrap())
            .unwrap();
        assert_eq!(res.matches.len(), 1);
    }

    #[test]
    fn names_are_learnt_from_publishers() {
        let nic = Nic::new(sae_nic::config::Resolution::default());
        assert_eq!(nic.node_name(3), None);
        nic.learn_name(3, "sae3");
        nic.learn_name(3, "");
        assert_eq!(nic.node_name(3).as_deref(), Some("sae3"));
        assert_eq!(nic.publishers(), 1);
        let other = Nic::new(sae_nic::config::Resolution::default());
        assert_ne!(nic.instance(), other.instance());
    }
}
