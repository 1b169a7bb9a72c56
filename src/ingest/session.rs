//! One ingest connection: Hello and authentication, pipelined batches with
//! credits, the event subscription (the tenant stream, or only this
//! connection's messages), ping, and every protocol error.
//!
//! Before a good Hello nothing is answered but an `Error`, after which the
//! connection closes: any other frame, no Hello within `hello_timeout`, or
//! the [`door`](super::door) closing this connection to make room. A failed
//! Hello is answered only after the door's delay for the peer's address,
//! and not checked at all while that address is locked out. Peer strings
//! reach the log only through [`LogSafe`]. When a reload replaces the
//! tenant's token, the session answers the batches it took, says `GoAway`
//! and closes.
//!
//! The read loop never blocks on writes: frames go to a writer task that
//! coalesces them into few syscalls. Batch answers leave in request order
//! (a `FuturesOrdered` of journal commits), while later batches are already
//! being admitted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::stream::{FuturesOrdered, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tokio_util::codec::FramedRead;

use super::codec::{self, FrameError};
use super::convert;
use super::door::{DoorConfig, Ticket};
use super::pb::{self, frame::Body};
use super::{Backend, PRE_HELLO_MAX_FRAME, PROTOCOL_VERSION};
use crate::model::LogSafe;
use crate::settings::IngestConfig;

const TARGET: &str = "sluice::ingest";

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// Limits a session enforces (from [`IngestConfig`]).
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest frame after Hello.
    pub max_frame_bytes: u32,
    /// Most messages per batch.
    pub max_batch_messages: u32,
    /// Credits at Hello.
    pub initial_credits: u32,
    /// Events in flight per connection.
    pub event_window: u32,
    /// Time allowed before Hello.
    pub hello_timeout: Duration,
    /// Node name announced in HelloOk.
    pub node_id: String,
    /// Connection caps and the failed-authentication throttle.
    pub door: DoorConfig,
}

