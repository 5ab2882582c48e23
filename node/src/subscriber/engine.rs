//! The subscriber engine: what the session actors, the protocol drivers and the management API
//! share about subscribers — the catalog, the store, the session registry, the event bus, the
//! metrics and the session settings — and the operations on subscribers (the login decision,
//! spawning and finding sessions, activation, deactivation, logout, usage, hand-over,
//! resynchronization). It knows no protocol: a session reaches its router through the
//! [`PolicyLink`] it is spawned with.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix::{Actor, Addr, ArbiterHandle};

use super::link::{PolicyLink, SendError};
use super::registry::{Entry, LookupError, Sessions, SubscriberRef};
use super::session::{
    Activate, ChangeOutcome, Collect, CollectOutcome, Deactivate, HandOver, Logout, LogoutOutcome,
    ResyncAnswered, StartResync, SubscriberSession,
};
use crate::catalog::{Catalog, Decision, LoginInfo};
use crate::config::SessionSettings;
use crate::events::{EventKind, Events, SessionEvent};
use crate::metrics::Metrics;
use crate::model::{ServiceSession, ServiceState, SubscriberRecord, now_ms};
use crate::store::SessionStore;

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
    /// Aggregate services are run by aggregate sessions (`aggregate::session`), not installed.
    #[error("{0:?} is an aggregate service: it is started as an aggregate session, not installed")]
    AggregateUnavailable(String),
}

/// A login the catalog's rules refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The refusing rule.
    pub rule: String,
}

/// The subscriber engine.
pub struct Engine {
    pub catalog: Arc<Catalog>,
    pub store: Arc<dyn SessionStore>,
    pub sessions: Sessions,
    pub events: Events,
    pub metrics: Arc<Metrics>,
    pub settings: SessionSettings,
    shards: Vec<ArbiterHandle>,
}

impl Engine {
    /// Session actors run on `shards` (on the current arbiter when it is empty).
    pub fn new(
        catalog: Arc<Catalog>,
        store: Arc<dyn SessionStore>,
        metrics: Arc<Metrics>,
        settings: SessionSettings,
        shards: Vec<ArbiterHandle>,
    ) -> Engine {
        Engine {
            catalog,
            store,
            sessions: Sessions::default(),
            events: Events::default(),
            metrics,
            settings,
            shards,
        }
    }

    /// Gives a session rebuilt from its router's replay what its rule assigns (DN, accounting
    /// id, subscriptions, virtual router), as at its login; its services are the router's.
    pub fn assign_profile(&self, record: &mut SubscriberRecord) {
        let decision = self.catalog.decide(&LoginInfo {
            user_name: record.user_name.as_deref(),
            nas_port_id: record.nas_port_id.as_deref(),
            router: &record.router,
        });
        let profile = match decision {
            Decision::Services(_, profile) => profile,
            Decision::Reject { .. } => Default::default(),
        };
        assign(record, profile);
    }

    /// The engine with its session registry observed by `observer` (the node's NIC).
    pub fn observed(mut self, observer: Arc<dyn super::registry::SessionObserver>) -> Engine {
        self.sessions = Sessions::observed(observer);
        self
    }

    /// The login decision for a session the node does not hold, by the catalog's rules: the
    /// services it gets (in `state`, with `result_code`), or the rule that refused it (counted
    /// and announced here). An admitted record gets what the rule assigns (DN, retailer DN,
    /// accounting id, subscriptions, virtual router). The caller answers the router and, once
    /// the answer can be sent, starts the session with [`Engine::logged_in`].
    pub fn admit(
        &self,
        record: &mut SubscriberRecord,
        state: ServiceState,
        result_code: u32,
    ) -> Result<Vec<ServiceSession>, Refused> {
        let decision = self.catalog.decide(&LoginInfo {
            user_name: record.user_name.as_deref(),
            nas_port_id: record.nas_port_id.as_deref(),
            router: &record.router,
        });
        match decision {
            Decision::Reject { rule } => {
                self.metrics.logins_refused.inc();
                self.session_event(
                    EventKind::LoginRefused,
                    record,
                    "",
                    format!("refused by rule {rule}"),
                );
                Err(Refused { rule })
            }
            Decision::Services(chosen, profile) => {
                assign(record, profile);
                let now = now_ms();
                Ok(chosen
                    .into_iter()
                    .map(|c| ServiceSession {
                        service: c.name,
                        policy_name: c.policy_name,
                        template_name: c.template_name,
                        substitutions: c.substitutions,
                        accounting: c.accounting,
                        state,
                        result_code,
                        error: String::new(),
                        activated_ms: now,
                    })
                    .collect())
            }
        }
    }

