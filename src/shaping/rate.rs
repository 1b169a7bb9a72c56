//! Rate limiting on tokio's clock: a thin wrapper over `governor` whose clock
//! reads `tokio::time::Instant`, so paused-clock tests see limits advance with
//! virtual time and waits use `tokio::time::sleep`.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

/// A clock for governor that follows tokio's (pausable) time.
#[derive(Clone, Debug)]
pub struct TokioClock {
    origin: tokio::time::Instant,
}

impl Default for TokioClock {
    fn default() -> Self {
        TokioClock {
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    type Instant = Nanos;
    fn now(&self) -> Nanos {
        Nanos::from(self.origin.elapsed())
    }
}

/// A rate limit: `per_second` permits each second, paced evenly (a burst of
/// one), so no one-second window ever holds more than `per_second` permits.
#[derive(Debug)]
pub struct Rate {
    limiter: RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Nanos>>,
    clock: TokioClock,
    per_second: u32,
}

impl Rate {
    /// A limit of `per_second` permits a second; `None` for 0 (unlimited).
    pub fn per_second(per_second: u32) -> Option<Rate> {
        Rate::with_burst(per_second, 1)
    }

    /// A limit allowing bursts of `burst` permits.
    pub fn with_burst(per_second: u32, burst: u32) -> Option<Rate> {
        let n = NonZeroU32::new(per_second)?;
        let period = Duration::from_nanos(1_000_000_000 / u64::from(n.get()));
        let quota = Quota::with_period(period)?.allow_burst(NonZeroU32::new(burst.max(1))?);
        let clock = TokioClock::default();
        Some(Rate {
            limiter: RateLimiter::direct_with_clock(quota, clock.clone()),
            clock,
            per_second,
        })
    }

    /// Configured permits per second.
    pub fn per_second_value(&self) -> u32 {
        self.per_second
    }

    /// Takes a permit now, or says how long until one is free.
    pub fn check(&self) -> Result<(), Duration> {
        self.limiter
            .check()
            .map_err(|nu| nu.wait_time_from(self.clock.now()))
    }

    /// Waits for a permit and takes it.
    pub async fn until_ready(&self) {
        while let Err(wait) = self.check() {
            tokio::time::sleep(wait.max(Duration::from_micros(50))).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn paces_permits_on_virtual_time() {
        let r = Rate::per_second(100).unwrap();
        let start = tokio::time::Instant::now();
        let mut stamps = Vec::new();
        for _ in 0..1000 {
            r.until_ready().await;
            stamps.push(start.elapsed());
        }
        // 1000 permits at 100/s take ~10 virtual seconds.
        let total = stamps.last().unwrap().as_secs_f64();
        assert!((9.9..=10.1).contains(&total), "took {total}s");
        // No one-second window holds more than 100.
        for (i, t) in stamps.iter().enumerate() {
            let in_window = stamps[i..]
                .iter()
                .take_while(|u| u.saturating_sub(*t) < Duration::from_secs(1))
                .count();
            assert!(
                in_window <= 100,
                "{in_window} permits in the second after {t:?}"
            );
        }
    }

    #[test]
    fn zero_is_unlimited() {
        assert!(Rate::per_second(0).is_none());
    }
}
