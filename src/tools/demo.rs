//! `sluice demo`: a self-contained run of the whole pipe. It starts an SMSC
//! simulator on loopback and the gateway on the embedded default (journal in
//! a temporary directory), then a client that submits a campaign over the
//! real TCP protocol — GSM-7, Unicode and multi-part texts plus a few invalid
//! numbers — and waits for every terminal event. The summary counts only what
//! the client actually received.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::time::Instant;

use crate::config::{BindConfig, BindMode, CarrierConfig, Config, Secret, TenantConfig};
use crate::ingest::client::Client;
use crate::ingest::pb;
use crate::tools::sim::smsc::{self, SmscConfig};

/// Demo options.
#[derive(Clone, Debug, clap::Args)]
pub struct DemoOptions {
    /// Messages to submit.
    #[arg(long, default_value_t = 10_000)]
    pub messages: usize,
    /// Print one JSON object instead of the readable summary.
    #[arg(long)]
    pub json: bool,
    /// Messages per batch.
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
    /// Batches in flight (sent, not yet acknowledged).
    #[arg(long, default_value_t = 4)]
    pub pipeline: usize,
    /// SMPP binds to the simulator.
    #[arg(long, default_value_t = 2)]
    pub binds: u32,
    /// Window per bind.
    #[arg(long, default_value_t = 512)]
    pub window: u32,
    /// Receipt delay at the simulator.
    #[arg(long, default_value = "20ms", value_parser = humantime::parse_duration)]
    pub receipt_delay: Duration,
    /// Outcome mix at the simulator.
    #[arg(long, default_value = "delivered=0.97,undeliverable=0.02,expired=0.01")]
    pub outcomes: String,
    /// Every Nth message is an MMS (an image or an animated GIF); 0 = none.
    /// A quarter of them go to UK numbers, which MMS cannot reach: they fall
    /// back to SMS with a link.
    #[arg(long, default_value_t = 20)]
    pub mms_every: usize,
    /// Give up waiting for events after this long.
    #[arg(long, default_value = "300s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// What the demo measured.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    /// Messages submitted.
    pub submitted: u64,
    /// Messages accepted (durable).
    pub accepted: u64,
    /// Rejections by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Delivered events received.
    pub delivered: u64,
    /// Failed events (carrier failure or refusal) received.
    pub failed: u64,
    /// Expired events received.
    pub expired: u64,
    /// Unknown-outcome events received.
    pub unknown: u64,
    /// Wall time from first submit to last terminal event.
    pub elapsed_s: f64,
    /// Accepted messages per second, end to end.
    pub msgs_per_sec: f64,
    /// Median batch acknowledgement latency.
    pub ack_p50_ms: f64,
    /// 99th percentile batch acknowledgement latency.
    pub ack_p99_ms: f64,
    /// SMS parts the simulator accepted.
    pub smsc_parts: u64,
    /// Complete messages the simulator received.
    pub smsc_messages: u64,
    /// Messages the simulator received more than once.
    pub smsc_duplicates: u64,
    /// Final events of messages that went as MMS.
    pub mms: u64,
    /// Final events of messages that went as SMS (not by fallback).
    pub sms: u64,
    /// Final events of MMS that fell back to SMS.
    pub fallback: u64,
    /// MMS the MMSC simulator accepted.
    pub mmsc_messages: u64,
}

/// The demo's image (PNG) and animated GIF, shipped in the repository.
pub const SAMPLE_PNG: &[u8] = include_bytes!("../../data/demo/sample.png");
/// See [`SAMPLE_PNG`].
pub const SAMPLE_GIF: &[u8] = include_bytes!("../../data/demo/sample.gif");

const TENANT: &str = "demo";
const TOKEN: &str = "demo-token-0001";

/// The text of demo message `i`: a mix of GSM-7, Unicode and multi-part.
pub fn demo_text(i: usize) -> String {
    match i % 10 {
        0..=5 => format!("Hi! Your order #{i} has shipped. Track it: https://t.example/o/{i}"),
        6 | 7 => format!("¡Hola! Tu pedido #{i} está en camino 🚚 — gracias por tu compra"),
        _ => format!(
            "Black Friday starts now for order #{i}: 40% off everything in store and online, \
             free shipping over $50, and early access to our new winter collection. \
             Show this text at checkout or use code BF{i} online. Offer ends Sunday at midnight. \
             Reply STOP to opt out, HELP for help. Msg&data rates may apply."
        ),
    }
}

