//! Recovery: reads every segment in order, checks each record's CRC, and folds
//! the records into the state the gateway restarts from.
//!
//! Replay is idempotent and monotonic: a message's progress only moves
//! forward (queued → dispatched → submitted → final), so a record carried
//! forward by compaction with an older view never undoes a newer one.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use prost::Message as _;

use super::record::{self, Kind, RecordError};
use super::writer::segment_path;
use super::{JournalError, PendingEvent, Recovered, RecoveredDispatch, RecoveredMessage};
use crate::model::{MessageId, Priority};

/// Progress of one message during replay (boxed in [`State::live`]; what
/// only a dispatched message has is boxed again, as most messages live
/// after an outage are queued).
#[derive(Default)]
pub(super) struct Progress {
    /// The stored form: a slice of its segment as read (no copy; the
    /// segments holding live messages stay in memory until the restart has
    /// queued or spilled them).
    pub(super) message: Option<Bytes>,
    /// Where it was dispatched (a record may name the carrier or the
    /// carrier ids first).
    pub(super) dispatch: Option<Box<RecoveredDispatch>>,
    /// Index of its tenant in [`State::tenants`].
    tenant: u32,
    priority: Priority,
    /// Its stored form decodes to a message ([`record::StoredHead::decodes`]).
    decodes: bool,
    /// A part was (or may have been) written to the carrier.
    written: bool,
}

impl Progress {
    /// Its dispatch details, made empty on first use.
    fn dispatch_mut(&mut self) -> &mut RecoveredDispatch {
        self.dispatch.get_or_insert_default()
    }
}

/// Maps keyed by ids from our own journal: foldhash, not SipHash (millions
/// of lookups per restart).
type Fast = crate::model::hashing::FastHasher;

#[derive(Default)]
pub(super) struct State {
    /// Boxed: with millions live, the map's growth then moves 16-byte
    /// entries, not whole progress records.
    pub(super) live: HashMap<u64, Box<Progress>, Fast>,
    /// Message ids that reached a terminal state (never revived by an older view).
    finished: HashSet<u64, Fast>,
    events: BTreeMap<u64, PendingEvent>,
    acked: HashSet<u64, Fast>,
    next_message_id: u64,
    next_event_id: u64,
    dedupe: super::DedupeKeys,
    records: u64,
    opt: Vec<super::OptRecord>,
    /// The segments as read (live messages are slices of them).
    segments: Vec<Bytes>,
    /// Tenant names of live messages, one shared name each.
    tenants: Vec<Arc<str>>,
    /// Index of each name in `tenants`.
    tenant_of: HashMap<Arc<str>, u32, Fast>,
    /// The index [`State::tenant_index`] gave last.
    last_tenant: u32,
}

impl State {
    /// The index of `tenant` in [`State::tenants`], added on first sight.
    /// The last one given matches almost always (an `Accept` record is one
    /// tenant's batch); `Carry` records mix tenants.
    fn tenant_index(&mut self, tenant: &str) -> u32 {
        if let Some(last) = self.tenants.get(self.last_tenant as usize)
            && **last == *tenant
        {
            return self.last_tenant;
        }
        let i = match self.tenant_of.get(tenant) {
            Some(&i) => i,
            None => {
                let name: Arc<str> = tenant.into();
                // Fewer than 2^32 names: a journal holds fewer messages.
                let i = self.tenants.len() as u32;
                self.tenants.push(name.clone());
                self.tenant_of.insert(name, i);
                i
            }
        };
        self.last_tenant = i;
        i
    }
}

/// Lists segment numbers and sizes in `dir`, oldest first.
pub(crate) fn list_segments(dir: &Path) -> io::Result<Vec<(u64, u64)>> {
    let mut v = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(num) = name.strip_suffix(".log") else {
            continue;
        };
        let Ok(n) = num.parse::<u64>() else { continue };
        v.push((n, entry.metadata()?.len()));
    }
    v.sort_unstable();
    Ok(v)
}

