//! Spanning tree in labs whose topology sets `stp: true`: every Linux bridge runs
//! the kernel's STP with short timers, `build` waits until the port states have
//! converged, and [`Lab::active_topology`] is the tree the bridges elected, read
//! from the kernel's port states.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::build::BRIDGE;
use crate::cmd::run;
use crate::error::{LabError, Result};
use crate::lab::{Lab, PortPeer};
use crate::topology::Topology;

/// Forward delay of lab bridges, in centiseconds (4 s): a blocked port forwards
/// 2 x 4 s after it is chosen (listening, learning). The kernel's minimum is 2 s.
pub const FORWARD_DELAY_CS: u32 = 400;
/// Hello time, centiseconds (1 s, the kernel's minimum).
pub const HELLO_TIME_CS: u32 = 100;
/// Max age, centiseconds (6 s; 802.1D wants 2 x (forward_delay - 1 s) >= max_age
/// >= 2 x (hello + 1 s)).
pub const MAX_AGE_CS: u32 = 600;

/// A bridge port's spanning-tree state, as `bridge link` names it (`forwarding`,
/// `blocking`, `listening`, `learning`, `disabled`).
pub type PortState = String;

impl Lab {
    /// Turn on the kernel's spanning tree on every Linux bridge (`stp: true`).
    pub(crate) fn enable_stp(&self) -> Result<()> {
        let (fd, hello, age) = (
            FORWARD_DELAY_CS.to_string(),
            HELLO_TIME_CS.to_string(),
            MAX_AGE_CS.to_string(),
        );
        for sw in self.switches.values().filter(|s| s.ovs.is_none()) {
            run(&[
                "ip",
                "-n",
                &sw.netns,
                "link",
                "set",
                BRIDGE,
                "type",
                "bridge",
                "stp_state",
                "1",
                "forward_delay",
                &fd,
                "hello_time",
                &hello,
                "max_age",
                &age,
            ])?;
        }
        Ok(())
    }

