//! The dedupe index: `(tenant, client_ref) → message id` for the dedupe
//! window, or for the last `ingest.dedupe_max_keys` keys when that is
//! shorter, in about 21 bytes per key.
//!
//! Hand-written rather than a `HashMap` because it is most of a busy
//! gateway's memory: with a hash map and an order queue beside it a key
//! took ~110 bytes (10 M keys, the default bound, 1.1 GB); here it takes a
//! 16-byte entry in a ring kept in arrival order plus a 4-byte slot of an
//! open-addressing index at most three quarters full
//! (`cargo bench --bench queue_memory`).
//!
//! - **Keys** are 96 bits of a 128-bit keyed fingerprint (SipHash under a
//!   secret per-node key, twice), so upstream cannot make two keys collide
//!   and a random collision among 10 M keys has odds of about 10⁻¹⁵.
//! - **The ring** holds entries oldest first; the oldest go when the
//!   window passes or the shard is full (counted in
//!   `sluice_dedupe_evicted_total`). Times are kept in whole seconds and
//!   rounded up, so a key is never forgotten early.
//! - **Runs.** Entries pushed one after another share a run: the journal
//!   segment of their Accept records, a base id and a base second, kept
//!   once. An entry keeps its id and time as offsets from those (20 and 12
//!   bits), so ids and times stay exact. A run ends when the segment
//!   changes or an offset would not fit: after about a million ids (20 s
//!   at 50,000 messages per second) or 67 minutes. At 50,000 messages per
//!   second that is a 32-byte run per a few hundred keys; at the worst
//!   (keys restored in no order of ids or times, each a run of its own) a
//!   key costs a 32-byte run more, and up to four times that until the
//!   list of runs shrinks behind them.
//! - **The index** is linear probing over `u32` slots: the entry's place
//!   in the ring and 8 bits of its fingerprint, so a probe past another
//!   key rarely reads the ring. Deletion shifts the run back (no
//!   tombstones), so a long run of inserts and evictions never degrades it.
//! - **Many small shards** (1,024): a shard that grows re-lays its ring and
//!   index at once; small ones spread that work thinly (with 32 big shards,
//!   rehashes stalled ingest for tens of ms at every doubling).
//!
//! When compaction deletes the segment of an entry's Accept record, the
//! entry is appended to the dedupe log once (see
//! [`Dedupe::take_unlogged_before`]), never rewritten per cycle.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::model::MessageId;

/// Shards of the index (see the module doc).
pub(crate) const DEDUPE_SHARDS: usize = 1024;
/// The most entries one shard's ring holds (a place must fit in 24 bits).
const MOST_PER_SHARD: usize = (1 << 24) - 2;
/// A shard's first ring.
const FIRST_CAPACITY: usize = 16;
/// Segment of keys already in the dedupe log.
const LOGGED: u64 = u64::MAX;
/// Bits of an entry's id offset from its run's base id.
const ID_BITS: u32 = 20;
/// Bits of an entry's time offset (seconds) from its run's base second.
const TIME_BITS: u32 = 12;
/// A run's base id is this far below its first entry's, so that ids taken
/// a little out of order (batches race for the shard lock) still join it.
const ID_SLACK: u64 = 1 << 16;
/// A run's base second is this far before its first entry's, likewise.
const TIME_SLACK_S: u32 = 64;

/// One remembered key, 16 bytes: 96 bits of its fingerprint, and its
/// message id and time as offsets from its run's ([`Run`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Entry {
    fp: [u32; 3],
    /// The id offset in the high [`ID_BITS`], the time offset in the low
    /// [`TIME_BITS`].
    offsets: u32,
}

/// What entries pushed one after another share, kept once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    /// Sequence number of its first entry.
    first: u64,
    /// The journal segment of their Accept records ([`LOGGED`]: they came
    /// from the dedupe log).
    segment: u64,
    /// Their ids less this are their id offsets.
    base_id: u64,
    /// Their times (Unix seconds) less this are their time offsets.
    base_s: u32,
}

impl Run {
    /// A run starting at entry `first` with an entry for `id` at `at_s`.
    fn new(first: u64, segment: u64, id: MessageId, at_s: u32) -> Run {
        Run {
            first,
            segment,
            base_id: id.0.saturating_sub(ID_SLACK),
            base_s: at_s.saturating_sub(TIME_SLACK_S),
        }
    }

