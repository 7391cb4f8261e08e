//! A simulated agent for the benchmark: it opens instructions with the
//! real sealing and answers ACK, BATCH_ACK (all items) or nothing (HELLO_ACK),
//! without touching any switch. Not a substitute for `subcast-agent`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use subcast_proto::{
    Ack, BatchAck, Key, Keyring, Message, Nak, Opener, ReplayGuard, Sealer, now_us,
};
use tokio::net::UdpSocket;

#[derive(Debug)]
pub struct SimAgent {
    pub addr: SocketAddr,
    /// Instructions (BATCH items counted one by one) answered so far.
    pub answered: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl SimAgent {
    /// Binds `bind` (e.g. "127.0.0.1:0") and answers under `key` (which
    /// must be both the controller's key for it and its own).
    pub async fn spawn(switch_id: u32, key: Key, bind: SocketAddr) -> std::io::Result<SimAgent> {
        let socket = UdpSocket::bind(bind).await?;
        let addr = socket.local_addr()?;
        let answered = Arc::new(AtomicU64::new(0));
        let count = answered.clone();
        let task = tokio::spawn(async move {
            let mut opener = Opener::new(Keyring::new([key.clone()]), ReplayGuard::default());
            let mut sealer = Sealer::new(key, switch_id, now_us());
            let mut buf = vec![0u8; subcast_proto::MAX_DATAGRAM + 1];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                let reply = match opener.open(&buf[..n], now_us()) {
                    Ok(dg) => match dg.message {
                        Message::Batch(b) => {
                            count.fetch_add(b.items.len() as u64, Ordering::Relaxed);
                            Message::BatchAck(BatchAck {
                                txid: b.txid,
                                switch_id,
                                port_counts: vec![1; b.items.len()],
                            })
                        }
                        m => match m.txid() {
                            Some(txid) => {
                                count.fetch_add(1, Ordering::Relaxed);
                                Message::Ack(Ack {
                                    txid,
                                    switch_id,
                                    port_count: 1,
                                })
                            }
                            None => continue,
                        },
                    },
                    Err(e) => Message::Nak(Nak {
                        txid: subcast_proto::decode(&buf[..n])
                            .ok()
                            .and_then(|d| d.message.txid())
                            .unwrap_or(0),
                        switch_id,
                        reason: e.nak_reason(),
                        detail: e.to_string(),
                    }),
                };
                let bytes = sealer.seal(&reply, now_us());
                let _ = socket.send_to(&bytes, from).await;
            }
        });
        Ok(SimAgent {
            addr,
            answered,
            task,
        })
    }
}

impl Drop for SimAgent {
    fn drop(&mut self) {
        self.task.abort();
    }
}
