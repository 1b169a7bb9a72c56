//! [`Mm7Client`]: POSTs MM7 requests to one URL (an MMSC, or, for the MMSC
//! simulator, a VASP's callback URL) over HTTP/1.1 or HTTPS, and turns the
//! answers into typed outcomes.
//!
//! # Shape
//! A cheap clonable handle over a small connection pool: idle keep-alive
//! connections are reused most-recently-used first and dropped after
//! [`ClientConfig::idle_timeout`]; at most [`ClientConfig::max_connections`]
//! requests are in flight (an owned semaphore permit per request). Each
//! connection's driver is a spawned task that ends when the connection
//! closes or its last handle is dropped.
//!
//! # Decisions
//! - **Own pool instead of hyper-util's legacy client**: the crate enables
//!   hyper-util without its `client-legacy` feature. The pool here is the
//!   part of it MM7 needs (one origin, HTTP/1.1). A request is retried on a
//!   fresh connection only when hyper hands it back unsent (a reused
//!   connection the peer had closed), so a retry never duplicates.
//! - **HTTPS** with rustls (ring) through tokio-rustls; the system's roots
//!   unless a [`ClientConfig::tls`] configuration is given.
//! - **The size limit counts the whole HTTP body** (SOAP part, MIME headers,
//!   content), as carriers do; it is checked before anything is sent.
//! - **Classification**: an MM7 status in the answer (in `SubmitRsp`, or in
//!   a Fault's `detail`, whatever the HTTP status) decides; without one the
//!   HTTP status does ([`super::status::classify_http`]); 401/403 become
//!   [`Mm7Error::Unauthorized`]. The password is never logged (the
//!   `Authorization` header is built once and kept out of `Debug`).
//! - **Sent or not**: a failure before the first byte of the request left
//!   (connecting, no connection ready before the deadline, a connection
//!   closed before the request) is [`Mm7Error::Connect`] or
//!   [`Mm7Error::NotSent`]; after it, [`Mm7Error::Transport`] or
//!   [`Mm7Error::Timeout`], which [`Mm7Error::maybe_processed`] reports: a
//!   SubmitReq that may have been accepted is not the same as one that
//!   never left.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONNECTION, CONTENT_TYPE, HOST, HeaderValue, USER_AGENT};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, RootCertStore, pki_types::ServerName};

use super::TARGET;
use super::auth::Credentials;
use super::error::Mm7Error;
use super::soap::{self, DeliverReq, DeliveryReportReq, Encoded, Message, SubmitReq};
use super::status::{Class, Status, classify_http};

/// Configuration of an [`Mm7Client`].
///
/// # Defaults
/// No URL (must be set), no credentials, 30 s request timeout, 5 s connect
/// timeout, no size limit, 16 connections, 60 s idle timeout, 1 MiB
/// answers, system roots for HTTPS.
#[derive(Clone)]
pub struct ClientConfig {
    /// `http://host[:port]/path` or `https://…`.
    pub url: String,
    /// HTTP basic-auth credentials.
    pub credentials: Option<Credentials>,
    /// Deadline of a whole exchange (waiting for a connection slot,
    /// connecting, sending, reading the answer).
    pub request_timeout: Duration,
    /// Deadline of a TCP connect plus TLS handshake.
    pub connect_timeout: Duration,
    /// Largest HTTP body sent; bigger messages fail with
    /// [`Mm7Error::TooLarge`] before sending.
    pub max_message_size: Option<usize>,
    /// Most requests in flight (and connections open).
    pub max_connections: usize,
    /// Idle connections older than this are not reused.
    pub idle_timeout: Duration,
    /// Largest answer body read.
    pub max_response_size: usize,
    /// TLS configuration for `https` URLs (`None`: the system's roots).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            url: String::new(),
            credentials: None,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            max_message_size: None,
            max_connections: 16,
            idle_timeout: Duration::from_secs(60),
            max_response_size: 1 << 20,
            tls: None,
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("url", &self.url)
            .field("credentials", &self.credentials)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_message_size", &self.max_message_size)
            .field("max_connections", &self.max_connections)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_response_size", &self.max_response_size)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// What the MMSC made of a `SubmitReq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitOutcome {
    /// A 1xxx status with a `MessageID` (the key of later delivery reports).
    Accepted {
        /// `MessageID`.
        message_id: String,
        /// The status (1000, or 1100 partial success).
        status: Status,
    },
    /// Any other MM7 status, from a `SubmitRsp` or a Fault.
    Refused {
        /// The status.
        status: Status,
        /// The HTTP status of the answer.
        http_status: u16,
    },
}

