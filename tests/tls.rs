//! SMPP over TLS (rustls): the gateway binds through a TLS terminator in
//! front of the simulator, trusting a test CA, and delivers end to end; a
//! bind that does not trust the certificate never binds.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use sluice::ingest::pb;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, pki_types::pem::PemObject};

fn data(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/tls")
        .join(name)
}

/// A TLS listener in front of `backend`, forwarding each connection's
/// plaintext.
struct Front {
    addr: std::net::SocketAddr,
    /// Handshakes that failed (the client refused the certificate).
    refused: Arc<AtomicUsize>,
}

impl Front {
    fn port(&self) -> u16 {
        self.addr.port()
    }
}

/// A TLS listener forwarding each connection's plaintext to `backend`.
async fn tls_terminator(backend: std::net::SocketAddr) -> Front {
    let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(data("server.pem"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(data("server.key")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let refused = Arc::new(AtomicUsize::new(0));
    let counter = refused.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let refused = counter.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    refused.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                let Ok(mut plain) = TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    Front { addr, refused }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binds_over_tls_and_delivers() {
    let smsc = smsc(|_| {}).await;
    let front = tls_terminator(smsc.local_addr()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &smsc);
    cfg.tls.ca_file = Some(data("ca.pem"));
    for b in &mut cfg.carriers[0].binds {
        b.address = format!("localhost:{}", front.port());
        b.tls = true;
    }
    let gw = sluice::gateway::start(cfg).await.unwrap();
    let (client, got) = subscriber(&gw.ingest_addr.to_string()).await;
    let ids = accepted_ids(
        &client
            .submit(
                (0..20)
                    .map(|i| msg(&format!("tls-{i}"), &format!("+1415222{i:04}"), "over tls"))
                    .collect(),
            )
            .await
            .unwrap(),
    );
    eventually("delivered over TLS", Duration::from_secs(20), || {
        got.terminal_count() == 20
    })
    .await;
    for id in ids {
        assert_eq!(got.state_of(id), Some(pb::DeliveryState::StateDelivered));
    }
    assert_eq!(smsc.stats().messages, 20);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_never_binds() {
    let smsc = smsc(|_| {}).await;
    let front = tls_terminator(smsc.local_addr()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &smsc);
    // Trust the server certificate's own file as a CA: it is not a CA, so
    // verification fails.
    cfg.tls.ca_file = Some(data("server.pem"));
    for b in &mut cfg.carriers[0].binds {
        b.address = format!("localhost:{}", front.port());
        b.tls = true;
    }
    let binds: usize = cfg.carriers[0].binds.iter().map(|b| b.count as usize).sum();
    let gw = sluice::gateway::start(cfg).await.unwrap();
    // Every bind tried and refused the certificate: none got through.
    eventually(
        "each bind's handshake refused",
        Duration::from_secs(10),
        || front.refused.load(Ordering::Relaxed) >= binds,
    )
    .await;
    assert_eq!(smsc.stats().binds, 0);
    gw.shutdown().await;
}
