//! The dedupe log: where `(tenant, client_ref)` fingerprints go when the
//! journal segments holding their Accept records are compacted away, so
//! that a retried batch is still recognised for the whole dedupe window
//! without compaction rewriting millions of keys every cycle.
//!
//! One file per hour of acceptance (`<dir>/<hour>.log`), deleted when the
//! whole hour is outside the window. A file is a sequence of batches
//! `[count: u32 LE][crc32: u32 LE][count × 32-byte entries]`, each entry
//! `fingerprint (16 bytes LE) · message id (8) · accepted at, unix ms (8)`.
//! A torn batch at the end of a file (a crash mid-append) is ignored.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

const HOUR_MS: u64 = 3_600_000;
const ENTRY: usize = 32;

/// A remembered key: fingerprint, message id, accepted at (unix ms).
pub type DedupeEntry = (u128, u64, u64);

/// The dedupe log directory.
#[derive(Debug, Clone)]
pub struct DedupeLog {
    dir: PathBuf,
}

impl DedupeLog {
    /// Opens (creating) the log in `dir`.
    ///
    /// # Errors
    /// The directory cannot be created.
    pub fn open(dir: &Path) -> io::Result<DedupeLog> {
        std::fs::create_dir_all(dir)?;
        Ok(DedupeLog {
            dir: dir.to_owned(),
        })
    }

    fn file(&self, hour: u64) -> PathBuf {
        self.dir.join(format!("{hour:010}.log"))
    }

    /// Appends entries durably (synced before returning).
    ///
    /// # Errors
    /// A write or sync failed.
    pub fn append(&self, entries: &[DedupeEntry]) -> io::Result<()> {
        self.write(entries, true)
    }

    /// Syncs every file of the log.
    ///
    /// # Errors
    /// A sync failed.
    pub fn sync(&self) -> io::Result<()> {
        for (_, path) in self.files()? {
            OpenOptions::new().append(true).open(path)?.sync_data()?;
        }
        File::open(&self.dir)?.sync_all()
    }

    fn write(&self, entries: &[DedupeEntry], sync: bool) -> io::Result<()> {
        let mut by_hour: std::collections::BTreeMap<u64, Vec<u8>> = Default::default();
        for (fp, id, at) in entries {
            let buf = by_hour.entry(at / HOUR_MS).or_default();
            buf.extend_from_slice(&fp.to_le_bytes());
            buf.extend_from_slice(&id.to_le_bytes());
            buf.extend_from_slice(&at.to_le_bytes());
        }
        for (hour, body) in by_hour {
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.file(hour))?;
            let mut batch = Vec::with_capacity(8 + body.len());
            batch.extend_from_slice(&((body.len() / ENTRY) as u32).to_le_bytes());
            batch.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
            batch.extend_from_slice(&body);
            f.write_all(&batch)?;
            if sync {
                f.sync_data()?;
            }
        }
        if sync {
            File::open(&self.dir)?.sync_all()?;
        }
        Ok(())
    }

    /// Every entry accepted within `window_ms` before `now_ms`.
    ///
    /// # Errors
    /// A file cannot be read.
    pub fn load(&self, now_ms: u64, window_ms: u64) -> io::Result<Vec<DedupeEntry>> {
        let mut out = Vec::new();
        for (hour, path) in self.files()? {
            if !hour_in_window(hour, now_ms, window_ms) {
                continue;
            }
            let mut data = Vec::new();
            File::open(&path)?.read_to_end(&mut data)?;
            // At most one entry per `ENTRY` bytes: sized once, not grown by
            // doubling through millions of keys.
            out.reserve(data.len() / ENTRY);
            read_batches(&data, &path, now_ms, window_ms, &mut out);
        }
        Ok(out)
    }

    /// Deletes files whose whole hour is outside the window, and older
    /// files once newer ones hold `max_keys` entries; returns how many.
    ///
    /// # Errors
    /// A file cannot be removed.
    pub fn prune(&self, now_ms: u64, window_ms: u64, max_keys: usize) -> io::Result<usize> {
        let mut n = 0;
        // Newest first: once newer hours hold `max_keys` entries, older ones
        // are forgotten in memory anyway, so their files go too (at a
        // sustained 50k msgs/s a 24-hour window would keep ~140 GB).
        let mut newer = 0u64;
        for (hour, path) in self.files()?.into_iter().rev() {
            let outside = !hour_in_window(hour, now_ms, window_ms);
            if outside || newer >= max_keys as u64 {
                std::fs::remove_file(path)?;
                n += 1;
                continue;
            }
            newer += std::fs::metadata(&path)?.len() / ENTRY as u64;
        }
        Ok(n)
    }

    fn files(&self) -> io::Result<Vec<(u64, PathBuf)>> {
        let mut v = Vec::new();
        for e in std::fs::read_dir(&self.dir)? {
            let e = e?;
            let name = e.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".log")) else {
                continue;
            };
            if let Ok(hour) = stem.parse::<u64>() {
                v.push((hour, e.path()));
            }
        }
        v.sort();
        Ok(v)
    }
}

/// Whether the file of `hour` may hold entries within the window. Hours
/// come from file names and times from file contents: saturating, so a
/// stray `18446744073709551615.log` or a damaged entry cannot overflow.
fn hour_in_window(hour: u64, now_ms: u64, window_ms: u64) -> bool {
    hour.saturating_add(1)
        .saturating_mul(HOUR_MS)
        .saturating_add(window_ms)
        >= now_ms
}

