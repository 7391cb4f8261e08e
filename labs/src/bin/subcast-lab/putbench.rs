//! The put-bench scenario: W writer hosts run `subcast-node bench` at the same
//! time (N durable puts each of a random object of B bytes, timed one by one by
//! the node, then every object read back by a get and compared byte for byte),
//! against storage nodes on every other negotiating-group member.
//!
//! Writers are chosen deterministically: hosts outside the negotiating group
//! first (they hold no store), then members, in host order, each on a switch no
//! earlier writer sits on while there is one. Measured outside the node
//! processes: the Ethernet bytes leaving each writer's `eth0` (its `/proc/net/dev`
//! `tx_bytes`, UDP segmentation turned off on it so the counter counts the
//! frames a wire would carry) over the payload bytes put. In a `nic_offload` lab
//! the interface counts whole GSO batches instead, and the egress per payload
//! byte is the writers' own count (`sender_egress_source` says which).
//!
//! Also `subcast-lab bench --put-only` ([`bench_part`]): the put targets
//! per transport on one lab, with an iperf3 UDP stream between two of its hosts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use labs::Topology;
use labs::gluster::wire::{self, IfCounters};
use serde_json::{Value, json};

use crate::bins::Locate;
use crate::putget::run_timeout;
use crate::scenario::{RunOptions, Running, bring_up, parent_group};

/// Copies of every chunk (the lab's node config, `replicas: 3`).
const REPLICAS: usize = 3;
/// Client pacing when the topology sets no `rate_mbit` (the node's own bench
/// test uses the same).
const DEFAULT_RATE_MBPS: u64 = 10_000;

/// Put transports of the storage node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    Rendezvous,
    NgMulticast,
    Unicast,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Rendezvous => "rendezvous",
            Transport::NgMulticast => "ng-multicast",
            Transport::Unicast => "unicast",
        }
    }
}

/// Options of `run --scenario put-bench` (the object size is `--object-size`).
#[derive(clap::Args, Debug, Clone)]
pub struct PutBenchArgs {
    /// put-bench: puts per writer.
    #[arg(long, default_value_t = 200)]
    pub puts: usize,
    /// put-bench: how the payload travels.
    #[arg(long, value_enum, default_value = "rendezvous")]
    pub transport: Transport,
    /// put-bench: writer hosts running at the same time.
    #[arg(long, default_value_t = 1)]
    pub writers: usize,
    /// put-bench: the writers' pacing rate (`rate_mbps` of their client config);
    /// default: the topology's lowest `rate_mbit`, else 10000.
    #[arg(long)]
    pub rate_mbps: Option<u64>,
    /// put-bench: measure GlusterFS replica 3 instead of subcast, on the same hosts
    /// (see `putbench_peer`).
    #[arg(long, value_enum)]
    pub peer: Option<crate::putbench_peer::Peer>,
}

impl Default for PutBenchArgs {
    fn default() -> Self {
        PutBenchArgs {
            puts: 200,
            transport: Transport::Rendezvous,
            writers: 1,
            rate_mbps: None,
            peer: None,
        }
    }
}

/// One put-bench run: what to put, from how many writers.
#[derive(Debug, Clone)]
pub struct Cell {
    pub object_size: usize,
    pub puts: usize,
    pub transport: Transport,
    pub writers: usize,
    pub rate_mbps: Option<u64>,
}

