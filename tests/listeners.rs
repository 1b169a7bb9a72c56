//! TLS on every listener (ingest, the internal and public HTTP doors, MM7
//! callbacks) with a CA made by rcgen at test time: handshakes succeed,
//! plaintext is refused, a client certificate from another CA is refused
//! under mutual TLS, an ingest client certificate binds the connection to
//! its tenant, certificates reload while open connections keep working, and
//! the MM7 client trusts `tls.ca_file`.

mod common;
#[path = "../src/tls/testpki.rs"]
mod pki;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use hyper::{Method, StatusCode};
use pki::{Ca, Leaf};
use sluice::config::{Config, MmscConfig, Secret, TenantConfig};
use sluice::ingest::client::{Client, ClientError};
use sluice::ingest::pb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

struct Pki {
    dir: tempfile::TempDir,
    ca: Ca,
    clients: Ca,
    ca_file: std::path::PathBuf,
    server: (std::path::PathBuf, std::path::PathBuf),
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("sluice test CA");
        let clients = Ca::new("sluice client CA");
        let ca_file = ca.write(dir.path(), "ca.pem");
        clients.write(dir.path(), "client-ca.pem");
        let server = ca.server("gateway").write(dir.path(), "server");
        Pki {
            dir,
            ca,
            clients,
            ca_file,
            server,
        }
    }

    fn client_ca(&self) -> std::path::PathBuf {
        self.dir.path().join("client-ca.pem")
    }

    /// A client configuration trusting the test CA, presenting `identity`.
    fn client(&self, identity: Option<&Leaf>, name: &str) -> Arc<rustls::ClientConfig> {
        let id = identity.map(|l| l.write(self.dir.path(), name));
        Arc::new(
            sluice::tls::client_config(
                Some(&self.ca_file),
                id.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
            )
            .unwrap(),
        )
    }
}

fn tls_everywhere(cfg: &mut Config, pki: &Pki) {
    let (cert, key) = &pki.server;
    cfg.ingest.tls_cert_file = Some(cert.clone());
    cfg.ingest.tls_key_file = Some(key.clone());
    cfg.ingest.tls_client_ca_file = Some(pki.client_ca());
    cfg.http.tls_cert_file = Some(cert.clone());
    cfg.http.tls_key_file = Some(key.clone());
    cfg.public.tls_cert_file = Some(cert.clone());
    cfg.public.tls_key_file = Some(key.clone());
    cfg.mmsc = vec![MmscConfig {
        callback_listen: Some("127.0.0.1:0".parse().unwrap()),
        callback_username: Some("mmsc".into()),
        callback_password: Some(Secret::new("callback-pw")),
        callback_tls_cert_file: Some(cert.clone()),
        callback_tls_key_file: Some(key.clone()),
        ..MmscConfig::new("mmsc", "http://127.0.0.1:9/mm7")
    }];
    cfg.tenants.push(TenantConfig {
        name: "globex".into(),
        token: Secret::new("globex-token-0001"),
        senders: vec!["23456".into()],
        programs: vec![],
        ..cfg.tenants[0].clone()
    });
}

/// A plaintext HTTP request; what came back (nothing when the peer only
/// speaks TLS).
async fn plaintext_http(addr: SocketAddr) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    out
}

