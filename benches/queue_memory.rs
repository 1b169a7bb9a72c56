//! Memory per queued message: 5,000,000 messages queued through the real
//! structures, counted by a global allocator.
//!
//! Then the same messages beyond the in-memory budget, written to a real
//! `spill::Spill`: what stays in RAM per spilled message (batch descriptors)
//! and what the spill files hold, and how fast they page back in.
//!
//! Run: `cargo bench --bench queue_memory` (prints a report, no criterion).
//! `QUEUE_MEMORY_MESSAGES=N` changes the count; without `--bench` (as
//! `cargo test --benches` runs it) it queues 20,000 as a smoke test.
//!
//! A queued message costs, in RAM, what ingest, the ledger and the carrier
//! queue hold for it:
//! - **message**: its `Arc<Message>` (the `ArcInner` with the struct) and
//!   the boxed strings and string lists the struct owns;
//! - **ledger**: its `Ledger::admit` entry (`u64` id → `Entry` in one of the
//!   64 shard maps), including the tables' empty buckets;
//! - **queue**: its `FairQueue::push` node (an `Item` in its sender's
//!   campaign deque) and, shared over the messages, the per-tenant,
//!   per-sender and per-campaign maps and rings.
//!
//! Messages are built as ingest admits them, in batches of 100 from one
//! tenant: 100 tenants, each owning 100 of 10,000 long codes
//! (`+14155550000`..`+14155559999`), a distinct recipient each, one in five
//! transactional; text of 120 to 160 characters, a 20-character
//! `client_ref`, a campaign id of 12 to 16 characters and one or two tags
//! (pushed one by one, as prost decodes a repeated field), every string
//! boxed at its exact length as admission keeps it. Each
//! batch is built, admitted to the ledger and pushed to one carrier's
//! `FairQueue`, and the live-heap change of each step is added to that
//! step's total, so the split is exact. The batch vector is reused, so
//! nothing but the three structures stays allocated.
//!
//! The allocator is mimalloc, as in the `sluice` binary, wrapped in a
//! counter. Two heap figures: bytes requested, and bytes in mimalloc's size
//! classes (`_mi_bin`: 8-byte steps to 64 bytes, then four classes per
//! doubling; blocks over 128 KiB counted in 4 KiB pages). Process RSS
//! (`VmRSS`, `VmHWM` from `/proc/self/status`) before and after is the
//! cross-check.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mimalloc::MiMalloc;
use sluice::config::JournalConfig;
use sluice::journal::Journal;
use sluice::ledger::{Entry, Ledger};
use sluice::model::{ChannelPref, FallbackPolicy, Message, MessageId, Msisdn, Priority, Sender};
use sluice::schedule::fair::{FairQueue, Item};
use sluice::spill::Spill;

// === counting allocator ===

/// Counts live heap bytes (requested, and in mimalloc size classes) and the
/// peak of the requested count.
struct Counting;

static REQUESTED: AtomicUsize = AtomicUsize::new(0);
static CLASSED: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The block mimalloc hands out for `size` bytes.
fn mi_block(size: usize) -> usize {
    let wsize = size.max(1).div_ceil(8);
    if wsize <= 8 {
        return wsize * 8;
    }
    if size > 128 << 10 {
        return size.div_ceil(4096) * 4096;
    }
    let w = wsize - 1;
    let b = usize::BITS - 1 - w.leading_zeros();
    let sub = (w >> (b - 2)) & 3;
    ((5 + sub) << (b - 2)) * 8
}

fn track_alloc(size: usize) {
    let now = REQUESTED.fetch_add(size, Ordering::Relaxed) + size;
    CLASSED.fetch_add(mi_block(size), Ordering::Relaxed);
    PEAK.fetch_max(now, Ordering::Relaxed);
}

