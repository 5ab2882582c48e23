//! The Diameter side of [`PolicyLink`]: a session's installs and removals are PPRs (with a
//! timeout and a bounded number of retries), its logout an ASR, its usage request an ACR; the
//! answers are read back into the session's terms.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sae_diameter::Message;
use sae_diameter::codes::result;
use sae_diameter::jsrc::{JuniperCodes, SubscriberMessage};
use sae_diameter::peer::RequestFailure;

use super::driver::SendRequest;
use super::messages::{self, Local};
use super::routers::Routers;
use crate::cluster::Ownership;
use crate::config::SessionSettings;
use crate::metrics::Metrics;
use crate::model::{ServiceSession, SubscriberRecord, UsageKind, UsageRecord};
use crate::subscriber::link::{Answered, Change, Pending, PolicyLink, SendError};

/// What every Diameter session's requests go through.
pub struct DiameterLink {
    pub local: Local,
    /// The codes the node's dictionary gives the Juniper AVPs.
    pub codes: JuniperCodes,
    pub routers: Arc<Routers>,
    /// Which routers this node may act on.
    pub ownership: Arc<Ownership>,
    pub settings: SessionSettings,
    pub metrics: Arc<Metrics>,
    next_acct_number: AtomicU64,
}

impl DiameterLink {
    pub fn new(
        local: Local,
        codes: JuniperCodes,
        routers: Arc<Routers>,
        ownership: Arc<Ownership>,
        settings: SessionSettings,
        metrics: Arc<Metrics>,
    ) -> DiameterLink {
        DiameterLink {
            local,
            codes,
            routers,
            ownership,
            settings,
            metrics,
            next_acct_number: AtomicU64::new(1),
        }
    }

    /// A fresh Accounting-Record-Number for an ACR the SAE sends.
    pub fn next_acct_number(&self) -> u32 {
        self.next_acct_number.fetch_add(1, Ordering::Relaxed) as u32
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

    /// Usage records from the Juniper-Acct-Record AVPs of a router's message about a session.
    pub fn usage(
        &self,
        m: &Message,
        record: &SubscriberRecord,
        kind: UsageKind,
        number: u32,
    ) -> Vec<UsageRecord> {
        match m.acct_records_with(&self.codes) {
            Ok(r) => messages::usage_records(&r, record, kind, number),
            Err(e) => {
                tracing::warn!(session = %record.session_id, error = %e, "unreadable Juniper-Acct-Record");
                Vec::new()
            }
        }
    }

    fn push(self: &Arc<Self>, record: &SubscriberRecord, request: Message) -> Pending<Change> {
        let link = self.clone();
        let router = record.router.clone();
        Box::pin(async move {
            let (outcome, attempts) = link.push_with_retry(router, request).await;
            Ok(match outcome {
                Ok(answer) => {
                    let result_code = answer.result_code().unwrap_or(0);
                    Change::Answered {
                        success: result_code == result::SUCCESS,
                        result_code,
                        message: answer.error_message().unwrap_or("").to_owned(),
                        attempts,
                    }
                }
                Err(error) => Change::Unanswered { error, attempts },
            })
        })
    }

    /// A PPR sent until answered or out of attempts.
    async fn push_with_retry(
        &self,
        router: String,
        request: Message,
    ) -> (Result<Message, SendError>, u32) {
        let attempts = 1 + self.settings.ppr_retries;
        let mut last = Err(SendError::NotConnected(router.clone()));
        for attempt in 1..=attempts {
            let started = std::time::Instant::now();
            last = self
                .request(&router, request.clone(), self.settings.ppr_timeout)
                .await;
            match &last {
                Ok(_) => {
                    self.metrics.round_trip("PPR", started.elapsed());
                    return (last, attempt);
                }
                // Not connected or not ours: retrying will not help within this request.
                Err(SendError::NotConnected(_) | SendError::NotServed(_)) => {
                    return (last, attempt);
                }
                Err(SendError::Failed { reason, .. }) => {
                    tracing::info!(%router, attempt, %reason, "PPR not answered");
                    if attempt < attempts {
                        // A short pause lets a reconnecting router come back.
                        tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                    }
                }
            }
        }
        (last, attempts)
    }
}

/// The link every Diameter session holds.
#[derive(Clone)]
pub struct Link(pub Arc<DiameterLink>);

impl PolicyLink for Link {
    fn ready(&self, record: &SubscriberRecord) -> Result<(), SendError> {
        match self.0.routers.get(&record.router) {
            Some(_) => Ok(()),
            None => Err(SendError::NotConnected(record.router.clone())),
        }
    }

    fn install(
        &self,
        record: &SubscriberRecord,
        service: &ServiceSession,
    ) -> Result<Pending<Change>, SendError> {
        let l = &self.0;
        let request = messages::push_profile(record, &l.local, &l.codes, &[service], &[]);
        Ok(l.push(record, request))
    }

    fn remove(
        &self,
        record: &SubscriberRecord,
        service: &ServiceSession,
    ) -> Result<Pending<Change>, SendError> {
        let l = &self.0;
        let request = messages::push_profile(
            record,
            &l.local,
            &l.codes,
            &[],
            &[service.policy_name.as_str()],
        );
        Ok(l.push(record, request))
    }

    fn collect(&self, record: &SubscriberRecord) -> Pending<Answered> {
        let link = self.0.clone();
        let number = link.next_acct_number();
        let request = messages::collect_usage(record, &link.local, &link.codes, number);
        let record = record.clone();
        Box::pin(async move {
            let answer = link
                .request(&record.router, request, link.settings.request_timeout)
                .await?;
            let result_code = answer.result_code().unwrap_or(0);
            let success = result_code == result::SUCCESS;
            let usage = if success {
                link.usage(&answer, &record, UsageKind::Collected, number)
            } else {
                Vec::new()
            };
            Ok(Answered {
                result_code,
                success,
                unknown_session: result_code == result::UNKNOWN_SESSION_ID,
                usage,
            })
        })
    }

    fn abort(&self, record: &SubscriberRecord) -> Pending<Answered> {
        let link = self.0.clone();
        let request = messages::abort_session(record, &link.local);
        let record = record.clone();
        Box::pin(async move {
            let started = std::time::Instant::now();
            let answer = link
                .request(&record.router, request, link.settings.request_timeout)
                .await?;
            link.metrics.round_trip("ASR", started.elapsed());
            let result_code = answer.result_code().unwrap_or(0);
            Ok(Answered {
                result_code,
                success: result_code == result::SUCCESS,
                unknown_session: result_code == result::UNKNOWN_SESSION_ID,
                usage: link.usage(&answer, &record, UsageKind::Final, 0),
            })
        })
    }
}
