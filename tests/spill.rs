//! Bounded memory end to end: queued messages beyond the in-memory budget
//! wait on disk and are paged in as the queues drain, without
//! holding back another tenant's transactional traffic; compaction carries
//! them forward and a restart finds every one.

mod common;

use std::time::Duration;

use common::*;
use sluice::ingest::pb;

const OTHER: &str = "other";
const OTHER_TOKEN: &str = "other-token-0001";

fn two_tenants(cfg: &mut sluice::config::Config) {
    let mut b = cfg.tenants[0].clone();
    b.name = OTHER.into();
    b.token = sluice::config::Secret::new(OTHER_TOKEN);
    cfg.tenants.push(b);
}

fn blast(prefix: &str, from: usize, n: usize) -> Vec<pb::SubmitMessage> {
    (from..from + n)
        .map(|i| {
            msg(
                &format!("{prefix}-{i}"),
                &format!("+1415666{i:04}"),
                &format!("{prefix} {i}"),
            )
        })
        .collect()
}

// The in-memory count right after the blast bounds paging in: a spilled
// batch is at most an eighth of the budget and a page-in stops before one
// that would overshoot (it was 1,024-message batches, ~870 in memory against
// 300).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blast_beyond_the_budget_waits_on_disk_and_another_tenant_still_goes_first() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &smsc);
    two_tenants(&mut cfg);
    cfg.journal.max_queued_in_memory = 300;
    cfg.carriers[0].rate = 2000.0;
    let gw = sluice::gateway::start(cfg).await.unwrap();
    let addr = gw.ingest_addr.to_string();
    let (a, got_a) = subscriber(&addr).await;
    let (b, got_b) = subscriber_as(&addr, OTHER, OTHER_TOKEN).await;
    let n = 5000;
    for chunk in 0..n / 1000 {
        accepted_ids(&a.submit(blast("blast", chunk * 1000, 1000)).await.unwrap());
    }
    let spilled = gw.gateway.spill().len();
    let in_memory = gw.gateway.scheduler().in_memory() as u64;
    eprintln!("after the blast: {spilled} on disk, {in_memory} in memory");
    assert!(spilled > 3000, "most of the blast waits on disk: {spilled}");
    assert!(in_memory <= 300 + 300 / 8, "{in_memory} in memory");
    // Tenant B's password resets, while A's blast is mostly still on disk.
    let resets: Vec<_> = (0..10)
        .map(|i| {
            let mut m = msg(
                &format!("reset-{i}"),
                &format!("+1415777{i:04}"),
                &format!("reset {i}"),
            );
            m.priority = pb::PriorityClass::PriorityTransactional as i32;
            m
        })
        .collect();
    let sent = tokio::time::Instant::now();
    accepted_ids(&b.submit(resets).await.unwrap());
    eventually("B's resets delivered", Duration::from_secs(10), || {
        got_b.terminal_count() == 10
    })
    .await;
    let took = sent.elapsed();
    let a_done = got_a.terminal_count();
    eprintln!("B's 10 took {took:?}; A had {a_done} of {n} final by then");
    // A's blast needs 2.5 s at the carrier's 2,000/s: B must not wait for it
    // (the margin is wide because this is real time on a busy machine).
    assert!(
        took < Duration::from_millis(1500),
        "B waited {took:?} behind A's blast"
    );
    assert!(
        a_done < n / 2,
        "B did not wait for A's blast ({a_done} done)"
    );
    eventually("the blast delivered", Duration::from_secs(60), || {
        got_a.terminal_count() == n
    })
    .await;
    let stats = smsc.stats();
    assert_eq!(stats.messages, n as u64 + 10);
    assert_eq!(stats.duplicates, 0);
    assert!(
        got_a
            .states
            .lock()
            .values()
            .all(|v| v.len() == 1 && v[0].0 == pb::DeliveryState::StateDelivered)
    );
    assert_eq!(gw.gateway.spill().len(), 0);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spilled_messages_survive_compaction_and_restart_exactly_once() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &smsc);
    cfg.journal.max_queued_in_memory = 100;
    cfg.journal.segment_bytes = 32 << 10;
    cfg.journal.max_segments = 2;
    let journal_dir = cfg.journal_dir();
    let gw = sluice::gateway::start(cfg.clone()).await.unwrap();
    // The carrier is paused: everything stays queued, most of it on disk.
    gw.gateway
        .scheduler()
        .queue("sim")
        .unwrap()
        .set_paused(true);
    let (client, _) = subscriber(&gw.ingest_addr.to_string()).await;
    let n = 3000;
    for chunk in 0..n / 500 {
        accepted_ids(
            &client
                .submit(blast("kept", chunk * 500, 500))
                .await
                .unwrap(),
        );
    }
    assert!(gw.gateway.spill().len() >= 2800);
    let first_segment = || {
        let mut names: Vec<String> = std::fs::read_dir(&journal_dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".log"))
            .collect();
        names.sort();
        names.first().cloned()
    };
    let before = first_segment();
    // Compaction runs every 5 s when there are too many segments: the Accept
    // records of the spilled messages go with the old segments.
    eventually("a compaction", Duration::from_secs(20), || {
        first_segment() != before
    })
    .await;
    drop(client);
    gw.shutdown().await;
    assert_eq!(smsc.stats().messages, 0);

    let gw = sluice::gateway::start(cfg).await.unwrap();
    let (_client, got) = subscriber(&gw.ingest_addr.to_string()).await;
    eventually("every message delivered", Duration::from_secs(60), || {
        got.terminal_count() == n
    })
    .await;
    let stats = smsc.stats();
    assert_eq!(stats.messages, n as u64, "each message sent once");
    assert_eq!(stats.duplicates, 0);
    let mut texts: Vec<String> = smsc.texts().into_iter().map(|t| t.2).collect();
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), n);
    gw.shutdown().await;
}
