//! Failover: a carrier down for its `failover_after` hands its queue to the
//! carriers its messages' routes prefer now.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Backlog, TARGET};
use crate::model::Message;
use crate::schedule::fair::Item;

impl Backlog {
    /// Moves the queue of every carrier (SMS or MMSC) that has been down
    /// for its `failover_after` while another is up.
    pub fn failover(&self) {
        self.sms_failover();
        self.mms_failover();
    }

    /// SMS: messages dispatched to the down carrier but never written go
    /// back to queued (journaled) first, then the whole queue is routed
    /// again.
    fn sms_failover(&self) {
        let carriers = self.router.carriers();
        for (name, carrier) in carriers {
            let (Some(after), Some(queue)) =
                (self.failover_after.get(name), self.scheduler.queue(name))
            else {
                continue;
            };
            if carrier.down_for().is_none_or(|d| d < *after) {
                continue;
            }
            let alternative_up = carriers.iter().any(|(n, c)| n != name && c.binds_up() > 0);
            if !alternative_up {
                continue;
            }
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
            let mut by_target: HashMap<Arc<str>, Vec<Item>> = HashMap::new();
            for item in queue.drain() {
                let target = self
                    .router
                    .sms_carrier(item.message.to)
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
    }

    /// MMS: the queue of an MMSC down (unreachable, or refusing our
    /// credentials) for its `failover_after` moves to the first MMSC of
    /// each message's route that is up; what no such MMSC takes stays.
    fn mms_failover(&self) {
        let mmscs = self.router.mmscs();
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
                let target = self
                    .router
                    .mms_candidates(item.message.to)
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
                if let Some(q) = self.scheduler.queue(&target) {
                    count += items.len() as u64;
                    q.push_items(items);
                }
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
