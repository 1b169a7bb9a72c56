use super::*;
use crate::settings::JournalConfig;

fn message(id: u64) -> Arc<Message> {
    crate::model::test_message(id, "x", u64::MAX)
}

fn outcome(state: DeliveryState) -> PartOutcome {
    PartOutcome {
        state,
        error_code: 0,
        reason: "r".into(),
    }
}

fn ledger() -> (Ledger, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(dir.path(), &JournalConfig::default()).unwrap();
    (Ledger::new(j), dir)
}

#[tokio::test]
async fn multipart_message_finishes_when_every_part_is_done() {
    let (l, _d) = ledger();
    let m = message(1);
    l.admit([&m]);
    assert!(l.dispatch(m.id, &"c".into(), 3));
    assert!(
        !l.dispatch(m.id, &"c".into(), 3),
        "a dispatched message is not dispatched again"
    );
    assert!(l.part_submitted(m.id, 0, "a"));
    assert!(l.part_submitted(m.id, 1, "b"));
    assert!(!l.part_submitted(m.id, 7, "z"));
    assert!(matches!(
        l.part_done(m.id, 0, outcome(DeliveryState::Delivered)),
        PartResult::Partial
    ));
    // A duplicate receipt for a done part changes nothing.
    assert!(matches!(
        l.part_done(m.id, 0, outcome(DeliveryState::Failed)),
        PartResult::Partial
    ));
    assert!(matches!(
        l.part_done(m.id, 1, outcome(DeliveryState::Delivered)),
        PartResult::Partial
    ));
    let PartResult::Final(f) = l.part_done(m.id, 2, outcome(DeliveryState::Delivered)) else {
        panic!("last part ends the message");
    };
    assert_eq!(f.state, DeliveryState::Delivered);
    assert_eq!(f.parts, 3);
    assert_eq!(l.live(), 0);
    assert!(matches!(
        l.part_done(m.id, 2, outcome(DeliveryState::Delivered)),
        PartResult::Unknown
    ));
}

#[tokio::test]
async fn one_failed_part_fails_the_message() {
    let (l, _d) = ledger();
    let m = message(2);
    l.admit([&m]);
    l.dispatch(m.id, &"c".into(), 2);
    let _ = l.part_done(m.id, 0, outcome(DeliveryState::Delivered));
    let PartResult::Final(f) = l.part_done(m.id, 1, outcome(DeliveryState::Failed)) else {
        panic!()
    };
    assert_eq!(f.state, DeliveryState::Failed);
}

#[tokio::test]
async fn finish_ends_open_parts_and_keeps_the_worst_outcome() {
    let (l, _d) = ledger();
    let m = message(3);
    l.admit([&m]);
    l.dispatch(m.id, &"c".into(), 2);
    l.part_submitted(m.id, 0, "k0");
    let f = l
        .finish(m.id, DeliveryState::Expired, 0, &"late".into())
        .unwrap();
    assert_eq!(f.state, DeliveryState::Expired);
    assert_eq!(f.carrier_ids, vec![Box::<str>::from("k0")]);
    assert!(
        l.finish(m.id, DeliveryState::Expired, 0, &"late".into())
            .is_none()
    );
}

#[tokio::test]
async fn undispatch_only_when_no_part_was_accepted_or_ended() {
    let (l, _d) = ledger();
    let (a, b, c, d) = (message(4), message(5), message(6), message(7));
    l.admit([&a, &b, &c, &d]);
    for m in [&a, &b, &c, &d] {
        l.dispatch(m.id, &"c".into(), 2);
    }
    l.part_submitted(b.id, 0, "x");
    // Recorded written, then handed back unwritten (the link dropped while
    // the journal synced): it may still go elsewhere.
    let _ = l.written("c", &[(c.id, 0, 2), (c.id, 1, 2)]);
    let _ = l.part_done(d.id, 1, outcome(DeliveryState::Rejected));
    assert_eq!(l.undispatch(&[a.id, b.id, c.id, d.id]), vec![a.id, c.id]);
    assert!(matches!(l.get(a.id).unwrap().stage, Stage::Queued));
    assert!(matches!(l.get(c.id).unwrap().stage, Stage::Queued));
    assert!(matches!(l.get(b.id).unwrap().stage, Stage::Dispatched(_)));
}

