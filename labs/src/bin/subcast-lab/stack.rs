//! The subcast daemons running in a lab: one controller, one agent per switch and
//! (for puts) one storage node per negotiating-group member.
//!
//! Placement: the controller runs in the namespace of the first switch (name order),
//! like a controller on the management plane of that switch; it listens for agents
//! and storage nodes at that switch's management address `fd00:5c::1:N` (in band:
//! every host and switch reaches it over the lab's bridges) and serves its HTTP API
//! on `[::1]:8411` inside that namespace (the lab talks to it from there). Each agent
//! runs in its switch's namespace and drives `br0` with the switch's backend
//! (`linux-bridge`; `openflow` for OVS; `snmp` against an snmpd started there first,
//! see `snmp.rs`) and listens at the switch's management address, port 7410. Storage nodes run in host
//! namespaces on `eth0`, UDP port 7412. Keys and the admin token are random per run,
//! written `chmod 600` into the lab's scratch directory with every config and log.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use labs::{Backend, ChildGuard, Lab};
use serde_json::Value;

use crate::bins::Binaries;

/// Rendezvous groups are leased from here (agents refuse anything outside it).
pub const POOL: &str = labs::RENDEZVOUS_POOL;
/// The same in a `family: ipv4` lab.
pub const POOL_V4: &str = labs::RENDEZVOUS_POOL_V4;

/// Whether the lab's daemons run in IPv4 (`family: ipv4`; `dual` labs are refused
/// by the scenarios, see `scenario::check_family`).
pub fn ipv4(lab: &Lab) -> bool {
    lab.topology().family == labs::Family::Ipv4
}

/// The rendezvous pool of the lab's family.
pub fn pool(lab: &Lab) -> &'static str {
    if ipv4(lab) { POOL_V4 } else { POOL }
}

/// The loopback address of the lab's family (the controller's API, inside its
/// namespace).
pub fn loopback(lab: &Lab) -> IpAddr {
    if ipv4(lab) {
        Ipv4Addr::LOCALHOST.into()
    } else {
        Ipv6Addr::LOCALHOST.into()
    }
}
/// HTTP API port of the controller, inside its switch's namespace.
pub const API_PORT: u16 = 8411;
/// UDP port of the controller (agents and storage nodes).
pub const CTL_PORT: u16 = 7411;
/// UDP port of the agents.
pub const AGENT_PORT: u16 = 7410;
/// UDP port of the storage nodes.
pub const NODE_PORT: u16 = 7412;
/// Prometheus `/metrics` of each agent, at `[::1]` inside its switch's namespace.
pub const AGENT_METRICS_PORT: u16 = 9410;

/// Running daemons. Dropping it ends them (by PID).
#[derive(Debug)]
pub struct Stack {
    pub dir: PathBuf,
    /// Switch whose namespace holds the controller.
    pub ctl_switch: String,
    pub ctl_netns: String,
    pub ctl_ip: IpAddr,
    /// Where the controller's HTTP API listens, inside `ctl_netns`.
    api: SocketAddr,
    token: String,
    /// The backend each agent says it drives (its HELLO, from `GET /v1/agents`).
    pub backends: BTreeMap<String, String>,
    // Field order = drop order: nodes, agents, snmpd, then the controller.
    pub nodes: BTreeMap<String, ChildGuard>,
    pub agents: BTreeMap<String, ChildGuard>,
    /// snmpd of every `backend: snmp` switch.
    pub snmp: BTreeMap<String, crate::snmp::SnmpSwitch>,
    controller: ChildGuard,
}

pub(crate) fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("reading /dev/urandom")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

pub(crate) fn secret(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod 600 {}", path.display()))?;
    Ok(())
}

/// Members of a group: by `ipv6:` in an IPv6 group, by `ipv4:` in an IPv4 one.
fn members_yaml(lab: &Lab, members: &[String], indent: &str, group: Ipv6Addr) -> String {
    let mut y = String::new();
    for m in members {
        let h = lab.host(m);
        let addr = match (group.to_ipv4_mapped(), h.ipv4) {
            (Some(_), Some(a)) => format!("ipv4: \"{a}\""),
            _ => format!("ipv6: \"{}\"", h.ipv6),
        };
        y += &format!(
            "{indent}- {{ name: {m}, {addr}, mac: \"{}\" }}\n",
            h.mac_string()
        );
    }
    y
}

