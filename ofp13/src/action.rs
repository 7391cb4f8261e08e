//! Actions (`ofp_action_*`) and instructions (`ofp_instruction_*`).

use bytes::{BufMut, BytesMut};

use crate::wire::{
    Error, PResult, fail, len_placeholder, list, pad, patch_len, take, u8_, u16_, u32_,
};

/// Action type OUTPUT.
pub const OFPAT_OUTPUT: u16 = 0;
/// Action type GROUP.
pub const OFPAT_GROUP: u16 = 22;
/// `max_len` asking the switch to send the whole packet to the controller.
pub const OFPCML_NO_BUFFER: u16 = 0xffff;

/// One action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Output to a port (`max_len` matters only for the CONTROLLER port).
    Output {
        /// Port number or reserved port (`port::OFPP_*`).
        port: u32,
        /// Bytes to send to the controller.
        max_len: u16,
    },
    /// Process the packet through a group.
    Group(u32),
    /// Any other action, kept raw (`data` is everything after type and length).
    Other {
        /// Action type.
        typ: u16,
        /// Body after the 4-byte type/length header.
        data: Vec<u8>,
    },
}

impl Action {
    /// Output to `port` (whole packet if it is the controller).
    pub fn output(port: u32) -> Action {
        Action::Output {
            port,
            max_len: OFPCML_NO_BUFFER,
        }
    }

    pub(crate) fn parse(i: &[u8]) -> PResult<'_, Action> {
        let (j, typ) = u16_(i)?;
        let (j, len) = u16_(j)?;
        let len = usize::from(len);
        if len < 4 {
            return fail(i, "action length below 4");
        }
        let (rest, body) = take(j, len - 4)?;
        let a = match (typ, len) {
            (OFPAT_OUTPUT, 16) => {
                let (b, port) = u32_(body)?;
                let (_, max_len) = u16_(b)?;
                if body[6..].iter().any(|&x| x != 0) {
                    Action::Other {
                        typ,
                        data: body.to_vec(),
                    }
                } else {
                    Action::Output { port, max_len }
                }
            }
            (OFPAT_GROUP, 8) => Action::Group(u32_(body)?.1),
            _ => Action::Other {
                typ,
                data: body.to_vec(),
            },
        };
        Ok((rest, a))
    }

    /// Appends this action.
    pub fn encode(&self, buf: &mut BytesMut) -> Result<(), Error> {
        match self {
            Action::Output { port, max_len } => {
                buf.put_u16(OFPAT_OUTPUT);
                buf.put_u16(16);
                buf.put_u32(*port);
                buf.put_u16(*max_len);
                buf.put_bytes(0, 6);
            }
            Action::Group(g) => {
                buf.put_u16(OFPAT_GROUP);
                buf.put_u16(8);
                buf.put_u32(*g);
            }
            Action::Other { typ, data } => {
                let start = buf.len();
                buf.put_u16(*typ);
                let at = len_placeholder(buf);
                buf.put_slice(data);
                patch_len(buf, at, start, "action")?;
            }
        }
        Ok(())
    }
}

/// Parses a region holding only actions.
pub(crate) fn parse_actions(i: &[u8]) -> PResult<'_, Vec<Action>> {
    list(i, Action::parse)
}

/// Appends a list of actions.
pub fn encode_actions(actions: &[Action], buf: &mut BytesMut) -> Result<(), Error> {
    actions.iter().try_for_each(|a| a.encode(buf))
}

/// Instruction GOTO_TABLE.
pub const OFPIT_GOTO_TABLE: u16 = 1;
/// Instruction WRITE_ACTIONS.
pub const OFPIT_WRITE_ACTIONS: u16 = 3;
/// Instruction APPLY_ACTIONS.
pub const OFPIT_APPLY_ACTIONS: u16 = 4;
/// Instruction CLEAR_ACTIONS.
pub const OFPIT_CLEAR_ACTIONS: u16 = 5;

/// One instruction of a flow entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    /// Continue in another table.
    GotoTable(u8),
    /// Add actions to the action set.
    WriteActions(Vec<Action>),
    /// Apply actions immediately.
    ApplyActions(Vec<Action>),
    /// Clear the action set.
    ClearActions,
    /// Any other instruction, kept raw (body after type and length).
    Other {
        /// Instruction type.
        typ: u16,
        /// Body after the 4-byte header.
        data: Vec<u8>,
    },
}

impl Instruction {
    pub(crate) fn parse(i: &[u8]) -> PResult<'_, Instruction> {
        let (j, typ) = u16_(i)?;
        let (j, len) = u16_(j)?;
        let len = usize::from(len);
        if len < 4 {
            return fail(i, "instruction length below 4");
        }
        let (rest, body) = take(j, len - 4)?;
        let zero = |b: &[u8]| b.iter().all(|&x| x == 0);
        let ins = match typ {
            OFPIT_GOTO_TABLE if len == 8 && zero(&body[1..]) => {
                Instruction::GotoTable(u8_(body)?.1)
            }
            OFPIT_WRITE_ACTIONS | OFPIT_APPLY_ACTIONS if len >= 8 && zero(&body[..4]) => {
                let (b, ()) = pad(body, 4)?;
                let (_, acts) = parse_actions(b)?;
                if typ == OFPIT_APPLY_ACTIONS {
                    Instruction::ApplyActions(acts)
                } else {
                    Instruction::WriteActions(acts)
                }
            }
            OFPIT_CLEAR_ACTIONS if len == 8 && zero(body) => Instruction::ClearActions,
            _ => Instruction::Other {
                typ,
                data: body.to_vec(),
            },
        };
        Ok((rest, ins))
    }

    /// Appends this instruction.
    pub fn encode(&self, buf: &mut BytesMut) -> Result<(), Error> {
        let start = buf.len();
        let typ = match self {
            Instruction::GotoTable(_) => OFPIT_GOTO_TABLE,
            Instruction::WriteActions(_) => OFPIT_WRITE_ACTIONS,
            Instruction::ApplyActions(_) => OFPIT_APPLY_ACTIONS,
            Instruction::ClearActions => OFPIT_CLEAR_ACTIONS,
            Instruction::Other { typ, .. } => *typ,
        };
        buf.put_u16(typ);
        let at = len_placeholder(buf);
        match self {
            Instruction::GotoTable(t) => {
                buf.put_u8(*t);
                buf.put_bytes(0, 3);
            }
            Instruction::WriteActions(a) | Instruction::ApplyActions(a) => {
                buf.put_bytes(0, 4);
                encode_actions(a, buf)?;
            }
            Instruction::ClearActions => buf.put_bytes(0, 4),
            Instruction::Other { data, .. } => buf.put_slice(data),
        }
        patch_len(buf, at, start, "instruction")
    }
}

/// Parses a region holding only instructions.
pub(crate) fn parse_instructions(i: &[u8]) -> PResult<'_, Vec<Instruction>> {
    list(i, Instruction::parse)
}

/// Appends a list of instructions.
pub fn encode_instructions(ins: &[Instruction], buf: &mut BytesMut) -> Result<(), Error> {
    ins.iter().try_for_each(|x| x.encode(buf))
}
