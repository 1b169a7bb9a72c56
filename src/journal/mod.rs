//! The durable store: an append-only, segmented write-ahead log of batch
//! records (accepted messages, dispatches, carrier ids, final states with
//! their events, event acknowledgements), with group commit and recovery.
//!
//! # Why our own log
//! The design needs one thing from storage: appends that many batches share
//! one `fdatasync` (group commit), plus a sequential replay on start. On this
//! machine class a plain append-only file with group commit sustains ~740 k
//! records/s with a 3.8 ms p99 commit at 100 k records/s, where `fjall`
//! reaches ~385 k/s (p99 31 ms, its compaction competes for the two cores) and
//! `redb` ~244 k/s (figures from `shared/LIMITS.md`; our own numbers are in
//! `benches/journal.rs`). Nothing here needs a key-value index: live state is
//! held in memory by its owners and rebuilt by replay, so a log is the whole
//! job and costs ~400 lines.
//!
//! # Format and guarantees
//! Records are framed with a length and a CRC ([`record`]); a torn record at
//! the tail of the last segment (a crash mid-write), the zeros of a segment
//! written ahead of time ([`prezero`]), or a write a power loss kept only in
//! part, is truncated on open (nothing there was acknowledged); a bad record
//! anywhere else stops the start with [`JournalError::Corrupt`].
//! [`Journal::accept`] and the other durable appends resolve only after the
//! bytes are synced. Compaction carries live records of old segments forward
//! and deletes the segments (`gateway` drives it).

pub mod dedupe_log;
pub mod lock;
mod prezero;
mod record;
mod replay;
pub mod salvage;
mod settings;
mod writer;

#[doc(hidden)]
pub use replay::{Span, fuzz_replay, scan};
#[cfg(test)]
pub(crate) use replay::{StoredIds, stored_ids};
pub use settings::{JournalConfig, Recovery};

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;

use bytes::{Bytes, BytesMut};
use tokio::sync::oneshot;

use crate::model::{Message, MessageId, Priority, reclaim};
use record::Kind;
pub use record::{RecordError, StoredHead};
use writer::{Command, Shared, SyncResult};

/// Journal failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// A file operation failed.
    #[error("journal I/O on {0}: {1}")]
    Io(PathBuf, #[source] io::Error),
    /// A record in the middle of the journal is damaged.
    #[error("journal corrupt at {path}:{offset}: {reason}")]
    Corrupt {
        /// Segment file.
        path: PathBuf,
        /// Byte offset of the bad record.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A write or sync failed; the journal accepts nothing more.
    #[error("journal write failed: {0}")]
    Write(Arc<io::Error>),
    /// The writer thread is gone (shutdown).
    #[error("journal is closed")]
    Closed,
}

/// A message recovered from the journal, with how far it got.
///
/// The message stays in its stored form until it is needed: a restart with
/// millions queued decodes only those kept in memory, and writes the rest
/// to the spill as they are ([`encode_stored`]). What the restart queues by
/// (id, tenant, priority) and whether the stored form decodes were read
/// once, by replay. Dispatch details are boxed: most messages recovered
/// after an outage are queued and have none.
#[derive(Debug, Clone)]
pub struct RecoveredMessage {
    /// The message as the journal stores it (one `StoredMessage`).
    pub stored: Bytes,
    /// Its id.
    pub id: MessageId,
    /// Its tenant (one shared name per tenant).
    pub tenant: Arc<str>,
    /// Its queue priority.
    pub priority: Priority,
    /// Whether the stored form decodes to a message ([`check_stored`]);
    /// one that does not is reported, never queued.
    pub decodes: bool,
    /// A part was (or may have been) written to the carrier: without one,
    /// a dispatched message never left and is queued again on recovery.
    pub written: bool,
    /// Where it was dispatched; `None` while still queued.
    pub dispatch: Option<Box<RecoveredDispatch>>,
}

/// How far a recovered message got with its carrier.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveredDispatch {
    /// Carrier it was dispatched to.
    pub carrier: String,
    /// Parts written.
    pub parts: u32,
    /// Carrier ids per part; an empty string is a part with no answer.
    pub carrier_ids: Vec<String>,
}

