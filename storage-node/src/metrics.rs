//! Prometheus metrics of `subcast-node serve`, served at `/metrics` when
//! `node.metrics` is set. The daemon takes a [`Snapshot`] of its counters
//! and gauges every second (with `stats.json`); a scrape encodes the
//! latest one, so values are at most a second old.

use crate::node::{NodeCounters, NodeGauges};
use crate::store::StoreCounters;
use anyhow::Context;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use std::borrow::Cow;
use std::sync::{Arc, Mutex};

/// What the node reports, taken by the daemon.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub node_id: u32,
    pub counters: NodeCounters,
    pub gauges: NodeGauges,
    pub store: StoreCounters,
    pub replay_senders: usize,
}

/// The latest snapshot, shared by the daemon and the metrics server.
pub type Shared = Arc<Mutex<Snapshot>>;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

type Get = fn(&Snapshot) -> u64;

/// Counters: name (without `subcast_node_` and `_total`), help, value.
const COUNTERS: &[(&str, &str, Get)] = &[
    (
        "datagrams_received",
        "Datagrams received on the node's port",
        |s| s.counters.datagrams_in,
    ),
    ("proposals", "PUT_PROPOSALs received", |s| {
        s.counters.proposals
    }),
    ("bids", "PUT_BIDs sent", |s| s.counters.bids),
    ("bids_not_now", "Bids that said not now (busy, full)", |s| {
        s.counters.not_now
    }),
    (
        "bids_already_stored",
        "Bids that said the chunk is already stored",
        |s| s.counters.already_stored,
    ),
    (
        "receives_started",
        "Chunk receives started (PUT_ACCEPT naming this node)",
        |s| s.counters.receives_started,
    ),
    (
        "receives_expired",
        "Chunk receives given up for lack of data",
        |s| s.counters.receives_expired,
    ),
    (
        "data_target_datagrams",
        "DATA datagrams received as a target",
        |s| s.counters.data_datagrams_as_target,
    ),
    (
        "data_target_bytes",
        "DATA payload octets received as a target",
        |s| s.counters.data_bytes_as_target,
    ),
    (
        "data_flooded_datagrams",
        "DATA datagrams received this node was not a target of (flooding)",
        |s| s.counters.data_datagrams_not_for_us,
    ),
    (
        "data_flooded_bytes",
        "DATA payload octets this node was not a target of (flooding)",
        |s| s.counters.data_bytes_not_for_us,
    ),
    (
        "bad_data",
        "DATA datagrams that did not fit their receive",
        |s| s.counters.bad_data,
    ),
    ("duplicates", "DATA datagrams received twice", |s| {
        s.counters.duplicates
    }),
    ("nacks_sent", "NACKs sent (ranges missing)", |s| {
        s.counters.nacks_sent
    }),
    ("acks_sent", "PUT_ACKs sent", |s| s.counters.acks_sent),
    (
        "hash_mismatches",
        "Chunks received whose BLAKE3 did not match",
        |s| s.counters.hash_mismatches,
    ),
    ("store_failures", "Chunks that could not be written", |s| {
        s.counters.store_failures
    }),
    ("offers", "GET_OFFERs sent", |s| s.counters.offers),
    (
        "corrupt_reported",
        "Chunks reported corrupt in offers",
        |s| s.counters.corrupt_reported,
    ),
    ("fetches_served", "GET_FETCHes served", |s| {
        s.counters.fetches_served
    }),
    ("manifest_offers", "MANIFEST_OFFERs sent", |s| {
        s.counters.manifest_offers
    }),
    (
        "queue_drops",
        "Answers dropped because the queue was full",
        |s| s.counters.queue_drops,
    ),
    ("scrub_passes", "Scrub passes started", |s| {
        s.counters.scrub_passes
    }),
    (
        "scrub_verified_chunks",
        "Chunks verified by the scrubber",
        |s| s.counters.scrub_verified,
    ),
    (
        "scrub_corrupt_chunks",
        "Chunks the scrubber found corrupt",
        |s| s.counters.scrub_corrupt,
    ),
    (
        "scrub_missing_chunks",
        "Chunks the scrubber found missing",
        |s| s.counters.scrub_missing,
    ),
    (
        "repairs_queued",
        "Lost copies queued for re-fetching",
        |s| s.counters.repairs_queued,
    ),
    ("repairs_done", "Lost copies restored", |s| {
        s.counters.repairs_done
    }),
    (
        "repairs_failed",
        "Lost copies that could not be restored",
        |s| s.counters.repairs_failed,
    ),
    (
        "store_written_chunks",
        "Chunks written to the store (verified, synced, renamed)",
        |s| s.store.chunks_written,
    ),
    (
        "store_written_bytes",
        "Octets of chunks written to the store (put throughput)",
        |s| s.store.bytes_written,
    ),
    (
        "store_direct_written_chunks",
        "Chunks written around the page cache (O_DIRECT; node.direct_io)",
        |s| s.store.direct_writes,
    ),
    (
        "store_direct_in_place_chunks",
        "Direct writes from the received chunk's own buffer (no copy)",
        |s| s.store.direct_writes_in_place,
    ),
    (
        "chunk_pool_reused",
        "Receive buffers taken again from the pool",
        |s| s.gauges.chunk_pool.reused,
    ),
    (
        "chunk_pool_allocated",
        "Receive buffers allocated (none idle of their size)",
        |s| s.gauges.chunk_pool.allocated,
    ),
    (
        "chunk_pool_evicted",
        "Receive buffers freed on return (the pool at its bound)",
        |s| s.gauges.chunk_pool.evicted,
    ),
    ("store_read_chunks", "Chunks read from the store", |s| {
        s.store.chunks_read
    }),
    (
        "store_direct_read_chunks",
        "Chunks read around the page cache (O_DIRECT; node.direct_io)",
        |s| s.store.direct_reads,
    ),
    (
        "store_corrupt_detected",
        "Corrupt chunk files detected on read",
        |s| s.store.corrupt_detected,
    ),
    (
        "store_corrupt_replaced",
        "Corrupt files replaced by a verified chunk",
        |s| s.store.corrupt_replaced,
    ),
    (
        "store_journaled_chunks",
        "Chunks made durable by a journal record (file fsynced at the next checkpoint)",
        |s| s.store.journaled,
    ),
    (
        "store_journal_full",
        "Chunks that fit a journal record but found the ring full (fsynced directly)",
        |s| s.store.journal_full,
    ),
    (
        "store_journal_checkpoints",
        "Journal checkpoints done (chunk files fsynced, records freed)",
        |s| s.store.journal_checkpoints,
    ),
    (
        "store_quarantine_failures",
        "Corrupt chunks that could not be moved to quarantine/",
        |s| s.store.quarantine_failures,
    ),
];

