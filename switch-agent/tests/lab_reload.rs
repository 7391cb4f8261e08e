//! SIGHUP on the real agent over a real Linux bridge (needs root): a new
//! controller key and max lifetime apply at once (instructions under the
//! old key are refused, under the new one obeyed); a changed bridge name
//! is refused with a log line naming `backend`; a new controller address
//! gets a HELLO. Installed groups stay in the bridge's MDB throughout.

mod common;
#[path = "support/ctl.rs"]
mod ctl;

use common::*;
use labs::{Lab, LabOptions, Topology};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::net::{Ipv6Addr, UdpSocket};
use std::time::{Duration, Instant};
use subcast_proto::{Key, Member, Members, Message, Sealer, SetSubset, now_us};

const NEW_CTL_KEY: &str = "3333333333333333333333333333333333333333333333333333333333333333";

fn set(txid: u64, parent: Ipv6Addr, group: Ipv6Addr, members: Members) -> Message {
    Message::SetSubset(SetSubset {
        txid,
        vlan: 0,
        parent,
        group,
        lifetime_ms: 60_000,
        members,
    })
}

fn hup(a: &AgentProc) {
    let pid = a.child.as_ref().expect("agent running").pid();
    kill(Pid::from_raw(pid as i32), Signal::SIGHUP).expect("SIGHUP");
}

/// Waits until the agent's log holds `text` `n` times.
fn wait_log(a: &AgentProc, text: &str, n: usize) {
    let t0 = Instant::now();
    while a.log_text().matches(text).count() < n {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no {text:?} (x{n}) in the agent log:\n{}",
            a.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sighup_applies_live_keys_refuses_fixed_ones_and_keeps_groups() {
    if !enabled("sighup_applies_live_keys") {
        return;
    }
    let topo = Topology::from_yaml_file(labs::topology_path("one-switch.yaml")).unwrap();
    let lab = Lab::build(&topo, LabOptions::default()).unwrap();
    let ng0 = lab.topology().group_address("NG0").unwrap();
    let members =
        |hs: &[&str]| Members::List(hs.iter().map(|h| Member::Ipv6(lab.host(h).ipv6)).collect());
    let mut a = start_agent(&lab, "S", 1, Parents::Configured);
    let x: Ipv6Addr = "ff05::5c:2:1".parse().unwrap();
    assert!(matches!(
        a.request(&set(10, ng0, x, members(&["H1", "H3"]))),
        Message::Ack(_)
    ));
    let installed = mdb_ports(&lab, "S", x);
    assert_eq!(installed.len(), 2);
    let original = std::fs::read_to_string(&a.config).unwrap();

    // 1. A new controller key (same id, new file contents) and max lifetime.
    std::fs::write(lab.workdir().join("ctl.key"), NEW_CTL_KEY).unwrap();
    std::fs::write(&a.config, format!("{original}max_lifetime_ms: 30000\n")).unwrap();
    hup(&a);
    wait_log(&a, "config reloaded", 1);
    assert!(a.log_text().contains("max_lifetime_ms"), "{}", a.log_text());
    assert_eq!(mdb_ports(&lab, "S", x), installed, "reload kept the group");
    assert_eq!(
        a.metric("subcast_agent_reloads_total{outcome=\"applied\"}"),
        1.0
    );
    // The old key is refused now: no answer, counted.
    let refused0 = a
        .metrics()
        .lines()
        .filter(|l| l.starts_with("subcast_agent_refused_datagrams_total"))
        .count();
    let y: Ipv6Addr = "ff05::5c:2:2".parse().unwrap();
    let stale = a.seal(&set(11, ng0, y, members(&["H1", "H2"])));
    a.send_raw(&stale);
    let t0 = Instant::now();
    while a
        .metrics()
        .lines()
        .filter(|l| l.starts_with("subcast_agent_refused_datagrams_total"))
        .count()
        <= refused0
    {
        assert!(t0.elapsed() < Duration::from_secs(10), "{}", a.metrics());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(mdb_ports(&lab, "S", y).is_empty(), "old key obeyed");
    // The new key is obeyed.
    a.io.sealer = Sealer::new(
        Key::from_hex(CTL_KEY_ID, NEW_CTL_KEY).unwrap(),
        9001,
        now_us(),
    );
    assert!(matches!(
        a.request(&set(12, ng0, y, members(&["H1", "H2"]))),
        Message::Ack(_)
    ));
    assert_eq!(mdb_ports(&lab, "S", y).len(), 2);

    // 2. A bridge name cannot change live: refused, naming the key.
    let live = std::fs::read_to_string(&a.config).unwrap();
    std::fs::write(&a.config, live.replace("bridge: br0", "bridge: br9")).unwrap();
    hup(&a);
    wait_log(&a, "reload refused", 1);
    assert!(
        a.log_text().contains("`backend` cannot change"),
        "{}",
        a.log_text()
    );
    assert_eq!(
        a.metric("subcast_agent_reloads_total{outcome=\"refused\"}"),
        1.0
    );
    assert_eq!(mdb_ports(&lab, "S", x), installed);
    assert_eq!(mdb_ports(&lab, "S", y).len(), 2);
    // Still obeying the new key: nothing of the refused file applied.
    assert!(matches!(
        a.request(&Message::Clear(subcast_proto::Clear { txid: 13, group: y })),
        Message::Ack(_)
    ));

    // 3. A new controller address: HELLO goes there at once.
    let other = labs::netns::in_netns(&a.netns, || UdpSocket::bind("[::1]:0"))
        .unwrap()
        .unwrap();
    other
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let old_ctl = a.ctl.local_addr().unwrap().to_string();
    let new_ctl = other.local_addr().unwrap().to_string();
    std::fs::write(&a.config, live.replace(&old_ctl, &new_ctl)).unwrap();
    hup(&a);
    wait_log(&a, "config reloaded", 2);
    let mut buf = vec![0u8; 9300];
    let t0 = Instant::now();
    loop {
        let (n, _) = other
            .recv_from(&mut buf)
            .expect("a datagram at the new controller");
        if let Ok(d) = a.opener.open(&buf[..n], now_us())
            && matches!(d.message, Message::Hello(_))
        {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no HELLO at the new address"
        );
    }
    assert_eq!(mdb_ports(&lab, "S", x), installed, "groups kept");
}
