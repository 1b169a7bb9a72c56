//! Receipts: correlation of carrier message ids to messages (per part),
//! the part outcomes carriers report, delivery receipts (including ones that
//! arrive before the submit_sm_resp that names their id), inbound messages,
//! and expiry of messages whose receipt never comes.
//!
//! Carrier ids are normalised once: trimmed, lowercased, leading zeros
//! dropped. A receipt's id is looked up as given and, because SMSCs mix them,
//! also converted hex→decimal and decimal→hex.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::carrier::CarrierSink;
use crate::events::EventHub;

use crate::ledger::{Entry, Finalized, Ledger, Part, PartOutcome, PartResult, Stage};
use crate::model::hashing::FastMap;
use crate::model::{DeliveryState, MessageId, now_ms};
use crate::smpp::pdu::{CommandStatus, DeliverSm};
use crate::smpp::receipt::{self, Receipt, ReceiptState};
use crate::smpp::text;

const TARGET: &str = "sluice::receipts";

/// (carrier, canonical carrier id) → (message, part). Ids come from carriers,
/// so the hasher is randomly seeded. Looked up by [`IdPair`] views, so a
/// lookup allocates nothing.
type Correlation = DashMap<IdKey, (MessageId, u32), foldhash::quality::RandomState>;

/// A key of [`Correlation`]: a carrier and one of its canonical ids.
#[derive(Debug, Clone, PartialEq, Eq)]
struct IdKey {
    carrier: Arc<str>,
    id: Box<str>,
}

impl IdKey {
    fn new(carrier: &Arc<str>, id: &str) -> IdKey {
        IdKey {
            carrier: carrier.clone(),
            id: id.into(),
        }
    }
}

/// A (carrier, canonical id) pair, owned ([`IdKey`]) or borrowed
/// (`(&str, &str)`): both hash and compare alike, so a borrowed pair finds
/// an owned key.
trait IdPair {
    fn pair(&self) -> (&str, &str);
}

impl IdPair for IdKey {
    fn pair(&self) -> (&str, &str) {
        (&self.carrier, &self.id)
    }
}

impl IdPair for (&str, &str) {
    fn pair(&self) -> (&str, &str) {
        (self.0, self.1)
    }
}

impl std::hash::Hash for dyn IdPair + '_ {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.pair().hash(h);
    }
}

impl PartialEq for dyn IdPair + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.pair() == other.pair()
    }
}

impl Eq for dyn IdPair + '_ {}

impl std::hash::Hash for IdKey {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        (self as &dyn IdPair).hash(h);
    }
}

impl<'a> std::borrow::Borrow<dyn IdPair + 'a> for IdKey {
    fn borrow(&self) -> &(dyn IdPair + 'a) {
        self
    }
}

/// No part waits for a receipt under that carrier id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no message part has that carrier id")]
pub struct UnknownCarrierId;

/// A boxed future of the publication of final states.
pub type Publishing = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Separates an MM7 MessageID from a recipient in the key of one recipient
/// of a multi-recipient SubmitReq ([`recipient_id`]): the last one in a key
/// does (an MMSC could still send one, as a character reference).
const RECIPIENT_SEP: u8 = 0x1f;

/// The carrier id of one recipient of an MM7 request that had several: the
/// MMSC's `MessageID` is the request's, so each recipient's delivery report
/// is told apart by its `Recipient` (its digits: `+44…`, `44…` and
/// `44…/TYPE=PLMN` are one number).
pub fn recipient_id(message_id: &str, recipient: &str) -> Vec<u8> {
    let mut raw = Vec::with_capacity(message_id.len() + 1 + recipient.len());
    raw.extend_from_slice(message_id.as_bytes());
    raw.push(RECIPIENT_SEP);
    let number = recipient.split('/').next().unwrap_or(recipient);
    raw.extend(number.bytes().filter(u8::is_ascii_digit));
    raw
}

/// Canonical form of a carrier message id (of a [`recipient_id`]: its
/// MessageID's canonical form, then the recipient).
pub fn normalize_id(raw: &[u8]) -> String {
    if let Some(at) = raw.iter().rposition(|&b| b == RECIPIENT_SEP) {
        let mut key = normalize_plain(&raw[..at]);
        key.push(RECIPIENT_SEP as char);
        key.push_str(&String::from_utf8_lossy(&raw[at + 1..]));
        return key;
    }
    normalize_plain(raw)
}

/// The longest id [`canonical_id`] writes on the stack (SMPP ids are at most
/// 64 characters).
const INLINE_ID: usize = 72;

/// A canonical carrier id ([`normalize_id`]) built without allocating when
/// the id is short ASCII (as SMSCs send them), for looking ids up on the
/// receipt path. Only [`canonical_id`] makes one.
pub struct CanonicalId(Canonical);

enum Canonical {
    /// The canonical id in `bytes[..len]`: ASCII, `len` at most
    /// [`INLINE_ID`].
    Inline { len: u8, bytes: [u8; INLINE_ID] },
    /// An id too long for that, not ASCII, or with a [`recipient_id`]
    /// separator.
    Heap(String),
}

impl std::fmt::Debug for CanonicalId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl CanonicalId {
    /// The id.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Only ASCII is written inline (see `canonical_id`).
            Canonical::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Canonical::Heap(s) => s,
        }
    }
}

