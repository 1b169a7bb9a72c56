//! One shard of the attribution table: a `u64` key → `u32` tag map in 12
//! bytes a slot.
//!
//! Hand-written rather than a `HashMap` because the table holds one entry
//! per (program, number) delivered in the attribution window (10 M numbers
//! in a week is an ordinary brand), which made it a third of a busy
//! gateway's memory. A `HashMap<u64, (u32, u32)>` takes a 16-byte slot and
//! a control byte in a power-of-two table between 44% and 87% full (28.5
//! bytes per entry at 10 M, `cargo bench --bench queue_memory`); here a
//! slot is 12 bytes and the table grows by 15% at 85% full, so it stays
//! between 74% and 85% full as it grows (a shard re-laid at each growth is
//! a 64th of the table: 2 MB at 10 M entries); [`Table::retain`] shrinks it
//! once under 42.5%.
//!
//! Linear probing over slots of `[key low, key high, tag]` (`u32`s, so the
//! slot has no padding); key 0 marks an empty slot, so 0 is never a key. A
//! key's home is its hash under a random seed per table (numbers chosen to
//! pile into one run would have to guess it) scaled to the capacity, which
//! need not be a power of two. Deletion shifts the rest of the run back
//! (no tombstones), so a long run of inserts and removals never degrades.

use std::hash::BuildHasher;

/// Slots taken at most, in 1/100ths: beyond it the table grows.
const MAX_LOAD: usize = 85;
/// How the capacity grows, in 1/100ths.
const GROWTH: usize = 115;
/// The smallest table.
const MIN_CAPACITY: usize = 16;

type Slot = [u32; 3];
const EMPTY: Slot = [0; 3];

/// A `u64` (non-zero) → `u32` map (see the module doc).
#[derive(Debug, Default)]
pub(super) struct Table {
    slots: Box<[Slot]>,
    len: usize,
    hasher: foldhash::fast::RandomState,
}

fn key_of(s: &Slot) -> u64 {
    u64::from(s[0]) | (u64::from(s[1]) << 32)
}

fn slot(key: u64, tag: u32) -> Slot {
    [key as u32, (key >> 32) as u32, tag]
}

impl Table {
    /// Entries held.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Bytes the slots take.
    #[cfg(test)]
    pub(super) fn bytes(&self) -> usize {
        self.slots.len() * size_of::<Slot>()
    }

    /// Where `key`'s probe starts.
    fn home(&self, key: u64) -> usize {
        let h = self.hasher.hash_one(key);
        ((u128::from(h) * self.slots.len() as u128) >> 64) as usize
    }

    fn next(&self, i: usize) -> usize {
        if i + 1 == self.slots.len() { 0 } else { i + 1 }
    }

    /// `key`'s slot, or the empty slot that ends its run.
    fn find(&self, key: u64) -> (usize, bool) {
        let mut i = self.home(key);
        loop {
            let s = &self.slots[i];
            if *s == EMPTY {
                return (i, false);
            }
            if key_of(s) == key {
                return (i, true);
            }
            i = self.next(i);
        }
    }

    /// Sets `key` (not 0) to `tag`; the tag it had.
    pub(super) fn insert(&mut self, key: u64, tag: u32) -> Option<u32> {
        debug_assert_ne!(key, 0, "0 marks an empty slot");
        if key == 0 {
            return None;
        }
        let (mut i, found) = if self.slots.is_empty() {
            (0, false)
        } else {
            self.find(key)
        };
        if found {
            return Some(std::mem::replace(&mut self.slots[i][2], tag));
        }
        if (self.len + 1) * 100 > self.slots.len() * MAX_LOAD {
            self.resize((self.slots.len() * GROWTH / 100).max(MIN_CAPACITY));
            // Re-laid: its empty slot moved.
            i = self.find(key).0;
        }
        self.slots[i] = slot(key, tag);
        self.len += 1;
        None
    }

    /// Removes `key`; its tag.
    pub(super) fn remove(&mut self, key: u64) -> Option<u32> {
        if self.len == 0 || key == 0 {
            return None;
        }
        let (i, found) = self.find(key);
        found.then(|| self.remove_at(i))
    }

    /// Empties slot `i` (taken) and shifts back the entries after it in
    /// its run that may sit earlier; its tag.
    fn remove_at(&mut self, mut hole: usize) -> u32 {
        let tag = self.slots[hole][2];
        let cap = self.slots.len();
        // Distance from `a` forward to `b`, around the end.
        let dist = |a: usize, b: usize| if b >= a { b - a } else { b + cap - a };
        let mut j = hole;
        loop {
            j = self.next(j);
            let s = self.slots[j];
            if s == EMPTY {
                break;
            }
            let home = self.home(key_of(&s));
            // The hole is on `s`'s probe path from its home: move it there.
            if dist(home, hole) < dist(home, j) {
                self.slots[hole] = s;
                hole = j;
            }
        }
        self.slots[hole] = EMPTY;
        self.len -= 1;
        tag
    }

    /// Keeps the entries `keep` says yes to; how many it dropped. Shrinks
    /// the table when it ends up under half its growth threshold.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(u64, u32) -> bool) -> usize {
        let before = self.len;
        let mut i = 0;
        while i < self.slots.len() {
            let s = self.slots[i];
            if s == EMPTY || keep(key_of(&s), s[2]) {
                i += 1;
            } else {
                // An entry shifted into `i` is looked at next; one shifted
                // from the start into the end is looked at twice (`keep` is
                // asked again, and says the same).
                self.remove_at(i);
            }
        }
        if self.len * 100 * 2 < self.slots.len() * MAX_LOAD {
            let fit = self.len * 100 / MAX_LOAD * GROWTH / 100;
            self.resize(fit.max(MIN_CAPACITY).min(self.slots.len()));
        }
        before - self.len
    }

    /// Every entry, in no order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        self.slots
            .iter()
            .filter(|s| **s != EMPTY)
            .map(|s| (key_of(s), s[2]))
    }

    fn resize(&mut self, capacity: usize) {
        let capacity = capacity.max(self.len + 1);
        if capacity == self.slots.len() {
            return;
        }
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; capacity].into_boxed_slice());
        for s in old.iter().filter(|s| **s != EMPTY) {
            let (i, _) = self.find(key_of(s));
            self.slots[i] = *s;
        }
    }
}

#[cfg(test)]
mod tests;
