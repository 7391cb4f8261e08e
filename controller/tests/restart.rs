//! Restart with the same SQLite file: held groups are pushed again, ended
//! ones cleared, nothing leaks.

mod common;
use common::*;
use std::time::Duration;
use subcast_controller::leases::LeaseState;

const POOL: &str = "ff15::5c:1:0/120";

/// Distinct transactions (not datagrams: a retransmission repeats its
/// txid) that carried `kind` for `group` to `a`.
fn count_for(a: &FakeAgent, kind: &str, group: std::net::Ipv6Addr) -> usize {
    use subcast_proto::{BatchItem, Message};
    let log = a.log.lock().unwrap();
    let mut txids = std::collections::BTreeSet::new();
    for m in &log.received {
        let items: Vec<BatchItem> = match m {
            Message::SetSubset(s) => vec![BatchItem::from_set(s)],
            Message::Clear(c) => vec![BatchItem::Clear { group: c.group }],
            Message::Batch(b) => b.items.clone(),
            _ => vec![],
        };
        let hit = items.iter().any(|i| match i {
            BatchItem::Set { group: g, .. } => kind == "SET_SUBSET" && *g == group,
            BatchItem::Clear { group: g } => kind == "CLEAR" && *g == group,
        });
        if hit && let Some(t) = m.txid() {
            txids.insert(t);
        }
    }
    txids.len()
}

#[tokio::test]
async fn restart_repushes_live_and_clears_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("controller.sqlite");
    let agents = three_agents().await;
    // hold_ms 1000: an ended lease's group is not held past 1 s.
    let yaml = config_yaml(&addrs(&agents), db.to_str().unwrap(), POOL)
        .replace("warm_ms: 0 }", "warm_ms: 0, hold_ms: 1000 }");
    let cfg = subcast_controller::config::load_str(&yaml, std::path::Path::new("."))
        .unwrap()
        .0;

    let first = subcast_controller::start(cfg.clone()).await.unwrap();
    let ctl = first.controller.clone();
    let mut r = req("chunks-0", &["h1", "h2"]);
    r.lifetime_ms = Some(30_000);
    let long = ctl.rendezvous(r).await.unwrap();
    let mut r = req("chunks-0", &["h3"]);
    r.lifetime_ms = Some(200);
    let short = ctl.rendezvous(r).await.unwrap();
    ctl.store.flush().await.unwrap();
    // "Crash": stop every task before the short lease is expired by it.
    first.stop();
    drop(ctl);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(
        agents.iter().all(|a| a.installed().len() == 2),
        "the agents still hold both groups"
    );

    let second = subcast_controller::start(cfg).await.unwrap();
    let ctl = second.controller.clone();
    // Live lease: kept and pushed again (with its remaining lifetime).
    let leases = ctl.leases().await;
    assert_eq!(leases.len(), 1, "{leases:#?}");
    assert_eq!(leases[0].id, long.id);
    assert_eq!(leases[0].group, long.group);
    assert_eq!(leases[0].state, LeaseState::Live);
    assert!(
        until(Duration::from_secs(2), || async {
            agents.iter().all(|a| {
                count_for(a, "SET_SUBSET", long.group) == 2
                    && count_for(a, "CLEAR", short.group) == 1
                    && a.installed() == vec![long.group]
            })
        })
        .await,
        "re-pushed the long lease, cleared the ended one: {:?}",
        agents
            .iter()
            .map(|a| (
                count_for(a, "SET_SUBSET", long.group),
                count_for(a, "CLEAR", short.group),
                a.installed()
            ))
            .collect::<Vec<_>>()
    );
    assert_eq!(ctl.pool_in_use(10).await, 1);
    ctl.store.flush().await.unwrap();
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
    first.controller.store.flush().await.unwrap();
    first.stop();
    agents[2].set(Behaviour::Silent);
    let second = subcast_controller::start(cfg).await.unwrap();
    let ctl = second.controller.clone();
    assert!(
        ctl.leases().await.is_empty(),
        "a lease that cannot be re-pushed everywhere is dropped"
    );
    assert!(
        eventually(Duration::from_secs(2), || agents[..2]
            .iter()
            .all(|a| a.installed().is_empty()))
        .await
    );
    ctl.store.flush().await.unwrap();
    assert!(ctl.store.leases().await.unwrap().is_empty());
    // The silent agent may still hold it, so the address is held back
    // until the agents' own expiry rather than reused at once.
    assert!(ctl.pool_in_use(10).await >= 1);
    let other = ctl.rendezvous(req("chunks-0", &["h2"])).await;
    assert!(other.is_err(), "agent 3 is still silent");
    agents[2].set(Behaviour::Ack);
    let other = ctl.rendezvous(req("chunks-0", &["h2"])).await.unwrap();
    assert_ne!(other.group, l.group);
    second.stop();
}
