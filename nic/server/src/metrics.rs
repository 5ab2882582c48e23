//! The standalone NIC's Prometheus metrics, served as text on `/metrics`.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::nic::{BatchOutcome, Nic};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

/// Every metric of the standalone NIC.
pub struct Metrics {
    registry: Registry,
    nic: Arc<Nic>,
    bindings: Gauge,
    routers: Gauge,
    publishers: Gauge,
    watchers: Gauge,
    received: Family<OutcomeLabels, Counter<u64, AtomicU64>>,
    resolutions: Family<OutcomeLabels, Counter<u64, AtomicU64>>,
}

impl Metrics {
    pub fn new(nic: Arc<Nic>) -> Metrics {
        let mut registry = Registry::default();
        let bindings = Gauge::default();
        let routers = Gauge::default();
        let publishers = Gauge::default();
        let watchers = Gauge::default();
        let received = Family::default();
        let resolutions = Family::default();
        registry.register(
            "sae_nic_bindings",
            "Subscriber session bindings in the directory",
            bindings.clone(),
        );
        registry.register(
            "sae_nic_routers",
            "Routers (and PEPs) the directory knows an owner or pools of",
            routers.clone(),
        );
        registry.register(
            "sae_nic_publishers",
            "SAE nodes that have published here",
            publishers.clone(),
        );
        registry.register(
            "sae_nic_watchers",
            "Resolution caches watching for invalidations",
            watchers.clone(),
        );
        registry.register(
            "sae_nic_received",
            "Publications received, by outcome (changed, stale, same)",
            received.clone(),
        );
        registry.register(
            "sae_nic_resolutions",
            "Resolutions answered, by outcome (found, not_found, invalid)",
            resolutions.clone(),
        );
        Metrics {
            registry,
            nic,
            bindings,
            routers,
            publishers,
            watchers,
            received,
            resolutions,
        }
    }

    pub fn published(&self, outcome: BatchOutcome) {
        for (label, n) in [
            ("changed", outcome.changed),
            ("stale", outcome.stale),
            ("same", outcome.same),
        ] {
            if n > 0 {
                self.received
                    .get_or_create(&OutcomeLabels { outcome: label })
                    .inc_by(u64::from(n));
            }
        }
    }

    pub fn resolved(&self, outcome: &'static str) {
        self.resolutions
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// The exposition text, with the gauges read from the NIC now.
    pub fn encode(&self) -> String {
        let stats = self.nic.stats();
        self.bindings.set(stats.bindings as i64);
        self.routers.set(stats.routers as i64);
        self.publishers.set(self.nic.publishers() as i64);
        self.watchers.set(self.nic.watchers() as i64);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_counts_publications_and_resolutions() {
        let nic = Arc::new(Nic::new(sae_nic::config::Resolution::default()));
        let m = Metrics::new(nic);
        m.published(BatchOutcome {
            changed: 3,
            stale: 1,
            same: 0,
        });
        m.resolved("found");
        let text = m.encode();
        assert!(
            text.contains("sae_nic_received_total{outcome=\"changed\"} 3"),
            "{text}"
        );
        assert!(text.contains("sae_nic_received_total{outcome=\"stale\"} 1"));
        assert!(text.contains("sae_nic_resolutions_total{outcome=\"found\"} 1"));
        assert!(text.contains("sae_nic_bindings 0"));
    }
}
