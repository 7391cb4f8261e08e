//! The bench's clients: a storage node on the binary UDP path and one
//! keep-alive HTTP/1.1 connection (minimal on purpose: the bench measures
//! the server, not a client library), and Prometheus text parsing.

use anyhow::{Context, bail};
use std::net::SocketAddr;
use std::time::Duration;
use subcast_proto::{
    GrantOutcome, Key, Keyring, Member, Message, Opener, RendezvousRelease, RendezvousRequest,
    ReplayGuard, Sealer, now_us,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// A storage node on the binary path.
pub struct UdpNode {
    socket: UdpSocket,
    sealer: Sealer,
    opener: Opener,
    to: SocketAddr,
    buf: Vec<u8>,
    next: u64,
    /// The last answer's seal time to its receipt (µs): its one-way delay
    /// where the clocks agree (the same host).
    pub last_transit_us: u64,
}

/// A grant as the bench needs it.
pub struct Granted {
    pub lease_id: u64,
    pub reused: bool,
}

impl UdpNode {
    pub async fn new(key: Key, sender: u32, to: SocketAddr) -> anyhow::Result<UdpNode> {
        let bind: SocketAddr = if to.is_ipv6() {
            "[::]:0".parse()?
        } else {
            "0.0.0.0:0".parse()?
        };
        Ok(UdpNode {
            socket: UdpSocket::bind(bind).await?,
            sealer: Sealer::new(key.clone(), sender, now_us()),
            opener: Opener::new(Keyring::new([key]), ReplayGuard::default()),
            to,
            buf: vec![0u8; 10_000],
            next: u64::from(sender) << 32,
            last_transit_us: 0,
        })
    }

    async fn exchange(&mut self, m: &Message, id: u64) -> anyhow::Result<Message> {
        let bytes = self.sealer.seal(m, now_us());
        self.socket.send_to(&bytes, self.to).await?;
        loop {
            let n = tokio::time::timeout(Duration::from_secs(3), self.socket.recv(&mut self.buf))
                .await
                .context("no answer from the controller within 3 s")??;
            let now = now_us();
            let dg = self.opener.open(&self.buf[..n], now)?;
            if dg.message.txid() == Some(id) {
                self.last_transit_us = now.saturating_sub(dg.header.timestamp_us);
                return Ok(dg.message);
            }
        }
    }

    pub async fn grant(
        &mut self,
        vlan: u16,
        parent: std::net::Ipv6Addr,
        targets: &[Member],
        lifetime_ms: u32,
    ) -> anyhow::Result<Granted> {
        self.next += 1;
        let rid = self.next;
        let rq = Message::RendezvousRequest(RendezvousRequest {
            request_id: rid,
            vlan,
            parent,
            lifetime_ms,
            targets: targets.to_vec(),
        });
        let Message::RendezvousGrant(g) = self.exchange(&rq, rid).await? else {
            bail!("unexpected answer")
        };
        match g.outcome {
            GrantOutcome::Granted {
                lease_id, reused, ..
            } => Ok(Granted { lease_id, reused }),
            other => bail!("refused: {other:?}"),
        }
    }

    pub async fn release(&mut self, lease_id: u64) -> anyhow::Result<()> {
        let m = Message::RendezvousRelease(RendezvousRelease { lease_id });
        let Message::ReleaseAck(a) = self.exchange(&m, lease_id).await? else {
            bail!("unexpected answer to release")
        };
        if !a.released {
            bail!("release of {lease_id} not acknowledged");
        }
        Ok(())
    }
}

/// One keep-alive HTTP/1.1 connection.
pub struct Http {
    stream: TcpStream,
    buf: Vec<u8>,
    token: String,
}

impl Http {
    pub async fn connect(to: SocketAddr, token: &str) -> anyhow::Result<Http> {
        let stream = TcpStream::connect(to).await?;
        stream.set_nodelay(true)?;
        Ok(Http {
            stream,
            buf: Vec::new(),
            token: token.to_owned(),
        })
    }

    pub async fn call(
        &mut self,
        method: &str,
        path: &str,
        body: &str,
    ) -> anyhow::Result<(u16, String)> {
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: controller\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.token,
            body.len()
        );
        self.stream.write_all(req.as_bytes()).await?;
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_string();
                let status: u16 = head
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .context("bad status line")?;
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().to_owned())
                    })
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                while self.buf.len() < end + 4 + len {
                    let n = self.stream.read(&mut chunk).await?;
                    if n == 0 {
                        bail!("connection closed mid-body");
                    }
                    self.buf.extend_from_slice(&chunk[..n]);
                }
                let body = String::from_utf8_lossy(&self.buf[end + 4..end + 4 + len]).to_string();
                return Ok((status, body));
            }
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                bail!("connection closed");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// GET `url` ("host:port/path" or "[v6]:port/path") over plain HTTP/1.0.
pub async fn get_text(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_owned())
        .unwrap_or_default())
}

/// The `q` quantile (seconds) of histogram `name` among series whose
/// labels contain `filter`, from Prometheus text (buckets summed over
/// matching series, linear inside a bucket).
pub fn quantile(text: &str, name: &str, filter: &str, q: f64) -> Option<f64> {
    quantile_of(buckets(text, name, filter)?, q)
}

/// The same over what was observed between two scrapes.
pub fn quantile_between(
    before: &str,
    after: &str,
    name: &str,
    filter: &str,
    q: f64,
) -> Option<f64> {
    let mut b = buckets(after, name, filter)?;
    if let Some(old) = buckets(before, name, filter) {
        for (le, n) in &mut b {
            if let Some((_, o)) = old.iter().find(|x| x.0 == *le) {
                *n -= o;
            }
        }
    }
    quantile_of(b, q)
}

/// Cumulative buckets (upper bound, count) of histogram `name`, summed
/// over the series whose labels contain `filter`, sorted.
fn buckets(text: &str, name: &str, filter: &str) -> Option<Vec<(f64, f64)>> {
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    let prefix = format!("{name}_bucket{{");
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(&prefix) else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        if !labels.contains(filter) {
            continue;
        }
        let le = labels.split("le=\"").nth(1)?.split('"').next()?;
        let le: f64 = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().ok()?
        };
        let n: f64 = value.split_whitespace().next()?.parse().ok()?;
        match buckets.iter_mut().find(|b| b.0 == le) {
            Some(b) => b.1 += n,
            None => buckets.push((le, n)),
        }
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    Some(buckets)
}

fn quantile_of(buckets: Vec<(f64, f64)>, q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total == 0.0 {
        return None;
    }
    let want = q * total;
    let mut prev = (0.0, 0.0);
    for (le, n) in buckets {
        if n >= want {
            if le.is_infinite() {
                return Some(prev.0);
            }
            let frac = if n > prev.1 {
                (want - prev.1) / (n - prev.1)
            } else {
                0.0
            };
            return Some(prev.0 + (le - prev.0) * frac);
        }
        prev = (le, n);
    }
    None
}
