//! `subcast-lab run`: a topology, the daemons, one scenario, a report.
//!
//! * `subset-only`: ask the controller (HTTP API) for a rendezvous group of the
//!   targets, read every switch's MDB from outside the agents, send N datagrams from
//!   the sender to the group and count them at every host with captures.
//! * `put-get`: storage nodes on every negotiating-group member except the sender;
//!   `subcast-node put --transport rendezvous` of a random object from the sender,
//!   watching the MDBs (`bridge monitor mdb`) and capturing at every host, then
//!   `subcast-node get` and a byte comparison.
//!
//! Every number in the report is measured here, outside the daemons; the
//! `expected` port sets are computed from the topology by [`crate::expect`].

use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use labs::{Lab, LabOptions, Topology};
use serde_json::{Value, json};

use crate::bins::{self, Binaries};
use crate::expect;
use crate::stack::Stack;

/// UDP port the subset-only datagrams go to.
pub const DATA_PORT: u16 = 5000;

/// What to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub topology: PathBuf,
    pub scenario: Scenario,
    pub targets: Option<Vec<String>>,
    pub sender: Option<String>,
    /// subset-only: datagrams and their payload size.
    pub count: u64,
    pub payload_len: usize,
    /// subset-only: microseconds between datagrams (0: back to back).
    pub pace_us: u64,
    /// put-get: object size in bytes.
    pub object_size: usize,
    pub locate: bins::Locate,
    /// rate: clients, seconds, policy, budget.
    pub rate: crate::rate::RateArgs,
    /// put-bench: puts, transport, writers, pacing.
    pub put_bench: crate::putbench::PutBenchArgs,
    /// subset-only: a host that joins the granted group itself (see `rogue.rs`).
    pub rogue_join: Option<String>,
}

/// The scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Storage nodes, a put over a rendezvous group, a get.
    PutGet,
    /// Only the controller and the agents: a rendezvous group and raw datagrams.
    SubsetOnly,
    /// Storage nodes with pair keys, puts read back while a rogue host attacks
    /// every daemon (junk, replays, spoofed source, forgeries by an insider).
    Attack,
    /// K clients asking for groups for S seconds under a policy (see `rate.rs`).
    Rate,
    /// W writers run `subcast-node bench` (N puts, each read back and compared).
    PutBench,
    /// Sites (`sites:`, `site_links:`): a gateway per site, a put at one
    /// site, read at every site (see `sites.rs`).
    MultiSite,
    /// `--seconds` (default 600) of puts, gets, grants and agent restarts;
    /// memory, replay maps, audit rows and leases at the end (see `soak.rs`).
    Soak,
    /// Snapshots, deletes and clones (issue 16; see `snapshots.rs`).
    Snapshots,
    /// The lab alone (no daemons): what the kernel and the disk take for one
    /// round, one pass of `--object-size` and three durable copies, `--puts`
    /// samples each, and the multicast ceiling (see `floor.rs`).
    Floor,
}

/// The negotiating group used: the first one (name order) that has members.
pub fn parent_group(topo: &Topology) -> Result<(String, Ipv6Addr, Vec<String>)> {
    parent_group_where(topo, |_| true)
}

/// [`parent_group`] among the groups of a stack's family (a dual lab has both).
pub fn parent_group_of(
    topo: &Topology,
    fl: crate::stack::Flavor,
) -> Result<(String, Ipv6Addr, Vec<String>)> {
    parent_group_where(topo, |a| fl.has(a))
}

fn parent_group_where(
    topo: &Topology,
    keep: impl Fn(Ipv6Addr) -> bool,
) -> Result<(String, Ipv6Addr, Vec<String>)> {
    let (name, g) = topo
        .negotiating_groups
        .iter()
        .find(|(n, _)| topo.group_address(n).is_some_and(&keep))
        .ok_or_else(|| {
            anyhow!("the topology has no negotiating_groups (of this family): add one")
        })?;
    let addr = topo
        .group_address(name)
        .ok_or_else(|| anyhow!("group {name}"))?;
    let mut members = g.members.clone();
    let order = topo.hosts_in_order();
    members.sort_by_key(|m| order.iter().position(|h| h == m));
    Ok((name.clone(), addr, members))
}

