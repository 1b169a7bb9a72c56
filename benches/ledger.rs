//! The ledger's in-memory state machine per message, as a one-part SMS
//! goes through it: `admit` (queued), `dispatch`, `part_submitted` (the
//! carrier's id), `part_done` with a delivered receipt (final). Batches of
//! 1,000 messages, ids reused (each leaves the ledger when final). The
//! journal the ledger holds is not written here: `Ledger::accept` and
//! `Ledger::written` add a journal append each, timed in `benches/journal.rs`.
//! No message has a note (only MMS fallbacks do) and history is off (a
//! gateway with `history` on also records each step).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice::config::JournalConfig;
use sluice::journal::Journal;
use sluice::ledger::{Ledger, PartOutcome, PartResult};
use sluice::model::{DeliveryState, Message};

mod common;

const BATCH: u64 = 1_000;

fn message(id: u64) -> Arc<Message> {
    common::message(id, "shipping-notices", 1_795_003_600_000)
}

fn lifecycle(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (journal, _) = Journal::open(dir.path(), &JournalConfig::default()).expect("a journal");
    let ledger = Ledger::new(journal);
    let messages: Vec<Arc<Message>> = (1..=BATCH).map(message).collect();
    let carrier_ids: Vec<String> = (1..=BATCH).map(|i| format!("{i:016x}")).collect();
    let carrier: Arc<str> = "sim".into();
    let delivered = PartOutcome {
        state: DeliveryState::Delivered,
        error_code: 0,
        reason: "DELIVRD".into(),
    };
    let mut g = c.benchmark_group("ledger");
    g.throughput(Throughput::Elements(BATCH));
    g.bench_function("lifecycle_one_part", |b| {
        b.iter(|| {
            ledger.admit(&messages);
            for (m, cid) in messages.iter().zip(&carrier_ids) {
                assert!(ledger.dispatch(m.id, &carrier, 1));
                assert!(ledger.part_submitted(m.id, 0, cid));
            }
            for m in &messages {
                let done = ledger.part_done(m.id, 0, delivered.clone());
                assert!(matches!(done, PartResult::Final(_)));
                black_box(done);
            }
        });
    });
    g.finish();
}

criterion_group!(benches, lifecycle);
criterion_main!(benches);
