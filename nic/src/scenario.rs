//! Resolution scenarios: how a subscriber reference leads to the SAE nodes and sessions that hold
//! it, modelled on Juniper SRC's NIC configuration scenarios.
//!
//! A scenario is a list of chains such as `ip > pool > vr > sae`. Each chain starts from a key of
//! the reference and walks typed steps to `sae`; resolution tries the chains whose start the
//! reference carries, in order, and the first that reaches a SAE answers. When every applicable
//! chain stops short, the error lists, per chain, the step that found nothing.
//!
//! | step | finds |
//! |---|---|
//! | `ip > session` | sessions bound to that address (a shorter prefix: to exactly that prefix) |
//! | `ip > prefix` | the longest published IPv6 (or IPv4) prefix holding the address |
//! | `prefix > session` | sessions bound to that prefix (framed or delegated) |
//! | `ip > pool` | the most specific address pool holding the address |
//! | `pool > vr` | the pool's virtual routers |
//! | `ip > vr` | the virtual routers of the sessions bound to the address, else of every pool holding it |
//! | `ip > loginName` | the login names of the sessions bound to the address |
//! | `loginName`, `primaryUserName`, `dn`, `accountingId`, `sessionId` `> session` | sessions bound to that value |
//! | `interface > session` | the session on that interface of that router (or virtual router's router) |
//! | `interface > vr` | the reference's virtual router, else `default@<router>` |
//! | `vr > sae` | the node that owns the virtual router's router |
//! | `session > sae` | the node that owns the session's router (else the node that published it) |
//!
//! After the chain, the answer is narrowed by every other key of the reference (`ip=…;vr=…`),
//! and a SAE reached without a session (through a virtual router) is given the bound sessions of
//! that router that match the reference, if any. A resolution may answer several sessions (an
//! accounting id shared by several sessions, say): it answers them all.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::directory::{BindingRef, Directory, NodeId, SessionKey};
use crate::reference::{KeyKind, Reference, Vr};

/// A point of a resolution chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Point {
    Ip,
    LoginName,
    PrimaryUserName,
    Dn,
    Interface,
    Vr,
    AccountingId,
    SessionId,
    Prefix,
    Pool,
    Session,
    Sae,
}

impl Point {
    const ALL: [Point; 12] = [
        Point::Ip,
        Point::LoginName,
        Point::PrimaryUserName,
        Point::Dn,
        Point::Interface,
        Point::Vr,
        Point::AccountingId,
        Point::SessionId,
        Point::Prefix,
        Point::Pool,
        Point::Session,
        Point::Sae,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Point::Ip => "ip",
            Point::LoginName => "loginName",
            Point::PrimaryUserName => "primaryUserName",
            Point::Dn => "dn",
            Point::Interface => "interface",
            Point::Vr => "vr",
            Point::AccountingId => "accountingId",
            Point::SessionId => "sessionId",
            Point::Prefix => "prefix",
            Point::Pool => "pool",
            Point::Session => "session",
            Point::Sae => "sae",
        }
    }

    /// The reference key a chain starting here reads.
    fn key(self) -> Option<KeyKind> {
        Some(match self {
            Point::Ip => KeyKind::Ip,
            Point::LoginName => KeyKind::LoginName,
            Point::PrimaryUserName => KeyKind::PrimaryUserName,
            Point::Dn => KeyKind::Dn,
            Point::Interface => KeyKind::InterfaceName,
            Point::Vr => KeyKind::Vr,
            Point::AccountingId => KeyKind::AccountingId,
            Point::SessionId => KeyKind::SessionId,
            Point::Prefix | Point::Pool | Point::Session | Point::Sae => return None,
        })
    }

    /// The steps that leave this point.
    fn next(self) -> &'static [Point] {
        match self {
            Point::Ip => &[
                Point::Session,
                Point::Prefix,
                Point::Pool,
                Point::Vr,
                Point::LoginName,
            ],
            Point::Prefix => &[Point::Session],
            Point::Pool => &[Point::Vr],
            Point::Interface => &[Point::Session, Point::Vr],
            Point::Vr | Point::Session => &[Point::Sae],
            Point::LoginName
            | Point::PrimaryUserName
            | Point::Dn
            | Point::AccountingId
            | Point::SessionId => &[Point::Session],
            Point::Sae => &[],
        }
    }
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a scenario definition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("scenario {scenario}: {message}")]
pub struct ScenarioError {
    pub scenario: String,
    pub message: String,
}

