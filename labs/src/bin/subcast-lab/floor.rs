//! The floor scenario: `run TOPOLOGY --scenario floor` builds the lab alone (no
//! daemons) and measures what the kernel and the disk take for the steps of an
//! R = 3 put from the put-bench writer to the first three storage hosts (the
//! GlusterFS servers of `--peer`): one round, one pass, three durable copies at
//! once, and the multicast ceiling (labs `floor.rs`). The peer bench measures
//! the same in its own labs, beside subcast and GlusterFS.

use anyhow::{Context, Result, bail};
use labs::{FloorOptions, Lab, Topology};
use serde_json::{Value, json};

use crate::putbench::choose_writers;
use crate::putbench_peer::glusterfs_servers;
use crate::scenario::RunOptions;

/// The writer and targets: `--sender` and `--targets` when given, else the
/// put-bench writer and the first three storage hosts.
pub fn hosts(topo: &Topology, name: &str, opts: &RunOptions) -> Result<(String, Vec<String>)> {
    let writer = match &opts.sender {
        Some(s) => s.clone(),
        None => choose_writers(topo, name, 1)?.remove(0),
    };
    let targets: Vec<String> = match &opts.targets {
        Some(t) => t.clone(),
        None => glusterfs_servers(topo, std::slice::from_ref(&writer)),
    };
    for h in targets.iter().chain([&writer]) {
        if !topo.hosts.contains_key(h) {
            bail!("{name}: no host `{h}` in the topology (--sender/--targets)");
        }
    }
    if targets.is_empty() || targets.contains(&writer) {
        bail!("{name}: the floor needs targets other than the writer {writer}");
    }
    Ok((writer, targets))
}

/// The floor on a running lab, as JSON (an error becomes `ok: false`).
pub fn on_lab(lab: &Lab, writer: &str, targets: &[String], size: usize, samples: usize) -> Value {
    let t: Vec<&str> = targets.iter().map(String::as_str).collect();
    let dir = lab.workdir().join("floor");
    let opts = FloorOptions {
        object_size: size,
        samples,
        ..FloorOptions::default()
    };
    match labs::measure_floor(lab, writer, &t, &dir, &opts) {
        Ok(f) => {
            let mut v = serde_json::to_value(&f).unwrap_or(Value::Null);
            v["ok"] = json!(true);
            v
        }
        Err(e) => {
            json!({"ok": false, "error": format!("{e:#}"), "writer": writer, "targets": targets})
        }
    }
}

/// `run --scenario floor`.
pub fn run(opts: &RunOptions) -> Result<Value> {
    let topo = Topology::from_yaml_file(&opts.topology)?;
    let name = opts.topology.display().to_string();
    let (writer, targets) = hosts(&topo, &name, opts)?;
    if !labs::lab_tests_enabled() {
        bail!("a lab needs root and iproute2 (run as root, apt-get install iproute2)");
    }
    // Built as the daemons' labs are, none started.
    let lab =
        Lab::build(&topo, crate::scenario::daemon_lab_options()).context("building the lab")?;
    let mut v = on_lab(
        &lab,
        &writer,
        &targets,
        opts.object_size,
        opts.put_bench.puts,
    );
    v["scenario"] = json!("floor");
    v["topology"] = json!(name);
    v["means"] = json!(MEANS);
    drop(lab);
    Ok(v)
}

/// What the fields mean (in the JSON).
pub const MEANS: &str = "kernel and disk alone, no storage system: round_ms = a 64-octet \
multicast to the targets' group until every target's unicast answer; pass_ms = the object as \
MTU-sized datagrams (UDP GSO sends) until every target answered that it has all; disk_ms = one \
thread per target at once writing the object to a temporary file, renaming it and fsyncing file \
and directory; put_ms = per sample round + pass + disk; ceiling_mib_s = the slowest target's \
MiB/s while the writer sends to the group as fast as its socket takes datagrams";

/// The floor report as text.
pub fn render(v: &Value) -> String {
    let f = |x: &Value| x.as_f64().unwrap_or(f64::NAN);
    if v["ok"] != true {
        return format!(
            "floor on {}: FAILED: {}\n",
            v["topology"].as_str().unwrap_or("?"),
            v["error"].as_str().unwrap_or("?")
        );
    }
    let mut o = format!(
        "floor on {} (kernel and disk alone): writer {}, targets {}, {} octets, {} samples, {}-octet datagrams\n",
        v["topology"].as_str().unwrap_or("?"),
        v["writer"].as_str().unwrap_or("?"),
        v["targets"],
        v["object_size"],
        v["samples"],
        v["datagram_payload"]
    );
    for (k, what) in [
        ("round_ms", "round (multicast out, every answer back)"),
        (
            "pass_ms",
            "pass (the object to the group, every 'have all' back)",
        ),
        ("disk_ms", "disk (a durable copy per target, all at once)"),
        ("put_ms", "put floor (round + pass + disk, per sample)"),
    ] {
        o.push_str(&format!(
            "  {what:<56} p50 {:>8.3} ms  p99 {:>8.3} ms\n",
            f(&v[k]["p50"]),
            f(&v[k]["p99"])
        ));
    }
    o.push_str(&format!(
        "  multicast ceiling: {:.1} MiB/s to every target (per target {}; {} datagrams lost)\n",
        f(&v["ceiling_mib_s"]),
        v["ceiling_per_target_mib_s"],
        v["ceiling_lost_datagrams"]
    ));
    o
}

