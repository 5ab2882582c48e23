//! Node configuration: a TOML file (every field optional, unknown fields rejected) validated
//! into typed [`Config`]. Without a file the embedded defaults apply: standard ports, data in
//! the working directory, any Diameter peer accepted (with a warning).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use sae_diameter::Dictionary;

/// A configuration that cannot be used. `main` exits 64 (EX_USAGE) on it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("diameter.dictionary {path}: {source}")]
    Dictionary {
        path: PathBuf,
        source: sae_diameter::Error,
    },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// The file, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    pub node: NodeSection,
    pub log: LogSection,
    pub diameter: DiameterSection,
    pub grpc: GrpcSection,
    pub metrics: MetricsSection,
    pub sessions: SessionsSection,
    pub cops: CopsSection,
    pub cluster: ClusterSection,
    /// `[nic]`: where subscriber references are resolved: the embedded NIC (scenario, address
    /// pools) or standalone NIC endpoints.
    pub nic: NicSection,
    /// `[aggregate]`: the timers of aggregate service sessions (seed 003).
    pub aggregate: AggregateSection,
    /// The service catalog seed (`[[service]]` tables); the stored catalog wins once it exists.
    #[serde(rename = "service")]
    pub services: Vec<crate::catalog::ServiceDef>,
    /// Subscriber rules (`[[rule]]` tables), seeded like the services.
    #[serde(rename = "rule")]
    pub rules: Vec<crate::catalog::Rule>,
}

/// `[cluster]`: membership, Raft timing and router leases.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSection {
    /// gRPC addresses (`host:port`) of members to ask for admission; empty: start a
    /// single-node cluster (or restart as the member the data directory says).
    pub join: Vec<String>,
    /// Host or IP other nodes and routers reach this node at. Default: the listen address
    /// when it is a specific one, else the address this machine's hostname resolves to.
    pub advertise: Option<String>,
    /// How many members vote; later members are learners (which serve routers too).
    pub voters: usize,
    /// Router and node lease length.
    pub lease_ms: u64,
    /// How often a node renews its leases through Raft.
    pub renew_ms: u64,
    /// Clock difference between nodes the leases tolerate.
    pub clock_skew_ms: u64,
    /// Raft heartbeat interval.
    pub heartbeat_ms: u64,
    /// Raft election timeout (the lower bound; the upper is twice this).
    pub election_timeout_ms: u64,
    /// Build a Raft snapshot after this many log entries.
    pub snapshot_after: u64,
    /// The leader removes a member whose lease ran out this long ago (a node that died
    /// without leaving); 0: never (operators remove nodes with `saectl cluster remove`).
    pub remove_dead_after_ms: u64,
}

impl Default for ClusterSection {
    fn default() -> Self {
        ClusterSection {
            join: Vec::new(),
            advertise: None,
            voters: 3,
            lease_ms: 2000,
            renew_ms: 400,
            clock_skew_ms: 250,
            heartbeat_ms: 100,
            election_timeout_ms: 750,
            snapshot_after: 5000,
            remove_dead_after_ms: 300_000,
        }
    }
}

/// Validated `[cluster]` configuration.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub join: Vec<String>,
    pub advertise: Option<String>,
    pub voters: usize,
    pub lease: Duration,
    pub renew: Duration,
    pub clock_skew: Duration,
    pub heartbeat: Duration,
    pub election_timeout: Duration,
    pub snapshot_after: u64,
    /// `None`: dead members stay until removed by hand.
    pub remove_dead_after: Option<Duration>,
}

