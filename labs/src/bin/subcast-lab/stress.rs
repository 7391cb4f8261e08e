//! `subcast-lab stress`: build and tear down every shipped topology and a freshly
//! generated random tree, N times in a row, and count failures (issue 19: a
//! harness that fails at random makes every test unreliable).
//!
//! Each run: every topology of `labs/topologies/` (or the `--topology` files), then
//! a random tree from `labs::generate` (seed `--seed` + run number), each built the
//! way `run` builds it (closed MLD, static negotiating groups), torn down, and
//! checked for leftovers (namespaces, processes, scratch directory, interfaces:
//! `labs::stress::leftovers`). With `--subset-only`, the random tree (and each
//! `--topology` file) also gets the daemons and the subset-only scenario. A failing random tree is written to
//! `--out` so it can be replayed with `--topology FILE` or `run FILE`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use labs::Topology;
use labs::generate;
use labs::stress::{self, quantile};
use serde_json::{Value, json};

use crate::bins::Locate;
use crate::scenario::{self, RunOptions, Scenario};

/// What to stress.
#[derive(Debug, Clone)]
pub struct StressOptions {
    pub runs: usize,
    pub seed: u64,
    /// Topology files; empty: every file in labs/topologies/.
    pub topologies: Vec<PathBuf>,
    pub random: bool,
    pub subset_only: bool,
    pub out: PathBuf,
    pub locate: Locate,
    pub quiet: bool,
}

/// Every `.yaml` in labs/topologies/, by name.
pub fn shipped() -> Result<Vec<PathBuf>> {
    let dir = labs::topology_path("");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        // Multi-site files (`sites:`) are several labs (`--scenario multi-site`).
        .filter(|p| {
            !std::fs::read_to_string(p)
                .is_ok_and(|t| labs::topology::sites::SitesTopology::is_sites_yaml(&t))
        })
        .collect();
    v.sort();
    Ok(v)
}

struct Failure {
    run: usize,
    topology: String,
    seed: Option<u64>,
    file: Option<PathBuf>,
    error: String,
}

fn name_of(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// subset-only on a built random tree: daemons, a rendezvous group of three
/// members (or all if fewer), datagrams paced for OVS.
fn subset_only(topo: &Topology, file: &Path, locate: &Locate) -> Result<()> {
    let (_, _, members) = scenario::parent_group(topo)?;
    let (targets, sender) = scenario::pick_hosts(topo, &members, None, None)?;
    let opts = RunOptions {
        topology: file.to_path_buf(),
        scenario: Scenario::SubsetOnly,
        targets: Some(targets.clone()),
        sender: Some(sender.clone()),
        count: 50,
        payload_len: 500,
        pace_us: 200,
        object_size: 0,
        locate: locate.clone(),
        rate: Default::default(),
        put_bench: crate::putbench::PutBenchArgs::default(),
        rogue_join: None,
    };
    let r = scenario::bring_up(topo, locate)?;
    let out = scenario::subset_only(&r, &opts, &targets, &sender).map(|mut v| {
        scenario::annotate_backends(&mut v, topo, &r.stack);
        v
    });
    let logs = r.stack.logs();
    let scenario::Running { lab, stack, .. } = r;
    stack.stop();
    drop(lab);
    let v = out?;
    if v["ok"] != true {
        let off: Vec<String> = v["deliveries"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, d)| d["datagrams"] != d["expected_datagrams"] || d["kernel_dropped"] != 0)
            .map(|(h, d)| {
                format!(
                    "{h} got {} of {} (capture dropped {})",
                    d["datagrams"], d["expected_datagrams"], d["kernel_dropped"]
                )
            })
            .collect();
        anyhow::bail!(
            "subset-only checks failed (targets {targets:?}, sender {sender}; deliveries off: \
             {off:?}): {}\n{logs}",
            serde_json::to_string(&json!({
                "loss_dropped": v["loss"]["total"],
                "ports_match": v["rendezvous"]["ports_match"],
                "switches": v["rendezvous"]["switches"],
                "deliveries_ok": v["deliveries_ok"],
                "sender_egress_bytes": v["sender_egress_bytes"],
                "payload_bytes": v["payload_bytes"],
                "released": v["rendezvous"]["released"],
                "left": v["rendezvous"]["entries_left_after_release"],
            }))?
        );
    }
    Ok(())
}

