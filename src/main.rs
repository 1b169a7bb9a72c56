//! The `sluice` command line: parses arguments and hands off to the library.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sluice::ingest::client::Client;
use sluice::ingest::pb;

// mimalloc: glibc's malloc spent a fifth of the demo's CPU in its arenas and
// their locks (perf, docs/PERFORMANCE.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "sluice",
    version,
    about = "High-throughput SMS/MMS send gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the gateway.
    Run {
        /// Configuration file (TOML).
        #[arg(long)]
        config: PathBuf,
    },
    /// Check a configuration file: list every problem (syntax, unknown keys
    /// with suggestions, wrong types, inconsistent values) and exit non-zero
    /// when there is any.
    CheckConfig {
        /// Configuration file (TOML).
        file: PathBuf,
    },
    /// Run a carrier simulator.
    #[command(subcommand)]
    Sim(Sim),
    /// Submit messages to a running gateway.
    Send(SendArgs),
    /// Run the whole pipe on the embedded default and print a summary.
    Demo(sluice::demo::DemoOptions),
    /// Drive load through the ingest protocol and report throughput, latency and counts.
    Bench(sluice::loadgen::BenchOptions),
    /// Opt-out administration through a running gateway's admin API.
    #[command(subcommand)]
    Optout(Optout),
    /// Inspect or repair a stopped gateway's journal.
    #[command(subcommand)]
    Journal(JournalCmd),
    /// Print a message's history (every step with its time) from a running
    /// gateway's admin API: by message id, `--client-ref TENANT:REF`,
    /// `--carrier-id CARRIER:ID`, or `--to +E164 --since 1h`.
    Trace(TraceArgs),
}

#[derive(clap::Args, Debug)]
struct TraceArgs {
    /// The message id (16 hex digits).
    #[arg(conflicts_with_all = ["client_ref", "carrier_id", "to", "campaign"])]
    id: Option<String>,
    /// A campaign's figures instead of a timeline: delivered, clicks,
    /// click-through rate, opt-outs and opt-out rate.
    #[arg(long, value_name = "TENANT:CAMPAIGN", conflicts_with_all = ["client_ref", "carrier_id", "to"])]
    campaign: Option<String>,
    /// The tenant and its client_ref.
    #[arg(long = "client-ref", value_name = "TENANT:REF")]
    client_ref: Option<String>,
    /// The carrier and the message id it gave a part.
    #[arg(long = "carrier-id", value_name = "CARRIER:ID")]
    carrier_id: Option<String>,
    /// The recipient (E.164), with --since.
    #[arg(long, value_name = "+E164")]
    to: Option<String>,
    /// With --to: how far back (humantime, e.g. 1h, 30m).
    #[arg(long, default_value = "24h")]
    since: String,
    /// Print the JSON the admin API answered.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    admin: AdminArgs,
}

#[derive(Subcommand, Debug)]
enum JournalCmd {
    /// Report every segment's valid records and damaged stretches; exits 1
    /// when the journal is damaged (the gateway would refuse to start).
    Check {
        /// Configuration file of the gateway (its data_dir / journal.path).
        #[arg(long)]
        config: PathBuf,
    },
    /// Keep every valid record of a damaged journal: damaged segments are
    /// moved aside (`.damaged`) and rewritten without the damage. Messages
    /// live where the damage starts end `unknown` (never sent twice) unless
    /// `--resend`.
    Salvage {
        /// Configuration file of the gateway (its data_dir / journal.path).
        #[arg(long)]
        config: PathBuf,
        /// Queue messages live at the damage again instead (at-least-once:
        /// one may reach its recipient twice).
        #[arg(long)]
        resend: bool,
    },
}

