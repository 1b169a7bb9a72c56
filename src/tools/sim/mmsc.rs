//! An MMSC simulator speaking real MM7 (SOAP over HTTP) on both sides: it
//! accepts `SubmitReq` from a VASP and calls the VASP back with
//! `DeliveryReportReq` and `DeliverReq` (MO), for tests, the demo and the
//! load tool.
//!
//! This file owns the simulator: its configuration ([`MmscConfig`], parsed
//! by clap), the HTTP listener, the validation and answering of submits,
//! the delayed delivery reports and MO injection, and exact counters
//! ([`Mmsc::stats`], [`Mmsc::texts`]). Encoding, decoding and HTTP plumbing
//! come from [`crate::mm7`].
//!
//! # What a SubmitReq goes through, in order
//! 1. Basic auth when `--username` is set (401 otherwise; not a submit).
//! 2. `--http-error` injection: the HTTP status alone, no body (counted in
//!    `http_errors`; not a submit).
//! 3. `--max-size`: a bigger HTTP body gets a Fault with `RSErrorRsp` 2004
//!    Multimedia content refused (TS 23.140 has no dedicated size code; 2004
//!    covers "content size … unacceptable").
//! 4. Decoding: malformed XML/MIME or a `Content href` naming no part gets
//!    a Fault with 4004 Validation error or 2004 (`malformed`).
//! 5. Version: a namespace that is not a supported version, another
//!    version than `--mm7-version`, or an `MM7Version` the namespace's schema
//!    does not list gets 4002 Unsupported version.
//! 6. No recipient, or more than `--max-recipients`: 4004 Validation
//!    error.
//! 7. `--fail-status` injection: a `SubmitRsp` with that status (a Fault
//!    with `RSErrorRsp` under `--fail-as-fault`).
//! 8. Recipients `--refuse-recipients` names are not taken (when that is
//!    all of them: `SubmitRsp` 2002 Address Error).
//! 9. Accepted: `SubmitRsp` 1000 (1100 Partial success naming the
//!    recipients not taken in `Details`) with a new `MessageID`; one
//!    `DeliveryReportReq` per recipient taken is posted to `--callback-url`
//!    after `--report-delay` when the submit asked for reports, in the
//!    submit's version.
//! 10. `--answer-delay` (or [`Mmsc::set_answer_delay`]): the answer waits
//!     that long after all of the above (a slow or hung MMSC); a VASP that
//!     gives up waiting has had its message taken anyway.
//!
//! Faults go with HTTP 500 (SOAP 1.1). Every answer after step 2 counts in
//! `submits == accepted + refused`; counters are updated before the answer
//! is written. The account (step 1) and the answer delay can be changed
//! while running ([`Mmsc::set_account`], [`Mmsc::set_answer_delay`]).
//!
//! # Decisions
//! - **One task per pending report** (sleep, post, retry): unlike the SMSC
//!   simulator's single timer, retries give reports different delays; tokio
//!   tasks are cheap and each stops on shutdown.
//! - **Reports are retried** up to `--report-retries` times,
//!   `--report-retry-delay` apart, when the VASP does not answer or answers
//!   a temporary status (3000 Server Error, 4006; as MMSCs retry); a
//!   permanent status (e.g. 2005 Message ID Not found) ends the report
//!   (`reports_refused`).
//! - **MO recipients** that are all digits and at most 8 long are sent as
//!   `ShortCode`, others as `Number`.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::mm7::server::{admit, empty, read_body, soap_response};
use crate::mm7::soap::{self, ReceivedSubmitReq};
use crate::mm7::status::{self, Class};
use crate::mm7::{
    Address, ClientConfig, Credentials, DeliverReq, DeliveryReportReq, ErrorRspKind, Fault,
    Message, Mm7Client, Mm7Error, MmStatus, Status, SubmitRsp, Version,
};

#[cfg(test)]
mod tests;

const TARGET: &str = "sluice::sim::mmsc";

/// How long [`Mmsc::run_until_shutdown`] waits for tasks to end.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Largest request body read (bigger ones get HTTP 413).
const HARD_BODY_LIMIT: usize = 32 << 20;
/// Deadline of a request body.
const BODY_TIMEOUT: Duration = Duration::from_secs(60);

/// First message id handed out.
const FIRST_MESSAGE_ID: u64 = 0x4D4D_0000;

// === impl MmscConfig ===

