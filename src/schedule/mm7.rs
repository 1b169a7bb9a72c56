//! The MMS lane: [`Mm7Lane`] is the [`Carrier`] the one dispatcher
//! ([`super::dispatch::Dispatcher`]) feeds for an MMSC, so MMS pass the same
//! waits and checks as SMS (limits, quiet hours, validity, opt-outs); its
//! hand-off submits each message over MM7 with bounded concurrency and
//! adaptive pacing. Before every request (after every wait: pacing, a retry's
//! backoff) the message gets its last look (validity, opt-outs) and the
//! journal records it `Written`, durably, so after a crash a message whose
//! request never left is queued again and one that may have reached the
//! MMSC is `unknown`.
//!
//! What each answer ([`Attempt`]) does:
//!
//! | answer | the message | the MMSC |
//! | --- | --- | --- |
//! | accepted | waits for its delivery report | up |
//! | refused for now (4006, 3000, HTTP 503) | retried with backoff (`retry_min` doubling to `retry_max`) until its validity ends, then `expired` with the last MM7 status | up; adaptive slow-down ([`crate::shaping::aimd`]) |
//! | refused for good (2xxx, most 3xxx and 4xxx), or media that cannot fit | back to queued and to its fallback (SMS with a link or text only, or `failed` with the MM7 status, per its policy) | up |
//! | unanswered (timeout, connection lost after sending, HTTP 504) | `unknown` (`unanswered = "unknown"`, the default: it may have been accepted, and a second SubmitReq would be a second MMS), or queued again (`"resend"`) | down (unreachable) |
//! | never sent (connection refused, no connection in time) | queued again, at the front | down (unreachable) |
//! | HTTP 401/403 | queued again, at the front | paused: credentials refused (`sluice_mm7_auth_failed` = 1, an error log) |
//!
//! While its MMSC is down the lane takes nothing but one try at a
//! time ([`Gate::Probe`]), when [`Mm7Carrier::begin_probe`] allows (the wait doubles after
//! each failed try: 1 s to 30 s when unreachable, `auth_retry_min` to
//! `auth_retry_max` for credentials); the try is a queued message, so the
//! queue drains as MMS the moment the MMSC takes one. Meanwhile messages
//! wait in the queue (the gateway hands them to another MMSC after
//! `failover_after`), and those whose validity ends within
//! `mms.fallback_before_expiry` go to their fallback: a paused MMSC never
//! turns its whole queue into SMS one by one.
//!
//! With `mmsc.max_recipients` above 1, a hand-off's messages of the same
//! content to different numbers go as one request
//! ([`crate::carrier::mm7::requests`]); the table holds for each of them,
//! and every message keeps its own last look, fallback and validity. An
//! accepted request records each message under (MessageID, its recipient)
//! ([`crate::receipts::recipient_id`]), so each ends by its own delivery
//! report; a `1100 Partial success` refuses for good the recipients its
//! `Details` names.
//!
//! Every message this lane ends carries its MMSC as carrier (channel
//! `mms`) and the MM7 status code when there is one.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::dispatch::Dispatcher;
use super::fair::Item;
use super::{CarrierQueue, DispatchCheck};
use crate::carrier::mm7::{Attempt, Down, Mm7Carrier, Transition, requests};
use crate::carrier::{Carrier, CarrierSink, Gate, Room};
use crate::ledger::Ledger;
use crate::model::{DeliveryState, Message, now_ms};
use crate::receipts::Receipts;
use crate::settings::Unanswered;
use crate::shaping::aimd::Aimd;

const TARGET: &str = "sluice::schedule";

/// How often a down MMSC's queue is looked through for messages whose
/// validity is about to end.
const EXPIRY_SCAN_EVERY: Duration = Duration::from_secs(5);

/// Why a message leaves the MMS channel for its fallback, and at which
/// MMSC.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The MMSC.
    pub carrier: Arc<str>,
    /// The MM7 status code (0 when none).
    pub code: u32,
    /// Readable reason.
    pub reason: String,
}

/// A wait that doubles after each try, from `first` up to `longest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first try.
    pub first: Duration,
    /// The longest wait.
    pub longest: Duration,
}