/// Replays the segments; truncates a torn tail of the last one.
///
/// A bad record at the end of the last segment is cut when nothing after
/// it can have been acknowledged ([`unsynced_tail`]): no valid record
/// follows it (a crash mid-append), only zeros follow it (a segment zeroed
/// ahead of time), or a page of zeros lies before the next valid record (a
/// write a power loss kept in part). Anything else — a bad record with
/// valid ones after it, or in an older segment — is damage: the start is
/// refused with [`JournalError::Corrupt`] and nothing is cut, so `sluice
/// journal check` can report it and `sluice journal salvage` keep every
/// valid record.
///
/// The next segment is read on a second thread while one is applied (with
/// a million messages per segment, reading is a third of the time).
pub(crate) fn replay(dir: &Path, segments: &[(u64, u64)]) -> Result<Recovered, JournalError> {
    let read = |n: u64| {
        let path = segment_path(dir, n);
        let data = read_segment(&path);
        (path, data)
    };
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let reader = std::thread::Builder::new()
            .name("sluice-replay".into())
            .spawn_scoped(scope, move || {
                for &(n, _) in segments {
                    if tx.send(read(n)).is_err() {
                        return;
                    }
                }
            });
        match reader {
            Ok(reader) => {
                let applied = apply_segments(rx.into_iter(), segments.len());
                if let Err(panic) = reader.join() {
                    // A bug: the start fails as it would have on one thread.
                    std::panic::resume_unwind(panic);
                }
                applied
            }
            // No second thread: read each in turn.
            Err(_) => apply_segments(segments.iter().map(|&(n, _)| read(n)), segments.len()),
        }
    })
}

/// Applies the segments read, in order (see [`replay`]).
fn apply_segments(
    segments: impl Iterator<Item = (std::path::PathBuf, Result<Bytes, JournalError>)>,
    count: usize,
) -> Result<Recovered, JournalError> {
    let mut st = State::default();
    for (i, (path, data)) in segments.into_iter().take(count).enumerate() {
        let last = i + 1 == count;
        let data = data?;
        let valid = replay_segment(&mut st, data.clone(), &path)?;
        st.segments.push(data.clone());
        if valid < data.len() {
            let damaged = |reason: String| JournalError::Corrupt {
                path: path.clone(),
                offset: valid as u64,
                reason: format!(
                    "{reason}; nothing was changed: run `sluice journal check` to see the damage and `sluice journal salvage` to keep every valid record"
                ),
            };
            if !last {
                return Err(damaged(
                    "bad record in a segment that is not the last".into(),
                ));
            }
            match unsynced_tail(&data, valid) {
                Ok(Tail::Zeros) => {
                    tracing::info!(target: "sluice::journal", path = %path.display(), offset = valid,
                        zeros = data.len() - valid, "cutting the zeros after the journal's last record");
                }
                Ok(Tail::Torn) => {
                    tracing::warn!(target: "sluice::journal", path = %path.display(), offset = valid,
                        "truncating a torn record at the end of the journal");
                }
                Ok(Tail::Unsynced { page }) => {
                    // Sound after a power loss; after a disk that lost an
                    // acknowledged page it would drop records, so the
                    // segment is kept as it was beside the journal.
                    let kept = path.with_extension("log.unsynced");
                    std::fs::write(&kept, &data).map_err(|e| JournalError::Io(kept.clone(), e))?;
                    tracing::error!(target: "sluice::journal", path = %path.display(), offset = valid, page,
                        kept = %kept.display(),
                        "truncating the end of the journal: a page of it never reached the disk, so no sync completed after it and nothing from here on was acknowledged (the segment as it was is kept)");
                }
                Err(next) => {
                    return Err(damaged(format!(
                        "bad record followed by valid records (the next at offset {next})"
                    )));
                }
            }
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| JournalError::Io(path.clone(), e))?;
            f.set_len(valid as u64)
                .and_then(|_| f.sync_all())
                .map_err(|e| JournalError::Io(path.clone(), e))?;
        }
    }
    Ok(finish(st))
}

pub(super) fn read_segment(path: &Path) -> Result<Bytes, JournalError> {
    let mut data = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .map_err(|e| JournalError::Io(path.to_owned(), e))?;
    Ok(Bytes::from(data))
}

