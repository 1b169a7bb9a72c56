//! The gateway: wires the pipeline together — journal recovery, ledger,
//! events, receipts, scheduler, carriers, ingest and the HTTP endpoint —
//! implements the ingest [`Backend`] (admission → journal → queue), and runs
//! the background chores (expiry sweep, journal compaction, gauges).
//!
//! Start-up order matters: the journal is replayed and every recovered
//! message and event restored *before* the ingest listener accepts anything.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::admission::{self, Dedupe};
use crate::carrier::smpp::SmppCarrier;
use crate::compliance::{Compliance, Inbound};
use crate::config::{Config, Recovery, Secret};
use crate::events::EventHub;
use crate::ingest::pb::{self, RejectReason};
use crate::ingest::{self, Backend};
use crate::journal::{Journal, Recovered};
use crate::ledger::{Entry, Ledger, Part, Stage};
use crate::model::{DeliveryState, Message, MessageId, Msisdn, now_ms};
use crate::model::{LogSafe, Sender};
use crate::receipts::{InboundMo, InboundSink, Receipts};
use crate::schedule::{self, Scheduler};
use crate::spill::Spill;
use crate::telemetry::{self, Health};

mod doors;
mod mms;

const TARGET: &str = "sluice::gateway";

/// Queued messages, binds up and idle, nothing dispatched for this long:
/// dispatch has stalled (`sluice_dispatch_stalled`, an error log).
const STALL_AFTER: Duration = Duration::from_secs(10);

struct TenantEntry {
    name: Arc<str>,
    token: Secret,
    default_validity: Duration,
    /// The senders it may send from.
    senders: admission::OwnedSenders,
    /// National numbers of this country are accepted (normalised to E.164).
    default_country: Option<crate::model::numbering::Country>,
}

/// The wired pipeline; implements the ingest [`Backend`].
pub struct Gateway {
    journal: Journal,
    ledger: Arc<Ledger>,
    hub: Arc<EventHub>,
    receipts: Arc<Receipts>,
    scheduler: Arc<Scheduler>,
    carriers: HashMap<Arc<str>, Arc<SmppCarrier>>,
    dedupe: Dedupe,
    dedupe_log: crate::journal::dedupe_log::DedupeLog,
    tenants: HashMap<String, TenantEntry>,
    routes: Vec<(String, Vec<Arc<str>>)>,
    failover_after: HashMap<Arc<str>, Duration>,
    max_live: u64,
    /// Queued messages beyond `max_in_memory` wait on disk.
    spill: Arc<Spill>,
    max_in_memory: u64,
    /// Paging in and compaction exclude each other: a message being paged
    /// in is, for a moment, in neither the spill nor the ledger.
    spill_gate: tokio::sync::Mutex<()>,
    /// Segments the last compaction carried forward (not counted against
    /// `max_segments`, or a large backlog would compact without end).
    carried_segments: std::sync::atomic::AtomicU64,
    compliance: Arc<Compliance>,
    /// MMSCs, in configuration order.
    mmscs: Vec<Arc<crate::carrier::mm7::Mm7Carrier>>,
    /// MMS routes: E.164 prefix → MMSC names in order of preference
    /// (empty: every MMSC, in configuration order).
    mms_routes: Vec<(String, Vec<Arc<str>>)>,
    mms: crate::config::MmsConfig,
    media: Arc<crate::media::store::MediaStore>,
    links: Arc<crate::media::link::LinkSigner>,
    uploads: Arc<mms::Uploads>,
    /// Itself, for tasks that outlive a borrow (set once at start).
    this: std::sync::OnceLock<std::sync::Weak<Gateway>>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("live", &self.ledger.live())
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// The carrier a recipient routes to: the first carrier of the first
    /// matching route that has a bind up, else that route's first carrier
    /// (its traffic waits there).
    fn route(&self, to: Msisdn) -> Option<&Arc<str>> {
        let number = to.to_string();
        let (_, carriers) = self
            .routes
            .iter()
            .find(|(prefix, _)| number.starts_with(prefix.as_str()))?;
        carriers
            .iter()
            .find(|c| self.carriers.get(*c).is_some_and(|c| c.binds_up() > 0))
            .or_else(|| carriers.first())
    }

    /// Raises the alarm for carriers whose binds are up and idle while
    /// messages wait that no limit holds back: dispatch has stalled (a
    /// state that must never be silent).
    fn stalls(&self, stalled: &mut std::collections::HashSet<Arc<str>>) {
        let now = now_ms();
        for (name, carrier) in &self.carriers {
            let idle = self
                .scheduler
                .queue(name)
                .and_then(|q| q.idle_for(now))
                .filter(|d| *d >= STALL_AFTER && carrier.binds_up() > 0 && carrier.is_idle());
            let gauge = metrics::gauge!("sluice_dispatch_stalled", "carrier" => name.to_string());
            match idle {
                Some(d) => {
                    gauge.set(1.0);
                    if stalled.insert(name.clone()) {
                        let queued = self.scheduler.queue(name).map_or(0, |q| q.len());
                        tracing::error!(target: TARGET, carrier = %name, queued, idle_s = d.as_secs(),
                            "dispatch stalled: messages queued, binds up, nothing dispatched");
                    }
                }
                None => {
                    gauge.set(0.0);
                    if stalled.remove(name) {
                        tracing::info!(target: TARGET, carrier = %name, "dispatch resumed");
                    }
                }
            }
        }
    }

