//! The SMPP client (ESME) bind session: connect (TCP or TLS), bind, then one
//! driver task that keeps a window of outstanding submit_sm matched by
//! sequence number, answers the SMSC's deliver_sm and enquire_link promptly,
//! sends enquire_link when idle, times out responses, slows down on
//! ESME_RTHROTTLED / ESME_RMSGQFUL, and reconnects with backoff. A bind
//! replaced by others of its carrier ([`Retire`]) drains its window, then
//! unbinds and ends.
//!
//! What to send and what to do with answers belongs to a [`Handler`] (the
//! carrier): the session only speaks the protocol. On disconnect every
//! outstanding submit is handed back to the handler explicitly — never
//! silently dropped, never silently resent.
//!
//! Reads and writes never wait on each other: writes go to a writer task that
//! coalesces every PDU encoded in one turn of the loop into one syscall, and
//! reads are capped per turn so a flood of deliver_sm cannot starve timers.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::codec::FramedRead;

use super::codec::SmppCodec;
use super::pdu::{Bind, Body, CommandStatus, DeliverSm, Pdu, SubmitSm};
use crate::model::hashing::FastMap;
use crate::shaping::aimd::Aimd;
use crate::shaping::rate::Rate;

const TARGET: &str = "sluice::smpp";

/// Resolves to true once the handler's record of a write is durable, false
/// when it cannot be (then nothing it covers may be written).
pub type WriteGate = Pin<Box<dyn Future<Output = bool> + Send>>;

/// The answers (sequence number, status) to a burst of deliver_sm.
pub type DeliverAnswers = Pin<Box<dyn Future<Output = Vec<(u32, CommandStatus)>> + Send>>;

/// The answer to one deliver_sm, once it may be sent.
pub type DeliverAnswer = Pin<Box<dyn Future<Output = CommandStatus> + Send>>;

/// Answers a burst one deliver_sm at a time, in order (what a handler
/// without a batch path does).
pub fn answer_each(answers: Vec<(u32, DeliverAnswer)>) -> DeliverAnswers {
    Box::pin(async move {
        let mut out = Vec::with_capacity(answers.len());
        for (seq, f) in answers {
            out.push((seq, f.await));
        }
        out
    })
}

/// Largest burst of PDUs read before the loop serves timers and writes.
const READS_PER_TURN: usize = 256;

/// SMPP bind type.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum BindMode {
    /// Submits and receipts on one connection (default).
    #[default]
    Transceiver,
    /// Submits only.
    Transmitter,
    /// Receipts and MO only.
    Receiver,
}

/// What the session needs from its carrier.
pub trait Handler: Send + Sync + 'static {
    /// One unit of work: a submit_sm with whatever the handler tracks.
    type Job: Send + 'static;

    /// Takes up to `max` jobs, oldest first, without waiting.
    fn take(&self, max: usize) -> Vec<Self::Job>;

    /// Resolves when jobs may be available.
    fn ready(&self) -> impl Future<Output = ()> + Send + '_;

    /// Puts jobs that were taken but not written back at the front, in order.
    fn give_back(&self, jobs: Vec<Self::Job>);

    /// The last look at a job right before it is written (after pacing and
    /// after the journal), at wall-clock `now_ms` (read once for the jobs
    /// looked at together): `None` when it must not go any more; the
    /// handler has then ended it. The default lets every job go.
    fn vet(&self, job: Self::Job, now_ms: u64) -> Option<Self::Job> {
        let _ = now_ms;
        Some(job)
    }

    /// Records durably that `jobs` are about to be written; nothing is
    /// written before the gate resolves true. No default: admission queues
    /// a message before its `Accept` record is synced, and this gate (a
    /// journal record synced after it) is what keeps it off the wire until
    /// then.
    fn will_write(&self, jobs: &[Self::Job]) -> WriteGate;

    /// The PDU body to write for a job.
    fn submit_sm<'a>(&self, job: &'a Self::Job) -> &'a SubmitSm;

    /// The SMSC answered a job's submit_sm.
    fn submit_resp(&self, job: Self::Job, status: CommandStatus, message_id: Bytes);

    /// A written job got no answer (response timeout or disconnect).
    fn unanswered(&self, job: Self::Job);

    /// The SMSC delivered a PDU (receipt or MO); resolves to the status of
    /// the deliver_sm_resp (sent only once it resolves, e.g. when durable).
    fn deliver(&self, sm: DeliverSm) -> Pin<Box<dyn Future<Output = CommandStatus> + Send>>;

    /// The deliver_sm of one read burst, `(sequence_number, pdu)`; resolves
    /// to each answer's status. The default delivers them one by one.
    fn deliver_batch(&self, batch: Vec<(u32, DeliverSm)>) -> DeliverAnswers {
        answer_each(
            batch
                .into_iter()
                .map(|(seq, sm)| (seq, self.deliver(sm)))
                .collect(),
        )
    }

    /// A bind came up (bound) or went down.
    fn bind_state(&self, up: bool) {
        let _ = up;
    }
}

