//! Admission: the per-message checks between ingest and the journal —
//! field validation (numbers, sender, text length, sizes), sender ownership
//! (a tenant sends only from its own senders, so it can neither spend
//! another tenant's limits nor bypass its opt-outs), idempotency on
//! `(tenant, client_ref)`, and routing availability.
//!
//! Each rejected message gets a reason code and a readable text. The checks
//! here are pure (no ids, no journal); [`service::Admission`] runs them for
//! every door in order, with routing, media, opt-outs and dedupe, and makes
//! what passes durable.

use std::sync::Arc;
use std::time::Duration;

mod dedupe;
pub mod service;

pub use dedupe::Dedupe;

pub use service::Admission;

use crate::model::numbering::{self, Country};
use crate::model::submit::Submission;
pub use crate::model::submit::{RejectReason, Rejection};
use crate::model::{MAX_TEXT_CHARS, Message, MessageId, Sender, boxed_strs};

/// Longest client_ref accepted, bytes.
pub const MAX_CLIENT_REF: usize = 128;
/// Most tags per message.
pub const MAX_TAGS: usize = 16;
/// Longest tag / campaign id, bytes.
pub const MAX_LABEL: usize = 128;
/// Most media parts per message.
pub const MAX_MEDIA: usize = 10;
/// Longest validity a message may ask for.
pub const MAX_VALIDITY: Duration = Duration::from_secs(7 * 24 * 3600);

/// A peer-supplied string for a rejection detail: escaped and at most 24
/// characters.
fn quote(s: &str) -> String {
    let short: String = s.chars().take(24).collect();
    if short.len() < s.len() {
        format!("{short:?}…")
    } else {
        format!("{short:?}")
    }
}

fn reject(reason: RejectReason, detail: impl Into<String>) -> Rejection {
    Rejection {
        reason,
        detail: detail.into(),
    }
}

/// The senders one tenant may send from: exact addresses (short codes,
/// numbers, alphanumeric ids) and, for alphanumeric ids only, prefix
/// patterns such as `ACME*`. Alphanumeric ids compare without regard to
/// case (`Acme` and `ACME` are one brand to a reader).
#[derive(Debug, Clone, Default)]
pub struct OwnedSenders {
    numbers: crate::model::hashing::FastSet<Sender>,
    alphanumeric: Vec<Box<str>>,
    prefixes: Vec<Box<str>>,
}

impl OwnedSenders {
    /// From a tenant's `senders` and `sender_patterns`.
    ///
    /// # Errors
    /// The first sender or pattern that is not valid.
    pub fn new(senders: &[String], patterns: &[String]) -> Result<OwnedSenders, SendersError> {
        let mut owned = OwnedSenders::default();
        for s in senders {
            match Sender::parse(s.trim()).map_err(SendersError::Sender)? {
                Sender::Alphanumeric(a) => owned.alphanumeric.push(a.to_ascii_uppercase().into()),
                other => {
                    owned.numbers.insert(other);
                }
            }
        }
        for p in patterns {
            owned
                .prefixes
                .push(pattern_prefix(p)?.to_ascii_uppercase().into());
        }
        Ok(owned)
    }

    /// True when the tenant may send from `s`.
    pub fn allows(&self, s: &Sender) -> bool {
        match s {
            Sender::Alphanumeric(a) => {
                self.alphanumeric.iter().any(|x| x.eq_ignore_ascii_case(a))
                    || self.prefixes.iter().any(|p| {
                        a.len() >= p.len()
                            && a.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
                    })
            }
            other => self.numbers.contains(other),
        }
    }

    /// The senders of this set that are also `other`'s (exactly, or an
    /// alphanumeric id or pattern overlapping one of its patterns), sorted.
    pub fn overlaps(&self, other: &OwnedSenders) -> Vec<String> {
        let mut found: Vec<String> = self
            .numbers
            .iter()
            .filter(|n| other.numbers.contains(*n))
            .map(|n| n.to_string())
            .collect();
        for a in &self.alphanumeric {
            if other.allows(&Sender::Alphanumeric((&**a).into())) {
                found.push(a.to_string());
            }
        }
        for p in &self.prefixes {
            if other.alphanumeric.iter().any(|a| a.starts_with(&**p))
                || other
                    .prefixes
                    .iter()
                    .any(|q| p.starts_with(&**q) || q.starts_with(&**p))
            {
                found.push(format!("{p}*"));
            }
        }
        found.sort();
        found
    }
}

/// Why a tenant's senders are not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendersError {
    /// A sender address is not one.
    #[error(transparent)]
    Sender(#[from] crate::model::SenderError),
    /// A pattern is not 1-11 letters/digits followed by `*`.
    #[error(
        "sender pattern {0:?} must be 1-11 letters/digits (at least one letter) followed by '*'"
    )]
    Pattern(String),
}

/// The literal part of an alphanumeric sender pattern (`ACME*` → `ACME`).
fn pattern_prefix(p: &str) -> Result<&str, SendersError> {
    let prefix = p.strip_suffix('*').unwrap_or(p);
    let ok = !prefix.is_empty()
        && prefix.len() <= 11
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b' ')
        && prefix.bytes().any(|b| b.is_ascii_alphabetic());
    if !ok || !p.ends_with('*') {
        return Err(SendersError::Pattern(p.to_owned()));
    }
    Ok(prefix)
}

/// A submit from a sender the tenant does not own.
pub fn sender_not_allowed(tenant: &str, from: &Sender) -> Rejection {
    reject(
        RejectReason::SenderNotAllowed,
        format!("sender {from} is not one of tenant {tenant:?}'s senders"),
    )
}

