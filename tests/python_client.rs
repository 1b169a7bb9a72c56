//! The Python client (`clients/python`, package `sluice-client`) against a
//! real gateway and SMSC simulator, run from here so `cargo test --release`
//! covers it:
//!
//! 1. the committed protobuf stubs are current (`tests/test_generated.py`
//!    regenerates them with the pinned `grpcio-tools`);
//! 2. `examples/send_and_wait.py` sends one message, exits 0 and prints one
//!    JSON line saying `delivered`, and the SMSC got the text once;
//! 3. the pytest suite (`clients/python/tests/`), which finds the gateway,
//!    tenant and token in `SLUICE_GATEWAY`, `SLUICE_TENANT`, `SLUICE_TOKEN`,
//!    and a second gateway that speaks only TLS in `SLUICE_TLS_GATEWAY`
//!    (its CA in `SLUICE_TLS_CA`).
//!
//! For the suite this test also runs a fault proxy in front of the gateway
//! (`SLUICE_PROXY`) and a line-based control port (`SLUICE_CONTROL`), so a
//! Python test can ask for what only the harness can do: `stats` (the
//! simulator's counters and every text with how often it arrived, as JSON),
//! `drained [SECS]` (answers `ok` once nothing the gateway holds can still
//! be sent), `drop-on-ack N` (the proxy swallows the N-th `BatchAck` from now
//! and closes the client's side: the batch is durable but the client never
//! hears so; the gateway's side closes once it has answered every batch it
//! got), `cut-on-batch N` (the N-th `SubmitBatch` from now reaches the
//! gateway, then both sides close at once, as in a network failure, while
//! the gateway is storing it) and `restart` (the gateway shuts down, saying
//! `GoAway`, and starts again on the same address and journal).
//!
//! The Python comes from `SLUICE_PYTHON` or `clients/python/.venv/bin/python`
//! (made by `.ci/run`). Without it the test says it was skipped and passes,
//! unless `SLUICE_REQUIRE_EXTERNAL=1` (`src/external.rs`).

mod common;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use prost::Message as _;
use sluice::config::Config;
use sluice::gateway::Running;
use sluice::ingest::pb;
use sluice::sim::smsc::Smsc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// How long one Python step may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(300);

/// The client's directory.
fn client_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/python")
}

