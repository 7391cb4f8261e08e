//! put-bench against a peer: `run TOPOLOGY --scenario put-bench --peer
//! glusterfs|glusterfs-gfapi` measures a GlusterFS replica-3 volume on the hosts
//! subcast's put-bench uses (the client on the writer, a server on each of the
//! first three hosts that would run storage nodes), with put-bench's JSON fields.
//!
//! Also the peer section of `subcast-lab bench` ([`bench_part`], `--peer-only`):
//! subcast (rendezvous, ng-multicast, unicast) and GlusterFS (FUSE, libgfapi) in
//! the same lab, unshaped and with every link shaped, against the targets.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use labs::gluster::{self, ClientMode, GlusterOptions, GlusterVolume, PeerBenchResult};
use labs::{Lab, LabOptions, Topology};
use serde_json::{Value, json};

use crate::bins::Locate;
use crate::putbench::{Cell, Transport, cell as subcast_cell, choose_writers, start_nodes};
use crate::scenario::{RunOptions, Running, bring_up};

/// Replicas of the peer's volume (subcast's lab config has `replicas: 3`).
pub(crate) const REPLICAS: usize = 3;

/// `--peer`: what to measure instead of subcast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Peer {
    /// GlusterFS replica 3 through its FUSE client (`glusterfs` mount).
    Glusterfs,
    /// GlusterFS replica 3 through libgfapi in the client process.
    GlusterfsGfapi,
}

impl Peer {
    pub fn mode(self) -> ClientMode {
        match self {
            Peer::Glusterfs => ClientMode::Fuse,
            Peer::GlusterfsGfapi => ClientMode::Gfapi,
        }
    }
}

/// The hosts that run storage nodes when `writers` write (as `start_nodes`
/// picks them: every negotiating-group member that is not a writer, by name).
pub fn storage_hosts(topo: &Topology, writers: &[String]) -> Vec<String> {
    let mut hosts: Vec<String> = topo
        .negotiating_groups
        .values()
        .flat_map(|g| g.members.iter().cloned())
        .filter(|h| !writers.contains(h))
        .collect();
    hosts.sort();
    hosts.dedup();
    hosts
}

/// The GlusterFS servers (and the floor's targets): the first [`REPLICAS`]
/// storage hosts, fewer when the topology has fewer.
pub fn glusterfs_servers(topo: &Topology, writers: &[String]) -> Vec<String> {
    storage_hosts(topo, writers)
        .into_iter()
        .take(REPLICAS)
        .collect()
}

/// A replica-3 volume on the first three storage hosts, its client on `writer`.
pub(crate) fn volume<'l>(lab: &'l Lab, writer: &str) -> Result<(GlusterVolume<'l>, Vec<String>)> {
    let writers = [writer.to_string()];
    let servers = glusterfs_servers(lab.topology(), &writers);
    if servers.len() < REPLICAS {
        bail!(
            "the topology has {} negotiating-group members besides the writer {writer}; \
             GlusterFS replica {REPLICAS} needs {REPLICAS}",
            servers.len()
        );
    }
    let names: Vec<&str> = servers.iter().map(String::as_str).collect();
    let vol = GlusterVolume::build(lab, &names, writer, GlusterOptions::default())
        .context("building the GlusterFS volume")?;
    Ok((vol, servers))
}

/// A JSON number, or null for NaN.
pub(crate) fn num(x: f64) -> Value {
    if x.is_finite() { json!(x) } else { Value::Null }
}

