//! The fair queue in front of one carrier: what goes next, and when.
//!
//! Order of service:
//! 1. **Priority**: every tenant's transactional traffic before any marketing.
//! 2. **Tenants**: weighted round-robin (a tenant at the front of the ring
//!    gets `weight` turns before it rotates), so one tenant's blast of a
//!    million messages delays another tenant's message by at most one turn
//!    of the ring.
//! 3. **Senders** within a tenant: round-robin over sender numbers whose
//!    limits allow a message now. A sender that must wait is *parked* in a
//!    timer heap and skipped, so its limit never blocks other senders (no
//!    head-of-line blocking).
//! 4. **Campaigns** within a sender: round-robin, so campaigns interleave.
//!
//! A message takes a permit from every level it passes — carrier, tenant,
//! sender (rate and daily caps, brand caps) — or from none: readiness is
//! peeked at every level first, then committed together ([`crate::shaping::pace`]).
//! `pop` is O(log n) amortised in the number of parked senders and tenants.
//!
//! Layout, for the cost per message at thousands of senders: tenants, a
//! tenant's senders and a sender's campaigns live in slots (`Vec`s) and the
//! rings and timer heaps hold slot numbers, so only `push` looks keys up
//! (once per level, by borrowed key: no allocation when the tenant, sender
//! and campaign are known), with foldhash rather than SipHash. Senders are
//! keyed by [`Sender`] itself (its `Display` form, the old key, is one to one
//! with it). A sender's queue keeps its slot and buffers when it empties,
//! for its next message, so the queue holds one small entry per sender that
//! has used this carrier, as [`SenderLimits`] already does per sender; an
//! emptied campaign queue keeps its buffer up to
//! `KEEP_CAMPAIGN_CAPACITY` items, and an emptied sender at most
//! `KEEP_CAMPAIGN_SLOTS` campaign slots. `drain` frees them all.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::model::{Message, Priority, Sender};
use crate::settings::{SendersConfig, TenantConfig};
use crate::shaping::pace::{DailyCap, Pace};
use crate::shaping::shared::{SharedCap, SharedCaps, SharedPace, SharedRates};

/// The queue's internal maps: foldhash instead of SipHash (keys are tenant
/// names, senders and campaign ids from authenticated tenants; the seed is
/// still random per map).
type Map<K, V> = crate::model::hashing::FastMap<K, V>;

/// A queued message and the permits it takes (its segments, or 1).
#[derive(Debug, Clone)]
pub struct Item {
    /// The message.
    pub message: Arc<Message>,
    /// Permits it takes at each level.
    pub permits: u32,
}

/// What [`FairQueue::pop`] found.
#[derive(Debug)]
pub enum Pop {
    /// The next message; its permits are taken.
    Item(Item),
    /// Messages wait for limits; the earliest may go at this time.
    WaitUntil(Instant),
    /// Nothing queued.
    Empty,
}

/// Why the queue is waiting (for the admin endpoint and metrics).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct WaitReport {
    /// Messages queued.
    pub queued: usize,
    /// Transactional messages queued.
    pub transactional: usize,
    /// Tenants parked on their own rate limit, with seconds to wait.
    pub tenants_limited: Vec<(String, f64)>,
    /// Senders parked on their rate or daily cap, with seconds to wait (first 50).
    pub senders_limited: Vec<(String, f64)>,
    /// Seconds until the carrier-wide limit allows the next message.
    pub carrier_wait_s: f64,
}

/// A limit level that can make the queue wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// The carrier-wide rate (adaptive).
    Carrier = 0,
    /// A tenant's rate.
    Tenant = 1,
    /// A sender number's rate.
    Sender = 2,
    /// A sender's or brand's daily cap.
    DailyCap = 3,
}

impl Level {
    /// Every level, in index order.
    pub const ALL: [Level; 4] = [
        Level::Carrier,
        Level::Tenant,
        Level::Sender,
        Level::DailyCap,
    ];

    /// Label value in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Carrier => "carrier",
            Level::Tenant => "tenant",
            Level::Sender => "sender",
            Level::DailyCap => "daily_cap",
        }
    }
}

