//! CSV import and export of suppression lists.
//!
//! # Import format
//! One row per line: `number[,scope]`.
//! - **Numbers are strict E.164**: surrounding whitespace is trimmed, then
//!   [`Msisdn::parse`] decides (digits with an optional leading `+`, 7 to 15
//!   digits, no leading 0). Spaces, dashes, dots and parentheses inside a
//!   number are refused rather than stripped: a formatted number such as
//!   `(415) 555-0100` usually lacks its country code, and guessing one would
//!   suppress somebody else. Spreadsheet forms (`1.41555E+10`) are refused.
//! - **Scope** (optional second column) is returned as written, trimmed; an
//!   empty or missing scope is `None` (the caller's default scope). The
//!   caller maps scope names to its programs and should reject unknown ones.
//! - **Header**: the first non-blank line is taken as a header when none of
//!   its fields holds a digit (`number,scope`, `MSISDN`, `phone`); it is
//!   reported in [`ImportReport::header`].
//! - Blank lines are skipped; `\r\n` and a UTF-8 byte-order mark are fine;
//!   trailing empty fields (`+14155550100,,`) are ignored; more than two
//!   non-empty columns is a bad row.
//! - Fields may be quoted (`"+14155550100","program ""a"""`).
//!
//! **(departure)** Rows are read line by line with a small quote-aware
//! splitter instead of the `csv` crate's reader: a quoted field may not span
//! lines, so an unbalanced quote is a bad row *on its own line* (the `csv`
//! reader would silently swallow the rest of the file into one field), and
//! invalid UTF-8 and over-long lines are reported with their exact line
//! number. Export uses the `csv` writer.
//!
//! Bad rows are collected as `(line, raw, reason)`, at most
//! [`ImportOptions::max_bad_rows`] of them (all are counted). Reading is
//! streaming: [`CsvImport`] is an iterator, and [`read_all`] calls a progress
//! callback every [`ImportOptions::progress_every`] lines.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, BufRead, Write};
use std::ops::Range;

use crate::model::{Msisdn, MsisdnError};

use super::set::{ScopeId, SuppressionSet};

/// How much of a bad line is kept in [`BadRow::raw`] (characters).
const RAW_CHARS: usize = 200;

/// Limits and progress reporting of an import.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// Most bad rows kept in the report (all are counted).
    ///
    /// # Defaults
    /// 1,000.
    pub max_bad_rows: usize,
    /// Longest line accepted, in bytes; longer lines are bad rows and are
    /// skipped without being buffered.
    ///
    /// # Defaults
    /// 4,096.
    pub max_line_bytes: usize,
    /// [`read_all`] calls its progress callback every this many lines.
    ///
    /// # Defaults
    /// 100,000.
    pub progress_every: u64,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            max_bad_rows: 1_000,
            max_line_bytes: 4_096,
            progress_every: 100_000,
        }
    }
}

/// A good row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// Line number, from 1.
    pub line: u64,
    /// The number.
    pub number: Msisdn,
    /// The scope column, if present and not empty.
    pub scope: Option<String>,
}

/// Why a row was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BadReason {
    /// The number column is not an E.164 number.
    #[error("bad number: {0}")]
    Number(#[from] MsisdnError),
    /// The line is not valid UTF-8.
    #[error("line is not valid UTF-8")]
    InvalidUtf8,
    /// A quoted field has no closing quote on its line.
    #[error("unbalanced quote")]
    UnbalancedQuote,
    /// Text between a closing quote and the next comma.
    #[error("text after a closing quote")]
    TextAfterQuote,
    /// More than two non-empty columns.
    #[error("{0} columns; expected number[,scope]")]
    TooManyColumns(usize),
    /// The line is longer than [`ImportOptions::max_line_bytes`].
    #[error("line of {0} bytes is too long")]
    LineTooLong(usize),
}

