//! Start cleanup, HELLO until acknowledged, HEARTBEAT, guard sweeps,
//! shutdown.

use super::*;

#[test]
fn start_removes_leftovers_before_hello_and_instructions_wait() {
    let mut st = switch();
    st.groups.insert((0, x(7)), [1].into());
    st.groups
        .insert((0, "ff15::9".parse().unwrap()), [2].into());
    let sw = MemSwitch::new(st);
    let now = Now::new(Instant::now(), 1_800_000_000_000_000);
    let mut agent = Agent::new(
        settings(),
        Arc::new(sw.clone()),
        Keyring::new([ctl_key()]),
        agent_key(),
        Arc::new(Metrics::new()),
        now,
    );
    let clean = agent.poll_action().unwrap();
    assert!(matches!(clean, BackendAction::CleanStart { .. }));
    assert!(
        agent.poll_transmit().is_none(),
        "no HELLO before the cleanup"
    );
    // An instruction during the cleanup waits.
    let mut ctl = Sealer::new(ctl_key(), 9000, now.unix_us);
    agent.handle_datagram(
        &ctl.seal(&set(1, x(1), &[1], 1000), now.unix_us),
        ctl_addr(),
        now,
    );
    assert!(agent.poll_action().is_none());
    agent.on_action_done(clean.id(), sw.execute(&clean), now);
    assert_eq!(
        sw.state().groups.keys().map(|k| k.1).collect::<Vec<_>>(),
        vec!["ff15::9".parse::<Ipv6Addr>().unwrap()],
        "only the range is cleaned"
    );
    let next = agent.poll_action().unwrap();
    assert!(matches!(next, BackendAction::Apply { .. }));
    let hello = agent.poll_transmit().unwrap();
    assert_eq!(hello.to, ctl_addr());
}

#[test]
fn a_failed_cleanup_is_retried_and_holds_hello_back() {
    let mut st = switch();
    st.unreachable = true;
    let mut s = Sim::new(st);
    assert!(s.hellos().is_empty());
    s.advance(Duration::from_secs(3));
    assert!(s.hellos().is_empty());
    s.sw.state().unreachable = false;
    s.advance(RETRY);
    assert_eq!(s.hellos().len(), 1);
    assert!(s.agent.is_running());
}

#[test]
fn hello_is_repeated_until_acknowledged() {
    let mut s = Sim::new(switch());
    let h = s.hellos();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].instance, s.agent.instance());
    assert_eq!(h[0].switch_id, 7);
    assert_eq!(h[0].port_count, 6);
    // Lost HELLOs: 0.5, 1.5, 3.5, 7.5, 12.5 s.
    s.advance(Duration::from_millis(7_600));
    assert_eq!(s.hellos().len(), 5);
    // An acknowledgement of another run does not stop it.
    s.hello_ack(s.agent.instance() + 1);
    s.advance(Duration::from_secs(5));
    assert_eq!(s.hellos().len(), 6);
    s.hello_ack(s.agent.instance());
    assert!(s.agent.hello_acked());
    s.advance(Duration::from_secs(60));
    assert_eq!(s.hellos().len(), 6, "no HELLO after the HELLO_ACK");
    let heartbeats = s
        .sent
        .iter()
        .filter(|(to, m)| *to == ctl_addr() && matches!(m, Message::Heartbeat(_)))
        .count();
    assert!(heartbeats >= 70, "heartbeats every second: {heartbeats}");
    assert_eq!(s.metric("subcast_agent_hello_acked"), 1.0);
}

#[test]
fn heartbeat_reports_groups_and_capacity() {
    let mut st = switch();
    st.capacity = Some(40);
    let mut s = Sim::new(st);
    s.request(&set(1, x(1), &[1], 60_000));
    s.sw.state().capacity = Some(30);
    s.advance(Duration::from_secs(1));
    let hb = s
        .sent
        .iter()
        .rev()
        .find_map(|(_, m)| match m {
            Message::Heartbeat(h) => Some(h.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(hb.installed_groups, 1);
    assert_eq!(hb.table_capacity, 30);
    assert_eq!(s.hellos()[0].table_capacity, 40);
}

#[test]
fn sweep_removes_foreign_groups_in_the_range() {
    let mut cfg = settings();
    cfg.sweep_interval = Some(Duration::from_secs(10));
    let mut s = Sim::with(switch(), cfg);
    s.request(&set(1, x(1), &[1], 600_000));
    s.sw.state().groups.insert((0, x(2)), [3].into());
    s.sw.state()
        .groups
        .insert((0, "ff15::9".parse().unwrap()), [3].into());
    s.advance(Duration::from_millis(9_999));
    assert_eq!(s.sw.state().sweeps, 0);
    s.advance(Duration::from_millis(1));
    assert_eq!(s.sw.state().sweeps, 1);
    let left: Vec<Ipv6Addr> = s.sw.state().groups.keys().map(|k| k.1).collect();
    assert_eq!(left, vec!["ff15::9".parse::<Ipv6Addr>().unwrap(), x(1)]);
    s.advance(Duration::from_secs(10));
    assert_eq!(s.sw.state().sweeps, 2);
}

#[test]
fn shutdown_removes_everything() {
    let mut s = Sim::new(switch());
    s.request(&set(1, x(1), &[1], 60_000));
    s.request(&set(2, x(2), &[2], 60_000));
    s.sw.state()
        .groups
        .insert((0, "ff15::9".parse().unwrap()), [3].into());
    s.agent.shutdown(s.now);
    s.run();
    assert!(s.agent.is_stopped());
    assert_eq!(
        s.on_switch().len(),
        1,
        "only what the agent installed is removed"
    );
    assert!(s.send(&set(3, x(3), &[1], 1000)).is_empty(), "stopped");
}
