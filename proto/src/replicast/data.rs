//! DATA without intermediate copies: sealed from the chunk straight into a
//! send buffer ([`seal_data_into`]) and opened in place ([`open_data`]).
//! Same layout as [`ReplicastMessage::Data`](super::ReplicastMessage).

use super::replicast_type;
use super::tagged::{Frame, ReplicastSealer, SealError, data_fields, seal_with};
use crate::auth::ReplayGuard;
use crate::error::OpenError;
use crate::header::Header;
use crate::pairkeys::PairKeys;

/// A DATA datagram seen in place: the header and the body's fields over
/// the received bytes (the payload is not copied).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataView<'a> {
    pub header: Header,
    pub txid: u64,
    pub index: u32,
    pub total: u32,
    pub payload: &'a [u8],
}

/// Octets of a sealed DATA datagram carrying `payload_len` octets with
/// `receivers` tag entries.
pub const fn data_len(payload_len: usize, receivers: usize) -> usize {
    super::data_overhead(receivers) + payload_len
}

/// Appends a sealed DATA datagram (header, body, tag list for
/// `receivers`) to `out`, copying the payload once, from the chunk
/// straight into the send buffer. `payload` must hold 1 to
/// [`super::MAX_DATAGRAM_PAYLOAD`] octets. On error nothing is appended.
#[allow(clippy::too_many_arguments)]
pub fn seal_data_into(
    out: &mut Vec<u8>,
    sealer: &mut ReplicastSealer,
    now_us: u64,
    txid: u64,
    index: u32,
    total: u32,
    payload: &[u8],
    receivers: &[u32],
) -> Result<(), SealError> {
    debug_assert!(!payload.is_empty() && payload.len() <= super::MAX_DATAGRAM_PAYLOAD);
    let seq = sealer.next_sequence(now_us);
    seal_with(
        out,
        sealer.keys(),
        seq,
        now_us,
        receivers,
        replicast_type::DATA,
        |w| {
            w.u64(txid);
            w.u32(index);
            w.u32(total);
            w.bytes(payload);
        },
    )
}

/// Opens a DATA datagram in place: `Ok(None)` if `bytes` is a well-formed
/// Replicast datagram of another type (use [`super::open`]); otherwise
/// decoded, this node's tag verified and the header admitted into the
/// replay guard, as [`super::open`] does.
pub fn open_data<'a>(
    keys: &PairKeys,
    guard: &mut ReplayGuard,
    bytes: &'a [u8],
    now_us: u64,
) -> Result<Option<DataView<'a>>, OpenError> {
    let f = Frame::parse(bytes)?;
    if f.header.msg_type != replicast_type::DATA {
        return Ok(None);
    }
    let (txid, index, total, payload) = data_fields(&f)?;
    f.verify(keys)?;
    let h = &f.header;
    guard.admit(h.key_id, h.sender_id, h.sequence, h.timestamp_us, now_us)?;
    Ok(Some(DataView {
        header: f.header,
        txid,
        index,
        total,
        payload,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replicast::{Data, PutReady, ReplicastMessage, seal};
    use std::sync::Arc;

    #[test]
    fn data_sealed_in_place_is_the_message_encoding_and_opens_in_place() {
        let secret = [9u8; 32];
        let keys = Arc::new(PairKeys::provision(3, &secret, 77, [1, 2, 4]).unwrap());
        let mut a = ReplicastSealer::new(keys.clone(), 1000);
        let payload: Vec<u8> = (0..1200u32).map(|i| i as u8).collect();
        let mut out = vec![0xee; 5];
        seal_data_into(&mut out, &mut a, 42, 9, 3, 10, &payload, &[1, 2]).unwrap();
        let msg = ReplicastMessage::Data(Data {
            txid: 9,
            index: 3,
            total: 10,
            payload: payload.clone(),
        });
        assert_eq!(
            &out[5..],
            &seal(&keys, 1000, 42, &[1, 2], &msg).unwrap()[..]
        );
        assert_eq!(out.len() - 5, data_len(payload.len(), 2));
        let one = PairKeys::provision(3, &secret, 1, [77]).unwrap();
        let mut g = ReplayGuard::new(u64::MAX / 2);
        let v = open_data(&one, &mut g, &out[5..], 42).unwrap().unwrap();
        assert_eq!(
            (v.txid, v.index, v.total, v.payload),
            (9, 3, 10, &payload[..])
        );
        // Replayed: refused like open() refuses it.
        assert!(open_data(&one, &mut g, &out[5..], 42).is_err());
        // Not a receiver: refused before any hashing.
        let four = PairKeys::provision(3, &secret, 4, [77]).unwrap();
        let e = open_data(&four, &mut ReplayGuard::new(u64::MAX / 2), &out[5..], 42);
        assert_eq!(e.unwrap_err().kind(), "not-for-me");
        // Another message: not DATA.
        let other = a
            .seal(
                &ReplicastMessage::PutReady(PutReady {
                    txid: 1,
                    chunk_id: [0; 32],
                }),
                &[1],
                42,
            )
            .unwrap();
        assert_eq!(open_data(&one, &mut g, &other, 42).unwrap(), None);
        // A flipped payload bit fails the tag.
        let mut bad = out[5..].to_vec();
        bad[60] ^= 1;
        let e = open_data(&one, &mut ReplayGuard::new(u64::MAX / 2), &bad, 42);
        assert_eq!(e.unwrap_err().kind(), "bad-mac");
    }
}
