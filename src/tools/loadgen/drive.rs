//! The load itself: one sender task and one event task per connection, a
//! shared claim counter that hands out message sequence numbers (and, with
//! `--rate`, the time each batch is due), and one tally that both sides
//! update once per batch ack or per chunk of events.
//!
//! Latency clocks start when `send_batch` returns — credits held and the
//! frame handed to the connection — so a client waiting for credits is not
//! counted as gateway latency. Submit-to-terminal latency is matched per
//! message by `message_id`; an event may overtake its batch's ack (it can
//! arrive on another connection of the tenant), so unmatched events wait in
//! `early` until the ack names them.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::mix::Templates;
use crate::ingest::client::{Client, ClientError, Events};
use crate::ingest::pb;

/// Acknowledge events once this many are held.
const ACK_BATCH: usize = 1024;
/// ... or when no event came for this long.
const ACK_LINGER: Duration = Duration::from_millis(2);
/// Events taken off the channel per turn.
const EVENT_CHUNK: usize = 256;
/// Error texts kept for the report.
const ERROR_SAMPLES: usize = 8;
/// Highest latency recorded (µs): one hour.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// A latency histogram in microseconds (3 significant figures).
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid bounds")
}

/// A coarser per-second histogram (2 significant figures).
fn second_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 2).expect("valid bounds")
}

/// A hasher for gateway message ids (already unique integers): one folded
/// multiply instead of SipHash.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b) ^ self.0.rotate_left(8));
        }
    }
    fn write_u64(&mut self, x: u64) {
        let p = u128::from(x) * 0x9E37_79B9_7F4A_7C15;
        self.0 = (p as u64) ^ ((p >> 64) as u64);
    }
}

type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

// === impl Plan ===

/// What to send: shared by every sender.
#[derive(Debug)]
pub(crate) struct Plan {
    pub start: Instant,
    /// Messages to send in all (u64::MAX = until `send_until`).
    pub limit: u64,
    /// Stop claiming at this time.
    pub send_until: Option<Instant>,
    /// Messages per second over all connections; 0 = as fast as possible.
    pub rate: u64,
    pub batch: usize,
    pub pipeline: usize,
    pub templates: Templates,
    /// Stops sending (and the drain) early: Ctrl-C.
    pub stop: CancellationToken,
    next_seq: AtomicU64,
}

/// A claimed batch: messages `first..first + n`, due at `due` under `--rate`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Claim {
    pub first: u64,
    pub n: usize,
    pub due: Option<Instant>,
}

impl Plan {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        start: Instant,
        limit: u64,
        send_until: Option<Instant>,
        rate: u64,
        batch: usize,
        pipeline: usize,
        templates: Templates,
        stop: CancellationToken,
    ) -> Plan {
        Plan {
            start,
            limit,
            send_until,
            rate,
            batch: batch.max(1),
            pipeline: pipeline.max(1),
            templates,
            stop,
            next_seq: AtomicU64::new(0),
        }
    }

    pub(super) fn claim(&self, batch: usize) -> Option<Claim> {
        if self.stop.is_cancelled() || self.send_until.is_some_and(|e| Instant::now() >= e) {
            return None;
        }
        let first = self.next_seq.fetch_add(batch as u64, Ordering::Relaxed);
        if first >= self.limit {
            return None;
        }
        let n = batch.min((self.limit - first) as usize);
        let due = (self.rate > 0)
            .then(|| self.start + Duration::from_secs_f64(first as f64 / self.rate as f64));
        if let (Some(d), Some(end)) = (due, self.send_until)
            && d >= end
        {
            return None;
        }
        Some(Claim { first, n, due })
    }

    pub(super) fn us(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.start).as_micros() as u64
    }
}

// === impl Tally ===

/// Counters read by the progress line without taking the tally lock.
#[derive(Debug, Default)]
pub(crate) struct Live {
    pub offered: AtomicU64,
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    pub terminal: AtomicU64,
    pub errors: AtomicU64,
}

