//! Signed webhooks: each tenant's webhook endpoints receive its events
//! (delivery, inbound, opt-out — as configured) as JSON POSTs signed with
//! HMAC-SHA256 ([`sign`]), at least once.
//!
//! # Guarantees
//! - **Journaled until a 2xx.** The event hub gives every endpoint its own
//!   copy of an event, journaled with the endpoint's name
//!   ([`crate::events::Endpoint`]); a copy is acknowledged (in the journal)
//!   only when the endpoint answered 2xx to a request that carried it. A
//!   restart restores every copy not acknowledged, so none is lost; a
//!   request answered after the crash is sent again (receivers drop repeated
//!   `id`s).
//! - **Independent destinations.** The tenant's event stream and each
//!   endpoint acknowledge on their own: a slow endpoint delays nobody else.
//! - **Retries** with exponential backoff from `retry_min` to `retry_max`,
//!   with jitter (each wait is drawn between half and all of the current
//!   step), at least the `Retry-After` the endpoint asked for (capped at
//!   `retry_max`). Every non-2xx answer, and every request without an
//!   answer, is retried; a 3xx is not followed.
//! - **Dead letters.** A batch still failing `dead_letter_after` after its
//!   oldest event was created stops being retried and waits, journaled, in
//!   the endpoint's dead-letter list (`sluice_webhook_dead_letters`), until
//!   an operator replays it (`POST /admin/webhooks/{tenant}/{endpoint}/replay`).
//!   After a restart a dead-lettered event is tried once more, then goes
//!   back to the list if it still fails.
//! - **Limits.** Per endpoint: `concurrency` senders (each one keep-alive
//!   connection, one request at a time), at most `rate` requests a second
//!   across them, up to `batch` events per request.
//! - **Reloads.** An endpoint a reload changes gets new senders on the same
//!   queue, and the old ones retire: each finishes the request it is in
//!   and puts back what it holds ([`Webhooks::start_prepared`]); one
//!   removed has its senders retired the same way ([`Webhooks::remove`]).

pub mod client;
pub mod json;
pub mod sign;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::events::{
    Destination, Endpoint, EndpointCounts, EventEncoder, EventHub, EventKinds, TenantSettings,
};
use crate::journal::PendingEvent;
use crate::model::{LogSafe, Secret, now_ms};
use crate::settings::{TenantConfig, WebhookConfig, WebhookEvent};
use crate::shaping::pace::Pace;
use client::{Answer, Poster, Target};

const TARGET: &str = "sluice::webhooks";

/// The kinds of event a configured endpoint takes, as the hub counts them.
pub fn kinds(cfg: &WebhookConfig) -> EventKinds {
    EventKinds {
        delivery: cfg.events.contains(&WebhookEvent::Delivery),
        inbound: cfg.events.contains(&WebhookEvent::Inbound),
        opt: cfg.events.contains(&WebhookEvent::OptOut),
        click: cfg.events.contains(&WebhookEvent::Click),
    }
}

/// Where `t`'s events go as its webhook settings say: its stream on or
/// off, and its endpoints with the kinds of event each takes.
pub fn destinations(t: &TenantConfig) -> TenantSettings {
    TenantSettings {
        stream: t.stream_events,
        endpoints: t.webhooks.iter().map(destination).collect(),
    }
}

/// The destination endpoint `w` is in the event hub: its name, the kinds
/// of event it takes, JSON copies.
pub fn destination(w: &WebhookConfig) -> Destination {
    let encoder: Arc<dyn EventEncoder> = Arc::new(json::JsonEvents);
    Destination {
        name: w.name.as_str().into(),
        kinds: kinds(w),
        encoder,
    }
}

/// How one endpoint is sent to.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Senders (connections) at once.
    pub concurrency: u32,
    /// Most requests a second (0: no limit).
    pub rate: f64,
    /// Most events a request.
    pub batch: usize,
    /// Deadline of one request.
    pub timeout: Duration,
    /// First retry wait.
    pub retry_min: Duration,
    /// Longest retry wait.
    pub retry_max: Duration,
    /// Age at which a failing batch is dead-lettered.
    pub dead_letter_after: Duration,
}

impl From<&WebhookConfig> for Settings {
    fn from(w: &WebhookConfig) -> Settings {
        Settings {
            concurrency: w.concurrency.max(1),
            rate: w.rate,
            batch: w.batch.max(1) as usize,
            timeout: w.timeout,
            retry_min: w.retry_min,
            retry_max: w.retry_max.max(w.retry_min),
            dead_letter_after: w.dead_letter_after,
        }
    }
}

