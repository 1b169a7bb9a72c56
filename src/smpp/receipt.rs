//! Delivery receipts: recognising a receipt `deliver_sm` and reading its
//! message id, state, error code and dates.
//!
//! This file owns the receipt formats: the TLVs `receipted_message_id`
//! (0x001E), `message_state` (0x0427) and `network_error_code` (0x0423), and
//! the text of SMPP 3.4 Appendix B, in `short_message` or, when that is empty,
//! in `message_payload`:
//!
//! ```text
//! id:IIII sub:001 dlvrd:001 submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DELIVRD err:000 text:...
//! ```
//!
//! Matching a receipt to its message (hex versus decimal ids, letter case,
//! leading zeros) is not done here: [`Receipt::message_id`] is the id as the
//! SMSC gave it, only trimmed.
//!
//! # Leniency
//! Keys are case-insensitive (`Text:`, `Stat:`), `_` stands for a space
//! (`submit_date:`), fields may come in any order, unknown fields are skipped,
//! dates are kept as given (10 or 12 digits), and `text:` may be missing. The
//! `text:` field, when present, runs to the end: fields after it are part of
//! the text. Parsing finds each field's range and slices the input [`Bytes`]
//! only for the fields a [`Receipt`] keeps; it allocates nothing per field
//! (only an unknown stat word from [`ReceiptState::from_stat_word`] is
//! copied).

use std::ops::Range;

use bytes::Bytes;

use super::pdu::{DeliverSm, tag};

#[cfg(test)]
mod tests;

/// `esm_class` message-type bits (5-2).
const ESM_MESSAGE_TYPE_MASK: u8 = 0x3C;
/// `esm_class` message type: SMSC delivery receipt.
pub const ESM_DELIVERY_RECEIPT: u8 = 0x04;
/// `esm_class` message type: intermediate delivery notification.
pub const ESM_INTERMEDIATE_NOTIFICATION: u8 = 0x20;

/// True when this deliver_sm is a delivery receipt: its esm_class message type
/// is "SMSC delivery receipt" (0x04) or "intermediate delivery notification"
/// (0x20; parsed the same way, but [`Receipt::intermediate`] is set).
pub fn is_receipt(sm: &DeliverSm) -> bool {
    matches!(
        sm.esm_class & ESM_MESSAGE_TYPE_MASK,
        ESM_DELIVERY_RECEIPT | ESM_INTERMEDIATE_NOTIFICATION
    )
}

// === impl ReceiptState ===

/// The state a receipt reports.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReceiptState {
    /// `ENROUTE` (1): on its way. Also the non-standard `ACKED` (acknowledged
    /// by the carrier), `BUFFRED` (buffered for a retry) and `SCHEDLD`.
    Enroute,
    /// `DELIVRD` (2): delivered to the handset.
    Delivered,
    /// `EXPIRED` (3): validity period ended before delivery.
    Expired,
    /// `DELETED` (4): deleted by the SMSC or on request.
    Deleted,
    /// `UNDELIV` (5): undeliverable. Also the non-standard `FAILED` and `SYSERR`.
    Undeliverable,
    /// `ACCEPTD` (6): accepted (see [`ReceiptState::is_final`]).
    Accepted,
    /// `UNKNOWN` (7): the SMSC does not know the outcome.
    Unknown,
    /// `REJECTD` (8): rejected.
    Rejected,
    /// `SKIPPED` (9, SMPP 5.0): accepted but never transmitted.
    Skipped,
    /// Any other stat word, as given.
    Other(Bytes),
}

impl ReceiptState {
    /// The state named by a `stat:` word, case-insensitively. Unknown words
    /// become [`ReceiptState::Other`] (a copy of `word`).
    pub fn from_stat_word(word: &[u8]) -> ReceiptState {
        Self::known_stat_word(word)
            .unwrap_or_else(|| ReceiptState::Other(Bytes::copy_from_slice(word)))
    }

