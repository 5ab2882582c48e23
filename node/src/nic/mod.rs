//! The node's embedded NIC: a [`sae_nic::Directory`] holding the bindings of every session of
//! the cluster, so that any node resolves any subscriber reference without another process.
//!
//! - Each node publishes the bindings of its own sessions: the session registry tells the
//!   [`NicSink`] of every login, change of what a session is known by, and logout; the
//!   [`publisher`] task turns those into publications stamped with the router's ownership epoch,
//!   applies them here and sends them, batched, to every other member (`sae.v1.Nic/Publish`). A
//!   login never waits for any of it: the sink only queues, and a full queue makes the publisher
//!   replay everything instead.
//! - A member that (re)appears, or that could not be reached, gets a replay of all this node's
//!   bindings (`ReplayStart`, every binding, `ReplayEnd`), which also drops whatever it held of
//!   this node that no longer exists.
//! - Router owners come from this node's own copy of the replicated control state, not from
//!   the network: every directory learns a failover as soon as its node applies it, and the new
//!   owner's bindings (at the new epoch) replace the old owner's as the router replays its
//!   sessions. When the new owner's resynchronization window has passed, it publishes `Synced`,
//!   and the bindings of that router it did not rebuild are dropped everywhere.

pub mod publisher;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sae_nic::{Attributes, Binding, SessionKey, Value, Vr};
pub use sae_nic_server::{BatchOutcome, Nic};
use tokio::sync::mpsc;

use crate::cluster::{NodeId, OwnedKey};
use crate::model::{Attachment, SubscriberRecord};
use crate::subscriber::registry::SessionObserver;

/// How many session changes may wait for the publisher before it falls back to a replay.
const QUEUE: usize = 65_536;

/// What the registry tells the publisher.
#[derive(Debug, Clone)]
pub enum Change {
    Bound(Arc<SubscriberRecord>),
    Unbound(Arc<SubscriberRecord>),
    /// A router's resynchronization window opened.
    Resync {
        router: String,
        window: Duration,
    },
}

/// The session registry's observer: queues changes for the publisher, never blocks.
#[derive(Debug, Clone)]
pub struct NicSink {
    tx: mpsc::Sender<Change>,
    /// Set when a change could not be queued: the publisher replays everything.
    overflow: Arc<AtomicBool>,
}

impl NicSink {
    /// The sink and the receiving end the publisher drains.
    pub fn new() -> (NicSink, Changes) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let overflow = Arc::new(AtomicBool::new(false));
        (
            NicSink {
                tx,
                overflow: overflow.clone(),
            },
            Changes { rx, overflow },
        )
    }

    fn send(&self, change: Change) {
        if self.tx.try_send(change).is_err() {
            self.overflow.store(true, Ordering::Relaxed);
        }
    }
}

impl SessionObserver for NicSink {
    fn bound(&self, record: &Arc<SubscriberRecord>) {
        self.send(Change::Bound(record.clone()));
    }

    fn unbound(&self, record: &Arc<SubscriberRecord>) {
        self.send(Change::Unbound(record.clone()));
    }

    fn resync_window(&self, router: &str, window: Duration) {
        self.send(Change::Resync {
            router: router.to_owned(),
            window,
        });
    }
}

/// The publisher's end of the sink.
#[derive(Debug)]
pub struct Changes {
    rx: mpsc::Receiver<Change>,
    overflow: Arc<AtomicBool>,
}

/// The key the cluster places a session's router under (a PEP's carries a prefix).
pub fn ownership_key(record: &SubscriberRecord) -> String {
    match &record.attachment {
        Attachment::Diameter { .. } => record.router.clone(),
        Attachment::Cops { pepid, .. } => OwnedKey::pep(pepid).to_string(),
    }
}

/// The binding a session is published as.
pub fn binding(record: &SubscriberRecord, node: NodeId, epoch: u64) -> Binding {
    let a = &record.attributes;
    let prefixes = a
        .framed_ipv6_prefixes
        .iter()
        .chain(&a.delegated_ipv6_prefixes)
        .filter_map(|p| p.parse().ok())
        .collect();
    Binding {
        session: SessionKey::new(&record.router, &record.session_id),
        node,
        epoch,
        attributes: Attributes {
            addresses: record.framed_ip.map(IpAddr::V4).into_iter().collect(),
            prefixes,
            login_name: record.user_name.clone(),
            primary_user_name: a.primary_user_name.clone(),
            dn: a.subscriber_dn.clone(),
            interface_name: a
                .interface_name
                .clone()
                .or_else(|| record.nas_port_id.clone()),
            vr: record.virtual_router().parse::<Vr>().ok(),
            accounting_id: a.accounting_id.clone(),
        },
    }
}