impl Backoff {
    /// The wait after `wait`.
    fn next(self, wait: Duration) -> Duration {
        (wait * 2).clamp(self.first, self.longest.max(self.first))
    }
}

/// Hands a message that cannot go as MMS to the SMS fallback.
pub type Fallback = Arc<dyn Fn(Arc<Message>, Refusal) + Send + Sync>;

/// How an MMSC's lane submits.
#[derive(Debug, Clone)]
pub struct LaneSettings {
    /// Concurrent submits.
    pub concurrency: usize,
    /// Configured rate (0: unlimited), the ceiling of adaptive throttling.
    pub rate: f64,
    /// What a SubmitReq whose answer never came becomes.
    pub unanswered: Unanswered,
    /// Waits between submits of a message the MMSC refused for now.
    pub retry: Backoff,
    /// When a message refused for now takes its fallback.
    pub fallback_after: crate::settings::FallbackAfter,
    /// While the MMSC is down, queued messages whose validity ends within
    /// this go to their fallback.
    pub fallback_before_expiry: Duration,
    /// Most recipients in one request.
    pub max_recipients: usize,
}

/// The submits a lane may have in flight: one permit each, resized by a
/// reload. Every permit comes back through [`Submits::give_back`] under the
/// same lock as [`Submits::resize`], so what a lowered limit owes is exact.
#[derive(Debug)]
struct Submits {
    permits: Arc<Semaphore>,
    /// Permits a lowered limit takes back from the submits in flight as
    /// they end (guarded: every change under it).
    owed: Mutex<usize>,
}

impl Submits {
    fn new(limit: usize) -> Submits {
        Submits {
            permits: Arc::new(Semaphore::new(limit.max(1))),
            owed: Mutex::new(0),
        }
    }

    /// From `old` to `new` submits at once: raised, at once (cancelling
    /// what a lowering still owes first); lowered, the free permits at
    /// once and the rest as the submits in flight end.
    fn resize(&self, old: usize, new: usize) {
        let mut owed = self.owed.lock();
        let (old, new) = (old.max(1), new.max(1));
        if new > old {
            let grow = new - old;
            let cancelled = (*owed).min(grow);
            *owed -= cancelled;
            self.permits.add_permits(grow - cancelled);
        } else if new < old {
            let shrink = old - new;
            // No permit comes back meanwhile (the lock): those not free now
            // are held, and each pays one as it comes back.
            let forgotten = self.permits.forget_permits(shrink);
            *owed += shrink - forgotten;
        }
    }

    /// Waits for a free submit (without taking it).
    async fn wait(&self) -> bool {
        match self.permits.clone().acquire_owned().await {
            Ok(p) => {
                self.give_back(p);
                true
            }
            Err(_) => false,
        }
    }

    /// A permit comes back: to the semaphore, unless a lowered limit still
    /// owes one.
    fn give_back(&self, permit: tokio::sync::OwnedSemaphorePermit) {
        let mut owed = self.owed.lock();
        if *owed > 0 {
            *owed -= 1;
            permit.forget();
        } else {
            drop(permit);
        }
    }

    /// No submit is in flight at `limit`.
    fn idle(&self, limit: usize) -> bool {
        let owed = self.owed.lock();
        *owed == 0 && self.permits.available_permits() >= limit.max(1)
    }
}

/// One MMSC as the dispatcher sees it, with what its submits need.
pub struct Mm7Lane {
    queue: Arc<CarrierQueue>,
    carrier: Arc<Mm7Carrier>,
    ledger: Arc<Ledger>,
    receipts: Arc<Receipts>,
    check: Option<DispatchCheck>,
    fallback: Fallback,
    /// A reload replaces them ([`Mm7Lane::retune`]; not `concurrency`).
    settings: arc_swap::ArcSwap<LaneSettings>,
    /// One permit per submit in flight.
    submits: Submits,
    aimd: Mutex<Aimd>,
    /// When the queue of a down MMSC is next looked through for messages
    /// whose validity is about to end.
    scan_at: Mutex<Instant>,
}

impl std::fmt::Debug for Mm7Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mm7Lane")
            .field("carrier", self.carrier.name())
            .finish_non_exhaustive()
    }
}

