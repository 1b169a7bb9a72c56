//! `sluice bench`: the load tool. It drives messages through the real
//! ingest protocol — against a running gateway (`--gateway`) or
//! self-contained (`--embedded`: the SMSC simulator and the gateway start in
//! this process, as in [`crate::tools::demo`]) — and reports what came back:
//! offered/accepted/rejected counts, terminal events by state, throughput,
//! ack and submit-to-terminal latency (HdrHistogram), carrier throttles, the
//! gateway's CPU and peak RSS, a per-second series (drawn by `--plot`) and a
//! three-way count check: bench vs the gateway's `/metrics` vs the simulator.
//!
//! This module owns the options, the embedded set-up and the run's phases
//! (connect, scrape, send, drain, scrape). The load itself is in `drive`,
//! the message templates in [`mix`], the [`Report`] and its text in
//! `report`, `/metrics` reading in [`prom`], `/proc` reading in [`procfs`]
//! and the chart in [`svg`].
//!
//! # Decisions
//!
//! - **The client side is kept cheap**: messages are stamped from
//!   pre-built templates (a clone plus in-place digits, no formatting); the
//!   tally is locked once per batch ack and once per chunk of events; events
//!   are acknowledged in batches of up to 1024 (or after 2 ms without one).
//! - **Ack latency is recorded per batch** (one sample per BatchAck, from the
//!   moment `send_batch` handed the frame to the connection); submit-to-terminal
//!   latency per message, from the same moment to the terminal event's arrival.
//! - **Gateway counts are deltas** of two scrapes (before the first batch and
//!   after the drain), filtered by tenant, so a long-running gateway (or the
//!   process-wide recorder in tests) does not skew the check. Other traffic of
//!   the same tenant during the run would.
//! - **Under `--rate` a batch is due at `first_seq / rate`** after the start
//!   (over all connections); when the pipeline or credits hold a batch back,
//!   it goes late and the report shows the largest lag. Latency is measured
//!   from the actual send, so it does not include that lag (coordinated
//!   omission: compare offered/s with the target).
//! - **Departure from the style guide's bench layout** (a `publish = false`
//!   crate with a `harness = false` load generator): the tool is a subcommand
//!   of the binary so SREs can run it against a deployed gateway, and
//!   `Cargo.toml` is not ours to change.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::ingest::pb;
use crate::tools::sim::smsc::{self, OutcomeMix, Smsc, SmscConfig};

mod drive;
mod grpc;
mod http;
pub mod mix;
pub mod procfs;
pub mod prom;
mod report;
mod smpp;
pub mod svg;

#[cfg(test)]
mod tests;

pub use mix::{Kind, Mix};
pub use report::{CountCheck, Latency, Load, Report, SecondSample, SimCounts, thousands};

const TARGET: &str = "sluice::loadgen";

/// Gateway counters whose increase the report lists (by label set).
const DIAGNOSTIC_COUNTERS: [&str; 8] = [
    "sluice_smpp_submits_total",
    "sluice_smpp_responses_total",
    "sluice_smpp_disconnects_total",
    "sluice_receipts_total",
    "sluice_receipts_early_total",
    "sluice_receipts_dropped_total",
    "sluice_inbound_dropped_total",
    "sluice_ingest_errors_total",
];

/// Gateway gauges whose value at the end the report lists.
const DIAGNOSTIC_GAUGES: [&str; 3] = [
    "sluice_live_messages",
    "sluice_queue_depth",
    "sluice_events_pending",
];

/// Messages without a terminal event named in the report.
const WAITING_SAMPLE: usize = 10;

/// One message in this many is stamped at the embedded simulator for the
/// latency to the wire (a scan of its text for the sequence number).
pub const WIRE_SAMPLE: u64 = 16;

/// The embedded tenant's SMPP credentials (`--embedded --smpp`).
const EMBEDDED_SMPP: (&str, &str) = ("demo", "demo-pw");

/// Duration of a run given neither `--duration` nor `--messages`.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);

// === impl BenchOptions ===

