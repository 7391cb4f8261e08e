//! Metrics as dashboards see them, on a real lab: one Linux bridge S,
//! storage nodes on H1-H3 (negotiating group NG0), a client on H4, the
//! controller on H5 and the agent in S's namespace, all the real daemons
//! with their `/metrics` servers on lab addresses.
//!
//! The test makes two grants, one refusal and a put, then:
//! - fetches every daemon's `/metrics` from H5 (outside the daemons) and
//!   runs `promtool check metrics` on it: no problem may be reported;
//! - runs a real Prometheus server in H5's namespace scraping all five
//!   daemons every second, waits until every target is up, and evaluates
//!   every panel query of `deploy/grafana/subcast.json`: each must return
//!   at least one series.
//!
//! Needs root, Debian's `prometheus` package (`prometheus`, `promtool`)
//! and the daemons (`cargo build -p subcast-controller -p subcast-agent
//! -p subcast-node --bins`; `cargo test --workspace` builds them); skipped
//! otherwise, failing instead under SUBCAST_LABS_REQUIRED=1.

use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use labs::{ChildGuard, Lab, LabOptions, Topology};
use subcast_proto::{
    GrantOutcome, Key, Keyring, Member, Message, Opener, RendezvousRequest, ReplayGuard, Sealer,
    now_us,
};

const NG0: &str = "ff05::5c:1:1";
const POOL: &str = "ff15::5c00:0/112";
const NODES: [&str; 3] = ["H1", "H2", "H3"];
const CLIENT: &str = "H4";
const CONTROLLER: &str = "H5";
const API_PORT: u16 = 8411;
const AGENT_METRICS_PORT: u16 = 9410;
const NODE_METRICS_PORT: u16 = 9412;
/// Prometheus' web port on H5's loopback (a namespace of this test's own).
const PROMETHEUS: &str = "127.0.0.1:9090";

fn required() -> bool {
    std::env::var(labs::REQUIRE_ENV).is_ok_and(|v| !v.is_empty() && v != "0")
}

fn key_hex(n: u8) -> String {
    format!("{}{n:02x}", "5c".repeat(31))
}

fn key(id: u32, n: u8) -> Key {
    Key::from_hex(id, &key_hex(n)).expect("test key")
}

/// A program on PATH, or `None` with a skip line; a failure under
/// SUBCAST_LABS_REQUIRED.
fn on_path(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|f| f.is_file())
    });
    if found.is_none() {
        assert!(
            !required(),
            "{} is set but `{name}` is not installed: apt-get install prometheus \
             (Debian's package has prometheus and promtool; scripts/test.sh installs it)",
            labs::REQUIRE_ENV
        );
        println!("SKIP: `{name}` not installed (apt-get install prometheus)");
    }
    found
}

/// The daemons next to this test's binary (target/debug).
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

/// Every daemon log of the lab's work directory, for failure messages.
fn logs(dir: &Path) -> String {
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
        let tail: String = text
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        out += &format!("--- {} (last lines)\n{tail}\n", f.display());
    }
    out
}

fn wait_for(what: &str, dir: &Path, within: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < within,
            "timed out waiting for {what}\n{}",
            logs(dir)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn log_has(path: &Path, text: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|s| s.contains(text))
}

/// An HTTP/1.0 GET from inside namespace `netns`: (status, body).
fn http_get(netns: &str, addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let path = path.to_owned();
    labs::netns::in_netns(netns, move || {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            s,
            "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: text/plain\r\n\r\n"
        )?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| std::io::Error::other(format!("no HTTP header end in {text:?}")))?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
        Ok((status, body.to_owned()))
    })
    .map_err(std::io::Error::other)?
}

/// Percent-encoding of a URL query value.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
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