/// Gives a try back if it ends without an outcome that marks the MMSC up
/// or down (the last look stopped the message, the journal failed...).
struct ProbeGuard<'a> {
    carrier: Option<&'a Mm7Carrier>,
}

impl ProbeGuard<'_> {
    /// True while this is the MMSC's one try and it has no outcome yet.
    fn armed(&self) -> bool {
        self.carrier.is_some()
    }

    /// The try came to an outcome (the MMSC was marked up or down).
    fn resolved(&mut self) {
        self.carrier = None;
    }
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.carrier {
            c.end_probe();
        }
    }
}

impl Mm7Lane {
    /// The dispatcher of `carrier`'s queue.
    pub fn dispatcher(
        queue: Arc<CarrierQueue>,
        carrier: Arc<Mm7Carrier>,
        ledger: Arc<Ledger>,
        receipts: Arc<Receipts>,
        check: Option<DispatchCheck>,
        fallback: Fallback,
        settings: LaneSettings,
    ) -> Dispatcher<Mm7Lane> {
        let lane = Mm7Lane {
            queue: queue.clone(),
            carrier,
            ledger: ledger.clone(),
            receipts: receipts.clone(),
            check: check.clone(),
            fallback,
            submits: Submits::new(settings.concurrency),
            aimd: Mutex::new(Aimd::new((settings.rate > 0.0).then_some(settings.rate))),
            settings: arc_swap::ArcSwap::from_pointee(settings),
            scan_at: Mutex::new(Instant::now()),
        };
        Dispatcher {
            queue,
            carrier: Arc::new(lane),
            ledger,
            receipts,
            check,
        }
    }

    /// Takes `settings` (a reload): its `rate` as the ceiling of adaptive
    /// throttling, `concurrency` for the submits in flight (raised: at
    /// once; lowered: as those in flight beyond it end), and the rest for
    /// the next request, retry or fallback.
    pub fn retune(&self, settings: LaneSettings) {
        self.submits
            .resize(self.settings.load().concurrency, settings.concurrency);
        self.aimd
            .lock()
            .set_ceiling((settings.rate > 0.0).then_some(settings.rate));
        self.settings.store(Arc::new(settings));
        self.queue.notify.notify_one();
    }

    /// No request is in flight (a removed MMSC's lane is forgotten once
    /// idle).
    pub fn is_idle(&self) -> bool {
        self.submits.idle(self.settings.load().concurrency)
    }

    /// Puts a dispatched message that did not reach the MMSC back at the
    /// front of the queue (journaled back to queued).
    fn requeue(&self, m: &Arc<Message>) {
        if self.ledger.refused(m.id) {
            self.queue.push_front(std::iter::once(m));
        }
    }

    /// While the MMSC is down: hands queued messages whose validity ends
    /// within `fallback_before_expiry` to their fallback; the rest wait.
    /// Messages queued while this runs may overtake the ones put back.
    fn fallback_expiring(&self) {
        let Some(why) = self.carrier.down() else {
            return;
        };
        if self.queue.is_empty() || self.queue.is_paused() {
            return;
        }
        let limit =
            now_ms().saturating_add(self.settings.load().fallback_before_expiry.as_millis() as u64);
        let (due, keep): (Vec<Item>, Vec<Item>) = self
            .queue
            .drain()
            .into_iter()
            .partition(|i| i.message.expires_at_ms <= limit);
        if !keep.is_empty() {
            self.queue.push_items(keep);
        }
        if due.is_empty() {
            return;
        }
        let name = self.carrier.name();
        tracing::warn!(target: TARGET, carrier = %name, messages = due.len(), %why,
            "MMS whose validity is about to end take their fallback while the MMSC is down");
        for i in due {
            let reason = format!(
                "MMSC {name} {why} and the validity ends within {}",
                humantime::format_duration(self.settings.load().fallback_before_expiry)
            );
            (self.fallback)(
                i.message,
                Refusal {
                    carrier: name.clone(),
                    code: 0,
                    reason,
                },
            );
        }
    }

