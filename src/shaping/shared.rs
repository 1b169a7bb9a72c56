//! A limit shared with other processes (a carrier-wide rate across the
//! nodes of a cluster): the queue peeks when the next permit may go and
//! commits what it took, like [`super::pace::Pace`], but the permits come
//! from elsewhere (leases; [`crate::cluster::budgets`]). Peeking never
//! waits on the network: with no permit in hand it answers "a little
//! later" and the implementation fetches more in the background.

use tokio::time::Instant;

/// A rate whose permits are shared beyond this process.
pub trait SharedPace: Send + Sync + std::fmt::Debug + 'static {
    /// When the next permit may be taken (`now`: at once).
    fn ready_at(&self, now: Instant) -> Instant;
    /// Takes `n` permits at `now` (after [`SharedPace::ready_at`] said now).
    fn commit(&self, now: Instant, n: u32);
}
