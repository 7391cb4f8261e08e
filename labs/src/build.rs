//! Building a lab from a topology, and waiting until it is settled.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv6Addr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::cmd::{self, run};
use crate::error::{LabError, Result};
use crate::lab::{
    HostInfo, Lab, LabOptions, PortInfo, PortPeer, SwitchInfo, link_local_of, mac_string, send_from,
};
use crate::netns;
use crate::topology::{Backend, Topology};

/// Name of the bridge in every switch namespace.
pub const BRIDGE: &str = "br0";
/// Name of the interface in every host namespace.
pub const HOST_IF: &str = "eth0";
/// Group used to probe whether a switch's querier has settled (never used by tests).
pub const PROBE_GROUP: Ipv6Addr = Ipv6Addr::new(0xff05, 0, 0, 0, 0, 0x5c, 0xffff, 0xffff);
const PROBE_PORT: u16 = 9;
/// ff02::1, flooded by every bridge: used by hosts to announce their MACs.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Prefix of every namespace this process creates: `slab<pid>-`.
pub fn process_prefix() -> String {
    format!("slab{}-", std::process::id())
}

/// A fresh lab prefix (`slab<pid>-<n>`) that no existing namespace uses.
fn fresh_prefix() -> String {
    let existing = netns::list();
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let p = format!("{}{n}", process_prefix());
        let dash = format!("{p}-");
        if !existing.iter().any(|e| e.starts_with(&dash)) {
            return p;
        }
    }
}

/// Delete namespaces whose name starts with `prefix`, which must start with this
/// process's own prefix ([`process_prefix`]); namespaces of other processes are never
/// touched. Processes inside them are killed first. Returns the names deleted.
pub fn cleanup_stale(prefix: &str) -> Result<Vec<String>> {
    if !prefix.starts_with(&process_prefix()) {
        return Err(LabError::Unsupported(format!(
            "cleanup_stale(\"{prefix}\"): only prefixes starting with this process's own \
             `{}` may be cleaned",
            process_prefix()
        )));
    }
    let mut gone = Vec::new();
    for ns in netns::list() {
        if ns.starts_with(prefix) {
            if let Ok(out) = run(&["ip", "netns", "pids", &ns]) {
                for pid in cmd::stdout(&out).split_whitespace() {
                    if let Ok(p) = pid.parse() {
                        crate::process::kill_pid(p);
                    }
                }
            }
            run(&["ip", "netns", "del", &ns])?;
            gone.push(ns);
        }
    }
    Ok(gone)
}

/// nftables table (family bridge) that drops MLD queries arriving on trunks.
pub const QUERY_TABLE: &str = "subcast_lab_queriers";

fn ip_n<'a>(ns: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["ip", "-n", ns];
    v.extend_from_slice(rest);
    v
}

impl Lab {
    /// Build every switch, host and trunk of `topo` in fresh namespaces, then (unless
    /// `opts.wait_settled` is false) wait until every bridge has a settled querier and
    /// has learned every host MAC. On error, everything made so far is removed.
    pub fn build(topo: &Topology, opts: LabOptions) -> Result<Lab> {
        topo.validate()?;
        let started = Instant::now();
        let mut lab = Lab::empty(topo, fresh_prefix())?;
        lab.make_switches()?;
        if topo.stp {
            lab.enable_stp()?;
        }
        lab.make_hosts()?;
        lab.isolate_queriers()?;
        lab.make_trunks()?;
        lab.fill_ifindexes()?;
        lab.add_neighbours()?;
        if topo.stp {
            // Static groups and paths follow the tree the bridges elect.
            let (took, _) = lab.wait_stp_converged(opts.settle_timeout)?;
            tracing::debug!(?took, "spanning tree converged");
        }
        if opts.static_negotiating_groups {
            for name in topo.negotiating_groups.keys() {
                let addr = topo.group_address(name).ok_or_else(|| {
                    LabError::Parse(format!("address of negotiating group {name}"))
                })?;
                let members: Vec<&str> = topo.negotiating_groups[name]
                    .members
                    .iter()
                    .map(String::as_str)
                    .collect();
                lab.static_group(addr, &members)?;
            }
        }
        if opts.close_mld {
            let names: Vec<String> = lab.switches.keys().cloned().collect();
            for s in names {
                lab.close_mld(&s)?;
            }
        }
        lab.apply_shaping()?;
        tracing::debug!(prefix = %lab.prefix, elapsed = ?started.elapsed(), "lab made");
        if opts.wait_settled {
            lab.settle(opts.settle_timeout)?;
        }
        tracing::info!(prefix = %lab.prefix, elapsed = ?started.elapsed(), "lab ready");
        Ok(lab)
    }

