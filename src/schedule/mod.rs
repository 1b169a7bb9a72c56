//! Scheduling: a [`CarrierQueue`] per carrier (a [`fair::FairQueue`]:
//! priority, weighted tenant fairness, sender and campaign round-robin,
//! limits at every level; quiet hours; the checks every popped message
//! passes) and the one [`Dispatcher`] (`dispatch.rs`) that moves messages
//! from it to any [`crate::carrier::Carrier`]: SMPP carriers directly, MMSCs
//! through their [`mm7::Mm7Lane`]. A queue can be paused (admin) and drained
//! to another carrier when its own is down (failover).

pub mod dispatch;
pub mod fair;
pub mod mm7;
pub mod suppressed;

pub use dispatch::Dispatcher;
pub use suppressed::SuppressionCheck;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::model::hashing::FastMap;
use crate::model::quiet::QuietHours;
use crate::model::{DeliveryState, Message, MessageId, now_ms};
use crate::settings::Config;
use crate::smpp::text;
use fair::{FairQueue, Item, Pop, SenderLimits, WaitReport};

/// Decides, at dispatch and again right before writing, whether a message
/// must not be sent any more (the recipient opted out meanwhile).
pub type DispatchCheck = Arc<dyn crate::carrier::LastCheck>;

/// How a queue weighs a message for the limits.
#[derive(Debug, Clone, Copy)]
struct Weighing {
    text: text::TextOptions,
    count_segments: bool,
}

impl Weighing {
    fn permits(&self, m: &Message) -> u32 {
        if !self.count_segments {
            return 1;
        }
        text::plan_with(&m.text, &self.text).map_or(1, |p| p.segments.max(1) as u32)
    }
}

/// The queue in front of one carrier.
#[derive(Debug)]
pub struct CarrierQueue {
    fair: Mutex<FairQueue>,
    limits: Arc<Mutex<SenderLimits>>,
    notify: Notify,
    paused: AtomicBool,
    /// How its messages are weighed for the limits (a reload changes it:
    /// messages queued keep the weight they were given).
    weighing: arc_swap::ArcSwap<Weighing>,
    /// Marketing held for quiet hours, by (release ms, order).
    held: Mutex<std::collections::BTreeMap<(u64, u64), Item>>,
    held_seq: std::sync::atomic::AtomicU64,
    /// Tenants' quiet hours (shared by every queue; replaced by a reload).
    quiet: Arc<parking_lot::RwLock<FastMap<String, QuietHours>>>,
    /// Wall-clock ms of the dispatcher's last dispatch (or of its start).
    last_dispatch_ms: std::sync::atomic::AtomicU64,
    /// Wall-clock ms until which every queued message waits on a limit
    /// (0: none does).
    limited_until_ms: std::sync::atomic::AtomicU64,
    /// Its carrier was removed by a reload ([`Scheduler::remove`]): its
    /// dispatcher stops, and what is still here is routed again.
    removed: AtomicBool,
    /// Its dispatcher has ended (after putting back what it held).
    dispatcher_ended: AtomicBool,
}

/// Whether a popped message goes now, waits for the morning, or cannot go.
#[derive(Debug)]
pub enum QuietCheck {
    /// Send it.
    Go(Item),
    /// Held until this wall-clock ms.
    Held(u64),
    /// Its validity ends before the quiet hours do.
    Expires(Item),
}

impl CarrierQueue {
    /// Holds a marketing message while it is night at the recipient (per its
    /// tenant's quiet hours); transactional messages and auto-replies go.
    pub fn quiet_check(&self, item: Item, now_ms: u64) -> QuietCheck {
        let m = &item.message;
        if m.priority != crate::model::Priority::Marketing || m.auto_reply {
            return QuietCheck::Go(item);
        }
        let Some(q) = self.quiet.read().get(&*m.tenant).copied() else {
            return QuietCheck::Go(item);
        };
        match q.quiet_until(m.to, now_ms) {
            Some(Some(until)) if until >= m.expires_at_ms => QuietCheck::Expires(item),
            Some(Some(until)) => {
                let seq = self.held_seq.fetch_add(1, Ordering::Relaxed);
                self.held.lock().insert((until, seq), item);
                metrics::gauge!("sluice_held_messages").increment(1.0);
                QuietCheck::Held(until)
            }
            _ => QuietCheck::Go(item),
        }
    }

