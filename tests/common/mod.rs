//! Shared harness for the end-to-end tests: an in-process SMSC simulator, a
//! gateway on a temporary journal, and a client that collects events.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use sluice::config::Config;
use sluice::ingest::client::Client;
use sluice::ingest::pb;
use sluice::sim::smsc::{self, Smsc, SmscConfig};

pub const TENANT: &str = "demo";
pub const TOKEN: &str = "demo-token-0001";

/// A simulator with the demo's account and `f` applied to its config.
pub async fn smsc(f: impl FnOnce(&mut SmscConfig)) -> Smsc {
    let mut cfg = SmscConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        accounts: vec![("sluice".into(), "pw".into())],
        receipt_delay: Duration::from_millis(5),
        ..SmscConfig::default()
    };
    f(&mut cfg);
    smsc::start(cfg).await.unwrap()
}

/// The embedded config pointing at `smsc`, journal under `dir`.
pub fn config(dir: &std::path::Path, smsc: &Smsc) -> Config {
    let mut c = sluice::demo::embedded_config(dir, smsc.local_addr(), 2, 64);
    c.http.listen = Some("127.0.0.1:0".parse().unwrap());
    c
}

/// A message to `to` with `text` and `client_ref`.
pub fn msg(client_ref: &str, to: &str, text: &str) -> pb::SubmitMessage {
    pb::SubmitMessage {
        client_ref: client_ref.into(),
        to: to.into(),
        from: "12345".into(),
        text: text.into(),
        ..Default::default()
    }
}

/// States (with reasons) received for one message.
pub type States = Vec<(pb::DeliveryState, String)>;

/// Terminal states received, per message id.
#[derive(Clone, Default)]
pub struct Collected {
    pub states: Arc<Mutex<HashMap<u64, States>>>,
    pub inbound: Arc<Mutex<Vec<pb::InboundMessage>>>,
    pub opts: Arc<Mutex<Vec<pb::OptEvent>>>,
    /// Clicks on tracked links.
    pub clicks: Arc<Mutex<Vec<pb::LinkClick>>>,
    /// Channel and channel reason of each final event.
    pub channels: Arc<Mutex<HashMap<u64, (pb::Channel, String)>>>,
    /// Error code and carrier of each final event.
    pub codes: Arc<Mutex<HashMap<u64, (u32, String)>>>,
}

impl Collected {
    pub fn terminal_count(&self) -> usize {
        self.states.lock().len()
    }

    pub fn state_of(&self, id: u64) -> Option<pb::DeliveryState> {
        self.states
            .lock()
            .get(&id)
            .and_then(|v| v.last())
            .map(|s| s.0)
    }
}

/// Connects, subscribes and acknowledges every event, recording it.
pub async fn subscriber(addr: &str) -> (Client, Collected) {
    subscriber_as(addr, TENANT, TOKEN).await
}

/// [`subscriber`] for another tenant.
pub async fn subscriber_as(addr: &str, tenant: &str, token: &str) -> (Client, Collected) {
    let (client, mut events) = Client::connect(addr, tenant, token).await.unwrap();
    client.subscribe(0).await.unwrap();
    let collected = Collected::default();
    let c = collected.clone();
    let acker = client.clone();
    tokio::spawn(async move {
        while let Some(e) = events.recv().await {
            match e.kind {
                Some(pb::event::Kind::Delivery(d)) => {
                    let s = pb::DeliveryState::try_from(d.state).unwrap();
                    if s != pb::DeliveryState::StateSubmitted {
                        c.channels.lock().insert(
                            d.message_id,
                            (
                                pb::Channel::try_from(d.channel)
                                    .unwrap_or(pb::Channel::Unspecified),
                                d.channel_reason.clone(),
                            ),
                        );
                        c.codes
                            .lock()
                            .insert(d.message_id, (d.error_code, d.carrier.clone()));
                        c.states
                            .lock()
                            .entry(d.message_id)
                            .or_default()
                            .push((s, d.reason.clone()));
                    }
                }
                Some(pb::event::Kind::Inbound(m)) => c.inbound.lock().push(m),
                Some(pb::event::Kind::Opt(o)) => c.opts.lock().push(o),
                Some(pb::event::Kind::Click(k)) => c.clicks.lock().push(k),
                None => {}
            }
            let _ = acker.ack(vec![e.event_id]).await;
        }
    });
    (client, collected)
}

