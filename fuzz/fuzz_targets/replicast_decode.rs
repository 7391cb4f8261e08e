//! Replicast datagrams: decoding is total, and whatever decodes
//! re-encodes (same header fields, a fresh tag list) to a datagram that
//! decodes to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use subcast_proto::PairKeys;
use subcast_proto::replicast::{decode, seal};

fuzz_target!(|data: &[u8]| {
    if let Ok(dg) = decode(data) {
        let h = dg.header;
        let keys = PairKeys::shared(h.key_id, h.sender_id, &[0; 32]);
        let again = decode(
            &seal(&keys, h.sequence, h.timestamp_us, &[], &dg.message)
                .expect("a decoded message fits when re-sealed with one entry"),
        )
        .expect("re-encoded datagram decodes");
        assert_eq!(again.message, dg.message);
        assert_eq!(again.header, dg.header);
    }
});