#[derive(Subcommand, Debug)]
enum Optout {
    /// Import a CSV of numbers (`number[,scope]`) into a scope, all-or-nothing.
    Import {
        /// The CSV file.
        file: PathBuf,
        /// Scope: `global`, `tenant:T` or `program:T:P`.
        #[arg(long, default_value = "global")]
        scope: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Write a scope's numbers as CSV to stdout.
    Export {
        /// Scope.
        #[arg(long, default_value = "global")]
        scope: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Show where a number is suppressed and its audit trail.
    Check {
        /// The number (E.164).
        number: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

#[derive(clap::Args, Debug)]
struct AdminArgs {
    /// The gateway's HTTP endpoint (`https://` when `[http]` has TLS).
    #[arg(long, default_value = "http://127.0.0.1:9700")]
    admin: String,
    /// Admin token, the operator's or a tenant's (or SLUICE_ADMIN_TOKEN).
    #[arg(
        long = "admin-token",
        env = "SLUICE_ADMIN_TOKEN",
        hide_env_values = true
    )]
    token: String,
    #[command(flatten)]
    tls: TlsArgs,
}

/// TLS towards a gateway listener.
#[derive(clap::Args, Debug)]
struct TlsArgs {
    /// CA bundle (PEM) to trust instead of the system's roots.
    #[arg(long = "ca-file")]
    ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for a listener with tls_client_ca_file.
    #[arg(long = "cert", requires = "key")]
    cert: Option<PathBuf>,
    /// Key (PEM) of --cert.
    #[arg(long = "key", requires = "cert")]
    key: Option<PathBuf>,
}

impl TlsArgs {
    fn config(&self) -> anyhow::Result<std::sync::Arc<tokio_rustls::rustls::ClientConfig>> {
        let identity = match (&self.cert, &self.key) {
            (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
            _ => None,
        };
        Ok(std::sync::Arc::new(sluice::tls::client_config(
            self.ca_file.as_deref(),
            identity,
        )?))
    }
}

#[derive(Subcommand, Debug)]
enum Sim {
    /// An SMSC speaking SMPP 3.4.
    Smsc(sluice::sim::smsc::SmscConfig),
    /// An MMSC speaking MM7 (SOAP over HTTP).
    Mmsc(sluice::sim::mmsc::MmscConfig),
}

#[derive(clap::Args, Debug)]
struct SendArgs {
    /// Gateway ingest address.
    #[arg(long, default_value = "127.0.0.1:7700")]
    gateway: String,
    /// Tenant name.
    #[arg(long)]
    tenant: String,
    /// Tenant token (or SLUICE_TOKEN).
    #[arg(long, env = "SLUICE_TOKEN", hide_env_values = true)]
    token: String,
    /// Connect over TLS (implied by --ca-file or --cert).
    #[arg(long)]
    tls: bool,
    #[command(flatten)]
    tls_args: TlsArgs,
    /// Recipient (E.164).
    #[arg(long, conflicts_with = "file")]
    to: Option<String>,
    /// Message text (with --to; optional when --media is given).
    #[arg(long)]
    text: Option<String>,
    /// A media file to attach (repeatable; with --to): uploaded once, and
    /// the message goes as MMS where the recipient is reachable by MMS.
    /// The type comes from the extension (.png, .jpg, .jpeg, .gif, .mp4,
    /// .txt); the gateway checks it against the bytes.
    #[arg(long, requires = "to")]
    media: Vec<PathBuf>,
    /// MMS subject (with --media).
    #[arg(long, requires = "media")]
    subject: Option<String>,
    /// Sender.
    #[arg(long, default_value = "12345")]
    from: String,
    /// A JSON-lines file of messages: {"to", "text", "from"?, "client_ref"?, "campaign_id"?, "priority"?: "transactional"|"marketing", "validity_seconds"?}.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Wait for each message's terminal event and print it as a JSON line.
    #[arg(long)]
    wait: bool,
    /// Give up waiting after this long.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonMessage {
    to: String,
    text: String,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    client_ref: Option<String>,
    #[serde(default)]
    campaign_id: String,
    #[serde(default)]
    priority: Option<String>,
    #[serde(default)]
    validity_seconds: u32,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cli.command {
            Command::Run { config } => run(config).await,
            Command::CheckConfig { file } => check_config(&file),
            Command::Sim(Sim::Smsc(cfg)) => {
                sluice::telemetry::init_logging(sluice::config::LogFormat::Text);
                let smsc = sluice::sim::smsc::start(cfg).await?;
                eprintln!("SMSC simulator listening on {}", smsc.local_addr());
                tokio::select! {
                    _ = smsc.run_until_shutdown() => {}
                    _ = shutdown_signal() => {}
                }
                Ok(())
            }
            Command::Sim(Sim::Mmsc(cfg)) => {
                sluice::telemetry::init_logging(sluice::config::LogFormat::Text);
                let mmsc = sluice::sim::mmsc::start(cfg).await?;
                eprintln!("MMSC simulator listening on {}", mmsc.url());
                tokio::select! {
                    _ = mmsc.run_until_shutdown() => {}
                    _ = shutdown_signal() => {}
                }
                Ok(())
            }
            Command::Optout(cmd) => optout(cmd).await,
            Command::Send(args) => send(args).await,
            Command::Demo(opts) => {
                let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
                let _ = tracing_subscriber::fmt()
                    .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                    .with_writer(std::io::stderr)
                    .try_init();
                let summary = sluice::demo::run(&opts).await?;
                if opts.json {
                    println!("{}", serde_json::to_string(&summary)?);
                } else {
                    print!("{}", summary.render());
                }
                Ok(())
            }
            Command::Bench(opts) => sluice::loadgen::cli(opts).await,
            Command::Journal(cmd) => journal(cmd),
            Command::Trace(args) => trace(args).await,
        }
    })
}

/// `sluice check-config FILE`: every problem at once, exit 1 on any.
fn check_config(path: &std::path::Path) -> anyhow::Result<()> {
    match sluice::config::Config::load(path) {
        Ok(c) => {
            println!(
                "{}: ok ({} tenants, {} SMS carriers, {} MMSCs)",
                path.display(),
                c.tenants.len(),
                c.carriers.len(),
                c.mmsc.len()
            );
            Ok(())
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}

async fn run(path: PathBuf) -> anyhow::Result<()> {
    // The same checks as `sluice check-config`: every problem at once
    // (`env:`/`file:` secrets resolved); on stderr as they are, since the
    // log format is one of the settings.
    let config = match sluice::config::Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    sluice::telemetry::init_logging(config.log_format);
    sluice::telemetry::watch_journal_disk(config.journal_dir());
    // SIGHUP: every TLS listener re-reads its certificate files (each
    // listens for it), and the file's limits, tenants (added, removed, their
    // credentials, sending rights and event destinations), SMS carriers
    // (added, removed, their binds and settings, the routes) and MMSCs
    // (added, removed, their settings and callback checks, the MMS routes)
    // apply now (the rest at the next restart; `sluice::gateway::reload`).
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut running = sluice::gateway::start(config).await?;
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => {
                tracing::info!("shutting down");
                break;
            }
            _ = running.wait() => {
                tracing::error!("a core task ended; shutting down");
                break;
            }
            Some(()) = hangup.recv() => reload(&mut running, &path),
        }
    }
    running.shutdown().await;
    Ok(())
}

/// SIGHUP: reads the configuration file again and applies what can change
/// while running ([`sluice::gateway::reload`]); a file that does not load
/// changes nothing.
fn reload(running: &mut sluice::gateway::Running, path: &std::path::Path) {
    match sluice::config::Config::load(path) {
        Ok(new) => {
            let r = running.reload(&new);
            tracing::info!(
                target: "sluice::gateway::reload",
                applied = %r.applied.join("; "),
                at_restart = %r.at_restart.join(", "),
                "SIGHUP: configuration reloaded (TLS listeners re-read their certificate files)"
            );
            if !r.refused.is_empty() {
                tracing::error!(
                    target: "sluice::gateway::reload",
                    refused = %sluice::model::LogSafe::new(&r.refused.join("; ")),
                    "SIGHUP: not applied (tenants, webhook endpoints, carriers or MMSCs)"
                );
            }
        }
        Err(e) => {
            tracing::error!(target: "sluice::gateway::reload", error = %sluice::model::LogSafe::display(&e), "SIGHUP: the configuration file does not load; nothing changed");
        }
    }
}

fn journal(cmd: JournalCmd) -> anyhow::Result<()> {
    match cmd {
        JournalCmd::Check { config } => {
            let config = sluice::config::Config::load(&config)?;
            let report = sluice::journal::salvage::check(&config.journal_dir())?;
            print!("{report}");
            if report.is_damaged() {
                std::process::exit(1);
            }
            Ok(())
        }
        JournalCmd::Salvage { config, resend } => {
            let config = sluice::config::Config::load(&config)?;
            // Never under a running gateway.
            let _lock = sluice::journal::lock::DataDirLock::acquire(&config.data_dir)?;
            let report = sluice::journal::salvage::salvage(&config.journal_dir(), resend)?;
            print!("{report}");
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler installs");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// The media type a file's extension names (the gateway sniffs the bytes
/// and refuses a mismatch).
fn media_type_of(path: &std::path::Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "mp4" => "video/mp4",
        "txt" => "text/plain",
        _ => "application/octet-stream",
    }
}

async fn send(args: SendArgs) -> anyhow::Result<()> {
    let messages: Vec<pb::SubmitMessage> = match (&args.to, &args.file) {
        (Some(to), None) => {
            anyhow::ensure!(
                args.text.is_some() || !args.media.is_empty(),
                "give --text, --media or both with --to"
            );
            vec![pb::SubmitMessage {
                client_ref: format!("cli-{}", sluice::model::now_ms()),
                to: to.clone(),
                from: args.from.clone(),
                text: args.text.clone().unwrap_or_default(),
                subject: args.subject.clone().unwrap_or_default(),
                ..Default::default()
            }]
        }
        (None, Some(file)) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            let mut out = Vec::new();
            for (n, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let m: JsonMessage = serde_json::from_str(line)
                    .with_context(|| format!("{}:{}", file.display(), n + 1))?;
                out.push(pb::SubmitMessage {
                    client_ref: m
                        .client_ref
                        .unwrap_or_else(|| format!("cli-{}-{}", sluice::model::now_ms(), n + 1)),
                    to: m.to,
                    from: m.from.unwrap_or_else(|| args.from.clone()),
                    text: m.text,
                    campaign_id: m.campaign_id,
                    validity_seconds: m.validity_seconds,
                    priority: match m.priority.as_deref() {
                        Some("transactional") => pb::PriorityClass::PriorityTransactional as i32,
                        Some("marketing") | None => pb::PriorityClass::PriorityMarketing as i32,
                        Some(other) => anyhow::bail!(
                            "{}:{}: priority {other:?} is neither transactional nor marketing",
                            file.display(),
                            n + 1
                        ),
                    },
                    ..Default::default()
                });
            }
            out
        }
        _ => anyhow::bail!("give --to and --text, or --file"),
    };
    let use_tls = args.tls || args.tls_args.ca_file.is_some() || args.tls_args.cert.is_some();
    let (client, mut events) = if use_tls {
        let host = match args.gateway.rsplit_once(':') {
            Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
            None => args.gateway.as_str(),
        };
        Client::connect_tls(
            &args.gateway,
            host,
            args.tls_args.config()?,
            &args.tenant,
            &args.token,
        )
        .await?
    } else {
        Client::connect(&args.gateway, &args.tenant, &args.token).await?
    };
    if args.wait {
        // Only this connection's messages: the tenant's stream belongs to
        // its campaign system, which may be subscribed right now.
        client
            .subscribe_scoped(0, pb::SubscribeScope::ScopeConnection)
            .await?;
    }
    let mut messages = messages;
    for path in &args.media {
        let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let declared = media_type_of(path);
        let stored = client
            .put_media(declared, data.into())
            .await
            .with_context(|| format!("uploading {}", path.display()))?;
        eprintln!(
            "{}	uploaded as {} ({}, {} bytes)",
            path.display(),
            stored.media_id,
            stored.content_type,
            stored.size
        );
        messages[0].media.push(stored.media_id);
    }
    let mut waiting = std::collections::HashSet::new();
    let max = client.hello.max_batch_messages.max(1) as usize;
    let mut failed = false;
    for chunk in messages.chunks(max) {
        let ack = client.submit(chunk.to_vec()).await?;
        for r in ack.results {
            if r.reason == pb::RejectReason::RejectNone as i32 {
                println!(
                    "{}\t{:016x}{}",
                    r.client_ref,
                    r.message_id,
                    if r.duplicate { "\tduplicate" } else { "" }
                );
                if !r.duplicate {
                    waiting.insert(r.message_id);
                } else if args.wait {
                    eprintln!(
                        "{}\tduplicate of an earlier submission: its events go where the original's go",
                        r.client_ref
                    );
                }
            } else {
                failed = true;
                let reason = pb::RejectReason::try_from(r.reason)
                    .map(|r| r.as_str_name())
                    .unwrap_or("?");
                eprintln!("{}\trejected {reason}: {}", r.client_ref, r.detail);
            }
        }
    }
    if args.wait {
        let deadline = tokio::time::Instant::now() + args.timeout;
        while !waiting.is_empty() {
            let e = tokio::select! {
                e = events.recv() => match e { Some(e) => e, None => anyhow::bail!("connection closed") },
                _ = tokio::time::sleep_until(deadline) => anyhow::bail!("{} messages without a terminal event after {:?}", waiting.len(), args.timeout),
            };
            // Only events of our own messages are printed and acknowledged;
            // anything else is left unacknowledged and goes back to the
            // tenant's stream when this connection closes.
            if let Some(pb::event::Kind::Delivery(d)) = e.kind {
                let state = pb::DeliveryState::try_from(d.state)
                    .map(|s| s.as_str_name())
                    .unwrap_or("?");
                let terminal = state != "STATE_SUBMITTED";
                if (terminal && waiting.remove(&d.message_id))
                    || (!terminal && waiting.contains(&d.message_id))
                {
                    client.ack(vec![e.event_id]).await?;
                    println!(
                        "{}",
                        serde_json::json!({
                            "message_id": format!("{:016x}", d.message_id),
                            "client_ref": d.client_ref,
                            "state": state.trim_start_matches("STATE_").to_ascii_lowercase(),
                            "reason": d.reason,
                            "error_code": d.error_code,
                            "carrier": d.carrier,
                            "channel": match pb::Channel::try_from(d.channel) {
                                Ok(pb::Channel::MmsUsed) => "mms",
                                Ok(pb::Channel::SmsUsed) => "sms",
                                _ => "",
                            },
                            "segments": d.segments,
                            "at_ms": d.at_ms,
                        })
                    );
                }
            }
        }
        // A round trip: the server has read our acknowledgements before we
        // close (else it would hand those events to the tenant's stream).
        client.ping().await?;
    }
    if failed {
        std::process::exit(2);
    }
    Ok(())
}

/// Percent-encodes a query value.
fn query_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `sluice trace`: a message's history through the admin API.
async fn trace(args: TraceArgs) -> anyhow::Result<()> {
    use hyper::Method;
    if let Some(c) = &args.campaign {
        return campaign(&args, c).await;
    }
    let path = match (&args.id, &args.client_ref, &args.carrier_id, &args.to) {
        (Some(id), None, None, None) => format!("/admin/messages/{}/history", query_value(id)),
        (None, Some(r), None, None) => format!("/admin/history?client_ref={}", query_value(r)),
        (None, None, Some(c), None) => format!("/admin/history?carrier_id={}", query_value(c)),
        (None, None, None, Some(to)) => format!(
            "/admin/history?to={}&since={}",
            query_value(to),
            query_value(&args.since)
        ),
        _ => anyhow::bail!(
            "give one of: a message id, --client-ref TENANT:REF, --carrier-id CARRIER:ID, --to +E164"
        ),
    };
    let (status, body) = sluice::admin::call(
        &args.admin.admin,
        &args.admin.token,
        Some(args.admin.tls.config()?),
        Method::GET,
        &path,
        Default::default(),
        "text/plain",
    )
    .await?;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if !status.is_success() && status != hyper::StatusCode::NOT_FOUND {
        anyhow::bail!(
            "trace refused ({status}): {}",
            v["error"].as_str().unwrap_or("?")
        );
    }
    // One message's route answers the timeline itself; searches a list.
    let v = if v.get("events").is_some() {
        serde_json::json!({ "messages": [v] })
    } else if v.get("messages").is_some() {
        v
    } else {
        serde_json::json!({ "messages": [] })
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", sluice::history::query::render(&v));
    }
    if v["messages"].as_array().is_none_or(|m| m.is_empty()) {
        std::process::exit(1);
    }
    Ok(())
}

/// `sluice trace --campaign TENANT:CAMPAIGN`: the campaign's figures.
async fn campaign(args: &TraceArgs, which: &str) -> anyhow::Result<()> {
    let Some((tenant, id)) = which.split_once(':') else {
        anyhow::bail!("--campaign takes TENANT:CAMPAIGN");
    };
    let path = format!(
        "/admin/campaigns/{}?tenant={}",
        query_value(id),
        query_value(tenant)
    );
    let (status, body) = sluice::admin::call(
        &args.admin.admin,
        &args.admin.token,
        Some(args.admin.tls.config()?),
        hyper::Method::GET,
        &path,
        Default::default(),
        "text/plain",
    )
    .await?;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if !status.is_success() {
        anyhow::bail!(
            "campaign refused ({status}): {}",
            v["error"].as_str().unwrap_or("?")
        );
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let rate = |key: &str| {
        v[key]
            .as_f64()
            .map_or_else(|| "-".to_owned(), |r| format!("{:.1}%", r * 100.0))
    };
    let n = |key: &str| v[key].as_u64().unwrap_or(0);
    println!(
        "campaign {} of {}: delivered {}, clicks {} by {} recipients (click-through {}), previews {}, opt-outs {} (opt-out rate {})",
        sluice::model::LogSafe::new(id),
        sluice::model::LogSafe::new(tenant),
        n("delivered"),
        n("clicks"),
        n("clickers"),
        rate("click_through_rate"),
        n("previews"),
        n("optouts"),
        rate("optout_rate"),
    );
    Ok(())
}

async fn optout(cmd: Optout) -> anyhow::Result<()> {
    use hyper::Method;
    use sluice::admin::call;
    match cmd {
        Optout::Import { file, scope, admin } => {
            let data =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_message(format!(
                "importing {} ({} bytes) into {scope}",
                file.display(),
                data.len()
            ));
            bar.enable_steady_tick(Duration::from_millis(100));
            let path = format!("/admin/optouts/import?scope={}", scope.replace(':', "%3A"));
            let (status, body) = call(
                &admin.admin,
                &admin.token,
                Some(admin.tls.config()?),
                Method::POST,
                &path,
                data.into(),
                "text/csv",
            )
            .await?;
            bar.finish_and_clear();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            if !status.is_success() {
                anyhow::bail!(
                    "import refused ({status}): {}",
                    v["error"].as_str().unwrap_or("?")
                );
            }
            println!(
                "imported {} numbers into {scope} ({} lines read)",
                v["imported"], v["lines"]
            );
            let bad = v["bad"].as_u64().unwrap_or(0);
            if bad > 0 {
                eprintln!("{bad} bad rows (skipped):");
                for b in v["bad_rows"].as_array().into_iter().flatten() {
                    eprintln!(
                        "  line {}: {} ({})",
                        b["line"],
                        b["raw"].as_str().unwrap_or(""),
                        b["reason"].as_str().unwrap_or("")
                    );
                }
                std::process::exit(2);
            }
            Ok(())
        }
        Optout::Export { scope, admin } => {
            let path = format!("/admin/optouts/export?scope={}", scope.replace(':', "%3A"));
            let (status, body) = call(
                &admin.admin,
                &admin.token,
                Some(admin.tls.config()?),
                Method::GET,
                &path,
                Default::default(),
                "text/plain",
            )
            .await?;
            if !status.is_success() {
                anyhow::bail!(
                    "export refused ({status}): {}",
                    String::from_utf8_lossy(&body)
                );
            }
            use std::io::Write;
            std::io::stdout().write_all(&body)?;
            Ok(())
        }
        Optout::Check { number, admin } => {
            let path = format!("/admin/optouts/{}", number.replace('+', "%2B"));
            let (status, body) = call(
                &admin.admin,
                &admin.token,
                Some(admin.tls.config()?),
                Method::GET,
                &path,
                Default::default(),
                "text/plain",
            )
            .await?;
            if !status.is_success() {
                anyhow::bail!(
                    "check refused ({status}): {}",
                    String::from_utf8_lossy(&body)
                );
            }
            let v: serde_json::Value = serde_json::from_slice(&body)?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(())
        }
    }
}