/// Configuration of the simulator; `sluice sim mmsc` can flatten it into
/// its arguments.
///
/// # Defaults
/// As the `default_value`s below: listen on `127.0.0.1:8007`, no auth, no
/// callback, reports after 1 s, every message retrieved, no injected
/// failures, no size limit, any supported version, 3 report retries.
#[derive(Clone, PartialEq, clap::Args)]
pub struct MmscConfig {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8007")]
    pub listen: SocketAddr,
    /// Username VASPs must send (basic auth); none = no auth.
    #[arg(long)]
    pub username: Option<String>,
    /// Password VASPs must send.
    #[arg(long)]
    pub password: Option<String>,
    /// Where DeliveryReportReq and DeliverReq go (the VASP's MM7 receiver).
    #[arg(long)]
    pub callback_url: Option<String>,
    /// Username sent to the callback URL (basic auth).
    #[arg(long)]
    pub callback_username: Option<String>,
    /// Password sent to the callback URL.
    #[arg(long)]
    pub callback_password: Option<String>,
    /// Delay between accepting a submit and posting its delivery reports.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub report_delay: Duration,
    /// Report mix, e.g. "retrieved=0.9,rejected=0.05,expired=0.05" (also
    /// indeterminate, forwarded, unrecognised, deferred; 'none' = no report).
    #[arg(long, default_value = "retrieved=1")]
    pub outcomes: ReportMix,
    /// Answer this MM7 status instead of accepting (e.g. 4006).
    #[arg(long)]
    pub fail_status: Option<u32>,
    /// Fraction of submits answered `--fail-status`.
    #[arg(long, default_value_t = 1.0)]
    pub fail_fraction: f64,
    /// Send `--fail-status` as a SOAP Fault with RSErrorRsp (HTTP 500)
    /// instead of a SubmitRsp.
    #[arg(long)]
    pub fail_as_fault: bool,
    /// Answer this HTTP status (no body) instead of processing (e.g. 503).
    #[arg(long)]
    pub http_error: Option<u16>,
    /// Fraction of requests answered `--http-error`.
    #[arg(long, default_value_t = 1.0)]
    pub http_error_fraction: f64,
    /// Refuse HTTP bodies bigger than this many bytes (status 2004).
    #[arg(long)]
    pub max_size: Option<usize>,
    /// The only MM7 version accepted (e.g. REL-6-MM7-1-4); none = any
    /// supported. Also the version of MO DeliverReq.
    #[arg(long = "mm7-version")]
    pub expect_version: Option<Version>,
    /// Attempts after the first to post a delivery report.
    #[arg(long, default_value_t = 3)]
    pub report_retries: u32,
    /// Pause between attempts to post a delivery report.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub report_retry_delay: Duration,
    /// Answer each submit only after this long (a slow or hung MMSC); the
    /// submit is processed (and accepted) before.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub answer_delay: Duration,
    /// Most recipients one SubmitReq may name (more: 4004 Validation
    /// error); none = any.
    #[arg(long)]
    pub max_recipients: Option<usize>,
    /// Recipients whose number (its digits) starts with this are not
    /// taken: a request naming others too gets 1100 Partial success with
    /// them in `Details`, one naming only them 2002 Address Error.
    #[arg(long)]
    pub refuse_recipients: Option<String>,
}

impl Default for MmscConfig {
    fn default() -> Self {
        MmscConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8007)),
            username: None,
            password: None,
            callback_url: None,
            callback_username: None,
            callback_password: None,
            report_delay: Duration::from_secs(1),
            outcomes: ReportMix::only(ReportOutcome::Retrieved),
            fail_status: None,
            fail_fraction: 1.0,
            fail_as_fault: false,
            http_error: None,
            http_error_fraction: 1.0,
            max_size: None,
            expect_version: None,
            report_retries: 3,
            report_retry_delay: Duration::from_secs(1),
            answer_delay: Duration::ZERO,
            max_recipients: None,
            refuse_recipients: None,
        }
    }
}

/// Passwords are never printed.
impl fmt::Debug for MmscConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hide = |p: &Option<String>| p.as_ref().map(|_| "***");
        f.debug_struct("MmscConfig")
            .field("listen", &self.listen)
            .field("username", &self.username)
            .field("password", &hide(&self.password))
            .field("callback_url", &self.callback_url)
            .field("callback_username", &self.callback_username)
            .field("callback_password", &hide(&self.callback_password))
            .field("report_delay", &self.report_delay)
            .field("outcomes", &self.outcomes)
            .field("fail_status", &self.fail_status)
            .field("fail_fraction", &self.fail_fraction)
            .field("fail_as_fault", &self.fail_as_fault)
            .field("http_error", &self.http_error)
            .field("http_error_fraction", &self.http_error_fraction)
            .field("max_size", &self.max_size)
            .field("expect_version", &self.expect_version)
            .field("report_retries", &self.report_retries)
            .field("report_retry_delay", &self.report_retry_delay)
            .field("answer_delay", &self.answer_delay)
            .field("max_recipients", &self.max_recipients)
            .field("refuse_recipients", &self.refuse_recipients)
            .finish()
    }
}

impl MmscConfig {
    fn credentials(&self) -> Option<Credentials> {
        self.username
            .as_ref()
            .map(|u| Credentials::new(u.clone(), self.password.clone().unwrap_or_default()))
    }

    fn callback_credentials(&self) -> Option<Credentials> {
        self.callback_username.as_ref().map(|u| {
            Credentials::new(
                u.clone(),
                self.callback_password.clone().unwrap_or_default(),
            )
        })
    }
}

// === impl ReportOutcome ===