    /// An entry's offsets for `id` accepted in second `at_s`, when both fit.
    fn offsets(&self, id: MessageId, at_s: u32) -> Option<u32> {
        let id_offset =
            id.0.checked_sub(self.base_id)
                .filter(|&d| d < 1 << ID_BITS)?;
        let s_offset = at_s
            .checked_sub(self.base_s)
            .filter(|&d| d < 1 << TIME_BITS)?;
        Some(((id_offset as u32) << TIME_BITS) | s_offset)
    }

    /// The id of an entry with `offsets`.
    fn id(&self, offsets: u32) -> MessageId {
        MessageId(self.base_id + u64::from(offsets >> TIME_BITS))
    }

    /// The latest ms an entry with `offsets` may have been accepted at
    /// (times are kept in whole seconds: counted from the end of its
    /// second, it never expires early).
    fn at_ms(&self, offsets: u32) -> u64 {
        (u64::from(self.base_s) + u64::from(offsets & ((1 << TIME_BITS) - 1))) * 1000 + 999
    }
}

/// Whole Unix seconds of `at_ms`, rounded down.
fn seconds(at_ms: u64) -> u32 {
    u32::try_from(at_ms / 1000).unwrap_or(u32::MAX)
}

/// The 96 bits of a fingerprint that are kept: its high 64 and the 32 below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    hi: u64,
    mid: u32,
}

impl Key {
    fn of(fp: u128) -> Key {
        Key {
            hi: (fp >> 64) as u64,
            mid: (fp >> 32) as u32,
        }
    }

    /// The fingerprint as the dedupe log keeps it (the dropped bits zero).
    fn fingerprint(self) -> u128 {
        (u128::from(self.hi) << 64) | (u128::from(self.mid) << 32)
    }

    /// 8 bits `home` does not use (it uses `mid`'s top bits, the shard
    /// `hi`'s low ones), so keys of one probe run rarely share a tag.
    fn tag(self) -> u32 {
        (self.hi >> 56) as u32
    }
}

impl Entry {
    fn new(key: Key, offsets: u32) -> Entry {
        Entry {
            fp: [key.hi as u32, (key.hi >> 32) as u32, key.mid],
            offsets,
        }
    }

    fn key(&self) -> Key {
        Key {
            hi: u64::from(self.fp[0]) | (u64::from(self.fp[1]) << 32),
            mid: self.fp[2],
        }
    }
}

/// One shard: a ring of entries in arrival order and an index over it.
#[derive(Debug, Default)]
struct Shard {
    /// The ring (its length is its capacity).
    ring: Vec<Entry>,
    /// Place of the oldest entry in `ring`.
    head: usize,
    /// Entries in the ring, forgotten ones included.
    len: usize,
    /// Sequence number of the oldest entry (counts every entry pushed).
    head_seq: u64,
    /// Index slots: 0 empty, else `(place + 1) << 8 | tag`.
    slots: Vec<u32>,
    /// Keys in the index.
    live: usize,
    /// The runs of the entries in the ring, oldest first (the first may
    /// begin before the oldest entry: it goes once the next one begins;
    /// left when the ring empties, it is dropped at the next push).
    runs: VecDeque<Run>,
    /// Entries before this sequence number are in the dedupe log (or were
    /// forgotten, or came from it).
    logged: u64,
}

impl Shard {
    fn home(&self, key: Key) -> usize {
        ((u64::from(key.mid) * self.slots.len() as u64) >> 32) as usize
    }

    fn next(&self, i: usize) -> usize {
        if i + 1 == self.slots.len() { 0 } else { i + 1 }
    }

    fn slot_of(place: usize, key: Key) -> u32 {
        (((place + 1) as u32) << 8) | key.tag()
    }

    fn place(slot: u32) -> usize {
        (slot >> 8) as usize - 1
    }

