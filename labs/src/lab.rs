//! A built lab: what it contains, how to run things in it, and its teardown.

use std::collections::BTreeMap;
use std::net::{Ipv6Addr, SocketAddrV6, UdpSocket};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use socket2::{Domain, Protocol, Socket, Type};

use crate::capture::{Capture, Counts, UdpCounters};
use crate::cmd;
use crate::error::{LabError, Result};
use crate::netns;
use crate::process::{ChildGuard, PidList, kill_pid};
use crate::topology::{Backend, Topology};

/// Options for [`Lab::build`].
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// Close MLD on every switch right after building (see [`Lab::close_mld`]).
    /// Default false: hosts may join groups with MLD on their own switch.
    pub close_mld: bool,
    /// Install static MDB entries for every negotiating group of the topology
    /// (host ports of members and trunks toward members). Default false.
    pub static_negotiating_groups: bool,
    /// Wait for queriers and FDBs to settle before returning. Default true.
    pub wait_settled: bool,
    /// How long to wait for settling before failing. Default 60 s (a bound for a
    /// machine under heavy load; settling takes ~1-3 s).
    pub settle_timeout: Duration,
}

impl Default for LabOptions {
    fn default() -> Self {
        LabOptions {
            close_mld: false,
            static_negotiating_groups: false,
            wait_settled: true,
            settle_timeout: Duration::from_secs(60),
        }
    }
}

/// A host: its own namespace with one interface `eth0` plugged into a switch port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostInfo {
    /// Name in the topology (`X1`).
    pub name: String,
    /// 1-based index (natural name order); used in the address and MAC.
    pub index: u16,
    /// Network namespace name (use with `ip netns exec`, [`Lab::exec`], [`netns::in_netns`]).
    pub netns: String,
    /// Interface name inside the namespace: always `eth0`.
    pub ifname: String,
    /// Interface index of `eth0` inside the host namespace.
    pub ifindex: u32,
    /// ULA address `fd00:5c::INDEX/64` (hex index), added without DAD.
    pub ipv6: Ipv6Addr,
    /// Link-local address (EUI-64 of the MAC).
    pub link_local: Ipv6Addr,
    /// `10.92.HI.LO/15` (index) in `family: ipv4` and `dual` labs, else `None`.
    pub ipv4: Option<std::net::Ipv4Addr>,
    /// MAC `02:5c:00:00:HI:LO`.
    #[serde(serialize_with = "ser_mac")]
    pub mac: [u8; 6],
    /// The switch it is plugged into.
    pub switch: String,
    /// Name of the switch port (in the switch namespace) this host is plugged into.
    pub switch_port: String,
}

impl HostInfo {
    /// MAC as `02:5c:00:00:00:01`.
    pub fn mac_string(&self) -> String {
        mac_string(&self.mac)
    }

    /// The solicited-node multicast group of the host's ULA address.
    pub fn solicited_node(&self) -> Ipv6Addr {
        solicited_node(&self.ipv6)
    }
}

/// What a switch port leads to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PortPeer {
    /// A host's `eth0`.
    Host(String),
    /// A trunk to a neighbour switch.
    Switch(String),
}

/// One bridge port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortInfo {
    /// Interface name in the switch namespace: `h-HOST` or `t-SWITCH`.
    pub name: String,
    /// Its ifindex in the switch namespace.
    pub ifindex: u32,
    /// What is on the other end.
    pub toward: PortPeer,
    /// OpenFlow port number on an OVS switch; `None` on a Linux bridge.
    pub ofport: Option<u32>,
}

/// A switch: its own namespace holding a bridge `br0`: a Linux bridge, or for
/// `backend: openflow` an Open vSwitch bridge (see [`SwitchInfo::ovs`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SwitchInfo {
    /// Name in the topology (`A`).
    pub name: String,
    /// 1-based index in name order.
    pub index: u16,
    /// What backend the topology says this switch is for.
    pub backend: Backend,
    /// Network namespace name.
    pub netns: String,
    /// Bridge interface name: always `br0`.
    pub bridge: String,
    /// Ifindex of the bridge in the switch namespace.
    pub bridge_ifindex: u32,
    /// Link-local address of the bridge (the querier's source).
    pub bridge_link_local: Ipv6Addr,
    /// MAC of the bridge: `02:5c:01:00:HI:LO` (switch index).
    #[serde(serialize_with = "ser_mac")]
    pub bridge_mac: [u8; 6],
    /// Management address on the bridge, `fd00:5c::1:INDEX/64` (hex index): hosts and
    /// other switches reach a process in the switch namespace (an agent) here, in band.
    pub mgmt_ipv6: Ipv6Addr,
    /// Management address `10.93.HI.LO/15` (switch index) on the bridge in
    /// `family: ipv4` and `dual` labs, else `None`.
    pub mgmt_ipv4: Option<std::net::Ipv4Addr>,
    /// All ports, host ports first (natural host order), then trunks (link order).
    pub ports: Vec<PortInfo>,
    /// The private OVS instance, for `backend: openflow` switches only.
    pub ovs: Option<crate::ovs::OvsInfo>,
}