/// One second of the run.
#[derive(Debug)]
pub(crate) struct Second {
    pub accepted: u64,
    pub terminal: u64,
    pub ack: Option<Histogram<u64>>,
    pub term: Option<Histogram<u64>>,
}

/// Everything measured.
#[derive(Debug)]
pub(crate) struct Tally {
    /// Per batch, µs.
    pub ack_us: Histogram<u64>,
    /// Per message, µs.
    pub term_us: Histogram<u64>,
    /// (first sequence number, send time µs) of each acknowledged batch,
    /// for the latency to the wire.
    pub batches: Vec<(u64, u64)>,
    pub accepted: u64,
    /// Accepted with `duplicate: true` (a client_ref the gateway had seen).
    pub duplicate_accepts: u64,
    pub rejected: BTreeMap<i32, u64>,
    /// Messages of batches that got no ack (connection lost, Error frame).
    pub lost: u64,
    /// Terminal events matched to a message of this run, by state value.
    pub terminal: BTreeMap<i32, u64>,
    pub submitted_events: u64,
    pub other_events: u64,
    /// Accepted, no terminal event yet: message id → (send time µs, seq).
    waiting: IdMap<(u64, u64)>,
    /// Terminal events not (yet) matched: message id → (time µs, state).
    early: IdMap<(u64, i32)>,
    /// Terminal events for an id already held in `early`.
    pub repeated_early: u64,
    pub errors: u64,
    pub error_samples: Vec<String>,
    pub series: Vec<Second>,
    /// Time of the last ack / last matched terminal event (µs).
    pub last_ack_us: u64,
    pub last_terminal_us: u64,
    /// How far behind its due time a batch went out, at most (µs).
    pub max_lag_us: u64,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            ack_us: histogram(),
            term_us: histogram(),
            batches: Vec::new(),
            accepted: 0,
            duplicate_accepts: 0,
            rejected: BTreeMap::new(),
            lost: 0,
            terminal: BTreeMap::new(),
            submitted_events: 0,
            other_events: 0,
            waiting: IdMap::default(),
            early: IdMap::default(),
            repeated_early: 0,
            errors: 0,
            error_samples: Vec::new(),
            series: Vec::new(),
            last_ack_us: 0,
            last_terminal_us: 0,
            max_lag_us: 0,
        }
    }

    fn second(&mut self, us: u64) -> &mut Second {
        let i = (us / 1_000_000) as usize;
        while self.series.len() <= i {
            self.series.push(Second {
                accepted: 0,
                terminal: 0,
                ack: None,
                term: None,
            });
        }
        &mut self.series[i]
    }

    fn terminal_matched(&mut self, sent_us: u64, at_us: u64, state: i32) {
        let lat = at_us.saturating_sub(sent_us).max(1);
        self.term_us.saturating_record(lat);
        *self.terminal.entry(state).or_default() += 1;
        self.last_terminal_us = self.last_terminal_us.max(at_us);
        let sec = self.second(at_us);
        sec.terminal += 1;
        sec.term
            .get_or_insert_with(second_histogram)
            .saturating_record(lat);
    }

    fn error(&mut self, e: &dyn std::fmt::Display) {
        self.errors += 1;
        if self.error_samples.len() < ERROR_SAMPLES {
            self.error_samples.push(e.to_string());
        }
    }

    /// Accepted messages still without a terminal event.
    pub fn still_waiting(&self) -> u64 {
        self.waiting.len() as u64
    }

    /// Up to `n` of them, as (message id, bench sequence number), lowest first.
    pub fn waiting_sample(&self, n: usize) -> Vec<(u64, u64)> {
        let mut v: Vec<(u64, u64)> = self
            .waiting
            .iter()
            .map(|(id, (_, seq))| (*id, *seq))
            .collect();
        v.sort_unstable();
        v.truncate(n);
        v
    }

    /// Terminal events that matched no message of this run: repeats
    /// (at-least-once redelivery) or another client's messages.
    pub fn unmatched_events(&self) -> u64 {
        self.early.len() as u64 + self.repeated_early
    }
}

