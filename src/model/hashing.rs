//! Hash maps and sets with foldhash instead of the standard library's
//! SipHash, for keys the gateway makes itself (ids, sequence numbers,
//! connection numbers) or its configuration names (tenants, carriers,
//! senders). Hashing a short key with SipHash took 140-230 instructions,
//! and the lookups a message makes on its way (routing, opt-out scopes,
//! sender ownership, carrier queues, its event) were 5.6% of the
//! gateway's instructions per message (callgrind of the gateway alone,
//! `docs/PERFORMANCE.md`, "instructions per message").
//!
//! foldhash seeds each map at random but claims only minimal resistance
//! to keys crafted to collide. Where a peer picks the keys: the fair
//! queue's maps (authenticated tenants' senders and campaigns) use
//! foldhash, and so does the receipts' correlation (carriers' ids, its
//! `quality` variant); the dedupe fingerprint is a SipHash keyed by the
//! gateway (a collision would drop a message as a duplicate); the maps
//! that any peer value can grow keep the standard library's SipHash
//! (early receipts by carrier id, the opt-out audit by number, the SMPP
//! response counters by status).

/// The hasher of [`FastMap`] and [`FastSet`].
pub type FastHasher = foldhash::fast::RandomState;

/// A `HashMap` with [`FastHasher`] (make one with `FastMap::default()`).
pub type FastMap<K, V> = std::collections::HashMap<K, V, FastHasher>;

/// A `HashSet` with [`FastHasher`].
pub type FastSet<K> = std::collections::HashSet<K, FastHasher>;
