//! Batched UDP for the data path: DATA datagrams are sealed straight from
//! the chunk into one send buffer and go out many per system call
//! (`sendmmsg`, or with `udp_gso` one `sendmsg` using UDP GSO through
//! `quinn-udp`); receives take many datagrams per call (`recvmmsg`, and
//! GRO where the kernel coalesces). One call per datagram would let each
//! datagram wake its receivers and hand them the CPU before the next.

use crate::outgoing::OutData;
use crate::transport::IP_UDP_OVERHEAD;
use quinn_udp::{RecvMeta, Transmit, UdpSockRef, UdpSocketState};
use rustix::net::addr::SocketAddrArg;
use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny, sendmmsg};
use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::ops::Range;
use subcast_proto::replicast::{ReplicastSealer, data_len, seal_data_into};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Largest GSO batch in octets (the kernel's limit for one UDP send).
const MAX_BATCH_BYTES: usize = 65_000;

/// Datagrams one `sendmmsg` carries at most (without GSO).
pub const MMSG_DATAGRAMS: usize = 64;

/// Octets of datagrams one `sendmmsg` carries at most.
const MMSG_BYTES: usize = 256 << 10;

/// Datagrams sealed back to back into one buffer and sent with one system
/// call: with GSO, DATA to one destination, all of one size but the last
/// (one `sendmsg` the kernel segments); without, up to
/// [`MMSG_DATAGRAMS`] datagrams to any destinations (one `sendmmsg`, each
/// its own packet from the socket on, so captures count every datagram).
pub struct SendBatch {
    state: UdpSocketState,
    buf: Vec<u8>,
    /// The datagrams in `buf`: destination and octets.
    msgs: Vec<(SocketAddr, Range<usize>)>,
    gso: bool,
    max_segments: usize,
    /// Send calls made and datagrams they carried.
    pub sends: u64,
    pub datagrams: u64,
}

impl std::fmt::Debug for SendBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendBatch")
            .field("gso", &self.gso)
            .field("max_segments", &self.max_segments)
            .field("sends", &self.sends)
            .field("datagrams", &self.datagrams)
            .finish()
    }
}

impl SendBatch {
    /// With `gso` false datagrams go out by `sendmmsg`.
    pub fn new(sock: &UdpSocket, gso: bool) -> io::Result<SendBatch> {
        let state = UdpSocketState::new(UdpSockRef::from(sock))?;
        let gso = gso && state.max_gso_segments() > 1;
        let max_segments = if gso {
            state.max_gso_segments()
        } else {
            MMSG_DATAGRAMS
        };
        Ok(SendBatch {
            state,
            buf: Vec::with_capacity(MMSG_BYTES.max(MAX_BATCH_BYTES) + 9216),
            msgs: Vec::with_capacity(max_segments),
            gso,
            max_segments,
            sends: 0,
            datagrams: 0,
        })
    }

    /// Datagrams one send call may carry here.
    pub fn max_segments(&self) -> usize {
        self.max_segments
    }

    /// Whether a datagram of `len` octets to `dest` may join the batch.
    fn fits(&self, dest: SocketAddr, len: usize) -> bool {
        let Some((d0, r0)) = self.msgs.first() else {
            return true;
        };
        if self.gso {
            *d0 == dest
                && len <= r0.len()
                && self.msgs.len() < self.max_segments
                && self.buf.len() + len <= MAX_BATCH_BYTES
        } else {
            self.msgs.len() < self.max_segments && self.buf.len() + len <= MMSG_BYTES
        }
    }

    /// Sends the batch if it cannot take another datagram.
    async fn flush_if_full(&mut self, sock: &UdpSocket) {
        let full = match self.msgs.as_slice() {
            [] => false,
            [(_, r0), .., (_, last)] if self.gso => last.len() < r0.len(),
            _ => false,
        } || self.msgs.len() >= self.max_segments;
        if full {
            self.flush(sock).await;
        }
    }