/// Applies the records of one segment; returns the length of its valid prefix.
fn replay_segment(st: &mut State, data: Bytes, path: &Path) -> Result<usize, JournalError> {
    let mut off = 0usize;
    while let Some(len) = record_len_at(&data, off) {
        let kind = Kind::from_u8(data[off + 8]);
        let payload = data.slice(off + 9..off + len);
        apply(st, kind, payload).map_err(|e| JournalError::Corrupt {
            path: path.to_owned(),
            offset: off as u64,
            reason: e.to_string(),
        })?;
        st.records += 1;
        off += len;
    }
    Ok(off)
}

/// Length of the record framed at `off` when it is whole and its CRC and
/// kind check out.
fn record_len_at(data: &[u8], off: usize) -> Option<usize> {
    let header = data.get(off..off + record::HEADER_LEN)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..8].try_into().ok()?);
    if len == 0 || len > record::MAX_RECORD_LEN {
        return None;
    }
    let body = data.get(off + 8..off + 8 + len)?;
    // The kind first: it rules out most candidates before a CRC of `len`.
    (Kind::from_u8(body[0]).is_some() && crc32fast::hash(body) == crc).then_some(8 + len)
}

/// Size of the pages a torn write can lose one by one.
const PAGE: usize = 4096;

/// What ends the last segment after its valid records, when an ordinary
/// start may cut it (see [`unsynced_tail`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tail {
    /// Only zeros: the rest of a segment zeroed ahead of time (`prezero`),
    /// or pages a crash left zeroed. No record starts with a zero length.
    Zeros,
    /// No valid record follows: a crash mid-write.
    Torn,
    /// A page of zeros (at `page`) before the next valid record: a write
    /// into a segment zeroed ahead of time that a power loss cut in pieces
    /// (the disk kept some of its pages and not others). No sync completed
    /// after that page was written (it would have kept it), so nothing from
    /// the first bad byte on was acknowledged. (Records the gateway writes
    /// hold a page of zeros almost never: only an inbound MMS text of NUL
    /// characters would. A disk that loses an acknowledged page would look
    /// the same, so replay keeps a copy of the segment before it cuts.)
    Unsynced {
        /// Offset of the page.
        page: usize,
    },
}

/// Whether the bytes of the last segment from `valid` (the end of its valid
/// prefix) on may be cut, and why; else the offset of the next valid
/// record (they are damage).
///
/// Valid records are looked for only before the first page of zeros: a
/// torn record's bytes, read against a 64 MiB file, often give lengths
/// that fit, and each would cost a CRC of megabytes.
pub(super) fn unsynced_tail(data: &[u8], valid: usize) -> Result<Tail, usize> {
    let Some(rest) = data.get(valid..) else {
        return Ok(Tail::Torn);
    };
    if rest.iter().all(|&b| b == 0) {
        return Ok(Tail::Zeros);
    }
    let mut page = valid.div_ceil(PAGE) * PAGE;
    while page + PAGE <= data.len() && data[page..page + PAGE].iter().any(|&b| b != 0) {
        page += PAGE;
    }
    if page + PAGE <= data.len() {
        // A valid record before it is damage (nothing lost lies before it).
        if let Some(next) = next_valid(&data[..page], valid + 1) {
            return Err(next);
        }
        return Ok(match next_valid(data, page + PAGE) {
            Some(_) => Tail::Unsynced { page },
            None => Tail::Torn,
        });
    }
    match next_valid(data, valid + 1) {
        Some(next) => Err(next),
        None => Ok(Tail::Torn),
    }
}

/// Where a start cuts this segment's bytes, were it the last: the offset of
/// its first damaged span when [`unsynced_tail`] allows the cut, else none
/// (no damage, or damage that refuses the start).
pub(super) fn start_cuts_at(data: &[u8], spans: &[Span]) -> Option<usize> {
    let at = spans.iter().find_map(|s| match s {
        Span::Damaged { offset, .. } => Some(*offset),
        Span::Record { .. } => None,
    })?;
    unsynced_tail(data, at).is_ok().then_some(at)
}