/// One endpoint's senders' shared state.
#[derive(Debug)]
struct Sender {
    endpoint: Arc<Endpoint>,
    target: Target,
    secret: Secret,
    settings: Settings,
    pace: Option<Mutex<Pace>>,
    /// True once a reload replaced or removed it: its senders finish the
    /// request they are in, put back what they hold and end.
    retired: watch::Sender<bool>,
}

/// What ends a sender: the gateway stopping, or its endpoint replaced or
/// removed by a reload.
#[derive(Debug, Clone)]
struct Stop {
    shutdown: watch::Receiver<bool>,
    retired: watch::Receiver<bool>,
}

impl Stop {
    fn now(&self) -> bool {
        *self.shutdown.borrow() || *self.retired.borrow()
    }

    /// Resolves once it is time to stop (at once when a side is gone).
    async fn wait(&mut self) {
        tokio::select! {
            _ = self.shutdown.wait_for(|s| *s) => {}
            _ = self.retired.wait_for(|r| *r) => {}
        }
    }
}

/// What the admin API shows of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointView {
    /// Tenant.
    pub tenant: Arc<str>,
    /// Endpoint name.
    pub name: Arc<str>,
    /// `host:port` it posts to.
    pub addr: String,
    /// Events held, by state.
    pub counts: EndpointCounts,
}

/// Where endpoints post to, ready before a reload adds them
/// ([`Webhooks::prepare`]).
#[derive(Debug)]
pub struct Prepared {
    targets: Vec<(WebhookConfig, Target)>,
}

/// Every webhook endpoint's senders.
#[derive(Debug, Default)]
pub struct Webhooks {
    /// Changed by a reload: grows with a tenant or endpoint added, an
    /// endpoint changed has its sender replaced, one removed its taken out.
    senders: parking_lot::RwLock<Vec<Arc<Sender>>>,
}

impl Webhooks {
    /// Prepares the senders of the hub's endpoints from the tenants'
    /// configuration (nothing runs until [`Webhooks::start`]).
    ///
    /// # Errors
    /// An endpoint's URL or CA file is unusable.
    pub fn new(hub: &EventHub, tenants: &[TenantConfig]) -> anyhow::Result<Webhooks> {
        Ok(Webhooks {
            senders: parking_lot::RwLock::new(senders_of(hub.endpoints(), tenants, target_of)?),
        })
    }

    /// Starts every endpoint's senders; they stop when `shutdown` turns
    /// true (a batch in flight goes back to its queue, still journaled).
    pub fn start(&self, tasks: &mut tokio::task::JoinSet<()>, shutdown: &watch::Receiver<bool>) {
        for s in self.senders.read().iter() {
            s.start(tasks, shutdown);
        }
    }

    /// Where `webhooks` post to (their URLs and CA files read), before a
    /// reload adds them: what can fail is done before anything changes.
    ///
    /// # Errors
    /// The first unusable endpoint.
    pub fn prepare(webhooks: &[WebhookConfig]) -> anyhow::Result<Prepared> {
        let targets = webhooks
            .iter()
            .map(|w| Ok((w.clone(), target_of(w)?)))
            .collect::<anyhow::Result<_>>()?;
        Ok(Prepared { targets })
    }

    /// Starts the senders of `tenant`'s endpoints that a reload added to
    /// `hub` or changed, to the targets [`Webhooks::prepare`] made (an
    /// endpoint the hub does not have is left out). A changed endpoint's
    /// senders retire ([`Webhooks::remove`]) as the new ones start on the
    /// same queue: nothing it holds is lost, and a request in flight is
    /// answered under the old settings.
    pub fn start_prepared(
        &self,
        hub: &EventHub,
        tenant: &str,
        prepared: Prepared,
        tasks: &mut tokio::task::JoinSet<()>,
        shutdown: &watch::Receiver<bool>,
    ) {
        let mut senders = self.senders.write();
        for (cfg, target) in prepared.targets {
            let Some(ep) = hub.endpoint(tenant, &cfg.name) else {
                continue;
            };
            let s = Arc::new(Sender::new(ep, &cfg, target));
            s.start(tasks, shutdown);
            match senders
                .iter_mut()
                .find(|old| Arc::ptr_eq(&old.endpoint, &s.endpoint))
            {
                Some(old) => std::mem::replace(old, s).retire(),
                None => senders.push(s),
            }
        }
    }

