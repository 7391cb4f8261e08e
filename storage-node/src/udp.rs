//! Batched UDP for the data path: DATA datagrams are sealed straight from
//! the chunk into one send buffer and go out many per system call
//! (`sendmmsg`, or with `udp_gso` one `sendmsg` using UDP GSO through
//! `quinn-udp`); receives take many datagrams per call (`recvmmsg`, and
//! GRO where the kernel coalesces). One call per datagram would let each
//! datagram wake its receivers and hand them the CPU before the next.

use crate::outgoing::OutData;
use crate::send_thread::{Batch, SendThread, Sender};
use crate::transport::IP_UDP_OVERHEAD;
use quinn_udp::{RecvMeta, Transmit, UdpSockRef, UdpSocketState};
use rustix::net::addr::SocketAddrArg;
use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny, sendmmsg};
use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::ops::Range;
use subcast_proto::replicast::{
    ReplicastSealer, data_len, keyed_data_len, seal_data_into, seal_keyed_data_into,
    seal_untagged_data_into, untagged_data_len,
};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Largest GSO send in octets (the kernel's limit for one UDP send).
const MAX_GSO_BYTES: usize = 65_000;

/// Datagrams one batch (one turn of the send loop) carries at most.
pub const MMSG_DATAGRAMS: usize = 64;

/// Octets of datagrams one batch carries at most.
const MMSG_BYTES: usize = 256 << 10;

/// Buffers for one batch, empty, with room for the most it carries.
pub(crate) fn empty_batch() -> Batch {
    (
        Vec::with_capacity(MMSG_BYTES + 9216),
        Vec::with_capacity(MMSG_DATAGRAMS),
    )
}

/// Datagrams sealed back to back into one buffer and sent with few system
/// calls: up to [`MMSG_DATAGRAMS`] datagrams to any destinations. Without
/// GSO they go by one `sendmmsg`. With GSO, every run of two or more
/// datagrams to one destination, all of one size but a shorter last, goes
/// as one `sendmsg` that the NIC or the kernel cuts into those datagrams
/// (one packet each on the wire); the datagrams between such runs go by
/// `sendmmsg`, in order.
pub struct SendBatch {
    state: UdpSocketState,
    buf: Vec<u8>,
    /// The datagrams in `buf`, back to back in order: destination and octets.
    msgs: Vec<(SocketAddr, Range<usize>)>,
    /// One of `msgs` is a control datagram (not DATA) or the last DATA
    /// of a pass: the batch leaves in order (`send_thread.rs`).
    control: bool,
    /// Destination and transaction of the last datagram pushed.
    last_run: Option<(SocketAddr, u64)>,
    gso: bool,
    /// Send calls made from the caller's thread (the send thread counts
    /// its own: [`Self::thread`]) and datagrams batched.
    pub sends: u64,
    pub datagrams: u64,
    /// Of `sends`, GSO sends (each several datagrams to one destination).
    pub gso_sends: u64,
    /// GSO sends the kernel refused (GSO is then off for this socket and
    /// their datagrams went again by `sendmmsg`).
    pub gso_refused: u64,
    /// Of `datagrams`, those the send thread sent.
    pub threaded: u64,
    /// Large batches go out from here while the next is sealed.
    thread: Option<SendThread>,
}

/// A batch a [`SendBatch`] sent for someone else (the send thread), its
/// buffers to use again, and what sending it took.
#[derive(Debug, Default)]
pub struct SentBatch {
    pub batch: Batch,
    pub sends: u64,
    pub gso_sends: u64,
    pub gso_refused: u64,
}

impl std::fmt::Debug for SendBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendBatch")
            .field("gso", &self.gso_segments())
            .field("sends", &self.sends)
            .field("datagrams", &self.datagrams)
            .finish()
    }
}

