//! The dispatcher of an MMS carrier: pops from the carrier's fair queue what
//! its limits allow, applies the same checks as SMS (quiet hours,
//! suppression, validity), then submits each message over MM7 with bounded
//! concurrency. Before every request (after every wait: pacing, a retry's
//! backoff) the message gets its last look (validity, opt-outs) and the
//! journal records it `Written`, durably, so after a crash a message whose
//! request never left is queued again and one that may have reached the
//! MMSC is `unknown`.
//!
//! A temporary refusal (4006, HTTP 503, a timeout) slows the carrier down
//! (AIMD, [`super::aimd`]) and retries the same message with backoff until
//! its validity ends; a permanent one (2xxx/3xxx, or media that cannot fit)
//! returns the message to queued and hands it to the fallback (SMS with a
//! link or text only, or failure, per the message's policy).

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

use super::aimd::Aimd;
use super::fair::{Item, Pop};
use super::{CarrierQueue, DispatchCheck, QuietCheck};
use crate::carrier::CarrierSink;
use crate::carrier::mm7::{Attempt, Mm7Carrier};
use crate::ledger::{Finalized, Ledger};
use crate::model::{DeliveryState, Message, now_ms};
use crate::receipts::Receipts;

const TARGET: &str = "sluice::schedule";

/// Hands a message that cannot go as MMS to the SMS fallback.
pub type Fallback = Arc<dyn Fn(Arc<Message>, String) + Send + Sync>;

/// Everything the dispatcher of one MMSC works with.
pub struct Mm7Dispatcher {
    /// Its queue.
    pub queue: Arc<CarrierQueue>,
    /// Its carrier.
    pub carrier: Arc<Mm7Carrier>,
    /// Live messages.
    pub ledger: Arc<Ledger>,
    /// Where outcomes go.
    pub receipts: Arc<Receipts>,
    /// Last check before sending (suppression).
    pub check: Option<DispatchCheck>,
    /// Where permanent refusals go.
    pub fallback: Fallback,
    /// Concurrent submits.
    pub concurrency: usize,
    /// Configured rate (0: unlimited), the ceiling of adaptive throttling.
    pub rate: f64,
}

impl std::fmt::Debug for Mm7Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mm7Dispatcher")
            .field("carrier", self.carrier.name())
            .finish_non_exhaustive()
    }
}

