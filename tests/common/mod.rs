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
                None => {}
            }
            let _ = acker.ack(vec![e.event_id]).await;
        }
    });
    (client, collected)
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
