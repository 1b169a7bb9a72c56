//! The journal's writer thread: appends framed records to the head segment,
//! group-commits them with one `fdatasync` for everything that arrived while
//! the previous sync ran, rotates segments (onto one zeroed ahead of time
//! when [`super::prezero`] has it ready), and deletes compacted ones.
//!
//! A dedicated OS thread (not a tokio task) because `write` and `fdatasync`
//! block; callers hand it already-encoded bytes over a channel, so the thread
//! only copies and syncs.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::oneshot;

use super::prezero::{self, Prezero};
use super::record::{self, Kind, SegmentHeader};

/// Result of a durable append, shared by every waiter of one group commit.
pub(crate) type SyncResult = Result<(), Arc<io::Error>>;

/// A request to the writer thread.
pub(crate) enum Command {
    /// Append framed bytes; when `done` is set, answer once they are synced.
    Append {
        bytes: Bytes,
        done: Option<oneshot::Sender<SyncResult>>,
    },
    /// Close the head segment and start a new one; answers with the new
    /// segment's number.
    Rotate { done: oneshot::Sender<u64> },
    /// Delete every segment numbered below `before` (never the head).
    DeleteBefore {
        before: u64,
        done: oneshot::Sender<Vec<PathBuf>>,
    },
}

/// Counters the writer publishes and reads.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Number of the head segment.
    pub head_segment: AtomicU64,
    /// Next message id (read for segment headers).
    pub next_message_id: AtomicU64,
    /// Next event id (read for segment headers).
    pub next_event_id: AtomicU64,
    /// Bytes in all live segments.
    pub bytes: AtomicU64,
    /// Segments on disk.
    pub segments: AtomicU64,
    /// Set once a write, sync or rotation failed: the writer appends
    /// nothing more.
    pub failed: AtomicBool,
    /// Records that need no sync of their own and whose order relative to
    /// later records does not matter, gathered without a channel send or a
    /// wake-up each (see [`Staged`]).
    pub staged: parking_lot::Mutex<Staged>,
    /// Held shared while an `Accept` is sent and its messages are made live
    /// ([`super::Journal::accept_then`]), exclusively while a rotation is
    /// asked for: compaction, which carries what is live once its rotation
    /// is done, sees every message whose `Accept` went to an old segment,
    /// and none whose `Accept` is not sent yet.
    pub rotation: parking_lot::RwLock<()>,
}

/// Records gathered in memory and written with the next batch (within
/// [`STAGED_FLUSH`]): carrier ids of submitted parts and event
/// acknowledgements. Both only ever refer to records already written (a
/// part's dispatch is durable before it is submitted; an event is durable
/// before it can be acknowledged), so writing them a little later, or after
/// records enqueued after them, changes nothing on replay.
#[derive(Debug, Default)]
pub(crate) struct Staged {
    /// Encoded `Submitted.entries` fields.
    pub submitted: BytesMut,
    /// Acknowledged event ids.
    pub acks: Vec<u64>,
}

/// Longest a staged record waits for its write.
pub(crate) const STAGED_FLUSH: Duration = Duration::from_millis(20);

/// Name of segment `n` in `dir`.
pub(crate) fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:020}.log"))
}

pub(crate) struct Writer {
    dir: PathBuf,
    file: File,
    head: u64,
    head_len: u64,
    segment_bytes: u64,
    /// Segments on disk, oldest first, with their sizes.
    segments: Vec<(u64, u64)>,
    shared: Arc<Shared>,
    buf: Vec<u8>,
    /// The next segment zeroed ahead of time, when enabled.
    prezero: Option<Prezero>,
}

