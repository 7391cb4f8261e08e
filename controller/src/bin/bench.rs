//! `subcast-controller-bench`: rendezvous request -> grant latency with
//! three simulated agents on loopback UDP (real sealing, real SQLite, no
//! switch), over the binary UDP path and the HTTP API in the same run,
//! requests alternating between the two. Prints a table and writes JSON.

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::json;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use subcast_controller::sim::SimAgent;
use subcast_proto::{
    GrantOutcome, Key, Keyring, Member, Message, Opener, RendezvousRelease, RendezvousRequest,
    ReplayGuard, Sealer, now_us,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const AGENT_KEY: &str = "5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c01";
const NODE_KEY: &str = "5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c02";
const TOKEN: &str = "bench-storage-node-token";

#[derive(Debug, Parser)]
#[command(about = "Rendezvous grant latency, UDP and HTTP paths, simulated agents")]
struct Args {
    /// Measured requests per path.
    #[arg(long, default_value_t = 1000)]
    requests: usize,
    /// Unmeasured requests per path first.
    #[arg(long, default_value_t = 50)]
    warmup: usize,
    /// Simulated agents (switches) in the VLAN.
    #[arg(long, default_value_t = 3)]
    agents: u32,
    /// SQLite file (default: a fresh file in a temp dir); ":memory:" for none.
    #[arg(long)]
    database: Option<String>,
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
    parent: Option<std::net::Ipv6Addr>,
    /// VLAN of the parent group (binary requests carry it).
    #[arg(long, default_value_t = 10)]
    vlan: u16,
    /// Target IPv6 addresses, comma separated.
    #[arg(long, value_delimiter = ',')]
    targets: Vec<std::net::Ipv6Addr>,
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
    s += &format!(
        "leases: {{ default_ms: 2000, max_ms: 60000 }}\nfanout: {{ retransmit_ms: 20, attempts: 5 }}\n\
api:\n  listen: \"127.0.0.1:0\"\n  tokens: [{{ role: storage-node, name: bench, token: \"{TOKEN}\" }}]\n\
rendezvous: {{ key_ids: [2] }}\n"
    );
    s
}

/// A storage node on the binary path.
struct UdpNode {
    socket: UdpSocket,
    sealer: Sealer,
    opener: Opener,
    to: SocketAddr,
    buf: Vec<u8>,
}

impl UdpNode {
    async fn exchange(&mut self, m: &Message, id: u64) -> anyhow::Result<Message> {
        let bytes = self.sealer.seal(m, now_us());
        self.socket.send_to(&bytes, self.to).await?;
        loop {
            let n = tokio::time::timeout(Duration::from_secs(3), self.socket.recv(&mut self.buf))
                .await
                .context("no answer from the controller within 3 s")??;
            let dg = self.opener.open(&self.buf[..n], now_us())?;
            if dg.message.txid() == Some(id) {
                return Ok(dg.message);
            }
        }
    }
}

/// One keep-alive HTTP/1.1 connection (a minimal client: the bench
/// measures the server, not a client library).
struct Http {
    stream: TcpStream,
    buf: Vec<u8>,
    token: String,
}

impl Http {
    async fn call(
        &mut self,
        method: &str,
        path: &str,
        body: &str,
    ) -> anyhow::Result<(u16, String)> {
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: controller\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.token,
            body.len()
        );
        self.stream.write_all(req.as_bytes()).await?;
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_string();
                let status: u16 = head
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .context("bad status line")?;
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().to_owned())
                    })
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                while self.buf.len() < end + 4 + len {
                    let n = self.stream.read(&mut chunk).await?;
                    if n == 0 {
                        bail!("connection closed mid-body");
                    }
                    self.buf.extend_from_slice(&chunk[..n]);
                }
                let body = String::from_utf8_lossy(&self.buf[end + 4..end + 4 + len]).to_string();
                return Ok((status, body));
            }
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                bail!("connection closed");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

#[derive(Debug, Default)]
struct Samples(Vec<Duration>);

