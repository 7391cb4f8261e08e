//! `subcast-controller-bench`: rendezvous grants, misses (a fresh group
//! installed on every agent) and hits (the group is installed: no switch
//! update), over the binary UDP path and the HTTP API, then grants per
//! second with reuse from concurrent clients, and where a miss's time
//! goes. With simulated agents in-process (loopback UDP, real sealing,
//! real SQLite) or against a running controller with real agents.
//! Prints a table and writes JSON.

mod breakdown;
mod clients;
mod sim;

use anyhow::{Context, bail};
use clap::Parser;
use clients::{Http, UdpNode, get_text, quantile};
use serde_json::json;
use sim::SimAgent;
use std::net::{Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use subcast_proto::{Key, Member};

const AGENT_KEY: &str = "5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c01";
const NODE_KEY: &str = "5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c02";
const TOKEN: &str = "bench-storage-node-token";

#[derive(Debug, Parser)]
#[command(about = "Rendezvous grants: misses, hits, grants/s with reuse, miss breakdown")]
struct Args {
    /// Measured requests per path and kind.
    #[arg(long, default_value_t = 1000)]
    requests: usize,
    /// Unmeasured requests per path and kind first.
    #[arg(long, default_value_t = 50)]
    warmup: usize,
    /// Simulated agents (switches) in the VLAN.
    #[arg(long, default_value_t = 3)]
    agents: u32,
    /// SQLite file (default: a fresh file in a temp dir); ":memory:" for none.
    #[arg(long)]
    database: Option<String>,
    /// Concurrent UDP clients in the throughput run.
    #[arg(long, default_value_t = 16)]
    clients: u32,
    /// Length of the throughput run (seconds).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Measure an already running controller at this UDP address instead
    /// of starting one with simulated agents (needs --api, --token,
    /// --node-key-file, --parent, --targets).
    #[arg(long, requires_all = ["api", "token", "node_key_file", "parent", "targets"])]
    controller_udp: Option<SocketAddr>,
    /// The running controller's HTTP API address.
    #[arg(long)]
    api: Option<SocketAddr>,
    /// A storage-node token of the running controller.
    #[arg(long)]
    token: Option<String>,
    /// Key id storage nodes seal UDP requests with (`rendezvous.key_ids`).
    #[arg(long, default_value_t = 2)]
    node_key_id: u32,
    /// File with that key (64 hex digits).
    #[arg(long)]
    node_key_file: Option<PathBuf>,
    /// Parent group address.
    #[arg(long)]
    parent: Option<Ipv6Addr>,
    /// VLAN of the parent group (binary requests carry it).
    #[arg(long, default_value_t = 10)]
    vlan: u16,
    /// Target IPv6 addresses, comma separated (the miss set; the hit set
    /// is its first target alone).
    #[arg(long, value_delimiter = ',')]
    targets: Vec<Ipv6Addr>,
    /// Agents' metrics endpoints (ADDR:PORT), comma separated: their
    /// apply latency goes into the breakdown.
    #[arg(long, value_delimiter = ',')]
    agent_metrics: Vec<SocketAddr>,
    /// Where to write the JSON results.
    #[arg(long, default_value = "controller-bench.json")]
    out: PathBuf,
}

fn config_yaml(agents: &[SocketAddr], database: &str) -> String {
    let mut s = format!(
        "controller: {{ id: 1, udp_listen: \"127.0.0.1:0\", database: \"{database}\" }}\n\
keys:\n  - {{ id: 1, hex: \"{AGENT_KEY}\" }}\n  - {{ id: 2, hex: \"{NODE_KEY}\" }}\n\
vlans:\n  - {{ id: 10, pool: [\"ff15::5c:1:0/112\"] }}\nswitches:\n"
    );
    for (i, a) in agents.iter().enumerate() {
        s += &format!(
            "  - {{ name: s{n}, id: {n}, vlans: [10], agent: {{ address: \"{a}\", key_id: 1 }} }}\n",
            n = i + 1
        );
    }
    s += "groups:\n  - name: chunks-0\n    vlan: 10\n    parent: \"ff15::5c:0:1\"\n    members:\n";
    for h in 1..=6 {
        s += &format!(
            "      - {{ name: h{h}, ipv6: \"fd00:5c::10{h}\", mac: \"02:5c:00:00:01:0{h}\" }}\n"
        );
    }
    // warm_ms 0: a released group is cleared, so the next grant of its
    // target set is a miss again; a group with a lease held is a hit.
    s += &format!(
        "leases: {{ default_ms: 2000, max_ms: 60000, warm_ms: 0, max_per_credential: 0 }}\n\
fanout: {{ retransmit_ms: 20, attempts: 5 }}\n\
api:\n  listen: \"127.0.0.1:0\"\n  tokens: [{{ role: storage-node, name: bench, token: \"{TOKEN}\" }}]\n\
rendezvous: {{ key_ids: [2] }}\n"
    );
    s
}

#[derive(Debug, Default)]
pub(crate) struct Samples(Vec<Duration>);

impl Samples {
    pub(crate) fn p50_us(&self) -> Option<u64> {
        self.summary()["p50_us"].as_u64()
    }

    fn summary(&self) -> serde_json::Value {
        let mut v: Vec<u128> = self.0.iter().map(|d| d.as_micros()).collect();
        v.sort_unstable();
        if v.is_empty() {
            return json!(null);
        }
        let q = |p: f64| v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1];
        json!({
            "n": v.len(),
            "p50_us": q(0.50),
            "p90_us": q(0.90),
            "p99_us": q(0.99),
            "max_us": v[v.len() - 1],
            "mean_us": v.iter().sum::<u128>() / v.len() as u128,
        })
    }
}