fn controller_yaml(lab: &Lab) -> String {
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
  listen: "[::]:{API_PORT}"
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

fn agent_yaml(lab: &Lab, dir: &Path) -> String {
    for (id, n) in [(1, 1), (101, 101)] {
        let p = dir.join(format!("k{id}.key"));
        std::fs::write(&p, key_hex(n)).expect("key file");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    format!(
        r#"switch_id: 1
name: S
backend:
  kind: linux-bridge
  bridge: br0
controller: "[{ctl}]:7411"
listen: "[::]:7410"
metrics: "[::]:{AGENT_METRICS_PORT}"
key: {{ id: 101, file: "{dir}/k101.key" }}
controller_keys:
  - {{ id: 1, file: "{dir}/k1.key" }}
rendezvous_range: ff15::5c00:0/104
heartbeat_interval_ms: 1000
parent_groups:
  - address: {NG0}
    vlan: 0
    members:
{members}"#,
        ctl = lab.host(CONTROLLER).ipv6,
        dir = dir.display(),
        members = members_yaml(lab, "      "),
    )
}

fn node_yaml(lab: &Lab, dir: &Path, id: Option<usize>) -> String {
    let mut c = format!(
        "negotiating_groups: [{NG0}]\ninterface: eth0\nreplicas: 2\nchunk_size: 65536\n\
         key: {{id: 7, hex: \"{}\"}}\ncontroller: {{address: \"[{}]:7411\", vlan: 0, key: {{id: 2, hex: \"{}\"}}}}\n",
        key_hex(7),
        lab.host(CONTROLLER).ipv6,
        key_hex(2),
    );
    if let Some(i) = id {
        c += &format!(
            "node: {{id: {i}, store: {}/node{i}, reserve_bytes: 0, metrics: \"[::]:{NODE_METRICS_PORT}\"}}\n",
            dir.display()
        );
    }
    c
}

/// One rendezvous request over UDP from `sock` (sealed afresh on every
/// retransmission), returning the controller's outcome.
fn request(
    sock: &UdpSocket,
    ctl: SocketAddr,
    sealer: &mut Sealer,
    opener: &mut Opener,
    id: u64,
    parent: Ipv6Addr,
    targets: &[Ipv6Addr],
) -> GrantOutcome {
    let req = Message::RendezvousRequest(RendezvousRequest {
        request_id: id,
        vlan: 0,
        parent,
        lifetime_ms: 10_000,
        targets: targets.iter().copied().map(Member::Ipv6).collect(),
    });
    let mut buf = vec![0u8; 9216];
    for _ in 0..10 {
        sock.send_to(&sealer.seal(&req, now_us()), ctl)
            .expect("send to the controller");
        while let Ok((n, _)) = sock.recv_from(&mut buf) {
            let d = opener
                .open(&buf[..n], now_us())
                .unwrap_or_else(|e| panic!("controller answer refused: {e}"));
            if let Message::RendezvousGrant(g) = d.message
                && g.request_id == id
            {
                return g.outcome;
            }
        }
    }
    panic!("no answer from the controller to request {id}");
}

/// Every `expr` of every panel of the Grafana dashboard: (panel title, expr).
fn dashboard_queries() -> Vec<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana/subcast.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let d: serde_json::Value = serde_json::from_str(&text).expect("dashboard JSON");
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        let title = p["title"].as_str().unwrap_or("?").to_owned();
        for t in p["targets"].as_array().expect("targets") {
            out.push((title.clone(), t["expr"].as_str().expect("expr").to_owned()));
        }
    }
    assert!(out.len() >= 5, "the dashboard has too few queries: {out:?}");
    out
}

/// Runs `promtool check metrics` on `text`: its complaints ("" when none).
fn promtool_check(promtool: &Path, text: &str) -> String {
    let mut c = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs");
    c.stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .expect("promtool stdin");
    let out = c.wait_with_output().expect("promtool ends");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && said.trim().is_empty() {
        String::new()
    } else {
        format!("exit {}: {said}", out.status)
    }
}

