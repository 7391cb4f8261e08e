//! `subcast-lab bench`: in one run, side by side,
//!
//! (a) time until a group forwards to every target:
//!     * `push`: controller push: HTTP request -> grant (after every agent ACKed)
//!       -> first datagram sent at once -> seen on every target's `eth0`;
//!     * `mld`: the sender tells each target (unicast), each target joins the
//!       group (MLD report, snooped by the bridges) and confirms (unicast); the
//!       sender streams probes meanwhile. Reported: told -> all confirmations, and
//!       told -> first probe seen on every target's `eth0` (the bridges forward);
//!     * `fixed`: told -> targets join -> the sender waits a fixed delay
//!       ([`FIXED_JOIN_DELAY_MS`]) and sends; told -> first datagram on every target.
//! (b) per chunk (a one-chunk object of 1 MiB, R = 3), for `rendezvous`,
//!     `ng-multicast` and `unicast` puts by the real storage node: sender egress
//!     bytes, bytes delivered to the chunk's targets and to every other host;
//! (c) put throughput per transport (a 16 MiB object).
//!
//! Arrival times and bytes come from tcpdump on each host's `eth0` (pcap
//! timestamps, same clock as the sender's `SystemTime`), never from the daemons.

use std::collections::BTreeMap;
use std::net::{Ipv6Addr, SocketAddrV6, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use labs::{Lab, LabOptions, Topology};
use serde_json::{Value, json};

use crate::bins::Locate;
use crate::dstcap::{self, DstCapture};
use crate::putget::run_timeout;
use crate::scenario::{bring_up, parent_group, pick_hosts, release, request};

/// The fixed wait a sender uses when it cannot see the joins complete. EdgeFS's own
/// value is not in the sources available to us; we use 1000 ms, the MLDv2
/// Unsolicited Report Interval (RFC 3810 section 9.11, default 1 s): the time after
/// which a host retransmits a lost first report, so the shortest fixed wait that
/// survives one lost report. Override with `--fixed-join-delay-ms`.
pub const FIXED_JOIN_DELAY_MS: u64 = 1000;

pub(crate) const PROBE_PORT: u16 = 5001;
const TELL_PORT: u16 = 5002;
const CONFIRM_PORT: u16 = 5003;

pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

pub(crate) fn stats(samples: &[f64]) -> Value {
    let mut v: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let q = |p: f64| {
        if v.is_empty() {
            f64::NAN
        } else {
            v[((v.len() - 1) as f64 * p).round() as usize]
        }
    };
    json!({"n": v.len(), "median_ms": q(0.5), "p10_ms": q(0.1), "p90_ms": q(0.9),
           "min_ms": q(0.0), "max_ms": q(1.0), "samples_ms": samples,
           "failed": samples.len() - v.len()})
}

/// A UDP socket in `host`'s namespace that sends multicast out of `eth0`, hop limit 1.
pub(crate) fn sender_socket(lab: &Lab, host: &str, port: u16) -> Result<UdpSocket> {
    let s = lab.udp_socket(host, port, &[])?;
    let r = socket2::SockRef::from(&s);
    r.set_multicast_if_v6(lab.host(host).ifindex)?;
    r.set_multicast_hops_v6(1)?;
    r.set_multicast_loop_v6(false)?;
    Ok(s)
}

/// Captures on every target's eth0 for datagrams to `filter`; returns, per target,
/// the capture time of the first one (None if none arrived).
fn first_arrivals(
    lab: &Lab,
    targets: &[String],
    filter: &str,
    action: impl FnOnce() -> Result<()>,
) -> Result<BTreeMap<String, Option<u64>>> {
    let mut caps = Vec::new();
    for t in targets {
        let h = lab.host(t);
        caps.push((
            t.clone(),
            DstCapture::start(lab, &h.netns, &h.ifname, "in", filter)?,
        ));
    }
    let r = action();
    let mut out = BTreeMap::new();
    for (t, c) in caps {
        let tally = dstcap::sum(&c.stop()?, |_| true);
        out.insert(t, (tally.datagrams > 0).then_some(tally.first_us));
    }
    r?;
    Ok(out)
}

fn all_arrived_ms(arr: &BTreeMap<String, Option<u64>>, t0_us: u64) -> f64 {
    arr.values()
        .map(|a| a.map_or(f64::NAN, |t| t.saturating_sub(t0_us) as f64 / 1000.0))
        .fold(0.0, |m: f64, x| {
            if x.is_nan() || m.is_nan() {
                f64::NAN
            } else {
                m.max(x)
            }
        })
}

/// (a) controller push, on a lab with the daemons.
pub(crate) fn measure_push(
    lab: &Lab,
    stack: &crate::stack::Stack,
    ng: &str,
    targets: &[String],
    sender: &str,
    reps: usize,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let sock = sender_socket(lab, sender, 0)?;
    let (mut total, mut grant) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let mut lease = None;
        let mut t0 = 0;
        let arr = first_arrivals(
            lab,
            targets,
            &format!("dst net {} and dst port {PROBE_PORT}", crate::stack::POOL),
            || {
                t0 = now_us();
                let l = request(lab, stack, ng, targets)?;
                for _ in 0..3 {
                    sock.send_to(b"probe", SocketAddrV6::new(l.group, PROBE_PORT, 0, 0))?;
                }
                lease = Some(l);
                Ok(())
            },
        )?;
        let l = lease.ok_or_else(|| anyhow!("no lease"))?;
        grant.push(l.grant_us as f64 / 1000.0);
        total.push(all_arrived_ms(&arr, t0));
        release(lab, stack, &l)?;
    }
    Ok((total, grant))
}

