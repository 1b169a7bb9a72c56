//! Adaptive throttling for one bind: additive increase, multiplicative
//! decrease (AIMD), the way TCP finds a link's capacity.
//!
//! While a carrier accepts everything, the bind sends as fast as its window
//! and configured rate allow. A refusal (ESME_RTHROTTLED / ESME_RMSGQFUL, or
//! MM7 4006 / HTTP 503) sets the pace to 70% of what the carrier *accepted*
//! in the last second — its demonstrated capacity — at most once per
//! [`DECREASE_HOLD`] (a burst of refusals answers one window). Basing the cut
//! on accepted traffic rather than on the previous pace keeps an SMSC that
//! counts in fixed one-second windows, and refuses everything for the rest
//! of an exhausted window, from driving the pace down cut after cut. Every
//! [`INCREASE_EVERY`] without a refusal adds 5% of that capacity while the
//! pace is below it, and every [`PROBE_EVERY`] once past it (probing near
//! the carrier's known limit); once the
//! pace has stayed above that capacity for [`LIFTED_AFTER`] with no
//! refusal ([`LIFTED_ABOVE`]), the limit has moved, and each increase doubles the
//! step (TCP's slow start), so a bind recovers from a lifted cap within
//! seconds instead of creeping up, while under a steady cap the probe never
//! leaps past it. After [`RELEASE_AFTER`] without a
//! refusal, or once the pace reaches the configured ceiling, the pace is
//! dropped. Under a steady cap the rate hovers between 70% and 100% of what
//! the carrier tolerates.
//!
//! A cut needs a real signal: at least [`MIN_REFUSALS`] refusals making at
//! least [`MIN_REFUSED_SHARE`] of the answers in the last second. Sending
//! over a carrier's cap produces that at once; a carrier refusing a few
//! percent at random (or one stray refusal) does not slow the bind down —
//! the refused submits are simply retried.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::pace::Pace;

/// Factor applied on a refusal.
pub const DECREASE: f64 = 0.7;
/// Refusals closer together than this count once.
pub const DECREASE_HOLD: Duration = Duration::from_millis(300);
/// Quiet time between increases below the last cut's capacity, and while
/// a lifted limit is probed.
pub const INCREASE_EVERY: Duration = Duration::from_millis(250);
/// Quiet time between increases at or above the last cut's capacity.
pub const PROBE_EVERY: Duration = Duration::from_millis(500);
/// A pace this far above the last cut's capacity...
pub const LIFTED_ABOVE: f64 = 1.04;
/// ...held this long with no refusal means the carrier's limit has moved.
pub const LIFTED_AFTER: Duration = Duration::from_secs(1);
/// Quiet time after which the pace is dropped.
pub const RELEASE_AFTER: Duration = Duration::from_secs(30);
/// Lowest pace, messages per second.
pub const FLOOR: f64 = 1.0;
/// Refusals in the last second needed before a cut.
pub const MIN_REFUSALS: usize = 5;
/// Share of refused answers in the last second needed before a cut.
pub const MIN_REFUSED_SHARE: f64 = 0.10;

/// Accepted submits in the last second: the carrier's demonstrated capacity.
#[derive(Debug, Default)]
struct Meter {
    sends: VecDeque<Instant>,
}

impl Meter {
    fn record(&mut self, now: Instant) {
        self.sends.push_back(now);
        self.trim(now);
    }

    fn trim(&mut self, now: Instant) {
        while self
            .sends
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(1))
        {
            self.sends.pop_front();
        }
    }

    fn per_second(&mut self, now: Instant) -> f64 {
        self.trim(now);
        self.sends.len() as f64
    }

    fn last(&self) -> Option<Instant> {
        self.sends.back().copied()
    }
}

/// AIMD state of one bind.
#[derive(Debug)]
pub struct Aimd {
    pace: Option<Pace>,
    ceiling: Option<f64>,
    step: f64,
    /// What the carrier accepted per second when it last refused.
    limit: f64,
    /// The step above `limit`, doubling at each increase.
    probe: f64,
    last_decrease: Option<Instant>,
    last_change: Instant,
    /// Since when the pace has been above the last cut's capacity with no
    /// refusal.
    above_since: Option<Instant>,
    meter: Meter,
    refusals: Meter,
}

impl Aimd {
    /// A controller; `ceiling` is the configured rate, if any.
    pub fn new(ceiling: Option<f64>) -> Aimd {
        Aimd {
            pace: None,
            ceiling: ceiling.filter(|c| *c > 0.0),
            step: 1.0,
            limit: 0.0,
            probe: 1.0,
            last_decrease: None,
            last_change: Instant::now(),
            above_since: None,
            meter: Meter::default(),
            refusals: Meter::default(),
        }
    }

    /// Sets the configured rate it never goes above (a reload).
    pub fn set_ceiling(&mut self, ceiling: Option<f64>) {
        self.ceiling = ceiling.filter(|c| *c > 0.0);
        if let (Some(c), Some(p)) = (self.ceiling, self.pace.as_mut())
            && p.rate() > c
        {
            p.set_rate(c);
        }
    }

