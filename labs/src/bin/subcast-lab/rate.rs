//! `subcast-lab run TOPOLOGY --scenario rate`: a transaction-rate load.
//!
//! K clients ask for groups of random 3-subsets of the first negotiating group's
//! members (the sender left out; the first six others, so 20 sets on a big group)
//! for S seconds, under one policy:
//!
//! * `reuse`: the lab's controller as it is (reuse by target set, warm period
//!   [`crate::stack::WARM_MS`], LRU eviction), with `budget:` N on every switch;
//! * `fresh`: the same with `leases.warm_ms: 0` (a released group is cleared at once);
//! * `preenum`: `reuse` plus `preenumerate: all` on the parent group; the clock
//!   starts once the pinned groups are installed;
//! * `lazy-mld`: no controller; the group is a hash of the target set, the targets
//!   join it (MLD), 10 ms join delay, per-client join cache (see [`crate::rate_load`]).
//!
//! Outside the daemons: a poller reads every switch's table every ~20 ms (most
//! pool groups held at once per switch, entry adds/removes); after the load, up to 5
//! of the granted target sets are requested again and checked as subset-only checks
//! them (installed ports vs expected, datagrams counted at every host by tcpdump).

use std::collections::BTreeMap;
use std::net::{Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use labs::{Lab, LabOptions, Topology};
use serde_json::{Value, json};

use crate::bins::{self, Locate};
use crate::rate_load::{self as load, ClientOut, CtlEndpoint, TargetSet};
use crate::rate_watch::{BridgeChanges, MdbEvents};
use crate::scenario::{DATA_PORT, mdb_ports, parent_group, pick_hosts, switches_json};
use crate::stack::{CtlTweaks, Stack, wait_for};

/// How groups are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Policy {
    /// A fresh group per request: the controller with `leases.warm_ms: 0`.
    Fresh,
    /// The controller's default: reuse by target set, warm period, LRU eviction.
    Reuse,
    /// Reuse plus `preenumerate: all` on the parent group.
    Preenum,
    /// No controller: hashed group, MLD joins, 10 ms join delay, join cache.
    LazyMld,
}

impl Policy {
    pub fn name(self) -> &'static str {
        match self {
            Policy::Fresh => "fresh",
            Policy::Reuse => "reuse",
            Policy::Preenum => "preenum",
            Policy::LazyMld => "lazy-mld",
        }
    }
}

/// Options of the `rate` scenario (`run --scenario rate`).
#[derive(clap::Args, Debug, Clone)]
pub struct RateArgs {
    /// rate: concurrent clients.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// rate: seconds of load (default 10); soak: seconds of churn (default 600).
    #[arg(long)]
    pub seconds: Option<u64>,
    /// rate: how groups are made.
    #[arg(long, value_enum, default_value = "reuse")]
    pub policy: Policy,
    /// rate: groups the controller may put on each switch (controller policies).
    #[arg(long, default_value_t = 64)]
    pub budget: u32,
}

impl RateArgs {
    /// Seconds of load of the rate scenario.
    pub fn seconds(&self) -> u64 {
        self.seconds.unwrap_or(10)
    }
}

impl Default for RateArgs {
    fn default() -> Self {
        RateArgs {
            clients: 4,
            seconds: None,
            policy: Policy::Reuse,
            budget: 64,
        }
    }
}

/// Target sets checked after the load.
const VERIFY_SETS: usize = 5;
/// Datagrams sent to each checked group.
const VERIFY_DATAGRAMS: u64 = 10;
/// Members (besides the sender) the target sets are drawn from.
const UNIVERSE: usize = 6;

