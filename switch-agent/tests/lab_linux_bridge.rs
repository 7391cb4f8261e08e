//! The agent on real Linux bridges in network namespaces (needs root).
//!
//! Each test builds its own lab (`subcast-labs`), runs the real
//! `subcast-agent` binary in every switch namespace, plays the controller
//! with a `Sealer`, and counts datagrams with captures in the host
//! namespaces (outside the agent).

mod common;
#[path = "support/ctl.rs"]
mod ctl;

use common::*;
use labs::{Lab, LabOptions, Topology};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};
use subcast_agent::backend::linux_bridge::{LinuxBridge, mdb};
use subcast_agent::backend::{Backend, Lookup};
use subcast_agent::core::action::Change;
use subcast_proto::{Bitmap, Clear, MacAddr, Member, Members, Message, NakReason, SetSubset};

fn lab(file: &str) -> Lab {
    let topo = Topology::from_yaml_file(labs::topology_path(file)).unwrap();
    Lab::build(&topo, LabOptions::default()).unwrap()
}

fn ng0(lab: &Lab) -> Ipv6Addr {
    lab.topology().group_address("NG0").unwrap()
}

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

fn list(lab: &Lab, hosts: &[&str]) -> Members {
    Members::List(
        hosts
            .iter()
            .map(|h| Member::Ipv6(lab.host(h).ipv6))
            .collect(),
    )
}

fn ack_ports(m: &Message) -> u16 {
    match m {
        Message::Ack(a) => a.port_count,
        other => panic!("expected ACK, got {other:?}"),
    }
}

fn nak_reason(m: &Message) -> NakReason {
    match m {
        Message::Nak(n) => n.reason,
        other => panic!("expected NAK, got {other:?}"),
    }
}

/// Sends 100 datagrams to `group` from `from`, returns the count at every host.
fn deliver(lab: &Lab, from: &str, group: Ipv6Addr) -> BTreeMap<String, u64> {
    let hosts: Vec<String> = lab.hosts().keys().cloned().collect();
    let hs: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let (_, counts) = lab
        .count_at(&hs, &format!("dst {group} and dst port 5000"), || {
            lab.send_multicast(from, group, 5000, 100, 64)
        })
        .unwrap();
    counts.into_iter().map(|(h, c)| (h, c.datagrams)).collect()
}

fn expect_delivery(got: &BTreeMap<String, u64>, receivers: &[&str]) {
    for (h, n) in got {
        let want = if receivers.contains(&h.as_str()) {
            100
        } else {
            0
        };
        assert_eq!(
            *n, want,
            "host {h}: got {n} datagrams, want {want}; all: {got:?}"
        );
    }
}

/// Port names toward each member's MAC in the switch's own FDB.
fn fdb_rule(lab: &Lab, switch: &str, members: &[&str]) -> BTreeSet<String> {
    let sw = lab.switch(switch);
    let out = lab
        .exec(&sw.netns, &["bridge", "-j", "fdb", "show", "br", "br0"])
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    members
        .iter()
        .map(|m| {
            let mac = lab.host(m).mac_string();
            v.as_array()
                .unwrap()
                .iter()
                .find(|e| e["mac"].as_str() == Some(mac.as_str()))
                .and_then(|e| e["ifname"].as_str())
                .unwrap_or_else(|| panic!("{m} ({mac}) not in {switch}'s FDB"))
                .to_owned()
        })
        .collect()
}

