//! Server-side TLS of every listener (ingest, the internal and public HTTP
//! doors, MM7 callback receivers): a rustls configuration built from a
//! certificate chain, its key and an optional client CA (mutual TLS with the
//! rustls WebPKI client verifier), reloaded without a restart, and the
//! identity of a client certificate.
//!
//! # Reload
//! [`ServerTls`] keeps the current `Arc<rustls::ServerConfig>` behind a lock;
//! every accepted connection takes the one current at its handshake, so a
//! reload changes what *new* handshakes present while live connections keep
//! the session they negotiated. A reload happens on SIGHUP (every listener
//! re-reads its files) and when one of the files changes (size, mtime or
//! inode, checked every `tls.reload_interval`). A file that does not load —
//! a key that does not match its certificate, a half-written PEM — keeps the
//! old configuration and logs an error once per change.
//!
//! # Identity
//! With a client CA, a client must present a certificate chaining to it;
//! its identity ([`client_identity`]) is the subject's common name, else its
//! first DNS subject alternative name. Ingest requires it to equal the
//! tenant of Hello.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};

/// Server-side TLS of one listener: a certificate chain and its key, and
/// optionally the CA that client certificates must chain to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerTls {
    /// Certificate chain, PEM, leaf first.
    pub cert_file: PathBuf,
    /// Private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// CA bundle for client certificates (mutual TLS), PEM.
    pub client_ca_file: Option<PathBuf>,
}

impl ListenerTls {
    /// TLS from a section's three keys: `None` unless both the certificate
    /// and the key are set (a half-set pair is a configuration problem).
    pub fn from_parts(
        cert: Option<&Path>,
        key: Option<&Path>,
        client_ca: Option<&Path>,
    ) -> Option<ListenerTls> {
        Some(ListenerTls {
            cert_file: cert?.to_owned(),
            key_file: key?.to_owned(),
            client_ca_file: client_ca.map(Path::to_owned),
        })
    }
}

const TARGET: &str = "sluice::tls";

/// Longest identity taken from a client certificate, bytes.
pub const MAX_IDENTITY: usize = 255;

/// Why a listener's TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read or holds nothing usable.
    #[error("{what} {path}: {reason}")]
    File {
        /// Which file (`certificate`, `key`, `client CA`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// rustls refused the configuration (e.g. the key does not match the
    /// certificate).
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client CA cannot verify client certificates.
    #[error("client CA: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// The TLS side of one listener; see the module doc.
pub struct ServerTls {
    name: Arc<str>,
    files: ListenerTls,
    alpn: Vec<Vec<u8>>,
    current: RwLock<Arc<ServerConfig>>,
    /// Stamps of the files when last loaded or last tried.
    seen: Mutex<Vec<Option<Stamp>>>,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("name", &self.name)
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

/// What identifies one version of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        len: m.len(),
        modified: m.modified().ok(),
        inode: m.ino(),
    })
}

impl ServerTls {
    /// Loads `files` for the listener called `name` (in logs); `alpn` lists
    /// the application protocols offered (e.g. `http/1.1`), none for ingest.
    ///
    /// # Errors
    /// [`TlsError`] when a file is unreadable, holds no certificate or key,
    /// or the key does not match the certificate.
    pub fn load(
        name: &str,
        files: &ListenerTls,
        alpn: &[&[u8]],
    ) -> Result<Arc<ServerTls>, TlsError> {
        let alpn: Vec<Vec<u8>> = alpn.iter().map(|p| p.to_vec()).collect();
        let seen = file_stamps(files);
        let config = build(files, &alpn)?;
        Ok(Arc::new(ServerTls {
            name: name.into(),
            files: files.clone(),
            alpn,
            current: RwLock::new(Arc::new(config)),
            seen: Mutex::new(seen),
        }))
    }