/// What `char::is_whitespace` says of an ASCII byte (`u8::is_ascii_whitespace`
/// leaves out the vertical tab).
fn ascii_space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ')
}

/// [`normalize_id`] of `raw`, on the stack when `raw` is ASCII without a
/// [`recipient_id`] separator and at most 72 bytes.
pub fn canonical_id(raw: &[u8]) -> CanonicalId {
    if raw.len() > INLINE_ID || !raw.is_ascii() || raw.contains(&RECIPIENT_SEP) {
        return CanonicalId(Canonical::Heap(normalize_id(raw)));
    }
    let edge = |b: u8| ascii_space(b) || b == 0;
    let start = raw.iter().position(|&b| !edge(b)).unwrap_or(raw.len());
    let end = raw.iter().rposition(|&b| !edge(b)).map_or(start, |i| i + 1);
    let trimmed = &raw[start..end];
    let digits = trimmed
        .iter()
        .position(|&b| b != b'0')
        .unwrap_or(trimmed.len());
    let mut bytes = [0u8; INLINE_ID];
    let kept = &trimmed[digits..];
    if kept.is_empty() {
        // All zeros (or NULs between spaces): "0", as `normalize_plain` says.
        let blank = raw.iter().all(|&b| ascii_space(b));
        if blank {
            return CanonicalId(Canonical::Inline { len: 0, bytes });
        }
        bytes[0] = b'0';
        return CanonicalId(Canonical::Inline { len: 1, bytes });
    }
    for (out, b) in bytes.iter_mut().zip(kept) {
        *out = b.to_ascii_lowercase();
    }
    CanonicalId(Canonical::Inline {
        len: kept.len() as u8,
        bytes,
    })
}

fn normalize_plain(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    let t = s.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    let t = t.trim_start_matches('0');
    if t.is_empty() && !s.trim().is_empty() {
        return "0".into();
    }
    t.to_ascii_lowercase()
}

/// Keys under which a receipt's id may have been recorded. A
/// [`recipient_id`] is looked up as itself, then as its MessageID alone,
/// exactly (a request with one recipient is recorded under its
/// MessageID; other renderings of it could name another message).
pub fn candidate_ids(raw: &[u8]) -> Vec<String> {
    if let Some(at) = raw.iter().rposition(|&b| b == RECIPIENT_SEP) {
        return vec![normalize_id(raw), normalize_plain(&raw[..at])];
    }
    let canon = normalize_plain(raw);
    let mut out = vec![canon.clone()];
    if !canon.is_empty()
        && canon.len() <= 38
        && canon.bytes().all(|b| b.is_ascii_digit())
        && let Ok(v) = canon.parse::<u128>()
    {
        out.push(format!("{v:x}"));
    }
    if !canon.is_empty()
        && canon.len() <= 32
        && canon.bytes().all(|b| b.is_ascii_hexdigit())
        && let Ok(v) = u128::from_str_radix(&canon, 16)
    {
        out.push(v.to_string());
    }
    out.dedup();
    out
}

/// A final receipt that came before the submit_sm_resp naming its id,
/// parked under its canonical id (looked up by every form of the id the
/// answer may carry, so it is held once).
struct Early {
    receipt: Receipt,
    /// The receipt's source (the handset) and destination (our sender).
    handset: Bytes,
    sender: Bytes,
    at: Instant,
    /// Sent to the cluster (or come from it): its expiry here is no loss.
    shared: bool,
}

/// Where receipts no part here waits for go in cluster mode: to the other
/// nodes, one of which may have sent the message
/// ([`crate::cluster::receipts`]).
pub trait OrphanSink: Send + Sync + 'static {
    /// Passes on a final receipt whose carrier id is unknown here.
    fn orphan(&self, carrier: &Arc<str>, receipt: &Receipt);
}

/// Correlates carrier answers and receipts with messages.
pub struct Receipts {
    ledger: Arc<Ledger>,
    hub: Arc<EventHub>,
    /// (carrier, canonical id) → (message, part).
    ids: Correlation,
    early: Mutex<EarlyReceipts>,
    early_ttl: Duration,
    max_early: usize,
    receipt_grace: Duration,
    multipart_grace: Duration,
    /// Multi-part messages with some parts reported: when the first was.
    partial: Mutex<FastMap<MessageId, Instant>>,
    finals: crate::telemetry::CounterCache<(Arc<str>, DeliveryState)>,
    receipts: crate::telemetry::CounterCache<Arc<str>>,
    /// Where inbound (MO) messages go; set once at start. Weak: the sink
    /// holds (through the backlog) these receipts.
    inbound: std::sync::OnceLock<std::sync::Weak<dyn InboundSink>>,
    /// Parts of concatenated inbound messages.
    mo_parts: Mutex<text::Reassembler<(String, String)>>,
    /// The cluster's orphan receipts (cluster mode only).
    orphans: std::sync::OnceLock<Arc<dyn OrphanSink>>,
    /// Campaign figures and opt-out attribution (set once at start).
    campaigns: std::sync::OnceLock<Arc<crate::links::campaigns::Campaigns>>,
}

