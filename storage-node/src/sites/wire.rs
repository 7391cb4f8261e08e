//! The gateway's TCP framing and the keyed-BLAKE3 handshake.
//!
//! Every connection (an inter-site link, or a node reporting its stores
//! to its site's gateway) starts with a challenge-response handshake on a
//! shared secret `S` (64 hex digits in a file, like the cluster secret):
//! `K = BLAKE3-derive_key(CONTEXT, S)`, with CONTEXT `"subcast site link
//! v1"` for links and `"subcast site notify v1"` for nodes.
//!
//! ```text
//! client -> server: "SCSG" | purpose:1 | name_len:1 name | nonce_c:32
//! server -> client: name_len:1 name | nonce_s:32 | keyed(K, "server" | T)
//! client -> server: keyed(K, "client" | T)
//!   T = purpose | client name | server name | nonce_c | nonce_s
//! ```
//!
//! Neither side learns anything from a peer without the secret, and a
//! recorded handshake does not replay (fresh nonces on both sides). After
//! it, frames are `len:4 | type:1 | body | tag:16` (len counts type, body
//! and tag), `tag` = the first 16 octets of `keyed(K_dir, seq:8 | len:4 |
//! type | body)`, `K_dir = keyed(K, "c2s" | T)` or `keyed(K, "s2c" | T)`
//! by direction and `seq` counting the direction's frames from 0: a frame
//! changed, dropped, replayed or reordered on the path ends the session
//! (the link reconnects and catches up). Chunks are also verified by their
//! hash on receipt.

use anyhow::{Context, bail};
use subcast_proto::replicast::Hash32;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// What a connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// An inter-site link between two gateways.
    Link = 1,
    /// A storage node of the site reporting what it stored.
    Notify = 2,
}

impl Purpose {
    fn context(self) -> &'static str {
        match self {
            Purpose::Link => "subcast site link v1",
            Purpose::Notify => "subcast site notify v1",
        }
    }
}

/// The handshake key of a secret.
pub fn handshake_key(p: Purpose, secret: &[u8; 32]) -> [u8; 32] {
    blake3::derive_key(p.context(), secret)
}

/// Largest frame accepted (a 16 MiB chunk and its header).
pub const MAX_FRAME: usize = (16 << 20) + 64;

pub const T_CHUNK: u8 = 1;
pub const T_HAVE: u8 = 2;
pub const T_HAVE_END: u8 = 3;
pub const T_PING: u8 = 4;
pub const T_NOTE: u8 = 5;

/// Ids per HAVE frame in a catch-up.
pub const HAVE_BATCH: usize = 4096;

fn transcript(p: Purpose, client: &str, server: &str, nc: &[u8; 32], ns: &[u8; 32]) -> Vec<u8> {
    let mut t = vec![p as u8];
    for n in [client, server] {
        t.push(n.len() as u8);
        t.extend_from_slice(n.as_bytes());
    }
    t.extend_from_slice(nc);
    t.extend_from_slice(ns);
    t
}

/// Octets of a frame's tag.
pub const TAG_LEN: usize = 16;

/// One direction of a session: its key and the next frame's number.
#[derive(Debug)]
pub struct FrameMac {
    key: [u8; 32],
    seq: u64,
}

impl FrameMac {
    fn tag(&mut self, len: u32, ty: u8, parts: &[&[u8]]) -> [u8; TAG_LEN] {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        h.update(&self.seq.to_be_bytes());
        h.update(&len.to_be_bytes());
        h.update(&[ty]);
        for p in parts {
            h.update(p);
        }
        self.seq += 1;
        h.finalize().as_bytes()[..TAG_LEN]
            .try_into()
            .expect("16 octets")
    }
}

/// A session's two directions, from the handshake.
#[derive(Debug)]
pub struct Session {
    pub send: FrameMac,
    pub recv: FrameMac,
}

fn session_keys(key: &[u8; 32], t: &[u8], client: bool) -> Session {
    let c2s = FrameMac {
        key: proof(key, b"c2s", t),
        seq: 0,
    };
    let s2c = FrameMac {
        key: proof(key, b"s2c", t),
        seq: 0,
    };
    if client {
        Session {
            send: c2s,
            recv: s2c,
        }
    } else {
        Session {
            send: s2c,
            recv: c2s,
        }
    }
}

fn proof(key: &[u8; 32], role: &[u8], t: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(role);
    h.update(t);
    *h.finalize().as_bytes()
}

async fn read_name<R: AsyncRead + Unpin>(r: &mut R) -> anyhow::Result<String> {
    let n = r.read_u8().await? as usize;
    let mut b = vec![0u8; n];
    r.read_exact(&mut b).await?;
    String::from_utf8(b).context("peer name is not UTF-8")
}

