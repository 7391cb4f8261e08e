//! The authenticated path: opening arbitrary bytes with a keyring and a
//! replay guard never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use subcast_proto::{Key, Keyring, Opener, ReplayGuard};

fuzz_target!(|data: &[u8]| {
    let mut opener = Opener::new(Keyring::new([Key::new(1, [7; 32])]), ReplayGuard::default());
    let _ = opener.open(data, 1_795_651_200_000_000);
    let _ = opener.open(data, 1_795_651_200_000_000);
});