/// Why one queued message waits (the admin API's per-message answer).
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct MessageWait {
    /// Messages ahead of it in its campaign's queue at its sender.
    pub ahead_in_campaign: usize,
    /// Messages queued at its sender (all campaigns of this tenant class).
    pub sender_queued: usize,
    /// Campaigns its sender interleaves.
    pub sender_campaigns: usize,
    /// Seconds until its sender's rate or daily cap allows the next message
    /// (0: not parked).
    pub sender_wait_s: f64,
    /// Messages of its tenant and priority queued here.
    pub tenant_class_queued: usize,
    /// Seconds until its tenant's rate allows the next message.
    pub tenant_wait_s: f64,
    /// Seconds until the carrier-wide limit allows the next message.
    pub carrier_wait_s: f64,
}

// === sender limits, shared by every carrier's queue ===

/// A daily cap kept here, or shared with the cluster's other nodes.
#[derive(Debug)]
enum Cap {
    Local(DailyCap),
    Shared(Arc<dyn SharedCap>),
}

impl Cap {
    fn ready_at_ms(&mut self, now_ms: u64, n: u32) -> u64 {
        match self {
            Cap::Local(c) => c.ready_at_ms(now_ms, n),
            Cap::Shared(c) => c.ready_at_ms(now_ms, n),
        }
    }

    fn commit(&mut self, now_ms: u64, n: u32) {
        match self {
            Cap::Local(c) => c.commit(now_ms, n),
            Cap::Shared(c) => c.commit(now_ms, n),
        }
    }
}

#[derive(Debug)]
struct SenderLimit {
    pace: Option<Pace>,
    /// In cluster mode, the sender's share of the cluster's rate.
    shared: Option<Arc<dyn SharedPace>>,
    daily: Option<Cap>,
    brand: Option<usize>,
}

/// Rate limits and daily caps of senders and brands, shared across carriers
/// (a sender's cap holds whichever carrier its messages take), and in
/// cluster mode across nodes too ([`SenderLimits::share_caps`],
/// [`SenderLimits::share_rates`]).
#[derive(Debug)]
pub struct SenderLimits {
    config: SendersConfig,
    /// Slot in `senders` of each sender seen.
    index: Map<Sender, u32>,
    senders: Vec<SenderLimit>,
    brands: Vec<Cap>,
    brand_index: HashMap<String, usize>,
    shared: Option<Arc<dyn SharedCaps>>,
    shared_rates: Option<Arc<dyn SharedRates>>,
}

impl SenderLimits {
    /// Limits from the `[senders]` configuration.
    pub fn new(config: SendersConfig) -> SenderLimits {
        let mut limits = SenderLimits {
            config,
            index: Map::default(),
            senders: Vec::new(),
            brands: Vec::new(),
            brand_index: HashMap::new(),
            shared: None,
            shared_rates: None,
        };
        limits.set_up_brands();
        limits
    }

    fn set_up_brands(&mut self) {
        self.brands.clear();
        self.brand_index.clear();
        for b in &self.config.brands {
            let cap = match &self.shared {
                Some(s) if b.daily_cap > 0 => Cap::Shared(s.brand(&b.name, b.daily_cap)),
                _ => match DailyCap::new(b.daily_cap) {
                    Some(c) => Cap::Local(c),
                    None => continue,
                },
            };
            self.brand_index.insert(b.name.clone(), self.brands.len());
            self.brands.push(cap);
        }
    }

    /// Daily caps of senders and brands from `shared` from now on (cluster
    /// mode: they hold for every node together). What was counted here
    /// before is forgotten, so call it before traffic flows.
    pub fn share_caps(&mut self, shared: Arc<dyn SharedCaps>) {
        self.shared = Some(shared);
        self.index.clear();
        self.senders.clear();
        self.set_up_brands();
    }

    /// Senders' rates from `shared` too from now on (cluster mode: they
    /// hold for every node together; each node keeps its own pace as well).
    /// Call it before traffic flows.
    pub fn share_rates(&mut self, shared: Arc<dyn SharedRates>) {
        self.shared_rates = Some(shared);
        self.index.clear();
        self.senders.clear();
    }

