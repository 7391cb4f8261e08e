//! IPv4 groups on a real Linux bridge (needs root; issue 21): the backend
//! installs a rendezvous group 239.92.128.1 as IPv4 MDB entries (read back
//! with `bridge mdb`, outside the process), places an IPv4 member through
//! the bridge's neighbour (ARP) table and the FDB, and the group's
//! datagrams reach exactly its ports (counted by tcpdump at every host).
//! The real agent binary, configured with an IPv4 range and an IPv4 parent
//! group, applies sealed IPv4 SET_SUBSET/CLEAR the same way, and a host
//! that IGMP-joins a rendezvous group it was not chosen for receives
//! nothing (the agent deletes the snooped entry).

mod common;
#[path = "support/ctl.rs"]
mod ctl;

use common::*;
use labs::{Lab, LabOptions, Topology};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};
use subcast_agent::backend::linux_bridge::LinuxBridge;
use subcast_agent::backend::{Backend, Lookup};
use subcast_agent::core::action::Change;
use subcast_proto::{
    Clear, GroupAddr, Keyring, Member, Members, Message, Opener, ReplayGuard, Sealer, SetSubset,
    group_field, now_us,
};

const GROUP: Ipv4Addr = Ipv4Addr::new(239, 92, 128, 1);

fn host_ip(index: u16) -> Ipv4Addr {
    Ipv4Addr::new(10, 92, 0, index as u8)
}

/// The IPv4 groups and ports of the bridge's MDB, as `bridge -j mdb show`
/// lists them (permanent entries, or every entry).
fn mdb_ipv4(lab: &Lab) -> BTreeMap<String, BTreeSet<String>> {
    mdb_ipv4_entries(lab, true)
}

fn mdb_ipv4_entries(lab: &Lab, permanent_only: bool) -> BTreeMap<String, BTreeSet<String>> {
    let out = lab
        .exec(
            &lab.switch("S").netns,
            &["bridge", "-j", "mdb", "show", "dev", "br0"],
        )
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut got: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in v
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|x| x["mdb"].as_array().cloned().unwrap_or_default())
    {
        let (Some(grp), Some(port)) = (e["grp"].as_str(), e["port"].as_str()) else {
            continue;
        };
        if grp.parse::<Ipv4Addr>().is_ok()
            && (!permanent_only || e["state"].as_str() == Some("permanent"))
        {
            got.entry(grp.to_owned())
                .or_default()
                .insert(port.to_owned());
        }
    }
    got
}

/// 100 datagrams from `from` to the group, counted at every host.
fn deliver(lab: &Lab, from: &str) -> BTreeMap<String, u64> {
    let hosts: Vec<String> = lab.hosts().keys().cloned().collect();
    let hs: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let h = lab.host(from);
    let (ns, src) = (h.netns.clone(), host_ip(h.index));
    let (sent, counts) = lab
        .count_at(&hs, &format!("dst {GROUP} and dst port 5000"), move || {
            labs::netns::in_netns(&ns, move || -> std::io::Result<()> {
                let s = UdpSocket::bind(SocketAddrV4::new(src, 0))?;
                s.set_multicast_ttl_v4(1)?;
                s.set_multicast_loop_v4(false)?;
                let sock = socket2::SockRef::from(&s);
                sock.set_multicast_if_v4(&src)?;
                for i in 0u64..100 {
                    s.send_to(&i.to_be_bytes(), SocketAddrV4::new(GROUP, 5000))?;
                }
                Ok(())
            })
        })
        .unwrap();
    sent.unwrap().unwrap();
    counts.into_iter().map(|(h, c)| (h, c.datagrams)).collect()
}

