//! Keyed DATA (0x47) and untagged DATA (0x4e) at a target: the key comes
//! wrapped in the PUT_ACCEPT; datagrams under it fill the chunk, and
//! untagged ones the slots a verified datagram opened the way to; others
//! are refused or counted as not for this node.

use super::*;
use crate::index::StoreIndex;
use crate::put::DataKey;
use std::sync::Arc;
use subcast_proto::replicast::{
    AckStatus, KeyedData, PutAccept, TransferKey, seal_keyed_data_into, seal_untagged_data_into,
};

const PER: usize = 1428;

fn target() -> NodeCore {
    let mut index = StoreIndex::default();
    index.free_bytes = 1 << 40;
    NodeCore::new(sim_params(1), index).with_keys(Arc::new(sim_keys(1, 3)))
}

fn accept(txid: u64, data: &[u8], keys: Vec<[u8; 32]>, targets: Vec<u32>) -> ReplicastMessage {
    ReplicastMessage::PutAccept(PutAccept {
        txid,
        chunk_id: crate::chunking::chunk_id(data),
        size: data.len() as u32,
        kind: ChunkKind::Data,
        datagram_payload: PER as u16,
        group: GROUP,
        targets,
        keys,
    })
}

fn keyed(key: &TransferKey, txid: u64, index: usize, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let end = ((index + 1) * PER).min(data.len());
    seal_keyed_data_into(&mut out, key, txid, index as u32, &data[index * PER..end]);
    out
}

fn untagged(txid: u64, index: usize, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let end = ((index + 1) * PER).min(data.len());
    seal_untagged_data_into(&mut out, txid, index as u32, &data[index * PER..end]);
    out
}

fn feed(core: &mut NodeCore, bytes: &[u8], now: Instant) {
    let d = KeyedData::parse(bytes).unwrap().unwrap();
    core.handle_keyed_data(client_addr(), &d, now);
}

fn stored(core: &mut NodeCore) -> Option<Vec<u8>> {
    std::iter::from_fn(|| core.poll_action()).find_map(|a| match a {
        NodeAction::Store { payload, .. } => Some(payload.into_vec()),
        _ => None,
    })
}

#[test]
fn keyed_data_under_the_wrapped_key_fills_the_chunk() {
    let mut core = target();
    let now = Instant::now();
    let data = payload(3 * PER + 17, 23);
    let dk = DataKey::random(Arc::new(sim_keys(CLIENT_ID, 3)));
    let wrapped = dk.wrap_for(9, &[2, 1, 3]).unwrap();
    core.handle(
        client_addr(),
        CLIENT_ID,
        accept(9, &data, wrapped, vec![2, 1, 3]),
        now,
        0,
    );
    // A datagram under another key (someone without the ACCEPT's key):
    // refused, nothing stored.
    let forged = TransferKey::from_bytes([7; 32]);
    feed(&mut core, &keyed(&forged, 9, 0, &data), now);
    assert_eq!(core.counters.refused_by_reason.get("bad-mac"), Some(&1));
    // Another txid: not for this node.
    feed(&mut core, &keyed(&dk.key, 10, 0, &data), now);
    assert_eq!(core.counters.data_datagrams_not_for_us, 1);
    for i in (0..4).rev() {
        feed(&mut core, &keyed(&dk.key, 9, i, &data), now);
    }
    assert_eq!(stored(&mut core).as_deref(), Some(&data[..]));
    assert_eq!(core.counters.data_datagrams_as_target, 4);
    // After the transfer: a repeat (a replay, or a copy another target
    // asked for) is refused, its key gone.
    feed(&mut core, &keyed(&dk.key, 9, 1, &data), now);
    assert_eq!(
        core.counters.refused_by_reason.get("transfer-over"),
        Some(&1)
    );
    assert_eq!(core.counters.duplicates, 0);
}

#[test]
fn a_key_wrapped_for_another_target_does_not_open_here() {
    let mut core = target();
    let now = Instant::now();
    let data = payload(500, 3);
    let dk = DataKey::random(Arc::new(sim_keys(CLIENT_ID, 3)));
    // Node 1's slot holds node 2's wrapped key.
    let mut wrapped = dk.wrap_for(4, &[1, 2]).unwrap();
    wrapped.swap(0, 1);
    core.handle(
        client_addr(),
        CLIENT_ID,
        accept(4, &data, wrapped, vec![1, 2]),
        now,
        0,
    );
    feed(&mut core, &keyed(&dk.key, 4, 0, &data), now);
    assert_eq!(core.counters.refused_by_reason.get("bad-mac"), Some(&1));
    assert_eq!(stored(&mut core), None);
}