/// Client side: proves knowledge of `secret` to the server named back.
/// Returns the server's name and the session's frame keys.
pub async fn client_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    p: Purpose,
    me: &str,
    secret: &[u8; 32],
) -> anyhow::Result<(String, Session)> {
    let key = handshake_key(p, secret);
    let nc: [u8; 32] = rand::random();
    let mut hello = b"SCSG".to_vec();
    hello.push(p as u8);
    hello.push(me.len() as u8);
    hello.extend_from_slice(me.as_bytes());
    hello.extend_from_slice(&nc);
    s.write_all(&hello).await?;
    let server = read_name(s).await?;
    let mut ns = [0u8; 32];
    s.read_exact(&mut ns).await?;
    let mut ps = [0u8; 32];
    s.read_exact(&mut ps).await?;
    let t = transcript(p, me, &server, &nc, &ns);
    if !constant_eq(&ps, &proof(&key, b"server", &t)) {
        bail!("peer {server:?} failed the handshake: check that both ends use the same secret");
    }
    s.write_all(&proof(&key, b"client", &t)).await?;
    s.flush().await?;
    Ok((server, session_keys(&key, &t, true)))
}

/// Server side: `secret_of(purpose, client name)` gives the secret the
/// client must know (None: refused). Returns (purpose, client name) and
/// the session's frame keys.
pub async fn server_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    me: &str,
    secret_of: impl Fn(Purpose, &str) -> Option<[u8; 32]>,
) -> anyhow::Result<(Purpose, String, Session)> {
    let mut magic = [0u8; 4];
    s.read_exact(&mut magic).await?;
    if &magic != b"SCSG" {
        bail!("not a subcast gateway connection");
    }
    let p = match s.read_u8().await? {
        1 => Purpose::Link,
        2 => Purpose::Notify,
        x => bail!("unknown connection purpose {x}"),
    };
    let client = read_name(s).await?;
    let mut nc = [0u8; 32];
    s.read_exact(&mut nc).await?;
    let Some(secret) = secret_of(p, &client) else {
        bail!("no link or node named {client:?} is configured here");
    };
    let key = handshake_key(p, &secret);
    let ns: [u8; 32] = rand::random();
    let t = transcript(p, &client, me, &nc, &ns);
    let mut out = vec![me.len() as u8];
    out.extend_from_slice(me.as_bytes());
    out.extend_from_slice(&ns);
    out.extend_from_slice(&proof(&key, b"server", &t));
    s.write_all(&out).await?;
    s.flush().await?;
    let mut pc = [0u8; 32];
    s.read_exact(&mut pc).await?;
    if !constant_eq(&pc, &proof(&key, b"client", &t)) {
        bail!("{client:?} failed the handshake: check that both ends use the same secret");
    }
    let keys = session_keys(&key, &t, false);
    Ok((p, client, keys))
}

fn constant_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Writes one frame, tagged with the session's sending key.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    mac: &mut FrameMac,
    ty: u8,
    parts: &[&[u8]],
) -> std::io::Result<usize> {
    let len: usize = 1 + parts.iter().map(|p| p.len()).sum::<usize>() + TAG_LEN;
    let tag = mac.tag(len as u32, ty, parts);
    let mut head = (len as u32).to_be_bytes().to_vec();
    head.push(ty);
    w.write_all(&head).await?;
    for p in parts {
        w.write_all(p).await?;
    }
    w.write_all(&tag).await?;
    Ok(len + 4)
}

/// Reads one frame: (type, body), refused unless its tag is the session's.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    mac: &mut FrameMac,
) -> anyhow::Result<(u8, Vec<u8>)> {
    let len = r.read_u32().await? as usize;
    if !(1 + TAG_LEN..=MAX_FRAME + TAG_LEN).contains(&len) {
        bail!("frame of {len} bytes refused");
    }
    let ty = r.read_u8().await?;
    let mut body = vec![0u8; len - 1 - TAG_LEN];
    r.read_exact(&mut body).await?;
    let mut tag = [0u8; TAG_LEN];
    r.read_exact(&mut tag).await?;
    let want = mac.tag(len as u32, ty, &[&body]);
    if tag.iter().zip(&want).fold(0u8, |a, (x, y)| a | (x ^ y)) != 0 {
        bail!(
            "frame {} failed authentication (changed, dropped or replayed on the path): session ended",
            mac.seq - 1
        );
    }
    Ok((ty, body))
}

/// A chunk frame's body: kind (0 data, 1 manifest), id, payload.
pub fn split_chunk(body: &[u8]) -> anyhow::Result<(bool, Hash32, &[u8])> {
    if body.len() < 33 {
        bail!("short chunk frame");
    }
    let manifest = body[0] == 1;
    let id: Hash32 = body[1..33].try_into().expect("32 bytes");
    Ok((manifest, id, &body[33..]))
}

