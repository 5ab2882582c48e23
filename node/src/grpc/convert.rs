//! Every conversion between the domain and the prost types of the gRPC services, and the gRPC
//! status of each domain error. The cluster's own calls to other members use the [`From`]
//! impls here for its membership records.

use sae_proto::v1 as pb;
use tonic::Status;

use crate::catalog::{FragmentDef, Rule, ServiceDef, ServiceKind};
use crate::cluster::{ClusterError, Member, Refusal};
use crate::diameter::PeerStatus;
use crate::events::SessionEvent;
use crate::model::{Attachment, SubscriberRecord, UsageRecord};
use crate::subscriber::engine::SubscriberError;
use crate::subscriber::link::SendError;
use crate::subscriber::registry::{LookupError, SubscriberRef};
use crate::subscriber::session::ChangeOutcome;

/// The wire form of a member.
impl From<&Member> for pb::MemberInfo {
    fn from(m: &Member) -> pb::MemberInfo {
        pb::MemberInfo {
            name: m.name.clone(),
            grpc: m.grpc.clone(),
            diameter: m.diameter.clone(),
            cops: m.cops.clone(),
            origin_host: m.origin_host.clone(),
        }
    }
}

/// A member from its wire form.
impl From<pb::MemberInfo> for Member {
    fn from(m: pb::MemberInfo) -> Member {
        Member {
            name: m.name,
            grpc: m.grpc,
            diameter: m.diameter,
            cops: m.cops,
            origin_host: m.origin_host,
        }
    }
}

/// The gRPC status of a cluster failure.
pub(crate) fn cluster_status(e: ClusterError) -> Status {
    match e {
        ClusterError::NoLeader | ClusterError::Timeout(_) => Status::unavailable(e.to_string()),
        ClusterError::Invalid(_) => Status::invalid_argument(e.to_string()),
        ClusterError::NotMember => Status::failed_precondition(e.to_string()),
        ClusterError::Evicted(_) => Status::permission_denied(e.to_string()),
        ClusterError::Refused(Refusal::NotFound { .. }) => Status::not_found(e.to_string()),
        ClusterError::Refused(_) => Status::failed_precondition(e.to_string()),
        _ => Status::internal(e.to_string()),
    }
}

pub(crate) fn peer_to_pb(p: PeerStatus, sessions: usize) -> pb::DiameterPeer {
    pb::DiameterPeer {
        origin_host: p.origin_host,
        origin_realm: p.origin_realm,
        remote_address: p.remote.to_string(),
        state: "open".into(),
        watchdog: p.watchdog.name().into(),
        applications: p.applications,
        product_name: p.product_name,
        subscriber_sessions: sessions as u64,
        pending_requests: p.pending_requests as u64,
    }
}

pub(crate) fn service_to_pb(s: ServiceDef) -> pb::Service {
    pb::Service {
        name: s.name,
        policy_name: s.policy_name,
        template_name: s.template_name,
        substitutions: s.substitutions.into_iter().collect(),
        accounting: s.accounting,
        description: s.description,
        kind: s.kind.name().to_owned(),
        fragments: s
            .fragments
            .into_iter()
            .map(|f| pb::Fragment {
                name: f.name,
                service: f.service,
                expression: f.expression,
                mandatory: f.mandatory,
                redundancy_group: f.redundancy_group.unwrap_or_default(),
                require_subscription: f.require_subscription,
                substitutions: f.substitutions,
            })
            .collect(),
        deny_modification: s.deny_modification,
    }
}