    fn known_stat_word(word: &[u8]) -> Option<ReceiptState> {
        const WORDS: &[(&[u8], ReceiptState)] = &[
            (b"DELIVRD", ReceiptState::Delivered),
            (b"DELIVERED", ReceiptState::Delivered),
            (b"EXPIRED", ReceiptState::Expired),
            (b"DELETED", ReceiptState::Deleted),
            (b"UNDELIV", ReceiptState::Undeliverable),
            (b"UNDELIVERABLE", ReceiptState::Undeliverable),
            (b"FAILED", ReceiptState::Undeliverable),
            (b"SYSERR", ReceiptState::Undeliverable),
            (b"ACCEPTD", ReceiptState::Accepted),
            (b"ACCEPTED", ReceiptState::Accepted),
            (b"UNKNOWN", ReceiptState::Unknown),
            (b"REJECTD", ReceiptState::Rejected),
            (b"REJECTED", ReceiptState::Rejected),
            (b"ENROUTE", ReceiptState::Enroute),
            (b"ACKED", ReceiptState::Enroute),
            (b"BUFFRED", ReceiptState::Enroute),
            (b"BUFFERED", ReceiptState::Enroute),
            (b"SCHEDLD", ReceiptState::Enroute),
            (b"SKIPPED", ReceiptState::Skipped),
        ];
        WORDS
            .iter()
            .find(|(w, _)| w.eq_ignore_ascii_case(word))
            .map(|(_, state)| state.clone())
    }

    /// The state named by a `message_state` TLV value (§5.3.2.35): 1 ENROUTE
    /// … 8 REJECTED, and 9 SKIPPED from SMPP 5.0. `None` for anything else
    /// (0 is SMPP 5.0's SCHEDULED, which no receipt should carry).
    pub fn from_message_state(value: u8) -> Option<ReceiptState> {
        Some(match value {
            1 => ReceiptState::Enroute,
            2 => ReceiptState::Delivered,
            3 => ReceiptState::Expired,
            4 => ReceiptState::Deleted,
            5 => ReceiptState::Undeliverable,
            6 => ReceiptState::Accepted,
            7 => ReceiptState::Unknown,
            8 => ReceiptState::Rejected,
            9 => ReceiptState::Skipped,
            _ => return None,
        })
    }

    /// The standard 7-letter stat word (`DELIVRD`, ...); the word itself for
    /// [`ReceiptState::Other`].
    pub fn stat_word(&self) -> &[u8] {
        match self {
            ReceiptState::Enroute => b"ENROUTE",
            ReceiptState::Delivered => b"DELIVRD",
            ReceiptState::Expired => b"EXPIRED",
            ReceiptState::Deleted => b"DELETED",
            ReceiptState::Undeliverable => b"UNDELIV",
            ReceiptState::Accepted => b"ACCEPTD",
            ReceiptState::Unknown => b"UNKNOWN",
            ReceiptState::Rejected => b"REJECTD",
            ReceiptState::Skipped => b"SKIPPED",
            ReceiptState::Other(word) => word,
        }
    }

    /// True when no further receipt is expected for the message: Delivered,
    /// Expired, Deleted, Undeliverable, Unknown, Rejected, Skipped.
    ///
    /// **Departure from the spec:** `ACCEPTD` is final in SMPP 3.4 ("accepted
    /// on behalf of the subscriber by customer service"), but carriers and
    /// aggregators overwhelmingly use it for "accepted by the next hop" and
    /// send a DELIVRD or UNDELIV later; finishing a message early would drop
    /// that outcome, while waiting only costs the receipt timeout. Enroute and
    /// unknown words ([`ReceiptState::Other`]) are not final either.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            ReceiptState::Delivered
                | ReceiptState::Expired
                | ReceiptState::Deleted
                | ReceiptState::Undeliverable
                | ReceiptState::Unknown
                | ReceiptState::Rejected
                | ReceiptState::Skipped
        )
    }
}

// === impl Receipt ===

/// The `network_error_code` TLV (§5.3.2.31): network type (1 ANSI-136, 2
/// IS-95, 3 GSM, ...) and a network-specific error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NetworkError {
    /// Network type.
    pub network_type: u8,
    /// Error code, big-endian on the wire.
    pub error_code: u16,
}

