//! An SMS carrier reached over SMPP: turns messages into submit_sm parts
//! (GSM-7 or UCS-2, concatenated as the carrier wants), queues the parts for
//! the carrier's binds, and maps the binds' answers to part outcomes.
//!
//! Capacity is explicit: a semaphore of `sum(windows) * 2` part permits (at
//! least one message's worth, 255; a reload that widens the windows adds
//! permits, one that narrows them keeps them) is
//! taken before a message is dispatched and released when each part ends, so
//! the scheduler, not this queue, holds the backlog.
//!
//! Right before a part is written (after every wait: part permit, pacing,
//! the journal) it gets its last look ([`LastCheck`]: validity, opt-outs),
//! and it is written only once the journal holds its `Written` record.
//! What can be past that last look at any moment is what one bind's window
//! holds.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{Notify, Semaphore, watch};

use super::{Carrier, CarrierSink, LastCheck, Room, Unanswered};
use crate::model::{DeliveryState, Message, MessageId, Sender, now_ms};
use crate::settings::{BindConfig, CarrierConfig, ConcatMode};
use crate::smpp::pdu::{CommandStatus, DeliverSm, SubmitSm, Tlv, tag};
use crate::smpp::session::{self, BindParams, Handler};
use crate::smpp::text::{self, Concat, TextOptions};

/// Returns one capacity permit when dropped.
#[derive(Debug)]
pub struct CapacityPermit(Arc<Semaphore>);

impl Drop for CapacityPermit {
    fn drop(&mut self) {
        self.0.add_permits(1);
    }
}

/// One part of a message, ready to write.
#[derive(Debug)]
pub struct SegmentJob {
    /// Message.
    pub id: MessageId,
    /// Part index (0-based).
    pub part: u32,
    /// The PDU body.
    pub sm: SubmitSm,
    /// Parts of the message.
    pub total: u32,
    /// The message (for the last look before writing).
    pub message: Arc<Message>,
    /// [`LastCheck::epoch`] at which the part last passed its check.
    checked_epoch: u64,
    _permit: CapacityPermit,
}

/// An SMPP carrier with its queue of parts and its binds.
#[derive(Debug)]
pub struct SmppCarrier {
    name: Arc<str>,
    /// Its settings a reload changes in place ([`SmppCarrier::retune`]).
    tuning: arc_swap::ArcSwap<Tuning>,
    queue: Mutex<VecDeque<SegmentJob>>,
    notify: Notify,
    capacity: Arc<Semaphore>,
    /// Part permits in all (grows when a reload widens the windows).
    capacity_total: AtomicUsize,
    /// The generation of binds in force ([`SmppCarrier::rebind`]).
    binds_in_force: Arc<watch::Sender<u64>>,
    /// The newest generation of binds started.
    binds_newest: AtomicU64,
    /// Bound binds of older generations still draining.
    binds_retiring: Arc<AtomicUsize>,
    /// Binds started so far, to name the next one.
    binds_started: AtomicUsize,
    reference: AtomicU16,
    sink: Arc<dyn CarrierSink>,
    last_check: Option<Arc<dyn LastCheck>>,
    binds_up: AtomicUsize,
    /// Wall-clock ms since no bind has been up (0 while one is).
    down_since_ms: AtomicU64,
    /// Added by a reload (not there at the start).
    added_live: std::sync::atomic::AtomicBool,
    /// A bind has been up at least once.
    was_up: std::sync::atomic::AtomicBool,
    /// The warning that a batch needs more part permits than were weighed
    /// was given (once per way of splitting).
    told_disagreement: std::sync::atomic::AtomicBool,
}

/// The settings of a carrier that a reload changes in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tuning {
    /// How texts are split and packed from now on.
    text: TextOptions,
    /// What a submit whose answer never came becomes.
    unanswered: Unanswered,
    /// How long it may be down before its queue moves (failover).
    failover_after: std::time::Duration,
    /// Removed by a reload: how long its binds stay after the last answer.
    removal_linger: std::time::Duration,
}

impl Tuning {
    fn of(cfg: &CarrierConfig) -> Tuning {
        Tuning {
            text: text_options(cfg),
            unanswered: cfg.unanswered,
            failover_after: cfg.failover_after,
            removal_linger: cfg.removal_linger,
        }
    }
}

