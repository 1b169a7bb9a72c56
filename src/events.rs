//! The event fan-out: turns final states, inbound messages and opt-outs into
//! events (encoded once by the door's [`EventEncoder`]), journals them, and
//! holds them per tenant until a subscribed upstream connection acknowledges
//! them.
//!
//! Delivery is at least once: an event sent on a connection that closes
//! before acknowledging it goes back to the front of its tenant's queue; after
//! a restart every unacknowledged event is restored from the journal. Events
//! are encoded once, when they are created, and sent as those same bytes.
//!
//! Subscriptions have a scope. The tenant stream (the default) is shared by
//! the tenant's tenant-scoped connections. A connection-scoped subscriber
//! (`sluice send --wait`) *claims* the messages it submits
//! ([`EventHub::claim`], before they can finish) and receives only their
//! events, from a queue of its own; when it closes, whatever it had not
//! acknowledged, and the claims of its messages still in flight, fall back to
//! the tenant stream. Claims live in memory only: after a restart every
//! event is on the tenant stream.
//!
//! Webhook endpoints are destinations of their own: each gets its own copy
//! of an event (its own id, its own payload from the hub's endpoint encoder,
//! journaled with the endpoint's name), held in an [`Endpoint`] queue until
//! the endpoint's sender acknowledges it, so the stream and every endpoint
//! are acknowledged independently and a restart restores what each still
//! owes. A tenant whose events go to webhooks only turns its stream off
//! (`stream_events = false`): its stream events are then acknowledged as
//! soon as they are durable (they still end their message in the journal),
//! unless a connection-scoped subscriber claimed them.
//!
//! A reload changes a tenant's destinations in place: one added takes the
//! events created from then on ([`EventHub::add_destinations`]), an
//! endpoint's kinds of event change for the next event
//! ([`EventHub::set_kinds`]), one removed takes nothing more and what it
//! held is acknowledged, as a restart without it would drop it
//! ([`EventHub::remove_destination`]; its message histories do not record
//! that drop), and the stream is switched on or off
//! ([`EventHub::set_stream`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::journal::{Journal, PendingEvent};
use crate::ledger::Finalized;
use crate::model::hashing::FastMap;
use crate::model::{MessageId, now_ms};

/// Identifies one subscribed connection.
pub type ConnId = u64;

/// The channel a finished message went out on, as its event reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// It never reached a carrier.
    Unspecified,
    /// An SMSC.
    Sms,
    /// An MMSC.
    Mms,
}

/// A message from a handset that is not a compliance keyword.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundEvent {
    /// The handset, in E.164 when it is a number.
    pub from: String,
    /// The sender address it was sent to.
    pub to: String,
    /// Its text.
    pub text: String,
    /// Wall-clock ms it arrived.
    pub at_ms: u64,
    /// The carrier it came through.
    pub carrier: String,
    /// An MMS's MM7 `LinkedID`, to answer it with (empty otherwise).
    pub linked_id: String,
}

/// A recipient opted out or back in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptEvent {
    /// The handset, in E.164.
    pub number: String,
    /// The sender program's scope.
    pub scope: String,
    /// Whether the number is opted out now.
    pub opted_out: bool,
    /// The keyword or source (`STOP`, `api`).
    pub keyword: String,
    /// Wall-clock ms of the change.
    pub at_ms: u64,
    /// The campaign an opt-out is attributed to (empty: none).
    pub campaign: String,
}

/// A recipient followed a tracked link ([`crate::links`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickEvent {
    /// The message the link was sent in.
    pub message_id: u64,
    /// That message's client_ref.
    pub client_ref: String,
    /// That message's campaign.
    pub campaign: String,
    /// Its recipient, in E.164.
    pub number: String,
    /// Which of the message's links, from 0.
    pub link_index: u32,
    /// The original URL.
    pub url: String,
    /// The link's first click (else a repeat).
    pub first: bool,
    /// Wall-clock ms of the click.
    pub at_ms: u64,
    /// The browser's User-Agent (at most 256 characters).
    pub user_agent: String,
    /// The network it came from (/24 or /48).
    pub ip_class: String,
}

/// An event that does not end a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// An inbound message for the tenant.
    Inbound(InboundEvent),
    /// An opt-out or opt-in.
    Opt(OptEvent),
    /// A click on a tracked link.
    Click(ClickEvent),
}

/// Turns events into the bytes subscribers receive (and the journal keeps):
/// the wire format is the door's business, so the hub stores and sends
/// opaque bytes, encoded once. `ingest::event_wire::WireEvents` encodes
/// `sluice.v1.Event`.
pub trait EventEncoder: Send + Sync + std::fmt::Debug + 'static {
    /// The event of a finished message, sent on `channel`, at `at_ms`.
    fn delivery(&self, event_id: u64, f: &Finalized, channel: Channel, at_ms: u64) -> Bytes;

    /// An event that does not end a message.
    fn notice(&self, event_id: u64, notice: &Notice) -> Bytes;

    /// Whether a destination with this encoder takes the delivery event of
    /// `f` at all (an SMPP upstream takes only the receipts it asked for).
    fn wants_delivery(&self, _f: &Finalized) -> bool {
        true
    }
}

