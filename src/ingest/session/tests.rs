//! Sessions over in-memory streams on tokio's paused clock, against a
//! backend that only authenticates.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::codec::FramedRead;

use super::{Limits, SessionEnd, run};
use crate::events::EventHub;
use crate::ingest::door::{Door, DoorConfig};
use crate::ingest::pb::{self, frame::Body};
use crate::ingest::{Backend, codec};
use crate::model::logsafe::capture::capture;

const GOOD: &str = "good-token-0001";

struct Mock {
    hub: Arc<EventHub>,
    auth_calls: AtomicUsize,
    _dir: tempfile::TempDir,
}

impl Mock {
    fn new() -> Arc<Mock> {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) =
            crate::journal::Journal::open(dir.path(), &crate::settings::JournalConfig::default())
                .unwrap();
        Arc::new(Mock {
            hub: Arc::new(EventHub::new(
                journal,
                [Arc::<str>::from("acme")],
                Arc::new(crate::ingest::event_wire::WireEvents),
            )),
            auth_calls: AtomicUsize::new(0),
            _dir: dir,
        })
    }
}

impl Backend for Mock {
    fn authenticate(&self, tenant: &str, token: &str) -> Option<Arc<str>> {
        self.auth_calls.fetch_add(1, Ordering::Relaxed);
        (tenant == "acme" && token == GOOD).then(|| Arc::from("acme"))
    }
    fn submit(
        self: &Arc<Self>,
        _tenant: &Arc<str>,
        _conn: u64,
        _messages: Vec<crate::model::submit::Submission>,
    ) -> Pin<Box<dyn Future<Output = Vec<crate::model::submit::SubmitResult>> + Send>> {
        Box::pin(std::future::ready(Vec::new()))
    }
    fn put_media(
        self: &Arc<Self>,
        _tenant: &Arc<str>,
        _conn: u64,
        _req: crate::model::submit::MediaChunk,
    ) -> Pin<
        Box<
            dyn Future<
                    Output = Result<crate::model::submit::MediaStored, crate::ingest::MediaRefusal>,
                > + Send,
        >,
    > {
        Box::pin(std::future::ready(Err("no media here".into())))
    }
    fn headroom(&self) -> u64 {
        u64::MAX
    }
    fn events(&self) -> &Arc<EventHub> {
        &self.hub
    }
}

fn limits() -> Limits {
    let mut l = Limits::from_config(&crate::settings::IngestConfig::default(), "test");
    l.door = DoorConfig {
        max_unauthenticated: 2,
        ..DoorConfig::default()
    };
    l
}

struct Harness {
    backend: Arc<Mock>,
    door: Arc<Door>,
    limits: Limits,
    shutdown: watch::Receiver<bool>,
    _stop: watch::Sender<bool>,
}

impl Harness {
    fn new() -> Harness {
        let limits = limits();
        let (stop, shutdown) = watch::channel(false);
        Harness {
            backend: Mock::new(),
            door: Door::new(limits.door.clone()),
            limits,
            shutdown,
            _stop: stop,
        }
    }

    /// A client end connected from `peer`, and the session's outcome.
    fn connect(
        &self,
        peer: &str,
    ) -> (
        DuplexStream,
        tokio::task::JoinHandle<Result<(), SessionEnd>>,
    ) {
        let (client, server) = tokio::io::duplex(1 << 20);
        let peer: SocketAddr = peer.parse().unwrap();
        let ticket = self.door.admit(peer).unwrap();
        let task = tokio::spawn(run(
            server,
            self.backend.clone(),
            self.limits.clone(),
            ticket,
            self.shutdown.clone(),
        ));
        (client, task)
    }
}

fn hello(tenant: &str, token: &str, client_name: &str) -> bytes::Bytes {
    codec::frame_bytes(
        1,
        Body::Hello(pb::Hello {
            protocol_version: 1,
            tenant: tenant.into(),
            token: token.into(),
            client_name: client_name.into(),
        }),
    )
}

/// Every frame until the server closes.
async fn frames_until_close(client: DuplexStream) -> Vec<Body> {
    let mut framed = FramedRead::new(client, codec::length_codec(1 << 20));
    let mut out = Vec::new();
    while let Some(Ok(b)) = framed.next().await {
        out.push(codec::decode_frame(b.freeze()).unwrap().1);
    }
    out
}