#[derive(Default)]
struct EarlyReceipts {
    by_key: HashMap<(Arc<str>, String), Early>,
    order: VecDeque<(Arc<str>, String)>,
}

impl std::fmt::Debug for Receipts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receipts")
            .field("correlated", &self.ids.len())
            .finish_non_exhaustive()
    }
}

impl Receipts {
    /// A correlator over the ledger and the event hub.
    pub fn new(
        ledger: Arc<Ledger>,
        hub: Arc<EventHub>,
        cfg: &crate::settings::ReceiptsConfig,
    ) -> Receipts {
        Receipts {
            ledger,
            hub,
            ids: DashMap::with_hasher(Default::default()),
            early: Mutex::default(),
            early_ttl: cfg.early_receipt_ttl,
            max_early: cfg.max_early_receipts,
            receipt_grace: cfg.receipt_grace,
            multipart_grace: cfg.multipart_grace,
            partial: Mutex::default(),
            finals: crate::telemetry::CounterCache::new(|(tenant, state)| {
                metrics::counter!("sluice_messages_final_total",
                    "tenant" => tenant.to_string(), "state" => state.as_str())
            }),
            receipts: crate::telemetry::CounterCache::new(
                |carrier| metrics::counter!("sluice_receipts_total", "carrier" => carrier.to_string()),
            ),
            inbound: std::sync::OnceLock::new(),
            mo_parts: Mutex::new(text::Reassembler::new(10_000)),
            orphans: std::sync::OnceLock::new(),
            campaigns: std::sync::OnceLock::new(),
        }
    }

    /// Counts delivered campaign messages and records them for opt-out
    /// attribution (once, at start).
    pub fn set_campaigns(&self, campaigns: Arc<crate::links::campaigns::Campaigns>) {
        let _ = self.campaigns.set(campaigns);
    }

    /// Sends receipts unknown here to the cluster (once, at start).
    pub fn set_orphans(&self, sink: Arc<dyn OrphanSink>) {
        let _ = self.orphans.set(sink);
    }

    /// Passes a final MM7 delivery report no part here waits for to the
    /// cluster, as an orphan receipt with the stat word of its state;
    /// false outside cluster mode.
    pub fn forward_report(
        &self,
        carrier: &Arc<str>,
        raw_id: &[u8],
        state: DeliveryState,
        code: u32,
    ) -> bool {
        let Some(o) = self.orphans.get() else {
            return false;
        };
        let state = match state {
            DeliveryState::Delivered => ReceiptState::Delivered,
            DeliveryState::Expired => ReceiptState::Expired,
            DeliveryState::Unknown => ReceiptState::Unknown,
            _ => ReceiptState::Undeliverable,
        };
        o.orphan(
            carrier,
            &Receipt::bare(Bytes::copy_from_slice(raw_id), state, Some(code)),
        );
        true
    }

    /// A final receipt another node received for carrier `carrier`: applied
    /// if a part here waits for its id, else parked for a while (this
    /// node's submit_sm_resp naming it may still be on its way). `Some`
    /// when it ended a message (to publish).
    pub fn remote_receipt(&self, carrier: &Arc<str>, r: Receipt) -> Option<Publishing> {
        let f = match self.apply_receipt(carrier, &r) {
            Ok(f) => f,
            Err(UnknownCarrierId) => {
                let keys = candidate_ids(&r.message_id);
                self.park_receipt(carrier, r, Bytes::new(), Bytes::new(), true);
                if keys.iter().any(|k| self.id_known(carrier, k))
                    && let Some(r) = self.take_early(carrier, &keys)
                {
                    self.apply_receipt(carrier, &r).ok().flatten()
                } else {
                    None
                }
            }
        };
        metrics::counter!("sluice_cluster_receipts_applied_total",
            "outcome" => if f.is_some() { "ended" } else { "not_here" })
        .increment(1);
        f.map(|f| Box::pin(self.publish(vec![f])) as Publishing)
    }

    /// Sets where inbound messages go (once).
    pub fn set_inbound(&self, sink: &Arc<dyn InboundSink>) {
        let _ = self.inbound.set(Arc::downgrade(sink));
    }

    /// Carrier ids being waited on.
    pub fn correlated(&self) -> usize {
        self.ids.len()
    }

    /// Receipts waiting for their submit_sm_resp.
    pub fn early(&self) -> usize {
        self.early.lock().by_key.len()
    }

    /// Re-registers a recovered part's carrier id.
    pub fn restore(&self, carrier: &Arc<str>, id: MessageId, part: u32, canonical: &str) {
        self.ids.insert(IdKey::new(carrier, canonical), (id, part));
    }

    /// Whether a part waits for a receipt under `id` (canonical) at `carrier`.
    fn id_known(&self, carrier: &str, id: &str) -> bool {
        self.ids.contains_key(&(carrier, id) as &dyn IdPair)
    }

    /// Forgets `id` (canonical) at `carrier`, returning the part it named.
    fn take_id(&self, carrier: &str, id: &str) -> Option<(MessageId, u32)> {
        self.ids
            .remove(&(carrier, id) as &dyn IdPair)
            .map(|(_, v)| v)
    }

