use super::*;

fn n(v: u64) -> Msisdn {
    Msisdn::from_u64(v).unwrap()
}

/// Distinct deterministic pseudo-random US numbers (splitmix64); distinct
/// across seeds too, as the seed picks the last digit.
fn numbers(seed: u64, count: usize) -> Vec<Msisdn> {
    let mut s = seed;
    let mut seen = std::collections::HashSet::with_capacity(count);
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let v = 12_000_000_000 + (z % 799_999_999) * 10 + seed % 10;
        if seen.insert(v) {
            out.push(n(v));
        }
    }
    out
}

#[test]
fn mixer_is_a_bijection_and_inverts() {
    assert_eq!(MUL1.wrapping_mul(MUL1_INV) & NUMBER_MASK, 1);
    assert_eq!(MUL2.wrapping_mul(MUL2_INV) & NUMBER_MASK, 1);
    for v in [
        0,
        1,
        1_000_000,
        14_155_550_100,
        999_999_999_999_999,
        NUMBER_MASK,
    ] {
        let m = mix50(v);
        assert!(m <= NUMBER_MASK);
        assert_eq!(unmix50(m), v, "{v}");
    }
    for x in numbers(7, 10_000) {
        assert_eq!(unmix50(mix50(x.as_u64())), x.as_u64());
    }
}

#[test]
fn keys_decode_to_their_number() {
    let set = SuppressionSet::new();
    let s = set.scope("program:acme:12345");
    for x in numbers(3, 1000)
        .into_iter()
        .chain([n(1_000_000), n(999_999_999_999_999)])
    {
        let slot = Slot::of(x);
        let key = slot.key(s);
        assert_eq!(decode(slot.shard, key), Some(x));
        assert_eq!(scope_of(key), s.as_u32());
    }
}

#[test]
fn shards_are_balanced_for_sequential_numbers() {
    let mut counts = [0u32; SHARDS];
    for v in 14_155_550_000..14_155_550_000 + 256_000 {
        counts[Slot::of(n(v)).shard] += 1;
    }
    let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
    assert!(*min > 800 && *max < 1200, "min {min} max {max}");
}

#[test]
fn scopes_intern_to_stable_ids() {
    let set = SuppressionSet::new();
    let a = set.scope("a");
    let b = set.scope("b");
    assert_ne!(a, b);
    assert_eq!(set.scope("a"), a);
    assert_eq!(set.find_scope("b"), Some(b));
    assert_eq!(set.find_scope("c"), None);
    assert_eq!(set.scope_name(b).as_deref(), Some("b"));
    assert_eq!(a.as_u32(), 0);
    assert_eq!(b.as_u32(), 1);
}

#[test]
fn opt_out_in_one_program_does_not_suppress_another() {
    let set = SuppressionSet::new();
    let prog_a = set.scope("program:acme:11111");
    let prog_b = set.scope("program:acme:22222");
    let tenant = set.scope("tenant:acme");
    let global = set.scope("global");
    let alice = n(14_155_550_100);
    let bob = n(14_155_550_101);
    let carol = n(447_700_900_123);

    assert!(set.insert(prog_a, alice));
    assert!(set.contains(prog_a, alice));
    assert!(!set.contains(prog_b, alice));
    assert_eq!(set.is_suppressed(&[prog_b, tenant, global], alice), None);
    assert_eq!(
        set.is_suppressed(&[prog_a, tenant, global], alice),
        Some(prog_a)
    );

    assert!(set.insert(tenant, bob));
    assert_eq!(
        set.is_suppressed(&[prog_a, tenant, global], bob),
        Some(tenant)
    );
    assert_eq!(
        set.is_suppressed(&[prog_b, tenant, global], bob),
        Some(tenant)
    );
    assert_eq!(set.is_suppressed(&[prog_b], bob), None);

    assert!(set.insert(global, carol));
    assert_eq!(
        set.is_suppressed(&[prog_b, tenant, global], carol),
        Some(global)
    );
    // The first matching scope in the caller's order is reported.
    assert!(set.insert(prog_b, carol));
    assert_eq!(
        set.is_suppressed(&[prog_b, tenant, global], carol),
        Some(prog_b)
    );
    assert_eq!(set.is_suppressed(&[global, prog_b], carol), Some(global));
    assert_eq!(set.is_suppressed(&[], carol), None);

    assert_eq!(set.len(), 4);
    assert_eq!(set.len_scope(prog_a), 1);
    assert_eq!(set.len_scope(prog_b), 1);
    assert_eq!(set.len_scope(tenant), 1);
    assert_eq!(set.len_scope(global), 1);
}

