//! The one dispatcher, generic over the [`Carrier`] it feeds: the only place
//! a message becomes "dispatched", for SMS and MMS alike.
//!
//! Each round: wait for work (a queued message, a limit opening, a held
//! message's morning), for the carrier to take messages ([`Gate`]) and for
//! room at it; pop what every limit allows and the room holds (so the
//! backlog stays in the fair queue, where the order is decided as late as
//! possible); the last checks ([`CarrierQueue::vet`]: quiet hours,
//! validity, opt-outs); prepare each message for its protocol (what cannot
//! be encoded ends `rejected`); record the dispatch in the ledger; hand the
//! messages to the carrier. Nothing is journaled here: the carrier journals
//! what it is about to write (`Written`) and looks at it once more right
//! before, so a dispatched message that never left is queued again after a
//! crash, and one whose recipient opted out meanwhile never leaves.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::watch;
use tokio::time::Instant;

use super::fair::Item;
use super::{CarrierQueue, DispatchCheck, QueueMetrics};
use crate::carrier::{Carrier, Gate};
use crate::ledger::Ledger;
use crate::model::{DeliveryState, now_ms};
use crate::receipts::Receipts;

/// Everything the dispatcher of one carrier works with.
pub struct Dispatcher<C: Carrier> {
    /// Its queue.
    pub queue: Arc<CarrierQueue>,
    /// Its carrier.
    pub carrier: Arc<C>,
    /// Live messages.
    pub ledger: Arc<Ledger>,
    /// Where final states go.
    pub receipts: Arc<Receipts>,
    /// A last check before sending (suppression).
    pub check: Option<DispatchCheck>,
}

