//! The datagram envelope shared by every message family: 32-octet header,
//! body, 32-octet keyed BLAKE3 tag. Push/rendezvous messages
//! ([`crate::Message`]) and Replicast messages
//! ([`crate::replicast::ReplicastMessage`]) are bodies inside it.

use crate::auth::{Key, Keyring, ReplayGuard};
use crate::error::{DecodeError, OpenError};
use crate::header::{HEADER_LEN, Header, MAC_LEN};
use crate::wire::{Reader, Writer};
use serde::{Deserialize, Serialize};

/// Largest datagram a subcast process sends or accepts.
pub const MAX_DATAGRAM: usize = 9216;

/// A message family that travels in the envelope.
pub trait Body: Sized {
    /// The header's Type octet for this message.
    fn msg_type(&self) -> u8;
    /// Appends the body.
    fn emit_body(&self, w: &mut Writer);
    /// Parses a body of the given type; total, never panics.
    fn parse_body(msg_type: u8, r: &mut Reader<'_>) -> Result<Self, DecodeError>;
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
pub struct Envelope<M> {
    pub header: Header,
    pub message: M,
    pub tag: [u8; MAC_LEN],
}

/// Encodes and tags `msg` with `key` (the header's key id is `key.id`).
pub fn seal_any<M: Body>(key: &Key, origin: Origin, msg: &M) -> Vec<u8> {
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

/// Decodes a datagram without checking its tag. Total: never panics.
pub fn decode_any<M: Body>(bytes: &[u8]) -> Result<Envelope<M>, DecodeError> {
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
    let message = M::parse_body(header.msg_type, &mut br)?;
    br.finish()?;
    Ok(Envelope {
        header,
        message,
        tag,
    })
}

/// Checks the tag of a decoded datagram against the keyring.
pub fn verify_envelope<M>(
    keyring: &Keyring,
    bytes: &[u8],
    env: &Envelope<M>,
) -> Result<(), OpenError> {
    let key = keyring
        .get(env.header.key_id)
        .ok_or(OpenError::UnknownKey(env.header.key_id))?;
    let signed = &bytes[..bytes.len() - MAC_LEN];
    if !key.verify(signed, &env.tag) {
        return Err(OpenError::BadMac {
            key_id: env.header.key_id,
        });
    }
    Ok(())
}

/// Decodes, verifies the tag and admits the header into the replay guard.
pub fn open_any<M: Body>(
    keyring: &Keyring,
    guard: &mut ReplayGuard,
    bytes: &[u8],
    now_us: u64,
) -> Result<Envelope<M>, OpenError> {
    let env = decode_any::<M>(bytes)?;
    verify_envelope(keyring, bytes, &env)?;
    let h = &env.header;
    guard.admit(h.key_id, h.sender_id, h.sequence, h.timestamp_us, now_us)?;
    Ok(env)
}

/// Stamps outgoing datagrams with one sender's key, id and a strictly
/// increasing sequence number.
///
/// The sequence follows the wall clock in microseconds: it is the larger of
/// the previous sequence plus one and the clock at sealing. A restarted
/// sender therefore keeps counting above what receivers saw before the
/// restart, and the sequence never runs ahead of the clock by more than a
/// burst (receivers refuse sequences ahead of their clock plus the skew).
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

    /// The key and the header fields of the next datagram (its sequence
    /// number is used up), for sealing without an intermediate message.
    pub fn stamp(&mut self, now_us: u64) -> (&Key, Origin) {
        let seq = self.next_seq;
        self.next_seq += 1;
        (
            &self.key,
            Origin {
                key_id: self.key.id,
                sender_id: self.sender_id,
                sequence: seq,
                timestamp_us: now_us,
            },
        )
    }

    pub fn seal<M: Body>(&mut self, msg: &M, now_us: u64) -> Vec<u8> {
        let seq = self.next_seq.max(now_us);
        self.next_seq = seq.saturating_add(1);
        seal_any(
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
