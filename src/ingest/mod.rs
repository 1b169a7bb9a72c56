//! The ingest protocol: length-prefixed protobuf frames over TCP
//! (`proto/sluice/v1/ingest.proto`), the server with its per-connection
//! sessions (auth, credits, pipelining, event subscription) and a client.
//!
//! [`pb`] holds the types generated from the `.proto` (committed, checked by
//! `tests/bootstrap.rs`); [`codec`] frames them; [`door`] decides which
//! connections may be held and throttles failed authentication; [`server`]
//! accepts; [`session`] runs one connection against a [`Backend`], which
//! the gateway implements.

pub mod client;
pub mod codec;
pub mod convert;
pub mod door;
pub mod event_wire;
pub mod identity;
pub mod server;
pub mod session;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::model::submit::{MediaChunk, MediaStored, Submission, SubmitResult};

/// Types generated from `proto/sluice/v1/ingest.proto` by prost.
#[allow(missing_docs, clippy::all)]
pub mod pb {
    include!("gen/sluice.v1.rs");
}

/// Version spoken by this build.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest frame accepted before `Hello` (a Hello is a few hundred bytes):
/// what an unauthenticated peer can make the server buffer.
pub const PRE_HELLO_MAX_FRAME: usize = 64 << 10;

/// Why the backend refused a media upload: its text is the `Error` the
/// client gets (`MEDIA_REJECTED`).
pub type MediaRefusal = Box<dyn std::error::Error + Send + Sync>;

/// What a session needs from the rest of the gateway.
pub trait Backend: Send + Sync + 'static {
    /// The tenant's name when `token` is its token.
    fn authenticate(&self, tenant: &str, token: &str) -> Option<Arc<str>>;

    /// Admits, journals (durably) and queues a batch submitted on connection
    /// `conn`; one result per message, in order. Resolves only when every
    /// accepted message is durable. When `conn` has a connection-scoped
    /// subscription, the accepted messages are claimed for it
    /// ([`crate::events::EventHub::claim`]) before they are queued.
    fn submit(
        self: &Arc<Self>,
        tenant: &Arc<str>,
        conn: u64,
        messages: Vec<Submission>,
    ) -> Pin<Box<dyn Future<Output = Vec<SubmitResult>> + Send>>;

    /// Stores uploaded media (a whole file, or one chunk of an upload).
    /// Resolves to the media id (empty for a non-final chunk) or the
    /// refusal, whose text the client gets.
    fn put_media(
        self: &Arc<Self>,
        tenant: &Arc<str>,
        conn: u64,
        req: MediaChunk,
    ) -> Pin<Box<dyn Future<Output = Result<MediaStored, MediaRefusal>> + Send>>;

    /// The authenticated connection `conn` of `tenant` has closed: chunked
    /// uploads it left unfinished can be dropped (they hold the tenant's
    /// uploads in progress).
    fn closed(&self, _tenant: &Arc<str>, _conn: u64) {}

    /// Messages the gateway can take now before it must withhold credits.
    fn headroom(&self) -> u64;

    /// The event queues.
    fn events(&self) -> &Arc<crate::events::EventHub>;

    /// The stamp of `tenant`'s token: a reload that changes the token
    /// changes it, and a session authenticated under another stamp is
    /// closed. `None` for an unknown tenant.
    fn credentials_stamp(&self, _tenant: &str) -> Option<u64> {
        Some(0)
    }

    /// Changes whenever a reload changed some tenant's token; `None` when
    /// tokens never change.
    fn credential_changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
}

/// Resolves when a reload changed some tenant's token (see
/// [`Backend::credential_changes`]); never without a source of changes.
pub async fn credentials_changed(rx: &mut Option<tokio::sync::watch::Receiver<u64>>) {
    match rx {
        Some(r) => {
            if r.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}
