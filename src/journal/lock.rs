//! One gateway per data directory: an exclusive advisory lock (`flock`) on
//! `<data_dir>/sluice.lock`, held for the life of the process, with the
//! holder's pid written inside so a second start can say who has it.
//!
//! Two gateways on one journal would both replay it, both bind to the
//! carriers and both hand out message ids from the same counter; the lock
//! makes the second refuse to start instead. The kernel drops the lock when
//! the holder dies (even by SIGKILL), so a crash never leaves it stale.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Name of the lock file inside the data directory.
pub const LOCK_FILE: &str = "sluice.lock";

/// Why the data directory could not be locked. Returned by [`DataDirLock::acquire`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Another process holds the lock.
    #[error("{path} is locked by another sluice (pid {pid}): one gateway per data_dir")]
    Held {
        /// The lock file.
        path: PathBuf,
        /// The holder's pid as it wrote it (`?` when unreadable).
        pid: String,
    },
    /// The lock file could not be created or locked.
    #[error("lock {path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// The held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// Takes the lock of `data_dir` (created if missing) and writes this
    /// process's pid into it.
    ///
    /// # Errors
    /// [`LockError::Held`] when another process holds it, [`LockError::Io`]
    /// when the file cannot be used.
    pub fn acquire(data_dir: &Path) -> Result<DataDirLock, LockError> {
        let path = data_dir.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(data_dir).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(LockError::Held {
                    path,
                    pid: if pid.is_empty() || pid.len() > 20 {
                        "?".into()
                    } else {
                        pid.to_owned()
                    },
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        file.sync_data().map_err(io)?;
        Ok(DataDirLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).unwrap();
        let err = DataDirLock::acquire(dir.path()).unwrap_err();
        let LockError::Held { pid, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(pid, &std::process::id().to_string());
        assert!(err.to_string().contains("one gateway per data_dir"));
        drop(first);
        // Released with its holder.
        DataDirLock::acquire(dir.path()).unwrap();
    }
}