/// What a delivery report says, and the `MMStatus` it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportOutcome {
    /// `Retrieved`.
    Retrieved,
    /// `Rejected`.
    Rejected,
    /// `Expired`.
    Expired,
    /// `Indeterminate`.
    Indeterminate,
    /// `Forwarded`.
    Forwarded,
    /// `Unrecognised` (written as `Indeterminate` before REL-6-MM7-1-1).
    Unrecognised,
    /// `Deferred` (written as `Indeterminate` before REL-6-MM7-1-1).
    Deferred,
    /// No report at all.
    None,
}

impl ReportOutcome {
    /// Every outcome.
    pub const ALL: [ReportOutcome; 8] = [
        ReportOutcome::Retrieved,
        ReportOutcome::Rejected,
        ReportOutcome::Expired,
        ReportOutcome::Indeterminate,
        ReportOutcome::Forwarded,
        ReportOutcome::Unrecognised,
        ReportOutcome::Deferred,
        ReportOutcome::None,
    ];

    /// The name used in `--outcomes`.
    pub const fn name(self) -> &'static str {
        match self {
            ReportOutcome::Retrieved => "retrieved",
            ReportOutcome::Rejected => "rejected",
            ReportOutcome::Expired => "expired",
            ReportOutcome::Indeterminate => "indeterminate",
            ReportOutcome::Forwarded => "forwarded",
            ReportOutcome::Unrecognised => "unrecognised",
            ReportOutcome::Deferred => "deferred",
            ReportOutcome::None => "none",
        }
    }

    /// The `MMStatus` (none for [`ReportOutcome::None`]).
    pub fn mm_status(self) -> Option<MmStatus> {
        Some(match self {
            ReportOutcome::Retrieved => MmStatus::Retrieved,
            ReportOutcome::Rejected => MmStatus::Rejected,
            ReportOutcome::Expired => MmStatus::Expired,
            ReportOutcome::Indeterminate => MmStatus::Indeterminate,
            ReportOutcome::Forwarded => MmStatus::Forwarded,
            ReportOutcome::Unrecognised => MmStatus::Unrecognised,
            ReportOutcome::Deferred => MmStatus::Deferred,
            ReportOutcome::None => return None,
        })
    }
}

/// Why a report mix does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReportMixError {
    /// A name that is not an outcome.
    #[error(
        "unknown outcome `{0}` (expected retrieved, rejected, expired, indeterminate, forwarded, unrecognised, deferred or none)"
    )]
    UnknownOutcome(String),
    /// A weight that is not a finite number >= 0.
    #[error("bad weight `{0}`: expected a number >= 0")]
    BadWeight(String),
    /// No outcome, or all weights zero.
    #[error("the outcome weights add up to zero")]
    Empty,
}

impl FromStr for ReportOutcome {
    type Err = ReportMixError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        ReportOutcome::ALL
            .into_iter()
            .find(|o| o.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| ReportMixError::UnknownOutcome(s.to_owned()))
    }
}

/// A weighted choice of [`ReportOutcome`]s, parsed from
/// `"retrieved=0.9,rejected=0.05,expired=0.05"` (weights are normalised; a
/// bare name weighs 1).
#[derive(Debug, Clone, PartialEq)]
pub struct ReportMix {
    weights: Vec<(ReportOutcome, f64)>,
}

impl ReportMix {
    /// Always `outcome`.
    pub fn only(outcome: ReportOutcome) -> ReportMix {
        ReportMix {
            weights: vec![(outcome, 1.0)],
        }
    }

    /// The outcome for a uniform draw `x` in `[0, 1)`.
    pub fn pick(&self, x: f64) -> ReportOutcome {
        let mut upto = 0.0;
        for (o, w) in &self.weights {
            upto += w;
            if x < upto {
                return *o;
            }
        }
        self.weights
            .last()
            .map_or(ReportOutcome::Retrieved, |(o, _)| *o)
    }

    fn draw(&self) -> ReportOutcome {
        match self.weights.as_slice() {
            [(only, _)] => *only,
            _ => self.pick(rand::random::<f64>()),
        }
    }
}

impl FromStr for ReportMix {
    type Err = ReportMixError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut weights: Vec<(ReportOutcome, f64)> = Vec::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (name, weight) = match item.split_once('=') {
                Some((n, w)) => {
                    let w = w.trim();
                    let weight: f64 = w
                        .parse()
                        .map_err(|_| ReportMixError::BadWeight(w.to_owned()))?;
                    if !weight.is_finite() || weight < 0.0 {
                        return Err(ReportMixError::BadWeight(w.to_owned()));
                    }
                    (n, weight)
                }
                None => (item, 1.0),
            };
            weights.push((name.parse()?, weight));
        }
        let total: f64 = weights.iter().map(|(_, w)| w).sum();
        if total <= 0.0 {
            return Err(ReportMixError::Empty);
        }
        Ok(ReportMix {
            weights: weights
                .into_iter()
                .filter(|(_, w)| *w > 0.0)
                .map(|(o, w)| (o, w / total))
                .collect(),
        })
    }
}

