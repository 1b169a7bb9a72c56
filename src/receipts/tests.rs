use super::*;

#[test]
fn normalisation_folds_case_whitespace_and_leading_zeros() {
    assert_eq!(normalize_id(b"00ABcd12"), "abcd12");
    assert_eq!(normalize_id(b" 42\0"), "42");
    assert_eq!(normalize_id(b"0000"), "0");
    assert_eq!(normalize_id(b""), "");
}

#[test]
fn a_recipients_id_is_its_message_id_and_number_and_falls_back_to_the_message_id() {
    // +44…, 44… and 44…/TYPE=PLMN are one number; the MessageID is
    // normalised as any carrier id.
    let a = recipient_id("004D4D0001", "+447700900123");
    assert_eq!(
        normalize_id(&a),
        normalize_id(&recipient_id("4d4d0001", "447700900123/TYPE=PLMN"))
    );
    assert_eq!(normalize_id(&a), "4d4d0001\u{1f}447700900123");
    // A MessageID "0" keeps its zero.
    assert_eq!(normalize_id(&recipient_id("000", "1")), "0\u{1f}1");
    // Looked up as itself, then as its MessageID alone (one recipient).
    assert_eq!(
        candidate_ids(&recipient_id("500", "+1415")),
        ["500\u{1f}1415", "500"]
    );
    // A hostile MessageID full of separators: two keys, no recursion.
    let hostile = recipient_id(&"\u{1f}".repeat(100_000), "+1415");
    assert_eq!(candidate_ids(&hostile).len(), 2);
    // Another recipient of the same request is another key.
    assert_ne!(
        normalize_id(&a),
        normalize_id(&recipient_id("4D4D0001", "+447700900124"))
    );
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

fn message(id: u64, expires_at_ms: u64) -> Arc<crate::model::Message> {
    crate::model::test_message(id, "x", expires_at_ms)
}

#[tokio::test]
async fn sweep_ends_what_sits_unwritten_in_a_carrier_queue_past_validity() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, receipts) = for_tests(dir.path());
    let past = now_ms() - 1;
    // Dispatched to a carrier that is down, validity over: nothing can write
    // it any more (every part is vetted for validity right before writing).
    let stuck = message(1, past);
    // Written, no answer yet: the session resolves it, not the sweep.
    let written = message(2, past);
    // Still within validity.
    let fresh = message(3, now_ms() + 60_000);
    ledger.admit([&stuck, &written, &fresh]);
    let carrier: Arc<str> = "c".into();
    for m in [&stuck, &written, &fresh] {
        assert!(ledger.dispatch(m.id, &carrier, 1));
    }
    let _ = ledger.written("c", &[(written.id, 0, 1)]);
    receipts.sweep().await;
    assert!(ledger.get(stuck.id).is_none(), "ended expired");
    assert!(ledger.get(written.id).is_some());
    assert!(ledger.get(fresh.id).is_some());
}