/// The first offset at or after `from` where a valid record starts.
///
/// A record's 4-byte length is never zero, so a run of zeros is skipped to
/// three bytes before its end, not tried offset by offset: the rest of a
/// segment zeroed ahead of time is tens of megabytes.
fn next_valid(data: &[u8], from: usize) -> Option<usize> {
    let end = data.len().saturating_sub(record::HEADER_LEN - 1);
    let mut o = from;
    while o < end {
        if data[o..o + 4] == [0; 4] {
            // The first later offset whose length bytes hold a non-zero one.
            let nonzero = o + 4 + data[o + 4..].iter().position(|&b| b != 0)?;
            o = nonzero - 3;
            continue;
        }
        if record_len_at(data, o).is_some() {
            return Some(o);
        }
        o += 1;
    }
    None
}

/// A stretch of a segment: valid records, or damaged bytes between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// One valid record at `offset`, `len` bytes long.
    Record {
        /// Byte offset.
        offset: usize,
        /// Bytes, header included.
        len: usize,
    },
    /// Bytes that are not a valid record.
    Damaged {
        /// Byte offset.
        offset: usize,
        /// Bytes.
        len: usize,
    },
}

/// Splits a segment into valid records and damaged stretches.
pub fn scan(data: &[u8]) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut off = 0;
    while off < data.len() {
        match record_len_at(data, off) {
            Some(len) => {
                spans.push(Span::Record { offset: off, len });
                off += len;
            }
            None => {
                let next = next_valid(data, off + 1).unwrap_or(data.len());
                spans.push(Span::Damaged {
                    offset: off,
                    len: next - off,
                });
                off = next;
            }
        }
    }
    spans
}

/// Fuzzing hook: replays one segment held in memory, as [`replay`] does each
/// file; returns what was recovered and the length of the valid prefix.
///
/// # Errors
/// As [`replay`], for a bad record.
#[doc(hidden)]
pub fn fuzz_replay(data: Bytes) -> Result<(Recovered, usize), JournalError> {
    let mut st = State::default();
    let valid = replay_segment(&mut st, data.clone(), Path::new("fuzz.log"))?;
    if valid < data.len()
        && let Ok(Tail::Unsynced { page }) = unsynced_tail(&data, valid)
    {
        assert!(page >= valid && page % PAGE == 0 && page + PAGE <= data.len());
        assert!(data[page..page + PAGE].iter().all(|&b| b == 0));
    }
    st.segments.push(data);
    Ok((finish(st), valid))
}