/// `W` writer hosts: outside the negotiating group first, then members, host
/// order, preferring a switch no earlier writer is on; at least `REPLICAS`
/// members must be left for the storage nodes.
pub fn choose_writers(topo: &Topology, topo_name: &str, w: usize) -> Result<Vec<String>> {
    let (_, _, members) = parent_group(topo)?;
    if w == 0 {
        bail!("--writers must be at least 1");
    }
    let order = topo.hosts_in_order();
    let mut cands: Vec<&str> = order
        .iter()
        .copied()
        .filter(|h| !members.iter().any(|m| m == h))
        .collect();
    cands.extend(
        order
            .iter()
            .copied()
            .filter(|h| members.iter().any(|m| m == h)),
    );
    // Members a writer may take: all but REPLICAS of them.
    let outside = cands.len() - members.len();
    let usable = outside + members.len().saturating_sub(REPLICAS);
    if usable < w {
        bail!(
            "topology {topo_name} cannot run put-bench with --writers {w}: it has {} hosts, \
             {} of them in the negotiating group, and needs {w} writer hosts plus at least \
             {REPLICAS} storage nodes (group members that are not writers); use fewer writers \
             or a bigger topology",
            order.len(),
            members.len()
        );
    }
    let mut chosen: Vec<String> = Vec::new();
    let mut used_switches: Vec<String> = Vec::new();
    let mut left: Vec<&str> = cands;
    let mut members_taken = 0;
    while chosen.len() < w {
        let allowed =
            |h: &&str| !members.iter().any(|m| m == h) || members_taken < members.len() - REPLICAS;
        let fresh = left
            .iter()
            .position(|h| allowed(h) && !used_switches.contains(&topo.hosts[*h].switch));
        let pick = match fresh {
            Some(i) => i,
            None => {
                used_switches.clear();
                left.iter()
                    .position(allowed)
                    .ok_or_else(|| anyhow!("no writer host left"))?
            }
        };
        let h = left.remove(pick);
        if members.iter().any(|m| m == h) {
            members_taken += 1;
        }
        used_switches.push(topo.hosts[h].switch.clone());
        chosen.push(h.to_string());
    }
    Ok(chosen)
}

/// The writers' pacing rate: given, else the lowest `rate_mbit` of the topology.
fn rate_for(topo: &Topology, given: Option<u64>) -> u64 {
    if let Some(r) = given {
        return r.max(1);
    }
    let mut rates: Vec<f64> = topo
        .hosts
        .keys()
        .filter_map(|h| topo.host_shaping(h).rate_mbit)
        .collect();
    rates.extend(
        topo.links
            .iter()
            .filter_map(|l| topo.link_shaping(&l.between[0], &l.between[1]).rate_mbit),
    );
    rates
        .into_iter()
        .reduce(f64::min)
        .map_or(DEFAULT_RATE_MBPS, |r| (r.floor() as u64).max(1))
}

/// Start storage nodes on every negotiating-group member except the writers.
pub fn start_nodes(r: &mut Running, writers: &[String]) -> Result<()> {
    r.stack.start_nodes_except(&r.lab, &r.bins, writers)
}

/// `run --scenario put-bench` on a running lab.
pub fn put_bench(r: &mut Running, opts: &RunOptions) -> Result<Value> {
    let a = &opts.put_bench;
    let o = &Cell {
        object_size: opts.object_size,
        puts: a.puts,
        transport: a.transport,
        writers: a.writers,
        rate_mbps: a.rate_mbps,
    };
    let topo = r.lab.topology().clone();
    let name = opts.topology.display().to_string();
    let writers = choose_writers(&topo, &name, o.writers)?;
    start_nodes(r, &writers)?;
    let mut v = cell(r, &writers[..o.writers], o)?;
    v["scenario"] = json!("put-bench");
    v["topology"] = json!(name);
    v["lab_up_ms"] = json!(r.build_ms);
    Ok(v)
}

/// A JSON number, or null for NaN.
fn num(x: f64) -> Value {
    if x.is_finite() { json!(x) } else { Value::Null }
}