#[test]
fn remove_and_re_add() {
    let set = SuppressionSet::new();
    let s = set.scope("p");
    let x = n(14_155_550_100);
    assert!(!set.remove(s, x));
    assert!(set.insert(s, x));
    assert!(!set.insert(s, x), "second insert is not new");
    assert!(set.remove(s, x));
    assert!(!set.contains(s, x));
    assert!(!set.remove(s, x));
    assert!(set.insert(s, x));
    assert!(set.contains(s, x));
    assert_eq!(set.len_scope(s), 1);

    // The same through base + tombstone (after a bulk merge).
    let y = n(14_155_550_200);
    assert_eq!(set.bulk_insert(s, [y]), 1);
    assert!(set.contains(s, y));
    assert!(set.remove(s, y));
    assert!(!set.contains(s, y));
    assert!(!set.remove(s, y));
    assert!(set.insert(s, y));
    assert!(!set.insert(s, y));
    assert!(set.contains(s, y));
    assert_eq!(set.len_scope(s), 2);
    assert_eq!(set.len(), 2);
}

#[test]
fn many_single_inserts_and_removes_cross_merges() {
    let set = SuppressionSet::new();
    let s = set.scope("p");
    let t = set.scope("t");
    let xs = numbers(11, 300_000);
    for &x in &xs {
        set.insert(s, x);
    }
    assert_eq!(set.len_scope(s), xs.len() as u64);
    // Every shard merged at least once (more than 512 pending each).
    assert!(set.shards.iter().all(|sh| !sh.0.read().base.is_empty()));
    for &x in xs.iter().step_by(2) {
        set.remove(s, x);
    }
    let removed: std::collections::HashSet<_> = xs.iter().step_by(2).copied().collect();
    for &x in &xs {
        assert_eq!(set.contains(s, x), !removed.contains(&x), "{x}");
        assert!(!set.contains(t, x));
    }
    assert_eq!(set.len_scope(s), (xs.len() - removed.len()) as u64);
    assert_eq!(set.iter_scope(s).count() as u64, set.len_scope(s));
}

#[test]
fn bulk_insert_merges_with_existing_entries_and_duplicates() {
    let set = SuppressionSet::new();
    let s = set.scope("p");
    let other = set.scope("q");
    let xs = numbers(5, 20_000);
    // Some already there as single inserts (delta), some bulk-loaded (base),
    // some removed (tombstones), one in another scope.
    for &x in &xs[..100] {
        assert!(set.insert(s, x));
    }
    assert_eq!(set.bulk_insert(s, xs[100..5_000].iter().copied()), 4_900);
    for &x in &xs[4_000..4_500] {
        assert!(set.remove(s, x));
    }
    set.insert(other, xs[10_000]);
    // Input with duplicates of itself and of existing entries.
    let mut input: Vec<Msisdn> = xs.clone();
    input.extend_from_slice(&xs[..3_000]);
    let added = set.bulk_insert(s, input);
    assert_eq!(added, 20_000 - 5_000 + 500);
    assert_eq!(set.len_scope(s), 20_000);
    assert_eq!(set.len_scope(other), 1);
    assert_eq!(set.len(), 20_001);
    for &x in &xs {
        assert!(set.contains(s, x));
    }
    assert!(set.contains(other, xs[10_000]));
    assert!(!set.contains(other, xs[0]));
    // Nothing pending after a bulk merge.
    for sh in set.shards.iter() {
        let sh = sh.0.read();
        assert!(sh.delta.is_empty() && sh.tomb.is_empty());
        assert!(sh.base.windows(2).all(|w| w[0] < w[1]));
    }
    assert_eq!(set.bulk_insert(s, xs.iter().copied()), 0);
    assert_eq!(set.bulk_insert(s, std::iter::empty()), 0);
}

