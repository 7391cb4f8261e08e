//! Rendezvous end to end inside the controller, with simulated agents over
//! real UDP on 127.0.0.1 and the real sealed protocol: grants, loss, NAK,
//! silence, release, expiry, and the binary rendezvous path.

mod common;
use common::*;
use std::time::Duration;
use subcast_controller::leases::LeaseState;
use subcast_proto::{
    GrantOutcome, Key, Keyring, Member, Message, NakReason, Opener, RefuseReason,
    RendezvousRelease, RendezvousRequest, ReplayGuard, Sealer, now_us,
};

const POOL: &str = "ff15::5c:1:0/120";

#[tokio::test]
async fn grant_reaches_every_agent_and_release_clears() {
    let agents = three_agents().await;
    let run = subcast_controller::start(config(&addrs(&agents), ":memory:", POOL))
        .await
        .unwrap();
    let ctl = run.controller.clone();
    let l = ctl
        .rendezvous(req(
            "chunks-0",
            &["h1", "fd00:5c::102", "02:5c:00:00:01:03"],
        ))
        .await
        .unwrap();
    assert_eq!(l.state, LeaseState::Live);
    assert!(l.group.segments()[0] == 0xff15);
    for a in &agents {
        assert_eq!(
            a.installed(),
            vec![l.group],
            "switch {} holds the group",
            a.switch_id
        );
        let txids: std::collections::BTreeSet<u64> = a
            .log
            .lock()
            .unwrap()
            .received
            .iter()
            .filter(|m| m.name() == "SET_SUBSET")
            .filter_map(|m| m.txid())
            .collect();
        assert_eq!(
            txids.len(),
            1,
            "one transaction (retransmissions repeat it)"
        );
        assert!(a.rejected().is_empty());
    }
    assert_eq!(ctl.pool_in_use(10).await, 1);
    let r = ctl.release(l.id).await.unwrap().unwrap();
    assert!(r.clear.iter().all(|(_, o)| o == "acked"), "{:?}", r.clear);
    for a in &agents {
        assert!(a.installed().is_empty());
    }
    assert_eq!(ctl.pool_in_use(10).await, 0);
    assert!(ctl.leases().await.is_empty());
    assert!(
        ctl.release(l.id).await.unwrap().is_none(),
        "second release: unknown lease"
    );
    // The audit log holds one row per agent per instruction.
    ctl.store.flush().await.unwrap();
    let log = ctl
        .store
        .audit_log(
            subcast_controller::store::AuditFilter {
                lease: Some(l.id),
                ..Default::default()
            },
            100,
        )
        .await
        .unwrap();
    assert_eq!(
        log.iter()
            .filter(|e| e.instruction == "SET_SUBSET" && e.outcome == "acked")
            .count(),
        3
    );
    assert_eq!(
        log.iter()
            .filter(|e| e.instruction == "CLEAR" && e.outcome == "acked")
            .count(),
        3
    );
    run.stop();
}

#[tokio::test]
async fn lost_datagrams_are_retransmitted_with_the_same_txid() {
    let agents = three_agents().await;
    agents[1].set(Behaviour::LoseFirst(2));
    let run = subcast_controller::start(config(&addrs(&agents), ":memory:", POOL))
        .await
        .unwrap();
    let l = run
        .controller
        .rendezvous(req("chunks-0", &["h1"]))
        .await
        .unwrap();
    assert_eq!(agents[1].count("SET_SUBSET"), 3, "two lost, third answered");
    let log = agents[1].log.lock().unwrap();
    let txids: Vec<u64> = log.received.iter().filter_map(|m| m.txid()).collect();
    assert!(
        txids.iter().all(|t| *t == txids[0]),
        "same txid on every retransmission"
    );
    assert!(
        log.rejected.is_empty(),
        "each resend is sealed afresh, so no replay rejections"
    );
    assert_eq!(log.installed.keys().next(), Some(&l.group));
    drop(log);
    run.stop();
}

#[tokio::test]
async fn nak_refuses_names_the_switch_and_clears_the_others() {
    let agents = three_agents().await;
    agents[2].set(Behaviour::Nak(NakReason::NotASubset));
    let run = subcast_controller::start(config(&addrs(&agents), ":memory:", POOL))
        .await
        .unwrap();
    let ctl = run.controller.clone();
    let f = ctl
        .rendezvous(req("chunks-0", &["h1", "h2"]))
        .await
        .unwrap_err();
    assert_eq!(f.reason, RefuseReason::AgentRefused);
    assert!(
        f.detail.contains("s3") && f.detail.contains("not-a-subset"),
        "{}",
        f.detail
    );
    // Nothing left behind: the ACKing agents get a CLEAR, the pool is whole.
    assert!(
        eventually(Duration::from_secs(2), || agents[..2]
            .iter()
            .all(|a| a.installed().is_empty() && a.count("CLEAR") == 1))
        .await
    );
    assert!(
        until(Duration::from_secs(2), || async {
            ctl.pool_in_use(10).await == 0
        })
        .await
    );
    assert_eq!(
        agents[2].count("CLEAR"),
        0,
        "a NAK means nothing was installed"
    );
    assert!(ctl.leases().await.is_empty());
    run.stop();
}

