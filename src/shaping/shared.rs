//! Limits shared with other processes (a carrier-wide rate, a sender's
//! daily cap, across the nodes of a cluster): the queue peeks when the
//! next permit may go and commits what it took, like [`super::pace::Pace`]
//! and [`super::pace::DailyCap`], but the permits come from elsewhere
//! (leases; [`crate::cluster::budgets`]). Peeking never waits on the
//! network: with no permit in hand it answers "a little later" and the
//! implementation fetches more in the background.

use tokio::time::Instant;

/// A rate whose permits are shared beyond this process.
pub trait SharedPace: Send + Sync + std::fmt::Debug + 'static {
    /// When the next permit may be taken (`now`: at once).
    fn ready_at(&self, now: Instant) -> Instant;
    /// Takes `n` permits at `now` (after [`SharedPace::ready_at`] said now).
    fn commit(&self, now: Instant, n: u32);
    /// Changes the rate from the next permits fetched on (a reload).
    fn set_rate(&self, per_second: f64);
}

/// A daily cap whose permits are shared beyond this process (a sender's or
/// brand's cap across the nodes of a cluster). Like [`super::pace::DailyCap`]
/// on wall-clock milliseconds; peeking never waits on the network.
pub trait SharedCap: Send + Sync + std::fmt::Debug + 'static {
    /// Wall-clock ms when `n` permits may be taken (`now_ms`: at once; a
    /// little later while more are fetched; the next UTC day once the
    /// day's cap is spent).
    fn ready_at_ms(&self, now_ms: u64, n: u32) -> u64;
    /// Takes `n` permits (after [`SharedCap::ready_at_ms`] said now).
    fn commit(&self, now_ms: u64, n: u32);
}

/// Makes the shared caps of senders and brands, as they are first seen.
pub trait SharedCaps: Send + Sync + std::fmt::Debug + 'static {
    /// The daily cap of `cap` for sender `sender`.
    fn sender(&self, sender: &str, cap: u64) -> std::sync::Arc<dyn SharedCap>;
    /// The daily cap of `cap` for brand `brand`.
    fn brand(&self, brand: &str, cap: u64) -> std::sync::Arc<dyn SharedCap>;
}

/// Makes the shared per-second rates of senders, as they are first seen
/// (thousands of senders, most of them idle: their permits are fetched
/// only while they have messages to send).
pub trait SharedRates: Send + Sync + std::fmt::Debug + 'static {
    /// The rate of `per_second` for sender `sender`.
    fn sender(&self, sender: &str, per_second: f64) -> std::sync::Arc<dyn SharedPace>;
}
