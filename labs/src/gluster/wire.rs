//! Bytes on the wire, counted outside the processes under test: the interface
//! counters of a host's namespace (`/proc/net/dev` as seen from inside it).
//!
//! With TSO/GSO on, a veth counts one oversized segment where the wire would carry
//! several frames, each with its own headers, so byte counts come out low; turn them
//! off on the sender ([`wire_accurate`]) before measuring, for every system compared.

use std::collections::BTreeMap;

use crate::lab::Lab;
use crate::netns;

use super::error::{GlusterError, Result};

/// Byte and packet counters of one interface.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct IfCounters {
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
}

impl IfCounters {
    /// `self - earlier`, per field (saturating).
    pub fn since(&self, earlier: &IfCounters) -> IfCounters {
        IfCounters {
            rx_bytes: self.rx_bytes.saturating_sub(earlier.rx_bytes),
            rx_packets: self.rx_packets.saturating_sub(earlier.rx_packets),
            tx_bytes: self.tx_bytes.saturating_sub(earlier.tx_bytes),
            tx_packets: self.tx_packets.saturating_sub(earlier.tx_packets),
        }
    }
}

/// Parse the text of `/proc/net/dev`: counters per interface name.
pub fn parse_net_dev(text: &str) -> BTreeMap<String, IfCounters> {
    let mut out = BTreeMap::new();
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let f: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if f.len() < 16 {
            continue;
        }
        out.insert(
            name.trim().to_string(),
            IfCounters {
                rx_bytes: f[0],
                rx_packets: f[1],
                tx_bytes: f[8],
                tx_packets: f[9],
            },
        );
    }
    out
}

/// Counters of `eth0` of lab host `host`, read from inside its namespace.
pub fn host_counters(lab: &Lab, host: &str) -> Result<IfCounters> {
    let h = lab.try_host(host)?;
    let ifname = h.ifname.clone();
    // /proc/net is /proc/self/net, which follows the thread group leader's
    // namespace; /proc/thread-self/net follows this thread's.
    let text = netns::in_netns(&h.netns, || {
        std::fs::read_to_string("/proc/thread-self/net/dev")
    })?
    .map_err(|e| GlusterError::io(format!("reading /proc/net/dev of host {host}"), e))?;
    parse_net_dev(&text)
        .remove(&ifname)
        .ok_or_else(|| GlusterError::Invalid(format!("host {host} has no {ifname}")))
}

/// Counters of several hosts at once (one thread each, so the readings are close in
/// time).
pub fn hosts_counters(lab: &Lab, hosts: &[String]) -> Result<BTreeMap<String, IfCounters>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = hosts
            .iter()
            .map(|h| (h.clone(), s.spawn(move || host_counters(lab, h))))
            .collect();
        let mut out = BTreeMap::new();
        for (h, j) in handles {
            let c = j
                .join()
                .map_err(|_| GlusterError::Client("counter thread panicked".into()))??;
            out.insert(h, c);
        }
        Ok(out)
    })
}

/// Turn TSO and GSO off on `eth0` of `host` (`ethtool -K eth0 tso off gso off`), so
/// that its counters count what the wire would carry. (UDP segmentation offload
/// is off on every lab host from the build on: subcast's GSO batches are cut into
/// frames before the counters.)
pub fn wire_accurate(lab: &Lab, host: &str) -> Result<()> {
    let h = lab.try_host(host)?;
    lab.exec(
        &h.netns,
        &["ethtool", "-K", &h.ifname, "tso", "off", "gso", "off"],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
  eth0:   48566     255    0    0    0     0          0         0   875566     725    0    0    0     0       0          0
";

    #[test]
    fn parses_proc_net_dev() {
        let m = parse_net_dev(SAMPLE);
        assert_eq!(m.len(), 2);
        let e = m["eth0"];
        assert_eq!(
            e,
            IfCounters {
                rx_bytes: 48566,
                rx_packets: 255,
                tx_bytes: 875566,
                tx_packets: 725
            }
        );
        let later = IfCounters {
            tx_bytes: 875566 + 10,
            ..e
        };
        assert_eq!(later.since(&e).tx_bytes, 10);
        assert_eq!(e.since(&later).tx_bytes, 0);
    }
}
