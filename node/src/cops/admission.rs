//! Call admission control for SBCs: budgets of calls and bandwidth per PEP or per realm, what
//! each admitted call holds, admit/deny decisions and releases. Plain state, no I/O; the COPS
//! drivers share one instance, so a PEP that reconnects (same PEPID) finds its calls again.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

pub use crate::config::Budget;

/// Whose budget a call is taken from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BudgetKey {
    Realm(String),
    Pep(String),
}

impl std::fmt::Display for BudgetKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BudgetKey::Realm(r) => write!(f, "realm {r}"),
            BudgetKey::Pep(p) => write!(f, "pep {p}"),
        }
    }
}

/// A call asking for admission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallAsk {
    pub pepid: String,
    pub client_type: u16,
    pub handle: Bytes,
    pub call_id: String,
    pub realm: String,
    pub bandwidth_kbps: u32,
}

/// The outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Admit { key: BudgetKey },
    Deny { key: BudgetKey, reason: String },
}

/// A budget and what is in use, for the management API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetStatus {
    pub key: BudgetKey,
    pub budget: Budget,
    pub calls: u32,
    pub bandwidth_kbps: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct InUse {
    calls: u32,
    bandwidth_kbps: u64,
}

#[derive(Debug, Clone)]
struct Held {
    key: BudgetKey,
    bandwidth_kbps: u64,
    call_id: String,
}

/// The admission state of the node.
#[derive(Debug, Default)]
pub struct Admission {
    realms: BTreeMap<String, Budget>,
    peps: BTreeMap<String, Budget>,
    default: Budget,
    in_use: HashMap<BudgetKey, InUse>,
    calls: HashMap<(String, u16, Bytes), Held>,
}

impl Admission {
    /// Budgets per realm and per PEPID; `default` applies to a PEP with none of its own.
    pub fn new(
        realms: BTreeMap<String, Budget>,
        peps: BTreeMap<String, Budget>,
        default: Budget,
    ) -> Admission {
        Admission {
            realms,
            peps,
            default,
            ..Default::default()
        }
    }

    fn key_and_budget(&self, pepid: &str, realm: &str) -> (BudgetKey, Budget) {
        if let Some(b) = self.realms.get(realm) {
            return (BudgetKey::Realm(realm.to_owned()), *b);
        }
        let b = self.peps.get(pepid).copied().unwrap_or(self.default);
        (BudgetKey::Pep(pepid.to_owned()), b)
    }

    /// Admits the call if its budget has room, holding its share until [`Admission::release`];
    /// a new request on a handle already holding a call replaces it.
    pub fn admit(&mut self, ask: &CallAsk) -> Verdict {
        let handle_key = (ask.pepid.clone(), ask.client_type, ask.handle.clone());
        let previous = self.calls.remove(&handle_key);
        if let Some(p) = &previous {
            self.give_back(p);
        }
        let (key, budget) = self.key_and_budget(&ask.pepid, &ask.realm);
        let used = self.in_use.get(&key).copied().unwrap_or_default();
        let bandwidth = u64::from(ask.bandwidth_kbps);
        let reason = if budget.calls > 0 && used.calls >= budget.calls {
            Some(format!(
                "{key}: {} of {} calls in use",
                used.calls, budget.calls
            ))
        } else if budget.bandwidth_kbps > 0
            && used.bandwidth_kbps + bandwidth > budget.bandwidth_kbps
        {
            Some(format!(
                "{key}: {} + {bandwidth} kbit/s exceeds {} kbit/s",
                used.bandwidth_kbps, budget.bandwidth_kbps
            ))
        } else {
            None
        };
        if let Some(reason) = reason {
            // A refused modification keeps the call as it was.
            if let Some(p) = previous {
                self.take(&p);
                self.calls.insert(handle_key, p);
            }
            return Verdict::Deny { key, reason };
        }
        let held = Held {
            key: key.clone(),
            bandwidth_kbps: bandwidth,
            call_id: ask.call_id.clone(),
        };
        self.take(&held);
        self.calls.insert(handle_key, held);
        Verdict::Admit { key }
    }

    fn take(&mut self, h: &Held) {
        let u = self.in_use.entry(h.key.clone()).or_default();
        u.calls += 1;
        u.bandwidth_kbps += h.bandwidth_kbps;
    }

    fn give_back(&mut self, h: &Held) {
        if let Some(u) = self.in_use.get_mut(&h.key) {
            u.calls = u.calls.saturating_sub(1);
            u.bandwidth_kbps = u.bandwidth_kbps.saturating_sub(h.bandwidth_kbps);
        }
    }

    /// Releases the call held by a handle (DRQ); returns its call id.
    pub fn release(&mut self, pepid: &str, client_type: u16, handle: &Bytes) -> Option<String> {
        let h = self
            .calls
            .remove(&(pepid.to_owned(), client_type, handle.clone()))?;
        self.give_back(&h);
        Some(h.call_id)
    }