/// One put-bench run on a lab whose storage nodes run (not on `writers`).
pub fn cell(r: &Running, writers: &[String], o: &Cell) -> Result<Value> {
    let (lab, stack) = (&r.lab, &r.stack);
    let rate = rate_for(lab.topology(), o.rate_mbps);
    let node = r.bins.node.display().to_string();
    let mut configs = Vec::new();
    for w in writers {
        wire::wire_accurate(lab, w).with_context(|| format!("TSO/GSO off on {w}"))?;
        let serving: Vec<String> = stack.nodes.keys().cloned().collect();
        let y = crate::stack::node_yaml(
            lab,
            stack.flavor,
            &stack.dir,
            stack.ctl_ip,
            w,
            None,
            &serving,
        );
        let y = y.replace("rate_mbps: 1000\n", &format!("rate_mbps: {rate}\n"));
        let p = stack.dir.join(format!("putbench-client-{w}.yaml"));
        std::fs::write(&p, y)?;
        configs.push(p.display().to_string());
    }
    let hosts: Vec<String> = lab.hosts().keys().cloned().collect();
    // A cap only, assuming no speed: every copy, twice (put and read back), at
    // 2 MB/s or the pacing rate if lower, plus two minutes.
    let total = (o.object_size * o.puts) as f64;
    let bytes_s = (rate as f64 * 1e6 / 8.0).min(2e6);
    let secs = 120.0 + total * REPLICAS as f64 * 2.0 / bytes_s;
    let timeout = Duration::from_secs_f64(secs.min(3600.0));
    let before = wire::hosts_counters(lab, &hosts)?;
    let t0 = Instant::now();
    let results: Vec<Result<(bool, String, String, f64)>> = std::thread::scope(|s| {
        let handles: Vec<_> = writers
            .iter()
            .zip(&configs)
            .map(|(w, c)| {
                let node = node.as_str();
                s.spawn(move || {
                    let (size, puts) = (o.object_size.to_string(), o.puts.to_string());
                    let prefix = format!("bench/{w}/");
                    let t = Instant::now();
                    let (ok, out, err) = run_timeout(
                        lab,
                        &lab.host(w).netns,
                        &[
                            node,
                            "--config",
                            c,
                            "bench",
                            "--object-size",
                            &size,
                            "--puts",
                            &puts,
                            "--transport",
                            o.transport.name(),
                            "--name-prefix",
                            &prefix,
                            "--json",
                        ],
                        timeout,
                    )?;
                    Ok((ok, out, err, t.elapsed().as_secs_f64()))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("writer thread panicked")))
            })
            .collect()
    });
    let makespan = t0.elapsed().as_secs_f64();
    let after = wire::hosts_counters(lab, &hosts)?;
    let delta = |h: &str| -> IfCounters { after[h].since(&before[h]) };

    let payload_each = (o.object_size * o.puts) as u64;
    let mut per_writer = Vec::new();
    let (mut all_ok, mut verified, mut fallbacks) = (true, 0u64, 0u64);
    let mut errors: Vec<String> = Vec::new();
    let (mut thr_sum, mut egress_sum, mut frames_sum) = (0.0, 0u64, 0u64);
    // The writers' own count of the octets they sent (see below).
    let mut node_wire_sum = 0.0;
    let mut pct: BTreeMap<&str, f64> = BTreeMap::new();
    for (w, res) in writers.iter().zip(results) {
        let (eg, frames) = (delta(w).tx_bytes, delta(w).tx_packets);
        egress_sum += eg;
        frames_sum += frames;
        let (ok, out, err, wall) = match res {
            Ok(x) => x,
            Err(e) => {
                all_ok = false;
                errors.push(format!("{w}: {e:#}"));
                per_writer.push(json!({"host": w, "ok": false, "error": format!("{e:#}")}));
                continue;
            }
        };
        let rep: Value = match serde_json::from_str(out.trim()) {
            Ok(v) => v,
            Err(_) => {
                all_ok = false;
                errors.push(format!(
                    "{w}: `subcast-node bench` printed no report (exit ok: {ok}): {}",
                    err.trim()
                ));
                per_writer.push(json!({"host": w, "ok": false, "stderr": err.trim()}));
                continue;
            }
        };
        let v = rep["verified"].as_u64().unwrap_or(0);
        let w_ok = ok && rep["ok"] == true && v == o.puts as u64;
        all_ok &= w_ok;
        verified += v;
        fallbacks += rep["fallbacks"].as_u64().unwrap_or(0);
        thr_sum += rep["throughput_mib_s"].as_f64().unwrap_or(0.0);
        node_wire_sum +=
            rep["wire_bytes_per_payload_byte"].as_f64().unwrap_or(0.0) * payload_each as f64;
        for k in ["p50", "p90", "p99", "max"] {
            let x = rep["put_ms"][k].as_f64().unwrap_or(f64::NAN);
            let e = pct.entry(k).or_insert(0.0);
            *e = if x.is_nan() { f64::NAN } else { e.max(x) };
        }
        for e in rep["errors"].as_array().into_iter().flatten() {
            errors.push(format!("{w}: {}", e.as_str().unwrap_or("")));
        }
        per_writer.push(json!({
            "host": w,
            "switch": lab.topology().hosts[w].switch,
            "ok": w_ok,
            "verified": v,
            "put_ms": rep["put_ms"],
            "get_ms": rep["get_ms"],
            "throughput_mib_s": rep["throughput_mib_s"],
            "wall_s": wall,
            "egress_bytes": eg,
            "egress_frames": frames,
            "egress_per_payload_byte": eg as f64 / payload_each.max(1) as f64,
            "fallbacks": rep["fallbacks"],
            "node_wire_bytes_per_payload_byte": rep["wire_bytes_per_payload_byte"],
            "inline_puts": rep["inline_puts"],
            "phases_ms": rep["phases_ms"],
        }));
    }
    let payload = payload_each * writers.len() as u64;
    let received: u64 = hosts
        .iter()
        .filter(|h| !writers.contains(h))
        .map(|h| delta(h).rx_bytes)
        .sum();
    let nodes: Vec<&String> = stack.nodes.keys().collect();
    // Like the GlusterFS peer's: hosts with no part in the bench (null: none).
    let non_targets: Option<u64> = hosts
        .iter()
        .filter(|h| !writers.contains(h) && !stack.nodes.contains_key(*h))
        .map(|h| delta(h).rx_bytes)
        .reduce(|a, b| a + b);
    let loss = lab.loss_drops()?;
    let ok = all_ok && verified == (o.puts * writers.len()) as u64;
    // With nic_offload the interface counts whole GSO batches (one set of
    // headers per batch): the writers' own count of what they sent stands in.
    // Also what the interface counters are, and how the writers segment.
    let offload = lab.topology().nic_offload;
    let (egress_per_byte, egress_source, counted, segmentation) = if offload {
        (
            node_wire_sum / payload.max(1) as f64,
            "the writers' own count (IPv6, UDP and Replicast headers and payload of every datagram of the puts): with nic_offload the interface counts whole GSO batches",
            "bytes from /proc/net/dev of each host's eth0",
            "nic_offload: UDP GSO batches counted whole (headers once per batch), see \
             sender_egress_source",
        )
    } else {
        (
            egress_sum as f64 / payload.max(1) as f64,
            "Ethernet bytes from the writers' eth0 counters",
            "Ethernet frame bytes (L2: Ethernet+IPv6+UDP+Replicast headers and payload) from \
             /proc/net/dev of each host's eth0",
            "TSO/GSO off on the writers",
        )
    };
    Ok(json!({
        "ok": ok,
        "transport": o.transport.name(),
        "object_size": o.object_size,
        "puts": o.puts,
        "puts_total": o.puts * writers.len(),
        "verified": verified,
        "writers": writers.len(),
        "writer_hosts": writers,
        "storage_nodes": nodes,
        "replicas": REPLICAS,
        "client_rate_mbps": rate,
        "put_ms": {
            "p50": num(pct.get("p50").copied().unwrap_or(f64::NAN)),
            "p90": num(pct.get("p90").copied().unwrap_or(f64::NAN)),
            "p99": num(pct.get("p99").copied().unwrap_or(f64::NAN)),
            "max": num(pct.get("max").copied().unwrap_or(f64::NAN)),
        },
        "put_ms_means": "one writer: nearest-rank percentiles of its puts, each timed by the node from start to durable (R acks after fsync); several writers: the highest of the writers' values for each percentile",
        "throughput_mib_s": thr_sum,
        "throughput_means": "sum over writers of payload MiB / the sum of that writer's put times (the node's own timing: process start and the read-back excluded)",
        "makespan_s": makespan,
        "throughput_makespan_mib_s": payload as f64 / (1u64 << 20) as f64 / makespan,
        "payload_bytes": payload,
        "sender_egress_bytes": egress_sum,
        "sender_egress_per_payload_byte": egress_per_byte,
        "sender_egress_source": egress_source,
        "nic_offload": offload,
        "sender_egress_frames": frames_sum,
        "link_mtu": lab.topology().mtu(),
        "received_per_payload_byte": received as f64 / payload.max(1) as f64,
        "bytes_at_non_targets": non_targets,
        "bytes_mean": format!(
            "{counted}, read from outside the nodes over the whole bench process (puts, and the \
             read-back's requests and acks); {segmentation}; received = rx at every host that is \
             not a writer; bytes_at_non_targets = rx at hosts that are neither writers nor storage \
             nodes",
        ),
        "fallbacks": fallbacks,
        "errors": errors,
        "per_writer": per_writer,
        "loss": loss,
    }))
}