/// Gauges: name (without `subcast_node_`), help, value.
const GAUGES: &[(&str, &str, Get)] = &[
    (
        "stores_in_flight",
        "Chunks handed to the disk and not yet stored",
        |s| s.counters.stores_in_flight,
    ),
    ("receives", "Chunk receives in progress", |s| {
        s.gauges.receives as u64
    }),
    (
        "receive_buffer_bytes",
        "Octets of receive buffers held",
        |s| s.gauges.receive_buffer_bytes,
    ),
    (
        "chunk_pool_idle_bytes",
        "Octets of idle receive buffers kept for reuse",
        |s| s.gauges.chunk_pool.idle_bytes,
    ),
    ("storing_bytes", "Octets of chunks being written", |s| {
        s.gauges.storing_bytes
    }),
    ("serves", "Fetches being served", |s| s.gauges.serves as u64),
    (
        "serve_buffer_bytes",
        "Octets of chunks held for serving",
        |s| s.gauges.serve_buffer_bytes,
    ),
    ("reads_in_flight", "Disk reads in flight", |s| {
        s.gauges.reads_in_flight as u64
    }),
    (
        "control_queue",
        "Control datagrams queued for sending",
        |s| s.gauges.control_queue as u64,
    ),
    ("actions_queue", "Actions queued for the daemon", |s| {
        s.gauges.actions_queue as u64
    }),
    ("repairs", "Repairs in progress", |s| {
        s.gauges.repairs as u64
    }),
    ("repairs_waiting", "Repairs waiting to start", |s| {
        s.gauges.repairs_waiting as u64
    }),
    (
        "unverified_chunks",
        "Chunks not verified since start",
        |s| s.gauges.unverified_chunks as u64,
    ),
    ("chunks", "Chunks held", |s| s.gauges.chunks as u64),
    (
        "replay_senders",
        "Senders tracked by the replay guard",
        |s| s.replay_senders as u64,
    ),
];

