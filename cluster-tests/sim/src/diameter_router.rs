//! A Diameter router connection, initiator side.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use sae_diameter::codes::{DisconnectCause, app, vendor};
use sae_diameter::peer::{EndToEndIds, Role};
use sae_diameter::tokio::connection::{self, Command, ConnectionHooks};
use sae_diameter::watchdog::WatchdogState;
use sae_diameter::{
    Capabilities, CloseReason, Dictionary, Message, Peer, PeerConfig, PeerInfo, VendorApplication,
};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// How the simulated router presents itself.
#[derive(Debug, Clone)]
pub struct RouterIdentity {
    pub origin_host: String,
    pub origin_realm: String,
    pub applications: Vec<u32>,
    pub watchdog_interval: Duration,
}

/// What happened on the connection, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum RouterEvent {
    Connected(String),
    Watchdog(WatchdogState),
    Closed(CloseReason),
}

struct Hooks {
    events: mpsc::UnboundedSender<RouterEvent>,
    origin_host: String,
    origin_realm: String,
}

impl ConnectionHooks for Hooks {
    fn capabilities(&mut self, _info: &PeerInfo) -> Result<(), (u32, String)> {
        Ok(())
    }

    fn up(&mut self, info: &PeerInfo) {
        let _ = self.events.send(RouterEvent::Connected(
            info.capabilities.origin_host.clone(),
        ));
    }

    fn request(&mut self, request: Message) -> Message {
        // No subscriber state yet: server-initiated requests are refused explicitly.
        let refusal = sae_diameter::ProtocolError::new(
            sae_diameter::codes::result::UNABLE_TO_COMPLY,
            "the simulated router holds no subscriber state",
        );
        let session_id = request.find(sae_diameter::codes::avp::SESSION_ID, 0);
        refusal.answer(
            &request.header,
            session_id,
            &self.origin_host,
            &self.origin_realm,
        )
    }

    fn watchdog(&mut self, state: WatchdogState) {
        let _ = self.events.send(RouterEvent::Watchdog(state));
    }

    fn closed(&mut self, reason: &CloseReason) {
        let _ = self.events.send(RouterEvent::Closed(reason.clone()));
    }
}

/// What a simulated router announces in CER: Juniper as vendor, each application as a
/// Vendor-Specific-Application-Id of vendor 2636.
pub fn capabilities(identity: &RouterIdentity, local_ip: IpAddr) -> Capabilities {
    Capabilities {
        origin_host: identity.origin_host.clone(),
        origin_realm: identity.origin_realm.clone(),
        host_ip_addresses: vec![local_ip],
        vendor_id: vendor::JUNIPER,
        product_name: "sae-sim".into(),
        origin_state_id: Some(1),
        supported_vendor_ids: vec![vendor::JUNIPER],
        vendor_specific_applications: identity
            .applications
            .iter()
            .map(|&id| VendorApplication::auth(vendor::JUNIPER, id))
            .collect(),
        ..Default::default()
    }
}

/// Requests a simulated router may have awaiting answers on one connection: far above a real
/// router's, since the simulator is also the load generator.
pub const MAX_PENDING_REQUESTS: usize = 1 << 16;

/// The peer configuration of a simulated router.
pub fn peer_config(identity: &RouterIdentity, local_ip: IpAddr) -> PeerConfig {
    let caps = capabilities(identity, local_ip);
    let mut config = PeerConfig::new(Role::Initiator, caps, Arc::new(Dictionary::base()));
    config.watchdog_interval = identity.watchdog_interval;
    config.max_pending_requests = MAX_PENDING_REQUESTS;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    // RFC 6733 section 3: the clock in the high 12 bits, the low 20 random.
    config.end_to_end = Arc::new(EndToEndIds::with_time(now.as_secs()));
    config
}

/// A running router connection.
pub struct RouterConnection {
    pub events: mpsc::UnboundedReceiver<RouterEvent>,
    pub handle: connection::ConnectionHandle,
    pub task: tokio::task::JoinHandle<CloseReason>,
}

impl RouterConnection {
    /// Connects and starts capabilities exchange. `reopen` starts the watchdog in REOPEN, as
    /// after a failed connection (three DWAs before the connection counts as up; no request
    /// of ours goes out before).
    pub async fn connect(
        server: SocketAddr,
        identity: &RouterIdentity,
        reopen: bool,
    ) -> std::io::Result<Self> {
        let stream = TcpStream::connect(server).await?;
        let local_ip = stream.local_addr()?.ip();
        let config = Arc::new(peer_config(identity, local_ip));
        let seed = u64::from(std::process::id()) << 32 | u64::from(server.port());
        let peer = Peer::new(config, seed, reopen);
        let (tx, events) = mpsc::unbounded_channel();
        let hooks = Hooks {
            events: tx,
            origin_host: identity.origin_host.clone(),
            origin_realm: identity.origin_realm.clone(),
        };
        let (handle, commands) = connection::channel(server);
        let task = tokio::spawn(connection::drive(stream, peer, hooks, commands));
        Ok(RouterConnection {
            events,
            handle,
            task,
        })
    }

    /// Sends DPR.
    pub async fn disconnect(&self, cause: DisconnectCause) -> bool {
        self.handle.send(Command::Disconnect(cause)).await
    }
}

/// The Juniper applications a router offers by default.
pub fn default_applications() -> Vec<u32> {
    vec![app::JSRC]
}
