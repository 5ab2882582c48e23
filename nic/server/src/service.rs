//! The `sae.v1.Nic` gRPC service over a [`Nic`]: publications in, resolutions, listings and
//! invalidations out. What differs between the node's embedded NIC and the standalone one
//! (where node names come from, which metrics count) is behind [`Hooks`].

use std::pin::Pin;
use std::sync::Arc;

use sae_nic::{NodeId, Reference};
use sae_proto::v1 as pb;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use crate::convert;
use crate::nic::{BatchOutcome, Nic};

/// Bindings listed when the request names no limit, and at most.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 10_000;
/// Largest publish request accepted (a replay chunk of a few thousand bindings fits).
pub const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// What the host of a NIC service adds to it.
pub trait Hooks: Send + Sync + 'static {
    /// The name of a node, for answers.
    fn node_name(&self, node: NodeId) -> Option<String>;
    /// A publisher's batch was applied.
    fn published(&self, outcome: BatchOutcome);
    /// A resolution was answered: `found`, `not_found` or `invalid`.
    fn resolved(&self, _outcome: &'static str) {}
}

/// The service.
#[derive(Clone)]
pub struct NicService {
    nic: Arc<Nic>,
    hooks: Arc<dyn Hooks>,
}

impl NicService {
    pub fn new(nic: Arc<Nic>, hooks: Arc<dyn Hooks>) -> Self {
        NicService { nic, hooks }
    }

    /// The tonic server for it.
    pub fn server(self) -> pb::nic_server::NicServer<NicService> {
        pb::nic_server::NicServer::new(self).max_decoding_message_size(MAX_MESSAGE)
    }
}

/// A reference from a request, or INVALID_ARGUMENT naming what is wrong with it.
pub fn reference(text: &str) -> Result<Reference, Status> {
    Reference::parse(text).map_err(|e| Status::invalid_argument(e.to_string()))
}

/// Resolves `text` on `nic`, naming nodes with `names`.
pub fn resolve(
    nic: &Nic,
    text: &str,
    names: impl Fn(NodeId) -> Option<String>,
) -> Result<pb::ResolveReply, Status> {
    let r = reference(text)?;
    let res = nic
        .resolve(&r)
        .map_err(|e| Status::not_found(e.to_string()))?;
    Ok(convert::resolution_to_pb(&r, &res, names))
}

/// The limit a listing request asks for, within bounds.
pub fn limit(requested: u32) -> usize {
    match requested as usize {
        0 => DEFAULT_LIMIT,
        n => n.min(MAX_LIMIT),
    }
}

/// Lists bindings of `nic` as a request asks.
pub fn list_bindings(
    nic: &Nic,
    r: &pb::ListBindingsRequest,
) -> Result<pb::ListBindingsReply, Status> {
    let filter = match r.reference.as_str() {
        "" => None,
        text => Some(reference(text)?),
    };
    let (entries, total) = nic.bindings(filter.as_ref(), limit(r.limit));
    Ok(pb::ListBindingsReply {
        bindings: entries.iter().map(convert::entry_to_pb).collect(),
        total: total as u64,
    })
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::NicInvalidation, Status>> + Send>>;

fn everything() -> pb::NicInvalidation {
    pb::NicInvalidation {
        all: true,
        ..Default::default()
    }
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
            .map(convert::publication_from_pb)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Status::invalid_argument(format!("publication: {e}")))?;
        self.nic.learn_name(r.node, &r.node_name);
        let outcome = self.nic.apply(publications);
        self.hooks.published(outcome);
        Ok(Response::new(pb::PublishReply {
            changed: outcome.changed,
            stale: outcome.stale,
            instance: self.nic.instance(),
        }))
    }

    async fn resolve(
        &self,
        request: Request<pb::ResolveRequest>,
    ) -> Result<Response<pb::ResolveReply>, Status> {
        let hooks = self.hooks.clone();
        let answer = resolve(&self.nic, &request.into_inner().reference, |n| {
            hooks.node_name(n)
        });
        self.hooks.resolved(match &answer {
            Ok(_) => "found",
            Err(s) if s.code() == tonic::Code::NotFound => "not_found",
            Err(_) => "invalid",
        });
        answer.map(Response::new)
    }

    async fn list_bindings(
        &self,
        request: Request<pb::ListBindingsRequest>,
    ) -> Result<Response<pb::ListBindingsReply>, Status> {
        list_bindings(&self.nic, request.get_ref()).map(Response::new)
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        _request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let rx = self.nic.watch();
        let changes = tokio_stream::wrappers::BroadcastStream::new(rx).map(|change| {
            Ok(match change {
                Ok(change) => convert::invalidation_to_pb(&change),
                // Fell behind: what was missed is unknown.
                Err(_) => everything(),
            })
        });
        let stream = tokio_stream::once(Ok(everything())).chain(changes);
        Ok(Response::new(Box::pin(stream)))
    }
}