    /// The slot of `sender`'s limits, set up from the configuration on its
    /// first message.
    fn slot(&mut self, sender: &Sender) -> usize {
        if let Some(&i) = self.index.get(sender) {
            return i as usize;
        }
        let (rate, cap, brand) = self.configured(sender);
        let daily = self.daily_cap(sender, cap);
        let shared = self.shared_rate(sender, rate);
        let i = self.senders.len();
        self.senders.push(SenderLimit {
            pace: Pace::new(rate),
            shared,
            daily,
            brand,
        });
        self.index.insert(sender.clone(), i as u32);
        i
    }

    /// `sender`'s rate, daily cap and brand slot in the configuration.
    fn configured(&self, sender: &Sender) -> (f64, u64, Option<usize>) {
        let key = sender.to_string();
        let o = self
            .config
            .overrides
            .iter()
            .find(|o| o.sender.trim_start_matches('+') == key.trim_start_matches('+'));
        let class_rate = match sender {
            Sender::ShortCode(_) => self.config.short_code_rate,
            Sender::Alphanumeric(_) => self.config.alphanumeric_rate,
            Sender::LongCode(n) if is_toll_free(*n) => self.config.toll_free_rate,
            Sender::LongCode(_) => self.config.long_code_rate,
        };
        let rate = o.and_then(|o| o.rate).unwrap_or(class_rate);
        let cap = o.and_then(|o| o.daily_cap).unwrap_or(self.config.daily_cap);
        let brand = o
            .and_then(|o| o.brand.as_ref())
            .and_then(|b| self.brand_index.get(b).copied());
        (rate, cap, brand)
    }

    fn shared_rate(&self, sender: &Sender, rate: f64) -> Option<Arc<dyn SharedPace>> {
        let shared = self.shared_rates.as_ref().filter(|_| rate > 0.0)?;
        Some(shared.sender(sender.to_string().trim_start_matches('+'), rate))
    }

    fn daily_cap(&self, sender: &Sender, cap: u64) -> Option<Cap> {
        match &self.shared {
            Some(s) if cap > 0 => Some(Cap::Shared(
                s.sender(sender.to_string().trim_start_matches('+'), cap),
            )),
            _ => DailyCap::new(cap).map(Cap::Local),
        }
    }

    /// Takes a reloaded `[senders]` section: every sender's and brand's
    /// rate and caps follow it from now on, and what each used today
    /// still counts (a lowered cap already reached holds at once).
    pub fn set_config(&mut self, config: SendersConfig) {
        if self.config == config {
            // Unchanged: nothing to redo (in cluster mode, remaking the
            // shared caps would strand the permits in hand).
            return;
        }
        // Local brand caps keep their count under the new cap (a shared
        // one counts in Redis anyway).
        let mut counted: HashMap<String, DailyCap> = HashMap::new();
        for (name, &i) in &self.brand_index {
            if let Cap::Local(c) = &self.brands[i] {
                counted.insert(name.clone(), c.clone());
            }
        }
        self.config = config;
        self.set_up_brands();
        for b in &self.config.brands {
            if let Some(&i) = self.brand_index.get(&b.name)
                && matches!(self.brands[i], Cap::Local(_))
                && let Some(mut c) = counted.remove(&b.name)
            {
                c.set_cap(b.daily_cap);
                self.brands[i] = Cap::Local(c);
            }
        }
        let senders: Vec<(Sender, u32)> = self.index.iter().map(|(s, i)| (s.clone(), *i)).collect();
        for (sender, i) in senders {
            let (rate, cap, brand) = self.configured(&sender);
            let fresh = self.daily_cap(&sender, cap);
            let fresh_rate = match self.senders[i as usize].shared {
                Some(_) => None,
                None => self.shared_rate(&sender, rate),
            };
            let l = &mut self.senders[i as usize];
            match (&mut l.pace, rate > 0.0) {
                (Some(p), true) => p.set_rate(rate),
                (p, _) => *p = Pace::new(rate),
            }
            match (&l.shared, rate > 0.0) {
                (Some(s), true) => s.set_rate(rate),
                (_, true) => l.shared = fresh_rate,
                (_, false) => l.shared = None,
            }
            l.daily = match (l.daily.take(), fresh) {
                (Some(Cap::Local(mut old)), Some(Cap::Local(_))) => {
                    old.set_cap(cap);
                    Some(Cap::Local(old))
                }
                (_, fresh) => fresh,
            };
            l.brand = brand;
        }
    }