impl SubmitOutcome {
    /// Success, temporary or permanent (by the MM7 status).
    pub fn class(&self) -> Class {
        match self {
            SubmitOutcome::Accepted { .. } => Class::Success,
            SubmitOutcome::Refused { status, .. } => match status.class() {
                // A 1xxx inside a Fault is not an acceptance.
                Class::Success => Class::Permanent,
                c => c,
            },
        }
    }
}

/// A raw HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    /// The HTTP status.
    pub status: u16,
    /// Its `Content-Type`.
    pub content_type: Option<String>,
    /// The body.
    pub body: Bytes,
}

impl HttpReply {
    /// Decodes the body as MM7, if it is one.
    ///
    /// # Errors
    /// As [`soap::decode`].
    pub fn decode(&self) -> Result<Message, Mm7Error> {
        soap::decode(self.content_type.as_deref(), &self.body)
    }
}

// === impl Mm7Client ===

/// An MM7 HTTP client for one URL; clones share the pool.
#[derive(Clone)]
pub struct Mm7Client {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: ClientConfig,
    target: Target,
    authorization: Option<HeaderValue>,
    tls: Option<TlsConnector>,
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<(Instant, SendRequest<Full<Bytes>>)>>,
}

/// Where requests go, parsed once.
struct Target {
    /// Host without brackets, for connecting and SNI.
    host: String,
    port: u16,
    /// The `Host` header.
    authority: HeaderValue,
    /// Origin-form request target.
    path: Uri,
}

impl fmt::Debug for Mm7Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mm7Client")
            .field("url", &self.inner.cfg.url)
            .field("idle", &self.inner.idle.lock().len())
            .finish_non_exhaustive()
    }
}