/// A service from the wire; an unknown kind is refused.
pub(crate) fn service_from_pb(s: pb::Service) -> Result<ServiceDef, Status> {
    let kind = match s.kind.as_str() {
        "" | "normal" => ServiceKind::Normal,
        "aggregate" => ServiceKind::Aggregate,
        other => {
            return Err(Status::invalid_argument(format!(
                "service {:?}.kind: {other:?} is neither \"normal\" nor \"aggregate\"",
                s.name
            )));
        }
    };
    Ok(ServiceDef {
        name: s.name,
        policy_name: s.policy_name,
        template_name: s.template_name,
        substitutions: s.substitutions.into_iter().collect(),
        accounting: s.accounting,
        description: s.description,
        kind,
        fragments: s
            .fragments
            .into_iter()
            .map(|f| FragmentDef {
                name: f.name,
                service: f.service,
                expression: f.expression,
                mandatory: f.mandatory,
                redundancy_group: non_empty(f.redundancy_group),
                require_subscription: f.require_subscription,
                substitutions: f.substitutions,
            })
            .collect(),
        deny_modification: s.deny_modification,
    })
}

pub(crate) fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

pub(crate) fn rule_to_pb(r: Rule) -> pb::Rule {
    pb::Rule {
        name: r.name,
        priority: r.priority,
        login_name: r.login_name.unwrap_or_default(),
        domain: r.domain.unwrap_or_default(),
        nas_port_id: r.nas_port_id.unwrap_or_default(),
        router: r.router.unwrap_or_default(),
        services: r.services,
        substitutions: r.substitutions.into_iter().collect(),
        reject: r.reject,
        subscriber_dn: r.subscriber_dn.unwrap_or_default(),
        retailer_dn: r.retailer_dn.unwrap_or_default(),
        accounting_id: r.accounting_id.unwrap_or_default(),
        subscriptions: r.subscriptions,
        virtual_router: r.virtual_router.unwrap_or_default(),
    }
}

pub(crate) fn rule_from_pb(r: pb::Rule) -> Rule {
    Rule {
        name: r.name,
        priority: r.priority,
        login_name: non_empty(r.login_name),
        domain: non_empty(r.domain),
        nas_port_id: non_empty(r.nas_port_id),
        router: non_empty(r.router),
        services: r.services,
        substitutions: r.substitutions.into_iter().collect(),
        reject: r.reject,
        subscriber_dn: non_empty(r.subscriber_dn),
        retailer_dn: non_empty(r.retailer_dn),
        accounting_id: non_empty(r.accounting_id),
        subscriptions: r.subscriptions,
        virtual_router: non_empty(r.virtual_router),
    }
}

pub(crate) fn application_name(id: u32) -> String {
    match id {
        sae_diameter::codes::app::JSRC => "jsrc".into(),
        sae_diameter::codes::app::PTSP => "ptsp".into(),
        other => other.to_string(),
    }
}

pub(crate) fn subscriber_to_pb(r: &SubscriberRecord) -> pb::Subscriber {
    let a = &r.attributes;
    let text = |s: Option<&str>| s.map(str::to_owned).unwrap_or_default();
    pb::Subscriber {
        session_id: r.session_id.clone(),
        router: r.router.clone(),
        application: match &r.attachment {
            Attachment::Diameter { application_id, .. } => application_name(*application_id),
            Attachment::Cops { .. } => application_name(0),
        },
        user_name: r.user_name.clone().unwrap_or_default(),
        framed_ip: r.framed_ip.map(|i| i.to_string()).unwrap_or_default(),
        nas_port_id: r.nas_port_id.clone().unwrap_or_default(),
        state: r.state.name().into(),
        login_unix_ms: r.login_ms,
        confirmed: r.confirmed,
        services: r
            .services
            .iter()
            .map(|s| pb::ServiceSession {
                service: s.service.clone(),
                policy_name: s.policy_name.clone(),
                state: s.state.name().into(),
                result_code: s.result_code,
                error: s.error.clone(),
                accounting: s.accounting,
                substitutions: s
                    .substitutions
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                activated_unix_ms: s.activated_ms,
            })
            .collect(),
        login_type: a.login_type.name().into(),
        user_part: text(r.user_part()),
        domain: text(r.domain()),
        framed_ipv6_prefixes: a.framed_ipv6_prefixes.clone(),
        delegated_ipv6_prefixes: a.delegated_ipv6_prefixes.clone(),
        nas_ip: a.nas_ip.map(|i| i.to_string()).unwrap_or_default(),
        mac_address: text(a.mac_address.as_deref()),
        radius_class: text(a.radius_class.as_deref()),
        interface_name: text(a.interface_name.as_deref()),
        port_id: text(a.port_id.as_deref()),
        virtual_router: r.virtual_router(),
        primary_user_name: text(a.primary_user_name.as_deref()),
        subscriber_dn: text(a.subscriber_dn.as_deref()),
        retailer_dn: text(a.retailer_dn.as_deref()),
        accounting_id: text(a.accounting_id.as_deref()),
        subscriptions: a.subscriptions.clone(),
        node: 0,
        node_name: String::new(),
    }
}

