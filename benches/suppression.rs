//! Suppression store: the compact [`SuppressionSet`] against the naive
//! `DashMap<String, ()>` (numbers as strings with their scope) and an
//! integer-keyed `DashSet<(u32, u64)>`.
//!
//! Run: `cargo bench --bench suppression -- --quick`
//!
//! Before the criterion groups, `main` prints a memory report (skipped with
//! `--test`/`--list`, or when `SUPPRESSION_BENCH_NO_MEMORY` is set): bytes
//! per entry of the compact set at 10M entries (its own `memory_bytes()` and
//! what the allocator actually handed out), and of the two hash designs at
//! 1M entries, extrapolated. A counting global allocator measures the heap;
//! its "glibc" column adds malloc's per-allocation overhead (16-byte
//! granularity, 8-byte header, 32-byte minimum), which dominates for small
//! strings.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion};
use dashmap::{DashMap, DashSet};
use sluice::model::Msisdn;
use sluice::suppression::{ScopeId, SuppressionSet};

// === counting allocator ===

/// Counts live heap bytes: as requested, and as glibc malloc would use them.
struct Counting;

static REQUESTED: AtomicUsize = AtomicUsize::new(0);
static FOOTPRINT: AtomicUsize = AtomicUsize::new(0);

fn glibc_chunk(size: usize) -> usize {
    ((size + 8).div_ceil(16) * 16).max(32)
}

