//! The [`Message`] enum: every message body this crate understands.

use bytes::{BufMut, BytesMut};

use crate::bundle::{BundleAdd, BundleControl};
use crate::error::ErrorMsg;
use crate::features::{FeaturesReply, SwitchConfig};
use crate::flow_mod::FlowMod;
use crate::group_mod::GroupMod;
use crate::header::{OFP_VERSION, msg_type as t};
use crate::hello::Hello;
use crate::multipart::{MultipartReply, MultipartRequest};
use crate::packet::{PacketIn, PacketOut};
use crate::port::PortStatus;
use crate::wire::{Error, PErr, PResult, all};

/// A message body, by type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// OFPT_HELLO.
    Hello(Hello),
    /// OFPT_ERROR.
    Error(ErrorMsg),
    /// OFPT_ECHO_REQUEST (arbitrary data).
    EchoRequest(Vec<u8>),
    /// OFPT_ECHO_REPLY (the request's data).
    EchoReply(Vec<u8>),
    /// OFPT_FEATURES_REQUEST.
    FeaturesRequest,
    /// OFPT_FEATURES_REPLY.
    FeaturesReply(FeaturesReply),
    /// OFPT_GET_CONFIG_REQUEST.
    GetConfigRequest,
    /// OFPT_GET_CONFIG_REPLY.
    GetConfigReply(SwitchConfig),
    /// OFPT_SET_CONFIG.
    SetConfig(SwitchConfig),
    /// OFPT_PACKET_IN.
    PacketIn(PacketIn),
    /// OFPT_PORT_STATUS.
    PortStatus(PortStatus),
    /// OFPT_PACKET_OUT.
    PacketOut(PacketOut),
    /// OFPT_FLOW_MOD.
    FlowMod(FlowMod),
    /// OFPT_GROUP_MOD.
    GroupMod(GroupMod),
    /// OFPT_MULTIPART_REQUEST.
    MultipartRequest(MultipartRequest),
    /// OFPT_MULTIPART_REPLY.
    MultipartReply(MultipartReply),
    /// OFPT_BARRIER_REQUEST.
    BarrierRequest,
    /// OFPT_BARRIER_REPLY.
    BarrierReply,
    /// ONF bundle control (OFPT_EXPERIMENTER, ONF extension 230).
    BundleControl(BundleControl),
    /// ONF bundle add-message (OFPT_EXPERIMENTER, ONF extension 230).
    BundleAdd(BundleAdd),
    /// Any other type (or any non-1.3 message other than HELLO/ERROR/ECHO), raw.
    Other {
        /// Message type.
        msg_type: u8,
        /// Body after the header.
        body: Vec<u8>,
    },
}

fn empty(i: &[u8]) -> PResult<'_, ()> {
    Ok((i, ()))
}

impl Message {
    /// The `ofp_type` of this message.
    pub fn msg_type(&self) -> u8 {
        match self {
            Message::Hello(_) => t::HELLO,
            Message::Error(_) => t::ERROR,
            Message::EchoRequest(_) => t::ECHO_REQUEST,
            Message::EchoReply(_) => t::ECHO_REPLY,
            Message::FeaturesRequest => t::FEATURES_REQUEST,
            Message::FeaturesReply(_) => t::FEATURES_REPLY,
            Message::GetConfigRequest => t::GET_CONFIG_REQUEST,
            Message::GetConfigReply(_) => t::GET_CONFIG_REPLY,
            Message::SetConfig(_) => t::SET_CONFIG,
            Message::PacketIn(_) => t::PACKET_IN,
            Message::PortStatus(_) => t::PORT_STATUS,
            Message::PacketOut(_) => t::PACKET_OUT,
            Message::FlowMod(_) => t::FLOW_MOD,
            Message::GroupMod(_) => t::GROUP_MOD,
            Message::MultipartRequest(_) => t::MULTIPART_REQUEST,
            Message::MultipartReply(_) => t::MULTIPART_REPLY,
            Message::BarrierRequest => t::BARRIER_REQUEST,
            Message::BarrierReply => t::BARRIER_REPLY,
            Message::BundleControl(_) | Message::BundleAdd(_) => t::EXPERIMENTER,
            Message::Other { msg_type, .. } => *msg_type,
        }
    }

    /// Decodes a body (everything after the header) of the given version and type.
    pub fn decode_body(version: u8, msg_type: u8, body: &[u8]) -> Result<Message, Error> {
        Self::decode_body_at(version, msg_type, body, false)
    }