/// Default targets (first, about a third in, next to last member) and sender (the
/// first member that is not a target), or the ones given, checked.
pub fn pick_hosts(
    topo: &Topology,
    members: &[String],
    targets: Option<&[String]>,
    sender: Option<&str>,
) -> Result<(Vec<String>, String)> {
    let n = members.len();
    let targets: Vec<String> = match targets {
        Some(t) => t.to_vec(),
        None => {
            let mut idx = vec![0, n / 3, n.saturating_sub(2)];
            idx.dedup();
            let mut t: Vec<String> = idx.into_iter().map(|i| members[i].clone()).collect();
            t.dedup();
            t
        }
    };
    for t in &targets {
        if !members.contains(t) {
            bail!("target {t} is not a member of the negotiating group (members: {members:?})");
        }
    }
    let sender = match sender {
        Some(s) => s.to_string(),
        None => topo
            .hosts_in_order()
            .into_iter()
            .find(|h| !targets.iter().any(|t| t == h))
            .ok_or_else(|| anyhow!("every host is a target: pass --sender"))?
            .to_string(),
    };
    if !topo.hosts.contains_key(&sender) {
        bail!("sender {sender} is not a host of the topology");
    }
    Ok((targets, sender))
}

/// A built lab with its daemons.
pub struct Running {
    pub lab: Lab,
    pub stack: Stack,
    pub bins: Binaries,
    pub build_ms: u128,
}

/// Build the lab (closed MLD, static negotiating groups) and start the daemons.
pub fn bring_up(topo: &Topology, locate: &bins::Locate) -> Result<Running> {
    bring_up_with(topo, locate, &crate::stack::CtlTweaks::default())
}

/// How a lab for the daemons is built: switches closed to MLD (reports from
/// host ports dropped, solicited-node groups pinned) and static entries for
/// the negotiating groups.
pub fn daemon_lab_options() -> LabOptions {
    LabOptions {
        close_mld: true,
        static_negotiating_groups: true,
        ..LabOptions::default()
    }
}

/// [`bring_up`] with a changed controller config.
pub fn bring_up_with(
    topo: &Topology,
    locate: &bins::Locate,
    tweaks: &crate::stack::CtlTweaks,
) -> Result<Running> {
    if !labs::lab_tests_enabled() {
        bail!("a lab needs root and iproute2 (run as root, apt-get install iproute2)");
    }
    let bins = bins::locate_for(locate, topo)?;
    let t0 = Instant::now();
    let lab = Lab::build(topo, daemon_lab_options()).context("building the lab")?;
    let stack = Stack::start_with(&lab, &bins, tweaks)?;
    Ok(Running {
        lab,
        stack,
        bins,
        build_ms: t0.elapsed().as_millis(),
    })
}

/// Ports of `group` on an OVS switch: the flow `ipv6_dst=GROUP actions=group:N`
/// and group N's buckets (`output:P`), OpenFlow port numbers mapped to port names.
pub fn ovs_ports(lab: &Lab, switch: &str, group: Ipv6Addr) -> Result<Vec<String>> {
    let flows = lab.ovs_ofctl(switch, "dump-flows", &[])?;
    let flows = String::from_utf8_lossy(&flows.stdout);
    // The agent matches `ipv6_dst`, or `nw_dst` for an IPv4 group.
    let field = match group.to_ipv4_mapped() {
        Some(v4) => format!("nw_dst={v4}"),
        None => format!("ipv6_dst={group}"),
    };
    let needle = format!("{field} ");
    let needle2 = format!("{field},");
    let Some(gid) = flows
        .lines()
        .filter(|l| l.contains(&needle) || l.contains(&needle2))
        .find_map(|l| l.split("actions=group:").nth(1))
        .map(|r| {
            r.trim()
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap_or("")
                .to_string()
        })
    else {
        return Ok(Vec::new());
    };
    let groups = lab.ovs_ofctl(switch, "dump-groups", &[])?;
    let groups = String::from_utf8_lossy(&groups.stdout);
    let sw = lab.switch(switch);
    let mut ports = Vec::new();
    for l in groups
        .lines()
        .filter(|l| l.contains(&format!("group_id={gid},")))
    {
        for part in l.split("output:").skip(1) {
            let num: String = part.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(n) = num.parse::<u32>()
                && let Some(p) = sw.ports.iter().find(|p| p.ofport == Some(n))
            {
                ports.push(p.name.clone());
            }
        }
    }
    ports.sort();
    Ok(ports)
}

