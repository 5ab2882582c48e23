//! The management API (`sae.v1.Management`): the catalog, subscribers and their services,
//! usage, routers, COPS, the cluster; what only the leader decides is forwarded to it.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures::{Stream, StreamExt};
use sae_proto::v1 as pb;
use sae_proto::v1::management_server::Management;
use tonic::{Request, Response, Status};

use super::convert::*;
use crate::cluster::{Command, Response as ControlResponse};
use crate::diameter::DiameterServer;
use crate::model::UsageFilter;
use crate::subscriber::engine::Engine;
use crate::subscriber::registry::{ListFilter, LookupError, SubscriberRef};
use sae_nic::Reference;

/// The management service of one node.
#[derive(Clone)]
pub struct ManagementService {
    pub node_name: String,
    pub started: Instant,
    pub diameter: DiameterServer,
    pub engine: Arc<Engine>,
    pub cops: Arc<crate::cops::CopsShared>,
    pub cluster: Arc<crate::cluster::Cluster>,
    pub nic: super::nic::Resolver,
    pub aggregates: Arc<crate::aggregate::session::Aggregates>,
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
            .map_err(cluster_status)
    }

    /// A catalog change: a control-state command through the cluster's leader; once it
    /// returns, this node's catalog holds the change.
    async fn catalog_write(&self, cmd: Command) -> Result<(), Status> {
        match self.cluster.write(cmd).await {
            Ok((ControlResponse::Refused(r), _)) => Err(refusal_status(r)),
            Ok(_) => Ok(()),
            Err(e) => Err(cluster_status(e)),
        }
    }
}

/// Request metadata naming the node that forwarded a subscriber call to its owner: a call
/// carrying it is served here, never forwarded again.
const FORWARDED_BY: &str = "sae-forwarded-by";

/// Where a subscriber call is served.
enum Target {
    Local(SubscriberRef),
    /// The node at `addr` serves the session.
    Remote {
        addr: String,
        session_id: String,
    },
}

fn by_session(session_id: String) -> Option<pb::SubscriberRef> {
    Some(pb::SubscriberRef {
        key: Some(pb::subscriber_ref::Key::SessionId(session_id)),
    })
}

impl ManagementService {
    /// Where the call for this subscriber is served: here when the node holds the session (or
    /// the call was forwarded to it), else on the node the NIC resolves the reference to.
    async fn target(
        &self,
        forwarded: bool,
        r: Option<pb::SubscriberRef>,
    ) -> Result<Target, Status> {
        if let Some(pb::subscriber_ref::Key::Reference(text)) =
            r.as_ref().and_then(|r| r.key.as_ref())
        {
            let reference = sae_nic_server::service::reference(text)?;
            return self.resolved(&reference, forwarded).await;
        }
        let local = reference(r)?;
        if forwarded
            || !matches!(
                self.engine.sessions.find(&local),
                Err(LookupError::NotFound(_))
            )
        {
            return Ok(Target::Local(local));
        }
        let nic_reference = match &local {
            SubscriberRef::SessionId(id) => Reference {
                session_id: Some(id.clone()),
                ..Reference::default()
            },
            SubscriberRef::UserName(name) => Reference {
                login_name: Some(name.clone()),
                ..Reference::default()
            },
            SubscriberRef::FramedIp(ip) => match Reference::parse(&format!("ip={ip}")) {
                Ok(r) => r,
                Err(_) => return Ok(Target::Local(local)),
            },
            SubscriberRef::NasPortId(_) => return Ok(Target::Local(local)),
        };
        match self.resolved(&nic_reference, false).await {
            Ok(remote @ Target::Remote { .. }) => Ok(remote),
            _ => Ok(Target::Local(local)),
        }
    }