#[test]
fn one_switch_install_deliver_clear() {
    if !enabled("one_switch_install_deliver_clear") {
        return;
    }
    let lab = lab("one-switch.yaml");
    let mut a = start_agent(&lab, "S", 1, Parents::Configured);
    let x: Ipv6Addr = "ff05::5c:2:1".parse().unwrap();
    let ans = a.request(&set(10, ng0(&lab), x, list(&lab, &["H1", "H3"])));
    assert_eq!(ack_ports(&ans), 2);
    assert_eq!(
        mdb_ports(&lab, "S", x),
        ["h-H1", "h-H3"].map(String::from).into()
    );
    expect_delivery(&deliver(&lab, "H2", x), &["H1", "H3"]);
    // Same txid again: re-ACK, nothing changes.
    assert_eq!(
        ack_ports(&a.request(&set(10, ng0(&lab), x, list(&lab, &["H1", "H3"])))),
        2
    );
    // Another txid replaces (diff: H3 out, H4 in).
    assert_eq!(
        ack_ports(&a.request(&set(11, ng0(&lab), x, list(&lab, &["H1", "H4"])))),
        2
    );
    assert_eq!(
        mdb_ports(&lab, "S", x),
        ["h-H1", "h-H4"].map(String::from).into()
    );
    let ans = a.request(&Message::Clear(Clear { txid: 12, group: x }));
    assert_eq!(ack_ports(&ans), 0);
    assert!(range_entries(&lab, "S").is_empty());
    assert_eq!(a.metric("subcast_agent_installed_groups"), 0.0);
    assert!(
        a.metric("subcast_agent_instructions_total{kind=\"SET_SUBSET\",result=\"ack\"") >= 3.0,
        "{}",
        a.metrics()
    );
}

#[test]
fn seed_three_switches() {
    if !enabled("seed_three_switches") {
        return;
    }
    let lab = lab("seed-three-switch.yaml");
    let mut agents: Vec<AgentProc> = ["A", "B", "C"]
        .iter()
        .enumerate()
        .map(|(i, s)| start_agent(&lab, s, i as u32 + 1, Parents::Configured))
        .collect();
    let subset = ["X1", "X4", "X8"];
    let x: Ipv6Addr = "ff05::5c:2:8".parse().unwrap();
    let xb: Ipv6Addr = "ff05::5c:2:9".parse().unwrap();
    for a in &mut agents {
        let ans = a.request(&set(20, ng0(&lab), x, list(&lab, &subset)));
        let own = fdb_rule(&lab, &a.switch, &subset);
        assert_eq!(
            usize::from(ack_ports(&ans)),
            own.len(),
            "switch {}",
            a.switch
        );
        // The installed set is the rule applied to this switch's own FDB...
        assert_eq!(mdb_ports(&lab, &a.switch, x), own, "switch {}", a.switch);
        // ...which is the seed table's last row for this topology.
        assert_eq!(own, expected_ports(&lab, &a.switch, &subset));
        // The same subset as a BIER bitmap over the configured member order.
        let bm = Members::Bitmap(Bitmap::from_indices([0, 3, 7]).unwrap());
        let ans = a.request(&set(21, ng0(&lab), xb, bm));
        assert_eq!(usize::from(ack_ports(&ans)), own.len());
        assert_eq!(mdb_ports(&lab, &a.switch, xb), own);
    }
    expect_delivery(&deliver(&lab, "X2", x), &subset);
    // The sender is one of the subset: the others get it, it does not.
    expect_delivery(&deliver(&lab, "X1", x), &["X4", "X8"]);
    expect_delivery(&deliver(&lab, "X9", xb), &subset);
}

/// Sends `bad` (which must get no answer), then `good`: the next answer is
/// `good`'s (the agent handles datagrams in order), so `bad` got none.
fn no_answer(a: &mut AgentProc, bad: &[u8], good: &Message, txid: u64) {
    a.send_raw(bad);
    match a.request(good) {
        Message::Ack(x) if x.txid == txid => {}
        Message::Nak(x) if x.txid == txid => {}
        other => panic!("expected the answer to txid {txid} only, got {other:?}"),
    }
}