impl fmt::Display for ReportMix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (o, w)) in self.weights.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}={w}", o.name())?;
        }
        Ok(())
    }
}

// === stats ===

/// The simulator's counters, read with [`Mmsc::stats`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MmscStats {
    /// TCP connections accepted (keep-alive shows as fewer connections than
    /// requests).
    pub connections: u64,
    /// HTTP requests received.
    pub requests: u64,
    /// Requests refused with 401.
    pub unauthorized: u64,
    /// Requests answered with an injected HTTP error.
    pub http_errors: u64,
    /// Submits processed past auth and HTTP error injection
    /// (`accepted + refused`).
    pub submits: u64,
    /// SubmitReq accepted (each got a MessageID).
    pub accepted: u64,
    /// Recipients taken by accepted SubmitReqs.
    pub recipients: u64,
    /// Most recipients taken by one SubmitReq.
    pub most_recipients: u64,
    /// Submits processed whose answer is waiting out the answer delay now.
    pub answering: u64,
    /// Most submits waiting out the answer delay at once (how many requests
    /// a client keeps in flight).
    pub most_answering: u64,
    /// Recipients not taken (`--refuse-recipients`).
    pub recipients_refused: u64,
    /// Submits answered with any other status (malformed, size, version,
    /// injected).
    pub refused: u64,
    /// Submits whose body did not decode (part of `refused`).
    pub malformed: u64,
    /// Every MM7 status answered to a submit, by code.
    pub by_status: BTreeMap<u32, u64>,
    /// HTTP body bytes of submits.
    pub bytes_received: u64,
    /// Accepted (recipient, text) pairs seen before.
    pub duplicates: u64,
    /// DeliveryReportReq posted, retries included.
    pub reports_sent: u64,
    /// DeliveryReportReq answered 1xxx.
    pub reports_acked: u64,
    /// Reports answered with a permanent status (not retried).
    pub reports_refused: u64,
    /// Reports given up after the last retry.
    pub reports_failed: u64,
    /// DeliverReq (MO) posted.
    pub mo_sent: u64,
    /// DeliverReq answered 1xxx.
    pub mo_acked: u64,
}

// === impl Mmsc ===

/// A running simulator: a cheap handle (clones share it). Stops on
/// [`Mmsc::shutdown`] or when the last clone is dropped.
#[derive(Clone)]
pub struct Mmsc {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    _stop_on_drop: Arc<DropGuard>,
    tasks_done: Arc<Mutex<Option<mpsc::Receiver<()>>>>,
}

impl fmt::Debug for Mmsc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mmsc")
            .field("local_addr", &self.local_addr)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

struct Shared {
    cfg: MmscConfig,
    /// What may change while running.
    live: Mutex<Live>,
    callback: Option<Mm7Client>,
    token: CancellationToken,
    /// Held by every task; [`Mmsc::run_until_shutdown`] waits for the last.
    alive: mpsc::Sender<()>,
    stats: Mutex<MmscStats>,
    /// Woken after every change of `stats`.
    changed: Notify,
    texts: Mutex<HashMap<(String, String), u64>>,
    /// Media parts of the most recent accepted submits: (content type, bytes).
    media: Mutex<std::collections::VecDeque<(String, bytes::Bytes)>>,
    /// The `Content-Transfer-Encoding` each of `media` was sent with.
    media_encodings: Mutex<std::collections::VecDeque<String>>,
    /// `ServiceCode` and `LinkedID` of the last accepted SubmitReqs (empty
    /// when absent).
    service_codes: Mutex<std::collections::VecDeque<(String, String, ServiceFields)>>,
    /// The last accepted SubmitReqs: (MessageID, recipients taken).
    accepted: Mutex<std::collections::VecDeque<Accepted>>,
    next_id: AtomicU64,
    next_mo: AtomicU64,
}

/// A SubmitReq's `MessageClass`, `Priority`, `ReadReply`,
/// `DistributionIndicator` and `EarliestDeliveryTime`, as written.
pub type ServiceFields = [Option<String>; 7];

/// An accepted SubmitReq: its `MessageID`, the recipients it took (as
/// written), and how many of those it named under `Bcc`.
pub type Accepted = (String, Vec<String>, usize);

/// The simulator's settings that tests change while it runs.
struct Live {
    credentials: Option<Credentials>,
    answer_delay: Duration,
}

