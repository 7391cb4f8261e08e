//! The netns lab with the real `subcast-controller` and three real
//! `subcast-agent`s on the seed's three-switch topology, shared by the
//! end-to-end tests (`e2e_netns.rs`, `e2e_rates.rs`).
#![allow(dead_code)]

use labs::{ChildGuard, Lab, LabOptions, Topology};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::Ipv6Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const CTL_KEY: &str = "1111111111111111111111111111111111111111111111111111111111111111";
pub const AGENT_KEY: &str = "2222222222222222222222222222222222222222222222222222222222222222";
pub const ADMIN: &str = "e2e-admin-token-0123456789";
pub const NODES: &str = "e2e-storage-node-token-0123456789";
pub const NODE_KEY: &str = "3333333333333333333333333333333333333333333333333333333333333333";
pub const POOL: &str = "ff05::5c:2:0/112";
/// With `Tuning::ipv4`: the pool, the parent NG0 and the hosts' addresses.
pub const POOL4: &str = "239.92.128.0/24";
pub const PARENT4: &str = "239.92.0.1";

/// Host `h`'s IPv4 address with `Tuning::ipv4` (10.92.0.INDEX/24).
pub fn host_ipv4(lab: &Lab, h: &str) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(10, 92, 0, lab.host(h).index as u8)
}

/// NG0's members: `ipv6:` addresses, or `ipv4:` ones with `ipv4`.
fn member_lines(lab: &Lab, ipv4: bool) -> String {
    let mut y = String::new();
    for m in &lab.topology().negotiating_groups["NG0"].members {
        let h = lab.host(m);
        let ip = if ipv4 {
            format!("ipv4: \"{}\"", host_ipv4(lab, m))
        } else {
            format!("ipv6: \"{}\"", h.ipv6)
        };
        y += &format!(
            "      - {{ name: {m}, {ip}, mac: \"{}\" }}\n",
            h.mac_string()
        );
    }
    y
}
pub const API_PORT: u16 = 8411;