    /// Takes `n` permits from `sender`'s rate, daily cap and brand cap when
    /// all of them allow it now; otherwise takes none and says when they
    /// will, and which level holds it.
    fn take(
        &mut self,
        sender: &Sender,
        now: Instant,
        now_ms: u64,
        n: u32,
    ) -> Result<(), (Instant, Level)> {
        let i = self.slot(sender);
        let l = &mut self.senders[i];
        let mut at = l.pace.as_ref().map_or(now, |p| p.ready_at(now));
        if let Some(s) = &l.shared {
            at = at.max(s.ready_at(now));
        }
        let mut day_ms = l
            .daily
            .as_mut()
            .map_or(now_ms, |d| d.ready_at_ms(now_ms, n));
        if let Some(b) = l.brand {
            day_ms = day_ms.max(self.brands[b].ready_at_ms(now_ms, n));
        }
        let mut level = Level::Sender;
        if day_ms > now_ms {
            let day = now + Duration::from_millis(day_ms - now_ms);
            if day > at {
                at = day;
                level = Level::DailyCap;
            }
        }
        if at > now {
            return Err((at, level));
        }
        if let Some(p) = l.pace.as_mut() {
            p.commit(now, n);
        }
        if let Some(s) = &l.shared {
            s.commit(now, n);
        }
        if let Some(d) = l.daily.as_mut() {
            d.commit(now_ms, n);
        }
        if let Some(b) = l.brand {
            self.brands[b].commit(now_ms, n);
        }
        Ok(())
    }
}

/// NANP toll-free area codes (800, 833, 844, 855, 866, 877, 888).
pub fn is_toll_free(n: crate::model::Msisdn) -> bool {
    n.is_nanp()
        && matches!(
            (n.as_u64() / 10_000_000) % 1000,
            800 | 833 | 844 | 855 | 866 | 877 | 888
        )
}

// === queues ===

/// Emptied campaign queues up to this capacity keep their buffer for the
/// next campaign at the same sender; larger ones (after a blast) free it.
const KEEP_CAMPAIGN_CAPACITY: usize = 64;

/// Campaign slots an emptied sender keeps.
const KEEP_CAMPAIGN_SLOTS: usize = 4;

#[derive(Debug)]
struct CampaignQueue {
    /// The campaign id; a free slot keeps its last one (reused when the
    /// same campaign comes back).
    name: Arc<str>,
    items: VecDeque<Item>,
}

#[derive(Debug)]
struct SenderQueue {
    sender: Sender,
    /// Campaign queues by slot; slots in `free` are empty and unindexed.
    campaigns: Vec<CampaignQueue>,
    free: Vec<u32>,
    /// Slot of each campaign with queued messages.
    index: Map<Arc<str>, u32>,
    /// Slots of the campaigns with queued messages, in service order.
    ring: VecDeque<u32>,
    len: usize,
    /// In the tenant-class ready ring or parked heap.
    scheduled: bool,
}

impl SenderQueue {
    fn new(sender: Sender) -> SenderQueue {
        SenderQueue {
            sender,
            campaigns: Vec::new(),
            free: Vec::new(),
            index: Map::default(),
            ring: VecDeque::new(),
            len: 0,
            scheduled: false,
        }
    }

    fn push(&mut self, item: Item, front: bool) {
        let campaign = &*item.message.campaign_id;
        let slot = match self.index.get(campaign) {
            Some(&s) => s,
            None => {
                let s = self.open(campaign);
                self.ring.push_back(s);
                s
            }
        };
        let q = &mut self.campaigns[slot as usize].items;
        if front {
            q.push_front(item);
        } else {
            q.push_back(item);
        }
        self.len += 1;
    }

    /// A slot for a campaign that has none: a free one (its buffer kept),
    /// or a new one.
    fn open(&mut self, campaign: &str) -> u32 {
        let s = match self.free.pop() {
            Some(s) => {
                let c = &mut self.campaigns[s as usize];
                if *c.name != *campaign {
                    c.name = campaign.into();
                }
                s
            }
            None => {
                self.campaigns.push(CampaignQueue {
                    name: campaign.into(),
                    items: VecDeque::new(),
                });
                (self.campaigns.len() - 1) as u32
            }
        };
        self.index
            .insert(self.campaigns[s as usize].name.clone(), s);
        s
    }

