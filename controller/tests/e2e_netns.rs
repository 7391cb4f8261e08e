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

mod lab;
use lab::*;
use serde_json::json;
use std::net::Ipv6Addr;
use std::path::Path;
use std::time::{Duration, Instant};

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

/// The controller is SIGKILLed (a crash) while a long and a short lease are
/// live; the short one ends while it is down (the agents drop it by
/// themselves, `hold_ms` after its end). Restarted on the same SQLite
/// file, it keeps the long lease (still forwarding to exactly its
/// targets), has forgotten the short one (its address is free again), and
/// releasing the long lease clears it everywhere.
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
        Duration::from_millis(SHORT_MS + 1000 + 3000),
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

    // The short lease's group is gone from the controller's account too
    // (its address is free again), and new groups work.
    let (_, subsets) = http(&lab, "GET", "/v1/subsets", None);
    let held: Vec<&str> = subsets
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["group"].as_str().unwrap())
        .collect();
    assert_eq!(held, vec![long_group.to_string()], "{subsets}");
    let (_, budgets) = http(&lab, "GET", "/v1/budgets", None);
    assert!(
        budgets
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["occupancy"] == 1),
        "{budgets}"
    );
    let (id, g, _) = grant(&lab, &["X5"], 10_000);
    assert_ne!(g, long_group);
    assert_reaches_exactly(&lab, g, &["X5"]);
    release_all_acked(&lab, &id);

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
    let agent_metrics = ["A", "B", "C"]
        .iter()
        .map(|s| format!("[{}]:9410", mgmt(&lab, s)))
        .collect::<Vec<_>>()
        .join(",");
    // The floor: the same chain of datagrams between the same places with
    // nothing but answering threads, before and after the bench.
    let place = |s: &str| labs::miss_floor::Place {
        netns: lab.switch(s).netns.clone(),
        addr: mgmt(&lab, s),
    };
    let agents_at: Vec<_> = ["A", "B", "C"].iter().map(|s| place(s)).collect();
    let floor =
        || labs::miss_floor::measure(&place("A"), &place("A"), &agents_at, 100, 1000).unwrap();
    let floor_before = floor();
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
        "--agent-metrics",
        &agent_metrics,
        "--out",
        &outs,
    ];
    let o = std::process::Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap();
    eprintln!("{}", String::from_utf8_lossy(&o.stdout));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let floor_after = floor();
    let mut j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let miss = j["miss"]["udp"]["grant"]["p50_us"].as_u64().unwrap();
    eprintln!(
        "miss floor (p50/p90/p99 us): before {}/{}/{}, after {}/{}/{}; UDP miss p50 {} us = {:.2} x the floor",
        floor_before.p50_us,
        floor_before.p90_us,
        floor_before.p99_us,
        floor_after.p50_us,
        floor_after.p90_us,
        floor_after.p99_us,
        miss,
        miss as f64 / floor_before.p50_us.max(floor_after.p50_us).max(1) as f64
    );
    let wake = labs::miss_floor::wake_cost(5000).unwrap();
    eprintln!(
        "waking a thread (UDP ping-pong round trip p50 us): same CPU {}, across CPUs {:?}, unpinned {}",
        wake.same_cpu_p50_us, wake.cross_cpu_p50_us, wake.unpinned_p50_us
    );
    j["miss_floor"] = json!({ "before": floor_before, "after": floor_after });
    j["wake_cost"] = json!(wake);
    std::fs::write(&out, serde_json::to_string_pretty(&j).unwrap()).unwrap();
}
