//! The driver against real net-snmp snmpd serving a real Linux bridge (needs root).
//! Run: `cargo test -p subcast-snmp --test snmpd_bridge`.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};
use subcast_snmp::testlab::{COMMUNITY_RW, Lab, V3_AUTH, V3_PRIV, V3_USER};
use subcast_snmp::{MacAddr, PortSet, SnmpConfig, SnmpError, SnmpSwitch};

fn v2c(lab: &Lab) -> SnmpConfig {
    let mut c = SnmpConfig::v2c(lab.address(), COMMUNITY_RW);
    c.timeout = Duration::from_millis(500);
    c.retries = 1;
    c
}

fn v3(lab: &Lab) -> SnmpConfig {
    let mut c = SnmpConfig::v3_sha_aes(lab.address(), V3_USER, V3_AUTH, V3_PRIV);
    c.timeout = Duration::from_millis(500);
    c.retries = 1;
    c
}

async fn connect(cfg: SnmpConfig) -> SnmpSwitch {
    // snmpd starts its pass_persist child lazily; the first request may be slow.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fdb_ports_and_subset_multicast_reach_exactly_the_members() {
    let mut lab = Lab::new(4);
    lab.start_snmpd(std::path::Path::new(env!(
        "CARGO_BIN_EXE_subcast-qbridge-passpersist"
    )));
    let sw3 = connect(v3(&lab)).await;
    let sw2 = connect(v2c(&lab)).await;

    // FDB: every host's MAC on its own bridge port number (v3 and v2c agree).
    let hosts = lab.hosts.clone();
    let macs: Vec<MacAddr> = hosts.iter().map(|h| h.mac.parse().unwrap()).collect();
    let t0 = Instant::now();
    let ports = loop {
        let p = sw3.ports_of(1, &macs).await.expect("FDB lookup");
        if p.iter().all(Option::is_some) || t0.elapsed() > Duration::from_secs(5) {
            break p;
        }
        sw3.invalidate_fdb_cache();
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for (h, p) in hosts.iter().zip(&ports) {
        assert_eq!(*p, Some(lab.port_no(h)), "FDB port of {}", h.mac);
        assert_eq!(sw2.port_of(1, h.mac.parse().unwrap()).await.unwrap(), *p);
    }
    let ifx = sw2.port_ifindexes().await.expect("dot1dBasePortIfIndex");
    for h in &hosts {
        assert_eq!(ifx.get(&lab.port_no(h)), Some(&lab.ifindex(h)));
    }
    let unknown: MacAddr = "02:ff:ff:ff:ff:01".parse().unwrap();
    assert_eq!(sw2.port_of(1, unknown).await.unwrap(), None);

    // Multicast: h4 sends; h1..h3 capture.
    let (receivers, sender) = hosts.split_at(3);
    let sender = &sender[0];
    let files: Vec<_> = receivers.iter().map(|h| lab.capture(h)).collect();
    lab.wait_querier(sender, &files);

    let x: Ipv6Addr = "ff3e::1:7".parse().unwrap();
    let count = |port: u16| -> Vec<usize> { files.iter().map(|f| lab.count(f, port)).collect() };

    // Before: nobody gets X.
    lab.send(sender, &x.to_string(), 5001, 5);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count(5001), vec![0, 0, 0], "X reached hosts before install");

    // Install X on h1 + h2 over SNMPv3.
    let set: PortSet = [ports[0].unwrap(), ports[1].unwrap()].into_iter().collect();
    sw3.install(x, &set).await.expect("install over v3");
    assert_eq!(sw3.parent_ports(1, x).await.unwrap(), Some(set.clone()));
    lab.send(sender, &x.to_string(), 5002, 5);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count(5002), vec![5, 5, 0], "X must reach exactly h1 and h2");

    // The row is listed (cleanup at start uses this), with status permanent(3).
    let rows = sw2.static_multicast_rows().await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].index.mac, MacAddr::ipv6_multicast(x));
    assert_eq!(rows[0].egress, set);
    assert_eq!(rows[0].status, Some(3));

    // Replace with h3 only over v2c; a write naming a port the switch lacks changes nothing.
    let only3: PortSet = [ports[2].unwrap()].into_iter().collect();
    sw2.install(x, &only3).await.expect("replace over v2c");
    let bad: PortSet = [ports[0].unwrap(), 200].into_iter().collect();
    let err = sw2.install(x, &bad).await.unwrap_err();
    assert!(matches!(err, SnmpError::BadValue { .. }), "{err}");
    assert_eq!(sw2.parent_ports(1, x).await.unwrap(), Some(only3));
    lab.send(sender, &x.to_string(), 5003, 5);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count(5003), vec![0, 0, 5]);

    // Delete: nobody gets X; the row and the MDB entries are gone; deleting again is fine.
    sw3.remove(x).await.expect("remove");
    sw3.remove(x).await.expect("remove is idempotent");
    assert_eq!(sw3.parent_ports(1, x).await.unwrap(), None);
    assert!(sw2.static_multicast_rows().await.unwrap().is_empty());
    assert!(lab.static_mdb().iter().all(|(g, _)| !g.starts_with("ff3e")));
    lab.send(sender, &x.to_string(), 5004, 5);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count(5004), vec![0, 0, 0], "X still forwarded after remove");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_give_clear_errors() {
    let mut lab = Lab::new(1);
    lab.start_snmpd(std::path::Path::new(env!(
        "CARGO_BIN_EXE_subcast-qbridge-passpersist"
    )));
    let _ok = connect(v3(&lab)).await;

    let mut bad = v2c(&lab);
    bad.credentials = subcast_snmp::Credentials::V2c {
        community: subcast_snmp::Secret::new("not-the-community"),
    };
    let e = SnmpSwitch::connect(bad).await.unwrap_err();
    assert!(matches!(e, SnmpError::BadCommunity { .. }), "{e}");
    assert!(e.to_string().contains("community"), "{e}");
    assert!(
        !e.to_string().contains("not-the-community"),
        "secret leaked: {e}"
    );

    let e = SnmpSwitch::connect(SnmpConfig::v3_sha_aes(
        lab.address(),
        V3_USER,
        "wrong-auth-pass",
        V3_PRIV,
    ))
    .await
    .unwrap_err();
    assert!(matches!(e, SnmpError::AuthFailed { .. }), "{e}");
    assert_eq!(e.nak_reason(), "snmp authentication failed");

    let e = SnmpSwitch::connect(SnmpConfig::v3_sha_aes(
        lab.address(),
        "nosuchuser",
        V3_AUTH,
        V3_PRIV,
    ))
    .await
    .unwrap_err();
    assert!(matches!(e, SnmpError::AuthFailed { .. }), "{e}");

    let e = SnmpSwitch::connect(SnmpConfig::v3_sha_aes(
        lab.address(),
        V3_USER,
        V3_AUTH,
        "wrong-priv-pass",
    ))
    .await
    .unwrap_err();
    assert!(matches!(e, SnmpError::AuthFailed { .. }), "{e}");
    assert!(e.to_string().contains("privacy password"), "{e}");
    assert!(
        !e.to_string().contains("wrong-priv-pass"),
        "secret leaked: {e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_snmpd_gives_unreachable_and_writes_nothing() {
    let mut lab = Lab::new(2);
    lab.start_snmpd(std::path::Path::new(env!(
        "CARGO_BIN_EXE_subcast-qbridge-passpersist"
    )));
    let sw = connect(v3(&lab)).await;
    let x: Ipv6Addr = "ff3e::2:9".parse().unwrap();
    let set: PortSet = [lab.port_no(&lab.hosts[0].clone())].into_iter().collect();

    // snmpd frozen: every attempt times out.
    lab.signal_snmpd("STOP");
    let t0 = Instant::now();
    let e = sw.install(x, &set).await.unwrap_err();
    let took = t0.elapsed();
    assert!(
        matches!(e, SnmpError::Unreachable { attempts: 2, .. }),
        "{e}"
    );
    assert_eq!(e.nak_reason(), "switch unreachable");
    assert!(
        took >= Duration::from_millis(1000) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // Killed while frozen: the queued SETs die with it and nothing reaches the bridge.
    lab.signal_snmpd("KILL");
    lab.kill_snmpd();
    assert!(lab.static_mdb().iter().all(|(g, _)| !g.starts_with("ff3e")));

    // Nothing listens any more: ICMP port unreachable.
    let e = sw.install(x, &set).await.unwrap_err();
    assert!(
        matches!(e, SnmpError::Refused { .. } | SnmpError::Unreachable { .. }),
        "{e}"
    );
    assert_eq!(e.nak_reason(), "switch unreachable");
    assert!(lab.static_mdb().iter().all(|(g, _)| !g.starts_with("ff3e")));
}

/// net-snmp's own `snmpset` (a second, independent manager) creating rows with the two
/// varbinds in either order, and reading a row that does not exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_accepts_either_varbind_order_from_net_snmp_tools() {
    let mut lab = Lab::new(2);
    lab.start_snmpd(std::path::Path::new(env!(
        "CARGO_BIN_EXE_subcast-qbridge-passpersist"
    )));
    let sw = connect(v2c(&lab)).await;
    let p1 = lab.port_no(&lab.hosts[0]);
    let p2 = lab.port_no(&lab.hosts[1]);
    let bits = |p: u16| format!("{:02x}", 0x80u8 >> (p - 1));
    let base = ".1.3.6.1.2.1.17.7.1.3.2.1";
    let row = |col: u32, last: u8| format!("{base}.{col}.1.51.51.0.3.0.{last}.0");
    let snmpset = |args: &[String]| {
        let mut a: Vec<String> = ["snmpset", "-v2c", "-c", COMMUNITY_RW, &lab.address()]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.extend_from_slice(args);
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        subcast_snmp::testlab::sh(&refs)
    };
    // Egress first, then status.
    snmpset(&[
        row(3, 1),
        "x".into(),
        bits(p1),
        row(5, 1),
        "i".into(),
        "3".into(),
    ]);
    // Status first, then egress.
    snmpset(&[
        row(5, 2),
        "i".into(),
        "3".into(),
        row(3, 2),
        "x".into(),
        bits(p2),
    ]);
    let mdb = lab.static_mdb();
    assert!(mdb.contains(&("ff3e::3:1".into(), "v1".into())), "{mdb:?}");
    assert!(mdb.contains(&("ff3e::3:2".into(), "v2".into())), "{mdb:?}");
    let m1: MacAddr = "33:33:00:03:00:01".parse().unwrap();
    let m2: MacAddr = "33:33:00:03:00:02".parse().unwrap();
    assert_eq!(sw.egress_ports(1, m1).await.unwrap(), Some([p1].into()));
    assert_eq!(sw.egress_ports(1, m2).await.unwrap(), Some([p2].into()));
    // A row that does not exist reads as status invalid(2) (so snmpd lets a SET create it).
    let out = subcast_snmp::testlab::sh(&[
        "snmpget",
        "-v2c",
        "-c",
        COMMUNITY_RW,
        "-On",
        &lab.address(),
        &row(5, 9),
    ]);
    assert!(out.trim().ends_with("INTEGER: 2"), "{out}");
    assert_eq!(
        sw.egress_ports(1, "33:33:00:03:00:09".parse().unwrap())
            .await
            .unwrap(),
        None
    );
    // Other VLANs and receive ports do not exist on an untagged bridge.
    let e = sw.install_mac(7, m1, &[p1].into()).await.unwrap_err();
    assert!(matches!(e, SnmpError::NotWritable { .. }), "{e}");
    // Both rows are listed; deleting them over SNMP empties the MDB of our groups.
    assert_eq!(sw.static_multicast_rows().await.unwrap().len(), 2);
    sw.remove_mac(1, m1).await.unwrap();
    sw.remove_mac(1, m2).await.unwrap();
    assert!(lab.static_mdb().iter().all(|(g, _)| !g.starts_with("ff3e")));
}

/// IPv4 groups (issue 21): the row of an IPv4-mapped group is its 01:00:5e MAC's, and the
/// handler keeps it as IPv4 MDB entries of the bridge; a group outside the handler's IPv4
/// prefix has no row to write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv4_group_rows_are_01_00_5e_rows_and_ipv4_mdb_entries() {
    let mut lab = Lab::new(3);
    lab.start_snmpd(std::path::Path::new(env!(
        "CARGO_BIN_EXE_subcast-qbridge-passpersist"
    )));
    let sw = connect(v2c(&lab)).await;
    let p: Vec<u16> = lab.hosts.iter().map(|h| lab.port_no(h)).collect();
    let x = std::net::Ipv4Addr::new(239, 92, 128, 9).to_ipv6_mapped();
    let set: PortSet = [p[0], p[2]].into_iter().collect();
    sw.install(x, &set).await.expect("install an IPv4 group");
    let mdb = lab.static_mdb();
    assert_eq!(
        mdb.iter().filter(|(g, _)| g == "239.92.128.9").count(),
        2,
        "{mdb:?}"
    );
    assert!(mdb.contains(&("239.92.128.9".into(), lab.hosts[0].bridge_if.clone())));
    assert!(mdb.contains(&("239.92.128.9".into(), lab.hosts[2].bridge_if.clone())));
    let rows = sw.static_multicast_rows().await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].index.mac.to_string(), "01:00:5e:5c:80:09");
    assert_eq!(rows[0].egress, set);
    assert_eq!(sw.parent_ports(1, x).await.unwrap(), Some(set));
    // Replace, then an IPv6 group beside it: each family keeps its own entries.
    sw.install(x, &[p[1]].into()).await.unwrap();
    let y: Ipv6Addr = "ff3e::1:9".parse().unwrap();
    sw.install(y, &[p[0]].into()).await.unwrap();
    let mdb = lab.static_mdb();
    assert!(
        mdb.contains(&("239.92.128.9".into(), lab.hosts[1].bridge_if.clone()))
            && mdb.contains(&("ff3e::1:9".into(), lab.hosts[0].bridge_if.clone()))
            && mdb.len() == 2,
        "{mdb:?}"
    );
    // 239.93.0.1 is outside 239.92.0.0/16: its MAC is no row of this switch.
    let outside = std::net::Ipv4Addr::new(239, 93, 0, 1).to_ipv6_mapped();
    let e = sw.install(outside, &[p[0]].into()).await.unwrap_err();
    assert!(matches!(e, SnmpError::NotWritable { .. }), "{e}");
    sw.remove(x).await.unwrap();
    sw.remove(y).await.unwrap();
    assert!(lab.static_mdb().is_empty(), "{:?}", lab.static_mdb());
    assert!(sw.static_multicast_rows().await.unwrap().is_empty());
}

