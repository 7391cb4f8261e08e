//! The keyed-transfer vectors (PUT_ACCEPT with wrapped keys, keyed DATA
//! 0x47, untagged DATA 0x4e) as committed in `draft-spec/vectors/`, checked against
//! `subcast-proto` (decode, unwrap, parse, verify) and against the
//! formulas of the draft computed here with BLAKE3 alone, so that a change
//! of either the code or the draft fails.

use std::collections::BTreeMap;
use std::path::PathBuf;
use subcast_draft_spec::*;
use subcast_proto::pairkeys::{derive_pair_key, derive_shared_key};
use subcast_proto::replicast::{
    self, KeyedData, PutAccept, ReplicastMessage, TransferKey, seal_keyed_data_into,
    seal_untagged_data_into,
};
use subcast_proto::{PairKeys, ReplayGuard};

/// The committed vector files, by name.
fn on_disk() -> BTreeMap<String, Vector> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors");
    std::fs::read_dir(&dir)
        .expect("vectors dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let v: Vector = serde_json::from_str(&std::fs::read_to_string(&p).expect("read"))
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (v.name().to_owned(), v)
        })
        .collect()
}

fn key32(h: &str) -> [u8; 32] {
    hex::decode(h).expect("hex").try_into().expect("32 octets")
}

/// The draft's wrapping, from BLAKE3 alone: K_t XOR BLAKE3-keyed(K,
/// "subcast transfer key v1" || txid || t).
fn wrap_by_the_draft(k_t: &[u8; 32], k: &[u8; 32], txid: u64, target: u32) -> [u8; 32] {
    let mut input = b"subcast transfer key v1".to_vec();
    input.extend_from_slice(&txid.to_be_bytes());
    input.extend_from_slice(&target.to_be_bytes());
    let pad = blake3::keyed_hash(k, &input);
    std::array::from_fn(|i| k_t[i] ^ pad.as_bytes()[i])
}

/// The draft's tag, from BLAKE3 alone.
fn tag_by_the_draft(k_t: &[u8; 32], bytes: &[u8]) -> Vec<u8> {
    blake3::keyed_hash(k_t, &bytes[..bytes.len() - 8]).as_bytes()[..8].to_vec()
}

/// A keyed PUT_ACCEPT vector: every target opens it, finds its wrapped
/// key and unwraps the transfer key; no other target's unwrapping does.
fn check_keyed_accept(v: &ReplicastVector) -> PutAccept {
    let name = &v.name;
    let ReplicastMessage::PutAccept(a) = &v.message else {
        panic!("{name}: not a PUT_ACCEPT");
    };
    let k_t = key32(v.transfer_key.as_deref().expect("transfer key"));
    let secret = key32(&v.secret);
    let sender = v.origin.sender_id;
    assert_eq!(a.keys.len(), a.targets.len(), "{name}: one key per target");
    // On the wire: key count, then the keys, right after the targets.
    let bytes = hex::decode(&v.bytes).expect("hex");
    let at = 32 + 64 + 4 * a.targets.len();
    assert_eq!(usize::from(bytes[at]), a.targets.len(), "{name}: key count");
    for (i, w) in a.keys.iter().enumerate() {
        assert_eq!(
            &bytes[at + 1 + 32 * i..at + 33 + 32 * i],
            w,
            "{name}: key {i}"
        );
    }
    let body_len = usize::from(u16::from_be_bytes([bytes[6], bytes[7]]));
    assert_eq!(32 + body_len, at + 1 + 32 * a.targets.len(), "{name}: end");
    let want = TransferKey::from_bytes(k_t);
    for (i, t) in a.targets.iter().enumerate() {
        let k = if v.shared {
            derive_shared_key(&secret)
        } else {
            derive_pair_key(&secret, sender, *t)
        };
        assert_eq!(
            a.keys[i],
            wrap_by_the_draft(&k_t, &k, a.txid, *t),
            "{name}: wrapped key of target {t}"
        );
        // The target: opens the datagram, then unwraps its entry.
        let keys = if v.shared {
            PairKeys::shared(v.key_id, *t, &secret)
        } else {
            PairKeys::from_pairs(v.key_id, *t, [(sender, k)]).expect("ids")
        };
        let dg = replicast::open(
            &keys,
            &mut ReplayGuard::default(),
            &bytes,
            v.origin.timestamp_us,
        )
        .unwrap_or_else(|e| panic!("{name}: target {t}: {e}"));
        assert_eq!(dg.message, v.message, "{name}: target {t} decodes");
        let got = TransferKey::unwrap(&keys, sender, a.txid, *t, &a.keys[i]);
        assert_eq!(got.as_ref(), Some(&want), "{name}: target {t} unwraps");
        // Another target's entry, another txid: not the key.
        let other = &a.keys[(i + 1) % a.keys.len()];
        let wrong = TransferKey::unwrap(&keys, sender, a.txid, *t, other);
        assert_ne!(wrong.as_ref(), Some(&want), "{name}: target {t}");
        let wrong = TransferKey::unwrap(&keys, sender, a.txid + 1, *t, &a.keys[i]);
        assert_ne!(wrong.as_ref(), Some(&want), "{name}: target {t}");
    }
    a.clone()
}

