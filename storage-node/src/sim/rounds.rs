//! Lookups and bid rounds end on knowledge (every known member answered),
//! not on a clock; timeouts only cover a member that failed.

use super::*;
use crate::members::Membership;

fn lookup(sim: &Sim, name: &str) -> Side {
    Side::Lookup(ManifestLookup::new(
        3,
        crate::chunking::name_hash(name),
        0,
        GROUP,
        PORT,
        3,
        GetTimers::default(),
        sim.now,
    ))
}

fn all_members(sim: &Sim) -> Vec<u32> {
    sim.nodes.iter().map(|n| n.core.node_id()).collect()
}

#[test]
fn lookup_of_a_new_name_ends_when_every_member_answered() {
    let mut sim = Sim::new(6, 0.0, 21);
    let t0 = sim.now;
    let mut side = lookup(&sim, "new/name");
    if let Side::Lookup(m) = &mut side {
        m.set_members(all_members(&sim));
    }
    sim.run(&mut side, Duration::from_secs(10));
    let Side::Lookup(l) = side else { panic!() };
    assert!(l.is_finished());
    assert!(l.versions.is_empty());
    assert_eq!(
        l.responders().len(),
        6,
        "every member answers, also with none"
    );
    // One round trip (2 x 100 us in the simulation), not the offer timeout.
    let took = sim.now - t0;
    assert!(took <= Duration::from_micros(300), "lookup took {took:?}");
}

#[test]
fn lookup_without_known_members_learns_them_and_never_concludes_absence_early() {
    let mut sim = Sim::new(6, 0.0, 22);
    let t0 = sim.now;
    let mut side = lookup(&sim, "new/name");
    sim.run(&mut side, Duration::from_secs(10));
    let took = sim.now - t0;
    // No version among the first R answers says nothing of the others:
    // a lookup that knows no member runs to its timeout before "none".
    assert_eq!(
        took,
        GetTimers::default().offer_timeout,
        "cold lookup took {took:?}"
    );
    // What it learned makes the next lookup exact.
    let Side::Lookup(l) = side else { panic!() };
    let mut m = Membership::default();
    let (answered, silent) = l.round_report();
    m.settle(GROUP, &answered, &silent);
    assert_eq!(m.known(GROUP), all_members(&sim));
}

/// Stores `name` (version 1) on three of the six nodes, as a put does.
fn stored_on_three(sim: &mut Sim, name: &str) -> Vec<u32> {
    let m = crate::manifest::Manifest {
        name: name.into(),
        version: 1,
        writer: 7,
        size: 3,
        chunk_size: 1024,
        object_hash: [9; 32],
        created_us: 0,
        chunks: vec![[9; 32]],
        inline: None,
    };
    let mut side = sim.put(&m.encode(), Mode::NgMulticast, 3, ChunkKind::Manifest);
    put_done(&sim.run(&mut side, Duration::from_secs(10)))
        .stored_on
        .clone()
}

/// The soak's "not found": under load the R fastest answers came from
/// members without the name and the lookup ended on them.
#[test]
fn slow_holders_are_still_heard_by_a_cold_lookup() {
    let mut sim = Sim::new(6, 0.0, 25);
    let holders = stored_on_three(&mut sim, "slow/holders");
    for n in &mut sim.nodes {
        if holders.contains(&n.core.node_id()) {
            n.lag = Duration::from_millis(40);
        }
    }
    let mut side = lookup(&sim, "slow/holders");
    sim.run(&mut side, Duration::from_secs(10));
    let Side::Lookup(l) = side else { panic!() };
    assert_eq!(l.versions.len(), 1, "the holders' answers counted");
    assert_eq!(l.versions.values().next().unwrap().holders.len(), 3);
}

#[test]
fn lookup_with_a_dead_member_ends_on_enough_answers_not_the_timeout() {
    let mut sim = Sim::new(6, 0.0, 26);
    let holders = stored_on_three(&mut sim, "dead/member");
    // A member that is not a holder dies; every member is known.
    let dead = sim
        .nodes
        .iter()
        .position(|n| !holders.contains(&n.core.node_id()))
        .unwrap();
    sim.nodes[dead].alive = false;
    let t0 = sim.now;
    let mut side = lookup(&sim, "dead/member");
    if let Side::Lookup(m) = &mut side {
        m.set_members(all_members(&sim));
    }
    sim.run(&mut side, Duration::from_secs(10));
    let took = sim.now - t0;
    let Side::Lookup(l) = side else { panic!() };
    assert_eq!(l.versions.len(), 1);
    // 6 - 3 + 1 = 4 answers hold one of every 3 holders; then the grace.
    let grace = GetTimers::default().lookup_grace;
    assert!(took <= grace + Duration::from_micros(300), "took {took:?}");
    let (answered, silent) = l.round_report();
    assert_eq!(answered.len(), 5);
    assert!(silent.is_empty(), "ended by its grace: nobody set aside");
}