#[derive(Debug, Default)]
struct TenantQueue {
    /// Durable, not yet sent (front = oldest): the tenant stream.
    ready: VecDeque<Arc<PendingEvent>>,
    /// Sent on a connection, waiting for its acknowledgement.
    in_flight: FastMap<u64, (ConnId, Arc<PendingEvent>)>,
    /// Created, not yet durable (compaction must still see them).
    unsynced: FastMap<u64, Arc<PendingEvent>>,
    /// Messages whose event goes to one connection-scoped subscriber.
    claims: FastMap<MessageId, ConnId>,
    /// Durable, not yet sent, per connection-scoped subscriber.
    scoped: FastMap<ConnId, VecDeque<Arc<PendingEvent>>>,
}

impl TenantQueue {
    /// Where `conn` takes events from.
    fn queue_of(&mut self, conn: ConnId) -> &mut VecDeque<Arc<PendingEvent>> {
        match self.scoped.get_mut(&conn) {
            Some(q) => q,
            None => &mut self.ready,
        }
    }

    fn has_ready(&self, conn: ConnId) -> bool {
        match self.scoped.get(&conn) {
            Some(q) => !q.is_empty(),
            None => !self.ready.is_empty(),
        }
    }
}

#[derive(Debug)]
struct Tenant {
    queue: Mutex<TenantQueue>,
    notify: Notify,
    /// Connection-scoped subscribers (so claims skip the lock when none).
    scoped: AtomicU64,
    /// The tenant stream is on (else unclaimed stream events are
    /// acknowledged once durable); a reload switches it.
    stream: AtomicBool,
    /// Its other destinations (webhook endpoints, the SMPP server):
    /// replaced whole when a reload adds or removes one.
    endpoints: parking_lot::RwLock<Arc<[Arc<Endpoint>]>>,
}

impl Tenant {
    fn new(stream: bool, endpoints: Vec<Arc<Endpoint>>) -> Tenant {
        Tenant {
            queue: Mutex::default(),
            notify: Notify::new(),
            scoped: AtomicU64::new(0),
            stream: AtomicBool::new(stream),
            endpoints: parking_lot::RwLock::new(endpoints.into()),
        }
    }

    /// Its stream is on.
    fn stream(&self) -> bool {
        self.stream.load(Ordering::Acquire)
    }

    /// Its destinations now.
    fn endpoints(&self) -> Arc<[Arc<Endpoint>]> {
        self.endpoints.read().clone()
    }

    fn endpoint(&self, name: &str) -> Option<Arc<Endpoint>> {
        self.endpoints
            .read()
            .iter()
            .find(|e| &*e.name == name)
            .cloned()
    }
}

/// Where a tenant's events go: its stream (or not) and its destinations.
#[derive(Debug, Default)]
pub struct TenantSettings {
    /// The tenant stream is on.
    pub stream: bool,
    /// Its other destinations (webhook endpoints, the SMPP server).
    pub endpoints: Vec<Destination>,
}

/// One destination of a tenant's events besides its stream.
#[derive(Debug)]
pub struct Destination {
    /// Its name (journaled with each copy).
    pub name: Arc<str>,
    /// The events it takes.
    pub kinds: EventKinds,
    /// Encodes its copies.
    pub encoder: Arc<dyn EventEncoder>,
}

/// Publications waiting for the publisher task: many publications share one
/// journal record and one sync (group commit of events).
#[derive(Debug, Default)]
struct Pending {
    events: Vec<Arc<PendingEvent>>,
    /// Sequence number of the last publication added.
    seq: u64,
}

#[derive(Debug)]
struct Publisher {
    pending: Mutex<Pending>,
    wake: Arc<Notify>,
    /// Highest publication sequence number made durable (and ready).
    done: tokio::sync::watch::Sender<u64>,
    failed: std::sync::OnceLock<Arc<crate::journal::JournalError>>,
    started: std::sync::OnceLock<()>,
}

/// Which kinds of event a webhook endpoint takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventKinds {
    /// Terminal states of messages.
    pub delivery: bool,
    /// Inbound messages.
    pub inbound: bool,
    /// Opt-outs and opt-ins.
    pub opt: bool,
    /// Clicks on tracked links.
    pub click: bool,
}

impl EventKinds {
    /// As one byte (a kind a bit), for an endpoint whose kinds a reload
    /// changes.
    fn bits(self) -> u8 {
        u8::from(self.delivery)
            | u8::from(self.inbound) << 1
            | u8::from(self.opt) << 2
            | u8::from(self.click) << 3
    }

    fn from_bits(b: u8) -> EventKinds {
        EventKinds {
            delivery: b & 1 != 0,
            inbound: b & 2 != 0,
            opt: b & 4 != 0,
            click: b & 8 != 0,
        }
    }

    fn takes(self, notice: &Notice) -> bool {
        match notice {
            Notice::Inbound(_) => self.inbound,
            Notice::Opt(_) => self.opt,
            Notice::Click(_) => self.click,
        }
    }
}

