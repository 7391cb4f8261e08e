//! OFPT_PACKET_IN and OFPT_PACKET_OUT.

use bytes::{BufMut, BytesMut};

use crate::action::{Action, encode_actions, parse_actions};
use crate::oxm::{Match, Oxm};
use crate::wire::{Error, PResult, pad, take, u8_, u16_, u32_, u64_};

/// PACKET_IN reason: no matching flow (table miss).
pub const OFPR_NO_MATCH: u8 = 0;
/// PACKET_IN reason: output-to-controller action.
pub const OFPR_ACTION: u8 = 1;

/// OFPT_PACKET_IN body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketIn {
    /// Buffer id or `OFP_NO_BUFFER`.
    pub buffer_id: u32,
    /// Full length of the frame.
    pub total_len: u16,
    /// `OFPR_*`.
    pub reason: u8,
    /// Table that sent it.
    pub table_id: u8,
    /// Cookie of the flow that sent it.
    pub cookie: u64,
    /// Pipeline fields (IN_PORT at least).
    pub r#match: Match,
    /// The frame (possibly truncated).
    pub data: Vec<u8>,
}

impl PacketIn {
    /// The IN_PORT field of the match, if present.
    pub fn in_port(&self) -> Option<u32> {
        self.r#match.fields.iter().find_map(|f| match f {
            Oxm::InPort(p) => Some(*p),
            _ => None,
        })
    }

    pub(crate) fn parse(i: &[u8]) -> PResult<'_, PacketIn> {
        let (i, buffer_id) = u32_(i)?;
        let (i, total_len) = u16_(i)?;
        let (i, reason) = u8_(i)?;
        let (i, table_id) = u8_(i)?;
        let (i, cookie) = u64_(i)?;
        let (i, r#match) = Match::parse(i)?;
        let (i, ()) = pad(i, 2)?;
        Ok((
            &i[i.len()..],
            PacketIn {
                buffer_id,
                total_len,
                reason,
                table_id,
                cookie,
                r#match,
                data: i.to_vec(),
            },
        ))
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut) -> Result<(), Error> {
        buf.put_u32(self.buffer_id);
        buf.put_u16(self.total_len);
        buf.put_u8(self.reason);
        buf.put_u8(self.table_id);
        buf.put_u64(self.cookie);
        self.r#match.encode(buf)?;
        buf.put_bytes(0, 2);
        buf.put_slice(&self.data);
        Ok(())
    }
}

/// OFPT_PACKET_OUT body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketOut {
    /// Buffer id or `OFP_NO_BUFFER` (then `data` is the frame).
    pub buffer_id: u32,
    /// Input port for the actions (`OFPP_CONTROLLER` if none).
    pub in_port: u32,
    /// Actions.
    pub actions: Vec<Action>,
    /// The frame.
    pub data: Vec<u8>,
}

impl PacketOut {
    pub(crate) fn parse(i: &[u8]) -> PResult<'_, PacketOut> {
        let (i, buffer_id) = u32_(i)?;
        let (i, in_port) = u32_(i)?;
        let (i, actions_len) = u16_(i)?;
        let (i, ()) = pad(i, 6)?;
        let (i, acts) = take(i, usize::from(actions_len))?;
        let (_, actions) = parse_actions(acts)?;
        Ok((
            &i[i.len()..],
            PacketOut {
                buffer_id,
                in_port,
                actions,
                data: i.to_vec(),
            },
        ))
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut) -> Result<(), Error> {
        buf.put_u32(self.buffer_id);
        buf.put_u32(self.in_port);
        let at = buf.len();
        buf.put_u16(0);
        buf.put_bytes(0, 6);
        let start = buf.len();
        encode_actions(&self.actions, buf)?;
        let len = buf.len() - start;
        let v = u16::try_from(len).map_err(|_| Error::FieldTooLong {
            what: "packet-out actions",
            len,
        })?;
        buf[at..at + 2].copy_from_slice(&v.to_be_bytes());
        buf.put_slice(&self.data);
        Ok(())
    }
}
