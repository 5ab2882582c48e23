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

/// How a subscriber session is attached to its router: the protocol and what that protocol
/// needs to reach the session on the router.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "protocol", rename_all = "kebab-case")]
pub enum Attachment {
    /// A Diameter (JSRC/PTSP) session of the router named by [`SubscriberRecord::router`].
    Diameter {
        /// The router's Origin-Realm.
        realm: String,
        /// Auth-Application-Id the session runs under (JSRC or PTSP).
        application_id: u32,
    },
    /// A COPS-PR request state of a PEP.
    Cops {
        pepid: String,
        client_type: u16,
        /// The request state's Handle.
        #[serde(with = "hex_bytes")]
        handle: Vec<u8>,
        /// The router's id of the subscriber interface (its SubscriberInterface instance),
        /// which the policies installed for the session refer to.
        interface: u32,
    },
}

/// How a subscriber session came to be: SRC's login types (seed 003, Table 4 `loginType`).
/// This node derives them from what the router sends: a Diameter login carrying DHCP options
/// is an address login (`AUTHADDR` with a User-Name, `ADDR` without); any other router login
/// is an interface login (`AUTHINTF` with a User-Name, as for PPP, `INTF` without). `PORTAL`
/// and `ASSIGNEDIP` name logins through a portal and through an application, which this
/// node does not start itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LoginType {
    #[serde(rename = "ADDR")]
    Addr,
    #[serde(rename = "AUTHADDR")]
    AuthAddr,
    #[default]
    #[serde(rename = "INTF")]
    Intf,
    #[serde(rename = "AUTHINTF")]
    AuthIntf,
    #[serde(rename = "PORTAL")]
    Portal,
    #[serde(rename = "ASSIGNEDIP")]
    AssignedIp,
}

impl LoginType {
    pub fn name(self) -> &'static str {
        match self {
            LoginType::Addr => "ADDR",
            LoginType::AuthAddr => "AUTHADDR",
            LoginType::Intf => "INTF",
            LoginType::AuthIntf => "AUTHINTF",
            LoginType::Portal => "PORTAL",
            LoginType::AssignedIp => "ASSIGNEDIP",
        }
    }

    /// The login type of a router login: an address login when `address_login` (the router
    /// sent DHCP options), authenticated when it carries a user name.
    pub fn of_router_login(address_login: bool, authenticated: bool) -> LoginType {
        match (address_login, authenticated) {
            (true, true) => LoginType::AuthAddr,
            (true, false) => LoginType::Addr,
            (false, true) => LoginType::AuthIntf,
            (false, false) => LoginType::Intf,
        }
    }
}

/// What else a subscriber session is known by (seed 003, Table 4): read from the router's
/// login, derived from it, or assigned by the catalog's rule. Records stored before these
/// existed read with every field empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SubscriberAttributes {
    pub login_type: LoginType,
    /// Framed-IPv6-Prefix (`2001:db8:1::/64`), as many as the router sent.
    pub framed_ipv6_prefixes: Vec<String>,
    /// Delegated-IPv6-Prefix.
    pub delegated_ipv6_prefixes: Vec<String>,
    /// NAS-IP-Address: the router's own address.
    pub nas_ip: Option<Ipv4Addr>,
    /// Calling-Station-Id: the DHCP subscriber's MAC address as text.
    pub mac_address: Option<String>,
    /// Class: the RADIUS class the subscriber was authorized with (text, or hex when not
    /// UTF-8); several are joined with `,`.
    pub radius_class: Option<String>,
    /// The interface part of NAS-Port-Id (before any `:`), or the COPS-PR interface name.
    pub interface_name: Option<String>,
    /// NAS-Port-Id whole: the interface with its layer-2 details.
    pub port_id: Option<String>,
    /// The virtual router, `vrname@hostname`; empty means `default@<router>`.
    pub virtual_router: Option<String>,
    /// The PPP or DHCP user name the router authenticated, which a portal login does not
    /// change.
    pub primary_user_name: Option<String>,
    /// Assigned by the catalog's rule.
    pub subscriber_dn: Option<String>,
    pub retailer_dn: Option<String>,
    /// Assigned by the catalog's rule; the login name when the rule names none.
    pub accounting_id: Option<String>,
    /// Services the subscriber is subscribed to (the rule's list).
    pub subscriptions: Vec<String>,
}

/// One subscriber session, keyed by its Session-Id (a COPS-PR session's names its PEP, client
/// type and handle).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StoredRecord")]
pub struct SubscriberRecord {
    pub session_id: String,
    /// The router's Origin-Host or the PEP's PEPID, lower case: what the cluster places and
    /// sessions are indexed by.
    pub router: String,
    pub attachment: Attachment,
    pub user_name: Option<String>,
    pub framed_ip: Option<Ipv4Addr>,
    pub nas_port_id: Option<String>,
    pub login_ms: UnixMs,
    /// The router confirmed the provisioning (confirm AAR, COPS-PR success report).
    pub confirmed: bool,
    pub state: SessionState,
    pub services: Vec<ServiceSession>,
    pub attributes: SubscriberAttributes,
}