/// Validates one submitted message and builds the domain message (with a
/// placeholder id the caller replaces). The recipient must be E.164 (`+`,
/// digits, a calling code in use, a length its plan allows).
///
/// # Errors
/// A [`Rejection`] naming the first problem found.
pub fn validate(
    tenant: &Arc<str>,
    m: Submission,
    default_validity: Duration,
    now_ms: u64,
) -> Result<Message, Rejection> {
    validate_with_country(tenant, m, default_validity, None, now_ms)
}

/// [`validate`] for a tenant with a `default_country`: national numbers of
/// that country are accepted too, normalised to E.164.
///
/// # Errors
/// A [`Rejection`] naming the first problem found.
pub fn validate_with_country(
    tenant: &Arc<str>,
    m: Submission,
    default_validity: Duration,
    default_country: Option<Country>,
    now_ms: u64,
) -> Result<Message, Rejection> {
    if m.client_ref.is_empty() {
        return Err(reject(RejectReason::InvalidField, "client_ref is required"));
    }
    if m.client_ref.len() > MAX_CLIENT_REF {
        return Err(reject(
            RejectReason::InvalidField,
            format!("client_ref is longer than {MAX_CLIENT_REF} bytes"),
        ));
    }
    let to = numbering::parse_recipient(&m.to, default_country).map_err(|e| {
        reject(
            RejectReason::InvalidNumber,
            format!("to {}: {e}", quote(&m.to)),
        )
    })?;
    let from = Sender::parse(m.from.trim())
        .map_err(|e| reject(RejectReason::InvalidSender, e.to_string()))?;
    let chars = m.text.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(reject(
            RejectReason::TextTooLong,
            format!("text has {chars} characters; the limit is {MAX_TEXT_CHARS}"),
        ));
    }
    if m.text.is_empty() && m.media.is_empty() {
        return Err(reject(RejectReason::EmptyMessage, "neither text nor media"));
    }
    if m.media.len() > MAX_MEDIA {
        return Err(reject(
            RejectReason::InvalidField,
            format!("{} media parts; at most {MAX_MEDIA}", m.media.len()),
        ));
    }
    if let Some(id) = m
        .media
        .iter()
        .find(|id| id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(reject(
            RejectReason::UnknownMedia,
            format!("media id {id:?} is not a sha256 content id"),
        ));
    }
    if m.tags.len() > MAX_TAGS {
        return Err(reject(
            RejectReason::InvalidField,
            format!("{} tags; at most {MAX_TAGS}", m.tags.len()),
        ));
    }
    if m.tags.iter().any(|t| t.len() > MAX_LABEL) || m.campaign_id.len() > MAX_LABEL {
        return Err(reject(
            RejectReason::InvalidField,
            format!("tags and campaign_id are at most {MAX_LABEL} bytes"),
        ));
    }
    if m.subject.len() > 256 {
        return Err(reject(
            RejectReason::InvalidField,
            "subject is longer than 256 bytes",
        ));
    }
    let validity = if m.validity_seconds == 0 {
        default_validity
    } else {
        Duration::from_secs(u64::from(m.validity_seconds)).min(MAX_VALIDITY)
    };
    let expires_at_ms = now_ms + validity.as_millis() as u64;
    let mms = mms_fields(&m, now_ms, expires_at_ms)?;
    Ok(Message {
        id: MessageId(0),
        tenant: tenant.clone(),
        to,
        from,
        text: m.text.into_boxed_str(),
        media: boxed_strs(m.media),
        channel: m.channel,
        fallback: m.fallback,
        campaign_id: m.campaign_id.into_boxed_str(),
        expires_at_ms,
        priority: m.priority,
        tags: boxed_strs(m.tags),
        accepted_at_ms: now_ms,
        auto_reply: false,
        mms,
        client_ref: m.client_ref.into_boxed_str(),
    })
}

/// The longest per-message MMS field (ServiceCode, LinkedID).
const MAX_MMS_FIELD: usize = 64;

/// A message's MMS fields: its subject (its length checked in
/// [`validate_with_country`]) and its service fields, checked for form
/// (ServiceCode and LinkedID printable ASCII, at most [`MAX_MMS_FIELD`]; an
/// earliest delivery within its validity, dropped when already past);
/// whether the tenant may use a ServiceCode is
/// [`crate::admission::Admission::submit`]'s to judge.
fn mms_fields(
    m: &Submission,
    now_ms: u64,
    expires_at_ms: u64,
) -> Result<Option<Box<crate::model::MmsFields>>, Rejection> {
    for (name, v) in [
        ("mms_service_code", &m.mms_service_code),
        ("mms_linked_id", &m.mms_linked_id),
    ] {
        if v.len() > MAX_MMS_FIELD || !v.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(reject(
                RejectReason::InvalidField,
                format!("{name} is at most {MAX_MMS_FIELD} printable ASCII characters"),
            ));
        }
    }
    if m.mms_earliest_delivery_ms >= expires_at_ms {
        return Err(reject(
            RejectReason::InvalidField,
            "mms_earliest_delivery_ms is not before the message expires",
        ));
    }
    let some = |v: &str| (!v.is_empty()).then(|| v.to_owned());
    let fields = crate::model::MmsFields {
        subject: (!m.subject.is_empty()).then(|| m.subject.as_str().into()),
        service_code: some(&m.mms_service_code),
        linked_id: some(&m.mms_linked_id),
        message_class: m.mms_message_class,
        priority: m.mms_priority,
        read_reply: m.mms_read_reply,
        distribution_indicator: m.mms_distribution_indicator,
        earliest_delivery_ms: if m.mms_earliest_delivery_ms > now_ms {
            m.mms_earliest_delivery_ms
        } else {
            0
        },
    };
    Ok((!fields.is_empty()).then(|| Box::new(fields)))
}

#[cfg(test)]
mod tests;
