//! Counting datagrams from outside the process under test: tcpdump captures parsed
//! here, and the per-namespace UDP counters of `/proc/net/snmp6`.

use std::io::{BufRead, BufReader};
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
    /// Start `tcpdump -Q DIRECTION` on `ifname` in `netns`, writing to `file`, and wait
    /// until it is really capturing. `direction` is "in", "out" or "inout".
    pub(crate) fn start(
        netns: &str,
        ifname: &str,
        direction: &str,
        filter: &str,
        file: &Path,
        pids: PidList,
    ) -> Result<Capture> {
        let file_s = file.display().to_string();
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
            "256",
            "-B",
            "4096",
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

    /// Wait until the capture file stops growing (50 ms quiet, at most 2 s), stop
    /// tcpdump and count what it wrote.
    pub fn stop(mut self) -> Result<Counts> {
        let mut last = file_len(&self.file);
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            std::thread::sleep(Duration::from_millis(50));
            let now = file_len(&self.file);
            if now == last || Instant::now() > deadline {
                break;
            }
            last = now;
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
        let mut c = count_pcap(&data)
            .ok_or_else(|| LabError::Parse(format!("capture file of {}", self.place)))?;
        c.kernel_dropped = kernel_dropped;
        Ok(c)
    }
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn u32_at(d: &[u8], at: usize, le: bool) -> Option<u32> {
    let b: [u8; 4] = d.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(if le {
        u32::from_le_bytes(b)
    } else {
        u32::from_be_bytes(b)
    })
}

/// Count IPv6/UDP datagrams in a classic pcap file with Ethernet link type. Returns
/// `None` if the file is not such a pcap. A truncated last record is ignored. Never
/// panics, whatever the input.
pub fn count_pcap(data: &[u8]) -> Option<Counts> {
    let magic = u32_at(data, 0, true)?;
    let le = match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d => true,
        0xd4c3_b2a1 | 0x4d3c_b2a1 => false,
        _ => return None,
    };
    if u32_at(data, 20, le)? != 1 {
        return None; // not LINKTYPE_ETHERNET
    }
    let mut counts = Counts::default();
    let mut at = 24usize;
    while let Some(incl) = u32_at(data, at + 8, le) {
        let start = at + 16;
        let Some(end) = usize::try_from(incl)
            .ok()
            .and_then(|n| start.checked_add(n))
        else {
            break;
        };
        let Some(frame) = data.get(start..end) else {
            break;
        };
        match udp_payload_len(frame) {
            Some(n) => {
                counts.datagrams += 1;
                counts.bytes += u64::from(n);
            }
            None => counts.other_frames += 1,
        }
        at = end;
    }
    Some(counts)
}

/// UDP payload length of an Ethernet/IPv6/UDP frame without extension headers.
fn udp_payload_len(frame: &[u8]) -> Option<u16> {
    let ethertype = u16::from_be_bytes(frame.get(12..14)?.try_into().ok()?);
    if ethertype != 0x86dd || *frame.get(14 + 6)? != 17 {
        return None;
    }
    let udp_len = u16::from_be_bytes(frame.get(14 + 40 + 4..14 + 40 + 6)?.try_into().ok()?);
    udp_len.checked_sub(8)
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