#[test]
fn refusals_are_counted_and_install_nothing() {
    if !enabled("refusals_are_counted_and_install_nothing") {
        return;
    }
    let lab = lab("one-switch.yaml");
    let mut a = start_agent(&lab, "S", 1, Parents::Configured);
    let y = ng0(&lab);
    let x: Ipv6Addr = "ff05::5c:2:2".parse().unwrap();
    let good = || {
        set(
            30,
            y,
            x,
            Members::List(vec![Member::Ipv6("fd00:5c::1".parse().unwrap())]),
        )
    };
    // A CLEAR of an unknown group: answered (ACK), changes nothing.
    let probe = |txid| {
        Message::Clear(Clear {
            txid,
            group: "ff05::5c:2:ee".parse().unwrap(),
        })
    };

    // Unauthenticated input gets no answer at all.
    // Forged tag: sealed with a key the agent does not have under that id.
    let forged = subcast_proto::Key::from_hex(CTL_KEY_ID, &"3".repeat(64)).unwrap();
    let mut fs = subcast_proto::Sealer::new(forged, 9000, subcast_proto::now_us());
    let bytes = fs.seal(&good(), subcast_proto::now_us());
    no_answer(&mut a, &bytes, &probe(100), 100);
    // Unknown key id.
    let other = subcast_proto::Key::from_hex(77, CTL_KEY).unwrap();
    let mut os = subcast_proto::Sealer::new(other, 9000, subcast_proto::now_us());
    let bytes = os.seal(&good(), subcast_proto::now_us());
    no_answer(&mut a, &bytes, &probe(101), 101);
    // The agent's own key (another agent sharing it) may not instruct.
    let mut peer = subcast_proto::Sealer::new(agent_key(), 2, subcast_proto::now_us());
    let bytes = peer.seal(&good(), subcast_proto::now_us());
    no_answer(&mut a, &bytes, &probe(102), 102);
    // Not a subcast datagram.
    no_answer(
        &mut a,
        b"definitely not a subcast datagram",
        &probe(103),
        103,
    );

    // Authenticated refusals are answered with their reason.
    // Member outside Y.
    let outsider = Members::List(vec![Member::Mac(MacAddr([2, 0x5c, 0, 0, 0, 0x77]))]);
    assert_eq!(
        nak_reason(&a.request(&set(31, y, x, outsider))),
        NakReason::NotASubset
    );
    // Wrong VLAN.
    let mut wrong = good();
    if let Message::SetSubset(s) = &mut wrong {
        s.vlan = 7;
    }
    assert_eq!(nak_reason(&a.request(&wrong)), NakReason::WrongVlan);
    // Unknown parent (neither configured nor in the MDB).
    let unknown = set(32, "ff05::5c:9:9".parse().unwrap(), x, list(&lab, &["H1"]));
    assert_eq!(nak_reason(&a.request(&unknown)), NakReason::UnknownParent);
    // Group outside the rendezvous range.
    let outside = set(33, y, "ff05::5c:3:1".parse().unwrap(), list(&lab, &["H1"]));
    assert_eq!(nak_reason(&a.request(&outside)), NakReason::NotASubset);
    assert!(
        range_entries(&lab, "S").is_empty(),
        "a refusal installed something"
    );
    // Replay: a good instruction, cleared, then replayed byte for byte.
    let bytes = a.seal(&good());
    a.send_raw(&bytes);
    assert_eq!(ack_ports(&a.answer()), 1);
    assert_eq!(
        ack_ports(&a.request(&Message::Clear(Clear { txid: 34, group: x }))),
        0
    );
    no_answer(&mut a, &bytes, &probe(104), 104);
    assert!(
        range_entries(&lab, "S").is_empty(),
        "the replay installed something"
    );

    let m = a.metrics();
    for (reason, n) in [
        ("not-a-subset", 2.0),
        ("wrong-vlan", 1.0),
        ("unknown-parent", 1.0),
    ] {
        let got = a.metric(&format!(
            "subcast_agent_instructions_total{{kind=\"SET_SUBSET\",result=\"nak\",reason=\"{reason}\"}}"
        ));
        assert_eq!(got, n, "{reason}:\n{m}");
    }
    for (reason, n) in [
        ("bad-mac", 1.0),
        // Unknown key id, and the agent's own key (never a controller key).
        ("unknown-key", 2.0),
        ("bad-magic", 1.0),
        ("replay", 1.0),
    ] {
        let got = a.metric(&format!(
            "subcast_agent_refused_datagrams_total{{reason=\"{reason}\"}}"
        ));
        assert_eq!(got, n, "{reason}:\n{m}");
    }
    // One log line for the first refusal; the rest are summarized.
    let log = a.log_text();
    let lines = log.matches("refused").count();
    assert!(lines <= 2, "{lines} log lines about refusals:\n{log}");
}

