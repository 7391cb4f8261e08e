//! Fuzzes the OpenFlow 1.3 decoder: `Frame::decode` and the stream codec must never
//! panic, and anything that decodes must encode again and decode to the same value.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use subcast_ofp13::{Frame, OfpCodec};
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = Frame::decode(data) {
        let bytes = frame.to_bytes().expect("a decoded frame re-encodes");
        assert_eq!(Frame::decode(&bytes).as_ref(), Ok(&frame));
    }
    let mut codec = OfpCodec;
    let mut buf = BytesMut::from(data);
    while let Ok(Some(_)) = codec.decode(&mut buf) {}
});