    /// Messages ended here from now on are published together (see
    /// [`Endings`]): the one way a message ends outside a carrier's answer.
    pub fn endings(&self) -> Endings<'_> {
        Endings {
            receipts: self,
            finals: Vec::new(),
        }
    }

    /// Ends one live message now with `state` and publishes its event
    /// (expiry, suppression, no route, crash recovery). False when it was
    /// no longer live.
    pub fn end(&self, id: MessageId, state: DeliveryState, reason: &Arc<str>) -> bool {
        self.endings().end(id, state, 0, reason).is_some()
    }

    /// Publishes final states; resolves when their events are durable.
    pub fn publish(&self, finals: Vec<Finalized>) -> impl Future<Output = ()> + Send + use<> {
        let history = self.ledger.history();
        for f in &finals {
            history.finished(
                f.message.id,
                f.state,
                f.error_code,
                f.carrier.as_deref(),
                &f.reason,
            );
            if let Some(c) = &f.carrier {
                // Only its own: an SMSC may have reused the id since.
                for k in &f.carrier_ids {
                    self.ids
                        .remove_if(&(&**c, &**k) as &dyn IdPair, |_, (id, _)| {
                            *id == f.message.id
                        });
                }
            }
        }
        self.count_finals(&finals);
        if let Some(c) = self.campaigns.get() {
            c.finals(&finals, crate::model::now_ms() / 1000);
        }
        let p = self.hub.publish_final(&finals);
        async move {
            if let Err(e) = p.wait().await {
                tracing::error!(target: TARGET, error = %e, "journal failed; events not published");
            }
        }
    }

    /// What a part outcome means for its message: `Some` when it ended it.
    fn finished(&self, id: MessageId, r: PartResult) -> Option<Finalized> {
        match r {
            PartResult::Final(f) => {
                if f.parts > 1 {
                    self.partial.lock().remove(&id);
                }
                Some(f)
            }
            PartResult::Partial => {
                self.partial.lock().entry(id).or_insert_with(Instant::now);
                None
            }
            PartResult::Unknown => None,
        }
    }

    fn part_result(&self, id: MessageId, r: PartResult) -> Option<Publishing> {
        self.finished(id, r)
            .map(|f| Box::pin(self.publish(vec![f])) as Publishing)
    }

    /// Records a final outcome for carrier id `raw_id`; `Ok(Some)` when it
    /// ended its message (to publish).
    fn settle(
        &self,
        carrier: &Arc<str>,
        raw_id: &[u8],
        state: DeliveryState,
        code: u32,
        reason: Arc<str>,
    ) -> Result<Option<Finalized>, UnknownCarrierId> {
        // The id as given first (the common case), other renderings only then.
        let canon = canonical_id(raw_id);
        let found = self.take_id(carrier, canon.as_str()).or_else(|| {
            candidate_ids(raw_id)
                .into_iter()
                .skip(1)
                .find_map(|k| self.take_id(carrier, &k))
        });
        let Some((id, part)) = found else {
            return Err(UnknownCarrierId);
        };
        self.ledger
            .history()
            .receipt(id, part, state, code, &reason);
        let outcome = PartOutcome {
            state,
            error_code: code,
            reason,
        };
        Ok(self.finished(id, self.ledger.part_done(id, part, outcome)))
    }

    fn apply_receipt(
        &self,
        carrier: &Arc<str>,
        r: &Receipt,
    ) -> Result<Option<Finalized>, UnknownCarrierId> {
        let (state, reason) = receipt_outcome(&r.state);
        self.settle(
            carrier,
            &r.message_id,
            state,
            r.error_code.unwrap_or(0),
            reason.clone(),
        )
    }

    /// Applies a final receipt; parks it when its id is not known yet (the
    /// submit_sm_resp naming it may still be on its way).
    fn settle_receipt(&self, carrier: &Arc<str>, r: Receipt, sm: &DeliverSm) -> Option<Finalized> {
        match self.apply_receipt(carrier, &r) {
            Ok(f) => f,
            Err(UnknownCarrierId) => {
                let keys = candidate_ids(&r.message_id);
                let orphans = self.orphans.get();
                if let Some(o) = orphans {
                    o.orphan(carrier, &r);
                }
                self.park_receipt(
                    carrier,
                    r,
                    sm.source_addr.clone(),
                    sm.destination_addr.clone(),
                    orphans.is_some(),
                );
                // The id may have been published while we parked.
                if keys.iter().any(|k| self.id_known(carrier, k))
                    && let Some(r) = self.take_early(carrier, &keys)
                {
                    return self.apply_receipt(carrier, &r).ok().flatten();
                }
                None
            }
        }
    }

    /// Applies a final outcome reported for carrier id `raw_id` (an SMPP
    /// receipt, an MM7 delivery report).
    ///
    /// # Errors
    /// [`UnknownCarrierId`] when no part has that id.
    pub fn report(
        &self,
        carrier: &Arc<str>,
        raw_id: &[u8],
        state: DeliveryState,
        code: u32,
        reason: &str,
    ) -> Result<Option<Publishing>, UnknownCarrierId> {
        Ok(self
            .settle(carrier, raw_id, state, code, reason.into())?
            .map(|f| Box::pin(self.publish(vec![f])) as Publishing))
    }

    /// A receipt, or an inbound message to forward; `None` for what needs
    /// nothing more than an OK answer. Adds 1 to `receipts` for a readable
    /// receipt (the caller counts them in one go).
    fn classify(&self, carrier: &Arc<str>, sm: DeliverSm, receipts: &mut u64) -> Delivered {
        if !receipt::is_receipt(&sm) {
            let from = String::from_utf8_lossy(&sm.source_addr).into_owned();
            let to = String::from_utf8_lossy(&sm.destination_addr).into_owned();
            let Some(text) = mo_text(&self.mo_parts, &sm, &from, &to) else {
                // A part of a longer message: acknowledged; handled when complete.
                return Delivered::Done;
            };
            return Delivered::Mo(InboundMo {
                carrier: carrier.clone(),
                channel: "sms",
                from,
                to,
                text,
                linked_id: String::new(),
            });
        }
        let r = match receipt::parse_receipt(&sm) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(target: TARGET, %carrier, error = %crate::model::LogSafe::display(&e), "unreadable receipt");
                metrics::counter!("sluice_receipts_dropped_total", "reason" => "unreadable")
                    .increment(1);
                return Delivered::Done;
            }
        };
        *receipts += 1;
        if !r.is_final() {
            return Delivered::Done;
        }
        match self.settle_receipt(carrier, r, &sm) {
            Some(f) => Delivered::Final(f),
            None => Delivered::Done,
        }
    }

    fn forward(&self, mo: InboundMo) -> Pin<Box<dyn Future<Output = CommandStatus> + Send>> {
        // Unset or gone (shutting down): the SMSC delivers it again later.
        let Some(sink) = self.inbound.get().and_then(std::sync::Weak::upgrade) else {
            return Box::pin(async { CommandStatus::ESME_RX_T_APPN });
        };
        Box::pin(async move {
            match sink.inbound(mo).await {
                Ok(()) => CommandStatus::ESME_ROK,
                // Not durable: let the SMSC deliver it again later.
                Err(_) => CommandStatus::ESME_RX_T_APPN,
            }
        })
    }

    fn park_receipt(
        &self,
        carrier: &Arc<str>,
        r: Receipt,
        handset: Bytes,
        sender: Bytes,
        shared: bool,
    ) {
        metrics::counter!("sluice_receipts_early_total", "carrier" => carrier.to_string())
            .increment(1);
        let key = (carrier.clone(), normalize_id(&r.message_id));
        let early = Early {
            receipt: r,
            handset,
            sender,
            at: Instant::now(),
            shared,
        };
        let mut e = self.early.lock();
        if e.by_key.insert(key.clone(), early).is_none() {
            e.order.push_back(key);
        }
        while e.by_key.len() > self.max_early {
            let Some(k) = e.order.pop_front() else { break };
            if e.by_key.remove(&k).is_some() {
                metrics::counter!("sluice_receipts_dropped_total", "reason" => "early_overflow")
                    .increment(1);
            }
        }
    }

    /// Takes the parked receipt for carrier id `key` (canonical) in any of
    /// its forms; cheap when nothing is parked (the usual case).
    fn take_early_by_id(&self, carrier: &Arc<str>, key: &str) -> Option<Receipt> {
        if self.early.lock().by_key.is_empty() {
            return None;
        }
        self.take_early(carrier, &candidate_ids(key.as_bytes()))
    }

    /// Takes the parked receipt whose id is any of `keys` (the forms of one
    /// carrier id: canonical, hex, decimal).
    fn take_early(&self, carrier: &Arc<str>, keys: &[String]) -> Option<Receipt> {
        let mut e = self.early.lock();
        keys.iter()
            .find_map(|k| e.by_key.remove(&(carrier.clone(), k.clone())))
            .map(|found| found.receipt)
    }

    /// Counts `finals` by tenant and state, one increment per run of equal
    /// pairs (a batch is mostly one tenant's messages, delivered).
    fn count_finals(&self, finals: &[Finalized]) {
        let mut run: Option<(&Arc<str>, DeliveryState, u64)> = None;
        for f in finals {
            match &mut run {
                Some((tenant, state, n)) if **tenant == f.message.tenant && *state == f.state => {
                    *n += 1;
                }
                _ => {
                    if let Some((tenant, state, n)) = run {
                        self.finals.increment(&(tenant.clone(), state), n);
                    }
                    run = Some((&f.message.tenant, f.state, 1));
                }
            }
        }
        if let Some((tenant, state, n)) = run {
            self.finals.increment(&(tenant.clone(), state), n);
        }
    }

    fn count_receipts(&self, carrier: &Arc<str>, n: u64) {
        if n > 0 {
            self.receipts.increment(carrier, n);
        }
    }

    /// Sweeps and the rest of the gateway publish through this too.
    pub fn hub(&self) -> &Arc<EventHub> {
        &self.hub
    }
}