    /// Every bridge port's state, per switch, by port name (from `bridge -j link`).
    /// Empty for OVS switches.
    pub fn port_states(&self) -> Result<BTreeMap<String, BTreeMap<String, PortState>>> {
        let mut out = BTreeMap::new();
        for sw in self.switches.values().filter(|s| s.ovs.is_none()) {
            let o = run(&["bridge", "-n", &sw.netns, "-j", "link", "show"])?;
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).map_err(|e| {
                LabError::Parse(format!("`bridge -j link show` in {}: {e}", sw.netns))
            })?;
            let ports: BTreeMap<String, PortState> = v
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["master"].as_str() == Some(BRIDGE))
                .filter_map(|p| {
                    Some((
                        p["ifname"].as_str()?.to_string(),
                        p["state"].as_str().unwrap_or("unknown").to_string(),
                    ))
                })
                .collect();
            out.insert(sw.name.clone(), ports);
        }
        Ok(out)
    }

    /// Trunks that do not forward (blocked by the spanning tree, down, or not yet
    /// forwarding at either end), as `(switch, neighbour)` pairs in link order.
    pub fn blocked_trunks(&self) -> Result<BTreeSet<(String, String)>> {
        let states = self.port_states()?;
        let forwarding = |sw: &str, port: &str| {
            states
                .get(sw)
                .and_then(|p| p.get(port))
                .is_some_and(|s| s == "forwarding")
        };
        let mut out = BTreeSet::new();
        for l in &self.topo.links {
            let (a, b) = l.ends();
            let (pa, pb) = (format!("t-{b}"), format!("t-{a}"));
            let ovs = |s: &str| self.switches.get(s).is_some_and(|s| s.ovs.is_some());
            if (!ovs(a) && !forwarding(a, &pa)) || (!ovs(b) && !forwarding(b, &pb)) {
                out.insert((a.to_string(), b.to_string()));
            }
        }
        Ok(out)
    }

    /// The topology the bridges forward on: without `stp`, the topology itself;
    /// with it, the trunks that forward at both ends (see [`Lab::blocked_trunks`]).
    /// Expected ports, static groups and paths are computed on this tree.
    pub fn active_topology(&self) -> Result<Topology> {
        if !self.topo.stp {
            return Ok(self.topo.clone());
        }
        Ok(self.topo.active_tree(&self.blocked_trunks()?))
    }

    /// Wait (polling the port states, at most `timeout`) until the spanning tree
    /// has converged: no port listening or learning, every host port forwarding,
    /// and the forwarding trunks form one tree over all switches. Returns how long
    /// it took and the tree. A no-op without `stp`.
    pub fn wait_stp_converged(&self, timeout: Duration) -> Result<(Duration, Topology)> {
        let t0 = Instant::now();
        if !self.topo.stp {
            return Ok((Duration::ZERO, self.topo.clone()));
        }
        loop {
            let states = self.port_states()?;
            let settled = states.iter().all(|(sw, ports)| {
                let host_ports_fwd = self.switches[sw]
                    .ports
                    .iter()
                    .filter(|p| matches!(p.toward, PortPeer::Host(_)))
                    .all(|p| ports.get(&p.name).is_some_and(|s| s == "forwarding"));
                host_ports_fwd
                    && ports
                        .values()
                        .all(|s| matches!(s.as_str(), "forwarding" | "blocking" | "disabled"))
            });
            if settled {
                let tree = self.topo.active_tree(&self.blocked_trunks()?);
                if tree.is_tree() {
                    tracing::debug!(elapsed = ?t0.elapsed(), blocked = ?self.blocked_trunks()?, "spanning tree converged");
                    return Ok((t0.elapsed(), tree));
                }
            }
            if t0.elapsed() > timeout {
                return Err(LabError::Timeout(format!(
                    "spanning tree did not converge within {timeout:?}: port states {states:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait until no bridge is in a topology-change period (`topology_change` and
    /// `topology_change_detected` both 0). During one, the kernel ages FDB entries
    /// after `forward_delay` instead of the lab's 30000 s, so hosts that stay
    /// silent drop out of the FDB. A no-op without `stp`.
    pub fn wait_topology_change_over(&self, timeout: Duration) -> Result<Duration> {
        let t0 = Instant::now();
        if !self.topo.stp {
            return Ok(Duration::ZERO);
        }
        loop {
            let mut busy = Vec::new();
            for sw in self.switches.values().filter(|s| s.ovs.is_none()) {
                let o = run(&["ip", "-n", &sw.netns, "-d", "-j", "link", "show", BRIDGE])?;
                let v: serde_json::Value = serde_json::from_slice(&o.stdout).map_err(|e| {
                    LabError::Parse(format!("`ip -d -j link show` in {}: {e}", sw.netns))
                })?;
                let d = &v[0]["linkinfo"]["info_data"];
                if d["topology_change"].as_u64() != Some(0)
                    || d["topology_change_detected"].as_u64() != Some(0)
                {
                    busy.push(sw.name.clone());
                }
            }
            if busy.is_empty() {
                return Ok(t0.elapsed());
            }
            if t0.elapsed() > timeout {
                return Err(LabError::Timeout(format!(
                    "bridges {busy:?} still in a spanning-tree topology change after {timeout:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Take the trunk between switches `a` and `b` down (`up: false`) or up again:
    /// both veth ends, so both bridges see the carrier go.
    pub fn set_trunk(&self, a: &str, b: &str, up: bool) -> Result<()> {
        let state = if up { "up" } else { "down" };
        for (s, peer) in [(a, b), (b, a)] {
            let sw = self.try_switch(s)?;
            let port = sw
                .port_to_switch(peer)
                .ok_or_else(|| LabError::Parse(format!("no trunk {s} -> {peer}")))?;
            run(&["ip", "-n", &sw.netns, "link", "set", &port.name, state])?;
        }
        Ok(())
    }

    /// Make every switch learn every host MAC again (each host announces itself to
    /// ff02::1 until every FDB has it), e.g. after a spanning-tree change flushed
    /// the FDBs. At most `timeout`.
    pub fn relearn(&self, timeout: Duration) -> Result<()> {
        self.wait_fdb(Instant::now() + timeout)
    }
}