#[tokio::test]
async fn silent_agent_gives_a_clear_refusal_and_nothing_leaks() {
    let agents = three_agents().await;
    agents[0].set(Behaviour::Silent);
    let run = subcast_controller::start(config(&addrs(&agents), ":memory:", POOL))
        .await
        .unwrap();
    let ctl = run.controller.clone();
    let t = std::time::Instant::now();
    let f = ctl.rendezvous(req("chunks-0", &["h4"])).await.unwrap_err();
    assert_eq!(f.reason, RefuseReason::AgentUnreachable);
    assert!(
        f.detail.contains("s1") && f.detail.contains("did not answer 4 sends"),
        "{}",
        f.detail
    );
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "10+20+40+80 ms of retransmission"
    );
    assert_eq!(agents[0].count("SET_SUBSET"), 4);
    assert!(
        eventually(Duration::from_secs(2), || agents[1..]
            .iter()
            .all(|a| a.installed().is_empty()))
        .await
    );
    assert!(ctl.leases().await.is_empty());
    run.stop();
}

#[tokio::test]
async fn dead_agent_by_heartbeat_is_refused_at_once() {
    let agents = three_agents().await;
    let run = subcast_controller::start(config(&addrs(&agents), ":memory:", POOL))
        .await
        .unwrap();
    let ctl = run.controller.clone();
    for a in &agents {
        a.hello(run.udp_addr).await;
    }
    assert!(
        until(Duration::from_secs(1), || async {
            ctl.agents().await.iter().all(|a| a.up)
        })
        .await,
        "all up after HELLO"
    );
    // Keep 1 and 2 alive; 3 falls silent past the 1 s timeout.
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        agents[0].heartbeat(run.udp_addr).await;
        agents[1].heartbeat(run.udp_addr).await;
    }
    let up: Vec<bool> = ctl.agents().await.iter().map(|a| a.up).collect();
    assert_eq!(up, vec![true, true, false]);
    let before = agents[0].count("SET_SUBSET");
    let f = ctl.rendezvous(req("chunks-0", &["h1"])).await.unwrap_err();
    assert_eq!(f.reason, RefuseReason::AgentUnreachable);
    assert!(
        f.detail.contains("s3") && f.detail.contains("silent"),
        "{}",
        f.detail
    );
    assert_eq!(agents[0].count("SET_SUBSET"), before, "nothing pushed");
    assert_eq!(ctl.pool_in_use(10).await, 0);
    // It comes back: HELLO makes it up again.
    agents[2].hello(run.udp_addr).await;
    assert!(
        until(Duration::from_secs(1), || async {
            ctl.agents().await[2].up
        })
        .await
    );
    run.stop();
}

#[tokio::test]
async fn validation_refusals() {
    let agents = three_agents().await;
    let run = subcast_controller::start(config(&addrs(&agents), ":memory:", "ff15::5c:1:0/127"))
        .await
        .unwrap();
    let ctl = run.controller.clone();
    let e = ctl.rendezvous(req("ff15::9", &["h1"])).await.unwrap_err();
    assert_eq!(e.reason, RefuseReason::UnknownParent);
    assert!(
        e.detail.contains("chunks-0"),
        "lists known groups: {}",
        e.detail
    );
    let e = ctl
        .rendezvous(req("chunks-1", &["h1", "h2"]))
        .await
        .unwrap_err();
    assert_eq!(e.reason, RefuseReason::NotAMember);
    assert!(
        e.detail.contains("h2") && e.detail.contains("h1, h3, h5"),
        "{}",
        e.detail
    );
    let e = ctl.rendezvous(req("chunks-1", &[])).await.unwrap_err();
    assert_eq!(e.reason, RefuseReason::BadRequest);
    let mut r = req("chunks-1", &["h1"]);
    r.lifetime_ms = Some(60_001);
    assert_eq!(
        ctl.rendezvous(r).await.unwrap_err().reason,
        RefuseReason::LifetimeTooLong
    );
    let mut r = req("chunks-1", &["h1"]);
    r.vlan = Some(20);
    assert_eq!(
        ctl.rendezvous(r).await.unwrap_err().reason,
        RefuseReason::BadRequest
    );
    // Pool of two: the third concurrent lease is refused, never doubled.
    let a = ctl.rendezvous(req("chunks-1", &["h1"])).await.unwrap();
    let b = ctl.rendezvous(req("chunks-1", &["h3"])).await.unwrap();
    assert_ne!(a.group, b.group);
    let e = ctl.rendezvous(req("chunks-1", &["h5"])).await.unwrap_err();
    assert_eq!(e.reason, RefuseReason::PoolExhausted);
    assert!(e.detail.contains("all 2 addresses"), "{}", e.detail);
    ctl.release(a.id).await.unwrap();
    let c = ctl.rendezvous(req("chunks-1", &["h5"])).await.unwrap();
    assert_eq!(c.group, a.group, "released address is reused");
    run.stop();
}

