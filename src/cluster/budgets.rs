//! Rates shared by the cluster: a carrier's `rate` and each tenant's
//! `rate` (per carrier, as on one node) hold for the nodes together, and
//! the per-message path makes no Redis round trip.
//!
//! # Leases on one schedule
//! Redis keeps, per carrier, the time the next permit is due across the
//! cluster (GCRA's theoretical arrival time). A node leases a chunk of
//! permits (50 ms of the rate) with one script call: the script hands it
//! the next free stretch of that schedule, `[start, start + count/rate)`,
//! and moves the due time past it. Stretches never overlap, and a node
//! spends a lease's permits one interval apart within its stretch (a
//! permit whose moment passed unused is dropped, never spent late), so at
//! every moment the cluster as a whole sends at most `rate` a second. The
//! node asks for the next lease when the one in hand is half spent: one
//! Redis call per 50 ms of the rate, whatever the message rate.
//!
//! Times travel as offsets from Redis's clock (`TIME` inside the script),
//! so the nodes' clocks do not matter; their network delays to Redis
//! (tens of microseconds on a LAN) are the only error.
//!
//! Without Redis, a node sends nothing on a shared carrier limit: an
//! exceeded carrier limit costs throttling and possibly a penalty with
//! the carrier, while waiting costs only time.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::TARGET;
use super::link::{Backoff, Link};
use crate::shaping::shared::SharedPace;

/// How far ahead a chunk reaches, in time at the full rate.
const CHUNK_TIME: Duration = Duration::from_millis(50);
/// With no permit in hand, look again this much later.
const RETRY: Duration = Duration::from_millis(5);

/// Leases the next stretch of the shared schedule. KEYS: the carrier's
/// due time (µs). ARGV: rate per second, permits wanted. Answers the
/// stretch's start and length, µs, as offsets from now.
const LEASE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local due = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local start = math.max(due, now)
local len = math.floor(tonumber(ARGV[2]) * 1000000 / tonumber(ARGV[1]))
redis.call('SET', KEYS[1], string.format('%.0f', start + len), 'PX', math.floor((start + len - now) / 1000) + 60000)
return {math.floor(start - now), len}
";

#[derive(Debug)]
struct Lease {
    start: Instant,
    count: u32,
    used: u32,
}

#[derive(Debug, Default)]
struct State {
    leases: VecDeque<Lease>,
    /// Permits taken beyond the leases in hand (a multi-part message);
    /// paid from the next lease.
    debt: u32,
}

/// One carrier's share of a cluster-wide rate (see the module doc).
#[derive(Debug)]
pub struct LeasedRate {
    link: Link,
    key: String,
    rate: f64,
    interval: Duration,
    chunk: u32,
    state: Mutex<State>,
    wanted: Notify,
}

impl LeasedRate {
    /// `carrier`'s rate of `rate` per second, shared through `link`.
    pub fn carrier(link: Link, carrier: &str, rate: f64) -> Arc<LeasedRate> {
        LeasedRate::new(link, format!("budget:{carrier}"), rate)
    }

    /// `tenant`'s rate of `rate` per second on `carrier`, shared through
    /// `link`.
    pub fn tenant(link: Link, carrier: &str, tenant: &str, rate: f64) -> Arc<LeasedRate> {
        LeasedRate::new(link, format!("budget:{carrier}:tenant:{tenant}"), rate)
    }

    fn new(link: Link, tag: String, rate: f64) -> Arc<LeasedRate> {
        let chunk = ((rate * CHUNK_TIME.as_secs_f64()).floor() as u32).max(1);
        Arc::new(LeasedRate {
            key: link.key(&tag, "due"),
            link,
            rate,
            interval: Duration::from_secs_f64(1.0 / rate),
            chunk,
            state: Mutex::default(),
            wanted: Notify::new(),
        })
    }

    /// Drops lease permits whose moment passed; the permits left in hand.
    fn tidy(&self, s: &mut State, now: Instant) -> u64 {
        while let Some(l) = s.leases.front_mut() {
            if now > l.start {
                // The permits whose moment is more than one interval ago.
                let due = ((now - l.start).as_secs_f64() / self.interval.as_secs_f64()) as u32;
                l.used = l.used.max(due.saturating_sub(1));
            }
            if l.used >= l.count {
                s.leases.pop_front();
            } else {
                break;
            }
        }
        s.leases.iter().map(|l| u64::from(l.count - l.used)).sum()
    }

    /// Starts the task that keeps leases coming.
    pub fn start(self: &Arc<Self>, tasks: &mut JoinSet<()>, shutdown: &watch::Receiver<bool>) {
        let this = self.clone();
        super::spawn_until_shutdown(tasks, shutdown, async move { this.lease_loop().await });
    }

    async fn lease_loop(&self) {
        let mut backoff = Backoff::default();
        loop {
            let in_hand = {
                let mut s = self.state.lock();
                self.tidy(&mut s, Instant::now())
            };
            if in_hand > u64::from(self.chunk / 2) {
                // Woken when permits are taken, or to drop stale ones.
                let _ = tokio::time::timeout(CHUNK_TIME, self.wanted.notified()).await;
                continue;
            }
            match self.lease().await {
                Ok(()) => backoff.reset(),
                Err(e) => {
                    tracing::debug!(target: TARGET, error = %crate::model::LogSafe::display(&e), "budget lease failed; retrying");
                    backoff.wait().await;
                }
            }
        }
    }

    async fn lease(&self) -> anyhow::Result<()> {
        let asked = Instant::now();
        let (start_us, len_us): (i64, i64) = self
            .link
            .query(
                redis::cmd("EVAL")
                    .arg(LEASE)
                    .arg(1)
                    .arg(&self.key)
                    .arg(self.rate)
                    .arg(self.chunk),
            )
            .await?;
        let answered = Instant::now();
        metrics::counter!("sluice_cluster_budget_leases_total").increment(1);
        // Offsets are from Redis's "now", somewhere between the ask and the
        // answer: counted from the answer the stretch never starts early,
        // counted from the ask it never ends late; the permits that fit
        // between both are this node's.
        let offset = Duration::from_micros(start_us.max(0) as u64);
        let start = answered + offset;
        let end = asked + offset + Duration::from_micros(len_us.max(0) as u64);
        let fit = if end > start {
            ((end - start).as_secs_f64() / self.interval.as_secs_f64()).ceil() as u32
        } else {
            0
        };
        let mut s = self.state.lock();
        let mut lease = Lease {
            start,
            count: fit.min(self.chunk),
            used: 0,
        };
        if lease.count == 0 {
            return Ok(());
        }
        let paid = s.debt.min(lease.count);
        lease.used = paid;
        s.debt -= paid;
        s.leases.push_back(lease);
        Ok(())
    }
}

impl SharedPace for LeasedRate {
    fn ready_at(&self, now: Instant) -> Instant {
        let mut s = self.state.lock();
        let in_hand = self.tidy(&mut s, now);
        if in_hand <= u64::from(self.chunk / 2) {
            self.wanted.notify_one();
        }
        match s.leases.front() {
            Some(l) => (l.start + self.interval * l.used).max(now),
            None => now + RETRY,
        }
    }

    fn commit(&self, now: Instant, n: u32) {
        let mut s = self.state.lock();
        self.tidy(&mut s, now);
        let mut left = n;
        while left > 0 {
            let Some(l) = s.leases.front_mut() else {
                s.debt += left;
                break;
            };
            let take = left.min(l.count - l.used);
            l.used += take;
            left -= take;
            if l.used >= l.count {
                s.leases.pop_front();
            }
        }
        drop(s);
        self.wanted.notify_one();
    }
}
