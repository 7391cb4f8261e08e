//! The message enum, its type codes, and sealing/opening whole datagrams.

use crate::auth::{Key, Keyring, ReplayGuard};
use crate::batch::{Batch, BatchAck};
pub use crate::envelope::MAX_DATAGRAM;
use crate::envelope::{Body, Envelope, Origin, decode_any, open_any, seal_any, verify_envelope};
use crate::error::{DecodeError, OpenError};
use crate::push::{Ack, Clear, Heartbeat, Hello, HelloAck, Nak, SetSubset};
use crate::rendezvous::{ReleaseAck, RendezvousGrant, RendezvousRelease, RendezvousRequest};
use crate::wire::{Reader, Writer};
use serde::{Deserialize, Serialize};

/// Message type codes (the header's Type octet).
pub mod msg_type {
    pub const HELLO: u8 = 0x01;
    pub const HEARTBEAT: u8 = 0x02;
    pub const HELLO_ACK: u8 = 0x03;
    pub const SET_SUBSET: u8 = 0x10;
    pub const CLEAR: u8 = 0x11;
    pub const ACK: u8 = 0x12;
    pub const NAK: u8 = 0x13;
    pub const BATCH: u8 = 0x14;
    pub const BATCH_ACK: u8 = 0x15;
    pub const RENDEZVOUS_REQUEST: u8 = 0x20;
    pub const RENDEZVOUS_GRANT: u8 = 0x21;
    pub const RENDEZVOUS_RELEASE: u8 = 0x22;
    pub const RELEASE_ACK: u8 = 0x23;
}

/// Every message of the push and rendezvous protocols.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Message {
    Hello(Hello),
    Heartbeat(Heartbeat),
    HelloAck(HelloAck),
    SetSubset(SetSubset),
    Clear(Clear),
    Ack(Ack),
    Nak(Nak),
    Batch(Batch),
    BatchAck(BatchAck),
    RendezvousRequest(RendezvousRequest),
    RendezvousGrant(RendezvousGrant),
    RendezvousRelease(RendezvousRelease),
    ReleaseAck(ReleaseAck),
}

impl Message {
    pub fn msg_type(&self) -> u8 {
        use msg_type::*;
        match self {
            Message::Hello(_) => HELLO,
            Message::Heartbeat(_) => HEARTBEAT,
            Message::HelloAck(_) => HELLO_ACK,
            Message::SetSubset(_) => SET_SUBSET,
            Message::Clear(_) => CLEAR,
            Message::Ack(_) => ACK,
            Message::Nak(_) => NAK,
            Message::Batch(_) => BATCH,
            Message::BatchAck(_) => BATCH_ACK,
            Message::RendezvousRequest(_) => RENDEZVOUS_REQUEST,
            Message::RendezvousGrant(_) => RENDEZVOUS_GRANT,
            Message::RendezvousRelease(_) => RENDEZVOUS_RELEASE,
            Message::ReleaseAck(_) => RELEASE_ACK,
        }
    }

    /// Name used in logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Message::Hello(_) => "HELLO",
            Message::Heartbeat(_) => "HEARTBEAT",
            Message::HelloAck(_) => "HELLO_ACK",
            Message::SetSubset(_) => "SET_SUBSET",
            Message::Clear(_) => "CLEAR",
            Message::Ack(_) => "ACK",
            Message::Nak(_) => "NAK",
            Message::Batch(_) => "BATCH",
            Message::BatchAck(_) => "BATCH_ACK",
            Message::RendezvousRequest(_) => "RENDEZVOUS_REQUEST",
            Message::RendezvousGrant(_) => "RENDEZVOUS_GRANT",
            Message::RendezvousRelease(_) => "RENDEZVOUS_RELEASE",
            Message::ReleaseAck(_) => "RELEASE_ACK",
        }
    }

    /// The transaction or request id, for messages that carry one.
    pub fn txid(&self) -> Option<u64> {
        match self {
            Message::SetSubset(m) => Some(m.txid),
            Message::Clear(m) => Some(m.txid),
            Message::Ack(m) => Some(m.txid),
            Message::Nak(m) => Some(m.txid),
            Message::Batch(m) => Some(m.txid),
            Message::BatchAck(m) => Some(m.txid),
            Message::RendezvousRequest(m) => Some(m.request_id),
            Message::RendezvousGrant(m) => Some(m.request_id),
            Message::RendezvousRelease(m) => Some(m.lease_id),
            Message::ReleaseAck(m) => Some(m.lease_id),
            Message::Hello(_) | Message::Heartbeat(_) | Message::HelloAck(_) => None,
        }
    }
}

