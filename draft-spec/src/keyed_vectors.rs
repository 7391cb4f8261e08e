//! Keyed transfers: a PUT_ACCEPT that carries the transfer key wrapped for
//! each target, the keyed DATA (type 0x47) and untagged DATA (0x4e) of
//! that transfer, and what a receiver refuses (appended after the earlier
//! vectors, so their file numbers stay).

use super::*;
use replicast_vectors::{replicast_refused, replicast_with, signed_part};
use subcast_proto::replicast::{
    ChunkKind, KeyedData, PutAccept, TransferKey, seal_keyed_data_into, seal_untagged_data_into,
    tag_encoded,
};

/// The transaction of the keyed transfer (the other vectors use 1 to 4).
pub const KEYED_TXID: u64 = 0x00c0_ffee_0000_0005;

/// The transfer key of the keyed vectors: octets 0x20 to 0x3f (in use, 32
/// octets from a random source).
pub fn vector_transfer_key() -> [u8; 32] {
    let mut b = [0u8; 32];
    for (i, x) in b.iter_mut().enumerate() {
        *x = 0x20 + i as u8;
    }
    b
}

/// The chunk of the keyed transfer: one datagram.
const CHUNK: &[u8] = b"hello world\n";

/// The PUT_ACCEPT of the keyed transfer from `keys`' node, with the
/// transfer key wrapped for each of the targets.
fn keyed_accept(keys: &PairKeys) -> PutAccept {
    let k = TransferKey::from_bytes(vector_transfer_key());
    PutAccept {
        txid: KEYED_TXID,
        chunk_id: *blake3::hash(CHUNK).as_bytes(),
        size: CHUNK.len() as u32,
        kind: ChunkKind::Data,
        datagram_payload: 1392,
        group: ip("ff15::5c:1:0"),
        targets: TARGETS.to_vec(),
        keys: TARGETS
            .iter()
            .map(|t| {
                k.wrap(keys, KEYED_TXID, *t)
                    .expect("a key with every target")
            })
            .collect(),
    }
}

/// A PUT_ACCEPT vector with its transfer key.
fn accept_vector(
    name: &str,
    description: &str,
    keys: &PairKeys,
    receivers: &[u32],
    seq: u64,
) -> Vector {
    let msg = ReplicastMessage::PutAccept(keyed_accept(keys));
    let mut v = replicast_with(name, description, keys, receivers, seq, msg);
    if let Vector::Replicast(r) = &mut v {
        r.transfer_key = Some(hex::encode(vector_transfer_key()));
    }
    v
}

/// A keyed DATA vector: `bytes` as sent or altered, its fields as a
/// receiver parses them.
fn keyed(name: &str, description: &str, total: u32, bytes: Vec<u8>, error: Option<&str>) -> Vector {
    let d = KeyedData::parse(&bytes)
        .expect("well-formed")
        .expect("keyed DATA");
    Vector::Keyed(KeyedVector {
        name: name.into(),
        description: description.into(),
        transfer: "put-accept-keyed".into(),
        transfer_key: hex::encode(vector_transfer_key()),
        txid: d.txid,
        index: d.index,
        total,
        payload: hex::encode(d.payload),
        tag: if d.is_tagged() {
            hex::encode(&bytes[bytes.len() - replicast::transfer::KEYED_TAG_LEN..])
        } else {
            String::new()
        },
        bytes: hex::encode(&bytes),
        error: error.map(str::to_owned),
    })
}

pub(crate) fn vectors() -> Vec<Vector> {
    let client = vector_pair_keys(CLIENT_ID);
    let k = TransferKey::from_bytes(vector_transfer_key());
    let accept = accept_vector(
        "put-accept-keyed",
        "The sender accepts nodes 1, 4 and 8 and sends them the transfer key 202122...3f (octets 0x20 to 0x3f), wrapped for each target t as the key XOR BLAKE3-keyed(K(100, t), the string \"subcast transfer key v1\" followed by txid and t). Its DATA comes as keyed DATA (0x47).",
        &client,
        &TARGETS,
        90,
    );
    let mut data = Vec::new();
    seal_keyed_data_into(&mut data, &k, KEYED_TXID, 0, CHUNK);
    let total = 1;
    // The low bit of the first payload octet: "h" becomes "i".
    let mut flipped = data.clone();
    flipped[replicast::transfer::KEYED_DATA_PREFIX] ^= 0x01;
    // Key count 3 -> 2 and the last wrapped key cut off (re-tagged, so
    // only the count check refuses it).
    let sealed = hex::decode(accept.bytes_hex()).expect("hex");
    let mut short = signed_part(&sealed);
    let key_count = 32 + 64 + 4 * TARGETS.len();
    assert_eq!(usize::from(short[key_count]), TARGETS.len());
    short[key_count] = 2;
    short.truncate(short.len() - replicast::WRAPPED_KEY_LEN);
    let body_len = (short.len() - 32) as u16;
    short[6..8].copy_from_slice(&body_len.to_be_bytes());
    let short = tag_encoded(&client, &short, &TARGETS).expect("tagged");
    let shared = PairKeys::shared(1, CLIENT_ID, &vector_secret());
    let mut untagged = Vec::new();
    seal_untagged_data_into(&mut untagged, KEYED_TXID, 0, CHUNK);
    vec![
        accept,
        keyed(
            "keyed-data",
            "The whole chunk of put-accept-keyed's transfer in one keyed DATA datagram (index 0 of 1): tag = the first 8 octets of BLAKE3-keyed(transfer key, the 28 octets before it).",
            total,
            data,
            None,
        ),
        keyed(
            "keyed-data-bad-tag",
            "keyed-data with the low bit of its first payload octet flipped (\"h\" to \"i\"): the tag does not verify under the transfer key and every target drops it.",
            total,
            flipped,
            Some("bad-mac"),
        ),
        replicast_refused(
            "put-accept-key-count",
            "put-accept-keyed with key count 2 and two wrapped keys for its three targets: the key count must equal the target count.",
            CLIENT_ID,
            NODE_ID,
            short,
            "invalid-field",
        ),
        accept_vector(
            "put-accept-keyed-single-key",
            "put-accept-keyed in the insecure single-key mode: every wrapped key is the key XOR BLAKE3-keyed(shared key, the string \"subcast transfer key v1\" followed by txid and t), and still differs per target t.",
            &shared,
            &[subcast_proto::pairkeys::ANY_RECEIVER],
            91,
        ),
        keyed(
            "untagged-data",
            "keyed-data as untagged DATA (0x4e): the same 16 octets of fields and the payload, no tag. A target takes untagged DATA only into an index it does not hold yet of a transfer of which it already holds a verified datagram; this one, the transfer's first and only datagram, it drops (untagged) and asks for again by NACK. A sender tags index 0 and every 32nd index of its first pass and every repeat.",
            total,
            untagged,
            Some("untagged"),
        ),
    ]
}
