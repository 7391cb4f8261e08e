//! Shared pieces of the lab tests: keys, agent configs, one real
//! `subcast-agent` process per switch namespace, and a test "controller"
//! socket inside that namespace.

#![allow(dead_code)]

use labs::{ChildGuard, Lab};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use subcast_proto::{Key, Keyring, Message, Opener, ReplayGuard, Sealer, now_us};

pub const CTL_KEY_ID: u32 = 1;
pub const AGENT_KEY_ID: u32 = 101;
pub const CTL_KEY: &str = "1111111111111111111111111111111111111111111111111111111111111111";
pub const AGENT_KEY: &str = "2222222222222222222222222222222222222222222222222222222222222222";
pub const RANGE: &str = "ff05::5c:2:0/112";
pub const METRICS_PORT: u16 = 9410;
pub use crate::ctl::{AGENT_PORT, CtlSocket};

pub fn ctl_key() -> Key {
    Key::from_hex(CTL_KEY_ID, CTL_KEY).unwrap()
}

pub fn agent_key() -> Key {
    Key::from_hex(AGENT_KEY_ID, AGENT_KEY).unwrap()
}

/// One running agent and the test's controller socket beside it.
#[derive(Debug)]
pub struct AgentProc {
    pub netns: String,
    pub switch_id: u32,
    pub config: PathBuf,
    pub child: Option<ChildGuard>,
    /// The controller socket (switch name, log, seal/send/answer).
    pub io: CtlSocket,
}

impl std::ops::Deref for AgentProc {
    type Target = CtlSocket;
    fn deref(&self) -> &CtlSocket {
        &self.io
    }
}

impl std::ops::DerefMut for AgentProc {
    fn deref_mut(&mut self) -> &mut CtlSocket {
        &mut self.io
    }
}

/// Which parent groups the agent's config lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parents {
    /// Every negotiating group of the topology, members in host order.
    Configured,
    /// None: the agent reads Y from the MDB.
    None,
}

pub fn config_yaml(lab: &Lab, switch_id: u32, ctl: SocketAddr, parents: Parents) -> String {
    let dir = lab.workdir();
    let mut y = format!(
        "switch_id: {switch_id}\n\
         backend: {{ kind: linux-bridge, bridge: br0 }}\n\
         controller: \"{ctl}\"\n\
         listen: \"[::1]:{AGENT_PORT}\"\n\
         metrics: \"127.0.0.1:{METRICS_PORT}\"\n\
         key: {{ id: {AGENT_KEY_ID}, file: \"{}\" }}\n\
         controller_keys:\n  - {{ id: {CTL_KEY_ID}, file: \"{}\" }}\n\
         rendezvous_range: \"{RANGE}\"\n\
         heartbeat_interval_ms: 1000\n",
        dir.join("agent.key").display(),
        dir.join("ctl.key").display(),
    );
    if parents == Parents::Configured {
        y.push_str("parent_groups:\n");
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
    }
    y
}

/// Starts the real agent binary in `switch`'s namespace and waits for its HELLO.
pub fn start_agent(lab: &Lab, switch: &str, switch_id: u32, parents: Parents) -> AgentProc {
    let dir = lab.workdir().to_owned();
    std::fs::write(dir.join("ctl.key"), CTL_KEY).unwrap();
    std::fs::write(dir.join("agent.key"), AGENT_KEY).unwrap();
    let netns = lab.switch(switch).netns.clone();
    let ctl = labs::netns::in_netns(&netns, || UdpSocket::bind("[::1]:0"))
        .unwrap()
        .unwrap();
    ctl.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let config = dir.join(format!("agent-{switch}.yaml"));
    std::fs::write(
        &config,
        config_yaml(lab, switch_id, ctl.local_addr().unwrap(), parents),
    )
    .unwrap();
    let mut a = AgentProc {
        netns,
        switch_id,
        config,
        child: None,
        io: CtlSocket {
            switch: switch.to_owned(),
            log: dir.join(format!("agent-{switch}.log")),
            ctl,
            sealer: Sealer::new(ctl_key(), 9000, now_us()),
            opener: Opener::new(Keyring::new([agent_key()]), ReplayGuard::default()),
        },
    };
    a.spawn(lab);
    a
}

