//! What the lab's daemons are configured with: the controller's, the agents' and
//! the storage nodes' YAML, the agents' addresses, and which family and ports a
//! stack of daemons uses ([`Flavor`]).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use labs::{Backend, Lab};

/// Rendezvous groups are leased from here (agents refuse anything outside it).
pub const POOL: &str = labs::RENDEZVOUS_POOL;
/// The same in a `family: ipv4` lab.
pub const POOL_V4: &str = labs::RENDEZVOUS_POOL_V4;

/// The family and the ports of one stack of daemons (controller, agents,
/// storage nodes). A lab runs the stack of its family; a `family: dual` lab
/// runs two side by side on the same bridges: IPv6 at the base ports
/// ([`Flavor::of`]) and IPv4 at the base ports + 100 ([`Flavor::DUAL_V4`]).
/// An agent serves one family, so each stack has its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flavor {
    /// IPv4 groups, members, addresses (else IPv6).
    pub ipv4: bool,
    /// Added to every port ([`API_PORT`], [`CTL_PORT`], ...).
    pub offset: u16,
}

impl Flavor {
    /// The IPv4 stack of a `family: dual` lab.
    pub const DUAL_V4: Flavor = Flavor {
        ipv4: true,
        offset: 100,
    };

    /// The stack of a lab's family (IPv6 for `dual`: see [`Flavor::DUAL_V4`]).
    pub fn of(lab: &Lab) -> Flavor {
        Flavor {
            ipv4: lab.topology().family == labs::Family::Ipv4,
            offset: 0,
        }
    }

