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

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

pub mod service;

pub use service::Admission;

use crate::model::numbering::{self, Country};
use crate::model::submit::Submission;
pub use crate::model::submit::{RejectReason, Rejection};
use crate::model::{MAX_TEXT_CHARS, Message, MessageId, Sender};

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
    numbers: std::collections::HashSet<Sender>,
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
        text: m.text,
        media: m.media,
        subject: (!m.subject.is_empty()).then_some(m.subject),
        channel: m.channel,
        fallback: m.fallback,
        campaign_id: m.campaign_id,
        expires_at_ms,
        priority: m.priority,
        tags: m.tags,
        accepted_at_ms: now_ms,
        auto_reply: false,
        mms,
        client_ref: m.client_ref,
    })
}

/// The longest per-message MMS field (ServiceCode, LinkedID).
const MAX_MMS_FIELD: usize = 64;

/// A message's MMS service fields, checked for form (ServiceCode and
/// LinkedID printable ASCII, at most [`MAX_MMS_FIELD`]; an earliest delivery
/// within its validity, dropped when already past); whether the tenant may
/// use a ServiceCode is [`crate::admission::Admission::submit`]'s to judge.
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

// === impl Dedupe ===

/// Many small tables rather than a few big ones: keys spread evenly, so
/// every shard doubles at about the same moment, and with 32 shards of
/// ~30k keys those rehashes stalled ingest for tens of ms at once (every
/// doubling of the total: at 50k msgs/s, 4.6 s, 9.2 s, 18.4 s …). Small
/// shards spread the same work thinly.
const DEDUPE_SHARDS: usize = 1024;

#[derive(Debug, Default)]
struct Shard {
    map: hashbrown::HashMap<u128, (MessageId, u64), foldhash::fast::RandomState>,
    /// Insertion order: (accepted at, fingerprint, journal segment of the
    /// Accept record; `u64::MAX` once in the dedupe log).
    order: VecDeque<(u64, u128, u64)>,
    /// `order[..logged]` are in the dedupe log.
    logged: usize,
}

/// Remembers `(tenant, client_ref) → message id` for the dedupe window, or
/// for the last `max_keys` keys when that is shorter (memory stays bounded
/// at any rate: 10 million keys take ~1.1 GB; the oldest go first, counted in
/// `sluice_dedupe_evicted_total`).
///
/// Keys are 128-bit fingerprints: SipHash under a secret per-node key,
/// twice, so upstream cannot make two keys collide and an entry has no
/// allocation of its own: ~110 bytes with the tables' slack (a 32-byte map
/// slot and a 32-byte order entry; `cargo bench --bench queue_memory`). Entries know
/// the journal segment of their Accept record; when compaction deletes that
/// segment they are appended to the dedupe log once (see
/// [`Dedupe::take_unlogged_before`]), never rewritten per cycle.
#[derive(Debug)]
pub struct Dedupe {
    shards: Box<[Mutex<Shard>]>,
    window_ms: u64,
    /// Most keys per shard.
    shard_cap: usize,
    evicted: metrics::Counter,
    key: [u64; 2],
}

impl Dedupe {
    /// An empty index remembering keys for `window`, fingerprinting with `key`.
    pub fn new(window: Duration, key: [u8; 16]) -> Dedupe {
        Dedupe {
            shards: (0..DEDUPE_SHARDS).map(|_| Mutex::default()).collect(),
            window_ms: window.as_millis() as u64,
            shard_cap: usize::MAX,
            evicted: metrics::counter!("sluice_dedupe_evicted_total"),
            key: [
                u64::from_le_bytes(key[..8].try_into().expect("8 bytes")),
                u64::from_le_bytes(key[8..].try_into().expect("8 bytes")),
            ],
        }
    }

    /// Remembers at most about `max_keys` keys (the oldest go first).
    #[must_use]
    pub fn with_max_keys(mut self, max_keys: usize) -> Dedupe {
        self.shard_cap = max_keys.div_ceil(DEDUPE_SHARDS).max(1);
        self
    }

    /// Most keys remembered (`usize::MAX`: no limit).
    pub fn max_keys(&self) -> usize {
        self.shard_cap.saturating_mul(DEDUPE_SHARDS)
    }

    /// The dedupe window, ms.
    pub fn window_ms(&self) -> u64 {
        self.window_ms
    }

