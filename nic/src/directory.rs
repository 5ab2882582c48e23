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

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;

use foldhash::quality::RandomState;
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

mod index;
mod packed;

use index::{Groups, KeyIndex, MAX_SLOT, Slot, ValueIndex};
pub use packed::BindingRef;

/// A stored binding: its text packed in one allocation (see [`packed`]).
#[derive(Debug)]
struct Stored {
    packed: Box<[u8]>,
    node: NodeId,
    epoch: u64,
    generation: u32,
}

impl Stored {
    fn view(&self) -> BindingRef<'_> {
        BindingRef::new(&self.packed, self.node, self.epoch)
    }
}

/// The sessions of one published prefix (prefixes are few beside addresses and names).
#[derive(Debug, Clone, Default)]
struct Slots(Vec<Slot>);

// The key indexes. Each finds the bindings by a key read from the bindings themselves: the
// text is kept once, in the packed binding.
const LOGIN: usize = 0;
const PRIMARY: usize = 1;
const DN: usize = 2;
const ACCOUNTING: usize = 3;
/// Router and interface name.
const INTERFACE: usize = 4;
/// Session-Id alone (a session is named by router and Session-Id: the router is compared).
const SESSION_ID: usize = 5;
/// VR name and router.
const VR: usize = 6;
const KEYS: usize = 7;

/// Login and user names are compared without regard to ASCII case.
fn folds(which: usize) -> bool {
    matches!(which, LOGIN | PRIMARY)
}

/// A key of an index: its text in one or two parts, as bytes.
type Key<'a> = [&'a [u8]; 2];

/// The key a binding is indexed under in index `which`, if any.
fn key_of<'a>(which: usize, b: &BindingRef<'a>) -> Option<Key<'a>> {
    let one = |field| b.raw(field).map(|t| [t, &[][..]]);
    match which {
        LOGIN => one(packed::LOGIN),
        PRIMARY => one(packed::PRIMARY),
        DN => one(packed::DN),
        ACCOUNTING => one(packed::ACCOUNTING),
        INTERFACE => Some([b.raw(packed::ROUTER)?, b.raw(packed::INTERFACE)?]),
        SESSION_ID => one(packed::SESSION_ID),
        _ => Some([b.raw(packed::VR_NAME)?, b.raw(packed::VR_ROUTER)?]),
    }
}

fn same_key(which: usize, have: Key<'_>, want: Key<'_>) -> bool {
    if folds(which) {
        have[0].eq_ignore_ascii_case(want[0]) && have[1].eq_ignore_ascii_case(want[1])
    } else {
        have == want
    }
}

/// A keyed hash of a key of index `which`.
fn key_hash(hasher: &RandomState, which: usize, key: Key<'_>) -> u64 {
    let mut h = hasher.build_hasher();
    h.write_usize(which);
    let fold = folds(which);
    for part in key {
        h.write_usize(part.len());
        if fold {
            let mut buf = [0u8; 64];
            for chunk in part.chunks(buf.len()) {
                let lower = &mut buf[..chunk.len()];
                lower.copy_from_slice(chunk);
                lower.make_ascii_lowercase();
                h.write(lower);
            }
        } else {
            h.write(part);
        }
    }
    h.finish()
}

