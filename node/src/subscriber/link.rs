//! [`PolicyLink`]: how a subscriber session reaches its router, whatever the protocol. The
//! Diameter side implements it with PPR, ASR and ACR (`diameter::link`), the COPS-PR side with
//! unsolicited decisions on the session's request state (`cops::link`). A session holds one
//! link, shared by every session of that protocol; the record's [`Attachment`] says where on
//! the router the session is.
//!
//! [`Attachment`]: crate::model::Attachment

use std::future::Future;
use std::pin::Pin;

use crate::model::{ServiceSession, SubscriberRecord, UsageRecord};

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

/// What the router made of an install or a removal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The router answered (a PPA): its result code (`success` when it did what was asked),
    /// its error message, and the number of attempts it took.
    Answered {
        success: bool,
        result_code: u32,
        message: String,
        attempts: u32,
    },
    /// No answer after `attempts` attempts.
    Unanswered { error: SendError, attempts: u32 },
    /// Sent; the router confirms (or refuses) later in a report of its own.
    Sent,
}

/// What the router answered to a logout or a usage request, with the usage it reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    /// The answer's result code.
    pub result_code: u32,
    /// The router accepted the request (for a logout: it follows with its own termination).
    pub success: bool,
    /// The router does not know the session.
    pub unknown_session: bool,
    pub usage: Vec<UsageRecord>,
}

/// A request on its way to the router.
pub type Pending<T> = Pin<Box<dyn Future<Output = Result<T, SendError>> + Send>>;

/// The requests a subscriber session makes of its router.
///
/// `install` and `remove` fail at once (and the session records nothing) when the request
/// cannot even be sent; the returned future is the router's answer.
pub trait PolicyLink: Send + Sync + 'static {
    /// Whether a change can be attempted now (the router is connected). A session checks it
    /// before it records anything about a change.
    fn ready(&self, record: &SubscriberRecord) -> Result<(), SendError>;

    /// Installs a service's policy on the router.
    fn install(
        &self,
        record: &SubscriberRecord,
        service: &ServiceSession,
    ) -> Result<Pending<Change>, SendError>;

    /// Removes a service's policy from the router.
    fn remove(
        &self,
        record: &SubscriberRecord,
        service: &ServiceSession,
    ) -> Result<Pending<Change>, SendError>;

    /// Asks the router for the session's usage.
    fn collect(&self, record: &SubscriberRecord) -> Pending<Answered>;

    /// Asks the router to end the session.
    fn abort(&self, record: &SubscriberRecord) -> Pending<Answered>;
}