    /// Moves the queue of a carrier that has had no bind up for its
    /// `failover_after` to the carriers its messages' routes prefer now.
    fn failover(&self) {
        for (name, carrier) in &self.carriers {
            let (Some(after), Some(queue)) =
                (self.failover_after.get(name), self.scheduler.queue(name))
            else {
                continue;
            };
            if carrier.down_for().is_none_or(|d| d < *after) {
                continue;
            }
            let alternative_up = self
                .carriers
                .iter()
                .any(|(n, c)| n != name && c.binds_up() > 0);
            if !alternative_up {
                continue;
            }
            // Messages dispatched to this carrier but never written go back
            // to queued (journaled), so they can take another carrier.
            // Only what the ledger returns to queued leaves the carrier's
            // queue: a part it will not give up stays where it can still go.
            let taken = carrier.take_back_unsent(|ids| self.ledger.undispatch(ids));
            let back: Vec<Arc<Message>> = taken
                .iter()
                .filter_map(|id| self.ledger.get(*id))
                .map(|e| e.message)
                .collect();
            self.enqueue(&back);
            let mut moved = back.len() as u64;
            let mut by_target: HashMap<Arc<str>, Vec<schedule::fair::Item>> = HashMap::new();
            for item in queue.drain() {
                let target = self
                    .route(item.message.to)
                    .cloned()
                    .unwrap_or_else(|| name.clone());
                if target != *name {
                    moved += 1;
                }
                by_target.entry(target).or_default().push(item);
            }
            for (target, items) in by_target {
                if let Some(q) = self.scheduler.queue(&target) {
                    q.push_items(items);
                }
            }
            if moved > 0 {
                metrics::counter!("sluice_failover_messages_total", "carrier" => name.to_string())
                    .increment(moved);
                tracing::warn!(target: TARGET, carrier = %name, moved, "carrier down: traffic failed over");
            }
        }
        self.mms_failover();
    }

    /// The ledger of live messages.
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// Queued messages waiting on disk.
    pub fn spill(&self) -> &Arc<Spill> {
        &self.spill
    }

    /// The carrier queues.
    pub fn scheduler(&self) -> &Arc<Scheduler> {
        &self.scheduler
    }

    /// Opt-outs and keywords.
    pub fn compliance(&self) -> &Arc<Compliance> {
        &self.compliance
    }