/// Text encoding options of a carrier.
pub fn text_options(cfg: &CarrierConfig) -> TextOptions {
    TextOptions {
        concat: match cfg.concat {
            ConcatMode::Udh8 => Concat::Udh8,
            ConcatMode::Udh16 => Concat::Udh16,
            ConcatMode::Sar => Concat::Sar,
            ConcatMode::Payload => Concat::Payload,
        },
        gsm7_packed: cfg.gsm7_packed,
    }
}

impl std::fmt::Debug for dyn CarrierSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CarrierSink")
    }
}

/// Most messages dispatched in one round.
const DISPATCH_BATCH: usize = 512;

/// The dispatcher's view: room is free part permits, a message becomes its
/// encoded parts, the hand-off queues them for the binds (which journal and
/// look at each once more right before writing it).
impl Carrier for SmppCarrier {
    type Prepared = Vec<SubmitSm>;
    type Unfit = text::TextError;

    fn name(&self) -> &Arc<str> {
        &self.name
    }

    async fn wait_room(&self, units: usize) -> bool {
        self.capacity.acquire_many(units as u32).await.is_ok()
    }

    fn room(&self) -> Room {
        Room {
            messages: DISPATCH_BATCH,
            units: self.capacity.available_permits(),
        }
    }

    fn cost(&self, m: &Message) -> usize {
        text::plan_with(&m.text, &self.text()).map_or(1, |p| p.segments.max(1))
    }

    fn prepare(&self, m: &Arc<Message>) -> Result<Vec<SubmitSm>, text::TextError> {
        self.parts(m)
    }

    fn units(parts: &Vec<SubmitSm>) -> usize {
        parts.len()
    }

    /// One permit per part; the parts carry them and release them one by
    /// one as they end.
    async fn reserve(&self, units: usize) -> bool {
        if let Ok(p) = self.capacity.try_acquire_many(units as u32) {
            p.forget();
            return true;
        }
        // Only if the planner and the encoder disagree on a part count
        // (messages weighed before a reload changed `concat`); still
        // bounded by the carrier's capacity.
        if !self.told_disagreement.swap(true, Ordering::Relaxed) {
            tracing::warn!(target: "sluice::schedule", carrier = %self.name, units,
                "batch needs more part permits than were free; waiting");
        }
        match self.capacity.acquire_many(units as u32).await {
            Ok(p) => {
                p.forget();
                true
            }
            Err(_) => false,
        }
    }

    fn unreserve(&self, units: usize) {
        self.capacity.add_permits(units);
    }

    async fn hand_off(
        self: &Arc<Self>,
        batch: Vec<(Arc<Message>, Vec<SubmitSm>)>,
        checked_epoch: u64,
        _probe: bool,
    ) {
        for (m, parts) in batch {
            self.enqueue(&m, checked_epoch, parts);
        }
    }
}

