//! The node's subscriber sessions: the actor of each, keyed by Session-Id, with indexes on the
//! identities operators search by (login name, IP address, interface) and by router.
//!
//! Each entry also holds the session's latest published record (shared with the actor through an
//! `Arc`), so listing and reading sessions never has to wait on the actors.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Arc, RwLock};

use actix::Addr;
use wildmatch::WildMatch;

use super::session::SubscriberSession;
use crate::model::SubscriberRecord;

/// Names one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriberRef {
    SessionId(String),
    UserName(String),
    FramedIp(Ipv4Addr),
    NasPortId(String),
}

/// Why a reference names no single session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("no subscriber session matches {0}")]
    NotFound(String),
    #[error("{reference} matches {} sessions: {}", .sessions.len(), .sessions.join(", "))]
    Ambiguous {
        reference: String,
        sessions: Vec<String>,
    },
}

impl std::fmt::Display for SubscriberRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SubscriberRef::SessionId(s) => write!(f, "session {s}"),
            SubscriberRef::UserName(s) => write!(f, "user {s}"),
            SubscriberRef::FramedIp(s) => write!(f, "ip {s}"),
            SubscriberRef::NasPortId(s) => write!(f, "interface {s}"),
        }
    }
}

/// A registered session.
#[derive(Clone)]
pub struct Entry {
    pub addr: Addr<SubscriberSession>,
    pub record: Arc<SubscriberRecord>,
}

/// List filters; `None` matches everything. User and interface are globs.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub user_name: Option<String>,
    pub framed_ip: Option<Ipv4Addr>,
    pub nas_port_id: Option<String>,
    pub router: Option<String>,
    pub service: Option<String>,
}

/// The sessions under one index key: almost always one, so no set is allocated for it.
#[derive(Debug, Clone)]
enum Ids {
    One(Arc<str>),
    Many(BTreeSet<Arc<str>>),
}

impl Ids {
    fn insert(&mut self, id: Arc<str>) {
        match self {
            Ids::One(existing) if *existing == id => {}
            Ids::One(existing) => {
                let set = BTreeSet::from([existing.clone(), id]);
                *self = Ids::Many(set);
            }
            Ids::Many(set) => {
                set.insert(id);
            }
        }
    }

    /// Removes `id`; true when nothing is left.
    fn remove(&mut self, id: &str) -> bool {
        match self {
            Ids::One(existing) => &**existing == id,
            Ids::Many(set) => {
                set.remove(id);
                if set.len() == 1 {
                    if let Some(last) = set.pop_first() {
                        *self = Ids::One(last);
                    }
                    false
                } else {
                    set.is_empty()
                }
            }
        }
    }

    fn to_vec(&self) -> Vec<Arc<str>> {
        match self {
            Ids::One(id) => vec![id.clone()],
            Ids::Many(set) => set.iter().cloned().collect(),
        }
    }
}

#[derive(Default)]
struct Inner {
    by_id: BTreeMap<Arc<str>, Entry>,
    by_user: HashMap<String, Ids>,
    by_ip: HashMap<Ipv4Addr, Ids>,
    by_port: HashMap<String, Ids>,
    by_router: HashMap<String, BTreeSet<Arc<str>>>,
}

fn index<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Ids>, key: K, id: &Arc<str>) {
    match map.entry(key) {
        std::collections::hash_map::Entry::Occupied(mut e) => e.get_mut().insert(id.clone()),
        std::collections::hash_map::Entry::Vacant(e) => {
            e.insert(Ids::One(id.clone()));
        }
    }
}

fn unindex<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Ids>, key: &K, id: &str) {
    if let Some(ids) = map.get_mut(key)
        && ids.remove(id)
    {
        map.remove(key);
    }
}

impl Inner {
    fn add_indexes(&mut self, id: &Arc<str>, r: &SubscriberRecord) {
        if let Some(u) = &r.user_name {
            index(&mut self.by_user, u.to_ascii_lowercase(), id);
        }
        if let Some(ip) = r.framed_ip {
            index(&mut self.by_ip, ip, id);
        }
        if let Some(p) = &r.nas_port_id {
            index(&mut self.by_port, p.clone(), id);
        }
        self.by_router
            .entry(r.router.clone())
            .or_default()
            .insert(id.clone());
    }

