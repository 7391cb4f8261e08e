//! Reload under simulated time: what changes live, what is refused, and
//! that no lease is dropped either way.

use super::*;
use subcast_proto::RefuseReason;

const MS: Duration = Duration::from_millis(1);

fn lease_ids(s: &Sim) -> Vec<u64> {
    let mut v: Vec<u64> = s.e.leases().iter().map(|l| l.id).collect();
    v.sort_unstable();
    v
}

#[test]
fn the_pool_grows_live_and_the_leases_stay() {
    let o = Opts {
        pool: "ff15::5c:1:0/126".into(),
        ..Opts::default()
    };
    let text = config_text(&o);
    let mut s = Sim::new(o);
    let mut held = Vec::new();
    for t in ["h1", "h2", "h3", "h4"] {
        held.push(s.grant(&[t], 30_000).unwrap());
    }
    let e = s.grant(&["h5"], 30_000).unwrap_err();
    assert_eq!(e.reason, RefuseReason::PoolExhausted);
    let before = lease_ids(&s);
    let grown = text.replace(
        "pool: [\"ff15::5c:1:0/126\"]",
        "pool: [\"ff15::5c:1:0/126\", \"ff15::5c:2:0/126\"]",
    );
    let r = s.reload(&grown).unwrap();
    assert!(
        r.changes
            .iter()
            .any(|c| c.contains("pool grows (ff15::5c:2:0/126)")),
        "{r:?}"
    );
    let l = s.grant(&["h5"], 30_000).unwrap();
    assert_eq!(l.group, "ff15::5c:2:0".parse::<Ipv6Addr>().unwrap());
    assert_eq!(lease_ids(&s).len(), 5);
    assert!(before.iter().all(|id| lease_ids(&s).contains(id)));
    // Every old group still forwards and is still found by its targets.
    for h in &held {
        assert!(s.table(1).contains(&h.group));
    }
    assert!(s.grant(&["h1"], 1000).unwrap().reused);
    // Any other pool change is refused, naming the key.
    let moved = text.replace("ff15::5c:1:0/126", "ff15::5c:9:0/126");
    let e = s.reload(&moved).unwrap_err();
    assert_eq!(e[0].key, "vlans[10].pool", "{e:?}");
    assert!(e[0].reason.contains("only growth"));
}

#[test]
fn what_cannot_change_live_is_refused_and_nothing_is_applied() {
    let o = Opts::default();
    let text = config_text(&o);
    let mut s = Sim::new(o);
    let l = s.grant(&["h1", "h2"], 30_000).unwrap();
    let changed = text
        .replace(
            "udp_listen: \"127.0.0.1:0\"",
            "udp_listen: \"127.0.0.1:7411\"",
        )
        .replace("id: 1\n  udp_listen", "id: 2\n  udp_listen")
        .replace("warm_ms: 10000", "warm_ms: 5");
    let cfg0 = s.e.config().clone();
    let e = s.reload(&changed).unwrap_err();
    let keys: Vec<&str> = e.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["controller.id", "controller.udp_listen"], "{e:?}");
    assert!(e[1].reason.contains("bound when the controller starts"));
    assert!(Arc::ptr_eq(s.e.config(), &cfg0), "nothing applied");
    assert_eq!(s.e.config().warm, Duration::from_millis(10_000));
    assert_eq!(s.e.leases()[0].id, l.id);
    // The same file without the fixed keys applies.
    let ok = text.replace("warm_ms: 10000", "warm_ms: 5");
    let r = s.reload(&ok).unwrap();
    assert_eq!(r.changes, vec!["leases.warm_ms: 10000 -> 5"]);
}

#[test]
fn a_lower_budget_evicts_warm_groups_never_live_ones() {
    let o = Opts {
        budget: Some(6),
        warm_ms: 60_000,
        ..Opts::default()
    };
    let text = config_text(&o);
    let mut s = Sim::new(o);
    let live: Vec<_> = ["h1", "h2"]
        .iter()
        .map(|t| s.grant(&[t], 30_000).unwrap())
        .collect();
    for t in ["h3", "h4", "h5"] {
        let l = s.grant(&[t], 30_000).unwrap();
        s.release(l.id, "node");
    }
    assert_eq!(s.table(1).len(), 5);
    let r = s.reload(&text.replace("budget: 6", "budget: 3")).unwrap();
    assert!(
        r.changes
            .iter()
            .any(|c| c.contains("2 warm and 0 pre-enumerated groups evicted")),
        "{r:?}"
    );
    s.run(20 * MS);
    assert_eq!(s.table(1).len(), 3);
    assert!(s.e.budgets().iter().all(|b| b.used == 3 && b.limit == 3));
    // Below what the live groups hold: the warm one goes, the live stay,
    // and no new group until they end.
    let r = s.reload(&text.replace("budget: 6", "budget: 1")).unwrap();
    assert!(
        r.changes.iter().any(|c| c.contains("still over by 1")),
        "{r:?}"
    );
    s.run(20 * MS);
    let t1 = s.table(1);
    assert_eq!(t1.len(), 2);
    assert!(live.iter().all(|l| t1.contains(&l.group)));
    assert_eq!(lease_ids(&s).len(), 2);
    assert_eq!(
        s.grant(&["h6"], 1000).unwrap_err().reason,
        RefuseReason::TableFull
    );
    let hit = s.grant(&["h1"], 1000).unwrap();
    assert!(hit.reused, "hits still work");
    for l in live.iter().chain([&hit]) {
        s.release(l.id, "node");
    }
    // Both warm now: one is evicted to make room for a new one.
    let l = s.grant(&["h6"], 1000).unwrap();
    assert!(!l.reused);
    s.run(20 * MS);
    assert_eq!(s.table(1), vec![l.group]);
}

