//! The SVG: one panel per figure (puts/s, waited fraction, table occupancy
//! against the budget, sender bytes against unicast), a bar per policy, for
//! one or several runs (e.g. rates x budgets) side by side.

use anyhow::{Result, anyhow};
use plotters::prelude::*;
use serde_json::Value;
use std::path::Path;

const POLICIES: [&str; 5] = ["fresh", "reuse", "preenum", "lazy-mld", "unicast"];
const COLOURS: [RGBColor; 5] = [
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x7f, 0x7f, 0x7f),
];

/// (panel title, field, scale to a fraction of what)
const PANELS: [(&str, &str); 4] = [
    ("puts/s settled (of offered)", "puts_per_s"),
    (
        "fraction of puts that waited for a switch",
        "waited_fraction",
    ),
    ("most groups on a switch (of budget)", "max_occupancy"),
    ("sender bytes vs unicast", "sender_bytes_vs_unicast"),
];

fn value(run: &Value, policy: &str, field: &str) -> f64 {
    let p = &run["policies"][policy];
    let v = p[field].as_f64().unwrap_or(0.0);
    match field {
        "puts_per_s" => {
            let offered = p["offered_puts_per_s"].as_f64().unwrap_or(0.0);
            if offered > 0.0 { v / offered } else { 0.0 }
        }
        "max_occupancy" => {
            let b = run["params"]["budget"].as_f64().unwrap_or(1.0);
            v / b.max(1.0)
        }
        _ => v,
    }
}

fn label(run: &Value) -> String {
    let p = &run["params"];
    format!(
        "{} nodes, {} puts/s/node, budget {}",
        p["nodes"], p["rate"], p["budget"]
    )
}

/// Draws `runs` (each the tool's JSON) into `path`.
pub fn draw(runs: &[Value], path: &Path) -> Result<()> {
    let width = 420 + 180 * runs.len() as u32;
    let root = SVGBackend::new(path, (width, 4 * 260)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let panels = root.split_evenly((PANELS.len(), 1));
    for (area, (title, field)) in panels.iter().zip(PANELS) {
        let groups = runs.len().max(1);
        let mut chart = ChartBuilder::on(area)
            .caption(format!("subcast-sim: {title}"), ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(45)
            .build_cartesian_2d(0f64..groups as f64, 0f64..1.05f64)
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(groups)
            .x_label_formatter(&|x| {
                let i = x.floor() as usize;
                runs.get(i).map(label).unwrap_or_default()
            })
            .y_desc("fraction")
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        for (pi, policy) in POLICIES.iter().enumerate() {
            let c = COLOURS[pi];
            let bars = runs.iter().enumerate().filter_map(move |(ri, run)| {
                run["policies"].get(*policy)?;
                let x0 = ri as f64 + 0.1 + 0.16 * pi as f64;
                let y = value(run, policy, field).clamp(0.0, 1.05);
                Some(Rectangle::new([(x0, 0.0), (x0 + 0.14, y)], c.filled()))
            });
            chart
                .draw_series(bars)
                .map_err(|e| anyhow!("{e}"))?
                .label(*policy)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], c.filled()));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
    }
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}
