//! Delivery receipt parsing on raw bytes: as receipt text in `short_message`,
//! in `message_payload` next to fuzzed receipt TLVs, and as a stat word. If we
//! panic, we lose; a parsed receipt must keep its invariants.
//!
//! ```text
//! cargo +nightly fuzz run smpp_receipt
//! ```

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice::smpp::pdu::{DeliverSm, Tlv, tag};
use sluice::smpp::receipt::{Receipt, ReceiptState, is_receipt, parse_receipt};

fuzz_target!(|data: &[u8]| {
    let Some((&esm_class, rest)) = data.split_first() else {
        return;
    };
    let rest = Bytes::copy_from_slice(rest);

    // The text in short_message (at most 255 octets on the wire).
    let sm = DeliverSm {
        esm_class,
        short_message: rest.slice(..rest.len().min(255)),
        ..DeliverSm::default()
    };
    let _ = is_receipt(&sm);
    if let Ok(receipt) = parse_receipt(&sm) {
        check(&receipt, esm_class);
    }

    // The text in message_payload, with the receipt TLVs cut from the input.
    let field = |i: usize, len: usize| rest.slice(rest.len().min(i)..rest.len().min(i + len));
    let sm = DeliverSm {
        esm_class,
        tlvs: vec![
            Tlv::new(tag::RECEIPTED_MESSAGE_ID, field(0, 8)),
            Tlv::new(tag::MESSAGE_STATE, field(8, 1)),
            Tlv::new(tag::NETWORK_ERROR_CODE, field(9, 3)),
            Tlv::new(tag::MESSAGE_PAYLOAD, field(12, usize::MAX / 2)),
        ],
        ..DeliverSm::default()
    };
    if let Ok(receipt) = parse_receipt(&sm) {
        check(&receipt, esm_class);
    }

    let state = ReceiptState::from_stat_word(&rest);
    assert_eq!(ReceiptState::from_stat_word(state.stat_word()), state);
});

fn check(receipt: &Receipt, esm_class: u8) {
    let id = &receipt.message_id;
    assert!(!id.is_empty());
    assert!(!id[0].is_ascii_whitespace() && id[0] != 0);
    assert!(!id[id.len() - 1].is_ascii_whitespace() && id[id.len() - 1] != 0);
    assert_eq!(receipt.intermediate, esm_class & 0x3C == 0x20);
    if receipt.intermediate {
        assert!(!receipt.is_final());
    }
}
