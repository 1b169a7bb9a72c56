//! The ingest listener: accepts TCP connections up to a limit and runs a
//! session for each, until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use super::Backend;
use super::session::{self, Limits, SessionEnd};

const TARGET: &str = "sluice::ingest";

/// Most concurrent ingest connections.
pub const MAX_CONNECTIONS: usize = 1024;

/// Accepts connections on `listener` until `shutdown` turns true.
pub async fn serve<B: Backend>(
    listener: TcpListener,
    backend: Arc<B>,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            _ = shutdown.changed() => return,
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.changed() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(target: TARGET, error = %e, "accept failed");
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let backend = backend.clone();
        let limits = limits.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
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
