//! The put-get scenario: storage nodes on every negotiating-group member except the
//! sender, `subcast-node put --transport rendezvous` of a random object from the
//! sender, then `subcast-node get` and a byte comparison.
//!
//! Seen from outside the daemons: `bridge monitor mdb` in every switch namespace
//! records which ports each rendezvous group got (the group is leased and released
//! within the put, too fast to poll); tcpdump on every host's `eth0` counts the
//! datagrams per destination; tcpdump on the sender keeps its PUT_ACCEPTs, decoded
//! here (`subcast_proto::replicast::decode`), which name each chunk's rendezvous
//! group and targets. The put's own report (placement) must name the same target
//! sets. Chunks with the same target set share one group (the controller reuses
//! it); each group lists its chunks. The report's `rendezvous` is the group of the
//! first data chunk accepted.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::Ipv6Addr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use labs::{ChildGuard, Lab};
use serde_json::{Value, json};

use crate::dstcap::{self, DstCapture, Tally};
use crate::expect;
use crate::scenario::{RunOptions, Running, parent_group_of, switches_json};

/// Marks an error that means "the storage node cannot do this (yet)".
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unsupported(pub String);

/// Whether `e` says put-get cannot run with these binaries.
pub fn unsupported(e: &anyhow::Error) -> bool {
    e.downcast_ref::<Unsupported>().is_some()
}

fn in_pool(a: &Ipv6Addr) -> bool {
    labs::in_rendezvous_pool(a)
}

/// Whether a destination (IPv4 ones IPv4-mapped) is a multicast group.
fn is_group(a: &Ipv6Addr) -> bool {
    a.to_canonical().is_multicast()
}