/// The end (exclusive) of the GSO run starting at `msgs[i]`: the following
/// datagrams to the same destination of the same size as `msgs[i]`, and at
/// most one shorter one, which ends the run; at most `max` datagrams and
/// [`MAX_GSO_BYTES`] octets.
fn gso_run_end(msgs: &[(SocketAddr, Range<usize>)], i: usize, max: usize) -> usize {
    let (dest, seg) = (msgs[i].0, msgs[i].1.len());
    let (mut j, mut bytes) = (i + 1, seg);
    while j < msgs.len() && j - i < max {
        let (d, r) = &msgs[j];
        if *d != dest || r.len() > seg || bytes + r.len() > MAX_GSO_BYTES {
            break;
        }
        bytes += r.len();
        j += 1;
        if r.len() < seg {
            break;
        }
    }
    j
}

impl SendBatch {
    /// With `gso` false (or a kernel without UDP GSO) every datagram goes
    /// by `sendmmsg`.
    pub fn new(sock: &UdpSocket, gso: bool) -> io::Result<SendBatch> {
        let state = UdpSocketState::new(UdpSockRef::from(sock))?;
        let (buf, msgs) = empty_batch();
        Ok(SendBatch {
            state,
            buf,
            msgs,
            control: false,
            last_run: None,
            gso,
            sends: 0,
            datagrams: 0,
            gso_sends: 0,
            gso_refused: 0,
            threaded: 0,
            thread: None,
        })
    }

    /// As [`Self::new`], with large batches sent from a thread of their
    /// own (see `send_thread.rs`); without it if the thread cannot start.
    pub fn with_thread(sock: &UdpSocket, gso: bool) -> io::Result<SendBatch> {
        let mut b = SendBatch::new(sock, gso)?;
        match SendThread::spawn(sock, gso) {
            Ok(t) => b.thread = Some(t),
            Err(e) => {
                tracing::warn!(error = %e, "no send thread; DATA goes out from the caller's thread")
            }
        }
        Ok(b)
    }

    /// Sends `batch` now (for the send thread) and gives its buffers back.
    pub(crate) async fn send_batch(&mut self, sock: &UdpSocket, batch: Batch) -> SentBatch {
        let (s0, g0, r0) = (self.sends, self.gso_sends, self.gso_refused);
        (self.buf, self.msgs) = batch;
        self.send_all(sock).await;
        SentBatch {
            batch: (
                std::mem::take(&mut self.buf),
                std::mem::take(&mut self.msgs),
            ),
            sends: self.sends - s0,
            gso_sends: self.gso_sends - g0,
            gso_refused: self.gso_refused - r0,
        }
    }

    /// Waits until every batch handed to the send thread is out.
    pub async fn drain(&mut self) {
        if let Some(t) = &mut self.thread {
            t.drain().await;
        }
    }

    /// The send thread, if there is one (its counters).
    pub fn thread(&self) -> Option<&SendThread> {
        self.thread.as_ref()
    }

    /// Datagrams one batch carries at most.
    pub fn max_segments(&self) -> usize {
        MMSG_DATAGRAMS
    }

    /// Datagrams one GSO send may carry now (1: no GSO).
    fn gso_segments(&self) -> usize {
        if self.gso {
            self.state.max_gso_segments().min(MMSG_DATAGRAMS)
        } else {
            1
        }
    }