impl RecoveredMessage {
    /// A message still queued, read from its stored form (for tests: replay
    /// shares one tenant name among all of a tenant's messages).
    ///
    /// # Errors
    /// [`RecordError`] when its head does not read ([`StoredHead::read`]).
    #[cfg(test)]
    pub fn queued(stored: Bytes) -> Result<RecoveredMessage, RecordError> {
        let head = StoredHead::read(&stored)?;
        Ok(RecoveredMessage {
            id: MessageId(head.id),
            tenant: head.tenant.into(),
            priority: head.priority,
            decodes: head.decodes,
            written: false,
            dispatch: None,
            stored,
        })
    }

    /// The message, decoded.
    ///
    /// # Errors
    /// [`RecordError`] when the stored form does not decode or a field is
    /// out of range (corruption, or a journal of an incompatible version).
    pub fn message(&self) -> Result<Message, RecordError> {
        stored_message(&self.stored)
    }

    /// Carrier it was dispatched to, if any.
    pub fn carrier(&self) -> Option<&str> {
        self.dispatch.as_ref().map(|d| d.carrier.as_str())
    }

    /// Parts written (0 while queued).
    pub fn parts(&self) -> u32 {
        self.dispatch.as_ref().map_or(0, |d| d.parts)
    }

    /// Carrier ids per part (empty while queued).
    pub fn carrier_ids(&self) -> &[String] {
        self.dispatch.as_ref().map_or(&[], |d| &d.carrier_ids)
    }
}

/// Decodes a message's stored form ([`RecoveredMessage::stored`]).
///
/// # Errors
/// As [`RecoveredMessage::message`].
pub fn stored_message(stored: &Bytes) -> Result<Message, RecordError> {
    use prost::Message as _;
    record::StoredMessage::decode(stored.clone())?.to_message()
}

/// Checks that a stored message decodes to a message (what paging it back
/// in from the spill will do), without keeping what it decoded.
///
/// # Errors
/// As [`RecoveredMessage::message`].
pub fn check_stored(stored: &[u8]) -> Result<(), RecordError> {
    record::StoredMessage::check_encoded(stored)
}

/// A message's stored form (what [`RecoveredMessage::stored`] holds).
pub fn stored_form(message: &Message) -> Bytes {
    let mut b = BytesMut::with_capacity(256);
    record::encode_stored(message, &mut b);
    b.freeze()
}

/// `(tenant, client_ref, id, accepted_at_ms)` of every accepted message
/// still in the journal, oldest first: the strings of all of them in one
/// buffer (a restart with millions of keys makes no allocation per key).
#[derive(Debug, Default, Clone)]
pub struct DedupeKeys {
    text: String,
    keys: Vec<DedupeKeyAt>,
}

#[derive(Debug, Clone, Copy)]
struct DedupeKeyAt {
    start: usize,
    tenant_len: u32,
    client_ref_len: u32,
    id: MessageId,
    accepted_at_ms: u64,
}

impl DedupeKeys {
    /// Adds a key after the others.
    pub fn push(&mut self, tenant: &str, client_ref: &str, id: MessageId, accepted_at_ms: u64) {
        let start = self.text.len();
        self.text.push_str(tenant);
        self.text.push_str(client_ref);
        self.keys.push(DedupeKeyAt {
            start,
            // Both come from frames far below 4 GiB.
            tenant_len: u32::try_from(tenant.len()).unwrap_or(u32::MAX),
            client_ref_len: u32::try_from(client_ref.len()).unwrap_or(u32::MAX),
            id,
            accepted_at_ms,
        });
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// `(tenant, client_ref, id, accepted_at_ms)`, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, MessageId, u64)> + '_ {
        self.keys.iter().map(|k| {
            let t = k.start + k.tenant_len as usize;
            let r = t + k.client_ref_len as usize;
            (
                self.text.get(k.start..t).unwrap_or_default(),
                self.text.get(t..r).unwrap_or_default(),
                k.id,
                k.accepted_at_ms,
            )
        })
    }
}

impl<'a> FromIterator<(&'a str, &'a str, MessageId, u64)> for DedupeKeys {
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a str, MessageId, u64)>>(iter: I) -> Self {
        let mut keys = DedupeKeys::default();
        for (tenant, client_ref, id, at) in iter {
            keys.push(tenant, client_ref, id, at);
        }
        keys
    }
}