    /// Retires the senders of `tenant`'s endpoint `name` (a reload removed
    /// it): each finishes the request it is in and ends; what they held
    /// goes back to the endpoint's queue. False when there is none.
    pub fn remove(&self, tenant: &str, name: &str) -> bool {
        let mut senders = self.senders.write();
        let Some(i) = senders
            .iter()
            .position(|s| **s.endpoint.tenant() == *tenant && **s.endpoint.name() == *name)
        else {
            return false;
        };
        let s = senders.remove(i);
        s.retire();
        metrics::gauge!("sluice_webhook_dead_letters",
            "tenant" => tenant.to_owned(), "endpoint" => name.to_owned())
        .set(0.0);
        true
    }

    /// Every endpoint with what it holds (those of `tenant` only, when
    /// given).
    pub fn view(&self, tenant: Option<&str>) -> Vec<EndpointView> {
        self.senders
            .read()
            .iter()
            .filter(|s| tenant.is_none_or(|t| **s.endpoint.tenant() == *t))
            .map(|s| EndpointView {
                tenant: s.endpoint.tenant().clone(),
                name: s.endpoint.name().clone(),
                addr: s.target.addr(),
                counts: s.endpoint.counts(),
            })
            .collect()
    }

    /// Puts endpoint `name` of `tenant`'s dead letters back in its queue;
    /// how many, or `None` for an unknown endpoint.
    pub fn replay(&self, tenant: &str, name: &str) -> Option<usize> {
        let s = self
            .senders
            .read()
            .iter()
            .find(|s| **s.endpoint.tenant() == *tenant && **s.endpoint.name() == *name)?
            .clone();
        let n = s.endpoint.replay();
        s.dead_gauge();
        tracing::info!(target: TARGET, tenant = %LogSafe::new(tenant), endpoint = %LogSafe::new(name),
            events = n, "dead letters replayed");
        Some(n)
    }
}

/// The senders of `endpoints`, as `tenants` configure them (endpoints the
/// configuration does not name have none).
fn senders_of(
    endpoints: Vec<Arc<Endpoint>>,
    tenants: &[TenantConfig],
    mut target: impl FnMut(&WebhookConfig) -> anyhow::Result<Target>,
) -> anyhow::Result<Vec<Arc<Sender>>> {
    let mut senders = Vec::new();
    for ep in endpoints {
        let Some(cfg) = tenants
            .iter()
            .filter(|t| t.name == **ep.tenant())
            .flat_map(|t| &t.webhooks)
            .find(|w| w.name == **ep.name())
        else {
            continue;
        };
        senders.push(Arc::new(Sender::new(ep, cfg, target(cfg)?)));
    }
    Ok(senders)
}

/// Where `cfg` posts to, with its TLS.
fn target_of(cfg: &WebhookConfig) -> anyhow::Result<Target> {
    let tls = if cfg.url.starts_with("https://") {
        Some(Arc::new(
            crate::tls::client_config(cfg.ca_file.as_deref(), None)
                .map_err(|e| anyhow::anyhow!("webhook {:?}: TLS: {e}", cfg.name))?,
        ))
    } else {
        None
    };
    Target::parse(&cfg.url, tls).map_err(|e| anyhow::anyhow!("webhook {:?}: {e}", cfg.name))
}

impl Sender {
    /// The sender of endpoint `ep`, configured by `cfg`, posting to
    /// `target`.
    fn new(ep: Arc<Endpoint>, cfg: &WebhookConfig, target: Target) -> Sender {
        let settings = Settings::from(cfg);
        Sender {
            endpoint: ep,
            target,
            secret: cfg.secret.clone(),
            pace: Pace::new(settings.rate).map(Mutex::new),
            settings,
            retired: watch::Sender::new(false),
        }
    }

    fn start(
        self: &Arc<Self>,
        tasks: &mut tokio::task::JoinSet<()>,
        shutdown: &watch::Receiver<bool>,
    ) {
        for _ in 0..self.settings.concurrency {
            let stop = Stop {
                shutdown: shutdown.clone(),
                retired: self.retired.subscribe(),
            };
            let mut parked = shutdown.clone();
            let sender = self.clone();
            tasks.spawn(async move {
                sender.run(stop).await;
                // Retired by a reload, the task stays (without its sender)
                // until shutdown: a task of the gateway's set that ends
                // stops the gateway.
                let _ = parked.wait_for(|s| *s).await;
            });
        }
    }

    /// Its senders end (a reload replaced or removed its endpoint).
    fn retire(&self) {
        self.retired.send_replace(true);
    }

