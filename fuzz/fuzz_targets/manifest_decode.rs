//! Version manifests (read from chunks other nodes stored, so from the
//! network): decoding is total, and whatever decodes re-encodes to bytes
//! that decode to the same manifest.
#![no_main]

use libfuzzer_sys::fuzz_target;
use subcast_node::manifest::Manifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::decode(data) {
        let again = Manifest::decode(&m.encode()).expect("a re-encoded manifest decodes");
        assert_eq!(again, m);
    }
});
