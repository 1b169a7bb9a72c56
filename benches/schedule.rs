//! Scheduling costs: `schedule::rate::Rate::check` (no limit, a limiter that
//! admits, a limiter that refuses) and the per-carrier fair queue
//! (`schedule::fair::FairQueue`, the structure inside `CarrierQueue` that the
//! dispatcher pops from) with 100 tenants: push, and push + pop.
//!
//! `FairQueue` is driven directly rather than through `CarrierQueue`: the
//! queue's only public consumer is the dispatcher, which also encodes parts,
//! journals the dispatch and waits for its sync, so timing it would not be
//! the queue's cost. `CarrierQueue::push` adds a mutex and a `plan_with` per
//! message (when the carrier counts segments) on top of what is timed here.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sluice::config::{SendersConfig, TenantConfig};
use sluice::model::{ChannelPref, FallbackPolicy, Message, MessageId, Msisdn, Priority, Sender};
use sluice::schedule::fair::{FairQueue, Item, Pop, SenderLimits};
use sluice::schedule::rate::Rate;
use tokio::time::Instant;

const TENANTS: usize = 100;
/// Messages per `push` call: one admitted `SubmitBatch`.
const BATCH: usize = 100;
/// Batches pushed per measured iteration (into a fresh queue).
const BATCHES: usize = 100;

fn message(id: u64, tenant: &Arc<str>, priority: Priority, i: usize) -> Arc<Message> {
    Arc::new(Message {
        id: MessageId(id),
        tenant: tenant.clone(),
        client_ref: format!("ref-{id}"),
        to: Msisdn::parse("+14155550123").expect("valid number"),
        from: Sender::parse(["22395", "22396"][i % 2]).expect("valid sender"),
        text: "Your ACME code is 481516.".into(),
        media: vec![],
        subject: None,
        channel: ChannelPref::Sms,
        fallback: FallbackPolicy::SmsTextOnly,
        campaign_id: ["spring-sale", "reminders"][(i / 2) % 2].into(),
        expires_at_ms: u64::MAX,
        priority,
        tags: vec![],
        accepted_at_ms: 0,
        auto_reply: false,
    })
}

fn bench_rate(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = rt.enter();
    let mut g = c.benchmark_group("schedule/rate_check");
    g.throughput(Throughput::Elements(1));
    // A sender without a limit: `Rate::per_second(0)` is `None`, and the
    // caller's check is the `Option` test.
    let unlimited = Rate::per_second(0);
    g.bench_function("unlimited", |b| {
        b.iter(|| black_box(&unlimited).as_ref().map_or(Ok(()), Rate::check))
    });
    // A limiter that always has a permit (1 G/s): the governor CAS path.
    let open = Rate::per_second(1_000_000_000);
    g.bench_function("limited_admit", |b| {
        b.iter(|| black_box(&open).as_ref().map_or(Ok(()), Rate::check))
    });
    // A 10DLC-like 1 msg/s limiter that refuses: the path plus the wait time.
    let tight = Rate::per_second(1);
    let _ = tight.as_ref().map(Rate::check);
    g.bench_function("limited_refuse", |b| {
        b.iter(|| black_box(&tight).as_ref().map_or(Ok(()), Rate::check))
    });
    g.finish();
}

fn bench_fair_queue(c: &mut Criterion) {
    let tenants: Vec<Arc<str>> = (0..TENANTS)
        .map(|t| Arc::from(format!("tenant-{t:03}")))
        .collect();
    // Batches as ingest hands them over: each from one tenant (tenants taking
    // turns), split over two senders and two campaigns, one batch in five
    // transactional.
    let batches: Vec<Vec<Item>> = (0..BATCHES)
        .map(|b| {
            let tenant = &tenants[b % TENANTS];
            let priority = if b % 5 == 0 {
                Priority::Transactional
            } else {
                Priority::Marketing
            };
            (0..BATCH)
                .map(|i| Item {
                    message: message((b * BATCH + i) as u64, tenant, priority, i),
                    permits: 1,
                })
                .collect()
        })
        .collect();
    let no_tenants: [TenantConfig; 0] = [];

    let mut g = c.benchmark_group("schedule/fair_queue");
    g.throughput(Throughput::Elements((BATCH * BATCHES) as u64));
    // Push 10 k messages into an empty queue, then pop them all in fair
    // order (no limits configured: the cost of the ordering itself).
    g.bench_function("push_pop_10k_100_tenants", |b| {
        let mut limits = SenderLimits::new(SendersConfig::default());
        b.iter_batched(
            || batches.clone(),
            |batches| {
                let now = Instant::now();
                let mut q = FairQueue::new(&no_tenants, 0.0);
                for batch in batches {
                    for item in batch {
                        q.push(item, false, now);
                    }
                }
                let mut n = 0usize;
                while let Pop::Item(item) = q.pop(now, 1_795_000_000_000, &mut limits) {
                    black_box(&item);
                    n += 1;
                }
                assert_eq!(n, BATCH * BATCHES);
                q
            },
            BatchSize::PerIteration,
        )
    });
    // Push only, for the split between the two halves.
    g.bench_function("push_10k_100_tenants", |b| {
        b.iter_batched(
            || batches.clone(),
            |batches| {
                let now = Instant::now();
                let mut q = FairQueue::new(&no_tenants, 0.0);
                for batch in batches {
                    for item in batch {
                        q.push(item, false, now);
                    }
                }
                q
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, bench_rate, bench_fair_queue);
criterion_main!(benches);