impl SubscriberRecord {
    /// The part of the login name before its last `@` (Table 4 `userName`).
    pub fn user_part(&self) -> Option<&str> {
        let login = self.user_name.as_deref()?;
        Some(login.rsplit_once('@').map_or(login, |(user, _)| user))
    }

    /// The part of the login name after its last `@` (Table 4 `domain`).
    pub fn domain(&self) -> Option<&str> {
        self.user_name.as_deref()?.rsplit_once('@').map(|(_, d)| d)
    }

    /// The session's virtual router, `vrname@hostname`.
    pub fn virtual_router(&self) -> String {
        self.attributes
            .virtual_router
            .clone()
            .unwrap_or_else(|| format!("default@{}", self.router))
    }
}

/// A session record as stored, by this version or an earlier one: records written before
/// [`Attachment`] existed carry the router's realm and application id (Diameter) or the
/// interface id (COPS-PR, whose PEP, client type and handle are in the Session-Id) instead.
#[derive(Deserialize)]
struct StoredRecord {
    session_id: String,
    router: String,
    #[serde(default)]
    attachment: Option<Attachment>,
    #[serde(default)]
    router_realm: Option<String>,
    #[serde(default)]
    application_id: Option<u32>,
    #[serde(default)]
    router_interface: Option<u32>,
    user_name: Option<String>,
    framed_ip: Option<Ipv4Addr>,
    nas_port_id: Option<String>,
    login_ms: UnixMs,
    confirmed: bool,
    state: SessionState,
    services: Vec<ServiceSession>,
    #[serde(default)]
    attributes: SubscriberAttributes,
}

impl TryFrom<StoredRecord> for SubscriberRecord {
    type Error = String;

    fn try_from(r: StoredRecord) -> Result<SubscriberRecord, String> {
        let attachment = match (r.attachment, r.router_interface) {
            (Some(a), _) => a,
            (None, Some(interface)) => {
                let (pepid, client_type, handle) = earlier_cops_session_id(&r.session_id)
                    .ok_or_else(|| {
                        format!(
                            "COPS-PR session {:?}: the Session-Id does not name a PEP, client type and handle",
                            r.session_id
                        )
                    })?;
                Attachment::Cops {
                    pepid,
                    client_type,
                    handle,
                    interface,
                }
            }
            (None, None) => Attachment::Diameter {
                realm: r.router_realm.unwrap_or_default(),
                application_id: r
                    .application_id
                    .ok_or_else(|| format!("session {:?}: no application id", r.session_id))?,
            },
        };
        Ok(SubscriberRecord {
            session_id: r.session_id,
            router: r.router,
            attachment,
            user_name: r.user_name,
            framed_ip: r.framed_ip,
            nas_port_id: r.nas_port_id,
            login_ms: r.login_ms,
            confirmed: r.confirmed,
            state: r.state,
            services: r.services,
            attributes: r.attributes,
        })
    }
}

/// PEP, client type and handle of a COPS-PR Session-Id as earlier versions stored it
/// (`cops;<pepid>;<client type, 4 hex digits>;<handle in hex>`), for records without an
/// [`Attachment`].
fn earlier_cops_session_id(session_id: &str) -> Option<(String, u16, Vec<u8>)> {
    let mut parts = session_id.split(';');
    if parts.next()? != "cops" {
        return None;
    }
    let pepid = parts.next()?.to_owned();
    let client_type = u16::from_str_radix(parts.next()?, 16).ok()?;
    let handle = hex_bytes::parse(parts.next()?)?;
    parts
        .next()
        .is_none()
        .then_some((pepid, client_type, handle))
}

