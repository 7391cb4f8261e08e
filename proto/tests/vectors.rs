//! Loads every test vector of the Internet-Draft (`draft-spec/vectors/`)
//! and checks encode and decode both ways.

use serde::Deserialize;
use std::path::PathBuf;
use subcast_proto::replicast::{self, ReplicastMessage};
use subcast_proto::*;

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Vector {
    Valid {
        name: String,
        key_id: u32,
        key: String,
        origin: Origin,
        message: Message,
        bytes: String,
    },
    Replicast {
        name: String,
        key_id: u32,
        secret: String,
        #[serde(default)]
        shared: bool,
        receivers: Vec<u32>,
        pair_keys: std::collections::BTreeMap<String, String>,
        origin: Origin,
        message: ReplicastMessage,
        bytes: String,
    },
    Invalid {
        #[serde(default)]
        family: Option<String>,
        name: String,
        key_id: u32,
        key: String,
        now_us: u64,
        #[serde(default)]
        receiver: Option<u32>,
        #[serde(default)]
        preceded_by: Vec<String>,
        bytes: String,
        error: String,
    },
    /// Keyed DATA (0x47) under the transfer key of a keyed PUT_ACCEPT.
    Keyed {
        name: String,
        transfer_key: String,
        txid: u64,
        index: u32,
        payload: String,
        bytes: String,
        #[serde(default)]
        error: Option<String>,
    },
}

fn key32(hex_text: &str) -> [u8; 32] {
    hex::decode(hex_text)
        .expect("hex")
        .try_into()
        .expect("32 octets")
}

fn load() -> Vec<(PathBuf, Vector)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../draft-spec/vectors");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("draft-spec/vectors exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("readable");
            let v: Vector =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, v)
        })
        .collect()
}