/// Options of `sluice bench`.
///
/// # Defaults
/// As the `default_value`s below; [`BenchOptions::default`] parses an empty
/// command line, so it matches the CLI. Neither `--embedded` nor `--gateway`
/// is set by default: [`run`] refuses that.
#[derive(Clone, Debug, clap::Args)]
pub struct BenchOptions {
    /// Start the SMSC simulator and the gateway in this process.
    #[arg(long, conflicts_with = "gateway")]
    pub embedded: bool,
    /// Ingest address of a running gateway.
    #[arg(long)]
    pub gateway: Option<String>,
    /// Tenant name (with --gateway).
    #[arg(long, conflicts_with = "embedded")]
    pub tenant: Option<String>,
    /// Tenant token (with --gateway; or SLUICE_TOKEN).
    #[arg(long, env = "SLUICE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The gateway's Prometheus endpoint, e.g. http://127.0.0.1:9700/metrics (with --gateway).
    #[arg(long, conflicts_with = "embedded")]
    pub metrics_url: Option<String>,
    /// The gateway's process id, for CPU and RSS from /proc (with --gateway).
    #[arg(long, conflicts_with = "embedded")]
    pub pid: Option<u32>,
    /// Messages per second over all connections; 0 = as fast as possible.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Stop sending after this long (default 10s when --messages is not given).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Stop sending after this many messages; 0 = no limit.
    #[arg(long, default_value_t = 0)]
    pub messages: u64,
    /// Ingest connections, each with its own client and subscription.
    #[arg(long, default_value_t = 2)]
    pub connections: usize,
    /// Messages per batch (capped at the gateway's max_batch_messages).
    #[arg(long, default_value_t = 200)]
    pub batch: usize,
    /// Batches in flight per connection.
    #[arg(long, default_value_t = 4)]
    pub pipeline: usize,
    /// Submit through the tenants' HTTP/JSON API (`POST /v1/messages`, one
    /// HTTP connection per batch in flight) instead of the framed protocol;
    /// events still arrive over framed subscriptions. With --gateway, give
    /// the API's address with --api.
    #[arg(long)]
    pub http: bool,
    /// The HTTP/JSON API's address, e.g. 127.0.0.1:9703 (with --gateway --http).
    #[arg(long, conflicts_with = "embedded", requires = "http")]
    pub api: Option<std::net::SocketAddr>,
    /// Submit through the gRPC door (`SubmitBatch`, --pipeline calls in
    /// flight per connection) and take events over its `Events` stream,
    /// instead of the framed protocol. With --gateway, give the door's
    /// address with --grpc-addr.
    #[arg(long, conflicts_with = "http")]
    pub grpc: bool,
    /// The gRPC door's address, e.g. 127.0.0.1:9704 (with --gateway --grpc).
    #[arg(long, conflicts_with = "embedded", requires = "grpc")]
    pub grpc_addr: Option<std::net::SocketAddr>,
    /// Submit as an upstream ESME through the SMPP server door (one
    /// transceiver bind per connection, submit_sm per part, --pipeline
    /// batches in flight per bind) and take the receipts as deliver_sm,
    /// instead of the framed protocol. With --gateway, give the door's
    /// address with --smpp-addr and the tenant's SMPP credentials.
    #[arg(long, conflicts_with_all = ["http", "grpc"])]
    pub smpp: bool,
    /// The SMPP server door's address, e.g. 127.0.0.1:2775 (with --gateway --smpp).
    #[arg(long, conflicts_with = "embedded", requires = "smpp")]
    pub smpp_addr: Option<std::net::SocketAddr>,
    /// The tenant's smpp_system_id (with --gateway --smpp).
    #[arg(long, requires = "smpp")]
    pub smpp_system_id: Option<String>,
    /// The tenant's smpp_password (with --gateway --smpp; or SLUICE_SMPP_PASSWORD).
    #[arg(
        long,
        env = "SLUICE_SMPP_PASSWORD",
        hide_env_values = true,
        requires = "smpp"
    )]
    pub smpp_password: Option<String>,
    /// Message mix: gsm7, unicode, multipart (3 parts), invalid (bad number) with whole-number weights.
    #[arg(long, default_value = "gsm7=70,unicode=20,multipart=10")]
    pub mix: Mix,
    /// Simulator: delay before each receipt (with --embedded).
    #[arg(long, default_value = "20ms", value_parser = humantime::parse_duration)]
    pub receipt_delay: Duration,
    /// Simulator: outcome mix (with --embedded).
    #[arg(long, default_value = "delivered=0.97,undeliverable=0.02,expired=0.01")]
    pub outcomes: OutcomeMix,
    /// Simulator: fraction of submit_sm answered ESME_RTHROTTLED (with --embedded).
    #[arg(long, default_value_t = 0.0)]
    pub throttle_fraction: f64,
    /// Simulator: close each connection after every N PDUs; 0 = never (with --embedded).
    #[arg(long, default_value_t = 0)]
    pub disconnect_every: u64,
    /// Gateway: SMPP binds to the simulator (with --embedded).
    #[arg(long, default_value_t = 2)]
    pub binds: u32,
    /// Gateway: window per bind (with --embedded).
    #[arg(long, default_value_t = 512)]
    pub window: u32,
    /// Gateway: run with `[history] enabled = false` (with --embedded), to
    /// measure what keeping every message's history costs.
    #[arg(long)]
    pub no_history: bool,
    /// End every message's text with a link and ask for tracked links
    /// (short links stored durably before the ack), to measure what
    /// tracking costs.
    #[arg(long)]
    pub track_links: bool,
    /// After sending, wait at most this long for the remaining terminal events.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Draw throughput and p99 latency per second as SVG to this file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            options: BenchOptions,
        }
        <Cli as clap::Parser>::parse_from(["bench"]).options
    }
}