impl Writer {
    /// Starts a new head segment numbered `head` after the existing ones;
    /// with `prezero`, later segments are zeroed ahead of time
    /// ([`super::prezero`]).
    pub(crate) fn create(
        dir: PathBuf,
        existing: Vec<(u64, u64)>,
        head: u64,
        segment_bytes: u64,
        prezero: bool,
        shared: Arc<Shared>,
    ) -> io::Result<Writer> {
        let mut prezero = if prezero {
            Prezero::start(&dir, segment_bytes)
                .inspect_err(|e| {
                    tracing::warn!(target: "sluice::journal", error = %e,
                        "segments will not be zeroed ahead of time");
                })
                .ok()
        } else {
            // Turned off: a file an earlier run left is not needed.
            prezero::remove_leftovers(&dir);
            None
        };
        // The first head, too, begins on a zeroed file when the last run
        // left one.
        let (file, _) = open_head(prezero.as_mut(), &dir, head)?;
        let mut w = Writer {
            dir,
            file,
            head,
            head_len: 0,
            segment_bytes,
            segments: existing,
            shared,
            buf: Vec::with_capacity(1 << 20),
            prezero,
        };
        w.segments.push((head, 0));
        w.write_header()?;
        w.file.sync_data()?;
        sync_dir(&w.dir)?;
        w.publish();
        Ok(w)
    }

    fn write_header(&mut self) -> io::Result<()> {
        let mut b = BytesMut::new();
        record::frame(
            &mut b,
            Kind::SegmentHeader,
            &SegmentHeader {
                segment: self.head,
                next_message_id: self.shared.next_message_id.load(Ordering::Acquire),
                next_event_id: self.shared.next_event_id.load(Ordering::Acquire),
            },
        );
        self.file.write_all(&b)?;
        self.head_len += b.len() as u64;
        Ok(())
    }

    fn publish(&mut self) {
        if let Some(last) = self.segments.last_mut() {
            last.1 = self.head_len;
        }
        let total: u64 = self.segments.iter().map(|s| s.1).sum();
        self.shared.head_segment.store(self.head, Ordering::Release);
        self.shared.bytes.store(total, Ordering::Relaxed);
        self.shared
            .segments
            .store(self.segments.len() as u64, Ordering::Relaxed);
    }

    fn rotate(&mut self) -> io::Result<()> {
        // The length is durable before the next segment has its name:
        // replay takes zeros only at the end of the last segment.
        if !self.cut_zeros()? {
            self.file.sync_data()?;
        }
        self.head += 1;
        let (file, zeroed) = open_head(self.prezero.as_mut(), &self.dir, self.head)?;
        metrics::counter!("sluice_journal_segments_total", "zeroed" => if zeroed { "true" } else { "false" })
            .increment(1);
        self.file = file;
        self.head_len = 0;
        self.segments.push((self.head, 0));
        self.write_header()?;
        self.file.sync_data()?;
        sync_dir(&self.dir)?;
        self.publish();
        Ok(())
    }

    /// Forgets the segments below `before` (never the head) and returns
    /// their paths: the caller unlinks them, off this thread (unlinking
    /// hundreds of megabytes must not stall appends).
    fn delete_before(&mut self, before: u64) -> Vec<PathBuf> {
        let before = before.min(self.head);
        let mut gone = Vec::new();
        self.segments.retain(|&(n, _)| {
            if n >= before {
                return true;
            }
            gone.push(segment_path(&self.dir, n));
            false
        });
        self.publish();
        gone
    }