/// Targets that wait for a "join G" message, join, and confirm to the sender.
fn spawn_joiners(
    lab: &Lab,
    targets: &[String],
    sender_ip: Ipv6Addr,
) -> Result<Vec<std::thread::JoinHandle<Result<UdpSocket>>>> {
    let mut hs = Vec::new();
    for t in targets {
        let s = lab.udp_socket(t, TELL_PORT, &[])?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let ifindex = lab.host(t).ifindex;
        hs.push(std::thread::spawn(move || -> Result<UdpSocket> {
            let mut buf = [0u8; 64];
            let (n, _) = s.recv_from(&mut buf).context("waiting to be told")?;
            let g: Ipv6Addr = std::str::from_utf8(&buf[..n])?.parse()?;
            socket2::SockRef::from(&s).join_multicast_v6(&g, ifindex)?;
            s.send_to(b"joined", SocketAddrV6::new(sender_ip, CONFIRM_PORT, 0, 0))?;
            Ok(s) // keep the membership until the caller drops it
        }));
    }
    Ok(hs)
}

/// The group of MLD-join repetition `rep` (0-based).
pub(crate) fn join_group(rep: usize) -> Ipv6Addr {
    Ipv6Addr::new(0xff05, 0, 0, 0, 0, 0x5c, 3, rep as u16 + 1)
}

/// (a) MLD joins and the fixed delay, on a lab with MLD open (no daemons); the
/// probes go on for `linger` after the confirmations (at most 2 s in all).
pub(crate) fn measure_joins(
    lab: &Lab,
    targets: &[String],
    sender: &str,
    reps: usize,
    (fixed_ms, fixed_reps): (u64, usize),
    linger: Duration,
) -> Result<(Vec<f64>, Vec<f64>, Vec<f64>)> {
    let sock = sender_socket(lab, sender, CONFIRM_PORT)?;
    sock.set_read_timeout(Some(Duration::from_millis(50)))?;
    let sender_ip = lab.host(sender).ipv6;
    let (mut confirmed, mut forwarding, mut fixed) = (Vec::new(), Vec::new(), Vec::new());
    for rep in 0..reps + fixed_reps {
        let is_fixed = rep >= reps;
        let g = join_group(rep);
        let joiners = spawn_joiners(lab, targets, sender_ip)?;
        let mut t0 = 0;
        let mut conf_ms = f64::NAN;
        let arr = first_arrivals(
            lab,
            targets,
            &format!("dst {g} and dst port {PROBE_PORT}"),
            || {
                let stop = Arc::new(AtomicBool::new(false));
                let streamer = (!is_fixed).then(|| {
                    let (s, stop) = (sock.try_clone(), stop.clone());
                    std::thread::spawn(move || -> Result<()> {
                        let s = s?;
                        while !stop.load(Ordering::Relaxed) {
                            s.send_to(b"probe", SocketAddrV6::new(g, PROBE_PORT, 0, 0))?;
                            std::thread::sleep(Duration::from_micros(200));
                        }
                        Ok(())
                    })
                });
                t0 = now_us();
                let t = Instant::now();
                for tg in targets {
                    let ip = lab.host(tg).ipv6;
                    sock.send_to(
                        g.to_string().as_bytes(),
                        SocketAddrV6::new(ip, TELL_PORT, 0, 0),
                    )?;
                }
                let mut n = 0;
                let mut buf = [0u8; 16];
                while n < targets.len() && t.elapsed() < Duration::from_secs(3) {
                    if sock.recv_from(&mut buf).is_ok() {
                        n += 1;
                    }
                }
                if n == targets.len() {
                    conf_ms = t.elapsed().as_secs_f64() * 1000.0;
                }
                if is_fixed {
                    std::thread::sleep(Duration::from_millis(fixed_ms).saturating_sub(t.elapsed()));
                    sock.send_to(b"probe", SocketAddrV6::new(g, PROBE_PORT, 0, 0))?;
                } else {
                    // Keep streaming until well after the joins.
                    std::thread::sleep(linger);
                }
                stop.store(true, Ordering::Relaxed);
                if let Some(h) = streamer {
                    h.join().map_err(|_| anyhow!("probe thread panicked"))??;
                }
                Ok(())
            },
        )?;
        let members: Vec<UdpSocket> = joiners
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow!("joiner panicked"))?)
            .collect::<Result<_>>()?;
        drop(members);
        let ms = all_arrived_ms(&arr, t0);
        tracing::debug!(?arr, t0, is_fixed, "join rep");
        if is_fixed {
            fixed.push(ms);
        } else {
            confirmed.push(conf_ms);
            forwarding.push(ms);
        }
    }
    Ok((confirmed, forwarding, fixed))
}