/// How many events an endpoint holds, by state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EndpointCounts {
    /// Durable, waiting to be sent.
    pub ready: usize,
    /// Taken by a sender, not yet answered with a 2xx.
    pub in_flight: usize,
    /// Given up on (dead-lettered), kept until replayed.
    pub dead: usize,
}

#[derive(Debug, Default)]
struct EndpointQueue {
    ready: VecDeque<Arc<PendingEvent>>,
    in_flight: FastMap<u64, Arc<PendingEvent>>,
    dead: Vec<Arc<PendingEvent>>,
    /// Event id → wall-clock ms it was replayed from the dead letters (its
    /// dead-letter clock starts again then).
    revived: FastMap<u64, u64>,
    /// Its destination was removed (a reload): it takes nothing more.
    removed: bool,
}

/// One webhook endpoint's events: durable, not yet answered with a 2xx.
/// The endpoint's sender takes batches, acknowledges them on a 2xx, or
/// dead-letters them when they are too old; an operator replays dead
/// letters. Everything it holds is journaled and carried by compaction.
#[derive(Debug)]
pub struct Endpoint {
    tenant: Arc<str>,
    name: Arc<str>,
    /// [`EventKinds::bits`]; a reload changes them.
    kinds: AtomicU8,
    /// Encodes this destination's copies.
    encoder: Arc<dyn EventEncoder>,
    queue: Mutex<EndpointQueue>,
    notify: Notify,
    journal: Journal,
    pending: Arc<AtomicU64>,
    history: crate::history::History,
}

impl Endpoint {
    /// The tenant it belongs to.
    pub fn tenant(&self) -> &Arc<str> {
        &self.tenant
    }

    /// Its name (unique within the tenant).
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The kinds of event it takes.
    pub fn kinds(&self) -> EventKinds {
        EventKinds::from_bits(self.kinds.load(Ordering::Relaxed))
    }

    /// Waits until events are ready.
    pub async fn wait(&self) {
        let notified = self.notify.notified();
        if !self.queue.lock().ready.is_empty() {
            return;
        }
        notified.await;
    }

    /// Takes up to `max` ready events (oldest first); they are in flight
    /// until [acknowledged](Endpoint::ack) or [dead-lettered](Endpoint::dead_letter).
    pub fn take(&self, max: usize) -> Vec<Arc<PendingEvent>> {
        let mut q = self.queue.lock();
        let n = max.min(q.ready.len());
        let out: Vec<_> = q.ready.drain(..n).collect();
        for e in &out {
            q.in_flight.insert(e.event_id, e.clone());
        }
        out
    }

    /// The endpoint answered 2xx for these events: they are done.
    pub fn ack(&self, events: &[Arc<PendingEvent>]) {
        let mut done = Vec::with_capacity(events.len());
        {
            let mut q = self.queue.lock();
            for e in events {
                if q.in_flight.remove(&e.event_id).is_some() {
                    q.revived.remove(&e.event_id);
                    done.push(e);
                }
            }
        }
        // Recorded outside the queue's lock.
        for e in &done {
            self.history
                .event_acked(e.message_id, e.event_id, &self.name);
        }
        let ids: Vec<u64> = done.iter().map(|e| e.event_id).collect();
        if !ids.is_empty() {
            self.pending.fetch_sub(ids.len() as u64, Ordering::Relaxed);
            self.journal.event_ack(&ids);
        }
    }

    /// Events in flight that are given up on: kept (journaled) in the
    /// dead-letter list until [replayed](Endpoint::replay).
    pub fn dead_letter(&self, events: &[Arc<PendingEvent>]) {
        let mut q = self.queue.lock();
        for e in events {
            if let Some(e) = q.in_flight.remove(&e.event_id) {
                q.dead.push(e);
            }
        }
    }

    /// Events in flight that a sender could not finish (it is stopping) go
    /// back to the front of the queue, in order.
    pub fn untake(&self, events: &[Arc<PendingEvent>]) {
        let mut q = self.queue.lock();
        for e in events.iter().rev() {
            if let Some(e) = q.in_flight.remove(&e.event_id) {
                q.ready.push_front(e);
            }
        }
        drop(q);
        self.notify.notify_waiters();
    }

    /// Puts every dead letter back at the front of the queue (in event
    /// order), its dead-letter clock started again; returns how many.
    pub fn replay(&self) -> usize {
        let now = now_ms();
        let mut q = self.queue.lock();
        let mut dead = std::mem::take(&mut q.dead);
        dead.sort_by_key(|e| std::cmp::Reverse(e.event_id));
        let n = dead.len();
        for e in dead {
            q.revived.insert(e.event_id, now);
            q.ready.push_front(e);
        }
        drop(q);
        self.notify.notify_waiters();
        n
    }

    /// Wall-clock ms the dead-letter clock of `e` started: when it was
    /// created, or last replayed.
    pub fn since_ms(&self, e: &PendingEvent) -> u64 {
        let replayed = self.queue.lock().revived.get(&e.event_id).copied();
        replayed.unwrap_or(e.created_ms).max(e.created_ms)
    }