/// Per-run changes to the lab's controller config (the `rate` scenario's policies).
#[derive(Debug, Clone, Default)]
pub struct CtlTweaks {
    /// `leases.warm_ms` instead of [`WARM_MS`].
    pub warm_ms: Option<u64>,
    /// `budgets.default` and every switch's `budget:`.
    pub budget: Option<u32>,
    /// `preenumerate: all` (with `replicas: 3`) on the first negotiating group.
    pub preenumerate_all: bool,
}

fn controller_yaml(lab: &Lab, addrs: &BTreeMap<String, AgentAddr>, tw: &CtlTweaks) -> String {
    let topo = lab.topology();
    let (any, pool) = if ipv4(lab) {
        ("0.0.0.0", POOL_V4)
    } else {
        ("[::]", POOL)
    };
    let mut y = format!(
        "controller:\n  id: 1\n  udp_listen: \"{any}:{CTL_PORT}\"\n  database: \":memory:\"\n  \
         agent_timeout_ms: 5000\nkeys:\n  - {{ id: 1, file: ctl.key }}\n  - {{ id: 101, file: agent.key }}\n  \
         - {{ id: 2, file: nodes.key }}\nvlans:\n  - {{ id: 0, pool: [\"{pool}\"] }}\nswitches:\n"
    );
    let budget = tw
        .budget
        .map(|b| format!("budget: {b}, "))
        .unwrap_or_default();
    for (i, name) in lab.switches().keys().enumerate() {
        y += &format!(
            "  - {{ name: {name}, id: {}, {budget}vlans: [0], agent: {{ address: \"{}\", key_id: 1, agent_key_id: 101 }} }}\n",
            i + 1,
            SocketAddr::new(addrs[name].listen, AGENT_PORT)
        );
    }
    y += "groups:\n";
    for (i, (g, spec)) in topo.negotiating_groups.iter().enumerate() {
        let addr = topo.group_address(g).unwrap_or(Ipv6Addr::UNSPECIFIED);
        let shown = addr.to_canonical();
        y += &format!("  - name: {g}\n    vlan: 0\n    parent: \"{shown}\"\n    members:\n");
        y += &members_yaml(lab, &spec.members, "      ", addr);
        if i == 0 && tw.preenumerate_all {
            let k = spec.members.len().clamp(1, 3);
            y += &format!("    replicas: {k}\n    preenumerate: all\n");
        }
    }
    if let Some(b) = tw.budget {
        y += &format!("budgets: {{ default: {b} }}\n");
    }
    let warm = tw.warm_ms.unwrap_or(WARM_MS);
    let api = SocketAddr::new(loopback(lab), API_PORT);
    y += &format!(
        "leases: {{ default_ms: 10000, max_ms: 60000, warm_ms: {warm} }}\nfanout: {{ retransmit_ms: 20, attempts: 5 }}\n\
         api:\n  listen: \"{api}\"\n  tokens: [{{ role: admin, name: lab, file: admin.token }}]\n\
         rendezvous:\n  key_ids: [2]\n"
    );
    y
}

/// How long the lab's controller keeps a released group installed for reuse
/// (its default is 10 s; the lab keeps it short so a run also sees the clear).
pub const WARM_MS: u64 = 1000;

/// Where an agent listens and where it finds the controller.
#[derive(Debug, Clone, Copy)]
struct AgentAddr {
    listen: IpAddr,
    controller: IpAddr,
}