impl BenchOptions {
    /// How long to send and how many messages, after defaults.
    fn limits(&self) -> (Option<Duration>, u64) {
        let limit = if self.messages == 0 {
            u64::MAX
        } else {
            self.messages
        };
        match (self.duration, self.messages) {
            (None, 0) => (Some(DEFAULT_DURATION), limit),
            (d, _) => (d, limit),
        }
    }
}

// === impl Target ===

/// Where the load goes and where its effects are read.
pub struct Target {
    /// Ingest address.
    pub ingest: String,
    /// Tenant name.
    pub tenant: String,
    /// Tenant token.
    pub token: String,
    /// The gateway's `/metrics` URL, if known.
    pub metrics_url: Option<String>,
    /// The gateway's process, if known.
    pub process: Option<procfs::Proc>,
    /// The HTTP/JSON API, when batches go through it.
    pub api: Option<std::net::SocketAddr>,
    /// The gRPC door, when batches and events go through it.
    pub grpc: Option<std::net::SocketAddr>,
    /// The SMPP server door and the tenant's SMPP credentials, when
    /// messages and receipts go through it.
    pub smpp: Option<(std::net::SocketAddr, String, String)>,
    /// True when the gateway, the simulator and the client share this process.
    pub embedded: bool,
    /// The simulator, when embedded.
    pub smsc: Option<Smsc>,
}

/// The token is never printed.
impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("ingest", &self.ingest)
            .field("tenant", &self.tenant)
            .field("metrics_url", &self.metrics_url)
            .field("process", &self.process)
            .field("embedded", &self.embedded)
            .finish_non_exhaustive()
    }
}

impl Target {
    /// A running gateway as the options name it.
    ///
    /// # Errors
    /// `--gateway`, `--tenant` or `--token` is missing.
    pub fn remote(opts: &BenchOptions) -> anyhow::Result<Target> {
        let d = BenchOptions::default();
        let embedded_only: Vec<&str> = [
            ("--receipt-delay", opts.receipt_delay != d.receipt_delay),
            ("--outcomes", opts.outcomes != d.outcomes),
            (
                "--throttle-fraction",
                opts.throttle_fraction != d.throttle_fraction,
            ),
            (
                "--disconnect-every",
                opts.disconnect_every != d.disconnect_every,
            ),
            ("--binds", opts.binds != d.binds),
            ("--window", opts.window != d.window),
        ]
        .into_iter()
        .filter_map(|(flag, given)| given.then_some(flag))
        .collect();
        anyhow::ensure!(
            embedded_only.is_empty(),
            "{} only apply with --embedded",
            embedded_only.join(", ")
        );
        let need = |v: &Option<String>, flag: &str| {
            v.clone()
                .ok_or_else(|| anyhow::anyhow!("{flag} is required with --gateway"))
        };
        Ok(Target {
            ingest: opts
                .gateway
                .clone()
                .ok_or_else(|| anyhow::anyhow!("give --embedded or --gateway ADDR"))?,
            tenant: need(&opts.tenant, "--tenant")?,
            token: need(&opts.token, "--token (or SLUICE_TOKEN)")?,
            metrics_url: opts.metrics_url.clone(),
            process: opts.pid.map(procfs::Proc::Pid),
            api: opts.api,
            grpc: opts.grpc_addr,
            smpp: match (opts.smpp_addr, &opts.smpp_system_id, &opts.smpp_password) {
                (Some(a), Some(id), Some(pw)) => Some((a, id.clone(), pw.clone())),
                _ => None,
            },
            embedded: false,
            smsc: None,
        })
    }
}

// === impl Embedded ===

/// The SMSC simulator and a gateway (journal in a temporary directory)
/// running in this process, configured from the options.
#[derive(Debug)]
pub struct Embedded {
    smsc: Smsc,
    running: crate::gateway::Running,
    tenant: String,
    token: String,
    _dir: tempfile::TempDir,
}

