//! Scheduling costs: `shaping::rate::Rate::check` (no limit, a limiter that
//! admits, a limiter that refuses) and the per-carrier fair queue
//! (`schedule::fair::FairQueue`, the structure inside `CarrierQueue` that the
//! dispatcher pops from) with 100 tenants: push, and push + pop.
//!
//! `schedule/fair_queue_10k_senders` is the scheduler overhead per message
//! with 100 tenants and 10,000 distinct sender numbers active: every tenant
//! owns 100 long codes (`+14155550000`..`+14155559999`, tenant `t` has
//! `+1415555tt00`..`+1415555tt99`), one message in five is transactional,
//! marketing spreads over three campaigns per tenant. Messages come in
//! ingest batches of 100 (one tenant per batch, spread over its numbers) and
//! leave the way `Dispatcher::take_batch` takes them: `pop` until 512 with
//! one `now`/`now_ms` read per batch. `paced` configures every level the
//! dispatcher checks: a long-code rate and a daily cap on every sender (GCRA
//! peek + commit and the cap inside `pop`), a rate per tenant and a carrier
//! rate, all high enough to admit (the bench asserts that no `pop` waits),
//! so it times the checks, not waiting. `steady` keeps a backlog of 100,000
//! messages over the 10,000 senders and moves 500 messages through per
//! iteration; `fill_drain` pushes 100,000 into an empty queue and pops them
//! all.
//!
//! `FairQueue` is driven directly rather than through `CarrierQueue`: the
//! queue's only public consumer is the dispatcher, which also encodes parts,
//! journals the dispatch and waits for its sync, so timing it would not be
//! the queue's cost. `CarrierQueue::push` adds a mutex and a `plan_with` per
//! message (when the carrier counts segments) on top of what is timed here.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::time::Duration;

use sluice::config::{Secret, SendersConfig, TenantConfig};
use sluice::model::{
    ChannelPref, FallbackPolicy, Message, MessageId, Msisdn, Priority, Sender, now_ms,
};
use sluice::schedule::fair::{FairQueue, Item, Pop, SenderLimits};
use sluice::shaping::rate::Rate;
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
        client_ref: format!("ref-{id}").into(),
        to: Msisdn::parse("+14155550123").expect("valid number"),
        from: Sender::parse(["22395", "22396"][i % 2]).expect("valid sender"),
        text: "Your ACME code is 481516.".into(),
        media: Box::default(),
        channel: ChannelPref::Sms,
        fallback: FallbackPolicy::SmsTextOnly,
        campaign_id: ["spring-sale", "reminders"][(i / 2) % 2].into(),
        expires_at_ms: u64::MAX,
        priority,
        tags: Box::default(),
        accepted_at_ms: 0,
        auto_reply: false,
        mms: None,
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

// === 10,000 senders ===

/// Sender numbers per tenant (100 tenants: 10,000 numbers).
const SENDERS_PER_TENANT: usize = 100;
/// Messages a dispatcher pops per batch for an SMPP carrier (`carrier::smpp::DISPATCH_BATCH`).
const DISPATCH_BATCH: usize = 512;
/// Backlog of the steady-state bench and size of the fill/drain bench.
const BACKLOG: usize = 100_000;
/// Messages moved through the queue per steady-state iteration.
const STEADY: usize = 500;

/// SplitMix64: deterministic, well-spread numbers without a dependency.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The `n`-th message as ingest admits it: batch `n / 100` comes from tenant
/// `(n / 100) % 100`, which spreads it over its 100 numbers.
fn message_10k(n: usize, tenants: &[Arc<str>]) -> Arc<Message> {
    let t = (n / BATCH) % TENANTS;
    let r = mix(n as u64);
    let sender = t * SENDERS_PER_TENANT + (r % SENDERS_PER_TENANT as u64) as usize;
    let transactional = (r >> 8).is_multiple_of(5);
    let (priority, campaign_id, text) = if transactional {
        (
            Priority::Transactional,
            "order-updates".to_owned(),
            format!(
                "ACME: your order {:06} has shipped. Track it at acme.example/t/{r:x}",
                r % 1_000_000
            ),
        )
    } else {
        (
            Priority::Marketing,
            format!(
                "t{t:03}-{}",
                ["spring-sale", "loyalty", "restock"][((r >> 16) % 3) as usize]
            ),
            format!(
                "ACME spring sale: 25% off everything in store and online until Sunday. Use code SPRING25 at checkout. acme.example/s/{r:x} Reply STOP to opt out"
            ),
        )
    };
    Arc::new(Message {
        id: MessageId(n as u64 + 1),
        tenant: tenants[t].clone(),
        client_ref: format!("cr-{t:03}-{n:015}").into(),
        to: Msisdn::from_u64(12_000_000_000 + (r >> 20) % 7_999_999_999).expect("11 digits"),
        from: Sender::parse(&format!("+1415555{sender:04}")).expect("valid long code"),
        text: text.into(),
        media: Box::default(),
        channel: ChannelPref::Sms,
        fallback: FallbackPolicy::SmsTextOnly,
        campaign_id: campaign_id.into(),
        expires_at_ms: u64::MAX,
        priority,
        tags: Box::new(["sms".into()]),
        accepted_at_ms: 0,
        auto_reply: false,
        mms: None,
    })
}

