//! The COPS-PR side of [`PolicyLink`]: a session's installs and removals are unsolicited
//! decisions on its request state, confirmed (or refused) by the PEP's next report. COPS-PR has
//! no logout or usage request of the PDP's own: those fail as for a router that is not
//! connected.

use std::sync::Weak;

use sae_cops::message::Decision;
use sae_cops::object::{Command, Context as CopsContext, DecisionFlags, Handle};

use super::CopsShared;
use super::decisions::{install_decision, remove_decision};
use super::driver::SendDecision;
use crate::model::{Attachment, ServiceSession, SubscriberRecord};
use crate::subscriber::link::{Answered, Change, Pending, PolicyLink, SendError};

/// The link every COPS-PR session holds.
pub struct CopsLink {
    shared: Weak<CopsShared>,
}

impl CopsLink {
    pub fn new(shared: Weak<CopsShared>) -> CopsLink {
        CopsLink { shared }
    }

    /// Sends one decision on the session's request state.
    fn decide(
        &self,
        record: &SubscriberRecord,
        command: Command,
        named: impl FnOnce(u32) -> Result<bytes::Bytes, String>,
    ) -> Result<Pending<Change>, SendError> {
        let not_connected = || SendError::NotConnected(record.router.clone());
        let Attachment::Cops {
            pepid,
            client_type,
            handle,
            interface,
        } = &record.attachment
        else {
            return Err(not_connected());
        };
        let driver = self
            .shared
            .upgrade()
            .and_then(|c| c.driver(pepid, *client_type))
            .map(|(d, _)| d)
            .ok_or_else(not_connected)?;
        let named = named(*interface).map_err(|reason| SendError::Failed {
            router: record.router.clone(),
            reason,
        })?;
        let mut decision = Decision::new(CopsContext::configuration(), DecisionFlags::new(command));
        decision.named = Some(named);
        driver.do_send(SendDecision {
            client_type: *client_type,
            handle: Handle(handle.clone().into()),
            decisions: vec![decision],
        });
        Ok(Box::pin(std::future::ready(Ok(Change::Sent))))
    }

    fn unsupported(record: &SubscriberRecord) -> Pending<Answered> {
        Box::pin(std::future::ready(Err(SendError::NotConnected(
            record.router.clone(),
        ))))
    }
}

impl PolicyLink for CopsLink {
    fn ready(&self, _record: &SubscriberRecord) -> Result<(), SendError> {
        // Checked when the decision is sent, after the session looked the service up.
        Ok(())
    }

    fn install(
        &self,
        record: &SubscriberRecord,
        service: &ServiceSession,
    ) -> Result<Pending<Change>, SendError> {
        self.decide(record, Command::Install, |interface| {
            install_decision(interface, std::slice::from_ref(service))
        })
    }

    fn remove(
        &self,
        record: &SubscriberRecord,
        service: &ServiceSession,
    ) -> Result<Pending<Change>, SendError> {
        self.decide(record, Command::Remove, |_| remove_decision(service))
    }

    fn collect(&self, record: &SubscriberRecord) -> Pending<Answered> {
        Self::unsupported(record)
    }

    fn abort(&self, record: &SubscriberRecord) -> Pending<Answered> {
        Self::unsupported(record)
    }
}
