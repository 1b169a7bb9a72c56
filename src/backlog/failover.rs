//! Failover: a carrier down for its `failover_after` hands its queue to the
//! carriers its messages' routes prefer now; an SMS carrier a reload
//! removed hands over everything it has not written
//! ([`Backlog::retire_carrier`]), and an MMSC a reload removed everything
//! it has not submitted ([`Backlog::retire_mmsc`]).

use std::collections::HashMap;
use std::sync::Arc;

use super::{Backlog, TARGET};
use crate::carrier::Carrier as _;
use crate::carrier::smpp::SmppCarrier;
use crate::model::Message;
use crate::schedule::CarrierQueue;
use crate::schedule::fair::Item;
use crate::schedule::mm7::Mm7Lane;

/// An MMSC a reload removed, until nothing of it is left.
#[derive(Debug)]
pub(crate) struct RetiredMmsc {
    lane: Arc<Mm7Lane>,
    queue: Arc<CarrierQueue>,
    /// Sweeps in a row that found nothing left.
    empty_sweeps: u32,
}

/// An SMS carrier a reload removed, until nothing of it is left.
#[derive(Debug)]
pub(crate) struct Retired {
    carrier: Arc<SmppCarrier>,
    queue: Arc<CarrierQueue>,
    /// Since when every part it was handed is answered (its binds linger
    /// for the receipts until [`SmppCarrier::removal_linger`] after).
    idle_since: Option<tokio::time::Instant>,
    /// Its binds were told to retire.
    binds_retired: bool,
    /// Sweeps in a row that found nothing left.
    empty_sweeps: u32,
}

impl Backlog {
    /// Moves the queue of every carrier (SMS or MMSC) that has been down
    /// for its `failover_after` while another is up.
    pub fn failover(&self) {
        self.sms_failover();
        self.mms_failover();
        self.sweep_retired();
        self.sweep_retired_mmscs();
    }

    /// SMS: messages dispatched to the down carrier but never written go
    /// back to queued (journaled) first, then the whole queue is routed
    /// again.
    fn sms_failover(&self) {
        let sms = self.router.sms();
        let carriers = sms.carriers();
        for (name, carrier) in carriers {
            let Some(queue) = self.scheduler.queue(name) else {
                continue;
            };
            if carrier
                .down_for()
                .is_none_or(|d| d < carrier.failover_after())
            {
                continue;
            }
            let alternative_up = carriers.iter().any(|(n, c)| n != name && c.binds_up() > 0);
            if !alternative_up {
                continue;
            }
            let mut moved = self.take_back_unsent(carrier);
            let mut by_target: HashMap<Arc<str>, Vec<Item>> = HashMap::new();
            for item in queue.drain() {
                let target = sms.carrier_for(item.message.to).unwrap_or(name).clone();
                if target != *name {
                    moved += 1;
                }
                by_target.entry(target).or_default().push(item);
            }
            for (target, items) in by_target {
                self.move_to(&target, items);
            }
            if moved > 0 {
                metrics::counter!("sluice_failover_messages_total", "carrier" => name.to_string())
                    .increment(moved);
                tracing::warn!(target: TARGET, carrier = %name, moved, "carrier down: traffic failed over");
            }
        }
    }

    /// Queues again the messages whose every part still waits in
    /// `carrier`'s own queue (dispatched, never written); returns how many.
    /// Only what the ledger returns to queued leaves: a part it will not
    /// give up stays where it can still go.
    fn take_back_unsent(&self, carrier: &SmppCarrier) -> u64 {
        let taken = carrier.take_back_unsent(|ids| self.ledger.undispatch(ids));
        let back: Vec<Arc<Message>> = taken
            .iter()
            .filter_map(|id| self.ledger.get(*id))
            .map(|e| e.message)
            .collect();
        self.enqueue(&back);
        back.len() as u64
    }

