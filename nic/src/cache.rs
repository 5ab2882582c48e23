//! A resolution cache for a NIC proxy (a node that resolves through a standalone NIC), and the
//! invalidations the NIC sends it as publications change its directory.
//!
//! A cached answer is dropped as soon as a change might alter it. Each key of the reference
//! and each session it matched is a *token* (`loginName=alice@isp`, `ip=10.0.0.5/32`,
//! `session=bng1/bng1;1;7`); a change to a binding names the tokens of the binding before and
//! after it, and every cached answer sharing one goes. Addresses are also compared by
//! containment (a cached `ip=` key inside a changed prefix, a cached prefix holding a changed
//! address). A change to owners, pools or a whole node's bindings (a replay, a router's
//! resynchronization) drops everything. Answers that went through a session's other key
//! (`ip > loginName > …`) are not cached: a change to a session the reference does not name
//! could alter them.
//!
//! Sans-IO: the caller passes `now` in. Comparisons ignore ASCII case throughout (an answer is
//! at worst dropped when it need not be, never kept when it should go).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use ipnet::IpNet;

use crate::directory::{Attributes, SessionKey};
use crate::reference::Reference;
use crate::scenario::Resolution;

/// What a change to a directory may have changed the answer to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invalidation {
    /// Every answer may have changed.
    pub all: bool,
    pub tokens: Vec<String>,
    /// Addresses and prefixes of the changed bindings, compared by containment.
    pub nets: Vec<IpNet>,
}

impl Invalidation {
    /// Notes a binding (as it was or as it is now).
    pub fn binding(&mut self, session: &SessionKey, a: &Attributes) {
        self.tokens.push(session_token(session));
        self.tokens.push(token("sessionId", &session.session_id));
        for addr in &a.addresses {
            let net = IpNet::from(*addr);
            self.tokens.push(ip_token(net));
            self.nets.push(net);
        }
        for net in &a.prefixes {
            self.tokens.push(ip_token(*net));
            self.nets.push(*net);
        }
        let texts = [
            ("loginName", &a.login_name),
            ("primaryUserName", &a.primary_user_name),
            ("dn", &a.dn),
            ("interfaceName", &a.interface_name),
            ("accountingId", &a.accounting_id),
        ];
        for (name, value) in texts {
            if let Some(v) = value {
                self.tokens.push(token(name, v));
            }
        }
        if let Some(vr) = &a.vr {
            self.tokens.push(token("vr", &vr.to_string()));
        }
    }

    /// Whether nothing is invalidated.
    pub fn is_empty(&self) -> bool {
        !self.all && self.tokens.is_empty() && self.nets.is_empty()
    }

    /// Adds another invalidation to this one.
    pub fn merge(&mut self, other: Invalidation) {
        self.all |= other.all;
        if !self.all {
            self.tokens.extend(other.tokens);
            self.nets.extend(other.nets);
        } else {
            self.tokens.clear();
            self.nets.clear();
        }
    }
}

fn token(name: &str, value: &str) -> String {
    let mut t = String::with_capacity(name.len() + 1 + value.len());
    t.push_str(name);
    t.push('=');
    t.extend(value.chars().map(|c| c.to_ascii_lowercase()));
    t
}

fn ip_token(net: IpNet) -> String {
    format!("ip={}", net.trunc())
}

fn session_token(s: &SessionKey) -> String {
    format!("session={}/{}", s.router, s.session_id)
}