    /// The index slot holding `key`, if remembered.
    fn find(&self, key: Key) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let tag = key.tag();
        let mut i = self.home(key);
        loop {
            let s = self.slots[i];
            if s == 0 {
                return None;
            }
            if s & 0xff == tag && self.ring[Shard::place(s)].key() == key {
                return Some(i);
            }
            i = self.next(i);
        }
    }

    /// The index slot pointing at ring place `place` (whose entry has
    /// `key`), if it is still remembered (not forgotten).
    fn find_place(&self, key: Key, place: usize) -> Option<usize> {
        let want = Shard::slot_of(place, key);
        let mut i = self.home(key);
        loop {
            let s = self.slots[i];
            if s == 0 {
                return None;
            }
            if s == want {
                return Some(i);
            }
            i = self.next(i);
        }
    }

    /// Empties slot `i`, shifting back the entries of its run that may
    /// move (no tombstones).
    fn remove_slot(&mut self, mut i: usize) {
        let mut j = i;
        loop {
            j = self.next(j);
            let s = self.slots[j];
            if s == 0 {
                break;
            }
            let home = self.home(self.ring[Shard::place(s)].key());
            // The entry at `j` stays when its home is cyclically in (i, j].
            let stays = if i <= j {
                i < home && home <= j
            } else {
                i < home || home <= j
            };
            if !stays {
                self.slots[i] = s;
                i = j;
            }
        }
        self.slots[i] = 0;
        self.live -= 1;
    }

    fn insert_slot(&mut self, key: Key, place: usize) {
        let mut i = self.home(key);
        while self.slots[i] != 0 {
            i = self.next(i);
        }
        self.slots[i] = Shard::slot_of(place, key);
        self.live += 1;
    }

    fn place_of(&self, seq: u64) -> usize {
        (self.head + (seq - self.head_seq) as usize) % self.ring.len()
    }

    fn seq_at(&self, place: usize) -> u64 {
        let past_head = if place >= self.head {
            place - self.head
        } else {
            place + self.ring.len() - self.head
        };
        self.head_seq + past_head as u64
    }

    /// The run of the entry numbered `seq`, which is in the ring.
    fn run_of(&self, seq: u64) -> Run {
        // Most often the newest (a retry comes soon after its first try).
        if let Some(&last) = self.runs.back().filter(|r| r.first <= seq) {
            return last;
        }
        let i = self.runs.partition_point(|r| r.first <= seq);
        self.runs[i.saturating_sub(1)]
    }

    /// The message id of the entry at ring place `place`.
    fn id_at(&self, place: usize) -> MessageId {
        self.run_of(self.seq_at(place)).id(self.ring[place].offsets)
    }

    /// Drops the oldest entry; true when it was still remembered.
    fn pop(&mut self) -> bool {
        if self.len == 0 {
            return false;
        }
        let place = self.head;
        let key = self.ring[place].key();
        let was_live = match self.find_place(key, place) {
            Some(i) => {
                self.remove_slot(i);
                true
            }
            None => false,
        };
        self.head = (self.head + 1) % self.ring.len();
        self.len -= 1;
        self.head_seq += 1;
        self.logged = self.logged.max(self.head_seq);
        while self.runs.len() > 1 && self.runs[1].first <= self.head_seq {
            self.runs.pop_front();
            if self.runs.capacity() > 64 && self.runs.len() * 4 < self.runs.capacity() {
                self.runs.shrink_to(self.runs.len() * 2);
            }
        }
        was_live
    }

    /// Appends an entry for `key` (the ring has room): message `id`,
    /// accepted at `at_ms`, its Accept record in segment `segment`.
    fn push(&mut self, key: Key, id: MessageId, at_ms: u64, segment: u64) {
        if self.len == 0 {
            self.runs.clear();
        }
        let seq = self.head_seq + self.len as u64;
        let at_s = seconds(at_ms);
        let joined = self.runs.back().filter(|r| r.segment == segment);
        let offsets = match joined.and_then(|r| r.offsets(id, at_s)) {
            Some(offsets) => offsets,
            None => {
                let run = Run::new(seq, segment, id, at_s);
                self.runs.push_back(run);
                // Within the slack of the run's bases.
                run.offsets(id, at_s).unwrap_or_default()
            }
        };
        let place = (self.head + self.len) % self.ring.len();
        self.ring[place] = Entry::new(key, offsets);
        self.len += 1;
        self.insert_slot(key, place);
    }

    /// Points the remembered entry at ring place `place` at message `id`
    /// (a restore of a key already known), keeping the later of its time
    /// and `at_ms`. When its run cannot hold them, returns that later time
    /// (ms) and changes nothing.
    fn rewrite(&mut self, place: usize, id: MessageId, at_ms: u64) -> Result<(), u64> {
        let run = self.run_of(self.seq_at(place));
        let at_ms = at_ms.max(run.at_ms(self.ring[place].offsets));
        let offsets = run.offsets(id, seconds(at_ms)).ok_or(at_ms)?;
        self.ring[place].offsets = offsets;
        Ok(())
    }

    /// Re-lays the ring with room for `capacity` entries, oldest at place
    /// 0, and rebuilds the index for it (forgotten entries stay forgotten).
    fn grow(&mut self, capacity: usize) {
        let mut ring = vec![Entry::default(); capacity];
        let old = self.ring.len().max(1);
        for (k, e) in ring.iter_mut().enumerate().take(self.len) {
            *e = self.ring[(self.head + k) % old];
        }
        let slots = std::mem::take(&mut self.slots);
        let head = self.head;
        self.ring = ring;
        self.head = 0;
        self.slots = vec![0; capacity + capacity / 3 + 1];
        self.live = 0;
        for s in slots.into_iter().filter(|&s| s != 0) {
            let place = (Shard::place(s) + old - head) % old;
            let key = self.ring[place].key();
            self.insert_slot(key, place);
        }
    }

    /// Makes room for one more entry: grows the ring up to `cap` entries,
    /// then drops the oldest. Returns how many remembered keys went.
    fn make_room(&mut self, cap: usize) -> u64 {
        let cap = cap.clamp(1, MOST_PER_SHARD);
        let mut evicted = 0;
        while self.len >= cap {
            evicted += u64::from(self.pop());
        }
        if self.len == self.ring.len() {
            let capacity = (self.ring.len() * 2).max(FIRST_CAPACITY).min(cap);
            self.grow(capacity.max(self.len + 1));
        }
        evicted
    }

    /// [`Dedupe::take_unlogged`] for this shard, `held` the time of the
    /// oldest hold: appends the keys to `out`.
    fn take_unlogged(
        &mut self,
        segment: u64,
        older_than_ms: u64,
        held: u64,
        out: &mut Vec<(u128, u64, u64)>,
    ) {
        let end = self.head_seq + self.len as u64;
        while self.logged < end {
            let seq = self.logged;
            let run = self.run_of(seq);
            let place = self.place_of(seq);
            let e = self.ring[place];
            let at_ms = run.at_ms(e.offsets);
            if run.segment != LOGGED
                && ((run.segment >= segment && at_ms >= older_than_ms) || at_ms >= held)
            {
                break;
            }
            if run.segment != LOGGED && self.find_place(e.key(), place).is_some() {
                out.push((e.key().fingerprint(), run.id(e.offsets).0, at_ms));
            }
            self.logged += 1;
        }
    }

    /// Drops entries accepted longer than `window_ms` before `now_ms`.
    fn expire(&mut self, window_ms: u64, now_ms: u64) {
        while self.len > 0 {
            // The first run is the oldest entry's.
            let at_ms = self.runs[0].at_ms(self.ring[self.head].offsets);
            if at_ms + window_ms >= now_ms {
                break;
            }
            self.pop();
        }
    }
}

