//! The rendezvous lab shared by tests and benches: the labs harness builds
//! one Linux bridge with MLD closed (static negotiating groups),
//! `subcast-agent` drives the bridge, `subcast-controller` leases groups,
//! five `subcast-node serve` processes store; the sixth host is the client.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

pub fn node_bin() -> String {
    std::env::var("SUBCAST_NODE_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_subcast-node").to_owned())
}

pub fn other_bin(env: &str, name: &str) -> Option<PathBuf> {
    let p = std::env::var(env).map(PathBuf::from).unwrap_or_else(|_| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target/debug")
            .join(name)
    });
    p.is_file().then_some(p)
}

/// Whether `bin` provisions pair keys (`subcast-node keys`).
pub fn has_keys_command(bin: &str) -> bool {
    std::process::Command::new(bin)
        .args(["keys", "--help"])
        .output()
        .is_ok_and(|o| o.status.success())
}

pub fn key(n: u8) -> String {
    format!("{}{n:02x}", "5c".repeat(31))
}

pub const NG: [&str; 2] = ["ff05::5c:1:1", "ff05::5c:1:2"];
pub const NODES: usize = 5;
/// IPv4 setup ([`setup_ipv4`]): negotiating groups, the controller's pool
/// (the agent's rendezvous range) and hosts at 10.92.0.INDEX/24.
pub const NG4: [&str; 2] = ["239.92.0.1", "239.92.0.2"];
pub const POOL4: &str = "239.92.128.0/24";

pub fn host_ipv4(i: usize) -> String {
    format!("10.92.0.{i}")
}

/// [`members_yaml`] with `ipv4:` addresses.
pub fn members_yaml4(indent: &str) -> String {
    (1..=NODES)
        .map(|i| {
            format!(
                "{indent}- {{ name: h{i}, ipv4: \"{}\", mac: \"02:5c:00:00:00:{i:02x}\" }}\n",
                host_ipv4(i)
            )
        })
        .collect()
}

pub fn members_yaml(indent: &str) -> String {
    (1..=NODES)
        .map(|i| {
            format!("{indent}- {{ name: h{i}, ipv6: \"fd00:5c::{i:x}\", mac: \"02:5c:00:00:00:{i:02x}\" }}\n")
        })
        .collect()
}

/// The running lab: processes are killed (by pid) and namespaces removed
/// when it is dropped.
pub struct Rv {
    pub procs: Vec<labs::ChildGuard>,
    pub lab: labs::Lab,
    pub dir: tempfile::TempDir,
    pub client_cfg: PathBuf,
    pub client_ns: String,
    /// The subcast-node binary of nodes and client.
    pub bin: String,
    /// IP + UDP header octets of the lab's family (48 IPv6, 28 IPv4): the
    /// nodes size DATA datagrams to the MTU with it.
    pub ip_udp_overhead: usize,
}

impl Rv {
    pub fn client(&self, args: &[&str]) -> std::process::Output {
        let mut v = vec![self.bin.as_str()];
        v.extend_from_slice(args);
        v.extend_from_slice(&["--config", self.client_cfg.to_str().unwrap()]);
        self.lab.exec(&self.client_ns, &v).unwrap()
    }

    /// Like [`Rv::client`], whatever the exit status.
    pub fn client_any(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new("ip")
            .args(["netns", "exec", &self.client_ns, &self.bin])
            .args(args)
            .args(["--config", self.client_cfg.to_str().unwrap()])
            .output()
            .unwrap()
    }

    pub fn logs(&self) -> String {
        let d = self.dir.path();
        format!(
            "controller:\n{}\nagent:\n{}",
            std::fs::read_to_string(d.join("controller.log")).unwrap_or_default(),
            std::fs::read_to_string(d.join("agent.log")).unwrap_or_default()
        )
    }