impl SwitchInfo {
    /// The port toward a host plugged into this switch.
    pub fn port_to_host(&self, host: &str) -> Option<&PortInfo> {
        self.ports
            .iter()
            .find(|p| matches!(&p.toward, PortPeer::Host(h) if h == host))
    }

    /// The trunk port toward a neighbour switch.
    pub fn port_to_switch(&self, switch: &str) -> Option<&PortInfo> {
        self.ports
            .iter()
            .find(|p| matches!(&p.toward, PortPeer::Switch(s) if s == switch))
    }
}

/// A running lab. Dropping it ends every process it started or that runs in one of its
/// namespaces, deletes every namespace it made (which removes its veths and bridges)
/// and its temporary directory. This also happens when a test panics.
#[derive(Debug)]
pub struct Lab {
    pub(crate) topo: Topology,
    pub(crate) prefix: String,
    pub(crate) hosts: BTreeMap<String, HostInfo>,
    pub(crate) switches: BTreeMap<String, SwitchInfo>,
    /// Namespaces created, in creation order.
    pub(crate) namespaces: Vec<String>,
    pub(crate) pids: PidList,
    pub(crate) workdir: PathBuf,
    pub(crate) capture_seq: std::sync::atomic::AtomicU64,
    /// Long-running daemons of the lab (OVS), ended at teardown.
    pub(crate) daemons: Vec<ChildGuard>,
    pub(crate) ovs_group_seq: std::sync::atomic::AtomicU32,
    /// Namespaces holding a loss table now (see `shaping`).
    pub(crate) loss_namespaces: Mutex<Vec<String>>,
    /// Loss per hop in force now, percent.
    pub(crate) loss_in_force: Mutex<BTreeMap<String, f64>>,
}

impl Lab {
    pub(crate) fn empty(topo: &Topology, prefix: String) -> Result<Lab> {
        let workdir = std::env::temp_dir().join(&prefix);
        std::fs::create_dir_all(&workdir)
            .map_err(|e| LabError::io(format!("creating {}", workdir.display()), e))?;
        crate::scratch::spread_subdirs(&workdir);
        Ok(Lab {
            topo: topo.clone(),
            prefix,
            hosts: BTreeMap::new(),
            switches: BTreeMap::new(),
            namespaces: Vec::new(),
            pids: Arc::new(Mutex::new(Vec::new())),
            workdir,
            capture_seq: Default::default(),
            daemons: Vec::new(),
            ovs_group_seq: std::sync::atomic::AtomicU32::new(0x5c00_0000),
            loss_namespaces: Mutex::new(Vec::new()),
            loss_in_force: Mutex::new(BTreeMap::new()),
        })
    }

    /// The topology this lab was built from.
    pub fn topology(&self) -> &Topology {
        &self.topo
    }

    /// Unique prefix of every namespace of this lab (`slab<pid>-<n>`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A scratch directory owned by the lab (deleted on drop).
    pub fn workdir(&self) -> &std::path::Path {
        &self.workdir
    }