    pub(crate) fn decode_body_at(
        version: u8,
        msg_type: u8,
        body: &[u8],
        nested: bool,
    ) -> Result<Message, Error> {
        let stable = matches!(
            msg_type,
            t::HELLO | t::ERROR | t::ECHO_REQUEST | t::ECHO_REPLY
        );
        if version != OFP_VERSION && !stable {
            return Ok(Message::Other {
                msg_type,
                body: body.to_vec(),
            });
        }
        if msg_type == t::EXPERIMENTER
            && let Some(r) = crate::bundle::decode(body, nested)
        {
            return r;
        }
        let r: Result<Message, nom::Err<PErr<'_>>> = (|| {
            Ok(match msg_type {
                t::HELLO => Message::Hello(all(body, Hello::parse)?.1),
                t::ERROR => Message::Error(all(body, ErrorMsg::parse)?.1),
                t::ECHO_REQUEST => Message::EchoRequest(body.to_vec()),
                t::ECHO_REPLY => Message::EchoReply(body.to_vec()),
                t::FEATURES_REQUEST => {
                    all(body, empty)?;
                    Message::FeaturesRequest
                }
                t::FEATURES_REPLY => Message::FeaturesReply(all(body, FeaturesReply::parse)?.1),
                t::GET_CONFIG_REQUEST => {
                    all(body, empty)?;
                    Message::GetConfigRequest
                }
                t::GET_CONFIG_REPLY => Message::GetConfigReply(all(body, SwitchConfig::parse)?.1),
                t::SET_CONFIG => Message::SetConfig(all(body, SwitchConfig::parse)?.1),
                t::PACKET_IN => Message::PacketIn(all(body, PacketIn::parse)?.1),
                t::PORT_STATUS => Message::PortStatus(all(body, PortStatus::parse)?.1),
                t::PACKET_OUT => Message::PacketOut(all(body, PacketOut::parse)?.1),
                t::FLOW_MOD => Message::FlowMod(all(body, FlowMod::parse)?.1),
                t::GROUP_MOD => Message::GroupMod(all(body, GroupMod::parse)?.1),
                t::MULTIPART_REQUEST => {
                    Message::MultipartRequest(all(body, MultipartRequest::parse)?.1)
                }
                t::MULTIPART_REPLY => Message::MultipartReply(all(body, MultipartReply::parse)?.1),
                t::BARRIER_REQUEST => {
                    all(body, empty)?;
                    Message::BarrierRequest
                }
                t::BARRIER_REPLY => {
                    all(body, empty)?;
                    Message::BarrierReply
                }
                _ => Message::Other {
                    msg_type,
                    body: body.to_vec(),
                },
            })
        })();
        r.map_err(|e| {
            let (what, at) = match e {
                nom::Err::Error(p) | nom::Err::Failure(p) => (p.what, p.input.as_ptr() as usize),
                nom::Err::Incomplete(_) => ("input ended early", body.as_ptr() as usize),
            };
            Error::Malformed {
                msg_type,
                what,
                offset: at.saturating_sub(body.as_ptr() as usize).min(body.len()),
            }
        })
    }

    /// Appends the body (without header).
    pub fn encode_body(&self, buf: &mut BytesMut) -> Result<(), Error> {
        match self {
            Message::Hello(h) => h.encode(buf)?,
            Message::Error(e) => e.encode(buf),
            Message::EchoRequest(d) | Message::EchoReply(d) => buf.put_slice(d),
            Message::FeaturesRequest
            | Message::GetConfigRequest
            | Message::BarrierRequest
            | Message::BarrierReply => {}
            Message::FeaturesReply(f) => f.encode(buf),
            Message::GetConfigReply(c) | Message::SetConfig(c) => c.encode(buf),
            Message::PacketIn(p) => p.encode(buf)?,
            Message::PortStatus(p) => p.encode(buf),
            Message::PacketOut(p) => p.encode(buf)?,
            Message::FlowMod(f) => f.encode(buf)?,
            Message::GroupMod(g) => g.encode(buf)?,
            Message::MultipartRequest(m) => m.encode(buf)?,
            Message::MultipartReply(m) => m.encode(buf)?,
            Message::BundleControl(c) => c.encode(buf),
            Message::BundleAdd(a) => a.encode(buf)?,
            Message::Other { body, .. } => buf.put_slice(body),
        }
        Ok(())
    }
}
