//! An MMS carrier reached over MM7: builds the SubmitReq of a message (its
//! text and media, the media fitted to the carrier's size limit, the whole
//! MIME body counted), submits it through the pooled HTTP client, and
//! classifies the answer ([`Attempt`]): accepted, refused for now or for
//! good, never sent (unreachable), sent but unanswered (it may have been
//! accepted), or credentials refused.
//!
//! It also keeps what the rest of the gateway needs to know about the MMSC
//! between requests: whether it is down (unreachable, or refusing our
//! credentials) with the backoff of the next try ([`Mm7Carrier::mark_down`],
//! [`Mm7Carrier::begin_probe`]), and which requests are in flight
//! ([`InFlight`]: a delivery report can overtake the answer naming its
//! MessageID).
//!
//! It decides which messages may share one SubmitReq ([`requests`]: the
//! same content to different numbers, up to the MMSC's `max_recipients`)
//! and builds that request with every recipient.
//!
//! It owns what MM7 statuses mean for a message: [`mm_status_outcome`]
//! maps a delivery report's MMStatus to its final state. [`StoreSource`]
//! fetches its media from the media store, fitted.
//!
//! Retrying, pausing, adaptive slow-down and fallback to SMS are the
//! dispatcher's (`schedule::mm7`); delivery reports arrive through the MM7
//! receiver and are correlated by `receipts`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::mm7::Mm7Error;
use crate::mm7::client::{ClientConfig, Mm7Client, SubmitOutcome};
use crate::mm7::soap::{Address, Expiry, MediaPart, MmStatus, SubmitReq};
use crate::mm7::status::Class;
use crate::mm7::{Credentials, Version};
use crate::model::{DeliveryState, Message, Sender, now_ms};
use crate::settings::MmscConfig;

/// First wait before an unreachable MMSC is tried again.
const UNREACHABLE_RETRY_MIN: Duration = Duration::from_secs(1);
/// Longest wait between tries of an unreachable MMSC.
const UNREACHABLE_RETRY_MAX: Duration = Duration::from_secs(30);
/// Longest peer-supplied text (an MMSC's status text) kept in a reason.
const MAX_PEER_TEXT: usize = 160;

/// Where the carrier gets a message's media, fitted to a byte budget.
pub trait MediaSource: Send + Sync + 'static {
    /// `(content_type, bytes)` of `id` for `tenant`, no larger than
    /// `max_bytes` (re-encoded or scaled if needed); `Err` with a readable
    /// reason when it is unknown or cannot fit.
    fn fetch(
        &self,
        tenant: &str,
        id: &str,
        max_bytes: usize,
    ) -> Result<(String, Bytes), MediaUnavailable>;
}

/// Why a message's media cannot go in its MM7 request.
#[derive(Debug, thiserror::Error)]
pub enum MediaUnavailable {
    /// The tenant has no such media (or it cannot be read).
    #[error("media {id}: {source}")]
    Unknown {
        /// The media id.
        id: String,
        /// Why.
        #[source]
        source: crate::media::MediaError,
    },
    /// It cannot be made to fit the carrier's size limit.
    #[error("media {id} does not fit the carrier's limit: {source}")]
    DoesNotFit {
        /// The media id.
        id: String,
        /// Why.
        #[source]
        source: crate::media::MediaError,
    },
}

/// What one submit attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    /// The MMSC accepted it under `message_id`: every recipient, or (a
    /// `1100 Partial success`) all but those `partial` names.
    Accepted {
        /// `MessageID`, the key of the delivery reports.
        message_id: String,
        /// A partial success: the recipients it did not take.
        partial: Option<NotTaken>,
    },
    /// The MMSC answered that it cannot take it now (4006, 3000, HTTP
    /// 503...): try again later.
    Temporary {
        /// Readable reason.
        reason: String,
        /// MM7 status code (0 when the answer had none).
        code: u32,
    },
    /// Refused for good (2xxx, 3xxx...), or it cannot be made to fit.
    Permanent {
        /// Readable reason.
        reason: String,
        /// MM7 status code (0 when none).
        code: u32,
    },
    /// Nothing was sent: the MMSC could not be reached (connection refused
    /// or timed out, no connection ready before the deadline).
    Unreachable(String),
    /// The request left but no answer came (timeout, connection lost, HTTP
    /// 504 from a proxy): the MMSC may have accepted it, and sending it
    /// again could deliver it twice.
    Unanswered(String),
    /// HTTP 401/403: the MMSC refuses our credentials (or address), for
    /// every message, not just this one.
    Unauthorized {
        /// 401 or 403.
        http_status: u16,
    },
}

