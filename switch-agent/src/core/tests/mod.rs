//! Unit tests of the core under simulated time, against the in-memory
//! switch (`backend::memory`): no sockets, no sleeping. [`Sim`] plays the
//! daemon (executes actions, advances time to each deadline) and the
//! controller (seals instructions, opens answers).

mod batch;
mod gate;
mod instructions;
mod lifecycle;
mod repush;

use super::*;
use crate::backend::memory::{MemState, MemSwitch};
use crate::config::{MemberDef, ParentGroup};
use subcast_proto::{
    BatchItem, Clear, HelloAck, MacAddr, Member, Members, Opener, ReplayGuard, SetSubset,
};

pub const Y: &str = "ff15::1";
/// A parent the configuration does not define; the switch knows it.
pub const Y2: &str = "ff15::2";
pub const CTL_KEY_ID: u32 = 1;
pub const AGENT_KEY_ID: u32 = 101;

pub fn ctl_key() -> Key {
    Key::new(CTL_KEY_ID, [1; 32])
}
pub fn agent_key() -> Key {
    Key::new(AGENT_KEY_ID, [2; 32])
}
pub fn mac(i: u8) -> MacAddr {
    MacAddr([2, 0, 0, 0, 0, i])
}
pub fn ip(i: u8) -> Ipv6Addr {
    format!("fd00::{i}").parse().unwrap()
}
pub fn x(i: u16) -> Ipv6Addr {
    format!("ff15::5c00:{i:x}").parse().unwrap()
}
pub fn ctl_addr() -> SocketAddr {
    "[fd00::100]:7411".parse().unwrap()
}

/// Hosts h1..h6 on ports 1..6; Y = {h1..h4} configured; Y2 = ports {5, 6}
/// known to the switch only.
pub fn switch() -> MemState {
    let mut st = MemState::default();
    for i in 1..=6u8 {
        st.ports.insert(u32::from(i));
        st.fdb.insert(mac(i), u32::from(i));
        st.neigh.insert(ip(i), mac(i));
    }
    st.parents
        .insert((0, Y2.parse().unwrap()), [5, 6].into_iter().collect());
    st
}

pub fn settings() -> AgentSettings {
    let members = (1..=4u8)
        .map(|i| MemberDef {
            name: format!("h{i}"),
            ipv6: ip(i),
            mac: mac(i),
        })
        .collect();
    AgentSettings {
        switch_id: 7,
        rendezvous_range: "ff15::5c00:0/104".parse().unwrap(),
        max_lifetime_ms: 600_000,
        max_clock_skew_ms: 30_000,
        parents: Parents::new(&[ParentGroup {
            address: Y.parse().unwrap(),
            vlan: 0,
            members,
        }]),
        controller: ctl_addr(),
        controller_sources: Vec::new(),
        heartbeat_interval: Duration::from_secs(1),
        table_capacity: None,
        sweep_interval: None,
    }
}

/// The daemon and the controller around one [`Agent`].
pub struct Sim {
    pub agent: Agent,
    pub sw: MemSwitch,
    pub now: Now,
    pub ctl: Sealer,
    pub opener: Opener,
    /// Actions handed to the backend so far.
    pub actions: Vec<BackendAction>,
    /// Hold actions instead of executing them (see [`Sim::complete`]).
    pub hold: bool,
    pub held: VecDeque<BackendAction>,
    /// Every datagram the agent sent, opened, with its destination.
    pub sent: Vec<(SocketAddr, Message)>,
}

impl Sim {
    pub fn new(st: MemState) -> Sim {
        Sim::with(st, settings())
    }

    /// Starts the agent and runs the start cleanup.
    pub fn with(st: MemState, settings: AgentSettings) -> Sim {
        let sw = MemSwitch::new(st);
        let now = Now::new(Instant::now(), 1_800_000_000_000_000);
        let agent = Agent::new(
            settings,
            Arc::new(sw.clone()),
            Keyring::new([ctl_key()]),
            agent_key(),
            Arc::new(Metrics::new()),
            now,
        );
        let mut s = Sim {
            agent,
            sw,
            now,
            ctl: Sealer::new(ctl_key(), 9000, now.unix_us - 1),
            opener: Opener::new(Keyring::new([agent_key()]), ReplayGuard::default()),
            actions: Vec::new(),
            hold: false,
            held: VecDeque::new(),
            sent: Vec::new(),
        };
        s.run();
        s
    }