impl SmppCarrier {
    /// A carrier from its configuration (binds are started by
    /// [`SmppCarrier::start`]); `last_check` is asked right before each part
    /// is written.
    pub fn new(
        cfg: &CarrierConfig,
        sink: Arc<dyn CarrierSink>,
        last_check: Option<Arc<dyn LastCheck>>,
    ) -> Arc<SmppCarrier> {
        let capacity = capacity_of(&cfg.binds);
        Arc::new(SmppCarrier {
            name: cfg.name.as_str().into(),
            tuning: arc_swap::ArcSwap::from_pointee(Tuning::of(cfg)),
            binds_up: AtomicUsize::new(0),
            // Down from the start until a bind comes up.
            down_since_ms: AtomicU64::new(now_ms()),
            queue: Mutex::new(VecDeque::new()),
            notify: Notify::new(),
            capacity: Arc::new(Semaphore::new(capacity)),
            capacity_total: AtomicUsize::new(capacity),
            binds_in_force: Arc::new(watch::Sender::new(0)),
            binds_newest: AtomicU64::new(0),
            binds_retiring: Arc::default(),
            binds_started: AtomicUsize::new(0),
            reference: AtomicU16::new(rand::random()),
            sink,
            last_check,
            added_live: std::sync::atomic::AtomicBool::new(false),
            was_up: std::sync::atomic::AtomicBool::new(false),
            told_disagreement: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Marks it added by a reload: readiness counts it once it has been
    /// bound ([`crate::readiness::Reachable::counts`]).
    pub fn mark_added_live(&self) {
        self.added_live.store(true, Ordering::Release);
    }

    /// True when a reload added it.
    pub fn added_live(&self) -> bool {
        self.added_live.load(Ordering::Acquire)
    }

    /// True once a bind has been up.
    pub fn was_up(&self) -> bool {
        self.was_up.load(Ordering::Acquire)
    }

    /// Removed by a reload: how long its binds stay once every part they
    /// sent is answered, for the receipts still to come.
    pub fn removal_linger(&self) -> std::time::Duration {
        self.tuning.load().removal_linger
    }

    /// How long it may be down before its queue moves to other carriers.
    pub fn failover_after(&self) -> std::time::Duration {
        self.tuning.load().failover_after
    }

    /// Takes `cfg`'s `concat`, `unanswered`, `failover_after` and
    /// `removal_linger` (a reload; its `gsm7_packed` must be the one in
    /// force): messages split from now on are split as it says; parts
    /// already split are sent as they are. True when something changed.
    pub fn retune(&self, cfg: &CarrierConfig) -> bool {
        let new = Tuning::of(cfg);
        if **self.tuning.load() == new {
            return false;
        }
        self.tuning.store(Arc::new(new));
        // Messages weighed before may now split otherwise: say it once.
        self.told_disagreement.store(false, Ordering::Relaxed);
        true
    }

    fn text(&self) -> TextOptions {
        self.tuning.load().text
    }

    /// Carrier name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Part permits: the dispatcher takes one per part before dispatching.
    pub fn capacity(&self) -> &Arc<Semaphore> {
        &self.capacity
    }

    /// Binds currently bound.
    pub fn binds_up(&self) -> usize {
        self.binds_up.load(Ordering::Acquire)
    }

    /// How long no bind has been up (`None` while one is).
    pub fn down_for(&self) -> Option<std::time::Duration> {
        match self.down_since_ms.load(Ordering::Acquire) {
            0 => None,
            since => Some(std::time::Duration::from_millis(
                now_ms().saturating_sub(since),
            )),
        }
    }

    /// True when no part permit is taken: nothing dispatched waits here or
    /// in a window.
    pub fn is_idle(&self) -> bool {
        self.capacity.available_permits() >= self.capacity_total.load(Ordering::Relaxed)
    }

    /// Parts queued, not yet written.
    pub fn queued(&self) -> usize {
        self.queue.lock().len()
    }

    /// Starts every configured bind.
    pub fn start(
        self: &Arc<Self>,
        cfg: &CarrierConfig,
        tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
        shutdown: &watch::Receiver<bool>,
    ) {
        self.start_binds(&cfg.binds, 0, tls, shutdown);
    }

    /// Replaces the carrier's binds with `binds` (a reload changed them),
    /// make before break: the new binds start at once, beside the old
    /// ones; when the first of them is bound (or after [`REPLACE_WITHIN`],
    /// for an SMSC that refuses more binds of an account), the old ones
    /// retire: they take nothing more, wait for the answers to what they
    /// sent, then unbind ([`session::Retire`]). Nothing queued is dropped;
    /// a part whose answer does not come in time is handled as on any
    /// disconnect (`unanswered`). Wider windows widen the part permits at
    /// once; narrower ones keep them (each bind's window still holds).
    pub fn rebind(
        self: &Arc<Self>,
        binds: &[BindConfig],
        tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
        shutdown: &watch::Receiver<bool>,
    ) {
        let wanted = capacity_of(binds);
        let had = self.capacity_total.fetch_max(wanted, Ordering::Relaxed);
        if wanted > had {
            self.capacity.add_permits(wanted - had);
        }
        let generation = self.binds_newest.fetch_add(1, Ordering::Relaxed) + 1;
        self.start_binds(binds, generation, tls, shutdown);
        let in_force = self.binds_in_force.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(REPLACE_WITHIN) => {}
                _ = shutdown.changed() => return,
            }
            in_force.send_if_modified(|g| {
                let newer = *g < generation;
                if newer {
                    tracing::warn!(target: "sluice::carrier", in_force = generation,
                        "no new bind came up; the binds it replaces retire anyway");
                    *g = generation;
                }
                newer
            });
        });
    }

