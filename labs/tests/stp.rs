//! Loops inside a site (issue 14): the seed's triangle (`seed-triangle.yaml`,
//! `stp: true`) on Linux bridges running the kernel's spanning tree, one real
//! `subcast-agent` per switch, and one live rendezvous group for X1, X4, X8 set
//! on every agent by this test acting as the controller. The group's ports on every
//! bridge (read from the MDB) must equal the expected ports on the tree the bridges
//! elected (read from the kernel's port states), and datagrams from X2 reach exactly
//! the targets (tcpdump in every host namespace, outside the agents). Then the A-B
//! trunk goes down: once the bridges reconverged (port states) and relearned the
//! hosts, the same live group must follow the new tree without any new instruction.
//!
//! Needs root, tcpdump and the agent binary (`cargo build -p subcast-agent --bins`;
//! `cargo test --workspace` builds it); fails instead of skipping under
//! `SUBCAST_LABS_REQUIRED=1`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddr, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use labs::{ChildGuard, Lab, LabOptions, Topology};
use subcast_proto::{
    Key, Keyring, Member, Members, Message, Opener, ReplayGuard, Sealer, SetSubset, now_us,
};

const NG0: &str = "ff05::5c:1:1";
const GROUP: &str = "ff15::5c00:7";
const TARGETS: [&str; 3] = ["X1", "X4", "X8"];
const SENDER: &str = "X2";
const CTL_HOST: &str = "X9";
const DATAGRAMS: u64 = 40;

fn required() -> bool {
    std::env::var(labs::REQUIRE_ENV).is_ok_and(|v| !v.is_empty() && v != "0")
}

fn key_hex(n: u8) -> String {
    format!("{}{n:02x}", "5c".repeat(31))
}

