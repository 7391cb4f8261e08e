//! IPv4 groups on a real Linux bridge (needs root; issue 21): the backend
//! installs a rendezvous group 239.92.128.1 as IPv4 MDB entries (read back
//! with `bridge mdb`, outside the process), places an IPv4 member through
//! the bridge's neighbour (ARP) table and the FDB, and the group's
//! datagrams reach exactly its ports (counted by tcpdump at every host).

mod common;
#[path = "support/ctl.rs"]
mod ctl;

use common::enabled;
use labs::{Lab, LabOptions, Topology};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, UdpSocket};
use subcast_agent::backend::linux_bridge::LinuxBridge;
use subcast_agent::backend::{Backend, Lookup};
use subcast_agent::core::action::Change;
use subcast_proto::{GroupAddr, Member, group_field};

const GROUP: Ipv4Addr = Ipv4Addr::new(239, 92, 128, 1);

fn host_ip(index: u16) -> Ipv4Addr {
    Ipv4Addr::new(10, 92, 0, index as u8)
}

/// The IPv4 groups and ports of the bridge's MDB, as `bridge -j mdb show` lists them.
fn mdb_ipv4(lab: &Lab) -> BTreeMap<String, BTreeSet<String>> {
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
        if grp.parse::<Ipv4Addr>().is_ok() && e["state"].as_str() == Some("permanent") {
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
