//! The `sae.v1.Nic` service of a node's embedded NIC (other members publish their bindings
//! here; anyone may resolve), the conversions between its prost types and `sae_nic`'s, and the
//! publisher's transport.

use std::sync::Arc;
use std::time::Duration;

use sae_nic::directory::Entry;
use sae_nic::{Attributes, Binding, Match, Publication, Reference, SessionKey};
use sae_proto::v1 as pb;
use sae_proto::v1::nic_client::NicClient;
use sae_proto::v1::nic_publication::Kind;
use tonic::{Request, Response, Status};

use crate::cluster::Cluster;
use crate::nic::Nic;
use crate::nic::publisher::SendFn;

/// How long one publish call may take.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);
/// Bindings listed when the request names no limit, and at most.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 10_000;

/// The service.
#[derive(Clone)]
pub struct NicService {
    pub nic: Arc<Nic>,
    pub cluster: Arc<Cluster>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

pub fn server(service: NicService) -> pb::nic_server::NicServer<NicService> {
    pb::nic_server::NicServer::new(service).max_decoding_message_size(64 * 1024 * 1024)
}

/// Sends batches to other members' `Nic` services over the cluster's cached channels.
pub fn sender(cluster: std::sync::Weak<Cluster>) -> SendFn {
    Arc::new(move |addr: String, batch: Arc<Vec<Publication>>| {
        let cluster = cluster.upgrade();
        Box::pin(async move {
            let cluster = cluster.ok_or("the node is stopping")?;
            let channel = cluster.channel(&addr).map_err(|e| e.to_string())?;
            let request = pb::PublishRequest {
                node: cluster.id,
                publications: batch.iter().filter_map(publication_to_pb).collect(),
            };
            let mut client = NicClient::new(channel).max_encoding_message_size(64 * 1024 * 1024);
            match tokio::time::timeout(PUBLISH_TIMEOUT, client.publish(request)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(status)) => Err(status.message().to_owned()),
                Err(_) => Err("timed out".into()),
            }
        })
    })
}

pub(crate) fn reference(text: &str) -> Result<Reference, Status> {
    Reference::parse(text).map_err(|e| Status::invalid_argument(e.to_string()))
}

pub(crate) fn resolve(
    nic: &Nic,
    cluster: &Cluster,
    text: &str,
) -> Result<pb::ResolveReply, Status> {
    let r = reference(text)?;
    let res = nic
        .resolve(&r)
        .map_err(|e| Status::not_found(e.to_string()))?;
    let names = cluster.member_names();
    Ok(pb::ResolveReply {
        reference: r.to_string(),
        chain: res.chain,
        matches: res
            .matches
            .iter()
            .map(|m| match_to_pb(m, names.get(&m.node).cloned()))
            .collect(),
    })
}

pub(crate) fn list_bindings(
    nic: &Nic,
    r: pb::ListBindingsRequest,
) -> Result<pb::ListBindingsReply, Status> {
    let filter = match r.reference.as_str() {
        "" => None,
        text => Some(reference(text)?),
    };
    let limit = match r.limit as usize {
        0 => DEFAULT_LIMIT,
        n => n.min(MAX_LIMIT),
    };
    let (entries, total) = nic.bindings(filter.as_ref(), limit);
    Ok(pb::ListBindingsReply {
        bindings: entries.iter().map(entry_to_pb).collect(),
        total: total as u64,
    })
}

#[tonic::async_trait]
impl pb::nic_server::Nic for NicService {
    async fn publish(
        &self,
        request: Request<pb::PublishRequest>,
    ) -> Result<Response<pb::PublishReply>, Status> {
        let r = request.into_inner();
        let publications = r
            .publications
            .into_iter()
            .map(publication_from_pb)
            .collect::<Result<Vec<_>, _>>()?;
        let outcome = self.nic.apply(publications);
        self.metrics.nic_received("changed", outcome.changed);
        self.metrics.nic_received("stale", outcome.stale);
        self.metrics.nic_received("same", outcome.same);
        Ok(Response::new(pb::PublishReply {
            changed: outcome.changed,
            stale: outcome.stale,
        }))
    }

    async fn resolve(
        &self,
        request: Request<pb::ResolveRequest>,
    ) -> Result<Response<pb::ResolveReply>, Status> {
        resolve(&self.nic, &self.cluster, &request.into_inner().reference).map(Response::new)
    }

    async fn list_bindings(
        &self,
        request: Request<pb::ListBindingsRequest>,
    ) -> Result<Response<pb::ListBindingsReply>, Status> {
        list_bindings(&self.nic, request.into_inner()).map(Response::new)
    }
}

