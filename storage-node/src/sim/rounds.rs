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
fn lookup_without_known_members_ends_after_r_answers_and_a_grace() {
    let mut sim = Sim::new(6, 0.0, 22);
    let t0 = sim.now;
    let mut side = lookup(&sim, "new/name");
    sim.run(&mut side, Duration::from_secs(10));
    let took = sim.now - t0;
    let grace = GetTimers::default().lookup_grace;
    assert!(
        took <= grace + Duration::from_micros(300),
        "cold lookup took {took:?}"
    );
    // What it learned makes the next lookup exact.
    let Side::Lookup(l) = side else { panic!() };
    let mut m = Membership::default();
    let (answered, silent) = l.round_report();
    m.settle(GROUP, &answered, &silent);
    assert_eq!(m.known(GROUP), all_members(&sim));
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
fn silent_member_costs_one_timeout_then_is_forgotten() {
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
    assert_eq!(took[0], PutTimers::default().bid_timeout, "{took:?}");
    assert!(took[1] <= Duration::from_micros(300), "{took:?}");
    assert_eq!(members.known(GROUP), vec![1, 2, 3, 4, 5]);
}
