//! The 8-byte OpenFlow header, message type numbers, and [`Frame`]: one whole
//! message (header fields plus a decoded [`Message`]).

use bytes::{BufMut, BytesMut};

use crate::message::Message;
use crate::wire::Error;

/// Wire version of OpenFlow 1.3.
pub const OFP_VERSION: u8 = 0x04;
/// Header size.
pub const HEADER_LEN: usize = 8;

/// Message type numbers (`ofp_type`).
#[allow(missing_docs)]
pub mod msg_type {
    pub const HELLO: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const ECHO_REQUEST: u8 = 2;
    pub const ECHO_REPLY: u8 = 3;
    pub const EXPERIMENTER: u8 = 4;
    pub const FEATURES_REQUEST: u8 = 5;
    pub const FEATURES_REPLY: u8 = 6;
    pub const GET_CONFIG_REQUEST: u8 = 7;
    pub const GET_CONFIG_REPLY: u8 = 8;
    pub const SET_CONFIG: u8 = 9;
    pub const PACKET_IN: u8 = 10;
    pub const FLOW_REMOVED: u8 = 11;
    pub const PORT_STATUS: u8 = 12;
    pub const PACKET_OUT: u8 = 13;
    pub const FLOW_MOD: u8 = 14;
    pub const GROUP_MOD: u8 = 15;
    pub const MULTIPART_REQUEST: u8 = 18;
    pub const MULTIPART_REPLY: u8 = 19;
    pub const BARRIER_REQUEST: u8 = 20;
    pub const BARRIER_REPLY: u8 = 21;
}

/// `ofp_header`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Protocol version.
    pub version: u8,
    /// Message type.
    pub msg_type: u8,
    /// Total length including the header.
    pub length: u16,
    /// Transaction id.
    pub xid: u32,
}

impl Header {
    /// Reads the header from the first 8 bytes, if present. Never panics.
    pub fn peek(buf: &[u8]) -> Option<Header> {
        let b: &[u8; 8] = buf.get(..HEADER_LEN)?.try_into().ok()?;
        Some(Header {
            version: b[0],
            msg_type: b[1],
            length: u16::from_be_bytes([b[2], b[3]]),
            xid: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        })
    }
}

/// One OpenFlow message: version, transaction id and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Header version (always [`OFP_VERSION`] for messages we send; a peer's
    /// HELLO may carry a higher one).
    pub version: u8,
    /// Transaction id.
    pub xid: u32,
    /// The message.
    pub message: Message,
}

impl Frame {
    /// An OpenFlow 1.3 frame.
    pub fn new(xid: u32, message: Message) -> Frame {
        Frame {
            version: OFP_VERSION,
            xid,
            message,
        }
    }

    /// Decodes exactly one message; `buf` must be the whole message (header length
    /// equal to `buf.len()`). Never panics.
    pub fn decode(buf: &[u8]) -> Result<Frame, Error> {
        Self::decode_at(buf, false)
    }

    /// Decodes a message carried inside another (a bundled message): a bundle
    /// message inside it stays raw, so decoding never recurses further.
    pub(crate) fn decode_nested(buf: &[u8]) -> Result<Frame, Error> {
        Self::decode_at(buf, true)
    }

    fn decode_at(buf: &[u8], nested: bool) -> Result<Frame, Error> {
        let h = Header::peek(buf).ok_or(Error::ShortHeader(buf.len()))?;
        if usize::from(h.length) < HEADER_LEN || usize::from(h.length) != buf.len() {
            return Err(Error::BadLength {
                declared: usize::from(h.length),
                actual: buf.len(),
            });
        }
        let message = Message::decode_body_at(h.version, h.msg_type, &buf[HEADER_LEN..], nested)?;
        Ok(Frame {
            version: h.version,
            xid: h.xid,
            message,
        })
    }

    /// Appends the encoded message. On error `buf` is left as it was.
    pub fn encode(&self, buf: &mut BytesMut) -> Result<(), Error> {
        let start = buf.len();
        buf.put_u8(self.version);
        buf.put_u8(self.message.msg_type());
        buf.put_u16(0);
        buf.put_u32(self.xid);
        if let Err(e) = self.message.encode_body(buf) {
            buf.truncate(start);
            return Err(e);
        }
        let len = buf.len() - start;
        match u16::try_from(len) {
            Ok(v) => {
                buf[start + 2..start + 4].copy_from_slice(&v.to_be_bytes());
                Ok(())
            }
            Err(_) => {
                buf.truncate(start);
                Err(Error::TooLong(len))
            }
        }
    }

    /// Encodes into a fresh buffer.
    pub fn to_bytes(&self) -> Result<BytesMut, Error> {
        let mut b = BytesMut::new();
        self.encode(&mut b)?;
        Ok(b)
    }
}
