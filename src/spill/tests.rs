use super::*;
use crate::model::{ChannelPref, FallbackPolicy, Msisdn, Sender};

fn message(id: u64, tenant: &str, priority: Priority) -> Arc<Message> {
    Arc::new(Message {
        id: MessageId(id),
        tenant: tenant.into(),
        client_ref: format!("r{id}").into(),
        to: Msisdn::parse("+14155550100").unwrap(),
        from: Sender::parse("12345").unwrap(),
        text: format!("message {id}: ünïcödé and a link https://x.example/{id}").into(),
        media: Box::default(),
        channel: ChannelPref::Auto,
        fallback: FallbackPolicy::SmsTextOnly,
        campaign_id: "spring".into(),
        expires_at_ms: 1_000 + id,
        priority,
        tags: Box::new(["a".into()]),
        accepted_at_ms: 7,
        auto_reply: false,
        mms: Some(Box::new(crate::model::MmsFields {
            subject: Some("s".into()),
            ..Default::default()
        })),
    })
}

fn ids(ms: &[Message]) -> Vec<u64> {
    ms.iter().map(|m| m.id.0).collect()
}

#[test]
fn messages_come_back_whole_and_in_order_per_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let s = Spill::open(&dir.path().join("spill"), 1 << 20).unwrap();
    let batch: Vec<_> = (1..=5)
        .map(|i| message(i, "a", Priority::Marketing))
        .collect();
    s.push(&batch).unwrap();
    s.push(&[message(6, "a", Priority::Marketing)]).unwrap();
    assert_eq!(s.len(), 6);
    assert!(s.holds(&"a".into(), Priority::Marketing));
    assert!(!s.holds(&"a".into(), Priority::Transactional));
    let got = s.take(100);
    assert_eq!(ids(&got), [1, 2, 3, 4, 5, 6]);
    assert_eq!(got[2], *batch[2], "every field survives the round trip");
    assert!(s.is_empty());
    assert!(s.take(100).is_empty());
}

#[test]
fn transactional_first_then_tenants_in_turn() {
    let dir = tempfile::tempdir().unwrap();
    let s = Spill::open(dir.path(), 1 << 20).unwrap();
    for b in 0..3 {
        let a: Vec<_> = (0..10)
            .map(|i| message(100 + b * 10 + i, "a", Priority::Marketing))
            .collect();
        s.push(&a).unwrap();
    }
    s.push(&[message(1, "b", Priority::Marketing)]).unwrap();
    s.push(&[message(2, "c", Priority::Transactional)]).unwrap();
    // One batch each: c's transactional first, then a's and b's marketing
    // in turn (a's second batch only after b's).
    let first = s.take(1);
    assert_eq!(ids(&first), [2]);
    let next = s.take(11);
    assert_eq!(next.len(), 11);
    assert_eq!(next[0].id.0, 100);
    assert_eq!(next[10].id.0, 1, "b is served before a's second batch");
    assert_eq!(s.len(), 20);
}

#[test]
fn big_pushes_split_into_batches_and_order_holds_while_paging_in() {
    let dir = tempfile::tempdir().unwrap();
    let s = Spill::open(dir.path(), 1 << 30).unwrap();
    let many: Vec<_> = (0..2500)
        .map(|i| message(i, "a", Priority::Marketing))
        .collect();
    s.push(&many).unwrap();
    let a: Arc<str> = "a".into();
    // One page-in step reads one batch, not the whole push.
    assert_eq!(ids(&s.take(1)), (0..1024).collect::<Vec<_>>());
    assert!(s.holds(&a, Priority::Marketing));
    assert_eq!(s.take(5000).len(), 1476);
    assert!(s.is_empty());
    // Taken but not queued yet: new messages of the key still go behind.
    assert!(s.holds(&a, Priority::Marketing));
    s.paged_in();
    assert!(!s.holds(&a, Priority::Marketing));
}

#[test]
fn files_roll_over_and_go_once_paged_in() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spill");
    // Tiny files: every batch starts a new one.
    let s = Spill::open(&path, 1).unwrap();
    for i in 0..4 {
        s.push(&[message(i, "a", Priority::Marketing)]).unwrap();
    }
    let files = || std::fs::read_dir(&path).unwrap().count();
    assert_eq!(files(), 4);
    assert_eq!(ids(&s.take(1)), [0]);
    assert_eq!(files(), 3, "a paged-in file is deleted");
    assert_eq!(ids(&s.take(10)), [1, 2, 3]);
    assert_eq!(files(), 1, "the head stays until the next roll-over");
    s.push(&[message(9, "a", Priority::Marketing)]).unwrap();
    assert_eq!(files(), 1, "the emptied head went at the roll-over");
}

#[test]
fn compaction_sees_every_spilled_message_and_ids_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let s = Spill::open(dir.path(), 1 << 20).unwrap();
    s.push(&[
        message(10, "a", Priority::Marketing),
        message(12, "b", Priority::Marketing),
    ])
    .unwrap();
    s.push(&[message(20, "a", Priority::Marketing)]).unwrap();
    let mut seen = Vec::new();
    s.for_each_batch(|ms| {
        seen.extend(ids(&ms));
        Ok::<_, io::Error>(())
    })
    .unwrap();
    seen.sort_unstable();
    assert_eq!(seen, [10, 12, 20]);
    assert!(s.may_hold(MessageId(20)));
    assert!(!s.may_hold(MessageId(30)));
    let mut depths = s.depths();
    depths.sort();
    assert_eq!(
        depths,
        [
            ("a".into(), Priority::Marketing, 2),
            ("b".into(), Priority::Marketing, 1)
        ]
    );
}

#[test]
fn a_damaged_batch_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let s = Spill::open(dir.path(), 1 << 20).unwrap();
    s.push(&[message(1, "a", Priority::Marketing)]).unwrap();
    let file = std::fs::read_dir(dir.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let mut bytes = std::fs::read(file.path()).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xFF;
    std::fs::write(file.path(), bytes).unwrap();
    assert!(!s.is_damaged());
    assert!(s.take(10).is_empty());
    assert!(s.is_damaged(), "compaction must keep the journal's copy");
    assert!(s.is_empty(), "the batch is not retried forever");
}

#[test]
fn opening_clears_what_a_previous_run_left() {
    let dir = tempfile::tempdir().unwrap();
    let s = Spill::open(dir.path(), 1 << 20).unwrap();
    s.push(&[message(1, "a", Priority::Marketing)]).unwrap();
    drop(s);
    let s = Spill::open(dir.path(), 1 << 20).unwrap();
    assert!(s.is_empty());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_page_in_stops_before_a_batch_that_would_overshoot() {
    let dir = tempfile::tempdir().unwrap();
    let s = Spill::open(dir.path(), 1 << 20).unwrap().with_max_batch(4);
    // Ten messages of one tenant: batches of 4, 4 and 2.
    let a: Vec<_> = (1..=10)
        .map(|i| message(i, "a", Priority::Marketing))
        .collect();
    s.push(&a).unwrap();
    assert_eq!(ids(&s.take(7)), [1, 2, 3, 4], "a second batch would make 8");
    s.paged_in();
    // One batch even when it alone is more than asked: something moves.
    assert_eq!(ids(&s.take(1)), [5, 6, 7, 8]);
    s.paged_in();
    assert_eq!(ids(&s.take(100)), [9, 10]);
    assert!(s.is_empty());
}
