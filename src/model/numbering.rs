//! The numbering plan behind recipient numbers: which country calling codes
//! exist, how many digits each plan's national numbers have, and how a
//! tenant's national numbers become E.164 (`default_country`).
//!
//! # Source
//! Google's libphonenumber metadata (`PhoneNumberMetadata.xml`), as embedded
//! by the [`phonenumber`] crate. It is the plan data Android and most
//! carriers' tooling use, it is updated with every libphonenumber release
//! (the crate's version carries the metadata version, `+9.0.33` today: a
//! `cargo update` brings new plans), and it is compiled into the binary, so
//! nothing is read from disk or the network at run time. Hand-written tables
//! rot silently; this one moves with upstream.
//!
//! Cost: the crate brings 22 crates the tree did not have (`regex-cache`,
//! `postcard`, `nom`, `strum`, a second `quick-xml`, …), all pure Rust from
//! crates.io; its build script turns the 1 MB XML into a 514 KiB table once
//! per clean build, and that table is what the binary carries. A clean-build
//! time was not measured (the shared 2-core machine was at load 10); the
//! lead's benchmark run is the place to weigh it. Loading the table happens
//! once, at start ([`warm`]).
//!
//! # Hot path
//! Admission runs at 100,000 messages per second, so `+E.164` input never
//! goes through `phonenumber`'s parser (regexes behind a process-wide lock).
//! A table is derived from the metadata once: for every calling code 1–999,
//! a bit mask of the national significant number lengths its plan allows
//! (the union over its regions and number types: fixed line, mobile, toll
//! free, …; local-only lengths excluded). [`parse_e164`] is a digit scan plus
//! at most three array lookups, no allocation. Only national input (a tenant
//! with `default_country`) pays for `phonenumber`'s parser (national and
//! trunk prefixes), and its result then passes the same table.
//!
//! What is checked is the country code and the length, not number ranges
//! within a plan (e.g. a NANP area code starting with 0): those patterns are
//! regexes per number type, too slow for every message, and carriers reject
//! such numbers themselves.

use std::fmt;
use std::sync::OnceLock;

use super::Msisdn;

/// Most characters of a national number accepted (digits and separators).
const MAX_NATIONAL_CHARS: usize = 32;

/// Why a recipient number is not accepted. The `Display` text is meant for
/// the upstream (the detail of a rejection).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NumberError {
    /// Nothing given.
    #[error("number is empty")]
    Empty,
    /// No leading `+` and no `default_country` to read it as national.
    #[error(
        "not in E.164 form: write '+', the country code and the number (e.g. +14155550100); \
         national numbers are accepted only when the tenant sets default_country"
    )]
    NotE164,
    /// Something other than digits after the `+` (spaces, dashes, brackets).
    #[error("only digits may follow '+' (no spaces, dashes or brackets)")]
    NotDigits,
    /// More than 15 digits.
    #[error("{0} digits; E.164 numbers have at most 15")]
    TooLong(usize),
    /// No country uses the calling code the number starts with.
    #[error("no country has a calling code that starts +{0}")]
    UnknownCountryCode(String),
    /// The country's plan has no numbers of this length.
    #[error("{national} digits after country code +{code} ({region}); that plan allows {allowed}")]
    Length {
        /// The calling code.
        code: u16,
        /// Its main region (ISO 3166 alpha-2, or "non-geographic").
        region: &'static str,
        /// Digits after the calling code.
        national: usize,
        /// The lengths allowed, e.g. "9 or 10".
        allowed: String,
    },
    /// A national number that cannot be read in the tenant's country.
    #[error("{input} is not a valid national number of {country}: {reason}")]
    National {
        /// The input, quoted and shortened.
        input: String,
        /// The tenant's `default_country`.
        country: Country,
        /// Why.
        reason: String,
    },
}

// === impl Country ===

/// A country (ISO 3166 alpha-2, as the numbering-plan metadata knows it),
/// for reading national numbers.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Country(phonenumber::country::Id);

impl std::str::FromStr for Country {
    type Err = String;

    /// Parses `"US"`, `"GB"`, … (case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.to_ascii_uppercase();
        let known = upper.len() == 2 && upper.bytes().all(|b| b.is_ascii_uppercase());
        let id = known
            .then(|| upper.parse::<phonenumber::country::Id>().ok())
            .flatten()
            .filter(|id| phonenumber::metadata::DATABASE.by_id(id.as_ref()).is_some());
        id.map(Country).ok_or_else(|| {
            format!(
                "{:?} is not an ISO 3166 alpha-2 country code with a numbering plan (e.g. \"US\", \"GB\")",
                shorten(s)
            )
        })
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_ref())
    }
}

impl fmt::Debug for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Country({})", self.0.as_ref())
    }
}

// === the plan table ===

#[derive(Clone, Copy, Default)]
struct Entry {
    /// Bit n set: national significant numbers of n digits exist.
    lengths: u32,
    /// Main region of the code ("" when the code is not assigned).
    region: &'static str,
}

struct Plan {
    codes: Box<[Entry]>,
}

fn plan() -> &'static Plan {
    static PLAN: OnceLock<Plan> = OnceLock::new();
    PLAN.get_or_init(build)
}

