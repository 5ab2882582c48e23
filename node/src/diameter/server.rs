//! The node's Diameter listener: accepts router connections and gives each a [`RouterDriver`]
//! actor; the router registry lives in [`Diameter`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sae_diameter::codes::{DisconnectCause, vendor};
use sae_diameter::peer::{EndToEndIds, PeerFilter, Role};
use sae_diameter::{Capabilities, PeerConfig, VendorApplication};
use tokio::net::TcpListener;

use super::driver::{Disconnect, DriverShared, RouterDriver};
use super::routers::PeerStatus;
use super::shared::Diameter;
use crate::config::DiameterConfig;

/// The running Diameter server.
#[derive(Clone)]
pub struct DiameterServer {
    shared: Arc<DriverShared>,
    next_connection: Arc<AtomicU64>,
    local_addr: SocketAddr,
}

/// The node's capabilities from its configuration.
pub fn local_capabilities(config: &DiameterConfig, origin_state_id: u32) -> Capabilities {
    Capabilities {
        origin_host: config.origin_host.clone(),
        origin_realm: config.origin_realm.clone(),
        host_ip_addresses: config.host_ip_addresses.clone(),
        vendor_id: config.vendor_id,
        product_name: config.product_name.clone(),
        origin_state_id: Some(origin_state_id),
        firmware_revision: Some(firmware_revision()),
        supported_vendor_ids: vec![vendor::JUNIPER],
        auth_application_ids: Vec::new(),
        acct_application_ids: Vec::new(),
        vendor_specific_applications: config
            .applications
            .iter()
            .map(|a| VendorApplication::auth(vendor::JUNIPER, a.id()))
            .collect(),
    }
}

/// Firmware-Revision: the crate version as MMmmpp.
fn firmware_revision() -> u32 {
    let part = |s: &str| s.parse::<u32>().unwrap_or(0);
    part(env!("CARGO_PKG_VERSION_MAJOR")) * 10_000
        + part(env!("CARGO_PKG_VERSION_MINOR")) * 100
        + part(env!("CARGO_PKG_VERSION_PATCH"))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl DiameterServer {
    /// The server of a bound listener. Connections are served once [`DiameterServer::serve`]
    /// runs.
    pub fn new(
        config: &DiameterConfig,
        listener: &TcpListener,
        diameter: Arc<Diameter>,
    ) -> std::io::Result<DiameterServer> {
        let local_addr = listener.local_addr()?;
        let started = unix_now();
        let mut peer_config = PeerConfig::new(
            Role::Responder,
            local_capabilities(config, started as u32),
            config.dictionary.clone(),
        );
        peer_config.limits = config.limits;
        peer_config.max_pending_requests = config.max_pending_requests;
        peer_config.watchdog_interval = config.watchdog_interval;
        peer_config.capabilities_timeout = config.capabilities_timeout;
        peer_config.request_timeout = config.request_timeout;
        peer_config.disconnect_timeout = config.disconnect_timeout;
        peer_config.allowed_peers = match &config.allowed_peers {
            Some(hosts) => PeerFilter::Only(hosts.clone()),
            None => PeerFilter::Any,
        };
        peer_config.end_to_end = Arc::new(EndToEndIds::new(started, rand::random()));
        let shared = Arc::new(DriverShared {
            peer_config: Arc::new(peer_config),
            duplicate_peer: config.duplicate_peer,
            diameter,
        });
        Ok(DiameterServer {
            shared,
            next_connection: Arc::new(AtomicU64::new(1)),
            local_addr,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Accepts connections until the task is dropped; each gets a [`RouterDriver`] on the
    /// current arbiter. Must run on an actix arbiter.
    pub async fn serve(self, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((stream, remote)) => {
                    let id = self.next_connection.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%remote, connection = id, "connection accepted");
                    RouterDriver::start_for(self.shared.clone(), stream, remote, id);
                }
                Err(e) => {
                    // Out of descriptors and the like: log, back off briefly, keep listening.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// The Diameter side the drivers share.
    pub fn diameter(&self) -> &Arc<Diameter> {
        &self.shared.diameter
    }

    /// Status of every open peer.
    pub fn peers(&self) -> Vec<PeerStatus> {
        self.shared.diameter.routers().statuses()
    }

    /// Sends DPR to every open peer and waits (up to the disconnect timeout) for them to go.
    pub async fn disconnect_all(&self, cause: DisconnectCause) {
        let routers = self.shared.diameter.routers();
        for d in routers.drivers() {
            d.do_send(Disconnect(cause));
        }
        let deadline = tokio::time::Instant::now()
            + self.shared.peer_config.disconnect_timeout
            + Duration::from_secs(1);
        while tokio::time::Instant::now() < deadline {
            if routers.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