/// Demo message `i`; every 500th has an invalid number.
pub fn demo_message(run: u64, i: usize) -> pb::SubmitMessage {
    let to = if i % 500 == 499 {
        "+1555".to_owned()
    } else {
        format!("+1415{:07}", i % 10_000_000)
    };
    demo_sms(run, i, to)
}

/// Demo message `i`, an MMS when `media` names uploaded media: every `every`th
/// message, a quarter of those to the UK.
pub fn demo_message_with_media(
    run: u64,
    i: usize,
    every: usize,
    media: &[String],
) -> pb::SubmitMessage {
    if every == 0 || media.is_empty() || !i.is_multiple_of(every) || i % 500 == 499 {
        return demo_message(run, i);
    }
    let k = i / every;
    let to = if k % 4 == 3 {
        format!("+44770090{:04}", k % 10_000)
    } else {
        format!("+1415{:07}", i % 10_000_000)
    };
    let mut m = demo_sms(run, i, to);
    m.text = format!("Black Friday preview #{i}: tap to see what's coming!");
    m.subject = "Black Friday".into();
    m.media = vec![media[k % media.len()].clone()];
    m
}

fn demo_sms(run: u64, i: usize, to: String) -> pb::SubmitMessage {
    pb::SubmitMessage {
        client_ref: format!("demo-{run}-{i}"),
        to,
        from: "12345".into(),
        text: demo_text(i),
        campaign_id: "black-friday".into(),
        priority: if i.is_multiple_of(20) {
            pb::PriorityClass::PriorityTransactional as i32
        } else {
            pb::PriorityClass::PriorityMarketing as i32
        },
        ..Default::default()
    }
}

/// Adds an MMSC (the simulator at `url`) to an embedded configuration, its
/// callbacks received on `callback`.
pub fn with_mmsc(c: &mut Config, url: &str, callback: std::net::SocketAddr) {
    c.mmsc = vec![crate::config::MmscConfig {
        vasp_id: Some("sluice".into()),
        connections: 16,
        timeout: Duration::from_secs(10),
        callback_listen: Some(callback),
        ..crate::config::MmscConfig::new("mmsc-sim", url)
    }];
}

/// The embedded gateway configuration used by the demo and the load tool.
pub fn embedded_config(
    data_dir: &std::path::Path,
    smsc: std::net::SocketAddr,
    binds: u32,
    window: u32,
) -> Config {
    let mut c: Config = toml::from_str("").expect("empty config takes defaults");
    c.data_dir = data_dir.to_owned();
    c.ingest.listen = "127.0.0.1:0".parse().expect("literal");
    c.http.listen = Some("127.0.0.1:0".parse().expect("literal"));
    c.public.listen = Some("127.0.0.1:0".parse().expect("literal"));
    c.tenants = vec![TenantConfig {
        name: TENANT.into(),
        token: Secret::new(TOKEN),
        admin_token: None,
        senders: vec!["12345".into()],
        default_validity: Duration::from_secs(3600),
        ..TenantConfig::default()
    }];
    c.carriers = vec![CarrierConfig {
        name: "sim".into(),
        concat: Default::default(),
        gsm7_packed: false,
        unanswered: Default::default(),
        rate: 0.0,
        count_segments: true,
        failover_after: Duration::from_secs(30),
        removal_linger: Duration::from_secs(60),
        binds: vec![BindConfig {
            address: smsc.to_string(),
            system_id: "sluice".into(),
            password: Secret::new("pw"),
            system_type: String::new(),
            mode: BindMode::Transceiver,
            count: binds,
            window,
            rate: 0,
            tls: false,
            response_timeout: Duration::from_secs(10),
            enquire_link_interval: Duration::from_secs(30),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(2),
            auth_failure_backoff: Duration::from_secs(300),
        }],
    }];
    c
}