    /// The last look before a request leaves: true when the message ended
    /// instead (validity over, recipient opted out).
    fn stopped(&self, m: &Message) -> bool {
        let ended = if m.expires_at_ms <= now_ms() {
            Some((
                DeliveryState::Expired,
                "validity ended before the MMS was sent".into(),
            ))
        } else {
            self.check.as_ref().and_then(|c| c.check(m))
        };
        let Some((state, reason)) = ended else {
            return false;
        };
        if state == DeliveryState::Suppressed {
            metrics::counter!("sluice_last_check_stopped_total", "carrier" => self.carrier.name().to_string())
                .increment(1);
        }
        self.receipts
            .part_failed(m.id, 0, state, 0, reason.to_string());
        true
    }

    /// The MMSC answered: up again if it was down.
    fn answered(&self) {
        if let Some((why, for_)) = self.carrier.mark_up() {
            let name = self.carrier.name();
            metrics::gauge!("sluice_mm7_down", "carrier" => name.to_string()).set(0.0);
            metrics::gauge!("sluice_mm7_auth_failed", "carrier" => name.to_string()).set(0.0);
            tracing::info!(target: TARGET, carrier = %name, was = %why, down_s = for_.as_secs(),
                "MMSC takes MMS again; its queue drains");
            self.queue.notify.notify_one();
        }
    }

    /// The MMSC did not take a request for `why`.
    fn went_down(&self, why: Down, probe: bool) {
        let name = self.carrier.name();
        let (t, retry_in) = self.carrier.mark_down(why.clone(), probe);
        let auth = matches!(why, Down::Unauthorized(_));
        match t {
            Transition::Down => {
                metrics::gauge!("sluice_mm7_down", "carrier" => name.to_string()).set(1.0);
                if auth {
                    metrics::gauge!("sluice_mm7_auth_failed", "carrier" => name.to_string())
                        .set(1.0);
                    tracing::error!(target: TARGET, carrier = %name, %why, retry_in_s = retry_in.as_secs(),
                        "MMSC refuses our credentials: its MMS are paused (they wait, or take their fallback only when their validity is about to end); credentials are tried again with backoff");
                } else {
                    tracing::warn!(target: TARGET, carrier = %name, %why, retry_in_ms = retry_in.as_millis() as u64,
                        "MMSC unreachable: its MMS wait; tried again with backoff");
                }
            }
            Transition::StillDown => {
                if auth {
                    tracing::error!(target: TARGET, carrier = %name, %why, retry_in_s = retry_in.as_secs(),
                        "MMSC still refuses our credentials");
                } else {
                    tracing::info!(target: TARGET, carrier = %name, %why, retry_in_ms = retry_in.as_millis() as u64,
                        "MMSC still unreachable");
                }
            }
            Transition::Unchanged => {}
        }
        self.queue.notify.notify_one();
    }

    /// A message the MMSC refused for good (or cannot be sent as MMS):
    /// back to queued and to its fallback, or `rejected` when it has none.
    fn refused_for_good(&self, m: Arc<Message>, code: u32, reason: String) {
        if !self.ledger.refused(m.id) {
            self.receipts
                .part_failed(m.id, 0, DeliveryState::Rejected, code, reason);
        } else {
            let refusal = Refusal {
                carrier: self.carrier.name().clone(),
                code,
                reason,
            };
            (self.fallback)(m, refusal);
        }
    }

