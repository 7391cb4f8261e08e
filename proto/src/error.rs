//! Errors of decoding and of authentication.

use thiserror::Error;

/// Why a datagram could not be decoded. Every variant has a stable short
/// name ([`DecodeError::kind`]) used by the test vectors and by metrics.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("datagram truncated in {field}: needs {need} more bytes, has {have}")]
    Truncated {
        field: &'static str,
        need: usize,
        have: usize,
    },
    #[error("not a subcast datagram (magic {0:#06x}, expected 0x5343)")]
    BadMagic(u16),
    #[error(
        "protocol version {0} is not supported (this build speaks version 1); upgrade the older side"
    )]
    UnsupportedVersion(u8),
    #[error("unknown message type {0:#04x}")]
    UnknownType(u8),
    #[error("body length {declared} does not match the datagram ({actual} bytes of body)")]
    LengthMismatch { declared: usize, actual: usize },
    #[error("datagram of {0} bytes exceeds the maximum of {max}", max = crate::MAX_DATAGRAM)]
    TooLong(usize),
    #[error("invalid {field}: {why}")]
    Invalid {
        field: &'static str,
        why: &'static str,
    },
    #[error("{0} unexpected bytes after the message body")]
    TrailingBytes(usize),
}

impl DecodeError {
    /// Stable short name of the error, as used in test vectors and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::Truncated { .. } => "truncated",
            DecodeError::BadMagic(_) => "bad-magic",
            DecodeError::UnsupportedVersion(_) => "unsupported-version",
            DecodeError::UnknownType(_) => "unknown-type",
            DecodeError::LengthMismatch { .. } => "length-mismatch",
            DecodeError::TooLong(_) => "too-long",
            DecodeError::Invalid { .. } => "invalid-field",
            DecodeError::TrailingBytes(_) => "trailing-bytes",
        }
    }
}

/// Why an authenticated datagram was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OpenError {
    #[error("malformed datagram: {0}")]
    Malformed(#[from] DecodeError),
    #[error("unknown key id {0}: add the key to this side's key file, or fix the sender's key id")]
    UnknownKey(u32),
    #[error(
        "authentication tag does not verify (wrong key for key id {key_id}, or the datagram was altered)"
    )]
    BadMac { key_id: u32 },
    #[error("replayed or duplicate sequence number {sequence} from sender {sender_id}")]
    Replay { sender_id: u32, sequence: u64 },
    #[error(
        "timestamp {skew_ms} ms away from local clock (limit {limit_ms} ms): check NTP on both sides"
    )]
    Stale { skew_ms: i64, limit_ms: u64 },
    #[error(
        "sequence number {sequence} from sender {sender_id} is ahead of this side's clock by more than the allowed skew"
    )]
    SequenceAhead { sender_id: u32, sequence: u64 },
    #[error(
        "datagram from sender {sender_id} was sealed {before_ms} ms before this receiver started (replay across a restart, or the sender's clock lags: check NTP)"
    )]
    BeforeStart { sender_id: u32, before_ms: u64 },
    #[error(
        "key id {key_id} already has replay state for {limit} senders; refusing a new one until idle ones expire"
    )]
    TooManySenders { key_id: u32, limit: usize },
    #[error(
        "Replicast datagram from sender {sender_id} has no tag for receiver {receiver}: not addressed to this node"
    )]
    NotForMe { sender_id: u32, receiver: u32 },
    #[error(
        "no pair key with sender {sender_id} in this node's key file: provision one (`subcast-node keys derive`) or check the sender's id"
    )]
    UnknownSender { sender_id: u32 },
}

impl OpenError {
    /// Stable short name, used in test vectors and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            OpenError::Malformed(e) => e.kind(),
            OpenError::UnknownKey(_) => "unknown-key",
            OpenError::BadMac { .. } => "bad-mac",
            OpenError::Replay { .. } => "replay",
            OpenError::Stale { .. } => "stale",
            OpenError::SequenceAhead { .. } => "sequence-ahead",
            OpenError::BeforeStart { .. } => "before-start",
            OpenError::TooManySenders { .. } => "too-many-senders",
            OpenError::NotForMe { .. } => "not-for-me",
            OpenError::UnknownSender { .. } => "unknown-sender",
        }
    }

    /// The NAK reason an agent answers with.
    pub fn nak_reason(&self) -> crate::NakReason {
        match self {
            OpenError::Malformed(_) => crate::NakReason::Malformed,
            OpenError::UnknownKey(_)
            | OpenError::BadMac { .. }
            | OpenError::NotForMe { .. }
            | OpenError::UnknownSender { .. } => crate::NakReason::BadAuth,
            OpenError::Replay { .. }
            | OpenError::Stale { .. }
            | OpenError::SequenceAhead { .. }
            | OpenError::BeforeStart { .. }
            | OpenError::TooManySenders { .. } => crate::NakReason::Replay,
        }
    }
}
