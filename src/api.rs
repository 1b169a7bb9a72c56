//! The tenants' HTTP/JSON API (`[api] listen`), beside the framed
//! protocol and with the same guarantees: a message is answered `accepted`
//! only once durable, `client_ref` is the idempotency key (a repeat gets the
//! original id, `duplicate`, and sends nothing), and back-pressure is a 429
//! with `Retry-After`, never a drop. The contract is `docs/api/openapi.json`
//! (OpenAPI 3.1), served at `/v1/openapi.json` and checked against this
//! router by the tests.
//!
//! | method & path | does |
//! | --- | --- |
//! | `POST /v1/messages` `{"messages": [...]}` | admits a batch: 202 with one result per message once the accepted ones are durable; 422 when none was accepted; 429/503 with `Retry-After` |
//! | `GET /v1/messages/{id}` | a live message of the caller's: its state so far (404 otherwise) |
//! | `POST /v1/media` (the file as the body, its `Content-Type`) | stores media the caller's messages may name: 201 with its content id |
//! | `GET /v1/openapi.json` | the contract (no token needed) |
//!
//! Every route but the contract needs `Authorization: Bearer <tenant
//! token>` (the tenant's ingest token; with the API on, no two tenants may
//! share one): none or an unknown one is 401. Unknown tokens are throttled
//! per address as ingest's Hellos are (`ingest.auth_failure_delay`,
//! `auth_failure_delay_max`, `auth_failures_per_minute`;
//! [`crate::door::throttle`]): each answered later than the last, and past
//! the limit 429 with `Retry-After` without looking at the token. Errors are JSON
//! `{"error": "..."}`; bodies past `api.max_body_bytes` (media:
//! `api.max_media_bytes`) are 413, bodies not received within
//! `api.body_timeout` 408.
//!
//! The router is axum; admission, uploads and the live-message view are
//! the gateway's, reached through [`ApiBackend`], so the routes are tested
//! here without sockets.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, Path, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use hyper::StatusCode;
use hyper::header::HeaderValue;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::door::throttle::{AuthThrottle, ThrottleConfig};
use crate::httpd::{self, BodyError, ConnInfo};
use crate::model::submit::{MediaChunk, MediaStored, RejectReason, Submission, SubmitResult};
use crate::model::{ChannelPref, FallbackPolicy, MessageId, Priority};

/// The contract, as committed.
pub const OPENAPI: &str = include_str!("../docs/api/openapi.json");

/// What the API needs from the gateway.
pub trait ApiBackend: Send + Sync + 'static {
    /// The tenant whose token this is (compared in constant time).
    fn tenant_of(&self, token: &str) -> Option<Arc<str>>;

    /// Admits a batch: one result per message, in order, resolved once the
    /// accepted ones are durable.
    fn submit(
        &self,
        tenant: &Arc<str>,
        messages: Vec<Submission>,
    ) -> Pin<Box<dyn Future<Output = Vec<SubmitResult>> + Send>>;

    /// Stores a whole media file; the refusal's text is the client's.
    fn put_media(
        &self,
        tenant: &Arc<str>,
        media: MediaChunk,
    ) -> Pin<Box<dyn Future<Output = Result<MediaStored, MediaRefused>> + Send>>;

    /// Messages the gateway can take now (past it: 429).
    fn headroom(&self) -> u64;

    /// A live message of `tenant`'s, as JSON.
    fn message(&self, tenant: &str, id: MessageId) -> Option<Value>;
}

/// Why media was not stored (its text is the client's).
pub type MediaRefused = Box<dyn std::error::Error + Send + Sync>;

/// Limits of the API's routes (from `[api]`).
#[derive(Clone, Copy, Debug)]
pub struct ApiLimits {
    /// Largest JSON body.
    pub max_body_bytes: usize,
    /// Largest media body.
    pub max_media_bytes: usize,
    /// Deadline for receiving a body.
    pub body_timeout: Duration,
    /// Most messages in one request.
    pub max_batch: usize,
    /// How unknown tokens are throttled.
    pub auth: ThrottleConfig,
}

struct Api {
    backend: Arc<dyn ApiBackend>,
    limits: ApiLimits,
    throttle: AuthThrottle,
}

type ApiState = State<Arc<Api>>;

/// The caller, once authenticated.
#[derive(Clone)]
struct Tenant(Arc<str>);

/// The API's routes over `backend`.
pub fn router(backend: Arc<dyn ApiBackend>, limits: ApiLimits) -> Router {
    let api = Arc::new(Api {
        backend,
        limits,
        throttle: AuthThrottle::new(limits.auth),
    });
    let authed = Router::new()
        .route("/v1/messages", post(submit))
        .route("/v1/messages/{id}", get(message))
        .route("/v1/media", post(media))
        .route_layer(middleware::from_fn_with_state(api.clone(), authenticate))
        .with_state(api);
    Router::new()
        .route("/v1/openapi.json", get(openapi))
        .merge(authed)
        .fallback(any(no_route))
}

