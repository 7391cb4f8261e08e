//! A one-switch lab with all the real daemons, for the tests that look at
//! them from outside (the Wireshark dissector on a capture, Prometheus
//! scraping them): Linux bridge S, storage nodes on H1-H3 (negotiating
//! group NG0), a client on H4, the controller on H5 and the agent in S's
//! namespace. Each test starts the parts it needs, in its own order (the
//! dissector starts its captures first).
//!
//! Needs root and the daemons (`cargo build -p subcast-controller -p
//! subcast-agent -p subcast-node --bins`; `cargo test --workspace` builds
//! them).

#![allow(dead_code)] // each test uses its part

use std::net::{Ipv6Addr, SocketAddr, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use labs::{ChildGuard, Lab, LabOptions, Topology};
use subcast_proto::{
    GrantOutcome, Key, Keyring, Member, Message, Opener, RendezvousRelease, RendezvousRequest,
    ReplayGuard, Sealer, now_us,
};

pub const NG0: &str = "ff05::5c:1:1";
pub const POOL: &str = "ff15::5c00:0/112";
pub const NODES: [&str; 3] = ["H1", "H2", "H3"];
pub const CLIENT: &str = "H4";
pub const CONTROLLER: &str = "H5";

pub fn required() -> bool {
    std::env::var(labs::REQUIRE_ENV).is_ok_and(|v| !v.is_empty() && v != "0")
}

pub fn key_hex(n: u8) -> String {
    format!("{}{n:02x}", "5c".repeat(31))
}

pub fn key(id: u32, n: u8) -> Key {
    Key::from_hex(id, &key_hex(n)).expect("test key")
}

/// The daemons next to this test's binary (target/debug), or `None` with a
/// skip line; a failure under SUBCAST_LABS_REQUIRED.
fn daemons() -> Option<[PathBuf; 3]> {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bins = ["subcast-controller", "subcast-agent", "subcast-node"].map(|b| dir.join(b));
    let missing: Vec<String> = bins
        .iter()
        .filter(|b| !b.is_file())
        .map(|b| b.display().to_string())
        .collect();
    assert!(
        missing.is_empty() || !required(),
        "{} is set but {missing:?} are missing: run `cargo build -p subcast-controller \
         -p subcast-agent -p subcast-node --bins` (cargo test --workspace does)",
        labs::REQUIRE_ENV
    );
    if !missing.is_empty() {
        println!("SKIP: daemons not built: {missing:?}");
        return None;
    }
    Some(bins)
}

/// The last lines of every daemon log of the lab's work directory, for
/// failure messages.
pub fn logs(dir: &Path) -> String {
    let mut out = String::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    for f in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "log"))
    {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        out += &format!("--- {} (last lines)\n{tail}\n", f.display());
    }
    out
}

/// Polls `f` until it holds; fails with the logs after `within`.
pub fn wait_for(what: &str, dir: &Path, within: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < within,
            "timed out waiting for {what}\n{}",
            logs(dir)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn log_has(path: &Path, text: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|s| s.contains(text))
}

fn members_yaml(lab: &Lab, indent: &str) -> String {
    NODES
        .iter()
        .map(|m| {
            let h = lab.host(m);
            format!(
                "{indent}- {{ name: {m}, ipv6: \"{}\", mac: \"{}\" }}\n",
                h.ipv6,
                h.mac_string()
            )
        })
        .collect()
}

fn controller_yaml(lab: &Lab, api_listen: &str) -> String {
    format!(
        r#"controller:
  id: 1
  udp_listen: "[::]:7411"
  database: ":memory:"
  agent_timeout_ms: 15000
keys:
  - {{ id: 1, hex: "{k1}" }}
  - {{ id: 2, hex: "{k2}" }}
  - {{ id: 101, hex: "{k101}" }}
vlans:
  - {{ id: 0, pool: ["{POOL}"] }}
switches:
  - name: S
    id: 1
    vlans: [0]
    agent: {{ address: "[{mgmt}]:7410", key_id: 1, agent_key_id: 101 }}
groups:
  - name: ng0
    vlan: 0
    parent: "{NG0}"
    members:
{members}leases: {{ default_ms: 10000, max_ms: 60000, warm_ms: 0 }}
fanout: {{ retransmit_ms: 20, attempts: 5 }}
api:
  listen: "{api_listen}"
  tokens:
    - {{ role: admin, name: ops, token: lab-admin-token-0123456789 }}
rendezvous:
  key_ids: [2]
"#,
        k1 = key_hex(1),
        k2 = key_hex(2),
        k101 = key_hex(101),
        mgmt = lab.switch("S").mgmt_ipv6,
        members = members_yaml(lab, "      "),
    )
}

