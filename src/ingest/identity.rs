//! Binds an ingest connection to the tenant its client certificate names.
//!
//! With `ingest.tls_client_ca_file`, every client presents a certificate
//! chaining to that CA, and its identity (CN, else first DNS name; see
//! [`crate::tls::client_identity`]) must be the tenant of Hello: Hello for
//! another tenant, even with that tenant's right token, fails exactly like
//! a wrong token (`AUTH_FAILED`). A certificate without a usable name binds
//! the connection to no tenant at all. Without client certificates the
//! token alone decides.
//!
//! [`CertBound`] wraps the gateway's [`Backend`] for one connection, so the
//! session needs no knowledge of TLS.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::Backend;
use crate::model::submit::{MediaChunk, MediaStored, Submission, SubmitResult};

const TARGET: &str = "sluice::ingest";

/// Which tenants a connection may authenticate as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Binding {
    /// No client certificate: any tenant whose token the client has.
    Any,
    /// The client certificate names this tenant.
    Tenant(Arc<str>),
    /// A client certificate without a usable name: none.
    Nobody,
}

impl Binding {
    /// The binding of a connection: `identity` from its client certificate,
    /// `cert_required` when the listener demands one.
    pub fn of(cert_required: bool, identity: Option<Arc<str>>) -> Binding {
        match (cert_required, identity) {
            (_, Some(name)) => Binding::Tenant(name),
            (true, None) => Binding::Nobody,
            (false, None) => Binding::Any,
        }
    }
}

/// A [`Backend`] that authenticates only the tenant a connection is bound
/// to, and otherwise forwards to the gateway's.
#[derive(Debug)]
pub struct CertBound<B> {
    inner: Arc<B>,
    binding: Binding,
}

impl<B: Backend> CertBound<B> {
    /// Wraps `inner` for one connection.
    pub fn new(inner: Arc<B>, binding: Binding) -> Arc<CertBound<B>> {
        Arc::new(CertBound { inner, binding })
    }
}

impl<B: Backend> Backend for CertBound<B> {
    fn credentials_stamp(&self, tenant: &str) -> Option<u64> {
        self.inner.credentials_stamp(tenant)
    }

    fn credential_changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.inner.credential_changes()
    }

    fn authenticate(&self, tenant: &str, token: &str) -> Option<Arc<str>> {
        // The token is checked first either way, so refusals take alike.
        let found = self.inner.authenticate(tenant, token);
        match (&self.binding, found) {
            (Binding::Any, found) => found,
            (Binding::Tenant(bound), Some(t)) if **bound == *t => Some(t),
            (binding, Some(_)) => {
                tracing::warn!(target: TARGET, bound = ?binding, "Hello for a tenant the client certificate does not name");
                None
            }
            (_, None) => None,
        }
    }

    fn submit(
        self: &Arc<Self>,
        tenant: &Arc<str>,
        conn: u64,
        messages: Vec<Submission>,
    ) -> Pin<Box<dyn Future<Output = Vec<SubmitResult>> + Send>> {
        self.inner.submit(tenant, conn, messages)
    }

    fn put_media(
        self: &Arc<Self>,
        tenant: &Arc<str>,
        conn: u64,
        req: MediaChunk,
    ) -> Pin<Box<dyn Future<Output = Result<MediaStored, super::MediaRefusal>> + Send>> {
        self.inner.put_media(tenant, conn, req)
    }

    fn closed(&self, tenant: &Arc<str>, conn: u64) {
        self.inner.closed(tenant, conn);
    }

    fn headroom(&self) -> u64 {
        self.inner.headroom()
    }

    fn events(&self) -> &Arc<crate::events::EventHub> {
        self.inner.events()
    }
}