    /// Submits one request (a message, or several of the same content to
    /// different numbers: [`crate::carrier::mm7::requests`]) until it is
    /// accepted, refused for good, out of validity, or the MMSC cannot take
    /// it (then its messages wait in the queue). Each message keeps its own
    /// outcome: the last look, the fallback of a refusal for now and
    /// validity are per message, and those still going stay one request.
    /// `probe`: it is the one try while the MMSC is down.
    async fn submit(&self, mut group: Vec<Arc<Message>>, probe: bool) {
        let aimd = &self.aimd;
        let name = self.carrier.name().clone();
        let mut probe_guard = ProbeGuard {
            carrier: probe.then_some(&*self.carrier),
        };
        let mut backoff = self.settings.load().retry.first;
        // The MMSC's last "not now" (status, reason), reported if the
        // validity ends before it takes the message.
        let mut refused_for_now: Option<(u32, String)> = None;
        for attempt in 0u32.. {
            loop {
                let now = Instant::now();
                let at = aimd.lock().ready_at(now);
                if at <= now {
                    aimd.lock().on_send(now);
                    break;
                }
                tokio::time::sleep_until(at).await;
            }
            if self.queue.is_removed() {
                // A reload removed the MMSC: nothing more goes to it (a
                // retry, a message of a group tried on its own); routed
                // again from its queue
                // ([`crate::backlog::Backlog::retire_mmsc`]).
                for m in &group {
                    self.requeue(m);
                }
                return;
            }
            if let Some((code, reason)) = &refused_for_now {
                let now = now_ms();
                group.retain(|m| {
                    if m.expires_at_ms > now {
                        return true;
                    }
                    self.receipts.part_failed(
                        m.id,
                        0,
                        DeliveryState::Expired,
                        *code,
                        format!("validity ended while the MMSC refused for now: {reason}"),
                    );
                    false
                });
            }
            group.retain(|m| !self.stopped(m));
            if group.is_empty() {
                return;
            }
            let written: Vec<_> = group.iter().map(|m| (m.id, 0, 1)).collect();
            if let Err(e) = self.ledger.written(&name, &written).wait().await {
                tracing::error!(target: TARGET, error = %e, "journal failed; MMS not sent");
                return;
            }
            metrics::counter!("sluice_mm7_submits_total", "carrier" => name.to_string())
                .increment(1);
            // Held until the answer is recorded: a delivery report that
            // overtakes it waits for it.
            let ticket = self.carrier.in_flight().begin();
            let profile = self.carrier.profile_generation();
            let outcome = self.carrier.submit(&group, attempt).await;
            match outcome {
                Attempt::Accepted {
                    message_id,
                    partial,
                } => {
                    aimd.lock().on_accept(Instant::now());
                    let shared = group.len() > 1;
                    for m in group {
                        let to = m.to.to_string();
                        if let Some(p) = partial.as_ref().filter(|p| p.names(&to)) {
                            metrics::counter!("sluice_mm7_refused_total", "carrier" => name.to_string())
                                .increment(1);
                            self.refused_for_good(
                                m,
                                crate::mm7::status::PARTIAL_SUCCESS,
                                p.reason.clone(),
                            );
                        } else if shared {
                            // One MessageID for the request: each
                            // recipient's report names its recipient.
                            let key = crate::receipts::recipient_id(&message_id, &to);
                            self.receipts.part_submitted(&name, m.id, 0, &key);
                        } else {
                            self.receipts
                                .part_submitted(&name, m.id, 0, message_id.as_bytes());
                        }
                    }
                    drop(ticket);
                    self.answered();
                    probe_guard.resolved();
                    return;
                }
                Attempt::Temporary { reason, code } => {
                    drop(ticket);
                    self.answered();
                    probe_guard.resolved();
                    aimd.lock().on_throttle(Instant::now());
                    metrics::counter!("sluice_mm7_throttled_total", "carrier" => name.to_string())
                        .increment(1);
                    let tries = attempt.saturating_add(1);
                    let mut going = Vec::with_capacity(group.len());
                    for m in group {
                        let waited =
                            Duration::from_millis(now_ms().saturating_sub(m.accepted_at_ms));
                        if self.settings.load().fallback_after.due(tries, waited)
                            && self.ledger.refused(m.id)
                        {
                            // Refused for now too often: the SMS fallback
                            // reaches the recipient while the MMS would not.
                            let refusal = Refusal {
                                carrier: name.clone(),
                                code,
                                reason: format!(
                                    "refused for now {tries} times in {}: {reason}",
                                    humantime::format_duration(Duration::from_secs(
                                        waited.as_secs()
                                    ))
                                ),
                            };
                            (self.fallback)(m, refusal);
                        } else {
                            going.push(m);
                        }
                    }
                    group = going;
                    let Some(soonest) = group.iter().map(|m| m.expires_at_ms).min() else {
                        return;
                    };
                    tracing::debug!(target: TARGET, carrier = %name, id = %group[0].id, recipients = group.len(), attempt, reason = %crate::model::LogSafe::display(&reason), "MMS retry");
                    // Never past a validity: the last try is at its end,
                    // and only then is the message `expired`.
                    let left = soonest.saturating_sub(now_ms());
                    tokio::time::sleep(backoff.min(Duration::from_millis(left))).await;
                    backoff = self.settings.load().retry.next(backoff);
                    refused_for_now = Some((code, reason));
                }
                Attempt::Permanent { code: 0, .. } if group.len() > 1 => {
                    // Refused here, before sending (the shared request does
                    // not fit, or a media item cannot be had): each message
                    // is tried on its own, so none pays for the others.
                    drop(ticket);
                    // Nothing reached the MMSC: a try while it is down is
                    // given back.
                    drop(probe_guard);
                    for m in group {
                        Box::pin(self.submit(vec![m], false)).await;
                    }
                    return;
                }
                Attempt::Permanent { reason, code } => {
                    drop(ticket);
                    self.answered();
                    probe_guard.resolved();
                    metrics::counter!("sluice_mm7_refused_total", "carrier" => name.to_string())
                        .increment(group.len() as u64);
                    for m in group {
                        self.refused_for_good(m, code, reason.clone());
                    }
                    return;
                }
                Attempt::Unanswered(reason) => {
                    drop(ticket);
                    aimd.lock().on_throttle(Instant::now());
                    metrics::counter!("sluice_mm7_unanswered_total", "carrier" => name.to_string())
                        .increment(1);
                    for m in &group {
                        match self.settings.load().unanswered {
                            Unanswered::Unknown => self.receipts.part_failed(
                                m.id,
                                0,
                                DeliveryState::Unknown,
                                0,
                                format!(
                                    "no answer from the MMSC ({reason}): it may have accepted the MMS, so it is not sent again"
                                ),
                            ),
                            Unanswered::Resend => self.requeue(m),
                        }
                    }
                    self.went_down(Down::Unreachable(reason), probe_guard.armed());
                    probe_guard.resolved();
                    return;
                }
                Attempt::Unreachable(reason) => {
                    drop(ticket);
                    for m in &group {
                        self.requeue(m);
                    }
                    self.went_down(Down::Unreachable(reason), probe_guard.armed());
                    probe_guard.resolved();
                    return;
                }
                Attempt::Unauthorized { http_status } => {
                    drop(ticket);
                    metrics::counter!("sluice_mm7_auth_refused_total", "carrier" => name.to_string())
                        .increment(1);
                    for m in &group {
                        self.requeue(m);
                    }
                    if self.carrier.profile_generation() != profile {
                        // Refused the credentials a reload has replaced
                        // since: the new ones say nothing yet (a probe
                        // gives its try back).
                        return;
                    }
                    self.went_down(Down::Unauthorized(http_status), probe_guard.armed());
                    probe_guard.resolved();
                    return;
                }
            }
        }
    }
}

