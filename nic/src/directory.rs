//! The NIC's state: the bindings SAE nodes publish for their subscriber sessions, who owns each
//! router, and the address pools of the virtual routers, with the indexes resolution reads.
//!
//! Everything here is soft state, rebuilt from publications: [`Directory::apply`] is a pure
//! function of the publications in the order they arrive.
//!
//! Epochs are the routers' ownership epochs from the cluster's control state. A binding carries
//! the epoch under which its node served the router; a publication under an older epoch than
//! the one the directory knows for that router or session is stale and changes nothing, so that
//! a node that lost a router (a failover, a move) cannot overwrite its successor's bindings
//! however late its publications arrive.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::cache::Invalidation;
use crate::reference::Vr;

/// A SAE node's id in the cluster.
pub type NodeId = u64;

/// Names one subscriber session: its router and its Session-Id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey {
    /// Lower case, as the cluster places routers.
    pub router: String,
    pub session_id: String,
}

impl SessionKey {
    pub fn new(router: impl Into<String>, session_id: impl Into<String>) -> Self {
        SessionKey {
            router: router.into().to_ascii_lowercase(),
            session_id: session_id.into(),
        }
    }
}

/// What a subscriber session can be found by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    /// Assigned addresses (Framed-IP-Address, and IPv6 host addresses).
    pub addresses: Vec<IpAddr>,
    /// Framed and delegated IPv6 prefixes.
    pub prefixes: Vec<IpNet>,
    pub login_name: Option<String>,
    pub primary_user_name: Option<String>,
    pub dn: Option<String>,
    pub interface_name: Option<String>,
    pub vr: Option<Vr>,
    pub accounting_id: Option<String>,
}

/// A session as its node publishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub session: SessionKey,
    pub node: NodeId,
    pub epoch: u64,
    pub attributes: Attributes,
}

/// An address pool of a virtual router.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pool {
    pub prefix: IpNet,
    pub vr: Vr,
}

/// What a node tells the NIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Publication {
    /// A session logged in or changed.
    Bind(Box<Binding>),
    /// A session ended.
    Unbind {
        session: SessionKey,
        node: NodeId,
        epoch: u64,
    },
    /// `node` serves `router` from `epoch` on.
    Owner {
        router: String,
        node: NodeId,
        epoch: u64,
    },
    /// The owner's resynchronization of `router` finished: bindings of that router published
    /// under an older epoch (sessions the router did not replay) are gone.
    Synced {
        router: String,
        node: NodeId,
        epoch: u64,
    },
    /// The address pools of `router`'s virtual routers, replacing those published before.
    Pools {
        router: String,
        node: NodeId,
        epoch: u64,
        pools: Vec<Pool>,
    },
    /// `node` starts replaying all its bindings (it (re)connected to this NIC).
    ReplayStart { node: NodeId },
    /// `node` finished its replay: its bindings not replayed since the start are gone.
    ReplayEnd { node: NodeId },
}

impl Publication {
    /// A [`Publication::Bind`].
    pub fn bind(binding: Binding) -> Publication {
        Publication::Bind(Box::new(binding))
    }
}

/// What [`Directory::apply`] did with a publication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Changed,
    /// Nothing to change (the same binding again, an unbind of an unknown session).
    Unchanged,
    /// Published under an epoch older than the one known: ignored.
    Stale,
}

/// A stored binding.
#[derive(Debug, Clone)]
pub struct Entry {
    pub session: SessionKey,
    pub node: NodeId,
    pub epoch: u64,
    pub attributes: Attributes,
    generation: u32,
}

type Slot = u32;

/// How login and user names are compared: without regard to ASCII case.
fn same_name(have: &Option<String>, want: &str) -> bool {
    have.as_deref()
        .is_some_and(|h| h.eq_ignore_ascii_case(want))
}

/// The sessions one key value names: almost always one.
#[derive(Debug, Clone)]
enum Slots {
    One(Slot),
    /// Boxed so that the common case (`One`) takes 16 bytes rather than 32: a million
    /// bindings sit in several indexes each.
    #[allow(clippy::box_collection)]
    Many(Box<Vec<Slot>>),
}

