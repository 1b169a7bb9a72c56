//! The next journal segment, written full of zeros ahead of time.
//!
//! Every group commit ends in an `fdatasync` of the head segment. When the
//! write extends the file, the file system must also commit the new size
//! and the newly allocated blocks (on ext4 a journal commit of its own),
//! which doubles the sync: 248–259 µs per 16 KiB append against 131 µs
//! when the same bytes overwrite blocks already written and synced (20,000
//! syncs each on this machine's ext4 disk; `fallocate` does not help, its
//! blocks are "unwritten" and converting them is the same metadata commit).
//! So a helper thread writes the next segment's file full of zeros and
//! syncs it while the head fills; at rotation the writer renames it into
//! place and overwrites the zeros. In the gateway at 50k msgs/s the mean
//! sync went from 342–347 to 219–238 µs (`docs/PERFORMANCE.md`).
//!
//! The thread starts on the next file only when asked ([`Prezero::request`],
//! once the head is a quarter full), so a journal that writes little (tests,
//! the opt-out journal) never pays for a zeroed file. It writes and syncs a
//! quarter of a megabyte at a time, with a pause after each, so that the
//! head's syncs on the same disk never wait behind a long flush (with 4 MiB
//! at a time, the ack p99 at 50k msgs/s rose from 6–7 to 9–10 ms). If it is
//! not done by the rotation, the writer creates the segment as before and
//! takes the file at the next one; if it failed (a full disk), it is asked
//! again at the next rotation. A whole file a stop left behind serves the
//! next start's first head.
//!
//! Zeros after the last record are what a crash leaves in such a head:
//! replay reads them as the end of the records and cuts them off (a frame
//! of length 0 is never a record), and so are a write's pages that a power
//! loss kept while losing an earlier one (`replay::unsynced_tail`; that
//! segment is kept aside first). A closed
//! segment never keeps them: the writer cuts the zeros and syncs the length
//! before the next segment has its name. That cut frees the blocks on the
//! writer thread: 15–17 ms for a head rotated when it is still mostly zeros,
//! which only compaction does (once per compaction, every half minute or so
//! at 50k msgs/s). Disk use: up to two segments of zeros (the head's rest
//! and the next file) beyond `sluice_journal_bytes`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

/// File name of the zeroed file in the journal's directory (not a segment
/// name: replay and listing skip it). It has this name only once it is
/// whole and synced, so a restart can begin its first head on it.
pub(crate) const FILE_NAME: &str = "next-segment.zero";

/// Name of the file while it is being written (removed at start).
const PART_NAME: &str = "next-segment.zero.part";

/// Bytes written and synced at a time: a quarter of a megabyte keeps the
/// disk busy for about a millisecond, which a head sync that arrives
/// meanwhile waits behind.
const CHUNK: usize = 256 << 10;

/// Pause after each chunk, so the head's syncs find the disk free: 64 MiB
/// take about a second, while the head's last three quarters fill in 3 s at 50,000
/// messages per second.
const PAUSE: std::time::Duration = std::time::Duration::from_millis(2);

/// What the thread and the writer share.
#[derive(Debug, Default)]
struct Flags {
    /// Set by the thread once the file is whole and synced.
    ready: AtomicBool,
    /// Set by the thread when it could not make a file; the writer asks
    /// again at its next rotation.
    failed: AtomicBool,
    /// Set when the writer is gone: the thread stops, mid-file if need be.
    stop: AtomicBool,
}

/// The helper thread and what the writer knows of it.
pub(crate) struct Prezero {
    path: PathBuf,
    flags: Arc<Flags>,
    /// Asks the thread for a file (`None` once dropping).
    ask: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// A file was asked for and not yet taken.
    asked: bool,
}

impl Prezero {
    /// Starts the thread, which zeroes files of `bytes` in `dir`. A zeroed
    /// file a previous run left whole is ready at once; a half-written one,
    /// or one of another size, is removed.
    pub(crate) fn start(dir: &Path, bytes: u64) -> io::Result<Prezero> {
        let path = dir.join(FILE_NAME);
        let part = dir.join(PART_NAME);
        remove_if_there(&part)?;
        let whole = std::fs::metadata(&path).is_ok_and(|m| m.len() == bytes);
        if !whole {
            remove_if_there(&path)?;
        }
        let flags = Arc::new(Flags {
            ready: AtomicBool::new(whole),
            ..Flags::default()
        });
        let (ask, asked) = mpsc::channel::<()>();
        let (thread_path, thread_flags) = (path.clone(), flags.clone());
        let thread = std::thread::Builder::new()
            .name("sluice-prezero".into())
            .spawn(move || {
                while asked.recv().is_ok() {
                    let made = zero_file(&part, bytes, &thread_flags.stop)
                        .and_then(|()| std::fs::rename(&part, &thread_path));
                    match made {
                        Ok(()) => thread_flags.ready.store(true, Ordering::Release),
                        Err(e) => {
                            let _ = std::fs::remove_file(&part);
                            if thread_flags.stop.load(Ordering::Acquire) {
                                return;
                            }
                            // The next rotation creates its segment as before.
                            tracing::warn!(target: "sluice::journal", error = %e,
                                "could not write the next journal segment ahead of time");
                            thread_flags.failed.store(true, Ordering::Release);
                        }
                    }
                }
            })?;
        Ok(Prezero {
            path,
            flags,
            ask: Some(ask),
            thread: Some(thread),
            // One is there already: nothing to ask for until it is taken.
            asked: whole,
        })
    }

