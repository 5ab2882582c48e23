//! `sae-node`: the Service Activation Engine node.
//!
//! Routers connect over Diameter (JSRC/PTSP) and COPS-PR; a [`diameter::driver::RouterDriver`]
//! or [`cops::driver::CopsDriver`] actor per connection runs the protocol's sans-IO state
//! machine and turns the router's requests into subscriber session events; a
//! [`subscriber::session::SubscriberSession`] actor per session (spread over one arbiter per
//! core) owns its services, accounting and timers and reaches its router through a
//! [`subscriber::link::PolicyLink`]; [`subscriber::engine::Engine`] holds what they share
//! (catalog, store, registry, events, metrics) and knows no protocol. The management API
//! ([`grpc`]) and the Prometheus endpoint ([`metrics`]) run on the tokio workers. `main` is a
//! thin wrapper around [`start`]; [`start`] is where the parts are put together.

#![forbid(unsafe_code)]

pub mod aggregate;
pub mod catalog;
pub mod cluster;
pub mod config;
pub mod cops;
pub mod diameter;
pub mod events;
pub mod grpc;
pub mod metrics;
pub mod model;
pub mod nic;
pub mod store;
pub mod subscriber;
pub mod telemetry;
pub mod timer;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use actix::{Arbiter, ArbiterHandle};
use sae_diameter::codes::DisconnectCause;

pub use config::Config;
use diameter::DiameterServer;
use model::{Attachment, SessionState};
use store::{SessionStore, SledStore};
use subscriber::engine::Engine;

/// A running node.
pub struct Node {
    cluster: Arc<cluster::Cluster>,
    nic: grpc::nic::Resolver,
    health: tonic_health::server::HealthReporter,
    diameter: DiameterServer,
    cops: cops::CopsServer,
    engine: Arc<Engine>,
    store: Arc<SledStore>,
    grpc_addr: SocketAddr,
    metrics_addr: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    arbiters: Vec<Arbiter>,
}

/// An address the node listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    /// "diameter", "cops", "grpc" or "metrics".
    pub protocol: &'static str,
    pub addr: SocketAddr,
}