/// Agent addresses. On a Linux bridge the agent uses the switch's management
/// address, in band. An agent on an OVS switch is that switch's OpenFlow controller,
/// and the switch's own address sits behind the flows the agent installs, so it gets
/// an out-of-band management link instead: a veth `m-<S>` in the controller's
/// namespace (`fd00:5d:N::1/64`) to `mgmt0` in the switch's (`fd00:5d:N::2/64`).
fn agent_addrs(lab: &Lab, ctl_switch: &str) -> Result<BTreeMap<String, AgentAddr>> {
    let ctl = lab.switch(ctl_switch);
    let mut out = BTreeMap::new();
    for (name, sw) in lab.switches() {
        let mgmt = |s: &labs::SwitchInfo| -> IpAddr {
            match s.mgmt_ipv4 {
                Some(a) if ipv4(lab) => a.into(),
                _ => s.mgmt_ipv6.into(),
            }
        };
        let a = if !is_ovs(lab, name) {
            AgentAddr {
                listen: mgmt(sw),
                controller: mgmt(ctl),
            }
        } else if name == ctl_switch {
            AgentAddr {
                listen: loopback(lab),
                controller: loopback(lab),
            }
        } else if ipv4(lab) {
            oob_link_v4(ctl, sw, name)?
        } else {
            let n = sw.index;
            let here = Ipv6Addr::new(0xfd00, 0x5d, n, 0, 0, 0, 0, 1);
            let there = Ipv6Addr::new(0xfd00, 0x5d, n, 0, 0, 0, 0, 2);
            let m = format!("m-{name}");
            let (h, t) = (format!("{here}/64"), format!("{there}/64"));
            let (v6m, v6t) = (
                format!("net/ipv6/conf/{m}/disable_ipv6=0"),
                "net/ipv6/conf/mgmt0/disable_ipv6=0".to_string(),
            );
            for args in [
                vec![
                    "ip", "-n", &ctl.netns, "link", "add", &m, "type", "veth", "peer", "name",
                    "mgmt0", "netns", &sw.netns,
                ],
                vec!["ip", "netns", "exec", &ctl.netns, "sysctl", "-qw", &v6m],
                vec!["ip", "netns", "exec", &sw.netns, "sysctl", "-qw", &v6t],
                vec![
                    "ip", "-n", &ctl.netns, "addr", "add", &h, "dev", &m, "nodad",
                ],
                vec!["ip", "-n", &ctl.netns, "link", "set", &m, "up"],
                vec![
                    "ip", "-n", &sw.netns, "addr", "add", &t, "dev", "mgmt0", "nodad",
                ],
                vec!["ip", "-n", &sw.netns, "link", "set", "mgmt0", "up"],
            ] {
                labs::cmd::run(&args)?;
            }
            AgentAddr {
                listen: there.into(),
                controller: here.into(),
            }
        };
        out.insert(name.clone(), a);
    }
    Ok(out)
}

/// [`agent_addrs`]' out-of-band management link in IPv4: `m-<S>` at
/// `10.94.N.1/24` in the controller's namespace, `mgmt0` at `10.94.N.2/24` in
/// the switch's (N: switch index, at most 255).
fn oob_link_v4(ctl: &labs::SwitchInfo, sw: &labs::SwitchInfo, name: &str) -> Result<AgentAddr> {
    let n = u8::try_from(sw.index)
        .map_err(|_| anyhow!("switch {name}: an IPv4 lab supports OVS switches 1-255"))?;
    let (here, there) = (Ipv4Addr::new(10, 94, n, 1), Ipv4Addr::new(10, 94, n, 2));
    let m = format!("m-{name}");
    let (h, t) = (format!("{here}/24"), format!("{there}/24"));
    for args in [
        vec![
            "ip", "-n", &ctl.netns, "link", "add", &m, "type", "veth", "peer", "name", "mgmt0",
            "netns", &sw.netns,
        ],
        vec!["ip", "-n", &ctl.netns, "addr", "add", &h, "dev", &m],
        vec!["ip", "-n", &ctl.netns, "link", "set", &m, "up"],
        vec!["ip", "-n", &sw.netns, "addr", "add", &t, "dev", "mgmt0"],
        vec!["ip", "-n", &sw.netns, "link", "set", "mgmt0", "up"],
    ] {
        labs::cmd::run(&args)?;
    }
    Ok(AgentAddr {
        listen: there.into(),
        controller: here.into(),
    })
}

