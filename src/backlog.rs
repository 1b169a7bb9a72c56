//! The backlog: where accepted messages wait for their carrier. Owns putting
//! messages on carrier queues (routed SMS, MMS or its SMS fallback), the
//! in-memory budget and the spill to disk beyond it, paging spilled
//! messages back in, moving a down carrier's queue elsewhere
//! ([`Backlog::failover`]) and the alarm for a dispatch that stalled.
//!
//! # The memory budget
//! Queued messages stay in memory up to `max_queued_in_memory`; beyond it
//! they spill to disk behind what their tenant and priority already have
//! there (keeping their order). Transactional traffic gets an eighth of the
//! budget on top, so another tenant's blast filling it does not push a
//! password reset to disk. Spilled messages page back in once the queues
//! have drained to three quarters of the budget.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::journal::RecordError;
use crate::ledger::{Entry, Ledger, Stage};
use crate::media::link::LinkSigner;
use crate::model::{DeliveryState, Message, Priority, now_ms};
use crate::receipts::Receipts;
use crate::route::Router;
use crate::schedule::{CarrierQueue, Scheduler};
use crate::settings::Config;
use crate::spill::{Spill, StoredQueued};

mod failover;
mod fallback;
#[cfg(test)]
pub(crate) mod tests;

pub use fallback::fallback_text;

const TARGET: &str = "sluice::backlog";

/// Queued messages, binds up and idle, nothing dispatched for this long:
/// dispatch has stalled (`sluice_dispatch_stalled`, an error log).
const STALL_AFTER: Duration = Duration::from_secs(10);

/// The queue of the SMS carrier `to` routes to now (the order of the
/// lookups is [`Backlog::enqueue`]'s).
fn sms_queue(
    scheduler: &Scheduler,
    router: &Router,
    to: crate::model::Msisdn,
) -> Option<Arc<CarrierQueue>> {
    let queues = scheduler.queues();
    let carrier = router.sms_carrier(to)?;
    queues
        .get(&carrier)
        .cloned()
        .or_else(|| scheduler.queue(&carrier))
}

/// Places queued messages one by one: in memory while the budget allows
/// (an eighth more for transactional ones), else in the spill behind what
/// their tenant and priority already have there, keeping their order.
struct Placement<'a> {
    spill: &'a Spill,
    budget: u64,
    in_memory: u64,
    /// (tenant, priority) pairs this placement sent to the spill.
    spilling: Vec<(Arc<str>, Priority)>,
}

impl Placement<'_> {
    /// Whether the next message of `tenant` at `priority` stays in memory
    /// (counted against the budget) rather than spilling.
    fn keeps(&mut self, tenant: &Arc<str>, priority: Priority) -> bool {
        let limit = match priority {
            Priority::Transactional => self.budget + self.budget / 8,
            Priority::Marketing => self.budget,
        };
        let spilling = self
            .spilling
            .iter()
            .any(|(t, p)| t == tenant && *p == priority);
        if !spilling && self.in_memory < limit && !self.spill.holds(tenant, priority) {
            self.in_memory += 1;
            return true;
        }
        if !spilling {
            self.spilling.push((tenant.clone(), priority));
        }
        false
    }
}

/// Accepted messages waiting for their carrier, in memory or on disk.
#[derive(Debug)]
pub struct Backlog {
    router: Arc<Router>,
    scheduler: Arc<Scheduler>,
    ledger: Arc<Ledger>,
    receipts: Arc<Receipts>,
    /// Queued messages beyond `max_in_memory` wait on disk.
    spill: Arc<Spill>,
    max_in_memory: u64,
    /// Paging in and compaction exclude each other: a message being paged
    /// in is, for a moment, in neither the spill nor the ledger.
    spill_gate: tokio::sync::Mutex<()>,
    /// SMS carriers a reload removed, until what they held is routed again
    /// or ended ([`Backlog::retire_carrier`]).
    retired: parking_lot::Mutex<Vec<failover::Retired>>,
    /// MMSCs a reload removed, until their requests in flight are answered
    /// and what they held is routed again ([`Backlog::retire_mmsc`]).
    retired_mmscs: parking_lot::Mutex<Vec<failover::RetiredMmsc>>,
    /// Where SMS fallback links point.
    public_url: String,
    links: Arc<LinkSigner>,
    /// Where fallbacks' landing pages are recorded.
    media: Option<Arc<crate::media::store::MediaStore>>,
    /// Each tenant's display name, shown on its landing pages (replaced by
    /// a reload).
    display_names: parking_lot::RwLock<HashMap<Arc<str>, String>>,
    /// Tracked links: where fallback links of tenants with `track_links`
    /// are shortened (see [`fallback`]).
    short_links: Option<fallback::ShortLinks>,
}

