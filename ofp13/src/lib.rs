//! OpenFlow 1.3 codec (nom parser, bytes writer, tokio codec) for the Open vSwitch backend.
//!
//! One file per message family (`bundle.rs`: ONF extension 230 bundles on 1.3). [`Frame`] is one whole message (version, xid,
//! [`Message`]); [`Frame::decode`] parses exactly one message and
//! [`Frame::encode`] appends one. [`OfpCodec`] frames a byte stream by the header
//! length (rejecting lengths below 8).
//!
//! Contract: decoding never panics and never allocates more than the input holds;
//! unknown message types, OXM fields, actions, instructions, hello elements and
//! multipart kinds decode to `Other` variants holding the raw bytes, so they
//! re-encode identically. Malformed bodies of known messages are errors.

pub mod action;
pub mod bundle;
pub mod codec;
pub mod error;
pub mod features;
pub mod flow_mod;
pub mod group_mod;
pub mod header;
pub mod hello;
pub mod message;
pub mod multipart;
pub mod oxm;
pub mod packet;
pub mod port;
mod wire;

pub use action::{Action, Instruction};
pub use bundle::{BundleAdd, BundleControl};
pub use codec::{CodecError, OfpCodec};
pub use error::ErrorMsg;
pub use features::{FeaturesReply, SwitchConfig};
pub use flow_mod::FlowMod;
pub use group_mod::{Bucket, GroupMod};
pub use header::{Frame, HEADER_LEN, Header, OFP_VERSION};
pub use hello::{Hello, HelloElement};
pub use message::Message;
pub use multipart::{
    FlowStats, FlowStatsRequest, GroupDesc, GroupFeatures, MultipartReply, MultipartReplyBody,
    MultipartRequest, MultipartRequestBody,
};
pub use oxm::{Match, Oxm};
pub use packet::{PacketIn, PacketOut};
pub use port::{Port, PortStatus};
pub use wire::Error;