    /// The one session a NIC reference names, here or on another node.
    async fn resolved(&self, reference: &Reference, forwarded: bool) -> Result<Target, Status> {
        let res = self.nic.resolve(reference).await?;
        let bound: Vec<&sae_nic::Match> =
            res.matches.iter().filter(|m| m.session.is_some()).collect();
        let (node, session_id) = match bound.as_slice() {
            [] => {
                let serving: Vec<String> = res
                    .matches
                    .iter()
                    .map(|m| format!("node {} serves {}", m.node, m.router))
                    .collect();
                return Err(Status::not_found(format!(
                    "no subscriber session is bound to {reference} ({})",
                    serving.join(", ")
                )));
            }
            [m] => (
                m.node,
                m.session
                    .as_ref()
                    .map(|s| s.session_id.clone())
                    .unwrap_or_default(),
            ),
            many => {
                let names: Vec<String> = many
                    .iter()
                    .filter_map(|m| {
                        m.session
                            .as_ref()
                            .map(|s| format!("{} on node {}", s.session_id, m.node))
                    })
                    .collect();
                return Err(Status::failed_precondition(format!(
                    "{reference} names {} sessions: {}",
                    names.len(),
                    names.join(", ")
                )));
            }
        };
        if node == self.cluster.id || forwarded {
            return Ok(Target::Local(SubscriberRef::SessionId(session_id)));
        }
        let addr = self
            .cluster
            .peers()
            .into_iter()
            .find(|(id, _)| *id == node)
            .map(|(_, addr)| addr)
            .ok_or_else(|| {
                Status::unavailable(format!(
                    "{reference}: node {node} serves it but is not a member this node knows"
                ))
            })?;
        Ok(Target::Remote { addr, session_id })
    }

    /// The management API of another member, for a forwarded call.
    fn member_management(
        &self,
        addr: &str,
    ) -> Result<pb::management_client::ManagementClient<tonic::transport::Channel>, Status> {
        self.cluster
            .channel(addr)
            .map(pb::management_client::ManagementClient::new)
            .map_err(cluster_status)
    }

    /// A request marked as forwarded by this node.
    fn forwarded<T>(&self, message: T) -> Request<T> {
        let mut r = Request::new(message);
        if let Ok(v) = self.cluster.id.to_string().parse() {
            r.metadata_mut().insert(FORWARDED_BY, v);
        }
        r
    }

