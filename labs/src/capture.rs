//! Counting datagrams from outside the process under test: tcpdump captures parsed
//! here, and the per-namespace UDP counters of `/proc/net/snmp6`.

use std::io::{BufRead, BufReader};
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::cmd;
use crate::error::{LabError, Result};
use crate::process::{ChildGuard, PidList};

/// What a capture saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Frames that are IPv6 UDP datagrams (matching the filter).
    pub datagrams: u64,
    /// Sum of their UDP payload lengths.
    pub bytes: u64,
    /// Frames in the file that were not IPv6/UDP (0 with the default filter).
    pub other_frames: u64,
    /// Packets tcpdump reported as "dropped by kernel" (should be 0).
    pub kernel_dropped: u64,
}

/// A running tcpdump in a lab namespace. Call [`Capture::stop`] to get the counts;
/// dropping it without stopping just ends tcpdump.
#[derive(Debug)]
pub struct Capture {
    guard: ChildGuard,
    file: PathBuf,
    stderr: mpsc::Receiver<String>,
    /// Namespace and interface captured on, for messages.
    pub place: String,
}

impl Capture {
    /// Start `tcpdump -Q DIRECTION` on `ifname` in `netns`, keeping `snaplen` bytes
    /// of every frame, writing to `file`, and wait until it is really capturing.
    /// `direction` is "in", "out" or "inout".
    pub(crate) fn start(
        netns: &str,
        ifname: &str,
        direction: &str,
        filter: &str,
        file: &Path,
        pids: PidList,
        snaplen: u32,
    ) -> Result<Capture> {
        let file_s = file.display().to_string();
        let snap = snaplen.to_string();
        let args = [
            "ip",
            "netns",
            "exec",
            netns,
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
            &file_s,
            filter,
        ];
        let cmdline = args.join(" ");
        let child = Command::new(args[0])
            .args(&args[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| LabError::Spawn {
                cmd: cmdline.clone(),
                source,
            })?;
        let mut guard = ChildGuard::new(child, pids, format!("tcpdump in {netns}"));
        let pipe = guard
            .child_mut()
            .stderr
            .take()
            .ok_or_else(|| LabError::Parse("tcpdump stderr".into()))?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains("listening on") => break,
                Ok(line) => {
                    seen.push_str(&line);
                    seen.push('\n');
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(LabError::Timeout(format!(
                        "`{cmdline}` did not start capturing within 10 s: {seen}"
                    )));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(LabError::Command {
                        cmd: cmdline,
                        status: "exited before capturing".into(),
                        stderr: seen,
                    });
                }
            }
        }
        Ok(Capture {
            guard,
            file: file.to_path_buf(),
            stderr: rx,
            place: format!("{netns}/{ifname}"),
        })
    }

    /// Wait until tcpdump has written every packet that matched (see
    /// [`Capture::stop_raw`]), stop it and count what it wrote.
    pub fn stop(self) -> Result<Counts> {
        let place = self.place.clone();
        let (data, kernel_dropped) = self.stop_raw()?;
        let mut c =
            count_pcap(&data).ok_or_else(|| LabError::Parse(format!("capture file of {place}")))?;
        c.kernel_dropped = kernel_dropped;
        Ok(c)
    }

    /// PID of the tcpdump process.
    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    /// Ask tcpdump for its counters (SIGUSR1) and wait for the answer on stderr:
    /// (captured, received by filter, dropped by kernel).
    fn poll_stats(&mut self) -> Option<Stats> {
        let pid = i32::try_from(self.guard.pid()).ok()?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGUSR1).ok()?;
        let deadline = Instant::now() + Duration::from_secs(2);
        while let Ok(line) = self
            .stderr
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if let Some(s) = Stats::parse(&line) {
                return Some(s);
            }
        }
        None
    }

    /// Like [`Capture::stop`], returning the pcap file's bytes (read them with
    /// [`pcap_records`] and [`udp6`]) and tcpdump's "dropped by kernel" count.
    ///
    /// tcpdump reads packets from a ring buffer and, on SIGINT, exits without
    /// writing those still in it; on a busy machine it may not have run for a
    /// while. So before stopping it, its own counters are polled (SIGUSR1) until
    /// no packet has matched for 50 ms and every packet that matched is written or
    /// counted as dropped (captured + dropped = received by filter). The lab
    /// filters host captures by direction in the kernel filter too (source MAC), so
    /// that sum is exact there; elsewhere (a switch port), three equal answers
    /// 50 ms apart are taken as drained. At most 10 s.
    pub fn stop_raw(mut self) -> Result<(Vec<u8>, u64)> {
        let t0 = Instant::now();
        let mut prev: Option<(Stats, Instant)> = None;
        let mut same = 0;
        while t0.elapsed() < Duration::from_secs(10) {
            let Some(st) = self.poll_stats() else { break };
            let now = Instant::now();
            if let Some((p, at)) = prev
                && p == st
            {
                same += 1;
                let quiet = now.duration_since(at) >= Duration::from_millis(50);
                if quiet && (st.drained() || same >= 2) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(25));
                continue;
            }
            same = 0;
            prev = Some((st, now));
            std::thread::sleep(Duration::from_millis(25));
        }
        self.guard.stop_with(Signal::SIGINT, Duration::from_secs(3));
        let mut kernel_dropped = 0;
        while let Ok(line) = self.stderr.recv_timeout(Duration::from_millis(500)) {
            if let Some(n) = line.strip_suffix(" packets dropped by kernel") {
                kernel_dropped = n.trim().parse().unwrap_or(0);
            }
        }
        let data = std::fs::read(&self.file)
            .map_err(|e| LabError::io(format!("reading capture {}", self.file.display()), e))?;
        let _ = std::fs::remove_file(&self.file);
        Ok((data, kernel_dropped))
    }
}

