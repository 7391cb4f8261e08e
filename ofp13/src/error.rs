//! OFPT_ERROR.

use bytes::{BufMut, BytesMut};

use crate::wire::{PResult, u16_};

/// Error type BAD_REQUEST.
pub const OFPET_BAD_REQUEST: u16 = 1;
/// Error type GROUP_MOD_FAILED.
pub const OFPET_GROUP_MOD_FAILED: u16 = 6;
/// GROUP_MOD_FAILED code GROUP_EXISTS.
pub const OFPGMFC_GROUP_EXISTS: u16 = 0;
/// GROUP_MOD_FAILED code UNKNOWN_GROUP.
pub const OFPGMFC_UNKNOWN_GROUP: u16 = 8;
/// Error type FLOW_MOD_FAILED.
pub const OFPET_FLOW_MOD_FAILED: u16 = 5;

/// OFPT_ERROR body. For experimenter errors (`typ == 0xffff`) `code` is the
/// experimenter type and `data` starts with the experimenter id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorMsg {
    /// Error type (`OFPET_*`).
    pub typ: u16,
    /// Error code.
    pub code: u16,
    /// Usually the first 64 bytes of the failed request.
    pub data: Vec<u8>,
}

impl ErrorMsg {
    pub(crate) fn parse(i: &[u8]) -> PResult<'_, ErrorMsg> {
        let (i, typ) = u16_(i)?;
        let (i, code) = u16_(i)?;
        Ok((
            &i[i.len()..],
            ErrorMsg {
                typ,
                code,
                data: i.to_vec(),
            },
        ))
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut) {
        buf.put_u16(self.typ);
        buf.put_u16(self.code);
        buf.put_slice(&self.data);
    }

    /// The xid of the failed request if `data` holds its header.
    pub fn failed_xid(&self) -> Option<u32> {
        let b = self.data.get(4..8)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}
