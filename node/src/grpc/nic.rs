//! The node's side of the NIC over gRPC: the hooks of its embedded `sae.v1.Nic` service (other
//! members publish their bindings there), the publisher's transport, and the [`Resolver`] the
//! management API asks: the embedded NIC, or standalone NICs through a [`NicProxy`] with a
//! resolution cache that their invalidations keep true.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sae_nic::cache::ResolutionCache;
use sae_nic::{NodeId, Publication, Reference, Resolution};
use sae_nic_server::convert;
use sae_nic_server::service::MAX_MESSAGE;
use sae_nic_server::{BatchOutcome, Hooks, Nic};
use sae_proto::v1 as pb;
use sae_proto::v1::nic_client::NicClient;
use tonic::Status;
use tonic::transport::Channel;

use crate::cluster::Cluster;
use crate::nic::publisher::SendFn;

/// How long one publish call may take.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one resolution or listing at a NIC endpoint may take before the next is tried.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause before watching again after a watch ended, doubled up to [`MAX_WATCH_BACKOFF`].
const WATCH_BACKOFF: Duration = Duration::from_millis(200);
const MAX_WATCH_BACKOFF: Duration = Duration::from_secs(5);

/// The embedded NIC service's hooks: member names from the control state, counts into the
/// node's metrics.
pub struct NodeHooks {
    pub cluster: std::sync::Weak<Cluster>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl Hooks for NodeHooks {
    fn node_name(&self, node: NodeId) -> Option<String> {
        self.cluster
            .upgrade()
            .and_then(|c| c.member_names().remove(&node))
    }

    fn published(&self, outcome: BatchOutcome) {
        self.metrics.nic_received("changed", outcome.changed);
        self.metrics.nic_received("stale", outcome.stale);
        self.metrics.nic_received("same", outcome.same);
    }
}

/// Sends batches to `sae.v1.Nic/Publish` at an address (another member or a NIC endpoint) over
/// the cluster's cached channels.
pub fn sender(cluster: std::sync::Weak<Cluster>, node_name: String) -> SendFn {
    Arc::new(move |addr: String, batch: Arc<Vec<Publication>>| {
        let cluster = cluster.upgrade();
        let node_name = node_name.clone();
        Box::pin(async move {
            let cluster = cluster.ok_or("the node is stopping")?;
            let channel = cluster.channel(&addr).map_err(|e| e.to_string())?;
            let request = pb::PublishRequest {
                node: cluster.id,
                publications: batch
                    .iter()
                    .filter_map(convert::publication_to_pb)
                    .collect(),
                node_name,
            };
            let mut client = NicClient::new(channel).max_encoding_message_size(MAX_MESSAGE);
            match tokio::time::timeout(PUBLISH_TIMEOUT, client.publish(request)).await {
                Ok(Ok(reply)) => Ok(reply.into_inner().instance),
                Ok(Err(status)) => Err(status.message().to_owned()),
                Err(_) => Err("timed out".into()),
            }
        })
    })
}

/// Where this node resolves subscriber references.
#[derive(Clone)]
pub enum Resolver {
    /// Its own directory of the whole cluster.
    Embedded(Arc<Nic>),
    /// Standalone NICs.
    Proxy(Arc<NicProxy>),
    /// None (`[nic] enabled = false`).
    Disabled,
}

fn disabled() -> Status {
    Status::failed_precondition("this node runs without a NIC ([nic] enabled = false)")
}

impl Resolver {
    /// Resolves a reference.
    pub async fn resolve(&self, reference: &Reference) -> Result<Resolution, Status> {
        match self {
            Resolver::Embedded(nic) => nic
                .resolve(reference)
                .map_err(|e| Status::not_found(e.to_string())),
            Resolver::Proxy(proxy) => proxy.resolve(reference).await,
            Resolver::Disabled => Err(disabled()),
        }
    }

    /// Resolves a reference's text into the answer of the API, naming nodes with `names`.
    pub async fn resolve_reply(
        &self,
        text: &str,
        names: impl Fn(NodeId) -> Option<String>,
    ) -> Result<pb::ResolveReply, Status> {
        let reference = sae_nic_server::service::reference(text)?;
        let res = self.resolve(&reference).await?;
        Ok(convert::resolution_to_pb(&reference, &res, names))
    }