/// Each tenant's display name, for those that have one.
fn display_names(config: &Config) -> HashMap<Arc<str>, String> {
    config
        .tenants
        .iter()
        .filter_map(|t| Some((Arc::from(t.name.as_str()), t.display_name.clone()?)))
        .collect()
}

/// The base of the short links of each tenant with `track_links`.
fn link_bases(config: &Config) -> HashMap<Arc<str>, Arc<str>> {
    config
        .tenants
        .iter()
        .filter(|t| t.track_links)
        .map(|t| {
            (
                Arc::from(t.name.as_str()),
                Arc::from(t.link_base(&config.mms)),
            )
        })
        .collect()
}

impl Backlog {
    /// The backlog of `config`'s carriers.
    pub fn new(
        config: &Config,
        router: Arc<Router>,
        scheduler: Arc<Scheduler>,
        ledger: Arc<Ledger>,
        receipts: Arc<Receipts>,
        spill: Arc<Spill>,
        links: Arc<LinkSigner>,
    ) -> Backlog {
        Backlog {
            router,
            scheduler,
            ledger,
            receipts,
            spill,
            max_in_memory: config.journal.max_queued_in_memory.max(1),
            spill_gate: tokio::sync::Mutex::new(()),
            retired: parking_lot::Mutex::default(),
            retired_mmscs: parking_lot::Mutex::default(),
            public_url: config.mms.public_url.clone(),
            links,
            media: None,
            display_names: parking_lot::RwLock::new(display_names(config)),
            short_links: None,
        }
    }

    /// Shortens the fallback links of `config`'s tenants with
    /// `track_links` through `store`, like their texts' links.
    #[must_use]
    pub fn with_short_links(
        mut self,
        store: Option<crate::links::LinkStore>,
        config: &Config,
    ) -> Backlog {
        self.short_links = store.map(|store| fallback::ShortLinks {
            store,
            bases: Arc::new(parking_lot::RwLock::new(link_bases(config))),
        });
        self
    }

    /// Takes the tenants of a reload (tenants added too): their display
    /// names and the bases of their short links apply to the next fallback.
    pub fn set_tenants(&self, config: &Config) {
        *self.display_names.write() = display_names(config);
        if let Some(s) = &self.short_links {
            *s.bases.write() = link_bases(config);
        }
    }

    /// Records the landing pages of fallbacks with media in `store`, so
    /// their SMS carries one short link to the whole message (without it, a
    /// link per media item).
    #[must_use]
    pub fn with_media(mut self, store: Arc<crate::media::store::MediaStore>) -> Backlog {
        self.media = Some(store);
        self
    }

    /// Queued messages waiting on disk.
    pub fn spill(&self) -> &Arc<Spill> {
        &self.spill
    }

    /// The routes.
    pub fn router(&self) -> &Arc<Router> {
        &self.router
    }

    /// Holds paging-in off while compaction carries the spill forward.
    pub async fn hold_paging(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.spill_gate.lock().await
    }

