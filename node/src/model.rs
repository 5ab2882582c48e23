//! The subscriber domain as plain Rust values: subscriber sessions, the services active on them,
//! and usage records. Actors own live copies; the store keeps them on disk; the gRPC layer
//! converts them to and from prost types.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch.
pub type UnixMs = i64;

/// The wall clock in [`UnixMs`].
pub fn now_ms() -> UnixMs {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Where a service stands for one subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceState {
    /// Sent to the router (AAA or PPR), not confirmed yet.
    Installing,
    /// The router installed the policy.
    Active,
    /// A removal was sent, not confirmed yet.
    Removing,
    /// The router refused the policy or never answered.
    Failed,
}

impl ServiceState {
    pub fn name(self) -> &'static str {
        match self {
            ServiceState::Installing => "installing",
            ServiceState::Active => "active",
            ServiceState::Removing => "removing",
            ServiceState::Failed => "failed",
        }
    }
}

/// A service as it stands for one subscriber: the policy the router holds for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSession {
    pub service: String,
    pub policy_name: String,
    pub template_name: String,
    /// Substitutions after rule and request overrides.
    pub substitutions: BTreeMap<String, String>,
    pub accounting: bool,
    pub state: ServiceState,
    /// Result-Code of the router's last answer about this policy (0: none yet).
    pub result_code: u32,
    pub error: String,
    pub activated_ms: UnixMs,
}

/// Where a subscriber session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SessionState {
    Active,
    /// ASR sent; waiting for the router's STR.
    LoggingOut,
    /// Recovered from storage after a restart or held through an SRQ; waiting for the router
    /// to replay it.
    Resyncing,
}

impl SessionState {
    pub fn name(self) -> &'static str {
        match self {
            SessionState::Active => "active",
            SessionState::LoggingOut => "logging-out",
            SessionState::Resyncing => "resyncing",
        }
    }
}

/// One subscriber session, keyed by its Diameter Session-Id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriberRecord {
    pub session_id: String,
    /// The router's Origin-Host, lower case.
    pub router: String,
    pub router_realm: String,
    /// Auth-Application-Id the session runs under (JSRC or PTSP).
    pub application_id: u32,
    pub user_name: Option<String>,
    pub framed_ip: Option<Ipv4Addr>,
    pub nas_port_id: Option<String>,
    pub login_ms: UnixMs,
    /// The router confirmed the provisioning (confirm AAR).
    pub confirmed: bool,
    pub state: SessionState,
    pub services: Vec<ServiceSession>,
    /// COPS-PR: the router's id of the subscriber interface (its SubscriberInterface instance),
    /// which the policies installed for the session refer to.
    #[serde(default)]
    pub router_interface: Option<u32>,
}

/// What a usage record reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UsageKind {
    Start,
    Interim,
    Stop,
    Event,
    /// Returned by the router when the SAE asked for statistics.
    Collected,
    /// Carried by the router's STR or ASA at logout.
    Final,
}

impl UsageKind {
    pub fn name(self) -> &'static str {
        match self {
            UsageKind::Start => "start",
            UsageKind::Interim => "interim",
            UsageKind::Stop => "stop",
            UsageKind::Event => "event",
            UsageKind::Collected => "collected",
            UsageKind::Final => "final",
        }
    }

    /// From Accounting-Record-Type (1 EVENT, 2 START, 3 INTERIM, 4 STOP).
    pub fn from_record_type(v: i32) -> Option<UsageKind> {
        match v {
            1 => Some(UsageKind::Event),
            2 => Some(UsageKind::Start),
            3 => Some(UsageKind::Interim),
            4 => Some(UsageKind::Stop),
            _ => None,
        }
    }
}

/// Usage counters of one policy of one session at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// Assigned by the store, increasing per node (0 before it is stored).
    pub id: u64,
    pub session_id: String,
    pub user_name: Option<String>,
    pub router: String,
    pub policy_name: String,
    pub kind: UsageKind,
    pub record_number: u32,
    pub input_octets: u64,
    pub output_octets: u64,
    pub input_packets: u64,
    pub output_packets: u64,
    pub time_ms: UnixMs,
}

/// A filter over usage records; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageFilter {
    pub session_id: Option<String>,
    pub user_name: Option<String>,
    pub policy_name: Option<String>,
    /// Only records with an id above this.
    pub after_id: u64,
    pub limit: usize,
}

impl UsageFilter {
    pub fn matches(&self, r: &UsageRecord) -> bool {
        r.id > self.after_id
            && self.session_id.as_ref().is_none_or(|s| *s == r.session_id)
            && self
                .user_name
                .as_ref()
                .is_none_or(|u| r.user_name.as_ref() == Some(u))
            && self
                .policy_name
                .as_ref()
                .is_none_or(|p| *p == r.policy_name)
    }
}
