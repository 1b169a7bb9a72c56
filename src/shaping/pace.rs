//! A pacing limiter (GCRA, the algorithm `governor` uses) with separate
//! *peek* and *commit*, on tokio's clock, and a daily cap.
//!
//! Why not `governor` here: a message must take a permit from every level it
//! passes (carrier, tenant, sender) or from none. `governor` only offers
//! check-and-consume, so checking three levels would burn permits at the
//! first levels whenever a later one refuses. Peek-then-commit makes the
//! multi-level take atomic (the scheduler is single-threaded per carrier).
//! The bind-level limit, a single level, stays on `governor` (`rate.rs`).
//!
//! The rate can change while running ([`Pace::set_rate`]): adaptive
//! throttling lowers and raises it.

use std::time::Duration;

use tokio::time::Instant;

/// How early a permit may be taken (covers the timer wheel's granularity).
pub const TOLERANCE: Duration = Duration::from_millis(2);

/// Paces permits at `rate` per second: consecutive permits are one interval
/// apart. Timers fire on whole milliseconds, so two allowances keep the rate
/// exact: a permit taken less than [`TOLERANCE`] late keeps the schedule (no
/// drift), and above 500/s (interval under the tolerance) a permit may be
/// taken up to [`TOLERANCE`] early, several per tick. Up to 500/s no
/// one-second window holds more than `rate` permits; above, at most
/// `rate × 2 ms` more (0.2%); a multi-permit take adds its `n - 1`.
#[derive(Debug, Clone)]
pub struct Pace {
    interval: Duration,
    /// Theoretical arrival time of the next permit.
    tat: Option<Instant>,
    rate: f64,
}

impl Pace {
    /// A pace of `per_second` permits a second; `None` for 0 (unlimited).
    pub fn new(per_second: f64) -> Option<Pace> {
        (per_second > 0.0).then(|| Pace {
            interval: Duration::from_secs_f64(1.0 / per_second),
            tat: None,
            rate: per_second,
        })
    }

    /// Permits per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Changes the rate from now on.
    pub fn set_rate(&mut self, per_second: f64) {
        let per_second = per_second.max(0.01);
        self.rate = per_second;
        self.interval = Duration::from_secs_f64(1.0 / per_second);
    }

    /// When the next permit is available (`now` when at once).
    pub fn ready_at(&self, now: Instant) -> Instant {
        let early = if self.interval < TOLERANCE {
            TOLERANCE
        } else {
            Duration::ZERO
        };
        match self.tat {
            Some(t) if t > now + early => t - early,
            _ => now,
        }
    }

    /// Takes `n` permits at `now` (call after [`Pace::ready_at`] said now).
    pub fn commit(&mut self, now: Instant, n: u32) {
        // Slightly late (a timer tick) keeps the schedule; idle time beyond
        // that is not banked.
        let start = match self.tat {
            Some(t) if now < t + TOLERANCE => t,
            _ => now,
        };
        self.tat = Some(start + self.interval * n.max(1));
    }
}

/// A cap on permits per UTC day.
#[derive(Debug, Clone)]
pub struct DailyCap {
    cap: u64,
    day: u64,
    used: u64,
}

const DAY_MS: u64 = 86_400_000;

impl DailyCap {
    /// At most `cap` permits per UTC day; `None` for 0 (no cap).
    pub fn new(cap: u64) -> Option<DailyCap> {
        (cap > 0).then_some(DailyCap {
            cap,
            day: 0,
            used: 0,
        })
    }

    /// Wall-clock ms when a permit is available (`now_ms` when at once).
    pub fn ready_at_ms(&mut self, now_ms: u64, n: u32) -> u64 {
        let day = now_ms / DAY_MS;
        if day != self.day {
            self.day = day;
            self.used = 0;
        }
        if self.used + u64::from(n) <= self.cap || self.used == 0 {
            now_ms
        } else {
            (day + 1) * DAY_MS
        }
    }