/// Where inbound (MO) messages go: compliance keywords, auto-replies and
/// the upstream event (implemented by `inbound::Inbound`).
pub trait InboundSink: Send + Sync + 'static {
    /// Handles one complete inbound message; resolves `Ok` once what it
    /// carries is durable, `Err` when it could not be stored (the carrier
    /// should deliver it again).
    fn inbound(
        self: Arc<Self>,
        msg: InboundMo,
    ) -> Pin<Box<dyn Future<Output = Result<(), InboundError>> + Send>>;
}

/// Why an inbound message could not be stored (the carrier should deliver
/// it again).
#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    /// The opt-out or opt-in could not be journaled.
    #[error("the opt-out could not be journaled: {0}")]
    OptOut(#[source] crate::compliance::ComplianceError),
    /// The upstream event could not be journaled.
    #[error("the inbound event could not be journaled: {0}")]
    Event(#[source] Arc<crate::journal::JournalError>),
}

impl std::fmt::Debug for dyn InboundSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InboundSink")
    }
}

/// An inbound message from a handset.
#[derive(Debug, Clone)]
pub struct InboundMo {
    /// Carrier it came through.
    pub carrier: Arc<str>,
    /// `sms` or `mms`.
    pub channel: &'static str,
    /// The handset (source address as given).
    pub from: String,
    /// The sender number it was sent to (destination address as given).
    pub to: String,
    /// Text (undecodable bytes replaced, so nothing is lost).
    pub text: String,
    /// An MMS's MM7 `LinkedID` (empty otherwise).
    pub linked_id: String,
}

