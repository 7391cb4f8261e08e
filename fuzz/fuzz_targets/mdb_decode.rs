//! The bridge MDB netlink decoder is network input (kernel answers and
//! notifications): it must be total. Any bytes give entries or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use subcast_agent::backend::linux_bridge::mdb;

fuzz_target!(|data: &[u8]| {
    let _ = mdb::decode_replies(data);
    if let Ok(entries) = mdb::decode_mdb_message(data) {
        // Each entry takes at least a 4-byte attribute header plus 26 bytes.
        assert!(entries.len() <= data.len() / 30 + 1);
    }
    let _ = mdb::parse_entry(0, data);
});