    fn front(&self) -> Option<&Item> {
        self.ring
            .front()
            .and_then(|&s| self.campaigns[s as usize].items.front())
    }

    fn pop(&mut self) -> Option<Item> {
        let slot = self.ring.pop_front()?;
        let c = &mut self.campaigns[slot as usize];
        let item = c.items.pop_front()?;
        if c.items.is_empty() {
            self.index.remove(&c.name);
            if c.items.capacity() > KEEP_CAMPAIGN_CAPACITY {
                c.items = VecDeque::new();
            }
            self.free.push(slot);
        } else {
            self.ring.push_back(slot);
        }
        self.len -= 1;
        if self.len == 0 && self.campaigns.len() > KEEP_CAMPAIGN_SLOTS {
            // Every slot is free: keep the first few.
            self.campaigns.truncate(KEEP_CAMPAIGN_SLOTS);
            self.free.clear();
            self.free.extend((0..KEEP_CAMPAIGN_SLOTS as u32).rev());
        }
        Some(item)
    }
}

/// Parked senders or tenants by slot: (ready at, sequence number, slot).
type Parked = BinaryHeap<Reverse<(Instant, u64, u32)>>;

#[derive(Debug, Default)]
struct TenantClass {
    /// Slot in `senders` of each sender seen.
    index: Map<Sender, u32>,
    /// Sender queues by slot; an emptied queue keeps its slot (and its
    /// buffers) for the sender's next message.
    senders: Vec<SenderQueue>,
    ready: VecDeque<u32>,
    parked: Parked,
    len: usize,
    /// In the class ring or parked heap.
    scheduled: bool,
}

impl TenantClass {
    fn sender_slot(&mut self, sender: &Sender) -> u32 {
        if let Some(&s) = self.index.get(sender) {
            return s;
        }
        let s = self.senders.len() as u32;
        self.senders.push(SenderQueue::new(sender.clone()));
        self.index.insert(sender.clone(), s);
        s
    }
}

#[derive(Debug)]
struct TenantState {
    name: Arc<str>,
    weight: u32,
    turns: u32,
    pace: Option<Pace>,
    /// The tenant's rate shared with the cluster's other nodes.
    shared: Option<Arc<dyn SharedPace>>,
    classes: [TenantClass; 2],
}

/// Tenants of one priority class, by slot in [`FairQueue::tenants`].
#[derive(Debug, Default)]
struct ClassRing {
    ready: VecDeque<u32>,
    parked: Parked,
}

/// The fair queue in front of one carrier (see the module doc).
#[derive(Debug)]
pub struct FairQueue {
    rings: [ClassRing; 2],
    /// Tenants by slot (never removed).
    tenants: Vec<TenantState>,
    tenant_index: Map<Arc<str>, u32>,
    tenant_config: HashMap<String, (u32, f64)>,
    carrier: Option<Pace>,
    /// The carrier-wide limit shared with the cluster's other nodes.
    shared: Option<Arc<dyn SharedPace>>,
    /// Tenants' rates shared with the cluster's other nodes.
    tenant_shared: Map<String, Arc<dyn SharedPace>>,
    len: usize,
    seq: u64,
    /// Times each [`Level`] made a message wait, since the last
    /// [`FairQueue::take_waits`].
    waits: [u64; 4],
}

fn class_of(p: Priority) -> usize {
    match p {
        Priority::Transactional => 0,
        Priority::Marketing => 1,
    }
}

