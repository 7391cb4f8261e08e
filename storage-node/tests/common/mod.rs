//! A minimal network-namespace lab for multi-process tests: one plain
//! Linux bridge (multicast snooping off: multicast floods, as on a switch
//! without agents) in its own namespace, one namespace per node and one
//! for the client, fd00:5c::/64 addresses. Everything is removed on drop.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn bin() -> String {
    std::env::var("SUBCAST_NODE_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_subcast-node").to_owned())
}
pub const KEY: &str = "4b6579206f6620746865207375626361737420746573742063c3b87374657221";
pub const CLIENT: usize = 100;

pub fn is_root() -> bool {
    rustix_uid() == 0
}

/// Whether a test that needs root should skip (after saying so); fails
/// instead under SUBCAST_LABS_REQUIRED.
pub fn skip() -> bool {
    if !is_root() {
        assert!(
            std::env::var_os("SUBCAST_LABS_REQUIRED").is_none(),
            "SUBCAST_LABS_REQUIRED is set but these tests need root"
        );
        eprintln!("skipped: needs root for network namespaces");
        return true;
    }
    false
}

fn rustix_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|u| u.parse().ok())
        .unwrap_or(u32::MAX)
}

pub fn run(cmd: &[&str]) -> Output {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub struct Lab {
    pub tag: String,
    pub dir: tempfile::TempDir,
    pub nodes: Vec<usize>,
    children: BTreeMap<usize, Child>,
    namespaces: Vec<String>,
    pub extra_config: String,
    /// The insecure single-key mode (`key:`) instead of pair keys.
    pub single_key: bool,
    /// IPv4 only: 10.92.0.0/24 addresses and 239.92.0.10-11 negotiating
    /// groups instead of fd00:5c::/64 and ff15::5c:0-1.
    pub ipv4: bool,
    /// More client ids, in the client namespace.
    pub extra_clients: Vec<usize>,
    /// More settings of the nodes' `node:` section (", key: value, ...").
    pub node_extra: String,
}

impl Lab {
    pub fn ns(&self, i: usize) -> String {
        format!("{}n{i}", self.tag)
    }

    /// `n` nodes (ids 1..=n) and a client namespace, all on one bridge.
    pub fn new(n: usize, extra_config: &str) -> Lab {
        Lab::with_mtu(n, extra_config, 1500)
    }

    /// As [`Lab::new`], with more settings in every node's `node:` section
    /// (", key: value, ...").
    pub fn with_node_extra(n: usize, extra_config: &str, node_extra: &str) -> Lab {
        Lab::build(n, extra_config, 1500, false, 0, false, node_extra)
    }

    /// As [`Lab::new`], links with the given MTU (written to the configs).
    pub fn with_mtu(n: usize, extra_config: &str, mtu: u32) -> Lab {
        Lab::build(n, extra_config, mtu, false, 0, false, "")
    }

    /// As [`Lab::new`], with `k` more clients (ids 101..=100+k, in the
    /// client namespace; run them with [`Lab::client_as`]): concurrent
    /// client processes each need an id of their own (replay windows and
    /// per-peer limits are per id).
    pub fn with_clients(n: usize, extra_config: &str, k: usize) -> Lab {
        Lab::build(n, extra_config, 1500, false, k, false, "")
    }

    /// As [`Lab::new`] over IPv4 only (README "IPv4").
    pub fn ipv4(n: usize, extra_config: &str) -> Lab {
        Lab::build(n, extra_config, 1500, false, 0, true, "")
    }

    /// Host `i`'s address.
    pub fn addr(&self, i: usize) -> String {
        if self.ipv4 {
            format!("10.92.0.{i}")
        } else {
            format!("fd00:5c::{i:x}")
        }
    }

    /// As [`Lab::new`] in the insecure single-key mode (one shared `key:`).
    pub fn single_key(n: usize, extra_config: &str) -> Lab {
        Lab::build(n, extra_config, 1500, true, 0, false, "")
    }

    fn build(
        n: usize,
        extra_config: &str,
        mtu: u32,
        single_key: bool,
        clients: usize,
        ipv4: bool,
        node_extra: &str,
    ) -> Lab {
        let extra_config = &format!("{extra_config}\nmtu: {mtu}");
        let mtu = mtu.to_string();
        let tag = format!(
            "sc{}x{}",
            std::process::id() % 100_000,
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let mut lab = Lab {
            tag: tag.clone(),
            dir: tempfile::tempdir().unwrap(),
            nodes: (1..=n).collect(),
            children: BTreeMap::new(),
            namespaces: Vec::new(),
            extra_config: extra_config.to_owned(),
            single_key,
            ipv4,
            extra_clients: (CLIENT + 1..=CLIENT + clients).collect(),
            node_extra: node_extra.to_owned(),
        };
        let br = format!("{tag}b");
        run(&["ip", "netns", "add", &br]);
        lab.namespaces.push(br.clone());
        run(&["ip", "-n", &br, "link", "set", "lo", "up"]);
        run(&[
            "ip",
            "-n",
            &br,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        run(&["ip", "-n", &br, "link", "set", "br0", "up"]);
        let hosts: Vec<usize> = lab.nodes.iter().copied().chain([CLIENT]).collect();
        for i in hosts {
            let ns = lab.ns(i);
            run(&["ip", "netns", "add", &ns]);
            lab.namespaces.push(ns.clone());
            for k in ["all", "default"] {
                run(&[
                    "ip",
                    "netns",
                    "exec",
                    &ns,
                    "sysctl",
                    "-q",
                    "-w",
                    &format!("net.ipv6.conf.{k}.accept_dad=0"),
                ]);
            }
            run(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
            let (v, p) = (format!("{tag}v{i}"), format!("{tag}p{i}"));
            run(&[
                "ip", "link", "add", &v, "netns", &ns, "type", "veth", "peer", "name", &p, "netns",
                &br,
            ]);
            run(&[
                "ip", "-n", &ns, "link", "set", &v, "name", "eth0", "mtu", &mtu,
            ]);
            run(&["ip", "-n", &br, "link", "set", &p, "mtu", &mtu]);
            // UDP GSO batches are cut into datagrams here, not at the
            // receivers, so the loss rules and captures see datagrams.
            run(&[
                "ip",
                "netns",
                "exec",
                &ns,
                "ethtool",
                "-K",
                "eth0",
                "tx-udp-segmentation",
                "off",
            ]);
            if ipv4 {
                run(&[
                    "ip",
                    "-n",
                    &ns,
                    "addr",
                    "add",
                    &format!("{}/24", lab.addr(i)),
                    "dev",
                    "eth0",
                ]);
            } else {
                run(&[
                    "ip",
                    "-n",
                    &ns,
                    "addr",
                    "add",
                    &format!("fd00:5c::{i:x}/64"),
                    "dev",
                    "eth0",
                    "nodad",
                ]);
            }
            run(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
            run(&["ip", "-n", &br, "link", "set", &p, "master", "br0"]);
            run(&["ip", "-n", &br, "link", "set", &p, "up"]);
        }
        if !single_key {
            lab.derive_keys();
        }
        lab.write_config(CLIENT);
        for i in lab.extra_clients.clone() {
            lab.write_config(i);
        }
        for i in lab.nodes.clone() {
            lab.write_config(i);
            lab.start(i);
        }
        lab.wait_ready();
        lab
    }

    pub fn store(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node{i}"))
    }

    pub fn config(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node{i}.yaml"))
    }

    pub fn key_file(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node{i}.keys"))
    }

    /// Provisioning with the binary: a cluster secret and, for every node
    /// and the client, a key file with its pairs and the peers' addresses.
    fn derive_keys(&self) {
        let secret = self.dir.path().join("cluster.secret");
        std::fs::write(&secret, KEY).unwrap();
        let hosts: Vec<usize> = self
            .nodes
            .iter()
            .copied()
            .chain([CLIENT])
            .chain(self.extra_clients.iter().copied())
            .collect();
        let peers: Vec<String> = hosts
            .iter()
            .map(|i| format!("{i}={}", self.addr((*i).min(CLIENT))))
            .collect();
        for i in &hosts {
            run(&[
                &bin(),
                "keys",
                "derive",
                "--secret",
                secret.to_str().unwrap(),
                "--node",
                &i.to_string(),
                "--peers",
                &peers.join(","),
                "--out",
                self.key_file(*i).to_str().unwrap(),
            ]);
        }
    }

    fn write_config(&self, i: usize) {
        let keys = if self.single_key {
            format!("key: {{id: 1, hex: \"{KEY}\"}}")
        } else {
            format!("keys: {{file: {}}}", self.key_file(i).display())
        };
        let groups = if self.ipv4 {
            "239.92.0.10, 239.92.0.11"
        } else {
            "ff15::5c:0, ff15::5c:1"
        };
        let mut c = format!(
            "negotiating_groups: [{groups}]\nport: 7412\ninterface: eth0\n{keys}\n{}\n",
            self.extra_config
        );
        if i < CLIENT {
            c += &format!(
                "node: {{id: {i}, store: {}, reserve_bytes: 0{}}}\n",
                self.store(i).display(),
                self.node_extra
            );
        }
        std::fs::write(self.config(i), c).unwrap();
    }

    pub fn start(&mut self, i: usize) {
        let log = std::fs::File::create(self.dir.path().join(format!("node{i}.log"))).unwrap();
        let _ = std::fs::remove_file(self.store(i).join("stats.json"));
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns(i),
                &bin(),
                "serve",
                "--log",
                "info",
                "--config",
            ])
            .arg(self.config(i))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children.insert(i, child);
    }

    pub fn wait_ready(&self) {
        let t0 = Instant::now();
        for i in &self.nodes {
            if !self.children.contains_key(i) {
                continue;
            }
            while !self.store(*i).join("stats.json").exists() {
                assert!(
                    t0.elapsed() < Duration::from_secs(20),
                    "node {i} did not start: {}",
                    self.log(*i)
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // Let MLD settle.
        std::thread::sleep(Duration::from_millis(300));
    }

    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("node{i}.log"))).unwrap_or_default()
    }

    /// Kills node `i` (SIGKILL, by pid).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children.remove(&i) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Runs the client with `args` in the client namespace.
    pub fn client(&self, args: &[&str]) -> Output {
        self.client_as(CLIENT, args)
    }

    /// A client command as client `id` (100, or one of `extra_clients`).
    pub fn client_as(&self, id: usize, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns(CLIENT), &bin()])
            .args(args)
            .arg("--config")
            .arg(self.config(id))
            .output()
            .unwrap()
    }

    /// Random loss of `percent` % of UDP datagrams arriving at every host
    /// (nftables `numgen random`; this kernel has no sch_netem). 0 removes it.
    pub fn set_loss(&self, percent: f64) {
        for i in self.nodes.iter().copied().chain([CLIENT]) {
            let ns = self.ns(i);
            let _ = std::process::Command::new("ip")
                .args([
                    "netns", "exec", &ns, "nft", "delete", "table", "inet", "sclab",
                ])
                .output();
            if percent <= 0.0 {
                continue;
            }
            let per_mille = (percent * 10.0).round() as u32;
            let x = |args: &[&str]| {
                let mut v = vec!["ip", "netns", "exec", &ns, "nft"];
                v.extend_from_slice(args);
                run(&v);
            };
            x(&["add", "table", "inet", "sclab"]);
            x(&[
                "add",
                "chain",
                "inet",
                "sclab",
                "lossin",
                "{ type filter hook input priority 0; policy accept; }",
            ]);
            let n = per_mille.to_string();
            x(&[
                "add", "rule", "inet", "sclab", "lossin", "meta", "l4proto", "udp", "numgen",
                "random", "mod", "1000", "lt", &n, "drop",
            ]);
        }
    }

    /// Data chunk id (hex) -> nodes holding a file for it.
    pub fn placement(&self) -> BTreeMap<String, Vec<usize>> {
        let mut m: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for i in &self.nodes {
            for sub in ["data", "manifests"] {
                let root = self.store(*i).join(sub);
                for e in walk(&root) {
                    let name = e.file_name().unwrap().to_string_lossy().into_owned();
                    if name.len() == 64 {
                        m.entry(name).or_default().push(*i);
                    }
                }
            }
        }
        m
    }

    pub fn stats(&self, i: usize) -> serde_json::Value {
        let s = std::fs::read_to_string(self.store(i).join("stats.json")).unwrap_or_default();
        serde_json::from_str(&s).unwrap_or(serde_json::Value::Null)
    }

    pub fn chunk_file(&self, i: usize, id: &str) -> PathBuf {
        self.store(i).join("data").join(&id[..2]).join(id)
    }
}

fn walk(p: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

impl Drop for Lab {
    fn drop(&mut self) {
        let ids: Vec<usize> = self.children.keys().copied().collect();
        for i in ids {
            self.kill(i);
        }
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// A client's stdout; panics with its stderr if it failed.
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "client failed: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// One JSON document (a client's `--json` output).
pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("{e}: {s}"))
}

impl Lab {
    /// Every chunk of the newest version of `name` is on exactly `r` nodes.
    pub fn assert_placement(&self, name: &str, r: usize) {
        let stat = json(&ok(&self.client(&["stat", name, "--json"])));
        let placement = self.placement();
        let chunks = stat["chunks"].as_array().unwrap();
        assert!(!chunks.is_empty(), "{name} has no chunks: {stat}");
        for c in chunks {
            let id = c.as_str().unwrap();
            let holders = placement.get(id).cloned().unwrap_or_default();
            assert_eq!(holders.len(), r, "chunk {id} on {holders:?}");
        }
    }
}

pub fn random_file(dir: &Path, name: &str, len: usize, seed: u64) -> PathBuf {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    let p = dir.join(name);
    std::fs::write(&p, v).unwrap();
    p
}