#[test]
fn leases_expire_and_restart_leaves_nothing() {
    if !enabled("leases_expire_and_restart_leaves_nothing") {
        return;
    }
    let lab = lab("one-switch.yaml");
    let mut a = start_agent(&lab, "S", 1, Parents::Configured);
    let y = ng0(&lab);
    let x: Ipv6Addr = "ff05::5c:2:3".parse().unwrap();
    let mut short = set(40, y, x, list(&lab, &["H1", "H2"]));
    if let Message::SetSubset(s) = &mut short {
        s.lifetime_ms = 300;
    }
    let t0 = Instant::now();
    assert_eq!(ack_ports(&a.request(&short)), 2);
    assert_eq!(range_entries(&lab, "S").len(), 2);
    while !range_entries(&lab, "S").is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "lease did not expire"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(t0.elapsed() >= Duration::from_millis(300));
    assert_eq!(a.metric("subcast_agent_lease_expiries_total"), 1.0);

    // A crash leaves entries behind; the next start removes them.
    let x2: Ipv6Addr = "ff05::5c:2:4".parse().unwrap();
    assert_eq!(
        ack_ports(&a.request(&set(41, y, x2, list(&lab, &["H3"])))),
        1
    );
    a.stop(nix::sys::signal::Signal::SIGKILL);
    assert_eq!(
        range_entries(&lab, "S").len(),
        1,
        "SIGKILL should leave the entry"
    );
    // A stray entry in the range (e.g. from an older run) goes too; one
    // outside the range stays.
    lab.mdb_add("S", "h-H4", "ff05::5c:2:ff".parse().unwrap())
        .unwrap();
    lab.mdb_add("S", "h-H4", "ff05::5c:3:1".parse().unwrap())
        .unwrap();
    a.spawn(&lab);
    assert!(
        range_entries(&lab, "S").is_empty(),
        "stale entries after restart"
    );
    assert_eq!(
        mdb_ports(&lab, "S", "ff05::5c:3:1".parse().unwrap()).len(),
        1
    );
    // A clean stop removes what the agent installed.
    assert_eq!(
        ack_ports(&a.request(&set(42, y, x2, list(&lab, &["H3"])))),
        1
    );
    a.stop(nix::sys::signal::Signal::SIGTERM);
    assert!(range_entries(&lab, "S").is_empty(), "SIGTERM left entries");
}

#[test]
fn parent_from_mdb_when_not_configured() {
    if !enabled("parent_from_mdb_when_not_configured") {
        return;
    }
    let lab = lab("one-switch.yaml");
    let y: Ipv6Addr = "ff05::5c:1:7".parse().unwrap();
    lab.static_group(y, &["H1", "H2", "H3"]).unwrap();
    let mut a = start_agent(&lab, "S", 1, Parents::None);
    let x: Ipv6Addr = "ff05::5c:2:5".parse().unwrap();
    let mac = |h: &str| Member::Mac(MacAddr(lab.host(h).mac));
    let ans = a.request(&set(50, y, x, Members::List(vec![mac("H1"), mac("H3")])));
    assert_eq!(ack_ports(&ans), 2);
    assert_eq!(
        mdb_ports(&lab, "S", x),
        ["h-H1", "h-H3"].map(String::from).into()
    );
    // H4 is not behind a port of Y.
    let ans = a.request(&set(51, y, x, Members::List(vec![mac("H1"), mac("H4")])));
    assert_eq!(nak_reason(&ans), NakReason::NotASubset);
    // The refused replacement left the previous install alone.
    assert_eq!(
        mdb_ports(&lab, "S", x),
        ["h-H1", "h-H3"].map(String::from).into()
    );
    // A bitmap needs a configured parent.
    let bm = Members::Bitmap(Bitmap::from_indices([0]).unwrap());
    assert_eq!(
        nak_reason(&a.request(&set(52, y, x, bm))),
        NakReason::UnknownParent
    );
}

