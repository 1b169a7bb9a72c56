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

#[test]
fn the_stack_canonical_id_is_the_canonical_id() {
    // Edge cases first, then random ids over a small alphabet that hits
    // every rule (case, spaces and NULs at either end, leading zeros, the
    // vertical tab `char::is_whitespace` counts and `is_ascii_whitespace`
    // does not, non-ASCII and the recipient separator that take the heap).
    let fixed: [&[u8]; 12] = [
        b"",
        b"0",
        b"\0",
        b"  ",
        b"\x0b12\x0b",
        b"0 \0",
        b"00 12",
        b"00ABcd12",
        b"6F9619FF-8B86-D011-B42D-00C04FC964FF",
        &[b'7'; 72],
        &[b'7'; 73],
        "é0".as_bytes(),
    ];
    let alphabet = b"0019aAfF \t\x0b\0-\x1f\xc3\xa9";
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(7);
    let random: Vec<Vec<u8>> = (0..20_000)
        .map(|_| {
            let len = rand::RngExt::random_range(&mut rng, 0..12);
            (0..len)
                .map(|_| alphabet[rand::RngExt::random_range(&mut rng, 0..alphabet.len())])
                .collect()
        })
        .collect();
    for raw in fixed
        .iter()
        .copied()
        .chain(random.iter().map(Vec::as_slice))
    {
        let canon = canonical_id(raw);
        assert_eq!(canon.as_str(), normalize_id(raw), "{raw:?}");
        let short_ascii = raw.len() <= INLINE_ID && raw.is_ascii() && !raw.contains(&RECIPIENT_SEP);
        assert_eq!(
            matches!(canon.0, Canonical::Inline { .. }),
            short_ascii,
            "{raw:?}"
        );
    }
}

#[tokio::test]
async fn a_final_forgets_only_its_own_carrier_id() {
    // An SMSC that reuses ids: message 2 is answered with the id message 1
    // still had. When message 1 ends (here ended as expired), the id stays with
    // message 2, whose receipt then ends it. Message 3, ended the same way
    // with an id of its own, leaves none behind.
    let dir = tempfile::tempdir().unwrap();
    let (ledger, receipts) = for_tests(dir.path());
    let first = message(1, now_ms() - 1);
    let second = message(2, now_ms() + 60_000);
    let third = message(3, now_ms() + 60_000);
    ledger.admit([&first, &second, &third]);
    let carrier: Arc<str> = "c".into();
    assert!(ledger.dispatch(third.id, &carrier, 1));
    let _ = ledger.written("c", &[(third.id, 0, 1)]);
    receipts.part_submitted(&carrier, third.id, 0, b"ff01");
    assert!(receipts.end(third.id, DeliveryState::Expired, &"gone".into()));
    assert_eq!(receipts.correlated(), 0, "its own id is forgotten");
    for m in [&first, &second] {
        assert!(ledger.dispatch(m.id, &carrier, 1));
        let _ = ledger.written("c", &[(m.id, 0, 1)]);
        receipts.part_submitted(&carrier, m.id, 0, b"00AB12");
    }
    assert_eq!(receipts.correlated(), 1, "one id, now message 2's");
    assert!(receipts.end(first.id, DeliveryState::Expired, &"gone".into()));
    assert_eq!(receipts.correlated(), 1, "message 2 still waits for it");
    let ended = receipts.report(&carrier, b"ab12", DeliveryState::Delivered, 0, "DELIVRD");
    let publishing = ended.expect("a known id").expect("it ended message 2");
    publishing.await;
    assert!(ledger.get(second.id).is_none());
}

/// Each receipt state maps to its delivery state and reason as before, and
/// the reason is one shared `Arc` per state, not one made per receipt.
#[test]
fn a_receipt_states_reason_is_shared_not_made_per_receipt() {
    let table = [
        (ReceiptState::Delivered, DeliveryState::Delivered, "DELIVRD"),
        (ReceiptState::Accepted, DeliveryState::Delivered, "ACCEPTD"),
        (
            ReceiptState::Expired,
            DeliveryState::Expired,
            "EXPIRED: carrier validity ended",
        ),
        (ReceiptState::Deleted, DeliveryState::Failed, "DELETED"),
        (
            ReceiptState::Undeliverable,
            DeliveryState::Failed,
            "UNDELIV",
        ),
        (ReceiptState::Rejected, DeliveryState::Failed, "REJECTD"),
        (ReceiptState::Skipped, DeliveryState::Failed, "SKIPPED"),
        (ReceiptState::Unknown, DeliveryState::Unknown, "UNKNOWN"),
        (ReceiptState::Enroute, DeliveryState::Unknown, "not final"),
        (
            ReceiptState::Other(bytes::Bytes::from_static(b"ACKED")),
            DeliveryState::Unknown,
            "not final",
        ),
    ];
    for (receipt, state, reason) in table {
        let (got, shared) = receipt_outcome(&receipt);
        assert_eq!((got, &**shared), (state, reason), "{receipt:?}");
        assert!(Arc::ptr_eq(shared, receipt_outcome(&receipt).1));
    }
}