pub(crate) fn usage_to_pb(r: UsageRecord) -> pb::UsageRecord {
    pb::UsageRecord {
        id: r.id,
        session_id: r.session_id,
        user_name: r.user_name.unwrap_or_default(),
        router: r.router,
        policy_name: r.policy_name,
        kind: r.kind.name().into(),
        record_number: r.record_number,
        input_octets: r.input_octets,
        output_octets: r.output_octets,
        input_packets: r.input_packets,
        output_packets: r.output_packets,
        time_unix_ms: r.time_ms,
    }
}

pub(crate) fn event_to_pb(e: SessionEvent) -> pb::SessionEvent {
    pb::SessionEvent {
        time_unix_ms: e.time_ms,
        kind: e.kind.name().into(),
        session_id: e.session_id,
        user_name: e.user_name,
        router: e.router,
        service: e.service,
        detail: e.detail,
    }
}

pub(crate) fn change_to_pb(c: ChangeOutcome) -> pb::ServiceChangeResult {
    pb::ServiceChangeResult {
        session_id: c.session_id,
        service: c.service,
        policy_name: c.policy_name,
        success: c.success,
        result_code: c.result_code,
        state: c
            .state
            .map(|s| s.name().to_owned())
            .unwrap_or_else(|| "removed".into()),
        message: c.message,
        attempts: c.attempts,
    }
}

pub(crate) fn reference(r: Option<pb::SubscriberRef>) -> Result<SubscriberRef, Status> {
    use pb::subscriber_ref::Key;
    let key = r.and_then(|r| r.key).ok_or_else(|| {
        Status::invalid_argument(
            "subscriber: one of session_id, user_name, framed_ip, nas_port_id is required",
        )
    })?;
    Ok(match key {
        Key::SessionId(s) if !s.is_empty() => SubscriberRef::SessionId(s),
        Key::UserName(s) if !s.is_empty() => SubscriberRef::UserName(s),
        Key::NasPortId(s) if !s.is_empty() => SubscriberRef::NasPortId(s),
        Key::FramedIp(s) => SubscriberRef::FramedIp(s.parse().map_err(|_| {
            Status::invalid_argument(format!("framed_ip {s:?} is not an IPv4 address"))
        })?),
        _ => return Err(Status::invalid_argument("subscriber: the key is empty")),
    })
}

pub(crate) fn subscriber_status(e: SubscriberError) -> Status {
    match &e {
        SubscriberError::Lookup(LookupError::NotFound(_)) => Status::not_found(e.to_string()),
        SubscriberError::Lookup(LookupError::Ambiguous { .. }) => {
            Status::failed_precondition(e.to_string())
        }
        SubscriberError::UnknownService(_) | SubscriberError::ServiceNotActive(..) => {
            Status::not_found(e.to_string())
        }
        SubscriberError::AggregateUnavailable(_) => Status::unimplemented(e.to_string()),
        SubscriberError::Router(SendError::NotConnected(_) | SendError::NotServed(_)) => {
            Status::unavailable(e.to_string())
        }
        SubscriberError::Router(SendError::Failed { .. }) => {
            Status::deadline_exceeded(e.to_string())
        }
        SubscriberError::SessionGone => Status::aborted(e.to_string()),
    }
}