/// The recipients a `1100 Partial success` did not take: the numbers its
/// `Details` names (MM7 leaves the form of `Details` open; MMSCs list the
/// refused addresses there). A recipient it does not name was taken and
/// ends by its delivery report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotTaken {
    /// The digits of each number named.
    pub numbers: Vec<String>,
    /// Readable reason (status and details, capped).
    pub reason: String,
}

impl NotTaken {
    /// Whether the recipient `to` (any spelling: `+44…`, `44…`) is one of
    /// them.
    pub fn names(&self, to: &str) -> bool {
        let digits: String = to.chars().filter(char::is_ascii_digit).collect();
        self.numbers.contains(&digits)
    }

    /// The numbers a partial success's `details` names: every run of digits
    /// at least five long (a `+` or `tel:` before it is not part of it).
    fn of(details: &str) -> Vec<String> {
        details
            .split(|c: char| !c.is_ascii_digit())
            .filter(|d| d.len() >= 5)
            .map(str::to_owned)
            .collect()
    }
}

/// Why an MMSC takes no requests now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Down {
    /// Requests do not reach it, or get no answer.
    Unreachable(String),
    /// It refuses our credentials or address (HTTP 401 or 403).
    Unauthorized(u16),
}

impl std::fmt::Display for Down {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Down::Unreachable(why) => write!(f, "is unreachable ({why})"),
            Down::Unauthorized(status) => {
                write!(f, "refuses our credentials (HTTP {status})")
            }
        }
    }
}

/// What [`Mm7Carrier::mark_down`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// It was up (or down for another reason): now down.
    Down,
    /// A try (probe) failed again; the wait before the next one doubled.
    StillDown,
    /// Already known down (another request in flight failed too).
    Unchanged,
}

/// The MMSC's state between requests.
#[derive(Debug)]
struct DownState {
    why: Down,
    since: Instant,
    /// When the next try may start.
    retry_at: Instant,
    /// The current wait between tries.
    backoff: Duration,
    /// A try is in flight.
    probing: bool,
}

/// An MMSC and how to talk to it.
#[derive(Debug)]
pub struct Mm7Carrier {
    name: Arc<str>,
    /// How requests are made; a reload replaces it whole
    /// ([`Mm7Carrier::reconfigure`]), a request keeps the one it began with.
    profile: arc_swap::ArcSwap<Profile>,
    /// Bumped by each [`Mm7Carrier::reconfigure`], so that a refusal of
    /// the credentials replaced is not taken for one of the new.
    profile_generation: AtomicU64,
    media: Arc<dyn MediaSource>,
    down: Mutex<Option<DownState>>,
    in_flight: Arc<InFlight>,
}

/// What of an MMSC's configuration its requests are made with.
#[derive(Debug)]
struct Profile {
    client: Mm7Client,
    version: Version,
    vasp_id: Option<String>,
    vas_id: Option<String>,
    max_message_bytes: usize,
    media_encoding: crate::mm7::MediaEncoding,
    presentation: crate::mm7::Presentation,
    service: crate::settings::MmscServiceFields,
    timeout: Duration,
    failover_after: Duration,
    auth_retry: (Duration, Duration),
}

