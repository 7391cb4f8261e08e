//! Shared plumbing: the crate error type, the nom input/error types every parser
//! uses, and the helpers that write length fields.
//!
//! Contract for every parser in this crate: it never panics, never indexes out of
//! bounds, and never allocates more than the input it has already consumed
//! (lists grow one parsed element at a time).

use bytes::{BufMut, BytesMut};
use nom::error::{ErrorKind, ParseError};

/// Errors from decoding or encoding OpenFlow 1.3 messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The buffer is shorter than the 8-byte OpenFlow header.
    #[error("OpenFlow message truncated: {0} bytes, the header alone needs 8")]
    ShortHeader(usize),
    /// The header's length field is impossible or disagrees with the buffer.
    #[error(
        "OpenFlow header length {declared} is invalid for a {actual}-byte buffer \
         (must be >= 8 and equal to the message size); the peer is not speaking OpenFlow \
         or the stream lost framing: reconnect"
    )]
    BadLength {
        /// Length from the header.
        declared: usize,
        /// Bytes available.
        actual: usize,
    },
    /// A known message's body does not parse.
    #[error(
        "malformed OpenFlow message type {msg_type} ({what}) at body offset {offset}; \
         check the switch speaks OpenFlow 1.3 (protocols=OpenFlow13)"
    )]
    Malformed {
        /// OpenFlow message type (header byte 1).
        msg_type: u8,
        /// What the parser expected.
        what: &'static str,
        /// Offset into the body (after the 8-byte header) where parsing failed.
        offset: usize,
    },
    /// The encoded message would not fit its 16-bit length field.
    #[error("cannot encode OpenFlow message: {0} bytes exceeds the 65535-byte limit; split it")]
    TooLong(usize),
    /// A field is too long for its length field (e.g. an OXM value over 255 bytes).
    #[error("cannot encode {what}: {len} bytes does not fit its length field")]
    FieldTooLong {
        /// Which field.
        what: &'static str,
        /// Its size.
        len: usize,
    },
}

/// Parser error: where and what. Converted to [`Error::Malformed`] at the top.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PErr<'a> {
    pub input: &'a [u8],
    pub what: &'static str,
}

impl<'a> ParseError<&'a [u8]> for PErr<'a> {
    fn from_error_kind(input: &'a [u8], kind: ErrorKind) -> Self {
        PErr {
            input,
            what: match kind {
                ErrorKind::Eof => "input ended early",
                _ => "unexpected bytes",
            },
        }
    }
    fn append(_: &'a [u8], _: ErrorKind, other: Self) -> Self {
        other
    }
}

pub(crate) type PResult<'a, T> = nom::IResult<&'a [u8], T, PErr<'a>>;

pub(crate) fn fail<'a, T>(input: &'a [u8], what: &'static str) -> PResult<'a, T> {
    Err(nom::Err::Error(PErr { input, what }))
}

pub(crate) fn u8_(i: &[u8]) -> PResult<'_, u8> {
    nom::number::complete::be_u8(i)
}
pub(crate) fn u16_(i: &[u8]) -> PResult<'_, u16> {
    nom::number::complete::be_u16(i)
}
pub(crate) fn u32_(i: &[u8]) -> PResult<'_, u32> {
    nom::number::complete::be_u32(i)
}
pub(crate) fn u64_(i: &[u8]) -> PResult<'_, u64> {
    nom::number::complete::be_u64(i)
}

/// Takes exactly `n` bytes (fails without allocating if fewer remain).
pub(crate) fn take(i: &[u8], n: usize) -> PResult<'_, &[u8]> {
    nom::bytes::complete::take::<usize, &[u8], PErr<'_>>(n)(i)
}

/// Takes `N` bytes into an array.
pub(crate) fn array<const N: usize>(i: &[u8]) -> PResult<'_, [u8; N]> {
    let (rest, b) = take(i, N)?;
    let mut out = [0u8; N];
    out.copy_from_slice(b);
    Ok((rest, out))
}

/// Skips `n` padding bytes (their value is ignored).
pub(crate) fn pad(i: &[u8], n: usize) -> PResult<'_, ()> {
    let (rest, _) = take(i, n)?;
    Ok((rest, ()))
}

/// Parses a whole region as a sequence of `item`s; `item` must consume input.
pub(crate) fn list<'a, T>(
    mut i: &'a [u8],
    item: impl Fn(&'a [u8]) -> PResult<'a, T>,
) -> PResult<'a, Vec<T>> {
    let mut out = Vec::new();
    while !i.is_empty() {
        let (rest, v) = item(i)?;
        if rest.len() >= i.len() {
            return fail(i, "list element consumed nothing");
        }
        out.push(v);
        i = rest;
    }
    Ok((i, out))
}

/// Runs `p` on the whole of `i` and fails if input remains.
pub(crate) fn all<'a, T>(
    i: &'a [u8],
    p: impl FnOnce(&'a [u8]) -> PResult<'a, T>,
) -> PResult<'a, T> {
    let (rest, v) = p(i)?;
    if !rest.is_empty() {
        return fail(rest, "trailing bytes after structure");
    }
    Ok((rest, v))
}

/// Writes a placeholder u16 length and returns its position.
pub(crate) fn len_placeholder(buf: &mut BytesMut) -> usize {
    let at = buf.len();
    buf.put_u16(0);
    at
}

/// Patches the u16 length at `at` to cover from `start` to the buffer's end.
pub(crate) fn patch_len(
    buf: &mut BytesMut,
    at: usize,
    start: usize,
    what: &'static str,
) -> Result<(), Error> {
    let len = buf.len() - start;
    let v = u16::try_from(len).map_err(|_| Error::FieldTooLong { what, len })?;
    buf[at..at + 2].copy_from_slice(&v.to_be_bytes());
    Ok(())
}

/// Pads with zeros to a multiple of 8 counted from `start`.
pub(crate) fn pad_to_8(buf: &mut BytesMut, start: usize) {
    let len = buf.len() - start;
    buf.put_bytes(0, len.next_multiple_of(8) - len);
}