    /// Runs until every sender is gone.
    pub(crate) fn run(mut self, rx: mpsc::Receiver<Command>) {
        let mut waiters: Vec<oneshot::Sender<SyncResult>> = Vec::new();
        let mut control = Vec::new();
        let mut unsynced = false;
        // After a failed write or sync the file may end in a torn record:
        // nothing more is appended, every later waiter gets the first error.
        let mut failed: Option<Arc<io::Error>> = None;
        loop {
            // Wait for the first command, waking up now and then to write
            // staged records and to sync what was written without a waiter.
            let first = rx.recv_timeout(STAGED_FLUSH);
            let timed_out = match first {
                Ok(c) => {
                    self.take(c, &mut waiters, &mut control);
                    // Everything that queued up meanwhile joins this commit,
                    // up to a rotation or deletion: what was sent after one
                    // is written after it (an `Accept` sent after compaction's
                    // rotation goes to the new head, which is kept).
                    while control.is_empty() && self.buf.len() < 8 << 20 {
                        match rx.try_recv() {
                            Ok(c) => self.take(c, &mut waiters, &mut control),
                            Err(_) => break,
                        }
                    }
                    false
                }
                Err(mpsc::RecvTimeoutError::Timeout) => true,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            self.take_staged();
            let shared = match &failed {
                Some(e) => {
                    self.buf.clear();
                    Err(e.clone())
                }
                None => {
                    let mut result = self.write_buf().map(|wrote| unsynced |= wrote);
                    if result.is_ok() && (!waiters.is_empty() || (timed_out && unsynced)) {
                        result = self.sync();
                        unsynced = false;
                    }
                    result.map_err(|e| {
                        tracing::error!(target: "sluice::journal", error = %e, "journal write failed; refusing further appends");
                        self.fail(&mut failed, e)
                    })
                }
            };
            for w in waiters.drain(..) {
                let _ = w.send(shared.clone());
            }
            for c in control.drain(..) {
                self.control(c, &mut failed);
            }
            if failed.is_none() && self.head_len >= self.segment_bytes {
                self.rotate_or_fail(&mut failed);
            }
        }
        if failed.is_none() {
            self.take_staged();
            // A clean stop leaves no zeros after the last record. Should any
            // step fail, the next start cuts what the stop left.
            if let Err(e) = self
                .write_buf()
                .and_then(|_| self.sync())
                .and_then(|()| self.cut_zeros())
            {
                tracing::error!(target: "sluice::journal", error = %e,
                    "journal could not finish cleanly; the next start cuts its end");
            }
        }
    }

    /// Cuts a zeroed head's zeros after its last record and makes the
    /// length durable; false when there were none (a plain segment).
    fn cut_zeros(&mut self) -> io::Result<bool> {
        if self.file.metadata()?.len() <= self.head_len {
            return Ok(false);
        }
        self.file.set_len(self.head_len)?;
        self.file.sync_all()?;
        Ok(true)
    }

    fn take(
        &mut self,
        c: Command,
        waiters: &mut Vec<oneshot::Sender<SyncResult>>,
        control: &mut Vec<Command>,
    ) {
        match c {
            Command::Append { bytes, done } => {
                self.buf.extend_from_slice(&bytes);
                if let Some(d) = done {
                    waiters.push(d);
                }
            }
            other => control.push(other),
        }
    }

    /// Rotates; a failure leaves the writer refusing appends, as a failed
    /// write does: the old head may have lost its cut or the new one its
    /// header, and records appended on would sit where replay refuses them.
    /// True when it rotated.
    fn rotate_or_fail(&mut self, failed: &mut Option<Arc<io::Error>>) -> bool {
        match self.rotate() {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(target: "sluice::journal", error = %e, "segment rotation failed; refusing further appends");
                self.fail(failed, e);
                false
            }
        }
    }

    /// Keeps the first failure, after which nothing more is appended, and
    /// publishes it ([`crate::journal::Journal::has_failed`]) before any
    /// waiter hears of it.
    fn fail(&self, failed: &mut Option<Arc<io::Error>>, e: io::Error) -> Arc<io::Error> {
        debug_assert!(failed.is_none(), "callers stop at the first failure");
        self.shared.failed.store(true, Ordering::Release);
        let e = Arc::new(e);
        *failed = Some(e.clone());
        e
    }

    fn control(&mut self, c: Command, failed: &mut Option<Arc<io::Error>>) {
        match c {
            Command::Append { .. } => unreachable!("appends are taken directly"),
            Command::Rotate { done } => {
                // A failed writer names no new head: the compaction that
                // asked stops before it deletes anything.
                if failed.is_none() && self.rotate_or_fail(failed) {
                    let _ = done.send(self.head);
                }
            }
            Command::DeleteBefore { before, done } => {
                let _ = done.send(self.delete_before(before));
            }
        }
    }
}

impl Writer {
    /// Moves staged records into the write buffer.
    fn take_staged(&mut self) {
        let (submitted, acks) = {
            let mut st = self.shared.staged.lock();
            if st.submitted.is_empty() && st.acks.is_empty() {
                return;
            }
            (st.submitted.split(), std::mem::take(&mut st.acks))
        };
        let mut b = BytesMut::new();
        if !submitted.is_empty() {
            record::frame_with(&mut b, Kind::Submitted, |d| d.extend_from_slice(&submitted));
        }
        if !acks.is_empty() {
            record::frame(&mut b, Kind::EventAck, &record::Ids { ids: acks });
        }
        self.buf.extend_from_slice(&b);
    }