impl NetworkError {
    /// Reads the 3-octet TLV value; `None` unless it is exactly 3 octets.
    pub fn from_tlv_value(value: &[u8]) -> Option<NetworkError> {
        match value {
            [network_type, hi, lo] => Some(NetworkError {
                network_type: *network_type,
                error_code: u16::from_be_bytes([*hi, *lo]),
            }),
            _ => None,
        }
    }
}

/// A parsed delivery receipt. Byte fields are slices of the deliver_sm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The SMSC message id the receipt is about, as given (TLV
    /// `receipted_message_id` first, else the text's `id:`), trimmed of
    /// whitespace and NULs.
    pub message_id: Bytes,
    /// The reported state (TLV `message_state` first, else `stat:`).
    pub state: ReceiptState,
    /// The error code: the `network_error_code` TLV's code when present, else
    /// the text's `err:` read as decimal, or as hex when it has hex letters
    /// (`00B`, `0x1F`). `None` when absent or unreadable.
    pub error_code: Option<u32>,
    /// The `err:` field exactly as given.
    pub err_raw: Option<Bytes>,
    /// The `network_error_code` TLV.
    pub network_error: Option<NetworkError>,
    /// `sub:`: number of messages originally submitted.
    pub submitted: Option<u32>,
    /// `dlvrd:`: number of messages delivered.
    pub delivered: Option<u32>,
    /// `submit date:` as given (`YYMMDDhhmm` or `YYMMDDhhmmss`).
    pub submit_date: Option<Bytes>,
    /// `done date:` as given.
    pub done_date: Option<Bytes>,
    /// `text:`: the start of the original message, as given.
    pub text: Option<Bytes>,
    /// True for an intermediate notification (esm_class 0x20): more receipts
    /// will follow whatever the state says.
    pub intermediate: bool,
}

impl Receipt {
    /// A receipt with only an id, a state and an error code (one passed on
    /// between the nodes of a cluster).
    pub fn bare(message_id: Bytes, state: ReceiptState, error_code: Option<u32>) -> Receipt {
        Receipt {
            message_id,
            state,
            error_code,
            err_raw: None,
            network_error: None,
            submitted: None,
            delivered: None,
            submit_date: None,
            done_date: None,
            text: None,
            intermediate: false,
        }
    }

    /// True when this receipt settles the message: not intermediate and a
    /// final state.
    pub fn is_final(&self) -> bool {
        !self.intermediate && self.state.is_final()
    }
}

/// Why a deliver_sm could not be read as a receipt. Returned by
/// [`parse_receipt`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// Neither a `receipted_message_id` TLV nor an `id:` field.
    #[error("receipt has no message id (no receipted_message_id TLV, no `id:` field)")]
    MissingId,
    /// Neither a valid `message_state` TLV nor a `stat:` field.
    #[error("receipt has no state (no valid message_state TLV, no `stat:` field)")]
    MissingState,
}