/// Ports of `group` per switch, read from the bridges' MDBs (OVS: flow + group).
pub fn mdb_ports(lab: &Lab, group: Ipv6Addr) -> Result<BTreeMap<String, Vec<String>>> {
    let mut out = BTreeMap::new();
    for sw in lab.switches().keys() {
        if lab.switch(sw).ovs.is_some() {
            out.insert(sw.clone(), ovs_ports(lab, sw, group)?);
            continue;
        }
        let mut ports: Vec<String> = lab
            .mdb_show(sw)?
            .into_iter()
            .filter(|e| e.group == group)
            .map(|e| e.port)
            .collect();
        ports.sort();
        out.insert(sw.clone(), ports);
    }
    Ok(out)
}

/// A granted lease.
pub struct Lease {
    pub group: Ipv6Addr,
    pub lease_id: String,
    pub grant_us: u128,
}

/// Ask the controller for a rendezvous group.
pub fn request(lab: &Lab, stack: &Stack, parent: &str, targets: &[String]) -> Result<Lease> {
    let t = Instant::now();
    let (s, v) = stack.http(
        lab,
        "POST",
        "/v1/rendezvous",
        Some(json!({"parent": parent, "targets": targets, "lifetime_ms": 30000})),
    )?;
    let grant_us = t.elapsed().as_micros();
    if s != 201 {
        bail!(
            "the controller refused the rendezvous group (HTTP {s}): {v}\n{}",
            stack.logs()
        );
    }
    // IPv4 groups come as `239.92.128.1`: kept IPv4-mapped here (the group form).
    let group = v["group"]
        .as_str()
        .and_then(|g| g.parse::<std::net::IpAddr>().ok())
        .map(labs::group_ip)
        .ok_or_else(|| anyhow!("grant without a group: {v}"))?;
    let lease_id = v["lease_id"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| v["lease_id"].as_u64().map(|n| n.to_string()))
        .ok_or_else(|| anyhow!("grant without a lease_id: {v}"))?;
    Ok(Lease {
        group,
        lease_id,
        grant_us,
    })
}

/// Release a lease; true when every agent acknowledged the clear.
/// Release a lease: whether the controller took it back (every CLEAR it sent
/// at once ACKed), and what became of the group (`cleared`, `warm`: kept
/// installed `WARM_MS` for reuse, `in-use`, `pinned`).
pub fn release(lab: &Lab, stack: &Stack, lease: &Lease) -> Result<(bool, String)> {
    let (s, v) = stack.http(
        lab,
        "DELETE",
        &format!("/v1/rendezvous/{}", lease.lease_id),
        None,
    )?;
    let state = v["group_state"].as_str().unwrap_or("").to_owned();
    let ok = s == 200
        && v["clear"]
            .as_array()
            .is_none_or(|a| a.iter().all(|c| c["outcome"] == "acked"));
    Ok((ok, state))
}