/// Opens the store, recovers the sessions it holds, binds every listener and starts serving.
/// Must run on an actix arbiter (inside an `actix::System`), on a tokio runtime.
pub async fn start(config: Config) -> anyhow::Result<Node> {
    let data = config.data_dir.join("sae-data");
    std::fs::create_dir_all(&data)
        .map_err(|e| anyhow::anyhow!("data directory {}: {e}", data.display()))?;
    let store = Arc::new(
        SledStore::open(&data).map_err(|e| anyhow::anyhow!("store in {}: {e}", data.display()))?,
    );
    // Filled from the cluster's replicated state once it is applied.
    let catalog = Arc::new(
        catalog::Catalog::new(&catalog::CatalogFile::default())
            .map_err(|e| anyhow::anyhow!("catalog: {e}"))?,
    );
    let ownership = Arc::new(cluster::Ownership::clustered());
    let metrics = Arc::new(metrics::Metrics::new());
    let arbiters: Vec<Arbiter> = (0..config.session_arbiters)
        .map(|_| Arbiter::new())
        .collect();
    let shards: Vec<ArbiterHandle> = arbiters.iter().map(Arbiter::handle).collect();
    let (nic_sink, nic_changes) = nic::NicSink::new();
    let engine = Engine::new(
        catalog,
        store.clone(),
        metrics.clone(),
        config.sessions.clone(),
        shards,
    );
    let engine = Arc::new(if config.nic.enabled {
        engine.observed(Arc::new(nic_sink))
    } else {
        engine
    });
    let routers = Arc::new(diameter::routers::Routers::default());
    let codes = sae_diameter::jsrc::JuniperCodes::from_dictionary(&config.diameter.dictionary)
        .map_err(|e| anyhow::anyhow!("dictionary: {e}"))?;
    let diameter_link = Arc::new(diameter::link::DiameterLink::new(
        diameter::messages::Local {
            origin_host: config.diameter.origin_host.clone(),
            origin_realm: config.diameter.origin_realm.clone(),
        },
        codes,
        routers,
        ownership.clone(),
        config.sessions.clone(),
        metrics.clone(),
    ));

    let diameter_listener = tokio::net::TcpListener::bind(config.diameter.listen)
        .await
        .map_err(|e| anyhow::anyhow!("diameter listener on {}: {e}", config.diameter.listen))?;
    let cops_listener = tokio::net::TcpListener::bind(config.cops.listen)
        .await
        .map_err(|e| anyhow::anyhow!("COPS listener on {}: {e}", config.cops.listen))?;
    let grpc_listener = grpc::bind(config.grpc_listen)
        .await
        .map_err(|e| anyhow::anyhow!("gRPC listener on {}: {e}", config.grpc_listen))?;
    let grpc_addr = grpc_listener.local_addr()?;
    let metrics_listener = metrics::bind(config.metrics_listen)
        .await
        .map_err(|e| anyhow::anyhow!("metrics listener on {}: {e}", config.metrics_listen))?;
    let metrics_addr = metrics_listener.local_addr()?;
    let host = advertise_host(&config);
    let member = cluster::Member {
        name: config.name.clone(),
        grpc: host_port(&host, grpc_addr.port()),
        diameter: host_port(&host, diameter_listener.local_addr()?.port()),
        cops: host_port(&host, cops_listener.local_addr()?.port()),
        origin_host: config.diameter.origin_host.clone(),
    };
    let raft_dir = config.data_dir.join("sae-raft");
    std::fs::create_dir_all(&raft_dir)
        .map_err(|e| anyhow::anyhow!("data directory {}: {e}", raft_dir.display()))?;
    let cluster = cluster::Cluster::open(&raft_dir, member, config.cluster.clone(), ownership)
        .await
        .map_err(|e| anyhow::anyhow!("cluster: {e}"))?;

    let diameter_side = Arc::new(diameter::Diameter::new(
        engine.clone(),
        diameter_link,
        config.diameter.dictionary.clone(),
        cluster.clone(),
    ));
    let diameter = DiameterServer::new(&config.diameter, &diameter_listener, diameter_side.clone())
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
    let cops_shared = cops::CopsShared::new(
        config.cops.clone(),
        engine.clone(),
        cluster.ownership.clone(),
        cluster.clone(),
    );
    let cops = cops::CopsServer::new(cops_shared.clone(), &cops_listener)
        .map_err(|e| anyhow::anyhow!("COPS listener on {}: {e}", config.cops.listen))?;
    if config.cops.allowed_pepids.is_none() {
        tracing::warn!("no cops.allowed_pepids configured: any PEP is accepted");
    }

    // Sessions kept from the previous run wait for their router's replay.
    let recovered = store
        .load_sessions()
        .map_err(|e| anyhow::anyhow!("recovering sessions: {e}"))?;
    let n = recovered.len();
    for mut record in recovered {
        record.state = SessionState::Resyncing;
        let link = match record.attachment {
            Attachment::Diameter { .. } => diameter_side.session_link.clone(),
            Attachment::Cops { .. } => cops_shared.session_link.clone(),
        };
        engine.spawn_session(record, link);
    }
    if n > 0 {
        tracing::info!(
            sessions = n,
            "sessions recovered from storage; waiting for their routers to resync"
        );
    }

    // Sessions of routers that moved to another node end here (the new owner rebuilds them
    // from the router's replay).
    let mut lost = cluster.ownership.subscribe_lost();
    let s = engine.clone();
    let hand_over = tokio::spawn(async move {
        loop {
            match lost.recv().await {
                Ok(router) => {
                    let key = cluster::OwnedKey::parse(&router);
                    let n = s.hand_over(key.sessions_router(), "the router moved to another node");
                    tracing::info!(%router, sessions = n, "router handed over");
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "router hand-overs missed");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    // The embedded NIC (this node's directory of the whole cluster's bindings, fed by its own
    // publisher and by the other members'), or the standalone NICs' proxy: the publisher then
    // sends to the NIC endpoints instead of the other members.
    let (resolver, embedded) = if !config.nic.enabled {
        tracing::info!("running without a NIC ([nic] enabled = false)");
        (grpc::nic::Resolver::Disabled, None)
    } else if config.nic.endpoints.is_empty() {
        let nic = Arc::new(nic::Nic::new(config.nic.resolution.clone()));
        (grpc::nic::Resolver::Embedded(nic.clone()), Some(nic))
    } else {
        let proxy = Arc::new(
            grpc::nic::NicProxy::new(
                &config.nic.endpoints,
                &cluster,
                config.nic.cache_entries,
                config.nic.cache_ttl,
                metrics.clone(),
            )
            .map_err(|e| anyhow::anyhow!("nic.endpoints: {e}"))?,
        );
        tracing::info!(endpoints = ?config.nic.endpoints, "resolving through standalone NICs");
        (grpc::nic::Resolver::Proxy(proxy), None)
    };
    let targets: Arc<dyn Fn() -> Vec<(cluster::NodeId, String)> + Send + Sync> =
        if config.nic.endpoints.is_empty() {
            let cluster = Arc::downgrade(&cluster);
            Arc::new(move || cluster.upgrade().map(|c| c.peers()).unwrap_or_default())
        } else {
            let endpoints: Vec<(cluster::NodeId, String)> =
                (0..).zip(config.nic.endpoints.iter().cloned()).collect();
            Arc::new(move || endpoints.clone())
        };
    let sources = nic::publisher::Sources {
        node: cluster.id,
        sessions: {
            let engine = Arc::downgrade(&engine);
            Arc::new(move || {
                engine
                    .upgrade()
                    .map(|e| e.sessions.records())
                    .unwrap_or_default()
            })
        },
        peers: targets,
        owners: {
            let cluster = Arc::downgrade(&cluster);
            Arc::new(move || {
                let Some(cluster) = cluster.upgrade() else {
                    return Vec::new();
                };
                cluster
                    .router_owners()
                    .into_iter()
                    .map(|(key, owner, epoch)| {
                        let router = cluster::OwnedKey::parse(&key).sessions_router().to_owned();
                        (router, owner, epoch)
                    })
                    .collect()
            })
        },
        ownership: cluster.ownership.clone(),
        send: grpc::nic::sender(Arc::downgrade(&cluster), config.name.clone()),
        metrics: metrics.clone(),
    };
    let publisher = if config.nic.enabled {
        tokio::spawn(nic::publisher::run(embedded.clone(), nic_changes, sources))
    } else {
        drop(nic_changes);
        tokio::spawn(async {})
    };
    let nic_service = embedded.map(|nic| {
        let hooks = grpc::nic::NodeHooks {
            cluster: Arc::downgrade(&cluster),
            metrics: metrics.clone(),
        };
        sae_nic_server::NicService::new(nic, Arc::new(hooks))
    });
    let aggregates = aggregate::session::Aggregates::new(
        Arc::new(grpc::aggregates::NodeHost {
            node: cluster.id,
            engine: Arc::downgrade(&engine),
            resolver: resolver.clone(),
            idle: tokio::sync::broadcast::channel(1).0,
        }),
        config.aggregate,
    );
    let management = grpc::ManagementService {
        node_name: config.name.clone(),
        started: std::time::Instant::now(),
        diameter: diameter.clone(),
        engine: engine.clone(),
        cops: cops_shared,
        cluster: cluster.clone(),
        nic: resolver.clone(),
        aggregates,
    };
    let mut tasks = vec![hand_over, publisher];
    if let grpc::nic::Resolver::Proxy(proxy) = &resolver {
        tasks.push(tokio::spawn(proxy.clone().watch()));
    }
    let (health, health_service) = grpc::health();
    grpc::set_ready(&health, false).await;
    tasks.push(tokio::spawn(async move {
        if let Err(e) = grpc::serve(grpc_listener, management, nic_service, health_service).await {
            tracing::error!("management API stopped: {e:#}");
        }
    }));
    cluster
        .bootstrap(config.catalog.clone(), engine.catalog.clone())
        .await
        .map_err(|e| anyhow::anyhow!("cluster: {e}"))?;
    tracing::info!(node = cluster.id, member = ?cluster.member, "cluster member ready");
    grpc::set_ready(&health, true).await;
    tasks.push(tokio::spawn(async move {
        if let Err(e) = metrics::serve(metrics_listener, metrics).await {
            tracing::error!("metrics endpoint stopped: {e}");
        }
    }));
    tasks.push(actix::spawn(diameter.clone().serve(diameter_listener)));
    tasks.push(actix::spawn(cops.clone().serve(cops_listener)));
    Ok(Node {
        cluster,
        nic: resolver,
        health,
        diameter,
        cops,
        engine,
        store,
        grpc_addr,
        metrics_addr,
        tasks,
        arbiters,
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
                protocol: "cops",
                addr: self.cops.local_addr(),
            },
            Listener {
                protocol: "grpc",
                addr: self.grpc_addr,
            },
            Listener {
                protocol: "metrics",
                addr: self.metrics_addr,
            },
        ]
    }

    /// The Diameter server (peers, status).
    pub fn diameter(&self) -> &DiameterServer {
        &self.diameter
    }

    /// What the COPS drivers share (PEPs, admission).
    pub fn cops(&self) -> &Arc<cops::CopsShared> {
        self.cops.shared()
    }

    /// This node's part of the cluster.
    pub fn cluster(&self) -> &Arc<cluster::Cluster> {
        &self.cluster
    }

    /// Where this node resolves subscriber references.
    pub fn nic(&self) -> &grpc::nic::Resolver {
        &self.nic
    }

    /// The subscriber engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Graceful stop: hand the routers over and leave the cluster, no new connections, DPR
    /// to every open peer, wait for them to close, write what the store has queued.
    pub async fn shutdown(self) {
        grpc::set_ready(&self.health, false).await;
        self.cluster.leave().await;
        for t in &self.tasks {
            t.abort();
        }
        // Once they are gone, nothing of theirs holds the store or the engine any more.
        for t in self.tasks {
            let _ = t.await;
        }
        self.diameter
            .disconnect_all(DisconnectCause::Rebooting)
            .await;
        self.cops.shutdown().await;
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("store flush at shutdown: {e}"),
            Err(e) => tracing::error!("store flush at shutdown: {e}"),
        }
        // The session actors (and what they hold) are dropped when their arbiters' threads
        // end; waited for off this arbiter.
        for a in &self.arbiters {
            a.stop();
        }
        let arbiters = self.arbiters;
        let _ = tokio::task::spawn_blocking(move || {
            for a in arbiters {
                let _ = a.join();
            }
        })
        .await;
    }
}

/// The host other nodes and routers reach this node at: configured, else the gRPC listen
/// address when it is a specific one, else what this machine's hostname resolves to (a
/// container's address), else loopback.
fn advertise_host(config: &Config) -> String {
    if let Some(a) = &config.cluster.advertise {
        return a.clone();
    }
    let ip = config.grpc_listen.ip();
    if !ip.is_unspecified() {
        return ip.to_string();
    }
    let hostname = std::fs::read_to_string("/etc/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty());
    if let Some(name) = hostname
        && let Ok(addrs) = (name.as_str(), 0).to_socket_addrs()
    {
        let addrs: Vec<SocketAddr> = addrs.collect();
        if let Some(a) = addrs
            .iter()
            .find(|a| a.is_ipv4() && !a.ip().is_loopback())
            .or_else(|| addrs.iter().find(|a| !a.ip().is_loopback()))
        {
            return a.ip().to_string();
        }
    }
    "127.0.0.1".into()
}

/// `host:port`, with brackets around an IPv6 address.
fn host_port(host: &str, port: u16) -> String {
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port).to_string(),
        Err(_) => format!("{host}:{port}"),
    }
}
