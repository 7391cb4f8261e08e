//! Loss, refusals, silence, spoofed answers, agent restarts, clients that
//! go away, and the UDP path.

use super::*;
use subcast_proto::{GrantOutcome, Member, RefuseReason, RendezvousRelease, RendezvousRequest};

const MS: Duration = Duration::from_millis(1);

#[test]
fn lost_instructions_are_sent_again_with_the_same_txid() {
    let mut s = Sim::new(Opts::default());
    s.agent(2).behaviour = Behaviour::LoseFirst(2);
    let l = s.grant(&["h1"], 5000).unwrap();
    let txids: Vec<u64> = s
        .agent(2)
        .received
        .iter()
        .filter_map(|m| m.txid())
        .collect();
    assert_eq!(txids.len(), 3, "two lost, the third answered");
    assert!(txids.iter().all(|t| *t == txids[0]));
    assert_eq!(s.table(2), vec![l.group]);
    assert_eq!(s.agent(1).count("SET_SUBSET"), 1);
}

#[test]
fn a_nak_refuses_names_the_switch_and_clears_the_others() {
    let mut s = Sim::new(Opts::default());
    s.agent(3).behaviour = Behaviour::Nak(NakReason::NotASubset);
    let e = s.grant(&["h1", "h2"], 5000).unwrap_err();
    assert_eq!(e.reason, RefuseReason::AgentRefused);
    assert!(
        e.detail.contains("s3") && e.detail.contains("not-a-subset"),
        "{}",
        e.detail
    );
    assert!(e.switch.unwrap().starts_with("s3"));
    s.run(10 * MS);
    assert_eq!(s.all_tables(), vec![Vec::<Ipv6Addr>::new(); 3]);
    assert_eq!(s.agent(1).count("CLEAR"), 1);
    assert_eq!(
        s.agent(3).count("CLEAR"),
        0,
        "a NAK means nothing was installed"
    );
    assert_eq!(s.e.pool_in_use(10), 0);
    assert!(s.e.leases().is_empty());
}

#[test]
fn a_table_full_nak_is_a_table_full_refusal() {
    let mut s = Sim::new(Opts::default());
    s.agent(2).capacity = Some(0);
    let e = s.grant(&["h1"], 5000).unwrap_err();
    assert_eq!(e.reason, RefuseReason::TableFull);
    assert!(e.switch.unwrap().starts_with("s2"));
}

#[test]
fn a_silent_agent_is_named_and_whoever_may_have_applied_gets_a_clear() {
    let mut s = Sim::new(Opts::default());
    s.agent(1).behaviour = Behaviour::Silent;
    let t0 = s.now;
    let e = s.grant(&["h4"], 5000).unwrap_err();
    assert_eq!(e.reason, RefuseReason::AgentUnreachable);
    assert!(
        e.detail.contains("s1") && e.detail.contains("did not answer 4 sends"),
        "{}",
        e.detail
    );
    assert!(s.now - t0 < Duration::from_millis(200), "10+20+40+80 ms");
    assert_eq!(s.agent(1).count("SET_SUBSET"), 4);
    s.run(500 * MS);
    assert_eq!(s.table(2), Vec::<Ipv6Addr>::new());
    assert_eq!(s.agent(2).count("CLEAR"), 1);
    assert!(
        s.agent(1).count("CLEAR") >= 1,
        "the silent one may have applied it"
    );
    assert!(s.e.leases().is_empty());
    // Its address is held until the silent agent surely dropped it.
    assert_eq!(s.e.pool_in_use(10), 1);
    s.run(Duration::from_secs(25));
    assert_eq!(s.e.pool_in_use(10), 0);
}

#[test]
fn spoofed_or_stray_naks_are_ignored() {
    let mut s = Sim::new(Opts::default());
    s.agent(2).behaviour = Behaviour::LoseFirst(1);
    let h = s.ask(&["h1"], 5000, "node");
    s.run(Duration::from_micros(10));
    // The SET to s2 is outstanding; guess its txid from what s1 got.
    let txid = s.agent(1).received[0].txid().unwrap();
    let nak = |sw: u32| {
        Message::Nak(Nak {
            txid,
            switch_id: sw,
            reason: NakReason::NotASubset,
            detail: "spoofed".into(),
        })
    };
    // From the wrong address (s1's socket speaking for s2):
    let b = s.sealed_by_agent(2, &nak(2));
    s.inject(agent_addr(1), b);
    // Sealed with no known key:
    let other = Key::from_hex(1, &"77".repeat(32)).unwrap();
    let b = Sealer::new(other, 2, 1).seal(&nak(2), 1_800_000_000_000_000);
    s.inject(agent_addr(2), b);
    // A txid never sent to that agent:
    let stray = Message::Nak(Nak {
        txid: txid + 1000,
        switch_id: 2,
        reason: NakReason::NotASubset,
        detail: "stray".into(),
    });
    let b = s.sealed_by_agent(2, &stray);
    s.inject(agent_addr(2), b);
    let l = s.answer(h).unwrap();
    assert_eq!(s.all_tables(), vec![vec![l.group]; 3]);
    let m = s.e.metrics.encode();
    for r in ["agent-address", "bad-mac", "unexpected-answer"] {
        assert!(m.contains(r), "{r} counted:\n{m}");
    }
}