pub(crate) fn match_to_pb(m: &Match, node_name: Option<String>) -> pb::NicMatch {
    pb::NicMatch {
        node: m.node,
        node_name: node_name.unwrap_or_default(),
        router: m.router.clone(),
        epoch: m.epoch,
        session_id: m
            .session
            .as_ref()
            .map(|s| s.session_id.clone())
            .unwrap_or_default(),
    }
}

fn binding_to_pb(session: &SessionKey, node: u64, epoch: u64, a: &Attributes) -> pb::NicBinding {
    let text = |s: &Option<String>| s.clone().unwrap_or_default();
    pb::NicBinding {
        router: session.router.clone(),
        session_id: session.session_id.clone(),
        node,
        epoch,
        addresses: a.addresses.iter().map(ToString::to_string).collect(),
        prefixes: a.prefixes.iter().map(ToString::to_string).collect(),
        login_name: text(&a.login_name),
        primary_user_name: text(&a.primary_user_name),
        dn: text(&a.dn),
        interface_name: text(&a.interface_name),
        vr: a.vr.as_ref().map(ToString::to_string).unwrap_or_default(),
        accounting_id: text(&a.accounting_id),
    }
}

pub(crate) fn entry_to_pb(e: &Entry) -> pb::NicBinding {
    binding_to_pb(&e.session, e.node, e.epoch, &e.attributes)
}

fn invalid(what: &str, e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("publication: {what}: {e}"))
}

fn binding_from_pb(b: pb::NicBinding) -> Result<Binding, Status> {
    let text = |s: String| (!s.is_empty()).then_some(s);
    Ok(Binding {
        session: SessionKey::new(b.router, b.session_id),
        node: b.node,
        epoch: b.epoch,
        attributes: Attributes {
            addresses: b
                .addresses
                .iter()
                .map(|a| a.parse().map_err(|e| invalid("address", e)))
                .collect::<Result<_, _>>()?,
            prefixes: b
                .prefixes
                .iter()
                .map(|p| p.parse().map_err(|e| invalid("prefix", e)))
                .collect::<Result<_, _>>()?,
            login_name: text(b.login_name),
            primary_user_name: text(b.primary_user_name),
            dn: text(b.dn),
            interface_name: text(b.interface_name),
            vr: match b.vr.as_str() {
                "" => None,
                vr => Some(vr.parse().map_err(|e| invalid("vr", e))?),
            },
            accounting_id: text(b.accounting_id),
        },
    })
}

/// The publication on the wire; pools are not sent (they come from each NIC's configuration).
pub(crate) fn publication_to_pb(p: &Publication) -> Option<pb::NicPublication> {
    let router = |router: &str, node, epoch| pb::NicRouter {
        router: router.to_owned(),
        node,
        epoch,
    };
    let kind = match p {
        Publication::Bind(b) => {
            Kind::Bind(binding_to_pb(&b.session, b.node, b.epoch, &b.attributes))
        }
        Publication::Unbind {
            session,
            node,
            epoch,
        } => Kind::Unbind(pb::NicUnbind {
            router: session.router.clone(),
            session_id: session.session_id.clone(),
            node: *node,
            epoch: *epoch,
        }),
        Publication::Owner {
            router: r,
            node,
            epoch,
        } => Kind::Owner(router(r, *node, *epoch)),
        Publication::Synced {
            router: r,
            node,
            epoch,
        } => Kind::Synced(router(r, *node, *epoch)),
        Publication::ReplayStart { node } => Kind::ReplayStart(*node),
        Publication::ReplayEnd { node } => Kind::ReplayEnd(*node),
        Publication::Pools { .. } => return None,
    };
    Some(pb::NicPublication { kind: Some(kind) })
}

fn publication_from_pb(p: pb::NicPublication) -> Result<Publication, Status> {
    Ok(match p.kind {
        Some(Kind::Bind(b)) => Publication::bind(binding_from_pb(b)?),
        Some(Kind::Unbind(u)) => Publication::Unbind {
            session: SessionKey::new(u.router, u.session_id),
            node: u.node,
            epoch: u.epoch,
        },
        Some(Kind::Owner(r)) => Publication::Owner {
            router: r.router,
            node: r.node,
            epoch: r.epoch,
        },
        Some(Kind::Synced(r)) => Publication::Synced {
            router: r.router,
            node: r.node,
            epoch: r.epoch,
        },
        Some(Kind::ReplayStart(node)) => Publication::ReplayStart { node },
        Some(Kind::ReplayEnd(node)) => Publication::ReplayEnd { node },
        None => return Err(invalid("kind", "none set")),
    })
}
