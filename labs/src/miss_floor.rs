//! The floor of a rendezvous miss on a lab: what the kernel alone takes for
//! the datagrams a fresh group needs, with no controller, agent, store or
//! switch update in the way. A miss is a request from a storage node to the
//! controller, one instruction from the controller to each agent, each agent's
//! acknowledgement back, and the grant to the node. [`measure`] times that
//! chain of datagrams between the same namespaces and addresses the real
//! daemons use, from threads blocked in `recv` that do nothing but answer:
//!
//! - the **client** sends a 64-octet request to the relay and waits for the
//!   grant;
//! - the **relay** (where the controller runs) sends one 64-octet datagram to
//!   every responder in one `sendmmsg`, waits for every answer, then answers
//!   the client;
//! - each **responder** (where an agent runs) answers at once.
//!
//! Its percentiles bound what any miss can reach with those placements on this
//! machine; the rest of a real miss is the daemons' own work (decode, decide,
//! netlink, SQLite) and their waits for a CPU.

use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny, sendmmsg};
use serde::Serialize;

use crate::stress::quantile;
use crate::{LabError, Result, netns};

/// Octets of every datagram of the chain (about a SET or an ACK).
const LEN: usize = 64;
/// How long a step may wait before the chain is declared lost.
const STEP_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the chain's ends are: a namespace and an address in it.
#[derive(Debug, Clone)]
pub struct Place {
    pub netns: String,
    pub addr: Ipv6Addr,
}

/// The chain's percentiles, microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct MissFloor {
    pub samples: usize,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub responders: usize,
    pub what: &'static str,
}

fn io_err(what: &'static str) -> impl FnOnce(io::Error) -> LabError {
    move |e| LabError::io(format!("miss floor: {what}"), e)
}

/// A blocking socket bound to `addr` (any port) in `ns`, with a receive timeout.
fn socket_in(ns: &str, addr: Ipv6Addr) -> Result<UdpSocket> {
    netns::in_netns(ns, move || -> io::Result<UdpSocket> {
        let s = UdpSocket::bind(SocketAddrV6::new(addr, 0, 0, 0))?;
        s.set_read_timeout(Some(STEP_TIMEOUT))?;
        Ok(s)
    })?
    .map_err(io_err("socket"))
}

/// `samples` chains client -> relay -> every responder -> relay -> client
/// (after `warmup` untimed ones); their percentiles.
pub fn measure(
    client: &Place,
    relay: &Place,
    responders: &[Place],
    warmup: usize,
    samples: usize,
) -> Result<MissFloor> {
    if responders.is_empty() || samples == 0 {
        return Err(LabError::Unsupported(
            "miss floor: needs at least one responder and one sample".into(),
        ));
    }
    let c = socket_in(&client.netns, client.addr)?;
    let r = socket_in(&relay.netns, relay.addr)?;
    let rs: Vec<UdpSocket> = responders
        .iter()
        .map(|p| socket_in(&p.netns, p.addr))
        .collect::<Result<_>>()?;
    let relay_at = r.local_addr().map_err(io_err("relay address"))?;
    let responder_at: Vec<SocketAddr> = rs
        .iter()
        .map(|s| s.local_addr())
        .collect::<io::Result<_>>()
        .map_err(io_err("responder address"))?;
    let total = warmup + samples;
    let times = thread::scope(|s| -> Result<Vec<Duration>> {
        let mut answering = Vec::new();
        for sock in &rs {
            answering.push(s.spawn(move || answer(sock, total)));
        }
        let relaying = s.spawn(|| relay_loop(&r, &responder_at, total));
        let mut times = Vec::with_capacity(samples);
        let mut buf = [0u8; LEN];
        let mut failed = None;
        for i in 0..total {
            let t = Instant::now();
            if let Err(e) = c.send_to(&[b'R'; LEN], relay_at) {
                failed = Some(io_err("client send")(e));
                break;
            }
            if let Err(e) = c.recv_from(&mut buf) {
                failed = Some(io_err("client waiting for the relay")(e));
                break;
            }
            if i >= warmup {
                times.push(t.elapsed());
            }
        }
        // Whatever went wrong, the others end by their own timeouts.
        let relay_res = joined(relaying, "relay");
        for h in answering {
            joined(h, "responder")?;
        }
        if let Some(e) = failed {
            return Err(e);
        }
        relay_res?;
        Ok(times)
    })?;
    let us: Vec<u64> = times.iter().map(|d| d.as_micros() as u64).collect();
    let q = |p| quantile(&us, p).unwrap_or(0);
    Ok(MissFloor {
        samples,
        p50_us: q(0.50),
        p90_us: q(0.90),
        p99_us: q(0.99),
        responders: responders.len(),
        what: "the datagrams of a miss with nothing else: request to where the controller runs, \
               one datagram to where every agent runs in one sendmmsg, every answer back, the grant; \
               threads blocked in recv that only answer",
    })
}