/// One peer run as put-bench's JSON (the fields of `putbench::cell`, where they
/// mean something for the peer).
pub fn peer_json(r: &PeerBenchResult, writer: &str, servers: &[String]) -> Value {
    let payload = r.puts * r.object_size;
    let verified = if r.verified {
        r.puts
    } else {
        r.puts.saturating_sub(r.bad_objects.len() as u64)
    };
    let errors: Vec<String> = r
        .bad_objects
        .iter()
        .map(|b| format!("{writer}: {b} read back different"))
        .collect();
    json!({
        "ok": r.ok,
        "peer": r.peer,
        "transport": r.peer,
        "object_size": r.object_size,
        "puts": r.puts,
        "puts_total": r.puts,
        "verified": verified,
        "writers": 1,
        "writer_hosts": [writer],
        "storage_nodes": servers,
        "replicas": servers.len(),
        "put_ms": {"p50": num(r.put_ms.p50), "p90": num(r.put_ms.p90),
                   "p99": num(r.put_ms.p99), "max": num(r.put_ms.max)},
        "put_ms_means": "nearest-rank percentiles of the durable write time of each object (create + write in 1 MiB calls + fsync + close), timed in the client; process start and volume connection not timed",
        "throughput_mib_s": r.throughput_mib_s,
        "throughput_means": "payload MiB / the sum of the durable write times",
        "payload_bytes": payload,
        "sender_egress_bytes": r.sender_egress_bytes,
        "sender_egress_per_payload_byte": r.sender_egress_per_payload_byte,
        "received_per_payload_byte": r.received_per_payload_byte,
        "bytes_at_non_targets": r.bytes_at_non_targets,
        "bytes_mean": "Ethernet frame bytes from /proc/net/dev of each host's eth0, read from outside the GlusterFS processes around the writes only (the read-back is not counted); TSO/GSO off on the client; received = rx at every host but the client; bytes_at_non_targets = rx at hosts that are neither the client nor a server",
        "bad_objects": r.bad_objects,
        "errors": errors,
    })
}

/// `run --scenario put-bench --peer P`: a lab (as put-bench builds it, no subcast
/// daemons), the volume, one bench, teardown.
pub fn run(opts: &RunOptions, peer: Peer) -> Result<Value> {
    let a = &opts.put_bench;
    if a.writers != 1 {
        bail!(
            "--peer runs one GlusterFS client on one writer host: drop --writers {}",
            a.writers
        );
    }
    if a.puts == 0 {
        bail!("--puts must be at least 1");
    }
    gluster::check_installed().map_err(|e| anyhow!("{e}"))?;
    if !labs::lab_tests_enabled() {
        bail!("a lab needs root and iproute2 (run as root, apt-get install iproute2)");
    }
    let topo = Topology::from_yaml_file(&opts.topology)?;
    let name = opts.topology.display().to_string();
    let writer = choose_writers(&topo, &name, 1)?.remove(0);
    let t0 = Instant::now();
    let lab = Lab::build(
        &topo,
        LabOptions {
            close_mld: true,
            static_negotiating_groups: true,
            ..LabOptions::default()
        },
    )
    .context("building the lab")?;
    let lab_up_ms = t0.elapsed().as_millis();
    let t1 = Instant::now();
    let (mut vol, servers) = volume(&lab, &writer)?;
    let volume_up_ms = t1.elapsed().as_millis();
    let bench = vol.bench(peer.mode(), opts.object_size as u64, a.puts as u64);
    let left = vol.teardown();
    drop(vol);
    drop(lab);
    let r = bench.context("the GlusterFS bench")?;
    let mut v = peer_json(&r, &writer, &servers);
    v["ok"] = json!(r.ok && left.is_empty());
    v["scenario"] = json!("put-bench");
    v["topology"] = json!(name);
    v["lab_up_ms"] = json!(lab_up_ms);
    v["volume_up_ms"] = json!(volume_up_ms);
    v["teardown_leftovers"] = json!(left);
    Ok(v)
}

