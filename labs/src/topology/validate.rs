//! Checking a topology: one function per section, each error saying where it is
//! (for the line and column) and what to do.

use std::collections::BTreeSet;

use super::locate::Where;
use super::{Family, MAX_NAME_LEN, MAX_RATE_MBIT, MTU_RANGE, Topology};

type Check = Result<(), (Where, String)>;

fn bad(w: Where, m: String) -> Check {
    Err((w, m))
}

impl Topology {
    /// All checks, in file order.
    pub(crate) fn check(&self) -> Check {
        self.check_shaping_values()?;
        self.check_switches()?;
        self.check_hosts()?;
        self.check_links()?;
        self.check_tree()?;
        self.check_groups()?;
        self.check_nic_offload()
    }

    /// `nic_offload` only where batches crossing whole change no rule of the lab.
    fn check_nic_offload(&self) -> Check {
        if !self.nic_offload {
            return Ok(());
        }
        if self.is_lossy() {
            return bad(
                Where::Top("nic_offload"),
                "nic_offload: true cannot be combined with loss_pct: the loss rules drop \
                 datagrams one frame at a time, and with offload a whole batch of up to 64 KiB \
                 crosses the lab as one packet; remove loss_pct or nic_offload"
                    .into(),
            );
        }
        if let Some((name, _)) = self
            .switches
            .iter()
            .find(|(_, s)| s.backend == super::Backend::Openflow)
        {
            return bad(
                Where::Top("nic_offload"),
                format!(
                    "nic_offload: true cannot be used with Open vSwitch switches (switch `{name}`): \
                     hosts of such labs compute checksums in software, which turns UDP \
                     segmentation offload off; use linux-bridge or snmp switches, or remove nic_offload"
                ),
            );
        }
        Ok(())
    }

    fn check_shaping_values(&self) -> Check {
        check_loss(self.loss_pct, Where::Top("loss_pct"), "loss_pct")?;
        check_rate(self.rate_mbit, Where::Top("rate_mbit"), "rate_mbit")?;
        if let Some(m) = self.mtu.filter(|m| !MTU_RANGE.contains(m)) {
            return bad(
                Where::Top("mtu"),
                format!(
                    "mtu: {m} is outside {}-{} (1500 is Ethernet's, 9000 the usual jumbo frame); \
                     leave it out for 1500",
                    MTU_RANGE.start(),
                    MTU_RANGE.end()
                ),
            );
        }
        for (i, l) in self.links.iter().enumerate() {
            let (a, b) = l.ends();
            let what = format!("link [{a}, {b}]");
            check_loss(
                l.loss_pct,
                Where::LinkField(i, "loss_pct"),
                &format!("{what}: loss_pct"),
            )?;
            check_rate(
                l.rate_mbit,
                Where::LinkField(i, "rate_mbit"),
                &format!("{what}: rate_mbit"),
            )?;
        }
        for (h, spec) in &self.hosts {
            check_loss(
                spec.loss_pct,
                Where::HostField(h.clone(), "loss_pct"),
                &format!("host `{h}`: loss_pct"),
            )?;
            check_rate(
                spec.rate_mbit,
                Where::HostField(h.clone(), "rate_mbit"),
                &format!("host `{h}`: rate_mbit"),
            )?;
        }
        Ok(())
    }

    fn check_switches(&self) -> Check {
        if self.switches.is_empty() {
            return bad(
                Where::Nowhere,
                "no switches: add at least one under `switches:`".into(),
            );
        }
        for (name, spec) in &self.switches {
            check_name(name, Where::Switch(name.clone()))?;
            if spec.snmp.is_some() && spec.backend != super::Backend::Snmp {
                return bad(
                    Where::Switch(name.clone()),
                    format!(
                        "switch `{name}` has `snmp:` options but is not `backend: snmp`: \
                         remove `snmp:` or set `backend: snmp`"
                    ),
                );
            }
        }
        Ok(())
    }