fn reply(status: StatusCode, body: Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    reply(status, json!({ "error": message.into() }))
}

/// `status` with `Retry-After: 1`.
fn retry_later(status: StatusCode, body: Value) -> Response {
    let mut r = reply(status, body);
    r.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

async fn no_route() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no such route (see /v1/openapi.json)",
    )
}

async fn openapi() -> Response {
    let mut r = OPENAPI.into_response();
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

async fn authenticate(State(api): ApiState, mut req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    let Some(token) = token else {
        return unauthorized(
            "a tenant token is required (Authorization: Bearer <token>)",
            "Bearer",
        );
    };
    // Requests that came through no door (tests) share one address.
    let peer = req
        .extensions()
        .get::<ConnInfo>()
        .map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |c| c.peer.ip());
    if let Err(wait) = api.throttle.check(peer, tokio::time::Instant::now()) {
        metrics::counter!("sluice_api_auth_locked_out_total").increment(1);
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many unknown tokens from this address; try again later",
        );
        r.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(wait.as_secs().max(1)));
        return r;
    }
    let Some(tenant) = api.backend.tenant_of(token) else {
        metrics::counter!("sluice_api_auth_failures_total").increment(1);
        let wait = api.throttle.failed(peer, tokio::time::Instant::now());
        tokio::time::sleep(wait).await;
        return unauthorized("unknown token", "Bearer error=\"invalid_token\"");
    };
    req.extensions_mut().insert(Tenant(tenant));
    next.run(req).await
}

fn unauthorized(why: &str, challenge: &'static str) -> Response {
    let mut r = error(StatusCode::UNAUTHORIZED, why);
    r.headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    r
}

/// Reads a body within `max` bytes and the deadline.
async fn read(body: Body, max: usize, deadline: Duration) -> Result<bytes::Bytes, Response> {
    httpd::read_body(body, max, deadline).await.map_err(|e| {
        let status = match e {
            BodyError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::TimedOut => StatusCode::REQUEST_TIMEOUT,
            BodyError::Broken => StatusCode::BAD_REQUEST,
        };
        match e {
            BodyError::TooLarge => error(status, format!("{e} (at most {max} bytes)")),
            _ => error(status, e.to_string()),
        }
    })
}

fn content_type(req: &Request) -> &str {
    req.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

// === POST /v1/messages ===

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchIn {
    messages: Vec<MessageIn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageIn {
    client_ref: String,
    to: String,
    from: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    media: Vec<String>,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    channel: ChannelIn,
    #[serde(default)]
    fallback: FallbackIn,
    #[serde(default)]
    campaign_id: String,
    #[serde(default)]
    validity_seconds: u32,
    #[serde(default)]
    priority: PriorityIn,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    mms_service_code: String,
    #[serde(default)]
    mms_linked_id: String,
    #[serde(default)]
    mms_message_class: Option<crate::model::MmsMessageClass>,
    #[serde(default)]
    mms_priority: Option<crate::model::MmsPriority>,
    #[serde(default)]
    mms_read_reply: Option<bool>,
    #[serde(default)]
    mms_distribution_indicator: Option<bool>,
    #[serde(default)]
    mms_earliest_delivery_ms: u64,
    #[serde(default)]
    track_links: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "snake_case")]
enum ChannelIn {
    #[default]
    Auto,
    Sms,
    Mms,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "snake_case")]
enum FallbackIn {
    #[default]
    SmsWithLink,
    SmsTextOnly,
    None,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "snake_case")]
enum PriorityIn {
    #[default]
    Marketing,
    Transactional,
}

impl From<MessageIn> for Submission {
    fn from(m: MessageIn) -> Submission {
        Submission {
            client_ref: m.client_ref,
            to: m.to,
            from: m.from,
            text: m.text,
            media: m.media,
            subject: m.subject,
            channel: match m.channel {
                ChannelIn::Auto => ChannelPref::Auto,
                ChannelIn::Sms => ChannelPref::Sms,
                ChannelIn::Mms => ChannelPref::Mms,
            },
            fallback: match m.fallback {
                FallbackIn::SmsWithLink => FallbackPolicy::SmsWithLink,
                FallbackIn::SmsTextOnly => FallbackPolicy::SmsTextOnly,
                FallbackIn::None => FallbackPolicy::None,
            },
            campaign_id: m.campaign_id,
            validity_seconds: m.validity_seconds,
            priority: match m.priority {
                PriorityIn::Marketing => Priority::Marketing,
                PriorityIn::Transactional => Priority::Transactional,
            },
            tags: m.tags,
            mms_service_code: m.mms_service_code,
            mms_linked_id: m.mms_linked_id,
            mms_message_class: m.mms_message_class,
            mms_priority: m.mms_priority,
            mms_read_reply: m.mms_read_reply,
            mms_distribution_indicator: m.mms_distribution_indicator,
            mms_earliest_delivery_ms: m.mms_earliest_delivery_ms,
            track_links: m.track_links,
        }
    }
}

