//! What the attack scenario stands on: storage nodes and the client with pair
//! keys (`subcast-node keys derive`), the insider's key material, junk, and
//! the daemons' refusal counters read from outside.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddrV6, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use subcast_proto::PairKeys;

use crate::scenario::Running;
use crate::stack::{
    AGENT_METRICS_PORT, AGENT_PORT, CTL_PORT, NODE_PORT, node_yaml, tail, wait_for,
};

/// Key files written for the run.
pub struct Provisioned {
    pub secret: PathBuf,
    /// host -> its key file (nodes and the sender).
    pub key_files: BTreeMap<String, PathBuf>,
    pub client_config: PathBuf,
    pub client_id: u32,
}

pub fn random_bytes(n: usize) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf)
}

/// Junk datagram number `i`: random bytes, 1..1400 octets; every fourth one
/// starts like a Replicast/push header (magic and version of a real datagram
/// are not known to the attacker, so it copies none; it varies the length).
pub fn junk(i: usize) -> Vec<u8> {
    let len = 1 + (i * 97) % 1400;
    random_bytes(len).unwrap_or_else(|_| vec![i as u8; len])
}

fn run_node(node: &str, args: &[&str]) -> Result<()> {
    let out = std::process::Command::new(node)
        .args(args)
        .output()
        .with_context(|| format!("running {node}"))?;
    if !out.status.success() {
        bail!(
            "`subcast-node {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Replace the single-key line of a config written by [`node_yaml`] with the
/// pair-key file.
fn with_keys(yaml: &str, keys: &std::path::Path) -> String {
    yaml.lines()
        .map(|l| {
            if l.starts_with("key: {") {
                format!("keys: {{ file: \"{}\" }}", keys.display())
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// A cluster secret, a key file per node and for the client (the sender, id =
/// its host index), node configs with `keys:`; starts a storage node on every
/// negotiating-group member except the sender and waits until each listens.
/// Peers are given without addresses, so that a forgery is refused by the tag
/// check itself, not by the address filter.
pub fn provision(r: &mut Running, sender: &str) -> Result<Provisioned> {
    let lab = &r.lab;
    let dir = r.stack.dir.clone();
    let node = r.bins.node.display().to_string();
    let mut hosts: Vec<String> = lab
        .topology()
        .negotiating_groups
        .values()
        .flat_map(|g| g.members.iter().cloned())
        .filter(|h| h != sender)
        .collect();
    hosts.sort();
    hosts.dedup();
    if hosts.len() < 3 {
        bail!(
            "the attack needs at least 3 storage nodes (R = 3; one of them is the rogue, \
             one the node it impersonates); the negotiating groups have {} besides the sender",
            hosts.len()
        );
    }
    let secret = dir.join("cluster.secret");
    let s = secret.display().to_string();
    run_node(&node, &["keys", "secret", "--out", &s])?;
    let mut all: Vec<String> = hosts.clone();
    all.push(sender.to_string());
    let id = |h: &str| u32::from(lab.host(h).index);
    let mut key_files = BTreeMap::new();
    for h in &all {
        let peers: Vec<String> = all
            .iter()
            .filter(|p| *p != h)
            .map(|p| id(p).to_string())
            .collect();
        let out = dir.join(format!("keys-{h}.keys"));
        let (o, n) = (out.display().to_string(), id(h).to_string());
        run_node(
            &node,
            &[
                "keys",
                "derive",
                "--secret",
                &s,
                "--node",
                &n,
                "--peers",
                &peers.join(","),
                "--out",
                &o,
            ],
        )?;
        key_files.insert(h.clone(), out);
    }
    let client_config = dir.join(format!("client-{sender}.yaml"));
    std::fs::write(
        &client_config,
        with_keys(
            &node_yaml(
                lab,
                r.stack.flavor,
                &dir,
                r.stack.ctl_ip,
                sender,
                None,
                &hosts,
            ),
            &key_files[sender],
        ),
    )?;
    for h in &hosts {
        let info = lab.host(h);
        std::fs::create_dir_all(dir.join(format!("store-{h}")))?;
        let path = dir.join(format!("node-{h}.yaml"));
        let y = node_yaml(
            lab,
            r.stack.flavor,
            &dir,
            r.stack.ctl_ip,
            h,
            Some(info.index),
            &hosts,
        );
        std::fs::write(&path, with_keys(&y, &key_files[h]))?;
        let log = std::fs::File::create(dir.join(format!("node-{h}.log")))?;
        let p = path.display().to_string();
        let child = lab.spawn_with(&info.netns, &[&node, "--config", &p, "serve"], |c| {
            c.stderr(log.try_clone().expect("log file"))
                .stdout(log)
                .env(
                    "SUBCAST_LOG",
                    std::env::var("SUBCAST_ATTACK_NODE_LOG").unwrap_or_else(|_| "warn".into()),
                );
        })?;
        r.stack.nodes.insert(h.clone(), child);
    }
    for h in &hosts {
        let netns = lab.host(h).netns.clone();
        let port = format!("sport = :{NODE_PORT}");
        wait_for(
            &format!("storage node on {h}"),
            Duration::from_secs(15),
            || {
                if let Some(c) = r.stack.nodes.get_mut(h)
                    && c.has_exited()
                {
                    bail!(
                        "storage node on {h} exited:\n{}",
                        tail(&dir.join(format!("node-{h}.log")))
                    );
                }
                Ok(!lab.exec(&netns, &["ss", "-Hlun", &port])?.stdout.is_empty())
            },
        )?;
    }
    Ok(Provisioned {
        secret,
        key_files,
        client_config,
        client_id: id(sender),
    })
}

/// The rogue: the last storage-node host (name order) that is not the sender.
pub fn pick_rogue(r: &Running, sender: &str) -> Result<String> {
    r.stack
        .nodes
        .keys()
        .rev()
        .find(|h| *h != sender)
        .cloned()
        .ok_or_else(|| anyhow!("no storage node to play the rogue"))
}

#[derive(serde::Deserialize)]
struct KeyFile {
    node: u32,
    key_id: u32,
    peers: Vec<Peer>,
}

#[derive(serde::Deserialize)]
struct Peer {
    id: u32,
    key: String,
}

/// The insider: a node's own key file, nothing more.
pub struct Insider {
    pub keys: PairKeys,
    pairs: Vec<(u32, [u8; 32])>,
}

impl Insider {
    pub fn load(path: &std::path::Path) -> Result<Insider> {
        let text = std::fs::read_to_string(path)?;
        let f: KeyFile =
            serde_saphyr::from_str(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        let mut pairs = Vec::new();
        for p in f.peers {
            let k = hex32(p.key.trim()).with_context(|| format!("key of peer {}", p.id))?;
            pairs.push((p.id, k));
        }
        Ok(Insider {
            keys: PairKeys::from_pairs(f.key_id, f.node, pairs.clone())?,
            pairs,
        })
    }

    /// The insider's own pair keys, with `victim` as the sender id: what it
    /// can seal when it claims to be another node.
    pub fn claiming(&self, victim: u32) -> Result<PairKeys> {
        Ok(PairKeys::from_pairs(
            self.keys.key_id(),
            victim,
            self.pairs.iter().filter(|(p, _)| *p != victim).copied(),
        )?)
    }
}

/// 64 hex digits as 32 bytes.
pub fn hex32(text: &str) -> Result<[u8; 32]> {
    let b = text.as_bytes();
    if b.len() != 64 {
        bail!("{text:?} is not 64 hex digits");
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        let pair = std::str::from_utf8(&b[2 * i..2 * i + 2])?;
        *o = u8::from_str_radix(pair, 16).with_context(|| format!("{text:?} is not hex"))?;
    }
    Ok(out)
}

/// Refusals per daemon, by reason.
pub type Counters = BTreeMap<String, BTreeMap<String, u64>>;

/// Sum of the samples of `name` (every label set) in Prometheus text.
pub fn metric_sum(text: &str, name: &str) -> u64 {
    by_reason(text, name).values().sum()
}

/// Samples of `name` by their `reason` label ("" without one).
fn by_reason(text: &str, name: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = l.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        let reason = rest
            .split("reason=\"")
            .nth(1)
            .and_then(|x| x.split('"').next())
            .unwrap_or("")
            .to_string();
        let v = rest
            .split_whitespace()
            .last()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        *out.entry(reason).or_default() += v as u64;
    }
    out
}

pub fn controller_metrics(r: &Running) -> Result<String> {
    let (s, v) = r.stack.http(&r.lab, "GET", "/metrics", None)?;
    match v {
        Value::String(t) if s == 200 => Ok(t),
        other => bail!("GET /metrics of the controller: HTTP {s}: {other}"),
    }
}

pub fn agent_metrics(r: &Running, switch: &str) -> Result<String> {
    let ns = r.lab.switch(switch).netns.clone();
    let raw = labs::netns::in_netns(&ns, || -> std::io::Result<String> {
        let mut s = std::net::TcpStream::connect(("::1", AGENT_METRICS_PORT))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: agent\r\n\r\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    })?
    .with_context(|| format!("GET /metrics of the agent of {switch}"))?;
    Ok(raw
        .split_once("\r\n\r\n")
        .map_or(raw.clone(), |x| x.1.to_string()))
}

/// The refusal counters of the daemons named in `names` (`controller`,
/// `agent-S`, `node-H`).
pub fn read_counters(r: &Running, names: &[String]) -> Result<Counters> {
    let mut out = Counters::new();
    for n in names {
        let m = if n == "controller" {
            // `unexpected-answer`: an agent's ACK for a transaction already
            // closed (honest traffic of the puts going on), not the rogue's.
            let mut m = by_reason(
                &controller_metrics(r)?,
                "subcast_controller_bad_datagrams_total",
            );
            m.remove("unexpected-answer");
            m
        } else if let Some(sw) = n.strip_prefix("agent-") {
            by_reason(
                &agent_metrics(r, sw)?,
                "subcast_agent_refused_datagrams_total",
            )
        } else if let Some(h) = n.strip_prefix("node-") {
            let p = r.stack.dir.join(format!("store-{h}/stats.json"));
            let v: Value = std::fs::read_to_string(&p)
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or(Value::Null);
            let mut m: BTreeMap<String, u64> = v["node"]["refused_by_reason"]
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                        .collect()
                })
                .unwrap_or_default();
            // DATA tagged for other nodes is dropped unopened and counted
            // apart (the cost of flooding), not as a refusal.
            let nfu = v["node"]["data_datagrams_not_for_us"].as_u64().unwrap_or(0);
            m.insert("data-not-for-us".into(), nfu);
            m
        } else {
            bail!("unknown daemon {n}");
        };
        out.insert(n.clone(), m);
    }
    Ok(out)
}

/// Delta of refusals between two readings: total, per daemon, per reason.
pub fn delta(before: &Counters, after: &Counters) -> (u64, Value, Value) {
    let mut total = 0;
    let mut per_daemon = serde_json::Map::new();
    let mut per_reason: BTreeMap<String, u64> = BTreeMap::new();
    for (d, m) in after {
        let mut n = 0;
        for (reason, v) in m {
            let b = before
                .get(d)
                .and_then(|x| x.get(reason))
                .copied()
                .unwrap_or(0);
            let dv = v.saturating_sub(b);
            n += dv;
            if dv > 0 {
                *per_reason.entry(reason.clone()).or_default() += dv;
            }
        }
        total += n;
        per_daemon.insert(d.clone(), json!(n));
    }
    (total, Value::Object(per_daemon), json!(per_reason))
}

/// Where each daemon listens, as seen from the hosts.
pub struct Targets {
    /// daemon name -> address.
    pub addrs: BTreeMap<String, SocketAddrV6>,
    /// Agents the hosts cannot reach (OVS switches managed out of band).
    pub unreachable: Vec<String>,
}

impl Targets {
    pub fn of(&self, prefix: &str) -> Vec<(String, SocketAddrV6)> {
        self.addrs
            .iter()
            .filter(|(n, _)| n.starts_with(prefix))
            .map(|(n, a)| (n.clone(), *a))
            .collect()
    }
}

pub fn targets(r: &Running) -> Targets {
    let (lab, stack) = (&r.lab, &r.stack);
    let mut addrs = BTreeMap::new();
    let mut unreachable = Vec::new();
    addrs.insert(
        "controller".to_string(),
        // The attack scenario runs on IPv6 labs only (`scenario::check_family`).
        SocketAddrV6::new(labs::group_ip(stack.ctl_ip), CTL_PORT, 0, 0),
    );
    for (name, sw) in lab.switches() {
        if sw.backend == labs::Backend::Openflow {
            unreachable.push(format!("agent-{name}"));
        } else {
            addrs.insert(
                format!("agent-{name}"),
                SocketAddrV6::new(sw.mgmt_ipv6, AGENT_PORT, 0, 0),
            );
        }
    }
    for h in stack.nodes.keys() {
        addrs.insert(
            format!("node-{h}"),
            SocketAddrV6::new(lab.host(h).ipv6, NODE_PORT, 0, 0),
        );
    }
    Targets { addrs, unreachable }
}

/// VmRSS of a process in KiB (0 if it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

/// A UDP socket in `netns` bound to `[addr]:0`.
pub fn socket_in(netns: &str, addr: Ipv6Addr) -> Result<UdpSocket> {
    let s = labs::netns::in_netns(netns, move || {
        UdpSocket::bind(SocketAddrV6::new(addr, 0, 0, 0)).and_then(|s| {
            s.set_nonblocking(true)?;
            // Room for a whole chunk served at once (the bounded fetch).
            socket2::SockRef::from(&s).set_recv_buffer_size(4 << 20)?;
            Ok(s)
        })
    })??;
    Ok(s)
}

/// Datagrams that arrive on `socks` until none came for 300 ms (at most 5 s):
/// (count, their bytes).
pub fn replies(socks: &[&UdpSocket]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    let t0 = Instant::now();
    let mut last = Instant::now();
    while last.elapsed() < Duration::from_millis(300) && t0.elapsed() < Duration::from_secs(5) {
        let mut got = false;
        for s in socks {
            while let Ok((n, _)) = s.recv_from(&mut buf) {
                out.push(buf[..n].to_vec());
                got = true;
            }
        }
        if got {
            last = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    out
}