/// Binds the listener (port 0 allowed), spawns the simulator on the current
/// runtime and returns at once.
///
/// # Errors
/// When the address cannot be bound, or the callback URL is unusable
/// (`InvalidInput`).
pub async fn start(cfg: MmscConfig) -> io::Result<Mmsc> {
    let callback = match &cfg.callback_url {
        Some(url) => Some(
            Mm7Client::new(ClientConfig {
                url: url.clone(),
                credentials: cfg.callback_credentials(),
                request_timeout: Duration::from_secs(10),
                ..ClientConfig::default()
            })
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?,
        ),
        None => None,
    };
    let listener = TcpListener::bind(cfg.listen).await?;
    let local_addr = listener.local_addr()?;
    let token = CancellationToken::new();
    let (alive, tasks_done) = mpsc::channel(1);
    let shared = Arc::new(Shared {
        live: Mutex::new(Live {
            credentials: cfg.credentials(),
            answer_delay: cfg.answer_delay,
        }),
        cfg,
        callback,
        token: token.clone(),
        alive: alive.clone(),
        stats: Mutex::new(MmscStats::default()),
        changed: Notify::new(),
        texts: Mutex::new(HashMap::new()),
        media: Mutex::default(),
        media_encodings: Mutex::default(),
        accepted: Mutex::default(),
        service_codes: Mutex::default(),
        next_id: AtomicU64::new(FIRST_MESSAGE_ID),
        next_mo: AtomicU64::new(1),
    });
    let sh = Arc::clone(&shared);
    let make = move |conn: &crate::httpd::ConnInfo| {
        sh.bump(|s| s.connections += 1);
        let sh = Arc::clone(&sh);
        let peer = conn.peer;
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let sh = Arc::clone(&sh);
            async move { Ok::<_, Infallible>(sh.handle(peer.ip(), req).await) }
        })
    };
    tokio::spawn(crate::httpd::serve(
        crate::door::Door::new("mmsc-sim", listener, None, 4096),
        crate::httpd::HttpLimits {
            header_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
        },
        make,
        token.clone(),
        Some(alive),
    ));
    tracing::info!(target: TARGET, listen = %local_addr, "MMSC simulator listening");
    Ok(Mmsc {
        shared,
        local_addr,
        _stop_on_drop: Arc::new(token.drop_guard()),
        tasks_done: Arc::new(Mutex::new(Some(tasks_done))),
    })
}

impl Mmsc {
    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The URL VASPs submit to: `http://<local_addr>/mm7`.
    pub fn url(&self) -> String {
        format!("http://{}/mm7", self.local_addr)
    }

    /// The counters now.
    pub fn stats(&self) -> MmscStats {
        self.shared.stats.lock().clone()
    }

    /// Waits until `pred` holds for the counters (checked after every
    /// change; no polling).
    pub async fn wait_until(&self, pred: impl Fn(&MmscStats) -> bool) {
        loop {
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if pred(&self.shared.stats.lock()) {
                return;
            }
            notified.await;
        }
    }

    /// Media parts (content type, bytes) of the last 64 accepted submits.
    pub fn media(&self) -> Vec<(String, bytes::Bytes)> {
        self.shared.media.lock().iter().cloned().collect()
    }

    /// The last 256 accepted submits: `MessageID` and recipients taken,
    /// oldest first.
    pub fn accepted(&self) -> Vec<Accepted> {
        self.shared.accepted.lock().iter().cloned().collect()
    }

    /// The `ServiceCode` of the last 64 accepted submits (empty when absent).
    pub fn service_codes(&self) -> Vec<String> {
        self.shared
            .service_codes
            .lock()
            .iter()
            .map(|(code, _, _)| code.clone())
            .collect()
    }

    /// The `LinkedID` of the last 64 accepted submits (empty when absent).
    pub fn linked_ids(&self) -> Vec<String> {
        self.shared
            .service_codes
            .lock()
            .iter()
            .map(|(_, id, _)| id.clone())
            .collect()
    }

    /// `MessageClass`, `Priority`, `ReadReply`, `DistributionIndicator`
    /// and `EarliestDeliveryTime` of the last 64 accepted submits, as
    /// written (`None` when absent).
    pub fn service_fields(&self) -> Vec<ServiceFields> {
        self.shared
            .service_codes
            .lock()
            .iter()
            .map(|(_, _, f)| f.clone())
            .collect()
    }

    /// The `Content-Transfer-Encoding` of each of [`Mmsc::media`], lowercase
    /// (empty when the part declared none).
    pub fn media_encodings(&self) -> Vec<String> {
        self.shared.media_encodings.lock().iter().cloned().collect()
    }

    /// Every distinct (recipient, text) accepted and how many times, sorted.
    pub fn texts(&self) -> Vec<(String, String, u64)> {
        let mut v: Vec<_> = self
            .shared
            .texts
            .lock()
            .iter()
            .map(|((r, t), n)| (r.clone(), t.clone(), *n))
            .collect();
        v.sort();
        v
    }

    /// Requires basic auth `username:password` from now on (`None`: no
    /// auth), as when an account is fixed or its password rotated.
    pub fn set_account(&self, account: Option<(&str, &str)>) {
        self.shared.live.lock().credentials = account.map(|(u, p)| Credentials::new(u, p));
    }

    /// Answers submits only after `delay` from now on (zero: at once).
    pub fn set_answer_delay(&self, delay: Duration) {
        self.shared.live.lock().answer_delay = delay;
    }

    /// Counts `most_answering` from now on (from those being answered).
    pub fn reset_most_answering(&self) {
        let mut st = self.shared.stats.lock();
        st.most_answering = st.answering;
    }