/// The backend alone, in a switch namespace: its view (FDB and MDB
/// mirrors), apply with a diff, installed.
#[test]
fn backend_against_the_bridge() {
    if !enabled("backend_against_the_bridge") {
        return;
    }
    let lab = lab("one-switch.yaml");
    let y: Ipv6Addr = "ff05::5c:1:7".parse().unwrap();
    lab.static_group(y, &["H1", "H2"]).unwrap();
    let sw = lab.switch("S").clone();
    let hosts = lab.hosts().clone();
    let ns = sw.netns.clone();
    let range: ipnet::Ipv6Net = RANGE.parse().unwrap();
    let hash_max = hash_max(&lab, "S");
    labs::netns::in_netns(&ns, move || {
        rt().block_on(async move {
            let mut b = LinuxBridge::open("br0").await.unwrap();
            let view = b.view();
            assert_eq!(usize::from(view.port_count()), sw.ports.len());
            for h in hosts.values() {
                let p = view.port_toward(0, &Member::Mac(MacAddr(h.mac)));
                let want = sw.port_to_host(&h.name).unwrap().ifindex;
                assert_eq!(p, Lookup::Found(want), "{}", h.name);
                assert_eq!(b.port_name(want), h.switch_port);
            }
            let want: BTreeSet<u32> = ["H1", "H2"]
                .iter()
                .map(|h| sw.port_to_host(h).unwrap().ifindex)
                .collect();
            assert_eq!(view.parent_ports(0, y), Lookup::Found(want.clone()));
            // hash_max minus the groups outside the range (y and the hosts'
            // own groups).
            b.guard_range(range, Default::default());
            let others: std::collections::HashSet<_> = b
                .mdb_entries()
                .await
                .unwrap()
                .into_iter()
                .filter(|e| !matches!(e.addr, mdb::MdbAddr::Ipv6(g) if range.contains(&g)))
                .map(|e| (e.vid, e.addr))
                .collect();
            assert!(others.len() >= 2, "{others:?}");
            assert_eq!(
                view.table_capacity(),
                Some(hash_max - others.len() as u32),
                "{others:?}"
            );
            let x: Ipv6Addr = "ff05::5c:2:77".parse().unwrap();
            b.apply(&[install(x, &want, None)]).await.unwrap();
            let got = b.installed(range).await.unwrap();
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].ports, want);
            let one: BTreeSet<u32> = [sw.port_to_host("H3").unwrap().ifindex].into();
            b.apply(&[install(x, &one, Some(&want))]).await.unwrap();
            assert_eq!(b.installed(range).await.unwrap()[0].ports, one);
            b.apply(&[remove(x, &one)]).await.unwrap();
            b.apply(&[remove(x, &one)]).await.unwrap();
            assert!(b.installed(range).await.unwrap().is_empty());
        });
    })
    .unwrap();
}