    /// The whole lab as JSON: prefix, namespaces, hosts and switches with their
    /// ports (for logs, scripts and humans).
    pub fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "prefix": self.prefix,
            "namespaces": self.namespaces,
            "hosts": self.hosts,
            "switches": self.switches,
        })
    }

    /// Every namespace of this lab.
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }

    /// A host by name. Panics if unknown (tests); see [`Lab::try_host`].
    pub fn host(&self, name: &str) -> &HostInfo {
        self.try_host(name)
            .unwrap_or_else(|e| panic!("{e}; hosts are {:?}", self.hosts.keys()))
    }

    /// A host by name.
    pub fn try_host(&self, name: &str) -> Result<&HostInfo> {
        self.hosts.get(name).ok_or_else(|| LabError::Unknown {
            kind: "host",
            name: name.to_string(),
        })
    }

    /// All hosts by name.
    pub fn hosts(&self) -> &BTreeMap<String, HostInfo> {
        &self.hosts
    }

    /// A switch by name. Panics if unknown (tests); see [`Lab::try_switch`].
    pub fn switch(&self, name: &str) -> &SwitchInfo {
        self.try_switch(name)
            .unwrap_or_else(|e| panic!("{e}; switches are {:?}", self.switches.keys()))
    }

    /// A switch by name.
    pub fn try_switch(&self, name: &str) -> Result<&SwitchInfo> {
        self.switches.get(name).ok_or_else(|| LabError::Unknown {
            kind: "switch",
            name: name.to_string(),
        })
    }

    /// All switches by name.
    pub fn switches(&self) -> &BTreeMap<String, SwitchInfo> {
        &self.switches
    }

    /// Run a command to completion in namespace `netns`; fails if it exits non-zero.
    pub fn exec(&self, netns: &str, args: &[&str]) -> Result<Output> {
        cmd::run_in(netns, args)
    }

    /// Start a long-running command in namespace `netns` (`ip netns exec`, so the PID
    /// is the command's own). Stdout and stderr are inherited unless `configure`
    /// changes them. The process is ended by PID when the guard or the lab drops.
    pub fn spawn(&self, netns: &str, args: &[&str]) -> Result<ChildGuard> {
        self.spawn_with(netns, args, |_| {})
    }

    /// Like [`Lab::spawn`], with a hook to set up the `Command` (env, pipes...).
    pub fn spawn_with(
        &self,
        netns: &str,
        args: &[&str],
        configure: impl FnOnce(&mut Command),
    ) -> Result<ChildGuard> {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", netns]).args(args);
        c.stdin(Stdio::null());
        configure(&mut c);
        let line = format!("ip netns exec {netns} {}", args.join(" "));
        let child = c.spawn().map_err(|source| LabError::Spawn {
            cmd: line.clone(),
            source,
        })?;
        Ok(ChildGuard::new(child, self.pids.clone(), line))
    }

    /// Start a capture of IPv6 UDP datagrams arriving at (direction "in") host `host`'s
    /// `eth0`. `filter` is extra pcap-filter text ANDed to `ip6 and udp`, e.g.
    /// `"dst ff05::5c:1:1 and dst port 5000"`; empty for all UDP over IPv6.
    pub fn capture(&self, host: &str, filter: &str) -> Result<Capture> {
        let h = self.try_host(host)?;
        self.capture_on(&h.netns, &h.ifname, "in", filter)
    }

    /// Start a capture on any interface of any lab namespace (e.g. a switch port:
    /// direction "out" there is what the bridge sends toward that port).
    pub fn capture_on(
        &self,
        netns: &str,
        ifname: &str,
        direction: &str,
        filter: &str,
    ) -> Result<Capture> {
        self.capture_on_snap(netns, ifname, direction, filter, 256)
    }

    /// Like [`Lab::capture_on`], keeping `snaplen` bytes of every frame (enough to
    /// read payloads with [`Capture::stop_raw`]).
    pub fn capture_on_snap(
        &self,
        netns: &str,
        ifname: &str,
        direction: &str,
        filter: &str,
        snaplen: u32,
    ) -> Result<Capture> {
        let seq = self
            .capture_seq
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let file = self.workdir.join(format!("cap{seq}.pcap"));
        // A filter naming an IPv4 address captures IPv4/UDP, one naming an IPv6
        // address IPv6/UDP, others the lab's family (both in a `dual` lab).
        // (an address, or a prefix `a/len`)
        let tokens = || {
            filter
                .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
                .filter_map(|t| t.split('/').next())
        };
        let ip = if tokens().any(|t| t.parse::<std::net::Ipv4Addr>().is_ok()) {
            "ip"
        } else if tokens().any(|t| t.parse::<Ipv6Addr>().is_ok()) {
            "ip6"
        } else {
            match self.topo.family {
                crate::Family::Ipv6 => "ip6",
                crate::Family::Ipv4 => "ip",
                crate::Family::Dual => "(ip or ip6)",
            }
        };
        let mut full = if filter.trim().is_empty() {
            format!("{ip} and udp")
        } else {
            format!("{ip} and udp and ({filter})")
        };
        // On a host's own interface, the direction also goes into the kernel filter
        // (by source MAC: a host never receives its own frames back), so tcpdump's
        // "received by filter" counts only this direction and `stop` can tell when
        // every matching packet is written.
        if let Some(h) = self
            .hosts
            .values()
            .find(|h| h.netns == netns && h.ifname == ifname)
        {
            let mac = h.mac_string();
            match direction {
                "in" => full = format!("not ether src {mac} and {full}"),
                "out" => full = format!("ether src {mac} and {full}"),
                _ => {}
            }
        }
        Capture::start(
            netns,
            ifname,
            direction,
            &full,
            &file,
            self.pids.clone(),
            snaplen,
        )
    }

    /// Capture at every host listed, run `action`, and return the counts per host.
    pub fn count_at<T>(
        &self,
        hosts: &[&str],
        filter: &str,
        action: impl FnOnce() -> T,
    ) -> Result<(T, BTreeMap<String, Counts>)> {
        // Start and stop the captures in parallel: each costs tens of milliseconds.
        let started: Vec<(String, Result<Capture>)> = std::thread::scope(|sc| {
            let handles: Vec<_> = hosts
                .iter()
                .map(|h| (h.to_string(), sc.spawn(move || self.capture(h, filter))))
                .collect();
            handles
                .into_iter()
                .map(|(h, j)| (h, j.join().unwrap_or_else(|_| Err(panicked()))))
                .collect()
        });
        let mut caps = Vec::new();
        for (h, c) in started {
            caps.push((h, c?));
        }
        let out = action();
        let stopped: Vec<(String, Result<Counts>)> = std::thread::scope(|sc| {
            let handles: Vec<_> = caps
                .into_iter()
                .map(|(h, c)| (h, sc.spawn(move || c.stop())))
                .collect();
            handles
                .into_iter()
                .map(|(h, j)| (h, j.join().unwrap_or_else(|_| Err(panicked()))))
                .collect()
        });
        let mut counts = BTreeMap::new();
        for (h, c) in stopped {
            counts.insert(h, c?);
        }
        Ok((out, counts))
    }

    /// UDP counters (`/proc/net/snmp6`) of a host's namespace.
    pub fn udp_counters(&self, host: &str) -> Result<UdpCounters> {
        UdpCounters::read(&self.try_host(host)?.netns)
    }

    /// Send `count` datagrams of `payload_len` bytes from host `from` to
    /// `[group]:port` out of its `eth0` (hop limit 1, no loopback), back to back.
    /// Payload: an 8-byte big-endian sequence number, then filler. An
    /// IPv4-mapped group (`::ffff:239.92.128.1`) is sent over IPv4.
    pub fn send_multicast(
        &self,
        from: &str,
        group: Ipv6Addr,
        port: u16,
        count: u64,
        payload_len: usize,
    ) -> Result<()> {
        let h = self.try_host(from)?;
        send_from(&h.netns, &h.ifname, group, port, count, payload_len)
    }

    /// A UDP socket living in host `host`'s namespace, bound to `[::]:port`, that has
    /// joined `groups` on `eth0` (an MLD join: on a closed switch it still delivers
    /// locally, but the report is dropped). Usable from any thread. IPv4-mapped
    /// groups (`::ffff:239.92.128.1`; then all must be) make an IPv4 socket bound
    /// to `0.0.0.0:port` that joins them with IGMP on the host's IPv4 address.
    pub fn udp_socket(&self, host: &str, port: u16, groups: &[Ipv6Addr]) -> Result<UdpSocket> {
        let h = self.try_host(host)?;
        if groups.iter().any(|g| g.to_ipv4_mapped().is_some()) {
            let v4: Vec<std::net::Ipv4Addr> =
                groups.iter().filter_map(|g| g.to_ipv4_mapped()).collect();
            if v4.len() != groups.len() {
                return Err(LabError::Unsupported(format!(
                    "udp_socket on {host}: groups {groups:?} mix IPv4 and IPv6; open one \
                     socket per family"
                )));
            }
            let local = h.ipv4.ok_or_else(|| {
                LabError::Unsupported(format!(
                    "host {host} has no IPv4 address: IPv4 groups need `family: ipv4` or \
                     `family: dual` in the topology"
                ))
            })?;
            return crate::v4::join_v4(&h.netns, local, port, v4);
        }
        let groups = groups.to_vec();
        let ifindex = h.ifindex;
        netns::in_netns(&h.netns, move || -> std::io::Result<UdpSocket> {
            let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
            s.set_only_v6(true)?;
            s.set_reuse_address(true)?;
            s.bind(&SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0).into())?;
            for g in &groups {
                s.join_multicast_v6(g, ifindex)?;
            }
            Ok(s.into())
        })?
        .map_err(|e| LabError::io(format!("UDP socket in host {host}"), e))
    }
}

