use super::*;
use crate::model::Priority;
use dedupe::DEDUPE_SHARDS;

fn submit(to: &str, text: &str) -> Submission {
    Submission {
        client_ref: "r".into(),
        to: to.into(),
        from: "12345".into(),
        text: text.into(),
        ..Default::default()
    }
}

#[test]
fn validation_builds_the_domain_message() {
    let t: Arc<str> = "acme".into();
    let mut s = submit("+14155550100", "hi");
    s.priority = Priority::Transactional;
    s.validity_seconds = 60;
    let m = validate(&t, s, Duration::from_secs(3600), 1_000).unwrap();
    assert_eq!(m.to.to_string(), "+14155550100");
    assert_eq!(m.priority, Priority::Transactional);
    assert_eq!(m.expires_at_ms, 61_000);
    let m = validate(
        &t,
        submit("+14155550100", "hi"),
        Duration::from_secs(3600),
        0,
    )
    .unwrap();
    assert_eq!(m.expires_at_ms, 3_600_000);
}

#[test]
fn each_problem_has_its_reason() {
    let t: Arc<str> = "acme".into();
    let d = Duration::from_secs(1);
    let r = |s| validate(&t, s, d, 0).unwrap_err().reason;
    assert_eq!(r(submit("12", "x")), RejectReason::InvalidNumber);
    assert_eq!(r(submit("+14155550100", "")), RejectReason::EmptyMessage);
    assert_eq!(
        r(submit("+14155550100", &"é".repeat(1601))),
        RejectReason::TextTooLong
    );
    let mut s = submit("+14155550100", "x");
    s.client_ref = "x".repeat(129);
    assert_eq!(r(s), RejectReason::InvalidField);
    let mut s = submit("+14155550100", "x");
    s.media = vec!["abc".into()];
    assert_eq!(r(s), RejectReason::UnknownMedia);
    let mut s = submit("+14155550100", "x");
    s.media = vec!["ab".repeat(32); 11];
    assert_eq!(r(s), RejectReason::InvalidField);
    // 1,600 characters are fine, whatever their encoding.
    assert!(validate(&t, submit("+14155550100", &"é".repeat(1600)), d, 0).is_ok());
}

#[test]
fn recipients_must_be_e164_unless_the_tenant_has_a_default_country() {
    let t: Arc<str> = "acme".into();
    let d = Duration::from_secs(1);
    let us = Some("US".parse().unwrap());
    for national in [
        "4155550100",
        " +447700900123",
        "+44 7700 900123",
        "+4155550100",
    ] {
        let r = validate(&t, submit(national, "x"), d, 0).unwrap_err();
        assert_eq!(r.reason, RejectReason::InvalidNumber, "{national:?}");
        assert!(
            r.detail.starts_with(&format!("to {national:?}: ")),
            "{national:?}: {}",
            r.detail
        );
    }
    let r = validate(&t, submit("4155550100", "x"), d, 0).unwrap_err();
    assert!(r.detail.contains("default_country"), "{}", r.detail);
    let m = validate_with_country(&t, submit("4155550100", "x"), d, us, 0).unwrap();
    assert_eq!(m.to.to_string(), "+14155550100");
    // A huge `to` is not echoed back whole.
    let r = validate(&t, submit(&"9".repeat(10_000), "x"), d, 0).unwrap_err();
    assert!(r.detail.len() < 300, "{}", r.detail);
}

#[test]
fn dedupe_returns_the_first_id_within_the_window() {
    let d = Dedupe::new(Duration::from_secs(10), [7; 16]);
    let t: Arc<str> = "acme".into();
    let u: Arc<str> = "other".into();
    assert_eq!(d.check_or_insert(&t, "a", MessageId(1), 0, 1), Ok(()));
    assert_eq!(
        d.check_or_insert(&t, "a", MessageId(2), 5_000, 1),
        Err(MessageId(1))
    );
    // Another tenant's key space is separate.
    assert_eq!(d.check_or_insert(&u, "a", MessageId(3), 15_000, 1), Ok(()));
    // After the window the key is forgotten.
    assert_eq!(d.check_or_insert(&t, "a", MessageId(4), 20_001, 2), Ok(()));
    d.forget(&t, "a");
    assert_eq!(d.check_or_insert(&t, "a", MessageId(5), 20_002, 2), Ok(()));
    assert_eq!(d.len(), 2);
    // Different keys, different fingerprints; the same key, the same one.
    assert_ne!(d.fingerprint("acme", "a"), d.fingerprint("other", "a"));
    assert_ne!(d.fingerprint("acme", "ab"), d.fingerprint("acmea", "b"));
    assert_eq!(
        d.fingerprint("acme", "a"),
        Dedupe::new(Duration::from_secs(1), [7; 16]).fingerprint("acme", "a")
    );
}