/// iperf3 UDP from `client` to `server` for 3 s at an unlimited rate: Mbit/s
/// received and percent lost.
fn iperf3_udp(r: &Running, server: &str, client: &str) -> Result<Value> {
    let lab = &r.lab;
    let _srv = lab.spawn_with(
        &lab.host(server).netns,
        &["iperf3", "-s", "-1", "-p", "5201"],
        |c| {
            c.stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
        },
    )?;
    let h = lab.host(server);
    let addr = match h.ipv4 {
        Some(a) if r.stack.flavor.ipv4 => a.to_string(),
        _ => h.ipv6.to_string(),
    };
    let args = [
        "iperf3", "-c", &addr, "-p", "5201", "-u", "-b", "0", "-l", "1400", "-t", "3", "-J",
    ];
    let mut last = String::new();
    // The server binds right after exec: retry the connection briefly.
    for _ in 0..50 {
        let out = lab.exec(&lab.host(client).netns, &args);
        match out {
            Ok(out) => {
                let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
                if v.get("error").is_none() && v["end"]["sum"].is_object() {
                    let s = &v["end"]["sum"];
                    return Ok(json!({
                        "from": client, "to": server,
                        "mbit_s": s["bits_per_second"].as_f64().unwrap_or(f64::NAN) / 1e6,
                        "lost_percent": s["lost_percent"],
                    }));
                }
                last = String::from_utf8_lossy(&out.stdout).into_owned();
            }
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("iperf3 -u from {client} to {server} did not run: {last}")
}

/// The put part of `subcast-lab bench`: per transport 256 KiB x 200 and
/// 64 MiB x 3 puts from one writer; 3 writers for rendezvous and unicast; an
/// iperf3 UDP stream. The storage nodes stay on the same hosts throughout (the
/// group members that are not one of the three writers).
pub fn bench_part(topology: &Path, locate: &Locate) -> Result<Value> {
    let topo = Topology::from_yaml_file(topology)?;
    let name = topology.display().to_string();
    let writers = choose_writers(&topo, &name, 3)?;
    let t_all = Instant::now();
    let mut r = bring_up(&topo, locate)?;
    let out = (|| -> Result<Value> {
        start_nodes(&mut r, &writers)?;
        let small = (256 << 10, 200);
        let big = (64 << 20, 3);
        let mut plan: Vec<(usize, usize, Transport, usize)> = Vec::new();
        for t in [
            Transport::Rendezvous,
            Transport::NgMulticast,
            Transport::Unicast,
        ] {
            plan.push((small.0, small.1, t, 1));
            plan.push((big.0, big.1, t, 1));
        }
        for t in [Transport::Rendezvous, Transport::Unicast] {
            plan.push((small.0, small.1, t, 3));
            plan.push((big.0, big.1, t, 3));
        }
        let mut rows = Vec::new();
        for (size, puts, t, w) in plan {
            eprintln!(
                "subcast-lab bench: put-bench {} x {puts}, {}, {w} writer(s)",
                size,
                t.name()
            );
            let c = Cell {
                object_size: size,
                puts,
                transport: t,
                writers: w,
                rate_mbps: None,
            };
            rows.push(cell(&r, &writers[..w], &c).unwrap_or_else(|e| {
                json!({"ok": false, "transport": t.name(), "object_size": size, "puts": puts,
                       "writers": w, "errors": [format!("{e:#}")]})
            }));
        }
        let iperf = iperf3_udp(
            &r,
            r.stack.nodes.keys().next().map_or("", |s| s),
            &writers[0],
        )
        .unwrap_or_else(|e| json!({"error": format!("{e:#}")}));
        Ok(json!({
            "topology": name,
            "writer_hosts": writers,
            "storage_nodes": r.stack.nodes.keys().collect::<Vec<_>>(),
            "seconds": t_all.elapsed().as_secs_f64(),
            "targets": {"put_256k_p50_ms": 5.0, "put_256k_p99_ms": 20.0, "rendezvous_64m_mib_s": 300.0},
            "iperf3_udp": iperf,
            "iperf3_udp_mbit": iperf["mbit_s"],
            "rows": rows,
        }))
    })();
    let Running { lab, stack, .. } = r;
    stack.stop();
    drop(lab);
    out
}

/// The put-bench table.
pub fn render(v: &Value, o: &mut String) {
    let _ = writeln!(
        o,
        "\n(f) put-bench on {} (writers {}; egress = Ethernet bytes leaving the writers per payload byte)",
        v["topology"].as_str().unwrap_or(""),
        v["writer_hosts"]
    );
    let _ = writeln!(
        o,
        "  {:<13} {:>8} {:>5} {:>3} {:>9} {:>9} {:>9} {:>9} {:>8} {:>4} {:>5}",
        "transport",
        "object",
        "puts",
        "W",
        "p50 ms",
        "p99 ms",
        "max ms",
        "MiB/s",
        "egress",
        "ok",
        "fb"
    );
    for row in v["rows"].as_array().into_iter().flatten() {
        let size = row["object_size"].as_u64().unwrap_or(0);
        let size = if size >= 1 << 20 {
            format!("{} MiB", size >> 20)
        } else {
            format!("{} KiB", size >> 10)
        };
        let f = |x: &Value| x.as_f64().unwrap_or(f64::NAN);
        let _ = writeln!(
            o,
            "  {:<13} {:>8} {:>5} {:>3} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>8.3} {:>4} {:>5}",
            row["transport"].as_str().unwrap_or(""),
            size,
            row["puts"].as_u64().unwrap_or(0),
            row["writers"].as_u64().unwrap_or(0),
            f(&row["put_ms"]["p50"]),
            f(&row["put_ms"]["p99"]),
            f(&row["put_ms"]["max"]),
            f(&row["throughput_mib_s"]),
            f(&row["sender_egress_per_payload_byte"]),
            if row["ok"] == true { "yes" } else { "NO" },
            row["fallbacks"].as_u64().unwrap_or(0)
        );
        for e in row["errors"].as_array().into_iter().flatten().take(3) {
            let _ = writeln!(o, "      error: {}", e.as_str().unwrap_or(""));
        }
    }
    let ip = &v["iperf3_udp"];
    if let Some(m) = ip["mbit_s"].as_f64() {
        let _ = writeln!(
            o,
            "  iperf3 UDP {} -> {}: {m:.0} Mbit/s received, {:.1} % lost",
            ip["from"].as_str().unwrap_or(""),
            ip["to"].as_str().unwrap_or(""),
            ip["lost_percent"].as_f64().unwrap_or(f64::NAN)
        );
    } else {
        let _ = writeln!(o, "  iperf3 UDP: {}", ip["error"]);
    }
    let _ = writeln!(
        o,
        "  targets: 256 KiB put p50 <= 5 ms, p99 <= 20 ms; 64 MiB rendezvous >= 300 MiB/s"
    );
}