    /// One sender: takes a batch, posts it until a 2xx (or dead-letters
    /// it), and again.
    async fn run(self: Arc<Self>, mut stop: Stop) {
        let mut poster = Poster::new(self.target.clone(), self.settings.timeout);
        loop {
            if stop.now() {
                return;
            }
            tokio::select! {
                biased;
                _ = stop.wait() => return,
                _ = self.endpoint.wait() => {}
            }
            let batch = self.endpoint.take(self.settings.batch);
            if batch.is_empty() {
                continue;
            }
            if stop.now() {
                self.endpoint.untake(&batch);
                return;
            }
            if !self.deliver(&mut poster, &batch, &mut stop).await {
                self.endpoint.untake(&batch);
                return;
            }
        }
    }

    /// Posts `batch` until it is acknowledged or dead-lettered (true), or
    /// it is time to stop (false).
    async fn deliver(
        &self,
        poster: &mut Poster,
        batch: &[Arc<PendingEvent>],
        stop: &mut Stop,
    ) -> bool {
        let body = json::body(batch.iter().map(|e| &e.payload[..]));
        let mut step = self.settings.retry_min;
        loop {
            // Retired (or stopping) between tries: nothing more goes out
            // under these settings.
            if stop.now() || !self.paced(stop).await {
                return false;
            }
            let t = now_ms() / 1000;
            let signature = sign::signature(self.secret.expose().as_bytes(), t, &body);
            let answer = poster.post(Bytes::clone(&body), &signature).await;
            let (outcome, retry_after) = match &answer {
                Answer::Status(s, _) if (200..300).contains(s) => {
                    self.endpoint.ack(batch);
                    self.count("ok", batch.len());
                    return true;
                }
                Answer::Status(s, ra) => {
                    tracing::debug!(target: TARGET, endpoint = %self.label(), status = s, "webhook refused");
                    ("refused", ra.map(Duration::from_secs))
                }
                Answer::Failed(e) => {
                    tracing::debug!(target: TARGET, endpoint = %self.label(), error = %LogSafe::new(e), "webhook failed");
                    ("failed", None)
                }
            };
            self.count(outcome, 0);
            let since = batch
                .iter()
                .map(|e| self.endpoint.since_ms(e))
                .min()
                .unwrap_or(0);
            let dead_at = since.saturating_add(self.settings.dead_letter_after.as_millis() as u64);
            let now = now_ms();
            if now >= dead_at {
                self.endpoint.dead_letter(batch);
                metrics::counter!("sluice_webhook_dead_lettered_total",
                    "tenant" => self.endpoint.tenant().to_string(), "endpoint" => self.endpoint.name().to_string())
                .increment(batch.len() as u64);
                self.dead_gauge();
                tracing::warn!(target: TARGET, endpoint = %self.label(), events = batch.len(),
                    last = ?answer, "webhook events dead-lettered");
                return true;
            }
            // Full jitter over the upper half of the step, at least what the
            // endpoint asked for, never past the dead-letter moment.
            let jittered = step.mul_f64(0.5 + rand::random::<f64>() * 0.5);
            let wait = retry_after
                .map_or(jittered, |ra| jittered.max(ra.min(self.settings.retry_max)))
                .min(Duration::from_millis(dead_at - now));
            step = (step * 2).min(self.settings.retry_max);
            tokio::select! {
                biased;
                _ = stop.wait() => return false,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Waits for the endpoint's rate (false: time to stop).
    async fn paced(&self, stop: &mut Stop) -> bool {
        let Some(pace) = &self.pace else {
            return true;
        };
        loop {
            let now = Instant::now();
            let at = {
                let mut p = pace.lock();
                let at = p.ready_at(now);
                if at <= now {
                    p.commit(now, 1);
                    return true;
                }
                at
            };
            tokio::select! {
                biased;
                _ = stop.wait() => return false,
                _ = tokio::time::sleep_until(at) => {}
            }
        }
    }

    fn count(&self, outcome: &'static str, delivered: usize) {
        let tenant = self.endpoint.tenant().to_string();
        let endpoint = self.endpoint.name().to_string();
        metrics::counter!("sluice_webhook_requests_total",
            "tenant" => tenant.clone(), "endpoint" => endpoint.clone(), "outcome" => outcome)
        .increment(1);
        if delivered > 0 {
            metrics::counter!("sluice_webhook_events_delivered_total",
                "tenant" => tenant, "endpoint" => endpoint)
            .increment(delivered as u64);
        }
    }

    fn dead_gauge(&self) {
        metrics::gauge!("sluice_webhook_dead_letters",
            "tenant" => self.endpoint.tenant().to_string(), "endpoint" => self.endpoint.name().to_string())
        .set(self.endpoint.counts().dead as f64);
    }

    fn label(&self) -> String {
        format!(
            "{}/{}",
            LogSafe::new(self.endpoint.tenant()),
            LogSafe::new(self.endpoint.name())
        )
    }
}

#[cfg(test)]
mod tests;
