//! The OpenFlow backend against a real, private Open vSwitch (userspace
//! datapath) in network namespaces this test creates: one switch namespace
//! running ovsdb-server and ovs-vswitchd, host namespaces on veths. The backend
//! listens inside the switch namespace on 127.0.0.1; receptions are counted with
//! tcpdump in each host namespace. Needs root and openvswitch-switch, tcpdump;
//! skipped otherwise, and failing instead under `SUBCAST_LABS_REQUIRED=1`.

#[path = "support/ovs_lab.rs"]
mod ovs_lab;
use ovs_lab::*;

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};
use subcast_agent::backend::openflow::{OpenFlow, SUBSET_GROUP_BASE};
use subcast_agent::backend::{Backend, BackendError, PortSet};
use subcast_agent::core::action::Change;
use subcast_proto::{MacAddr, Member};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ovs_subset_group_reaches_exactly_the_chosen_hosts() {
    if !enabled() {
        return;
    }
    let lab = OvsLab::new(3);
    let mut of = connect(&lab, PORT, true).await;
    let range: ipnet::Ipv6Net = "ff3e::5c:0:0/96".parse().unwrap();
    of.guard_range(range).await.unwrap();
    assert_eq!(of.port_count(), 3);
    assert_eq!(of.port_name(2), "p2");
    lab.ping_all();
    // Placement by learning: IPv6 and MAC members.
    let h2 = Member::Ipv6(OvsLab::host_ip(2));
    let h3 = Member::Mac(MacAddr([2, 0x5c, 0, 0, 0, 3]));
    let p2 = of.port_toward(0, &h2).await.unwrap().expect("h2 learned");
    let p3 = of.port_toward(0, &h3).await.unwrap().expect("h3 learned");
    assert_eq!((p2, p3), (2, 3));
    let unknown = Member::Ipv6("fd00:5c::99".parse().unwrap());
    assert_eq!(of.port_toward(0, &unknown).await.unwrap(), None);

    let x: Ipv6Addr = "ff3e::5c:8000:1".parse().unwrap();
    // Before install the guarded group reaches no one; an unguarded one floods.
    let got = lab.deliver(1, x, 20);
    assert_eq!(got, vec![0, 0, 0], "guarded, not installed");
    let outside: Ipv6Addr = "ff3e::77".parse().unwrap();
    let got = lab.deliver(1, outside, 20);
    assert_eq!(
        got,
        vec![0, 20, 20],
        "unknown group outside the range floods"
    );

    of.install(0, x, &PortSet::from([p2, p3])).await.unwrap();
    let got = lab.deliver(1, x, 20);
    assert_eq!(got, vec![0, 20, 20], "install {{h2,h3}}");

    // Hitless change to {h3}: GROUP_MOD MODIFY.
    of.install(0, x, &PortSet::from([p3])).await.unwrap();
    let got = lab.deliver(1, x, 20);
    assert_eq!(got, vec![0, 0, 20], "modify to {{h3}}");
    let inst = of.installed(range).await.unwrap();
    assert_eq!(inst.len(), 1);
    assert_eq!(
        (inst[0].group, inst[0].ports.clone()),
        (x, PortSet::from([3]))
    );

    // Remove: nobody receives (the guard drops uninstalled rendezvous groups).
    of.remove(0, x).await.unwrap();
    of.remove(0, x).await.unwrap(); // absent: not an error
    let got = lab.deliver(1, x, 20);
    assert_eq!(got, vec![0, 0, 0], "removed");
    assert!(of.installed(range).await.unwrap().is_empty());
    let groups = lab.ovs(&["ovs-ofctl", "-O", "OpenFlow13", "dump-groups", "br0"]);
    assert!(!groups.contains("group_id="), "{groups}");
    // Unicast still works through the learned flows.
    lab.ping_all();

    // A deleted port is forgotten (PORT_STATUS): ports, MACs and its learned flows.
    lab.ovs(&["ovs-vsctl", "del-port", "br0", "p3"]);
    let t0 = Instant::now();
    while of.port_count() != 2 && t0.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(of.port_count(), 2);
    assert_eq!(of.port_toward(0, &h3).await.unwrap(), None);
    let _ = of.installed(range).await.unwrap(); // a barrier: the deletes are applied
    let flows = lab.ovs(&["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", "br0"]);
    assert!(flows.contains("output:2"), "{flows}");
    assert!(
        !flows.contains("in_port=3") && !flows.contains("output:3"),
        "{flows}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ovs_reconnect_deletes_groups_the_agent_no_longer_owns() {
    if !enabled() {
        return;
    }
    let lab = OvsLab::new(2);
    lab.set_controller(PORT + 1);
    let x1: Ipv6Addr = "ff3e::5c:8000:11".parse().unwrap();
    let x2: Ipv6Addr = "ff3e::5c:8000:12".parse().unwrap();
    let range: ipnet::Ipv6Net = "ff3e::5c:0:0/96".parse().unwrap();
    let listen = |lab: &OvsLab| OpenFlow::with_listener(lab.listener(PORT + 1), config(false));
    {
        let mut old = listen(&lab).expect("listen");
        old.install(0, x1, &PortSet::from([1, 2])).await.unwrap();
        assert_eq!(old.installed(range).await.unwrap().len(), 1);
    } // the agent "crashes": x1 stays on the switch
    let dump = lab.ovs(&["ovs-ofctl", "-O", "OpenFlow13", "dump-groups", "br0"]);
    assert!(dump.contains("group_id="), "{dump}");
    let mut new = listen(&lab).expect("listen again");
    new.wait_connected(Duration::from_secs(10))
        .await
        .expect("switch reconnects");
    assert!(
        new.installed(range).await.unwrap().is_empty(),
        "stale group deleted"
    );
    let dump = lab.ovs(&["ovs-ofctl", "-O", "OpenFlow13", "dump-groups", "br0"]);
    assert!(!dump.contains("group_id="), "{dump}");
    let flows = lab.ovs(&["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", "br0"]);
    assert!(!flows.contains("ff3e::5c:8000:11"), "{flows}");

    // Owned groups survive a reconnect (and are re-pushed).
    new.install(0, x2, &PortSet::from([2])).await.unwrap();
    let old = new.connection().expect("connected");
    lab.ovs(&["ovs-vsctl", "del-controller", "br0"]);
    lab.set_controller(PORT + 1);
    new.wait_new_connection(old, Duration::from_secs(10))
        .await
        .expect("reconnects");
    let inst = new.installed(range).await.unwrap();
    assert_eq!(inst.len(), 1);
    assert_eq!(
        (inst[0].group, inst[0].ports.clone()),
        (x2, PortSet::from([2]))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ovs_vswitchd_restart_repushes_owned_groups() {
    if !enabled() {
        return;
    }
    // Hosts 1-3 are receivers, host 4 sends (so the excluded host is not the sender).
    let lab = OvsLab::new(4);
    let mut of = connect(&lab, PORT + 3, true).await;
    let range: ipnet::Ipv6Net = "ff3e::5c:0:0/96".parse().unwrap();
    of.guard_range(range).await.unwrap();
    lab.ping_all();
    let h1 = Member::Ipv6(OvsLab::host_ip(1));
    let h3 = Member::Ipv6(OvsLab::host_ip(3));
    let p1 = of.port_toward(0, &h1).await.unwrap().expect("h1 learned");
    let p3 = of.port_toward(0, &h3).await.unwrap().expect("h3 learned");
    assert_eq!((p1, p3), (1, 3));
    let x: Ipv6Addr = "ff3e::5c:8000:21".parse().unwrap();
    of.install(0, x, &PortSet::from([p1, p3])).await.unwrap();
    let got = lab.deliver(4, x, 20);
    assert_eq!(got, vec![20, 0, 20, 0], "before restart");

    let old = of.connection().expect("connected");
    lab.stop_vswitchd();
    let t_stop = Instant::now();
    lab.start_vswitchd();
    // A new connection, not the old one still seen as live.
    of.wait_new_connection(old, Duration::from_secs(15))
        .await
        .expect("restarted ovs-vswitchd reconnects within 15 s");
    of.wait_connected(Duration::from_secs(10))
        .await
        .expect("switch connected");
    println!(
        "ovs-vswitchd restart -> agent reconnected and reconciled in {:?}",
        t_stop.elapsed()
    );

    // Learned locations were kept and their flows re-installed (before any new
    // traffic: the hosts' neighbour caches are warm, so they send no ND now).
    assert_eq!(of.port_toward(0, &h1).await.unwrap(), Some(1));
    assert_eq!(of.port_toward(0, &h3).await.unwrap(), Some(3));
    let flows = lab.ovs(&["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", "br0"]);
    for i in 1..=4 {
        let learned = format!("in_port={i},dl_src=02:5c:00:00:00:0{i}");
        assert!(flows.contains(&learned), "{learned} missing: {flows}");
    }

    // No install since the restart: reconciliation re-pushed the owned group.
    let groups = lab.ovs(&["ovs-ofctl", "-O", "OpenFlow13", "dump-groups", "br0"]);
    let gid = format!("group_id={}", SUBSET_GROUP_BASE | 1);
    assert!(groups.contains(&gid), "{groups}");
    assert!(
        groups.contains("output:1") && groups.contains("output:3"),
        "{groups}"
    );
    assert!(!groups.contains("output:2"), "{groups}");
    let flows = lab.ovs(&["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", "br0"]);
    assert!(flows.contains("ipv6_dst=ff3e::5c:8000:21"), "{flows}");
    let inst = of.installed(range).await.unwrap();
    assert_eq!(inst.len(), 1);
    assert_eq!(
        (inst[0].group, inst[0].ports.clone()),
        (x, PortSet::from([1, 3]))
    );
    let got = lab.deliver(4, x, 20);
    assert_eq!(got, vec![20, 0, 20, 0], "after restart");

    // The learning pipeline is back: unicast works and hosts are placed again.
    lab.ping_all();
    assert_eq!(of.port_toward(0, &h1).await.unwrap(), Some(1));
    assert_eq!(of.port_toward(0, &h3).await.unwrap(), Some(3));
    assert_eq!(of.learned_macs(), 4);
}

/// SET -> bundle-confirmed latency over 1,000 installs (500 new groups, then 500
/// port-set changes), printed as p50/p99. A measurement, not a check: run with
/// `--ignored` (the benches measure the whole agent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn ovs_install_latency() {
    if !enabled() {
        return;
    }
    let lab = OvsLab::new(3);
    let mut of = connect(&lab, PORT + 2, true).await;
    let base = u128::from("ff3e::5c:9000:0".parse::<Ipv6Addr>().unwrap());
    let mut add = Vec::new();
    let mut modify = Vec::new();
    for i in 0..500u128 {
        let g = Ipv6Addr::from(base + i);
        let t = Instant::now();
        of.install(0, g, &PortSet::from([1, 2])).await.unwrap();
        add.push(t.elapsed());
    }
    for i in 0..500u128 {
        let g = Ipv6Addr::from(base + i);
        let t = Instant::now();
        of.install(0, g, &PortSet::from([2, 3])).await.unwrap();
        modify.push(t.elapsed());
    }
    let range: ipnet::Ipv6Net = "ff3e::5c:9000:0/112".parse().unwrap();
    assert_eq!(of.installed(range).await.unwrap().len(), 500);
    let pct = |v: &mut Vec<Duration>, p: usize| {
        v.sort();
        v[(v.len() * p / 100).min(v.len() - 1)]
    };
    println!(
        "openflow install latency (barrier-confirmed, OVS {} userspace): \
         new group+flow p50 {:?} p99 {:?}; modify p50 {:?} p99 {:?}",
        lab.ovs(&["ovs-vswitchd", "--version"])
            .lines()
            .next()
            .unwrap_or(""),
        pct(&mut add, 50),
        pct(&mut add, 99),
        pct(&mut modify, 50),
        pct(&mut modify, 99)
    );
    for i in 0..500u128 {
        of.remove(0, Ipv6Addr::from(base + i)).await.unwrap();
    }
    assert!(of.installed(range).await.unwrap().is_empty());
}

/// One action is one atomic bundle: when the switch refuses part of it (a
/// full flow table, as Open vSwitch's `overflow_policy=refuse` reports it),
/// none of it stays, groups included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ovs_bundle_is_all_or_nothing() {
    if !enabled() {
        return;
    }
    let lab = OvsLab::new(3);
    let mut of = connect(&lab, PORT + 4, false).await;
    // The group table's limit minus groups that are not ours (none).
    assert_eq!(of.view().table_capacity(), Some(0xffff_ff00));
    let x0: Ipv6Addr = "ff3e::5c:8000:30".parse().unwrap();
    of.install(0, x0, &PortSet::from([1])).await.unwrap();
    let x1: Ipv6Addr = "ff3e::5c:8000:31".parse().unwrap();
    let x2: Ipv6Addr = "ff3e::5c:8000:32".parse().unwrap();
    let batch = vec![
        Change::Install {
            vlan: 0,
            group: x1,
            ports: PortSet::from([1, 2]),
            previous: None,
        },
        Change::Install {
            vlan: 0,
            group: x0,
            ports: PortSet::from([2, 3]),
            previous: Some(PortSet::from([1])),
        },
        Change::Install {
            vlan: 0,
            group: x2,
            ports: PortSet::from([3]),
            previous: None,
        },
    ];
    let table1 = |lab: &OvsLab| {
        lab.ovs(&[
            "ovs-ofctl",
            "-O",
            "OpenFlow13",
            "dump-flows",
            "br0",
            "table=1",
        ])
        .lines()
        .filter(|l| l.contains("cookie="))
        .count()
    };
    // Room for one more flow in table 1: x1's flow fits, x2's does not.
    let limit = (table1(&lab) + 1).to_string();
    lab.ovs(&[
        "ovs-vsctl",
        "--",
        "--id=@ft",
        "create",
        "Flow_Table",
        &format!("flow_limit={limit}"),
        "overflow_policy=refuse",
        "--",
        "set",
        "Bridge",
        "br0",
        "flow_tables:1=@ft",
    ]);
    let groups = |lab: &OvsLab| lab.ovs(&["ovs-ofctl", "-O", "OpenFlow13", "dump-groups", "br0"]);
    let before = groups(&lab);
    let e = of.apply(&batch).await.unwrap_err();
    assert!(matches!(e.error, BackendError::TableFull(_)), "{e:?}");
    assert!(!e.uncertain);
    assert_eq!(groups(&lab), before, "no group of the refused bundle stays");
    let flows = lab.ovs(&["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", "br0"]);
    assert!(!flows.contains("ff3e::5c:8000:31"), "{flows}");
    assert!(!flows.contains("ff3e::5c:8000:32"), "{flows}");
    let range: ipnet::Ipv6Net = "ff3e::5c:0:0/96".parse().unwrap();
    let inst = of.installed(range).await.unwrap();
    assert_eq!(inst.len(), 1);
    assert_eq!(
        (inst[0].group, inst[0].ports.clone()),
        (x0, PortSet::from([1]))
    );
    // With room, the same batch applies whole.
    lab.ovs(&["ovs-vsctl", "clear", "Bridge", "br0", "flow_tables"]);
    of.apply(&batch).await.unwrap();
    let inst = of.installed(range).await.unwrap();
    let got: Vec<_> = inst.iter().map(|g| (g.group, g.ports.clone())).collect();
    assert_eq!(
        got,
        vec![
            (x0, PortSet::from([2, 3])),
            (x1, PortSet::from([1, 2])),
            (x2, PortSet::from([3]))
        ]
    );
}
