//! The tenants' gRPC door (`[grpc] listen`): the service `sluice.v1.Gateway`
//! (`proto/sluice/v1/gateway.proto`) on the same [`Backend`] as the framed
//! protocol, with its guarantees:
//!
//! | call | does |
//! | --- | --- |
//! | `SubmitBatch` (unary) | admits a batch; answered once the accepted messages are durable; `client_ref` idempotent; `RESOURCE_EXHAUSTED` with a retry hint under back-pressure, nothing admitted |
//! | `PutMedia` (client stream) | stores one media file, whole or chunked; chunks left unfinished when the call ends are dropped |
//! | `Events` (bidirectional) | first a `Subscribe` (tenant stream, or only the messages submitted with this call's `sluice-subscription`), then acks; `EventBatch`es stream back |
//! | `GetMessage` (unary) | a live message of the caller's; another tenant's is `NOT_FOUND` like an unknown one |
//!
//! Beside it, standard health checking (`grpc.health.v1`) and server
//! reflection (`grpc.reflection.v1`, from the committed descriptor set
//! [`FILE_DESCRIPTOR_SET`]), both without a token.
//!
//! # Authentication
//! Every call carries `authorization: Bearer <tenant token>`; the token
//! alone names the tenant (as for the HTTP API: with `[grpc]` on, no two
//! tenants share one). Unknown tokens are throttled per peer address with
//! the same [`AuthThrottle`] settings as ingest's Hellos and the API's bearer
//! tokens: each answered later than the last, then refused unchecked until
//! the oldest failure is a minute old, always `UNAUTHENTICATED`. With a
//! client CA, the client certificate binds the connection to the tenant it
//! names ([`Binding`]): another tenant's token fails as an unknown one does.
//!
//! # Connection ids
//! Every call gets a [`ConnId`] of its own from [`next_conn`], counted from
//! [`GRPC_CONN_BASE`] (2^62): the framed door numbers its connections from
//! 1 and the HTTP API uses 0, so the ranges never meet. A `SubmitBatch`
//! naming a live connection-scoped Events call of its tenant
//! (`sluice-subscription`) submits as that call, so its messages are claimed
//! for it ([`crate::events::EventHub::claim`]).
//!
//! # Events
//! The framed session's rules: an event taken for a call is in flight until
//! that call acknowledges it; at most the window (`Subscribe.max_in_flight`,
//! capped by `ingest.event_window`) is in flight; when the call ends —
//! the client closes its side, cancels, the connection drops, or the
//! server shuts down (`UNAVAILABLE`) — its unacknowledged events go back to
//! the tenant stream ([`crate::events::EventHub::release`]). The response
//! stream is pulled by the transport, so a slow reader holds events in the
//! hub, not in memory here. Events are stored encoded (`sluice.v1.Event`);
//! they are decoded into the `EventBatch` tonic encodes again (a departure
//! from the framed door, which splices the stored bytes: the generated
//! service fixes the message type).
//!
//! The listener (connection cap, TLS off the accept loop, HTTP/2 limits,
//! graceful stop) is [`serve`].

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::Stream;
use parking_lot::Mutex;
use prost::Message as _;
use tokio::sync::watch;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Request, Response, Status, Streaming};

use crate::door::throttle::{AuthThrottle, ThrottleConfig};
use crate::events::ConnId;
use crate::ingest::identity::Binding;
use crate::ingest::pb;
use crate::ingest::{Backend, convert};
use crate::model::MessageId;

mod serve;

pub use serve::{PeerInfo, serve};

const TARGET: &str = "sluice::grpc";

/// The gRPC service generated from `proto/sluice/v1/gateway.proto` by
/// tonic's prost codegen (committed, checked by `tests/bootstrap.rs`); its
/// messages are [`crate::ingest::pb`]'s.
#[allow(missing_docs, missing_debug_implementations, clippy::all)]
pub mod service {
    include!("ingest/gen/sluice.v1.gateway.rs");
}

pub use service::gateway_client::GatewayClient;
pub use service::gateway_server::{self, GatewayServer};

