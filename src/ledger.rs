//! The ledger: every live message (accepted, not yet final) with its progress
//! — queued, dispatched to a carrier, per-part carrier ids and outcomes.
//!
//! It is the one place message state changes, and it updates memory *before*
//! the matching journal record is enqueued, so compaction, which snapshots the
//! ledger after rotating the journal, never misses a live message (see
//! `recovery::JournalKeeper::compact`). The one exception is a new message
//! ([`Ledger::accept`]): its `Accept` is sent first, so that no `Carry` can
//! precede it, with rotations held off until it is live. Sharded maps keep
//! the two cores from contending.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::history::History;
use crate::journal::{CarriedMessage, Journal};
use crate::model::{DeliveryState, Message, MessageId};

const SHARDS: usize = 64;

/// Live entries of one shard. Keys are the gateway's own ids, so a fast
/// unseeded-quality hasher is safe.
type LiveMap = crate::model::hashing::FastMap<u64, Entry>;

/// What became of one part (segment) of a dispatched message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    /// Handed to the carrier, not written yet (it never left: a crash
    /// queues the message again).
    Pending,
    /// Written to the carrier (or about to be, durably recorded); no answer
    /// yet.
    Written,
    /// Accepted by the carrier under this (normalised) id; waiting for a receipt.
    Submitted(Box<str>),
    /// Final outcome of this part.
    Done(PartOutcome),
}

/// The final outcome of a part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartOutcome {
    /// Terminal state.
    pub state: DeliveryState,
    /// Carrier error code (0: none).
    pub error_code: u32,
    /// Readable reason.
    pub reason: Arc<str>,
}

/// Progress of a live message. Eight bytes: most live messages are queued
/// (a backlog of millions), and the dispatched ones' details are boxed so
/// that a queued entry does not carry their room (the price: one more small
/// allocation per dispatch, against 24 bytes less per queued entry).
#[derive(Clone, Debug)]
pub enum Stage {
    /// Waiting for the scheduler.
    Queued,
    /// Handed to a carrier.
    Dispatched(Box<Dispatch>),
}

impl Stage {
    /// Dispatched to `carrier` with these parts.
    pub fn dispatched(carrier: Arc<str>, parts: Vec<Part>) -> Stage {
        Stage::Dispatched(Box::new(Dispatch {
            carrier,
            parts: parts.into_boxed_slice(),
        }))
    }
}

/// Where a dispatched message went and how far each part got.
#[derive(Clone, Debug)]
pub struct Dispatch {
    /// Carrier name.
    pub carrier: Arc<str>,
    /// One entry per part.
    pub parts: Box<[Part]>,
}

/// A live message.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The message.
    pub message: Arc<Message>,
    /// How far it got.
    pub stage: Stage,
}

/// A message that just reached its terminal state.
#[derive(Clone, Debug)]
pub struct Finalized {
    /// The message.
    pub message: Arc<Message>,
    /// Terminal state (aggregated over parts).
    pub state: DeliveryState,
    /// Carrier error code (0: none).
    pub error_code: u32,
    /// Readable reason.
    pub reason: Arc<str>,
    /// Carrier it went through, if dispatched.
    pub carrier: Option<Arc<str>>,
    /// Number of parts.
    pub parts: u32,
    /// Normalised carrier ids of its parts (to forget their correlation).
    pub carrier_ids: Vec<Box<str>>,
    /// How it was routed, when that needs saying (e.g. an SMS fallback).
    pub note: Option<Arc<str>>,
}

/// Result of recording one part's outcome.
#[derive(Debug)]
pub enum PartResult {
    /// The message is not (or no longer) live, or the part is unknown.
    Unknown,
    /// Recorded; other parts are still open.
    Partial,
    /// Recorded, and it was the last open part.
    Final(Finalized),
}