    /// Whether a datagram of `len` octets may join the batch.
    fn fits(&self, len: usize) -> bool {
        self.msgs.len() < MMSG_DATAGRAMS && self.buf.len() + len <= MMSG_BYTES
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
        // Keyed DATA goes tagged where `d` says, and also where a run of
        // this transfer's datagrams to this destination starts in the
        // batch: batches may leave from two threads and arrive out of
        // order, and a target takes untagged DATA only after a verified
        // datagram of its transfer.
        let tagged =
            |b: &SendBatch| d.tagged || b.msgs.is_empty() || b.last_run != Some((d.dest, d.txid));
        let len = match d.key {
            Some(_) if tagged(self) => keyed_data_len(payload.len()),
            Some(_) => untagged_data_len(payload.len()),
            None => data_len(payload.len(), entries),
        };
        // The end of a pass leaves alone and in order, as a control
        // datagram does (the target takes a gap it sees then for a loss);
        // what comes before it goes as usual, from either thread.
        if !self.fits(len) || (d.ends_pass && !self.msgs.is_empty()) {
            self.flush(sock).await;
        }
        let start = self.buf.len();
        if let Some(key) = &d.key {
            // (After a flush just now, the first of a new batch.)
            if tagged(self) {
                seal_keyed_data_into(&mut self.buf, key, d.txid, d.index, payload);
            } else {
                seal_untagged_data_into(&mut self.buf, d.txid, d.index, payload);
            }
        } else if let Err(e) = seal_data_into(
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
        self.last_run = Some((d.dest, d.txid));
        if d.ends_pass {
            self.control = true;
            self.flush(sock).await;
        }
        self.flush_if_full(sock).await;
        end - start + IP_UDP_OVERHEAD
    }

    /// Queues one sealed datagram.
    pub async fn push_bytes(&mut self, sock: &UdpSocket, bytes: &[u8], dest: SocketAddr) {
        if !self.fits(bytes.len()) {
            self.flush(sock).await;
        }
        let start = self.buf.len();
        self.buf.extend_from_slice(bytes);
        self.msgs.push((dest, start..self.buf.len()));
        self.control = true;
        self.flush_if_full(sock).await;
    }

    async fn flush_if_full(&mut self, sock: &UdpSocket) {
        if self.msgs.len() >= MMSG_DATAGRAMS {
            self.flush(sock).await;
        }
    }

    /// Sends what is batched, in order: large batches (and any while the
    /// send thread has some) by the send thread, others at once.
    pub async fn flush(&mut self, sock: &UdpSocket) {
        let n = self.msgs.len();
        if n == 0 {
            return;
        }
        if let Some(t) = &mut self.thread
            && t.sender(n, self.control) == Sender::Thread
        {
            let full = (
                std::mem::take(&mut self.buf),
                std::mem::take(&mut self.msgs),
            );
            match t.hand_over(full, self.control).await {
                Ok(empty) => {
                    (self.buf, self.msgs) = empty;
                    self.control = false;
                    self.datagrams += n as u64;
                    self.threaded += n as u64;
                    return;
                }
                Err(back) => (self.buf, self.msgs) = back,
            }
        }
        self.send_all(sock).await;
    }

    /// Sends what is batched from this thread, in order.
    async fn send_all(&mut self, sock: &UdpSocket) {
        let n = self.msgs.len();
        if n == 0 {
            return;
        }
        let mut from = 0;
        let mut i = 0;
        while i < n {
            let max = self.gso_segments();
            if max < 2 {
                break;
            }
            let j = gso_run_end(&self.msgs, i, max);
            if j - i >= 2 {
                self.send_mmsg(sock, from..i).await;
                if !self.send_gso(sock, i..j).await {
                    // GSO refused (the interface cannot checksum or segment):
                    // these datagrams go one by one, and the rest without GSO.
                    self.send_mmsg(sock, i..j).await;
                }
                from = j;
            }
            i = j;
        }
        self.send_mmsg(sock, from..n).await;
        self.buf.clear();
        self.msgs.clear();
        self.control = false;
        self.datagrams += n as u64;
    }

    /// The datagrams `run` (one destination, one size but a shorter last)
    /// as one GSO send; false if the kernel refused GSO.
    async fn send_gso(&mut self, sock: &UdpSocket, run: Range<usize>) -> bool {
        let (dest, r0) = self.msgs[run.start].clone();
        let bytes = r0.start..self.msgs[run.end - 1].1.end;
        let t = Transmit {
            destination: dest,
            ecn: None,
            contents: &self.buf[bytes],
            segment_size: Some(r0.len()),
            src_ip: None,
        };
        self.sends += 1;
        let state = &self.state;
        let r = sock
            .async_io(Interest::WRITABLE, || {
                state.try_send(UdpSockRef::from(sock), &t)
            })
            .await;
        match r {
            Ok(()) => {
                self.gso_sends += 1;
                true
            }
            // quinn-udp turns GSO off for the socket when the kernel refuses
            // it (EIO or EINVAL: the interface cannot checksum or segment).
            Err(e) if self.state.max_gso_segments() < 2 => {
                self.gso_refused += 1;
                tracing::warn!(%dest, error = %e, "UDP GSO refused by the interface; sending without it from now on");
                false
            }
            // A datagram larger than the path MTU (sent without
            // fragmentation): it would fail on its own as well.
            Err(e) if rustix::io::Errno::from_io_error(&e) == Some(rustix::io::Errno::MSGSIZE) => {
                tracing::warn!(
                    %dest,
                    datagram = r0.len(),
                    error = %e,
                    "DATA not sent: datagrams larger than the path MTU (is `mtu:` in the config \
                     larger than a link's on the way?)"
                );
                true
            }
            Err(e) => {
                tracing::warn!(%dest, error = %e, "send failed");
                true
            }
        }
    }

    /// The datagrams `range` by `sendmmsg` (a datagram the kernel refuses
    /// is logged and skipped).
    async fn send_mmsg(&mut self, sock: &UdpSocket, range: Range<usize>) {
        let mut from = range.start;
        while from < range.end {
            let (msgs, buf) = (&self.msgs[from..range.end], &self.buf);
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
    use std::time::Duration;

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

    fn runs(msgs: &[(SocketAddr, Range<usize>)], max: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < msgs.len() {
            let j = gso_run_end(msgs, i, max);
            out.push(j - i);
            i = j;
        }
        out
    }

    /// A GSO run is one destination, one size and at most one shorter
    /// datagram at its end, within the segment and octet limits.
    #[test]
    fn gso_runs_end_at_a_new_destination_a_new_size_or_a_shorter_datagram() {
        let (a, b): (SocketAddr, SocketAddr) =
            ("[::1]:1".parse().unwrap(), "[::1]:2".parse().unwrap());
        let mut at = 0;
        let mut m = |d: SocketAddr, len: usize| {
            at += len;
            (d, at - len..at)
        };
        let msgs = vec![
            m(a, 100),
            m(a, 100),
            m(a, 100),
            m(a, 60), // shorter: ends the run
            m(a, 100),
            m(b, 100), // another destination
            m(b, 100),
            m(b, 200), // larger: not in the run
            m(b, 200),
        ];
        assert_eq!(runs(&msgs, 64), vec![4, 1, 2, 2]);
        assert_eq!(runs(&msgs, 2), vec![2, 2, 1, 2, 2]);
        let big: Vec<_> = (0..64).map(|_| m(a, 1452)).collect();
        // 65,000 octets at most: 44 datagrams of 1,452, then 20.
        assert_eq!(runs(&big, 64), vec![44, 20]);
    }

    /// With GSO, runs of DATA-sized datagrams and control datagrams between
    /// them arrive whole, in order, as separate datagrams, in fewer calls.
    #[tokio::test(flavor = "current_thread")]
    async fn gso_batches_arrive_as_separate_datagrams_in_order() {
        let tx = UdpSocket::bind("[::1]:0").await.unwrap();
        let rx = UdpSocket::bind("[::1]:0").await.unwrap();
        let dest = rx.local_addr().unwrap();
        let mut batch = SendBatch::new(&tx, true).unwrap();
        if batch.gso_segments() < 2 {
            eprintln!("no UDP GSO in this kernel: nothing to test");
            return;
        }
        // Few enough that the receiver's default buffer holds them all.
        const N: u32 = 70;
        let mut want = Vec::new();
        for i in 0..N {
            // Every 25th a small "control" datagram, the rest 1,000 octets.
            let len = if i % 25 == 0 { 40 } else { 1000 };
            let mut d = vec![(i % 251) as u8; len];
            d[..4].copy_from_slice(&i.to_be_bytes());
            batch.push_bytes(&tx, &d, dest).await;
            want.push((i, len));
        }
        batch.flush(&tx).await;
        assert_eq!(batch.datagrams, u64::from(N));
        assert_eq!(batch.gso_refused, 0);
        // Runs 1-24, 26-49, 51-63 and 65-69 each one GSO send.
        assert_eq!(batch.gso_sends, 4);
        // 64 then 6 datagrams: runs cut by the three control datagrams.
        assert!(
            batch.sends <= 10,
            "{} send calls for {N} datagrams",
            batch.sends
        );
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65_536];
        let all = async {
            while got.len() < N as usize {
                rx.readable().await.unwrap();
                while let Ok(n) = rx.try_recv(&mut buf) {
                    let i = u32::from_be_bytes(buf[..4].try_into().unwrap());
                    assert!(buf[4..n].iter().all(|x| *x == (i % 251) as u8));
                    got.push((i, n));
                }
            }
        };
        let timed_out = tokio::time::timeout(Duration::from_secs(10), all)
            .await
            .is_err();
        assert!(!timed_out, "after 10 s only {} of {N} datagrams", got.len());
        assert_eq!(got, want);
    }

    /// A GSO send the kernel refuses (EINVAL or EIO: an interface that
    /// cannot checksum or segment on older kernels, IPsec, a socket without
    /// UDP checksums) goes again datagram by datagram, and GSO stays off
    /// for the socket. Provoked here with `SO_NO_CHECK` (IPv4 UDP without
    /// checksums), which the kernel's GSO refuses with EINVAL.
    #[tokio::test(flavor = "current_thread")]
    #[allow(unsafe_code)] // one setsockopt no safe wrapper offers
    async fn a_refused_gso_send_goes_again_by_sendmmsg() {
        use std::os::fd::AsRawFd;
        let tx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let rx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let dest = rx.local_addr().unwrap();
        let one: libc::c_int = 1;
        // SAFETY: a valid socket, option and an int-sized value.
        let r = unsafe {
            libc::setsockopt(
                tx.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_NO_CHECK,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(r, 0, "SO_NO_CHECK: {}", io::Error::last_os_error());
        let mut batch = SendBatch::new(&tx, true).unwrap();
        if batch.gso_segments() < 2 {
            eprintln!("no UDP GSO in this kernel: nothing to test");
            return;
        }
        const N: u32 = 40;
        for i in 0..N {
            let mut d = vec![(i % 251) as u8; 1000];
            d[..4].copy_from_slice(&i.to_be_bytes());
            batch.push_bytes(&tx, &d, dest).await;
        }
        batch.flush(&tx).await;
        assert_eq!(batch.gso_refused, 1, "the kernel took a GSO send");
        assert_eq!(batch.gso_sends, 0);
        assert_eq!(batch.gso_segments(), 1, "GSO stays off for the socket");
        assert_eq!(batch.datagrams, u64::from(N));
        let mut got = Vec::new();
        let mut buf = vec![0u8; 2048];
        let all = async {
            while got.len() < N as usize {
                rx.readable().await.unwrap();
                while let Ok(n) = rx.try_recv(&mut buf) {
                    assert_eq!(n, 1000);
                    got.push(u32::from_be_bytes(buf[..4].try_into().unwrap()));
                }
            }
        };
        let timed_out = tokio::time::timeout(Duration::from_secs(10), all)
            .await
            .is_err();
        assert!(!timed_out, "after 10 s only {} of {N} datagrams", got.len());
        assert_eq!(
            got,
            (0..N).collect::<Vec<_>>(),
            "every datagram once, in order"
        );
    }
}