/// The text report of `run --peer` (without `--json`).
pub fn render_run(v: &Value) -> String {
    let f = |x: &Value| x.as_f64().unwrap_or(f64::NAN);
    let mut o = String::new();
    let _ = writeln!(
        o,
        "put-bench --peer {} on {}: client {}, servers {} (replica {})",
        v["peer"].as_str().unwrap_or("?"),
        v["topology"].as_str().unwrap_or("?"),
        v["writer_hosts"],
        v["storage_nodes"],
        v["replicas"]
    );
    let _ = writeln!(
        o,
        "  {} objects of {} bytes, {} read back identical: put_ms p50 {:.2} p90 {:.2} p99 {:.2} max {:.2}; {:.1} MiB/s",
        v["puts"],
        v["object_size"],
        v["verified"],
        f(&v["put_ms"]["p50"]),
        f(&v["put_ms"]["p90"]),
        f(&v["put_ms"]["p99"]),
        f(&v["put_ms"]["max"]),
        f(&v["throughput_mib_s"])
    );
    let _ = writeln!(
        o,
        "  client egress {:.3} bytes per payload byte, received {:.3}, at non-targets {} bytes",
        f(&v["sender_egress_per_payload_byte"]),
        f(&v["received_per_payload_byte"]),
        v["bytes_at_non_targets"]
    );
    for e in v["errors"].as_array().into_iter().flatten() {
        let _ = writeln!(o, "  error: {}", e.as_str().unwrap_or(""));
    }
    let _ = writeln!(o, "ok: {}", v["ok"] == true);
    o
}

/// What the peer section runs.
#[derive(Debug, Clone)]
pub struct PeerPlan {
    /// 256 KiB objects per system (latency).
    pub small_puts: usize,
    /// 64 MiB objects per system (throughput).
    pub big_puts: usize,
    /// `rate_mbit` of every link in the shaped lab.
    pub rate_mbit: f64,
    /// Alternating blocks per lab (`--peer-blocks`; 1: every system once, in
    /// table order; see `putbench_paired`).
    pub blocks: usize,
}

impl Default for PeerPlan {
    fn default() -> Self {
        PeerPlan {
            small_puts: 100,
            big_puts: 3,
            rate_mbit: 200.0,
            blocks: 1,
        }
    }
}

pub(crate) const SMALL: usize = 256 << 10;
pub(crate) const BIG: usize = 64 << 20;
pub(crate) const TRANSPORTS: [Transport; 3] = [
    Transport::Rendezvous,
    Transport::NgMulticast,
    Transport::Unicast,
];

/// The GlusterFS clients compared.
pub(crate) const PEERS: [Peer; 2] = [Peer::Glusterfs, Peer::GlusterfsGfapi];

/// The systems compared, in table order: (name, subcast transport or peer).
pub const SYSTEMS: [&str; 5] = [
    "rendezvous",
    "ng-multicast",
    "unicast",
    "glusterfs",
    "glusterfs-gfapi",
];

pub(crate) fn failed(system: &str, size: usize, puts: usize, e: &anyhow::Error) -> Value {
    json!({"ok": false, "system": system, "object_size": size, "puts": puts,
           "errors": [format!("{e:#}")]})
}

/// One writer's put-bench of `puts` objects of `size` over `t`, at the
/// topology's rate: its report, or a failed row.
pub(crate) fn subcast_row(
    r: &Running,
    writers: &[String],
    t: Transport,
    size: usize,
    puts: usize,
) -> Value {
    let c = Cell {
        object_size: size,
        puts,
        transport: t,
        writers: 1,
        rate_mbps: None,
    };
    subcast_cell(r, writers, &c).unwrap_or_else(|e| failed(t.name(), size, puts, &e))
}

/// Every system on one lab (`topo`): subcast's cells, then the volume's (with
/// `plan.blocks` > 1, in alternating blocks: `putbench_paired::blocks`).
fn one_lab(topo: &Topology, name: &str, locate: &Locate, plan: &PeerPlan) -> Result<Vec<Value>> {
    let writers = choose_writers(topo, name, 1)?;
    let mut r = bring_up(topo, locate)?;
    let out = (|| -> Result<Vec<Value>> {
        start_nodes(&mut r, &writers)?;
        if plan.blocks > 1 {
            return Ok(crate::putbench_paired::blocks(&r, &writers, plan));
        }
        let mut rows = Vec::new();
        for t in TRANSPORTS {
            for (size, puts) in [(SMALL, plan.small_puts), (BIG, plan.big_puts)] {
                eprintln!("subcast-lab bench (peer): {} {size} x {puts}", t.name());
                let mut v = subcast_row(&r, &writers, t, size, puts);
                v["system"] = json!(t.name());
                rows.push(v);
            }
        }
        peer_rows(&r, &writers[0], plan, &mut rows);
        let servers = glusterfs_servers(topo, &writers);
        let samples = plan.small_puts.max(50);
        rows.push(crate::floor::peer_row(
            &r.lab,
            &writers[0],
            &servers,
            samples,
            None,
        ));
        Ok(rows)
    })();
    let Running { lab, stack, .. } = r;
    stack.stop();
    drop(lab);
    out
}