    /// Bytes each node host's switch port has sent toward it.
    pub fn port_tx_bytes(&self) -> Vec<u64> {
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
pub fn setup(extra: &str) -> Option<Rv> {
    setup_with(extra, &node_bin())
}

/// [`setup`] with the nodes running `node_bin`.
pub fn setup_with(extra: &str, node_bin: &str) -> Option<Rv> {
    setup_family(extra, node_bin, false)
}

/// [`setup`] over IPv4: IPv4 negotiating groups ([`NG4`]) with `ipv4:`
/// members, an IPv4 pool ([`POOL4`]), nodes and client on 10.92.0.0/24
/// (the controller and agent keep their IPv6 management link).
pub fn setup_ipv4(extra: &str) -> Option<Rv> {
    setup_family(extra, &node_bin(), true)
}

fn setup_family(extra: &str, node_bin: &str, ipv4: bool) -> Option<Rv> {
    let (ng, pool, range) = if ipv4 {
        (NG4, POOL4, POOL4)
    } else {
        (NG, "ff15::5c00:0/112", "ff15::5c00:0/104")
    };
    let members_yaml = |indent: &str| {
        if ipv4 {
            members_yaml4(indent)
        } else {
            members_yaml(indent)
        }
    };
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
    if ipv4 {
        for i in 1..=NODES + 1 {
            let ns = lab.host(&format!("H{i}")).netns.clone();
            let a = format!("{}/24", host_ipv4(i));
            lab.exec(&ns, &["ip", "addr", "add", &a, "dev", "eth0"])
                .unwrap();
            lab.exec(&ns, &["ip", "route", "add", "224.0.0.0/4", "dev", "eth0"])
                .unwrap();
        }
    }
    let sw = lab.switch("S");

    for (id, n) in [(1u32, 1u8), (101, 101)] {
        std::fs::write(d.join(format!("k{id}.key")), key(n)).unwrap();
    }
    let groups: String = ng
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
    pool: ["{pool}"]
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
        pool = pool,
    );
    std::fs::write(d.join("controller.yaml"), ctl_cfg).unwrap();
    let parents: String = ng
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
rendezvous_range: {range}
heartbeat_interval_ms: 1000
parent_groups:
{parents}"#,
        dir = d.display(),
        range = range
    );
    std::fs::write(d.join("agent.yaml"), agent_cfg).unwrap();
    // Pair keys when the binary has them (`keys derive`), else (an older
    // baseline binary) the single shared key.
    let pair_keys = has_keys_command(node_bin);
    if pair_keys {
        std::fs::write(d.join("cluster.secret"), key(7)).unwrap();
        let peers: Vec<String> = (1..=NODES + 1)
            .map(|i| {
                if ipv4 {
                    format!("{i}={}", host_ipv4(i))
                } else {
                    format!("{i}={}", lab.host(&format!("H{i}")).ipv6)
                }
            })
            .collect();
        for i in 1..=NODES + 1 {
            let o = std::process::Command::new(node_bin)
                .args(["keys", "derive", "--secret"])
                .arg(d.join("cluster.secret"))
                .args(["--node", &i.to_string(), "--peers", &peers.join(",")])
                .arg("--out")
                .arg(d.join(format!("node{i}.keys")))
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
    }
    let node_cfg = |i: usize| {
        let keys = if pair_keys {
            format!("keys: {{file: {}/node{i}.keys}}", d.display())
        } else {
            format!("key: {{id: 7, hex: \"{}\"}}", key(7))
        };
        let mut c = format!(
            "negotiating_groups: [{}, {}]\ninterface: eth0\n{extra}\n{keys}\ncontroller: {{address: \"[{ctl_addr}]:7411\", vlan: 0, key: {{id: 2, hex: \"{}\"}}}}\n",
            ng[0],
            ng[1],
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
                    node_bin,
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
    // Every node listening (its socket bound) before the first put; the
    // put itself is retried while the controller and agent come up.
    let listening = format!("sport = :{}", subcast_node::config::DEFAULT_NODE_PORT);
    for i in 1..=NODES {
        let ns = lab.host(&format!("H{i}")).netns.clone();
        let t0 = std::time::Instant::now();
        while !lab
            .exec(&ns, &["ss", "-Hlun", &listening])
            .is_ok_and(|o| !o.stdout.is_empty())
        {
            assert!(
                t0.elapsed() < Duration::from_secs(15),
                "storage node H{i} never listened:\n{}",
                std::fs::read_to_string(d.join(format!("node{i}.log"))).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let mut procs = vec![_ctl, _agent];
    procs.extend(nodes);
    Some(Rv {
        procs,
        bin: node_bin.to_owned(),
        ip_udp_overhead: if ipv4 { 28 } else { 48 },
        client_ns: lab.host(&client_host).netns.clone(),
        lab,
        dir,
        client_cfg,
    })
}

/// A put; the agent may take a moment to say HELLO, so retry a few times.
pub fn put_with_retry(rv: &Rv, file: &Path, name: &str, mode: &str) -> std::process::Output {
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

/// Puts an object of 4 chunks of 256 KiB by rendezvous while every host
/// captures `filter` (datagrams to the rendezvous pool), then checks:
/// every chunk (data and manifest) on exactly 3 nodes; each host got
/// exactly the datagrams the chunks it stores need and non-targets none;
/// the get is byte-identical. `seed` varies the object's bytes.
pub fn put_reaches_only_the_targets(rv: &Rv, filter: &str, name: &str, seed: usize) {
    let d = rv.dir.path();
    let size = 3 * 262144 + 1000;
    let data: Vec<u8> = (0..size).map(|i| (i * seed % 251) as u8).collect();
    let file = d.join("in.bin");
    std::fs::write(&file, &data).unwrap();
    let caps: Vec<_> = (1..=NODES)
        .map(|i| rv.lab.capture(&format!("H{i}"), filter).unwrap())
        .collect();
    let out = put_with_retry(rv, &file, name, "rendezvous");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let counts: Vec<u64> = caps
        .into_iter()
        .map(|c| c.stop().unwrap().datagrams)
        .collect();
    let placement = report["placement"].as_array().unwrap();
    for p in placement {
        assert_eq!(p.as_array().unwrap().len(), 3, "{report}");
    }
    // Keyed DATA, sized for the family's IP + UDP headers.
    let per = 1500 - rv.ip_udp_overhead - subcast_proto::replicast::KEYED_DATA_OVERHEAD;
    let mut expect = vec![0u64; NODES];
    let chunk_sizes: Vec<usize> = (0..4).map(|i| (size - i * 262144).min(262144)).collect();
    for (i, p) in placement.iter().enumerate().take(4) {
        for n in p.as_array().unwrap() {
            expect[n.as_u64().unwrap() as usize - 1] += chunk_sizes[i].div_ceil(per) as u64;
        }
    }
    eprintln!("datagrams to rendezvous groups per host: {counts:?}; placement {placement:?}");
    assert!(counts.iter().sum::<u64>() > 0, "{}", rv.logs());
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
    let o = rv.client(&["get", name, "-o", got.to_str().unwrap(), "--quiet"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(&got).unwrap(), data);
}
