//! Linux bridge: batches all or nothing against the real kernel, the add
//! over a learned entry, the guard after lost notifications, the capacity
//! and HELLO until acknowledged (needs root).

mod common;
#[path = "support/ctl.rs"]
mod ctl;

use common::*;
use labs::{Lab, LabOptions, Topology};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};
use subcast_agent::backend::Backend;
use subcast_agent::backend::linux_bridge::LinuxBridge;
use subcast_agent::core::action::Change;
use subcast_proto::{Batch, BatchItem, HelloAck, Member, Members, Message, NakReason};

fn lab() -> Lab {
    let topo = Topology::from_yaml_file(labs::topology_path("one-switch.yaml")).unwrap();
    Lab::build(&topo, LabOptions::default()).unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn g(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// Group -> (port name, state) of the switch's MDB inside the test range.
fn mdb(lab: &Lab) -> BTreeMap<Ipv6Addr, BTreeSet<(String, String)>> {
    let mut out: BTreeMap<Ipv6Addr, BTreeSet<(String, String)>> = BTreeMap::new();
    for e in range_entries(lab, "S") {
        out.entry(e.group).or_default().insert((e.port, e.state));
    }
    out
}

fn perm(ports: &[&str]) -> BTreeSet<(String, String)> {
    ports
        .iter()
        .map(|p| (p.to_string(), "permanent".to_string()))
        .collect()
}

/// A batch whose last add names a port that vanished (its veth deleted
/// after the plan was made): the kernel refuses that add after accepting
/// the others, and the backend undoes them, deletes included.
#[test]
fn batch_is_undone_when_a_port_vanished() {
    if !enabled("batch_is_undone_when_a_port_vanished") {
        return;
    }
    let lab = lab();
    let sw = lab.switch("S").clone();
    let port = |h: &str| sw.port_to_host(h).unwrap().ifindex;
    let (p1, p2, p3, p4) = (port("H1"), port("H2"), port("H3"), port("H4"));
    let (x0, x1, x2) = (g("ff05::5c:2:a0"), g("ff05::5c:2:a1"), g("ff05::5c:2:a2"));
    let ns = sw.netns.clone();
    let gone = sw.port_to_host("H4").unwrap().name.clone();
    labs::netns::in_netns(&ns, move || {
        rt().block_on(async move {
            let mut b = LinuxBridge::open("br0").await.unwrap();
            b.apply(&[Change::Install {
                vlan: 0,
                group: x0,
                ports: [p1, p2].into(),
                previous: None,
            }])
            .await
            .unwrap();
            let st = std::process::Command::new("ip")
                .args(["link", "del", &gone])
                .status()
                .unwrap();
            assert!(st.success());
            let changes = vec![
                Change::Install {
                    vlan: 0,
                    group: x1,
                    ports: [p1, p2].into(),
                    previous: None,
                },
                Change::Install {
                    vlan: 0,
                    group: x0,
                    ports: [p3].into(),
                    previous: Some([p1, p2].into()),
                },
                Change::Install {
                    vlan: 0,
                    group: x2,
                    ports: [p3, p4].into(),
                    previous: None,
                },
            ];
            let e = b.apply(&changes).await.unwrap_err();
            assert_eq!(e.change, Some(2), "{e:?}");
            assert!(!e.uncertain, "{e:?}");
            assert!(
                e.error.to_string().contains(&format!("ifindex {p4}")),
                "{e:?}"
            );
        });
    })
    .unwrap();
    assert_eq!(
        mdb(&lab),
        [(x0, perm(&["h-H1", "h-H2"]))].into(),
        "x1 and x2 added then removed, x0's ports deleted then restored"
    );
}

/// A host's MLD report created the entry (temporary) before the agent adds
/// the same port: the agent's add replaces it, so the entry is permanent and
/// neither expires nor counts as learned.
#[test]
fn add_over_an_mld_learned_entry_makes_it_permanent() {
    if !enabled("add_over_an_mld_learned_entry_makes_it_permanent") {
        return;
    }
    let lab = lab();
    let sw = lab.switch("S").clone();
    let x = g("ff05::5c:2:b0");
    let (p1, p2) = (
        sw.port_to_host("H1").unwrap().ifindex,
        sw.port_to_host("H2").unwrap().ifindex,
    );
    let out = lab
        .exec(
            &sw.netns,
            &[
                "bridge",
                "mdb",
                "add",
                "dev",
                "br0",
                "port",
                "h-H1",
                "grp",
                "ff05::5c:2:b0",
                "temp",
            ],
        )
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        mdb(&lab)[&x],
        [("h-H1".to_string(), "temp".to_string())].into()
    );
    labs::netns::in_netns(&sw.netns, move || {
        rt().block_on(async move {
            let mut b = LinuxBridge::open("br0").await.unwrap();
            b.apply(&[Change::Install {
                vlan: 0,
                group: x,
                ports: [p1, p2].into(),
                previous: None,
            }])
            .await
            .unwrap();
        });
    })
    .unwrap();
    assert_eq!(mdb(&lab)[&x], perm(&["h-H1", "h-H2"]));
}

/// A burst of learned entries overflows the notification socket (ENOBUFS):
/// the guard reads the whole MDB again and removes them all.
#[test]
fn guard_resyncs_after_lost_notifications() {
    if !enabled("guard_resyncs_after_lost_notifications") {
        return;
    }
    let lab = lab();
    let sw = lab.switch("S").clone();
    let dir = lab.workdir().to_owned();
    let range: ipnet::Ipv6Net = RANGE.parse().unwrap();
    labs::netns::in_netns(&sw.netns, move || {
        rt().block_on(async move {
            // The smallest receive buffer the kernel allows.
            let mut b = LinuxBridge::open_with("br0", Some(1)).await.unwrap();
            let removed = prometheus_client::metrics::counter::Counter::default();
            b.guard_range(range, removed.clone());
            // 300 learned entries while the runtime cannot read (this
            // thread blocks in the command).
            let mut cmds = String::new();
            for i in 0..300u32 {
                let port = ["h-H1", "h-H2", "h-H3", "h-H4"][i as usize % 4];
                cmds.push_str(&format!(
                    "mdb add dev br0 port {port} grp ff05::5c:2:{:x} temp\n",
                    0x1000 + i
                ));
            }
            let file = dir.join("burst.batch");
            std::fs::write(&file, cmds).unwrap();
            let out = std::process::Command::new("bridge")
                .args(["-batch", file.to_str().unwrap()])
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            let t0 = Instant::now();
            loop {
                let left = b
                    .mdb_entries()
                    .await
                    .unwrap()
                    .into_iter()
                    .filter(|e| {
                        matches!(e.addr, subcast_agent::backend::linux_bridge::mdb::MdbAddr::Ipv6(a) if range.contains(&a))
                    })
                    .count();
                if left == 0 && b.resyncs() > 0 {
                    break;
                }
                assert!(
                    t0.elapsed() < Duration::from_secs(10),
                    "{left} learned entries left, {} resyncs",
                    b.resyncs()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert!(removed.get() >= 300, "every learned entry counted: {}", removed.get());
        });
    })
    .unwrap();
}

fn batch_ack(m: &Message, txid: u64) -> Vec<u16> {
    match m {
        Message::BatchAck(b) if b.txid == txid => b.port_counts.clone(),
        other => panic!("expected BATCH_ACK of {txid}, got {other:?}"),
    }
}

/// HELLO is repeated until a HELLO_ACK of this run; it reports the bridge's
/// capacity (hash_max minus the groups others hold), which a configured
/// table_capacity lowers, and the agent refuses batches beyond it.
#[test]
fn hello_until_acked_capacity_and_table_full() {
    if !enabled("hello_until_acked_capacity_and_table_full") {
        return;
    }
    let lab = lab();
    let mut a = start_agent(&lab, "S", 1, Parents::Configured);
    // The first HELLO was read by start_agent; the second comes ~0.5 s later.
    let hello = a.recv_until("second HELLO", |m| match m {
        Message::Hello(h) => Some(h),
        _ => None,
    });
    assert_eq!(a.metric("subcast_agent_hello_sent_total"), 2.0);
    let ack = Message::HelloAck(HelloAck {
        switch_id: 1,
        instance: hello.instance,
    });
    let b = a.seal(&ack);
    a.send_raw(&b);
    // The third HELLO would be due 1 s after the second: two heartbeats (1 s
    // apart) pass without one.
    let mut heartbeats = Vec::new();
    while heartbeats.len() < 2 {
        match a.recv().unwrap() {
            Message::Heartbeat(h) => heartbeats.push(h),
            Message::Hello(_) => panic!("HELLO after HELLO_ACK"),
            _ => {}
        }
    }
    assert_eq!(a.metric("subcast_agent_hello_acked"), 1.0);
    assert_eq!(a.metric("subcast_agent_hello_sent_total"), 2.0);
    assert!(hello.table_capacity > 0);
    assert_eq!(
        heartbeats[1].table_capacity,
        a.metric("subcast_agent_table_capacity") as u32
    );

    // Lower it by configuration: 2 groups.
    a.stop(nix::sys::signal::Signal::SIGTERM);
    let text = std::fs::read_to_string(&a.config).unwrap();
    std::fs::write(&a.config, format!("{text}table_capacity: 2\n")).unwrap();
    a.spawn(&lab);
    let y = lab.topology().group_address("NG0").unwrap();
    let one = |group: &str| BatchItem::Set {
        vlan: 0,
        parent: y,
        group: g(group),
        lifetime_ms: 60_000,
        members: Members::List(vec![Member::Ipv6(lab.host("H1").ipv6)]),
    };
    let three = Message::Batch(Batch {
        txid: 1,
        items: vec![
            one("ff05::5c:2:c1"),
            one("ff05::5c:2:c2"),
            one("ff05::5c:2:c3"),
        ],
    });
    match a.request(&three) {
        Message::Nak(n) => {
            assert_eq!(n.reason, NakReason::TableFull, "{n:?}");
            assert!(n.detail.contains("capacity is 2"), "{n:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(mdb(&lab).is_empty());
    let two = Message::Batch(Batch {
        txid: 2,
        items: vec![one("ff05::5c:2:c1"), one("ff05::5c:2:c2")],
    });
    assert_eq!(batch_ack(&a.request(&two), 2), vec![1, 1]);
    assert_eq!(mdb(&lab).len(), 2);
    let hb = a.recv_until("HEARTBEAT", |m| match m {
        Message::Heartbeat(h) => Some(h),
        _ => None,
    });
    assert_eq!(hb.table_capacity, 2);
    assert_eq!(hb.installed_groups, 2);
}