/// The bridge's mcast_hash_max, read with iproute2.
fn hash_max(lab: &Lab, switch: &str) -> u32 {
    let out = lab
        .exec(
            &lab.switch(switch).netns,
            &["ip", "-j", "-d", "link", "show", "br0"],
        )
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v[0]["linkinfo"]["info_data"]["mcast_hash_max"]
        .as_u64()
        .unwrap_or_else(|| panic!("no mcast_hash_max in {v}")) as u32
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn install(group: Ipv6Addr, ports: &BTreeSet<u32>, previous: Option<&BTreeSet<u32>>) -> Change {
    Change::Install {
        vlan: 0,
        group,
        ports: ports.clone(),
        previous: previous.cloned(),
    }
}

fn remove(group: Ipv6Addr, ports: &BTreeSet<u32>) -> Change {
    Change::Remove {
        vlan: 0,
        group,
        ports: ports.clone(),
    }
}

/// A host that MLD-joins a rendezvous group it was not chosen for receives
/// none of it: the agent deletes the learned entry at once.
#[test]
fn mld_join_does_not_open_a_rendezvous_group() {
    if !enabled("mld_join_does_not_open_a_rendezvous_group") {
        return;
    }
    let lab = lab("one-switch.yaml");
    // Control: without an agent, a join does add H4's port.
    let xc: Ipv6Addr = "ff05::5c:2:30".parse().unwrap();
    let _c = lab.udp_socket("H4", 5001, &[xc]).unwrap();
    let t0 = Instant::now();
    while !mdb_ports(&lab, "S", xc).contains("h-H4") {
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "control join never learned"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut a = start_agent(&lab, "S", 1, Parents::Configured);
    assert!(
        range_entries(&lab, "S").is_empty(),
        "start left a learned entry"
    );

    let x: Ipv6Addr = "ff05::5c:2:31".parse().unwrap();
    assert_eq!(
        ack_ports(&a.request(&set(60, ng0(&lab), x, list(&lab, &["H1", "H2"])))),
        2
    );
    let reports = || mld_reports_sent(&lab, "H4");
    let before = reports();
    let _j = lab.udp_socket("H4", 5000, &[x]).unwrap();
    // Wait for H4's report (MLDv1 or v2, depending on the querier) and for
    // the agent to remove the entry it made. (A host repeats its report
    // later, up to 10 s with MLDv1; the agent removes that one the same way.)
    let t0 = Instant::now();
    while reports() <= before
        || a.metric("subcast_agent_closed_group_removals_total") < 1.0
        || mdb_ports(&lab, "S", x).contains("h-H4")
    {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "H4 reports {before} -> {}, removals {}, MDB {:?}",
            reports(),
            a.metric("subcast_agent_closed_group_removals_total"),
            mdb_ports(&lab, "S", x)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        mdb_ports(&lab, "S", x),
        ["h-H1", "h-H2"].map(String::from).into()
    );
    expect_delivery(&deliver(&lab, "H3", x), &["H1", "H2"]);
    assert!(a.log_text().contains("closed group"), "{}", a.log_text());
    assert!(
        a.metric("subcast_agent_closed_group_removals_total") >= 1.0,
        "{}",
        a.metrics()
    );
}

/// MLD reports a host sent, v1 and v2 (its namespace's /proc/net/snmp6).
fn mld_reports_sent(lab: &Lab, host: &str) -> u64 {
    let out = lab
        .exec(&lab.host(host).netns, &["cat", "/proc/net/snmp6"])
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    ["Icmp6OutMLDv2Reports", "Icmp6OutGroupMembResponses"]
        .iter()
        .map(|k| {
            text.lines()
                .find_map(|l| l.strip_prefix(k))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or_else(|| panic!("{k} in /proc/net/snmp6"))
        })
        .sum()
}

/// A parent group configured in VLAN 5: instructions for VLAN 5 are
/// applied (on this bridge without VLAN filtering, as VLAN 0 entries);
/// VLAN 0 instructions are refused.
#[test]
fn vlan_of_the_parent_is_enforced() {
    if !enabled("vlan_of_the_parent_is_enforced") {
        return;
    }
    let lab = lab("one-switch.yaml");
    let mut a = start_agent(&lab, "S", 1, Parents::Configured);
    a.stop(nix::sys::signal::Signal::SIGTERM);
    let text = std::fs::read_to_string(&a.config).unwrap();
    std::fs::write(&a.config, text.replace("vlan: 0", "vlan: 5")).unwrap();
    a.spawn(&lab);
    let x: Ipv6Addr = "ff05::5c:2:40".parse().unwrap();
    let m = set(70, ng0(&lab), x, list(&lab, &["H1", "H2"]));
    assert_eq!(nak_reason(&a.request(&m)), NakReason::WrongVlan);
    let Message::SetSubset(mut s) = m else {
        unreachable!()
    };
    s.vlan = 5;
    s.txid = 71;
    assert_eq!(ack_ports(&a.request(&Message::SetSubset(s))), 2);
    expect_delivery(&deliver(&lab, "H3", x), &["H1", "H2"]);
    assert_eq!(
        ack_ports(&a.request(&Message::Clear(Clear { txid: 72, group: x }))),
        0
    );
    assert!(range_entries(&lab, "S").is_empty());
}

/// The sans-I/O core driven directly over the real bridge, with simulated
/// time: its actions run on the real backend; expiry and the
/// retransmission policy without sleeping.
#[test]
fn agent_core_over_a_real_bridge() {
    if !enabled("agent_core_over_a_real_bridge") {
        return;
    }
    use subcast_agent::backend::execute;
    use subcast_agent::core::{Agent, AgentSettings, Now, metrics::Metrics};
    use subcast_proto::{Keyring, Opener, ReplayGuard, Sealer, now_us};
    let lab = lab("one-switch.yaml");
    let cfg_text = config_yaml(&lab, 1, "[::1]:9".parse().unwrap(), Parents::Configured);
    let cfg = subcast_agent::config::Config::parse(&cfg_text, std::path::Path::new("t")).unwrap();
    let ns = lab.switch("S").netns.clone();
    let members = list(&lab, &["H1", "H4"]);
    let parent = ng0(&lab);
    labs::netns::in_netns(&ns, move || {
        rt().block_on(async move {
            let mut b = LinuxBridge::open("br0").await.unwrap();
            let mut now = Now::system();
            let mut agent = Agent::new(
                AgentSettings::from_config(&cfg),
                b.view(),
                Keyring::new([ctl_key()]),
                agent_key(),
                std::sync::Arc::new(Metrics::new()),
                now,
            );
            let ctl_addr: std::net::SocketAddr = "[::1]:9".parse().unwrap();
            let mut ctl = Sealer::new(ctl_key(), 9000, now.unix_us);
            let mut opener = Opener::new(Keyring::new([agent_key()]), ReplayGuard::default());
            // Runs every action on the bridge; returns the answers.
            async fn drive(
                agent: &mut Agent,
                b: &mut LinuxBridge,
                opener: &mut Opener,
                now: Now,
            ) -> Vec<Message> {
                let mut out = Vec::new();
                loop {
                    while let Some(t) = agent.poll_transmit() {
                        let m = opener.open(&t.bytes, now_us()).unwrap().message;
                        if matches!(m, Message::Ack(_) | Message::Nak(_)) {
                            out.push(m);
                        }
                    }
                    let Some(a) = agent.poll_action() else {
                        return out;
                    };
                    let r = execute(b, &a).await;
                    agent.on_action_done(a.id(), r, now);
                }
            }
            drive(&mut agent, &mut b, &mut opener, now).await;
            assert!(agent.is_running());
            let x: Ipv6Addr = "ff05::5c:2:50".parse().unwrap();
            let m = Message::SetSubset(SetSubset {
                txid: 80,
                vlan: 0,
                parent,
                group: x,
                lifetime_ms: 5_000,
                members,
            });
            agent.handle_datagram(&ctl.seal(&m, now.unix_us), ctl_addr, now);
            let ans = drive(&mut agent, &mut b, &mut opener, now).await;
            assert_eq!(ack_ports(&ans[0]), 2);
            let expires = agent.leases().get(&x).unwrap().expires;
            assert_eq!(expires, now.at + Duration::from_secs(5));
            // A retransmission 4 s later (same txid, new sequence): re-ACK,
            // expiry unchanged.
            now = now.after(Duration::from_secs(4));
            agent.handle_datagram(&ctl.seal(&m, now.unix_us), ctl_addr, now);
            let ans = drive(&mut agent, &mut b, &mut opener, now).await;
            assert_eq!(ack_ports(&ans[0]), 2);
            assert_eq!(agent.leases().get(&x).unwrap().expires, expires);
            let of_x = |v: Vec<subcast_agent::backend::linux_bridge::mdb::MdbEntry>| {
                v.into_iter()
                    .filter(|e| {
                        e.addr == subcast_agent::backend::linux_bridge::mdb::MdbAddr::Ipv6(x)
                    })
                    .count()
            };
            now = now.at(expires - Duration::from_millis(1));
            agent.handle_timeout(now);
            drive(&mut agent, &mut b, &mut opener, now).await;
            assert_eq!(of_x(b.mdb_entries().await.unwrap()), 2);
            assert!(agent.poll_timeout().unwrap() <= expires);
            now = now.at(expires);
            agent.handle_timeout(now);
            drive(&mut agent, &mut b, &mut opener, now).await;
            assert_eq!(of_x(b.mdb_entries().await.unwrap()), 0);
            assert!(agent.leases().is_empty());
        });
    })
    .unwrap();
}