/// The encoded `FileDescriptorSet` of `ingest.proto` and `gateway.proto`
/// (with comments), served by reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!("ingest/gen/sluice.v1.fds.bin");

/// Request metadata of a `SubmitBatch` naming the connection-scoped Events
/// call its messages' events go to; response metadata of such a call.
pub const SUBSCRIPTION_HEADER: &str = "sluice-subscription";

/// The first [`ConnId`] of gRPC calls.
pub const GRPC_CONN_BASE: ConnId = 1 << 62;

static NEXT_CONN: AtomicU64 = AtomicU64::new(GRPC_CONN_BASE);

/// A fresh connection id for one gRPC call.
pub fn next_conn() -> ConnId {
    NEXT_CONN.fetch_add(1, Ordering::Relaxed)
}

/// How long a client is told to wait under back-pressure.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Most events in one `EventBatch`.
const MAX_EVENTS_PER_BATCH: usize = 1000;

/// What the gRPC door needs beyond the framed door's [`Backend`].
pub trait GrpcBackend: Backend {
    /// The tenant whose token this is (compared in constant time).
    fn tenant_of(&self, token: &str) -> Option<Arc<str>>;

    /// A live message of `tenant`'s (`None` for another tenant's).
    fn message(&self, tenant: &str, id: MessageId) -> Option<LiveMessage>;
}

/// A live message, as `GetMessage` reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LiveMessage {
    /// Its id.
    pub id: MessageId,
    /// The client's idempotency key.
    pub client_ref: String,
    /// The recipient, E.164.
    pub to: String,
    /// The sender.
    pub from: String,
    /// Its campaign.
    pub campaign_id: String,
    /// Wall-clock ms of acceptance.
    pub accepted_at_ms: u64,
    /// Wall-clock ms its validity ends.
    pub expires_at_ms: u64,
    /// The carrier and its part count, once dispatched.
    pub dispatched: Option<(Arc<str>, u32)>,
}

/// Limits of the gRPC door's calls.
#[derive(Clone, Copy, Debug)]
pub struct GrpcLimits {
    /// Most messages in one `SubmitBatch` (`ingest.max_batch_messages`).
    pub max_batch: usize,
    /// Most events in flight per Events call (`ingest.event_window`).
    pub event_window: u32,
    /// Deadline for an Events call's `Subscribe`.
    pub subscribe_timeout: Duration,
    /// Largest message either way, bytes.
    pub max_message_bytes: usize,
    /// Most calls in progress per connection.
    pub max_concurrent_streams: u32,
    /// Deadline for a TLS handshake.
    pub handshake_timeout: Duration,
    /// A connection without a call in progress this long is closed.
    pub idle_timeout: Duration,
    /// How unknown tokens are throttled.
    pub auth: ThrottleConfig,
}

/// The `sluice.v1.Gateway` service over a backend.
#[derive(Debug)]
pub struct GrpcDoor<B> {
    backend: Arc<B>,
    limits: GrpcLimits,
    throttle: AuthThrottle,
    /// Live connection-scoped Events calls and their tenants.
    scoped: Arc<Mutex<HashMap<ConnId, Arc<str>>>>,
    shutdown: watch::Receiver<bool>,
}

impl<B: GrpcBackend> GrpcDoor<B> {
    /// The service; Events calls end (`UNAVAILABLE`) when `shutdown` turns true.
    pub fn new(backend: Arc<B>, limits: GrpcLimits, shutdown: watch::Receiver<bool>) -> Self {
        GrpcDoor {
            backend,
            throttle: AuthThrottle::new(limits.auth),
            limits,
            scoped: Arc::default(),
            shutdown,
        }
    }

    /// The failed-authentication throttle (tests look at it).
    pub fn throttle(&self) -> &AuthThrottle {
        &self.throttle
    }

