//! Traffic shaping end to end (real time, short): adaptive throttling
//! against an SMSC with a hidden rate, failover of a carrier that goes down,
//! and expiry of what cannot be sent within its validity.

mod common;

use std::time::Duration;

use common::*;
use sluice::ingest::pb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converges_near_a_hidden_rate_and_delivers_each_message_once() {
    let hidden: u32 = std::env::var("HIDDEN")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let smsc = smsc(|c| c.throttle_above = hidden).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &smsc);
    cfg.carriers[0].binds[0].count = 1;
    let gw = sluice::gateway::start(cfg).await.unwrap();
    let (client, got) = subscriber(&gw.ingest_addr.to_string()).await;
    let n = 6000;
    let started = tokio::time::Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let batch = chunk
            .iter()
            .map(|i| {
                msg(
                    &format!("th-{i}"),
                    &format!("+1415444{i:04}"),
                    &format!("throttle {i}"),
                )
            })
            .collect();
        accepted_ids(&client.submit(batch).await.unwrap());
    }
    eventually("all delivered", Duration::from_secs(60), || {
        got.terminal_count() == n
    })
    .await;
    let secs = started.elapsed().as_secs_f64();
    let stats = smsc.stats();
    let rate = n as f64 / secs;
    eprintln!(
        "hidden {hidden}/s: {rate:.0}/s achieved, {} throttled of {} submits",
        stats.throttled, stats.submits
    );
    assert_eq!(stats.messages, n as u64);
    assert_eq!(stats.duplicates, 0);
    assert!(
        got.states
            .lock()
            .values()
            .all(|v| v[0].0 == pb::DeliveryState::StateDelivered)
    );
    // Near the hidden rate (AIMD hovers between 70% and 100% of it)...
    assert!(rate >= hidden as f64 * 0.6, "{rate:.0}/s");
    // ...without hammering it: few refusals. (They include the first
    // burst, before the carrier's cap is known: a window of refusals.
    // Measured on this machine: 848 of 6,000 before the write gate and the
    // faster recovery of issue 11, 940-1,060 since.)
    assert!((stats.throttled as f64) < n as f64 * 0.2, "{stats:?}");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carrier_that_goes_down_fails_over_with_nothing_lost() {
    let a = smsc(|_| {}).await;
    let b = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &a);
    let mut second = cfg.carriers[0].clone();
    second.name = "backup".into();
    second.binds[0].address = b.local_addr().to_string();
    // The primary is slow (a backlog builds in its queue) and fails over fast.
    cfg.carriers[0].rate = 100.0;
    cfg.carriers[0].failover_after = Duration::from_millis(300);
    // Receipts the primary owed when it died never come: those messages end
    // `expired` shortly after their (short) validity.
    cfg.receipts.receipt_grace = Duration::from_millis(100);
    cfg.carriers.push(second);
    cfg.routes = vec![sluice::config::RouteConfig {
        prefix: "+1".into(),
        carriers: vec!["sim".into(), "backup".into()],
    }];
    let gw = sluice::gateway::start(cfg).await.unwrap();
    let (client, got) = subscriber(&gw.ingest_addr.to_string()).await;
    // Let both carriers bind before traffic arrives.
    eventually("binds up", Duration::from_secs(5), || {
        a.stats().binds >= 2 && b.stats().binds >= 2
    })
    .await;
    let n = 500;
    let batch = (0..n)
        .map(|i| {
            let mut m = msg(
                &format!("fo-{i}"),
                &format!("+1415123{i:04}"),
                &format!("failover {i}"),
            );
            m.validity_seconds = 4;
            m
        })
        .collect();
    accepted_ids(&client.submit(batch).await.unwrap());
    // The primary goes down mid-stream: it has taken some (20 at its 100/s
    // is a fifth of a second of traffic) while a backlog waits in its queue.
    let primary = gw.gateway.scheduler().queue("sim").unwrap().clone();
    eventually(
        "the primary sending, a backlog in its queue",
        Duration::from_secs(10),
        || a.stats().messages >= 20 && !primary.is_empty(),
    )
    .await;
    let before = a.stats().messages;
    assert!(before < n as u64, "the primary has a backlog: {before}");
    a.shutdown();
    eventually("every message final", Duration::from_secs(30), || {
        got.terminal_count() == n
    })
    .await;
    let (sa, sb) = (a.stats(), b.stats());
    eprintln!("primary took {}, backup {}", sa.messages, sb.messages);
    assert!(sb.messages > 0);
    assert_eq!(sa.duplicates + sb.duplicates, 0);
    let mut texts: Vec<String> = a
        .texts()
        .into_iter()
        .chain(b.texts())
        .map(|t| t.2)
        .collect();
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), n, "every text reached exactly one SMSC");
    // Everything the backup took was delivered; what the primary took was
    // delivered or (receipt lost with it) expired; nothing else.
    let states = got.states.lock().clone();
    let delivered = states
        .values()
        .filter(|v| v[0].0 == pb::DeliveryState::StateDelivered)
        .count();
    let expired = states
        .values()
        .filter(|v| v[0].0 == pb::DeliveryState::StateExpired)
        .count();
    assert_eq!(delivered + expired, n);
    assert!(
        expired as u64 <= sa.messages,
        "{expired} expired, primary took {}",
        sa.messages
    );
    assert!(delivered as u64 >= sb.messages);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_cannot_go_within_validity_expires_and_is_never_sent_late() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &smsc);
    cfg.carriers[0].rate = 20.0;
    let gw = sluice::gateway::start(cfg).await.unwrap();
    let (client, got) = subscriber(&gw.ingest_addr.to_string()).await;
    let n = 100;
    let batch = (0..n)
        .map(|i| {
            let mut m = msg(
                &format!("v-{i}"),
                &format!("+1415321{i:04}"),
                &format!("valid briefly {i}"),
            );
            m.validity_seconds = 2;
            m
        })
        .collect();
    accepted_ids(&client.submit(batch).await.unwrap());
    eventually("every message final", Duration::from_secs(15), || {
        got.terminal_count() == n
    })
    .await;
    let states = got.states.lock().clone();
    let expired: Vec<_> = states
        .values()
        .filter(|v| v[0].0 == pb::DeliveryState::StateExpired)
        .collect();
    let delivered = states
        .values()
        .filter(|v| v[0].0 == pb::DeliveryState::StateDelivered)
        .count();
    assert_eq!(expired.len() + delivered, n);
    assert!(expired.len() >= 40, "{} expired", expired.len());
    assert!(
        expired.iter().all(|v| v[0].1.contains("validity")),
        "{expired:?}"
    );
    // Nothing reached the SMSC after its validity: at 20/s over 2 s, at most ~41.
    assert_eq!(smsc.stats().messages as usize, delivered);
    assert!(delivered <= 45, "{delivered}");
    gw.shutdown().await;
}
