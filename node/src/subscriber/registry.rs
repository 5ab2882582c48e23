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

#[derive(Default)]
struct Inner {
    by_id: BTreeMap<String, Entry>,
    by_user: HashMap<String, BTreeSet<String>>,
    by_ip: HashMap<Ipv4Addr, BTreeSet<String>>,
    by_port: HashMap<String, BTreeSet<String>>,
    by_router: HashMap<String, BTreeSet<String>>,
}

fn index<K: std::hash::Hash + Eq>(map: &mut HashMap<K, BTreeSet<String>>, key: K, id: &str) {
    map.entry(key).or_default().insert(id.to_owned());
}

fn unindex<K: std::hash::Hash + Eq>(map: &mut HashMap<K, BTreeSet<String>>, key: &K, id: &str) {
    if let Some(set) = map.get_mut(key) {
        set.remove(id);
        if set.is_empty() {
            map.remove(key);
        }
    }
}

impl Inner {
    fn add_indexes(&mut self, r: &SubscriberRecord) {
        let id = &r.session_id;
        if let Some(u) = &r.user_name {
            index(&mut self.by_user, u.to_ascii_lowercase(), id);
        }
        if let Some(ip) = r.framed_ip {
            index(&mut self.by_ip, ip, id);
        }
        if let Some(p) = &r.nas_port_id {
            index(&mut self.by_port, p.clone(), id);
        }
        index(&mut self.by_router, r.router.clone(), id);
    }

    fn remove_indexes(&mut self, r: &SubscriberRecord) {
        let id = &r.session_id;
        if let Some(u) = &r.user_name {
            unindex(&mut self.by_user, &u.to_ascii_lowercase(), id);
        }
        if let Some(ip) = r.framed_ip {
            unindex(&mut self.by_ip, &ip, id);
        }
        if let Some(p) = &r.nas_port_id {
            unindex(&mut self.by_port, p, id);
        }
        unindex(&mut self.by_router, &r.router, id);
    }
}

/// The registry.
#[derive(Default)]
pub struct Sessions {
    inner: RwLock<Inner>,
}

fn same_identity(a: &SubscriberRecord, b: &SubscriberRecord) -> bool {
    a.user_name == b.user_name
        && a.framed_ip == b.framed_ip
        && a.nas_port_id == b.nas_port_id
        && a.router == b.router
}

impl Sessions {
    /// Registers a session; replaces an entry with the same Session-Id.
    pub fn insert(&self, addr: Addr<SubscriberSession>, record: Arc<SubscriberRecord>) {
        let mut inner = self.inner.write().expect("sessions lock");
        if let Some(old) = inner.by_id.remove(&record.session_id) {
            inner.remove_indexes(&old.record);
        }
        inner.add_indexes(&record);
        inner
            .by_id
            .insert(record.session_id.clone(), Entry { addr, record });
    }

    /// Publishes a session's new record (the actor calls this after every change).
    pub fn update(&self, record: Arc<SubscriberRecord>) {
        let mut inner = self.inner.write().expect("sessions lock");
        let Some(old) = inner
            .by_id
            .get(&record.session_id)
            .map(|e| e.record.clone())
        else {
            return;
        };
        if !same_identity(&old, &record) {
            inner.remove_indexes(&old);
            inner.add_indexes(&record);
        }
        if let Some(e) = inner.by_id.get_mut(&record.session_id) {
            e.record = record;
        }
    }

    /// Removes a session if `addr` still owns it.
    pub fn remove(&self, session_id: &str, addr: &Addr<SubscriberSession>) -> bool {
        let mut inner = self.inner.write().expect("sessions lock");
        if inner.by_id.get(session_id).is_none_or(|e| e.addr != *addr) {
            return false;
        }
        if let Some(old) = inner.by_id.remove(session_id) {
            inner.remove_indexes(&old.record);
        }
        true
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
                    .filter_map(|id| inner.by_id.get(id).cloned())
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
        let ids: Vec<String> = match reference {
            SubscriberRef::SessionId(id) => {
                return inner
                    .by_id
                    .get(id)
                    .cloned()
                    .ok_or_else(|| LookupError::NotFound(reference.to_string()));
            }
            SubscriberRef::UserName(u) => inner
                .by_user
                .get(&u.to_ascii_lowercase())
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default(),
            SubscriberRef::FramedIp(ip) => inner
                .by_ip
                .get(ip)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default(),
            SubscriberRef::NasPortId(p) => inner
                .by_port
                .get(p)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default(),
        };
        match ids.as_slice() {
            [] => Err(LookupError::NotFound(reference.to_string())),
            [id] => inner
                .by_id
                .get(id)
                .cloned()
                .ok_or_else(|| LookupError::NotFound(reference.to_string())),
            _ => Err(LookupError::Ambiguous {
                reference: reference.to_string(),
                sessions: ids,
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
            if after.is_some_and(|a| id.as_str() <= a) {
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
