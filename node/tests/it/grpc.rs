//! The management API: node status, health and reflection over real gRPC.

use sae_proto::v1::GetNodeStatusRequest;
use sae_proto::v1::management_client::ManagementClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::client::{Client, config, jsrc};

#[actix::test]
async fn node_status_lists_connected_diameter_peers_and_health_is_serving() {
    let node = sae_node::start(config("")).await.unwrap();
    let listeners = node.listeners();
    let diameter = listeners
        .iter()
        .find(|l| l.protocol == "diameter")
        .unwrap()
        .addr;
    let grpc = listeners
        .iter()
        .find(|l| l.protocol == "grpc")
        .unwrap()
        .addr;
    let endpoint = format!("http://{grpc}");

    let mut router = Client::connect(diameter).await;
    router
        .exchange_capabilities("router1.test.realm", &[jsrc()])
        .await;

    let mut mgmt = ManagementClient::connect(endpoint.clone()).await.unwrap();
    let status = mgmt
        .get_node_status(GetNodeStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.origin_host, "sae.test.realm");
    assert_eq!(status.diameter_peers.len(), 1);
    let peer = &status.diameter_peers[0];
    assert_eq!(peer.origin_host, "router1.test.realm");
    assert_eq!(peer.watchdog, "okay");
    assert_eq!(peer.applications, vec![jsrc()]);

    let channel = tonic::transport::Endpoint::from_shared(endpoint)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    let overall = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(overall.into_inner().status(), ServingStatus::Serving);
    let mgmt_health = health
        .check(HealthCheckRequest {
            service: "sae.v1.Management".into(),
        })
        .await
        .unwrap();
    assert_eq!(mgmt_health.into_inner().status(), ServingStatus::Serving);
}