/// A refused row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRow {
    /// Line number, from 1.
    pub line: u64,
    /// The line as read (lossy UTF-8, at most 200 characters).
    pub raw: String,
    /// What is wrong with it.
    pub reason: BadReason,
}

impl fmt::Display for BadRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {} ({:?})", self.line, self.reason, self.raw)
    }
}

/// One row of an import, good or bad.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A usable row.
    Row(Row),
    /// A refused row.
    Bad(BadRow),
}

/// Counters handed to the progress callback of [`read_all`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Lines read.
    pub lines: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Good rows.
    pub rows: u64,
    /// Bad rows.
    pub bad: u64,
}

/// What a whole import produced.
#[derive(Clone, Debug, Default)]
pub struct ImportReport {
    /// Numbers of rows without a scope column, in file order (duplicates kept).
    pub unscoped: Vec<Msisdn>,
    /// Numbers per scope name, in file order (duplicates kept).
    pub scoped: BTreeMap<String, Vec<Msisdn>>,
    /// The header line's fields, if the first line was a header.
    pub header: Option<Vec<String>>,
    /// Bad rows, the first [`ImportOptions::max_bad_rows`].
    pub bad: Vec<BadRow>,
    /// Final counters (`bad` counts every bad row, kept or not).
    pub progress: Progress,
}

// === impl CsvImport ===

/// Streaming reader of an import file: an iterator of [`Parsed`] rows.
///
/// Yields `Err` once for an I/O error of the underlying reader, then ends.
#[derive(Debug)]
pub struct CsvImport<R> {
    reader: R,
    opts: ImportOptions,
    line_no: u64,
    bytes: u64,
    /// The current line (without its line ending).
    line: Vec<u8>,
    /// Unescaped field contents of the current line, and their ranges.
    text: String,
    fields: Vec<Range<usize>>,
    seen_content: bool,
    header: Option<Vec<String>>,
    done: bool,
}

/// A row whose scope is a range of the reader's `text` buffer.
enum RowRef {
    Row(Msisdn, Option<Range<usize>>),
    Bad(BadReason),
}

enum Line {
    Eof,
    Ok,
    TooLong(usize),
}

impl<R: BufRead> CsvImport<R> {
    /// Reads `reader` with the default [`ImportOptions`].
    pub fn new(reader: R) -> Self {
        Self::with_options(reader, ImportOptions::default())
    }

    /// Reads `reader`.
    pub fn with_options(reader: R, opts: ImportOptions) -> Self {
        CsvImport {
            reader,
            opts,
            line_no: 0,
            bytes: 0,
            line: Vec::new(),
            text: String::new(),
            fields: Vec::new(),
            seen_content: false,
            header: None,
            done: false,
        }
    }