    /// Pops what every limit allows now: at most `max_items` messages
    /// costing at most `budget` in all (`cost`: the parts a message takes
    /// for SMS, one for MMS). A message that would overshoot the budget is
    /// kept in `carried` and goes first next time (it already passed its
    /// limits); while it alone exceeds the budget nothing is taken. Returns
    /// the batch and, when a limit holds the rest back, when it opens.
    pub fn take(
        &self,
        carried: &mut Option<(Item, usize)>,
        max_items: usize,
        budget: usize,
        cost: impl Fn(&Item) -> usize,
    ) -> (Vec<Item>, Option<Instant>) {
        let mut items = Vec::new();
        let mut spent = 0usize;
        if let Some((item, n)) = carried.take() {
            if n > budget {
                *carried = Some((item, n));
                return (items, None);
            }
            spent = n;
            items.push(item);
        }
        let mut next = None;
        let now = Instant::now();
        let now_ms = now_ms();
        let mut q = self.fair.lock();
        let mut limits = self.limits.lock();
        while items.len() < max_items && spent < budget {
            match q.pop(now, now_ms, &mut limits) {
                Pop::Item(i) => {
                    let n = cost(&i);
                    if spent + n > budget {
                        *carried = Some((i, n));
                        break;
                    }
                    spent += n;
                    items.push(i);
                }
                Pop::WaitUntil(t) => {
                    next = Some(t);
                    break;
                }
                Pop::Empty => break,
            }
        }
        (items, next)
    }

    /// The checks every dispatcher makes, in order, on what it popped:
    /// quiet hours (held until the recipient's morning, or `expired` when
    /// validity ends first), validity, then `check` (opt-outs). What fails
    /// ends through `end`; what passes is returned, in order.
    pub fn vet(
        &self,
        items: Vec<Item>,
        now_ms: u64,
        check: Option<&DispatchCheck>,
        mut end: impl FnMut(MessageId, DeliveryState, &Arc<str>),
    ) -> Vec<Arc<Message>> {
        let mut passed = Vec::with_capacity(items.len());
        for item in items {
            let m = match self.quiet_check(item, now_ms) {
                QuietCheck::Go(i) => i.message,
                QuietCheck::Held(_) => continue,
                QuietCheck::Expires(i) => {
                    let reason = "validity ends before the recipient's quiet hours do".into();
                    end(i.message.id, DeliveryState::Expired, &reason);
                    continue;
                }
            };
            if m.expires_at_ms <= now_ms {
                end(
                    m.id,
                    DeliveryState::Expired,
                    &"validity ended before dispatch".into(),
                );
                continue;
            }
            if let Some((state, reason)) = check.and_then(|c| c.check(&m)) {
                end(m.id, state, &reason);
                continue;
            }
            passed.push(m);
        }
        passed
    }

    /// Puts held messages whose morning came back in the queue, in the order
    /// they were held; returns when the next one is due (wall-clock ms).
    pub fn release_held(&self, now_ms: u64) -> Option<u64> {
        let mut held = self.held.lock();
        let later = held.split_off(&(now_ms + 1, 0));
        let due = std::mem::replace(&mut *held, later);
        let next = held.keys().next().map(|k| k.0);
        drop(held);
        if !due.is_empty() {
            metrics::gauge!("sluice_held_messages").decrement(due.len() as f64);
            self.push_items(due.into_values().collect());
        }
        next
    }

    /// Takes out every message held for quiet hours (its carrier was
    /// removed: they are routed again, and held again where they land).
    pub fn drain_held(&self) -> Vec<Item> {
        let held = std::mem::take(&mut *self.held.lock());
        if !held.is_empty() {
            metrics::gauge!("sluice_held_messages").decrement(held.len() as f64);
        }
        held.into_values().collect()
    }

    /// Messages held for quiet hours.
    pub fn held(&self) -> usize {
        self.held.lock().len()
    }

    /// Weighs messages from now on by `text` segments (`count_segments`)
    /// or one each (a reload changed its carrier's `concat` or
    /// `count_segments`). Messages queued keep their weight until handed
    /// back (then weighed again); the limits charge the weight a message
    /// was given.
    pub fn reweigh(&self, text: text::TextOptions, count_segments: bool) {
        self.weighing.store(Arc::new(Weighing {
            text,
            count_segments,
        }));
    }