impl AgentProc {
    /// (Re)starts the agent process and waits for HELLO.
    pub fn spawn(&mut self, lab: &Lab) {
        let bin = env!("CARGO_BIN_EXE_subcast-agent");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let cfg = self.config.to_str().unwrap().to_owned();
        let child = lab
            .spawn_with(&self.netns, &[bin, "run", "--config", &cfg], move |c| {
                c.stderr(log);
                c.env("RUST_LOG", "info,subcast_agent=debug");
            })
            .unwrap();
        self.child = Some(child);
        let t0 = Instant::now();
        loop {
            let m = self.recv().unwrap_or_else(|e| {
                panic!(
                    "no HELLO from agent {} within 10 s ({e}); log:\n{}",
                    self.switch,
                    self.log_text()
                )
            });
            if let Message::Hello(h) = m {
                assert_eq!(h.switch_id, self.switch_id);
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(10));
        }
    }

    /// Ends the agent with `sig` and waits for it.
    pub fn stop(&mut self, sig: nix::sys::signal::Signal) {
        if let Some(mut c) = self.child.take() {
            c.stop_with(sig, Duration::from_secs(5));
        }
    }

    /// The agent's /metrics text.
    pub fn metrics(&self) -> String {
        labs::netns::in_netns(&self.netns, || {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", METRICS_PORT))?;
            s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok::<_, std::io::Error>(out)
        })
        .unwrap()
        .unwrap()
    }

    /// The value of one metric line starting with `prefix` (0 if absent).
    /// Labels given in `prefix` (`name{k="v",...`) may appear in any order
    /// among the line's labels (the agent adds `switch` and `backend`).
    pub fn metric(&self, prefix: &str) -> f64 {
        let (name, labels) = match prefix.split_once('{') {
            Some((n, l)) => (n, l.trim_end_matches('}')),
            None => (prefix, ""),
        };
        let wanted: Vec<&str> = labels.split(',').filter(|l| !l.is_empty()).collect();
        self.metrics()
            .lines()
            .find(|l| {
                l.starts_with(name)
                    && (wanted.is_empty()
                        || (l[name.len()..].starts_with('{')
                            && wanted.iter().all(|w| l.contains(w))))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        self.stop(nix::sys::signal::Signal::SIGTERM);
    }
}

/// Port names of `group` in `switch`'s MDB.
pub fn mdb_ports(lab: &Lab, switch: &str, group: Ipv6Addr) -> BTreeSet<String> {
    lab.mdb_show(switch)
        .unwrap()
        .into_iter()
        .filter(|e| e.group == group)
        .map(|e| e.port)
        .collect()
}

/// MDB entries of `switch` inside the test range.
pub fn range_entries(lab: &Lab, switch: &str) -> Vec<labs::MdbEntry> {
    let r: ipnet::Ipv6Net = RANGE.parse().unwrap();
    lab.mdb_show(switch)
        .unwrap()
        .into_iter()
        .filter(|e| r.contains(&e.group))
        .collect()
}

/// Port names, on `switch`, of the ports toward each of `members` by the
/// lab's topology (host port, or trunk toward the member's switch side).
pub fn expected_ports(lab: &Lab, switch: &str, members: &[&str]) -> BTreeSet<String> {
    let per = lab.static_group_ports(members).unwrap();
    per.get(switch)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .collect()
}

/// Whether lab tests can run; prints a skip line otherwise. Under
/// `SUBCAST_LABS_REQUIRED=1` a missing piece fails instead.
pub fn enabled(name: &str) -> bool {
    let tcpdump = ["/usr/sbin/tcpdump", "/usr/bin/tcpdump"]
        .iter()
        .any(|p| std::path::Path::new(p).exists());
    let required = std::env::var(labs::REQUIRE_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
    assert!(
        tcpdump || !required,
        "{}=1 but {name} cannot run: tcpdump is not installed (apt-get install tcpdump)",
        labs::REQUIRE_ENV
    );
    let ok = labs::lab_tests_enabled() && tcpdump;
    if !ok {
        eprintln!("skipping {name}: needs root, iproute2 and tcpdump");
    }
    ok
}