    fn remove_indexes(&mut self, r: &SubscriberRecord) {
        let id = r.session_id.as_str();
        if let Some(u) = &r.user_name {
            unindex(&mut self.by_user, &u.to_ascii_lowercase(), id);
        }
        if let Some(ip) = r.framed_ip {
            unindex(&mut self.by_ip, &ip, id);
        }
        if let Some(p) = &r.nas_port_id {
            unindex(&mut self.by_port, p, id);
        }
        if let Some(set) = self.by_router.get_mut(&r.router) {
            set.remove(id);
            if set.is_empty() {
                self.by_router.remove(&r.router);
            }
        }
    }

    /// The shared id of a registered session.
    fn key(&self, session_id: &str) -> Option<Arc<str>> {
        self.by_id.get_key_value(session_id).map(|(k, _)| k.clone())
    }
}

/// Told of every session registered, changed in what it is known by, and removed (the node's
/// NIC publishes bindings from this). Called on the caller's thread: it must not block.
pub trait SessionObserver: Send + Sync {
    /// A session was registered, or what it is known by changed.
    fn bound(&self, record: &Arc<SubscriberRecord>);
    /// A session was removed.
    fn unbound(&self, record: &Arc<SubscriberRecord>);
    /// The router accepted a resynchronization: its sessions not replayed within `window` end.
    fn resync_window(&self, _router: &str, _window: std::time::Duration) {}
}

/// The registry.
#[derive(Default)]
pub struct Sessions {
    inner: RwLock<Inner>,
    observer: Option<Arc<dyn SessionObserver>>,
}

/// Whether two records of a session are known by the same keys (the NIC's view).
fn same_binding(a: &SubscriberRecord, b: &SubscriberRecord) -> bool {
    same_identity(a, b) && a.attributes == b.attributes
}

fn same_identity(a: &SubscriberRecord, b: &SubscriberRecord) -> bool {
    a.user_name == b.user_name
        && a.framed_ip == b.framed_ip
        && a.nas_port_id == b.nas_port_id
        && a.router == b.router
}

impl Sessions {
    /// A registry that tells `observer` of its changes.
    pub fn observed(observer: Arc<dyn SessionObserver>) -> Sessions {
        Sessions {
            inner: RwLock::default(),
            observer: Some(observer),
        }
    }

    /// The observer, if any.
    pub fn observer(&self) -> Option<&Arc<dyn SessionObserver>> {
        self.observer.as_ref()
    }

    /// Registers a session; replaces an entry with the same Session-Id.
    pub fn insert(&self, addr: Addr<SubscriberSession>, record: Arc<SubscriberRecord>) {
        {
            let mut inner = self.inner.write().expect("sessions lock");
            if let Some(old) = inner.by_id.remove(record.session_id.as_str()) {
                inner.remove_indexes(&old.record);
            }
            let id: Arc<str> = Arc::from(record.session_id.as_str());
            inner.add_indexes(&id, &record);
            inner.by_id.insert(
                id,
                Entry {
                    addr,
                    record: record.clone(),
                },
            );
        }
        if let Some(o) = &self.observer {
            o.bound(&record);
        }
    }

    /// Publishes a session's new record (the actor calls this after every change).
    pub fn update(&self, record: Arc<SubscriberRecord>) {
        let mut inner = self.inner.write().expect("sessions lock");
        let Some(old) = inner
            .by_id
            .get(record.session_id.as_str())
            .map(|e| e.record.clone())
        else {
            return;
        };
        if !same_identity(&old, &record)
            && let Some(id) = inner.key(&record.session_id)
        {
            inner.remove_indexes(&old);
            inner.add_indexes(&id, &record);
        }
        let rebound = !same_binding(&old, &record);
        if let Some(e) = inner.by_id.get_mut(record.session_id.as_str()) {
            e.record = record.clone();
        }
        drop(inner);
        if rebound && let Some(o) = &self.observer {
            o.bound(&record);
        }
    }

    /// Removes a session if `addr` still owns it.
    pub fn remove(&self, session_id: &str, addr: &Addr<SubscriberSession>) -> bool {
        let mut inner = self.inner.write().expect("sessions lock");
        if inner.by_id.get(session_id).is_none_or(|e| e.addr != *addr) {
            return false;
        }
        let Some(old) = inner.by_id.remove(session_id) else {
            return true;
        };
        inner.remove_indexes(&old.record);
        drop(inner);
        if let Some(o) = &self.observer {
            o.unbound(&old.record);
        }
        true
    }

    /// Every session's record.
    pub fn records(&self) -> Vec<Arc<SubscriberRecord>> {
        let inner = self.inner.read().expect("sessions lock");
        inner.by_id.values().map(|e| e.record.clone()).collect()
    }

    pub fn get(&self, session_id: &str) -> Option<Entry> {
        self.inner
            .read()
            .expect("sessions lock")
            .by_id
            .get(session_id)
            .cloned()
    }

