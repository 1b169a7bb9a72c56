//! Queued messages beyond the in-memory budget: kept on disk, not in RAM,
//! and paged back in as the queues drain.
//!
//! A campaign system may dump ten million messages at once; the journal
//! holds them durably, but keeping each one in memory (message, ledger entry,
//! queue node: several hundred bytes) would not fit. Past the budget
//! (`journal.max_queued_in_memory`), accepted messages are written here in
//! batches and only a 40-byte descriptor per batch stays in RAM, in one FIFO
//! per (tenant, priority). Paging in serves those FIFOs in turn —
//! transactional ones first — so a tenant's blast waiting on disk does not
//! stand in front of another tenant's traffic.
//!
//! The files are a memory extension, not a store: the journal already made
//! each message durable (its `Accept` record, or a `Carry` record written by
//! compaction, which carries spilled messages forward too). They are not
//! synced, and are cleared on start, where replay rebuilds the queue and
//! spills again what does not fit.
//!
//! File format: `[len: u32 LE][crc32: u32 LE][payload]` per batch, the payload
//! in the journal's message format ([`crate::journal::encode_messages`]).

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::BytesMut;
use parking_lot::Mutex;

use crate::model::{Message, MessageId, Priority};

/// Bytes before each batch: length and CRC.
const HEADER_LEN: usize = 8;

/// Most messages in one batch on disk by default (see
/// [`Spill::with_max_batch`]): far below the `u32` length limit (a restart
/// may spill millions of messages of one tenant in one call).
const MAX_BATCH: usize = 1024;

/// A queued message in the journal's stored form, for [`Spill::push_stored`].
#[derive(Debug, Clone)]
pub struct StoredQueued {
    /// Its id.
    pub id: MessageId,
    /// Its tenant.
    pub tenant: Arc<str>,
    /// Its priority.
    pub priority: Priority,
    /// The stored form ([`crate::journal::RecoveredMessage::stored`]).
    pub stored: bytes::Bytes,
}

/// Where spilled messages of one tenant and priority wait, in order.
type QueueKey = (Arc<str>, Priority);

/// One batch on disk.
#[derive(Clone, Debug)]
struct Batch {
    file: u64,
    offset: u64,
    len: u32,
    count: u32,
    first_id: u64,
    last_id: u64,
}

#[derive(Debug)]
struct SpillFile {
    file: Arc<File>,
    path: PathBuf,
    /// Batches not yet paged in.
    batches: u32,
}

#[derive(Debug, Default)]
struct Inner {
    files: HashMap<u64, SpillFile>,
    /// The file being appended to and its length.
    head: Option<(u64, u64)>,
    next_file: u64,
    queues: HashMap<QueueKey, VecDeque<Batch>>,
    /// Non-empty queues in service order.
    ring: VecDeque<QueueKey>,
    /// Keys of batches taken but not yet queued in memory (see
    /// [`Spill::paged_in`]): new messages of these keys still go behind.
    paging: Vec<QueueKey>,
}

/// The spill: batches of queued messages on disk, per (tenant, priority).
#[derive(Debug)]
pub struct Spill {
    dir: PathBuf,
    file_bytes: u64,
    inner: Mutex<Inner>,
    messages: AtomicU64,
    /// Most messages in one batch ([`Spill::take`] reads past what it was
    /// asked for only when a single batch alone is larger).
    max_batch: usize,
    /// A batch could not be read back: its messages are only in the journal
    /// now, so compaction must not delete segments until a restart replays
    /// them.
    damaged: std::sync::atomic::AtomicBool,
    /// Tests: every write fails (a full or failing disk).
    #[cfg(test)]
    pub(crate) fail_writes: std::sync::atomic::AtomicBool,
}

