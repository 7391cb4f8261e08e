//! Measuring the peer as subcast's `put-bench` measures subcast: durable write time
//! per object (create + write + fsync + close, timed inside the client, process
//! start and connection setup not timed), throughput over those times, and the
//! sender's bytes on the wire per payload byte (interface counters of the client's
//! namespace, read outside every process, TSO/GSO off); then every object read back
//! and compared (not timed, not counted).

use serde::{Deserialize, Serialize};

/// How the client reaches the volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientMode {
    /// The kernel FUSE mount (`glusterfs` client process), plain syscalls.
    Fuse,
    /// libgfapi in the client process (no kernel in the data path).
    Gfapi,
    /// Not a peer: the baseline. The same client program writing to a directory on
    /// the client host's local filesystem (no network), to compare the peer with
    /// what this machine does at the same moment.
    LocalDisk,
}

impl ClientMode {
    /// The `--peer` name: `glusterfs` (FUSE) or `glusterfs-gfapi`; `local-disk`
    /// for the baseline.
    pub fn peer_name(self) -> &'static str {
        match self {
            ClientMode::Fuse => "glusterfs",
            ClientMode::Gfapi => "glusterfs-gfapi",
            ClientMode::LocalDisk => "local-disk",
        }
    }

    /// Parse a `--peer` name.
    pub fn from_peer_name(name: &str) -> Option<ClientMode> {
        match name {
            "glusterfs" | "glusterfs-fuse" => Some(ClientMode::Fuse),
            "glusterfs-gfapi" => Some(ClientMode::Gfapi),
            _ => None,
        }
    }
}

/// Percentiles of the per-object durable write time, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PutMs {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
}

impl PutMs {
    /// Nearest-rank percentiles of `samples` (milliseconds); zeros when empty.
    pub fn of(samples: &[f64]) -> PutMs {
        let mut v: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return PutMs::default();
        }
        v.sort_by(f64::total_cmp);
        PutMs {
            p50: nearest_rank(&v, 50.0),
            p90: nearest_rank(&v, 90.0),
            p99: nearest_rank(&v, 99.0),
            max: v[v.len() - 1],
        }
    }
}

/// Nearest-rank percentile of sorted, non-empty `v`.
fn nearest_rank(v: &[f64], p: f64) -> f64 {
    let n = v.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    v[rank.clamp(1, n) - 1]
}

/// One peer bench run. The field names are those of subcast's `put-bench --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerBenchResult {
    /// `glusterfs` or `glusterfs-gfapi`.
    pub peer: String,
    /// Every object written, and read back identical.
    pub ok: bool,
    /// Objects written.
    pub puts: u64,
    /// Bytes per object.
    pub object_size: u64,
    /// Durable write time per object (create + write + fsync + close).
    pub put_ms: PutMs,
    /// Payload bytes over the sum of the durable write times, in MiB/s.
    pub throughput_mib_s: f64,
    /// Bytes the client host sent (its `eth0` counters, all traffic) during the writes.
    pub sender_egress_bytes: u64,
    /// `sender_egress_bytes` over the payload bytes.
    pub sender_egress_per_payload_byte: f64,
    /// Bytes that arrived at every host but the client during the writes, over the
    /// payload bytes (the servers' R copies, headers and protocol included).
    #[serde(default)]
    pub received_per_payload_byte: f64,
    /// Bytes that arrived at hosts that are neither a server nor the client during
    /// the writes (`None` when the topology has no such host).
    pub bytes_at_non_targets: Option<u64>,
    /// Every object read back and compared equal.
    pub verified: bool,
    /// Objects whose read-back differed (names), empty when verified.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bad_objects: Vec<String>,
}

/// Bytes counted on the interfaces during the writes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct WireBytes {
    /// Sent by the client.
    pub sender_egress: u64,
    /// Received by every other host.
    pub received: u64,
    /// Received by hosts that are neither a server nor the client (`None`: no such host).
    pub at_non_targets: Option<u64>,
}

