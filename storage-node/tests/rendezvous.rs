//! End to end over rendezvous groups: the labs harness builds one Linux
//! bridge with MLD closed (static negotiating groups), `subcast-agent`
//! drives the bridge, `subcast-controller` leases groups, five
//! `subcast-node serve` processes store, the client puts with
//! `--transport rendezvous`. Checks: bytes identical after a get, every
//! chunk on exactly R nodes, and each payload datagram reached exactly R
//! hosts (tcpdump on every host).
//!
//! Needs root and the controller and agent binaries (built by
//! `cargo build -p subcast-controller -p subcast-agent`, or named by
//! SUBCAST_CONTROLLER_BIN / SUBCAST_AGENT_BIN); skipped otherwise.

use std::path::{Path, PathBuf};
use std::time::Duration;

fn node_bin() -> String {
    std::env::var("SUBCAST_NODE_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_subcast-node").to_owned())
}

fn other_bin(env: &str, name: &str) -> Option<PathBuf> {
    let p = std::env::var(env).map(PathBuf::from).unwrap_or_else(|_| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target/debug")
            .join(name)
    });
    p.is_file().then_some(p)
}

fn key(n: u8) -> String {
    format!("{}{n:02x}", "5c".repeat(31))
}

const NG: [&str; 2] = ["ff05::5c:1:1", "ff05::5c:1:2"];
const NODES: usize = 5;

fn members_yaml(indent: &str) -> String {
    (1..=NODES)
        .map(|i| {
            format!("{indent}- {{ name: h{i}, ipv6: \"fd00:5c::{i:x}\", mac: \"02:5c:00:00:00:{i:02x}\" }}\n")
        })
        .collect()
}

/// The running lab: processes are killed (by pid) and namespaces removed
/// when it is dropped.
struct Rv {
    _procs: Vec<labs::ChildGuard>,
    lab: labs::Lab,
    dir: tempfile::TempDir,
    client_cfg: PathBuf,
    client_ns: String,
}

impl Rv {
    fn client(&self, args: &[&str]) -> std::process::Output {
        let bin = node_bin();
        let mut v = vec![bin.as_str()];
        v.extend_from_slice(args);
        v.extend_from_slice(&["--config", self.client_cfg.to_str().unwrap()]);
        self.lab.exec(&self.client_ns, &v).unwrap()
    }

    fn logs(&self) -> String {
        let d = self.dir.path();
        format!(
            "controller:\n{}\nagent:\n{}",
            std::fs::read_to_string(d.join("controller.log")).unwrap_or_default(),
            std::fs::read_to_string(d.join("agent.log")).unwrap_or_default()
        )
    }

    /// Bytes each node host's switch port has sent toward it.
    fn port_tx_bytes(&self) -> Vec<u64> {
        let sw = self.lab.switch("S");
        let o = self
            .lab
            .exec(&sw.netns, &["ip", "-s", "-j", "link", "show"])
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        (1..=NODES)
            .map(|i| {
                v.as_array()
                    .unwrap()
                    .iter()
                    .find(|l| l["ifname"] == format!("h-H{i}"))
                    .map_or(0, |l| l["stats64"]["tx"]["bytes"].as_u64().unwrap_or(0))
            })
            .collect()
    }
}

