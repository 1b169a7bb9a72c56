//! The journal's settings (the `[journal]` section of the configuration).

use std::path::PathBuf;

use serde::Deserialize;

/// What happens, after a crash, to a message that was dispatched but got no
/// answer from the carrier.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Recovery {
    /// Report it `unknown` (no duplicate can reach the handset). Default.
    #[default]
    Unknown,
    /// Send it again (at-least-once; the handset may get it twice).
    Resend,
}

/// Journal settings.
///
/// # Defaults
/// path `<data_dir>/journal`, segments of 64 MiB, compaction past 8 segments,
/// recovery `unknown`, at most 20,000,000 live messages, 1,000,000 of them
/// queued in memory, spill files of 64 MiB, segments zeroed ahead of time.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JournalConfig {
    /// Directory of the journal; default `<data_dir>/journal`.
    pub path: Option<PathBuf>,
    /// Size at which the head segment is closed and a new one started.
    pub segment_bytes: u64,
    /// When more segments than this exist, live records of the oldest are
    /// carried forward and it is deleted.
    pub max_segments: u32,
    /// Crash recovery of dispatched-but-unanswered messages.
    pub recovery: Recovery,
    /// Most messages accepted but not finished, in memory and spilled
    /// together; past it ingest withholds credits.
    pub max_live_messages: u64,
    /// Most queued messages kept in memory; beyond it accepted messages wait
    /// in spill files under `<data_dir>/spill` and are paged in as the
    /// queues drain.
    pub max_queued_in_memory: u64,
    /// Size at which a spill file is closed and a new one started.
    pub spill_file_bytes: u64,
    /// Write each next segment full of zeros while the head fills, so that
    /// the group commits' `fdatasync`s overwrite blocks instead of growing
    /// the file (a third less time per sync on ext4, measured; no gain on
    /// copy-on-write file systems such as btrfs or ZFS, where it only adds
    /// writes). Costs up to two segments of disk beyond the records.
    pub prezero_segments: bool,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            path: None,
            segment_bytes: 64 << 20,
            max_segments: 8,
            recovery: Recovery::Unknown,
            max_live_messages: 20_000_000,
            max_queued_in_memory: 1_000_000,
            spill_file_bytes: 64 << 20,
            prezero_segments: true,
        }
    }
}