    /// Seals `d` into the batch (sending the batch first if `d` cannot
    /// join it); returns its wire size (IPv6 + UDP included), 0 if it
    /// could not be sealed (no pair key for any of its receivers).
    pub async fn push(
        &mut self,
        sock: &UdpSocket,
        sealer: &mut ReplicastSealer,
        now_us: u64,
        d: &OutData,
    ) -> usize {
        let payload = d.payload();
        let entries = if sealer.keys().is_shared() {
            1
        } else {
            d.to.len().max(1)
        };
        if !self.fits(d.dest, data_len(payload.len(), entries)) {
            self.flush(sock).await;
        }
        let start = self.buf.len();
        if let Err(e) = seal_data_into(
            &mut self.buf,
            sealer,
            now_us,
            d.txid,
            d.index,
            d.total,
            payload,
            &d.to,
        ) {
            tracing::warn!(dest = %d.dest, error = %e, "DATA not sent");
            self.buf.truncate(start);
            return 0;
        }
        let end = self.buf.len();
        self.msgs.push((d.dest, start..end));
        // With GSO a shorter datagram must be the batch's last.
        self.flush_if_full(sock).await;
        end - start + IP_UDP_OVERHEAD
    }

    /// Queues one sealed datagram (with GSO: sends it on its own, after
    /// what is batched).
    pub async fn push_bytes(&mut self, sock: &UdpSocket, bytes: &[u8], dest: SocketAddr) {
        if self.gso {
            self.flush(sock).await;
            self.transmit(sock, bytes, dest, None).await;
            return;
        }
        if !self.fits(dest, bytes.len()) {
            self.flush(sock).await;
        }
        let start = self.buf.len();
        self.buf.extend_from_slice(bytes);
        self.msgs.push((dest, start..self.buf.len()));
        self.flush_if_full(sock).await;
    }

    /// Sends what is batched.
    pub async fn flush(&mut self, sock: &UdpSocket) {
        let Some((dest, r0)) = self.msgs.first().cloned() else {
            return;
        };
        let count = self.msgs.len();
        if self.gso || count == 1 {
            let seg = (count > 1).then_some(r0.len());
            let buf = std::mem::take(&mut self.buf);
            self.transmit(sock, &buf, dest, seg).await;
            self.buf = buf;
        } else {
            self.send_mmsg(sock).await;
        }
        self.buf.clear();
        self.msgs.clear();
        self.datagrams += count as u64;
    }

    /// Every batched datagram by `sendmmsg` (a datagram the kernel refuses
    /// is logged and skipped).
    async fn send_mmsg(&mut self, sock: &UdpSocket) {
        let mut from = 0;
        while from < self.msgs.len() {
            let (msgs, buf) = (&self.msgs[from..], &self.buf);
            self.sends += 1;
            let r = sock
                .async_io(Interest::WRITABLE, || {
                    let addrs: Vec<SocketAddrAny> = msgs.iter().map(|(d, _)| d.as_any()).collect();
                    let iovs: Vec<[IoSlice<'_>; 1]> = msgs
                        .iter()
                        .map(|(_, r)| [IoSlice::new(&buf[r.clone()])])
                        .collect();
                    let mut ctl: Vec<SendAncillaryBuffer<'_, '_, '_>> = msgs
                        .iter()
                        .map(|_| SendAncillaryBuffer::default())
                        .collect();
                    let mut hdrs: Vec<MMsgHdr<'_>> = addrs
                        .iter()
                        .zip(&iovs)
                        .zip(ctl.iter_mut())
                        .map(|((a, iov), c)| MMsgHdr::new_with_addr(a, iov, c))
                        .collect();
                    sendmmsg(sock, &mut hdrs, SendFlags::empty()).map_err(io::Error::from)
                })
                .await;
            match r {
                Ok(n) => from += n.max(1),
                Err(e) => {
                    tracing::warn!(dest = %msgs[0].0, error = %e, "send failed");
                    from += 1;
                }
            }
        }
    }

    async fn transmit(
        &mut self,
        sock: &UdpSocket,
        contents: &[u8],
        dest: SocketAddr,
        seg: Option<usize>,
    ) {
        let t = Transmit {
            destination: dest,
            ecn: None,
            contents,
            segment_size: seg,
            src_ip: None,
        };
        self.sends += 1;
        let state = &self.state;
        let r = sock
            .async_io(Interest::WRITABLE, || {
                state.try_send(UdpSockRef::from(sock), &t)
            })
            .await;
        if let Err(e) = r {
            tracing::warn!(%dest, error = %e, "send failed");
        }
    }
}

/// Buffers for receiving many datagrams per call.
pub struct RecvBatch {
    state: UdpSocketState,
    bufs: Vec<Vec<u8>>,
    meta: Vec<RecvMeta>,
}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch")
            .field("bufs", &self.bufs.len())
            .finish()
    }
}

