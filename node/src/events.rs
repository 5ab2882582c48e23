//! Session events: what happened to subscribers and routers, broadcast to every watcher
//! (the management API's `WatchEvents` stream). Slow watchers lose the oldest events rather than
//! holding anyone up.

use tokio::sync::broadcast;

use crate::model::{UnixMs, now_ms};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Login,
    LoginRefused,
    Confirmed,
    ServiceActivated,
    ServiceFailed,
    ServiceDeactivated,
    Usage,
    Logout,
    ResyncStarted,
    /// An SRQ went unanswered and is sent again.
    ResyncRetried,
    ResyncFinished,
    SessionReplayed,
    RouterUp,
    RouterDown,
    /// The session's router moved to another node of the cluster, which rebuilds it.
    HandedOver,
    /// An aggregate session became active (`service` is the aggregate).
    AggregateActive,
    /// An aggregate session failed, or ended after a loss (the reason in `detail`).
    AggregateFailed,
    /// An aggregate session ended: its fragments have stopped.
    AggregateInactive,
    /// A fragment of an aggregate started (`detail`: the fragment, its service and session).
    FragmentStarted,
    /// A started fragment was lost (`detail`: the fragment and why).
    FragmentLost,
}

impl EventKind {
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Login => "login",
            EventKind::LoginRefused => "login-refused",
            EventKind::Confirmed => "confirmed",
            EventKind::ServiceActivated => "service-activated",
            EventKind::ServiceFailed => "service-failed",
            EventKind::ServiceDeactivated => "service-deactivated",
            EventKind::Usage => "usage",
            EventKind::Logout => "logout",
            EventKind::ResyncStarted => "resync-started",
            EventKind::ResyncRetried => "resync-retried",
            EventKind::ResyncFinished => "resync-finished",
            EventKind::SessionReplayed => "session-replayed",
            EventKind::RouterUp => "router-up",
            EventKind::HandedOver => "handed-over",
            EventKind::RouterDown => "router-down",
            EventKind::AggregateActive => "aggregate-active",
            EventKind::AggregateFailed => "aggregate-failed",
            EventKind::AggregateInactive => "aggregate-inactive",
            EventKind::FragmentStarted => "fragment-started",
            EventKind::FragmentLost => "fragment-lost",
        }
    }
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEvent {
    pub time_ms: UnixMs,
    pub kind: EventKind,
    pub session_id: String,
    pub user_name: String,
    pub router: String,
    pub service: String,
    pub detail: String,
}

impl SessionEvent {
    /// An event about a router.
    pub fn router(kind: EventKind, router: &str, detail: impl Into<String>) -> SessionEvent {
        SessionEvent {
            time_ms: now_ms(),
            kind,
            session_id: String::new(),
            user_name: String::new(),
            router: router.to_owned(),
            service: String::new(),
            detail: detail.into(),
        }
    }
}

/// The broadcast bus.
#[derive(Debug, Clone)]
pub struct Events {
    tx: broadcast::Sender<SessionEvent>,
}

impl Default for Events {
    fn default() -> Self {
        Events::new(4096)
    }
}

impl Events {
    /// A bus keeping up to `capacity` events for slow watchers.
    pub fn new(capacity: usize) -> Events {
        Events {
            tx: broadcast::channel(capacity).0,
        }
    }

    /// Publishes; free when nobody watches.
    pub fn publish(&self, event: SessionEvent) {
        tracing::debug!(kind = event.kind.name(), session = %event.session_id, user = %event.user_name, service = %event.service, detail = %event.detail, "event");
        let _ = self.tx.send(event);
    }

    /// A new watcher, seeing events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<SessionEvent> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn watchers_see_events_published_after_they_subscribe() {
        let events = Events::new(8);
        events.publish(SessionEvent::router(EventKind::RouterUp, "r1", "before"));
        let mut rx = events.subscribe();
        events.publish(SessionEvent::router(EventKind::RouterDown, "r1", "after"));
        let e = rx.recv().await.unwrap();
        assert_eq!(e.kind, EventKind::RouterDown);
        assert_eq!(e.detail, "after");
    }
}
