//! What the status API shows: per-switch ACKs of each group, whether the
//! switches agree, and the refusal log.

use super::*;
use subcast_proto::RefuseReason;

const MS: Duration = Duration::from_millis(1);

fn status(s: &Sim, g: Ipv6Addr) -> GroupStatus {
    s.e.group(g).expect("group known")
}

#[test]
fn every_switch_acked_the_install_and_agrees() {
    let mut s = Sim::new(Opts::default());
    let l = s.grant(&["h1", "h4"], 5000).unwrap();
    let g = status(&s, l.group);
    assert_eq!(g.state, "live");
    assert_eq!(g.generation, 1);
    assert!(g.agree, "{g:#?}");
    assert_eq!(g.switches.len(), 3);
    let mut txids = Vec::new();
    for p in &g.switches {
        let a = p.ack.expect("acked");
        assert_eq!(p.state, "installed");
        assert_eq!(a.purpose, fanout::Purpose::Install);
        assert_eq!(
            a.ports, 2,
            "the simulated agent installs one port per target"
        );
        assert_eq!(a.generation, 1);
        assert_eq!(p.first_ports, Some(2));
        assert!(p.problem.is_none() && p.in_flight.is_none());
        txids.push(a.txid);
    }
    // Each agent has its own transaction for the same group.
    txids.sort_unstable();
    txids.dedup();
    assert_eq!(txids.len(), 3);
}

#[test]
fn a_refresh_moves_every_switch_to_the_next_round() {
    let mut s = Sim::new(Opts {
        warm_ms: 1000,
        hold_ms: 2000,
        ..Opts::default()
    });
    let a = s.grant(&["h5"], 1000).unwrap();
    let first: Vec<u64> = status(&s, a.group)
        .switches
        .iter()
        .map(|p| p.ack.unwrap().txid)
        .collect();
    s.run(1500 * MS);
    assert!(s.grant(&["h5"], 1000).unwrap().reused);
    s.run(50 * MS);
    let g = status(&s, a.group);
    assert_eq!(g.generation, 2);
    assert!(g.agree, "{g:#?}");
    for (p, old) in g.switches.iter().zip(first) {
        let ack = p.ack.unwrap();
        assert_eq!(ack.purpose, fanout::Purpose::Refresh);
        assert_eq!(ack.generation, 2);
        assert_ne!(ack.txid, old);
    }
}

#[test]
fn a_switch_that_misses_a_refresh_or_changes_its_ports_is_flagged() {
    let mut s = Sim::new(Opts {
        warm_ms: 1000,
        hold_ms: 2000,
        ..Opts::default()
    });
    let a = s.grant(&["h2", "h3"], 1000).unwrap();
    // s2's forwarding table changes: its next ACK counts 1 port, not 2.
    s.agent(2).ports_override = Some(1);
    s.run(1500 * MS);
    assert!(s.grant(&["h2", "h3"], 1000).unwrap().reused);
    s.run(50 * MS);
    let g = status(&s, a.group);
    assert!(!g.agree);
    let p2 = &g.switches[1];
    assert!(
        p2.problem
            .as_deref()
            .unwrap()
            .contains("1 ports now and 2 at first"),
        "{p2:#?}"
    );
    assert!(g.switches[0].problem.is_none() && g.switches[2].problem.is_none());
    s.e.update_gauges(s.now);
    let text = s.e.metrics.encode();
    assert!(
        text.contains("subcast_controller_groups_disagreeing 1"),
        "{text}"
    );

    // s3 goes silent: it misses the next refresh.
    s.agent(3).behaviour = Behaviour::Silent;
    s.run(1500 * MS);
    let h = s.ask(&["h2", "h3"], 1000, "node");
    s.run(2000 * MS);
    let _ = s.replies.remove(&h);
    let g = status(&s, a.group);
    assert!(g.tainted, "{g:#?}");
    let p3 = &g.switches[2];
    assert_eq!(p3.state, "lingering", "{p3:#?}");
    assert!(p3.problem.as_deref().unwrap().contains("did not answer"));
}

#[test]
fn refusals_are_kept_with_who_asked_for_what() {
    let mut s = Sim::new(Opts::default());
    let e = s.grant(&["h1", "nobody"], 1000).unwrap_err();
    assert_eq!(e.reason, RefuseReason::NotAMember);
    s.agent(3).behaviour = Behaviour::Nak(subcast_proto::NakReason::TableFull);
    let e = s.grant(&["h2"], 1000).unwrap_err();
    assert_eq!(e.reason, RefuseReason::TableFull);
    let r = s.e.refusals();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].reason, "not-a-member");
    assert_eq!(r[0].requester, "node");
    assert_eq!(r[0].parent, "chunks-0");
    assert_eq!(r[0].targets, vec!["h1", "nobody"]);
    assert_eq!(r[1].reason, "table-full");
    assert!(r[1].switch.as_deref().unwrap().starts_with("s3"));
    assert_eq!(
        r[1].targets,
        vec!["h2"],
        "from the lease it would have been"
    );
    for _ in 0..(crate::engine::inspect::REFUSALS_KEPT + 5) {
        s.grant(&["x"], 1000).unwrap_err();
    }
    assert_eq!(s.e.refusals().len(), crate::engine::inspect::REFUSALS_KEPT);
}