/// Says the test is skipped (or fails it under `SLUICE_REQUIRE_EXTERNAL`),
/// as `sluice::external::require` does for programs on `PATH`.
fn skip(why: &str) {
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    assert!(
        !sluice::external::required(),
        "{test} {why}, and {} is set",
        sluice::external::REQUIRE_ENV
    );
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// The venv's Python with the client, pytest and grpcio-tools installed, or
/// `None` after [`skip`].
fn python() -> Option<PathBuf> {
    let python = std::env::var_os("SLUICE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| client_dir().join(".venv/bin/python"));
    let how = format!(
        "{}; install: {}",
        sluice::external::PYTHON3.unlocks,
        sluice::external::PYTHON3.install
    );
    if !python.exists() {
        skip(&format!(
            "needs the Python client's venv {} (or SLUICE_PYTHON) ({how}), not found",
            python.display()
        ));
        return None;
    }
    let probe = std::process::Command::new(&python)
        .args(["-c", "import sluice_client, pytest, grpc_tools"])
        .stdin(Stdio::null())
        .output();
    match probe {
        Ok(o) if o.status.success() => Some(python),
        Ok(o) => {
            skip(&format!(
                "needs sluice_client, pytest and grpc_tools in {} ({how}): {}",
                python.display(),
                String::from_utf8_lossy(&o.stderr).trim()
            ));
            None
        }
        Err(e) => {
            skip(&format!("cannot run {} ({how}): {e}", python.display()));
            None
        }
    }
}

/// Runs `python args…` in the client's directory with `env`; returns
/// (success, stdout, stderr).
async fn run_python(
    python: &Path,
    args: &[&str],
    env: &[(&str, String)],
) -> (bool, String, String) {
    let mut cmd = tokio::process::Command::new(python);
    cmd.args(args)
        .current_dir(client_dir())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(STEP_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("python {args:?} ran past {STEP_TIMEOUT:?}"))
        .expect("python starts");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// === the harness the Python tests drive ===

/// The gateway (swapped on `restart`), the simulator and the fault proxy.
struct Harness {
    cfg: Config,
    gateway: tokio::sync::Mutex<Option<Running>>,
    smsc: Smsc,
    /// The proxy's armed fault: frames still to count before it fires (0:
    /// off), and which.
    fault: parking_lot::Mutex<(u64, Fault)>,
    /// Connections the proxy dropped.
    drops: AtomicU64,
}

impl Harness {
    async fn start() -> (Arc<Harness>, SocketAddr, tempfile::TempDir) {
        let smsc = smsc(|_| {}).await;
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path(), &smsc);
        // Small limits, so the client has to split batches, wait for
        // credits and upload media in chunks.
        cfg.ingest.max_frame_bytes = 16 * 1024;
        cfg.ingest.max_batch_messages = 100;
        cfg.ingest.initial_credits = 250;
        let gw = sluice::gateway::start(cfg.clone()).await.unwrap();
        let addr = gw.ingest_addr;
        // A restart listens where the first gateway did.
        cfg.ingest.listen = addr;
        let h = Arc::new(Harness {
            cfg,
            gateway: tokio::sync::Mutex::new(Some(gw)),
            smsc,
            fault: parking_lot::Mutex::new((0, Fault::DropOnAck)),
            drops: AtomicU64::new(0),
        });
        (h, addr, dir)
    }

    /// `stats`: the simulator's counters and texts, as one JSON line.
    fn stats(&self) -> String {
        let s = self.smsc.stats();
        let texts: Vec<_> = self
            .smsc
            .texts()
            .into_iter()
            .map(|(_, to, text, n)| serde_json::json!([to, text, n]))
            .collect();
        serde_json::json!({
            "messages": s.messages,
            "duplicates": s.duplicates,
            "texts": texts,
            "proxy_drops": self.drops.load(Ordering::SeqCst),
        })
        .to_string()
    }

    /// `drained [SECS]`: waits (60 s at most, or SECS) until nothing the
    /// gateway holds can still be sent.
    async fn drained(&self, secs: u64) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            {
                let gw = self.gateway.lock().await;
                let g = &gw.as_ref().expect("a gateway runs").gateway;
                let (live, queued, spilled) = (
                    g.ledger().live(),
                    g.scheduler().in_memory(),
                    g.spill().len(),
                );
                if live == 0 && queued == 0 && spilled == 0 {
                    return "ok".into();
                }
                if tokio::time::Instant::now() >= deadline {
                    return format!("timeout: {live} live, {queued} queued, {spilled} spilled");
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `restart`: shutdown (GoAway to every client), then a new gateway on
    /// the same address and data directory.
    async fn restart(&self) -> String {
        let mut slot = self.gateway.lock().await;
        if let Some(gw) = slot.take() {
            gw.shutdown().await;
        }
        match sluice::gateway::start(self.cfg.clone()).await {
            Ok(gw) => {
                *slot = Some(gw);
                "ok".into()
            }
            Err(e) => format!("restart failed: {e:#}"),
        }
    }

    /// Serves the control port: one command per line, one answer line.
    async fn control(self: Arc<Self>, listener: TcpListener) {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let h = self.clone();
            tokio::spawn(async move {
                let (rd, mut wr) = stream.into_split();
                let mut lines = BufReader::new(rd).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut words = line.split_whitespace();
                    let answer = match (words.next(), words.next()) {
                        (Some("stats"), None) => h.stats(),
                        (Some("drained"), None) => h.drained(60).await,
                        (Some("drained"), Some(secs)) => match secs.parse() {
                            Ok(secs) => h.drained(secs).await,
                            Err(_) => format!("bad seconds {secs:?}"),
                        },
                        (Some("restart"), None) => h.restart().await,
                        (Some(cmd @ ("drop-on-ack" | "cut-on-batch")), Some(n)) => {
                            match n.parse::<u64>() {
                                Ok(n) if n > 0 => {
                                    let kind = if cmd == "drop-on-ack" {
                                        Fault::DropOnAck
                                    } else {
                                        Fault::CutOnBatch
                                    };
                                    *h.fault.lock() = (n, kind);
                                    "ok".into()
                                }
                                _ => format!("bad count {n:?}"),
                            }
                        }
                        _ => format!("unknown command {line:?}"),
                    };
                    if wr
                        .write_all(format!("{answer}\n").as_bytes())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    }

    /// Serves the fault proxy in front of the gateway's ingest address.
    async fn proxy(self: Arc<Self>, listener: TcpListener, upstream: SocketAddr) {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let h = self.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    return; // the client sees the close, as with the gateway down
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let count = Counts::default();
                // Whichever direction ends first ends both.
                let swallowed_ack = tokio::select! {
                    _ = h.client_to_server(&mut cr, &mut sw, &count) => false,
                    swallowed = h.server_to_client(&mut sr, &mut cw, &count) => swallowed,
                };
                drop((cr, cw));
                if swallowed_ack && !count.all_answered() {
                    // `drop-on-ack`: the client's side is closed; the
                    // gateway's closes once it has answered every batch it
                    // was sent (bounded).
                    let mut sink = tokio::io::sink();
                    let answered = relay(&mut sr, &mut sink, |f| {
                        count.note_answer(f);
                        if count.all_answered() {
                            Step::End
                        } else {
                            Step::Forward
                        }
                    });
                    let _ = tokio::time::timeout(Duration::from_secs(10), answered).await;
                }
            });
        }
    }

    /// Relays frames from the client until it closes, or until the
    /// SubmitBatch that `cut-on-batch` names has gone to the gateway.
    async fn client_to_server(
        &self,
        from: &mut tokio::net::tcp::OwnedReadHalf,
        to: &mut tokio::net::tcp::OwnedWriteHalf,
        count: &Counts,
    ) {
        let _ = relay(from, to, |f| {
            if !matches!(f, pb::frame::Body::SubmitBatch(_)) {
                return Step::Forward;
            }
            count.sent.fetch_add(1, Ordering::SeqCst);
            if self.fault_fires(Fault::CutOnBatch) {
                Step::ForwardThenEnd
            } else {
                Step::Forward
            }
        })
        .await;
    }

    /// Relays frames from the gateway until it closes, or until the
    /// BatchAck that `drop-on-ack` names, which is swallowed (then true).
    async fn server_to_client(
        &self,
        from: &mut tokio::net::tcp::OwnedReadHalf,
        to: &mut tokio::net::tcp::OwnedWriteHalf,
        count: &Counts,
    ) -> bool {
        let mut swallowed = false;
        let _ = relay(from, to, |f| {
            count.note_answer(f);
            if matches!(f, pb::frame::Body::BatchAck(_)) && self.fault_fires(Fault::DropOnAck) {
                swallowed = true;
                Step::End
            } else {
                Step::Forward
            }
        })
        .await;
        swallowed
    }

    /// Counts one frame of `kind` against the armed fault; true when this
    /// is the one it names.
    fn fault_fires(&self, kind: Fault) -> bool {
        let mut fault = self.fault.lock();
        if fault.1 != kind || fault.0 == 0 {
            return false;
        }
        fault.0 -= 1;
        if fault.0 > 0 {
            return false;
        }
        self.drops.fetch_add(1, Ordering::SeqCst);
        true
    }
}

/// The proxy's faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// `drop-on-ack N`: the N-th BatchAck is swallowed and the client's
    /// side closed; the gateway's closes once it has answered every batch
    /// (so the gateway sees a client that left with nothing in flight).
    DropOnAck,
    /// `cut-on-batch N`: the N-th SubmitBatch reaches the gateway, then
    /// both sides close at once, as in a network failure: the gateway sees
    /// the end of the connection while that batch is being stored.
    CutOnBatch,
}

/// What [`relay`] does with a frame.
enum Step {
    /// Copy it and go on.
    Forward,
    /// Copy it, then stop.
    ForwardThenEnd,
    /// Stop without copying it.
    End,
}

/// Batches a proxied connection carried to the gateway, and answers back.
#[derive(Default)]
struct Counts {
    sent: AtomicU64,
    answered: AtomicU64,
}

impl Counts {
    fn note_answer(&self, f: &pb::frame::Body) {
        if matches!(f, pb::frame::Body::BatchAck(_) | pb::frame::Body::Error(_)) {
            self.answered.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn all_answered(&self) -> bool {
        self.answered.load(Ordering::SeqCst) >= self.sent.load(Ordering::SeqCst)
    }
}

/// Copies length-prefixed frames from `from` to `to` as `step` says for
/// each decoded body; ends there, at EOF or on an error.
async fn relay<R, W>(
    from: &mut R,
    to: &mut W,
    mut step: impl FnMut(&pb::frame::Body) -> Step,
) -> std::io::Result<()>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    loop {
        let mut len = [0u8; 4];
        from.read_exact(&mut len).await?;
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        from.read_exact(&mut body).await?;
        let next = match pb::Frame::decode(body.as_slice()) {
            Ok(pb::Frame { body: Some(b), .. }) => step(&b),
            _ => Step::Forward,
        };
        if matches!(next, Step::End) {
            return Ok(());
        }
        to.write_all(&len).await?;
        to.write_all(&body).await?;
        if matches!(next, Step::ForwardThenEnd) {
            to.flush().await?;
            return Ok(());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_against_a_real_gateway() {
    let Some(python) = python() else {
        return;
    };

    // 1. The committed stubs are what the pinned generator makes.
    let (ok, out, err) = run_python(
        &python,
        &[
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_generated.py",
        ],
        &[],
    )
    .await;
    assert!(ok, "the committed protobuf stubs are stale:\n{out}\n{err}");

    let (harness, gateway, _dir) = Harness::start().await;
    let control = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let control_addr = control.local_addr().unwrap();
    tokio::spawn(harness.clone().control(control));
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_addr = proxy.local_addr().unwrap();
    tokio::spawn(harness.clone().proxy(proxy, gateway));

    // 2. The example: one message, one JSON line, exit 0 on delivered.
    let (ok, out, err) = run_python(
        &python,
        &[
            "examples/send_and_wait.py",
            "--gateway",
            &gateway.to_string(),
            "--tenant",
            TENANT,
            "--token",
            TOKEN,
            "--to",
            "+14155550123",
            "--text",
            "hello from python",
        ],
        &[],
    )
    .await;
    assert!(ok, "send_and_wait.py failed:\n{out}\n{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line: {out}\n{err}");
    let event: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(event["state"], "delivered", "{event}");
    assert_eq!(
        event["message_id"].as_str().map(str::len),
        Some(16),
        "{event}"
    );
    let sent: Vec<_> = harness
        .smsc
        .texts()
        .into_iter()
        .filter(|(_, _, text, _)| text == "hello from python")
        .collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].3, 1, "the example's text arrived once");

    // 3. The suite, with a second gateway whose ingest speaks only TLS
    // (the test certificate of tests/data/tls, for 127.0.0.1).
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tls_dir = root.join("tests/data/tls");
    let tls_smsc = smsc(|_| {}).await;
    let tls_data = tempfile::tempdir().unwrap();
    let mut tls_cfg = config(tls_data.path(), &tls_smsc);
    tls_cfg.ingest.tls_cert_file = Some(tls_dir.join("server.pem"));
    tls_cfg.ingest.tls_key_file = Some(tls_dir.join("server.key"));
    let tls_gw = sluice::gateway::start(tls_cfg).await.unwrap();
    let media = root.join("data/demo/sample.gif");
    let env = [
        ("SLUICE_GATEWAY", gateway.to_string()),
        ("SLUICE_PROXY", proxy_addr.to_string()),
        ("SLUICE_CONTROL", control_addr.to_string()),
        ("SLUICE_TENANT", TENANT.to_owned()),
        ("SLUICE_TOKEN", TOKEN.to_owned()),
        ("SLUICE_MEDIA_FILE", media.display().to_string()),
        ("SLUICE_TLS_GATEWAY", tls_gw.ingest_addr.to_string()),
        (
            "SLUICE_TLS_CA",
            tls_dir.join("ca.pem").display().to_string(),
        ),
    ];
    let (ok, out, err) = run_python(
        &python,
        &["-m", "pytest", "-v", "-p", "no:cacheprovider", "tests"],
        &env,
    )
    .await;
    println!("{out}\n{err}");
    assert!(ok, "the Python client's tests failed:\n{out}\n{err}");
    assert!(!out.contains("skipped"), "no test may skip here:\n{out}");

    let gw = harness.gateway.lock().await.take();
    if let Some(gw) = gw {
        gw.shutdown().await;
    }
    tls_gw.shutdown().await;
}