    /// The journal.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    fn enqueue(&self, messages: &[Arc<Message>]) {
        // Grouped per carrier queue: one lock and one wake-up per queue.
        let mut by_queue: Vec<(Arc<schedule::CarrierQueue>, Vec<Arc<Message>>)> = Vec::new();
        let mut push = |q: &Arc<schedule::CarrierQueue>, m: &Arc<Message>| match by_queue
            .iter_mut()
            .find(|(g, _)| Arc::ptr_eq(g, q))
        {
            Some((_, v)) => v.push(m.clone()),
            None => by_queue.push((q.clone(), vec![m.clone()])),
        };
        for m in messages {
            if !m.media.is_empty() {
                match self.mms_route(m) {
                    Ok(mmsc) => {
                        if let Some(q) = self.scheduler.queue(&mmsc) {
                            push(q, m);
                        }
                    }
                    Err(reason) => self.fallback(m.clone(), reason, None),
                }
                continue;
            }
            match self.route(m.to).and_then(|c| self.scheduler.queue(c)) {
                Some(q) => push(q, m),
                None => {
                    // Routes changed since acceptance: nothing can take it.
                    self.receipts.end(
                        m.id,
                        DeliveryState::Rejected,
                        &"no route to this recipient".into(),
                    );
                }
            }
        }
        for (q, ms) in by_queue {
            q.push(ms.iter());
        }
    }

    /// Queues accepted messages in memory while the budget allows, and
    /// spills the rest to disk (behind what their tenant and priority
    /// already have there, to keep their order). Transactional traffic gets
    /// an eighth of the budget on top, so another tenant's blast filling it
    /// does not push a password reset to disk.
    fn enqueue_or_spill(&self, messages: &[Arc<Message>]) {
        let budget = self.max_in_memory;
        let mut in_memory = self.scheduler.in_memory() as u64;
        if self.spill.is_empty() && in_memory + messages.len() as u64 <= budget {
            return self.enqueue(messages);
        }
        let mut keep = Vec::with_capacity(messages.len());
        let mut out: Vec<Arc<Message>> = Vec::new();
        let mut spilling: Vec<(&Arc<str>, crate::model::Priority)> = Vec::new();
        for m in messages {
            let key = (&m.tenant, m.priority);
            let limit = match m.priority {
                crate::model::Priority::Transactional => budget + budget / 8,
                crate::model::Priority::Marketing => budget,
            };
            let behind = spilling.contains(&key) || self.spill.holds(&m.tenant, m.priority);
            if !behind && in_memory < limit {
                in_memory += 1;
                keep.push(m.clone());
            } else {
                if !spilling.contains(&key) {
                    spilling.push(key);
                }
                out.push(m.clone());
            }
        }
        if !out.is_empty() {
            match self.spill.push(&out) {
                Ok(()) => self.ledger.forget(out.iter().map(|m| m.id)),
                Err(e) => {
                    tracing::error!(target: TARGET, error = %e, messages = out.len(),
                        "spill write failed; keeping the messages in memory");
                    keep.append(&mut out);
                }
            }
        }
        self.enqueue(&keep);
    }

    /// Pages spilled messages back in while the in-memory queues have room
    /// (down to three quarters of the budget before a page is read).
    async fn page_in(&self) {
        while !self.spill.is_empty() {
            let in_memory = self.scheduler.in_memory() as u64;
            let room = self.max_in_memory.saturating_sub(in_memory);
            if room < (self.max_in_memory / 4).max(1).min(self.spill.len()) {
                return;
            }
            let _gate = self.spill_gate.lock().await;
            let spill = self.spill.clone();
            let max = room.min(50_000) as usize;
            let taken = tokio::task::spawn_blocking(move || spill.take(max)).await;
            let messages: Vec<Arc<Message>> = match taken {
                Ok(ms) => ms.into_iter().map(Arc::new).collect(),
                Err(_) => {
                    self.spill.paged_in();
                    return;
                }
            };
            if messages.is_empty() {
                self.spill.paged_in();
                return;
            }
            self.ledger.admit(&messages);
            self.enqueue(&messages);
            self.spill.paged_in();
        }
    }

    /// Restores recovered messages and events (before ingest starts).
    fn restore(&self, rec: Recovered, recovery: Recovery) {
        let now = now_ms();
        // Keys of Accept records still in the journal: logged when their
        // (old) segments are compacted; keys already in the dedupe log: not.
        for (tenant, client_ref, id, at) in &rec.dedupe {
            let fp = self.dedupe.fingerprint(tenant, client_ref);
            self.dedupe.restore(fp, *id, *at, now, Some(0));
        }
        match self.dedupe_log.load(now, self.dedupe.window_ms()) {
            Ok(entries) => {
                for (fp, id, at) in entries {
                    self.dedupe.restore(fp, MessageId(id), at, now, None);
                }
            }
            Err(e) => {
                tracing::error!(target: TARGET, error = %e, "dedupe log unreadable; retries of old batches may be sent again")
            }
        }
        self.hub.restore(rec.events);
        let mut requeue = Vec::new();
        let mut unknown = Vec::new();
        let total = rec.messages.len();
        for rm in rec.messages {
            let message = Arc::new(rm.message);
            let carrier = rm
                .carrier
                .as_deref()
                .and_then(|c| self.carriers.get_key_value(c))
                .map(|(k, _)| k.clone());
            match (rm.carrier, carrier) {
                (None, _) => {
                    self.ledger.restore(Entry {
                        message: message.clone(),
                        stage: Stage::Queued,
                    });
                    requeue.push(message);
                }
                (Some(_), Some(c))
                    if rm.parts > 0
                        && rm.carrier_ids.len() == rm.parts as usize
                        && rm.carrier_ids.iter().all(|s| !s.is_empty()) =>
                {
                    // Every part was accepted: wait for the receipts.
                    let parts: Vec<Part> = rm
                        .carrier_ids
                        .iter()
                        .map(|s| Part::Submitted(s.as_str().into()))
                        .collect();
                    for (i, k) in rm.carrier_ids.iter().enumerate() {
                        self.receipts.restore(&c, message.id, i as u32, k);
                    }
                    self.ledger.restore(Entry {
                        message,
                        stage: Stage::Dispatched {
                            carrier: c,
                            parts: parts.into_boxed_slice(),
                        },
                    });
                }
                (Some(_), _) if !rm.written || recovery == Recovery::Resend => {
                    // Dispatched but never written (it never left), or the
                    // operator chose at-least-once: queued again.
                    self.ledger.restore(Entry {
                        message: message.clone(),
                        stage: Stage::Queued,
                    });
                    requeue.push(message);
                }
                (Some(name), c) => {
                    let parts: Vec<Part> = (0..rm.parts.max(1) as usize)
                        .map(|i| match rm.carrier_ids.get(i) {
                            Some(s) if !s.is_empty() => Part::Submitted(s.as_str().into()),
                            _ => Part::Written,
                        })
                        .collect();
                    self.ledger.restore(Entry {
                        message: message.clone(),
                        stage: Stage::Dispatched {
                            carrier: c.unwrap_or_else(|| name.as_str().into()),
                            parts: parts.into_boxed_slice(),
                        },
                    });
                    unknown.push(message.id);
                }
            }
        }
        let reason: Arc<str> = "gateway restarted before the carrier answered".into();
        let mut endings = self.receipts.endings();
        for id in &unknown {
            endings.end(*id, DeliveryState::Unknown, 0, &reason);
        }
        tracing::info!(target: TARGET, records = rec.records, live = total, requeued = requeue.len(),
            unknown = endings.len(), events = self.hub.pending(), "journal recovered");
        for p in &rec.problems {
            tracing::error!(target: TARGET, problem = %LogSafe::display(p), "unrecoverable journal entry");
        }
        drop(endings);
        self.enqueue_or_spill(&requeue);
    }

    /// Compaction: when the journal holds more than `max_segments`, rotate,
    /// carry every live record into the new head, then delete the older
    /// segments. Safe because state is registered in memory before its
    /// record is written (see `ledger` and `events`).
    async fn compact(&self, max_segments: u64) -> Result<(), crate::journal::JournalError> {
        use std::sync::atomic::Ordering::Relaxed;
        if self.journal.segments() <= max_segments + self.carried_segments.load(Relaxed) {
            return Ok(());
        }
        if self.spill.is_damaged() {
            // Some spilled messages exist only in the old segments now.
            tracing::error!(target: TARGET, segments = self.journal.segments(),
                "journal compaction held: a spilled batch was unreadable; restart to replay it");
            return Ok(());
        }
        let _gate = self.spill_gate.lock().await;
        let head = self.journal.rotate().await?;
        let mut carried = self.ledger.carry().await?;
        carried += self.carry_spilled().await?;
        // What was carried fills the segments from `head` on.
        self.carried_segments
            .store(self.journal.head_segment().saturating_sub(head), Relaxed);
        let events = self.hub.snapshot();
        self.journal
            .events(events.iter().map(|e| &**e))
            .wait()
            .await?;
        // Dedupe keys whose Accept records go with the old segments move to
        // the dedupe log, once each.
        let keys = self.dedupe.take_unlogged_before(head);
        let (log, window, max_keys, n) = (
            self.dedupe_log.clone(),
            self.dedupe.window_ms(),
            self.dedupe.max_keys(),
            keys.len(),
        );
        tokio::task::spawn_blocking(move || {
            log.append(&keys)?;
            // The trickle appended since the last compaction, durable too.
            log.sync()?;
            log.prune(now_ms(), window, max_keys).map(|_| ())
        })
        .await
        .map_err(|e| {
            crate::journal::JournalError::Io(
                self.journal.dir().to_owned(),
                std::io::Error::other(e),
            )
        })?
        .map_err(|e| crate::journal::JournalError::Io(self.journal.dir().to_owned(), e))?;
        self.journal.delete_before(head).await?;
        tracing::info!(target: TARGET, head, carried, events = events.len(), keys = n, "journal compacted");
        Ok(())
    }
}