impl Spill {
    /// Opens (and empties) the spill directory; files roll over at
    /// `file_bytes`.
    ///
    /// # Errors
    /// When the directory cannot be cleared or created.
    pub fn open(dir: &Path, file_bytes: u64) -> io::Result<Spill> {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::fs::create_dir_all(dir)?;
        Ok(Spill {
            dir: dir.to_owned(),
            file_bytes: file_bytes.max(1),
            inner: Mutex::new(Inner::default()),
            messages: AtomicU64::new(0),
            max_batch: MAX_BATCH,
            damaged: std::sync::atomic::AtomicBool::new(false),
            #[cfg(test)]
            fail_writes: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Batches of at most `n` messages (at least 1, at most 1,024): the
    /// gateway sizes them to an eighth of its in-memory budget, so the first
    /// batch of a page-in (which reads at least one) always fits the quarter
    /// of the budget a page-in waits for.
    #[must_use]
    pub fn with_max_batch(mut self, n: usize) -> Spill {
        self.max_batch = n.clamp(1, MAX_BATCH);
        self
    }

    /// Messages on disk.
    pub fn len(&self) -> u64 {
        self.messages.load(Ordering::Relaxed)
    }

    /// Whether nothing is spilled.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether messages of this tenant and priority wait on disk (then new
    /// ones must queue behind them, to keep their order).
    pub fn holds(&self, tenant: &Arc<str>, priority: Priority) -> bool {
        let inner = self.inner.lock();
        let key = (tenant.clone(), priority);
        inner.queues.get(&key).is_some_and(|q| !q.is_empty()) || inner.paging.contains(&key)
    }

    /// The messages of the last [`Spill::take`] are queued in memory: new
    /// messages of their keys may go to memory again.
    pub fn paged_in(&self) {
        self.inner.lock().paging.clear();
    }

    /// Writes messages to disk, one batch per (tenant, priority), each
    /// behind what that pair already has there. All or nothing.
    ///
    /// # Errors
    /// When a file cannot be created or written; then none of `messages` is
    /// recorded here (they must stay in memory).
    pub fn push(&self, messages: &[Arc<Message>]) -> io::Result<()> {
        self.push_grouped(
            messages,
            |m| (m.tenant.clone(), m.priority),
            |m| m.id.0,
            |buf, group| crate::journal::encode_messages(buf, group.iter().map(|m| &***m)),
        )
    }

    /// As [`Spill::push`], for messages still in the journal's stored form
    /// (a restart spills again what does not fit without decoding it). The
    /// caller checked that each decodes (replay did:
    /// [`crate::journal::RecoveredMessage::decodes`]).
    ///
    /// # Errors
    /// As [`Spill::push`].
    pub fn push_stored(&self, messages: &[StoredQueued]) -> io::Result<()> {
        debug_assert!(
            messages
                .iter()
                .all(|m| crate::journal::check_stored(&m.stored).is_ok()),
            "only stored forms that decode are spilled"
        );
        self.push_grouped(
            messages,
            |m| (m.tenant.clone(), m.priority),
            |m| m.id.0,
            |buf, group| crate::journal::encode_stored(buf, group.iter().map(|m| &m.stored[..])),
        )
    }

    /// Writes `items` in batches of one (tenant, priority) each, `encode`
    /// appending a group's payload.
    fn push_grouped<T>(
        &self,
        items: &[T],
        key_of: impl Fn(&T) -> QueueKey,
        id_of: impl Fn(&T) -> u64,
        encode: impl Fn(&mut BytesMut, &[&T]),
    ) -> io::Result<()> {
        let mut groups: Vec<(QueueKey, Vec<&T>)> = Vec::new();
        for m in items {
            let key = key_of(m);
            // The newest group of this key, unless it is full.
            match groups
                .iter_mut()
                .rev()
                .find(|(k, _)| *k == key)
                .filter(|(_, v)| v.len() < self.max_batch)
            {
                Some((_, v)) => v.push(m),
                None => groups.push((key, vec![m])),
            }
        }
        let mut buf = BytesMut::with_capacity(256 * items.len().min(4096) + HEADER_LEN);
        let mut inner = self.inner.lock();
        let mut written: Vec<(QueueKey, Batch)> = Vec::with_capacity(groups.len());
        for (key, group) in groups {
            buf.clear();
            buf.extend_from_slice(&[0; HEADER_LEN]);
            encode(&mut buf, &group);
            let len = u32::try_from(buf.len() - HEADER_LEN)
                .map_err(|_| io::Error::other("spill batch over 4 GiB"))?;
            let crc = crc32fast::hash(&buf[HEADER_LEN..]);
            buf[..4].copy_from_slice(&len.to_le_bytes());
            buf[4..8].copy_from_slice(&crc.to_le_bytes());
            match self.append(&mut inner, &buf) {
                Ok((file, offset)) => written.push((
                    key,
                    Batch {
                        file,
                        offset,
                        len: buf.len() as u32,
                        count: group.len() as u32,
                        first_id: group.iter().map(|m| id_of(m)).min().unwrap_or(0),
                        last_id: group.iter().map(|m| id_of(m)).max().unwrap_or(0),
                    },
                )),
                Err(e) => {
                    // What was written is garbage in its file now.
                    for (_, b) in written {
                        if let Some(f) = inner.files.get_mut(&b.file) {
                            f.batches -= 1;
                        }
                    }
                    return Err(e);
                }
            }
        }
        self.messages
            .fetch_add(items.len() as u64, Ordering::Relaxed);
        for (key, batch) in written {
            let q = inner.queues.entry(key.clone()).or_default();
            q.push_back(batch);
            if q.len() == 1 {
                inner.ring.push_back(key);
            }
        }
        drop(inner);
        metrics::counter!("sluice_spilled_messages_total").increment(items.len() as u64);
        metrics::gauge!("sluice_spilled_messages").set(self.len() as f64);
        Ok(())
    }

    fn append(&self, inner: &mut Inner, bytes: &[u8]) -> io::Result<(u64, u64)> {
        #[cfg(test)]
        if self.fail_writes.load(Ordering::Relaxed) {
            return Err(io::Error::other("injected spill write failure"));
        }
        let head = match inner.head {
            Some((n, len)) if len < self.file_bytes => (n, len),
            _ => {
                let n = inner.next_file;
                let path = self.dir.join(format!("{n:08}.spill"));
                let file = File::options()
                    .create_new(true)
                    .read(true)
                    .append(true)
                    .open(&path)?;
                inner.next_file += 1;
                inner.files.insert(
                    n,
                    SpillFile {
                        file: Arc::new(file),
                        path,
                        batches: 0,
                    },
                );
                // The previous head may already be fully paged in.
                if let Some((old, _)) = inner.head
                    && inner.files.get(&old).is_some_and(|f| f.batches == 0)
                    && let Some(f) = inner.files.remove(&old)
                {
                    let _ = std::fs::remove_file(&f.path);
                }
                inner.head = Some((n, 0));
                (n, 0)
            }
        };
        let f = inner.files.get_mut(&head.0).expect("head file is open");
        (&*f.file).write_all(bytes)?;
        f.batches += 1;
        inner.head = Some((head.0, head.1 + bytes.len() as u64));
        Ok(head)
    }

    /// True once a batch could not be read back (see [`Spill::take`]).
    pub fn is_damaged(&self) -> bool {
        self.damaged.load(Ordering::Relaxed)
    }

    /// Takes up to `max` messages off disk in whole batches (one batch even
    /// if it alone holds more, so something always moves), serving
    /// transactional queues first, then the others in turn. Blocking file reads: call from a blocking context.
    ///
    /// A batch that cannot be read or decoded is logged and skipped, and the
    /// spill is marked damaged ([`Spill::is_damaged`]): those messages are
    /// still durable in the journal, which must then keep its segments until
    /// a restart replays them.
    pub fn take(&self, max: usize) -> Vec<Message> {
        let mut picked: Vec<(Batch, Arc<File>)> = Vec::new();
        {
            let mut inner = self.inner.lock();
            let mut count = 0usize;
            let mut full = false;
            // Transactional first: one pass over the ring for them.
            for pass in [Priority::Transactional, Priority::Marketing] {
                let mut idle = 0;
                while !full && count < max.max(1) && idle < inner.ring.len() {
                    let Some(key) = inner.ring.pop_front() else {
                        break;
                    };
                    if key.1 != pass {
                        inner.ring.push_back(key);
                        idle += 1;
                        continue;
                    }
                    idle = 0;
                    let q = inner.queues.get_mut(&key).expect("ring names a queue");
                    let next = q.front().expect("ring queues are non-empty").count as usize;
                    if count > 0 && count + next > max {
                        // It keeps its turn for the next page-in.
                        inner.ring.push_front(key);
                        full = true;
                        break;
                    }
                    let b = q.pop_front().expect("ring queues are non-empty");
                    let empty = q.is_empty();
                    if !inner.paging.contains(&key) {
                        inner.paging.push(key.clone());
                    }
                    if empty {
                        inner.queues.remove(&key);
                    } else {
                        inner.ring.push_back(key);
                    }
                    count += b.count as usize;
                    let file = inner.files.get(&b.file).expect("batch file").file.clone();
                    picked.push((b, file));
                }
            }
        }
        let mut out = Vec::with_capacity(picked.iter().map(|(b, _)| b.count as usize).sum());
        for (b, file) in &picked {
            match read_batch(file, b) {
                Ok(mut ms) => out.append(&mut ms),
                Err(e) => {
                    self.damaged.store(true, Ordering::Relaxed);
                    metrics::counter!("sluice_spill_damaged_batches_total").increment(1);
                    tracing::error!(target: "sluice::spill", error = %e, first_id = b.first_id,
                        messages = b.count, "a spilled batch is unreadable; its messages resume \
                        from the journal at the next start, which keeps its segments until then");
                }
            }
        }
        let taken: u64 = picked.iter().map(|(b, _)| u64::from(b.count)).sum();
        self.messages.fetch_sub(taken, Ordering::Relaxed);
        {
            let mut inner = self.inner.lock();
            for (b, _) in &picked {
                let is_head = inner.head.is_some_and(|(n, _)| n == b.file);
                let f = inner.files.get_mut(&b.file).expect("batch file");
                f.batches -= 1;
                if f.batches == 0 && !is_head {
                    let f = inner.files.remove(&b.file).expect("present");
                    let _ = std::fs::remove_file(&f.path);
                }
            }
        }
        metrics::counter!("sluice_paged_in_messages_total").increment(out.len() as u64);
        metrics::gauge!("sluice_spilled_messages").set(self.len() as f64);
        out
    }

    /// Calls `f` with every spilled message, batch by batch, in no particular
    /// order (compaction carries them forward). Blocking file reads.
    ///
    /// # Errors
    /// The first batch that cannot be read, or the first error of `f`.
    pub fn for_each_batch<E: From<io::Error>>(
        &self,
        mut f: impl FnMut(Vec<Message>) -> Result<(), E>,
    ) -> Result<(), E> {
        let batches: Vec<(Batch, Arc<File>)> = {
            let inner = self.inner.lock();
            inner
                .queues
                .values()
                .flatten()
                .map(|b| (b.clone(), inner.files[&b.file].file.clone()))
                .collect()
        };
        for (b, file) in &batches {
            let ms = read_batch(file, b).inspect_err(|_| {
                self.damaged.store(true, Ordering::Relaxed);
            })?;
            f(ms)?;
        }
        Ok(())
    }

    /// Whether message `id` is (probably) on disk here: a batch's id range
    /// covers it. For the admin API's "why is this message waiting".
    pub fn may_hold(&self, id: MessageId) -> bool {
        let inner = self.inner.lock();
        inner
            .queues
            .values()
            .flatten()
            .any(|b| (b.first_id..=b.last_id).contains(&id.0))
    }

    /// Messages on disk per (tenant, priority).
    pub fn depths(&self) -> Vec<(Arc<str>, Priority, u64)> {
        let inner = self.inner.lock();
        inner
            .queues
            .iter()
            .map(|((t, p), q)| (t.clone(), *p, q.iter().map(|b| u64::from(b.count)).sum()))
            .collect()
    }
}

fn read_batch(file: &File, b: &Batch) -> io::Result<Vec<Message>> {
    let mut buf = vec![0u8; b.len as usize];
    file.read_exact_at(&mut buf, b.offset)?;
    decode_batch(&buf, b)
}

/// Fuzzing hook: decodes `batch` (header included) as [`Spill::take`] reads
/// a batch of `count` messages. Descriptors are never shorter than a header.
///
/// # Errors
/// As [`Spill::take`] logs them: a damaged or mismatched batch.
#[doc(hidden)]
pub fn fuzz_read_batch(batch: &[u8], count: u32) -> io::Result<Vec<Message>> {
    let len = u32::try_from(batch.len()).map_err(io::Error::other)?;
    if batch.len() < HEADER_LEN {
        return Err(io::Error::other("shorter than a batch header"));
    }
    let b = Batch {
        file: 0,
        offset: 0,
        len,
        count,
        first_id: 0,
        last_id: 0,
    };
    decode_batch(batch, &b)
}

/// Checks and decodes a batch read back from disk (`buf` is `b.len` bytes).
fn decode_batch(buf: &[u8], b: &Batch) -> io::Result<Vec<Message>> {
    let bad = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
    let len = u32::from_le_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
    if len + HEADER_LEN != buf.len() || crc32fast::hash(&buf[HEADER_LEN..]) != crc {
        return Err(bad(format!(
            "spilled batch at offset {} is damaged",
            b.offset
        )));
    }
    let ms = crate::journal::decode_messages(&buf[HEADER_LEN..])
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    if ms.len() != b.count as usize {
        return Err(bad(format!(
            "spilled batch at offset {} holds {} messages, not {}",
            b.offset,
            ms.len(),
            b.count
        )));
    }
    Ok(ms)
}

#[cfg(test)]
mod tests;
