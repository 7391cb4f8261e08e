//! Keyed DATA (type 0x47) and untagged DATA (0x4e), `replicast::KeyedData`:
//! parsing is total, what parses splits where the layout says (txid at 4,
//! index at 12, payload from 16 up to the 8-octet tag, or to the end
//! untagged), and sealing the parsed fields again (under a fixed transfer
//! key if tagged) gives a datagram of the same length that parses to the
//! same fields; a tagged one verifies under that key only, an untagged one
//! under none. Every input without one is also tried with the keyed and
//! the untagged prefix (magic, version 1, type) so the checks after it are
//! reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use subcast_proto::replicast::{
    KEYED_DATA, KEYED_DATA_OVERHEAD, KeyedData, TransferKey, UNTAGGED_DATA, keyed_data_len,
    seal_keyed_data_into, seal_untagged_data_into, untagged_data_len,
};

const KEY: [u8; 32] = [0x5c; 32];
const PREFIX: [u8; 4] = [0x53, 0x43, 1, KEYED_DATA];
const UNTAGGED_PREFIX: [u8; 4] = [0x53, 0x43, 1, UNTAGGED_DATA];

fn check(bytes: &[u8]) {
    let Ok(Some(v)) = KeyedData::parse(bytes) else {
        return;
    };
    let key = TransferKey::from_bytes(KEY);
    let mut other = KEY;
    other[0] ^= 1;
    let other = TransferKey::from_bytes(other);
    assert_eq!(v.txid, u64::from_be_bytes(bytes[4..12].try_into().unwrap()));
    assert_eq!(
        v.index,
        u32::from_be_bytes(bytes[12..16].try_into().unwrap())
    );
    if !v.is_tagged() {
        assert_eq!(bytes[..4], UNTAGGED_PREFIX);
        assert!(bytes.len() > 16, "parsed a short datagram");
        assert_eq!(v.payload, &bytes[16..]);
        assert!(!v.verify(&key) && !v.verify(&other), "untagged verifies");
        let mut out = vec![0xee];
        seal_untagged_data_into(&mut out, v.txid, v.index, v.payload);
        assert_eq!(out[0], 0xee);
        assert_eq!(out.len() - 1, untagged_data_len(v.payload.len()));
        assert_eq!(&out[1..], bytes, "untagged DATA seals back to itself");
        return;
    }
    assert!(bytes.len() > KEYED_DATA_OVERHEAD, "parsed a short datagram");
    assert_eq!(bytes[..4], PREFIX);
    assert_eq!(v.payload, &bytes[16..bytes.len() - 8]);

    let mut out = vec![0xee]; // sealing appends: keep what came before
    seal_keyed_data_into(&mut out, &key, v.txid, v.index, v.payload);
    assert_eq!(out[0], 0xee);
    let sealed = &out[1..];
    assert_eq!(sealed.len(), keyed_data_len(v.payload.len()));
    assert_eq!(sealed.len(), bytes.len());
    // Everything but the tag is the input's.
    assert_eq!(sealed[..bytes.len() - 8], bytes[..bytes.len() - 8]);
    let again = KeyedData::parse(sealed)
        .expect("a sealed datagram parses")
        .expect("a sealed datagram is keyed DATA");
    assert_eq!(
        (again.txid, again.index, again.payload),
        (v.txid, v.index, v.payload)
    );
    assert!(again.verify(&key), "sealed under KEY, verifies under KEY");
    assert!(!again.verify(&other), "verifies under another key");
    // The input verifies under KEY exactly when its tag is the sealed one.
    assert_eq!(v.verify(&key), bytes == sealed);
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if data.len() >= 4 && data[..4] != PREFIX && data[..4] != UNTAGGED_PREFIX {
        for prefix in [PREFIX, UNTAGGED_PREFIX] {
            let mut typed = data.to_vec();
            typed[..4].copy_from_slice(&prefix);
            check(&typed);
        }
    }
});