/// One chain of steps, from a reference key to `sae`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    points: Vec<Point>,
}

impl Chain {
    /// Parses `a > b > c`.
    pub fn parse(text: &str) -> Result<Chain, String> {
        let mut points: Vec<Point> = Vec::new();
        for name in text.split('>') {
            let name = name.trim();
            let point = Point::ALL
                .into_iter()
                .find(|p| p.name().eq_ignore_ascii_case(name))
                .ok_or_else(|| {
                    format!(
                        "chain {text:?}: unknown point {name:?} (known: {})",
                        Point::ALL.map(Point::name).join(", ")
                    )
                })?;
            if let Some(&last) = points.last()
                && !last.next().contains(&point)
            {
                let known: Vec<&str> = last.next().iter().map(|p| p.name()).collect();
                return Err(format!(
                    "chain {text:?}: no step {last} > {point} (from {last}: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ));
            }
            points.push(point);
        }
        if points[0].key().is_none() {
            return Err(format!(
                "chain {text:?} starts at {}, which no reference names",
                points[0]
            ));
        }
        if points.last() != Some(&Point::Sae) {
            return Err(format!("chain {text:?} does not end at sae"));
        }
        Ok(Chain { points })
    }

    fn start(&self) -> KeyKind {
        self.points[0].key().expect("checked when parsed")
    }
}

impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.points.iter().map(|p| p.name()).collect();
        f.write_str(&names.join(" > "))
    }
}

/// The built-in scenarios, by name, with their chains.
pub const BUILT_IN: &[(&str, &[&str])] = &[
    (
        "default",
        &[
            "sessionId > session > sae",
            "interface > session > sae",
            "accountingId > session > sae",
            "dn > session > sae",
            "loginName > session > sae",
            "primaryUserName > session > sae",
            "ip > session > sae",
            "ip > prefix > session > sae",
            "ip > pool > vr > sae",
            "interface > vr > sae",
            "vr > sae",
        ],
    ),
    ("OnePop", &["ip > vr > sae", "vr > sae"]),
    ("OnePopSharedIp", &["ip > pool > vr > sae", "vr > sae"]),
    (
        "OnePopLogin",
        &[
            "loginName > session > sae",
            "ip > loginName > session > sae",
        ],
    ),
    ("OnePopDn", &["dn > session > sae"]),
    ("OnePopPrefixIp", &["ip > prefix > session > sae"]),
    ("OnePopAcctId", &["accountingId > session > sae"]),
    (
        "Interface",
        &["interface > session > sae", "interface > vr > sae"],
    ),
];

/// A named resolution scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    name: String,
    chains: Vec<Chain>,
}