/// Limits at every level the dispatcher checks, all admitting: 100,000/s per
/// long code with a daily cap of 2^40, 1 M/s per tenant, 100 M/s for the
/// carrier.
fn admitting_limits(tenants: &[Arc<str>]) -> (SenderLimits, Vec<TenantConfig>, f64) {
    let senders = SendersConfig {
        long_code_rate: 100_000.0,
        daily_cap: 1 << 40,
        ..SendersConfig::default()
    };
    let tenant_config = tenants
        .iter()
        .map(|t| TenantConfig {
            name: t.to_string(),
            token: Secret::new("x"),
            default_validity: Duration::from_secs(48 * 3600),
            rate: 1_000_000.0,
            ..TenantConfig::default()
        })
        .collect();
    (SenderLimits::new(senders), tenant_config, 100_000_000.0)
}

/// Pops up to `want` messages the way `Dispatcher::take_batch` does (one
/// `now` per batch of [`DISPATCH_BATCH`]); panics if a limit made it wait.
fn drain(q: &mut FairQueue, limits: &mut SenderLimits, want: usize) {
    let mut n = 0;
    while n < want {
        let now = Instant::now();
        let now_ms = now_ms();
        let end = (n + DISPATCH_BATCH).min(want);
        while n < end {
            match q.pop(now, now_ms, limits) {
                Pop::Item(item) => {
                    black_box(&item);
                    n += 1;
                }
                Pop::WaitUntil(at) => panic!(
                    "a limit refused after {n} pops (wait {:?}); the bench must admit",
                    at - now
                ),
                Pop::Empty => panic!("queue empty after {n} pops, wanted {want}"),
            }
        }
    }
}

fn bench_fair_queue_10k_senders(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = rt.enter();
    let tenants: Vec<Arc<str>> = (0..TENANTS)
        .map(|t| Arc::from(format!("tenant-{t:03}")))
        .collect();
    let items: Vec<Item> = (0..BACKLOG)
        .map(|n| Item {
            message: message_10k(n, &tenants),
            permits: 1,
        })
        .collect();
    let senders: std::collections::HashSet<String> =
        items.iter().map(|i| i.message.from.to_string()).collect();
    let transactional = items
        .iter()
        .filter(|i| i.message.priority == Priority::Transactional)
        .count();
    eprintln!(
        "fair_queue_10k_senders: {} messages, {} distinct senders, {} tenants, {:.1}% transactional",
        items.len(),
        senders.len(),
        TENANTS,
        100.0 * transactional as f64 / items.len() as f64
    );

    let mut g = c.benchmark_group("schedule/fair_queue_10k_senders");
    g.sample_size(20);
    g.throughput(Throughput::Elements(BACKLOG as u64));
    for paced in [false, true] {
        let name = if paced { "paced" } else { "unlimited" };
        g.bench_function(format!("fill_drain_100k/{name}"), |b| {
            let (mut limits, tenant_config, carrier_rate) = if paced {
                admitting_limits(&tenants)
            } else {
                (SenderLimits::new(SendersConfig::default()), vec![], 0.0)
            };
            b.iter_batched(
                || items.clone(),
                |items| {
                    let now = Instant::now();
                    let mut q = FairQueue::new(&tenant_config, carrier_rate);
                    for item in items {
                        q.push(item, false, now);
                    }
                    drain(&mut q, &mut limits, BACKLOG);
                    q
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.throughput(Throughput::Elements(STEADY as u64));
    for paced in [false, true] {
        let name = if paced { "paced" } else { "unlimited" };
        g.bench_function(format!("steady_100k_backlog/{name}"), |b| {
            let (mut limits, tenant_config, carrier_rate) = if paced {
                admitting_limits(&tenants)
            } else {
                (SenderLimits::new(SendersConfig::default()), vec![], 0.0)
            };
            let mut q = FairQueue::new(&tenant_config, carrier_rate);
            let now = Instant::now();
            for item in &items {
                q.push(item.clone(), false, now);
            }
            // Pushes cycle through the same 100,000 messages (ids repeat,
            // which the queue does not look at).
            let mut next = 0usize;
            b.iter(|| {
                let now = Instant::now();
                for _ in 0..STEADY {
                    q.push(items[next].clone(), false, now);
                    next = (next + 1) % BACKLOG;
                }
                drain(&mut q, &mut limits, STEADY);
            });
            assert_eq!(q.len(), BACKLOG);
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    bench_rate,
    bench_fair_queue,
    bench_fair_queue_10k_senders
);
criterion_main!(benches);