    /// `ipv4` or `ipv6`.
    pub fn name(self) -> &'static str {
        if self.ipv4 { "ipv4" } else { "ipv6" }
    }

    /// The rendezvous pool.
    pub fn pool(self) -> &'static str {
        if self.ipv4 { POOL_V4 } else { POOL }
    }

    /// The loopback address (the controller's API, inside its namespace).
    pub fn loopback(self) -> IpAddr {
        if self.ipv4 {
            Ipv4Addr::LOCALHOST.into()
        } else {
            Ipv6Addr::LOCALHOST.into()
        }
    }

    pub fn api_port(self) -> u16 {
        API_PORT + self.offset
    }

    pub fn ctl_port(self) -> u16 {
        CTL_PORT + self.offset
    }

    pub fn agent_port(self) -> u16 {
        AGENT_PORT + self.offset
    }

    pub fn node_port(self) -> u16 {
        NODE_PORT + self.offset
    }

    pub fn metrics_port(self) -> u16 {
        AGENT_METRICS_PORT + self.offset
    }

    /// Whether a group (group form, IPv4 ones IPv4-mapped) is of this family.
    pub fn has(self, group: Ipv6Addr) -> bool {
        group.to_ipv4_mapped().is_some() == self.ipv4
    }

    /// The negotiating groups of this family: (name, spec, address in group
    /// form), in name order.
    pub fn groups(self, lab: &Lab) -> Vec<(String, labs::GroupSpec, Ipv6Addr)> {
        let topo = lab.topology();
        topo.negotiating_groups
            .iter()
            .filter_map(|(g, spec)| {
                let a = topo.group_address(g)?;
                self.has(a).then(|| (g.clone(), spec.clone(), a))
            })
            .collect()
    }

    /// A switch's management address in this family.
    pub fn mgmt(self, sw: &labs::SwitchInfo) -> IpAddr {
        match sw.mgmt_ipv4 {
            Some(a) if self.ipv4 => a.into(),
            _ => sw.mgmt_ipv6.into(),
        }
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
/// The storage nodes' and clients' chunk size in every lab config.
pub const CHUNK_SIZE: usize = 1 << 20;
/// Objects of 1 byte to this many go inside their manifest (`inline_max`
/// in every lab config, the node's default): no data chunk is stored.
pub const INLINE_MAX: usize = 256 << 10;

/// Data chunks a put of `size` bytes stores (0: inside its manifest).
pub fn data_chunks_of(size: usize) -> usize {
    if size > 0 && size <= INLINE_MAX.min(CHUNK_SIZE) {
        0
    } else {
        size.div_ceil(CHUNK_SIZE).max(1)
    }
}
/// Prometheus `/metrics` of each agent, at `[::1]` inside its switch's namespace.
pub const AGENT_METRICS_PORT: u16 = 9410;

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

pub(crate) fn controller_yaml(
    lab: &Lab,
    fl: Flavor,
    addrs: &BTreeMap<String, AgentAddr>,
    tw: &CtlTweaks,
) -> String {
    let (any, pool) = if fl.ipv4 {
        ("0.0.0.0", POOL_V4)
    } else {
        ("[::]", POOL)
    };
    let ctl_port = fl.ctl_port();
    let mut y = format!(
        "controller:\n  id: 1\n  udp_listen: \"{any}:{ctl_port}\"\n  database: \":memory:\"\n  \
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
            SocketAddr::new(addrs[name].listen, fl.agent_port())
        );
    }
    y += "groups:\n";
    for (i, (g, spec, addr)) in fl.groups(lab).into_iter().enumerate() {
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
    let api = SocketAddr::new(fl.loopback(), fl.api_port());
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
pub(crate) struct AgentAddr {
    listen: IpAddr,
    controller: IpAddr,
}

/// Agent addresses. On a Linux bridge the agent uses the switch's management
/// address, in band. An agent on an OVS switch is that switch's OpenFlow controller,
/// and the switch's own address sits behind the flows the agent installs, so it gets
/// an out-of-band management link instead: a veth `m-<S>` in the controller's
/// namespace (`fd00:5d:N::1/64`) to `mgmt0` in the switch's (`fd00:5d:N::2/64`).
pub(crate) fn agent_addrs(
    lab: &Lab,
    fl: Flavor,
    ctl_switch: &str,
) -> Result<BTreeMap<String, AgentAddr>> {
    let ctl = lab.switch(ctl_switch);
    let mut out = BTreeMap::new();
    for (name, sw) in lab.switches() {
        let a = if !is_ovs(lab, name) {
            AgentAddr {
                listen: fl.mgmt(sw),
                controller: fl.mgmt(ctl),
            }
        } else if name == ctl_switch {
            AgentAddr {
                listen: fl.loopback(),
                controller: fl.loopback(),
            }
        } else if fl.offset != 0 {
            bail!("switch {name}: a `family: dual` lab runs no Open vSwitch switches");
        } else if fl.ipv4 {
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
pub(crate) const OPENFLOW_ADDR: &str = "127.0.0.1:6653";

pub(crate) fn is_ovs(lab: &Lab, switch: &str) -> bool {
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
pub(crate) fn teach_openflow(lab: &Lab) -> Result<()> {
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

#[allow(clippy::too_many_arguments)]
pub(crate) fn agent_yaml(
    lab: &Lab,
    fl: Flavor,
    dir: &Path,
    switch: &str,
    id: usize,
    addr: &AgentAddr,
    snmp: Option<&crate::snmp::SnmpSwitch>,
) -> String {
    let ctl_ip = addr.controller;
    let mut y = format!(
        "switch_id: {id}\n{}controller: \"{}\"\n\
         listen: \"{}\"\nkey: {{ id: 101, file: \"{}\" }}\ncontroller_keys:\n  - {{ id: 1, file: \"{}\" }}\n\
         rendezvous_range: \"{}\"\nheartbeat_interval_ms: 500\n\
         metrics: \"[::1]:{}\"\nparent_groups:\n",
        backend_yaml(lab, switch, snmp),
        SocketAddr::new(ctl_ip, fl.ctl_port()),
        SocketAddr::new(addr.listen, fl.agent_port()),
        dir.join("agent.key").display(),
        dir.join("ctl.key").display(),
        fl.pool(),
        fl.metrics_port(),
    );
    for (_, spec, addr) in fl.groups(lab) {
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
    fl: Flavor,
    dir: &Path,
    ctl_ip: IpAddr,
    host: &str,
    node_id: Option<u16>,
    serving: &[String],
) -> String {
    let topo = lab.topology();
    let mine = fl.groups(lab);
    let groups: Vec<String> = mine
        .iter()
        .map(|(_, _, a)| format!("\"{}\"", a.to_canonical()))
        .collect();
    let mut y = format!(
        "negotiating_groups: [{}]\nport: {}\ninterface: eth0\nhops: 1\nmtu: {}\nrate_mbps: 1000\n\
         replicas: 3\nchunk_size: {CHUNK_SIZE}\ninline_max: {INLINE_MAX}\nparallel: 4\ntransport: rendezvous\n\
         key: {{ id: 1, file: \"{}\" }}\ncontroller:\n  address: \"{}\"\n  vlan: 0\n  \
         lifetime_ms: 5000\n  key: {{ id: 2, file: \"{}\" }}\n",
        groups.join(", "),
        fl.node_port(),
        topo.mtu(),
        dir.join("cluster.key").display(),
        SocketAddr::new(ctl_ip, fl.ctl_port()),
        dir.join("nodes.key").display()
    );
    // Every group's members that run a node, by node id: a lookup or bid
    // round then ends when they all answered (a client that knows none
    // waits longer).
    let members: Vec<String> = mine
        .iter()
        .map(|(_, spec, addr)| {
            let ids: Vec<String> = spec
                .members
                .iter()
                .filter(|m| serving.contains(m))
                .map(|m| lab.host(m).index.to_string())
                .collect();
            format!("\"{}\": [{}]", addr.to_canonical(), ids.join(", "))
        })
        .collect();
    y += &format!("members: {{{}}}\n", members.join(", "));
    if let Some(id) = node_id {
        let member_of: Vec<String> = mine
            .iter()
            .enumerate()
            .filter(|(_, (_, g, _))| g.members.iter().any(|m| m == host))
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
