//! The ingest listener: accepts TCP connections, asks the [`Door`] whether
//! each may be held, and runs a session for each admitted one, until
//! shutdown.
//!
//! The loop never blocks on a limit: it keeps accepting, so that a waiting
//! connection can be closed to make room for a new one (see [`door`]) and a
//! refused one is told so at once instead of sitting in the backlog. A
//! refusal writes one `Error` frame (`BUSY`) without waiting and closes;
//! nothing else is spent on the peer. When `accept` itself fails (at the
//! descriptor limit) the loop backs off ([`AcceptBackoff`]) instead of
//! spinning, and closes the oldest connection still waiting for Hello so
//! that the backlog keeps moving.
//!
//! With TLS the handshake runs in the connection's own task, within the
//! pre-auth deadline (`hello_timeout`), and a client certificate binds the
//! connection to its tenant ([`super::identity`]).
//!
//! [`door`]: super::door

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::Backend;
use super::codec;
use super::door::{Door, Refusal};
use super::identity::{Binding, CertBound};
use super::pb::{self, frame::Body};
use super::session::{self, Limits, SessionEnd};
use crate::accept::AcceptBackoff;
use crate::tls::{ServerTls, Stream};

const TARGET: &str = "sluice::ingest";

/// Accepts connections on `listener` until `shutdown` turns true; `tls`
/// makes the listener TLS-only.
pub async fn serve<B: Backend>(
    listener: TcpListener,
    backend: Arc<B>,
    limits: Limits,
    tls: Option<Arc<ServerTls>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let door = Door::new(limits.door.clone());
    let mut backoff = AcceptBackoff::new("ingest");
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.changed() => return,
            r = listener.accept() => match r {
                Ok(x) => {
                    backoff.succeeded();
                    x
                }
                Err(e) => {
                    let wait = backoff.record(&e);
                    if !wait.is_zero() {
                        // Out of descriptors (or kernel memory): free one
                        // held by a connection that has not said Hello, so
                        // the backlog moves and a client that does gets in.
                        door.shed();
                        tokio::select! {
                            _ = shutdown.changed() => return,
                            () = tokio::time::sleep(wait) => {}
                        }
                    }
                    continue;
                }
            },
        };
        let ticket = match door.admit(peer) {
            Ok(t) => t,
            Err(refusal) => {
                refuse(stream, peer, refusal);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let backend = backend.clone();
        let limits = limits.clone();
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let mut ticket = ticket;
            let (stream, binding) = match &tls {
                None => (Stream::Plain(stream), Binding::Any),
                // The handshake counts against the pre-auth deadline, and a
                // connection shed while it runs ends there.
                Some(tls) => {
                    let handshake = tokio::select! {
                        r = tls.accept(stream, limits.hello_timeout) => r,
                        () = ticket.evicted() => return,
                    };
                    match handshake {
                        Ok((s, id)) => (s, Binding::of(tls.requires_client_cert(), id)),
                        Err(e) => {
                            tracing::debug!(target: TARGET, %peer, error = %e, "TLS handshake failed");
                            return;
                        }
                    }
                }
            };
            let backend = CertBound::new(backend, binding);
            metrics::gauge!("sluice_ingest_connections").increment(1.0);
            log_end(
                peer,
                session::run(stream, backend, limits, ticket, shutdown).await,
            );
            metrics::gauge!("sluice_ingest_connections").decrement(1.0);
        });
    }
}

/// Says why in one `Error` frame, written without waiting (a fresh socket's
/// buffer has room; if not, the peer gets a bare close), and closes.
fn refuse(stream: TcpStream, peer: SocketAddr, refusal: Refusal) {
    metrics::counter!("sluice_ingest_refused_total", "reason" => refusal.label()).increment(1);
    // Anyone can cause this as often as they like: not in the default log.
    tracing::debug!(target: TARGET, %peer, %refusal, "connection refused");
    let frame = codec::frame_bytes(
        0,
        Body::Error(pb::Error {
            code: pb::ErrorCode::Busy as i32,
            message: refusal.to_string(),
        }),
    );
    // `into_std` leaves the socket non-blocking: one write attempt, no task.
    if let Ok(mut s) = stream.into_std() {
        let _ = s.write(&frame);
    }
}

fn log_end(peer: SocketAddr, r: Result<(), SessionEnd>) {
    match r {
        Ok(()) | Err(SessionEnd::Shutdown) => {
            tracing::debug!(target: TARGET, %peer, "connection closed")
        }
        // Unauthenticated peers can cause these at will: they are counted
        // (`sluice_ingest_errors_total`), not logged by default.
        Err(e @ SessionEnd::Refused(_)) => {
            tracing::debug!(target: TARGET, %peer, reason = %e, "connection ended")
        }
        Err(e) => tracing::info!(target: TARGET, %peer, reason = %e, "connection ended"),
    }
}
