//! FEATURES_REPLY and SET_CONFIG / GET_CONFIG_REPLY bodies.

use bytes::{BufMut, BytesMut};

use crate::wire::{PResult, pad, u8_, u16_, u32_, u64_};

/// OFPT_FEATURES_REPLY body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeaturesReply {
    /// Datapath id.
    pub datapath_id: u64,
    /// Packets the switch can buffer.
    pub n_buffers: u32,
    /// Number of tables.
    pub n_tables: u8,
    /// Auxiliary connection id (0 = main).
    pub auxiliary_id: u8,
    /// `OFPC_*` bits.
    pub capabilities: u32,
    /// Reserved word.
    pub reserved: u32,
}

impl FeaturesReply {
    pub(crate) fn parse(i: &[u8]) -> PResult<'_, FeaturesReply> {
        let (i, datapath_id) = u64_(i)?;
        let (i, n_buffers) = u32_(i)?;
        let (i, n_tables) = u8_(i)?;
        let (i, auxiliary_id) = u8_(i)?;
        let (i, ()) = pad(i, 2)?;
        let (i, capabilities) = u32_(i)?;
        let (i, reserved) = u32_(i)?;
        Ok((
            i,
            FeaturesReply {
                datapath_id,
                n_buffers,
                n_tables,
                auxiliary_id,
                capabilities,
                reserved,
            },
        ))
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut) {
        buf.put_u64(self.datapath_id);
        buf.put_u32(self.n_buffers);
        buf.put_u8(self.n_tables);
        buf.put_u8(self.auxiliary_id);
        buf.put_bytes(0, 2);
        buf.put_u32(self.capabilities);
        buf.put_u32(self.reserved);
    }
}

/// SET_CONFIG / GET_CONFIG_REPLY body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwitchConfig {
    /// `OFPC_FRAG_*` flags.
    pub flags: u16,
    /// Bytes of a table-miss packet sent to the controller.
    pub miss_send_len: u16,
}

impl SwitchConfig {
    pub(crate) fn parse(i: &[u8]) -> PResult<'_, SwitchConfig> {
        let (i, flags) = u16_(i)?;
        let (i, miss_send_len) = u16_(i)?;
        Ok((
            i,
            SwitchConfig {
                flags,
                miss_send_len,
            },
        ))
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut) {
        buf.put_u16(self.flags);
        buf.put_u16(self.miss_send_len);
    }
}