/// Decodes a deliver_sm's text, reassembling concatenated parts; `None`
/// while parts are missing.
fn mo_text(
    parts: &Mutex<text::Reassembler<(String, String)>>,
    sm: &DeliverSm,
    from: &str,
    to: &str,
) -> Option<String> {
    let incoming = text::Incoming::of(sm, false);
    match parts
        .lock()
        .push((from.to_owned(), to.to_owned()), &incoming)
    {
        Ok(done) => done,
        Err(e) => {
            // Undecodable: keep the bytes as best we can rather than drop it.
            tracing::warn!(target: TARGET, from = %crate::model::LogSafe::new(from), to = %crate::model::LogSafe::new(to), error = %crate::model::LogSafe::display(&e), data_coding = sm.data_coding,
                "inbound message with invalid encoding; forwarding it lossily decoded");
            metrics::counter!("sluice_inbound_bad_encoding_total").increment(1);
            let raw = sm
                .tlv(crate::smpp::pdu::tag::MESSAGE_PAYLOAD)
                .map_or(&sm.short_message[..], |t| &t.value[..]);
            Some(String::from_utf8_lossy(raw).into_owned())
        }
    }
}

/// Messages ended together: each is recorded in the ledger as it ends
/// ([`Endings::end`]), and all their final events are published in one batch
/// when this is dropped, so no caller can end a message and forget its
/// event (guarantee 2: exactly one terminal event). Use inside a tokio
/// runtime (the wait for the events' durability is spawned).
#[derive(Debug)]
#[must_use = "endings are published when dropped"]
pub struct Endings<'a> {
    receipts: &'a Receipts,
    finals: Vec<Finalized>,
}

impl Endings<'_> {
    /// Ends live message `id` with `state`: the final it will publish, to
    /// adjust (the carrier and code that refused it), or `None` when the
    /// message was no longer live (nothing is published for it).
    pub fn end(
        &mut self,
        id: MessageId,
        state: DeliveryState,
        error_code: u32,
        reason: &Arc<str>,
    ) -> Option<&mut Finalized> {
        let f = self.receipts.ledger.finish(id, state, error_code, reason)?;
        self.finals.push(f);
        self.finals.last_mut()
    }

    /// Messages ended so far.
    pub fn len(&self) -> usize {
        self.finals.len()
    }

    /// Whether none ended.
    pub fn is_empty(&self) -> bool {
        self.finals.is_empty()
    }
}

impl Drop for Endings<'_> {
    fn drop(&mut self) {
        if !self.finals.is_empty() {
            let finals = std::mem::take(&mut self.finals);
            tokio::spawn(self.receipts.publish(finals));
        }
    }
}

