use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

use super::testpki::{Ca, Leaf};
use super::*;

struct Pki {
    dir: tempfile::TempDir,
    ca: Ca,
}

impl Pki {
    fn new() -> Pki {
        Pki {
            dir: tempfile::tempdir().unwrap(),
            ca: Ca::new("test CA"),
        }
    }

    fn files(&self, server: &Leaf, client_ca: Option<&Ca>) -> ListenerTls {
        let (cert_file, key_file) = server.write(self.dir.path(), "server");
        ListenerTls {
            cert_file,
            key_file,
            client_ca_file: client_ca.map(|c| c.write(self.dir.path(), "client-ca.pem")),
        }
    }

    fn client(&self, identity: Option<&Leaf>) -> Arc<rustls::ClientConfig> {
        let ca = self.ca.write(self.dir.path(), "ca.pem");
        let id = identity.map(|l| l.write(self.dir.path(), "client"));
        Arc::new(
            client_config(
                Some(&ca),
                id.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
            )
            .unwrap(),
        )
    }
}

/// A TLS echo server; each connection's identity goes to the channel.
async fn echo_server(
    tls: Arc<ServerTls>,
) -> (
    std::net::SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<Option<Arc<str>>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let tls = tls.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let Ok((mut s, id)) = tls.accept(tcp, Duration::from_secs(5)).await else {
                    return;
                };
                let _ = tx.send(id);
                let mut buf = [0u8; 64];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, rx)
}

async fn connect(
    addr: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let mut s = TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    // TLS 1.3 reports a refused client certificate only on the first read.
    s.write_all(b"ping").await?;
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).await?;
    assert_eq!(&buf, b"ping");
    Ok(s)
}

fn served_cert(s: &tokio_rustls::client::TlsStream<TcpStream>) -> Vec<u8> {
    s.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[test]
fn identity_is_the_common_name_else_the_first_dns_name() {
    let ca = Ca::new("ca");
    let both = ca.client(Some("acme"), &["acme.example.com"]);
    assert_eq!(certificate_identity(&both.der()).as_deref(), Some("acme"));
    let san_only = ca.client(None, &["globex.example.com", "other.example.com"]);
    assert_eq!(
        certificate_identity(&san_only.der()).as_deref(),
        Some("globex.example.com")
    );
    let nameless = ca.client(None, &[]);
    assert_eq!(certificate_identity(&nameless.der()), None);
    let long = ca.client(Some(&"x".repeat(MAX_IDENTITY + 1)), &[]);
    assert_eq!(certificate_identity(&long.der()), None);
    assert_eq!(certificate_identity(b"not a certificate"), None);
}

#[test]
fn unusable_files_are_refused_with_their_name() {
    let pki = Pki::new();
    let good = pki.files(&pki.ca.server("one"), None);
    // A key that belongs to another certificate.
    let other = pki.ca.server("two");
    std::fs::write(&good.key_file, &other.key).unwrap();
    let e = ServerTls::load("t", &good, &[]).unwrap_err();
    assert!(matches!(e, TlsError::Rustls(_)), "{e}");
    let missing = ListenerTls {
        cert_file: pki.dir.path().join("nope.pem"),
        key_file: good.key_file.clone(),
        client_ca_file: None,
    };
    let e = ServerTls::load("t", &missing, &[]).unwrap_err().to_string();
    assert!(e.contains("nope.pem"), "{e}");
}

#[tokio::test]
async fn reload_serves_the_new_certificate_to_new_connections_only() {
    let pki = Pki::new();
    let first = pki.ca.server("first");
    let files = pki.files(&first, None);
    let tls = ServerTls::load("test", &files, &[]).unwrap();
    let (addr, _ids) = echo_server(tls.clone()).await;
    let client = pki.client(None);
    let mut old = connect(addr, client.clone()).await.unwrap();
    assert_eq!(served_cert(&old), first.der());

    // Nothing changed: nothing reloads.
    assert!(!tls.reload(false));

    // A broken file keeps the old certificate.
    std::fs::write(&files.cert_file, "-----BEGIN CERTIFICATE-----\ngarbage\n").unwrap();
    assert!(!tls.reload(false));
    let s = connect(addr, client.clone()).await.unwrap();
    assert_eq!(served_cert(&s), first.der());
    // ...and is not retried until the files change again.
    assert!(!tls.reload(false));

    let second = pki.ca.server("second");
    second.write(pki.dir.path(), "server");
    assert!(tls.reload(false));
    let new = connect(addr, client.clone()).await.unwrap();
    assert_eq!(served_cert(&new), second.der());
    // The connection opened before the reload still works.
    old.write_all(b"more").await.unwrap();
    let mut buf = [0u8; 4];
    old.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"more");
}

#[tokio::test]
async fn the_watch_picks_up_changed_files() {
    let pki = Pki::new();
    let files = pki.files(&pki.ca.server("first"), None);
    let tls = ServerTls::load("test", &files, &[]).unwrap();
    tls.watch(Duration::from_millis(20));
    let (addr, _ids) = echo_server(tls.clone()).await;
    let client = pki.client(None);
    let second = pki.ca.server("second");
    second.write(pki.dir.path(), "server");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let s = connect(addr, client.clone()).await.unwrap();
        if served_cert(&s) == second.der() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never reloaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn mutual_tls_takes_only_certificates_of_the_client_ca() {
    let pki = Pki::new();
    let clients = Ca::new("client CA");
    let files = pki.files(&pki.ca.server("srv"), Some(&clients));
    let tls = ServerTls::load("test", &files, &[]).unwrap();
    assert!(tls.requires_client_cert());
    let (addr, mut ids) = echo_server(tls).await;

    let good = clients.client(Some("acme"), &[]);
    connect(addr, pki.client(Some(&good))).await.unwrap();
    assert_eq!(ids.recv().await.unwrap().as_deref(), Some("acme"));

    let stranger = Ca::new("another CA").client(Some("acme"), &[]);
    assert!(connect(addr, pki.client(Some(&stranger))).await.is_err());
    assert!(connect(addr, pki.client(None)).await.is_err());
}

#[tokio::test]
async fn plaintext_fails_the_handshake() {
    let pki = Pki::new();
    let tls = ServerTls::load("test", &pki.files(&pki.ca.server("srv"), None), &[]).unwrap();
    let (addr, _ids) = echo_server(tls).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = tcp.read_to_end(&mut out).await;
    assert!(!out.starts_with(b"GET"), "no echo of plaintext");
    assert!(!out.windows(4).any(|w| w == b"HTTP"));
}
