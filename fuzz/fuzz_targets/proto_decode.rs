//! Any byte string decodes to a datagram or an error, never a panic; a
//! datagram that decodes re-encodes to a datagram that decodes the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use subcast_proto::{Key, Origin, decode, seal};

fuzz_target!(|data: &[u8]| {
    if let Ok(dg) = decode(data) {
        let key = Key::new(dg.header.key_id, [0; 32]);
        let origin = Origin {
            key_id: dg.header.key_id,
            sender_id: dg.header.sender_id,
            sequence: dg.header.sequence,
            timestamp_us: dg.header.timestamp_us,
        };
        let again = decode(&seal(&key, origin, &dg.message)).expect("re-encoded datagram decodes");
        assert_eq!(again.message, dg.message);
    }
});