/// A session's fields as subscriber reference expressions read them (seed 003, Table 4); a
/// field the session lacks is the empty string.
pub fn fields(record: &SubscriberRecord) -> BTreeMap<String, Value> {
    let a = &record.attributes;
    let text = |s: Option<&str>| Value::from(s.unwrap_or_default());
    let interface = a
        .interface_name
        .as_deref()
        .or(record.nas_port_id.as_deref());
    let v6 = !a.framed_ipv6_prefixes.is_empty() || !a.delegated_ipv6_prefixes.is_empty();
    let interface_type = match (record.framed_ip.is_some(), v6) {
        (true, true) => "IP,IPV6",
        (false, true) => "IPV6",
        _ => "IP",
    };
    [
        ("loginType", Value::from(a.login_type.name())),
        ("loginName", text(record.user_name.as_deref())),
        ("userName", text(record.user_part())),
        ("domain", text(record.domain())),
        ("serviceBundle", Value::from("")),
        ("radiusClass", text(a.radius_class.as_deref())),
        ("virtualRouterName", Value::from(record.virtual_router())),
        ("interfaceName", text(interface)),
        // Junos: the description and alias are the interface name.
        ("interfaceDesc", text(interface)),
        ("interfaceAlias", text(interface)),
        ("interfaceType", Value::from(interface_type)),
        (
            "portId",
            text(a.port_id.as_deref().or(record.nas_port_id.as_deref())),
        ),
        ("macAddress", text(a.mac_address.as_deref())),
        ("retailerDn", text(a.retailer_dn.as_deref())),
        ("userDn", text(a.subscriber_dn.as_deref())),
        (
            "nasIp",
            Value::from(a.nas_ip.map(|ip| ip.to_string()).unwrap_or_default()),
        ),
        ("dhcp", Value::from("")),
        ("primaryUserName", text(a.primary_user_name.as_deref())),
        (
            "framedIpv6Prefix",
            text(a.framed_ipv6_prefixes.first().map(String::as_str)),
        ),
        (
            "delegatedIpv6Prefix",
            text(a.delegated_ipv6_prefixes.first().map(String::as_str)),
        ),
        (
            "ipAddress",
            Value::from(
                record
                    .framed_ip
                    .map(|ip| ip.to_string())
                    .unwrap_or_default(),
            ),
        ),
        ("accountingId", text(a.accounting_id.as_deref())),
        ("router", Value::from(record.router.as_str())),
        ("sessionId", Value::from(record.session_id.as_str())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{SessionState, SubscriberAttributes};
    use sae_nic::{Publication, Reference};

    fn record() -> SubscriberRecord {
        SubscriberRecord {
            session_id: "bng1;1;7".into(),
            router: "bng1".into(),
            attachment: Attachment::Diameter {
                realm: "isp".into(),
                application_id: 1,
            },
            user_name: Some("Alice@isp.example".into()),
            framed_ip: Some("10.0.0.7".parse().unwrap()),
            nas_port_id: Some("ge-0/0/0.7:7".into()),
            login_ms: 0,
            confirmed: true,
            state: SessionState::Active,
            services: vec![],
            attributes: SubscriberAttributes {
                framed_ipv6_prefixes: vec!["2001:db8:1::/64".into(), "garbage".into()],
                delegated_ipv6_prefixes: vec!["2001:db8:2::/56".into()],
                interface_name: Some("ge-0/0/0.7".into()),
                subscriber_dn: Some("uniqueID=alice,o=users".into()),
                accounting_id: Some("acct-7".into()),
                ..SubscriberAttributes::default()
            },
        }
    }

    #[test]
    fn a_record_binds_by_every_key_and_resolves() {
        let b = binding(&record(), 3, 9);
        assert_eq!(
            b.attributes.addresses,
            ["10.0.0.7".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            b.attributes.prefixes.len(),
            2,
            "the unparsable prefix is left out"
        );
        assert_eq!(b.attributes.vr, Some(Vr::default_of("bng1")));
        assert_eq!(b.attributes.interface_name.as_deref(), Some("ge-0/0/0.7"));
        let nic = Nic::new(sae_nic::config::Resolution::default());
        let outcome = nic.apply([Publication::bind(b)]);
        assert_eq!(
            outcome,
            BatchOutcome {
                changed: 1,
                stale: 0,
                same: 0
            }
        );
        for text in [
            "ip=10.0.0.7",
            "loginName=alice@isp.example",
            "dn=uniqueID=alice,o=users",
            "interfaceName=ge-0/0/0.7;router=bng1",
            "accountingId=acct-7",
            "ip=2001:db8:2:5::1",
            "sessionId=\"bng1;1;7\"",
        ] {
            let res = nic.resolve(&Reference::parse(text).unwrap()).unwrap();
            assert_eq!(res.matches.len(), 1, "{text}");
            assert_eq!(res.matches[0].node, 3, "{text}");
        }
        let (all, total) = nic.bindings(None, 10);
        assert_eq!((all.len(), total), (1, 1));
        let (none, _) = nic.bindings(Some(&Reference::parse("ip=10.9.9.9").unwrap()), 10);
        assert!(none.is_empty());
    }

    #[test]
    fn expressions_read_the_table_4_fields() {
        let f = fields(&record());
        let e = sae_nic::Expression::parse(
            "'dn=uniqueID=%s,ou=%s,o=users' % (userName, domain) if loginType == 'INTF' else ''",
        )
        .unwrap();
        assert_eq!(
            sae_nic::evaluate_reference(&e, &f).unwrap().to_string(),
            "dn=uniqueID=Alice,ou=isp.example,o=users"
        );
        assert_eq!(f["interfaceType"], Value::from("IP,IPV6"));
        assert_eq!(f["virtualRouterName"], Value::from("default@bng1"));
        assert_eq!(f["portId"], Value::from("ge-0/0/0.7:7"));
        assert_eq!(f["macAddress"], Value::from(""));
    }

    #[test]
    fn a_pep_session_is_placed_under_its_pep_key() {
        let mut r = record();
        r.attachment = Attachment::Cops {
            pepid: "erx1".into(),
            client_type: 0x800B,
            handle: vec![1],
            interface: 1,
        };
        assert_eq!(ownership_key(&r), OwnedKey::pep("erx1").to_string());
        assert_eq!(ownership_key(&record()), "bng1");
    }
}
