//! The lab behind the behaviour suite: the seed three-switch topology with one
//! real `subcast-agent` process per switch, for any of the three backends, and
//! the test playing the controller.
//!
//! Where everything runs (per switch, all inside the switch's namespace):
//! - the agent, listening on `[::1]:7410`; the test's controller socket is
//!   bound on `[::1]` in the same namespace (made there, used from the test);
//! - linux-bridge: the agent drives `br0` over rtnetlink;
//! - openflow: `br0` is a private OVS (labs `backend: openflow`); the agent
//!   listens on `127.0.0.1:6653` and the bridge is pointed at it with
//!   `ovs-vsctl set-controller br0 tcp:127.0.0.1:6653` (ovs-vswitchd runs in the
//!   same namespace, so this is the namespace's own loopback);
//! - snmp: `br0` is a Linux bridge; `snmpd` runs in the switch namespace on
//!   `127.0.0.1:1161` with `subcast-qbridge-passpersist --bridge br0` as its
//!   pass_persist handler (a child of snmpd, so it inherits the namespace and
//!   needs no `--netns`). The agent reaches snmpd on that loopback; an agent
//!   outside the namespace could not (and one in the namespace cannot reach the
//!   host's loopback), so snmpd, handler and agent all live together there.
//!   Switch A uses SNMPv3 authPriv (SHA/AES), B and C v2c.

use labs::{ChildGuard, Lab, LabOptions, Topology};
use std::collections::BTreeMap;
use std::net::{Ipv6Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use subcast_proto::{
    Key, Keyring, Member, Members, Message, NakReason, Opener, ReplayGuard, Sealer, SetSubset,
    now_us,
};

pub const CTL_KEY_ID: u32 = 1;
pub const AGENT_KEY_ID: u32 = 101;
pub const CTL_KEY: &str = "1111111111111111111111111111111111111111111111111111111111111111";
pub const AGENT_KEY: &str = "2222222222222222222222222222222222222222222222222222222222222222";
/// Rendezvous range: inside `ff05::5c:0:0/96`, the /96 the SNMP handler maps
/// group MACs back to (it also holds the parent group `ff05::5c:1:1`).
pub const RANGE: &str = "ff05::5c:2:0/112";
pub const SNMP_GROUP_PREFIX: &str = "ff05::5c:0:0/96";
pub use crate::ctl::{AGENT_PORT, CtlSocket};
pub const OPENFLOW_ADDR: &str = "127.0.0.1:6653";
pub const SNMP_ADDR: &str = "127.0.0.1:1161";
pub const COMMUNITY: &str = "behaviour-rw";
pub const V3_USER: &str = "behaviourv3";
pub const V3_AUTH: &str = "auth-pass-123";
pub const V3_PRIV: &str = "priv-pass-456";
pub const SWITCHES: [&str; 3] = ["A", "B", "C"];
/// The table capacity configured for SNMP switches.
pub const SNMP_CAPACITY: u32 = 100;

/// The backend under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    LinuxBridge,
    Openflow,
    Snmp,
}

impl Kind {
    fn topology(self) -> &'static str {
        match self {
            Kind::LinuxBridge => "seed-three-switch.yaml",
            Kind::Openflow => "seed-openflow.yaml",
            Kind::Snmp => "seed-snmp.yaml",
        }
    }
}