/// Compaction rotates, then carries what the ledger holds, while batches
/// are accepted (and earlier ones end) on another thread:
/// - each carried message's `Accept` was written before its `Carry`, so a
///   commit that fails for the `Accept` refuses the `Carry` too (admission
///   used to make a batch live before sending its `Accept`: a carry in
///   between wrote the `Carry` first);
/// - a message whose `Accept` is in a segment older than a rotation's head
///   is carried by that compaction unless it ended before the carry did
///   (else compaction would delete its only record).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_carries_each_live_message_after_its_accept() {
    use crate::journal::StoredIds;
    use std::collections::{HashMap, HashSet, VecDeque};
    let dir = tempfile::tempdir().unwrap();
    let cfg = JournalConfig {
        prezero_segments: false,
        ..JournalConfig::default()
    };
    let l = Arc::new(Ledger::new(Journal::open(dir.path(), &cfg).unwrap().0));
    // Compactions done: a message that ends while it reads `k` was live
    // through the whole of compaction `k - 1`.
    let cycles = Arc::new(AtomicU64::new(0));
    let accepting = tokio::spawn({
        let (l, cycles) = (l.clone(), cycles.clone());
        async move {
            let mut ended: HashMap<u64, u64> = HashMap::new();
            let mut previous: Vec<MessageId> = Vec::new();
            let mut in_flight = VecDeque::new();
            let mut next = 1;
            // Until compaction has run often enough; a live set of two
            // batches keeps each carry short, as the races need.
            while cycles.load(Ordering::Acquire) < 60 {
                let batch: Vec<_> = (next..next + 200).map(message).collect();
                next += 200;
                in_flight.push_back(l.accept(&batch));
                let done = cycles.load(Ordering::Acquire);
                ended.extend(previous.iter().map(|id| (id.0, done)));
                l.forget(previous.drain(..));
                previous.extend(batch.iter().map(|m| m.id));
                if in_flight.len() > 16 {
                    in_flight.pop_front().unwrap().wait().await.unwrap();
                }
                tokio::task::yield_now().await;
            }
            for d in in_flight {
                d.wait().await.unwrap();
            }
            (next - 1, ended)
        }
    });
    let mut heads = Vec::new();
    while !accepting.is_finished() {
        heads.push(l.journal().rotate().await.unwrap());
        l.carry().await.unwrap();
        cycles.fetch_add(1, Ordering::Release);
    }
    let (sent, ended) = accepting.await.unwrap();

    let records = crate::journal::stored_ids(dir.path());
    let mut accepted: HashSet<u64> = HashSet::new();
    for (_, r) in &records {
        match r {
            StoredIds::Accepted(ids) => accepted.extend(ids),
            StoredIds::Carried(ids) => {
                let early: Vec<_> = ids.iter().filter(|id| !accepted.contains(id)).collect();
                assert!(
                    early.is_empty(),
                    "{} carried before their Accept, from {:?}",
                    early.len(),
                    early[0]
                );
            }
        }
    }
    assert_eq!(accepted.len() as u64, sent);
    // Compaction `k` must carry every message accepted below its head that
    // had not ended before it finished; what ended by then never needs it
    // again. Walked once, segment by segment.
    let mut by_segment: HashMap<u64, (Vec<u64>, Vec<u64>)> = HashMap::new();
    for (n, r) in records {
        let (a, c) = by_segment.entry(n).or_default();
        match r {
            StoredIds::Accepted(ids) => a.extend(ids),
            StoredIds::Carried(ids) => c.extend(ids),
        }
    }
    let mut must: HashSet<u64> = HashSet::new();
    let (mut below, mut carried) = (0, 0);
    for (k, &head) in heads.iter().enumerate() {
        for n in below..head {
            must.extend(by_segment.get(&n).map_or(&[][..], |(a, _)| &a[..]));
        }
        below = head;
        must.retain(|id| ended.get(id).is_none_or(|&c| c > k as u64));
        let end = heads.get(k + 1).copied().unwrap_or(u64::MAX);
        let by_this: HashSet<u64> = by_segment
            .iter()
            .filter(|(n, _)| (head..end).contains(n))
            .flat_map(|(_, (_, c))| c.iter().copied())
            .collect();
        carried += by_this.len();
        let missed: Vec<_> = must.iter().filter(|id| !by_this.contains(id)).collect();
        assert!(
            missed.is_empty(),
            "{} left behind by the rotation to {head}, from {:?}",
            missed.len(),
            missed[0]
        );
    }
    assert!(carried > 0, "compaction carried live messages");
}