#[test]
fn iter_scope_exports_exactly_the_scope() {
    let set = SuppressionSet::new();
    let a = set.scope("a");
    let b = set.scope("b");
    let xs = numbers(9, 5_000);
    set.bulk_insert(a, xs[..3_000].iter().copied());
    for &x in &xs[2_000..] {
        set.insert(b, x);
    }
    set.remove(a, xs[0]);
    let mut got: Vec<Msisdn> = set.iter_scope(a).collect();
    got.sort();
    let mut want: Vec<Msisdn> = xs[1..3_000].to_vec();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(set.iter_scope(b).count(), 3_000);
    let c = set.scope("c");
    assert_eq!(set.iter_scope(c).count(), 0);
}

#[test]
fn extreme_numbers_and_scope_ids() {
    let set = SuppressionSet::new();
    let s = set.scope("x");
    let lo = n(1_000_000);
    let hi = n(999_999_999_999_999);
    assert!(set.insert(s, lo));
    assert!(set.insert(s, hi));
    assert!(set.contains(s, lo) && set.contains(s, hi));
    let mut all: Vec<_> = set.iter_scope(s).collect();
    all.sort();
    assert_eq!(all, vec![lo, hi]);
}

#[test]
fn foreign_scope_ids_are_counted_not_lost() {
    let other = SuppressionSet::new();
    for i in 0..10 {
        other.scope(&format!("s{i}"));
    }
    let foreign = other.scope("s9");
    let set = SuppressionSet::new();
    assert!(set.insert(foreign, n(14_155_550_100)));
    assert!(set.contains(foreign, n(14_155_550_100)));
    assert_eq!(set.len_scope(foreign), 1);
    assert_eq!(set.scope_name(foreign), None);
}

#[test]
fn memory_per_entry_is_bounded() {
    let set = SuppressionSet::new();
    let empty = set.memory_bytes();
    assert!(empty < 64 * 1024, "{empty}");
    let s = set.scope("global");
    let xs = numbers(1, 1_000_000);
    set.bulk_insert(s, xs.iter().copied());
    let per = set.memory_bytes() as f64 / set.len() as f64;
    eprintln!("bulk: {per:.2} bytes per entry");
    assert!((8.0..9.0).contains(&per), "bulk: {per:.2} bytes per entry");
    // Steady single inserts leave pending deltas of at most 1/16 of a shard.
    for x in numbers(2, 50_000) {
        set.insert(s, x);
    }
    let per = set.memory_bytes() as f64 / set.len() as f64;
    eprintln!("with deltas: {per:.2} bytes per entry");
    assert!(per < 10.5, "with deltas: {per:.2} bytes per entry");
}

#[test]
fn concurrent_readers_and_a_writer() {
    let set = SuppressionSet::new();
    let s = set.scope("p");
    let stable = numbers(21, 20_000);
    set.bulk_insert(s, stable.iter().copied());
    // Enough churn that single inserts also merge shards (> 512 pending each).
    let churn = numbers(22, 150_000);
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let readers: Vec<_> = (0..2)
            .map(|r| {
                let (set, stable, stop) = (&set, &stable, &stop);
                scope.spawn(move || {
                    let mut checks = 0u64;
                    let mut i = r;
                    while !stop.load(Ordering::Relaxed) || checks < 10_000 {
                        let x = stable[i % stable.len()];
                        assert!(set.contains(s, x), "lost {x} during writes");
                        assert_eq!(set.is_suppressed(&[s], x), Some(s));
                        i += 7;
                        checks += 1;
                    }
                    checks
                })
            })
            .collect();
        for round in 0..2 {
            for &x in &churn {
                set.insert(s, x);
            }
            for &x in &churn {
                set.remove(s, x);
            }
            set.bulk_insert(s, churn[..1000].iter().copied());
            for &x in &churn[..1000] {
                set.remove(s, x);
            }
            let _ = round;
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            assert!(r.join().unwrap() >= 10_000);
        }
    });
    assert_eq!(set.len_scope(s), 20_000);
    for &x in &churn {
        assert!(!set.contains(s, x) || stable.contains(&x));
    }
}