/// The agent binary next to this test's binary, or `None` (skip) unless required.
fn agent_bin() -> Option<PathBuf> {
    let exe = std::env::current_exe().expect("test binary path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("subcast-agent");
    let has_tcpdump = ["/usr/sbin/tcpdump", "/usr/bin/tcpdump", "/sbin/tcpdump"]
        .iter()
        .any(|p| Path::new(p).exists());
    if required() {
        assert!(
            bin.is_file(),
            "{}=1 but {} is missing: run `cargo build -p subcast-agent --bins`",
            labs::REQUIRE_ENV,
            bin.display()
        );
        assert!(
            has_tcpdump,
            "{}=1 but tcpdump is missing",
            labs::REQUIRE_ENV
        );
    }
    if !labs::lab_tests_enabled() || !bin.is_file() || !has_tcpdump {
        println!("SKIP: needs root, iproute2, tcpdump and the subcast-agent binary");
        return None;
    }
    Some(bin)
}

fn agent_yaml(lab: &Lab, dir: &Path, id: u16) -> String {
    let mut members = String::new();
    for h in lab.topology().hosts_in_order() {
        let o = lab.host(h);
        members += &format!(
            "      - {{ name: {h}, ipv6: \"{}\", mac: \"{}\" }}\n",
            o.ipv6,
            o.mac_string()
        );
    }
    format!(
        "switch_id: {id}\nbackend: {{ kind: linux-bridge, bridge: br0 }}\n\
         controller: \"[{ctl}]:7411\"\nlisten: \"[::]:7410\"\nmetrics: \"[::1]:9410\"\n\
         key: {{ id: 101, file: \"{dir}/k101.key\" }}\n\
         controller_keys:\n  - {{ id: 1, file: \"{dir}/k1.key\" }}\n\
         rendezvous_range: ff15::5c00:0/104\nmax_lifetime_ms: 600000\n\
         heartbeat_interval_ms: 1000\n\
         parent_groups:\n  - address: {NG0}\n    vlan: 0\n    members:\n{members}",
        ctl = lab.host(CTL_HOST).ipv6,
        dir = dir.display(),
    )
}

/// Starts one agent per switch; returns them once each logged "agent ready".
fn start_agents(lab: &Lab, bin: &Path) -> Vec<ChildGuard> {
    let dir = lab.workdir().to_owned();
    for (id, n) in [(1, 1), (101, 101)] {
        let p = dir.join(format!("k{id}.key"));
        std::fs::write(&p, key_hex(n)).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let mut procs = Vec::new();
    for (name, sw) in lab.switches() {
        let cfg = dir.join(format!("agent-{name}.yaml"));
        std::fs::write(&cfg, agent_yaml(lab, &dir, sw.index)).unwrap();
        let log = std::fs::File::create(dir.join(format!("agent-{name}.log"))).unwrap();
        let out = log.try_clone().unwrap();
        let args = [
            bin.to_str().unwrap(),
            "run",
            "--config",
            cfg.to_str().unwrap(),
        ];
        procs.push(
            lab.spawn_with(&sw.netns, &args, move |c| {
                c.stderr(log)
                    .stdout(out)
                    .env("RUST_LOG", "info")
                    .env("NO_COLOR", "1");
            })
            .unwrap(),
        );
    }
    for name in lab.switches().keys() {
        wait(
            &format!("agent {name} ready"),
            lab,
            Duration::from_secs(20),
            || agent_log(lab, name).contains("agent ready"),
        );
    }
    procs
}

fn agent_log(lab: &Lab, switch: &str) -> String {
    std::fs::read_to_string(lab.workdir().join(format!("agent-{switch}.log"))).unwrap_or_default()
}

fn logs(lab: &Lab) -> String {
    lab.switches()
        .keys()
        .map(|s| {
            let l = agent_log(lab, s);
            let tail: Vec<&str> = l.lines().rev().take(30).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            format!("--- agent {s}\n{}\n", tail.join("\n"))
        })
        .collect()
}

/// Polls `f` every 20 ms until it holds; fails with the agents' logs after `within`.
fn wait(what: &str, lab: &Lab, within: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < within,
            "timed out after {within:?} waiting for {what}\n{}",
            logs(lab)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The test as the controller: sets the group on every agent and waits for each ACK.
fn set_group_everywhere(lab: &Lab, sock: &UdpSocket, group: Ipv6Addr) {
    let ctl = Key::from_hex(1, &key_hex(1)).unwrap();
    let agent = Key::from_hex(101, &key_hex(101)).unwrap();
    let mut sealer = Sealer::new(ctl, 9000, now_us());
    let mut opener = Opener::new(Keyring::new([agent]), ReplayGuard::default());
    let members: Vec<Member> = TARGETS
        .iter()
        .map(|h| Member::Ipv6(lab.host(h).ipv6))
        .collect();
    let mut buf = vec![0u8; 9216];
    for (i, (name, sw)) in lab.switches().iter().enumerate() {
        let txid = 100 + i as u64;
        let m = Message::SetSubset(SetSubset {
            txid,
            vlan: 0,
            parent: NG0.parse().unwrap(),
            group,
            lifetime_ms: 600_000,
            members: Members::List(members.clone()),
        });
        let to = SocketAddr::new(sw.mgmt_ipv6.into(), 7410);
        let mut answer = None;
        for _ in 0..20 {
            sock.send_to(&sealer.seal(&m, now_us()), to).unwrap();
            while let Ok((n, _)) = sock.recv_from(&mut buf) {
                let Ok(d) = opener.open(&buf[..n], now_us()) else {
                    continue;
                };
                match d.message {
                    Message::Ack(a) if a.txid == txid => answer = Some(format!("{a:?}")),
                    Message::Nak(n) if n.txid == txid => {
                        panic!("agent {name} refused the group: {n:?}\n{}", logs(lab))
                    }
                    _ => continue,
                }
                break;
            }
            if answer.is_some() {
                break;
            }
        }
        assert!(
            answer.is_some(),
            "no answer from agent {name}\n{}",
            logs(lab)
        );
    }
}

/// Expected ports of the group on every switch, on `tree`: each target's host
/// port, and the trunk toward every side that has a target (every host is a
/// member of NG0, so the parent restricts nothing).
fn oracle(tree: &Topology) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> =
        tree.switches.keys().map(|s| (s.clone(), vec![])).collect();
    for t in TARGETS {
        let sw = &tree.hosts[t].switch;
        out.get_mut(sw).unwrap().push(format!("h-{t}"));
    }
    for (from, to) in tree.trunks_toward(&TARGETS) {
        out.get_mut(&from).unwrap().push(format!("t-{to}"));
    }
    for v in out.values_mut() {
        v.sort();
        v.dedup();
    }
    out
}

/// The group's ports on every bridge, from its MDB.
fn installed(lab: &Lab, group: Ipv6Addr) -> BTreeMap<String, Vec<String>> {
    lab.switches()
        .keys()
        .map(|s| {
            let mut ports: Vec<String> = lab
                .mdb_show(s)
                .unwrap()
                .into_iter()
                .filter(|e| e.group == group)
                .map(|e| e.port)
                .collect();
            ports.sort();
            (s.clone(), ports)
        })
        .collect()
}

/// Datagrams from X2 to the group, counted by tcpdump at every host: exactly the
/// targets get every one.
fn check_delivery(lab: &Lab, group: Ipv6Addr, when: &str) {
    let hosts = lab.topology().hosts_in_order();
    let (sent, counts) = lab
        .count_at(&hosts, &format!("udp and dst {group}"), || {
            lab.send_multicast(SENDER, group, 5000, DATAGRAMS, 64)
        })
        .unwrap();
    sent.unwrap();
    let got: BTreeMap<&str, u64> = counts
        .iter()
        .map(|(h, c)| (h.as_str(), c.datagrams))
        .collect();
    for h in &hosts {
        let want = if TARGETS.contains(h) { DATAGRAMS } else { 0 };
        assert_eq!(
            got[h],
            want,
            "{when}: host {h} received {} datagrams, wants {want} (all: {got:?})\n{}",
            got[h],
            logs(lab)
        );
    }
    println!("{when}: delivered {got:?}");
}

/// `subcast_agent_topology_repushes_total` of the agent in `switch`'s namespace.
fn repushes(lab: &Lab, switch: &str) -> u64 {
    let ns = lab.switch(switch).netns.clone();
    let text = labs::netns::in_netns(&ns, || -> std::io::Result<String> {
        let mut s = std::net::TcpStream::connect("[::1]:9410")?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    })
    .unwrap()
    .unwrap();
    text.lines()
        .find(|l| l.starts_with("subcast_agent_topology_repushes_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[test]
fn live_group_follows_the_spanning_tree_when_a_trunk_goes_down() {
    let Some(bin) = agent_bin() else {
        return;
    };
    let t_build = Instant::now();
    let topo = Topology::from_yaml_file(labs::topology_path("seed-triangle.yaml")).unwrap();
    let lab = Lab::build(
        &topo,
        LabOptions {
            close_mld: true,
            ..Default::default()
        },
    )
    .unwrap();
    let tree0 = lab.active_topology().unwrap();
    let blocked0 = lab.blocked_trunks().unwrap();
    assert!(tree0.is_tree(), "{:?}", lab.port_states().unwrap());
    println!(
        "lab built in {:?}; blocked trunks {blocked0:?}",
        t_build.elapsed()
    );
    let _agents = start_agents(&lab, &bin);
    let group: Ipv6Addr = GROUP.parse().unwrap();
    let sock = lab.udp_socket(CTL_HOST, 7411, &[]).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    set_group_everywhere(&lab, &sock, group);
    let want0 = oracle(&tree0);
    assert_eq!(installed(&lab, group), want0, "{}", logs(&lab));
    check_delivery(&lab, group, "before");

    // The A-B trunk, unless the spanning tree blocked it: then an active trunk,
    // so that the tree must change.
    let (a, b) = if blocked0.contains(&("A".into(), "B".into())) {
        let l = tree0.links.first().expect("an active trunk").ends();
        println!("A-B is blocked: taking the active trunk {l:?} down instead");
        (l.0.to_string(), l.1.to_string())
    } else {
        ("A".to_string(), "B".to_string())
    };
    let before: BTreeMap<String, u64> = lab
        .switches()
        .keys()
        .map(|s| (s.clone(), repushes(&lab, s)))
        .collect();
    let t_down = Instant::now();
    lab.set_trunk(&a, &b, false).unwrap();
    let (_, tree1) = lab.wait_stp_converged(Duration::from_secs(30)).unwrap();
    let converged = t_down.elapsed();
    assert!(
        tree1.links != tree0.links,
        "the tree did not change: {:?}",
        tree1.links
    );
    lab.relearn(Duration::from_secs(20)).unwrap();
    let relearned = t_down.elapsed();
    let want1 = oracle(&tree1);
    assert_ne!(want0, want1, "the new tree must move the group");
    wait(
        "the live group on the new tree",
        &lab,
        Duration::from_secs(20),
        || installed(&lab, group) == want1,
    );
    let correct = t_down.elapsed();
    println!(
        "trunk {a}-{b} down: spanning tree converged after {:.2} s, hosts relearned after \
         {:.2} s, live group correct after {:.2} s (ports {want1:?})",
        converged.as_secs_f64(),
        relearned.as_secs_f64(),
        correct.as_secs_f64()
    );
    check_delivery(&lab, group, "after");
    // Every switch whose ports for the group changed re-pushed it (metric, read
    // from the agent's /metrics).
    for (s, ports) in &want1 {
        if want0.get(s) != Some(ports) {
            let n = repushes(&lab, s);
            assert!(
                n > before[s],
                "agent {s}: subcast_agent_topology_repushes_total {n} did not grow"
            );
        }
    }
}
