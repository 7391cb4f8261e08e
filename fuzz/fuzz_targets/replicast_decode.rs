//! Replicast datagrams: decoding is total, and whatever decodes
//! re-encodes to a datagram that decodes to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use subcast_proto::replicast::{decode, encode};
use subcast_proto::{Key, Origin};

fuzz_target!(|data: &[u8]| {
    if let Ok(dg) = decode(data) {
        let key = Key::new(dg.header.key_id, [0; 32]);
        let origin = Origin {
            key_id: dg.header.key_id,
            sender_id: dg.header.sender_id,
            sequence: dg.header.sequence,
            timestamp_us: dg.header.timestamp_us,
        };
        let again = decode(&encode(&key, origin, &dg.message)).expect("re-encoded datagram decodes");
        assert_eq!(again.message, dg.message);
        assert_eq!(again.header, dg.header);
    }
});