#[test]
fn a_client_that_goes_away_leaks_nothing() {
    let mut s = Sim::new(Opts {
        warm_ms: 0,
        ..Opts::default()
    });
    s.agent(2).behaviour = Behaviour::LoseFirst(2);
    let h = s.ask(&["h6"], 200, "node");
    // The client is gone: nobody reads the answer.
    s.run(100 * MS);
    s.replies.remove(&h);
    assert_eq!(s.e.leases().len(), 1, "the grant ran to completion");
    assert_eq!(s.e.leases()[0].state, crate::leases::LeaseState::Live);
    s.run(200 * MS);
    assert!(s.e.leases().is_empty(), "and expired");
    assert_eq!(s.all_tables(), vec![Vec::<Ipv6Addr>::new(); 3]);
    assert_eq!(s.e.pool_in_use(10), 0);
}

#[test]
fn a_pending_lease_that_outlives_its_lifetime_is_refused_and_cleared() {
    let mut s = Sim::new(Opts {
        warm_ms: 0,
        ..Opts::default()
    });
    s.agent(3).behaviour = Behaviour::LoseFirst(3);
    let e = s.grant(&["h6"], 20).unwrap_err();
    assert_eq!(e.reason, RefuseReason::AgentUnreachable, "{e:?}");
    s.run(200 * MS);
    assert!(s.e.leases().is_empty());
    assert_eq!(s.all_tables(), vec![Vec::<Ipv6Addr>::new(); 3]);
    assert_eq!(s.e.pool_in_use(10), 0);
}

#[test]
fn hello_is_acknowledged_and_a_new_instance_gets_its_groups_again() {
    let mut s = Sim::new(Opts::default());
    for i in 1..=3 {
        s.hello(i, 1, 0);
    }
    let a = s.grant(&["h1"], 30_000).unwrap();
    let b = s.grant(&["h2"], 30_000).unwrap();
    s.release(b.id, "node");
    assert_eq!(s.agent(2).hello_acks, vec![1]);
    // The same instance again (its HELLO_ACK was lost): acknowledged only.
    s.hello(2, 1, 0);
    s.run(5 * MS);
    assert_eq!(s.agent(2).hello_acks, vec![1, 1]);
    assert_eq!(s.agent(2).items().len(), 2, "nothing pushed again");
    // Restarted: empty table, new instance.
    s.agent(2).table.clear();
    s.hello(2, 2, 0);
    s.run(5 * MS);
    assert_eq!(s.agent(2).hello_acks, vec![1, 1, 2]);
    let mut want = vec![a.group, b.group];
    want.sort();
    assert_eq!(s.table(2), want, "live and warm groups are back");
    assert!(matches!(s.agent(2).received.last(), Some(Message::Batch(b)) if b.items.len() == 2));
    assert_eq!(s.agent(1).items().len(), 2, "only the restarted agent");
}

#[test]
fn binary_rendezvous_over_udp_with_retransmissions_and_release() {
    let mut s = Sim::new(Opts::default());
    let rq = Message::RendezvousRequest(RendezvousRequest {
        request_id: 42,
        vlan: 10,
        parent: "ff15::5c:0:1".parse().unwrap(),
        lifetime_ms: 0,
        targets: vec![Member::Ipv6("fd00:5c::101".parse().unwrap())],
    });
    s.node_say(&rq);
    s.node_say(&rq);
    s.run(5 * MS);
    let grants: Vec<GrantOutcome> = s
        .udp_answers
        .iter()
        .filter_map(|m| match m {
            Message::RendezvousGrant(g) => Some(g.outcome.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        grants.len(),
        1,
        "a retransmission while in progress is not answered twice"
    );
    s.node_say(&rq);
    let g2 = match s.udp_answers.last() {
        Some(Message::RendezvousGrant(g)) => g.outcome.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(g2, grants[0], "the same answer, not a second lease");
    assert_eq!(s.e.leases().len(), 1);
    let GrantOutcome::Granted {
        lease_id, reused, ..
    } = grants[0]
    else {
        panic!()
    };
    assert!(!reused);
    assert_eq!(s.e.leases()[0].requester, "udp:key 2/node 77");
    // Another node (another sender id) may not release it.
    let mut other = Sealer::new(Key::from_hex(2, NODE_KEY).unwrap(), 78, 1);
    let b = other.seal(
        &Message::RendezvousRelease(RendezvousRelease { lease_id }),
        1_800_000_000_000_000 + 10_000,
    );
    let from = s.node_addr;
    s.inject(from, b);
    assert!(matches!(s.udp_answers.last(), Some(Message::ReleaseAck(a)) if !a.released));
    s.node_say(&Message::RendezvousRelease(RendezvousRelease { lease_id }));
    assert!(matches!(s.udp_answers.last(), Some(Message::ReleaseAck(a)) if a.released));
}