    /// Asks for the next zeroed file, unless one is asked for already.
    pub(crate) fn request(&mut self) {
        if !self.asked
            && let Some(ask) = &self.ask
        {
            self.asked = ask.send(()).is_ok();
        }
    }

    /// When a zeroed file is ready, renames it to `to` and opens it for
    /// writing from its start; `None` when it is not (yet) there (after a
    /// failed one, the next is asked for anew). The caller syncs the
    /// directory.
    pub(crate) fn take(&mut self, to: &Path) -> io::Result<Option<File>> {
        if !self.flags.ready.load(Ordering::Acquire) {
            if self.flags.failed.swap(false, Ordering::AcqRel) {
                self.asked = false;
            }
            return Ok(None);
        }
        self.flags.ready.store(false, Ordering::Release);
        self.asked = false;
        std::fs::rename(&self.path, to)?;
        OpenOptions::new().write(true).open(to).map(Some)
    }

    /// Whether a zeroed file waits to be taken.
    #[cfg(test)]
    pub(crate) fn is_ready(&self) -> bool {
        self.flags.ready.load(Ordering::Acquire)
    }
}

impl Drop for Prezero {
    /// Stops the thread and waits for it, so that a journal opened again
    /// on the same directory never meets its files.
    fn drop(&mut self) {
        self.flags.stop.store(true, Ordering::Release);
        self.ask = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Removes the files a run with zeroing on left in `dir` (for a start with
/// it off); failures are only logged.
pub(crate) fn remove_leftovers(dir: &Path) {
    for name in [FILE_NAME, PART_NAME] {
        if let Err(e) = remove_if_there(&dir.join(name)) {
            tracing::warn!(target: "sluice::journal", error = %e, file = name,
                "could not remove a segment zeroed ahead of time");
        }
    }
}

fn remove_if_there(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Writes `bytes` zeros to a new file at `path`, syncing as it goes;
/// gives up when `stop` is set.
fn zero_file(path: &Path, bytes: u64, stop: &AtomicBool) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    let zeros = vec![0u8; CHUNK];
    let mut written = 0u64;
    while written < bytes {
        if stop.load(Ordering::Acquire) {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "journal closed"));
        }
        let n = (bytes - written).min(CHUNK as u64) as usize;
        f.write_all(&zeros[..n])?;
        f.sync_data()?;
        written += n as u64;
        std::thread::sleep(PAUSE);
    }
    Ok(())
}

/// Waits a moment for the thread, in tests; fails the test after 30 s of
/// waiting (a zeroing failure would otherwise hang it).
#[cfg(test)]
#[allow(clippy::disallowed_types)] // real time: the thread writes a real file
pub(crate) fn wait_a_little() {
    thread_local!(static SINCE: std::time::Instant = std::time::Instant::now());
    let waited = SINCE.with(|t| t.elapsed());
    assert!(
        waited < std::time::Duration::from_secs(30),
        "no zeroed file in 30 s"
    );
    std::thread::yield_now();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_requested_file_is_zeroed_then_renamed_into_place() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(PART_NAME), b"half written by a crash").unwrap();
        std::fs::write(dir.path().join(FILE_NAME), b"of another size").unwrap();
        let mut p = Prezero::start(dir.path(), 3 * CHUNK as u64 + 5).unwrap();
        assert!(
            !dir.path().join(PART_NAME).exists(),
            "a leftover is removed"
        );
        assert!(
            !dir.path().join(FILE_NAME).exists(),
            "so is one of another size"
        );
        let to = dir.path().join("00000000000000000002.log");
        assert!(p.take(&to).unwrap().is_none(), "nothing asked for yet");
        p.request();
        p.request(); // once is enough
        let file = loop {
            if let Some(f) = p.take(&to).unwrap() {
                break f;
            }
            wait_a_little();
        };
        drop(file);
        let data = std::fs::read(&to).unwrap();
        assert_eq!(data.len() as u64, 3 * CHUNK as u64 + 5);
        assert!(data.iter().all(|&b| b == 0));
        assert!(!dir.path().join(FILE_NAME).exists());
    }

    #[test]
    fn a_whole_zeroed_file_a_stop_left_is_ready_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = 2 * CHUNK as u64;
        let mut p = Prezero::start(dir.path(), bytes).unwrap();
        p.request();
        while !p.is_ready() {
            wait_a_little();
        }
        drop(p);
        let mut p = Prezero::start(dir.path(), bytes).unwrap();
        assert!(p.is_ready());
        let to = dir.path().join("00000000000000000001.log");
        assert!(p.take(&to).unwrap().is_some());
        assert_eq!(std::fs::metadata(&to).unwrap().len(), bytes);
    }
}