    /// Calls held by a PEP.
    pub fn calls_of(&self, pepid: &str) -> usize {
        self.calls.keys().filter(|(p, _, _)| p == pepid).count()
    }

    /// Every configured budget (and every key in use) with its current use.
    pub fn status(&self) -> Vec<BudgetStatus> {
        let mut keys: Vec<(BudgetKey, Budget)> = self
            .realms
            .iter()
            .map(|(r, b)| (BudgetKey::Realm(r.clone()), *b))
            .chain(
                self.peps
                    .iter()
                    .map(|(p, b)| (BudgetKey::Pep(p.clone()), *b)),
            )
            .collect();
        for k in self.in_use.keys() {
            if !keys.iter().any(|(x, _)| x == k)
                && let BudgetKey::Pep(_) = k
            {
                keys.push((k.clone(), self.default));
            }
        }
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        keys.into_iter()
            .map(|(key, budget)| {
                let u = self.in_use.get(&key).copied().unwrap_or_default();
                BudgetStatus {
                    key,
                    budget,
                    calls: u.calls,
                    bandwidth_kbps: u.bandwidth_kbps,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(handle: u8, realm: &str, kbps: u32) -> CallAsk {
        CallAsk {
            pepid: "sbc1".into(),
            client_type: 0x800A,
            handle: Bytes::from(vec![0, 0, 0, handle]),
            call_id: format!("call-{handle}"),
            realm: realm.into(),
            bandwidth_kbps: kbps,
        }
    }

    fn admission() -> Admission {
        Admission::new(
            BTreeMap::from([(
                "voice.example".to_string(),
                Budget {
                    calls: 2,
                    bandwidth_kbps: 0,
                },
            )]),
            BTreeMap::from([(
                "sbc1".to_string(),
                Budget {
                    calls: 0,
                    bandwidth_kbps: 300,
                },
            )]),
            Budget {
                calls: 1,
                bandwidth_kbps: 0,
            },
        )
    }

    #[test]
    fn the_call_budget_admits_up_to_its_edge_and_release_frees_room() {
        let mut a = admission();
        assert!(matches!(
            a.admit(&ask(1, "voice.example", 64)),
            Verdict::Admit { .. }
        ));
        assert!(matches!(
            a.admit(&ask(2, "voice.example", 64)),
            Verdict::Admit { .. }
        ));
        let Verdict::Deny { key, reason } = a.admit(&ask(3, "voice.example", 64)) else {
            panic!("third call admitted");
        };
        assert_eq!(key, BudgetKey::Realm("voice.example".into()));
        assert!(reason.contains("2 of 2"), "{reason}");
        assert_eq!(
            a.release("sbc1", 0x800A, &Bytes::from(vec![0, 0, 0, 1])),
            Some("call-1".into())
        );
        assert!(matches!(
            a.admit(&ask(3, "voice.example", 64)),
            Verdict::Admit { .. }
        ));
    }

    #[test]
    fn the_bandwidth_budget_of_a_pep_is_checked_before_admitting() {
        let mut a = admission();
        assert!(matches!(a.admit(&ask(1, "", 200)), Verdict::Admit { .. }));
        assert!(matches!(a.admit(&ask(2, "", 100)), Verdict::Admit { .. }));
        assert!(matches!(a.admit(&ask(3, "", 1)), Verdict::Deny { .. }));
        let s = a.status();
        let pep = s
            .iter()
            .find(|s| s.key == BudgetKey::Pep("sbc1".into()))
            .unwrap();
        assert_eq!((pep.calls, pep.bandwidth_kbps), (2, 300));
    }

    #[test]
    fn a_modification_replaces_the_held_share_and_a_refused_one_keeps_it() {
        let mut a = admission();
        assert!(matches!(a.admit(&ask(1, "", 100)), Verdict::Admit { .. }));
        // Same handle, more bandwidth: re-admitted with the new share.
        assert!(matches!(a.admit(&ask(1, "", 300)), Verdict::Admit { .. }));
        // Too much: refused, the 300 kbit/s call stays.
        assert!(matches!(a.admit(&ask(1, "", 301)), Verdict::Deny { .. }));
        let s = a.status();
        let pep = s
            .iter()
            .find(|s| s.key == BudgetKey::Pep("sbc1".into()))
            .unwrap();
        assert_eq!((pep.calls, pep.bandwidth_kbps), (1, 300));
        assert_eq!(a.calls_of("sbc1"), 1);
    }

    #[test]
    fn a_pep_without_a_budget_gets_the_default_one() {
        let mut a = admission();
        let mut other = ask(1, "", 10);
        other.pepid = "sbc2".into();
        assert!(matches!(a.admit(&other), Verdict::Admit { .. }));
        other.handle = Bytes::from_static(&[9]);
        assert!(matches!(a.admit(&other), Verdict::Deny { .. }));
        assert_eq!(a.release("sbc2", 0x800A, &Bytes::from_static(&[7])), None);
    }
}