    /// Executes every pending action (unless held) and collects datagrams.
    pub fn run(&mut self) {
        loop {
            while let Some(t) = self.agent.poll_transmit() {
                let m = self
                    .opener
                    .open(&t.bytes, self.now.unix_us)
                    .expect("the agent's datagrams open under its key")
                    .message;
                self.sent.push((t.to, m));
            }
            let Some(a) = self.agent.poll_action() else {
                return;
            };
            self.actions.push(a.clone());
            if self.hold {
                self.held.push_back(a);
                continue;
            }
            let r = self.sw.execute(&a);
            self.agent.on_action_done(a.id(), r, self.now);
        }
    }

    /// Completes the oldest held action.
    pub fn complete(&mut self) {
        let a = self.held.pop_front().expect("a held action");
        let r = self.sw.execute(&a);
        self.agent.on_action_done(a.id(), r, self.now);
        self.run();
    }

    /// Delivers raw bytes from `from`; returns what the agent sent.
    pub fn deliver(&mut self, bytes: &[u8], from: SocketAddr) -> Vec<Message> {
        let before = self.sent.len();
        self.agent.handle_datagram(bytes, from, self.now);
        self.run();
        self.sent[before..].iter().map(|(_, m)| m.clone()).collect()
    }

    /// Seals `m` as the controller and delivers it; returns the answers.
    pub fn send(&mut self, m: &Message) -> Vec<Message> {
        let b = self.ctl.seal(m, self.now.unix_us);
        self.deliver(&b, ctl_addr())
    }

    /// Sends `m` and returns its one answer.
    pub fn request(&mut self, m: &Message) -> Message {
        let mut a = self.send(m);
        assert_eq!(a.len(), 1, "one answer to {m:?}, got {a:?}");
        a.remove(0)
    }

    /// Advances simulated time by `d`, firing every deadline on the way.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now.after(d);
        while let Some(t) = self.agent.poll_timeout() {
            if t > end.at {
                break;
            }
            self.now = self.now.at(t);
            self.agent.handle_timeout(self.now);
            self.run();
        }
        self.now = end;
        self.agent.handle_timeout(self.now);
        self.run();
    }

    /// Installed groups on the switch: group -> ports.
    pub fn on_switch(&self) -> BTreeMap<Ipv6Addr, Vec<u32>> {
        self.sw
            .state()
            .groups
            .iter()
            .map(|((_, g), p)| (*g, p.iter().copied().collect()))
            .collect()
    }

    pub fn applies(&self) -> usize {
        self.sw.state().applies
    }

    pub fn metric(&self, prefix: &str) -> f64 {
        self.agent
            .metrics()
            .encode()
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    /// HELLOs sent so far.
    pub fn hellos(&self) -> Vec<Hello> {
        self.sent
            .iter()
            .filter_map(|(_, m)| match m {
                Message::Hello(h) => Some(h.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn hello_ack(&mut self, instance: u64) {
        let m = Message::HelloAck(HelloAck {
            switch_id: 7,
            instance,
        });
        assert!(self.send(&m).is_empty(), "HELLO_ACK is not answered");
    }
}

pub fn members(hosts: &[u8]) -> Members {
    Members::List(hosts.iter().map(|i| Member::Ipv6(ip(*i))).collect())
}

pub fn set(txid: u64, group: Ipv6Addr, hosts: &[u8], lifetime_ms: u32) -> Message {
    Message::SetSubset(SetSubset {
        txid,
        vlan: 0,
        parent: Y.parse().unwrap(),
        group,
        lifetime_ms,
        members: members(hosts),
    })
}

pub fn clear(txid: u64, group: Ipv6Addr) -> Message {
    Message::Clear(Clear { txid, group })
}

pub fn set_item(group: Ipv6Addr, hosts: &[u8]) -> BatchItem {
    BatchItem::Set {
        vlan: 0,
        parent: Y.parse().unwrap(),
        group,
        lifetime_ms: 60_000,
        members: members(hosts),
    }
}

pub fn batch(txid: u64, items: Vec<BatchItem>) -> Message {
    Message::Batch(subcast_proto::Batch { txid, items })
}

pub fn ack_count(m: &Message, txid: u64) -> u16 {
    match m {
        Message::Ack(a) if a.txid == txid => a.port_count,
        other => panic!("expected ACK of {txid}, got {other:?}"),
    }
}

pub fn nak(m: &Message, txid: u64) -> (NakReason, String) {
    match m {
        Message::Nak(n) if n.txid == txid => (n.reason, n.detail.clone()),
        other => panic!("expected NAK of {txid}, got {other:?}"),
    }
}
