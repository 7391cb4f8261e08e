//! Network-namespace labs: topology builder, packet counting from outside, demo and
//! benchmarks.
//!
//! # API overview (stable)
//!
//! ```no_run
//! use labs::{Lab, LabOptions, Topology};
//! # fn main() -> Result<(), labs::LabError> {
//! if !labs::lab_tests_enabled() { return Ok(()); }          // not root: skip
//! let topo = Topology::from_yaml_file(labs::topology_path("seed-three-switch.yaml"))?;
//! let lab = Lab::build(&topo, LabOptions::default())?;      // ~3-5 s, settled
//! let x1 = lab.host("X1");      // HostInfo { netns, ifname: "eth0", ifindex, ipv6, mac, switch, switch_port, .. }
//! let a = lab.switch("A");      // SwitchInfo { netns, bridge: "br0", bridge_ifindex, bridge_mac, mgmt_ipv6, ports, .. }
//! let p = a.port_to_host("X1").unwrap();   // PortInfo { name: "h-X1", ifindex, toward: PortPeer::Host("X1") }
//! let t = a.port_to_switch("B").unwrap();  // PortInfo { name: "t-B", .. }
//! let group: std::net::Ipv6Addr = "ff05::5c:2:1".parse().unwrap();
//! lab.static_group(group, &["X1", "X4", "X8"])?;           // bridge mdb add ... permanent
//! let cap = lab.capture("X1", &format!("dst {group}"))?;   // tcpdump -Q in on eth0, started
//! lab.send_multicast("X2", group, 5000, 100, 64)?;          // from X2's eth0, hops 1
//! assert_eq!(cap.stop()?.datagrams, 100);                   // Counts { datagrams, bytes, .. }
//! let out = lab.exec(&x1.netns, &["ip", "-6", "addr"])?;    // ip netns exec
//! let child = lab.spawn(&a.netns, &["sleep", "60"])?;       // ChildGuard: killed by PID on drop
//! # drop((p, t, out, child)); Ok(()) }
//! // drop(lab): kills its processes, deletes all its namespaces (also on panic)
//! ```
//!
//! * Topology files: [`Topology::from_yaml_file`]; shipped ones in `labs/topologies/`
//!   ([`topology_path`]): `seed-three-switch.yaml` (A: X1 X2; B: X3-X6; C: X7-X9;
//!   trunks A-B, B-C), `one-switch.yaml` (S: H1-H4), and the seed in IPv4 and
//!   dual-stack (`seed-three-switch-ipv4.yaml`, `seed-three-switch-dual.yaml`).
//! * IPv4 (`family: ipv4` or `dual`): hosts also get `10.92.HI.LO/15`
//!   ([`HostInfo::ipv4`], [`host_ipv4`]), bridges `10.93.HI.LO/15`
//!   ([`SwitchInfo::mgmt_ipv4`]), IGMP snooping with each bridge its own querier
//!   (queries dropped on trunks: [`Lab::queries_dropped`]), closed switches drop
//!   IGMP reports too ([`Lab::igmp_dropped`]). IPv4 groups are written IPv4-mapped everywhere in
//!   this API (`::ffff:239.92.128.1`, the protocol's group form; [`ip_group`] /
//!   [`group_ip`] convert).
//! * Names: namespaces `slab<pid>-<n>-s<SWITCH>` / `slab<pid>-<n>-h<HOST>`; in a switch
//!   namespace the bridge is `br0`, ports are `h-<HOST>` and `t-<NEIGHBOUR>`; in a host
//!   namespace the interface is `eth0`. Host N (natural order) has `fd00:5c::N/64`
//!   (hex N) and MAC `02:5c:00:00:00:N`; every host has permanent neighbour entries for
//!   all others, so unicast needs no neighbour discovery. Switch N's bridge has the
//!   management address `fd00:5c::1:N/64` (reachable in band from hosts and other
//!   switches, e.g. for an agent running in the switch namespace) and MAC
//!   `02:5c:01:00:00:N`; it runs no spanning tree, so trunks must form a tree, unless
//!   the topology sets `stp: true`: then every bridge runs the kernel's STP
//!   (forward_delay 4 s), `build` waits until the port states converged, and
//!   [`Lab::active_topology`] (the tree the bridges elected, from the kernel's port
//!   states), [`Lab::port_states`], [`Lab::wait_stp_converged`], [`Lab::set_trunk`]
//!   and [`Lab::relearn`] follow it.
//! * Bridges: snooping on, own querier settled before `build` returns (an unregistered
//!   group no longer floods), trunk ports `mcast_router 0`, `mcast_hash_max 65536`,
//!   FDB learned with every host MAC (ageing 30000 s).
//! * Counting from outside: [`Lab::capture`] / [`Lab::capture_on`] (tcpdump, parsed
//!   here), [`Lab::count_at`] (capture at many hosts around an action),
//!   [`Lab::udp_counters`] (`/proc/net/snmp6` of a host namespace).
//! * Sockets in a namespace: [`Lab::udp_socket`] (bound, joined), [`netns::in_netns`]
//!   (run a closure on a thread inside a namespace); binary `subcast-lab-udp`
//!   (`send` / `recv`) for use with `ip netns exec`.
//! * MDB: [`Lab::static_group`], [`Lab::static_group_ports`], [`Lab::mdb_add`],
//!   [`Lab::mdb_del`], [`Lab::mdb_show`]; closed groups: [`Lab::close_mld`],
//!   [`Lab::mld_dropped`]; or `LabOptions { close_mld: true, .. }`.
//! * Settling: [`Lab::settle`] (done by `build` unless `wait_settled: false`); the
//!   querier settles ~1 s after the bridge is made (`mcast_query_response_interval 100`).
//! * Open vSwitch: a switch with `backend: openflow` is an OVS bridge `br0`
//!   (userspace datapath, OpenFlow 1.3, `fail_mode=secure`, one `priority=0
//!   actions=NORMAL` flow) run by a private ovsdb-server + ovs-vswitchd inside its
//!   namespace: [`SwitchInfo::ovs`] ([`OvsInfo`]: db, ofctl target, unixctl),
//!   [`PortInfo::ofport`], [`Lab::ovs_set_controller`], [`Lab::ovs_vsctl`],
//!   [`Lab::ovs_ofctl`]; [`Lab::static_group`] installs an OpenFlow group + flow
//!   there. `seed-mixed.yaml` has B as OVS. `backend: snmp` builds a Linux bridge (`subcast-lab`
//!   puts snmpd with the Q-BRIDGE-MIB handler in front of it: `subcast_snmp::testlab`).
//! * Cleanup: `Drop` (and [`Lab::teardown`]); [`cleanup_stale`] only for this
//!   process's own prefix ([`process_prefix`]).
//! * Loss and rate: `loss_pct` / `rate_mbit` in the topology (top level, per link,
//!   per host) are applied by `build`: nftables rules per direction of each link
//!   ([`Lab::hops`], counters in [`Lab::loss_drops`], changed on the fly with
//!   [`Lab::set_loss`]) and `tbf` on both ends of each veth ([`tbf_params`]).
//! * Never flaky: static MDB entries are written with replace semantics (an entry
//!   the bridge learned from MLD is taken over, not an error); [`stress::cycle`]
//!   builds, tears down and checks for leftovers ([`stress::leftovers`]);
//!   [`generate::random_topology`] makes seeded random trees (2-6 switches, 1-4
//!   hosts each, Linux bridges and OVS mixed) and [`generate::to_yaml`] writes them.