/// Make every trunk a multicast router port (`mcast_router 2`), the usual setup of
/// several snooping switches: MLD reports then travel over the trunks, so each
/// bridge learns which trunk leads to a member. (The lab's default `mcast_router 0`
/// keeps reports on their own switch: fine for static groups, not for MLD joins.)
fn router_trunks(lab: &Lab) -> Result<()> {
    for sw in lab.switches().values() {
        for p in &sw.ports {
            if matches!(p.toward, labs::PortPeer::Switch(_)) {
                lab.exec(
                    &sw.netns,
                    &["bridge", "link", "set", "dev", &p.name, "mcast_router", "2"],
                )?;
            }
        }
    }
    Ok(())
}

fn write_object(dir: &Path, name: &str, size: usize) -> Result<std::path::PathBuf> {
    use std::io::Read;
    let mut buf = vec![0u8; size];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    let p = dir.join(name);
    std::fs::write(&p, &buf)?;
    Ok(p)
}

/// One put with captures at every host (datagrams from the sender) and on the
/// sender's egress. Returns the put report and the per-host tallies.
fn captured_put(
    r: &crate::scenario::Running,
    sender: &str,
    file: &Path,
    name: &str,
    mode: &str,
    capture: bool,
) -> Result<(Value, BTreeMap<String, u64>, u64, f64)> {
    let lab = &r.lab;
    let s = lab.host(sender);
    let client = r.stack.client_config(lab, sender)?;
    let mut caps = Vec::new();
    for (h, info) in lab.hosts() {
        if capture && h != sender {
            caps.push((
                h.clone(),
                DstCapture::start(
                    lab,
                    &info.netns,
                    &info.ifname,
                    "in",
                    &format!("src host {}", s.ipv6),
                )?,
            ));
        }
    }
    let eg = if capture {
        Some(DstCapture::start(lab, &s.netns, &s.ifname, "out", "udp")?)
    } else {
        None
    };
    let (ok, out, err, secs) = node_put(r, sender, &client, file, name, mode)?;
    let egress = match eg {
        Some(eg) => dstcap::sum(&eg.stop()?, |_| true).bytes,
        None => 0,
    };
    let mut got = BTreeMap::new();
    for (h, c) in caps {
        got.insert(h, dstcap::sum(&c.stop()?, |_| true).bytes);
    }
    if !ok {
        bail!("put --transport {mode} failed: {}", err.trim());
    }
    let rep: Value =
        serde_json::from_str(out.trim()).with_context(|| format!("put printed {out:?}"))?;
    Ok((rep, got, egress, secs))
}

