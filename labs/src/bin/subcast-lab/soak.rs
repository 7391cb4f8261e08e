//! The soak scenario: `--seconds S` (default 600) of churn on a lab with
//! pair-keyed storage nodes, then what is left.
//!
//! Three things run at once until the time is up:
//! * puts: random objects of log-uniform size (4 KiB to 3 MiB), each read
//!   back and compared, and after each put one of the last
//!   [`KEEP_OBJECTS`] objects read again (a get);
//! * grants: `POST /v1/rendezvous` of random target sets and `DELETE` of the
//!   lease, back to back (paced by [`GRANT_PACE`]);
//! * agent restarts, every [`restart_every`], rotating over the switches:
//!   a lease over every switch is granted, the agent is killed by its PID
//!   (SIGKILL) and started again with the same config; the restart counts
//!   when the new agent's HELLO was acknowledged (`subcast_agent_hello_acked`),
//!   the controller repushed to it (`switch_ops_total{op="repush"}`) and the
//!   lease's group is on the switch with the ports it had before.
//!
//! Memory (VmRSS) and replay-map sizes of every daemon are sampled
//! throughout; audit rows and leases are read from the controller. See the
//! README's "Soak scenario" for the report and the pass rule.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use labs::ChildGuard;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::attack_setup::{agent_metrics, controller_metrics, metric_sum, rss_kib};
use crate::objects;
use crate::scenario::{RunOptions, Running};
use crate::stack::wait_for;

/// Default length of the churn.
pub const DEFAULT_SECONDS: u64 = 600;
/// Growth of a daemon's VmRSS from the start of the churn to its end that
/// still passes, KiB (an agent restarted meanwhile is compared with the
/// first process of its switch).
pub const MEMORY_BOUND_KIB: u64 = 64 * 1024;
/// Objects kept on the sender for gets after their put.
const KEEP_OBJECTS: usize = 16;
/// Object sizes: log-uniform between these.
const SIZE_MIN: usize = 4 << 10;
const SIZE_MAX: usize = 3 << 20;
/// Pause between two grant/release rounds.
const GRANT_PACE: Duration = Duration::from_millis(50);
/// A get that answered "not found" is tried again after this, up to
/// `LOOKUP_TRIES` times in all.
const LOOKUP_RETRY: Duration = Duration::from_secs(1);
const LOOKUP_TRIES: u32 = 3;
/// Errors kept verbatim in the report (all are counted).
const ERRORS_KEPT: usize = 40;

/// Time between agent restarts: a quarter of the run, 5 to 45 s.
pub fn restart_every(seconds: u64) -> Duration {
    Duration::from_secs((seconds / 4).clamp(5, 45))
}

/// Time between memory and replay-map samples: a tenth of the run, 2 to 30 s.
fn sample_every(seconds: u64) -> Duration {
    Duration::from_secs((seconds / 10).clamp(2, 30))
}

#[derive(Default)]
struct Errors {
    count: u64,
    kept: Vec<String>,
}

impl Errors {
    fn push(&mut self, e: String) {
        self.count += 1;
        if self.kept.len() < ERRORS_KEPT {
            self.kept.push(e);
        }
    }
}

#[derive(Default)]
struct Puts {
    attempted: u64,
    done: u64,
    verified: u64,
    bytes: u64,
    sizes: (usize, usize),
    ms: Vec<f64>,
    gets_done: u64,
    gets_verified: u64,
    /// Gets answered "not found" at first (retried).
    lookup_misses: u64,
    errors: Errors,
}

/// A get compared with `original`; a "not found" (the client's manifest
/// lookup heard no offer in time) is counted in `misses` and tried again
/// after [`LOOKUP_RETRY`], at most [`LOOKUP_TRIES`] times in all.
fn get_retrying(
    r: &Running,
    client: &str,
    sender: &str,
    name: &str,
    original: &std::path::Path,
    back: &std::path::Path,
    misses: &mut u64,
) -> Result<bool> {
    let mut tries = 0;
    loop {
        tries += 1;
        match objects::get_same(r, client, sender, name, original, back) {
            Err(e) if tries < LOOKUP_TRIES && format!("{e:#}").contains("not found") => {
                *misses += 1;
                std::thread::sleep(LOOKUP_RETRY);
            }
            other => return other,
        }
    }
}

