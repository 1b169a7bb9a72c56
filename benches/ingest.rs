//! Ingest hot path, per message: framing and protobuf decoding of a
//! `SubmitBatch`, admission's `validate`, `Dedupe::check_or_insert`, and the
//! pre-encoded `event_batch_frame` going the other way.
//!
//! Every group reports per-element throughput, so the criterion time is per
//! batch and `thrpt` is messages (or events) per second. Inputs that a routine
//! consumes are built outside the timed region, and its outputs dropped
//! there (`iter_batched`, eight inputs at a time so that they stay in cache as
//! a just-read frame would).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use prost::Message as _;
use sluice::admission::{Dedupe, validate};
use sluice::ingest::codec::{decode_frame, event_batch_frame, frame_bytes, length_codec};
use sluice::ingest::pb;
use sluice::journal::PendingEvent;
use sluice::model::MessageId;
use tokio_util::codec::Decoder;

/// Messages per `SubmitBatch` (the protocol's usual batch).
const BATCH: usize = 100;

/// A realistic rendered message (~180 bytes encoded): an order notification
/// with a client reference, E.164 recipient, alphanumeric sender, campaign
/// and two tags.
fn submit_message(i: usize) -> pb::SubmitMessage {
    pb::SubmitMessage {
        client_ref: format!("ord-2026-11-27-{i:08}"),
        to: format!("+1415555{:04}", i % 10_000),
        from: "ACMESHOP".into(),
        text: format!(
            "Your order #{:06} has shipped and will arrive Tuesday. Track it: https://acme.example/t/{i:x}",
            i % 1_000_000
        ),
        media: vec![],
        subject: String::new(),
        channel: pb::ChannelPreference::ChannelSms as i32,
        fallback: pb::FallbackPolicy::FallbackSmsTextOnly as i32,
        campaign_id: "shipping-notices".into(),
        validity_seconds: 3600,
        priority: pb::PriorityClass::PriorityTransactional as i32,
        tags: vec!["shipping".into(), "us".into()],
        ..Default::default()
    }
}

fn batch() -> Vec<pb::SubmitMessage> {
    (0..BATCH).map(submit_message).collect()
}

fn submit_batch_frame() -> Bytes {
    frame_bytes(
        42,
        pb::frame::Body::SubmitBatch(pb::SubmitBatch { messages: batch() }),
    )
}

fn delivery_event(event_id: u64) -> Arc<PendingEvent> {
    let payload = pb::Event {
        event_id,
        kind: Some(pb::event::Kind::Delivery(pb::DeliveryEvent {
            message_id: 1_000_000 + event_id,
            client_ref: format!("ord-2026-11-27-{event_id:08}"),
            state: pb::DeliveryState::StateDelivered as i32,
            reason: "DELIVRD".into(),
            error_code: 0,
            channel: pb::Channel::SmsUsed as i32,
            at_ms: 1_795_000_000_000 + event_id,
            carrier: "tmo-us".into(),
            segments: 1,
            campaign_id: "shipping-notices".into(),
            channel_reason: String::new(),
        })),
    }
    .encode_to_vec();
    Arc::new(PendingEvent {
        event_id,
        message_id: MessageId(1_000_000 + event_id),
        tenant: "acme".into(),
        payload: payload.into(),
        sink: String::new(),
        created_ms: 0,
    })
}

fn bench_decode(c: &mut Criterion) {
    let frame = submit_batch_frame();
    let mut g = c.benchmark_group("ingest/submit_batch");
    g.throughput(Throughput::Elements(BATCH as u64));
    // Length codec + `decode_frame`, from the bytes as read off the socket to
    // the decoded batch: the session's per-frame work.
    g.bench_function("decode_100", |b| {
        let mut codec = length_codec(8 << 20);
        b.iter_batched(
            || BytesMut::from(&frame[..]),
            |mut buf| {
                let body = codec.decode(&mut buf).expect("frame").expect("whole frame");
                let (_, body) = decode_frame(body.freeze()).expect("valid frame");
                body
            },
            BatchSize::NumIterations(8),
        )
    });
    g.finish();
    eprintln!(
        "ingest/submit_batch: frame is {} bytes for {BATCH} messages ({} bytes/message)",
        frame.len(),
        frame.len() / BATCH
    );
}

fn bench_admission(c: &mut Criterion) {
    let tenant: Arc<str> = "acme".into();
    let now = 1_795_000_000_000u64;
    let mut g = c.benchmark_group("ingest/admission");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("validate_100", |b| {
        b.iter_batched(
            batch,
            |msgs| {
                msgs.into_iter()
                    .map(|m| {
                        validate(
                            &tenant,
                            sluice::ingest::convert::submission(m),
                            Duration::from_secs(86_400),
                            now,
                        )
                    })
                    .collect::<Vec<_>>()
            },
            BatchSize::NumIterations(8),
        )
    });

    // Steady state of new keys: 10 keys per ms (10 k/s) with a 10 s window
    // keeps ~100 k keys live, so every call inserts and, amortised, expires
    // one. Keys repeat after 1 M calls (100 s), long after they expired.
    let keys: Vec<String> = (0..1 << 20)
        .map(|i| format!("ord-2026-11-27-{i:08}"))
        .collect();
    g.throughput(Throughput::Elements(1));
    g.bench_function("dedupe_insert", |b| {
        let dedupe = Dedupe::new(Duration::from_secs(10), [7; 16]);
        let mut i = 0usize;
        b.iter(|| {
            let key = &keys[i & ((1 << 20) - 1)];
            let at = now + (i / 10) as u64;
            i += 1;
            black_box(dedupe.check_or_insert(&tenant, key, MessageId(i as u64), at, 1))
        })
    });
    // A retried batch: every key is already known (100 k live keys).
    g.bench_function("dedupe_duplicate", |b| {
        let dedupe = Dedupe::new(Duration::from_secs(86_400), [7; 16]);
        for (i, k) in keys.iter().take(100_000).enumerate() {
            let _ = dedupe.check_or_insert(&tenant, k, MessageId(i as u64), now, 1);
        }
        let mut i = 0usize;
        b.iter(|| {
            let key = &keys[i % 100_000];
            i += 1;
            black_box(dedupe.check_or_insert(&tenant, key, MessageId(0), now, 1))
        })
    });
    g.finish();
}

fn bench_events(c: &mut Criterion) {
    let events: Vec<Arc<PendingEvent>> = (0..BATCH as u64).map(delivery_event).collect();
    let mut g = c.benchmark_group("ingest/event_batch");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("frame_100", |b| {
        b.iter(|| event_batch_frame(black_box(&events)))
    });
    g.finish();
    eprintln!(
        "ingest/event_batch: frame is {} bytes for {BATCH} events",
        event_batch_frame(&events).len()
    );
}

criterion_group!(benches, bench_decode, bench_admission, bench_events);
criterion_main!(benches);