impl<C: Carrier> std::fmt::Debug for Dispatcher<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("carrier", self.carrier.name())
            .finish_non_exhaustive()
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// The earlier of two optional instants.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl<C: Carrier> Dispatcher<C> {
    /// Moves messages from the queue to the carrier until shutdown, or
    /// until a reload removes the carrier (its queue is marked removed):
    /// then what it popped and still holds goes back in the queue, for the
    /// backlog to route again.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let observed = QueueMetrics::new(self.carrier.name());
        // A message popped that did not fit the room: it goes first once
        // there is enough (it already passed its limits).
        let mut carried: Option<(Item, usize)> = None;
        self.serve(&observed, &mut carried, shutdown).await;
        if let Some((item, _)) = carried {
            self.queue.push_items(vec![item]);
        }
        self.queue.dispatcher_ended.store(true, Ordering::Release);
    }

    async fn serve(
        &self,
        observed: &QueueMetrics,
        carried: &mut Option<(Item, usize)>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut wake: Option<Instant> = None;
        let mut upkeep_at = C::UPKEEP_EVERY.map(|every| Instant::now() + every);
        loop {
            if self.queue.is_removed() {
                return;
            }
            // Held messages whose morning came go back in the queue.
            if let Some(next) = self.queue.release_held(now_ms()) {
                let at = Instant::now()
                    + std::time::Duration::from_millis(next.saturating_sub(now_ms()));
                wake = earliest(wake, Some(at));
            }
            let now = Instant::now();
            if let (Some(at), Some(every)) = (upkeep_at, C::UPKEEP_EVERY)
                && at <= now
            {
                self.carrier.upkeep();
                upkeep_at = Some(now + every);
            }
            // Wait for work, a limit to open, the carrier, or shutdown.
            let gate = self.carrier.gate(now);
            let notified = self.queue.notify.notified();
            let ready = !matches!(gate, Gate::Closed(_))
                && !self.queue.is_paused()
                && (carried.is_some() || !self.queue.is_empty())
                && (carried.is_some() || wake.is_none_or(|t| t <= now));
            if !ready {
                let retry_at = match gate {
                    Gate::Closed(at) => at,
                    _ => None,
                };
                let until = earliest(earliest(wake, retry_at), upkeep_at);
                tokio::select! {
                    _ = notified => {}
                    _ = sleep_until_opt(until) => {}
                    _ = shutdown.changed() => return,
                }
                if wake.is_some_and(|t| t <= Instant::now()) {
                    wake = None;
                }
                continue;
            }
            // Room at the carrier before anything leaves the queue: one
            // unit, or as many as the message carried over needs.
            let need = carried.as_ref().map_or(1, |(_, n)| *n);
            tokio::select! {
                ok = self.carrier.wait_room(need) => if !ok { return },
                _ = shutdown.changed() => return,
            }
            if self.queue.is_removed() {
                return;
            }
            let probe = gate == Gate::Probe;
            let room = self.carrier.room();
            let (max, units) = if probe {
                (1, usize::MAX)
            } else {
                (room.messages.max(1), room.units)
            };
            let segments = self.queue.counts_segments();
            let (items, next) = self
                .queue
                .take(carried, max, units, |i| self.cost(i, segments));
            wake = next;
            let limited = next.map_or(0, |t| {
                now_ms() + t.saturating_duration_since(Instant::now()).as_millis() as u64
            });
            self.queue
                .limited_until_ms
                .store(limited, Ordering::Release);
            observed.observe(&self.queue);
            if items.is_empty() {
                continue;
            }
            if !self.dispatch(items, probe, &mut shutdown).await {
                return;
            }
            self.queue
                .last_dispatch_ms
                .store(now_ms(), Ordering::Release);
        }
    }

    /// Units a popped message takes: as weighed at push when limits count
    /// SMS segments, else as the carrier counts them.
    fn cost(&self, item: &Item, segments: bool) -> usize {
        if segments {
            item.permits as usize
        } else {
            self.carrier.cost(&item.message)
        }
    }

    /// The last checks, preparing, the dispatch and the hand-off of popped
    /// messages; false on shutdown.
    async fn dispatch(
        &self,
        items: Vec<Item>,
        probe: bool,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        let name = self.carrier.name();
        // Read before checking: a part re-checks only if it moved since.
        let epoch = self.check.as_ref().map_or(0, |c| c.epoch());
        let mut endings = self.receipts.endings();
        let mut end = |id, state, reason: &Arc<str>| {
            if let Some(f) = endings.end(id, state, 0, reason)
                && C::NAMED_IN_EARLY_ENDS
                && f.carrier.is_none()
            {
                f.carrier = Some(name.clone());
            }
        };
        let passed = self
            .queue
            .vet(items, now_ms(), self.check.as_ref(), |id, state, reason| {
                end(id, state, reason)
            });
        let mut batch = Vec::with_capacity(passed.len());
        let mut units = 0;
        for m in passed {
            match self.carrier.prepare(&m) {
                Ok(p) => {
                    units += C::units(&p);
                    batch.push((m, p));
                }
                Err(e) => end(m.id, DeliveryState::Rejected, &e.to_string().into()),
            }
        }
        // Published now, before any wait.
        drop(endings);
        if batch.is_empty() {
            return true;
        }
        if probe && !self.carrier.begin_probe() {
            // The carrier came back up, or a try is running: look again.
            self.queue.push_front(batch.iter().map(|(m, _)| m));
            return true;
        }
        tokio::select! {
            ok = self.carrier.reserve(units) => if !ok { return false },
            _ = shutdown.changed() => return false,
        }
        if self.queue.is_removed() {
            // A reload removed the carrier meanwhile: the batch goes back,
            // for the backlog to route again (what is handed over from here
            // on, it takes back from the carrier).
            self.carrier.unreserve(units);
            self.queue.push_front(batch.iter().map(|(m, _)| m));
            return true;
        }
        batch.retain(|(m, p)| {
            let n = C::units(p);
            let live = self.ledger.dispatch(m.id, name, n as u32);
            if !live {
                // No longer live (ended meanwhile).
                self.carrier.unreserve(n);
            }
            live
        });
        tokio::select! {
            () = self.carrier.hand_off(batch, epoch, probe) => true,
            _ = shutdown.changed() => false,
        }
    }
}

#[cfg(test)]
mod tests;
