//! The history record format: encode in place, decode with every length
//! checked.
//!
//! A segment file is the 8-byte magic [`MAGIC`] followed by records:
//!
//! ```text
//! u16 len (LE, bytes after this field) | u8 kind | u64 message id | u64 at (unix ms) | fields
//! ```
//!
//! Fields by kind (integers little-endian, `str` = u8 length + UTF-8 bytes,
//! cut to 255 bytes at a character boundary, `state` = one byte of
//! [`state_code`]):
//!
//! | kind | fields |
//! | --- | --- |
//! | 1 accepted | tenant str, campaign str, client_ref str, to u64 (E.164 digits), from str |
//! | 2 dispatched | carrier str, parts u16 |
//! | 3 wait | part u16, cause str |
//! | 4 answer | part u16, carrier str, carrier id str |
//! | 5 part failed | part u16, state, code u32, reason str |
//! | 6 receipt | part u16, state, code u32, stat str |
//! | 7 requeued | reason str |
//! | 8 fallback | how str, reason str |
//! | 9 final | state, code u32, carrier str, reason str |
//! | 10 event acked | event id u64, sink str |
//!
//! A record whose fields do not fill its length exactly, an unknown kind
//! or state, or a length past the end is an error: the reader stops there
//! (a torn tail, or damage). Decoding never panics.

use std::io::Write as _;

use crate::model::{DeliveryState, Message, MessageId};

/// The first bytes of every segment.
pub const MAGIC: &[u8; 8] = b"SLHIST1\n";

/// Bytes of a record header: length, kind, message id, time.
pub const HEADER: usize = 2 + 1 + 8 + 8;

/// Record kinds (the byte after the length).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Accepted: recorded as it is queued, which may be while its journal
    /// write is under way (a write that then fails ends it `rejected`).
    Accepted = 1,
    /// Handed to a carrier.
    Dispatched = 2,
    /// A part waits.
    Wait = 3,
    /// The carrier accepted a part.
    Answer = 4,
    /// A part ended without a receipt.
    PartFailed = 5,
    /// A receipt or delivery report.
    Receipt = 6,
    /// Back to queued.
    Requeued = 7,
    /// Fallback to SMS.
    Fallback = 8,
    /// Terminal state.
    Final = 9,
    /// Event acknowledged upstream.
    EventAcked = 10,
}

/// One decoded step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The message.
    pub id: MessageId,
    /// When (unix ms).
    pub at_ms: u64,
    /// What.
    pub step: Step,
}

/// What happened, with its details.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Step {
    Accepted {
        tenant: String,
        campaign: String,
        client_ref: String,
        /// E.164 digits (no `+`).
        to: u64,
        from: String,
    },
    Dispatched {
        carrier: String,
        parts: u16,
    },
    Wait {
        part: u16,
        cause: String,
    },
    Answer {
        part: u16,
        carrier: String,
        carrier_id: String,
    },
    PartFailed {
        part: u16,
        state: DeliveryState,
        code: u32,
        reason: String,
    },
    Receipt {
        part: u16,
        state: DeliveryState,
        code: u32,
        stat: String,
    },
    Requeued {
        reason: String,
    },
    Fallback {
        how: String,
        reason: String,
    },
    Final {
        state: DeliveryState,
        code: u32,
        carrier: String,
        reason: String,
    },
    EventAcked {
        event_id: u64,
        sink: String,
    },
}

/// Why bytes are not a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Fewer bytes than the record needs (a torn tail).
    #[error("truncated record")]
    Truncated,
    /// A length, kind or state that no writer produces.
    #[error("malformed record")]
    Malformed,
}

// === encoding ===

/// The byte of a delivery state.
pub fn state_code(s: DeliveryState) -> u8 {
    match s {
        DeliveryState::Queued => 0,
        DeliveryState::Dispatched => 1,
        DeliveryState::Submitted => 2,
        DeliveryState::Delivered => 3,
        DeliveryState::Failed => 4,
        DeliveryState::Expired => 5,
        DeliveryState::Rejected => 6,
        DeliveryState::Unknown => 7,
        DeliveryState::Suppressed => 8,
    }
}

fn state_of(b: u8) -> Option<DeliveryState> {
    Some(match b {
        0 => DeliveryState::Queued,
        1 => DeliveryState::Dispatched,
        2 => DeliveryState::Submitted,
        3 => DeliveryState::Delivered,
        4 => DeliveryState::Failed,
        5 => DeliveryState::Expired,
        6 => DeliveryState::Rejected,
        7 => DeliveryState::Unknown,
        8 => DeliveryState::Suppressed,
        _ => return None,
    })
}