/// The worst part decides; among equals the last one's code and reason
/// are reported. A note set on a live message (twice) reaches its final
/// once, and a later final has none.
#[tokio::test]
async fn a_final_reports_the_worst_part_and_its_note_once() {
    let (l, _d) = ledger();
    let (m, n) = (message(1), message(2));
    l.admit([&m, &n]);
    assert!(l.dispatch(m.id, &"c".into(), 3));
    assert!(l.set_note(m.id, "first"));
    assert!(l.set_note(m.id, "fallback to SMS"));
    let failed = |code: u32| PartOutcome {
        state: DeliveryState::Failed,
        error_code: code,
        reason: format!("code {code}").into(),
    };
    l.part_done(m.id, 0, failed(1));
    l.part_done(m.id, 1, outcome(DeliveryState::Delivered));
    let PartResult::Final(f) = l.part_done(m.id, 2, failed(2)) else {
        panic!("every part is done");
    };
    assert_eq!(
        (f.state, f.error_code, &*f.reason),
        (DeliveryState::Failed, 2, "code 2")
    );
    assert_eq!(f.note.as_deref(), Some("fallback to SMS"));
    let reason: Arc<str> = "expired".into();
    let f = l.finish(n.id, DeliveryState::Expired, 0, &reason).unwrap();
    assert_eq!((f.state, f.note), (DeliveryState::Expired, None));
}

/// A note set on a message that has already ended is refused, not kept:
/// no final is left to take it, so it would stay in the map for good and
/// keep every later final looking notes up.
#[tokio::test]
async fn a_note_on_an_ended_message_is_not_kept() {
    let (l, _d) = ledger();
    let m = message(1);
    l.admit([&m]);
    let reason: Arc<str> = "expired".into();
    assert!(l.finish(m.id, DeliveryState::Expired, 0, &reason).is_some());
    assert!(
        !l.set_note(m.id, "fallback to SMS"),
        "the message has ended"
    );
    assert!(!l.set_note(message(9).id, "never admitted"));
    assert_eq!((l.notes.len(), l.noted.load(Ordering::Acquire)), (0, 0));
}

/// A message forgotten with a note (a refused batch that had started a
/// fallback) takes its note with it.
#[tokio::test]
async fn a_forgotten_message_takes_its_note_along() {
    let (l, _d) = ledger();
    let (m, n) = (message(1), message(2));
    l.admit([&m, &n]);
    assert!(l.set_note(m.id, "fallback to SMS"));
    assert!(l.set_note(n.id, "fallback to SMS"));
    assert!(l.forget_one(m.id));
    assert_eq!((l.notes.len(), l.noted.load(Ordering::Acquire)), (1, 1));
    l.forget([n.id]);
    assert_eq!((l.notes.len(), l.noted.load(Ordering::Acquire)), (0, 0));
}

/// A queued message's ledger entry is two pointers (the message, and a
/// stage whose dispatched details are boxed): a backlog of millions of
/// queued messages is mostly these entries' map slots (`queue_memory`).
#[test]
fn a_queued_entry_is_two_pointers() {
    assert_eq!(size_of::<Stage>(), 8);
    assert_eq!(size_of::<Entry>(), 16);
}
