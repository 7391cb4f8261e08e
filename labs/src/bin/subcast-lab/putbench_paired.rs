//! Paired blocks for the peer section of `subcast-lab bench` (`--peer-blocks N`,
//! N >= 2): every system's puts are cut into N blocks, and the blocks of all
//! systems alternate in one lab: the systems in table order in even blocks, in
//! reverse order in odd ones (A B B A ...). Each target's ratio is then taken
//! inside each block, between runs minutes or seconds apart, and the verdict
//! rests on the median of the N block ratios.
//!
//! Why: on the project machine the same binary, run back to back, gets slower
//! run after run (a 256 KiB put p50 8.5, 11.6, 16.4, 19.4 ms in four runs in a
//! row; labs/RESULTS.md (g)). Run one system after the other, as a single block
//! does, and that drift lands in the ratio; alternated, it mostly cancels.

use serde_json::{Value, json};

use crate::putbench::Transport;
use crate::putbench_peer::{
    BIG, PEERS, Peer, PeerPlan, PeerVolume, SMALL, SYSTEMS, TRANSPORTS, meets, num, subcast_row,
    summary,
};
use crate::scenario::Running;

/// The systems of block `b`: table order in even blocks, reversed in odd ones.
pub fn block_order(b: usize) -> Vec<&'static str> {
    let mut s = SYSTEMS.to_vec();
    if b % 2 == 1 {
        s.reverse();
    }
    s
}

/// Puts per block for `total` puts in `blocks` blocks (rounded up, at least one).
pub fn per_block(total: usize, blocks: usize) -> usize {
    total.div_ceil(blocks.max(1)).max(1)
}

/// What a system name in [`SYSTEMS`] runs: one of subcast's transports or a
/// GlusterFS client, by the name each reports.
enum System {
    Subcast(Transport),
    Peer(Peer),
}

fn system(name: &str) -> System {
    TRANSPORTS
        .into_iter()
        .find(|t| t.name() == name)
        .map(System::Subcast)
        .or_else(|| {
            PEERS
                .into_iter()
                .find(|p| p.mode().peer_name() == name)
                .map(System::Peer)
        })
        .unwrap_or_else(|| unreachable!("{name} is not in SYSTEMS"))
}

/// Every system on the running lab in `plan.blocks` alternating blocks after
/// a warm-up round; each row carries its `block` (`warmup: true` instead for
/// the warm-up's). The GlusterFS volume is built once, before the warm-up,
/// beside the storage nodes (each side idle while the other runs).
pub fn blocks(r: &Running, writers: &[String], plan: &PeerPlan) -> Vec<Value> {
    let mut vol = PeerVolume::build(&r.lab, &writers[0]);
    let sizes = [
        (SMALL, per_block(plan.small_puts, plan.blocks)),
        (BIG, per_block(plan.big_puts, plan.blocks)),
    ];
    let mut rows = Vec::new();
    let servers = crate::putbench_peer::glusterfs_servers(r.lab.topology(), writers);
    // A warm-up round first, one object of each size per system, not counted:
    // the first put in a fresh lab ran up to 20 % slower than the later ones
    // (the last lab's teardown and the volume's start still settling).
    let warmup = std::iter::once((None, SYSTEMS.to_vec(), [(SMALL, 1), (BIG, 1)]));
    let counted = (0..plan.blocks).map(|b| (Some(b), block_order(b), sizes));
    for (block, order, sizes) in warmup.chain(counted) {
        let label = block.map_or("warm-up".to_string(), |b| {
            format!("block {}/{}", b + 1, plan.blocks)
        });
        for sys in order {
            for (size, puts) in sizes {
                eprintln!("subcast-lab bench (peer): {label}: {sys} {size} x {puts}");
                let mut v = match system(sys) {
                    System::Subcast(t) => subcast_row(r, writers, t, size, puts),
                    System::Peer(p) => vol.row(p, size, puts),
                };
                v["system"] = json!(sys);
                match block {
                    Some(b) => v["block"] = json!(b),
                    None => v["warmup"] = json!(true),
                }
                rows.push(v);
            }
        }
        if let Some(b) = block {
            let samples = sizes[0].1.max(50);
            rows.push(crate::floor::peer_row(
                &r.lab,
                &writers[0],
                &servers,
                samples,
                Some(b),
            ));
        }
    }
    vol.teardown();
    rows
}

