//! COPS on the node (we are the PDP): the listener, a [`driver::CopsDriver`] actor per PEP
//! connection, call admission for SBCs, subscriber provisioning over COPS-PR, usage feedback.
//! [`CopsShared`] is what the drivers and the management API share: the configuration, the
//! admission budgets, the open PEPs, and the request states a reconnecting PEP takes over.

pub mod admission;
pub mod decisions;
pub mod driver;
pub mod link;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::Addr;
use sae_cops::object::Handle;
use sae_cops::pdp::PdpConfig;
use tokio::net::TcpListener;

use crate::cluster::{Cluster, Ownership};
use crate::config::{CopsConfig, CopsProfile};
use crate::model::{Attachment, UnixMs, hex_bytes};
use crate::subscriber::engine::Engine;
use crate::subscriber::link::PolicyLink;
use admission::Admission;
use driver::{CopsDriver, Shutdown};

/// An open PEP client type, as the management API sees it.
#[derive(Debug, Clone)]
pub struct CopsStatus {
    pub pepid: String,
    pub client_type: u16,
    pub profile: CopsProfile,
    pub remote: SocketAddr,
    pub keepalive_secs: u16,
    pub accounting_timer_secs: u16,
    pub opened_ms: UnixMs,
    /// Took over the state of an earlier connection.
    pub resumed: bool,
}

struct Open {
    connection: u64,
    addr: Addr<CopsDriver>,
    status: CopsStatus,
}

type Key = (String, u16);

/// What the COPS drivers and the management API share.
pub struct CopsShared {
    pub config: CopsConfig,
    pub engine: Arc<Engine>,
    /// Which PEPs this node may serve.
    pub ownership: Arc<Ownership>,
    /// Told when a PEP connects or goes away.
    pub cluster: Arc<Cluster>,
    /// The link every COPS-PR session holds.
    pub session_link: Arc<dyn PolicyLink>,
    pub admission: Mutex<Admission>,
    open: Mutex<HashMap<Key, Open>>,
    /// Request states per PEP and client type; they outlive connections.
    states: Mutex<HashMap<Key, HashSet<Handle>>>,
}

/// The Session-Id of a COPS-PR subscriber session: PEP, client type and handle.
pub fn session_id_for(pepid: &str, client_type: u16, handle: &Handle) -> String {
    let hex: String = handle.0.iter().map(|b| format!("{b:02x}")).collect();
    format!("cops;{pepid};{client_type:04x};{hex}")
}

/// The PEP, client type and handle of a COPS-PR subscriber session.
pub fn parse_session_id(session_id: &str) -> Option<(String, u16, Handle)> {
    let mut parts = session_id.split(';');
    if parts.next()? != "cops" {
        return None;
    }
    let pepid = parts.next()?.to_owned();
    let client_type = u16::from_str_radix(parts.next()?, 16).ok()?;
    let handle = Handle(hex_bytes::parse(parts.next()?)?.into());
    parts
        .next()
        .is_none()
        .then_some((pepid, client_type, handle))
}

impl CopsShared {
    pub fn new(
        config: CopsConfig,
        engine: Arc<Engine>,
        ownership: Arc<Ownership>,
        cluster: Arc<Cluster>,
    ) -> Arc<CopsShared> {
        let admission = Admission::new(
            config.realm_budgets.clone(),
            config.pep_budgets.clone(),
            config.default_budget,
        );
        Arc::new_cyclic(|shared| CopsShared {
            config,
            engine,
            ownership,
            cluster,
            session_link: Arc::new(link::CopsLink::new(shared.clone())),
            admission: Mutex::new(admission),
            open: Mutex::new(HashMap::new()),
            states: Mutex::new(HashMap::new()),
        })
    }

    /// The profile serving a client type.
    pub fn profile(&self, client_type: u16) -> Option<CopsProfile> {
        self.config.profiles.get(&client_type).copied()
    }

    /// A request state the PEP holds.
    pub fn remember(&self, pepid: &str, client_type: u16, handle: &Handle) {
        self.states
            .lock()
            .expect("cops states lock")
            .entry((pepid.to_owned(), client_type))
            .or_default()
            .insert(handle.clone());
    }

    /// A request state the PEP deleted.
    pub fn forget(&self, pepid: &str, client_type: u16, handle: &Handle) {
        let mut states = self.states.lock().expect("cops states lock");
        if let Some(set) = states.get_mut(&(pepid.to_owned(), client_type)) {
            set.remove(handle);
        }
    }