/// An event waiting for upstream acknowledgement.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingEvent {
    /// Event id (what `EventAck` names).
    pub event_id: u64,
    /// Message this event ends (`MessageId(0)`: none).
    pub message_id: MessageId,
    /// Tenant the event belongs to.
    pub tenant: Arc<str>,
    /// The encoded event: `sluice.v1.Event` for the tenant stream, a JSON
    /// object for a webhook endpoint.
    pub payload: Bytes,
    /// Where it goes: empty for the tenant's event stream, else the name of
    /// one of the tenant's webhook endpoints. Each destination has its own
    /// copy (its own id), acknowledged on its own.
    pub sink: String,
    /// Wall-clock ms it was created (webhook dead-lettering counts from it).
    pub created_ms: u64,
}

/// Everything recovered on open.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Live messages (not yet final), by id.
    pub messages: Vec<RecoveredMessage>,
    /// Events not acknowledged, by event id.
    pub events: Vec<PendingEvent>,
    /// `(tenant, client_ref, id, accepted_at_ms)` of every accepted message still in the journal.
    pub dedupe: DedupeKeys,
    /// Next free message id.
    pub next_message_id: u64,
    /// Next free event id.
    pub next_event_id: u64,
    /// Records replayed.
    pub records: u64,
    /// Opt-out records, in log order (journals holding suppression data).
    pub opt: Vec<OptRecord>,
}

/// One opt-out or opt-in, with the proof compliance needs.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OptChange {
    /// The number (E.164 as an integer).
    #[prost(uint64, tag = "1")]
    pub number: u64,
    /// Suppression scope name.
    #[prost(string, tag = "2")]
    pub scope: String,
    /// True for an opt-out, false for an opt-in.
    #[prost(bool, tag = "3")]
    pub opted_out: bool,
    /// Where it came from: `sms`, `mms`, `api`, `import`.
    #[prost(string, tag = "4")]
    pub source: String,
    /// The keyword or API note (`STOP`, `UNSUBSCRIBE`, ...).
    #[prost(string, tag = "5")]
    pub keyword: String,
    /// Sender number it came through (empty for the API).
    #[prost(string, tag = "6")]
    pub sender: String,
    /// Carrier it came through (empty for the API).
    #[prost(string, tag = "7")]
    pub carrier: String,
    /// Wall-clock ms.
    #[prost(uint64, tag = "8")]
    pub at_ms: u64,
    /// The cluster node it was made on (empty: this node, or no cluster).
    #[prost(string, tag = "9")]
    pub origin: String,
}

/// Numbers added to a scope in bulk. With `import_id` 0 (a compaction
/// snapshot) it applies at once; otherwise only once its [`OptCommit`] follows.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OptBulk {
    /// Import this belongs to (0: snapshot).
    #[prost(uint64, tag = "1")]
    pub import_id: u64,
    /// Suppression scope name.
    #[prost(string, tag = "2")]
    pub scope: String,
    /// Numbers (E.164 as integers).
    #[prost(uint64, repeated, tag = "3")]
    pub numbers: Vec<u64>,
}

/// An import takes effect: its bulk records apply.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OptCommit {
    /// The import.
    #[prost(uint64, tag = "1")]
    pub import_id: u64,
    /// Where the numbers came from (file name).
    #[prost(string, tag = "2")]
    pub source: String,
    /// Numbers imported.
    #[prost(uint64, tag = "3")]
    pub count: u64,
    /// Wall-clock ms.
    #[prost(uint64, tag = "4")]
    pub at_ms: u64,
}

/// An opt-out journal record, in log order.
#[derive(Debug, Clone, PartialEq)]
pub enum OptRecord {
    /// A single change.
    Change(OptChange),
    /// Bulk numbers (apply only when committed, unless `import_id` is 0).
    Bulk(OptBulk),
    /// An import's commit.
    Commit(OptCommit),
}

/// A live message's state, for compaction's carry-forward.
#[derive(Debug, Clone)]
pub struct CarriedMessage<'a> {
    /// The message.
    pub message: &'a Message,
    /// Carrier when dispatched.
    pub carrier: Option<&'a str>,
    /// Parts written.
    pub parts: u32,
    /// Carrier ids per part.
    pub carrier_ids: &'a [String],
    /// A part was written (or may have been).
    pub written: bool,
}

fn encoded_varint_len(v: u64) -> usize {
    prost::encoding::encoded_len_varint(v)
}

/// Resolves when the records it stands for are synced.
#[derive(Debug)]
#[must_use = "a durable append is only durable once awaited"]
pub struct Durable(Result<oneshot::Receiver<SyncResult>, JournalError>);

