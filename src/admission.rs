//! Admission: the per-message checks between ingest and the journal —
//! field validation (numbers, sender, text length, sizes), idempotency on
//! `(tenant, client_ref)`, and routing availability.
//!
//! Each rejected message gets a reason code and a readable text; nothing here
//! allocates ids or touches the journal.

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::ingest::pb::{self, RejectReason};
use crate::model::{
    ChannelPref, FallbackPolicy, MAX_TEXT_CHARS, Message, MessageId, Msisdn, Priority, Sender,
};

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

/// A rejection: reason code and readable text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Machine-readable reason.
    pub reason: RejectReason,
    /// Human-readable detail.
    pub detail: String,
}

fn reject(reason: RejectReason, detail: impl Into<String>) -> Rejection {
    Rejection {
        reason,
        detail: detail.into(),
    }
}

/// Validates one submitted message and builds the domain message (with a
/// placeholder id the caller replaces).
///
/// # Errors
/// A [`Rejection`] naming the first problem found.
pub fn validate(
    tenant: &Arc<str>,
    m: pb::SubmitMessage,
    default_validity: Duration,
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
    let to = Msisdn::parse(m.to.trim())
        .map_err(|e| reject(RejectReason::InvalidNumber, format!("to {:?}: {e}", m.to)))?;
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
    Ok(Message {
        id: MessageId(0),
        tenant: tenant.clone(),
        to,
        from,
        text: m.text,
        media: m.media,
        subject: (!m.subject.is_empty()).then_some(m.subject),
        channel: match pb::ChannelPreference::try_from(m.channel) {
            Ok(pb::ChannelPreference::ChannelSms) => ChannelPref::Sms,
            Ok(pb::ChannelPreference::ChannelMms) => ChannelPref::Mms,
            _ => ChannelPref::Auto,
        },
        fallback: match pb::FallbackPolicy::try_from(m.fallback) {
            Ok(pb::FallbackPolicy::FallbackSmsTextOnly) => FallbackPolicy::SmsTextOnly,
            Ok(pb::FallbackPolicy::FallbackNone) => FallbackPolicy::None,
            _ => FallbackPolicy::SmsWithLink,
        },
        campaign_id: m.campaign_id,
        expires_at_ms: now_ms + validity.as_millis() as u64,
        priority: if m.priority == pb::PriorityClass::PriorityTransactional as i32 {
            Priority::Transactional
        } else {
            Priority::Marketing
        },
        tags: m.tags,
        accepted_at_ms: now_ms,
        auto_reply: false,
        client_ref: m.client_ref,
    })
}

// === impl Dedupe ===

const DEDUPE_SHARDS: usize = 32;

/// A remembered key; shared by the map and the expiry queue (one allocation).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Key {
    tenant: Arc<str>,
    client_ref: Box<str>,
}

/// A borrowed key: looks up without allocating. Hashes exactly like [`Key`]
/// (both hash the two strings in order).
#[derive(Hash)]
struct KeyRef<'a> {
    tenant: &'a str,
    client_ref: &'a str,
}

impl hashbrown::Equivalent<Arc<Key>> for KeyRef<'_> {
    fn equivalent(&self, k: &Arc<Key>) -> bool {
        *k.tenant == *self.tenant && *k.client_ref == *self.client_ref
    }
}

#[derive(Debug, Default)]
struct Shard {
    map: hashbrown::HashMap<Arc<Key>, (MessageId, u64), foldhash::quality::RandomState>,
    /// Insertion order with times, for expiry.
    order: VecDeque<(u64, Arc<Key>)>,
}

/// Remembers `(tenant, client_ref) → message id` for the dedupe window.
///
/// Keys come from upstream, so the maps use a randomly seeded hasher
/// (foldhash's quality variant: fast, and not predictable from outside).
#[derive(Debug)]
pub struct Dedupe {
    shards: Box<[Mutex<Shard>]>,
    window_ms: u64,
    hasher: foldhash::quality::RandomState,
}

impl Dedupe {
    /// An empty index remembering keys for `window`.
    pub fn new(window: Duration) -> Dedupe {
        Dedupe {
            shards: (0..DEDUPE_SHARDS).map(|_| Mutex::default()).collect(),
            window_ms: window.as_millis() as u64,
            hasher: Default::default(),
        }
    }

    fn shard(&self, tenant: &str, client_ref: &str) -> &Mutex<Shard> {
        let h = self.hasher.hash_one(KeyRef { tenant, client_ref });
        &self.shards[(h as usize) % DEDUPE_SHARDS]
    }

    /// Returns the id already given to this key, or records `id` for it.
    pub fn check_or_insert(
        &self,
        tenant: &Arc<str>,
        client_ref: &str,
        id: MessageId,
        now_ms: u64,
    ) -> Result<(), MessageId> {
        let mut s = self.shard(tenant, client_ref).lock();
        self.expire(&mut s, now_ms);
        let probe = KeyRef { tenant, client_ref };
        if let Some((existing, _)) = s.map.get(&probe) {
            return Err(*existing);
        }
        let key = Arc::new(Key {
            tenant: tenant.clone(),
            client_ref: client_ref.into(),
        });
        s.map.insert(key.clone(), (id, now_ms));
        s.order.push_back((now_ms, key));
        Ok(())
    }

    /// Restores a key from the journal (ignored when outside the window).
    pub fn restore(
        &self,
        tenant: &Arc<str>,
        client_ref: &str,
        id: MessageId,
        at_ms: u64,
        now_ms: u64,
    ) {
        if at_ms + self.window_ms < now_ms {
            return;
        }
        let mut s = self.shard(tenant, client_ref).lock();
        let key = Arc::new(Key {
            tenant: tenant.clone(),
            client_ref: client_ref.into(),
        });
        if s.map.insert(key.clone(), (id, at_ms)).is_none() {
            s.order.push_back((at_ms, key));
        }
    }

    /// Forgets a key (its message could not be stored).
    pub fn forget(&self, tenant: &Arc<str>, client_ref: &str) {
        let mut s = self.shard(tenant, client_ref).lock();
        s.map.remove(&KeyRef { tenant, client_ref });
    }

    fn expire(&self, s: &mut Shard, now_ms: u64) {
        while let Some((at, _)) = s.order.front() {
            if at + self.window_ms >= now_ms {
                break;
            }
            let (_, key) = s.order.pop_front().expect("front exists");
            if let Some((_, stored_at)) = s.map.get(&key)
                && stored_at + self.window_ms < now_ms
            {
                s.map.remove(&key);
            }
        }
    }

    /// Every remembered key: `(tenant, client_ref, id, accepted_at_ms)`.
    pub fn entries(&self) -> Vec<(Arc<str>, Box<str>, MessageId, u64)> {
        let mut out = Vec::new();
        for s in self.shards.iter() {
            let s = s.lock();
            out.extend(
                s.map
                    .iter()
                    .map(|(k, (id, at))| (k.tenant.clone(), k.client_ref.clone(), *id, *at)),
            );
        }
        out
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
