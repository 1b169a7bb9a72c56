//! MIME multipart (RFC 2046, RFC 2387 `multipart/related`) as MM7 uses it:
//! parsing of bodies that arrive (nested multiparts, base64 and
//! quoted-printable parts, several charsets) and a writer that lays a
//! message out in one preallocated buffer.
//!
//! # Decisions
//! - **Tolerant line ends**: delimiters and header blocks are found with
//!   CRLF or a bare LF (some MMSCs write LF), but what sluice writes is CRLF.
//! - **A missing close delimiter is an error** ([`MimeError::Truncated`]):
//!   a body cut short must not pass as a shorter message.
//! - **Parsed bodies share the input** (`Bytes::slice`) unless a transfer
//!   encoding forces a decode.
//! - **Limits**: at most [`MAX_PARTS`] parts per multipart and
//!   [`MAX_DEPTH`] levels of nesting.

use std::fmt::Write as _;

use bytes::{BufMut, Bytes, BytesMut};

use super::base64;

/// Most parts one multipart may hold.
pub const MAX_PARTS: usize = 1000;
/// Deepest nesting of multiparts followed.
pub const MAX_DEPTH: usize = 8;
/// Longest boundary accepted (RFC 2046 allows 70; some senders exceed it).
const MAX_BOUNDARY: usize = 200;

/// Why a MIME body does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MimeError {
    /// A multipart `Content-Type` without a usable `boundary` parameter.
    #[error("multipart content type without a boundary")]
    MissingBoundary,
    /// The body holds no delimiter line for the boundary.
    #[error("no MIME boundary line found")]
    BoundaryNotFound,
    /// The body ends before the close delimiter.
    #[error("MIME body truncated (no close delimiter)")]
    Truncated,
    /// A multipart without any part.
    #[error("multipart without parts")]
    NoParts,
    /// More than [`MAX_PARTS`] parts.
    #[error("more than {MAX_PARTS} MIME parts")]
    TooManyParts,
    /// Multiparts nested deeper than [`MAX_DEPTH`].
    #[error("MIME multiparts nested deeper than {MAX_DEPTH}")]
    TooDeep,
    /// A `Content-Transfer-Encoding` sluice does not decode.
    #[error("unsupported Content-Transfer-Encoding `{0}`")]
    UnsupportedEncoding(String),
    /// A base64 part that does not decode.
    #[error("invalid base64 in a MIME part")]
    BadBase64,
}

// === impl ContentType ===

/// A parsed `Content-Type` value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContentType {
    /// `type/subtype`, lowercased.
    pub mime: String,
    /// Parameters, names lowercased, values unquoted.
    pub params: Vec<(String, String)>,
}

impl ContentType {
    /// Parses `type/subtype; name=value; name="quoted; value"`. Never fails:
    /// junk gives an empty or odd `mime`.
    pub fn parse(s: &str) -> ContentType {
        let mut items = split_params(s).into_iter();
        let mime = items
            .next()
            .map(|m| m.trim().to_ascii_lowercase())
            .unwrap_or_default();
        let params = items
            .filter_map(|p| {
                let (name, value) = p.split_once('=')?;
                Some((name.trim().to_ascii_lowercase(), unquote(value.trim())))
            })
            .collect();
        ContentType { mime, params }
    }

    /// The value of parameter `name` (case-insensitive).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// True for `multipart/*`.
    pub fn is_multipart(&self) -> bool {
        self.mime.starts_with("multipart/")
    }
}

/// Splits at `;` outside double quotes.
fn split_params(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn unquote(v: &str) -> String {
    match v.strip_prefix('"') {
        Some(inner) => {
            let inner = inner.strip_suffix('"').unwrap_or(inner);
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        out.push(n);
                    }
                } else {
                    out.push(c);
                }
            }
            out
        }
        None => v.to_owned(),
    }
}

// === impl Part ===

/// One body part, its transfer encoding undone.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Part {
    /// Every header, names as written, values unfolded and trimmed.
    pub headers: Vec<(String, String)>,
    /// The body (decoded from base64 or quoted-printable when so encoded).
    pub body: Bytes,
}

impl Part {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The parsed `Content-Type`; `text/plain` when absent (RFC 2045).
    pub fn content_type(&self) -> ContentType {
        match self.header("content-type") {
            Some(ct) => ContentType::parse(ct),
            None => ContentType {
                mime: "text/plain".into(),
                params: Vec::new(),
            },
        }
    }

