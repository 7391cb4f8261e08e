//! The bench results as a table, a JSON file and an SVG chart.

use std::fmt::Write;
use std::path::Path;

use anyhow::{Context, Result};
use plotters::prelude::*;
use serde_json::Value;

const MODES: [&str; 3] = ["rendezvous", "ng-multicast", "unicast"];

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn kib(v: &Value) -> String {
    format!("{:.1}", f(v) / 1024.0)
}

/// The readable table.
pub fn render(r: &Value) -> String {
    let mut o = String::new();
    let rd = &r["ready"];
    let _ = writeln!(
        o,
        "bench on {} (targets {}, sender {}, {} repetitions, {:.0} s)\n",
        r["topology"].as_str().unwrap_or("?"),
        r["targets"]
            .as_array()
            .map(|a| a
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(","))
            .unwrap_or_default(),
        r["sender"].as_str().unwrap_or("?"),
        r["reps"],
        f(&r["seconds"])
    );
    let _ = writeln!(o, "(a) time until the group forwards to every target (ms)");
    let _ = writeln!(
        o,
        "  {:<44} {:>8} {:>8} {:>8} {:>6}",
        "method", "median", "p10", "p90", "fail"
    );
    let rows = [
        (
            "controller push: request -> delivered",
            &rd["push"]["total"],
        ),
        ("  of which request -> grant", &rd["push"]["grant"]),
        (
            "MLD join: told -> delivered at all",
            &rd["mld"]["forwarding"],
        ),
        ("MLD join: told -> all confirmed", &rd["mld"]["confirmed"]),
        ("fixed join delay: told -> delivered", &rd["fixed"]["total"]),
    ];
    for (name, s) in rows {
        let _ = writeln!(
            o,
            "  {:<44} {:>8.2} {:>8.2} {:>8.2} {:>6}",
            name,
            f(&s["median_ms"]),
            f(&s["p10_ms"]),
            f(&s["p90_ms"]),
            s["failed"]
        );
    }
    let _ = writeln!(
        o,
        "  fixed delay = {} ms: {}\n",
        rd["fixed"]["delay_ms"],
        rd["fixed"]["source"].as_str().unwrap_or("")
    );
    let pc = &r["per_chunk"]["modes"];
    let _ = writeln!(
        o,
        "(b) per 1 MiB chunk, R=3 (KiB of UDP payload; manifest put included)"
    );
    if let Some(e) = pc["error"].as_str() {
        let _ = writeln!(o, "  not measured: {e}\n");
    } else {
        let _ = writeln!(
            o,
            "  {:<14} {:>14} {:>14} {:>16}",
            "transport", "sender egress", "to targets", "to non-targets"
        );
        for m in MODES {
            let _ = writeln!(
                o,
                "  {:<14} {:>14} {:>14} {:>16}",
                m,
                kib(&pc[m]["sender_egress_bytes"]),
                kib(&pc[m]["target_bytes"]),
                kib(&pc[m]["non_target_bytes"])
            );
        }
        o.push('\n');
    }
    let th = &r["throughput"]["modes"];
    let _ = writeln!(o, "(c) put throughput, 16 MiB object");
    if let Some(e) = th["error"].as_str() {
        let _ = writeln!(o, "  not measured: {e}");
    } else {
        let _ = writeln!(o, "  {:<14} {:>10} {:>12}", "transport", "MiB/s", "seconds");
        for m in MODES {
            let _ = writeln!(
                o,
                "  {:<14} {:>10.1} {:>12.3}",
                m,
                f(&th[m]["mib_per_s"]),
                f(&th[m]["wall_seconds"])
            );
        }
    }
    crate::bench_loss::render(&r["loss"], &mut o);
    if r["put"].is_object() {
        crate::putbench::render(&r["put"], &mut o);
    }
    if r["peer"]["targets"].is_array() {
        crate::putbench_peer::render(&r["peer"], &mut o);
    } else if let Some(e) = r["peer"]["error"].as_str() {
        let _ = writeln!(o, "\n(g) subcast against GlusterFS: not measured: {e}");
    }
    if r["ovs"]["push"].is_object() {
        let _ = write!(o, "\n{}", crate::bench_ovs::render(&r["ovs"]));
    } else if let Some(e) = r["ovs"]["error"].as_str() {
        let _ = writeln!(
            o,
            "\n(h) Open vSwitch snooping against push: not measured: {e}"
        );
    }
    o
}

/// Write `bench.json` and `bench.svg` into `dir`.
pub fn write_outputs(r: &Value, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join("bench.json"), serde_json::to_string_pretty(r)?)?;
    if r["peer"]["targets"].is_array() {
        peer_svg(&r["peer"], &dir.join("bench-peer.svg"))?;
    }
    svg(r, &dir.join("bench.svg"))
}