pub(super) fn apply(st: &mut State, kind: Option<Kind>, payload: Bytes) -> Result<(), RecordError> {
    match kind {
        None => return Err(RecordError::UnknownKind),
        Some(Kind::SegmentHeader) => {
            let h = record::SegmentHeader::decode(payload)?;
            st.next_message_id = st.next_message_id.max(h.next_message_id);
            st.next_event_id = st.next_event_id.max(h.next_event_id);
        }
        Some(Kind::Accept) => {
            // Every head is read before anything changes: a record applies
            // whole or not at all (`salvage` drops one that does not).
            let mut heads = Vec::new();
            record::for_each_stored(&payload, |m| {
                heads.push((record::StoredHead::read(m)?, m));
                Ok(())
            })?;
            for (head, m) in heads {
                accept(st, &payload, head, m);
            }
        }
        Some(Kind::Carry) => {
            let c = record::Carry::decode(payload)?;
            let heads = c
                .messages
                .iter()
                .map(|cm| {
                    cm.message
                        .as_deref()
                        .map(record::StoredHead::read)
                        .transpose()
                })
                .collect::<Result<Vec<_>, _>>()?;
            for (cm, head) in c.messages.iter().zip(heads) {
                let (Some(m), Some(head)) = (&cm.message, head) else {
                    continue;
                };
                accept(st, m, head, m);
                if let Some(p) = st.live.get_mut(&head.id) {
                    p.written |= match cm.write_state {
                        record::WRITE_STATE_UNWRITTEN => false,
                        record::WRITE_STATE_WRITTEN => true,
                        // Carried before the state was kept (or unknown to
                        // this version): dispatched counts as written.
                        _ => !cm.carrier.is_empty(),
                    };
                    if cm.carrier.is_empty() && cm.carrier_ids.is_empty() {
                        continue;
                    }
                    let d = p.dispatch_mut();
                    if !cm.carrier.is_empty() && d.carrier.is_empty() {
                        d.carrier.clone_from(&cm.carrier);
                        d.parts = cm.parts;
                    }
                    merge_ids(&mut d.carrier_ids, &cm.carrier_ids);
                }
            }
        }
        Some(Kind::Dispatch) => {
            let record = record::Dispatch::decode(payload)?;
            for e in record.entries {
                if let Some(p) = st.live.get_mut(&e.id) {
                    let d = p.dispatch_mut();
                    d.carrier = e.carrier;
                    d.parts = e.parts;
                    // Written before `Written` records existed: the dispatch
                    // was synced just before the first byte left.
                    p.written = true;
                }
            }
        }
        Some(Kind::Written) => {
            let w = record::Written::decode(payload)?;
            if w.ids.len() != w.parts.len() || w.ids.len() != w.totals.len() {
                return Err(RecordError::UnevenColumns);
            }
            for (i, id) in w.ids.iter().enumerate() {
                if let Some(p) = st.live.get_mut(id) {
                    let d = p.dispatch_mut();
                    if d.carrier != w.carrier {
                        d.carrier.clone_from(&w.carrier);
                    }
                    d.parts = w.totals[i];
                    p.written = true;
                }
            }
        }
        Some(Kind::Undispatch) => {
            let ids = record::Ids::decode(payload)?;
            for id in ids.ids {
                if let Some(p) = st.live.get_mut(&id)
                    && p.dispatch
                        .as_ref()
                        .is_none_or(|d| d.carrier_ids.iter().all(String::is_empty))
                {
                    p.dispatch = None;
                    p.written = false;
                }
            }
        }
        Some(Kind::Submitted) => {
            let s = record::Submitted::decode(payload)?;
            for e in s.entries {
                if let Some(p) = st.live.get_mut(&e.id) {
                    let i = e.part as usize;
                    if i < 255 {
                        let ids = &mut p.dispatch_mut().carrier_ids;
                        if ids.len() <= i {
                            ids.resize(i + 1, String::new());
                        }
                        ids[i] = e.carrier_id;
                    }
                }
            }
        }
        Some(Kind::Event) => {
            let ev = record::Events::decode(payload)?;
            for e in ev.entries {
                if e.message_id != 0 {
                    st.live.remove(&e.message_id);
                    st.finished.insert(e.message_id);
                }
                st.next_event_id = st.next_event_id.max(e.event_id.saturating_add(1));
                if !st.acked.contains(&e.event_id) {
                    st.events.insert(
                        e.event_id,
                        PendingEvent {
                            event_id: e.event_id,
                            message_id: MessageId(e.message_id),
                            tenant: e.tenant.into(),
                            payload: e.payload,
                            sink: e.sink,
                            created_ms: e.created_ms,
                        },
                    );
                }
            }
        }
        Some(Kind::Remember) => {
            let r = record::Remember::decode(payload)?;
            for e in r.entries {
                st.next_message_id = st.next_message_id.max(e.id.saturating_add(1));
                st.dedupe
                    .push(&e.tenant, &e.client_ref, MessageId(e.id), e.accepted_at_ms);
            }
        }
        Some(Kind::OptChange) => {
            st.opt
                .push(super::OptRecord::Change(super::OptChange::decode(payload)?));
        }
        Some(Kind::OptBulk) => {
            st.opt
                .push(super::OptRecord::Bulk(super::OptBulk::decode(payload)?));
        }
        Some(Kind::OptCommit) => {
            st.opt
                .push(super::OptRecord::Commit(super::OptCommit::decode(payload)?));
        }
        Some(Kind::EventAck) => {
            let ids = record::Ids::decode(payload)?;
            for id in ids.ids {
                st.events.remove(&id);
                st.acked.insert(id);
            }
        }
    }
    Ok(())
}