impl Gateway {
    /// Compaction's carry-forward of spilled messages (their Accept records
    /// go with the old segments): read off disk batch by batch, written as
    /// Carry records, a bounded number of syncs in flight.
    async fn carry_spilled(&self) -> Result<usize, crate::journal::JournalError> {
        use crate::journal::{CarriedMessage, Durable, JournalError};
        if self.spill.is_empty() {
            return Ok(0);
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Message>>(4);
        let spill = self.spill.clone();
        let reader = tokio::task::spawn_blocking(move || {
            spill.for_each_batch(|ms| {
                tx.blocking_send(ms)
                    .map_err(|_| std::io::Error::other("compaction stopped"))
            })
        });
        let mut count = 0;
        let mut pending: std::collections::VecDeque<Durable> = Default::default();
        while let Some(ms) = rx.recv().await {
            count += ms.len();
            pending.push_back(self.journal.carry(ms.iter().map(|m| CarriedMessage {
                message: m,
                carrier: None,
                parts: 0,
                carrier_ids: &[],
                written: false,
            })));
            if pending.len() > 16
                && let Some(d) = pending.pop_front()
            {
                d.wait().await?;
            }
        }
        for d in pending {
            d.wait().await?;
        }
        let dir = self.journal.dir().to_owned();
        reader
            .await
            .map_err(|e| JournalError::Io(dir.clone(), std::io::Error::other(e)))?
            .map_err(|e| JournalError::Io(dir, e))?;
        Ok(count)
    }
}

impl Backend for Gateway {
    fn authenticate(&self, tenant: &str, token: &str) -> Option<Arc<str>> {
        let t = self.tenants.get(tenant)?;
        t.token.matches(token).then(|| t.name.clone())
    }

    fn submit(
        self: &Arc<Self>,
        tenant: &Arc<str>,
        conn: u64,
        messages: Vec<pb::SubmitMessage>,
    ) -> Pin<Box<dyn Future<Output = Vec<pb::SubmitResult>> + Send>> {
        let now = now_ms();
        let Some(t) = self.tenants.get(&**tenant) else {
            return Box::pin(std::future::ready(Vec::new()));
        };
        let first = self.journal.allocate_message_ids(messages.len() as u64);
        let segment = self.journal.head_segment();
        let mut results = Vec::with_capacity(messages.len());
        let mut accepted: Vec<Arc<Message>> = Vec::with_capacity(messages.len());
        for (i, m) in messages.into_iter().enumerate() {
            let client_ref = m.client_ref.clone();
            let verdict = admission::validate_with_country(
                tenant,
                m,
                t.default_validity,
                t.default_country,
                now,
            )
            .and_then(|mut msg| {
                if !t.senders.allows(&msg.from) {
                    return Err(admission::sender_not_allowed(tenant, &msg.from));
                }
                if self.route(msg.to).is_none() {
                    return Err(admission::Rejection {
                        reason: RejectReason::NoRoute,
                        detail: format!("no carrier routes {}", msg.to),
                    });
                }
                if let Some(id) = msg.media.iter().find(|id| !self.owns_media(tenant, id)) {
                    return Err(admission::Rejection {
                        reason: RejectReason::UnknownMedia,
                        detail: format!("unknown media id {id:?} (upload it with PutMedia first)"),
                    });
                }
                if let Some(scope) = self.compliance.check(tenant, &msg.from, msg.to) {
                    return Err(admission::Rejection {
                        reason: RejectReason::Suppressed,
                        detail: format!("{} opted out ({scope})", msg.to),
                    });
                }
                msg.id = MessageId(first + i as u64);
                Ok(msg)
            });
            match verdict {
                Err(r) => {
                    metrics::counter!("sluice_messages_rejected_total",
                        "tenant" => tenant.to_string(), "reason" => r.reason.as_str_name())
                    .increment(1);
                    results.push(pb::SubmitResult {
                        client_ref,
                        message_id: 0,
                        reason: r.reason as i32,
                        detail: r.detail,
                        duplicate: false,
                    });
                }
                Ok(msg) => {
                    match self
                        .dedupe
                        .check_or_insert(tenant, &client_ref, msg.id, now, segment)
                    {
                        Err(existing) => results.push(pb::SubmitResult {
                            client_ref,
                            message_id: existing.0,
                            reason: RejectReason::RejectNone as i32,
                            detail: String::new(),
                            duplicate: true,
                        }),
                        Ok(()) => {
                            results.push(pb::SubmitResult {
                                client_ref,
                                message_id: msg.id.0,
                                reason: RejectReason::RejectNone as i32,
                                detail: String::new(),
                                duplicate: false,
                            });
                            accepted.push(Arc::new(msg));
                        }
                    }
                }
            }
        }
        if accepted.is_empty() {
            return Box::pin(std::future::ready(results));
        }
        // Before anything can finish them: their events go to `conn` when it
        // subscribed for its own messages only.
        self.hub.claim(tenant, conn, accepted.iter().map(|m| m.id));
        self.ledger.admit(&accepted);
        let durable = self.journal.accept(accepted.iter().map(|m| &**m));
        let gw = self.clone();
        Box::pin(async move {
            match durable.wait().await {
                Ok(()) => {
                    metrics::counter!("sluice_messages_accepted_total", "tenant" => accepted[0].tenant.to_string())
                        .increment(accepted.len() as u64);
                    gw.enqueue_or_spill(&accepted);
                }
                Err(e) => {
                    tracing::error!(target: TARGET, error = %e, "journal write failed; batch refused");
                    gw.ledger.forget(accepted.iter().map(|m| m.id));
                    gw.hub
                        .unclaim(&accepted[0].tenant, accepted.iter().map(|m| m.id));
                    let failed: std::collections::HashSet<u64> =
                        accepted.iter().map(|m| m.id.0).collect();
                    for m in &accepted {
                        gw.dedupe.forget(&m.tenant, &m.client_ref);
                    }
                    for r in &mut results {
                        if failed.contains(&r.message_id) && !r.duplicate {
                            r.message_id = 0;
                            r.reason = RejectReason::Unavailable as i32;
                            r.detail = "the gateway could not store the message; retry".into();
                        }
                    }
                }
            }
            results
        })
    }