    /// How many events it holds, by state.
    pub fn counts(&self) -> EndpointCounts {
        let q = self.queue.lock();
        EndpointCounts {
            ready: q.ready.len(),
            in_flight: q.in_flight.len(),
            dead: q.dead.len(),
        }
    }

    /// Holds `e` until acknowledged; false (not held) once its destination
    /// is removed.
    fn push(&self, e: Arc<PendingEvent>) -> bool {
        let mut q = self.queue.lock();
        if q.removed {
            return false;
        }
        q.ready.push_back(e);
        drop(q);
        self.notify.notify_waiters();
        true
    }

    /// Empties it (its destination removed); returns the ids it held.
    fn drain(&self) -> Vec<u64> {
        let mut q = self.queue.lock();
        let q = &mut *q;
        let ids = q
            .ready
            .drain(..)
            .map(|e| e.event_id)
            .chain(q.in_flight.drain().map(|(id, _)| id))
            .chain(q.dead.drain(..).map(|e| e.event_id))
            .collect();
        q.revived.clear();
        q.removed = true;
        ids
    }

    fn all(&self) -> Vec<Arc<PendingEvent>> {
        let q = self.queue.lock();
        q.ready
            .iter()
            .chain(q.in_flight.values())
            .chain(q.dead.iter())
            .cloned()
            .collect()
    }
}

/// Per-tenant event queues.
#[derive(Debug)]
pub struct EventHub {
    publisher: Publisher,
    /// The tenants, replaced whole when a reload adds one (read often,
    /// written at start and on SIGHUP).
    tenants: parking_lot::RwLock<Arc<FastMap<Arc<str>, Arc<Tenant>>>>,
    /// Carriers that deliver MMS (the rest deliver SMS); a reload adds
    /// MMSCs ([`EventHub::add_mms_carrier`]), and one removed stays named
    /// (its late delivery reports are MMS events).
    mms_carriers: arc_swap::ArcSwap<crate::model::hashing::FastSet<Arc<str>>>,
    journal: Journal,
    pending: Arc<AtomicU64>,
    encoder: Arc<dyn EventEncoder>,
    /// Some tenant has an endpoint.
    has_endpoints: std::sync::atomic::AtomicBool,
    /// Where acknowledgements are recorded in their message's history.
    history: crate::history::History,
}

impl EventHub {
    /// A hub for `tenants` (each with its stream on and no other
    /// destination; [`EventHub::add_tenant`] adds one with its own),
    /// encoding events with `encoder`.
    pub fn new(
        journal: Journal,
        tenants: impl IntoIterator<Item = Arc<str>>,
        encoder: Arc<dyn EventEncoder>,
    ) -> EventHub {
        EventHub {
            tenants: parking_lot::RwLock::new(Arc::new(
                tenants
                    .into_iter()
                    .map(|t| (t, Arc::new(Tenant::new(true, Vec::new()))))
                    .collect(),
            )),
            journal,
            pending: Arc::new(AtomicU64::new(0)),
            encoder,
            has_endpoints: std::sync::atomic::AtomicBool::new(false),
            history: crate::history::History::disabled(),
            mms_carriers: Default::default(),
            publisher: Publisher {
                pending: Mutex::default(),
                wake: Arc::new(Notify::new()),
                done: tokio::sync::watch::Sender::new(0),
                failed: std::sync::OnceLock::new(),
                started: std::sync::OnceLock::new(),
            },
        }
    }

    /// Records event acknowledgements in `history` (set before the
    /// endpoints, which take it from here).
    pub fn with_history(mut self, history: crate::history::History) -> EventHub {
        self.history = history;
        self
    }

    /// Names the carriers that deliver MMS, for the events' channel.
    pub fn with_mms_carriers(self, names: impl IntoIterator<Item = Arc<str>>) -> EventHub {
        self.mms_carriers
            .store(Arc::new(names.into_iter().collect()));
        self
    }

    /// Names `name` among the carriers that deliver MMS (an MMSC a reload
    /// adds), before any message goes to it.
    pub fn add_mms_carrier(&self, name: &Arc<str>) {
        self.mms_carriers.rcu(|names| {
            let mut names = crate::model::hashing::FastSet::clone(names);
            names.insert(name.clone());
            names
        });
    }

    /// Whether `name` is, or was since the start, an MMSC's.
    pub fn is_mms_carrier(&self, name: &str) -> bool {
        self.mms_carriers.load().contains(name)
    }

    /// A tenant with no events yet.
    fn build_tenant(&self, name: &Arc<str>, settings: TenantSettings) -> Tenant {
        if !settings.endpoints.is_empty() {
            self.has_endpoints.store(true, Ordering::Release);
        }
        let endpoints = settings
            .endpoints
            .into_iter()
            .map(|d| self.build_endpoint(name, d))
            .collect();
        Tenant::new(settings.stream, endpoints)
    }