/// Reads a delivery receipt from a deliver_sm.
///
/// TLVs win over the text: `receipted_message_id` (0x001E), `message_state`
/// (0x0427, when 1..=9) and `network_error_code` (0x0423) are used when
/// present, and the text (`short_message`, or `message_payload` when
/// `short_message` is empty) fills in the rest. esm_class is not checked (call
/// [`is_receipt`] first; a session may also try this on esm_class 0 messages
/// from SMSCs known to mislabel receipts), except that 0x20 sets
/// [`Receipt::intermediate`].
///
/// # Errors
/// [`ReceiptError::MissingId`] or [`ReceiptError::MissingState`] when neither
/// the TLVs nor the text give the id or the state.
pub fn parse_receipt(sm: &DeliverSm) -> Result<Receipt, ReceiptError> {
    let text = if sm.short_message.is_empty() {
        sm.tlv(tag::MESSAGE_PAYLOAD)
            .map(|t| t.value.clone())
            .unwrap_or_default()
    } else {
        sm.short_message.clone()
    };
    let fields = TextFields::parse(&text);
    // A field kept in the receipt (a slice of `text`), or only read.
    let kept = |r: &Option<Range<usize>>| r.clone().map(|r| text.slice(r));
    let read = |r: &Option<Range<usize>>| r.clone().map(|r| &text[r]);

    let tlv_id = sm
        .tlv(tag::RECEIPTED_MESSAGE_ID)
        .map(|t| trim(&t.as_c_string()))
        .filter(|id| !id.is_empty());
    let message_id = tlv_id
        .or_else(|| {
            let id = read(&fields.id)?;
            let trimmed = trim_slice(id);
            // A slice of `text` at the trimmed field (one reference taken).
            let start = fields.id.as_ref()?.start + trim_start(id);
            (!trimmed.is_empty()).then(|| text.slice(start..start + trimmed.len()))
        })
        .ok_or(ReceiptError::MissingId)?;

    let tlv_state = sm
        .tlv(tag::MESSAGE_STATE)
        .and_then(|t| t.as_u8())
        .and_then(ReceiptState::from_message_state);
    let state = tlv_state
        .or_else(|| {
            let word = read(&fields.stat).filter(|w| !w.is_empty())?;
            Some(
                ReceiptState::known_stat_word(word)
                    .unwrap_or_else(|| ReceiptState::Other(kept(&fields.stat).unwrap_or_default())),
            )
        })
        .ok_or(ReceiptError::MissingState)?;

    let network_error = sm
        .tlv(tag::NETWORK_ERROR_CODE)
        .and_then(|t| NetworkError::from_tlv_value(&t.value));
    let error_code = network_error
        .map(|e| u32::from(e.error_code))
        .or_else(|| read(&fields.err).and_then(parse_err));

    Ok(Receipt {
        message_id,
        state,
        error_code,
        err_raw: kept(&fields.err),
        network_error,
        submitted: read(&fields.sub).and_then(parse_decimal),
        delivered: read(&fields.dlvrd).and_then(parse_decimal),
        submit_date: kept(&fields.submit_date),
        done_date: kept(&fields.done_date),
        text: kept(&fields.text),
        intermediate: sm.esm_class & ESM_MESSAGE_TYPE_MASK == ESM_INTERMEDIATE_NOTIFICATION,
    })
}

/// Formats receipt text in the SMPP 3.4 Appendix B layout, for the SMSC
/// simulator: `sub`, `dlvrd` and `err` as 3 digits (more if larger), `text`
/// cut to its first 20 characters as the spec says.
#[expect(
    clippy::too_many_arguments,
    reason = "one argument per Appendix B field keeps the call sites readable"
)]
pub fn format_receipt_text(
    id: &str,
    sub: u32,
    dlvrd: u32,
    submit_date: &str,
    done_date: &str,
    stat: &str,
    err: u32,
    text: &str,
) -> String {
    let text = match text.char_indices().nth(20) {
        Some((cut, _)) => &text[..cut],
        None => text,
    };
    format!(
        "id:{id} sub:{sub:03} dlvrd:{dlvrd:03} submit date:{submit_date} \
         done date:{done_date} stat:{stat} err:{err:03} text:{text}"
    )
}

/// A receipt's `submit date:` / `done date:`: `YYMMDDhhmm` in UTC.
pub fn receipt_date(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = crate::model::calendar::civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{:02}{m:02}{d:02}{:02}{:02}",
        y % 100,
        rem / 3600,
        rem % 3600 / 60
    )
}

/// A receipt's `text:`: the first 20 characters of `text`, keeping only
/// characters written the same in GSM 03.38 and ASCII; others become `?`.
pub fn receipt_snippet(text: &str) -> String {
    text.chars()
        .take(20)
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | ' ' => c,
            '!'..='?' if c != '$' => c,
            _ => '?',
        })
        .collect()
}

// === text parsing ===

/// For the fuzz target: true when the standard-layout reader, where it
/// answers, finds in `s` the ranges the general scan finds.
#[doc(hidden)]
pub fn fuzz_standard_layout_agrees(s: &[u8]) -> bool {
    TextFields::standard(s).is_none_or(|fields| fields == TextFields::scan(s))
}

