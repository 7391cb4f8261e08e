//! Runs the Mininet script end to end (`labs/mininet/subcast_mininet.py`):
//! the seed topology on Linux bridges built by Mininet 2.3, real agents and
//! controller, 100 datagrams from X2 to a rendezvous group for X1, X4, X8,
//! counted by tcpdump on every host interface; the same in IPv4
//! (`seed-three-switch-ipv4.yaml`: IPv4 groups, IGMP snooping).

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The daemons' binaries next to this test's own target directory; built
/// when missing (e.g. `cargo test -p subcast-labs` alone).
fn daemon(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    // target/<profile>/deps/mininet-<hash>
    let dir = exe.parent().and_then(Path::parent).expect("profile dir");
    let bin = dir.join(name);
    if !bin.exists() {
        let release = dir.file_name().is_some_and(|n| n == "release");
        let mut c = Command::new(env!("CARGO"));
        c.current_dir(repo()).args([
            "build",
            "-p",
            "subcast-agent",
            "-p",
            "subcast-controller",
            "--bins",
        ]);
        if release {
            c.arg("--release");
        }
        assert!(c.status().expect("cargo runs").success(), "building {name}");
    }
    bin
}

#[test]
fn mininet_seed_subset_linux_bridge() {
    seed_subset("linux-bridge", "seed-three-switch.yaml");
}

#[test]
fn mininet_seed_subset_linux_bridge_ipv4() {
    seed_subset("linux-bridge", "seed-three-switch-ipv4.yaml");
}

#[test]
fn mininet_seed_subset_ovs() {
    if !labs::lab_tests_enabled() || !labs::ovs_available() {
        println!("SKIP mininet_seed_subset_ovs: needs root and Open vSwitch");
        return;
    }
    seed_subset("ovs", "seed-three-switch.yaml");
}

fn seed_subset(switch: &str, file: &str) {
    if !labs::lab_tests_enabled() {
        println!("SKIP mininet seed subset ({switch}): needs root");
        return;
    }
    let mininet = Path::new("/usr/lib/python3/dist-packages/mininet");
    if !mininet.exists() {
        assert!(
            std::env::var_os("SUBCAST_LABS_REQUIRED").is_none(),
            "Mininet is missing: apt-get install mininet"
        );
        println!("SKIP mininet seed subset ({switch}): Mininet not installed");
        return;
    }
    let out = Command::new("/usr/bin/python3")
        .current_dir(repo())
        .args([
            "labs/mininet/subcast_mininet.py",
            &format!("labs/topologies/{file}"),
            "--targets",
            "X1,X4,X8",
            "--sender",
            "X2",
            "--count",
            "100",
            "--json",
            "--switch",
            switch,
        ])
        .arg("--agent-bin")
        .arg(daemon("subcast-agent"))
        .arg("--controller-bin")
        .arg(daemon("subcast-controller"))
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stdout.lines().last().unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("no JSON report ({e}); stdout:\n{stdout}\nstderr:\n{stderr}"));
    let d = &v["deliveries"];
    for h in ["X1", "X4", "X8"] {
        assert_eq!(d[h], 100, "target {h}: {v}");
    }
    for h in ["X2", "X3", "X5", "X6", "X7", "X9"] {
        assert_eq!(d[h], 0, "non-target {h}: {v}");
    }
    if file.contains("ipv4") {
        assert_eq!(v["family"], "ipv4", "{v}");
        let g: std::net::Ipv4Addr = v["group"].as_str().unwrap().parse().unwrap();
        assert_eq!(g.octets()[..3], [239, 92, 128], "{v}");
    }
    assert_eq!(v["ok"], true, "{v}");
    assert!(out.status.success(), "{stderr}");
}
