//! What aggregate sessions use of this node ([`crate::aggregate::session::Host`]): the NIC
//! (embedded or standalone) to resolve fragment references, the subscriber engine to activate
//! and deactivate fragment services, the catalog, the session events.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use sae_nic::{NodeId, Reference};
use tokio::sync::broadcast;

use super::nic::Resolver;
use crate::aggregate::session::{BoxFuture, Host, Located};
use crate::catalog::ServiceDef;
use crate::events::SessionEvent;
use crate::subscriber::engine::Engine;
use crate::subscriber::registry::SubscriberRef;

pub struct NodeHost {
    pub node: NodeId,
    pub engine: Weak<Engine>,
    pub resolver: Resolver,
    /// Events of an engine that is gone: a sender kept so receivers see no close.
    pub idle: broadcast::Sender<SessionEvent>,
}

impl NodeHost {
    fn engine(&self) -> Result<Arc<Engine>, String> {
        self.engine
            .upgrade()
            .ok_or_else(|| "the node is stopping".to_owned())
    }
}

impl Host for NodeHost {
    fn node(&self) -> NodeId {
        self.node
    }

    fn resolve(&self, reference: Reference) -> BoxFuture<Result<Vec<Located>, String>> {
        let resolver = self.resolver.clone();
        Box::pin(async move {
            let res = resolver
                .resolve(&reference)
                .await
                .map_err(|s| s.message().to_owned())?;
            Ok(res
                .matches
                .into_iter()
                .filter_map(|m| {
                    Some(Located {
                        node: m.node,
                        session_id: m.session?.session_id,
                    })
                })
                .collect())
        })
    }

    fn activate(
        &self,
        session_id: String,
        service: String,
        substitutions: BTreeMap<String, String>,
    ) -> BoxFuture<Result<(), String>> {
        let engine = self.engine();
        Box::pin(async move {
            let outcome = engine?
                .activate(
                    &SubscriberRef::SessionId(session_id),
                    &service,
                    substitutions,
                )
                .await
                .map_err(|e| e.to_string())?;
            if outcome.success {
                Ok(())
            } else {
                Err(format!(
                    "{} on {}: {} (result code {})",
                    outcome.service, outcome.session_id, outcome.message, outcome.result_code
                ))
            }
        })
    }

    fn deactivate(&self, session_id: String, service: String) -> BoxFuture<Result<(), String>> {
        let engine = self.engine();
        Box::pin(async move {
            let outcome = engine?
                .deactivate(&SubscriberRef::SessionId(session_id), &service)
                .await;
            match outcome {
                Ok(o) if o.success => Ok(()),
                Ok(o) => Err(format!("{} (result code {})", o.message, o.result_code)),
                // Already gone: nothing to stop.
                Err(
                    crate::subscriber::engine::SubscriberError::Lookup(_)
                    | crate::subscriber::engine::SubscriberError::ServiceNotActive(..)
                    | crate::subscriber::engine::SubscriberError::SessionGone,
                ) => Ok(()),
                Err(e) => Err(e.to_string()),
            }
        })
    }

    fn service(&self, name: &str) -> Option<ServiceDef> {
        self.engine.upgrade()?.catalog.service(name)
    }

    fn events(&self) -> broadcast::Receiver<SessionEvent> {
        match self.engine.upgrade() {
            Some(engine) => engine.events.subscribe(),
            None => self.idle.subscribe(),
        }
    }

    fn publish(&self, event: SessionEvent) {
        if let Some(engine) = self.engine.upgrade() {
            engine.events.publish(event);
        }
    }

    fn count(&self, fragment: bool, outcome: &'static str) {
        let Some(engine) = self.engine.upgrade() else {
            return;
        };
        let family = if fragment {
            &engine.metrics.aggregate_fragments
        } else {
            &engine.metrics.aggregates
        };
        family
            .get_or_create(&crate::metrics::OutcomeLabels { outcome })
            .inc();
    }
}
