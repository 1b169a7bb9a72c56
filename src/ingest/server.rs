//! The ingest listener: accepts TCP connections up to a limit and runs a
//! session for each, until shutdown. Accept errors back off
//! ([`AcceptBackoff`]); with TLS, the handshake runs in the connection's
//! task within `hello_timeout`, and a client certificate binds the
//! connection to its tenant ([`super::identity`]).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use super::Backend;
use super::identity::{Binding, CertBound};
use super::session::{self, Limits, SessionEnd};
use crate::door::AcceptBackoff;
use crate::tls::{ServerTls, Stream};

const TARGET: &str = "sluice::ingest";

/// Most concurrent ingest connections.
pub const MAX_CONNECTIONS: usize = 1024;

/// Accepts connections on `listener` until `shutdown` turns true; `tls`
/// makes the listener TLS-only.
pub async fn serve<B: Backend>(
    listener: TcpListener,
    backend: Arc<B>,
    limits: Limits,
    tls: Option<Arc<ServerTls>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut backoff = AcceptBackoff::new("ingest");
    loop {
        let permit = tokio::select! {
            _ = shutdown.changed() => return,
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.changed() => return,
            r = listener.accept() => match r {
                Ok(x) => { backoff.succeeded(); x }
                Err(e) => {
                    backoff.after_error(&e).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let backend = backend.clone();
        let limits = limits.clone();
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let (stream, binding) = match &tls {
                None => (Stream::Plain(stream), Binding::Any),
                Some(tls) => match tls.accept(stream, limits.hello_timeout).await {
                    Ok((s, id)) => (s, Binding::of(tls.requires_client_cert(), id)),
                    Err(e) => {
                        tracing::debug!(target: TARGET, %peer, error = %e, "TLS handshake failed");
                        return;
                    }
                },
            };
            let backend = CertBound::new(backend, binding);
            metrics::gauge!("sluice_ingest_connections").increment(1.0);
            log_end(peer, session::run(stream, backend, limits, shutdown).await);
            metrics::gauge!("sluice_ingest_connections").decrement(1.0);
        });
    }
}

fn log_end(peer: SocketAddr, r: Result<(), SessionEnd>) {
    match r {
        Ok(()) | Err(SessionEnd::Shutdown) => {
            tracing::debug!(target: TARGET, %peer, "connection closed")
        }
        Err(e) => tracing::info!(target: TARGET, %peer, reason = %e, "connection ended"),
    }
}
