//! The node's gRPC server: the management API (`sae.v1.Management`, [`management`]), the
//! node-to-node service (`sae.v1.Cluster`: Raft RPCs, membership, [`cluster`]), the embedded
//! NIC's (`sae.v1.Nic`: publications from the other members, resolution; the service itself is
//! `sae_nic_server`'s, the node's side of it and the standalone NICs' proxy are [`nic`]), the standard
//! health service and server reflection, on one listener. Every conversion between the domain
//! and the prost types lives in [`convert`]. The cached channels to the other members (Raft,
//! forwarding to the leader) are the cluster's (`cluster::channels`).

pub mod aggregates;
pub mod cluster;
pub mod convert;
pub mod management;
pub mod nic;

use std::net::SocketAddr;

use sae_proto::v1::management_server::ManagementServer;
use tokio::net::TcpListener;

pub use management::ManagementService;

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
    nic: Option<sae_nic_server::NicService>,
    health_service: tonic_health::pb::health_server::HealthServer<
        impl tonic_health::pb::health_server::Health,
    >,
) -> anyhow::Result<()> {
    let cluster = cluster::server(service.cluster.clone());
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(sae_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(ManagementServer::new(service))
        .add_service(cluster)
        // Only an embedded NIC takes the other members' publications.
        .add_optional_service(nic.map(sae_nic_server::NicService::server))
        // Without TCP_NODELAY on accepted connections, a small answer after a small request
        // waits for the peer's delayed ACK (~40 ms).
        .serve_with_incoming(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
        )
        .await?;
    Ok(())
}