mod build;
pub mod capture;
pub mod cmd;
mod error;
mod floor;
pub mod generate;
pub mod gluster;
mod lab;
mod mdb;
mod mdb_nl;
pub mod miss_floor;
pub mod netns;
mod ovs;
mod process;
pub mod scratch;
mod shaping;
mod stp;
pub mod stress;
pub mod topology;
mod v4;

pub use build::{BRIDGE, HOST_IF, PROBE_GROUP, cleanup_stale, process_prefix};
pub use capture::{Capture, Counts, UdpCounters};
pub use error::{LabError, Result};
pub use floor::{FLOOR_GROUP, FLOOR_PORT, Floor, FloorOptions, Millis, measure as measure_floor};
pub use lab::{
    HostInfo, Lab, LabOptions, PortInfo, PortPeer, SwitchInfo, link_local_of, mac_string,
    solicited_node,
};
pub use mdb::{MLD_TABLE, MdbEntry};
pub use ovs::OvsInfo;
pub use process::ChildGuard;
pub use shaping::{Drops, Hop, HopDrops, LAB_PROBE_PORT, LOSS_TABLE, Place, tbf_params};
pub use stp::{FORWARD_DELAY_CS, HELLO_TIME_CS, MAX_AGE_CS, PortState};
pub use topology::{
    Backend, Family, GroupSpec, HostSpec, LinkSpec, RENDEZVOUS_POOL, RENDEZVOUS_POOL_V4, Shaping,
    SnmpSpec, SnmpVersion, SwitchSpec, Topology, TopologyError, in_rendezvous_pool,
};
pub use v4::{group_ip, host_ipv4, ip_group, switch_ipv4};

/// Environment variable that turns a skipped lab test into a failure (set it in CI).
pub const REQUIRE_ENV: &str = "SUBCAST_LABS_REQUIRED";

fn required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Whether lab tests can run here (we are root and `ip` exists). When false, a test
/// should print a skip line and return; CI runs as root, so there they really run.
/// If [`REQUIRE_ENV`] is set to a non-empty value other than `0` and labs cannot run,
/// this panics instead, so CI cannot silently skip them.
pub fn lab_tests_enabled() -> bool {
    let root = nix::unistd::geteuid().is_root();
    let ip = std::path::Path::new("/usr/sbin/ip").exists()
        || std::path::Path::new("/sbin/ip").exists()
        || std::path::Path::new("/usr/bin/ip").exists();
    let ok = root && ip;
    assert!(
        ok || !required(),
        "{REQUIRE_ENV} is set but lab tests cannot run here (root: {root}, iproute2: {ip})"
    );
    ok
}

/// Whether Open vSwitch (ovsdb-server, ovs-vswitchd, ovs-vsctl, ovs-ofctl) is
/// installed, needed for `backend: openflow` switches. Panics instead of returning
/// false when [`REQUIRE_ENV`] is set.
pub fn ovs_available() -> bool {
    let ok = [
        "ovsdb-server",
        "ovs-vswitchd",
        "ovs-vsctl",
        "ovs-ofctl",
        "ovsdb-tool",
    ]
    .iter()
    .all(|b| {
        ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
            .iter()
            .any(|d| std::path::Path::new(d).join(b).exists())
    });
    assert!(
        ok || !required(),
        "{REQUIRE_ENV} is set but Open vSwitch is missing (apt-get install openvswitch-switch)"
    );
    ok
}

/// Path of a topology file shipped in `labs/topologies/`.
pub fn topology_path(file: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("topologies")
        .join(file)
}