    /// Takes `n` permits on `now_ms`'s day.
    pub fn commit(&mut self, now_ms: u64, n: u32) {
        let _ = self.ready_at_ms(now_ms, n);
        self.used += u64::from(n);
    }

    /// Changes the cap; what today used still counts.
    pub fn set_cap(&mut self, cap: u64) {
        self.cap = cap;
    }

    /// Permits used today.
    pub fn used(&self) -> u64 {
        self.used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn pace_spaces_permits_evenly() {
        let mut p = Pace::new(4.0).unwrap();
        let t0 = Instant::now();
        let mut times = Vec::new();
        for _ in 0..8 {
            let at = p.ready_at(Instant::now());
            tokio::time::sleep_until(at).await;
            p.commit(Instant::now(), 1);
            times.push(t0.elapsed());
        }
        assert_eq!(times[0], Duration::ZERO);
        assert_eq!(times[4], Duration::from_secs(1));
        assert_eq!(times[7], Duration::from_millis(1750));
        // Spacing stays one interval.
        assert_eq!(times[5] - times[4], Duration::from_millis(250));
    }

    #[tokio::test(start_paused = true)]
    async fn peeking_consumes_nothing_and_idle_time_does_not_bank_a_burst() {
        let mut p = Pace::new(10.0).unwrap();
        let now = Instant::now();
        for _ in 0..100 {
            assert_eq!(p.ready_at(now), now);
        }
        p.commit(now, 3);
        assert_eq!(p.ready_at(now), now + Duration::from_millis(300));
        tokio::time::advance(Duration::from_secs(10)).await;
        let later = Instant::now();
        p.commit(later, 1);
        // Ten idle seconds do not allow ten seconds' worth at once.
        assert_eq!(p.ready_at(later), later + Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn high_rates_are_not_capped_by_the_timer() {
        // 5,000/s: an interval of 200 µs, below the timer's 1 ms ticks.
        let mut p = Pace::new(5000.0).unwrap();
        let t0 = Instant::now();
        let mut n = 0;
        while t0.elapsed() < Duration::from_secs(1) {
            let now = Instant::now();
            let at = p.ready_at(now);
            if at > now {
                // Timers fire on whole milliseconds.
                let ms = Duration::from_millis((at - t0).as_millis() as u64 + 1);
                tokio::time::sleep_until(t0 + ms).await;
                continue;
            }
            p.commit(now, 1);
            n += 1;
        }
        assert!((4990..=5010).contains(&n), "{n}");
    }

    #[tokio::test(start_paused = true)]
    async fn late_timers_do_not_drift_the_rate() {
        // 80/s woken 0.5 ms late every time still gives 80 a second.
        let mut p = Pace::new(80.0).unwrap();
        let t0 = Instant::now();
        let mut n = 0;
        while t0.elapsed() < Duration::from_secs(10) {
            let now = Instant::now();
            let at = p.ready_at(now);
            if at > now {
                tokio::time::sleep_until(at + Duration::from_micros(500)).await;
                continue;
            }
            p.commit(now, 1);
            n += 1;
        }
        assert_eq!(n, 800);
    }

    #[tokio::test(start_paused = true)]
    async fn rate_changes_apply_to_the_next_permit() {
        let mut p = Pace::new(100.0).unwrap();
        let now = Instant::now();
        p.set_rate(10.0);
        p.commit(now, 1);
        assert_eq!(p.ready_at(now), now + Duration::from_millis(100));
    }

    #[test]
    fn daily_cap_resets_at_utc_midnight() {
        let mut c = DailyCap::new(2).unwrap();
        let t = 5 * DAY_MS + 1000;
        assert_eq!(c.ready_at_ms(t, 1), t);
        c.commit(t, 1);
        c.commit(t, 1);
        assert_eq!(c.ready_at_ms(t + 5, 1), 6 * DAY_MS);
        assert_eq!(c.ready_at_ms(6 * DAY_MS, 1), 6 * DAY_MS);
        assert_eq!(c.used(), 0);
        assert!(DailyCap::new(0).is_none());
    }
}
