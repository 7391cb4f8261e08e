//! OFPT_MULTIPART_REQUEST / OFPT_MULTIPART_REPLY: PORT_DESC, GROUP_DESC,
//! GROUP_FEATURES and FLOW (individual flow statistics); other kinds are kept raw.

use bytes::{BufMut, BytesMut};

use crate::action::{Instruction, encode_instructions, parse_instructions};
use crate::group_mod::{Bucket, encode_buckets, parse_buckets};
use crate::oxm::Match;
use crate::port::{PORT_LEN, Port};
use crate::wire::{
    Error, PResult, fail, len_placeholder, list, pad, patch_len, take, u8_, u16_, u32_, u64_,
};

/// Multipart type FLOW.
pub const OFPMP_FLOW: u16 = 1;
/// Multipart type GROUP_DESC.
pub const OFPMP_GROUP_DESC: u16 = 7;
/// Multipart type GROUP_FEATURES.
pub const OFPMP_GROUP_FEATURES: u16 = 8;
/// Multipart type PORT_DESC.
pub const OFPMP_PORT_DESC: u16 = 13;
/// Flag: more parts follow.
pub const OFPMPF_MORE: u16 = 1;

/// `ofp_flow_stats_request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowStatsRequest {
    /// Table (`OFPTT_ALL` for all).
    pub table_id: u8,
    /// Output port filter (`OFPP_ANY` = none).
    pub out_port: u32,
    /// Output group filter (`OFPG_ANY` = none).
    pub out_group: u32,
    /// Cookie filter value.
    pub cookie: u64,
    /// Cookie filter mask (0 = no filter).
    pub cookie_mask: u64,
    /// Match filter (empty = all).
    pub r#match: Match,
}

impl FlowStatsRequest {
    /// All flows in all tables whose cookie matches `cookie` under `cookie_mask`.
    pub fn all(cookie: u64, cookie_mask: u64) -> Self {
        FlowStatsRequest {
            table_id: crate::flow_mod::OFPTT_ALL,
            out_port: crate::port::OFPP_ANY,
            out_group: crate::group_mod::OFPG_ANY,
            cookie,
            cookie_mask,
            r#match: Match::default(),
        }
    }
}

/// Body of a multipart request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultipartRequestBody {
    /// Port descriptions (empty body).
    PortDesc,
    /// Group descriptions (empty body).
    GroupDesc,
    /// Group table capabilities (empty body).
    GroupFeatures,
    /// Individual flow statistics.
    Flow(FlowStatsRequest),
    /// Any other kind, raw.
    Other {
        /// Multipart type.
        typ: u16,
        /// Body.
        body: Vec<u8>,
    },
}

/// OFPT_MULTIPART_REQUEST body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartRequest {
    /// `OFPMPF_REQ_*` flags.
    pub flags: u16,
    /// Kind and body.
    pub body: MultipartRequestBody,
}

/// `ofp_group_desc` (one entry of a GROUP_DESC reply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDesc {
    /// `OFPGT_*`.
    pub group_type: u8,
    /// Group id.
    pub group_id: u32,
    /// Buckets.
    pub buckets: Vec<Bucket>,
}

/// `ofp_flow_stats` (one entry of a FLOW reply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowStats {
    /// Table.
    pub table_id: u8,
    /// Age, seconds.
    pub duration_sec: u32,
    /// Age, extra nanoseconds.
    pub duration_nsec: u32,
    /// Priority.
    pub priority: u16,
    /// Idle timeout.
    pub idle_timeout: u16,
    /// Hard timeout.
    pub hard_timeout: u16,
    /// `OFPFF_*`.
    pub flags: u16,
    /// Cookie.
    pub cookie: u64,
    /// Packets matched.
    pub packet_count: u64,
    /// Bytes matched.
    pub byte_count: u64,
    /// Match.
    pub r#match: Match,
    /// Instructions.
    pub instructions: Vec<Instruction>,
}

/// `ofp_group_features`: what the group table supports. Array index = group
/// type (`OFPGT_ALL` = 0, SELECT, INDIRECT, FF).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupFeatures {
    /// Bitmap of supported group types.
    pub types: u32,
    /// `OFPGFC_*` bitmap.
    pub capabilities: u32,
    /// Most groups of each type.
    pub max_groups: [u32; 4],
    /// Supported actions (bitmap of `OFPAT_*`) for each type.
    pub actions: [u32; 4],
}

const GROUP_FEATURES_LEN: usize = 40;