    /// Retires every bind (a reload removed the carrier): each takes
    /// nothing more, waits for the answers to what it sent, then unbinds
    /// (one not bound yet just ends). What is still queued here stays for
    /// [`SmppCarrier::take_back_unsent`] and [`SmppCarrier::fail_unsent`].
    pub fn retire(&self) {
        let generation = self.binds_newest.fetch_add(1, Ordering::Relaxed) + 1;
        self.binds_in_force.send_replace(generation);
        metrics::gauge!("sluice_smpp_binds_configured", "carrier" => self.name.to_string())
            .set(0.0);
    }

    /// True once no bind is bound or draining (after [`SmppCarrier::retire`]:
    /// nothing more can be written or answered here).
    pub fn binds_gone(&self) -> bool {
        self.binds_up() == 0 && self.binds_retiring.load(Ordering::Acquire) == 0
    }

    /// Ends every part still queued here as `unknown` with `reason` (its
    /// carrier was removed and its binds are gone: a message whose other
    /// parts were written cannot be sent whole elsewhere, and one that may
    /// have reached the handset is never sent twice); returns how many.
    pub fn fail_unsent(&self, reason: &str) -> usize {
        let jobs: Vec<SegmentJob> = self.queue.lock().drain(..).collect();
        let n = jobs.len();
        for job in jobs {
            self.sink.part_failed(
                job.id,
                job.part,
                DeliveryState::Unknown,
                0,
                reason.to_owned(),
            );
        }
        n
    }

    /// Starts `binds` as generation `generation`.
    fn start_binds(
        self: &Arc<Self>,
        binds: &[BindConfig],
        generation: u64,
        tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
        shutdown: &watch::Receiver<bool>,
    ) {
        let retire = session::Retire {
            generation,
            in_force: self.binds_in_force.clone(),
            retiring: self.binds_retiring.clone(),
        };
        metrics::gauge!("sluice_smpp_binds_configured", "carrier" => self.name.to_string())
            .set(binds.iter().map(|b| f64::from(b.count)).sum::<f64>());
        for b in binds {
            for _ in 0..b.count {
                let n = self.binds_started.fetch_add(1, Ordering::Relaxed) + 1;
                let mut params = bind_params(&self.name, n, b, tls.clone().filter(|_| b.tls));
                params.retire = Some(retire.clone());
                tokio::spawn(session::run(params, self.clone(), shutdown.clone()));
            }
        }
    }

    /// Encodes a message into submit_sm bodies, one per part.
    ///
    /// # Errors
    /// The text cannot be encoded with this carrier's text options.
    pub fn parts(&self, m: &Message) -> Result<Vec<SubmitSm>, text::TextError> {
        let reference = self.reference.fetch_add(1, Ordering::Relaxed);
        let segments = text::encode(&m.text, &self.text(), reference)?;
        let (src_ton, src_npi) = match &m.from {
            Sender::ShortCode(_) => (3, 0),
            Sender::LongCode(_) => (1, 1),
            Sender::Alphanumeric(_) => (5, 0),
        };
        let mut digits = itoa::Buffer::new();
        let source = match &m.from {
            Sender::ShortCode(s) | Sender::Alphanumeric(s) => Bytes::copy_from_slice(s.as_bytes()),
            Sender::LongCode(n) => Bytes::copy_from_slice(digits.format(n.as_u64()).as_bytes()),
        };
        let dest = Bytes::copy_from_slice(digits.format(m.to.as_u64()).as_bytes());
        let validity = relative_validity(m.expires_at_ms.saturating_sub(now_ms()) / 1000);
        Ok(segments
            .into_iter()
            .map(|s| {
                let mut tlvs = Vec::new();
                if let Some(c) = s.sar {
                    tlvs.push(Tlv::from_u16(tag::SAR_MSG_REF_NUM, c.reference));
                    tlvs.push(Tlv::from_u8(tag::SAR_TOTAL_SEGMENTS, c.total));
                    tlvs.push(Tlv::from_u8(tag::SAR_SEGMENT_SEQNUM, c.seq));
                }
                if let Some(p) = s.message_payload {
                    tlvs.push(Tlv::new(tag::MESSAGE_PAYLOAD, p));
                }
                SubmitSm {
                    source_addr_ton: src_ton,
                    source_addr_npi: src_npi,
                    source_addr: source.clone(),
                    dest_addr_ton: 1,
                    dest_addr_npi: 1,
                    destination_addr: dest.clone(),
                    esm_class: if s.esm_class_udhi { 0x40 } else { 0 },
                    validity_period: validity.clone(),
                    // Final receipt on success and failure (SMPP 3.4 5.2.17).
                    registered_delivery: 1,
                    data_coding: s.data_coding,
                    short_message: s.short_message,
                    tlvs,
                    ..SubmitSm::default()
                }
            })
            .collect())
    }

