//! The directory's indexes: compact multimaps from a key to the slots of the bindings holding it.
//!
//! A key held by one binding (the common case) costs its index one `u32` cell, the slot itself.
//! A key held by several (a shared address, a VR, a login used by many sessions) has a cell
//! naming a group, a list of slots kept in [`Groups`]: adding a duplicate never lengthens a
//! hash probe, however many sessions share the key.
//!
//! [`KeyIndex`] stores no key at all: the caller hashes the key it looks for, and compares or
//! re-hashes a candidate by reading the key from the binding in the cell's first slot. That is
//! what keeps a million bindings' text indexes at a few bytes per binding each.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

use hashbrown::HashTable;

pub(super) type Slot = u32;

/// A slot, or (with this bit) a group.
const GROUP: u32 = 1 << 31;

/// The largest slot a cell can hold.
pub(super) const MAX_SLOT: Slot = GROUP - 1;

/// Slot lists of the keys that several bindings share.
#[derive(Debug, Default)]
pub(super) struct Groups {
    lists: Vec<Vec<Slot>>,
    free: Vec<u32>,
}

impl Groups {
    fn make(&mut self, slots: Vec<Slot>) -> u32 {
        match self.free.pop() {
            Some(g) => {
                self.lists[g as usize] = slots;
                g | GROUP
            }
            None => {
                self.lists.push(slots);
                (self.lists.len() - 1) as u32 | GROUP
            }
        }
    }

    /// The slots of a cell.
    pub(super) fn slots<'a>(&'a self, cell: &'a u32) -> &'a [Slot] {
        if cell & GROUP == 0 {
            std::slice::from_ref(cell)
        } else {
            &self.lists[(cell & !GROUP) as usize]
        }
    }

    fn first(&self, cell: u32) -> Slot {
        self.slots(&cell)[0]
    }

    /// Adds `slot` to a cell; the caller adds a slot under a key once (a search for
    /// duplicates would cost a VR of a hundred thousand sessions as much on each login).
    fn add(&mut self, cell: &mut u32, slot: Slot) {
        if *cell & GROUP == 0 {
            if *cell != slot {
                *cell = self.make(vec![*cell, slot]);
            }
        } else {
            self.lists[(*cell & !GROUP) as usize].push(slot);
        }
    }

    /// Takes `slot` out of a cell; true when the cell is left empty.
    fn take(&mut self, cell: &mut u32, slot: Slot) -> bool {
        if *cell & GROUP == 0 {
            return *cell == slot;
        }
        let g = *cell & !GROUP;
        let list = &mut self.lists[g as usize];
        if let Some(i) = list.iter().position(|s| *s == slot) {
            list.swap_remove(i);
        }
        if let [only] = list.as_slice() {
            *cell = *only;
            self.lists[g as usize] = Vec::new();
            self.free.push(g);
        }
        false
    }

    /// How many groups are in use.
    #[cfg(test)]
    pub(super) fn live(&self) -> usize {
        self.lists.len() - self.free.len()
    }
}

/// A multimap whose keys live in the bindings, not in the index.
#[derive(Debug, Default)]
pub(super) struct KeyIndex {
    table: HashTable<u32>,
}

impl KeyIndex {
    /// Adds `slot` under the key hashing to `hash`; `same(s)` tells whether the binding in
    /// slot `s` has that key, `rehash(s)` hashes the key of the binding in slot `s`.
    pub(super) fn insert(
        &mut self,
        groups: &mut Groups,
        hash: u64,
        slot: Slot,
        same: impl Fn(Slot) -> bool,
        rehash: impl Fn(Slot) -> u64,
    ) {
        let found = self.table.find_mut(hash, |c| same(groups.first(*c)));
        match found {
            Some(cell) => groups.add(cell, slot),
            None => {
                self.table
                    .insert_unique(hash, slot, |c| rehash(groups.first(*c)));
            }
        }
    }

