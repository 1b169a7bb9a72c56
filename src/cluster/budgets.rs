//! Rates shared by the cluster: a carrier's `rate`, each tenant's `rate`
//! (per carrier, as on one node) and each sender's rate hold for the nodes
//! together, and the per-message path makes no Redis round trip.
//!
//! # Leases on one schedule
//! Redis keeps, per carrier, the time the next permit is due across the
//! cluster (GCRA's theoretical arrival time). A node leases a chunk of
//! permits (50 ms of the rate) with one script call: the script hands it
//! the next free stretch of that schedule, `[start, start + count × interval)`,
//! and moves the due time past it. Stretches never overlap, so the
//! cluster's permits are at least one interval apart. The node asks for
//! the next lease when the one in hand is half spent: one Redis call per
//! 50 ms of the rate, whatever the message rate.
//!
//! # On demand, for senders
//! A carrier or tenant rate has its own task keeping a lease in hand
//! (until a reload drops the rate: then it stops leasing). A sender's rate ([`LeasedRates`]) asks only while its messages are
//! queued: thousands of senders, most of them idle, cost Redis nothing.
//! Senders that want a lease are served together, up to [`MOST_PER_PIPE`]
//! script calls in one pipeline, so a burst of a thousand senders costs a
//! few round trips; an idle sender's unspent permits are dropped with time
//! like any others (at most one lease, 50 ms of its rate, goes unused).
//!
//! Times travel as offsets from Redis's clock (`TIME` inside the script),
//! so the nodes' clocks do not matter; their network delays to Redis are
//! the only error.
//!
//! # At most `rate` in every one-second window
//! A node spends a permit no earlier than its moment and at most [`LATE`]
//! after it (a permit whose moment passed longer ago is dropped, never
//! spent late), and places a lease no later than the Redis round trip
//! that brought it (a lease whose round trip took longer than
//! [`SLOWEST_LEASE`] is dropped). A permit therefore leaves within
//! `LATE + SLOWEST_LEASE` of its moment on the shared schedule, and the
//! schedule is laid out at `rate` a second stretched by [`MARGIN`] (2%):
//! `rate + 1` consecutive permits span at least `1 s + MARGIN`, so no
//! one-second window, at the carrier, holds more than `rate` even with
//! `MARGIN - LATE - SLOWEST_LEASE` (15 ms) of delivery jitter. The cost is
//! that the cluster sends at 98% of `rate` at most. A message of several
//! parts takes its permits together, at its first permit's moment, as on
//! one node ([`crate::shaping::pace`]).
//!
//! Without Redis, a node sends nothing on a shared carrier limit: an
//! exceeded carrier limit costs throttling and possibly a penalty with
//! the carrier, while waiting costs only time.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::TARGET;
use super::link::{Backoff, Link};
use crate::shaping::shared::{SharedPace, SharedRates};

/// How far ahead a chunk reaches, in time at the full rate.
const CHUNK_TIME: Duration = Duration::from_millis(50);
/// With no permit in hand, look again this much later.
const RETRY: Duration = Duration::from_millis(5);
/// The longest a permit may be spent after its moment.
pub const LATE: Duration = Duration::from_millis(3);
/// A lease whose script call took longer is dropped: its stretch's place
/// on this node's clock is known only to within the round trip.
pub const SLOWEST_LEASE: Duration = Duration::from_millis(2);
/// What `rate + 1` consecutive permits span beyond one second.
pub const MARGIN: Duration = Duration::from_millis(20);
/// The most on-demand leases asked in one pipeline: the whole pipeline
/// must answer within [`SLOWEST_LEASE`] for its leases to count.
pub const MOST_PER_PIPE: usize = 32;

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
    /// The schedule's interval when it was leased.
    interval: Duration,
    count: u32,
    used: u32,
}

impl Lease {
    fn at(&self, permit: u32) -> Instant {
        self.start + self.interval * permit
    }
}

/// The rate as leased: per second (stretched by [`MARGIN`]), the interval
/// between permits and the permits per lease.
#[derive(Debug, Clone, Copy)]
struct Params {
    rate: f64,
    interval: Duration,
    chunk: u32,
}