    /// Queues the parts of a dispatched message; the permits were taken
    /// from [`SmppCarrier::capacity`] (one per part) and are released part by
    /// part. `checked_epoch` is the [`LastCheck::epoch`] read before the
    /// message passed its dispatch check.
    pub fn enqueue(&self, message: &Arc<Message>, checked_epoch: u64, parts: Vec<SubmitSm>) {
        let mut q = self.queue.lock();
        let total = parts.len() as u32;
        for (i, sm) in parts.into_iter().enumerate() {
            q.push_back(SegmentJob {
                id: message.id,
                part: i as u32,
                total,
                sm,
                message: message.clone(),
                checked_epoch,
                _permit: CapacityPermit(self.capacity.clone()),
            });
        }
        drop(q);
        self.notify.notify_waiters();
    }

    /// Takes back the parts of messages whose every part sits in this
    /// carrier's queue (never written, or handed back unwritten), so they can
    /// be dispatched elsewhere. `take_back` is asked, under the queue's lock,
    /// which of those messages may go (the ledger's say); only their parts
    /// leave, everything else stays queued here. Returns the ids taken back.
    pub fn take_back_unsent(
        &self,
        take_back: impl FnOnce(&[MessageId]) -> Vec<MessageId>,
    ) -> Vec<MessageId> {
        let mut q = self.queue.lock();
        // Parts present and parts expected, per message.
        let mut present: std::collections::HashMap<MessageId, (u32, u32)> =
            std::collections::HashMap::new();
        for j in q.iter() {
            present.entry(j.id).or_insert((0, j.total)).0 += 1;
        }
        let whole: Vec<MessageId> = present
            .into_iter()
            .filter(|(_, (n, total))| n == total)
            .map(|(id, _)| id)
            .collect();
        if whole.is_empty() {
            return whole;
        }
        let taken = take_back(&whole);
        let leaving: std::collections::HashSet<MessageId> = taken.iter().copied().collect();
        q.retain(|j| !leaving.contains(&j.id));
        taken
    }

    /// The carrier id under which a part left unanswered was in fact
    /// accepted, known from a final receipt that came before any answer.
    fn answered_early(&self, job: &SegmentJob) -> Option<Bytes> {
        let incoming = text::Incoming {
            data_coding: job.sm.data_coding,
            esm_class_udhi: job.sm.esm_class & 0x40 != 0,
            short_message: &job.sm.short_message,
            sar: None,
            message_payload: job
                .sm
                .tlvs
                .iter()
                .find(|t| t.tag == tag::MESSAGE_PAYLOAD)
                .map(|t| &t.value[..]),
            gsm7_packed: self.text().gsm7_packed,
        };
        let part_text = incoming.decode().ok()?.text;
        self.sink.early_receipt_for(
            &self.name,
            &job.sm.destination_addr,
            &job.sm.source_addr,
            &part_text,
        )
    }

    fn requeue_front(&self, job: SegmentJob) {
        if job.message.expires_at_ms <= now_ms() {
            self.sink.part_failed(
                job.id,
                job.part,
                DeliveryState::Expired,
                0,
                "validity ended while the carrier throttled".into(),
            );
            return;
        }
        self.queue.lock().push_front(job);
        self.notify.notify_waiters();
    }
}

impl Handler for SmppCarrier {
    type Job = SegmentJob;

    fn take(&self, max: usize) -> Vec<SegmentJob> {
        let mut q = self.queue.lock();
        let n = max.min(q.len());
        q.drain(..n).collect()
    }

    async fn ready(&self) {
        loop {
            let notified = self.notify.notified();
            if !self.queue.lock().is_empty() {
                return;
            }
            notified.await;
        }
    }

    fn give_back(&self, jobs: Vec<SegmentJob>) {
        let mut q = self.queue.lock();
        for j in jobs.into_iter().rev() {
            q.push_front(j);
        }
    }

