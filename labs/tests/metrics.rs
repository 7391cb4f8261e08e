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
use std::net::{Ipv6Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use one_switch::{CONTROLLER, NG0, NODES, OneSwitch, logs, required, wait_for};
use subcast_proto::GrantOutcome;

#[path = "common/one_switch.rs"]
mod one_switch;

const API_PORT: u16 = 8411;
const AGENT_METRICS_PORT: u16 = 9410;
const NODE_METRICS_PORT: u16 = 9412;
/// Prometheus' web port on H5's loopback (a namespace of this test's own).
const PROMETHEUS: &str = "127.0.0.1:9090";

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
    let queries = dashboard_queries();
    let Some(mut s) = OneSwitch::build() else {
        return;
    };
    let dir = s.dir.clone();
    let h5 = s.netns(CONTROLLER);
    s.start_controller_and_agent(
        &format!("[::]:{API_PORT}"),
        &format!("name: S\nmetrics: \"[::]:{AGENT_METRICS_PORT}\"\n"),
    );
    s.start_nodes(&format!(", metrics: \"[::]:{NODE_METRICS_PORT}\""));

    // Scrape targets, as seen from H5.
    let ctl_addr = SocketAddr::new(s.lab.host(CONTROLLER).ipv6.into(), API_PORT);
    let mut targets = vec![
        ("subcast-controller", ctl_addr),
        (
            "subcast-agent",
            SocketAddr::new(s.lab.switch("S").mgmt_ipv6.into(), AGENT_METRICS_PORT),
        ),
    ];
    for h in NODES {
        targets.push((
            "subcast-node",
            SocketAddr::new(s.lab.host(h).ipv6.into(), NODE_METRICS_PORT),
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
    s.spawn(
        &h5,
        &[
            prometheus.to_str().unwrap(),
            &format!("--config.file={}", pcfg.display()),
            &format!("--storage.tsdb.path={}", pdir.join("data").display()),
            &format!("--web.listen-address={PROMETHEUS}"),
        ],
        "prometheus.log",
    );
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
    let mut rv = s.rv_client();
    let ng0: Ipv6Addr = NG0.parse().unwrap();
    let ip = |h: &str| s.ip(h);
    for (id, t) in [(1u64, [ip("H1"), ip("H2")]), (2, [ip("H1"), ip("H3")])] {
        let o = rv.request(id, ng0, &t);
        assert!(matches!(o, GrantOutcome::Granted { .. }), "{o:?}");
    }
    let o = rv.request(3, "ff05::5c:9:9".parse().unwrap(), &[ip("H1")]);
    assert!(matches!(o, GrantOutcome::Refused { .. }), "{o:?}");
    s.put("metrics/obj", 300_000);

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
    drop(s);
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