    /// Stops accepting and drops pending reports.
    pub fn shutdown(&self) {
        self.shared.token.cancel();
    }

    /// Waits until [`Mmsc::shutdown`] is called (e.g. by a clone on a
    /// signal), then for connections and report tasks to end (at most 5 s).
    pub async fn run_until_shutdown(self) {
        self.shared.token.cancelled().await;
        let done = self.tasks_done.lock().take();
        drop(self);
        if let Some(mut done) = done {
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, done.recv()).await;
        }
    }

    /// Posts a `DeliverReq` (an MO message with `text` as its only content)
    /// from `from` to `to` at the callback URL and returns the VASP's
    /// status.
    ///
    /// # Errors
    /// [`Mm7Error::Config`] without a callback URL; otherwise as
    /// [`Mm7Client::deliver`].
    pub async fn inject_mo(&self, from: &str, to: &str, text: &str) -> Result<Status, Mm7Error> {
        let sh = &self.shared;
        let client = sh
            .callback
            .as_ref()
            .ok_or_else(|| Mm7Error::Config("the simulator has no callback URL".into()))?;
        let n = sh.next_mo.fetch_add(1, Ordering::Relaxed);
        let to = if !to.is_empty() && to.len() <= 8 && to.bytes().all(|b| b.is_ascii_digit()) {
            Address::ShortCode(to.to_owned())
        } else {
            Address::Number(to.to_owned())
        };
        let req = DeliverReq {
            transaction_id: format!("mo-{n}"),
            version: Some(sh.cfg.expect_version.unwrap_or_default()),
            relay_server_id: Some("sluice-sim".into()),
            linked_id: Some(format!("mo-{n:08X}")),
            sender: Address::Number(from.to_owned()),
            recipients: vec![to],
            time_stamp: Some(soap::format_date_time(std::time::SystemTime::now())),
            text: text.to_owned(),
            ..DeliverReq::default()
        };
        sh.bump(|s| s.mo_sent += 1);
        let status = client.deliver(&req).await?;
        if status.class() == Class::Success {
            sh.bump(|s| s.mo_acked += 1);
        }
        Ok(status)
    }
}

// === impl Shared ===

impl Shared {
    /// Changes the counters and wakes [`Mmsc::wait_until`].
    fn bump(&self, f: impl FnOnce(&mut MmscStats)) {
        f(&mut self.stats.lock());
        self.changed.notify_waiters();
    }

    async fn handle(
        self: Arc<Self>,
        peer: IpAddr,
        req: Request<Incoming>,
    ) -> Response<Full<Bytes>> {
        self.bump(|s| s.requests += 1);
        let (credentials, answer_delay) = {
            let live = self.live.lock();
            (live.credentials.clone(), live.answer_delay)
        };
        if let Some(resp) = admit(&req, peer, &[], credentials.as_ref(), HARD_BODY_LIMIT) {
            if resp.status() == StatusCode::UNAUTHORIZED {
                self.bump(|s| s.unauthorized += 1);
                // A slow MMSC is slow to refuse too.
                tokio::time::sleep(answer_delay).await;
            }
            return resp;
        }
        if let Some(code) = self.cfg.http_error
            && draw(self.cfg.http_error_fraction)
        {
            self.bump(|s| s.http_errors += 1);
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            return empty(status);
        }
        let (content_type, body) = match read_body(req, HARD_BODY_LIMIT, BODY_TIMEOUT).await {
            Ok(x) => x,
            Err(resp) => return resp,
        };
        let (status, resp) = self.submit(content_type.as_deref(), &body);
        self.bump(|st| {
            st.submits += 1;
            st.bytes_received += body.len() as u64;
            *st.by_status.entry(status).or_default() += 1;
            if matches!(status, status::SUCCESS | status::PARTIAL_SUCCESS) {
                st.accepted += 1;
            } else {
                st.refused += 1;
            }
        });
        if !answer_delay.is_zero() {
            self.bump(|st| {
                st.answering += 1;
                st.most_answering = st.most_answering.max(st.answering);
            });
            tokio::select! {
                () = tokio::time::sleep(answer_delay) => {}
                () = self.token.cancelled() => {}
            }
            self.bump(|st| st.answering -= 1);
        }
        resp
    }

