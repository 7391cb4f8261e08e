//! `subcast-lab bench`, part (d): puts under loss. Every link of the lab drops
//! 0 %, 1 % and 5 % of UDP datagrams in each direction (`Lab::set_loss`, the same
//! rules as `loss_pct` in a topology file); for each level and transport
//! (`rendezvous`, `ng-multicast`, `unicast`), puts of a random object by the real
//! storage node, measuring from outside the node: the sender's egress (tcpdump on
//! its `eth0`, direction out: every UDP payload byte it sent, repairs included,
//! lost or not) per payload byte, the put's wall time, failures, and the datagrams
//! the loss rules dropped during the put.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use serde_json::{Value, json};

use crate::dstcap::{self, DstCapture};
use crate::scenario::Running;

/// Where the loss rules drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LossAt {
    /// Every link, each direction (a datagram crossing k links survives
    /// with probability (1 - p)^k).
    EveryLink,
    /// Only where a link enters a host (each receiver loses p of what
    /// reaches it; the sender's own sends are not dropped).
    HostInput,
}

impl LossAt {
    fn name(self) -> &'static str {
        match self {
            LossAt::EveryLink => "every-link",
            LossAt::HostInput => "host-input",
        }
    }
}

/// Loss levels measured, percent per link and direction.
pub const LEVELS: [f64; 3] = [0.0, 1.0, 5.0];
const MODES: [&str; 3] = ["rendezvous", "ng-multicast", "unicast"];

fn random_file(path: &Path, size: usize) -> Result<()> {
    use std::io::Read;
    let mut buf = vec![0u8; size];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    std::fs::write(path, &buf)?;
    Ok(())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

/// One put with the sender's egress captured. Returns (ok, egress bytes, seconds,
/// dropped during the put, error text).
fn put_once(
    r: &Running,
    sender: &str,
    file: &Path,
    name: &str,
    mode: &str,
) -> Result<(bool, u64, f64, u64, String)> {
    let lab = &r.lab;
    let s = lab.host(sender);
    let client = r.stack.client_config(lab, sender)?;
    let before = lab.loss_drops()?.total;
    let eg = DstCapture::start(lab, &s.netns, &s.ifname, "out", "udp")?;
    let (ok, _out, err, secs) = crate::bench::node_put(r, sender, &client, file, name, mode)?;
    let egress = dstcap::sum(&eg.stop()?, |_| true).bytes;
    let dropped = lab.loss_drops()?.total.saturating_sub(before);
    Ok((ok, egress, secs, dropped, err.trim().to_string()))
}

/// Part (d) on a running lab whose storage nodes are up.
pub fn measure(r: &Running, sender: &str, reps: usize, object: usize, at: LossAt) -> Result<Value> {
    let dir = r.lab.workdir().to_path_buf();
    let mut levels = serde_json::Map::new();
    let mut baseline: std::collections::BTreeMap<&str, f64> = Default::default();
    for level in LEVELS {
        match at {
            LossAt::EveryLink => r.lab.set_loss(Some(level))?,
            LossAt::HostInput => r.lab.set_host_input_loss(level)?,
        }
        let mut modes = serde_json::Map::new();
        for mode in MODES {
            let (mut ratios, mut secs, mut drops, mut errors) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for i in 0..reps {
                let f = dir.join(format!("loss-{level}-{mode}-{i}.bin"));
                random_file(&f, object)?;
                let name = format!("bench/loss{level}/{mode}/{i}");
                let (ok, egress, s, dropped, err) = put_once(r, sender, &f, &name, mode)?;
                let _ = std::fs::remove_file(&f);
                drops.push(dropped);
                if ok {
                    ratios.push(egress as f64 / object as f64);
                    secs.push(s);
                } else {
                    errors.push(err);
                }
            }
            let mean = ratios.iter().sum::<f64>() / ratios.len().max(1) as f64;
            let mean = if ratios.is_empty() { f64::NAN } else { mean };
            if level == 0.0 {
                baseline.insert(mode, mean);
            }
            let vs0 = baseline.get(mode).map_or(f64::NAN, |b| mean / b);
            modes.insert(
                mode.to_string(),
                json!({
                    "egress_per_payload_byte": mean,
                    "vs_no_loss": vs0,
                    "put_ms_median": median(&mut secs.clone()) * 1000.0,
                    "samples": {"egress_per_payload_byte": ratios, "put_s": secs, "dropped": drops},
                    "failed": errors.len(),
                    "errors": errors,
                }),
            );
        }
        levels.insert(format!("{level}"), Value::Object(modes));
    }
    r.lab.set_loss(None)?;
    Ok(json!({
        "loss_at": at.name(),
        "what": "puts of a random object under loss (`loss_at`: on every link, each direction, or only at every host's input; UDP only): sender egress (tcpdump on its eth0, UDP payload bytes, repairs included) per object byte, mean over the successful puts; vs_no_loss = that / the same transport's 0 % value in this run; put wall time median",
        "object_bytes": object,
        "reps": reps,
        "levels_pct": LEVELS,
        "targets_rendezvous": {"1": 1.15, "5": 1.35},
        "levels": levels,
    }))
}

/// The part (d) table.
pub fn render(v: &Value, o: &mut String) {
    let _ = writeln!(
        o,
        "\n(d) puts under loss ({}; {} KiB object, {} puts per cell; egress = UDP payload \
         bytes leaving the sender per object byte)",
        v["loss_at"].as_str().unwrap_or("every-link"),
        v["object_bytes"].as_u64().unwrap_or(0) / 1024,
        v["reps"]
    );
    if let Some(e) = v["error"].as_str() {
        let _ = writeln!(o, "  not measured: {e}");
        return;
    }
    let _ = writeln!(
        o,
        "  {:<14} {:>6} {:>10} {:>10} {:>10} {:>7} {:>8}",
        "transport", "loss", "egress/B", "vs 0 %", "put ms", "failed", "dropped"
    );
    for mode in MODES {
        for level in LEVELS {
            let c = &v["levels"][format!("{level}")][mode];
            let dropped: u64 = c["samples"]["dropped"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_u64)
                .sum();
            let _ = writeln!(
                o,
                "  {:<14} {:>5}% {:>10.3} {:>9.2}x {:>10.1} {:>7} {:>8}",
                mode,
                level,
                c["egress_per_payload_byte"].as_f64().unwrap_or(f64::NAN),
                c["vs_no_loss"].as_f64().unwrap_or(f64::NAN),
                c["put_ms_median"].as_f64().unwrap_or(f64::NAN),
                c["failed"],
                dropped
            );
        }
    }
}