    /// A destination of `tenant` with no events yet.
    fn build_endpoint(&self, tenant: &Arc<str>, d: Destination) -> Arc<Endpoint> {
        Arc::new(Endpoint {
            tenant: tenant.clone(),
            name: d.name,
            kinds: AtomicU8::new(d.kinds.bits()),
            encoder: d.encoder,
            queue: Mutex::default(),
            notify: Notify::new(),
            journal: self.journal.clone(),
            pending: self.pending.clone(),
            history: self.history.clone(),
        })
    }

    /// Adds a tenant while running (a reload): its stream and its
    /// destinations, which take its events from now on. False (nothing
    /// done) when the hub already knows it.
    pub fn add_tenant(&self, name: &str, settings: TenantSettings) -> bool {
        let mut tenants = self.tenants.write();
        if tenants.contains_key(name) {
            return false;
        }
        let key: Arc<str> = name.into();
        let t = self.build_tenant(&key, settings);
        let mut map = FastMap::clone(&tenants);
        map.insert(key, Arc::new(t));
        *tenants = Arc::new(map);
        true
    }

    /// Adds destinations to a tenant the hub knows, while running (a
    /// reload): each takes the tenant's events created from now on. Those
    /// whose name the tenant already has are left out; returns the names
    /// added (none for a tenant the hub does not know).
    pub fn add_destinations(&self, tenant: &str, destinations: Vec<Destination>) -> Vec<Arc<str>> {
        let Some(t) = self.tenant(tenant) else {
            return Vec::new();
        };
        let key: Arc<str> = tenant.into();
        let mut endpoints = t.endpoints.write();
        let mut list = endpoints.to_vec();
        let mut added = Vec::new();
        for d in destinations {
            if list.iter().any(|e| e.name == d.name) {
                continue;
            }
            added.push(d.name.clone());
            list.push(self.build_endpoint(&key, d));
        }
        if !added.is_empty() {
            // Set before the list is published, so the next publication
            // looks for destinations.
            self.has_endpoints.store(true, Ordering::Release);
            *endpoints = list.into();
        }
        added
    }

    /// Sets which kinds of event `tenant`'s destination `name` takes from
    /// now on (a reload); false when it has no such destination.
    pub fn set_kinds(&self, tenant: &str, name: &str, kinds: EventKinds) -> bool {
        let Some(ep) = self.endpoint(tenant, name) else {
            return false;
        };
        ep.kinds.store(kinds.bits(), Ordering::Relaxed);
        true
    }

    /// Removes `tenant`'s destination `name` while running (a reload): it
    /// takes no event from now on, and the events it still held (ready,
    /// in flight, dead-lettered) are acknowledged, as a restart without it
    /// would drop them. Returns how many, or `None` when it had no such
    /// destination.
    pub fn remove_destination(&self, tenant: &str, name: &str) -> Option<usize> {
        let t = self.tenant(tenant)?;
        let ep = {
            let mut endpoints = t.endpoints.write();
            let ep = endpoints.iter().find(|e| &*e.name == name)?.clone();
            *endpoints = endpoints
                .iter()
                .filter(|e| !Arc::ptr_eq(e, &ep))
                .cloned()
                .collect();
            ep
        };
        // A copy made from the old list and not yet durable finds no
        // destination when it is, and is acknowledged then.
        let ids = ep.drain();
        if !ids.is_empty() {
            self.pending.fetch_sub(ids.len() as u64, Ordering::Relaxed);
            self.journal.event_ack(&ids);
        }
        Some(ids.len())
    }

    /// Switches `tenant`'s stream on or off while running (a reload). Off,
    /// the stream events no connection has taken are acknowledged (as a
    /// restart without the stream would), and those created from now on
    /// are once durable, unless claimed; on, they are held from now on.
    /// Returns how many were acknowledged (0 when `tenant` is unknown).
    pub fn set_stream(&self, tenant: &str, on: bool) -> usize {
        let Some(t) = self.tenant(tenant) else {
            return 0;
        };
        let mut q = t.queue.lock();
        t.stream.store(on, Ordering::Release);
        if on {
            return 0;
        }
        let ids: Vec<u64> = q.ready.drain(..).map(|e| e.event_id).collect();
        drop(q);
        if !ids.is_empty() {
            self.pending.fetch_sub(ids.len() as u64, Ordering::Relaxed);
            self.journal.event_ack(&ids);
        }
        ids.len()
    }

    /// Whether `tenant` is one of the hub's (configured at the start or
    /// added since).
    pub fn knows(&self, tenant: &str) -> bool {
        self.tenants.read().contains_key(tenant)
    }

    fn tenant(&self, name: &str) -> Option<Arc<Tenant>> {
        self.tenants.read().get(name).cloned()
    }

    fn tenant_map(&self) -> Arc<FastMap<Arc<str>, Arc<Tenant>>> {
        self.tenants.read().clone()
    }

    /// `tenant`'s destination named `name`, if it has one.
    pub fn endpoint(&self, tenant: &str, name: &str) -> Option<Arc<Endpoint>> {
        self.tenant(tenant)?.endpoint(name)
    }

