//! The storage node's authenticated path: the fuzz input is cut into
//! Replicast datagrams whose header is built here (valid magic, version,
//! length, a sender among the node's peers) and whose tag list is computed
//! with the pair key that sender shares with node 1, so every body reaches
//! `NodeCore::handle` after `open`, not only the tag check. Steps between
//! datagrams advance time and complete the core's disk actions (an
//! in-memory disk that sometimes fails).
//!
//! Checked after every step: nothing panics, and the core's queues and
//! buffers stay within its limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use std::net::{Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};
use subcast_node::index::StoreIndex;
use subcast_node::node::limits::Limits;
use subcast_node::node::scrub::ScrubParams;
use subcast_node::node::{NodeAction, NodeCore, NodeParams};
use subcast_node::receive::ReceiveTimers;
use subcast_node::store::StoreError;
use subcast_proto::replicast::{open, tag_encoded};
use subcast_proto::{PairKeys, ReplayGuard};

const SECRET: [u8; 32] = [9; 32];
const GROUP: Ipv6Addr = Ipv6Addr::new(0xff15, 0, 0, 0, 0, 0, 0x5c, 0);
const PEERS: [u32; 3] = [2, 3, 0x8000_0001];

fn addr(id: u32) -> SocketAddr {
    SocketAddr::new(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, id as u16).into(), 7412)
}

fuzz_target!(|data: &[u8]| {
    let me = PairKeys::provision(1, &SECRET, 1, PEERS).expect("ids");
    let senders: Vec<PairKeys> = PEERS
        .iter()
        .map(|p| PairKeys::provision(1, &SECRET, *p, [1]).expect("ids"))
        .collect();
    // Small limits, so that the fuzzer reaches them (and its memory cap
    // is not the first limit hit).
    let limits = Limits {
        reserve_bytes: 0,
        max_concurrent: 4,
        max_receive_bytes: 4 << 20,
        max_chunk_size: 1 << 20,
        max_serves: 4,
        max_queue: 64,
        ..Default::default()
    };
    let params = NodeParams {
        node_id: 1,
        groups: vec![GROUP],
        limits: limits.clone(),
        ingest_rate: 100_000_000,
        timers: ReceiveTimers::default(),
        addresses: subcast_node::keys::Addresses::default(),
        cluster_groups: vec![GROUP],
        port: 7412,
        fetch_payload: 1372,
        scrub: ScrubParams::default(),
        max_repairs: 4,
    };
    let mut index = StoreIndex::default();
    index.free_bytes = 1 << 30;
    let mut core = NodeCore::new(params, index);
    let mut guard = ReplayGuard::new(u64::MAX / 4);
    let mut disk: HashMap<[u8; 32], Vec<u8>> = HashMap::new();
    let t0 = Instant::now();
    let mut now = t0;
    let mut seq = 1u64;
    let mut rest = data;
    // Each step: op (1), then for a datagram: type (1), sender (1), body
    // length (2), body.
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        match op % 4 {
            0 => now += Duration::from_millis(u64::from(op / 4) * 10),
            1 => core.handle_timeout(now),
            _ => {
                if rest.len() < 4 {
                    break;
                }
                let msg_type = rest[0];
                let who = usize::from(rest[1]) % PEERS.len();
                let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
                let len = len.min(rest.len() - 4);
                let body = &rest[4..4 + len];
                rest = &rest[4 + len..];
                let mut dg = Vec::with_capacity(32 + len);
                dg.extend_from_slice(&0x5343u16.to_be_bytes());
                dg.push(1);
                dg.push(msg_type);
                dg.extend_from_slice(&1u16.to_be_bytes()); // TAG_LIST
                dg.extend_from_slice(&(len as u16).to_be_bytes());
                dg.extend_from_slice(&1u32.to_be_bytes());
                dg.extend_from_slice(&PEERS[who].to_be_bytes());
                seq += 1;
                dg.extend_from_slice(&seq.to_be_bytes());
                let ts = subcast_proto::now_us();
                dg.extend_from_slice(&ts.to_be_bytes());
                dg.extend_from_slice(body);
                let Ok(bytes) = tag_encoded(&senders[who], &dg, &[1]) else {
                    continue;
                };
                match open(&me, &mut guard, &bytes, 0) {
                    Ok(d) => core.handle(addr(PEERS[who]), d.header.sender_id, d.message, now, 0),
                    Err(e) => core.refused(&bytes, e.kind()),
                }
            }
        }
        // The owner's side: perform what the core asked for.
        let mut fail = op & 0x80 != 0;
        while let Some(a) = core.poll_action() {
            match a {
                NodeAction::Join(_) | NodeAction::Leave(_) => {}
                NodeAction::Store { job, id, payload, .. } => {
                    fail = !fail;
                    if fail {
                        let e = std::io::Error::other("disk full");
                        core.on_stored(job, Err(StoreError::Io { path: "x".into(), source: e }));
                    } else {
                        disk.insert(id, payload.into_vec());
                        core.on_stored(job, Ok(()));
                    }
                }
                NodeAction::Read { job, id } => {
                    let r = disk.get(&id).cloned().ok_or_else(|| StoreError::Io {
                        path: "x".into(),
                        source: std::io::ErrorKind::NotFound.into(),
                    });
                    core.on_read(job, r);
                }
            }
        }
        let g = core.gauges();
        assert!(g.receives <= limits.max_concurrent, "{g:?}");
        assert!(g.serves <= limits.max_serves, "{g:?}");
        assert!(
            g.receive_buffer_bytes + g.storing_bytes <= limits.max_receive_bytes,
            "{g:?}"
        );
        assert!(g.control_queue <= limits.max_queue, "{g:?}");
        while core.poll_transmit().is_some() {}
    }
});
