//! The HTTP receiver of MMSC callbacks: `DeliveryReportReq` and
//! `DeliverReq` POSTed by an MMSC (plain `text/xml` or
//! `multipart/related`), decoded and handed to an [`Mm7Inbound`] handler,
//! answered with the matching response echoing the `TransactionID`.
//!
//! # Answers
//! | case                                        | HTTP | body |
//! |---------------------------------------------|------|------|
//! | source address not in the allow-list        | 403  | none |
//! | basic auth configured, missing or wrong     | 401  | none (`WWW-Authenticate: Basic`) |
//! | not a POST                                  | 405  | none |
//! | body over [`ServerConfig::max_body`]        | 413  | none |
//! | body not received within [`ServerConfig::body_timeout`] | 408 | none |
//! | body does not decode (XML, MIME, elements)  | 400  | Fault, `VASPErrorRsp` 4004 Validation error or 2004 Multimedia content refused |
//! | handler accepted                            | 200  | `DeliveryReportRsp` / `DeliverRsp`, 1000 Success |
//! | report handler answered another status      | 200  | `DeliveryReportRsp` with that status (e.g. 2005 Message ID Not found for a report that matches nothing: a permanent answer, so the MMSC stops retrying) |
//! | handler failed                              | 500  | Fault (`Server`), `VASPErrorRsp` 3000 Server Error: the MMSC retries |
//! | another MM7 request                         | 500  | Fault (`Client`), `VASPErrorRsp` 4003 Unsupported Operation |
//!
//! One server serves one peer's settings (credentials, allow-list): the
//! gateway starts one per carrier that calls back, or routes by port.
//! Answers use the namespace of the request when it is a supported version,
//! [`ServerConfig::version`] otherwise. Handler errors are logged, not sent
//! (the MMSC gets the generic status text). Each handler call runs in its
//! own task, so it completes even when the MMSC hangs up (the MMSC then
//! retries: handlers must accept duplicates), and a panicking handler gets
//! the MMSC a Fault rather than a dropped connection.
//!
//! # Limits
//! Connections go through a [`Door`] and [`crate::httpd`]: at most
//! [`ServerConfig::max_connections`] open (more are closed at once), TLS
//! when [`ServerConfig::tls`] is set, headers within
//! [`ServerConfig::header_read_timeout`], the whole body within
//! [`ServerConfig::body_timeout`], idle connections closed after
//! [`ServerConfig::idle_timeout`]. So held bodies cost at most
//! `max_connections × max_body` bytes, for at most `body_timeout`.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::TARGET;
use super::auth::{Credentials, IpNet};
use super::error::Mm7Error;
use super::soap::{
    self, DeliverReq, DeliveryReportReq, Encoded, ErrorRspKind, Fault, Message, Rsp,
};
use super::status::{self, Status};
use super::version::Version;
use crate::door::Door;
use crate::httpd::{self, BodyError, ConnInfo, HttpLimits};
use crate::tls::ServerTls;

/// How long [`Mm7Server::run_until_shutdown`] waits for connections to end.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What the gateway does with MMSC callbacks. `Err` makes the server answer
/// a Fault (3000 Server Error) so that the MMSC retries later; the string is
/// logged only. Keep `Err` for what a retry can fix (storage failing): a
/// report that can never match anything deserves a valid answer.
pub trait Mm7Inbound: Send + Sync + 'static {
    /// A delivery report arrived; `Ok` is the status of the
    /// `DeliveryReportRsp` (1000 Success, or a permanent code such as 2005
    /// Message ID Not found).
    fn delivery_report(
        &self,
        report: DeliveryReportReq,
    ) -> impl Future<Output = Result<Status, HandlerError>> + Send;

    /// An inbound message arrived.
    fn deliver(&self, deliver: DeliverReq)
    -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// Why a handler could not take a request (answered with a Fault, server
