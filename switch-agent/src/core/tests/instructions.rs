//! SET_SUBSET and CLEAR: expiry, retransmission, refresh, replace, lookups.

use super::*;

#[test]
fn set_installs_and_the_lease_expires_on_time() {
    let mut s = Sim::new(switch());
    assert_eq!(ack_count(&s.request(&set(10, x(1), &[1, 3], 5_000)), 10), 2);
    assert_eq!(s.on_switch(), [(x(1), vec![1, 3])].into());
    assert_eq!(s.agent.poll_timeout().map(|t| t > s.now.at), Some(true));
    s.advance(Duration::from_millis(4_999));
    assert_eq!(s.on_switch().len(), 1, "still installed at 4.999 s");
    s.advance(Duration::from_millis(1));
    assert!(s.on_switch().is_empty(), "removed at 5 s");
    assert!(s.agent.leases().is_empty());
    assert_eq!(s.metric("subcast_agent_lease_expiries_total"), 1.0);
}

#[test]
fn retransmission_gets_the_same_answer_and_applies_nothing() {
    let mut s = Sim::new(switch());
    let m = set(10, x(1), &[1, 2], 5_000);
    assert_eq!(ack_count(&s.request(&m), 10), 2);
    let applies = s.applies();
    s.advance(Duration::from_secs(4));
    // Sealed again (new sequence number): same ACK, no switch operation,
    // and the expiry is not extended.
    assert_eq!(ack_count(&s.request(&m), 10), 2);
    assert_eq!(s.applies(), applies);
    s.advance(Duration::from_secs(1));
    assert!(
        s.on_switch().is_empty(),
        "expired at 5 s despite the retransmission"
    );
    // A late retransmission after the group is gone does not bring it back.
    assert_eq!(ack_count(&s.request(&m), 10), 2);
    assert!(s.on_switch().is_empty());
    assert_eq!(
        s.applies(),
        applies + 1,
        "only the expiry touched the switch"
    );
}

#[test]
fn same_ports_new_txid_extends_without_touching_the_switch() {
    let mut s = Sim::new(switch());
    assert_eq!(ack_count(&s.request(&set(10, x(1), &[1, 2], 5_000)), 10), 2);
    let applies = s.applies();
    s.advance(Duration::from_secs(4));
    // Same members by MAC this time: the same port set.
    let by_mac = Message::SetSubset(SetSubset {
        txid: 11,
        vlan: 0,
        parent: Y.parse().unwrap(),
        group: x(1),
        lifetime_ms: 5_000,
        members: Members::List(vec![Member::Mac(mac(2)), Member::Mac(mac(1))]),
    });
    assert_eq!(ack_count(&s.request(&by_mac), 11), 2);
    assert_eq!(s.applies(), applies, "a refresh is not a switch operation");
    assert_eq!(s.metric("subcast_agent_lease_refreshes_total"), 1.0);
    s.advance(Duration::from_secs(2));
    assert_eq!(
        s.on_switch().len(),
        1,
        "the refresh moved the expiry to 9 s"
    );
    s.advance(Duration::from_secs(3));
    assert!(s.on_switch().is_empty());
}

#[test]
fn other_ports_replace_with_the_previous_set_given() {
    let mut s = Sim::new(switch());
    s.request(&set(10, x(1), &[1, 2], 60_000));
    assert_eq!(
        ack_count(&s.request(&set(11, x(1), &[1, 3], 60_000)), 11),
        2
    );
    assert_eq!(s.on_switch(), [(x(1), vec![1, 3])].into());
    let last = s.actions.last().unwrap().clone();
    let BackendAction::Apply { changes, .. } = last else {
        panic!("{last:?}")
    };
    assert_eq!(
        changes,
        vec![action::Change::Install {
            vlan: 0,
            group: x(1),
            ports: [1, 3].into(),
            previous: Some([1, 2].into()),
        }]
    );
}