fn put_worker(
    r: &Running,
    client: &str,
    sender: &str,
    stop: &AtomicBool,
    seed: u64,
    t0: Instant,
) -> Puts {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut p = Puts {
        sizes: (usize::MAX, 0),
        ..Puts::default()
    };
    let mut kept: Vec<(PathBuf, String)> = Vec::new();
    let back = r.lab.workdir().join("soak-get.back");
    let span = (SIZE_MAX as f64 / SIZE_MIN as f64).log2();
    let mut i = 0;
    while !stop.load(Ordering::SeqCst) {
        i += 1;
        let size = ((SIZE_MIN as f64) * 2f64.powf(rng.random::<f64>() * span)) as usize;
        p.attempted += 1;
        let t_put = Instant::now();
        let dir = r.lab.workdir();
        let obj = dir.join(format!("soak-object-{i}.bin"));
        let name = format!("lab/soak-{i}");
        let put = crate::attack_setup::random_bytes(size)
            .and_then(|b| Ok(std::fs::write(&obj, b)?))
            .and_then(|()| objects::put(r, client, sender, &name, &obj));
        match put {
            Ok(()) => {
                p.done += 1;
                p.bytes += size as u64;
                p.sizes = (p.sizes.0.min(size), p.sizes.1.max(size));
                p.ms.push(t_put.elapsed().as_secs_f64() * 1000.0);
                match get_retrying(r, client, sender, &name, &obj, &back, &mut p.lookup_misses) {
                    Ok(true) => p.verified += 1,
                    Ok(false) => p.errors.push(format!(
                        "{:.1} s: {name} ({size} bytes) read back differs",
                        t0.elapsed().as_secs_f64()
                    )),
                    Err(e) => p
                        .errors
                        .push(format!("{:.1} s: {e:#}", t0.elapsed().as_secs_f64())),
                }
                kept.push((obj, name));
                if kept.len() > KEEP_OBJECTS {
                    let _ = std::fs::remove_file(kept.remove(0).0);
                }
            }
            Err(e) => p.errors.push(format!(
                "{:.1} s: put {i} ({size} bytes): {e:#}",
                t0.elapsed().as_secs_f64()
            )),
        }
        // One of the earlier objects again.
        if kept.len() > 1 {
            let (obj, name) = &kept[rng.random_range(0..kept.len() - 1)];
            p.gets_done += 1;
            match get_retrying(r, client, sender, name, obj, &back, &mut p.lookup_misses) {
                Ok(true) => p.gets_verified += 1,
                Ok(false) => p.errors.push(format!(
                    "{:.1} s: get {name}: read back differs",
                    t0.elapsed().as_secs_f64()
                )),
                Err(e) => p
                    .errors
                    .push(format!("{:.1} s: {e:#}", t0.elapsed().as_secs_f64())),
            }
        }
    }
    p
}

#[derive(Default)]
struct Grants {
    requested: u64,
    granted: u64,
    released: u64,
    release_failed: u64,
    refused: BTreeMap<String, u64>,
    ms: Vec<f64>,
    errors: Errors,
}

fn grant_worker(
    r: &Running,
    parent: &str,
    members: &[String],
    stop: &AtomicBool,
    seed: u64,
) -> Grants {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut g = Grants::default();
    while !stop.load(Ordering::SeqCst) {
        let mut pool: Vec<&String> = members.iter().collect();
        let k = rng.random_range(2..=4usize).min(pool.len());
        let mut targets = Vec::new();
        for _ in 0..k {
            targets.push(pool.swap_remove(rng.random_range(0..pool.len())).clone());
        }
        g.requested += 1;
        let t0 = Instant::now();
        let body = json!({"parent": parent, "targets": targets, "lifetime_ms": 10000});
        match r.stack.http(&r.lab, "POST", "/v1/rendezvous", Some(body)) {
            Ok((201, v)) => {
                g.granted += 1;
                g.ms.push(t0.elapsed().as_secs_f64() * 1000.0);
                let id = v["lease_id"]
                    .as_str()
                    .map(str::to_owned)
                    .or_else(|| v["lease_id"].as_u64().map(|n| n.to_string()));
                std::thread::sleep(Duration::from_millis(rng.random_range(0..100)));
                let path = format!("/v1/rendezvous/{}", id.unwrap_or_default());
                match r.stack.http(&r.lab, "DELETE", &path, None) {
                    Ok((200, _)) => g.released += 1,
                    Ok((s, v)) => {
                        g.release_failed += 1;
                        g.errors.push(format!("DELETE {path}: HTTP {s}: {v}"));
                    }
                    Err(e) => {
                        g.release_failed += 1;
                        g.errors.push(format!("DELETE {path}: {e:#}"));
                    }
                }
            }
            Ok((s, v)) => {
                let why = v["error"]
                    .as_str()
                    .map_or_else(|| s.to_string(), str::to_owned);
                *g.refused.entry(why).or_default() += 1;
            }
            Err(e) => g.errors.push(format!("POST /v1/rendezvous: {e:#}")),
        }
        std::thread::sleep(GRANT_PACE);
    }
    g
}