#[test]
fn keyed_vectors_hold_under_subcast_proto() {
    let all = on_disk();
    let mut counts = BTreeMap::<&str, usize>::new();
    for v in all.values() {
        match v {
            Vector::Replicast(r) if r.transfer_key.is_some() => {
                check_keyed_accept(r);
                *counts.entry("accept").or_default() += 1;
                if r.shared {
                    *counts.entry("shared").or_default() += 1;
                }
            }
            Vector::Replicast(r) => {
                if let ReplicastMessage::PutAccept(a) = &r.message {
                    assert!(a.keys.is_empty(), "{}: keys without transfer_key", r.name);
                }
            }
            Vector::Keyed(k) => {
                let name = &k.name;
                let Some(Vector::Replicast(transfer)) = all.get(&k.transfer) else {
                    panic!("{name}: no Replicast vector {}", k.transfer);
                };
                let a = check_keyed_accept(transfer);
                assert_eq!(k.transfer_key, transfer.transfer_key.clone().unwrap());
                let k_t = key32(&k.transfer_key);
                let key = TransferKey::from_bytes(k_t);
                let bytes = hex::decode(&k.bytes).expect("hex");
                let d = KeyedData::parse(&bytes)
                    .unwrap_or_else(|e| panic!("{name}: {e}"))
                    .unwrap_or_else(|| panic!("{name}: not keyed DATA"));
                let (ty, overhead) = if d.is_tagged() {
                    (0x47, 24)
                } else {
                    (0x4e, 16)
                };
                assert_eq!(&bytes[..4], &[0x53, 0x43, 1, ty], "{name}: first octets");
                assert_eq!(d.txid, k.txid, "{name}: txid");
                assert_eq!(d.txid, a.txid, "{name}: txid of its transfer");
                assert_eq!(d.index, k.index, "{name}: index");
                assert_eq!(hex::encode(d.payload), k.payload, "{name}: payload");
                if d.is_tagged() {
                    assert_eq!(hex::encode(&bytes[bytes.len() - 8..]), k.tag, "{name}: tag");
                } else {
                    assert_eq!(k.tag, "", "{name}: no tag");
                }
                assert_eq!(
                    bytes.len(),
                    overhead + d.payload.len(),
                    "{name}: {overhead} octets + payload"
                );
                // The receiver's checks against the ACCEPT: index < total,
                // full datagrams but the last, which is the rest.
                let (size, dp) = (a.size as usize, usize::from(a.datagram_payload));
                assert_eq!(k.total as usize, size.div_ceil(dp), "{name}: total");
                assert!(k.index < k.total, "{name}: index");
                let want_len = if k.index + 1 == k.total {
                    size - (size.div_ceil(dp) - 1) * dp
                } else {
                    dp
                };
                assert_eq!(d.payload.len(), want_len, "{name}: payload length");
                let good =
                    d.is_tagged() && tag_by_the_draft(&k_t, &bytes) == hex::decode(&k.tag).unwrap();
                match k.error.as_deref() {
                    Some("untagged") => {
                        assert!(!d.is_tagged(), "{name}: untagged DATA");
                        assert!(!d.verify(&key), "{name}: no key verifies it");
                        let mut again = Vec::new();
                        seal_untagged_data_into(&mut again, d.txid, d.index, d.payload);
                        assert_eq!(again, bytes, "{name}: sealing gives the same datagram");
                        *counts.entry("untagged").or_default() += 1;
                    }
                    None => {
                        assert!(good, "{name}: the draft's tag");
                        assert!(d.verify(&key), "{name}: verifies");
                        let mut again = Vec::new();
                        seal_keyed_data_into(&mut again, &key, d.txid, d.index, d.payload);
                        assert_eq!(again, bytes, "{name}: sealing gives the same datagram");
                        *counts.entry("data").or_default() += 1;
                    }
                    Some("bad-mac") => {
                        assert!(!good, "{name}: the draft's tag fails");
                        assert!(!d.verify(&key), "{name}: must not verify");
                        *counts.entry("bad-tag").or_default() += 1;
                    }
                    Some(e) => panic!("{name}: unexpected error {e}"),
                }
                // No key other than the transfer's verifies it.
                let mut other = k_t;
                other[0] ^= 1;
                assert!(!d.verify(&TransferKey::from_bytes(other)), "{name}");
            }
            _ => {}
        }
    }
    let want = [
        ("accept", 2),
        ("shared", 1),
        ("data", 1),
        ("bad-tag", 1),
        ("untagged", 1),
    ];
    for (what, n) in want {
        assert!(
            counts.get(what).copied().unwrap_or(0) >= n,
            "keyed vectors missing: {counts:?}"
        );
    }
}

