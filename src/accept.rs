//! What every accept loop needs when `accept` fails: [`AcceptBackoff`].
//!
//! At the descriptor limit (`EMFILE`, `ENFILE`) or out of kernel memory
//! (`ENOBUFS`, `ENOMEM`) the pending connection stays in the backlog, so the
//! listener stays readable and a loop that simply retries spins at 100% CPU
//! and logs as fast as it can (1.5 M lines in 6 s, issue 10). The loop must
//! sleep instead, longer each time (10 ms doubling to 1 s), until an accept
//! succeeds, and log at a bounded rate: the first failure at once, then at
//! most one line per [`AcceptBackoff::LOG_EVERY`] saying how many failures
//! it did not show. Every failure is counted in
//! `sluice_accept_errors_total{listener}`.
//!
//! Errors that belong to one connection only (the peer reset it or went away
//! between SYN and `accept`, and the network errors Linux passes on from the
//! new socket, see accept(2)) are retried at once: the next connection is
//! unaffected.

use std::io;
use std::time::Duration;

use tokio::time::Instant;

const TARGET: &str = "sluice::accept";

/// Back-off and bounded logging for one listener's accept loop.
///
/// Call [`failed`](AcceptBackoff::failed) with each error (it logs and
/// sleeps) and [`succeeded`](AcceptBackoff::succeeded) after each accept.
///
/// # Defaults
/// first delay 10 ms, doubling to at most 1 s; one log line per 10 s.
#[derive(Debug)]
pub struct AcceptBackoff {
    listener: &'static str,
    min: Duration,
    max: Duration,
    /// The next delay for a resource error; zero after a success.
    delay: Duration,
    last_log: Option<Instant>,
    /// Failures since the last log line.
    unlogged: u64,
}

impl AcceptBackoff {
    /// First delay after a resource error.
    pub const MIN_DELAY: Duration = Duration::from_millis(10);
    /// Longest delay.
    pub const MAX_DELAY: Duration = Duration::from_secs(1);
    /// At most one log line per this interval.
    pub const LOG_EVERY: Duration = Duration::from_secs(10);

    /// Back-off for the listener named `listener` (logs and metrics).
    pub fn new(listener: &'static str) -> AcceptBackoff {
        AcceptBackoff {
            listener,
            min: Self::MIN_DELAY,
            max: Self::MAX_DELAY,
            delay: Duration::ZERO,
            last_log: None,
            unlogged: 0,
        }
    }

    /// An accept succeeded: the next resource error starts from the
    /// shortest delay again.
    pub fn succeeded(&mut self) {
        self.delay = Duration::ZERO;
    }

    /// Records `e` (counted, logged at a bounded rate) and answers how long
    /// to wait before the next accept: zero for an error of one connection,
    /// else the current delay, which doubles for next time.
    pub fn record(&mut self, e: &io::Error) -> Duration {
        metrics::counter!("sluice_accept_errors_total", "listener" => self.listener).increment(1);
        let wait = if is_connection_error(e) {
            Duration::ZERO
        } else {
            let wait = self.delay.max(self.min);
            self.delay = (wait * 2).min(self.max);
            wait
        };
        self.unlogged += 1;
        let now = Instant::now();
        if self
            .last_log
            .is_none_or(|t| now.saturating_duration_since(t) >= Self::LOG_EVERY)
        {
            let failures = std::mem::take(&mut self.unlogged);
            self.last_log = Some(now);
            tracing::warn!(target: TARGET, listener = self.listener, error = %e, failures,
                retry_in = ?wait, "accept failed");
        }
        wait
    }

    /// [`record`](AcceptBackoff::record)s `e` and sleeps as long as it says.
    pub async fn failed(&mut self, e: &io::Error) {
        let wait = self.record(e);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// Errors of one connection, not of the listener (see accept(2)).
fn is_connection_error(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted
            | ConnectionReset
            | ConnectionRefused
            | Interrupted
            | WouldBlock
            | NetworkDown
            | NetworkUnreachable
            | HostUnreachable
    ) {
        return true;
    }
    // Linux also passes these errors of the new socket on from accept:
    // EPROTO, ENOPROTOOPT, EHOSTDOWN, ENONET, EOPNOTSUPP.
    cfg!(target_os = "linux") && matches!(e.raw_os_error(), Some(71 | 92 | 112 | 64 | 95))
}

#[cfg(test)]
mod tests;
