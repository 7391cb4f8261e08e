//! Loss and rate on the lab's links (`loss_pct`, `rate_mbit` in the topology).
//!
//! Every link carries traffic in two directions, called *hops* here: a host link
//! `X1 <-> A` has hops `X1>A` and `A>X1`, a trunk `A <-> B` has `A>B` and `B>A`.
//!
//! **Loss** (nftables, family `netdev`, table `subcast_lab_loss`): on each hop with
//! `loss_pct: P > 0` one rule `udp dport != 9 numgen random mod 10000 < P*100
//! counter drop` drops that share of the hop's IPv6/IPv4 UDP datagrams (granularity
//! 0.01 %), counted by the rule's counter (on egress hooks the frame is not dropped
//! but stolen: forwarded into a blackhole veth `sl-bh` whose peer is down, so the
//! sender sees a successful send, as on a lossy wire; a drop there would be an error
//! that an AF_PACKET sender like OVS answers by sending the frame again). Everything else passes: ICMPv6 (MLD,
//! neighbour discovery, ping) and TCP are never dropped, nor UDP to port 9, which
//! the lab itself uses to announce hosts and probe queriers while it is built; so
//! a lossy lab builds exactly like a lossless one. The rule sits on the receiving
//! switch port's ingress hook when the receiver is a Linux bridge (`X1>A`, `B>A`
//! with A a Linux bridge); toward a host it sits on the switch port's egress hook
//! (`A>X1`), so a capture on the host's `eth0` sees only what arrived; and toward
//! an Open vSwitch port it sits on the sender's egress hook (`X1>A`, `B>A` with A
//! an OVS switch), because OVS's userspace datapath reads frames with a packet
//! socket, before any ingress hook. In that last case the sender is a host for
//! `X1>A`: its own `eth0` capture then misses the dropped datagrams (they are in
//! the counters). A UDP GSO batch (one frame carrying several datagrams) is one
//! frame to the rule.
//!
//! **Rate** (tc): a `tbf` root qdisc on both ends of the link's veth (host `eth0`
//! and switch port `h-X1`; trunk ends `t-B` and `t-A`): `rate` as configured,
//! `burst` 10 ms at that rate (at least 16 KiB: a burst must hold a few frames, and
//! tbf splits GSO frames larger than it), `limit` 50 ms at that rate (at least
//! 256 KiB, more than a socket's default send buffer, so a UDP sender blocks on its
//! socket instead of losing datagrams in the qdisc).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::build::HOST_IF;
use crate::cmd;
use crate::error::{LabError, Result};
use crate::lab::Lab;
use crate::topology::Shaping;

/// nftables table (family netdev) holding the loss rules of one namespace.
pub const LOSS_TABLE: &str = "subcast_lab_loss";
/// UDP port the lab's own announcements and probes use: never dropped.
pub const LAB_PROBE_PORT: u16 = 9;

/// Where a hop's drop rule sits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Place {
    /// Namespace.
    pub netns: String,
    /// Device.
    pub device: String,
    /// `ingress` or `egress`.
    pub hook: &'static str,
}

/// One direction of one link.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hop {
    /// `FROM>TO` (host or switch names).
    pub name: String,
    /// The link it belongs to: a host name, or `A-B` for a trunk (name order).
    pub link: String,
    /// Loss and rate from the topology.
    pub shaping: Shaping,
    /// Where its drop rule goes.
    pub place: Place,
}

/// Datagrams dropped, from the rules' counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Drops {
    /// Per hop (`X1>A`): the loss percentage in force and datagrams dropped.
    pub hops: BTreeMap<String, HopDrops>,
    /// Per host link (both directions together).
    pub hosts: BTreeMap<String, u64>,
    /// Per trunk `A-B` (both directions together).
    pub links: BTreeMap<String, u64>,
    /// Everything.
    pub total: u64,
}

/// One hop's counter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct HopDrops {
    /// Loss in force, percent.
    pub loss_pct: f64,
    /// Datagrams (frames) dropped.
    pub dropped: u64,
}

fn trunk_name(a: &str, b: &str) -> String {
    if a < b {
        format!("{a}-{b}")
    } else {
        format!("{b}-{a}")
    }
}

