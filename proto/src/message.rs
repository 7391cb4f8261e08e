//! The message enum, its type codes, and sealing/opening whole datagrams.

use crate::auth::{Key, Keyring, ReplayGuard};
use crate::error::{DecodeError, OpenError};
use crate::header::{HEADER_LEN, Header, MAC_LEN};
use crate::push::{Ack, Clear, Heartbeat, Hello, Nak, SetSubset};
use crate::rendezvous::{ReleaseAck, RendezvousGrant, RendezvousRelease, RendezvousRequest};
use crate::wire::{Reader, Writer};
use serde::{Deserialize, Serialize};

/// Largest datagram a subcast process sends or accepts.
pub const MAX_DATAGRAM: usize = 9216;

/// Message type codes (the header's Type octet).
pub mod msg_type {
    pub const HELLO: u8 = 0x01;
    pub const HEARTBEAT: u8 = 0x02;
    pub const SET_SUBSET: u8 = 0x10;
    pub const CLEAR: u8 = 0x11;
    pub const ACK: u8 = 0x12;
    pub const NAK: u8 = 0x13;
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
    SetSubset(SetSubset),
    Clear(Clear),
    Ack(Ack),
    Nak(Nak),
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
            Message::SetSubset(_) => SET_SUBSET,
            Message::Clear(_) => CLEAR,
            Message::Ack(_) => ACK,
            Message::Nak(_) => NAK,
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
            Message::SetSubset(_) => "SET_SUBSET",
            Message::Clear(_) => "CLEAR",
            Message::Ack(_) => "ACK",
            Message::Nak(_) => "NAK",
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
            Message::RendezvousRequest(m) => Some(m.request_id),
            Message::RendezvousGrant(m) => Some(m.request_id),
            Message::RendezvousRelease(m) => Some(m.lease_id),
            Message::ReleaseAck(m) => Some(m.lease_id),
            Message::Hello(_) | Message::Heartbeat(_) => None,
        }
    }

    fn emit_body(&self, w: &mut Writer) {
        match self {
            Message::Hello(m) => m.emit(w),
            Message::Heartbeat(m) => m.emit(w),
            Message::SetSubset(m) => m.emit(w),
            Message::Clear(m) => m.emit(w),
            Message::Ack(m) => m.emit(w),
            Message::Nak(m) => m.emit(w),
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
            SET_SUBSET => Message::SetSubset(SetSubset::parse(r)?),
            CLEAR => Message::Clear(Clear::parse(r)?),
            ACK => Message::Ack(Ack::parse(r)?),
            NAK => Message::Nak(Nak::parse(r)?),
            RENDEZVOUS_REQUEST => Message::RendezvousRequest(RendezvousRequest::parse(r)?),
            RENDEZVOUS_GRANT => Message::RendezvousGrant(RendezvousGrant::parse(r)?),
            RENDEZVOUS_RELEASE => Message::RendezvousRelease(RendezvousRelease::parse(r)?),
            RELEASE_ACK => Message::ReleaseAck(ReleaseAck::parse(r)?),
            other => return Err(DecodeError::UnknownType(other)),
        })
    }
}

/// Who sent a datagram, and when: the header's fields a caller sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub key_id: u32,
    pub sender_id: u32,
    pub sequence: u64,
    pub timestamp_us: u64,
}

/// A decoded datagram: header, message and the tag it carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    pub header: Header,
    pub message: Message,
    pub tag: [u8; MAC_LEN],
}

/// Encodes and tags `msg`. The result is at most [`MAX_DATAGRAM`] bytes
/// for any message whose strings and lists are within their limits.
pub fn seal(key: &Key, origin: Origin, msg: &Message) -> Vec<u8> {
    let mut body = Writer::default();
    msg.emit_body(&mut body);
    let header = Header {
        msg_type: msg.msg_type(),
        body_len: u16::try_from(body.buf.len()).unwrap_or(u16::MAX),
        key_id: key.id,
        sender_id: origin.sender_id,
        sequence: origin.sequence,
        timestamp_us: origin.timestamp_us,
    };
    let mut w = Writer {
        buf: Vec::with_capacity(HEADER_LEN + body.buf.len() + MAC_LEN),
    };
    header.emit(&mut w);
    w.bytes(&body.buf);
    let tag = key.tag(&w.buf);
    w.bytes(&tag);
    w.buf
}

/// Decodes a datagram without checking its tag (use [`Opener::open`] for
/// anything that acts on the message). Total: never panics.
pub fn decode(bytes: &[u8]) -> Result<Datagram, DecodeError> {
    if bytes.len() > MAX_DATAGRAM {
        return Err(DecodeError::TooLong(bytes.len()));
    }
    let mut r = Reader::new(bytes);
    let header = Header::parse(&mut r)?;
    let body_len = usize::from(header.body_len);
    let actual = r.remaining().saturating_sub(MAC_LEN);
    if r.remaining() < MAC_LEN || actual != body_len {
        return Err(DecodeError::LengthMismatch {
            declared: body_len,
            actual,
        });
    }
    let body = r.bytes(body_len, "body")?;
    let tag = r.array::<MAC_LEN>("tag")?;
    let mut br = Reader::new(body);
    let message = Message::parse_body(header.msg_type, &mut br)?;
    br.finish()?;
    Ok(Datagram {
        header,
        message,
        tag,
    })
}

/// Stamps outgoing datagrams with one sender's key, id and a strictly
/// increasing sequence number.
///
/// The sequence starts at the wall clock in microseconds, so a restarted
/// sender keeps counting above what receivers saw before the restart.
#[derive(Debug, Clone)]
pub struct Sealer {
    key: Key,
    sender_id: u32,
    next_seq: u64,
}

impl Sealer {
    pub fn new(key: Key, sender_id: u32, now_us: u64) -> Self {
        Sealer {
            key,
            sender_id,
            next_seq: now_us.max(1),
        }
    }

    pub fn sender_id(&self) -> u32 {
        self.sender_id
    }

    pub fn seal(&mut self, msg: &Message, now_us: u64) -> Vec<u8> {
        let seq = self.next_seq;
        self.next_seq += 1;
        seal(
            &self.key,
            Origin {
                key_id: self.key.id,
                sender_id: self.sender_id,
                sequence: seq,
                timestamp_us: now_us,
            },
            msg,
        )
    }
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
        let dg = decode(bytes)?;
        verify_tag(&self.keyring, bytes, &dg)?;
        let h = &dg.header;
        self.guard
            .admit(h.key_id, h.sender_id, h.sequence, h.timestamp_us, now_us)?;
        Ok(dg)
    }
}

/// Checks the tag of a decoded datagram against the keyring.
pub fn verify_tag(keyring: &Keyring, bytes: &[u8], dg: &Datagram) -> Result<(), OpenError> {
    let key = keyring
        .get(dg.header.key_id)
        .ok_or(OpenError::UnknownKey(dg.header.key_id))?;
    let signed = &bytes[..bytes.len() - MAC_LEN];
    if !key.verify(signed, &dg.tag) {
        return Err(OpenError::BadMac {
            key_id: dg.header.key_id,
        });
    }
    Ok(())
}

/// Microseconds since the Unix epoch from the system clock.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}