    fn new_netns(&mut self, ns: &str) -> Result<()> {
        run(&["ip", "netns", "add", ns])?;
        self.namespaces.push(ns.to_string());
        cmd::run_in(
            ns,
            &[
                "sysctl",
                "-q",
                "-w",
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
            ],
        )?;
        // Where br_netfilter is loaded (GlusterFS, Docker and others load
        // it), every bridged frame of the lab would also run the IPv6,
        // IPv4 and ARP netfilter hooks: a large share of each datagram's
        // cost on these machines, for no rule of ours (the lab's loss
        // rules are on the hosts). Each namespace has its own switch.
        if Path::new("/proc/sys/net/bridge").exists() {
            cmd::run_in(
                ns,
                &[
                    "sysctl",
                    "-q",
                    "-w",
                    "net.bridge.bridge-nf-call-ip6tables=0",
                    "net.bridge.bridge-nf-call-iptables=0",
                    "net.bridge.bridge-nf-call-arptables=0",
                ],
            )?;
        }
        run(&ip_n(ns, &["link", "set", "lo", "up"]))?;
        Ok(())
    }

    fn make_switches(&mut self) -> Result<()> {
        let topo = self.topo.clone();
        for (i, (name, spec)) in topo.switches.iter().enumerate() {
            let index = u16::try_from(i + 1).unwrap_or(u16::MAX);
            let ns = format!("{}-s{name}", self.prefix);
            self.new_netns(&ns)?;
            let [hi, lo] = index.to_be_bytes();
            let bridge_mac = [0x02, 0x5c, 0x01, 0x00, hi, lo];
            let mac = mac_string(&bridge_mac);
            let is_ovs = spec.backend == Backend::Openflow;
            let ovs = if is_ovs {
                Some(self.start_ovs(name, &ns, &mac)?)
            } else {
                run(&ip_n(
                    &ns,
                    &[
                        "link",
                        "add",
                        BRIDGE,
                        "address",
                        &mac,
                        "type",
                        "bridge",
                        "mcast_snooping",
                        "1",
                        "mcast_querier",
                        "0",
                        "mcast_query_response_interval",
                        "100",
                        "mcast_hash_max",
                        "65536",
                        "ageing_time",
                        "3000000",
                    ],
                ))?;
                None
            };
            let ll = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0x5c, 1, index);
            let ll_s = format!("{ll}/64");
            run(&ip_n(&ns, &["addr", "add", &ll_s, "dev", BRIDGE, "nodad"]))?;
            let mgmt = Ipv6Addr::new(0xfd00, 0x5c, 0, 0, 0, 0, 1, index);
            let mgmt_s = format!("{mgmt}/64");
            run(&ip_n(
                &ns,
                &["addr", "add", &mgmt_s, "dev", BRIDGE, "nodad"],
            ))?;
            let mgmt_ipv4 = topo
                .family
                .has_ipv4()
                .then(|| crate::v4::switch_ipv4(index));
            if let Some(a) = mgmt_ipv4 {
                let a = format!("{a}/{}", crate::v4::PREFIX_LEN);
                run(&ip_n(&ns, &["addr", "add", &a, "dev", BRIDGE]))?;
            }
            run(&ip_n(&ns, &["link", "set", BRIDGE, "up"]))?;
            if !is_ovs {
                run(&ip_n(
                    &ns,
                    &[
                        "link",
                        "set",
                        BRIDGE,
                        "type",
                        "bridge",
                        "mcast_querier",
                        "1",
                    ],
                ))?;
            }
            // Ports made from now on get no IPv6 of their own: otherwise each port would
            // send router solicitations and MLD reports straight into the peer bridge.
            cmd::run_in(
                &ns,
                &["sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1"],
            )?;
            self.switches.insert(
                name.clone(),
                SwitchInfo {
                    name: name.clone(),
                    index,
                    backend: spec.backend,
                    netns: ns,
                    bridge: BRIDGE.to_string(),
                    bridge_ifindex: 0,
                    bridge_link_local: ll,
                    bridge_mac,
                    mgmt_ipv6: mgmt,
                    mgmt_ipv4,
                    ports: Vec::new(),
                    ovs,
                },
            );
        }
        Ok(())
    }

    fn make_hosts(&mut self) -> Result<()> {
        let topo = self.topo.clone();
        for (i, name) in topo.hosts_in_order().into_iter().enumerate() {
            let index = u16::try_from(i + 1).unwrap_or(u16::MAX);
            let ns = format!("{}-h{name}", self.prefix);
            self.new_netns(&ns)?;
            let [hi, lo] = index.to_be_bytes();
            let mac = [0x02, 0x5c, 0x00, 0x00, hi, lo];
            let sw_name = topo.hosts[name].switch.clone();
            let sw_ns = self.switch(&sw_name).netns.clone();
            let port = format!("h-{name}");
            let mac_s = mac_string(&mac);
            let mtu = topo.mtu().to_string();
            run(&ip_n(
                &ns,
                &[
                    "link", "add", HOST_IF, "address", &mac_s, "mtu", &mtu, "type", "veth", "peer",
                    "name", &port, "mtu", &mtu, "netns", &sw_ns,
                ],
            ))?;
            let ipv6 = Ipv6Addr::new(0xfd00, 0x5c, 0, 0, 0, 0, 0, index);
            let addr = format!("{ipv6}/64");
            run(&ip_n(&ns, &["addr", "add", &addr, "dev", HOST_IF, "nodad"]))?;
            let ipv4 = topo.family.has_ipv4().then(|| crate::v4::host_ipv4(index));
            if let Some(a) = ipv4 {
                let a = format!("{a}/{}", crate::v4::PREFIX_LEN);
                run(&ip_n(&ns, &["addr", "add", &a, "dev", HOST_IF]))?;
            }
            run(&ip_n(&ns, &["link", "set", HOST_IF, "up"]))?;
            if ipv4.is_some() {
                // IPv4 multicast out of eth0 (the hosts have no default route).
                run(&ip_n(&ns, &["route", "add", "224.0.0.0/4", "dev", HOST_IF]))?;
            }
            if self.has_ovs() {
                // Veth checksum offload leaves bad UDP checksums after OVS's userspace
                // datapath: compute checksums in the sender (this also turns UDP
                // segmentation offload off, as below).
                cmd::run_in(&ns, &["ethtool", "-K", HOST_IF, "tx", "off"])?;
            } else if topo.nic_offload {
                // A NIC that segments UDP (left on, as the veth's TCP segmentation
                // always is) and a receiver that coalesces: batches cross whole.
                cmd::run_in(&ns, &["ethtool", "-K", HOST_IF, "gro", "on"])?;
            } else {
                // UDP GSO batches (the storage nodes send DATA that way) are cut into
                // frames at the host's own interface, as by a host whose NIC has no
                // UDP segmentation offload; a veth would otherwise carry a whole batch
                // through the bridges as one packet, and captures, interface counters
                // and loss rules would count batches instead of frames.
                cmd::run_in(
                    &ns,
                    &["ethtool", "-K", HOST_IF, "tx-udp-segmentation", "off"],
                )?;
            }
            let ofport = self.attach_port(&sw_name, &port)?;
            if let Some(sw) = self.switches.get_mut(&sw_name) {
                sw.ports.push(PortInfo {
                    name: port.clone(),
                    ifindex: 0,
                    toward: PortPeer::Host(name.to_string()),
                    ofport,
                });
            }
            self.hosts.insert(
                name.to_string(),
                HostInfo {
                    name: name.to_string(),
                    index,
                    netns: ns,
                    ifname: HOST_IF.to_string(),
                    ifindex: 0,
                    ipv6,
                    link_local: link_local_of(&mac),
                    ipv4,
                    mac,
                    switch: sw_name,
                    switch_port: port,
                },
            );
        }
        Ok(())
    }

    fn make_trunks(&mut self) -> Result<()> {
        let links = self.topo.links.clone();
        for [a, b] in links.iter().map(|l| &l.between) {
            let ns_a = self.switch(a).netns.clone();
            let ns_b = self.switch(b).netns.clone();
            let (pa, pb) = (format!("t-{b}"), format!("t-{a}"));
            let mtu = self.topo.mtu().to_string();
            run(&ip_n(
                &ns_a,
                &[
                    "link", "add", &pa, "mtu", &mtu, "type", "veth", "peer", "name", &pb, "mtu",
                    &mtu, "netns", &ns_b,
                ],
            ))?;
            for (port, sw, peer) in [(&pa, a, b), (&pb, b, a)] {
                let ofport = self.attach_trunk(sw, port)?;
                if let Some(s) = self.switches.get_mut(sw) {
                    s.ports.push(PortInfo {
                        name: port.clone(),
                        ifindex: 0,
                        toward: PortPeer::Switch(peer.clone()),
                        ofport,
                    });
                }
            }
        }
        Ok(())
    }

    /// Keep every Linux bridge its own querier: drop MLD queries (and, with IPv4,
    /// IGMP queries) that arrive on trunk ports. Otherwise the bridges elect one
    /// querier among themselves, and whenever a bridge first hears the winner's
    /// query (the second startup query, ~31 s after the build) the kernel treats
    /// the querier as unknown for the response delay and floods registered groups
    /// to every port for ~1 s. (With IGMP no such flood was seen here, queries
    /// coming from 0.0.0.0; they are dropped all the same, so IPv4 behaves the same
    /// way whatever the kernel does.)
    /// Installed before the trunks exist (nftables matches interface names), so no
    /// query ever crosses a trunk.
    fn isolate_queriers(&self) -> Result<()> {
        for sw in self.switches.values().filter(|s| s.ovs.is_none()) {
            let trunks: Vec<String> = self
                .topo
                .neighbours(&sw.name)
                .iter()
                .map(|n| format!("\"t-{n}\""))
                .collect();
            if trunks.is_empty() {
                continue;
            }
            let igmp = if self.topo.family.has_ipv4() {
                crate::v4::igmp_query_rule(&trunks.join(", "))
            } else {
                String::new()
            };
            let rules = format!(
                "table bridge {QUERY_TABLE} {{\n  chain pre {{\n    \
                 type filter hook prerouting priority -300; policy accept;\n    \
                 iifname {{ {} }} meta l4proto ipv6-icmp icmpv6 type 130 counter drop\n{igmp}  }}\n}}\n",
                trunks.join(", ")
            );
            cmd::run_stdin(
                &["ip", "netns", "exec", &sw.netns, "nft", "-f", "-"],
                Some(&rules),
            )?;
        }
        Ok(())
    }

    fn has_ovs(&self) -> bool {
        self.switches.values().any(|s| s.ovs.is_some())
    }

    /// Make `port` (in the switch namespace) a port of the switch's `br0` and bring it
    /// up. Returns the OpenFlow port number on OVS switches.
    fn attach_port(&self, switch: &str, port: &str) -> Result<Option<u32>> {
        let sw = self.try_switch(switch)?;
        if sw.ovs.is_some() {
            run(&ip_n(&sw.netns, &["link", "set", port, "up"]))?;
            Ok(Some(self.ovs_add_port(switch, port)?))
        } else {
            run(&ip_n(
                &sw.netns,
                &["link", "set", port, "master", BRIDGE, "up"],
            ))?;
            Ok(None)
        }
    }

    /// Make trunk end `port` a port of the switch's `br0`. On a Linux bridge the
    /// port joins the bridge while still down, gets `mcast_router 0`, and only then
    /// comes up: with the default (`1`, learned) a query from the neighbour would make
    /// it a router port for a moment and hosts' MLD reports would cross the trunk.
    fn attach_trunk(&self, switch: &str, port: &str) -> Result<Option<u32>> {
        let sw = self.try_switch(switch)?;
        if sw.ovs.is_some() {
            return self.attach_port(switch, port);
        }
        run(&ip_n(&sw.netns, &["link", "set", port, "master", BRIDGE]))?;
        run(&[
            "bridge",
            "-n",
            &sw.netns,
            "link",
            "set",
            "dev",
            port,
            "mcast_router",
            "0",
        ])?;
        run(&ip_n(&sw.netns, &["link", "set", port, "up"]))?;
        Ok(None)
    }

    fn fill_ifindexes(&mut self) -> Result<()> {
        for sw in self.switches.values_mut() {
            let idx = ifindexes(&sw.netns)?;
            sw.bridge_ifindex = lookup(&idx, &sw.netns, &sw.bridge)?;
            for p in &mut sw.ports {
                p.ifindex = lookup(&idx, &sw.netns, &p.name)?;
            }
        }
        for h in self.hosts.values_mut() {
            let idx = ifindexes(&h.netns)?;
            h.ifindex = lookup(&idx, &h.netns, &h.ifname)?;
        }
        Ok(())
    }

    /// Permanent neighbour entries, in every host and switch namespace, for every host
    /// address and switch management address, so unicast IPv6 needs no neighbour discovery (whose multicast a closed or querier-governed
    /// bridge may not forward across trunks).
    fn add_neighbours(&mut self) -> Result<()> {
        // (address, MAC) of every host and every switch's management address.
        let mut all: Vec<(Ipv6Addr, String)> = Vec::new();
        for o in self.hosts.values() {
            all.push((o.ipv6, o.mac_string()));
            all.push((o.link_local, o.mac_string()));
        }
        for s in self.switches.values() {
            all.push((s.mgmt_ipv6, mac_string(&s.bridge_mac)));
        }
        // IPv4 too: ARP works (broadcast floods), but a permanent entry keeps the
        // first datagram of a put from waiting for it, as with IPv6.
        let mut all: Vec<(std::net::IpAddr, String)> =
            all.into_iter().map(|(a, m)| (a.into(), m)).collect();
        for o in self.hosts.values() {
            if let Some(a) = o.ipv4 {
                all.push((a.into(), o.mac_string()));
            }
        }
        for s in self.switches.values() {
            if let Some(a) = s.mgmt_ipv4 {
                all.push((a.into(), mac_string(&s.bridge_mac)));
            }
        }
        let places = self
            .hosts
            .values()
            .map(|h| (h.netns.as_str(), h.ifname.as_str(), h.mac_string()))
            .chain(self.switches.values().map(|s| {
                (
                    s.netns.as_str(),
                    s.bridge.as_str(),
                    mac_string(&s.bridge_mac),
                )
            }));
        for (ns, dev, own_mac) in places {
            let batch: String = all
                .iter()
                .filter(|(_, mac)| *mac != own_mac)
                .map(|(a, mac)| format!("neigh replace {a} lladdr {mac} dev {dev} nud permanent\n"))
                .collect();
            if !batch.is_empty() {
                cmd::run_stdin(&["ip", "-n", ns, "-batch", "-"], Some(&batch))?;
            }
        }
        Ok(())
    }

    /// Wait (at most `timeout`) until every switch's FDB holds every host MAC and every
    /// bridge's querier has settled (an unregistered group no longer floods). `build`
    /// does this unless `LabOptions::wait_settled` is false.
    pub fn settle(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        self.wait_topology_change_over(timeout)?;
        self.wait_fdb(deadline)?;
        self.wait_queriers(deadline)
    }

    /// Wait until every switch's FDB holds every host MAC. Each host announces itself
    /// with a datagram to ff02::1 (flooded everywhere) until learned.
    pub(crate) fn wait_fdb(&self, deadline: Instant) -> Result<()> {
        let all: BTreeSet<String> = self.hosts.values().map(HostInfo::mac_string).collect();
        loop {
            let mut missing = BTreeMap::new();
            for sw in self.switches.values() {
                let have = if sw.ovs.is_some() {
                    self.ovs_fdb_macs(&sw.name)?
                } else {
                    fdb_macs(&sw.netns)?
                };
                let lack: Vec<&String> = all.iter().filter(|m| !have.contains(*m)).collect();
                if !lack.is_empty() {
                    missing.insert(sw.name.clone(), lack.len());
                }
            }
            if missing.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(LabError::Timeout(format!(
                    "bridges did not learn all host MACs (missing per switch: {missing:?})"
                )));
            }
            for h in self.hosts.values() {
                // A link whose carrier the kernel has not seen yet has no IPv6
                // multicast route (ENETUNREACH): the next round sends again.
                match send_from(&h.netns, &h.ifname, ALL_NODES, PROBE_PORT, 1, 8) {
                    Err(e) if e.is_link_not_ready() => {
                        tracing::debug!(host = %h.name, "link not ready yet: {e}");
                    }
                    r => r?,
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait until every bridge stops flooding an unregistered group: the sign that its
    /// querier exists and static MDB entries are obeyed.
    fn wait_queriers(&self, deadline: Instant) -> Result<()> {
        let mut pending: Vec<&SwitchInfo> = self
            .switches
            .values()
            .filter(|s| !s.ports.is_empty() && s.ovs.is_none())
            .collect();
        let started = Instant::now();
        while !pending.is_empty() {
            let mut caps = Vec::new();
            // The MLD querier, and with IPv4 the IGMP querier too.
            let mut probes = vec![(PROBE_GROUP, format!("dst {PROBE_GROUP}"))];
            if self.topo.family.has_ipv4() {
                let g = crate::v4::PROBE_GROUP_V4;
                probes.push((g.to_ipv6_mapped(), format!("dst {g}")));
            }
            for sw in &pending {
                let port = &sw.ports[0].name;
                for (_, filter) in &probes {
                    let cap = self.capture_on(&sw.netns, port, "out", filter)?;
                    caps.push((sw, cap));
                }
            }
            // A bridge not ready for IPv6 yet sent nothing: it stays pending
            // (no flood seen then proves nothing).
            let mut unsent = Vec::new();
            for sw in &pending {
                for (group, _) in &probes {
                    match send_from(&sw.netns, &sw.bridge, *group, PROBE_PORT, 2, 8) {
                        Err(e) if e.is_link_not_ready() => {
                            tracing::debug!(switch = %sw.name, "bridge not ready yet: {e}");
                            unsent.push(sw.name.clone());
                        }
                        r => r?,
                    }
                }
            }
            let mut still: Vec<&SwitchInfo> = Vec::new();
            for (sw, cap) in caps {
                let flooded = cap.stop()?.datagrams > 0;
                if (flooded || unsent.contains(&sw.name))
                    && !still.iter().any(|s| s.name == sw.name)
                {
                    still.push(*sw);
                }
            }
            pending = still;
            if pending.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                let names: Vec<&str> = pending.iter().map(|s| s.name.as_str()).collect();
                return Err(LabError::Timeout(format!(
                    "querier of switches {names:?} did not settle: they still flood unregistered \
                     multicast"
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        tracing::debug!(elapsed = ?started.elapsed(), "queriers settled");
        Ok(())
    }
}

fn ifindexes(ns: &str) -> Result<BTreeMap<String, u32>> {
    let out = run(&ip_n(ns, &["-j", "link", "show"]))?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| LabError::Parse(format!("`ip -j link show` in {ns}: {e}")))?;
    let mut m = BTreeMap::new();
    for l in v.as_array().into_iter().flatten() {
        if let (Some(n), Some(i)) = (l["ifname"].as_str(), l["ifindex"].as_u64()) {
            m.insert(n.to_string(), u32::try_from(i).unwrap_or(0));
        }
    }
    Ok(m)
}

fn lookup(idx: &BTreeMap<String, u32>, ns: &str, name: &str) -> Result<u32> {
    idx.get(name)
        .copied()
        .ok_or_else(|| LabError::Parse(format!("ifindex of {name} in {ns} (interface missing)")))
}

/// MACs in the bridge FDB of a switch namespace (learned and static).
pub(crate) fn fdb_macs(ns: &str) -> Result<BTreeSet<String>> {
    let out = run(&["bridge", "-n", ns, "-j", "fdb", "show", "br", BRIDGE])?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| LabError::Parse(format!("`bridge -j fdb show` in {ns}: {e}")))?;
    Ok(v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["mac"].as_str().map(str::to_lowercase))
        .collect())
}