/// Run the stress and return its summary (the `--json` output).
pub fn run(o: &StressOptions) -> Result<Value> {
    if !labs::lab_tests_enabled() {
        anyhow::bail!("building labs needs root and iproute2");
    }
    let files = if o.topologies.is_empty() {
        shipped()?
    } else {
        o.topologies.clone()
    };
    let mut fixed = Vec::new();
    for f in &files {
        let t = Topology::from_yaml_file(f)?;
        fixed.push((name_of(f), f.clone(), t));
    }
    std::fs::create_dir_all(&o.out).with_context(|| format!("creating {}", o.out.display()))?;
    let t_all = Instant::now();
    let mut times: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut teardown: Vec<u64> = Vec::new();
    let mut failures: Vec<Failure> = Vec::new();
    let mut builds = 0usize;
    for run in 1..=o.runs {
        let t_run = Instant::now();
        let mut line = Vec::new();
        let mut items: Vec<(String, PathBuf, Topology, Option<u64>)> = fixed
            .iter()
            .map(|(n, f, t)| (n.clone(), f.clone(), t.clone(), None))
            .collect();
        if o.random {
            let seed = o.seed.wrapping_add(run as u64);
            let t = generate::random_topology(seed);
            let file = o.out.join(format!("random-{seed}.yaml"));
            items.push(("random".into(), file, t, Some(seed)));
        }
        for (name, file, topo, seed) in items {
            builds += 1;
            let res = stress::cycle(&topo, stress::run_options(), |_| Ok(()))
                .map_err(anyhow::Error::from);
            // Also after a build that failed half way: nothing of any lab of this
            // process may remain (one lab at a time here).
            let res = res.and_then(|c| {
                let left = stress::process_leftovers();
                if left.is_empty() {
                    Ok(c)
                } else {
                    Err(anyhow::anyhow!("left behind: {}", left.join("; ")))
                }
            });
            let res = res.map_err(|e| {
                let left = stress::process_leftovers();
                if left.is_empty() {
                    e
                } else {
                    e.context(format!("and left behind: {}", left.join("; ")))
                }
            });
            // subset-only on random trees, and on files given with --topology.
            let explicit = !o.topologies.is_empty() && seed.is_none();
            let res = match (res, seed) {
                (Ok(c), Some(_)) if o.subset_only => {
                    write_topology(&file, &topo, seed)?;
                    let r = subset_only(&topo, &file, &o.locate).map(|()| c);
                    if r.is_ok() {
                        let _ = std::fs::remove_file(&file);
                    }
                    r
                }
                (Ok(c), None) if o.subset_only && explicit => {
                    subset_only(&topo, &file, &o.locate).map(|()| c)
                }
                (r, _) => r,
            };
            match res {
                Ok(c) => {
                    times.entry(name.clone()).or_default().push(c.build_ms);
                    teardown.push(c.teardown_ms);
                    line.push(format!("{name} {:.1}s", c.build_ms as f64 / 1000.0));
                }
                Err(e) => {
                    let file = match seed {
                        Some(_) => {
                            write_topology(&file, &topo, seed)?;
                            Some(file)
                        }
                        None => Some(file),
                    };
                    let error = format!("{e:#}");
                    eprintln!(
                        "subcast-lab stress: run {run}: {name}{} FAILED: {error}",
                        seed.map(|s| format!(" (seed {s})")).unwrap_or_default()
                    );
                    line.push(format!("{name} FAILED"));
                    failures.push(Failure {
                        run,
                        topology: name,
                        seed,
                        file,
                        error,
                    });
                }
            }
        }
        if !o.quiet {
            eprintln!(
                "run {run}/{}: {:.1}s [{}] failures so far: {}",
                o.runs,
                t_run.elapsed().as_secs_f64(),
                line.join(", "),
                failures.len()
            );
        }
    }
    let per_topology: serde_json::Map<String, Value> = times
        .iter()
        .map(|(n, v)| {
            (
                n.clone(),
                json!({"builds": v.len(), "build_ms_p50": quantile(v, 0.5),
                       "build_ms_p99": quantile(v, 0.99), "build_ms_max": quantile(v, 1.0)}),
            )
        })
        .collect();
    Ok(json!({
        "runs": o.runs,
        "builds": builds,
        "failures": failures.len(),
        "seed": o.seed,
        "subset_only": o.subset_only,
        "seconds": t_all.elapsed().as_secs_f64(),
        "per_topology": per_topology,
        "teardown_ms_p50": quantile(&teardown, 0.5),
        "teardown_ms_p99": quantile(&teardown, 0.99),
        "failed": failures.iter().map(|f| json!({
            "run": f.run, "topology": f.topology, "seed": f.seed,
            "file": f.file.as_ref().map(|p| p.display().to_string()), "error": f.error,
        })).collect::<Vec<_>>(),
    }))
}

fn write_topology(file: &Path, topo: &Topology, seed: Option<u64>) -> Result<()> {
    let comment = format!(
        "Random tree from `labs::generate::random_topology({})` (subcast-lab stress).\n\
         Replay: subcast-lab stress --runs 1 --no-random --topology {}",
        seed.unwrap_or(0),
        file.display()
    );
    std::fs::write(file, generate::to_yaml(topo, &comment))
        .with_context(|| format!("writing {}", file.display()))
}

/// The summary as text.
pub fn render(v: &Value) -> String {
    let mut s = format!(
        "{} runs, {} builds, {} failures in {:.0} s\n",
        v["runs"],
        v["builds"],
        v["failures"],
        v["seconds"].as_f64().unwrap_or(0.0)
    );
    s += &format!(
        "  {:<30} {:>6} {:>9} {:>9} {:>9}\n",
        "topology", "builds", "p50 ms", "p99 ms", "max ms"
    );
    if let Some(m) = v["per_topology"].as_object() {
        for (n, t) in m {
            let u = |k: &str| t[k].as_u64().unwrap_or(0);
            s += &format!(
                "  {:<30} {:>6} {:>9} {:>9} {:>9}\n",
                n,
                u("builds"),
                u("build_ms_p50"),
                u("build_ms_p99"),
                u("build_ms_max")
            );
        }
    }
    s += &format!(
        "  teardown (until nothing is left): p50 {} ms, p99 {} ms\n",
        v["teardown_ms_p50"], v["teardown_ms_p99"]
    );
    for f in v["failed"].as_array().into_iter().flatten() {
        s += &format!(
            "  FAILED run {} {} (file {}): {}\n",
            f["run"], f["topology"], f["file"], f["error"]
        );
    }
    s
}
