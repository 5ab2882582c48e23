//! The management API over gRPC (tonic), with the standard health service and server
//! reflection. Conversions between the domain and the prost types live here only.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures::{Stream, StreamExt};
use sae_proto::v1 as pb;
use sae_proto::v1::management_server::{Management, ManagementServer};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

use crate::catalog::{Rule, ServiceDef};
use crate::cluster::{Command, Refusal, Response as ControlResponse};
use crate::diameter::{DiameterServer, PeerStatus};
use crate::events::SessionEvent;
use crate::model::{Attachment, SubscriberRecord, UsageFilter, UsageRecord};
use crate::subscriber::engine::{Engine, SubscriberError};
use crate::subscriber::link::SendError;
use crate::subscriber::registry::{ListFilter, LookupError, SubscriberRef};
use crate::subscriber::session::ChangeOutcome;

/// The management service of one node.
#[derive(Clone)]
pub struct ManagementService {
    pub node_name: String,
    pub started: Instant,
    pub diameter: DiameterServer,
    pub engine: Arc<Engine>,
    pub cops: Arc<crate::cops::CopsShared>,
    pub cluster: Arc<crate::cluster::Cluster>,
}

fn peer_to_pb(p: PeerStatus, sessions: usize) -> pb::DiameterPeer {
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

fn service_to_pb(s: ServiceDef) -> pb::Service {
    pb::Service {
        name: s.name,
        policy_name: s.policy_name,
        template_name: s.template_name,
        substitutions: s.substitutions.into_iter().collect(),
        accounting: s.accounting,
        description: s.description,
    }
}

fn service_from_pb(s: pb::Service) -> ServiceDef {
    ServiceDef {
        name: s.name,
        policy_name: s.policy_name,
        template_name: s.template_name,
        substitutions: s.substitutions.into_iter().collect(),
        accounting: s.accounting,
        description: s.description,
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn rule_to_pb(r: Rule) -> pb::Rule {
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
    }
}

fn rule_from_pb(r: pb::Rule) -> Rule {
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
    }
}

fn application_name(id: u32) -> String {
    match id {
        sae_diameter::codes::app::JSRC => "jsrc".into(),
        sae_diameter::codes::app::PTSP => "ptsp".into(),
        other => other.to_string(),
    }
}

fn subscriber_to_pb(r: &SubscriberRecord) -> pb::Subscriber {
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
    }
}

