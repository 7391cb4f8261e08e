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
use subcast_proto::{
    Batch, BatchItem, Clear, Key, MacAddr, Member, Members, Message, NakReason, Sealer, now_us,
};

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
            #[test]
            fn guard_removes_rows_the_agent_does_not_hold() {
                super::run(
                    super::Kind::Snmp,
                    "guard_removes_rows_the_agent_does_not_hold",
                    super::guard_removes_rows_the_agent_does_not_hold,
                )
            }
        }
    };
}

for_each_backend!(
    seed_subset,
    lease_expiry_and_clear,
    refusals_install_nothing,
    batch_all_or_nothing
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
    // Every HELLO reports the switch's capacity for subset groups.
    for a in &env.agents {
        let cap = a.hello.as_ref().unwrap().table_capacity;
        match kind {
            // hash_max minus the groups outside the range (hosts' own groups).
            Kind::LinuxBridge => assert!(cap > 0 && cap < 65536, "{cap}"),
            // OVS' group limit; the switch holds no other groups.
            Kind::Openflow => assert_eq!(cap, 0xffff_ff00),
            Kind::Snmp => assert_eq!(cap, SNMP_CAPACITY),
        }
    }
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
    // Agents expire on their own timers: wait for the switches to lose the
    // entries (allowing 5 s past the lifetime for a loaded machine).
    while env.installed_all() != [0, 0, 0] {
        assert!(
            t0.elapsed() < lifetime + Duration::from_secs(5),
            "entries left 5 s after the lease ended: {:?}",
            env.installed_all()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(t0.elapsed() >= lifetime, "removed before the lease ended");
    expect_delivery(&env.deliver("X2", x, 5011), &[], "after expiry");

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

/// Authenticated refusals are NAKed with their reason; unauthenticated or
/// replayed datagrams get no answer at all. Nothing is installed.
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
        let forged = forger.seal(&good, now_us());
        no_answer(a, &forged, 100, &who);
        // Malformed: not a subcast datagram at all.
        no_answer(a, b"definitely not a subcast datagram", 101, &who);
        // A member outside Y (a MAC no member of NG0 has).
        let ans = a.request(&outside_y);
        assert_eq!(nak_reason(&ans, &who), NakReason::NotASubset, "{who}");
        // Wrong VLAN: NG0 is VLAN 0 (untagged) in the agent's configuration.
        let ans = a.request(&wrong_vlan);
        assert_eq!(nak_reason(&ans, &who), NakReason::WrongVlan, "{who}");
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
        no_answer(a, bytes, 102, &who);
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

/// BATCH: several groups in one instruction, applied all or nothing and
/// checked on the switches themselves (MDB entries, OVS group buckets).
fn batch_all_or_nothing(kind: Kind) {
    let mut env = Env::start(kind);
    let y = env.ng0();
    let x = |i: u16| -> Ipv6Addr { format!("ff05::5c:2:{:x}", 0x40 + i).parse().unwrap() };
    let sets: [(Ipv6Addr, &[&str]); 3] = [
        (x(1), &SUBSET),
        (x(2), &["X2", "X5"]),
        (x(3), &["X3", "X9"]),
    ];
    let item = |env: &Env, g: Ipv6Addr, hosts: &[&str]| BatchItem::Set {
        vlan: 0,
        parent: y,
        group: g,
        lifetime_ms: 60_000,
        members: env.list(hosts),
    };
    let first = Message::Batch(Batch {
        txid: 40,
        items: sets.iter().map(|(g, h)| item(&env, *g, h)).collect(),
    });
    let want: Vec<Vec<u16>> = SWITCHES
        .iter()
        .map(|s| {
            sets.iter()
                .map(|(_, h)| env.expected_port_count(s, h))
                .collect()
        })
        .collect();
    for (a, want) in env.agents.iter_mut().zip(&want) {
        let who = format!("agent {}", a.switch);
        assert_eq!(batch_counts(&a.request(&first), 40, &who), *want, "{who}");
    }
    let sums: Vec<usize> = want
        .iter()
        .map(|w| w.iter().map(|c| usize::from(*c)).sum())
        .collect();
    assert_eq!(env.installed_all(), sums, "the whole batch on every switch");
    expect_delivery(&env.deliver("X6", x(1), 5030), &SUBSET, "first item");
    expect_delivery(&env.deliver("X6", x(3), 5031), &["X3", "X9"], "third item");

    // A retransmission (sealed again, same txid): the same BATCH_ACK.
    for (a, want) in env.agents.iter_mut().zip(&want) {
        let who = format!("agent {}", a.switch);
        assert_eq!(batch_counts(&a.request(&first), 40, &who), *want, "{who}");
    }
    assert_eq!(env.installed_all(), sums);

    // One refused item refuses the batch: nothing of it is applied, the
    // clear of x1 included.
    let refused = Message::Batch(Batch {
        txid: 41,
        items: vec![
            BatchItem::Clear { group: x(1) },
            item(&env, x(4), &["X1", "X4"]),
            BatchItem::Set {
                vlan: 0,
                parent: y,
                group: x(5),
                lifetime_ms: 60_000,
                members: Members::List(vec![
                    Member::Ipv6(env.lab.host("X1").ipv6),
                    Member::Mac(MacAddr([2, 0x5c, 0, 0, 0, 0x77])),
                ]),
            },
        ],
    });
    for a in &mut env.agents {
        let who = format!("agent {}", a.switch);
        match a.request(&refused) {
            Message::Nak(n) => {
                assert_eq!(
                    (n.txid, n.reason),
                    (41, NakReason::NotASubset),
                    "{who}: {n:?}"
                );
                assert!(n.detail.starts_with("item 2 "), "{who}: {n:?}");
            }
            other => panic!("{who}: expected NAK, got {other:?}"),
        }
    }
    assert_eq!(
        env.installed_all(),
        sums,
        "the refused batch changed a switch"
    );
    expect_delivery(
        &env.deliver("X6", x(1), 5032),
        &SUBSET,
        "x1 after the refused batch",
    );

    // Clearing everything in one batch.
    let clear_all = Message::Batch(Batch {
        txid: 42,
        items: sets
            .iter()
            .map(|(g, _)| BatchItem::Clear { group: *g })
            .collect(),
    });
    for a in &mut env.agents {
        let who = format!("agent {}", a.switch);
        assert_eq!(
            batch_counts(&a.request(&clear_all), 42, &who),
            vec![0, 0, 0]
        );
    }
    assert_eq!(env.installed_all(), [0, 0, 0]);
    expect_delivery(
        &env.deliver("X6", x(1), 5033),
        &[],
        "after the clearing batch",
    );
}

/// SNMP: others can write the switch's static multicast table; the agent's
/// guard sweep removes rows inside its range it does not hold and keeps its own.
fn guard_removes_rows_the_agent_does_not_hold(kind: Kind) {
    let mut env = Env::start(kind);
    let mine: Ipv6Addr = "ff05::5c:2:61".parse().unwrap();
    install_subset(&mut env, 60, mine, 60_000);
    let foreign: Ipv6Addr = "ff05::5c:2:62".parse().unwrap();
    env.lab.mdb_add("B", "h-X4", foreign).unwrap();
    let t0 = Instant::now();
    while mdb_has(&env, "B", foreign) {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the foreign row is still there after 5 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(env.installed("B"), 3, "the agent's own rows stay");
    expect_delivery(&env.deliver("X2", mine, 5040), &SUBSET, "own group");
}

fn mdb_has(env: &Env, switch: &str, group: Ipv6Addr) -> bool {
    env.lab
        .mdb_show(switch)
        .unwrap()
        .iter()
        .any(|e| e.group == group)
}

fn batch_counts(m: &Message, txid: u64, who: &str) -> Vec<u16> {
    match m {
        Message::BatchAck(b) if b.txid == txid => b.port_counts.clone(),
        other => panic!("{who}: expected BATCH_ACK of {txid}, got {other:?}"),
    }
}

/// Sends `bad`, then a CLEAR of an unknown group with `probe_txid`: the next
/// answer is the CLEAR's ACK (the agent answers in order), so `bad` got none.
fn no_answer(a: &mut harness::Agent, bad: &[u8], probe_txid: u64, who: &str) {
    a.send_raw(bad);
    let probe = Message::Clear(Clear {
        txid: probe_txid,
        group: "ff05::5c:2:ee".parse().unwrap(),
    });
    assert_eq!(ack_ports(&a.request(&probe), probe_txid, who), 0, "{who}");
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