    fn put_media(
        self: &Arc<Self>,
        tenant: &Arc<str>,
        conn: u64,
        req: pb::PutMedia,
    ) -> Pin<Box<dyn Future<Output = Result<pb::MediaOk, String>> + Send>> {
        let gw = self.clone();
        let tenant = tenant.clone();
        Box::pin(async move { gw.store_media(tenant, conn, req).await })
    }

    fn closed(&self, tenant: &Arc<str>, conn: u64) {
        self.drop_uploads(tenant, conn);
    }

    fn headroom(&self) -> u64 {
        self.max_live
            .saturating_sub(self.ledger.live() + self.spill.len())
    }

    fn events(&self) -> &Arc<EventHub> {
        &self.hub
    }
}

/// A running gateway: its addresses and the handle to stop it.
#[derive(Debug)]
pub struct Running {
    /// Where ingest listens.
    pub ingest_addr: SocketAddr,
    /// Where `/metrics`, health and the admin API are served, if enabled.
    pub http_addr: Option<SocketAddr>,
    /// Where the landing pages are served, if enabled.
    pub public_addr: Option<SocketAddr>,
    /// Stops the HTTP doors.
    stop: tokio_util::sync::CancellationToken,
    /// The pipeline.
    pub gateway: Arc<Gateway>,
    /// Where each MMSC's callbacks are received.
    pub mm7_callbacks: Vec<SocketAddr>,
    mm7_servers: Vec<crate::mm7::Mm7Server>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
    /// Held while this gateway owns its data directory.
    _lock: crate::journal::lock::DataDirLock,
    health: Arc<Health>,
    /// The HTTP doors' tasks: stopped last, so `/readyz` answers "draining"
    /// (and `/metrics` is scraped) until the end.
    door_tasks: JoinSet<()>,
}

impl Running {
    /// Readiness (what `/readyz` answers).
    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    /// Marks the node draining: `/readyz` answers 503 from now on, so load
    /// balancers move new traffic elsewhere. [`Running::shutdown`] starts
    /// with this.
    pub fn begin_drain(&self) {
        self.health.drain();
    }

    /// Drains (`/readyz` 503), stops accepting, says GoAway to clients,
    /// unbinds, waits (bounded) for tasks to finish, and stops the HTTP
    /// endpoint last.
    pub async fn shutdown(mut self) {
        self.begin_drain();
        let _ = self.shutdown.send(true);
        for s in &self.mm7_servers {
            s.shutdown();
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        self.tasks.abort_all();
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while self.door_tasks.join_next().await.is_some() {}
        })
        .await;
        self.door_tasks.abort_all();
    }

    /// Resolves when a task the gateway cannot live without ends.
    pub async fn wait(&mut self) {
        self.tasks.join_next().await;
    }
}