#[test]
fn ipv4_group_on_a_real_bridge() {
    if !enabled("ipv4_group_on_a_real_bridge") {
        return;
    }
    let topo = Topology::from_yaml_file(labs::topology_path("one-switch.yaml")).unwrap();
    let lab = Lab::build(&topo, LabOptions::default()).unwrap();
    let sw = lab.switch("S").clone();
    for h in lab.hosts().values() {
        let a = format!("{}/24", host_ip(h.index));
        lab.exec(&h.netns, &["ip", "addr", "add", &a, "dev", "eth0"])
            .unwrap();
    }
    // H1 in the bridge's own ARP table (what the kernel learns from traffic
    // to an address on br0; a permanent entry here, no traffic needed).
    let h1 = lab.host("H1").clone();
    lab.exec(
        &sw.netns,
        &[
            "ip",
            "neigh",
            "replace",
            &host_ip(h1.index).to_string(),
            "lladdr",
            &h1.mac_string(),
            "dev",
            "br0",
            "nud",
            "permanent",
        ],
    )
    .unwrap();
    let x: Ipv6Addr = group_field(GROUP.into());
    assert_eq!(x.ipv4_group(), Some(GROUP));
    let range: ipnet::Ipv6Net = "::ffff:239.92.128.0/120".parse().unwrap();
    let want: BTreeSet<u32> = ["H1", "H2"]
        .iter()
        .map(|h| sw.port_to_host(h).unwrap().ifindex)
        .collect();
    let h1_port = sw.port_to_host("H1").unwrap().ifindex;
    let h1_ip = host_ip(h1.index);
    let ns = sw.netns.clone();
    let w = want.clone();
    labs::netns::in_netns(&ns, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut b = LinuxBridge::open("br0").await.unwrap();
            let view = b.view();
            assert_eq!(
                view.port_toward(0, &Member::Ipv4(h1_ip)),
                Lookup::Found(h1_port),
                "IPv4 member through ARP + FDB"
            );
            assert_eq!(
                view.port_toward(0, &Member::Ipv4(Ipv4Addr::new(10, 92, 0, 99))),
                Lookup::Absent
            );
            b.apply(&[Change::Install {
                vlan: 0,
                group: x,
                ports: w.clone(),
                previous: None,
            }])
            .await
            .unwrap();
            let got = b.installed(range).await.unwrap();
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].group, x);
            assert_eq!(got[0].ports, w);
        });
    })
    .unwrap();
    let names = |hs: &[&str]| -> BTreeSet<String> {
        hs.iter().map(|h| lab.host(h).switch_port.clone()).collect()
    };
    assert_eq!(
        mdb_ipv4(&lab).get(&GROUP.to_string()),
        Some(&names(&["H1", "H2"])),
        "IPv4 MDB entries as the bridge lists them"
    );
    let got = deliver(&lab, "H3");
    for (h, n) in &got {
        let want = if h == "H1" || h == "H2" { 100 } else { 0 };
        assert_eq!(*n, want, "host {h}: all {got:?}");
    }
    let ns = sw.netns.clone();
    labs::netns::in_netns(&ns, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut b = LinuxBridge::open("br0").await.unwrap();
            b.apply(&[Change::Remove {
                vlan: 0,
                group: x,
                ports: want,
            }])
            .await
            .unwrap();
            assert!(b.installed(range).await.unwrap().is_empty());
        });
    })
    .unwrap();
    assert!(mdb_ipv4(&lab).is_empty());
}

/// Adds 10.92.0.INDEX/24 to every host of the lab.
fn add_ipv4(lab: &Lab) {
    for h in lab.hosts().values() {
        let a = format!("{}/24", host_ip(h.index));
        lab.exec(&h.netns, &["ip", "addr", "add", &a, "dev", "eth0"])
            .unwrap();
    }
}

