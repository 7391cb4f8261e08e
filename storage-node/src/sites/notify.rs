//! A storage node reports what it stores to its site's gateway.
//!
//! One TCP connection (handshake with the `notify_secret`), a NOTE frame
//! per chunk stored: `kind:1 | id:32 | size:4 | manifest bytes (manifests
//! only)`. At start the node reports every chunk its store already holds
//! (data chunks first, then manifests), so a gateway that restarted, or
//! started after the node, still learns all of the site's chunks. After a
//! reconnection every note of this run is sent again (the gateway ignores
//! what it knows).

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
    /// `held`: notes of what the store holds already ([`startup_notes`]).
    pub fn spawn(addr: SocketAddr, secret: [u8; 32], node_id: u32, held: Vec<Vec<u8>>) -> Notifier {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(report(addr, secret, format!("node-{node_id}"), held, rx));
        Notifier {
            tx,
            jobs: HashMap::new(),
        }
    }

    /// A store job was handed to the disk.
    pub fn submitted(&mut self, job: u64, kind: ChunkKind, id: &Hash32, payload: &[u8]) {
        self.jobs
            .insert(job, note(kind, id, payload.len(), payload));
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

/// A NOTE body: `payload` is read only for manifests.
fn note(kind: ChunkKind, id: &Hash32, size: usize, payload: &[u8]) -> Vec<u8> {
    let m = kind == ChunkKind::Manifest;
    let mut note = vec![u8::from(m)];
    note.extend_from_slice(id);
    note.extend_from_slice(&(size as u32).to_be_bytes());
    if m {
        note.extend_from_slice(payload);
    }
    note
}

/// Notes of every chunk `store` holds: data chunks (listed, sized by their
/// files), then manifests (read). Unreadable manifests are left out with a
/// warning (scrub deals with them).
pub fn startup_notes(store: &mut crate::store::Store) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for id in store.list_data() {
        if let Ok(m) = std::fs::metadata(store.path_of(ChunkKind::Data, &id)) {
            out.push(note(ChunkKind::Data, &id, m.len() as usize, &[]));
        }
    }
    for id in store.list_manifests() {
        match store.get(&id) {
            Ok(b) => out.push(note(ChunkKind::Manifest, &id, b.len(), &b)),
            Err(e) => tracing::warn!(error = %e, "manifest not reported to the gateway"),
        }
    }
    out
}

async fn report(
    addr: SocketAddr,
    secret: [u8; 32],
    me: String,
    held: Vec<Vec<u8>>,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
) {
    let mut history: Vec<Vec<u8>> = held;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Manifest;

    #[test]
    fn a_node_reports_what_its_store_held_before_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = crate::store::Store::open(dir.path()).unwrap();
        let data = b"chunk bytes".to_vec();
        let did = crate::chunking::chunk_id(&data);
        store.put(ChunkKind::Data, &did, &data).unwrap();
        let m = Manifest {
            name: "b/o".into(),
            version: 1,
            writer: 100,
            size: data.len() as u64,
            chunk_size: 1 << 20,
            object_hash: crate::chunking::chunk_id(&data),
            created_us: 1,
            chunks: vec![did],
            inline: None,
        };
        let mb = m.encode();
        let mid = crate::chunking::chunk_id(&mb);
        store.put(ChunkKind::Manifest, &mid, &mb).unwrap();
        let notes = startup_notes(&mut store);
        let parsed: Vec<_> = notes.iter().map(|n| parse_note(n).unwrap()).collect();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0], (false, did, data.len() as u32, &[][..]));
        assert_eq!(parsed[1], (true, mid, mb.len() as u32, &mb[..]));
    }
}
