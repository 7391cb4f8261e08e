//! Captures split by destination: tcpdump writes a pcap file (started like
//! `labs::Capture`, outside the daemons), and this module counts its UDP
//! datagrams (IPv6, and IPv4 with the destination IPv4-mapped) per destination
//! address. A put sends to several groups (one rendezvous
//! group per chunk, unicast repairs...), so totals alone are not enough.

use std::collections::BTreeMap;
use std::net::Ipv6Addr;

use anyhow::{Context, Result};
use labs::capture::{pcap_records, udp};
use labs::{Capture, Lab};

/// Datagrams and UDP payload bytes toward one destination.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    pub datagrams: u64,
    pub bytes: u64,
    /// Capture time of the first datagram, microseconds since the Unix epoch (0: none).
    #[serde(skip)]
    pub first_us: u64,
}

/// A running tcpdump (a [`labs::Capture`]) whose file is read per destination.
pub struct DstCapture {
    cap: Capture,
}

/// UDP payloads of IPv6/UDP frames (no extension headers) and IPv4/UDP frames in a classic Ethernet
/// pcap, in capture order. Never panics; a truncated record ends the list.
pub fn udp_payloads(data: &[u8]) -> Vec<Vec<u8>> {
    pcap_records(data)
        .into_iter()
        .flatten()
        .filter_map(|r| udp(r.frame))
        .filter(|u| u.payload.len() == usize::from(u.len))
        .map(|u| u.payload.to_vec())
        .collect()
}

/// Datagrams and bytes per destination address.
pub type Tallies = BTreeMap<Ipv6Addr, Tally>;

impl DstCapture {
    /// Capture UDP on `ifname` of `netns` in `direction` ("in"/"out") matching
    /// `filter` (pcap syntax, ANDed with `ip6 and udp`, or `ip` in an IPv4 lab: see
    /// `Lab::capture_on`).
    pub fn start(
        lab: &Lab,
        netns: &str,
        ifname: &str,
        direction: &str,
        filter: &str,
    ) -> Result<DstCapture> {
        Self::start_snap(lab, netns, ifname, direction, filter, 128)
    }

    /// Like [`DstCapture::start`], keeping `snaplen` bytes of every frame.
    pub fn start_snap(
        lab: &Lab,
        netns: &str,
        ifname: &str,
        direction: &str,
        filter: &str,
        snaplen: u32,
    ) -> Result<DstCapture> {
        let cap = lab.capture_on_snap(netns, ifname, direction, filter, snaplen)?;
        Ok(DstCapture { cap })
    }

    /// Stop (after the file stopped growing) and count per destination.
    pub fn stop(self) -> Result<BTreeMap<Ipv6Addr, Tally>> {
        let place = self.cap.place.clone();
        let (data, _) = self.cap.stop_raw()?;
        parse(&data).with_context(|| format!("the capture of {place} is not an Ethernet pcap"))
    }

    /// Stop; the counts per destination and the UDP payloads, in order.
    pub fn stop_with_payloads(self) -> Result<(Tallies, Vec<Vec<u8>>)> {
        let place = self.cap.place.clone();
        let (data, _) = self.cap.stop_raw()?;
        let t = parse(&data)
            .with_context(|| format!("the capture of {place} is not an Ethernet pcap"))?;
        Ok((t, udp_payloads(&data)))
    }

    /// Stop and return the UDP payloads captured, in order.
    pub fn stop_payloads(self) -> Result<Vec<Vec<u8>>> {
        Ok(udp_payloads(&self.cap.stop_raw()?.0))
    }
}

/// Count IPv6/UDP datagrams (no extension headers) and IPv4/UDP ones (destination
/// IPv4-mapped) per destination in a classic Ethernet pcap. Never panics; a
/// truncated record ends the count.
pub fn parse(data: &[u8]) -> Option<BTreeMap<Ipv6Addr, Tally>> {
    let mut out: BTreeMap<Ipv6Addr, Tally> = BTreeMap::new();
    for r in pcap_records(data)? {
        if let Some(u) = udp(r.frame) {
            let t = out.entry(u.dst).or_default();
            if t.datagrams == 0 {
                t.first_us = r.ts_us;
            }
            t.datagrams += 1;
            t.bytes += u64::from(u.len);
        }
    }
    Some(out)
}

/// Sum of the tallies whose destination satisfies `keep`.
pub fn sum(t: &BTreeMap<Ipv6Addr, Tally>, keep: impl Fn(&Ipv6Addr) -> bool) -> Tally {
    t.iter()
        .filter(|(a, _)| keep(a))
        .fold(Tally::default(), |acc, (_, v)| Tally {
            datagrams: acc.datagrams + v.datagrams,
            bytes: acc.bytes + v.bytes,
            first_us: match (acc.first_us, v.first_us) {
                (0, b) => b,
                (a, 0) => a,
                (a, b) => a.min(b),
            },
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(dst: Ipv6Addr, payload: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 40 + 8];
        f[12] = 0x86;
        f[13] = 0xdd;
        f[20] = 17;
        f[38..54].copy_from_slice(&dst.octets());
        f[58..60].copy_from_slice(&(payload + 8).to_be_bytes());
        f
    }

    fn pcap(frames: &[Vec<u8>]) -> Vec<u8> {
        let mut d = Vec::new();
        d.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        d.extend_from_slice(&[2, 0, 4, 0]);
        d.extend_from_slice(&[0; 8]);
        d.extend_from_slice(&65535u32.to_le_bytes());
        d.extend_from_slice(&1u32.to_le_bytes());
        for f in frames {
            d.extend_from_slice(&[0; 8]);
            let n = u32::try_from(f.len()).unwrap();
            d.extend_from_slice(&n.to_le_bytes());
            d.extend_from_slice(&n.to_le_bytes());
            d.extend_from_slice(f);
        }
        d
    }

    #[test]
    fn splits_by_destination() {
        let a: Ipv6Addr = "ff05::5c:2:1".parse().unwrap();
        let b: Ipv6Addr = "fd00:5c::4".parse().unwrap();
        let d = pcap(&[frame(a, 100), frame(b, 7), frame(a, 50), vec![1; 30]]);
        let t = parse(&d).unwrap();
        assert_eq!((t[&a].datagrams, t[&a].bytes), (2, 150));
        assert_eq!((t[&b].datagrams, t[&b].bytes), (1, 7));
        assert_eq!(sum(&t, |x| x.is_multicast()).bytes, 150);
    }

    #[test]
    fn payloads_in_order() {
        let a: Ipv6Addr = "ff05::5c:1:1".parse().unwrap();
        let mut f1 = frame(a, 3);
        f1.extend_from_slice(b"abc");
        let mut f2 = frame(a, 2);
        f2.extend_from_slice(b"xy");
        let d = pcap(&[f1, vec![0; 20], f2]);
        assert_eq!(udp_payloads(&d), vec![b"abc".to_vec(), b"xy".to_vec()]);
        for cut in 0..d.len() {
            let _ = udp_payloads(&d[..cut]);
        }
    }

    #[test]
    fn truncated_input_never_panics() {
        let a: Ipv6Addr = "ff05::5c:2:1".parse().unwrap();
        let mut d = pcap(&[frame(a, 100)]);
        for cut in 0..d.len() {
            let _ = parse(&d[..cut]);
        }
        d[32..36].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse(&d).unwrap().is_empty());
    }
}