    fn vet(&self, mut job: SegmentJob, now_ms: u64) -> Option<SegmentJob> {
        if job.message.expires_at_ms <= now_ms {
            self.sink.part_failed(
                job.id,
                job.part,
                DeliveryState::Expired,
                0,
                "validity ended before the part was written".into(),
            );
            return None;
        }
        let Some(check) = &self.last_check else {
            return Some(job);
        };
        let epoch = check.epoch();
        if epoch != job.checked_epoch {
            if let Some((state, reason)) = check.check(&job.message) {
                metrics::counter!("sluice_last_check_stopped_total", "carrier" => self.name.to_string())
                    .increment(1);
                self.sink
                    .part_failed(job.id, job.part, state, 0, reason.to_string());
                return None;
            }
            job.checked_epoch = epoch;
        }
        Some(job)
    }

    fn will_write(&self, jobs: &[SegmentJob]) -> crate::carrier::WriteGate {
        let parts: Vec<(MessageId, u32, u32)> =
            jobs.iter().map(|j| (j.id, j.part, j.total)).collect();
        self.sink.written(&self.name, &parts)
    }

    fn submit_sm<'a>(&self, job: &'a SegmentJob) -> &'a SubmitSm {
        &job.sm
    }

    fn submit_resp(&self, job: SegmentJob, status: CommandStatus, message_id: Bytes) {
        if status.is_ok() {
            self.sink
                .part_submitted(&self.name, job.id, job.part, &message_id);
        } else if status.is_temporary() {
            // The session slows down; the part goes back to the front.
            let cause = match status.name() {
                Some(n) => format!("carrier refused for now: {n}"),
                None => format!("carrier refused for now: status 0x{:08x}", status.0),
            };
            self.sink.part_waits(job.id, job.part, &cause);
            self.requeue_front(job);
        } else {
            let reason = match status.name() {
                Some(n) => format!("carrier refused: {n}"),
                None => format!("carrier refused: status 0x{:08x}", status.0),
            };
            self.sink
                .part_failed(job.id, job.part, DeliveryState::Rejected, status.0, reason);
        }
    }

    fn unanswered(&self, job: SegmentJob) {
        // A receipt that came before the answer proves the carrier took it.
        if let Some(carrier_id) = self.answered_early(&job) {
            metrics::counter!("sluice_smpp_unanswered_receipted_total", "carrier" => self.name.to_string())
                .increment(1);
            self.sink
                .part_submitted(&self.name, job.id, job.part, &carrier_id);
            return;
        }
        match self.tuning.load().unanswered {
            Unanswered::Resend => self.requeue_front(job),
            Unanswered::Unknown => self.sink.part_failed(
                job.id,
                job.part,
                DeliveryState::Unknown,
                0,
                "no answer from the carrier".into(),
            ),
        }
    }

    fn deliver(&self, sm: DeliverSm) -> Pin<Box<dyn Future<Output = CommandStatus> + Send>> {
        self.sink.deliver(&self.name, sm)
    }

    fn deliver_batch(&self, batch: Vec<(u32, DeliverSm)>) -> crate::smpp::session::DeliverAnswers {
        self.sink.deliver_batch(&self.name, batch)
    }

    fn bind_state(&self, up: bool) {
        if up {
            self.binds_up.fetch_add(1, Ordering::AcqRel);
            self.was_up.store(true, Ordering::Release);
            self.down_since_ms.store(0, Ordering::Release);
        } else if self.binds_up.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.down_since_ms.store(now_ms().max(1), Ordering::Release);
        }
    }
}

/// How long the binds a reload replaces stay when none of the new ones
/// binds ([`SmppCarrier::rebind`]).
pub const REPLACE_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

/// Part permits for `binds`: twice their windows, at least one message's
/// worth.
fn capacity_of(binds: &[BindConfig]) -> usize {
    let windows: u32 = binds
        .iter()
        .filter(|b| b.mode != crate::settings::BindMode::Receiver)
        .map(|b| b.window * b.count)
        .sum();
    ((windows * 2) as usize).max(text::MAX_SEGMENTS)
}