impl Embedded {
    /// Starts the simulator and the gateway ([`crate::tools::demo::embedded_config`]).
    ///
    /// # Errors
    /// A listener cannot be bound or the journal cannot be created.
    pub async fn start(opts: &BenchOptions) -> anyhow::Result<Embedded> {
        let smsc = smsc::start(SmscConfig {
            listen: "127.0.0.1:0".parse()?,
            accounts: vec![("sluice".into(), "pw".into())],
            receipt_delay: opts.receipt_delay,
            outcomes: opts.outcomes.clone(),
            throttle_fraction: opts.throttle_fraction,
            disconnect_every: opts.disconnect_every,
            count_only: true,
            stamp_every: WIRE_SAMPLE,
            ..SmscConfig::default()
        })
        .await?;
        let dir = tempfile::tempdir()?;
        let mut config = crate::tools::demo::embedded_config(
            dir.path(),
            smsc.local_addr(),
            opts.binds,
            opts.window,
        );
        if opts.http {
            config.api.listen = Some("127.0.0.1:0".parse()?);
        }
        config.history.enabled = !opts.no_history;
        if opts.grpc {
            config.grpc.listen = Some("127.0.0.1:0".parse()?);
        }
        if opts.smpp {
            config.smpp_server.listen = Some("127.0.0.1:0".parse()?);
            config.smpp_server.max_pending_submits = config
                .smpp_server
                .max_pending_submits
                .max(opts.pipeline * opts.batch * 4);
            // Receipts go to the binds; a window a bulk ESME would use.
            config.smpp_server.window = 256;
            if let Some(t) = config.tenants.first_mut() {
                // Its events go to its binds only, as an SMPP-only
                // tenant's would.
                t.stream_events = false;
                t.smpp_system_id = Some(EMBEDDED_SMPP.0.into());
                t.smpp_password = Some(crate::config::Secret::new(EMBEDDED_SMPP.1));
            }
        }
        let tenant = config
            .tenants
            .first()
            .ok_or_else(|| anyhow::anyhow!("the embedded config has no tenant"))?;
        let (tenant, token) = (tenant.name.clone(), tenant.token.expose().to_owned());
        let running = crate::gateway::start(config).await?;
        Ok(Embedded {
            smsc,
            running,
            tenant,
            token,
            _dir: dir,
        })
    }

    /// The target to run against.
    pub fn target(&self) -> Target {
        Target {
            ingest: self.running.ingest_addr.to_string(),
            tenant: self.tenant.clone(),
            token: self.token.clone(),
            metrics_url: Some(self.metrics_url()),
            process: Some(procfs::Proc::This),
            api: self.running.api_addr,
            grpc: self.running.grpc_addr,
            smpp: self
                .running
                .smpp_server_addr
                .map(|a| (a, EMBEDDED_SMPP.0.to_owned(), EMBEDDED_SMPP.1.to_owned())),
            embedded: true,
            smsc: Some(self.smsc.clone()),
        }
    }

    /// The gateway's `/metrics` URL.
    pub fn metrics_url(&self) -> String {
        match self.running.http_addr {
            Some(a) => format!("http://{a}/metrics"),
            None => String::new(),
        }
    }

    /// The simulator.
    pub fn smsc(&self) -> &Smsc {
        &self.smsc
    }

