//! A storage node reports what it stores to its site's gateway.
//!
//! One TCP connection (handshake with the `notify_secret`), a NOTE frame
//! per chunk stored: `kind:1 | id:32 | size:4 | manifest bytes (manifests
//! only)`. After a reconnection every note of this run is sent again (the
//! gateway ignores what it knows).

use super::wire::{self, Purpose};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;
use subcast_proto::replicast::{ChunkKind, Hash32};
use tokio::sync::mpsc;

/// The daemon's side: remembers store jobs and reports the ones that
/// succeeded.
#[derive(Debug)]
pub struct Notifier {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    jobs: HashMap<u64, Vec<u8>>,
}

impl Notifier {
    /// Starts the reporting task (reconnects every 500 ms while the
    /// gateway is unreachable).
    pub fn spawn(addr: SocketAddr, secret: [u8; 32], node_id: u32) -> Notifier {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(report(addr, secret, format!("node-{node_id}"), rx));
        Notifier {
            tx,
            jobs: HashMap::new(),
        }
    }

    /// A store job was handed to the disk.
    pub fn submitted(&mut self, job: u64, kind: ChunkKind, id: &Hash32, payload: &[u8]) {
        let m = kind == ChunkKind::Manifest;
        let mut note = vec![u8::from(m)];
        note.extend_from_slice(id);
        note.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        if m {
            note.extend_from_slice(payload);
        }
        self.jobs.insert(job, note);
    }

    /// A store job ended (reported only if it succeeded).
    pub fn done(&mut self, job: u64, ok: bool) {
        if let Some(n) = self.jobs.remove(&job)
            && ok
        {
            let _ = self.tx.send(n);
        }
    }
}

async fn report(
    addr: SocketAddr,
    secret: [u8; 32],
    me: String,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
) {
    let mut history: Vec<Vec<u8>> = Vec::new();
    loop {
        let r: anyhow::Result<()> = async {
            let mut s =
                tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr))
                    .await??;
            s.set_nodelay(true)?;
            let (_, mut keys) =
                wire::client_handshake(&mut s, Purpose::Notify, &me, &secret).await?;
            tracing::info!(%addr, "reporting stores to the site gateway");
            for n in &history {
                wire::write_frame(&mut s, &mut keys.send, wire::T_NOTE, &[n]).await?;
            }
            while let Some(n) = rx.recv().await {
                history.push(n);
                let n = history.last().expect("just pushed");
                wire::write_frame(&mut s, &mut keys.send, wire::T_NOTE, &[n]).await?;
            }
            Ok(())
        }
        .await;
        match r {
            Ok(()) => return,
            Err(e) => tracing::debug!(%addr, error = %e, "site gateway not reachable; retrying"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A NOTE frame's body: (manifest?, id, size, manifest bytes).
pub fn parse_note(body: &[u8]) -> anyhow::Result<(bool, Hash32, u32, &[u8])> {
    anyhow::ensure!(body.len() >= 37, "short note");
    let id: Hash32 = body[1..33].try_into().expect("32 bytes");
    let size = u32::from_be_bytes(body[33..37].try_into().expect("4 bytes"));
    Ok((body[0] == 1, id, size, &body[37..]))
}
