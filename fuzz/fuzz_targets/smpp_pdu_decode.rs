//! SMPP PDU decoding on raw bytes: as one frame ([`Pdu::decode`]) and as a
//! stream ([`SmppCodec`]). If we panic, we lose; whatever decodes must
//! re-encode to a PDU that decodes to the same value.
//!
//! ```text
//! cargo +nightly fuzz run smpp_pdu_decode
//! ```

#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use sluice::smpp::codec::SmppCodec;
use sluice::smpp::pdu::Pdu;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    // The input as one whole frame.
    if let Ok(pdu) = Pdu::decode(Bytes::copy_from_slice(data)) {
        round_trip(&pdu);
    }

    // The input as a stream of frames.
    let mut codec = SmppCodec::new(4096);
    let mut src = BytesMut::from(data);
    loop {
        match codec.decode(&mut src) {
            Ok(Some(Ok(pdu))) => round_trip(&pdu),
            Ok(Some(Err(error))) => {
                // What a session answers with must encode too.
                let nack = error.generic_nack();
                assert_eq!(nack.sequence_number, error.sequence_number().unwrap_or(0));
                round_trip(&nack);
            }
            Ok(None) | Err(_) => break,
        }
    }
});

fn round_trip(pdu: &Pdu) {
    let bytes = pdu.to_bytes();
    assert_eq!(bytes.len(), pdu.encoded_len());
    let again = Pdu::decode(bytes).expect("a re-encoded PDU must decode");
    assert_eq!(&again, pdu);
}