impl Profile {
    fn of(
        cfg: &MmscConfig,
        tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    ) -> anyhow::Result<Profile> {
        let credentials = match (&cfg.username, &cfg.password) {
            (Some(u), Some(p)) => Some(Credentials {
                username: u.clone(),
                password: p.expose().to_owned(),
            }),
            _ => None,
        };
        let client = Mm7Client::new(ClientConfig {
            url: cfg.url.clone(),
            credentials,
            request_timeout: cfg.timeout,
            max_message_size: Some(cfg.max_message_bytes),
            max_connections: cfg.connections.max(1),
            tls,
            ..ClientConfig::default()
        })?;
        Ok(Profile {
            client,
            version: cfg.version,
            vasp_id: cfg.vasp_id.clone(),
            vas_id: cfg.vas_id.clone(),
            max_message_bytes: cfg.max_message_bytes,
            media_encoding: cfg.media_encoding.into(),
            presentation: cfg.presentation.into(),
            service: cfg.service.clone(),
            timeout: cfg.timeout,
            failover_after: cfg.failover_after,
            auth_retry: (
                cfg.auth_retry_min,
                cfg.auth_retry_max.max(cfg.auth_retry_min),
            ),
        })
    }
}

/// The SubmitReqs in flight to one MMSC, so that a delivery report that
/// names no known MessageID can wait for the answers that may name it (an
/// MMSC can post a report before its SubmitRsp has been read).
#[derive(Debug)]
pub struct InFlight {
    next: AtomicU64,
    open: Mutex<BTreeSet<u64>>,
    /// Bumped whenever a request ends.
    ended: watch::Sender<u64>,
}

/// One request in flight; ends when dropped (after its answer was
/// recorded).
#[derive(Debug)]
pub struct Ticket {
    seq: u64,
    of: Arc<InFlight>,
}

impl InFlight {
    fn new() -> InFlight {
        InFlight {
            next: AtomicU64::new(0),
            open: Mutex::new(BTreeSet::new()),
            ended: watch::Sender::new(0),
        }
    }

    /// A request starts.
    pub fn begin(self: &Arc<Self>) -> Ticket {
        let seq = self.next.fetch_add(1, Ordering::AcqRel);
        self.open.lock().insert(seq);
        Ticket {
            seq,
            of: self.clone(),
        }
    }

    /// A mark: every request begun before now has a ticket below it.
    pub fn mark(&self) -> u64 {
        self.next.load(Ordering::Acquire)
    }

    /// Requests in flight.
    pub fn len(&self) -> usize {
        self.open.lock().len()
    }

    /// True when nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resolves once every request begun before `mark` has ended.
    pub async fn ended_before(&self, mark: u64) {
        let mut ended = self.ended.subscribe();
        loop {
            if self.open.lock().first().is_none_or(|&s| s >= mark) {
                return;
            }
            if ended.changed().await.is_err() {
                return;
            }
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.of.open.lock().remove(&self.seq);
        self.of.ended.send_modify(|n| *n = n.wrapping_add(1));
    }
}

impl std::fmt::Debug for dyn MediaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MediaSource")
    }
}

/// MIME headers and boundaries each media part adds (its SMIL slide
/// included), generously.
const PART_OVERHEAD: usize = 384;

impl Mm7Carrier {
    /// A carrier from its configuration; `tls` is the client configuration
    /// for `https://` MMSCs (the `tls.ca_file` roots), `None` for the
    /// system's roots.
    ///
    /// # Errors
    /// An invalid URL or version.
    pub fn new(
        cfg: &MmscConfig,
        media: Arc<dyn MediaSource>,
        tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    ) -> anyhow::Result<Mm7Carrier> {
        Ok(Mm7Carrier {
            name: cfg.name.as_str().into(),
            profile: arc_swap::ArcSwap::from_pointee(Profile::of(cfg, tls)?),
            profile_generation: AtomicU64::new(0),
            media,
            down: Mutex::new(None),
            in_flight: Arc::new(InFlight::new()),
        })
    }

    /// Takes `cfg`'s URL, credentials, addressing, version, size limit,
    /// encodings, service fields, timeout, `failover_after` and
    /// `auth_retry_*` (a reload): requests begun from now on use them, one
    /// in flight ends under the old ones (a refusal of the old credentials
    /// then does not count: [`Mm7Carrier::profile_generation`]). With
    /// `retry_now` (its URL or credentials changed, which may be the fix),
    /// one that is down may try again at once.
    ///
    /// # Errors
    /// An invalid URL: nothing changes.
    pub fn reconfigure(
        &self,
        cfg: &MmscConfig,
        tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
        retry_now: bool,
    ) -> anyhow::Result<()> {
        self.profile.store(Arc::new(Profile::of(cfg, tls)?));
        self.profile_generation.fetch_add(1, Ordering::AcqRel);
        if retry_now && let Some(d) = &mut *self.down.lock() {
            d.retry_at = Instant::now();
            d.backoff = Duration::ZERO;
        }
        Ok(())
    }

