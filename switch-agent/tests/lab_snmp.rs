//! The SNMP backend against real snmpd and the Q-BRIDGE-MIB pass_persist
//! handler on a Linux bridge (`subcast_snmp::testlab`; needs root, snmpd,
//! snmp, socat, tcpdump; fails instead of skipping under
//! `SUBCAST_LABS_REQUIRED=1`).

use std::net::Ipv6Addr;
use std::path::Path;
use std::time::{Duration, Instant};
use subcast_agent::backend::snmp::SnmpBackend;
use subcast_agent::backend::{Backend, BackendError, InstalledGroup, Lookup, PortId, PortSet};
use subcast_agent::core::action::Change;
use subcast_proto::{BackendKind, Member};
use subcast_snmp::SnmpConfig;
use subcast_snmp::testlab::{
    COMMUNITY_RW, Host, Lab, V3_AUTH, V3_PRIV, V3_USER, passpersist_binary,
};

fn enabled(name: &str) -> bool {
    let has = |b: &str| {
        ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
            .iter()
            .any(|d| Path::new(d).join(b).exists())
    };
    let missing: Vec<&str> = ["snmpd", "snmpget", "socat", "tcpdump"]
        .into_iter()
        .filter(|b| !has(b))
        .collect();
    let required = std::env::var(labs::REQUIRE_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
    assert!(
        missing.is_empty() || !required,
        "{}=1 but {name} cannot run: {missing:?} not installed (apt-get install snmpd snmp socat tcpdump)",
        labs::REQUIRE_ENV
    );
    let ok = labs::lab_tests_enabled() && missing.is_empty();
    if !ok {
        eprintln!("skipping {name}: needs root, snmpd, snmp, socat and tcpdump");
    }
    ok
}

/// Connects once snmpd answers (it starts in the background).
async fn backend(cfg: SnmpConfig) -> SnmpBackend {
    let t0 = Instant::now();
    loop {
        match SnmpBackend::connect(cfg.clone()).await {
            Ok(b) => return b,
            Err(e) if t0.elapsed() > Duration::from_secs(10) => {
                panic!("the lab snmpd does not answer: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The bridge port of each host, once the switch's FDB has it.
async fn ports(b: &mut SnmpBackend, lab: &Lab, hosts: &[Host]) -> Vec<PortId> {
    let mut out = Vec::new();
    for h in hosts {
        let mac: subcast_proto::MacAddr = h.mac.parse().expect("lab MAC");
        let t0 = Instant::now();
        let port = loop {
            b.read_fdb(0).await.expect("FDB walk");
            if let Lookup::Found(p) = b.view().port_toward(0, &Member::Mac(mac)) {
                break p;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "{} never learned",
                h.mac
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(port, PortId::from(lab.port_no(h)), "port of {}", h.mac);
        out.push(port);
    }
    out
}

/// Sends 4 datagrams to `group`:`port` from `sender`, then one to `sentinel`
/// (a group every receiver gets) and waits until every receiver's capture
/// has the sentinel; returns the counts for `port`.
fn deliver(
    lab: &Lab,
    files: &[std::path::PathBuf],
    sender: &Host,
    group: Ipv6Addr,
    port: u16,
    sentinel: Ipv6Addr,
) -> Vec<usize> {
    lab.send(sender, &group.to_string(), port, 4);
    lab.send(sender, &sentinel.to_string(), port + 100, 1);
    let t0 = Instant::now();
    while files.iter().any(|f| lab.count(f, port + 100) == 0) {
        assert!(t0.elapsed() < Duration::from_secs(5), "sentinel lost");
        std::thread::sleep(Duration::from_millis(20));
    }
    files.iter().map(|f| lab.count(f, port)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_programs_a_real_bridge_through_snmpd() {
    if !enabled("backend_programs_a_real_bridge_through_snmpd") {
        return;
    }
    let handler = passpersist_binary();
    let mut lab = Lab::new(4);
    lab.start_snmpd(&handler);
    let mut v3 = backend(SnmpConfig::v3_sha_aes(
        lab.address(),
        V3_USER,
        V3_AUTH,
        V3_PRIV,
    ))
    .await;
    let mut v2 = backend(SnmpConfig::v2c(lab.address(), COMMUNITY_RW)).await;
    assert_eq!(v3.view().kind(), BackendKind::Snmp);
    assert_eq!(v3.port_count(), 4);
    assert_eq!(v3.view().table_capacity(), None, "configured, not read");

    let hosts = lab.hosts.clone();
    let ports = ports(&mut v3, &lab, &hosts).await;
    assert!(v3.port_name(ports[0]).contains("ifIndex"));

    let (receivers, sender) = hosts.split_at(3);
    let sender = &sender[0];
    let files: Vec<_> = receivers.iter().map(|h| lab.capture(h)).collect();
    lab.wait_querier(sender, &files);

    let parent: Ipv6Addr = "ff3e::1:100".parse().expect("addr");
    let x: Ipv6Addr = "ff3e::1:101".parse().expect("addr");
    let parent_set: PortSet = ports[..3].iter().copied().collect();
    v2.install(0, parent, &parent_set)
        .await
        .expect("install parent");
    assert_eq!(
        v3.parent_ports(0, parent).await.expect("parent"),
        Some(parent_set)
    );
    assert_eq!(v3.parent_ports(0, x).await.expect("absent"), None);

    let subset: PortSet = [ports[0], ports[2]].into_iter().collect();
    v3.install(0, x, &subset).await.expect("install X");
    assert_eq!(
        deliver(&lab, &files, sender, x, 6001, parent),
        vec![4, 0, 4],
        "X must reach exactly hosts 1 and 3"
    );

    let range: ipnet::Ipv6Net = "ff3e::1:100/120".parse().expect("net");
    let mut got = v3.installed(range).await.expect("installed");
    got.sort_by_key(|g| g.group);
    assert_eq!(
        got,
        vec![
            InstalledGroup {
                vlan: 1,
                group: parent,
                ports: ports[..3].iter().copied().collect()
            },
            InstalledGroup {
                vlan: 1,
                group: x,
                ports: subset
            },
        ]
    );

    v3.remove(0, x).await.expect("remove");
    v3.remove(0, x).await.expect("remove absent");
    assert_eq!(
        deliver(&lab, &files, sender, x, 6002, parent),
        vec![0, 0, 0]
    );
    v2.remove(0, parent).await.expect("remove parent");
    assert!(v3.installed(range).await.expect("installed").is_empty());

    lab.signal_snmpd("STOP");
    let e = v3
        .install(0, x, &[ports[0]].into_iter().collect())
        .await
        .unwrap_err();
    assert!(matches!(e, BackendError::Unreachable(_)), "{e}");
    lab.kill_snmpd();
    assert!(lab.static_mdb().iter().all(|(g, _)| !g.starts_with("ff3e")));
}

/// IPv4 groups (issue 21) over SNMP: rows of the groups' 01:00:5e MACs, kept
/// by the test switch as IPv4 MDB entries, read back as the IPv4-mapped groups
/// of an IPv4 range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_installs_ipv4_groups_as_01_00_5e_rows() {
    if !enabled("backend_installs_ipv4_groups_as_01_00_5e_rows") {
        return;
    }
    let handler = passpersist_binary();
    let mut lab = Lab::new(3);
    lab.start_snmpd(&handler);
    let mut b = backend(SnmpConfig::v2c(lab.address(), COMMUNITY_RW)).await;
    let hosts = lab.hosts.clone();
    let ports = ports(&mut b, &lab, &hosts).await;
    let v4 = |d: u8| std::net::Ipv4Addr::new(239, 92, 1, d).to_ipv6_mapped();
    let (parent, x) = (v4(0), v4(1));
    let parent_set: PortSet = ports.iter().copied().collect();
    let subset: PortSet = [ports[0], ports[2]].into_iter().collect();
    b.install(0, parent, &parent_set).await.expect("parent");
    b.install(0, x, &subset).await.expect("X");
    assert_eq!(
        b.parent_ports(0, parent).await.expect("parent"),
        Some(parent_set.clone())
    );
    let mdb = lab.static_mdb();
    let on = |g: &str| -> Vec<String> {
        mdb.iter()
            .filter(|(m, _)| m == g)
            .map(|(_, p)| p.clone())
            .collect()
    };
    assert_eq!(
        on("239.92.1.1"),
        vec![hosts[0].bridge_if.clone(), hosts[2].bridge_if.clone()],
        "{mdb:?}"
    );
    assert_eq!(on("239.92.1.0").len(), 3, "{mdb:?}");
    let range: ipnet::Ipv6Net = "::ffff:239.92.1.0/120".parse().expect("net");
    let mut got = b.installed(range).await.expect("installed");
    got.sort_by_key(|g| g.group);
    assert_eq!(
        got,
        vec![
            InstalledGroup {
                vlan: 1,
                group: parent,
                ports: parent_set
            },
            InstalledGroup {
                vlan: 1,
                group: x,
                ports: subset
            },
        ]
    );
    // The IPv6 range of the same switch sees none of them.
    let v6: ipnet::Ipv6Net = "ff3e::/96".parse().expect("net");
    assert!(b.installed(v6).await.expect("installed").is_empty());
    b.remove(0, x).await.expect("remove");
    b.remove(0, parent).await.expect("remove parent");
    assert!(b.installed(range).await.expect("installed").is_empty());
    assert!(lab.static_mdb().is_empty(), "{:?}", lab.static_mdb());
}

/// An action's rows all or nothing: when the switch refuses a row part way
/// (a port the bridge does not have: wrongValue), the rows written before it
/// are written back, a replaced row to its old ports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_written_before_a_refusal_are_written_back() {
    if !enabled("rows_written_before_a_refusal_are_written_back") {
        return;
    }
    let handler = passpersist_binary();
    let mut lab = Lab::new(3);
    lab.start_snmpd(&handler);
    let mut b = backend(SnmpConfig::v2c(lab.address(), COMMUNITY_RW)).await;
    let hosts = lab.hosts.clone();
    let p = ports(&mut b, &lab, &hosts).await;
    let (x0, x1, x2): (Ipv6Addr, Ipv6Addr, Ipv6Addr) = (
        "ff3e::1:200".parse().unwrap(),
        "ff3e::1:201".parse().unwrap(),
        "ff3e::1:202".parse().unwrap(),
    );
    b.apply(&[Change::Install {
        vlan: 0,
        group: x0,
        ports: [p[0]].into(),
        previous: None,
    }])
    .await
    .unwrap();
    let before = lab.static_mdb();
    let changes = vec![
        Change::Install {
            vlan: 0,
            group: x1,
            ports: [p[0], p[1]].into(),
            previous: None,
        },
        Change::Install {
            vlan: 0,
            group: x0,
            ports: [p[1], p[2]].into(),
            previous: Some([p[0]].into()),
        },
        Change::Install {
            vlan: 0,
            group: x2,
            ports: [p[2], 40].into(),
            previous: None,
        },
    ];
    let e = b.apply(&changes).await.unwrap_err();
    assert_eq!(e.change, Some(2), "{e:?}");
    assert!(!e.uncertain, "{e:?}");
    assert_eq!(
        lab.static_mdb(),
        before,
        "x1 deleted again, x0 back on its port"
    );
    // Without the bad port the same action applies.
    let mut good = changes;
    good[2] = Change::Install {
        vlan: 0,
        group: x2,
        ports: [p[2]].into(),
        previous: None,
    };
    b.apply(&good).await.unwrap();
    let range: ipnet::Ipv6Net = "ff3e::1:200/120".parse().unwrap();
    let got: Vec<(Ipv6Addr, PortSet)> = b
        .installed(range)
        .await
        .unwrap()
        .into_iter()
        .map(|g| (g.group, g.ports))
        .collect();
    let mut got = got;
    got.sort();
    assert_eq!(
        got,
        vec![
            (x0, [p[1], p[2]].into()),
            (x1, [p[0], p[1]].into()),
            (x2, [p[2]].into())
        ]
    );
    // The guard sweep removes rows in the range the agent does not hold.
    // The core keeps groups by instruction VLAN (0: untagged = the row VLAN 1).
    let keep = [(0u16, x1)].into_iter().collect();
    assert_eq!(b.sweep(range, &keep).await.unwrap(), 2);
    let left: Vec<Ipv6Addr> = b
        .installed(range)
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.group)
        .collect();
    assert_eq!(left, vec![x1]);
}