struct Target {
    udp: SocketAddr,
    api: SocketAddr,
    token: String,
    key: Key,
    parent: Ipv6Addr,
    vlan: u16,
    miss_set: Vec<Ipv6Addr>,
    hit_set: Vec<Ipv6Addr>,
}

/// `rounds` grant+release cycles on `set`, alternating UDP and HTTP.
async fn cycles(
    t: &Target,
    set: &[Ipv6Addr],
    rounds: usize,
    warmup: usize,
    want_reused: bool,
) -> anyhow::Result<[Samples; 5]> {
    let mut udp = UdpNode::new(t.key.clone(), 77, t.udp).await?;
    let mut http = Http::connect(t.api, &t.token).await?;
    let members: Vec<Member> = set.iter().map(|a| Member::Ipv6(*a)).collect();
    let names: Vec<String> = set.iter().map(|a| a.to_string()).collect();
    let body =
        json!({"parent": t.parent.to_string(), "targets": names, "lifetime_ms": 10000}).to_string();
    let mut out: [Samples; 5] = Default::default();
    for i in 0..warmup + rounds {
        let measured = i >= warmup;
        let t0 = Instant::now();
        let g = udp.grant(t.vlan, t.parent, &members, 10_000).await?;
        let dg = t0.elapsed();
        let transit = Duration::from_micros(udp.last_transit_us);
        if g.reused != want_reused {
            bail!("UDP grant reused={} (expected {want_reused})", g.reused);
        }
        let t0 = Instant::now();
        udp.release(g.lease_id).await?;
        let dr = t0.elapsed();
        let t0 = Instant::now();
        let (status, resp) = http.call("POST", "/v1/rendezvous", &body).await?;
        let hg = t0.elapsed();
        if status != 201 {
            bail!("HTTP grant failed: {status} {resp}");
        }
        let v: serde_json::Value = serde_json::from_str(&resp)?;
        if v["reused"] != want_reused {
            bail!("HTTP grant {v} (expected reused={want_reused})");
        }
        let lease = v["lease_id"].as_str().context("no lease_id")?.to_owned();
        let t0 = Instant::now();
        let (status, resp) = http
            .call("DELETE", &format!("/v1/rendezvous/{lease}"), "")
            .await?;
        let hr = t0.elapsed();
        if status != 200 {
            bail!("HTTP release failed: {status} {resp}");
        }
        if measured {
            out[0].0.push(dg);
            out[1].0.push(dr);
            out[2].0.push(hg);
            out[3].0.push(hr);
            out[4].0.push(transit);
        }
    }
    Ok(out)
}

/// The lease of a grant-only client's grant, ms (see [`throughput`]).
const GRANT_ONLY_LEASE_MS: u32 = 200;

