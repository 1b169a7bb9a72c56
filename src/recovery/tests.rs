use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::backlog::tests::kit;
use crate::journal::RecoveredMessage;
use crate::model::{Message, MessageId};

fn message(id: u64) -> Message {
    (*crate::model::test_message(id, "hello", u64::MAX)).clone()
}

fn recovered(id: u64, carrier: Option<&str>, ids: &[&str], written: bool) -> RecoveredMessage {
    RecoveredMessage {
        message: message(id),
        carrier: carrier.map(str::to_owned),
        parts: ids.len() as u32,
        carrier_ids: ids.iter().map(|s| (*s).to_owned()).collect(),
        written,
    }
}

/// A keeper over the backlog fixture, with its own journal and dedupe.
fn keeper(dir: &std::path::Path) -> (JournalKeeper, Arc<Ledger>, kit::Fixture) {
    let (backlog, ledger, scheduler, receipts) = kit::for_tests(dir, 100);
    let (journal, _) = Journal::open(&dir.join("keeper"), &Default::default()).unwrap();
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
        dedupe: vec![("t".into(), "r1".into(), MessageId(1), now_ms())],
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
    assert!(
        matches!(stage(&ledger, 3), Some(Stage::Dispatched { ref parts, .. })
        if parts.iter().all(|p| matches!(p, Part::Submitted(_))))
    );
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
        matches!(stage(&ledger, 7), Some(Stage::Dispatched { ref carrier, .. }) if &**carrier == "mm"),
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