#[tokio::test]
async fn leases_expire_with_a_clear() {
    let agents = three_agents().await;
    let run = subcast_controller::start(config(&addrs(&agents), ":memory:", POOL))
        .await
        .unwrap();
    let ctl = run.controller.clone();
    let mut r = req("chunks-0", &["h1"]);
    r.lifetime_ms = Some(150);
    let l = ctl.rendezvous(r).await.unwrap();
    assert_eq!(ctl.leases().await.len(), 1);
    assert!(
        until(Duration::from_secs(2), || async {
            ctl.leases().await.is_empty()
        })
        .await
    );
    assert!(
        eventually(Duration::from_secs(2), || agents
            .iter()
            .all(|a| a.installed().is_empty()))
        .await
    );
    assert!(
        until(Duration::from_secs(2), || async {
            ctl.pool_in_use(10).await == 0
        })
        .await
    );
    assert!(
        agents.iter().all(|a| a.count("CLEAR") == 1),
        "one CLEAR for {}",
        l.group
    );
    run.stop();
}

/// A storage node speaking the binary protocol.
struct Node {
    socket: tokio::net::UdpSocket,
    sealer: Sealer,
    opener: Opener,
}

impl Node {
    async fn new(key_id: u32, hex: &str) -> Node {
        let key = Key::from_hex(key_id, hex).unwrap();
        Node {
            socket: tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            sealer: Sealer::new(key.clone(), 77, now_us()),
            opener: Opener::new(Keyring::new([key]), ReplayGuard::default()),
        }
    }
    async fn ask(&mut self, to: std::net::SocketAddr, m: &Message) -> Option<Message> {
        let bytes = self.sealer.seal(m, now_us());
        self.socket.send_to(&bytes, to).await.unwrap();
        let mut buf = vec![0u8; 10_000];
        let n = tokio::time::timeout(Duration::from_secs(2), self.socket.recv(&mut buf))
            .await
            .ok()?
            .ok()?;
        Some(self.opener.open(&buf[..n], now_us()).unwrap().message)
    }
}

#[tokio::test]
async fn binary_rendezvous_over_udp() {
    let agents = three_agents().await;
    let run = subcast_controller::start(config(&addrs(&agents), ":memory:", POOL))
        .await
        .unwrap();
    let mut node = Node::new(2, NODE_KEY).await;
    let rq = Message::RendezvousRequest(RendezvousRequest {
        request_id: 42,
        vlan: 10,
        parent: "ff15::5c:0:1".parse().unwrap(),
        lifetime_ms: 0,
        targets: vec![
            Member::Ipv6("fd00:5c::101".parse().unwrap()),
            Member::Mac("02:5c:00:00:01:02".parse().unwrap()),
        ],
    });
    let Some(Message::RendezvousGrant(g)) = node.ask(run.udp_addr, &rq).await else {
        panic!("no grant")
    };
    assert_eq!(g.request_id, 42);
    let GrantOutcome::Granted {
        group,
        lease_id,
        expires_at_ms,
        ..
    } = g.outcome
    else {
        panic!("{:?}", g.outcome)
    };
    assert!(expires_at_ms > now_us() / 1000);
    assert!(agents.iter().all(|a| a.installed() == vec![group]));
    // A retransmitted request gets the same grant, not a second lease.
    let Some(Message::RendezvousGrant(g2)) = node.ask(run.udp_addr, &rq).await else {
        panic!("no answer")
    };
    assert_eq!(
        g2.outcome,
        GrantOutcome::Granted {
            group,
            lease_id,
            expires_at_ms,
            reused: false,
        }
    );
    assert_eq!(run.controller.leases().await.len(), 1);
    // A non-member is refused with a reason.
    let bad = Message::RendezvousRequest(RendezvousRequest {
        request_id: 43,
        vlan: 10,
        parent: "ff15::5c:0:2".parse().unwrap(),
        lifetime_ms: 0,
        targets: vec![Member::Ipv6("fd00:5c::102".parse().unwrap())],
    });
    let Some(Message::RendezvousGrant(g3)) = node.ask(run.udp_addr, &bad).await else {
        panic!("no answer")
    };
    assert!(
        matches!(
            g3.outcome,
            GrantOutcome::Refused {
                reason: RefuseReason::NotAMember,
                ..
            }
        ),
        "{:?}",
        g3.outcome
    );
    // Release.
    let rel = Message::RendezvousRelease(RendezvousRelease { lease_id });
    let Some(Message::ReleaseAck(a)) = node.ask(run.udp_addr, &rel).await else {
        panic!("no release ack")
    };
    assert!(a.released);
    assert!(
        eventually(Duration::from_secs(2), || agents
            .iter()
            .all(|a| a.installed().is_empty()))
        .await
    );
    let Some(Message::ReleaseAck(a)) = node.ask(run.udp_addr, &rel).await else {
        panic!("no release ack")
    };
    assert!(!a.released, "unknown the second time");
    run.stop();
}

