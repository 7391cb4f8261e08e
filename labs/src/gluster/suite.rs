//! The peer section of a bench: several [`GlusterVolume::bench`] runs on one volume,
//! and a table of them.

use super::bench::{ClientMode, PeerBenchResult};
use super::error::Result;
use super::volume::GlusterVolume;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

/// One run: a client mode, an object size, a number of objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchCase {
    /// FUSE or libgfapi.
    pub mode: ClientMode,
    /// Bytes per object.
    pub object_size: u64,
    /// Objects written.
    pub puts: u64,
}

/// The runs of a peer section, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchPlan {
    /// The runs.
    pub cases: Vec<BenchCase>,
}

impl BenchPlan {
    /// Latency and throughput for both clients and the local-disk baseline:
    /// `small_puts` objects of 256 KiB (put_ms p50/p99) and `large_puts` objects of
    /// 64 MiB (throughput).
    pub fn latency_and_throughput(small_puts: u64, large_puts: u64) -> BenchPlan {
        let mut cases = Vec::new();
        for mode in [ClientMode::LocalDisk, ClientMode::Fuse, ClientMode::Gfapi] {
            cases.push(BenchCase {
                mode,
                object_size: 256 * KIB,
                puts: small_puts,
            });
            cases.push(BenchCase {
                mode,
                object_size: 64 * MIB,
                puts: large_puts,
            });
        }
        BenchPlan { cases }
    }

    /// The full section: 200 x 256 KiB and 5 x 64 MiB per client (and baseline).
    pub fn standard() -> BenchPlan {
        BenchPlan::latency_and_throughput(200, 5)
    }
}

/// Run every case of `plan` on `vol`, in order.
pub fn run_plan(vol: &mut GlusterVolume<'_>, plan: &BenchPlan) -> Result<Vec<PeerBenchResult>> {
    plan.cases
        .iter()
        .map(|c| vol.bench(c.mode, c.object_size, c.puts))
        .collect()
}

fn size(bytes: u64) -> String {
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} B")
    }
}

/// A text table: one line per run.
pub fn table(results: &[PeerBenchResult]) -> String {
    let mut s = format!(
        "{:<16} {:>8} {:>5} {:>9} {:>9} {:>9} {:>9} {:>10} {:>12} {:>10} {:>3}\n",
        "peer",
        "object",
        "puts",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "MiB/s",
        "egress/byte",
        "non-target",
        "ok"
    );
    for r in results {
        s.push_str(&format!(
            "{:<16} {:>8} {:>5} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>10.1} {:>12.3} {:>10} {:>3}\n",
            r.peer,
            size(r.object_size),
            r.puts,
            r.put_ms.p50,
            r.put_ms.p90,
            r.put_ms.p99,
            r.put_ms.max,
            r.throughput_mib_s,
            r.sender_egress_per_payload_byte,
            r.bytes_at_non_targets
                .map_or_else(|| "-".to_string(), |b| b.to_string()),
            if r.ok { "yes" } else { "NO" }
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_plan_and_table() {
        let p = BenchPlan::standard();
        assert_eq!(p.cases.len(), 6);
        assert_eq!(p.cases[0].mode, ClientMode::LocalDisk);
        assert_eq!(p.cases[0].object_size, 256 * KIB);
        assert_eq!(p.cases[0].puts, 200);
        assert_eq!(p.cases[5].mode, ClientMode::Gfapi);
        assert_eq!(p.cases[5].object_size, 64 * MIB);
        let r = PeerBenchResult::from_measurements(
            ClientMode::Fuse,
            256 * KIB,
            &[5_000_000, 6_000_000],
            crate::gluster::bench::WireBytes {
                sender_egress: 1_600_000,
                received: 1_600_000,
                at_non_targets: Some(0),
            },
            Vec::new(),
            2,
        );
        let t = table(&[r]);
        let line = t.lines().nth(1).unwrap();
        assert!(line.starts_with("glusterfs "), "{t}");
        assert!(line.contains("256 KiB") && line.contains("yes"), "{t}");
        assert_eq!(size(64 * MIB), "64 MiB");
        assert_eq!(size(1000), "1000 B");
    }
}