/// Starts a record in `buf`; returns where it starts (for [`finish`]).
#[inline]
pub fn begin(buf: &mut Vec<u8>, kind: Kind, id: MessageId, at_ms: u64) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0, 0, kind as u8]);
    buf.extend_from_slice(&id.0.to_le_bytes());
    buf.extend_from_slice(&at_ms.to_le_bytes());
    start
}

/// Writes the length of the record started at `start`.
#[inline]
pub fn finish(buf: &mut [u8], start: usize) {
    // Fields are bounded (a handful of ≤255-byte strings), so a record is
    // far below 64 KiB.
    let len = (buf.len() - start - 2).min(u16::MAX as usize) as u16;
    buf[start..start + 2].copy_from_slice(&len.to_le_bytes());
}

/// A string field: at most 255 bytes, cut at a character boundary.
#[inline]
pub fn put_str(buf: &mut Vec<u8>, s: &str) {
    let mut n = s.len().min(255);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    buf.push(n as u8);
    buf.extend_from_slice(&s.as_bytes()[..n]);
}

/// A u16 field.
#[inline]
pub fn put_u16(buf: &mut Vec<u8>, v: u16) {
    buf.extend_from_slice(&v.to_le_bytes());
}

/// The fields of an accepted record.
pub fn put_accepted(buf: &mut Vec<u8>, m: &Message) {
    put_str(buf, &m.tenant);
    put_str(buf, &m.campaign_id);
    put_str(buf, &m.client_ref);
    buf.extend_from_slice(&m.to.as_u64().to_le_bytes());
    // The sender through its Display, without a String: length patched after.
    let at = buf.len();
    buf.push(0);
    let _ = write!(buf, "{}", m.from);
    let n = (buf.len() - at - 1).min(255);
    buf.truncate(at + 1 + n);
    buf[at] = n as u8;
}

// === decoding ===

/// The length, kind, id and time of the record at the front of `bytes`,
/// without its fields (the writer's quick look). `None`: not a whole header.
pub fn peek(bytes: &[u8]) -> Option<(usize, MessageId, u64)> {
    if bytes.len() < HEADER {
        return None;
    }
    let len = u16::from_le_bytes([bytes[0], bytes[1]]) as usize;
    let id = u64::from_le_bytes(bytes[3..11].try_into().ok()?);
    let at = u64::from_le_bytes(bytes[11..19].try_into().ok()?);
    Some((2 + len, MessageId(id), at))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Malformed);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    fn str(&mut self) -> Result<String, DecodeError> {
        let n = self.u8()? as usize;
        let mut s = String::from_utf8_lossy(self.take(n)?).into_owned();
        // Damaged bytes become U+FFFD (3 bytes each): cut as `put_str`
        // would, so a decoded record encodes to what decodes the same.
        if s.len() > 255 {
            let mut at = 255;
            while !s.is_char_boundary(at) {
                at -= 1;
            }
            s.truncate(at);
        }
        Ok(s)
    }
    fn state(&mut self) -> Result<DeliveryState, DecodeError> {
        state_of(self.u8()?).ok_or(DecodeError::Malformed)
    }
}

/// Decodes the record at the front of `bytes`: it and its size.
///
/// # Errors
/// [`DecodeError::Truncated`] when `bytes` ends inside it,
/// [`DecodeError::Malformed`] when it is not a record this format writes.
pub fn decode(bytes: &[u8]) -> Result<(Record, usize), DecodeError> {
    if bytes.len() < 2 {
        return Err(DecodeError::Truncated);
    }
    let len = u16::from_le_bytes([bytes[0], bytes[1]]) as usize;
    if len < HEADER - 2 {
        return Err(DecodeError::Malformed);
    }
    let Some(body) = bytes.get(2..2 + len) else {
        return Err(DecodeError::Truncated);
    };
    let mut r = Reader(body);
    let kind = r.u8()?;
    let id = MessageId(r.u64()?);
    let at_ms = r.u64()?;
    let step = match kind {
        1 => Step::Accepted {
            tenant: r.str()?,
            campaign: r.str()?,
            client_ref: r.str()?,
            to: r.u64()?,
            from: r.str()?,
        },
        2 => Step::Dispatched {
            carrier: r.str()?,
            parts: r.u16()?,
        },
        3 => Step::Wait {
            part: r.u16()?,
            cause: r.str()?,
        },
        4 => Step::Answer {
            part: r.u16()?,
            carrier: r.str()?,
            carrier_id: r.str()?,
        },
        5 => Step::PartFailed {
            part: r.u16()?,
            state: r.state()?,
            code: r.u32()?,
            reason: r.str()?,
        },
        6 => Step::Receipt {
            part: r.u16()?,
            state: r.state()?,
            code: r.u32()?,
            stat: r.str()?,
        },
        7 => Step::Requeued { reason: r.str()? },
        8 => Step::Fallback {
            how: r.str()?,
            reason: r.str()?,
        },
        9 => Step::Final {
            state: r.state()?,
            code: r.u32()?,
            carrier: r.str()?,
            reason: r.str()?,
        },
        10 => Step::EventAcked {
            event_id: r.u64()?,
            sink: r.str()?,
        },
        _ => return Err(DecodeError::Malformed),
    };
    if !r.0.is_empty() {
        return Err(DecodeError::Malformed);
    }
    Ok((Record { id, at_ms, step }, 2 + len))
}

