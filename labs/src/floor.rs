//! The floor of a replicated put on a lab: what the kernel and the disk alone
//! take for the steps every put of subcast's shape needs, with no storage
//! system in the way. A put of R copies negotiates once with its targets (a
//! multicast out, R answers back), sends its object once to a group that
//! reaches exactly them, and each target makes its copy durable before it
//! answers. [`measure`] times each of those steps on the lab's own hosts,
//! links and disk:
//!
//! - **round**: a 64-octet datagram to the group, each target answering with a
//!   unicast datagram from a thread blocked in `poll`; until the R-th answer.
//! - **pass**: the object as MTU-sized datagrams in UDP GSO sends to the group,
//!   each target answering once it has every datagram; until the R-th answer.
//!   The sends are shared by `senders` threads (two by default, as a subcast
//!   writer sends from two: `storage-node/src/send_thread.rs`): on a veth each
//!   send carries the frames through the bridges on its own CPU.
//! - **disk**: R threads at once, each writing the object into a temporary file
//!   of its own directory, renaming it into place and fsyncing the file and the
//!   directory (both at once, as the storage node's store does); until all R
//!   are done.
//! - **ceiling**: GSO sends to the group from `senders` threads as fast as the
//!   socket takes them for a few seconds; the slowest target's bytes over its
//!   own time.
//!
//! A floor sample is the sum of one round, one pass and one disk sample; its
//! percentiles bound what any put with that shape can reach on this machine
//! (subcast's puts also wait for a version lookup, a group and a PUT_READY).
//! The group is a static one ([`Lab::static_group`], address [`FLOOR_GROUP`]),
//! removed again afterwards from Linux bridges (an Open vSwitch switch keeps
//! its flow until the lab goes); the datagrams go over IPv6 on every lab.

use std::io::{self, IoSliceMut};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use quinn_udp::{RecvMeta, Transmit, UdpSockRef, UdpSocketState};
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use serde::Serialize;
use socket2::{Domain, Protocol, Socket, Type};

use crate::{Lab, LabError, Result, netns};

/// The group the floor's datagrams go to: outside the negotiating groups'
/// defaults (`ff05::5c:1:n`) and the rendezvous pool (`ff05::5c:2:0/112`).
pub const FLOOR_GROUP: Ipv6Addr = Ipv6Addr::new(0xff05, 0, 0, 0, 0, 0x5c, 3, 1);
/// The targets' port (the writer's is any free one).
pub const FLOOR_PORT: u16 = 47_031;
/// IPv6 and UDP headers: a datagram's payload is the MTU less these.
const IPV6_UDP: usize = 48;
/// The most one UDP GSO send may carry (the kernel's limit for one datagram
/// before segmentation, less headers).
const MAX_GSO_BYTES: usize = 65_000;
/// How long a round may take before the floor gives up on a lost datagram.
const STEP_TIMEOUT: Duration = Duration::from_secs(2);
/// The same for a pass (a lost datagram there is far likelier).
const PASS_TIMEOUT: Duration = Duration::from_millis(500);

/// What to measure.
#[derive(Debug, Clone)]
pub struct FloorOptions {
    /// Octets of the object a pass and a disk sample carry.
    pub object_size: usize,
    /// Samples of round, pass and disk each.
    pub samples: usize,
    /// How long the ceiling's sends run.
    pub ceiling: Duration,
    /// Threads that share a pass's sends and each send the ceiling's.
    pub senders: usize,
}

impl Default for FloorOptions {
    fn default() -> Self {
        FloorOptions {
            object_size: 256 * 1024,
            samples: 100,
            ceiling: Duration::from_secs(3),
            senders: 2,
        }
    }
}

/// Nearest-rank percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Millis {
    pub p50: f64,
    pub p99: f64,
}