#[test]
fn memory_is_bounded_by_max_keys_and_the_oldest_go_first() {
    let cap = DEDUPE_SHARDS * 10;
    let d = Dedupe::new(Duration::from_secs(3600), [7; 16]).with_max_keys(cap);
    let t: Arc<str> = "acme".into();
    for i in 0..100_000u64 {
        assert_eq!(
            d.check_or_insert(&t, &format!("k{i}"), MessageId(i), i, 1),
            Ok(())
        );
    }
    assert!(d.len() <= cap, "{} keys", d.len());
    assert!(d.len() >= cap * 9 / 10, "{} keys", d.len());
    // The newest are still known, the oldest not.
    assert_eq!(
        d.check_or_insert(&t, "k99999", MessageId(1), 100_000, 1),
        Err(MessageId(99_999))
    );
    assert_eq!(
        d.check_or_insert(&t, "k0", MessageId(7), 100_000, 1),
        Ok(())
    );
}

/// A key goes to the dedupe log only once its batch is durable or refused
/// (its hold dropped), by the trickle or by compaction: logged before, a
/// crash would leave it answering a retry as a duplicate of a message never
/// stored.
#[test]
fn keys_of_a_batch_in_flight_stay_out_of_the_dedupe_log() {
    let d = Arc::new(Dedupe::new(Duration::from_secs(3600), [1; 16]));
    let t: Arc<str> = "t".into();
    let held = d.hold();
    let also = d.hold();
    let at = held.at_ms();
    assert!(also.at_ms() >= at);
    // A batch done earlier, and one still in flight (its journal write
    // stalled, or its cluster claim waiting), its keys in segment 3.
    d.check_or_insert(&t, "done", MessageId(1), at - 5_000, 3)
        .unwrap();
    d.check_or_insert(&t, "in flight", MessageId(2), also.at_ms(), 3)
        .unwrap();
    // Ten seconds on, both are older than the trickle's second; and
    // compaction deletes segment 3.
    let trickle = |d: &Dedupe| -> Vec<u64> {
        d.take_unlogged(0, at + 10_000 - 1_000)
            .iter()
            .map(|k| k.1)
            .collect()
    };
    assert_eq!(trickle(&d), [1]);
    assert!(d.take_unlogged_before(4).is_empty(), "nor by compaction");
    drop(held);
    assert_eq!(trickle(&d), Vec::<u64>::new(), "another hold at that time");
    drop(also);
    assert_eq!(trickle(&d), [2]);
}

#[test]
fn keys_go_to_the_dedupe_log_once_when_their_segment_is_compacted() {
    let d = Dedupe::new(Duration::from_secs(3600), [1; 16]);
    let t: Arc<str> = "t".into();
    for i in 0..10u64 {
        d.check_or_insert(
            &t,
            &format!("k{i}"),
            MessageId(i + 1),
            1000 + i,
            if i < 6 { 3 } else { 5 },
        )
        .unwrap();
    }
    let first = d.take_unlogged_before(4);
    assert_eq!(first.len(), 6);
    assert!(d.take_unlogged_before(4).is_empty(), "logged once");
    assert_eq!(d.take_unlogged_before(6).len(), 4);
    // Restored from the log: never logged again.
    d.restore(42, MessageId(99), 2000, 2000, None);
    assert!(d.take_unlogged_before(100).is_empty());
}

#[test]
fn a_tenant_may_send_only_from_its_own_senders() {
    let owned = OwnedSenders::new(
        &["12345".into(), "+14155550100".into(), "Acme".into()],
        &["SHOP*".into()],
    )
    .unwrap();
    let ok = |s: &str| owned.allows(&Sender::parse(s).unwrap());
    assert!(ok("12345"));
    assert!(ok("+14155550100"));
    assert!(ok("14155550100"), "a number is one sender however spelt");
    assert!(ok("ACME") && ok("acme"), "alphanumeric ids ignore case");
    assert!(ok("SHOPNOW") && ok("shop"));
    assert!(!ok("67890"));
    assert!(!ok("+14155550101"));
    assert!(!ok("ACMEX"), "exact ids are exact");
    assert!(!ok("SHO"));
    // Patterns are for alphanumeric ids only.
    assert!(OwnedSenders::new(&[], &["1234*".into()]).is_err());
    assert!(OwnedSenders::new(&[], &["SHOP".into()]).is_err());
    // No senders: nothing may be sent (fail closed).
    assert!(!OwnedSenders::default().allows(&Sender::parse("12345").unwrap()));
}
