//! Prometheus metrics: Diameter message counts by command and result, subscriber sessions,
//! request latency, pending requests; served as text on `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MessageLabels {
    /// "in" (received) or "out" (sent).
    pub direction: &'static str,
    /// Request or answer name (AAR, AAA, PPR, ...).
    pub command: String,
    /// Result-Code of an answer; empty for requests.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CopsLabels {
    /// "in" (received) or "out" (sent).
    pub direction: &'static str,
    /// Op name (REQ, DEC, RPT, DRQ, ...).
    pub op: &'static str,
    /// For DEC: "install", "remove" or "error"; empty otherwise.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabels {
    pub command: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouterLabels {
    pub router: String,
}

fn latency_histogram() -> Histogram {
    // 50 µs .. ~3.3 s
    Histogram::new(exponential_buckets(0.000_05, 2.0, 17))
}

/// Every metric of the node.
pub struct Metrics {
    registry: Registry,
    pub messages: Family<MessageLabels, Counter>,
    pub cops_messages: Family<CopsLabels, Counter>,
    /// Time to answer a router's request (received → answer queued), by request.
    pub answer_latency: Family<CommandLabels, Histogram, fn() -> Histogram>,
    /// Round trip of the SAE's own requests (sent → answer), by request.
    pub request_latency: Family<CommandLabels, Histogram, fn() -> Histogram>,
    pub pending_requests: Family<RouterLabels, Gauge>,
    /// SRQs sent again because the router did not answer in time, by router.
    pub srq_retries: Family<RouterLabels, Counter>,
    pub subscriber_sessions: Gauge,
    pub diameter_peers: Gauge,
    pub usage_records: Counter,
    pub logins: Counter,
    pub logins_refused: Counter,
    /// Bindings in the embedded NIC (every node's sessions).
    pub nic_bindings: Gauge,
    /// Publications sent to other members: "sent", "failed" (a batch that did not get
    /// through), "replayed" (in full replays).
    pub nic_published: Family<OutcomeLabels, Counter>,
    /// Publications received from other members: "changed", "stale" (an older epoch), "same".
    pub nic_received: Family<OutcomeLabels, Counter>,
    /// Aggregate sessions by what became of them: "active", "failed" (before or after being
    /// active), "deactivated".
    pub aggregates: Family<OutcomeLabels, Counter>,
    /// Fragments of aggregate sessions: "started", "start-failed", "lost".
    pub aggregate_fragments: Family<OutcomeLabels, Counter>,
    /// Resolutions through standalone NICs: "hit" (answered from the cache) or "miss".
    pub nic_cache: Family<OutcomeLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("sae");
        let messages = Family::<MessageLabels, Counter>::default();
        registry.register(
            "diameter_messages",
            "Diameter messages by direction, command and Result-Code",
            messages.clone(),
        );
        let cops_messages = Family::<CopsLabels, Counter>::default();
        registry.register(
            "cops_messages",
            "COPS messages by direction, op and decision outcome",
            cops_messages.clone(),
        );
        let answer_latency: Family<CommandLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "diameter_answer_seconds",
            "Time from a router's request to the SAE's answer",
            answer_latency.clone(),
        );
        let request_latency: Family<CommandLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "diameter_request_seconds",
            "Round trip of requests the SAE sends to routers",
            request_latency.clone(),
        );
        let pending_requests = Family::<RouterLabels, Gauge>::default();
        registry.register(
            "diameter_pending_requests",
            "Requests sent to a router and not answered yet",
            pending_requests.clone(),
        );
        let srq_retries = Family::<RouterLabels, Counter>::default();
        registry.register(
            "srq_retries",
            "SRQs sent again because the router did not answer the last one in time",
            srq_retries.clone(),
        );
        let subscriber_sessions = Gauge::default();
        registry.register(
            "subscriber_sessions",
            "Subscriber sessions held by this node",
            subscriber_sessions.clone(),
        );
        let diameter_peers = Gauge::default();
        registry.register(
            "diameter_peers",
            "Open Diameter router connections",
            diameter_peers.clone(),
        );
        let usage_records = Counter::default();
        registry.register(
            "usage_records",
            "Usage records stored",
            usage_records.clone(),
        );
        let logins = Counter::default();
        registry.register("logins", "Successful logins (AAA 2001)", logins.clone());
        let logins_refused = Counter::default();
        registry.register(
            "logins_refused",
            "Logins refused by a rule or an error",
            logins_refused.clone(),
        );
        let nic_bindings = Gauge::default();
        registry.register(
            "nic_bindings",
            "Bindings in the embedded NIC, of every node's sessions",
            nic_bindings.clone(),
        );
        let nic_published = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "nic_published",
            "Binding publications sent to other members, by outcome (sent, failed, replayed)",
            nic_published.clone(),
        );
        let nic_received = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "nic_received",
            "Binding publications received from other members, by outcome (changed, stale, same)",
            nic_received.clone(),
        );
        let nic_cache = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "nic_cache",
            "Resolutions through standalone NICs, by outcome (hit: from the cache, miss)",
            nic_cache.clone(),
        );
        let aggregates = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "aggregates",
            "Aggregate sessions by outcome (active, failed, deactivated)",
            aggregates.clone(),
        );
        let aggregate_fragments = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "aggregate_fragments",
            "Fragments of aggregate sessions by outcome (started, start-failed, lost)",
            aggregate_fragments.clone(),
        );
        Metrics {
            registry,
            aggregates,
            aggregate_fragments,
            nic_cache,
            nic_bindings,
            nic_published,
            nic_received,
            messages,
            cops_messages,
            answer_latency,
            request_latency,
            pending_requests,
            srq_retries,
            subscriber_sessions,
            diameter_peers,
            usage_records,
            logins,
            logins_refused,
        }
    }

    /// Counts NIC publications sent (`sent`, `failed`, `replayed`).
    pub fn nic_published(&self, outcome: &'static str, n: usize) {
        self.nic_published
            .get_or_create(&OutcomeLabels { outcome })
            .inc_by(n as u64);
    }

    /// Counts a resolution through a standalone NIC (`hit`, `miss`).
    pub fn nic_cache(&self, outcome: &'static str) {
        self.nic_cache
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Counts NIC publications received (`changed`, `stale`, `same`).
    pub fn nic_received(&self, outcome: &'static str, n: u32) {
        self.nic_received
            .get_or_create(&OutcomeLabels { outcome })
            .inc_by(u64::from(n));
    }

    /// Counts one message.
    pub fn message(&self, direction: &'static str, command: &str, result: Option<u32>) {
        self.messages
            .get_or_create(&MessageLabels {
                direction,
                command: command.to_owned(),
                result: result.map(|r| r.to_string()).unwrap_or_default(),
            })
            .inc();
    }

    /// Counts one COPS message.
    pub fn cops(&self, direction: &'static str, op: &'static str, outcome: &'static str) {
        self.cops_messages
            .get_or_create(&CopsLabels {
                direction,
                op,
                outcome,
            })
            .inc();
    }

    /// Records the time taken to answer a router's request.
    pub fn answered(&self, command: &str, took: Duration) {
        self.answer_latency
            .get_or_create(&CommandLabels {
                command: command.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// Records the round trip of one of our requests.
    pub fn round_trip(&self, command: &str, took: Duration) {
        self.request_latency
            .get_or_create(&CommandLabels {
                command: command.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Serves `/metrics` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    metrics.encode(),
                )
            }
        }),
    );
    axum::serve(listener, app).await
}

/// Binds the metrics listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_commands_and_results() {
        let m = Metrics::new();
        m.message("in", "AAR", None);
        m.message("out", "AAA", Some(2001));
        m.subscriber_sessions.set(3);
        m.answered("AAR", Duration::from_micros(300));
        let text = m.encode();
        assert!(
            text.contains(
                r#"sae_diameter_messages_total{direction="out",command="AAA",result="2001"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains("sae_subscriber_sessions 3"), "{text}");
        assert!(
            text.contains("sae_diameter_answer_seconds_count{command=\"AAR\"} 1"),
            "{text}"
        );
    }
}