#[test]
fn credentials_file_is_read_and_never_printed() {
    let dir = std::env::temp_dir().join(format!("subcast-snmp-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("switch.yaml");
    std::fs::write(
        &path,
        "address: \"127.0.0.1:1161\"\ntimeout_ms: 250\nv3:\n  user: ops\n  auth_password: \"s3cret-auth\"\n  priv_protocol: aes256\n  priv_password: \"s3cret-priv\"\n",
    )
    .unwrap();
    let cfg = SnmpConfig::from_file(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(cfg.timeout, Duration::from_millis(250));
    assert!(matches!(
        &cfg.credentials,
        subcast_snmp::Credentials::V3 { user, priv_protocol: subcast_snmp::PrivProtocol::Aes256, .. } if user == "ops"
    ));
    let shown = format!("{cfg:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
    let missing = SnmpConfig::from_file(std::path::Path::new("/nonexistent/switch.yaml"));
    assert!(
        missing
            .unwrap_err()
            .to_string()
            .contains("/nonexistent/switch.yaml")
    );
}

/// Walks span several GETBULK pages; a freeze shorter than timeout x attempts is ridden
/// out by a retry (the late answer to the first attempt goes to a closed socket).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_rows_and_a_short_freeze() {
    let mut lab = Lab::new(2);
    lab.start_snmpd(std::path::Path::new(env!(
        "CARGO_BIN_EXE_subcast-qbridge-passpersist"
    )));
    let sw = connect(v3(&lab)).await;
    let p1 = lab.port_no(&lab.hosts[0]);
    let n = 60u16;
    for i in 0..n {
        let g = Ipv6Addr::new(0xff3e, 0, 0, 0, 0, 0, 5, i);
        sw.install(g, &[p1].into()).await.expect("install");
    }
    let rows = sw.static_multicast_rows().await.expect("walk");
    assert_eq!(rows.len(), usize::from(n));
    assert!(rows.windows(2).all(|w| w[0].index < w[1].index));
    assert_eq!(lab.static_mdb().len(), usize::from(n));

    // Freeze snmpd for 700 ms: attempt 1 (500 ms) times out, attempt 2 succeeds.
    let g = Ipv6Addr::new(0xff3e, 0, 0, 0, 0, 0, 5, 0);
    lab.signal_snmpd("STOP");
    let pid = lab.snmpd_pid().expect("pid");
    let resume = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        subcast_snmp::testlab::sh(&["kill", "-CONT", &pid.to_string()]);
    });
    let t0 = Instant::now();
    sw.remove(g).await.expect("remove survives a short freeze");
    assert!(
        t0.elapsed() >= Duration::from_millis(500),
        "{:?}",
        t0.elapsed()
    );
    resume.join().expect("resume thread");
    assert_eq!(
        sw.egress_ports(1, MacAddr::ipv6_multicast(g))
            .await
            .unwrap(),
        None
    );
    for i in 1..n {
        sw.remove(Ipv6Addr::new(0xff3e, 0, 0, 0, 0, 0, 5, i))
            .await
            .expect("remove");
    }
    assert!(sw.static_multicast_rows().await.unwrap().is_empty());
}