/// The tokens a cached answer to `reference` is dropped by.
fn reference_tokens(r: &Reference, resolution: &Resolution) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(net) = r.ip {
        out.push(ip_token(net));
    }
    let texts = [
        ("loginName", &r.login_name),
        ("primaryUserName", &r.primary_user_name),
        ("dn", &r.dn),
        ("interfaceName", &r.interface_name),
        ("accountingId", &r.accounting_id),
        ("sessionId", &r.session_id),
    ];
    for (name, value) in texts {
        if let Some(v) = value {
            out.push(token(name, v));
        }
    }
    if let Some(vr) = &r.vr {
        out.push(token("vr", &vr.to_string()));
    }
    for m in &resolution.matches {
        if let Some(s) = &m.session {
            out.push(session_token(s));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Whether an answer found through this chain may be cached.
fn cacheable(chain: &str) -> bool {
    !chain.contains("ip > loginName")
}

fn overlaps(a: IpNet, b: IpNet) -> bool {
    a.contains(&b) || b.contains(&a)
}

struct Cached {
    resolution: Resolution,
    tokens: Vec<String>,
    ip: Option<IpNet>,
    at: Instant,
}

/// Cache statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub entries: usize,
    pub hits: u64,
    pub misses: u64,
    pub invalidated: u64,
}

/// Cached resolutions by reference.
pub struct ResolutionCache {
    capacity: usize,
    ttl: Duration,
    entries: HashMap<Reference, Cached>,
    by_token: HashMap<String, HashSet<Reference>>,
    /// Cached references with an `ip` key, compared by containment.
    by_ip: HashSet<Reference>,
    /// Bumped by every invalidation: an answer fetched across one is not stored.
    generation: u64,
    stats: CacheStats,
}

impl ResolutionCache {
    /// A cache of at most `capacity` answers, each kept at most `ttl` (0: caches nothing).
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        ResolutionCache {
            capacity,
            ttl,
            entries: HashMap::new(),
            by_token: HashMap::new(),
            by_ip: HashSet::new(),
            generation: 0,
            stats: CacheStats::default(),
        }
    }

    /// The generation to pass to [`ResolutionCache::insert`] with an answer fetched from now.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            entries: self.entries.len(),
            ..self.stats
        }
    }

    /// The cached answer, if one is fresh.
    pub fn get(&mut self, reference: &Reference, now: Instant) -> Option<Resolution> {
        let fresh = match self.entries.get(reference) {
            Some(c) => now.saturating_duration_since(c.at) < self.ttl,
            None => {
                self.stats.misses += 1;
                return None;
            }
        };
        if !fresh {
            self.remove(reference);
            self.stats.misses += 1;
            return None;
        }
        self.stats.hits += 1;
        self.entries.get(reference).map(|c| c.resolution.clone())
    }

    /// Stores an answer fetched when the cache was at `generation`; an answer that an
    /// invalidation may have overtaken, or that went through a chain that cannot be cached, is
    /// not stored. Returns whether it was.
    pub fn insert(
        &mut self,
        reference: Reference,
        resolution: Resolution,
        generation: u64,
        now: Instant,
    ) -> bool {
        if generation != self.generation
            || self.capacity == 0
            || self.ttl.is_zero()
            || !cacheable(&resolution.chain)
        {
            return false;
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&reference) {
            // Full: start again rather than track recency on every hit.
            self.clear();
        }
        self.remove(&reference);
        let tokens = reference_tokens(&reference, &resolution);
        for t in &tokens {
            self.by_token
                .entry(t.clone())
                .or_default()
                .insert(reference.clone());
        }
        if reference.ip.is_some() {
            self.by_ip.insert(reference.clone());
        }
        self.entries.insert(
            reference.clone(),
            Cached {
                ip: reference.ip,
                resolution,
                tokens,
                at: now,
            },
        );
        true
    }

    /// Drops every answer the change may have altered.
    pub fn invalidate(&mut self, change: &Invalidation) {
        if change.is_empty() {
            return;
        }
        self.generation += 1;
        if change.all {
            self.stats.invalidated += self.entries.len() as u64;
            self.clear();
            return;
        }
        let mut doomed: HashSet<Reference> = HashSet::new();
        for t in &change.tokens {
            if let Some(refs) = self.by_token.get(t) {
                doomed.extend(refs.iter().cloned());
            }
        }
        if !change.nets.is_empty() {
            for r in &self.by_ip {
                let ip = self.entries.get(r).and_then(|c| c.ip);
                if ip.is_some_and(|ip| change.nets.iter().any(|n| overlaps(ip, *n))) {
                    doomed.insert(r.clone());
                }
            }
        }
        self.stats.invalidated += doomed.len() as u64;
        for r in doomed {
            self.remove(&r);
        }
    }

    /// Drops everything (the NIC's invalidations stopped arriving, say).
    pub fn clear(&mut self) {
        self.generation += 1;
        self.entries.clear();
        self.by_token.clear();
        self.by_ip.clear();
    }

    fn remove(&mut self, reference: &Reference) {
        let Some(c) = self.entries.remove(reference) else {
            return;
        };
        for t in &c.tokens {
            if let Some(refs) = self.by_token.get_mut(t) {
                refs.remove(reference);
                if refs.is_empty() {
                    self.by_token.remove(t);
                }
            }
        }
        self.by_ip.remove(reference);
    }
}