impl Scenario {
    /// A scenario from its chains.
    pub fn new(name: &str, chains: &[impl AsRef<str>]) -> Result<Scenario, ScenarioError> {
        let error = |message: String| ScenarioError {
            scenario: name.to_string(),
            message,
        };
        if chains.is_empty() {
            return Err(error("has no chain".into()));
        }
        let chains = chains
            .iter()
            .map(|c| Chain::parse(c.as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(error)?;
        Ok(Scenario {
            name: name.to_string(),
            chains,
        })
    }

    /// A built-in scenario, or one of `custom` (name → chains), by name.
    pub fn named(
        name: &str,
        custom: &BTreeMap<String, Vec<String>>,
    ) -> Result<Scenario, ScenarioError> {
        if let Some(chains) = custom.get(name) {
            return Scenario::new(name, chains);
        }
        match BUILT_IN.iter().find(|(n, _)| *n == name) {
            Some((n, chains)) => Scenario::new(n, chains),
            None => {
                let mut known: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
                known.extend(custom.keys().map(String::as_str));
                Err(ScenarioError {
                    scenario: name.to_string(),
                    message: format!("unknown (known: {})", known.join(", ")),
                })
            }
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn chains(&self) -> &[Chain] {
        &self.chains
    }

    /// Resolves `reference` over `directory`.
    pub fn resolve(
        &self,
        directory: &Directory,
        reference: &Reference,
    ) -> Result<Resolution, ResolveError> {
        let mut failures = Vec::new();
        for chain in self.chains.iter().filter(|c| reference.has(c.start())) {
            match run(chain, directory, reference) {
                Ok(matches) => {
                    return Ok(Resolution {
                        chain: chain.to_string(),
                        matches,
                    });
                }
                Err(failure) => failures.push(failure),
            }
        }
        if failures.is_empty() {
            let mut starts: Vec<&str> = self.chains.iter().map(|c| c.start().name()).collect();
            starts.dedup();
            return Err(ResolveError::NoChain {
                scenario: self.name.clone(),
                reference: reference.to_string(),
                starts: starts.join(", "),
            });
        }
        Err(ResolveError::NotFound {
            reference: reference.to_string(),
            failures,
        })
    }
}

/// What a resolution found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// The chain that answered.
    pub chain: String,
    /// Every session (or, when no session is bound, every SAE) the reference names.
    pub matches: Vec<Match>,
}

/// One answer of a resolution.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Match {
    /// The node to ask.
    pub node: NodeId,
    /// The router that node serves the subscriber on.
    pub router: String,
    /// The router's ownership epoch the answer was known under.
    pub epoch: u64,
    /// The session, when one is bound.
    pub session: Option<SessionKey>,
}

/// A chain that stopped short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFailure {
    pub chain: String,
    /// `from > to`, or `narrowing` when the other keys of the reference excluded every match.
    pub step: String,
    pub message: String,
}

impl fmt::Display for StepFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: step {}: {}", self.chain, self.step, self.message)
    }
}

/// Why a reference did not resolve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("scenario {scenario} cannot resolve {reference}: its chains start from {starts}")]
    NoChain {
        scenario: String,
        reference: String,
        starts: String,
    },
    #[error("{reference} not found ({})", failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    NotFound {
        reference: String,
        failures: Vec<StepFailure>,
    },
}

/// What flows along a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Ip(IpNet),
    Text(String),
    Interface { router: String, name: String },
    Vr(Vr),
    Pool(IpNet),
    Session(u32),
    Sae(Match),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Ip(net) if net.prefix_len() == net.max_prefix_len() => {
                write!(f, "{}", net.addr())
            }
            Value::Ip(net) | Value::Pool(net) => write!(f, "{net}"),
            Value::Text(text) => write!(f, "{text}"),
            Value::Interface { router, name } => write!(f, "{name} on {router}"),
            Value::Vr(vr) => write!(f, "{vr}"),
            Value::Session(slot) => write!(f, "session #{slot}"),
            Value::Sae(m) => write!(f, "node {}", m.node),
        }
    }
}

fn start_value(point: Point, r: &Reference) -> Option<Value> {
    Some(match point {
        Point::Ip => Value::Ip(r.ip?),
        Point::LoginName => Value::Text(r.login_name.clone()?),
        Point::PrimaryUserName => Value::Text(r.primary_user_name.clone()?),
        Point::Dn => Value::Text(r.dn.clone()?),
        Point::AccountingId => Value::Text(r.accounting_id.clone()?),
        Point::SessionId => Value::Text(r.session_id.clone()?),
        Point::Vr => Value::Vr(r.vr.clone()?),
        Point::Interface => Value::Interface {
            router: r
                .router
                .clone()
                .or_else(|| r.vr.as_ref().map(|vr| vr.router.clone()))?,
            name: r.interface_name.clone()?,
        },
        Point::Prefix | Point::Pool | Point::Session | Point::Sae => return None,
    })
}

fn sessions(slots: &[u32]) -> Vec<Value> {
    slots.iter().map(|s| Value::Session(*s)).collect()
}