impl PeerBenchResult {
    /// Build from the client's per-object times (nanoseconds) and the counters.
    pub(crate) fn from_measurements(
        mode: ClientMode,
        object_size: u64,
        put_ns: &[u64],
        wire: WireBytes,
        bad_objects: Vec<String>,
        expected_puts: u64,
    ) -> PeerBenchResult {
        let WireBytes {
            sender_egress: sender_egress_bytes,
            received: received_bytes,
            at_non_targets: bytes_at_non_targets,
        } = wire;
        let ms: Vec<f64> = put_ns.iter().map(|&n| n as f64 / 1e6).collect();
        let puts = put_ns.len() as u64;
        let payload = puts * object_size;
        let secs: f64 = ms.iter().sum::<f64>() / 1000.0;
        let throughput_mib_s = if secs > 0.0 {
            payload as f64 / (1024.0 * 1024.0) / secs
        } else {
            0.0
        };
        let per_payload_byte = |b: u64| {
            if payload > 0 {
                b as f64 / payload as f64
            } else {
                0.0
            }
        };
        let verified = bad_objects.is_empty() && puts == expected_puts;
        PeerBenchResult {
            peer: mode.peer_name().to_string(),
            ok: verified && puts > 0,
            puts,
            object_size,
            put_ms: PutMs::of(&ms),
            throughput_mib_s,
            sender_egress_bytes,
            sender_egress_per_payload_byte: per_payload_byte(sender_egress_bytes),
            received_per_payload_byte: per_payload_byte(received_bytes),
            bytes_at_non_targets,
            verified,
            bad_objects,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=200).map(f64::from).collect();
        let p = PutMs::of(&v);
        assert_eq!((p.p50, p.p90, p.p99, p.max), (100.0, 180.0, 198.0, 200.0));
        let one = PutMs::of(&[7.0]);
        assert_eq!((one.p50, one.p99, one.max), (7.0, 7.0, 7.0));
        assert_eq!(PutMs::of(&[]), PutMs::default());
    }

    #[test]
    fn json_has_put_bench_field_names() {
        let r = PeerBenchResult::from_measurements(
            ClientMode::Gfapi,
            1 << 20,
            &[1_000_000_000, 1_000_000_000],
            WireBytes {
                sender_egress: 6 << 20,
                received: 7 << 20,
                at_non_targets: Some(0),
            },
            Vec::new(),
            2,
        );
        let v = serde_json::to_value(&r).unwrap();
        for k in [
            "ok",
            "puts",
            "put_ms",
            "throughput_mib_s",
            "sender_egress_per_payload_byte",
            "bytes_at_non_targets",
            "verified",
        ] {
            assert!(v.get(k).is_some(), "missing {k} in {v}");
        }
        for k in ["p50", "p90", "p99", "max"] {
            assert!(v["put_ms"].get(k).is_some(), "missing put_ms.{k}");
        }
        assert_eq!(v["peer"], "glusterfs-gfapi");
        assert_eq!(v["ok"], true);
        assert_eq!(v["throughput_mib_s"], 1.0);
        assert_eq!(v["sender_egress_per_payload_byte"], 3.0);
        assert_eq!(v["received_per_payload_byte"], 3.5);
        assert_eq!(v["put_ms"]["p50"], 1000.0);
        assert!(v.get("bad_objects").is_none());
        let back: PeerBenchResult = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }

    fn wire30() -> WireBytes {
        WireBytes {
            sender_egress: 30,
            received: 30,
            at_non_targets: None,
        }
    }

    #[test]
    fn short_or_bad_runs_are_not_ok() {
        let short =
            PeerBenchResult::from_measurements(ClientMode::Fuse, 10, &[5], wire30(), vec![], 2);
        assert!(!short.ok && !short.verified);
        let bad = PeerBenchResult::from_measurements(
            ClientMode::Fuse,
            10,
            &[5],
            wire30(),
            vec!["obj-0".into()],
            1,
        );
        assert!(!bad.ok);
        assert_eq!(
            serde_json::to_value(&bad).unwrap()["bad_objects"][0],
            "obj-0"
        );
        assert_eq!(
            ClientMode::from_peer_name("glusterfs"),
            Some(ClientMode::Fuse)
        );
        assert_eq!(
            ClientMode::from_peer_name("glusterfs-gfapi").map(ClientMode::peer_name),
            Some("glusterfs-gfapi")
        );
        assert_eq!(ClientMode::from_peer_name("ceph"), None);
    }
}