#[test]
fn an_added_switch_gets_every_installed_group_of_its_vlan() {
    let o = Opts::default();
    let text = config_text(&o);
    let mut s = Sim::new(o);
    let l = s.grant(&["h1", "h2"], 30_000).unwrap();
    s.add_agent(4);
    let four = text.replace(
        "groups:\n",
        &format!(
            "  - {{ name: s4, id: 4, vlans: [10], agent: {{ address: \"{}\", key_id: 1 }} }}\ngroups:\n",
            agent_addr(4)
        ),
    );
    let r = s.reload(&four).unwrap();
    assert!(
        r.changes
            .iter()
            .any(|c| c.contains("switch s4 (id 4) added")),
        "{r:?}"
    );
    let g = s.e.group(l.group).unwrap();
    assert_eq!(g.switches.len(), 4);
    assert!(!g.agree, "s4 does not hold it yet");
    assert_eq!(g.switches[3].problem.as_deref(), Some("not installed"));
    s.run(5 * MS);
    assert!(s.table(4).is_empty(), "waits for the agent's HELLO");
    s.hello(4, 1, 0);
    s.run(5 * MS);
    assert_eq!(s.table(4), vec![l.group]);
    let g = s.e.group(l.group).unwrap();
    assert!(g.agree, "{g:#?}");
    assert_eq!(g.switches[3].ack.unwrap().purpose, fanout::Purpose::Repush);
    assert!(s.grant(&["h1", "h2"], 1000).unwrap().reused);
    let m = s.grant(&["h3"], 1000).unwrap();
    assert_eq!(m.switches, vec![1, 2, 3, 4]);
    assert!(s.table(4).contains(&m.group));
    assert_eq!(s.e.budgets()[3].used, 2);
    // Removing it while it holds groups is refused.
    let e = s.reload(&text).unwrap_err();
    assert_eq!(e[0].key, "switches[s4]");
}

#[test]
fn parent_groups_and_members_change_without_dropping_a_lease() {
    let o = Opts {
        warm_ms: 0,
        ..Opts::default()
    };
    let text = config_text(&o);
    let mut s = Sim::new(o);
    let keep = s.grant(&["h2", "h3"], 30_000).unwrap();
    let gone = s.grant(&["h1"], 30_000).unwrap();
    // h1 leaves chunks-0 (members renumbered), chunks-9 is added.
    let h1 = "      - { name: h1, ipv6: \"fd00:5c::101\", mac: \"02:5c:00:00:01:01\" }\n";
    assert!(text.contains(h1));
    let new = text.replace(h1, "").replace(
        "leases:",
        "  - name: chunks-9\n    vlan: 10\n    parent: \"ff15::5c:0:9\"\n    members:\n      - { name: h1, ipv6: \"fd00:5c::101\", mac: \"02:5c:00:00:01:01\" }\nleases:",
    );
    let r = s.reload(&new).unwrap();
    assert!(
        r.changes
            .iter()
            .any(|c| c.contains("parent group chunks-9")),
        "{r:?}"
    );
    assert!(
        r.changes
            .iter()
            .any(|c| c.contains("1 rendezvous groups no longer match")),
        "{r:?}"
    );
    assert_eq!(lease_ids(&s).len(), 2, "no lease dropped");
    // The renumbered group is still found by its targets.
    let again = s.grant(&["h2", "h3"], 1000).unwrap();
    assert!(again.reused);
    assert_eq!(again.group, keep.group);
    assert!(s.e.group(gone.group).unwrap().tainted);
    assert_eq!(
        s.grant(&["h1"], 1000).unwrap_err().reason,
        RefuseReason::NotAMember
    );
    // The tainted group is cleared when its lease ends; h1 is reachable
    // through the new parent group.
    s.release(gone.id, "node");
    s.run(20 * MS);
    assert!(!s.table(1).contains(&gone.group));
    let h = s.e.leases().len();
    assert_eq!(h, 2);
}