    /// The `Content-ID` without its angle brackets.
    pub fn content_id(&self) -> Option<&str> {
        self.header("content-id").map(strip_angles)
    }

    /// The `Content-Location`.
    pub fn content_location(&self) -> Option<&str> {
        self.header("content-location")
    }

    /// The body as text, decoded with the `charset` parameter: UTF-8 (the
    /// default; also US-ASCII), ISO-8859-1 / Windows-1252 (as Latin-1),
    /// UTF-16 / UCS-2 (BOM honoured, big-endian without one). Other charsets
    /// and invalid bytes decode lossily as UTF-8.
    pub fn text(&self) -> String {
        let charset = self
            .content_type()
            .param("charset")
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        decode_charset(&self.body, &charset)
    }
}

fn strip_angles(s: &str) -> &str {
    let s = s.trim();
    let s = s.strip_prefix('<').unwrap_or(s);
    s.strip_suffix('>').unwrap_or(s)
}

/// Decodes text bytes in `charset` (lowercase).
pub fn decode_charset(bytes: &[u8], charset: &str) -> String {
    match charset {
        "iso-8859-1" | "iso8859-1" | "latin1" | "latin-1" | "windows-1252" | "cp1252" => {
            bytes.iter().map(|&b| char::from(b)).collect()
        }
        "utf-16" | "utf-16be" | "utf-16le" | "ucs-2" | "iso-10646-ucs-2" | "unicode-1-1" => {
            let (le, body) = match bytes {
                [0xFF, 0xFE, rest @ ..] => (true, rest),
                [0xFE, 0xFF, rest @ ..] => (false, rest),
                _ => (charset == "utf-16le", bytes),
            };
            let units = body.chunks_exact(2).map(|c| {
                if le {
                    u16::from_le_bytes([c[0], c[1]])
                } else {
                    u16::from_be_bytes([c[0], c[1]])
                }
            });
            char::decode_utf16(units)
                .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect()
        }
        _ => {
            let b = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
            String::from_utf8_lossy(b).into_owned()
        }
    }
}

// === parsing ===

/// Finds `needle` in `hay` at or after `from`.
fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let first = *needle.first()?;
    let mut i = from;
    while i + needle.len() <= hay.len() {
        let off = hay[i..=hay.len() - needle.len()]
            .iter()
            .position(|&b| b == first)?;
        i += off;
        if &hay[i..i + needle.len()] == needle {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// The next delimiter line (`--boundary` at the start of a line, followed by
/// `--`, whitespace or a line end) at or after `from`.
fn find_delimiter(body: &[u8], delim: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    loop {
        let i = find(body, delim, at)?;
        let line_start = i == 0 || body[i - 1] == b'\n';
        let next = body.get(i + delim.len()).copied();
        let ends_well = matches!(next, None | Some(b'-' | b'\r' | b'\n' | b' ' | b'\t'));
        if line_start && ends_well {
            return Some(i);
        }
        at = i + 1;
    }
}

/// Parses the parts of a multipart body whose boundary is `boundary`.
///
/// # Errors
/// [`MimeError`] when the body does not parse; see the variants.
pub fn parse_multipart(body: &Bytes, boundary: &str) -> Result<Vec<Part>, MimeError> {
    if boundary.is_empty() || boundary.len() > MAX_BOUNDARY {
        return Err(MimeError::MissingBoundary);
    }
    let delim = format!("--{boundary}");
    let delim = delim.as_bytes();
    let mut pos = find_delimiter(body, delim, 0).ok_or(MimeError::BoundaryNotFound)?;
    let mut parts = Vec::new();
    loop {
        let after = pos + delim.len();
        if body[after..].starts_with(b"--") {
            return if parts.is_empty() {
                Err(MimeError::NoParts)
            } else {
                Ok(parts)
            };
        }
        let line_end = find(body, b"\n", after).ok_or(MimeError::Truncated)?;
        let start = line_end + 1;
        let next = find_delimiter(body, delim, start).ok_or(MimeError::Truncated)?;
        let mut end = next;
        if end > start && body[end - 1] == b'\n' {
            end -= 1;
            if end > start && body[end - 1] == b'\r' {
                end -= 1;
            }
        }
        if parts.len() == MAX_PARTS {
            return Err(MimeError::TooManyParts);
        }
        parts.push(parse_part(body.slice(start..end))?);
        pos = next;
    }
}

/// Splits one part into headers and body and undoes its transfer encoding.
fn parse_part(raw: Bytes) -> Result<Part, MimeError> {
    // The header block ends at the first empty line; a part starting with a
    // line end has no headers.
    let (head_end, body_start) = if raw.starts_with(b"\r\n") {
        (0, 2)
    } else if raw.starts_with(b"\n") {
        (0, 1)
    } else {
        let crlf = find(&raw, b"\r\n\r\n", 0).map(|i| (i, i + 4));
        let lf = find(&raw, b"\n\n", 0).map(|i| (i, i + 2));
        match (crlf, lf) {
            (Some(a), Some(b)) => {
                if a.0 <= b.0 {
                    a
                } else {
                    b
                }
            }
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => (raw.len(), raw.len()),
        }
    };
    let headers = parse_headers(&raw[..head_end]);
    let mut part = Part {
        headers,
        body: raw.slice(body_start..),
    };
    let cte = part
        .header("content-transfer-encoding")
        .map(|v| v.trim().to_ascii_lowercase());
    match cte.as_deref() {
        None | Some("" | "7bit" | "8bit" | "binary") => {}
        Some("base64") => {
            part.body = Bytes::from(base64::decode(&part.body).ok_or(MimeError::BadBase64)?);
        }
        Some("quoted-printable") => part.body = Bytes::from(decode_quoted_printable(&part.body)),
        Some(other) => return Err(MimeError::UnsupportedEncoding(other.to_owned())),
    }
    Ok(part)
}

/// Parses a header block: `Name: value` lines, continuation lines folded in.
/// Lines without a colon are skipped.
fn parse_headers(block: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(block);
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = headers.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    headers
}

/// Decodes quoted-printable (RFC 2045 §6.7); malformed escapes are kept as
/// written.
pub fn decode_quoted_printable(input: &[u8]) -> Vec<u8> {
    let hex = |c: u8| char::from(c).to_digit(16);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let c = input[i];
        if c != b'=' {
            out.push(c);
            i += 1;
            continue;
        }
        match (input.get(i + 1), input.get(i + 2)) {
            (Some(b'\r'), Some(b'\n')) => i += 3,
            (Some(b'\n'), _) => i += 2,
            (Some(&h), Some(&l)) => match (hex(h), hex(l)) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                }
                _ => {
                    out.push(b'=');
                    i += 1;
                }
            },
            _ => {
                out.push(b'=');
                i += 1;
            }
        }
    }
    out
}