/// The bad-tag vector differs from the good one in one payload bit only.
#[test]
fn bad_tag_vector_is_one_flipped_bit() {
    let all = on_disk();
    let bytes = |n: &str| hex::decode(all[n].bytes_hex()).expect("hex");
    let (good, bad) = (bytes("keyed-data"), bytes("keyed-data-bad-tag"));
    assert_eq!(good.len(), bad.len());
    let diff: u32 = good
        .iter()
        .zip(&bad)
        .map(|(a, b)| (a ^ b).count_ones())
        .sum();
    assert_eq!(diff, 1, "one bit");
    let at = good.iter().zip(&bad).position(|(a, b)| a != b).unwrap();
    assert!(
        (16..good.len() - 8).contains(&at),
        "the flipped bit is in the payload"
    );
}

/// A PUT_ACCEPT whose key count differs from its target count is refused
/// as malformed, by decoding alone and by the target that opens it.
#[test]
fn key_count_mismatch_is_refused() {
    let all = on_disk();
    let Some(Vector::Invalid(v)) = all.get("put-accept-key-count") else {
        panic!("no put-accept-key-count vector");
    };
    assert_eq!(v.family, "replicast");
    let bytes = hex::decode(&v.bytes).expect("hex");
    assert_eq!(bytes[3], 0x42, "a PUT_ACCEPT");
    let targets = usize::from(bytes[32 + 63]);
    let key_count = usize::from(bytes[32 + 64 + 4 * targets]);
    assert_ne!(key_count, targets, "the count differs");
    let e = replicast::decode(&bytes).expect_err("decoding refuses it");
    assert_eq!(e.kind(), v.error);
    assert_eq!(v.error, "invalid-field");
    let sender = u32::from_be_bytes(bytes[12..16].try_into().unwrap());
    let keys = PairKeys::from_pairs(
        v.key_id,
        v.receiver.expect("receiver"),
        [(sender, key32(&v.key))],
    )
    .expect("ids");
    let e = replicast::open(&keys, &mut ReplayGuard::default(), &bytes, v.now_us)
        .expect_err("the target refuses it");
    assert_eq!(e.kind(), v.error);
    // With its key count put back to the target count (and no key
    // missing) the same body would decode: only the count is wrong.
    let Some(Vector::Replicast(ok)) = all.get("put-accept-keyed") else {
        panic!("no put-accept-keyed vector");
    };
    let ok = hex::decode(&ok.bytes).expect("hex");
    let count_at = 32 + 64 + 4 * targets;
    assert_eq!(
        bytes[32..count_at],
        ok[32..count_at],
        "same body up to the keys"
    );
}

/// The draft: any octet after the targets that is not a whole key section
/// is refused (a key section cut short, or followed by more octets).
#[test]
fn key_section_must_be_whole() {
    let all = on_disk();
    let Some(Vector::Replicast(v)) = all.get("put-accept-keyed") else {
        panic!("no put-accept-keyed vector");
    };
    let sealed = hex::decode(&v.bytes).expect("hex");
    let body_len = usize::from(u16::from_be_bytes([sealed[6], sealed[7]]));
    let signed = &sealed[..32 + body_len];
    let client = vector_pair_keys(CLIENT_ID);
    let with_body = |body: &[u8]| {
        let mut d = signed[..32].to_vec();
        d[6..8].copy_from_slice(&(body.len() as u16).to_be_bytes());
        d.extend_from_slice(body);
        replicast::tag_encoded(&client, &d, &TARGETS).expect("tagged")
    };
    let body = &signed[32..];
    let targets_end = 64 + 4 * TARGETS.len();
    assert!(replicast::decode(&with_body(body)).is_ok());
    for (what, b) in [
        ("one octet after the keys", [body, &[0][..]].concat()),
        ("the last key cut short", body[..body.len() - 1].to_vec()),
        ("a key count alone", body[..targets_end + 1].to_vec()),
        ("key count 0", [&body[..targets_end], &[0][..]].concat()),
    ] {
        let e = replicast::decode(&with_body(&b)).expect_err(what);
        assert!(
            ["invalid-field", "truncated", "trailing-bytes"].contains(&e.kind()),
            "{what}: {e}"
        );
    }
    // Without the section: a PUT_ACCEPT of DATA (0x43), no keys.
    let dg = replicast::decode(&with_body(&body[..targets_end])).expect("no section");
    let ReplicastMessage::PutAccept(a) = dg.message else {
        panic!("a PUT_ACCEPT");
    };
    assert!(a.keys.is_empty());
}
