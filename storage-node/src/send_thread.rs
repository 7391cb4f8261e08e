//! The data path's second sender: a thread that sends large batches of
//! DATA while the caller seals, and sends, the next ones.
//!
//! Why: a send on a veth runs the whole way to the receivers' sockets
//! inside the sender's system call (bridges, a copy for every port,
//! socket queues), as it would through a software switch. One thread
//! does all of that for every datagram in turn on one CPU. In the seed
//! lab a bare sender of GSO batches moves 135 MiB/s to three receivers
//! from one thread and 260 MiB/s from two (labs/RESULTS.md, "Two threads
//! send").
//!
//! Rules (who sends a batch: [`SendThread::sender`]):
//! - A large batch of DATA ([`THREAD_MIN_DATAGRAMS`] or more) goes to the
//!   thread when it has none, and the caller goes on sealing; while the
//!   thread has DATA only, the caller sends the next batch of DATA itself,
//!   so both threads carry datagrams through the kernel together. DATA
//!   then overtakes DATA, which is harmless: receivers place it by index.
//! - Nothing overtakes a control datagram, and a control datagram
//!   overtakes nothing: a batch with one goes out from the caller when
//!   the thread has none, and otherwise to the thread, behind what it has;
//!   while the thread has one, every batch goes behind it. A target drops
//!   DATA of a transfer whose PUT_ACCEPT it has not seen yet, and answers
//!   a poll (a repeated PUT_ACCEPT) by asking again for what has not
//!   arrived, so either reordering would cost a repair. The last DATA
//!   datagram of a pass (`OutData::ends_pass`) goes alone in a batch of
//!   its own that counts as a control datagram here (`udp.rs`): a target
//!   that receives it asks at once for what it still misses.
//! - At most [`MAX_OUT`] batches are out; the caller waits for one to come
//!   back before handing over another.
//! - The thread sends on a duplicate of the caller's socket (one socket,
//!   one port), through a [`SendBatch`] of its own in a single-threaded
//!   runtime, so GSO, `sendmmsg` and their fallbacks are the same code.
//! - If the thread is gone (it could not start its runtime), the caller
//!   sends for itself and says so once.

use crate::udp::{SendBatch, SentBatch, empty_batch};
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::os::fd::AsFd;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// Batches of this many datagrams or more go to the thread.
pub const THREAD_MIN_DATAGRAMS: usize = 8;

/// Batches out with the thread at most.
pub const MAX_OUT: usize = 4;

/// Who sends a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    /// The caller, now, from its own thread.
    Caller,
    /// The send thread, after what it has.
    Thread,
}

/// Datagrams sealed back to back, and where each one is.
pub type Batch = (Vec<u8>, Vec<(SocketAddr, Range<usize>)>);

/// The caller's side of the send thread.
pub struct SendThread {
    jobs: Option<mpsc::UnboundedSender<Batch>>,
    done: mpsc::UnboundedReceiver<SentBatch>,
    /// Empty buffers, returned by the thread.
    free: Vec<Batch>,
    /// Batches out with the thread, oldest first: whether each carries a
    /// control datagram.
    out: VecDeque<bool>,
    /// Send calls the thread made, of them GSO sends, and GSO sends the
    /// kernel refused (as [`SendBatch`]'s own, which count the caller's).
    pub sends: u64,
    pub gso_sends: u64,
    pub gso_refused: u64,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for SendThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendThread")
            .field("out", &self.out.len())
            .finish()
    }
}

impl SendThread {
    /// Starts the thread on a duplicate of `sock`.
    pub fn spawn(sock: &UdpSocket, gso: bool) -> io::Result<SendThread> {
        let fd = sock.as_fd().try_clone_to_owned()?;
        let (jobs, mut rx) = mpsc::unbounded_channel::<Batch>();
        let (tx, done) = mpsc::unbounded_channel::<SentBatch>();
        let handle = std::thread::Builder::new()
            .name("subcast-send".into())
            .spawn(move || {
                let run = || -> io::Result<()> {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_io()
                        .build()?;
                    rt.block_on(async move {
                        let std_sock = std::net::UdpSocket::from(fd);
                        std_sock.set_nonblocking(true)?;
                        let sock = UdpSocket::from_std(std_sock)?;
                        let mut batch = SendBatch::new(&sock, gso)?;
                        while let Some(job) = rx.recv().await {
                            let sent = batch.send_batch(&sock, job).await;
                            if tx.send(sent).is_err() {
                                break;
                            }
                        }
                        Ok(())
                    })
                };
                if let Err(e) = run() {
                    tracing::warn!(error = %e, "send thread stopped; the caller sends for itself");
                }
            })?;
        Ok(SendThread {
            jobs: Some(jobs),
            done,
            free: Vec::new(),
            out: VecDeque::new(),
            sends: 0,
            gso_sends: 0,
            gso_refused: 0,
            handle: Some(handle),
        })
    }

