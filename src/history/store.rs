//! History segments on disk and the thread that writes them.
//!
//! The head segment is `<seq>.open` (16 hex digits); when it reaches the
//! segment size (an eighth of `max_bytes`, between 4 KiB and 64 MiB; synced
//! every 4 MiB written, so the last sync is small) it is
//! synced and renamed `<seq>-<first ms>-<last ms>-<lowest id>-<highest id>.seg`
//! (hex), so lookups can skip it by its name. An `.open` segment left by a
//! crash is read at start, cut after its last whole record and closed the
//! same way. Retention (after every write round): closed segments whose
//! last record is older than `retention` are deleted (freed a few megabytes
//! at a time, `model::reclaim`), then the oldest while
//! all segments together exceed `max_bytes` (`sluice_history_segments_dropped_total`).

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::HistoryConfig;
use super::record::{self, MAGIC};
use crate::model::{MessageId, now_ms, reclaim};

const TARGET: &str = "sluice::history";

/// How often the writer takes what the buffers hold.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// The head is synced each time this much was written to it: closing a
/// segment then syncs at most this much, not the whole segment (64 MiB at
/// once held up the journal's own syncs behind it for ~100 ms, and with
/// them every acknowledgement).
const SYNC_EVERY: u64 = 4 << 20;

enum Command {
    Flush(oneshot::Sender<()>),
    Close(oneshot::Sender<()>),
}

