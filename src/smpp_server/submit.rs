//! From an upstream's `submit_sm` / `data_sm` to a [`Submission`]: its
//! addresses, its validity, its receipt request, the status each refusal
//! is answered with, and the parts of concatenated texts held until the
//! last one arrives.
//!
//! Pure functions and one bounded table: the session owns the socket and
//! the answers.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::model::submit::{RejectReason, Submission};
use crate::model::{ChannelPref, Priority};
use crate::smpp::pdu::{CommandStatus, SubmitSm};
use crate::smpp::text::{ConcatInfo, Incoming, Reassembler, TextError};

/// Type of number: international (E.164 without the `+`).
const TON_INTERNATIONAL: u8 = 0x01;

/// The command a submission came in, so its answer names the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Command {
    /// `submit_sm`, answered by `submit_sm_resp`.
    SubmitSm,
    /// `data_sm`, answered by `data_sm_resp`.
    DataSm,
}

/// The sequence numbers one message's answer goes to (every part of a
/// concatenated text gets the message's id).
pub(super) type Answers = Vec<(u32, Command)>;

/// The fields of a submission besides its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Envelope {
    /// Recipient as the admission reads it (`+` and digits when international).
    pub to: String,
    /// Sender as the admission reads it.
    pub from: String,
    /// `registered_delivery & 0x03`: 0 none, 1 success or failure, 2 failure only.
    pub receipt: u8,
    /// Validity asked for, seconds (0: the tenant's default).
    pub validity_seconds: u32,
    /// `priority_flag` above 0 is transactional.
    pub priority: Priority,
}

/// Reads the envelope of a submit_sm or data_sm; `now_unix` is the wall
/// clock in seconds (for an absolute validity).
///
/// # Errors
/// The status to answer with: a scheduled delivery (not offered), an
/// unreadable validity period, an address that is not text.
pub(super) fn envelope(sm: &SubmitSm, now_unix: u64) -> Result<Envelope, CommandStatus> {
    if !sm.schedule_delivery_time.is_empty() {
        return Err(CommandStatus::ESME_RINVSCHED);
    }
    let to =
        address(&sm.destination_addr, sm.dest_addr_ton).ok_or(CommandStatus::ESME_RINVDSTADR)?;
    let from =
        address(&sm.source_addr, sm.source_addr_ton).ok_or(CommandStatus::ESME_RINVSRCADR)?;
    let validity_seconds = match sm.validity_period.is_empty() {
        true => 0,
        false => validity(&sm.validity_period, now_unix).ok_or(CommandStatus::ESME_RINVEXPIRY)?,
    };
    Ok(Envelope {
        to,
        from,
        receipt: sm.registered_delivery & 0x03,
        validity_seconds,
        priority: if sm.priority_flag > 0 {
            Priority::Transactional
        } else {
            Priority::Marketing
        },
    })
}

/// An SMPP address as the admission reads it: international numbers get
/// their `+`; everything else (short codes, alphanumeric ids, national
/// numbers) is passed as written. `None` when it is not printable ASCII.
fn address(addr: &[u8], ton: u8) -> Option<String> {
    let s = std::str::from_utf8(addr).ok()?.trim();
    if s.is_empty() || !s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return None;
    }
    let digits = s.strip_prefix('+').unwrap_or(s);
    if ton == TON_INTERNATIONAL && digits.bytes().all(|b| b.is_ascii_digit()) {
        return Some(format!("+{digits}"));
    }
    Some(s.to_owned())
}