impl Mm7Client {
    /// A client for `cfg.url`. Connections are opened on first use.
    ///
    /// # Errors
    /// [`Mm7Error::Config`] for a URL that is not `http(s)://host…`, or
    /// credentials that do not fit in a header.
    pub fn new(cfg: ClientConfig) -> Result<Mm7Client, Mm7Error> {
        let bad = |why: &str| Mm7Error::Config(format!("MM7 URL `{}`: {why}", cfg.url));
        let uri: Uri = cfg.url.parse().map_err(|_| bad("not a URL"))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(bad("scheme must be http or https")),
        };
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad(
                "put credentials in the credentials setting, not the URL",
            ));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let path: Uri = uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .map_err(|_| bad("bad path"))?;
        let authority = HeaderValue::from_str(authority.as_str()).map_err(|_| bad("bad host"))?;
        let authorization = match &cfg.credentials {
            Some(c) => {
                let mut v = HeaderValue::from_str(&c.header_value())
                    .map_err(|_| Mm7Error::Config("credentials do not fit in a header".into()))?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        let tls = if https {
            let mut tls = match &cfg.tls {
                Some(t) => (**t).clone(),
                None => default_tls()?,
            };
            tls.alpn_protocols = vec![b"http/1.1".to_vec()];
            Some(TlsConnector::from(Arc::new(tls)))
        } else {
            None
        };
        Ok(Mm7Client {
            inner: Arc::new(Inner {
                permits: Arc::new(Semaphore::new(cfg.max_connections.max(1))),
                cfg,
                target: Target {
                    host,
                    port,
                    authority,
                    path,
                },
                authorization,
                tls,
                idle: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Encodes and submits `req`.
    ///
    /// # Errors
    /// As [`Mm7Client::submit_encoded`].
    pub async fn submit(&self, req: &SubmitReq<'_>) -> Result<SubmitOutcome, Mm7Error> {
        self.submit_encoded(&req.encode()).await
    }

    /// Submits an encoded `SubmitReq`: `Ok` when the MMSC answered with an
    /// MM7 status (accepted or refused), `Err` otherwise.
    ///
    /// # Errors
    /// [`Mm7Error::TooLarge`] (not sent); [`Mm7Error::Unauthorized`] on
    /// 401/403; [`Mm7Error::Http`] for other HTTP errors without an MM7
    /// status; [`Mm7Error::Fault`] for a Fault without one;
    /// [`Mm7Error::Connect`], [`Mm7Error::NotSent`],
    /// [`Mm7Error::Transport`], [`Mm7Error::Timeout`] (the last two:
    /// [`Mm7Error::maybe_processed`]); decode errors for an undecodable 2xx answer;
    /// [`Mm7Error::Unexpected`] for another message; [`Mm7Error::Missing`]
    /// for an acceptance without a `MessageID`. [`Mm7Error::class`] tells
    /// whether to retry.
    pub async fn submit_encoded(&self, req: &Encoded) -> Result<SubmitOutcome, Mm7Error> {
        let reply = self.post(req).await?;
        match answer(&reply)? {
            Message::SubmitRsp(rsp) if reply_ok(&reply) && rsp.status.class() == Class::Success => {
                let message_id = rsp.message_id.ok_or(Mm7Error::Missing("MessageID"))?;
                Ok(SubmitOutcome::Accepted {
                    message_id,
                    status: rsp.status,
                })
            }
            Message::SubmitRsp(rsp) => Ok(SubmitOutcome::Refused {
                status: rsp.status,
                http_status: reply.status,
            }),
            Message::Fault(f) => match f.status {
                Some(status) => Ok(SubmitOutcome::Refused {
                    status,
                    http_status: reply.status,
                }),
                None => Err(fault_error(f, reply.status)),
            },
            other => Err(unexpected("SubmitRsp", &other, reply.status)),
        }
    }

    /// Posts a `DeliveryReportReq` (the MMSC side) and returns the status
    /// of the `DeliveryReportRsp` or Fault.
    ///
    /// # Errors
    /// As [`Mm7Client::submit_encoded`] for everything but a status.
    pub async fn delivery_report(&self, req: &DeliveryReportReq) -> Result<Status, Mm7Error> {
        self.expect_status(&req.encode(), "DeliveryReportRsp").await
    }

    /// Posts a `DeliverReq` (the MMSC side) and returns the status of the
    /// `DeliverRsp` or Fault.
    ///
    /// # Errors
    /// As [`Mm7Client::submit_encoded`] for everything but a status.
    pub async fn deliver(&self, req: &DeliverReq) -> Result<Status, Mm7Error> {
        self.expect_status(&req.encode(), "DeliverRsp").await
    }

    async fn expect_status(
        &self,
        req: &Encoded,
        expected: &'static str,
    ) -> Result<Status, Mm7Error> {
        let reply = self.post(req).await?;
        match answer(&reply)? {
            Message::Rsp(r) if r.kind.element() == expected => Ok(r.status),
            Message::Fault(f) => match f.status {
                Some(s) => Ok(s),
                None => Err(fault_error(f, reply.status)),
            },
            other => Err(unexpected(expected, &other, reply.status)),
        }
    }

    /// POSTs an encoded body and returns the raw answer, whatever its HTTP
    /// status.
    ///
    /// # Errors
    /// [`Mm7Error::TooLarge`], [`Mm7Error::Connect`] and
    /// [`Mm7Error::NotSent`] (nothing left), [`Mm7Error::Transport`] and
    /// [`Mm7Error::Timeout`] (the request left; see
    /// [`Mm7Error::maybe_processed`]), [`Mm7Error::Config`].
    pub async fn post(&self, req: &Encoded) -> Result<HttpReply, Mm7Error> {
        let cfg = &self.inner.cfg;
        if let Some(max) = cfg.max_message_size
            && req.body.len() > max
        {
            return Err(Mm7Error::TooLarge {
                size: req.body.len(),
                max,
            });
        }
        // Whether the request started to leave: a deadline that passes
        // before (waiting for a slot, connecting) lost nothing.
        let sent = AtomicBool::new(false);
        match tokio::time::timeout(cfg.request_timeout, self.exchange(req, &sent)).await {
            Ok(r) => r,
            Err(_) if sent.load(Ordering::Acquire) => Err(Mm7Error::Timeout(cfg.request_timeout)),
            Err(_) => Err(Mm7Error::NotSent(format!(
                "no connection ready within {:?}",
                cfg.request_timeout
            ))),
        }
    }

    async fn exchange(&self, enc: &Encoded, sent: &AtomicBool) -> Result<HttpReply, Mm7Error> {
        let inner = &self.inner;
        let _permit = Arc::clone(&inner.permits)
            .acquire_owned()
            .await
            .map_err(|_| Mm7Error::NotSent("client closed".into()))?;
        let mut request = Some(self.request(enc)?);
        // Bounded: each round either uses up an idle connection or opens a
        // new one, and a new one is tried once.
        loop {
            let (mut sender, reused) = match self.take_idle() {
                Some(s) => (s, true),
                None => (self.connect().await?, false),
            };
            if sender.ready().await.is_err() {
                if reused {
                    continue;
                }
                return Err(Mm7Error::NotSent(
                    "connection closed before the request".into(),
                ));
            }
            let Some(req) = request.take() else {
                return Err(Mm7Error::NotSent("request lost".into()));
            };
            sent.store(true, Ordering::Release);
            let resp = match sender.try_send_request(req).await {
                Ok(resp) => resp,
                Err(mut e) => match e.take_message() {
                    // Not sent: safe to try again on another connection.
                    Some(req) => {
                        sent.store(false, Ordering::Release);
                        if reused {
                            request = Some(req);
                            continue;
                        }
                        return Err(Mm7Error::NotSent(e.into_error().to_string()));
                    }
                    None => return Err(Mm7Error::Transport(e.into_error().to_string())),
                },
            };
            let status = resp.status().as_u16();
            let content_type = resp
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let close = resp
                .headers()
                .get(CONNECTION)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.to_ascii_lowercase().contains("close"));
            let body = Limited::new(resp.into_body(), inner.cfg.max_response_size)
                .collect()
                .await
                .map_err(|e| Mm7Error::Transport(format!("reading the answer: {e}")))?
                .to_bytes();
            if !close && !sender.is_closed() {
                self.put_idle(sender);
            }
            return Ok(HttpReply {
                status,
                content_type,
                body,
            });
        }
    }

    fn request(&self, enc: &Encoded) -> Result<Request<Full<Bytes>>, Mm7Error> {
        let t = &self.inner.target;
        let mut b = Request::builder()
            .method(Method::POST)
            .uri(t.path.clone())
            .header(HOST, t.authority.clone())
            .header(CONTENT_TYPE, &enc.content_type)
            .header("SOAPAction", "\"\"")
            .header(USER_AGENT, "sluice-mm7");
        if let Some(a) = &self.inner.authorization {
            b = b.header(AUTHORIZATION, a.clone());
        }
        b.body(Full::new(enc.body.clone()))
            .map_err(|e| Mm7Error::Config(format!("request: {e}")))
    }

    fn take_idle(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.inner.idle.lock();
        let now = Instant::now();
        while let Some((since, sender)) = idle.pop() {
            if now.duration_since(since) < self.inner.cfg.idle_timeout && !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    fn put_idle(&self, sender: SendRequest<Full<Bytes>>) {
        let mut idle = self.inner.idle.lock();
        if idle.len() < self.inner.cfg.max_connections.max(1) {
            idle.push((Instant::now(), sender));
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, Mm7Error> {
        let inner = &self.inner;
        let t = &inner.target;
        let addr = format!("{}:{}", t.host, t.port);
        let fail = |reason: String| Mm7Error::Connect {
            addr: addr.clone(),
            reason,
        };
        let connect = async {
            let tcp = TcpStream::connect((t.host.as_str(), t.port))
                .await
                .map_err(|e| fail(e.to_string()))?;
            let _ = tcp.set_nodelay(true);
            match &inner.tls {
                Some(tls) => {
                    let name = ServerName::try_from(t.host.clone())
                        .map_err(|e| fail(format!("server name: {e}")))?;
                    let stream = tls
                        .connect(name, tcp)
                        .await
                        .map_err(|e| fail(format!("TLS: {e}")))?;
                    handshake(stream).await.map_err(|e| fail(e.to_string()))
                }
                None => handshake(tcp).await.map_err(|e| fail(e.to_string())),
            }
        };
        match tokio::time::timeout(inner.cfg.connect_timeout, connect).await {
            Ok(r) => r,
            Err(_) => Err(fail(format!(
                "timed out after {:?}",
                inner.cfg.connect_timeout
            ))),
        }
    }
}

/// Runs the HTTP/1 handshake and spawns the connection's driver.
async fn handshake<T>(io: T) -> Result<SendRequest<Full<Bytes>>, hyper::Error>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(target: TARGET, error = %e, "MM7 connection ended");
        }
    });
    Ok(sender)
}

fn default_tls() -> Result<rustls::ClientConfig, Mm7Error> {
    let mut roots = RootCertStore::empty();
    for c in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(c);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Mm7Error::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn reply_ok(reply: &HttpReply) -> bool {
    (200..300).contains(&reply.status)
}

/// The MM7 message in an answer; HTTP errors without one become errors.
fn answer(reply: &HttpReply) -> Result<Message, Mm7Error> {
    match reply.decode() {
        Ok(m) => Ok(m),
        Err(e) => Err(match reply.status {
            200..=299 => e,
            401 | 403 => Mm7Error::Unauthorized {
                status: reply.status,
            },
            status => {
                tracing::debug!(target: TARGET, status, error = %crate::model::LogSafe::display(&e), "MM7 HTTP error without an MM7 answer");
                Mm7Error::Http { status }
            }
        }),
    }
}

fn fault_error(f: soap::Fault, http_status: u16) -> Mm7Error {
    Mm7Error::Fault {
        code: f.faultcode,
        string: f.faultstring,
        http_status,
    }
}

fn unexpected(expected: &'static str, got: &Message, http_status: u16) -> Mm7Error {
    if !(200..300).contains(&http_status) && classify_http(http_status) != Class::Success {
        if matches!(http_status, 401 | 403) {
            return Mm7Error::Unauthorized {
                status: http_status,
            };
        }
        return Mm7Error::Http {
            status: http_status,
        };
    }
    Mm7Error::Unexpected {
        expected,
        got: got.name().to_owned(),
    }
}