/// The GlusterFS rows on a running lab (its storage nodes idle meanwhile).
fn peer_rows(r: &Running, writer: &str, plan: &PeerPlan, rows: &mut Vec<Value>) {
    let mut vol = PeerVolume::build(&r.lab, writer);
    for p in PEERS {
        for (size, puts) in [(SMALL, plan.small_puts), (BIG, plan.big_puts)] {
            eprintln!(
                "subcast-lab bench (peer): {} {size} x {puts}",
                p.mode().peer_name()
            );
            rows.push(vol.row(p, size, puts));
        }
    }
    vol.teardown();
}

/// The lab's GlusterFS volume for the peer rows, built with one retry (a fresh
/// volume; the failed one is torn down on drop): a busy machine once failed
/// `volume create`. The first error is said in every row of a volume built at
/// the second try.
pub(crate) struct PeerVolume<'l> {
    built: std::result::Result<(GlusterVolume<'l>, Vec<String>), String>,
    first_error: Option<String>,
    writer: String,
}

impl<'l> PeerVolume<'l> {
    pub(crate) fn build(lab: &'l Lab, writer: &str) -> Self {
        let mut first_error = None;
        let built = volume(lab, writer)
            .or_else(|e| {
                eprintln!(
                    "subcast-lab bench (peer): GlusterFS volume build failed, once more: {e:#}"
                );
                first_error = Some(format!("{e:#}"));
                volume(lab, writer)
            })
            .map_err(|e| format!("{e:#}"));
        PeerVolume {
            built,
            first_error,
            writer: writer.to_string(),
        }
    }

    /// `puts` objects of `size` through `p`'s client: put-bench's row for it
    /// (`system` set), or a failed row.
    pub(crate) fn row(&mut self, p: Peer, size: usize, puts: usize) -> Value {
        let name = p.mode().peer_name();
        let mut v = match &mut self.built {
            Ok((vol, servers)) => {
                let mut v = vol
                    .bench(p.mode(), size as u64, puts as u64)
                    .map(|res| peer_json(&res, &self.writer, servers))
                    .unwrap_or_else(|e| failed(name, size, puts, &anyhow!(e)));
                if let Some(e) = &self.first_error {
                    v["volume_first_build_error"] = json!(e);
                }
                v
            }
            Err(e) => failed(name, size, puts, &anyhow!("{e}")),
        };
        v["system"] = json!(name);
        v
    }

    pub(crate) fn teardown(self) {
        if let Ok((mut vol, _)) = self.built {
            let left = vol.teardown();
            if !left.is_empty() {
                tracing::warn!(?left, "GlusterFS peer left something behind");
            }
        }
    }
}

/// The row of `system` for objects of `size` in `rows`.
fn row<'a>(rows: &'a [Value], system: &str, size: usize) -> Option<&'a Value> {
    rows.iter()
        .find(|r| r["system"] == system && r["object_size"].as_u64() == Some(size as u64))
}