impl ClusterSection {
    fn validate(self) -> Result<ClusterConfig, ConfigError> {
        if self.voters == 0 || self.voters > 9 {
            return Err(invalid("cluster.voters", "between 1 and 9"));
        }
        if self.renew_ms == 0 || self.renew_ms * 2 > self.lease_ms {
            return Err(invalid(
                "cluster.renew_ms",
                "at least 1 and at most half of cluster.lease_ms",
            ));
        }
        if self.clock_skew_ms >= self.lease_ms {
            return Err(invalid(
                "cluster.clock_skew_ms",
                "less than cluster.lease_ms",
            ));
        }
        if self.heartbeat_ms == 0 || self.heartbeat_ms * 3 > self.election_timeout_ms {
            return Err(invalid(
                "cluster.heartbeat_ms",
                "at least 1 and at most a third of cluster.election_timeout_ms",
            ));
        }
        if self.remove_dead_after_ms > 0 && self.remove_dead_after_ms < self.lease_ms {
            return Err(invalid(
                "cluster.remove_dead_after_ms",
                "0 (never) or at least cluster.lease_ms",
            ));
        }
        if self.snapshot_after == 0 {
            return Err(invalid("cluster.snapshot_after", "at least 1"));
        }
        for j in &self.join {
            if j.rsplit_once(':')
                .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
            {
                return Err(invalid("cluster.join", format!("{j:?} is not host:port")));
            }
        }
        Ok(ClusterConfig {
            join: self.join,
            advertise: self.advertise.filter(|a| !a.is_empty()),
            voters: self.voters,
            lease: Duration::from_millis(self.lease_ms),
            renew: Duration::from_millis(self.renew_ms),
            clock_skew: Duration::from_millis(self.clock_skew_ms),
            heartbeat: Duration::from_millis(self.heartbeat_ms),
            election_timeout: Duration::from_millis(self.election_timeout_ms),
            snapshot_after: self.snapshot_after,
            remove_dead_after: (self.remove_dead_after_ms > 0)
                .then(|| Duration::from_millis(self.remove_dead_after_ms)),
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// Address of the Prometheus endpoint (`/metrics`).
    pub listen: String,
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection {
            listen: "0.0.0.0:9090".into(),
        }
    }
}

/// `[nic]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NicSection {
    /// false: the node runs without a NIC: it embeds none, publishes nothing, and finds only
    /// its own sessions, by Session-Id, user name, address or NAS-Port-Id (NIC references such
    /// as `ip=…` are refused). For a single node that needs no lookup across nodes.
    pub enabled: bool,
    /// The embedded NIC's scenario (see `sae_nic::scenario::BUILT_IN`); with `endpoints`, the
    /// standalone NICs' own configuration decides.
    pub scenario: String,
    /// Address pools of virtual routers, for the embedded NIC.
    pub pools: Vec<sae_nic::config::PoolToml>,
    /// Scenarios defined here, for the embedded NIC.
    pub scenarios: std::collections::BTreeMap<String, Vec<String>>,
    /// Standalone NICs (`host:port`). Empty: the node embeds its NIC. Otherwise the node
    /// publishes its bindings to every endpoint and resolves at the first that answers.
    pub endpoints: Vec<String>,
    /// Resolutions a node with endpoints keeps cached (0: none).
    pub cache_entries: usize,
    /// How long a cached resolution is kept at most, seconds (0: none); the NICs' invalidations
    /// drop it sooner when it changes.
    pub cache_ttl_secs: u64,
}

impl Default for NicSection {
    fn default() -> Self {
        let resolution = sae_nic::config::ResolutionToml::default();
        NicSection {
            enabled: true,
            scenario: resolution.scenario,
            pools: resolution.pools,
            scenarios: resolution.scenarios,
            endpoints: Vec::new(),
            cache_entries: 100_000,
            cache_ttl_secs: 30,
        }
    }
}

impl NicSection {
    fn validate(self) -> Result<NicConfig, ConfigError> {
        let resolution = sae_nic::config::ResolutionToml {
            scenario: self.scenario,
            pools: self.pools,
            scenarios: self.scenarios,
        }
        .validate("nic")
        .map_err(|e| invalid("nic", e.to_string()))?;
        if !self.enabled && !self.endpoints.is_empty() {
            return Err(invalid(
                "nic.endpoints",
                "standalone NICs are listed but nic.enabled is false",
            ));
        }
        let mut seen = BTreeSet::new();
        for e in &self.endpoints {
            if e.rsplit_once(':')
                .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
            {
                return Err(invalid("nic.endpoints", format!("{e:?} is not host:port")));
            }
            if !seen.insert(e) {
                return Err(invalid("nic.endpoints", format!("{e:?} is listed twice")));
            }
        }
        Ok(NicConfig {
            enabled: self.enabled,
            resolution,
            endpoints: self.endpoints,
            cache_entries: self.cache_entries,
            cache_ttl: Duration::from_secs(self.cache_ttl_secs),
        })
    }
}

/// `[aggregate]`: the four timers of seed 003, in seconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AggregateSection {
    /// Between keepalives from an aggregate session to its remote fragments.
    pub keepalive_interval_secs: u64,
    /// Before an unanswered keepalive is repeated; also between attempts to start or stop a
    /// fragment.
    pub keepalive_retry_wait_secs: u64,
    /// How long starting or stopping a fragment is retried.
    pub activation_deactivation_secs: u64,
    /// How long a fragment and its aggregate may stay unreachable before each gives the
    /// other up.
    pub failure_notification_secs: u64,
}

impl Default for AggregateSection {
    fn default() -> Self {
        let t = crate::aggregate::machine::Timers::default();
        AggregateSection {
            keepalive_interval_secs: t.keepalive_interval.as_secs(),
            keepalive_retry_wait_secs: t.keepalive_retry_wait.as_secs(),
            activation_deactivation_secs: t.activation_deactivation_time.as_secs(),
            failure_notification_secs: t.failure_notification_time.as_secs(),
        }
    }
}

impl AggregateSection {
    fn validate(self) -> Result<crate::aggregate::machine::Timers, ConfigError> {
        for (field, value) in [
            (
                "aggregate.keepalive_interval_secs",
                self.keepalive_interval_secs,
            ),
            (
                "aggregate.keepalive_retry_wait_secs",
                self.keepalive_retry_wait_secs,
            ),
            (
                "aggregate.activation_deactivation_secs",
                self.activation_deactivation_secs,
            ),
            (
                "aggregate.failure_notification_secs",
                self.failure_notification_secs,
            ),
        ] {
            if value == 0 || value > 86_400 {
                return Err(invalid(field, format!("{value}: from 1 to 86400 seconds")));
            }
        }
        if self.keepalive_retry_wait_secs > self.keepalive_interval_secs {
            return Err(invalid(
                "aggregate.keepalive_retry_wait_secs",
                "longer than aggregate.keepalive_interval_secs",
            ));
        }
        if self.failure_notification_secs <= self.keepalive_interval_secs {
            return Err(invalid(
                "aggregate.failure_notification_secs",
                "must be longer than aggregate.keepalive_interval_secs, or every fragment \
                 would be lost between two keepalives",
            ));
        }
        Ok(crate::aggregate::machine::Timers {
            keepalive_interval: Duration::from_secs(self.keepalive_interval_secs),
            keepalive_retry_wait: Duration::from_secs(self.keepalive_retry_wait_secs),
            activation_deactivation_time: Duration::from_secs(self.activation_deactivation_secs),
            failure_notification_time: Duration::from_secs(self.failure_notification_secs),
        })
    }
}