    /// Writes the buffered records to the head segment; true when it wrote.
    fn write_buf(&mut self) -> io::Result<bool> {
        if self.buf.is_empty() {
            return Ok(false);
        }
        let r = self.file.write_all(&self.buf);
        self.head_len += self.buf.len() as u64;
        self.buf.clear();
        self.publish();
        if self.head_len >= self.segment_bytes / 4
            && let Some(p) = self.prezero.as_mut()
        {
            p.request();
        }
        r.map(|()| true)
    }

    /// `fdatasync` of the head segment, timed.
    fn sync(&mut self) -> io::Result<()> {
        // Real time on purpose: this measures the disk, not the scheduler.
        #[allow(clippy::disallowed_types)]
        let started = std::time::Instant::now();
        self.file.sync_data()?;
        metrics::histogram!("sluice_journal_sync_seconds").record(started.elapsed().as_secs_f64());
        Ok(())
    }
}

/// Opens head segment `n` on the file zeroed ahead of time when there is
/// one (true), else on a new empty file (false).
fn open_head(prezero: Option<&mut Prezero>, dir: &Path, n: u64) -> io::Result<(File, bool)> {
    match prezero.map(|p| p.take(&segment_path(dir, n))) {
        Some(Ok(Some(file))) => return Ok((file, true)),
        Some(Err(e)) => {
            tracing::warn!(target: "sluice::journal", error = %e,
                "could not use the segment zeroed ahead of time");
        }
        Some(Ok(None)) | None => {}
    }
    open_segment(dir, n).map(|f| (f, false))
}

