//! A turn's datagrams leave in one `sendmmsg(2)` (up to [`MAX_PER_CALL`]
//! per call) instead of one `sendto` each.
//!
//! Why it matters on the grant path: every datagram wakes its receiver
//! (an agent, a storage node), and a woken task may preempt the sender
//! on its way back from the syscall. With one `sendto` per datagram the
//! three SETs of a miss went out one preemption apart (the first agent
//! ran before the second SET was sent); with one `sendmmsg` all three are
//! queued before anyone runs, and a turn with many grants costs one
//! syscall instead of one each. (`quinn-udp` sends one destination per
//! call, with GSO; these datagrams go to many destinations.)

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use tokio::net::UdpSocket;

/// Most datagrams handed to the kernel in one call.
pub const MAX_PER_CALL: usize = 64;

/// Sends every datagram of `out`, in order. A datagram the kernel
/// refuses is logged and skipped (as a lost datagram: retransmission or
/// the client's retry covers it); a full socket buffer waits for room.
pub async fn send_all(socket: &UdpSocket, out: &[(SocketAddr, Vec<u8>)]) {
    let mut i = 0;
    while i < out.len() {
        let end = (i + MAX_PER_CALL).min(out.len());
        let chunk = &out[i..end];
        let sent = if chunk.len() > 1 {
            socket
                .try_io(tokio::io::Interest::WRITABLE, || {
                    sendmmsg(socket.as_raw_fd(), chunk)
                })
                .ok()
        } else {
            None
        };
        match sent {
            Some(n) if n > 0 => i += n,
            _ => {
                // One alone: waits for room, reports its own error.
                let (to, bytes) = &out[i];
                if let Err(e) = socket.send_to(bytes, *to).await {
                    tracing::debug!(%to, error = %e, "send failed");
                }
                i += 1;
            }
        }
    }
}

fn sendmmsg(fd: std::os::fd::RawFd, chunk: &[(SocketAddr, Vec<u8>)]) -> std::io::Result<usize> {
    use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage};
    use std::io::IoSlice;
    let slices: Vec<[IoSlice<'_>; 1]> = chunk.iter().map(|(_, b)| [IoSlice::new(b)]).collect();
    let addrs: Vec<Option<SockaddrStorage>> = chunk
        .iter()
        .map(|(a, _)| Some(SockaddrStorage::from(*a)))
        .collect();
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(chunk.len(), None);
    let results = nix::sys::socket::sendmmsg(
        fd,
        &mut headers,
        &slices,
        &addrs,
        [],
        MsgFlags::MSG_DONTWAIT,
    )
    .map_err(std::io::Error::from)?;
    Ok(results.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Datagrams to several receivers in one call arrive, each intact and
    /// at its own receiver, in order.
    #[tokio::test]
    async fn every_datagram_reaches_its_receiver() {
        let tx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let out: Vec<(SocketAddr, Vec<u8>)> = (0..150u8)
            .map(|i| {
                (
                    if i % 3 == 0 { ba } else { aa },
                    vec![i; 10 + usize::from(i)],
                )
            })
            .collect();
        send_all(&tx, &out).await;
        let mut buf = [0u8; 512];
        for (to, want) in &out {
            let s = if *to == aa { &a } else { &b };
            let (n, from) = s.recv_from(&mut buf).await.unwrap();
            assert_eq!(from, tx.local_addr().unwrap());
            assert_eq!(&buf[..n], want.as_slice());
        }
    }

    /// A datagram the kernel refuses (too long for UDP) is skipped; the
    /// ones after it still go.
    #[tokio::test]
    async fn a_refused_datagram_does_not_stop_the_others() {
        let tx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let rx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = rx.local_addr().unwrap();
        let out = vec![
            (to, b"first".to_vec()),
            (to, vec![0u8; 70_000]),
            (to, b"third".to_vec()),
        ];
        send_all(&tx, &out).await;
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"first");
        let n = rx.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"third");
    }
}
