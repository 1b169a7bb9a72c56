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
//! peeked at every level first, then committed together ([`super::pace`]).
//! `pop` is O(log n) amortised in the number of parked senders and tenants.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::pace::{DailyCap, Pace};
use crate::config::{SendersConfig, TenantConfig};
use crate::model::{Message, Priority, Sender};

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

#[derive(Debug)]
struct SenderLimit {
    pace: Option<Pace>,
    daily: Option<DailyCap>,
    brand: Option<usize>,
}

/// Rate limits and daily caps of senders and brands, shared across carriers
/// (a sender's cap holds whichever carrier its messages take).
#[derive(Debug)]
pub struct SenderLimits {
    config: SendersConfig,
    senders: HashMap<Arc<str>, SenderLimit>,
    brands: Vec<DailyCap>,
    brand_index: HashMap<String, usize>,
}

impl SenderLimits {
    /// Limits from the `[senders]` configuration.
    pub fn new(config: SendersConfig) -> SenderLimits {
        let mut brands = Vec::new();
        let mut brand_index = HashMap::new();
        for b in &config.brands {
            if let Some(cap) = DailyCap::new(b.daily_cap) {
                brand_index.insert(b.name.clone(), brands.len());
                brands.push(cap);
            }
        }
        SenderLimits {
            config,
            senders: HashMap::new(),
            brands,
            brand_index,
        }
    }

    fn limit(&mut self, key: &Arc<str>, sender: &Sender) -> &mut SenderLimit {
        if !self.senders.contains_key(key) {
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
            self.senders.insert(
                key.clone(),
                SenderLimit {
                    pace: Pace::new(rate),
                    daily: DailyCap::new(cap),
                    brand,
                },
            );
        }
        self.senders.get_mut(key).expect("inserted above")
    }

    /// When `sender` may send `n` permits.
    /// When the sender may send `n` permits, and which level holds it.
    fn ready_at(
        &mut self,
        key: &Arc<str>,
        sender: &Sender,
        now: Instant,
        now_ms: u64,
        n: u32,
    ) -> (Instant, Level) {
        let l = self.limit(key, sender);
        let mut at = l.pace.as_ref().map_or(now, |p| p.ready_at(now));
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
        (at, level)
    }