    /// One page of every member's subscribers: each member's page after the same token,
    /// merged in Session-Id order.
    async fn list_cluster_subscribers(
        &self,
        r: pb::ListSubscribersRequest,
    ) -> Result<pb::ListSubscribersResponse, Status> {
        let size = match r.page_size as usize {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let one = pb::ListSubscribersRequest {
            cluster: false,
            page_size: size as u32,
            ..r
        };
        let mut pages = vec![
            self.list_subscribers(Request::new(one.clone()))
                .await?
                .into_inner(),
        ];
        for (node, addr) in self.cluster.peers() {
            let page = self
                .member_management(&addr)?
                .list_subscribers(Request::new(one.clone()))
                .await
                .map_err(|e| {
                    Status::unavailable(format!("node {node} ({addr}): {}", e.message()))
                })?;
            pages.push(page.into_inner());
        }
        let total = pages.iter().map(|p| p.total).sum();
        let mut more = pages.iter().any(|p| !p.next_page_token.is_empty());
        let mut subscribers: Vec<pb::Subscriber> =
            pages.into_iter().flat_map(|p| p.subscribers).collect();
        subscribers.sort_by(|a, b| a.session_id.cmp(&b.session_id));
        if subscribers.len() > size {
            subscribers.truncate(size);
            more = true;
        }
        let next_page_token = if more {
            subscribers
                .last()
                .map(|s| s.session_id.clone())
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(pb::ListSubscribersResponse {
            subscribers,
            next_page_token,
            total,
        })
    }

    /// A subscriber as this node serves it.
    fn subscriber(&self, record: &crate::model::SubscriberRecord) -> pb::Subscriber {
        pb::Subscriber {
            node: self.cluster.id,
            node_name: self.node_name.clone(),
            ..subscriber_to_pb(record)
        }
    }
}

fn is_forwarded<T>(request: &Request<T>) -> bool {
    request.metadata().contains_key(FORWARDED_BY)
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
        let def = service_from_pb(service)?;
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
                .map_err(cluster_status)?;
        } else {
            // The leader's answer: this node may not have applied the move yet.
            let owner = self
                .leader_management()?
                .move_router(pb::MoveRouterRequest {
                    router: router.clone(),
                    node_id: req.node_id,
                })
                .await?;
            return Ok(owner);
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
                .map_err(cluster_status)?;
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
        if r.cluster {
            return self.list_cluster_subscribers(r).await.map(Response::new);
        }
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
            subscribers: page.iter().map(|r| self.subscriber(r)).collect(),
            next_page_token,
            total: total as u64,
        }))
    }

    async fn get_subscriber(
        &self,
        request: Request<pb::GetSubscriberRequest>,
    ) -> Result<Response<pb::Subscriber>, Status> {
        let forwarded = is_forwarded(&request);
        let reference = match self
            .target(forwarded, request.into_inner().subscriber)
            .await?
        {
            Target::Local(r) => r,
            Target::Remote { addr, session_id } => {
                let request = pb::GetSubscriberRequest {
                    subscriber: by_session(session_id),
                };
                return self
                    .member_management(&addr)?
                    .get_subscriber(self.forwarded(request))
                    .await;
            }
        };
        let entry = self
            .engine
            .sessions
            .find(&reference)
            .map_err(|e| subscriber_status(e.into()))?;
        Ok(Response::new(self.subscriber(&entry.record)))
    }

    async fn activate_service(
        &self,
        request: Request<pb::ActivateServiceRequest>,
    ) -> Result<Response<pb::ServiceChangeResult>, Status> {
        let forwarded = is_forwarded(&request);
        let r = request.into_inner();
        let reference = match self.target(forwarded, r.subscriber.clone()).await? {
            Target::Local(reference) => reference,
            Target::Remote { addr, session_id } => {
                let request = pb::ActivateServiceRequest {
                    subscriber: by_session(session_id),
                    ..r
                };
                return self
                    .member_management(&addr)?
                    .activate_service(self.forwarded(request))
                    .await;
            }
        };
        let overrides: BTreeMap<String, String> = r.substitutions.into_iter().collect();
        if let Some(def) = self.aggregates.is_aggregate(&r.service) {
            let entry = self
                .engine
                .sessions
                .find(&reference)
                .map_err(|e| subscriber_status(e.into()))?;
            let record = entry.record;
            let activation = crate::aggregate::propagation::Activation {
                substitutions: overrides,
                ..Default::default()
            };
            let outcome = self
                .aggregates
                .activate(
                    def,
                    record.session_id.clone(),
                    crate::nic::fields(&record),
                    activation,
                )
                .await;
            return Ok(Response::new(pb::ServiceChangeResult {
                session_id: record.session_id.clone(),
                service: r.service,
                policy_name: String::new(),
                success: outcome.is_ok(),
                result_code: 0,
                state: if outcome.is_ok() { "active" } else { "failed" }.into(),
                message: outcome.err().unwrap_or_default(),
                attempts: 1,
            }));
        }
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
        let forwarded = is_forwarded(&request);
        let r = request.into_inner();
        let reference = match self.target(forwarded, r.subscriber.clone()).await? {
            Target::Local(reference) => reference,
            Target::Remote { addr, session_id } => {
                let request = pb::DeactivateServiceRequest {
                    subscriber: by_session(session_id),
                    ..r
                };
                return self
                    .member_management(&addr)?
                    .deactivate_service(self.forwarded(request))
                    .await;
            }
        };
        if self.aggregates.is_aggregate(&r.service).is_some() {
            let entry = self
                .engine
                .sessions
                .find(&reference)
                .map_err(|e| subscriber_status(e.into()))?;
            let session_id = entry.record.session_id.clone();
            if !self.aggregates.deactivate(&session_id, &r.service) {
                return Err(Status::not_found(format!(
                    "{session_id} has no aggregate {:?}",
                    r.service
                )));
            }
            return Ok(Response::new(pb::ServiceChangeResult {
                session_id,
                service: r.service,
                success: true,
                state: "deactivating".into(),
                message: "its fragments are being stopped".into(),
                attempts: 1,
                ..Default::default()
            }));
        }
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
        let forwarded = is_forwarded(&request);
        let reference = match self
            .target(forwarded, request.into_inner().subscriber)
            .await?
        {
            Target::Local(reference) => reference,
            Target::Remote { addr, session_id } => {
                let request = pb::LogoutRequest {
                    subscriber: by_session(session_id),
                };
                return self
                    .member_management(&addr)?
                    .logout(self.forwarded(request))
                    .await;
            }
        };
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
        let forwarded = is_forwarded(&request);
        let reference = match self
            .target(forwarded, request.into_inner().subscriber)
            .await?
        {
            Target::Local(reference) => reference,
            Target::Remote { addr, session_id } => {
                let request = pb::CollectUsageRequest {
                    subscriber: by_session(session_id),
                };
                return self
                    .member_management(&addr)?
                    .collect_usage(self.forwarded(request))
                    .await;
            }
        };
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

    async fn list_aggregates(
        &self,
        _request: Request<pb::ListAggregatesRequest>,
    ) -> Result<Response<pb::ListAggregatesResponse>, Status> {
        let aggregates = self
            .aggregates
            .list()
            .into_iter()
            .map(|a| pb::AggregateSession {
                id: a.id,
                service: a.service,
                session_id: a.session_id,
                state: a.state,
                reason: a.reason,
                fragments: a
                    .fragments
                    .into_iter()
                    .map(|f| pb::AggregateFragment {
                        name: f.name,
                        service: f.service,
                        reference: f.reference,
                        node: f.target.as_ref().map_or(0, |t| t.node),
                        session_id: f.target.map(|t| t.session_id).unwrap_or_default(),
                        state: f.state,
                        error: f.error,
                    })
                    .collect(),
            })
            .collect();
        Ok(Response::new(pb::ListAggregatesResponse { aggregates }))
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

    async fn resolve(
        &self,
        request: Request<pb::ResolveRequest>,
    ) -> Result<Response<pb::ResolveReply>, Status> {
        let names = self.cluster.member_names();
        self.nic
            .resolve_reply(&request.into_inner().reference, |n| names.get(&n).cloned())
            .await
            .map(Response::new)
    }

    async fn list_bindings(
        &self,
        request: Request<pb::ListBindingsRequest>,
    ) -> Result<Response<pb::ListBindingsReply>, Status> {
        self.nic
            .list_bindings(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn evaluate_expression(
        &self,
        request: Request<pb::EvaluateExpressionRequest>,
    ) -> Result<Response<pb::EvaluateExpressionReply>, Status> {
        let forwarded = is_forwarded(&request);
        let r = request.into_inner();
        let expression = sae_nic::Expression::parse(&r.expression)
            .map_err(|e| Status::invalid_argument(format!("expression: {e}")))?;
        let mut env = match &r.subscriber {
            None => BTreeMap::new(),
            Some(_) => match self.target(forwarded, r.subscriber.clone()).await? {
                Target::Local(reference) => {
                    let entry = self
                        .engine
                        .sessions
                        .find(&reference)
                        .map_err(|e| subscriber_status(e.into()))?;
                    crate::nic::fields(&entry.record)
                }
                Target::Remote { addr, session_id } => {
                    let request = pb::EvaluateExpressionRequest {
                        subscriber: by_session(session_id),
                        ..r
                    };
                    return self
                        .member_management(&addr)?
                        .evaluate_expression(self.forwarded(request))
                        .await;
                }
            },
        };
        env.extend(
            r.substitutions
                .into_iter()
                .map(|(k, v)| (k, sae_nic::Value::Str(v))),
        );
        let value = expression
            .evaluate(&env)
            .map_err(|e| Status::invalid_argument(format!("expression: {e}")))?;
        let mut reply = pb::EvaluateExpressionReply {
            value: value.to_string(),
            value_type: value.type_name().into(),
            names: expression.names(),
            ..Default::default()
        };
        match sae_nic::evaluate_reference(&expression, &env) {
            Err(e) => reply.reference_error = e.to_string(),
            Ok(reference) => {
                reply.reference = reference.to_string();
                let names = self.cluster.member_names();
                match self
                    .nic
                    .resolve_reply(&reply.reference, |n| names.get(&n).cloned())
                    .await
                {
                    Ok(res) => reply.matches = res.matches,
                    Err(e) => reply.resolve_error = e.message().to_owned(),
                }
            }
        }
        Ok(Response::new(reply))
    }

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
