//! What the router drivers of this node and the management API share on the Diameter side: the
//! subscriber engine, the routers, the link every Diameter session holds, the answer cache,
//! and the cluster (ownership, Last-Origin-Host); and the login of a new Diameter session.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sae_diameter::codes::result;
use sae_diameter::jsrc::{JuniperCodes, RequestType, SubscriberMessage};
use sae_diameter::{AnswerCache, Dictionary, Message};

use super::link::{DiameterLink, Link};
use super::messages::{self, Local};
use super::routers::Routers;
use crate::cluster::{Cluster, Ownership};
use crate::events::{EventKind, SessionEvent};
use crate::metrics::RouterLabels;
use crate::model::{Attachment, ServiceState, SessionState, SubscriberRecord, now_ms};
use crate::subscriber::engine::Engine;
use crate::subscriber::link::{PolicyLink, SendError};

/// The Diameter side of the node.
pub struct Diameter {
    pub engine: Arc<Engine>,
    pub link: Arc<DiameterLink>,
    /// The same, as every Diameter session holds it.
    pub session_link: Arc<dyn PolicyLink>,
    pub dictionary: Arc<Dictionary>,
    /// The answers sent to routers recently, per (Origin-Host, End-to-End Identifier): a
    /// router's re-sent request (T bit) gets the same answer instead of running twice.
    pub answers: Mutex<AnswerCache>,
    pub cluster: Arc<Cluster>,
}

impl Diameter {
    pub fn new(
        engine: Arc<Engine>,
        link: Arc<DiameterLink>,
        dictionary: Arc<Dictionary>,
        cluster: Arc<Cluster>,
    ) -> Diameter {
        let answers = Mutex::new(AnswerCache::new(
            AnswerCache::DEFAULT_WINDOW,
            engine.settings.duplicate_answers,
        ));
        Diameter {
            engine,
            session_link: Arc::new(Link(link.clone())),
            link,
            dictionary,
            answers,
            cluster,
        }
    }

    pub fn local(&self) -> &Local {
        &self.link.local
    }

    pub fn codes(&self) -> &JuniperCodes {
        &self.link.codes
    }

    pub fn routers(&self) -> &Routers {
        &self.link.routers
    }

    pub fn ownership(&self) -> &Arc<Ownership> {
        &self.link.ownership
    }

    /// A router connected or went away: the cluster should hear of it soon.
    pub fn router_presence_changed(&self) {
        self.cluster.nudge();
    }

    /// Records in the control state that this node is the router's Juniper-Last-Origin-Host
    /// (after the router accepted its SRQ), unless it is already recorded.
    pub fn record_last_origin_host(&self, router: &str) {
        let cluster = self.cluster.clone();
        let host = self.local().origin_host.clone();
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

    /// The router did not answer the SRQ in time: it goes again (attempt `attempt`, from 2)
    /// after `delay`.
    pub fn resync_retry(&self, router: &str, attempt: u32, delay: Duration, why: &str) {
        self.engine
            .metrics
            .srq_retries
            .get_or_create(&RouterLabels {
                router: router.to_owned(),
            })
            .inc();
        self.engine.events.publish(SessionEvent::router(
            EventKind::ResyncRetried,
            router,
            format!("SRQ {why}; attempt {attempt} in {} ms", delay.as_millis()),
        ));
    }

    /// Publishes the per-router pending-request gauge.
    pub fn pending_requests(&self, router: &str, n: usize) {
        self.engine
            .metrics
            .pending_requests
            .get_or_create(&RouterLabels {
                router: router.to_owned(),
            })
            .set(n as i64);
    }

    /// Sends SRQ to a router; returns the SRR's Result-Code.
    pub async fn resync_router(&self, router: &str) -> Result<u32, SendError> {
        let router = router.to_ascii_lowercase();
        let Some((_, addr)) = self.routers().get(&router) else {
            return Err(SendError::NotConnected(router));
        };
        addr.send(super::driver::Resync)
            .await
            .map_err(|_| SendError::NotConnected(router.clone()))?
    }

    /// A login AAR for a session the node does not hold: choose the services, start the
    /// session, answer AAA. A refused login leaves no session.
    pub fn login(&self, request: &Message, router: &str, router_realm: &str) -> Message {
        let local = self.local();
        let codes = self.codes();
        let Some(session_id) = request.session_id().map(str::to_owned) else {
            return messages::refusal(
                request,
                local,
                sae_diameter::codes::result::MISSING_AVP,
                "AAR without Session-Id",
            );
        };
        let replay = request.request_type_with(codes) == Some(RequestType::Synchronization);
        let attributes = match messages::login_attributes(request, codes) {
            Ok(a) => a,
            Err(bad) => return messages::invalid_avp(request, local, &bad),
        };
        let mut record = SubscriberRecord {
            session_id,
            router: router.to_owned(),
            attachment: Attachment::Diameter {
                realm: router_realm.to_owned(),
                application_id: request.header.application_id,
            },
            user_name: request.user_name().map(str::to_owned),
            framed_ip: request.framed_ip(),
            nas_port_id: request.nas_port_id().map(str::to_owned),
            login_ms: now_ms(),
            confirmed: replay,
            state: SessionState::Active,
            services: Vec::new(),
            attributes,
        };
        let link = self.session_link.clone();
        if replay {
            // A session the router holds and the node does not (the node lost it): rebuild it
            // from what the router reports.
            let installs = match request.policy_installs_with(codes) {
                Ok(i) => i,
                Err(e) => return messages::bad_policy_install(request, local, codes, &e),
            };
            record.services = installs
                .iter()
                .map(|p| {
                    let service = self.engine.service_for_policy(&p.policy_name);
                    messages::service_from_install(p, &service)
                })
                .collect();
            self.engine.assign_profile(&mut record);
            let answer = messages::answer(request, local, result::SUCCESS);
            self.engine.session_event(
                EventKind::SessionReplayed,
                &record,
                "",
                "rebuilt from replay",
            );
            self.engine.spawn_session(record, link);
            return answer;
        }
        match self
            .engine
            .admit(&mut record, ServiceState::Active, result::SUCCESS)
        {
            Err(refused) => messages::refusal(
                request,
                local,
                result::UNABLE_TO_COMPLY,
                &format!("login refused by rule {}", refused.rule),
            ),
            Ok(services) => {
                record.services = services;
                let answer = messages::login_answer(request, local, codes, &record.services);
                self.engine.logged_in(record, link, "");
                answer
            }
        }
    }
}