fn track_free(size: usize) {
    REQUESTED.fetch_sub(size, Ordering::Relaxed);
    CLASSED.fetch_sub(mi_block(size), Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to mimalloc; the counters only
// observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { MiMalloc.alloc(layout) };
        if !p.is_null() {
            track_alloc(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { MiMalloc.alloc_zeroed(layout) };
        if !p.is_null() {
            track_alloc(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { MiMalloc.dealloc(ptr, layout) };
        track_free(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { MiMalloc.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            track_free(layout.size());
            track_alloc(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Live heap: (requested, in size classes).
fn heap() -> (usize, usize) {
    (
        REQUESTED.load(Ordering::Relaxed),
        CLASSED.load(Ordering::Relaxed),
    )
}

/// `VmRSS` and `VmHWM` in bytes.
fn rss() -> (usize, usize) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

// === messages ===

const TENANTS: usize = 100;
const SENDERS_PER_TENANT: usize = 100;
const BATCH: usize = 100;

/// SplitMix64.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const MARKETING: &str = "ACME spring sale: 25% off everything in store and online until Sunday, \
     plus free delivery on orders over $40. Use code SPRING25 at checkout: acme.example/s/q7Rk2 \
     Reply STOP to opt out";

struct Pools {
    tenants: Vec<Arc<str>>,
    senders: Vec<Sender>,
}

/// The `n`-th message: batch `n / 100` from tenant `(n / 100) % 100`.
fn message(n: usize, p: &Pools) -> Arc<Message> {
    let t = (n / BATCH) % TENANTS;
    let r = mix(n as u64);
    let sender = t * SENDERS_PER_TENANT + (r % SENDERS_PER_TENANT as u64) as usize;
    let transactional = (r >> 8).is_multiple_of(5);
    // 120 to 160 characters (ASCII, so bytes), allocated at exact length.
    let len = 120 + ((r >> 12) % 41) as usize;
    let text = MARKETING[..len].to_owned();
    let (priority, campaign_id) = if transactional {
        (Priority::Transactional, "order-updates".to_owned())
    } else {
        let c = ["spring-sale", "loyalty", "restock"][((r >> 20) % 3) as usize];
        (Priority::Marketing, format!("t{t:03}-{c}"))
    };
    // Pushed one by one, as prost decodes a repeated field (capacity 4);
    // admission boxes them at exact length (`boxed_strs`), as below.
    let mut tags = Vec::new();
    tags.push("promo-2026".to_owned());
    if (r >> 24) & 1 == 1 {
        tags.push("spring".to_owned());
    }
    Arc::new(Message {
        id: MessageId(n as u64 + 1),
        tenant: p.tenants[t].clone(),
        // 20 characters.
        client_ref: format!("cr{t:03}-{n:014}").into(),
        // Distinct per message: 1 followed by ten digits made from `n`.
        to: Msisdn::from_u64(10_000_000_000 + n as u64 * 1_999 % 9_000_000_000 + 1_000_000_000)
            .expect("11 digits"),
        from: p.senders[sender].clone(),
        text: text.into(),
        media: Box::default(),
        channel: ChannelPref::Sms,
        fallback: FallbackPolicy::SmsWithLink,
        campaign_id: campaign_id.into(),
        expires_at_ms: 1_800_000_000_000,
        priority,
        tags: sluice::model::boxed_strs(tags),
        accepted_at_ms: 1_795_000_000_000,
        auto_reply: false,
        mms: None,
    })
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let count: usize = std::env::var("QUEUE_MEMORY_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 5_000_000 } else { 20_000 });

    let pools = Pools {
        tenants: (0..TENANTS)
            .map(|t| Arc::from(format!("tenant-{t:03}")))
            .collect(),
        senders: (0..TENANTS * SENDERS_PER_TENANT)
            .map(|s| Sender::parse(&format!("+1415555{s:04}")).expect("long code"))
            .collect(),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (journal, _) = Journal::open(dir.path(), &JournalConfig::default()).expect("journal");
    let ledger = Ledger::new(journal);
    let no_tenants: [sluice::config::TenantConfig; 0] = [];
    let mut queue = FairQueue::new(&no_tenants, 0.0);
    let mut batch: Vec<Arc<Message>> = Vec::with_capacity(BATCH);
    let now = tokio::time::Instant::now();

    let (rss0, _) = rss();
    let heap0 = heap();
    let peak0 = PEAK.load(Ordering::Relaxed);
    let started = tokio::time::Instant::now();
    // Heap change of each step: (requested, classed) for message, ledger, queue.
    let mut steps = [(0isize, 0isize); 3];
    let mut text_bytes = 0usize;
    let mut transactional = 0usize;
    let add = |step: &mut (isize, isize), before: (usize, usize), after: (usize, usize)| {
        step.0 += after.0 as isize - before.0 as isize;
        step.1 += after.1 as isize - before.1 as isize;
    };
    let mut n = 0;
    while n < count {
        let h0 = heap();
        let end = (n + BATCH).min(count);
        batch.extend((n..end).map(|i| message(i, &pools)));
        let h1 = heap();
        ledger.admit(&batch);
        let h2 = heap();
        for m in batch.drain(..) {
            text_bytes += m.text.len();
            transactional += usize::from(m.priority == Priority::Transactional);
            queue.push(
                Item {
                    message: m,
                    permits: 1,
                },
                false,
                now,
            );
        }
        let h3 = heap();
        add(&mut steps[0], h0, h1);
        add(&mut steps[1], h1, h2);
        add(&mut steps[2], h2, h3);
        n = end;
    }
    let elapsed = started.elapsed();
    let heap1 = heap();
    let (rss1, hwm1) = rss();
    let peak = PEAK.load(Ordering::Relaxed).max(peak0) - heap0.0;
    assert_eq!(queue.len(), count);
    assert_eq!(ledger.live(), count as u64);

    let per = |b: isize| b as f64 / count as f64;
    println!(
        "queue_memory: {count} queued messages, {TENANTS} tenants, {} senders, {:.1}% transactional, mean text {:.1} bytes; built in {:.1} s",
        TENANTS * SENDERS_PER_TENANT,
        100.0 * transactional as f64 / count as f64,
        text_bytes as f64 / count as f64,
        elapsed.as_secs_f64()
    );
    println!(
        "sizes: Message {} B (Arc<Message> block {} B), ledger map slot (u64, Entry) {} B + 1 control byte, Item {} B",
        size_of::<Message>(),
        size_of::<Message>() + 16,
        size_of::<(u64, Entry)>(),
        size_of::<Item>()
    );
    println!(
        "{:<10} {:>14} {:>22}",
        "part", "requested B/msg", "mimalloc classes B/msg"
    );
    let names = ["message", "ledger", "queue"];
    for (name, (req, cls)) in names.iter().zip(steps) {
        println!("{name:<10} {:>14.1} {:>22.1}", per(req), per(cls));
    }
    let total_req = heap1.0 as isize - heap0.0 as isize;
    let total_cls = heap1.1 as isize - heap0.1 as isize;
    println!(
        "{:<10} {:>14.1} {:>22.1}   ({:.2} GiB requested, {:.2} GiB in classes)",
        "total",
        per(total_req),
        per(total_cls),
        total_req as f64 / (1u64 << 30) as f64,
        total_cls as f64 / (1u64 << 30) as f64
    );
    println!(
        "peak live heap while building: {:.2} GiB requested ({:.1} B/msg; counts both tables while a shard map resizes)",
        peak as f64 / (1u64 << 30) as f64,
        peak as f64 / count as f64
    );
    println!(
        "RSS: {:.1} MiB before, {:.1} MiB after (+{:.1} B/msg), high-water {:.1} MiB",
        rss0 as f64 / (1u64 << 20) as f64,
        rss1 as f64 / (1u64 << 20) as f64,
        (rss1 as f64 - rss0 as f64) / count as f64,
        hwm1 as f64 / (1u64 << 20) as f64
    );
    // Dropping 5 M messages takes seconds and proves nothing more.
    std::mem::forget(queue);
    std::mem::forget(ledger);

    spilled(count, &pools);
    dedupe(count * 2);
    attribution(count * 2);
}

/// The campaign attribution table (`links.attribution_window`, on by
/// default) after `entries` deliveries to distinct numbers, one program:
/// heap per entry, and the peak while its shards grew.
fn attribution(entries: usize) {
    use sluice::links::campaigns::{Campaigns, Delivered};
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "data_dir = \"{}\"\n[mms]\npublic_url = \"https://m.example.com/\"\n[[tenants]]\nname = \"t\"\ntoken = \"a-long-enough-token\"\nsenders = [\"12345\"]\n",
        dir.path().display()
    );
    let config =
        sluice::config::Config::parse(&text, std::path::Path::new("bench.toml")).expect("config");
    let compliance = Arc::new(sluice::compliance::Compliance::open(&config).expect("compliance"));
    let program: Arc<str> = "tenant:t".into();
    let now_s = 1_796_000_000;
    let heap0 = heap();
    let peak0 = PEAK.load(Ordering::Relaxed);
    PEAK.store(heap0.0, Ordering::Relaxed);
    let campaigns = Campaigns::open(
        dir.path(),
        std::time::Duration::from_secs(7 * 86_400),
        now_s,
        compliance,
    );
    for start in (0..entries).step_by(BATCH) {
        let end = (start + BATCH).min(entries);
        campaigns.delivered(
            (start..end).map(|i| Delivered {
                tenant: "t",
                campaign: "spring-2026",
                program: &program,
                to: 14_150_000_000 + i as u64,
            }),
            now_s,
        );
    }
    let h = heap();
    let peak = PEAK.load(Ordering::Relaxed);
    println!(
        "attribution: {entries} deliveries to distinct numbers: {:.1} B/entry requested ({:.1} in classes), peak {:.1} B/entry",
        (h.0 as f64 - heap0.0 as f64) / entries as f64,
        (h.1 as f64 - heap0.1 as f64) / entries as f64,
        (peak as f64 - heap0.0 as f64) / entries as f64
    );
    PEAK.fetch_max(peak0, Ordering::Relaxed);
    std::mem::forget(campaigns);
}

/// The dedupe index at its default cap (`ingest.dedupe_max_keys`, 10 M
/// keys, scaled with the message count): heap per remembered key once full,
/// and after as many keys again have pushed the oldest out (steady state of
/// a long run: deleted slots make the tables grow once more).
fn dedupe(keys: usize) {
    let cap = keys / 2;
    let tenant: Arc<str> = "tenant-000".into();
    let heap0 = heap();
    let d = sluice::admission::Dedupe::new(std::time::Duration::from_secs(86_400), [7; 16])
        .with_max_keys(cap);
    let report = |what: &str, inserted: usize| {
        let h = heap();
        println!(
            "dedupe {what}: {} keys remembered after {inserted} inserts: {:.1} B/key requested ({:.1} in classes)",
            d.len(),
            (h.0 as f64 - heap0.0 as f64) / d.len() as f64,
            (h.1 as f64 - heap0.1 as f64) / d.len() as f64
        );
    };
    let mut client_ref = String::with_capacity(32);
    for i in 0..keys {
        use std::fmt::Write;
        client_ref.clear();
        let _ = write!(client_ref, "campaign-7-recipient-{i}");
        let _ = d.check_or_insert(&tenant, &client_ref, MessageId(i as u64), i as u64 / 50, 1);
        if i + 1 == cap {
            report("full", i + 1);
        }
    }
    report("steady", keys);
    std::mem::forget(d);
}

/// The same messages beyond the in-memory budget: written to a real
/// [`Spill`] in ingest batches; what stays in RAM per message, and what the
/// disk holds.
fn spilled(count: usize, pools: &Pools) {
    let dir = tempfile::tempdir().expect("tempdir");
    let spill = Spill::open(&dir.path().join("spill"), 64 << 20).expect("spill");
    let heap0 = heap();
    let started = tokio::time::Instant::now();
    let mut batch: Vec<Arc<Message>> = Vec::with_capacity(BATCH);
    let mut n = 0;
    while n < count {
        let end = (n + BATCH).min(count);
        batch.extend((n..end).map(|i| message(i, pools)));
        spill.push(&batch).expect("spill write");
        // Spilled messages leave memory: only the batch descriptors stay.
        batch.clear();
        n = end;
    }
    let elapsed = started.elapsed();
    let heap1 = heap();
    assert_eq!(spill.len(), count as u64);
    let disk: u64 = std::fs::read_dir(dir.path().join("spill"))
        .expect("spill dir")
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "spilled: {count} messages in batches of {BATCH} (each batch one tenant, both priorities) in {:.1} s: \
         RAM {:.2} B/msg requested ({:.2} B/msg in classes), disk {:.1} B/msg ({:.2} GiB)",
        elapsed.as_secs_f64(),
        (heap1.0 as f64 - heap0.0 as f64) / count as f64,
        (heap1.1 as f64 - heap0.1 as f64) / count as f64,
        disk as f64 / count as f64,
        disk as f64 / (1u64 << 30) as f64
    );
    let started = tokio::time::Instant::now();
    let mut paged = 0;
    while !spill.is_empty() {
        paged += spill.take(50_000).len();
    }
    assert_eq!(paged, count);
    println!(
        "paged in: {paged} messages in {:.1} s ({:.0} messages/s, 50,000 per take)",
        started.elapsed().as_secs_f64(),
        paged as f64 / started.elapsed().as_secs_f64()
    );
}
