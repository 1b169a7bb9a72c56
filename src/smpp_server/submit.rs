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
use crate::model::{ChannelPref, MAX_TEXT_CHARS, Priority};
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
    /// `registered_delivery & 0x03`: 0 none, 1 success or failure, 2 failure
    /// only, 3 success only (SMPP 5.0; reserved in 3.4).
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

/// Most octets one part may carry: a whole text is at most
/// [`MAX_TEXT_CHARS`] characters of at most 4 octets each (a UCS-2
/// surrogate pair), after a UDH of at most 256.
const MAX_PART_OCTETS: usize = MAX_TEXT_CHARS * 4 + 256;

/// A part refused, with the answers of the earlier parts of its text when
/// the text was dropped with it.
#[derive(Debug)]
pub(super) struct PartRefused {
    /// Why.
    pub(super) error: TextError,
    /// Submits of the same text held until now (refused with it).
    pub(super) earlier: Answers,
}

/// Two receipt requests (`registered_delivery & 0x03`) together: a receipt
/// for every outcome either asks one for (failure only and success only
/// make always).
fn stronger_receipt(a: u8, b: u8) -> u8 {
    // (on success, on failure) of each request.
    let wants = |r: u8| match r & 0x03 {
        1 => (true, true),
        2 => (false, true),
        3 => (true, false),
        _ => (false, false),
    };
    let ((sa, fa), (sb, fb)) = (wants(a), wants(b));
    match (sa || sb, fa || fb) {
        (true, true) => 1,
        (false, true) => 2,
        (true, false) => 3,
        (false, false) => 0,
    }
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
    /// received is the message's, but for the receipt request: every
    /// outcome any part asked a receipt for (an ESME may ask on the last
    /// part only).
    ///
    /// # Errors
    /// The part is longer than any whole text may be (refused before it is
    /// held: parts pin memory until their text is whole or expires), it
    /// cannot be read, or the whole text does not decode. In the first and
    /// last cases the text is dropped and the answers of its earlier parts
    /// come back with the error, to be refused too.
    pub(super) fn push(
        &mut self,
        sm: &SubmitSm,
        part: &Incoming<'_>,
        info: ConcatInfo,
        envelope: Envelope,
        answer: (u32, Command),
        now: Instant,
    ) -> Result<PartOutcome, PartRefused> {
        let key: PartKey = (sm.source_addr.clone(), sm.destination_addr.clone());
        let wkey = (key.clone(), info.reference, info.total);
        let octets = part.message_payload.unwrap_or(part.short_message).len();
        if octets > MAX_PART_OCTETS {
            // Its text can never be admitted: it goes, with its parts.
            self.texts.discard(key, info.reference, info.total);
            return Err(PartRefused {
                error: TextError::TooLong {
                    // At least this many: no character takes more than 4.
                    chars: (octets - 256).div_ceil(4),
                    max: MAX_TEXT_CHARS,
                },
                earlier: self.take_waiting(&wkey),
            });
        }
        let whole = match self.texts.push(key.clone(), part) {
            Ok(whole) => whole,
            Err(error) => {
                // Held parts stay held unless this part completed the text
                // and the whole did not decode: then the text is gone.
                // (A text the reassembler evicted at capacity is gone
                // too; the session's capacity is its window, so only the
                // fuzz hook's small one evicts.)
                let gone = !self.texts.holds(key, info.reference, info.total);
                let earlier = match gone {
                    true => self.take_waiting(&wkey),
                    false => Vec::new(),
                };
                return Err(PartRefused { error, earlier });
            }
        };
        let receipt = envelope.receipt;
        let waiting = self.waiting.entry(wkey.clone()).or_insert_with(|| Waiting {
            answers: Vec::new(),
            since: now,
            envelope,
        });
        waiting.envelope.receipt = stronger_receipt(waiting.envelope.receipt, receipt);
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

    /// The answers waiting on the text `wkey`, no longer held.
    fn take_waiting(&mut self, wkey: &(PartKey, u16, u8)) -> Answers {
        match self.waiting.remove(wkey) {
            Some(w) => {
                self.held -= w.answers.len();
                w.answers
            }
            None => Vec::new(),
        }
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

    /// Part `seq` of 2 of text `reference`, its user data after an 8-bit
    /// UDH, asking for receipt `receipt`.
    fn part(reference: u8, seq: u8, data: &[u8], receipt: u8) -> SubmitSm {
        let mut short_message = vec![0x05, 0x00, 0x03, reference, 2, seq];
        short_message.extend_from_slice(data);
        SubmitSm {
            source_addr: Bytes::from_static(b"12345"),
            destination_addr: Bytes::from_static(b"14155550100"),
            esm_class: 0x40,
            registered_delivery: receipt,
            short_message: Bytes::from(short_message),
            ..SubmitSm::default()
        }
    }

    fn push(parts: &mut Parts, sm: &SubmitSm, seq: u32) -> Result<PartOutcome, PartRefused> {
        let part = incoming(sm);
        let info = part.concat().unwrap().unwrap();
        let env = envelope(sm, 0).unwrap();
        parts.push(
            sm,
            &part,
            info,
            env,
            (seq, Command::SubmitSm),
            Instant::now(),
        )
    }

    /// A part longer than any whole text may be is refused before it is
    /// held: a bind could otherwise pin 64 KiB per held part.
    #[test]
    fn a_part_longer_than_any_text_is_refused_before_it_is_held() {
        let mut parts = Parts::new(16);
        let big = part(1, 1, &vec![b'a'; MAX_PART_OCTETS], 1);
        let refused = push(&mut parts, &big, 1).unwrap_err();
        assert!(
            matches!(refused.error, TextError::TooLong { .. }),
            "{refused:?}"
        );
        assert_eq!(parts.held(), 0);
        let fits = part(2, 1, &[b'a'; 150], 1);
        assert!(matches!(push(&mut parts, &fits, 2), Ok(PartOutcome::Held)));
        assert_eq!(parts.held(), 1);
        // Its text can never be admitted: its held part is refused with it.
        let big = part(2, 2, &vec![b'a'; MAX_PART_OCTETS], 1);
        let refused = push(&mut parts, &big, 3).unwrap_err();
        assert_eq!(refused.earlier, vec![(2, Command::SubmitSm)]);
        assert_eq!(parts.held(), 0);
    }

    /// A text whose parts do not decode once joined is dropped, and the
    /// answers of its earlier parts come back with the error (they waited
    /// for the reassembly timeout, and counted against the window, before).
    #[test]
    fn a_text_that_does_not_decode_once_whole_gives_back_its_earlier_parts() {
        let mut parts = Parts::new(16);
        // 0x80 is no GSM 03.38 character.
        assert!(matches!(
            push(&mut parts, &part(7, 1, b"ab\x80", 1), 1),
            Ok(PartOutcome::Held)
        ));
        let refused = push(&mut parts, &part(7, 2, b"cd", 1), 2).unwrap_err();
        assert_eq!(refused.earlier, vec![(1, Command::SubmitSm)]);
        assert_eq!(parts.held(), 0);
        // A part refused on its own leaves the text's held parts waiting.
        assert!(matches!(
            push(&mut parts, &part(8, 1, b"ab", 1), 3),
            Ok(PartOutcome::Held)
        ));
        let mut bad = part(8, 2, b"cd", 1);
        bad.data_coding = 0x07;
        let refused = push(&mut parts, &bad, 4).unwrap_err();
        assert!(refused.earlier.is_empty());
        assert_eq!(parts.held(), 1);
    }

    /// The receipt request of a long text covers every outcome any of its
    /// parts asked a receipt for, whichever part came first.
    #[test]
    fn a_long_texts_receipt_request_covers_what_any_part_asked_for() {
        for (first, second, want) in [
            (0, 1, 1),
            (1, 0, 1),
            (2, 1, 1),
            (0, 2, 2),
            (2, 0, 2),
            (0, 0, 0),
            (3, 0, 3),
            (0, 3, 3),
            (3, 3, 3),
            (2, 3, 1),
            (3, 2, 1),
            (3, 1, 1),
        ] {
            let mut parts = Parts::new(16);
            assert!(matches!(
                push(&mut parts, &part(3, 1, b"ab", first), 1),
                Ok(PartOutcome::Held)
            ));
            let Ok(PartOutcome::Whole(env, text, answers)) =
                push(&mut parts, &part(3, 2, b"cd", second), 2)
            else {
                panic!("the text is whole");
            };
            assert_eq!(
                (env.receipt, text.as_str(), answers.len()),
                (want, "abcd", 2)
            );
        }
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