/// Records an accepted message (from an `Accept` or a `Carry` record,
/// `stored` a part of `record`, `head` read from it): its dedupe key, and
/// while it is live its stored form with what the restart queues it by
/// (tenant, priority) and whether it decodes, all from its first copy.
fn accept(st: &mut State, record: &Bytes, head: record::StoredHead<'_>, stored: &[u8]) {
    // Saturating: ids come from disk (a damaged record must not overflow).
    st.next_message_id = st.next_message_id.max(head.id.saturating_add(1));
    st.dedupe.push(
        head.tenant,
        head.client_ref,
        MessageId(head.id),
        head.accepted_at_ms,
    );
    if st.finished.contains(&head.id) {
        return;
    }
    let tenant = st.tenant_index(head.tenant);
    let p = st.live.entry(head.id).or_default();
    if p.message.is_none() {
        p.message = Some(record.slice_ref(stored));
        p.tenant = tenant;
        p.priority = head.priority;
        p.decodes = head.decodes;
    }
}

fn merge_ids(into: &mut Vec<String>, from: &[String]) {
    if into.len() < from.len() {
        into.resize(from.len(), String::new());
    }
    for (slot, id) in into.iter_mut().zip(from) {
        if slot.is_empty() {
            slot.clone_from(id);
        }
    }
}

fn finish(st: State) -> Recovered {
    // In id order, sorting the small (id, box) pairs; messages stay in their
    // stored form (the restart decodes only those it keeps in memory).
    let sparse = Sparse::of(&st.segments, &st.live);
    let mut live: Vec<(u64, Box<Progress>)> = st.live.into_iter().collect();
    live.sort_unstable_by_key(|(id, _)| *id);
    // Sized up front: grown by doubling, this vector of millions was copied
    // and its fresh pages zeroed again and again (14% of a 5 M restart).
    let mut messages = Vec::with_capacity(live.len());
    let tenants = st.tenants;
    messages.extend(live.into_iter().filter_map(|(id, p)| {
        let Progress {
            message,
            dispatch,
            tenant,
            priority,
            decodes,
            written,
        } = *p;
        Some(RecoveredMessage {
            stored: sparse.own(message?),
            id: MessageId(id),
            // Set with the message (`accept`).
            tenant: tenants[tenant as usize].clone(),
            priority,
            decodes,
            written,
            // Dispatched means a carrier named.
            dispatch: dispatch.filter(|d| !d.carrier.is_empty()),
        })
    }));
    Recovered {
        messages,
        // An event waiting for its acknowledgement would hold a sparse
        // segment as long as it waits.
        events: st
            .events
            .into_values()
            .map(|mut e| {
                e.payload = sparse.own(e.payload);
                e
            })
            .collect(),
        dedupe: st.dedupe,
        next_message_id: st.next_message_id.max(1),
        next_event_id: st.next_event_id.max(1),
        records: st.records,
        opt: st.opt,
    }
}

/// Segments less than a quarter live: their live messages are copied out so
/// that a few live messages do not hold whole segments (64 MiB each by
/// default) in memory through the restart; denser ones stay shared.
struct Sparse {
    /// (start address, length, sparse) of each segment, by address.
    spans: Vec<(usize, usize, bool)>,
}

impl Sparse {
    fn of(segments: &[Bytes], live: &HashMap<u64, Box<Progress>, Fast>) -> Sparse {
        let mut spans: Vec<(usize, usize, bool)> = segments
            .iter()
            .map(|s| (s.as_ptr() as usize, s.len(), false))
            .collect();
        spans.sort_unstable();
        let mut held = vec![0usize; spans.len()];
        let mut sparse = Sparse { spans };
        for m in live.values().filter_map(|p| p.message.as_ref()) {
            if let Some(i) = sparse.segment_of(m) {
                held[i] += m.len();
            }
        }
        for (span, held) in sparse.spans.iter_mut().zip(held) {
            span.2 = held < span.1 / 4;
        }
        sparse
    }

    /// The segment `m` is a slice of, if any.
    fn segment_of(&self, m: &[u8]) -> Option<usize> {
        let at = m.as_ptr() as usize;
        let i = self.spans.partition_point(|s| s.0 <= at).checked_sub(1)?;
        let (start, len, _) = self.spans[i];
        (at + m.len() <= start + len).then_some(i)
    }

    /// `m`, copied out if its segment is sparse.
    fn own(&self, m: Bytes) -> Bytes {
        match self.segment_of(&m) {
            Some(i) if self.spans[i].2 => Bytes::copy_from_slice(&m),
            _ => m,
        }
    }
}

