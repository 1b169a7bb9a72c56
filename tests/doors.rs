//! Limits at the HTTP doors and failing closed: slow clients are closed by
//! the header timeout while `/healthz` answers; at the descriptor limit the
//! process backs off instead of spinning and logs at a bounded rate; the
//! public door serves landing pages only; half-set credentials and doors
//! open beyond loopback without authentication refuse to start.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use parking_lot::Mutex;
use sluice::config::{MmscConfig, Secret};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Status line and body of a GET on a fresh connection, or `None` when the
/// connection fails or closes without an answer.
async fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
        .await
        .ok()?
        .ok()?;
    let status = out.get(9..12)?.parse().ok()?;
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    Some((status, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_closed_by_the_header_timeout_while_healthz_answers() {
    const SLOW: usize = 500;
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &smsc);
    cfg.http.header_timeout = Duration::from_secs(1);
    cfg.http.max_connections = 1024;
    let gw = sluice::gateway::start(cfg).await.unwrap();
    let http = gw.http_addr.unwrap();

    let closed = Arc::new(AtomicUsize::new(0));
    let too_soon = Arc::new(AtomicUsize::new(0));
    let mut slow = Vec::new();
    for _ in 0..SLOW {
        let mut s = TcpStream::connect(http).await.unwrap();
        let (closed, too_soon) = (closed.clone(), too_soon.clone());
        slow.push(tokio::spawn(async move {
            let opened = tokio::time::Instant::now();
            let header = b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-trickle: ";
            let mut buf = [0u8; 256];
            for b in header.iter().chain(std::iter::repeat(&b'a')) {
                tokio::select! {
                    r = s.read(&mut buf) => {
                        // The server closed the connection (no answer owed).
                        assert!(matches!(r, Ok(0) | Err(_)), "answered a half request: {r:?}");
                        break;
                    }
                    () = tokio::time::sleep(Duration::from_millis(100)) => {
                        if s.write_all(&[*b]).await.is_err() {
                            break;
                        }
                    }
                }
            }
            if opened.elapsed() < Duration::from_millis(900) {
                too_soon.fetch_add(1, Ordering::Relaxed);
            }
            closed.fetch_add(1, Ordering::Relaxed);
        }));
    }
    // While they trickle, the door answers.
    let mut answered = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while closed.load(Ordering::Relaxed) < SLOW {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {SLOW} slow clients still open",
            SLOW - closed.load(Ordering::Relaxed)
        );
        let (status, body) = get(http, "/healthz").await.expect("/healthz answers");
        assert_eq!((status, body.as_str()), (200, "ok\n"));
        answered += 1;
    }
    for t in slow {
        t.await.unwrap();
    }
    assert!(answered >= 1);
    assert_eq!(
        too_soon.load(Ordering::Relaxed),
        0,
        "closed before the timeout"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_door_serves_landing_pages_only() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &smsc);
    cfg.http.admin_token = Some(Secret::new("operator-token-0001"));
    let gw = sluice::gateway::start(cfg).await.unwrap();
    let public = gw.public_addr.unwrap();
    for path in ["/metrics", "/healthz", "/admin/queues", "/readyz"] {
        assert_eq!(get(public, path).await.unwrap().0, 404, "{path}");
    }
    assert_eq!(get(public, "/m/x/y/z").await.unwrap().0, 404);
    let http = gw.http_addr.unwrap();
    assert_eq!(get(http, "/metrics").await.unwrap().0, 200);
    assert_eq!(get(http, "/m/x/y/z").await.unwrap().0, 404);
    gw.shutdown().await;
}

#[tokio::test]
async fn half_set_mm7_credentials_refuse_to_start() {
    let smsc = smsc(|_| {}).await;
    for (user, pass) in [(Some("mmsc"), None), (None, Some("callback-pw"))] {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path(), &smsc);
        cfg.mmsc = vec![MmscConfig {
            callback_listen: Some("127.0.0.1:0".parse().unwrap()),
            callback_username: user.map(str::to_owned),
            callback_password: pass.map(Secret::new),
            ..MmscConfig::new("mmsc", "http://127.0.0.1:9/mm7")
        }];
        let e = sluice::gateway::start(cfg).await.unwrap_err().to_string();
        assert!(e.contains("refusing to start"), "{e}");
        assert!(
            e.contains("callback_username and callback_password must be set together"),
            "{e}"
        );
    }
}

#[tokio::test]
async fn an_unauthenticated_door_beyond_loopback_refuses_to_start() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &smsc);
    cfg.http.listen = Some("0.0.0.0:0".parse().unwrap());
    let e = sluice::gateway::start(cfg.clone())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("http.listen 0.0.0.0:0 is beyond loopback"),
        "{e}"
    );
    // Said on purpose, it is allowed (checked without binding everywhere).
    cfg.http.allow_unauthenticated = true;
    assert!(cfg.door_problems().is_empty());
    cfg.http.allow_unauthenticated = false;
    cfg.http.admin_token = Some(Secret::new("operator-token-0001"));
    assert!(cfg.door_problems().is_empty());

    let mut cfg = config(dir.path(), &smsc);
    cfg.mmsc = vec![MmscConfig {
        callback_listen: Some("0.0.0.0:0".parse().unwrap()),
        ..MmscConfig::new("mmsc", "http://127.0.0.1:9/mm7")
    }];
    let e = sluice::gateway::start(cfg.clone())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("callback_listen 0.0.0.0:0 is beyond loopback"),
        "{e}"
    );
    cfg.mmsc[0].callback_allow_unauthenticated = true;
    assert!(cfg.door_problems().is_empty());
}