/// Entries of `group` left on the switches, polled every 20 ms until none is
/// left or `within` passed: (entries left, ms it took).
pub fn wait_cleared(lab: &Lab, group: Ipv6Addr, within: Duration) -> Result<(usize, u64)> {
    let t0 = Instant::now();
    loop {
        let left: usize = mdb_ports(lab, group)?.values().map(Vec::len).sum();
        if left == 0 || t0.elapsed() >= within {
            return Ok((left, t0.elapsed().as_millis() as u64));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The switches part of the report, and whether every switch matched.
pub fn switches_json(
    installed: &BTreeMap<String, Vec<String>>,
    expected: &BTreeMap<String, Vec<String>>,
) -> (Value, bool) {
    let mut all = true;
    let mut m = serde_json::Map::new();
    for (sw, want) in expected {
        let got = installed.get(sw).cloned().unwrap_or_default();
        let ok = &got == want;
        all &= ok;
        m.insert(
            sw.clone(),
            json!({"ports": got, "expected": want, "match": ok}),
        );
    }
    (Value::Object(m), all)
}

/// subset-only on a running lab.
pub fn subset_only(
    r: &Running,
    opts: &RunOptions,
    targets: &[String],
    sender: &str,
) -> Result<Value> {
    let (lab, stack) = (&r.lab, &r.stack);
    let topo = lab.topology();
    let (ng, ng_addr, members) = parent_group(topo)?;
    let lease = request(lab, stack, &ng, targets)?;
    let installed = mdb_ports(lab, lease.group)?;
    let expected = expect::expected_ports(&lab.active_topology()?, targets, &members);
    let (switches, ports_ok) = switches_json(&installed, &expected);

    let g = lease.group;
    let mut rogue = match &opts.rogue_join {
        Some(h) => Some(crate::rogue::join(lab, h, g, DATA_PORT, targets, sender)?),
        None => None,
    };
    let after_join = match rogue {
        Some(_) => mdb_ports(lab, g)?,
        None => installed.clone(),
    };
    let gi = labs::ip_group(g);
    let s = lab.host(sender);
    let egress = lab.capture_on(&s.netns, &s.ifname, "out", &format!("dst {gi}"))?;
    let hosts: Vec<&str> = lab.hosts().keys().map(String::as_str).collect();
    let (sent, counts) = lab.count_at(
        &hosts,
        &format!("dst {gi} and dst port {DATA_PORT}"),
        || {
            if opts.pace_us == 0 {
                Ok(lab.send_multicast(sender, g, DATA_PORT, opts.count, opts.payload_len)?)
            } else {
                send_paced(lab, sender, g, opts)
            }
        },
    )?;
    sent?;
    let egress = egress.stop()?;
    let (released, group_state) = release(lab, stack, &lease)?;
    let left: usize = mdb_ports(lab, g)?.values().map(Vec::len).sum();
    // A warm group stays for reuse, all of it; then the controller clears it.
    let installed_n: usize = installed.values().map(Vec::len).sum();
    let (warm_ok, cleared) = match group_state.as_str() {
        "warm" => {
            let within = Duration::from_millis(crate::stack::WARM_MS + 5000);
            let (after, ms) = wait_cleared(lab, g, within)?;
            (
                left == installed_n && after == 0,
                json!({"entries_left": after, "after_ms": ms}),
            )
        }
        _ => (left == 0, Value::Null),
    };

    let payload = opts.count * opts.payload_len as u64;
    let loss = lab.loss_drops()?;
    // With loss, a target gets what survived its path (captures on its eth0 see only
    // that: drops toward a host happen before it); without, everything.
    let lossy = loss.hops.values().any(|h| h.loss_pct > 0.0);
    let mut deliveries = serde_json::Map::new();
    let mut deliveries_ok = true;
    for (h, c) in &counts {
        let is_target = targets.contains(h);
        let want = if is_target { opts.count } else { 0 };
        let ok = if lossy && is_target {
            c.datagrams <= want
        } else {
            c.datagrams == want
        };
        deliveries_ok &= ok && c.kernel_dropped == 0;
        deliveries.insert(
            h.clone(),
            json!({"target": is_target, "datagrams": c.datagrams, "bytes": c.bytes,
                   "expected_datagrams": want, "kernel_dropped": c.kernel_dropped}),
        );
    }
    // Next to an OVS switch the sender's own hop drops on its egress, before its
    // capture: those datagrams are in the counters.
    let sender_hop = lab
        .hops()
        .into_iter()
        .find(|h| h.place.hook == "egress" && h.place.netns == s.netns)
        .map_or(0, |h| loss.hops.get(&h.name).map_or(0, |d| d.dropped));
    let egress_ok = egress.bytes + sender_hop * opts.payload_len as u64 == payload;
    let (rogue_v, rogue_ok) = match rogue.as_mut() {
        Some(r) => {
            let n = counts.get(&r.host).map_or(u64::MAX, |c| c.datagrams);
            r.report(lab, &installed, &after_join, n)?
        }
        None => (Value::Null, true),
    };
    drop(rogue);
    let ok = ports_ok && deliveries_ok && egress_ok && released && warm_ok && rogue_ok;
    Ok(json!({
        "ok": ok,
        "scenario": "subset-only",
        "topology": opts.topology.display().to_string(),
        "sender": sender,
        "controller": {"switch": stack.ctl_switch, "address": stack.ctl_ip.to_string()},
        "lab_up_ms": r.build_ms,
        "rendezvous": {
            "group": gi.to_string(),
            "lease_id": lease.lease_id,
            "parent": {"name": ng, "group": labs::ip_group(ng_addr).to_string(), "members": members},
            "targets": targets,
            "ready_us": lease.grant_us,
            "ready_means": "HTTP POST /v1/rendezvous sent -> grant received (the controller grants after every agent ACKed its installed port set)",
            "switches": switches,
            "ports_match": ports_ok,
            "released": released,
            "group_state_after_release": group_state,
            "entries_left_after_release": left,
            "cleared_after_warm": cleared,
        },
        "datagrams_sent": opts.count,
        "payload_bytes": payload,
        "deliveries": deliveries,
        "deliveries_ok": deliveries_ok,
        "rogue_join": rogue_v,
        "sender_egress_bytes": egress.bytes,
        "sender_egress_datagrams": egress.datagrams,
        "loss": loss,
        "get": {"ok": Value::Null, "note": "subset-only stores no object"},
        "bytes_mean": "UDP payload bytes, counted by tcpdump captures outside the daemons",
    }))
}

/// Send `opts.count` datagrams (8-byte sequence number, then filler) from the
/// sender's `eth0` to `group`, one every `opts.pace_us` microseconds.
fn send_paced(lab: &Lab, sender: &str, group: Ipv6Addr, opts: &RunOptions) -> Result<()> {
    let h = lab.host(sender);
    let (s, to): (std::net::UdpSocket, std::net::SocketAddr) = match group.to_ipv4_mapped() {
        Some(v4) => {
            let local = h
                .ipv4
                .ok_or_else(|| anyhow!("host {sender} has no IPv4 address"))?;
            let s =
                labs::netns::in_netns(&h.netns, move || std::net::UdpSocket::bind((local, 0)))??;
            let r = socket2::SockRef::from(&s);
            r.set_multicast_if_v4(&local)?;
            r.set_multicast_ttl_v4(1)?;
            r.set_multicast_loop_v4(false)?;
            (s, (v4, DATA_PORT).into())
        }
        None => {
            let s = lab.udp_socket(sender, 0, &[])?;
            let r = socket2::SockRef::from(&s);
            r.set_multicast_if_v6(h.ifindex)?;
            r.set_multicast_hops_v6(1)?;
            r.set_multicast_loop_v6(false)?;
            (
                s,
                std::net::SocketAddrV6::new(group, DATA_PORT, 0, 0).into(),
            )
        }
    };
    let mut buf = vec![0x5cu8; opts.payload_len.max(8)];
    let t0 = Instant::now();
    for i in 0..opts.count {
        buf[..8].copy_from_slice(&i.to_be_bytes());
        s.send_to(&buf[..opts.payload_len], to)?;
        let next = std::time::Duration::from_micros(opts.pace_us * (i + 1));
        if let Some(wait) = next.checked_sub(t0.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    Ok(())
}

/// Run one scenario end to end (lab, daemons, scenario, teardown).
pub fn run(opts: &RunOptions) -> Result<Value> {
    check_family(opts)?;
    if opts.scenario == Scenario::Rate {
        let sender = opts.sender.as_deref();
        return crate::rate::run(&opts.topology, sender, &opts.rate, &opts.locate);
    }
    if opts.scenario == Scenario::Floor {
        return crate::floor::run(opts);
    }
    if opts.scenario == Scenario::PutBench
        && let Some(peer) = opts.put_bench.peer
    {
        return crate::putbench_peer::run(opts, peer);
    }
    let topo = Topology::from_yaml_file(&opts.topology)?;
    let (_, _, members) = parent_group(&topo)?;
    let (targets, sender) = pick_hosts(
        &topo,
        &members,
        opts.targets.as_deref(),
        opts.sender.as_deref(),
    )?;
    if topo.family == labs::Family::Dual {
        return crate::dual::put_get(&topo, opts, &sender);
    }
    let mut r = bring_up(&topo, &opts.locate)?;
    let out = match opts.scenario {
        Scenario::SubsetOnly | Scenario::Rate => subset_only(&r, opts, &targets, &sender),
        Scenario::Attack => crate::attack::attack(&mut r, opts, &sender),
        Scenario::Soak => crate::soak::soak(&mut r, opts, &sender),
        Scenario::MultiSite => bail!("multi-site needs a topology with `sites:`"),
        Scenario::Floor => unreachable!("the floor runs without daemons, above"),
        Scenario::Snapshots => crate::snapshots::snapshots(&mut r, &sender),
        Scenario::PutBench => crate::putbench::put_bench(&mut r, opts),
        Scenario::PutGet => crate::putget::put_get(&mut r, opts, &sender).or_else(|e| {
            if crate::putget::unsupported(&e) {
                eprintln!(
                    "subcast-lab: put-get is not possible ({e:#}); FALLING BACK to subset-only"
                );
                subset_only(&r, opts, &targets, &sender).map(|mut v| {
                    v["fallback"] = json!(format!(
                        "put-get could not run ({e:#}); this is the subset-only scenario"
                    ));
                    v
                })
            } else {
                Err(e)
            }
        }),
    };
    let out = out.map_err(|e| anyhow!("{e:#}\ndaemon logs:\n{}", r.stack.logs()));
    let out = out.map(|mut v| {
        annotate_backends(&mut v, &topo, &r.stack);
        v
    });
    let out = out.and_then(|mut v| {
        crate::expect::annotate_tree(&mut v, &r.lab)?;
        Ok(v)
    });
    let Running { lab, stack, .. } = r;
    stack.stop();
    drop(lab);
    out
}

/// Scenarios that run on `family: ipv4` topologies (the daemons configured in
/// IPv4); the others configure IPv6 only so far and refuse such a topology.
pub const IPV4_SCENARIOS: [Scenario; 4] = [
    Scenario::PutGet,
    Scenario::SubsetOnly,
    Scenario::PutBench,
    Scenario::Floor,
];

/// Refuse a topology whose family the scenario cannot configure the daemons for.
pub fn check_family(opts: &RunOptions) -> Result<()> {
    let topo = Topology::from_yaml_file(&opts.topology)?;
    let names = "put-get, subset-only, put-bench (not --peer), floor and the demo";
    match topo.family {
        labs::Family::Ipv6 => Ok(()),
        labs::Family::Ipv4
            if IPV4_SCENARIOS.contains(&opts.scenario) && opts.put_bench.peer.is_none() =>
        {
            Ok(())
        }
        labs::Family::Ipv4 => bail!(
            "{}: `family: ipv4` runs {names} only; scenario {:?} configures its daemons in \
             IPv6 so far: run it on an IPv6 topology (e.g. seed-three-switch.yaml)",
            opts.topology.display(),
            opts.scenario
        ),
        labs::Family::Dual if opts.scenario == Scenario::PutGet => Ok(()),
        labs::Family::Dual => bail!(
            "{}: `family: dual` runs put-get (and the demo) only: an IPv6 and an IPv4 stack \
             of daemons side by side (an agent serves one family); run {names} with \
             `family: ipv4` or `family: ipv6`",
            opts.topology.display()
        ),
    }
}

/// Says in the report which backend drove each switch, as its agent told the
/// controller in HELLO: `backends.<S>` for every scenario, and
/// `rendezvous.switches.<S>.backend` (and in every `rendezvous_groups[]`), with
/// `snmp: {version, address, handler}` on SNMP switches. A switch driven by another
/// backend than its topology's `backend:` fails the run (`backends_match`).
pub fn annotate_backends(v: &mut Value, topo: &Topology, stack: &Stack) {
    let want = labs::generate::backends(topo);
    let mut all = serde_json::Map::new();
    let mut matches = true;
    for (sw, kind) in &want {
        let got = stack.backends.get(sw);
        matches &= got.map(String::as_str) == Some(*kind);
        all.insert(sw.clone(), json!(got));
    }
    let add = |switches: Option<&mut Value>| {
        if let Some(Value::Object(m)) = switches {
            for (sw, s) in m.iter_mut() {
                s["backend"] = json!(stack.backends.get(sw));
                if let Some(snmp) = stack.snmp.get(sw) {
                    s["snmp"] = snmp.describe();
                }
            }
        }
    };
    add(v.pointer_mut("/rendezvous/switches"));
    if let Some(groups) = v.get_mut("rendezvous_groups").and_then(Value::as_array_mut) {
        for g in groups {
            add(g.get_mut("switches"));
        }
    }
    v["backends"] = Value::Object(all);
    v["backends_match"] = json!(matches);
    if !matches {
        v["ok"] = json!(false);
    }
}