    /// The tenant of a call: its bearer token, throttled per address, and
    /// the client certificate's binding.
    async fn authenticate<T>(&self, req: &Request<T>) -> Result<Arc<str>, Status> {
        let peer = req.extensions().get::<PeerInfo>();
        let ip = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.addr.ip());
        let Some(token) = bearer(req.metadata()) else {
            return Err(Status::unauthenticated(
                "a tenant token is required (authorization: Bearer <token>)",
            ));
        };
        if let Err(wait) = self.throttle.check(ip, tokio::time::Instant::now()) {
            metrics::counter!("sluice_grpc_auth_locked_out_total").increment(1);
            return Err(Status::unauthenticated(format!(
                "too many unknown tokens from this address; retry in {} s",
                wait.as_millis().div_ceil(1000).max(1)
            )));
        }
        let binding = peer.map_or(Binding::Any, |p| {
            Binding::of(p.cert_required, p.identity.clone())
        });
        // The token is checked first either way, so refusals take alike.
        let tenant = self.backend.tenant_of(token).filter(|t| match &binding {
            Binding::Any => true,
            Binding::Tenant(bound) => **bound == **t,
            Binding::Nobody => false,
        });
        let Some(tenant) = tenant else {
            metrics::counter!("sluice_grpc_auth_failures_total").increment(1);
            let wait = self.throttle.failed(ip, tokio::time::Instant::now());
            // Never log the token.
            tracing::warn!(target: TARGET, peer = %ip, bound = ?binding, answer_in = ?wait,
                "gRPC authentication failed");
            let mut shutdown = self.shutdown.clone();
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
            return Err(Status::unauthenticated("unknown token"));
        };
        Ok(tenant)
    }

    /// The connection a `SubmitBatch` submits as: the Events call its
    /// `sluice-subscription` names, or one of its own.
    fn submit_conn(&self, tenant: &Arc<str>, metadata: &MetadataMap) -> Result<ConnId, Status> {
        let Some(v) = metadata.get(SUBSCRIPTION_HEADER) else {
            return Ok(next_conn());
        };
        let id = v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<ConnId>().ok());
        match id {
            Some(id) if self.scoped.lock().get(&id).is_some_and(|t| t == tenant) => Ok(id),
            _ => Err(Status::failed_precondition(format!(
                "{SUBSCRIPTION_HEADER} names no live connection-scoped Events call of yours"
            ))),
        }
    }
}

/// The token of `authorization: Bearer <token>` (any letter case of the
/// scheme), if there is one.
pub fn bearer(metadata: &MetadataMap) -> Option<&str> {
    metadata
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .filter(|t| !t.is_empty())
}

// === back-pressure ===