#[test]
fn a_short_or_long_last_datagram_is_bad_data() {
    let mut core = target();
    let now = Instant::now();
    let data = payload(2 * PER, 5);
    let dk = DataKey::random(Arc::new(sim_keys(CLIENT_ID, 3)));
    let wrapped = dk.wrap_for(6, &[1]).unwrap();
    core.handle(
        client_addr(),
        CLIENT_ID,
        accept(6, &data, wrapped, vec![1]),
        now,
        0,
    );
    let mut out = Vec::new();
    seal_keyed_data_into(&mut out, &dk.key, 6, 1, &data[PER..2 * PER - 1]);
    feed(&mut core, &out, now);
    let mut out = Vec::new();
    seal_keyed_data_into(&mut out, &dk.key, 6, 2, &data[..10]);
    feed(&mut core, &out, now);
    assert_eq!(core.counters.bad_data, 2);
    assert_eq!(stored(&mut core), None);
}

/// The Store action's job and payload, if one was asked for.
fn store_job(core: &mut NodeCore) -> Option<(u64, Vec<u8>)> {
    std::iter::from_fn(|| core.poll_action()).find_map(|a| match a {
        NodeAction::Store { job, payload, .. } => Some((job, payload.into_vec())),
        _ => None,
    })
}

fn ack_statuses(core: &mut NodeCore) -> Vec<AckStatus> {
    std::iter::from_fn(|| core.poll_transmit())
        .filter_map(|o| match o {
            crate::outgoing::Outbound::Control(t) => match t.msg {
                ReplicastMessage::PutAck(a) => Some(a.status),
                _ => None,
            },
            crate::outgoing::Outbound::Data(_) => None,
        })
        .collect()
}

#[test]
fn a_forgery_taken_unverified_costs_one_repeat_that_verifies_every_datagram() {
    let mut core = target();
    let now = Instant::now();
    let data = payload(4 * PER, 31);
    let dk = DataKey::random(Arc::new(sim_keys(CLIENT_ID, 3)));
    let wrapped = dk.wrap_for(12, &[1]).unwrap();
    let acc = accept(12, &data, wrapped, vec![1]);
    core.handle(client_addr(), CLIENT_ID, acc.clone(), now, 0);
    // The first datagram is verified (it proves the key)...
    feed(&mut core, &keyed(&dk.key, 12, 0, &data), now);
    // ... a forgery for an empty slot is taken as it is (other content,
    // under a key nobody was given) ...
    let mut bad = data.clone();
    bad[PER + 5] ^= 0xff;
    let forged = TransferKey::from_bytes([9; 32]);
    feed(&mut core, &keyed(&forged, 12, 1, &bad), now);
    assert_eq!(core.counters.refused_by_reason.get("bad-mac"), None);
    // ... but not one of another length than its index has: verified, and
    // refused.
    let mut short = Vec::new();
    seal_keyed_data_into(&mut short, &forged, 12, 2, &bad[2 * PER..3 * PER - 1]);
    feed(&mut core, &short, now);
    assert_eq!(core.counters.refused_by_reason.get("bad-mac"), Some(&1));
    // ... and a repeat of a slot already filled is verified: the genuine
    // datagram 1 is a duplicate, a second forgery is refused.
    feed(&mut core, &keyed(&dk.key, 12, 1, &data), now);
    feed(&mut core, &keyed(&forged, 12, 2, &bad), now);
    feed(&mut core, &keyed(&forged, 12, 2, &bad), now);
    assert_eq!(core.counters.refused_by_reason.get("bad-mac"), Some(&2));
    feed(&mut core, &keyed(&dk.key, 12, 3, &data), now);
    // The chunk is complete, with the forged octet in it: the store's hash
    // check (Store::put) refuses it and the ACK says so.
    let (job, got) = store_job(&mut core).expect("a Store action");
    assert_ne!(got, data);
    assert_ne!(
        crate::chunking::chunk_id(&got),
        crate::chunking::chunk_id(&data)
    );
    core.on_stored(job, Err(crate::store::StoreError::HashMismatch("x".into())));
    assert_eq!(ack_statuses(&mut core), vec![AckStatus::HashMismatch]);
    // The writer sends the chunk again (its poll repeats the ACCEPT): now
    // every datagram is verified and the forgeries are refused, first or
    // not, so the repeat fills the chunk with the genuine datagrams.
    core.handle(client_addr(), CLIENT_ID, acc, now, 0);
    feed(&mut core, &keyed(&dk.key, 12, 0, &data), now);
    feed(&mut core, &keyed(&forged, 12, 1, &bad), now);
    assert_eq!(core.counters.refused_by_reason.get("bad-mac"), Some(&3));
    for i in 1..4 {
        feed(&mut core, &keyed(&dk.key, 12, i, &data), now);
    }
    let (_, got) = store_job(&mut core).expect("a Store action");
    assert_eq!(got, data);
}

