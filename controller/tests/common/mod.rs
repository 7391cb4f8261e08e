//! Test helpers: simulated agents speaking the real sealed protocol over
//! real UDP on 127.0.0.1, and configs that point the controller at them.
//! (The real agent is tested end to end in the labs.)
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use subcast_proto::{
    Ack, BackendKind, BatchAck, BatchItem, Heartbeat, Hello, Key, Keyring, Message, Nak, NakReason,
    Opener, ReplayGuard, Sealer, now_us,
};
use tokio::net::UdpSocket;

pub const AGENT_KEY: &str = "5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c01";
pub const NODE_KEY: &str = "5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c02";
pub const ADMIN: &str = "test-admin-token-0123456789";
pub const NODE: &str = "test-node-token-0123456789";

/// How a simulated agent answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Behaviour {
    Ack,
    /// Drop the first N instructions (per txid), then ACK.
    LoseFirst(u32),
    Nak(NakReason),
    Silent,
}

#[derive(Debug, Default)]
pub struct AgentLog {
    /// Every instruction opened: (txid, message).
    pub received: Vec<Message>,
    /// group -> members text, as the switch would hold it.
    pub installed: BTreeMap<Ipv6Addr, String>,
    /// Datagrams that did not open (bad tag, replay...).
    pub rejected: Vec<String>,
    /// HELLO_ACKs received (their instance).
    pub hello_acks: Vec<u64>,
    /// Most groups held at once.
    pub peak: usize,
    seen_per_txid: BTreeMap<u64, u32>,
}

#[derive(Debug, Clone)]
pub struct FakeAgent {
    pub switch_id: u32,
    pub addr: SocketAddr,
    pub behaviour: Arc<Mutex<Behaviour>>,
    pub log: Arc<Mutex<AgentLog>>,
    socket: Arc<UdpSocket>,
    sealer: Arc<Mutex<Sealer>>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl FakeAgent {
    pub async fn start(switch_id: u32, behaviour: Behaviour) -> FakeAgent {
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let addr = socket.local_addr().unwrap();
        let key = Key::from_hex(1, AGENT_KEY).unwrap();
        let sealer = Arc::new(Mutex::new(Sealer::new(key.clone(), switch_id, now_us())));
        let behaviour = Arc::new(Mutex::new(behaviour));
        let log: Arc<Mutex<AgentLog>> = Arc::default();
        let task = {
            let (socket, sealer, behaviour, log) = (
                socket.clone(),
                sealer.clone(),
                behaviour.clone(),
                log.clone(),
            );
            tokio::spawn(async move {
                let mut opener = Opener::new(Keyring::new([key]), ReplayGuard::default());
                let mut buf = vec![0u8; 10_000];
                loop {
                    let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                        return;
                    };
                    let dg = match opener.open(&buf[..n], now_us()) {
                        Ok(d) => d,
                        Err(e) => {
                            log.lock().unwrap().rejected.push(e.kind().to_owned());
                            continue;
                        }
                    };
                    let b = behaviour.lock().unwrap().clone();
                    if let Message::HelloAck(a) = &dg.message {
                        log.lock().unwrap().hello_acks.push(a.instance);
                        continue;
                    }
                    let txid = match dg.message.txid() {
                        Some(t) => t,
                        None => continue,
                    };
                    let reply = {
                        let mut l = log.lock().unwrap();
                        l.received.push(dg.message.clone());
                        let seen = l.seen_per_txid.entry(txid).or_insert(0);
                        *seen += 1;
                        let seen = *seen;
                        match b {
                            Behaviour::Silent => None,
                            Behaviour::LoseFirst(k) if seen <= k => None,
                            Behaviour::Nak(reason) => Some(Message::Nak(Nak {
                                txid,
                                switch_id,
                                reason,
                                detail: format!(
                                    "simulated {} on switch {switch_id}",
                                    reason.name()
                                ),
                            })),
                            _ => {
                                let items: Vec<BatchItem> = match &dg.message {
                                    Message::SetSubset(s) => vec![BatchItem::from_set(s)],
                                    Message::Clear(c) => vec![BatchItem::Clear { group: c.group }],
                                    Message::Batch(b) => b.items.clone(),
                                    _ => vec![],
                                };
                                // Applied in order, all of them (BATCH).
                                for it in &items {
                                    match it {
                                        BatchItem::Set { group, members, .. } => {
                                            l.installed.insert(*group, format!("{members:?}"));
                                        }
                                        BatchItem::Clear { group } => {
                                            l.installed.remove(group);
                                        }
                                    }
                                    l.peak = l.peak.max(l.installed.len());
                                }
                                match &dg.message {
                                    Message::Batch(_) => Some(Message::BatchAck(BatchAck {
                                        txid,
                                        switch_id,
                                        port_counts: vec![1; items.len()],
                                    })),
                                    _ => Some(Message::Ack(Ack {
                                        txid,
                                        switch_id,
                                        port_count: 1,
                                    })),
                                }
                            }
                        }
                    };
                    if let Some(m) = reply {
                        let bytes = sealer.lock().unwrap().seal(&m, now_us());
                        let _ = socket.send_to(&bytes, from).await;
                    }
                }
            })
        };
        FakeAgent {
            switch_id,
            addr,
            behaviour,
            log,
            socket,
            sealer,
            task: Arc::new(task),
        }
    }

    pub fn set(&self, b: Behaviour) {
        *self.behaviour.lock().unwrap() = b;
    }

    /// Sends a sealed message to the controller from the agent's socket.
    pub async fn say(&self, to: SocketAddr, m: &Message) {
        let bytes = self.sealer.lock().unwrap().seal(m, now_us());
        self.socket.send_to(&bytes, to).await.unwrap();
    }

