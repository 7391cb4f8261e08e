//! Which datagrams reach the core: unauthenticated input is counted, never
//! answered; only the controller keys and (if set) sources may instruct.

use super::*;
use subcast_proto::{Origin, seal};

#[test]
fn unauthenticated_input_gets_no_answer_and_is_counted() {
    let mut s = Sim::new(switch());
    let good = set(1, x(1), &[1], 1000);
    let from = ctl_addr();
    // Garbage.
    for _ in 0..50 {
        assert!(
            s.deliver(b"definitely not a subcast datagram", from)
                .is_empty()
        );
    }
    // A forged tag under the controller's key id.
    let mut forger = Sealer::new(Key::new(CTL_KEY_ID, [9; 32]), 9000, s.now.unix_us);
    assert!(
        s.deliver(&forger.seal(&good, s.now.unix_us), from)
            .is_empty()
    );
    // An unknown key id.
    let mut other = Sealer::new(Key::new(77, [1; 32]), 9000, s.now.unix_us);
    assert!(
        s.deliver(&other.seal(&good, s.now.unix_us), from)
            .is_empty()
    );
    // A replay of an accepted instruction.
    let bytes = s.ctl.seal(&good, s.now.unix_us);
    assert_eq!(s.deliver(&bytes, from).len(), 1);
    s.request(&clear(2, x(1)));
    assert!(s.deliver(&bytes, from).is_empty(), "replay not answered");
    // Sequence poisoning under the controller's sender id.
    let poison = seal(
        &ctl_key(),
        Origin {
            key_id: CTL_KEY_ID,
            sender_id: 9000,
            sequence: u64::MAX,
            timestamp_us: s.now.unix_us,
        },
        &set(3, x(2), &[1], 1000),
    );
    assert!(s.deliver(&poison, from).is_empty());
    assert_eq!(
        ack_count(&s.request(&set(4, x(2), &[1], 1000)), 4),
        1,
        "not poisoned"
    );
    assert!(s.on_switch().contains_key(&x(2)));
    assert_eq!(s.agent.leases().get(&x(2)).unwrap().txid, 4);
    let n = |r: &str| {
        s.metric(&format!(
            "subcast_agent_refused_datagrams_total{{reason=\"{r}\"}}"
        ))
    };
    assert_eq!(n("bad-magic") + n("truncated"), 50.0);
    assert_eq!(n("bad-mac"), 1.0);
    assert_eq!(n("unknown-key"), 1.0);
    assert_eq!(n("replay"), 1.0);
    assert_eq!(n("sequence-ahead"), 1.0);
    // Replay state for the controller alone: nothing refused made a window.
    assert_eq!(s.metric("subcast_agent_replay_senders"), 1.0);
    // Nothing refused reached the instruction counters.
    assert_eq!(
        s.metric("subcast_agent_instructions_total{kind=\"UNDECODABLE\""),
        0.0
    );
}

/// The agent's own key never opens instructions: agents sharing a key (a
/// common deployment shortcut) must not be able to instruct each other.
#[test]
fn another_agent_cannot_instruct() {
    let mut s = Sim::new(switch());
    let mut peer = Sealer::new(agent_key(), 8, s.now.unix_us);
    let m = set(1, x(1), &[1], 1000);
    assert!(
        s.deliver(&peer.seal(&m, s.now.unix_us), ctl_addr())
            .is_empty()
    );
    assert!(s.on_switch().is_empty());
}

#[test]
fn only_configured_sources_may_instruct() {
    let mut cfg = settings();
    cfg.controller_sources = vec!["fd00::100/128".parse().unwrap()];
    let mut s = Sim::with(switch(), cfg);
    let m = set(1, x(1), &[1], 1000);
    let bytes = s.ctl.seal(&m, s.now.unix_us);
    let elsewhere: SocketAddr = "[fd00::66]:7411".parse().unwrap();
    assert!(s.deliver(&bytes, elsewhere).is_empty());
    assert_eq!(
        s.metric("subcast_agent_refused_datagrams_total{reason=\"source\"}"),
        1.0
    );
    assert_eq!(ack_count(&s.request(&m), 1), 1);
}

/// An authenticated message that is not an instruction is answered (it
/// authenticated) with NAK malformed.
#[test]
fn authenticated_non_instructions_are_naked() {
    let mut s = Sim::new(switch());
    let m = Message::Heartbeat(Heartbeat {
        switch_id: 1,
        installed_groups: 0,
        uptime_s: 0,
        table_capacity: 0,
    });
    let (r, d) = nak(&s.request(&m), 0);
    assert_eq!(r, NakReason::Malformed);
    assert!(d.contains("HEARTBEAT"), "{d}");
}