/// Remembers `(tenant, client_ref) → message id` for the dedupe window, or
/// for the last `max_keys` keys when that is shorter (see the module doc).
#[derive(Debug)]
pub struct Dedupe {
    shards: Box<[Mutex<Shard>]>,
    window_ms: u64,
    /// Most keys per shard.
    shard_cap: usize,
    evicted: metrics::Counter,
    /// Age of the oldest batch held ([`Dedupe::hold`]), as the last
    /// [`Dedupe::take_unlogged`] saw it.
    oldest_hold: metrics::Gauge,
    key: [u64; 2],
    /// Batches whose keys are taken but whose messages are neither durable
    /// nor refused yet, by the time their keys were taken (ms → batches).
    /// No key taken at or after the oldest goes to the dedupe log: a key
    /// logged before its message is durable would, after a crash, answer a
    /// retry as a duplicate of a message never stored.
    pending: Mutex<std::collections::BTreeMap<u64, u32>>,
}

/// A batch's keys held back from the dedupe log until it is dropped (when
/// the batch's messages are durable, or refused and their keys forgotten):
/// [`Dedupe::hold`].
#[derive(Debug)]
#[must_use = "the keys are held back only while this lives"]
pub struct Pending {
    dedupe: Arc<Dedupe>,
    at_ms: u64,
}

impl Pending {
    /// When the hold was taken (Unix ms): the time of the batch's keys.
    pub fn at_ms(&self) -> u64 {
        self.at_ms
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let mut pending = self.dedupe.pending.lock();
        if let std::collections::btree_map::Entry::Occupied(mut e) = pending.entry(self.at_ms) {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
            }
        }
    }
}