/// What an `Accept` or a `Carry` record stored: the ids of its messages.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoredIds {
    /// An `Accept` record's.
    Accepted(Vec<u64>),
    /// A `Carry` record's.
    Carried(Vec<u64>),
}

/// Every `Accept` and `Carry` record of the journal at `dir` with its
/// segment's number, in the order written (tests of what compaction
/// writes, with nothing deleted).
#[cfg(test)]
pub(crate) fn stored_ids(dir: &Path) -> Vec<(u64, StoredIds)> {
    let mut out = Vec::new();
    for (n, _) in list_segments(dir).unwrap() {
        let data = std::fs::read(segment_path(dir, n)).unwrap();
        let mut off = 0;
        while let Some(len) = record_len_at(&data, off) {
            let payload = &data[off + 9..off + len];
            match Kind::from_u8(data[off + 8]) {
                Some(Kind::Accept) => {
                    let mut ids = Vec::new();
                    record::for_each_stored(payload, |m| {
                        ids.push(record::StoredHead::read(m)?.id);
                        Ok(())
                    })
                    .unwrap();
                    out.push((n, StoredIds::Accepted(ids)));
                }
                Some(Kind::Carry) => {
                    let c = record::Carry::decode(Bytes::copy_from_slice(payload)).unwrap();
                    let ids = c.messages.iter().filter_map(|cm| {
                        let m = cm.message.as_deref()?;
                        Some(record::StoredHead::read(m).unwrap().id)
                    });
                    out.push((n, StoredIds::Carried(ids.collect())));
                }
                _ => {}
            }
            off += len;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    /// Skipping runs of zeros finds the same record as trying every offset.
    #[test]
    fn next_valid_skips_zeros_and_finds_what_every_offset_finds() {
        let naive = |data: &[u8], from: usize| {
            (from..data.len().saturating_sub(record::HEADER_LEN - 1))
                .find(|&o| record_len_at(data, o).is_some())
        };
        let mut one = BytesMut::new();
        record::frame(&mut one, Kind::EventAck, &record::Ids { ids: vec![7, 8] });
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..2000 {
            let mut data = Vec::new();
            for _ in 0..(next() % 6) {
                match next() % 3 {
                    0 => data.resize(data.len() + (next() % 300) as usize, 0),
                    1 => data.extend((0..next() % 20).map(|_| (next() % 4) as u8)),
                    _ => data.extend_from_slice(&one),
                }
            }
            let near_end = data.len().saturating_sub(12)..=data.len() + 1;
            for from in (0..data.len().min(40)).chain(near_end) {
                assert_eq!(
                    next_valid(&data, from),
                    naive(&data, from),
                    "{data:?} from {from}"
                );
            }
        }
    }

    /// A message live in a segment that is mostly dead is copied out (the
    /// segment can go); one in a segment mostly live stays a slice of it.
    #[test]
    fn live_messages_of_a_mostly_dead_segment_are_copied_out() {
        let (dense, sparse) = (Bytes::from(vec![1u8; 400]), Bytes::from(vec![2u8; 400]));
        let mut live: HashMap<u64, Box<Progress>, Fast> = HashMap::default();
        let mut add = |id: u64, m: Bytes| {
            live.insert(
                id,
                Box::new(Progress {
                    message: Some(m),
                    ..Progress::default()
                }),
            )
        };
        add(1, dense.slice(0..150));
        add(2, dense.slice(150..300));
        add(3, sparse.slice(0..99));
        let s = Sparse::of(&[dense.clone(), sparse.clone()], &live);
        let kept = s.own(dense.slice(0..150));
        assert_eq!(
            kept.as_ptr(),
            dense.as_ptr(),
            "a slice of the dense segment"
        );
        let own = s.own(sparse.slice(0..99));
        assert_eq!(&own[..], &sparse[..99]);
        assert_ne!(
            own.as_ptr(),
            sparse.as_ptr(),
            "copied out of the sparse one"
        );
        // Not a slice of any segment read: left as it is.
        let other = Bytes::from(vec![3u8; 10]);
        assert_eq!(s.own(other.clone()).as_ptr(), other.as_ptr());
    }
}
