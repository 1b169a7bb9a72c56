//! Crash safety: the gateway runs as a child process, is killed with SIGKILL
//! mid-stream, and restarts on the same journal. Every acknowledged message
//! must reach exactly one terminal state, none may reach the SMSC twice, and
//! batches resent because their ack never came are deduplicated.

mod common;

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use sluice::ingest::client::Client;
use sluice::ingest::pb;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The gateway process; killed (SIGKILL) and reaped when dropped.
struct Gateway(Child);

impl Gateway {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn_gateway(config: &std::path::Path) -> Gateway {
    Gateway(
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("gateway starts"),
    )
}

async fn connect(addr: &str) -> (Client, tokio::sync::mpsc::Receiver<pb::Event>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match Client::connect(addr, TENANT, TOKEN).await {
            Ok(c) => return c,
            Err(e) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "gateway never came up: {e}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

const TOTAL: usize = 20_000;
const BATCH: usize = 250;

fn batch(k: usize) -> Vec<pb::SubmitMessage> {
    (k * BATCH..(k + 1) * BATCH)
        .map(|i| {
            msg(
                &format!("crash-{i}"),
                &format!("+1416{i:07}"),
                &format!("crash test message {i}"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_and_duplicates_nothing() {
    let smsc = smsc(|c| c.receipt_delay = Duration::from_millis(20)).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg_path = dir.path().join("sluice.toml");
    std::fs::write(
        &cfg_path,
        format!(
            r#"
data_dir = "{data}"
[ingest]
listen = "127.0.0.1:{port}"
[http]
listen = "127.0.0.1:0"
[[tenants]]
name = "{TENANT}"
token = "{TOKEN}"
[[carriers]]
name = "sim"
[[carriers.binds]]
address = "{smsc}"
system_id = "sluice"
password = "pw"
window = 64
count = 2
reconnect_min = "50ms"
reconnect_max = "500ms"
"#,
            data = dir.path().join("data").display(),
            smsc = smsc.local_addr(),
        ),
    )
    .unwrap();
    let addr = format!("127.0.0.1:{port}");

    // Ids acknowledged, per client_ref, across both runs.
    let mut acked: HashMap<String, u64> = HashMap::new();
    let mut acked_batches: HashSet<usize> = HashSet::new();
    let terminal: std::sync::Arc<parking_lot::Mutex<HashMap<u64, HashSet<i32>>>> =
        Default::default();

    let collect = |client: Client, mut events: tokio::sync::mpsc::Receiver<pb::Event>| {
        let terminal = terminal.clone();
        tokio::spawn(async move {
            client.subscribe(0).await.unwrap();
            while let Some(e) = events.recv().await {
                if let Some(pb::event::Kind::Delivery(d)) = e.kind {
                    terminal
                        .lock()
                        .entry(d.message_id)
                        .or_default()
                        .insert(d.state);
                }
                let _ = client.ack(vec![e.event_id]).await;
            }
        })
    };

    // === run 1: submit until SIGKILL ===
    let mut child = spawn_gateway(&cfg_path);
    let (client, events) = connect(&addr).await;
    let (sub, sub_events) = connect(&addr).await;
    let collector = collect(sub, sub_events);
    let _ = events;
    let mut pending = FuturesUnordered::new();
    let mut next = 0;
    let kill_after = TOTAL / BATCH / 2;
    let mut killed = false;
    while next < TOTAL / BATCH || !pending.is_empty() {
        if !killed && next < TOTAL / BATCH && pending.len() < 8 {
            let k = next;
            next += 1;
            match client.send_batch(batch(k)).await {
                Ok(fut) => pending.push(async move { (k, fut.await) }),
                Err(_) => break,
            }
            continue;
        }
        let Some((k, r)) = pending.next().await else {
            break;
        };
        if let Ok(ack) = r {
            for res in &ack.results {
                assert_eq!(res.reason, 0, "{res:?}");
                acked.insert(res.client_ref.clone(), res.message_id);
            }
            acked_batches.insert(k);
        }
        if !killed && acked_batches.len() >= kill_after {
            child.kill(); // SIGKILL
            killed = true;
        }
    }
    assert!(killed, "the gateway was killed mid-stream");
    collector.abort();
    let acked_before = acked.len();
    assert!(acked_before > 0 && acked_before < TOTAL, "{acked_before}");

    // === run 2: restart on the same journal, resend what was not acked ===
    let mut child = spawn_gateway(&cfg_path);
    let (client, _events) = connect(&addr).await;
    let (sub, sub_events) = connect(&addr).await;
    let collector = collect(sub, sub_events);
    // Resend every batch whose ack never came, and one that was acked (as a
    // client unsure of it would): the acked one must come back with its ids.
    let resend: Vec<usize> = (0..TOTAL / BATCH)
        .filter(|k| !acked_batches.contains(k) || *k == 0)
        .collect();
    for k in resend {
        let ack = client.submit(batch(k)).await.unwrap();
        for res in &ack.results {
            assert_eq!(res.reason, 0, "{res:?}");
            if let Some(prev) = acked.get(&res.client_ref) {
                assert_eq!(
                    *prev, res.message_id,
                    "{} changed id after restart",
                    res.client_ref
                );
                assert!(res.duplicate);
            }
            acked.insert(res.client_ref.clone(), res.message_id);
        }
    }
    assert_eq!(acked.len(), TOTAL);
    let ids: HashSet<u64> = acked.values().copied().collect();
    assert_eq!(ids.len(), TOTAL, "distinct ids per client_ref");

    eventually(
        "a terminal event for every acknowledged message",
        Duration::from_secs(120),
        || {
            let t = terminal.lock();
            ids.iter().all(|id| t.contains_key(id))
        },
    )
    .await;
    let t = terminal.lock();
    let mut by_state: HashMap<i32, usize> = HashMap::new();
    for id in &ids {
        let states = &t[id];
        assert_eq!(
            states.len(),
            1,
            "message {id:x} reached several terminal states: {states:?}"
        );
        *by_state.entry(*states.iter().next().unwrap()).or_default() += 1;
    }
    drop(t);
    let delivered = by_state
        .get(&(pb::DeliveryState::StateDelivered as i32))
        .copied()
        .unwrap_or(0);
    let unknown = by_state
        .get(&(pb::DeliveryState::StateUnknown as i32))
        .copied()
        .unwrap_or(0);
    assert_eq!(delivered + unknown, TOTAL, "{by_state:?}");
    let stats = smsc.stats();
    assert_eq!(
        stats.duplicates, 0,
        "a message reached the SMSC twice: {stats:?}"
    );
    // Messages the SMSC took just before the kill, whose answer was lost,
    // are reported unknown: the SMSC count lies between the two.
    assert!(stats.messages as usize >= delivered, "{stats:?}");
    assert!(stats.messages as usize <= delivered + unknown, "{stats:?}");
    eprintln!(
        "crash test: {acked_before} acked before SIGKILL; {delivered} delivered, {unknown} unknown"
    );
    collector.abort();
    child.kill();
}