/// The table of live messages.
#[derive(Debug)]
pub struct Ledger {
    shards: Box<[Mutex<LiveMap>]>,
    journal: Journal,
    live: AtomicU64,
    /// Routing notes of live messages (few: only fallbacks have one).
    notes: dashmap::DashMap<u64, Arc<str>>,
    /// Notes set and not yet taken: while 0, a final looks nothing up.
    noted: AtomicU64,
    /// Every message's timeline (steps recorded here and by the rooms that
    /// hold this ledger).
    history: History,
}

impl Ledger {
    /// An empty ledger writing through `journal`.
    pub fn new(journal: Journal) -> Ledger {
        Ledger {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(LiveMap::default()))
                .collect(),
            journal,
            live: AtomicU64::new(0),
            notes: dashmap::DashMap::new(),
            noted: AtomicU64::new(0),
            history: History::disabled(),
        }
    }

    /// Records steps into `history` from now on.
    pub fn with_history(mut self, history: History) -> Ledger {
        self.history = history;
        self
    }

    /// Every message's timeline: where the rooms that change a message
    /// record its steps.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The journal it writes through (tests share it).
    #[cfg(test)]
    pub(crate) fn journal(&self) -> &Journal {
        &self.journal
    }

    fn shard(&self, id: MessageId) -> &Mutex<LiveMap> {
        &self.shards[(id.0 as usize) % SHARDS]
    }

    /// Attaches a routing note to a live message (reported in its event).
    /// A message that has already ended takes none: it has no final left to
    /// report it, and the note would stay in the map for good. Returns
    /// whether the note was attached.
    #[must_use = "a note refused means the message has ended"]
    pub fn set_note(&self, id: MessageId, note: impl Into<Arc<str>>) -> bool {
        let note = note.into();
        // Held while the note goes in: whatever removes the entry (a final,
        // `forget_one`) does so under this lock and only then takes the
        // note, so either it finds the note or the check below finds the
        // message gone.
        let shard = self.shard(id).lock();
        if !shard.contains_key(&id.0) {
            return false;
        }
        self.noted.fetch_add(1, Ordering::Release);
        if self.notes.insert(id.0, note).is_some() {
            self.noted.fetch_sub(1, Ordering::Release);
        }
        true
    }

    /// Takes the note of a message just removed from the live map, if it
    /// has one (a lookup only while some message has a note).
    fn take_note(&self, id: MessageId) -> Option<Arc<str>> {
        if self.noted.load(Ordering::Acquire) == 0 {
            return None;
        }
        let (_, note) = self.notes.remove(&id.0)?;
        self.noted.fetch_sub(1, Ordering::Release);
        Some(note)
    }

    fn with_note(&self, mut f: Finalized) -> Finalized {
        f.note = self.take_note(f.message.id);
        f
    }

    /// Live messages.
    pub fn live(&self) -> u64 {
        self.live.load(Ordering::Relaxed)
    }

    /// Stores newly accepted messages' `Accept` record, then adds them as
    /// queued, in the order compaction needs ([`Journal::accept_then`]);
    /// durable once the result resolves.
    pub fn accept(&self, messages: &[Arc<Message>]) -> crate::journal::Durable {
        self.journal
            .accept_then(messages.iter().map(|m| &**m), || self.admit(messages))
    }

    /// Adds messages whose `Accept` record is already sent as queued
    /// (paged back in from the spill, or by [`Ledger::accept`]); newly
    /// accepted ones go through [`Ledger::accept`].
    pub fn admit<'a>(&self, messages: impl IntoIterator<Item = &'a Arc<Message>>) {
        for m in messages {
            let prev = self.shard(m.id).lock().insert(
                m.id.0,
                Entry {
                    message: m.clone(),
                    stage: Stage::Queued,
                },
            );
            if prev.is_none() {
                self.live.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Restores a recovered message at its stage.
    pub fn restore(&self, entry: Entry) {
        let id = entry.message.id;
        if self.shard(id).lock().insert(id.0, entry).is_none() {
            self.live.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Removes messages whose Accept record failed to be written, or that
    /// went to the spill (they come back through [`Ledger::admit`]).
    pub fn forget(&self, ids: impl IntoIterator<Item = MessageId>) {
        for id in ids {
            self.forget_one(id);
        }
    }

    /// Removes one message as [`Ledger::forget`] does; true when it was
    /// still live (nothing else has ended it).
    pub fn forget_one(&self, id: MessageId) -> bool {
        let gone = self.shard(id).lock().remove(&id.0).is_some();
        if gone {
            self.live.fetch_sub(1, Ordering::Relaxed);
            // A refused batch may have started a fallback already.
            self.take_note(id);
        }
        gone
    }

    /// A copy of a live message's entry.
    pub fn get(&self, id: MessageId) -> Option<Entry> {
        self.shard(id).lock().get(&id.0).cloned()
    }

    /// Marks a queued message as dispatched with `parts` parts. Returns false
    /// when the message is no longer live or not queued (it must not be sent).
    pub fn dispatch(&self, id: MessageId, carrier: &Arc<str>, parts: u32) -> bool {
        let mut shard = self.shard(id).lock();
        match shard.get_mut(&id.0) {
            Some(e) if matches!(e.stage, Stage::Queued) => {
                e.stage = Stage::dispatched(carrier.clone(), vec![Part::Pending; parts as usize]);
                drop(shard);
                self.history.dispatched(id, carrier, parts);
                true
            }
            _ => false,
        }
    }

    /// Marks parts `(id, part)` as written (before their `Written` journal
    /// record is enqueued, like every change here). Parts already further
    /// along keep their state.
    pub fn parts_written(&self, parts: impl IntoIterator<Item = (MessageId, u32)>) {
        for (id, part) in parts {
            let mut shard = self.shard(id).lock();
            if let Some(Entry {
                stage: Stage::Dispatched(d),
                ..
            }) = shard.get_mut(&id.0)
                && let Some(p @ Part::Pending) = d.parts.get_mut(part as usize)
            {
                *p = Part::Written;
            }
        }
    }

    /// Marks parts `(id, part, total)` written to `carrier` and journals
    /// that; durable once the result resolves (before the first byte leaves).
    pub fn written(
        &self,
        carrier: &str,
        parts: &[(MessageId, u32, u32)],
    ) -> crate::journal::Durable {
        self.parts_written(parts.iter().map(|&(id, part, _)| (id, part)));
        self.journal.written(carrier, parts.iter().copied())
    }

    /// Returns dispatched messages to queued, and journals that; for
    /// messages whose every part sits unsent in the carrier's queue: never
    /// written (`Pending`), or recorded `Written` and then handed back
    /// unwritten (a link that dropped while the journal synced) or refused
    /// for now by the carrier. A part accepted or ended keeps its message
    /// where it is. Returns the ids actually returned.
    pub fn undispatch(&self, ids: &[MessageId]) -> Vec<MessageId> {
        let mut back = Vec::with_capacity(ids.len());
        for &id in ids {
            let mut shard = self.shard(id).lock();
            if let Some(e) = shard.get_mut(&id.0)
                && let Stage::Dispatched(d) = &e.stage
                && d.parts
                    .iter()
                    .all(|p| matches!(p, Part::Pending | Part::Written))
            {
                e.stage = Stage::Queued;
                back.push(id);
            }
        }
        if !back.is_empty() {
            self.journal.undispatch(back.iter().copied());
            for &id in &back {
                self.history
                    .requeued(id, "handed back unsent (link lost, paused or failover)");
            }
        }
        back
    }

    /// Returns a dispatched message the carrier refused for good before it
    /// accepted any part (an MMSC's permanent refusal, so it can take the
    /// SMS fallback) to queued, and journals that. False when it is not live
    /// or a part was accepted or ended meanwhile.
    pub fn refused(&self, id: MessageId) -> bool {
        {
            let mut shard = self.shard(id).lock();
            let Some(e) = shard.get_mut(&id.0) else {
                return false;
            };
            let Stage::Dispatched(d) = &e.stage else {
                return false;
            };
            if !d
                .parts
                .iter()
                .all(|p| matches!(p, Part::Pending | Part::Written))
            {
                return false;
            }
            e.stage = Stage::Queued;
        }
        self.journal.undispatch([id]);
        self.history.requeued(
            id,
            "refused for good by the carrier before any part was accepted",
        );
        true
    }

    /// Records a part accepted by the carrier under `carrier_id` (normalised).
    /// Returns false when the message or part is not known (then the id must
    /// not be correlated).
    pub fn part_submitted(&self, id: MessageId, part: u32, carrier_id: &str) -> bool {
        {
            let mut shard = self.shard(id).lock();
            let Some(Entry {
                stage: Stage::Dispatched(d),
                ..
            }) = shard.get_mut(&id.0)
            else {
                return false;
            };
            match d.parts.get_mut(part as usize) {
                Some(p @ (Part::Pending | Part::Written)) => {
                    *p = Part::Submitted(carrier_id.into());
                }
                _ => return false,
            }
        }
        self.journal.submitted([(id, part, carrier_id)]);
        true
    }

    /// Records the final outcome of one part; when it was the last open part,
    /// removes the message and returns its aggregated final state.
    pub fn part_done(&self, id: MessageId, part: u32, outcome: PartOutcome) -> PartResult {
        let mut shard = self.shard(id).lock();
        let Some(Entry {
            stage: Stage::Dispatched(d),
            ..
        }) = shard.get_mut(&id.0)
        else {
            return PartResult::Unknown;
        };
        let parts = &mut d.parts;
        let Some(p) = parts.get_mut(part as usize) else {
            return PartResult::Unknown;
        };
        if matches!(p, Part::Done(_)) {
            return PartResult::Partial;
        }
        *p = Part::Done(outcome);
        if parts.iter().any(|p| !matches!(p, Part::Done(_))) {
            return PartResult::Partial;
        }
        let entry = shard.remove(&id.0).expect("present above");
        drop(shard);
        self.live.fetch_sub(1, Ordering::Relaxed);
        PartResult::Final(self.with_note(finalized(entry, None)))
    }

    /// Ends a live message now with `state` (expiry, suppression, crash
    /// recovery, a part that cannot be sent). Open parts take that state;
    /// parts already done keep theirs in the aggregate.
    pub fn finish(
        &self,
        id: MessageId,
        state: DeliveryState,
        error_code: u32,
        reason: &Arc<str>,
    ) -> Option<Finalized> {
        let entry = self.shard(id).lock().remove(&id.0)?;
        self.live.fetch_sub(1, Ordering::Relaxed);
        Some(self.with_note(finalized(
            entry,
            Some(PartOutcome {
                state,
                error_code,
                reason: reason.clone(),
            }),
        )))
    }

    /// Ends a dispatched message from the parts that have an outcome, when
    /// the carrier reports only some parts (some SMSCs send one receipt per
    /// multi-part message, for its first or last part). Open parts are taken
    /// to share the reported outcome. `None` when nothing is reported yet or
    /// the message is gone.
    pub fn settle(&self, id: MessageId) -> Option<Finalized> {
        let mut shard = self.shard(id).lock();
        let reported = matches!(
            shard.get(&id.0),
            Some(Entry { stage: Stage::Dispatched(d), .. })
                if d.parts.iter().any(|p| matches!(p, Part::Done(_)))
        );
        if !reported {
            return None;
        }
        let entry = shard.remove(&id.0)?;
        drop(shard);
        self.live.fetch_sub(1, Ordering::Relaxed);
        Some(self.with_note(finalized(entry, None)))
    }

    /// Calls `f` with every live entry, shard by shard (compaction, expiry).
    pub fn for_each(&self, mut f: impl FnMut(&Entry)) {
        for s in self.shards.iter() {
            for e in s.lock().values() {
                f(e);
            }
        }
    }

    /// Writes every live message into the journal head (compaction's
    /// carry-forward); resolves when durable.
    pub async fn carry(&self) -> Result<usize, crate::journal::JournalError> {
        let mut batch: Vec<Entry> = Vec::with_capacity(1024);
        let mut count = 0;
        let mut pending = Vec::new();
        for s in self.shards.iter() {
            batch.extend(s.lock().values().cloned());
            if batch.len() >= 1024 {
                count += batch.len();
                pending.push(self.carry_batch(&batch));
                batch.clear();
            }
        }
        count += batch.len();
        pending.push(self.carry_batch(&batch));
        for d in pending {
            d.wait().await?;
        }
        Ok(count)
    }

    fn carry_batch(&self, batch: &[Entry]) -> crate::journal::Durable {
        let ids: Vec<Vec<String>> = batch
            .iter()
            .map(|e| match &e.stage {
                Stage::Queued => Vec::new(),
                Stage::Dispatched(d) => d
                    .parts
                    .iter()
                    .map(|p| match p {
                        Part::Submitted(c) => c.to_string(),
                        _ => String::new(),
                    })
                    .collect(),
            })
            .collect();
        self.journal
            .carry(batch.iter().zip(&ids).map(|(e, ids)| match &e.stage {
                Stage::Queued => CarriedMessage {
                    message: &e.message,
                    carrier: None,
                    parts: 0,
                    carrier_ids: &[],
                    written: false,
                },
                Stage::Dispatched(d) => CarriedMessage {
                    message: &e.message,
                    carrier: Some(&d.carrier),
                    parts: d.parts.len() as u32,
                    carrier_ids: ids,
                    written: d.parts.iter().any(|p| *p != Part::Pending),
                },
            }))
    }
}

/// Aggregates part outcomes into the message's final state.
///
/// Any failed or rejected part fails the message (the text is incomplete);
/// otherwise expired beats unknown beats delivered.
fn finalized(entry: Entry, rest: Option<PartOutcome>) -> Finalized {
    let (carrier, parts) = match entry.stage {
        Stage::Queued => (None, Vec::new()),
        Stage::Dispatched(d) => {
            let Dispatch { carrier, parts } = *d;
            (Some(carrier), parts.into_vec())
        }
    };
    let n = parts.len() as u32;
    let mut carrier_ids = Vec::new();
    let rank = |s: DeliveryState| match s {
        DeliveryState::Rejected => 6,
        DeliveryState::Failed => 5,
        DeliveryState::Suppressed => 4,
        DeliveryState::Expired => 3,
        DeliveryState::Unknown => 2,
        DeliveryState::Delivered => 1,
        _ => 0,
    };
    // The worst outcome, the last of equals (no list built: this runs for
    // every final).
    let mut worst: Option<PartOutcome> = None;
    let mut weigh = |o: PartOutcome| {
        if worst
            .as_ref()
            .is_none_or(|w| rank(o.state) >= rank(w.state))
        {
            worst = Some(o);
        }
    };
    for p in parts {
        match p {
            Part::Done(o) => weigh(o),
            Part::Submitted(c) => {
                carrier_ids.push(c);
                if let Some(r) = &rest {
                    weigh(r.clone());
                }
            }
            Part::Pending | Part::Written => {
                if let Some(r) = &rest {
                    weigh(r.clone());
                }
            }
        }
    }
    let worst = worst.or(rest).unwrap_or(PartOutcome {
        state: DeliveryState::Unknown,
        error_code: 0,
        reason: "no outcome".into(),
    });
    Finalized {
        message: entry.message,
        state: worst.state,
        error_code: worst.error_code,
        reason: worst.reason,
        carrier,
        parts: n.max(1),
        carrier_ids,
        note: None,
    }
}

#[cfg(test)]
mod tests;