/// The agent's config; `extra` is more top-level lines.
fn agent_yaml(lab: &Lab, dir: &Path, extra: &str) -> String {
    for (id, n) in [(1, 1), (101, 101)] {
        let p = dir.join(format!("k{id}.key"));
        std::fs::write(&p, key_hex(n)).expect("key file");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    format!(
        r#"switch_id: 1
backend:
  kind: linux-bridge
  bridge: br0
controller: "[{ctl}]:7411"
listen: "[::]:7410"
key: {{ id: 101, file: "{dir}/k101.key" }}
controller_keys:
  - {{ id: 1, file: "{dir}/k1.key" }}
rendezvous_range: ff15::5c00:0/104
heartbeat_interval_ms: 1000
{extra}parent_groups:
  - address: {NG0}
    vlan: 0
    members:
{members}"#,
        ctl = lab.host(CONTROLLER).ipv6,
        dir = dir.display(),
        members = members_yaml(lab, "      "),
    )
}

/// A storage node's config (`id`: a node; `None`: a client); `node_extra`
/// is more fields of the node's `node:` mapping (`, metrics: ...`).
pub fn node_yaml(lab: &Lab, dir: &Path, id: Option<usize>, node_extra: &str) -> String {
    let mut c = format!(
        "negotiating_groups: [{NG0}]\ninterface: eth0\nreplicas: 2\nchunk_size: 65536\n\
         key: {{id: 7, hex: \"{}\"}}\ncontroller: {{address: \"[{}]:7411\", vlan: 0, key: {{id: 2, hex: \"{}\"}}}}\n",
        key_hex(7),
        lab.host(CONTROLLER).ipv6,
        key_hex(2),
    );
    if let Some(i) = id {
        c += &format!(
            "node: {{id: {i}, store: {}/node{i}, reserve_bytes: 0{node_extra}}}\n",
            dir.display()
        );
    }
    c
}

/// The lab and the daemons started in it (stopped when dropped).
pub struct OneSwitch {
    pub lab: Lab,
    pub dir: PathBuf,
    pub procs: Vec<ChildGuard>,
    ctl_bin: PathBuf,
    agent_bin: PathBuf,
    pub node_bin: PathBuf,
}

impl OneSwitch {
    /// Builds the lab; `None` (with a skip line) without the daemons.
    pub fn build() -> Option<OneSwitch> {
        let [ctl_bin, agent_bin, node_bin] = daemons()?;
        let topo = Topology::from_yaml_str(&format!(
            "switches:\n  S: {{backend: linux-bridge}}\nhosts:\n  H1: {{switch: S}}\n  H2: {{switch: S}}\n  \
             H3: {{switch: S}}\n  H4: {{switch: S}}\n  H5: {{switch: S}}\nnegotiating_groups:\n  \
             NG0: {{group: \"{NG0}\", members: [H1, H2, H3]}}\n"
        ))
        .expect("topology");
        let lab = Lab::build(
            &topo,
            LabOptions {
                close_mld: true,
                static_negotiating_groups: true,
                ..Default::default()
            },
        )
        .expect("lab");
        Some(OneSwitch {
            dir: lab.workdir().to_owned(),
            lab,
            procs: Vec::new(),
            ctl_bin,
            agent_bin,
            node_bin,
        })
    }

    /// Starts `args` in namespace `ns`, stdout and stderr into `log` in the
    /// work directory, at info level (the waits read it); kept until drop.
    pub fn spawn(&mut self, ns: &str, args: &[&str], log: &str) {
        let f = std::fs::File::create(self.dir.join(log)).expect("log file");
        let out = f.try_clone().expect("log file");
        let child = self
            .lab
            .spawn_with(ns, args, move |c| {
                c.stderr(f)
                    .stdout(out)
                    .env("RUST_LOG", "info")
                    .env("NO_COLOR", "1");
            })
            .expect("spawn");
        self.procs.push(child);
    }

    /// Writes a config file into the work directory; its path.
    pub fn cfg(&self, name: &str, text: String) -> String {
        let p = self.dir.join(name);
        std::fs::write(&p, text).expect("config");
        p.display().to_string()
    }

    pub fn netns(&self, host: &str) -> String {
        self.lab.host(host).netns.clone()
    }

    pub fn ip(&self, host: &str) -> Ipv6Addr {
        self.lab.host(host).ipv6
    }

    /// The controller on H5 (its API at `api_listen` inside H5), then the
    /// agent (its HELLO must find the controller up; `agent_extra`: more
    /// top-level config lines); returns once the controller saw the HELLO.
    pub fn start_controller_and_agent(&mut self, api_listen: &str, agent_extra: &str) {
        let ctl_cfg = self.cfg("controller.yaml", controller_yaml(&self.lab, api_listen));
        let ctl_log = self.dir.join("controller.log");
        let (bin, ns) = (self.ctl_bin.display().to_string(), self.netns(CONTROLLER));
        self.spawn(
            &ns,
            &[&bin, "serve", "--config", &ctl_cfg],
            "controller.log",
        );
        wait_for("the controller", &self.dir, Duration::from_secs(10), || {
            log_has(&ctl_log, "subcast-controller running")
        });
        let agent_cfg = self.cfg("agent.yaml", agent_yaml(&self.lab, &self.dir, agent_extra));
        let (bin, ns) = (
            self.agent_bin.display().to_string(),
            self.lab.switch("S").netns.clone(),
        );
        self.spawn(&ns, &[&bin, "run", "--config", &agent_cfg], "agent.log");
        wait_for(
            "the agent's HELLO at the controller",
            &self.dir,
            Duration::from_secs(10),
            || log_has(&ctl_log, "agent HELLO"),
        );
    }

    /// A storage node on each of H1-H3 (`node_extra` as in [`node_yaml`]).
    pub fn start_nodes(&mut self, node_extra: &str) {
        for (i, h) in NODES.iter().enumerate() {
            let c = self.cfg(
                &format!("node{}.yaml", i + 1),
                node_yaml(&self.lab, &self.dir, Some(i + 1), node_extra),
            );
            let (bin, ns) = (self.node_bin.display().to_string(), self.netns(h));
            self.spawn(
                &ns,
                &[&bin, "serve", "--config", &c],
                &format!("node{}.log", i + 1),
            );
        }
    }

    /// Puts `size` bytes as `name` from the client H4 over rendezvous
    /// groups, retried while the nodes are still starting.
    pub fn put(&self, name: &str, size: u32) {
        let client_cfg = self.cfg("client.yaml", node_yaml(&self.lab, &self.dir, None, ""));
        let object = self.dir.join("object.bin");
        std::fs::write(
            &object,
            (0..size).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
        )
        .unwrap();
        let put = [
            self.node_bin.to_str().unwrap(),
            "put",
            object.to_str().unwrap(),
            "--name",
            name,
            "--transport",
            "rendezvous",
            "--quiet",
            "--config",
            &client_cfg,
        ];
        let mut last = String::new();
        let stored = (0..50).any(|_| match self.lab.exec(&self.netns(CLIENT), &put) {
            Ok(_) => true,
            Err(e) => {
                last = e.to_string();
                std::thread::sleep(Duration::from_millis(200));
                false
            }
        });
        assert!(
            stored,
            "the put never succeeded ({last})\n{}",
            logs(&self.dir)
        );
    }

    /// The test as a rendezvous client on H4 (key 2), talking to the
    /// controller on H5.
    pub fn rv_client(&self) -> RvClient {
        let sock = self.lab.udp_socket(CLIENT, 0, &[]).expect("client socket");
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        RvClient {
            sock,
            ctl: SocketAddr::new(self.ip(CONTROLLER).into(), 7411),
            sealer: Sealer::new(key(2, 2), 0x7e57, now_us()),
            opener: Opener::new(Keyring::new([key(2, 2)]), ReplayGuard::default()),
        }
    }
}

/// A rendezvous client: request, wait for the answer.
pub struct RvClient {
    sock: UdpSocket,
    ctl: SocketAddr,
    sealer: Sealer,
    opener: Opener,
}

impl RvClient {
    /// Sends `msg` (sealed afresh on every retransmission, as the replay
    /// window wants) until an answer that `answer` accepts arrives.
    fn ask<T>(&mut self, msg: &Message, mut answer: impl FnMut(Message) -> Option<T>) -> T {
        let mut buf = vec![0u8; 9216];
        for _ in 0..10 {
            let bytes = self.sealer.seal(msg, now_us());
            self.sock
                .send_to(&bytes, self.ctl)
                .expect("send to the controller");
            // Until the read timeout: skip answers to earlier requests.
            while let Ok((n, _)) = self.sock.recv_from(&mut buf) {
                let d = self
                    .opener
                    .open(&buf[..n], now_us())
                    .unwrap_or_else(|e| panic!("controller answer refused: {e}"));
                if let Some(t) = answer(d.message) {
                    return t;
                }
            }
        }
        panic!("no answer from the controller to {}", msg.name());
    }

    pub fn request(&mut self, id: u64, parent: Ipv6Addr, targets: &[Ipv6Addr]) -> GrantOutcome {
        let req = Message::RendezvousRequest(RendezvousRequest {
            request_id: id,
            vlan: 0,
            parent,
            lifetime_ms: 10_000,
            targets: targets.iter().copied().map(Member::Ipv6).collect(),
        });
        self.ask(&req, |m| match m {
            Message::RendezvousGrant(g) if g.request_id == id => Some(g.outcome),
            _ => None,
        })
    }

    pub fn release(&mut self, lease_id: u64) -> bool {
        let rel = Message::RendezvousRelease(RendezvousRelease { lease_id });
        self.ask(&rel, |m| match m {
            Message::ReleaseAck(a) if a.lease_id == lease_id => Some(a.released),
            _ => None,
        })
    }
}
