//! The test's side of one agent: a UDP socket in the agent's namespace that
//! plays the controller (seals instructions, opens the agent's answers).
//! Shared by `lab_linux_bridge.rs` (through `common/`), `behaviour.rs` and the
//! benches; each uses a part of it.
#![allow(dead_code)]

use std::net::{Ipv6Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use subcast_proto::{Message, Opener, Sealer, now_us};

/// The agent's UDP port inside its namespace.
pub const AGENT_PORT: u16 = 7410;

#[derive(Debug)]
pub struct CtlSocket {
    pub switch: String,
    pub log: PathBuf,
    pub ctl: UdpSocket,
    pub sealer: Sealer,
    pub opener: Opener,
}

impl CtlSocket {
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Receives one datagram from the agent and opens it with the agent key.
    pub fn recv(&mut self) -> Result<Message, String> {
        let mut buf = vec![0u8; 9300];
        let (n, _) = self.ctl.recv_from(&mut buf).map_err(|e| e.to_string())?;
        self.opener
            .open(&buf[..n], now_us())
            .map(|d| d.message)
            .map_err(|e| e.to_string())
    }

    /// Receives until an ACK, BATCH_ACK or NAK arrives (skipping HELLOs and
    /// HEARTBEATs).
    /// Gives up after 10 s even if other messages keep arriving.
    pub fn answer(&mut self) -> Message {
        self.recv_until("answer", |m| match m {
            m @ (Message::Ack(_) | Message::BatchAck(_) | Message::Nak(_)) => Some(m),
            _ => None,
        })
    }

    /// Receives until `pick` accepts a message (within 10 s).
    pub fn recv_until<T>(&mut self, what: &str, mut pick: impl FnMut(Message) -> Option<T>) -> T {
        let t0 = std::time::Instant::now();
        loop {
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(10),
                "no {what} from agent {} within 10 s; log:\n{}",
                self.switch,
                self.log_text()
            );
            match self.recv() {
                Ok(m) => {
                    if let Some(t) = pick(m) {
                        return t;
                    }
                }
                Err(e) => panic!(
                    "no {what} from agent {}: {e}; log:\n{}",
                    self.switch,
                    self.log_text()
                ),
            }
        }
    }

    pub fn send_raw(&self, bytes: &[u8]) {
        self.ctl
            .send_to(bytes, SocketAddr::from((Ipv6Addr::LOCALHOST, AGENT_PORT)))
            .unwrap();
    }

    pub fn seal(&mut self, m: &Message) -> Vec<u8> {
        self.sealer.seal(m, now_us())
    }

    /// Seals, sends and waits for the answer.
    pub fn request(&mut self, m: &Message) -> Message {
        let b = self.seal(m);
        self.send_raw(&b);
        self.answer()
    }
}