async fn https(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    method: Method,
    path: &str,
) -> anyhow::Result<(StatusCode, Bytes)> {
    sluice::admin::call(
        &format!("https://localhost:{}", addr.port()),
        "no-token",
        Some(tls),
        method,
        path,
        Bytes::new(),
        "text/plain",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listener_speaks_tls_and_refuses_plaintext() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let mut cfg = config(dir.path(), &smsc);
    tls_everywhere(&mut cfg, &pki);
    let gw = sluice::gateway::start(cfg).await.unwrap();
    let ingest = gw.ingest_addr.to_string();
    let demo_cert = pki.clients.client(Some(TENANT), &[]);
    let demo = pki.client(Some(&demo_cert), "demo");

    // Ingest: TLS with the tenant's client certificate, then a message.
    let (client, _events) = Client::connect_tls(&ingest, "localhost", demo.clone(), TENANT, TOKEN)
        .await
        .unwrap();
    let ack = client
        .submit(vec![msg("tls-1", "+14155550100", "over TLS")])
        .await
        .unwrap();
    accepted_ids(&ack);
    // The certificate names the tenant: another tenant's Hello, even with
    // that tenant's own token, fails like a wrong token.
    let e = Client::connect_tls(&ingest, "localhost", demo, "globex", "globex-token-0001")
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            ClientError::Server {
                code: pb::ErrorCode::AuthFailed,
                ..
            }
        ),
        "{e:?}"
    );
    // A certificate from another CA, or none, fails the handshake.
    let stranger = pki.client(
        Some(&Ca::new("other CA").client(Some(TENANT), &[])),
        "stranger",
    );
    assert!(
        Client::connect_tls(&ingest, "localhost", stranger, TENANT, TOKEN)
            .await
            .is_err()
    );
    assert!(
        Client::connect_tls(
            &ingest,
            "localhost",
            pki.client(None, "none"),
            TENANT,
            TOKEN
        )
        .await
        .is_err()
    );
    // Plaintext.
    assert!(Client::connect(&ingest, TENANT, TOKEN).await.is_err());

    // The internal door.
    let http = gw.http_addr.unwrap();
    let anon = pki.client(None, "anon");
    let (st, body) = https(http, anon.clone(), Method::GET, "/healthz")
        .await
        .unwrap();
    assert_eq!((st, &body[..]), (StatusCode::OK, &b"ok\n"[..]));
    assert!(!plaintext_http(http).await.starts_with(b"HTTP/"));

    // The public door.
    let public = gw.public_addr.unwrap();
    let (st, _) = https(public, anon.clone(), Method::GET, "/m/nothing/here/x")
        .await
        .unwrap();
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert!(!plaintext_http(public).await.starts_with(b"HTTP/"));

    // The MM7 callback receiver (credentials configured: 401 without).
    let mm7 = gw.mm7_callbacks()[0];
    let (st, _) = https(mm7, anon.clone(), Method::POST, "/mm7")
        .await
        .unwrap();
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert!(!plaintext_http(mm7).await.starts_with(b"HTTP/"));

    // A server certificate nobody trusts.
    let untrusting = Arc::new(sluice::tls::client_config(Some(&pki.client_ca()), None).unwrap());
    assert!(
        https(http, untrusting, Method::GET, "/healthz")
            .await
            .is_err()
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_on_the_internal_door_refuses_another_ca() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let mut cfg = config(dir.path(), &smsc);
    cfg.http.tls_cert_file = Some(pki.server.0.clone());
    cfg.http.tls_key_file = Some(pki.server.1.clone());
    cfg.http.tls_client_ca_file = Some(pki.client_ca());
    let gw = sluice::gateway::start(cfg).await.unwrap();
    let http = gw.http_addr.unwrap();
    let ops = pki.client(Some(&pki.clients.client(Some("ops"), &[])), "ops");
    let (st, _) = https(http, ops, Method::GET, "/metrics").await.unwrap();
    assert_eq!(st, StatusCode::OK);
    let other = pki.client(Some(&Ca::new("other").client(Some("ops"), &[])), "other");
    assert!(https(http, other, Method::GET, "/metrics").await.is_err());
    assert!(
        https(http, pki.client(None, "none"), Method::GET, "/metrics")
            .await
            .is_err()
    );
    gw.shutdown().await;
}

/// A TLS connection kept open, with the certificate the server showed.
struct Open {
    sender: hyper::client::conn::http1::SendRequest<http_body_util::Full<Bytes>>,
    cert: Vec<u8>,
}

async fn open(addr: SocketAddr, tls: Arc<rustls::ClientConfig>) -> Open {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let cert = stream.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    Open { sender, cert }
}

impl Open {
    async fn healthz(&mut self) -> StatusCode {
        use http_body_util::BodyExt;
        let req = hyper::Request::get("/healthz")
            .header("host", "localhost")
            .body(http_body_util::Full::new(Bytes::new()))
            .unwrap();
        let resp = self.sender.send_request(req).await.unwrap();
        let status = resp.status();
        resp.into_body().collect().await.unwrap();
        status
    }
}

