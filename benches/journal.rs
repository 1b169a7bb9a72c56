//! Durable appends with group commit: `Journal::accept(..).wait()` of one
//! ~200-byte message record, by 1, 16 and 128 concurrent writers (tokio tasks
//! in a closed loop on a two-worker runtime), in a temporary directory.
//!
//! Criterion's time is wall time per record over all writers, so `thrpt` is
//! records per second. Criterion cannot show latency distributions, so after
//! each writer count the bench prints what one writer waited per
//! `accept(..).wait()` (p50 / p99 / max), how many `fdatasync`s the writer
//! thread made and their mean time (read from the journal's own
//! `sluice_journal_sync_seconds` histogram through a counting `metrics`
//! recorder), and so the records per group commit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hdrhistogram::Histogram as Hdr;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use parking_lot::Mutex;
use sluice::config::JournalConfig;
use sluice::journal::Journal;
use sluice::model::{ChannelPref, FallbackPolicy, Message, MessageId, Msisdn, Priority, Sender};
use tokio::time::Instant;

/// Encoded size of the record each writer appends, framing included.
const RECORD_BYTES: u64 = 200;

// === sync counter ===

/// Counts the writer thread's `fdatasync`s and adds up their time.
#[derive(Debug, Default)]
struct SyncStats {
    count: AtomicU64,
    nanos: AtomicU64,
}

impl metrics::HistogramFn for SyncStats {
    fn record(&self, value: f64) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.nanos
            .fetch_add((value * 1e9) as u64, Ordering::Relaxed);
    }
}

#[derive(Debug)]
struct SyncRecorder(Arc<SyncStats>);

impl Recorder for SyncRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
        Counter::noop()
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        if key.name() == "sluice_journal_sync_seconds" {
            Histogram::from_arc(self.0.clone())
        } else {
            Histogram::noop()
        }
    }
}

// === fixtures ===

fn message(text: String) -> Message {
    Message {
        id: MessageId(1),
        tenant: "acme".into(),
        client_ref: "ord-2026-11-27-00012345".into(),
        to: Msisdn::parse("+14155550123").expect("valid number"),
        from: Sender::parse("ACMESHOP").expect("valid sender"),
        text: text.into(),
        media: Box::default(),
        channel: ChannelPref::Sms,
        fallback: FallbackPolicy::SmsTextOnly,
        campaign_id: "shipping-notices".into(),
        expires_at_ms: 1_795_003_600_000,
        priority: Priority::Transactional,
        tags: Box::new(["shipping".into(), "us".into()]),
        accepted_at_ms: 1_795_000_000_000,
        auto_reply: false,
        mms: None,
    }
}

/// Bytes one accepted message adds to the journal.
async fn record_len(j: &Journal, m: &Message) -> u64 {
    let before = j.bytes();
    j.accept([m]).wait().await.expect("journal accepts");
    j.bytes() - before
}

/// A message whose accept record is [`RECORD_BYTES`] long.
async fn sized_message(j: &Journal) -> Message {
    let base = "Your order has shipped. ".to_string();
    let len = record_len(j, &message(base.clone())).await;
    let pad = RECORD_BYTES.saturating_sub(len) as usize;
    let m = message(format!("{base}{}", "x".repeat(pad)));
    let len = record_len(j, &m).await;
    assert_eq!(len, RECORD_BYTES, "record sized to {RECORD_BYTES} bytes");
    m
}

// === bench ===

fn bench_journal(c: &mut Criterion) {
    let stats = Arc::new(SyncStats::default());
    metrics::set_global_recorder(SyncRecorder(stats.clone())).expect("first recorder");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let mut g = c.benchmark_group("journal/accept_durable");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));
    for writers in [1usize, 16, 128] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (journal, _) = Journal::open(dir.path(), &JournalConfig::default()).expect("open");
        let msg = Arc::new(rt.block_on(sized_message(&journal)));
        let waits = Arc::new(Mutex::new(Hdr::<u64>::new(3).expect("histogram")));
        let syncs_before = stats.count.load(Ordering::Relaxed);
        let nanos_before = stats.nanos.load(Ordering::Relaxed);
        let records = Arc::new(AtomicU64::new(0));

        g.bench_function(format!("{writers}_writers"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    let tasks: Vec<_> = (0..writers as u64)
                        .map(|w| {
                            let n = iters / writers as u64 + u64::from(w < iters % writers as u64);
                            let (j, m, waits, records) =
                                (journal.clone(), msg.clone(), waits.clone(), records.clone());
                            tokio::spawn(async move {
                                let mut local = Hdr::<u64>::new(3).expect("histogram");
                                for _ in 0..n {
                                    let t = Instant::now();
                                    j.accept([&*m]).wait().await.expect("durable");
                                    let _ = local.record(t.elapsed().as_micros() as u64);
                                }
                                records.fetch_add(n, Ordering::Relaxed);
                                waits.lock().add(&local).expect("same bounds");
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.expect("writer");
                    }
                    start.elapsed()
                })
            })
        });

        let syncs = stats.count.load(Ordering::Relaxed) - syncs_before;
        let sync_nanos = stats.nanos.load(Ordering::Relaxed) - nanos_before;
        let records = records.load(Ordering::Relaxed);
        let h = waits.lock();
        eprintln!(
            "journal/accept_durable/{writers}_writers: {records} records of {RECORD_BYTES} B, \
             wait per accept p50 {} µs, p99 {} µs, max {} µs; {syncs} fdatasyncs, mean {:.0} µs, \
             {:.1} records per commit",
            h.value_at_quantile(0.50),
            h.value_at_quantile(0.99),
            h.max(),
            sync_nanos as f64 / syncs.max(1) as f64 / 1e3,
            records as f64 / syncs.max(1) as f64,
        );
        drop(h);
        drop(journal);
    }
    g.finish();
}

criterion_group!(benches, bench_journal);
criterion_main!(benches);