/// Runs the demo and returns what it measured.
///
/// # Errors
/// The simulator, gateway or client failed to start.
pub async fn run(opts: &DemoOptions) -> anyhow::Result<Summary> {
    // The simulator is told where to post reports before the gateway (which
    // needs the simulator's URL) exists: a port held here (bound, not
    // listening, address reuse on) until the gateway's callback listener
    // takes it, so nothing else can take it meanwhile.
    let held = tokio::net::TcpSocket::new_v4()?;
    held.set_reuseaddr(true)?;
    held.bind("127.0.0.1:0".parse()?)?;
    let callback = held.local_addr()?;
    let mmsc = crate::tools::sim::mmsc::start(crate::tools::sim::mmsc::MmscConfig {
        listen: "127.0.0.1:0".parse()?,
        callback_url: Some(format!("http://{callback}/mm7")),
        report_delay: opts.receipt_delay,
        report_retry_delay: std::time::Duration::from_millis(200),
        ..crate::tools::sim::mmsc::MmscConfig::default()
    })
    .await?;
    let smsc = smsc::start(SmscConfig {
        listen: "127.0.0.1:0".parse()?,
        accounts: vec![("sluice".into(), "pw".into())],
        receipt_delay: opts.receipt_delay,
        outcomes: opts
            .outcomes
            .parse()
            .map_err(|e| anyhow::anyhow!("--outcomes: {e}"))?,
        count_only: true,
        ..SmscConfig::default()
    })
    .await?;
    let dir = tempfile::tempdir()?;
    let mut config = embedded_config(dir.path(), smsc.local_addr(), opts.binds, opts.window);
    with_mmsc(&mut config, &mmsc.url(), callback);
    let running = crate::gateway::start(config).await?;
    drop(held);
    let addr = running.ingest_addr.to_string();
    let summary = drive(&addr, opts).await;
    let stats = smsc.stats();
    let mmsc_stats = mmsc.stats();
    running.shutdown().await;
    smsc.shutdown();
    mmsc.shutdown();
    let mut summary = summary?;
    summary.smsc_parts = stats.accepted_parts;
    summary.smsc_messages = stats.messages;
    summary.smsc_duplicates = stats.duplicates;
    summary.mmsc_messages = mmsc_stats.accepted;
    Ok(summary)
}

#[derive(Default)]
struct Tally {
    delivered: u64,
    failed: u64,
    expired: u64,
    unknown: u64,
    mms: u64,
    sms: u64,
    fallback: u64,
}

impl Tally {
    fn terminal(&self) -> u64 {
        self.delivered + self.failed + self.expired + self.unknown
    }
}

