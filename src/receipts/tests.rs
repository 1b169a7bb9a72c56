use super::*;

#[test]
fn normalisation_folds_case_whitespace_and_leading_zeros() {
    assert_eq!(normalize_id(b"00ABcd12"), "abcd12");
    assert_eq!(normalize_id(b" 42\0"), "42");
    assert_eq!(normalize_id(b"0000"), "0");
    assert_eq!(normalize_id(b""), "");
}

#[test]
fn candidates_cover_hex_and_decimal_renderings() {
    // The resp said hex 1f4, the receipt says decimal 500 (and vice versa).
    assert!(candidate_ids(b"500").contains(&"1f4".to_string()));
    assert!(candidate_ids(b"000001F4").contains(&"500".to_string()));
    // A UUID-like id is only itself.
    assert_eq!(
        candidate_ids(b"6F9619FF-8B86-D011-B42D-00C04FC964FF"),
        vec!["6f9619ff-8b86-d011-b42d-00c04fc964ff".to_string()]
    );
    // Huge ids do not overflow.
    assert_eq!(candidate_ids(&[b'9'; 64]).len(), 1);
}

#[test]
fn final_receipt_states_map_to_delivery_states() {
    assert_eq!(
        receipt_outcome(&ReceiptState::Delivered).0,
        DeliveryState::Delivered
    );
    assert_eq!(
        receipt_outcome(&ReceiptState::Undeliverable).0,
        DeliveryState::Failed
    );
    assert_eq!(
        receipt_outcome(&ReceiptState::Rejected).0,
        DeliveryState::Failed
    );
    assert_eq!(
        receipt_outcome(&ReceiptState::Expired).0,
        DeliveryState::Expired
    );
    assert_eq!(
        receipt_outcome(&ReceiptState::Unknown).0,
        DeliveryState::Unknown
    );
}