fn usage_to_pb(r: UsageRecord) -> pb::UsageRecord {
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

fn event_to_pb(e: SessionEvent) -> pb::SessionEvent {
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

fn change_to_pb(c: ChangeOutcome) -> pb::ServiceChangeResult {
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

fn reference(r: Option<pb::SubscriberRef>) -> Result<SubscriberRef, Status> {
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

fn subscriber_status(e: SubscriberError) -> Status {
    match &e {
        SubscriberError::Lookup(LookupError::NotFound(_)) => Status::not_found(e.to_string()),
        SubscriberError::Lookup(LookupError::Ambiguous { .. }) => {
            Status::failed_precondition(e.to_string())
        }
        SubscriberError::UnknownService(_) | SubscriberError::ServiceNotActive(..) => {
            Status::not_found(e.to_string())
        }
        SubscriberError::Router(SendError::NotConnected(_) | SendError::NotServed(_)) => {
            Status::unavailable(e.to_string())
        }
        SubscriberError::Router(SendError::Failed { .. }) => {
            Status::deadline_exceeded(e.to_string())
        }
        SubscriberError::SessionGone => Status::aborted(e.to_string()),
    }
}

fn refusal_status(r: Refusal) -> Status {
    match r {
        Refusal::NotFound { .. } => Status::not_found(r.to_string()),
        Refusal::Invalid(_) => Status::invalid_argument(r.to_string()),
        _ => Status::failed_precondition(r.to_string()),
    }
}

impl ManagementService {
    /// The leader's management API, for what only the leader decides (router moves, node
    /// removals), over the cluster's cached channel.
    fn leader_management(
        &self,
    ) -> Result<pb::management_client::ManagementClient<tonic::transport::Channel>, Status> {
        self.cluster
            .leader_channel()
            .map(pb::management_client::ManagementClient::new)
            .map_err(crate::cluster::service::status)
    }

    /// A catalog change: a control-state command through the cluster's leader; once it
    /// returns, this node's catalog holds the change.
    async fn catalog_write(&self, cmd: Command) -> Result<(), Status> {
        match self.cluster.write(cmd).await {
            Ok((ControlResponse::Refused(r), _)) => Err(refusal_status(r)),
            Ok(_) => Ok(()),
            Err(e) => Err(crate::cluster::service::status(e)),
        }
    }
}

/// The cluster as the management API shows it.
fn cluster_to_pb(v: crate::cluster::ClusterView) -> pb::ClusterStatus {
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

const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::SessionEvent, Status>> + Send>>;

#[tonic::async_trait]
impl Management for ManagementService {
    async fn get_node_status(
        &self,
        _request: Request<pb::GetNodeStatusRequest>,
    ) -> Result<Response<pb::NodeStatus>, Status> {
        let engine = &self.engine;
        let local = self.diameter.diameter().local();
        Ok(Response::new(pb::NodeStatus {
            node_name: self.node_name.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_seconds: self.started.elapsed().as_secs(),
            origin_host: local.origin_host.clone(),
            origin_realm: local.origin_realm.clone(),
            diameter_peers: self
                .diameter
                .peers()
                .into_iter()
                .map(|p| {
                    let n = engine
                        .sessions
                        .count_of_router(&p.origin_host.to_ascii_lowercase());
                    peer_to_pb(p, n)
                })
                .collect(),
            subscriber_sessions: engine.sessions.len() as u64,
            usage_records: engine.store.usage_count(),
        }))
    }

    async fn list_services(
        &self,
        _request: Request<pb::ListServicesRequest>,
    ) -> Result<Response<pb::ListServicesResponse>, Status> {
        Ok(Response::new(pb::ListServicesResponse {
            services: self
                .engine
                .catalog
                .services()
                .into_iter()
                .map(service_to_pb)
                .collect(),
        }))
    }

    async fn get_service(
        &self,
        request: Request<pb::GetServiceRequest>,
    ) -> Result<Response<pb::Service>, Status> {
        let name = request.into_inner().name;
        self.engine
            .catalog
            .service(&name)
            .map(|s| Response::new(service_to_pb(s)))
            .ok_or_else(|| Status::not_found(format!("service {name:?} not found")))
    }

    async fn put_service(
        &self,
        request: Request<pb::PutServiceRequest>,
    ) -> Result<Response<pb::Service>, Status> {
        let service = request
            .into_inner()
            .service
            .ok_or_else(|| Status::invalid_argument("service is required"))?;
        let def = service_from_pb(service);
        let name = def.name.clone();
        self.catalog_write(Command::PutService(def)).await?;
        let stored =
            self.engine.catalog.service(&name).ok_or_else(|| {
                Status::aborted(format!("service {name:?} was changed meanwhile"))
            })?;
        Ok(Response::new(service_to_pb(stored)))
    }

    async fn delete_service(
        &self,
        request: Request<pb::DeleteServiceRequest>,
    ) -> Result<Response<pb::DeleteServiceResponse>, Status> {
        let name = request.into_inner().name;
        self.catalog_write(Command::DeleteService { name }).await?;
        Ok(Response::new(pb::DeleteServiceResponse {}))
    }

    async fn list_rules(
        &self,
        _request: Request<pb::ListRulesRequest>,
    ) -> Result<Response<pb::ListRulesResponse>, Status> {
        Ok(Response::new(pb::ListRulesResponse {
            rules: self
                .engine
                .catalog
                .rules()
                .into_iter()
                .map(rule_to_pb)
                .collect(),
        }))
    }

    async fn put_rule(
        &self,
        request: Request<pb::PutRuleRequest>,
    ) -> Result<Response<pb::Rule>, Status> {
        let rule = request
            .into_inner()
            .rule
            .ok_or_else(|| Status::invalid_argument("rule is required"))?;
        let rule = rule_from_pb(rule);
        let name = rule.name.clone();
        self.catalog_write(Command::PutRule(rule)).await?;
        let stored = self
            .engine
            .catalog
            .rule(&name)
            .ok_or_else(|| Status::aborted(format!("rule {name:?} was changed meanwhile")))?;
        Ok(Response::new(rule_to_pb(stored)))
    }

    async fn delete_rule(
        &self,
        request: Request<pb::DeleteRuleRequest>,
    ) -> Result<Response<pb::DeleteRuleResponse>, Status> {
        let name = request.into_inner().name;
        self.catalog_write(Command::DeleteRule { name }).await?;
        Ok(Response::new(pb::DeleteRuleResponse {}))
    }

    async fn get_cluster(
        &self,
        _request: Request<pb::GetClusterRequest>,
    ) -> Result<Response<pb::ClusterStatus>, Status> {
        Ok(Response::new(cluster_to_pb(self.cluster.view())))
    }

    async fn move_router(
        &self,
        request: Request<pb::MoveRouterRequest>,
    ) -> Result<Response<pb::RouterOwner>, Status> {
        let req = request.into_inner();
        if req.router.is_empty() || req.node_id == 0 {
            return Err(Status::invalid_argument("router and node_id are required"));
        }
        let router = req.router.to_ascii_lowercase();
        if self.cluster.is_leader() {
            self.cluster
                .move_router(&router, req.node_id)
                .await
                .map_err(crate::cluster::service::status)?;
        } else {
            self.leader_management()?
                .move_router(pb::MoveRouterRequest {
                    router: router.clone(),
                    node_id: req.node_id,
                })
                .await?;
        }
        let view = self.cluster.view();
        let owner = cluster_to_pb(view)
            .routers
            .into_iter()
            .find(|r| r.router == router)
            .ok_or_else(|| Status::not_found(format!("router {router:?}")))?;
        Ok(Response::new(owner))
    }

    async fn remove_node(
        &self,
        request: Request<pb::RemoveNodeRequest>,
    ) -> Result<Response<pb::RemoveNodeResponse>, Status> {
        let node_id = request.into_inner().node_id;
        if node_id == 0 {
            return Err(Status::invalid_argument("node_id is required"));
        }
        if self.cluster.is_leader() {
            self.cluster
                .remove(node_id, true)
                .await
                .map_err(crate::cluster::service::status)?;
        } else {
            self.leader_management()?
                .remove_node(pb::RemoveNodeRequest { node_id })
                .await?;
        }
        Ok(Response::new(pb::RemoveNodeResponse {}))
    }

    async fn list_subscribers(
        &self,
        request: Request<pb::ListSubscribersRequest>,
    ) -> Result<Response<pb::ListSubscribersResponse>, Status> {
        let r = request.into_inner();
        let framed_ip = match r.framed_ip.as_str() {
            "" => None,
            s => Some(s.parse().map_err(|_| {
                Status::invalid_argument(format!("framed_ip {s:?} is not an IPv4 address"))
            })?),
        };
        let filter = ListFilter {
            user_name: non_empty(r.user_name),
            framed_ip,
            nas_port_id: non_empty(r.nas_port_id),
            router: non_empty(r.router),
            service: non_empty(r.service),
        };
        let size = match r.page_size as usize {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let after = non_empty(r.page_token);
        let (page, more, total) = self.engine.sessions.list(&filter, after.as_deref(), size);
        let next_page_token = if more {
            page.last()
                .map(|r| r.session_id.clone())
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListSubscribersResponse {
            subscribers: page.iter().map(|r| subscriber_to_pb(r)).collect(),
            next_page_token,
            total: total as u64,
        }))
    }

    async fn get_subscriber(
        &self,
        request: Request<pb::GetSubscriberRequest>,
    ) -> Result<Response<pb::Subscriber>, Status> {
        let reference = reference(request.into_inner().subscriber)?;
        let entry = self
            .engine
            .sessions
            .find(&reference)
            .map_err(|e| subscriber_status(e.into()))?;
        Ok(Response::new(subscriber_to_pb(&entry.record)))
    }

    async fn activate_service(
        &self,
        request: Request<pb::ActivateServiceRequest>,
    ) -> Result<Response<pb::ServiceChangeResult>, Status> {
        let r = request.into_inner();
        let reference = reference(r.subscriber)?;
        let overrides: BTreeMap<String, String> = r.substitutions.into_iter().collect();
        let outcome = self
            .engine
            .activate(&reference, &r.service, overrides)
            .await
            .map_err(subscriber_status)?;
        Ok(Response::new(change_to_pb(outcome)))
    }

    async fn deactivate_service(
        &self,
        request: Request<pb::DeactivateServiceRequest>,
    ) -> Result<Response<pb::ServiceChangeResult>, Status> {
        let r = request.into_inner();
        let reference = reference(r.subscriber)?;
        let outcome = self
            .engine
            .deactivate(&reference, &r.service)
            .await
            .map_err(subscriber_status)?;
        Ok(Response::new(change_to_pb(outcome)))
    }

    async fn logout(
        &self,
        request: Request<pb::LogoutRequest>,
    ) -> Result<Response<pb::LogoutResponse>, Status> {
        let reference = reference(request.into_inner().subscriber)?;
        let outcome = self
            .engine
            .logout(&reference)
            .await
            .map_err(subscriber_status)?;
        Ok(Response::new(pb::LogoutResponse {
            session_id: outcome.session_id,
            result_code: outcome.result_code,
            usage: outcome.usage.into_iter().map(usage_to_pb).collect(),
        }))
    }

    async fn collect_usage(
        &self,
        request: Request<pb::CollectUsageRequest>,
    ) -> Result<Response<pb::CollectUsageResponse>, Status> {
        let reference = reference(request.into_inner().subscriber)?;
        let outcome = self
            .engine
            .collect_usage(&reference)
            .await
            .map_err(subscriber_status)?;
        Ok(Response::new(pb::CollectUsageResponse {
            session_id: outcome.session_id,
            result_code: outcome.result_code,
            usage: outcome.usage.into_iter().map(usage_to_pb).collect(),
        }))
    }

    async fn list_usage_records(
        &self,
        request: Request<pb::ListUsageRecordsRequest>,
    ) -> Result<Response<pb::ListUsageRecordsResponse>, Status> {
        let r = request.into_inner();
        let filter = UsageFilter {
            session_id: non_empty(r.session_id),
            user_name: non_empty(r.user_name),
            policy_name: non_empty(r.policy_name),
            after_id: r.after_id,
            limit: (r.limit as usize).min(MAX_PAGE),
        };
        let store = self.engine.store.clone();
        let records = tokio::task::spawn_blocking(move || {
            store.flush()?;
            store.usage(&filter)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(pb::ListUsageRecordsResponse {
            records: records.into_iter().map(usage_to_pb).collect(),
        }))
    }

    async fn resync_router(
        &self,
        request: Request<pb::ResyncRouterRequest>,
    ) -> Result<Response<pb::ResyncRouterResponse>, Status> {
        let router = request.into_inner().router;
        if router.is_empty() {
            return Err(Status::invalid_argument("router is required"));
        }
        let code = self
            .diameter
            .diameter()
            .resync_router(&router)
            .await
            .map_err(|e| subscriber_status(e.into()))?;
        Ok(Response::new(pb::ResyncRouterResponse {
            result_code: code,
        }))
    }

    async fn list_cops_connections(
        &self,
        _request: Request<pb::ListCopsConnectionsRequest>,
    ) -> Result<Response<pb::ListCopsConnectionsResponse>, Status> {
        use crate::config::CopsProfile;
        let connections = self
            .cops
            .statuses()
            .into_iter()
            .map(|(s, states)| pb::CopsConnection {
                pepid: s.pepid,
                client_type: u32::from(s.client_type),
                profile: match s.profile {
                    CopsProfile::Provisioning => "provisioning".into(),
                    CopsProfile::Admission => "admission".into(),
                },
                remote_address: s.remote.to_string(),
                state: "open".into(),
                keepalive_secs: u32::from(s.keepalive_secs),
                accounting_timer_secs: u32::from(s.accounting_timer_secs),
                opened_unix_ms: s.opened_ms,
                request_states: states as u64,
                resumed: s.resumed,
            })
            .collect();
        Ok(Response::new(pb::ListCopsConnectionsResponse {
            connections,
        }))
    }

    async fn list_admission_budgets(
        &self,
        _request: Request<pb::ListAdmissionBudgetsRequest>,
    ) -> Result<Response<pb::ListAdmissionBudgetsResponse>, Status> {
        use crate::cops::admission::BudgetKey;
        let status = self.cops.admission.lock().expect("admission lock").status();
        let budgets = status
            .into_iter()
            .map(|b| {
                let (kind, name) = match b.key {
                    BudgetKey::Pep(p) => ("pep", p),
                    BudgetKey::Realm(r) => ("realm", r),
                };
                pb::AdmissionBudget {
                    kind: kind.into(),
                    name,
                    calls_limit: b.budget.calls,
                    bandwidth_kbps_limit: b.budget.bandwidth_kbps,
                    calls: b.calls,
                    bandwidth_kbps: b.bandwidth_kbps,
                }
            })
            .collect();
        Ok(Response::new(pb::ListAdmissionBudgetsResponse { budgets }))
    }

    async fn control_usage(
        &self,
        request: Request<pb::ControlUsageRequest>,
    ) -> Result<Response<pb::ControlUsageResponse>, Status> {
        use sae_cops::message::Decision;
        use sae_cops::object::{Command, Context, DecisionFlags};
        use sae_cops::usage::ActionKind;
        let r = request.into_inner();
        let action = match r.action.as_str() {
            "solicit" => ActionKind::Solicit,
            "suspend-reporting" => ActionKind::SuspendReporting,
            "resume-reporting" => ActionKind::ResumeReporting,
            "suspend-monitoring" => ActionKind::SuspendMonitoring,
            "resume-monitoring" => ActionKind::ResumeMonitoring,
            other => {
                return Err(Status::invalid_argument(format!(
                    "action {other:?}: expected solicit, suspend-reporting, resume-reporting, \
                     suspend-monitoring or resume-monitoring"
                )));
            }
        };
        let client_type = u16::try_from(r.client_type)
            .map_err(|_| Status::invalid_argument("client_type is 16 bits"))?;
        let (driver, handles) = self.cops.driver(&r.pepid, client_type).ok_or_else(|| {
            Status::not_found(format!(
                "no open COPS client type {client_type:#06x} for PEP {:?}",
                r.pepid
            ))
        })?;
        let handles = if r.handle.is_empty() {
            handles
        } else {
            let h = hex_handle(&r.handle)?;
            if !handles.contains(&h) {
                return Err(Status::not_found(format!(
                    "PEP {:?} has no handle {}",
                    r.pepid, r.handle
                )));
            }
            vec![h]
        };
        let named = crate::cops::decisions::feedback_decision(action).map_err(Status::internal)?;
        let mut sent = 0;
        for handle in handles {
            let mut d = Decision::new(
                Context::configuration(),
                DecisionFlags::new(Command::Install),
            );
            d.named = Some(named.clone());
            let ok = driver
                .send(crate::cops::driver::SendDecision {
                    client_type,
                    handle,
                    decisions: vec![d],
                })
                .await
                .unwrap_or(false);
            if ok {
                sent += 1;
            }
        }
        Ok(Response::new(pb::ControlUsageResponse {
            request_states: sent,
        }))
    }

    type WatchEventsStream = EventStream;

    async fn watch_events(
        &self,
        request: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let r = request.into_inner();
        let session = non_empty(r.session_id);
        let user = non_empty(r.user_name);
        let rx = self.engine.events.subscribe();
        let stream = tokio_stream::wrappers::BroadcastStream::new(rx).filter_map(move |e| {
            let keep = match e {
                Ok(e) => {
                    let wanted = session.as_ref().is_none_or(|s| *s == e.session_id)
                        && user.as_ref().is_none_or(|u| *u == e.user_name);
                    wanted.then(|| Ok(event_to_pb(e)))
                }
                // A watcher that fell behind loses the oldest events and goes on.
                Err(_) => None,
            };
            std::future::ready(keep)
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

fn hex_handle(s: &str) -> Result<sae_cops::object::Handle, Status> {
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

/// Binds the gRPC listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// The gRPC health service and its reporter: the whole server ("") is NOT_SERVING until
/// [`set_ready`] (the node is a cluster member), and again while it leaves.
pub fn health() -> (
    tonic_health::server::HealthReporter,
    tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
) {
    tonic_health::server::health_reporter()
}

/// Marks the node ready (or not) in the health service.
pub async fn set_ready(reporter: &tonic_health::server::HealthReporter, ready: bool) {
    let status = if ready {
        tonic_health::ServingStatus::Serving
    } else {
        tonic_health::ServingStatus::NotServing
    };
    reporter.set_service_status("", status).await;
    if ready {
        reporter
            .set_serving::<ManagementServer<ManagementService>>()
            .await;
    } else {
        reporter
            .set_not_serving::<ManagementServer<ManagementService>>()
            .await;
    }
}

/// Serves the management API, health and reflection on `listener` until the task is dropped.
pub async fn serve(
    listener: TcpListener,
    service: ManagementService,
    health_service: tonic_health::pb::health_server::HealthServer<
        impl tonic_health::pb::health_server::Health,
    >,
) -> anyhow::Result<()> {
    let cluster = crate::cluster::service::server(service.cluster.clone());
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(sae_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(ManagementServer::new(service))
        .add_service(cluster)
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
        .await?;
    Ok(())
}
