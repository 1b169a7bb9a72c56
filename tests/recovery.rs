//! A restart resumes (guarantee 8): a backlog that builds while the SMSC is
//! away drains once it comes back, whatever the mix of part counts against
//! the carrier's part permits.

mod common;

use std::time::Duration;

use common::*;
use sluice::sim::smsc;

/// A two-part GSM-7 text (161..=306 characters).
fn two_part_text(i: usize) -> String {
    format!("{i:05} {}", "backlog ".repeat(25))
}

/// One bind with a window of 8 has 255 part permits; a backlog of 300
/// two-part texts used to make the dispatcher ask for 256 permits at once
/// and wait forever with the bind up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_of_multipart_texts_drains_when_the_smsc_comes_up() {
    // The SMSC's address, held (connections refused, as with the SMSC
    // away) until the simulator listens there: the gateway must know it
    // before the SMSC exists, so it cannot come from the SMSC's listener.
    let held = HeldPort::new();
    let smsc_addr = held.addr();
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
    assert_eq!(smsc.local_addr(), smsc_addr);
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

/// An SMSC that sends its receipt before the submit_sm_resp and then drops
/// the link, the answer lost: the unanswered submit is matched to the
/// parked receipt (handset, sender, text) and counted accepted, not resent —
/// one copy at the SMSC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_dropped_after_an_early_receipt_sends_nothing_twice() {
    let smsc = smsc(|c| {
        c.receipt_before_resp = true;
        c.disconnect_every = 7;
        c.lose_resp_on_cut = true;
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &smsc);
    cfg.carriers[0].binds[0].count = 1;
    let gw = sluice::gateway::start(cfg).await.unwrap();
    let http = gw.http_addr.unwrap();
    let addr = gw.ingest_addr.to_string();
    let (client, got) = subscriber(&addr).await;
    let batch: Vec<_> = (0..60)
        .map(|i| {
            msg(
                &format!("early-{i}"),
                &format!("+1415888{i:04}"),
                &format!("early receipt {i}"),
            )
        })
        .collect();
    let ids = accepted_ids(&client.submit(batch).await.unwrap());
    eventually("every message final", Duration::from_secs(30), || {
        got.terminal_count() == ids.len()
    })
    .await;
    for id in &ids {
        assert_eq!(
            got.state_of(*id),
            Some(sluice::ingest::pb::DeliveryState::StateDelivered)
        );
    }
    let stats = smsc.stats();
    assert!(stats.disconnects > 0, "{stats:?}");
    assert_eq!(stats.duplicates, 0, "{stats:?}");
    assert_eq!(stats.messages, 60, "{stats:?}");
    let m = metrics_text(http).await;
    assert!(
        counter_sum(&m, "sluice_smpp_unanswered_receipted_total") > 0.0,
        "no unanswered submit was matched to its early receipt"
    );
    gw.shutdown().await;
}

/// A tenant removed from the file while it had messages queued: after the
/// restart its opt-out scopes, programs, limits and quiet hours are gone,
/// so its messages end `rejected` instead of going out checked against the
/// global opt-outs alone; another tenant's queued message still goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_messages_of_a_tenant_removed_before_a_restart_are_not_sent() {
    use sluice::config::{Secret, TenantConfig};
    let held = HeldPort::new();
    let smsc_addr = held.addr();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = sluice::demo::embedded_config(dir.path(), smsc_addr, 1, 8);
    cfg.tenants.push(TenantConfig {
        name: "globex".into(),
        token: Secret::new("globex-token-0123456789"),
        senders: vec!["67890".into()],
        ..TenantConfig::default()
    });
    let gw = sluice::gateway::start(cfg.clone()).await.unwrap();
    let addr = gw.ingest_addr.to_string();
    let (demo, _) = subscriber(&addr).await;
    let (globex, _) = subscriber_as(&addr, "globex", "globex-token-0123456789").await;
    let demo_ids = accepted_ids(
        &demo
            .submit(vec![msg("d-1", "+14155550100", "from demo")])
            .await
            .unwrap(),
    );
    let globex_msgs = (0..5)
        .map(|i| {
            let mut m = msg(&format!("g-{i}"), "+14155550101", "from globex");
            m.from = "67890".into();
            m
        })
        .collect();
    assert_eq!(
        accepted_ids(&globex.submit(globex_msgs).await.unwrap()).len(),
        5
    );
    gw.shutdown().await;
    drop((demo, globex));

    cfg.tenants.retain(|t| t.name != "globex");
    let gw = sluice::gateway::start(cfg).await.unwrap();
    let (_demo, got) = subscriber(&gw.ingest_addr.to_string()).await;
    assert_eq!(
        gw.gateway.ledger().live(),
        1,
        "only demo's message is still live"
    );
    let smsc = smsc::start(smsc::SmscConfig {
        listen: smsc_addr,
        accounts: vec![("sluice".into(), "pw".into())],
        receipt_delay: Duration::from_millis(5),
        ..smsc::SmscConfig::default()
    })
    .await
    .unwrap();
    eventually("demo's message delivered", Duration::from_secs(20), || {
        got.state_of(demo_ids[0]) == Some(sluice::ingest::pb::DeliveryState::StateDelivered)
    })
    .await;
    let texts: Vec<String> = smsc.texts().into_iter().map(|t| t.2).collect();
    assert_eq!(texts, ["from demo"], "globex's messages never went out");
    // Their events, which nobody takes, did not stay pending.
    eventually("no event left pending", Duration::from_secs(10), || {
        sluice::ingest::Backend::events(&*gw.gateway).pending() == 0
    })
    .await;
    gw.shutdown().await;
}