/// A reload cannot strip the authentication of a callback listener that
/// runs beyond loopback: the file moving it to loopback without
/// credentials passes its own check, but the listener keeps its address
/// until the restart, so the change is refused and the old password still
/// asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_cannot_leave_a_public_callback_listener_unauthenticated() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &smsc);
    cfg.mmsc = vec![MmscConfig {
        callback_listen: Some("0.0.0.0:0".parse().unwrap()),
        callback_username: Some("mmsc".into()),
        callback_password: Some(Secret::new("callback-pw")),
        ..MmscConfig::new("mmsc", "http://127.0.0.1:9/mm7")
    }];
    let mut gw = sluice::gateway::start(cfg.clone()).await.unwrap();
    let mut open = cfg.clone();
    open.mmsc[0].callback_listen = Some("127.0.0.1:0".parse().unwrap());
    open.mmsc[0].callback_username = None;
    open.mmsc[0].callback_password = None;
    assert!(open.door_problems().is_empty(), "the file alone is fine");
    let r = gw.reload(&open);
    assert!(r.applied.is_empty(), "{r:?}");
    assert_eq!(r.refused.len(), 1, "{r:?}");
    assert!(
        r.refused[0].starts_with("mmsc.mmsc: its callback listener on 0.0.0.0:"),
        "{r:?}"
    );
    let port = gw.mm7_callbacks()[0].port();
    let mut c = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    c.write_all(
        b"POST /mm7 HTTP/1.1\r\nhost: x\r\ncontent-type: text/xml\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    c.read_to_end(&mut out).await.unwrap();
    assert!(
        out.starts_with(b"HTTP/1.1 401"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    gw.shutdown().await;
}

/// Per-process CPU time (user + system) in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat(5), counted after the command name.
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_descriptor_limit_the_gateway_backs_off_and_stays_responsive() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            r#"
data_dir = "{data}"
[ingest]
listen = "127.0.0.1:0"
hello_timeout = "60s"
[http]
listen = "127.0.0.1:0"
header_timeout = "60s"
max_connections = 1000
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
    let mut child = std::process::Command::new("prlimit")
        .arg("--nofile=96:96")
        .arg(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("prlimit (util-linux) runs the gateway");
    let pid = child.id();
    let mut log = ChildLog::follow(child.stderr.take().unwrap(), false);
    let lines = log.lines.clone();
    // Its listeners are on port 0: the addresses are those it reports.
    let started = log.started(Duration::from_secs(30)).await;
    let http: SocketAddr = started.http.expect("the http door's address");
    let ingest = started.ingest.to_string();
    let (client, _events) = sluice::ingest::client::Client::connect(&ingest, TENANT, TOKEN)
        .await
        .unwrap();

    // Flood both doors until the process runs out of descriptors.
    let accept_failed = |lines: &Mutex<Vec<String>>| {
        lines
            .lock()
            .iter()
            .filter(|l| l.contains("accept failed"))
            .count()
    };
    let mut flood = Vec::new();
    for i in 0..400 {
        let addr = if i % 2 == 0 {
            http.to_string()
        } else {
            ingest.clone()
        };
        if let Ok(s) = TcpStream::connect(&addr).await {
            flood.push(s);
        }
        if accept_failed(&lines) >= 2 {
            break;
        }
    }
    eventually(
        "accept errors on both doors",
        Duration::from_secs(30),
        || accept_failed(&lines) >= 2,
    )
    .await;
    // Connections keep arriving while it is out of descriptors; measure a
    // window of two seconds.
    for _ in 0..50 {
        if let Ok(s) = TcpStream::connect(http).await {
            flood.push(s);
        }
    }
    let lines_before = lines.lock().len();
    let cpu_before = cpu_ticks(pid);
    let started = tokio::time::Instant::now();
    let mut pings = 0;
    while started.elapsed() < Duration::from_secs(2) {
        // The established client is served throughout.
        tokio::time::timeout(Duration::from_secs(2), client.ping())
            .await
            .expect("ping answered while at the descriptor limit")
            .unwrap();
        pings += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let window = started.elapsed();
    let cpu = cpu_ticks(pid) - cpu_before;
    let logged = lines.lock().len() - lines_before;
    let ticks_per_s = 100.0; // USER_HZ on Linux
    let cpu_share = cpu as f64 / ticks_per_s / window.as_secs_f64();
    assert!(pings > 10);
    assert!(
        logged <= 4,
        "{logged} lines in {window:?}: {:?}",
        &lines.lock()[lines_before..]
    );
    assert!(
        cpu_share < 0.5,
        "the gateway used {:.0}% of a core",
        cpu_share * 100.0
    );

    // The flood ends: both doors answer again.
    drop(flood);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((200, _)) = get(http, "/healthz").await {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/healthz never answered again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sluice::ingest::client::Client::connect(&ingest, TENANT, TOKEN)
        .await
        .expect("a new ingest client is served");
    let total = lines.lock().len();
    assert!(total < 40, "{total} log lines: {:?}", lines.lock());
    let _ = std::process::Command::new("kill")
        .arg(pid.to_string())
        .status();
    let _ = child.wait();
}