/// Part (g) as an SVG: per system, 256 KiB p50, 64 MiB MiB/s and bytes per
/// payload byte, unshaped and shaped.
pub fn peer_svg(v: &Value, path: &Path) -> Result<()> {
    let root = SVGBackend::new(path, (1500, 900)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(450);
    let top = top.split_evenly((1, 3));
    let bottom = bottom.split_evenly((1, 3));
    let short = ["rdv", "ng-mc", "unicast", "gl-fuse", "gl-gfapi"];
    let items = |label: &str, k: &str| -> Vec<(String, f64)> {
        crate::putbench_peer::SYSTEMS
            .iter()
            .zip(short)
            .map(|(s, n)| (n.to_string(), f(&v[label]["summary"][*s][k])))
            .collect()
    };
    let shaped = format!("{} Mbit/s", v["rate_mbit"]);
    bars(
        &top[0],
        "256 KiB put p50, unshaped (log)",
        "ms",
        &items("unshaped", "put_256k_p50_ms"),
        true,
    )?;
    bars(
        &top[1],
        "64 MiB throughput, unshaped",
        "MiB/s",
        &items("unshaped", "throughput_64m_mib_s"),
        false,
    )?;
    bars(
        &top[2],
        "sender bytes per payload byte (64 MiB)",
        "bytes",
        &items("unshaped", "sender_egress_per_payload_byte"),
        false,
    )?;
    bars(
        &bottom[0],
        &format!("256 KiB put p50, links {shaped} (log)"),
        "ms",
        &items("shaped", "put_256k_p50_ms"),
        true,
    )?;
    bars(
        &bottom[1],
        &format!("64 MiB throughput, links {shaped}"),
        "MiB/s",
        &items("shaped", "throughput_64m_mib_s"),
        false,
    )?;
    bars(
        &bottom[2],
        "bytes received by all other hosts per payload byte",
        "bytes",
        &items("unshaped", "received_per_payload_byte"),
        false,
    )?;
    root.present()?;
    Ok(())
}

fn bars(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    unit: &str,
    items: &[(String, f64)],
    log: bool,
) -> Result<()> {
    let max = items
        .iter()
        .map(|i| i.1)
        .filter(|v| v.is_finite())
        .fold(1.0, f64::max)
        * 1.3;
    let n = items.len();
    let mut b = ChartBuilder::on(area);
    b.caption(title, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60);
    let label = |x: &f64| {
        let i = x.round() as usize;
        if (x - x.round()).abs() < 0.01 && i < n {
            items[i].0.clone()
        } else {
            String::new()
        }
    };
    let draw = |i: usize, v: f64| {
        Rectangle::new(
            [(i as f64 - 0.35, 0.0), (i as f64 + 0.35, v)],
            BLUE.mix(0.6).filled(),
        )
    };
    if log {
        let mut c = b.build_cartesian_2d(-0.5f64..(n as f64 - 0.5), (0.1f64..max).log_scale())?;
        c.configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&label)
            .y_desc(unit)
            .draw()?;
        c.draw_series(
            items
                .iter()
                .enumerate()
                .filter(|(_, x)| x.1.is_finite())
                .map(|(i, x)| {
                    Rectangle::new(
                        [(i as f64 - 0.35, 0.1), (i as f64 + 0.35, x.1)],
                        BLUE.mix(0.6).filled(),
                    )
                }),
        )?;
    } else {
        let mut c = b.build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..max)?;
        c.configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&label)
            .y_desc(unit)
            .draw()?;
        c.draw_series(
            items
                .iter()
                .enumerate()
                .filter(|(_, x)| x.1.is_finite())
                .map(|(i, x)| draw(i, x.1)),
        )?;
    }
    Ok(())
}

fn svg(r: &Value, path: &Path) -> Result<()> {
    let root = SVGBackend::new(path, (1200, 900)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(450);
    let (tl, tr) = top.split_horizontally(600);
    let rd = &r["ready"];
    bars(
        &tl,
        "(a) time until the group forwards (median, log)",
        "ms",
        &[
            ("push".into(), f(&rd["push"]["total"]["median_ms"])),
            ("MLD".into(), f(&rd["mld"]["forwarding"]["median_ms"])),
            (
                "MLD confirmed".into(),
                f(&rd["mld"]["confirmed"]["median_ms"]),
            ),
            ("fixed delay".into(), f(&rd["fixed"]["total"]["median_ms"])),
        ],
        true,
    )?;
    let th = &r["throughput"]["modes"];
    bars(
        &tr,
        "(c) put throughput, 16 MiB object",
        "MiB/s",
        &MODES.map(|m| (m.to_string(), f(&th[m]["mib_per_s"]))),
        false,
    )?;
    let (bl, br) = bottom.split_horizontally(600);
    let pc = &r["per_chunk"]["modes"];
    bars(
        &bl,
        "(b) sender egress per 1 MiB chunk, R=3",
        "KiB",
        &MODES.map(|m| (m.to_string(), f(&pc[m]["sender_egress_bytes"]) / 1024.0)),
        false,
    )?;
    bars(
        &br,
        "(b) bytes delivered to non-targets per chunk",
        "KiB",
        &MODES.map(|m| (m.to_string(), f(&pc[m]["non_target_bytes"]) / 1024.0)),
        false,
    )?;
    root.present()?;
    Ok(())
}