/// Builds the lab and starts controller, agent and nodes; `None` (with a
/// message) when it cannot run here.
fn setup(extra: &str) -> Option<Rv> {
    if !labs::lab_tests_enabled() {
        eprintln!("skipped: needs root");
        return None;
    }
    let (Some(ctl_bin), Some(agent_bin)) = (
        other_bin("SUBCAST_CONTROLLER_BIN", "subcast-controller"),
        other_bin("SUBCAST_AGENT_BIN", "subcast-agent"),
    ) else {
        assert!(
            std::env::var_os("SUBCAST_LABS_REQUIRED").is_none(),
            "SUBCAST_LABS_REQUIRED is set but subcast-controller / subcast-agent are not built: \
             run `cargo build -p subcast-controller -p subcast-agent --bins` (cargo test --workspace does)"
        );
        eprintln!("skipped: subcast-controller / subcast-agent not built");
        return None;
    };
    let node_bin = node_bin();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let hosts: String = (1..=NODES + 1)
        .map(|i| format!("  H{i}: {{switch: S}}\n"))
        .collect();
    let members: String = (1..=NODES).map(|i| format!("H{i}, ")).collect();
    let topo = format!(
        "switches:\n  S: {{backend: linux-bridge}}\nhosts:\n{hosts}negotiating_groups:\n  NG0: {{group: \"{}\", members: [{members}]}}\n  NG1: {{group: \"{}\", members: [{members}]}}\n",
        NG[0], NG[1]
    );
    std::fs::write(d.join("topo.yaml"), topo).unwrap();
    let topo = labs::Topology::from_yaml_file(d.join("topo.yaml")).unwrap();
    let lab = labs::Lab::build(
        &topo,
        labs::LabOptions {
            close_mld: true,
            static_negotiating_groups: true,
            ..Default::default()
        },
    )
    .unwrap();
    let client_host = format!("H{}", NODES + 1);
    let ctl_addr = lab.host(&client_host).ipv6;
    let sw = lab.switch("S");

    for (id, n) in [(1u32, 1u8), (101, 101)] {
        std::fs::write(d.join(format!("k{id}.key")), key(n)).unwrap();
    }
    let groups: String = NG
        .iter()
        .enumerate()
        .map(|(i, g)| {
            format!(
                "  - name: ng{i}\n    vlan: 0\n    parent: \"{g}\"\n    members:\n{}",
                members_yaml("      ")
            )
        })
        .collect();
    let ctl_cfg = format!(
        r#"controller:
  id: 1
  udp_listen: "[::]:7411"
  database: ":memory:"
  pool_slice: "0/1"
  agent_timeout_ms: 15000
keys:
  - {{ id: 1, hex: "{k1}" }}
  - {{ id: 2, hex: "{k2}" }}
  - {{ id: 101, hex: "{k101}" }}
vlans:
  - id: 0
    name: lab
    pool: ["ff15::5c00:0/112"]
switches:
  - name: S
    id: 1
    vlans: [0]
    agent: {{ address: "[{mgmt}]:7410", key_id: 1, agent_key_id: 101 }}
groups:
{groups}leases: {{ default_ms: 2000, max_ms: 60000 }}
fanout: {{ retransmit_ms: 20, attempts: 5 }}
api:
  listen: "[::1]:8411"
  max_body_bytes: 65536
  tokens:
    - {{ role: admin, name: ops, token: lab-admin-token-0123456789 }}
rendezvous:
  key_ids: [2]
"#,
        k1 = key(1),
        k2 = key(2),
        k101 = key(101),
        mgmt = sw.mgmt_ipv6,
    );
    std::fs::write(d.join("controller.yaml"), ctl_cfg).unwrap();
    let parents: String = NG
        .iter()
        .map(|g| {
            format!(
                "  - address: {g}\n    vlan: 0\n    members:\n{}",
                members_yaml("      ")
            )
        })
        .collect();
    let agent_cfg = format!(
        r#"switch_id: 1
backend:
  kind: linux-bridge
  bridge: br0
controller: "[{ctl_addr}]:7411"
listen: "[::]:7410"
key: {{ id: 101, file: {dir}/k101.key }}
controller_keys:
  - {{ id: 1, file: {dir}/k1.key }}
rendezvous_range: ff15::5c00:0/104
heartbeat_interval_ms: 1000
parent_groups:
{parents}"#,
        dir = d.display()
    );
    std::fs::write(d.join("agent.yaml"), agent_cfg).unwrap();
    let node_cfg = |i: usize| {
        let mut c = format!(
            "negotiating_groups: [{}, {}]\ninterface: eth0\n{extra}\nkey: {{id: 7, hex: \"{}\"}}\ncontroller: {{address: \"[{ctl_addr}]:7411\", vlan: 0, key: {{id: 2, hex: \"{}\"}}}}\n",
            NG[0],
            NG[1],
            key(7),
            key(2),
            extra = extra
        );
        if i <= NODES {
            c += &format!(
                "node: {{id: {i}, store: {}/node{i}, reserve_bytes: 0}}\n",
                d.display()
            );
        }
        let p = d.join(format!("node{i}.yaml"));
        std::fs::write(&p, c).unwrap();
        p
    };

    let ctl_log = std::fs::File::create(d.join("controller.log")).unwrap();
    let _ctl = lab
        .spawn_with(
            &lab.host(&client_host).netns,
            &[
                ctl_bin.to_str().unwrap(),
                "serve",
                "--config",
                d.join("controller.yaml").to_str().unwrap(),
            ],
            |c| {
                c.stderr(ctl_log);
            },
        )
        .unwrap();
    let agent_log = std::fs::File::create(d.join("agent.log")).unwrap();
    let _agent = lab
        .spawn_with(
            &sw.netns,
            &[
                agent_bin.to_str().unwrap(),
                "run",
                "--config",
                d.join("agent.yaml").to_str().unwrap(),
            ],
            |c| {
                c.stderr(agent_log);
            },
        )
        .unwrap();
    let mut nodes = Vec::new();
    for i in 1..=NODES {
        let cfg = node_cfg(i);
        let log = std::fs::File::create(d.join(format!("node{i}.log"))).unwrap();
        nodes.push(
            lab.spawn_with(
                &lab.host(&format!("H{i}")).netns,
                &[
                    node_bin.as_str(),
                    "serve",
                    "--log",
                    "info",
                    "--config",
                    cfg.to_str().unwrap(),
                ],
                |c| {
                    c.stderr(log);
                },
            )
            .unwrap(),
        );
    }
    let client_cfg = node_cfg(NODES + 1);
    std::thread::sleep(Duration::from_secs(3));
    let mut procs = vec![_ctl, _agent];
    procs.extend(nodes);
    Some(Rv {
        _procs: procs,
        client_ns: lab.host(&client_host).netns.clone(),
        lab,
        dir,
        client_cfg,
    })
}