fn replace_files(leaf: &Leaf, cert: &Path, key: &Path) {
    // As a certificate manager does: write aside, then rename over.
    let tmp_cert = cert.with_extension("new");
    let tmp_key = key.with_extension("newkey");
    std::fs::write(&tmp_cert, &leaf.cert).unwrap();
    std::fs::write(&tmp_key, &leaf.key).unwrap();
    std::fs::rename(&tmp_key, key).unwrap();
    std::fs::rename(&tmp_cert, cert).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_reload_for_new_connections_while_open_ones_keep_working() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let mut cfg = config(dir.path(), &smsc);
    tls_everywhere(&mut cfg, &pki);
    cfg.ingest.tls_client_ca_file = None;
    // Keep-alive connections live past the default idle checks.
    cfg.tls.reload_interval = Duration::from_millis(100);
    let gw = sluice::gateway::start(cfg).await.unwrap();
    let http = gw.http_addr.unwrap();
    let tls = pki.client(None, "anon");
    let mut before = open(http, tls.clone()).await;
    assert_eq!(before.healthz().await, StatusCode::OK);
    let (ingest_before, _ev) = Client::connect_tls(
        &gw.ingest_addr.to_string(),
        "localhost",
        tls.clone(),
        TENANT,
        TOKEN,
    )
    .await
    .unwrap();

    let renewed = pki.ca.server("gateway renewed");
    replace_files(&renewed, &pki.server.0, &pki.server.1);
    let renewed_der = {
        use rustls::pki_types::{CertificateDer, pem::PemObject};
        CertificateDer::from_pem_slice(renewed.cert.as_bytes())
            .unwrap()
            .to_vec()
    };
    assert_ne!(before.cert, renewed_der);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut fresh = open(http, tls.clone()).await;
        if fresh.cert == renewed_der {
            assert_eq!(fresh.healthz().await, StatusCode::OK);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "certificate never reloaded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The connections opened before the reload still work.
    assert_eq!(before.healthz().await, StatusCode::OK);
    accepted_ids(
        &ingest_before
            .submit(vec![msg("after-reload", "+14155550101", "still here")])
            .await
            .unwrap(),
    );
    // And the ingest door took the new certificate too (each door checks
    // its files on its own tick: it may come a tick after the HTTP one).
    loop {
        let tcp = TcpStream::connect(gw.ingest_addr).await.unwrap();
        let s = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(
                rustls::pki_types::ServerName::try_from("localhost").unwrap(),
                tcp,
            )
            .await
            .unwrap();
        if s.get_ref().1.peer_certificates().unwrap()[0].to_vec() == renewed_der {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the ingest door's certificate never reloaded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gw.shutdown().await;
}

/// A TLS listener (the test CA's certificate) forwarding plaintext to `backend`.
async fn tls_terminator(pki: &Pki, backend: SocketAddr) -> SocketAddr {
    let files = sluice::config::ListenerTls {
        cert_file: pki.server.0.clone(),
        key_file: pki.server.1.clone(),
        client_ca_file: None,
    };
    let tls = sluice::tls::ServerTls::load("terminator", &files, &[]).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let tls = tls.clone();
            tokio::spawn(async move {
                let Ok((mut s, _)) = tls.accept(tcp, Duration::from_secs(5)).await else {
                    return;
                };
                let Ok(mut plain) = TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut s, &mut plain).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mm7_client_trusts_the_configured_ca() {
    let smsc = smsc(|_| {}).await;
    // The simulator is told where to post reports before the gateway (which
    // needs the simulator's URL) exists: a port the test holds, on which
    // the gateway's callback listener then listens.
    let held = HeldPort::new();
    let callback = held.addr();
    let mmsc = sluice::sim::mmsc::start(sluice::sim::mmsc::MmscConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        callback_url: Some(format!("http://{callback}/mm7")),
        report_delay: Duration::from_millis(20),
        ..sluice::sim::mmsc::MmscConfig::default()
    })
    .await
    .unwrap();
    let pki = Pki::new();
    let front = tls_terminator(&pki, mmsc.local_addr()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &smsc);
    cfg.tls.ca_file = Some(pki.ca_file.clone());
    cfg.mmsc = vec![MmscConfig {
        vasp_id: Some("sluice".into()),
        callback_listen: Some(callback),
        ..MmscConfig::new("mmsc", format!("https://localhost:{}/mm7", front.port()))
    }];
    let gw = sluice::gateway::start(cfg).await.unwrap();
    assert_eq!(gw.mm7_callbacks(), vec![callback]);
    let (client, got) = subscriber(&gw.ingest_addr.to_string()).await;
    let png = {
        let img = image::RgbImage::from_pixel(8, 8, image::Rgb([200, 10, 10]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        Bytes::from(out.into_inner())
    };
    let up = client.put_media("image/png", png).await.unwrap();
    let mut m = msg("mms-tls", "+14155550123", "over https");
    m.media = vec![up.media_id];
    let id = accepted_ids(&client.submit(vec![m]).await.unwrap())[0];
    eventually("a final state", Duration::from_secs(20), || {
        got.terminal_count() == 1
    })
    .await;
    assert_eq!(got.state_of(id), Some(pb::DeliveryState::StateDelivered));
    assert_eq!(
        mmsc.stats().submits,
        1,
        "the MMS went over https to the MMSC"
    );
    assert_eq!(smsc.stats().messages, 0, "no SMS fallback");
    gw.shutdown().await;
}