impl Dedupe {
    /// An empty index remembering keys for `window`, fingerprinting with `key`.
    pub fn new(window: Duration, key: [u8; 16]) -> Dedupe {
        Dedupe {
            shards: (0..DEDUPE_SHARDS).map(|_| Mutex::default()).collect(),
            window_ms: window.as_millis() as u64,
            shard_cap: MOST_PER_SHARD,
            evicted: metrics::counter!("sluice_dedupe_evicted_total"),
            oldest_hold: metrics::gauge!("sluice_dedupe_oldest_hold_seconds"),
            pending: Mutex::default(),
            key: [
                u64::from_le_bytes(key[..8].try_into().expect("8 bytes")),
                u64::from_le_bytes(key[8..].try_into().expect("8 bytes")),
            ],
        }
    }

    /// Remembers at most about `max_keys` keys (the oldest go first).
    #[must_use]
    pub fn with_max_keys(mut self, max_keys: usize) -> Dedupe {
        self.shard_cap = max_keys.div_ceil(DEDUPE_SHARDS).clamp(1, MOST_PER_SHARD);
        self
    }

    /// Most keys remembered.
    pub fn max_keys(&self) -> usize {
        self.shard_cap.saturating_mul(DEDUPE_SHARDS)
    }

    /// The dedupe window, ms.
    pub fn window_ms(&self) -> u64 {
        self.window_ms
    }

    /// The fingerprint of a key.
    pub fn fingerprint(&self, tenant: &str, client_ref: &str) -> u128 {
        use std::hash::{Hash, Hasher};
        #[allow(deprecated)] // SipHash-2-4 with our own key: exactly what is wanted here
        let half = |salt: u8| {
            let mut h = std::hash::SipHasher::new_with_keys(self.key[0], self.key[1]);
            salt.hash(&mut h);
            tenant.hash(&mut h);
            client_ref.hash(&mut h);
            h.finish()
        };
        (u128::from(half(1)) << 64) | u128::from(half(2))
    }

    fn shard(&self, key: Key) -> &Mutex<Shard> {
        &self.shards[(key.hi as usize) % DEDUPE_SHARDS]
    }

    fn count_evicted(&self, n: u64) {
        if n > 0 {
            self.evicted.increment(n);
        }
    }

    /// Returns the id already given to this key, or records `id` for it
    /// (its Accept record goes into journal segment `segment`).
    pub fn check_or_insert(
        &self,
        tenant: &Arc<str>,
        client_ref: &str,
        id: MessageId,
        now_ms: u64,
        segment: u64,
    ) -> Result<(), MessageId> {
        let key = Key::of(self.fingerprint(tenant, client_ref));
        let mut s = self.shard(key).lock();
        s.expire(self.window_ms, now_ms);
        if let Some(i) = s.find(key) {
            return Err(s.id_at(Shard::place(s.slots[i])));
        }
        let evicted = s.make_room(self.shard_cap);
        s.push(key, id, now_ms, segment);
        drop(s);
        self.count_evicted(evicted);
        Ok(())
    }

    /// Restores a key (ignored when outside the window); `segment` is
    /// `None` for keys already in the dedupe log.
    ///
    /// A time past `now_ms` is taken as `now_ms`. A key restored again
    /// (from the dedupe log, then from the journal) takes the new id and
    /// keeps the later time. When its entry's run cannot hold them (an id
    /// below the run's base or about a million above it, a time about an
    /// hour after the run began), the key gets a new entry, and the old
    /// one, forgotten, still counts against the bound until it is evicted.
    /// A key already logged whose id or time changes in place is not
    /// logged again.
    pub fn restore(&self, fp: u128, id: MessageId, at_ms: u64, now_ms: u64, segment: Option<u64>) {
        if at_ms.saturating_add(self.window_ms) < now_ms {
            return;
        }
        // A time past now (the clock stepped back across a restart, or a
        // damaged file) is taken as now: kept, it would hold back every
        // later key of its shard from the dedupe log, and from expiry.
        let mut at_ms = at_ms.min(now_ms);
        let key = Key::of(fp);
        let mut s = self.shard(key).lock();
        if let Some(i) = s.find(key) {
            let place = Shard::place(s.slots[i]);
            match s.rewrite(place, id, at_ms) {
                Ok(()) => return,
                // Its run cannot hold them: pushed again, the old entry
                // forgotten (it still takes its place until it is evicted).
                Err(later_ms) => at_ms = later_ms,
            }
            s.remove_slot(i);
        }
        let evicted = s.make_room(self.shard_cap);
        s.push(key, id, at_ms, segment.unwrap_or(LOGGED));
        drop(s);
        self.count_evicted(evicted);
    }

