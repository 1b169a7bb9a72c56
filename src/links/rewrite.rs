//! Finding the links in a message text and making room for their short
//! forms: [`plan`] replaces each `http://` or `https://` URL with
//! `<base>/` and a placeholder code of [`CODE_CHARS`] characters, and says
//! where each placeholder sits, so admission can check the text's length
//! as it will be sent before any link is stored; [`fill`] writes the real
//! codes in once the message is accepted.
//!
//! A URL starts at `http://` or `https://` (any case) not preceded by a
//! letter or digit, and runs to the first whitespace, control character,
//! `<`, `>` or `"`. Trailing `.,;:!?'` and an unmatched closing `)` or `]`
//! are prose, not URL ("Shop https://acme.example/sale."). Links already
//! under the base are left alone (a text shortened twice stays the same),
//! and so are URLs longer than [`MAX_URL`] bytes; at most [`MAX_LINKS`] are
//! tracked per message. Bare domains (`acme.example/sale`) are not links
//! here: whether a handset makes them clickable varies.

use super::code::CODE_CHARS;

/// Links tracked in one message at most (the rest are left as written).
pub const MAX_LINKS: usize = 16;
/// Longest URL tracked, bytes.
pub const MAX_URL: usize = 2048;

/// A link to store: where its code goes in the planned text, and the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// Byte offset of the placeholder code in [`Plan::text`].
    pub at: usize,
    /// The original URL, as written.
    pub url: String,
}

/// A text with its links replaced by placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The text as it will be sent, placeholders in place of codes.
    pub text: String,
    /// The links, in text order.
    pub links: Vec<Planned>,
}

/// `text` with its links under `base` (no trailing `/`), or `None` when it
/// has none to track.
pub fn plan(text: &str, base: &str) -> Option<Plan> {
    let base = base.trim_end_matches('/');
    let mut out = String::new();
    let mut links = Vec::new();
    let mut copied = 0;
    let mut from = 0;
    while links.len() < MAX_LINKS {
        let Some((start, end)) = next_url(text, from) else {
            break;
        };
        from = end;
        let url = &text[start..end];
        let ours = url
            .get(..base.len() + 1)
            .is_some_and(|p| p.eq_ignore_ascii_case(&format!("{base}/")));
        if url.len() > MAX_URL || ours {
            continue;
        }
        if out.capacity() == 0 {
            out.reserve(text.len() + 64);
        }
        out.push_str(&text[copied..start]);
        out.push_str(base);
        out.push('/');
        links.push(Planned {
            at: out.len(),
            url: url.to_owned(),
        });
        out.extend(std::iter::repeat_n('0', CODE_CHARS));
        copied = end;
    }
    if links.is_empty() {
        return None;
    }
    out.push_str(&text[copied..]);
    Some(Plan { text: out, links })
}

/// Writes `code` over the placeholder at byte `at` of `text` (a
/// [`Plan`]'s). False, leaving the text alone, when there is no
/// placeholder there.
pub fn fill(text: &mut String, at: usize, code: &[u8; CODE_CHARS]) -> bool {
    let Ok(code) = std::str::from_utf8(code) else {
        return false;
    };
    match text.get(at..at + CODE_CHARS) {
        Some(p) if p.bytes().all(|b| b == b'0') => {
            text.replace_range(at..at + CODE_CHARS, code);
            true
        }
        _ => false,
    }
}

/// The byte range of the next URL at or after `from`.
fn next_url(text: &str, mut from: usize) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    loop {
        let rel = find_scheme(&bytes[from..])?;
        let start = from + rel;
        let scheme = if bytes[start + 4].eq_ignore_ascii_case(&b's') {
            8
        } else {
            7
        };
        from = start + scheme;
        let preceded = start > 0 && bytes[start - 1].is_ascii_alphanumeric();
        if preceded {
            continue;
        }
        let mut end = start + scheme;
        for (i, c) in text[end..].char_indices() {
            if c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"') {
                end = start + scheme + i;
                break;
            }
            end = start + scheme + i + c.len_utf8();
        }
        let end = trim_prose(text, start, end);
        if end > start + scheme {
            return Some((start, end));
        }
    }
}

/// Offset of the next `http://` or `https://` (any case) in `b`.
fn find_scheme(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i + 7 <= b.len() {
        let rest = &b[i..];
        if rest[..4].eq_ignore_ascii_case(b"http") {
            if rest[4..].starts_with(b"://") {
                return Some(i);
            }
            if rest.len() >= 8
                && rest[4].eq_ignore_ascii_case(&b's')
                && rest[5..].starts_with(b"://")
            {
                return Some(i);
            }
        }
        i += 1;
    }
    None
}

/// `end` moved back over trailing punctuation that belongs to the prose
/// (brackets counted once: linear in the URL's length).
fn trim_prose(text: &str, start: usize, mut end: usize) -> usize {
    let url = &text[start..end];
    let count = |c: char| url.bytes().filter(|&b| b == c as u8).count();
    // Closing brackets in excess of opening ones, as the end moves back.
    let mut paren = count(')') as isize - count('(') as isize;
    let mut square = count(']') as isize - count('[') as isize;
    while let Some(last) = text[start..end].chars().next_back() {
        let prose = match last {
            '.' | ',' | ';' | ':' | '!' | '?' | '\'' => true,
            ')' if paren > 0 => {
                paren -= 1;
                true
            }
            ']' if square > 0 => {
                square -= 1;
                true
            }
            _ => false,
        };
        if !prose {
            break;
        }
        end -= last.len_utf8();
    }
    end
}
