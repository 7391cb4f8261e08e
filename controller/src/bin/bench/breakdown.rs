//! Where a miss spends its time: the controller's and the agents'
//! histograms scraped before and after the miss cycles (so only the
//! misses' observations count), with the client's own timings.
//!
//! One-way delays come from the senders' seal timestamps (the header's
//! `timestamp_us`), read against the receiver's clock: exact on one host
//! (the labs, this bench), meaningless across hosts without synchronised
//! clocks.

use crate::Samples;
use crate::clients::{get_text, quantile_between};
use serde_json::{Value, json};
use std::net::SocketAddr;

/// The metrics text of the controller and of every agent at one moment.
pub struct Scrape {
    controller: String,
    /// Every agent's text, concatenated: quantiles run over all agents.
    agents: String,
}

impl Scrape {
    pub async fn take(api: SocketAddr, agents: &[SocketAddr]) -> Scrape {
        let controller = get_text(api, "/metrics").await.unwrap_or_default();
        let mut all = String::new();
        for a in agents {
            all += &get_text(*a, "/metrics").await.unwrap_or_default();
            all.push('\n');
        }
        Scrape {
            controller,
            agents: all,
        }
    }
}

const CTL: &str = "subcast_controller_";
const AGENT: &str = "subcast_agent_stage_seconds";

fn us(s: Option<f64>) -> Option<u64> {
    s.map(|s| (s * 1e6).round() as u64)
}

/// The stages of a miss, p50 in µs (null where nothing was observed,
/// e.g. agents without `--agent-metrics`).
pub fn stages(before: &Scrape, after: &Scrape, client: &Samples, grant_transit: &Samples) -> Value {
    let ctl = |name: &str, filter: &str| {
        us(quantile_between(
            &before.controller,
            &after.controller,
            &format!("{CTL}{name}"),
            filter,
            0.5,
        ))
    };
    let agent = |stage: &str| {
        us(quantile_between(
            &before.agents,
            &after.agents,
            AGENT,
            &format!("stage=\"{stage}\""),
            0.5,
        ))
    };
    let agent_whole = agent("answer");
    let agent_backend = agent("backend");
    let request_transit = ctl("miss_phase_seconds", "phase=\"request_transit\"");
    let engine_miss = ctl("grant_latency_seconds", "kind=\"miss\"");
    let total = client.p50_us();
    let grant_transit = grant_transit.p50_us();
    let rows = json!([
        [
            "client -> controller: request (UDP, one way)",
            request_transit
        ],
        [
            "controller: a loop turn's engine work (decide, seal)",
            ctl("loop_turn_seconds", "phase=\"engine\"")
        ],
        [
            "controller: a loop turn's sendmmsg",
            ctl("loop_turn_seconds", "phase=\"send\"")
        ],
        [
            "controller -> agent: SET (UDP, one way)",
            agent("transit_in")
        ],
        [
            "agent: receipt -> switch operation (open, validate, plan)",
            agent_whole
                .zip(agent_backend)
                .map(|(a, b)| a.saturating_sub(b))
        ],
        ["agent: switch operation (one netlink batch)", agent_backend],
        ["agent: receipt -> ACK queued (whole agent)", agent_whole],
        [
            "agent -> controller: ACK (UDP, one way)",
            ctl("miss_phase_seconds", "phase=\"ack_transit\"")
        ],
        [
            "controller: decision -> last ACK (all agents)",
            ctl("miss_phase_seconds", "phase=\"agents\"")
        ],
        [
            "controller: a loop turn's SQLite transaction",
            ctl("loop_turn_seconds", "phase=\"store\"")
        ],
        [
            "controller: last ACK -> row durable (store wait)",
            ctl("miss_phase_seconds", "phase=\"store_wait\"")
        ],
        ["controller: request -> grant (engine)", engine_miss],
        ["controller -> client: grant (UDP, one way)", grant_transit],
        ["client: request -> grant", total],
    ]);
    json!({
        "rows": rows,
        "note": "p50 in µs of each stage over the miss cycles (UDP and HTTP alternating; request_transit and the client rows are UDP only); stages are not additive (p50s of different distributions, and the three agents work in parallel); loop-turn rows cover every turn of those cycles (releases and CLEARs included); one-way delays are by the sender's seal time, exact on one host",
    })
}

/// Prints the stage table.
pub fn print(v: &Value) {
    println!("where a miss spends its time (p50 us):");
    for r in v["rows"].as_array().into_iter().flatten() {
        let val = match r[1].as_u64() {
            Some(n) => n.to_string(),
            None => "-".into(),
        };
        println!("  {:<58} {:>6}", r[0].as_str().unwrap_or(""), val);
    }
}
