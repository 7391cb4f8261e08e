//! A netlink socket for MDB requests: batches (many requests in one
//! sendmsg, errors only, then one barrier acknowledgement) and dumps.

use super::mdb::{self, SetOp};
use crate::backend::BackendError;
use netlink_sys::{AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket, protocols::NETLINK_ROUTE};
use std::net::Ipv6Addr;
use std::time::Duration;

/// How long to wait for the kernel to answer one netlink request.
pub const NETLINK_TIMEOUT: Duration = Duration::from_secs(2);

/// One MDB request of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    pub op: SetOp,
    pub port: u32,
    pub vid: u16,
    pub group: Ipv6Addr,
}

/// Why a batch could not be completed.
#[derive(Debug)]
pub enum BatchError {
    /// Nothing was sent: nothing applied.
    NotSent(BackendError),
    /// Sent, but the kernel's answer did not arrive: unknown what applied.
    NoAnswer(BackendError),
}

pub fn unreachable(what: &str, e: impl std::fmt::Display) -> BackendError {
    BackendError::Unreachable(format!("{what}: {e}"))
}

pub struct MdbSocket {
    sock: TokioSocket,
    seq: u32,
}

impl std::fmt::Debug for MdbSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MdbSocket").field("seq", &self.seq).finish()
    }
}

impl MdbSocket {
    pub fn new() -> Result<Self, BackendError> {
        let mut sock =
            TokioSocket::new(NETLINK_ROUTE).map_err(|e| unreachable("netlink socket", e))?;
        sock.socket_mut()
            .bind_auto()
            .map_err(|e| unreachable("netlink bind", e))?;
        // Errors carry only the request header, not the whole request.
        let _ = sock.socket_ref().set_cap_ack(true);
        Ok(MdbSocket { sock, seq: 1 })
    }

    /// Sends every op in one datagram (without acknowledgements) followed
    /// by a barrier, and returns the (index, errno) of each op that failed.
    pub async fn batch(
        &mut self,
        bridge: u32,
        ops: &[Op],
    ) -> Result<Vec<(usize, i32)>, BatchError> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let first = self.seq;
        self.seq = self.seq.wrapping_add(ops.len() as u32 + 1);
        let barrier = first.wrapping_add(ops.len() as u32);
        let mut buf = Vec::with_capacity(ops.len() * 56 + 16);
        for (i, o) in ops.iter().enumerate() {
            let seq = first.wrapping_add(i as u32);
            mdb::emit_op(&mut buf, o.op, false, seq, bridge, o.port, o.vid, &o.group);
        }
        mdb::emit_barrier(&mut buf, barrier);
        self.sock
            .send_to(&buf, &SocketAddr::new(0, 0))
            .await
            .map_err(|e| BatchError::NotSent(unreachable("netlink send", e)))?;
        let mut failed = Vec::new();
        loop {
            let replies = self.recv().await.map_err(BatchError::NoAnswer)?;
            for r in replies {
                if let mdb::Reply::Ack { seq, errno } = r {
                    if seq == barrier {
                        return Ok(failed);
                    }
                    let i = seq.wrapping_sub(first) as usize;
                    if i < ops.len() && errno != 0 {
                        failed.push((i, -errno));
                    }
                }
            }
        }
    }

    async fn recv(&mut self) -> Result<Vec<mdb::Reply>, BackendError> {
        let (bytes, _) = tokio::time::timeout(NETLINK_TIMEOUT, self.sock.recv_from_full())
            .await
            .map_err(|_| unreachable("netlink", "kernel did not answer within 2 s"))?
            .map_err(|e| unreachable("netlink recv", e))?;
        mdb::decode_replies(&bytes).map_err(|e| BackendError::Other(format!("MDB answer: {e}")))
    }

    /// Every MDB entry of the network namespace.
    pub async fn dump(&mut self) -> Result<Vec<mdb::MdbEntry>, BackendError> {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let mut buf = Vec::new();
        mdb::emit_dump(&mut buf, seq);
        self.sock
            .send_to(&buf, &SocketAddr::new(0, 0))
            .await
            .map_err(|e| unreachable("netlink send", e))?;
        let mut out = Vec::new();
        loop {
            for r in self.recv().await? {
                match r {
                    mdb::Reply::Entries {
                        seq: s, entries, ..
                    } if s == seq => out.extend(entries),
                    mdb::Reply::Done { seq: s } if s == seq => return Ok(out),
                    mdb::Reply::Ack { seq: s, errno } if s == seq && errno != 0 => {
                        return Err(BackendError::Refused(format!(
                            "MDB dump: {}",
                            std::io::Error::from_raw_os_error(-errno)
                        )));
                    }
                    _ => {}
                }
            }
        }
    }
}