fn panicked() -> LabError {
    LabError::io("capture thread", std::io::Error::other("panicked"))
}

/// Send multicast datagrams out of `ifname` in namespace `netns`.
pub(crate) fn send_from(
    ns: &str,
    ifname: &str,
    group: Ipv6Addr,
    port: u16,
    count: u64,
    payload_len: usize,
) -> Result<()> {
    if let Some(v4) = group.to_ipv4_mapped() {
        return crate::v4::send_from_v4(ns, ifname, v4, port, count, payload_len);
    }
    let ifname = ifname.to_string();
    netns::in_netns(ns, move || -> Result<()> {
        let ifindex = netns::if_index(&ifname)?;
        let io = |e| LabError::io(format!("sending multicast on {ifname}"), e);
        let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)).map_err(io)?;
        s.set_multicast_if_v6(ifindex).map_err(io)?;
        s.set_multicast_hops_v6(1).map_err(io)?;
        s.set_multicast_loop_v6(false).map_err(io)?;
        let scope = if group.segments()[0] & 0x000f <= 2 {
            ifindex
        } else {
            0
        };
        let dst = SocketAddrV6::new(group, port, 0, scope).into();
        send_numbered(&s, &dst, count, payload_len).map_err(io)
    })?
}

/// Sends `count` datagrams of `payload_len` octets to `dst`, each starting
/// with its sequence number (big-endian, as much of it as fits).
pub(crate) fn send_numbered(
    s: &socket2::Socket,
    dst: &socket2::SockAddr,
    count: u64,
    payload_len: usize,
) -> std::io::Result<()> {
    let mut buf = vec![0x5cu8; payload_len];
    for seq in 0..count {
        let n = buf.len().min(8);
        buf[..n].copy_from_slice(&seq.to_be_bytes()[..n]);
        s.send_to(&buf, dst)?;
    }
    Ok(())
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.teardown();
    }
}