/// Every `k`-subset of `items`, in lexicographic order.
fn combinations<T: Clone>(items: &[T], k: usize) -> Vec<Vec<T>> {
    if k == 0 {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for i in 0..items.len() {
        for mut rest in combinations(&items[i + 1..], k - 1) {
            rest.insert(0, items[i].clone());
            out.push(rest);
        }
    }
    out
}

/// The run as the lab sees it, shared by the policies.
struct Plan {
    topo: Topology,
    parent: (String, Ipv6Addr, Vec<String>),
    sender: String,
    universe: Vec<String>,
    set_names: Vec<Vec<String>>,
}

fn plan(topology: &Path, sender: Option<&str>) -> Result<Plan> {
    let topo = Topology::from_yaml_file(topology)?;
    let parent = parent_group(&topo)?;
    let (_, sender) = pick_hosts(&topo, &parent.2, None, sender)?;
    let universe: Vec<String> = parent
        .2
        .iter()
        .filter(|m| **m != sender)
        .take(UNIVERSE)
        .cloned()
        .collect();
    if universe.is_empty() {
        bail!(
            "negotiating group {} has no member besides the sender {sender}",
            parent.0
        );
    }
    let set_names = combinations(&universe, universe.len().min(3));
    Ok(Plan {
        topo,
        parent,
        sender,
        universe,
        set_names,
    })
}

fn target_sets(lab: &Lab, p: &Plan) -> Vec<TargetSet> {
    p.set_names
        .iter()
        .map(|s| s.iter().map(|n| (n.clone(), lab.host(n).ipv6)).collect())
        .collect()
}

/// Per switch: most pool groups held at once, entry adds, entry removes; from the
/// MDB events on Linux bridges, from the polls elsewhere (OVS).
#[derive(Debug, Default)]
struct Tables {
    max: BTreeMap<String, usize>,
    max_polled: BTreeMap<String, usize>,
    ops: f64,
    polls: u64,
}

fn tables(polled: load::Polled, events: BTreeMap<String, BridgeChanges>) -> Tables {
    let mut t = Tables {
        max_polled: polled.max_groups.clone(),
        polls: polled.polls,
        ..Tables::default()
    };
    for (sw, m) in &polled.max_groups {
        let (max, ops) = match events.get(sw) {
            Some(e) => (e.max_groups.max(*m), e.adds + e.dels),
            None => (
                *m,
                polled.adds.get(sw).copied().unwrap_or(0)
                    + polled.dels.get(sw).copied().unwrap_or(0),
            ),
        };
        t.max.insert(sw.clone(), max);
        t.ops += ops as f64;
    }
    t
}

/// Run `clients` client threads, the MDB monitors and the table poller until
/// `seconds` passed.
fn drive(
    lab: &Lab,
    clients: usize,
    seconds: u64,
    client: impl Fn(usize, Instant) -> Result<ClientOut> + Sync,
) -> Result<(Vec<ClientOut>, Tables, f64)> {
    let events = MdbEvents::start(lab)?;
    let (outs, polled, elapsed) = drive_load(lab, clients, seconds, client)?;
    let events = events.stop(lab)?;
    Ok((outs, tables(polled, events), elapsed))
}

fn drive_load(
    lab: &Lab,
    clients: usize,
    seconds: u64,
    client: impl Fn(usize, Instant) -> Result<ClientOut> + Sync,
) -> Result<(Vec<ClientOut>, load::Polled, f64)> {
    let stop = AtomicBool::new(false);
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(seconds);
    std::thread::scope(|sc| {
        let poller = sc.spawn(|| load::poll_tables(lab, &stop));
        let handles: Vec<_> = (0..clients)
            .map(|i| {
                let client = &client;
                sc.spawn(move || client(i, deadline))
            })
            .collect();
        let outs: Vec<Result<ClientOut>> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(anyhow!("client panicked"))))
            .collect();
        let elapsed = t0.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        let polled = poller
            .join()
            .unwrap_or_else(|_| Err(anyhow!("poller panicked")))?;
        let outs = outs.into_iter().collect::<Result<Vec<_>>>()?;
        Ok((outs, polled, elapsed))
    })
}

/// Count datagrams at every host while `VERIFY_DATAGRAMS` go to `group`; targets
/// must get all, every other host none.
fn deliveries(
    lab: &Lab,
    sender: &str,
    group: Ipv6Addr,
    targets: &[String],
) -> Result<(Value, bool)> {
    let hosts: Vec<&str> = lab.hosts().keys().map(String::as_str).collect();
    let (sent, counts) = lab.count_at(
        &hosts,
        &format!("dst {group} and dst port {DATA_PORT}"),
        || lab.send_multicast(sender, group, DATA_PORT, VERIFY_DATAGRAMS, 200),
    )?;
    sent?;
    let mut ok = true;
    let mut m = serde_json::Map::new();
    for (h, c) in &counts {
        let target = targets.contains(h);
        let want = if target { VERIFY_DATAGRAMS } else { 0 };
        // Nothing may reach a non-target. A target must get the group's
        // datagrams, but a lossy link on its path may drop some of them:
        // that is the topology's loss, not a group that misses it.
        ok &= if target {
            (1..=want).contains(&c.datagrams)
        } else {
            c.datagrams == 0
        };
        m.insert(
            h.clone(),
            json!({"datagrams": c.datagrams, "expected": want}),
        );
    }
    Ok((Value::Object(m), ok))
}

