//! Recovery and compaction: what the journal holds becomes live state again
//! at start ([`JournalKeeper::restore`], before ingest accepts anything),
//! and while running the journal is kept short by carrying every live
//! record forward and deleting old segments ([`JournalKeeper::compact`]).
//!
//! # What a restart does to each message
//! - accepted, never dispatched: queued again;
//! - dispatched, every part accepted by the carrier: waits for receipts;
//! - dispatched but never written (it never left), or any dispatched
//!   message when the operator chose `recovery = "resend"`: queued again;
//! - otherwise (written, answer unknown): ends `unknown` — sending it again
//!   could send it twice.
//!
//! Compaction is safe because state is registered in memory before its
//! record is written (see `ledger` and `events`; a new message is made live
//! just after its `Accept` is sent, with no rotation in between:
//! `Journal::accept_then`), and it excludes paging in
//! ([`Backlog::hold_paging`]) since a message being paged in is, for a
//! moment, in neither the spill nor the ledger.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::admission::Dedupe;
use crate::backlog::Backlog;
use crate::events::EventHub;
use crate::journal::dedupe_log::DedupeLog;
use crate::journal::{CarriedMessage, Durable, Journal, JournalError, Recovered, Recovery};
use crate::ledger::{Entry, Ledger, Part, Stage};
use crate::model::{DeliveryState, LogSafe, Message, MessageId, now_ms};
use crate::receipts::Receipts;
use crate::spill::StoredQueued;

#[cfg(test)]
mod tests;

const TARGET: &str = "sluice::recovery";

/// Queued messages restored at a time: what goes back to the spill is
/// written and freed slice by slice.
const RESTORE_SLICE: usize = 65_536;

/// Restores the journal at start and compacts it while running.
#[derive(Debug)]
pub struct JournalKeeper {
    journal: Journal,
    ledger: Arc<Ledger>,
    hub: Arc<EventHub>,
    receipts: Arc<Receipts>,
    backlog: Arc<Backlog>,
    dedupe: Arc<Dedupe>,
    dedupe_log: DedupeLog,
    /// Segments the last compaction carried forward (not counted against
    /// `max_segments`, or a large backlog would compact without end).
    carried_segments: AtomicU64,
    /// Dedupe keys taken for the log whose append failed: appended first
    /// next time (compaction deletes nothing until they are in).
    unlogged: parking_lot::Mutex<Vec<crate::journal::dedupe_log::DedupeEntry>>,
}

impl JournalKeeper {
    /// The keeper of `journal` and of what lives from it.
    pub fn new(
        journal: Journal,
        ledger: Arc<Ledger>,
        hub: Arc<EventHub>,
        receipts: Arc<Receipts>,
        backlog: Arc<Backlog>,
        dedupe: Arc<Dedupe>,
        dedupe_log: DedupeLog,
    ) -> JournalKeeper {
        JournalKeeper {
            journal,
            ledger,
            hub,
            receipts,
            backlog,
            dedupe,
            dedupe_log,
            carried_segments: AtomicU64::new(0),
            unlogged: parking_lot::Mutex::default(),
        }
    }

    /// Restores recovered messages, events and dedupe keys (before ingest
    /// starts); see the module doc for what happens to each message. The
    /// dedupe keys are restored on a second thread beside the messages
    /// (each is seconds of work with millions of them).
    pub fn restore(&self, rec: Recovered, recovery: Recovery) {
        let started = tokio::time::Instant::now();
        let Recovered {
            messages,
            events,
            dedupe,
            records,
            ..
        } = rec;
        let keys = parking_lot::Mutex::new(Some(dedupe));
        let restore_keys = || {
            if let Some(keys) = keys.lock().take() {
                self.restore_dedupe(keys);
            }
        };
        std::thread::scope(|scope| {
            let beside = std::thread::Builder::new()
                .name("sluice-restore".into())
                .spawn_scoped(scope, restore_keys);
            self.restore_messages(messages, events, records, recovery);
            match beside {
                // A panic there is a bug: the start fails as it would have
                // on this thread, rather than run with keys missing.
                Ok(thread) => {
                    if let Err(panic) = thread.join() {
                        std::panic::resume_unwind(panic);
                    }
                }
                // No second thread: one after the other.
                Err(_) => restore_keys(),
            }
        });
        tracing::info!(target: TARGET, ms = started.elapsed().as_millis() as u64, "journal restored");
    }