    /// Whether its limits count SMS segments.
    pub fn counts_segments(&self) -> bool {
        self.weighing.load().count_segments
    }

    /// Queues messages at the back.
    pub fn push<'a>(&self, messages: impl IntoIterator<Item = &'a Arc<Message>>) {
        self.weigh_and_push(messages, false);
    }

    /// Queues messages handed back by the carrier at the front of their
    /// sender's campaign queue (they keep their place).
    pub fn push_front<'a>(&self, messages: impl IntoIterator<Item = &'a Arc<Message>>) {
        self.weigh_and_push(messages, true);
    }

    /// Weighs messages (part permits, outside the lock) and queues them.
    fn weigh_and_push<'a>(
        &self,
        messages: impl IntoIterator<Item = &'a Arc<Message>>,
        front: bool,
    ) {
        let now = Instant::now();
        let weighing = self.weighing.load();
        let items: Vec<Item> = messages
            .into_iter()
            .map(|m| Item {
                permits: weighing.permits(m),
                message: m.clone(),
            })
            .collect();
        let mut q = self.fair.lock();
        for i in items {
            q.push(i, front, now);
        }
        drop(q);
        self.notify.notify_one();
    }

    /// Queues items already weighed (failover from another carrier).
    pub fn push_items(&self, items: Vec<Item>) {
        let now = Instant::now();
        let mut q = self.fair.lock();
        for i in items {
            q.push(i, false, now);
        }
        drop(q);
        self.notify.notify_one();
    }

    /// True once its carrier was removed by a reload.
    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }

    /// True once its dispatcher has ended (a removed queue is forgotten
    /// only then, so nothing it held is left behind).
    pub fn dispatcher_ended(&self) -> bool {
        self.dispatcher_ended.load(Ordering::Acquire)
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.fair.lock().len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops (true) or resumes (false) dispatch; queued traffic is held.
    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Release);
        self.notify.notify_one();
    }

    /// True while paused.
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    /// Why messages wait.
    pub fn report(&self) -> WaitReport {
        self.fair.lock().report(Instant::now())
    }

    /// Why message `m` waits here; `None` when it is not queued here.
    pub fn explain(&self, m: &Message) -> Option<fair::MessageWait> {
        self.fair.lock().explain(m, Instant::now())
    }

    /// Takes every queued message out (failover).
    pub fn drain(&self) -> Vec<Item> {
        self.fair.lock().drain()
    }

    /// How long messages have waited here with nothing dispatched although
    /// no limit holds them: `None` when nothing waits, the queue is paused,
    /// or a limit (rate, daily cap) explains the wait. The caller decides
    /// whether the carrier could take them (binds up, free permits).
    pub fn idle_for(&self, now_ms: u64) -> Option<std::time::Duration> {
        if self.is_paused() || self.is_empty() {
            return None;
        }
        if self.limited_until_ms.load(Ordering::Acquire) > now_ms {
            return None;
        }
        let last = self.last_dispatch_ms.load(Ordering::Acquire);
        Some(std::time::Duration::from_millis(
            now_ms.saturating_sub(last),
        ))
    }

    /// Takes this carrier's carrier-wide permits from `shared` too.
    pub fn share_rate(&self, shared: Arc<dyn crate::shaping::shared::SharedPace>) {
        self.fair.lock().set_shared(shared);
    }

    /// Takes `tenant`'s permits on this carrier from `shared` too.
    pub fn share_tenant_rate(
        &self,
        tenant: &str,
        shared: Arc<dyn crate::shaping::shared::SharedPace>,
    ) {
        self.fair.lock().set_tenant_shared(tenant, shared);
    }

    /// Sets the carrier-wide rate (adaptive throttling); `None` when the
    /// carrier has no carrier-wide limit.
    pub fn carrier_rate(&self) -> Option<f64> {
        self.fair.lock().carrier_pace().map(|p| p.rate())
    }
}

/// A carrier queue's metrics, registered once per dispatcher: depth and
/// how often each limit level made it wait.
pub(crate) struct QueueMetrics {
    depth: metrics::Gauge,
    waits: [metrics::Counter; 4],
}