/// `subcast-node put FILE --name NAME --transport MODE --json` with
/// `client` (a config) in `sender`'s namespace, 120 s at most: (ok,
/// stdout, stderr, seconds).
pub(crate) fn node_put(
    r: &crate::scenario::Running,
    sender: &str,
    client: &Path,
    file: &Path,
    name: &str,
    mode: &str,
) -> Result<(bool, String, String, f64)> {
    let node = r.bins.node.display().to_string();
    let (c, f) = (client.display().to_string(), file.display().to_string());
    let t = Instant::now();
    let (ok, out, err) = run_timeout(
        &r.lab,
        &r.lab.host(sender).netns,
        &[
            &node,
            "--config",
            &c,
            "put",
            &f,
            "--name",
            name,
            "--transport",
            mode,
            "--json",
            "-q",
        ],
        Duration::from_secs(120),
    )?;
    Ok((ok, out, err, t.elapsed().as_secs_f64()))
}

fn host_of(lab: &Lab, id: u64) -> String {
    lab.hosts()
        .values()
        .find(|h| u64::from(h.index) == id)
        .map_or(format!("node{id}"), |h| h.name.clone())
}

const MODES: [&str; 3] = ["rendezvous", "ng-multicast", "unicast"];

/// (b) and (c).
fn measure_modes(
    r: &crate::scenario::Running,
    sender: &str,
    reps: usize,
) -> Result<(Value, Value)> {
    let dir = r.lab.workdir().to_path_buf();
    let chunk = 1 << 20;
    let big = 16 << 20;
    let mut per_chunk = serde_json::Map::new();
    let mut thr = serde_json::Map::new();
    for (mi, mode) in MODES.iter().enumerate() {
        let (mut eg, mut tb, mut nb) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..reps {
            let f = write_object(&dir, &format!("chunk-{mode}-{i}.bin"), chunk)?;
            let (rep, got, egress, _) =
                captured_put(r, sender, &f, &format!("bench/{mode}/chunk{i}"), mode, true)?;
            let targets: Vec<String> = rep["placement"][0]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_u64)
                .map(|id| host_of(&r.lab, id))
                .collect();
            let (t, n): (u64, u64) = got.iter().fold((0, 0), |(t, n), (h, b)| {
                if targets.contains(h) {
                    (t + b, n)
                } else {
                    (t, n + b)
                }
            });
            eg.push(egress as f64);
            tb.push(t as f64);
            nb.push(n as f64);
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        per_chunk.insert(mode.to_string(), json!({
            "sender_egress_bytes": mean(&eg), "target_bytes": mean(&tb), "non_target_bytes": mean(&nb),
            "samples": {"sender_egress_bytes": eg, "target_bytes": tb, "non_target_bytes": nb},
        }));
        // Throughput without captures (tcpdump on every host costs CPU here).
        let f = write_object(&dir, &format!("big-{mode}.bin"), big)?;
        let mut secs = Vec::new();
        let mut reported = Vec::new();
        for i in 0..reps {
            let (rep, _, _, s) = captured_put(
                r,
                sender,
                &f,
                &format!("bench/{mode}/big{mi}-{i}"),
                mode,
                false,
            )?;
            secs.push(s);
            reported.push(rep["mib_per_s"].clone());
        }
        secs.sort_by(f64::total_cmp);
        let median = secs[secs.len() / 2];
        thr.insert(mode.to_string(), json!({
            "object_bytes": big, "wall_seconds": median, "mib_per_s": big as f64 / (1 << 20) as f64 / median,
            "wall_seconds_samples": secs, "node_reported_mib_per_s": reported,
        }));
    }
    Ok((Value::Object(per_chunk), Value::Object(thr)))
}

/// What `bench` measures.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub reps: usize,
    pub fixed_ms: u64,
    /// Only part (d), puts under loss.
    pub loss_only: bool,
    pub loss_reps: usize,
    pub loss_object: usize,
    pub loss_at: crate::bench_loss::LossAt,
    /// Part (g), subcast against GlusterFS.
    pub peer: crate::putbench_peer::PeerPlan,
    /// Where part (g) writes its shaped topology.
    pub out: std::path::PathBuf,
}

