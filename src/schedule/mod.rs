//! Scheduling: per-carrier fair queues (round-robin across tenants,
//! transactional ahead of marketing), and the dispatcher that moves messages
//! from those queues to the carrier once the dispatch is durable.
//!
//! The dispatcher is the only place a message becomes "dispatched": it checks
//! validity, encodes the parts, takes one capacity permit per part from the
//! carrier (so backlog stays here, bounded by the journal, not in carrier
//! queues), records the dispatch in the ledger and the journal, waits for the
//! sync, and only then hands the parts to the binds.

pub mod rate;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{Notify, watch};

use crate::carrier::smpp::SmppCarrier;
use crate::journal::Journal;
use crate::ledger::{Finalized, Ledger};
use crate::model::{DeliveryState, Message, MessageId, Priority, now_ms};
use crate::receipts::Receipts;

const TARGET: &str = "sluice::schedule";

/// Most messages dispatched in one journal record.
const DISPATCH_BATCH: usize = 512;

#[derive(Debug, Default)]
struct TenantQueues {
    transactional: VecDeque<Arc<Message>>,
    marketing: VecDeque<Arc<Message>>,
}

#[derive(Debug, Default)]
struct Queues {
    tenants: HashMap<Arc<str>, TenantQueues>,
    /// Tenants with transactional / marketing traffic, in round-robin order.
    ring_tx: VecDeque<Arc<str>>,
    ring_mk: VecDeque<Arc<str>>,
    len: usize,
}

impl Queues {
    fn push(&mut self, m: Arc<Message>, front: bool) {
        let t = self.tenants.entry(m.tenant.clone()).or_default();
        let (q, ring) = match m.priority {
            Priority::Transactional => (&mut t.transactional, &mut self.ring_tx),
            Priority::Marketing => (&mut t.marketing, &mut self.ring_mk),
        };
        if q.is_empty() {
            ring.push_back(m.tenant.clone());
        }
        if front {
            q.push_front(m);
        } else {
            q.push_back(m);
        }
        self.len += 1;
    }

    /// Next message: transactional first, tenants served round-robin.
    fn pop(&mut self) -> Option<Arc<Message>> {
        for class in [Priority::Transactional, Priority::Marketing] {
            let ring = match class {
                Priority::Transactional => &mut self.ring_tx,
                Priority::Marketing => &mut self.ring_mk,
            };
            while let Some(tenant) = ring.pop_front() {
                let Some(t) = self.tenants.get_mut(&tenant) else {
                    continue;
                };
                let q = match class {
                    Priority::Transactional => &mut t.transactional,
                    Priority::Marketing => &mut t.marketing,
                };
                let Some(m) = q.pop_front() else { continue };
                if !q.is_empty() {
                    ring.push_back(tenant);
                }
                self.len -= 1;
                return Some(m);
            }
        }
        None
    }
}

/// The queue in front of one carrier.
#[derive(Debug)]
pub struct CarrierQueue {
    queues: Mutex<Queues>,
    notify: Notify,
}

impl CarrierQueue {
    fn new() -> CarrierQueue {
        CarrierQueue {
            queues: Mutex::default(),
            notify: Notify::new(),
        }
    }

