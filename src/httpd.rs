//! HTTP/1.1 on a [`Door`]: the connection half of every HTTP server of the
//! gateway (the internal door with `/metrics` and the admin API, the public
//! door with landing pages, MM7 callback receivers, the MMSC simulator).
//!
//! Routing, per-route body caps and request deadlines are the servers' own
//! (axum + tower-http for the doors, see [`crate::admin`] and
//! [`crate::telemetry`]); here each accepted connection gets:
//!
//! - TLS within `header_timeout` when the door has it;
//! - hyper's HTTP/1.1 server **with a timer**, so `header_timeout` bounds
//!   the wait for a request's headers, counted from the connection's start
//!   or the end of the previous answer (a client trickling headers, or an
//!   idle keep-alive connection, is closed when it runs out);
//! - an **idle timeout**: no byte read or written for `idle_timeout` while
//!   no request is being handled (say a client that stops reading its
//!   answer) closes the connection;
//! - a [`ConnInfo`] (peer address, client certificate identity) in every
//!   request's extensions;
//! - graceful shutdown: on `stop`, answers in progress finish, then the
//!   connection closes (still bounded by the idle timeout).
//!
//! **Why not `axum::serve`**: it has neither TLS nor a header timeout nor a
//! connection cap; the accept loop is [`Door`]'s.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::door::Door;

const TARGET: &str = "sluice::httpd";

/// Connection-level limits of an HTTP server.
///
/// # Defaults
/// Headers within 10 s, idle connections closed after 60 s.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// Deadline for a request's headers (and for the TLS handshake).
    pub header_timeout: Duration,
    /// No byte moving for this long, with no request being handled,
    /// closes the connection.
    pub idle_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Who is on the other end of a connection; in every request's extensions.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    /// The peer's address.
    pub peer: SocketAddr,
    /// The client certificate's identity (mutual TLS only).
    pub identity: Option<Arc<str>>,
}

/// Serves HTTP/1.1 on `door` until `stop` is cancelled: `make` builds the
/// service of each connection. Every connection task holds a clone of
/// `alive` (when given) until it ends, so its owner can wait for them.
pub async fn serve<F, S, B>(
    mut door: Door,
    limits: HttpLimits,
    make: F,
    stop: CancellationToken,
    alive: Option<mpsc::Sender<()>>,
) where
    F: Fn(&ConnInfo) -> S + Send + Sync + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let door_name = door.name();
    let make = Arc::new(make);
    loop {
        let visitor = tokio::select! {
            v = door.accept() => v,
            () = stop.cancelled() => return,
        };
        let peer = visitor.peer;
        let stop = stop.clone();
        let alive = alive.clone();
        let make = make.clone();
        tokio::spawn(async move {
            let _alive = alive;
            let conn = match visitor.open(limits.header_timeout).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(target: TARGET, door = door_name, %peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            let info = ConnInfo {
                peer,
                identity: conn.identity.clone(),
            };
            let svc = make(&info);
            let _permit = conn.permit;
            let activity = Arc::new(Activity::new());
            let io = TokioIo::new(Watched {
                inner: conn.stream,
                activity: activity.clone(),
            });
            let svc = Tracked {
                inner: svc,
                info,
                activity: activity.clone(),
            };
            let http = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(io, svc);
            tokio::pin!(http);
            let idle = limits.idle_timeout.max(Duration::from_millis(10));
            let mut check = tokio::time::interval((idle / 4).max(Duration::from_millis(5)));
            check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut stopping = false;
            loop {
                tokio::select! {
                    r = http.as_mut() => {
                        if let Err(e) = r {
                            tracing::debug!(target: TARGET, door = door_name, %peer, error = %e, "HTTP connection ended");
                        }
                        return;
                    }
                    () = stop.cancelled(), if !stopping => {
                        stopping = true;
                        http.as_mut().graceful_shutdown();
                    }
                    _ = check.tick() => {
                        if activity.busy() == 0 && activity.idle_for() >= idle {
                            tracing::debug!(target: TARGET, door = door_name, %peer, "idle HTTP connection closed");
                            return;
                        }
                    }
                }
            }
        });
    }
}

/// When a connection last moved a byte, and how many requests it is
/// handling.
#[derive(Debug)]
struct Activity {
    base: Instant,
    last_ms: AtomicU64,
    busy: AtomicUsize,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            base: Instant::now(),
            last_ms: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.base.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let now = self.base.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }

    fn busy(&self) -> usize {
        self.busy.load(Ordering::Acquire)
    }
}

/// Marks its connection busy while alive.
struct Busy(Arc<Activity>);

impl Busy {
    fn new(a: Arc<Activity>) -> Busy {
        a.busy.fetch_add(1, Ordering::AcqRel);
        Busy(a)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The connection's service: adds [`ConnInfo`] to requests and counts
/// requests being handled.
struct Tracked<S> {
    inner: S,
    info: ConnInfo,
    activity: Arc<Activity>,
}

impl<S> hyper::service::Service<Request<Incoming>> for Tracked<S>
where
    S: hyper::service::Service<Request<Incoming>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        req.extensions_mut().insert(self.info.clone());
        let busy = Busy::new(self.activity.clone());
        let fut = self.inner.call(req);
        Box::pin(async move {
            let r = fut.await;
            drop(busy);
            r
        })
    }
}

/// A stream that records when it last moved a byte.
struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut me.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            me.activity.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        let r = Pin::new(&mut me.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            me.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        let r = Pin::new(&mut me.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            me.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Serves an axum [`axum::Router`] on `door` (see [`serve`]).
pub async fn serve_router(
    door: Door,
    limits: HttpLimits,
    router: axum::Router,
    stop: CancellationToken,
) {
    let make = move |_: &ConnInfo| hyper_util::service::TowerToHyperService::new(router.clone());
    serve(door, limits, make, stop, None).await;
}

/// Reads a whole request body: at most `max` bytes, within `deadline`.
///
/// # Errors
/// [`BodyError`] when the body is larger, too slow, or broken.
pub async fn read_body<B>(
    body: B,
    max: usize,
    deadline: Duration,
) -> Result<bytes::Bytes, BodyError>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use http_body_util::BodyExt;
    match tokio::time::timeout(deadline, http_body_util::Limited::new(body, max).collect()).await {
        Err(_) => Err(BodyError::TimedOut),
        Ok(Ok(b)) => Ok(b.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Ok(Err(_)) => Err(BodyError::Broken),
    }
}

/// Why [`read_body`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// Over the cap (HTTP 413).
    #[error("request body too large")]
    TooLarge,
    /// Not received within the deadline (HTTP 408).
    #[error("request body not received in time")]
    TimedOut,
    /// The connection failed mid-body (HTTP 400).
    #[error("request body broken")]
    Broken,
}

#[cfg(test)]
mod tests;
