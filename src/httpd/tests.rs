use std::time::Duration;

use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

/// Serves `router` with `limits`; each connection's end is reported on the
/// channel (its service is dropped with it).
async fn start(
    router: axum::Router,
    limits: HttpLimits,
    max_connections: usize,
) -> (
    SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<tokio::sync::oneshot::Receiver<()>>,
    CancellationToken,
) {
    let door = Door::bind(
        "test",
        "127.0.0.1:0".parse().unwrap(),
        None,
        max_connections,
    )
    .await
    .unwrap();
    let addr = door.local_addr().unwrap();
    let (ends_tx, ends) = tokio::sync::mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    let make = move |_: &ConnInfo| {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let _ = ends_tx.send(rx);
        let svc = hyper_util::service::TowerToHyperService::new(router.clone());
        Dropped { svc, _tx: tx }
    };
    tokio::spawn(serve(door, limits, make, stop.clone(), None));
    (addr, ends, stop)
}

/// A service that reports its drop (the oneshot sender goes with it).
struct Dropped<S> {
    svc: S,
    _tx: tokio::sync::oneshot::Sender<()>,
}

impl<S: hyper::service::Service<Request<Incoming>>> hyper::service::Service<Request<Incoming>>
    for Dropped<S>
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;
    fn call(&self, req: Request<Incoming>) -> Self::Future {
        self.svc.call(req)
    }
}

fn router() -> axum::Router {
    axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/big", get(|| async { vec![b'x'; 16 << 20] }))
        .route(
            "/peer",
            get(|axum::Extension(c): axum::Extension<ConnInfo>| async move {
                c.peer.ip().to_string()
            }),
        )
}

async fn get_path(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

async fn ended(rx: tokio::sync::oneshot::Receiver<()>, within: Duration) {
    tokio::time::timeout(within, rx)
        .await
        .expect("connection closed in time")
        .unwrap_err();
}

#[tokio::test]
async fn a_client_trickling_headers_is_closed_by_the_header_timeout() {
    let limits = HttpLimits {
        header_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_secs(60),
    };
    let (addr, mut ends, _stop) = start(router(), limits, 16).await;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    let started = tokio::time::Instant::now();
    let conn_end = ends.recv().await.unwrap();
    // One header byte at a time, each well inside the timeout.
    let trickle = tokio::spawn(async move {
        for b in b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: "
            .iter()
            .cycle()
        {
            if slow.write_all(&[*b]).await.is_err() {
                return slow;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        unreachable!()
    });
    ended(conn_end, Duration::from_secs(10)).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    let mut slow = trickle.await.unwrap();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest).await;
    // Meanwhile others are answered.
    assert!(get_path(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_by_the_idle_timeout() {
    let limits = HttpLimits {
        header_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_millis(300),
    };
    let (addr, mut ends, _stop) = start(router(), limits, 16).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let conn_end = ends.recv().await.unwrap();
    s.write_all(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    // Not reading: the answer stalls in the socket buffers.
    ended(conn_end, Duration::from_secs(10)).await;
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got).await;
    assert!(got.len() < 16 << 20, "the answer was cut off");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_and_a_busy_one_is_not() {
    let limits = HttpLimits {
        header_timeout: Duration::from_millis(400),
        idle_timeout: Duration::from_millis(200),
    };
    let slow = axum::Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(800)).await;
            "done"
        }),
    );
    let (addr, mut ends, _stop) = start(slow, limits, 16).await;
    // A request taking longer than both timeouts is answered: it is being
    // handled, not idle.
    assert!(get_path(addr, "/slow").await.ends_with("done"));
    // (The first connection's end is not awaited.)
    drop(ends.recv().await.unwrap());
    // An idle keep-alive connection is closed.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let conn_end = ends.recv().await.unwrap();
    ended(conn_end, Duration::from_secs(10)).await;
    let mut buf = [0u8; 1];
    assert_eq!(s.read(&mut buf).await.unwrap_or(0), 0);
}

#[tokio::test]
async fn requests_carry_the_peer() {
    let (addr, _ends, _stop) = start(router(), HttpLimits::default(), 16).await;
    assert!(get_path(addr, "/peer").await.ends_with("127.0.0.1"));
}

#[tokio::test]
async fn stop_ends_the_accept_loop() {
    let (addr, _ends, stop) = start(router(), HttpLimits::default(), 16).await;
    assert!(get_path(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
    stop.cancel();
    crate::ingest::client::Client::connect(&addr.to_string(), "x", "y")
        .await
        .expect_err("nobody listens");
}

#[tokio::test]
async fn bodies_are_capped_and_have_a_deadline() {
    let full = http_body_util::Full::new(bytes::Bytes::from_static(b"0123456789"));
    assert_eq!(
        read_body(full.clone(), 10, Duration::from_secs(1))
            .await
            .unwrap(),
        "0123456789"
    );
    assert_eq!(
        read_body(full, 9, Duration::from_secs(1))
            .await
            .unwrap_err(),
        BodyError::TooLarge
    );
    let (_tx, never) = tokio::sync::mpsc::channel::<
        Result<hyper::body::Frame<bytes::Bytes>, std::convert::Infallible>,
    >(1);
    let stream = http_body_util::StreamBody::new(tokio_stream_from(never));
    assert_eq!(
        read_body(stream, 10, Duration::from_millis(50))
            .await
            .unwrap_err(),
        BodyError::TimedOut
    );
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
