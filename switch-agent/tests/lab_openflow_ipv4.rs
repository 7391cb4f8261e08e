//! IPv4 rendezvous groups on a real, private Open vSwitch (issue 21): the
//! backend installs a group 239.92.128.1 as an `ipv4_dst` flow to an ALL
//! group, guards the IPv4 range with an `ipv4_dst` drop flow, and the
//! datagrams reach exactly the chosen hosts (tcpdump in each host namespace).
//! Needs root, openvswitch-switch and tcpdump, like `lab_openflow.rs`.

#[path = "support/ovs_lab.rs"]
mod ovs_lab;
use ovs_lab::*;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4};
use std::process::Command;
use std::time::{Duration, Instant};
use subcast_agent::backend::{Backend, PortSet};
use subcast_proto::group_field;

const GROUP: Ipv4Addr = Ipv4Addr::new(239, 92, 128, 1);
const ALL_HOSTS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 1);

/// The destination of an Ethernet/IPv4/UDP frame.
fn udp4_dst(frame: &[u8]) -> Option<Ipv4Addr> {
    labs::capture::udp4_len(frame)?;
    let d: [u8; 4] = frame.get(30..34)?.try_into().ok()?;
    Some(Ipv4Addr::from(d))
}

/// Sends `n` datagrams from host `from` (1-based) to GROUP, then a sentinel
/// to 224.0.0.1 (flooded), and returns how many GROUP datagrams each host
/// captured once its capture holds the sentinel.
fn deliver_v4(lab: &OvsLab, from: usize, n: usize) -> Vec<u64> {
    let filter = format!("udp and (dst host {GROUP} or dst host {ALL_HOSTS})");
    let caps = lab.start_captures("v4", &filter);
    let src = Ipv4Addr::new(10, 92, 0, from as u8);
    labs::netns::in_netns(&lab.hosts[from - 1], move || {
        let s = std::net::UdpSocket::bind(SocketAddrV4::new(src, 0)).expect("bind");
        socket2::SockRef::from(&s)
            .set_multicast_if_v4(&src)
            .expect("multicast if");
        for (dst, port, count) in [(GROUP, 5000, n), (ALL_HOSTS, 5999, 1)] {
            for _ in 0..count {
                std::thread::sleep(Duration::from_millis(2));
                s.send_to(&[0x5c; 64], SocketAddrV4::new(dst, port))
                    .expect("send");
            }
        }
    })
    .expect("enter host netns");
    let count = |f: &std::path::Path, dst: Ipv4Addr| {
        let data = std::fs::read(f).unwrap_or_default();
        labs::capture::pcap_records(&data).map_or(0, |r| {
            r.filter(|r| udp4_dst(r.frame) == Some(dst)).count() as u64
        })
    };
    let t0 = Instant::now();
    for (i, (_, f)) in caps.iter().enumerate() {
        while i + 1 != from && count(f, ALL_HOSTS) == 0 {
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "no sentinel at host {}",
                i + 1
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    caps.into_iter()
        .map(|(mut c, f)| {
            let _ = Command::new("kill")
                .args(["-INT", &c.id().to_string()])
                .status();
            let _ = c.wait();
            count(&f, GROUP)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ovs_ipv4_group_reaches_exactly_the_chosen_hosts() {
    if !enabled() {
        return;
    }
    let lab = OvsLab::new(3);
    for (i, h) in lab.hosts.iter().enumerate() {
        let a = format!("10.92.0.{}/24", i + 1);
        run(&lab.dir, &["ip", "-n", h, "addr", "add", &a, "dev", "eth0"]);
    }
    let mut of = connect(&lab, PORT + 20, true).await;
    let range: ipnet::Ipv6Net = "::ffff:239.92.128.0/120".parse().unwrap();
    of.guard_range(range).await.unwrap();
    lab.ping_all();
    let x: Ipv6Addr = group_field(GROUP.into());
    assert_eq!(
        deliver_v4(&lab, 1, 20),
        vec![0, 0, 0],
        "guarded, not installed"
    );
    of.install(0, x, &PortSet::from([2, 3])).await.unwrap();
    assert_eq!(
        deliver_v4(&lab, 1, 20),
        vec![0, 20, 20],
        "install {{h2,h3}}"
    );
    let flows = lab.ovs(&["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", "br0"]);
    assert!(flows.contains(&format!("nw_dst={GROUP}")), "{flows}");
    assert!(
        flows.contains("nw_dst=239.92.128.0/24"),
        "guard flow: {flows}"
    );
    of.install(0, x, &PortSet::from([3])).await.unwrap();
    assert_eq!(deliver_v4(&lab, 1, 20), vec![0, 0, 20], "modify to {{h3}}");
    let inst = of.installed(range).await.unwrap();
    assert_eq!(inst.len(), 1);
    assert_eq!(
        (inst[0].group, inst[0].ports.clone()),
        (x, PortSet::from([3]))
    );
    of.remove(0, x).await.unwrap();
    assert_eq!(deliver_v4(&lab, 1, 20), vec![0, 0, 0], "removed");
    assert!(of.installed(range).await.unwrap().is_empty());
}
