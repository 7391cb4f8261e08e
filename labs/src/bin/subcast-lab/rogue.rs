//! `--rogue-join HOST` (subset-only): a host that is not a target joins the
//! granted rendezvous group itself, with an IGMP report (IPv4 group) or an MLD
//! report (IPv6 group), before the datagrams are sent. The lab's closed
//! switches drop reports from host ports, so the bridges never learn the join:
//! the rogue must receive nothing (counted by tcpdump on its `eth0`, outside
//! any process) and the group's MDB entries must stay as the agents put them.

use std::collections::BTreeMap;
use std::net::{Ipv6Addr, UdpSocket};
use std::time::Duration;

use anyhow::{Result, bail};
use labs::Lab;
use serde_json::{Value, json};

use crate::stack::wait_for;

/// A rogue host joined to a group; the join lasts as long as this value.
pub struct RogueJoin {
    pub host: String,
    switch: String,
    group: Ipv6Addr,
    igmp: bool,
    before: u64,
    /// Reports the switch's closing rule dropped since the join.
    pub dropped: u64,
    _socket: UdpSocket,
}

fn dropped(lab: &Lab, switch: &str, igmp: bool) -> Result<u64> {
    Ok(if igmp {
        lab.igmp_dropped(switch)?
    } else {
        lab.mld_dropped(switch)?
    })
}

/// Join `group` from `host` on UDP `port` and wait (at most 10 s) until the
/// host's switch has dropped its report.
pub fn join(
    lab: &Lab,
    host: &str,
    group: Ipv6Addr,
    port: u16,
    targets: &[String],
    sender: &str,
) -> Result<RogueJoin> {
    if targets.iter().any(|t| t == host) || host == sender {
        bail!("--rogue-join {host}: the rogue must be neither a target nor the sender");
    }
    let h = lab.try_host(host)?;
    let switch = h.switch.clone();
    if lab.switch(&switch).ovs.is_some() {
        bail!(
            "--rogue-join {host}: its switch {switch} is Open vSwitch, which does no \
             snooping here (a join changes nothing); pick a host on a Linux bridge"
        );
    }
    let igmp = group.to_ipv4_mapped().is_some();
    let before = dropped(lab, &switch, igmp)?;
    let socket = lab.udp_socket(host, port, &[group])?;
    let what = format!(
        "switch {switch} to drop the {} report of {host}",
        if igmp { "IGMP" } else { "MLD" }
    );
    wait_for(&what, Duration::from_secs(10), || {
        Ok(dropped(lab, &switch, igmp)? > before)
    })?;
    Ok(RogueJoin {
        host: host.to_string(),
        switch,
        group,
        igmp,
        before,
        dropped: 0,
        _socket: socket,
    })
}

impl RogueJoin {
    /// The report part after the datagrams were counted: `installed` are the
    /// group's ports before the join, `now` after; `datagrams` what the rogue's
    /// capture counted.
    pub fn report(
        &mut self,
        lab: &Lab,
        installed: &BTreeMap<String, Vec<String>>,
        now: &BTreeMap<String, Vec<String>>,
        datagrams: u64,
    ) -> Result<(Value, bool)> {
        self.dropped = dropped(lab, &self.switch, self.igmp)? - self.before;
        let unchanged = installed == now;
        let ok = datagrams == 0 && unchanged && self.dropped > 0;
        Ok((
            json!({
                "host": self.host,
                "switch": self.switch,
                "group": self.group.to_canonical().to_string(),
                "protocol": if self.igmp { "igmp" } else { "mld" },
                "reports_dropped": self.dropped,
                "mdb_unchanged": unchanged,
                "datagrams": datagrams,
                "ok": ok,
            }),
            ok,
        ))
    }
}
