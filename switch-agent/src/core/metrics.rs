//! Prometheus metrics of the agent (text format at `/metrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::borrow::Cow;

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

/// Labels of `subcast_agent_refused_datagrams_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    /// Why: "source", "bad-mac", "unknown-key", "replay", "stale",
    /// "sequence-ahead", "before-start", or a decode error kind.
    pub reason: String,
}

/// Labels of `subcast_agent_reloads_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// applied, invalid (the file has errors), refused (a key cannot
    /// change live).
    pub outcome: String,
}

/// Labels of `subcast_agent_stage_seconds`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabel {
    /// transit_in, backend, answer (see [`Metrics::stage`]).
    pub stage: String,
}

/// The stages of an instruction [`Metrics::stage`] records.
pub const STAGES: [&str; 3] = ["transit_in", "backend", "answer"];

/// Every metric the agent exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub instructions: Family<InstructionLabels, Counter>,
    pub installed_groups: Gauge,
    pub expired: Counter,
    pub apply_latency: Histogram,
    pub closed_group_removals: Counter,
    pub refused_datagrams: Family<RefusedLabels, Counter>,
    pub lease_refreshes: Counter,
    /// Re-pushes: groups reinstalled because a port changed state.
    pub topology_repushes: Counter,
    /// Port-state changes (and member moves) that made the agent re-plan.
    pub topology_events: Counter,
    pub table_capacity: Gauge,
    pub backend_actions: Counter,
    pub hello_sent: Counter,
    pub hello_acked: Gauge,
    pub reloads: Family<OutcomeLabel, Counter>,
    pub replay_senders: Gauge,
    pub stages: Family<StageLabel, Histogram>,
    /// Handles of `stages` in the order of [`STAGES`].
    stage_handles: Vec<Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Metrics without constant labels (tests, embedding).
    pub fn new() -> Self {
        Self::build(Registry::with_prefix("subcast_agent"))
    }

    /// Metrics whose every series carries `switch` (the name the
    /// controller knows the switch by) and `backend` (the config's
    /// `backend.kind`), as the daemon exports them.
    pub fn with_labels(switch: &str, backend: &str) -> Self {
        let labels = [
            (Cow::Borrowed("switch"), Cow::Owned(switch.to_owned())),
            (Cow::Borrowed("backend"), Cow::Owned(backend.to_owned())),
        ];
        Self::build(Registry::with_prefix_and_labels(
            "subcast_agent",
            labels.into_iter(),
        ))
    }

    fn build(mut registry: Registry) -> Self {
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
        let refused_datagrams = Family::<RefusedLabels, Counter>::default();
        registry.register(
            "refused_datagrams",
            "Datagrams dropped without an answer (unauthenticated, replayed, stale, or from an address that may not instruct this agent), by reason",
            refused_datagrams.clone(),
        );
        let lease_refreshes = Counter::default();
        registry.register(
            "lease_refreshes",
            "SET_SUBSETs of an installed group with the same ports: lifetime renewed without touching the switch",
            lease_refreshes.clone(),
        );
        let topology_repushes = Counter::default();
        registry.register(
            "topology_repushes",
            "Groups reinstalled on other ports because a switch port changed spanning-tree state (or a member was learned behind another port afterwards)",
            topology_repushes.clone(),
        );
        let topology_events = Counter::default();
        registry.register(
            "topology_events",
            "Port-state changes and member moves that made the agent re-plan its live groups",
            topology_events.clone(),
        );
        let table_capacity = Gauge::default();
        registry.register(
            "table_capacity",
            "Subset groups the switch can hold for subcast, as reported in HELLO/HEARTBEAT (0: unknown)",
            table_capacity.clone(),
        );
        let backend_actions = Counter::default();
        registry.register(
            "backend_actions",
            "Operations the agent asked its backend for (applies, refreshes, sweeps)",
            backend_actions.clone(),
        );
        let hello_sent = Counter::default();
        registry.register("hello_sent", "HELLOs sent", hello_sent.clone());
        let hello_acked = Gauge::default();
        registry.register(
            "hello_acked",
            "1 once the controller acknowledged this run's HELLO",
            hello_acked.clone(),
        );
        let reloads = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "reloads",
            "Config reloads (SIGHUP) by outcome: applied, invalid, refused",
            reloads.clone(),
        );
        let replay_senders = Gauge::default();
        registry.register(
            "replay_senders",
            "Senders (key id, sender id) with live replay windows; idle ones expire after twice the allowed skew",
            replay_senders.clone(),
        );
        // 2 us .. ~2 s, four buckets per doubling (quantiles within ~10 %).
        let stages = Family::<StageLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                2e-6,
                1.189_207_115,
                80,
            ))
        });
        registry.register(
            "stage_seconds",
            "Where an instruction's time goes: transit_in (the controller's seal time to its receipt; needs the clocks in step, e.g. the same host), backend (one switch operation: the netlink batch, OpenFlow bundle or SNMP SET), answer (receipt to the answer queued)",
            stages.clone(),
        );
        let stage_handles = STAGES
            .iter()
            .map(|st| {
                stages
                    .get_or_create(&StageLabel {
                        stage: (*st).to_owned(),
                    })
                    .clone()
            })
            .collect();
        Metrics {
            registry,
            stages,
            stage_handles,
            reloads,
            replay_senders,
            refused_datagrams,
            lease_refreshes,
            topology_repushes,
            topology_events,
            table_capacity,
            backend_actions,
            hello_sent,
            hello_acked,
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

    /// One observation of `stage` (one of [`STAGES`]; others are ignored).
    pub fn stage(&self, stage: &str, seconds: f64) {
        if let Some(i) = STAGES.iter().position(|s| *s == stage)
            && let Some(h) = self.stage_handles.get(i)
        {
            h.observe(seconds);
        }
    }

    /// Counts one reload by outcome.
    pub fn reload(&self, outcome: &str) {
        self.reloads
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Counts one datagram dropped without an answer.
    pub fn refused(&self, reason: &str) {
        self.refused_datagrams
            .get_or_create(&RefusedLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// The metrics in OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut s = String::new();
        if prometheus_client::encoding::text::encode(&mut s, &self.registry).is_err() {
            s.clear();
        }
        s
    }

    /// The metrics in the Prometheus text format 0.0.4 (what `promtool
    /// check metrics` reads; served unless the scraper asks for
    /// OpenMetrics).
    pub fn encode_prometheus(&self) -> String {
        let mut s = String::new();
        if prometheus_client::encoding::prometheus_text::encode(&mut s, &self.registry).is_err() {
            s.clear();
        }
        s
    }
}