    pub async fn hello(&self, to: SocketAddr) {
        self.hello_as(to, 1, 0).await;
    }

    /// A HELLO of `instance` reporting `capacity`.
    pub async fn hello_as(&self, to: SocketAddr, instance: u64, capacity: u32) {
        let m = Message::Hello(Hello {
            switch_id: self.switch_id,
            backend: BackendKind::LinuxBridge,
            port_count: 4,
            table_capacity: capacity,
            instance,
            software_version: "fake-agent 0".into(),
        });
        self.say(to, &m).await;
    }

    pub async fn heartbeat(&self, to: SocketAddr) {
        let installed = self.log.lock().unwrap().installed.len() as u32;
        let m = Message::Heartbeat(Heartbeat {
            switch_id: self.switch_id,
            installed_groups: installed,
            uptime_s: 1,
            table_capacity: 0,
        });
        self.say(to, &m).await;
    }

    pub fn installed(&self) -> Vec<Ipv6Addr> {
        self.log.lock().unwrap().installed.keys().copied().collect()
    }

    /// Instructions of `kind` (SET_SUBSET or CLEAR) received, alone or
    /// inside BATCHes; other kinds by message name.
    pub fn count(&self, kind: &str) -> usize {
        let log = self.log.lock().unwrap();
        log.received
            .iter()
            .map(|m| match (m, kind) {
                (Message::Batch(b), "SET_SUBSET") => b
                    .items
                    .iter()
                    .filter(|i| matches!(i, BatchItem::Set { .. }))
                    .count(),
                (Message::Batch(b), "CLEAR") => b
                    .items
                    .iter()
                    .filter(|i| matches!(i, BatchItem::Clear { .. }))
                    .count(),
                (m, k) => usize::from(m.name() == k),
            })
            .sum()
    }

    pub fn peak(&self) -> usize {
        self.log.lock().unwrap().peak
    }

    pub fn rejected(&self) -> Vec<String> {
        self.log.lock().unwrap().rejected.clone()
    }

    pub fn stop(&self) {
        self.task.abort();
    }
}

/// A config YAML for three (or more) agents at `agents`, one VLAN (10),
/// groups chunks-0 (h1..h6) and chunks-1 (h1,h3,h5), pool of `pool`.
pub fn config_yaml(agents: &[SocketAddr], database: &str, pool: &str) -> String {
    let mut s = format!(
        "controller:\n  id: 1\n  udp_listen: \"127.0.0.1:0\"\n  database: \"{database}\"\n  agent_timeout_ms: 1000\n\
keys:\n  - {{ id: 1, hex: \"{AGENT_KEY}\" }}\n  - {{ id: 2, hex: \"{NODE_KEY}\" }}\n\
vlans:\n  - id: 10\n    pool: [\"{pool}\"]\nswitches:\n"
    );
    for (i, a) in agents.iter().enumerate() {
        s += &format!(
            "  - {{ name: s{n}, id: {n}, vlans: [10], agent: {{ address: \"{a}\", key_id: 1 }} }}\n",
            n = i + 1
        );
    }
    s += "groups:\n  - name: chunks-0\n    vlan: 10\n    parent: \"ff15::5c:0:1\"\n    members:\n";
    for h in 1..=6 {
        s += &format!(
            "      - {{ name: h{h}, ipv6: \"fd00:5c::10{h}\", mac: \"02:5c:00:00:01:0{h}\" }}\n"
        );
    }
    s += "  - name: chunks-1\n    vlan: 10\n    parent: \"ff15::5c:0:2\"\n    members:\n";
    for h in [1, 3, 5] {
        s += &format!(
            "      - {{ name: h{h}, ipv6: \"fd00:5c::10{h}\", mac: \"02:5c:00:00:01:0{h}\" }}\n"
        );
    }
    s += &format!(
        "leases: {{ default_ms: 2000, max_ms: 60000, warm_ms: 0 }}\nfanout: {{ retransmit_ms: 10, attempts: 4 }}\n\
api:\n  listen: \"127.0.0.1:0\"\n  max_body_bytes: 4096\n  tokens:\n    - {{ role: admin, name: ops, token: \"{ADMIN}\" }}\n    - {{ role: storage-node, name: nodes, token: \"{NODE}\" }}\n\
rendezvous:\n  key_ids: [2]\n"
    );
    s
}

pub fn config(agents: &[SocketAddr], database: &str, pool: &str) -> subcast_controller::Config {
    match subcast_controller::config::load_str(
        &config_yaml(agents, database, pool),
        std::path::Path::new("."),
    ) {
        Ok((c, _)) => c,
        Err(p) => panic!("test config has problems: {p:#?}"),
    }
}

/// Three simulated agents, all ACKing.
pub async fn three_agents() -> Vec<FakeAgent> {
    let mut v = Vec::new();
    for id in 1..=3 {
        v.push(FakeAgent::start(id, Behaviour::Ack).await);
    }
    v
}

pub fn addrs(a: &[FakeAgent]) -> Vec<SocketAddr> {
    a.iter().map(|x| x.addr).collect()
}

/// Polls `f` (async) every 5 ms until it is true or `within` passes.
pub async fn until<F, Fut>(within: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < end {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    f().await
}

/// Polls `f` every 5 ms until it is true or `within` passes.
pub async fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < end {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    f()
}

pub fn req(parent: &str, targets: &[&str]) -> subcast_controller::Request {
    subcast_controller::Request {
        parent: parent.into(),
        vlan: None,
        targets: targets
            .iter()
            .map(|t| subcast_controller::TargetSpec::Text((*t).into()))
            .collect(),
        lifetime_ms: None,
        requester: "test".into(),
        path: "http",
    }
}
