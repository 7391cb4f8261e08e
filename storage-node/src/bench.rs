//! `subcast-node bench`: many durable puts from one client process (so
//! process start is not counted), timed one by one, then (unless
//! `--no-verify`) a get of each compared byte for byte (not timed).
//!
//! A put is durable when it returns: every chunk and the version manifest
//! were acknowledged by R targets after their fsync.

use crate::client::Client;
use crate::objects::{self, PutOptions};
use rand::RngCore;
use serde::Serialize;
use std::time::Instant;

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub object_size: usize,
    pub puts: usize,
    pub put: PutOptions,
    pub name_prefix: String,
    pub verify: bool,
}

/// Put latency percentiles in milliseconds.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `ms` (any order).
    pub fn of(ms: &[f64]) -> Percentiles {
        if ms.is_empty() {
            return Percentiles::default();
        }
        let mut v = ms.to_vec();
        v.sort_by(f64::total_cmp);
        let at = |p: f64| {
            let rank = (p / 100.0 * v.len() as f64).ceil() as usize;
            v[rank.clamp(1, v.len()) - 1]
        };
        Percentiles {
            p50: at(50.0),
            p90: at(90.0),
            p99: at(99.0),
            max: v[v.len() - 1],
        }
    }
}

/// The bench's report (`--json` prints it as one object).
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub ok: bool,
    pub puts: usize,
    pub object_size: usize,
    pub transport: &'static str,
    pub put_ms: Percentiles,
    /// The read-back gets (lookup, manifest and chunks fetched, written
    /// to a local file and fsynced), when verifying.
    pub get_ms: Option<Percentiles>,
    /// Payload bytes of all successful puts over the sum of their times.
    pub throughput_mib_s: f64,
    /// Objects read back identical (0 without verification).
    pub verified: usize,
    /// Chunks whose rendezvous group was refused for a full table and
    /// that went by the configured fallback transport instead.
    pub fallbacks: u64,
    /// Client bytes on the wire (IPv6+UDP+Replicast) per payload byte.
    pub wire_bytes_per_payload_byte: f64,
    /// Puts whose object went inside its manifest (`inline_max`).
    pub inline_puts: usize,
    /// Percentiles of each phase of the puts (`lookup`, `data`,
    /// `manifest`, and `data.<phase>`, `manifest.<phase>` of a chunk's put:
    /// bids, grant, ready, transfer, acks), in milliseconds; the `data`
    /// ones over the puts that had data chunks (none when every object
    /// went inside its manifest).
    pub phases_ms: std::collections::BTreeMap<String, Percentiles>,
    pub errors: Vec<String>,
}

/// Runs the bench on `client`.
pub async fn run(client: &mut Client, o: &BenchOptions) -> anyhow::Result<BenchReport> {
    anyhow::ensure!(o.puts >= 1, "--puts must be at least 1");
    let mut rng = rand::rng();
    let run_tag: u32 = rng.next_u32();
    let mut times = Vec::with_capacity(o.puts);
    let mut errors = Vec::new();
    let mut stored: Vec<(String, Vec<u8>)> = Vec::new();
    let mut phases: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    let mut inline_puts = 0;
    let fallbacks_before = client.stats.fallbacks;
    let wire_before = client.stats.wire_bytes_sent;
    for i in 0..o.puts {
        let mut data = vec![0u8; o.object_size];
        rng.fill_bytes(&mut data);
        let name = format!("{}{run_tag:08x}-{i}", o.name_prefix);
        let t0 = Instant::now();
        let r = objects::put_reader(client, &data[..], data.len() as u64, &name, &o.put).await;
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        match r {
            Ok(rep) => {
                times.push(ms);
                let p = &rep.phases;
                let mut add = |k: &str, v: f64| phases.entry(k.to_owned()).or_default().push(v);
                add("lookup", p.lookup);
                add("manifest", p.manifest);
                // An object inside its manifest has no data phases.
                let mut parts = vec![("manifest", &p.manifest_chunk)];
                if rep.inline {
                    inline_puts += 1;
                } else {
                    add("data", p.data);
                    parts.push(("data", &p.data_chunk));
                }
                for (prefix, c) in parts {
                    add(&format!("{prefix}.bids"), c.bids);
                    add(&format!("{prefix}.grant"), c.grant);
                    add(&format!("{prefix}.turn"), c.turn);
                    add(&format!("{prefix}.ready"), c.ready);
                    add(&format!("{prefix}.transfer"), c.transfer);
                    add(&format!("{prefix}.acks"), c.acks);
                }
                if o.verify {
                    stored.push((name, data));
                }
            }
            Err(e) => errors.push(format!("put {i} ({name}): {e:#}")),
        }
    }
    let wire_puts = client.stats.wire_bytes_sent - wire_before;
    let mut verified = 0;
    let mut get_times = Vec::new();
    if o.verify {
        let dir = std::env::temp_dir();
        for (name, data) in &stored {
            let out = dir.join(format!(
                "subcast-bench-{}-{}.out",
                std::process::id(),
                blake3::hash(name.as_bytes()).to_hex()
            ));
            let t0 = Instant::now();
            let got = objects::get_object(client, name, None, &out, true).await;
            get_times.push(t0.elapsed().as_secs_f64() * 1000.0);
            match got {
                Ok(_) => match std::fs::read(&out) {
                    Ok(got) if got == *data => verified += 1,
                    Ok(got) => errors.push(format!(
                        "get {name}: {} bytes read back differ from the {} put",
                        got.len(),
                        data.len()
                    )),
                    Err(e) => errors.push(format!("get {name}: reading {}: {e}", out.display())),
                },
                Err(e) => errors.push(format!("get {name}: {e:#}")),
            }
            let _ = std::fs::remove_file(&out);
        }
    }
    let total_s: f64 = times.iter().sum::<f64>() / 1000.0;
    let payload = (times.len() * o.object_size) as f64;
    Ok(BenchReport {
        ok: errors.is_empty() && times.len() == o.puts && (!o.verify || verified == o.puts),
        puts: o.puts,
        object_size: o.object_size,
        transport: o.put.mode.name(),
        put_ms: Percentiles::of(&times),
        get_ms: (!get_times.is_empty()).then(|| Percentiles::of(&get_times)),
        throughput_mib_s: if total_s > 0.0 {
            payload / (1 << 20) as f64 / total_s
        } else {
            0.0
        },
        verified,
        fallbacks: client.stats.fallbacks - fallbacks_before,
        wire_bytes_per_payload_byte: wire_puts as f64 / (o.puts * o.object_size).max(1) as f64,
        inline_puts,
        phases_ms: phases
            .into_iter()
            .map(|(k, v)| (k, Percentiles::of(&v)))
            .collect(),
        errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=200).map(f64::from).collect();
        let p = Percentiles::of(&v);
        assert_eq!((p.p50, p.p90, p.p99, p.max), (100.0, 180.0, 198.0, 200.0));
        assert_eq!(Percentiles::of(&[3.0]).p99, 3.0);
    }
}
