//! All three backends in one network (issue 14): `subcast-lab run` with a Linux
//! bridge, an Open vSwitch and an SNMP switch (real snmpd with the Q-BRIDGE-MIB
//! pass_persist handler in the switch's namespace, the agent on the `snmp` backend).
//! One rendezvous group crosses all three; deliveries are counted by tcpdump on every
//! host, outside the daemons. Needs root, Open vSwitch, snmpd and snmp (fails instead
//! of skipping under `SUBCAST_LABS_REQUIRED=1`), and the daemons built first:
//! `cargo build -p subcast-agent -p subcast-controller -p subcast-node --bins` (the
//! handler `subcast-qbridge-passpersist` is built here when missing).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use serde_json::{Value, json};

mod common;
use common::daemons_dir;

fn enabled(test: &str) -> bool {
    let has = |b: &str| {
        ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
            .iter()
            .any(|d| Path::new(d).join(b).exists())
    };
    let missing: Vec<&str> = ["snmpd", "snmpgetnext", "tcpdump"]
        .into_iter()
        .filter(|b| !has(b))
        .collect();
    let required = std::env::var(labs::REQUIRE_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
    assert!(
        missing.is_empty() || !required,
        "{}=1 but {test} cannot run: {missing:?} not installed (apt-get install snmpd snmp tcpdump)",
        labs::REQUIRE_ENV
    );
    if labs::lab_tests_enabled() && labs::ovs_available() && missing.is_empty() {
        true
    } else {
        println!("SKIP {test}: needs root, iproute2, Open vSwitch, snmpd, snmp and tcpdump");
        false
    }
}

/// Runs `subcast-lab ARGS --json` with the daemons of this build and the SNMP
/// handler next to them.
fn run(args: &[&str]) -> Value {
    let dir = daemons_dir();
    // `cargo test --workspace` built it next to the daemons; built here otherwise
    // (not when present: a build for another feature set would replace the binary
    // other tests' snmpd may be starting).
    if !dir.join("subcast-qbridge-passpersist").is_file() {
        let handler = subcast_snmp::testlab::passpersist_binary();
        assert_eq!(
            handler.parent(),
            Some(dir.as_path()),
            "the handler must be next to the daemons"
        );
    }
    let t0 = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_subcast-lab"))
        .args(args)
        .args(["--json", "--bin-dir"])
        .arg(&dir)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("subcast-lab {args:?}: {:?}", t0.elapsed());
    let v: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}); stdout:\n{stdout}\nstderr:\n{stderr}"));
    assert!(
        out.status.success(),
        "subcast-lab failed: {stderr}\nreport: {v:#}"
    );
    assert!(
        !stderr.contains("NOTE") && v.get("notes").is_none(),
        "no substitution note: {stderr}\n{v:#}"
    );
    v
}

/// The backend of every switch, as its agent said in HELLO, and on SNMP switches
/// rows the switch's handler applied.
fn check_backends(v: &Value, want: &[(&str, &str, Option<&str>)]) {
    assert_eq!(v["backends_match"], true, "{v:#}");
    let sw = &v["rendezvous"]["switches"];
    assert_eq!(sw.as_object().unwrap().len(), want.len(), "{v:#}");
    for (name, backend, snmp) in want {
        assert_eq!(v["backends"][name], *backend, "{name}: {v:#}");
        assert_eq!(sw[name]["backend"], *backend, "{name}: {v:#}");
        match snmp {
            Some(version) => {
                assert_eq!(sw[name]["snmp"]["version"], *version, "{name}: {v:#}");
                assert!(
                    sw[name]["snmp"]["rows_programmed"].as_u64().unwrap() > 0,
                    "switch {name} was never written over SNMP: {v:#}"
                );
            }
            None => assert!(sw[name].get("snmp").is_none(), "{name}: {v:#}"),
        }
    }
}

