//! The handler writes the MDB over netlink with replace semantics: a group the bridge
//! learned from a host's MLD report becomes permanent when a manager installs it over
//! SNMP (with `bridge mdb add`, this SET failed with "already exists"). Needs root.
//! Run: `cargo test -p subcast-snmp --test learned_entries`.

use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use subcast_snmp::testlab::{COMMUNITY_RW, Lab, sh};
use subcast_snmp::{PortSet, SnmpConfig, SnmpSwitch};

/// The handler under test (`SUBCAST_QBRIDGE_PASSPERSIST` runs these tests against
/// another build, e.g. an older one).
fn handler() -> PathBuf {
    std::env::var("SUBCAST_QBRIDGE_PASSPERSIST")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_BIN_EXE_subcast-qbridge-passpersist")))
}

async fn connect(cfg: SnmpConfig) -> SnmpSwitch {
    let t0 = Instant::now();
    loop {
        match SnmpSwitch::connect(cfg.clone()).await {
            Ok(s) => return s,
            Err(e) if t0.elapsed() < Duration::from_secs(10) => {
                eprintln!("connect: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("cannot connect to test snmpd: {e}"),
        }
    }
}

/// MDB entries of `group` on br0 as (port, state), from `bridge -j mdb show`.
fn mdb_of(lab: &Lab, group: &str) -> Vec<(String, String)> {
    let text = sh(&[
        "bridge",
        "-n",
        &lab.bridge_ns,
        "-j",
        "mdb",
        "show",
        "dev",
        "br0",
    ]);
    let v: serde_json::Value = serde_json::from_str(&text).expect("bridge -j mdb json");
    let mut out = Vec::new();
    for dump in v.as_array().into_iter().flatten() {
        for e in dump["mdb"].as_array().into_iter().flatten() {
            if e["grp"] == group {
                out.push((
                    e["port"].as_str().unwrap_or("").to_string(),
                    e["state"].as_str().unwrap_or("").to_string(),
                ));
            }
        }
    }
    out.sort();
    out
}

/// A socat process in a host namespace that is a member of a group; ended by PID on drop.
struct Member(std::process::Child);

impl Member {
    fn join(netns: &str, group: Ipv6Addr) -> Member {
        let opt = format!("UDP6-RECV:5999,ipv6-join-group=[{group}]:eth0");
        let child = std::process::Command::new("ip")
            .args(["netns", "exec", netns, "socat", "-u", &opt, "/dev/null"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start socat (is the socat package installed?)");
        Member(child)
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_learned_from_mld_becomes_permanent_when_installed() {
    let mut lab = Lab::new(2);
    lab.start_snmpd(&handler());
    let sw = connect(SnmpConfig::v2c(lab.address(), COMMUNITY_RW)).await;
    let h1 = lab.hosts[0].clone();
    let p1 = lab.port_no(&h1);
    let g: Ipv6Addr = "ff3e::c:1".parse().unwrap();

    // h1 joins g (a socket member): its MLD report makes the bridge learn a temporary
    // entry on v1.
    let _member = Member::join(&h1.netns, g);
    let t0 = Instant::now();
    loop {
        let e = mdb_of(&lab, &g.to_string());
        if e == vec![(h1.bridge_if.clone(), "temp".to_string())] {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the bridge did not learn h1's MLD join of {g}: {e:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Installing g on h1's port over SNMP succeeds and makes the entry permanent.
    let ports: PortSet = [p1].into();
    sw.install(g, &ports)
        .await
        .expect("install over an MLD-learned entry");
    assert_eq!(
        mdb_of(&lab, &g.to_string()),
        vec![(h1.bridge_if.clone(), "permanent".to_string())]
    );
    assert_eq!(sw.parent_ports(1, g).await.unwrap(), Some(ports));

    // Removing it over SNMP deletes the entry (h1 is still a member: the bridge may learn
    // it again at the next report, as a temporary entry, never a permanent one).
    sw.remove(g).await.expect("remove");
    assert!(
        mdb_of(&lab, &g.to_string())
            .iter()
            .all(|(_, state)| state != "permanent")
    );
    assert_eq!(sw.parent_ports(1, g).await.unwrap(), None);
}