    /// How many times a reload has replaced how its requests are made:
    /// read before a request, compared after its answer.
    pub fn profile_generation(&self) -> u64 {
        self.profile_generation.load(Ordering::Acquire)
    }

    /// Carrier name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The request deadline.
    pub fn timeout(&self) -> Duration {
        self.profile.load().timeout
    }

    /// Down this long, its queue moves to the next MMSC of its route.
    pub fn failover_after(&self) -> Duration {
        self.profile.load().failover_after
    }

    /// Its requests in flight.
    pub fn in_flight(&self) -> &Arc<InFlight> {
        &self.in_flight
    }

    // === health ===

    /// Why it takes no requests now; `None` while up.
    pub fn down(&self) -> Option<Down> {
        self.down.lock().as_ref().map(|d| d.why.clone())
    }

    /// How long it has been down; `None` while up.
    pub fn down_for(&self) -> Option<Duration> {
        self.down.lock().as_ref().map(|d| d.since.elapsed())
    }

    /// True while it refuses our credentials.
    pub fn auth_failed(&self) -> bool {
        matches!(self.down(), Some(Down::Unauthorized(_)))
    }

    /// True when new traffic may be routed to it: up, or down with a try
    /// due that nobody has started.
    pub fn takes_traffic(&self) -> bool {
        match &*self.down.lock() {
            None => true,
            Some(d) => !d.probing && d.retry_at <= Instant::now(),
        }
    }

    /// While down with no try running: when the next try may start.
    pub fn probe_at(&self) -> Option<Instant> {
        self.down
            .lock()
            .as_ref()
            .filter(|d| !d.probing)
            .map(|d| d.retry_at)
    }

    /// Starts a try while down: true when one is due and none runs (the
    /// caller then sends one request and reports its outcome with
    /// [`Mm7Carrier::mark_up`] or [`Mm7Carrier::mark_down`], or gives the
    /// try back with [`Mm7Carrier::end_probe`]).
    pub fn begin_probe(&self) -> bool {
        match &mut *self.down.lock() {
            Some(d) if !d.probing && d.retry_at <= Instant::now() => {
                d.probing = true;
                true
            }
            _ => false,
        }
    }

    /// Gives back a try that sent nothing (the next may start at once).
    pub fn end_probe(&self) {
        if let Some(d) = &mut *self.down.lock() {
            d.probing = false;
        }
    }

    /// It answered: up again. Returns why it was down and for how long, if
    /// it was.
    pub fn mark_up(&self) -> Option<(Down, Duration)> {
        let mut down = self.down.lock();
        let was = down.take()?;
        Some((was.why, was.since.elapsed()))
    }

    /// It did not take a request for `why`; `probe` when that request was
    /// the try started by [`Mm7Carrier::begin_probe`]. The next try waits
    /// (1 s doubling to 30 s when unreachable; `auth_retry_min` doubling to
    /// `auth_retry_max` for credentials); the wait doubles each time a try
    /// fails the same way. Refused credentials outrank unreachability.
    /// Returns what changed and the wait before the next try.
    pub fn mark_down(&self, why: Down, probe: bool) -> (Transition, Duration) {
        let (min, max) = match why {
            Down::Unreachable(_) => (UNREACHABLE_RETRY_MIN, UNREACHABLE_RETRY_MAX),
            Down::Unauthorized(_) => self.profile.load().auth_retry,
        };
        let now = Instant::now();
        let mut down = self.down.lock();
        let Some(d) = &mut *down else {
            *down = Some(DownState {
                why,
                since: now,
                retry_at: now + min,
                backoff: min,
                probing: false,
            });
            return (Transition::Down, min);
        };
        let same = std::mem::discriminant(&d.why) == std::mem::discriminant(&why);
        if probe {
            d.probing = false;
            d.backoff = if same {
                (d.backoff * 2).clamp(min, max)
            } else {
                min
            };
            d.retry_at = now + d.backoff;
            d.why = why;
            let t = if same {
                Transition::StillDown
            } else {
                Transition::Down
            };
            return (t, d.backoff);
        }
        // A request sent before it went down failed too.
        if !same && matches!(why, Down::Unauthorized(_)) {
            d.why = why;
            d.backoff = min;
            d.retry_at = now + min;
            return (Transition::Down, min);
        }
        (
            Transition::Unchanged,
            d.retry_at.saturating_duration_since(now),
        )
    }