#[test]
fn another_vlan_removes_then_installs() {
    let mut st = settings();
    st.parents = Parents::new(&[]);
    let mut sw = switch();
    sw.parents.insert((5, Y2.parse().unwrap()), [5, 6].into());
    let mut s = Sim::with(sw, st);
    let mk = |txid, vlan| {
        Message::SetSubset(SetSubset {
            txid,
            vlan,
            parent: Y2.parse().unwrap(),
            group: x(2),
            lifetime_ms: 60_000,
            members: Members::List(vec![Member::Mac(mac(5))]),
        })
    };
    assert_eq!(ack_count(&s.request(&mk(1, 0)), 1), 1);
    assert_eq!(ack_count(&s.request(&mk(2, 5)), 2), 1);
    let BackendAction::Apply { changes, .. } = s.actions.last().unwrap().clone() else {
        panic!()
    };
    assert!(matches!(changes[0], action::Change::Remove { vlan: 0, .. }));
    assert!(matches!(
        changes[1],
        action::Change::Install {
            vlan: 5,
            previous: None,
            ..
        }
    ));
    assert_eq!(
        s.sw.state().groups.keys().collect::<Vec<_>>(),
        vec![&(5, x(2))]
    );
}

#[test]
fn clear_removes_and_clear_of_unknown_is_acked_without_switch_operation() {
    let mut s = Sim::new(switch());
    s.request(&set(10, x(1), &[1, 2], 60_000));
    assert_eq!(ack_count(&s.request(&clear(11, x(1))), 11), 0);
    assert!(s.on_switch().is_empty());
    let applies = s.applies();
    assert_eq!(ack_count(&s.request(&clear(12, x(9))), 12), 0);
    assert_eq!(s.applies(), applies);
}

#[test]
fn refusals_install_nothing() {
    let mut s = Sim::new(switch());
    // h5 is not a member of Y.
    let (r, d) = nak(&s.request(&set(1, x(1), &[1, 5], 1000)), 1);
    assert_eq!(r, NakReason::NotASubset, "{d}");
    // Outside the rendezvous range.
    let bad = set(2, "ff15::99".parse().unwrap(), &[1], 1000);
    assert_eq!(nak(&s.request(&bad), 2).0, NakReason::NotASubset);
    // A member of Y the switch cannot place.
    s.sw.state().fdb.remove(&mac(4));
    assert_eq!(
        nak(&s.request(&set(3, x(1), &[1, 4], 1000)), 3).0,
        NakReason::NotASubset
    );
    // An unknown parent.
    let mut m = set(4, x(1), &[1], 1000);
    if let Message::SetSubset(s) = &mut m {
        s.parent = "ff15::77".parse().unwrap();
    }
    assert_eq!(nak(&s.request(&m), 4).0, NakReason::UnknownParent);
    assert!(s.on_switch().is_empty());
    assert_eq!(s.applies(), 0);
    assert_eq!(
        s.metric("subcast_agent_instructions_total{kind=\"SET_SUBSET\",result=\"nak\",reason=\"not-a-subset\"}"),
        3.0
    );
}

#[test]
fn parent_from_the_switch_when_not_configured() {
    let mut s = Sim::new(switch());
    let m = |txid, members| {
        Message::SetSubset(SetSubset {
            txid,
            vlan: 0,
            parent: Y2.parse().unwrap(),
            group: x(3),
            lifetime_ms: 60_000,
            members,
        })
    };
    let ok = Members::List(vec![Member::Mac(mac(6))]);
    assert_eq!(ack_count(&s.request(&m(1, ok)), 1), 1);
    let outside = Members::List(vec![Member::Mac(mac(1))]);
    assert_eq!(nak(&s.request(&m(2, outside)), 2).0, NakReason::NotASubset);
    assert_eq!(s.on_switch(), [(x(3), vec![6])].into());
}

