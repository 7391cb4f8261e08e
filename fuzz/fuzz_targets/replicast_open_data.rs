//! DATA opened in place (`replicast::open_data`): total on any input, and
//! whatever it accepts, `open` accepts with the same fields. Inputs are
//! re-tagged for node 1 under the key it shares with the claimed sender
//! (when the sender is one of 2..=4), so the checks after the tag are
//! reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use subcast_proto::replicast::{ReplicastMessage, open, open_data, tag_encoded};
use subcast_proto::{PairKeys, ReplayGuard};

const SECRET: [u8; 32] = [7; 32];

fuzz_target!(|data: &[u8]| {
    let me = PairKeys::provision(1, &SECRET, 1, [2, 3, 4]).expect("ids");
    let mut inputs = vec![data.to_vec()];
    // The same bytes with a valid tag list: header and body as given.
    if data.len() >= 32 {
        let sender = u32::from_be_bytes([data[12], data[13], data[14], data[15]]);
        let body_len = usize::from(u16::from_be_bytes([data[6], data[7]]));
        if (2..=4).contains(&sender) && 32 + body_len <= data.len() {
            let keys = PairKeys::provision(1, &SECRET, sender, [1]).expect("ids");
            if let Ok(t) = tag_encoded(&keys, &data[..32 + body_len], &[1]) {
                inputs.push(t);
            }
        }
    }
    for bytes in inputs {
        if let Ok(Some(v)) = open_data(&me, &mut ReplayGuard::new(u64::MAX / 4), &bytes, 0) {
            let dg = open(&me, &mut ReplayGuard::new(u64::MAX / 4), &bytes, 0).expect("open agrees");
            let ReplicastMessage::Data(d) = dg.message else {
                panic!("open_data accepted a non-DATA datagram")
            };
            assert_eq!(
                (v.txid, v.index, v.total, v.payload),
                (d.txid, d.index, d.total, &d.payload[..])
            );
        }
    }
});