impl RecvBatch {
    pub fn new(sock: &UdpSocket) -> io::Result<RecvBatch> {
        let state = UdpSocketState::new(UdpSockRef::from(sock))?;
        // Room for a full GRO train of MTU-sized datagrams per buffer.
        let size = (state.gro_segments().max(1) * 1500).max(65_536);
        let n = quinn_udp::BATCH_SIZE.clamp(1, 32);
        Ok(RecvBatch {
            state,
            bufs: vec![vec![0u8; size]; n],
            meta: vec![RecvMeta::default(); n],
        })
    }

    /// Waits until the socket is readable.
    pub async fn readable(&self, sock: &UdpSocket) -> io::Result<()> {
        sock.readable().await
    }

    /// Receives what is queued without waiting and calls `f` with every
    /// datagram and its source; returns how many (0: nothing queued).
    pub fn drain(
        &mut self,
        sock: &UdpSocket,
        f: impl FnMut(&[u8], SocketAddr),
    ) -> io::Result<usize> {
        self.drain_with(sock, true, f)
    }

    /// As [`Self::drain`], asking the socket itself rather than tokio's
    /// record of its readiness (which only the runtime's wait refreshes):
    /// for a loop that keeps sending without waiting.
    pub fn drain_now(
        &mut self,
        sock: &UdpSocket,
        f: impl FnMut(&[u8], SocketAddr),
    ) -> io::Result<usize> {
        self.drain_with(sock, false, f)
    }

    fn drain_with(
        &mut self,
        sock: &UdpSocket,
        tracked: bool,
        mut f: impl FnMut(&[u8], SocketAddr),
    ) -> io::Result<usize> {
        let mut slices: Vec<IoSliceMut<'_>> =
            self.bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
        let state = &self.state;
        let meta = &mut self.meta;
        let r = if tracked {
            sock.try_io(Interest::READABLE, || {
                state.recv(UdpSockRef::from(sock), &mut slices, meta)
            })
        } else {
            state.recv(UdpSockRef::from(sock), &mut slices, meta)
        };
        let n = match r {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut count = 0;
        for (m, buf) in self.meta.iter().zip(slices.iter()).take(n) {
            let stride = m.stride.max(1);
            for dg in buf[..m.len].chunks(stride) {
                f(dg, m.addr);
                count += 1;
            }
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Many datagrams to two destinations go out in few `sendmmsg` calls,
    /// every one intact and in order.
    #[tokio::test(flavor = "current_thread")]
    async fn batched_datagrams_arrive_whole_and_in_order() {
        let tx = UdpSocket::bind("[::1]:0").await.unwrap();
        let a = UdpSocket::bind("[::1]:0").await.unwrap();
        let b = UdpSocket::bind("[::1]:0").await.unwrap();
        let (da, db) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let mut batch = SendBatch::new(&tx, false).unwrap();
        for i in 0..150u32 {
            let len = 100 + (i as usize % 7) * 150;
            let mut d = vec![(i % 251) as u8; len];
            d[..4].copy_from_slice(&i.to_be_bytes());
            batch
                .push_bytes(&tx, &d, if i % 3 == 0 { db } else { da })
                .await;
        }
        batch.flush(&tx).await;
        assert_eq!(batch.datagrams, 150);
        assert!(batch.sends <= 4, "{} send calls", batch.sends);
        let mut buf = vec![0u8; 2048];
        let (mut next_a, mut next_b) = (Vec::new(), Vec::new());
        for _ in 0..150 {
            let (sock, seen) = tokio::select! {
                r = a.readable() => { r.unwrap(); (&a, &mut next_a) }
                r = b.readable() => { r.unwrap(); (&b, &mut next_b) }
            };
            let Ok(n) = sock.try_recv(&mut buf) else {
                continue;
            };
            let i = u32::from_be_bytes(buf[..4].try_into().unwrap());
            assert_eq!(n, 100 + (i as usize % 7) * 150);
            assert!(buf[4..n].iter().all(|x| *x == (i % 251) as u8));
            seen.push(i);
        }
        while let Ok(n) = a.try_recv(&mut buf) {
            next_a.push(u32::from_be_bytes(buf[..4].try_into().unwrap()));
            assert!(n >= 100);
        }
        while let Ok(n) = b.try_recv(&mut buf) {
            next_b.push(u32::from_be_bytes(buf[..4].try_into().unwrap()));
            assert!(n >= 100);
        }
        let want_a: Vec<u32> = (0..150).filter(|i| i % 3 != 0).collect();
        let want_b: Vec<u32> = (0..150).filter(|i| i % 3 == 0).collect();
        assert_eq!((next_a, next_b), (want_a, want_b));
    }
}
