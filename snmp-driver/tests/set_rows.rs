//! Several rows in one SET (`SnmpSwitch::set_rows`) and the prefix walk
//! (`static_multicast_rows_in`) against real snmpd + the handler on a netns bridge.
//! Delivery is counted outside, by tcpdump in the host namespaces. Needs root.
//! Run: `cargo test -p subcast-snmp --test set_rows`.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};
use subcast_snmp::testlab::{COMMUNITY_RW, Lab, V3_AUTH, V3_PRIV, V3_USER};
use subcast_snmp::{MacAddr, PortSet, RowChange, SnmpConfig, SnmpError, SnmpSwitch};

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

fn set(g: Ipv6Addr, ports: &[u16]) -> RowChange {
    RowChange::Set {
        vlan: 1,
        mac: MacAddr::ipv6_multicast(g),
        ports: ports.iter().copied().collect(),
    }
}

fn del(g: Ipv6Addr) -> RowChange {
    RowChange::Delete {
        vlan: 1,
        mac: MacAddr::ipv6_multicast(g),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_set_changes_forwarding_of_every_row_and_a_bad_row_changes_nothing() {
    let mut lab = Lab::new(4);
    lab.start_snmpd(std::path::Path::new(env!(
        "CARGO_BIN_EXE_subcast-qbridge-passpersist"
    )));
    let mut cfg = SnmpConfig::v3_sha_aes(lab.address(), V3_USER, V3_AUTH, V3_PRIV);
    cfg.timeout = Duration::from_millis(1000);
    let sw = connect(cfg).await;
    let hosts = lab.hosts.clone();
    let p: Vec<u16> = hosts.iter().map(|h| lab.port_no(h)).collect();
    let (receivers, sender) = hosts.split_at(3);
    let sender = &sender[0];
    let files: Vec<_> = receivers.iter().map(|h| lab.capture(h)).collect();
    lab.wait_querier(sender, &files);
    let count = |port: u16| -> Vec<usize> { files.iter().map(|f| lab.count(f, port)).collect() };
    let send_all = |groups: &[Ipv6Addr], base: u16| {
        for (i, g) in groups.iter().enumerate() {
            lab.send(sender, &g.to_string(), base + i as u16, 3);
        }
        // tcpdump writes each packet at once (-U); the socat sends above have returned.
        std::thread::sleep(Duration::from_millis(300));
    };

    let x: Ipv6Addr = "ff3e::d:1".parse().unwrap();
    let y: Ipv6Addr = "ff3e::d:2".parse().unwrap();
    let z: Ipv6Addr = "ff3e::d:3".parse().unwrap();
    let other: Ipv6Addr = "ff3e::e:1".parse().unwrap();

    // One SET PDU with three rows: every row forwards, to exactly its ports.
    let out = sw
        .set_rows(&[
            set(x, &[p[0], p[1]]),
            set(y, &[p[2]]),
            set(z, &[p[0], p[2]]),
        ])
        .await
        .expect("three rows in one SET");
    assert_eq!((out.rows, out.pdus), (3, 1));
    send_all(&[x, y, z], 7000);
    assert_eq!(count(7000), vec![3, 3, 0], "x");
    assert_eq!(count(7001), vec![0, 0, 3], "y");
    assert_eq!(count(7002), vec![3, 0, 3], "z");

    // A bad row in the middle (port 200 does not exist): refused with the row named, and
    // nothing of the PDU stays: x keeps its ports, y is not deleted, w is not created.
    let w: Ipv6Addr = "ff3e::d:4".parse().unwrap();
    let e = sw
        .set_rows(&[
            set(x, &[p[2]]),
            set(w, &[p[0], 200]),
            del(y),
            set(z, &[p[1]]),
        ])
        .await
        .unwrap_err();
    assert_eq!(e.row, Some(1), "{e}");
    assert_eq!(e.rows_applied, 0);
    assert!(matches!(e.source, SnmpError::BadValue { .. }), "{e}");
    assert!(e.to_string().contains("row 1"), "{e}");
    send_all(&[x, y, z, w], 7100);
    assert_eq!(count(7100), vec![3, 3, 0], "x unchanged");
    assert_eq!(count(7101), vec![0, 0, 3], "y still there");
    assert_eq!(count(7102), vec![3, 0, 3], "z unchanged");
    assert_eq!(count(7103), vec![0, 0, 0], "w not created");

    // Sets and deletes together: x moves to h3, y is deleted, z unchanged.
    sw.set_rows(&[set(x, &[p[2]]), del(y)])
        .await
        .expect("mixed");
    send_all(&[x, y], 7200);
    assert_eq!(count(7200), vec![0, 0, 3], "x moved");
    assert_eq!(count(7201), vec![0, 0, 0], "y deleted");

    // The prefix walk returns exactly the rows under 33:33:00:0d, not the other one.
    sw.install(other, &[p[0]].into()).await.expect("other row");
    let rows = sw
        .static_multicast_rows_in(1, &[0x33, 0x33, 0x00, 0x0d])
        .await
        .expect("prefix walk");
    let got: Vec<(MacAddr, PortSet)> = rows
        .iter()
        .map(|r| (r.index.mac, r.egress.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (MacAddr::ipv6_multicast(x), [p[2]].into()),
            (MacAddr::ipv6_multicast(z), [p[0], p[2]].into()),
        ]
    );
    assert!(
        rows.iter()
            .all(|r| r.status == Some(3) && r.index.vlan == 1)
    );
    assert_eq!(
        sw.static_multicast_rows_in(1, &[0x33, 0x33])
            .await
            .unwrap()
            .len(),
        3
    );
    assert!(
        sw.static_multicast_rows_in(2, &[0x33, 0x33])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        sw.static_multicast_rows_in(1, &[0x33, 0x33, 0x00, 0x0f])
            .await
            .unwrap()
            .is_empty()
    );
    let e = sw.static_multicast_rows_in(1, &[0; 7]).await.unwrap_err();
    assert!(matches!(e, SnmpError::InvalidRequest(_)), "{e}");

    // Refused before sending: the same row twice, a port a PortList cannot carry.
    let e = sw.set_rows(&[set(x, &[p[0]]), del(x)]).await.unwrap_err();
    assert_eq!(e.row, Some(1));
    assert!(matches!(e.source, SnmpError::InvalidRequest(_)), "{e}");
    let e = sw.set_rows(&[set(x, &[0])]).await.unwrap_err();
    assert_eq!(e.row, Some(0));
    send_all(&[x], 7300);
    assert_eq!(count(7300), vec![0, 0, 3], "x untouched by refused calls");
}

/// Hundreds of rows: one PDU as long as it fits, split by size above
/// `MAX_SET_BYTES`; the listing sees them all, and deleting them in one call empties the
/// bridge of our groups.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_rows_in_one_call() {
    let mut lab = Lab::new(2);
    lab.start_snmpd(std::path::Path::new(env!(
        "CARGO_BIN_EXE_subcast-qbridge-passpersist"
    )));
    let mut cfg = SnmpConfig::v2c(lab.address(), COMMUNITY_RW);
    cfg.timeout = Duration::from_secs(10);
    let sw = connect(cfg).await;
    let p1 = lab.port_no(&lab.hosts[0]);
    let groups = |n: u16, hi: u16| -> Vec<Ipv6Addr> {
        (0..n)
            .map(|i| Ipv6Addr::new(0xff3e, 0, 0, 0, 0, 0, hi, i))
            .collect()
    };
    let sets = |gs: &[Ipv6Addr]| -> Vec<RowChange> { gs.iter().map(|g| set(*g, &[p1])).collect() };
    let ours = |lab: &Lab| {
        lab.static_mdb()
            .iter()
            .filter(|(g, _)| g.starts_with("ff3e"))
            .count()
    };

    // 300 rows (about 16 KB): one SET PDU.
    let a = groups(300, 0x0f);
    let out = sw.set_rows(&sets(&a)).await.expect("300 rows");
    assert_eq!((out.rows, out.pdus), (300, 1));
    assert_eq!(ours(&lab), 300);

    // 800 more (more than MAX_SET_BYTES as estimated): split in two SETs, all applied.
    let b = groups(800, 0x10);
    let out = sw.set_rows(&sets(&b)).await.expect("800 rows");
    assert_eq!((out.rows, out.pdus), (800, 2));
    assert_eq!(ours(&lab), 1100);

    let listed = sw
        .static_multicast_rows_in(1, &[0x33, 0x33, 0x00, 0x0f])
        .await
        .expect("walk");
    assert_eq!(listed.len(), 300);
    assert!(listed.iter().all(|r| r.egress == PortSet::from([p1])));

    let deletes: Vec<RowChange> = a.iter().chain(&b).map(|g| del(*g)).collect();
    let out = sw.set_rows(&deletes).await.expect("delete 1100 rows");
    assert!(out.pdus >= 1);
    assert_eq!(ours(&lab), 0);
}