/// A view that cannot answer (an SNMP cache) is refreshed once, then the
/// instruction is planned again; what is still unknown is absent.
#[test]
fn unknown_lookups_refresh_once() {
    let mut st = switch();
    st.stale = true;
    let late = st.fdb.remove(&mac(3)).unwrap();
    st.fdb_on_refresh.insert(mac(3), late);
    let mut s = Sim::new(st);
    assert_eq!(ack_count(&s.request(&set(1, x(1), &[1, 3], 60_000)), 1), 2);
    assert_eq!(s.sw.state().refreshes, 1);
    assert!(
        matches!(s.actions[1], BackendAction::Refresh { .. }),
        "{:?}",
        s.actions
    );
    // Still unknown after a refresh: refused, one refresh only.
    s.sw.state().stale = true;
    s.sw.state().fdb.remove(&mac(4));
    assert_eq!(
        nak(&s.request(&set(2, x(2), &[4], 60_000)), 2).0,
        NakReason::NotASubset
    );
    assert_eq!(s.sw.state().refreshes, 2);
}

#[test]
fn backend_failure_is_a_nak_and_the_lease_stays_as_it_was() {
    let mut s = Sim::new(switch());
    s.request(&set(1, x(1), &[1, 2], 60_000));
    s.sw.state().fail_groups.insert(x(1));
    let (r, d) = nak(&s.request(&set(2, x(1), &[3], 60_000)), 2);
    assert_eq!(r, NakReason::BackendError, "{d}");
    assert_eq!(s.agent.leases().get(&x(1)).unwrap().txid, 1);
    assert_eq!(s.on_switch(), [(x(1), vec![1, 2])].into());
    s.sw.state().unreachable = true;
    let (r, d) = nak(&s.request(&set(3, x(2), &[3], 60_000)), 3);
    assert_eq!(r, NakReason::BackendError);
    assert!(d.contains("unreachable"), "{d}");
}

/// Instructions arriving while the backend works wait their turn, in
/// order; a retransmission of one in progress is answered once, when done.
#[test]
fn one_action_at_a_time_in_order() {
    let mut s = Sim::new(switch());
    s.hold = true;
    assert!(s.send(&set(1, x(1), &[1, 2], 60_000)).is_empty());
    assert!(s.send(&set(2, x(1), &[3], 60_000)).is_empty());
    assert!(
        s.send(&set(1, x(1), &[1, 2], 60_000)).is_empty(),
        "in progress"
    );
    assert_eq!(s.held.len(), 1, "one action in the backend");
    s.complete();
    assert_eq!(
        s.held.len(),
        1,
        "the second instruction starts after the first"
    );
    let BackendAction::Apply { changes, .. } = s.held[0].clone() else {
        panic!()
    };
    assert!(
        matches!(&changes[0], action::Change::Install { previous: Some(p), .. } if *p == [1, 2].into())
    );
    s.complete();
    let acks: Vec<u64> = s
        .sent
        .iter()
        .filter_map(|(_, m)| match m {
            Message::Ack(a) => Some(a.txid),
            _ => None,
        })
        .collect();
    assert_eq!(acks, vec![1, 2]);
    assert_eq!(s.on_switch(), [(x(1), vec![3])].into());
}

#[test]
fn a_failed_expiry_is_retried_and_others_still_go() {
    let mut s = Sim::new(switch());
    s.request(&set(1, x(1), &[1], 1_000));
    s.request(&set(2, x(2), &[2], 1_000));
    s.sw.state().fail_groups.insert(x(1));
    s.advance(Duration::from_millis(1_000));
    assert_eq!(
        s.on_switch().keys().copied().collect::<Vec<_>>(),
        vec![x(1)]
    );
    s.sw.state().fail_groups.clear();
    s.advance(Duration::from_millis(999));
    assert_eq!(s.on_switch().len(), 1, "retried 1 s after the failure");
    s.advance(Duration::from_millis(1));
    assert!(s.on_switch().is_empty());
    assert_eq!(s.metric("subcast_agent_lease_expiries_total"), 2.0);
}