#[test]
fn prometheus_scrapes_every_daemon_and_every_panel_has_data() {
    if !labs::lab_tests_enabled() {
        println!("SKIP prometheus_scrapes_every_daemon: needs root and iproute2");
        return;
    }
    let (Some(prometheus), Some(promtool)) = (on_path("prometheus"), on_path("promtool")) else {
        return;
    };
    let Some([ctl_bin, agent_bin, node_bin]) = daemons() else {
        return;
    };
    let queries = dashboard_queries();
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
    let dir = lab.workdir().to_owned();
    let mut procs: Vec<ChildGuard> = Vec::new();
    let spawn = |ns: &str, args: &[&str], log: &str| {
        let f = std::fs::File::create(dir.join(log)).expect("log file");
        let out = f.try_clone().expect("log file");
        lab.spawn_with(ns, args, move |c| {
            c.stderr(f)
                .stdout(out)
                .env("RUST_LOG", "info")
                .env("NO_COLOR", "1");
        })
        .expect("spawn")
    };
    let cfg = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("config");
        p.display().to_string()
    };
    let h5 = lab.host(CONTROLLER).netns.clone();
    let ctl_cfg = cfg("controller.yaml", controller_yaml(&lab));
    let ctl_log = dir.join("controller.log");
    procs.push(spawn(
        &h5,
        &[ctl_bin.to_str().unwrap(), "serve", "--config", &ctl_cfg],
        "controller.log",
    ));
    wait_for("the controller", &dir, Duration::from_secs(10), || {
        log_has(&ctl_log, "subcast-controller running")
    });
    let agent_cfg = cfg("agent.yaml", agent_yaml(&lab, &dir));
    procs.push(spawn(
        &lab.switch("S").netns,
        &[agent_bin.to_str().unwrap(), "run", "--config", &agent_cfg],
        "agent.log",
    ));
    wait_for(
        "the agent's HELLO at the controller",
        &dir,
        Duration::from_secs(10),
        || log_has(&ctl_log, "agent HELLO"),
    );
    for (i, h) in NODES.iter().enumerate() {
        let c = cfg(
            &format!("node{}.yaml", i + 1),
            node_yaml(&lab, &dir, Some(i + 1)),
        );
        procs.push(spawn(
            &lab.host(h).netns,
            &[node_bin.to_str().unwrap(), "serve", "--config", &c],
            &format!("node{}.log", i + 1),
        ));
    }

    // Scrape targets, as seen from H5.
    let ctl_addr = SocketAddr::new(lab.host(CONTROLLER).ipv6.into(), API_PORT);
    let mut targets = vec![
        ("subcast-controller", ctl_addr),
        (
            "subcast-agent",
            SocketAddr::new(lab.switch("S").mgmt_ipv6.into(), AGENT_METRICS_PORT),
        ),
    ];
    for h in NODES {
        targets.push((
            "subcast-node",
            SocketAddr::new(lab.host(h).ipv6.into(), NODE_METRICS_PORT),
        ));
    }
    for (job, a) in &targets {
        wait_for(
            &format!("{job} /metrics at {a}"),
            &dir,
            Duration::from_secs(15),
            || http_get(&h5, *a, "/metrics").is_ok_and(|(s, _)| s == 200),
        );
    }

    // Prometheus in H5's namespace, scraping every second.
    let pdir = dir.join("prometheus");
    std::fs::create_dir_all(pdir.join("data")).expect("prometheus dir");
    let mut yaml = String::from(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n",
    );
    for job in ["subcast-controller", "subcast-agent", "subcast-node"] {
        let ts: Vec<String> = targets
            .iter()
            .filter(|(j, _)| *j == job)
            .map(|(_, a)| format!("\"{a}\""))
            .collect();
        yaml += &format!(
            "  - job_name: {job}\n    static_configs:\n      - targets: [{}]\n",
            ts.join(", ")
        );
    }
    let pcfg = pdir.join("prometheus.yml");
    std::fs::write(&pcfg, &yaml).expect("prometheus config");
    let check = std::process::Command::new(&promtool)
        .args(["check", "config"])
        .arg(&pcfg)
        .output()
        .expect("promtool check config");
    assert!(
        check.status.success(),
        "promtool check config: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    procs.push(spawn(
        &h5,
        &[
            prometheus.to_str().unwrap(),
            &format!("--config.file={}", pcfg.display()),
            &format!("--storage.tsdb.path={}", pdir.join("data").display()),
            &format!("--web.listen-address={PROMETHEUS}"),
        ],
        "prometheus.log",
    ));
    let prom: SocketAddr = PROMETHEUS.parse().unwrap();
    let api = |path: &str| -> Option<serde_json::Value> {
        let (status, body) = http_get(&h5, prom, path).ok()?;
        (status == 200).then(|| serde_json::from_str(&body).ok())?
    };
    wait_for(
        "every Prometheus target up",
        &dir,
        Duration::from_secs(60),
        || {
            api("/api/v1/targets").is_some_and(|v| {
                let t = v["data"]["activeTargets"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                t.len() == targets.len() && t.iter().all(|t| t["health"] == "up")
            })
        },
    );

    // Two grants, one refusal (unknown parent group), then a put.
    let sock = lab.udp_socket(CLIENT, 0, &[]).expect("client socket");
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let rv_ctl = SocketAddr::new(lab.host(CONTROLLER).ipv6.into(), 7411);
    let mut sealer = Sealer::new(key(2, 2), 0x7e57, now_us());
    let mut opener = Opener::new(Keyring::new([key(2, 2)]), ReplayGuard::default());
    let ng0: Ipv6Addr = NG0.parse().unwrap();
    let ip = |h: &str| lab.host(h).ipv6;
    for (id, t) in [(1u64, [ip("H1"), ip("H2")]), (2, [ip("H1"), ip("H3")])] {
        let o = request(&sock, rv_ctl, &mut sealer, &mut opener, id, ng0, &t);
        assert!(matches!(o, GrantOutcome::Granted { .. }), "{o:?}");
    }
    let o = request(
        &sock,
        rv_ctl,
        &mut sealer,
        &mut opener,
        3,
        "ff05::5c:9:9".parse().unwrap(),
        &[ip("H1")],
    );
    assert!(matches!(o, GrantOutcome::Refused { .. }), "{o:?}");
    let client_cfg = cfg("client.yaml", node_yaml(&lab, &dir, None));
    let object = dir.join("object.bin");
    std::fs::write(
        &object,
        (0..300_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
    )
    .unwrap();
    let put = [
        node_bin.to_str().unwrap(),
        "put",
        object.to_str().unwrap(),
        "--name",
        "metrics/obj",
        "--transport",
        "rendezvous",
        "--quiet",
        "--config",
        &client_cfg,
    ];
    let mut last = String::new();
    let stored = (0..50).any(|_| match lab.exec(&lab.host(CLIENT).netns, &put) {
        Ok(_) => true,
        Err(e) => {
            last = e.to_string();
            std::thread::sleep(Duration::from_millis(200));
            false
        }
    });
    assert!(stored, "the put never succeeded ({last})\n{}", logs(&dir));

    // Every daemon's exposition passes promtool (after the traffic, so
    // labelled families have series).
    wait_for(
        "the nodes' metrics to show the put",
        &dir,
        Duration::from_secs(10),
        || {
            targets
                .iter()
                .filter(|(j, _)| *j == "subcast-node")
                .any(|(_, a)| {
                    http_get(&h5, *a, "/metrics").is_ok_and(|(_, b)| {
                        b.lines().any(|l| {
                            l.starts_with("subcast_node_store_written_bytes_total")
                                && !l.ends_with(" 0")
                        })
                    })
                })
        },
    );
    let mut problems = Vec::new();
    for (job, a) in &targets {
        let (status, body) = http_get(&h5, *a, "/metrics").expect("metrics");
        assert_eq!(status, 200, "{job} at {a}");
        let prefix = format!("{}_", job.replace('-', "_"));
        assert!(
            body.lines()
                .filter(|l| !l.starts_with('#') && !l.is_empty())
                .all(|l| l.starts_with(&prefix)),
            "{job}: every series is named {prefix}*:\n{body}"
        );
        let p = promtool_check(&promtool, &body);
        println!(
            "{job} at {a}: {} series, promtool: {}",
            body.lines().filter(|l| !l.starts_with('#')).count(),
            if p.is_empty() { "no problems" } else { &p }
        );
        if !p.is_empty() {
            problems.push(format!("{job} at {a}: {p}"));
        }
    }
    assert!(problems.is_empty(), "promtool check metrics: {problems:#?}");

    // Every panel's query returns data once Prometheus has scraped the
    // traffic above (rates need two samples after a series appears).
    for (title, expr) in &queries {
        let path = format!("/api/v1/query?query={}", urlencode(expr));
        let t0 = Instant::now();
        let last = loop {
            let v = api(&path).unwrap_or_default();
            if v["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
            {
                break v;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "panel {title:?}: query {expr:?} returns no series (last answer {v})\n{}",
                logs(&dir)
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        println!("panel {title:?}: {expr} -> {}", last["data"]["result"]);
    }
    // The labels dashboards join on are there.
    let v = api(&format!(
        "/api/v1/query?query={}",
        urlencode("subcast_agent_installed_groups{switch=\"S\",backend=\"linux-bridge\"}")
    ))
    .expect("query");
    assert_eq!(v["data"]["result"].as_array().map_or(0, Vec::len), 1, "{v}");
    // The put (300,000 bytes, two copies) is all in Prometheus once a
    // scrape after its last write came in: the panels above may have been
    // answered from a scrape taken while the copies were being written.
    let t0 = Instant::now();
    loop {
        let v = api(&format!(
            "/api/v1/query?query={}",
            urlencode("sum(subcast_node_store_written_bytes_total)")
        ))
        .expect("query");
        let written: f64 = v["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0.0);
        if written >= 600_000.0 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the put's two copies are in Prometheus: {v}\n{}",
            logs(&dir)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(procs);
}

#[test]
fn deploy_prometheus_config_passes_promtool() {
    let Some(promtool) = on_path("promtool") else {
        return;
    };
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus/prometheus.yml");
    let out = std::process::Command::new(promtool)
        .args(["check", "config"])
        .arg(&p)
        .output()
        .expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool check config {}: {}{}",
        p.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