impl Lab {
    /// Every hop of the lab with its shaping from the topology and the place of its
    /// drop rule.
    pub fn hops(&self) -> Vec<Hop> {
        let mut out = Vec::new();
        for h in self.hosts.values() {
            let sw = &self.switches[&h.switch];
            let s = self.topo.host_shaping(&h.name);
            let up = if sw.ovs.is_some() {
                (h.netns.clone(), HOST_IF.to_string(), "egress")
            } else {
                (sw.netns.clone(), h.switch_port.clone(), "ingress")
            };
            let down = (sw.netns.clone(), h.switch_port.clone(), "egress");
            for (name, (netns, device, hook)) in [
                (format!("{}>{}", h.name, sw.name), up),
                (format!("{}>{}", sw.name, h.name), down),
            ] {
                out.push(Hop {
                    name,
                    link: h.name.clone(),
                    shaping: s,
                    place: Place {
                        netns,
                        device,
                        hook,
                    },
                });
            }
        }
        for l in &self.topo.links {
            let (a, b) = l.ends();
            let s = self.topo.link_shaping(a, b);
            for (from, to) in [(a, b), (b, a)] {
                let (f, t) = (&self.switches[from], &self.switches[to]);
                let place = if t.ovs.is_none() {
                    Place {
                        netns: t.netns.clone(),
                        device: format!("t-{from}"),
                        hook: "ingress",
                    }
                } else {
                    Place {
                        netns: f.netns.clone(),
                        device: format!("t-{to}"),
                        hook: "egress",
                    }
                };
                out.push(Hop {
                    name: format!("{from}>{to}"),
                    link: trunk_name(from, to),
                    shaping: s,
                    place,
                });
            }
        }
        out
    }

    /// Install the topology's loss rules and rate limits (done by `build`).
    pub(crate) fn apply_shaping(&self) -> Result<()> {
        self.apply_rates()?;
        let pct: BTreeMap<String, f64> = self
            .hops()
            .into_iter()
            .map(|h| (h.name, h.shaping.loss_pct))
            .collect();
        self.install_loss(&pct)
    }

    /// Set the loss of every hop to `pct` percent (`None`: back to the topology's
    /// values). Replaces the rules atomically per namespace; counters restart at 0.
    pub fn set_loss(&self, pct: Option<f64>) -> Result<()> {
        if let Some(p) = pct
            && (!p.is_finite() || !(0.0..=100.0).contains(&p))
        {
            return Err(LabError::Unsupported(format!(
                "loss {p}%: give a percentage from 0 to 100"
            )));
        }
        let map: BTreeMap<String, f64> = self
            .hops()
            .into_iter()
            .map(|h| (h.name, pct.unwrap_or(h.shaping.loss_pct)))
            .collect();
        self.install_loss(&map)
    }

    /// Set the loss of every hop that ends at a host (switch -> host: the
    /// hosts' input, as `nftables ... numgen random mod 100 0 drop` on each
    /// host would) to `pct` percent, and every other hop's to 0.
    pub fn set_host_input_loss(&self, pct: f64) -> Result<()> {
        if !pct.is_finite() || !(0.0..=100.0).contains(&pct) {
            return Err(LabError::Unsupported(format!(
                "loss {pct}%: give a percentage from 0 to 100"
            )));
        }
        let hosts: Vec<String> = self.hosts().keys().cloned().collect();
        let map: BTreeMap<String, f64> = self
            .hops()
            .into_iter()
            .map(|h| {
                let to_host = h
                    .name
                    .split_once('>')
                    .is_some_and(|(_, to)| hosts.iter().any(|x| x == to));
                (h.name, if to_host { pct } else { 0.0 })
            })
            .collect();
        self.install_loss(&map)
    }

    fn install_loss(&self, pct: &BTreeMap<String, f64>) -> Result<()> {
        let mut per_ns: BTreeMap<String, Vec<(Hop, f64)>> = BTreeMap::new();
        for h in self.hops() {
            let p = pct.get(&h.name).copied().unwrap_or(0.0);
            per_ns
                .entry(h.place.netns.clone())
                .or_default()
                .push((h, p));
        }
        let had = self
            .loss_namespaces
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default();
        let mut now = Vec::new();
        for ns in self.namespaces.iter() {
            let hops: Vec<&(Hop, f64)> = per_ns
                .get(ns)
                .map(|v| v.iter().filter(|(_, p)| *p > 0.0).collect())
                .unwrap_or_default();
            if hops.is_empty() && !had.contains(ns) {
                continue;
            }
            let mut rules = format!(
                "table netdev {LOSS_TABLE}\ndelete table netdev {LOSS_TABLE}\n\
                 table netdev {LOSS_TABLE} {{\n"
            );
            if hops.iter().any(|(h, _)| h.place.hook == "egress") {
                ensure_blackhole(ns)?;
            }
            for (h, p) in &hops {
                let threshold = (p * 100.0).round() as u32;
                // On egress, a dropped frame would be an error for the sender (an
                // AF_PACKET sender such as OVS then sends it again): steal it into
                // the blackhole instead, which looks like a frame lost on the wire.
                let verdict = if h.place.hook == "ingress" {
                    "drop".to_string()
                } else {
                    format!("fwd to \"{BLACKHOLE}\"")
                };
                let chain = format!(
                    "{}_{}",
                    if h.place.hook == "ingress" {
                        "in"
                    } else {
                        "out"
                    },
                    h.place.device
                );
                rules += &format!(
                    "  chain {chain} {{\n    type filter hook {} device \"{}\" priority -300; \
                     policy accept;\n    udp dport != {LAB_PROBE_PORT} numgen random mod 10000 < \
                     {threshold} counter {verdict} comment \"{}\"\n  }}\n",
                    h.place.hook, h.place.device, h.name
                );
            }
            rules += "}\n";
            if hops.is_empty() {
                rules = format!("table netdev {LOSS_TABLE}\ndelete table netdev {LOSS_TABLE}\n");
            } else {
                now.push(ns.clone());
            }
            cmd::run_stdin(&["ip", "netns", "exec", ns, "nft", "-f", "-"], Some(&rules))?;
        }
        if let Ok(mut v) = self.loss_namespaces.lock() {
            *v = now;
        }
        if let Ok(mut m) = self.loss_in_force.lock() {
            *m = pct.clone();
        }
        Ok(())
    }

