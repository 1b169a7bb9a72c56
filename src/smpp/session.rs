//! The SMPP client (ESME) bind session: connect (TCP or TLS), bind, then one
//! driver task that keeps a window of outstanding submit_sm matched by
//! sequence number, answers the SMSC's deliver_sm and enquire_link promptly,
//! sends enquire_link when idle, times out responses, slows down on
//! ESME_RTHROTTLED / ESME_RMSGQFUL, and reconnects with backoff.
//!
//! What to send and what to do with answers belongs to a [`Handler`] (the
//! carrier): the session only speaks the protocol. On disconnect every
//! outstanding submit is handed back to the handler explicitly — never
//! silently dropped, never silently resent.
//!
//! Reads and writes never wait on each other: writes go to a writer task that
//! coalesces every PDU encoded in one turn of the loop into one syscall, and
//! reads are capped per turn so a flood of deliver_sm cannot starve timers.

use std::collections::HashMap;
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
    /// after the journal): `None` when it must not go any more; the handler
    /// has then ended it. The default lets every job go.
    fn vet(&self, job: Self::Job) -> Option<Self::Job> {
        Some(job)
    }

    /// Records durably that `jobs` are about to be written; nothing is
    /// written before the gate resolves true. The default is open at once.
    fn will_write(&self, jobs: &[Self::Job]) -> WriteGate {
        let _ = jobs;
        Box::pin(std::future::ready(true))
    }

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
    /// Name for logs and metrics (`carrier/n`).
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
    loop {
        if *shutdown.borrow() {
            return;
        }
        let bound = std::sync::atomic::AtomicBool::new(false);
        let stop = shutdown.clone();
        let session = async {
            let stream = connect(params.clone()).await?;
            serve(stream, &params, &handler, rate.clone(), stop, &bound).await
        };
        let result = tokio::select! {
            r = session => r,
            _ = shutdown.changed() => Err(SessionError::Shutdown),
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
            Err(SessionError::BindRefused(status)) => {
                metrics::counter!("sluice_smpp_bind_failures_total",
                    "carrier" => params.carrier.to_string(), "status" => status_label(status))
                .increment(1);
                if is_auth_refusal(status) {
                    wait = params.auth_failure_backoff.max(delay);
                    tracing::error!(target: TARGET, bind = %params.name, system_id = %params.system_id,
                        %status, retry_in = ?wait,
                        "the SMSC refused the credentials; check system_id and password (waiting long before retrying, so the carrier does not lock the account)");
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
        tokio::select! {
            _ = tokio::time::sleep(wait + jitter) => {}
            _ = shutdown.changed() => return,
        }
        delay = (delay * 2).min(params.reconnect_max);
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
    let mut wbuf = BytesMut::with_capacity(64 * 1024);
    let mut seq = Sequence::default();

    // === bind ===
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
    let bind_seq = seq.next();
    Pdu::new(bind_seq, body).encode(&mut wbuf);
    let _ = out.send(wbuf.split().freeze());
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
                break;
            }
            Some(Ok(Ok(p))) if p.command_id() == super::pdu::CommandId::EnquireLink as u32 => {
                Pdu::enquire_link_resp(p.sequence_number).encode(&mut wbuf);
                let _ = out.send(wbuf.split().freeze());
            }
            Some(Ok(_)) => {} // nothing else is meaningful before the bind answer
        }
    }
    bound.store(true, std::sync::atomic::Ordering::Relaxed);
    handler.bind_state(true);
    // Whatever ends the session below, the bind is down again.
    struct Down<'a, H: Handler>(&'a H);
    impl<H: Handler> Drop for Down<'_, H> {
        fn drop(&mut self) {
            self.0.bind_state(false);
        }
    }
    let _down = Down(&**handler);
    tracing::info!(target: TARGET, bind = %params.name, system_id = %params.system_id, mode = ?params.mode, "bound");
    let labels = [
        ("carrier", params.carrier.to_string()),
        ("bind", params.name.to_string()),
    ];
    metrics::gauge!("sluice_smpp_bind_up", &labels).set(1.0);

    // === session loop ===
    let can_submit = params.mode != BindMode::Receiver;
    let mut outstanding: HashMap<u32, Outstanding<H::Job>> = HashMap::with_capacity(params.window);
    // Jobs past pacing whose `Written` record is on its way to the disk, in
    // take order; they count against the window.
    let mut gated: std::collections::VecDeque<(WriteGate, Vec<H::Job>)> =
        std::collections::VecDeque::new();
    let mut in_gates = 0usize;
    let mut delivers: FuturesUnordered<DeliverAnswers> = FuturesUnordered::new();
    let mut last_read = Instant::now();
    let mut enquire: Option<(u32, Instant)> = None;
    let mut paused_until: Option<Instant> = None;
    // Adaptive slow-down on ESME_RTHROTTLED / ESME_RMSGQFUL.
    let mut aimd =
        crate::shaping::aimd::Aimd::new((params.rate > 0).then_some(f64::from(params.rate)));
    let adaptive_gauge = metrics::gauge!("sluice_smpp_adaptive_rate", &labels);
    let mut tick =
        tokio::time::interval(Duration::from_millis(250).min(params.response_timeout / 4));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let window_gauge = metrics::gauge!("sluice_smpp_window_in_use", &labels);
    let submits = metrics::counter!("sluice_smpp_submits_total", &labels);
    let throttled =
        metrics::counter!("sluice_smpp_throttled_total", "carrier" => params.carrier.to_string());
    let latency = metrics::histogram!("sluice_smpp_response_seconds", "carrier" => params.carrier.to_string());
    let carrier_label = params.carrier.clone();
    // One handle per status seen: no registry lookup per response.
    let mut response_counters: HashMap<u32, metrics::Counter> = HashMap::new();

    let result = loop {
        let now = Instant::now();
        if paused_until.is_some_and(|t| t <= now) {
            paused_until = None;
        }
        let room = params.window.saturating_sub(outstanding.len() + in_gates);
        let may_send = can_submit && room > 0 && paused_until.is_none();
        tokio::select! {
            biased;
            _ = shutdown.changed() => {
                Pdu::unbind(seq.next()).encode(&mut wbuf);
                break Err(SessionError::Shutdown);
            }
            first = reader.next() => {
                // Read a burst: this one and whatever is already buffered.
                let mut burst: Vec<(u32, DeliverSm)> = Vec::new();
                let mut next = first;
                let mut n = 0;
                let ended = loop {
                    match next {
                        None => break Some(SessionError::Closed),
                        Some(Err(e)) => break Some(SessionError::Link(e.to_string())),
                        Some(Ok(Err(bad))) => {
                            tracing::debug!(target: TARGET, bind = %params.name, error = %crate::model::LogSafe::display(&bad), "undecodable PDU");
                            // Never nack a response: that would loop with the peer.
                            if bad.command_id().is_none_or(|c| c & super::pdu::RESPONSE_BIT == 0) {
                                bad.generic_nack().encode(&mut wbuf);
                            }
                        }
                        Some(Ok(Ok(pdu))) => {
                            last_read = Instant::now();
                            match pdu.body {
                                Body::SubmitSmResp(r) => {
                                    if let Some(o) = outstanding.remove(&pdu.sequence_number) {
                                        latency.record(o.sent.elapsed().as_secs_f64());
                                        response_counters
                                            .entry(pdu.command_status.0)
                                            .or_insert_with(|| metrics::counter!("sluice_smpp_responses_total",
                                                "carrier" => carrier_label.to_string(),
                                                "status" => status_label(pdu.command_status)))
                                            .increment(1);
                                        if pdu.command_status.is_ok() {
                                            aimd.on_accept(Instant::now());
                                        } else if pdu.command_status.is_temporary() {
                                            throttled.increment(1);
                                            let now = Instant::now();
                                            aimd.on_throttle(now);
                                            let at = aimd.ready_at(now);
                                            if at > now {
                                                paused_until = Some(at);
                                            }
                                        }
                                        handler.submit_resp(o.job, pdu.command_status, r.message_id);
                                    }
                                }
                                Body::GenericNack => {
                                    if let Some(o) = outstanding.remove(&pdu.sequence_number) {
                                        handler.submit_resp(o.job, pdu.command_status, Bytes::new());
                                    }
                                }
                                Body::DeliverSm(sm) => burst.push((pdu.sequence_number, sm)),
                                Body::EnquireLink => Pdu::enquire_link_resp(pdu.sequence_number).encode(&mut wbuf),
                                Body::EnquireLinkResp => {
                                    if enquire.is_some_and(|(s, _)| s == pdu.sequence_number) {
                                        enquire = None;
                                    }
                                }
                                Body::Unbind => {
                                    Pdu::unbind_resp(pdu.sequence_number).encode(&mut wbuf);
                                    break Some(SessionError::Closed);
                                }
                                Body::UnbindResp => break Some(SessionError::Closed),
                                _ if pdu.is_response() => {}
                                _ => Pdu::generic_nack(pdu.sequence_number, CommandStatus::ESME_RINVCMDID).encode(&mut wbuf),
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
                    delivers.push(handler.deliver_batch(burst));
                }
                if let Some(e) = ended {
                    break Err(e);
                }
            }
            Some(answers) = delivers.next(), if !delivers.is_empty() => {
                for (s, status) in answers {
                    Pdu::deliver_sm_resp(s, status).encode(&mut wbuf);
                }
                while let Some(Some(answers)) = futures_util::FutureExt::now_or_never(delivers.next()) {
                    for (s, status) in answers {
                        Pdu::deliver_sm_resp(s, status).encode(&mut wbuf);
                    }
                }
            }
            _ = handler.ready(), if may_send => {
                let jobs = handler.take(room.min(256));
                let mut unsent = Vec::new();
                let mut go = Vec::with_capacity(jobs.len());
                for job in jobs {
                    if !unsent.is_empty() {
                        unsent.push(job);
                        continue;
                    }
                    let now = Instant::now();
                    let adaptive_at = aimd.ready_at(now);
                    if adaptive_at > now {
                        paused_until = Some(adaptive_at);
                        unsent.push(job);
                        continue;
                    }
                    if let Some(r) = &rate
                        && let Err(wait) = r.check() {
                            paused_until = Some(now + wait);
                            unsent.push(job);
                            continue;
                        }
                    aimd.on_send(now);
                    go.extend(handler.vet(job));
                }
                if !unsent.is_empty() {
                    handler.give_back(unsent);
                }
                if !go.is_empty() {
                    in_gates += go.len();
                    gated.push_back((handler.will_write(&go), go));
                }
            }
            durable = async { gated.front_mut().expect("guarded").0.as_mut().await }, if !gated.is_empty() => {
                let (_, jobs) = gated.pop_front().expect("polled above");
                in_gates -= jobs.len();
                if durable {
                    let sent = Instant::now();
                    for job in jobs {
                        // Another look after the wait for the disk.
                        let Some(job) = handler.vet(job) else { continue };
                        let s = seq.next();
                        encode_submit(s, handler.submit_sm(&job), &mut wbuf);
                        submits.increment(1);
                        outstanding.insert(s, Outstanding { job, sent });
                    }
                } else {
                    // The journal failed: nothing may leave. Back in the
                    // queue; try again later (the gateway is going down).
                    handler.give_back(jobs);
                    paused_until = Some(Instant::now() + Duration::from_secs(1));
                }
            }
            _ = sleep_until_opt(paused_until) => {}
            _ = tick.tick() => {
                let now = Instant::now();
                aimd.on_tick(now);
                adaptive_gauge.set(aimd.rate().unwrap_or(0.0));
                if let Some((_, at)) = enquire {
                    if now.duration_since(at) > params.response_timeout {
                        break Err(SessionError::ResponseTimeout { what: "enquire_link", timeout: params.response_timeout });
                    }
                } else if now.duration_since(last_read) >= params.enquire_link_interval {
                    let s = seq.next();
                    Pdu::enquire_link(s).encode(&mut wbuf);
                    enquire = Some((s, now));
                }
                let expired: Vec<u32> = outstanding
                    .iter()
                    .filter(|(_, o)| now.duration_since(o.sent) > params.response_timeout)
                    .map(|(s, _)| *s)
                    .collect();
                if !expired.is_empty() {
                    // Responses that never come mean a sick link: hand the
                    // jobs back as unanswered and reconnect.
                    tracing::warn!(target: TARGET, bind = %params.name, count = expired.len(), "submit_sm response timeout");
                    break Err(SessionError::ResponseTimeout { what: "submit_sm", timeout: params.response_timeout });
                }
            }
        }
        window_gauge.set(outstanding.len() as f64);
        if !wbuf.is_empty() {
            let _ = out.send(wbuf.split().freeze());
        }
    };
    if !wbuf.is_empty() {
        let _ = out.send(wbuf.split().freeze());
    }
    // Jobs still waiting for the journal were never written: back to the
    // queue, in order.
    let never_written: Vec<H::Job> = gated.into_iter().flat_map(|(_, jobs)| jobs).collect();
    if !never_written.is_empty() {
        handler.give_back(never_written);
    }
    // Every outstanding submit is resolved explicitly.
    let mut left: Vec<_> = outstanding.into_iter().collect();
    left.sort_by_key(|(s, _)| *s);
    for (_, o) in left {
        handler.unanswered(o.job);
    }
    window_gauge.set(0.0);
    drop(out);
    let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
    result
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