/// One HTTP/1.1 request on a fresh connection (`connection: close`), with
/// `headers` and `body`: (status, response headers in lower case, body).
pub async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (headers, body) = out.split_once("\r\n\r\n").unwrap_or_default();
    (status, headers.to_ascii_lowercase(), body.to_owned())
}

/// Waits (real time, bounded) until `f` holds.
pub async fn eventually(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Accepted message ids of an ack, asserting all were accepted.
pub fn accepted_ids(ack: &pb::BatchAck) -> Vec<u64> {
    ack.results
        .iter()
        .map(|r| {
            assert_eq!(r.reason, pb::RejectReason::RejectNone as i32, "{r:?}");
            r.message_id
        })
        .collect()
}

/// Fetches the gateway's Prometheus text.
pub async fn metrics_text(http: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(http).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

/// Sum of a counter over all label sets in Prometheus text.
pub fn counter_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.starts_with(name)
                && (l[name.len()..].starts_with('{') || l[name.len()..].starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Log output captured from a `fmt` subscriber, as an operator reads it.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock()).into_owned()
    }

    pub fn lines(&self) -> Vec<String> {
        self.text().lines().map(str::to_owned).collect()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures this thread's log lines at `filter` (an `EnvFilter` directive)
/// until the guard drops: run the gateway on a current-thread runtime so its
/// tasks log here.
pub fn capture_logs(filter: &str) -> (Captured, tracing::subscriber::DefaultGuard) {
    // With a single registered dispatcher, tracing-core computes a
    // callsite's interest from the default of whichever thread hits it first:
    // another test's thread would cache "never" for the callsites this test
    // watches. A registered global default (that records nothing) makes it
    // ask every live dispatcher instead.
    static GLOBAL: std::sync::Once = std::sync::Once::new();
    GLOBAL.call_once(|| {
        let _ =
            tracing::subscriber::set_global_default(tracing::subscriber::NoSubscriber::default());
    });
    let out = Captured::default();
    let w = out.clone();
    let sub = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_ansi(false)
        .with_writer(move || w.clone())
        .finish();
    (out, tracing::subscriber::set_default(sub))
}

/// Waits until nothing the gateway holds can still be sent: no live message
/// in the ledger (every admitted message has ended, so whatever it sent is
/// counted by the simulator), none queued in memory, none spilled to disk.
/// An assertion on the simulator's counters after this sees every send,
/// including a duplicate that would have gone out late.
pub async fn drained(gw: &sluice::gateway::Running, timeout: Duration) {
    let g = &gw.gateway;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let (live, queued, spilled) = (
            g.ledger().live(),
            g.scheduler().in_memory(),
            g.spill().len(),
        );
        if live == 0 && queued == 0 && spilled == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the gateway never drained: {live} live, {queued} queued, {spilled} spilled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A TCP port this test holds without listening on it: a socket bound with
/// `SO_REUSEADDR` to `127.0.0.1:0` and never put in the listening state.
///
/// - Connections to it are refused (nobody listens), like a server that is
///   down.
/// - While it is held the kernel gives the port to no other `bind(…:0)` and
///   to no outgoing connection, so no other process can take it (unlike a
///   listener bound, read and dropped).
/// - A listener that sets `SO_REUSEADDR` (tokio's do, so the gateway's and
///   the simulators' do) may still bind and listen on it: a server can come
///   up there later, or a gateway can listen on an address a simulator had
///   to be told before the gateway existed.
pub struct HeldPort {
    _socket: tokio::net::TcpSocket,
    addr: std::net::SocketAddr,
}

impl HeldPort {
    pub fn new() -> HeldPort {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap();
        HeldPort {
            _socket: socket,
            addr,
        }
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }
}

/// The addresses a `sluice run` process reports in its "gateway started"
/// line (logged at info under `sluice::gateway`: give the child a
/// `RUST_LOG` that enables it, e.g. `warn,sluice::gateway=info`).
#[derive(Debug, Clone, Copy)]
pub struct Started {
    pub ingest: std::net::SocketAddr,
    pub http: Option<std::net::SocketAddr>,
    pub public: Option<std::net::SocketAddr>,
    pub api: Option<std::net::SocketAddr>,
}

/// `s` without ANSI escape sequences (the log's colours).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters… final byte in @..=~
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether `line` (ANSI codes removed) is an info line of `sluice::gateway`.
pub fn is_gateway_info(line: &str) -> bool {
    line.contains(" INFO sluice::gateway:")
}

/// The addresses in a "gateway started" log line (ANSI codes removed).
pub fn parse_started(line: &str) -> Option<Started> {
    if !line.contains("gateway started") {
        return None;
    }
    let field = |name: &str| -> Option<&str> {
        let at = line.find(&format!(" {name}="))? + name.len() + 2;
        line[at..].split_whitespace().next()
    };
    let optional = |name: &str| -> Option<std::net::SocketAddr> {
        let v = field(name)?;
        v.strip_prefix("Some(")?.strip_suffix(')')?.parse().ok()
    };
    Some(Started {
        ingest: field("ingest_addr")?.parse().ok()?,
        http: optional("http_addr"),
        public: optional("public_addr"),
        api: optional("api_addr"),
    })
}

/// A child process's stderr, read on a thread: every line (ANSI codes
/// removed) is kept, optionally echoed to this process's stderr, and the
/// addresses of its "gateway started" line are passed on.
pub struct ChildLog {
    pub lines: Arc<Mutex<Vec<String>>>,
    started: Option<tokio::sync::oneshot::Receiver<Started>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl ChildLog {
    pub fn follow(stderr: std::process::ChildStderr, echo: bool) -> ChildLog {
        use std::io::BufRead;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                let line = strip_ansi(&line);
                if echo {
                    eprintln!("{line}");
                }
                if let Some(started) = parse_started(&line)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(started);
                }
                sink.lock().push(line);
            }
        });
        ChildLog {
            lines,
            started: Some(rx),
            reader: Some(reader),
        }
    }

    /// The addresses the child reported once its listeners were bound;
    /// panics when it exits or stays silent for `timeout` first.
    pub async fn started(&mut self, timeout: Duration) -> Started {
        let rx = self.started.take().expect("started() once");
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(s)) => s,
            Ok(Err(_)) => panic!(
                "the gateway exited before it started: {:#?}",
                self.lines.lock()
            ),
            Err(_) => panic!(
                "the gateway did not report its addresses within {timeout:?}: {:#?}",
                self.lines.lock()
            ),
        }
    }

    /// Every line, once the child's stderr has closed (it exited).
    pub fn join(mut self) -> Vec<String> {
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        self.lines.lock().clone()
    }
}