impl QueueMetrics {
    pub(crate) fn new(carrier: &str) -> QueueMetrics {
        QueueMetrics {
            depth: metrics::gauge!("sluice_queue_depth", "carrier" => carrier.to_string()),
            waits: fair::Level::ALL.map(|l| {
                metrics::counter!("sluice_permit_waits_total",
                    "carrier" => carrier.to_string(), "level" => l.as_str())
            }),
        }
    }

    /// Publishes the queue's depth and the waits since the last call.
    pub(crate) fn observe(&self, queue: &CarrierQueue) {
        let (len, waits) = {
            let mut q = queue.fair.lock();
            (q.len(), q.take_waits())
        };
        self.depth.set(len as f64);
        for (counter, n) in self.waits.iter().zip(waits) {
            if n > 0 {
                counter.increment(n);
            }
        }
    }
}

/// Each tenant's quiet hours, by name.
fn quiet_hours(config: &Config) -> FastMap<String, QuietHours> {
    config
        .tenants
        .iter()
        .filter_map(|t| Some((t.name.clone(), t.quiet_hours?)))
        .collect()
}

/// The carrier queues, by carrier name.
pub type Queues = FastMap<Arc<str>, Arc<CarrierQueue>>;

/// Routes messages to carrier queues and runs their dispatchers.
#[derive(Debug)]
pub struct Scheduler {
    /// Replaced whole when a reload adds or removes an SMS carrier;
    /// readers take a snapshot.
    queues: arc_swap::ArcSwap<Queues>,
    /// Sender and brand limits, shared by every queue.
    limits: Arc<Mutex<SenderLimits>>,
    /// Tenants' quiet hours, shared by every queue.
    quiet: Arc<parking_lot::RwLock<FastMap<String, QuietHours>>>,
}

impl Scheduler {
    /// One queue per configured carrier, sharing the sender limits.
    pub fn new(config: &Config) -> Scheduler {
        let scheduler = Scheduler {
            queues: arc_swap::ArcSwap::default(),
            limits: Arc::new(Mutex::new(SenderLimits::new(config.senders.clone()))),
            quiet: Arc::new(parking_lot::RwLock::new(quiet_hours(config))),
        };
        let mut queues: Queues = config
            .carriers
            .iter()
            .map(|c| {
                let q = scheduler.sms_queue(c, &config.tenants);
                (Arc::<str>::from(c.name.as_str()), q)
            })
            .collect();
        for m in &config.mmsc {
            queues.insert(
                m.name.as_str().into(),
                scheduler.mmsc_queue(m, &config.tenants),
            );
        }
        scheduler.queues.store(Arc::new(queues));
        scheduler
    }

    fn new_queue(
        &self,
        tenants: &[crate::settings::TenantConfig],
        rate: f64,
        text: text::TextOptions,
        count_segments: bool,
    ) -> Arc<CarrierQueue> {
        Arc::new(CarrierQueue {
            fair: Mutex::new(FairQueue::new(tenants, rate)),
            limits: self.limits.clone(),
            notify: Notify::new(),
            paused: AtomicBool::new(false),
            weighing: arc_swap::ArcSwap::from_pointee(Weighing {
                text,
                count_segments,
            }),
            held: Mutex::default(),
            held_seq: std::sync::atomic::AtomicU64::new(0),
            quiet: self.quiet.clone(),
            last_dispatch_ms: std::sync::atomic::AtomicU64::new(now_ms()),
            limited_until_ms: std::sync::atomic::AtomicU64::new(0),
            removed: AtomicBool::new(false),
            dispatcher_ended: AtomicBool::new(false),
        })
    }

    fn sms_queue(
        &self,
        c: &crate::settings::CarrierConfig,
        tenants: &[crate::settings::TenantConfig],
    ) -> Arc<CarrierQueue> {
        self.new_queue(
            tenants,
            c.rate,
            crate::carrier::smpp::text_options(c),
            c.count_segments,
        )
    }

    fn mmsc_queue(
        &self,
        m: &crate::settings::MmscConfig,
        tenants: &[crate::settings::TenantConfig],
    ) -> Arc<CarrierQueue> {
        // An MMS is one submission whatever its text.
        self.new_queue(tenants, m.rate, text::TextOptions::default(), false)
    }

    /// Adds the queue of SMS carrier `c`, added by a reload (its tenants'
    /// limits are those of `tenants`); returns it (the one there already if
    /// the name is taken).
    pub fn add_sms_carrier(
        &self,
        c: &crate::settings::CarrierConfig,
        tenants: &[crate::settings::TenantConfig],
    ) -> Arc<CarrierQueue> {
        self.add_queue(&c.name, || self.sms_queue(c, tenants))
    }

