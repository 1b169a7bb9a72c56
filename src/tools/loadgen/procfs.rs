//! CPU time and memory of a process, from Linux `/proc/<pid>/stat` and
//! `/proc/<pid>/status`.

use serde::Serialize;

/// Clock ticks per second of `/proc/<pid>/stat` times. Linux reports them in
/// `USER_HZ`, which is 100 on every architecture it exports to user space.
const USER_HZ: f64 = 100.0;

/// Which process a reading is taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proc {
    /// This process (`/proc/self`).
    This,
    /// Another process by id.
    Pid(u32),
}

impl Proc {
    fn path(self, file: &str) -> String {
        match self {
            Proc::This => format!("/proc/self/{file}"),
            Proc::Pid(p) => format!("/proc/{p}/{file}"),
        }
    }

    /// CPU time and memory now.
    ///
    /// # Errors
    /// The `/proc` files cannot be read (no such process, not Linux) or do
    /// not have the expected shape.
    pub fn read(self) -> std::io::Result<Reading> {
        let stat = std::fs::read_to_string(self.path("stat"))?;
        let status = std::fs::read_to_string(self.path("status"))?;
        let bad =
            |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
        let (user_ticks, sys_ticks) = parse_stat(&stat).ok_or_else(|| bad("unreadable stat"))?;
        Ok(Reading {
            user_s: user_ticks as f64 / USER_HZ,
            sys_s: sys_ticks as f64 / USER_HZ,
            peak_rss_bytes: status_kib(&status, "VmHWM:").ok_or_else(|| bad("no VmHWM"))? * 1024,
            rss_bytes: status_kib(&status, "VmRSS:").ok_or_else(|| bad("no VmRSS"))? * 1024,
        })
    }
}

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Reading {
    /// User CPU seconds since the process started.
    pub user_s: f64,
    /// System CPU seconds since the process started.
    pub sys_s: f64,
    /// Peak resident set size since the process started (`VmHWM`).
    pub peak_rss_bytes: u64,
    /// Resident set size now (`VmRSS`).
    pub rss_bytes: u64,
}

/// What a process used over the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Usage {
    /// Which process: `self (pid N)` or the pid given.
    pub process: String,
    /// User + system CPU seconds during the run.
    pub cpu_s: f64,
    /// User CPU seconds during the run.
    pub user_s: f64,
    /// System CPU seconds during the run.
    pub sys_s: f64,
    /// CPU seconds per wall second over the whole run (1.0 = one core busy).
    pub cores: f64,
    /// The same over the send phase only (first batch to last ack).
    pub cores_while_sending: Option<f64>,
    /// Peak resident set size of the process's life so far (`VmHWM`).
    pub peak_rss_bytes: u64,
    /// Resident set size at the end.
    pub rss_bytes: u64,
}

impl Usage {
    /// The difference between two readings over `wall_s` seconds.
    pub fn between(process: String, start: &Reading, end: &Reading, wall_s: f64) -> Usage {
        let user_s = (end.user_s - start.user_s).max(0.0);
        let sys_s = (end.sys_s - start.sys_s).max(0.0);
        Usage {
            process,
            cpu_s: user_s + sys_s,
            user_s,
            sys_s,
            cores: (user_s + sys_s) / wall_s.max(1e-9),
            cores_while_sending: None,
            peak_rss_bytes: end.peak_rss_bytes,
            rss_bytes: end.rss_bytes,
        }
    }
}

/// `utime` and `stime` (fields 14 and 15) of a `stat` line. The command
/// name (field 2) is in parentheses and may hold spaces, so fields are
/// counted from the last `)`.
pub fn parse_stat(stat: &str) -> Option<(u64, u64)> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    // `after` starts at field 3 (state): utime is the 12th from there.
    let utime = fields.nth(11)?.parse().ok()?;
    let stime = fields.next()?.parse().ok()?;
    Some((utime, stime))
}

/// A `Key:   123 kB` line of `status`, in KiB.
pub fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
