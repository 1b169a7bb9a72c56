//! One upstream ESME connection: its bind, the submits it sends (batched
//! into admission, each answered once durable), the `deliver_sm`s it is
//! sent and their answers, and its timers.
//!
//! One task per connection. Reads are drained in bursts: every PDU already
//! buffered is handled before the burst's submits go to admission as one
//! batch (one journal wait for all of them). Writes collect in one buffer
//! flushed once per turn of the loop.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::codec::FramedRead;

use super::deliver::{self, MAX_PASSING_ERRORS, PassingErrors, with_sequence};
use super::submit::{self, Answers, Command, Envelope, PartOutcome, Parts};
use super::{Accounts, ENDPOINT, SmppServerLimits, TARGET};
use crate::door::Conn;
use crate::door::throttle::AuthThrottle;
use crate::events::{ConnId, Endpoint};
use crate::ingest::Backend;
use crate::ingest::identity::Binding;
use crate::journal::PendingEvent;
use crate::model::LogSafe;
use crate::model::submit::{Submission, SubmitResult};
use crate::smpp::codec::{CodecError, SmppCodec};
use crate::smpp::pdu::{Bind, BindResp, Body, CommandStatus, Pdu, PduError, SubmitSm, Tlv, tag};

/// `data_sm` and its response.
const DATA_SM: u32 = 0x0000_0103;
const DATA_SM_RESP: u32 = 0x8000_0103;

/// How long sending stops after the upstream refuses a `deliver_sm` for now.
const DELIVER_BACKOFF: Duration = Duration::from_secs(1);

/// What a session shares with the server.
#[derive(Debug)]
pub(super) struct Context<B> {
    pub backend: Arc<B>,
    pub accounts: Arc<Accounts>,
    pub throttle: Arc<AuthThrottle>,
    pub limits: Arc<SmppServerLimits>,
}

/// The kind of bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Transmitter,
    Receiver,
    Transceiver,
}

impl Mode {
    fn submits(self) -> bool {
        self != Mode::Receiver
    }

    fn receives(self) -> bool {
        self != Mode::Transmitter
    }

    fn name(self) -> &'static str {
        match self {
            Mode::Transmitter => "transmitter",
            Mode::Receiver => "receiver",
            Mode::Transceiver => "transceiver",
        }
    }

    fn resp(self, r: BindResp) -> Body {
        match self {
            Mode::Transmitter => Body::BindTransmitterResp(r),
            Mode::Receiver => Body::BindReceiverResp(r),
            Mode::Transceiver => Body::BindTransceiverResp(r),
        }
    }
}

/// One admission batch's answers: per message, the submits it answers.
type Admitted = Pin<Box<dyn Future<Output = (Vec<Answers>, Vec<SubmitResult>)> + Send>>;

struct Session<B> {
    ctx: Context<B>,
    peer: SocketAddr,
    binding: Binding,
    conn: ConnId,
    tenant: Option<Arc<str>>,
    mode: Option<Mode>,
    /// Bytes to write.
    out: BytesMut,
    next_seq: u32,
    /// Admission batches in progress.
    admitting: FuturesUnordered<Admitted>,
    /// Submits of the batches in progress.
    admitting_submits: usize,
    /// Messages of the current burst, not yet handed to admission.
    batch: Vec<(Answers, Submission)>,
    /// Submits those messages answer.
    batch_submits: usize,
    parts: Parts,
    /// The tenant's `smpp` destination (receiver and transceiver binds).
    endpoint: Option<Arc<Endpoint>>,
    /// `deliver_sm` sent, by sequence number, with when.
    sent: HashMap<u32, (Arc<PendingEvent>, Instant)>,
    deliver_paused_until: Option<Instant>,
    /// Events answered with a passing error, and how often.
    passing_errors: PassingErrors,
    opened: Instant,
    last_heard: Instant,
    enquire_sent: Option<(u32, Instant)>,
    /// The upstream unbound (its sequence number), or sluice is stopping:
    /// no more reading; answer what is admitted, then close.
    unbind_seq: Option<u32>,
    stopping: Option<Instant>,
    /// The stream ended or lost its framing: no more reading and no unbind
    /// (set with `stopping`); what is being admitted is still answered.
    broken: bool,
    close: bool,
    /// The stamp of the credentials it bound with (see [`Accounts`]).
    bound_stamp: Option<u64>,
}

