//! The ingest door: which connections may be held, and how fast an address
//! may guess tokens. Policy only; the accept loop ([`super::server`]) and
//! the session ([`super::session`]) enforce what [`Door`] decides.
//!
//! - **Connection caps.** At most `max_connections` in all and
//!   `max_connections_per_ip` from one address (an IPv4 address, or the /64
//!   of an IPv6 one: a single host usually holds a whole /64). Past either,
//!   a new connection is refused at once.
//! - **Unauthenticated budget.** Connections that have not yet said a good
//!   Hello hold at most `max_unauthenticated` of the slots. When that budget
//!   (or the whole cap) is full, the *oldest* unauthenticated connection is
//!   closed to make room: a flood of silent connections cannot keep out a
//!   client that says Hello as soon as it connects, and authenticated
//!   clients always have `max_connections - max_unauthenticated` slots.
//!   When `accept` fails for want of descriptors, the oldest waiting
//!   connection is closed too ([`Door::shed`]), so the backlog drains.
//! - **Failed authentication** is throttled per address
//!   ([`crate::door::throttle::AuthThrottle`], shared with the HTTP API):
//!   the n-th failure within a minute is answered only after
//!   `auth_failure_delay × 2^(n-1)` (at most `auth_failure_delay_max`), and
//!   once an address has failed `auth_failures_per_minute` times in the
//!   last minute its further Hellos are refused at once, without looking at
//!   the token, until the oldest of those failures is a minute old.
//!
//! Everything is in memory and bounded: per-address entries exist only
//! while the address has connections or recent failures.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::door::throttle::{AuthThrottle, ThrottleConfig};
pub use crate::door::throttle::{FAILURE_WINDOW, address_key};
use crate::settings::IngestConfig;

/// The door's limits (from [`IngestConfig`]).
///
/// # Defaults
/// 1,024 connections, 64 per address, 128 unauthenticated; failed
/// authentication answered after 200 ms doubling to 5 s, at most 10
/// failures per address per minute.
#[derive(Clone, Debug)]
pub struct DoorConfig {
    /// Most connections in all.
    pub max_connections: usize,
    /// Most connections from one address (IPv4) or /64 (IPv6).
    pub max_connections_per_ip: usize,
    /// Most connections waiting for their Hello.
    pub max_unauthenticated: usize,
    /// Delay before answering the first failed Hello of an address.
    pub auth_failure_delay: Duration,
    /// Longest such delay.
    pub auth_failure_delay_max: Duration,
    /// Failed Hellos from one address per minute before it is refused.
    pub auth_failures_per_minute: u32,
}

impl DoorConfig {
    /// How failed Hellos are throttled.
    pub fn throttle(&self) -> ThrottleConfig {
        ThrottleConfig {
            delay: self.auth_failure_delay,
            delay_max: self.auth_failure_delay_max,
            per_minute: self.auth_failures_per_minute,
        }
    }

    /// The door's part of the ingest configuration.
    pub fn from_config(c: &IngestConfig) -> DoorConfig {
        DoorConfig {
            max_connections: c.max_connections,
            max_connections_per_ip: c.max_connections_per_ip,
            max_unauthenticated: c.max_unauthenticated,
            auth_failure_delay: c.auth_failure_delay,
            auth_failure_delay_max: c.auth_failure_delay_max,
            auth_failures_per_minute: c.auth_failures_per_minute,
        }
    }
}

impl Default for DoorConfig {
    fn default() -> Self {
        DoorConfig::from_config(&IngestConfig::default())
    }
}

/// Why a connection was refused at the door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The address already holds `max_connections_per_ip` connections.
    PerIp {
        /// The limit.
        limit: usize,
    },
    /// `max_connections` are open and all of them are authenticated.
    Full {
        /// The limit.
        limit: usize,
    },
}

impl Refusal {
    /// Label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::PerIp { .. } => "per_ip",
            Refusal::Full { .. } => "full",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::PerIp { limit } => write!(
                f,
                "too many connections from your address (limit {limit}); retry later"
            ),
            Refusal::Full { limit } => write!(
                f,
                "the server is at its connection limit ({limit}); retry later"
            ),
        }
    }
}

/// Connection and authentication bookkeeping shared by the accept loop and
/// every session (see the module doc).
#[derive(Debug)]
pub struct Door {
    cfg: DoorConfig,
    state: Mutex<State>,
    throttle: AuthThrottle,
}

#[derive(Debug, Default)]
struct State {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
    /// Connections waiting for Hello, oldest first; sending closes one.
    unauthenticated: BTreeMap<u64, oneshot::Sender<()>>,
    next_seq: u64,
}

impl Door {
    /// A door with these limits.
    pub fn new(cfg: DoorConfig) -> Arc<Door> {
        Arc::new(Door {
            throttle: AuthThrottle::new(cfg.throttle()),
            cfg,
            state: Mutex::new(State::default()),
        })
    }

    /// The limits.
    pub fn config(&self) -> &DoorConfig {
        &self.cfg
    }