    /// Takes over an SMS carrier a reload removed, once it is out of the
    /// routes and its queue out of the scheduler ([`Scheduler::remove`]).
    /// From then on, every second ([`Backlog::failover`]):
    /// - what its queue still holds is routed again (by the routes in
    ///   force: a recipient no route takes any more ends `rejected`, as at
    ///   admission);
    /// - its binds write what they were handed, then stay, taking nothing
    ///   new, for [`SmppCarrier::removal_linger`] after the last answer, for
    ///   the receipts still to come; then they retire
    ///   ([`SmppCarrier::retire`]: each unbinds once its window is
    ///   answered). While no bind is up, what it was handed and never
    ///   wrote is routed again; down for `removal_linger`, its binds retire
    ///   at once;
    /// - once its binds are gone, parts still unwritten (of messages partly
    ///   written) end `unknown`, and it is forgotten when nothing is left.
    ///
    /// Receipts that come after its binds are gone are not received: those
    /// messages end when their receipt wait runs out.
    ///
    /// [`Scheduler::remove`]: crate::schedule::Scheduler::remove
    pub fn retire_carrier(&self, carrier: Arc<SmppCarrier>, queue: Arc<CarrierQueue>) {
        self.retired.lock().push(Retired {
            carrier,
            queue,
            idle_since: None,
            binds_retired: false,
            empty_sweeps: 0,
        });
        self.sweep_retired();
    }

    /// Takes over an MMSC a reload removed, once it is out of the MMS
    /// routes and its queue out of the scheduler ([`Scheduler::remove`]:
    /// its lane takes nothing more). From then on, every second
    /// ([`Backlog::failover`]), what its queue holds (messages it gave
    /// back: never sent, refused for now, or `unanswered = "resend"`) is
    /// routed again by the MMS routes in force (another MMSC, else the
    /// message's fallback). Its requests in flight get their answers
    /// there; one refused for now is not tried there again but given back.
    /// It is forgotten once none is in flight and nothing is left. Its
    /// delivery reports still come to its callback listener, which stays
    /// until the restart.
    ///
    /// [`Scheduler::remove`]: crate::schedule::Scheduler::remove
    pub fn retire_mmsc(&self, lane: Arc<Mm7Lane>, queue: Arc<CarrierQueue>) {
        self.retired_mmscs.lock().push(RetiredMmsc {
            lane,
            queue,
            empty_sweeps: 0,
        });
        self.sweep_retired_mmscs();
    }

    /// SMS carriers and MMSCs removed and not yet forgotten.
    pub fn retired_carriers(&self) -> Vec<Arc<str>> {
        let mut names: Vec<Arc<str>> = self
            .retired
            .lock()
            .iter()
            .map(|r| r.carrier.name().clone())
            .collect();
        names.extend(
            self.retired_mmscs
                .lock()
                .iter()
                .map(|r| r.lane.name().clone()),
        );
        names
    }

    /// Puts `items` failed over in the queue of `target`; one a reload
    /// removed since the routes were read routes them by the routes in
    /// force.
    fn move_to(&self, target: &str, items: Vec<Item>) {
        match self.scheduler.queue(target) {
            Some(q) => q.push_items(items),
            None => {
                let messages: Vec<Arc<Message>> = items.into_iter().map(|i| i.message).collect();
                self.enqueue(&messages);
            }
        }
    }

    /// Routes again what the queue of a carrier removed still holds
    /// (queued, or held for quiet hours); returns how many.
    fn route_again(&self, queue: &CarrierQueue) -> u64 {
        let mut items = queue.drain();
        items.extend(queue.drain_held());
        let moved = items.len() as u64;
        if moved > 0 {
            let messages: Vec<Arc<Message>> = items.into_iter().map(|i| i.message).collect();
            self.enqueue(&messages);
        }
        moved
    }

    fn sweep_retired_mmscs(&self) {
        let mut retired = self.retired_mmscs.lock();
        retired.retain_mut(|r| {
            let name = r.lane.name().clone();
            let moved = self.route_again(&r.queue);
            if moved > 0 {
                metrics::counter!("sluice_failover_messages_total", "carrier" => name.to_string())
                    .increment(moved);
                tracing::info!(target: TARGET, carrier = %name, moved,
                    "MMSC removed: its queued MMS routed again");
            }
            if !left_nothing(&r.queue, r.lane.is_idle(), &mut r.empty_sweeps) {
                return true;
            }
            metrics::gauge!("sluice_queue_depth", "carrier" => name.to_string()).set(0.0);
            metrics::gauge!("sluice_mm7_down", "carrier" => name.to_string()).set(0.0);
            metrics::gauge!("sluice_mm7_auth_failed", "carrier" => name.to_string()).set(0.0);
            tracing::info!(target: TARGET, carrier = %name, "MMSC removed: nothing of it is left");
            false
        });
    }