    /// Forgets a key (its message could not be stored).
    pub fn forget(&self, tenant: &Arc<str>, client_ref: &str) {
        let key = Key::of(self.fingerprint(tenant, client_ref));
        let mut s = self.shard(key).lock();
        if let Some(i) = s.find(key) {
            s.remove_slot(i);
        }
    }

    /// Holds back from the dedupe log the keys a batch takes from now on
    /// (at [`Pending::at_ms`] or later) while the returned guard lives. The
    /// clock is read under the lock [`Dedupe::take_unlogged`] reads the
    /// holds with: a hold it did not see is younger than its cut-off.
    pub fn hold(self: &Arc<Self>) -> Pending {
        let mut pending = self.pending.lock();
        let at_ms = crate::model::now_ms();
        *pending.entry(at_ms).or_default() += 1;
        Pending {
            dedupe: self.clone(),
            at_ms,
        }
    }

    /// Keys whose Accept record is in a journal segment below `segment`, or
    /// that were accepted before `older_than_ms` (their Accept is durable by
    /// then, or failed and was forgotten), and that are not yet in the
    /// dedupe log, as (fingerprint, id, accepted at ms); marks them logged.
    /// Called every second (a steady trickle) and by compaction before it
    /// deletes segments. Never a key taken at or after the oldest batch
    /// still held ([`Dedupe::hold`]), whatever its segment: that batch's
    /// messages are not durable yet (if they become so, compaction carries
    /// them, keys and all, while they are live).
    pub fn take_unlogged(&self, segment: u64, older_than_ms: u64) -> Vec<(u128, u64, u64)> {
        let held = self
            .pending
            .lock()
            .first_key_value()
            .map_or(u64::MAX, |(&at, _)| at);
        // A batch held for long (a journal or Redis stalled) keeps every
        // later key back too; they go in one burst once it ends.
        let age_ms = crate::model::now_ms().saturating_sub(held);
        self.oldest_hold.set(age_ms as f64 / 1000.0);
        let mut out = Vec::new();
        for s in self.shards.iter() {
            s.lock()
                .take_unlogged(segment, older_than_ms, held, &mut out);
        }
        out
    }

    /// [`Dedupe::take_unlogged`] by segment only.
    pub fn take_unlogged_before(&self, segment: u64) -> Vec<(u128, u64, u64)> {
        self.take_unlogged(segment, 0)
    }

    /// Keys remembered.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().live).sum()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// One entry of the model's queue.
    struct Remembered {
        key: Key,
        id: u64,
        at_ms: u64,
        segment: u64,
        live: bool,
    }

    /// The index as a plain map beside a queue in arrival order, entry by
    /// entry (forgotten ones stay in the queue, as in the ring), and how
    /// far the dedupe log has taken it.
    #[derive(Default)]
    struct Model {
        queue: VecDeque<Remembered>,
        live: HashMap<(u64, u32), u64>,
        head_seq: u64,
        logged: u64,
    }

    /// The end of the second of `at_ms` (times are kept in whole seconds).
    fn second_end(at_ms: u64) -> u64 {
        at_ms / 1000 * 1000 + 999
    }

    impl Model {
        fn pop(&mut self) {
            let e = self.queue.pop_front().unwrap();
            if e.live {
                self.live.remove(&(e.key.hi, e.key.mid));
            }
            self.head_seq += 1;
            self.logged = self.logged.max(self.head_seq);
        }

        fn insert(
            &mut self,
            key: Key,
            (id, at_ms, segment): (u64, u64, u64),
            now_ms: u64,
            cap: usize,
            window: u64,
        ) -> Result<(), u64> {
            while let Some(e) = self.queue.front() {
                if second_end(e.at_ms) + window >= now_ms {
                    break;
                }
                self.pop();
            }
            if let Some(&id) = self.live.get(&(key.hi, key.mid)) {
                return Err(id);
            }
            while self.queue.len() >= cap {
                self.pop();
            }
            self.queue.push_back(Remembered {
                key,
                id,
                at_ms,
                segment,
                live: true,
            });
            self.live.insert((key.hi, key.mid), id);
            Ok(())
        }

        fn forget(&mut self, k: Key) {
            if self.live.remove(&(k.hi, k.mid)).is_some() {
                let e = self
                    .queue
                    .iter_mut()
                    .rev()
                    .find(|e| e.key == k && e.live)
                    .unwrap();
                e.live = false;
            }
        }

