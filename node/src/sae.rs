//! The node's subscriber engine: what the router drivers, the subscriber session actors and the
//! management API share — the catalog, the store, the session and router registries, the event
//! bus, the metrics — and the operations that span them (login, activation, logout, resync).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Actor, Addr, ArbiterHandle};
use sae_diameter::jsrc::{JuniperCodes, RequestType, SubscriberMessage};
use sae_diameter::peer::RequestFailure;
use sae_diameter::watchdog::WatchdogState;
use sae_diameter::{Dictionary, Message};

use crate::catalog::{Catalog, Decision, LoginInfo};
use crate::diameter::driver::{RouterDriver, SendRequest};
use crate::events::{EventKind, Events, SessionEvent};
use crate::metrics::{Metrics, RouterLabels};
use crate::model::{ServiceSession, ServiceState, SessionState, SubscriberRecord, now_ms};
use crate::store::SessionStore;
use crate::subscriber::messages::{self, Local};
use crate::subscriber::registry::{Entry, LookupError, Sessions, SubscriberRef};
use crate::subscriber::session::{
    Activate, ChangeOutcome, Collect, CollectOutcome, Deactivate, Logout, LogoutOutcome,
    ResyncAnswered, StartResync, SubscriberSession,
};

/// Timing and retry settings of the subscriber flows.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long to wait for a PPA.
    pub ppr_timeout: Duration,
    /// PPRs re-sent after a timeout or a lost connection before giving up.
    pub ppr_retries: u32,
    /// After an SRQ, sessions the router has not replayed within this window are ended.
    pub resync_window: Duration,
    /// After an ASA, how long to wait for the router's STR before ending the session anyway.
    pub logout_timeout: Duration,
    /// Timeout of the other SAE-initiated requests (ASR, ACR, SRQ).
    pub request_timeout: Duration,
    /// Answers kept to repeat to re-sent duplicates of router requests (0: none).
    pub duplicate_answers: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            ppr_timeout: Duration::from_secs(5),
            ppr_retries: 2,
            resync_window: Duration::from_secs(30),
            logout_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            duplicate_answers: 16384,
        }
    }
}

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

/// Why a request to a router got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("router {0} is not connected")]
    NotConnected(String),
    #[error("router {0} is served by another node of the cluster")]
    NotServed(String),
    #[error("router {router} did not answer: {reason}")]
    Failed { router: String, reason: String },
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

