use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::backlog::tests::kit;
use crate::journal::{RecoveredDispatch, RecoveredMessage};
use crate::model::{Message, MessageId};

fn message(id: u64) -> Message {
    (*crate::model::test_message(id, "hello", u64::MAX)).clone()
}

fn recovered(id: u64, carrier: Option<&str>, ids: &[&str], written: bool) -> RecoveredMessage {
    let mut rm = RecoveredMessage::queued(crate::journal::stored_form(&message(id))).unwrap();
    rm.written = written;
    rm.dispatch = carrier.map(|carrier| {
        Box::new(RecoveredDispatch {
            carrier: carrier.to_owned(),
            parts: ids.len() as u32,
            carrier_ids: ids.iter().map(|s| (*s).to_owned()).collect(),
        })
    });
    rm
}

/// A keeper over the backlog fixture and its journal, with its own dedupe.
fn keeper(dir: &std::path::Path) -> (JournalKeeper, Arc<Ledger>, kit::Fixture) {
    let (backlog, ledger, scheduler, receipts) = kit::for_tests(dir, 100);
    let journal = ledger.journal().clone();
    let hub = receipts.hub().clone();
    let dedupe = Arc::new(Dedupe::new(Duration::from_secs(3600), [3; 16]));
    let keeper = JournalKeeper::new(
        journal,
        ledger.clone(),
        hub,
        receipts,
        backlog,
        dedupe.clone(),
        DedupeLog::open(&dir.join("dedupe")).unwrap(),
    );
    (keeper, ledger, kit::Fixture { scheduler, dedupe })
}

fn stage(ledger: &Ledger, id: u64) -> Option<Stage> {
    ledger.get(MessageId(id)).map(|e| e.stage)
}

#[tokio::test]
async fn each_message_resumes_where_it_can_without_being_sent_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (keeper, ledger, f) = keeper(dir.path());
    let rec = Recovered {
        messages: vec![
            // Accepted, never dispatched: queued again.
            recovered(1, None, &[], false),
            // Dispatched, never written: it never left, queued again.
            recovered(2, Some("c"), &[""], false),
            // Every part accepted: waits for its receipts.
            recovered(3, Some("c"), &["abc", "abd"], true),
            // Written, no answer: it may have reached the carrier.
            recovered(4, Some("c"), &[""], true),
        ],
        dedupe: [("t", "r1", MessageId(1), now_ms())].into_iter().collect(),
        ..Recovered::default()
    };
    keeper.restore(rec, Recovery::Unknown);
    let queued: Vec<u64> = f
        .scheduler
        .queue("c")
        .unwrap()
        .drain()
        .iter()
        .map(|i| i.message.id.0)
        .collect();
    assert_eq!(queued, vec![1, 2]);
    assert!(matches!(stage(&ledger, 3), Some(Stage::Dispatched(ref d))
        if d.parts.iter().all(|p| matches!(p, Part::Submitted(_)))));
    assert!(stage(&ledger, 4).is_none(), "ended unknown");
    // The dedupe key came back: a retry gets the original id.
    let t: Arc<str> = "t".into();
    assert_eq!(
        f.dedupe
            .check_or_insert(&t, "r1", MessageId(99), now_ms(), 0),
        Err(MessageId(1))
    );
}

#[tokio::test]
async fn resend_recovery_queues_what_was_written_without_an_answer() {
    let dir = tempfile::tempdir().unwrap();
    let (keeper, ledger, f) = keeper(dir.path());
    let rec = Recovered {
        messages: vec![recovered(4, Some("c"), &[""], true)],
        ..Recovered::default()
    };
    keeper.restore(rec, Recovery::Resend);
    assert!(matches!(stage(&ledger, 4), Some(Stage::Queued)));
    assert_eq!(f.scheduler.queue("c").unwrap().len(), 1);
}

#[tokio::test]
async fn a_short_journal_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (keeper, _, _) = keeper(dir.path());
    let before = keeper.journal.segments();
    keeper.compact(8).await.unwrap();
    assert_eq!(keeper.journal.segments(), before);
}