    /// Restores the dedupe keys: those already in the dedupe log, then
    /// those of Accept records still in the journal (logged when their old
    /// segments are compacted), oldest first (the index evicts from the
    /// front).
    fn restore_dedupe(&self, journal_keys: crate::journal::DedupeKeys) {
        let started = tokio::time::Instant::now();
        let now = now_ms();
        let mut logged = 0;
        match self.dedupe_log.load(now, self.dedupe.window_ms()) {
            Ok(entries) => {
                logged = entries.len();
                for (fp, id, at) in entries {
                    self.dedupe.restore(fp, MessageId(id), at, now, None);
                }
            }
            Err(e) => {
                tracing::error!(target: TARGET, error = %e, "dedupe log unreadable; retries of old batches may be sent again")
            }
        }
        for (tenant, client_ref, id, at) in journal_keys.iter() {
            let fp = self.dedupe.fingerprint(tenant, client_ref);
            self.dedupe.restore(fp, id, at, now, Some(0));
        }
        tracing::info!(target: TARGET, logged, journal = journal_keys.len(),
            ms = started.elapsed().as_millis() as u64, "dedupe keys restored");
    }

    /// Restores the messages and events (see the module doc).
    fn restore_messages(
        &self,
        messages: Vec<crate::journal::RecoveredMessage>,
        events: Vec<crate::journal::PendingEvent>,
        records: u64,
        recovery: Recovery,
    ) {
        self.hub.restore(events);
        let router = self.backlog.router();
        let mut problems = Vec::new();
        // What is queued (again) stays in its stored form here, in id order
        // (most of millions queued go back to the spill undecoded:
        // `Backlog::restore_queued`).
        let mut queued = Vec::new();
        let mut unknown = Vec::new();
        let total = messages.len();
        for mut rm in messages {
            let Some(dispatch) = rm.dispatch.take() else {
                queued.push(rm);
                continue;
            };
            // SMS carrier or MMSC: an MMS the MMSC accepted waits for its
            // delivery report like an SMS for its receipts.
            let carrier = router.carrier_named(&dispatch.carrier);
            let ids = &dispatch.carrier_ids;
            let accepted = dispatch.parts > 0
                && ids.len() == dispatch.parts as usize
                && ids.iter().all(|s| !s.is_empty());
            let awaits_receipts = carrier.is_some() && accepted;
            if !awaits_receipts && (!rm.written || (recovery == Recovery::Resend && !accepted)) {
                // Dispatched but never written (it never left), or the
                // operator chose at-least-once: queued again. Never what
                // a carrier no longer configured (a reload or the file
                // removed it) accepted whole: that ends `unknown`, as its
                // receipts cannot come.
                queued.push(rm);
                continue;
            }
            let message = match rm.message() {
                Ok(m) => Arc::new(m),
                Err(e) => {
                    problems.push(e);
                    continue;
                }
            };
            match carrier {
                Some(c) if awaits_receipts => {
                    // Every part was accepted: wait for the receipts.
                    let parts: Vec<Part> = ids
                        .iter()
                        .map(|s| Part::Submitted(s.as_str().into()))
                        .collect();
                    for (i, k) in ids.iter().enumerate() {
                        self.receipts.restore(&c, message.id, i as u32, k);
                    }
                    self.ledger.restore(Entry {
                        message,
                        stage: Stage::dispatched(c, parts),
                    });
                }
                c => {
                    // At most 255 parts (a count from disk bounds nothing).
                    let parts: Vec<Part> = (0..dispatch.parts.clamp(1, 255) as usize)
                        .map(|i| match ids.get(i) {
                            Some(s) if !s.is_empty() => Part::Submitted(s.as_str().into()),
                            _ => Part::Written,
                        })
                        .collect();
                    self.ledger.restore(Entry {
                        message: message.clone(),
                        stage: Stage::dispatched(
                            c.unwrap_or_else(|| dispatch.carrier.as_str().into()),
                            parts,
                        ),
                    });
                    unknown.push(message.id);
                }
            }
        }
        let reason: Arc<str> = "gateway restarted before the carrier answered".into();
        let mut endings = self.receipts.endings();
        for id in &unknown {
            endings.end(*id, DeliveryState::Unknown, 0, &reason);
        }
        // A tenant removed from the configuration: its opt-out scopes,
        // programs, limits and quiet hours are gone with it, so what it
        // queued is not sent (it would be checked against the global
        // opt-outs alone).
        let removed: Arc<str> = "its tenant is no longer configured: not sent".into();
        let mut rejected = 0;
        let mut reject = |message: Message| {
            let message = Arc::new(message);
            self.ledger.restore(Entry {
                message: message.clone(),
                stage: Stage::Queued,
            });
            endings.end(message.id, DeliveryState::Rejected, 0, &removed);
            rejected += 1;
        };
        // Whether the tenant is still configured, looked up once per run of
        // one tenant's messages (replay shares one name per tenant).
        let mut last: Option<(Arc<str>, bool)> = None;
        let mut kept = Vec::with_capacity(queued.len());
        for rm in queued {
            if !rm.decodes
                && let Err(e) = rm.message()
            {
                // Replay read it whole: it cannot be queued (nor spilled,
                // where it would make its batch unreadable).
                problems.push(e);
                continue;
            }
            let known = match &last {
                Some((tenant, known)) if Arc::ptr_eq(tenant, &rm.tenant) => *known,
                _ => {
                    let known = self.hub.knows(&rm.tenant);
                    last = Some((rm.tenant.clone(), known));
                    known
                }
            };
            if !known {
                match rm.message() {
                    Ok(m) => reject(m),
                    Err(e) => problems.push(e),
                }
                continue;
            }
            kept.push(StoredQueued {
                id: rm.id,
                tenant: rm.tenant,
                priority: rm.priority,
                stored: rm.stored,
            });
        }
        drop(endings);
        if rejected > 0 {
            tracing::warn!(target: TARGET, messages = rejected,
                "queued messages of tenants no longer configured ended as rejected, not sent");
        }
        let requeued = kept.len();
        // In slices, so that what goes back to the spill is written and
        // freed as it goes.
        let mut kept = kept.into_iter();
        loop {
            let slice: Vec<StoredQueued> = kept.by_ref().take(RESTORE_SLICE).collect();
            if slice.is_empty() {
                break;
            }
            problems.extend(self.backlog.restore_queued(slice));
        }
        tracing::info!(target: TARGET, records, live = total, requeued,
            unknown = unknown.len(), rejected, events = self.hub.pending(), "journal recovered");
        for p in &problems {
            tracing::error!(target: TARGET, problem = %LogSafe::display(p), "unrecoverable journal entry");
        }
    }