impl FairQueue {
    /// A queue with tenant weights and rates, and a carrier-wide rate (0 =
    /// unlimited).
    pub fn new<'a>(
        tenants: impl IntoIterator<Item = &'a TenantConfig>,
        carrier_rate: f64,
    ) -> FairQueue {
        FairQueue {
            rings: Default::default(),
            tenants: Vec::new(),
            tenant_index: Map::default(),
            tenant_config: tenants
                .into_iter()
                .map(|t| (t.name.clone(), (t.weight.max(1), t.rate)))
                .collect(),
            carrier: Pace::new(carrier_rate),
            shared: None,
            tenant_shared: Map::default(),
            len: 0,
            seq: 0,
            waits: [0; 4],
        }
    }

    /// Messages queued.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Takes reloaded limits: the carrier-wide rate and each tenant's
    /// weight and rate (here and, in cluster mode, the shared leases); a
    /// rate of 0 lifts that limit. A pace keeps its schedule, so a change
    /// applies from the next permit.
    pub fn set_limits<'a>(
        &mut self,
        tenants: impl IntoIterator<Item = &'a TenantConfig>,
        carrier_rate: f64,
    ) {
        fn repace(pace: &mut Option<Pace>, rate: f64) {
            match pace {
                Some(p) if rate > 0.0 => p.set_rate(rate),
                _ => *pace = Pace::new(rate),
            }
        }
        // Whatever waits for a limit looks again at the next pop (a raised
        // cap must not wait for the time the old one named).
        for ring in &mut self.rings {
            while let Some(Reverse((_, _, t))) = ring.parked.pop() {
                ring.ready.push_back(t);
            }
        }
        for t in &mut self.tenants {
            for tc in &mut t.classes {
                while let Some(Reverse((_, _, s))) = tc.parked.pop() {
                    tc.ready.push_back(s);
                }
            }
        }
        repace(&mut self.carrier, carrier_rate);
        if carrier_rate > 0.0 {
            if let Some(s) = &self.shared {
                s.set_rate(carrier_rate);
            }
        } else {
            self.shared = None;
        }
        self.tenant_config = tenants
            .into_iter()
            .map(|t| (t.name.clone(), (t.weight.max(1), t.rate)))
            .collect();
        // Shared tenant rates, also of tenants with nothing queued here yet:
        // a rate switched off is dropped (its lease stops), the rest follow
        // the new rate.
        let config = &self.tenant_config;
        self.tenant_shared
            .retain(|name, shared| match config.get(name.as_str()) {
                Some(&(_, rate)) if rate > 0.0 => {
                    shared.set_rate(rate);
                    true
                }
                _ => false,
            });
        for t in &mut self.tenants {
            let (weight, rate) = self
                .tenant_config
                .get(&*t.name)
                .copied()
                .unwrap_or((1, 0.0));
            t.weight = weight;
            t.turns = t.turns.min(weight);
            repace(&mut t.pace, rate);
            if rate <= 0.0 {
                t.shared = None;
            }
        }
    }

    /// Takes carrier-wide permits from `shared` too (a limit shared by the
    /// cluster's nodes).
    pub fn set_shared(&mut self, shared: Arc<dyn SharedPace>) {
        self.shared = Some(shared);
    }

    /// Takes `tenant`'s permits on this carrier from `shared` too.
    pub fn set_tenant_shared(&mut self, tenant: &str, shared: Arc<dyn SharedPace>) {
        if let Some(&t) = self.tenant_index.get(tenant) {
            self.tenants[t as usize].shared = Some(shared.clone());
        }
        self.tenant_shared.insert(tenant.to_owned(), shared);
    }

    /// The carrier-wide limit, for adaptive throttling.
    pub fn carrier_pace(&mut self) -> Option<&mut Pace> {
        self.carrier.as_mut()
    }

    fn tenant_slot(&mut self, tenant: &Arc<str>) -> u32 {
        if let Some(&t) = self.tenant_index.get(&**tenant) {
            return t;
        }
        let (weight, rate) = self
            .tenant_config
            .get(&**tenant)
            .copied()
            .unwrap_or((1, 0.0));
        let t = self.tenants.len() as u32;
        self.tenants.push(TenantState {
            name: tenant.clone(),
            weight,
            turns: weight,
            pace: Pace::new(rate),
            shared: self.tenant_shared.get(&**tenant).cloned(),
            classes: Default::default(),
        });
        self.tenant_index.insert(tenant.clone(), t);
        t
    }

    /// Queues a message; `front` puts it ahead of its sender's campaign queue
    /// (a message handed back keeps its place).
    pub fn push(&mut self, item: Item, front: bool, now: Instant) {
        let m = &*item.message;
        let class = class_of(m.priority);
        let ti = self.tenant_slot(&m.tenant);
        let tc = &mut self.tenants[ti as usize].classes[class];
        let si = tc.sender_slot(&m.from);
        let sq = &mut tc.senders[si as usize];
        sq.push(item, front);
        if !sq.scheduled {
            sq.scheduled = true;
            tc.ready.push_back(si);
        }
        tc.len += 1;
        if !tc.scheduled {
            tc.scheduled = true;
            self.rings[class].ready.push_back(ti);
        }
        self.len += 1;
        let _ = now;
    }

    /// Takes the next message whose every limit allows it now.
    pub fn pop(&mut self, now: Instant, now_ms: u64, limits: &mut SenderLimits) -> Pop {
        if self.len == 0 {
            return Pop::Empty;
        }
        if let Some(p) = &self.carrier {
            let at = p.ready_at(now);
            if at > now {
                self.waits[Level::Carrier as usize] += 1;
                return Pop::WaitUntil(at);
            }
        }
        if let Some(s) = &self.shared {
            let at = s.ready_at(now);
            if at > now {
                self.waits[Level::Carrier as usize] += 1;
                return Pop::WaitUntil(at);
            }
        }
        let mut earliest: Option<Instant> = None;
        for class in 0..2 {
            // Tenants whose wait is over come back to the ring.
            let ring = &mut self.rings[class];
            while let Some(Reverse((at, _, _))) = ring.parked.peek() {
                if *at > now {
                    break;
                }
                let Reverse((_, _, t)) = ring.parked.pop().expect("peeked");
                ring.ready.push_back(t);
            }
            let rounds = self.rings[class].ready.len();
            for _ in 0..rounds {
                let ring = &mut self.rings[class];
                let Some(&ti) = ring.ready.front() else {
                    break;
                };
                let t = &mut self.tenants[ti as usize];
                let tc = &mut t.classes[class];
                if tc.len == 0 {
                    tc.scheduled = false;
                    ring.ready.pop_front();
                    continue;
                }
                // The tenant's own pace, and its share of the cluster's.
                let at = match (&t.pace, &t.shared) {
                    (None, None) => None,
                    (p, s) => p
                        .as_ref()
                        .map(|p| p.ready_at(now))
                        .max(s.as_ref().map(|s| s.ready_at(now))),
                };
                if let Some(at) = at
                    && at > now
                {
                    self.waits[Level::Tenant as usize] += 1;
                    self.seq += 1;
                    ring.ready.pop_front();
                    ring.parked.push(Reverse((at, self.seq, ti)));
                    earliest = Some(earliest.map_or(at, |e: Instant| e.min(at)));
                    continue;
                }
                match pop_sender(tc, now, now_ms, limits, &mut self.seq, &mut self.waits) {
                    Ok(item) => {
                        if let Some(p) = t.pace.as_mut() {
                            p.commit(now, item.permits);
                        }
                        if let Some(s) = &t.shared {
                            s.commit(now, item.permits);
                        }
                        if let Some(p) = self.carrier.as_mut() {
                            p.commit(now, item.permits);
                        }
                        if let Some(s) = &self.shared {
                            s.commit(now, item.permits);
                        }
                        self.len -= 1;
                        if tc.len == 0 {
                            tc.scheduled = false;
                            ring.ready.pop_front();
                            t.turns = t.weight;
                        } else {
                            t.turns -= 1;
                            if t.turns == 0 {
                                t.turns = t.weight;
                                ring.ready.rotate_left(1);
                            }
                        }
                        return Pop::Item(item);
                    }
                    Err(at) => {
                        // Every sender of this tenant waits: park the tenant.
                        self.seq += 1;
                        ring.ready.pop_front();
                        ring.parked.push(Reverse((at, self.seq, ti)));
                        earliest = Some(earliest.map_or(at, |e: Instant| e.min(at)));
                    }
                }
            }
            if let Some(Reverse((at, _, _))) = self.rings[class].parked.peek() {
                earliest = Some(earliest.map_or(*at, |e: Instant| e.min(*at)));
            }
        }
        match earliest {
            Some(at) => Pop::WaitUntil(at.max(now + Duration::from_micros(1))),
            None => Pop::Empty,
        }
    }

    /// Times each level (indexed by [`Level`]) made a message wait since the
    /// last call.
    pub fn take_waits(&mut self) -> [u64; 4] {
        std::mem::take(&mut self.waits)
    }

    /// Removes every queued message (failover to another carrier).
    pub fn drain(&mut self) -> Vec<Item> {
        let mut out = Vec::with_capacity(self.len);
        for t in &mut self.tenants {
            for tc in &mut t.classes {
                for sq in &mut tc.senders {
                    while let Some(i) = sq.pop() {
                        out.push(i);
                    }
                }
                tc.senders.clear();
                tc.index.clear();
                tc.ready.clear();
                tc.parked.clear();
                tc.len = 0;
                tc.scheduled = false;
            }
        }
        for r in &mut self.rings {
            r.ready.clear();
            r.parked.clear();
        }
        self.len = 0;
        out
    }

    /// Why messages wait.
    pub fn report(&self, now: Instant) -> WaitReport {
        let secs = |at: Instant| at.saturating_duration_since(now).as_secs_f64();
        let mut r = WaitReport {
            queued: self.len,
            carrier_wait_s: self.carrier.as_ref().map_or(0.0, |p| secs(p.ready_at(now))),
            ..WaitReport::default()
        };
        for t in &self.tenants {
            r.transactional += t.classes[0].len;
            if let Some(p) = &t.pace {
                let w = secs(p.ready_at(now));
                if w > 0.0 {
                    r.tenants_limited.push((t.name.to_string(), w));
                }
            }
            for tc in &t.classes {
                for Reverse((at, _, s)) in tc.parked.iter().take(50) {
                    if r.senders_limited.len() < 50 {
                        let sender = &tc.senders[*s as usize].sender;
                        r.senders_limited.push((sender.to_string(), secs(*at)));
                    }
                }
            }
        }
        r
    }
}