/// tcpdump's counters, as it prints them on SIGUSR1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stats {
    captured: u64,
    received: u64,
    dropped: u64,
}

impl Stats {
    /// `tcpdump: 19 packets captured, 20 packets received by filter, 0 packets
    /// dropped by kernel` (maybe more parts).
    fn parse(line: &str) -> Option<Stats> {
        let rest = line.strip_prefix("tcpdump: ")?;
        let mut st = Stats {
            captured: u64::MAX,
            received: u64::MAX,
            dropped: u64::MAX,
        };
        for part in rest.split(", ") {
            let (n, what) = part.trim().split_once(' ')?;
            let n: u64 = n.parse().ok()?;
            match what {
                "packets captured" | "packet captured" => st.captured = n,
                "packets received by filter" | "packet received by filter" => st.received = n,
                "packets dropped by kernel" | "packet dropped by kernel" => st.dropped = n,
                _ => {}
            }
        }
        (st.captured != u64::MAX && st.received != u64::MAX && st.dropped != u64::MAX).then_some(st)
    }

    fn drained(&self) -> bool {
        self.captured + self.dropped >= self.received
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

/// One record of a classic pcap file.
#[derive(Debug, Clone, Copy)]
pub struct PcapRecord<'a> {
    /// Capture time, microseconds since the Unix epoch.
    pub ts_us: u64,
    /// The captured bytes of the frame (at most the snap length).
    pub frame: &'a [u8],
}

/// The records of a classic pcap file with Ethernet link type (microsecond or
/// nanosecond timestamps, either byte order); `None` if it is not such a file. A
/// truncated last record ends the iteration. Never panics, whatever the input.
pub fn pcap_records(data: &[u8]) -> Option<impl Iterator<Item = PcapRecord<'_>>> {
    let (le, nanos) = match u32_at(data, 0, true)? {
        0xa1b2_c3d4 => (true, false),
        0xa1b2_3c4d => (true, true),
        0xd4c3_b2a1 => (false, false),
        0x4d3c_b2a1 => (false, true),
        _ => return None,
    };
    if u32_at(data, 20, le)? != 1 {
        return None; // not LINKTYPE_ETHERNET
    }
    let mut at = 24usize;
    Some(std::iter::from_fn(move || {
        let incl = u32_at(data, at.checked_add(8)?, le)?;
        let start = at.checked_add(16)?;
        let end = start.checked_add(usize::try_from(incl).ok()?)?;
        let frame = data.get(start..end)?;
        let sec = u64::from(u32_at(data, at, le)?);
        let frac = u64::from(u32_at(data, at + 4, le)?);
        at = end;
        Some(PcapRecord {
            ts_us: sec * 1_000_000 + if nanos { frac / 1000 } else { frac },
            frame,
        })
    }))
}

/// An Ethernet/IPv6/UDP frame (no extension headers), or an IPv4 one read by
/// [`udp4`] (destination IPv4-mapped).
#[derive(Debug, Clone, Copy)]
pub struct Udp6<'a> {
    pub dst: Ipv6Addr,
    /// UDP payload length from the UDP header.
    pub len: u16,
    /// The payload bytes captured (shorter than `len` if the snap length cut it).
    pub payload: &'a [u8],
}