/// The Appendix B fields found in a receipt text, as ranges of it.
#[derive(Debug, Default, PartialEq, Eq)]
struct TextFields {
    id: Option<Range<usize>>,
    sub: Option<Range<usize>>,
    dlvrd: Option<Range<usize>>,
    submit_date: Option<Range<usize>>,
    done_date: Option<Range<usize>>,
    stat: Option<Range<usize>>,
    err: Option<Range<usize>>,
    text: Option<Range<usize>>,
}

/// The Appendix B keys a receipt's fields are read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Id,
    Sub,
    Dlvrd,
    SubmitDate,
    DoneDate,
    Stat,
    Err,
    Text,
}

impl Key {
    /// The key `key` names (letter case ignored; a run of spaces, tabs or
    /// `_` between the words of a date key), if any. By length first: at
    /// most two keys are compared, and only the date keys take the slower
    /// comparison.
    fn of(key: &[u8]) -> Option<Key> {
        let is = |want: &[u8]| key.eq_ignore_ascii_case(want);
        Some(match key.len() {
            2 if is(b"id") => Key::Id,
            3 if is(b"sub") => Key::Sub,
            3 if is(b"err") => Key::Err,
            4 if is(b"stat") => Key::Stat,
            4 if is(b"text") => Key::Text,
            5 if is(b"dlvrd") => Key::Dlvrd,
            // Any length from there up: the run between the words.
            9.. if date_key(key, b"done") => Key::DoneDate,
            11.. if date_key(key, b"submit") => Key::SubmitDate,
            _ => return None,
        })
    }
}

/// True when `key` is `first`, a run of spaces, tabs or `_`, and `date`,
/// letter case ignored.
fn date_key(key: &[u8], first: &[u8]) -> bool {
    let Some(gap) = key.len().checked_sub(first.len() + 4) else {
        return false;
    };
    let (head, rest) = key.split_at(first.len());
    let (run, date) = rest.split_at(gap);
    gap > 0
        && head.eq_ignore_ascii_case(first)
        && date.eq_ignore_ascii_case(b"date")
        && run.iter().all(|b| matches!(b, b' ' | b'\t' | b'_'))
}

/// The keys of SMPP 3.4 Appendix B's layout in its order, each with the
/// space before it (the first has none): what nearly every SMSC sends.
const STANDARD_KEYS: [&[u8]; 7] = [
    b"id:",
    b" sub:",
    b" dlvrd:",
    b" submit date:",
    b" done date:",
    b" stat:",
    b" err:",
];

impl TextFields {
    /// The fields of `s`: [`TextFields::standard`] when `s` is in the
    /// standard layout, else [`TextFields::scan`] (both give the same
    /// ranges for a text in that layout; a test holds them to it).
    fn parse(s: &[u8]) -> TextFields {
        Self::standard(s).unwrap_or_else(|| Self::scan(s))
    }

    /// The fields of a text in Appendix B's layout exactly (keys in
    /// order and lower case, one space before each, `text:` last or
    /// missing); `None` for anything else. Each key is compared where it
    /// must be, and only the values are scanned ([`TextFields::scan`]
    /// finds each key by its colon and reads it back): `parse_receipt`
    /// went from 3,105 to 1,516 instructions per receipt (callgrind,
    /// `docs/PERFORMANCE.md`).
    fn standard(s: &[u8]) -> Option<TextFields> {
        let mut values = [(0, 0); STANDARD_KEYS.len()];
        let mut pos = 0;
        for (key, value) in STANDARD_KEYS.iter().zip(&mut values) {
            if !s[pos..].starts_with(key) {
                return None;
            }
            let start = pos + key.len();
            pos = s[start..]
                .iter()
                .position(|&b| is_space(b))
                .map_or(s.len(), |i| start + i);
            *value = (start, pos);
        }
        let text = match &s[pos..] {
            [] => None,
            rest if rest.starts_with(b" text:") => Some(pos + b" text:".len()..s.len()),
            _ => return None,
        };
        let [id, sub, dlvrd, submit_date, done_date, stat, err] = values.map(|(a, b)| Some(a..b));
        Some(TextFields {
            id,
            sub,
            dlvrd,
            submit_date,
            done_date,
            stat,
            err,
            text,
        })
    }