/// One line per system: 256 KiB p50/p99, 64 MiB MiB/s and bytes.
pub(crate) fn summary(rows: &[Value]) -> Value {
    let mut m = serde_json::Map::new();
    for s in SYSTEMS {
        let (small, big) = (row(rows, s, SMALL), row(rows, s, BIG));
        let g = |r: Option<&Value>, k: &str| r.map_or(Value::Null, |r| r[k].clone());
        let ok = small.is_some_and(|r| r["ok"] == true) && big.is_some_and(|r| r["ok"] == true);
        let non_target: Option<u64> = [small, big]
            .iter()
            .map(|r| r.and_then(|r| r["bytes_at_non_targets"].as_u64()))
            .sum();
        m.insert(
            s.to_string(),
            json!({
                "ok": ok,
                "put_256k_p50_ms": small.map_or(Value::Null, |r| r["put_ms"]["p50"].clone()),
                "put_256k_p99_ms": small.map_or(Value::Null, |r| r["put_ms"]["p99"].clone()),
                "throughput_64m_mib_s": g(big, "throughput_mib_s"),
                "sender_egress_per_payload_byte": g(big, "sender_egress_per_payload_byte"),
                "sender_egress_per_payload_byte_256k": g(small, "sender_egress_per_payload_byte"),
                "received_per_payload_byte": g(big, "received_per_payload_byte"),
                "bytes_at_non_targets": non_target,
            }),
        );
    }
    Value::Object(m)
}

fn get(s: &Value, system: &str, k: &str) -> f64 {
    s[system][k].as_f64().unwrap_or(f64::NAN)
}

/// Whether `ratio` meets `threshold` (at most it, or at least it); never for NaN.
pub(crate) fn meets(ratio: f64, threshold: f64, at_most: bool) -> bool {
    ratio.is_finite()
        && if at_most {
            ratio <= threshold
        } else {
            ratio >= threshold
        }
}

/// The targets for rendezvous, as ratios to GlusterFS in the same run.
pub(crate) fn targets(unshaped: &Value, shaped: &Value) -> Value {
    // `paired`: a time, judged on the median of block ratios with --peer-blocks;
    // a count of bytes is pooled over the blocks instead.
    let t = |what: &str,
             (sub, gl): (f64, f64),
             peer: &str,
             target: f64,
             at_most: bool,
             paired: bool| {
        let shown = if (target - 1.0 / 3.0).abs() < 1e-12 {
            "1/3".to_string()
        } else {
            target.to_string()
        };
        let ratio = sub / gl;
        json!({"what": what, "subcast": num(sub), "glusterfs": num(gl), "glusterfs_client": peer,
               "ratio": num(ratio), "target": format!("{} {shown}", if at_most {"<="} else {">="}),
               "threshold": target, "at_most": at_most, "paired": paired,
               "met": meets(ratio, target, at_most)})
    };
    let best = |s: &Value, k: &str, lower: bool| -> (f64, &'static str) {
        let (f, g) = (get(s, "glusterfs", k), get(s, "glusterfs-gfapi", k));
        let fuse_wins = if lower {
            f <= g || g.is_nan()
        } else {
            f >= g || g.is_nan()
        };
        if fuse_wins {
            (f, "glusterfs")
        } else {
            (g, "glusterfs-gfapi")
        }
    };
    let p50 = best(unshaped, "put_256k_p50_ms", true);
    let thr_shaped = best(shaped, "throughput_64m_mib_s", false);
    let eg = best(unshaped, "sender_egress_per_payload_byte", true);
    json!([
        t(
            "256 KiB put p50 (unshaped)",
            (get(unshaped, "rendezvous", "put_256k_p50_ms"), p50.0),
            p50.1,
            0.5,
            true,
            true
        ),
        t(
            "64 MiB throughput (unshaped) vs libgfapi",
            (
                get(unshaped, "rendezvous", "throughput_64m_mib_s"),
                get(unshaped, "glusterfs-gfapi", "throughput_64m_mib_s")
            ),
            "glusterfs-gfapi",
            1.1,
            false,
            true
        ),
        t(
            "64 MiB throughput (shaped)",
            (
                get(shaped, "rendezvous", "throughput_64m_mib_s"),
                thr_shaped.0
            ),
            thr_shaped.1,
            3.0,
            false,
            true
        ),
        t(
            "sender bytes per payload byte (64 MiB, unshaped)",
            (
                get(unshaped, "rendezvous", "sender_egress_per_payload_byte"),
                eg.0
            ),
            eg.1,
            1.0 / 3.0,
            true,
            false
        ),
    ])
}