/// Whether this machine can run the suite for `kind`; prints a skip line if
/// not. Under `SUBCAST_LABS_REQUIRED=1` a missing piece fails instead.
pub fn enabled(kind: Kind, name: &str) -> bool {
    let has = |b: &str| {
        ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
            .iter()
            .any(|d| Path::new(d).join(b).exists())
    };
    let mut ok = labs::lab_tests_enabled();
    let mut missing: Vec<&str> = Vec::new();
    if !has("tcpdump") {
        missing.push("tcpdump");
    }
    match kind {
        Kind::LinuxBridge => {}
        Kind::Openflow => ok = ok && labs::ovs_available(),
        Kind::Snmp => missing.extend(["snmpd", "snmpgetnext"].into_iter().filter(|b| !has(b))),
    }
    let required = std::env::var(labs::REQUIRE_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
    assert!(
        missing.is_empty() || !required,
        "{}=1 but {name} [{kind:?}] cannot run: {missing:?} not installed \
         (apt-get install tcpdump snmpd snmp)",
        labs::REQUIRE_ENV
    );
    ok = ok && missing.is_empty();
    if !ok {
        eprintln!("skipping {name}: needs root, iproute2, tcpdump and the {kind:?} switch");
    }
    ok
}

pub fn ctl_key() -> Key {
    Key::from_hex(CTL_KEY_ID, CTL_KEY).unwrap()
}

fn agent_key() -> Key {
    Key::from_hex(AGENT_KEY_ID, AGENT_KEY).unwrap()
}

/// One running agent and the test's controller socket in its namespace.
pub struct Agent {
    pub switch_id: u32,
    /// Its first HELLO.
    pub hello: Option<subcast_proto::Hello>,
    /// The controller socket (switch name, log, seal/send/answer).
    pub io: CtlSocket,
    _child: ChildGuard,
}

impl std::ops::Deref for Agent {
    type Target = CtlSocket;
    fn deref(&self) -> &CtlSocket {
        &self.io
    }
}

impl std::ops::DerefMut for Agent {
    fn deref_mut(&mut self) -> &mut CtlSocket {
        &mut self.io
    }
}

/// A built lab with one agent per switch. Fields drop in order: agents, then
/// the snmpd processes, then the lab (namespaces).
pub struct Env {
    pub kind: Kind,
    pub agents: Vec<Agent>,
    _daemons: Vec<ChildGuard>,
    pub lab: Lab,
}

impl Env {
    /// Builds the seed topology for `kind` and starts every agent (HELLO
    /// received); SNMP agents sweep their range every 300 ms.
    pub fn start(kind: Kind) -> Env {
        Self::start_with(kind, 300)
    }

    /// As [`Env::start`] with the SNMP guard sweep every `snmp_sweep_ms`.
    pub fn start_with(kind: Kind, snmp_sweep_ms: u64) -> Env {
        if kind == Kind::Snmp {
            handler(); // may wait for cargo's lock: before the lab's clock starts
        }
        let topo = Topology::from_yaml_file(labs::topology_path(kind.topology())).unwrap();
        // The harness keeps every bridge its own querier (MLD queries are
        // dropped on trunks), so registered groups never flood mid-test.
        let lab = Lab::build(&topo, LabOptions::default()).unwrap();
        let dir = lab.workdir().to_owned();
        std::fs::write(dir.join("ctl.key"), CTL_KEY).unwrap();
        std::fs::write(dir.join("agent.key"), AGENT_KEY).unwrap();
        let mut daemons = Vec::new();
        if kind == Kind::Snmp {
            for s in SWITCHES {
                daemons.push(start_snmpd(&lab, s, handler()));
            }
        }
        let mut agents = Vec::new();
        for (i, s) in SWITCHES.iter().enumerate() {
            agents.push(spawn_agent(&lab, kind, s, i as u32 + 1, snmp_sweep_ms));
        }
        for a in &mut agents {
            wait_hello(a);
        }
        let env = Env {
            kind,
            agents,
            _daemons: daemons,
            lab,
        };
        if kind == Kind::Openflow {
            env.teach_openflow();
        }
        env
    }

    /// The OpenFlow backend places hosts by learning from PACKET_INs: every host
    /// sends a link-local multicast datagram (floods to every switch), repeated for
    /// hosts some switch has not learned yet (its table 0 has no `eth_src` flow).
    /// Seen here: datagrams sent right after the last HELLO are sometimes not
    /// learned (the new pipeline is not yet in effect in the datapath), hence
    /// the rounds; each round polls the switches' flows until the hosts are
    /// learned or 300 ms pass.
    fn teach_openflow(&self) {
        let all: Ipv6Addr = "ff02::1".parse().unwrap();
        let mut missing: Vec<String> = self.lab.hosts().keys().cloned().collect();
        let t0 = Instant::now();
        for round in 1.. {
            for h in &missing {
                self.lab.send_multicast(h, all, 9, 1, 8).unwrap();
            }
            let polled = Instant::now();
            while polled.elapsed() < Duration::from_millis(300) && !self.unlearned().is_empty() {
                std::thread::sleep(Duration::from_millis(20));
            }
            let unlearned = self.unlearned();
            missing = self
                .lab
                .hosts()
                .keys()
                .filter(|h| unlearned.iter().any(|u| u.ends_with(&format!(":{h}"))))
                .cloned()
                .collect();
            if missing.is_empty() {
                if round > 1 {
                    eprintln!("openflow: all hosts learned after {round} rounds");
                }
                return;
            }
            eprintln!("openflow: round {round}: not learned (switch:host) {unlearned:?}");
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "OpenFlow agents did not learn {unlearned:?} within 10 s"
            );
        }
    }

    /// (switch, host) pairs whose source flow is not on the switch yet.
    fn unlearned(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in SWITCHES {
            let Ok(o) = self.lab.ovs_ofctl(s, "dump-flows", &["table=0"]) else {
                out.push(s.to_owned());
                continue;
            };
            let flows = String::from_utf8_lossy(&o.stdout);
            for h in self.lab.hosts().values() {
                if !flows.contains(&format!("dl_src={}", h.mac_string())) {
                    out.push(format!("{s}:{}", h.name));
                }
            }
        }
        out
    }

    pub fn ng0(&self) -> Ipv6Addr {
        self.lab.topology().group_address("NG0").unwrap()
    }

    /// Members as IPv6 addresses (the agents map them to MACs by their config).
    pub fn list(&self, hosts: &[&str]) -> Members {
        Members::List(
            hosts
                .iter()
                .map(|h| Member::Ipv6(self.lab.host(h).ipv6))
                .collect(),
        )
    }

    /// Number of ports of `switch` toward `members` by the topology (host
    /// ports and trunks toward the members' sides): what the agent must ACK.
    pub fn expected_port_count(&self, switch: &str, members: &[&str]) -> u16 {
        let per = self.lab.static_group_ports(members).unwrap();
        per.get(switch).map_or(0, |v| v.len() as u16)
    }

    /// How many (subset group, port) pairs inside [`RANGE`] `switch` holds, read
    /// from the switch itself: MDB entries on Linux bridges (the SNMP handler
    /// writes the MDB too), buckets of the agent's subset groups (ids
    /// `0x5c......`) on OVS.
    pub fn installed(&self, switch: &str) -> usize {
        let range: ipnet::Ipv6Net = RANGE.parse().unwrap();
        match self.kind {
            Kind::LinuxBridge | Kind::Snmp => self
                .lab
                .mdb_show(switch)
                .unwrap()
                .iter()
                .filter(|e| range.contains(&e.group))
                .count(),
            Kind::Openflow => {
                let out = self.lab.ovs_ofctl(switch, "dump-groups", &[]).unwrap();
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .filter(|l| {
                        l.trim_start()
                            .strip_prefix("group_id=")
                            .and_then(|r| r.split(',').next())
                            .and_then(|id| id.parse::<u32>().ok())
                            .is_some_and(|id| id & 0xff00_0000 == 0x5c00_0000)
                    })
                    .map(|l| l.matches("bucket=").count())
                    .sum()
            }
        }
    }

    /// [`Env::installed`] on every switch.
    pub fn installed_all(&self) -> Vec<usize> {
        SWITCHES.iter().map(|s| self.installed(s)).collect()
    }

    /// Sends 100 datagrams to `group` from `from`; the count at every host.
    ///
    /// After the datagrams the sender sends one sentinel to all nodes
    /// (ff02::1, flooded by every switch along the same paths), and the
    /// captures stop once every other host has received it: what was sent
    /// to the group before it has crossed the (userspace) switches too.
    pub fn deliver(&self, from: &str, group: Ipv6Addr, port: u16) -> BTreeMap<String, u64> {
        let hosts: Vec<String> = self.lab.hosts().keys().cloned().collect();
        let hs: Vec<&str> = hosts.iter().map(String::as_str).collect();
        let sentinel_port = port + 10_000;
        let sockets: Vec<(String, UdpSocket)> = hosts
            .iter()
            .filter(|h| h.as_str() != from)
            .map(|h| {
                let s = self.lab.udp_socket(h, sentinel_port, &[]).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                (h.clone(), s)
            })
            .collect();
        let all_nodes: Ipv6Addr = "ff02::1".parse().unwrap();
        let (r, counts) = self
            .lab
            .count_at(&hs, &format!("dst {group} and dst port {port}"), || {
                self.lab.send_multicast(from, group, port, 100, 64)?;
                self.lab
                    .send_multicast(from, all_nodes, sentinel_port, 1, 8)?;
                let mut buf = [0u8; 64];
                for (h, s) in &sockets {
                    if let Err(e) = s.recv_from(&mut buf) {
                        panic!("host {h}: no sentinel from {from} within 5 s: {e}");
                    }
                }
                Ok::<_, labs::LabError>(())
            })
            .unwrap();
        r.unwrap();
        counts.into_iter().map(|(h, c)| (h, c.datagrams)).collect()
    }
}