/// `google.rpc.Status`, for the details of a refusal.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    /// The status code.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// The message.
    #[prost(string, tag = "2")]
    pub message: String,
    /// Typed details.
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<RpcAny>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcAny {
    /// The type of `value`.
    #[prost(string, tag = "1")]
    pub type_url: String,
    /// The encoded message.
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RetryInfo {
    /// How long to wait before retrying.
    #[prost(message, optional, tag = "1")]
    pub retry_delay: Option<RpcDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcDuration {
    /// Whole seconds.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds past them.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// The type URL of [`RetryInfo`] in status details.
pub const RETRY_INFO_TYPE: &str = "type.googleapis.com/google.rpc.RetryInfo";

/// `code` with `message`, telling the client to retry after `after`: a
/// `google.rpc.RetryInfo` in the details and `grpc-retry-pushback-ms`.
pub fn retry_status(code: Code, message: &str, after: Duration) -> Status {
    let info = RetryInfo {
        retry_delay: Some(RpcDuration {
            seconds: after.as_secs() as i64,
            nanos: after.subsec_nanos() as i32,
        }),
    };
    let details = RpcStatus {
        code: code as i32,
        message: message.to_owned(),
        details: vec![RpcAny {
            type_url: RETRY_INFO_TYPE.to_owned(),
            value: info.encode_to_vec(),
        }],
    };
    let mut status = Status::with_details(code, message, details.encode_to_vec().into());
    status.metadata_mut().insert(
        "grpc-retry-pushback-ms",
        MetadataValue::from(after.as_millis() as u64),
    );
    status
}

/// The retry delay a status carries in its details, if any.
pub fn retry_delay(status: &Status) -> Option<Duration> {
    let details = RpcStatus::decode(status.details()).ok()?;
    let any = details
        .details
        .iter()
        .find(|a| a.type_url == RETRY_INFO_TYPE)?;
    let d = RetryInfo::decode(any.value.as_slice()).ok()?.retry_delay?;
    Some(Duration::new(
        u64::try_from(d.seconds).ok()?,
        u32::try_from(d.nanos).ok()?,
    ))
}

// === impl Gateway ===

type EventsStream = Pin<Box<dyn Stream<Item = Result<pb::EventBatch, Status>> + Send>>;

#[tonic::async_trait]
impl<B: GrpcBackend> gateway_server::Gateway for GrpcDoor<B> {
    async fn submit_batch(
        &self,
        req: Request<pb::SubmitBatch>,
    ) -> Result<Response<pb::BatchAck>, Status> {
        let tenant = self.authenticate(&req).await?;
        let _call = call_guard(&req);
        let conn = self.submit_conn(&tenant, req.metadata())?;
        let batch = req.into_inner();
        let n = batch.messages.len();
        if n == 0 {
            return Err(Status::invalid_argument(
                "a batch needs at least one message",
            ));
        }
        if n > self.limits.max_batch {
            return Err(Status::invalid_argument(format!(
                "{n} messages; at most {} per batch",
                self.limits.max_batch
            )));
        }
        if n as u64 > self.backend.headroom() {
            metrics::counter!("sluice_grpc_backpressure_total").increment(1);
            return Err(retry_status(
                Code::ResourceExhausted,
                "the gateway holds as many messages as it may; retry shortly",
                RETRY_AFTER,
            ));
        }
        let messages = batch
            .messages
            .into_iter()
            .map(convert::submission)
            .collect();
        // Spawned, so a cancelled call still sees its batch through the
        // journal (its messages may be accepted: a retry gets their ids).
        let results = tokio::spawn(self.backend.submit(&tenant, conn, messages))
            .await
            .map_err(|_| Status::internal("the batch could not be admitted; retry"))?;
        Ok(Response::new(pb::BatchAck {
            results: results.into_iter().map(convert::submit_result).collect(),
            credits: 0,
        }))
    }

    async fn put_media(
        &self,
        req: Request<Streaming<pb::PutMedia>>,
    ) -> Result<Response<pb::MediaOk>, Status> {
        let tenant = self.authenticate(&req).await?;
        let _call = call_guard(&req);
        let conn = next_conn();
        // Unfinished chunked uploads go when the call does, however it ends.
        let _closed = Closed {
            backend: self.backend.clone(),
            tenant: tenant.clone(),
            conn,
        };
        let mut chunks = req.into_inner();
        while let Some(chunk) = chunks.message().await? {
            let last = chunk.last;
            match self
                .backend
                .put_media(&tenant, conn, convert::media_chunk(chunk))
                .await
            {
                Ok(stored) if last => return Ok(Response::new(convert::media_ok(stored))),
                Ok(_) => {}
                Err(refusal) => return Err(Status::failed_precondition(refusal.to_string())),
            }
        }
        Err(Status::invalid_argument(
            "the upload ended without its last chunk (last = true)",
        ))
    }

    type EventsStream = EventsStream;

    async fn events(
        &self,
        req: Request<Streaming<pb::EventsRequest>>,
    ) -> Result<Response<EventsStream>, Status> {
        // Watched from before the token is checked, and the token checked
        // again under the stamp taken: a reload at any moment ends the
        // stream if it replaced the token.
        let credentials = self.backend.credential_changes();
        let tenant = self.authenticate(&req).await?;
        let stamp = self.backend.credentials_stamp(&tenant);
        if bearer(req.metadata()).and_then(|t| self.backend.tenant_of(t)) != Some(tenant.clone()) {
            return Err(Status::unauthenticated("unknown token"));
        }
        let call_guard = call_guard(&req);
        let mut inbound = req.into_inner();
        let first = tokio::time::timeout(self.limits.subscribe_timeout, inbound.message())
            .await
            .map_err(|_| Status::deadline_exceeded("no Subscribe in time"))??;
        let Some(pb::EventsRequest {
            body: Some(pb::events_request::Body::Subscribe(sub)),
        }) = first
        else {
            return Err(Status::invalid_argument(
                "the first message of an Events call is a Subscribe",
            ));
        };
        let scope = subscribe_scope(sub.scope)?;
        let conn = next_conn();
        let call = EventsCall {
            backend: self.backend.clone(),
            tenant: tenant.clone(),
            conn,
            scope,
            window: window(sub.max_in_flight, self.limits.event_window),
            in_flight: 0,
            inbound,
            shutdown: self.shutdown.clone(),
            scoped: self.scoped.clone(),
            done: false,
            stamp,
            credentials,
            _call: call_guard,
        };
        if scope == pb::SubscribeScope::ScopeConnection {
            self.backend.events().subscribe_connection(&tenant, conn);
            self.scoped.lock().insert(conn, tenant.clone());
        }
        tracing::debug!(target: TARGET, tenant = %tenant, conn, ?scope, "gRPC events call");
        let stream = futures_util::stream::unfold(call, |mut call| async move {
            call.next().await.map(|item| (item, call))
        });
        let mut resp = Response::new(Box::pin(stream) as EventsStream);
        if scope == pb::SubscribeScope::ScopeConnection {
            resp.metadata_mut()
                .insert(SUBSCRIPTION_HEADER, MetadataValue::from(conn));
        }
        Ok(resp)
    }

    async fn get_message(
        &self,
        req: Request<pb::GetMessageRequest>,
    ) -> Result<Response<pb::MessageState>, Status> {
        let tenant = self.authenticate(&req).await?;
        let _call = call_guard(&req);
        let id = MessageId(req.into_inner().message_id);
        match self.backend.message(&tenant, id) {
            Some(m) => Ok(Response::new(message_state(m))),
            // Another tenant's message is as unknown as a finished one.
            None => Err(Status::not_found(
                "no live message with this id (finished messages are reported by their events)",
            )),
        }
    }
}

/// Marks an authenticated call in progress on its connection until the
/// guard is dropped (`None` without the connection's [`PeerInfo`]).
fn call_guard<T>(req: &Request<T>) -> Option<serve::CallGuard> {
    req.extensions()
        .get::<PeerInfo>()
        .map(|p| p.activity.begin())
}

/// A live message on the wire.
pub fn message_state(m: LiveMessage) -> pb::MessageState {
    let (stage, carrier, parts) = match m.dispatched {
        Some((carrier, parts)) => (
            pb::MessageStage::StageDispatched,
            carrier.to_string(),
            parts,
        ),
        None => (pb::MessageStage::StageQueued, String::new(), 0),
    };
    pb::MessageState {
        message_id: m.id.0,
        client_ref: m.client_ref,
        to: m.to,
        from: m.from,
        campaign_id: m.campaign_id,
        accepted_at_ms: m.accepted_at_ms,
        expires_at_ms: m.expires_at_ms,
        stage: stage as i32,
        carrier,
        parts,
    }
}

/// A Subscribe's scope.
///
/// # Errors
/// `INVALID_ARGUMENT` for a value the protocol does not define.
fn subscribe_scope(v: i32) -> Result<pb::SubscribeScope, Status> {
    pb::SubscribeScope::try_from(v)
        .map_err(|_| Status::invalid_argument(format!("unknown subscription scope {v}")))
}

/// The in-flight window a Subscribe asks for, within the server's.
pub fn window(asked: u32, server: u32) -> usize {
    let server = server.max(1) as usize;
    match asked {
        0 => server,
        n => (n as usize).min(server),
    }
}

/// Calls [`Backend::closed`] when a call ends, however it ends.
struct Closed<B: Backend> {
    backend: Arc<B>,
    tenant: Arc<str>,
    conn: ConnId,
}

impl<B: Backend> Drop for Closed<B> {
    fn drop(&mut self) {
        self.backend.closed(&self.tenant, self.conn);
    }
}

// === impl EventsCall ===

/// One Events call after its Subscribe: pulled by the transport for each
/// `EventBatch`, reading acks meanwhile. Dropping it (the call ended)
/// releases its unacknowledged events.
struct EventsCall<B: Backend> {
    backend: Arc<B>,
    tenant: Arc<str>,
    conn: ConnId,
    scope: pb::SubscribeScope,
    window: usize,
    in_flight: usize,
    inbound: Streaming<pb::EventsRequest>,
    shutdown: watch::Receiver<bool>,
    scoped: Arc<Mutex<HashMap<ConnId, Arc<str>>>>,
    done: bool,
    /// The stamp of the token the call was made with.
    stamp: Option<u64>,
    /// Wakes the call when a reload changed a token.
    credentials: Option<watch::Receiver<u64>>,
    /// Keeps the connection from idling out while the call lasts.
    _call: Option<serve::CallGuard>,
}

impl<B: Backend> EventsCall<B> {
    /// The next batch to send, an error that ends the call, or `None` when
    /// the client closed its side.
    async fn next(&mut self) -> Option<Result<pb::EventBatch, Status>> {
        if self.done {
            return None;
        }
        loop {
            let want = self.in_flight < self.window;
            let hub = self.backend.events();
            tokio::select! {
                biased;
                _ = self.shutdown.changed() => {
                    self.done = true;
                    return Some(Err(Status::unavailable("server shutting down")));
                }
                () = crate::ingest::credentials_changed(&mut self.credentials) => {
                    if self.backend.credentials_stamp(&self.tenant) != self.stamp {
                        self.done = true;
                        return Some(Err(Status::unauthenticated(
                            "the tenant's token changed: call again with the new one",
                        )));
                    }
                }
                m = self.inbound.message() => match m {
                    Ok(Some(req)) => {
                        if let Err(status) = self.handle(req) {
                            self.done = true;
                            return Some(Err(status));
                        }
                    }
                    // A client that can no longer acknowledge is done.
                    Ok(None) => return None,
                    Err(status) => {
                        self.done = true;
                        return Some(Err(status));
                    }
                },
                () = hub.wait(&self.tenant, self.conn), if want => {
                    let room = (self.window - self.in_flight).min(MAX_EVENTS_PER_BATCH);
                    let events = hub.take(&self.tenant, self.conn, room);
                    if events.is_empty() {
                        continue;
                    }
                    self.in_flight += events.len();
                    let events = events.iter().filter_map(|e| decode_event(e.event_id, &e.payload));
                    return Some(Ok(pb::EventBatch { events: events.collect() }));
                }
            }
        }
    }

    /// An ack, or a later Subscribe (which may change the window only).
    fn handle(&mut self, req: pb::EventsRequest) -> Result<(), Status> {
        match req.body {
            Some(pb::events_request::Body::Ack(a)) => {
                let n = self
                    .backend
                    .events()
                    .ack(&self.tenant, self.conn, &a.event_ids);
                self.in_flight = self.in_flight.saturating_sub(n);
                Ok(())
            }
            Some(pb::events_request::Body::Subscribe(sub)) => {
                if subscribe_scope(sub.scope)? != self.scope {
                    return Err(Status::invalid_argument(
                        "the subscription scope cannot change on a call",
                    ));
                }
                if sub.max_in_flight > 0 {
                    self.window = window(sub.max_in_flight, self.window as u32);
                }
                Ok(())
            }
            None => Err(Status::invalid_argument(
                "an EventsRequest carries a subscribe or an ack",
            )),
        }
    }
}

impl<B: Backend> Drop for EventsCall<B> {
    fn drop(&mut self) {
        self.scoped.lock().remove(&self.conn);
        self.backend.events().release(&self.tenant, self.conn);
        tracing::debug!(target: TARGET, tenant = %self.tenant, conn = self.conn,
            unacknowledged = self.in_flight, "gRPC events call ended");
    }
}

/// A stored event (encoded `sluice.v1.Event`). One that does not decode
/// (never written by this build) is left out of its batch; it stays in
/// flight until the call ends.
fn decode_event(event_id: u64, payload: &bytes::Bytes) -> Option<pb::Event> {
    match pb::Event::decode(payload.clone()) {
        Ok(ev) => Some(ev),
        Err(err) => {
            tracing::error!(target: TARGET, event_id, error = %err, "a stored event does not decode; not sent");
            None
        }
    }
}

#[cfg(test)]
mod tests;
