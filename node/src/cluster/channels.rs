//! One lazily connected gRPC channel per cluster member address, shared by everything that
//! calls another member: the Raft network, writes and membership calls forwarded to the leader,
//! the management API's forwarding.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sae_proto::v1::cluster_client::ClusterClient;
use tonic::transport::{Channel, Endpoint};

/// How long a connection attempt to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// One lazily connected gRPC channel per peer address, shared by every caller (a tonic
/// channel reconnects by itself after a failure).
#[derive(Debug, Clone, Default)]
pub struct Channels {
    inner: Arc<Mutex<HashMap<String, Channel>>>,
}

impl Channels {
    /// The channel to `addr` (`host:port`), created on first use.
    pub fn get(&self, addr: &str) -> Result<Channel, tonic::transport::Error> {
        let mut map = self.inner.lock().expect("channel cache lock");
        if let Some(c) = map.get(addr) {
            return Ok(c.clone());
        }
        let channel = Endpoint::from_shared(format!("http://{addr}"))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .connect_lazy();
        map.insert(addr.to_owned(), channel.clone());
        Ok(channel)
    }

    /// A client of the cluster service at `addr`.
    pub fn client(&self, addr: &str) -> Result<ClusterClient<Channel>, tonic::transport::Error> {
        Ok(ClusterClient::new(self.get(addr)?))
    }
}