/// The value of `name` whose labels include every `labels` pair.
fn labelled(text: &str, name: &str, labels: &[(&str, &str)]) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// The agents, taken out of the stack while the soak restarts them.
type Agents = Mutex<BTreeMap<String, ChildGuard>>;

/// PID of every daemon (`controller`, `agent-S`, `node-H`).
fn pids(r: &Running, agents: &Agents) -> BTreeMap<String, u32> {
    let mut out: BTreeMap<String, u32> = r.stack.pids().into_iter().collect();
    if let Ok(a) = agents.lock() {
        out.extend(a.iter().map(|(n, c)| (format!("agent-{n}"), c.pid())));
    }
    out
}

/// Replay-map size of a daemon: nodes' `replay_senders` in `stats.json`,
/// the controller's and agents' `*_replay_senders` gauges.
fn replay_senders(r: &Running, daemon: &str) -> Result<u64> {
    if daemon == "controller" {
        Ok(metric_sum(
            &controller_metrics(r)?,
            "subcast_controller_replay_senders",
        ))
    } else if let Some(sw) = daemon.strip_prefix("agent-") {
        Ok(metric_sum(
            &agent_metrics(r, sw)?,
            "subcast_agent_replay_senders",
        ))
    } else if let Some(h) = daemon.strip_prefix("node-") {
        let p = r.stack.dir.join(format!("store-{h}/stats.json"));
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&p)?)
            .with_context(|| format!("{}", p.display()))?;
        v["replay_senders"]
            .as_u64()
            .ok_or_else(|| anyhow!("{} has no replay_senders", p.display()))
    } else {
        bail!("unknown daemon {daemon}")
    }
}

/// One reading of every daemon: VmRSS and replay-map size (None when
/// it could not be read, e.g. an agent being restarted).
struct Sample {
    at_s: f64,
    rss: BTreeMap<String, u64>,
    replay: BTreeMap<String, Option<u64>>,
}

fn sample(r: &Running, agents: &Agents, t0: Instant) -> Sample {
    let mut s = Sample {
        at_s: t0.elapsed().as_secs_f64(),
        rss: BTreeMap::new(),
        replay: BTreeMap::new(),
    };
    for (d, pid) in pids(r, agents) {
        s.rss.insert(d.clone(), rss_kib(pid));
        s.replay.insert(d.clone(), replay_senders(r, &d).ok());
    }
    s
}