    /// Bytes of history on disk (its segments under the data directory).
    pub fn history_bytes(&self) -> u64 {
        std::fs::read_dir(self._dir.path().join("history"))
            .map(|d| {
                d.filter_map(|e| e.ok()?.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Stops the gateway, then the simulator.
    pub async fn shutdown(self) {
        self.running.shutdown().await;
        self.smsc.shutdown();
    }
}

// === the run ===

/// Runs a bench as the options say (embedded or against `--gateway`).
///
/// # Errors
/// Bad options, or the simulator, gateway or connections failed to start.
pub async fn run(opts: &BenchOptions) -> anyhow::Result<Report> {
    run_until(opts, CancellationToken::new()).await
}

/// [`run`], stopping early (and reporting) when `stop` is cancelled.
///
/// # Errors
/// As [`run`].
pub async fn run_until(opts: &BenchOptions, stop: CancellationToken) -> anyhow::Result<Report> {
    if opts.embedded {
        let env = Embedded::start(opts).await?;
        let report = run_against(opts, &env.target(), stop).await;
        let history = env.history_bytes();
        if let Ok(r) = &report
            && history > 0
        {
            // Steps dropped because the writer fell behind (never expected).
            let text = crate::telemetry::metrics_handle().render();
            let dropped = text
                .lines()
                .find_map(|l| l.strip_prefix("sluice_history_dropped_total "))
                .unwrap_or("0");
            eprintln!(
                "history: {history} bytes on disk for {} accepted messages ({:.0} bytes per message), {dropped} steps dropped",
                r.accepted,
                history as f64 / r.accepted.max(1) as f64
            );
        }
        env.shutdown().await;
        report
    } else {
        run_against(opts, &Target::remote(opts)?, stop).await
    }
}

/// Drives the load against `target` and reports.
///
/// # Errors
/// A connection could not be opened or subscribed, or the options are
/// inconsistent. Failures during the run (lost connections, Error frames,
/// a failed scrape) are counted in the report instead.
pub async fn run_against(
    opts: &BenchOptions,
    target: &Target,
    stop: CancellationToken,
) -> anyhow::Result<Report> {
    anyhow::ensure!(opts.connections > 0, "--connections must be at least 1");
    let (duration, limit) = opts.limits();
    let grpc_target = match (opts.grpc, target.grpc) {
        (false, _) => None,
        (true, Some(addr)) => Some(grpc::GrpcTarget {
            addr,
            authorization: format!("Bearer {}", target.token)
                .parse()
                .map_err(|_| anyhow::anyhow!("the token cannot go in gRPC metadata"))?,
        }),
        (true, None) => anyhow::bail!("--grpc needs the gRPC door's address (--grpc-addr ADDR)"),
    };
    let smpp_target = match (opts.smpp, &target.smpp) {
        (false, _) => None,
        (true, Some((addr, system_id, password))) => Some(smpp::SmppTarget {
            addr: *addr,
            system_id: system_id.clone(),
            password: password.clone(),
        }),
        (true, None) => anyhow::bail!(
            "--smpp needs the SMPP door's address and the tenant's credentials \
             (--smpp-addr, --smpp-system-id, --smpp-password)"
        ),
    };
    let mut connections = Vec::with_capacity(opts.connections);
    let mut grpc_connections = Vec::new();
    let mut smpp_binds = Vec::new();
    for i in 0..opts.connections {
        if let Some(t) = &smpp_target {
            let b = smpp::bind(t)
                .await
                .map_err(|e| anyhow::anyhow!("SMPP bind {} to {}: {e}", i + 1, t.addr))?;
            smpp_binds.push(b);
            continue;
        }
        if let Some(g) = &grpc_target {
            let opened = async {
                let mut client = grpc::connect(g).await?;
                let sub = grpc::subscribe(&mut client, g).await?;
                Ok::<_, String>((client, sub))
            };
            let c = opened
                .await
                .map_err(|e| anyhow::anyhow!("gRPC connection {} to {}: {e}", i + 1, g.addr))?;
            grpc_connections.push(c);
            continue;
        }
        let c = drive::connect(&target.ingest, &target.tenant, &target.token)
            .await
            .map_err(|e| anyhow::anyhow!("connection {} to {}: {e}", i + 1, target.ingest))?;
        connections.push(c);
    }
    let mut notes = Vec::new();
    let scrape = |when: &'static str| async move {
        match &target.metrics_url {
            Some(url) => match prom::fetch(url).await {
                Ok(text) => Ok(Some(prom::Scrape::parse(&text))),
                Err(e) => Err(format!("{when} scrape failed: {e}")),
            },
            None => Ok(None),
        }
    };
    let before = scrape("first").await.unwrap_or_else(|e| {
        notes.push(e);
        None
    });
    let sim_before = target.smsc.as_ref().map(Smsc::stats);
    let proc_before = target.process.map(|p| p.read());
    let bench_before = (!target.embedded).then(|| procfs::Proc::This.read());

    let start = Instant::now();
    let run_id = format!(
        "{:x}{:x}",
        crate::model::now_ms(),
        std::process::id() & 0xffff
    );
    let plan = drive::Plan::new(
        start,
        limit,
        duration.map(|d| start + d),
        opts.rate,
        opts.batch,
        opts.pipeline,
        mix::Templates::new(&opts.mix, &run_id).tracking_links(opts.track_links),
        stop.clone(),
    );
    let shared = Arc::new(drive::Shared::new(plan));
    let done = CancellationToken::new();
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    let api = match (opts.http, target.api) {
        (false, _) => None,
        (true, Some(addr)) => {
            notes.push(format!(
                "batches posted to the HTTP/JSON API at {addr} ({} HTTP connections)",
                opts.connections * opts.pipeline.max(1)
            ));
            Some(http::ApiTarget {
                addr,
                authorization: hyper::header::HeaderValue::from_str(&format!(
                    "Bearer {}",
                    target.token
                ))
                .map_err(|_| anyhow::anyhow!("the token cannot go in an HTTP header"))?,
            })
        }
        (true, None) => anyhow::bail!("--http needs the API's address (--api ADDR)"),
    };
    if let Some(g) = &grpc_target {
        notes.push(format!(
            "batches and events through the gRPC door at {} ({} HTTP/2 connections, {} calls in flight each)",
            g.addr,
            opts.connections,
            opts.pipeline.max(1)
        ));
        for (client, sub) in grpc_connections {
            for _ in 0..opts.pipeline.max(1) {
                senders.push(tokio::spawn(grpc::sender(
                    shared.clone(),
                    client.clone(),
                    g.clone(),
                )));
            }
            receivers.push(tokio::spawn(grpc::receiver(
                shared.clone(),
                sub,
                done.clone(),
            )));
        }
    }
    if let Some(t) = &smpp_target {
        notes.push(format!(
            "submit_sm and receipts through the SMPP server at {} ({} transceiver binds, {} batches in flight each)",
            t.addr,
            opts.connections,
            opts.pipeline.max(1)
        ));
        for io in smpp_binds {
            let (sent, sent_rx) = tokio::sync::oneshot::channel();
            senders.push(tokio::spawn(async move {
                let _ = sent_rx.await;
            }));
            receivers.push(tokio::spawn(smpp::connection(
                shared.clone(),
                io,
                sent,
                done.clone(),
            )));
        }
    }
    for (client, events) in connections {
        match &api {
            Some(api) => {
                let max_batch = client.hello.max_batch_messages.max(1) as usize;
                for _ in 0..opts.pipeline.max(1) {
                    senders.push(tokio::spawn(http::sender(
                        shared.clone(),
                        api.clone(),
                        max_batch,
                    )));
                }
            }
            None => senders.push(tokio::spawn(drive::sender(shared.clone(), client.clone()))),
        }
        receivers.push(tokio::spawn(drive::receiver(
            shared.clone(),
            client,
            events,
            done.clone(),
        )));
    }
    let progress = Progress::start(shared.clone(), opts.quiet);
    for s in senders {
        let _ = s.await;
    }
    let sent_at = Instant::now();
    let proc_sent = target.process.map(|p| p.read());
    progress.phase("draining");
    let deadline = sent_at + opts.drain_timeout;
    let mut drained = true;
    while !shared.settled() {
        if Instant::now() >= deadline || stop.is_cancelled() {
            drained = false;
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            _ = stop.cancelled() => {}
        }
    }
    let ended = Instant::now();
    done.cancel();
    for r in receivers {
        let _ = r.await;
    }
    progress.finish();
    let proc_after = target.process.map(|p| p.read());
    let bench_after = (!target.embedded).then(|| procfs::Proc::This.read());
    let sim_after = target.smsc.as_ref().map(Smsc::stats);
    let after = scrape("last").await.unwrap_or_else(|e| {
        notes.push(e);
        None
    });

    let wall_s = (ended - start).as_secs_f64();
    let tally = shared.tally.lock();
    let send_s = if tally.last_ack_us > 0 {
        tally.last_ack_us as f64 / 1e6
    } else {
        (sent_at - start).as_secs_f64()
    };
    let elapsed_s = (tally.last_terminal_us.max(tally.last_ack_us) as f64 / 1e6).max(1e-6);
    let offered = shared.live.offered.load(Ordering::Relaxed);
    let terminal: BTreeMap<String, u64> = tally
        .terminal
        .iter()
        .map(|(s, n)| (state_name(*s), *n))
        .collect();
    let terminal_total = terminal.values().sum();
    let rejected: BTreeMap<String, u64> = tally
        .rejected
        .iter()
        .map(|(r, n)| (reason_name(*r), *n))
        .collect();

    let gateway_process = match (proc_before, proc_after) {
        (Some(Ok(b)), Some(Ok(a))) => {
            let mut u = procfs::Usage::between(process_name(target.process), &b, &a, wall_s);
            if let Some(Ok(m)) = proc_sent {
                let send_wall = (sent_at - start).as_secs_f64().max(1e-9);
                u.cores_while_sending =
                    Some(((m.user_s + m.sys_s) - (b.user_s + b.sys_s)) / send_wall);
            }
            Some(u)
        }
        (Some(Err(e)), _) | (_, Some(Err(e))) => {
            notes.push(format!("gateway process not readable: {e}"));
            None
        }
        _ => None,
    };
    let bench_process = match (bench_before, bench_after) {
        (Some(Ok(b)), Some(Ok(a))) => Some(procfs::Usage::between(
            process_name(Some(procfs::Proc::This)),
            &b,
            &a,
            wall_s,
        )),
        _ => None,
    };
    let gateway_process_note = if target.embedded {
        "embedded: the SMSC simulator and the bench client run in the same process, so CPU and RSS include them".to_owned()
    } else if target.process.is_some() {
        "the gateway process only".to_owned()
    } else {
        "not measured (give --pid)".to_owned()
    };
    let tenant = [("tenant", target.tenant.as_str())];
    let (gateway_accepted, gateway_final, carrier_throttles) = match (&before, &after) {
        (Some(b), Some(a)) => {
            let delta = |name: &str, filter: &[(&str, &str)]| {
                (a.sum(name, filter) - b.sum(name, filter)).max(0.0).round() as u64
            };
            let fb = b.sum_by("sluice_messages_final_total", "state", &tenant);
            let fin: BTreeMap<String, u64> = a
                .sum_by("sluice_messages_final_total", "state", &tenant)
                .into_iter()
                .map(|(s, v)| {
                    let d = (v - fb.get(&s).copied().unwrap_or(0.0)).max(0.0).round() as u64;
                    (s, d)
                })
                .filter(|(_, d)| *d > 0)
                .collect();
            (
                Some(delta("sluice_messages_accepted_total", &tenant)),
                Some(fin),
                Some(delta("sluice_smpp_throttled_total", &[])),
            )
        }
        _ => (None, None, None),
    };
    let gateway_counters = match (&before, &after) {
        (Some(b), Some(a)) => diagnostics(b, a),
        _ => BTreeMap::new(),
    };
    let simulator = match (sim_before, sim_after) {
        (Some(b), Some(a)) => Some(SimCounts::between(&b, &a)),
        _ => None,
    };
    let sim = simulator.as_ref().map(|s| (s.messages, s.duplicates));
    let counts = CountCheck::new(
        tally.accepted,
        &terminal,
        gateway_accepted,
        gateway_final,
        sim,
        target.metrics_url.is_some(),
    );
    let without_terminal_sample: Vec<String> = tally
        .waiting_sample(WAITING_SAMPLE)
        .into_iter()
        .map(|(id, seq)| {
            format!(
                "{} (seq {seq}, {})",
                crate::model::MessageId(id),
                shared.plan.templates.kind(seq).name()
            )
        })
        .collect();
    if !drained {
        notes.push(format!(
            "{} accepted messages had no terminal event {:.1} s after sending ended{}: {}",
            tally.still_waiting(),
            (ended - sent_at).as_secs_f64(),
            if stop.is_cancelled() {
                " (interrupted)"
            } else {
                " (--drain-timeout)"
            },
            without_terminal_sample.join(", ")
        ));
    }
    let series = tally
        .series
        .iter()
        .enumerate()
        .map(|(i, s)| SecondSample {
            t_s: i as u64,
            accepted: s.accepted,
            terminal: s.terminal,
            ack_p99_ms: s.ack.as_ref().map(|h| ms(h.value_at_quantile(0.99))),
            terminal_p99_ms: s.term.as_ref().map(|h| ms(h.value_at_quantile(0.99))),
        })
        .collect();
    let report = Report {
        mode: if target.embedded {
            "embedded"
        } else {
            "remote"
        }
        .to_owned(),
        target: target.ingest.clone(),
        load: Load {
            rate: opts.rate,
            connections: opts.connections,
            batch: opts.batch,
            pipeline: opts.pipeline,
            mix: opts.mix.to_string(),
            duration_s: duration.map(|d| d.as_secs_f64()),
            messages: (opts.messages > 0).then_some(opts.messages),
        },
        interrupted: stop.is_cancelled(),
        send_s,
        elapsed_s,
        wall_s,
        offered,
        offered_per_s: offered as f64 / send_s.max(1e-6),
        accepted: tally.accepted,
        duplicate_accepts: tally.duplicate_accepts,
        rejected,
        lost: tally.lost,
        terminal,
        terminal_total,
        without_terminal: tally.still_waiting(),
        without_terminal_sample,
        unmatched_events: tally.unmatched_events(),
        submitted_events: tally.submitted_events,
        accepted_per_s: tally.accepted as f64 / send_s.max(1e-6),
        terminal_per_s: terminal_total as f64 / elapsed_s.max(1e-6),
        max_schedule_lag_ms: (opts.rate > 0).then(|| ms(tally.max_lag_us)),
        ack_latency: Latency::from_histogram("per batch", &tally.ack_us),
        terminal_latency: Latency::from_histogram("per message", &tally.term_us),
        wire_latency: target
            .smsc
            .as_ref()
            .map(|smsc| wire_latency(&shared.plan, &tally.batches, &smsc.stamps())),
        carrier_throttles,
        gateway_counters,
        simulator,
        gateway_process,
        gateway_process_note,
        bench_process,
        counts,
        errors: tally.errors,
        error_samples: tally.error_samples.clone(),
        notes,
        series,
    };
    drop(tally);
    tracing::debug!(target: TARGET, accepted = report.accepted, terminal = report.terminal_total, "bench finished");
    Ok(report)
}

/// `sluice bench`: runs, prints the report, writes `--json` and `--plot`.
/// The first Ctrl-C stops sending and reports what was measured.
///
/// # Errors
/// As [`run`], or a file cannot be written.
pub async fn cli(opts: BenchOptions) -> anyhow::Result<()> {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .try_init();
    let stop = CancellationToken::new();
    let on_signal = stop.clone();
    let signal = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("interrupted: stopping and reporting");
            on_signal.cancel();
        }
    });
    let report = run_until(&opts, stop).await;
    signal.abort();
    let report = report?;
    print!("{}", report.render());
    report.write_files(&opts)
}