    /// The current adaptive rate (`None`: not throttled).
    pub fn rate(&self) -> Option<f64> {
        self.pace.as_ref().map(Pace::rate)
    }

    /// When the next send may go.
    pub fn ready_at(&self, now: Instant) -> Instant {
        self.pace.as_ref().map_or(now, |p| p.ready_at(now))
    }

    /// A PDU was sent.
    pub fn on_send(&mut self, now: Instant) {
        if let Some(p) = self.pace.as_mut() {
            p.commit(now, 1);
        }
    }

    /// The carrier accepted a PDU.
    pub fn on_accept(&mut self, now: Instant) {
        self.meter.record(now);
    }

    /// The carrier refused for now: slow down.
    pub fn on_throttle(&mut self, now: Instant) {
        self.refusals.record(now);
        self.above_since = None;
        let refused = self.refusals.per_second(now);
        let accepted = self.meter.per_second(now);
        if (refused as usize) < MIN_REFUSALS || refused < (refused + accepted) * MIN_REFUSED_SHARE {
            return;
        }
        if self
            .last_decrease
            .is_some_and(|t| now.duration_since(t) < DECREASE_HOLD)
        {
            return;
        }
        let capacity = self.meter.per_second(now).max(FLOOR);
        let next = (capacity * DECREASE).max(FLOOR);
        self.step = (capacity * 0.05).max(1.0);
        self.limit = capacity;
        self.probe = self.step;
        let p = self
            .pace
            .get_or_insert_with(|| Pace::new(next).expect("rate is at least the floor"));
        p.set_rate(next);
        // The refused PDU used a slot: the next send waits one interval.
        p.commit(now, 1);
        self.last_decrease = Some(now);
        self.last_change = now;
    }