/// The peer bench's floor row for a lab (`block` when paired): the floor from
/// the writer to the GlusterFS servers, with `samples` 256 KiB samples.
pub fn peer_row(
    lab: &Lab,
    writer: &str,
    servers: &[String],
    samples: usize,
    block: Option<usize>,
) -> Value {
    eprintln!("subcast-lab bench (peer): floor (kernel and disk alone)");
    let mut v = on_lab(lab, writer, servers, crate::putbench_peer::SMALL, samples);
    v["system"] = json!("floor");
    if let Some(b) = block {
        v["block"] = json!(b);
    }
    v
}

/// A lab's `floor`: [`summary`] of its floor rows, with the rows under
/// `rows` (kept apart from the systems' `rows[]`).
pub fn report(rows: Vec<Value>) -> Value {
    let mut v = summary(&rows);
    v["rows"] = Value::Array(rows);
    v
}

/// The floor of a lab's report from its rows: every ok floor row's put p50
/// and ceiling, and their medians.
pub fn summary(rows: &[Value]) -> Value {
    let floors: Vec<&Value> = rows
        .iter()
        .filter(|r| r["system"] == "floor" && r["warmup"] != true)
        .collect();
    let ok: Vec<&&Value> = floors.iter().filter(|r| r["ok"] == true).collect();
    let col = |f: &dyn Fn(&Value) -> Option<f64>| -> Vec<f64> {
        ok.iter().filter_map(|r| f(r)).collect()
    };
    let p50 = col(&|r| r["put_ms"]["p50"].as_f64());
    let ceiling = col(&|r| r["ceiling_mib_s"].as_f64());
    let m = |xs: &[f64]| crate::putbench_peer::num(crate::putbench_paired::median(xs));
    json!({
        "ok": !floors.is_empty() && ok.len() == floors.len(),
        "runs": floors.len(),
        "put_256k_p50_ms": m(&p50),
        "round_p50_ms": m(&col(&|r| r["round_ms"]["p50"].as_f64())),
        "pass_p50_ms": m(&col(&|r| r["pass_ms"]["p50"].as_f64())),
        "disk_p50_ms": m(&col(&|r| r["disk_ms"]["p50"].as_f64())),
        "ceiling_mib_s": m(&ceiling),
        "errors": floors.iter().filter_map(|r| r["error"].as_str()).collect::<Vec<_>>(),
        "means": MEANS,
    })
}

/// Beside each timed target, what the floor allows: the floor (or ceiling)
/// over the same GlusterFS figure, and whether that ratio could meet the
/// target at all (`reachable: false`: no put of subcast's shape can meet it
/// on this machine). The bytes target has no floor.
pub fn annotate_targets(targets: &mut Value, unshaped: &Value, shaped: &Value) {
    let Some(ts) = targets.as_array_mut() else {
        return;
    };
    for t in ts {
        let what = t["what"].as_str().unwrap_or("");
        let floor = if what.starts_with("256 KiB") {
            unshaped["put_256k_p50_ms"].as_f64()
        } else if what.starts_with("64 MiB") && what.contains("unshaped") {
            unshaped["ceiling_mib_s"].as_f64()
        } else if what.starts_with("64 MiB") {
            shaped["ceiling_mib_s"].as_f64()
        } else {
            continue;
        };
        let (Some(floor), Some(gl), Some(th)) =
            (floor, t["glusterfs"].as_f64(), t["threshold"].as_f64())
        else {
            t["floor"] =
                json!({"reachable": Value::Null, "why": "no floor or no GlusterFS figure"});
            continue;
        };
        let ratio = floor / gl;
        let at_most = t["at_most"] == true;
        t["floor"] = json!({
            "value": crate::putbench_peer::num(floor),
            "ratio": crate::putbench_peer::num(ratio),
            "reachable": crate::putbench_peer::meets(ratio, th, at_most),
            "means": if at_most {
                "the floor's 256 KiB put p50 over GlusterFS's: subcast's ratio cannot go below it here"
            } else {
                "the multicast ceiling over GlusterFS's throughput: subcast's ratio cannot go above it here"
            },
        });
    }
}

