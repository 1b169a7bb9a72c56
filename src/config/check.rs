//! Checking a configuration text for every problem at once: TOML syntax,
//! unknown keys (with a "did you mean"), values of the wrong type, missing
//! keys, then `env:`/`file:` secret references that cannot be resolved
//! ([`super::secrets`]), and then the semantic checks of
//! [`Config::problems`] (on the resolved values). Each parse problem names
//! its line. `sluice check-config` prints the list;
//! [`Config::parse`] (and so `sluice run`) refuses a text with any.
//!
//! The TOML parser stops at its first error. To find the next one, the
//! lines of that error are commented out and the text is read again, at
//! most [`MAX_PARSE_PROBLEMS`] times; the semantic checks then run on what
//! could be read. A problem found after a line was set aside can be a
//! consequence of it (a bind whose only line was bad "has no binds"), which
//! is the usual price of reporting everything in one run.

use super::Config;
use super::keys;
use super::secrets::{self, SecretSource};

/// Most parse problems reported before giving up on the rest of the text.
pub const MAX_PARSE_PROBLEMS: usize = 50;

/// Parses and validates `text`; every problem found, in file order for
/// parse problems and then the semantic ones.
///
/// # Errors
/// The list of problems (never empty).
pub fn check(text: &str) -> Result<Config, Vec<String>> {
    check_with(text, &secrets::Process)
}

/// [`check`], with secret references read from `source`.
///
/// # Errors
/// The list of problems (never empty).
pub fn check_with(text: &str, source: &dyn SecretSource) -> Result<Config, Vec<String>> {
    let known = keys::known_keys();
    let mut current = text.to_owned();
    let mut problems: Vec<(usize, String)> = Vec::new();
    let mut config = None;
    for _ in 0..MAX_PARSE_PROBLEMS {
        let e = match toml::from_str::<Config>(&current) {
            Ok(c) => {
                config = Some(c);
                break;
            }
            Err(e) => e,
        };
        let Some(span) = e.span() else {
            problems.push((usize::MAX, e.message().to_owned()));
            break;
        };
        let line = line_of(&current, span.start);
        let table = table_at(&current, span.start);
        let mut problem = describe(e.message(), &table, &known);
        if let Some(key) =
            key_at(&current, span.start).filter(|_| !problem.starts_with("unknown key"))
        {
            problem = format!("{problem} (key `{}`)", join(&strip_index(&table), key));
        }
        problems.push((line, problem));
        if !comment_out(&mut current, span) {
            break;
        }
    }
    problems.sort_by_key(|(line, _)| *line);
    let mut out: Vec<String> = problems
        .into_iter()
        .map(|(line, p)| match line {
            usize::MAX => p,
            line => format!("line {line}: {p}"),
        })
        .collect();
    match config {
        Some(mut c) => {
            out.extend(secrets::resolve(&mut c, source));
            out.extend(c.problems());
            if out.is_empty() { Ok(c) } else { Err(out) }
        }
        None => {
            if out.is_empty() {
                out.push("the file could not be read as a configuration".into());
            }
            Err(out)
        }
    }
}

/// 1-based line of byte `offset`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = floor_char_boundary(text, offset);
    text[..end].bytes().filter(|&b| b == b'\n').count() + 1
}

fn floor_char_boundary(text: &str, offset: usize) -> usize {
    let mut i = offset.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The `[table]` or `[[array]]` header in force at `offset` ("" at the top).
fn table_at(text: &str, offset: usize) -> String {
    let end = floor_char_boundary(text, offset);
    text[..end]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| {
            let l = l.split('#').next().unwrap_or_default().trim();
            l.trim_start_matches('[')
                .trim_end_matches(']')
                .trim()
                .to_owned()
        })
        .unwrap_or_default()
}

/// The key assigned on the line of `offset` (`window` in `window = "big"`),
/// when that line is a plain `key = value`.
fn key_at(text: &str, offset: usize) -> Option<&str> {
    let at = floor_char_boundary(text, offset);
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?;
    let key = line.split_once('=')?.0.trim();
    let bare = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    (!key.is_empty() && key.chars().all(bare)).then_some(key)
}

/// Comments out every line the span touches; false when nothing changed
/// (nothing left to set aside).
fn comment_out(text: &mut String, span: std::ops::Range<usize>) -> bool {
    let start = floor_char_boundary(text, span.start);
    let end = floor_char_boundary(text, span.end.max(span.start + 1));
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[end.min(text.len())..]
        .find('\n')
        .map_or(text.len(), |i| end + i);
    let (before, rest) = text.split_at(line_start);
    let (middle, after) = rest.split_at(line_end - line_start);
    let commented: Vec<String> = middle
        .split('\n')
        .map(|l| {
            if l.trim_start().starts_with('#') || l.trim().is_empty() {
                l.to_owned()
            } else {
                format!("#{l}")
            }
        })
        .collect();
    let commented = commented.join("\n");
    if commented == middle {
        return false;
    }
    *text = format!("{before}{commented}{after}");
    true
}

/// The parser's message, with unknown keys explained: the full key, and the
/// closest key of the same table or the table that has a key of that name.
fn describe(message: &str, table: &str, known: &std::collections::BTreeSet<String>) -> String {
    let message = message.trim();
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_owned();
    };
    let Some((field, expected)) = rest.split_once('`') else {
        return message.to_owned();
    };
    let full = join(&strip_index(table), field);
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let near = candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(field, c), *c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| join(&strip_index(table), c));
    let elsewhere: Vec<&String> = known
        .iter()
        .filter(|k| k.rsplit('.').next() == Some(field) && **k != full)
        .collect();
    let hint = match (near, elsewhere.as_slice()) {
        (Some(k), _) => format!("; did you mean `{k}`?"),
        (None, [k, ..]) => format!("; did you mean `{k}`?"),
        (None, []) if !candidates.is_empty() => format!(
            "; keys here: {}",
            candidates
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        (None, []) => String::new(),
    };
    format!("unknown key `{full}`{hint}")
}

/// `carriers.binds` for the header `carriers.binds` (arrays of tables have
/// no index in key paths).
fn strip_index(table: &str) -> String {
    table
        .split('.')
        .map(|s| s.trim().trim_matches('"'))
        .collect::<Vec<_>>()
        .join(".")
}

fn join(table: &str, key: &str) -> String {
    if table.is_empty() {
        key.to_owned()
    } else {
        format!("{table}.{key}")
    }
}

#[cfg(test)]
mod tests;
