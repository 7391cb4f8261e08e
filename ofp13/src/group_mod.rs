//! OFPT_GROUP_MOD and `ofp_bucket`.

use bytes::{BufMut, BytesMut};

use crate::action::{Action, encode_actions, parse_actions};
use crate::wire::{
    Error, PResult, fail, len_placeholder, list, pad, patch_len, take, u8_, u16_, u32_,
};

/// GROUP_MOD command ADD.
pub const OFPGC_ADD: u16 = 0;
/// GROUP_MOD command MODIFY.
pub const OFPGC_MODIFY: u16 = 1;
/// GROUP_MOD command DELETE.
pub const OFPGC_DELETE: u16 = 2;
/// Group type ALL (multicast: every bucket).
pub const OFPGT_ALL: u8 = 0;
/// Group type SELECT.
pub const OFPGT_SELECT: u8 = 1;
/// Group type INDIRECT.
pub const OFPGT_INDIRECT: u8 = 2;
/// Group type FAST FAILOVER.
pub const OFPGT_FF: u8 = 3;
/// Highest regular group id.
pub const OFPG_MAX: u32 = 0xffff_ff00;
/// All groups (for DELETE).
pub const OFPG_ALL: u32 = 0xffff_fffc;
/// Wildcard group.
pub const OFPG_ANY: u32 = 0xffff_ffff;

/// `ofp_bucket`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// Weight (SELECT groups only; 0 otherwise).
    pub weight: u16,
    /// Watched port (FF groups; `OFPP_ANY` otherwise).
    pub watch_port: u32,
    /// Watched group (FF groups; `OFPG_ANY` otherwise).
    pub watch_group: u32,
    /// Actions.
    pub actions: Vec<Action>,
}

impl Bucket {
    /// A bucket of an ALL group with these actions.
    pub fn all(actions: Vec<Action>) -> Bucket {
        Bucket {
            weight: 0,
            watch_port: crate::port::OFPP_ANY,
            watch_group: OFPG_ANY,
            actions,
        }
    }

    pub(crate) fn parse(i: &[u8]) -> PResult<'_, Bucket> {
        let (j, len) = u16_(i)?;
        let len = usize::from(len);
        if len < 16 {
            return fail(i, "bucket length below 16");
        }
        let (rest, b) = take(j, len - 2)?;
        let (b, weight) = u16_(b)?;
        let (b, watch_port) = u32_(b)?;
        let (b, watch_group) = u32_(b)?;
        let (b, ()) = pad(b, 4)?;
        let (_, actions) = parse_actions(b)?;
        Ok((
            rest,
            Bucket {
                weight,
                watch_port,
                watch_group,
                actions,
            },
        ))
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut) -> Result<(), Error> {
        let start = buf.len();
        let at = len_placeholder(buf);
        buf.put_u16(self.weight);
        buf.put_u32(self.watch_port);
        buf.put_u32(self.watch_group);
        buf.put_bytes(0, 4);
        encode_actions(&self.actions, buf)?;
        patch_len(buf, at, start, "bucket")
    }
}

pub(crate) fn parse_buckets(i: &[u8]) -> PResult<'_, Vec<Bucket>> {
    list(i, Bucket::parse)
}

pub(crate) fn encode_buckets(b: &[Bucket], buf: &mut BytesMut) -> Result<(), Error> {
    b.iter().try_for_each(|x| x.encode(buf))
}

/// OFPT_GROUP_MOD body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMod {
    /// `OFPGC_*`.
    pub command: u16,
    /// `OFPGT_*`.
    pub group_type: u8,
    /// Group id.
    pub group_id: u32,
    /// Buckets.
    pub buckets: Vec<Bucket>,
}

impl GroupMod {
    pub(crate) fn parse(i: &[u8]) -> PResult<'_, GroupMod> {
        let (i, command) = u16_(i)?;
        let (i, group_type) = u8_(i)?;
        let (i, ()) = pad(i, 1)?;
        let (i, group_id) = u32_(i)?;
        let (i, buckets) = parse_buckets(i)?;
        Ok((
            i,
            GroupMod {
                command,
                group_type,
                group_id,
                buckets,
            },
        ))
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut) -> Result<(), Error> {
        buf.put_u16(self.command);
        buf.put_u8(self.group_type);
        buf.put_u8(0);
        buf.put_u32(self.group_id);
        encode_buckets(&self.buckets, buf)
    }
}