// === impl Progress ===

/// The live progress line on stderr: rates over the last second, totals,
/// errors.
struct Progress {
    bar: indicatif::ProgressBar,
    phase: Arc<parking_lot::Mutex<&'static str>>,
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    fn start(shared: Arc<drive::Shared>, quiet: bool) -> Progress {
        let bar = if quiet {
            indicatif::ProgressBar::hidden()
        } else {
            indicatif::ProgressBar::new_spinner()
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                .expect("valid template"),
        );
        let phase = Arc::new(parking_lot::Mutex::new("sending"));
        let task = {
            let bar = bar.clone();
            let phase = phase.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let (mut last_acc, mut last_term) = (0u64, 0u64);
                let mut last = Instant::now();
                loop {
                    tick.tick().await;
                    let l = &shared.live;
                    let acc = l.accepted.load(Ordering::Relaxed);
                    let term = l.terminal.load(Ordering::Relaxed);
                    let dt = last.elapsed().as_secs_f64().max(1e-3);
                    last = Instant::now();
                    bar.set_message(format!(
                        "{} | {:>7}/s accepted {:>7}/s terminal (last 1 s) | offered {} accepted {} rejected {} terminal {} | errors {}",
                        phase.lock(),
                        thousands((acc.saturating_sub(last_acc) as f64 / dt) as u64),
                        thousands((term.saturating_sub(last_term) as f64 / dt) as u64),
                        thousands(l.offered.load(Ordering::Relaxed)),
                        thousands(acc),
                        thousands(l.rejected.load(Ordering::Relaxed)),
                        thousands(term),
                        l.errors.load(Ordering::Relaxed),
                    ));
                    bar.tick();
                    (last_acc, last_term) = (acc, term);
                }
            })
        };
        Progress { bar, phase, task }
    }

    fn phase(&self, phase: &'static str) {
        *self.phase.lock() = phase;
    }

    fn finish(self) {
        self.task.abort();
        self.bar.finish_and_clear();
    }
}