impl Slots {
    fn as_slice(&self) -> &[Slot] {
        match self {
            Slots::One(s) => std::slice::from_ref(s),
            Slots::Many(v) => v,
        }
    }

    fn insert(&mut self, slot: Slot) {
        match self {
            Slots::One(s) if *s == slot => {}
            Slots::One(s) => *self = Slots::Many(Box::new(vec![*s, slot])),
            Slots::Many(v) if !v.contains(&slot) => v.push(slot),
            Slots::Many(_) => {}
        }
    }

    /// Removes `slot`; true when nothing is left.
    fn remove(&mut self, slot: Slot) -> bool {
        match self {
            Slots::One(s) => *s == slot,
            Slots::Many(v) => {
                v.retain(|s| *s != slot);
                match v.as_slice() {
                    [] => true,
                    [only] => {
                        *self = Slots::One(*only);
                        false
                    }
                    _ => false,
                }
            }
        }
    }
}

fn index_insert<K: Hash + Eq, S: BuildHasher>(map: &mut HashMap<K, Slots, S>, key: K, slot: Slot) {
    match map.get_mut(&key) {
        Some(slots) => slots.insert(slot),
        None => {
            map.insert(key, Slots::One(slot));
        }
    }
}

fn index_remove<K, Q, S>(map: &mut HashMap<K, Slots, S>, key: &Q, slot: Slot)
where
    K: Hash + Eq + std::borrow::Borrow<Q>,
    Q: Hash + Eq + ?Sized,
    S: BuildHasher,
{
    if let Some(slots) = map.get_mut(key)
        && slots.remove(slot)
    {
        map.remove(key);
    }
}

/// Hashes that are already uniformly spread: used as they are.
#[derive(Debug, Clone, Copy, Default)]
struct Spread(u64);

impl Hasher for Spread {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type HashIndex = HashMap<u64, Slots, BuildHasherDefault<Spread>>;

// The text indexes: each maps a keyed hash of the value to the sessions holding it. The text
// itself is kept once, in the entry; lookups compare against it, so a collision costs a
// comparison, never a wrong answer.
const LOGIN: usize = 0;
const PRIMARY: usize = 1;
const DN: usize = 2;
const ACCOUNTING: usize = 3;
const INTERFACE: usize = 4;
const SESSION_ID: usize = 5;
const SESSION: usize = 6;
const TEXT_INDEXES: usize = 7;

/// Prefixes by length, for longest-prefix (most specific) matches.
#[derive(Debug, Clone)]
pub(crate) struct PrefixMap<T> {
    by_len: BTreeMap<(bool, u8), HashMap<IpNet, T>>,
}

impl<T> Default for PrefixMap<T> {
    fn default() -> Self {
        PrefixMap {
            by_len: BTreeMap::new(),
        }
    }
}

impl<T> PrefixMap<T> {
    fn key(net: &IpNet) -> (bool, u8) {
        (net.addr().is_ipv6(), net.prefix_len())
    }

    pub(crate) fn get(&self, net: &IpNet) -> Option<&T> {
        self.by_len.get(&Self::key(net))?.get(net)
    }

    fn get_mut(&mut self, net: &IpNet) -> Option<&mut T> {
        self.by_len.get_mut(&Self::key(net))?.get_mut(net)
    }

    fn entry_or(&mut self, net: IpNet, make: impl FnOnce() -> T) -> &mut T {
        self.by_len
            .entry(Self::key(&net))
            .or_default()
            .entry(net)
            .or_insert_with(make)
    }

    fn remove(&mut self, net: &IpNet) {
        let key = Self::key(net);
        if let Some(map) = self.by_len.get_mut(&key) {
            map.remove(net);
            if map.is_empty() {
                self.by_len.remove(&key);
            }
        }
    }

    /// The longest prefix holding `addr`, with its value.
    pub(crate) fn longest(&self, addr: IpAddr) -> Option<(IpNet, &T)> {
        let v6 = addr.is_ipv6();
        self.by_len
            .range((v6, 0)..=(v6, 128))
            .rev()
            .find_map(|(&(_, len), map)| {
                let net = IpNet::new(addr, len).ok()?.trunc();
                map.get(&net).map(|t| (net, t))
            })
    }

