//! A restart resumes (guarantee 8): a backlog that builds while the SMSC is
//! away drains once it comes back, whatever the mix of part counts against
//! the carrier's part permits.

mod common;

use std::time::Duration;

use common::*;
use sluice::sim::smsc;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A two-part GSM-7 text (161..=306 characters).
fn two_part_text(i: usize) -> String {
    format!("{i:05} {}", "backlog ".repeat(25))
}

/// One bind with a window of 8 has 255 part permits; a backlog of 300
/// two-part texts used to make the dispatcher ask for 256 permits at once
/// and wait forever with the bind up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_of_multipart_texts_drains_when_the_smsc_comes_up() {
    let port = free_port();
    let smsc_addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = sluice::demo::embedded_config(dir.path(), smsc_addr, 1, 8);
    cfg.http.listen = Some("127.0.0.1:0".parse().unwrap());
    let gw = sluice::gateway::start(cfg).await.unwrap();
    let addr = gw.ingest_addr.to_string();
    let (client, got) = subscriber(&addr).await;

    // One batch, so the dispatcher's first look sees all 600 parts.
    let batch: Vec<_> = (0..300)
        .map(|i| {
            msg(
                &format!("backlog-{i}"),
                &format!("+1415777{i:04}"),
                &two_part_text(i),
            )
        })
        .collect();
    let ids = accepted_ids(&client.submit(batch).await.unwrap());
    assert_eq!(ids.len(), 300);

    // Now the SMSC comes up on the address the bind keeps retrying.
    let smsc = smsc::start(smsc::SmscConfig {
        listen: smsc_addr,
        accounts: vec![("sluice".into(), "pw".into())],
        receipt_delay: Duration::from_millis(5),
        ..smsc::SmscConfig::default()
    })
    .await
    .unwrap();
    eventually(
        "every backlogged message delivered",
        Duration::from_secs(30),
        || got.terminal_count() == 300,
    )
    .await;
    for id in &ids {
        assert_eq!(
            got.state_of(*id),
            Some(sluice::ingest::pb::DeliveryState::StateDelivered)
        );
    }
    let stats = smsc.stats();
    assert_eq!(stats.messages, 300, "{stats:?}");
    assert_eq!(stats.duplicates, 0, "{stats:?}");
    gw.shutdown().await;
}