/// Runs one connection to its end.
pub(super) async fn run<B: Backend>(
    ctx: Context<B>,
    conn: Conn,
    binding: Binding,
    id: ConnId,
    mut shutdown: watch::Receiver<bool>,
) {
    let Conn {
        stream,
        peer,
        permit,
        ..
    } = conn;
    let (rd, mut wr) = tokio::io::split(stream);
    let mut frames = FramedRead::new(rd, SmppCodec::new(ctx.limits.max_pdu_bytes));
    let now = Instant::now();
    let mut s = Session {
        parts: Parts::new(ctx.limits.max_pending_submits.max(1)),
        ctx,
        peer,
        binding,
        conn: id,
        tenant: None,
        mode: None,
        out: BytesMut::with_capacity(4096),
        next_seq: 1,
        admitting: FuturesUnordered::new(),
        admitting_submits: 0,
        batch: Vec::new(),
        batch_submits: 0,
        endpoint: None,
        sent: HashMap::new(),
        deliver_paused_until: None,
        passing_errors: PassingErrors::default(),
        opened: now,
        last_heard: now,
        enquire_sent: None,
        unbind_seq: None,
        stopping: None,
        broken: false,
        close: false,
        bound_stamp: None,
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let write_timeout = s.ctx.limits.response_timeout;
    loop {
        if s.unbind_seq.is_some() || s.stopping.is_some() {
            s.finish_if_answered();
        }
        if !s.out.is_empty() {
            match tokio::time::timeout(write_timeout, wr.write_all(&s.out)).await {
                Ok(Ok(())) => s.out.clear(),
                Ok(Err(e)) => {
                    tracing::debug!(target: TARGET, peer = %s.peer, error = %e, "write failed");
                    break;
                }
                Err(_) => {
                    tracing::warn!(target: TARGET, peer = %s.peer, "the upstream does not read; closing");
                    break;
                }
            }
        }
        if s.close {
            break;
        }
        let reading = s.unbind_seq.is_none() && s.stopping.is_none();
        let delivering = reading && s.can_deliver();
        let endpoint = s.endpoint.clone();
        tokio::select! {
            biased;
            _ = shutdown.changed(), if s.stopping.is_none() => {
                s.stopping = Some(Instant::now());
            }
            Some((answers, results)) = s.admitting.next(), if !s.admitting.is_empty() => {
                s.answer(answers, results);
            }
            frame = frames.next(), if reading => {
                let mut frame = frame;
                loop {
                    match frame {
                        Some(Ok(f)) => s.on_frame(f).await,
                        Some(Err(e)) => {
                            s.fatal(e);
                            break;
                        }
                        None => {
                            s.broken();
                            break;
                        }
                    }
                    if s.close || s.unbind_seq.is_some() || s.batch.len() >= s.ctx.limits.max_batch {
                        break;
                    }
                    match frames.next().now_or_never() {
                        Some(next) => frame = next,
                        None => break,
                    }
                }
                s.admit();
            }
            () = wait_ready(endpoint), if delivering => s.deliver(),
            _ = tick.tick() => s.on_tick(),
        }
    }
    s.closed();
    drop(permit);
}

/// Resolves when the destination has events ready.
async fn wait_ready(endpoint: Option<Arc<Endpoint>>) {
    match endpoint {
        Some(e) => e.wait().await,
        None => std::future::pending().await,
    }
}

impl<B: Backend> Session<B> {
    fn write(&mut self, pdu: &Pdu) {
        pdu.encode(&mut self.out);
    }

    fn seq(&mut self) -> u32 {
        let s = self.next_seq;
        self.next_seq = if s >= 0x7FFF_FFFF { 1 } else { s + 1 };
        s
    }

    fn tenant_label(&self) -> String {
        self.tenant.as_deref().unwrap_or("").to_owned()
    }

    /// A stream error: answer what can be answered, then close.
    fn fatal(&mut self, e: CodecError) {
        if let CodecError::Length { length, max } = &e {
            metrics::counter!("sluice_smpp_server_malformed_total").increment(1);
            tracing::warn!(target: TARGET, peer = %self.peer, length, max,
                "PDU length out of range; closing");
            self.write(&Pdu::generic_nack(0, CommandStatus::ESME_RINVCMDLEN));
        }
        self.broken();
    }

    /// Nothing more can be read: the submits being admitted are answered
    /// before the connection closes (within `response_timeout`), so an ESME
    /// does not send again what was made durable.
    fn broken(&mut self) {
        self.broken = true;
        self.stopping.get_or_insert_with(Instant::now);
    }

    async fn on_frame(&mut self, frame: Result<Pdu, PduError>) {
        self.last_heard = Instant::now();
        let pdu = match frame {
            Ok(p) => p,
            Err(e) => {
                metrics::counter!("sluice_smpp_server_malformed_total").increment(1);
                tracing::debug!(target: TARGET, peer = %self.peer, error = %e, "malformed PDU");
                if e.command_id()
                    .is_none_or(|id| id & crate::smpp::pdu::RESPONSE_BIT == 0)
                {
                    self.write(&e.generic_nack());
                }
                return;
            }
        };
        if pdu.is_response() {
            self.on_response(pdu);
            return;
        }
        let seq = pdu.sequence_number;
        match (self.mode, pdu.body) {
            (_, Body::EnquireLink) => self.write(&Pdu::enquire_link_resp(seq)),
            (None, Body::BindTransmitter(b)) => self.bind(seq, Mode::Transmitter, b).await,
            (None, Body::BindReceiver(b)) => self.bind(seq, Mode::Receiver, b).await,
            (None, Body::BindTransceiver(b)) => self.bind(seq, Mode::Transceiver, b).await,
            (
                Some(mode),
                Body::BindTransmitter(_) | Body::BindReceiver(_) | Body::BindTransceiver(_),
            ) => {
                self.write(&Pdu {
                    command_status: CommandStatus::ESME_RALYBND,
                    sequence_number: seq,
                    body: mode.resp(BindResp::default()),
                });
            }
            (None, Body::Unbind) | (None, Body::SubmitSm(_)) => {
                self.write(&Pdu::generic_nack(seq, CommandStatus::ESME_RINVBNDSTS));
            }
            (
                None,
                Body::Other {
                    command_id: DATA_SM,
                    ..
                },
            ) => {
                self.write(&Pdu::generic_nack(seq, CommandStatus::ESME_RINVBNDSTS));
            }
            (Some(_), Body::Unbind) => self.unbind_seq = Some(seq),
            (Some(mode), Body::SubmitSm(sm)) => {
                if mode.submits() {
                    self.submit(seq, Command::SubmitSm, &sm);
                } else {
                    self.refuse(seq, Command::SubmitSm, CommandStatus::ESME_RINVBNDSTS);
                }
            }
            (
                Some(mode),
                Body::Other {
                    command_id: DATA_SM,
                    body,
                },
            ) => {
                if !mode.submits() {
                    self.refuse(seq, Command::DataSm, CommandStatus::ESME_RINVBNDSTS);
                    return;
                }
                match SubmitSm::decode_data_sm(&body, seq) {
                    Ok(sm) => self.submit(seq, Command::DataSm, &sm),
                    Err(e) => {
                        metrics::counter!("sluice_smpp_server_malformed_total").increment(1);
                        self.refuse(seq, Command::DataSm, e.command_status());
                    }
                }
            }
            (_, _) => {
                // query_sm, submit_multi, cancel_sm, replace_sm, deliver_sm,
                // outbind, unknown ids: not offered.
                self.write(&Pdu::generic_nack(seq, CommandStatus::ESME_RINVCMDID));
            }
        }
    }

    async fn bind(&mut self, seq: u32, mode: Mode, b: Bind) {
        let ip = self.peer.ip();
        let now = Instant::now();
        if self.ctx.throttle.check(ip, now).is_err() {
            metrics::counter!("sluice_smpp_server_bind_failures_total", "reason" => "locked_out")
                .increment(1);
            self.answer_bind(seq, mode, CommandStatus::ESME_RBINDFAIL);
            self.close = true;
            return;
        }
        let checked = self
            .ctx
            .accounts
            .check_stamped(&b.system_id, &b.password)
            .and_then(|(tenant, stamp)| match &self.binding {
                Binding::Any => Ok((tenant, stamp)),
                Binding::Tenant(bound) if **bound == *tenant => Ok((tenant, stamp)),
                _ => Err(CommandStatus::ESME_RBINDFAIL),
            });
        match checked {
            Ok((tenant, stamp)) => {
                self.bound_stamp = Some(stamp);
                metrics::counter!("sluice_smpp_server_binds_total", "mode" => mode.name())
                    .increment(1);
                tracing::info!(target: TARGET, peer = %self.peer, tenant = %LogSafe::new(&tenant),
                    mode = mode.name(), "upstream bound");
                if mode.receives() {
                    self.endpoint = self.ctx.backend.events().endpoint(&tenant, ENDPOINT);
                }
                self.tenant = Some(tenant);
                self.mode = Some(mode);
                self.write(&Pdu {
                    command_status: CommandStatus::ESME_ROK,
                    sequence_number: seq,
                    body: mode.resp(BindResp {
                        system_id: Bytes::from(self.ctx.limits.system_id.clone()),
                        tlvs: vec![Tlv::from_u8(tag::SC_INTERFACE_VERSION, 0x34)],
                    }),
                });
            }
            Err(status) => {
                metrics::counter!("sluice_smpp_server_bind_failures_total", "reason" => "credentials")
                    .increment(1);
                let wait = self.ctx.throttle.failed(ip, now);
                // Never the password.
                tracing::warn!(target: TARGET, peer = %self.peer,
                    system_id = %LogSafe::bytes(&b.system_id), %status, answer_in = ?wait,
                    "SMPP bind refused");
                tokio::time::sleep(wait).await;
                self.answer_bind(seq, mode, status);
                self.close = true;
            }
        }
    }

    fn answer_bind(&mut self, seq: u32, mode: Mode, status: CommandStatus) {
        self.write(&Pdu {
            command_status: status,
            sequence_number: seq,
            body: mode.resp(BindResp::default()),
        });
    }

    /// Answers one submit with an error.
    fn refuse(&mut self, seq: u32, command: Command, status: CommandStatus) {
        metrics::counter!("sluice_smpp_server_submits_total", "status" => status_label(status))
            .increment(1);
        self.answer_one(seq, command, status, Bytes::new());
    }

    /// Answers every submit of `answers` with the same error.
    fn refuse_all(&mut self, answers: Answers, status: CommandStatus) {
        for (seq, command) in answers {
            self.refuse(seq, command, status);
        }
    }

    fn answer_one(&mut self, seq: u32, command: Command, status: CommandStatus, id: Bytes) {
        match command {
            Command::SubmitSm => self.write(&Pdu::submit_sm_resp(seq, status, id)),
            Command::DataSm => {
                let mut body = BytesMut::with_capacity(id.len() + 1);
                body.put_slice(&id);
                body.put_u8(0);
                self.write(&Pdu {
                    command_status: status,
                    sequence_number: seq,
                    body: Body::Other {
                        command_id: DATA_SM_RESP,
                        body: body.freeze(),
                    },
                });
            }
        }
    }

    /// Submits waiting for an answer: being admitted, in this burst, or
    /// parts held.
    fn pending_submits(&self) -> usize {
        self.admitting_submits + self.batch_submits + self.parts.held()
    }

    fn submit(&mut self, seq: u32, command: Command, sm: &SubmitSm) {
        if self.pending_submits() >= self.ctx.limits.max_pending_submits {
            metrics::counter!("sluice_smpp_server_throttled_total", "cause" => "window")
                .increment(1);
            self.refuse(seq, command, CommandStatus::ESME_RTHROTTLED);
            return;
        }
        let queued = self.batch.len() as u64 + 1;
        if self.ctx.backend.headroom() < queued {
            metrics::counter!("sluice_smpp_server_throttled_total", "cause" => "backpressure")
                .increment(1);
            self.refuse(seq, command, CommandStatus::ESME_RTHROTTLED);
            return;
        }
        let now_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let env = match submit::envelope(sm, now_unix) {
            Ok(e) => e,
            Err(status) => return self.refuse(seq, command, status),
        };
        let part = submit::incoming(sm);
        let concat = match part.concat() {
            Ok(c) => c.filter(|c| c.total > 1),
            Err(e) => return self.refuse(seq, command, submit::text_status(&e)),
        };
        let (env, text, answers) = match concat {
            None => match part.decode() {
                Ok(d) => (env, d.text, vec![(seq, command)]),
                Err(e) => return self.refuse(seq, command, submit::text_status(&e)),
            },
            Some(info) => {
                match self
                    .parts
                    .push(sm, &part, info, env, (seq, command), Instant::now())
                {
                    Ok(PartOutcome::Held) => return,
                    Ok(PartOutcome::Whole(env, text, answers)) => (env, text, answers),
                    Err(refused) => {
                        let status = submit::text_status(&refused.error);
                        self.refuse_all(refused.earlier, status);
                        return self.refuse(seq, command, status);
                    }
                }
            }
        };
        self.queue(env, text, answers);
    }

    fn queue(&mut self, env: Envelope, text: String, answers: Answers) {
        let client_ref = deliver::client_ref(env.receipt);
        self.batch_submits += answers.len();
        self.batch
            .push((answers, submit::submission(env, text, client_ref)));
    }

    /// Hands the burst's messages to admission.
    fn admit(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let Some(tenant) = self.tenant.clone() else {
            return;
        };
        let (answers, messages): (Vec<Answers>, Vec<Submission>) =
            std::mem::take(&mut self.batch).into_iter().unzip();
        self.admitting_submits += std::mem::take(&mut self.batch_submits);
        let fut = self.ctx.backend.submit(&tenant, self.conn, messages);
        self.admitting
            .push(Box::pin(fut.map(move |results| (answers, results))));
    }

    /// Answers an admitted batch's submits.
    fn answer(&mut self, answers: Vec<Answers>, results: Vec<SubmitResult>) {
        self.admitting_submits -= answers.iter().map(Vec::len).sum::<usize>();
        let mut results = results.into_iter();
        for submits in answers {
            let (status, id) = match results.next().map(|r| r.outcome) {
                Some(Ok(a)) => (CommandStatus::ESME_ROK, Bytes::from(a.id.to_string())),
                Some(Err(rej)) => {
                    tracing::debug!(target: TARGET, peer = %self.peer, reason = %rej.reason,
                        detail = %LogSafe::new(&rej.detail), "submit refused");
                    (submit::reject_status(rej.reason), Bytes::new())
                }
                // Admission failed as a whole (it logged why).
                None => (CommandStatus::ESME_RSYSERR, Bytes::new()),
            };
            for (seq, command) in submits {
                metrics::counter!("sluice_smpp_server_submits_total", "status" => status_label(status))
                    .increment(1);
                self.answer_one(seq, command, status, id.clone());
            }
        }
    }

    /// Counts one more passing error for `event`; true while it may be
    /// sent again, false once it has failed [`MAX_PASSING_ERRORS`] times
    /// since its dead-letter clock last started.
    fn note_passing_error(&mut self, ep: &Endpoint, event: &PendingEvent) -> bool {
        self.passing_errors.note(event.event_id, ep.since_ms(event))
    }

    fn on_response(&mut self, pdu: Pdu) {
        let seq = pdu.sequence_number;
        match pdu.body {
            Body::EnquireLinkResp if self.enquire_sent.is_some_and(|(s, _)| s == seq) => {
                self.enquire_sent = None;
            }
            Body::DeliverSmResp(_) | Body::GenericNack => {
                let Some((event, _)) = self.sent.remove(&seq) else {
                    return;
                };
                let Some(ep) = self.endpoint.clone() else {
                    return;
                };
                let status = pdu.command_status;
                // A generic_nack never accepts the deliver_sm, whatever its
                // status says.
                let nacked = matches!(pdu.body, Body::GenericNack);
                let later = [
                    CommandStatus::ESME_RX_T_APPN,
                    CommandStatus::ESME_RTHROTTLED,
                    CommandStatus::ESME_RMSGQFUL,
                ]
                .contains(&status);
                // An ESME_RSYSERR (transient in practice,
                // `CommandStatus::is_temporary`) or a generic_nack naming
                // no error: sent again, a few times.
                let passing = !later && (status.is_temporary() || (nacked && status.is_ok()));
                let result = if status.is_ok() && !nacked {
                    ep.ack(std::slice::from_ref(&event));
                    "ok"
                } else if later || (passing && self.note_passing_error(&ep, &event)) {
                    ep.untake(std::slice::from_ref(&event));
                    "later"
                } else if passing {
                    tracing::warn!(target: TARGET, peer = %self.peer, tenant = %LogSafe::new(&self.tenant_label()),
                        %status, event_id = event.event_id, attempts = MAX_PASSING_ERRORS,
                        "the upstream kept failing a deliver_sm; dead-lettered");
                    ep.dead_letter(std::slice::from_ref(&event));
                    "dead_lettered"
                } else {
                    tracing::warn!(target: TARGET, peer = %self.peer, tenant = %LogSafe::new(&self.tenant_label()),
                        %status, event_id = event.event_id, "the upstream refused a deliver_sm; dropped");
                    ep.ack(std::slice::from_ref(&event));
                    "refused"
                };
                if result == "later" {
                    self.deliver_paused_until = Some(Instant::now() + DELIVER_BACKOFF);
                } else {
                    self.passing_errors.forget(event.event_id);
                }
                metrics::counter!("sluice_smpp_server_delivers_total", "result" => result)
                    .increment(1);
            }
            // Other responses answer nothing sluice sent.
            _ => {}
        }
    }

    fn can_deliver(&self) -> bool {
        self.endpoint.is_some()
            && self.sent.len() < self.ctx.limits.window
            && self
                .deliver_paused_until
                .is_none_or(|t| Instant::now() >= t)
    }

    /// Sends ready events, up to the window.
    fn deliver(&mut self) {
        let Some(ep) = self.endpoint.clone() else {
            return;
        };
        let room = self.ctx.limits.window.saturating_sub(self.sent.len());
        let now = Instant::now();
        for event in ep.take(room) {
            let seq = self.seq();
            if with_sequence(&event.payload, seq, &mut self.out).is_none() {
                tracing::warn!(target: TARGET, event_id = event.event_id,
                    "an SMPP event is not a whole PDU; dropped");
                ep.ack(&[event]);
                continue;
            }
            self.sent.insert(seq, (event, now));
        }
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        let limits = self.ctx.limits.clone();
        if self.mode.is_none() && now.duration_since(self.opened) >= limits.bind_timeout {
            tracing::debug!(target: TARGET, peer = %self.peer, "no bind in time; closing");
            self.close = true;
            return;
        }
        if let Some((_, at)) = self.enquire_sent
            && now.duration_since(at) >= limits.response_timeout
        {
            tracing::info!(target: TARGET, peer = %self.peer, tenant = %LogSafe::new(&self.tenant_label()),
                "the upstream does not answer enquire_link; closing");
            self.close = true;
            return;
        }
        if self.mode.is_some()
            && self.unbind_seq.is_none()
            && self.stopping.is_none()
            && self.enquire_sent.is_none()
            && now.duration_since(self.last_heard) >= limits.enquire_link_interval
        {
            let seq = self.seq();
            self.write(&Pdu::enquire_link(seq));
            self.enquire_sent = Some((seq, now));
        }
        // deliver_sm unanswered too long: back for a later try.
        let late: Vec<u32> = self
            .sent
            .iter()
            .filter(|(_, (_, at))| now.duration_since(*at) >= limits.response_timeout)
            .map(|(s, _)| *s)
            .collect();
        if !late.is_empty()
            && let Some(ep) = self.endpoint.clone()
        {
            let events: Vec<_> = late
                .iter()
                .filter_map(|s| self.sent.remove(s).map(|(e, _)| e))
                .collect();
            metrics::counter!("sluice_smpp_server_delivers_total", "result" => "timeout")
                .increment(events.len() as u64);
            ep.untake(&events);
        }
        for answers in self.parts.expire(now, limits.reassembly_timeout) {
            self.refuse_all(answers, CommandStatus::ESME_RSUBMITFAIL);
        }
        if let Some(since) = self.stopping
            && now.duration_since(since) >= limits.response_timeout
        {
            self.close = true;
        }
        self.check_credentials(now);
    }

    /// A reload changed (or removed) the credentials this session bound
    /// with: it answers what it admitted, unbinds and closes, as at
    /// shutdown; the upstream binds again with the new ones.
    fn check_credentials(&mut self, now: Instant) {
        let (Some(tenant), Some(stamp)) = (&self.tenant, self.bound_stamp) else {
            return;
        };
        if self.stopping.is_some() || self.ctx.accounts.stamp(tenant) == Some(stamp) {
            return;
        }
        tracing::warn!(target: TARGET, peer = %self.peer, tenant = %LogSafe::new(tenant),
            "the tenant's SMPP credentials changed: unbinding this session");
        metrics::counter!("sluice_smpp_server_revoked_total").increment(1);
        self.stopping = Some(now);
    }

    /// After an unbind, at shutdown, once the credentials changed or the
    /// stream broke: once every admitted submit is answered, the unbind is
    /// answered (or sent, unless the stream broke) and the connection closes.
    fn finish_if_answered(&mut self) {
        if self.close || !self.admitting.is_empty() || !self.batch.is_empty() {
            return;
        }
        // Incomplete texts will not be completed now.
        for answers in self.parts.drain() {
            self.refuse_all(answers, CommandStatus::ESME_RSUBMITFAIL);
        }
        match self.unbind_seq {
            Some(seq) => self.write(&Pdu::unbind_resp(seq)),
            None if self.mode.is_some() && !self.broken => {
                let seq = self.seq();
                self.write(&Pdu::unbind(seq));
            }
            None => {}
        }
        self.close = true;
    }

    /// The connection is gone: what was sent and not answered goes back.
    fn closed(&mut self) {
        if let Some(ep) = &self.endpoint {
            let events: Vec<_> = self.sent.drain().map(|(_, (e, _))| e).collect();
            if !events.is_empty() {
                ep.untake(&events);
            }
        }
        if let Some(tenant) = &self.tenant {
            tracing::info!(target: TARGET, peer = %self.peer, tenant = %LogSafe::new(tenant),
                "upstream connection closed");
        }
    }
}

/// A status as a metric label.
fn status_label(status: CommandStatus) -> &'static str {
    status.name().unwrap_or("other")
}