        /// The keys [`Shard::take_unlogged`] should give.
        fn take_unlogged(
            &mut self,
            segment: u64,
            older_than_ms: u64,
            held: u64,
        ) -> Vec<(u128, u64, u64)> {
            let mut out = Vec::new();
            while let Some(e) = self.queue.get((self.logged - self.head_seq) as usize) {
                let at_ms = second_end(e.at_ms);
                if (e.segment >= segment && at_ms >= older_than_ms) || at_ms >= held {
                    break;
                }
                if e.live {
                    out.push((e.key.fingerprint(), e.id, at_ms));
                }
                self.logged += 1;
            }
            out
        }
    }

    #[test]
    fn a_shard_agrees_with_a_plain_map_through_inserts_evictions_expiry_forgets_and_logging() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut rand = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        // 300 keys crowded on few homes and tags (long probe runs, tags
        // that match other keys), a cap of 120, a 20 s window, a journal
        // segment every 3,000 steps; ids and times a little out of order,
        // now and then by more than a run's slack or its offsets; now and
        // then a long pause that empties the ring.
        let key = |k: u64| Key {
            hi: k.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            mid: (((k % 5) as u32) << 24) | ((k % 3) as u32) << 28 | (k as u32 % 11),
        };
        let (cap, window) = (120, 20_000);
        let (mut shard, mut model) = (Shard::default(), Model::default());
        let (mut now, mut most_runs, mut logged, mut emptied) = (0u64, 0, 0, 0);
        for step in 0..300_000u64 {
            now += if rand(20_000) == 0 {
                6_000_000
            } else {
                rand(250)
            };
            let segment = 1 + step / 3_000;
            let k = key(rand(300));
            if rand(10) == 0 {
                model.forget(k);
                if let Some(i) = shard.find(k) {
                    shard.remove_slot(i);
                }
            } else {
                let id = step * 37 + if rand(8) == 0 { 100_000 } else { rand(1_000) };
                let at = match rand(16) {
                    0 => now.saturating_sub(90_000),
                    1 => now + 5_000_000,
                    _ => now.saturating_sub(rand(3_000)),
                };
                let want = model.insert(k, (id, at, segment), now, cap, window);
                shard.expire(window, now);
                emptied += usize::from(shard.len == 0);
                let got = match shard.find(k) {
                    Some(i) => Err(shard.id_at(Shard::place(shard.slots[i])).0),
                    None => {
                        shard.make_room(cap);
                        shard.push(k, MessageId(id), at, segment);
                        Ok(())
                    }
                };
                assert_eq!(got, want, "step {step}");
            }
            assert_eq!(shard.live, model.live.len(), "step {step}");
            assert_eq!(shard.len, model.queue.len(), "step {step}");
            assert!(shard.runs.len() <= shard.len.max(1), "step {step}");
            most_runs = most_runs.max(shard.runs.len());
            if step % 499 == 0 {
                // The trickle (by time, sometimes held back) or compaction
                // (by segment).
                let (segment, older_than, held) = match rand(3) {
                    0 => (0, now.saturating_sub(5_000), u64::MAX),
                    1 => (0, now, now.saturating_sub(rand(10_000))),
                    _ => (segment.saturating_sub(rand(3)), 0, u64::MAX),
                };
                let mut got = Vec::new();
                shard.take_unlogged(segment, older_than, held, &mut got);
                let want = model.take_unlogged(segment, older_than, held);
                assert_eq!(got, want, "step {step}");
                assert_eq!(shard.logged, model.logged, "step {step}");
                if older_than == 0 && held == u64::MAX {
                    // What compaction relies on: no entry of a segment it
                    // deletes is left unlogged.
                    let walked = (model.logged - model.head_seq) as usize;
                    let left = model.queue.iter().skip(walked);
                    assert!(
                        left.into_iter().all(|e| e.segment >= segment),
                        "step {step}"
                    );
                }
                logged += got.len();
            }
            if step % 997 == 0 {
                for k in 0..300 {
                    let k = key(k);
                    let found = shard
                        .find(k)
                        .map(|i| shard.id_at(Shard::place(shard.slots[i])).0);
                    assert_eq!(
                        found,
                        model.live.get(&(k.hi, k.mid)).copied(),
                        "step {step}"
                    );
                }
            }
        }
        // The ring never grew past the cap, the index stayed under 3/4 full,
        // runs were cut (for segments, ids and times), and those of entries
        // gone went with them; keys were logged; the ring emptied.
        assert_eq!(shard.ring.len(), cap);
        assert!(shard.live * 4 <= shard.slots.len() * 3);
        assert!(most_runs > 4, "{most_runs}");
        assert!(logged > 1_000, "{logged}");
        assert!(emptied > 3, "{emptied}");
    }

    #[test]
    fn times_round_up_so_a_key_is_never_forgotten_early() {
        let d = Dedupe::new(Duration::from_secs(10), [5; 16]);
        let t: Arc<str> = "t".into();
        d.check_or_insert(&t, "a", MessageId(1), 1_999, 1).unwrap();
        // 10 s after the exact moment, and a little past it: still known.
        assert_eq!(
            d.check_or_insert(&t, "a", MessageId(2), 11_999, 1),
            Err(MessageId(1))
        );
        assert_eq!(d.check_or_insert(&t, "a", MessageId(2), 12_000, 1), Ok(()));
    }

    #[test]
    fn a_key_restored_again_answers_with_its_last_id_and_its_latest_time() {
        let d = Dedupe::new(Duration::from_secs(100), [4; 16]);
        let t: Arc<str> = "t".into();
        let (a, b) = (d.fingerprint("t", "a"), d.fingerprint("t", "b"));
        d.restore(a, MessageId(10), 1_000, 1_000, None);
        // An earlier time: the key keeps its later one.
        d.restore(a, MessageId(11), 500, 1_000, None);
        assert_eq!(
            d.check_or_insert(&t, "a", MessageId(1), 101_999, 1),
            Err(MessageId(11))
        );
        // Ids past what the entry's run holds, the second at an earlier
        // time: the key moves to a new entry, with the later time.
        d.restore(a, MessageId(1 << 40), 2_000, 2_000, None);
        d.restore(a, MessageId(12), 500, 2_000, Some(0));
        // A time past what the run holds: likewise.
        d.restore(b, MessageId(20), 2_000, 2_000, Some(0));
        d.restore(b, MessageId(20), 9_000_000, 9_000_000, Some(0));
        assert_eq!(d.len(), 2);
        // The entries left behind are neither found nor logged.
        let mut logged = d.take_unlogged_before(1);
        logged.sort_by_key(|k| k.1);
        let kept = |fp| Key::of(fp).fingerprint();
        assert_eq!(logged, [(kept(a), 12, 2_999), (kept(b), 20, 9_000_999)]);
        assert_eq!(
            d.check_or_insert(&t, "b", MessageId(1), 9_100_999, 1),
            Err(MessageId(20))
        );
        assert_eq!(
            d.check_or_insert(&t, "b", MessageId(1), 9_101_000, 1),
            Ok(())
        );
    }

    #[test]
    fn a_restored_time_past_now_is_taken_as_now() {
        let d = Dedupe::new(Duration::from_secs(100), [6; 16]);
        let t: Arc<str> = "t".into();
        let now = 50_000;
        d.restore(
            d.fingerprint("t", "a"),
            MessageId(1),
            u64::MAX,
            now,
            Some(0),
        );
        d.restore(
            d.fingerprint("t", "b"),
            MessageId(2),
            now + 3_600_000,
            now,
            Some(0),
        );
        assert_eq!(d.len(), 2);
        // They go to the dedupe log as keys of now (not held back for
        // ever, nor every key after them)...
        assert_eq!(d.take_unlogged(0, now + 1_000).len(), 2);
        // ...and are forgotten a window after now.
        assert_eq!(
            d.check_or_insert(&t, "a", MessageId(3), now + 100_999, 1),
            Err(MessageId(1))
        );
        assert_eq!(
            d.check_or_insert(&t, "b", MessageId(3), now + 101_000, 1),
            Ok(())
        );
    }

    #[test]
    fn logged_keys_come_back_from_the_log_as_the_same_keys() {
        let d = Dedupe::new(Duration::from_secs(3600), [9; 16]);
        let t: Arc<str> = "t".into();
        d.check_or_insert(&t, "a", MessageId(7), 5_000, 2).unwrap();
        let logged = d.take_unlogged_before(3);
        assert_eq!(logged.len(), 1);
        let (fp, id, at) = logged[0];
        assert!(at >= 5_000);
        // A restart: the log's entry (and the journal's own fingerprint of
        // the same key) find the same entry.
        let again = Dedupe::new(Duration::from_secs(3600), [9; 16]);
        again.restore(fp, MessageId(id), at, 6_000, None);
        again.restore(
            again.fingerprint("t", "a"),
            MessageId(7),
            5_000,
            6_000,
            Some(0),
        );
        assert_eq!(again.len(), 1);
        assert_eq!(
            again.check_or_insert(&t, "a", MessageId(8), 6_000, 3),
            Err(MessageId(7))
        );
    }
}