// === helpers ===

/// Send → arrival at the simulator of each stamped message (`stamps`:
/// sequence number and arrival), its send time found among the acknowledged
/// `batches` (first sequence number, send time µs).
fn wire_latency(plan: &drive::Plan, batches: &[(u64, u64)], stamps: &[(u64, Instant)]) -> Latency {
    let mut batches = batches.to_vec();
    batches.sort_unstable();
    let mut h = drive::histogram();
    for &(seq, at) in stamps {
        let i = batches.partition_point(|&(first, _)| first <= seq);
        let Some(&(first, sent_us)) = i.checked_sub(1).and_then(|i| batches.get(i)) else {
            continue;
        };
        if seq - first >= plan.batch as u64 {
            continue;
        }
        h.saturating_record(plan.us(at).saturating_sub(sent_us).max(1));
    }
    Latency::from_histogram(&format!("1 in {WIRE_SAMPLE} messages"), &h)
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn process_name(p: Option<procfs::Proc>) -> String {
    match p {
        Some(procfs::Proc::This) => format!("this process (pid {})", std::process::id()),
        Some(procfs::Proc::Pid(p)) => format!("pid {p}"),
        None => "unknown".to_owned(),
    }
}

/// `delivered`, `failed`, … for a `pb::DeliveryState` value.
fn state_name(v: i32) -> String {
    match pb::DeliveryState::try_from(v) {
        Ok(s) => s
            .as_str_name()
            .trim_start_matches("STATE_")
            .to_ascii_lowercase(),
        Err(_) => format!("state_{v}"),
    }
}

/// `invalid_number`, … for a `pb::RejectReason` value.
fn reason_name(v: i32) -> String {
    match pb::RejectReason::try_from(v) {
        Ok(r) => r.as_str_name().to_ascii_lowercase(),
        Err(_) => format!("reason_{v}"),
    }
}

/// Increases of [`DIAGNOSTIC_COUNTERS`] per label set (non-zero only) and
/// [`DIAGNOSTIC_GAUGES`] at the end.
fn diagnostics(before: &prom::Scrape, after: &prom::Scrape) -> BTreeMap<String, f64> {
    let key = |s: &prom::Sample| {
        if s.labels.is_empty() {
            return s.name.clone();
        }
        let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{}{{{}}}", s.name, labels.join(","))
    };
    let mut out = BTreeMap::new();
    for s in &after.samples {
        if DIAGNOSTIC_COUNTERS.contains(&s.name.as_str()) {
            let was = before
                .samples
                .iter()
                .find(|b| b.name == s.name && b.labels == s.labels)
                .map_or(0.0, |b| b.value);
            if s.value - was > 0.0 {
                out.insert(key(s), s.value - was);
            }
        } else if DIAGNOSTIC_GAUGES.contains(&s.name.as_str()) {
            out.insert(key(s), s.value);
        }
    }
    out
}