/// OpenFlow agents listen here, in their switch's namespace; OVS connects to it.
const OPENFLOW_ADDR: &str = "127.0.0.1:6653";

fn is_ovs(lab: &Lab, switch: &str) -> bool {
    lab.switch(switch).backend == Backend::Openflow
}

/// The agent's backend: `openflow` for an OVS switch (the agent is its OpenFlow
/// controller; wide-scope multicast without a flow, e.g. the negotiating group,
/// floods; rendezvous groups without a flow are dropped), `snmp` against the
/// switch's snmpd for `backend: snmp`, else `linux-bridge`.
fn backend_yaml(lab: &Lab, switch: &str, snmp: Option<&crate::snmp::SnmpSwitch>) -> String {
    if let Some(s) = snmp {
        s.backend_yaml()
    } else if is_ovs(lab, switch) {
        format!(
            "backend:\n  kind: openflow\n  listen: \"{OPENFLOW_ADDR}\"\n  connect_timeout_ms: 20000\n  \
             flood_unknown_multicast: true\n"
        )
    } else {
        "backend: { kind: linux-bridge, bridge: br0 }\n".into()
    }
}

/// Send one datagram to ff02::1 out of `ifname` in namespace `netns`.
fn announce(netns: &str, ifname: &str) -> Result<()> {
    let ifname = ifname.to_string();
    labs::netns::in_netns(netns, move || -> Result<()> {
        let ifindex = labs::netns::if_index(&ifname)?;
        let s = std::net::UdpSocket::bind("[::]:0")?;
        let r = socket2::SockRef::from(&s);
        r.set_multicast_if_v6(ifindex)?;
        r.set_multicast_hops_v6(1)?;
        s.send_to(b"hello", (Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1), 9))?;
        Ok(())
    })?
}