impl Samples {
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let tmp = std::env::temp_dir().join(format!("subcast-controller-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let database = args
        .database
        .clone()
        .unwrap_or_else(|| tmp.join("bench.sqlite").display().to_string());
    // Either a running controller (real agents behind it) or one started
    // here with simulated agents.
    let mut agents = Vec::new();
    let mut run = None;
    let (udp_to, api_to, token, node_key, parent, target_ips, agents_desc) = match args
        .controller_udp
    {
        Some(udp_to) => {
            let text =
                std::fs::read_to_string(args.node_key_file.as_ref().context("--node-key-file")?)?;
            (
                udp_to,
                args.api.context("--api")?,
                args.token.clone().context("--token")?,
                Key::from_hex(args.node_key_id, &text)?,
                args.parent.context("--parent")?,
                args.targets.clone(),
                format!("running controller at {udp_to} (its real agents)"),
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
            let out = (
                r.udp_addr,
                r.api_addr,
                TOKEN.to_owned(),
                Key::from_hex(2, NODE_KEY)?,
                "ff15::5c:0:1".parse()?,
                (1..=3)
                    .map(|h| format!("fd00:5c::10{h}").parse())
                    .collect::<Result<Vec<_>, _>>()?,
                format!(
                    "{} simulated agents (subcast_controller::sim, loopback UDP, real sealing; no switch programming)",
                    args.agents
                ),
            );
            run = Some(r);
            out
        }
    };
    let bind: SocketAddr = if udp_to.is_ipv6() {
        "[::]:0".parse()?
    } else {
        "0.0.0.0:0".parse()?
    };
    let mut udp = UdpNode {
        socket: UdpSocket::bind(bind).await?,
        sealer: Sealer::new(node_key.clone(), 77, now_us()),
        opener: Opener::new(Keyring::new([node_key]), ReplayGuard::default()),
        to: udp_to,
        buf: vec![0u8; 10_000],
    };
    let mut http = Http {
        stream: TcpStream::connect(api_to).await?,
        buf: Vec::new(),
        token,
    };
    http.stream.set_nodelay(true)?;
    let targets: Vec<Member> = target_ips.iter().map(|a| Member::Ipv6(*a)).collect();
    let names: Vec<String> = target_ips.iter().map(|a| a.to_string()).collect();
    let body =
        json!({"parent": parent.to_string(), "targets": names, "lifetime_ms": 10000}).to_string();

    let (mut udp_grant, mut udp_release, mut http_grant, mut http_release) = (
        Samples::default(),
        Samples::default(),
        Samples::default(),
        Samples::default(),
    );
    let total = args.warmup + args.requests;
    for i in 0..total {
        let measured = i >= args.warmup;
        // UDP path.
        let rid = i as u64 + 1;
        let rq = Message::RendezvousRequest(RendezvousRequest {
            request_id: rid,
            vlan: args.vlan,
            parent,
            lifetime_ms: 10_000,
            targets: targets.clone(),
        });
        let t = Instant::now();
        let Message::RendezvousGrant(g) = udp.exchange(&rq, rid).await? else {
            bail!("unexpected answer")
        };
        let dt = t.elapsed();
        let GrantOutcome::Granted { lease_id, .. } = g.outcome else {
            bail!("refused: {:?}", g.outcome)
        };
        let t = Instant::now();
        let Message::ReleaseAck(a) = udp
            .exchange(
                &Message::RendezvousRelease(RendezvousRelease { lease_id }),
                lease_id,
            )
            .await?
        else {
            bail!("unexpected answer to release")
        };
        let dr = t.elapsed();
        if !a.released {
            bail!("release of {lease_id} not acknowledged");
        }
        if measured {
            udp_grant.0.push(dt);
            udp_release.0.push(dr);
        }
        // HTTP path.
        let t = Instant::now();
        let (status, resp) = http.call("POST", "/v1/rendezvous", &body).await?;
        let dt = t.elapsed();
        if status != 201 {
            bail!("HTTP grant failed: {status} {resp}");
        }
        let v: serde_json::Value = serde_json::from_str(&resp)?;
        let lease = v["lease_id"].as_str().context("no lease_id")?.to_owned();
        let t = Instant::now();
        let (status, resp) = http
            .call("DELETE", &format!("/v1/rendezvous/{lease}"), "")
            .await?;
        let dr = t.elapsed();
        if status != 200 {
            bail!("HTTP release failed: {status} {resp}");
        }
        if measured {
            http_grant.0.push(dt);
            http_release.0.push(dr);
        }
    }

    let results = json!({
        "what": "rendezvous request -> grant (every agent ACKed), then release (CLEAR ACKed by every agent)",
        "agents": agents_desc,
        "database": if args.controller_udp.is_some() {
            "the running controller's".to_owned()
        } else if database == ":memory:" { "in memory".to_owned() } else { "SQLite file (WAL, synchronous=NORMAL)".to_owned() },
        "requests_per_path": args.requests,
        "warmup_per_path": args.warmup,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
        "udp": { "grant": udp_grant.summary(), "release": udp_release.summary() },
        "http": { "grant": http_grant.summary(), "release": http_release.summary() },
    });
    println!(
        "{:<6} {:<8} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "path", "op", "n", "p50 us", "p90 us", "p99 us", "max us", "mean us"
    );
    for path in ["udp", "http"] {
        for op in ["grant", "release"] {
            let s = &results[path][op];
            println!(
                "{:<6} {:<8} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9}",
                path,
                op,
                s["n"].to_string(),
                s["p50_us"].to_string(),
                s["p90_us"].to_string(),
                s["p99_us"].to_string(),
                s["max_us"].to_string(),
                s["mean_us"].to_string()
            );
        }
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&results)?)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!("wrote {}", args.out.display());
    if let Some(r) = run {
        r.stop();
    }
    drop(agents);
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}