/// Distinct granted sets, at most [`VERIFY_SETS`], spread over the list.
fn sample_sets(outs: &[ClientOut]) -> Vec<usize> {
    let mut all: Vec<usize> = outs
        .iter()
        .flat_map(|o| o.granted.iter().copied())
        .collect();
    all.sort_unstable();
    all.dedup();
    let step = all.len().div_ceil(VERIFY_SETS).max(1);
    all.into_iter().step_by(step).take(VERIFY_SETS).collect()
}

/// Run the rate scenario end to end: lab, daemons (controller policies), load,
/// checks, teardown.
pub fn run(topology: &Path, sender: Option<&str>, a: &RateArgs, locate: &Locate) -> Result<Value> {
    if !labs::lab_tests_enabled() {
        bail!("a lab needs root and iproute2 (run as root, apt-get install iproute2)");
    }
    if a.clients == 0 {
        bail!("--clients must be at least 1");
    }
    let p = plan(topology, sender)?;
    let mut v = match a.policy {
        Policy::LazyMld => run_lazy(&p, a)?,
        _ => run_controller(&p, a, locate)?,
    };
    v["topology"] = json!(topology.display().to_string());
    Ok(v)
}

fn wait_pinned(lab: &Lab, stack: &Stack) -> Result<u64> {
    let mut last = (u64::MAX, 0u32);
    let mut pinned = 0;
    wait_for(
        "the pre-enumerated groups to be installed",
        Duration::from_secs(60),
        || {
            let (s, v) = stack.http(lab, "GET", "/v1/subsets", None)?;
            let list = v.as_array().cloned().unwrap_or_default();
            let n = list.iter().filter(|x| x["state"] == "pinned").count() as u64;
            let busy = list
                .iter()
                .any(|x| x["state"] == "installing" || x["state"] == "clearing");
            // Settled: some pinned, nothing moving, the same count three polls in a row.
            last = if n == last.0 { (n, last.1 + 1) } else { (n, 0) };
            pinned = n;
            Ok(s == 200 && n > 0 && !busy && last.1 >= 3)
        },
    )?;
    Ok(pinned)
}

fn metrics(lab: &Lab, stack: &Stack) -> Result<String> {
    let (s, v) = stack.http(lab, "GET", "/metrics", None)?;
    if s != 200 {
        bail!("GET /metrics answered HTTP {s}");
    }
    Ok(v.as_str().unwrap_or_default().to_string())
}

fn run_controller(p: &Plan, a: &RateArgs, locate: &Locate) -> Result<Value> {
    let bins = bins::locate_for(locate, &p.topo)?;
    let t_up = Instant::now();
    let opts = LabOptions {
        close_mld: true,
        static_negotiating_groups: true,
        ..LabOptions::default()
    };
    let lab = Lab::build(&p.topo, opts).context("building the lab")?;
    let tweaks = CtlTweaks {
        warm_ms: (a.policy == Policy::Fresh).then_some(0),
        budget: Some(a.budget),
        preenumerate_all: a.policy == Policy::Preenum,
    };
    let stack = Stack::start_with(&lab, &bins, &tweaks)?;
    let out = controller_load(&lab, &stack, p, a, t_up.elapsed().as_millis() as u64)
        .map_err(|e| anyhow!("{e:#}\ndaemon logs:\n{}", stack.logs()));
    stack.stop();
    drop(lab);
    out
}