#[tokio::test]
async fn an_mms_the_mmsc_accepted_waits_for_its_delivery_report() {
    let dir = tempfile::tempdir().unwrap();
    let (keeper, ledger, _) = keeper(dir.path());
    let rec = Recovered {
        messages: vec![recovered(7, Some("mm"), &["mmsc-id-7"], true)],
        ..Recovered::default()
    };
    keeper.restore(rec, Recovery::Unknown);
    assert!(
        matches!(stage(&ledger, 7), Some(Stage::Dispatched(ref d)) if &*d.carrier == "mm"),
        "{:?}",
        stage(&ledger, 7)
    );
    // Its report (ids are journaled canonical), arriving after the
    // restart, ends it.
    let mm: Arc<str> = "mm".into();
    keeper
        .receipts
        .report(&mm, b"MMSC-ID-7", DeliveryState::Delivered, 0, "Retrieved")
        .expect("the report matches the restored MMS");
    assert!(stage(&ledger, 7).is_none(), "ended delivered");
}

/// A message whose every part a carrier accepted, when that carrier is no
/// longer configured at the restart (a reload or the file removed it),
/// ends `unknown` (its receipts cannot come): never sent again, even with
/// `recovery = "resend"`.
#[tokio::test]
async fn what_a_carrier_removed_since_accepted_is_not_sent_again() {
    let dir = tempfile::tempdir().unwrap();
    let (keeper, ledger, f) = keeper(dir.path());
    let rec = Recovered {
        messages: vec![recovered(8, Some("gone"), &["gone-id-8"], true)],
        ..Recovered::default()
    };
    keeper.restore(rec, Recovery::Resend);
    assert!(stage(&ledger, 8).is_none(), "ended unknown");
    assert_eq!(f.scheduler.queue("c").unwrap().len(), 0, "not queued again");
}

/// What a journal directory replays to, read from a copy (the journal in
/// `dir` stays open).
fn replay_copy(dir: &std::path::Path, to: &std::path::Path) -> crate::journal::Recovered {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
    Journal::open(to, &Default::default()).unwrap().1
}