/// Bytes as a lower-case hex string.
pub mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn format(bytes: &[u8]) -> String {
        use std::fmt::Write;
        bytes
            .iter()
            .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            })
    }

    /// `None` unless `s` is a non-empty, even number of hex digits.
    pub fn parse(s: &str) -> Option<Vec<u8>> {
        if s.is_empty() || !s.len().is_multiple_of(2) {
            return None;
        }
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
            .collect()
    }

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).ok_or_else(|| serde::de::Error::custom(format!("{s:?} is not hex bytes")))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> ServiceSession {
        ServiceSession {
            service: "gold".into(),
            policy_name: "gold-policy".into(),
            template_name: "rate-limit".into(),
            substitutions: BTreeMap::new(),
            accounting: true,
            state: ServiceState::Active,
            result_code: 2001,
            error: String::new(),
            activated_ms: 1,
        }
    }

    #[test]
    fn records_keep_their_attachment_through_the_store_format() {
        for attachment in [
            Attachment::Diameter {
                realm: "example.net".into(),
                application_id: 16_777_244,
            },
            Attachment::Cops {
                pepid: "erx1".into(),
                client_type: 0x800B,
                handle: vec![0, 0, 0, 7],
                interface: 7,
            },
        ] {
            let r = SubscriberRecord {
                session_id: "s1".into(),
                router: "r1".into(),
                attachment,
                user_name: Some("alice".into()),
                framed_ip: Some(Ipv4Addr::new(10, 0, 0, 1)),
                nas_port_id: None,
                login_ms: 5,
                confirmed: true,
                state: SessionState::Active,
                services: vec![service()],
                attributes: SubscriberAttributes {
                    login_type: LoginType::AuthAddr,
                    framed_ipv6_prefixes: vec!["2001:db8:1::/64".into()],
                    delegated_ipv6_prefixes: vec!["2001:db8:2::/56".into()],
                    nas_ip: Some(Ipv4Addr::new(192, 0, 2, 1)),
                    mac_address: Some("00:11:22:33:44:55".into()),
                    subscriber_dn: Some("uniqueID=alice,o=users".into()),
                    subscriptions: vec!["gold".into()],
                    ..SubscriberAttributes::default()
                },
            };
            let json = serde_json::to_vec(&r).unwrap();
            assert!(String::from_utf8_lossy(&json).contains(r#""login_type":"AUTHADDR""#));
            assert_eq!(
                serde_json::from_slice::<SubscriberRecord>(&json).unwrap(),
                r
            );
        }
    }

    #[test]
    fn login_names_split_into_user_and_domain() {
        let mut r: SubscriberRecord = serde_json::from_str(
            r#"{"session_id":"s","router":"r1","attachment":{"protocol":"diameter","realm":"x","application_id":1},
            "user_name":"alice@isp@example.net","framed_ip":null,"nas_port_id":null,
            "login_ms":1,"confirmed":false,"state":"active","services":[]}"#,
        )
        .unwrap();
        assert_eq!(
            (r.user_part(), r.domain()),
            (Some("alice@isp"), Some("example.net"))
        );
        r.user_name = Some("bob".into());
        assert_eq!((r.user_part(), r.domain()), (Some("bob"), None));
        r.attributes.virtual_router = Some("cust1@r1".into());
        assert_eq!(r.virtual_router(), "cust1@r1");
        assert_eq!(LoginType::of_router_login(true, false), LoginType::Addr);
        assert_eq!(LoginType::of_router_login(false, true), LoginType::AuthIntf);
    }

    #[test]
    fn records_of_earlier_versions_get_their_attachment() {
        let diameter = r#"{"session_id":"r1;1;2","router":"r1.example","router_realm":"example.net",
            "application_id":16777244,"user_name":null,"framed_ip":null,"nas_port_id":null,
            "login_ms":1,"confirmed":false,"state":"resyncing","services":[]}"#;
        let r: SubscriberRecord = serde_json::from_str(diameter).unwrap();
        assert_eq!(
            r.attachment,
            Attachment::Diameter {
                realm: "example.net".into(),
                application_id: 16_777_244
            }
        );
        let cops = r#"{"session_id":"cops;erx1;800b;00000007","router":"erx1","router_realm":"",
            "application_id":0,"user_name":"u","framed_ip":"10.2.0.7","nas_port_id":"fe3/0.7",
            "login_ms":1,"confirmed":true,"state":"active","services":[],"router_interface":7}"#;
        let r: SubscriberRecord = serde_json::from_str(cops).unwrap();
        assert_eq!(
            r.attachment,
            Attachment::Cops {
                pepid: "erx1".into(),
                client_type: 0x800B,
                handle: vec![0, 0, 0, 7],
                interface: 7
            }
        );
        assert_eq!(r.attributes, SubscriberAttributes::default());
        assert_eq!(r.attributes.login_type.name(), "INTF");
        assert_eq!(r.virtual_router(), "default@erx1");
        let unreadable = cops.replace("cops;erx1;800b;00000007", "cops;erx1;zz;07");
        let e = serde_json::from_str::<SubscriberRecord>(&unreadable).unwrap_err();
        assert!(e.to_string().contains("does not name a PEP"), "{e}");
    }

    #[test]
    fn hex_bytes_refuse_what_is_not_hex() {
        assert_eq!(hex_bytes::parse("00ff"), Some(vec![0, 255]));
        for bad in ["", "0", "0g", "é0"] {
            assert_eq!(hex_bytes::parse(bad), None, "{bad}");
        }
        assert_eq!(hex_bytes::format(&[0xde, 0xad]), "dead");
    }
}