fn controller_load(lab: &Lab, stack: &Stack, p: &Plan, a: &RateArgs, up_ms: u64) -> Result<Value> {
    let pinned = if a.policy == Policy::Preenum {
        Some(wait_pinned(lab, stack)?)
    } else {
        None
    };
    let key_hex = std::fs::read_to_string(stack.dir.join("nodes.key"))?;
    let ep = CtlEndpoint {
        addr: SocketAddr::new(stack.ctl_ip, crate::stack::CTL_PORT),
        key: subcast_proto::Key::from_hex(2, &key_hex)?,
        parent: p.parent.1,
    };
    let sets = target_sets(lab, p);
    let before = metrics(lab, stack)?;
    let (outs, polled, elapsed) = drive(lab, a.clients, a.seconds(), |i, deadline| {
        load::controller_client(lab, &p.sender, &ep, i as u32 + 1, &sets, deadline)
    })?;
    let after = metrics(lab, stack)?;
    let ops = load::metric_sum(&after, "subcast_controller_switch_ops_total")
        - load::metric_sum(&before, "subcast_controller_switch_ops_total");
    let ev = "subcast_controller_evictions_total";
    let evictions = load::metric_sum(&after, ev) - load::metric_sum(&before, ev);
    let ev_before = load::metric_by(&before, ev, "reason");
    let evictions_by: BTreeMap<String, f64> = load::metric_by(&after, ev, "reason")
        .into_iter()
        .map(|(k, n)| (k.clone(), n - ev_before.get(&k).copied().unwrap_or(0.0)))
        .filter(|(_, n)| *n > 0.0)
        .collect();
    let (s, budgets) = stack.http(lab, "GET", "/v1/budgets", None)?;
    if s != 200 {
        bail!("GET /v1/budgets answered HTTP {s}: {budgets}");
    }
    let mut budget = BTreeMap::new();
    let mut peak_over = Vec::new();
    for b in budgets.as_array().into_iter().flatten() {
        let name = b["name"].as_str().unwrap_or_default().to_string();
        if b["peak"].as_u64() > b["budget"].as_u64() {
            peak_over.push(format!(
                "switch {name}: the controller's own peak occupancy {} is above its budget {}",
                b["peak"], b["budget"]
            ));
        }
        budget.insert(name, b["budget"].as_u64());
    }
    // Check a sample of the granted sets as subset-only does.
    let mut verified = Vec::new();
    for i in sample_sets(&outs) {
        let names = &p.set_names[i];
        let lease = crate::scenario::request(lab, stack, &p.parent.0, names)?;
        let installed = mdb_ports(lab, lease.group)?;
        let expected = crate::expect::expected_ports(&lab.active_topology()?, names, &p.parent.2);
        let (switches, ports_ok) = switches_json(&installed, &expected);
        let (dl, dl_ok) = deliveries(lab, &p.sender, lease.group, names)?;
        let (released, _) = crate::scenario::release(lab, stack, &lease)?;
        verified.push(json!({"targets": names, "group": lease.group.to_string(),
            "switches": switches, "ports_match": ports_ok, "deliveries": dl,
            "deliveries_ok": dl_ok, "released": released}));
    }
    let mut v = report(p, a, &outs, &polled, elapsed, &budget, verified, peak_over);
    v["switch_ops"] = json!(ops);
    v["switch_ops_per_s"] = json!(ops / elapsed);
    v["switch_ops_source"] =
        json!("controller metric subcast_controller_switch_ops_total, delta over the load");
    v["evictions"] = json!(evictions);
    v["evictions_by_cause"] = json!(evictions_by);
    v["controller_budgets"] = budgets;
    v["preenumerated_groups"] = json!(pinned);
    v["lab_up_ms"] = json!(up_ms);
    v["controller"] = json!({"switch": stack.ctl_switch, "address": stack.ctl_ip.to_string()});
    Ok(v)
}