#[test]
fn untagged_data_fills_only_empty_slots_after_a_verified_datagram() {
    let mut core = target();
    let now = Instant::now();
    let data = payload(4 * PER + 9, 41);
    let dk = DataKey::random(Arc::new(sim_keys(CLIENT_ID, 3)));
    let wrapped = dk.wrap_for(14, &[1]).unwrap();
    core.handle(
        client_addr(),
        CLIENT_ID,
        accept(14, &data, wrapped, vec![1]),
        now,
        0,
    );
    // Before any verified datagram nothing proves the sender holds the
    // key: untagged DATA is refused (the NACK asks for it again, tagged).
    feed(&mut core, &untagged(14, 2, &data), now);
    assert_eq!(core.counters.refused_by_reason.get("untagged"), Some(&1));
    assert_eq!(core.counters.data_datagrams_as_target, 0);
    // Another txid's untagged DATA is not for this node, as keyed DATA.
    feed(&mut core, &untagged(15, 0, &data), now);
    assert_eq!(core.counters.data_datagrams_not_for_us, 1);
    // A tagged datagram opens the transfer; then untagged ones fill empty
    // slots of the right length...
    feed(&mut core, &keyed(&dk.key, 14, 0, &data), now);
    feed(&mut core, &untagged(14, 1, &data), now);
    feed(&mut core, &untagged(14, 2, &data), now);
    assert_eq!(core.counters.data_datagrams_as_target, 3);
    // ... but never a slot already held (that takes a verified repeat)...
    feed(&mut core, &untagged(14, 1, &data), now);
    assert_eq!(core.counters.refused_by_reason.get("untagged"), Some(&2));
    // ... nor one of another length than its index has.
    let mut short = Vec::new();
    seal_untagged_data_into(&mut short, 14, 3, &data[3 * PER..4 * PER - 1]);
    feed(&mut core, &short, now);
    assert_eq!(core.counters.refused_by_reason.get("untagged"), Some(&3));
    assert_eq!(stored(&mut core), None);
    feed(&mut core, &untagged(14, 3, &data), now);
    feed(&mut core, &untagged(14, 4, &data), now);
    assert_eq!(stored(&mut core).as_deref(), Some(&data[..]));
    assert_eq!(core.counters.refused_by_reason.get("bad-mac"), None);
}

#[test]
fn after_a_hash_mismatch_untagged_data_is_refused() {
    let mut core = target();
    let now = Instant::now();
    let data = payload(3 * PER, 43);
    let dk = DataKey::random(Arc::new(sim_keys(CLIENT_ID, 3)));
    let wrapped = dk.wrap_for(16, &[1]).unwrap();
    let acc = accept(16, &data, wrapped, vec![1]);
    core.handle(client_addr(), CLIENT_ID, acc.clone(), now, 0);
    // A forged untagged datagram gets into an empty slot (as a forged
    // tagged one would): the chunk fails its hash.
    let mut bad = data.clone();
    bad[PER] ^= 1;
    feed(&mut core, &keyed(&dk.key, 16, 0, &data), now);
    feed(&mut core, &untagged(16, 1, &bad), now);
    feed(&mut core, &untagged(16, 2, &data), now);
    let (job, got) = store_job(&mut core).expect("a Store action");
    assert_ne!(got, data);
    core.on_stored(job, Err(crate::store::StoreError::HashMismatch("x".into())));
    assert_eq!(ack_statuses(&mut core), vec![AckStatus::HashMismatch]);
    // The repeat must verify every datagram: untagged DATA is refused even
    // for an empty slot, tagged DATA fills the chunk.
    core.handle(client_addr(), CLIENT_ID, acc, now, 0);
    feed(&mut core, &keyed(&dk.key, 16, 0, &data), now);
    feed(&mut core, &untagged(16, 1, &bad), now);
    feed(&mut core, &untagged(16, 2, &data), now);
    assert_eq!(core.counters.refused_by_reason.get("untagged"), Some(&2));
    feed(&mut core, &keyed(&dk.key, 16, 1, &data), now);
    feed(&mut core, &keyed(&dk.key, 16, 2, &data), now);
    let (_, got) = store_job(&mut core).expect("a Store action");
    assert_eq!(got, data);
}