    fn check_hosts(&self) -> Check {
        for name in self.hosts.keys() {
            check_name(name, Where::Host(name.clone()))?;
            if self.switches.contains_key(name) {
                return bad(
                    Where::Host(name.clone()),
                    format!("`{name}` is both a switch and a host: rename one"),
                );
            }
        }
        if self.hosts.len() > 0xfffe {
            return bad(
                Where::Nowhere,
                format!("{} hosts: at most 65534 are supported", self.hosts.len()),
            );
        }
        for (host, spec) in &self.hosts {
            if !self.switches.contains_key(&spec.switch) {
                return bad(
                    Where::Host(host.clone()),
                    format!(
                        "host `{host}` is on switch `{}`, which is not under `switches:` \
                         (switches: {})",
                        spec.switch,
                        self.switch_list()
                    ),
                );
            }
        }
        Ok(())
    }

    fn switch_list(&self) -> String {
        self.switches
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn check_links(&self) -> Check {
        let mut seen = BTreeSet::new();
        for (i, l) in self.links.iter().enumerate() {
            let (a, b) = l.ends();
            for s in [a, b] {
                if !self.switches.contains_key(s) {
                    return bad(
                        Where::Link(i),
                        format!(
                            "link [{a}, {b}] names switch `{s}`, which is not under `switches:` \
                             (switches: {})",
                            self.switch_list()
                        ),
                    );
                }
            }
            if a == b {
                return bad(
                    Where::Link(i),
                    format!("link [{a}, {b}] connects a switch to itself"),
                );
            }
            let key = if a < b { (a, b) } else { (b, a) };
            if !seen.insert(key) {
                return bad(Where::Link(i), format!("link [{a}, {b}] is listed twice"));
            }
        }
        Ok(())
    }

    fn check_tree(&self) -> Check {
        // A tree over n switches has exactly n - 1 links and is connected.
        let n = self.switches.len();
        if self.stp {
            self.check_stp()?;
        } else if self.links.len() >= n {
            return bad(
                Where::Link(n - 1),
                format!(
                    "{} links between {n} switches form a loop; without spanning tree trunks \
                     must form a tree (at most {} links): remove a link, or set `stp: true` \
                     at the top level to let the bridges' spanning tree block it",
                    self.links.len(),
                    n - 1
                ),
            );
        }
        let first = self
            .switches
            .keys()
            .next()
            .map(String::as_str)
            .unwrap_or("");
        let reached = self.reachable_from(first);
        if reached.len() != n {
            let missing: Vec<&str> = self
                .switches
                .keys()
                .map(String::as_str)
                .filter(|s| !reached.contains(s))
                .collect();
            let w = missing
                .first()
                .map_or(Where::Nowhere, |s| Where::Switch(s.to_string()));
            return bad(
                w,
                format!(
                    "switches {missing:?} are not connected to `{first}` by links: add links \
                     so that all switches form one network"
                ),
            );
        }
        Ok(())
    }

    fn check_groups(&self) -> Check {
        let mut addrs = BTreeSet::new();
        for (gname, g) in &self.negotiating_groups {
            let at = || Where::Group(gname.clone());
            if g.members.is_empty() {
                return bad(at(), format!("negotiating group `{gname}` has no members"));
            }
            for m in &g.members {
                if !self.hosts.contains_key(m) {
                    return bad(
                        at(),
                        format!(
                            "negotiating group `{gname}` lists member `{m}`, which is not under \
                             `hosts:`"
                        ),
                    );
                }
            }
            if let Some(addr) = g.group {
                check_group_address(self.family, gname, addr).map_err(|m| (at(), m))?;
                if !addrs.insert(addr) {
                    return bad(
                        at(),
                        format!("address {addr} is used by two negotiating groups"),
                    );
                }
            }
        }
        Ok(())
    }
}

fn check_loss(v: Option<f64>, w: Where, what: &str) -> Check {
    match v {
        Some(p) if !p.is_finite() || !(0.0..=100.0).contains(&p) => bad(
            w,
            format!(
                "{what} is {p}: it must be a percentage from 0 to 100 (e.g. `loss_pct: 1.5` \
                 drops 1.5% of UDP datagrams in each direction)"
            ),
        ),
        _ => Ok(()),
    }
}

fn check_rate(v: Option<f64>, w: Where, what: &str) -> Check {
    match v {
        Some(r) if !r.is_finite() || !(0.01..=MAX_RATE_MBIT).contains(&r) => bad(
            w,
            format!(
                "{what} is {r}: it must be a rate in Mbit/s from 0.01 to {MAX_RATE_MBIT} \
                 (e.g. `rate_mbit: 100`); leave it out for an unlimited link"
            ),
        ),
        _ => Ok(()),
    }
}

fn check_name(name: &str, w: Where) -> Check {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        bad(
            w,
            format!(
                "name `{name}` must be 1-{MAX_NAME_LEN} characters of A-Z, a-z, 0-9 or `_` \
                 (it becomes part of Linux interface names)"
            ),
        )
    }
}