/// The bindings, read by slot, for the indexes' comparisons.
fn view(slots: &[Option<Stored>], slot: Slot) -> Option<BindingRef<'_>> {
    slots.get(slot as usize)?.as_ref().map(Stored::view)
}

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
    slots: Vec<Option<Stored>>,
    free: Vec<Slot>,
    /// Keys the index hashes (seeded at random per directory, so that no one can aim at
    /// collisions).
    hasher: RandomState,
    keys: [KeyIndex; KEYS],
    groups: Groups,
    bindings: usize,
    by_v4: ValueIndex<u32, RandomState>,
    by_v6: ValueIndex<u128, RandomState>,
    by_prefix: PrefixMap<Slots>,
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
                self.remove_where(|s, b| s.epoch < epoch && b.router() == router)
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
                self.remove_where(|s, _| s.node == node && s.generation < current)
            }
        }
    }

    /// Applies one publication and notes in `change` what answers it may have altered.
    pub fn apply_noting(&mut self, publication: Publication, change: &mut Invalidation) -> Applied {
        let mut noted = Invalidation::default();
        match &publication {
            Publication::Bind(b) => {
                if let Some(old) = self.get(&b.session) {
                    noted.binding(&old.session(), &old.attributes());
                }
                noted.binding(&b.session, &b.attributes);
            }
            Publication::Unbind { session, .. } => {
                if let Some(old) = self.get(session) {
                    noted.binding(&old.session(), &old.attributes());
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
        let packed = packed::pack(&session, &attributes);
        if let Some(slot) = self.slot_of(&session) {
            let stored = self.slots[slot as usize].as_mut().expect("indexed slot");
            if stored.epoch > epoch {
                return Applied::Stale;
            }
            let same = stored.packed == packed && stored.node == node;
            stored.node = node;
            stored.epoch = epoch;
            stored.generation = generation;
            if same {
                return Applied::Unchanged;
            }
            self.unindex(slot);
            if let Some(stored) = self.slots[slot as usize].as_mut() {
                stored.packed = packed;
            }
            self.index(slot);
            return Applied::Changed;
        }
        let stored = Stored {
            packed,
            node,
            epoch,
            generation,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(stored);
                slot
            }
            // Two thousand million bindings: memory ends long before.
            None if self.slots.len() > MAX_SLOT as usize => return Applied::Unchanged,
            None => {
                self.slots.push(Some(stored));
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
        let stored = self.slots[slot as usize].as_ref().expect("indexed slot");
        if stored.epoch > epoch {
            return Applied::Stale;
        }
        self.remove_slot(slot);
        Applied::Changed
    }

    fn remove_where(&mut self, doomed: impl Fn(&Stored, BindingRef<'_>) -> bool) -> Applied {
        let slots: Vec<Slot> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.as_ref().is_some_and(|s| doomed(s, s.view())))
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

    /// Adds slot `slot`'s binding (already stored) to every index.
    fn index(&mut self, slot: Slot) {
        self.reindex(slot, true);
    }

    /// Takes slot `slot`'s binding (still stored) out of every index.
    fn unindex(&mut self, slot: Slot) {
        self.reindex(slot, false);
    }

    fn reindex(&mut self, slot: Slot, add: bool) {
        let Directory {
            slots,
            hasher,
            keys,
            groups,
            by_v4,
            by_v6,
            by_prefix,
            ..
        } = self;
        let Some(b) = view(slots, slot) else {
            return;
        };
        for (which, index) in keys.iter_mut().enumerate() {
            let Some(key) = key_of(which, &b) else {
                continue;
            };
            let hash = key_hash(hasher, which, key);
            let same = |s| {
                view(slots, s)
                    .and_then(|o| key_of(which, &o))
                    .is_some_and(|k| same_key(which, k, key))
            };
            if add {
                let rehash = |s| {
                    view(slots, s)
                        .and_then(|o| key_of(which, &o))
                        .map_or(0, |k| key_hash(hasher, which, k))
                };
                index.insert(groups, hash, slot, same, rehash);
            } else {
                index.remove(groups, hash, slot, same);
            }
        }
        for (i, addr) in b.addresses().enumerate() {
            // An address listed twice is indexed once.
            if b.addresses().take(i).any(|a| a == addr) {
                continue;
            }
            match (addr, add) {
                (IpAddr::V4(a), true) => by_v4.insert(groups, a.to_bits(), slot),
                (IpAddr::V4(a), false) => by_v4.remove(groups, &a.to_bits(), slot),
                (IpAddr::V6(a), true) => by_v6.insert(groups, a.to_bits(), slot),
                (IpAddr::V6(a), false) => by_v6.remove(groups, &a.to_bits(), slot),
            }
        }
        for net in b.prefixes() {
            let net = net.trunc();
            if add {
                let slots = &mut by_prefix.entry_or(net, Slots::default).0;
                if !slots.contains(&slot) {
                    slots.push(slot);
                }
            } else if let Some(Slots(list)) = by_prefix.get_mut(&net) {
                list.retain(|s| *s != slot);
                if list.is_empty() {
                    by_prefix.remove(&net);
                }
            }
        }
    }

    /// The slots under one key of index `which`.
    fn lookup(&self, which: usize, key: [&str; 2]) -> &[Slot] {
        let key = [key[0].as_bytes(), key[1].as_bytes()];
        let hash = key_hash(&self.hasher, which, key);
        let same = |s| {
            view(&self.slots, s)
                .and_then(|o| key_of(which, &o))
                .is_some_and(|k| same_key(which, k, key))
        };
        self.keys[which].get(&self.groups, hash, same)
    }

    fn slot_of(&self, session: &SessionKey) -> Option<Slot> {
        self.lookup(SESSION_ID, [&session.session_id, ""])
            .iter()
            .copied()
            .find(|s| self.entry(*s).is_some_and(|b| b.router() == session.router))
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

    /// The binding in one slot.
    pub fn entry(&self, slot: Slot) -> Option<BindingRef<'_>> {
        view(&self.slots, slot)
    }

    /// The binding of one session.
    pub fn get(&self, session: &SessionKey) -> Option<BindingRef<'_>> {
        self.entry(self.slot_of(session)?)
    }

    /// Every binding, in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = BindingRef<'_>> + '_ {
        self.slots.iter().flatten().map(Stored::view)
    }

    /// The owner of `router` and its epoch, as last published.
    pub fn owner(&self, router: &str) -> Option<(NodeId, u64)> {
        self.routers.get(router)?.owner
    }

    pub(crate) fn by_address(&self, addr: &IpAddr) -> &[Slot] {
        match addr {
            IpAddr::V4(a) => self.by_v4.get(&self.groups, &a.to_bits()),
            IpAddr::V6(a) => self.by_v6.get(&self.groups, &a.to_bits()),
        }
    }

    /// Sessions whose prefix is exactly `net`.
    pub(crate) fn by_prefix_exact(&self, net: &IpNet) -> &[Slot] {
        self.by_prefix.get(net).map_or(&[], |s| s.0.as_slice())
    }

    /// Sessions of the longest published prefix holding `addr`.
    pub(crate) fn by_prefix_longest(&self, addr: IpAddr) -> &[Slot] {
        self.by_prefix
            .longest(addr)
            .map_or(&[], |(_, slots)| slots.0.as_slice())
    }

    pub(crate) fn by_login(&self, name: &str) -> &[Slot] {
        self.lookup(LOGIN, [name, ""])
    }

    pub(crate) fn by_primary_user(&self, name: &str) -> &[Slot] {
        self.lookup(PRIMARY, [name, ""])
    }

    pub(crate) fn by_dn(&self, dn: &str) -> &[Slot] {
        self.lookup(DN, [dn, ""])
    }

    pub(crate) fn by_accounting_id(&self, id: &str) -> &[Slot] {
        self.lookup(ACCOUNTING, [id, ""])
    }

    pub(crate) fn by_session_id(&self, id: &str) -> &[Slot] {
        self.lookup(SESSION_ID, [id, ""])
    }

    pub(crate) fn by_interface(&self, router: &str, name: &str) -> &[Slot] {
        self.lookup(INTERFACE, [router, name])
    }

    pub(crate) fn by_vr(&self, vr: &Vr) -> &[Slot] {
        self.lookup(VR, [&vr.name, &vr.router])
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
        assert!(d.by_v4.is_empty() && d.by_v6.is_empty());
        assert!(d.keys.iter().all(KeyIndex::is_empty));
        assert_eq!(d.groups.live(), 0);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Whatever the binds and unbinds, every index answers what a scan of the bindings
        /// answers (keys shared by many sessions, changed and removed ones included).
        #[test]
        fn indexes_agree_with_a_scan(
            ops in proptest::collection::vec(
                (0u8..24, proptest::option::of(0u8..4), 0u8..5, 0u8..3, proptest::bool::ANY),
                1..120,
            )
        ) {
            let mut d = Directory::default();
            for (id, login, ip, vr, bind) in ops {
                let router = format!("bng{}", id % 2);
                let session = SessionKey::new(&router, format!("s{id}"));
                if bind {
                    let mut b = binding(&router, &format!("s{id}"), 1, 1);
                    b.attributes.login_name = login.map(|l| format!("User{l}@isp"));
                    b.attributes.accounting_id = b.attributes.login_name.clone();
                    b.attributes.addresses = vec![addr(&format!("10.0.0.{ip}")), addr("10.9.9.9")];
                    b.attributes.vr = Some(Vr::new(format!("vr{vr}"), &router));
                    d.apply(Publication::bind(b));
                } else {
                    d.apply(Publication::Unbind { session, node: 1, epoch: 1 });
                }
                let scan = |keep: &dyn Fn(&Binding) -> bool| {
                    let mut v: Vec<SessionKey> =
                        d.entries().map(|b| b.to_binding()).filter(|b| keep(b)).map(|b| b.session).collect();
                    v.sort();
                    v
                };
                let found = |slots: &[Slot]| {
                    let mut v: Vec<SessionKey> =
                        slots.iter().map(|s| d.entry(*s).unwrap().session()).collect();
                    v.sort();
                    v
                };
                for l in 0..4 {
                    let name = format!("user{l}@ISP");
                    let want = scan(&|b| b.attributes.login_name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(&name)));
                    proptest::prop_assert_eq!(found(d.by_login(&name)), want.clone());
                    proptest::prop_assert_eq!(found(d.by_accounting_id(&format!("User{l}@isp"))), want);
                }
                for ip in 0..5 {
                    let a = addr(&format!("10.0.0.{ip}"));
                    proptest::prop_assert_eq!(found(d.by_address(&a)), scan(&|b| b.attributes.addresses.contains(&a)));
                }
                proptest::prop_assert_eq!(found(d.by_address(&addr("10.9.9.9"))), scan(&|_| true));
                for vr in 0..3 {
                    for r in 0..2 {
                        let vr = Vr::new(format!("vr{vr}"), format!("bng{r}"));
                        proptest::prop_assert_eq!(found(d.by_vr(&vr)), scan(&|b| b.attributes.vr.as_ref() == Some(&vr)));
                    }
                }
                for id in 0..24 {
                    let key = SessionKey::new(format!("bng{}", id % 2), format!("s{id}"));
                    proptest::prop_assert_eq!(d.get(&key).is_some(), !scan(&|b| b.session == key).is_empty());
                }
                proptest::prop_assert_eq!(d.stats().bindings, d.entries().count());
            }
        }
    }
}