/// One step: the values `to` reached from `value`, or why none.
fn step(
    directory: &Directory,
    reference: &Reference,
    from: Point,
    to: Point,
    value: &Value,
) -> Vec<Value> {
    match (from, to, value) {
        (Point::Ip, Point::Session, Value::Ip(net)) => {
            if net.prefix_len() == net.max_prefix_len() {
                sessions(directory.by_address(&net.addr()))
            } else {
                sessions(directory.by_prefix_exact(net))
            }
        }
        (Point::Ip, Point::Prefix, Value::Ip(net)) => {
            if net.prefix_len() == net.max_prefix_len() {
                let slots = directory.by_prefix_longest(net.addr());
                if slots.is_empty() {
                    Vec::new()
                } else {
                    // Keep the sessions: the prefix itself is only a waypoint.
                    vec![Value::Pool(*net)]
                }
            } else if directory.by_prefix_exact(net).is_empty() {
                Vec::new()
            } else {
                vec![Value::Pool(*net)]
            }
        }
        (Point::Prefix, Point::Session, Value::Pool(net)) => {
            if net.prefix_len() == net.max_prefix_len() {
                sessions(directory.by_prefix_longest(net.addr()))
            } else {
                sessions(directory.by_prefix_exact(net))
            }
        }
        (Point::Ip, Point::Pool, Value::Ip(net)) => directory
            .most_specific_pool(net.addr())
            .filter(|(pool, _)| pool.prefix_len() <= net.prefix_len())
            .map(|(pool, _)| vec![Value::Pool(pool)])
            .unwrap_or_default(),
        (Point::Pool, Point::Vr, Value::Pool(net)) => directory
            .most_specific_pool(net.addr())
            .map(|(_, vrs)| vrs.iter().cloned().map(Value::Vr).collect())
            .unwrap_or_default(),
        (Point::Ip, Point::Vr, Value::Ip(net)) => {
            let addr = net.addr();
            let mut vrs: Vec<Vr> = directory
                .by_address(&addr)
                .iter()
                .filter_map(|s| directory.entry(*s))
                .map(|b| entry_vr(&b))
                .collect();
            if vrs.is_empty() {
                vrs = directory.pools_holding(addr);
            }
            vrs.sort();
            vrs.dedup();
            vrs.into_iter().map(Value::Vr).collect()
        }
        (Point::Ip, Point::LoginName, Value::Ip(net)) => {
            let mut names: Vec<String> = directory
                .by_address(&net.addr())
                .iter()
                .filter_map(|s| Some(directory.entry(*s)?.login_name()?.to_owned()))
                .collect();
            names.sort();
            names.dedup();
            names.into_iter().map(Value::Text).collect()
        }
        (Point::LoginName, Point::Session, Value::Text(t)) => sessions(directory.by_login(t)),
        (Point::PrimaryUserName, Point::Session, Value::Text(t)) => {
            sessions(directory.by_primary_user(t))
        }
        (Point::Dn, Point::Session, Value::Text(t)) => sessions(directory.by_dn(t)),
        (Point::AccountingId, Point::Session, Value::Text(t)) => {
            sessions(directory.by_accounting_id(t))
        }
        (Point::SessionId, Point::Session, Value::Text(t)) => sessions(directory.by_session_id(t)),
        (Point::Interface, Point::Session, Value::Interface { router, name }) => {
            sessions(directory.by_interface(router, name))
        }
        (Point::Interface, Point::Vr, Value::Interface { router, .. }) => {
            vec![Value::Vr(
                reference
                    .vr
                    .clone()
                    .unwrap_or_else(|| Vr::default_of(router)),
            )]
        }
        (Point::Vr, Point::Sae, Value::Vr(vr))
            if reference.vr.as_ref().is_some_and(|want| want != vr)
                || reference
                    .router
                    .as_ref()
                    .is_some_and(|want| *want != vr.router) =>
        {
            Vec::new()
        }
        (Point::Vr, Point::Sae, Value::Vr(vr)) => match directory.owner(&vr.router) {
            Some((node, epoch)) => vec![Value::Sae(Match {
                node,
                router: vr.router.clone(),
                epoch,
                session: None,
            })],
            None => Vec::new(),
        },
        (Point::Session, Point::Sae, Value::Session(slot)) => directory
            .entry(*slot)
            .map(|entry| {
                let (node, epoch) = directory
                    .owner(entry.router())
                    .unwrap_or((entry.node, entry.epoch));
                vec![Value::Sae(Match {
                    node,
                    router: entry.router().to_owned(),
                    epoch,
                    session: Some(entry.session()),
                })]
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn nothing_found(from: Point, to: Point, value: &Value) -> String {
    match (from, to) {
        (_, Point::Session) => format!("no session is bound to {from} {value}"),
        (Point::Ip, Point::Prefix) => format!("no published prefix holds {value}"),
        (Point::Ip, Point::Pool) => format!("no address pool holds {value}"),
        (Point::Pool, Point::Vr) => format!("pool {value} names no virtual router"),
        (Point::Ip, Point::Vr) => {
            format!("no session or address pool places {value} in a virtual router")
        }
        (Point::Ip, Point::LoginName) => {
            format!("no session with address {value} has a login name")
        }
        (_, Point::Sae) => format!("no SAE owns the router of {value}"),
        _ => format!("nothing reached from {value}"),
    }
}

fn run(
    chain: &Chain,
    directory: &Directory,
    reference: &Reference,
) -> Result<Vec<Match>, StepFailure> {
    let failure = |step: String, message: String| StepFailure {
        chain: chain.to_string(),
        step,
        message,
    };
    let first = chain.points[0];
    let mut values = vec![start_value(first, reference).expect("chain applies to the reference")];
    for pair in chain.points.windows(2) {
        let (from, to) = (pair[0], pair[1]);
        let mut next = Vec::new();
        for value in &values {
            for found in step(directory, reference, from, to, value) {
                if !next.contains(&found) {
                    next.push(found);
                }
            }
        }
        if next.is_empty() {
            let shown = values
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            return Err(failure(
                format!("{from} > {to}"),
                nothing_found(from, to, &Value::Text(shown)),
            ));
        }
        values = next;
    }
    let mut matches: Vec<Match> = Vec::new();
    for value in values {
        let Value::Sae(found) = value else { continue };
        if found.session.is_some() {
            let entry = found.session.as_ref().and_then(|s| directory.get(s));
            if entry.is_some_and(|e| narrows_to(&e, reference)) {
                matches.push(found);
            }
            continue;
        }
        let bound = bound_sessions(directory, reference, &found.router);
        if bound.is_empty() {
            matches.push(found);
        } else {
            matches.extend(bound.into_iter().map(|session| Match {
                session: Some(session),
                ..found.clone()
            }));
        }
    }
    if matches.is_empty() {
        return Err(failure(
            "narrowing".into(),
            format!("no session matches every key of {reference}"),
        ));
    }
    matches.sort();
    matches.dedup();
    Ok(matches)
}

/// The bound sessions of `router` that match the reference (for SAEs reached through a
/// virtual router).
fn bound_sessions(directory: &Directory, reference: &Reference, router: &str) -> Vec<SessionKey> {
    let candidates: Vec<u32> = if let Some(addr) = reference.address() {
        directory.by_address(&addr).to_vec()
    } else if let Some(net) = &reference.ip {
        directory.by_prefix_exact(net).to_vec()
    } else if let (Some(name), Some(r)) = (&reference.interface_name, reference_router(reference)) {
        directory.by_interface(&r, name).to_vec()
    } else if let Some(vr) = &reference.vr {
        directory.by_vr(vr).to_vec()
    } else {
        Vec::new()
    };
    candidates
        .iter()
        .filter_map(|s| directory.entry(*s))
        .filter(|e| e.router() == router && narrows_to(e, reference))
        .map(|e| e.session())
        .collect()
}

fn reference_router(reference: &Reference) -> Option<String> {
    reference
        .router
        .clone()
        .or_else(|| reference.vr.as_ref().map(|vr| vr.router.clone()))
}

fn entry_vr(entry: &BindingRef<'_>) -> Vr {
    entry.vr().unwrap_or_else(|| Vr::default_of(entry.router()))
}

fn ip_matches(entry: &BindingRef<'_>, net: &IpNet) -> bool {
    if net.prefix_len() == net.max_prefix_len() {
        let addr: IpAddr = net.addr();
        entry.addresses().any(|a| a == addr) || entry.prefixes().any(|p| p.contains(&addr))
    } else {
        entry.prefixes().any(|p| p.trunc() == *net) || entry.addresses().any(|x| net.contains(&x))
    }
}

/// Whether the session carries every key of the reference.
fn narrows_to(entry: &BindingRef<'_>, r: &Reference) -> bool {
    let same =
        |want: &Option<String>, have: Option<&str>| want.as_deref().is_none_or(|w| have == Some(w));
    let same_name = |want: &Option<String>, have: Option<&str>| {
        want.as_deref()
            .is_none_or(|w| have.is_some_and(|h| h.eq_ignore_ascii_case(w)))
    };
    r.ip.as_ref().is_none_or(|net| ip_matches(entry, net))
        && same_name(&r.login_name, entry.login_name())
        && same_name(&r.primary_user_name, entry.primary_user_name())
        && same(&r.dn, entry.dn())
        && same(&r.interface_name, entry.interface_name())
        && same(&r.accounting_id, entry.accounting_id())
        && same(&r.session_id, Some(entry.session_id()))
        && same(&r.router, Some(entry.router()))
        && r.vr.as_ref().is_none_or(|vr| *vr == entry_vr(entry))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::{Attributes, Binding, Pool, Publication};

    fn r(s: &str) -> Reference {
        Reference::parse(s).unwrap()
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn scenario(name: &str) -> Scenario {
        Scenario::named(name, &BTreeMap::new()).unwrap()
    }

    /// Two routers on two nodes: bng1 (node 1) and bng2 (node 2, which also serves a
    /// customer VR with an address space that overlaps bng1's).
    fn directory() -> Directory {
        let mut d = Directory::new(vec![
            Pool {
                prefix: net("10.0.0.0/8"),
                vr: Vr::default_of("bng1"),
            },
            Pool {
                prefix: net("10.2.0.0/16"),
                vr: Vr::new("cust1", "bng2"),
            },
            Pool {
                prefix: net("172.16.0.0/12"),
                vr: Vr::default_of("bng3"),
            },
        ]);
        let sessions = [
            (
                "bng1",
                "s-alice",
                1,
                "10.0.0.5",
                "alice@example.net",
                "ge-0/0/0.100",
                None,
            ),
            (
                "bng1",
                "s-bob",
                1,
                "10.0.0.6",
                "bob@example.net",
                "ge-0/0/0.101",
                None,
            ),
            (
                "bng2",
                "s-carol",
                2,
                "10.2.0.5",
                "carol@isp.example",
                "FastEthernet3/1",
                Some(Vr::new("cust1", "bng2")),
            ),
            (
                "bng2",
                "s-dave",
                2,
                "10.0.0.5",
                "dave@isp.example",
                "FastEthernet3/2",
                Some(Vr::new("cust2", "bng2")),
            ),
        ];
        for (router, id, node, ip, login, intf, vr) in sessions {
            let user = login.split('@').next().unwrap();
            d.apply(Publication::Bind(Box::new(Binding {
                session: SessionKey::new(router, id),
                node,
                epoch: 3,
                attributes: Attributes {
                    addresses: vec![ip.parse().unwrap()],
                    prefixes: if id == "s-alice" {
                        vec![net("2001:db8:a::/48"), net("2001:db8:a:1::/64")]
                    } else {
                        vec![]
                    },
                    login_name: Some(login.into()),
                    primary_user_name: Some(format!("ppp-{user}")),
                    dn: Some(format!("uniqueID={user},o=users")),
                    interface_name: Some(intf.into()),
                    vr,
                    accounting_id: Some(if node == 1 {
                        "acct-1".into()
                    } else {
                        format!("acct-{user}")
                    }),
                },
            })));
        }
        d.apply(Publication::Owner {
            router: "bng3".into(),
            node: 3,
            epoch: 1,
        });
        d
    }

    fn sessions(res: &Resolution) -> Vec<(NodeId, String)> {
        res.matches
            .iter()
            .map(|m| {
                (
                    m.node,
                    m.session
                        .as_ref()
                        .map_or("-".into(), |s| s.session_id.clone()),
                )
            })
            .collect()
    }

    #[test]
    fn the_default_scenario_resolves_every_key_kind() {
        let d = directory();
        let s = scenario("default");
        let one = |text: &str| {
            sessions(
                &s.resolve(&d, &r(text))
                    .unwrap_or_else(|e| panic!("{text}: {e}")),
            )
        };
        assert_eq!(one("loginName=carol@isp.example"), [(2, "s-carol".into())]);
        assert_eq!(one("primaryUserName=ppp-bob"), [(1, "s-bob".into())]);
        assert_eq!(one("dn=uniqueID=alice,o=users"), [(1, "s-alice".into())]);
        assert_eq!(
            one("interfaceName=FastEthernet3/1;vr=cust1@bng2"),
            [(2, "s-carol".into())]
        );
        assert_eq!(
            one("interfaceName=ge-0/0/0.101;router=bng1"),
            [(1, "s-bob".into())]
        );
        assert_eq!(one("sessionId=s-dave"), [(2, "s-dave".into())]);
        assert_eq!(one("ip=10.0.0.6"), [(1, "s-bob".into())]);
        assert_eq!(one("ip=2001:db8:a:1::77"), [(1, "s-alice".into())]);
        assert_eq!(one("ip=2001:db8:a::/48"), [(1, "s-alice".into())]);
        // An address in a pool with no session: the SAE that owns the pool's router.
        assert_eq!(one("ip=172.16.9.9"), [(3, "-".into())]);
        assert_eq!(one("vr=default@bng3"), [(3, "-".into())]);
        // Every session an accounting id names, on whichever nodes hold them.
        assert_eq!(
            one("accountingId=acct-1"),
            [(1, "s-alice".into()), (1, "s-bob".into())]
        );
    }

    #[test]
    fn a_shared_address_resolves_to_every_session_unless_narrowed() {
        let d = directory();
        let s = scenario("default");
        let all = s.resolve(&d, &r("ip=10.0.0.5")).unwrap();
        assert_eq!(
            sessions(&all),
            [(1, "s-alice".into()), (2, "s-dave".into())]
        );
        let narrowed = s.resolve(&d, &r("ip=10.0.0.5;vr=cust2@bng2")).unwrap();
        assert_eq!(sessions(&narrowed), [(2, "s-dave".into())]);
        // No session in that VR: the SAE that serves the VR answers, with no session.
        let res = s.resolve(&d, &r("ip=10.0.0.5;vr=cust9@bng2")).unwrap();
        assert_eq!(
            (res.chain.as_str(), sessions(&res)),
            ("vr > sae", vec![(2, "-".into())])
        );
        let err = scenario("OnePopDn")
            .resolve(&d, &r("dn=uniqueID=dave,o=users;router=bng1"))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("step narrowing: no session matches every key"),
            "{err}"
        );
    }

    #[test]
    fn one_pop_goes_through_the_virtual_router() {
        let d = directory();
        let s = scenario("OnePop");
        let res = s.resolve(&d, &r("ip=10.2.0.5")).unwrap();
        assert_eq!(res.chain, "ip > vr > sae");
        assert_eq!(sessions(&res), [(2, "s-carol".into())]);
        // No session bound: any pool holding the address names the VR.
        let res = s.resolve(&d, &r("ip=10.9.0.1")).unwrap();
        assert_eq!(sessions(&res), [(1, "-".into())]);
        assert!(
            s.resolve(&d, &r("loginName=x"))
                .unwrap_err()
                .to_string()
                .contains("start from ip, vr")
        );
    }

    #[test]
    fn shared_ip_takes_the_most_specific_pool() {
        let d = directory();
        let s = scenario("OnePopSharedIp");
        // 10.2.0.9 is in 10.0.0.0/8 (bng1) and in 10.2.0.0/16 (cust1@bng2): the latter wins.
        let res = s.resolve(&d, &r("ip=10.2.0.9")).unwrap();
        assert_eq!(sessions(&res), [(2, "-".into())]);
        assert_eq!(res.matches[0].router, "bng2");
        let res = s.resolve(&d, &r("ip=10.2.0.5")).unwrap();
        assert_eq!(sessions(&res), [(2, "s-carol".into())]);
        let err = s.resolve(&d, &r("ip=192.0.2.1")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ip=192.0.2.1 not found (ip > pool > vr > sae: step ip > pool: no address pool holds 192.0.2.1)"
        );
    }

    #[test]
    fn one_pop_login_maps_addresses_to_login_names() {
        let d = directory();
        let s = scenario("OnePopLogin");
        let res = s.resolve(&d, &r("ip=10.0.0.6")).unwrap();
        assert_eq!(res.chain, "ip > loginName > session > sae");
        assert_eq!(sessions(&res), [(1, "s-bob".into())]);
        let err = s.resolve(&d, &r("loginName=nobody@x")).unwrap_err();
        assert!(
            err.to_string()
                .contains("step loginName > session: no session is bound to loginName nobody@x"),
            "{err}"
        );
    }

    #[test]
    fn dn_prefix_acct_and_interface_scenarios() {
        let d = directory();
        assert_eq!(
            sessions(
                &scenario("OnePopDn")
                    .resolve(&d, &r("dn=uniqueID=dave,o=users"))
                    .unwrap()
            ),
            [(2, "s-dave".into())]
        );
        let p = scenario("OnePopPrefixIp");
        assert_eq!(
            sessions(&p.resolve(&d, &r("ip=2001:db8:a:1::1")).unwrap()),
            [(1, "s-alice".into())]
        );
        assert_eq!(
            sessions(&p.resolve(&d, &r("ip=2001:db8:a:2::1")).unwrap()),
            [(1, "s-alice".into())]
        );
        assert!(p.resolve(&d, &r("ip=2001:db8:b::1")).is_err());
        let a = scenario("OnePopAcctId");
        assert_eq!(
            sessions(&a.resolve(&d, &r("acctId=acct-carol")).unwrap()),
            [(2, "s-carol".into())]
        );
        let i = scenario("Interface");
        assert_eq!(
            sessions(
                &i.resolve(&d, &r("interfaceName=ge-0/0/0.100;router=bng1"))
                    .unwrap()
            ),
            [(1, "s-alice".into())]
        );
        // An interface nobody is bound to: the SAE of the router's default VR.
        let res = i
            .resolve(&d, &r("interfaceName=ge-0/0/9;router=bng3"))
            .unwrap();
        assert_eq!(res.chain, "interface > vr > sae");
        assert_eq!(sessions(&res), [(3, "-".into())]);
        let err = i
            .resolve(&d, &r("interfaceName=ge-0/0/9;router=bng9"))
            .unwrap_err();
        assert!(
            err.to_string().contains(
                "interface > vr > sae: step vr > sae: no SAE owns the router of default@bng9"
            ),
            "{err}"
        );
    }

    #[test]
    fn answers_follow_the_routers_new_owner() {
        let mut d = directory();
        let s = scenario("default");
        d.apply(Publication::Owner {
            router: "bng1".into(),
            node: 2,
            epoch: 4,
        });
        // Before the new owner's replay, the old binding answers with the new owner.
        let res = s.resolve(&d, &r("loginName=alice@example.net")).unwrap();
        assert_eq!((res.matches[0].node, res.matches[0].epoch), (2, 4));
    }

    #[test]
    fn custom_scenarios_are_checked() {
        let custom: BTreeMap<String, Vec<String>> = [(
            "Mine".to_string(),
            vec![
                "dn > session > sae".to_string(),
                "ip > pool > vr > sae".to_string(),
            ],
        )]
        .into();
        let s = Scenario::named("Mine", &custom).unwrap();
        assert_eq!(s.chains().len(), 2);
        let bad = |chains: &[&str]| Scenario::new("Bad", chains).unwrap_err().to_string();
        assert!(
            bad(&["ip > dn > sae"])
                .contains("no step ip > dn (from ip: session, prefix, pool, vr, loginName)")
        );
        assert!(bad(&["ip > session"]).contains("does not end at sae"));
        assert!(bad(&["session > sae"]).contains("which no reference names"));
        assert!(bad(&["ip > bogus > sae"]).contains("unknown point \"bogus\""));
        assert!(bad(&[]).contains("has no chain"));
        assert!(
            Scenario::named("Nope", &custom)
                .unwrap_err()
                .to_string()
                .contains("known: default, OnePop")
        );
        for (name, _) in BUILT_IN {
            Scenario::named(name, &BTreeMap::new()).unwrap();
        }
    }
}
