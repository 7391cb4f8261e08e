//! `tokio_util` codec framing OpenFlow messages by the header's length field.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use crate::header::{Frame, HEADER_LEN, Header};
use crate::wire::Error;

/// Errors on an OpenFlow stream.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Socket error.
    #[error("OpenFlow connection I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Protocol error (the stream cannot continue).
    #[error(transparent)]
    Protocol(#[from] Error),
}

/// Frames and decodes OpenFlow 1.3 messages.
#[derive(Debug, Default, Clone, Copy)]
pub struct OfpCodec;

impl Decoder for OfpCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        let Some(h) = Header::peek(src) else {
            return Ok(None);
        };
        let len = usize::from(h.length);
        if len < HEADER_LEN {
            return Err(Error::BadLength {
                declared: len,
                actual: src.len(),
            }
            .into());
        }
        if src.len() < len {
            src.reserve(len - src.len());
            return Ok(None);
        }
        let msg = src.split_to(len);
        Ok(Some(Frame::decode(&msg)?))
    }
}

impl Encoder<Frame> for OfpCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        item.encode(dst)?;
        Ok(())
    }
}

impl Encoder<&Frame> for OfpCodec {
    type Error = CodecError;

    fn encode(&mut self, item: &Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        item.encode(dst)?;
        Ok(())
    }
}