/// Run a command in a namespace with a timeout; returns (success, stdout, stderr).
pub fn run_timeout(
    lab: &Lab,
    netns: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<(bool, String, String)> {
    let mut g = lab.spawn_with(netns, args, |c| {
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
    })?;
    let mut out = g.child_mut().stdout.take().context("stdout")?;
    let mut err = g.child_mut().stderr.take().context("stderr")?;
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = g.child_mut().try_wait()? {
            break Some(st);
        }
        if t0.elapsed() > timeout {
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    drop(g);
    let (o, e) = (
        t_out.join().unwrap_or_default(),
        t_err.join().unwrap_or_default(),
    );
    match status {
        Some(st) => Ok((st.success(), o, e)),
        None => bail!(
            "`{}` did not finish within {timeout:?}: {e}",
            args.join(" ")
        ),
    }
}

/// `bridge monitor mdb` in every switch namespace.
pub struct MdbWatch {
    procs: Vec<(String, ChildGuard, std::path::PathBuf)>,
}

/// Ports each group got on each switch, and groups in order of first appearance.
#[derive(Debug, Default)]
pub struct Watched {
    pub order: Vec<Ipv6Addr>,
    pub ports: BTreeMap<Ipv6Addr, BTreeMap<String, Vec<String>>>,
    pub deleted: BTreeMap<Ipv6Addr, usize>,
}

/// A group outside the rendezvous pool, added and removed on every watched bridge
/// to prove its `bridge monitor` has seen everything up to now.
const MARKER: Ipv6Addr = Ipv6Addr::new(0xff05, 0, 0, 0, 0, 0x5c, 0xffff, 0xfffe);
/// Where the lab's namespaces are IPv4 only for subcast, the marker is IPv4
/// (`::ffff:239.92.255.254`); any group works, it is never forwarded.
const MARKER_V4: Ipv6Addr = Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0xef5c, 0xfffe);

impl MdbWatch {
    pub fn start(lab: &Lab) -> Result<MdbWatch> {
        let mut procs = Vec::new();
        for (name, sw) in lab.switches() {
            if sw.ovs.is_some() {
                continue;
            }
            let path = lab.workdir().join(format!("mdb-monitor-{name}.txt"));
            let f = std::fs::File::create(&path)?;
            let g = lab.spawn_with(
                &sw.netns,
                &["stdbuf", "-oL", "bridge", "-timestamp", "monitor", "mdb"],
                |c| {
                    c.stdout(f).stderr(Stdio::null());
                },
            )?;
            procs.push((name.clone(), g, path));
        }
        let w = MdbWatch { procs };
        // `bridge monitor` subscribes right after exec: wait until each one shows a
        // marker entry added after it started.
        w.mark(lab, "start")?;
        Ok(w)
    }

    /// Add and delete the marker entry on every watched bridge and wait until each
    /// monitor has written the deletion.
    fn mark(&self, lab: &Lab, when: &str) -> Result<()> {
        let t0 = Instant::now();
        let marker = if lab.topology().family == labs::Family::Ipv4 {
            MARKER_V4
        } else {
            MARKER
        };
        let needle = format!("grp {}", marker.to_canonical());
        let seen = |i: usize| {
            std::fs::read_to_string(&self.procs[i].2)
                .unwrap_or_default()
                .lines()
                .filter(|l| l.starts_with("Deleted") && l.contains(&needle))
                .count()
        };
        let before: Vec<usize> = (0..self.procs.len()).map(seen).collect();
        let mut pending: Vec<usize> = (0..self.procs.len()).collect();
        while !pending.is_empty() {
            for &i in &pending {
                let sw = lab.switch(&self.procs[i].0);
                let port = &sw.ports.first().context("a switch without ports")?.name;
                lab.mdb_add(&sw.name, port, marker)?;
                let _ = lab.mdb_del(&sw.name, port, marker);
            }
            std::thread::sleep(Duration::from_millis(5));
            pending.retain(|&i| seen(i) == before[i]);
            if t0.elapsed() > Duration::from_secs(10) {
                bail!("`bridge monitor mdb` did not report a marker entry within 10 s ({when})");
            }
        }
        Ok(())
    }

    pub fn stop(self, lab: &Lab) -> Result<Watched> {
        // Everything the bridges did before this point is in the files once the
        // marker's deletion is.
        self.mark(lab, "stop")?;
        let mut w = Watched::default();
        let mut first_seen: Vec<(u64, Ipv6Addr)> = Vec::new();
        for (sw, mut g, path) in self.procs {
            g.stop_with(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(1));
            let text = std::fs::read_to_string(&path)?;
            let mut now_us = 0u64;
            for line in text.lines() {
                let toks: Vec<&str> = line.split_whitespace().collect();
                if toks.first() == Some(&"Timestamp:") {
                    now_us = timestamp_us(&toks);
                    continue;
                }
                let Some((deleted, port, group)) = mdb_event(&toks) else {
                    continue;
                };
                if !in_pool(&group) {
                    continue;
                }
                if deleted {
                    *w.deleted.entry(group).or_default() += 1;
                    continue;
                }
                match first_seen.iter_mut().find(|(_, g)| *g == group) {
                    Some(e) => e.0 = e.0.min(now_us),
                    None => first_seen.push((now_us, group)),
                }
                let ports = w
                    .ports
                    .entry(group)
                    .or_default()
                    .entry(sw.clone())
                    .or_default();
                if !ports.iter().any(|p| p == port) {
                    ports.push(port.to_string());
                    ports.sort();
                }
            }
        }
        // Order by the time each group first appeared on any switch.
        first_seen.sort();
        let mut order = Vec::new();
        for (_, g) in first_seen {
            if !order.contains(&g) {
                order.push(g);
            }
        }
        w.order = order;
        Ok(w)
    }
}

/// (group, target node ids, is a manifest) of every PUT_ACCEPT toward a rendezvous
/// group, first occurrence of each group, in capture order.
fn accepted_groups(payloads: &[Vec<u8>]) -> Vec<Accepted> {
    use subcast_proto::replicast::{ChunkKind, ReplicastMessage, decode};
    let mut out: Vec<Accepted> = Vec::new();
    for p in payloads {
        if let Ok(d) = decode(p)
            && let ReplicastMessage::PutAccept(a) = d.message
            && in_pool(&a.group)
            && !a.targets.is_empty()
            && !out
                .iter()
                .any(|o| o.group == a.group && o.chunk == a.chunk_id)
        {
            out.push(Accepted {
                group: a.group,
                targets: a.targets,
                manifest: a.kind == ChunkKind::Manifest,
                chunk: a.chunk_id,
            });
        }
    }
    out
}

/// One chunk's PUT_ACCEPT as captured: its rendezvous group and targets.
struct Accepted {
    group: Ipv6Addr,
    targets: Vec<u32>,
    manifest: bool,
    chunk: [u8; 32],
}

/// Microseconds of the day from `Timestamp: Thu Nov 26 10:09:34 2026 123456 usec`.
fn timestamp_us(toks: &[&str]) -> u64 {
    let hms: Vec<u64> = toks
        .get(4)
        .map(|t| t.split(':').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_default();
    let usec: u64 = toks.get(6).and_then(|u| u.parse().ok()).unwrap_or(0);
    match hms.as_slice() {
        [h, m, s] => ((h * 60 + m) * 60 + s) * 1_000_000 + usec,
        _ => 0,
    }
}

fn random_file(path: &Path, size: usize) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; size];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    std::fs::write(path, &buf)?;
    Ok(buf)
}

