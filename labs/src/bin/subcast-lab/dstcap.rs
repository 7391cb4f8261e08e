//! Captures split by IPv6 destination: tcpdump writes a pcap file (started like
//! `labs::Capture`, outside the daemons), and this module counts its IPv6/UDP
//! datagrams per destination address. A put sends to several groups (one rendezvous
//! group per chunk, unicast repairs...), so totals alone are not enough.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use labs::{ChildGuard, Lab};

/// Datagrams and UDP payload bytes toward one destination.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    pub datagrams: u64,
    pub bytes: u64,
    /// Capture time of the first datagram, microseconds since the Unix epoch (0: none).
    #[serde(skip)]
    pub first_us: u64,
}

/// A running tcpdump.
pub struct DstCapture {
    guard: ChildGuard,
    file: PathBuf,
}

/// UDP payloads of IPv6/UDP frames (no extension headers) in a classic Ethernet
/// pcap, in capture order. Never panics; a truncated record ends the list.
pub fn udp_payloads(data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let Some(le) = (match u32_at(data, 0, true) {
        Some(0xa1b2_c3d4 | 0xa1b2_3c4d) => Some(true),
        Some(0xd4c3_b2a1 | 0x4d3c_b2a1) => Some(false),
        _ => None,
    }) else {
        return out;
    };
    let mut at = 24usize;
    while let Some(incl) = at.checked_add(8).and_then(|p| u32_at(data, p, le)) {
        let Some(start) = at.checked_add(16) else {
            break;
        };
        let Some(end) = usize::try_from(incl)
            .ok()
            .and_then(|n| start.checked_add(n))
        else {
            break;
        };
        let Some(frame) = data.get(start..end) else {
            break;
        };
        if let Some((_, len)) = udp6(frame)
            && let Some(p) = frame.get(62..62 + usize::from(len))
        {
            out.push(p.to_vec());
        }
        at = end;
    }
    out
}

static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl DstCapture {
    /// Capture IPv6 UDP on `ifname` of `netns` in `direction` ("in"/"out") matching
    /// `filter` (pcap syntax, ANDed with `ip6 and udp`).
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
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let file = lab.workdir().join(format!("dst{n}.pcap"));
        let f = file.display().to_string();
        let full = format!("ip6 and udp and ({filter})");
        let snap = snaplen.to_string();
        let args = [
            "tcpdump",
            "-i",
            ifname,
            "-Q",
            direction,
            "-n",
            "-U",
            "--immediate-mode",
            "-s",
            &snap,
            "-B",
            "8192",
            "-Z",
            "root",
            "-w",
            &f,
            &full,
        ];
        let mut guard = lab.spawn_with(netns, &args, |c| {
            c.stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped());
        })?;
        let pipe = guard.child_mut().stderr.take().context("tcpdump stderr")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(l) if l.contains("listening on") => break,
                Ok(_) => {}
                Err(_) => bail!("tcpdump on {netns}/{ifname} did not start capturing"),
            }
        }
        // Keep draining stderr so tcpdump never blocks on it.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        Ok(DstCapture { guard, file })
    }

    /// Stop (after the file stopped growing) and count per destination.
    pub fn stop(self) -> Result<BTreeMap<Ipv6Addr, Tally>> {
        let (data, file) = self.stop_raw()?;
        parse(&data).with_context(|| format!("{} is not an Ethernet pcap", file.display()))
    }

    /// Stop and return the UDP payloads captured, in order.
    pub fn stop_payloads(self) -> Result<Vec<Vec<u8>>> {
        Ok(udp_payloads(&self.stop_raw()?.0))
    }

    fn stop_raw(mut self) -> Result<(Vec<u8>, PathBuf)> {
        let len = |p: &PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let mut last = len(&self.file);
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            std::thread::sleep(Duration::from_millis(50));
            let now = len(&self.file);
            if now == last || Instant::now() > deadline {
                break;
            }
            last = now;
        }
        self.guard
            .stop_with(nix::sys::signal::Signal::SIGINT, Duration::from_secs(3));
        let data = std::fs::read(&self.file)
            .with_context(|| format!("reading {}", self.file.display()))?;
        let _ = std::fs::remove_file(&self.file);
        Ok((data, self.file.clone()))
    }
}

fn u32_at(d: &[u8], at: usize, le: bool) -> Option<u32> {
    let b: [u8; 4] = d.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(if le {
        u32::from_le_bytes(b)
    } else {
        u32::from_be_bytes(b)
    })
}

/// Count IPv6/UDP datagrams (no extension headers) per destination in a classic
/// Ethernet pcap. Never panics; a truncated record ends the count.
pub fn parse(data: &[u8]) -> Option<BTreeMap<Ipv6Addr, Tally>> {
    let (le, nanos) = match u32_at(data, 0, true)? {
        0xa1b2_c3d4 => (true, false),
        0xa1b2_3c4d => (true, true),
        0xd4c3_b2a1 => (false, false),
        0x4d3c_b2a1 => (false, true),
        _ => return None,
    };
    if u32_at(data, 20, le)? != 1 {
        return None;
    }
    let mut out: BTreeMap<Ipv6Addr, Tally> = BTreeMap::new();
    let mut at = 24usize;
    while let Some(incl) = u32_at(data, at.checked_add(8)?, le) {
        let start = at.checked_add(16)?;
        let Some(end) = usize::try_from(incl)
            .ok()
            .and_then(|n| start.checked_add(n))
        else {
            break;
        };
        let Some(frame) = data.get(start..end) else {
            break;
        };
        if let Some((dst, len)) = udp6(frame) {
            let sec = u64::from(u32_at(data, at, le).unwrap_or(0));
            let frac = u64::from(u32_at(data, at + 4, le).unwrap_or(0));
            let ts = sec * 1_000_000 + if nanos { frac / 1000 } else { frac };
            let t = out.entry(dst).or_default();
            if t.datagrams == 0 {
                t.first_us = ts;
            }
            t.datagrams += 1;
            t.bytes += u64::from(len);
        }
        at = end;
    }
    Some(out)
}

fn udp6(frame: &[u8]) -> Option<(Ipv6Addr, u16)> {
    if frame.get(12..14)? != [0x86, 0xdd] || *frame.get(20)? != 17 {
        return None;
    }
    let dst: [u8; 16] = frame.get(38..54)?.try_into().ok()?;
    let udp_len = u16::from_be_bytes(frame.get(58..60)?.try_into().ok()?);
    Some((Ipv6Addr::from(dst), udp_len.checked_sub(8)?))
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