impl Lab {
    /// End processes and delete namespaces now (also done on drop). Idempotent.
    pub fn teardown(&mut self) {
        let mut victims: Vec<u32> = self.pids.lock().map(|v| v.clone()).unwrap_or_default();
        for ns in &self.namespaces {
            if let Ok(out) = cmd::run(&["ip", "netns", "pids", ns]) {
                victims.extend(
                    cmd::stdout(&out)
                        .split_whitespace()
                        .filter_map(|p| p.parse::<u32>().ok()),
                );
            }
        }
        for pid in victims {
            kill_pid(pid);
        }
        for ns in self.namespaces.drain(..).rev() {
            if let Err(e) = cmd::run(&["ip", "netns", "del", &ns]) {
                tracing::warn!(netns = %ns, error = %e, "could not delete lab namespace");
            }
        }
        let _ = std::fs::remove_dir_all(&self.workdir);
    }
}

fn ser_mac<S: serde::Serializer>(mac: &[u8; 6], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&mac_string(mac))
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn mac_string(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Solicited-node multicast group `ff02::1:ffXX:XXXX` of an address.
pub fn solicited_node(addr: &Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// EUI-64 link-local address of a MAC.
pub fn link_local_of(mac: &[u8; 6]) -> Ipv6Addr {
    let m = mac;
    Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        u16::from_be_bytes([m[0] ^ 0x02, m[1]]),
        u16::from_be_bytes([m[2], 0xff]),
        u16::from_be_bytes([0xfe, m[3]]),
        u16::from_be_bytes([m[4], m[5]]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_helpers() {
        let mac = [0x02, 0x5c, 0, 0, 0, 1];
        assert_eq!(mac_string(&mac), "02:5c:00:00:00:01");
        assert_eq!(
            link_local_of(&mac),
            "fe80::5c:ff:fe00:1".parse::<Ipv6Addr>().unwrap()
        );
        let a: Ipv6Addr = "fd00:5c::1:2345".parse().unwrap();
        assert_eq!(
            solicited_node(&a),
            "ff02::1:ff01:2345".parse::<Ipv6Addr>().unwrap()
        );
    }
}
