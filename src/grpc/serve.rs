//! The gRPC door's listener: a [`Door`] (connection cap, accept back-off,
//! TLS negotiated in each connection's own task within
//! `grpc.handshake_timeout`) feeding tonic's HTTP/2 server through
//! `serve_with_incoming`, so the door and every other listener share one
//! TLS stack (`crate::tls`, reloaded on SIGHUP and on file change) and
//! tonic needs none of its own.
//!
//! Each connection carries its [`PeerInfo`] (address, client-certificate
//! identity) into every call's extensions. Beside the service, health
//! checking (`grpc.health.v1.Health`: SERVING for `""` and
//! `sluice.v1.Gateway`, NOT_SERVING once shutdown begins) and reflection
//! (`grpc.reflection.v1`). HTTP/2 keep-alive pings find dead peers (their
//! Events calls end, their events go back). At shutdown the door stops
//! accepting, Events calls end with `UNAVAILABLE`, and calls in progress
//! finish.
//!
//! A connection with no call in progress for `grpc.idle_timeout` is closed
//! ([`Activity`]): HTTP/2 keep-alive only finds dead peers, so without it a
//! client that connects (and completes TLS) but never calls would hold one
//! of `max_connections` for as long as it answers pings.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, watch};
use tonic::transport::server::Connected;
use tonic_health::ServingStatus;

use super::{FILE_DESCRIPTOR_SET, GatewayServer, GrpcBackend, GrpcDoor, GrpcLimits, TARGET};
use crate::door::{Conn, Door};

/// How often an idle connection is pinged (HTTP/2 PING).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);

/// How long a ping may go unanswered before the connection is closed.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Connections handed from the handshake tasks to the server, at most.
const HANDOFF: usize = 64;

/// What a call knows of its connection (in its request extensions).
#[derive(Clone, Debug)]
pub struct PeerInfo {
    /// The client's address.
    pub addr: SocketAddr,
    /// The client certificate's identity (mutual TLS only).
    pub identity: Option<Arc<str>>,
    /// Whether the door demands client certificates.
    pub cert_required: bool,
    /// The connection's calls in progress (for its idle timeout).
    pub activity: Arc<Activity>,
}

/// A connection's calls in progress and when the last one ended: it is
/// idle while it has none.
#[derive(Debug)]
pub struct Activity {
    opened: tokio::time::Instant,
    calls: AtomicUsize,
    /// Ms after `opened` the last call ended.
    last_end_ms: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            opened: tokio::time::Instant::now(),
            calls: AtomicUsize::new(0),
            last_end_ms: AtomicU64::new(0),
        }
    }

    /// A call starts; it ends when the guard is dropped.
    pub fn begin(self: &Arc<Self>) -> CallGuard {
        self.calls.fetch_add(1, Ordering::AcqRel);
        CallGuard(self.clone())
    }

    /// When the connection became idle; `None` while a call is in progress.
    fn idle_since(&self) -> Option<tokio::time::Instant> {
        (self.calls.load(Ordering::Acquire) == 0)
            .then(|| self.opened + Duration::from_millis(self.last_end_ms.load(Ordering::Acquire)))
    }
}

/// A call in progress on a connection (see [`Activity::begin`]).
#[derive(Debug)]
pub struct CallGuard(Arc<Activity>);

impl Drop for CallGuard {
    fn drop(&mut self) {
        let a = &self.0;
        let ms = a.opened.elapsed().as_millis() as u64;
        a.last_end_ms.fetch_max(ms, Ordering::AcqRel);
        a.calls.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An open connection of the door, as tonic serves it.
struct Io {
    conn: Conn,
    info: PeerInfo,
    idle_timeout: Duration,
    /// When to look at the connection's activity next.
    check: Pin<Box<tokio::time::Sleep>>,
}

impl Io {
    fn new(conn: Conn, info: PeerInfo, idle_timeout: Duration) -> Io {
        let check = Box::pin(tokio::time::sleep(idle_timeout));
        Io {
            conn,
            info,
            idle_timeout,
            check,
        }
    }

    /// `Err` when the connection has been idle for the timeout; otherwise
    /// the next look is scheduled (and its wake-up registered with `cx`).
    fn still_wanted(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        while self.check.as_mut().poll(cx).is_ready() {
            let now = tokio::time::Instant::now();
            let next = match self.info.activity.idle_since() {
                Some(since) if now >= since + self.idle_timeout => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no call on this connection for the idle timeout",
                    ));
                }
                Some(since) => since + self.idle_timeout,
                None => now + self.idle_timeout,
            };
            self.check.as_mut().reset(next);
        }
        Ok(())
    }
}

impl Connected for Io {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Err(e) = this.still_wanted(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.conn.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().conn.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().conn.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.conn.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().conn.stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().conn.stream).poll_shutdown(cx)
    }
}

/// Serves the gRPC door on `door` until `shutdown` turns true;
/// `cert_required` when its TLS demands client certificates.
pub async fn serve<B: GrpcBackend>(
    mut door: Door,
    backend: Arc<B>,
    limits: GrpcLimits,
    cert_required: bool,
    shutdown: watch::Receiver<bool>,
) {
    let (tx, rx) = mpsc::channel::<Io>(HANDOFF);
    let mut stop_accepting = shutdown.clone();
    let handshake = limits.handshake_timeout;
    let idle_timeout = limits.idle_timeout;
    tokio::spawn(async move {
        loop {
            let visitor = tokio::select! {
                _ = stop_accepting.changed() => return,
                v = door.accept() => v,
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let peer = visitor.peer;
                match visitor.open(handshake).await {
                    Ok(conn) => {
                        let info = PeerInfo {
                            addr: conn.peer,
                            identity: conn.identity.clone(),
                            cert_required,
                            activity: Arc::new(Activity::new()),
                        };
                        // The server is gone: the connection closes.
                        let _ = tx.send(Io::new(conn, info, idle_timeout)).await;
                    }
                    Err(e) => {
                        // Anyone can cause this at will: not in the default log.
                        tracing::debug!(target: TARGET, %peer, error = %e, "TLS handshake failed");
                    }
                }
            });
        }
    });
    let incoming = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|io| (Ok::<_, io::Error>(io), rx))
    });

    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<GatewayServer<GrpcDoor<B>>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| {
            tracing::error!(target: TARGET, error = %e, "gRPC reflection unavailable");
        })
        .ok();
    let service = GatewayServer::new(GrpcDoor::new(backend, limits, shutdown.clone()))
        .max_decoding_message_size(limits.max_message_bytes)
        .max_encoding_message_size(limits.max_message_bytes);
    let mut signal = shutdown;
    let stopped = async move {
        let _ = signal.changed().await;
        reporter
            .set_service_status("", ServingStatus::NotServing)
            .await;
        reporter
            .set_not_serving::<GatewayServer<GrpcDoor<B>>>()
            .await;
    };
    let served = tonic::transport::Server::builder()
        .max_concurrent_streams(limits.max_concurrent_streams)
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .add_service(health)
        .add_optional_service(reflection)
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, stopped)
        .await;
    if let Err(e) = served {
        tracing::error!(target: TARGET, error = %e, "gRPC door stopped");
    }
}
