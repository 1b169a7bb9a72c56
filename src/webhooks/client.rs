//! [`Poster`]: POSTs signed JSON bodies to one webhook URL over HTTP/1.1 or
//! HTTPS (rustls), on one keep-alive connection per sender, reconnecting
//! when the connection is gone. One connection per sender is what makes an
//! endpoint's `concurrency` its number of connections.
//!
//! Hand-written over hyper's client connection rather than a client crate:
//! the crate already carries hyper and rustls, and a webhook sender needs
//! one origin, one request at a time, no redirects (a 3xx is a failure, not
//! a place to send signed events to), and a small answer it throws away.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue, RETRY_AFTER, USER_AGENT};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, pki_types::ServerName};

/// Largest answer body read (and thrown away).
const MAX_ANSWER: usize = 64 * 1024;

/// Where requests go, parsed once.
#[derive(Clone)]
pub struct Target {
    host: String,
    port: u16,
    authority: HeaderValue,
    path: Uri,
    tls: Option<TlsConnector>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Target {
    /// Parses `url` (`http://` or `https://`); `tls` is used for `https`.
    ///
    /// # Errors
    /// Not an absolute http(s) URL with a host.
    pub fn parse(url: &str, tls: Option<Arc<rustls::ClientConfig>>) -> Result<Target, String> {
        let uri: Uri = url.parse().map_err(|e| format!("bad url: {e}"))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err("url must be http:// or https://".into()),
        };
        let auth = uri.authority().ok_or("url has no host")?;
        let host = auth.host().trim_matches(['[', ']']).to_owned();
        let port = auth.port_u16().unwrap_or(if https { 443 } else { 80 });
        let authority = HeaderValue::from_str(auth.as_str()).map_err(|e| e.to_string())?;
        let path: Uri = uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .map_err(|e| format!("bad path: {e}"))?;
        let tls = match (https, tls) {
            (false, _) => None,
            (true, Some(c)) => Some(TlsConnector::from(c)),
            (true, None) => return Err("https needs a TLS configuration".into()),
        };
        Ok(Target {
            host,
            port,
            authority,
            path,
            tls,
        })
    }

    /// `host:port`, for logs.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// What one POST came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The endpoint answered with this status (and `Retry-After`, in
    /// seconds, when it gave one).
    Status(u16, Option<u64>),
    /// No answer: connecting, TLS, the connection, or the deadline failed.
    Failed(String),
}

/// One sender's connection to its endpoint.
#[derive(Debug)]
pub struct Poster {
    target: Target,
    timeout: Duration,
    conn: Option<SendRequest<Full<Bytes>>>,
}

impl Poster {
    /// A poster to `target`; each request (connect included) must finish
    /// within `timeout`.
    pub fn new(target: Target, timeout: Duration) -> Poster {
        Poster {
            target,
            timeout,
            conn: None,
        }
    }

    /// POSTs `body` with the signature header `signature`.
    pub async fn post(&mut self, body: Bytes, signature: &str) -> Answer {
        match tokio::time::timeout(self.timeout, self.exchange(body, signature)).await {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => {
                self.conn = None;
                Answer::Failed(e)
            }
            Err(_) => {
                self.conn = None;
                Answer::Failed(format!("no answer within {:?}", self.timeout))
            }
        }
    }

    async fn exchange(&mut self, body: Bytes, signature: &str) -> Result<Answer, String> {
        let sig = HeaderValue::from_str(signature).map_err(|e| e.to_string())?;
        let mut conn = match self.conn.take() {
            Some(c) if !c.is_closed() => c,
            _ => self.connect().await?,
        };
        conn.ready().await.map_err(|e| e.to_string())?;
        let t = &self.target;
        let req = Request::builder()
            .method(Method::POST)
            .uri(t.path.clone())
            .header(HOST, t.authority.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(
                USER_AGENT,
                concat!("sluice-webhooks/", env!("CARGO_PKG_VERSION")),
            )
            .header(super::sign::HEADER, sig)
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        let resp = conn.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let keep = !resp
            .headers()
            .get(hyper::header::CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        // Read (and drop) the answer so the connection can be reused.
        let read = Limited::new(resp.into_body(), MAX_ANSWER).collect().await;
        if read.is_ok() && keep {
            self.conn = Some(conn);
        }
        Ok(Answer::Status(status, retry_after))
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let t = &self.target;
        let tcp = TcpStream::connect((t.host.as_str(), t.port))
            .await
            .map_err(|e| format!("connect {}: {e}", t.addr()))?;
        let _ = tcp.set_nodelay(true);
        match &t.tls {
            Some(tls) => {
                let name = ServerName::try_from(t.host.clone())
                    .map_err(|e| format!("server name: {e}"))?;
                let stream = tls
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS: {e}"))?;
                handshake(stream).await
            }
            None => handshake(tcp).await,
        }
    }
}

async fn handshake<T>(io: T) -> Result<SendRequest<Full<Bytes>>, String>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}
