//! Re-push after a port changes state (`core/repush.rs`): live groups follow
//! the forwarding ports without a new instruction.

use super::*;

fn installed_at(s: &mut Sim, group: Ipv6Addr, hosts: &[u8]) {
    let a = s.request(&set(1, group, hosts, 60_000));
    assert!(matches!(a, Message::Ack(_)), "{a:?}");
}

#[test]
fn a_member_behind_a_new_port_moves_the_group() {
    let mut s = Sim::new(switch());
    installed_at(&mut s, x(1), &[1, 2]);
    assert_eq!(s.on_switch()[&x(1)], [1, 2]);
    // Port 2 stops forwarding; h2 is learned behind port 3 (the new tree).
    {
        let mut st = s.sw.state();
        st.blocked.insert(2);
        st.fdb.insert(mac(2), 3);
    }
    let before = s.applies();
    s.agent.on_topology_change(s.now);
    s.run();
    assert_eq!(s.on_switch()[&x(1)], [1, 3]);
    assert_eq!(s.applies(), before + 1);
    assert_eq!(s.metric("subcast_agent_topology_repushes_total"), 1.0);
    assert_eq!(s.agent.leases().get(&x(1)).unwrap().ports, [1, 3].into());
    // Nothing changed since: no switch operation.
    s.agent.on_topology_change(s.now);
    s.run();
    assert_eq!(s.applies(), before + 1);
    assert_eq!(s.metric("subcast_agent_topology_events_total"), 2.0);
}

#[test]
fn a_member_not_learned_yet_keeps_the_old_ports_that_still_forward() {
    let mut s = Sim::new(switch());
    installed_at(&mut s, x(1), &[1, 2, 3]);
    // The bridge flushed h1 and h2; port 2 is blocked, port 1 still forwards.
    {
        let mut st = s.sw.state();
        st.fdb.remove(&mac(1));
        st.fdb.remove(&mac(2));
        st.blocked.insert(2);
    }
    s.agent.on_topology_change(s.now);
    s.run();
    // Port 2 never stays; port 1 is kept until h1 is placed again.
    assert_eq!(s.on_switch()[&x(1)], [1, 3]);
    // Learned again behind port 4: the next re-push completes the group.
    s.sw.state().fdb.insert(mac(1), 4);
    s.sw.state().fdb.insert(mac(2), 4);
    s.agent.on_topology_change(s.now);
    s.run();
    assert_eq!(s.on_switch()[&x(1)], [3, 4]);
}

#[test]
fn a_blocked_port_is_never_installed_by_a_new_instruction() {
    let mut s = Sim::new(switch());
    s.sw.state().blocked.insert(2);
    let a = s.request(&set(1, x(1), &[1, 2], 60_000));
    match a {
        Message::Nak(n) => assert_eq!(n.reason, NakReason::NotASubset),
        other => panic!("want a NAK, got {other:?}"),
    }
    assert!(s.on_switch().is_empty());
}
