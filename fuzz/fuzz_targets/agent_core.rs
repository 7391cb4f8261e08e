//! The agent's authenticated path: every fuzz input is cut into datagrams that
//! are sealed with the controller's key (valid tag, fresh timestamp and
//! sequence), so the bytes reach the sans-I/O core's decoding, validation,
//! planning, batches and leases, not just the tag check. Interleaved steps
//! advance time and complete or fail the backend's actions.
//!
//! Checked on every action: groups stay inside the rendezvous range, installs
//! name only ports the switch has and never an empty set, the agent holds no
//! more groups than its capacity, and nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::{Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use subcast_agent::backend::{Lookup, PortId, PortSet, SwitchView};
use subcast_agent::config::{MemberDef, ParentGroup};
use subcast_agent::core::action::{ActionError, BackendAction, Change};
use subcast_agent::core::metrics::Metrics;
use subcast_agent::core::validate::Parents;
use subcast_agent::core::{Agent, AgentSettings, Now};
use subcast_proto::{BackendKind, Key, Keyring, MacAddr, Member};

const CAPACITY: u32 = 8;

/// Six ports; hosts 1..=6 behind them; parent ff15::2 known to the switch.
#[derive(Debug)]
struct View;

fn mac(i: u8) -> MacAddr {
    MacAddr([2, 0, 0, 0, 0, i])
}

impl SwitchView for View {
    fn kind(&self) -> BackendKind {
        BackendKind::LinuxBridge
    }
    fn port_count(&self) -> u16 {
        6
    }
    fn table_capacity(&self) -> Option<u32> {
        Some(CAPACITY)
    }
    fn port_toward(&self, _vlan: u16, m: &Member) -> Lookup<PortId> {
        let i = match m {
            Member::Mac(m) if m.0[..5] == [2, 0, 0, 0, 0] => m.0[5],
            Member::Ipv6(a) if a.segments()[..7] == [0xfd00, 0, 0, 0, 0, 0, 0] => a.octets()[15],
            _ => 0,
        };
        match i {
            1..=6 => Lookup::Found(u32::from(i)),
            7 => Lookup::Unknown,
            _ => Lookup::Absent,
        }
    }
    fn parent_ports(&self, _vlan: u16, parent: Ipv6Addr) -> Lookup<PortSet> {
        if parent == "ff15::2".parse::<Ipv6Addr>().unwrap() {
            Lookup::Found([4, 5, 6].into())
        } else {
            Lookup::Absent
        }
    }
}

fn settings() -> AgentSettings {
    let members = (1..=4u8)
        .map(|i| MemberDef {
            name: format!("h{i}"),
            ipv6: format!("fd00::{i}").parse().unwrap(),
            mac: mac(i),
        })
        .collect();
    AgentSettings {
        switch_id: 7,
        rendezvous_range: "ff15::5c00:0/104".parse().unwrap(),
        max_lifetime_ms: 600_000,
        max_clock_skew_ms: 30_000,
        parents: Parents::new(&[ParentGroup {
            address: "ff15::1".parse().unwrap(),
            vlan: 0,
            members,
        }]),
        controller: "[fd00::100]:7411".parse().unwrap(),
        controller_sources: Vec::new(),
        heartbeat_interval: Duration::from_secs(1),
        table_capacity: None,
        sweep_interval: Some(Duration::from_secs(5)),
    }
}

/// A datagram of type `msg_type` with `body`, sealed with `key`.
fn seal_raw(key: &Key, msg_type: u8, body: &[u8], seq: u64, ts: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(64 + body.len());
    b.extend_from_slice(&0x5343u16.to_be_bytes());
    b.push(1);
    b.push(msg_type);
    b.extend_from_slice(&0u16.to_be_bytes());
    b.extend_from_slice(&(body.len().min(usize::from(u16::MAX)) as u16).to_be_bytes());
    b.extend_from_slice(&key.id.to_be_bytes());
    b.extend_from_slice(&9000u32.to_be_bytes());
    b.extend_from_slice(&seq.to_be_bytes());
    b.extend_from_slice(&ts.to_be_bytes());
    b.extend_from_slice(body);
    let tag = key.tag(&b);
    b.extend_from_slice(&tag);
    b
}

/// Inside ff15::5c00:0/104.
fn in_range(g: Ipv6Addr) -> bool {
    let o = g.octets();
    o[..12] == [0xff, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] && o[12] == 0x5c
}

fn check(a: &BackendAction) {
    if let BackendAction::Apply { changes, .. } = a {
        for c in changes {
            assert!(in_range(c.group()), "{c:?} outside the range");
            if let Change::Install { ports, .. } = c {
                assert!(!ports.is_empty(), "{c:?}");
                assert!(ports.iter().all(|p| (1..=6).contains(p)), "{c:?}");
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let key = Key::new(1, [1; 32]);
    let t0 = Instant::now();
    let mut now = Now::new(t0, 1_800_000_000_000_000);
    let mut agent = Agent::new(
        settings(),
        Arc::new(View),
        Keyring::new([key.clone()]),
        Key::new(101, [2; 32]),
        Arc::new(Metrics::new()),
        now,
    );
    let from: SocketAddr = "[fd00::100]:7411".parse().unwrap();
    let mut pending: Vec<BackendAction> = Vec::new();
    let mut seq = now.unix_us;
    let mut rest = data;
    // Each step: op byte, then (for datagrams) type byte, length byte, body.
    while let Some((&op, r)) = rest.split_first() {
        rest = r;
        match op % 4 {
            0 | 1 => {
                let Some((&ty, r)) = rest.split_first() else {
                    break;
                };
                let Some((&len, r)) = r.split_first() else {
                    break;
                };
                let n = usize::from(len).min(r.len());
                let (body, r) = r.split_at(n);
                rest = r;
                seq += 1;
                agent.handle_datagram(&seal_raw(&key, ty, body, seq, now.unix_us), from, now);
            }
            2 => {
                let Some((&ms, r)) = rest.split_first() else {
                    break;
                };
                rest = r;
                now = now.after(Duration::from_millis(u64::from(ms) * 50));
                agent.handle_timeout(now);
            }
            _ => {
                // Complete the oldest action: success unless the op says fail.
                if !pending.is_empty() {
                    let a = pending.remove(0);
                    let r = if op & 0x10 != 0 {
                        Err(ActionError {
                            error: subcast_agent::backend::BackendError::Refused("fuzz".into()),
                            change: Some(0),
                            uncertain: op & 0x20 != 0,
                        })
                    } else {
                        Ok(())
                    };
                    agent.on_action_done(a.id(), r, now);
                }
            }
        }
        while let Some(a) = agent.poll_action() {
            check(&a);
            pending.push(a);
        }
        while agent.poll_transmit().is_some() {}
        assert!(agent.leases().len() <= CAPACITY as usize, "over capacity");
        assert!(pending.len() <= 1, "one action at a time");
        let _ = agent.poll_timeout();
    }
});
