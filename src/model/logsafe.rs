//! [`LogSafe`]: how a string that came from a peer (the network or a file)
//! is shown in a log line, so that it can neither forge a line nor flood one.
//!
//! The output is the value itself when it is short and made of plain
//! printable characters (`acme`, `+14155550100`, `café`); anything else is
//! quoted, with `\` `"` and every control, line-breaking, bidirectional or
//! invisible formatting character escaped (`"evil\n2025 INFO fake"`,
//! `"a b"`), so a forged newline never starts a new line and a forged
//! `key=value` never looks like a field. Past the cap (128 characters, 512
//! for [`LogSafe::display`]) the value is cut and the total size is said instead:
//! `"aaaa…(1048576 bytes)"`.
//!
//! Formatting writes straight into the formatter (no allocation), reads at
//! most the shown prefix of a string, and is the same for `Display` and
//! `Debug`, so `%field` and `?field` are both safe. Bytes that are not UTF-8
//! show as `\xNN`.

use std::fmt::{self, Write};

/// Characters shown before a value is cut.
pub const DEFAULT_CAP: usize = 128;

/// Characters of a displayed value (an error message, mostly ours with the
/// peer's input quoted in it) shown before it is cut.
pub const DISPLAY_CAP: usize = 512;

/// A peer-supplied value made safe for a log line (see the module doc).
///
/// ```
/// use sluice::model::LogSafe;
/// assert_eq!(LogSafe::new("acme").to_string(), "acme");
/// assert_eq!(LogSafe::new("x\nINFO fake").to_string(), r#""x\nINFO fake""#);
/// ```
#[derive(Clone, Copy)]
pub struct LogSafe<'a> {
    src: Source<'a>,
    cap: usize,
}

#[derive(Clone, Copy)]
enum Source<'a> {
    Str(&'a str),
    Bytes(&'a [u8]),
    Display(&'a dyn fmt::Display),
}

impl<'a> LogSafe<'a> {
    /// A string, cut at [`DEFAULT_CAP`] characters.
    pub fn new(s: &'a str) -> LogSafe<'a> {
        LogSafe {
            src: Source::Str(s),
            cap: DEFAULT_CAP,
        }
    }

    /// Bytes that should be text: UTF-8 runs show as text, other bytes as
    /// `\xNN`.
    pub fn bytes(b: &'a [u8]) -> LogSafe<'a> {
        LogSafe {
            src: Source::Bytes(b),
            cap: DEFAULT_CAP,
        }
    }

    /// Anything displayable whose text may hold peer input (an error that
    /// quotes what it could not parse), cut at [`DISPLAY_CAP`] characters.
    /// Formats it twice (once to measure), never into a buffer.
    pub fn display(d: &'a dyn fmt::Display) -> LogSafe<'a> {
        LogSafe {
            src: Source::Display(d),
            cap: DISPLAY_CAP,
        }
    }

    /// The same value cut at `cap` characters instead.
    pub fn with_cap(self, cap: usize) -> LogSafe<'a> {
        LogSafe { cap, ..self }
    }

    /// Feeds the value's characters to `sink` (invalid UTF-8 bytes as
    /// `Err(byte)`), stopping when it says so.
    fn each(&self, sink: &mut dyn Sink) -> fmt::Result {
        match self.src {
            Source::Str(s) => {
                for c in s.chars() {
                    if !sink.char(Ok(c))? {
                        break;
                    }
                }
                Ok(())
            }
            Source::Bytes(b) => {
                'outer: for chunk in b.utf8_chunks() {
                    for c in chunk.valid().chars() {
                        if !sink.char(Ok(c))? {
                            break 'outer;
                        }
                    }
                    for &byte in chunk.invalid() {
                        if !sink.char(Err(byte))? {
                            break 'outer;
                        }
                    }
                }
                Ok(())
            }
            Source::Display(d) => {
                let mut adapter = DisplaySink {
                    sink,
                    stopped: false,
                };
                // Stopping early shows up as an error from `write!`; an error
                // of the value's own is not worth failing a log line for.
                let _ = write!(adapter, "{d}");
                Ok(())
            }
        }
    }

    /// Total size in bytes, when it is known without reading everything.
    fn known_len(&self) -> Option<usize> {
        match self.src {
            Source::Str(s) => Some(s.len()),
            Source::Bytes(b) => Some(b.len()),
            Source::Display(_) => None,
        }
    }
}

/// Receives characters one at a time; `Ok(false)` stops the feed.
trait Sink {
    fn char(&mut self, c: Result<char, u8>) -> Result<bool, fmt::Error>;
}

/// Turns a `Display` implementation's output into [`Sink`] calls.
struct DisplaySink<'s> {
    sink: &'s mut dyn Sink,
    stopped: bool,
}

impl Write for DisplaySink<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.stopped {
            return Err(fmt::Error);
        }
        for c in s.chars() {
            if !self.sink.char(Ok(c))? {
                self.stopped = true;
                return Err(fmt::Error);
            }
        }
        Ok(())
    }
}