    /// Every webhook endpoint, of every tenant.
    pub fn endpoints(&self) -> Vec<Arc<Endpoint>> {
        self.tenant_map()
            .values()
            .flat_map(|t| t.endpoints().to_vec())
            .collect()
    }

    /// Events created and not yet acknowledged.
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    /// Puts back events recovered from the journal (already durable).
    pub fn restore(&self, events: Vec<PendingEvent>) {
        let mut done = Vec::new();
        let tenants = self.tenant_map();
        for e in events {
            let Some(t) = tenants.get(&*e.tenant) else {
                tracing::warn!(target: "sluice::events", tenant = %crate::model::LogSafe::new(&e.tenant), event_id = e.event_id,
                    "dropping a recovered event of a tenant no longer configured");
                continue;
            };
            if e.sink.is_empty() {
                if !t.stream() {
                    // No stream, and no claims after a restart: done.
                    done.push(e.event_id);
                    continue;
                }
                t.queue.lock().ready.push_back(Arc::new(e));
            } else if let Some(ep) = t.endpoint(&e.sink) {
                ep.queue.lock().ready.push_back(Arc::new(e));
            } else {
                tracing::warn!(target: "sluice::events", tenant = %crate::model::LogSafe::new(&e.tenant),
                    endpoint = %crate::model::LogSafe::new(&e.sink), event_id = e.event_id,
                    "dropping a recovered event of a webhook endpoint no longer configured");
                continue;
            }
            self.pending.fetch_add(1, Ordering::Relaxed);
        }
        if !done.is_empty() {
            self.journal.event_ack(&done);
        }
    }