    /// An acceptor with the configuration current now.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.read().clone())
    }

    /// Whether clients must present a certificate.
    pub fn requires_client_cert(&self) -> bool {
        self.files.client_ca_file.is_some()
    }

    /// Re-reads the files when they changed since the last attempt (or
    /// always, with `force`); returns whether a new configuration is in use.
    /// A failure keeps the old one and is logged (once per change).
    pub fn reload(&self, force: bool) -> bool {
        let now = file_stamps(&self.files);
        {
            let mut seen = self.seen.lock();
            if !force && *seen == now {
                return false;
            }
            *seen = now;
        }
        match build(&self.files, &self.alpn) {
            Ok(config) => {
                *self.current.write() = Arc::new(config);
                tracing::info!(target: TARGET, listener = %self.name, cert = %self.files.cert_file.display(), "TLS certificate reloaded");
                true
            }
            Err(e) => {
                tracing::error!(target: TARGET, listener = %self.name, error = %e, "TLS reload failed; keeping the previous certificate");
                false
            }
        }
    }

    /// Starts the task that reloads on SIGHUP and on file changes (checked
    /// every `every`); it ends when the last handle to `self` is dropped.
    pub fn watch(self: &Arc<Self>, every: Duration) {
        let me: Weak<ServerTls> = Arc::downgrade(self);
        let every = every.max(Duration::from_millis(10));
        tokio::spawn(async move {
            let mut hangup = match tokio::signal::unix::signal(
                tokio::signal::unix::SignalKind::hangup(),
            ) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(target: TARGET, error = %e, "no SIGHUP handler; certificates reload on file change only");
                    None
                }
            };
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let force = tokio::select! {
                    _ = tick.tick() => false,
                    Some(()) = async {
                        match hangup.as_mut() {
                            Some(h) => h.recv().await,
                            None => std::future::pending().await,
                        }
                    } => true,
                };
                let Some(tls) = me.upgrade() else { return };
                let files = tls.files.clone();
                // File reads are blocking; they are small.
                let changed = tokio::task::spawn_blocking(move || tls.reload(force)).await;
                if changed.is_err() {
                    tracing::error!(target: TARGET, cert = %files.cert_file.display(), "TLS reload task failed");
                }
            }
        });
    }

    /// Runs the handshake on `tcp` within `deadline`; returns the stream
    /// and the client certificate's identity, if one was presented.
    ///
    /// # Errors
    /// The handshake failed (plaintext, an untrusted or missing client
    /// certificate, ...) or timed out.
    pub async fn accept(
        &self,
        tcp: TcpStream,
        deadline: Duration,
    ) -> io::Result<(Stream, Option<Arc<str>>)> {
        let acceptor = self.acceptor();
        let tls = tokio::time::timeout(deadline, acceptor.accept(tcp))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        let identity = client_identity(tls.get_ref().1).map(Arc::from);
        Ok((Stream::Tls(Box::new(tls)), identity))
    }
}

fn file_stamps(files: &ListenerTls) -> Vec<Option<Stamp>> {
    let mut v = vec![stamp(&files.cert_file), stamp(&files.key_file)];
    if let Some(ca) = &files.client_ca_file {
        v.push(stamp(ca));
    }
    v
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |reason: String| TlsError::File {
        what,
        path: path.to_owned(),
        reason,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no certificate in file".into()));
    }
    Ok(certs)
}

fn build(files: &ListenerTls, alpn: &[Vec<u8>]) -> Result<ServerConfig, TlsError> {
    let chain = read_certs("certificate", &files.cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&files.key_file).map_err(|e| TlsError::File {
        what: "key",
        path: files.key_file.clone(),
        reason: e.to_string(),
    })?;
    let builder =
        ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let builder = match &files.client_ca_file {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in read_certs("client CA", ca)? {
                roots.add(c)?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider()).build()?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key)?;
    config.alpn_protocols = alpn.to_vec();
    Ok(config)
}

/// A client configuration for tools that talk to these listeners (`sluice
/// send`, `sluice optout`): trusts `ca_file` (PEM), or the system's roots
/// without one, and presents `identity` (certificate chain and key files)
/// when given, for mutual TLS.
///
/// # Errors
/// A file is unusable, or the key does not match the certificate.
pub fn client_config(
    ca_file: Option<&Path>,
    identity: Option<(&Path, &Path)>,
) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for c in read_certs("CA", path)? {
                roots.add(c)?;
            }
        }
        None => {
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    Ok(match identity {
        Some((cert, key)) => {
            let chain = read_certs("certificate", cert)?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::File {
                what: "key",
                path: key.to_owned(),
                reason: e.to_string(),
            })?;
            builder.with_client_auth_cert(chain, key)?
        }
        None => builder.with_no_client_auth(),
    })
}

/// The identity of the client certificate of `conn` (verified by the
/// listener's client CA): the subject's common name, else its first DNS
/// subject alternative name; `None` without a certificate, or when the name
/// is empty, longer than [`MAX_IDENTITY`] or not printable ASCII.
pub fn client_identity(conn: &rustls::ServerConnection) -> Option<String> {
    let leaf = conn.peer_certificates()?.first()?;
    certificate_identity(leaf)
}

/// The identity of one DER certificate (see [`client_identity`]).
pub fn certificate_identity(der: &[u8]) -> Option<String> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    let name = cn.or_else(|| {
        let san = cert.subject_alternative_name().ok()??;
        san.value.general_names.iter().find_map(|g| match g {
            GeneralName::DNSName(d) => Some((*d).to_owned()),
            _ => None,
        })
    })?;
    let printable = name.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
    (!name.is_empty() && name.len() <= MAX_IDENTITY && printable).then_some(name)
}

// === impl Stream ===

/// An accepted connection: plaintext or TLS.
#[derive(Debug)]
pub enum Stream {
    /// A listener without TLS.
    Plain(TcpStream),
    /// A TLS session over TCP.
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
pub(crate) mod testpki;
#[cfg(test)]
mod tests;