/// Grants per second with reuse: `clients` UDP clients, each its own
/// storage node, each looping grant (a hit) then, if `release`, release
/// (else its lease just expires: 200 ms, so that what one client holds stays
/// under the controller's per-sender quota of 4,096 leases up to 20,000
/// grants/s per client).
async fn throughput(
    t: &Target,
    clients: u32,
    seconds: f64,
    release: bool,
    first_sender: u32,
) -> anyhow::Result<(u64, f64)> {
    let members: Vec<Member> = t.hit_set.iter().map(|a| Member::Ipv6(*a)).collect();
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let lifetime_ms = if release { 1_000 } else { GRANT_ONLY_LEASE_MS };
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let mut node = UdpNode::new(t.key.clone(), first_sender + c, t.udp).await?;
        let (vlan, parent, members) = (t.vlan, t.parent, members.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < end {
                let g = node.grant(vlan, parent, &members, lifetime_ms).await?;
                if !g.reused {
                    bail!("throughput grant was not a hit");
                }
                if release {
                    node.release(g.lease_id).await?;
                }
                n += 1;
            }
            Ok::<u64, anyhow::Error>(n)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    Ok((total, t0.elapsed().as_secs_f64()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let tmp = std::env::temp_dir().join(format!("subcast-controller-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let database = args
        .database
        .clone()
        .unwrap_or_else(|| tmp.join("bench.sqlite").display().to_string());
    let mut agents = Vec::new();
    let mut run = None;
    let (t, agents_desc) = match args.controller_udp {
        Some(udp) => {
            let text =
                std::fs::read_to_string(args.node_key_file.as_ref().context("--node-key-file")?)?;
            (
                Target {
                    udp,
                    api: args.api.context("--api")?,
                    token: args.token.clone().context("--token")?,
                    key: Key::from_hex(args.node_key_id, &text)?,
                    parent: args.parent.context("--parent")?,
                    vlan: args.vlan,
                    miss_set: args.targets.clone(),
                    hit_set: args.targets[..1].to_vec(),
                },
                format!("running controller at {udp} (its real agents)"),
            )
        }
        None => {
            let key = Key::from_hex(1, AGENT_KEY)?;
            for id in 1..=args.agents {
                agents.push(SimAgent::spawn(id, key.clone(), "127.0.0.1:0".parse()?).await?);
            }
            let addrs: Vec<SocketAddr> = agents.iter().map(|a| a.addr).collect();
            let (cfg, _) =
                subcast_controller::config::load_str(&config_yaml(&addrs, &database), &tmp)
                    .map_err(|p| anyhow::anyhow!("bench config: {p:?}"))?;
            let r = subcast_controller::start(cfg).await?;
            let set: Vec<Ipv6Addr> = (1..=3)
                .map(|h| format!("fd00:5c::10{h}").parse())
                .collect::<Result<_, _>>()?;
            let t = Target {
                udp: r.udp_addr,
                api: r.api_addr,
                token: TOKEN.to_owned(),
                key: Key::from_hex(2, NODE_KEY)?,
                parent: "ff15::5c:0:1".parse()?,
                vlan: 10,
                miss_set: set,
                hit_set: vec!["fd00:5c::104".parse()?],
            };
            run = Some(r);
            (
                t,
                format!(
                    "{} simulated agents (loopback UDP, real sealing; no switch programming)",
                    args.agents
                ),
            )
        }
    };

    // Misses: every grant installs a fresh group on every agent.
    let before = breakdown::Scrape::take(t.api, &args.agent_metrics).await;
    let miss = cycles(&t, &t.miss_set, args.requests, args.warmup, false).await?;
    let after = breakdown::Scrape::take(t.api, &args.agent_metrics).await;
    let stages = breakdown::stages(&before, &after, &miss[0], &miss[4]);
    // Hits: a lease held on the hit set keeps its group installed.
    let mut holder = UdpNode::new(t.key.clone(), 99, t.udp).await?;
    let hit_members: Vec<Member> = t.hit_set.iter().map(|a| Member::Ipv6(*a)).collect();
    let hold = holder.grant(t.vlan, t.parent, &hit_members, 60_000).await?;
    let hit = cycles(&t, &t.hit_set, args.requests, args.warmup, true).await?;
    let (grants, secs) = throughput(&t, args.clients, args.seconds, true, 1000).await?;
    let (grants_only, secs_only) = throughput(&t, args.clients, args.seconds, false, 2000).await?;
    // Let the leases of the grant-only run end.
    tokio::time::sleep(Duration::from_millis(u64::from(GRANT_ONLY_LEASE_MS) + 100)).await;
    holder.release(hold.lease_id).await?;

    // Where a miss's time goes.
    let metrics = get_text(t.api, "/metrics").await.unwrap_or_default();
    let p50 = |name: &str, filter: &str| {
        quantile(&metrics, name, filter, 0.5).map(|s| (s * 1e6).round() as u64)
    };
    let engine_miss = p50("subcast_controller_grant_latency_seconds", "kind=\"miss\"");
    let agents_rtt = p50("subcast_controller_miss_phase_seconds", "phase=\"agents\"");
    let store_wait = p50(
        "subcast_controller_miss_phase_seconds",
        "phase=\"store_wait\"",
    );
    let engine_hit = p50("subcast_controller_grant_latency_seconds", "kind=\"hit\"");
    let mut agent_apply: Vec<u64> = Vec::new();
    for a in &args.agent_metrics {
        if let Ok(text) = get_text(*a, "/metrics").await
            && let Some(s) = quantile(&text, "subcast_agent_apply_latency_seconds", "", 0.5)
        {
            agent_apply.push((s * 1e6).round() as u64);
        }
    }
    let client_udp_miss = miss[0].summary()["p50_us"].as_u64();
    let client_http_miss = miss[2].summary()["p50_us"].as_u64();
    let results = json!({
        "what": "rendezvous grants: miss (fresh group on every agent), hit (group installed, no switch update); grant/release cycles alternating UDP and HTTP; then grants/s with reuse",
        "agents": agents_desc,
        "database": if args.controller_udp.is_some() {
            "the running controller's".to_owned()
        } else if database == ":memory:" { "in memory".to_owned() } else { "SQLite file (WAL, synchronous=NORMAL)".to_owned() },
        "requests_per_path": args.requests,
        "warmup_per_path": args.warmup,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
        "miss": {
            "udp": { "grant": miss[0].summary(), "release": miss[1].summary() },
            "http": { "grant": miss[2].summary(), "release": miss[3].summary() },
        },
        "hit": {
            "udp": { "grant": hit[0].summary(), "release": hit[1].summary() },
            "http": { "grant": hit[2].summary(), "release": hit[3].summary() },
        },
        "throughput": {
            "clients": args.clients,
            "grant_release": {
                "seconds": secs,
                "grants": grants,
                "grants_per_s": (grants as f64 / secs).round(),
                "note": "each client loops grant (a hit) then release over UDP: two requests per grant",
            },
            "grant_only": {
                "seconds": secs_only,
                "grants": grants_only,
                "grants_per_s": (grants_only as f64 / secs_only).round(),
                "note": "each client loops grant (a hit, 200 ms lease that expires) over UDP",
            },
        },
        "miss_stages_p50_us": stages,
        "miss_breakdown_p50_us": {
            "client_udp_total": client_udp_miss,
            "client_http_total": client_http_miss,
            "controller_engine": engine_miss,
            "agents_round_trip": agents_rtt,
            "store_wait_after_acks": store_wait,
            "agent_apply_each": agent_apply,
            "udp_transport_and_driver": client_udp_miss.zip(engine_miss).map(|(a, b)| a.saturating_sub(b)),
            "http_transport_and_driver": client_http_miss.zip(engine_miss).map(|(a, b)| a.saturating_sub(b)),
            "engine_hit": engine_hit,
            "note": "controller_engine = request handled to grant answered (includes agents_round_trip and store_wait); agents_round_trip = first SET sent to last ACK (network + agent); agent_apply = the agent's own time per instruction (validation + netlink), from its metrics; quantiles of the controller's and agents' histograms are interpolated within ~10 % buckets",
        },
    });
    println!(
        "{:<5} {:<5} {:<8} {:>6} {:>8} {:>8} {:>8} {:>8}",
        "kind", "path", "op", "n", "p50 us", "p90 us", "p99 us", "max us"
    );
    for kind in ["miss", "hit"] {
        for path in ["udp", "http"] {
            for op in ["grant", "release"] {
                let s = &results[kind][path][op];
                println!(
                    "{:<5} {:<5} {:<8} {:>6} {:>8} {:>8} {:>8} {:>8}",
                    kind, path, op, s["n"], s["p50_us"], s["p90_us"], s["p99_us"], s["max_us"]
                );
            }
        }
    }
    println!(
        "throughput ({} clients, hits over UDP): grant+release {} grants/s; grant only {} grants/s",
        args.clients,
        results["throughput"]["grant_release"]["grants_per_s"],
        results["throughput"]["grant_only"]["grants_per_s"]
    );
    println!(
        "miss breakdown (p50 us): {}",
        results["miss_breakdown_p50_us"]
    );
    breakdown::print(&results["miss_stages_p50_us"]);
    std::fs::write(&args.out, serde_json::to_string_pretty(&results)?)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!("wrote {}", args.out.display());
    if let Some(r) = run {
        r.stop();
    }
    let answered: u64 = agents
        .iter()
        .map(|a| a.answered.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    if !agents.is_empty() {
        println!("simulated agents answered {answered} instructions");
    }
    drop(agents);
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}