/// The bridge's MDB size limit (`hash_max`); `None` for OVS.
fn hash_max(lab: &Lab, switch: &str) -> Option<u64> {
    let sw = lab.switch(switch);
    if sw.ovs.is_some() {
        return None;
    }
    let path = format!("/sys/class/net/{}/bridge/hash_max", sw.bridge);
    let out = lab.exec(&sw.netns, &["cat", &path]).ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Every Linux bridge's trunks become multicast router ports (`mcast_router 2`), so
/// MLD reports cross switches (as `bench` (a) does). Open vSwitch switches are
/// left alone: without a controller they do not snoop MLD (said in `notes`).
fn router_trunks(lab: &Lab) -> Result<Vec<String>> {
    let mut ovs = Vec::new();
    for sw in lab.switches().values() {
        if sw.ovs.is_some() {
            ovs.push(sw.name.clone());
            continue;
        }
        for port in &sw.ports {
            if matches!(port.toward, labs::PortPeer::Switch(_)) {
                let args = [
                    "bridge",
                    "link",
                    "set",
                    "dev",
                    &port.name,
                    "mcast_router",
                    "2",
                ];
                lab.exec(&sw.netns, &args)?;
            }
        }
    }
    Ok(ovs)
}

fn run_lazy(p: &Plan, a: &RateArgs) -> Result<Value> {
    let t_up = Instant::now();
    let lab = Lab::build(&p.topo, LabOptions::default()).context("building the MLD lab")?;
    let up_ms = t_up.elapsed().as_millis() as u64;
    let ovs = router_trunks(&lab)?;
    let sets = target_sets(&lab, p);
    let (outs, polled, elapsed) = drive(&lab, a.clients, a.seconds(), |_, deadline| {
        load::lazy_client(&lab, &sets, deadline)
    })?;
    let budget: BTreeMap<String, Option<u64>> = lab
        .switches()
        .keys()
        .map(|s| (s.clone(), hash_max(&lab, s)))
        .collect();
    let mut verified = Vec::new();
    for i in sample_sets(&outs) {
        let names = &p.set_names[i];
        let g = load::lazy_group(&sets[i]);
        let socks = load::join_set(&lab, &sets[i], g)?;
        let expected = crate::expect::expected_ports(&lab.active_topology()?, names, &p.parent.2);
        // Wait for the snooped entries themselves (at most 5 s), then check.
        let _ = wait_for("the MLD joins in the MDBs", Duration::from_secs(5), || {
            Ok(mdb_ports(&lab, g)? == expected)
        });
        let installed = mdb_ports(&lab, g)?;
        let (switches, ports_ok) = switches_json(&installed, &expected);
        let (dl, dl_ok) = deliveries(&lab, &p.sender, g, names)?;
        drop(socks);
        verified.push(json!({"targets": names, "group": g.to_string(),
            "switches": switches, "ports_match": ports_ok, "deliveries": dl,
            "deliveries_ok": dl_ok}));
    }
    let ops = polled.ops;
    let mut v = report(p, a, &outs, &polled, elapsed, &budget, verified, Vec::new());
    v["switch_ops"] = json!(ops);
    v["switch_ops_per_s"] = json!(ops / elapsed);
    v["switch_ops_source"] =
        json!("MDB entry adds and removes (bridge monitor mdb; OVS: ~20 ms polls)");
    v["evictions"] = json!(0);
    v["lab_up_ms"] = json!(up_ms);
    if !ovs.is_empty() {
        v["notes"] = json!([format!(
            "switch(es) {} are Open vSwitch, which does not snoop MLD without a controller \
             (none runs in lazy-mld): they forward rendezvous-pool traffic as unknown multicast",
            ovs.join(", ")
        )]);
    }
    drop(lab);
    Ok(v)
}

fn stats(samples: &mut [u64]) -> Value {
    samples.sort_unstable();
    let mean = if samples.is_empty() {
        None
    } else {
        Some(samples.iter().sum::<u64>() as f64 / samples.len() as f64)
    };
    json!({"n": samples.len(), "p50": load::percentile(samples, 50.0),
           "p99": load::percentile(samples, 99.0), "mean": mean})
}

fn policy_note(a: &RateArgs) -> String {
    match a.policy {
        Policy::Fresh => {
            "controller with leases.warm_ms 0: a released group is cleared at once, so \
            nearly every request installs a fresh group; a request for a set another client holds \
            a live lease on at that moment still shares that group (reused)"
                .into()
        }
        Policy::Reuse => format!(
            "controller default: a group per target set, kept warm {} ms after its last lease, \
             LRU-evicted when a switch's budget ({}) is full",
            crate::stack::WARM_MS,
            a.budget
        ),
        Policy::Preenum => format!(
            "reuse (budget {}) plus preenumerate: all on the parent group; load starts once the \
             pinned groups are installed",
            a.budget
        ),
        Policy::LazyMld => format!(
            "no controller: group = hash of the target set into the pool, targets join it (MLD, \
             snooped), {} ms join delay, per-client join cache of {} sets (LRU; eviction = leave); \
             a hit is a set already in the client's cache (a lookup: 0 us; grants/s then \
             mostly counts how fast the clients loop)",
            load::JOIN_DELAY.as_millis(),
            load::JOIN_CACHE
        ),
    }
}

#[allow(clippy::too_many_arguments)]
fn report(
    p: &Plan,
    a: &RateArgs,
    outs: &[ClientOut],
    polled: &Tables,
    elapsed: f64,
    budget: &BTreeMap<String, Option<u64>>,
    verified: Vec<Value>,
    mut violations: Vec<String>,
) -> Value {
    let samples: Vec<load::Sample> = outs
        .iter()
        .flat_map(|o| o.samples.iter().copied())
        .collect();
    let mut all: Vec<u64> = samples.iter().map(|s| s.us).collect();
    let mut hit: Vec<u64> = samples.iter().filter(|s| s.reused).map(|s| s.us).collect();
    let mut miss: Vec<u64> = samples.iter().filter(|s| !s.reused).map(|s| s.us).collect();
    let grants = samples.len() as u64;
    let hits = hit.len() as u64;
    let mut refusals: BTreeMap<String, u64> = BTreeMap::new();
    for o in outs {
        for (r, n) in &o.refusals {
            *refusals.entry(r.clone()).or_default() += n;
        }
    }
    let errors: Vec<&String> = outs.iter().flat_map(|o| o.errors.iter()).collect();
    let distinct: std::collections::BTreeSet<usize> = outs
        .iter()
        .flat_map(|o| o.granted.iter().copied())
        .collect();
    for (sw, max) in &polled.max {
        if let Some(Some(b)) = budget.get(sw)
            && *max as u64 > *b
        {
            violations.push(format!(
                "switch {sw} held {max} rendezvous groups at once, above its budget {b}"
            ));
        }
    }
    for v in &verified {
        if v["ports_match"] != true || v["deliveries_ok"] != true {
            violations.push(format!(
                "target set {} (group {}): installed ports or deliveries do not match",
                v["targets"], v["group"]
            ));
        }
    }
    if grants == 0 {
        violations.push("no grant at all".into());
    }
    if !errors.is_empty() {
        violations.push(format!(
            "{} requests or releases got no answer",
            errors.len()
        ));
    }
    json!({
        "ok": violations.is_empty(),
        "scenario": "rate",
        "policy": a.policy.name(),
        "policy_note": policy_note(a),
        "clients": a.clients,
        "seconds": a.seconds(),
        "elapsed_s": elapsed,
        "sender": p.sender,
        "parent": {"name": p.parent.0, "group": p.parent.1.to_string()},
        "universe": p.universe,
        "target_sets": p.set_names.len(),
        "distinct_sets_granted": distinct.len(),
        "grants": grants,
        "grants_per_s": grants as f64 / elapsed,
        "hits": hits,
        "misses": grants - hits,
        "hit_ratio": if grants == 0 { 0.0 } else { hits as f64 / grants as f64 },
        "grant_us": stats(&mut all),
        "grant_us_hit": stats(&mut hit),
        "grant_us_miss": stats(&mut miss),
        "max_occupancy": polled.max,
        "max_occupancy_polled": polled.max_polled,
        "occupancy_polls": polled.polls,
        "budget": budget,
        "refusals": {"total": refusals.values().sum::<u64>(), "by_reason": refusals},
        "errors": {"count": errors.len(), "first": errors.iter().take(5).collect::<Vec<_>>()},
        "verified": verified,
        "violations": violations,
    })
}

/// The text form of a rate report.
pub fn render(v: &Value) -> String {
    let mut t = format!(
        "rate: policy {} ({} clients, {} s) on {}: {}\n  {}\n",
        v["policy"].as_str().unwrap_or("?"),
        v["clients"],
        v["seconds"],
        v["topology"].as_str().unwrap_or("?"),
        if v["ok"] == true { "OK" } else { "FAILED" },
        v["policy_note"].as_str().unwrap_or("")
    );
    t += &format!(
        "  grants {} ({:.1}/s), hit ratio {:.2}, refusals {}\n",
        v["grants"],
        v["grants_per_s"].as_f64().unwrap_or(0.0),
        v["hit_ratio"].as_f64().unwrap_or(0.0),
        v["refusals"]
    );
    for k in ["grant_us", "grant_us_hit", "grant_us_miss"] {
        t += &format!(
            "  {k}: n {} p50 {} p99 {}\n",
            v[k]["n"], v[k]["p50"], v[k]["p99"]
        );
    }
    t += &format!(
        "  switch ops {:.1}/s; max occupancy {} (budget {})\n",
        v["switch_ops_per_s"].as_f64().unwrap_or(0.0),
        v["max_occupancy"],
        v["budget"]
    );
    for x in v["verified"].as_array().into_iter().flatten() {
        t += &format!(
            "  checked {} -> {}: ports {}, deliveries {}\n",
            x["targets"], x["group"], x["ports_match"], x["deliveries_ok"]
        );
    }
    for x in v["violations"].as_array().into_iter().flatten() {
        t += &format!("  VIOLATION: {}\n", x.as_str().unwrap_or(""));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twenty_sets_of_three_from_six() {
        let six: Vec<u8> = (0..6).collect();
        let c = combinations(&six, 3);
        assert_eq!(c.len(), 20);
        assert_eq!(c[0], vec![0, 1, 2]);
        assert_eq!(c[19], vec![3, 4, 5]);
    }
}