/// A put; the agent may take a moment to say HELLO, so retry a few times.
fn put_with_retry(rv: &Rv, file: &Path, name: &str, mode: &str) -> std::process::Output {
    for _ in 0..5 {
        let o = rv.client(&[
            "put",
            file.to_str().unwrap(),
            "--name",
            name,
            "--transport",
            mode,
            "--json",
            "--quiet",
        ]);
        if o.status.success() {
            return o;
        }
        eprintln!(
            "put not yet possible: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    panic!("{mode} put failed\n{}", rv.logs());
}

#[test]
fn rendezvous_put_reaches_only_the_targets() {
    let Some(rv) = setup("chunk_size: 262144\nrate_mbps: 300") else {
        return;
    };
    let d = rv.dir.path();

    let size = 3 * 262144 + 1000;
    let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
    let file = d.join("in.bin");
    std::fs::write(&file, &data).unwrap();
    let caps: Vec<_> = (1..=NODES)
        .map(|i| {
            rv.lab
                .capture(&format!("H{i}"), "ip6 dst net ff15::5c00:0/104")
                .unwrap()
        })
        .collect();
    let out = put_with_retry(&rv, &file, "rv/obj", "rendezvous");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let counts: Vec<u64> = caps
        .into_iter()
        .map(|c| c.stop().unwrap().datagrams)
        .collect();

    // Every chunk (data and manifest) on exactly 3 nodes.
    let placement = report["placement"].as_array().unwrap();
    for p in placement {
        assert_eq!(p.as_array().unwrap().len(), 3, "{report}");
    }
    // Each payload datagram reached exactly its 3 targets: the number of
    // datagrams to rendezvous groups seen at each host is what the chunks
    // it stores need, and non-targets saw none.
    let per = 1500 - 48 - subcast_proto::replicast::DATA_OVERHEAD;
    let mut expect = vec![0u64; NODES];
    let chunk_sizes: Vec<usize> = (0..4).map(|i| (size - i * 262144).min(262144)).collect();
    for (i, p) in placement.iter().enumerate().take(4) {
        for n in p.as_array().unwrap() {
            expect[n.as_u64().unwrap() as usize - 1] += chunk_sizes[i].div_ceil(per) as u64;
        }
    }
    eprintln!("datagrams to rendezvous groups per host: {counts:?}; placement {placement:?}");
    for (i, (got, want)) in counts.iter().zip(&expect).enumerate() {
        // The manifest chunk adds one datagram at its holders.
        let manifest_here = placement[4]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_u64() == Some(i as u64 + 1));
        assert_eq!(
            *got,
            want + u64::from(manifest_here),
            "host H{}: {counts:?} vs {expect:?} (placement {placement:?})\n{}",
            i + 1,
            rv.logs()
        );
    }
    let got = d.join("out.bin");
    let o = rv.client(&["get", "rv/obj", "-o", got.to_str().unwrap(), "--quiet"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(&got).unwrap(), data);
}

/// Benchmark on the same topology (ignored; root; release binaries advised):
/// `SUBCAST_NODE_BIN=target/release/subcast-node cargo test -p subcast-node
/// --test rendezvous -- --ignored --nocapture`. Per mode: put MiB/s of a
/// 64 MiB object (R=3, 5 nodes), client wire bytes per payload byte, and
/// bytes the switch delivered to all node ports per payload byte (from the
/// bridge ports' TX counters; R=3 is the floor, ng-multicast floods the
/// whole negotiating group). JSON to `$SUBCAST_BENCH_OUT`
/// (default `target/replicast-bench-rendezvous.json`).
#[test]
#[ignore = "benchmark: run explicitly as root"]
fn bench_three_modes_on_one_bridge() {
    let mib: usize = std::env::var("SUBCAST_BENCH_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    let Some(rv) = setup("rate_mbps: 2000\nparallel: 4") else {
        return;
    };
    let size = mib << 20;
    let file = rv.dir.path().join("big.bin");
    let data: Vec<u8> = (0..size as u64)
        .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
        .collect();
    std::fs::write(&file, &data).unwrap();
    let mut rows = Vec::new();
    for mode in ["rendezvous", "ng-multicast", "unicast"] {
        // Same content per mode would deduplicate: change every chunk.
        let mut d = data.clone();
        for k in (0..size).step_by(1 << 20) {
            d[k] ^= mode.len() as u8;
        }
        std::fs::write(&file, &d).unwrap();
        let before = rv.port_tx_bytes();
        let o = put_with_retry(&rv, &file, &format!("bench/{mode}"), mode);
        let after = rv.port_tx_bytes();
        let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let delivered: u64 = after.iter().zip(&before).map(|(a, b)| a - b).sum();
        if std::env::var("SUBCAST_BENCH_DEBUG").is_ok() {
            std::thread::sleep(Duration::from_millis(1100));
            for i in 1..=NODES {
                let p = rv.dir.path().join(format!("node{i}/stats.json"));
                eprintln!(
                    "{mode} node {i}: {}",
                    std::fs::read_to_string(p).unwrap_or_default()
                );
            }
        }
        rows.push(serde_json::json!({
            "transport": mode,
            "object_mib": mib,
            "replicas": 3,
            "nodes": NODES,
            "put_seconds": r["seconds"],
            "put_mib_per_s": r["mib_per_s"],
            "sender_wire_bytes_per_payload_byte": r["wire_bytes_per_payload_byte"],
            "switch_bytes_to_nodes_per_payload_byte": delivered as f64 / size as f64,
        }));
    }
    println!(
        "{:<13} {:>9} {:>8} {:>10} {:>16}",
        "transport", "put MiB/s", "put s", "wire B/B", "to nodes B/B"
    );
    for r in &rows {
        println!(
            "{:<13} {:>9.1} {:>8.2} {:>10.3} {:>16.3}",
            r["transport"].as_str().unwrap(),
            r["put_mib_per_s"].as_f64().unwrap(),
            r["put_seconds"].as_f64().unwrap(),
            r["sender_wire_bytes_per_payload_byte"].as_f64().unwrap(),
            r["switch_bytes_to_nodes_per_payload_byte"]
                .as_f64()
                .unwrap(),
        );
    }
    let path = std::env::var("SUBCAST_BENCH_OUT").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/replicast-bench-rendezvous.json"
        )
        .into()
    });
    std::fs::write(&path, serde_json::to_string_pretty(&rows).unwrap()).unwrap();
    println!("written to {path}");
}
