//! `subcast-lab-udp`: send or receive IPv6 UDP multicast, for use inside lab
//! namespaces with `ip netns exec NS subcast-lab-udp ...`.

use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use socket2::{Domain, Protocol, Socket, Type};

#[derive(Parser, Debug)]
#[command(about = "Send or receive IPv6 UDP multicast datagrams in a lab namespace")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Send COUNT datagrams to `[GROUP]:PORT` out of IFACE.
    Send {
        #[arg(long)]
        group: Ipv6Addr,
        #[arg(long)]
        port: u16,
        #[arg(long, default_value = "eth0")]
        iface: String,
        #[arg(long, default_value_t = 1)]
        count: u64,
        /// Payload bytes per datagram (first 8: sequence number).
        #[arg(long, default_value_t = 64)]
        len: usize,
        #[arg(long, default_value_t = 1)]
        hops: u32,
        /// Pause between datagrams, microseconds.
        #[arg(long, default_value_t = 0)]
        interval_us: u64,
    },
    /// Bind `[::]:PORT` (optionally join groups on IFACE), count datagrams until COUNT
    /// arrived or the socket was quiet for QUIET_MS; print JSON counts.
    Recv {
        #[arg(long)]
        port: u16,
        #[arg(long, default_value = "eth0")]
        iface: String,
        /// Groups to join (MLD); none by default.
        #[arg(long)]
        join: Vec<Ipv6Addr>,
        #[arg(long)]
        count: Option<u64>,
        #[arg(long, default_value_t = 1000)]
        quiet_ms: u64,
        /// Give up after this long regardless.
        #[arg(long, default_value_t = 30_000)]
        timeout_ms: u64,
    },
}

fn ifindex(name: &str) -> Result<u32> {
    nix::net::if_::if_nametoindex(name)
        .with_context(|| format!("no interface {name} in this namespace"))
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Send {
            group,
            port,
            iface,
            count,
            len,
            hops,
            interval_us,
        } => {
            if !group.is_multicast() {
                bail!("{group} is not a multicast address");
            }
            let idx = ifindex(&iface)?;
            let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
            s.set_multicast_if_v6(idx)?;
            s.set_multicast_hops_v6(hops)?;
            s.set_multicast_loop_v6(false)?;
            let scope = if group.segments()[0] & 0xf <= 2 {
                idx
            } else {
                0
            };
            let dst = SocketAddrV6::new(group, port, 0, scope).into();
            let mut buf = vec![0x5cu8; len];
            for seq in 0..count {
                let n = buf.len().min(8);
                buf[..n].copy_from_slice(&seq.to_be_bytes()[..n]);
                s.send_to(&buf, &dst).context("sending")?;
                if interval_us > 0 {
                    std::thread::sleep(Duration::from_micros(interval_us));
                }
            }
            println!("{{\"sent\":{count}}}");
        }
        Cmd::Recv {
            port,
            iface,
            join,
            count,
            quiet_ms,
            timeout_ms,
        } => {
            let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
            s.set_only_v6(true)?;
            s.set_reuse_address(true)?;
            s.bind(&SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0).into())?;
            if !join.is_empty() {
                let idx = ifindex(&iface)?;
                for g in &join {
                    s.join_multicast_v6(g, idx)?;
                }
            }
            let sock: std::net::UdpSocket = s.into();
            sock.set_read_timeout(Some(Duration::from_millis(quiet_ms.max(1))))?;
            let end = Instant::now() + Duration::from_millis(timeout_ms);
            let (mut n, mut bytes) = (0u64, 0u64);
            let mut buf = vec![0u8; 65536];
            while Instant::now() < end && count.is_none_or(|c| n < c) {
                match sock.recv_from(&mut buf) {
                    Ok((len, _)) => {
                        n += 1;
                        bytes += len as u64;
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        break;
                    }
                    Err(e) => return Err(e).context("receiving"),
                }
            }
            println!("{{\"datagrams\":{n},\"bytes\":{bytes}}}");
        }
    }
    Ok(())
}
