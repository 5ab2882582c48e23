//! The routers connected to this node: their drivers and their status, by lower-cased
//! Origin-Host.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use actix::Addr;
use sae_diameter::watchdog::WatchdogState;

use super::driver::RouterDriver;

/// A connected router as the registry and the management API see it.
#[derive(Debug, Clone)]
pub struct PeerStatus {
    pub origin_host: String,
    pub origin_realm: String,
    pub remote: SocketAddr,
    pub product_name: String,
    pub applications: Vec<u32>,
    pub watchdog: WatchdogState,
    /// Juniper-Last-Origin-Host the router last reported.
    pub last_origin_host: Option<String>,
    pub pending_requests: usize,
}

struct RouterEntry {
    connection: u64,
    addr: Addr<RouterDriver>,
    status: PeerStatus,
}

/// Open router connections by lower-cased Origin-Host.
#[derive(Default)]
pub struct Routers {
    inner: Mutex<HashMap<String, RouterEntry>>,
}

impl Routers {
    /// The driver of a router, with the connection id it runs.
    pub fn get(&self, host: &str) -> Option<(u64, Addr<RouterDriver>)> {
        self.inner
            .lock()
            .expect("routers lock")
            .get(host)
            .map(|e| (e.connection, e.addr.clone()))
    }

    pub fn insert(&self, connection: u64, addr: Addr<RouterDriver>, status: PeerStatus) {
        let host = status.origin_host.to_ascii_lowercase();
        self.inner.lock().expect("routers lock").insert(
            host,
            RouterEntry {
                connection,
                addr,
                status,
            },
        );
    }

    /// Removes a router if `connection` still owns it.
    pub fn remove(&self, host: &str, connection: u64) -> bool {
        let mut inner = self.inner.lock().expect("routers lock");
        if inner.get(host).is_some_and(|e| e.connection == connection) {
            inner.remove(host);
            true
        } else {
            false
        }
    }

    /// Updates a router's status if `connection` still owns it.
    pub fn update(&self, host: &str, connection: u64, f: impl FnOnce(&mut PeerStatus)) {
        let mut inner = self.inner.lock().expect("routers lock");
        if let Some(e) = inner.get_mut(host).filter(|e| e.connection == connection) {
            f(&mut e.status);
        }
    }

    pub fn statuses(&self) -> Vec<PeerStatus> {
        let inner = self.inner.lock().expect("routers lock");
        let mut v: Vec<_> = inner.values().map(|e| e.status.clone()).collect();
        v.sort_by(|a, b| a.origin_host.cmp(&b.origin_host));
        v
    }

    pub fn drivers(&self) -> Vec<Addr<RouterDriver>> {
        let inner = self.inner.lock().expect("routers lock");
        inner.values().map(|e| e.addr.clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.inner.lock().expect("routers lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