/// Appends to `out` the entries of one file's `data` accepted within
/// `window_ms` before `now_ms`, up to the first torn batch.
fn read_batches(data: &[u8], path: &Path, now_ms: u64, window_ms: u64, out: &mut Vec<DedupeEntry>) {
    let mut off = 0;
    while data.len() - off >= 8 {
        let count = u32::from_le_bytes(data[off..off + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(data[off + 4..off + 8].try_into().expect("4 bytes"));
        let Some(end) = count.checked_mul(ENTRY).map(|n| off + 8 + n) else {
            break;
        };
        if end > data.len() || crc32fast::hash(&data[off + 8..end]) != crc {
            tracing::warn!(target: "sluice::journal", path = %path.display(), offset = off,
                "ignoring a torn dedupe batch");
            break;
        }
        for e in data[off + 8..end].chunks_exact(ENTRY) {
            let fp = u128::from_le_bytes(e[..16].try_into().expect("16 bytes"));
            let id = u64::from_le_bytes(e[16..24].try_into().expect("8 bytes"));
            let at = u64::from_le_bytes(e[24..32].try_into().expect("8 bytes"));
            if at.saturating_add(window_ms) >= now_ms {
                out.push((fp, id, at));
            }
        }
        off = end;
    }
}

/// Fuzzing hook: what [`DedupeLog::load`] keeps of a file named for `hour`
/// holding `data`.
#[doc(hidden)]
pub fn fuzz_load(hour: u64, data: &[u8], now_ms: u64, window_ms: u64) -> Vec<DedupeEntry> {
    let mut out = Vec::new();
    if hour_in_window(hour, now_ms, window_ms) {
        read_batches(data, Path::new("fuzz.log"), now_ms, window_ms, &mut out);
    }
    out
}

/// Reads, or creates once, a random 128-bit key in `path` (mode 0600).
///
/// # Errors
/// The file cannot be read or written, or holds fewer than 16 bytes.
pub fn load_or_create_key(path: &Path) -> io::Result<[u8; 16]> {
    match std::fs::read(path) {
        Ok(b) if b.len() >= 16 => {
            let mut k = [0u8; 16];
            k.copy_from_slice(&b[..16]);
            Ok(k)
        }
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is too short", path.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let key: [u8; 16] = rand::random();
            let tmp = path.with_extension("tmp");
            {
                let mut f = OpenOptions::new()
                    .create(true)
                    .truncate(true)
                    .write(true)
                    .open(&tmp)?;
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
                }
                f.write_all(&key)?;
                f.sync_all()?;
            }
            std::fs::rename(&tmp, path)?;
            Ok(key)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_and_old_hours_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let log = DedupeLog::open(dir.path()).unwrap();
        let now = 100 * HOUR_MS;
        log.append(&[
            (1, 10, now - 30 * HOUR_MS),
            (2, 20, now - 1000),
            (u128::MAX, 30, now),
        ])
        .unwrap();
        let window = 24 * HOUR_MS;
        let got = log.load(now, window).unwrap();
        assert_eq!(got, vec![(2, 20, now - 1000), (u128::MAX, 30, now)]);
        assert_eq!(log.prune(now, window, usize::MAX).unwrap(), 1);
        // A torn batch at the end is ignored, earlier ones kept.
        let path = log.file(now / HOUR_MS);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[5, 0, 0, 0, 1, 2, 3]).unwrap();
        assert_eq!(log.load(now, window).unwrap().len(), 2);
    }

    #[test]
    fn hours_beyond_max_keys_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let log = DedupeLog::open(dir.path()).unwrap();
        let now = 100 * HOUR_MS;
        for h in 0..4u64 {
            let at = now - h * HOUR_MS;
            let entries: Vec<DedupeEntry> =
                (0..10).map(|i| (u128::from(h * 100 + i), i, at)).collect();
            log.append(&entries).unwrap();
        }
        // Each hour holds 10 keys: keeping 15 needs the two newest hours.
        assert_eq!(log.prune(now, 24 * HOUR_MS, 15).unwrap(), 2);
        let kept = log.load(now, 24 * HOUR_MS).unwrap();
        assert_eq!(kept.len(), 20);
        assert!(kept.iter().all(|e| e.2 >= now - HOUR_MS));
    }

    #[test]
    fn huge_hours_and_times_on_disk_do_not_overflow() {
        // Found by the dedupe_log fuzz target: `(hour + 1) * HOUR_MS`
        // overflowed for a file named with a huge hour, `at + window` for a
        // huge time (a panic with overflow checks, a wrong answer without).
        let dir = tempfile::tempdir().unwrap();
        let log = DedupeLog::open(dir.path()).unwrap();
        let at = u64::MAX - 1;
        let mut body = Vec::new();
        body.extend_from_slice(&7u128.to_le_bytes());
        body.extend_from_slice(&9u64.to_le_bytes());
        body.extend_from_slice(&at.to_le_bytes());
        let mut batch = 1u32.to_le_bytes().to_vec();
        batch.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        batch.extend_from_slice(&body);
        std::fs::write(log.file(u64::MAX), &batch).unwrap();
        let now = 100 * HOUR_MS;
        let window = 24 * HOUR_MS;
        assert_eq!(log.load(now, window).unwrap(), vec![(7, 9, at)]);
        assert_eq!(log.prune(now, window, usize::MAX).unwrap(), 0);
        assert_eq!(
            fuzz_load(u64::MAX, &batch, u64::MAX, window),
            vec![(7, 9, at)]
        );
    }

    #[test]
    fn the_key_is_created_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        let a = load_or_create_key(&p).unwrap();
        assert_eq!(load_or_create_key(&p).unwrap(), a);
    }
}