/// The floor's line under a lab's rows of the peer table.
pub fn render_line(f: &Value, links: &str, o: &mut String) {
    if f.is_null() {
        return;
    }
    let x = |k: &str| f[k].as_f64().unwrap_or(f64::NAN);
    o.push_str(&format!(
        "  {links:<10} {:<16} {:>9.1} {:>9} {:>9.1}   (kernel and disk alone: round {:.2} + pass {:.2} + disk {:.2} ms; {} run(s){})\n",
        "floor",
        x("put_256k_p50_ms"),
        "-",
        x("ceiling_mib_s"),
        x("round_p50_ms"),
        x("pass_p50_ms"),
        x("disk_p50_ms"),
        f["runs"],
        if f["ok"] == true { "" } else { ", FAILED" },
    ));
    for e in f["errors"].as_array().into_iter().flatten().take(1) {
        o.push_str(&format!(
            "      floor error: {}\n",
            e.as_str().unwrap_or("")
        ));
    }
}

/// A target's floor under it in the peer table.
pub fn render_target(f: &Value, o: &mut String) {
    let Some(r) = f["ratio"].as_f64() else {
        return;
    };
    o.push_str(&format!(
        "      floor here: {:.3} / GlusterFS = {r:.3}: {}\n",
        f["value"].as_f64().unwrap_or(f64::NAN),
        if f["reachable"] == true {
            "the target is within what this machine allows"
        } else {
            "the target is beyond what this machine allows (kernel and disk alone)"
        }
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn floor_row(p50: f64, ceiling: f64, ok: bool) -> Value {
        json!({"system": "floor", "ok": ok, "put_ms": {"p50": p50}, "ceiling_mib_s": ceiling,
               "round_ms": {"p50": 0.1}, "pass_ms": {"p50": 2.0}, "disk_ms": {"p50": 2.0}})
    }

    #[test]
    fn the_summary_takes_medians_of_the_floor_rows_only() {
        let rows = vec![
            floor_row(4.0, 100.0, true),
            json!({"system": "rendezvous", "put_ms": {"p50": 99.0}}),
            floor_row(5.0, 140.0, true),
            floor_row(6.0, 120.0, true),
            json!({"system": "floor", "warmup": true, "ok": false}),
        ];
        let s = summary(&rows);
        assert_eq!(s["ok"], true);
        assert_eq!(s["runs"], 3);
        assert_eq!(s["put_256k_p50_ms"], 5.0);
        assert_eq!(s["ceiling_mib_s"], 120.0);
        let failed = summary(&[
            floor_row(4.0, 100.0, true),
            json!({"system": "floor", "ok": false, "error": "lost"}),
        ]);
        assert_eq!(failed["ok"], false);
        assert_eq!(failed["errors"], json!(["lost"]));
        assert_eq!(summary(&[])["ok"], false, "no floor at all is not ok");
    }

    #[test]
    fn targets_get_the_floor_ratio_and_whether_it_can_be_met() {
        let mut targets = json!([
            {"what": "256 KiB put p50 (unshaped)", "glusterfs": 8.0, "threshold": 0.5, "at_most": true},
            {"what": "64 MiB throughput (unshaped) vs libgfapi", "glusterfs": 80.0, "threshold": 1.1, "at_most": false},
            {"what": "64 MiB throughput (shaped)", "glusterfs": 7.0, "threshold": 3.0, "at_most": false},
            {"what": "sender bytes per payload byte (64 MiB, unshaped)", "glusterfs": 3.2, "threshold": 0.333, "at_most": true},
        ]);
        let unshaped = json!({"put_256k_p50_ms": 4.4, "ceiling_mib_s": 132.0});
        let shaped = json!({"put_256k_p50_ms": 12.0, "ceiling_mib_s": 23.0});
        annotate_targets(&mut targets, &unshaped, &shaped);
        assert_eq!(targets[0]["floor"]["ratio"], 0.55);
        assert_eq!(targets[0]["floor"]["reachable"], false, "4.4 / 8 > 0.5");
        assert_eq!(targets[1]["floor"]["ratio"], 1.65);
        assert_eq!(targets[1]["floor"]["reachable"], true);
        assert_eq!(targets[2]["floor"]["reachable"], true, "23 / 7 >= 3");
        assert!(targets[3]["floor"].is_null(), "bytes have no floor");
        let mut none = json!([{"what": "256 KiB put p50 (unshaped)", "glusterfs": 8.0, "threshold": 0.5, "at_most": true}]);
        annotate_targets(&mut none, &Value::Null, &Value::Null);
        assert!(none[0]["floor"]["reachable"].is_null());
    }
}