    /// Who sends a batch of `n` datagrams (`control`: one of them is not
    /// DATA); see the rules.
    pub fn sender(&mut self, n: usize, control: bool) -> Sender {
        while let Ok(s) = self.done.try_recv() {
            self.back(s);
        }
        if self.jobs.is_none() {
            return Sender::Caller;
        }
        decide(&self.out, n, control)
    }

    fn back(&mut self, mut s: SentBatch) {
        self.sends += s.sends;
        self.gso_sends += s.gso_sends;
        self.gso_refused += s.gso_refused;
        self.out.pop_front();
        s.batch.0.clear();
        s.batch.1.clear();
        self.free.push(std::mem::take(&mut s.batch));
    }

    /// Hands `batch` to the thread, waiting while [`MAX_OUT`] are out;
    /// returns empty buffers to seal the next batch into. `Err(batch)`:
    /// the thread is gone; send `batch` yourself.
    pub async fn hand_over(&mut self, batch: Batch, control: bool) -> Result<Batch, Batch> {
        while self.out.len() >= MAX_OUT {
            match self.done.recv().await {
                Some(s) => self.back(s),
                None => {
                    self.out.clear();
                    break;
                }
            }
        }
        let Some(jobs) = &self.jobs else {
            return Err(batch);
        };
        match jobs.send(batch) {
            Ok(()) => {
                self.out.push_back(control);
                Ok(self.free.pop().unwrap_or_else(empty_batch))
            }
            Err(mpsc::error::SendError(batch)) => {
                tracing::warn!("send thread gone; sending from the caller's thread");
                self.jobs = None;
                self.out.clear();
                Err(batch)
            }
        }
    }

    /// Waits until every batch handed over has been sent.
    pub async fn drain(&mut self) {
        while !self.out.is_empty() {
            match self.done.recv().await {
                Some(s) => self.back(s),
                None => self.out.clear(),
            }
        }
    }
}

/// The rules: who sends a batch of `n` datagrams (`control`: one is not
/// DATA) while `out` (oldest first: whether each carries a control
/// datagram) is with the thread.
fn decide(out: &VecDeque<bool>, n: usize, control: bool) -> Sender {
    if control || out.iter().any(|c| *c) {
        return if out.is_empty() {
            Sender::Caller
        } else {
            Sender::Thread
        };
    }
    if out.is_empty() && n >= THREAD_MIN_DATAGRAMS {
        Sender::Thread
    } else {
        Sender::Caller
    }
}

impl Drop for SendThread {
    /// Batches still queued are sent before the thread ends.
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::outgoing::Outgoing;
    use crate::udp::SendBatch;
    use std::sync::Arc;
    use subcast_proto::replicast::{KeyedData, ReplicastSealer, TransferKey};
    use subcast_proto::{PairKeys, now_us};
    use tokio::net::UdpSocket;

    const CONTROL: &[u8] = b"control datagram";

    /// The rules, case by case.
    #[test]
    fn who_sends_a_batch() {
        use super::{Sender::*, THREAD_MIN_DATAGRAMS as MIN, decide};
        let out = |v: &[bool]| v.iter().copied().collect::<std::collections::VecDeque<_>>();
        // Nothing out: large DATA to the thread, the rest here.
        assert_eq!(decide(&out(&[]), MIN, false), Thread);
        assert_eq!(decide(&out(&[]), MIN - 1, false), Caller);
        assert_eq!(decide(&out(&[]), 64, true), Caller);
        // DATA out: DATA here (it may overtake DATA), control behind it.
        assert_eq!(decide(&out(&[false]), 64, false), Caller);
        assert_eq!(decide(&out(&[false]), 1, false), Caller);
        assert_eq!(decide(&out(&[false]), 1, true), Thread);
        assert_eq!(decide(&out(&[false, false]), 64, true), Thread);
        // Control out: everything behind it.
        assert_eq!(decide(&out(&[true]), 64, false), Thread);
        assert_eq!(decide(&out(&[false, true]), 1, false), Thread);
    }

    /// A sender, a receiver that holds everything one test sends (root may
    /// force a buffer beyond `rmem_max`; otherwise the default must do), a
    /// transfer key and a sealer.
    async fn sockets_and_keys() -> (UdpSocket, UdpSocket, Arc<TransferKey>, ReplicastSealer) {
        let tx = UdpSocket::bind("[::1]:0").await.unwrap();
        let rx = UdpSocket::bind("[::1]:0").await.unwrap();
        let _ = rustix::net::sockopt::set_socket_recv_buffer_size_force(&rx, 16 << 20);
        let key = Arc::new(TransferKey::from_bytes([9; 32]));
        let sealer = ReplicastSealer::new(Arc::new(PairKeys::shared(1, 5, &[7; 32])), now_us());
        (tx, rx, key, sealer)
    }