/// The dispatcher's view of an MMSC: room is a free submit, a message is
/// one unit, the hand-off starts its submit; while the MMSC is down, one
/// try when due.
impl Carrier for Mm7Lane {
    type Prepared = ();
    type Unfit = std::convert::Infallible;

    const NAMED_IN_EARLY_ENDS: bool = true;

    const UPKEEP_EVERY: Option<Duration> = Some(Duration::from_millis(250));

    fn name(&self) -> &Arc<str> {
        self.carrier.name()
    }

    fn gate(&self, now: Instant) -> Gate {
        if self.carrier.down().is_none() {
            return Gate::Open;
        }
        match self.carrier.probe_at() {
            Some(at) if at <= now => Gate::Probe,
            at => Gate::Closed(at),
        }
    }

    fn begin_probe(&self) -> bool {
        self.carrier.begin_probe()
    }

    async fn wait_room(&self, _units: usize) -> bool {
        self.submits.wait().await
    }

    /// A free submit takes up to `max_recipients` messages.
    fn room(&self) -> Room {
        Room {
            messages: self
                .submits
                .permits
                .available_permits()
                .saturating_mul(self.settings.load().max_recipients.max(1))
                .clamp(1, 256),
            units: usize::MAX,
        }
    }

    fn cost(&self, _m: &Message) -> usize {
        1
    }

