//! The ingest door end to end: a flood of unauthenticated connections does
//! not keep out a client that says Hello, and is closed by the pre-auth
//! deadline; the per-address cap; nothing but an Error before Hello; failed
//! Hellos throttled per address; a forged tenant name cannot forge a log
//! line; and at the descriptor limit the process backs off instead of
//! spinning, logs at a bounded rate and still answers.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use prost::Message;
use sluice::ingest::client::Client;
use sluice::ingest::codec::frame_bytes;
use sluice::ingest::pb::{self, frame::Body};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

/// A connection to `addr` from the loopback address `from` (all of
/// 127.0.0.0/8 is local on Linux).
async fn connect_from(from: &str, addr: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(format!("{from}:0").parse().unwrap()).unwrap();
    s.connect(addr).await.unwrap()
}

/// Reads frames until the server closes or `timeout` passes; the frames,
/// and whether it closed.
async fn frames_until_close(s: &mut TcpStream, timeout: Duration) -> (Vec<pb::Frame>, bool) {
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(timeout, async {
        let mut chunk = [0u8; 4096];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return true,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .unwrap_or(false);
    let mut frames = Vec::new();
    let mut off = 0;
    while buf.len() - off >= 4 {
        let len = u32::from_be_bytes(buf[off..off + 4].try_into().unwrap()) as usize;
        if buf.len() - off - 4 < len {
            break;
        }
        frames.push(pb::Frame::decode(&buf[off + 4..off + 4 + len]).unwrap());
        off += 4 + len;
    }
    (frames, closed)
}

/// The first frame, read whole.
async fn first_frame(s: &mut TcpStream) -> pb::Frame {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).await.unwrap();
    pb::Frame::decode(&body[..]).unwrap()
}

fn error_of(f: &pb::Frame) -> (pb::ErrorCode, String) {
    match &f.body {
        Some(Body::Error(e)) => (pb::ErrorCode::try_from(e.code).unwrap(), e.message.clone()),
        other => panic!("expected an Error, got {other:?}"),
    }
}

fn hello(tenant: &str, token: &str) -> bytes::Bytes {
    frame_bytes(
        1,
        Body::Hello(pb::Hello {
            protocol_version: 1,
            tenant: tenant.into(),
            token: token.into(),
            client_name: "door-test".into(),
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_connections_do_not_delay_a_hello_and_are_closed_at_the_deadline() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &smsc);
    // 200 connections that never authenticate could hold every slot.
    cfg.ingest.max_connections = 200;
    cfg.ingest.max_unauthenticated = 64;
    let hello_timeout = cfg.ingest.hello_timeout;
    assert_eq!(hello_timeout, Duration::from_secs(2), "the default");
    let gw = sluice::gateway::start(cfg).await.unwrap();
    let addr = gw.ingest_addr;

    // 200 from four addresses (under the per-address cap): half silent, half
    // trickling a frame that never completes.
    let mut flood = Vec::new();
    for i in 0..200 {
        let mut s = connect_from(&format!("127.0.0.{}", 10 + i % 4), addr).await;
        if i % 2 == 1 {
            s.write_all(&1000u32.to_be_bytes()).await.unwrap();
            s.write_all(b"\x0a\x05garbage").await.unwrap();
        }
        flood.push((Instant::now(), s));
    }
    // A client that says Hello at once gets in at once, every time.
    for _ in 0..3 {
        let start = Instant::now();
        let (c, _) = Client::connect(&addr.to_string(), TENANT, TOKEN)
            .await
            .expect("a Hello during the flood is answered");
        let took = start.elapsed();
        eprintln!("Hello behind 200 unauthenticated connections: {took:?}");
        assert!(
            took < Duration::from_millis(100),
            "Hello took {took:?} behind 200 unauthenticated connections"
        );
        c.ping().await.unwrap();
    }
    // Every flood connection is closed by the pre-auth deadline (or sooner,
    // to make room), with an Error saying why.
    let mut busy = 0;
    for (opened, mut s) in flood {
        let left = (opened + hello_timeout + Duration::from_secs(1))
            .saturating_duration_since(Instant::now());
        let (frames, closed) = frames_until_close(&mut s, left).await;
        assert!(closed, "a flood connection outlived the pre-auth deadline");
        match error_of(&frames[0]).0 {
            pb::ErrorCode::Busy => busy += 1,
            pb::ErrorCode::NotAuthenticated => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(busy >= 200 - 64, "{busy} closed to make room");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_connection_over_the_per_address_cap_is_refused() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &smsc);
    cfg.ingest.max_connections_per_ip = 3;
    let gw = sluice::gateway::start(cfg).await.unwrap();
    let addr = gw.ingest_addr;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = connect_from("127.0.0.30", addr).await;
        s.write_all(&hello(TENANT, TOKEN)).await.unwrap();
        assert!(matches!(
            first_frame(&mut s).await.body,
            Some(Body::HelloOk(_))
        ));
        held.push(s);
    }
    let mut fourth = connect_from("127.0.0.30", addr).await;
    let (frames, closed) = frames_until_close(&mut fourth, Duration::from_secs(2)).await;
    assert!(closed);
    let (code, message) = error_of(&frames[0]);
    assert_eq!(code, pb::ErrorCode::Busy);
    assert!(
        message.contains("too many connections from your address"),
        "{message}"
    );
    // Another address is not affected.
    let mut other = connect_from("127.0.0.31", addr).await;
    other.write_all(&hello(TENANT, TOKEN)).await.unwrap();
    assert!(matches!(
        first_frame(&mut other).await.body,
        Some(Body::HelloOk(_))
    ));
    // A closed connection gives its place back.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut s = connect_from("127.0.0.30", addr).await;
        s.write_all(&hello(TENANT, TOKEN)).await.unwrap();
        if matches!(first_frame(&mut s).await.body, Some(Body::HelloOk(_))) {
            break;
        }
        assert!(Instant::now() < deadline, "the place was never given back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_before_hello_gets_an_error_not_a_pong() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = sluice::gateway::start(config(dir.path(), &smsc))
        .await
        .unwrap();
    let mut s = TcpStream::connect(gw.ingest_addr).await.unwrap();
    s.write_all(&frame_bytes(5, Body::Ping(pb::Ping { nonce: 1 })))
        .await
        .unwrap();
    let (frames, closed) = frames_until_close(&mut s, Duration::from_secs(2)).await;
    assert!(closed);
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0].request_id, 5);
    assert_eq!(error_of(&frames[0]).0, pb::ErrorCode::NotAuthenticated);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_hellos_are_slowed_and_capped_per_address() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &smsc);
    cfg.ingest.auth_failure_delay = Duration::from_millis(40);
    cfg.ingest.auth_failure_delay_max = Duration::from_millis(160);
    cfg.ingest.auth_failures_per_minute = 4;
    let gw = sluice::gateway::start(cfg).await.unwrap();
    let addr = gw.ingest_addr;
    // The answers to failed Hellos come ever later...
    for want_ms in [40, 80, 160, 160] {
        let mut s = connect_from("127.0.0.40", addr).await;
        let start = Instant::now();
        s.write_all(&hello(TENANT, "wrong-token-000"))
            .await
            .unwrap();
        let (code, message) = error_of(&first_frame(&mut s).await);
        let took = start.elapsed();
        assert_eq!(code, pb::ErrorCode::AuthFailed);
        assert_eq!(message, "unknown tenant or wrong token");
        assert!(
            took >= Duration::from_millis(want_ms),
            "answered after {took:?}, before {want_ms} ms"
        );
    }
    // ...and four failures a minute is all an address gets: then it is
    // refused at once, the right token unchecked.
    let mut s = connect_from("127.0.0.40", addr).await;
    let start = Instant::now();
    s.write_all(&hello(TENANT, TOKEN)).await.unwrap();
    let (code, message) = error_of(&first_frame(&mut s).await);
    assert_eq!(code, pb::ErrorCode::AuthFailed);
    assert!(
        message.contains("too many failed authentications"),
        "{message}"
    );
    assert!(start.elapsed() < Duration::from_millis(40));
    // Another address is not affected.
    let mut s = connect_from("127.0.0.41", addr).await;
    s.write_all(&hello(TENANT, TOKEN)).await.unwrap();
    assert!(matches!(
        first_frame(&mut s).await.body,
        Some(Body::HelloOk(_))
    ));
    gw.shutdown().await;
}

/// On one thread, so the gateway's tasks log into this test's subscriber.
#[tokio::test]
async fn a_tenant_name_cannot_forge_a_log_line() {
    let (logs, _guard) = capture_logs("sluice::ingest=info");
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = sluice::gateway::start(config(dir.path(), &smsc))
        .await
        .unwrap();
    let forged = "x\n2030-01-01T00:00:00.000000Z  INFO sluice::ingest: hello tenant=demo";
    let mut s = TcpStream::connect(gw.ingest_addr).await.unwrap();
    s.write_all(&hello(forged, "wrong-token-000"))
        .await
        .unwrap();
    let (frames, _) = frames_until_close(&mut s, Duration::from_secs(5)).await;
    assert_eq!(error_of(&frames[0]).0, pb::ErrorCode::AuthFailed);
    let lines = logs.lines();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].contains("authentication failed"), "{}", lines[0]);
    assert!(
        lines[0].contains(r#"tenant="x\n2030-01-01"#),
        "{}",
        lines[0]
    );
    gw.shutdown().await;
}