/// Asserts that each of `receivers` got exactly 100 and every other host 0.
pub fn expect_delivery(got: &BTreeMap<String, u64>, receivers: &[&str], what: &str) {
    for (h, n) in got {
        let want = if receivers.contains(&h.as_str()) {
            100
        } else {
            0
        };
        assert_eq!(
            *n, want,
            "{what}: host {h} got {n} datagrams, want {want}; all: {got:?}"
        );
    }
}

pub fn set(txid: u64, parent: Ipv6Addr, group: Ipv6Addr, members: Members) -> Message {
    Message::SetSubset(SetSubset {
        txid,
        vlan: 0,
        parent,
        group,
        lifetime_ms: 60_000,
        members,
    })
}

pub fn ack_ports(m: &Message, txid: u64, who: &str) -> u16 {
    match m {
        Message::Ack(a) => {
            assert_eq!(a.txid, txid, "{who}: ACK of another txid");
            a.port_count
        }
        other => panic!("{who}: expected ACK, got {other:?}"),
    }
}

pub fn nak_reason(m: &Message, who: &str) -> NakReason {
    match m {
        Message::Nak(n) => n.reason,
        other => panic!("{who}: expected NAK, got {other:?}"),
    }
}

fn backend_yaml(lab: &Lab, kind: Kind, switch: &str, sweep_ms: u64) -> String {
    match kind {
        Kind::LinuxBridge => "backend: { kind: linux-bridge, bridge: br0 }\n".into(),
        // No flooding of unknown wide-scope multicast: a removed group reaches no one.
        Kind::Openflow => format!(
            "backend:\n  kind: openflow\n  listen: \"{OPENFLOW_ADDR}\"\n  \
             connect_timeout_ms: 20000\n  flood_unknown_multicast: false\n"
        ),
        Kind::Snmp => {
            let creds = lab.workdir().join(format!("snmp-{switch}.yaml"));
            let auth = if switch == "A" {
                format!(
                    "v3:\n  user: {V3_USER}\n  auth_protocol: sha\n  auth_password: \"{V3_AUTH}\"\n  \
                     priv_protocol: aes\n  priv_password: \"{V3_PRIV}\"\n"
                )
            } else {
                format!("v2c:\n  community: \"{COMMUNITY}\"\n")
            };
            std::fs::write(
                &creds,
                format!("address: \"{SNMP_ADDR}\"\nvlan: 1\ntimeout_ms: 1000\nretries: 2\n{auth}"),
            )
            .unwrap();
            // The MIB does not say how many rows fit: configured. The guard
            // sweeps rows in the range the agent does not hold.
            format!(
                "backend: {{ kind: snmp, credentials: \"{}\" }}\n\
                 table_capacity: {SNMP_CAPACITY}\nguard_sweep_ms: {sweep_ms}\n",
                creds.display()
            )
        }
    }
}