impl Body for Message {
    fn msg_type(&self) -> u8 {
        Message::msg_type(self)
    }

    fn emit_body(&self, w: &mut Writer) {
        match self {
            Message::Hello(m) => m.emit(w),
            Message::Heartbeat(m) => m.emit(w),
            Message::HelloAck(m) => m.emit(w),
            Message::SetSubset(m) => m.emit(w),
            Message::Clear(m) => m.emit(w),
            Message::Ack(m) => m.emit(w),
            Message::Nak(m) => m.emit(w),
            Message::Batch(m) => m.emit(w),
            Message::BatchAck(m) => m.emit(w),
            Message::RendezvousRequest(m) => m.emit(w),
            Message::RendezvousGrant(m) => m.emit(w),
            Message::RendezvousRelease(m) => m.emit(w),
            Message::ReleaseAck(m) => m.emit(w),
        }
    }

    fn parse_body(msg_type: u8, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        use msg_type::*;
        Ok(match msg_type {
            HELLO => Message::Hello(Hello::parse(r)?),
            HEARTBEAT => Message::Heartbeat(Heartbeat::parse(r)?),
            HELLO_ACK => Message::HelloAck(HelloAck::parse(r)?),
            SET_SUBSET => Message::SetSubset(SetSubset::parse(r)?),
            CLEAR => Message::Clear(Clear::parse(r)?),
            ACK => Message::Ack(Ack::parse(r)?),
            NAK => Message::Nak(Nak::parse(r)?),
            BATCH => Message::Batch(Batch::parse(r)?),
            BATCH_ACK => Message::BatchAck(BatchAck::parse(r)?),
            RENDEZVOUS_REQUEST => Message::RendezvousRequest(RendezvousRequest::parse(r)?),
            RENDEZVOUS_GRANT => Message::RendezvousGrant(RendezvousGrant::parse(r)?),
            RENDEZVOUS_RELEASE => Message::RendezvousRelease(RendezvousRelease::parse(r)?),
            RELEASE_ACK => Message::ReleaseAck(ReleaseAck::parse(r)?),
            other => return Err(DecodeError::UnknownType(other)),
        })
    }
}

/// A decoded push or rendezvous datagram.
pub type Datagram = Envelope<Message>;

/// Encodes and tags `msg`. The result is at most [`MAX_DATAGRAM`] bytes
/// for any message whose strings and lists are within their limits.
pub fn seal(key: &Key, origin: Origin, msg: &Message) -> Vec<u8> {
    seal_any(key, origin, msg)
}

/// Decodes a datagram without checking its tag (use [`Opener::open`] for
/// anything that acts on the message). Total: never panics.
pub fn decode(bytes: &[u8]) -> Result<Datagram, DecodeError> {
    decode_any(bytes)
}

/// Verifies incoming datagrams: known key, good tag, fresh timestamp,
/// sequence not seen before.
#[derive(Debug, Clone)]
pub struct Opener {
    keyring: Keyring,
    guard: ReplayGuard,
}

impl Opener {
    pub fn new(keyring: Keyring, guard: ReplayGuard) -> Self {
        Opener { keyring, guard }
    }

    pub fn open(&mut self, bytes: &[u8], now_us: u64) -> Result<Datagram, OpenError> {
        open_any(&self.keyring, &mut self.guard, bytes, now_us)
    }

    /// Senders with live replay state.
    pub fn senders(&self) -> usize {
        self.guard.senders()
    }
}

/// Checks the tag of a decoded datagram against the keyring.
pub fn verify_tag(keyring: &Keyring, bytes: &[u8], dg: &Datagram) -> Result<(), OpenError> {
    verify_envelope(keyring, bytes, dg)
}

/// Microseconds since the Unix epoch from the system clock.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}