    /// The connection currently open for the PEP and client type (to be replaced) and the
    /// request states the new connection takes over.
    pub fn take_over(
        &self,
        pepid: &str,
        client_type: u16,
    ) -> (Option<Addr<CopsDriver>>, HashSet<Handle>) {
        let key = (pepid.to_owned(), client_type);
        let previous = self
            .open
            .lock()
            .expect("cops open lock")
            .get(&key)
            .map(|o| o.addr.clone());
        let mut states = self.states.lock().expect("cops states lock");
        let handles = states.entry(key).or_default();
        // Subscriber sessions of this PEP recovered from storage after a restart.
        for e in self.engine.sessions.of_router(&pepid.to_ascii_lowercase()) {
            if let Attachment::Cops {
                pepid: p,
                client_type: c,
                handle,
                ..
            } = &e.record.attachment
                && p == pepid
                && *c == client_type
            {
                handles.insert(Handle(handle.clone().into()));
            }
        }
        (previous, handles.clone())
    }

    pub fn register(&self, status: CopsStatus, connection: u64, addr: Addr<CopsDriver>) {
        let key = (status.pepid.clone(), status.client_type);
        self.open.lock().expect("cops open lock").insert(
            key,
            Open {
                connection,
                addr,
                status,
            },
        );
    }

    /// Removes the entry if `connection` still owns it.
    pub fn unregister(&self, pepid: &str, client_type: u16, connection: u64) -> bool {
        let mut open = self.open.lock().expect("cops open lock");
        let key = (pepid.to_owned(), client_type);
        if open.get(&key).is_some_and(|o| o.connection == connection) {
            open.remove(&key);
            true
        } else {
            false
        }
    }

    /// Every open PEP client type with the number of request states it holds.
    pub fn statuses(&self) -> Vec<(CopsStatus, usize)> {
        let open = self.open.lock().expect("cops open lock");
        let states = self.states.lock().expect("cops states lock");
        let mut v: Vec<_> = open
            .iter()
            .map(|(k, o)| (o.status.clone(), states.get(k).map_or(0, HashSet::len)))
            .collect();
        v.sort_by(|a, b| (&a.0.pepid, a.0.client_type).cmp(&(&b.0.pepid, b.0.client_type)));
        v
    }

    /// The driver of a PEP's client type and the request states it holds.
    pub fn driver(&self, pepid: &str, client_type: u16) -> Option<(Addr<CopsDriver>, Vec<Handle>)> {
        let key = (pepid.to_owned(), client_type);
        let addr = self
            .open
            .lock()
            .expect("cops open lock")
            .get(&key)?
            .addr
            .clone();
        let handles = self
            .states
            .lock()
            .expect("cops states lock")
            .get(&key)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        Some((addr, handles))
    }

    fn drivers(&self) -> Vec<Addr<CopsDriver>> {
        self.open
            .lock()
            .expect("cops open lock")
            .values()
            .map(|o| o.addr.clone())
            .collect()
    }
}

/// The COPS listener.
#[derive(Clone)]
pub struct CopsServer {
    shared: Arc<CopsShared>,
    pdp: Arc<PdpConfig>,
    next_connection: Arc<AtomicU64>,
    local_addr: SocketAddr,
}

impl CopsServer {
    /// The server of a bound listener; connections are served once [`CopsServer::serve`] runs.
    pub fn new(shared: Arc<CopsShared>, listener: &TcpListener) -> std::io::Result<CopsServer> {
        let local_addr = listener.local_addr()?;
        let pdp = PdpConfig {
            ka_timer: shared.config.keepalive_secs,
            acct_timer: Some(shared.config.accounting_timer_secs),
            open_timeout: shared.config.open_timeout,
            integrity: shared.config.integrity.clone(),
            ..PdpConfig::default()
        };
        Ok(CopsServer {
            shared,
            pdp: Arc::new(pdp),
            next_connection: Arc::new(AtomicU64::new(1)),
            local_addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn shared(&self) -> &Arc<CopsShared> {
        &self.shared
    }

    /// Accepts connections until the task is dropped; must run on an actix arbiter.
    pub async fn serve(self, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((stream, remote)) => {
                    let id = self.next_connection.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%remote, connection = id, "COPS connection accepted");
                    CopsDriver::start_for(
                        self.shared.clone(),
                        self.pdp.clone(),
                        stream,
                        remote,
                        id,
                    );
                }
                Err(e) => {
                    tracing::warn!(error = %e, "COPS accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// CC (Error 11 Shutting down) to every PEP.
    pub async fn shutdown(&self) {
        for d in self.shared.drivers() {
            d.do_send(Shutdown);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while tokio::time::Instant::now() < deadline && !self.shared.drivers().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_name_the_pep_client_type_and_handle() {
        let h = Handle::from_u32(0xdead_beef);
        let id = session_id_for("erx1", 0x800B, &h);
        assert_eq!(id, "cops;erx1;800b;deadbeef");
        assert_eq!(parse_session_id(&id), Some(("erx1".into(), 0x800B, h)));
        assert_eq!(parse_session_id("router1;1;2;3"), None);
        assert_eq!(parse_session_id("cops;erx1;800b;xyz"), None);
    }
}