    /// Datagrams dropped so far by the loss rules (all zero without loss).
    pub fn loss_drops(&self) -> Result<Drops> {
        let nss = self
            .loss_namespaces
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default();
        let mut counted: BTreeMap<String, u64> = BTreeMap::new();
        for ns in nss {
            let out = cmd::run_in(&ns, &["nft", "-j", "list", "table", "netdev", LOSS_TABLE])?;
            let v: serde_json::Value = serde_json::from_slice(&out.stdout)
                .map_err(|e| LabError::Parse(format!("`nft -j list table` in {ns}: {e}")))?;
            for item in v["nftables"].as_array().into_iter().flatten() {
                let r = &item["rule"];
                let Some(name) = r["comment"].as_str() else {
                    continue;
                };
                let n = r["expr"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find_map(|e| e["counter"]["packets"].as_u64())
                    .unwrap_or(0);
                *counted.entry(name.to_string()).or_default() += n;
            }
        }
        let pct = self
            .loss_in_force
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default();
        let mut d = Drops::default();
        for h in self.hops() {
            let n = counted.get(&h.name).copied().unwrap_or(0);
            d.hops.insert(
                h.name.clone(),
                HopDrops {
                    loss_pct: pct.get(&h.name).copied().unwrap_or(0.0),
                    dropped: n,
                },
            );
            let bucket = if self.hosts.contains_key(&h.link) {
                &mut d.hosts
            } else {
                &mut d.links
            };
            *bucket.entry(h.link.clone()).or_default() += n;
            d.total += n;
        }
        Ok(d)
    }

    fn apply_rates(&self) -> Result<()> {
        for h in self.hosts.values() {
            if let Some(r) = self.topo.host_shaping(&h.name).rate_mbit {
                let sw = &self.switches[&h.switch];
                tbf(&h.netns, HOST_IF, r)?;
                tbf(&sw.netns, &h.switch_port, r)?;
            }
        }
        for l in &self.topo.links {
            let (a, b) = l.ends();
            if let Some(r) = self.topo.link_shaping(a, b).rate_mbit {
                tbf(&self.switches[a].netns, &format!("t-{b}"), r)?;
                tbf(&self.switches[b].netns, &format!("t-{a}"), r)?;
            }
        }
        Ok(())
    }
}

/// Interface that swallows frames the loss rules take on egress hooks: one end of a
/// veth pair whose other end stays down.
pub const BLACKHOLE: &str = "sl-bh";

fn ensure_blackhole(ns: &str) -> Result<()> {
    if cmd::run(&["ip", "-n", ns, "link", "show", BLACKHOLE]).is_ok() {
        return Ok(());
    }
    let peer = format!("{BLACKHOLE}-p");
    cmd::run(&[
        "ip", "-n", ns, "link", "add", BLACKHOLE, "type", "veth", "peer", "name", &peer,
    ])?;
    cmd::run(&["ip", "-n", ns, "link", "set", BLACKHOLE, "up"])?;
    Ok(())
}

/// `tbf` parameters for `rate_mbit`: (rate bit/s, burst bytes, limit bytes).
pub fn tbf_params(rate_mbit: f64) -> (u64, u64, u64) {
    let bits = (rate_mbit * 1e6).round() as u64;
    let bytes_per_s = bits / 8;
    let burst = (bytes_per_s / 100).max(16 * 1024);
    let limit = (bytes_per_s / 20).max(256 * 1024);
    (bits, burst, limit)
}

fn tbf(ns: &str, dev: &str, rate_mbit: f64) -> Result<()> {
    let (bits, burst, limit) = tbf_params(rate_mbit);
    cmd::run(&[
        "tc",
        "-n",
        ns,
        "qdisc",
        "replace",
        "dev",
        dev,
        "root",
        "tbf",
        "rate",
        &format!("{bits}bit"),
        "burst",
        &burst.to_string(),
        "limit",
        &limit.to_string(),
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tbf_parameters() {
        assert_eq!(tbf_params(100.0), (100_000_000, 125_000, 625_000));
        assert_eq!(tbf_params(1.0), (1_000_000, 16 * 1024, 256 * 1024));
        assert_eq!(trunk_name("B", "A"), "A-B");
    }
}