/// Opens the journal, restores state, starts every task and listener.
///
/// # Errors
/// The journal cannot be opened or a listener cannot be bound.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let problems = config.door_problems();
    if !problems.is_empty() {
        anyhow::bail!("refusing to start:\n  - {}", problems.join("\n  - "));
    }
    telemetry::metrics_handle();
    let lock = crate::journal::lock::DataDirLock::acquire(&config.data_dir)?;
    crate::model::numbering::warm();
    let (journal, recovered) = Journal::open(&config.journal_dir(), &config.journal)?;
    let (shutdown_tx, shutdown) = watch::channel(false);
    let tenants: HashMap<String, TenantEntry> = config
        .tenants
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                TenantEntry {
                    name: t.name.as_str().into(),
                    token: t.token.clone(),
                    default_validity: t.default_validity,
                    // Checked by Config::problems before the gateway starts.
                    senders: admission::OwnedSenders::new(&t.senders, &t.sender_patterns)
                        .unwrap_or_default(),
                    default_country: t.default_country(),
                },
            )
        })
        .collect();
    let compliance = Arc::new(Compliance::open(&config)?);
    let ledger = Arc::new(Ledger::new(journal.clone()));
    let hub = Arc::new(
        EventHub::new(journal.clone(), tenants.values().map(|t| t.name.clone())).with_mms_carriers(
            config
                .mmsc
                .iter()
                .map(|m| Arc::<str>::from(m.name.as_str())),
        ),
    );
    let store_cfg = mms::store_config(&config);
    let media = Arc::new(crate::media::store::MediaStore::open(store_cfg)?);
    let tls = if config
        .carriers
        .iter()
        .any(|c| c.binds.iter().any(|b| b.tls))
        || config.mmsc.iter().any(|m| m.url.starts_with("https://"))
    {
        Some(Arc::new(crate::smpp::tls::client_config(
            config.tls.ca_file.as_deref(),
        )?))
    } else {
        None
    };
    let fitter = Arc::new(crate::media::fit::Fitter::new());
    let mmscs = config
        .mmsc
        .iter()
        .map(|m| {
            let source = Arc::new(mms::StoreSource {
                store: media.clone(),
                fitter: fitter.clone(),
            });
            crate::carrier::mm7::Mm7Carrier::new(m, source, tls.clone()).map(Arc::new)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let links = Arc::new(crate::media::link::LinkSigner::new(
        &crate::media::link::load_or_create_secret(&config.data_dir)?,
    ));
    let receipts = Arc::new(Receipts::new(ledger.clone(), hub.clone(), &config.receipts));
    let mut carriers = HashMap::new();
    for c in &config.carriers {
        let carrier = SmppCarrier::new(
            c,
            receipts.clone(),
            Some(suppression_check(compliance.clone())),
        );
        carriers.insert(carrier.name().clone(), carrier);
    }
    let scheduler = Arc::new(Scheduler::new(&config));
    let mut routes: Vec<(String, Vec<Arc<str>>)> = config
        .routes
        .iter()
        .map(|r| {
            (
                r.prefix.clone(),
                r.carriers
                    .iter()
                    .map(|c| Arc::<str>::from(c.as_str()))
                    .collect(),
            )
        })
        .collect();
    if routes.is_empty() {
        // Without a route table every recipient may use every carrier, in
        // configuration order.
        routes.push((
            String::new(),
            config
                .carriers
                .iter()
                .map(|c| Arc::<str>::from(c.name.as_str()))
                .collect(),
        ));
    }
    let gateway = Arc::new(Gateway {
        journal: journal.clone(),
        ledger: ledger.clone(),
        hub: hub.clone(),
        receipts: receipts.clone(),
        scheduler: scheduler.clone(),
        failover_after: config
            .carriers
            .iter()
            .map(|c| (Arc::<str>::from(c.name.as_str()), c.failover_after))
            .collect(),
        carriers: carriers.clone(),
        dedupe: Dedupe::new(
            config.ingest.dedupe_window,
            crate::journal::dedupe_log::load_or_create_key(
                &config.journal_dir().join("dedupe.key"),
            )?,
        )
        .with_max_keys(config.ingest.dedupe_max_keys),
        dedupe_log: crate::journal::dedupe_log::DedupeLog::open(
            &config.journal_dir().join("dedupe"),
        )?,
        tenants,
        routes,
        max_live: config.journal.max_live_messages,
        spill: Arc::new(
            Spill::open(
                &config.data_dir.join("spill"),
                config.journal.spill_file_bytes,
            )?
            .with_max_batch((config.journal.max_queued_in_memory / 8) as usize),
        ),
        max_in_memory: config.journal.max_queued_in_memory.max(1),
        spill_gate: tokio::sync::Mutex::new(()),
        carried_segments: std::sync::atomic::AtomicU64::new(0),
        compliance: compliance.clone(),
        mmscs: mmscs.clone(),
        mms_routes: config
            .mms
            .routes
            .iter()
            .map(|r| {
                (
                    r.prefix.clone(),
                    r.carriers
                        .iter()
                        .map(|c| Arc::<str>::from(c.as_str()))
                        .collect(),
                )
            })
            .collect(),
        mms: config.mms.clone(),
        media: media.clone(),
        links: links.clone(),
        uploads: Arc::default(),
        this: std::sync::OnceLock::new(),
    });
    let _ = gateway.this.set(Arc::downgrade(&gateway));
    receipts.set_inbound(gateway.clone());
    gateway.restore(recovered, config.journal.recovery);

    let mut tasks = JoinSet::new();
    for c in &config.carriers {
        let carrier = carriers[c.name.as_str()].clone();
        carrier.start(c, tls.clone(), &shutdown);
        let queue = scheduler
            .queue(c.name.as_str())
            .expect("one queue per carrier")
            .clone();
        let dispatcher = schedule::Dispatcher {
            queue,
            carrier,
            ledger: ledger.clone(),
            receipts: receipts.clone(),
            check: Some(suppression_check(compliance.clone())),
        };
        tasks.spawn(dispatcher.run(shutdown.clone()));
    }
    let mut mm7_servers = Vec::new();
    for (m, carrier) in config.mmsc.iter().zip(&mmscs) {
        let queue = scheduler
            .queue(&m.name)
            .expect("one queue per MMSC")
            .clone();
        let gw = gateway.clone();
        let dispatcher = schedule::mm7::Mm7Dispatcher {
            queue,
            carrier: carrier.clone(),
            ledger: ledger.clone(),
            receipts: receipts.clone(),
            check: Some(suppression_check(compliance.clone())),
            fallback: Arc::new(move |msg, r: schedule::mm7::Refusal| {
                gw.fallback(msg, r.reason, Some((&r.carrier, r.code)));
            }),
            concurrency: m.connections,
            rate: m.rate,
            unanswered: m.unanswered,
            fallback_before_expiry: config.mms.fallback_before_expiry,
        };
        tasks.spawn(dispatcher.run(shutdown.clone()));
        if let Some(listen) = m.callback_listen {
            let callback_tls = doors::server_tls(
                &format!("mmsc {} callbacks", m.name),
                m.callback_tls(),
                true,
                &config,
            )?;
            let credentials = match (&m.callback_username, &m.callback_password) {
                (Some(u), Some(p)) => Some(crate::mm7::Credentials {
                    username: u.clone(),
                    password: p.expose().to_owned(),
                }),
                _ => None,
            };
            let allow = m
                .callback_allow
                .iter()
                .map(|a| {
                    a.parse().map_err(|e| {
                        anyhow::anyhow!("mmsc {:?}: callback_allow {a:?}: {e}", m.name)
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let server = crate::mm7::serve(
                crate::mm7::ServerConfig {
                    listen,
                    credentials,
                    allow,
                    max_body: m.callback_max_body_bytes,
                    version: m.version.parse().unwrap_or_default(),
                    header_read_timeout: m.callback_header_timeout,
                    body_timeout: m.callback_body_timeout,
                    idle_timeout: m.callback_idle_timeout,
                    max_connections: m.callback_max_connections,
                    tls: callback_tls,
                },
                Arc::new(mms::MmscCallbacks::new(gateway.clone(), carrier.clone())),
            )
            .await?;
            mm7_servers.push(server);
        }
    }
    tasks.spawn(chores(
        gateway.clone(),
        config.journal.max_segments.into(),
        shutdown.clone(),
    ));
    tasks.spawn(page_in(gateway.clone(), shutdown.clone()));

    let health = Arc::new(Health::default());
    health.watch_carriers(
        config.http.ready_carriers,
        carriers.iter().map(|(name, c)| {
            (
                name.clone(),
                c.clone() as Arc<dyn crate::readiness::Reachable>,
            )
        }),
    );
    // The HTTP doors outlive the other tasks at shutdown, so `/readyz`
    // answers "draining" (and `/metrics` is scraped) until the end.
    let stop = tokio_util::sync::CancellationToken::new();
    let mut door_tasks = JoinSet::new();
    let admin = Arc::new(crate::admin::Admin::new(
        &config,
        compliance.clone(),
        scheduler.clone(),
        ledger.clone(),
        gateway.spill.clone(),
    ));
    let http_addr = doors::internal(&config, health.clone(), admin, &stop, &mut door_tasks).await?;
    let public_addr = doors::public(
        &config,
        media.clone(),
        links.clone(),
        &stop,
        &mut door_tasks,
    )
    .await?;
    let ingest_tls = doors::server_tls("ingest", config.ingest.tls(), false, &config)?;
    let listener = TcpListener::bind(config.ingest.listen).await?;
    let ingest_addr = listener.local_addr()?;
    tasks.spawn(ingest::server::serve(
        listener,
        gateway.clone(),
        ingest::session::Limits::from_config(&config.ingest, &config.node_id),
        ingest_tls,
        shutdown.clone(),
    ));
    health.set_ready(true);
    tracing::info!(target: TARGET, %ingest_addr, ?http_addr, ?public_addr, node = %config.node_id, "gateway started");
    Ok(Running {
        ingest_addr,
        http_addr,
        public_addr,
        stop,
        gateway,
        mm7_callbacks: mm7_servers.iter().map(|s| s.local_addr()).collect(),
        mm7_servers,
        shutdown: shutdown_tx,
        tasks,
        _lock: lock,
        health,
        door_tasks,
    })
}

/// The suppression check at dispatch and again right before a part or an
/// MM7 request is written: a message queued before its recipient opted out
/// ends `suppressed` instead of going out. Compliance auto-replies pass
/// (they confirm that very opt-out, once).
#[derive(Debug)]
struct SuppressionCheck(Arc<Compliance>);

impl crate::carrier::LastCheck for SuppressionCheck {
    fn epoch(&self) -> u64 {
        self.0.epoch()
    }

    fn check(&self, m: &Message) -> Option<(DeliveryState, Arc<str>)> {
        if m.auto_reply {
            return None;
        }
        self.0.check(&m.tenant, &m.from, m.to).map(|scope| {
            (
                DeliveryState::Suppressed,
                format!("recipient opted out ({scope}) while queued").into(),
            )
        })
    }
}

fn suppression_check(compliance: Arc<Compliance>) -> schedule::DispatchCheck {
    Arc::new(SuppressionCheck(compliance))
}

impl InboundSink for Gateway {
    fn inbound(&self, mo: InboundMo) -> Pin<Box<dyn Future<Output = Result<(), ()>> + Send>> {
        let gw = self.me();
        Box::pin(async move { gw.handle_inbound(mo).await })
    }
}

impl Gateway {
    fn me(&self) -> Arc<Gateway> {
        self.this
            .get()
            .and_then(std::sync::Weak::upgrade)
            .expect("gateway registered itself at start")
    }

    /// An inbound message: keywords change suppression (durably) and get
    /// their reply; everything else goes upstream as an inbound event.
    async fn handle_inbound(&self, mo: InboundMo) -> Result<(), ()> {
        let handset = Msisdn::parse(mo.from.trim()).ok();
        let outcome = match handset {
            Some(n) => self
                .compliance
                .inbound(n, &mo.to, &mo.text, &mo.carrier, mo.channel)
                .await
                .map_err(
                    |e| tracing::error!(target: TARGET, error = %e, "opt-out journal failed"),
                )?,
            // From a short code or an alphanumeric id: no opt-out possible.
            None => match self.compliance.owner(&mo.to) {
                Some(tenant) => Inbound::Forward { tenant },
                None => Inbound::NoTenant,
            },
        };
        let (tenant, event, reply) = match outcome {
            Inbound::NoTenant => {
                tracing::warn!(target: TARGET, to = %LogSafe::new(&mo.to), carrier = %mo.carrier, "inbound message to a number no tenant owns");
                metrics::counter!("sluice_inbound_dropped_total", "reason" => "no_tenant")
                    .increment(1);
                return Ok(());
            }
            Inbound::Forward { tenant } => {
                let ev = pb::event::Kind::Inbound(pb::InboundMessage {
                    // Numbers as E.164, whatever form the carrier gave them in.
                    from: handset.map_or_else(|| mo.from.clone(), |n| n.to_string()),
                    to: Sender::parse(mo.to.trim())
                        .map_or_else(|_| mo.to.clone(), |s| s.to_string()),
                    text: mo.text.clone(),
                    at_ms: now_ms(),
                    carrier: mo.carrier.to_string(),
                });
                (tenant, Some(ev), None)
            }
            Inbound::OptedOut {
                tenant,
                scope,
                keyword,
                reply,
            }
            | Inbound::OptedIn {
                tenant,
                scope,
                keyword,
                reply,
            } => {
                let opted_out = handset.is_some_and(|n| self.compliance.check_scope(&scope, n));
                let ev = pb::event::Kind::Opt(pb::OptEvent {
                    number: handset.map_or_else(|| mo.from.clone(), |n| n.to_string()),
                    scope,
                    opted_out,
                    keyword,
                    at_ms: now_ms(),
                });
                (tenant, Some(ev), reply)
            }
            Inbound::Help { tenant, reply } => (tenant, None, Some(reply)),
        };
        if let Some(ev) = event
            && self.hub.publish_kind(&tenant, ev).wait().await.is_err()
        {
            return Err(());
        }
        if let (Some(text), Some(handset)) = (reply, handset) {
            self.auto_reply(&tenant, &mo.to, handset, text).await;
        }
        Ok(())
    }

    /// Sends a compliance reply from the sender the handset wrote to.
    async fn auto_reply(&self, tenant: &Arc<str>, sender: &str, to: Msisdn, text: String) {
        let Ok(from) = Sender::parse(sender.trim()) else {
            tracing::warn!(target: TARGET, sender = %LogSafe::new(sender), "cannot reply from this sender address");
            return;
        };
        let now = now_ms();
        let id = MessageId(self.journal.allocate_message_ids(1));
        let m = Arc::new(Message {
            id,
            tenant: tenant.clone(),
            client_ref: format!("auto-reply-{id}"),
            to,
            from,
            text,
            media: vec![],
            subject: None,
            channel: crate::model::ChannelPref::Sms,
            fallback: crate::model::FallbackPolicy::None,
            campaign_id: "compliance".into(),
            expires_at_ms: now + 24 * 3600 * 1000,
            priority: crate::model::Priority::Transactional,
            tags: vec!["auto-reply".into()],
            accepted_at_ms: now,
            auto_reply: true,
        });
        self.ledger.admit([&m]);
        if let Err(e) = self.journal.accept([&*m]).wait().await {
            tracing::error!(target: TARGET, error = %e, "could not store an auto-reply");
            self.ledger.forget([id]);
            return;
        }
        metrics::counter!("sluice_auto_replies_total").increment(1);
        self.enqueue(&[m]);
    }
}

/// Pages spilled messages in as the queues drain (every 20 ms).
async fn page_in(gw: Arc<Gateway>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        gw.page_in().await;
    }
}

/// Periodic work: expiry sweep, gauges, compaction.
async fn chores(gw: Arc<Gateway>, max_segments: u64, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0u64;
    let mut stalled = std::collections::HashSet::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        n += 1;
        tokio::spawn(gw.receipts.sweep());
        gw.failover();
        gw.stalls(&mut stalled);
        // Dedupe keys trickle into the dedupe log, so that compaction has
        // little left to write at once.
        let keys = gw.dedupe.take_unlogged(0, now_ms().saturating_sub(1000));
        if !keys.is_empty() {
            let log = gw.dedupe_log.clone();
            if let Ok(Err(e)) =
                tokio::task::spawn_blocking(move || log.append_unsynced(&keys)).await
            {
                tracing::error!(target: TARGET, error = %e, "dedupe log append failed");
            }
        }
        // Histogram samples wait in the recorder until upkeep folds them
        // into buckets; without a scrape they would pile up (~1 MB/s at
        // 50k msgs/s).
        telemetry::metrics_handle().run_upkeep();
        metrics::gauge!("sluice_live_messages").set(gw.ledger.live() as f64);
        metrics::gauge!("sluice_events_pending").set(gw.hub.pending() as f64);
        metrics::gauge!("sluice_journal_bytes").set(gw.journal.bytes() as f64);
        metrics::gauge!("sluice_journal_segments").set(gw.journal.segments() as f64);
        if n.is_multiple_of(5)
            && let Err(e) = gw.compact(max_segments).await
        {
            tracing::error!(target: TARGET, error = %e, "journal compaction failed");
        }
    }
}