    fn prepare(&self, _m: &Arc<Message>) -> Result<(), std::convert::Infallible> {
        Ok(())
    }

    fn units(_: &()) -> usize {
        1
    }

    async fn reserve(&self, _units: usize) -> bool {
        true
    }

    fn unreserve(&self, _units: usize) {}

    async fn hand_off(self: &Arc<Self>, batch: Vec<(Arc<Message>, ())>, _epoch: u64, probe: bool) {
        if probe && batch.is_empty() {
            // The try's message ended meanwhile: the next one may go.
            self.carrier.end_probe();
        }
        let messages = batch.into_iter().map(|(m, ())| m).collect();
        let mut groups = requests(messages, self.settings.load().max_recipients).into_iter();
        while let Some(group) = groups.next() {
            let permit = match self.submits.permits.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(tokio::sync::TryAcquireError::NoPermits) => {
                    // Room was counted at `max_recipients` a request, and
                    // these share less: back to the front of the queue, in
                    // order, where the expiry scan and failover see them.
                    let left: Vec<Arc<Message>> = group
                        .into_iter()
                        .chain(groups.flatten())
                        .filter(|m| self.ledger.refused(m.id))
                        .collect();
                    self.queue.push_front(left.iter());
                    if probe {
                        // Nothing of the try went (never expected: the
                        // dispatcher waited for a free submit): give it
                        // back rather than leave the MMSC "trying".
                        self.carrier.end_probe();
                    }
                    return;
                }
                Err(tokio::sync::TryAcquireError::Closed) => return,
            };
            let this = self.clone();
            tokio::spawn(async move {
                this.submit(group, probe).await;
                this.submits.give_back(permit);
            });
        }
    }

    /// Adaptive pacing's clock; while the MMSC is down, every
    /// [`EXPIRY_SCAN_EVERY`], what is about to expire takes its fallback.
    fn upkeep(&self) {
        let now = Instant::now();
        self.aimd.lock().on_tick(now);
        if self.carrier.down().is_some() {
            let mut at = self.scan_at.lock();
            if *at <= now {
                *at = now + EXPIRY_SCAN_EVERY;
                drop(at);
                self.fallback_expiring();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lowered_limit_takes_its_permits_back_from_the_submits_in_flight() {
        let submits = Submits::new(4);
        let held: Vec<_> = (0..4)
            .map(|_| submits.permits.clone().try_acquire_owned().unwrap())
            .collect();
        submits.resize(4, 2);
        for p in held {
            submits.give_back(p);
        }
        assert_eq!(submits.permits.available_permits(), 2);
        // Raised while one is still owed: the debt goes first.
        let held: Vec<_> = (0..2)
            .map(|_| submits.permits.clone().try_acquire_owned().unwrap())
            .collect();
        submits.resize(2, 1);
        submits.resize(1, 3);
        for p in held {
            submits.give_back(p);
        }
        assert_eq!(submits.permits.available_permits(), 3);
        // Lowered with permits free: at once.
        submits.resize(3, 1);
        assert_eq!(submits.permits.available_permits(), 1);
        assert!(submits.idle(1));
        // One in flight: not idle.
        let held = submits.permits.clone().try_acquire_owned().unwrap();
        submits.resize(1, 2);
        submits.resize(2, 1);
        assert_eq!(submits.permits.available_permits(), 0);
        assert!(!submits.idle(1));
        submits.give_back(held);
        assert!(submits.idle(1));
    }

    #[test]
    fn the_retry_wait_doubles_from_its_first_to_its_longest() {
        let b = Backoff {
            first: Duration::from_millis(250),
            longest: Duration::from_secs(1),
        };
        let mut wait = b.first;
        let mut seen = vec![wait];
        for _ in 0..4 {
            wait = b.next(wait);
            seen.push(wait);
        }
        let ms: Vec<u128> = seen.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [250, 500, 1000, 1000, 1000]);
        // A longest below the first (refused by the config check) still
        // waits the first.
        let odd = Backoff {
            first: Duration::from_secs(2),
            longest: Duration::from_secs(1),
        };
        assert_eq!(odd.next(odd.first), Duration::from_secs(2));
    }
}