/// The leaves of `part`: itself, or (for a multipart) the leaves of its
/// parts, in order.
///
/// # Errors
/// [`MimeError`] when a nested multipart does not parse or nests deeper than
/// [`MAX_DEPTH`].
pub fn leaves(part: Part) -> Result<Vec<Part>, MimeError> {
    let mut out = Vec::new();
    collect_leaves(part, 0, &mut out)?;
    Ok(out)
}

fn collect_leaves(part: Part, depth: usize, out: &mut Vec<Part>) -> Result<(), MimeError> {
    let ct = part.content_type();
    if !ct.is_multipart() {
        out.push(part);
        return Ok(());
    }
    if depth >= MAX_DEPTH {
        return Err(MimeError::TooDeep);
    }
    let boundary = ct.param("boundary").ok_or(MimeError::MissingBoundary)?;
    for p in parse_multipart(&part.body, boundary)? {
        collect_leaves(p, depth + 1, out)?;
        if out.len() > MAX_PARTS {
            return Err(MimeError::TooManyParts);
        }
    }
    Ok(())
}

/// The part an MM7 `href` refers to: `cid:` URLs (percent-decoded, RFC 2392)
/// match a `Content-ID`; anything else matches a `Content-Location` (or a
/// `Content-ID`).
pub fn find_part<'p>(parts: &'p [Part], href: &str) -> Option<&'p Part> {
    let href = href.trim();
    let cid = match href.get(..4) {
        Some(s) if s.eq_ignore_ascii_case("cid:") => Some(percent_decode(&href[4..])),
        _ => None,
    };
    match cid {
        Some(cid) => parts
            .iter()
            .find(|p| p.content_id() == Some(cid.as_str()))
            .or_else(|| {
                parts.iter().find(|p| {
                    p.content_id()
                        .is_some_and(|id| id.eq_ignore_ascii_case(&cid))
                })
            }),
        None => parts
            .iter()
            .find(|p| p.content_location() == Some(href))
            .or_else(|| parts.iter().find(|p| p.content_id() == Some(href))),
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|&c| char::from(c).to_digit(16)),
                b.get(i + 2).and_then(|&c| char::from(c).to_digit(16)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// === writing ===

/// A fresh boundary: `sluice-<tag>-<16 random hex digits>`. Tags must differ
/// between nesting levels so that no boundary is a prefix of another.
pub fn new_boundary(tag: &str) -> String {
    format!("sluice-{tag}-{:016x}", rand::random::<u64>())
}

/// The `Content-Transfer-Encoding` a body needs as it is (RFC 2045 §2.7 to
/// §2.9, no encoding applied).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TransferEncoding {
    /// US-ASCII lines of at most 998 octets, CR and LF only as CRLF, no
    /// NUL: the default when a part declares nothing.
    SevenBit,
    /// As 7bit, with octets above 127 (raw UTF-8).
    EightBit,
    /// Anything else: longer lines, bare CR or LF, NUL.
    Binary,
}