/// Creates segment `n`, empty. Records are written at the writer's
/// position, not appended (a zeroed segment is overwritten from its start);
/// a new head's name is never a segment with records, and a zeroed file
/// renamed to it that then failed to open is cut here.
fn open_segment(dir: &Path, n: u64) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(segment_path(dir, n))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{prezero, replay};

    /// Appends framed event acknowledgements of ~1 KiB each to the buffer
    /// until `bytes` are written, syncing once.
    fn fill(w: &mut Writer, bytes: u64) {
        let mut b = BytesMut::new();
        let mut id = w.head_len;
        while (b.len() as u64) < bytes {
            record::frame(
                &mut b,
                Kind::EventAck,
                &record::Ids {
                    ids: (id..id + 128).collect(),
                },
            );
            id += 128;
        }
        w.buf.extend_from_slice(&b);
        assert!(w.write_buf().unwrap());
        w.sync().unwrap();
    }

    fn len(dir: &Path, n: u64) -> u64 {
        std::fs::metadata(segment_path(dir, n)).unwrap().len()
    }

    #[test]
    fn a_segment_zeroed_ahead_is_overwritten_and_its_zeros_cut_when_closed() {
        let dir = tempfile::tempdir().unwrap();
        let seg = 1 << 20;
        let mut w =
            Writer::create(dir.path().into(), Vec::new(), 1, seg, true, Arc::default()).unwrap();
        fill(&mut w, seg / 2);
        // Half full: the next segment is being zeroed.
        while !w.prezero.as_ref().unwrap().is_ready() {
            prezero::wait_a_little();
        }
        w.rotate().unwrap();
        assert_eq!(len(dir.path(), 2), seg, "the new head is the zeroed file");
        fill(&mut w, seg / 2);
        assert_eq!(
            len(dir.path(), 2),
            seg,
            "records overwrite the zeros: the file did not grow"
        );
        while !w.prezero.as_ref().unwrap().is_ready() {
            prezero::wait_a_little();
        }
        let second = w.head_len;
        w.rotate().unwrap();
        assert_eq!(
            len(dir.path(), 2),
            second,
            "a closed segment ends with its last record"
        );
        assert_eq!(len(dir.path(), 3), seg);
        fill(&mut w, seg / 4);

        // As a crash leaves it: the head ends in zeros; replay cuts them.
        let before = replay::list_segments(dir.path()).unwrap();
        let rec = replay::replay(dir.path(), &before).unwrap();
        let records = rec.records;
        assert_eq!(len(dir.path(), 3), w.head_len, "the zeros are cut");
        let again = replay::list_segments(dir.path()).unwrap();
        assert_eq!(replay::replay(dir.path(), &again).unwrap().records, records);
    }

    #[test]
    fn a_clean_stop_leaves_no_zeros_after_the_last_record() {
        for zeroed in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let seg = 1 << 20;
            let mut w = Writer::create(
                dir.path().into(),
                Vec::new(),
                1,
                seg,
                zeroed,
                Arc::default(),
            )
            .unwrap();
            fill(&mut w, seg / 2);
            if zeroed {
                while !w.prezero.as_ref().unwrap().is_ready() {
                    prezero::wait_a_little();
                }
            }
            w.rotate().unwrap();
            if zeroed {
                assert_eq!(len(dir.path(), 2), seg);
            }
            fill(&mut w, 4096);
            let head = w.head_len;
            let (tx, rx) = mpsc::channel();
            drop(tx);
            w.run(rx);
            assert_eq!(len(dir.path(), 2), head, "zeroed {zeroed}");
            if !zeroed {
                assert!(!dir.path().join(prezero::FILE_NAME).exists());
            }
        }
    }

    /// The event acknowledgements framed in segment `n`, in order.
    fn acks_in(dir: &Path, n: u64) -> Vec<u64> {
        let data = std::fs::read(segment_path(dir, n)).unwrap();
        let mut acks = Vec::new();
        for span in replay::scan(&data) {
            if let replay::Span::Record { offset, len } = span
                && Kind::from_u8(data[offset + 8]) == Some(Kind::EventAck)
            {
                let payload = Bytes::copy_from_slice(&data[offset + 9..offset + len]);
                acks.extend(
                    <record::Ids as prost::Message>::decode(payload)
                        .unwrap()
                        .ids,
                );
            }
        }
        acks
    }

    /// A record sent after a rotation was asked for is written to the new
    /// head, even when the writer takes both in one go: compaction deletes
    /// the old head once it has carried what was live, so an `Accept` that
    /// landed there after the rotation would be lost.
    #[test]
    fn what_is_sent_after_a_rotation_goes_to_the_new_head() {
        let dir = tempfile::tempdir().unwrap();
        let w = Writer::create(
            dir.path().into(),
            Vec::new(),
            1,
            1 << 20,
            false,
            Arc::default(),
        )
        .unwrap();
        let ack = |id: u64| {
            let mut b = BytesMut::new();
            record::frame(&mut b, Kind::EventAck, &record::Ids { ids: vec![id] });
            Command::Append {
                bytes: b.freeze(),
                done: None,
            }
        };
        let (tx, rx) = mpsc::channel();
        let (done, mut rotated) = oneshot::channel();
        let (done2, mut rotated2) = oneshot::channel();
        // The first rotation is taken first; the second mid-drain.
        for c in [
            Command::Rotate { done },
            ack(1),
            Command::Rotate { done: done2 },
            ack(2),
            ack(3),
        ] {
            tx.send(c).unwrap();
        }
        drop(tx);
        w.run(rx);
        assert_eq!(rotated.try_recv().unwrap(), 2);
        assert_eq!(rotated2.try_recv().unwrap(), 3);
        assert!(acks_in(dir.path(), 1).is_empty());
        assert_eq!(acks_in(dir.path(), 2), [1]);
        assert_eq!(acks_in(dir.path(), 3), [2, 3]);
    }

    #[test]
    fn a_failed_writer_starts_no_new_segment_and_names_none() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::create(
            dir.path().into(),
            Vec::new(),
            1,
            1 << 20,
            true,
            Arc::default(),
        )
        .unwrap();
        fill(&mut w, 4096);
        let mut failed = Some(Arc::new(io::Error::other("disk gone")));
        let (done, mut rx) = oneshot::channel();
        w.control(Command::Rotate { done }, &mut failed);
        assert!(rx.try_recv().is_err(), "no segment number for compaction");
        assert_eq!(w.head, 1);
        assert!(!segment_path(dir.path(), 2).exists());
    }
}