impl Durable {
    /// One that fails at once as a failed write does (tests of what a
    /// refused batch undoes).
    #[cfg(test)]
    pub(crate) fn failed_for_tests() -> Durable {
        Durable(Err(JournalError::Write(Arc::new(std::io::Error::other(
            "disk gone",
        )))))
    }

    /// Waits for the sync.
    ///
    /// # Errors
    /// [`JournalError::Write`] when the write or sync failed, [`JournalError::Closed`] on shutdown.
    pub async fn wait(self) -> Result<(), JournalError> {
        match self.0 {
            Ok(rx) => match rx.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(JournalError::Write(e)),
                Err(_) => Err(JournalError::Closed),
            },
            Err(e) => Err(e),
        }
    }
}

/// Cheap, clonable handle to the journal.
#[derive(Clone, Debug)]
pub struct Journal {
    // Dropped before `_writer`: the last handle's drop closes the channel,
    // then waits for the thread.
    tx: mpsc::Sender<Command>,
    _writer: Arc<WriterThread>,
    shared: Arc<Shared>,
    dir: Arc<Path>,
}

/// Whether a journal has failed ([`Journal::failure`]), for those who
/// watch it without writing (readiness).
#[derive(Clone, Debug)]
pub struct Failure(Arc<Shared>);

impl Failure {
    /// As [`Journal::has_failed`].
    pub fn is_set(&self) -> bool {
        self.0.failed.load(Ordering::Acquire)
    }
}

/// Marks the journal failed when the writer thread ends by a panic: every
/// later record is refused (the channel is closed), and
/// [`Journal::has_failed`] says so.
struct FailedOnPanic(Arc<Shared>);

impl Drop for FailedOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.failed.store(true, Ordering::Release);
        }
    }
}

/// The writer thread, joined when the last handle to the journal goes: a
/// journal dropped is closed, its staged records written and synced and
/// its head's zeros cut, before anyone can open the directory again.
#[derive(Debug)]
struct WriterThread(Option<std::thread::JoinHandle<()>>);

impl Drop for WriterThread {
    fn drop(&mut self) {
        if let Some(thread) = self.0.take() {
            // The channel is closed (every sender is gone): the thread ends
            // after its last write and sync.
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("journal::Command")
    }
}

impl Journal {
    /// Opens (or creates) the journal in `dir`, replays it, and starts the
    /// writer thread on a fresh head segment.
    ///
    /// # Errors
    /// [`JournalError`] when the directory cannot be used or a record in the
    /// middle of the journal is damaged.
    pub fn open(dir: &Path, cfg: &JournalConfig) -> Result<(Journal, Recovered), JournalError> {
        std::fs::create_dir_all(dir).map_err(|e| JournalError::Io(dir.to_owned(), e))?;
        let segments =
            replay::list_segments(dir).map_err(|e| JournalError::Io(dir.to_owned(), e))?;
        let started = tokio::time::Instant::now();
        let recovered = replay::replay(dir, &segments)?;
        tracing::info!(target: "sluice::journal", segments = segments.len(), records = recovered.records,
            live = recovered.messages.len(), ms = started.elapsed().as_millis() as u64, "journal replayed");
        // Segments a crash left half deleted: their records were carried.
        let doomed = reclaim::leftovers(dir).map_err(|e| JournalError::Io(dir.to_owned(), e))?;
        reclaim::remove_in_background(doomed);
        let existing =
            replay::list_segments(dir).map_err(|e| JournalError::Io(dir.to_owned(), e))?;
        let head = existing.last().map_or(1, |s| s.0 + 1);
        let shared = Arc::new(Shared::default());
        shared
            .next_message_id
            .store(recovered.next_message_id, Ordering::Release);
        shared
            .next_event_id
            .store(recovered.next_event_id, Ordering::Release);
        let w = writer::Writer::create(
            dir.to_owned(),
            existing,
            head,
            cfg.segment_bytes,
            cfg.prezero_segments,
            shared.clone(),
        )
        .map_err(|e| JournalError::Io(dir.to_owned(), e))?;
        let (tx, rx) = mpsc::channel();
        let failed_on_panic = FailedOnPanic(shared.clone());
        let writer = std::thread::Builder::new()
            .name("sluice-journal".into())
            .spawn(move || {
                let _failed_on_panic = failed_on_panic;
                w.run(rx)
            })
            .map_err(|e| JournalError::Io(dir.to_owned(), e))?;
        Ok((
            Journal {
                tx,
                _writer: Arc::new(WriterThread(Some(writer))),
                shared,
                dir: dir.into(),
            },
            recovered,
        ))
    }