    /// Decides on a new connection from `peer`: a [`Ticket`] to hold while
    /// it is open, or why not. Makes room by closing the oldest
    /// unauthenticated connection when the unauthenticated budget or the
    /// whole cap is full.
    ///
    /// # Errors
    /// [`Refusal::PerIp`], [`Refusal::Full`].
    pub fn admit(self: &Arc<Door>, peer: SocketAddr) -> Result<Ticket, Refusal> {
        let ip = address_key(peer.ip());
        let mut st = self.state.lock();
        if st.per_ip.get(&ip).copied().unwrap_or(0) >= self.cfg.max_connections_per_ip {
            return Err(Refusal::PerIp {
                limit: self.cfg.max_connections_per_ip,
            });
        }
        // Evicted connections still count until they have closed, which is
        // at once; room is made from those still waiting.
        if st.total >= self.cfg.max_connections && !st.evict_oldest() {
            return Err(Refusal::Full {
                limit: self.cfg.max_connections,
            });
        }
        if st.unauthenticated.len() >= self.cfg.max_unauthenticated.max(1) {
            st.evict_oldest();
        }
        let (tx, rx) = oneshot::channel();
        let seq = st.next_seq;
        st.next_seq += 1;
        st.total += 1;
        *st.per_ip.entry(ip).or_default() += 1;
        st.unauthenticated.insert(seq, tx);
        metrics::gauge!("sluice_ingest_unauthenticated").set(st.unauthenticated.len() as f64);
        Ok(Ticket {
            door: self.clone(),
            ip,
            peer: peer.ip(),
            seq,
            evicted: Some(rx),
        })
    }

    /// Closes the oldest connection still waiting for Hello, to free its
    /// descriptor when `accept` fails for want of one; false when there is
    /// none.
    pub fn shed(&self) -> bool {
        let mut st = self.state.lock();
        let shed = st.evict_oldest();
        metrics::gauge!("sluice_ingest_unauthenticated").set(st.unauthenticated.len() as f64);
        shed
    }

    /// Connections open (authenticated or not).
    pub fn connections(&self) -> usize {
        self.state.lock().total
    }

    /// Connections waiting for their Hello.
    pub fn unauthenticated(&self) -> usize {
        self.state.lock().unauthenticated.len()
    }

    fn release(&self, ip: IpAddr, seq: u64) {
        let mut st = self.state.lock();
        st.total = st.total.saturating_sub(1);
        if let Some(n) = st.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                st.per_ip.remove(&ip);
            }
        }
        if st.unauthenticated.remove(&seq).is_some() {
            metrics::gauge!("sluice_ingest_unauthenticated").set(st.unauthenticated.len() as f64);
        }
    }

    fn authenticated(&self, seq: u64) {
        let mut st = self.state.lock();
        st.unauthenticated.remove(&seq);
        metrics::gauge!("sluice_ingest_unauthenticated").set(st.unauthenticated.len() as f64);
    }

    /// `Err(retry_in)` when `ip` has used up its failures for the window.
    fn check_auth(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        self.throttle.check(ip, now)
    }

    /// Records a failure of `ip`; answers how long to wait before saying so.
    fn auth_failed(&self, ip: IpAddr, now: Instant) -> Duration {
        self.throttle.failed(ip, now)
    }
}

impl State {
    /// Closes the oldest unauthenticated connection; false when there is none.
    fn evict_oldest(&mut self) -> bool {
        let Some((_, tx)) = self.unauthenticated.pop_first() else {
            return false;
        };
        let _ = tx.send(());
        metrics::counter!("sluice_ingest_refused_total", "reason" => "evicted").increment(1);
        true
    }
}

/// One admitted connection's place at the door; dropping it frees the
/// place.
#[derive(Debug)]
pub struct Ticket {
    door: Arc<Door>,
    ip: IpAddr,
    peer: IpAddr,
    seq: u64,
    /// Fires when the connection is closed to make room; `None` once
    /// authenticated.
    evicted: Option<oneshot::Receiver<()>>,
}

impl Ticket {
    /// The peer's address.
    pub fn peer(&self) -> IpAddr {
        self.peer
    }

    /// Resolves if this connection, still unauthenticated, is closed to make
    /// room for a newer one; never resolves once authenticated.
    pub async fn evicted(&mut self) {
        if let Some(rx) = self.evicted.as_mut() {
            let fired = rx.await.is_ok();
            // A finished receiver must not be polled again.
            self.evicted = None;
            if fired {
                return;
            }
        }
        std::future::pending().await
    }

    /// The Hello was good: the connection leaves the unauthenticated budget.
    pub fn authenticated(&mut self) {
        if self.evicted.take().is_some() {
            self.door.authenticated(self.seq);
        }
    }

    /// Whether a Hello from this address may be checked now; `Err` with the
    /// time until it may, when the address has failed too often.
    ///
    /// # Errors
    /// The address is locked out for the returned duration.
    pub fn check_auth(&self) -> Result<(), Duration> {
        self.door.check_auth(self.ip, Instant::now())
    }

    /// Records a failed Hello and answers how long to wait before saying so.
    pub fn auth_failed(&self) -> Duration {
        metrics::counter!("sluice_ingest_auth_failures_total").increment(1);
        self.door.auth_failed(self.ip, Instant::now())
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.door.release(self.ip, self.seq);
    }
}

#[cfg(test)]
mod tests;