    /// Lists bindings as the request asks.
    pub async fn list_bindings(
        &self,
        request: pb::ListBindingsRequest,
    ) -> Result<pb::ListBindingsReply, Status> {
        match self {
            Resolver::Embedded(nic) => sae_nic_server::service::list_bindings(nic, &request),
            Resolver::Proxy(proxy) => proxy.list_bindings(request).await,
            Resolver::Disabled => Err(disabled()),
        }
    }
}

/// Resolves through one or more standalone NIC endpoints: the last one that answered first,
/// the others in turn when it does not; answers cached while a watch of invalidations runs.
pub struct NicProxy {
    endpoints: Vec<(String, Channel)>,
    preferred: AtomicUsize,
    cache: Mutex<ResolutionCache>,
    /// Whether a watch is delivering invalidations (nothing is cached otherwise).
    watching: AtomicBool,
    metrics: Arc<crate::metrics::Metrics>,
}

impl NicProxy {
    /// A proxy of `endpoints` (gRPC `host:port`, channels from the cluster's cache).
    pub fn new(
        endpoints: &[String],
        cluster: &Cluster,
        cache_entries: usize,
        cache_ttl: Duration,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Result<NicProxy, crate::cluster::ClusterError> {
        let endpoints = endpoints
            .iter()
            .map(|addr| Ok((addr.clone(), cluster.channel(addr)?)))
            .collect::<Result<Vec<_>, crate::cluster::ClusterError>>()?;
        Ok(NicProxy {
            endpoints,
            preferred: AtomicUsize::new(0),
            cache: Mutex::new(ResolutionCache::new(cache_entries, cache_ttl)),
            watching: AtomicBool::new(false),
            metrics,
        })
    }

    /// The endpoints' addresses, as configured.
    pub fn endpoints(&self) -> Vec<String> {
        self.endpoints.iter().map(|(a, _)| a.clone()).collect()
    }

    /// Whether invalidations arrive (answers are cached).
    pub fn watching(&self) -> bool {
        self.watching.load(Ordering::Relaxed)
    }

    pub fn cache_stats(&self) -> sae_nic::cache::CacheStats {
        self.cache.lock().expect("cache lock").stats()
    }

    async fn resolve(&self, reference: &Reference) -> Result<Resolution, Status> {
        let watching = self.watching();
        let generation = {
            let mut cache = self.cache.lock().expect("cache lock");
            if watching && let Some(hit) = cache.get(reference, Instant::now()) {
                self.metrics.nic_cache("hit");
                return Ok(hit);
            }
            cache.generation()
        };
        self.metrics.nic_cache("miss");
        let request = pb::ResolveRequest {
            reference: reference.to_string(),
        };
        let reply = self
            .call(|mut client| {
                let request = request.clone();
                async move { client.resolve(request).await }
            })
            .await?;
        let res = convert::resolution_from_pb(&reply);
        if watching {
            self.cache.lock().expect("cache lock").insert(
                reference.clone(),
                res.clone(),
                generation,
                Instant::now(),
            );
        }
        Ok(res)
    }

    async fn list_bindings(
        &self,
        request: pb::ListBindingsRequest,
    ) -> Result<pb::ListBindingsReply, Status> {
        self.call(|mut client| {
            let request = request.clone();
            async move { client.list_bindings(request).await }
        })
        .await
    }

    /// Calls the endpoints in turn from the preferred one until one answers (an answer that is
    /// an error of the request itself, such as NOT_FOUND, is an answer).
    async fn call<T, F, Fut>(&self, f: F) -> Result<T, Status>
    where
        F: Fn(NicClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let n = self.endpoints.len();
        let first = self.preferred.load(Ordering::Relaxed);
        let mut failures = Vec::new();
        for i in 0..n {
            let at = (first + i) % n;
            let (addr, channel) = &self.endpoints[at];
            let client = NicClient::new(channel.clone()).max_decoding_message_size(MAX_MESSAGE);
            let failure = match tokio::time::timeout(CALL_TIMEOUT, f(client)).await {
                Ok(Ok(reply)) => {
                    self.preferred.store(at, Ordering::Relaxed);
                    return Ok(reply.into_inner());
                }
                Ok(Err(status)) if !unreachable(&status) => {
                    self.preferred.store(at, Ordering::Relaxed);
                    return Err(status);
                }
                Ok(Err(status)) => status.message().to_owned(),
                Err(_) => format!("no answer within {CALL_TIMEOUT:?}"),
            };
            failures.push(format!("{addr}: {failure}"));
        }
        Err(Status::unavailable(format!(
            "no NIC endpoint answers ({})",
            failures.join("; ")
        )))
    }

    /// Watches the endpoints' invalidations for as long as the node runs: one endpoint at a
    /// time, the next when it ends; the cache is emptied whenever the watch is not running.
    pub async fn watch(self: Arc<Self>) {
        let mut backoff = WATCH_BACKOFF;
        let mut at = 0;
        loop {
            let (addr, channel) = &self.endpoints[at % self.endpoints.len()];
            let mut client = NicClient::new(channel.clone());
            match client.watch(pb::WatchRequest {}).await {
                Ok(stream) => {
                    let mut stream = stream.into_inner();
                    loop {
                        match stream.message().await {
                            Ok(Some(change)) => {
                                let change = convert::invalidation_from_pb(change);
                                self.cache.lock().expect("cache lock").invalidate(&change);
                                if !self.watching.swap(true, Ordering::Relaxed) {
                                    tracing::info!(nic = %addr, "watching NIC invalidations");
                                    backoff = WATCH_BACKOFF;
                                }
                            }
                            Ok(None) => {
                                tracing::info!(nic = %addr, "NIC watch ended");
                                break;
                            }
                            Err(status) => {
                                tracing::info!(nic = %addr, "NIC watch failed: {}", status.message());
                                break;
                            }
                        }
                    }
                }
                Err(status) => {
                    tracing::debug!(nic = %addr, "NIC watch: {}", status.message());
                }
            }
            self.watching.store(false, Ordering::Relaxed);
            self.cache.lock().expect("cache lock").clear();
            at += 1;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_WATCH_BACKOFF);
        }
    }
}

/// Whether a status means the endpoint did not answer (rather than answered with an error).
fn unreachable(status: &Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unavailable
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Unknown
            | tonic::Code::Cancelled
            | tonic::Code::Unimplemented
    )
}