/// Only part (d): the lab with storage nodes, puts under loss.
fn run_loss_only(topology: &Path, locate: &Locate, o: &BenchOptions) -> Result<Value> {
    let topo = Topology::from_yaml_file(topology)?;
    let (_, _, members) = parent_group(&topo)?;
    let (targets, sender) = pick_hosts(&topo, &members, None, None)?;
    let t_all = Instant::now();
    let mut r = bring_up(&topo, locate)?;
    r.stack.start_nodes(&r.lab, &r.bins, &sender)?;
    let loss = crate::bench_loss::measure(&r, &sender, o.loss_reps, o.loss_object, o.loss_at);
    let crate::scenario::Running { lab, stack, .. } = r;
    stack.stop();
    drop(lab);
    Ok(json!({
        "topology": topology.display().to_string(),
        "targets": targets, "sender": sender, "reps": o.loss_reps,
        "seconds": t_all.elapsed().as_secs_f64(),
        "loss": loss.unwrap_or_else(|e| json!({"error": format!("{e:#}")})),
    }))
}

/// Every measurement; the JSON written to bench.json.
pub fn run(topology: &Path, locate: &Locate, o: &BenchOptions) -> Result<Value> {
    if o.loss_only {
        return run_loss_only(topology, locate, o);
    }
    let (reps, fixed_ms) = (o.reps, o.fixed_ms);
    let topo = Topology::from_yaml_file(topology)?;
    let (ng, _, members) = parent_group(&topo)?;
    let (targets, sender) = pick_hosts(&topo, &members, None, None)?;
    let t_all = Instant::now();

    let r = bring_up(&topo, locate)?;
    let (push, grant) = measure_push(&r.lab, &r.stack, &ng, &targets, &sender, reps)?;
    let mut r = r;
    r.stack.start_nodes(&r.lab, &r.bins, &sender)?;
    let modes = measure_modes(&r, &sender, 3);
    let loss = crate::bench_loss::measure(&r, &sender, o.loss_reps, o.loss_object, o.loss_at)
        .unwrap_or_else(|e| json!({"error": format!("{e:#}")}));
    let crate::scenario::Running { lab, stack, .. } = r;
    stack.stop();
    drop(lab);
    let (per_chunk, throughput) = match modes {
        Ok(m) => m,
        Err(e) => (
            json!({"error": format!("{e:#}")}),
            json!({"error": format!("{e:#}")}),
        ),
    };

    let lab = Lab::build(&topo, LabOptions::default()).context("building the MLD lab")?;
    router_trunks(&lab)?;
    let (confirmed, forwarding, fixed) = measure_joins(
        &lab,
        &targets,
        &sender,
        reps,
        (fixed_ms, 3),
        Duration::from_millis(300),
    )?;
    drop(lab);
    let put = crate::putbench::bench_part(topology, locate)
        .unwrap_or_else(|e| json!({"error": format!("{e:#}")}));
    let peer = crate::putbench_peer::bench_part(topology, locate, &o.out, &o.peer)
        .unwrap_or_else(|e| json!({"error": format!("{e:#}")}));
    let ovs =
        crate::bench_ovs::part(locate, reps).unwrap_or_else(|e| json!({"error": format!("{e:#}")}));

    Ok(json!({
        "topology": topology.display().to_string(),
        "targets": targets, "sender": sender, "reps": reps,
        "seconds": t_all.elapsed().as_secs_f64(),
        "ready": {
            "push": {"what": "POST /v1/rendezvous -> grant -> 3 datagrams sent -> first seen on every target's eth0",
                     "total": stats(&push), "grant": stats(&grant)},
            "mld": {"what": "unicast 'join G' to each target -> join (MLD report) -> unicast confirm; probes every 200 us",
                    "confirmed": stats(&confirmed), "forwarding": stats(&forwarding)},
            "fixed": {"what": "told -> targets join -> sender waits the fixed delay -> one datagram -> seen on every target",
                      "delay_ms": fixed_ms,
                      "source": "EdgeFS's value is not in our sources; 1000 ms = MLDv2 Unsolicited Report Interval (RFC 3810 9.11), the shortest fixed wait that survives one lost report",
                      "total": stats(&fixed)},
        },
        "per_chunk": {"chunk_bytes": 1 << 20, "replicas": 3,
                      "what": "one put of a one-chunk object (its manifest put included); UDP payload bytes from tcpdump; targets = the data chunk's holders",
                      "modes": per_chunk},
        "throughput": {"what": "median wall time of 3 `subcast-node put` of a 16 MiB object (16 chunks, no captures running), pacing rate_mbps 1000",
                       "modes": throughput},
        "loss": loss,
        "put": put,
        "peer": peer,
        "ovs": ovs,
    }))
}