fn parse_group_features(i: &[u8]) -> PResult<'_, GroupFeatures> {
    let (mut i, types) = u32_(i)?;
    let capabilities;
    (i, capabilities) = u32_(i)?;
    let mut max_groups = [0u32; 4];
    for m in &mut max_groups {
        (i, *m) = u32_(i)?;
    }
    let mut actions = [0u32; 4];
    for a in &mut actions {
        (i, *a) = u32_(i)?;
    }
    Ok((
        i,
        GroupFeatures {
            types,
            capabilities,
            max_groups,
            actions,
        },
    ))
}

/// Body of a multipart reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultipartReplyBody {
    /// Ports.
    PortDesc(Vec<Port>),
    /// Groups.
    GroupDesc(Vec<GroupDesc>),
    /// Group table capabilities.
    GroupFeatures(GroupFeatures),
    /// Flows.
    Flow(Vec<FlowStats>),
    /// Any other kind, raw.
    Other {
        /// Multipart type.
        typ: u16,
        /// Body.
        body: Vec<u8>,
    },
}

/// OFPT_MULTIPART_REPLY body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartReply {
    /// `OFPMPF_MORE` if further parts follow with the same xid.
    pub flags: u16,
    /// Kind and body.
    pub body: MultipartReplyBody,
}

fn header(i: &[u8]) -> PResult<'_, (u16, u16)> {
    let (i, typ) = u16_(i)?;
    let (i, flags) = u16_(i)?;
    let (i, ()) = pad(i, 4)?;
    Ok((i, (typ, flags)))
}

fn put_header(buf: &mut BytesMut, typ: u16, flags: u16) {
    buf.put_u16(typ);
    buf.put_u16(flags);
    buf.put_bytes(0, 4);
}

impl MultipartRequest {
    pub(crate) fn parse(i: &[u8]) -> PResult<'_, MultipartRequest> {
        let (b, (typ, flags)) = header(i)?;
        let body = match typ {
            OFPMP_PORT_DESC if b.is_empty() => MultipartRequestBody::PortDesc,
            OFPMP_GROUP_DESC if b.is_empty() => MultipartRequestBody::GroupDesc,
            OFPMP_GROUP_FEATURES if b.is_empty() => MultipartRequestBody::GroupFeatures,
            OFPMP_FLOW => {
                let (j, table_id) = u8_(b)?;
                let (j, ()) = pad(j, 3)?;
                let (j, out_port) = u32_(j)?;
                let (j, out_group) = u32_(j)?;
                let (j, ()) = pad(j, 4)?;
                let (j, cookie) = u64_(j)?;
                let (j, cookie_mask) = u64_(j)?;
                let (j, r#match) = Match::parse(j)?;
                if !j.is_empty() {
                    return fail(j, "trailing bytes after flow stats request");
                }
                MultipartRequestBody::Flow(FlowStatsRequest {
                    table_id,
                    out_port,
                    out_group,
                    cookie,
                    cookie_mask,
                    r#match,
                })
            }
            _ => MultipartRequestBody::Other {
                typ,
                body: b.to_vec(),
            },
        };
        Ok((&b[b.len()..], MultipartRequest { flags, body }))
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut) -> Result<(), Error> {
        match &self.body {
            MultipartRequestBody::PortDesc => put_header(buf, OFPMP_PORT_DESC, self.flags),
            MultipartRequestBody::GroupDesc => put_header(buf, OFPMP_GROUP_DESC, self.flags),
            MultipartRequestBody::GroupFeatures => {
                put_header(buf, OFPMP_GROUP_FEATURES, self.flags)
            }
            MultipartRequestBody::Flow(r) => {
                put_header(buf, OFPMP_FLOW, self.flags);
                buf.put_u8(r.table_id);
                buf.put_bytes(0, 3);
                buf.put_u32(r.out_port);
                buf.put_u32(r.out_group);
                buf.put_bytes(0, 4);
                buf.put_u64(r.cookie);
                buf.put_u64(r.cookie_mask);
                r.r#match.encode(buf)?;
            }
            MultipartRequestBody::Other { typ, body } => {
                put_header(buf, *typ, self.flags);
                buf.put_slice(body);
            }
        }
        Ok(())
    }
}

fn parse_group_desc(i: &[u8]) -> PResult<'_, GroupDesc> {
    let (j, len) = u16_(i)?;
    let len = usize::from(len);
    if len < 8 {
        return fail(i, "group desc length below 8");
    }
    let (rest, b) = take(j, len - 2)?;
    let (b, group_type) = u8_(b)?;
    let (b, ()) = pad(b, 1)?;
    let (b, group_id) = u32_(b)?;
    let (_, buckets) = parse_buckets(b)?;
    Ok((
        rest,
        GroupDesc {
            group_type,
            group_id,
            buckets,
        },
    ))
}