/// Reads `frame` as Ethernet/IPv6/UDP without extension headers.
pub fn udp6(frame: &[u8]) -> Option<Udp6<'_>> {
    if frame.get(12..14)? != [0x86, 0xdd] || *frame.get(20)? != 17 {
        return None;
    }
    let dst: [u8; 16] = frame.get(38..54)?.try_into().ok()?;
    let udp_len = u16::from_be_bytes(frame.get(58..60)?.try_into().ok()?);
    let len = udp_len.checked_sub(8)?;
    let payload = frame.get(62..).unwrap_or_default();
    Some(Udp6 {
        dst: Ipv6Addr::from(dst),
        len,
        payload: &payload[..payload.len().min(usize::from(len))],
    })
}

/// Reads `frame` as Ethernet/IPv4/UDP (options allowed, first fragment or
/// unfragmented); the destination comes IPv4-mapped (`::ffff:239.92.128.1`), the
/// protocol's group form.
pub fn udp4(frame: &[u8]) -> Option<Udp6<'_>> {
    if frame.get(12..14)? != [0x08, 0x00] || *frame.get(23)? != 17 {
        return None;
    }
    let ihl = usize::from(frame.get(14)? & 0x0f) * 4;
    let dst: [u8; 4] = frame.get(30..34)?.try_into().ok()?;
    let at = 14 + ihl;
    let udp_len = u16::from_be_bytes(frame.get(at + 4..at + 6)?.try_into().ok()?);
    let len = udp_len.checked_sub(8)?;
    let payload = frame.get(at + 8..).unwrap_or_default();
    Some(Udp6 {
        dst: std::net::Ipv4Addr::from(dst).to_ipv6_mapped(),
        len,
        payload: &payload[..payload.len().min(usize::from(len))],
    })
}

/// [`udp6`] or [`udp4`]: an Ethernet frame carrying UDP over either family.
pub fn udp(frame: &[u8]) -> Option<Udp6<'_>> {
    udp6(frame).or_else(|| udp4(frame))
}

/// The UDP payload length of an Ethernet/IPv4/UDP frame.
pub fn udp4_len(frame: &[u8]) -> Option<u16> {
    if frame.get(12..14)? != [0x08, 0x00] || *frame.get(23)? != 17 {
        return None;
    }
    let ihl = usize::from(frame.get(14)? & 0x0f) * 4;
    let at = 14 + ihl + 4;
    let udp_len = u16::from_be_bytes(frame.get(at..at + 2)?.try_into().ok()?);
    udp_len.checked_sub(8)
}

/// Count IPv6/UDP (and IPv4/UDP) datagrams in a classic pcap file with Ethernet link type. Returns
/// `None` if the file is not such a pcap. A truncated last record is ignored. Never
/// panics, whatever the input.
pub fn count_pcap(data: &[u8]) -> Option<Counts> {
    let mut counts = Counts::default();
    for r in pcap_records(data)? {
        match udp6(r.frame).map(|u| u.len).or_else(|| udp4_len(r.frame)) {
            Some(len) => {
                counts.datagrams += 1;
                counts.bytes += u64::from(len);
            }
            None => counts.other_frames += 1,
        }
    }
    Some(counts)
}

/// UDP counters of one network namespace, from `/proc/net/snmp6`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UdpCounters {
    /// Udp6InDatagrams: delivered to a socket.
    pub in_datagrams: u64,
    /// Udp6NoPorts.
    pub no_ports: u64,
    /// Udp6InErrors.
    pub in_errors: u64,
    /// Udp6RcvbufErrors.
    pub rcvbuf_errors: u64,
    /// Udp6InCsumErrors.
    pub in_csum_errors: u64,
    /// Udp6OutDatagrams.
    pub out_datagrams: u64,
}

impl UdpCounters {
    /// Read the counters of namespace `netns`.
    pub fn read(netns: &str) -> Result<UdpCounters> {
        let out = cmd::run_in(netns, &["cat", "/proc/net/snmp6"])?;
        Ok(Self::parse(&cmd::stdout(&out)))
    }

