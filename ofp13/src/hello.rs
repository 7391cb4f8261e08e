//! HELLO (with hello elements) and ECHO_REQUEST / ECHO_REPLY.

use bytes::{BufMut, BytesMut};

use crate::wire::{Error, PResult, fail, len_placeholder, list, pad, patch_len, take, u16_, u32_};

/// Hello element type VERSIONBITMAP.
pub const OFPHET_VERSIONBITMAP: u16 = 1;

/// One hello element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelloElement {
    /// Bitmaps of supported versions (bit n of word 0 = version n).
    VersionBitmap(Vec<u32>),
    /// Any other element, kept raw (body after type and length, without padding).
    Other {
        /// Element type.
        typ: u16,
        /// Body.
        data: Vec<u8>,
    },
}

/// OFPT_HELLO body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hello {
    /// Elements (empty for a plain hello).
    pub elements: Vec<HelloElement>,
}

impl Hello {
    /// A hello advertising exactly OpenFlow 1.3.
    pub fn of13() -> Hello {
        Hello {
            elements: vec![HelloElement::VersionBitmap(vec![1 << 4])],
        }
    }

    /// True when the peer advertises OpenFlow 1.3 in its bitmap, or sends no bitmap
    /// (then the header version decides).
    pub fn supports_of13(&self) -> Option<bool> {
        self.elements.iter().find_map(|e| match e {
            HelloElement::VersionBitmap(b) => Some(b.first().is_some_and(|w| w & (1 << 4) != 0)),
            HelloElement::Other { .. } => None,
        })
    }

    pub(crate) fn parse(i: &[u8]) -> PResult<'_, Hello> {
        let (rest, elements) = list(i, |e| {
            let (j, typ) = u16_(e)?;
            let (j, len) = u16_(j)?;
            let len = usize::from(len);
            if len < 4 {
                return fail(e, "hello element length below 4");
            }
            let (j, body) = take(j, len - 4)?;
            // The last element may omit its padding.
            let padding = (len.next_multiple_of(8) - len).min(j.len());
            let (j, ()) = pad(j, padding)?;
            let el = if typ == OFPHET_VERSIONBITMAP && body.len() % 4 == 0 {
                HelloElement::VersionBitmap(list(body, u32_)?.1)
            } else {
                HelloElement::Other {
                    typ,
                    data: body.to_vec(),
                }
            };
            Ok((j, el))
        })?;
        Ok((rest, Hello { elements }))
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut) -> Result<(), Error> {
        for e in &self.elements {
            let start = buf.len();
            let at;
            match e {
                HelloElement::VersionBitmap(words) => {
                    buf.put_u16(OFPHET_VERSIONBITMAP);
                    at = len_placeholder(buf);
                    words.iter().for_each(|w| buf.put_u32(*w));
                }
                HelloElement::Other { typ, data } => {
                    buf.put_u16(*typ);
                    at = len_placeholder(buf);
                    buf.put_slice(data);
                }
            }
            patch_len(buf, at, start, "hello element")?;
            crate::wire::pad_to_8(buf, start);
        }
        Ok(())
    }
}