    /// Processes one submit body: the status answered and the answer.
    fn submit(
        self: &Arc<Self>,
        content_type: Option<&str>,
        body: &Bytes,
    ) -> (u32, Response<Full<Bytes>>) {
        let default_version = self.cfg.expect_version.unwrap_or_default();
        let fault = |tid: Option<&str>, v: Version, status: Status| {
            let code = status.code;
            let f = Fault::new(tid, v, ErrorRspKind::Rs, status);
            (
                code,
                soap_response(StatusCode::INTERNAL_SERVER_ERROR, f.encode()),
            )
        };
        if let Some(max) = self.cfg.max_size
            && body.len() > max
        {
            let s = Status::new(status::MULTIMEDIA_CONTENT_REFUSED)
                .with_details(format!("message size {} exceeds {max} bytes", body.len()));
            return fault(None, default_version, s);
        }
        let req = match soap::decode(content_type, body) {
            Ok(Message::SubmitReq(r)) => r,
            Ok(other) => {
                let tid = other.transaction_id().map(str::to_owned);
                let v = other.version().unwrap_or(default_version);
                return fault(
                    tid.as_deref(),
                    v,
                    Status::new(status::UNSUPPORTED_OPERATION)
                        .with_details(format!("{} is not accepted here", other.name())),
                );
            }
            Err(e) => {
                self.bump(|s| s.malformed += 1);
                tracing::info!(target: TARGET, error = %crate::model::LogSafe::display(&e), "malformed SubmitReq");
                return fault(
                    None,
                    default_version,
                    Status::new(e.status_code()).with_details(e.to_string()),
                );
            }
        };
        let tid = req.transaction_id.as_str();
        let version = match self.check_version(&req) {
            Ok(v) => v,
            Err(s) => return fault(Some(tid), req.version.unwrap_or(default_version), s),
        };
        if req.recipients.is_empty() {
            let s = Status::new(status::VALIDATION_ERROR).with_details("no recipient");
            return fault(Some(tid), version, s);
        }
        if let Some(max) = self.cfg.max_recipients
            && req.recipients.len() > max
        {
            let s = Status::new(status::VALIDATION_ERROR).with_details(format!(
                "{} recipients, at most {max}",
                req.recipients.len()
            ));
            return fault(Some(tid), version, s);
        }
        if let Some(code) = self.cfg.fail_status
            && draw(self.cfg.fail_fraction)
        {
            let s = Status::new(code);
            if self.cfg.fail_as_fault {
                return fault(Some(tid), version, s);
            }
            let rsp = SubmitRsp {
                transaction_id: tid.to_owned(),
                version: Some(version),
                mm7_version: req.mm7_version.clone(),
                status: s,
                message_id: None,
            };
            return (code, soap_response(StatusCode::OK, rsp.encode()));
        }
        let (req, not_taken) = self.take_recipients(*req);
        if req.recipients.is_empty() {
            let s = Status::new(status::ADDRESS_ERROR)
                .with_details(format!("not taken: {}", not_taken.join(" ")));
            let rsp = SubmitRsp {
                transaction_id: req.transaction_id.clone(),
                version: Some(version),
                mm7_version: req.mm7_version.clone(),
                status: s,
                message_id: None,
            };
            return (
                status::ADDRESS_ERROR,
                soap_response(StatusCode::OK, rsp.encode()),
            );
        }
        let message_id = format!("{:X}", self.next_id.fetch_add(1, Ordering::Relaxed));
        self.record(&req);
        self.schedule_reports(&req, version, &message_id);
        {
            let mut accepted = self.accepted.lock();
            accepted.push_back((
                message_id.clone(),
                req.recipients
                    .iter()
                    .map(|r| r.value().to_owned())
                    .collect(),
                req.blind.iter().filter(|&&b| b).count(),
            ));
            if accepted.len() > 256 {
                accepted.pop_front();
            }
        }
        let taken = req.recipients.len() as u64;
        self.bump(|s| {
            s.recipients += taken;
            s.most_recipients = s.most_recipients.max(taken);
        });
        let status = if not_taken.is_empty() {
            Status::success()
        } else {
            Status::new(status::PARTIAL_SUCCESS)
                .with_details(format!("not taken: {}", not_taken.join(" ")))
        };
        let code = status.code;
        let rsp = SubmitRsp {
            transaction_id: req.transaction_id.clone(),
            version: Some(version),
            mm7_version: req.mm7_version.clone(),
            status,
            message_id: Some(message_id),
        };
        (code, soap_response(StatusCode::OK, rsp.encode()))
    }

    /// The request without the recipients `--refuse-recipients` does not
    /// take, and those (as written in the request).
    fn take_recipients(&self, mut req: ReceivedSubmitReq) -> (ReceivedSubmitReq, Vec<String>) {
        let Some(prefix) = self.cfg.refuse_recipients.as_deref() else {
            return (req, Vec::new());
        };
        let blind = std::mem::take(&mut req.blind);
        type Named = Vec<(Address, bool)>;
        let (refused, taken): (Named, Named) = req
            .recipients
            .into_iter()
            .zip(blind.into_iter().chain(std::iter::repeat(false)))
            .partition(|(r, _)| {
                let digits: String = r.value().chars().filter(char::is_ascii_digit).collect();
                digits.starts_with(prefix)
            });
        (req.recipients, req.blind) = taken.into_iter().unzip();
        let refused: Vec<String> = refused
            .into_iter()
            .map(|(r, _)| r.value().to_owned())
            .collect();
        let n = refused.len() as u64;
        if n > 0 {
            self.bump(|s| s.recipients_refused += n);
        }
        (req, refused)
    }