/// What the handles share: the buffers and the way to the writer.
pub(crate) struct Inner {
    buffers: std::sync::Arc<Buffers>,
    tx: mpsc::Sender<Command>,
    dir: PathBuf,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

struct Buffers {
    shards: Box<[Mutex<Vec<u8>>]>,
    cap: usize,
    dropped: metrics::Counter,
}

impl Inner {
    pub(crate) fn open(
        dir: PathBuf,
        cfg: &HistoryConfig,
        shards: usize,
        cap: usize,
    ) -> io::Result<Inner> {
        fs::create_dir_all(&dir)?;
        let segments = Segments::open(&dir, cfg)?;
        let buffers = std::sync::Arc::new(Buffers {
            shards: (0..shards).map(|_| Mutex::new(Vec::new())).collect(),
            cap,
            dropped: metrics::counter!("sluice_history_dropped_total"),
        });
        let (tx, rx) = mpsc::channel();
        let b = buffers.clone();
        std::thread::Builder::new()
            .name("sluice-history".into())
            .spawn(move || writer(b, segments, rx))?;
        Ok(Inner { buffers, tx, dir })
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    #[inline]
    pub(crate) fn put(&self, id: MessageId, f: impl FnOnce(&mut Vec<u8>)) {
        let shard = &self.buffers.shards[(id.0 as usize) & (self.buffers.shards.len() - 1)];
        let mut b = shard.lock();
        if b.len() >= self.buffers.cap {
            drop(b);
            self.buffers.dropped.increment(1);
            return;
        }
        f(&mut b);
    }

    pub(crate) async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    pub(crate) async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Close(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// The writer thread: every [`FLUSH_EVERY`] (or when asked) takes each
/// buffer (swapping in an emptied one, so capacity is reused) and appends
/// it; stops when asked or when every handle is gone.
fn writer(buffers: std::sync::Arc<Buffers>, mut segs: Segments, rx: mpsc::Receiver<Command>) {
    let mut spare: Vec<u8> = Vec::new();
    loop {
        let cmd = rx.recv_timeout(FLUSH_EVERY);
        for shard in buffers.shards.iter() {
            {
                let mut b = shard.lock();
                if b.is_empty() {
                    continue;
                }
                std::mem::swap(&mut *b, &mut spare);
            }
            if let Err(e) = segs.append(&spare) {
                tracing::error!(target: TARGET, error = %e, "history write failed; records lost");
                metrics::counter!("sluice_history_write_errors_total").increment(1);
            }
            spare.clear();
        }
        segs.retain(now_ms());
        match cmd {
            Ok(Command::Flush(done)) => {
                let _ = done.send(());
            }
            Ok(Command::Close(done)) => {
                segs.close_head();
                let _ = done.send(());
                return;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                segs.close_head();
                return;
            }
        }
    }
}

/// A closed segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    /// Its file.
    pub path: PathBuf,
    /// Sequence number (order of writing).
    pub seq: u64,
    /// Bytes.
    pub bytes: u64,
    /// First and last record time (unix ms).
    pub min_ms: u64,
    /// See `min_ms`.
    pub max_ms: u64,
    /// Lowest and highest message id.
    pub min_id: u64,
    /// See `min_id`.
    pub max_id: u64,
}

/// The head segment being written.
struct Head {
    seq: u64,
    path: PathBuf,
    file: File,
    bytes: u64,
    /// Bytes written since the last sync.
    unsynced: u64,
    min_ms: u64,
    max_ms: u64,
    min_id: u64,
    max_id: u64,
}

/// The segments of a history directory (the writer's view).
pub struct Segments {
    dir: PathBuf,
    segment_bytes: u64,
    max_bytes: u64,
    retention_ms: u64,
    closed: VecDeque<Closed>,
    closed_bytes: u64,
    head: Option<Head>,
    next_seq: u64,
    dropped: metrics::Counter,
}

impl std::fmt::Debug for Segments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segments")
            .field("dir", &self.dir)
            .field("closed", &self.closed.len())
            .finish_non_exhaustive()
    }
}

/// The segment size for a `max_bytes`.
pub fn segment_bytes(max_bytes: u64) -> u64 {
    (max_bytes / 8).clamp(4 << 10, 64 << 20)
}

/// Parses a closed segment's name.
pub fn parse_closed(path: &Path, bytes: u64) -> Option<Closed> {
    let name = path.file_name()?.to_str()?.strip_suffix(".seg")?;
    let mut it = name.split('-').map(|p| u64::from_str_radix(p, 16));
    let mut next = || it.next()?.ok();
    let c = Closed {
        path: path.to_path_buf(),
        seq: next()?,
        bytes,
        min_ms: next()?,
        max_ms: next()?,
        min_id: next()?,
        max_id: next()?,
    };
    Some(c)
}

/// The head segment's sequence number, from its name.
fn parse_open(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?.strip_suffix(".open")?;
    u64::from_str_radix(name, 16).ok()
}

/// Head segments: sequence and path.
pub type Heads = Vec<(u64, PathBuf)>;

/// Every segment of `dir`: closed ones by name, and the `.open` ones
/// (sequence, path), each list by sequence.
pub fn list(dir: &Path) -> io::Result<(Vec<Closed>, Heads)> {
    let mut closed = Vec::new();
    let mut open = Vec::new();
    for e in fs::read_dir(dir)? {
        let e = e?;
        let path = e.path();
        if let Some(seq) = parse_open(&path) {
            open.push((seq, path));
        } else if let Ok(meta) = e.metadata()
            && let Some(c) = parse_closed(&path, meta.len())
        {
            closed.push(c);
        }
    }
    closed.sort_by_key(|c| c.seq);
    open.sort_by_key(|o| o.0);
    Ok((closed, open))
}

impl Segments {
    /// The segments of `dir`, `.open` ones left by a crash closed.
    ///
    /// # Errors
    /// The directory cannot be read, or a left-over segment not closed.
    pub fn open(dir: &Path, cfg: &HistoryConfig) -> io::Result<Segments> {
        // Segments a crash left half deleted.
        reclaim::remove_in_background(reclaim::leftovers(dir)?);
        let (closed, open) = list(dir)?;
        let mut segs = Segments {
            dir: dir.to_path_buf(),
            segment_bytes: segment_bytes(cfg.max_bytes),
            max_bytes: cfg.max_bytes,
            retention_ms: cfg.retention.as_millis().min(u64::MAX as u128) as u64,
            closed_bytes: closed.iter().map(|c| c.bytes).sum(),
            next_seq: closed.iter().map(|c| c.seq + 1).max().unwrap_or(0),
            closed: closed.into(),
            head: None,
            dropped: metrics::counter!("sluice_history_segments_dropped_total"),
        };
        for (seq, path) in open {
            segs.next_seq = segs.next_seq.max(seq + 1);
            segs.recover(seq, &path)?;
        }
        segs.closed.make_contiguous().sort_by_key(|c| c.seq);
        segs.retain(now_ms());
        Ok(segs)
    }

    /// Closes a head segment a crash left: cut after its last whole
    /// record, renamed by its contents (deleted when it holds none).
    fn recover(&mut self, seq: u64, path: &Path) -> io::Result<()> {
        let bytes = fs::read(path)?;
        let (mut min_ms, mut max_ms, mut min_id, mut max_id) = (u64::MAX, 0, u64::MAX, 0);
        let valid = record::for_each(&bytes, |r| {
            min_ms = min_ms.min(r.at_ms);
            max_ms = max_ms.max(r.at_ms);
            min_id = min_id.min(r.id.0);
            max_id = max_id.max(r.id.0);
        });
        if min_id == u64::MAX {
            return fs::remove_file(path);
        }
        if valid < bytes.len() {
            tracing::warn!(target: TARGET, path = %path.display(), kept = valid, cut = bytes.len() - valid,
                "history segment left by a crash: torn tail cut");
            File::options()
                .write(true)
                .open(path)?
                .set_len(valid as u64)?;
        }
        let c = self.closed_name(seq, valid as u64, min_ms, max_ms, min_id, max_id);
        fs::rename(path, &c.path)?;
        self.closed_bytes += c.bytes;
        self.closed.push_back(c);
        Ok(())
    }