/// A negotiating group's address must be multicast, of the topology's family,
/// outside the lab's rendezvous pools, and (IPv4) outside 224.0.0.0/24, which
/// bridges flood whatever their MDB says.
fn check_group_address(family: Family, gname: &str, addr: std::net::IpAddr) -> Result<(), String> {
    use std::net::IpAddr;
    match (family, addr) {
        (Family::Ipv4, IpAddr::V6(_)) => {
            return Err(format!(
                "negotiating group `{gname}` has the IPv6 address {addr} in a `family: ipv4` \
                 topology: give an IPv4 group (e.g. 239.92.0.N), or set `family: dual` for \
                 groups of both families"
            ));
        }
        (Family::Ipv6, IpAddr::V4(_)) => {
            return Err(format!(
                "negotiating group `{gname}` has the IPv4 address {addr} in an IPv6 topology: \
                 set `family: ipv4` (or `family: dual`) at the top, or give an IPv6 group \
                 (e.g. ff05::5c:1:N)"
            ));
        }
        _ => {}
    }
    let (multicast, hint) = match addr {
        IpAddr::V4(_) => ("224.0.0.0/4", "239.92.0.N"),
        IpAddr::V6(_) => ("ff00::/8", "ff05::5c:1:N"),
    };
    if !addr.is_multicast() {
        return Err(format!(
            "negotiating group `{gname}` has address {addr}, which is not multicast \
             ({multicast})"
        ));
    }
    if let IpAddr::V4(v4) = addr
        && v4.octets()[..3] == [224, 0, 0]
    {
        return Err(format!(
            "negotiating group `{gname}` has address {addr}, inside 224.0.0.0/24 (link-local \
             control groups that bridges always flood); pick another (e.g. {hint})"
        ));
    }
    let mapped = match addr {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    if in_rendezvous_pool(&mapped) {
        let pool = if addr.is_ipv4() {
            RENDEZVOUS_POOL_V4
        } else {
            RENDEZVOUS_POOL
        };
        return Err(format!(
            "negotiating group `{gname}` has address {addr}, inside the lab's rendezvous \
             pool {pool}; pick another (e.g. {hint})"
        ));
    }
    Ok(())
}

/// Where the lab's controller leases IPv6 rendezvous groups from (every agent's
/// `rendezvous_range`); a negotiating group may not lie inside it.
pub const RENDEZVOUS_POOL: &str = "ff05::5c:2:0/112";

/// Where the lab's controller leases IPv4 rendezvous groups from (`family:
/// ipv4`); a negotiating group may not lie inside it.
pub const RENDEZVOUS_POOL_V4: &str = "239.92.128.0/24";

/// Whether `a` is in [`RENDEZVOUS_POOL`], or IPv4-mapped (the protocol's group
/// form, `::ffff:239.92.128.1`) in [`RENDEZVOUS_POOL_V4`].
pub fn in_rendezvous_pool(a: &std::net::Ipv6Addr) -> bool {
    if let Some(v4) = a.to_ipv4_mapped() {
        return v4.octets()[..3] == [239, 92, 128];
    }
    a.segments()[..7] == [0xff05, 0, 0, 0, 0, 0x5c, 2]
}