/// A lab's part of the report from its rows: the summary of each block, one
/// summary from them (medians; bytes pooled), the counted rows and the
/// warm-up's apart.
pub fn lab_report(rows: Vec<Value>, blocks: usize) -> Value {
    let (floor_rows, rows): (Vec<Value>, Vec<Value>) =
        rows.into_iter().partition(|r| r["system"] == "floor");
    let per_block: Vec<Value> = (0..blocks).map(|b| summary(&rows_of(&rows, b))).collect();
    let (warmup, rows): (Vec<Value>, Vec<Value>) =
        rows.into_iter().partition(|r| r["warmup"] == true);
    let mut combined = combine_summaries(&per_block);
    pool_bytes(&mut combined, &rows);
    let floor = crate::floor::report(floor_rows);
    json!({"summary": combined, "block_summaries": per_block, "rows": rows,
           "warmup_rows": warmup, "floor": floor})
}

/// The targets from the two labs' reports ([`lab_report`]): each block's
/// targets, combined by [`combine_targets`] beside those of the pooled summaries.
pub fn targets(unshaped: &Value, shaped: &Value, blocks: usize) -> Value {
    let per_block: Vec<Value> = (0..blocks)
        .map(|b| {
            crate::putbench_peer::targets(
                &unshaped["block_summaries"][b],
                &shaped["block_summaries"][b],
            )
        })
        .collect();
    let pooled = crate::putbench_peer::targets(&unshaped["summary"], &shaped["summary"]);
    combine_targets(&per_block, &pooled)
}

/// The rows of block `b`.
pub fn rows_of(rows: &[Value], b: usize) -> Vec<Value> {
    rows.iter()
        .filter(|r| r["block"].as_u64() == Some(b as u64))
        .cloned()
        .collect()
}