impl Params {
    fn of(rate: f64) -> Params {
        // `rate` permits (and the one after) take 1 s + MARGIN.
        let rate = rate.max(0.01) / (1.0 + MARGIN.as_secs_f64());
        Params {
            rate,
            interval: Duration::from_secs_f64(1.0 / rate),
            chunk: ((rate * CHUNK_TIME.as_secs_f64()).floor() as u32).max(1),
        }
    }
}

#[derive(Debug)]
struct State {
    params: Params,
    leases: VecDeque<Lease>,
    /// Permits taken beyond the leases in hand (a multi-part message);
    /// paid from the next lease.
    debt: u32,
    /// An on-demand lease is asked for.
    asking: bool,
}

/// How a rate gets its next lease.
#[derive(Debug)]
enum Fetch {
    /// Its own task keeps one in hand, woken by this (carriers, tenants).
    Own(Notify),
    /// Asked for when wanted, with other rates' (senders).
    OnDemand {
        me: Weak<LeasedRate>,
        wanting: Arc<Wanting>,
    },
}

/// The on-demand rates that want a lease.
#[derive(Debug, Default)]
struct Wanting {
    rates: Mutex<Vec<Weak<LeasedRate>>>,
    notify: Notify,
}

/// One carrier's, tenant's or sender's share of a cluster-wide rate (see
/// the module doc).
#[derive(Debug)]
pub struct LeasedRate {
    link: Link,
    key: String,
    state: Mutex<State>,
    fetch: Fetch,
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
        Arc::new(LeasedRate::with(
            link,
            &tag,
            rate,
            Fetch::Own(Notify::new()),
        ))
    }

    fn with(link: Link, tag: &str, rate: f64, fetch: Fetch) -> LeasedRate {
        LeasedRate {
            key: link.key(tag, "due"),
            link,
            state: Mutex::new(State {
                params: Params::of(rate),
                leases: VecDeque::new(),
                debt: 0,
                asking: false,
            }),
            fetch,
        }
    }

    /// Asks for the next lease: wakes the rate's own task, or (on demand)
    /// joins the rates waiting for the next pipeline, once.
    fn want(&self, s: &mut State) {
        match &self.fetch {
            Fetch::Own(wanted) => wanted.notify_one(),
            Fetch::OnDemand { me, wanting } => {
                if !s.asking {
                    s.asking = true;
                    wanting.rates.lock().push(me.clone());
                    wanting.notify.notify_one();
                }
            }
        }
    }

    /// Drops lease permits whose moment passed; the permits left in hand.
    fn tidy(&self, s: &mut State, now: Instant) -> u64 {
        while let Some(l) = s.leases.front_mut() {
            if now > l.start + LATE {
                // The permits whose moment is more than LATE ago.
                let gone =
                    ((now - l.start - LATE).as_secs_f64() / l.interval.as_secs_f64()).ceil() as u32;
                l.used = l.used.max(gone);
            }
            if l.used >= l.count {
                s.leases.pop_front();
            } else {
                break;
            }
        }
        s.leases.iter().map(|l| u64::from(l.count - l.used)).sum()
    }

    /// Starts the task that keeps leases coming (a carrier's or tenant's
    /// rate; a sender's is served by [`LeasedRates::start`]). Once the rate
    /// is dropped (a reload switched the limit off) it stops leasing and
    /// lets go of the rate, so a limit no longer enforced takes nothing
    /// from the cluster's schedule; it then waits for the shutdown (a
    /// task of the gateway's set that ends is taken for a failure).
    pub fn start(self: &Arc<Self>, tasks: &mut JoinSet<()>, shutdown: &watch::Receiver<bool>) {
        let me = Arc::downgrade(self);
        super::spawn_until_shutdown(tasks, shutdown, LeasedRate::lease_loop(me));
    }

    async fn lease_loop(me: Weak<LeasedRate>) {
        let mut backoff = Backoff::default();
        // Held for one turn at a time: between turns only its users hold it.
        while let Some(this) = me.upgrade() {
            let Fetch::Own(wanted) = &this.fetch else {
                break;
            };
            let (in_hand, chunk) = {
                let mut s = this.state.lock();
                (this.tidy(&mut s, Instant::now()), s.params.chunk)
            };
            if in_hand > u64::from(chunk / 2) {
                // Woken when permits are taken, or to drop stale ones.
                let _ = tokio::time::timeout(CHUNK_TIME, wanted.notified()).await;
                continue;
            }
            match this.lease().await {
                Ok(()) => backoff.reset(),
                Err(e) => {
                    tracing::debug!(target: TARGET, error = %crate::model::LogSafe::display(&e), "budget lease failed; retrying");
                    backoff.wait().await;
                }
            }
        }
        std::future::pending::<()>().await;
    }

    async fn lease(&self) -> anyhow::Result<()> {
        let params = self.state.lock().params;
        let asked = Instant::now();
        let (start_us, len_us): (i64, i64) = self
            .link
            .query(
                redis::cmd("EVAL")
                    .arg(LEASE)
                    .arg(1)
                    .arg(&self.key)
                    .arg(params.rate)
                    .arg(params.chunk),
            )
            .await?;
        let answered = Instant::now();
        metrics::counter!("sluice_cluster_budget_leases_total").increment(1);
        if !self.take_lease(params, asked, answered, start_us, len_us) {
            metrics::counter!("sluice_cluster_budget_leases_dropped_total").increment(1);
        }
        Ok(())
    }

    /// Places a stretch that a script call (with `params`) asked at
    /// `asked` and answered at `answered` gave (offsets from Redis's clock,
    /// µs) on this node's clock, and adds its permits; false when it was
    /// dropped.
    fn take_lease(
        &self,
        params: Params,
        asked: Instant,
        answered: Instant,
        start_us: i64,
        len_us: i64,
    ) -> bool {
        if answered - asked > SLOWEST_LEASE {
            return false;
        }
        // Offsets are from Redis's "now", somewhere between the ask and the
        // answer: counted from the answer the stretch never starts early,
        // counted from the ask it never ends late; the permits that fit
        // between both are this node's.
        let offset = Duration::from_micros(start_us.max(0) as u64);
        let start = answered + offset;
        let end = asked + offset + Duration::from_micros(len_us.max(0) as u64);
        let fit = if end > start {
            ((end - start).as_secs_f64() / params.interval.as_secs_f64()).ceil() as u32
        } else {
            0
        };
        let mut s = self.state.lock();
        let mut lease = Lease {
            start,
            interval: params.interval,
            count: fit.min(params.chunk),
            used: 0,
        };
        if lease.count == 0 {
            return true;
        }
        let paid = s.debt.min(lease.count);
        lease.used = paid;
        s.debt -= paid;
        s.leases.push_back(lease);
        true
    }
}

