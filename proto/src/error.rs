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
        }
    }

    /// The NAK reason an agent answers with.
    pub fn nak_reason(&self) -> crate::NakReason {
        match self {
            OpenError::Malformed(_) => crate::NakReason::Malformed,
            OpenError::UnknownKey(_) | OpenError::BadMac { .. } => crate::NakReason::BadAuth,
            OpenError::Replay { .. } | OpenError::Stale { .. } => crate::NakReason::Replay,
        }
    }
}