/// The OpenFlow agent places hosts by learning from PACKET_INs: every host and every
/// Linux bridge's own interface (agents reach the controller in band through OVS
/// switches) sends a datagram to ff02::1 (floods everywhere), again for those some
/// OVS switch has not learned yet (no `dl_src` flow in its table 0), for at most 10 s.
fn teach_openflow(lab: &Lab) -> Result<()> {
    let ovs: Vec<String> = lab
        .switches()
        .keys()
        .filter(|s| is_ovs(lab, s))
        .cloned()
        .collect();
    if ovs.is_empty() {
        return Ok(());
    }
    // Packets a Linux bridge's own stack sends carry only a partial checksum (veth
    // offload); OVS's userspace datapath forwards them so, and the receiver drops
    // them. The lab does `tx off` on hosts next to OVS; do it on the bridges too.
    for (name, sw) in lab.switches() {
        if !is_ovs(lab, name) {
            lab.exec(&sw.netns, &["ethtool", "-K", &sw.bridge, "tx", "off"])?;
        }
    }
    // (netns, interface, MAC) of every sender to be learned.
    let mut missing: Vec<(String, String, String)> = lab
        .hosts()
        .values()
        .map(|h| (h.netns.clone(), h.ifname.clone(), h.mac_string()))
        .collect();
    for (name, sw) in lab.switches() {
        if !is_ovs(lab, name) {
            missing.push((
                sw.netns.clone(),
                sw.bridge.clone(),
                labs::mac_string(&sw.bridge_mac),
            ));
        }
    }
    let t0 = Instant::now();
    while !missing.is_empty() {
        if t0.elapsed() > Duration::from_secs(10) {
            let macs: Vec<&str> = missing.iter().map(|m| m.2.as_str()).collect();
            bail!("the OpenFlow agents did not learn where {macs:?} are within 10 s");
        }
        for (ns, ifname, _) in &missing {
            announce(ns, ifname)?;
        }
        std::thread::sleep(Duration::from_millis(150));
        let mut flows = Vec::new();
        for s in &ovs {
            let out = lab.ovs_ofctl(s, "dump-flows", &["table=0"])?;
            flows.push(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        missing.retain(|(_, _, mac)| {
            let m = format!("dl_src={mac}");
            flows.iter().any(|f| !f.contains(&m))
        });
    }
    Ok(())
}

fn agent_yaml(
    lab: &Lab,
    dir: &Path,
    switch: &str,
    id: usize,
    addr: &AgentAddr,
    snmp: Option<&crate::snmp::SnmpSwitch>,
) -> String {
    let ctl_ip = addr.controller;
    let topo = lab.topology();
    let mut y = format!(
        "switch_id: {id}\n{}controller: \"{}\"\n\
         listen: \"{}\"\nkey: {{ id: 101, file: \"{}\" }}\ncontroller_keys:\n  - {{ id: 1, file: \"{}\" }}\n\
         rendezvous_range: \"{}\"\nheartbeat_interval_ms: 500\n\
         metrics: \"[::1]:{AGENT_METRICS_PORT}\"\nparent_groups:\n",
        backend_yaml(lab, switch, snmp),
        SocketAddr::new(ctl_ip, CTL_PORT),
        SocketAddr::new(addr.listen, AGENT_PORT),
        dir.join("agent.key").display(),
        dir.join("ctl.key").display(),
        pool(lab),
    );
    for (g, spec) in &topo.negotiating_groups {
        let addr = topo.group_address(g).unwrap_or(Ipv6Addr::UNSPECIFIED);
        let shown = addr.to_canonical();
        y += &format!("  - address: \"{shown}\"\n    vlan: 0\n    members:\n");
        y += &members_yaml(lab, &spec.members, "      ", addr);
    }
    y
}

/// A storage-node config; `node_id` adds the `node:` section (for `serve`).
/// `serving`: the hosts that run a storage node, each group's `members:`
/// (a host of a group that runs no node, a writer, never answers).
pub fn node_yaml(
    lab: &Lab,
    dir: &Path,
    ctl_ip: IpAddr,
    host: &str,
    node_id: Option<u16>,
    serving: &[String],
) -> String {
    let topo = lab.topology();
    let groups: Vec<String> = topo
        .negotiating_groups
        .keys()
        .map(|g| {
            format!(
                "\"{}\"",
                topo.group_ip(g).unwrap_or(Ipv6Addr::UNSPECIFIED.into())
            )
        })
        .collect();
    let mut y = format!(
        "negotiating_groups: [{}]\nport: {NODE_PORT}\ninterface: eth0\nhops: 1\nmtu: {}\nrate_mbps: 1000\n\
         replicas: 3\nchunk_size: 1048576\nparallel: 4\ntransport: rendezvous\n\
         key: {{ id: 1, file: \"{}\" }}\ncontroller:\n  address: \"{}\"\n  vlan: 0\n  \
         lifetime_ms: 5000\n  key: {{ id: 2, file: \"{}\" }}\n",
        groups.join(", "),
        topo.mtu(),
        dir.join("cluster.key").display(),
        SocketAddr::new(ctl_ip, CTL_PORT),
        dir.join("nodes.key").display()
    );
    // Every group's members that run a node, by node id: a lookup or bid
    // round then ends when they all answered (a client that knows none
    // waits longer).
    let members: Vec<String> = topo
        .negotiating_groups
        .iter()
        .map(|(g, spec)| {
            let addr = topo.group_ip(g).unwrap_or(Ipv6Addr::UNSPECIFIED.into());
            let ids: Vec<String> = spec
                .members
                .iter()
                .filter(|m| serving.contains(m))
                .map(|m| lab.host(m).index.to_string())
                .collect();
            format!("\"{addr}\": [{}]", ids.join(", "))
        })
        .collect();
    y += &format!("members: {{{}}}\n", members.join(", "));
    if let Some(id) = node_id {
        let member_of: Vec<String> = topo
            .negotiating_groups
            .values()
            .enumerate()
            .filter(|(_, g)| g.members.iter().any(|m| m == host))
            .map(|(i, _)| i.to_string())
            .collect();
        y += &format!(
            "node:\n  id: {id}\n  store: \"{}\"\n  member_of: [{}]\n",
            dir.join(format!("store-{host}")).display(),
            member_of.join(", ")
        );
    }
    y
}

/// A log file for a daemon, twice: for its stdout and its stderr.
fn log_file(dir: &Path, name: &str) -> Result<(std::fs::File, std::fs::File)> {
    let p = dir.join(name);
    let f = std::fs::File::create(&p).with_context(|| format!("creating {}", p.display()))?;
    Ok((f.try_clone()?, f))
}

/// Poll `f` every 50 ms until it is true or `within` passes.
pub fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> Result<bool>) -> Result<()> {
    let t0 = Instant::now();
    loop {
        if f()? {
            return Ok(());
        }
        if t0.elapsed() > within {
            bail!("timed out after {within:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Stack {
    /// Start the controller and one agent per switch; wait until every agent is up.
    pub fn start(lab: &Lab, bins: &Binaries) -> Result<Stack> {
        Self::start_with(lab, bins, &CtlTweaks::default())
    }

    /// [`Stack::start`] with a changed controller config.
    pub fn start_with(lab: &Lab, bins: &Binaries, tweaks: &CtlTweaks) -> Result<Stack> {
        let dir = lab.workdir().to_path_buf();
        // The first Linux bridge (name order) hosts the controller: storage nodes
        // reach it in band at that bridge's management address.
        let (ctl_switch, sw) = lab
            .switches()
            .iter()
            .find(|(n, _)| !is_ovs(lab, n))
            .or_else(|| lab.switches().iter().next())
            .ok_or_else(|| anyhow!("the topology has no switch"))?;
        let ctl_ip: IpAddr = match sw.mgmt_ipv4 {
            Some(a) if ipv4(lab) => a.into(),
            _ => sw.mgmt_ipv6.into(),
        };
        let (ctl_switch, ctl_netns) = (ctl_switch.clone(), sw.netns.clone());
        let api = SocketAddr::new(loopback(lab), API_PORT);
        for k in ["ctl.key", "agent.key", "nodes.key", "cluster.key"] {
            secret(&dir.join(k), &random_hex(32)?)?;
        }
        let token = random_hex(16)?;
        secret(&dir.join("admin.token"), &token)?;
        let cfg = dir.join("controller.yaml");
        let addrs = agent_addrs(lab, &ctl_switch)?;
        std::fs::write(&cfg, controller_yaml(lab, &addrs, tweaks))?;
        let check = std::process::Command::new(&bins.controller)
            .arg("check-config")
            .arg(&cfg)
            .output()
            .with_context(|| format!("running {}", bins.controller.display()))?;
        if !check.status.success() {
            bail!(
                "the controller rejects the lab's config {}: {}",
                cfg.display(),
                String::from_utf8_lossy(&check.stderr)
            );
        }
        let ctl = bins.controller.display().to_string();
        let cfg_s = cfg.display().to_string();
        let (log_out, log) = log_file(&dir, "controller.log")?;
        let mut controller =
            lab.spawn_with(&ctl_netns, &[&ctl, "serve", "--config", &cfg_s], |c| {
                c.stdout(log_out).stderr(log);
            })?;
        let ns = ctl_netns.clone();
        wait_for("the controller's HTTP API", Duration::from_secs(15), || {
            if controller.has_exited() {
                bail!(
                    "the controller exited:\n{}",
                    tail(&dir.join("controller.log"))
                );
            }
            let ns = ns.clone();
            Ok(labs::netns::in_netns(&ns, move || {
                std::net::TcpStream::connect(api).is_ok()
            })?)
        })?;
        // SNMP switches answer through their handler before their agents start.
        let snmp = crate::snmp::start_all(lab, bins.snmp_handler.as_deref(), &dir)?;
        let mut agents = BTreeMap::new();
        let agent = bins.agent.display().to_string();
        // Agents on OVS switches first: until they run and have learned where every
        // host and bridge is, in-band traffic through their switches (the other
        // agents' HELLOs) is not forwarded.
        let ids: BTreeMap<&String, usize> = lab
            .switches()
            .keys()
            .enumerate()
            .map(|(i, n)| (n, i + 1))
            .collect();
        let (ovs, rest): (Vec<&String>, Vec<&String>) =
            lab.switches().keys().partition(|n| is_ovs(lab, n));
        for (pass, names) in [ovs, rest].into_iter().enumerate() {
            for name in names {
                let path = dir.join(format!("agent-{name}.yaml"));
                let yaml = agent_yaml(lab, &dir, name, ids[name], &addrs[name], snmp.get(name));
                std::fs::write(&path, yaml)?;
                let (log_out, log) = log_file(&dir, &format!("agent-{name}.log"))?;
                let p = path.display().to_string();
                let child = lab.spawn_with(
                    &lab.switch(name).netns,
                    &[&agent, "run", "--config", &p],
                    |c| {
                        c.stdout(log_out).stderr(log);
                    },
                )?;
                agents.insert(name.clone(), child);
                if is_ovs(lab, name) {
                    // Point OVS at the agent once it listens: a connection refused
                    // would put OVS into its reconnect backoff (1 s, 2 s, ...).
                    let netns = lab.switch(name).netns.clone();
                    let port = format!(
                        "sport = :{}",
                        OPENFLOW_ADDR.rsplit(':').next().unwrap_or("6653")
                    );
                    let log = dir.join(format!("agent-{name}.log"));
                    wait_for(
                        &format!("the OpenFlow agent of {name} to listen"),
                        Duration::from_secs(15),
                        || {
                            if agents.get_mut(name).is_some_and(|a| a.has_exited()) {
                                bail!("agent of switch {name} exited:\n{}", tail(&log));
                            }
                            let out = lab.exec(&netns, &["ss", "-Hltn", &port])?;
                            Ok(!out.stdout.is_empty())
                        },
                    )?;
                    lab.ovs_set_controller(name, &format!("tcp:{OPENFLOW_ADDR}"))?;
                }
            }
            if pass == 0 {
                teach_openflow(lab)?;
            }
        }
        let mut stack = Stack {
            dir,
            ctl_switch,
            ctl_netns,
            ctl_ip,
            api,
            token,
            backends: BTreeMap::new(),
            nodes: BTreeMap::new(),
            agents,
            snmp,
            controller,
        };
        let n = lab.switches().len();
        wait_for(&format!("{n} agents up"), Duration::from_secs(20), || {
            for (name, a) in stack.agents.iter_mut() {
                if a.has_exited() {
                    bail!(
                        "agent of switch {name} exited:\n{}",
                        tail(&stack.dir.join(format!("agent-{name}.log")))
                    );
                }
            }
            let (s, v) = stack.http(lab, "GET", "/v1/agents", None)?;
            let up = s == 200
                && v.as_array()
                    .is_some_and(|a| a.len() == n && a.iter().all(|x| x["state"] == "up"));
            if up {
                stack.backends = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| {
                        Some((
                            a["name"].as_str()?.to_owned(),
                            a["backend"].as_str()?.to_owned(),
                        ))
                    })
                    .collect();
            }
            Ok(up)
        })?;
        Ok(stack)
    }

    /// Start a storage node on every negotiating-group member except `skip`, and wait
    /// until each listens on its UDP port.
    pub fn start_nodes(&mut self, lab: &Lab, bins: &Binaries, skip: &str) -> Result<()> {
        self.start_nodes_except(lab, bins, &[skip.to_string()])
    }

    /// [`Stack::start_nodes`] skipping every host in `skip`.
    pub fn start_nodes_except(
        &mut self,
        lab: &Lab,
        bins: &Binaries,
        skip: &[String],
    ) -> Result<()> {
        let mut hosts: Vec<String> = lab
            .topology()
            .negotiating_groups
            .values()
            .flat_map(|g| g.members.iter().cloned())
            .filter(|h| !skip.contains(h))
            .collect();
        hosts.sort();
        hosts.dedup();
        let node = bins.node.display().to_string();
        for h in &hosts {
            let info = lab.host(h);
            std::fs::create_dir_all(self.dir.join(format!("store-{h}")))?;
            let path = self.dir.join(format!("node-{h}.yaml"));
            std::fs::write(
                &path,
                node_yaml(lab, &self.dir, self.ctl_ip, h, Some(info.index), &hosts),
            )?;
            let (log_out, log) = log_file(&self.dir, &format!("node-{h}.log"))?;
            let p = path.display().to_string();
            let child = lab.spawn_with(&info.netns, &[&node, "--config", &p, "serve"], |c| {
                c.stderr(log).stdout(log_out).env("SUBCAST_LOG", "warn");
            })?;
            self.nodes.insert(h.clone(), child);
        }
        for h in &hosts {
            let netns = lab.host(h).netns.clone();
            let port = format!("sport = :{NODE_PORT}");
            wait_for(
                &format!("storage node on {h}"),
                Duration::from_secs(15),
                || {
                    if let Some(c) = self.nodes.get_mut(h)
                        && c.has_exited()
                    {
                        bail!(
                            "storage node on {h} exited:\n{}",
                            tail(&self.dir.join(format!("node-{h}.log")))
                        );
                    }
                    let out = lab.exec(&netns, &["ss", "-Hlun", &port])?;
                    Ok(!out.stdout.is_empty())
                },
            )?;
        }
        Ok(())
    }

    /// Write the client config for `host` (no `node:` section) and return its path.
    pub fn client_config(&self, lab: &Lab, host: &str) -> Result<PathBuf> {
        let path = self.dir.join(format!("client-{host}.yaml"));
        let serving: Vec<String> = self.nodes.keys().cloned().collect();
        std::fs::write(
            &path,
            node_yaml(lab, &self.dir, self.ctl_ip, host, None, &serving),
        )?;
        Ok(path)
    }

    /// One HTTP/1.0 request to the controller's API (from inside its namespace).
    pub fn http(
        &self,
        _lab: &Lab,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.0\r\nHost: controller\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.token,
            body.len()
        );
        let api = self.api;
        let raw = labs::netns::in_netns(&self.ctl_netns, move || {
            let mut s = std::net::TcpStream::connect(api)?;
            s.set_read_timeout(Some(Duration::from_secs(15)))?;
            s.write_all(req.as_bytes())?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok::<_, std::io::Error>(out)
        })?
        .with_context(|| format!("{method} {path} to the controller"))?;
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Ok((
            status,
            serde_json::from_str(body).unwrap_or(Value::String(body.to_owned())),
        ))
    }

    /// The last lines of every daemon log (for error messages).
    pub fn logs(&self) -> String {
        let mut out = String::new();
        let mut names = vec!["controller.log".to_string()];
        names.extend(self.agents.keys().map(|s| format!("agent-{s}.log")));
        names.extend(self.nodes.keys().map(|h| format!("node-{h}.log")));
        for s in self.snmp.keys() {
            names.push(format!("snmpd-{s}/snmpd.log"));
            names.push(format!("snmpd-{s}/handler.log"));
        }
        for n in names {
            let t = tail(&self.dir.join(&n));
            if !t.trim().is_empty() {
                out += &format!("--- {n}\n{t}\n");
            }
        }
        out
    }

    /// (name, PID) of every daemon: `controller`, `agent-<SWITCH>`, `node-<HOST>`.
    pub fn pids(&self) -> Vec<(String, u32)> {
        let mut v = vec![("controller".to_string(), self.controller.pid())];
        v.extend(
            self.agents
                .iter()
                .map(|(n, c)| (format!("agent-{n}"), c.pid())),
        );
        v.extend(
            self.nodes
                .iter()
                .map(|(h, c)| (format!("node-{h}"), c.pid())),
        );
        v
    }

    /// End every daemon now (nodes, agents, controller).
    pub fn stop(mut self) {
        self.nodes.clear();
        self.agents.clear();
        self.snmp.clear();
        self.controller
            .stop_with(nix_sigterm(), Duration::from_secs(2));
    }
}

fn nix_sigterm() -> nix::sys::signal::Signal {
    nix::sys::signal::Signal::SIGTERM
}

/// Last 20 lines of a file.
pub fn tail(p: &Path) -> String {
    let t = std::fs::read_to_string(p).unwrap_or_default();
    let lines: Vec<&str> = t.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