/// An SMPP time (§7.1.1) as a validity in seconds from now: relative
/// (`YYMMDDhhmmss000R`) or absolute (`YYMMDDhhmmsstnnp`, quarter hours
/// from UTC). An absolute time in the past is `None`.
pub(super) fn validity(t: &[u8], now_unix: u64) -> Option<u32> {
    if t.len() != 16 || !t[..15].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = |i: usize| u64::from(t[i] - b'0') * 10 + u64::from(t[i + 1] - b'0');
    let (yy, mo, dd, hh, mi, ss) = (n(0), n(2), n(4), n(6), n(8), n(10));
    if hh > 23 || mi > 59 || ss > 59 {
        return None;
    }
    let secs = match t[15] {
        b'R' => {
            // Years of 365 days and months of 30, as SMSCs count them.
            ((yy * 365 + mo * 30 + dd) * 24 + hh) * 3600 + mi * 60 + ss
        }
        sign @ (b'+' | b'-') => {
            if !(1..=12).contains(&mo) || !(1..=31).contains(&dd) {
                return None;
            }
            let days =
                crate::model::calendar::days_from_civil(2000 + yy as i64, mo as u32, dd as u32);
            let local = days * 86_400 + (hh * 3600 + mi * 60 + ss) as i64;
            let offset = (n(13) * 15 * 60) as i64;
            let utc = if sign == b'+' {
                local - offset
            } else {
                local + offset
            };
            let left = utc - now_unix as i64;
            if left <= 0 {
                return None;
            }
            left as u64
        }
        _ => return None,
    };
    Some(secs.min(u64::from(u32::MAX)) as u32)
}

/// The text-bearing fields of `sm`, as received (GSM-7 unpacked, as SMPP
/// carries it).
pub(super) fn incoming(sm: &SubmitSm) -> Incoming<'_> {
    Incoming::of(sm, false)
}

/// The status a text that cannot be read is answered with.
pub(super) fn text_status(e: &TextError) -> CommandStatus {
    match e {
        TextError::InvalidEncoding { .. } => CommandStatus::ESME_RINVDCS,
        TextError::TooLong { .. } | TextError::TooManySegments { .. } => {
            CommandStatus::ESME_RINVMSGLEN
        }
        _ => CommandStatus::ESME_RINVESMCLASS,
    }
}

/// The status a refused message is answered with.
pub(super) fn reject_status(reason: RejectReason) -> CommandStatus {
    match reason {
        RejectReason::InvalidNumber | RejectReason::NoRoute => CommandStatus::ESME_RINVDSTADR,
        RejectReason::InvalidSender | RejectReason::SenderNotAllowed => {
            CommandStatus::ESME_RINVSRCADR
        }
        RejectReason::TextTooLong | RejectReason::EmptyMessage => CommandStatus::ESME_RINVMSGLEN,
        RejectReason::Unavailable => CommandStatus::ESME_RSYSERR,
        RejectReason::InvalidField
        | RejectReason::Suppressed
        | RejectReason::UnknownMedia
        | RejectReason::DuplicateInBatch => CommandStatus::ESME_RSUBMITFAIL,
    }
}

/// The submission of a whole text. `client_ref` is the door's own (an
/// SMPP submit has none; see [`super::deliver::client_ref`]).
pub(super) fn submission(env: Envelope, text: String, client_ref: String) -> Submission {
    Submission {
        client_ref,
        to: env.to,
        from: env.from,
        text,
        channel: ChannelPref::Sms,
        validity_seconds: env.validity_seconds,
        priority: env.priority,
        ..Submission::default()
    }
}

/// The parts of one concatenated text: by source and destination address,
/// reference and total.
type PartKey = (Bytes, Bytes);

/// Parts held until their text is whole, with the submits waiting for it.
#[derive(Debug)]
pub(super) struct Parts {
    capacity: usize,
    texts: Reassembler<PartKey>,
    waiting: HashMap<(PartKey, u16, u8), Waiting>,
    /// Answers held in `waiting`, in all.
    held: usize,
}

#[derive(Debug)]
struct Waiting {
    answers: Answers,
    since: Instant,
    envelope: Envelope,
}

/// What a part did.
#[derive(Debug)]
pub(super) enum PartOutcome {
    /// Parts are missing: its answer waits.
    Held,
    /// The text is whole: the message with the answers of all its parts.
    Whole(Envelope, String, Answers),
}

impl Parts {
    /// Holds at most `capacity` incomplete texts.
    pub(super) fn new(capacity: usize) -> Parts {
        Parts {
            capacity,
            texts: Reassembler::new(capacity),
            waiting: HashMap::new(),
            held: 0,
        }
    }

    /// Submits waiting in incomplete texts.
    pub(super) fn held(&self) -> usize {
        self.held
    }