    /// Every prefix holding `addr`.
    pub(crate) fn containing(&self, addr: IpAddr) -> impl Iterator<Item = (IpNet, &T)> + '_ {
        let v6 = addr.is_ipv6();
        self.by_len
            .range((v6, 0)..=(v6, 128))
            .rev()
            .filter_map(move |(&(_, len), map)| {
                let net = IpNet::new(addr, len).ok()?.trunc();
                map.get(&net).map(|t| (net, t))
            })
    }
}

#[derive(Debug, Clone, Default)]
struct RouterInfo {
    owner: Option<(NodeId, u64)>,
    pools: Vec<Pool>,
}

/// Counters of a directory, for metrics and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectoryStats {
    pub bindings: usize,
    pub routers: usize,
    pub pools: usize,
}

/// Bindings, owners and pools, indexed for resolution.
#[derive(Debug, Default)]
pub struct Directory {
    slots: Vec<Option<Entry>>,
    free: Vec<Slot>,
    /// Keys the text hashes (random per directory, so that no one can aim at collisions).
    hasher: RandomState,
    text: [HashIndex; TEXT_INDEXES],
    bindings: usize,
    by_address: HashMap<IpAddr, Slots>,
    by_prefix: PrefixMap<Slots>,
    by_vr: HashMap<Vr, Slots>,
    routers: HashMap<String, RouterInfo>,
    configured_pools: Vec<Pool>,
    pools: PrefixMap<Vec<Vr>>,
    generations: HashMap<NodeId, u32>,
}

impl Directory {
    /// A directory that knows `pools` from configuration.
    pub fn new(pools: Vec<Pool>) -> Self {
        let mut directory = Directory {
            configured_pools: pools,
            ..Directory::default()
        };
        directory.rebuild_pools();
        directory
    }

    pub fn stats(&self) -> DirectoryStats {
        DirectoryStats {
            bindings: self.bindings,
            routers: self.routers.len(),
            pools: self.pools.by_len.values().map(HashMap::len).sum(),
        }
    }

    /// Applies one publication.
    pub fn apply(&mut self, publication: Publication) -> Applied {
        match publication {
            Publication::Bind(binding) => self.bind(*binding),
            Publication::Unbind { session, epoch, .. } => self.unbind(&session, epoch),
            Publication::Owner {
                router,
                node,
                epoch,
            } => {
                let known = self
                    .routers
                    .get(&router.to_ascii_lowercase())
                    .and_then(|r| r.owner);
                if known == Some((node, epoch)) {
                    Applied::Unchanged
                } else if self.observe_owner(&router, node, epoch) {
                    Applied::Changed
                } else {
                    Applied::Stale
                }
            }
            Publication::Synced { router, epoch, .. } => {
                let router = router.to_ascii_lowercase();
                if self.owner_epoch(&router) > epoch {
                    return Applied::Stale;
                }
                self.remove_where(|e| e.session.router == router && e.epoch < epoch)
            }
            Publication::Pools {
                router,
                node,
                epoch,
                pools,
            } => {
                let router = router.to_ascii_lowercase();
                if !self.observe_owner(&router, node, epoch) {
                    return Applied::Stale;
                }
                let info = self.routers.entry(router).or_default();
                if info.pools == pools {
                    return Applied::Unchanged;
                }
                info.pools = pools;
                self.rebuild_pools();
                Applied::Changed
            }
            Publication::ReplayStart { node } => {
                *self.generations.entry(node).or_default() += 1;
                Applied::Changed
            }
            Publication::ReplayEnd { node } => {
                let current = self.generation(node);
                self.remove_where(|e| e.node == node && e.generation < current)
            }
        }
    }