/// First pass: does the shown prefix need quoting, is the value cut, and
/// how long is it?
struct Measure {
    cap: usize,
    chars: usize,
    bytes: usize,
    quote: bool,
    /// Keep counting bytes past the cap (only when the length is unknown).
    count_all: bool,
}

impl Sink for Measure {
    fn char(&mut self, c: Result<char, u8>) -> Result<bool, fmt::Error> {
        self.chars += 1;
        self.bytes += c.map_or(1, char::len_utf8);
        if self.chars <= self.cap {
            self.quote |= match c {
                Ok(c) => !is_bare(c),
                Err(_) => true,
            };
            Ok(true)
        } else {
            Ok(self.count_all)
        }
    }
}

/// Second pass: writes the first `cap` characters, escaped.
struct Emit<'f, 'b> {
    f: &'f mut fmt::Formatter<'b>,
    left: usize,
}

impl Sink for Emit<'_, '_> {
    fn char(&mut self, c: Result<char, u8>) -> Result<bool, fmt::Error> {
        if self.left == 0 {
            return Ok(false);
        }
        self.left -= 1;
        match c {
            Ok(c) => escape(self.f, c)?,
            Err(byte) => write!(self.f, "\\x{byte:02x}")?,
        }
        Ok(self.left > 0)
    }
}

/// Shown as is, unquoted, when every character of the value is one of these.
fn is_bare(c: char) -> bool {
    !(c.is_whitespace() || c == '"' || c == '\\' || c == '=' || needs_escape(c))
}

/// Characters never written as themselves.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c,
            // Line and paragraph separators: new lines to many viewers.
            '\u{2028}' | '\u{2029}'
            // Bidirectional controls: reorder what the reader sees.
            | '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
            // Invisible: zero-width characters, word joiner, BOM, annotations.
            | '\u{00AD}' | '\u{200B}'..='\u{200D}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}')
}

fn escape(f: &mut fmt::Formatter<'_>, c: char) -> fmt::Result {
    match c {
        '\\' => f.write_str("\\\\"),
        '"' => f.write_str("\\\""),
        '\n' => f.write_str("\\n"),
        '\r' => f.write_str("\\r"),
        '\t' => f.write_str("\\t"),
        c if needs_escape(c) => write!(f, "\\u{{{:x}}}", u32::from(c)),
        c => f.write_char(c),
    }
}

impl fmt::Display for LogSafe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let known = self.known_len();
        let mut m = Measure {
            cap: self.cap,
            chars: 0,
            bytes: 0,
            quote: false,
            count_all: known.is_none(),
        };
        self.each(&mut m)?;
        let cut = m.chars > self.cap;
        let quote = m.quote || cut || m.chars == 0;
        if quote {
            f.write_char('"')?;
        }
        self.each(&mut Emit { f, left: self.cap })?;
        if cut {
            write!(f, "…({} bytes)", known.unwrap_or(m.bytes))?;
        }
        if quote {
            f.write_char('"')?;
        }
        Ok(())
    }
}

impl fmt::Debug for LogSafe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
pub(crate) mod capture;
#[cfg(test)]
mod tests;
