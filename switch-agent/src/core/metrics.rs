//! Prometheus metrics of the agent (text format at `/metrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of `subcast_agent_instructions_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InstructionLabels {
    /// SET_SUBSET, CLEAR, or the message name / "UNDECODABLE".
    pub kind: String,
    /// "ack" or "nak".
    pub result: String,
    /// The NAK reason ("" for an ACK).
    pub reason: String,
}

/// Every metric the agent exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub instructions: Family<InstructionLabels, Counter>,
    pub installed_groups: Gauge,
    pub expired: Counter,
    pub apply_latency: Histogram,
    pub closed_group_removals: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("subcast_agent");
        let instructions = Family::<InstructionLabels, Counter>::default();
        registry.register(
            "instructions",
            "Instructions received, by kind, result and NAK reason",
            instructions.clone(),
        );
        let installed_groups = Gauge::default();
        registry.register(
            "installed_groups",
            "Subset groups currently installed on the switch",
            installed_groups.clone(),
        );
        let expired = Counter::default();
        registry.register(
            "lease_expiries",
            "Subset groups removed because their lease ended",
            expired.clone(),
        );
        // 10 us .. ~1.3 s
        let apply_latency = Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(1e-5, 2.0, 18),
        );
        registry.register(
            "apply_latency_seconds",
            "Time from receiving an instruction to sending its answer",
            apply_latency.clone(),
        );
        let closed_group_removals = Counter::default();
        registry.register(
            "closed_group_removals",
            "MLD-learned entries for rendezvous groups removed (hosts that joined a subset group)",
            closed_group_removals.clone(),
        );
        Metrics {
            registry,
            closed_group_removals,
            instructions,
            installed_groups,
            expired,
            apply_latency,
        }
    }

    /// Counts one instruction.
    pub fn count(&self, kind: &str, reason: Option<subcast_proto::NakReason>) {
        self.instructions
            .get_or_create(&InstructionLabels {
                kind: kind.to_owned(),
                result: if reason.is_some() { "nak" } else { "ack" }.to_owned(),
                reason: reason.map(|r| r.name()).unwrap_or("").to_owned(),
            })
            .inc();
    }

    /// The metrics in Prometheus text format.
    pub fn encode(&self) -> String {
        let mut s = String::new();
        if prometheus_client::encoding::text::encode(&mut s, &self.registry).is_err() {
            s.clear();
        }
        s
    }
}