/// What waking a thread costs on this machine: UDP ping-pong round trips on
/// loopback between two threads of this process, p50 microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct WakeCost {
    pub samples: usize,
    /// Both threads on the first CPU this process may use: each wakeup hands
    /// the CPU over.
    pub same_cpu_p50_us: u64,
    /// One thread on each of the first two CPUs: each wakeup reaches a CPU
    /// that is idle (halted, on a virtual machine) or busy.
    pub cross_cpu_p50_us: Option<u64>,
    /// Where the scheduler puts them.
    pub unpinned_p50_us: u64,
    pub what: &'static str,
}

/// [`WakeCost`] over `samples` round trips each (after 100 untimed).
pub fn wake_cost(samples: usize) -> Result<WakeCost> {
    use rustix::thread::{CpuSet, sched_getaffinity};
    let allowed = sched_getaffinity(None).map_err(|e| io_err("sched_getaffinity")(e.into()))?;
    let cpus: Vec<usize> = (0..CpuSet::MAX_CPU)
        .filter(|&c| allowed.is_set(c))
        .collect();
    let first = *cpus
        .first()
        .ok_or_else(|| io_err("sched_getaffinity")(io::Error::other("no CPU allowed")))?;
    let p50 = |a: Option<usize>, b: Option<usize>| -> Result<u64> {
        Ok(quantile(&ping_pong(a, b, samples)?, 0.5).unwrap_or(0))
    };
    Ok(WakeCost {
        samples,
        same_cpu_p50_us: p50(Some(first), Some(first))?,
        cross_cpu_p50_us: match cpus.get(1) {
            Some(&second) => Some(p50(Some(first), Some(second))?),
            None => None,
        },
        unpinned_p50_us: p50(None, None)?,
        what: "UDP ping-pong round trips on loopback between two threads (64 octets each way), \
               pinned to one CPU, to two, or not pinned",
    })
}

/// Pins the calling thread to `cpu` (if any).
fn pin(cpu: Option<usize>) -> Result<()> {
    if let Some(c) = cpu {
        let mut set = rustix::thread::CpuSet::new();
        set.set(c);
        rustix::thread::sched_setaffinity(None, &set)
            .map_err(|e| io_err("sched_setaffinity")(e.into()))?;
    }
    Ok(())
}