    /// Adds the queue of MMSC `m`, added by a reload (its tenants' limits
    /// are those of `tenants`); returns it (the one there already if the
    /// name is taken).
    pub fn add_mmsc(
        &self,
        m: &crate::settings::MmscConfig,
        tenants: &[crate::settings::TenantConfig],
    ) -> Arc<CarrierQueue> {
        self.add_queue(&m.name, || self.mmsc_queue(m, tenants))
    }

    fn add_queue(&self, name: &str, make: impl FnOnce() -> Arc<CarrierQueue>) -> Arc<CarrierQueue> {
        if let Some(q) = self.queue(name) {
            return q;
        }
        let q = make();
        self.queues.rcu(|queues| {
            let mut queues = Queues::clone(queues);
            queues.insert(Arc::from(name), q.clone());
            queues
        });
        q
    }

    /// Takes the queue of carrier `name` out (a reload removed the
    /// carrier) and marks it removed: its dispatcher stops (putting back
    /// what it held), and what it still holds is for the caller to route
    /// again ([`crate::backlog::Backlog::retire_carrier`]).
    pub fn remove(&self, name: &str) -> Option<Arc<CarrierQueue>> {
        let q = self.queue(name)?;
        self.queues.rcu(|queues| {
            let mut queues = Queues::clone(queues);
            queues.remove(name);
            queues
        });
        q.removed.store(true, Ordering::Release);
        q.notify.notify_one();
        Some(q)
    }

    /// Takes reloaded limits (SIGHUP): each SMS carrier's `rate`, each
    /// tenant's `weight`, `rate` and quiet hours on every carrier (tenants
    /// added too), and the `[senders]` section. Messages queued stay queued; each limit applies from its
    /// next permit, and today's counts still count against changed caps.
    pub fn set_limits(&self, config: &Config) {
        let queues = self.queues();
        for c in &config.carriers {
            if let Some(q) = queues.get(c.name.as_str()) {
                q.fair.lock().set_limits(&config.tenants, c.rate);
            }
        }
        for m in &config.mmsc {
            if let Some(q) = queues.get(m.name.as_str()) {
                q.fair.lock().set_limits(&config.tenants, m.rate);
            }
        }
        self.limits.lock().set_config(config.senders.clone());
        *self.quiet.write() = quiet_hours(config);
        for q in queues.values() {
            q.notify.notify_one();
        }
    }

    /// Daily caps of senders and brands from `shared` from now on (cluster
    /// mode); call before traffic flows.
    pub fn share_caps(&self, shared: Arc<dyn crate::shaping::shared::SharedCaps>) {
        self.limits.lock().share_caps(shared);
    }

    /// Senders' per-second rates from `shared` too from now on (cluster
    /// mode); call before traffic flows.
    pub fn share_sender_rates(&self, shared: Arc<dyn crate::shaping::shared::SharedRates>) {
        self.limits.lock().share_rates(shared);
    }

    /// The queue in front of `carrier`.
    pub fn queue(&self, carrier: &str) -> Option<Arc<CarrierQueue>> {
        self.queues.load().get(carrier).cloned()
    }

    /// Every carrier's queue now: a snapshot a batch is queued by.
    pub fn queues(&self) -> Arc<Queues> {
        self.queues.load_full()
    }

    /// Names of the carriers, sorted.
    pub fn carriers(&self) -> Vec<Arc<str>> {
        let mut v: Vec<Arc<str>> = self.queues.load().keys().cloned().collect();
        v.sort();
        v
    }

    /// Messages waiting in memory: queued plus held for quiet hours (what
    /// `journal.max_queued_in_memory` bounds).
    pub fn in_memory(&self) -> usize {
        self.queues
            .load()
            .values()
            .map(|q| q.len() + q.held())
            .sum()
    }

    /// Moves what `from` holds to `to` (failover); returns how many moved.
    pub fn move_all(&self, from: &str, to: &str) -> usize {
        let (Some(a), Some(b)) = (self.queue(from), self.queue(to)) else {
            return 0;
        };
        let items = a.drain();
        let n = items.len();
        b.push_items(items);
        n
    }
}

#[cfg(test)]
mod tests;
