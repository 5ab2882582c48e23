//! The node's Diameter listener: accepts router connections, runs each through the peer state
//! machine, keeps the registry of open peers (one connection per Origin-Host), and answers
//! application requests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sae_diameter::codes::{DisconnectCause, result, vendor};
use sae_diameter::jsrc::error_message;
use sae_diameter::peer::{EndToEndIds, PeerFilter, Role};
use sae_diameter::watchdog::WatchdogState;
use sae_diameter::{
    Capabilities, CloseReason, Message, Peer, PeerConfig, PeerInfo, VendorApplication,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::connection::{self, Command, ConnectionHandle, ConnectionHooks};
use crate::config::{DiameterConfig, DuplicatePeer};

/// A connected peer, as the registry and the management API see it.
#[derive(Debug, Clone)]
pub struct PeerStatus {
    pub origin_host: String,
    pub origin_realm: String,
    pub remote: SocketAddr,
    pub product_name: String,
    pub applications: Vec<u32>,
    pub watchdog: WatchdogState,
}

struct Entry {
    connection: u64,
    handle: ConnectionHandle,
    status: PeerStatus,
}

/// Open peers by lower-cased Origin-Host.
#[derive(Default)]
struct Registry {
    peers: HashMap<String, Entry>,
}

/// State shared by all connections of the listener.
struct Shared {
    peer_config: Arc<PeerConfig>,
    duplicate_peer: DuplicatePeer,
    registry: Mutex<Registry>,
    next_connection: AtomicU64,
}

/// The running Diameter server.
#[derive(Clone)]
pub struct DiameterServer {
    shared: Arc<Shared>,
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
    /// Binds the listener. Connections are served once [`DiameterServer::serve`] runs.
    pub async fn bind(config: &DiameterConfig) -> std::io::Result<(DiameterServer, TcpListener)> {
        let listener = TcpListener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;
        let started = unix_now();
        let mut peer_config = PeerConfig::new(
            Role::Responder,
            local_capabilities(config, started as u32),
            config.dictionary.clone(),
        );
        peer_config.limits = config.limits;
        peer_config.watchdog_interval = config.watchdog_interval;
        peer_config.capabilities_timeout = config.capabilities_timeout;
        peer_config.request_timeout = config.request_timeout;
        peer_config.disconnect_timeout = config.disconnect_timeout;
        peer_config.allowed_peers = match &config.allowed_peers {
            Some(hosts) => PeerFilter::Only(hosts.clone()),
            None => PeerFilter::Any,
        };
        peer_config.end_to_end = Arc::new(EndToEndIds::new(started, rand::random()));
        let shared = Arc::new(Shared {
            peer_config: Arc::new(peer_config),
            duplicate_peer: config.duplicate_peer,
            registry: Mutex::new(Registry::default()),
            next_connection: AtomicU64::new(1),
        });
        Ok((DiameterServer { shared, local_addr }, listener))
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Accepts connections until the task is dropped.
    pub async fn serve(
        self,
        listener: TcpListener,
        connections: Arc<tokio::sync::Mutex<JoinSet<()>>>,
    ) {
        loop {
            match listener.accept().await {
                Ok((stream, remote)) => {
                    let this = self.clone();
                    connections
                        .lock()
                        .await
                        .spawn(async move { this.serve_connection(stream, remote).await });
                }
                Err(e) => {
                    // Out of descriptors and the like: log, back off briefly, keep listening.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn serve_connection(&self, stream: TcpStream, remote: SocketAddr) {
        let id = self.shared.next_connection.fetch_add(1, Ordering::Relaxed);
        let span = tracing::info_span!("diameter_peer", %remote, connection = id);
        let _enter = span.enter();
        tracing::debug!("connection accepted");
        let (handle, commands) = connection::channel(remote);
        let seed = rand::random::<u64>() ^ id;
        let peer = Peer::new(self.shared.peer_config.clone(), seed, false);
        let hooks = NodeHooks {
            shared: self.shared.clone(),
            connection: id,
            handle,
            origin_host: None,
        };
        drop(_enter);
        let reason = tracing::Instrument::instrument(
            connection::drive(stream, peer, hooks, commands),
            span.clone(),
        )
        .await;
        span.in_scope(|| tracing::info!(?reason, "connection closed"));
    }

    /// Status of every open peer.
    pub fn peers(&self) -> Vec<PeerStatus> {
        let registry = self.shared.registry.lock().expect("registry lock");
        let mut peers: Vec<_> = registry.peers.values().map(|e| e.status.clone()).collect();
        peers.sort_by(|a, b| a.origin_host.cmp(&b.origin_host));
        peers
    }

    /// Sends DPR to every open peer and waits (up to the disconnect timeout) for them to go.
    pub async fn disconnect_all(&self, cause: DisconnectCause) {
        let handles: Vec<ConnectionHandle> = {
            let registry = self.shared.registry.lock().expect("registry lock");
            registry.peers.values().map(|e| e.handle.clone()).collect()
        };
        for h in &handles {
            h.send(Command::Disconnect(cause)).await;
        }
        let deadline = tokio::time::Instant::now()
            + self.shared.peer_config.disconnect_timeout
            + Duration::from_secs(1);
        while tokio::time::Instant::now() < deadline {
            if self
                .shared
                .registry
                .lock()
                .expect("registry lock")
                .peers
                .is_empty()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Hooks of one router connection.
struct NodeHooks {
    shared: Arc<Shared>,
    connection: u64,
    handle: ConnectionHandle,
    origin_host: Option<String>,
}

impl ConnectionHooks for NodeHooks {
    fn capabilities(&mut self, info: &PeerInfo) -> Result<(), (u32, String)> {
        let host = info.capabilities.origin_host.to_ascii_lowercase();
        if self.shared.peer_config.allowed_peers == PeerFilter::Any {
            tracing::warn!(peer = %info.capabilities.origin_host, "accepting a peer with no allow-list configured");
        }
        let registry = self.shared.registry.lock().expect("registry lock");
        if let Some(existing) = registry.peers.get(&host) {
            match self.shared.duplicate_peer {
                DuplicatePeer::Reject => {
                    return Err((
                        result::ELECTION_LOST,
                        format!(
                            "{} already has an open connection",
                            info.capabilities.origin_host
                        ),
                    ));
                }
                DuplicatePeer::Replace => {
                    tracing::info!(peer = %host, old = %existing.handle.remote, "new connection replaces the open one");
                    existing.handle.try_send(Command::Replace);
                }
            }
        }
        Ok(())
    }

    fn up(&mut self, info: &PeerInfo) {
        let caps = &info.capabilities;
        let host = caps.origin_host.to_ascii_lowercase();
        tracing::info!(peer = %caps.origin_host, realm = %caps.origin_realm, product = %caps.product_name, applications = ?info.applications, "peer open");
        let status = PeerStatus {
            origin_host: caps.origin_host.clone(),
            origin_realm: caps.origin_realm.clone(),
            remote: self.handle.remote,
            product_name: caps.product_name.clone(),
            applications: info.applications.iter().copied().collect(),
            watchdog: WatchdogState::Okay,
        };
        let entry = Entry {
            connection: self.connection,
            handle: self.handle.clone(),
            status,
        };
        self.shared
            .registry
            .lock()
            .expect("registry lock")
            .peers
            .insert(host.clone(), entry);
        self.origin_host = Some(host);
    }

    fn request(&mut self, request: Message) -> Message {
        // Subscriber sessions are not served by this version: the request is valid (it passed
        // the dictionary checks) and is refused with a permanent failure so the router does not
        // consider the subscriber logged in.
        let local = &self.shared.peer_config.local;
        let name = self
            .shared
            .peer_config
            .dictionary
            .message_name(request.header.command_code, true);
        tracing::info!(request = %name, session = request.session_id().unwrap_or(""), "application request refused: subscriber sessions are not served yet");
        let mut answer = Message::answer_to(&request);
        if let Some(app) = request.find(sae_diameter::codes::avp::AUTH_APPLICATION_ID, 0) {
            answer.push(app.clone());
        }
        answer.set_result_code(result::UNABLE_TO_COMPLY);
        answer.push_origin(&local.origin_host, &local.origin_realm);
        answer.push(error_message(&format!(
            "{name}: subscriber sessions are not served by this SAE version"
        )));
        answer
    }

    fn watchdog(&mut self, state: WatchdogState) {
        tracing::info!(state = state.name(), "watchdog");
        let Some(host) = &self.origin_host else {
            return;
        };
        let mut registry = self.shared.registry.lock().expect("registry lock");
        if let Some(e) = registry
            .peers
            .get_mut(host)
            .filter(|e| e.connection == self.connection)
        {
            e.status.watchdog = state;
        }
    }

    fn closed(&mut self, _reason: &CloseReason) {
        if let Some(host) = self.origin_host.take() {
            let mut registry = self.shared.registry.lock().expect("registry lock");
            if registry
                .peers
                .get(&host)
                .is_some_and(|e| e.connection == self.connection)
            {
                registry.peers.remove(&host);
            }
        }
    }
}