fn bind_params(
    carrier: &Arc<str>,
    n: usize,
    b: &BindConfig,
    tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
) -> BindParams {
    BindParams {
        name: format!("{carrier}/{n}").into(),
        carrier: carrier.clone(),
        address: b.address.clone(),
        system_id: b.system_id.clone(),
        password: b.password.clone(),
        system_type: b.system_type.clone(),
        mode: b.mode,
        window: b.window as usize,
        rate: b.rate,
        tls,
        response_timeout: b.response_timeout,
        enquire_link_interval: b.enquire_link_interval,
        reconnect_min: b.reconnect_min,
        reconnect_max: b.reconnect_max,
        auth_failure_backoff: b.auth_failure_backoff,
        retire: None,
    }
}

/// SMPP relative time (`YYMMDDhhmmss000R`) for `secs` from now, capped at 99 days.
pub fn relative_validity(secs: u64) -> Bytes {
    let secs = secs.clamp(60, 99 * 86_400);
    let (d, r) = (secs / 86_400, secs % 86_400);
    let (h, r) = (r / 3600, r % 3600);
    let (m, s) = (r / 60, r % 60);
    let mut out = *b"0000DDhhmmss000R";
    for (i, v) in [d, h, m, s].into_iter().enumerate() {
        out[4 + 2 * i] = b'0' + (v / 10) as u8;
        out[5 + 2 * i] = b'0' + (v % 10) as u8;
    }
    Bytes::copy_from_slice(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: u64, text: &str) -> Arc<Message> {
        crate::model::test_message(id, text, u64::MAX)
    }

    /// Carrier `c`, its binds never started, with the receipts' journal
    /// in the directory returned.
    fn unbound_carrier() -> (tempfile::TempDir, Arc<SmppCarrier>) {
        let dir = tempfile::tempdir().unwrap();
        let (_, sink) = crate::receipts::for_tests(dir.path());
        let cfg: CarrierConfig = toml::from_str(
            r#"name = "c"
binds = [{ address = "127.0.0.1:1", system_id = "s", password = "p" }]"#,
        )
        .unwrap();
        (dir, SmppCarrier::new(&cfg, sink, None))
    }

    #[tokio::test]
    async fn take_back_moves_only_whole_messages_the_ledger_lets_go() {
        let (_dir, carrier) = unbound_carrier();
        // A two-part message one part of which a bind has taken, then two
        // whole ones.
        let long = message(1, &"x".repeat(200));
        let (kept, freed) = (message(2, "kept"), message(3, "freed"));
        for m in [&long, &kept, &freed] {
            let parts = carrier.parts(m).unwrap();
            carrier
                .capacity()
                .try_acquire_many(parts.len() as u32)
                .unwrap()
                .forget();
            carrier.enqueue(m, 0, parts);
        }
        assert_eq!(carrier.take(1).len(), 1);
        let taken = carrier.take_back_unsent(|ids| {
            let mut ids = ids.to_vec();
            ids.sort();
            assert_eq!(
                ids,
                vec![kept.id, freed.id],
                "only whole messages are offered"
            );
            // The ledger keeps `kept` here: its parts must stay queued.
            vec![freed.id]
        });
        assert_eq!(taken, vec![freed.id]);
        let left: Vec<(MessageId, u32)> = carrier
            .queue
            .lock()
            .iter()
            .map(|j| (j.id, j.part))
            .collect();
        assert_eq!(left, vec![(long.id, 1), (kept.id, 0)]);
    }

    /// The last look ends a part whose validity is over at the time the
    /// session read for its batch, and lets one still valid then go.
    #[tokio::test]
    async fn the_last_look_reads_expiry_at_the_time_it_is_given() {
        use crate::smpp::session::Handler;
        let (_dir, carrier) = unbound_carrier();
        let m = crate::model::test_message(1, "hi", 5_000);
        let parts = carrier.parts(&m).unwrap();
        carrier.capacity().try_acquire_many(1).unwrap().forget();
        carrier.enqueue(&m, 0, parts);
        let job = carrier.take(1).pop().expect("the part is queued");
        let job = carrier.vet(job, 4_999).expect("valid until 5,000 ms");
        assert!(carrier.vet(job, 5_000).is_none(), "over at 5,000 ms");
    }

    #[test]
    fn relative_validity_format() {
        assert_eq!(&relative_validity(60)[..], b"000000000100000R");
        assert_eq!(
            &relative_validity(2 * 86_400 + 3 * 3600 + 4 * 60 + 5)[..],
            b"000002030405000R"
        );
        assert_eq!(&relative_validity(0)[..], b"000000000100000R");
        assert_eq!(relative_validity(u64::MAX).len(), 16);
    }
}