/// The shipped topology: A Linux bridge, B Open vSwitch, C SNMP (v2c). The put's
/// three copies go to X2 (A), X4 (B) and X6 (C), the only storage nodes, over one
/// rendezvous group; X3 and X5 (on B and C, not targets) see none of it.
#[test]
fn put_get_across_a_linux_bridge_an_ovs_and_an_snmp_switch() {
    if !enabled("put_get_across_a_linux_bridge_an_ovs_and_an_snmp_switch") {
        return;
    }
    let v = run(&["run", "three-backends.yaml", "--scenario", "put-get"]);
    assert_eq!(v["ok"], true, "{v:#}");
    assert_eq!(v["get"]["ok"], true, "{v:#}");
    assert_eq!(v["sender"], "X1", "{v:#}");
    check_backends(
        &v,
        &[
            ("A", "linux-bridge", None),
            ("B", "openflow", None),
            ("C", "snmp", Some("v2c")),
        ],
    );
    let rv = &v["rendezvous"];
    assert_eq!(rv["targets"], json!(["X2", "X4", "X6"]), "{v:#}");
    // Installed ports read from the bridges (`bridge monitor mdb`), as the rule says.
    assert_eq!(
        rv["switches"]["A"]["ports"],
        json!(["h-X2", "t-B"]),
        "{v:#}"
    );
    assert_eq!(
        rv["switches"]["C"]["ports"],
        json!(["h-X6", "t-B"]),
        "{v:#}"
    );
    assert_eq!(
        rv["switches"]["B"]["expected"],
        json!(["h-X4", "t-A", "t-C"]),
        "{v:#}"
    );
    // Delivered to exactly the targets, counted by tcpdump on every host. X2's copy
    // crosses only its Linux bridge: all of it arrives over the group. X4 and X6 are
    // behind the Open vSwitch, whose userspace datapath drops part of a burst on a
    // busy machine (also with the group installed long before: paced datagrams all
    // arrive); the nodes repair those ranges by unicast, so every copy ends up
    // whole, counted as chunk files in the stores.
    let payload = v["payload_bytes"].as_u64().unwrap();
    let d = v["deliveries"].as_object().unwrap();
    assert_eq!(d.len(), 6);
    for (h, c) in d {
        let bytes = c["bytes"].as_u64().unwrap();
        match h.as_str() {
            "X2" => assert!(
                bytes >= payload,
                "target {h} got {bytes} of {payload}: {v:#}"
            ),
            "X4" | "X6" => assert!(bytes > 0, "target {h} got nothing: {v:#}"),
            _ => {
                assert_eq!(bytes, 0, "non-target {h} got the data: {v:#}");
                assert_eq!(c["all_rendezvous_bytes"], 0, "{h}: {v:#}");
            }
        }
    }
    assert_eq!(v["stored"]["ok"], true, "{v:#}");
    for (id, c) in v["stored"]["chunks"].as_object().unwrap() {
        assert_eq!(c["holders"], json!(["X2", "X4", "X6"]), "chunk {id}: {v:#}");
    }
    for g in v["rendezvous_groups"].as_array().unwrap() {
        assert_eq!(g["deliveries_ok"], true, "{g:#}");
        assert_eq!(g["switches"]["C"]["backend"], "snmp", "{g:#}");
    }
}

/// A topology this repository does not ship: other switch names, SNMPv3 in the
/// middle, a v2c SNMP switch at a leaf behind a Linux bridge that only carries the
/// group through, OVS at the other end. subset-only reads every switch's ports
/// (OVS from its flows and groups) and counts every host.
#[test]
fn run_on_an_unshipped_topology_with_snmp_v3_in_the_middle() {
    if !enabled("run_on_an_unshipped_topology_with_snmp_v3_in_the_middle") {
        return;
    }
    let yaml = "switches:\n  west: {backend: openflow}\n  mid: {backend: snmp, snmp: {version: v3}}\n  \
                east: {}\n  tail: {backend: snmp}\nlinks:\n  - [west, mid]\n  - [mid, east]\n  \
                - [east, tail]\nhosts:\n  w1: {switch: west}\n  w2: {switch: west}\n  \
                m1: {switch: mid}\n  m2: {switch: mid}\n  e1: {switch: east}\n  \
                t1: {switch: tail}\n  t2: {switch: tail}\nnegotiating_groups:\n  \
                grp: {group: \"ff0e::77:1\", members: [w1, w2, m1, m2, e1, t1, t2]}\n";
    let dir = std::env::temp_dir().join(format!("three-backends-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("elsewhere.yaml");
    std::fs::write(&file, yaml).unwrap();
    let v = run(&[
        "run",
        file.to_str().unwrap(),
        "--scenario",
        "subset-only",
        "--targets",
        "w1,m2,t1",
        "--sender",
        "e1",
        "--count",
        "50",
        // OVS's userspace datapath drops some of a back-to-back burst on a busy
        // machine: pace the datagrams.
        "--pace-us",
        "500",
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(v["ok"], true, "{v:#}");
    check_backends(
        &v,
        &[
            ("east", "linux-bridge", None),
            ("mid", "snmp", Some("v3")),
            ("tail", "snmp", Some("v2c")),
            ("west", "openflow", None),
        ],
    );
    let sw = &v["rendezvous"]["switches"];
    for (name, ports) in [
        ("west", json!(["h-w1", "t-mid"])),
        ("mid", json!(["h-m2", "t-east", "t-west"])),
        ("east", json!(["t-mid", "t-tail"])),
        ("tail", json!(["h-t1", "t-east"])),
    ] {
        assert_eq!(sw[name]["ports"], ports, "{name}: {v:#}");
        assert_eq!(sw[name]["match"], true, "{name}: {v:#}");
    }
    for (h, c) in v["deliveries"].as_object().unwrap() {
        let want = if ["w1", "m2", "t1"].contains(&h.as_str()) {
            50
        } else {
            0
        };
        assert_eq!(c["datagrams"], want, "host {h}: {v:#}");
    }
    // Released: the SNMP agents' rows go with the others once the group cools.
    assert_eq!(
        v["rendezvous"]["cleared_after_warm"]["entries_left"], 0,
        "{v:#}"
    );
}
