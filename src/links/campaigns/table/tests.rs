//! The table against `std`'s map, and its memory.

use super::*;
use std::collections::HashMap;

/// SplitMix64.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Every slot's entry is reachable from its home without crossing an
/// empty slot, and the count agrees.
fn check(t: &Table) {
    let mut n = 0;
    for (i, s) in t.slots.iter().enumerate() {
        if *s == EMPTY {
            continue;
        }
        n += 1;
        let mut j = t.home(key_of(s));
        while j != i {
            assert_ne!(t.slots[j], EMPTY, "a hole between an entry and its home");
            j = t.next(j);
        }
    }
    assert_eq!(n, t.len);
}

#[test]
fn agrees_with_a_hash_map_through_inserts_removals_and_sweeps() {
    let mut t = Table::default();
    let mut m: HashMap<u64, u32> = HashMap::new();
    // Few distinct keys, so removals and updates hit; runs wrap the end
    // of small tables.
    for step in 0..200_000u64 {
        let r = mix(step);
        let key = 1 + (r >> 8) % 5_000;
        match r % 8 {
            0..=4 => assert_eq!(t.insert(key, r as u32), m.insert(key, r as u32)),
            5 | 6 => assert_eq!(t.remove(key), m.remove(&key)),
            _ => {
                if step % 1_000 == 7 {
                    let cut = (r >> 32) as u32;
                    let dropped = t.retain(|_, tag| tag < cut);
                    let before = m.len();
                    m.retain(|_, tag| *tag < cut);
                    assert_eq!(dropped, before - m.len());
                    check(&t);
                }
            }
        }
        assert_eq!(t.len(), m.len());
    }
    check(&t);
    let mut got: Vec<_> = t.iter().collect();
    let mut want: Vec<_> = m.into_iter().collect();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want);
    assert_eq!(t.remove(0), None);
}

#[test]
fn a_full_sweep_gives_the_memory_back() {
    let mut t = Table::default();
    for k in 1..=100_000u64 {
        t.insert(k, 1);
    }
    // 12 bytes a slot, between 74% and 85% full.
    let per_entry = t.bytes() as f64 / t.len() as f64;
    assert!(
        (14.0..=16.5).contains(&per_entry),
        "{per_entry} B per entry"
    );
    assert_eq!(t.retain(|k, _| k <= 1_000), 99_000);
    assert!(t.bytes() < 1_000 * 20, "{} bytes left", t.bytes());
    check(&t);
    assert_eq!(t.retain(|_, _| false), 1_000);
    assert_eq!((t.len(), t.iter().count()), (0, 0));
    assert_eq!(t.insert(5, 9), None);
    assert_eq!(t.remove(5), Some(9));
}