/// put-get on a running lab.
pub fn put_get(r: &mut Running, opts: &RunOptions, sender: &str) -> Result<Value> {
    let topo = r.lab.topology().clone();
    let (ng, ng_addr, members) = parent_group_of(&topo, r.stack.flavor)?;
    r.stack
        .start_nodes(&r.lab, &r.bins, sender)
        .map_err(|e| Unsupported(format!("the storage nodes did not start: {e:#}")))?;
    let (lab, stack) = (&r.lab, &r.stack);
    let client = stack.client_config(lab, sender)?;
    let node = r.bins.node.display().to_string();
    let dir = lab.workdir().to_path_buf();
    let object = dir.join("object.bin");
    let data = random_file(&object, opts.object_size)?;
    let name = "lab/demo-object";
    let s = lab.host(sender);

    let watch = MdbWatch::start(lab)?;
    let mut caps = BTreeMap::new();
    for (h, info) in lab.hosts() {
        caps.insert(
            h.clone(),
            DstCapture::start(lab, &info.netns, &info.ifname, "in", "udp")?,
        );
    }
    let egress = DstCapture::start(lab, &s.netns, &s.ifname, "out", "udp")?;
    // Everything the sender sends to the nodes except the payload itself: the
    // PUT_ACCEPTs name each chunk's rendezvous group and targets.
    let accepts = DstCapture::start_snap(
        lab,
        &s.netns,
        &s.ifname,
        "out",
        &format!(
            "dst port {} and not dst net {}",
            stack.flavor.node_port(),
            stack.flavor.pool()
        ),
        4096,
    )?;
    // The controller's answers (RENDEZVOUS_GRANT) arriving at the sender.
    let ctl_ip = stack.ctl_ip;
    let ctl_key = labs::group_ip(ctl_ip);
    let grants = DstCapture::start(
        lab,
        &s.netns,
        &s.ifname,
        "in",
        &format!("src host {ctl_ip} and src port {}", stack.flavor.ctl_port()),
    )?;
    let (c, o) = (client.display().to_string(), object.display().to_string());
    let t0 = Instant::now();
    let (ok, out, err) = run_timeout(
        lab,
        &s.netns,
        &[
            &node,
            "--config",
            &c,
            "put",
            &o,
            "--name",
            name,
            "--transport",
            "rendezvous",
            "--json",
            "-q",
        ],
        Duration::from_secs(60),
    )?;
    let put_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let egress = egress.stop()?;
    let grants = dstcap::sum(&grants.stop()?, |_| true);
    let accepted = accepted_groups(&accepts.stop_payloads()?);
    // First RENDEZVOUS_REQUEST on the wire (the data chunk's) -> first answer back.
    let request_us = egress.get(&ctl_key).map_or(0, |t| t.first_us);
    let ready_us =
        (request_us > 0 && grants.first_us >= request_us).then(|| grants.first_us - request_us);
    let mut seen = BTreeMap::new();
    for (h, cap) in caps {
        seen.insert(h, cap.stop()?);
    }
    let watched = watch.stop(lab)?;
    if !ok {
        if err.contains("unexpected argument") || err.contains("invalid value") {
            return Err(Unsupported(format!(
                "`subcast-node put --transport rendezvous` is not supported: {err}"
            ))
            .into());
        }
        bail!("`subcast-node put` failed: {}", err.trim());
    }
    let put: Value = serde_json::from_str(out.trim())
        .with_context(|| format!("`subcast-node put --json` printed {out:?}"))?;
    let placement: Vec<Vec<String>> = put["placement"]
        .as_array()
        .ok_or_else(|| anyhow!("the put report has no placement: {put}"))?
        .iter()
        .map(|ids| {
            ids.as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_u64)
                .map(|id| {
                    lab.hosts()
                        .values()
                        .find(|h| u64::from(h.index) == id)
                        .map_or(format!("node{id}"), |h| h.name.clone())
                })
                .collect()
        })
        .collect();

    // Each rendezvous group, matched to its chunk by the PUT_ACCEPT naming it.
    let name_of = |id: &u32| {
        lab.hosts()
            .values()
            .find(|h| u32::from(h.index) == *id)
            .map_or(format!("node{id}"), |h| h.name.clone())
    };
    let mut groups = Vec::new();
    let mut all_ok = !watched.order.is_empty();
    let mut order = watched.order.clone();
    // Chunks are named in the order they were accepted: "data 0", "data 1", ...,
    // "manifest". Chunks with the same target set share one group.
    let mut labels: Vec<([u8; 32], String)> = Vec::new();
    for a in accepted.iter().filter(|a| !a.manifest) {
        if !labels.iter().any(|l| l.0 == a.chunk) {
            labels.push((a.chunk, format!("data {}", labels.len())));
        }
    }
    for a in accepted.iter().filter(|a| a.manifest) {
        if !labels.iter().any(|l| l.0 == a.chunk) {
            labels.push((a.chunk, "manifest".to_string()));
        }
    }
    let label_pos = |c: &[u8; 32]| labels.iter().position(|l| l.0 == *c).unwrap_or(usize::MAX);
    // Groups in the order of their first chunk (data first, then manifests).
    order.sort_by_key(|g| {
        accepted
            .iter()
            .filter(|a| a.group == *g)
            .map(|a| label_pos(&a.chunk))
            .min()
            .unwrap_or(usize::MAX)
    });
    for g in &order {
        let mine: Vec<&Accepted> = accepted.iter().filter(|a| a.group == *g).collect();
        let Some(first) = mine.first() else {
            all_ok = false;
            groups.push(json!({"group": g.to_canonical().to_string(), "error": "no PUT_ACCEPT named this group"}));
            continue;
        };
        let mut targets: Vec<String> = first.targets.iter().map(name_of).collect();
        targets.sort();
        let mut chunks: Vec<(usize, String)> = mine
            .iter()
            .map(|a| (label_pos(&a.chunk), labels[label_pos(&a.chunk)].1.clone()))
            .collect();
        chunks.sort();
        chunks.dedup();
        let chunks: Vec<String> = chunks.into_iter().map(|c| c.1).collect();
        // Every chunk of a group went to the same targets (the group is the set).
        let same_set = mine.iter().all(|a| {
            let mut t: Vec<String> = a.targets.iter().map(name_of).collect();
            t.sort();
            t == targets
        });
        all_ok &= same_set;
        let installed = watched.ports.get(g).cloned().unwrap_or_default();
        let mut full = BTreeMap::new();
        for sw in topo.switches.keys() {
            full.insert(sw.clone(), installed.get(sw).cloned().unwrap_or_default());
        }
        let expected = expect::expected_ports(&lab.active_topology()?, &targets, &members);
        let (mut switches, mut ports_ok) = switches_json(&full, &expected);
        // `bridge monitor` sees Linux bridges only; an OVS switch's group lives in its
        // flow table for the put's milliseconds and is not observed here.
        let unobserved: Vec<&String> = lab
            .switches()
            .iter()
            .filter(|(_, s)| s.ovs.is_some())
            .map(|(n, _)| n)
            .collect();
        if !unobserved.is_empty() {
            ports_ok = true;
            if let Value::Object(m) = &mut switches {
                for (sw, v) in m.iter_mut() {
                    if unobserved.contains(&sw) {
                        v["ports"] = Value::Null;
                        v["match"] = Value::Null;
                        v["note"] =
                            json!("OVS switch: not observable during a put (see subset-only)");
                    } else {
                        ports_ok &= v["match"] == true;
                    }
                }
            }
        }
        let mut per_host = serde_json::Map::new();
        let mut deliv_ok = true;
        for (h, t) in &seen {
            let got = t.get(g).copied().unwrap_or_default();
            let is_target = targets.contains(h);
            deliv_ok &= (got.datagrams > 0) == is_target;
            per_host.insert(
                h.clone(),
                json!({"target": is_target, "datagrams": got.datagrams, "bytes": got.bytes}),
            );
        }
        all_ok &= ports_ok && deliv_ok;
        groups.push(json!({
            "group": g.to_canonical().to_string(),
            "chunk": chunks.first(),
            "chunks": chunks,
            "one_target_set": same_set,
            "targets": targets,
            "switches": switches,
            "ports_match": ports_ok,
            "deliveries": per_host,
            "deliveries_ok": deliv_ok,
            "entries_deleted": watched.deleted.get(g).copied().unwrap_or(0),
        }));
    }
    let main = groups.first().cloned().unwrap_or(Value::Null);
    let main_group: Option<Ipv6Addr> = order.first().copied();
    // Cross-check: the put's own report names the same target sets.
    // One target set per chunk: the last PUT_ACCEPT of each (a replaced target
    // makes a new accept).
    let mut from_accepts: Vec<Vec<String>> = labels
        .iter()
        .filter_map(|(c, _)| accepted.iter().rev().find(|a| a.chunk == *c))
        .map(|a| {
            let mut t: Vec<String> = a.targets.iter().map(name_of).collect();
            t.sort();
            t
        })
        .collect();
    let mut from_report: Vec<Vec<String>> = placement
        .iter()
        .map(|t| {
            let mut t = t.clone();
            t.sort();
            t
        })
        .collect();
    from_accepts.sort();
    from_report.sort();
    let placement_agrees = from_accepts == from_report;
    all_ok &= placement_agrees;

    // Get and compare.
    let back = dir.join("object.back");
    let b = back.display().to_string();
    let t1 = Instant::now();
    let (gok, gout, gerr) = run_timeout(
        lab,
        &s.netns,
        &[&node, "--config", &c, "get", name, "-o", &b, "--json", "-q"],
        Duration::from_secs(60),
    )?;
    let get_ms = t1.elapsed().as_secs_f64() * 1000.0;
    let same = gok && std::fs::read(&back).is_ok_and(|d| d == data);
    let get = json!({
        "ok": same,
        "detail": if same { format!("{} bytes read back, identical to the object put", data.len()) }
                  else if gok { "the object read back differs from the one put".to_string() }
                  else { format!("`subcast-node get` failed: {}", gerr.trim()) },
        "ms": get_ms,
        "report": serde_json::from_str::<Value>(gout.trim()).unwrap_or(Value::Null),
    });

    let mut deliveries = serde_json::Map::new();
    let main_targets: Vec<String> = main["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(String::from))
        .collect();
    for (h, t) in &seen {
        let got = main_group
            .and_then(|g| t.get(&g).copied())
            .unwrap_or_default();
        let all_rv = dstcap::sum(t, in_pool);
        deliveries.insert(
            h.clone(),
            json!({
                "target": main_targets.contains(h),
                "datagrams": got.datagrams, "bytes": got.bytes,
                "all_rendezvous_datagrams": all_rv.datagrams, "all_rendezvous_bytes": all_rv.bytes,
                "node": stack.nodes.contains_key(h),
            }),
        );
    }
    let eg_all = dstcap::sum(&egress, |_| true);
    let eg_rv = dstcap::sum(&egress, in_pool);
    let eg_ng = dstcap::sum(&egress, |a| is_group(a) && !in_pool(a));
    let eg_uc: Tally = dstcap::sum(&egress, |a| !is_group(a));
    let eg_main = main_group
        .and_then(|g| egress.get(&g).copied())
        .unwrap_or_default();
    // Every chunk (data and manifest) on exactly R nodes, counted in their stores.
    let r_want = put["replicas"].as_u64().unwrap_or(3) as usize;
    let data_want = put["chunks"].as_u64().unwrap_or(0) as usize;
    let holders = crate::stored::replicas(&stack.dir, stack.nodes.keys());
    let (stored, stored_ok) = crate::stored::report(&holders, r_want, data_want);
    let loss = lab.loss_drops()?;
    let ok = all_ok && same && !groups.is_empty() && stored_ok;
    let mut rv = main.clone();
    if let Value::Object(m) = &mut rv {
        m.insert(
            "parent".into(),
            json!({"name": ng, "group": ng_addr.to_canonical().to_string(), "members": members}),
        );
        m.insert("ready_us".into(), json!(ready_us));
        m.insert("ready_means".into(), json!("the sender's first RENDEZVOUS_REQUEST to the controller leaving its eth0 -> the first answer (GRANT) arriving there, from tcpdump timestamps (the controller grants after every agent ACKed)"));
        m.insert(
            "released".into(),
            json!(main["entries_deleted"].as_u64().unwrap_or(0) > 0),
        );
        m.insert(
            "entries_left_after_release".into(),
            json!(main_group.map_or(0, |g| {
                crate::scenario::mdb_ports(lab, g)
                    .map(|p| p.values().map(Vec::len).sum::<usize>())
                    .unwrap_or(0)
            })),
        );
    }
    Ok(json!({
        "ok": ok,
        "scenario": "put-get",
        "topology": opts.topology.display().to_string(),
        "sender": sender,
        "controller": {"switch": stack.ctl_switch, "address": stack.ctl_ip.to_string()},
        "lab_up_ms": r.build_ms,
        "rendezvous": rv,
        "rendezvous_groups": groups,
        "placement_agrees": placement_agrees,
        "payload_bytes": data.len(),
        "deliveries": deliveries,
        "sender_egress_bytes": eg_all.bytes,
        "sender_egress_datagrams": eg_all.datagrams,
        "sender_egress": {"rendezvous": eg_rv, "first_rendezvous_group": eg_main, "negotiating_group": eg_ng, "unicast": eg_uc},
        "put": {"ms": put_ms, "report": put},
        "get": get,
        "stored": stored,
        "loss": loss,
        "family": stack.flavor.name(),
        "bytes_mean": "UDP payload bytes (Replicast headers included, IP/UDP headers not), counted by tcpdump outside the daemons",
    }))
}

/// One line of `bridge monitor mdb`, split into tokens: (deleted, port,
/// group: IPv4 ones IPv4-mapped), or `None` for a line that names no group entry.
pub(crate) fn mdb_event<'a>(toks: &[&'a str]) -> Option<(bool, &'a str, Ipv6Addr)> {
    let after = |k: &str| {
        toks.iter()
            .position(|t| *t == k)
            .and_then(|p| toks.get(p + 1))
    };
    let (port, grp) = (after("port")?, after("grp")?);
    let group = labs::group_ip(grp.parse::<std::net::IpAddr>().ok()?);
    Some((toks.first() == Some(&"Deleted"), port, group))
}