    /// Builds and submits one request to every message of `group` (one
    /// message, or several of the same content from [`requests`]) once.
    pub async fn submit(&self, group: &[Arc<Message>], attempt: u32) -> Attempt {
        let Some(m) = group.first() else {
            return Attempt::Permanent {
                reason: "no recipient".into(),
                code: 0,
            };
        };
        let sender = match &m.from {
            Sender::ShortCode(s) => Address::ShortCode(s.to_string()),
            Sender::LongCode(n) => Address::Number(n.to_string()),
            Sender::Alphanumeric(s) => Address::ShortCode(s.to_string()),
        };
        let recipients: Vec<Address> = group
            .iter()
            .map(|m| Address::Number(m.to.to_string()))
            .collect();
        let transaction_id = format!("{}-{attempt}", m.id);
        // The shortest validity of the group (they differ by a minute at most).
        let expires_at_ms = group.iter().map(|m| m.expires_at_ms).min().unwrap_or(0);
        let remaining = Duration::from_millis(expires_at_ms.saturating_sub(now_ms()));
        let own = m.mms.as_deref();
        let p = self.profile.load_full();
        let bare = SubmitReq {
            transaction_id: &transaction_id,
            version: p.version,
            vasp_id: p.vasp_id.as_deref(),
            vas_id: p.vas_id.as_deref(),
            sender: Some(&sender),
            recipients: &recipients,
            // Several recipients of one campaign message: none sees the
            // others, and a reply goes to the sender alone.
            recipient_field: if recipients.len() > 1 {
                crate::mm7::RecipientField::Bcc
            } else {
                crate::mm7::RecipientField::To
            },
            expiry: Some(Expiry::Relative(remaining.max(Duration::from_secs(60)))),
            delivery_report: true,
            subject: m.subject(),
            text: &m.text,
            media_encoding: p.media_encoding,
            presentation: p.presentation,
            // The message's own fields over the MMSC's defaults.
            service_code: own
                .and_then(|f| f.service_code.as_deref())
                .or(p.service.service_code.as_deref()),
            linked_id: own.and_then(|f| f.linked_id.as_deref()),
            message_class: own
                .and_then(|f| f.message_class)
                .or(p.service.message_class)
                .map(Into::into),
            priority: own
                .and_then(|f| f.priority)
                .or(p.service.priority)
                .map(Into::into),
            read_reply: own.and_then(|f| f.read_reply).or(p.service.read_reply),
            charged_party: p.service.charged_party.map(Into::into),
            reply_charging: p.service.reply_charging(),
            distribution_indicator: own
                .and_then(|f| f.distribution_indicator)
                .or(p.service.distribution_indicator),
            earliest_delivery: own.filter(|f| f.earliest_delivery_ms > 0).map(|f| {
                Expiry::Absolute(UNIX_EPOCH + Duration::from_millis(f.earliest_delivery_ms))
            }),
            ..SubmitReq::default()
        };
        // What the envelope and text cost; the media share the rest.
        let overhead = bare.encode().body.len() + PART_OVERHEAD * m.media.len();
        let Some(budget) = p.max_message_bytes.checked_sub(overhead) else {
            return Attempt::Permanent {
                reason: "message text alone exceeds the carrier's MMS size limit".into(),
                code: 0,
            };
        };
        let per_media = match p.media_encoding {
            crate::mm7::MediaEncoding::Binary => budget / m.media.len().max(1),
            // Fitted to what its base64 lines may take.
            crate::mm7::MediaEncoding::Base64 => {
                crate::mm7::base64::input_budget(budget / m.media.len().max(1))
            }
        };
        // Fetching may read a file or re-encode an image (up to a second or
        // two for a photo): off the async workers.
        let (source, tenant, ids) = (self.media.clone(), m.tenant.clone(), m.media.clone());
        let fetched = tokio::task::spawn_blocking(move || {
            ids.into_iter()
                .map(|id| source.fetch(&tenant, &id, per_media).map(|x| (id, x)))
                .collect::<Result<Vec<_>, MediaUnavailable>>()
        })
        .await;
        let fetched = match fetched {
            Ok(Ok(f)) => f,
            Ok(Err(e)) => {
                return Attempt::Permanent {
                    reason: e.to_string(),
                    code: 0,
                };
            }
            Err(e) => {
                return Attempt::Permanent {
                    reason: format!("media preparation failed: {e}"),
                    code: 0,
                };
            }
        };
        let parts: Vec<MediaPart<'_>> = fetched
            .iter()
            .map(|(id, (ct, bytes))| MediaPart {
                content_type: ct,
                content_id: id,
                bytes: bytes.clone(),
            })
            .collect();
        let req = SubmitReq {
            media: &parts,
            ..bare
        };
        let encoded = req.encode();
        if encoded.body.len() > p.max_message_bytes {
            return Attempt::Permanent {
                reason: format!(
                    "MMS of {} bytes exceeds the carrier's {} byte limit",
                    encoded.body.len(),
                    p.max_message_bytes
                ),
                code: 0,
            };
        }
        classify(p.client.submit_encoded(&encoded).await)
    }
}