    /// Directory of the journal.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reserves `n` consecutive message ids; returns the first.
    pub fn allocate_message_ids(&self, n: u64) -> u64 {
        self.shared.next_message_id.fetch_add(n, Ordering::AcqRel)
    }

    /// Message ids given from now on are at least `first` (a cluster node's
    /// range).
    pub fn raise_message_ids(&self, first: u64) {
        self.shared
            .next_message_id
            .fetch_max(first, Ordering::AcqRel);
    }

    /// Reserves `n` consecutive event ids; returns the first.
    pub fn allocate_event_ids(&self, n: u64) -> u64 {
        self.shared.next_event_id.fetch_add(n, Ordering::AcqRel)
    }

    /// Number of the segment being written.
    pub fn head_segment(&self) -> u64 {
        self.shared.head_segment.load(Ordering::Acquire)
    }

    /// Segments on disk.
    pub fn segments(&self) -> u64 {
        self.shared.segments.load(Ordering::Relaxed)
    }

    /// Bytes on disk.
    pub fn bytes(&self) -> u64 {
        self.shared.bytes.load(Ordering::Relaxed)
    }

    fn send(&self, kind: Kind, payload: &impl prost::Message, durable: bool) -> Durable {
        let mut b = BytesMut::new();
        record::frame(&mut b, kind, payload);
        self.send_bytes(b.freeze(), durable)
    }

    fn send_bytes(&self, bytes: Bytes, durable: bool) -> Durable {
        let (done, rx) = if durable {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let sent = self.tx.send(Command::Append { bytes, done });
        match (sent, rx) {
            (Err(_), _) => Durable(Err(JournalError::Closed)),
            (Ok(()), Some(rx)) => Durable(Ok(rx)),
            (Ok(()), None) => {
                // Not waited for: resolve at once.
                let (tx, rx) = oneshot::channel();
                let _ = tx.send(Ok(()));
                Durable(Ok(rx))
            }
        }
    }

    /// Records accepted messages; durable once the result resolves. A
    /// gateway makes them live at the same time: [`Journal::accept_then`]
    /// (`Ledger::accept`).
    pub fn accept<'a>(&self, messages: impl IntoIterator<Item = &'a Message>) -> Durable {
        self.accept_then(messages, || {})
    }

    /// Records accepted messages, then runs `make_live` (which makes them
    /// live where compaction looks: the ledger) before a rotation can be
    /// asked for; durable once the result resolves.
    ///
    /// The order is what compaction relies on. Whatever it carries was
    /// live, so its `Accept` was sent before its `Carry`: a commit that
    /// fails for the `Accept` refuses the `Carry` too, and a message the
    /// client was told to retry never comes back from a carried copy. And
    /// an `Accept` sent to a segment about to be rotated out has its
    /// messages live before the rotation, so they are carried (one sent
    /// after the rotation goes to the new head: the writer takes no record
    /// past a rotation into the commit before it).
    ///
    /// `make_live` must not call `accept_then` or [`Journal::rotate`]: the
    /// rotation lock is held.
    pub fn accept_then<'a>(
        &self,
        messages: impl IntoIterator<Item = &'a Message>,
        make_live: impl FnOnce(),
    ) -> Durable {
        let mut b = BytesMut::with_capacity(4096);
        record::frame_with(&mut b, Kind::Accept, |dst| {
            record::encode_accept(dst, messages)
        });
        let _no_rotation = self.shared.rotation.read();
        let durable = self.send_bytes(b.freeze(), true);
        make_live();
        durable
    }

    /// Writes a `Dispatch` record as journals did before `Written` records
    /// existed (tests of replaying such journals).
    #[cfg(test)]
    pub(crate) fn legacy_dispatch<'a>(
        &self,
        entries: impl IntoIterator<Item = (MessageId, &'a str, u32)>,
    ) -> Durable {
        let rec = record::Dispatch {
            entries: entries
                .into_iter()
                .map(|(id, carrier, parts)| record::DispatchEntry {
                    id: id.0,
                    carrier: carrier.to_owned(),
                    parts,
                })
                .collect(),
        };
        self.send(Kind::Dispatch, &rec, true)
    }