#[test]
fn informed_lookup_with_too_few_answers_asks_again_until_max_queries() {
    let mut sim = Sim::new(6, 0.0, 27);
    let holders = stored_on_three(&mut sim, "few/answers");
    // The three holders are down: the 3 answers (< 6 - 3 + 1) say "none",
    // which is not trusted after one timeout; the lookup asks again.
    for n in &mut sim.nodes {
        if holders.contains(&n.core.node_id()) {
            n.alive = false;
        }
    }
    let t0 = sim.now;
    let mut side = lookup(&sim, "few/answers");
    if let Side::Lookup(m) = &mut side {
        m.set_members(all_members(&sim));
    }
    sim.run(&mut side, Duration::from_secs(10));
    let took = sim.now - t0;
    // Asked until `max_queries` rounds: each could add a lost answer.
    let t = GetTimers::default();
    assert_eq!(took, t.max_queries * t.offer_timeout, "took {took:?}");
    let Side::Lookup(l) = side else { panic!() };
    let (_, silent) = l.round_report();
    assert_eq!(
        silent.len(),
        3,
        "the dead are reported after the last timeout"
    );
}

#[test]
fn bid_round_ends_when_every_member_answered() {
    let mut sim = Sim::new(6, 0.0, 23);
    let t0 = sim.now;
    let data = payload(10_000, 23);
    let mut side = sim.put(&data, Mode::NgMulticast, 3, ChunkKind::Data);
    if let Side::Put(m) = &mut side {
        m.set_members(all_members(&sim));
    }
    put_done(&sim.run(&mut side, Duration::from_secs(10)));
    let accept = sim.first_accept_at.expect("accepted") - t0;
    assert!(
        accept <= Duration::from_micros(300),
        "PUT_ACCEPT left {accept:?} after the proposal"
    );
}

#[test]
fn silent_member_costs_one_grace_then_is_set_aside() {
    let mut sim = Sim::new(6, 0.0, 24);
    sim.nodes[5].alive = false;
    let mut members = Membership::default();
    members.settle(GROUP, &all_members(&sim), &[]);
    let mut took = Vec::new();
    for i in 0..2u8 {
        let t0 = sim.now;
        let data = payload(10_000, 40 + i);
        let mut side = sim.put(&data, Mode::NgMulticast, 3, ChunkKind::Data);
        if let Side::Put(m) = &mut side {
            m.set_members(members.known(GROUP));
        }
        sim.first_accept_at = None;
        put_done(&sim.run(&mut side, Duration::from_secs(10)));
        took.push(sim.first_accept_at.unwrap() - t0);
        let Side::Put(m) = side else { panic!() };
        let (answered, silent) = m.round_report();
        members.settle(GROUP, &answered, &silent);
    }
    // R usable bids came at once; the dead member costs the grace for a
    // known member still out, not the bid timeout.
    let grace = PutTimers::default().bid_grace_known;
    assert!(
        took[0] >= grace && took[0] <= grace + Duration::from_micros(300),
        "{took:?}"
    );
    assert!(took[1] <= Duration::from_micros(300), "{took:?}");
    assert_eq!(members.known(GROUP), vec![1, 2, 3, 4, 5]);
}

/// The lossy lab's "not found": a query lost on a trunk reached one
/// member, the others were set aside, and the next lookups waited for
/// that member alone, ending on its "none". The wait may shrink; the
/// quorum (N - R + 1 of every member ever heard from) does not.
#[test]
fn a_lookup_waiting_for_one_member_still_needs_a_quorum_of_all() {
    let mut sim = Sim::new(6, 0.0, 28);
    let holders = stored_on_three(&mut sim, "set/aside");
    let other = all_members(&sim)
        .into_iter()
        .find(|n| !holders.contains(n))
        .unwrap();
    let mut members = Membership::default();
    members.settle(GROUP, &all_members(&sim), &[]);
    let silent: Vec<u32> = all_members(&sim)
        .into_iter()
        .filter(|n| *n != other)
        .collect();
    members.settle(GROUP, &[other], &silent);
    assert_eq!(members.known(GROUP), vec![other]);
    let t0 = sim.now;
    let mut side = lookup(&sim, "set/aside");
    if let Side::Lookup(m) = &mut side {
        m.set_members(members.known(GROUP));
        m.set_total(members.all(GROUP));
    }
    sim.run(&mut side, Duration::from_secs(10));
    let took = sim.now - t0;
    let Side::Lookup(l) = side else { panic!() };
    assert_eq!(l.versions.len(), 1, "the holders' answers counted");
    // 6 - 3 + 1 = 4 answers, at once: no grace and no timeout waited.
    assert!(took <= Duration::from_micros(300), "took {took:?}");
    assert!(l.responders().len() >= 4);
}