    /// Lines read so far.
    pub fn lines_read(&self) -> u64 {
        self.line_no
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// The header, once the first non-blank line has been read.
    pub fn header(&self) -> Option<&[String]> {
        self.header.as_deref()
    }

    /// Reads one line into `self.line`, keeping at most `max_line_bytes`.
    fn read_line(&mut self) -> io::Result<Line> {
        self.line.clear();
        let max = self.opts.max_line_bytes;
        let mut total = 0usize;
        let mut any = false;
        loop {
            let avail = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if avail.is_empty() {
                break;
            }
            any = true;
            let (chunk, used, end) = match avail.iter().position(|&b| b == b'\n') {
                Some(i) => (&avail[..i], i + 1, true),
                None => (avail, avail.len(), false),
            };
            total += chunk.len();
            if self.line.len() < max {
                let room = max - self.line.len();
                self.line.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            self.reader.consume(used);
            self.bytes += used as u64;
            if end {
                break;
            }
        }
        if !any {
            return Ok(Line::Eof);
        }
        self.line_no += 1;
        if self.line.last() == Some(&b'\r') && total <= max {
            self.line.pop();
            total -= 1;
        }
        if total > max {
            return Ok(Line::TooLong(total));
        }
        Ok(Line::Ok)
    }

    /// The next non-blank, non-header line, parsed; a scope is returned as a
    /// range of `self.text`.
    fn next_ref(&mut self) -> io::Result<Option<RowRef>> {
        loop {
            let too_long = match self.read_line()? {
                Line::Eof => return Ok(None),
                Line::Ok => None,
                Line::TooLong(n) => Some(n),
            };
            if self.line_no == 1 && self.line.starts_with(b"\xEF\xBB\xBF") {
                self.line.drain(..3);
            }
            if let Some(n) = too_long {
                self.seen_content = true;
                return Ok(Some(RowRef::Bad(BadReason::LineTooLong(n))));
            }
            let Ok(line) = std::str::from_utf8(&self.line) else {
                self.seen_content = true;
                return Ok(Some(RowRef::Bad(BadReason::InvalidUtf8)));
            };
            if line.trim().is_empty() {
                continue;
            }
            let first = !self.seen_content;
            self.seen_content = true;
            if let Err(reason) = split(line, &mut self.text, &mut self.fields) {
                return Ok(Some(RowRef::Bad(reason)));
            }
            let field = |i: usize| self.fields.get(i).map_or("", |r| &self.text[r.clone()]);
            if first && !self.text.bytes().any(|b| b.is_ascii_digit()) {
                let header = (0..self.fields.len())
                    .map(|i| field(i).to_owned())
                    .collect();
                self.header = Some(header);
                continue;
            }
            let used = (0..self.fields.len())
                .rposition(|i| !field(i).is_empty())
                .map_or(0, |i| i + 1);
            if used > 2 {
                return Ok(Some(RowRef::Bad(BadReason::TooManyColumns(used))));
            }
            let number = match Msisdn::parse(field(0)) {
                Ok(n) => n,
                Err(e) => return Ok(Some(RowRef::Bad(e.into()))),
            };
            let scope = self.fields.get(1).filter(|r| !r.is_empty()).cloned();
            return Ok(Some(RowRef::Row(number, scope)));
        }
    }

    fn bad_row(&self, reason: BadReason) -> BadRow {
        let lossy = String::from_utf8_lossy(&self.line);
        let raw = match lossy.char_indices().nth(RAW_CHARS) {
            Some((i, _)) => lossy[..i].to_owned(),
            None => lossy.into_owned(),
        };
        BadRow {
            line: self.line_no,
            raw,
            reason,
        }
    }
}

impl<R: BufRead> Iterator for CsvImport<R> {
    type Item = io::Result<Parsed>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let parsed = match self.next_ref() {
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
            Ok(None) => {
                self.done = true;
                return None;
            }
            Ok(Some(RowRef::Row(number, scope))) => {
                Ok((number, scope.map(|r| self.text[r].to_owned())))
            }
            Ok(Some(RowRef::Bad(reason))) => Err(reason),
        };
        Some(Ok(match parsed {
            Ok((number, scope)) => Parsed::Row(Row {
                line: self.line_no,
                number,
                scope,
            }),
            Err(reason) => Parsed::Bad(self.bad_row(reason)),
        }))
    }
}

/// Reads a whole import, grouping numbers by scope, calling `progress`
/// every [`ImportOptions::progress_every`] lines and once at the end.
///
/// # Errors
/// An I/O error of `reader`; malformed content is never an error, it is
/// reported in [`ImportReport::bad`].
pub fn read_all<R: BufRead>(
    reader: R,
    opts: ImportOptions,
    mut progress: impl FnMut(Progress),
) -> io::Result<ImportReport> {
    let every = opts.progress_every.max(1);
    let max_bad = opts.max_bad_rows;
    let mut imp = CsvImport::with_options(reader, opts);
    let mut report = ImportReport::default();
    let mut p = Progress::default();
    let mut next_tick = every;
    loop {
        let bad = match imp.next_ref()? {
            None => break,
            Some(RowRef::Row(number, None)) => {
                report.unscoped.push(number);
                None
            }
            Some(RowRef::Row(number, Some(range))) => {
                let scope = &imp.text[range];
                match report.scoped.get_mut(scope) {
                    Some(v) => v.push(number),
                    None => {
                        report.scoped.insert(scope.to_owned(), vec![number]);
                    }
                }
                None
            }
            Some(RowRef::Bad(reason)) => Some(reason),
        };
        match bad {
            None => p.rows += 1,
            Some(reason) => {
                p.bad += 1;
                if report.bad.len() < max_bad {
                    report.bad.push(imp.bad_row(reason));
                }
            }
        }
        if imp.lines_read() >= next_tick {
            p.lines = imp.lines_read();
            p.bytes = imp.bytes_read();
            progress(p);
            next_tick = (imp.lines_read() / every + 1) * every;
        }
    }
    p.lines = imp.lines_read();
    p.bytes = imp.bytes_read();
    progress(p);
    report.progress = p;
    report.header = imp.header;
    Ok(report)
}

/// Splits a line into trimmed fields: their text goes to `text`, their
/// ranges to `fields`. A quoted field may hold commas and `""` for a quote.
fn split(line: &str, text: &mut String, fields: &mut Vec<Range<usize>>) -> Result<(), BadReason> {
    text.clear();
    fields.clear();
    let mut rest = line;
    loop {
        let start = text.len();
        let trimmed = rest.trim_start();
        let next = if let Some(quoted) = trimmed.strip_prefix('"') {
            let mut chars = quoted.char_indices();
            let after = loop {
                match chars.next() {
                    None => return Err(BadReason::UnbalancedQuote),
                    Some((i, '"')) => {
                        if quoted[i + 1..].starts_with('"') {
                            text.push('"');
                            chars.next();
                        } else {
                            break quoted[i + 1..].trim_start();
                        }
                    }
                    Some((_, c)) => text.push(c),
                }
            };
            match after.strip_prefix(',') {
                Some(next) => Some(next),
                None if after.is_empty() => None,
                None => return Err(BadReason::TextAfterQuote),
            }
        } else {
            let (field, next) = match rest.split_once(',') {
                Some((field, next)) => (field, Some(next)),
                None => (rest, None),
            };
            text.push_str(field);
            next
        };
        let s = &text[start..];
        let lead = s.len() - s.trim_start().len();
        let end = start + s.trim_end().len();
        fields.push((start + lead).min(end)..end);
        match next {
            Some(n) => rest = n,
            None => return Ok(()),
        }
    }
}

// === export ===

/// Writes `number,scope` CSV (with that header): numbers as `+E.164`, scope
/// names quoted where CSV needs it. Returns the number of rows written.
///
/// # Errors
/// An I/O error of `w`.
pub fn export<W, S>(w: W, rows: impl IntoIterator<Item = (Msisdn, S)>) -> io::Result<u64>
where
    W: Write,
    S: AsRef<str>,
{
    let mut out = csv::Writer::from_writer(w);
    out.write_record(["number", "scope"])?;
    let mut num = String::with_capacity(16);
    let mut n = 0;
    for (number, scope) in rows {
        num.clear();
        fmt::Write::write_fmt(&mut num, format_args!("{number}")).map_err(io::Error::other)?;
        out.write_record([num.as_str(), scope.as_ref()])?;
        n += 1;
    }
    out.flush()?;
    Ok(n)
}

/// Exports one scope of a set under its interned name (see
/// [`SuppressionSet::iter_scope`] for consistency and order).
///
/// # Errors
/// An I/O error of `w`.
pub fn export_scope<W: Write>(set: &SuppressionSet, scope: ScopeId, w: W) -> io::Result<u64> {
    let name = set.scope_name(scope).unwrap_or_default();
    export(w, set.iter_scope(scope).map(|n| (n, &*name)))
}

#[cfg(test)]
mod tests;