    /// The fingerprint of a key.
    pub fn fingerprint(&self, tenant: &str, client_ref: &str) -> u128 {
        use std::hash::{Hash, Hasher};
        #[allow(deprecated)] // SipHash-2-4 with our own key: exactly what is wanted here
        let half = |salt: u8| {
            let mut h = std::hash::SipHasher::new_with_keys(self.key[0], self.key[1]);
            salt.hash(&mut h);
            tenant.hash(&mut h);
            client_ref.hash(&mut h);
            h.finish()
        };
        (u128::from(half(1)) << 64) | u128::from(half(2))
    }

    fn shard(&self, fp: u128) -> &Mutex<Shard> {
        &self.shards[(fp as usize) % DEDUPE_SHARDS]
    }

    /// Returns the id already given to this key, or records `id` for it
    /// (its Accept record goes into journal segment `segment`).
    pub fn check_or_insert(
        &self,
        tenant: &Arc<str>,
        client_ref: &str,
        id: MessageId,
        now_ms: u64,
        segment: u64,
    ) -> Result<(), MessageId> {
        let fp = self.fingerprint(tenant, client_ref);
        let mut s = self.shard(fp).lock();
        self.expire(&mut s, now_ms);
        if let Some((existing, _)) = s.map.get(&fp) {
            return Err(*existing);
        }
        s.map.insert(fp, (id, now_ms));
        s.order.push_back((now_ms, fp, segment));
        self.evict(&mut s);
        Ok(())
    }

    /// Restores a key (ignored when outside the window); `segment` is
    /// `None` for keys already in the dedupe log.
    pub fn restore(&self, fp: u128, id: MessageId, at_ms: u64, now_ms: u64, segment: Option<u64>) {
        if at_ms + self.window_ms < now_ms {
            return;
        }
        let mut s = self.shard(fp).lock();
        if s.map.insert(fp, (id, at_ms)).is_none() {
            s.order.push_back((at_ms, fp, segment.unwrap_or(u64::MAX)));
            self.evict(&mut s);
        }
    }

    /// Drops the oldest keys of a shard over its cap.
    fn evict(&self, s: &mut Shard) {
        let mut evicted = 0u64;
        while s.map.len() > self.shard_cap {
            let Some((at, fp, _)) = s.order.pop_front() else {
                break;
            };
            s.logged = s.logged.saturating_sub(1);
            if s.map.get(&fp).is_some_and(|(_, stored)| *stored == at) {
                s.map.remove(&fp);
                evicted += 1;
            }
        }
        if evicted > 0 {
            self.evicted.increment(evicted);
        }
    }

    /// Forgets a key (its message could not be stored).
    pub fn forget(&self, tenant: &Arc<str>, client_ref: &str) {
        let fp = self.fingerprint(tenant, client_ref);
        self.shard(fp).lock().map.remove(&fp);
    }

    fn expire(&self, s: &mut Shard, now_ms: u64) {
        while let Some(&(at, fp, _)) = s.order.front() {
            if at + self.window_ms >= now_ms {
                break;
            }
            s.order.pop_front();
            s.logged = s.logged.saturating_sub(1);
            if s.map
                .get(&fp)
                .is_some_and(|(_, stored)| stored + self.window_ms < now_ms)
            {
                s.map.remove(&fp);
            }
        }
    }

    /// Keys whose Accept record is in a journal segment below `segment`, or
    /// that were accepted before `older_than_ms` (their Accept is durable by
    /// then, or failed and was forgotten), and that are not yet in the dedupe
    /// log; marks them logged. Called every second (a steady trickle) and by
    /// compaction before it deletes segments.
    pub fn take_unlogged(&self, segment: u64, older_than_ms: u64) -> Vec<(u128, u64, u64)> {
        let mut out = Vec::new();
        for s in self.shards.iter() {
            let mut s = s.lock();
            let Shard { map, order, logged } = &mut *s;
            while *logged < order.len() {
                let (at, fp, seg) = order[*logged];
                if seg != u64::MAX && seg >= segment && at >= older_than_ms {
                    break;
                }
                if seg != u64::MAX
                    && let Some((id, _)) = map.get(&fp)
                {
                    out.push((fp, id.0, at));
                }
                order[*logged].2 = u64::MAX;
                *logged += 1;
            }
        }
        out
    }

    /// [`Dedupe::take_unlogged`] by segment only.
    pub fn take_unlogged_before(&self, segment: u64) -> Vec<(u128, u64, u64)> {
        self.take_unlogged(segment, 0)
    }

    /// Keys remembered.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().map.len()).sum()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests;