/// Why a body is not a batch of messages (HTTP 400).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// Not JSON, or not the schema: serde's words (naming the field and
    /// position), at most 300 characters.
    #[error("{0}")]
    Schema(String),
    /// `messages` is empty.
    #[error("messages: at least one")]
    Empty,
}

/// Decodes the body of `POST /v1/messages` into the domain's submissions
/// (unchecked: admission judges numbers, sizes and senders).
///
/// # Errors
/// [`BatchError`] when the body is not a non-empty batch.
pub fn decode_batch(body: &[u8]) -> Result<Vec<Submission>, BatchError> {
    let batch: BatchIn = serde_json::from_slice(body).map_err(|e| {
        let text = e.to_string();
        BatchError::Schema(match text.char_indices().nth(300) {
            Some((i, _)) => format!("{}…", &text[..i]),
            None => text,
        })
    })?;
    if batch.messages.is_empty() {
        return Err(BatchError::Empty);
    }
    Ok(batch.messages.into_iter().map(Submission::from).collect())
}

fn result_json(r: &SubmitResult) -> Value {
    match &r.outcome {
        Ok(a) => json!({
            "client_ref": r.client_ref,
            "status": if a.duplicate { "duplicate" } else { "accepted" },
            "id": a.id.to_string(),
        }),
        Err(rej) => json!({
            "client_ref": r.client_ref,
            "status": "rejected",
            "reason": rej.reason.as_str(),
            "detail": rej.detail,
        }),
    }
}

async fn submit(
    State(api): ApiState,
    Extension(Tenant(tenant)): Extension<Tenant>,
    req: Request,
) -> Response {
    if !content_type(&req).starts_with("application/json") {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "messages are JSON (Content-Type: application/json)",
        );
    }
    let l = api.limits;
    let body = match read(req.into_body(), l.max_body_bytes, l.body_timeout).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let messages = match decode_batch(&body) {
        Ok(m) => m,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let n = messages.len();
    if n > l.max_batch {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{n} messages; at most {} per request", l.max_batch),
        );
    }
    if n as u64 > api.backend.headroom() {
        return retry_later(
            StatusCode::TOO_MANY_REQUESTS,
            json!({ "error": "the gateway holds as many messages as it may; retry shortly" }),
        );
    }
    let results = api.backend.submit(&tenant, messages).await;
    let taken = results.iter().filter(|r| r.outcome.is_ok()).count();
    let unavailable = results.iter().all(|r| {
        r.outcome
            .as_ref()
            .is_err_and(|e| e.reason == RejectReason::Unavailable)
    });
    let body = json!({ "results": results.iter().map(result_json).collect::<Vec<_>>() });
    if taken > 0 {
        reply(StatusCode::ACCEPTED, body)
    } else if unavailable {
        retry_later(StatusCode::SERVICE_UNAVAILABLE, body)
    } else {
        reply(StatusCode::UNPROCESSABLE_ENTITY, body)
    }
}

// === GET /v1/messages/{id} ===

async fn message(
    State(api): ApiState,
    Extension(Tenant(tenant)): Extension<Tenant>,
    Path(id): Path<String>,
) -> Response {
    let Some(id) = (id.len() == 16)
        .then(|| id.parse::<MessageId>().ok())
        .flatten()
    else {
        return error(StatusCode::BAD_REQUEST, "message id: 16 hex digits");
    };
    match api.backend.message(&tenant, id) {
        Some(m) => reply(StatusCode::OK, m),
        // Another tenant's message is as unknown as a finished one.
        None => error(
            StatusCode::NOT_FOUND,
            "no live message with this id (finished messages are reported by their events)",
        ),
    }
}

// === POST /v1/media ===

async fn media(
    State(api): ApiState,
    Extension(Tenant(tenant)): Extension<Tenant>,
    req: Request,
) -> Response {
    let declared = content_type(&req).to_owned();
    if declared.is_empty() {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type names the media's type (image/png, image/gif, video/mp4...)",
        );
    }
    let l = api.limits;
    let data = match read(req.into_body(), l.max_media_bytes, l.body_timeout).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let chunk = MediaChunk {
        content_type: declared,
        total_size: data.len() as u64,
        data,
        last: true,
        ..MediaChunk::default()
    };
    match api.backend.put_media(&tenant, chunk).await {
        Ok(m) => reply(
            StatusCode::CREATED,
            json!({ "media_id": m.media_id, "size": m.size, "content_type": m.content_type }),
        ),
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
    }
}

#[cfg(test)]
mod tests;