/// error, so the MMSC tries again): the handler's own error, kept whole.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// Configuration of [`serve`].
///
/// # Defaults
/// Listen on `127.0.0.1:8080`, plaintext, no auth, any source, 4 MiB bodies
/// read within 30 s, answers in `REL-6-MM7-1-4` when the request's namespace
/// is unknown, 10 s to read request headers, 32 connections, idle
/// connections closed after 60 s.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Basic-auth credentials the MMSC must send.
    pub credentials: Option<Credentials>,
    /// Source addresses allowed (empty: any).
    pub allow: Vec<IpNet>,
    /// Largest request body accepted.
    pub max_body: usize,
    /// Version of answers to requests in an unknown namespace.
    pub version: Version,
    /// Deadline for a request's headers (slow-loris guard) and the TLS
    /// handshake.
    pub header_read_timeout: Duration,
    /// Deadline for a request's whole body.
    pub body_timeout: Duration,
    /// A connection with no byte moving this long (and no request being
    /// handled) is closed.
    pub idle_timeout: Duration,
    /// Most open connections; past it new ones are closed at once.
    pub max_connections: usize,
    /// TLS (and client certificates) of the listener.
    pub tls: Option<Arc<ServerTls>>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            credentials: None,
            allow: Vec::new(),
            max_body: 4 << 20,
            version: Version::default(),
            header_read_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 32,
            tls: None,
        }
    }
}

/// A running receiver; stops on [`Mm7Server::shutdown`] or when the last
/// clone is dropped.
#[derive(Clone)]
pub struct Mm7Server {
    local_addr: SocketAddr,
    /// What each request is checked against (a reload replaces it).
    cfg: Arc<arc_swap::ArcSwap<ServerConfig>>,
    token: CancellationToken,
    _stop_on_drop: Arc<DropGuard>,
    tasks_done: Arc<Mutex<Option<mpsc::Receiver<()>>>>,
}

impl fmt::Debug for Mm7Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mm7Server")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Mm7Server {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting; open connections finish their request and close.
    pub fn shutdown(&self) {
        self.token.cancel();
    }

    /// Checks the next requests against `cfg`'s `credentials`, `allow`,
    /// `max_body` and `body_timeout`, and answers in its `version` those in
    /// an unknown namespace (a reload); its address, TLS, connection limit
    /// and header and idle timeouts stay as the listener started.
    pub fn set_checks(&self, checks: &ServerConfig) {
        self.cfg.rcu(|cfg| ServerConfig {
            credentials: checks.credentials.clone(),
            allow: checks.allow.clone(),
            max_body: checks.max_body,
            body_timeout: checks.body_timeout,
            version: checks.version,
            ..ServerConfig::clone(cfg)
        });
    }

    /// Waits for [`Mm7Server::shutdown`], then for connections to end (at
    /// most 5 s).
    pub async fn run_until_shutdown(self) {
        self.token.cancelled().await;
        let done = self.tasks_done.lock().take();
        if let Some(mut done) = done {
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, done.recv()).await;
        }
    }
}

/// Binds `cfg.listen` and serves MMSC callbacks with `handler` on the
/// current runtime; returns once listening.
///
/// # Errors
/// When the address cannot be bound.
pub async fn serve<H: Mm7Inbound>(cfg: ServerConfig, handler: Arc<H>) -> io::Result<Mm7Server> {
    let listener = TcpListener::bind(cfg.listen).await?;
    serve_on(listener, cfg, handler)
}

/// Binds `cfg.listen` at once (without waiting: a reload adding an MMSC
/// runs outside any task) and serves MMSC callbacks with `handler` on the
/// current runtime.
///
/// # Errors
/// When the address cannot be bound.
pub fn serve_now<H: Mm7Inbound>(cfg: ServerConfig, handler: Arc<H>) -> io::Result<Mm7Server> {
    // As `TcpListener::bind` does (SO_REUSEADDR on Unix), without its
    // await.
    let socket = if cfg.listen.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(cfg.listen)?;
    serve_on(socket.listen(1024)?, cfg, handler)
}

