//! The agent's behaviour, one suite for every backend (needs root).
//!
//! Each behaviour is one function taking the backend; [`for_each_backend!`]
//! makes a `#[test]` per backend (`<behaviour>_linux_bridge`, `_openflow`,
//! `_snmp`). Every test builds the seed three-switch lab (A: X1 X2; B: X3-X6;
//! C: X7-X9; trunks A-B, B-C; parent group NG0 = all nine hosts) with that
//! backend's switches, runs one real `subcast-agent` per switch, plays the
//! controller through `subcast_proto::Sealer` over UDP, and counts datagrams
//! with captures in the host namespaces (outside agents and switches). Where
//! each process runs is described in `behaviour/harness.rs`.

#[path = "support/ctl.rs"]
mod ctl;
#[path = "behaviour/harness.rs"]
mod harness;

use harness::*;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};
use subcast_proto::{Clear, Key, MacAddr, Member, Members, Message, NakReason, Sealer, now_us};

/// One `#[test]` per backend for each behaviour function `f(Kind)`.
macro_rules! for_each_backend {
    ($($f:ident),* $(,)?) => {
        mod linux_bridge {
            $( #[test] fn $f() { super::run(super::Kind::LinuxBridge, stringify!($f), super::$f) } )*
        }
        mod openflow {
            $( #[test] fn $f() { super::run(super::Kind::Openflow, stringify!($f), super::$f) } )*
        }
        mod snmp {
            $( #[test] fn $f() { super::run(super::Kind::Snmp, stringify!($f), super::$f) } )*
        }
    };
}

for_each_backend!(
    seed_subset,
    lease_expiry_and_clear,
    refusals_install_nothing
);

fn run(kind: Kind, name: &str, f: fn(Kind)) {
    if !enabled(kind, name) {
        return;
    }
    let t0 = Instant::now();
    f(kind);
    eprintln!("{name} [{kind:?}]: {:.1} s", t0.elapsed().as_secs_f64());
}

const SUBSET: [&str; 3] = ["X1", "X4", "X8"];

/// Sets `x` = NG0 | {X1, X4, X8} on every agent and checks each ACK's port count
/// against the topology (host ports and trunks toward the members).
fn install_subset(env: &mut Env, txid: u64, x: Ipv6Addr, lifetime_ms: u32) {
    let y = env.ng0();
    let members = env.list(&SUBSET);
    let want: Vec<u16> = SWITCHES
        .iter()
        .map(|s| env.expected_port_count(s, &SUBSET))
        .collect();
    for (a, want) in env.agents.iter_mut().zip(want) {
        let mut m = set(txid, y, x, members.clone());
        if let Message::SetSubset(s) = &mut m {
            s.lifetime_ms = lifetime_ms;
        }
        let who = format!("agent {}", a.switch);
        assert_eq!(ack_ports(&a.request(&m), txid, &who), want, "{who}");
    }
}

/// The seed example: X = the subset {X1, X4, X8} of NG0 (all nine hosts).
fn seed_subset(kind: Kind) {
    let mut env = Env::start(kind);
    // Seed table: A {h-X1, t-B}, B {t-A, h-X4, t-C}, C {t-B, h-X8}.
    assert_eq!(
        SWITCHES.map(|s| env.expected_port_count(s, &SUBSET)),
        [2, 3, 2]
    );
    let x: Ipv6Addr = "ff05::5c:2:1".parse().unwrap();
    install_subset(&mut env, 10, x, 60_000);
    // The switches hold exactly the ACKed ports.
    assert_eq!(env.installed_all(), [2, 3, 2], "installed on A, B, C");
    expect_delivery(&env.deliver("X2", x, 5000), &SUBSET, "sender X2");
    // The sender is a member: the two others get it, it does not.
    expect_delivery(&env.deliver("X1", x, 5001), &["X4", "X8"], "sender X1");
    // The same txid again is a retransmission: re-ACK with the same count.
    install_subset(&mut env, 10, x, 60_000);
    expect_delivery(&env.deliver("X9", x, 5002), &SUBSET, "after re-ACK");
}

/// Lease expiry removes the entries without any instruction; CLEAR removes at once.
fn lease_expiry_and_clear(kind: Kind) {
    let mut env = Env::start(kind);
    let lifetime = Duration::from_millis(5000);
    let x: Ipv6Addr = "ff05::5c:2:2".parse().unwrap();
    let t0 = Instant::now();
    install_subset(&mut env, 20, x, lifetime.as_millis() as u32);
    expect_delivery(&env.deliver("X2", x, 5010), &SUBSET, "before expiry");
    assert!(
        t0.elapsed() < lifetime,
        "delivery check took {:?}, longer than the lease: inconclusive",
        t0.elapsed()
    );
    // Agents expire on their own timers; allow 1.5 s for the backends (SNMP SET,
    // a loaded machine).
    let after = lifetime + Duration::from_millis(1500);
    std::thread::sleep(after.saturating_sub(t0.elapsed()));
    expect_delivery(&env.deliver("X2", x, 5011), &[], "after expiry");
    assert_eq!(env.installed_all(), [0, 0, 0], "entries left after expiry");

    let x2: Ipv6Addr = "ff05::5c:2:3".parse().unwrap();
    install_subset(&mut env, 21, x2, 600_000);
    expect_delivery(&env.deliver("X2", x2, 5012), &SUBSET, "before CLEAR");
    for a in &mut env.agents {
        let who = format!("agent {}", a.switch);
        let ans = a.request(&Message::Clear(Clear {
            txid: 22,
            group: x2,
        }));
        assert_eq!(ack_ports(&ans, 22, &who), 0, "{who}");
    }
    // No waiting: the ACK of CLEAR means the switch no longer forwards X.
    assert_eq!(env.installed_all(), [0, 0, 0], "entries left after CLEAR");
    expect_delivery(&env.deliver("X2", x2, 5013), &[], "after CLEAR");
}

/// Each refusal is NAKed with its reason and installs nothing.
fn refusals_install_nothing(kind: Kind) {
    let mut env = Env::start(kind);
    let y = env.ng0();
    let x: Ipv6Addr = "ff05::5c:2:4".parse().unwrap();
    let good = set(30, y, x, env.list(&SUBSET));
    let forged_key = Key::from_hex(CTL_KEY_ID, &"3".repeat(64)).unwrap();
    let outsider = Members::List(vec![
        Member::Ipv6(env.lab.host("X1").ipv6),
        Member::Mac(MacAddr([2, 0x5c, 0, 0, 0, 0x77])),
    ]);
    let mut outside_y = set(31, y, x, outsider);
    let mut wrong_vlan = good.clone();
    if let Message::SetSubset(s) = &mut wrong_vlan {
        s.txid = 32;
        s.vlan = 7;
    }
    for a in &mut env.agents {
        let who = format!("agent {}", a.switch);
        // Forged tag: sealed under the controller's key id with another key.
        let mut forger = Sealer::new(forged_key.clone(), 9000, now_us());
        a.send_raw(&forger.seal(&good, now_us()));
        assert_eq!(nak_reason(&a.answer(), &who), NakReason::BadAuth, "{who}");
        // A member outside Y (a MAC no member of NG0 has).
        let ans = a.request(&outside_y);
        assert_eq!(nak_reason(&ans, &who), NakReason::NotASubset, "{who}");
        // Wrong VLAN: NG0 is VLAN 0 (untagged) in the agent's configuration.
        let ans = a.request(&wrong_vlan);
        assert_eq!(nak_reason(&ans, &who), NakReason::WrongVlan, "{who}");
        // Malformed: not a subcast datagram at all.
        a.send_raw(b"definitely not a subcast datagram");
        match a.answer() {
            Message::Nak(n) => {
                assert_eq!(n.reason, NakReason::Malformed, "{who}");
                assert_eq!(n.txid, 0, "{who}");
            }
            other => panic!("{who}: expected NAK malformed, got {other:?}"),
        }
    }
    assert_eq!(
        env.installed_all(),
        [0, 0, 0],
        "a refusal installed something"
    );
    expect_delivery(&env.deliver("X2", x, 5020), &[], "after the refusals");

    // Replay: a good instruction is applied, cleared, then replayed byte for byte.
    let replays: Vec<Vec<u8>> = env
        .agents
        .iter_mut()
        .map(|a| {
            let who = format!("agent {}", a.switch);
            let bytes = a.seal(&good);
            a.send_raw(&bytes);
            assert!(ack_ports(&a.answer(), 30, &who) > 0, "{who}");
            bytes
        })
        .collect();
    expect_delivery(&env.deliver("X2", x, 5021), &SUBSET, "the good instruction");
    for (a, bytes) in env.agents.iter_mut().zip(&replays) {
        let who = format!("agent {}", a.switch);
        let clear = Message::Clear(Clear { txid: 33, group: x });
        assert_eq!(ack_ports(&a.request(&clear), 33, &who), 0, "{who}");
        a.send_raw(bytes);
        assert_eq!(nak_reason(&a.answer(), &who), NakReason::Replay, "{who}");
    }
    assert_eq!(
        env.installed_all(),
        [0, 0, 0],
        "the replay installed something"
    );
    expect_delivery(&env.deliver("X2", x, 5022), &[], "after the replay");
    // The refusals left the agents working: a fresh instruction still applies.
    if let Message::SetSubset(s) = &mut outside_y {
        s.txid = 34;
        s.members = env.list(&SUBSET);
    }
    for a in &mut env.agents {
        let who = format!("agent {}", a.switch);
        assert!(ack_ports(&a.request(&outside_y), 34, &who) > 0, "{who}");
    }
    expect_delivery(&env.deliver("X2", x, 5023), &SUBSET, "a fresh instruction");
}

/// The shipped example configurations of every backend parse (no root needed).
#[test]
fn backend_examples_parse() {
    use std::path::Path;
    use subcast_agent::config::{BackendConfig, Config};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let of = Config::load(&dir.join("agent-openflow.yaml")).unwrap();
    match &of.backend {
        BackendConfig::Openflow(c) => {
            assert_eq!(c.listen, "127.0.0.1:6653".parse().unwrap());
            assert!(c.flood_unknown_multicast);
        }
        other => panic!("{other:?}"),
    }
    let sn = Config::load(&dir.join("agent-snmp.yaml")).unwrap();
    assert!(matches!(
        &sn.backend,
        BackendConfig::Snmp { credentials } if credentials.ends_with("switch-3-snmp.yaml")
    ));
    // Unknown keys in a backend section are refused with their name.
    let text = std::fs::read_to_string(dir.join("agent-openflow.yaml")).unwrap();
    let bad = text.replace("learn_idle_timeout_s", "learn_idle_timeout");
    let e = Config::parse(&bad, Path::new("x.yaml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("learn_idle_timeout"), "{e}");
    let bad = text.replace("kind: openflow", "kind: openflowx");
    assert!(Config::parse(&bad, Path::new("x.yaml")).is_err());
}