    /// Parse the text of `/proc/net/snmp6`.
    pub fn parse(text: &str) -> UdpCounters {
        let mut c = UdpCounters::default();
        for line in text.lines() {
            let mut it = line.split_whitespace();
            let (Some(k), Some(v)) = (it.next(), it.next()) else {
                continue;
            };
            let v: u64 = v.parse().unwrap_or(0);
            match k {
                "Udp6InDatagrams" => c.in_datagrams = v,
                "Udp6NoPorts" => c.no_ports = v,
                "Udp6InErrors" => c.in_errors = v,
                "Udp6RcvbufErrors" => c.rcvbuf_errors = v,
                "Udp6InCsumErrors" => c.in_csum_errors = v,
                "Udp6OutDatagrams" => c.out_datagrams = v,
                _ => {}
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcpdump_counters() {
        let s = Stats::parse(
            "tcpdump: 19 packets captured, 20 packets received by filter, 0 packets dropped by kernel",
        )
        .unwrap();
        assert_eq!((s.captured, s.received, s.dropped), (19, 20, 0));
        assert!(!s.drained());
        let s = Stats::parse(
            "tcpdump: 1 packet captured, 1 packet received by filter, 0 packets dropped by kernel, 2 packets dropped by interface",
        )
        .unwrap();
        assert!(s.drained());
        assert!(Stats::parse("tcpdump: listening on eth0").is_none());
        assert!(Stats::parse("20 packets received by filter").is_none());
    }

    fn pcap_with(frames: &[Vec<u8>]) -> Vec<u8> {
        let mut d2 = Vec::new();
        d2.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        d2.extend_from_slice(&2u16.to_le_bytes());
        d2.extend_from_slice(&4u16.to_le_bytes());
        d2.extend_from_slice(&[0; 8]);
        d2.extend_from_slice(&65535u32.to_le_bytes());
        d2.extend_from_slice(&1u32.to_le_bytes());
        for f in frames {
            d2.extend_from_slice(&[0; 8]);
            let n = u32::try_from(f.len()).unwrap();
            d2.extend_from_slice(&n.to_le_bytes());
            d2.extend_from_slice(&n.to_le_bytes());
            d2.extend_from_slice(f);
        }
        d2
    }

    #[test]
    fn reads_ipv4_udp_with_a_mapped_destination() {
        let mut f = vec![0u8; 14 + 24 + 8 + 5];
        f[12] = 0x08;
        f[14] = 0x46; // IHL 6: one option word
        f[23] = 17;
        f[30..34].copy_from_slice(&[239, 92, 128, 9]);
        f[14 + 24 + 4..14 + 24 + 6].copy_from_slice(&13u16.to_be_bytes());
        f[14 + 24 + 8..].copy_from_slice(b"hello");
        let u = udp(&f).unwrap();
        assert_eq!(u.dst, "::ffff:239.92.128.9".parse::<Ipv6Addr>().unwrap());
        assert_eq!((u.len, u.payload), (5, &b"hello"[..]));
        assert!(udp6(&f).is_none());
        assert!(udp4(&f[..30]).is_none());
        assert_eq!(udp4_len(&f), Some(5));
    }

    fn udp6_frame(payload: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 40 + 8];
        f[12] = 0x86;
        f[13] = 0xdd;
        f[14 + 6] = 17;
        f[14 + 44..14 + 46].copy_from_slice(&(payload + 8).to_be_bytes());
        f
    }

    #[test]
    fn counts_udp_frames() {
        let d = pcap_with(&[udp6_frame(100), udp6_frame(20), vec![0; 60]]);
        let c = count_pcap(&d).unwrap();
        assert_eq!((c.datagrams, c.bytes, c.other_frames), (2, 120, 1));
    }

    #[test]
    fn garbage_never_panics() {
        assert!(count_pcap(&[]).is_none());
        assert!(count_pcap(&[0xd4, 0xc3, 0xb2, 0xa1]).is_none());
        let mut d = pcap_with(&[udp6_frame(5)]);
        // Claim a huge record length: must stop, not allocate or panic.
        d[24 + 8..24 + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(count_pcap(&d).unwrap().datagrams, 0);
        for cut in 0..d.len() {
            let _ = count_pcap(&d[..cut]);
        }
    }

    #[test]
    fn parses_snmp6() {
        let t = "Udp6InDatagrams                 \t7\nUdp6NoPorts 2\nUdp6InCsumErrors 1\n";
        let c = UdpCounters::parse(t);
        assert_eq!((c.in_datagrams, c.no_ports, c.in_csum_errors), (7, 2, 1));
    }
}