fn config_yaml(
    lab: &Lab,
    kind: Kind,
    switch: &str,
    switch_id: u32,
    ctl: SocketAddr,
    sweep_ms: u64,
) -> String {
    let dir = lab.workdir();
    let mut y = format!(
        "switch_id: {switch_id}\n{}\
         controller: \"{ctl}\"\n\
         listen: \"[::1]:{AGENT_PORT}\"\n\
         key: {{ id: {AGENT_KEY_ID}, file: \"{}\" }}\n\
         controller_keys:\n  - {{ id: {CTL_KEY_ID}, file: \"{}\" }}\n\
         rendezvous_range: \"{RANGE}\"\n\
         heartbeat_interval_ms: 1000\n\
         parent_groups:\n",
        backend_yaml(lab, kind, switch, sweep_ms),
        dir.join("agent.key").display(),
        dir.join("ctl.key").display(),
    );
    let topo = lab.topology();
    for (name, g) in &topo.negotiating_groups {
        let addr = topo.group_address(name).unwrap();
        y.push_str(&format!(
            "  - address: \"{addr}\"\n    vlan: 0\n    members:\n"
        ));
        for m in &g.members {
            let h = lab.host(m);
            y.push_str(&format!(
                "      - {{ name: {m}, ipv6: \"{}\", mac: \"{}\" }}\n",
                h.ipv6,
                h.mac_string()
            ));
        }
    }
    y
}