/// A shaped copy of `topo`: every link at `rate_mbit`, host and link overrides
/// removed.
pub fn shaped(topo: &Topology, rate_mbit: f64) -> Topology {
    let mut t = topo.clone();
    t.rate_mbit = Some(rate_mbit);
    for h in t.hosts.values_mut() {
        h.rate_mbit = None;
    }
    for l in &mut t.links {
        l.rate_mbit = None;
    }
    t
}

/// The peer section of `subcast-lab bench`: every system on the topology as it is,
/// then on a shaped copy of it (written to `out` as `peer-shaped-topology.yaml`).
pub fn bench_part(topology: &Path, locate: &Locate, out: &Path, plan: &PeerPlan) -> Result<Value> {
    gluster::check_installed().map_err(|e| anyhow!("{e}"))?;
    let topo = Topology::from_yaml_file(topology)?;
    let name = topology.display().to_string();
    let sh = shaped(&topo, plan.rate_mbit);
    sh.validate()?;
    std::fs::create_dir_all(out)?;
    let sh_path = out.join("peer-shaped-topology.yaml");
    let yaml = serde_saphyr::to_string(&sh).map_err(|e| anyhow!("{e}"))?;
    std::fs::write(&sh_path, yaml)?;
    let writers = choose_writers(&topo, &name, 1)?;
    let t0 = Instant::now();
    let mut labs_out = serde_json::Map::new();
    let paired = plan.blocks > 1;
    for (label, t) in [("unshaped", &topo), ("shaped", &sh)] {
        eprintln!("subcast-lab bench (peer): {label} lab");
        let rows = one_lab(t, &name, locate, plan).unwrap_or_else(|e| {
            let e = &e;
            (0..plan.blocks)
                .flat_map(|b| {
                    SYSTEMS.iter().map(move |s| {
                        let mut v = failed(s, 0, 0, e);
                        v["block"] = json!(b);
                        v
                    })
                })
                .collect::<Vec<_>>()
        });
        let lab = if paired {
            crate::putbench_paired::lab_report(rows, plan.blocks)
        } else {
            let (floor, rows): (Vec<Value>, Vec<Value>) =
                rows.into_iter().partition(|r| r["system"] == "floor");
            json!({"summary": summary(&rows), "floor": crate::floor::report(floor), "rows": rows})
        };
        labs_out.insert(label.to_string(), lab);
    }
    let mut targets = if paired {
        crate::putbench_paired::targets(&labs_out["unshaped"], &labs_out["shaped"], plan.blocks)
    } else {
        targets(
            &labs_out["unshaped"]["summary"],
            &labs_out["shaped"]["summary"],
        )
    };
    crate::floor::annotate_targets(
        &mut targets,
        &labs_out["unshaped"]["floor"],
        &labs_out["shaped"]["floor"],
    );
    let servers = glusterfs_servers(&topo, &writers);
    Ok(json!({
        "topology": name,
        "shaped_topology": sh_path.display().to_string(),
        "rate_mbit": plan.rate_mbit,
        "writer": writers[0],
        "storage_nodes": storage_hosts(&topo, &writers),
        "glusterfs_servers": servers,
        "small_puts": plan.small_puts,
        "big_puts": plan.big_puts,
        "blocks": plan.blocks,
        "block_order": if paired { "alternating: the systems in table order in even blocks, reversed in odd ones; each ratio taken inside a block, the verdict on their median" } else { "one block: the systems one after the other in table order" },
        "seconds": t0.elapsed().as_secs_f64(),
        "unshaped": labs_out["unshaped"],
        "shaped": labs_out["shaped"],
        "targets": targets,
    }))
}

