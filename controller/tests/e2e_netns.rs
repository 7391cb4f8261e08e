//! End to end on real Linux bridges (needs root; skips otherwise): the real
//! `subcast-controller` binary and three real `subcast-agent` processes on
//! the seed's three-switch lab (A: X1 X2; B: X3-X6; C: X7-X9).
//!
//! The controller runs in switch A's namespace and reaches the agents in
//! band at the bridges' management addresses (fd00:5c::1:N). The test
//! talks to the controller's HTTP API from inside that namespace and counts
//! datagrams at every host with captures.
//!
//! `subcast-agent` must be built first (`cargo build -p subcast-agent`);
//! `cargo test --workspace` does that.

use labs::{ChildGuard, Lab, LabOptions, Topology};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::Ipv6Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const CTL_KEY: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const AGENT_KEY: &str = "2222222222222222222222222222222222222222222222222222222222222222";
const ADMIN: &str = "e2e-admin-token-0123456789";
const NODES: &str = "e2e-storage-node-token-0123456789";
const NODE_KEY: &str = "3333333333333333333333333333333333333333333333333333333333333333";
const POOL: &str = "ff05::5c:2:0/112";
const API_PORT: u16 = 8411;

fn agent_bin() -> PathBuf {
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

fn secret(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn mgmt(lab: &Lab, switch: &str) -> Ipv6Addr {
    lab.switch(switch).mgmt_ipv6
}

fn agent_yaml(lab: &Lab, switch: &str, id: u32) -> String {
    let dir = lab.workdir();
    let ng0 = lab.topology().group_address("NG0").unwrap();
    let mut y = format!(
        "switch_id: {id}\nbackend: {{ kind: linux-bridge, bridge: br0 }}\ncontroller: \"[{}]:7411\"\n\
listen: \"[{}]:7410\"\nkey: {{ id: 101, file: \"{}\" }}\ncontroller_keys:\n  - {{ id: 1, file: \"{}\" }}\n\
rendezvous_range: \"{POOL}\"\nheartbeat_interval_ms: 500\nparent_groups:\n  - address: \"{ng0}\"\n    vlan: 0\n    members:\n",
        mgmt(lab, "A"),
        mgmt(lab, switch),
        dir.join("agent.key").display(),
        dir.join("ctl.key").display()
    );
    for m in &lab.topology().negotiating_groups["NG0"].members {
        let h = lab.host(m);
        y += &format!(
            "      - {{ name: {m}, ipv6: \"{}\", mac: \"{}\" }}\n",
            h.ipv6,
            h.mac_string()
        );
    }
    y
}

fn controller_yaml(lab: &Lab) -> String {
    let ng0 = lab.topology().group_address("NG0").unwrap();
    let mut y = format!(
        "controller:\n  id: 1\n  udp_listen: \"[{}]:7411\"\n  database: controller.sqlite\n  agent_timeout_ms: 5000\n\
keys:\n  - {{ id: 1, file: ctl.key }}\n  - {{ id: 101, file: agent.key }}\n  - {{ id: 2, file: node.key }}\n\
vlans:\n  - {{ id: 0, pool: [\"{POOL}\"] }}\nswitches:\n",
        mgmt(lab, "A")
    );
    for (i, s) in ["A", "B", "C"].iter().enumerate() {
        y += &format!(
            "  - {{ name: {s}, id: {}, vlans: [0], agent: {{ address: \"[{}]:7410\", key_id: 1, agent_key_id: 101 }} }}\n",
            i + 1,
            mgmt(lab, s)
        );
    }
    y += &format!("groups:\n  - name: NG0\n    vlan: 0\n    parent: \"{ng0}\"\n    members:\n");
    for m in &lab.topology().negotiating_groups["NG0"].members {
        let h = lab.host(m);
        y += &format!(
            "      - {{ name: {m}, ipv6: \"{}\", mac: \"{}\" }}\n",
            h.ipv6,
            h.mac_string()
        );
    }
    y += &format!(
        "leases: {{ default_ms: 10000, max_ms: 60000 }}\nfanout: {{ retransmit_ms: 20, attempts: 5 }}\n\
api:\n  listen: \"[::1]:{API_PORT}\"\n  tokens: [{{ role: admin, name: e2e, file: admin.token }}, {{ role: storage-node, name: nodes, file: nodes.token }}]\n\
rendezvous: {{ key_ids: [2] }}\n"
    );
    y
}

/// One HTTP/1.0 request to the controller, from inside switch A's namespace.
fn http(lab: &Lab, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
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
    .unwrap();
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

fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < within, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn entries(lab: &Lab, switch: &str, group: Ipv6Addr) -> Vec<String> {
    lab.mdb_show(switch)
        .unwrap()
        .into_iter()
        .filter(|e| e.group == group)
        .map(|e| e.port)
        .collect()
}

fn deliver(lab: &Lab, from: &str, group: Ipv6Addr) -> BTreeMap<String, u64> {
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
fn start_controller(lab: &Lab, log: &str) -> ChildGuard {
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

fn all_agents_up(lab: &Lab) -> bool {
    let (s, v) = http(lab, "GET", "/v1/agents", None);
    s == 200
        && v.as_array()
            .is_some_and(|a| a.len() == 3 && a.iter().all(|x| x["state"] == "up"))
}

/// The lab with the real controller (in switch A's namespace) and three
/// real agents, all up.
struct Setup {
    agents: BTreeMap<&'static str, ChildGuard>,
    _controller: ChildGuard,
    lab: Lab,
}

fn setup() -> Setup {
    let agent = agent_bin();
    let topo = Topology::from_yaml_file(labs::topology_path("seed-three-switch.yaml")).unwrap();
    let lab = Lab::build(&topo, LabOptions::default()).unwrap();
    let dir = lab.workdir().to_owned();
    secret(&dir.join("ctl.key"), CTL_KEY);
    secret(&dir.join("agent.key"), AGENT_KEY);
    secret(&dir.join("admin.token"), ADMIN);
    secret(&dir.join("nodes.token"), NODES);
    secret(&dir.join("node.key"), NODE_KEY);
    let cfg = dir.join("controller.yaml");
    std::fs::write(&cfg, controller_yaml(&lab)).unwrap();

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
        std::fs::write(&path, agent_yaml(&lab, s, i as u32 + 1)).unwrap();
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

#[test]
fn rendezvous_on_three_real_bridges() {
    if !labs::lab_tests_enabled() {
        eprintln!("skipping rendezvous_on_three_real_bridges: needs root and iproute2");
        return;
    }
    let Setup {
        lab,
        _controller,
        mut agents,
    } = setup();
    let dir = lab.workdir().to_owned();
    let log = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    // Request -> grant.
    let t = Instant::now();
    let (s, v) = http(
        &lab,
        "POST",
        "/v1/rendezvous",
        Some(json!({"parent": "NG0", "targets": ["X1", "X4", "X8"]})),
    );
    let grant_ms = t.elapsed().as_millis();
    assert_eq!(s, 201, "{v}\ncontroller log:\n{}", log("controller.log"));
    let group: Ipv6Addr = v["group"].as_str().unwrap().parse().unwrap();
    let lease = v["lease_id"].as_str().unwrap().to_owned();
    eprintln!(
        "grant over HTTP with three real agents: {grant_ms} ms (includes the test's process hop into the netns)"
    );
    for sw in ["A", "B", "C"] {
        assert!(
            !entries(&lab, sw, group).is_empty(),
            "switch {sw} has no entry for {group}"
        );
    }
    // Datagrams reach exactly the targets (X2 sends; it is not a target).
    let got = deliver(&lab, "X2", group);
    for (h, n) in &got {
        let want = if ["X1", "X4", "X8"].contains(&h.as_str()) {
            50
        } else {
            0
        };
        assert_eq!(*n, want, "host {h}: {got:?}");
    }
    // Release -> entries gone.
    let (s, v) = http(&lab, "DELETE", &format!("/v1/rendezvous/{lease}"), None);
    assert_eq!(s, 200, "{v}");
    assert!(
        v["clear"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["outcome"] == "acked"),
        "{v}"
    );
    for sw in ["A", "B", "C"] {
        assert!(
            entries(&lab, sw, group).is_empty(),
            "switch {sw} still holds {group}"
        );
    }
    let got = deliver(&lab, "X2", group);
    assert!(
        got.values().all(|n| *n == 0),
        "released group still forwards: {got:?}"
    );

    // Agent C killed mid-way: a clear refusal, nothing left behind.
    let mut c = agents.remove("C").unwrap();
    c.stop_with(nix::sys::signal::Signal::SIGKILL, Duration::from_secs(2));
    let (s, v) = http(
        &lab,
        "POST",
        "/v1/rendezvous",
        Some(json!({"parent": "NG0", "targets": ["X1", "X4", "X8"]})),
    );
    assert_eq!(s, 504, "{v}");
    assert_eq!(v["error"], "agent-unreachable");
    assert!(v["switch"].as_str().unwrap().starts_with("C "), "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("did not answer"),
        "{v}"
    );
    let (_, leases) = http(&lab, "GET", "/v1/leases", None);
    assert_eq!(leases, json!([]), "no lease left behind");
    wait_for("A and B cleared", Duration::from_secs(5), || {
        ["A", "B"].iter().all(|sw| {
            lab.mdb_show(sw)
                .unwrap()
                .iter()
                .all(|e| !POOL.parse::<ipnet::Ipv6Net>().unwrap().contains(&e.group))
        })
    });
    // The audit log has the NAK-less failure: C silent, A and B cleared.
    let (_, audit) = http(&lab, "GET", "/v1/audit?limit=20", None);
    let rows = audit.as_array().unwrap();
    assert!(
        rows.iter()
            .any(|r| r["switch_id"] == 3 && r["outcome"] == "silent"),
        "{audit}"
    );
    // Once C's agent is silent past the timeout it is shown down and refused at once.
    wait_for("C shown down", Duration::from_secs(8), || {
        let (_, v) = http(&lab, "GET", "/v1/agents", None);
        v[2]["state"] == "down"
    });
    let t = Instant::now();
    let (s, v) = http(
        &lab,
        "POST",
        "/v1/rendezvous",
        Some(json!({"parent": "NG0", "targets": ["X1"]})),
    );
    assert_eq!(s, 504, "{v}");
    assert!(v["message"].as_str().unwrap().contains("silent for"), "{v}");
    assert!(t.elapsed() < Duration::from_millis(500));
}

/// Datagrams from X2 (never a target here) to `group` reach exactly `targets`.
fn assert_reaches_exactly(lab: &Lab, group: Ipv6Addr, targets: &[&str]) {
    let got = deliver(lab, "X2", group);
    for (h, n) in &got {
        let want = if targets.contains(&h.as_str()) { 50 } else { 0 };
        assert_eq!(*n, want, "group {group}, host {h}: {got:?}");
    }
}

fn grant(lab: &Lab, targets: &[&str], lifetime_ms: u64) -> (String, Ipv6Addr, Value) {
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

fn release_all_acked(lab: &Lab, lease: &str) {
    let (s, v) = http(lab, "DELETE", &format!("/v1/rendezvous/{lease}"), None);
    assert_eq!(s, 200, "{v}");
    let clear = v["clear"].as_array().unwrap();
    assert!(
        clear.len() == 3 && clear.iter().all(|c| c["outcome"] == "acked"),
        "{v}"
    );
}

/// The controller is SIGKILLed (a crash) while a long and a short lease are
/// live; the short one ends while it is down (the agents drop it by
/// themselves). Restarted on the same SQLite file, it keeps the long lease
/// (still forwarding to exactly its targets), has forgotten the short one,
/// whose address is free again, and releasing the long lease clears it
/// everywhere.
#[test]
fn controller_restart_keeps_leases_consistent() {
    if !labs::lab_tests_enabled() {
        eprintln!("skipping controller_restart_keeps_leases_consistent: needs root and iproute2");
        return;
    }
    let Setup {
        lab,
        _controller: mut first,
        agents: _agents,
    } = setup();
    let t0 = Instant::now();
    let dir = lab.workdir().to_owned();
    let log = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    const SHORT_MS: u64 = 3000;
    let (long, long_group, long_v) = grant(&lab, &["X1", "X4", "X8"], 20_000);
    let (short, short_group, _) = grant(&lab, &["X3", "X9"], SHORT_MS);
    let short_granted = Instant::now();
    assert_ne!(long_group, short_group);
    for sw in ["A", "B", "C"] {
        for g in [long_group, short_group] {
            assert!(
                !entries(&lab, sw, g).is_empty(),
                "switch {sw} has no entry for {g}"
            );
        }
    }

    // Crash while both are live.
    let st = first
        .stop_with(nix::sys::signal::Signal::SIGKILL, Duration::from_secs(2))
        .expect("controller exit status");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&st),
        Some(9),
        "{st:?}"
    );
    assert!(
        short_granted.elapsed() < Duration::from_millis(SHORT_MS - 500),
        "too slow to kill before the short lease ends"
    );
    assert!(
        ["A", "B", "C"]
            .iter()
            .all(|sw| !entries(&lab, sw, short_group).is_empty()),
        "the short lease is still installed when the controller dies"
    );
    // The agents end the short lease by themselves.
    wait_for(
        "short lease dropped by the agents",
        Duration::from_millis(SHORT_MS + 3000),
        || {
            ["A", "B", "C"]
                .iter()
                .all(|sw| entries(&lab, sw, short_group).is_empty())
        },
    );
    assert!(short_granted.elapsed() >= Duration::from_millis(SHORT_MS - 300));
    for sw in ["A", "B", "C"] {
        assert!(
            !entries(&lab, sw, long_group).is_empty(),
            "switch {sw} lost {long_group} while the controller was down"
        );
    }

    // Restart on the same database.
    let _second = start_controller(&lab, "controller-2.log");
    wait_for("three agents up again", Duration::from_secs(10), || {
        all_agents_up(&lab)
    });
    let (s, leases) = http(&lab, "GET", "/v1/leases", None);
    assert_eq!(s, 200, "{leases}");
    let rows = leases.as_array().unwrap();
    assert_eq!(
        rows.len(),
        1,
        "only the long lease survives: {leases}\n{}",
        log("controller-2.log")
    );
    assert_eq!(rows[0]["lease_id"], long.as_str(), "{leases}");
    assert_eq!(rows[0]["group"], long_group.to_string(), "{leases}");
    assert_eq!(rows[0]["state"], "live", "{leases}");
    assert_eq!(
        rows[0]["expires_at_ms"], long_v["expires_at_ms"],
        "{leases}"
    );
    assert!(rows.iter().all(|r| r["lease_id"] != short.as_str()));
    assert_reaches_exactly(&lab, long_group, &["X1", "X4", "X8"]);
    for sw in ["A", "B", "C"] {
        assert!(
            entries(&lab, sw, short_group).is_empty(),
            "switch {sw} holds the ended {short_group} again"
        );
    }
    assert_reaches_exactly(&lab, short_group, &[]);

    // The short lease's address is free again: new leases (taken while the
    // others are held, so each gets a different address) come to it.
    let mut fresh = Vec::new();
    while !fresh.iter().any(|(_, g)| *g == short_group) {
        assert!(
            fresh.len() < 4,
            "{short_group} never handed out again: {fresh:?}"
        );
        let (id, g, _) = grant(&lab, &["X5"], 10_000);
        assert_ne!(g, long_group);
        fresh.push((id, g));
    }
    assert_reaches_exactly(&lab, short_group, &["X5"]);
    for (id, _) in &fresh {
        release_all_acked(&lab, id);
    }

    // Releasing the long lease clears it on all three bridges.
    release_all_acked(&lab, &long);
    for sw in ["A", "B", "C"] {
        assert!(
            entries(&lab, sw, long_group).is_empty(),
            "switch {sw} still holds {long_group}"
        );
    }
    assert_reaches_exactly(&lab, long_group, &[]);
    let (_, leases) = http(&lab, "GET", "/v1/leases", None);
    assert_eq!(leases, json!([]));
    eprintln!(
        "controller_restart_keeps_leases_consistent: {:.1} s after setup",
        t0.elapsed().as_secs_f64()
    );
}

/// Grant latency with the real agents: runs `subcast-controller-bench`
/// against the real controller from switch A's namespace. Slow in a debug
/// build; run with
/// `cargo test --release -p subcast-controller --test e2e_netns -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark; run explicitly"]
fn bench_with_real_agents() {
    if !labs::lab_tests_enabled() {
        eprintln!("skipping bench_with_real_agents: needs root and iproute2");
        return;
    }
    let Setup {
        lab,
        _controller,
        agents: _agents,
    } = setup();
    let dir = lab.workdir().to_owned();
    let out = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("bench")
        .join("rendezvous-real-agents.json");
    let targets: Vec<String> = ["X1", "X4", "X8"]
        .iter()
        .map(|h| lab.host(h).ipv6.to_string())
        .collect();
    let ng0 = lab.topology().group_address("NG0").unwrap().to_string();
    let udp = format!("[{}]:7411", mgmt(&lab, "A"));
    let api = format!("[::1]:{API_PORT}");
    let key = dir.join("node.key").display().to_string();
    let targets = targets.join(",");
    let outs = out.display().to_string();
    let bench = env!("CARGO_BIN_EXE_subcast-controller-bench");
    let args = [
        "ip",
        "netns",
        "exec",
        &lab.switch("A").netns,
        bench,
        "--controller-udp",
        &udp,
        "--api",
        &api,
        "--token",
        NODES,
        "--node-key-file",
        &key,
        "--parent",
        &ng0,
        "--vlan",
        "0",
        "--targets",
        &targets,
        "--out",
        &outs,
    ];
    let o = std::process::Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap();
    eprintln!("{}", String::from_utf8_lossy(&o.stdout));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
