//! Deleting big files without stalling other files' syncs.
//!
//! Freeing a 64 MiB file at once makes the file system journal commit its
//! whole release in one go, and a concurrent `fdatasync` of the message
//! journal waits behind it (measured: ~50 ms of acknowledgements at 50k
//! msgs/s per 64 MiB segment). A file is first renamed out of its reader's
//! sight (`.del`, synced with its directory), so a crash half way never
//! leaves a short file behind under its real name; then it is cut a few
//! megabytes at a time with a pause between, and removed.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Extension of a file being deleted.
pub const DELETED: &str = "del";
/// Bytes freed at a time, and the pause after each step.
const STEP: u64 = 8 << 20;
const PAUSE: Duration = Duration::from_millis(20);

/// Renames each of `paths` to `<name>.del` and syncs `dir` (what a crash
/// left is found by [`leftovers`]); the new paths. A file already gone is
/// skipped.
///
/// # Errors
/// A rename or the directory sync failed.
pub fn set_aside(dir: &Path, paths: impl IntoIterator<Item = PathBuf>) -> io::Result<Vec<PathBuf>> {
    let mut doomed = Vec::new();
    for p in paths {
        let d = p.with_extension(DELETED);
        match fs::rename(&p, &d) {
            Ok(()) => doomed.push(d),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    fs::File::open(dir)?.sync_all()?;
    Ok(doomed)
}

/// Removes each of `paths`, cutting it [`STEP`] bytes at a time (blocks
/// the calling thread: call it off the hot path).
///
/// # Errors
/// A file could not be cut or removed.
pub fn remove_gradually(paths: &[PathBuf]) -> io::Result<()> {
    for path in paths {
        let cut = (|| {
            let f = fs::OpenOptions::new().write(true).open(path)?;
            let mut len = f.metadata()?.len();
            while len > STEP {
                len -= STEP;
                f.set_len(len)?;
                std::thread::sleep(PAUSE);
            }
            fs::remove_file(path)
        })();
        match cut {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::thread::sleep(PAUSE);
    }
    Ok(())
}

/// Files of `dir` a crash left set aside.
///
/// # Errors
/// The directory cannot be read.
pub fn leftovers(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut v = Vec::new();
    for entry in fs::read_dir(dir)? {
        let p = entry?.path();
        if p.extension().is_some_and(|e| e == DELETED) {
            v.push(p);
        }
    }
    Ok(v)
}

/// [`remove_gradually`] on a thread of its own, so the caller goes on at
/// once; a failure is logged (the files stay set aside and go at the next
/// start, through [`leftovers`]).
pub fn remove_in_background(paths: Vec<PathBuf>) {
    if paths.is_empty() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("sluice-reclaim".into())
        .spawn(move || {
            if let Err(e) = remove_gradually(&paths) {
                tracing::warn!(target: "sluice::reclaim", error = %e,
                    "a file set aside for deletion was not removed; retried at the next start");
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(target: "sluice::reclaim", error = %e,
            "no thread to remove files set aside; retried at the next start");
    }
}

/// Removes `paths`: a file of at most [`STEP`] bytes at once, bigger ones
/// set aside (durably, before this returns) and freed gradually in the
/// background. A file already gone is skipped.
///
/// # Errors
/// A file could not be removed or set aside.
pub fn remove(dir: &Path, paths: Vec<PathBuf>) -> io::Result<()> {
    let mut big = Vec::new();
    for p in paths {
        let small = match fs::metadata(&p) {
            Ok(m) => m.len() <= STEP,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if !small {
            big.push(p);
            continue;
        }
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    if !big.is_empty() {
        remove_in_background(set_aside(dir, big)?);
    }
    Ok(())
}