    /// The submit's version, or the status refusing it.
    fn check_version(&self, req: &ReceivedSubmitReq) -> Result<Version, Status> {
        let unsupported = |why: String| Status::new(status::UNSUPPORTED_VERSION).with_details(why);
        let Some(v) = req.version else {
            return Err(unsupported(format!(
                "namespace {:?} is not a supported MM7 schema",
                req.namespace.as_deref().unwrap_or("")
            )));
        };
        if let Some(expected) = self.cfg.expect_version
            && expected != v
        {
            return Err(unsupported(format!("expected {expected}, got {v}")));
        }
        if !v.accepts(&req.mm7_version) {
            return Err(unsupported(format!(
                "MM7Version {:?} does not match namespace {v}",
                req.mm7_version
            )));
        }
        Ok(v)
    }

    /// Counts the accepted (recipient, text) pairs and keeps their media.
    fn record(&self, req: &ReceivedSubmitReq) {
        {
            let mut codes = self.service_codes.lock();
            codes.push_back((
                req.service_code.clone().unwrap_or_default(),
                req.linked_id.clone().unwrap_or_default(),
                req.service_fields.clone(),
            ));
            if codes.len() > 64 {
                codes.pop_front();
            }
        }
        {
            let mut media = self.media.lock();
            let mut encodings = self.media_encodings.lock();
            for p in &req.media {
                let ct = p.header("content-type").unwrap_or("").to_owned();
                media.push_back((ct, p.body.clone()));
                encodings.push_back(
                    p.header("content-transfer-encoding")
                        .unwrap_or("")
                        .trim()
                        .to_ascii_lowercase(),
                );
                if media.len() > 64 {
                    media.pop_front();
                    encodings.pop_front();
                }
            }
        }
        let mut dups = 0;
        let mut texts = self.texts.lock();
        for r in &req.recipients {
            let n = texts
                .entry((r.value().to_owned(), req.text.clone()))
                .or_default();
            if *n > 0 {
                dups += 1;
            }
            *n += 1;
        }
        drop(texts);
        if dups > 0 {
            self.bump(|s| s.duplicates += dups);
        }
    }

    /// Spawns one report task per recipient when reports were asked for.
    fn schedule_reports(
        self: &Arc<Self>,
        req: &ReceivedSubmitReq,
        version: Version,
        message_id: &str,
    ) {
        if !req.delivery_report || self.callback.is_none() {
            return;
        }
        let sender = req.sender.clone().unwrap_or_else(|| {
            Address::ShortCode(req.vas_id.clone().unwrap_or_else(|| "sluice".into()))
        });
        for recipient in &req.recipients {
            let Some(mm_status) = self.cfg.outcomes.draw().mm_status() else {
                continue;
            };
            let report = DeliveryReportReq {
                transaction_id: format!("dr-{message_id}-{}", recipient.value()),
                version: Some(version),
                mm7_version: req.mm7_version.clone(),
                relay_server_id: Some("sluice-sim".into()),
                message_id: message_id.to_owned(),
                recipient: recipient.clone(),
                sender: sender.clone(),
                date: None,
                status_text: Some(mm_status.to_string()),
                mm_status,
            };
            let sh = Arc::clone(self);
            let alive = self.alive.clone();
            tokio::spawn(async move {
                let _alive = alive;
                let token = sh.token.clone();
                tokio::select! {
                    () = sh.send_report(report) => {}
                    () = token.cancelled() => {}
                }
            });
        }
    }

    async fn send_report(&self, mut report: DeliveryReportReq) {
        let Some(client) = &self.callback else {
            return;
        };
        tokio::time::sleep(self.cfg.report_delay).await;
        for attempt in 0..=self.cfg.report_retries {
            if attempt > 0 {
                tokio::time::sleep(self.cfg.report_retry_delay).await;
            }
            report.date = Some(soap::format_date_time(std::time::SystemTime::now()));
            self.bump(|s| s.reports_sent += 1);
            match client.delivery_report(&report).await {
                Ok(s) if s.class() == Class::Success => {
                    self.bump(|s| s.reports_acked += 1);
                    return;
                }
                Ok(s) if s.class() == Class::Permanent => {
                    tracing::debug!(target: TARGET, message_id = %crate::model::LogSafe::new(&report.message_id), status = %crate::model::LogSafe::display(&s), "report refused for good");
                    self.bump(|s| s.reports_refused += 1);
                    return;
                }
                Ok(s) => {
                    tracing::debug!(target: TARGET, message_id = %crate::model::LogSafe::new(&report.message_id), status = %crate::model::LogSafe::display(&s), "report refused");
                }
                Err(e) => {
                    tracing::debug!(target: TARGET, message_id = %crate::model::LogSafe::new(&report.message_id), error = %crate::model::LogSafe::display(&e), "report failed");
                }
            }
        }
        self.bump(|s| s.reports_failed += 1);
    }
}

/// True with probability `fraction`.
fn draw(fraction: f64) -> bool {
    fraction >= 1.0 || (fraction > 0.0 && rand::random::<f64>() < fraction)
}