    /// Creates the delivery events of finished messages, registers them (so
    /// compaction sees them), and journals them. They become visible to
    /// subscribers when the returned future resolves.
    pub fn publish_final(self: &Arc<Self>, finals: &[Finalized]) -> Publish {
        if finals.is_empty() {
            return Publish::done();
        }
        let first = self.journal.allocate_event_ids(finals.len() as u64);
        let at = now_ms();
        let events: Vec<Arc<PendingEvent>> = finals
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let event_id = first + i as u64;
                Arc::new(PendingEvent {
                    event_id,
                    message_id: f.message.id,
                    tenant: f.message.tenant.clone(),
                    payload: self.encoder.delivery(event_id, f, self.channel(f), at),
                    sink: String::new(),
                    created_ms: at,
                })
            })
            .collect();
        if !self.has_endpoints.load(Ordering::Acquire) {
            return self.publish(events);
        }
        let mut events = events;
        let tenants = self.tenant_map();
        for f in finals {
            let Some(t) = tenants.get(&*f.message.tenant) else {
                continue;
            };
            for ep in t
                .endpoints()
                .iter()
                .filter(|e| e.kinds().delivery && e.encoder.wants_delivery(f))
            {
                let event_id = self.journal.allocate_event_ids(1);
                events.push(Arc::new(PendingEvent {
                    event_id,
                    message_id: f.message.id,
                    tenant: f.message.tenant.clone(),
                    payload: ep.encoder.delivery(event_id, f, self.channel(f), at),
                    sink: ep.name.to_string(),
                    created_ms: at,
                }));
            }
        }
        self.publish(events)
    }

    /// The channel a finished message went out on.
    fn channel(&self, f: &Finalized) -> Channel {
        match &f.carrier {
            Some(c) if self.mms_carriers.load().contains(c) => Channel::Mms,
            Some(_) => Channel::Sms,
            None => Channel::Unspecified,
        }
    }

    /// Creates one event that does not end a message (inbound message,
    /// opt-out) for `tenant`.
    pub fn publish_notice(self: &Arc<Self>, tenant: &str, notice: &Notice) -> Publish {
        let at = now_ms();
        let mut events = Vec::with_capacity(1);
        let t = self.tenant(tenant);
        if t.as_ref().is_none_or(|t| t.stream()) {
            let event_id = self.journal.allocate_event_ids(1);
            events.push(Arc::new(PendingEvent {
                event_id,
                message_id: MessageId(0),
                tenant: tenant.into(),
                payload: self.encoder.notice(event_id, notice),
                sink: String::new(),
                created_ms: at,
            }));
        }
        if let Some(t) = t {
            for ep in t.endpoints().iter().filter(|e| e.kinds().takes(notice)) {
                let event_id = self.journal.allocate_event_ids(1);
                events.push(Arc::new(PendingEvent {
                    event_id,
                    message_id: MessageId(0),
                    tenant: tenant.into(),
                    payload: ep.encoder.notice(event_id, notice),
                    sink: ep.name.to_string(),
                    created_ms: at,
                }));
            }
        }
        if events.is_empty() {
            return Publish::done();
        }
        self.publish(events)
    }

    fn publish(self: &Arc<Self>, events: Vec<Arc<PendingEvent>>) -> Publish {
        let tenants = self.tenant_map();
        for e in &events {
            if let Some(t) = tenants.get(&*e.tenant) {
                t.queue.lock().unsynced.insert(e.event_id, e.clone());
            }
        }
        self.pending
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        let p = &self.publisher;
        p.started.get_or_init(|| {
            tokio::spawn(publisher(Arc::downgrade(self)));
        });
        let seq = {
            let mut pending = p.pending.lock();
            pending.events.extend(events);
            pending.seq += 1;
            pending.seq
        };
        p.wake.notify_one();
        Publish(Some((p.done.subscribe(), seq, self.clone())))
    }

    fn make_ready(&self, events: &[Arc<PendingEvent>]) {
        let mut done = Vec::new();
        let tenants = self.tenant_map();
        for e in events {
            if let Some(t) = tenants.get(&*e.tenant) {
                let mut q = t.queue.lock();
                if q.unsynced.remove(&e.event_id).is_none() {
                    continue;
                }
                if !e.sink.is_empty() {
                    drop(q);
                    // Not held when its destination is gone (a reload
                    // removed it).
                    if !t.endpoint(&e.sink).is_some_and(|ep| ep.push(e.clone())) {
                        done.push(e.event_id);
                    }
                    continue;
                }
                // An event names the message it ends: its claim ends too.
                let owner = match e.message_id {
                    MessageId(0) => None,
                    _ if q.claims.is_empty() => None,
                    id => q.claims.remove(&id),
                };
                match owner.and_then(|c| q.scoped.get_mut(&c)) {
                    Some(own) => own.push_back(e.clone()),
                    None if t.stream() => q.ready.push_back(e.clone()),
                    None => done.push(e.event_id),
                }
                drop(q);
                t.notify.notify_waiters();
            } else {
                // A tenant no longer configured (a message it queued ended
                // after a restart): nobody takes it, and once durable it
                // has ended its message in the journal.
                done.push(e.event_id);
            }
        }
        if !done.is_empty() {
            self.pending.fetch_sub(done.len() as u64, Ordering::Relaxed);
            self.journal.event_ack(&done);
        }
    }

    /// Makes `conn` a connection-scoped subscriber of `tenant`: from now on
    /// it receives only the events of the messages it [claims](EventHub::claim).
    pub fn subscribe_connection(&self, tenant: &str, conn: ConnId) {
        if let Some(t) = self.tenant(tenant)
            && t.queue
                .lock()
                .scoped
                .insert(conn, VecDeque::new())
                .is_none()
        {
            t.scoped.fetch_add(1, Ordering::Release);
        }
    }

    /// The events of these messages (just submitted on `conn`, not yet
    /// queued for dispatch) go to `conn` alone — when `conn` is a
    /// connection-scoped subscriber; otherwise nothing happens.
    pub fn claim(&self, tenant: &str, conn: ConnId, ids: impl IntoIterator<Item = MessageId>) {
        let Some(t) = self.tenant(tenant) else {
            return;
        };
        if t.scoped.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut q = t.queue.lock();
        if q.scoped.contains_key(&conn) {
            q.claims.extend(ids.into_iter().map(|id| (id, conn)));
        }
    }

    /// Drops the claims of messages that were not stored after all.
    pub fn unclaim(&self, tenant: &str, ids: impl IntoIterator<Item = MessageId>) {
        let Some(t) = self.tenant(tenant) else {
            return;
        };
        let mut q = t.queue.lock();
        if !q.claims.is_empty() {
            for id in ids {
                q.claims.remove(&id);
            }
        }
    }

    /// Waits until connection `conn` of `tenant` may have events ready (in
    /// its own queue when it is connection-scoped, else the tenant stream).
    pub async fn wait(&self, tenant: &str, conn: ConnId) {
        if let Some(t) = self.tenant(tenant) {
            let notified = t.notify.notified();
            if t.queue.lock().has_ready(conn) {
                return;
            }
            notified.await;
        } else {
            std::future::pending::<()>().await;
        }
    }

    /// Takes up to `max` ready events of `tenant` for connection `conn`
    /// (from its own queue when it is connection-scoped).
    pub fn take(&self, tenant: &str, conn: ConnId, max: usize) -> Vec<Arc<PendingEvent>> {
        let Some(t) = self.tenant(tenant) else {
            return Vec::new();
        };
        let mut q = t.queue.lock();
        let from = q.queue_of(conn);
        let n = max.min(from.len());
        let out: Vec<_> = from.drain(..n).collect();
        for e in &out {
            q.in_flight.insert(e.event_id, (conn, e.clone()));
        }
        out
    }

    /// Acknowledges events sent on `conn`; returns how many were in flight
    /// there. Unknown ids and ids of other connections are ignored.
    pub fn ack(&self, tenant: &str, conn: ConnId, ids: &[u64]) -> usize {
        let Some(t) = self.tenant(tenant) else {
            return 0;
        };
        let mut acked = Vec::with_capacity(ids.len());
        let mut messages = Vec::with_capacity(ids.len());
        {
            let mut q = t.queue.lock();
            for id in ids {
                if q.in_flight.get(id).is_some_and(|(c, _)| *c == conn)
                    && let Some((_, e)) = q.in_flight.remove(id)
                {
                    acked.push(*id);
                    messages.push(e.message_id);
                }
            }
        }
        // Recorded outside the tenant queue's lock (every ack takes it).
        for (id, m) in acked.iter().zip(&messages) {
            self.history.event_acked(*m, *id, "");
        }
        if !acked.is_empty() {
            self.pending
                .fetch_sub(acked.len() as u64, Ordering::Relaxed);
            self.journal.event_ack(&acked);
            metrics::counter!("sluice_events_acked_total").increment(acked.len() as u64);
        }
        acked.len()
    }

    /// Events taken by `conn` that could not be written go back to the front
    /// of the queue, in order.
    pub fn untake(&self, tenant: &str, conn: ConnId, events: &[Arc<PendingEvent>]) {
        let Some(t) = self.tenant(tenant) else {
            return;
        };
        let mut q = t.queue.lock();
        for e in events.iter().rev() {
            if q.in_flight
                .get(&e.event_id)
                .is_some_and(|(c, _)| *c == conn)
            {
                q.in_flight.remove(&e.event_id);
                q.queue_of(conn).push_front(e.clone());
            }
        }
    }

    /// A connection went away: its unacknowledged events (and, when it was
    /// connection-scoped, its unsent ones) go back to the front of the tenant
    /// stream, in event order; its claims end, so the events of its messages
    /// still in flight go to the tenant stream.
    pub fn release(&self, tenant: &str, conn: ConnId) {
        let Some(t) = self.tenant(tenant) else {
            return;
        };
        let mut q = t.queue.lock();
        let mut back: Vec<Arc<PendingEvent>> = Vec::new();
        q.in_flight.retain(|_, (c, e)| {
            if *c == conn {
                back.push(e.clone());
                false
            } else {
                true
            }
        });
        if let Some(own) = q.scoped.remove(&conn) {
            t.scoped.fetch_sub(1, Ordering::Release);
            back.extend(own);
            q.claims.retain(|_, c| *c != conn);
        }
        if back.is_empty() {
            return;
        }
        if !t.stream() {
            // Nobody else takes stream events: they are done.
            drop(q);
            let ids: Vec<u64> = back.iter().map(|e| e.event_id).collect();
            self.pending.fetch_sub(ids.len() as u64, Ordering::Relaxed);
            self.journal.event_ack(&ids);
            return;
        }
        back.sort_by_key(|e| std::cmp::Reverse(e.event_id));
        for e in back {
            q.ready.push_front(e);
        }
        drop(q);
        t.notify.notify_waiters();
    }

    /// Every event not yet acknowledged (compaction's carry-forward).
    pub fn snapshot(&self) -> Vec<Arc<PendingEvent>> {
        let mut out = Vec::new();
        for t in self.tenant_map().values() {
            let q = t.queue.lock();
            out.extend(q.unsynced.values().cloned());
            out.extend(q.ready.iter().cloned());
            out.extend(q.scoped.values().flatten().cloned());
            out.extend(q.in_flight.values().map(|(_, e)| e.clone()));
            drop(q);
            for ep in t.endpoints().iter() {
                out.extend(ep.all());
            }
        }
        out
    }
}