/// Kill the agent of `sw` and start it again; see the module comment.
fn restart_agent(
    r: &Running,
    agents: &Agents,
    sw: &str,
    parent: &str,
    held: &[String],
    at_s: f64,
) -> Result<Value> {
    let lab = &r.lab;
    let lease = crate::scenario::request(lab, &r.stack, parent, held)?;
    let before = crate::scenario::mdb_ports(lab, lease.group)?
        .remove(sw)
        .unwrap_or_default();
    let repush = |r: &Running| -> Result<u64> {
        let m = controller_metrics(r)?;
        Ok(labelled(
            &m,
            "subcast_controller_switch_ops_total",
            &[("switch", sw), ("op", "repush")],
        ))
    };
    let repush0 = repush(r)?;
    let mut old = agents
        .lock()
        .map_err(|_| anyhow!("agents lock"))?
        .remove(sw)
        .ok_or_else(|| anyhow!("no agent for switch {sw}"))?;
    let old_pid = old.pid();
    old.stop_with(nix::sys::signal::Signal::SIGKILL, Duration::from_secs(5));
    let t_kill = Instant::now();
    let dir = &r.stack.dir;
    let log = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(dir.join(format!("agent-{sw}.log")))?;
    let cfg = dir.join(format!("agent-{sw}.yaml")).display().to_string();
    let agent = r.bins.agent.display().to_string();
    let child = lab.spawn_with(
        &lab.switch(sw).netns,
        &[&agent, "run", "--config", &cfg],
        |c| {
            c.stdout(log.try_clone().expect("log file")).stderr(log);
        },
    )?;
    let new_pid = child.pid();
    agents
        .lock()
        .map_err(|_| anyhow!("agents lock"))?
        .insert(sw.to_string(), child);
    let acked = wait_for(
        &format!("the restarted agent of {sw} to have its HELLO acknowledged"),
        Duration::from_secs(30),
        || {
            if let Ok(mut a) = agents.lock()
                && a.get_mut(sw).is_some_and(ChildGuard::has_exited)
            {
                bail!("the restarted agent of {sw} exited (see agent-{sw}.log)");
            }
            Ok(agent_metrics(r, sw)
                .map(|m| metric_sum(&m, "subcast_agent_hello_acked") == 1)
                .unwrap_or(false))
        },
    );
    let hello_ms = t_kill.elapsed().as_millis() as u64;
    let mut after = Vec::new();
    let mut repushed = 0;
    let back = acked.is_ok()
        && wait_for(
            &format!("the lease's group back on {sw}"),
            Duration::from_secs(20),
            || {
                repushed = repush(r)?.saturating_sub(repush0);
                after = crate::scenario::mdb_ports(lab, lease.group)?
                    .remove(sw)
                    .unwrap_or_default();
                Ok(repushed > 0 && after == before)
            },
        )
        .is_ok();
    let back_ms = t_kill.elapsed().as_millis() as u64;
    let (released, _) = crate::scenario::release(lab, &r.stack, &lease)?;
    let ok = acked.is_ok() && back && !before.is_empty();
    Ok(json!({
        "switch": sw, "at_s": (at_s * 10.0).round() / 10.0, "old_pid": old_pid, "new_pid": new_pid,
        "hello_acked": acked.is_ok(), "hello_acked_ms": hello_ms,
        "lease": lease.lease_id, "group": lease.group.to_string(),
        "ports_before": before, "ports_after": after, "repushed": repushed,
        "leases_back": back, "leases_back_ms": back_ms, "released": released, "ok": ok,
        "error": acked.err().map(|e| format!("{e:#}")),
    }))
}

/// The soak on a running lab (controller and agents up).
pub fn soak(r: &mut Running, opts: &RunOptions, sender: &str) -> Result<Value> {
    let seconds = opts.rate.seconds.unwrap_or(DEFAULT_SECONDS);
    let keys = crate::attack_setup::provision(r, sender)?;
    let client = keys.client_config.display().to_string();
    let agents: Agents = Mutex::new(std::mem::take(&mut r.stack.agents));
    let out = churn(r, &agents, opts, sender, &client, seconds);
    // The agents go back to the stack, which ends them.
    if let Ok(mut a) = agents.into_inner() {
        r.stack.agents.append(&mut a);
    }
    out
}