pub(crate) fn refusal_status(r: Refusal) -> Status {
    match r {
        Refusal::NotFound { .. } => Status::not_found(r.to_string()),
        Refusal::Invalid(_) => Status::invalid_argument(r.to_string()),
        _ => Status::failed_precondition(r.to_string()),
    }
}

/// The cluster as the management API shows it.
pub(crate) fn cluster_to_pb(v: crate::cluster::ClusterView) -> pb::ClusterStatus {
    let membership = v.membership.membership();
    let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
    let name_of = |id: u64| {
        membership
            .get_node(&id)
            .map(|m| m.name.clone())
            .unwrap_or_default()
    };
    let members = membership
        .nodes()
        .map(|(id, m)| {
            let entry = v.state.nodes.get(id).cloned().unwrap_or_default();
            pb::ClusterMember {
                id: *id,
                name: m.name.clone(),
                grpc_address: m.grpc.clone(),
                diameter_address: m.diameter.clone(),
                cops_address: m.cops.clone(),
                origin_host: m.origin_host.clone(),
                role: if voters.contains(id) {
                    "voter"
                } else {
                    "learner"
                }
                .into(),
                leader: v.leader == Some(*id),
                alive: entry.lease_until_ms > v.now_ms,
                lease_until_ms: entry.lease_until_ms,
                routers_owned: v
                    .state
                    .routers
                    .values()
                    .filter(|r| r.owner_at(v.now_ms) == Some(*id))
                    .count() as u32,
                connected_routers: entry.connected.into_iter().collect(),
            }
        })
        .collect();
    let routers = v
        .state
        .routers
        .iter()
        .map(|(name, r)| pb::RouterOwner {
            router: name.clone(),
            owner: r.active.unwrap_or(0),
            owner_name: r.active.map(name_of).unwrap_or_default(),
            epoch: r.epoch,
            lease_until_ms: r.lease_until_ms,
            last_origin_host: r.last_origin_host.clone().unwrap_or_default(),
        })
        .collect();
    pb::ClusterStatus {
        node_id: v.id,
        leader_id: v.leader.unwrap_or(0),
        term: v.term,
        last_applied: v.last_applied,
        members,
        routers,
    }
}

pub(crate) fn hex_handle(s: &str) -> Result<sae_cops::object::Handle, Status> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) || s.is_empty() {
        return Err(Status::invalid_argument(format!(
            "handle {s:?} is not hex octets"
        )));
    }
    let bytes: Result<Vec<u8>, _> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16))
        .collect();
    bytes
        .map(|b| sae_cops::object::Handle(b.into()))
        .map_err(|_| Status::invalid_argument(format!("handle {s:?} is not hex octets")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_and_their_fragments_cross_the_wire_unchanged() {
        let def = ServiceDef {
            name: "vod".into(),
            kind: ServiceKind::Aggregate,
            accounting: true,
            fragments: vec![FragmentDef {
                name: "sub".into(),
                service: "qos".into(),
                expression: "'ip=%s' % user_IpAddress".into(),
                mandatory: true,
                redundancy_group: Some("g".into()),
                require_subscription: true,
                substitutions: vec!["fragIp=user_IpAddress".into()],
            }],
            ..ServiceDef::default()
        };
        assert_eq!(service_from_pb(service_to_pb(def.clone())).unwrap(), def);
        let normal = ServiceDef {
            name: "qos".into(),
            deny_modification: true,
            ..ServiceDef::default()
        };
        assert_eq!(
            service_from_pb(service_to_pb(normal.clone())).unwrap(),
            normal
        );
        let bad = pb::Service {
            name: "x".into(),
            kind: "composite".into(),
            ..pb::Service::default()
        };
        let err = service_from_pb(bad).unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
    }
}