/// Parameters of one bind.
#[derive(Clone, Debug)]
pub struct BindParams {
    /// Name for logs and metrics (`carrier/n`, counting on across the
    /// binds a reload starts).
    pub name: Arc<str>,
    /// Carrier name (metrics label).
    pub carrier: Arc<str>,
    /// `host:port`.
    pub address: String,
    /// system_id.
    pub system_id: String,
    /// password (never logged).
    pub password: crate::model::Secret,
    /// system_type.
    pub system_type: String,
    /// Bind type.
    pub mode: BindMode,
    /// Most outstanding submit_sm.
    pub window: usize,
    /// Submits per second (0 = unlimited).
    pub rate: u32,
    /// TLS client configuration, when the bind uses TLS.
    pub tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    /// Response deadline.
    pub response_timeout: Duration,
    /// Idle time before enquire_link.
    pub enquire_link_interval: Duration,
    /// First reconnect delay.
    pub reconnect_min: Duration,
    /// Largest reconnect delay.
    pub reconnect_max: Duration,
    /// Wait after the SMSC refused the credentials.
    pub auth_failure_backoff: Duration,
    /// The binds this one belongs to, when they can be replaced (a reload
    /// changed its carrier's binds).
    pub retire: Option<Retire>,
}

/// Which generation of its carrier's binds a bind belongs to. A reload
/// that changes the binds starts a newer generation; the first of its
/// binds to be bound puts it in force ([`Retire::bound`]), or the carrier
/// does after a while. A bind of an older generation then retires: it
/// takes nothing more, waits for the answers to what it sent, unbinds
/// (answering the deliver_sm that still come until the unbind_resp) and
/// ends; one not yet bound just ends.
#[derive(Clone, Debug)]
pub struct Retire {
    /// Its generation.
    pub generation: u64,
    /// The generation in force (shared by the carrier's binds).
    pub in_force: Arc<watch::Sender<u64>>,
    /// Bound binds of older generations still draining (shared by the
    /// carrier's binds); when the last one ends, `in_force` notifies.
    pub retiring: Arc<std::sync::atomic::AtomicUsize>,
}

impl Retire {
    /// Whether a newer generation is in force.
    fn retired(&self) -> bool {
        *self.in_force.borrow() > self.generation
    }

    /// Whether binds this one replaces are still bound (its generation is
    /// not in force yet, or older binds still drain): refusals are then
    /// not taken for wrong credentials, as an SMSC that caps binds per
    /// account refuses the newcomers while the old ones stay.
    fn replacing(&self) -> bool {
        *self.in_force.borrow() < self.generation
            || self.retiring.load(std::sync::atomic::Ordering::Acquire) > 0
    }

    /// A bound bind starts retiring: counted until the guard drops.
    fn draining(&self) -> Draining {
        self.retiring
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Draining(self.clone())
    }

    /// This bind is bound: its generation is in force from now on.
    fn bound(&self) {
        self.in_force.send_if_modified(|g| {
            let newer = *g < self.generation;
            if newer {
                *g = self.generation;
            }
            newer
        });
    }
}

/// Counts a retiring bind in [`Retire::retiring`] while it lives; the
/// last one to go wakes the binds that wait to replace them.
struct Draining(Retire);

impl Drop for Draining {
    fn drop(&mut self) {
        if self
            .0
            .retiring
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel)
            == 1
        {
            self.0.in_force.send_modify(|_| {});
        }
    }
}

/// Watches a bind's [`Retire`].
struct Retirement {
    retire: Retire,
    changes: watch::Receiver<u64>,
}

impl Retirement {
    fn of(retire: Option<&Retire>) -> Option<Retirement> {
        retire.map(|r| Retirement {
            retire: r.clone(),
            changes: r.in_force.subscribe(),
        })
    }

    /// Whether the bind is retired, without a lock while nothing changed
    /// (the session asks every turn).
    fn retired_now(&self) -> bool {
        self.changes.has_changed().unwrap_or(false) && self.retire.retired()
    }
}

