//! Hash maps and sets for keys the gateway makes itself (ids, sequence
//! numbers, connection numbers) or its configuration names (tenants,
//! carriers, senders): foldhash instead of the standard library's SipHash.
//! SipHash costs ~150 instructions to hash a short key, and the maps a
//! message passes on its way (routing, opt-out scopes, carrier queues, its
//! event) made it ~6% of the gateway's instructions per message (callgrind
//! of the gateway alone, `docs/PERFORMANCE.md`).
//!
//! Not for keys a peer chooses and can make many of (an SMSC's message
//! ids, MO numbers, client references): those maps keep SipHash, whose
//! keyed hash stops a peer from crafting collisions. foldhash's seed is
//! random per map too, but it claims no such resistance.

/// The hasher of [`FastMap`] and [`FastSet`].
pub type FastHasher = foldhash::fast::RandomState;

/// A `HashMap` with [`FastHasher`] (make one with `FastMap::default()`).
pub type FastMap<K, V> = std::collections::HashMap<K, V, FastHasher>;

/// A `HashSet` with [`FastHasher`].
pub type FastSet<K> = std::collections::HashSet<K, FastHasher>;