impl Receipts {
    /// Ends messages whose validity (plus a grace for late receipts) is over,
    /// and drops early receipts that waited too long. Run periodically.
    pub fn sweep(&self) -> impl Future<Output = ()> + Send + use<> {
        let now = now_ms();
        let grace = self.receipt_grace.as_millis() as u64;
        let mut ended: Vec<(MessageId, &'static str)> = Vec::new();
        self.ledger.for_each(|e: &Entry| match &e.stage {
            Stage::Queued => {
                // Also covers a carrier that is down: its queue does not move.
                if e.message.expires_at_ms <= now {
                    ended.push((e.message.id, "validity ended before dispatch"));
                }
            }
            Stage::Dispatched(d) => {
                let parts = &d.parts;
                let waiting_receipts = parts
                    .iter()
                    .all(|p| !matches!(p, Part::Pending | Part::Written));
                // Parts still in a carrier's queue (one that is down, with
                // nowhere to fail over): none can be written any more, since
                // every part is vetted for validity right before writing.
                let never_written = parts.contains(&Part::Pending)
                    && parts
                        .iter()
                        .all(|p| matches!(p, Part::Pending | Part::Done(_)));
                if waiting_receipts && e.message.expires_at_ms + grace <= now {
                    ended.push((e.message.id, "no receipt within validity"));
                } else if never_written && e.message.expires_at_ms <= now {
                    ended.push((e.message.id, "validity ended before the carrier took it"));
                }
            }
        });
        let reason_cache: HashMap<&'static str, Arc<str>> = ended
            .iter()
            .map(|(_, r)| (*r, Arc::<str>::from(*r)))
            .collect();
        let mut finals: Vec<Finalized> = ended
            .into_iter()
            .filter_map(|(id, r)| {
                self.ledger
                    .finish(id, DeliveryState::Expired, 0, &reason_cache[r])
            })
            .collect();
        // Multi-part messages whose other parts' receipts never came.
        let settle: Vec<MessageId> = {
            let mut p = self.partial.lock();
            let due: Vec<MessageId> = p
                .iter()
                .filter(|(_, at)| at.elapsed() >= self.multipart_grace)
                .map(|(id, _)| *id)
                .collect();
            for id in &due {
                p.remove(id);
            }
            due
        };
        finals.extend(settle.into_iter().filter_map(|id| self.ledger.settle(id)));
        {
            let mut e = self.early.lock();
            let ttl = self.early_ttl;
            while let Some(k) = e.order.front() {
                match e.by_key.get(k) {
                    Some(x) if x.at.elapsed() < ttl => break,
                    Some(_) => {
                        let k = e.order.pop_front().expect("front exists");
                        // Shared with the cluster: another node may have
                        // ended its message; not counted as dropped here.
                        if e.by_key.remove(&k).is_some_and(|x| !x.shared) {
                            metrics::counter!("sluice_receipts_dropped_total", "reason" => "no_match")
                                .increment(1);
                        }
                    }
                    None => {
                        e.order.pop_front();
                    }
                }
            }
        }
        self.publish(finals)
    }
}

/// Maps a final receipt state to a delivery state and a readable reason.
pub fn receipt_outcome(s: &ReceiptState) -> (DeliveryState, &'static Arc<str>) {
    /// One shared reason per receipt state (a receipt clones it instead of
    /// allocating its own).
    static REASONS: LazyLock<[Arc<str>; 9]> = LazyLock::new(|| {
        [
            "DELIVRD",
            "ACCEPTD",
            "EXPIRED: carrier validity ended",
            "DELETED",
            "UNDELIV",
            "REJECTD",
            "SKIPPED",
            "UNKNOWN",
            "not final",
        ]
        .map(Arc::from)
    });
    let (state, reason) = match s {
        ReceiptState::Delivered => (DeliveryState::Delivered, 0),
        ReceiptState::Accepted => (DeliveryState::Delivered, 1),
        ReceiptState::Expired => (DeliveryState::Expired, 2),
        ReceiptState::Deleted => (DeliveryState::Failed, 3),
        ReceiptState::Undeliverable => (DeliveryState::Failed, 4),
        ReceiptState::Rejected => (DeliveryState::Failed, 5),
        ReceiptState::Skipped => (DeliveryState::Failed, 6),
        ReceiptState::Unknown => (DeliveryState::Unknown, 7),
        ReceiptState::Enroute | ReceiptState::Other(_) => (DeliveryState::Unknown, 8),
    };
    (state, &REASONS[reason])
}

impl CarrierSink for Receipts {
    fn early_receipt_for(
        &self,
        carrier: &Arc<str>,
        handset: &[u8],
        sender: &[u8],
        text: &str,
    ) -> Option<Bytes> {
        let e = self.early.lock();
        e.by_key.iter().find_map(|((c, _), early)| {
            (c == carrier
                && same_address(&early.handset, handset)
                && same_address(&early.sender, sender)
                && early
                    .receipt
                    .text
                    .as_deref()
                    .is_some_and(|t| text_prefix_matches(t, text)))
            .then(|| early.receipt.message_id.clone())
        })
    }

    fn written(
        &self,
        carrier: &Arc<str>,
        parts: &[(MessageId, u32, u32)],
    ) -> crate::carrier::WriteGate {
        let durable = self.ledger.written(carrier, parts);
        Box::pin(async move {
            match durable.wait().await {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!(target: TARGET, error = %e, "journal failed; nothing more is written to carriers");
                    false
                }
            }
        })
    }

    fn part_submitted(&self, carrier: &Arc<str>, id: MessageId, part: u32, raw: &[u8]) {
        let key = canonical_id(raw);
        let key = key.as_str();
        if key.is_empty() {
            // An OK answer without an id cannot be correlated: the part will
            // end `unknown` at expiry unless a receipt names it some other way.
            tracing::warn!(target: TARGET, %carrier, %id, "submit_sm_resp without message_id");
        }
        if !self.ledger.part_submitted(id, part, key) {
            return;
        }
        self.ledger.history().answered(id, carrier, part, key);
        // Publish the id first, then look for a receipt that came before it.
        // `deliver` does the reverse (park, then look for the id), so
        // whichever runs second sees the other; `take_early` hands a parked
        // receipt to exactly one of them.
        self.ids.insert(IdKey::new(carrier, key), (id, part));
        if let Some(r) = self.take_early_by_id(carrier, key)
            && let Ok(Some(f)) = self.apply_receipt(carrier, &r)
        {
            tokio::spawn(self.publish(vec![f]));
        }
    }