fn segment_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".log"))
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn compaction_carries_what_is_live_and_deletes_the_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (keeper, ledger, f) = keeper(dir.path());
    let journal = keeper.journal.clone();
    let jdir = journal.dir().to_owned();
    // Three accepted messages with their idempotency keys; the second ends.
    let ms: Vec<Arc<Message>> = (1..=3).map(|i| Arc::new(message(i))).collect();
    journal
        .accept(ms.iter().map(|m| &**m))
        .wait()
        .await
        .unwrap();
    ledger.admit(&ms);
    let t: Arc<str> = "t".into();
    let first = journal.head_segment();
    for m in &ms {
        f.dedupe
            .check_or_insert(&t, &format!("r{}", m.id.0), m.id, now_ms(), first)
            .unwrap();
    }
    let reason: Arc<str> = "delivered".into();
    drop({
        let mut endings = keeper.receipts.endings();
        endings.end(MessageId(2), DeliveryState::Delivered, 0, &reason);
        endings
    });
    let hub = keeper.receipts.hub().clone();
    tokio::time::timeout(Duration::from_secs(10), async {
        while hub.pending() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the delivered event is published");
    // A second segment: one more than the journal may keep.
    journal.rotate().await.unwrap();
    let before = segment_files(&jdir);
    assert_eq!(before.len(), 2, "{before:?}");

    keeper.compact(1).await.unwrap();

    // The segments that held the Accept records are gone...
    let after = segment_files(&jdir);
    assert!(
        before.iter().all(|s| !after.contains(s)),
        "{before:?} -> {after:?}"
    );
    // ...yet a restart finds the live messages, the unacknowledged event
    // and, through the dedupe log, every idempotency key.
    let rec = replay_copy(&jdir, &dir.path().join("copy"));
    let mut live: Vec<u64> = rec
        .messages
        .iter()
        .map(|m| m.message().unwrap().id.0)
        .collect();
    live.sort_unstable();
    assert_eq!(live, [1, 3]);
    assert_eq!(rec.events.len(), 1);
    assert_eq!(rec.events[0].message_id, MessageId(2));
    let logged = DedupeLog::open(&dir.path().join("dedupe"))
        .unwrap()
        .load(now_ms(), 3_600_000)
        .unwrap();
    assert_eq!(logged.len(), 3, "{logged:?}");
    // Within its limit again: a second run has nothing to do.
    assert_eq!(journal.segments(), 1);
    let head = journal.head_segment();
    keeper.compact(1).await.unwrap();
    assert_eq!(journal.head_segment(), head);
}

#[tokio::test]
async fn dedupe_keys_whose_log_append_failed_are_appended_later() {
    let dir = tempfile::tempdir().unwrap();
    let (keeper, _ledger, f) = keeper(dir.path());
    let t: Arc<str> = "t".into();
    let at = now_ms() - 5_000;
    f.dedupe
        .check_or_insert(&t, "r1", MessageId(7), at, 1)
        .unwrap();
    // The log's directory is a file now: the append fails.
    let log_dir = dir.path().join("dedupe");
    std::fs::remove_dir_all(&log_dir).unwrap();
    std::fs::write(&log_dir, b"not a directory").unwrap();
    keeper.trickle_dedupe().await;
    assert_eq!(keeper.unlogged.lock().len(), 1, "kept for the next try");
    // Back: the next trickle appends the key taken before.
    std::fs::remove_file(&log_dir).unwrap();
    std::fs::create_dir(&log_dir).unwrap();
    keeper.trickle_dedupe().await;
    assert!(keeper.unlogged.lock().is_empty());
    let logged = DedupeLog::open(&log_dir)
        .unwrap()
        .load(now_ms(), 3_600_000)
        .unwrap();
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].1, 7);
}

/// A restart with more queued than the in-memory budget: the first fill the
/// budget (decoded, in the ledger, queued), the rest go back to the spill as
/// stored and come back in id order; a stored form that does not decode is
/// reported, not queued, and does not hold back the others.
#[tokio::test]
async fn a_restart_beyond_the_budget_spills_the_rest_undecoded_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (keeper, ledger, f) = keeper(dir.path());
    let mut messages: Vec<RecoveredMessage> = (1..=250)
        .map(|id| recovered(id, None, &[], false))
        .collect();
    // Message 200's recipient is out of range (damage that passed the CRC).
    let mut stored = crate::journal::stored_form(&message(200)).to_vec();
    let to = crate::model::Msisdn::parse("+14155550100")
        .unwrap()
        .as_u64();
    let at = stored
        .windows(2)
        .position(|w| w == [0x20, (to & 0x7f) as u8 | 0x80])
        .expect("field 4 of the stored form");
    // The number 1, in as many bytes as the number was.
    stored[at + 1..at + 6].copy_from_slice(&[0x81, 0x80, 0x80, 0x80, 0x00]);
    assert!(crate::journal::check_stored(&stored).is_err());
    messages[199] = RecoveredMessage::queued(stored.into()).expect("its head reads");
    assert!(!messages[199].decodes);
    keeper.restore(
        Recovered {
            messages,
            ..Recovered::default()
        },
        Recovery::Unknown,
    );
    // The budget of the fixture is 100.
    assert_eq!(f.scheduler.in_memory(), 100);
    assert_eq!(keeper.backlog.spill().len(), 149);
    assert_eq!(ledger.live(), 100, "spilled messages are not in the ledger");
    let q = f.scheduler.queue("c").unwrap();
    let mut seen: Vec<u64> = q.drain().iter().map(|i| i.message.id.0).collect();
    while !keeper.backlog.spill().is_empty() {
        keeper.backlog.page_in().await;
        seen.extend(q.drain().iter().map(|i| i.message.id.0));
    }
    let want: Vec<u64> = (1..=250).filter(|id| *id != 200).collect();
    assert_eq!(seen, want);
}