    /// Applies one publication and notes in `change` what answers it may have altered.
    pub fn apply_noting(&mut self, publication: Publication, change: &mut Invalidation) -> Applied {
        let mut noted = Invalidation::default();
        match &publication {
            Publication::Bind(b) => {
                if let Some(old) = self.get(&b.session) {
                    noted.binding(&old.session, &old.attributes);
                }
                noted.binding(&b.session, &b.attributes);
            }
            Publication::Unbind { session, .. } => {
                if let Some(old) = self.get(session) {
                    noted.binding(&old.session, &old.attributes);
                }
            }
            // Opens a replay; removes nothing yet.
            Publication::ReplayStart { .. } => {}
            Publication::Owner { .. }
            | Publication::Synced { .. }
            | Publication::Pools { .. }
            | Publication::ReplayEnd { .. } => noted.all = true,
        }
        let applied = self.apply(publication);
        if applied == Applied::Changed {
            change.merge(noted);
        }
        applied
    }

    fn generation(&self, node: NodeId) -> u32 {
        self.generations.get(&node).copied().unwrap_or(0)
    }

    fn owner_epoch(&self, router: &str) -> u64 {
        self.routers
            .get(router)
            .and_then(|r| r.owner)
            .map_or(0, |(_, epoch)| epoch)
    }

    /// Records `node` as `router`'s owner unless a newer epoch is known; false if stale.
    fn observe_owner(&mut self, router: &str, node: NodeId, epoch: u64) -> bool {
        let router = router.to_ascii_lowercase();
        let info = self.routers.entry(router).or_default();
        match info.owner {
            Some((_, known)) if known > epoch => false,
            _ => {
                info.owner = Some((node, epoch));
                true
            }
        }
    }