    /// Removes `slot` from the key hashing to `hash`.
    pub(super) fn remove(
        &mut self,
        groups: &mut Groups,
        hash: u64,
        slot: Slot,
        same: impl Fn(Slot) -> bool,
    ) {
        if let Ok(mut entry) = self.table.find_entry(hash, |c| same(groups.first(*c)))
            && groups.take(entry.get_mut(), slot)
        {
            entry.remove();
        }
    }

    /// The slots under the key hashing to `hash`.
    pub(super) fn get<'a>(
        &'a self,
        groups: &'a Groups,
        hash: u64,
        same: impl Fn(Slot) -> bool,
    ) -> &'a [Slot] {
        self.table
            .find(hash, |c| same(groups.first(*c)))
            .map_or(&[], |cell| groups.slots(cell))
    }

    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

/// A multimap that stores its (small, fixed-size) keys.
#[derive(Debug)]
pub(super) struct ValueIndex<K, S> {
    map: HashMap<K, u32, S>,
}

impl<K, S: Default> Default for ValueIndex<K, S> {
    fn default() -> Self {
        ValueIndex {
            map: HashMap::default(),
        }
    }
}

impl<K: Hash + Eq, S: BuildHasher> ValueIndex<K, S> {
    pub(super) fn insert(&mut self, groups: &mut Groups, key: K, slot: Slot) {
        match self.map.get_mut(&key) {
            Some(cell) => groups.add(cell, slot),
            None => {
                self.map.insert(key, slot);
            }
        }
    }

    pub(super) fn remove(&mut self, groups: &mut Groups, key: &K, slot: Slot) {
        if let Some(cell) = self.map.get_mut(key)
            && groups.take(cell, slot)
        {
            self.map.remove(key);
        }
    }

    pub(super) fn get<'a>(&'a self, groups: &'a Groups, key: &K) -> &'a [Slot] {
        self.map.get(key).map_or(&[], |cell| groups.slots(cell))
    }

    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::RandomState;

    /// A key index over `keys[slot]`.
    fn with(keys: &[&str]) -> (KeyIndex, Groups, RandomState) {
        let state = RandomState::new();
        let mut index = KeyIndex::default();
        let mut groups = Groups::default();
        for (slot, key) in keys.iter().enumerate() {
            index.insert(
                &mut groups,
                state.hash_one(key),
                slot as Slot,
                |s| keys[s as usize] == *key,
                |s| state.hash_one(keys[s as usize]),
            );
        }
        (index, groups, state)
    }

    #[test]
    fn shared_keys_group_and_ungroup() {
        let keys = ["a", "b", "a", "a", "c"];
        let (mut index, mut groups, state) = with(&keys);
        let get = |index: &KeyIndex, groups: &Groups, k: &str| {
            let mut v = index
                .get(groups, state.hash_one(k), |s| keys[s as usize] == k)
                .to_vec();
            v.sort();
            v
        };
        assert_eq!(get(&index, &groups, "a"), [0, 2, 3]);
        assert_eq!(get(&index, &groups, "b"), [1]);
        assert!(get(&index, &groups, "z").is_empty());
        assert_eq!(groups.live(), 1);
        for slot in [0, 3] {
            index.remove(&mut groups, state.hash_one("a"), slot, |s| {
                keys[s as usize] == "a"
            });
        }
        assert_eq!(get(&index, &groups, "a"), [2]);
        assert_eq!(
            groups.live(),
            0,
            "a group left with one slot is a plain cell"
        );
        index.remove(&mut groups, state.hash_one("a"), 2, |s| {
            keys[s as usize] == "a"
        });
        assert!(get(&index, &groups, "a").is_empty());
    }

    #[test]
    fn many_bindings_sharing_one_key_stay_cheap() {
        let keys: Vec<&str> = (0..20_000)
            .map(|i| if i % 2 == 0 { "guest" } else { "x" })
            .collect();
        let (index, groups, state) = with(&keys);
        let found = index.get(&groups, state.hash_one("guest"), |s| {
            keys[s as usize] == "guest"
        });
        assert_eq!(found.len(), 10_000);
        assert_eq!(groups.live(), 2);
    }
}