/// Every record of a segment's bytes (magic first) up to the first that
/// does not decode, and how many bytes they span (magic included; 0 when
/// the magic is wrong).
pub fn decode_segment(bytes: &[u8]) -> (Vec<Record>, usize) {
    let mut out = Vec::new();
    let valid = for_each(bytes, |r| out.push(r));
    (out, valid)
}

/// Calls `f` with every record of a segment's bytes up to the first that
/// does not decode; returns how many bytes they span (magic included; 0
/// when the magic is wrong).
pub fn for_each(bytes: &[u8], mut f: impl FnMut(Record)) -> usize {
    let Some(mut rest) = bytes.strip_prefix(&MAGIC[..]) else {
        return 0;
    };
    let mut valid = MAGIC.len();
    while let Ok((r, n)) = decode(rest) {
        f(r);
        rest = &rest[n..];
        valid += n;
    }
    valid
}

/// As [`for_each`], but decodes only the records whose kind, id and time
/// `want` accepts (the others are skipped by their length, unread): the
/// lookups' scan. Stops at a record whose length runs past the end or is
/// shorter than a header.
pub fn for_each_where(
    bytes: &[u8],
    mut want: impl FnMut(u8, MessageId, u64) -> bool,
    mut f: impl FnMut(Record),
) {
    let Some(mut rest) = bytes.strip_prefix(&MAGIC[..]) else {
        return;
    };
    while let Some((len, id, at)) = peek(rest) {
        if len < HEADER || len > rest.len() {
            return;
        }
        if want(rest[2], id, at) {
            match decode(rest) {
                Ok((r, _)) => f(r),
                Err(_) => return,
            }
        }
        rest = &rest[len..];
    }
}

/// Encodes one decoded record again (tests and the fuzz target check that
/// decoding is the inverse of this).
pub fn encode(buf: &mut Vec<u8>, r: &Record) {
    let kind = match &r.step {
        Step::Accepted { .. } => Kind::Accepted,
        Step::Dispatched { .. } => Kind::Dispatched,
        Step::Wait { .. } => Kind::Wait,
        Step::Answer { .. } => Kind::Answer,
        Step::PartFailed { .. } => Kind::PartFailed,
        Step::Receipt { .. } => Kind::Receipt,
        Step::Requeued { .. } => Kind::Requeued,
        Step::Fallback { .. } => Kind::Fallback,
        Step::Final { .. } => Kind::Final,
        Step::EventAcked { .. } => Kind::EventAcked,
    };
    let start = begin(buf, kind, r.id, r.at_ms);
    match &r.step {
        Step::Accepted {
            tenant,
            campaign,
            client_ref,
            to,
            from,
        } => {
            put_str(buf, tenant);
            put_str(buf, campaign);
            put_str(buf, client_ref);
            buf.extend_from_slice(&to.to_le_bytes());
            put_str(buf, from);
        }
        Step::Dispatched { carrier, parts } => {
            put_str(buf, carrier);
            put_u16(buf, *parts);
        }
        Step::Wait { part, cause } => {
            put_u16(buf, *part);
            put_str(buf, cause);
        }
        Step::Answer {
            part,
            carrier,
            carrier_id,
        } => {
            put_u16(buf, *part);
            put_str(buf, carrier);
            put_str(buf, carrier_id);
        }
        Step::PartFailed {
            part,
            state,
            code,
            reason: text,
        }
        | Step::Receipt {
            part,
            state,
            code,
            stat: text,
        } => {
            put_u16(buf, *part);
            buf.push(state_code(*state));
            buf.extend_from_slice(&code.to_le_bytes());
            put_str(buf, text);
        }
        Step::Requeued { reason } => put_str(buf, reason),
        Step::Fallback { how, reason } => {
            put_str(buf, how);
            put_str(buf, reason);
        }
        Step::Final {
            state,
            code,
            carrier,
            reason,
        } => {
            buf.push(state_code(*state));
            buf.extend_from_slice(&code.to_le_bytes());
            put_str(buf, carrier);
            put_str(buf, reason);
        }
        Step::EventAcked { event_id, sink } => {
            buf.extend_from_slice(&event_id.to_le_bytes());
            put_str(buf, sink);
        }
    }
    finish(buf, start);
}