/// A list of ids (HAVE).
pub fn split_ids(body: &[u8]) -> Vec<Hash32> {
    body.chunks_exact(32)
        .map(|c| c.try_into().expect("32 bytes"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncWriteExt, DuplexStream};

    /// Both ends of a session over a duplex stream.
    async fn pair() -> (DuplexStream, Session, DuplexStream, Session) {
        let s1 = [7u8; 32];
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let srv = tokio::spawn(async move {
            let r = server_handshake(&mut b, "B", |_, _| Some(s1)).await;
            (b, r)
        });
        let (_, ck) = client_handshake(&mut a, Purpose::Link, "A", &s1)
            .await
            .unwrap();
        let (b, r) = srv.await.unwrap();
        (a, ck, b, r.unwrap().2)
    }

    #[tokio::test]
    async fn handshake_accepts_the_secret_and_refuses_another() {
        let s1 = [7u8; 32];
        let (mut a, mut b) = tokio::io::duplex(4096);
        let srv = tokio::spawn(async move {
            server_handshake(&mut b, "B", |_, n| (n == "A").then_some(s1)).await
        });
        let (name, _) = client_handshake(&mut a, Purpose::Link, "A", &s1)
            .await
            .unwrap();
        assert_eq!(name, "B");
        let (p, peer, _) = srv.await.unwrap().unwrap();
        assert_eq!((p, peer.as_str()), (Purpose::Link, "A"));

        let (mut a, mut b) = tokio::io::duplex(4096);
        let srv = tokio::spawn(async move { server_handshake(&mut b, "B", |_, _| Some(s1)).await });
        assert!(
            client_handshake(&mut a, Purpose::Link, "A", &[8u8; 32])
                .await
                .is_err()
        );
        drop(a);
        assert!(srv.await.unwrap().is_err());
    }

    #[tokio::test]
    async fn frames_pass_both_ways_under_the_session_keys() {
        let (mut a, mut ck, mut b, mut sk) = pair().await;
        write_frame(&mut a, &mut ck.send, T_HAVE, &[b"one", b"two"])
            .await
            .unwrap();
        write_frame(&mut b, &mut sk.send, T_PING, &[])
            .await
            .unwrap();
        write_frame(&mut a, &mut ck.send, T_PING, &[])
            .await
            .unwrap();
        assert_eq!(
            read_frame(&mut b, &mut sk.recv).await.unwrap(),
            (T_HAVE, b"onetwo".to_vec())
        );
        assert_eq!(
            read_frame(&mut b, &mut sk.recv).await.unwrap(),
            (T_PING, vec![])
        );
        assert_eq!(
            read_frame(&mut a, &mut ck.recv).await.unwrap(),
            (T_PING, vec![])
        );
    }

    #[tokio::test]
    async fn a_changed_replayed_dropped_or_foreign_frame_ends_the_session() {
        // Changed: one body octet flipped on the path.
        let (mut a, mut ck, mut b, mut sk) = pair().await;
        let mut raw = Vec::new();
        write_frame(&mut raw, &mut ck.send, T_CHUNK, &[b"payload"])
            .await
            .unwrap();
        raw[6] ^= 1;
        a.write_all(&raw).await.unwrap();
        let e = read_frame(&mut b, &mut sk.recv).await.unwrap_err();
        assert!(e.to_string().contains("failed authentication"), "{e}");

        // Replayed: the same frame twice.
        let (mut a, mut ck, mut b, mut sk) = pair().await;
        let mut raw = Vec::new();
        write_frame(&mut raw, &mut ck.send, T_HAVE, &[&[1u8; 32]])
            .await
            .unwrap();
        a.write_all(&raw).await.unwrap();
        a.write_all(&raw).await.unwrap();
        read_frame(&mut b, &mut sk.recv).await.unwrap();
        assert!(read_frame(&mut b, &mut sk.recv).await.is_err());

        // Dropped: frame 0 never arrives, frame 1 does.
        let (mut a, mut ck, mut b, mut sk) = pair().await;
        let mut lost = Vec::new();
        write_frame(&mut lost, &mut ck.send, T_PING, &[])
            .await
            .unwrap();
        write_frame(&mut a, &mut ck.send, T_PING, &[])
            .await
            .unwrap();
        assert!(read_frame(&mut b, &mut sk.recv).await.is_err());

        // Another session's keys (same secret, fresh nonces) do not fit.
        let (_a, mut ck, _b, _sk) = pair().await;
        let (_a2, _ck2, _b2, mut sk2) = pair().await;
        let mut raw = Vec::new();
        write_frame(&mut raw, &mut ck.send, T_PING, &[])
            .await
            .unwrap();
        assert!(read_frame(&mut &raw[..], &mut sk2.recv).await.is_err());
    }
}