    /// Scans `key:value` pairs. A value runs to the next whitespace, except
    /// `text`'s, which runs to the end. A key is the last word before the
    /// colon, or the last two when the last is `date` (`submit date`). The
    /// first occurrence of a field wins. Fields are ranges of `s` (sliced
    /// only when the receipt keeps them).
    ///
    /// Each colon is found once; the bytes before it (only the key, in the
    /// standard layout) are read back to find its key, which is classified
    /// once; its value is read up to the next whitespace, where the search
    /// for the next colon starts.
    fn scan(s: &[u8]) -> TextFields {
        let mut fields = TextFields::default();
        let mut pos = 0;
        // The gaps between colons are a few bytes: `memchr` was no faster
        // here (3,129 against 3,118 instructions per receipt, callgrind on
        // `receipt/correlate`; its set-up was 19% of a `perf` profile of
        // `receipt/parse/text`).
        while let Some(colon) = s[pos..].iter().position(|&b| b == b':').map(|i| pos + i) {
            let start = colon + 1;
            let key = Key::of(key_before(&s[pos..colon]));
            if key == Some(Key::Text) {
                fields.text.get_or_insert(start..s.len());
                break;
            }
            let end = s[start..]
                .iter()
                .position(|&b| is_space(b))
                .map_or(s.len(), |i| start + i);
            let slot = match key {
                Some(Key::Id) => &mut fields.id,
                Some(Key::Sub) => &mut fields.sub,
                Some(Key::Dlvrd) => &mut fields.dlvrd,
                Some(Key::SubmitDate) => &mut fields.submit_date,
                Some(Key::DoneDate) => &mut fields.done_date,
                Some(Key::Stat) => &mut fields.stat,
                Some(Key::Err) => &mut fields.err,
                Some(Key::Text) | None => {
                    pos = end;
                    continue;
                }
            };
            slot.get_or_insert(start..end);
            pos = end;
        }
        fields
    }
}

fn is_space(b: u8) -> bool {
    b.is_ascii_whitespace() || b == 0
}

/// The key that ends `raw` (the text between the previous value and a colon):
/// its last word, or its last two words when the last one is `date`.
fn key_before(raw: &[u8]) -> &[u8] {
    let raw = trim_slice(raw);
    let word_start = |end: usize| {
        raw[..end]
            .iter()
            .rposition(|&b| is_space(b))
            .map_or(0, |i| i + 1)
    };
    let last = word_start(raw.len());
    if last > 0 && raw[last..].eq_ignore_ascii_case(b"date") {
        let before = trim_slice(&raw[..last]).len();
        return &raw[word_start(before)..];
    }
    &raw[last..]
}

/// How many bytes [`trim_slice`] drops from the front of `s`.
fn trim_start(s: &[u8]) -> usize {
    s.iter().position(|&b| !is_space(b)).unwrap_or(s.len())
}

fn trim_slice(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_space(b)).unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|&b| !is_space(b))
        .map_or(start, |i| i + 1);
    &s[start..end]
}

/// `b` without leading and trailing whitespace and NULs, as a slice.
fn trim(b: &Bytes) -> Bytes {
    let start = b.iter().position(|&c| !is_space(c)).unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|&c| !is_space(c))
        .map_or(start, |i| i + 1);
    b.slice(start..end)
}

fn parse_decimal(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u32, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u32::from(d - b'0'))
    })
}

/// `err:` as decimal digits, or as hex when it has a `0x` prefix or hex letters.
fn parse_err(raw: &[u8]) -> Option<u32> {
    if let Some(n) = parse_decimal(raw) {
        return Some(n);
    }
    let hex = match raw {
        [b'0', b'x' | b'X', rest @ ..] => rest,
        _ => raw,
    };
    if hex.is_empty() || !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    hex.iter().try_fold(0u32, |acc, &d| {
        let v = (d as char).to_digit(16)?;
        acc.checked_mul(16)?.checked_add(v)
    })
}
