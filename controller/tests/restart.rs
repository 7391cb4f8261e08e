//! Restart with the same SQLite file: live leases are re-pushed, expired
//! and half-granted ones are cleared, nothing leaks.

mod common;
use common::*;
use std::time::Duration;
use subcast_controller::leases::{Lease, LeaseState, Target};

const POOL: &str = "ff15::5c:1:0/120";

fn count_for(a: &FakeAgent, kind: &str, group: std::net::Ipv6Addr) -> usize {
    a.log
        .lock()
        .unwrap()
        .received
        .iter()
        .filter(|m| match m {
            subcast_proto::Message::SetSubset(s) => kind == "SET_SUBSET" && s.group == group,
            subcast_proto::Message::Clear(c) => kind == "CLEAR" && c.group == group,
            _ => false,
        })
        .count()
}

#[tokio::test]
async fn restart_repushes_live_and_clears_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("controller.sqlite");
    let agents = three_agents().await;
    let cfg = config(&addrs(&agents), db.to_str().unwrap(), POOL);

    let first = subcast_controller::start(cfg.clone()).await.unwrap();
    let ctl = first.controller.clone();
    let mut r = req("chunks-0", &["h1", "h2"]);
    r.lifetime_ms = Some(30_000);
    let long = ctl.rendezvous(r).await.unwrap();
    let mut r = req("chunks-0", &["h3"]);
    r.lifetime_ms = Some(200);
    let short = ctl.rendezvous(r).await.unwrap();
    // A lease caught mid-grant by a crash: recorded as pending.
    let pending = Lease {
        id: 1,
        vlan: 10,
        parent: "ff15::5c:0:1".parse().unwrap(),
        group: "ff15::5c:1:ff".parse().unwrap(),
        targets: vec![Target {
            name: "h4".into(),
            ipv6: "fd00:5c::104".parse().unwrap(),
            mac: "02:5c:00:00:01:04".parse().unwrap(),
        }],
        switches: vec![1, 2, 3],
        created_ms: 0,
        expires_ms: u64::MAX / 2,
        state: LeaseState::Pending,
        requester: "crashed".into(),
    };
    ctl.store.put_lease(&pending).await.unwrap();
    ctl.store.flush().await.unwrap();
    // "Crash": stop every task before the short lease is expired by it.
    first.stop();
    drop(ctl);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        agents.iter().all(|a| a.installed().len() == 2),
        "the agents still hold both groups"
    );

    let second = subcast_controller::start(cfg).await.unwrap();
    let ctl = second.controller.clone();
    // Live lease: kept and pushed again (with its remaining lifetime).
    let leases = ctl.leases();
    assert_eq!(leases.len(), 1, "{leases:#?}");
    assert_eq!(leases[0].id, long.id);
    assert_eq!(leases[0].group, long.group);
    assert_eq!(leases[0].state, LeaseState::Live);
    for a in &agents {
        assert_eq!(
            count_for(a, "SET_SUBSET", long.group),
            2,
            "re-pushed to switch {}",
            a.switch_id
        );
        assert_eq!(
            count_for(a, "CLEAR", short.group),
            1,
            "expired lease cleared on switch {}",
            a.switch_id
        );
        assert_eq!(
            count_for(a, "CLEAR", pending.group),
            1,
            "half-granted lease cleared on switch {}",
            a.switch_id
        );
        assert_eq!(a.installed(), vec![long.group]);
    }
    assert_eq!(ctl.pool_in_use(10), 1);
    let stored = ctl.store.leases().await.unwrap();
    assert_eq!(
        stored.iter().map(|l| l.id).collect::<Vec<_>>(),
        vec![long.id]
    );
    // The restored lease's address is not handed out again.
    let next = ctl.rendezvous(req("chunks-0", &["h5"])).await.unwrap();
    assert_ne!(next.group, long.group);
    // And it can be released normally.
    ctl.release(long.id).await.unwrap().unwrap();
    assert!(agents.iter().all(|a| a.installed() == vec![next.group]));
    second.stop();
}

#[tokio::test]
async fn restart_with_a_dead_agent_clears_instead_of_keeping() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("controller.sqlite");
    let agents = three_agents().await;
    let cfg = config(&addrs(&agents), db.to_str().unwrap(), POOL);
    let first = subcast_controller::start(cfg.clone()).await.unwrap();
    let mut r = req("chunks-0", &["h1"]);
    r.lifetime_ms = Some(30_000);
    let l = first.controller.rendezvous(r).await.unwrap();
    first.stop();
    agents[2].set(Behaviour::Silent);
    let second = subcast_controller::start(cfg).await.unwrap();
    let ctl = second.controller.clone();
    assert!(
        ctl.leases().is_empty(),
        "a lease that cannot be re-pushed everywhere is dropped"
    );
    assert!(
        eventually(Duration::from_secs(2), || agents[..2]
            .iter()
            .all(|a| a.installed().is_empty()))
        .await
    );
    assert!(ctl.store.leases().await.unwrap().is_empty());
    // The silent agent may still hold it, so the address is held back
    // until the lease's own end rather than reused at once.
    assert_eq!(ctl.pool_in_use(10), 1);
    let other = ctl.rendezvous(req("chunks-0", &["h2"])).await;
    assert!(other.is_err(), "agent 3 is still silent");
    agents[2].set(Behaviour::Ack);
    let other = ctl.rendezvous(req("chunks-0", &["h2"])).await.unwrap();
    assert_ne!(other.group, l.group);
    second.stop();
}