    /// Dedupe keys older than a second trickle into the dedupe log, synced
    /// as they go, so that compaction has little left to write and sync at
    /// once (tens of megabytes synced at each compaction held up the
    /// journal's own syncs, and every acknowledgement, for ~50 ms).
    pub async fn trickle_dedupe(&self) {
        let keys = self.with_unlogged(self.dedupe.take_unlogged(0, now_ms().saturating_sub(1000)));
        if keys.is_empty() {
            return;
        }
        let log = self.dedupe_log.clone();
        let (keys, appended) = tokio::task::spawn_blocking(move || {
            let r = log.append(&keys);
            (keys, r)
        })
        .await
        .unwrap_or_else(|e| (Vec::new(), Err(std::io::Error::other(e))));
        if let Err(e) = appended {
            tracing::error!(target: TARGET, error = %e, "dedupe log append failed; retried");
            self.unlogged.lock().extend(keys);
        }
    }

    /// Keys whose earlier append failed, then `keys`.
    fn with_unlogged(
        &self,
        keys: Vec<crate::journal::dedupe_log::DedupeEntry>,
    ) -> Vec<crate::journal::dedupe_log::DedupeEntry> {
        let mut all = std::mem::take(&mut *self.unlogged.lock());
        if all.is_empty() {
            return keys;
        }
        all.extend(keys);
        all
    }