fn serve_on<H: Mm7Inbound>(
    listener: TcpListener,
    cfg: ServerConfig,
    handler: Arc<H>,
) -> io::Result<Mm7Server> {
    let local_addr = listener.local_addr()?;
    let token = CancellationToken::new();
    let (alive, tasks_done) = mpsc::channel(1);
    let door = Door::new("mm7", listener, cfg.tls.clone(), cfg.max_connections);
    let limits = HttpLimits {
        header_timeout: cfg.header_read_timeout,
        idle_timeout: cfg.idle_timeout,
    };
    let cfg = Arc::new(arc_swap::ArcSwap::from_pointee(cfg));
    let shared = Arc::new(Shared {
        cfg: cfg.clone(),
        handler,
    });
    let service = move |conn: &ConnInfo| {
        let shared = Arc::clone(&shared);
        let peer = conn.peer;
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let shared = Arc::clone(&shared);
            async move { Ok::<_, Infallible>(shared.handle(peer.ip(), req).await) }
        })
    };
    tokio::spawn(httpd::serve(
        door,
        limits,
        service,
        token.clone(),
        Some(alive),
    ));
    tracing::info!(target: TARGET, listen = %local_addr, "MM7 receiver listening");
    Ok(Mm7Server {
        local_addr,
        cfg,
        _stop_on_drop: Arc::new(token.clone().drop_guard()),
        token,
        tasks_done: Arc::new(Mutex::new(Some(tasks_done))),
    })
}

struct Shared<H> {
    /// Replaced by [`Mm7Server::set_checks`].
    cfg: Arc<arc_swap::ArcSwap<ServerConfig>>,
    handler: Arc<H>,
}

impl<H: Mm7Inbound> Shared<H> {
    async fn handle<B>(&self, peer: IpAddr, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: hyper::body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let cfg = self.cfg.load_full();
        if let Some(refusal) = admit(
            &req,
            peer,
            &cfg.allow,
            cfg.credentials.as_ref(),
            cfg.max_body,
        ) {
            return refusal;
        }
        let (content_type, body) = match read_body(req, cfg.max_body, cfg.body_timeout).await {
            Ok(x) => x,
            Err(resp) => return resp,
        };
        let msg = match soap::decode(content_type.as_deref(), &body) {
            Ok(m) => m,
            Err(e) => {
                tracing::info!(target: TARGET, %peer, error = %crate::model::LogSafe::display(&e), "undecodable MM7 request");
                return bad_request(&e, None, cfg.version);
            }
        };
        let version = msg.version().unwrap_or(cfg.version);
        let tid = msg.transaction_id().unwrap_or_default().to_owned();
        match msg {
            Message::DeliveryReportReq(r) => {
                let mm7_version = r.mm7_version.clone();
                let h = Arc::clone(&self.handler);
                let result = run(async move { h.delivery_report(*r).await }).await;
                answer(
                    result,
                    &tid,
                    version,
                    &mm7_version,
                    Rsp::delivery_report,
                    "delivery report",
                )
            }
            Message::DeliverReq(d) => {
                let mm7_version = d.mm7_version.clone();
                let h = Arc::clone(&self.handler);
                let result =
                    run(async move { h.deliver(*d).await.map(|()| Status::success()) }).await;
                answer(result, &tid, version, &mm7_version, Rsp::deliver, "deliver")
            }
            other => {
                tracing::info!(target: TARGET, %peer, message = %crate::model::LogSafe::new(other.name()), "unsupported MM7 request");
                let fault = Fault::new(
                    Some(&tid),
                    version,
                    ErrorRspKind::Vasp,
                    Status::new(status::UNSUPPORTED_OPERATION),
                );
                soap_response(StatusCode::INTERNAL_SERVER_ERROR, fault.encode())
            }
        }
    }
}

/// Fuzzing hook: one callback request through the live path (admission,
/// body, decoding, handler, answer) without a connection.
#[doc(hidden)]
pub async fn fuzz_callback<H: Mm7Inbound>(
    cfg: ServerConfig,
    handler: Arc<H>,
    peer: IpAddr,
    req: Request<Full<Bytes>>,
) -> Response<Full<Bytes>> {
    Shared {
        cfg: Arc::new(arc_swap::ArcSwap::from_pointee(cfg)),
        handler,
    }
    .handle(peer, req)
    .await
}

/// Runs a handler call in its own task: a peer that hangs up cannot cancel
/// it half-way, and a panic becomes an error answer.
async fn run<F>(call: F) -> Result<Status, HandlerError>
where
    F: Future<Output = Result<Status, HandlerError>> + Send + 'static,
{
    match tokio::spawn(call).await {
        Ok(r) => r,
        Err(e) => Err(format!("handler task failed: {e}").into()),
    }
}