fn parse_flow_stats(i: &[u8]) -> PResult<'_, FlowStats> {
    let (j, len) = u16_(i)?;
    let len = usize::from(len);
    if len < 56 {
        return fail(i, "flow stats length below 56");
    }
    let (rest, b) = take(j, len - 2)?;
    let (b, table_id) = u8_(b)?;
    let (b, ()) = pad(b, 1)?;
    let (b, duration_sec) = u32_(b)?;
    let (b, duration_nsec) = u32_(b)?;
    let (b, priority) = u16_(b)?;
    let (b, idle_timeout) = u16_(b)?;
    let (b, hard_timeout) = u16_(b)?;
    let (b, flags) = u16_(b)?;
    let (b, ()) = pad(b, 4)?;
    let (b, cookie) = u64_(b)?;
    let (b, packet_count) = u64_(b)?;
    let (b, byte_count) = u64_(b)?;
    let (b, r#match) = Match::parse(b)?;
    let (_, instructions) = parse_instructions(b)?;
    Ok((
        rest,
        FlowStats {
            table_id,
            duration_sec,
            duration_nsec,
            priority,
            idle_timeout,
            hard_timeout,
            flags,
            cookie,
            packet_count,
            byte_count,
            r#match,
            instructions,
        },
    ))
}

impl MultipartReply {
    pub(crate) fn parse(i: &[u8]) -> PResult<'_, MultipartReply> {
        let (b, (typ, flags)) = header(i)?;
        let body = match typ {
            OFPMP_PORT_DESC if b.len() % PORT_LEN == 0 => {
                MultipartReplyBody::PortDesc(list(b, Port::parse)?.1)
            }
            OFPMP_GROUP_DESC => MultipartReplyBody::GroupDesc(list(b, parse_group_desc)?.1),
            OFPMP_GROUP_FEATURES if b.len() == GROUP_FEATURES_LEN => {
                MultipartReplyBody::GroupFeatures(parse_group_features(b)?.1)
            }
            OFPMP_FLOW => MultipartReplyBody::Flow(list(b, parse_flow_stats)?.1),
            OFPMP_PORT_DESC => return fail(b, "port desc reply not a multiple of 64 bytes"),
            _ => MultipartReplyBody::Other {
                typ,
                body: b.to_vec(),
            },
        };
        Ok((&b[b.len()..], MultipartReply { flags, body }))
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut) -> Result<(), Error> {
        match &self.body {
            MultipartReplyBody::PortDesc(ports) => {
                put_header(buf, OFPMP_PORT_DESC, self.flags);
                ports.iter().for_each(|p| p.encode(buf));
            }
            MultipartReplyBody::GroupDesc(groups) => {
                put_header(buf, OFPMP_GROUP_DESC, self.flags);
                for g in groups {
                    let start = buf.len();
                    let at = len_placeholder(buf);
                    buf.put_u8(g.group_type);
                    buf.put_u8(0);
                    buf.put_u32(g.group_id);
                    encode_buckets(&g.buckets, buf)?;
                    patch_len(buf, at, start, "group desc")?;
                }
            }
            MultipartReplyBody::GroupFeatures(g) => {
                put_header(buf, OFPMP_GROUP_FEATURES, self.flags);
                buf.put_u32(g.types);
                buf.put_u32(g.capabilities);
                g.max_groups.iter().for_each(|m| buf.put_u32(*m));
                g.actions.iter().for_each(|a| buf.put_u32(*a));
            }
            MultipartReplyBody::Flow(flows) => {
                put_header(buf, OFPMP_FLOW, self.flags);
                for f in flows {
                    let start = buf.len();
                    let at = len_placeholder(buf);
                    buf.put_u8(f.table_id);
                    buf.put_u8(0);
                    buf.put_u32(f.duration_sec);
                    buf.put_u32(f.duration_nsec);
                    buf.put_u16(f.priority);
                    buf.put_u16(f.idle_timeout);
                    buf.put_u16(f.hard_timeout);
                    buf.put_u16(f.flags);
                    buf.put_bytes(0, 4);
                    buf.put_u64(f.cookie);
                    buf.put_u64(f.packet_count);
                    buf.put_u64(f.byte_count);
                    f.r#match.encode(buf)?;
                    encode_instructions(&f.instructions, buf)?;
                    patch_len(buf, at, start, "flow stats")?;
                }
            }
            MultipartReplyBody::Other { typ, body } => {
                put_header(buf, *typ, self.flags);
                buf.put_slice(body);
            }
        }
        Ok(())
    }
}