impl FairQueue {
    /// Where message `m` waits in this queue and on what; `None` when it is
    /// not queued here.
    pub fn explain(&self, m: &crate::model::Message, now: Instant) -> Option<MessageWait> {
        let secs = |at: Instant| at.saturating_duration_since(now).as_secs_f64();
        let t = &self.tenants[*self.tenant_index.get(&*m.tenant)? as usize];
        let tc = &t.classes[class_of(m.priority)];
        let si = *tc.index.get(&m.from)?;
        let sq = &tc.senders[si as usize];
        let slot = *sq.index.get(&*m.campaign_id)?;
        let ahead = sq.campaigns[slot as usize]
            .items
            .iter()
            .position(|i| i.message.id == m.id)?;
        let sender_wait_s = tc
            .parked
            .iter()
            .find(|Reverse((_, _, s))| *s == si)
            .map_or(0.0, |Reverse((at, _, _))| secs(*at));
        Some(MessageWait {
            ahead_in_campaign: ahead,
            sender_queued: sq.len,
            sender_campaigns: sq.index.len(),
            sender_wait_s,
            tenant_class_queued: tc.len,
            tenant_wait_s: t.pace.as_ref().map_or(0.0, |p| secs(p.ready_at(now))),
            carrier_wait_s: self.carrier.as_ref().map_or(0.0, |p| secs(p.ready_at(now))),
        })
    }
}

