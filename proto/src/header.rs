//! The 32-octet header every subcast datagram starts with.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |         Magic (0x5343)        |    Version    |     Type      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |             Flags             |          Body Length          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                            Key ID                             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                           Sender ID                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! +                        Sequence Number                        +
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! +                 Timestamp (microseconds, Unix)                +
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//! The body follows, then a 32-octet keyed BLAKE3 tag over header and body
//! (push and rendezvous messages: Flags 0), or a tag list (Replicast
//! messages: Flags = TAG_LIST, see [`crate::replicast::tagged`]).

use crate::error::DecodeError;
use crate::wire::{Reader, Writer};
use serde::{Deserialize, Serialize};

pub const MAGIC: u16 = 0x5343;
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 32;
pub const MAC_LEN: usize = 32;

/// The decoded header of a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub msg_type: u8,
    pub body_len: u16,
    pub key_id: u32,
    pub sender_id: u32,
    pub sequence: u64,
    pub timestamp_us: u64,
}

impl Header {
    pub(crate) fn emit(&self, w: &mut Writer) {
        self.emit_with_flags(w, 0);
    }

    /// Emits the header with `flags` (only the Replicast envelope sets any).
    pub(crate) fn emit_with_flags(&self, w: &mut Writer, flags: u16) {
        w.u16(MAGIC);
        w.u8(VERSION);
        w.u8(self.msg_type);
        w.u16(flags);
        w.u16(self.body_len);
        w.u32(self.key_id);
        w.u32(self.sender_id);
        w.u64(self.sequence);
        w.u64(self.timestamp_us);
    }

    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Self::parse_checked(r, |flags| {
            if flags != 0 {
                return Err(DecodeError::Invalid {
                    field: "flags",
                    why: "must be zero in version 1",
                });
            }
            Ok(())
        })
    }

    /// Parses the header; `check_flags` decides, as soon as the flags are
    /// read, whether they are acceptable.
    pub(crate) fn parse_checked(
        r: &mut Reader<'_>,
        check_flags: impl FnOnce(u16) -> Result<(), DecodeError>,
    ) -> Result<Self, DecodeError> {
        let magic = r.u16("magic")?;
        if magic != MAGIC {
            return Err(DecodeError::BadMagic(magic));
        }
        let version = r.u8("version")?;
        if version != VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let msg_type = r.u8("type")?;
        check_flags(r.u16("flags")?)?;
        Ok(Header {
            msg_type,
            body_len: r.u16("body length")?,
            key_id: r.u32("key id")?,
            sender_id: r.u32("sender id")?,
            sequence: r.u64("sequence")?,
            timestamp_us: r.u64("timestamp")?,
        })
    }
}