/// Starts the agent binary in `switch`'s namespace (HELLO not yet awaited).
fn spawn_agent(lab: &Lab, kind: Kind, switch: &str, switch_id: u32, sweep_ms: u64) -> Agent {
    let dir = lab.workdir().to_owned();
    let netns = lab.switch(switch).netns.clone();
    let ctl = labs::netns::in_netns(&netns, || UdpSocket::bind("[::1]:0"))
        .unwrap()
        .unwrap();
    ctl.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let config = dir.join(format!("agent-{switch}.yaml"));
    std::fs::write(
        &config,
        config_yaml(
            lab,
            kind,
            switch,
            switch_id,
            ctl.local_addr().unwrap(),
            sweep_ms,
        ),
    )
    .unwrap();
    let log = dir.join(format!("agent-{switch}.log"));
    let logf = std::fs::File::create(&log).unwrap();
    let bin = env!("CARGO_BIN_EXE_subcast-agent");
    let cfg = config.to_str().unwrap().to_owned();
    let child = lab
        .spawn_with(&netns, &[bin, "run", "--config", &cfg], move |c| {
            c.stderr(logf);
            c.env("RUST_LOG", "info,subcast_agent=debug");
        })
        .unwrap();
    if kind == Kind::Openflow {
        // Point OVS at the agent once it listens (OVS would otherwise retry
        // with a backoff).
        let t0 = Instant::now();
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("waiting for the OpenFlow switch")
        {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "agent {switch} does not listen for OpenFlow"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        lab.ovs_set_controller(switch, &format!("tcp:{OPENFLOW_ADDR}"))
            .unwrap();
    }
    Agent {
        switch_id,
        hello: None,
        io: CtlSocket {
            switch: switch.to_owned(),
            log,
            ctl,
            sealer: Sealer::new(ctl_key(), 9000, now_us()),
            opener: Opener::new(Keyring::new([agent_key()]), ReplayGuard::default()),
        },
        _child: child,
    }
}

fn wait_hello(a: &mut Agent) {
    a.ctl
        .set_read_timeout(Some(Duration::from_secs(25)))
        .unwrap();
    let t0 = Instant::now();
    loop {
        match a.recv() {
            Ok(Message::Hello(h)) => {
                assert_eq!(h.switch_id, a.switch_id);
                a.hello = Some(h);
                break;
            }
            Ok(_) => {}
            Err(e) => panic!(
                "no HELLO from agent {} ({e}); log:\n{}",
                a.switch,
                a.log_text()
            ),
        }
        assert!(t0.elapsed() < Duration::from_secs(25), "no HELLO");
    }
    a.ctl
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
}

/// The pass_persist handler binary, built once per test process (or taken from
/// `SUBCAST_QBRIDGE_PASSPERSIST`).
fn handler() -> &'static Path {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(subcast_snmp::testlab::passpersist_binary)
}

/// snmpd in `switch`'s namespace serving its `br0` through the pass_persist
/// handler; returns once it answers a GET through the handler.
fn start_snmpd(lab: &Lab, switch: &str, handler: &Path) -> ChildGuard {
    let dir = lab.workdir().join(format!("snmpd-{switch}"));
    std::fs::create_dir_all(dir.join("persist")).unwrap();
    let conf = format!(
        "agentAddress udp:{SNMP_ADDR}\n\
         rwcommunity {COMMUNITY} 127.0.0.1\n\
         createUser {V3_USER} SHA {V3_AUTH} AES {V3_PRIV}\n\
         rwuser {V3_USER} priv\n\
         pass_persist .1.3.6.1.2.1.17 {} --bridge br0 --ipv6-group-prefix {SNMP_GROUP_PREFIX} \
         --log-file {}\n",
        handler.display(),
        dir.join("handler.log").display()
    );
    let conf_path = dir.join("snmpd.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let netns = lab.switch(switch).netns.clone();
    let (c, l, p) = (
        conf_path.display().to_string(),
        dir.join("snmpd.log").display().to_string(),
        dir.join("snmpd.pid").display().to_string(),
    );
    let persist = dir.join("persist");
    let child = lab
        .spawn_with(
            &netns,
            &["snmpd", "-f", "-C", "-c", &c, "-Lf", &l, "-p", &p],
            move |cmd| {
                cmd.env("MIBS", "")
                    .env("SNMP_PERSISTENT_DIR", persist)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null());
            },
        )
        .unwrap();
    // dot1dBasePortIfIndex (what the backend reads at connect) through the handler.
    let t0 = Instant::now();
    loop {
        let out = lab.exec(
            &netns,
            &[
                "snmpgetnext",
                "-v2c",
                "-c",
                COMMUNITY,
                "-On",
                "-t",
                "1",
                "-r",
                "0",
                SNMP_ADDR,
                ".1.3.6.1.2.1.17.1.4.1.2",
            ],
        );
        let ok = |o: &std::process::Output| {
            let t = String::from_utf8_lossy(&o.stdout);
            t.starts_with(".1.3.6.1.2.1.17.1.4.1.2.") && t.contains("INTEGER")
        };
        if matches!(&out, Ok(o) if ok(o)) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "snmpd on switch {switch} does not answer: {out:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    child
}

impl Drop for Env {
    /// On failure, show what the agents said (their logs go with the lab).
    fn drop(&mut self) {
        if std::thread::panicking() {
            for a in &self.agents {
                let text = a.log_text();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                eprintln!("--- agent {} log (last 40 lines) ---", a.switch);
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
    }
}