/// A child process, killed and reaped when dropped (also when a test fails).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// CPU time (user + system) of process `pid`, from /proc.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_descriptor_limit_the_gateway_backs_off_logs_little_and_answers() {
    if Command::new("prlimit").arg("--version").output().is_err() {
        eprintln!("skipped: prlimit (util-linux) is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sluice.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
data_dir = "{data}"
[ingest]
listen = "127.0.0.1:0"
[http]
listen = "127.0.0.1:0"
[public]
listen = "127.0.0.1:0"
[[tenants]]
name = "{TENANT}"
token = "{TOKEN}"
"#,
            data = dir.path().join("data").display(),
        ),
    )
    .unwrap();
    // Few descriptors: the journal, listeners and runtime take some, the
    // flood below the rest.
    let mut child = Killed(
        Command::new("prlimit")
            .arg("--nofile=64:64")
            .arg(env!("CARGO_BIN_EXE_sluice"))
            .args(["run", "--config"])
            .arg(&cfg)
            // Warnings, plus the "gateway started" line naming its address
            // (left out of the counts below).
            .env("RUST_LOG", "warn,sluice::gateway=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("prlimit runs the gateway"),
    );
    let pid = child.0.id();
    let mut log = ChildLog::follow(child.0.stderr.take().unwrap(), false);
    // Its ingest listens on port 0: the address is the one it reports.
    let addr: SocketAddr = log.started(Duration::from_secs(30)).await.ingest;
    let up = Instant::now() + Duration::from_secs(30);
    while Client::connect(&addr.to_string(), TENANT, TOKEN)
        .await
        .is_err()
    {
        assert!(Instant::now() < up, "the gateway never came up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // More connections than descriptors, from addresses under the
    // per-address cap: accept fails with EMFILE while they wait.
    let mut flood = Vec::new();
    for i in 0..150 {
        flood.push(connect_from(&format!("127.0.0.{}", 50 + i % 4), addr).await);
    }
    let cpu_before = cpu_time(pid);
    let window = Instant::now();
    // While the limit is hit: a client still gets in, once the pre-auth
    // deadline (2 s) frees descriptors.
    let (c, _) = tokio::time::timeout(
        Duration::from_secs(6),
        Client::connect(&addr.to_string(), TENANT, TOKEN),
    )
    .await
    .expect("a Hello is answered at the descriptor limit")
    .unwrap();
    let hello_took = window.elapsed();
    c.ping().await.unwrap();
    tokio::time::sleep_until(window + Duration::from_secs(4)).await;
    let cpu = cpu_time(pid) - cpu_before;
    drop(flood);
    drop(c);
    drop(child);
    // The lines at warning level and above, as the test counted them
    // before it enabled the gateway's info lines for the start-up address.
    let lines: Vec<String> = log
        .join()
        .into_iter()
        .filter(|l| !is_gateway_info(l))
        .collect();
    let accept_lines = lines.iter().filter(|l| l.contains("accept failed")).count();
    eprintln!(
        "at the descriptor limit: Hello answered after {hello_took:?}, {cpu:?} of CPU in 4 s, \
         {accept_lines} accept-failure lines, {} lines in all",
        lines.len()
    );
    assert!(
        accept_lines >= 1,
        "the descriptor limit was never hit: {lines:#?}"
    );
    // Sleeping between attempts, not spinning (which burns a whole core).
    assert!(cpu < Duration::from_secs(1), "{cpu:?} of CPU in 4 s");
    // The first failure, then at most one line per 10 s.
    assert!(accept_lines <= 2, "{accept_lines} lines: {lines:#?}");
    assert!(lines.len() < 20, "{} log lines: {lines:#?}", lines.len());
}
