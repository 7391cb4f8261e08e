//! Prometheus metrics, served as text at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PathLabel {
    /// "udp" or "http".
    pub path: String,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub granted: Family<PathLabel, Counter>,
    pub refused: Family<ReasonLabel, Counter>,
    pub released: Counter,
    pub expired: Counter,
    pub grant_latency: Histogram,
    pub agents_up: Gauge,
    pub leases_live: Gauge,
    pub bad_datagrams: Family<ReasonLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("subcast_controller");
        let granted = Family::<PathLabel, Counter>::default();
        let refused = Family::<ReasonLabel, Counter>::default();
        let released = Counter::default();
        let expired = Counter::default();
        // 50 us .. ~1.6 s.
        let grant_latency = Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(0.00005, 2.0, 16),
        );
        let agents_up = Gauge::default();
        let leases_live = Gauge::default();
        let bad_datagrams = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "leases_granted",
            "Rendezvous leases granted, by request path",
            granted.clone(),
        );
        registry.register(
            "leases_refused",
            "Rendezvous requests refused, by reason",
            refused.clone(),
        );
        registry.register(
            "leases_released",
            "Leases released by their holder",
            released.clone(),
        );
        registry.register(
            "leases_expired",
            "Leases that reached their end",
            expired.clone(),
        );
        registry.register(
            "grant_latency_seconds",
            "Time from rendezvous request to grant (every agent ACKed)",
            grant_latency.clone(),
        );
        registry.register(
            "agents_up",
            "Agents heard from within the agent timeout",
            agents_up.clone(),
        );
        registry.register(
            "leases_live",
            "Leases currently held (pending or live)",
            leases_live.clone(),
        );
        registry.register(
            "bad_datagrams",
            "Datagrams dropped, by reason",
            bad_datagrams.clone(),
        );
        Metrics {
            registry,
            granted,
            refused,
            released,
            expired,
            grant_latency,
            agents_up,
            leases_live,
            bad_datagrams,
        }
    }

    pub fn refused(&self, reason: &str) {
        self.refused
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub fn bad_datagram(&self, reason: &str) {
        self.bad_datagrams
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut s = String::new();
        if prometheus_client::encoding::text::encode(&mut s, &self.registry).is_err() {
            s.clear();
        }
        s
    }
}