/// Every metric of `s` in the Prometheus text format 0.0.4, or OpenMetrics
/// when `openmetrics`. Every series carries `node` (the node id).
pub fn encode(s: &Snapshot, openmetrics: bool) -> String {
    let labels = [(Cow::Borrowed("node"), Cow::Owned(s.node_id.to_string()))];
    let mut r = Registry::with_prefix_and_labels("subcast_node", labels.into_iter());
    for (name, help, get) in COUNTERS {
        r.register(*name, *help, ConstCounter::new(get(s)));
    }
    let refused = Family::<ReasonLabel, Counter>::default();
    for (reason, n) in &s.counters.refused_by_reason {
        refused
            .get_or_create(&ReasonLabel {
                reason: (*reason).to_owned(),
            })
            .inc_by(*n);
    }
    r.register(
        "refusals",
        "Datagrams and work refused (malformed, unauthenticated, replayed, wrong source; busy, full, too-large), by reason",
        refused,
    );
    for (name, help, get) in GAUGES {
        r.register(
            *name,
            *help,
            ConstGauge::new(i64::try_from(get(s)).unwrap_or(i64::MAX)),
        );
    }
    let mut out = String::new();
    let r = if openmetrics {
        prometheus_client::encoding::text::encode(&mut out, &r)
    } else {
        prometheus_client::encoding::prometheus_text::encode(&mut out, &r)
    };
    if r.is_err() {
        out.clear();
    }
    out
}

/// Serves the latest snapshot at `http://addr/metrics`.
pub async fn serve(
    addr: std::net::SocketAddr,
    shared: Shared,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics address {addr} (is it in use?)"))?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let shared = shared.clone();
            async move {
                let om = headers
                    .get(axum::http::header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.contains("application/openmetrics-text"));
                let snap = shared.lock().map(|s| s.clone()).unwrap_or_default();
                let ct = if om {
                    "application/openmetrics-text; version=1.0.0; charset=utf-8"
                } else {
                    prometheus_client::encoding::prometheus_text::CONTENT_TYPE
                };
                ([(axum::http::header::CONTENT_TYPE, ct)], encode(&snap, om))
            }
        }),
    );
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_end_in_total_and_reasons_are_labels() {
        let mut s = Snapshot {
            node_id: 3,
            ..Default::default()
        };
        s.store.bytes_written = 1234;
        s.store.direct_writes = 7;
        s.counters.refused_by_reason.insert("busy", 2);
        let t = encode(&s, false);
        assert!(
            t.contains("subcast_node_store_written_bytes_total{node=\"3\"} 1234"),
            "{t}"
        );
        assert!(
            t.contains("subcast_node_store_direct_written_chunks_total{node=\"3\"} 7"),
            "{t}"
        );
        assert!(
            t.contains("subcast_node_refusals_total{node=\"3\",reason=\"busy\"} 2"),
            "{t}"
        );
        assert!(t.contains("# TYPE subcast_node_chunks gauge"), "{t}");
        let om = encode(&s, true);
        assert!(om.ends_with("# EOF\n"), "{om}");
    }
}