/// The state shared by every task of a run.
#[derive(Debug)]
pub(crate) struct Shared {
    pub plan: Plan,
    pub live: Live,
    pub tally: Mutex<Tally>,
}

impl Shared {
    pub fn new(plan: Plan) -> Shared {
        Shared {
            plan,
            live: Live::default(),
            tally: Mutex::new(Tally::new()),
        }
    }

    pub(super) fn on_ack(&self, first_seq: u64, sent_us: u64, ack: &pb::BatchAck) {
        let now_us = self.plan.us(Instant::now());
        let lat = now_us.saturating_sub(sent_us).max(1);
        let mut accepted = 0u64;
        let mut rejected = 0u64;
        let mut t = self.tally.lock();
        t.ack_us.saturating_record(lat);
        t.batches.push((first_seq, sent_us));
        t.last_ack_us = t.last_ack_us.max(now_us);
        for (i, r) in ack.results.iter().enumerate() {
            if r.reason == pb::RejectReason::RejectNone as i32 {
                accepted += 1;
                if r.duplicate {
                    t.duplicate_accepts += 1;
                }
                match t.early.remove(&r.message_id) {
                    Some((at_us, state)) => t.terminal_matched(sent_us, at_us, state),
                    None => {
                        t.waiting
                            .insert(r.message_id, (sent_us, first_seq + i as u64));
                    }
                }
            } else {
                rejected += 1;
                *t.rejected.entry(r.reason).or_default() += 1;
            }
        }
        t.accepted += accepted;
        let sec = t.second(now_us);
        sec.accepted += accepted;
        sec.ack
            .get_or_insert_with(second_histogram)
            .saturating_record(lat);
        let matched: u64 = t.terminal.values().sum();
        drop(t);
        self.live.accepted.fetch_add(accepted, Ordering::Relaxed);
        self.live.rejected.fetch_add(rejected, Ordering::Relaxed);
        self.live.terminal.store(matched, Ordering::Relaxed);
    }

    pub(super) fn on_events(&self, events: &[pb::Event]) {
        let now_us = self.plan.us(Instant::now());
        let mut t = self.tally.lock();
        for e in events {
            match &e.kind {
                Some(pb::event::Kind::Delivery(d))
                    if d.state == pb::DeliveryState::StateSubmitted as i32 =>
                {
                    t.submitted_events += 1;
                }
                Some(pb::event::Kind::Delivery(d)) => match t.waiting.remove(&d.message_id) {
                    Some((sent_us, _)) => t.terminal_matched(sent_us, now_us, d.state),
                    None => {
                        if t.early.insert(d.message_id, (now_us, d.state)).is_some() {
                            t.repeated_early += 1;
                        }
                    }
                },
                _ => t.other_events += 1,
            }
        }
        let matched: u64 = t.terminal.values().sum();
        drop(t);
        self.live.terminal.store(matched, Ordering::Relaxed);
    }

