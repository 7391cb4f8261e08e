//! Static multicast entries and closed MLD on lab switches (with the `bridge` and
//! `nft` tools; the agent's backend does the same over netlink).

use std::collections::BTreeMap;
use std::net::Ipv6Addr;

use crate::build::BRIDGE;
use crate::cmd::{self, run};
use crate::error::{LabError, Result};
use crate::lab::{Lab, PortPeer};

/// One MDB entry as `bridge -j mdb show` reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct MdbEntry {
    /// Port name (`h-X1`, `t-B`, or `br0` for host-joined entries).
    pub port: String,
    /// Group address; an IPv4 group IPv4-mapped (`::ffff:239.92.128.1`, the
    /// protocol's group form: see [`crate::ip_group`]).
    pub group: Ipv6Addr,
    /// `permanent` or `temp`.
    pub state: String,
}

/// Name of the nftables table [`Lab::close_mld`] installs in a switch namespace.
pub const MLD_TABLE: &str = "subcast_lab_mld";

impl Lab {
    /// The ports a static group for `members` needs, per switch: each member's host
    /// port, and on every switch the trunk toward each side that has a member.
    pub fn static_group_ports(&self, members: &[&str]) -> Result<BTreeMap<String, Vec<String>>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for m in members {
            let h = self.try_host(m)?;
            out.entry(h.switch.clone())
                .or_default()
                .push(h.switch_port.clone());
        }
        for (sw, toward) in self.active_topology()?.trunks_toward(members) {
            let port = self
                .try_switch(&sw)?
                .port_to_switch(&toward)
                .ok_or_else(|| LabError::Parse(format!("trunk {sw}->{toward}")))?
                .name
                .clone();
            out.entry(sw).or_default().push(port);
        }
        for v in out.values_mut() {
            v.sort();
            v.dedup();
        }
        Ok(out)
    }

    /// Install permanent MDB entries so `group` reaches exactly `members` (see
    /// [`Lab::static_group_ports`]). Returns the ports used per switch. On OVS switches
    /// this installs an OpenFlow group (type all) and a `priority=100` flow instead.
    pub fn static_group(
        &self,
        group: Ipv6Addr,
        members: &[&str],
    ) -> Result<BTreeMap<String, Vec<String>>> {
        let ports = self.static_group_ports(members)?;
        for (sw, list) in &ports {
            if self.try_switch(sw)?.ovs.is_some() {
                self.ovs_static_group(sw, group, list)?;
                continue;
            }
            let entries: Vec<(String, Ipv6Addr)> =
                list.iter().map(|p| (p.clone(), group)).collect();
            mdb_add_all(self.try_switch(sw)?, &entries)?;
        }
        Ok(ports)
    }

    /// Add one permanent MDB entry on `switch`, port `port`. An entry the bridge
    /// learned there from MLD, or an existing permanent one, is replaced (not an
    /// error).
    pub fn mdb_add(&self, switch: &str, port: &str, group: Ipv6Addr) -> Result<()> {
        self.linux_bridge_ns(switch)?;
        mdb_add_all(self.try_switch(switch)?, &[(port.to_string(), group)])
    }

    /// Delete one MDB entry on `switch`, port `port`.
    pub fn mdb_del(&self, switch: &str, port: &str, group: Ipv6Addr) -> Result<()> {
        let ns = self.linux_bridge_ns(switch)?;
        // `bridge` takes an IPv4 group as 239.92.128.1, not IPv4-mapped.
        let g = group.to_canonical().to_string();
        run(&[
            "bridge", "-n", ns, "mdb", "del", "dev", BRIDGE, "port", port, "grp", &g,
        ])?;
        Ok(())
    }

    /// The MDB of `switch`: IPv6 entries, and IPv4 ones IPv4-mapped (L2 entries
    /// are left out).
    pub fn mdb_show(&self, switch: &str) -> Result<Vec<MdbEntry>> {
        let ns = self.linux_bridge_ns(switch)?;
        let out = run(&["bridge", "-n", ns, "-j", "mdb", "show", "dev", BRIDGE])?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| LabError::Parse(format!("`bridge -j mdb show` in {ns}: {e}")))?;
        let mut entries = Vec::new();
        for block in v.as_array().into_iter().flatten() {
            for e in block["mdb"].as_array().into_iter().flatten() {
                let (Some(port), Some(grp)) = (e["port"].as_str(), e["grp"].as_str()) else {
                    continue;
                };
                let Ok(group) = grp.parse::<std::net::IpAddr>() else {
                    continue;
                };
                let group = crate::v4::group_ip(group);
                entries.push(MdbEntry {
                    port: port.to_string(),
                    group,
                    state: e["state"].as_str().unwrap_or("").to_string(),
                });
            }
        }
        entries.sort();
        Ok(entries)
    }

    /// Close MLD on `switch`: an nftables table (family bridge, hook prerouting) drops
    /// MLD reports (ICMPv6 131 and 143) arriving on host ports, and in `family: ipv4`
    /// and `dual` labs IGMP reports and leaves (v1, v2, v3) too, so hosts cannot add
    /// themselves to groups (IPv4 needs no pinned groups: ARP is broadcast); and permanent MDB entries for every host's solicited-node
    /// group (toward its host port or trunk) keep neighbour discovery working. Trunk
    /// ports are not filtered. Idempotent. A no-op on OVS switches (they do no MLD
    /// snooping here, so a host's join changes nothing).
    pub fn close_mld(&self, switch: &str) -> Result<()> {
        let sw = self.try_switch(switch)?;
        if sw.ovs.is_some() {
            return Ok(());
        }
        let host_ports: Vec<String> = sw
            .ports
            .iter()
            .filter(|p| matches!(p.toward, PortPeer::Host(_)))
            .map(|p| format!("\"{}\"", p.name))
            .collect();
        let mut rules = format!(
            "table bridge {MLD_TABLE}\ndelete table bridge {MLD_TABLE}\n\
             table bridge {MLD_TABLE} {{\n  chain pre {{\n    \
             type filter hook prerouting priority -300; policy accept;\n"
        );
        if !host_ports.is_empty() {
            rules.push_str(&format!(
                "    iifname {{ {} }} meta l4proto ipv6-icmp icmpv6 type {{ 131, 143 }} counter drop\n",
                host_ports.join(", ")
            ));
            if self.topo.family.has_ipv4() {
                rules.push_str(&crate::v4::igmp_report_rule(&host_ports.join(", ")));
            }
        }
        rules.push_str("  }\n}\n");
        cmd::run_stdin(
            &["ip", "netns", "exec", &sw.netns, "nft", "-f", "-"],
            Some(&rules),
        )?;
        let tree = self.active_topology()?;
        let mut entries = Vec::new();
        for h in self.hosts.values() {
            let port = if h.switch == sw.name {
                h.switch_port.clone()
            } else {
                let side = tree
                    .trunks_toward(&[h.name.as_str()])
                    .into_iter()
                    .find(|(from, _)| *from == sw.name)
                    .map(|(_, to)| to)
                    .ok_or_else(|| LabError::Parse(format!("path {switch} -> {}", h.name)))?;
                sw.port_to_switch(&side)
                    .ok_or_else(|| LabError::Parse(format!("trunk {switch} -> {side}")))?
                    .name
                    .clone()
            };
            for g in [
                h.solicited_node(),
                crate::lab::solicited_node(&h.link_local),
            ] {
                entries.push((port.clone(), g));
            }
        }
        mdb_add_all(sw, &entries)
    }

    fn linux_bridge_ns(&self, switch: &str) -> Result<&str> {
        let sw = self.try_switch(switch)?;
        if sw.ovs.is_some() {
            return Err(LabError::Unsupported(format!(
                "switch `{switch}` is an OVS switch: it has no MDB (use Lab::ovs_ofctl)"
            )));
        }
        Ok(&sw.netns)
    }

    /// How many MLD reports the [`Lab::close_mld`] rule of `switch` has dropped.
    pub fn mld_dropped(&self, switch: &str) -> Result<u64> {
        self.rule_packets(switch, MLD_TABLE, "icmpv6")
    }

    /// How many IGMP reports and leaves the [`Lab::close_mld`] rule of `switch` has
    /// dropped (`family: ipv4` and `dual` labs; 0 without the rule).
    pub fn igmp_dropped(&self, switch: &str) -> Result<u64> {
        self.rule_packets(switch, MLD_TABLE, "igmp")
    }

    /// How many queries arriving on trunks of `switch` the lab has dropped (it keeps
    /// every bridge its own querier): IGMP queries if `igmp` (`family: ipv4` and
    /// `dual` labs), else MLD queries. Fails on a switch without trunks.
    pub fn queries_dropped(&self, switch: &str, igmp: bool) -> Result<u64> {
        let proto = if igmp { "igmp" } else { "icmpv6" };
        self.rule_packets(switch, crate::build::QUERY_TABLE, proto)
    }

    /// Packets counted by the rules mentioning `proto` in chain `pre` of bridge
    /// table `table` of `switch`.
    fn rule_packets(&self, switch: &str, table: &str, proto: &str) -> Result<u64> {
        let sw = self.try_switch(switch)?;
        let out = cmd::run_in(&sw.netns, &["nft", "list", "chain", "bridge", table, "pre"])?;
        let text = cmd::stdout(&out);
        let n = text
            .lines()
            .filter(|l| l.contains(proto))
            .filter_map(|l| {
                l.split_whitespace()
                    .skip_while(|w| *w != "packets")
                    .nth(1)
                    .and_then(|n| n.parse::<u64>().ok())
            })
            .sum();
        Ok(n)
    }
}

/// Install permanent entries on the bridge of switch namespace `ns`, each with
/// replace semantics (see [`crate::mdb_nl`]): an entry the bridge already learned
/// from an MLD report, or one that is already permanent, becomes the permanent
/// entry asked for, atomically, instead of failing.
fn mdb_add_all(sw: &crate::lab::SwitchInfo, entries: &[(String, Ipv6Addr)]) -> Result<()> {
    let mut resolved = Vec::with_capacity(entries.len());
    for (port, group) in entries {
        let ifindex = port_ifindex(sw, port)?;
        resolved.push((ifindex, *group));
    }
    crate::mdb_nl::replace_permanent(&sw.netns, sw.bridge_ifindex, &resolved)
}

/// Ifindex of a port of `sw` (from the lab's records, else asked from the kernel).
fn port_ifindex(sw: &crate::lab::SwitchInfo, port: &str) -> Result<u32> {
    if let Some(p) = sw.ports.iter().find(|p| p.name == port && p.ifindex > 0) {
        return Ok(p.ifindex);
    }
    let port = port.to_string();
    crate::netns::in_netns(&sw.netns, move || crate::netns::if_index(&port))?
}