pub fn agent_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = dir.join("subcast-agent");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p subcast-agent --bin subcast-agent` first",
        bin.display()
    );
    bin
}

pub fn secret(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

pub fn mgmt(lab: &Lab, switch: &str) -> Ipv6Addr {
    lab.switch(switch).mgmt_ipv6
}

pub fn agent_yaml(lab: &Lab, switch: &str, id: u32, ipv4: bool) -> String {
    let dir = lab.workdir();
    let (ng0, range) = if ipv4 {
        (PARENT4.to_owned(), POOL4)
    } else {
        (
            lab.topology().group_address("NG0").unwrap().to_string(),
            POOL,
        )
    };
    let mut y = format!(
        "switch_id: {id}\nbackend: {{ kind: linux-bridge, bridge: br0 }}\ncontroller: \"[{}]:7411\"\n\
listen: \"[{}]:7410\"\nkey: {{ id: 101, file: \"{}\" }}\ncontroller_keys:\n  - {{ id: 1, file: \"{}\" }}\n\
rendezvous_range: \"{range}\"\nheartbeat_interval_ms: 500\nmetrics: \"[{}]:9410\"\nparent_groups:\n  - address: \"{ng0}\"\n    vlan: 0\n    members:\n",
        mgmt(lab, "A"),
        mgmt(lab, switch),
        dir.join("agent.key").display(),
        dir.join("ctl.key").display(),
        mgmt(lab, switch)
    );
    y += &member_lines(lab, ipv4);
    y
}

/// What a test changes in the controller's config.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// The `leases:` line's content.
    pub leases: String,
    /// `budget:` of every switch.
    pub budget: Option<u32>,
    /// IPv4 pool, parent and members (hosts get 10.92.0.INDEX/24).
    pub ipv4: bool,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            leases: "default_ms: 10000, max_ms: 60000, warm_ms: 0, hold_ms: 1000".into(),
            budget: None,
            ipv4: false,
        }
    }
}

pub fn controller_yaml(lab: &Lab, t: &Tuning) -> String {
    let (ng0, pool) = if t.ipv4 {
        (PARENT4.to_owned(), POOL4)
    } else {
        (
            lab.topology().group_address("NG0").unwrap().to_string(),
            POOL,
        )
    };
    let mut y = format!(
        "controller:\n  id: 1\n  udp_listen: \"[{}]:7411\"\n  database: controller.sqlite\n  agent_timeout_ms: 5000\n\
keys:\n  - {{ id: 1, file: ctl.key }}\n  - {{ id: 101, file: agent.key }}\n  - {{ id: 2, file: node.key }}\n\
vlans:\n  - {{ id: 0, pool: [\"{pool}\"] }}\nswitches:\n",
        mgmt(lab, "A")
    );
    for (i, s) in ["A", "B", "C"].iter().enumerate() {
        let budget = t
            .budget
            .map(|b| format!(", budget: {b}"))
            .unwrap_or_default();
        y += &format!(
            "  - {{ name: {s}, id: {}, vlans: [0], agent: {{ address: \"[{}]:7410\", key_id: 1, agent_key_id: 101 }}{budget} }}\n",
            i + 1,
            mgmt(lab, s)
        );
    }
    y += &format!("groups:\n  - name: NG0\n    vlan: 0\n    parent: \"{ng0}\"\n    members:\n");
    y += &member_lines(lab, t.ipv4);
    y += &format!(
        "leases: {{ {} }}\nfanout: {{ retransmit_ms: 20, attempts: 5 }}\n\
api:\n  listen: \"[::1]:{API_PORT}\"\n  tokens: [{{ role: admin, name: e2e, file: admin.token }}, {{ role: storage-node, name: nodes, file: nodes.token }}]\n\
rendezvous: {{ key_ids: [2] }}\n",
        t.leases
    );
    y
}

/// One HTTP/1.0 request to the controller, from inside switch A's namespace.
pub fn http(lab: &Lab, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let ns = lab.switch("A").netns.clone();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.0\r\nHost: c\r\nAuthorization: Bearer {ADMIN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let raw = labs::netns::in_netns(&ns, move || {
        let mut s = std::net::TcpStream::connect(("::1", API_PORT))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(req.as_bytes())?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok::<_, std::io::Error>(out)
    })
    .unwrap()
    .unwrap_or_else(|e| {
        let log = std::fs::read_to_string(lab.workdir().join("controller.log")).unwrap_or_default();
        panic!("controller API: {e}\ncontroller log:\n{log}")
    });
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (
        status,
        serde_json::from_str(body).unwrap_or(Value::String(body.to_owned())),
    )
}

pub fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < within, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn entries(lab: &Lab, switch: &str, group: Ipv6Addr) -> Vec<String> {
    lab.mdb_show(switch)
        .unwrap()
        .into_iter()
        .filter(|e| e.group == group)
        .map(|e| e.port)
        .collect()
}

pub fn deliver(lab: &Lab, from: &str, group: Ipv6Addr) -> BTreeMap<String, u64> {
    let hosts: Vec<String> = lab.hosts().keys().cloned().collect();
    let hs: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let (r, counts) = lab
        .count_at(&hs, &format!("dst {group} and dst port 5000"), || {
            lab.send_multicast(from, group, 5000, 50, 64)
        })
        .unwrap();
    r.unwrap();
    counts.into_iter().map(|(h, c)| (h, c.datagrams)).collect()
}

/// Starts the real controller in switch A's namespace on the lab's
/// `controller.yaml` (its database is the file `controller.sqlite` next to
/// it), logging to `log` in the lab's workdir; returns once its API answers.
pub fn start_controller(lab: &Lab, log: &str) -> ChildGuard {
    let dir = lab.workdir();
    let cfg_s = dir.join("controller.yaml").to_str().unwrap().to_owned();
    let ctl_log = std::fs::File::create(dir.join(log)).unwrap();
    let ctl_bin = env!("CARGO_BIN_EXE_subcast-controller");
    let controller = lab
        .spawn_with(
            &lab.switch("A").netns,
            &[ctl_bin, "serve", "--config", &cfg_s],
            move |c| {
                c.stderr(ctl_log);
                c.stdout(std::process::Stdio::null());
            },
        )
        .unwrap();
    wait_for("controller API", Duration::from_secs(10), || {
        labs::netns::in_netns(&lab.switch("A").netns, || {
            std::net::TcpStream::connect(("::1", API_PORT)).is_ok()
        })
        .unwrap()
    });
    controller
}

pub fn all_agents_up(lab: &Lab) -> bool {
    let (s, v) = http(lab, "GET", "/v1/agents", None);
    s == 200
        && v.as_array()
            .is_some_and(|a| a.len() == 3 && a.iter().all(|x| x["state"] == "up"))
}

/// The lab with the real controller (in switch A's namespace) and three
/// real agents, all up.
pub struct Setup {
    pub agents: BTreeMap<&'static str, ChildGuard>,
    pub _controller: ChildGuard,
    pub lab: Lab,
}

pub fn setup() -> Setup {
    setup_with(&Tuning::default())
}

pub fn setup_with(t: &Tuning) -> Setup {
    let agent = agent_bin();
    let topo = Topology::from_yaml_file(labs::topology_path("seed-three-switch.yaml")).unwrap();
    let lab = Lab::build(&topo, LabOptions::default()).unwrap();
    if t.ipv4 {
        for h in lab.hosts().keys() {
            let a = format!("{}/24", host_ipv4(&lab, h));
            let ns = &lab.host(h).netns;
            lab.exec(ns, &["ip", "addr", "add", &a, "dev", "eth0"])
                .unwrap();
            lab.exec(ns, &["ip", "route", "add", "224.0.0.0/4", "dev", "eth0"])
                .unwrap();
        }
    }
    let dir = lab.workdir().to_owned();
    secret(&dir.join("ctl.key"), CTL_KEY);
    secret(&dir.join("agent.key"), AGENT_KEY);
    secret(&dir.join("admin.token"), ADMIN);
    secret(&dir.join("nodes.token"), NODES);
    secret(&dir.join("node.key"), NODE_KEY);
    let cfg = dir.join("controller.yaml");
    std::fs::write(&cfg, controller_yaml(&lab, t)).unwrap();

    let ctl_bin = env!("CARGO_BIN_EXE_subcast-controller");
    let check = std::process::Command::new(ctl_bin)
        .arg("check-config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let _controller = start_controller(&lab, "controller.log");

    let mut agents: BTreeMap<&'static str, ChildGuard> = BTreeMap::new();
    for (i, s) in ["A", "B", "C"].iter().enumerate() {
        let path = dir.join(format!("agent-{s}.yaml"));
        std::fs::write(&path, agent_yaml(&lab, s, i as u32 + 1, t.ipv4)).unwrap();
        let alog = std::fs::File::create(dir.join(format!("agent-{s}.log"))).unwrap();
        let p = path.to_str().unwrap().to_owned();
        let child = lab
            .spawn_with(
                &lab.switch(s).netns,
                &[agent.to_str().unwrap(), "run", "--config", &p],
                move |c| {
                    c.stderr(alog);
                },
            )
            .unwrap();
        agents.insert(s, child);
    }
    wait_for("three agents up", Duration::from_secs(15), || {
        all_agents_up(&lab)
    });

    Setup {
        agents,
        _controller,
        lab,
    }
}

/// Datagrams from X2 (never a target here) to `group` reach exactly `targets`.
pub fn assert_reaches_exactly(lab: &Lab, group: Ipv6Addr, targets: &[&str]) {
    let got = deliver(lab, "X2", group);
    for (h, n) in &got {
        let want = if targets.contains(&h.as_str()) { 50 } else { 0 };
        assert_eq!(*n, want, "group {group}, host {h}: {got:?}");
    }
}

pub fn grant(lab: &Lab, targets: &[&str], lifetime_ms: u64) -> (String, Ipv6Addr, Value) {
    let (s, v) = http(
        lab,
        "POST",
        "/v1/rendezvous",
        Some(json!({"parent": "NG0", "targets": targets, "lifetime_ms": lifetime_ms})),
    );
    assert_eq!(s, 201, "{v}");
    let group = v["group"].as_str().unwrap().parse().unwrap();
    (v["lease_id"].as_str().unwrap().to_owned(), group, v)
}

pub fn release_all_acked(lab: &Lab, lease: &str) {
    let (s, v) = http(lab, "DELETE", &format!("/v1/rendezvous/{lease}"), None);
    assert_eq!(s, 200, "{v}");
    let clear = v["clear"].as_array().unwrap();
    assert!(
        clear.len() == 3 && clear.iter().all(|c| c["outcome"] == "acked"),
        "{v}"
    );
}