    fn commit(&mut self, key: &Arc<str>, sender: &Sender, now: Instant, now_ms: u64, n: u32) {
        let l = self.limit(key, sender);
        if let Some(p) = l.pace.as_mut() {
            p.commit(now, n);
        }
        if let Some(d) = l.daily.as_mut() {
            d.commit(now_ms, n);
        }
        if let Some(b) = l.brand {
            self.brands[b].commit(now_ms, n);
        }
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

#[derive(Debug, Default)]
struct SenderQueue {
    sender: Option<Sender>,
    campaigns: HashMap<Arc<str>, VecDeque<Item>>,
    ring: VecDeque<Arc<str>>,
    len: usize,
    /// In the tenant-class ready ring or parked heap.
    scheduled: bool,
}

impl SenderQueue {
    fn push(&mut self, item: Item, front: bool) {
        let campaign: Arc<str> = item.message.campaign_id.as_str().into();
        let q = self.campaigns.entry(campaign.clone()).or_default();
        if q.is_empty() {
            self.ring.push_back(campaign);
        }
        if front {
            q.push_front(item);
        } else {
            q.push_back(item);
        }
        self.len += 1;
    }

    fn front(&self) -> Option<&Item> {
        self.ring
            .front()
            .and_then(|c| self.campaigns.get(c))
            .and_then(|q| q.front())
    }

    fn pop(&mut self) -> Option<Item> {
        let campaign = self.ring.pop_front()?;
        let q = self.campaigns.get_mut(&campaign)?;
        let item = q.pop_front()?;
        if q.is_empty() {
            self.campaigns.remove(&campaign);
        } else {
            self.ring.push_back(campaign);
        }
        self.len -= 1;
        Some(item)
    }
}

type Parked = BinaryHeap<Reverse<(Instant, u64, Arc<str>)>>;

#[derive(Debug, Default)]
struct TenantClass {
    senders: HashMap<Arc<str>, SenderQueue>,
    ready: VecDeque<Arc<str>>,
    parked: Parked,
    len: usize,
    /// In the class ring or parked heap.
    scheduled: bool,
}

#[derive(Debug)]
struct TenantState {
    weight: u32,
    turns: u32,
    pace: Option<Pace>,
    classes: [TenantClass; 2],
}

#[derive(Debug, Default)]
struct ClassRing {
    ready: VecDeque<Arc<str>>,
    parked: Parked,
}

/// The fair queue in front of one carrier (see the module doc).
#[derive(Debug)]
pub struct FairQueue {
    rings: [ClassRing; 2],
    tenants: HashMap<Arc<str>, TenantState>,
    tenant_config: HashMap<String, (u32, f64)>,
    carrier: Option<Pace>,
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
            tenants: HashMap::new(),
            tenant_config: tenants
                .into_iter()
                .map(|t| (t.name.clone(), (t.weight.max(1), t.rate)))
                .collect(),
            carrier: Pace::new(carrier_rate),
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

    /// The carrier-wide limit, for adaptive throttling.
    pub fn carrier_pace(&mut self) -> Option<&mut Pace> {
        self.carrier.as_mut()
    }

    /// Queues a message; `front` puts it ahead of its sender's campaign queue
    /// (a message handed back keeps its place).
    pub fn push(&mut self, item: Item, front: bool, now: Instant) {
        let m = item.message.clone();
        let class = class_of(m.priority);
        let t = self.tenants.entry(m.tenant.clone()).or_insert_with(|| {
            let (weight, rate) = self
                .tenant_config
                .get(&*m.tenant)
                .copied()
                .unwrap_or((1, 0.0));
            TenantState {
                weight,
                turns: weight,
                pace: Pace::new(rate),
                classes: Default::default(),
            }
        });
        let tc = &mut t.classes[class];
        let sender_key: Arc<str> = m.from.to_string().into();
        let sq = tc.senders.entry(sender_key.clone()).or_default();
        if sq.sender.is_none() {
            sq.sender = Some(m.from.clone());
        }
        sq.push(item, front);
        if !sq.scheduled {
            sq.scheduled = true;
            tc.ready.push_back(sender_key);
        }
        tc.len += 1;
        if !tc.scheduled {
            tc.scheduled = true;
            self.rings[class].ready.push_back(m.tenant.clone());
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
                let Some(name) = self.rings[class].ready.front().cloned() else {
                    break;
                };
                let t = self.tenants.get_mut(&name).expect("ringed tenants exist");
                let tc = &mut t.classes[class];
                if tc.len == 0 {
                    tc.scheduled = false;
                    self.rings[class].ready.pop_front();
                    continue;
                }
                if let Some(p) = &t.pace {
                    let at = p.ready_at(now);
                    if at > now {
                        self.waits[Level::Tenant as usize] += 1;
                        self.seq += 1;
                        self.rings[class].ready.pop_front();
                        self.rings[class].parked.push(Reverse((at, self.seq, name)));
                        earliest = Some(earliest.map_or(at, |e: Instant| e.min(at)));
                        continue;
                    }
                }
                match pop_sender(tc, now, now_ms, limits, &mut self.seq, &mut self.waits) {
                    Ok(item) => {
                        if let Some(p) = t.pace.as_mut() {
                            p.commit(now, item.permits);
                        }
                        if let Some(p) = self.carrier.as_mut() {
                            p.commit(now, item.permits);
                        }
                        self.len -= 1;
                        let ring = &mut self.rings[class];
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
                        let ring = &mut self.rings[class];
                        ring.ready.pop_front();
                        ring.parked.push(Reverse((at, self.seq, name)));
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
        for t in self.tenants.values_mut() {
            for tc in &mut t.classes {
                for sq in tc.senders.values_mut() {
                    while let Some(i) = sq.pop() {
                        out.push(i);
                    }
                    sq.scheduled = false;
                }
                tc.senders.clear();
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
        for (name, t) in &self.tenants {
            r.transactional += t.classes[0].len;
            if let Some(p) = &t.pace {
                let w = secs(p.ready_at(now));
                if w > 0.0 {
                    r.tenants_limited.push((name.to_string(), w));
                }
            }
            for tc in &t.classes {
                for Reverse((at, _, s)) in tc.parked.iter().take(50) {
                    if r.senders_limited.len() < 50 {
                        r.senders_limited.push((s.to_string(), secs(*at)));
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
        let t = self.tenants.get(&m.tenant)?;
        let tc = &t.classes[class_of(m.priority)];
        let key = m.from.to_string();
        let sq = tc.senders.get(key.as_str())?;
        let ahead = sq
            .campaigns
            .get(m.campaign_id.as_str())?
            .iter()
            .position(|i| i.message.id == m.id)?;
        let sender_wait_s = tc
            .parked
            .iter()
            .find(|Reverse((_, _, s))| **s == *key)
            .map_or(0.0, |Reverse((at, _, _))| secs(*at));
        Some(MessageWait {
            ahead_in_campaign: ahead,
            sender_queued: sq.len,
            sender_campaigns: sq.campaigns.len(),
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
    while let Some(key) = tc.ready.pop_front() {
        let Some(sq) = tc.senders.get_mut(&key) else {
            continue;
        };
        let Some(front) = sq.front() else {
            sq.scheduled = false;
            tc.senders.remove(&key);
            continue;
        };
        let permits = front.permits;
        let sender = sq.sender.clone().expect("set on first push");
        let (at, level) = limits.ready_at(&key, &sender, now, now_ms, permits);
        if at > now {
            waits[level as usize] += 1;
            *seq += 1;
            tc.parked.push(Reverse((at, *seq, key)));
            continue;
        }
        let item = sq.pop().expect("front exists");
        limits.commit(&key, &sender, now, now_ms, permits);
        tc.len -= 1;
        if sq.len == 0 {
            sq.scheduled = false;
            tc.senders.remove(&key);
        } else {
            tc.ready.push_back(key);
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
