//! Ingest frames from the network: raw bytes through the length-delimited
//! codec and the protobuf frame decoder, then admission of any batch.
//! Nothing may panic.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sluice::ingest::{codec, pb};
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    let mut c = codec::length_codec(64 * 1024);
    while let Ok(Some(frame)) = c.decode(&mut buf) {
        if let Ok((_, pb::frame::Body::SubmitBatch(b))) = codec::decode_frame(frame.freeze()) {
            let tenant: std::sync::Arc<str> = "fuzz".into();
            for m in b.messages {
                let _ = sluice::admission::validate(&tenant, m, std::time::Duration::from_secs(60), 0);
            }
        }
    }
    // The body decoder alone, on the whole input.
    let _ = codec::decode_frame(bytes::Bytes::copy_from_slice(data));
});
