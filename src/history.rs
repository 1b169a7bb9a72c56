//! Every message's history: a bounded, durable, per-message timeline
//! (accepted, each wait the pipeline knows a cause for, dispatched, each
//! carrier answer, each receipt, fallback, terminal state, event
//! acknowledged), kept for `history.retention` within `history.max_bytes`,
//! and looked up by message id, `(tenant, client_ref)`, carrier message id
//! or recipient and time range (`GET /admin/messages/{id}/history`,
//! `GET /admin/history`, `sluice trace`).
//!
//! # What it owns
//! [`History`], the cheap handle every room that sees a step holds (the
//! ledger hands it out: [`crate::ledger::Ledger::history`]); the record
//! format ([`record`]); the segment files under `<data_dir>/history/` and
//! their writer thread, rotation and retention ([`store`]); the lookups and
//! the JSON / text timelines ([`query`]).
//!
//! # The hot path
//! A step is one call: the handle takes the lock of one of 8 buffers (picked
//! by message id), encodes the record straight into it (strings are copied
//! from what the caller already holds; nothing is allocated per record once
//! the buffers have grown) and lets go. When a buffer holds more than its
//! share of 16 MiB the record is dropped and counted
//! (`sluice_history_dropped_total`): history never pushes back on dispatch.
//! A writer thread swaps each buffer for an empty one every 100 ms and
//! appends what it took to the head segment in a few `write`s.
//!
//! Within one write round, records go out buffer after buffer, so a round's
//! segments are ordered by buffer, not strictly by time; retention works on
//! whole segments and may drop a few milliseconds of one buffer's steps
//! before another's. Each message ~250 bytes (six to eight steps; measured
//! in `docs/PERFORMANCE.md`): size `max_bytes` as 250 B × messages per
//! `retention`.
//!
//! # What a crash loses
//! History is not synced per record (the journal is what guarantees
//! delivery; this is its diary). A process crash loses what sat in the
//! buffers: at most the last ~100 ms of steps. A power loss can also lose
//! what the OS had not written back of the head segment (segments are
//! synced when they are closed). A torn record at a segment's end reads as
//! its end.
//!
//! # Why a hand-written format
//! Records are tiny (20–80 bytes) and written ~6 times per message at
//! 100 k messages/s; a length-prefixed binary layout encodes in place with no
//! intermediate value or allocation, and its decoder is ~150 lines that
//! check every length ([`record::decode`], fuzzed by
//! `fuzzing::history_segment`). A serde format would allocate per record
//! and a database would compete for the two cores.
//!
//! # Lookups and their cost
//! A lookup flushes the buffers, then scans segments: a sequential read of
//! every segment that can hold the answer, newest first. Segment names carry
//! their first and last record times and message id ranges, so a recipient
//! query skips segments outside its time range, and a message id query
//! skips segments written before the message existed. Only records of the
//! kind a pass looks for are decoded (the rest are skipped by their
//! length). Everything else is a full scan: ~0.9 s per GiB from the page
//! cache on this machine class (a message id ~0.25 s per GiB of segments
//! its id range does not rule out; `tests::scan_speed`), run on a blocking
//! thread (admin use, not per message). At most 100 messages are answered.
//!
//! # Not recorded
//! The SMPP bind a part was written on (the carrier's handler is shared by
//! its binds), waits in the fair queue for rate limits or quiet hours (the
//! scheduler decides them per batch, not per message; the gap between
//! accepted and dispatched shows them), and the door a message came by.

pub mod query;
pub mod record;
pub mod store;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::model::{DeliveryState, Message, MessageId, now_ms};
use record::Kind;

pub use query::{Query, Timeline};

/// Buffers between producers and the writer (a power of two).
const SHARDS: usize = 8;
/// Bytes all buffers may hold together before records are dropped.
const BUFFER_BYTES: usize = 16 << 20;

/// `[history]`: every message's timeline.
///
/// # Defaults
/// On, kept 7 days, at most 2 GiB on disk (oldest segments dropped first).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryConfig {
    /// Record history at all.
    pub enabled: bool,
    /// How long history is kept; older segments are deleted.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// Most bytes of history on disk; past it the oldest segments go.
    pub max_bytes: u64,
    /// Directory of the segments; default `<data_dir>/history`.
    pub path: Option<PathBuf>,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            enabled: true,
            retention: Duration::from_secs(7 * 86_400),
            max_bytes: 2 << 30,
            path: None,
        }
    }
}

impl HistoryConfig {
    /// Problems with the values (for `Config::problems`).
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.enabled && self.max_bytes < 64 << 10 {
            p.push(format!(
                "history.max_bytes = {} is too small (at least 65536)",
                self.max_bytes
            ));
        }
        if self.enabled && self.retention < Duration::from_secs(1) {
            p.push("history.retention must be at least 1s".into());
        }
        p
    }
}

/// The handle that records steps (see the module doc). Cloning is cheap; a
/// disabled history records nothing and costs a branch.
#[derive(Clone, Debug, Default)]
pub struct History {
    inner: Option<Arc<store::Inner>>,
}

impl History {
    /// History that records nothing.
    pub fn disabled() -> History {
        History { inner: None }
    }

    /// Opens (or creates) the segments in `dir` and starts the writer thread.
    ///
    /// # Errors
    /// The directory cannot be created or read.
    pub fn open(dir: PathBuf, cfg: &HistoryConfig) -> std::io::Result<History> {
        if !cfg.enabled {
            return Ok(History::disabled());
        }
        let inner = store::Inner::open(dir, cfg, SHARDS, BUFFER_BYTES / SHARDS)?;
        Ok(History {
            inner: Some(Arc::new(inner)),
        })
    }