/// The first frame, and when it came.
async fn first_frame(client: &mut DuplexStream) -> (Body, Instant) {
    let mut framed = FramedRead::new(client, codec::length_codec(1 << 20));
    let b = framed.next().await.unwrap().unwrap();
    (codec::decode_frame(b.freeze()).unwrap().1, Instant::now())
}

fn error(b: &Body) -> (pb::ErrorCode, String) {
    match b {
        Body::Error(e) => (pb::ErrorCode::try_from(e.code).unwrap(), e.message.clone()),
        other => panic!("expected an Error, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn nothing_but_an_error_is_answered_before_hello() {
    let h = Harness::new();
    // A Ping: an Error, not a Pong, then the connection closes.
    let (mut c, task) = h.connect("10.1.0.1:5000");
    c.write_all(&codec::frame_bytes(3, Body::Ping(pb::Ping { nonce: 9 })))
        .await
        .unwrap();
    let got = frames_until_close(c).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(error(&got[0]).0, pb::ErrorCode::NotAuthenticated);
    assert!(matches!(
        task.await.unwrap(),
        Err(SessionEnd::Refused("request before Hello"))
    ));
    // A frame type this build does not know: the same.
    let (mut c, _) = h.connect("10.1.0.1:5001");
    let mut unknown = Vec::new();
    prost::encoding::encode_key(99, prost::encoding::WireType::LengthDelimited, &mut unknown);
    prost::encoding::encode_varint(0, &mut unknown);
    c.write_all(&(unknown.len() as u32).to_be_bytes())
        .await
        .unwrap();
    c.write_all(&unknown).await.unwrap();
    let got = frames_until_close(c).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(error(&got[0]).0, pb::ErrorCode::NotAuthenticated);
    // After a good Hello, Ping is answered.
    let (mut c, _) = h.connect("10.1.0.1:5002");
    c.write_all(&hello("acme", GOOD, "t")).await.unwrap();
    c.write_all(&codec::frame_bytes(4, Body::Ping(pb::Ping { nonce: 9 })))
        .await
        .unwrap();
    let mut framed = FramedRead::new(c, codec::length_codec(1 << 20));
    let mut next = async || {
        codec::decode_frame(framed.next().await.unwrap().unwrap().freeze())
            .unwrap()
            .1
    };
    assert!(matches!(next().await, Body::HelloOk(_)));
    assert!(matches!(next().await, Body::Pong(pb::Pong { nonce: 9 })));
}

#[tokio::test(start_paused = true)]
async fn a_silent_connection_is_closed_at_the_hello_deadline() {
    let h = Harness::new();
    let (c, task) = h.connect("10.1.1.1:5000");
    let start = Instant::now();
    let got = frames_until_close(c).await;
    assert_eq!(h.limits.hello_timeout, Duration::from_secs(2));
    assert!(start.elapsed() >= h.limits.hello_timeout);
    assert!(start.elapsed() < h.limits.hello_timeout + Duration::from_millis(5));
    assert_eq!(
        error(&got[0]),
        (pb::ErrorCode::NotAuthenticated, "no Hello in time".into())
    );
    assert!(matches!(task.await.unwrap(), Err(SessionEnd::Refused(_))));
    assert_eq!(h.door.connections(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_waiting_connection_is_closed_to_make_room_with_busy() {
    let h = Harness::new();
    // The budget for connections waiting for Hello is 2 here.
    let (oldest, _) = h.connect("10.1.2.1:5000");
    let (mut second, _) = h.connect("10.1.2.2:5000");
    let (mut third, _) = h.connect("10.1.2.3:5000");
    let got = frames_until_close(oldest).await;
    assert_eq!(error(&got[0]).0, pb::ErrorCode::Busy);
    // The newer ones are served.
    second.write_all(&hello("acme", GOOD, "t")).await.unwrap();
    assert!(matches!(first_frame(&mut second).await.0, Body::HelloOk(_)));
    third.write_all(&hello("acme", GOOD, "t")).await.unwrap();
    assert!(matches!(first_frame(&mut third).await.0, Body::HelloOk(_)));
    assert_eq!(h.door.unauthenticated(), 0);
}

#[tokio::test(start_paused = true)]
async fn failed_hellos_are_answered_ever_later_then_refused_unchecked() {
    let h = Harness::new();
    let mut waits: Vec<u64> = Vec::new();
    for i in 0..10 {
        let (mut c, _) = h.connect(&format!("10.1.3.1:{}", 6000 + i));
        let sent = Instant::now();
        c.write_all(&hello("acme", "wrong-token-000", "t"))
            .await
            .unwrap();
        let (b, at) = first_frame(&mut c).await;
        assert_eq!(error(&b).0, pb::ErrorCode::AuthFailed);
        // The timer's resolution is a millisecond.
        waits.push(((at - sent).as_micros() as u64).div_ceil(1000) / 10 * 10);
    }
    assert_eq!(
        waits,
        [200, 400, 800, 1600, 3200, 5000, 5000, 5000, 5000, 5000]
    );
    assert_eq!(h.backend.auth_calls.load(Ordering::Relaxed), 10);
    // Locked out: refused at once, even with the right token, which is not
    // looked at.
    let (mut c, task) = h.connect("10.1.3.1:6100");
    let sent = Instant::now();
    c.write_all(&hello("acme", GOOD, "t")).await.unwrap();
    let (b, at) = first_frame(&mut c).await;
    assert!(at - sent < Duration::from_millis(5));
    let (code, message) = error(&b);
    assert_eq!(code, pb::ErrorCode::AuthFailed);
    assert!(
        message.contains("too many failed authentications"),
        "{message}"
    );
    assert!(matches!(
        task.await.unwrap(),
        Err(SessionEnd::Refused("address locked out"))
    ));
    assert_eq!(h.backend.auth_calls.load(Ordering::Relaxed), 10);
    // Another address is not affected.
    let (mut c, _) = h.connect("10.1.3.2:6000");
    c.write_all(&hello("acme", GOOD, "t")).await.unwrap();
    assert!(matches!(first_frame(&mut c).await.0, Body::HelloOk(_)));
    // A minute after those failures the address is heard again.
    tokio::time::advance(Duration::from_secs(60)).await;
    let (mut c, _) = h.connect("10.1.3.1:6200");
    c.write_all(&hello("acme", GOOD, "t")).await.unwrap();
    assert!(matches!(first_frame(&mut c).await.0, Body::HelloOk(_)));
}

#[tokio::test(start_paused = true)]
async fn a_tenant_name_cannot_forge_a_log_line() {
    let (logs, _guard) = capture("sluice::ingest=info");
    let h = Harness::new();
    let forged = "evil\n2025-01-01T00:00:00.000000Z  INFO sluice::ingest: hello tenant=acme";
    let (mut c, _) = h.connect("10.1.4.1:5000");
    c.write_all(&hello(forged, "wrong-token-000", "t"))
        .await
        .unwrap();
    let _ = frames_until_close(c).await;
    let lines = logs.lines();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].contains("authentication failed"), "{}", lines[0]);
    assert!(
        lines[0].contains(r#"tenant="evil\n2025-01-01T00:00:00.000000Z  INFO"#),
        "{}",
        lines[0]
    );
    // Nor a client name, on a good Hello.
    let (mut c, _) = h.connect("10.1.4.2:5000");
    c.write_all(&hello("acme", GOOD, "cli\r\n  WARN fake"))
        .await
        .unwrap();
    assert!(matches!(first_frame(&mut c).await.0, Body::HelloOk(_)));
    let lines = logs.lines();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(
        lines[1].contains(r#"client="cli\r\n  WARN fake""#),
        "{}",
        lines[1]
    );
}

#[tokio::test(start_paused = true)]
async fn a_huge_tenant_name_logs_at_most_the_cap() {
    let (logs, _guard) = capture("sluice::ingest=info");
    let h = Harness::new();
    // The largest Hello the server reads before authentication.
    let name = "n".repeat(60_000);
    let (mut c, _) = h.connect("10.1.5.1:5000");
    c.write_all(&hello(&name, "wrong-token-000", "t"))
        .await
        .unwrap();
    let _ = frames_until_close(c).await;
    let lines = logs.lines();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].len() < 400, "{} bytes logged", lines[0].len());
    assert!(lines[0].contains("…(60000 bytes)"), "{}", lines[0]);
    // A 1 MB name does not even get read: the frame is over the pre-Hello
    // maximum.
    let (mut c, task) = h.connect("10.1.5.2:5000");
    // The server stops reading: the write may fail.
    let _ = c.write_all(&hello(&"n".repeat(1 << 20), "x", "t")).await;
    let got = frames_until_close(c).await;
    assert_eq!(error(&got[0]).0, pb::ErrorCode::BadFrame);
    assert!(matches!(task.await.unwrap(), Err(SessionEnd::Refused(_))));
    assert!(logs.text().len() < 800, "{}", logs.text());
}
