//! Receipt reading and correlation keys: `smpp::receipt::parse_receipt` on an
//! already decoded `deliver_sm` (text-only and TLV receipts), and
//! `receipts::normalize_id` / `canonical_id` (the same key, on the stack) /
//! `candidate_ids` on the id forms SMSCs send.
//!
//! `receipt/correlate`: a burst of 1,000 one-part messages through the
//! real `Receipts` over a ledger and an event hub. Each iteration makes the
//! messages live and dispatched (`Ledger::accept`, `dispatch`, `written`:
//! the steps before a receipt can come), records each part's
//! `submit_sm_resp` id (`part_submitted`), builds the 1,000 receipt PDUs,
//! hands them over as one burst (`deliver_batch`: parse, correlate, settle,
//! publish the events, answer once they are durable), and takes and
//! acknowledges the events as a client would. So it is not the receipt
//! path alone; `valgrind --tool=callgrind` on it splits the time by
//! function. No metrics recorder is installed (counters cost little: their
//! cache's lock and lookup only) and history is off. The journal is in the system temp dir, or in
//! `SLUICE_BENCH_JOURNAL_DIR` (e.g. a tmpfs, to leave the disk's syncs out;
//! it grows for the whole run: 0.9 GB in 10 s of warm-up and measurement
//! here).
//!
//! The decode of the PDU itself is in `benches/smpp.rs`.

use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice::carrier::CarrierSink;
use sluice::config::JournalConfig;
use sluice::events::EventHub;
use sluice::ingest::event_wire::WireEvents;
use sluice::journal::Journal;
use sluice::ledger::Ledger;
use sluice::model::Message;
use sluice::receipts::{Receipts, candidate_ids, canonical_id, normalize_id};
use sluice::settings::ReceiptsConfig;
use sluice::smpp::pdu::{DeliverSm, Tlv, tag};
use sluice::smpp::receipt::{format_receipt_text, parse_receipt};

mod common;

fn receipt(tlvs: bool) -> DeliverSm {
    let text = format_receipt_text(
        "7f3a9c21e0",
        1,
        1,
        "2611271405",
        "2611271405",
        "DELIVRD",
        0,
        "Your ACME code is 481516. It expires in 10 minutes.",
    );
    DeliverSm {
        source_addr_ton: 1,
        source_addr_npi: 1,
        source_addr: Bytes::from_static(b"14155550123"),
        dest_addr_ton: 3,
        dest_addr_npi: 0,
        destination_addr: Bytes::from_static(b"22395"),
        esm_class: 0x04,
        registered_delivery: 0,
        short_message: Bytes::from(text),
        tlvs: if tlvs {
            vec![
                Tlv::from_c_string(tag::RECEIPTED_MESSAGE_ID, b"7f3a9c21e0"),
                Tlv::from_u8(tag::MESSAGE_STATE, 2),
                Tlv::new(tag::NETWORK_ERROR_CODE, Bytes::from_static(&[3, 0, 0])),
            ]
        } else {
            Vec::new()
        },
        ..DeliverSm::default()
    }
}

fn bench_parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("receipt/parse");
    g.throughput(Throughput::Elements(1));
    for (name, sm) in [("text", receipt(false)), ("tlv", receipt(true))] {
        g.bench_function(name, |b| {
            b.iter(|| parse_receipt(black_box(&sm)).expect("a receipt"))
        });
    }
    g.finish();
}

fn bench_ids(c: &mut Criterion) {
    // Hex id with leading zeros and upper case; a decimal id (both
    // conversions apply); a UUID-style id (no conversion).
    let ids: [(&str, &[u8]); 3] = [
        ("hex", b"007F3A9C21E0"),
        ("decimal", b"0004712093387"),
        ("uuid", b"3f2b8c1e-9d4a-4b7e-a1c2-5e6f7a8b9c0d"),
    ];
    let mut g = c.benchmark_group("receipt/ids");
    g.throughput(Throughput::Elements(1));
    for (name, id) in ids {
        g.bench_function(format!("normalize_id/{name}"), |b| {
            b.iter(|| normalize_id(black_box(id)))
        });
        g.bench_function(format!("canonical_id/{name}"), |b| {
            b.iter(|| canonical_id(black_box(id)))
        });
        g.bench_function(format!("candidate_ids/{name}"), |b| {
            b.iter(|| candidate_ids(black_box(id)))
        });
    }
    g.finish();
}

const BURST: u64 = 1_000;

fn message(id: u64) -> Arc<Message> {
    common::message(id, "", u64::MAX / 2)
}

/// A final receipt for carrier id `id`, as an SMSC words it.
fn receipt_for(id: &str) -> DeliverSm {
    let text = format_receipt_text(
        id,
        1,
        1,
        "2611271405",
        "2611271405",
        "DELIVRD",
        0,
        "Your order",
    );
    DeliverSm {
        source_addr: Bytes::from_static(b"14155550123"),
        destination_addr: Bytes::from_static(b"ACMESHOP"),
        esm_class: 0x04,
        short_message: Bytes::from(text),
        ..DeliverSm::default()
    }
}

fn bench_correlate(c: &mut Criterion) {
    let dir = match std::env::var_os("SLUICE_BENCH_JOURNAL_DIR") {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .expect("a temp dir");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let (journal, _) = Journal::open(dir.path(), &JournalConfig::default()).expect("a journal");
    let ledger = Arc::new(Ledger::new(journal.clone()));
    let tenant: Arc<str> = "acme".into();
    let hub = Arc::new(EventHub::new(
        journal,
        [tenant.clone()],
        Arc::new(WireEvents),
    ));
    let receipts = Receipts::new(ledger.clone(), hub.clone(), &ReceiptsConfig::default());
    let carrier: Arc<str> = "sim".into();
    let messages: Vec<Arc<Message>> = (1..=BURST).map(message).collect();
    // Upper-case hex in the answers (one form SMSCs use), as given.
    let ids: Vec<String> = (1..=BURST)
        .map(|i| format!("{:X}", 0xA000_0000 + i))
        .collect();
    let mut g = c.benchmark_group("receipt");
    g.throughput(Throughput::Elements(BURST));
    g.bench_function("correlate", |b| {
        b.iter(|| {
            rt.block_on(async {
                let _ = ledger.accept(&messages);
                let mut written = Vec::with_capacity(messages.len());
                for m in &messages {
                    assert!(ledger.dispatch(m.id, &carrier, 1));
                    written.push((m.id, 0, 1));
                }
                let _ = ledger.written(&carrier, &written);
                for (m, id) in messages.iter().zip(&ids) {
                    receipts.part_submitted(&carrier, m.id, 0, id.as_bytes());
                }
                let burst: Vec<(u32, DeliverSm)> = ids
                    .iter()
                    .enumerate()
                    .map(|(seq, id)| (seq as u32, receipt_for(id)))
                    .collect();
                let answers = receipts.deliver_batch(&carrier, burst).await;
                assert_eq!(answers.len(), BURST as usize);
                // Taken from the tenant's stream as they become ready.
                let mut taken = 0;
                while taken < BURST as usize {
                    hub.wait(&tenant, 1).await;
                    let events = hub.take(&tenant, 1, BURST as usize);
                    let acked: Vec<u64> = events.iter().map(|e| e.event_id).collect();
                    taken += hub.ack(&tenant, 1, &acked);
                }
                assert_eq!(ledger.live(), 0, "every message ended");
            })
        });
    });
    g.finish();
}

criterion_group!(benches, bench_parse, bench_ids, bench_correlate);
criterion_main!(benches);