impl TransferEncoding {
    /// The header value.
    pub const fn as_str(self) -> &'static str {
        match self {
            TransferEncoding::SevenBit => "7bit",
            TransferEncoding::EightBit => "8bit",
            TransferEncoding::Binary => "binary",
        }
    }

    /// What `body` needs.
    pub fn of(body: &[u8]) -> TransferEncoding {
        let mut eight = false;
        let mut line = 0usize;
        let mut i = 0;
        while i < body.len() {
            match body[i] {
                0 | b'\n' => return TransferEncoding::Binary,
                b'\r' => {
                    if body.get(i + 1) != Some(&b'\n') {
                        return TransferEncoding::Binary;
                    }
                    line = 0;
                    i += 2;
                    continue;
                }
                b => eight |= b >= 0x80,
            }
            line += 1;
            if line > 998 {
                return TransferEncoding::Binary;
            }
            i += 1;
        }
        if eight {
            TransferEncoding::EightBit
        } else {
            TransferEncoding::SevenBit
        }
    }

    /// What a part declaring `header` (`None`: nothing, i.e. 7bit) may
    /// hold unencoded; `None` for base64, quoted-printable and unknown
    /// values.
    pub fn declared(header: Option<&str>) -> Option<TransferEncoding> {
        match header.map(|h| h.trim().to_ascii_lowercase()).as_deref() {
            None | Some("7bit") => Some(TransferEncoding::SevenBit),
            Some("8bit") => Some(TransferEncoding::EightBit),
            Some("binary") => Some(TransferEncoding::Binary),
            _ => None,
        }
    }
}

/// True when `body` contains `--boundary` anywhere (so the boundary cannot
/// be used around it).
pub fn collides(body: &[u8], boundary: &str) -> bool {
    let delim = format!("--{boundary}");
    find(body, delim.as_bytes(), 0).is_some()
}

/// A message laid out as a list of pieces, copied once into a buffer of the
/// exact size by [`Layout::finish`]. Borrowed pieces are not copied before
/// that.
#[derive(Debug, Default)]
pub struct Layout<'a> {
    pieces: Vec<Piece<'a>>,
    len: usize,
}

#[derive(Debug)]
enum Piece<'a> {
    Owned(String),
    Borrowed(&'a [u8]),
}

impl<'a> Layout<'a> {
    /// Appends text (headers, delimiters).
    pub fn text(&mut self, s: String) {
        self.len += s.len();
        self.pieces.push(Piece::Owned(s));
    }

    /// Appends a body without copying it yet.
    pub fn bytes(&mut self, b: &'a [u8]) {
        self.len += b.len();
        self.pieces.push(Piece::Borrowed(b));
    }

    /// Starts a part: the delimiter line, the headers and the empty line.
    pub fn begin_part(&mut self, boundary: &str, headers: &[(&str, &str)]) {
        let mut s = String::with_capacity(64 + boundary.len());
        let _ = write!(s, "--{boundary}\r\n");
        for (name, value) in headers {
            let _ = write!(s, "{name}: {value}\r\n");
        }
        s.push_str("\r\n");
        self.text(s);
    }

    /// Ends a part's body (the line end before the next delimiter).
    pub fn end_part(&mut self) {
        self.text("\r\n".to_owned());
    }

    /// The close delimiter.
    pub fn close(&mut self, boundary: &str) {
        self.text(format!("--{boundary}--\r\n"));
    }

    /// Length so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing was appended.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies every piece into one buffer of exactly [`Layout::len`] bytes.
    pub fn finish(self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.len);
        for p in &self.pieces {
            match p {
                Piece::Owned(s) => out.put_slice(s.as_bytes()),
                Piece::Borrowed(b) => out.put_slice(b),
            }
        }
        out.freeze()
    }
}
