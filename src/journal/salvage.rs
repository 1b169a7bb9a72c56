//! `sluice journal check` and `sluice journal salvage`: what an operator
//! runs when the gateway refused to start on a damaged journal.
//!
//! `check` reads every segment and reports its valid records and damaged
//! stretches without changing anything. `salvage` keeps every valid record:
//! each damaged segment is moved aside (`<n>.log.damaged`) and rewritten
//! with only its valid records. The damaged bytes may have held the record
//! that a message was written to a carrier (or delivered), so by default
//! every message live where the damage starts is marked as possibly written:
//! recovery then reports it `unknown` instead of sending it again, unless a
//! later valid record ends it. `--resend` skips the marks (at-least-once).

use std::fmt;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};

use super::JournalError;
use super::record::{self, Kind};
use super::replay::{self, Span, State};
use super::writer::segment_path;

/// Carrier name of the marks on messages whose carrier was not known.
const UNKNOWN_CARRIER: &str = "(salvaged)";

/// What `check` found in one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentReport {
    /// Segment number.
    pub number: u64,
    /// Size in bytes.
    pub bytes: u64,
    /// Valid records.
    pub records: u64,
    /// Damaged stretches `(offset, length)`.
    pub damaged: Vec<(u64, u64)>,
    /// Whether this is the last segment and a start would cut it from its
    /// first damage on: a torn tail, zeros, or a write a power loss cut in
    /// pages (nothing after it was acknowledged; see `replay`).
    pub cut_tail: bool,
}

/// What `check` found in a journal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Per segment, oldest first.
    pub segments: Vec<SegmentReport>,
}

impl CheckReport {
    /// True when some segment has damage other than a torn tail of the last
    /// one (which an ordinary start truncates).
    pub fn is_damaged(&self) -> bool {
        self.segments
            .iter()
            .any(|s| !s.damaged.is_empty() && !s.cut_tail)
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.segments {
            writeln!(
                f,
                "segment {:020}.log: {} bytes, {} valid records, {} damaged stretches",
                s.number,
                s.bytes,
                s.records,
                s.damaged.len()
            )?;
            for (off, len) in &s.damaged {
                writeln!(f, "  damaged: {len} bytes at offset {off}")?;
            }
        }
        if self.is_damaged() {
            writeln!(
                f,
                "DAMAGED: the gateway will not start; `sluice journal salvage` keeps every valid record"
            )
        } else {
            writeln!(f, "ok")
        }
    }
}

/// Reads every segment of the journal in `dir` and reports its damage.
///
/// # Errors
/// [`JournalError::Io`] when a segment cannot be read.
pub fn check(dir: &Path) -> Result<CheckReport, JournalError> {
    let mut report = CheckReport::default();
    let segments = replay::list_segments(dir).map_err(|e| JournalError::Io(dir.into(), e))?;
    for (i, &(n, bytes)) in segments.iter().enumerate() {
        let data = replay::read_segment(&segment_path(dir, n))?;
        let spans = replay::scan(&data);
        let mut seg = SegmentReport {
            number: n,
            bytes,
            records: 0,
            damaged: Vec::new(),
            cut_tail: i + 1 == segments.len() && replay::start_cuts_at(&data, &spans).is_some(),
        };
        for span in spans {
            match span {
                Span::Record { .. } => seg.records += 1,
                Span::Damaged { offset, len } => seg.damaged.push((offset as u64, len as u64)),
            }
        }
        report.segments.push(seg);
    }
    Ok(report)
}

/// What `salvage` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SalvageReport {
    /// Segments rewritten (their originals kept as `.damaged`).
    pub rewritten: Vec<PathBuf>,
    /// Valid records kept in the rewritten segments.
    pub records_kept: u64,
    /// Damaged bytes left out.
    pub bytes_dropped: u64,
    /// Messages live where the damage starts, marked as possibly written
    /// (they end `unknown` unless a later record ends them).
    pub marked_unknown: u64,
}

impl fmt::Display for SalvageReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.rewritten {
            writeln!(f, "rewrote {} (original kept as .damaged)", p.display())?;
        }
        writeln!(
            f,
            "kept {} valid records, dropped {} damaged bytes, marked {} messages as possibly sent (they end unknown, never sent twice)",
            self.records_kept, self.bytes_dropped, self.marked_unknown
        )
    }
}

