//! The gate in front of the core: which datagrams reach it at all.
//!
//! A datagram passes when it comes from an allowed source address (if
//! `controller_sources` is configured), decodes, carries a tag that verifies
//! under one of the controller keys configured for this agent (never the
//! agent's own key: agents that share a key could otherwise instruct each
//! other), and is fresh (proto's replay guard with the fresh-start rule).
//!
//! Anything else gets no answer (an answer would confirm the agent to
//! anyone and make it a reflector) and no log line per datagram: it is
//! counted in `subcast_agent_refused_datagrams_total{reason}`, the first
//! refusal is logged at once, later ones in one summary line at most every
//! [`SUMMARY_INTERVAL`].

use super::clock::Now;
use super::metrics::Metrics;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use subcast_proto::{Datagram, Keyring, Opener, ReplayGuard};

/// Shortest time between two summary log lines of refused datagrams.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct Gate {
    opener: Opener,
    sources: Vec<ipnet::IpNet>,
    metrics: Arc<Metrics>,
    /// Refusals since the last log line, by reason.
    pending: BTreeMap<&'static str, u64>,
    last_log: Option<Instant>,
}

impl Gate {
    pub fn new(
        keys: Keyring,
        max_skew_us: u64,
        sources: Vec<ipnet::IpNet>,
        metrics: Arc<Metrics>,
        now: Now,
    ) -> Self {
        let guard = ReplayGuard::new(max_skew_us).with_start(now.unix_us);
        Gate {
            opener: Opener::new(keys, guard),
            sources,
            metrics,
            pending: BTreeMap::new(),
            last_log: None,
        }
    }

    /// The datagram if it may reach the core.
    pub fn open(&mut self, bytes: &[u8], from: SocketAddr, now: Now) -> Option<Datagram> {
        if !self.sources.is_empty() && !self.sources.iter().any(|n| n.contains(&from.ip())) {
            self.refuse("source", from, now);
            return None;
        }
        let opened = self.opener.open(bytes, now.unix_us);
        self.metrics
            .replay_senders
            .set(self.opener.senders() as i64);
        match opened {
            Ok(d) => Some(d),
            Err(e) => {
                self.refuse(e.kind(), from, now);
                None
            }
        }
    }

    fn refuse(&mut self, reason: &'static str, from: SocketAddr, now: Now) {
        self.metrics.refused(reason);
        *self.pending.entry(reason).or_default() += 1;
        if self.last_log.is_none() {
            tracing::warn!(%from, reason, "datagram refused, not answered (first refusal; later ones are summarized every 10 s in subcast_agent_refused_datagrams_total)");
            self.pending.clear();
            self.last_log = Some(now.at);
        } else {
            self.flush(now);
        }
    }

    /// When the next summary line is due (refusals pending).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.pending.is_empty() {
            return None;
        }
        self.last_log.map(|t| t + SUMMARY_INTERVAL)
    }

    /// Logs the summary if it is due.
    pub fn flush(&mut self, now: Now) {
        let due = self
            .last_log
            .is_none_or(|t| now.at.saturating_duration_since(t) >= SUMMARY_INTERVAL);
        if due && !self.pending.is_empty() {
            let total: u64 = self.pending.values().sum();
            let by_reason: Vec<String> = self
                .pending
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect();
            tracing::warn!(
                total,
                by_reason = by_reason.join(", "),
                "datagrams refused and not answered since the last report"
            );
            self.pending.clear();
            self.last_log = Some(now.at);
        }
    }
}