impl Millis {
    /// Of `samples` (durations); NaN for none.
    pub fn of(samples: &[Duration]) -> Millis {
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        let rank = |p: f64| -> f64 {
            if ms.is_empty() {
                return f64::NAN;
            }
            let i = ((p * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1;
            ms[i]
        };
        Millis {
            p50: rank(0.50),
            p99: rank(0.99),
        }
    }
}

/// What [`measure`] found.
#[derive(Debug, Clone, Serialize)]
pub struct Floor {
    pub writer: String,
    pub targets: Vec<String>,
    pub object_size: usize,
    /// UDP payload octets per datagram (the lab's MTU less IPv6 and UDP).
    pub datagram_payload: usize,
    pub samples: usize,
    /// Threads that sent a pass and the ceiling.
    pub senders: usize,
    pub round_ms: Millis,
    pub pass_ms: Millis,
    pub disk_ms: Millis,
    /// Per sample, round + pass + disk.
    pub put_ms: Millis,
    /// The slowest target's MiB/s during the ceiling's sends.
    pub ceiling_mib_s: f64,
    /// Every target's, in `targets` order.
    pub ceiling_per_target_mib_s: Vec<f64>,
    /// Datagrams of the ceiling's sends some target did not get.
    pub ceiling_lost_datagrams: u64,
    /// Round and pass samples taken again because an answer did not come
    /// in time (2 s for a round, 0.5 s for a pass: a datagram lost).
    pub retries: u32,
}

/// Measures the floor from `writer` to `targets` (see the module text); `dir`
/// holds one scratch directory per target for the disk samples (removed after).
pub fn measure(
    lab: &Lab,
    writer: &str,
    targets: &[&str],
    dir: &Path,
    opts: &FloorOptions,
) -> Result<Floor> {
    if targets.is_empty() || opts.samples == 0 || opts.object_size == 0 {
        return Err(LabError::Unsupported(
            "the floor needs at least one target, one sample and a non-empty object".into(),
        ));
    }
    let payload = lab.topology().mtu() as usize - IPV6_UDP;
    lab.static_group(FLOOR_GROUP, targets)?;
    let out = (|| -> Result<Floor> {
        let w = lab.try_host(writer)?;
        let wsock = writer_socket(&w.netns, w.ifindex)?;
        let waddr = SocketAddr::V6(SocketAddrV6::new(
            w.ipv6,
            wsock.local_addr().map_err(io_err("writer socket"))?.port(),
            0,
            0,
        ));
        let stop = Arc::new(AtomicBool::new(false));
        let mut servers = Vec::new();
        for t in targets {
            let s = lab.udp_socket(t, FLOOR_PORT, &[FLOOR_GROUP])?;
            let stop = stop.clone();
            servers.push(thread::spawn(move || serve(s, waddr, &stop)));
        }
        let mut w = Writer::new(wsock, payload, targets.len(), opts.senders)?;
        let run = (|| -> Result<Floor> {
            let dst = SocketAddr::V6(SocketAddrV6::new(FLOOR_GROUP, FLOOR_PORT, 0, 0));
            w.warm_up(dst)?;
            let mut rounds = Vec::new();
            let mut passes = Vec::new();
            for _ in 0..opts.samples {
                rounds.push(w.retried(|w, id| w.round(dst, id))?);
            }
            for _ in 0..opts.samples {
                let pass = w.retried(|w, id| w.pass(dst, id, opts.object_size));
                passes.push(pass.map_err(|e| explain_lost_pass(lab, e))?);
            }
            let disks = disk_samples(dir, targets.len(), opts.object_size, opts.samples)?;
            let puts: Vec<Duration> = (0..opts.samples)
                .map(|i| rounds[i] + passes[i] + disks[i])
                .collect();
            let (per, lost) = w.ceiling(dst, opts.ceiling)?;
            Ok(Floor {
                writer: writer.to_string(),
                targets: targets.iter().map(|t| t.to_string()).collect(),
                object_size: opts.object_size,
                datagram_payload: payload,
                samples: opts.samples,
                senders: opts.senders,
                round_ms: Millis::of(&rounds),
                pass_ms: Millis::of(&passes),
                disk_ms: Millis::of(&disks),
                put_ms: Millis::of(&puts),
                ceiling_mib_s: per.iter().copied().fold(f64::INFINITY, f64::min),
                ceiling_per_target_mib_s: per,
                ceiling_lost_datagrams: lost,
                retries: w.retries,
            })
        })();
        stop.store(true, Ordering::Relaxed);
        for s in servers {
            let _ = s.join();
        }
        run
    })();
    for (sw, ports) in lab.static_group_ports(targets)? {
        if lab.try_switch(&sw)?.ovs.is_none() {
            for p in ports {
                let _ = lab.mdb_del(&sw, &p, FLOOR_GROUP);
            }
        }
    }
    out
}

/// A pass that lost datagrams three times: on Open vSwitch's userspace
/// datapath (the lab's OVS switches) a burst of a whole object overflows its
/// queues, so the floor is only measured where every switch is a Linux bridge.
fn explain_lost_pass(lab: &Lab, e: LabError) -> LabError {
    let ovs: Vec<&str> = lab
        .switches()
        .iter()
        .filter(|(_, s)| s.ovs.is_some())
        .map(|(n, _)| n.as_str())
        .collect();
    match e {
        LabError::Timeout(t) if !ovs.is_empty() => LabError::Unsupported(format!(
            "{t}: every pass of the object lost datagrams three times in a row; switches {} \
             run Open vSwitch's userspace datapath, which drops bursts in this lab, so the \
             floor (no repair, by design) is measured on topologies of Linux bridges only",
            ovs.join(", ")
        )),
        e => e,
    }
}

fn io_err(what: &'static str) -> impl FnOnce(io::Error) -> LabError {
    move |e| LabError::io(format!("floor: {what}"), e)
}

/// The writer's socket, made in its namespace: multicast out of `eth0`,
/// non-blocking, any port.
fn writer_socket(ns: &str, ifindex: u32) -> Result<UdpSocket> {
    netns::in_netns(ns, move || -> io::Result<UdpSocket> {
        let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
        s.set_only_v6(true)?;
        s.set_multicast_if_v6(ifindex)?;
        s.set_multicast_hops_v6(8)?;
        s.set_multicast_loop_v6(false)?;
        s.set_send_buffer_size(8 << 20)?;
        s.bind(&SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 0, 0, 0).into())?;
        s.set_nonblocking(true)?;
        Ok(s.into())
    })?
    .map_err(io_err("writer socket"))
}

/// Datagram kinds (the first octet).
const QUERY: u8 = b'Q';
const DATA: u8 = b'D';
const BLAST: u8 = b'B';
const END: u8 = b'E';
const ANSWER: u8 = b'A';
/// A target's count of the ceiling's datagrams, its answer to END (a kind of
/// its own: a late answer to a round or a pass never counts as one).
const TALLY: u8 = b'T';
/// How long the writer waits for the targets' tallies before it sends END
/// again: END follows the blast through queues that may still be full
/// (a shaped link drops what its queue cannot hold), so one may be lost.
const END_RESEND: Duration = Duration::from_millis(100);

/// Waits until `sock` is readable (true) or `timeout` passed (false).
fn readable(sock: &UdpSocket, timeout: Duration) -> io::Result<bool> {
    let t = Timespec::try_from(timeout).map_err(io::Error::other)?;
    let mut fds = [PollFd::new(sock, PollFlags::IN)];
    Ok(poll(&mut fds, Some(&t))? > 0)
}

/// A datagram: kind, then three big-endian u32 fields.
fn header(kind: u8, a: u32, b: u32, c: u32) -> [u8; 13] {
    let mut h = [0u8; 13];
    h[0] = kind;
    h[1..5].copy_from_slice(&a.to_be_bytes());
    h[5..9].copy_from_slice(&b.to_be_bytes());
    h[9..13].copy_from_slice(&c.to_be_bytes());
    h
}

fn field(d: &[u8], i: usize) -> u32 {
    d.get(1 + 4 * i..5 + 4 * i)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_be_bytes)
}