/// Builds the table from the metadata (once per process).
fn build() -> Plan {
    let mut codes = vec![Entry::default(); 1000].into_boxed_slice();
    let db: &'static phonenumber::metadata::Database = &phonenumber::metadata::DATABASE;
    // By code, not by region: the non-geographic entities (+800, +808, +870,
    // +88x, +979) all share the region id "001".
    for (code, entry) in codes.iter_mut().enumerate().skip(1) {
        for meta in db.by_code(&(code as u16)).unwrap_or_default() {
            add(entry, meta);
        }
    }
    Plan { codes }
}

/// Adds one region's lengths to its calling code's entry.
fn add(entry: &mut Entry, meta: &'static phonenumber::Metadata) {
    let d = meta.descriptors();
    let kinds = [
        Some(d.general()),
        d.fixed_line(),
        d.mobile(),
        d.toll_free(),
        d.premium_rate(),
        d.shared_cost(),
        d.personal_number(),
        d.voip(),
        d.pager(),
        d.uan(),
        d.voicemail(),
    ];
    for desc in kinds.into_iter().flatten() {
        for &len in desc.possible_length() {
            if len < 32 {
                entry.lengths |= 1 << len;
            }
        }
    }
    if entry.region.is_empty() || meta.is_main_country_for_code() {
        entry.region = match meta.id() {
            "001" => "non-geographic",
            id => id,
        };
    }
}

/// Loads the metadata and builds the table now, so the first message does
/// not pay for it.
pub fn warm() {
    let _ = plan();
}

// === parsing ===

/// Parses a recipient in strict E.164: `+`, then digits only, a calling code
/// some country uses, and a length that country's plan allows.
///
/// # Errors
/// [`NumberError`] says which rule the input breaks.
pub fn parse_e164(s: &str) -> Result<Msisdn, NumberError> {
    let Some(digits) = s.strip_prefix('+') else {
        return Err(if s.is_empty() {
            NumberError::Empty
        } else {
            NumberError::NotE164
        });
    };
    let b = digits.as_bytes();
    if b.is_empty() {
        return Err(NumberError::Empty);
    }
    if !b.iter().all(u8::is_ascii_digit) {
        return Err(NumberError::NotDigits);
    }
    if b.len() > Msisdn::MAX_DIGITS {
        return Err(NumberError::TooLong(b.len()));
    }
    let unknown = || NumberError::UnknownCountryCode(digits[..b.len().min(3)].to_owned());
    if b[0] == b'0' {
        return Err(unknown());
    }
    let plan = plan();
    let mut code = 0usize;
    let mut found = None;
    // Calling codes are prefix-free: the first prefix in use is the code.
    for (i, d) in b.iter().take(3).enumerate() {
        code = code * 10 + usize::from(d - b'0');
        if !plan.codes[code].region.is_empty() {
            found = Some((code, i + 1));
            break;
        }
    }
    let Some((code, code_len)) = found else {
        return Err(unknown());
    };
    let entry = plan.codes[code];
    let national = b.len() - code_len;
    if entry.lengths & (1 << national) == 0 {
        return Err(NumberError::Length {
            code: code as u16,
            region: entry.region,
            national,
            allowed: allowed(entry.lengths),
        });
    }
    let value = b.iter().fold(0u64, |v, d| v * 10 + u64::from(d - b'0'));
    Ok(Msisdn(value))
}

/// Parses a recipient: strict E.164 ([`parse_e164`]) when it starts with
/// `+`; otherwise a national number of `default_country` (digits with
/// optional spaces, dashes, dots or brackets; national and trunk prefixes
/// as that country dials them), normalised to E.164 and held to the same
/// plan. Without a `default_country` only E.164 is accepted.
///
/// # Errors
/// [`NumberError`] says why.
pub fn parse_recipient(s: &str, default_country: Option<Country>) -> Result<Msisdn, NumberError> {
    if s.starts_with('+') {
        return parse_e164(s);
    }
    match default_country {
        None if s.is_empty() => Err(NumberError::Empty),
        None => Err(NumberError::NotE164),
        Some(country) => parse_national(s, country),
    }
}

fn parse_national(s: &str, country: Country) -> Result<Msisdn, NumberError> {
    let fail = |reason: String| NumberError::National {
        input: format!("{:?}", shorten(s)),
        country,
        reason,
    };
    if s.trim().is_empty() {
        return Err(NumberError::Empty);
    }
    let allowed_chars = s
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b' ' | b'-' | b'.' | b'(' | b')'));
    if s.len() > MAX_NATIONAL_CHARS || !allowed_chars {
        return Err(fail(format!(
            "a national number is at most {MAX_NATIONAL_CHARS} digits, spaces, dashes, dots or brackets"
        )));
    }
    // A third-party parser on peer input: a panic in it must not end the
    // connection (its history has a few; the charset above rules out the
    // known ones).
    let parsed =
        std::panic::catch_unwind(|| phonenumber::parse(Some(country.0), s).map(|n| n.to_string()));
    let e164 = match parsed {
        Ok(Ok(e164)) => e164,
        Ok(Err(e)) => return Err(fail(e.to_string())),
        Err(_) => return Err(fail("cannot be read".into())),
    };
    parse_e164(&e164).map_err(|e| fail(format!("read as {e164}: {e}")))
}

/// "7", "9 or 10", "5, 6, 7 or 8".
fn allowed(mask: u32) -> String {
    let lens: Vec<String> = (0..32)
        .filter(|n| mask & (1 << n) != 0)
        .map(|n| n.to_string())
        .collect();
    match lens.split_last() {
        None => "no numbers".into(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// At most 24 characters of a peer-supplied string, for messages.
fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(24).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests;