fn track(size: usize, sign: isize) {
    if sign > 0 {
        REQUESTED.fetch_add(size, Ordering::Relaxed);
        FOOTPRINT.fetch_add(glibc_chunk(size), Ordering::Relaxed);
    } else {
        REQUESTED.fetch_sub(size, Ordering::Relaxed);
        FOOTPRINT.fetch_sub(glibc_chunk(size), Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            track(layout.size(), 1);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            track(layout.size(), 1);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        track(layout.size(), -1);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            track(layout.size(), -1);
            track(new_size, 1);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn heap() -> (usize, usize) {
    (
        REQUESTED.load(Ordering::Relaxed),
        FOOTPRINT.load(Ordering::Relaxed),
    )
}

// === data ===

/// Distinct pseudo-random NANP-like numbers; `tag` (0..=9) is the last digit,
/// so sets with different tags never overlap (hits versus misses).
fn numbers(seed: u64, count: usize, tag: u64) -> Vec<Msisdn> {
    let mut s = seed;
    let mut seen = std::collections::HashSet::with_capacity(count);
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let v = 12_000_000_000 + (z % 799_999_999) * 10 + tag;
        if seen.insert(v) {
            out.push(Msisdn::from_u64(v).expect("11 digits"));
        }
    }
    out
}

fn string_key(scope: &str, n: Msisdn) -> String {
    format!("{scope}|{n}")
}

const ENTRIES: usize = 1_000_000;
/// Queries cycled through by the lookup benches (a power of two).
const QUERIES: usize = 1 << 20;
const SCOPE: &str = "global";

struct Fixture {
    compact: SuppressionSet,
    scope: ScopeId,
    program: ScopeId,
    tenant: ScopeId,
    strings: DashMap<String, ()>,
    ints: DashSet<(u32, u64)>,
    hits: Vec<Msisdn>,
    misses: Vec<Msisdn>,
    hit_keys: Vec<String>,
    miss_keys: Vec<String>,
}

fn fixture() -> Fixture {
    let entries = numbers(1, ENTRIES, 1);
    let compact = SuppressionSet::new();
    let scope = compact.scope(SCOPE);
    let program = compact.scope("program:acme:12345");
    let tenant = compact.scope("tenant:acme");
    compact.bulk_insert(scope, entries.iter().copied());
    let strings = DashMap::with_capacity(ENTRIES);
    let ints = DashSet::with_capacity(ENTRIES);
    for &n in &entries {
        strings.insert(string_key(SCOPE, n), ());
        ints.insert((scope.as_u32(), n.as_u64()));
    }
    // Hits in an order unrelated to insertion.
    let mut hits: Vec<Msisdn> = (0..QUERIES)
        .map(|i| entries[(i.wrapping_mul(2_654_435_761)) % ENTRIES])
        .collect();
    hits.rotate_left(12_345);
    let misses = numbers(2, QUERIES, 2);
    let hit_keys = hits.iter().map(|&n| string_key(SCOPE, n)).collect();
    let miss_keys = misses.iter().map(|&n| string_key(SCOPE, n)).collect();
    Fixture {
        compact,
        scope,
        program,
        tenant,
        strings,
        ints,
        hits,
        misses,
        hit_keys,
        miss_keys,
    }
}

// === criterion ===

fn lookups(c: &mut Criterion, f: &Fixture) {
    for (name, queries, keys, want) in [
        ("lookup_hit_1M", &f.hits, &f.hit_keys, true),
        ("lookup_miss_1M", &f.misses, &f.miss_keys, false),
    ] {
        let mut g = c.benchmark_group(name);
        g.bench_function("compact_set", |b| {
            let mut i = 0;
            b.iter(|| {
                let n = queries[i & (QUERIES - 1)];
                i += 1;
                let r = f.compact.contains(f.scope, black_box(n));
                debug_assert_eq!(r, want);
                r
            })
        });
        g.bench_function("dashmap_string_format", |b| {
            let mut i = 0;
            b.iter(|| {
                let n = queries[i & (QUERIES - 1)];
                i += 1;
                f.strings.contains_key(&string_key(SCOPE, black_box(n)))
            })
        });
        g.bench_function("dashmap_string_preformatted", |b| {
            let mut i = 0;
            b.iter(|| {
                let k = &keys[i & (QUERIES - 1)];
                i += 1;
                f.strings.contains_key(black_box(k.as_str()))
            })
        });
        g.bench_function("dashset_u32_u64", |b| {
            let mut i = 0;
            b.iter(|| {
                let n = queries[i & (QUERIES - 1)];
                i += 1;
                f.ints.contains(&(f.scope.as_u32(), black_box(n).as_u64()))
            })
        });
        g.finish();
    }
}

fn dispatcher_check(c: &mut Criterion, f: &Fixture) {
    // The dispatcher's question: program, tenant-wide, global (hit in global).
    let mut g = c.benchmark_group("is_suppressed_3_scopes_1M");
    let scopes = [f.program, f.tenant, f.scope];
    for (name, queries) in [("hit", &f.hits), ("miss", &f.misses)] {
        g.bench_function(BenchmarkId::new("compact_set", name), |b| {
            let mut i = 0;
            b.iter(|| {
                let n = queries[i & (QUERIES - 1)];
                i += 1;
                f.compact.is_suppressed(&scopes, black_box(n))
            })
        });
        g.bench_function(BenchmarkId::new("dashmap_string_format", name), |b| {
            let mut i = 0;
            b.iter(|| {
                let n = black_box(queries[i & (QUERIES - 1)]);
                i += 1;
                ["program:acme:12345", "tenant:acme", SCOPE]
                    .into_iter()
                    .find(|s| f.strings.contains_key(&string_key(s, n)))
            })
        });
    }
    g.finish();
}

fn writes(c: &mut Criterion, f: &Fixture) {
    // Single opt-outs into a 1M set: insert a new number, then remove it, so
    // the set stays the same size (merges included, amortised).
    let fresh = numbers(3, QUERIES, 3);
    let mut g = c.benchmark_group("insert_remove_1M");
    g.bench_function("compact_set", |b| {
        let mut i = 0;
        b.iter(|| {
            let n = fresh[i & (QUERIES - 1)];
            i += 1;
            f.compact.insert(f.program, n);
            f.compact.remove(f.program, n)
        })
    });
    g.bench_function("dashmap_string", |b| {
        let mut i = 0;
        b.iter(|| {
            let n = fresh[i & (QUERIES - 1)];
            i += 1;
            f.strings.insert(string_key("program:acme:12345", n), ());
            f.strings.remove(&string_key("program:acme:12345", n))
        })
    });
    g.finish();
}

// === memory report ===

fn per_entry(bytes: usize, entries: usize) -> f64 {
    bytes as f64 / entries as f64
}

fn memory_report() {
    println!("== suppression memory report ==");
    const BIG: usize = 10_000_000;
    let input = numbers(10, BIG, 4);
    let (r0, f0) = heap();
    let started = std::time::SystemTime::now();
    let set = SuppressionSet::new();
    let s = set.scope(SCOPE);
    set.bulk_insert(s, input.iter().copied());
    let took = started.elapsed().unwrap_or_default();
    let (r1, f1) = heap();
    println!(
        "compact_set       10M entries: memory_bytes {:.2} B/entry; allocator {:.2} B/entry \
         requested, {:.2} glibc; bulk_insert {:.2?}",
        per_entry(set.memory_bytes(), BIG),
        per_entry(r1 - r0, BIG),
        per_entry(f1 - f0, BIG),
        took,
    );
    // The same 10M spread over 1,000 program scopes.
    drop(set);
    let (r0, _) = heap();
    let set = SuppressionSet::new();
    for (i, chunk) in input.chunks(BIG / 1_000).enumerate() {
        let scope = set.scope(&format!("program:t{}:{i}", i % 10));
        set.bulk_insert(scope, chunk.iter().copied());
    }
    let (r1, _) = heap();
    println!(
        "compact_set       10M entries over 1,000 scopes: memory_bytes {:.2} B/entry; \
         allocator {:.2} B/entry",
        per_entry(set.memory_bytes(), BIG),
        per_entry(r1 - r0, BIG),
    );
    drop(set);
    drop(input);

    const SMALL: usize = 1_000_000;
    let input = numbers(11, SMALL, 5);
    let (r0, f0) = heap();
    let strings: DashMap<String, ()> = DashMap::new();
    for &n in &input {
        strings.insert(string_key(SCOPE, n), ());
    }
    let (r1, f1) = heap();
    println!(
        "dashmap_string     1M entries: {:.1} B/entry requested, {:.1} glibc \
         (key like {:?}); at 10M ≈ {:.2} GB",
        per_entry(r1 - r0, SMALL),
        per_entry(f1 - f0, SMALL),
        string_key(SCOPE, input[0]),
        per_entry(f1 - f0, SMALL) * BIG as f64 / 1e9,
    );
    drop(strings);
    let (r0, f0) = heap();
    let ints: DashSet<(u32, u64)> = DashSet::new();
    for &n in &input {
        ints.insert((0, n.as_u64()));
    }
    let (r1, f1) = heap();
    println!(
        "dashset_u32_u64    1M entries: {:.1} B/entry requested, {:.1} glibc",
        per_entry(r1 - r0, SMALL),
        per_entry(f1 - f0, SMALL),
    );
    drop(ints);
    println!();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quiet = args.iter().any(|a| a == "--test" || a == "--list")
        || std::env::var_os("SUPPRESSION_BENCH_NO_MEMORY").is_some();
    if !quiet {
        memory_report();
    }
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .configure_from_args();
    let f = fixture();
    lookups(&mut c, &f);
    dispatcher_check(&mut c, &f);
    writes(&mut c, &f);
    c.final_summary();
}