    /// Called periodically: speeds back up while the carrier accepts.
    pub fn on_tick(&mut self, now: Instant) {
        let Some(p) = self.pace.as_mut() else { return };
        let quiet = self
            .last_decrease
            .map_or(Duration::MAX, |t| now.duration_since(t));
        if quiet >= RELEASE_AFTER {
            self.pace = None;
            return;
        }
        let refused_lately = self
            .refusals
            .last()
            .is_some_and(|t| now.duration_since(t) < INCREASE_EVERY);
        // A whole second above the capacity of the last cut with no refusal
        // (a carrier still capped there refuses within its next window)
        // shows the limit has moved: probe faster.
        let above = p.rate() >= self.limit * LIFTED_ABOVE && !refused_lately;
        if !above {
            self.above_since = None;
        } else if self.above_since.is_none() {
            self.above_since = Some(now);
        }
        let lifted = self
            .above_since
            .is_some_and(|t| now.duration_since(t) >= LIFTED_AFTER);
        // Back up to the known capacity quickly; past it, probe at half that
        // pace until the carrier shows its limit moved (each probe past a
        // steady cap costs refusals).
        let every = if p.rate() < self.limit || lifted {
            INCREASE_EVERY
        } else {
            PROBE_EVERY
        };
        if now.duration_since(self.last_change) >= every && quiet >= INCREASE_EVERY {
            let step = if lifted {
                self.probe *= 2.0;
                self.probe
            } else {
                self.probe = self.step;
                self.step
            };
            let next = p.rate() + step;
            if self.ceiling.is_some_and(|c| next >= c) {
                self.pace = None;
            } else {
                p.set_rate(next);
            }
            self.last_change = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A carrier that refuses above `capacity`/s: the controller settles
    /// between 70% and 100% of it and refuses little.
    #[tokio::test(start_paused = true)]
    async fn converges_below_a_hidden_capacity() {
        let capacity = 200.0;
        let mut a = Aimd::new(None);
        let mut accepted_at: VecDeque<Instant> = VecDeque::new();
        let start = Instant::now();
        let (mut sent, mut refused) = (0u32, 0u32);
        let mut last_tick = start;
        let mut late_accepted = 0u32;
        while start.elapsed() < Duration::from_secs(30) {
            let now = Instant::now();
            let at = a.ready_at(now);
            if at > now {
                tokio::time::sleep_until(at).await;
                continue;
            }
            // Unthrottled senders would burst at 5000/s.
            a.on_send(now);
            sent += 1;
            while accepted_at
                .front()
                .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
            {
                accepted_at.pop_front();
            }
            if (accepted_at.len() as f64) < capacity {
                accepted_at.push_back(now);
                a.on_accept(now);
                if start.elapsed() >= Duration::from_secs(10) {
                    late_accepted += 1;
                }
            } else {
                refused += 1;
                a.on_throttle(now);
            }
            if now.duration_since(last_tick) >= Duration::from_millis(250) {
                a.on_tick(now);
                last_tick = now;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let achieved = f64::from(late_accepted) / 20.0;
        assert!(
            achieved >= capacity * 0.7 && achieved <= capacity,
            "settled at {achieved}/s for capacity {capacity}/s"
        );
        assert!(
            f64::from(refused) < f64::from(sent) * 0.1,
            "{refused} refused of {sent}"
        );
        let r = a.rate().expect("still adapting");
        assert!(r <= capacity * 1.3, "{r}");
    }

    /// An SMSC counting in fixed one-second windows (refusing the rest of a
    /// window once its quota is used) must not drive the pace down and down.
    #[tokio::test(start_paused = true)]
    async fn fixed_window_carriers_are_tracked_too() {
        let quota = 500u32;
        let mut a = Aimd::new(None);
        let start = Instant::now();
        let (mut window, mut used) = (0u64, 0u32);
        let mut late_accepted = 0u32;
        let mut last_tick = start;
        while start.elapsed() < Duration::from_secs(30) {
            let now = Instant::now();
            let at = a.ready_at(now);
            if at > now {
                tokio::time::sleep_until(at).await;
                continue;
            }
            a.on_send(now);
            let w = now.duration_since(start).as_secs();
            if w != window {
                window = w;
                used = 0;
            }
            if used < quota {
                used += 1;
                a.on_accept(now);
                if w >= 10 {
                    late_accepted += 1;
                }
            } else {
                a.on_throttle(now);
            }
            if now.duration_since(last_tick) >= Duration::from_millis(250) {
                a.on_tick(now);
                last_tick = now;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let achieved = f64::from(late_accepted) / 20.0;
        assert!(
            achieved >= f64::from(quota) * 0.75,
            "settled at {achieved}/s for {quota}/s"
        );
    }

    /// A carrier that refuses above 500/s for ten seconds and then lifts its
    /// cap: within five seconds of the last refusal the bind is back at 90%
    /// of its configured 1,000/s (or unthrottled).
    #[tokio::test(start_paused = true)]
    async fn recovers_within_seconds_once_throttling_stops() {
        let (cap, ceiling) = (500.0, 1000.0);
        let mut a = Aimd::new(Some(ceiling));
        let mut accepted_at: VecDeque<Instant> = VecDeque::new();
        let start = Instant::now();
        let mut last_tick = start;
        let mut last_refusal = None;
        let mut recovered_after = None;
        while start.elapsed() < Duration::from_secs(25) {
            let now = Instant::now();
            let at = a.ready_at(now);
            if at > now {
                tokio::time::sleep_until(at).await;
                continue;
            }
            a.on_send(now);
            while accepted_at
                .front()
                .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
            {
                accepted_at.pop_front();
            }
            let capped = start.elapsed() < Duration::from_secs(10);
            if capped && accepted_at.len() as f64 >= cap {
                a.on_throttle(now);
                last_refusal = Some(now);
            } else {
                accepted_at.push_back(now);
                a.on_accept(now);
            }
            if now.duration_since(last_tick) >= Duration::from_millis(250) {
                a.on_tick(now);
                last_tick = now;
            }
            if !capped && recovered_after.is_none() && a.rate().is_none_or(|r| r >= ceiling * 0.9) {
                recovered_after = Some(now.duration_since(last_refusal.expect("it was throttled")));
            }
            // The bind's own configured rate.
            tokio::time::sleep(Duration::from_secs_f64(1.0 / ceiling)).await;
        }
        let after = recovered_after.expect("recovered at all");
        assert!(after <= Duration::from_secs(5), "took {after:?}");
    }

    /// A carrier refusing 5% at random: the pace is never cut.
    #[tokio::test(start_paused = true)]
    async fn random_refusals_do_not_collapse_the_rate() {
        let mut a = Aimd::new(None);
        let start = Instant::now();
        let mut n = 0u32;
        while start.elapsed() < Duration::from_secs(10) {
            let now = Instant::now();
            a.on_send(now);
            n += 1;
            if n.is_multiple_of(20) {
                a.on_throttle(now);
            } else {
                a.on_accept(now);
            }
            a.on_tick(now);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(a.rate(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn refusal_bursts_count_once_and_quiet_releases() {
        let mut a = Aimd::new(Some(1000.0));
        let now = Instant::now();
        for _ in 0..100 {
            a.on_send(now);
            a.on_accept(now);
        }
        // A stray refusal or two do not slow the bind down...
        a.on_throttle(now);
        assert_eq!(a.rate(), None);
        // ...a real share of refusals does.
        for _ in 0..20 {
            a.on_throttle(now);
        }
        let first = a.rate().unwrap();
        assert!((first - 70.0).abs() < 1e-6, "{first}");
        a.on_throttle(now + Duration::from_millis(10));
        assert_eq!(a.rate().unwrap(), first);
        tokio::time::advance(RELEASE_AFTER).await;
        a.on_tick(Instant::now());
        assert_eq!(a.rate(), None);
    }
}