    /// Puts messages on their carrier's queue: SMS by route, media by MMS
    /// route (or its SMS fallback when it cannot go as MMS); a message no
    /// route takes any more ends `rejected`.
    pub fn enqueue(&self, messages: &[Arc<Message>]) {
        // One set of queues and one routing table for the whole batch, in
        // that order: a reload removing a carrier takes it out of the
        // routes before its queue goes (what still lands in the queue is
        // routed again, [`Backlog::retire_carrier`]); one adding a carrier
        // adds its queue first, so a carrier the table names and these
        // queues lack was just added, and is looked up again.
        let queues = self.scheduler.queues();
        let sms = self.router.sms();
        let mms = self.router.mms();
        // Grouped per carrier queue: one lock and one wake-up per queue.
        let mut by_queue: Vec<(Arc<CarrierQueue>, Vec<Arc<Message>>)> = Vec::new();
        let mut push = |q: &Arc<CarrierQueue>, m: &Arc<Message>| match by_queue
            .iter_mut()
            .find(|(g, _)| Arc::ptr_eq(g, q))
        {
            Some((_, v)) => v.push(m.clone()),
            None => by_queue.push((q.clone(), vec![m.clone()])),
        };
        for m in messages {
            if !m.media.is_empty() {
                match mms.mmsc_for(m) {
                    Ok(mmsc) => match queues.get(&mmsc) {
                        Some(q) => push(q, m),
                        None => match self.scheduler.queue(&mmsc) {
                            // Added by a reload since `queues` was taken.
                            Some(q) => q.push(std::iter::once(m)),
                            // Never expected: an MMSC leaves the routes
                            // before its queue goes.
                            None => {
                                self.fallback(m.clone(), format!("MMSC {mmsc} was removed"), None)
                            }
                        },
                    },
                    Err(why) => self.fallback(m.clone(), why.to_string(), None),
                }
                continue;
            }
            let carrier = sms.carrier_for(m.to);
            if let Some(q) = carrier.and_then(|c| queues.get(c)) {
                push(q, m);
                continue;
            }
            match carrier.and_then(|c| self.scheduler.queue(c)) {
                // Added by a reload since `queues` was taken.
                Some(q) => q.push(std::iter::once(m)),
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

    /// Whether `n` more messages go straight to the in-memory queues (the
    /// common case): nothing waits in the spill and all `n` fit the budget.
    pub fn fits_in_memory(&self, n: usize) -> bool {
        self.spill.is_empty() && self.scheduler.in_memory() as u64 + n as u64 <= self.max_in_memory
    }

    /// Queues accepted messages in memory while the budget allows and
    /// spills the rest (see the module doc).
    pub fn enqueue_or_spill(&self, messages: &[Arc<Message>]) {
        if self.fits_in_memory(messages.len()) {
            return self.enqueue(messages);
        }
        let mut place = self.placement();
        let (mut keep, mut out): (Vec<_>, Vec<_>) = messages
            .iter()
            .cloned()
            .partition(|m| place.keeps(&m.tenant, m.priority));
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

    /// A restart's queued messages, in id order and still in the journal's
    /// stored form: those the budget keeps in memory are decoded, entered in
    /// the ledger and queued; the rest go to the spill as they are, never
    /// decoded whole (a restart with millions queued held every one of them
    /// in memory, ~1 KB each, before spilling most of them again). Each
    /// must decode (replay checked: [`crate::journal::RecoveredMessage::decodes`]):
    /// the spilled ones are not checked again. Returns what those kept in
    /// memory failed to decode all the same (they are not queued).
    pub(crate) fn restore_queued(&self, messages: Vec<StoredQueued>) -> Vec<RecordError> {
        let mut problems = Vec::new();
        let mut place = self.placement();
        let (keep, mut out): (Vec<_>, Vec<StoredQueued>) = messages
            .into_iter()
            .partition(|m| place.keeps(&m.tenant, m.priority));
        let mut queued = Vec::with_capacity(keep.len() + out.len());
        if let Err(e) = self.spill.push_stored(&out) {
            // Kept in memory; what earlier slices of this restart spilled
            // comes back first, so that each tenant's order holds (all of
            // it, decoded: on a failing disk the restart needs the memory
            // it needed before messages stayed in their stored form).
            let back: Vec<Arc<Message>> = self
                .spill
                .take(usize::MAX)
                .into_iter()
                .map(Arc::new)
                .collect();
            tracing::error!(target: TARGET, error = %e, messages = out.len() + back.len(),
                "spill write failed; keeping the messages in memory");
            self.ledger.admit(&back);
            self.enqueue(&back);
            self.spill.paged_in();
        } else {
            out.clear();
        }
        for m in keep.into_iter().chain(out) {
            match crate::journal::stored_message(&m.stored) {
                Ok(message) => {
                    let message = Arc::new(message);
                    self.ledger.restore(Entry {
                        message: message.clone(),
                        stage: Stage::Queued,
                    });
                    queued.push(message);
                }
                Err(e) => problems.push(e),
            }
        }
        self.enqueue(&queued);
        problems
    }

    /// Where the next queued messages go, as the budget stands now.
    fn placement(&self) -> Placement<'_> {
        Placement {
            spill: &self.spill,
            budget: self.max_in_memory,
            in_memory: self.scheduler.in_memory() as u64,
            spilling: Vec::new(),
        }
    }

    /// Pages spilled messages back in while the in-memory queues have room
    /// (down to three quarters of the budget before a page is read).
    pub async fn page_in(&self) {
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

    /// Raises the alarm for carriers whose binds are up and idle while
    /// messages wait that no limit holds back: dispatch has stalled (a
    /// state that must never be silent). `stalled` remembers which carriers
    /// were reported, so each stall and its end are logged once.
    pub fn watch_stalls(&self, stalled: &mut HashSet<Arc<str>>) {
        let now = now_ms();
        let sms = self.router.sms();
        for (name, carrier) in sms.carriers() {
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
}