impl Limits {
    /// Limits from the ingest configuration.
    pub fn from_config(c: &IngestConfig, node_id: &str) -> Limits {
        Limits {
            max_frame_bytes: c.max_frame_bytes,
            max_batch_messages: c.max_batch_messages,
            initial_credits: c.initial_credits,
            event_window: c.event_window,
            hello_timeout: c.hello_timeout,
            node_id: node_id.to_owned(),
            door: DoorConfig::from_config(c),
        }
    }
}

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionEnd {
    /// The peer closed cleanly.
    #[error("peer closed")]
    Closed,
    /// The server is shutting down.
    #[error("shutdown")]
    Shutdown,
    /// A protocol error closed the connection (already reported to the peer).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// Closed before a good Hello (reported to the peer when it could be):
    /// no Hello in time, another frame first, failed or throttled
    /// authentication, or closed to make room.
    #[error("closed before authentication: {0}")]
    Refused(&'static str),
    /// I/O failure.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

type BatchFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = (u64, Vec<pb::SubmitResult>)> + Send>>;

struct Session<B: Backend> {
    backend: Arc<B>,
    limits: Limits,
    ticket: Ticket,
    shutdown: watch::Receiver<bool>,
    conn: u64,
    tenant: Option<Arc<str>>,
    out: mpsc::Sender<Bytes>,
    /// Credits the client holds.
    credits: u64,
    /// Credits earned by answered batches but withheld (back-pressure).
    owed: u64,
    /// The subscription's scope, once subscribed.
    subscribed: Option<pb::SubscribeScope>,
    /// Set when the writer was full: events wait until then.
    events_paused_until: Option<tokio::time::Instant>,
    events_in_flight: usize,
    /// The stamp of the token it authenticated with (see
    /// [`Backend::credentials_stamp`]).
    stamp: Option<u64>,
    /// Wakes the session when a reload changed a token.
    credentials: Option<watch::Receiver<u64>>,
    event_window: usize,
}

/// Runs one connection, admitted at the door with `ticket`, until it closes
/// or `shutdown` turns true.
pub async fn run<S, B>(
    stream: S,
    backend: Arc<B>,
    limits: Limits,
    ticket: Ticket,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), SessionEnd>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
    B: Backend,
{
    let (rd, wr) = tokio::io::split(stream);
    let (out, out_rx) = mpsc::channel::<Bytes>(1024);
    let writer = tokio::spawn(async move {
        // A failed write: the read side sees the connection go.
        let _ = crate::wire::write_coalesced(wr, out_rx).await;
    });
    let mut framed = FramedRead::new(rd, codec::length_codec(PRE_HELLO_MAX_FRAME));
    let mut s = Session {
        backend: backend.clone(),
        event_window: limits.event_window.max(1) as usize,
        limits,
        ticket,
        shutdown: shutdown.clone(),
        conn: NEXT_CONN.fetch_add(1, Ordering::Relaxed),
        tenant: None,
        out,
        credits: 0,
        owed: 0,
        subscribed: None,
        events_paused_until: None,
        events_in_flight: 0,
        stamp: None,
        credentials: backend.credential_changes(),
    };
    let mut batches: FuturesOrdered<BatchFuture> = FuturesOrdered::new();
    let hello_deadline = tokio::time::sleep(s.limits.hello_timeout);
    tokio::pin!(hello_deadline);
    let mut credit_tick = tokio::time::interval(Duration::from_millis(20));
    credit_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let result = loop {
        if s.events_paused_until
            .is_some_and(|t| t <= tokio::time::Instant::now())
        {
            s.events_paused_until = None;
        }
        let want_events = s.subscribed.is_some()
            && s.events_in_flight < s.event_window
            && s.events_paused_until.is_none();
        let tenant = s.tenant.clone();
        tokio::select! {
            biased;
            _ = shutdown.changed() => {
                s.send(0, Body::GoAway(pb::GoAway { reason: "server shutting down".into() })).await;
                break Err(SessionEnd::Shutdown);
            }
            Some((request_id, results)) = batches.next(), if !batches.is_empty() => {
                s.answer_batch(request_id, results).await;
            }
            frame = framed.next() => {
                match frame {
                    None => break Err(SessionEnd::Closed),
                    Some(Err(e)) => {
                        // Framing errors (length over the maximum, a frame cut
                        // off by EOF) cannot be resynchronised: report and close.
                        let msg = e.to_string();
                        s.error(0, pb::ErrorCode::BadFrame, &format!("unreadable frame: {msg}")).await;
                        if s.tenant.is_none() {
                            break Err(SessionEnd::Refused("unreadable frame"));
                        }
                        break Err(SessionEnd::Protocol(msg));
                    }
                    Some(Ok(bytes)) => {
                        match s.handle(bytes, &mut batches).await {
                            Ok(()) => {
                                if s.tenant.is_some() && framed.decoder().max_frame_length() == PRE_HELLO_MAX_FRAME {
                                    framed.decoder_mut().set_max_frame_length(s.limits.max_frame_bytes as usize);
                                }
                            }
                            Err(end) => break Err(end),
                        }
                    }
                }
            }
            _ = &mut hello_deadline, if s.tenant.is_none() => {
                s.error(0, pb::ErrorCode::NotAuthenticated, "no Hello in time").await;
                break Err(SessionEnd::Refused("no Hello in time"));
            }
            () = s.ticket.evicted(), if s.tenant.is_none() => {
                s.error(
                    0,
                    pb::ErrorCode::Busy,
                    "too many connections waiting for Hello; the oldest are closed to make room",
                )
                .await;
                break Err(SessionEnd::Refused("closed to make room"));
            }
            _ = wait_events(&s.backend, tenant.as_deref(), s.conn), if want_events => {
                s.send_events();
            }
            _ = credit_tick.tick(), if s.owed > 0 || s.events_paused_until.is_some() => {
                s.grant_owed().await;
            }
            () = super::credentials_changed(&mut s.credentials), if s.tenant.is_some() => {
                if let Some(t) = &s.tenant
                    && s.backend.credentials_stamp(t) != s.stamp
                {
                    tracing::warn!(target: TARGET, conn = s.conn, tenant = %t,
                        "the tenant's token changed: closing this session");
                    metrics::counter!("sluice_ingest_revoked_total").increment(1);
                    // Batches already taken are answered first: their
                    // messages are durable and the client keeps their ids.
                    while let Some((request_id, results)) = batches.next().await {
                        s.answer_batch(request_id, results).await;
                    }
                    s.send(0, Body::GoAway(pb::GoAway {
                        reason: "the tenant's token changed: connect again with the new one".into(),
                    }))
                    .await;
                    break Err(SessionEnd::Refused("token changed"));
                }
            }
        }
    };
    if let Some(t) = &s.tenant {
        s.backend.events().release(t, s.conn);
        s.backend.closed(t, s.conn);
    }
    // Let queued frames (a final Error or GoAway) leave before closing.
    drop(s);
    let _ = writer.await;
    match result {
        Err(SessionEnd::Closed) => Ok(()),
        other => other,
    }
}

async fn wait_events<B: Backend>(backend: &Arc<B>, tenant: Option<&str>, conn: u64) {
    match tenant {
        Some(t) => backend.events().wait(t, conn).await,
        None => std::future::pending().await,
    }
}

impl<B: Backend> Session<B> {
    async fn send(&self, request_id: u64, body: Body) {
        let _ = self.out.send(codec::frame_bytes(request_id, body)).await;
    }

    async fn error(&self, request_id: u64, code: pb::ErrorCode, message: &str) {
        // Before Hello this is anyone's doing, and cheap to repeat: keep it
        // out of the default log.
        if self.tenant.is_some() {
            tracing::info!(target: TARGET, conn = self.conn, ?code, detail = %LogSafe::new(message), "protocol error");
        } else {
            tracing::debug!(target: TARGET, conn = self.conn, peer = %self.ticket.peer(), ?code,
                detail = %LogSafe::new(message), "protocol error before Hello");
        }
        metrics::counter!("sluice_ingest_errors_total", "code" => code.as_str_name()).increment(1);
        self.send(
            request_id,
            Body::Error(pb::Error {
                code: code as i32,
                message: message.to_owned(),
            }),
        )
        .await;
    }

    async fn handle(
        &mut self,
        bytes: BytesMut,
        batches: &mut FuturesOrdered<BatchFuture>,
    ) -> Result<(), SessionEnd> {
        let (request_id, body) = match codec::decode_frame(bytes.freeze()) {
            Ok(f) => f,
            Err(e @ FrameError::Protobuf(_)) => {
                self.error(0, pb::ErrorCode::BadFrame, &e.to_string()).await;
                return if self.tenant.is_some() {
                    Ok(())
                } else {
                    Err(SessionEnd::Refused("undecodable frame"))
                };
            }
            Err(e @ FrameError::UnknownBody) => {
                if self.tenant.is_none() {
                    self.error(0, pb::ErrorCode::NotAuthenticated, "send Hello first")
                        .await;
                    return Err(SessionEnd::Refused("request before Hello"));
                }
                self.error(0, pb::ErrorCode::UnknownFrame, &e.to_string())
                    .await;
                return Ok(());
            }
        };
        match body {
            Body::Hello(h) => self.hello(request_id, h).await,
            // Nothing but Hello is answered (except by an Error) before Hello.
            _ if self.tenant.is_none() => {
                self.error(
                    request_id,
                    pb::ErrorCode::NotAuthenticated,
                    "send Hello first",
                )
                .await;
                Err(SessionEnd::Refused("request before Hello"))
            }
            Body::Ping(p) => {
                self.send(request_id, Body::Pong(pb::Pong { nonce: p.nonce }))
                    .await;
                Ok(())
            }
            Body::SubmitBatch(b) => {
                self.submit(request_id, b, batches).await;
                Ok(())
            }
            Body::Subscribe(sub) => {
                self.subscribe(request_id, sub).await;
                Ok(())
            }
            Body::PutMedia(m) => {
                let tenant = self.tenant.clone().expect("checked above");
                // Answered when stored; other requests carry on meanwhile.
                let fut = self
                    .backend
                    .put_media(&tenant, self.conn, convert::media_chunk(m));
                let out = self.out.clone();
                tokio::spawn(async move {
                    let body = match fut.await {
                        Ok(stored) => Body::MediaOk(convert::media_ok(stored)),
                        Err(refusal) => Body::Error(pb::Error {
                            code: pb::ErrorCode::MediaRejected as i32,
                            message: refusal.to_string(),
                        }),
                    };
                    let _ = out.send(codec::frame_bytes(request_id, body)).await;
                });
                Ok(())
            }
            Body::EventAck(a) => {
                let tenant = self.tenant.as_ref().expect("checked above");
                let n = self.backend.events().ack(tenant, self.conn, &a.event_ids);
                self.events_in_flight = self.events_in_flight.saturating_sub(n);
                Ok(())
            }
            other => {
                let name = body_name(&other);
                self.error(
                    request_id,
                    pb::ErrorCode::UnknownFrame,
                    &format!("{name} is not a client frame"),
                )
                .await;
                Ok(())
            }
        }
    }

    async fn hello(&mut self, request_id: u64, h: pb::Hello) -> Result<(), SessionEnd> {
        if self.tenant.is_some() {
            self.error(request_id, pb::ErrorCode::ProtocolViolation, "second Hello")
                .await;
            return Ok(());
        }
        if h.protocol_version != PROTOCOL_VERSION {
            self.error(
                request_id,
                pb::ErrorCode::UnsupportedVersion,
                &format!(
                    "protocol version {} not supported; this server speaks {PROTOCOL_VERSION}",
                    h.protocol_version
                ),
            )
            .await;
            return Err(SessionEnd::Refused("unsupported version"));
        }
        if let Err(retry_in) = self.ticket.check_auth() {
            // Too many failures from this address: the token is not even
            // looked at (no oracle), and the answer comes at once.
            tracing::debug!(target: TARGET, conn = self.conn, peer = %self.ticket.peer(),
                tenant = %LogSafe::new(&h.tenant), "Hello refused: address locked out");
            metrics::counter!("sluice_ingest_refused_total", "reason" => "auth_locked")
                .increment(1);
            self.error(
                request_id,
                pb::ErrorCode::AuthFailed,
                &format!(
                    "too many failed authentications from your address; retry in {} s",
                    retry_in.as_millis().div_ceil(1000).max(1)
                ),
            )
            .await;
            return Err(SessionEnd::Refused("address locked out"));
        }
        // Taken before the token is checked: a reload in between closes
        // the session rather than leaving it on a replaced token.
        let stamp = self.backend.credentials_stamp(&h.tenant);
        let Some(tenant) = self.backend.authenticate(&h.tenant, &h.token) else {
            let delay = self.ticket.auth_failed();
            // Never log the token.
            tracing::warn!(target: TARGET, conn = self.conn, peer = %self.ticket.peer(),
                tenant = %LogSafe::new(&h.tenant), answer_in = ?delay, "authentication failed");
            let mut shutdown = self.shutdown.clone();
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = shutdown.changed() => return Err(SessionEnd::Shutdown),
            }
            self.error(
                request_id,
                pb::ErrorCode::AuthFailed,
                "unknown tenant or wrong token",
            )
            .await;
            return Err(SessionEnd::Refused("authentication failed"));
        };
        tracing::info!(target: TARGET, conn = self.conn, peer = %self.ticket.peer(), tenant = %tenant,
            client = %LogSafe::new(&h.client_name), "hello");
        self.ticket.authenticated();
        self.credits = u64::from(self.limits.initial_credits);
        self.tenant = Some(tenant);
        self.stamp = stamp;
        self.send(
            request_id,
            Body::HelloOk(pb::HelloOk {
                protocol_version: PROTOCOL_VERSION,
                max_frame_bytes: self.limits.max_frame_bytes,
                max_batch_messages: self.limits.max_batch_messages,
                credits: self.limits.initial_credits,
                node_id: self.limits.node_id.clone(),
            }),
        )
        .await;
        Ok(())
    }

    async fn subscribe(&mut self, request_id: u64, sub: pb::Subscribe) {
        let Ok(scope) = pb::SubscribeScope::try_from(sub.scope) else {
            let msg = format!("unknown subscription scope {}", sub.scope);
            self.error(request_id, pb::ErrorCode::ProtocolViolation, &msg)
                .await;
            return;
        };
        if self.subscribed.is_some_and(|s| s != scope) {
            self.error(
                request_id,
                pb::ErrorCode::ProtocolViolation,
                "the subscription scope cannot change on a connection",
            )
            .await;
            return;
        }
        if self.subscribed.is_none() && scope == pb::SubscribeScope::ScopeConnection {
            let tenant = self.tenant.as_ref().expect("authenticated");
            self.backend
                .events()
                .subscribe_connection(tenant, self.conn);
        }
        if sub.max_in_flight > 0 {
            self.event_window = (sub.max_in_flight as usize).min(self.limits.event_window as usize);
        }
        self.subscribed = Some(scope);
        self.send(request_id, Body::SubscribeOk(pb::SubscribeOk {}))
            .await;
    }

    async fn submit(
        &mut self,
        request_id: u64,
        b: pb::SubmitBatch,
        batches: &mut FuturesOrdered<BatchFuture>,
    ) {
        let n = b.messages.len() as u64;
        if n > u64::from(self.limits.max_batch_messages) {
            self.error(
                request_id,
                pb::ErrorCode::BatchTooLarge,
                &format!(
                    "{n} messages; at most {} per batch",
                    self.limits.max_batch_messages
                ),
            )
            .await;
            return;
        }
        if n > self.credits {
            self.error(
                request_id,
                pb::ErrorCode::NoCredit,
                &format!("{n} messages but only {} credits", self.credits),
            )
            .await;
            return;
        }
        self.credits -= n;
        let tenant = self.tenant.clone().expect("authenticated");
        let messages = b.messages.into_iter().map(convert::submission).collect();
        let fut = self.backend.submit(&tenant, self.conn, messages);
        batches.push_back(Box::pin(async move {
            let results = fut.await.into_iter().map(convert::submit_result);
            (request_id, results.collect())
        }));
    }

    async fn answer_batch(&mut self, request_id: u64, results: Vec<pb::SubmitResult>) {
        let earned = results.len() as u64;
        let grant = earned.min(self.backend.headroom());
        self.owed += earned - grant;
        self.credits += grant;
        self.send(
            request_id,
            Body::BatchAck(pb::BatchAck {
                results,
                credits: grant as u32,
            }),
        )
        .await;
    }

    async fn grant_owed(&mut self) {
        let grant = self.owed.min(self.backend.headroom());
        if grant > 0 {
            self.owed -= grant;
            self.credits += grant;
            self.send(
                0,
                Body::CreditGrant(pb::CreditGrant {
                    credits: grant as u32,
                }),
            )
            .await;
        }
    }

    fn send_events(&mut self) {
        let Some(tenant) = &self.tenant else { return };
        let room = self.event_window - self.events_in_flight;
        let events = self
            .backend
            .events()
            .take(tenant, self.conn, room.min(1000));
        if events.is_empty() {
            return;
        }
        self.events_in_flight += events.len();
        let frame = codec::event_batch_frame(&events);
        if self.out.try_send(frame).is_err() {
            // The writer is backed up: hand these events back rather than
            // block the read loop; they go out on a later turn.
            self.events_in_flight -= events.len();
            self.backend.events().untake(tenant, self.conn, &events);
            self.events_paused_until = Some(tokio::time::Instant::now() + Duration::from_millis(5));
        }
    }
}

fn body_name(b: &Body) -> &'static str {
    match b {
        Body::Hello(_) => "Hello",
        Body::HelloOk(_) => "HelloOk",
        Body::SubmitBatch(_) => "SubmitBatch",
        Body::BatchAck(_) => "BatchAck",
        Body::Subscribe(_) => "Subscribe",
        Body::SubscribeOk(_) => "SubscribeOk",
        Body::EventBatch(_) => "EventBatch",
        Body::EventAck(_) => "EventAck",
        Body::Ping(_) => "Ping",
        Body::Pong(_) => "Pong",
        Body::Error(_) => "Error",
        Body::GoAway(_) => "GoAway",
        Body::CreditGrant(_) => "CreditGrant",
        Body::PutMedia(_) => "PutMedia",
        Body::MediaOk(_) => "MediaOk",
    }
}

#[cfg(test)]
mod tests;