/// Resolves when the bind is retired (never without a [`Retire`]).
async fn retired(watch: &mut Option<Retirement>) {
    let Some(w) = watch else {
        return std::future::pending().await;
    };
    while !w.retire.retired() {
        if w.changes.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// Waiting to bind again: resolves with true when the bind is retired,
/// or false when it was replacing binds and they have all gone (the SMSC
/// has room for it now). Never without a [`Retire`].
async fn retired_or_room(watch: &mut Option<Retirement>) -> bool {
    let Some(w) = watch else {
        return std::future::pending().await;
    };
    let replacing = w.retire.replacing();
    loop {
        if w.retire.retired() {
            return true;
        }
        if replacing && !w.retire.replacing() {
            return false;
        }
        if w.changes.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// Connecting failed.
    #[error("connect to {addr}: {source}")]
    Connect {
        /// Address.
        addr: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The SMSC refused the bind.
    #[error("bind refused: {0}")]
    BindRefused(CommandStatus),
    /// No answer within the response timeout.
    #[error("no {what} response within {timeout:?}")]
    ResponseTimeout {
        /// Which PDU.
        what: &'static str,
        /// The deadline.
        timeout: Duration,
    },
    /// The byte stream broke (framing error, I/O).
    #[error("link broken: {0}")]
    Link(String),
    /// The SMSC closed the connection or unbound.
    #[error("closed by the SMSC")]
    Closed,
    /// Local shutdown.
    #[error("shutdown")]
    Shutdown,
    /// Replaced by other binds of its carrier ([`Retire`]).
    #[error("retired")]
    Retired,
}

trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// Runs a bind until `shutdown`: connect, bind, serve, and on failure
/// reconnect after an exponential backoff with jitter — or, when the SMSC
/// refused the credentials, after `auth_failure_backoff` (a carrier locks an
/// account that keeps retrying a wrong password). Every refused bind is
/// counted in `sluice_smpp_bind_failures_total{carrier,status}`.
pub async fn run<H: Handler>(params: BindParams, handler: Arc<H>, shutdown: watch::Receiver<bool>) {
    run_with(params, handler, shutdown, connect).await;
}

/// True for bind refusals that mean the credentials are wrong.
pub fn is_auth_refusal(status: CommandStatus) -> bool {
    matches!(
        status,
        CommandStatus::ESME_RINVPASWD
            | CommandStatus::ESME_RINVSYSID
            | CommandStatus::ESME_RBINDFAIL
    )
}

/// [`run`] with the transport supplied by `connect` (tests use in-memory pipes).
async fn run_with<H, C, F>(
    params: BindParams,
    handler: Arc<H>,
    mut shutdown: watch::Receiver<bool>,
    connect: C,
) where
    H: Handler,
    C: Fn(BindParams) -> F,
    F: Future<Output = Result<Box<dyn Stream>, SessionError>>,
{
    let mut delay = params.reconnect_min;
    let rate = Rate::per_second(params.rate).map(Arc::new);
    let mut retire = Retirement::of(params.retire.as_ref());
    loop {
        if *shutdown.borrow() || retire.as_ref().is_some_and(|w| w.retire.retired()) {
            return;
        }
        let bound = std::sync::atomic::AtomicBool::new(false);
        let stop = shutdown.clone();
        let session = async {
            let stream = connect(params.clone()).await?;
            serve(stream, &params, &handler, rate.clone(), stop, &bound).await
        };
        // Retired before it is bound, a bind just ends; once bound, it
        // drains first (in the session).
        let retired_unbound = async {
            retired(&mut retire).await;
            if bound.load(std::sync::atomic::Ordering::Relaxed) {
                std::future::pending::<()>().await;
            }
        };
        let result = tokio::select! {
            r = session => r,
            _ = shutdown.changed() => Err(SessionError::Shutdown),
            _ = retired_unbound => Err(SessionError::Retired),
        };
        metrics::gauge!("sluice_smpp_bind_up", "carrier" => params.carrier.to_string(), "bind" => params.name.to_string()).set(0.0);
        // A link that got as far as a bind is retried quickly; repeated
        // failures to connect or bind back off exponentially.
        if bound.load(std::sync::atomic::Ordering::Relaxed) {
            delay = params.reconnect_min;
        }
        let mut wait = delay;
        match result {
            Err(SessionError::Shutdown) => return,
            Err(SessionError::Retired) => {
                tracing::info!(target: TARGET, bind = %params.name, "bind retired: replaced by a reload");
                return;
            }
            Err(e) if params.retire.as_ref().is_some_and(Retire::retired) => {
                tracing::info!(target: TARGET, bind = %params.name, error = %crate::model::LogSafe::display(&e), "bind retired: replaced by a reload");
                return;
            }
            Err(SessionError::BindRefused(status)) => {
                metrics::counter!("sluice_smpp_bind_failures_total",
                    "carrier" => params.carrier.to_string(), "status" => status_label(status))
                .increment(1);
                let replacing = params.retire.as_ref().is_some_and(Retire::replacing);
                if is_auth_refusal(status) && !replacing {
                    wait = params.auth_failure_backoff.max(delay);
                    tracing::error!(target: TARGET, bind = %params.name, system_id = %params.system_id,
                        %status, retry_in = ?wait,
                        "the SMSC refused the credentials; check system_id and password (waiting long before retrying, so the carrier does not lock the account)");
                } else if replacing {
                    tracing::warn!(target: TARGET, bind = %params.name, system_id = %params.system_id,
                        %status, retry_in = ?wait,
                        "bind refused while the binds it replaces are up (an SMSC that caps binds per account refuses until they unbind)");
                } else {
                    tracing::warn!(target: TARGET, bind = %params.name, %status, retry_in = ?wait, "bind refused");
                }
            }
            Err(e) => {
                metrics::counter!("sluice_smpp_disconnects_total", "carrier" => params.carrier.to_string()).increment(1);
                tracing::warn!(target: TARGET, bind = %params.name, error = %crate::model::LogSafe::display(&e), retry_in = ?wait, "bind down");
            }
            Ok(()) => {}
        }
        let jitter = wait.mul_f64(rand::random::<f64>() * 0.2);
        let room = tokio::select! {
            _ = tokio::time::sleep(wait + jitter) => false,
            _ = shutdown.changed() => return,
            retired = retired_or_room(&mut retire) => {
                if retired {
                    return;
                }
                true
            }
        };
        // The binds it replaced are gone: try again at once.
        delay = match room {
            true => params.reconnect_min,
            false => (delay * 2).min(params.reconnect_max),
        };
    }
}

/// Connects over TCP, and TLS when configured.
async fn connect(params: BindParams) -> Result<Box<dyn Stream>, SessionError> {
    let connect_err = |source| SessionError::Connect {
        addr: params.address.clone(),
        source,
    };
    let tcp = tokio::time::timeout(
        params.response_timeout,
        tokio::net::TcpStream::connect(&params.address),
    )
    .await
    .map_err(|_| connect_err(std::io::ErrorKind::TimedOut.into()))?
    .map_err(connect_err)?;
    let _ = tcp.set_nodelay(true);
    let stream: Box<dyn Stream> = match &params.tls {
        None => Box::new(tcp),
        Some(cfg) => {
            let host = params
                .address
                .rsplit_once(':')
                .map_or(params.address.as_str(), |(h, _)| h)
                .trim_matches(|c| c == '[' || c == ']')
                .to_owned();
            let name =
                tokio_rustls::rustls::pki_types::ServerName::try_from(host).map_err(|e| {
                    connect_err(std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
                })?;
            let tls = tokio_rustls::TlsConnector::from(cfg.clone())
                .connect(name, tcp)
                .await
                .map_err(connect_err)?;
            Box::new(tls)
        }
    };
    Ok(stream)
}

struct Outstanding<J> {
    job: J,
    sent: Instant,
}

/// Binds on `stream` and runs the session on it.
async fn serve<S, H>(
    stream: S,
    params: &BindParams,
    handler: &Arc<H>,
    rate: Option<Arc<Rate>>,
    mut shutdown: watch::Receiver<bool>,
    bound: &std::sync::atomic::AtomicBool,
) -> Result<(), SessionError>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
    H: Handler,
{
    let (rd, wr) = tokio::io::split(stream);
    let mut reader = FramedRead::new(rd, SmppCodec::default());
    let (out, out_rx) = mpsc::unbounded_channel::<Bytes>();
    let writer = tokio::spawn(async move {
        // A failed write: the read side sees the link go.
        let _ = crate::wire::write_coalesced(wr, out_rx).await;
    });
    let mut session = Session::new(params, handler, rate, out);
    let result = match session.bind(&mut reader, &mut shutdown).await {
        Ok(()) => {
            bound.store(true, std::sync::atomic::Ordering::Relaxed);
            handler.bind_state(true);
            if let Some(r) = &params.retire {
                r.bound();
            }
            // Whatever ends the session below, the bind is down again.
            struct Down<'a, H: Handler>(&'a H);
            impl<H: Handler> Drop for Down<'_, H> {
                fn drop(&mut self) {
                    self.0.bind_state(false);
                }
            }
            let _down = Down(&**handler);
            tracing::info!(target: TARGET, bind = %params.name, system_id = %params.system_id, mode = ?params.mode, "bound");
            metrics::gauge!("sluice_smpp_bind_up", &session.meters.labels).set(1.0);
            let result = session.run(&mut reader, &mut shutdown).await;
            session.close();
            result
        }
        Err(e) => {
            session.flush();
            Err(e)
        }
    };
    drop(session);
    let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
    result
}

/// The metric handles of one bind, made once (no registry lookup per PDU).
struct Meters {
    labels: [(&'static str, String); 2],
    window: metrics::Gauge,
    adaptive_rate: metrics::Gauge,
    submits: metrics::Counter,
    throttled: metrics::Counter,
    latency: metrics::Histogram,
    /// The `ESME_ROK` responses' handle, made at the first (nearly every
    /// response: no map lookup for it).
    responses_ok: Option<metrics::Counter>,
    /// One handle per other response status seen (SipHash: the SMSC
    /// chooses the statuses).
    responses: HashMap<u32, metrics::Counter>,
}

impl Meters {
    fn new(params: &BindParams) -> Meters {
        let labels = [
            ("carrier", params.carrier.to_string()),
            ("bind", params.name.to_string()),
        ];
        let carrier = params.carrier.to_string();
        Meters {
            window: metrics::gauge!("sluice_smpp_window_in_use", &labels),
            adaptive_rate: metrics::gauge!("sluice_smpp_adaptive_rate", &labels),
            submits: metrics::counter!("sluice_smpp_submits_total", &labels),
            throttled: metrics::counter!("sluice_smpp_throttled_total", "carrier" => carrier.clone()),
            latency: metrics::histogram!("sluice_smpp_response_seconds", "carrier" => carrier),
            responses_ok: None,
            responses: HashMap::new(),
            labels,
        }
    }

    fn response(&mut self, carrier: &str, status: CommandStatus) {
        let counter = || {
            metrics::counter!("sluice_smpp_responses_total",
                "carrier" => carrier.to_owned(), "status" => status_label(status))
        };
        if status.is_ok() {
            self.responses_ok.get_or_insert_with(counter).increment(1);
        } else {
            self.responses
                .entry(status.0)
                .or_insert_with(counter)
                .increment(1);
        }
    }
}

/// One session on one connection: what is in flight and the steps of its
/// loop, each a method — [`Session::bind`], then in [`Session::run`]:
/// [`Session::read_burst`] (responses, deliver_sm, enquire_link),
/// [`Session::answer_delivers`], [`Session::take`] (window, pacing, first
/// look), [`Session::send_durable`] (after the journal: last look, submit),
/// [`Session::tick`] (keep-alive, response deadlines); [`Session::close`]
/// hands back whatever is left.
struct Session<'a, H: Handler> {
    params: &'a BindParams,
    handler: &'a Arc<H>,
    /// The bind's configured rate, shared by the binds of its carrier.
    rate: Option<Arc<Rate>>,
    /// To the writer task.
    out: mpsc::UnboundedSender<Bytes>,
    /// PDUs encoded this turn, sent as one frame at its end.
    wbuf: BytesMut,
    seq: Sequence,
    /// Submits written and not answered, by sequence number.
    outstanding: FastMap<u32, Outstanding<H::Job>>,
    /// Jobs past pacing whose `Written` record is on its way to the disk,
    /// in take order; they count against the window.
    gated: VecDeque<(WriteGate, Vec<H::Job>)>,
    in_gates: usize,
    /// The handler's answers to deliver_sm bursts.
    delivers: FuturesUnordered<DeliverAnswers>,
    last_read: Instant,
    /// The enquire_link waiting for its answer.
    enquire: Option<(u32, Instant)>,
    /// Nothing is taken before this (pacing, throttling, a failed journal).
    paused_until: Option<Instant>,
    /// Adaptive slow-down on ESME_RTHROTTLED / ESME_RMSGQFUL.
    aimd: Aimd,
    meters: Meters,
    /// Retiring: the unbind is sent, its answer awaited until then.
    unbinding: Option<Instant>,
    /// The unbind_resp came.
    unbind_answered: bool,
}

impl<'a, H: Handler> Session<'a, H> {
    fn new(
        params: &'a BindParams,
        handler: &'a Arc<H>,
        rate: Option<Arc<Rate>>,
        out: mpsc::UnboundedSender<Bytes>,
    ) -> Self {
        Session {
            params,
            handler,
            rate,
            out,
            wbuf: BytesMut::with_capacity(64 * 1024),
            seq: Sequence::default(),
            outstanding: FastMap::with_capacity_and_hasher(params.window, Default::default()),
            gated: VecDeque::new(),
            in_gates: 0,
            delivers: FuturesUnordered::new(),
            last_read: Instant::now(),
            enquire: None,
            paused_until: None,
            aimd: Aimd::new((params.rate > 0).then_some(f64::from(params.rate))),
            meters: Meters::new(params),
            unbinding: None,
            unbind_answered: false,
        }
    }

    /// Sends what this turn encoded.
    fn flush(&mut self) {
        if !self.wbuf.is_empty() {
            let _ = self.out.send(self.wbuf.split().freeze());
        }
    }

    /// Sends the bind and waits for its answer (answering enquire_link
    /// meanwhile).
    async fn bind<R>(
        &mut self,
        reader: &mut FramedRead<R, SmppCodec>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), SessionError>
    where
        R: AsyncRead + Unpin,
    {
        let params = self.params;
        let bind = Bind {
            system_id: Bytes::copy_from_slice(params.system_id.as_bytes()),
            password: Bytes::copy_from_slice(params.password.expose().as_bytes()),
            system_type: Bytes::copy_from_slice(params.system_type.as_bytes()),
            interface_version: 0x34,
            ..Bind::default()
        };
        let body = match params.mode {
            BindMode::Transceiver => Body::BindTransceiver(bind),
            BindMode::Transmitter => Body::BindTransmitter(bind),
            BindMode::Receiver => Body::BindReceiver(bind),
        };
        let bind_seq = self.seq.next();
        Pdu::new(bind_seq, body).encode(&mut self.wbuf);
        self.flush();
        let deadline = Instant::now() + params.response_timeout;
        loop {
            let pdu = tokio::select! {
                f = reader.next() => f,
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(SessionError::ResponseTimeout { what: "bind", timeout: params.response_timeout });
                }
                _ = shutdown.changed() => return Err(SessionError::Shutdown),
            };
            match pdu {
                None => return Err(SessionError::Closed),
                Some(Err(e)) => return Err(SessionError::Link(e.to_string())),
                Some(Ok(Ok(p))) if p.sequence_number == bind_seq && p.is_response() => {
                    if !p.command_status.is_ok() {
                        return Err(SessionError::BindRefused(p.command_status));
                    }
                    return Ok(());
                }
                Some(Ok(Ok(p))) if p.command_id() == super::pdu::CommandId::EnquireLink as u32 => {
                    Pdu::enquire_link_resp(p.sequence_number).encode(&mut self.wbuf);
                    self.flush();
                }
                Some(Ok(_)) => {} // nothing else is meaningful before the bind answer
            }
        }
    }

    /// The bound session's loop, until the link ends or shutdown.
    async fn run<R>(
        &mut self,
        reader: &mut FramedRead<R, SmppCodec>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), SessionError>
    where
        R: AsyncRead + Unpin,
    {
        let handler = self.handler;
        let can_submit = self.params.mode != BindMode::Receiver;
        let mut tick =
            tokio::time::interval(Duration::from_millis(250).min(self.params.response_timeout / 4));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut retire = Retirement::of(self.params.retire.as_ref());
        let mut draining = retire.as_ref().is_some_and(|w| w.retire.retired());
        let mut counted: Option<Draining> = None;
        loop {
            // Looked at every turn: the branch below only wakes an idle
            // session (a busy one always has an earlier branch ready).
            if !draining && retire.as_ref().is_some_and(Retirement::retired_now) {
                draining = true;
            }
            if draining && counted.is_none() {
                counted = self.params.retire.as_ref().map(Retire::draining);
                tracing::info!(target: TARGET, bind = %self.params.name, outstanding = self.outstanding.len(), "bind retiring: replaced by a reload");
            }
            if draining
                && self.unbinding.is_none()
                && self.outstanding.is_empty()
                && self.gated.is_empty()
            {
                Pdu::unbind(self.seq.next()).encode(&mut self.wbuf);
                self.unbinding = Some(Instant::now() + self.params.response_timeout);
            }
            if let Some(deadline) = self.unbinding
                && ((self.unbind_answered && self.delivers.is_empty())
                    || Instant::now() >= deadline)
            {
                self.flush();
                return Err(SessionError::Retired);
            }
            let now = Instant::now();
            if self.paused_until.is_some_and(|t| t <= now) {
                self.paused_until = None;
            }
            let room = self
                .params
                .window
                .saturating_sub(self.outstanding.len() + self.in_gates);
            let may_send = can_submit && room > 0 && self.paused_until.is_none() && !draining;
            let step = tokio::select! {
                biased;
                _ = shutdown.changed() => {
                    Pdu::unbind(self.seq.next()).encode(&mut self.wbuf);
                    Err(SessionError::Shutdown)
                }
                first = reader.next() => self.read_burst(first, reader),
                Some(answers) = self.delivers.next(), if !self.delivers.is_empty() => {
                    self.answer_delivers(answers);
                    Ok(())
                }
                _ = handler.ready(), if may_send => {
                    self.take(room);
                    Ok(())
                }
                durable = front_gate(&mut self.gated), if !self.gated.is_empty() => {
                    self.send_durable(durable);
                    Ok(())
                }
                _ = sleep_until_opt(self.paused_until) => Ok(()),
                _ = tick.tick() => self.tick(),
                _ = retired(&mut retire), if !draining => {
                    draining = true;
                    Ok(())
                }
                _ = sleep_until_opt(self.unbinding), if self.unbinding.is_some() => Ok(()),
            };
            step?;
            self.meters.window.set(self.outstanding.len() as f64);
            self.flush();
        }
    }

    /// Handles `first` and whatever else is already buffered (at most
    /// [`READS_PER_TURN`]); an error ends the session.
    fn read_burst<R>(
        &mut self,
        first: Option<Result<Result<Pdu, super::pdu::PduError>, super::codec::CodecError>>,
        reader: &mut FramedRead<R, SmppCodec>,
    ) -> Result<(), SessionError>
    where
        R: AsyncRead + Unpin,
    {
        let mut burst: Vec<(u32, DeliverSm)> = Vec::new();
        let mut next = first;
        let mut n = 0;
        // One clock read for the burst: it is handled in this turn,
        // without awaiting (16 reads per message were ~2% of the CPU).
        let now = Instant::now();
        let ended = loop {
            match next {
                None => break Some(SessionError::Closed),
                Some(Err(e)) => break Some(SessionError::Link(e.to_string())),
                Some(Ok(Err(bad))) => {
                    tracing::debug!(target: TARGET, bind = %self.params.name, error = %crate::model::LogSafe::display(&bad), "undecodable PDU");
                    // Never nack a response: that would loop with the peer.
                    if bad
                        .command_id()
                        .is_none_or(|c| c & super::pdu::RESPONSE_BIT == 0)
                    {
                        bad.generic_nack().encode(&mut self.wbuf);
                    }
                }
                Some(Ok(Ok(pdu))) => {
                    self.last_read = now;
                    if let Some(e) = self.on_pdu(pdu, &mut burst, now) {
                        break Some(e);
                    }
                }
            }
            n += 1;
            if n >= READS_PER_TURN {
                break None;
            }
            match futures_util::FutureExt::now_or_never(reader.next()) {
                Some(p) => next = p,
                None => break None,
            }
        };
        if !burst.is_empty() {
            self.delivers.push(self.handler.deliver_batch(burst));
        }
        ended.map_or(Ok(()), Err)
    }

    /// One PDU from the SMSC, read at `now`; deliver_sm join `burst`.
    /// Returns why the session ends, if it does.
    fn on_pdu(
        &mut self,
        pdu: Pdu,
        burst: &mut Vec<(u32, DeliverSm)>,
        now: Instant,
    ) -> Option<SessionError> {
        match pdu.body {
            Body::SubmitSmResp(r) => {
                if let Some(o) = self.outstanding.remove(&pdu.sequence_number) {
                    self.on_submit_resp(o, pdu.command_status, r.message_id, now);
                }
            }
            Body::GenericNack => {
                if let Some(o) = self.outstanding.remove(&pdu.sequence_number) {
                    self.handler
                        .submit_resp(o.job, pdu.command_status, Bytes::new());
                }
            }
            Body::DeliverSm(sm) => burst.push((pdu.sequence_number, sm)),
            Body::EnquireLink => {
                Pdu::enquire_link_resp(pdu.sequence_number).encode(&mut self.wbuf);
            }
            Body::EnquireLinkResp => {
                if self.enquire.is_some_and(|(s, _)| s == pdu.sequence_number) {
                    self.enquire = None;
                }
            }
            Body::Unbind => {
                Pdu::unbind_resp(pdu.sequence_number).encode(&mut self.wbuf);
                return Some(SessionError::Closed);
            }
            Body::UnbindResp if self.unbinding.is_some() => self.unbind_answered = true,
            Body::UnbindResp => return Some(SessionError::Closed),
            _ if pdu.is_response() => {}
            _ => Pdu::generic_nack(pdu.sequence_number, CommandStatus::ESME_RINVCMDID)
                .encode(&mut self.wbuf),
        }
        None
    }

    /// A submit_sm answered (read at `now`): metrics, adaptive slow-down,
    /// the handler.
    fn on_submit_resp(
        &mut self,
        o: Outstanding<H::Job>,
        status: CommandStatus,
        message_id: Bytes,
        now: Instant,
    ) {
        self.meters
            .latency
            .record(now.saturating_duration_since(o.sent).as_secs_f64());
        self.meters.response(&self.params.carrier, status);
        if status.is_ok() {
            self.aimd.on_accept(now);
        } else if status.is_temporary() {
            self.meters.throttled.increment(1);
            self.aimd.on_throttle(now);
            let at = self.aimd.ready_at(now);
            if at > now {
                self.paused_until = Some(at);
            }
        }
        self.handler.submit_resp(o.job, status, message_id);
    }

    /// Writes the answers to a deliver_sm burst, and those of any other
    /// burst already answered.
    fn answer_delivers(&mut self, answers: Vec<(u32, CommandStatus)>) {
        for (s, status) in answers {
            Pdu::deliver_sm_resp(s, status).encode(&mut self.wbuf);
        }
        while let Some(Some(answers)) = futures_util::FutureExt::now_or_never(self.delivers.next())
        {
            for (s, status) in answers {
                Pdu::deliver_sm_resp(s, status).encode(&mut self.wbuf);
            }
        }
    }

    /// Takes up to `room` jobs: what pacing allows gets its first look and
    /// waits for its `Written` record; the rest goes back, in order.
    fn take(&mut self, room: usize) {
        let jobs = self.handler.take(room.min(256));
        let mut unsent = Vec::new();
        let mut go = Vec::with_capacity(jobs.len());
        // One clock read for the jobs taken together.
        let now = Instant::now();
        let now_ms = crate::model::now_ms();
        for job in jobs {
            if !unsent.is_empty() {
                unsent.push(job);
                continue;
            }
            let adaptive_at = self.aimd.ready_at(now);
            if adaptive_at > now {
                self.paused_until = Some(adaptive_at);
                unsent.push(job);
                continue;
            }
            if let Some(r) = &self.rate
                && let Err(wait) = r.check()
            {
                // The limiter measured `wait` from its own clock read.
                self.paused_until = Some(Instant::now() + wait);
                unsent.push(job);
                continue;
            }
            self.aimd.on_send(now);
            go.extend(self.handler.vet(job, now_ms));
        }
        if !unsent.is_empty() {
            self.handler.give_back(unsent);
        }
        if !go.is_empty() {
            self.in_gates += go.len();
            self.gated.push_back((self.handler.will_write(&go), go));
        }
    }

    /// The oldest gate resolved: when durable, each job gets its last look
    /// and is submitted; when the journal failed, nothing leaves.
    fn send_durable(&mut self, durable: bool) {
        let (_, jobs) = self.gated.pop_front().expect("polled above");
        self.in_gates -= jobs.len();
        if durable {
            let sent = Instant::now();
            let now_ms = crate::model::now_ms();
            for job in jobs {
                // Another look after the wait for the disk.
                let Some(job) = self.handler.vet(job, now_ms) else {
                    continue;
                };
                let s = self.seq.next();
                encode_submit(s, self.handler.submit_sm(&job), &mut self.wbuf);
                self.meters.submits.increment(1);
                self.outstanding.insert(s, Outstanding { job, sent });
            }
        } else {
            // The journal failed: nothing may leave. Back in the queue; try
            // again later (the gateway is going down).
            self.handler.give_back(jobs);
            self.paused_until = Some(Instant::now() + Duration::from_secs(1));
        }
    }

    /// Keep-alive and deadlines: the adaptive rate moves on, an idle link
    /// gets an enquire_link, and an answer overdue ends the session.
    fn tick(&mut self) -> Result<(), SessionError> {
        let params = self.params;
        let now = Instant::now();
        self.aimd.on_tick(now);
        self.meters
            .adaptive_rate
            .set(self.aimd.rate().unwrap_or(0.0));
        if let Some((_, at)) = self.enquire {
            if now.duration_since(at) > params.response_timeout {
                return Err(SessionError::ResponseTimeout {
                    what: "enquire_link",
                    timeout: params.response_timeout,
                });
            }
        } else if self.unbinding.is_none()
            && now.duration_since(self.last_read) >= params.enquire_link_interval
        {
            let s = self.seq.next();
            Pdu::enquire_link(s).encode(&mut self.wbuf);
            self.enquire = Some((s, now));
        }
        let expired = self
            .outstanding
            .values()
            .filter(|o| now.duration_since(o.sent) > params.response_timeout)
            .count();
        if expired > 0 {
            // Responses that never come mean a sick link: hand the jobs
            // back as unanswered and reconnect.
            tracing::warn!(target: TARGET, bind = %params.name, count = expired, "submit_sm response timeout");
            return Err(SessionError::ResponseTimeout {
                what: "submit_sm",
                timeout: params.response_timeout,
            });
        }
        Ok(())
    }

    /// The session ended: sends what was encoded, and hands every job back
    /// explicitly (never dropped, never silently resent).
    fn close(&mut self) {
        self.flush();
        // Jobs still waiting for the journal were never written: back to
        // the queue, in order.
        let never_written: Vec<H::Job> = self.gated.drain(..).flat_map(|(_, jobs)| jobs).collect();
        if !never_written.is_empty() {
            self.handler.give_back(never_written);
        }
        // Every outstanding submit is resolved explicitly.
        let mut left: Vec<_> = self.outstanding.drain().collect();
        left.sort_by_key(|(s, _)| *s);
        for (_, o) in left {
            self.handler.unanswered(o.job);
        }
        self.meters.window.set(0.0);
        self.meters.adaptive_rate.set(0.0);
    }
}

/// Resolves when the oldest write gate does.
async fn front_gate(gated: &mut VecDeque<(WriteGate, Vec<impl Sized>)>) -> bool {
    match gated.front_mut() {
        Some((gate, _)) => gate.as_mut().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

fn encode_submit(seq: u32, sm: &SubmitSm, dst: &mut BytesMut) {
    // Encode by reference: the job keeps its PDU for a possible resend.
    Pdu::new(seq, Body::SubmitSm(sm.clone())).encode(dst);
}

fn status_label(s: CommandStatus) -> String {
    match s.name() {
        Some(n) => n.to_owned(),
        None => format!("0x{:08x}", s.0),
    }
}

/// Sequence numbers 1..=0x7FFFFFFF, wrapping.
#[derive(Debug, Default)]
struct Sequence(u32);

impl Sequence {
    fn next(&mut self) -> u32 {
        self.0 = if self.0 >= 0x7FFF_FFFF { 1 } else { self.0 + 1 };
        self.0
    }
}

#[cfg(test)]
mod tests;