    fn sweep_retired(&self) {
        // Held throughout, so a reload never finds the list empty midway
        // (nothing below takes it).
        let mut retired = self.retired.lock();
        let now = tokio::time::Instant::now();
        retired.retain_mut(|r| {
            let name = r.carrier.name();
            let up = r.carrier.binds_up() > 0;
            let mut moved = if up {
                0
            } else {
                self.take_back_unsent(&r.carrier)
            };
            moved += self.route_again(&r.queue);
            if moved > 0 {
                metrics::counter!("sluice_failover_messages_total", "carrier" => name.to_string())
                    .increment(moved);
                tracing::info!(target: TARGET, carrier = %name, moved, "carrier removed: its queued messages routed again");
            }
            if !r.binds_retired {
                r.idle_since = match r.idle_since {
                    _ if !r.carrier.is_idle() => None,
                    None => Some(now),
                    since => since,
                };
                let linger = r.carrier.removal_linger();
                let lingered = r
                    .idle_since
                    .is_some_and(|t| now.duration_since(t) >= linger);
                // A bind down for a moment comes back for the receipts; down
                // that long, none will come.
                let down_long = r.carrier.down_for().is_some_and(|d| d >= linger);
                if !lingered && !down_long {
                    return true;
                }
                r.carrier.retire();
                r.binds_retired = true;
            }
            if !r.carrier.binds_gone() {
                return true;
            }
            // What was handed over whole since the last look goes elsewhere;
            // only parts of messages partly written are left to end.
            let back = self.take_back_unsent(&r.carrier);
            if back > 0 {
                metrics::counter!("sluice_failover_messages_total", "carrier" => name.to_string())
                    .increment(back);
            }
            let ended = r
                .carrier
                .fail_unsent("its carrier was removed by a reload before this part was sent");
            if ended > 0 {
                tracing::warn!(target: TARGET, carrier = %name, parts = ended,
                    "carrier removed: parts of messages it had partly sent end unknown");
            }
            if !left_nothing(&r.queue, r.carrier.is_idle(), &mut r.empty_sweeps) {
                return true;
            }
            metrics::gauge!("sluice_dispatch_stalled", "carrier" => name.to_string()).set(0.0);
            metrics::gauge!("sluice_queue_depth", "carrier" => name.to_string()).set(0.0);
            tracing::info!(target: TARGET, carrier = %name, "carrier removed: nothing of it is left");
            false
        });
    }

    /// MMS: the queue of an MMSC down (unreachable, or refusing our
    /// credentials) for its `failover_after` moves to the first MMSC of
    /// each message's route that is up; what no such MMSC takes stays.
    fn mms_failover(&self) {
        let mms = self.router.mms();
        let mmscs = mms.mmscs();
        for mmsc in mmscs {
            let name = mmsc.name();
            let Some(queue) = self.scheduler.queue(name) else {
                continue;
            };
            if queue.is_empty() || mmsc.down_for().is_none_or(|d| d < mmsc.failover_after()) {
                continue;
            }
            let any_up = mmscs.iter().any(|c| c.name() != name && c.down().is_none());
            if !any_up {
                continue;
            }
            let mut stay = Vec::new();
            let mut moved: Vec<(Arc<str>, Vec<Item>)> = Vec::new();
            for item in queue.drain() {
                let target = mms
                    .candidates(item.message.to)
                    .into_iter()
                    .find(|c| c.name() != name && c.down().is_none())
                    .map(|c| c.name().clone());
                match target {
                    Some(t) => match moved.iter_mut().find(|(n, _)| *n == t) {
                        Some((_, v)) => v.push(item),
                        None => moved.push((t, vec![item])),
                    },
                    None => stay.push(item),
                }
            }
            if !stay.is_empty() {
                queue.push_items(stay);
            }
            let mut count = 0u64;
            for (target, items) in moved {
                count += items.len() as u64;
                self.move_to(&target, items);
            }
            if count > 0 {
                metrics::counter!("sluice_failover_messages_total", "carrier" => name.to_string())
                    .increment(count);
                let why = mmsc.down().map(|d| d.to_string()).unwrap_or_default();
                tracing::warn!(target: TARGET, carrier = %name, moved = count, %why,
                    "MMSC down: its MMS failed over");
            }
        }
    }
}

/// Counts a sweep of a removed carrier's `queue` (its carrier `idle` or
/// not): true once nothing was left two sweeps in a row (forgotten a sweep
/// after it is found empty: a batch routed by the table of before the
/// reload may still be on its way in).
fn left_nothing(queue: &CarrierQueue, idle: bool, empty_sweeps: &mut u32) -> bool {
    let empty = queue.dispatcher_ended() && queue.is_empty() && queue.held() == 0 && idle;
    *empty_sweeps = if empty { *empty_sweeps + 1 } else { 0 };
    *empty_sweeps >= 2
}