fn churn(
    r: &Running,
    agents: &Agents,
    opts: &RunOptions,
    sender: &str,
    client: &str,
    seconds: u64,
) -> Result<Value> {
    let seed = std::env::var("SUBCAST_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random::<u64>());
    let (parent, _, members) = crate::scenario::parent_group(r.lab.topology())?;
    // The held lease of a restart: a member on every switch that has one.
    let held: Vec<String> = r
        .lab
        .switches()
        .keys()
        .filter_map(|s| {
            r.lab
                .topology()
                .hosts_on(s)
                .into_iter()
                .find(|h| members.iter().any(|m| m == h))
                .map(str::to_owned)
        })
        .collect();
    let switches: Vec<String> = r.lab.switches().keys().cloned().collect();
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(seconds);
    let audit = |r: &Running| -> Result<u64> {
        Ok(metric_sum(
            &controller_metrics(r)?,
            "subcast_controller_audit_rows",
        ))
    };
    let audit_start = audit(r)?;
    let first = sample(r, agents, t0);
    let pids_start = pids(r, agents);
    let mut samples = vec![first];
    let stop = AtomicBool::new(false);
    let mut restarts = Vec::new();
    let (puts, grants) = std::thread::scope(|sc| -> Result<(Puts, Grants)> {
        let pw = sc.spawn(|| put_worker(r, client, sender, &stop, seed, t0));
        let gw = sc.spawn(|| grant_worker(r, &parent, &members, &stop, seed ^ 0x5c));
        let every = restart_every(seconds);
        let mut next_restart = t0 + every;
        let mut next_sample = t0 + sample_every(seconds);
        let mut res = Ok(());
        while Instant::now() < deadline && res.is_ok() {
            let now = Instant::now();
            if now >= next_restart {
                let sw = &switches[restarts.len() % switches.len()];
                let at = t0.elapsed().as_secs_f64();
                eprintln!("subcast-lab soak: {at:.0} s: restarting the agent of {sw}");
                match restart_agent(r, agents, sw, &parent, &held, at) {
                    Ok(v) => restarts.push(v),
                    Err(e) => res = Err(e.context(format!("restarting the agent of {sw}"))),
                }
                next_restart = Instant::now() + every;
            }
            if now >= next_sample {
                samples.push(sample(r, agents, t0));
                next_sample += sample_every(seconds);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        stop.store(true, Ordering::SeqCst);
        let puts = pw.join().map_err(|_| anyhow!("the put thread panicked"))?;
        let grants = gw
            .join()
            .map_err(|_| anyhow!("the grant thread panicked"))?;
        res.map(|()| (puts, grants))
    })?;
    let elapsed = t0.elapsed().as_secs_f64();
    if let Ok(to) = std::env::var("SUBCAST_SOAK_KEEP_LOGS") {
        let _ = std::fs::create_dir_all(&to);
        for e in std::fs::read_dir(&r.stack.dir)?.flatten() {
            if e.file_name().to_string_lossy().ends_with(".log") {
                let _ = std::fs::copy(e.path(), std::path::Path::new(&to).join(e.file_name()));
            }
        }
    }
    let (leases_leaked, live, leases) = objects::leases_leaked(r)?;
    samples.push(sample(r, agents, t0));
    let audit_end = audit(r)?;
    let pids_end = pids(r, agents);
    report(Report {
        r,
        opts,
        sender,
        seconds,
        elapsed,
        seed,
        puts,
        grants,
        restarts,
        samples,
        pids: (pids_start, pids_end),
        audit: (audit_start, audit_end),
        leases: (leases_leaked, live, leases),
    })
}

struct Report<'a> {
    r: &'a Running,
    opts: &'a RunOptions,
    sender: &'a str,
    seconds: u64,
    elapsed: f64,
    seed: u64,
    puts: Puts,
    grants: Grants,
    restarts: Vec<Value>,
    samples: Vec<Sample>,
    pids: (BTreeMap<String, u32>, BTreeMap<String, u32>),
    audit: (u64, u64),
    leases: (usize, u64, Value),
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn report(x: Report) -> Result<Value> {
    let (first, last) = match (x.samples.first(), x.samples.last()) {
        (Some(f), Some(l)) => (f, l),
        _ => bail!("no samples"),
    };
    let daemons: Vec<&String> = first.rss.keys().collect();
    // Distinct senders in the lab (controller, agents, nodes, the client):
    // no daemon can have replay state for more.
    let replay_bound = daemons.len() as u64 + 1;
    let mut memory = serde_json::Map::new();
    let mut replay = serde_json::Map::new();
    let (mut memory_ok, mut replay_ok) = (true, true);
    for d in &daemons {
        let series: Vec<u64> = x
            .samples
            .iter()
            .map(|s| s.rss.get(*d).copied().unwrap_or(0))
            .collect();
        let (a, b) = (first.rss[*d], last.rss.get(*d).copied().unwrap_or(0));
        let ok = a > 0 && b > 0 && b <= a + MEMORY_BOUND_KIB;
        memory_ok &= ok;
        let mid = series[series.len() / 2];
        memory.insert(
            (*d).clone(),
            json!({"start": a, "end": b, "max": series.iter().max(), "growth": b as i64 - a as i64,
                   "growth_second_half": b as i64 - mid as i64,
                   "pid_start": x.pids.0.get(*d), "pid_end": x.pids.1.get(*d), "samples": series, "ok": ok}),
        );
        let rs: Vec<Option<u64>> = x
            .samples
            .iter()
            .map(|s| s.replay.get(*d).copied().flatten())
            .collect();
        let max = rs.iter().flatten().max().copied().unwrap_or(0);
        let ok = rs.first().copied().flatten().is_some()
            && rs.last().copied().flatten().is_some()
            && max <= replay_bound;
        replay_ok &= ok;
        replay.insert(
            (*d).clone(),
            json!({"start": rs.first().copied().flatten(), "end": rs.last().copied().flatten(), "max": max, "samples": rs, "ok": ok}),
        );
    }
    let (p, g) = (&x.puts, &x.grants);
    let restarts_ok = !x.restarts.is_empty() && x.restarts.iter().all(|v| v["ok"] == true);
    let puts_ok = p.done > 0 && p.verified == p.attempted;
    let gets_ok = p.gets_verified == p.gets_done;
    let grants_ok = g.granted > 0 && g.errors.count == 0 && g.release_failed == 0;
    let (leaked, live, leases) = x.leases;
    let ok =
        leaked == 0 && puts_ok && gets_ok && grants_ok && restarts_ok && memory_ok && replay_ok;
    let (a0, a1) = x.audit;
    let minutes = (x.elapsed / 60.0).max(1e-9);
    let r = x.r;
    Ok(json!({
        "ok": ok,
        "scenario": "soak",
        "topology": x.opts.topology.display().to_string(),
        "sender": x.sender,
        "seconds": x.seconds,
        "elapsed_s": (x.elapsed * 10.0).round() / 10.0,
        "seed": x.seed.to_string(),
        "lab_up_ms": r.build_ms,
        "puts": {"attempted": p.attempted, "done": p.done, "verified": p.verified, "bytes": p.bytes,
                 "size_min": if p.done > 0 { p.sizes.0 } else { 0 }, "size_max": p.sizes.1,
                 "median_ms": median(&p.ms), "ok": puts_ok},
        "gets": {"done": p.gets_done, "verified": p.gets_verified, "ok": gets_ok},
        "lookup_misses": p.lookup_misses,
        "grants": {"requested": g.requested, "granted": g.granted, "released": g.released,
                   "release_failed": g.release_failed, "refused": g.refused, "median_ms": median(&g.ms),
                   "errors": g.errors.count, "ok": grants_ok},
        "agent_restarts": x.restarts.len(),
        "restart_every_s": restart_every(x.seconds).as_secs(),
        "restarts": x.restarts,
        "restarts_ok": restarts_ok,
        "memory_kib": memory,
        "memory_bound_kib": MEMORY_BOUND_KIB,
        "memory_ok": memory_ok,
        "sample_s": x.samples.iter().map(|s| (s.at_s * 10.0).round() / 10.0).collect::<Vec<_>>(),
        "replay_senders": replay,
        "replay_bound": replay_bound,
        "replay_ok": replay_ok,
        "audit_rows": {"start": a0, "end": a1, "added": a1.saturating_sub(a0),
                       "per_minute": ((a1.saturating_sub(a0)) as f64 / minutes).round(),
                       "per_grant": if g.granted + p.done > 0 { ((a1.saturating_sub(a0)) as f64 / (g.granted + p.done) as f64 * 100.0).round() / 100.0 } else { 0.0 }},
        "leases_leaked": leaked,
        "leases_live": live,
        "leases_after": leases,
        "errors": p.errors.count + g.errors.count,
        "error_samples": p.errors.kept.iter().chain(&g.errors.kept).collect::<Vec<_>>(),
        "daemon_logs": if ok { Value::Null } else { json!(r.stack.logs()) },
    }))
}
