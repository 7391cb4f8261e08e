//! Prometheus metrics, served as text at `/metrics`. Counters are bumped
//! by the engine as things happen; gauges (occupancy, budgets, groups)
//! are set from the engine's state when `/metrics` is read.

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

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// hit (group installed), join (group being installed), miss (new group).
    pub kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabel {
    pub phase: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SwitchLabel {
    pub switch: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SwitchOpLabel {
    pub switch: String,
    /// set, refresh, repush, clear.
    pub op: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// applied, invalid (the file has errors), refused (a key cannot
    /// change live).
    pub outcome: String,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub granted: Family<PathLabel, Counter>,
    pub grants_by_kind: Family<KindLabel, Counter>,
    pub refused: Family<ReasonLabel, Counter>,
    pub released: Counter,
    pub expired: Counter,
    pub evictions: Family<ReasonLabel, Counter>,
    pub grant_latency: Family<KindLabel, Histogram>,
    /// Parts of a miss: agents (decision to last ACK), request_transit,
    /// ack_transit (one-way delays by the seal time), store_wait (last
    /// ACK to the row being durable).
    pub miss_phase: Family<PhaseLabel, Histogram>,
    pub switch_ops: Family<SwitchOpLabel, Counter>,
    pub batches: Counter,
    pub batch_items: Counter,
    pub retransmits: Counter,
    pub agents_up: Gauge,
    pub leases_live: Gauge,
    /// Installed groups some switch does not agree on.
    pub groups_disagreeing: Gauge,
    pub reloads: Family<OutcomeLabel, Counter>,
    pub groups: Family<StateLabel, Gauge>,
    pub occupancy: Family<SwitchLabel, Gauge>,
    pub budget: Family<SwitchLabel, Gauge>,
    pub bad_datagrams: Family<ReasonLabel, Counter>,
    /// Senders with live replay state (windows of the UDP opener).
    pub replay_senders: Gauge,
    /// Rows in the audit table (counted when `/metrics` is read).
    pub audit_rows: Gauge,
    /// Parts of one turn of the daemon's loop: engine (wakeup to every
    /// datagram of the turn sealed), send (handing them to the socket),
    /// store (the turn's SQLite transaction).
    pub loop_turn: Family<PhaseLabel, Histogram>,
    /// Handles of `granted` by path and of `grants_by_kind` and
    /// `grant_latency` by kind, taken once (the hit path is hot).
    fast: Fast,
}

#[derive(Debug, Default)]
struct Fast {
    by_path: [Counter; 2],
    by_kind: [Counter; 3],
    latency: Vec<Histogram>,
    turn: Vec<Histogram>,
    phase: Vec<Histogram>,
}

const PATHS: [&str; 2] = ["udp", "http"];
const KINDS: [&str; 3] = ["hit", "join", "miss"];
/// The parts of a loop turn ([`Metrics::turn`]).
pub const TURN_PARTS: [&str; 3] = ["engine", "send", "store"];
const PHASES: [&str; 4] = ["agents", "store_wait", "request_transit", "ack_transit"];

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn latency_histogram() -> Histogram {
    // 5 us .. ~5 s, four buckets per doubling (quantiles within ~10 %).
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.000005,
        1.189_207_115,
        80,
    ))
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("subcast_controller");
        let m = Metrics {
            registry: Registry::default(),
            granted: Family::default(),
            grants_by_kind: Family::default(),
            refused: Family::default(),
            released: Counter::default(),
            expired: Counter::default(),
            evictions: Family::default(),
            grant_latency: Family::new_with_constructor(latency_histogram),
            miss_phase: Family::new_with_constructor(latency_histogram),
            loop_turn: Family::new_with_constructor(latency_histogram),
            switch_ops: Family::default(),
            batches: Counter::default(),
            batch_items: Counter::default(),
            retransmits: Counter::default(),
            agents_up: Gauge::default(),
            leases_live: Gauge::default(),
            groups_disagreeing: Gauge::default(),
            reloads: Family::default(),
            groups: Family::default(),
            occupancy: Family::default(),
            budget: Family::default(),
            bad_datagrams: Family::default(),
            replay_senders: Gauge::default(),
            audit_rows: Gauge::default(),
            fast: Fast::default(),
        };
        registry.register(
            "leases_granted",
            "Rendezvous leases granted, by request path",
            m.granted.clone(),
        );
        registry.register(
            "grants",
            "Grants by kind: hit (group installed: no switch update), join (group being installed), miss (new group)",
            m.grants_by_kind.clone(),
        );
        registry.register(
            "leases_refused",
            "Rendezvous requests refused, by reason",
            m.refused.clone(),
        );
        registry.register(
            "leases_released",
            "Leases released by their holder",
            m.released.clone(),
        );
        registry.register(
            "leases_expired",
            "Leases that reached their end",
            m.expired.clone(),
        );
        registry.register(
            "evictions",
            "Groups cleared, by cause: lru (a budget needed room), warm (warm period over), unused (warm_ms 0), failed, tainted",
            m.evictions.clone(),
        );
        registry.register(
            "grant_latency_seconds",
            "Time from rendezvous request to grant, by kind",
            m.grant_latency.clone(),
        );
        registry.register(
            "miss_phase_seconds",
            "Parts of a miss: request_transit (the request's seal time to its receipt; needs the sender's clock in step, e.g. the same host), agents (decision to the last ACK), ack_transit (an agent's seal time of an ACK to its receipt, same caveat), store_wait (last ACK to its row being durable)",
            m.miss_phase.clone(),
        );
        registry.register(
            "loop_turn_seconds",
            "Parts of one turn of the daemon's loop: engine (wakeup to every datagram of the turn sealed), send (handing them to the socket), store (the turn's SQLite transaction)",
            m.loop_turn.clone(),
        );
        registry.register(
            "switch_ops",
            "Instructions (BATCH items included) acknowledged by agents, by switch and op",
            m.switch_ops.clone(),
        );
        registry.register(
            "batches",
            "BATCH datagrams sent (first sends)",
            m.batches.clone(),
        );
        registry.register(
            "batch_items",
            "Items sent inside BATCHes",
            m.batch_items.clone(),
        );
        registry.register(
            "retransmits",
            "Instructions sent again for lack of an answer",
            m.retransmits.clone(),
        );
        registry.register(
            "agents_up",
            "Agents heard from within the agent timeout",
            m.agents_up.clone(),
        );
        registry.register(
            "groups_disagreeing",
            "Installed groups that some switch does not hold as the others do (see GET /v1/subsets)",
            m.groups_disagreeing.clone(),
        );
        registry.register(
            "reloads",
            "Config reloads (SIGHUP, POST /v1/reload) by outcome",
            m.reloads.clone(),
        );
        registry.register(
            "leases_live",
            "Leases currently held (pending or live)",
            m.leases_live.clone(),
        );
        registry.register(
            "groups",
            "Rendezvous groups by state (installing, live, warm, pinned, clearing)",
            m.groups.clone(),
        );
        registry.register(
            "occupancy",
            "Groups each switch holds or may hold",
            m.occupancy.clone(),
        );
        registry.register(
            "budget",
            "Groups each switch may be asked to hold",
            m.budget.clone(),
        );
        registry.register(
            "bad_datagrams",
            "Datagrams dropped, by reason",
            m.bad_datagrams.clone(),
        );
        registry.register(
            "replay_senders",
            "Senders (key id, sender id) with live replay windows; idle ones expire after twice the allowed skew",
            m.replay_senders.clone(),
        );
        registry.register(
            "audit_rows",
            "Rows in the audit table of the database",
            m.audit_rows.clone(),
        );
        let fast = Fast {
            by_path: PATHS.map(|p| {
                m.granted
                    .get_or_create(&PathLabel { path: p.to_owned() })
                    .clone()
            }),
            by_kind: KINDS.map(|k| {
                m.grants_by_kind
                    .get_or_create(&KindLabel { kind: k.to_owned() })
                    .clone()
            }),
            latency: KINDS
                .iter()
                .map(|k| {
                    m.grant_latency
                        .get_or_create(&KindLabel {
                            kind: (*k).to_owned(),
                        })
                        .clone()
                })
                .collect(),
            phase: PHASES
                .iter()
                .map(|p| {
                    m.miss_phase
                        .get_or_create(&PhaseLabel {
                            phase: (*p).to_owned(),
                        })
                        .clone()
                })
                .collect(),
            turn: TURN_PARTS
                .iter()
                .map(|p| {
                    m.loop_turn
                        .get_or_create(&PhaseLabel {
                            phase: (*p).to_owned(),
                        })
                        .clone()
                })
                .collect(),
        };
        Metrics {
            registry,
            fast,
            ..m
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

    pub fn eviction(&self, cause: &str) {
        self.evictions
            .get_or_create(&ReasonLabel {
                reason: cause.to_owned(),
            })
            .inc();
    }

    /// A grant of `kind` (hit, join, miss) on `path` (udp, http), after
    /// `seconds` in the controller.
    pub fn grant(&self, path: &str, kind: &str, seconds: f64) {
        match PATHS.iter().position(|p| *p == path) {
            Some(i) => {
                self.fast.by_path[i].inc();
            }
            None => {
                self.granted
                    .get_or_create(&PathLabel {
                        path: path.to_owned(),
                    })
                    .inc();
            }
        }
        if let Some(i) = KINDS.iter().position(|k| *k == kind) {
            self.fast.by_kind[i].inc();
            self.fast.latency[i].observe(seconds);
        }
    }

    /// One part of a loop turn: `part` indexes [`TURN_PARTS`].
    pub fn turn(&self, part: usize, seconds: f64) {
        if let Some(h) = self.fast.turn.get(part) {
            h.observe(seconds);
        }
    }

    pub fn phase(&self, phase: &str, seconds: f64) {
        if let Some(i) = PHASES.iter().position(|p| *p == phase)
            && let Some(h) = self.fast.phase.get(i)
        {
            h.observe(seconds);
            return;
        }
        self.miss_phase
            .get_or_create(&PhaseLabel {
                phase: phase.to_owned(),
            })
            .observe(seconds);
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut s = String::new();
        if prometheus_client::encoding::text::encode(&mut s, &self.registry).is_err() {
            s.clear();
        }
        s
    }

    /// The Prometheus text format 0.0.4 (served unless the scraper asks
    /// for OpenMetrics).
    pub fn encode_prometheus(&self) -> String {
        let mut s = String::new();
        if prometheus_client::encoding::prometheus_text::encode(&mut s, &self.registry).is_err() {
            s.clear();
        }
        s
    }
}