    /// Compaction: when the journal holds more than `max_segments` (beyond
    /// what the last compaction carried), rotate, carry every live record
    /// into the new head, then delete the older segments.
    ///
    /// # Errors
    /// A journal or dedupe-log write failed; nothing was deleted.
    pub async fn compact(&self, max_segments: u64) -> Result<(), JournalError> {
        if self.journal.segments() <= max_segments + self.carried_segments.load(Relaxed) {
            return Ok(());
        }
        let spill = self.backlog.spill();
        if spill.is_damaged() {
            // Some spilled messages exist only in the old segments now.
            tracing::error!(target: TARGET, segments = self.journal.segments(),
                "journal compaction held: a spilled batch was unreadable; restart to replay it");
            return Ok(());
        }
        let started = tokio::time::Instant::now();
        let ms_since = |t: tokio::time::Instant| t.elapsed().as_millis() as u64;
        let _gate = self.backlog.hold_paging().await;
        let head = self.journal.rotate().await?;
        let mut carried = self.ledger.carry().await?;
        carried += self.carry_spilled().await?;
        // What was carried fills the segments from `head` on.
        self.carried_segments
            .store(self.journal.head_segment().saturating_sub(head), Relaxed);
        let events = self.hub.snapshot();
        self.journal
            .events(events.iter().map(|e| &**e))
            .wait()
            .await?;
        let carry_ms = ms_since(started);
        let dedupe_started = tokio::time::Instant::now();
        // Dedupe keys whose Accept records go with the old segments move to
        // the dedupe log, once each.
        let keys = self.with_unlogged(self.dedupe.take_unlogged_before(head));
        let (log, window, max_keys, n) = (
            self.dedupe_log.clone(),
            self.dedupe.window_ms(),
            self.dedupe.max_keys(),
            keys.len(),
        );
        let io = |e: std::io::Error| JournalError::Io(self.journal.dir().to_owned(), e);
        let (keys, written) = tokio::task::spawn_blocking(move || {
            if let Err(e) = log.append(&keys) {
                return (keys, Err(e));
            }
            let pruned = log.prune(now_ms(), window, max_keys).map(|_| ());
            (Vec::new(), pruned)
        })
        .await
        .map_err(|e| io(std::io::Error::other(e)))?;
        if !keys.is_empty() {
            // Not in the log: kept for the next try; nothing is deleted.
            self.unlogged.lock().extend(keys);
        }
        written.map_err(io)?;
        let dedupe_ms = ms_since(dedupe_started);
        let delete_started = tokio::time::Instant::now();
        self.journal.delete_before(head).await?;
        let delete_ms = ms_since(delete_started);
        tracing::info!(target: TARGET, head, carried, events = events.len(), keys = n,
            carry_ms, dedupe_ms, delete_ms, "journal compacted");
        Ok(())
    }

    /// Compaction's carry-forward of spilled messages (their Accept records
    /// go with the old segments): read off disk batch by batch, written as
    /// Carry records, a bounded number of syncs in flight.
    async fn carry_spilled(&self) -> Result<usize, JournalError> {
        let spill = self.backlog.spill();
        if spill.is_empty() {
            return Ok(0);
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Message>>(4);
        let spill = spill.clone();
        let reader = tokio::task::spawn_blocking(move || {
            spill.for_each_batch(|ms| {
                tx.blocking_send(ms)
                    .map_err(|_| std::io::Error::other("compaction stopped"))
            })
        });
        let mut count = 0;
        let mut pending: VecDeque<Durable> = VecDeque::new();
        while let Some(ms) = rx.recv().await {
            count += ms.len();
            pending.push_back(self.journal.carry(ms.iter().map(|m| CarriedMessage {
                message: m,
                carrier: None,
                parts: 0,
                carrier_ids: &[],
                written: false,
            })));
            if pending.len() > 16
                && let Some(d) = pending.pop_front()
            {
                d.wait().await?;
            }
        }
        for d in pending {
            d.wait().await?;
        }
        let dir = self.journal.dir().to_owned();
        reader
            .await
            .map_err(|e| JournalError::Io(dir.clone(), std::io::Error::other(e)))?
            .map_err(|e| JournalError::Io(dir, e))?;
        Ok(count)
    }
}