/// Longest spread of validity among the messages of one request: the
/// request carries the shortest, so a message never waits at the MMSC
/// past its own validity and loses at most this much of it.
const SHARED_VALIDITY_SPREAD_MS: u64 = 60_000;

/// Whether `b` may go in the same SubmitReq as `a`: the same tenant (the
/// media are the tenant's), sender, text, media and MMS fields (the
/// subject among them), and validity within a minute. Recipients are
/// checked by [`requests`].
pub fn shares_request(a: &Message, b: &Message) -> bool {
    a.tenant == b.tenant
        && a.from == b.from
        && a.text == b.text
        && a.media == b.media
        && a.mms == b.mms
        && a.expires_at_ms.abs_diff(b.expires_at_ms) <= SHARED_VALIDITY_SPREAD_MS
}

/// Requests [`requests`] still looks to add to.
const OPEN_REQUESTS: usize = 16;

/// `batch` as requests of at most `max_recipients` messages each: messages
/// that [`shares_request`] with a request's first go in it, to numbers not
/// already in it (a number twice in one request could not tell its two
/// reports apart), in batch order.
pub fn requests(batch: Vec<Arc<Message>>, max_recipients: usize) -> Vec<Vec<Arc<Message>>> {
    let max = max_recipients.max(1);
    if max == 1 {
        return batch.into_iter().map(|m| vec![m]).collect();
    }
    let mut out: Vec<Vec<Arc<Message>>> = Vec::new();
    // Requests still open (below `max`), by index into `out`.
    let mut open: Vec<usize> = Vec::new();
    for m in batch {
        let joined = open.iter().position(|&i| {
            let r = &out[i];
            shares_request(&r[0], &m) && r.iter().all(|o| o.to != m.to)
        });
        match joined {
            Some(at) => {
                let i = open[at];
                out[i].push(m);
                if out[i].len() >= max {
                    // Keeps the others oldest first.
                    open.remove(at);
                }
            }
            None => {
                out.push(vec![m]);
                open.push(out.len() - 1);
                if open.len() > OPEN_REQUESTS {
                    // Personalised messages share nothing: look only at
                    // the latest requests (a batch stays linear).
                    open.remove(0);
                }
            }
        }
    }
    out
}