    pub(super) fn on_lost(&self, n: usize, e: &dyn std::fmt::Display) {
        let mut t = self.tally.lock();
        t.lost += n as u64;
        t.error(e);
        drop(t);
        self.live.errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn on_lag(&self, lag: Duration) {
        let us = lag.as_micros() as u64;
        let mut t = self.tally.lock();
        t.max_lag_us = t.max_lag_us.max(us);
    }

    /// True when every accepted message has its terminal event.
    pub fn settled(&self) -> bool {
        self.tally.lock().waiting.is_empty()
    }
}

// === connection tasks ===

/// Sends claimed batches on `client`, `pipeline` in flight, until the plan
/// runs out or the connection fails; then waits for the acks in flight.
pub(crate) async fn sender(shared: Arc<Shared>, client: Client) {
    let plan = &shared.plan;
    let max_batch = (client.hello.max_batch_messages.max(1) as usize).min(plan.batch);
    let mut inflight = FuturesOrdered::new();
    let mut next: Option<Claim> = None;
    let mut exhausted = false;
    let mut dead = false;
    loop {
        if plan.stop.is_cancelled() {
            next = None;
            exhausted = true;
        }
        if next.is_none() && !exhausted && !dead && inflight.len() < plan.pipeline {
            next = plan.claim(max_batch);
            exhausted = next.is_none();
        }
        if let Some(c) = next
            && inflight.len() < plan.pipeline
        {
            let now = Instant::now();
            if c.due.is_none_or(|d| d <= now) {
                next = None;
                if let Some(d) = c.due {
                    shared.on_lag(now - d);
                }
                let batch = plan.templates.batch(c.first, c.n);
                shared.live.offered.fetch_add(c.n as u64, Ordering::Relaxed);
                match client.send_batch(batch).await {
                    Ok(ack) => {
                        let sent_us = plan.us(Instant::now());
                        let (first, n) = (c.first, c.n);
                        inflight.push_back(async move { (first, sent_us, n, ack.await) });
                    }
                    Err(e) => {
                        shared.on_lost(c.n, &e);
                        dead = true;
                    }
                }
                continue;
            }
        }
        let sleep_until = next
            .and_then(|c| c.due)
            .filter(|_| inflight.len() < plan.pipeline);
        tokio::select! {
            Some((first, sent_us, n, r)) = inflight.next(), if !inflight.is_empty() => match r {
                Ok(ack) => shared.on_ack(first, sent_us, &ack),
                Err(e) => {
                    if matches!(e, ClientError::Closed | ClientError::Io(_)) {
                        dead = true;
                    }
                    shared.on_lost(n, &e);
                }
            },
            _ = tokio::time::sleep_until(sleep_until.unwrap_or_else(Instant::now)), if sleep_until.is_some() => {}
            _ = plan.stop.cancelled(), if next.is_some() => {}
            else => break,
        }
        if inflight.is_empty() && next.is_none() && (exhausted || dead) {
            break;
        }
    }
}

/// Reads events, tallies them and acknowledges them in batches, until the
/// connection closes or `done` is cancelled; then acknowledges what it holds
/// and pings, so the acks are processed before the connection goes.
pub(crate) async fn receiver(
    shared: Arc<Shared>,
    client: Client,
    mut events: Events,
    done: CancellationToken,
) {
    let mut buf = Vec::with_capacity(EVENT_CHUNK);
    let mut ids: Vec<u64> = Vec::with_capacity(ACK_BATCH);
    loop {
        tokio::select! {
            biased;
            n = events.recv_many(&mut buf, EVENT_CHUNK) => {
                if n == 0 {
                    break;
                }
                shared.on_events(&buf);
                ids.extend(buf.drain(..).map(|e| e.event_id));
                if ids.len() >= ACK_BATCH && client.ack(std::mem::take(&mut ids)).await.is_err() {
                    return;
                }
            }
            _ = tokio::time::sleep(ACK_LINGER), if !ids.is_empty() => {
                if client.ack(std::mem::take(&mut ids)).await.is_err() {
                    return;
                }
            }
            _ = done.cancelled() => break,
        }
    }
    if !ids.is_empty() && client.ack(ids).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), client.ping()).await;
}

/// Connects and subscribes one connection.
///
/// # Errors
/// The gateway refused the connection, the Hello or the Subscribe.
pub(crate) async fn connect(
    addr: &str,
    tenant: &str,
    token: &str,
) -> Result<(Client, Events), ClientError> {
    let (client, events) = Client::connect(addr, tenant, token).await?;
    client.subscribe(0).await?;
    Ok((client, events))
}