fn answer(
    result: Result<Status, HandlerError>,
    tid: &str,
    version: Version,
    mm7_version: &str,
    rsp: fn(&str, Version, Status) -> Rsp,
    what: &str,
) -> Response<Full<Bytes>> {
    match result {
        Ok(status) => {
            let mut r = rsp(tid, version, status);
            r.mm7_version = mm7_version.to_owned();
            soap_response(StatusCode::OK, r.encode())
        }
        Err(reason) => {
            tracing::warn!(target: TARGET, transaction_id = %crate::model::LogSafe::new(tid), reason = %crate::model::LogSafe::display(&reason), "MM7 {what} handler failed");
            let fault = Fault::new(
                Some(tid),
                version,
                ErrorRspKind::Vasp,
                Status::new(status::SERVER_ERROR),
            );
            soap_response(StatusCode::INTERNAL_SERVER_ERROR, fault.encode())
        }
    }
}

// === helpers shared with the MMSC simulator ===

/// Checks source address, credentials, method and declared length; `Some`
/// is the refusal to send.
pub(crate) fn admit<B>(
    req: &Request<B>,
    peer: IpAddr,
    allow: &[IpNet],
    credentials: Option<&Credentials>,
    max_body: usize,
) -> Option<Response<Full<Bytes>>> {
    if !allow.is_empty() && !allow.iter().any(|n| n.contains(peer)) {
        tracing::info!(target: TARGET, %peer, "MM7 request from an address not allowed");
        return Some(empty(StatusCode::FORBIDDEN));
    }
    if let Some(c) = credentials {
        let ok = req
            .headers()
            .get(AUTHORIZATION)
            .is_some_and(|h| c.matches(h.as_bytes()));
        if !ok {
            tracing::info!(target: TARGET, %peer, "MM7 request without valid credentials");
            let mut r = empty(StatusCode::UNAUTHORIZED);
            r.headers_mut().insert(
                WWW_AUTHENTICATE,
                hyper::header::HeaderValue::from_static("Basic realm=\"mm7\""),
            );
            return Some(r);
        }
    }
    if req.method() != Method::POST {
        let mut r = empty(StatusCode::METHOD_NOT_ALLOWED);
        r.headers_mut()
            .insert(ALLOW, hyper::header::HeaderValue::from_static("POST"));
        return Some(r);
    }
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_body as u64) {
        return Some(empty(StatusCode::PAYLOAD_TOO_LARGE));
    }
    None
}

/// Reads the whole body (at most `max` bytes, within `deadline`) and the
/// `Content-Type`.
pub(crate) async fn read_body<B>(
    req: Request<B>,
    max: usize,
    deadline: Duration,
) -> Result<(Option<String>, Bytes), Response<Full<Bytes>>>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match httpd::read_body(req.into_body(), max, deadline).await {
        Ok(b) => Ok((content_type, b)),
        Err(BodyError::TooLarge) => Err(empty(StatusCode::PAYLOAD_TOO_LARGE)),
        Err(BodyError::TimedOut) => Err(empty(StatusCode::REQUEST_TIMEOUT)),
        Err(_) => Err(empty(StatusCode::BAD_REQUEST)),
    }
}

/// HTTP 400 with a Fault carrying the error's status (4004 or 2004).
pub(crate) fn bad_request(
    e: &Mm7Error,
    transaction_id: Option<&str>,
    version: Version,
) -> Response<Full<Bytes>> {
    let status = Status::new(e.status_code()).with_details(e.to_string());
    let fault = Fault::new(transaction_id, version, ErrorRspKind::Vasp, status);
    soap_response(StatusCode::BAD_REQUEST, fault.encode())
}

/// An answer carrying an encoded MM7 message.
pub(crate) fn soap_response(status: StatusCode, enc: Encoded) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(enc.body));
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(&enc.content_type) {
        r.headers_mut().insert(CONTENT_TYPE, v);
    }
    r
}

/// An answer without a body.
pub(crate) fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r
}