/// Validated `[nic]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicConfig {
    pub enabled: bool,
    pub resolution: sae_nic::config::Resolution,
    /// Empty: embedded.
    pub endpoints: Vec<String>,
    pub cache_entries: usize,
    pub cache_ttl: Duration,
}

impl Default for NicConfig {
    fn default() -> Self {
        NicSection::default()
            .validate()
            .expect("the default [nic] is valid")
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CopsSection {
    /// COPS listener (we are the PDP; the node never opens COPS connections).
    pub listen: String,
    /// Keep-Alive timer granted in CAT, seconds (0: no keep-alive).
    pub keepalive_secs: u16,
    /// Accounting Timer granted in CAT, seconds: the shortest interval between unsolicited usage
    /// reports (0: none).
    pub accounting_timer_secs: u16,
    /// Time a new connection has to send OPN.
    pub open_timeout_secs: u64,
    /// PEPIDs allowed to open. Empty: any PEP (logged as a warning at start).
    pub allowed_pepids: Vec<String>,
    /// Client types served and their profile. Default: 0x800B subscriber provisioning; 0x800A,
    /// 0x7926, 0x7929 call admission.
    pub client_types: Vec<ClientTypeEntry>,
    /// Call admission budgets per PEPID or per realm.
    pub budgets: Vec<BudgetEntry>,
    /// The budget of a PEP with none of its own.
    pub default_budget: BudgetLimits,
    /// Integrity (RFC 2748 HMAC-MD5 keyed digest): keys by id, the one we sign with, and
    /// whether unsigned messages are refused. Not set: no Integrity object is sent or required.
    pub integrity: Option<IntegritySection>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegritySection {
    /// The key id we sign with.
    pub key_id: u32,
    /// Keys accepted, by id, as hex.
    pub keys: std::collections::BTreeMap<String, String>,
    /// Refuse messages without Integrity (Error 15).
    #[serde(default = "yes")]
    pub required: bool,
}

fn yes() -> bool {
    true
}

impl Default for CopsSection {
    fn default() -> Self {
        CopsSection {
            listen: "0.0.0.0:3288".into(),
            keepalive_secs: 45,
            accounting_timer_secs: 0,
            open_timeout_secs: 30,
            allowed_pepids: Vec::new(),
            client_types: vec![
                ClientTypeEntry::new(0x800B, "provisioning"),
                ClientTypeEntry::new(0x800A, "admission"),
                ClientTypeEntry::new(0x7926, "admission"),
                ClientTypeEntry::new(0x7929, "admission"),
            ],
            budgets: Vec::new(),
            default_budget: BudgetLimits {
                calls: 1000,
                bandwidth_kbps: 0,
            },
            integrity: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTypeEntry {
    pub client_type: u16,
    /// "provisioning" (COPS-PR subscriber provisioning) or "admission" (SBC call admission).
    pub profile: String,
}

impl ClientTypeEntry {
    fn new(client_type: u16, profile: &str) -> Self {
        ClientTypeEntry {
            client_type,
            profile: profile.into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetEntry {
    /// The PEP this budget belongs to; or
    pub pepid: Option<String>,
    /// the realm calls name in their request.
    pub realm: Option<String>,
    /// Concurrent calls (0: no limit).
    #[serde(default)]
    pub calls: u32,
    /// Total bandwidth of the calls, kbit/s (0: no limit).
    #[serde(default)]
    pub bandwidth_kbps: u64,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetLimits {
    #[serde(default)]
    pub calls: u32,
    #[serde(default)]
    pub bandwidth_kbps: u64,
}

/// What a client type is served as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopsProfile {
    /// COPS-PR subscriber provisioning.
    Provisioning,
    /// SBC call admission control.
    Admission,
}

/// Validated COPS configuration.
#[derive(Debug, Clone)]
pub struct CopsConfig {
    pub listen: SocketAddr,
    pub keepalive_secs: u16,
    pub accounting_timer_secs: u16,
    pub open_timeout: Duration,
    /// `None`: any PEP.
    pub allowed_pepids: Option<BTreeSet<String>>,
    pub profiles: std::collections::BTreeMap<u16, CopsProfile>,
    pub realm_budgets: std::collections::BTreeMap<String, Budget>,
    pub pep_budgets: std::collections::BTreeMap<String, Budget>,
    pub default_budget: Budget,
    pub integrity: Option<sae_cops::pdp::IntegrityConfig>,
}

impl CopsSection {
    fn validate(self) -> Result<CopsConfig, ConfigError> {
        let listen: SocketAddr = self.listen.parse().map_err(|_| {
            invalid(
                "cops.listen",
                format!("{:?} is not an address:port", self.listen),
            )
        })?;
        if self.open_timeout_secs == 0 {
            return Err(invalid(
                "cops.open_timeout_secs",
                "must be at least 1 second",
            ));
        }
        let mut profiles = std::collections::BTreeMap::new();
        for e in &self.client_types {
            let profile = match e.profile.as_str() {
                "provisioning" => CopsProfile::Provisioning,
                "admission" => CopsProfile::Admission,
                other => {
                    return Err(invalid(
                        "cops.client_types",
                        format!("{other:?}: expected \"provisioning\" or \"admission\""),
                    ));
                }
            };
            if e.client_type == 0 {
                return Err(invalid(
                    "cops.client_types",
                    "client type 0 is reserved for KA",
                ));
            }
            if profiles.insert(e.client_type, profile).is_some() {
                return Err(invalid(
                    "cops.client_types",
                    format!("client type {:#06x} listed twice", e.client_type),
                ));
            }
        }
        let mut allowed = BTreeSet::new();
        for p in &self.allowed_pepids {
            if p.is_empty() || !p.is_ascii() {
                return Err(invalid(
                    "cops.allowed_pepids",
                    format!("{p:?} is not an ASCII PEPID"),
                ));
            }
            allowed.insert(p.clone());
        }
        let mut realm_budgets = std::collections::BTreeMap::new();
        let mut pep_budgets = std::collections::BTreeMap::new();
        for b in &self.budgets {
            let budget = Budget {
                calls: b.calls,
                bandwidth_kbps: b.bandwidth_kbps,
            };
            let dup = match (&b.pepid, &b.realm) {
                (Some(p), None) => pep_budgets.insert(p.clone(), budget).is_some(),
                (None, Some(r)) => realm_budgets.insert(r.clone(), budget).is_some(),
                _ => {
                    return Err(invalid(
                        "cops.budgets",
                        "each budget names exactly one of pepid or realm",
                    ));
                }
            };
            if dup {
                return Err(invalid("cops.budgets", "a PEPID or realm has two budgets"));
            }
        }
        let integrity = match &self.integrity {
            None => None,
            Some(i) => {
                let mut keys = sae_cops::KeyTable::new();
                for (id, hex) in &i.keys {
                    let id: u32 = id.parse().map_err(|_| {
                        invalid(
                            "cops.integrity.keys",
                            format!("key id {id:?} is not a number"),
                        )
                    })?;
                    let key = decode_hex(hex).ok_or_else(|| {
                        invalid("cops.integrity.keys", format!("key {id} is not hex octets"))
                    })?;
                    if key.is_empty() {
                        return Err(invalid("cops.integrity.keys", format!("key {id} is empty")));
                    }
                    keys.insert(id, key);
                }
                Some(
                    sae_cops::pdp::IntegrityConfig::new(keys, i.key_id, i.required).map_err(
                        |_| {
                            invalid(
                                "cops.integrity.key_id",
                                format!("no key {} in cops.integrity.keys", i.key_id),
                            )
                        },
                    )?,
                )
            }
        };
        Ok(CopsConfig {
            listen,
            integrity,
            keepalive_secs: self.keepalive_secs,
            accounting_timer_secs: self.accounting_timer_secs,
            open_timeout: Duration::from_secs(self.open_timeout_secs),
            allowed_pepids: (!allowed.is_empty()).then_some(allowed),
            profiles,
            realm_budgets,
            pep_budgets,
            default_budget: Budget {
                calls: self.default_budget.calls,
                bandwidth_kbps: self.default_budget.bandwidth_kbps,
            },
        })
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsSection {
    /// How long to wait for a PPA before re-sending the PPR.
    pub ppr_timeout_secs: u64,
    /// PPRs re-sent after a timeout before the change counts as failed.
    pub ppr_retries: u32,
    /// After an SRQ, sessions the router does not replay within this window are ended.
    pub resync_window_secs: u64,
    /// After an ASA, how long to wait for the router's STR before ending the session anyway.
    pub logout_timeout_secs: u64,
    /// Arbiters (threads) running subscriber session actors; 0: one per CPU core.
    pub arbiters: usize,
}

impl Default for SessionsSection {
    fn default() -> Self {
        SessionsSection {
            ppr_timeout_secs: 5,
            ppr_retries: 2,
            resync_window_secs: 30,
            logout_timeout_secs: 10,
            arbiters: 0,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcSection {
    /// Address of the management API (gRPC, with health and reflection).
    pub listen: String,
}

impl Default for GrpcSection {
    fn default() -> Self {
        GrpcSection {
            listen: "0.0.0.0:50051".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeSection {
    /// Node name, used in logs and as the default Diameter Origin-Host prefix.
    pub name: String,
    /// Where the node keeps its data.
    pub data_dir: PathBuf,
}

impl Default for NodeSection {
    fn default() -> Self {
        NodeSection {
            name: "sae-1".into(),
            data_dir: PathBuf::from("."),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// "plain" or "json".
    pub format: String,
    /// A tracing filter, e.g. "info" or "sae_node=debug,info". RUST_LOG overrides it.
    pub level: String,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            format: "plain".into(),
            level: "info".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiameterSection {
    pub listen: String,
    /// Default: "<node name>.sae.localdomain".
    pub origin_host: Option<String>,
    pub origin_realm: String,
    /// Host-IP-Address values announced in CEA. Default: the listen address, or 127.0.0.1
    /// when listening on every interface.
    pub host_ip_addresses: Vec<IpAddr>,
    pub product_name: String,
    pub vendor_id: u32,
    /// Applications served: "jsrc", "ptsp".
    pub applications: Vec<String>,
    /// Origin-Hosts allowed to connect. Absent: any peer (logged as a warning at start); an
    /// empty list is refused, as it would turn every router away.
    pub allowed_peers: Option<Vec<String>>,
    /// What to do when a second connection presents an Origin-Host that is already up:
    /// "replace" (the new connection takes over; the old one is closed) or "reject" (CEA 4003).
    pub duplicate_peer: String,
    pub watchdog_interval_secs: u64,
    pub capabilities_timeout_secs: u64,
    pub request_timeout_secs: u64,
    pub disconnect_timeout_secs: u64,
    pub max_message_len: usize,
    pub max_grouped_depth: usize,
    /// Requests the node may have in flight on one router connection (PPR, ACR, ASR, SRQ);
    /// more are refused without being sent.
    pub max_pending_requests: usize,
    /// Answers kept (for RFC 6733's four minutes) to repeat to a router that re-sends a
    /// request with the T bit, instead of running it twice; 0 turns duplicate detection off.
    pub duplicate_answers: usize,
    /// An extra dictionary file (same format as the built-in one) merged over the built-in.
    pub dictionary: Option<PathBuf>,
}

impl Default for DiameterSection {
    fn default() -> Self {
        DiameterSection {
            listen: "0.0.0.0:3868".into(),
            origin_host: None,
            origin_realm: "sae.localdomain".into(),
            host_ip_addresses: Vec::new(),
            product_name: "SAE cluster".into(),
            vendor_id: 0,
            applications: vec!["jsrc".into(), "ptsp".into()],
            allowed_peers: None,
            duplicate_peer: "replace".into(),
            watchdog_interval_secs: 30,
            capabilities_timeout_secs: 10,
            request_timeout_secs: 10,
            disconnect_timeout_secs: 5,
            max_message_len: 64 * 1024,
            max_grouped_depth: 8,
            max_pending_requests: 4096,
            duplicate_answers: 16384,
            dictionary: None,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Plain,
    Json,
}

/// Diameter applications the node serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DiameterApplication {
    Jsrc,
    Ptsp,
}

impl DiameterApplication {
    /// Application-Id.
    pub fn id(self) -> u32 {
        match self {
            DiameterApplication::Jsrc => sae_diameter::codes::app::JSRC,
            DiameterApplication::Ptsp => sae_diameter::codes::app::PTSP,
        }
    }

    /// Name used in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            DiameterApplication::Jsrc => "jsrc",
            DiameterApplication::Ptsp => "ptsp",
        }
    }
}

/// Policy for a second connection with an Origin-Host that is already up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DuplicatePeer {
    Replace,
    Reject,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub name: String,
    pub data_dir: PathBuf,
    pub log_format: LogFormat,
    pub log_level: String,
    pub diameter: DiameterConfig,
    /// Management API address.
    pub grpc_listen: SocketAddr,
    /// Prometheus endpoint address.
    pub metrics_listen: SocketAddr,
    pub sessions: SessionSettings,
    /// Subscriber session arbiters (at least 1).
    pub session_arbiters: usize,
    /// The catalog seed (written to the control state when the cluster is created).
    pub catalog: crate::catalog::CatalogFile,
    pub cops: CopsConfig,
    pub cluster: ClusterConfig,
    pub nic: NicConfig,
    /// Aggregate sessions' timers.
    pub aggregate: crate::aggregate::machine::Timers,
}

/// Validated Diameter configuration.
#[derive(Debug, Clone)]
pub struct DiameterConfig {
    pub listen: SocketAddr,
    pub origin_host: String,
    pub origin_realm: String,
    pub host_ip_addresses: Vec<IpAddr>,
    pub product_name: String,
    pub vendor_id: u32,
    pub applications: BTreeSet<DiameterApplication>,
    /// `None`: any peer.
    pub allowed_peers: Option<BTreeSet<String>>,
    pub duplicate_peer: DuplicatePeer,
    pub watchdog_interval: Duration,
    pub capabilities_timeout: Duration,
    pub request_timeout: Duration,
    pub disconnect_timeout: Duration,
    pub limits: sae_diameter::Limits,
    pub max_pending_requests: usize,
    pub dictionary: std::sync::Arc<Dictionary>,
}

impl Config {
    /// The embedded defaults.
    pub fn defaults() -> Config {
        FileConfig::default()
            .validate(Path::new("."))
            .expect("defaults are valid")
    }

    /// Reads and validates a file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let (file, base) = FileConfig::read(path)?;
        file.validate(&base)
    }

    /// Parses and validates TOML text; `path` names it in errors, relative paths in it are
    /// taken from `base`.
    pub fn from_toml(text: &str, path: &Path, base: &Path) -> Result<Config, ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            source: Box::new(e),
        })?;
        file.validate(base)
    }
}

impl FileConfig {
    /// Reads and parses a file without validating it (flags may still override fields), and
    /// the directory relative paths in it are taken from.
    pub fn read(path: &Path) -> Result<(FileConfig, PathBuf), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let file = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            source: Box::new(e),
        })?;
        Ok((file, path.parent().unwrap_or(Path::new(".")).to_path_buf()))
    }
}

fn is_identity(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

impl FileConfig {
    /// Checks every field and builds the typed configuration.
    pub fn validate(self, base: &Path) -> Result<Config, ConfigError> {
        let FileConfig {
            node,
            log,
            diameter: d,
            grpc,
            metrics,
            sessions,
            cops,
            cluster,
            nic,
            aggregate,
            services,
            rules,
        } = self;
        let nic = nic.validate()?;
        let aggregate = aggregate.validate()?;
        let cops = cops.validate()?;
        let cluster = cluster.validate()?;
        let metrics_listen: SocketAddr = metrics.listen.parse().map_err(|_| {
            invalid(
                "metrics.listen",
                format!("{:?} is not an address:port", metrics.listen),
            )
        })?;
        for (field, v) in [
            ("sessions.ppr_timeout_secs", sessions.ppr_timeout_secs),
            ("sessions.resync_window_secs", sessions.resync_window_secs),
            ("sessions.logout_timeout_secs", sessions.logout_timeout_secs),
        ] {
            if v == 0 {
                return Err(invalid(field, "must be at least 1 second"));
            }
        }
        if sessions.ppr_retries > 10 {
            return Err(invalid("sessions.ppr_retries", "at most 10"));
        }
        let session_arbiters = match sessions.arbiters {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n if n > 256 => return Err(invalid("sessions.arbiters", "at most 256")),
            n => n,
        };
        let catalog = crate::catalog::CatalogFile { services, rules };
        catalog
            .validate()
            .map_err(|e| invalid("catalog", e.to_string()))?;
        let grpc_listen: SocketAddr = grpc.listen.parse().map_err(|_| {
            invalid(
                "grpc.listen",
                format!("{:?} is not an address:port", grpc.listen),
            )
        })?;
        if node.name.is_empty() || !is_identity(&node.name) {
            return Err(invalid(
                "node.name",
                "must be letters, digits, '.', '-' or '_'",
            ));
        }
        let log_format = match log.format.as_str() {
            "plain" => LogFormat::Plain,
            "json" => LogFormat::Json,
            other => {
                return Err(invalid(
                    "log.format",
                    format!("{other:?}: expected \"plain\" or \"json\""),
                ));
            }
        };
        tracing_subscriber::EnvFilter::try_new(&log.level)
            .map_err(|e| invalid("log.level", format!("{:?}: {e}", log.level)))?;

        let listen: SocketAddr = d.listen.parse().map_err(|_| {
            invalid(
                "diameter.listen",
                format!("{:?} is not an address:port", d.listen),
            )
        })?;
        let origin_host = d
            .origin_host
            .unwrap_or_else(|| format!("{}.sae.localdomain", node.name));
        if !is_identity(&origin_host) {
            return Err(invalid(
                "diameter.origin_host",
                format!("{origin_host:?} is not a DiameterIdentity (FQDN)"),
            ));
        }
        if !is_identity(&d.origin_realm) {
            return Err(invalid(
                "diameter.origin_realm",
                format!("{:?} is not a realm (FQDN)", d.origin_realm),
            ));
        }
        let host_ip_addresses = if d.host_ip_addresses.is_empty() {
            vec![if listen.ip().is_unspecified() {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            } else {
                listen.ip()
            }]
        } else {
            d.host_ip_addresses
        };
        if d.product_name.is_empty() {
            return Err(invalid("diameter.product_name", "must not be empty"));
        }
        let mut applications = BTreeSet::new();
        for name in &d.applications {
            applications.insert(match name.to_ascii_lowercase().as_str() {
                "jsrc" => DiameterApplication::Jsrc,
                "ptsp" => DiameterApplication::Ptsp,
                _ => {
                    return Err(invalid(
                        "diameter.applications",
                        format!("{name:?}: expected \"jsrc\" or \"ptsp\""),
                    ));
                }
            });
        }
        if applications.is_empty() {
            return Err(invalid(
                "diameter.applications",
                "at least one application is needed",
            ));
        }
        if d.allowed_peers.as_ref().is_some_and(Vec::is_empty) {
            return Err(invalid(
                "diameter.allowed_peers",
                "an empty list would refuse every router; leave the key out to accept any peer",
            ));
        }
        let mut allowed = BTreeSet::new();
        for host in d.allowed_peers.iter().flatten() {
            if !is_identity(host) {
                return Err(invalid(
                    "diameter.allowed_peers",
                    format!("{host:?} is not a DiameterIdentity"),
                ));
            }
            allowed.insert(host.to_ascii_lowercase());
        }
        let duplicate_peer = match d.duplicate_peer.as_str() {
            "replace" => DuplicatePeer::Replace,
            "reject" => DuplicatePeer::Reject,
            other => {
                return Err(invalid(
                    "diameter.duplicate_peer",
                    format!("{other:?}: expected \"replace\" or \"reject\""),
                ));
            }
        };
        if d.watchdog_interval_secs < 6 {
            return Err(invalid(
                "diameter.watchdog_interval_secs",
                "RFC 3539 requires at least 6 seconds",
            ));
        }
        for (field, v) in [
            (
                "diameter.capabilities_timeout_secs",
                d.capabilities_timeout_secs,
            ),
            ("diameter.request_timeout_secs", d.request_timeout_secs),
            (
                "diameter.disconnect_timeout_secs",
                d.disconnect_timeout_secs,
            ),
        ] {
            if v == 0 {
                return Err(invalid(field, "must be at least 1 second"));
            }
        }
        if !(1024..=sae_diameter::message::MAX_LENGTH_FIELD).contains(&d.max_message_len) {
            return Err(invalid(
                "diameter.max_message_len",
                "must be between 1024 and 16777215",
            ));
        }
        if d.duplicate_answers > 10_000_000 {
            return Err(invalid("diameter.duplicate_answers", "at most 10000000"));
        }
        if !(1..=1_000_000).contains(&d.max_pending_requests) {
            return Err(invalid(
                "diameter.max_pending_requests",
                "must be between 1 and 1000000",
            ));
        }
        if !(2..=64).contains(&d.max_grouped_depth) {
            return Err(invalid(
                "diameter.max_grouped_depth",
                "must be between 2 and 64",
            ));
        }
        let limits = sae_diameter::Limits::new(d.max_message_len, d.max_grouped_depth)
            .map_err(|e| invalid("diameter", e.to_string()))?;
        let mut dictionary = Dictionary::base();
        if let Some(path) = d.dictionary {
            let path = base.join(path);
            let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            dictionary
                .load_str(&text)
                .and_then(|()| sae_diameter::JuniperCodes::from_dictionary(&dictionary).map(drop))
                .map_err(|source| ConfigError::Dictionary { path, source })?;
        }
        Ok(Config {
            name: node.name,
            data_dir: base.join(node.data_dir),
            log_format,
            log_level: log.level,
            grpc_listen,
            metrics_listen,
            sessions: SessionSettings {
                ppr_timeout: Duration::from_secs(sessions.ppr_timeout_secs),
                ppr_retries: sessions.ppr_retries,
                resync_window: Duration::from_secs(sessions.resync_window_secs),
                logout_timeout: Duration::from_secs(sessions.logout_timeout_secs),
                request_timeout: Duration::from_secs(d.request_timeout_secs),
                duplicate_answers: d.duplicate_answers,
            },
            session_arbiters,
            catalog,
            cops,
            cluster,
            nic,
            aggregate,
            diameter: DiameterConfig {
                listen,
                origin_host,
                origin_realm: d.origin_realm,
                host_ip_addresses,
                product_name: d.product_name,
                vendor_id: d.vendor_id,
                applications,
                allowed_peers: (!allowed.is_empty()).then_some(allowed),
                duplicate_peer,
                watchdog_interval: Duration::from_secs(d.watchdog_interval_secs),
                capabilities_timeout: Duration::from_secs(d.capabilities_timeout_secs),
                request_timeout: Duration::from_secs(d.request_timeout_secs),
                disconnect_timeout: Duration::from_secs(d.disconnect_timeout_secs),
                limits,
                max_pending_requests: d.max_pending_requests,
                dictionary: std::sync::Arc::new(dictionary),
            },
        })
    }
}

/// A limit on concurrent calls and their bandwidth (0: no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Budget {
    pub calls: u32,
    pub bandwidth_kbps: u64,
}

/// Timing and retry settings of the subscriber flows.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// How long to wait for a PPA.
    pub ppr_timeout: Duration,
    /// PPRs re-sent after a timeout or a lost connection before giving up.
    pub ppr_retries: u32,
    /// After an SRQ, sessions the router has not replayed within this window are ended.
    pub resync_window: Duration,
    /// After an ASA, how long to wait for the router's STR before ending the session anyway.
    pub logout_timeout: Duration,
    /// Timeout of the other SAE-initiated requests (ASR, ACR, SRQ).
    pub request_timeout: Duration,
    /// Answers kept to repeat to re-sent duplicates of router requests (0: none).
    pub duplicate_answers: usize,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            ppr_timeout: Duration::from_secs(5),
            ppr_retries: 2,
            resync_window: Duration::from_secs(30),
            logout_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            duplicate_answers: 16384,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("test.toml"), Path::new("/tmp"))
    }

    #[test]
    fn defaults_listen_on_the_standard_port_and_accept_any_peer() {
        let c = Config::defaults();
        assert_eq!(c.diameter.listen.port(), 3868);
        assert!(c.diameter.allowed_peers.is_none());
        assert_eq!(c.diameter.origin_host, "sae-1.sae.localdomain");
        assert_eq!(c.diameter.applications.len(), 2);
        assert_eq!(c.cops.listen.port(), 3288);
        assert_eq!(c.grpc_listen.port(), 50051);
        assert_eq!(c.metrics_listen.port(), 9090);
        assert_eq!(c.data_dir, PathBuf::from("."));
        assert!(c.cluster.join.is_empty(), "alone: a single-node cluster");
    }

    #[test]
    fn an_empty_allow_list_is_refused_rather_than_read_as_any_peer() {
        let e = parse("[diameter]\nallowed_peers = []\n").unwrap_err();
        assert!(e.to_string().starts_with("diameter.allowed_peers:"), "{e}");
        let c = parse("[diameter]\nallowed_peers = [\"Router1.example.net\"]\n").unwrap();
        assert_eq!(
            c.diameter.allowed_peers,
            Some(BTreeSet::from(["router1.example.net".to_owned()]))
        );
    }

    #[test]
    fn a_full_file_is_read() {
        let c = parse(
            r#"
            [node]
            name = "sae-2"
            data_dir = "data"
            [log]
            format = "json"
            [diameter]
            listen = "127.0.0.1:0"
            origin_host = "sae2.example.net"
            origin_realm = "example.net"
            allowed_peers = ["Router1.example.net"]
            applications = ["jsrc"]
            watchdog_interval_secs = 6
            duplicate_peer = "reject"
            "#,
        )
        .unwrap();
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.data_dir, Path::new("/tmp/data"));
        assert!(
            c.diameter
                .allowed_peers
                .unwrap()
                .contains("router1.example.net")
        );
        assert_eq!(c.diameter.duplicate_peer, DuplicatePeer::Reject);
        assert_eq!(
            c.diameter.host_ip_addresses,
            vec!["127.0.0.1".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn bad_values_name_the_field() {
        for (text, field) in [
            ("[diameter]\nlisten = \"nowhere\"", "diameter.listen"),
            (
                "[diameter]\nwatchdog_interval_secs = 2",
                "diameter.watchdog_interval_secs",
            ),
            (
                "[diameter]\napplications = [\"gx\"]",
                "diameter.applications",
            ),
            (
                "[diameter]\norigin_host = \"bad host\"",
                "diameter.origin_host",
            ),
            ("[log]\nformat = \"xml\"", "log.format"),
            (
                "[diameter]\nduplicate_peer = \"maybe\"",
                "diameter.duplicate_peer",
            ),
            ("[cluster]\nvoters = 0", "cluster.voters"),
            ("[cluster]\nrenew_ms = 1500", "cluster.renew_ms"),
            ("[cluster]\nclock_skew_ms = 2000", "cluster.clock_skew_ms"),
            ("[cluster]\nheartbeat_ms = 500", "cluster.heartbeat_ms"),
            ("[cluster]\njoin = [\"no-port\"]", "cluster.join"),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.starts_with(field), "{text}: {err}");
        }
    }

    #[test]
    fn cops_profiles_and_budgets_are_read() {
        let c = parse(
            r#"
            [cops]
            listen = "127.0.0.1:3288"
            keepalive_secs = 30
            client_types = [{ client_type = 0x800B, profile = "provisioning" },
                            { client_type = 0x7926, profile = "admission" }]
            budgets = [{ pepid = "sbc1", calls = 10 }, { realm = "voice.example", bandwidth_kbps = 2000 }]
            "#,
        )
        .unwrap();
        assert_eq!(c.cops.profiles.len(), 2);
        assert_eq!(c.cops.profiles[&0x7926], CopsProfile::Admission);
        assert_eq!(c.cops.pep_budgets["sbc1"].calls, 10);
        assert_eq!(c.cops.realm_budgets["voice.example"].bandwidth_kbps, 2000);
        let c = parse("[cops.integrity]\nkey_id = 1\nkeys = { 1 = \"0a0b0c\" }").unwrap();
        assert!(c.cops.integrity.is_some());
        let err = parse("[cops.integrity]\nkey_id = 2\nkeys = { 1 = \"0a0b0c\" }")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("cops.integrity.key_id"), "{err}");
        let err = parse("[cops.integrity]\nkey_id = 1\nkeys = { 1 = \"xyz\" }")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("cops.integrity.keys"), "{err}");
        let d = Config::defaults();
        assert_eq!(d.cops.listen.port(), 3288);
        assert_eq!(d.cops.profiles[&0x800B], CopsProfile::Provisioning);
        for (text, field) in [
            (
                "[cops]\nclient_types = [{ client_type = 1, profile = \"x\" }]",
                "cops.client_types",
            ),
            ("[cops]\nbudgets = [{ calls = 1 }]", "cops.budgets"),
            ("[cops]\nlisten = \"x\"", "cops.listen"),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.starts_with(field), "{text}: {err}");
        }
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = parse("[diameter]\nlisten_port = 3868")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn a_site_dictionary_is_merged_over_the_built_in_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("site.toml"),
            "[[avp]]\ncode = 9001\nvendor = 2636\nname = \"Site-Tag\"\ntype = \"UTF8String\"\n",
        )
        .unwrap();
        let c = Config::from_toml(
            "[diameter]\ndictionary = \"site.toml\"",
            Path::new("t.toml"),
            dir.path(),
        )
        .unwrap();
        assert_eq!(
            c.diameter.dictionary.avp(9001, 2636).unwrap().name,
            "Site-Tag"
        );
        let err = Config::from_toml(
            "[diameter]\ndictionary = \"missing.toml\"",
            Path::new("t.toml"),
            dir.path(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("missing.toml"), "{err}");
        std::fs::write(
            dir.path().join("bad.toml"),
            "[[avp]]\ncode = 1\nname = \"X\"\ntype = \"Blob\"\n",
        )
        .unwrap();
        let err = Config::from_toml(
            "[diameter]\ndictionary = \"bad.toml\"",
            Path::new("t.toml"),
            dir.path(),
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("diameter.dictionary"), "{err}");
    }

    #[test]
    fn aggregate_timers_are_checked() {
        let parse = |text: &str| Config::from_toml(text, Path::new("t.toml"), Path::new("."));
        let t = parse("[aggregate]\nkeepalive_interval_secs = 5")
            .unwrap()
            .aggregate;
        assert_eq!(t.keepalive_interval, Duration::from_secs(5));
        assert_eq!(t.failure_notification_time, Duration::from_secs(30));
        for (text, field) in [
            (
                "keepalive_interval_secs = 0",
                "aggregate.keepalive_interval_secs",
            ),
            (
                "keepalive_retry_wait_secs = 20",
                "aggregate.keepalive_retry_wait_secs",
            ),
            (
                "failure_notification_secs = 10",
                "aggregate.failure_notification_secs",
            ),
            (
                "activation_deactivation_secs = 100000",
                "aggregate.activation_deactivation_secs",
            ),
        ] {
            let err = parse(&format!("[aggregate]\n{text}"))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(field), "{text}: {err}");
        }
        assert!(parse("[aggregate]\nkeepalive = 1").is_err());
    }

    #[test]
    fn the_nic_can_be_disabled_but_not_with_endpoints() {
        let parse = |text: &str| Config::from_toml(text, Path::new("t.toml"), Path::new("."));
        assert!(parse("").unwrap().nic.enabled);
        assert!(!parse("[nic]\nenabled = false").unwrap().nic.enabled);
        let err = parse("[nic]\nenabled = false\nendpoints = [\"nic1:50070\"]").unwrap_err();
        assert!(err.to_string().starts_with("nic.endpoints"), "{err}");
        let err = parse("[nic]\nendpoints = [\"nic1\"]").unwrap_err();
        assert!(err.to_string().contains("host:port"), "{err}");
    }

    #[test]
    fn sample_configs_in_deploy_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                Config::from_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                seen += 1;
            }
        }
        assert!(seen > 0, "no sample config in {}", dir.display());
    }
}