    /// Records that parts `(id, part, total)` are about to be written to
    /// `carrier` (an SMSC's socket, an MMSC request). Must be durable before
    /// the first byte is written: after a crash, a dispatched message with
    /// no written part is queued again, one with a written part but no
    /// carrier answer is `unknown` (it may have reached the carrier).
    pub fn written(
        &self,
        carrier: &str,
        parts: impl IntoIterator<Item = (MessageId, u32, u32)>,
    ) -> Durable {
        let mut rec = record::Written {
            carrier: carrier.to_owned(),
            ..record::Written::default()
        };
        for (id, part, total) in parts {
            rec.ids.push(id.0);
            rec.parts.push(part);
            rec.totals.push(total);
        }
        self.send(Kind::Written, &rec, true)
    }

    /// Records that dispatched messages were never written and are queued again.
    pub fn undispatch(&self, ids: impl IntoIterator<Item = MessageId>) {
        let rec = record::Ids {
            ids: ids.into_iter().map(|i| i.0).collect(),
        };
        let _ = self.send(Kind::Undispatch, &rec, false);
    }

    /// Records carrier ids of submitted parts: `(id, part, carrier_id)`.
    /// Not synced on its own (the next group commit carries it).
    pub fn submitted<'a>(&self, entries: impl IntoIterator<Item = (MessageId, u32, &'a str)>) {
        use prost::encoding::{WireType, encode_key, encode_varint};
        let mut st = self.shared.staged.lock();
        for (id, part, cid) in entries {
            let entry_len = 1
                + encoded_varint_len(id.0)
                + 1
                + encoded_varint_len(u64::from(part))
                + 1
                + encoded_varint_len(cid.len() as u64)
                + cid.len();
            let b = &mut st.submitted;
            encode_key(1, WireType::LengthDelimited, b);
            encode_varint(entry_len as u64, b);
            encode_key(1, WireType::Varint, b);
            encode_varint(id.0, b);
            encode_key(2, WireType::Varint, b);
            encode_varint(u64::from(part), b);
            encode_key(3, WireType::LengthDelimited, b);
            encode_varint(cid.len() as u64, b);
            bytes::BufMut::put_slice(b, cid.as_bytes());
        }
    }

    /// Records events (a non-zero `message_id` also ends that message);
    /// durable once the result resolves.
    pub fn events<'a>(&self, events: impl IntoIterator<Item = &'a PendingEvent>) -> Durable {
        let mut b = BytesMut::with_capacity(4096);
        record::frame_with(&mut b, Kind::Event, |dst| {
            record::encode_events(dst, events)
        });
        self.send_bytes(b.freeze(), true)
    }

    /// Records events the upstream acknowledged. Not synced on its own: a lost
    /// acknowledgement only means the event is sent again (at least once).
    pub fn event_ack(&self, ids: &[u64]) {
        self.shared.staged.lock().acks.extend_from_slice(ids);
    }

    /// Rewrites live messages into the head (compaction); durable once resolved.
    pub fn carry<'a>(&self, messages: impl IntoIterator<Item = CarriedMessage<'a>>) -> Durable {
        let rec = record::Carry {
            messages: messages
                .into_iter()
                .map(|c| record::CarriedMessage {
                    message: Some(stored_form(c.message)),
                    carrier: c.carrier.unwrap_or_default().to_owned(),
                    parts: c.parts,
                    carrier_ids: c.carrier_ids.to_vec(),
                    write_state: if c.written {
                        record::WRITE_STATE_WRITTEN
                    } else {
                        record::WRITE_STATE_UNWRITTEN
                    },
                })
                .collect(),
        };
        self.send(Kind::Carry, &rec, true)
    }

    /// Rewrites dedupe keys `(tenant, client_ref, id, accepted_at_ms)` into the
    /// head (compaction); durable once resolved.
    pub fn remember<'a>(
        &self,
        entries: impl IntoIterator<Item = (&'a str, &'a str, MessageId, u64)>,
    ) -> Durable {
        let rec = record::Remember {
            entries: entries
                .into_iter()
                .map(|(tenant, client_ref, id, at)| record::DedupeEntry {
                    tenant: tenant.to_owned(),
                    client_ref: client_ref.to_owned(),
                    id: id.0,
                    accepted_at_ms: at,
                })
                .collect(),
        };
        self.send(Kind::Remember, &rec, true)
    }

    /// Records an opt-out or opt-in; durable once resolved (before any
    /// confirmation is sent).
    pub fn opt_change(&self, change: &OptChange) -> Durable {
        self.send(Kind::OptChange, change, true)
    }

    /// Records numbers added in bulk; durable once resolved.
    pub fn opt_bulk(&self, bulk: &OptBulk) -> Durable {
        self.send(Kind::OptBulk, bulk, true)
    }

    /// Commits an import; durable once resolved.
    pub fn opt_commit(&self, commit: &OptCommit) -> Durable {
        self.send(Kind::OptCommit, commit, true)
    }

    /// True once a write, a sync or a rotation failed: every later record
    /// is refused (set before the writer answers anyone about the failure).
    pub fn has_failed(&self) -> bool {
        self.shared.failed.load(Ordering::Acquire)
    }

    /// A handle that reads [`Journal::has_failed`] without keeping the
    /// journal open (its writer is joined when the last `Journal` goes).
    pub fn failure(&self) -> Failure {
        Failure(self.shared.clone())
    }

    /// Makes the writer fail as a disk error would: a directory takes the
    /// next segment's name, and a rotation is asked for (tests of what a
    /// failed journal refuses; with `prezero_segments` off).
    #[cfg(test)]
    pub(crate) async fn fail_for_tests(&self) {
        let next = writer::segment_path(&self.dir, self.head_segment() + 1);
        std::fs::create_dir(next).expect("a directory in the journal's");
        assert!(self.rotate().await.is_err(), "the rotation fails");
    }

    /// Closes the head segment and starts a new one; returns its number.
    /// Asked for only between acceptances ([`Journal::accept_then`]).
    ///
    /// # Errors
    /// [`JournalError::Closed`] when the writer is gone, or has failed (a
    /// write, a sync or a rotation) and appends nothing more.
    pub async fn rotate(&self) -> Result<u64, JournalError> {
        let (done, rx) = oneshot::channel();
        {
            // No acceptance half done: see `accept_then`.
            let _rotation = self.shared.rotation.write();
            self.tx
                .send(Command::Rotate { done })
                .map_err(|_| JournalError::Closed)?;
        }
        rx.await.map_err(|_| JournalError::Closed)
    }

    /// Deletes every segment numbered below `before` (never the head).
    ///
    /// # Errors
    /// [`JournalError`] when the writer is gone or a file cannot be removed.
    pub async fn delete_before(&self, before: u64) -> Result<(), JournalError> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Command::DeleteBefore { before, done })
            .map_err(|_| JournalError::Closed)?;
        let gone = rx.await.map_err(|_| JournalError::Closed)?;
        let dir = self.dir.to_path_buf();
        let io = |e| JournalError::Io(dir.clone(), e);
        let dir2 = dir.clone();
        tokio::task::spawn_blocking(move || {
            // Out of replay's sight (durably) before this returns, then
            // freed a little at a time in the background (unlinking 64 MiB
            // segments at once, even 50 ms apart, held acknowledgements up
            // for ~50 ms each: `model::reclaim`).
            reclaim::remove(&dir2, gone)
        })
        .await
        .map_err(|e| io(io::Error::other(e)))?
        .map_err(io)
    }
}

/// Encodes messages in the journal's own message format (an `Accept`
/// payload, no framing): what the spill files hold.
pub fn encode_messages<'a>(dst: &mut BytesMut, messages: impl IntoIterator<Item = &'a Message>) {
    record::encode_accept(dst, messages);
}

/// Encodes messages already in their stored form ([`RecoveredMessage::stored`])
/// as [`encode_messages`] encodes the same messages decoded.
pub fn encode_stored<'a>(dst: &mut BytesMut, stored: impl IntoIterator<Item = &'a [u8]>) {
    record::encode_accept_stored(dst, stored);
}

/// Decodes what [`encode_messages`] wrote.
///
/// # Errors
/// [`RecordError`] when the bytes are not such a payload.
pub fn decode_messages(payload: &[u8]) -> Result<Vec<Message>, RecordError> {
    use prost::Message as _;
    // Each message decoded on its own, as `check_stored` checks it (a nested
    // decode would have one level less of prost's recursion limit).
    let mut messages = Vec::new();
    record::for_each_stored(payload, |m| {
        messages.push(record::StoredMessage::decode(m)?.to_message()?);
        Ok(())
    })?;
    Ok(messages)
}

#[cfg(test)]
mod tests;