/// Round trips in microseconds between a thread on `a` and one on `b`.
fn ping_pong(a: Option<usize>, b: Option<usize>, samples: usize) -> Result<Vec<u64>> {
    let bind = || -> Result<UdpSocket> {
        let s = UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)).map_err(io_err("loopback socket"))?;
        s.set_read_timeout(Some(STEP_TIMEOUT))
            .map_err(io_err("loopback socket"))?;
        Ok(s)
    };
    let (x, y) = (bind()?, bind()?);
    let (xa, ya) = (
        x.local_addr().map_err(io_err("loopback address"))?,
        y.local_addr().map_err(io_err("loopback address"))?,
    );
    let total = samples + 100;
    thread::scope(|s| -> Result<Vec<u64>> {
        let echo = s.spawn(|| -> Result<()> {
            pin(b)?;
            let mut buf = [0u8; LEN];
            for _ in 0..total {
                let n = y.recv(&mut buf).map_err(io_err("echo receive"))?;
                y.send_to(&buf[..n], xa).map_err(io_err("echo send"))?;
            }
            Ok(())
        });
        let run = || -> Result<Vec<u64>> {
            pin(a)?;
            let mut buf = [0u8; LEN];
            let mut out = Vec::with_capacity(samples);
            for i in 0..total {
                let t = Instant::now();
                x.send_to(&[b'P'; LEN], ya).map_err(io_err("ping send"))?;
                x.recv(&mut buf).map_err(io_err("ping receive"))?;
                if i >= 100 {
                    out.push(t.elapsed().as_micros() as u64);
                }
            }
            Ok(out)
        };
        // On a thread of its own too: the caller's own CPUs stay as they were.
        let out = joined(s.spawn(run), "ping");
        let echoed = joined(echo, "echo");
        let out = out?;
        echoed?;
        Ok(out)
    })
}

/// What a scoped thread returned; its panic as an error naming `what`.
fn joined<T>(h: thread::ScopedJoinHandle<'_, Result<T>>, what: &'static str) -> Result<T> {
    h.join()
        .unwrap_or_else(|_| Err(io_err(what)(io::Error::other("panicked"))))
}

fn answer(sock: &UdpSocket, total: usize) -> Result<()> {
    let mut buf = [0u8; LEN];
    for _ in 0..total {
        let (n, from) = sock
            .recv_from(&mut buf)
            .map_err(io_err("responder waiting for the relay"))?;
        sock.send_to(&buf[..n], from)
            .map_err(io_err("responder send"))?;
    }
    Ok(())
}

fn relay_loop(sock: &UdpSocket, responders: &[SocketAddr], total: usize) -> Result<()> {
    let mut buf = [0u8; LEN];
    let to: Vec<SocketAddrAny> = responders.iter().map(|a| SocketAddrAny::from(*a)).collect();
    let payload = [b'S'; LEN];
    // Built once, not in the timed chain: the same datagram to the same
    // responders every time.
    let iov = [io::IoSlice::new(&payload)];
    let mut ctl: Vec<SendAncillaryBuffer<'_, '_, '_>> =
        to.iter().map(|_| SendAncillaryBuffer::default()).collect();
    let mut msgs: Vec<MMsgHdr<'_>> = to
        .iter()
        .zip(ctl.iter_mut())
        .map(|(a, c)| MMsgHdr::new_with_addr(a, &iov, c))
        .collect();
    for _ in 0..total {
        let (_, client) = sock
            .recv_from(&mut buf)
            .map_err(io_err("relay waiting for the client"))?;
        let mut sent = 0;
        while sent < msgs.len() {
            sent += sendmmsg(sock, &mut msgs[sent..], SendFlags::empty())
                .map_err(|e| io_err("relay sendmmsg")(e.into()))?;
        }
        for _ in responders {
            sock.recv_from(&mut buf)
                .map_err(io_err("relay waiting for a responder"))?;
        }
        sock.send_to(&payload, client)
            .map_err(io_err("relay send"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_wake_cost_is_measured_on_every_placement() {
        let w = super::wake_cost(200).unwrap();
        assert_eq!(w.samples, 200);
        assert!(w.same_cpu_p50_us > 0 || w.unpinned_p50_us > 0, "{w:?}");
        let cpus = rustix::thread::sched_getaffinity(None).unwrap().count();
        assert_eq!(w.cross_cpu_p50_us.is_some(), cpus >= 2, "{w:?}");
    }
}