    fn part_failed(
        &self,
        id: MessageId,
        part: u32,
        state: DeliveryState,
        code: u32,
        reason: String,
    ) {
        self.ledger
            .history()
            .part_failed(id, part, state, code, &reason);
        let r = self.ledger.part_done(
            id,
            part,
            PartOutcome {
                state,
                error_code: code,
                reason: reason.into(),
            },
        );
        if let Some(fut) = self.part_result(id, r) {
            tokio::spawn(fut);
        }
    }

    fn part_waits(&self, id: MessageId, part: u32, cause: &str) {
        self.ledger.history().waits(id, part, cause);
    }

    fn deliver(
        &self,
        carrier: &Arc<str>,
        sm: DeliverSm,
    ) -> Pin<Box<dyn Future<Output = CommandStatus> + Send>> {
        let mut receipts = 0;
        let delivered = self.classify(carrier, sm, &mut receipts);
        self.count_receipts(carrier, receipts);
        match delivered {
            Delivered::Done => Box::pin(async { CommandStatus::ESME_ROK }),
            Delivered::Mo(mo) => self.forward(mo),
            Delivered::Final(f) => {
                let p = self.publish(vec![f]);
                Box::pin(async move {
                    p.await;
                    CommandStatus::ESME_ROK
                })
            }
        }
    }

    fn deliver_batch(
        &self,
        carrier: &Arc<str>,
        batch: Vec<(u32, DeliverSm)>,
    ) -> crate::smpp::session::DeliverAnswers {
        // Every receipt of a read burst ends in one publication: one journal
        // record, one wait, one answer per PDU.
        let mut finals = Vec::with_capacity(batch.len());
        let mut done = Vec::with_capacity(batch.len());
        let mut mo = Vec::new();
        let mut receipts = 0;
        for (seq, sm) in batch {
            match self.classify(carrier, sm, &mut receipts) {
                Delivered::Done => done.push((seq, CommandStatus::ESME_ROK)),
                Delivered::Final(f) => {
                    finals.push(f);
                    done.push((seq, CommandStatus::ESME_ROK));
                }
                Delivered::Mo(m) => mo.push((seq, self.forward(m))),
            }
        }
        self.count_receipts(carrier, receipts);
        let publishing = (!finals.is_empty()).then(|| self.publish(finals));
        Box::pin(async move {
            if let Some(p) = publishing {
                p.await;
            }
            for (seq, fut) in mo {
                done.push((seq, fut.await));
            }
            done
        })
    }
}

/// Two SMPP addresses name the same number or sender (a `+` or leading
/// zeros aside).
fn same_address(a: &[u8], b: &[u8]) -> bool {
    let trim = |x: &[u8]| -> usize {
        x.iter()
            .position(|&c| c != b'+' && c != b'0')
            .unwrap_or(x.len())
    };
    let (a, b) = (&a[trim(a)..], &b[trim(b)..]);
    !a.is_empty() && a == b
}

/// A receipt's `text:` (the start of the message, as the SMSC echoed it,
/// often with `?` for characters it could not show) is the start of `text`.
fn text_prefix_matches(snippet: &[u8], text: &str) -> bool {
    let snippet = String::from_utf8_lossy(snippet);
    let snippet = snippet.trim_end();
    !snippet.is_empty()
        && snippet.chars().count() <= text.chars().count()
        && snippet
            .chars()
            .zip(text.chars())
            .all(|(s, t)| s == t || s == '?' || s == '\u{fffd}')
}

/// What a deliver_sm came to.
enum Delivered {
    /// Nothing to wait for.
    Done,
    /// A receipt that ended its message.
    Final(Finalized),
    /// An inbound message to forward.
    Mo(InboundMo),
}

/// Receipts over a fresh journal in `dir` (tenant `t`) and their ledger,
/// for unit tests here and in the carriers.
#[cfg(test)]
pub(crate) fn for_tests(dir: &std::path::Path) -> (Arc<Ledger>, Arc<Receipts>) {
    for_tests_with(dir, &crate::settings::JournalConfig::default())
}

/// As [`for_tests`], with the journal configured by `cfg`.
#[cfg(test)]
pub(crate) fn for_tests_with(
    dir: &std::path::Path,
    cfg: &crate::settings::JournalConfig,
) -> (Arc<Ledger>, Arc<Receipts>) {
    for_tests_recording(dir, cfg, crate::history::History::disabled())
}

/// As [`for_tests_with`], the ledger recording its steps into `history`.
#[cfg(test)]
pub(crate) fn for_tests_recording(
    dir: &std::path::Path,
    cfg: &crate::settings::JournalConfig,
    history: crate::history::History,
) -> (Arc<Ledger>, Arc<Receipts>) {
    let (journal, _) = crate::journal::Journal::open(dir, cfg).expect("journal in a temp dir");
    let ledger = Arc::new(Ledger::new(journal.clone()).with_history(history));
    let hub = Arc::new(EventHub::new(
        journal,
        [Arc::<str>::from("t")],
        Arc::new(crate::ingest::event_wire::WireEvents),
    ));
    let receipts = Receipts::new(
        ledger.clone(),
        hub,
        &crate::settings::ReceiptsConfig::default(),
    );
    (ledger, Arc::new(receipts))
}

#[cfg(test)]
mod tests;