impl SharedPace for LeasedRate {
    fn ready_at(&self, now: Instant) -> Instant {
        let mut s = self.state.lock();
        let in_hand = self.tidy(&mut s, now);
        if in_hand <= u64::from(s.params.chunk / 2) {
            self.want(&mut s);
        }
        match s.leases.front() {
            Some(l) => l.at(l.used).max(now),
            None => now + RETRY,
        }
    }

    fn set_rate(&self, per_second: f64) {
        // Leases in hand keep their own interval (their stretch of the
        // schedule was laid out at the old rate); the next ones use this.
        self.state.lock().params = Params::of(per_second);
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
        let in_hand: u64 = s.leases.iter().map(|l| u64::from(l.count - l.used)).sum();
        if matches!(self.fetch, Fetch::Own(_)) || in_hand <= u64::from(s.params.chunk / 2) {
            self.want(&mut s);
        }
    }
}

/// Makes senders' shared rates and leases for those that want more (see
/// the module doc).
#[derive(Debug)]
pub struct LeasedRates {
    link: Link,
    wanting: Arc<Wanting>,
}

impl LeasedRates {
    /// Rates shared through `link`.
    pub fn new(link: Link) -> Arc<LeasedRates> {
        Arc::new(LeasedRates {
            link,
            wanting: Arc::default(),
        })
    }