    /// Adds a part (`info.total > 1`). The envelope of the first part
    /// received is the message's.
    ///
    /// # Errors
    /// The part cannot be read, or the whole text does not decode.
    pub(super) fn push(
        &mut self,
        sm: &SubmitSm,
        part: &Incoming<'_>,
        info: ConcatInfo,
        envelope: Envelope,
        answer: (u32, Command),
        now: Instant,
    ) -> Result<PartOutcome, TextError> {
        let key: PartKey = (sm.source_addr.clone(), sm.destination_addr.clone());
        let wkey = (key.clone(), info.reference, info.total);
        let whole = self.texts.push(key, part)?;
        let waiting = self.waiting.entry(wkey.clone()).or_insert_with(|| Waiting {
            answers: Vec::new(),
            since: now,
            envelope,
        });
        waiting.answers.push(answer);
        self.held += 1;
        if let Some(text) = whole
            && let Some(w) = self.waiting.remove(&wkey)
        {
            self.held -= w.answers.len();
            return Ok(PartOutcome::Whole(w.envelope, text, w.answers));
        }
        Ok(PartOutcome::Held)
    }

    /// Texts still incomplete `timeout` after their first part: dropped,
    /// their submits' answers returned (to be refused).
    pub(super) fn expire(&mut self, now: Instant, timeout: Duration) -> Vec<Answers> {
        let old: Vec<_> = self
            .waiting
            .iter()
            .filter(|(_, w)| now.duration_since(w.since) >= timeout)
            .map(|(k, _)| k.clone())
            .collect();
        old.into_iter()
            .filter_map(|k| {
                let w = self.waiting.remove(&k)?;
                self.held -= w.answers.len();
                let ((src, dst), reference, total) = k;
                self.texts.discard((src, dst), reference, total);
                Some(w.answers)
            })
            .collect()
    }

    /// Every held part's answers (the connection is going away).
    pub(super) fn drain(&mut self) -> Vec<Answers> {
        let out: Vec<Answers> = self.waiting.drain().map(|(_, w)| w.answers).collect();
        self.held = 0;
        self.texts = Reassembler::new(self.capacity);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_validity_counts_days_hours_minutes() {
        assert_eq!(validity(b"000001020304000R", 0), Some(86_400 + 7_384));
        assert_eq!(validity(b"000000000100000R", 0), Some(60));
    }

    #[test]
    fn absolute_validity_is_seconds_from_now_in_utc() {
        // 2026-12-04 12:00:00 UTC.
        let now = 1_796_385_600;
        assert_eq!(validity(b"261204130000000+", now), Some(3600));
        // 13:00 at UTC+1 is 12:00 UTC: already over.
        assert_eq!(validity(b"261204130000004+", now), None);
        assert_eq!(validity(b"261204130000004-", now), Some(7200));
    }

    #[test]
    fn unreadable_validity_is_refused() {
        for t in [
            &b"1"[..],
            b"00000000010000XR",
            b"000000250000000R",
            b"261304130000000+",
        ] {
            assert_eq!(validity(t, 0), None, "{t:?}");
        }
    }

    #[test]
    fn international_numbers_get_their_plus() {
        assert_eq!(address(b"14155550100", 1).as_deref(), Some("+14155550100"));
        assert_eq!(address(b"+14155550100", 1).as_deref(), Some("+14155550100"));
        assert_eq!(address(b"12345", 3).as_deref(), Some("12345"));
        assert_eq!(address(b"ACME", 5).as_deref(), Some("ACME"));
        assert_eq!(address(b"", 1), None);
        assert_eq!(address(b"\xff\x01", 0), None);
    }

    #[test]
    fn a_scheduled_delivery_is_refused() {
        let sm = SubmitSm {
            schedule_delivery_time: Bytes::from_static(b"000000000100000R"),
            destination_addr: Bytes::from_static(b"14155550100"),
            source_addr: Bytes::from_static(b"12345"),
            ..SubmitSm::default()
        };
        assert_eq!(envelope(&sm, 0), Err(CommandStatus::ESME_RINVSCHED));
    }
}