/// A target: answers queries at once, and a pass once it has every datagram
/// of it; counts the ceiling's datagrams and answers END with them.
fn serve(sock: UdpSocket, writer: SocketAddr, stop: &AtomicBool) -> io::Result<()> {
    sock.set_nonblocking(true)?;
    // As the storage node's: a pass must not overflow the queue.
    if rustix::net::sockopt::set_socket_recv_buffer_size_force(&sock, 32 << 20).is_err() {
        socket2::SockRef::from(&sock).set_recv_buffer_size(32 << 20)?;
    }
    let state = UdpSocketState::new(UdpSockRef::from(&sock))?;
    let size = (state.gro_segments().max(1) * 1500).max(65_536);
    let mut bufs = vec![vec![0u8; size]; 32];
    let mut meta = vec![RecvMeta::default(); 32];
    let (mut pass, mut got) = (u32::MAX, 0u32);
    let (mut blast_n, mut blast_bytes) = (0u64, 0u64);
    let mut blast_t: Option<(Instant, Instant)> = None;
    while !stop.load(Ordering::Relaxed) {
        if !readable(&sock, Duration::from_millis(50))? {
            continue;
        }
        let mut slices: Vec<IoSliceMut<'_>> = bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
        let n = match state.recv(UdpSockRef::from(&sock), &mut slices, &mut meta) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        let now = Instant::now();
        for (m, buf) in meta.iter().zip(slices.iter()).take(n) {
            for d in buf[..m.len].chunks(m.stride.max(1)) {
                match d.first() {
                    Some(&QUERY) => {
                        let _ = sock.send_to(&header(ANSWER, field(d, 0), 0, 0), writer);
                    }
                    Some(&DATA) => {
                        let (id, total) = (field(d, 0), field(d, 2));
                        if id != pass {
                            (pass, got) = (id, 0);
                        }
                        got += 1;
                        if got == total {
                            let _ = sock.send_to(&header(ANSWER, id, 0, 0), writer);
                        }
                    }
                    Some(&BLAST) => {
                        blast_n += 1;
                        blast_bytes += d.len() as u64;
                        blast_t = Some((blast_t.map_or(now, |t| t.0), now));
                    }
                    Some(&END) => {
                        let us = blast_t.map_or(0, |(a, b)| (b - a).as_micros());
                        let us = u32::try_from(us).unwrap_or(u32::MAX);
                        let kib = u32::try_from(blast_bytes / 1024).unwrap_or(u32::MAX);
                        let n = u32::try_from(blast_n).unwrap_or(u32::MAX);
                        let _ = sock.send_to(&header(TALLY, kib, us, n), writer);
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

/// The writer's side: sends and waits for the targets' answers.
struct Writer {
    sock: UdpSocket,
    state: UdpSocketState,
    payload: usize,
    targets: usize,
    /// Threads a pass's sends are shared by.
    senders: usize,
    buf: Vec<u8>,
    /// The next sample's id.
    next: u32,
    retries: u32,
}

impl Writer {
    fn new(sock: UdpSocket, payload: usize, targets: usize, senders: usize) -> Result<Writer> {
        let state =
            UdpSocketState::new(UdpSockRef::from(&sock)).map_err(io_err("writer socket"))?;
        Ok(Writer {
            sock,
            state,
            payload,
            targets,
            senders: senders.max(1),
            buf: Vec::new(),
            next: 0,
            retries: 0,
        })
    }

    /// Sends `self.buf` as datagrams of `seg` octets (GSO when the socket
    /// can), its runs shared by `self.senders` threads.
    fn send(&self, dst: SocketAddr, seg: usize) -> Result<()> {
        let runs: Vec<&[u8]> = self.buf.chunks(seg * self.gso(seg)).collect();
        let n = self.senders.min(runs.len()).max(1);
        if n == 1 {
            return self.send_runs(dst, seg, &runs);
        }
        let mine = |k: usize| -> Vec<&[u8]> { runs.iter().skip(k).step_by(n).copied().collect() };
        on_threads(n, |k| self.send_runs(dst, seg, &mine(k))).map(drop)
    }

    /// Sends `runs`, each a datagram or a GSO run of datagrams of `seg` octets.
    fn send_runs(&self, dst: SocketAddr, seg: usize, runs: &[&[u8]]) -> Result<()> {
        for &run in runs {
            if run.len() <= seg {
                // One datagram: a plain send (no control messages).
                self.until_sent(|| self.sock.send_to(run, dst).map(drop))?;
                continue;
            }
            let t = Transmit {
                destination: dst,
                ecn: None,
                contents: run,
                segment_size: Some(seg),
                src_ip: None,
            };
            self.until_sent(|| self.state.try_send(UdpSockRef::from(&self.sock), &t))?;
        }
        Ok(())
    }

    /// Calls `send` until the socket takes it, waiting for room in between.
    fn until_sent(&self, mut send: impl FnMut() -> io::Result<()>) -> Result<()> {
        loop {
            match send() {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let mut fds = [PollFd::new(&self.sock, PollFlags::OUT)];
                    poll(&mut fds, None).map_err(|e| io_err("poll")(e.into()))?;
                }
                Err(e) => return Err(io_err("send")(e)),
            }
        }
    }

    /// Datagrams of `seg` octets one send may carry.
    fn gso(&self, seg: usize) -> usize {
        self.state
            .max_gso_segments()
            .min(MAX_GSO_BYTES / seg.max(1))
            .max(1)
    }

    /// Waits for one answer per target to `id`; their fields.
    fn answers(&self, id: u32, by: Instant) -> Result<Vec<[u32; 3]>> {
        let mut got = Vec::new();
        if !self.collect(|d| d[0] == ANSWER && field(d, 0) == id, &mut got, by)? {
            return Err(LabError::Timeout(format!(
                "floor: {} of {} answers to {id} in time (a datagram lost?)",
                got.len(),
                self.targets
            )));
        }
        Ok(got.into_iter().map(|(_, f)| f).collect())
    }

    /// Sends END (`self.buf`) until every target has answered it with its
    /// tally, again after each [`END_RESEND`] without all of them.
    fn tallies(&self, dst: SocketAddr, by: Instant) -> Result<Vec<[u32; 3]>> {
        let mut got = Vec::new();
        for sends in 1u32.. {
            self.send(dst, self.buf.len())?;
            let resend = (Instant::now() + END_RESEND).min(by);
            if self.collect(|d| d[0] == TALLY, &mut got, resend)? {
                break;
            }
            if Instant::now() >= by {
                return Err(LabError::Timeout(format!(
                    "floor: {} of {} targets told their ceiling counts in time \
                     (END sent {sends} times)",
                    got.len(),
                    self.targets,
                )));
            }
            tracing::info!(
                sends,
                tallies = got.len(),
                "floor: END sent again (the blast's queues dropped it)"
            );
        }
        Ok(got.into_iter().map(|(_, f)| f).collect())
    }

    /// Adds to `got` the fields of datagrams that `wanted`, one per target
    /// (by its address, the first it sent), until every target is in it
    /// (true) or `until` passed (false).
    fn collect(
        &self,
        wanted: impl Fn(&[u8]) -> bool,
        got: &mut Vec<(SocketAddr, [u32; 3])>,
        until: Instant,
    ) -> Result<bool> {
        let mut b = [0u8; 64];
        while got.len() < self.targets {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() || !readable(&self.sock, left).map_err(io_err("poll"))? {
                return Ok(false);
            }
            while let Ok((n, from)) = self.sock.recv_from(&mut b) {
                let d = &b[..n];
                if n > 0 && wanted(d) && !got.iter().any(|(a, _)| *a == from) {
                    got.push((from, [field(d, 0), field(d, 1), field(d, 2)]));
                }
            }
        }
        Ok(true)
    }

    /// Rounds until one gets every answer (neighbour discovery and the
    /// targets' sockets settle), for at most 10 s; not counted.
    fn warm_up(&mut self, dst: SocketAddr) -> Result<()> {
        let t0 = Instant::now();
        loop {
            let id = self.id();
            match self.round_within(dst, id, Duration::from_millis(200)) {
                Ok(_) => return Ok(()),
                Err(e) if t0.elapsed() > Duration::from_secs(10) => return Err(e),
                Err(_) => {}
            }
        }
    }

    fn id(&mut self) -> u32 {
        self.next = self.next.wrapping_add(1);
        self.next
    }

    /// `sample` with a fresh id, again (at most three times in all) when an
    /// answer does not come.
    fn retried(
        &mut self,
        mut sample: impl FnMut(&mut Writer, u32) -> Result<Duration>,
    ) -> Result<Duration> {
        let mut tries = 0;
        loop {
            let id = self.id();
            match sample(self, id) {
                Err(LabError::Timeout(_)) if tries < 2 => {
                    tries += 1;
                    self.retries += 1;
                }
                r => return r,
            }
        }
    }

    fn round(&mut self, dst: SocketAddr, i: u32) -> Result<Duration> {
        self.round_within(dst, i, STEP_TIMEOUT)
    }

    fn round_within(&mut self, dst: SocketAddr, i: u32, wait: Duration) -> Result<Duration> {
        self.buf.clear();
        self.buf.extend_from_slice(&header(QUERY, i, 0, 0));
        self.buf.resize(64, 0);
        let t0 = Instant::now();
        self.send(dst, 64)?;
        self.answers(i, t0 + wait)?;
        Ok(t0.elapsed())
    }

    fn pass(&mut self, dst: SocketAddr, i: u32, size: usize) -> Result<Duration> {
        let n = size.div_ceil(self.payload - 13);
        let total = u32::try_from(n).unwrap_or(u32::MAX);
        self.buf.clear();
        let mut left = size;
        for k in 0..n {
            let take = left.min(self.payload - 13);
            self.buf
                .extend_from_slice(&header(DATA, i, k as u32, total));
            self.buf.resize(self.buf.len() + take, 0x5c);
            left -= take;
        }
        // Every datagram full-sized but the last: one GSO size fits all runs.
        let t0 = Instant::now();
        self.send(dst, self.payload)?;
        self.answers(i, t0 + PASS_TIMEOUT)?;
        Ok(t0.elapsed())
    }

    /// Per target MiB/s, and datagrams some target missed.
    fn ceiling(&mut self, dst: SocketAddr, run: Duration) -> Result<(Vec<f64>, u64)> {
        let gso = self.gso(self.payload);
        self.buf.clear();
        for _ in 0..gso {
            self.buf.extend_from_slice(&header(BLAST, 0, 0, 0));
            self.buf.resize(self.buf.len() + self.payload - 13, 0x5c);
        }
        let t0 = Instant::now();
        let blast = || -> Result<u64> {
            let mut sent = 0u64;
            while t0.elapsed() < run {
                self.send_runs(dst, self.payload, &[&self.buf])?;
                sent += gso as u64;
            }
            Ok(sent)
        };
        let sent: u64 = on_threads(self.senders, |_| blast())?.into_iter().sum();
        // END follows the blast's path, through queues that may still be full.
        let end = header(END, 0, 0, 0);
        self.buf.clear();
        self.buf.extend_from_slice(&end);
        let got = self.tallies(dst, Instant::now() + STEP_TIMEOUT * 5)?;
        let per: Vec<f64> = got
            .iter()
            .map(|[kib, us, _]| (*kib as f64 / 1024.0) / (f64::from(*us).max(1.0) / 1e6))
            .collect();
        let lost = got
            .iter()
            .map(|[_, _, n]| sent.saturating_sub(u64::from(*n)))
            .sum();
        Ok((per, lost))
    }
}

/// `f(0)` here and `f(1)` .. `f(n - 1)` on threads of their own, all at once;
/// their results in that order (the first error if any failed).
fn on_threads<T: Send>(n: usize, f: impl Fn(usize) -> Result<T> + Sync) -> Result<Vec<T>> {
    let f = &f;
    thread::scope(|s| {
        let others: Vec<_> = (1..n).map(|k| s.spawn(move || f(k))).collect();
        let mut out = vec![f(0)?];
        for h in others {
            out.push(
                h.join()
                    .unwrap_or_else(|_| Err(io_err("send")(io::Error::other("sender panicked"))))?,
            );
        }
        Ok(out)
    })
}

/// `samples` times, `copies` threads at once each make one durable copy of
/// `size` octets in its own directory under `dir`; the time until all are done.
fn disk_samples(dir: &Path, copies: usize, size: usize, samples: usize) -> Result<Vec<Duration>> {
    let dirs: Vec<PathBuf> = (0..copies).map(|i| dir.join(format!("copy{i}"))).collect();
    for d in &dirs {
        std::fs::create_dir_all(d).map_err(io_err("disk directory"))?;
    }
    let data = vec![0x5cu8; size];
    let mut out = Vec::with_capacity(samples);
    for i in 0..samples {
        let t0 = Instant::now();
        thread::scope(|s| -> Result<()> {
            let hs: Vec<_> = dirs
                .iter()
                .map(|d| s.spawn(|| durable_copy(d, &format!("c{i}"), &data)))
                .collect();
            for h in hs {
                h.join()
                    .unwrap_or_else(|_| Err(io::Error::other("disk thread panicked")))
                    .map_err(io_err("durable copy"))?;
            }
            Ok(())
        })?;
        out.push(t0.elapsed());
    }
    for d in &dirs {
        let _ = std::fs::remove_dir_all(d);
    }
    Ok(out)
}

/// Write `data` to `dir/.name.tmp`, rename it to `dir/name`, fsync the file and
/// `dir` at the same time.
fn durable_copy(dir: &Path, name: &str, data: &[u8]) -> io::Result<()> {
    use std::io::Write as _;
    let tmp = dir.join(format!(".{name}.tmp"));
    let dest = dir.join(name);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    std::fs::rename(&tmp, &dest)?;
    thread::scope(|s| {
        let d = s.spawn(|| std::fs::File::open(dir).and_then(|d| d.sync_all()));
        let r = f.sync_all();
        d.join()
            .unwrap_or_else(|_| Err(io::Error::other("directory fsync panicked")))
            .and(r)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(
            Millis::of(&d),
            Millis {
                p50: 50.0,
                p99: 99.0
            }
        );
        assert!(Millis::of(&[]).p50.is_nan());
    }

    #[test]
    fn header_fields_round_trip() {
        let h = header(DATA, 7, 0x0102_0304, u32::MAX);
        assert_eq!(
            (h[0], field(&h, 0), field(&h, 1), field(&h, 2)),
            (DATA, 7, 0x0102_0304, u32::MAX)
        );
        assert_eq!(field(&h[..6], 1), 0, "a short datagram reads as 0");
    }

    /// A target that lost END (a full queue dropped it) still tells its
    /// tally: the writer sends END again. A late answer to a round, or a
    /// second tally from the same target, is not a tally of another.
    #[test]
    fn end_is_sent_again_until_every_target_told_its_tally() {
        let target = UdpSocket::bind("[::1]:0").unwrap();
        let writer = UdpSocket::bind("[::1]:0").unwrap();
        writer.set_nonblocking(true).unwrap();
        let (dst, from) = (target.local_addr().unwrap(), writer.local_addr().unwrap());
        let other = UdpSocket::bind("[::1]:0").unwrap();
        target
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let peer = thread::spawn(move || {
            let mut b = [0u8; 64];
            // The first END is lost; a stale answer and the second target's
            // tally come meanwhile.
            let n = target.recv(&mut b).unwrap();
            assert_eq!(b[..n].first(), Some(&END));
            target.send_to(&header(ANSWER, 9, 0, 0), from).unwrap();
            other.send_to(&header(TALLY, 2, 2, 2), from).unwrap();
            other.send_to(&header(TALLY, 3, 3, 3), from).unwrap();
            let n = target.recv(&mut b).unwrap();
            assert_eq!(b[..n].first(), Some(&END), "END again");
            target.send_to(&header(TALLY, 1, 1, 1), from).unwrap();
        });
        let mut w = Writer::new(writer, 1200, 2, 1).unwrap();
        w.buf.extend_from_slice(&header(END, 0, 0, 0));
        let mut got = w
            .tallies(dst, Instant::now() + Duration::from_secs(10))
            .unwrap();
        peer.join().unwrap();
        got.sort();
        assert_eq!(got, vec![[1, 1, 1], [2, 2, 2]]);
    }

    #[test]
    fn disk_samples_leave_nothing_behind() {
        let dir = std::env::temp_dir().join(format!("subcast-floor-{}", std::process::id()));
        let s = disk_samples(&dir, 3, 4096, 4).unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