/// Journals pending publications in batches (one record and one sync for
/// all that queued while the previous batch was syncing), then hands their
/// events to subscribers. Ends when the hub is gone.
async fn publisher(hub: std::sync::Weak<EventHub>) {
    let Some(wake) = hub.upgrade().map(|h| h.publisher.wake.clone()) else {
        return;
    };
    loop {
        let notified = wake.notified();
        let Some(h) = hub.upgrade() else { return };
        let (batch, upto) = {
            let mut p = h.publisher.pending.lock();
            (std::mem::take(&mut p.events), p.seq)
        };
        if batch.is_empty() {
            drop(h);
            // Re-check the hub now and then so the task ends with it.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), notified).await;
            continue;
        }
        match h.journal.events(batch.iter().map(|e| &**e)).wait().await {
            Ok(()) => h.make_ready(&batch),
            Err(e) => {
                tracing::error!(target: "sluice::events", error = %e, "journal failed; events not published");
                let _ = h.publisher.failed.set(Arc::new(e));
            }
        }
        h.publisher.done.send_replace(upto);
    }
}

/// A publication in progress: resolves when its events are durable and
/// visible to subscribers. The publisher task completes it even if this
/// handle is dropped, so a caller that goes away — a bind whose link dropped
/// mid-receipt — cannot strand an event.
#[derive(Debug)]
#[must_use = "await it to know the events are durable"]
pub struct Publish(Option<(tokio::sync::watch::Receiver<u64>, u64, Arc<EventHub>)>);

impl Publish {
    fn done() -> Publish {
        Publish(None)
    }

    /// Waits for durability and hand-over to subscribers.
    ///
    /// # Errors
    /// The journal failed; the events stay registered and are not sent.
    pub async fn wait(self) -> Result<(), Arc<crate::journal::JournalError>> {
        let Some((mut rx, seq, hub)) = self.0 else {
            return Ok(());
        };
        if rx.wait_for(|done| *done >= seq).await.is_err() {
            return Err(Arc::new(crate::journal::JournalError::Closed));
        }
        match hub.publisher.failed.get() {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