impl Mm7Dispatcher {
    /// Runs until shutdown.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let this = Arc::new(self);
        let sem = Arc::new(Semaphore::new(this.concurrency.max(1)));
        let aimd = Arc::new(Mutex::new(Aimd::new(
            (this.rate > 0.0).then_some(this.rate),
        )));
        let mut wake: Option<Instant> = None;
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let observed = super::QueueMetrics::new(this.carrier.name());
        loop {
            if let Some(next) = this.queue.release_held(now_ms()) {
                let at = Instant::now() + Duration::from_millis(next.saturating_sub(now_ms()));
                wake = Some(wake.map_or(at, |w| w.min(at)));
            }
            let notified = this.queue.notify.notified();
            let ready = !this.queue.is_paused()
                && !this.queue.is_empty()
                && wake.is_none_or(|t| t <= Instant::now());
            if !ready {
                tokio::select! {
                    _ = notified => {}
                    _ = super::sleep_until_opt(wake) => {}
                    _ = tick.tick() => aimd.lock().on_tick(Instant::now()),
                    _ = shutdown.changed() => return,
                }
                if wake.is_some_and(|t| t <= Instant::now()) {
                    wake = None;
                }
                continue;
            }
            let first = tokio::select! {
                p = sem.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
                _ = shutdown.changed() => return,
            };
            drop(first);
            let (items, next) = this.take_batch(sem.available_permits().max(1));
            wake = next;
            observed.observe(&this.queue);
            if items.is_empty() {
                continue;
            }
            let ready = this.prepare(items);
            for m in ready {
                let permit = tokio::select! {
                    p = sem.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
                    _ = shutdown.changed() => return,
                };
                let this = this.clone();
                let aimd = aimd.clone();
                tokio::spawn(async move {
                    this.submit(m, &aimd).await;
                    drop(permit);
                });
            }
        }
    }

    fn take_batch(&self, max: usize) -> (Vec<Item>, Option<Instant>) {
        let now = Instant::now();
        let now_ms = now_ms();
        let mut q = self.queue.fair.lock();
        let mut limits = self.queue.limits.lock();
        let mut items = Vec::new();
        let mut next = None;
        while items.len() < max.min(256) {
            match q.pop(now, now_ms, &mut limits) {
                Pop::Item(i) => items.push(i),
                Pop::WaitUntil(t) => {
                    next = Some(t);
                    break;
                }
                Pop::Empty => break,
            }
        }
        (items, next)
    }

    /// Quiet hours, validity and suppression; what passes is dispatched (in
    /// memory: the journal hears of it right before its request).
    fn prepare(&self, items: Vec<Item>) -> Vec<Arc<Message>> {
        let now = now_ms();
        let mut finals: Vec<Finalized> = Vec::new();
        let mut ready = Vec::with_capacity(items.len());
        let name = self.carrier.name().clone();
        for item in items {
            let m = match self.queue.quiet_check(item, now) {
                QuietCheck::Go(i) => i.message,
                QuietCheck::Held(_) => continue,
                QuietCheck::Expires(i) => {
                    let reason = "validity ends before the recipient's quiet hours do".into();
                    finals.extend(self.ledger.finish(
                        i.message.id,
                        DeliveryState::Expired,
                        0,
                        &reason,
                    ));
                    continue;
                }
            };
            if m.expires_at_ms <= now {
                let reason = "validity ended before dispatch".into();
                finals.extend(self.ledger.finish(m.id, DeliveryState::Expired, 0, &reason));
                continue;
            }
            if let Some((state, reason)) = self.check.as_ref().and_then(|c| c.check(&m)) {
                finals.extend(self.ledger.finish(m.id, state, 0, &reason));
                continue;
            }
            if self.ledger.dispatch(m.id, &name, 1) {
                ready.push(m);
            }
        }
        if !finals.is_empty() {
            tokio::spawn(self.receipts.publish(finals));
        }
        ready
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

    /// Submits one message until it is accepted, refused for good, or out
    /// of validity.
    async fn submit(&self, m: Arc<Message>, aimd: &Mutex<Aimd>) {
        let name = self.carrier.name().clone();
        let mut backoff = Duration::from_millis(250);
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
            if self.stopped(&m) {
                return;
            }
            if let Err(e) = self.ledger.written(&name, &[(m.id, 0, 1)]).wait().await {
                tracing::error!(target: TARGET, error = %e, "journal failed; MMS not sent");
                return;
            }
            metrics::counter!("sluice_mm7_submits_total", "carrier" => name.to_string())
                .increment(1);
            match self.carrier.submit(&m, attempt).await {
                Attempt::Accepted(message_id) => {
                    aimd.lock().on_accept(Instant::now());
                    self.receipts
                        .part_submitted(&name, m.id, 0, message_id.as_bytes());
                    return;
                }
                Attempt::Temporary(reason) => {
                    aimd.lock().on_throttle(Instant::now());
                    metrics::counter!("sluice_mm7_throttled_total", "carrier" => name.to_string())
                        .increment(1);
                    if now_ms() + backoff.as_millis() as u64 >= m.expires_at_ms {
                        self.receipts.part_failed(
                            m.id,
                            0,
                            DeliveryState::Expired,
                            0,
                            format!("validity ended while the MMSC refused for now: {reason}"),
                        );
                        return;
                    }
                    tracing::debug!(target: TARGET, carrier = %name, id = %m.id, attempt, reason = %crate::model::LogSafe::display(&reason), "MMS retry");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
                Attempt::Permanent { reason, code } => {
                    metrics::counter!("sluice_mm7_refused_total", "carrier" => name.to_string())
                        .increment(1);
                    if !self.ledger.refused(m.id) {
                        self.receipts
                            .part_failed(m.id, 0, DeliveryState::Rejected, code, reason);
                    } else {
                        (self.fallback)(m, reason);
                    }
                    return;
                }
            }
        }
    }
}
