//! `sae-node`: the Service Activation Engine node.
//!
//! This first form runs the Diameter listener for JSRC/PTSP routers: capabilities exchange,
//! watchdog and disconnect through the `sae-diameter` peer state machine, with the allow-list
//! and duplicate-peer policy from the configuration. `main` is a thin wrapper around
//! [`start`].

#![forbid(unsafe_code)]

pub mod config;
pub mod diameter;
pub mod grpc;
pub mod telemetry;

use std::net::SocketAddr;
use std::sync::Arc;

use sae_diameter::codes::DisconnectCause;
use tokio::task::JoinSet;

pub use config::Config;
use diameter::DiameterServer;

/// A running node.
pub struct Node {
    diameter: DiameterServer,
    grpc_addr: SocketAddr,
    accept: tokio::task::JoinHandle<()>,
    grpc: tokio::task::JoinHandle<()>,
    connections: Arc<tokio::sync::Mutex<JoinSet<()>>>,
}

/// An address the node listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    /// "diameter" or "grpc".
    pub protocol: &'static str,
    pub addr: SocketAddr,
}

/// Binds every listener and starts serving. Must run inside a tokio runtime.
pub async fn start(config: Config) -> anyhow::Result<Node> {
    let (diameter, listener) = DiameterServer::bind(&config.diameter)
        .await
        .map_err(|e| anyhow::anyhow!("diameter listener on {}: {e}", config.diameter.listen))?;
    if config.diameter.allowed_peers.is_none() {
        tracing::warn!("no diameter.allowed_peers configured: any Diameter peer is accepted");
    }
    tracing::info!(
        node = %config.name,
        origin_host = %config.diameter.origin_host,
        addr = %diameter.local_addr(),
        applications = ?config.diameter.applications.iter().map(|a| a.name()).collect::<Vec<_>>(),
        "diameter listener bound"
    );
    let grpc_listener = grpc::bind(config.grpc_listen)
        .await
        .map_err(|e| anyhow::anyhow!("gRPC listener on {}: {e}", config.grpc_listen))?;
    let grpc_addr = grpc_listener.local_addr()?;
    let management = grpc::ManagementService {
        node_name: config.name.clone(),
        origin_host: config.diameter.origin_host.clone(),
        origin_realm: config.diameter.origin_realm.clone(),
        started: std::time::Instant::now(),
        diameter: diameter.clone(),
    };
    let grpc = tokio::spawn(async move {
        if let Err(e) = grpc::serve(grpc_listener, management).await {
            tracing::error!("management API stopped: {e:#}");
        }
    });
    let connections = Arc::new(tokio::sync::Mutex::new(JoinSet::new()));
    let accept = tokio::spawn(diameter.clone().serve(listener, connections.clone()));
    Ok(Node {
        diameter,
        grpc_addr,
        accept,
        grpc,
        connections,
    })
}

impl Node {
    /// Every bound listener, in the order they are announced.
    pub fn listeners(&self) -> Vec<Listener> {
        vec![
            Listener {
                protocol: "diameter",
                addr: self.diameter.local_addr(),
            },
            Listener {
                protocol: "grpc",
                addr: self.grpc_addr,
            },
        ]
    }

    /// The Diameter server (peers, status).
    pub fn diameter(&self) -> &DiameterServer {
        &self.diameter
    }

    /// Graceful stop: no new connections, DPR to every open peer, wait for them to close.
    pub async fn shutdown(self) {
        self.accept.abort();
        self.grpc.abort();
        self.diameter
            .disconnect_all(DisconnectCause::Rebooting)
            .await;
        let mut connections = self.connections.lock().await;
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
}
