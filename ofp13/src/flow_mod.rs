//! OFPT_FLOW_MOD.

use bytes::{BufMut, BytesMut};

use crate::action::{Instruction, encode_instructions, parse_instructions};
use crate::oxm::Match;
use crate::wire::{Error, PResult, pad, u8_, u16_, u32_, u64_};

/// FLOW_MOD command ADD.
pub const OFPFC_ADD: u8 = 0;
/// FLOW_MOD command MODIFY.
pub const OFPFC_MODIFY: u8 = 1;
/// FLOW_MOD command MODIFY_STRICT.
pub const OFPFC_MODIFY_STRICT: u8 = 2;
/// FLOW_MOD command DELETE.
pub const OFPFC_DELETE: u8 = 3;
/// FLOW_MOD command DELETE_STRICT.
pub const OFPFC_DELETE_STRICT: u8 = 4;
/// Flag: send FLOW_REMOVED.
pub const OFPFF_SEND_FLOW_REM: u16 = 1;
/// Flag: check for overlapping entries.
pub const OFPFF_CHECK_OVERLAP: u16 = 2;
/// Buffer id meaning "no buffered packet".
pub const OFP_NO_BUFFER: u32 = 0xffff_ffff;
/// "All tables" for deletes and stats.
pub const OFPTT_ALL: u8 = 0xff;

/// OFPT_FLOW_MOD body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowMod {
    /// Opaque controller cookie.
    pub cookie: u64,
    /// Cookie mask for MODIFY/DELETE.
    pub cookie_mask: u64,
    /// Table.
    pub table_id: u8,
    /// `OFPFC_*`.
    pub command: u8,
    /// Idle timeout, seconds (0 = none).
    pub idle_timeout: u16,
    /// Hard timeout, seconds (0 = none).
    pub hard_timeout: u16,
    /// Priority.
    pub priority: u16,
    /// Buffered packet to apply to, or [`OFP_NO_BUFFER`].
    pub buffer_id: u32,
    /// For DELETE: require this output port (`OFPP_ANY` = any).
    pub out_port: u32,
    /// For DELETE: require this output group (`OFPG_ANY` = any).
    pub out_group: u32,
    /// `OFPFF_*`.
    pub flags: u16,
    /// Match.
    pub r#match: Match,
    /// Instructions.
    pub instructions: Vec<Instruction>,
}

impl FlowMod {
    /// An ADD in table 0 with no timeouts, cookie 0, no buffer.
    pub fn add(priority: u16, r#match: Match, instructions: Vec<Instruction>) -> FlowMod {
        FlowMod {
            cookie: 0,
            cookie_mask: 0,
            table_id: 0,
            command: OFPFC_ADD,
            idle_timeout: 0,
            hard_timeout: 0,
            priority,
            buffer_id: OFP_NO_BUFFER,
            out_port: crate::port::OFPP_ANY,
            out_group: crate::group_mod::OFPG_ANY,
            flags: 0,
            r#match,
            instructions,
        }
    }

    pub(crate) fn parse(i: &[u8]) -> PResult<'_, FlowMod> {
        let (i, cookie) = u64_(i)?;
        let (i, cookie_mask) = u64_(i)?;
        let (i, table_id) = u8_(i)?;
        let (i, command) = u8_(i)?;
        let (i, idle_timeout) = u16_(i)?;
        let (i, hard_timeout) = u16_(i)?;
        let (i, priority) = u16_(i)?;
        let (i, buffer_id) = u32_(i)?;
        let (i, out_port) = u32_(i)?;
        let (i, out_group) = u32_(i)?;
        let (i, flags) = u16_(i)?;
        let (i, ()) = pad(i, 2)?;
        let (i, r#match) = Match::parse(i)?;
        let (i, instructions) = parse_instructions(i)?;
        Ok((
            i,
            FlowMod {
                cookie,
                cookie_mask,
                table_id,
                command,
                idle_timeout,
                hard_timeout,
                priority,
                buffer_id,
                out_port,
                out_group,
                flags,
                r#match,
                instructions,
            },
        ))
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut) -> Result<(), Error> {
        buf.put_u64(self.cookie);
        buf.put_u64(self.cookie_mask);
        buf.put_u8(self.table_id);
        buf.put_u8(self.command);
        buf.put_u16(self.idle_timeout);
        buf.put_u16(self.hard_timeout);
        buf.put_u16(self.priority);
        buf.put_u32(self.buffer_id);
        buf.put_u32(self.out_port);
        buf.put_u32(self.out_group);
        buf.put_u16(self.flags);
        buf.put_bytes(0, 2);
        self.r#match.encode(buf)?;
        encode_instructions(&self.instructions, buf)
    }
}