    /// An admitted login (its services set by [`Engine::admit`]): counted, announced with
    /// `prefix` before the service names, and its session started.
    pub fn logged_in(
        self: &Arc<Self>,
        record: SubscriberRecord,
        link: Arc<dyn PolicyLink>,
        prefix: &str,
    ) -> Addr<SubscriberSession> {
        self.metrics.logins.inc();
        let names: Vec<&str> = record.services.iter().map(|s| s.service.as_str()).collect();
        let detail = format!("{prefix}{}", names.join(","));
        self.session_event(EventKind::Login, &record, "", detail);
        self.spawn_session(record, link)
    }

    /// Starts the actor of a session on its shard and registers it.
    pub fn spawn_session(
        self: &Arc<Self>,
        record: SubscriberRecord,
        link: Arc<dyn PolicyLink>,
    ) -> Addr<SubscriberSession> {
        let record = Arc::new(record);
        let engine = self.clone();
        let r = record.clone();
        let addr = if self.shards.is_empty() {
            SubscriberSession::new(engine, link, r).start()
        } else {
            let shard = shard_of(&record.session_id, self.shards.len());
            SubscriberSession::start_in_arbiter(&self.shards[shard], move |_| {
                SubscriberSession::new(engine, link, r)
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

    /// The catalog service whose policy this is; the policy name itself when none is.
    pub fn service_for_policy(&self, policy_name: &str) -> String {
        self.catalog
            .services()
            .into_iter()
            .find(|s| s.policy_name == policy_name)
            .map(|s| s.name)
            .unwrap_or_else(|| policy_name.to_owned())
    }

    /// Ends this node's sessions of a router it no longer serves, without a word to the
    /// router (its new owner rebuilds them from the router's replay).
    pub fn hand_over(&self, router: &str, detail: &str) -> usize {
        let sessions = self.sessions.of_router(router);
        for e in &sessions {
            e.addr.do_send(HandOver {
                detail: detail.to_owned(),
            });
        }
        sessions.len()
    }

    /// Marks every session of a router as waiting for replay (the router was asked to
    /// replay, or asked to itself). Their window starts with [`Engine::resync_answered`].
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

    /// The router accepted the resynchronization: the sessions of the router still waiting
    /// for their replay are ended unless replayed within the resync window from now.
    pub fn resync_answered(&self, router: &str) {
        if let Some(o) = self.sessions.observer() {
            o.resync_window(router, self.settings.resync_window);
        }
        for e in self.sessions.of_router(router) {
            e.addr.do_send(ResyncAnswered {
                window: self.settings.resync_window,
            });
        }
    }

    fn find(&self, reference: &SubscriberRef) -> Result<Entry, SubscriberError> {
        Ok(self.sessions.find(reference)?)
    }

    /// Activates a catalog service for a subscriber.
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
        if def.is_aggregate() {
            return Err(SubscriberError::AggregateUnavailable(def.name));
        }
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

    /// Deactivates a service.
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

    /// Logs a subscriber out.
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

    /// Asks the router for the subscriber's usage.
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

/// What a rule assigns, into the record (the accounting id defaults to the login name).
fn assign(record: &mut SubscriberRecord, profile: crate::catalog::Profile) {
    let a = &mut record.attributes;
    a.subscriber_dn = profile.subscriber_dn;
    a.retailer_dn = profile.retailer_dn;
    a.accounting_id = profile.accounting_id.or_else(|| record.user_name.clone());
    a.subscriptions = profile.subscriptions;
    if profile.virtual_router.is_some() {
        a.virtual_router = profile.virtual_router;
    }
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
