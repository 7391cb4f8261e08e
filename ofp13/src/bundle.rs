//! Bundles on OpenFlow 1.3: ONF extension 230 (the OpenFlow 1.4 bundle
//! messages carried as ONF experimenter messages), as Open vSwitch speaks it.
//!
//! A controller opens a bundle, adds messages to it, and commits it; with the
//! ATOMIC flag the switch applies all of them or, if one fails, none (it
//! reports the failed message's error with that message's xid, then fails the
//! commit with an ONF experimenter error).
//!
//! ```text
//! experimenter header  { u32 experimenter = 0x4f4e4600 (ONF); u32 exp_type }
//! BUNDLE_CONTROL 2300  { u32 bundle_id; u16 type; u16 flags; properties }
//! BUNDLE_ADD     2301  { u32 bundle_id; u8 pad[2]; u16 flags; message (whole,
//!                        with its header); [pad to 8 and properties] }
//! ```

use bytes::{BufMut, BytesMut};

use crate::header::{Frame, HEADER_LEN, Header};
use crate::message::Message;
use crate::wire::{Error, PResult, pad, take, u16_, u32_};

/// The ONF experimenter id.
pub const ONF_EXPERIMENTER_ID: u32 = 0x4f4e_4600;
/// ONF experimenter type of BUNDLE_CONTROL.
pub const ONFT_BUNDLE_CONTROL: u32 = 2300;
/// ONF experimenter type of BUNDLE_ADD_MESSAGE.
pub const ONFT_BUNDLE_ADD_MESSAGE: u32 = 2301;
/// Bundle flag: all or nothing.
pub const OFPBF_ATOMIC: u16 = 1;
/// Bundle flag: apply in order.
pub const OFPBF_ORDERED: u16 = 2;
/// Error type of experimenter errors (the ONF bundle errors among them).
pub const OFPET_EXPERIMENTER: u16 = 0xffff;

/// BUNDLE_CONTROL types.
#[allow(missing_docs)]
pub mod ctrl {
    pub const OPEN_REQUEST: u16 = 0;
    pub const OPEN_REPLY: u16 = 1;
    pub const CLOSE_REQUEST: u16 = 2;
    pub const CLOSE_REPLY: u16 = 3;
    pub const COMMIT_REQUEST: u16 = 4;
    pub const COMMIT_REPLY: u16 = 5;
    pub const DISCARD_REQUEST: u16 = 6;
    pub const DISCARD_REPLY: u16 = 7;
}

/// BUNDLE_CONTROL (open, close, commit, discard and their replies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleControl {
    /// The bundle.
    pub bundle_id: u32,
    /// [`ctrl`] type.
    pub typ: u16,
    /// `OFPBF_*`.
    pub flags: u16,
    /// Bundle properties, raw.
    pub properties: Vec<u8>,
}

/// BUNDLE_ADD_MESSAGE: one message added to an open bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleAdd {
    /// The bundle.
    pub bundle_id: u32,
    /// `OFPBF_*` (the same as at open).
    pub flags: u16,
    /// The message (its xid should be the BUNDLE_ADD's: errors carry it).
    pub message: Box<Frame>,
    /// Padding and properties after the message, raw.
    pub trailing: Vec<u8>,
}

impl BundleControl {
    /// A request of `typ` with no properties.
    pub fn request(bundle_id: u32, typ: u16, flags: u16) -> Self {
        BundleControl {
            bundle_id,
            typ,
            flags,
            properties: Vec::new(),
        }
    }

    fn parse(i: &[u8]) -> PResult<'_, BundleControl> {
        let (i, bundle_id) = u32_(i)?;
        let (i, typ) = u16_(i)?;
        let (i, flags) = u16_(i)?;
        Ok((
            &i[i.len()..],
            BundleControl {
                bundle_id,
                typ,
                flags,
                properties: i.to_vec(),
            },
        ))
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut) {
        buf.put_u32(ONF_EXPERIMENTER_ID);
        buf.put_u32(ONFT_BUNDLE_CONTROL);
        buf.put_u32(self.bundle_id);
        buf.put_u16(self.typ);
        buf.put_u16(self.flags);
        buf.put_slice(&self.properties);
    }
}

impl BundleAdd {
    /// Adds `message` (sent with `xid`) to bundle `bundle_id`.
    pub fn new(bundle_id: u32, flags: u16, xid: u32, message: Message) -> Self {
        BundleAdd {
            bundle_id,
            flags,
            message: Box::new(Frame::new(xid, message)),
            trailing: Vec::new(),
        }
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut) -> Result<(), Error> {
        buf.put_u32(ONF_EXPERIMENTER_ID);
        buf.put_u32(ONFT_BUNDLE_ADD_MESSAGE);
        buf.put_u32(self.bundle_id);
        buf.put_u16(0);
        buf.put_u16(self.flags);
        self.message.encode(buf)?;
        buf.put_slice(&self.trailing);
        Ok(())
    }
}

/// The inner message of a BUNDLE_ADD: `(message bytes, rest)`.
fn inner(i: &[u8]) -> PResult<'_, &[u8]> {
    let Some(h) = Header::peek(i) else {
        return crate::wire::fail(i, "bundled message header");
    };
    if usize::from(h.length) < HEADER_LEN {
        return crate::wire::fail(i, "bundled message length below 8");
    }
    take(i, usize::from(h.length))
}

/// Decodes an ONF bundle experimenter body (after the OpenFlow header), or
/// `None` for any other experimenter message. Bundled messages are decoded
/// one level deep (a bundle message inside a bundle stays raw).
pub(crate) fn decode(body: &[u8], nested: bool) -> Option<Result<Message, Error>> {
    let malformed = |what| Error::Malformed {
        msg_type: crate::header::msg_type::EXPERIMENTER,
        what,
        offset: 0,
    };
    let exp = u32::from_be_bytes(body.get(..4)?.try_into().ok()?);
    let typ = u32::from_be_bytes(body.get(4..8)?.try_into().ok()?);
    if exp != ONF_EXPERIMENTER_ID || nested {
        return None;
    }
    let rest = &body[8..];
    match typ {
        ONFT_BUNDLE_CONTROL => Some(
            BundleControl::parse(rest)
                .map(|(_, c)| Message::BundleControl(c))
                .map_err(|_| malformed("bundle control")),
        ),
        ONFT_BUNDLE_ADD_MESSAGE => {
            let r: PResult<'_, (u32, u16, &[u8])> = (|| {
                let (i, bundle_id) = u32_(rest)?;
                let (i, ()) = pad(i, 2)?;
                let (i, flags) = u16_(i)?;
                let (i, m) = inner(i)?;
                Ok((i, (bundle_id, flags, m)))
            })();
            let Ok((trailing, (bundle_id, flags, m))) = r else {
                return Some(Err(malformed("bundle add")));
            };
            Some(Frame::decode_nested(m).map(|f| {
                Message::BundleAdd(BundleAdd {
                    bundle_id,
                    flags,
                    message: Box::new(f),
                    trailing: trailing.to_vec(),
                })
            }))
        }
        _ => None,
    }
}

/// Whether an OFPT_ERROR is the ONF experimenter error of a failed bundle
/// operation (open, add or commit).
pub fn is_bundle_error(e: &crate::ErrorMsg) -> bool {
    e.typ == OFPET_EXPERIMENTER && e.data.get(..4) == Some(&ONF_EXPERIMENTER_ID.to_be_bytes()[..])
}