    /// Queues messages at the back.
    pub fn push<'a>(&self, messages: impl IntoIterator<Item = &'a Arc<Message>>) {
        let mut q = self.queues.lock();
        for m in messages {
            q.push(m.clone(), false);
        }
        drop(q);
        self.notify.notify_one();
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.queues.lock().len
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    async fn ready(&self) {
        loop {
            let notified = self.notify.notified();
            if self.queues.lock().len > 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Routes messages to carrier queues and runs their dispatchers.
#[derive(Debug)]
pub struct Scheduler {
    queues: HashMap<Arc<str>, Arc<CarrierQueue>>,
}

impl Scheduler {
    /// One queue per carrier name.
    pub fn new<'a>(carriers: impl IntoIterator<Item = &'a Arc<str>>) -> Scheduler {
        Scheduler {
            queues: carriers
                .into_iter()
                .map(|c| (c.clone(), Arc::new(CarrierQueue::new())))
                .collect(),
        }
    }

    /// The queue in front of `carrier`.
    pub fn queue(&self, carrier: &str) -> Option<&Arc<CarrierQueue>> {
        self.queues.get(carrier)
    }

    /// Messages waiting in every queue.
    pub fn queued(&self) -> usize {
        self.queues.values().map(|q| q.len()).sum()
    }
}

/// Moves messages from `queue` to `carrier` until shutdown.
pub async fn dispatch_loop(
    queue: Arc<CarrierQueue>,
    carrier: Arc<SmppCarrier>,
    ledger: Arc<Ledger>,
    journal: Journal,
    receipts: Arc<Receipts>,
    mut shutdown: watch::Receiver<bool>,
) {
    let name = carrier.name().clone();
    let depth = metrics::gauge!("sluice_queue_depth", "carrier" => name.to_string());
    loop {
        tokio::select! {
            _ = queue.ready() => {}
            _ = shutdown.changed() => return,
        }
        // Wait for room at the carrier before taking messages off the queue,
        // so the fair order is decided as late as possible.
        let first = tokio::select! {
            p = carrier.capacity().clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = shutdown.changed() => return,
        };
        drop(first);
        let now = now_ms();
        let mut batch: Vec<(Arc<Message>, Vec<crate::smpp::pdu::SubmitSm>)> = Vec::new();
        let mut finals: Vec<Finalized> = Vec::new();
        let mut permits_needed = 0usize;
        {
            let mut q = queue.queues.lock();
            while batch.len() < DISPATCH_BATCH {
                let available = carrier.capacity().available_permits();
                let Some(m) = q.pop() else { break };
                if m.expires_at_ms <= now {
                    if let Some(f) = ledger.finish(
                        m.id,
                        DeliveryState::Expired,
                        0,
                        &"validity ended before dispatch".into(),
                    ) {
                        finals.push(f);
                    }
                    continue;
                }
                match carrier.parts(&m) {
                    Ok(parts) => {
                        if permits_needed + parts.len() > available && !batch.is_empty() {
                            q.push(m, true);
                            break;
                        }
                        permits_needed += parts.len();
                        batch.push((m, parts));
                    }
                    Err(reason) => {
                        if let Some(f) =
                            ledger.finish(m.id, DeliveryState::Rejected, 0, &reason.into())
                        {
                            finals.push(f);
                        }
                    }
                }
            }
            depth.set(q.len as f64);
        }
        if !finals.is_empty() {
            tokio::spawn(receipts.publish(finals));
        }
        if batch.is_empty() {
            continue;
        }
        // One permit per part (capacity is at least the largest message, so
        // this always completes); the parts carry them from here and release
        // them one by one.
        let permits = tokio::select! {
            p = carrier.capacity().clone().acquire_many_owned(permits_needed as u32) => match p { Ok(p) => p, Err(_) => return },
            _ = shutdown.changed() => return,
        };
        permits.forget();
        let mut dispatched: Vec<(Arc<Message>, Vec<crate::smpp::pdu::SubmitSm>)> =
            Vec::with_capacity(batch.len());
        for (m, parts) in batch {
            if ledger.dispatch(m.id, &name, parts.len() as u32) {
                dispatched.push((m, parts));
            } else {
                // No longer live (ended meanwhile): return its permits.
                carrier.capacity().add_permits(parts.len());
            }
        }
        let durable = journal.dispatch(
            dispatched
                .iter()
                .map(|(m, p)| (m.id, &*name, p.len() as u32)),
        );
        if let Err(e) = durable.wait().await {
            tracing::error!(target: TARGET, error = %e, "journal failed; dispatch stopped");
            let ids: Vec<MessageId> = dispatched.iter().map(|(m, _)| m.id).collect();
            ledger.undispatch(&ids);
            return;
        }
        for (m, parts) in dispatched {
            carrier.enqueue(m.id, m.expires_at_ms, parts);
        }
    }
}