/// What an MMSC's answer (or its absence) means for the message.
pub fn classify(answer: Result<SubmitOutcome, Mm7Error>) -> Attempt {
    match answer {
        Ok(SubmitOutcome::Accepted { message_id, status }) => {
            let partial = (status.code == crate::mm7::status::PARTIAL_SUCCESS).then(|| {
                let details = status.details.as_deref().unwrap_or("");
                NotTaken {
                    numbers: NotTaken::of(details),
                    reason: format!(
                        "MMSC did not take this recipient: {} {} ({})",
                        status.code,
                        capped(&status.text),
                        capped(details)
                    ),
                }
            });
            Attempt::Accepted {
                message_id,
                partial,
            }
        }
        Ok(out @ SubmitOutcome::Refused { .. }) => {
            let class = out.class();
            let SubmitOutcome::Refused {
                status,
                http_status,
            } = out
            else {
                unreachable!("matched above")
            };
            let reason = format!(
                "MMSC refused: {} {} (HTTP {http_status})",
                status.code,
                capped(&status.text)
            );
            match class {
                Class::Temporary => Attempt::Temporary {
                    reason,
                    code: status.code,
                },
                _ => Attempt::Permanent {
                    reason,
                    code: status.code,
                },
            }
        }
        Err(Mm7Error::Unauthorized { status }) => Attempt::Unauthorized {
            http_status: status,
        },
        Err(e) if e.maybe_processed() => Attempt::Unanswered(capped(&format!("MMSC: {e}"))),
        Err(e @ (Mm7Error::Connect { .. } | Mm7Error::NotSent(_))) => {
            Attempt::Unreachable(capped(&format!("MMSC: {e}")))
        }
        Err(e) => match e.class() {
            // Without an MM7 status there is no code to report.
            Class::Permanent => Attempt::Permanent {
                reason: capped(&format!("MMSC: {e}")),
                code: 0,
            },
            _ => Attempt::Temporary {
                reason: capped(&format!("MMSC: {e}")),
                code: 0,
            },
        },
    }
}

/// A peer-supplied text cut to [`MAX_PEER_TEXT`] characters, control
/// characters escaped (it ends up in events and logs).
fn capped(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(MAX_PEER_TEXT)
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect();
    if s.chars().nth(MAX_PEER_TEXT).is_some() {
        out.push('…');
    }
    out
}

/// Media for MM7 carriers from the media store, fitted to the carrier's
/// size budget (fitting results are cached per media and limit by the
/// fitter).
#[derive(Debug)]
pub struct StoreSource {
    /// Where tenants' uploads are.
    pub store: Arc<crate::media::store::MediaStore>,
    /// Fits media over the budget.
    pub fitter: Arc<crate::media::fit::Fitter>,
}

impl MediaSource for StoreSource {
    fn fetch(
        &self,
        tenant: &str,
        id: &str,
        max_bytes: usize,
    ) -> Result<(String, Bytes), MediaUnavailable> {
        let media = self
            .store
            .get(tenant, id)
            .map_err(|source| MediaUnavailable::Unknown {
                id: id.to_owned(),
                source,
            })?;
        if media.bytes.len() <= max_bytes {
            return Ok((media.media_type.content_type().to_owned(), media.bytes));
        }
        let fitted =
            self.fitter
                .fit(&media, max_bytes)
                .map_err(|source| MediaUnavailable::DoesNotFit {
                    id: id.to_owned(),
                    source,
                })?;
        Ok((fitted.media_type.content_type().to_owned(), fitted.bytes))
    }
}

/// What an MMStatus in a delivery report means for the message; `None`
/// when not final (`Deferred`).
pub fn mm_status_outcome(s: &MmStatus) -> Option<(DeliveryState, &'static str)> {
    Some(match s {
        MmStatus::Retrieved => (DeliveryState::Delivered, "Retrieved"),
        MmStatus::Forwarded => (DeliveryState::Delivered, "Forwarded"),
        MmStatus::Rejected => (DeliveryState::Failed, "Rejected"),
        MmStatus::Unrecognised => (DeliveryState::Failed, "Unrecognised: recipient unknown"),
        MmStatus::DeliveryConditionNotMet => (DeliveryState::Failed, "DeliveryConditionNotMet"),
        MmStatus::Expired => (DeliveryState::Expired, "Expired: not retrieved in time"),
        MmStatus::Indeterminate => (DeliveryState::Unknown, "Indeterminate"),
        MmStatus::Deferred => return None,
        MmStatus::Other(_) => (DeliveryState::Unknown, "unrecognised MMStatus"),
    })
}

#[cfg(test)]
mod tests;