async fn drive(addr: &str, opts: &DemoOptions) -> anyhow::Result<Summary> {
    let (client, mut events) = Client::connect(addr, TENANT, TOKEN).await?;
    client.subscribe(20_000).await?;
    let media = if opts.mms_every > 0 {
        let png = client
            .put_media("image/png", bytes::Bytes::from_static(SAMPLE_PNG))
            .await?;
        let gif = client
            .put_media("image/gif", bytes::Bytes::from_static(SAMPLE_GIF))
            .await?;
        vec![png.media_id, gif.media_id]
    } else {
        Vec::new()
    };
    let run_id = crate::model::now_ms();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let done = Arc::new(tokio::sync::Notify::new());
    let consumer = {
        let tally = tally.clone();
        let client = client.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut ids = Vec::with_capacity(1024);
            while let Some(e) = events.recv().await {
                ids.push(e.event_id);
                if let Some(pb::event::Kind::Delivery(d)) = e.kind {
                    let mut t = tally.lock();
                    if d.state != pb::DeliveryState::StateSubmitted as i32 {
                        match pb::Channel::try_from(d.channel) {
                            Ok(pb::Channel::MmsUsed) => t.mms += 1,
                            Ok(pb::Channel::SmsUsed)
                                if d.channel_reason.starts_with("fallback") =>
                            {
                                t.fallback += 1
                            }
                            Ok(pb::Channel::SmsUsed) => t.sms += 1,
                            _ => {}
                        }
                    }
                    match pb::DeliveryState::try_from(d.state) {
                        Ok(pb::DeliveryState::StateDelivered) => t.delivered += 1,
                        Ok(pb::DeliveryState::StateExpired) => t.expired += 1,
                        Ok(pb::DeliveryState::StateUnknown) => t.unknown += 1,
                        Ok(pb::DeliveryState::StateSubmitted) => {}
                        _ => t.failed += 1,
                    }
                }
                if ids.len() >= 1000 || events.is_empty() {
                    let _ = client.ack(std::mem::take(&mut ids)).await;
                    done.notify_waiters();
                }
            }
        })
    };

    let bar = if opts.json {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(opts.messages as u64)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} final  {msg}",
        )
        .expect("valid template"),
    );
    let mut ack_hist = hdrhistogram::Histogram::<u64>::new(3)?;
    let mut summary = Summary::default();
    let started = Instant::now();
    let mut pending = FuturesUnordered::new();
    let mut i = 0;
    while i < opts.messages || !pending.is_empty() {
        if i < opts.messages && pending.len() < opts.pipeline.max(1) {
            let n = opts.batch.min(opts.messages - i);
            let batch: Vec<_> = (i..i + n)
                .map(|k| demo_message_with_media(run_id, k, opts.mms_every, &media))
                .collect();
            i += n;
            summary.submitted += n as u64;
            let sent = Instant::now();
            let fut = client.send_batch(batch).await?;
            pending.push(async move { (sent, fut.await) });
            continue;
        }
        if let Some((sent, ack)) = pending.next().await {
            let ack = ack?;
            ack_hist.record(sent.elapsed().as_micros() as u64)?;
            for r in ack.results {
                if r.reason == pb::RejectReason::RejectNone as i32 {
                    summary.accepted += 1;
                } else {
                    let name = pb::RejectReason::try_from(r.reason)
                        .map(|r| r.as_str_name().to_ascii_lowercase())
                        .unwrap_or_else(|_| format!("code_{}", r.reason));
                    *summary.rejected.entry(name).or_default() += 1;
                }
            }
            let t = tally.lock();
            bar.set_position(t.terminal());
            bar.set_message(format!(
                "accepted {}  delivered {}",
                summary.accepted, t.delivered
            ));
        }
    }
    let deadline = started + opts.timeout;
    loop {
        let terminal = tally.lock().terminal();
        bar.set_position(terminal + summary.rejected.values().sum::<u64>());
        if terminal >= summary.accepted || Instant::now() >= deadline {
            break;
        }
        tokio::select! {
            _ = done.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    consumer.abort();
    let t = tally.lock();
    summary.delivered = t.delivered;
    summary.failed = t.failed;
    summary.expired = t.expired;
    summary.unknown = t.unknown;
    summary.mms = t.mms;
    summary.sms = t.sms;
    summary.fallback = t.fallback;
    summary.elapsed_s = elapsed;
    summary.msgs_per_sec = summary.accepted as f64 / elapsed.max(1e-9);
    summary.ack_p50_ms = ack_hist.value_at_quantile(0.5) as f64 / 1000.0;
    summary.ack_p99_ms = ack_hist.value_at_quantile(0.99) as f64 / 1000.0;
    Ok(summary)
}

impl Summary {
    /// A readable report.
    pub fn render(&self) -> String {
        let rejected: u64 = self.rejected.values().sum();
        let mut s = format!(
            "sluice demo: {} messages submitted in {:.2} s\n\
             \x20 accepted   {:>9}   ({:.0} msgs/s end to end)\n\
             \x20 rejected   {:>9}   {:?}\n\
             \x20 delivered  {:>9}\n\
             \x20 failed     {:>9}\n\
             \x20 expired    {:>9}\n\
             \x20 unknown    {:>9}\n\
             \x20 batch ack latency: p50 {:.2} ms, p99 {:.2} ms\n\
             \x20 SMSC simulator: {} parts, {} messages, {} duplicates\n\
             \x20 channels: {} MMS, {} SMS, {} SMS fallback (MMSC simulator took {})\n",
            self.submitted,
            self.elapsed_s,
            self.accepted,
            self.msgs_per_sec,
            rejected,
            self.rejected,
            self.delivered,
            self.failed,
            self.expired,
            self.unknown,
            self.ack_p50_ms,
            self.ack_p99_ms,
            self.smsc_parts,
            self.smsc_messages,
            self.smsc_duplicates,
            self.mms,
            self.sms,
            self.fallback,
            self.mmsc_messages,
        );
        let terminal = self.delivered + self.failed + self.expired + self.unknown;
        if terminal != self.accepted {
            s.push_str(&format!(
                "  WARNING: {} accepted but {} terminal events received\n",
                self.accepted, terminal
            ));
        }
        s
    }
}