    fn closed_name(
        &self,
        seq: u64,
        bytes: u64,
        min_ms: u64,
        max_ms: u64,
        min_id: u64,
        max_id: u64,
    ) -> Closed {
        Closed {
            path: self.dir.join(format!(
                "{seq:016x}-{min_ms:x}-{max_ms:x}-{min_id:x}-{max_id:x}.seg"
            )),
            seq,
            bytes,
            min_ms,
            max_ms,
            min_id,
            max_id,
        }
    }

    /// Closed segments, oldest first.
    pub fn closed(&self) -> impl Iterator<Item = &Closed> {
        self.closed.iter()
    }

    /// Bytes on disk (closed and head).
    pub fn total_bytes(&self) -> u64 {
        self.closed_bytes + self.head.as_ref().map_or(0, |h| h.bytes)
    }

    fn new_head(&mut self) -> io::Result<&mut Head> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let path = self.dir.join(format!("{seq:016x}.open"));
        let mut file = File::create(&path)?;
        file.write_all(MAGIC)?;
        Ok(self.head.insert(Head {
            seq,
            path,
            file,
            bytes: MAGIC.len() as u64,
            unsynced: 0,
            min_ms: u64::MAX,
            max_ms: 0,
            min_id: u64::MAX,
            max_id: 0,
        }))
    }

    /// Appends whole records (`bytes` as the handles wrote them), rotating
    /// between records when the head is full.
    ///
    /// # Errors
    /// A write, sync or rename failed.
    pub fn append(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        let segment_bytes = self.segment_bytes;
        while !bytes.is_empty() {
            let head = match self.head {
                Some(ref mut h) => h,
                None => self.new_head()?,
            };
            let room = segment_bytes.saturating_sub(head.bytes);
            // As many records as fit (at least one, into an empty head).
            let mut run = 0usize;
            while let Some((len, id, at)) = record::peek(&bytes[run..]) {
                if run + len > bytes.len() {
                    break;
                }
                let fits = (run + len) as u64 <= room;
                let first_of_empty_head = run == 0 && head.bytes == MAGIC.len() as u64;
                if !fits && !first_of_empty_head {
                    break;
                }
                head.min_ms = head.min_ms.min(at);
                head.max_ms = head.max_ms.max(at);
                head.min_id = head.min_id.min(id.0);
                head.max_id = head.max_id.max(id.0);
                run += len;
            }
            if run == 0 {
                if record::peek(bytes).is_none_or(|(len, ..)| len > bytes.len()) {
                    // Cannot happen (handles write whole records); never loop.
                    return Ok(());
                }
                self.close_head();
                continue;
            }
            head.file.write_all(&bytes[..run])?;
            head.bytes += run as u64;
            head.unsynced += run as u64;
            if head.unsynced >= SYNC_EVERY {
                head.file.sync_data()?;
                head.unsynced = 0;
            }
            bytes = &bytes[run..];
            if head.bytes >= segment_bytes {
                self.close_head();
            }
        }
        Ok(())
    }

    /// Syncs and renames the head segment (deletes it when it holds no
    /// record).
    pub fn close_head(&mut self) {
        let Some(h) = self.head.take() else {
            return;
        };
        if h.min_id == u64::MAX {
            let _ = fs::remove_file(&h.path);
            return;
        }
        let _ = h.file.sync_data();
        let c = self.closed_name(h.seq, h.bytes, h.min_ms, h.max_ms, h.min_id, h.max_id);
        match fs::rename(&h.path, &c.path) {
            Ok(()) => {
                self.closed_bytes += c.bytes;
                self.closed.push_back(c);
            }
            Err(e) => {
                tracing::error!(target: TARGET, error = %e, path = %h.path.display(), "history segment not closed");
            }
        }
    }

    /// Deletes closed segments past retention, then the oldest while the
    /// total exceeds `max_bytes`.
    pub fn retain(&mut self, now_ms: u64) {
        let cutoff = now_ms.saturating_sub(self.retention_ms);
        let mut expired = Vec::new();
        while let Some(c) = self.closed.front() {
            let too_old = c.max_ms < cutoff;
            let too_big = self.total_bytes() > self.max_bytes;
            if !too_old && !too_big {
                break;
            }
            let c = self.closed.pop_front().expect("front exists");
            expired.push(c.path);
            self.closed_bytes -= c.bytes;
            self.dropped.increment(1);
        }
        // Set aside now, freed a little at a time in the background
        // (`model::reclaim`): a 64 MiB segment unlinked at once held the
        // journal's syncs up behind it.
        if !expired.is_empty()
            && let Err(e) = reclaim::remove(&self.dir, expired)
        {
            tracing::error!(target: TARGET, error = %e, "history segments not deleted");
        }
        metrics::gauge!("sluice_history_bytes").set(self.total_bytes() as f64);
    }
}