/// Why an operation on a subscriber failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriberError {
    #[error(transparent)]
    Lookup(#[from] LookupError),
    #[error("no service named {0:?} in the catalog")]
    UnknownService(String),
    #[error("{0} has no service {1:?}")]
    ServiceNotActive(String, String),
    #[error(transparent)]
    Router(#[from] SendError),
    #[error("the session ended while the request was in progress")]
    SessionGone,
}

/// Everything the subscriber flows share.
pub struct Sae {
    pub local: Local,
    pub catalog: Arc<Catalog>,
    pub store: Arc<dyn SessionStore>,
    pub sessions: Sessions,
    pub routers: Routers,
    pub events: Events,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
    pub dictionary: Arc<Dictionary>,
    /// The codes `dictionary` gives the Juniper AVPs, for every message the flows build or read.
    pub juniper_codes: JuniperCodes,
    /// The answers sent to routers recently, per (Origin-Host, End-to-End Identifier): a
    /// router's re-sent request (T bit) gets the same answer instead of running twice.
    pub answers: std::sync::Mutex<sae_diameter::AnswerCache>,
    shards: Vec<ArbiterHandle>,
    next_acct_number: AtomicU64,
    /// The COPS side, for decisions on COPS-PR sessions (set once at start).
    pub cops: std::sync::OnceLock<std::sync::Weak<crate::cops::CopsShared>>,
    /// Which routers this node may act on.
    pub ownership: Arc<crate::cluster::Ownership>,
    /// The cluster this node is a member of (set once at start).
    pub cluster: std::sync::OnceLock<Arc<crate::cluster::Cluster>>,
}

impl Sae {
    /// Panics if `dictionary` cannot name the Juniper AVPs; [`crate::Config`] refuses such a
    /// dictionary file.
    pub fn new(
        local: Local,
        catalog: Arc<Catalog>,
        store: Arc<dyn SessionStore>,
        metrics: Arc<Metrics>,
        settings: Settings,
        dictionary: Arc<Dictionary>,
        shards: Vec<ArbiterHandle>,
        ownership: Arc<crate::cluster::Ownership>,
    ) -> Sae {
        let juniper_codes = JuniperCodes::from_dictionary(&dictionary)
            .expect("the configuration checked the dictionary's Juniper AVPs");
        let answers = std::sync::Mutex::new(sae_diameter::AnswerCache::new(
            sae_diameter::AnswerCache::DEFAULT_WINDOW,
            settings.duplicate_answers,
        ));
        Sae {
            local,
            catalog,
            store,
            sessions: Sessions::default(),
            routers: Routers::default(),
            events: Events::default(),
            metrics,
            settings,
            dictionary,
            juniper_codes,
            answers,
            shards,
            next_acct_number: AtomicU64::new(1),
            cops: std::sync::OnceLock::new(),
            ownership,
            cluster: std::sync::OnceLock::new(),
        }
    }

    /// A router connected or went away: the cluster should hear of it soon.
    pub fn router_presence_changed(&self) {
        if let Some(c) = self.cluster.get() {
            c.nudge();
        }
    }

    /// Records in the control state that this node is the router's Juniper-Last-Origin-Host
    /// (after the router accepted its SRQ), unless it is already recorded.
    pub fn record_last_origin_host(&self, router: &str) {
        let Some(cluster) = self.cluster.get().cloned() else {
            return;
        };
        let host = self.local.origin_host.clone();
        let known = cluster.sm.read(|a| {
            a.state
                .routers
                .get(router)
                .and_then(|r| r.last_origin_host.clone())
        });
        if known.as_deref() == Some(host.as_str()) {
            return;
        }
        let router = router.to_owned();
        tokio::spawn(async move {
            let cmd = crate::cluster::Command::SetLastOriginHost {
                router: router.clone(),
                host,
            };
            if let Err(e) = cluster.write_on_leader(cmd).await {
                tracing::warn!(%router, "Last-Origin-Host not recorded: {e}");
            }
        });
    }

    /// Ends this node's sessions of a router it no longer serves, without a word to the
    /// router (its new owner rebuilds them from the router's replay).
    pub fn hand_over(&self, router: &str, detail: &str) -> usize {
        let sessions = self.sessions.of_router(router);
        for e in &sessions {
            e.addr.do_send(crate::subscriber::session::HandOver {
                detail: detail.to_owned(),
            });
        }
        sessions.len()
    }

    /// A fresh Accounting-Record-Number for an ACR the SAE sends.
    pub fn next_acct_number(&self) -> u32 {
        self.next_acct_number.fetch_add(1, Ordering::Relaxed) as u32
    }

    /// Starts the actor of a session on its shard and registers it.
    pub fn spawn_session(self: &Arc<Self>, record: SubscriberRecord) -> Addr<SubscriberSession> {
        let record = Arc::new(record);
        let sae = self.clone();
        let r = record.clone();
        let addr = if self.shards.is_empty() {
            SubscriberSession::new(sae, r).start()
        } else {
            let shard = shard_of(&record.session_id, self.shards.len());
            SubscriberSession::start_in_arbiter(&self.shards[shard], move |_| {
                SubscriberSession::new(sae, r)
            })
        };
        self.sessions.insert(addr.clone(), record.clone());
        self.store.put_session(&record);
        self.metrics
            .subscriber_sessions
            .set(self.sessions.len() as i64);
        addr
    }

    /// Publishes an event about a session.
    pub fn session_event(
        &self,
        kind: EventKind,
        record: &SubscriberRecord,
        service: &str,
        detail: impl Into<String>,
    ) {
        self.events.publish(SessionEvent {
            time_ms: now_ms(),
            kind,
            session_id: record.session_id.clone(),
            user_name: record.user_name.clone().unwrap_or_default(),
            router: record.router.clone(),
            service: service.to_owned(),
            detail: detail.into(),
        });
    }

    /// Sends a request to a router and waits for its answer.
    pub async fn request(
        &self,
        router: &str,
        request: Message,
        timeout: Duration,
    ) -> Result<Message, SendError> {
        let Some((_, addr)) = self.routers.get(router) else {
            return Err(SendError::NotConnected(router.to_owned()));
        };
        if self.ownership.serving(router).is_none() {
            return Err(SendError::NotServed(router.to_owned()));
        }
        let failed = |reason: String| SendError::Failed {
            router: router.to_owned(),
            reason,
        };
        match addr
            .send(SendRequest {
                request,
                timeout: Some(timeout),
            })
            .await
        {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(RequestFailure::Timeout)) => Err(failed("timeout".into())),
            Ok(Err(RequestFailure::ConnectionClosed)) | Err(_) => {
                Err(failed("connection closed".into()))
            }
            Ok(Err(RequestFailure::Failover)) => Err(failed(
                "the router stopped answering (watchdog suspect)".into(),
            )),
            Ok(Err(RequestFailure::NotSent(why))) => Err(failed(format!("not sent: {why}"))),
            Ok(Err(RequestFailure::InvalidAnswer(e))) => Err(failed(format!(
                "invalid answer ({}): {}",
                e.result_code, e.message
            ))),
        }
    }

    /// A login AAR for a session the node does not hold: choose the services, start the
    /// session, answer AAA. A refused login leaves no session.
    pub fn login(self: &Arc<Self>, request: &Message, router: &str, router_realm: &str) -> Message {
        let Some(session_id) = request.session_id().map(str::to_owned) else {
            return messages::refusal(
                request,
                &self.local,
                sae_diameter::codes::result::MISSING_AVP,
                "AAR without Session-Id",
            );
        };
        let user_name = request.user_name().map(str::to_owned);
        let nas_port_id = request.nas_port_id().map(str::to_owned);
        let replay =
            request.request_type_with(&self.juniper_codes) == Some(RequestType::Synchronization);
        let mut record = SubscriberRecord {
            session_id,
            router: router.to_owned(),
            router_realm: router_realm.to_owned(),
            application_id: request.header.application_id,
            user_name,
            framed_ip: request.framed_ip(),
            nas_port_id,
            login_ms: now_ms(),
            confirmed: replay,
            state: SessionState::Active,
            services: Vec::new(),
            router_interface: None,
        };
        if replay {
            // A session the router holds and the node does not (the node lost it): rebuild it
            // from what the router reports.
            let installs = match request.policy_installs_with(&self.juniper_codes) {
                Ok(i) => i,
                Err(e) => {
                    return messages::bad_policy_install(
                        request,
                        &self.local,
                        &self.juniper_codes,
                        &e,
                    );
                }
            };
            record.services = installs
                .iter()
                .map(|p| {
                    let service = self.service_for_policy(&p.policy_name);
                    messages::service_from_install(p, &service)
                })
                .collect();
            let answer =
                messages::answer(request, &self.local, sae_diameter::codes::result::SUCCESS);
            self.session_event(
                EventKind::SessionReplayed,
                &record,
                "",
                "rebuilt from replay",
            );
            self.spawn_session(record);
            return answer;
        }
        let decision = self.catalog.decide(&LoginInfo {
            user_name: record.user_name.as_deref(),
            nas_port_id: record.nas_port_id.as_deref(),
            router,
        });
        match decision {
            Decision::Reject { rule } => {
                self.metrics.logins_refused.inc();
                self.session_event(
                    EventKind::LoginRefused,
                    &record,
                    "",
                    format!("refused by rule {rule}"),
                );
                messages::refusal(
                    request,
                    &self.local,
                    sae_diameter::codes::result::UNABLE_TO_COMPLY,
                    &format!("login refused by rule {rule}"),
                )
            }
            Decision::Services(chosen) => {
                let now = now_ms();
                record.services = chosen
                    .into_iter()
                    .map(|c| ServiceSession {
                        service: c.name,
                        policy_name: c.policy_name,
                        template_name: c.template_name,
                        substitutions: c.substitutions,
                        accounting: c.accounting,
                        state: ServiceState::Active,
                        result_code: sae_diameter::codes::result::SUCCESS,
                        error: String::new(),
                        activated_ms: now,
                    })
                    .collect();
                let answer = messages::login_answer(
                    request,
                    &self.local,
                    &self.juniper_codes,
                    &record.services,
                );
                self.metrics.logins.inc();
                let names: Vec<&str> = record.services.iter().map(|s| s.service.as_str()).collect();
                self.session_event(EventKind::Login, &record, "", names.join(","));
                self.spawn_session(record);
                answer
            }
        }
    }

    /// The catalog service whose policy this is; the policy name itself when none is.
    pub fn service_for_policy(&self, policy_name: &str) -> String {
        self.catalog
            .services()
            .into_iter()
            .find(|s| s.policy_name == policy_name)
            .map(|s| s.name)
            .unwrap_or_else(|| policy_name.to_owned())
    }

    /// Marks every session of a router as waiting for replay (SRQ sent, or the router's SRQ
    /// received). Their window starts with [`Sae::resync_answered`].
    pub fn start_resync(&self, router: &str) -> usize {
        let sessions = self.sessions.of_router(router);
        for e in &sessions {
            e.addr.do_send(StartResync);
        }
        self.events.publish(SessionEvent::router(
            EventKind::ResyncStarted,
            router,
            format!("{} sessions to replay", sessions.len()),
        ));
        sessions.len()
    }

    /// The SRQ of a resynchronization is answered: the sessions of the router still waiting
    /// for their replay are ended unless replayed within the resync window from now.
    pub fn resync_answered(&self, router: &str) {
        for e in self.sessions.of_router(router) {
            e.addr.do_send(ResyncAnswered {
                window: self.settings.resync_window,
            });
        }
    }

    /// The router did not answer the SRQ in time: it goes again (attempt `attempt`, from 2)
    /// after `delay`.
    pub fn resync_retry(&self, router: &str, attempt: u32, delay: Duration, why: &str) {
        self.metrics
            .srq_retries
            .get_or_create(&RouterLabels {
                router: router.to_owned(),
            })
            .inc();
        self.events.publish(SessionEvent::router(
            EventKind::ResyncRetried,
            router,
            format!("SRQ {why}; attempt {attempt} in {} ms", delay.as_millis()),
        ));
    }

    fn find(&self, reference: &SubscriberRef) -> Result<Entry, SubscriberError> {
        Ok(self.sessions.find(reference)?)
    }

    /// Activates a catalog service for a subscriber (PPR with Juniper-Policy-Install).
    pub async fn activate(
        &self,
        reference: &SubscriberRef,
        service: &str,
        overrides: BTreeMap<String, String>,
    ) -> Result<ChangeOutcome, SubscriberError> {
        let entry = self.find(reference)?;
        let def = self
            .catalog
            .service(service)
            .ok_or_else(|| SubscriberError::UnknownService(service.to_owned()))?;
        let mut substitutions = def.substitutions.clone();
        substitutions.extend(overrides);
        let s = ServiceSession {
            service: def.name.clone(),
            policy_name: def.policy_name.clone(),
            template_name: def.template_name.clone(),
            substitutions,
            accounting: def.accounting,
            state: ServiceState::Installing,
            result_code: 0,
            error: String::new(),
            activated_ms: now_ms(),
        };
        entry
            .addr
            .send(Activate { service: s })
            .await
            .map_err(|_| SubscriberError::SessionGone)?
    }

    /// Deactivates a service (PPR with Juniper-Policy-Remove).
    pub async fn deactivate(
        &self,
        reference: &SubscriberRef,
        service: &str,
    ) -> Result<ChangeOutcome, SubscriberError> {
        let entry = self.find(reference)?;
        entry
            .addr
            .send(Deactivate {
                service: service.to_owned(),
            })
            .await
            .map_err(|_| SubscriberError::SessionGone)?
    }

    /// Logs a subscriber out (ASR).
    pub async fn logout(
        &self,
        reference: &SubscriberRef,
    ) -> Result<LogoutOutcome, SubscriberError> {
        let entry = self.find(reference)?;
        entry
            .addr
            .send(Logout)
            .await
            .map_err(|_| SubscriberError::SessionGone)?
    }

    /// Asks the router for the subscriber's statistics (ACR).
    pub async fn collect_usage(
        &self,
        reference: &SubscriberRef,
    ) -> Result<CollectOutcome, SubscriberError> {
        let entry = self.find(reference)?;
        entry
            .addr
            .send(Collect)
            .await
            .map_err(|_| SubscriberError::SessionGone)?
    }

    /// Sends SRQ to a router; returns the SRR's Result-Code.
    pub async fn resync_router(&self, router: &str) -> Result<u32, SubscriberError> {
        let router = router.to_ascii_lowercase();
        let Some((_, addr)) = self.routers.get(&router) else {
            return Err(SendError::NotConnected(router).into());
        };
        addr.send(crate::diameter::driver::Resync)
            .await
            .map_err(|_| SendError::NotConnected(router.clone()))?
            .map_err(SubscriberError::from)
    }

    /// Publishes the per-router pending-request gauge.
    pub fn pending_requests(&self, router: &str, n: usize) {
        self.metrics
            .pending_requests
            .get_or_create(&RouterLabels {
                router: router.to_owned(),
            })
            .set(n as i64);
    }
}

/// The shard of a session: a stable hash of its Session-Id.
fn shard_of(session_id: &str, shards: usize) -> usize {
    // FNV-1a: stable across runs and cheap.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in session_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % shards as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_spread_sessions() {
        let mut counts = [0usize; 4];
        for i in 0..4000 {
            counts[shard_of(&format!("router.example;1;2;{i}"), 4)] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
    }
}