/// Takes the next message of a tenant class from a sender whose limits
/// allow it; `Err(time)` when every sender waits.
fn pop_sender(
    tc: &mut TenantClass,
    now: Instant,
    now_ms: u64,
    limits: &mut SenderLimits,
    seq: &mut u64,
    waits: &mut [u64; 4],
) -> Result<Item, Instant> {
    while let Some(Reverse((at, _, _))) = tc.parked.peek() {
        if *at > now {
            break;
        }
        let Reverse((_, _, s)) = tc.parked.pop().expect("peeked");
        tc.ready.push_back(s);
    }
    while let Some(si) = tc.ready.pop_front() {
        let sq = &mut tc.senders[si as usize];
        let Some(front) = sq.front() else {
            sq.scheduled = false;
            continue;
        };
        let permits = front.permits;
        if let Err((at, level)) = limits.take(&sq.sender, now, now_ms, permits) {
            waits[level as usize] += 1;
            *seq += 1;
            tc.parked.push(Reverse((at, *seq, si)));
            continue;
        }
        let item = sq.pop().expect("front exists");
        tc.len -= 1;
        if sq.len == 0 {
            sq.scheduled = false;
        } else {
            tc.ready.push_back(si);
        }
        return Ok(item);
    }
    Err(tc
        .parked
        .peek()
        .map(|Reverse((at, _, _))| *at)
        .unwrap_or(now + Duration::from_millis(1)))
}

#[cfg(test)]
mod tests;