/// Rewrites every damaged segment of the journal in `dir` with its valid
/// records only (see the module doc). Run it only while no gateway uses
/// the directory (the caller holds the data directory's lock).
///
/// # Errors
/// [`JournalError::Io`] when a segment cannot be read or written.
pub fn salvage(dir: &Path, resend: bool) -> Result<SalvageReport, JournalError> {
    let io = |p: &Path| {
        let p = p.to_owned();
        move |e| JournalError::Io(p, e)
    };
    let mut report = SalvageReport::default();
    let mut st = State::default();
    let mut marked = false;
    let segments = replay::list_segments(dir).map_err(io(dir))?;
    for (i, &(n, _)) in segments.iter().enumerate() {
        let path = segment_path(dir, n);
        let data = replay::read_segment(&path)?;
        let mut spans = replay::scan(&data);
        // The end of the last segment that a start cuts (a torn write,
        // zeros written ahead of time) held nothing acknowledged: it is
        // left for the start to cut, not counted as damage.
        if i + 1 == segments.len()
            && let Some(at) = replay::start_cuts_at(&data, &spans)
        {
            spans.retain(|s| match s {
                Span::Record { offset, .. } | Span::Damaged { offset, .. } => *offset < at,
            });
        }
        let mut out = BytesMut::with_capacity(data.len());
        let mut damaged = false;
        for span in spans {
            match span {
                Span::Record { offset, len } => {
                    let kind = Kind::from_u8(data[offset + 8]);
                    let payload = data.slice(offset + 9..offset + len);
                    if replay::apply(&mut st, kind, payload).is_ok() {
                        out.extend_from_slice(&data[offset..offset + len]);
                        report.records_kept += 1;
                        continue;
                    }
                    // Checks out but does not decode: damage as well.
                    damaged = true;
                    report.bytes_dropped += len as u64;
                }
                Span::Damaged { len, .. } => {
                    damaged = true;
                    report.bytes_dropped += len as u64;
                }
            }
            if !marked && !resend {
                marked = true;
                let marks = possibly_written(&st);
                report.marked_unknown = marks.iter().map(|w| w.ids.len() as u64).sum();
                for w in marks {
                    use prost::Message as _;
                    record::frame(&mut out, Kind::Written, &w);
                    let payload = Bytes::from(w.encode_to_vec());
                    let _ = replay::apply(&mut st, Some(Kind::Written), payload);
                }
            }
        }
        if !damaged {
            // Nothing to leave out: the file stays as it is.
            continue;
        }
        write_atomically(&path, &out.freeze())?;
        report.rewritten.push(path);
    }
    if let Ok(d) = std::fs::File::open(dir) {
        d.sync_all().map_err(io(dir))?;
    }
    Ok(report)
}

/// `Written` marks for every message live in `st`, grouped by carrier.
fn possibly_written(st: &State) -> Vec<record::Written> {
    let mut by_carrier: std::collections::BTreeMap<&str, record::Written> = Default::default();
    let mut ids: Vec<(&u64, &replay::Progress)> = st
        .live
        .iter()
        .filter(|(_, p)| p.message.is_some())
        .map(|(id, p)| (id, &**p))
        .collect();
    ids.sort_by_key(|(id, _)| **id);
    for (id, p) in ids {
        let parts = p.dispatch.as_ref().map_or(0, |d| d.parts);
        let carrier = match &p.dispatch {
            Some(d) if !d.carrier.is_empty() => d.carrier.as_str(),
            _ => UNKNOWN_CARRIER,
        };
        let w = by_carrier
            .entry(carrier)
            .or_insert_with(|| record::Written {
                carrier: carrier.to_owned(),
                ..record::Written::default()
            });
        w.ids.push(*id);
        w.parts.push(0);
        w.totals.push(parts.max(1));
    }
    by_carrier.into_values().collect()
}

/// Moves `path` aside as `<path>.damaged` and puts `data` in its place.
fn write_atomically(path: &Path, data: &Bytes) -> Result<(), JournalError> {
    use std::io::Write;
    let err = |p: &Path| {
        let p = p.to_owned();
        move |e| JournalError::Io(p, e)
    };
    let tmp = path.with_extension("log.salvage-tmp");
    let mut f = std::fs::File::create(&tmp).map_err(err(&tmp))?;
    f.write_all(data).map_err(err(&tmp))?;
    f.sync_all().map_err(err(&tmp))?;
    let mut aside = path.with_extension("log.damaged");
    let mut k = 1;
    while aside.exists() {
        aside = path.with_extension(format!("log.damaged.{k}"));
        k += 1;
    }
    std::fs::rename(path, &aside).map_err(err(path))?;
    std::fs::rename(&tmp, path).map_err(err(path))?;
    Ok(())
}