    pub fn len(&self) -> usize {
        self.inner.read().expect("sessions lock").by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sessions of one router.
    pub fn of_router(&self, router: &str) -> Vec<Entry> {
        let inner = self.inner.read().expect("sessions lock");
        inner
            .by_router
            .get(router)
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| inner.by_id.get(&**id).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn count_of_router(&self, router: &str) -> usize {
        let inner = self.inner.read().expect("sessions lock");
        inner.by_router.get(router).map_or(0, BTreeSet::len)
    }

    /// The one session a reference names.
    pub fn find(&self, reference: &SubscriberRef) -> Result<Entry, LookupError> {
        let inner = self.inner.read().expect("sessions lock");
        let ids: Vec<Arc<str>> = match reference {
            SubscriberRef::SessionId(id) => {
                return inner
                    .by_id
                    .get(id.as_str())
                    .cloned()
                    .ok_or_else(|| LookupError::NotFound(reference.to_string()));
            }
            SubscriberRef::UserName(u) => inner
                .by_user
                .get(&u.to_ascii_lowercase())
                .map(Ids::to_vec)
                .unwrap_or_default(),
            SubscriberRef::FramedIp(ip) => inner.by_ip.get(ip).map(Ids::to_vec).unwrap_or_default(),
            SubscriberRef::NasPortId(p) => {
                inner.by_port.get(p).map(Ids::to_vec).unwrap_or_default()
            }
        };
        match ids.as_slice() {
            [] => Err(LookupError::NotFound(reference.to_string())),
            [id] => inner
                .by_id
                .get(&**id)
                .cloned()
                .ok_or_else(|| LookupError::NotFound(reference.to_string())),
            _ => Err(LookupError::Ambiguous {
                reference: reference.to_string(),
                sessions: ids.iter().map(|id| id.to_string()).collect(),
            }),
        }
    }

    /// One page of matching sessions in Session-Id order, starting after `after`; returns the
    /// page, whether more follow, and the number of matches in all pages.
    pub fn list(
        &self,
        filter: &ListFilter,
        after: Option<&str>,
        page_size: usize,
    ) -> (Vec<Arc<SubscriberRecord>>, bool, usize) {
        let user = filter
            .user_name
            .as_deref()
            .map(|u| WildMatch::new(&u.to_ascii_lowercase()));
        let port = filter.nas_port_id.as_deref().map(WildMatch::new);
        let router = filter.router.as_ref().map(|r| r.to_ascii_lowercase());
        let matches = |r: &SubscriberRecord| {
            user.as_ref().is_none_or(|m| {
                r.user_name
                    .as_ref()
                    .is_some_and(|u| m.matches(&u.to_ascii_lowercase()))
            }) && filter.framed_ip.is_none_or(|ip| r.framed_ip == Some(ip))
                && port
                    .as_ref()
                    .is_none_or(|m| r.nas_port_id.as_ref().is_some_and(|p| m.matches(p)))
                && router.as_ref().is_none_or(|h| *h == r.router)
                && filter
                    .service
                    .as_ref()
                    .is_none_or(|s| r.services.iter().any(|x| x.service == *s))
        };
        let inner = self.inner.read().expect("sessions lock");
        let mut page = Vec::new();
        let mut more = false;
        let mut total = 0;
        for (id, e) in &inner.by_id {
            if !matches(&e.record) {
                continue;
            }
            total += 1;
            if after.is_some_and(|a| &**id <= a) {
                continue;
            }
            if page.len() < page_size {
                page.push(e.record.clone());
            } else {
                more = true;
            }
        }
        (page, more, total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    #[test]
    fn an_index_key_holds_one_id_without_a_set_and_grows_and_shrinks() {
        let mut map: HashMap<String, Ids> = HashMap::new();
        index(&mut map, "alice".into(), &id("s1"));
        assert!(matches!(map["alice"], Ids::One(_)));
        index(&mut map, "alice".into(), &id("s1"));
        assert!(matches!(map["alice"], Ids::One(_)));
        index(&mut map, "alice".into(), &id("s2"));
        assert_eq!(map["alice"].to_vec(), vec![id("s1"), id("s2")]);
        unindex(&mut map, &"alice".to_string(), "s1");
        assert!(matches!(&map["alice"], Ids::One(x) if &**x == "s2"));
        unindex(&mut map, &"alice".to_string(), "nope");
        assert!(map.contains_key("alice"));
        unindex(&mut map, &"alice".to_string(), "s2");
        assert!(map.is_empty());
    }
}
