//! Failed authentication, throttled per address, for every door that
//! checks a secret (ingest's Hello, the API's bearer token): the n-th
//! failure within a minute is answered only after `delay × 2^(n-1)` (at most
//! `delay_max`), and once an address has failed `per_minute` times in the
//! last minute its further attempts are refused at once, without looking at
//! the secret, until the oldest of those failures is a minute old.
//! Successes do not clear failures (an attacker behind the same address as
//! a client gains nothing from the client's success).
//!
//! Addresses are counted by [`address_key`] (an IPv4 address, or the /64 of
//! an IPv6 one). Everything is in memory and bounded: an address has an
//! entry only while it has recent failures, and stale entries are swept.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// The window over which failed authentications are counted.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// How failures are answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Delay before answering an address's first failure.
    pub delay: Duration,
    /// Longest such delay.
    pub delay_max: Duration,
    /// Failures from one address per minute before it is refused unchecked.
    pub per_minute: u32,
}

/// Recent failures per address.
#[derive(Debug)]
pub struct AuthThrottle {
    cfg: ThrottleConfig,
    state: Mutex<Failures>,
}

#[derive(Debug)]
struct Failures {
    /// Recent failures per address, oldest first.
    by_address: HashMap<IpAddr, VecDeque<Instant>>,
    /// Size of `by_address` that triggers the next sweep of stale entries
    /// (also swept once a window has passed since the last sweep).
    sweep_at: usize,
    swept: Option<Instant>,
}

impl AuthThrottle {
    /// A throttle with these limits.
    pub fn new(cfg: ThrottleConfig) -> AuthThrottle {
        AuthThrottle {
            cfg,
            state: Mutex::new(Failures {
                by_address: HashMap::new(),
                sweep_at: 1024,
                swept: None,
            }),
        }
    }

    /// The limits.
    pub fn config(&self) -> &ThrottleConfig {
        &self.cfg
    }

    /// `Err(retry_in)` when `ip` has used up its failures for the window.
    ///
    /// # Errors
    /// The address is locked out for the returned duration.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let ip = address_key(ip);
        let mut st = self.state.lock();
        let Some(fails) = st.by_address.get_mut(&ip) else {
            return Ok(());
        };
        forget_old(fails, now);
        if fails.len() >= self.cfg.per_minute.max(1) as usize {
            let oldest = fails.front().copied().unwrap_or(now);
            return Err((oldest + FAILURE_WINDOW).saturating_duration_since(now));
        }
        Ok(())
    }

    /// Records a failure of `ip`; answers how long to wait before saying so.
    pub fn failed(&self, ip: IpAddr, now: Instant) -> Duration {
        let ip = address_key(ip);
        let mut st = self.state.lock();
        let stale = st
            .swept
            .is_none_or(|t| now.saturating_duration_since(t) >= FAILURE_WINDOW);
        if st.by_address.len() >= st.sweep_at || (stale && !st.by_address.is_empty()) {
            st.by_address.retain(|_, f| {
                forget_old(f, now);
                !f.is_empty()
            });
            st.sweep_at = (st.by_address.len() * 2).max(1024);
            st.swept = Some(now);
        }
        let fails = st.by_address.entry(ip).or_default();
        forget_old(fails, now);
        fails.push_back(now);
        // Only the last `cap` failures matter for the lock-out.
        let cap = self.cfg.per_minute.max(1) as usize;
        while fails.len() > cap {
            fails.pop_front();
        }
        let doublings = (fails.len() - 1).min(31) as u32;
        self.cfg
            .delay
            .saturating_mul(1 << doublings)
            .min(self.cfg.delay_max)
    }

    /// Addresses with recent failures (after the last sweep).
    pub fn tracked(&self) -> usize {
        self.state.lock().by_address.len()
    }
}

fn forget_old(fails: &mut VecDeque<Instant>, now: Instant) {
    while fails
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= FAILURE_WINDOW)
    {
        fails.pop_front();
    }
}

/// The key limits are counted under: the IPv4 address (also when mapped
/// into IPv6), or the /64 of an IPv6 address.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> AuthThrottle {
        AuthThrottle::new(ThrottleConfig {
            delay: Duration::from_millis(100),
            delay_max: Duration::from_millis(700),
            per_minute: 4,
        })
    }

    #[test]
    fn failures_double_the_wait_then_lock_the_address_out_for_the_window() {
        let t = throttle();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let now = Instant::now();
        let waits: Vec<u64> = (0..4)
            .map(|_| t.failed(ip, now).as_millis() as u64)
            .collect();
        assert_eq!(waits, vec![100, 200, 400, 700]);
        assert_eq!(t.check(ip, now), Err(FAILURE_WINDOW));
        // Another address is not affected; the same /64 is.
        assert_eq!(t.check("192.0.2.2".parse().unwrap(), now), Ok(()));
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        for _ in 0..4 {
            t.failed(a, now);
        }
        assert!(t.check("2001:db8::ffff".parse().unwrap(), now).is_err());
        // A minute after the oldest failure the address may try again.
        assert_eq!(t.check(ip, now + FAILURE_WINDOW), Ok(()));
    }
}