/// The peer table.
pub fn render(v: &Value, o: &mut String) {
    let f = |x: &Value| x.as_f64().unwrap_or(f64::NAN);
    let _ = writeln!(
        o,
        "\n(g) subcast against GlusterFS replica 3 on {} (writer/client {}, storage nodes {}, GlusterFS servers {}; {} x 256 KiB, {} x 64 MiB)",
        v["topology"].as_str().unwrap_or(""),
        v["writer"].as_str().unwrap_or(""),
        v["storage_nodes"],
        v["glusterfs_servers"],
        v["small_puts"],
        v["big_puts"]
    );
    if v["blocks"].as_u64().is_some_and(|b| b > 1) {
        let _ = writeln!(
            o,
            "  in {} alternating blocks (systems in table order, then reversed; each number below is the median over the blocks)",
            v["blocks"]
        );
    }
    let _ = writeln!(
        o,
        "  p50/p99: 256 KiB durable put, ms; MiB/s: 64 MiB; egress / recv: bytes on the writer's \
         wire / arriving at every other host, per payload byte (64 MiB); non-target: bytes at \
         hosts with no part (both sizes; -: no such host)"
    );
    let _ = writeln!(
        o,
        "  {:<10} {:<16} {:>9} {:>9} {:>9} {:>8} {:>8} {:>11} {:>4}",
        "links", "system", "p50 ms", "p99 ms", "MiB/s", "egress", "recv", "non-target", "ok"
    );
    for (label, links) in [
        ("unshaped", "unshaped".to_string()),
        ("shaped", format!("{} Mbit", v["rate_mbit"])),
    ] {
        let s = &v[label]["summary"];
        for sys in SYSTEMS {
            let r = &s[sys];
            let _ = writeln!(
                o,
                "  {:<10} {:<16} {:>9.1} {:>9.1} {:>9.1} {:>8.3} {:>8.3} {:>11} {:>4}",
                links,
                sys,
                f(&r["put_256k_p50_ms"]),
                f(&r["put_256k_p99_ms"]),
                f(&r["throughput_64m_mib_s"]),
                f(&r["sender_egress_per_payload_byte"]),
                f(&r["received_per_payload_byte"]),
                r["bytes_at_non_targets"]
                    .as_u64()
                    .map_or("-".to_string(), |b| b.to_string()),
                if r["ok"] == true { "yes" } else { "NO" }
            );
        }
        crate::floor::render_line(&v[label]["floor"], &links, o);
        for row in v[label]["rows"].as_array().into_iter().flatten() {
            for e in row["errors"].as_array().into_iter().flatten().take(2) {
                let _ = writeln!(
                    o,
                    "      {} error: {}",
                    row["system"].as_str().unwrap_or(""),
                    e.as_str().unwrap_or("")
                );
            }
        }
    }
    let _ = writeln!(o, "  targets for rendezvous (ratio = subcast / GlusterFS):");
    for t in v["targets"].as_array().into_iter().flatten() {
        let _ = writeln!(
            o,
            "    {:<50} {:>9.3} / {:>9.3} ({}) = {:>6.3}, target {}: {}",
            t["what"].as_str().unwrap_or(""),
            f(&t["subcast"]),
            f(&t["glusterfs"]),
            t["glusterfs_client"].as_str().unwrap_or(""),
            f(&t["ratio"]),
            t["target"].as_str().unwrap_or(""),
            if t["met"] == true { "met" } else { "NOT met" }
        );
        crate::floor::render_target(&t["floor"], o);
        if let Some(rs) = t["block_ratios"].as_array() {
            let shown: Vec<String> = rs.iter().map(|r| format!("{:.3}", f(r))).collect();
            let _ = writeln!(
                o,
                "      median of {} paired blocks: {}; met in {} of them",
                rs.len(),
                shown.join(", "),
                t["blocks_met"]
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(system: &str, size: usize, p50: f64, mib_s: f64, egress: f64) -> Value {
        json!({"ok": true, "system": system, "object_size": size,
               "put_ms": {"p50": p50, "p99": p50 * 2.0}, "throughput_mib_s": mib_s,
               "sender_egress_per_payload_byte": egress, "received_per_payload_byte": 3.2,
               "bytes_at_non_targets": 10})
    }

    /// rendezvous p50 2 ms, 60 MiB/s, 1.05 B/B; FUSE 6 ms, 40 MiB/s; gfapi 5 ms, 50 MiB/s.
    fn rows(rdv_mib_s: f64) -> Vec<Value> {
        let mut v = Vec::new();
        for (s, p50, mib, eg) in [
            ("rendezvous", 2.0, rdv_mib_s, 1.05),
            ("ng-multicast", 2.0, 60.0, 1.07),
            ("unicast", 3.0, 30.0, 3.2),
            ("glusterfs", 6.0, 40.0, 3.19),
            ("glusterfs-gfapi", 5.0, 50.0, 3.18),
        ] {
            v.push(row(s, SMALL, p50, 1.0, eg));
            v.push(row(s, BIG, 100.0, mib, eg));
        }
        v
    }

    #[test]
    fn targets_are_ratios_to_the_better_glusterfs_client() {
        let un = summary(&rows(60.0));
        assert_eq!(un["glusterfs"]["put_256k_p50_ms"], 6.0);
        assert_eq!(un["glusterfs-gfapi"]["throughput_64m_mib_s"], 50.0);
        assert_eq!(un["rendezvous"]["bytes_at_non_targets"], 20);
        assert_eq!(un["rendezvous"]["ok"], true);
        let sh = summary(&rows(140.0));
        let t = targets(&un, &sh);
        let t = t.as_array().unwrap();
        // p50: 2 / 5 (gfapi, the faster) = 0.4 <= 0.5.
        assert_eq!(t[0]["glusterfs_client"], "glusterfs-gfapi");
        assert!((t[0]["ratio"].as_f64().unwrap() - 0.4).abs() < 1e-9);
        assert_eq!(t[0]["met"], true);
        // Unshaped throughput: 60 / 50 = 1.2 >= 1.1.
        assert_eq!(t[1]["met"], true);
        // Shaped: 140 / 50 = 2.8 < 3: not met.
        assert!((t[2]["ratio"].as_f64().unwrap() - 2.8).abs() < 1e-9);
        assert_eq!(t[2]["met"], false);
        // Bytes: 1.05 / 3.18 <= 1/3.
        assert_eq!(t[3]["glusterfs_client"], "glusterfs-gfapi");
        assert_eq!(t[3]["met"], true);

        let v = json!({"topology": "t.yaml", "rate_mbit": 200.0,
                       "unshaped": {"summary": un, "rows": []},
                       "shaped": {"summary": sh, "rows": [failed("glusterfs", BIG, 3, &anyhow!("boom"))]},
                       "targets": t});
        let mut o = String::new();
        render(&v, &mut o);
        assert!(
            o.contains("NOT met") && o.contains("glusterfs error: boom"),
            "{o}"
        );
        assert!(o.matches("glusterfs-gfapi").count() >= 2, "{o}");
    }

    #[test]
    fn a_missing_row_fails_the_target_and_the_system() {
        let mut r = rows(60.0);
        r.retain(|v| v["system"] != "glusterfs-gfapi");
        let s = summary(&r);
        assert_eq!(s["glusterfs-gfapi"]["ok"], false);
        assert!(s["glusterfs-gfapi"]["throughput_64m_mib_s"].is_null());
        let t = targets(&s, &s);
        // Against libgfapi, which did not run: not met (NaN ratio).
        assert_eq!(t[1]["met"], false);
        assert!(t[1]["ratio"].is_null());
        // The others fall back to FUSE.
        assert_eq!(t[0]["glusterfs_client"], "glusterfs");
    }

    #[test]
    fn shaped_copy_overrides_every_link() {
        let topo = Topology::from_yaml_file(labs::topology_path("seed-three-switch.yaml")).unwrap();
        let mut t = topo.clone();
        t.hosts.get_mut("X2").unwrap().rate_mbit = Some(1000.0);
        let s = shaped(&t, 200.0);
        assert_eq!(s.host_shaping("X2").rate_mbit, Some(200.0));
        assert_eq!(s.link_shaping("A", "B").rate_mbit, Some(200.0));
        let back = Topology::from_yaml_str(&serde_saphyr::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        let w = vec!["X1".to_string()];
        assert_eq!(storage_hosts(&topo, &w)[..3], ["X2", "X3", "X4"]);
    }
}