/// The agent binary on an IPv4 range (239.92.128.0/24) with the IPv4
/// parent group 239.92.0.1 of every host (members by `ipv4:`).
fn start_ipv4_agent(lab: &Lab) -> AgentProc {
    let dir = lab.workdir().to_owned();
    std::fs::write(dir.join("ctl.key"), CTL_KEY).unwrap();
    std::fs::write(dir.join("agent.key"), AGENT_KEY).unwrap();
    let netns = lab.switch("S").netns.clone();
    let ctl = labs::netns::in_netns(&netns, || UdpSocket::bind("[::1]:0"))
        .unwrap()
        .unwrap();
    ctl.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut y = format!(
        "switch_id: 1\n\
         backend: {{ kind: linux-bridge, bridge: br0 }}\n\
         controller: \"{}\"\n\
         listen: \"[::1]:{AGENT_PORT}\"\n\
         metrics: \"127.0.0.1:{METRICS_PORT}\"\n\
         key: {{ id: {AGENT_KEY_ID}, file: \"{}\" }}\n\
         controller_keys:\n  - {{ id: {CTL_KEY_ID}, file: \"{}\" }}\n\
         rendezvous_range: \"239.92.128.0/24\"\n\
         parent_groups:\n  - address: \"239.92.0.1\"\n    members:\n",
        ctl.local_addr().unwrap(),
        dir.join("agent.key").display(),
        dir.join("ctl.key").display(),
    );
    for h in lab.hosts().values() {
        y.push_str(&format!(
            "      - {{ name: {}, ipv4: \"{}\", mac: \"{}\" }}\n",
            h.name,
            host_ip(h.index),
            h.mac_string()
        ));
    }
    let config = dir.join("agent-ipv4.yaml");
    std::fs::write(&config, y).unwrap();
    let mut a = AgentProc {
        netns,
        switch_id: 1,
        config,
        child: None,
        io: CtlSocket {
            switch: "S".into(),
            log: dir.join("agent-S.log"),
            ctl,
            sealer: Sealer::new(ctl_key(), 9000, now_us()),
            opener: Opener::new(Keyring::new([agent_key()]), ReplayGuard::default()),
        },
    };
    a.spawn(lab);
    a
}

fn set4(txid: u64, lab: &Lab, hosts: &[&str]) -> Message {
    Message::SetSubset(SetSubset {
        txid,
        vlan: 0,
        parent: group_field(Ipv4Addr::new(239, 92, 0, 1).into()),
        group: group_field(GROUP.into()),
        lifetime_ms: 60_000,
        members: Members::List(
            hosts
                .iter()
                .map(|h| Member::Ipv4(host_ip(lab.host(h).index)))
                .collect(),
        ),
    })
}

fn ack_ports(m: &Message) -> u16 {
    match m {
        Message::Ack(a) => a.port_count,
        other => panic!("expected ACK, got {other:?}"),
    }
}

#[test]
fn agent_applies_ipv4_set_subset_and_closes_the_group_to_igmp_joins() {
    if !enabled("agent_applies_ipv4_set_subset_and_closes_the_group_to_igmp_joins") {
        return;
    }
    let topo = Topology::from_yaml_file(labs::topology_path("one-switch.yaml")).unwrap();
    let lab = Lab::build(&topo, LabOptions::default()).unwrap();
    add_ipv4(&lab);
    let mut a = start_ipv4_agent(&lab);
    let names = |hs: &[&str]| -> BTreeSet<String> {
        hs.iter().map(|h| lab.host(h).switch_port.clone()).collect()
    };
    assert_eq!(ack_ports(&a.request(&set4(70, &lab, &["H1", "H2"]))), 2);
    assert_eq!(
        mdb_ipv4(&lab).get(&GROUP.to_string()),
        Some(&names(&["H1", "H2"]))
    );
    // A rogue host joins the rendezvous group (IGMP report): the bridge
    // snoops it, the agent deletes the learned entry.
    let h4 = lab.host("H4").clone();
    let src = host_ip(h4.index);
    let _rogue = labs::netns::in_netns(&h4.netns, move || -> std::io::Result<UdpSocket> {
        let s = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 5000))?;
        s.join_multicast_v4(&GROUP, &src)?;
        Ok(s)
    })
    .unwrap()
    .unwrap();
    let t0 = Instant::now();
    while a.metric("subcast_agent_closed_group_removals_total") < 1.0
        || mdb_ipv4_entries(&lab, false)
            .get(&GROUP.to_string())
            .is_some_and(|p| p.contains(&h4.switch_port))
    {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "removals {}, MDB {:?}; log:\n{}",
            a.metric("subcast_agent_closed_group_removals_total"),
            mdb_ipv4_entries(&lab, false),
            a.log_text()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let got = deliver(&lab, "H3");
    for (h, n) in &got {
        let want = if h == "H1" || h == "H2" { 100 } else { 0 };
        assert_eq!(*n, want, "host {h}: all {got:?}");
    }
    let ans = a.request(&Message::Clear(Clear {
        txid: 71,
        group: group_field(GROUP.into()),
    }));
    assert_eq!(ack_ports(&ans), 0);
    assert!(mdb_ipv4(&lab).is_empty());
}