#[tokio::test]
async fn udp_requests_with_an_agent_key_are_ignored() {
    let agents = three_agents().await;
    let run = subcast_controller::start(config(&addrs(&agents), ":memory:", POOL))
        .await
        .unwrap();
    let mut node = Node::new(1, AGENT_KEY).await;
    let rq = Message::RendezvousRequest(RendezvousRequest {
        request_id: 1,
        vlan: 10,
        parent: "ff15::5c:0:1".parse().unwrap(),
        lifetime_ms: 0,
        targets: vec![Member::Ipv6("fd00:5c::101".parse().unwrap())],
    });
    assert_eq!(node.ask(run.udp_addr, &rq).await, None);
    assert!(run.controller.leases().await.is_empty());
    assert!(run.controller.metrics.encode().contains("rendezvous-key"));
    run.stop();
}

#[tokio::test]
async fn restarted_agent_gets_live_leases_again_after_hello() {
    let agents = three_agents().await;
    let run = subcast_controller::start(config(&addrs(&agents), ":memory:", POOL))
        .await
        .unwrap();
    let ctl = run.controller.clone();
    let mut r = req("chunks-0", &["h1"]);
    r.lifetime_ms = Some(30_000);
    let l = ctl.rendezvous(r).await.unwrap();
    // Agent 2 restarts: its table is empty, it says HELLO.
    agents[1].log.lock().unwrap().installed.clear();
    agents[1].hello(run.udp_addr).await;
    assert!(
        eventually(Duration::from_secs(2), || agents[1].installed()
            == vec![l.group])
        .await
    );
    assert_eq!(agents[1].count("SET_SUBSET"), 2);
    assert_eq!(agents[0].count("SET_SUBSET"), 1, "only the restarted agent");
    run.stop();
}

#[tokio::test]
async fn two_controllers_side_by_side_lease_disjoint_slices() {
    let agents = three_agents().await;
    let yaml = config_yaml(&addrs(&agents), ":memory:", "ff15::5c:1:0/126");
    let load = |y: &str| {
        subcast_controller::config::load_str(y, std::path::Path::new("."))
            .unwrap()
            .0
    };
    let first = load(&yaml.replace(
        "  id: 1\n  udp_listen",
        "  id: 1\n  pool_slice: \"0/2\"\n  udp_listen",
    ));
    let second = load(&yaml.replace(
        "  id: 1\n  udp_listen",
        "  id: 2\n  pool_slice: \"1/2\"\n  udp_listen",
    ));
    let (a, b) = (
        subcast_controller::start(first).await.unwrap(),
        subcast_controller::start(second).await.unwrap(),
    );
    let mut groups = Vec::new();
    for run in [&a, &b] {
        for t in ["h1", "h2"] {
            let l = run
                .controller
                .rendezvous(req("chunks-0", &[t]))
                .await
                .unwrap();
            assert!(!groups.contains(&l.group), "{} leased twice", l.group);
            groups.push(l.group);
        }
        let e = run
            .controller
            .rendezvous(req("chunks-0", &["h3"]))
            .await
            .unwrap_err();
        assert_eq!(
            e.reason,
            RefuseReason::PoolExhausted,
            "each owns 2 of the 4 addresses"
        );
    }
    assert_eq!(groups.len(), 4);
    let ids: Vec<u64> = a
        .controller
        .leases()
        .await
        .iter()
        .chain(b.controller.leases().await.iter())
        .map(|l| l.id >> 56)
        .collect();
    assert_eq!(ids, vec![1, 1, 2, 2], "lease ids carry the controller id");
    for a in &agents {
        assert_eq!(a.installed().len(), 4);
    }
    a.stop();
    b.stop();
}