    /// Starts the task that leases for the rates that want more.
    pub fn start(self: &Arc<Self>, tasks: &mut JoinSet<()>, shutdown: &watch::Receiver<bool>) {
        let this = self.clone();
        super::spawn_until_shutdown(tasks, shutdown, async move { this.lease_loop().await });
    }

    async fn lease_loop(&self) {
        let mut backoff = Backoff::default();
        loop {
            let batch: Vec<Arc<LeasedRate>> = {
                let mut w = self.wanting.rates.lock();
                let n = w.len().min(MOST_PER_PIPE);
                w.drain(..n).filter_map(|r| r.upgrade()).collect()
            };
            if batch.is_empty() {
                self.wanting.notify.notified().await;
                continue;
            }
            match self.lease(&batch).await {
                Ok(()) => backoff.reset(),
                Err(e) => {
                    tracing::debug!(target: TARGET, error = %crate::model::LogSafe::display(&e), "sender rate lease failed; retrying");
                    self.wanting
                        .rates
                        .lock()
                        .extend(batch.iter().map(Arc::downgrade));
                    backoff.wait().await;
                }
            }
        }
    }

    /// One pipeline: a lease for each rate of `batch`.
    async fn lease(&self, batch: &[Arc<LeasedRate>]) -> anyhow::Result<()> {
        let mut pipe = redis::pipe();
        let mut asked_with = Vec::with_capacity(batch.len());
        for r in batch {
            let params = r.state.lock().params;
            pipe.cmd("EVAL")
                .arg(LEASE)
                .arg(1)
                .arg(&r.key)
                .arg(params.rate)
                .arg(params.chunk);
            asked_with.push(params);
        }
        let asked = Instant::now();
        let answers: Vec<(i64, i64)> = self.link.pipe(&pipe).await?;
        let answered = Instant::now();
        metrics::counter!("sluice_cluster_budget_leases_total").increment(batch.len() as u64);
        for ((r, params), (start_us, len_us)) in batch.iter().zip(asked_with).zip(answers) {
            r.state.lock().asking = false;
            if !r.take_lease(params, asked, answered, start_us, len_us) {
                metrics::counter!("sluice_cluster_budget_leases_dropped_total").increment(1);
            }
        }
        Ok(())
    }
}

