//! The management API over gRPC (tonic), with the standard health service and server
//! reflection. Conversions between the domain and the prost types live here only.

use std::net::SocketAddr;
use std::time::Instant;

use sae_proto::v1::management_server::{Management, ManagementServer};
use sae_proto::v1::{DiameterPeer, GetNodeStatusRequest, NodeStatus};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

use crate::diameter::{DiameterServer, PeerStatus};

/// The management service of one node.
#[derive(Clone)]
pub struct ManagementService {
    pub node_name: String,
    pub origin_host: String,
    pub origin_realm: String,
    pub started: Instant,
    pub diameter: DiameterServer,
}

impl From<PeerStatus> for DiameterPeer {
    fn from(p: PeerStatus) -> Self {
        DiameterPeer {
            origin_host: p.origin_host,
            origin_realm: p.origin_realm,
            remote_address: p.remote.to_string(),
            state: "open".into(),
            watchdog: p.watchdog.name().into(),
            applications: p.applications,
            product_name: p.product_name,
        }
    }
}

#[tonic::async_trait]
impl Management for ManagementService {
    async fn get_node_status(
        &self,
        _request: Request<GetNodeStatusRequest>,
    ) -> Result<Response<NodeStatus>, Status> {
        Ok(Response::new(NodeStatus {
            node_name: self.node_name.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_seconds: self.started.elapsed().as_secs(),
            origin_host: self.origin_host.clone(),
            origin_realm: self.origin_realm.clone(),
            diameter_peers: self.diameter.peers().into_iter().map(Into::into).collect(),
        }))
    }
}

/// Binds the gRPC listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves the management API, health and reflection on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, service: ManagementService) -> anyhow::Result<()> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<ManagementServer<ManagementService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(sae_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(ManagementServer::new(service))
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
        .await?;
    Ok(())
}