    fn bind(&mut self, binding: Binding) -> Applied {
        let Binding {
            session,
            node,
            epoch,
            attributes,
        } = binding;
        if !self.observe_owner(&session.router, node, epoch) {
            return Applied::Stale;
        }
        let generation = self.generation(node);
        if let Some(slot) = self.slot_of(&session) {
            let entry = self.slots[slot as usize].as_mut().expect("indexed slot");
            if entry.epoch > epoch {
                return Applied::Stale;
            }
            let same = entry.attributes == attributes && entry.node == node;
            entry.node = node;
            entry.epoch = epoch;
            entry.generation = generation;
            if same {
                return Applied::Unchanged;
            }
            self.unindex(slot);
            if let Some(entry) = self.slots[slot as usize].as_mut() {
                entry.attributes = attributes;
            }
            self.index(slot);
            return Applied::Changed;
        }
        let entry = Entry {
            session,
            node,
            epoch,
            attributes,
            generation,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(entry);
                slot
            }
            None => {
                self.slots.push(Some(entry));
                (self.slots.len() - 1) as Slot
            }
        };
        self.index(slot);
        self.bindings += 1;
        Applied::Changed
    }

    fn unbind(&mut self, session: &SessionKey, epoch: u64) -> Applied {
        let Some(slot) = self.slot_of(session) else {
            return Applied::Unchanged;
        };
        let entry = self.slots[slot as usize].as_ref().expect("indexed slot");
        if entry.epoch > epoch {
            return Applied::Stale;
        }
        self.remove_slot(slot);
        Applied::Changed
    }

    fn remove_where(&mut self, doomed: impl Fn(&Entry) -> bool) -> Applied {
        let slots: Vec<Slot> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, e)| e.as_ref().is_some_and(&doomed))
            .map(|(i, _)| i as Slot)
            .collect();
        if slots.is_empty() {
            return Applied::Unchanged;
        }
        for slot in slots {
            self.remove_slot(slot);
        }
        Applied::Changed
    }

    fn remove_slot(&mut self, slot: Slot) {
        if self.entry(slot).is_none() {
            return;
        }
        self.unindex(slot);
        self.slots[slot as usize] = None;
        self.free.push(slot);
        self.bindings -= 1;
    }

    /// A keyed hash of `parts` for index `which`; `fold` hashes the text without regard to
    /// ASCII case.
    fn hash(&self, which: usize, parts: &[&str], fold: bool) -> u64 {
        let mut h = self.hasher.build_hasher();
        h.write_usize(which);
        for part in parts {
            h.write_usize(part.len());
            for b in part.bytes() {
                h.write_u8(if fold { b.to_ascii_lowercase() } else { b });
            }
        }
        h.finish()
    }

    /// The text keys an entry is indexed under.
    fn keys(&self, e: &Entry) -> [Option<u64>; TEXT_INDEXES] {
        let a = &e.attributes;
        let one =
            |which, v: &Option<String>, fold| v.as_deref().map(|v| self.hash(which, &[v], fold));
        let router = e.session.router.as_str();
        [
            one(LOGIN, &a.login_name, true),
            one(PRIMARY, &a.primary_user_name, true),
            one(DN, &a.dn, false),
            one(ACCOUNTING, &a.accounting_id, false),
            a.interface_name
                .as_deref()
                .map(|i| self.hash(INTERFACE, &[router, i], false)),
            Some(self.hash(SESSION_ID, &[&e.session.session_id], false)),
            Some(self.hash(SESSION, &[router, &e.session.session_id], false)),
        ]
    }

    fn index(&mut self, slot: Slot) {
        let Some(entry) = self.slots[slot as usize].take() else {
            return;
        };
        let keys = self.keys(&entry);
        for (map, key) in self.text.iter_mut().zip(keys) {
            if let Some(key) = key {
                index_insert(map, key, slot);
            }
        }
        let a = &entry.attributes;
        for addr in &a.addresses {
            index_insert(&mut self.by_address, *addr, slot);
        }
        for net in &a.prefixes {
            self.by_prefix
                .entry_or(net.trunc(), || Slots::Many(Box::default()))
                .insert(slot);
        }
        if let Some(vr) = &a.vr {
            index_insert(&mut self.by_vr, vr.clone(), slot);
        }
        self.slots[slot as usize] = Some(entry);
    }

    fn unindex(&mut self, slot: Slot) {
        let Some(entry) = self.slots[slot as usize].take() else {
            return;
        };
        let keys = self.keys(&entry);
        for (map, key) in self.text.iter_mut().zip(keys) {
            if let Some(key) = key {
                index_remove(map, &key, slot);
            }
        }
        let a = &entry.attributes;
        for addr in &a.addresses {
            index_remove(&mut self.by_address, addr, slot);
        }
        for net in &a.prefixes {
            let net = net.trunc();
            if let Some(slots) = self.by_prefix.get_mut(&net)
                && slots.remove(slot)
            {
                self.by_prefix.remove(&net);
            }
        }
        if let Some(vr) = &a.vr {
            index_remove(&mut self.by_vr, vr, slot);
        }
        self.slots[slot as usize] = Some(entry);
    }

    /// The slots under one text key whose entries `matches` accepts.
    fn text_lookup(&self, which: usize, key: u64, matches: impl Fn(&Entry) -> bool) -> Vec<Slot> {
        self.text[which]
            .get(&key)
            .map_or(&[][..], Slots::as_slice)
            .iter()
            .copied()
            .filter(|s| self.entry(*s).is_some_and(&matches))
            .collect()
    }

    fn slot_of(&self, session: &SessionKey) -> Option<Slot> {
        let key = self.hash(SESSION, &[&session.router, &session.session_id], false);
        self.text[SESSION]
            .get(&key)
            .map_or(&[][..], Slots::as_slice)
            .iter()
            .copied()
            .find(|s| self.entry(*s).is_some_and(|e| e.session == *session))
    }

    fn rebuild_pools(&mut self) {
        let mut pools: PrefixMap<Vec<Vr>> = PrefixMap::default();
        let published = self.routers.values().flat_map(|r| r.pools.iter());
        for pool in self.configured_pools.iter().chain(published) {
            let vrs = pools.entry_or(pool.prefix.trunc(), Vec::new);
            if !vrs.contains(&pool.vr) {
                vrs.push(pool.vr.clone());
            }
        }
        self.pools = pools;
    }

    // ---- lookups used by resolution ----

    pub(crate) fn entry(&self, slot: Slot) -> Option<&Entry> {
        self.slots.get(slot as usize)?.as_ref()
    }

    /// The binding of one session.
    pub fn get(&self, session: &SessionKey) -> Option<&Entry> {
        self.entry(self.slot_of(session)?)
    }

    /// Every binding, in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.slots.iter().flatten()
    }

    /// The owner of `router` and its epoch, as last published.
    pub fn owner(&self, router: &str) -> Option<(NodeId, u64)> {
        self.routers.get(router)?.owner
    }

    pub(crate) fn by_address(&self, addr: &IpAddr) -> &[Slot] {
        self.by_address.get(addr).map_or(&[], Slots::as_slice)
    }

    /// Sessions whose prefix is exactly `net`.
    pub(crate) fn by_prefix_exact(&self, net: &IpNet) -> &[Slot] {
        self.by_prefix.get(net).map_or(&[], Slots::as_slice)
    }

    /// Sessions of the longest published prefix holding `addr`.
    pub(crate) fn by_prefix_longest(&self, addr: IpAddr) -> &[Slot] {
        self.by_prefix
            .longest(addr)
            .map_or(&[], |(_, slots)| slots.as_slice())
    }

    pub(crate) fn by_login(&self, name: &str) -> Vec<Slot> {
        let key = self.hash(LOGIN, &[name], true);
        self.text_lookup(LOGIN, key, |e| same_name(&e.attributes.login_name, name))
    }

    pub(crate) fn by_primary_user(&self, name: &str) -> Vec<Slot> {
        let key = self.hash(PRIMARY, &[name], true);
        self.text_lookup(PRIMARY, key, |e| {
            same_name(&e.attributes.primary_user_name, name)
        })
    }

    pub(crate) fn by_dn(&self, dn: &str) -> Vec<Slot> {
        let key = self.hash(DN, &[dn], false);
        self.text_lookup(DN, key, |e| e.attributes.dn.as_deref() == Some(dn))
    }

    pub(crate) fn by_accounting_id(&self, id: &str) -> Vec<Slot> {
        let key = self.hash(ACCOUNTING, &[id], false);
        self.text_lookup(ACCOUNTING, key, |e| {
            e.attributes.accounting_id.as_deref() == Some(id)
        })
    }

    pub(crate) fn by_session_id(&self, id: &str) -> Vec<Slot> {
        let key = self.hash(SESSION_ID, &[id], false);
        self.text_lookup(SESSION_ID, key, |e| e.session.session_id == id)
    }

    pub(crate) fn by_interface(&self, router: &str, name: &str) -> Vec<Slot> {
        let key = self.hash(INTERFACE, &[router, name], false);
        self.text_lookup(INTERFACE, key, |e| {
            e.session.router == router && e.attributes.interface_name.as_deref() == Some(name)
        })
    }

    pub(crate) fn by_vr(&self, vr: &Vr) -> &[Slot] {
        self.by_vr.get(vr).map_or(&[], Slots::as_slice)
    }

    /// The virtual routers of the most specific pool holding `addr`.
    pub(crate) fn most_specific_pool(&self, addr: IpAddr) -> Option<(IpNet, &[Vr])> {
        self.pools
            .longest(addr)
            .map(|(net, vrs)| (net, vrs.as_slice()))
    }

    /// The virtual routers of every pool holding `addr`.
    pub(crate) fn pools_holding(&self, addr: IpAddr) -> Vec<Vr> {
        let mut vrs: Vec<Vr> = self
            .pools
            .containing(addr)
            .flat_map(|(_, vrs)| vrs.iter().cloned())
            .collect();
        vrs.sort();
        vrs.dedup();
        vrs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn binding(router: &str, id: &str, node: NodeId, epoch: u64) -> Binding {
        Binding {
            session: SessionKey::new(router, id),
            node,
            epoch,
            attributes: Attributes {
                addresses: vec!["10.0.0.5".parse().unwrap()],
                login_name: Some(format!("{id}@example.net")),
                vr: Some(Vr::default_of(router)),
                ..Attributes::default()
            },
        }
    }

    fn addr(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn bind_indexes_and_unbind_removes() {
        let mut d = Directory::default();
        assert_eq!(
            d.apply(Publication::Bind(Box::new(binding("bng1", "s1", 1, 1)))),
            Applied::Changed
        );
        assert_eq!(
            d.apply(Publication::Bind(Box::new(binding("bng1", "s1", 1, 1)))),
            Applied::Unchanged
        );
        assert_eq!(d.by_address(&addr("10.0.0.5")).len(), 1);
        assert_eq!(d.by_login("s1@example.net").len(), 1);
        assert_eq!(d.by_login("S1@Example.NET").len(), 1);
        assert_eq!(d.owner("bng1"), Some((1, 1)));
        let unbind = Publication::Unbind {
            session: SessionKey::new("bng1", "s1"),
            node: 1,
            epoch: 1,
        };
        assert_eq!(d.apply(unbind.clone()), Applied::Changed);
        assert_eq!(d.apply(unbind), Applied::Unchanged);
        assert!(d.by_address(&addr("10.0.0.5")).is_empty());
        assert!(d.by_login("s1@example.net").is_empty());
        assert!(d.by_session_id("s1").is_empty());
        assert_eq!(d.stats().bindings, 0);
    }

    #[test]
    fn a_changed_binding_is_reindexed() {
        let mut d = Directory::default();
        d.apply(Publication::Bind(Box::new(binding("bng1", "s1", 1, 1))));
        let mut b = binding("bng1", "s1", 1, 1);
        b.attributes.addresses = vec![addr("10.0.0.6")];
        b.attributes.dn = Some("uniqueID=s1,o=users".into());
        assert_eq!(d.apply(Publication::Bind(Box::new(b))), Applied::Changed);
        assert!(d.by_address(&addr("10.0.0.5")).is_empty());
        assert_eq!(d.by_address(&addr("10.0.0.6")).len(), 1);
        assert_eq!(d.by_dn("uniqueID=s1,o=users").len(), 1);
    }

    #[test]
    fn a_stale_publication_never_overwrites_a_newer_owner() {
        let mut d = Directory::default();
        d.apply(Publication::Bind(Box::new(binding("bng1", "s1", 1, 1))));
        // Node 2 takes bng1 over at epoch 2 and the router replays s1.
        assert_eq!(
            d.apply(Publication::Bind(Box::new(binding("bng1", "s1", 2, 2)))),
            Applied::Changed
        );
        assert_eq!(d.get(&SessionKey::new("bng1", "s1")).unwrap().node, 2);
        // The old owner's late publications change nothing.
        assert_eq!(
            d.apply(Publication::Bind(Box::new(binding("bng1", "s1", 1, 1)))),
            Applied::Stale
        );
        assert_eq!(
            d.apply(Publication::Bind(Box::new(binding("bng1", "s2", 1, 1)))),
            Applied::Stale
        );
        let late_unbind = Publication::Unbind {
            session: SessionKey::new("bng1", "s1"),
            node: 1,
            epoch: 1,
        };
        assert_eq!(d.apply(late_unbind), Applied::Stale);
        let late_owner = Publication::Owner {
            router: "bng1".into(),
            node: 1,
            epoch: 1,
        };
        assert_eq!(d.apply(late_owner), Applied::Stale);
        assert_eq!(d.owner("bng1"), Some((2, 2)));
        assert_eq!(d.get(&SessionKey::new("bng1", "s1")).unwrap().node, 2);
    }

    #[test]
    fn synced_drops_what_the_router_did_not_replay() {
        let mut d = Directory::default();
        d.apply(Publication::Bind(Box::new(binding("bng1", "s1", 1, 1))));
        d.apply(Publication::Bind(Box::new(binding("bng1", "s2", 1, 1))));
        d.apply(Publication::Bind(Box::new(binding("bng2", "s3", 1, 1))));
        d.apply(Publication::Owner {
            router: "bng1".into(),
            node: 2,
            epoch: 2,
        });
        d.apply(Publication::Bind(Box::new(binding("bng1", "s1", 2, 2))));
        // Until the resync ends, s2 still resolves (to the router's new owner).
        assert!(d.get(&SessionKey::new("bng1", "s2")).is_some());
        let synced = Publication::Synced {
            router: "bng1".into(),
            node: 2,
            epoch: 2,
        };
        assert_eq!(d.apply(synced), Applied::Changed);
        assert!(d.get(&SessionKey::new("bng1", "s2")).is_none());
        assert!(d.get(&SessionKey::new("bng1", "s1")).is_some());
        assert!(d.get(&SessionKey::new("bng2", "s3")).is_some());
    }

    #[test]
    fn a_replay_drops_the_bindings_it_did_not_repeat() {
        let mut d = Directory::default();
        d.apply(Publication::Bind(Box::new(binding("bng1", "s1", 1, 1))));
        d.apply(Publication::Bind(Box::new(binding("bng1", "s2", 1, 1))));
        d.apply(Publication::Bind(Box::new(binding("bng2", "s3", 2, 1))));
        d.apply(Publication::ReplayStart { node: 1 });
        d.apply(Publication::Bind(Box::new(binding("bng1", "s2", 1, 1))));
        d.apply(Publication::ReplayEnd { node: 1 });
        assert!(d.get(&SessionKey::new("bng1", "s1")).is_none());
        assert!(d.get(&SessionKey::new("bng1", "s2")).is_some());
        assert!(
            d.get(&SessionKey::new("bng2", "s3")).is_some(),
            "other nodes' stay"
        );
    }

    #[test]
    fn longest_prefix_and_most_specific_pool() {
        let net = |s: &str| s.parse::<IpNet>().unwrap();
        let mut d = Directory::new(vec![
            Pool {
                prefix: net("10.0.0.0/8"),
                vr: Vr::default_of("bng1"),
            },
            Pool {
                prefix: net("10.1.0.0/16"),
                vr: Vr::new("cust1", "bng2"),
            },
        ]);
        assert_eq!(
            d.most_specific_pool(addr("10.1.2.3")).unwrap().1,
            [Vr::new("cust1", "bng2")]
        );
        assert_eq!(
            d.most_specific_pool(addr("10.2.2.3")).unwrap().1,
            [Vr::default_of("bng1")]
        );
        assert_eq!(d.pools_holding(addr("10.1.2.3")).len(), 2);
        assert!(d.most_specific_pool(addr("192.0.2.1")).is_none());
        let mut b = binding("bng1", "s1", 1, 1);
        b.attributes.prefixes = vec![net("2001:db8:1::/48"), net("2001:db8:1:7::/64")];
        d.apply(Publication::Bind(Box::new(b)));
        let mut b = binding("bng1", "s2", 1, 1);
        b.attributes.prefixes = vec![net("2001:db8::/32")];
        d.apply(Publication::Bind(Box::new(b)));
        let slot_of = |d: &Directory, id: &str| d.slot_of(&SessionKey::new("bng1", id)).unwrap();
        assert_eq!(
            d.by_prefix_longest(addr("2001:db8:1:7::9")),
            [slot_of(&d, "s1")]
        );
        assert_eq!(
            d.by_prefix_longest(addr("2001:db8:2::1")),
            [slot_of(&d, "s2")]
        );
        assert!(d.by_prefix_longest(addr("2001:db9::1")).is_empty());
        assert_eq!(
            d.by_prefix_exact(&net("2001:db8::/32")),
            [slot_of(&d, "s2")]
        );
        // Published pools join configured ones; a newer publication replaces them.
        d.apply(Publication::Pools {
            router: "bng3".into(),
            node: 3,
            epoch: 1,
            pools: vec![Pool {
                prefix: net("10.1.2.0/24"),
                vr: Vr::default_of("bng3"),
            }],
        });
        assert_eq!(
            d.most_specific_pool(addr("10.1.2.3")).unwrap().1,
            [Vr::default_of("bng3")]
        );
        d.apply(Publication::Pools {
            router: "bng3".into(),
            node: 3,
            epoch: 1,
            pools: vec![],
        });
        assert_eq!(
            d.most_specific_pool(addr("10.1.2.3")).unwrap().1,
            [Vr::new("cust1", "bng2")]
        );
    }

    #[test]
    fn slots_are_reused() {
        let mut d = Directory::default();
        for round in 0..3 {
            for i in 0..100 {
                d.apply(Publication::bind(binding(
                    "bng1",
                    &format!("s{i}"),
                    1,
                    round + 1,
                )));
            }
            for i in 0..100 {
                d.apply(Publication::Unbind {
                    session: SessionKey::new("bng1", format!("s{i}")),
                    node: 1,
                    epoch: round + 1,
                });
            }
        }
        assert_eq!(d.slots.len(), 100);
        assert!(d.by_address.is_empty() && d.by_vr.is_empty());
        assert!(d.text.iter().all(HashMap::is_empty));
    }
}