impl SharedRates for LeasedRates {
    fn sender(&self, sender: &str, per_second: f64) -> Arc<dyn SharedPace> {
        let tag = format!("budget:sender:{sender}");
        Arc::new_cyclic(|me| {
            LeasedRate::with(
                self.link.clone(),
                &tag,
                per_second,
                Fetch::OnDemand {
                    me: me.clone(),
                    wanting: self.wanting.clone(),
                },
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schedule Redis keeps, played by hand: `(start, len)` offsets of
    /// the next stretch for a node asking at `now`.
    struct Schedule {
        due: Instant,
        rate: f64,
    }

    impl Schedule {
        fn lease(&mut self, now: Instant, count: u32) -> (i64, i64) {
            let start = self.due.max(now);
            let len = (f64::from(count) * 1e6 / self.rate).floor() as u64;
            self.due = start + Duration::from_micros(len);
            ((start - now).as_micros() as i64, len as i64)
        }
    }

    fn leased(rate: f64) -> Arc<LeasedRate> {
        let link = Link::open("redis://127.0.0.1:1/", "t").unwrap();
        LeasedRate::carrier(link, "c", rate)
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_dropped_stops_leasing_and_its_task_waits_for_the_shutdown() {
        let rate = leased(10.0);
        let gone = Arc::downgrade(&rate);
        let (stop, shutdown) = watch::channel(false);
        let mut tasks = JoinSet::new();
        rate.start(&mut tasks, &shutdown);
        // Redis is unreachable: the task keeps trying while the rate lives.
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(rate);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(gone.upgrade().is_none(), "the task let go of the rate");
        // Ending on its own would read as a failed core task.
        assert!(tasks.try_join_next().is_none(), "it waits for the shutdown");
        stop.send(true).unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(1), tasks.join_next()).await;
        assert!(matches!(ended, Ok(Some(Ok(())))), "{ended:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn three_nodes_spending_late_never_put_more_than_the_rate_in_a_second() {
        const RATE: f64 = 100.0;
        let nodes: Vec<_> = (0..3).map(|_| leased(RATE)).collect();
        let mut schedule = Schedule {
            due: Instant::now(),
            rate: nodes[0].state.lock().params.rate,
        };
        let t0 = Instant::now();
        let mut sent: Vec<Duration> = Vec::new();
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut rand = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        // Every node keeps a lease in hand (as its lease loop does, with
        // round trips of up to SLOWEST_LEASE) and spends each permit as
        // late as allowed, at random.
        while t0.elapsed() < Duration::from_secs(10) {
            let now = Instant::now();
            for n in &nodes {
                let in_hand = n.tidy(&mut n.state.lock(), now);
                let params = n.state.lock().params;
                if in_hand <= u64::from(params.chunk / 2) {
                    let rtt = Duration::from_micros(rand(2_000));
                    let (start, len) = schedule.lease(now + rtt / 2, params.chunk);
                    assert!(n.take_lease(params, now, now + rtt, start, len));
                }
                let at = n.ready_at(now);
                if at <= now {
                    n.commit(now, 1);
                    sent.push(now - t0);
                }
            }
            tokio::time::advance(Duration::from_micros(100 + rand(700))).await;
        }
        sent.sort();
        let most = (0..sent.len())
            .map(|i| {
                sent[i..]
                    .iter()
                    .take_while(|t| **t < sent[i] + Duration::from_secs(1))
                    .count()
            })
            .max()
            .unwrap();
        // At most the rate in any second, with the margin's 2% given up.
        assert!(most <= RATE as usize, "{most}");
        assert!(sent.len() >= 960, "{} in 10 s", sent.len());
    }

    #[tokio::test(start_paused = true)]
    async fn a_senders_rate_asks_for_a_lease_only_when_wanted_and_once() {
        let link = Link::open("redis://127.0.0.1:1/", "t").unwrap();
        let rates = LeasedRates::new(link);
        let idle = rates.sender("12345", 10.0);
        let busy = rates.sender("54321", 10.0);
        // Made, not used: nothing asked.
        assert!(rates.wanting.rates.lock().is_empty());
        let now = Instant::now();
        // No permit in hand: a little later, and one request however often
        // it is asked.
        assert_eq!(busy.ready_at(now), now + RETRY);
        assert_eq!(busy.ready_at(now), now + RETRY);
        assert_eq!(rates.wanting.rates.lock().len(), 1);
        // Its lease arrives (one permit, 10/s stretched by the margin).
        let b = rates.wanting.rates.lock()[0].upgrade().unwrap();
        b.state.lock().asking = false;
        let params = b.state.lock().params;
        assert!(b.take_lease(params, now, now, 0, 102_000));
        rates.wanting.rates.lock().clear();
        assert_eq!(busy.ready_at(now), now);
        // Spending the last permit in hand asks for the next lease.
        busy.commit(now, 1);
        assert_eq!(rates.wanting.rates.lock().len(), 1);
        drop(idle);
    }

    #[tokio::test(start_paused = true)]
    async fn a_permit_is_never_spent_after_its_moment_has_long_passed() {
        let n = leased(100.0);
        let now = Instant::now();
        // A stretch of 5 permits starting now, ~10 ms apart.
        let params = n.state.lock().params;
        assert!(n.take_lease(params, now, now, 0, 50_500));
        assert_eq!(n.ready_at(now), now);
        // 25 ms later the first two permits are gone; the third is due.
        let later = now + Duration::from_millis(25);
        let at = n.ready_at(later);
        assert!(
            at > later && at <= later + Duration::from_millis(6),
            "{:?}",
            at - later
        );
        // A lease that took longer than SLOWEST_LEASE is not used.
        assert!(!n.take_lease(params, now, now + SLOWEST_LEASE * 2, 0, 50_000));
    }
}