    /// What `rx` holds: DATA indices in arrival order (each tagged one
    /// checked against `key`; a first pass tags every 32nd index and
    /// sends the rest untagged), and the position of the control
    /// datagram. (On loopback a datagram is queued by the time its send
    /// returns.)
    async fn received(rx: &UdpSocket, key: &TransferKey) -> (Vec<u32>, Option<usize>) {
        tokio::time::timeout(std::time::Duration::from_secs(10), rx.readable())
            .await
            .expect("nothing arrived")
            .unwrap();
        let mut buf = vec![0u8; 65536];
        let (mut data, mut control) = (Vec::new(), None);
        let mut tagged = 0usize;
        while let Ok(n) = rx.try_recv(&mut buf) {
            if &buf[..n] == CONTROL {
                control = Some(data.len());
                continue;
            }
            let d = KeyedData::parse(&buf[..n]).unwrap().expect("keyed DATA");
            // Every 32nd index is tagged, and each batch's first.
            assert!(
                d.is_tagged() || !d.index.is_multiple_of(32),
                "datagram {}",
                d.index
            );
            if d.is_tagged() {
                tagged += 1;
            }
            assert!(
                !d.is_tagged() || d.verify(key),
                "datagram {} fails its tag",
                d.index
            );
            data.push(d.index);
        }
        // Untagged DATA carried most of it: at most every 32nd index and
        // the first of each batch of up to 64 (and of each run after a
        // control datagram) went tagged.
        assert!(
            tagged <= data.len().div_ceil(32) + data.len().div_ceil(64) + 2,
            "{tagged} of {} tagged",
            data.len()
        );
        (data, control)
    }

    /// With the send thread every DATA datagram arrives once and intact,
    /// some of them sent by the thread, and a control datagram pushed
    /// among them arrives after every datagram pushed before it and before
    /// every one pushed after it.
    #[tokio::test(flavor = "current_thread")]
    async fn data_arrives_whole_and_nothing_passes_a_control_datagram() {
        let (tx, rx, key, mut sealer) = sockets_and_keys().await;
        let dest = rx.local_addr().unwrap();
        let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        let mut out =
            Outgoing::new(7, Arc::new(payload), 1400, vec![dest]).with_key(Some(key.clone()));
        let total = out.total();
        let mut batch = SendBatch::with_thread(&tx, true).unwrap();
        let mut pushed = 0u32;
        while let Some(d) = out.next_datagram() {
            assert!(batch.push(&tx, &mut sealer, now_us(), &d).await > 0);
            pushed += 1;
            if pushed == 150 {
                batch.push_bytes(&tx, CONTROL, dest).await;
            }
        }
        batch.flush(&tx).await;
        batch.drain().await;
        assert_eq!(batch.datagrams, u64::from(total) + 1);
        assert!(batch.threaded > 0, "the thread sent nothing");
        let (data, control) = received(&rx, &key).await;
        let mut sorted = data.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            (0..total).collect::<Vec<_>>(),
            "lost or repeated DATA"
        );
        assert_eq!(
            data.last(),
            Some(&(total - 1)),
            "the end of the pass overtook DATA"
        );
        let at = control.expect("control datagram lost");
        let mut before = data[..at].to_vec();
        before.sort_unstable();
        assert_eq!(
            before,
            (0..150).collect::<Vec<_>>(),
            "the control datagram overtook DATA or was overtaken"
        );
    }

    /// Dropping the batch sends what the thread still has before its
    /// thread ends.
    #[tokio::test(flavor = "current_thread")]
    async fn a_dropped_batch_still_sends_what_the_thread_has() {
        let (tx, rx, key, mut sealer) = sockets_and_keys().await;
        let dest = rx.local_addr().unwrap();
        let mut out = Outgoing::new(8, Arc::new(vec![5u8; 64 * 1400]), 1400, vec![dest])
            .with_key(Some(key.clone()));
        let mut batch = SendBatch::with_thread(&tx, true).unwrap();
        while let Some(d) = out.next_datagram() {
            batch.push(&tx, &mut sealer, now_us(), &d).await;
        }
        // 64 datagrams: the first 63 in one batch, handed to the thread
        // (nothing was out); the end of the pass alone after them
        // (`OutData::ends_pass`), from the thread if it still has the 63,
        // else from the caller (`decide`): which one is the thread's race.
        assert_eq!(batch.datagrams, 64, "{} total", out.total());
        assert!(
            matches!(batch.threaded, 63 | 64),
            "{} of 64 went to the thread",
            batch.threaded
        );
        drop(batch);
        let (data, _) = received(&rx, &key).await;
        assert_eq!(data.len(), 64);
    }
}