#[test]
fn every_vector_round_trips() {
    let vectors = load();
    assert!(vectors.len() >= 20, "expected the full vector set");
    let mut seen_types = std::collections::BTreeSet::new();
    let mut seen_errors = std::collections::BTreeSet::new();
    for (path, v) in vectors {
        match v {
            Vector::Valid {
                name,
                key_id,
                key,
                origin,
                message,
                bytes,
            } => {
                let key = Key::from_hex(key_id, &key).expect("key");
                let expected = hex::decode(&bytes).expect("hex");
                // encode: message -> bytes
                assert_eq!(
                    hex::encode(seal(&key, origin, &message)),
                    bytes,
                    "{name}: encoding differs from {}",
                    path.display()
                );
                // decode: bytes -> message, with tag and freshness checked
                let mut opener = Opener::new(Keyring::new([key]), ReplayGuard::default());
                let dg = opener
                    .open(&expected, origin.timestamp_us)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(dg.message, message, "{name}");
                assert_eq!(dg.header.sequence, origin.sequence, "{name}");
                seen_types.insert(message.msg_type());
            }
            Vector::Replicast {
                name,
                key_id,
                secret,
                shared,
                receivers,
                pair_keys,
                origin,
                message,
                bytes,
            } => {
                let secret = key32(&secret);
                let sender = if shared {
                    PairKeys::shared(key_id, origin.sender_id, &secret)
                } else {
                    // The listed pair keys are the derivation's.
                    for (r, k) in &pair_keys {
                        assert_eq!(
                            hex::encode(subcast_proto::pairkeys::derive_pair_key(
                                &secret,
                                origin.sender_id,
                                r.parse().expect("decimal id")
                            )),
                            *k,
                            "{name}: pair key of {r}"
                        );
                    }
                    PairKeys::provision(key_id, &secret, origin.sender_id, receivers.clone())
                        .expect("ids")
                };
                assert_eq!(
                    hex::encode(
                        replicast::seal(
                            &sender,
                            origin.sequence,
                            origin.timestamp_us,
                            &receivers,
                            &message
                        )
                        .expect("sealed")
                    ),
                    bytes,
                    "{name}: encoding differs from {}",
                    path.display()
                );
                // Every receiver opens it with the one key it shares with
                // the sender, and nothing else.
                for r in &receivers {
                    let keys = if shared {
                        PairKeys::shared(key_id, 4242, &secret)
                    } else {
                        PairKeys::from_pairs(
                            key_id,
                            *r,
                            [(origin.sender_id, key32(&pair_keys[&r.to_string()]))],
                        )
                        .expect("ids")
                    };
                    let dg = replicast::open(
                        &keys,
                        &mut ReplayGuard::default(),
                        &hex::decode(&bytes).expect("hex"),
                        origin.timestamp_us,
                    )
                    .unwrap_or_else(|e| panic!("{name}: receiver {r}: {e}"));
                    assert_eq!(dg.message, message, "{name}");
                    seen_types.insert(dg.header.msg_type);
                }
            }
            Vector::Keyed {
                name,
                transfer_key,
                txid,
                index,
                payload,
                bytes,
                error,
            } => {
                let key = replicast::TransferKey::from_bytes(key32(&transfer_key));
                let raw = hex::decode(&bytes).expect("hex");
                let d = replicast::KeyedData::parse(&raw)
                    .unwrap_or_else(|e| panic!("{name}: {e}"))
                    .unwrap_or_else(|| panic!("{name}: not keyed DATA"));
                assert_eq!(
                    (d.txid, d.index, hex::encode(d.payload)),
                    (txid, index, payload),
                    "{name}"
                );
                match error {
                    None => {
                        assert!(d.verify(&key), "{name}: tag does not verify");
                        let mut again = Vec::new();
                        replicast::seal_keyed_data_into(&mut again, &key, txid, index, d.payload);
                        assert_eq!(
                            hex::encode(again),
                            bytes,
                            "{name}: encoding differs from {}",
                            path.display()
                        );
                        seen_types.insert(replicast::KEYED_DATA);
                    }
                    Some(e) => {
                        assert!(!d.verify(&key), "{name}: must not verify");
                        seen_errors.insert(e);
                    }
                }
            }
            Vector::Invalid {
                family: Some(f),
                name,
                key_id,
                key,
                now_us,
                receiver,
                bytes,
                error,
                ..
            } if f == "replicast" => {
                let bytes_raw = hex::decode(&bytes).expect("hex");
                // The sender as the header claims it.
                let sender = u32::from_be_bytes(bytes_raw[12..16].try_into().expect("4"));
                let keys = PairKeys::from_pairs(
                    key_id,
                    receiver.expect("a Replicast refusal names its receiver"),
                    [(sender, key32(&key))],
                )
                .expect("ids");
                let got = replicast::open(
                    &keys,
                    &mut ReplayGuard::default(),
                    &hex::decode(&bytes).expect("hex"),
                    now_us,
                )
                .expect_err(&name);
                assert_eq!(got.kind(), error, "{name}: got {got}");
            }
            Vector::Invalid {
                name,
                key_id,
                key,
                now_us,
                preceded_by,
                bytes,
                error,
                ..
            } => {
                let key = Key::from_hex(key_id, &key).expect("key");
                let mut opener = Opener::new(Keyring::new([key]), ReplayGuard::default());
                for p in preceded_by {
                    opener
                        .open(&hex::decode(p).expect("hex"), now_us)
                        .unwrap_or_else(|e| panic!("{name}: preceding datagram refused: {e}"));
                }
                let got = opener
                    .open(&hex::decode(&bytes).expect("hex"), now_us)
                    .expect_err(&name);
                assert_eq!(got.kind(), error, "{name}: got {got}");
                seen_errors.insert(error);
            }
        }
    }
    // One vector per message type at least.
    for t in [
        0x01, 0x02, 0x10, 0x11, 0x12, 0x13, 0x20, 0x21, 0x22, 0x23, 0x40, 0x41, 0x42, 0x43, 0x44,
        0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x4c, 0x4d,
    ] {
        assert!(seen_types.contains(&t), "no vector for type {t:#04x}");
    }
    for e in [
        "truncated",
        "bad-magic",
        "bad-mac",
        "replay",
        "invalid-field",
    ] {
        assert!(seen_errors.contains(e), "no vector for error {e}");
    }
}