/// Median of the finite values (the mean of the middle two for an even count);
/// NaN when there are none.
pub fn median(xs: &[f64]) -> f64 {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// One summary from the blocks' summaries: each number the median over the
/// blocks, `ok` only if every block was ok, bytes at non-targets summed.
pub fn combine_summaries(blocks: &[Value]) -> Value {
    let mut m = serde_json::Map::new();
    for s in SYSTEMS {
        let mut o = serde_json::Map::new();
        let keys: Vec<String> = blocks
            .first()
            .and_then(|b| b[s].as_object())
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        for k in keys {
            let v = match k.as_str() {
                "ok" => json!(blocks.iter().all(|b| b[s]["ok"] == true)),
                "bytes_at_non_targets" => blocks
                    .iter()
                    .map(|b| b[s][&k].as_u64())
                    .sum::<Option<u64>>()
                    .map_or(Value::Null, |x| json!(x)),
                _ => {
                    let xs: Vec<f64> = blocks
                        .iter()
                        .map(|b| b[s][&k].as_f64().unwrap_or(f64::NAN))
                        .collect();
                    // A block that did not run makes the median meaningless.
                    if xs.iter().any(|x| !x.is_finite()) {
                        Value::Null
                    } else {
                        num(median(&xs))
                    }
                }
            };
            o.insert(k, v);
        }
        m.insert(s.to_string(), Value::Object(o));
    }
    Value::Object(m)
}

/// Replaces the bytes-per-payload-byte fields of `summary` (medians) with the
/// blocks pooled: every row of the system and size weighted by its payload.
pub fn pool_bytes(summary: &mut Value, rows: &[Value]) {
    for s in SYSTEMS {
        for (key, field, size) in [
            (
                "sender_egress_per_payload_byte",
                "sender_egress_per_payload_byte",
                BIG,
            ),
            (
                "sender_egress_per_payload_byte_256k",
                "sender_egress_per_payload_byte",
                SMALL,
            ),
            (
                "received_per_payload_byte",
                "received_per_payload_byte",
                BIG,
            ),
        ] {
            let (mut bytes, mut payload) = (0.0, 0.0);
            for r in rows.iter().filter(|r| {
                r["system"] == s
                    && r["object_size"].as_u64() == Some(size as u64)
                    && r["warmup"] != true
            }) {
                let (per, p) = (r[field].as_f64(), r["payload_bytes"].as_f64());
                match (per, p) {
                    (Some(per), Some(p)) if p > 0.0 => {
                        bytes += per * p;
                        payload += p;
                    }
                    _ => {
                        payload = f64::NAN;
                    }
                }
            }
            if !summary[s].is_null() {
                summary[s][key] = num(bytes / payload);
            }
        }
    }
}

/// The targets from each block's targets (`per_block[b]` as `targets()` gives
/// them): each timed target's ratio is the median of its block ratios, met
/// when that median meets the target; a target not `paired` (bytes) is taken
/// from `pooled` (`targets()` of the pooled summaries). Every block's ratio is
/// kept beside it.
pub fn combine_targets(per_block: &[Value], pooled: &Value) -> Value {
    let Some(first) = per_block.first().and_then(Value::as_array) else {
        return json!([]);
    };
    let out: Vec<Value> = (0..first.len())
        .map(|i| {
            let col: Vec<&Value> = per_block.iter().map(|b| &b[i]).collect();
            let f = |k: &str| -> Vec<f64> {
                col.iter()
                    .map(|t| t[k].as_f64().unwrap_or(f64::NAN))
                    .collect()
            };
            let ratios = f("ratio");
            let block_ratios: Vec<Value> = ratios.iter().map(|x| num(*x)).collect();
            let blocks_met = col.iter().filter(|t| t["met"] == true).count();
            if pooled[i]["paired"] == false {
                // A count, not a time: the blocks' bytes pooled, not paired.
                let mut t = pooled[i].clone();
                t["block_ratios"] = json!(block_ratios);
                t["blocks_met"] = json!(blocks_met);
                t["ratio_means"] =
                    json!("bytes of every block pooled (a count: no drift to pair away)");
                return t;
            }
            // A block without a ratio (a system failed there): no verdict.
            let ratio = if ratios.iter().all(|x| x.is_finite()) {
                median(&ratios)
            } else {
                f64::NAN
            };
            let threshold = first[i]["threshold"].as_f64().unwrap_or(f64::NAN);
            let at_most = first[i]["at_most"] == true;
            let mut clients: Vec<&str> = col
                .iter()
                .filter_map(|t| t["glusterfs_client"].as_str())
                .collect();
            clients.sort_unstable();
            clients.dedup();
            json!({
                "what": first[i]["what"],
                "subcast": num(median(&f("subcast"))),
                "glusterfs": num(median(&f("glusterfs"))),
                "glusterfs_client": clients.join("/"),
                "ratio": num(ratio),
                "ratio_means": "median of the ratios taken inside each block",
                "block_ratios": block_ratios,
                "blocks_met": blocks_met,
                "target": first[i]["target"],
                "threshold": first[i]["threshold"],
                "at_most": at_most,
                "met": meets(ratio, threshold, at_most),
            })
        })
        .collect();
    Value::Array(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_alternate_and_split_the_puts() {
        assert_eq!(block_order(0), SYSTEMS.to_vec());
        let mut rev = SYSTEMS.to_vec();
        rev.reverse();
        assert_eq!(block_order(1), rev);
        assert_eq!(block_order(2), SYSTEMS.to_vec());
        assert_eq!(per_block(100, 4), 25);
        assert_eq!(per_block(3, 4), 1);
        assert_eq!(per_block(101, 4), 26);
        assert_eq!(per_block(5, 0), 5);
    }

    #[test]
    fn median_of_finite_values() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[f64::NAN, 5.0]), 5.0);
        assert!(median(&[]).is_nan());
    }

    fn target(ratio: f64, met: bool) -> Value {
        json!({"what": "64 MiB throughput (shaped)", "subcast": ratio * 7.0, "glusterfs": 7.0,
               "glusterfs_client": "glusterfs-gfapi", "ratio": ratio, "target": ">= 3",
               "threshold": 3.0, "at_most": false, "met": met})
    }

    /// A drift that a sequential comparison would take for a difference: the
    /// ratio in the blocks straddles the target, the median decides.
    #[test]
    fn the_verdict_is_the_median_of_the_block_ratios() {
        let blocks: Vec<Value> = [2.9, 3.2, 3.05, 2.95]
            .iter()
            .map(|r| json!([target(*r, *r >= 3.0)]))
            .collect();
        let pooled = json!([{"paired": true}]);
        let t = combine_targets(&blocks, &pooled);
        let t = &t[0];
        assert!((t["ratio"].as_f64().unwrap() - 3.0).abs() < 1e-9);
        assert_eq!(t["met"], true);
        assert_eq!(t["blocks_met"], 2);
        assert_eq!(t["block_ratios"].as_array().unwrap().len(), 4);
        assert_eq!(t["glusterfs_client"], "glusterfs-gfapi");
        // One block without a ratio (a system failed there): not met.
        let mut b = blocks.clone();
        b[1][0]["ratio"] = Value::Null;
        assert_eq!(combine_targets(&b, &pooled)[0]["met"], false);
        // At most: 0.4, 0.6, 0.45 -> 0.45 <= 0.5.
        let small: Vec<Value> = [0.4, 0.6, 0.45]
            .iter()
            .map(|r| {
                json!([{"what": "p50", "subcast": r, "glusterfs": 1.0, "glusterfs_client": "glusterfs",
                        "ratio": r, "target": "<= 0.5", "threshold": 0.5, "at_most": true,
                        "met": *r <= 0.5}])
            })
            .collect();
        let t = combine_targets(&small, &pooled);
        assert_eq!(t[0]["met"], true);
        assert!((t[0]["ratio"].as_f64().unwrap() - 0.45).abs() < 1e-9);
        // Bytes: the pooled ratio decides, the blocks ride along.
        let bytes = json!([{"what": "bytes", "ratio": 0.3332, "met": true, "paired": false}]);
        let t = combine_targets(&small, &bytes);
        assert_eq!(t[0]["ratio"], 0.3332);
        assert_eq!(t[0]["met"], true);
        assert_eq!(t[0]["blocks_met"], 2);
        assert_eq!(t[0]["block_ratios"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn bytes_are_pooled_by_payload() {
        let r = |sys: &str, size: usize, per: f64, payload: f64| {
            json!({"system": sys, "object_size": size, "sender_egress_per_payload_byte": per,
                   "received_per_payload_byte": per * 3.0, "payload_bytes": payload})
        };
        let rows = vec![
            r("rendezvous", BIG, 1.1, 100.0),
            r("rendezvous", BIG, 1.0, 300.0),
            r("rendezvous", SMALL, 2.0, 10.0),
        ];
        let mut s = json!({"rendezvous": {"sender_egress_per_payload_byte": 9.0}});
        pool_bytes(&mut s, &rows);
        let e = s["rendezvous"]["sender_egress_per_payload_byte"]
            .as_f64()
            .unwrap();
        assert!((e - 1.025).abs() < 1e-9, "{e}");
        assert_eq!(s["rendezvous"]["sender_egress_per_payload_byte_256k"], 2.0);
        let rcv = s["rendezvous"]["received_per_payload_byte"]
            .as_f64()
            .unwrap();
        assert!((rcv - 3.075).abs() < 1e-9, "{rcv}");
        // A row without its payload: no pooled figure.
        let mut s = json!({"rendezvous": {}});
        pool_bytes(
            &mut s,
            &[json!({"system": "rendezvous", "object_size": BIG,
                                   "sender_egress_per_payload_byte": 1.0})],
        );
        assert!(s["rendezvous"]["sender_egress_per_payload_byte"].is_null());
    }

    #[test]
    fn summaries_combine_by_median_and_all_ok() {
        let block = |p50: f64, ok: bool| {
            let mut m = serde_json::Map::new();
            for s in SYSTEMS {
                m.insert(
                    s.to_string(),
                    json!({"ok": ok, "put_256k_p50_ms": p50, "bytes_at_non_targets": 5}),
                );
            }
            Value::Object(m)
        };
        let c = combine_summaries(&[block(10.0, true), block(14.0, true), block(11.0, true)]);
        assert_eq!(c["rendezvous"]["put_256k_p50_ms"], 11.0);
        assert_eq!(c["rendezvous"]["ok"], true);
        assert_eq!(c["glusterfs"]["bytes_at_non_targets"], 15);
        let c = combine_summaries(&[block(10.0, true), block(12.0, false)]);
        assert_eq!(c["unicast"]["ok"], false);
        assert_eq!(c["unicast"]["put_256k_p50_ms"], 11.0);
        let mut nan = block(1.0, true);
        nan["rendezvous"]["put_256k_p50_ms"] = Value::Null;
        let c = combine_summaries(&[block(10.0, true), nan]);
        assert!(c["rendezvous"]["put_256k_p50_ms"].is_null());
    }
}