impl std::fmt::Debug for ResolutionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolutionCache")
            .field("capacity", &self.capacity)
            .field("ttl", &self.ttl)
            .field("entries", &self.entries.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::{Binding, Directory, Publication};
    use crate::scenario::Scenario;
    use crate::{Applied, Vr};

    fn binding(id: &str, ip: &str, login: &str) -> Binding {
        Binding {
            session: SessionKey::new("bng1", id),
            node: 1,
            epoch: 1,
            attributes: Attributes {
                addresses: vec![ip.parse().unwrap()],
                login_name: Some(login.into()),
                vr: Some(Vr::default_of("bng1")),
                ..Attributes::default()
            },
        }
    }

    fn r(text: &str) -> Reference {
        Reference::parse(text).unwrap()
    }

    struct World {
        directory: Directory,
        scenario: Scenario,
        cache: ResolutionCache,
        now: Instant,
    }

    impl World {
        fn new(scenario: &str) -> World {
            World {
                directory: Directory::new(Vec::new()),
                scenario: Scenario::named(scenario, &Default::default()).unwrap(),
                cache: ResolutionCache::new(100, Duration::from_secs(60)),
                now: Instant::now(),
            }
        }

        /// Applies a publication the way a NIC does, and hands its invalidation to the cache.
        fn publish(&mut self, p: Publication) -> Applied {
            let mut inv = Invalidation::default();
            let applied = self.directory.apply_noting(p, &mut inv);
            self.cache.invalidate(&inv);
            applied
        }

        /// Resolves through the cache; returns the answer and whether it was cached.
        fn resolve(&mut self, text: &str) -> (Option<Resolution>, bool) {
            let reference = r(text);
            if let Some(hit) = self.cache.get(&reference, self.now) {
                return (Some(hit), true);
            }
            let generation = self.cache.generation();
            let res = self.scenario.resolve(&self.directory, &reference).ok();
            if let Some(res) = &res {
                self.cache
                    .insert(reference, res.clone(), generation, self.now);
            }
            (res, false)
        }
    }

    fn sessions(res: &Option<Resolution>) -> Vec<String> {
        res.iter()
            .flat_map(|r| &r.matches)
            .filter_map(|m| m.session.as_ref().map(|s| s.session_id.clone()))
            .collect()
    }

    #[test]
    fn an_answer_is_cached_until_a_change_touches_it() {
        let mut w = World::new("default");
        w.publish(Publication::bind(binding("s1", "10.0.0.1", "alice")));
        w.publish(Publication::bind(binding("s2", "10.0.0.2", "bob")));
        let (first, cached) = w.resolve("ip=10.0.0.1");
        assert!(!cached);
        assert_eq!(w.resolve("ip=10.0.0.1"), (first, true));
        assert!(!w.resolve("loginName=BOB").1);
        assert!(w.resolve("loginName=BOB").1);
        assert!(
            !w.resolve("loginName=bob").1,
            "the reference as written is the key"
        );
        // bob's session changes its address: alice's answer stays, bob's goes.
        w.publish(Publication::bind(binding("s2", "10.0.0.9", "bob")));
        assert!(w.resolve("ip=10.0.0.1").1);
        let (res, cached) = w.resolve("loginName=BOB");
        assert!(!cached);
        assert_eq!(sessions(&res), ["s2"]);
        // A new session with alice's address: the answer by address goes.
        w.publish(Publication::bind(binding("s3", "10.0.0.1", "carol")));
        let (res, cached) = w.resolve("ip=10.0.0.1");
        assert!(!cached);
        assert_eq!(sessions(&res), ["s1", "s3"]);
        // The unbind of a matched session drops the answers that matched it.
        assert!(!w.resolve("loginName=carol").1);
        assert!(w.resolve("loginName=carol").1);
        w.publish(Publication::Unbind {
            session: SessionKey::new("bng1", "s3"),
            node: 1,
            epoch: 1,
        });
        assert_eq!(sessions(&w.resolve("ip=10.0.0.1").0), ["s1"]);
        assert_eq!(w.resolve("loginName=carol").0, None);
    }

    #[test]
    fn prefixes_invalidate_by_containment() {
        let mut w = World::new("default");
        let mut routed = binding("s1", "10.0.0.1", "alice");
        routed.attributes.prefixes = vec!["10.0.0.0/24".parse().unwrap()];
        w.publish(Publication::bind(routed));
        assert_eq!(sessions(&w.resolve("ip=10.0.0.0/24").0), ["s1"]);
        assert!(w.resolve("ip=10.0.0.0/24").1);
        // An address inside the cached prefix appears.
        w.publish(Publication::bind(binding("s2", "10.0.0.77", "bob")));
        assert!(!w.resolve("ip=10.0.0.0/24").1);
        // A delegated prefix holding a cached address appears.
        w.publish(Publication::bind(binding("s4", "2001:db8::5", "erin")));
        w.resolve("ip=2001:db8::5");
        assert!(w.resolve("ip=2001:db8::5").1);
        let mut b = binding("s3", "10.9.9.9", "dave");
        b.attributes.prefixes = vec!["2001:db8::/56".parse().unwrap()];
        w.publish(Publication::bind(b));
        let (res, cached) = w.resolve("ip=2001:db8::5");
        assert!(!cached);
        assert_eq!(sessions(&res), ["s4"]);
        assert!(w.resolve("loginName=alice").0.is_some());
    }

    #[test]
    fn owners_replays_and_stale_answers() {
        let mut w = World::new("default");
        w.publish(Publication::bind(binding("s1", "10.0.0.1", "alice")));
        w.resolve("ip=10.0.0.1");
        // A stale publication changes nothing and drops nothing.
        let mut old = binding("s1", "10.0.0.8", "alice");
        old.epoch = 0;
        assert_eq!(w.publish(Publication::bind(old)), Applied::Stale);
        assert!(w.resolve("ip=10.0.0.1").1);
        w.publish(Publication::Owner {
            router: "bng1".into(),
            node: 2,
            epoch: 2,
        });
        assert!(!w.resolve("ip=10.0.0.1").1);
        // A replay that opens drops nothing; one that ends without s1 drops it.
        w.publish(Publication::ReplayStart { node: 1 });
        assert!(w.resolve("ip=10.0.0.1").1);
        w.publish(Publication::ReplayEnd { node: 1 });
        assert_eq!(w.resolve("ip=10.0.0.1"), (None, false));
        // Node 2 serves bng1 from epoch 2 on.
        let at_2 = |id, ip, login| {
            let mut b = binding(id, ip, login);
            (b.node, b.epoch) = (2, 2);
            Publication::bind(b)
        };
        w.publish(at_2("s1", "10.0.0.1", "alice"));
        // An answer fetched before an invalidation arrived is not stored.
        let g = w.cache.generation();
        let res = w
            .scenario
            .resolve(&w.directory, &r("loginName=alice"))
            .unwrap();
        w.publish(at_2("s9", "10.0.0.99", "zed"));
        assert!(!w.cache.insert(r("loginName=alice"), res, g, w.now));
        // Expiry.
        w.resolve("loginName=alice");
        w.now += Duration::from_secs(61);
        assert!(!w.resolve("loginName=alice").1);
    }

    #[test]
    fn answers_through_another_key_of_a_session_are_not_cached() {
        let mut w = World::new("OnePopLogin");
        w.publish(Publication::bind(binding("s1", "10.0.0.1", "alice")));
        assert!(!w.resolve("ip=10.0.0.1").1);
        assert!(!w.resolve("ip=10.0.0.1").1);
        assert!(!w.resolve("loginName=alice").1);
        assert!(w.resolve("loginName=alice").1);
    }

    #[test]
    fn a_full_cache_starts_again() {
        let mut cache = ResolutionCache::new(2, Duration::from_secs(1));
        let res = Resolution {
            chain: "loginName > session > sae".into(),
            matches: vec![],
        };
        let now = Instant::now();
        for name in ["a", "b", "c"] {
            let g = cache.generation();
            assert!(cache.insert(r(&format!("loginName={name}")), res.clone(), g, now));
        }
        assert_eq!(cache.stats().entries, 1);
        assert!(cache.get(&r("loginName=c"), now).is_some());
        assert!(cache.get(&r("loginName=a"), now).is_none());
    }
}