/// A gateway running as a child process (`sluice run`); killed (SIGKILL)
/// and reaped when dropped.
pub struct GatewayProcess(std::process::Child);

impl GatewayProcess {
    /// Its process id.
    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `sluice run --config <config>` and returns it with every address
/// it reported once its listeners were bound (its warnings are echoed).
pub async fn spawn_gateway_started(config: &std::path::Path) -> (GatewayProcess, Started) {
    let (gateway, _, started) = spawn_gateway_logged(config).await;
    (gateway, started)
}

/// [`spawn_gateway_started`], with the child's log kept.
pub async fn spawn_gateway_logged(config: &std::path::Path) -> (GatewayProcess, ChildLog, Started) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", "--config"])
        .arg(config)
        // Warnings as before, plus the "gateway started" line.
        .env("RUST_LOG", "warn,sluice::gateway=info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("gateway starts");
    let mut log = ChildLog::follow(child.stderr.take().unwrap(), true);
    let gateway = GatewayProcess(child);
    let started = log.started(Duration::from_secs(30)).await;
    (gateway, log, started)
}

/// `tests/interop`, the third-party Node.js programs some tests drive, with
/// its npm packages installed (`npm ci` there when `node_modules/<module>`
/// is missing). Callers check first that Node.js and npm are installed.
pub fn node_packages(module: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
    if !dir.join("node_modules").join(module).exists() {
        let status = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("npm runs");
        assert!(status.success(), "npm ci in {} failed", dir.display());
    }
    dir
}