    /// Whether steps are recorded.
    pub fn is_on(&self) -> bool {
        self.inner.is_some()
    }

    /// Writes what the buffers hold now to the head segment; resolves when
    /// it is written (not synced).
    pub async fn flush(&self) {
        if let Some(i) = &self.inner {
            i.flush().await;
        }
    }

    /// Flushes, closes the head segment and stops the writer thread; later
    /// steps are not recorded. Resolves when it is done.
    pub async fn close(&self) {
        if let Some(i) = &self.inner {
            i.close().await;
        }
    }

    /// Runs a lookup over the segments (after a flush).
    ///
    /// # Errors
    /// Reading the directory failed.
    pub async fn lookup(&self, q: Query) -> std::io::Result<Vec<Timeline>> {
        let Some(i) = &self.inner else {
            return Ok(Vec::new());
        };
        i.flush().await;
        let dir = i.dir().to_path_buf();
        tokio::task::spawn_blocking(move || query::run(&dir, &q))
            .await
            .map_err(std::io::Error::other)?
    }

    #[inline]
    fn put(&self, id: MessageId, kind: Kind, f: impl FnOnce(&mut Vec<u8>)) {
        if let Some(i) = &self.inner {
            i.put(id, |buf| {
                let start = record::begin(buf, kind, id, now_ms());
                f(buf);
                record::finish(buf, start);
            });
        }
    }

    // === the steps ===

    /// Accepted messages, as they are queued (which may be while their
    /// journal write is under way); their accept time is their own.
    pub fn accepted(&self, messages: &[Arc<Message>]) {
        let Some(i) = &self.inner else {
            return;
        };
        for m in messages {
            i.put(m.id, |buf| {
                let start = record::begin(buf, Kind::Accepted, m.id, m.accepted_at_ms);
                record::put_accepted(buf, m);
                record::finish(buf, start);
            });
        }
    }

    /// Handed to `carrier` in `parts` parts.
    pub fn dispatched(&self, id: MessageId, carrier: &str, parts: u32) {
        self.put(id, Kind::Dispatched, |b| {
            record::put_str(b, carrier);
            record::put_u16(b, parts.min(u16::MAX as u32) as u16);
        });
    }

    /// Part `part` waits (back to the front of its carrier's queue) because
    /// of `cause`.
    pub fn waits(&self, id: MessageId, part: u32, cause: &str) {
        self.put(id, Kind::Wait, |b| {
            record::put_u16(b, part.min(u16::MAX as u32) as u16);
            record::put_str(b, cause);
        });
    }

    /// The carrier accepted part `part` under `carrier_id` (normalised).
    pub fn answered(&self, id: MessageId, carrier: &str, part: u32, carrier_id: &str) {
        self.put(id, Kind::Answer, |b| {
            record::put_u16(b, part.min(u16::MAX as u32) as u16);
            record::put_str(b, carrier);
            record::put_str(b, carrier_id);
        });
    }

    /// Part `part` ended without a receipt: refused by the carrier, or
    /// stopped before it was written.
    pub fn part_failed(
        &self,
        id: MessageId,
        part: u32,
        state: DeliveryState,
        code: u32,
        reason: &str,
    ) {
        self.put(id, Kind::PartFailed, |b| {
            record::put_u16(b, part.min(u16::MAX as u32) as u16);
            b.push(record::state_code(state));
            b.extend_from_slice(&code.to_le_bytes());
            record::put_str(b, reason);
        });
    }

    /// A receipt (or MM7 delivery report) for part `part`: its state word
    /// and error code.
    pub fn receipt(&self, id: MessageId, part: u32, state: DeliveryState, code: u32, stat: &str) {
        self.put(id, Kind::Receipt, |b| {
            record::put_u16(b, part.min(u16::MAX as u32) as u16);
            b.push(record::state_code(state));
            b.extend_from_slice(&code.to_le_bytes());
            record::put_str(b, stat);
        });
    }

    /// Back to queued (failover, a link lost before writing, an MMSC's
    /// refusal before its fallback).
    pub fn requeued(&self, id: MessageId, reason: &str) {
        self.put(id, Kind::Requeued, |b| record::put_str(b, reason));
    }

    /// Goes as SMS instead of MMS, and why.
    pub fn fallback(&self, id: MessageId, how: &str, reason: &str) {
        self.put(id, Kind::Fallback, |b| {
            record::put_str(b, how);
            record::put_str(b, reason);
        });
    }

    /// Reached its terminal state.
    pub fn finished(
        &self,
        id: MessageId,
        state: DeliveryState,
        code: u32,
        carrier: Option<&str>,
        reason: &str,
    ) {
        self.put(id, Kind::Final, |b| {
            b.push(record::state_code(state));
            b.extend_from_slice(&code.to_le_bytes());
            record::put_str(b, carrier.unwrap_or(""));
            record::put_str(b, reason);
        });
    }

    /// Its event `event_id` was acknowledged by the upstream (`sink`:
    /// empty for the tenant's stream, else the webhook endpoint).
    pub fn event_acked(&self, id: MessageId, event_id: u64, sink: &str) {
        if id.0 == 0 {
            return;
        }
        self.put(id, Kind::EventAcked, |b| {
            b.extend_from_slice(&event_id.to_le_bytes());
            record::put_str(b, sink);
        });
    }
}
