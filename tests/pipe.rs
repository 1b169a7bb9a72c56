//! End-to-end: client → ingest → journal → SMPP → simulator → receipts →
//! events, over real TCP, with the simulator's faults.

mod common;

use std::time::Duration;

use common::*;
use sluice::ingest::pb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_delivers_every_message() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = sluice::gateway::start(config(dir.path(), &smsc))
        .await
        .unwrap();
    let addr = gw.ingest_addr.to_string();
    let (client, got) = subscriber(&addr).await;
    let batch: Vec<_> = (0..200)
        .map(|i| {
            msg(
                &format!("rt-{i}"),
                &format!("+1415555{i:04}"),
                &format!("hello {i}"),
            )
        })
        .collect();
    let ack = client.submit(batch).await.unwrap();
    let ids = accepted_ids(&ack);
    assert_eq!(ids.len(), 200);
    eventually("200 delivered events", Duration::from_secs(20), || {
        got.terminal_count() == 200
    })
    .await;
    for id in &ids {
        assert_eq!(got.state_of(*id), Some(pb::DeliveryState::StateDelivered));
    }
    let stats = smsc.stats();
    assert_eq!(stats.messages, 200);
    assert_eq!(stats.duplicates, 0);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubmitted_batch_returns_the_same_ids_and_sends_nothing_twice() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = sluice::gateway::start(config(dir.path(), &smsc))
        .await
        .unwrap();
    let addr = gw.ingest_addr.to_string();
    let (client, got) = subscriber(&addr).await;
    let batch: Vec<_> = (0..50)
        .map(|i| {
            msg(
                &format!("idem-{i}"),
                &format!("+1415666{i:04}"),
                &format!("once {i}"),
            )
        })
        .collect();
    let first = accepted_ids(&client.submit(batch.clone()).await.unwrap());
    // A second connection, as after a dropped link, sends the same batch.
    let (other, _) = sluice::ingest::client::Client::connect(&addr, TENANT, TOKEN)
        .await
        .unwrap();
    let again = other.submit(batch).await.unwrap();
    let second: Vec<u64> = again.results.iter().map(|r| r.message_id).collect();
    assert_eq!(first, second);
    assert!(again.results.iter().all(|r| r.duplicate));
    eventually("50 terminal events", Duration::from_secs(20), || {
        got.terminal_count() == 50
    })
    .await;
    // Nothing left that could still go out: a duplicate the resubmit had
    // queued would have reached the SMSC by now.
    drained(&gw, Duration::from_secs(20)).await;
    assert_eq!(smsc.stats().messages, 50);
    assert_eq!(smsc.stats().duplicates, 0);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnects_and_throttling_still_deliver_exactly_once() {
    let smsc = smsc(|c| {
        c.disconnect_every = 1000;
        c.throttle_fraction = 0.05;
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let gw = sluice::gateway::start(config(dir.path(), &smsc))
        .await
        .unwrap();
    let addr = gw.ingest_addr.to_string();
    let (client, got) = subscriber(&addr).await;
    let n = 5000;
    let mut ids = Vec::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let batch: Vec<_> = chunk
            .iter()
            .map(|i| {
                msg(
                    &format!("fault-{i}"),
                    &format!("+1415777{i:04}"),
                    &format!("fault text {i}"),
                )
            })
            .collect();
        ids.extend(accepted_ids(&client.submit(batch).await.unwrap()));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while got.terminal_count() < n && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        got.terminal_count(),
        n,
        "every message final; smsc {:?}; live {}",
        smsc.stats(),
        gw.gateway.ledger().live()
    );
    for id in &ids {
        assert_eq!(
            got.state_of(*id),
            Some(pb::DeliveryState::StateDelivered),
            "message {id:x}"
        );
    }
    let stats = smsc.stats();
    assert!(stats.disconnects >= 4, "{stats:?}");
    assert!(stats.throttled > 0, "{stats:?}");
    assert_eq!(stats.messages, n as u64);
    assert_eq!(stats.duplicates, 0, "{stats:?}");
    for (_, _, text, count) in smsc.texts() {
        assert_eq!(count, 1, "{text:?} arrived {count} times");
    }
    let m = metrics_text(gw.http_addr.unwrap()).await;
    assert!(
        counter_sum(&m, "sluice_smpp_throttled_total") >= stats.throttled as f64,
        "{m}"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_and_unicode_texts_reassemble_at_the_smsc() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = sluice::gateway::start(config(dir.path(), &smsc))
        .await
        .unwrap();
    let (client, got) = subscriber(&gw.ingest_addr.to_string()).await;
    let texts = [
        "x".repeat(160),
        "y".repeat(161),
        "€".repeat(80) + "z",
        "Ж".repeat(70),
        "Ж".repeat(71),
        "😀".repeat(100),
        sluice::demo::demo_text(9).repeat(5),
        "a".repeat(1600),
    ];
    let batch: Vec<_> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| msg(&format!("txt-{i}"), &format!("+1415888{i:04}"), t))
        .collect();
    let mut too_long = msg("txt-long", "+14158889999", &"b".repeat(1601));
    too_long.from = "12345".into();
    let mut with_bad = batch.clone();
    with_bad.push(too_long);
    let ack = client.submit(with_bad).await.unwrap();
    let last = ack.results.last().unwrap();
    assert_eq!(last.reason, pb::RejectReason::TextTooLong as i32);
    assert!(last.detail.contains("1601"), "{}", last.detail);
    eventually("all final", Duration::from_secs(20), || {
        got.terminal_count() == texts.len()
    })
    .await;
    let mut seen: Vec<String> = smsc.texts().into_iter().map(|(_, _, t, _)| t).collect();
    seen.sort();
    let mut want: Vec<String> = texts.to_vec();
    want.sort();
    assert_eq!(seen, want);
    gw.shutdown().await;
}

/// Every receipt id style a real SMSC uses correlates, including receipts
/// that arrive before the submit_sm_resp and receipts carried in TLVs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_correlate_in_every_id_style() {
    use sluice::sim::smsc::{IdFormat, ReceiptIdFormat};
    let variants: Vec<(IdFormat, ReceiptIdFormat, bool, bool)> = vec![
        (IdFormat::Hex, ReceiptIdFormat::Decimal, false, false),
        (IdFormat::Hex, ReceiptIdFormat::HexUpper, false, false),
        (IdFormat::Decimal, ReceiptIdFormat::ZeroPadded, false, false),
        (IdFormat::Uuid, ReceiptIdFormat::Same, false, true),
        (IdFormat::Hex, ReceiptIdFormat::Same, true, false),
        (IdFormat::Decimal, ReceiptIdFormat::Same, true, true),
    ];
    for (idf, rf, before, tlvs) in variants {
        let smsc = smsc(|c| {
            c.id_format = idf;
            c.receipt_id_format = rf;
            c.receipt_before_resp = before;
            c.receipt_tlvs = tlvs;
            c.outcomes = "delivered=0.5,undeliverable=0.5".parse().unwrap();
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let gw = sluice::gateway::start(config(dir.path(), &smsc))
            .await
            .unwrap();
        let (client, got) = subscriber(&gw.ingest_addr.to_string()).await;
        let batch: Vec<_> = (0..40)
            .map(|i| {
                msg(
                    &format!("r-{i}"),
                    &format!("+1415999{i:04}"),
                    &format!("receipt {i}"),
                )
            })
            .collect();
        accepted_ids(&client.submit(batch).await.unwrap());
        let label = format!("{idf:?}/{rf:?}/before={before}/tlvs={tlvs}");
        eventually(&label, Duration::from_secs(20), || {
            got.terminal_count() == 40
        })
        .await;
        let states = got.states.lock().clone();
        let delivered = states
            .values()
            .filter(|v| v[0].0 == pb::DeliveryState::StateDelivered)
            .count();
        let failed = states
            .values()
            .filter(|v| v[0].0 == pb::DeliveryState::StateFailed)
            .count();
        assert_eq!(delivered + failed, 40, "{label}: {states:?}");
        assert_eq!(smsc.stats().receipts_sent as usize, 40, "{label}");
        gw.shutdown().await;
        smsc.shutdown();
    }
}

/// SMSCs that report one receipt for a multi-part message (its first or last
/// part) still settle the message; messages whose receipt never comes expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_multipart_receipts_settle_and_missing_receipts_expire() {
    use sluice::sim::smsc::PartReceipts;
    for which in [PartReceipts::First, PartReceipts::Last] {
        let smsc = smsc(|c| c.part_receipts = which).await;
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path(), &smsc);
        cfg.receipts.multipart_grace = Duration::from_millis(300);
        let gw = sluice::gateway::start(cfg).await.unwrap();
        let (client, got) = subscriber(&gw.ingest_addr.to_string()).await;
        let ids = accepted_ids(
            &client
                .submit(vec![msg("mp-1", "+14155550123", &"long ".repeat(100))])
                .await
                .unwrap(),
        );
        eventually("settled", Duration::from_secs(10), || {
            got.terminal_count() == 1
        })
        .await;
        assert_eq!(
            got.state_of(ids[0]),
            Some(pb::DeliveryState::StateDelivered),
            "{which:?}"
        );
        gw.shutdown().await;
    }

    let smsc = smsc(|c| c.outcomes = "none=1".parse().unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &smsc);
    cfg.receipts.receipt_grace = Duration::from_millis(200);
    let gw = sluice::gateway::start(cfg).await.unwrap();
    let (client, got) = subscriber(&gw.ingest_addr.to_string()).await;
    let mut m = msg("noreceipt-1", "+14155550124", "no receipt for me");
    m.validity_seconds = 1;
    let ids = accepted_ids(&client.submit(vec![m]).await.unwrap());
    eventually("expired", Duration::from_secs(10), || {
        got.terminal_count() == 1
    })
    .await;
    let states = got.states.lock().clone();
    let (state, reason) = &states[&ids[0]][0];
    assert_eq!(*state, pb::DeliveryState::StateExpired);
    assert!(reason.contains("no receipt"), "{reason}");
    assert_eq!(smsc.stats().messages, 1);
    gw.shutdown().await;
}

/// A transmitter/receiver pair instead of a transceiver: submits go out on
/// one bind, receipts come back on the other and still correlate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transmitter_and_receiver_binds_work_as_a_pair() {
    use sluice::config::BindMode;
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &smsc);
    let mut rx = cfg.carriers[0].binds[0].clone();
    cfg.carriers[0].binds[0].mode = BindMode::Transmitter;
    rx.mode = BindMode::Receiver;
    rx.count = 1;
    cfg.carriers[0].binds.push(rx);
    let gw = sluice::gateway::start(cfg).await.unwrap();
    let (client, got) = subscriber(&gw.ingest_addr.to_string()).await;
    let ids = accepted_ids(
        &client
            .submit(
                (0..30)
                    .map(|i| msg(&format!("txrx-{i}"), &format!("+1415333{i:04}"), "pair"))
                    .collect(),
            )
            .await
            .unwrap(),
    );
    eventually("delivered via tx/rx", Duration::from_secs(20), || {
        got.terminal_count() == 30
    })
    .await;
    for id in ids {
        assert_eq!(got.state_of(id), Some(pb::DeliveryState::StateDelivered));
    }
    assert_eq!(smsc.stats().binds, 3);
    gw.shutdown().await;
}

/// Dedupe keys outlive the journal segments holding their messages: after
/// compaction deleted those segments and a restart, a retried batch still
/// gets its original ids and nothing is sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedupe_survives_compaction_and_restart() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &smsc);
    cfg.journal.segment_bytes = 1 << 20;
    cfg.journal.max_segments = 2;
    let gw = sluice::gateway::start(cfg.clone()).await.unwrap();
    let (client, got) = subscriber(&gw.ingest_addr.to_string()).await;
    let batch = |k: usize| -> Vec<_> {
        (0..1000)
            .map(|i| {
                msg(
                    &format!("dd-{k}-{i}"),
                    &format!("+1416{k:03}{i:04}"),
                    &"compaction filler text ".repeat(8),
                )
            })
            .collect()
    };
    let first = accepted_ids(&client.submit(batch(0)).await.unwrap());
    for k in 1..12 {
        accepted_ids(&client.submit(batch(k)).await.unwrap());
    }
    eventually("all final", Duration::from_secs(30), || {
        got.terminal_count() == 12_000
    })
    .await;
    // Compaction runs every few seconds; wait for it to shrink the journal.
    let journal = gw.gateway.journal().clone();
    eventually("compacted", Duration::from_secs(30), || {
        journal.segments() <= 2
    })
    .await;
    gw.shutdown().await;
    drop(journal);

    let gw = sluice::gateway::start(cfg).await.unwrap();
    let (client, _) =
        sluice::ingest::client::Client::connect(&gw.ingest_addr.to_string(), TENANT, TOKEN)
            .await
            .unwrap();
    let again = client.submit(batch(0)).await.unwrap();
    let ids: Vec<u64> = again.results.iter().map(|r| r.message_id).collect();
    assert_eq!(ids, first);
    assert!(again.results.iter().all(|r| r.duplicate));
    // Nothing left that could still go out (recovered or resubmitted): a
    // message sent twice would have reached the SMSC by now.
    drained(&gw, Duration::from_secs(20)).await;
    assert_eq!(smsc.stats().messages, 12_000);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_replaces_the_binds_while_messages_flow_and_sends_each_once() {
    const WAIT: Duration = Duration::from_secs(30);
    // Any password binds (the SMSC side of a rotation); receipts go to the
    // binds of the account that submitted.
    let smsc = smsc(|c| c.accounts.clear()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &smsc);
    assert_eq!(cfg.carriers[0].binds[0].count, 2);
    let mut gw = sluice::gateway::start(cfg.clone()).await.unwrap();
    let addr = gw.ingest_addr.to_string();
    let (client, got) = subscriber(&addr).await;
    eventually("both binds up", WAIT, || smsc.stats().binds == 2).await;

    // Messages keep coming while the binds are replaced.
    let n = 4000;
    let sending = send_in_background(&client, n, "rebind");
    eventually("messages flowing", WAIT, || smsc.stats().messages >= 500).await;
    let mut new = cfg.clone();
    let b = &mut new.carriers[0].binds[0];
    b.password = sluice::config::Secret::new("pw-2");
    b.count = 3;
    b.window = 32;
    let r = gw.reload(&new);
    assert_eq!(r.applied, ["carriers.sim.binds".to_owned()]);
    assert!(r.at_restart.is_empty(), "{:?}", r.at_restart);
    // The same file again changes nothing.
    let again = gw.reload(&new);
    assert!(again.applied.is_empty(), "{again:?}");

    // The old binds retire as the new ones take over.
    eventually("the two old binds unbound", WAIT, || {
        smsc.stats().unbinds == 2
    })
    .await;
    let ids = sending.await.unwrap();
    assert_eq!(ids.len(), n);
    eventually("every message final", WAIT, || got.terminal_count() == n).await;
    for id in &ids {
        assert_eq!(
            got.state_of(*id),
            Some(pb::DeliveryState::StateDelivered),
            "message {id:x}: none is left unanswered by a bind retired"
        );
    }
    let stats = smsc.stats();
    assert_eq!(stats.binds, 5, "{stats:?}");
    assert_eq!(stats.bind_failures, 0, "{stats:?}");
    assert_eq!(stats.messages, n as u64, "{stats:?}");
    assert_eq!(stats.duplicates, 0, "{stats:?}");
    for (_, _, text, count) in smsc.texts() {
        assert_eq!(count, 1, "{text:?} arrived {count} times");
    }
    // The new binds carry the traffic from here.
    let late = accepted_ids(
        &client
            .submit(vec![msg("late", "+14156669999", "after the rebind")])
            .await
            .unwrap(),
    );
    eventually("a message after the rebind delivered", WAIT, || {
        got.state_of(late[0]) == Some(pb::DeliveryState::StateDelivered)
    })
    .await;
    assert_eq!(smsc.stats().unbinds, 2);
    gw.shutdown().await;
}

/// Sends `n` messages to `+1415666…` in batches of 100 from a task of its
/// own (`tag` in their client refs and texts); resolves to their ids.
fn send_in_background(
    client: &sluice::ingest::client::Client,
    n: usize,
    tag: &'static str,
) -> tokio::task::JoinHandle<Vec<u64>> {
    let sender = client.clone();
    tokio::spawn(async move {
        let mut ids = Vec::new();
        for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
            let batch: Vec<_> = chunk
                .iter()
                .map(|i| {
                    msg(
                        &format!("{tag}-{i}"),
                        &format!("+1415666{i:04}"),
                        &format!("{tag} text {i}"),
                    )
                })
                .collect();
            ids.extend(accepted_ids(&sender.submit(batch).await.unwrap()));
        }
        ids
    })
}

/// A reload adds a carrier with a route of its own, and a second one
/// removes the carrier in use while messages flow: the new route takes its
/// prefix at once; the removed carrier's queue moves to the one left, its
/// binds write what they were handed, stay for the receipts, then unbind;
/// every message is delivered, and none reaches the SMSCs twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_adds_a_carrier_and_its_route_then_removes_the_old_one_while_messages_flow() {
    const WAIT: Duration = Duration::from_secs(30);
    let old = smsc(|_| {}).await;
    let next = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &old);
    // Long enough for every receipt to come before the old binds leave,
    // even on a loaded machine; slow enough that most messages are still
    // queued when the carrier is removed.
    cfg.carriers[0].removal_linger = Duration::from_secs(3);
    cfg.carriers[0].rate = 2000.0;
    let mut gw = sluice::gateway::start(cfg.clone()).await.unwrap();
    let addr = gw.ingest_addr.to_string();
    let (client, got) = subscriber(&addr).await;
    eventually("the old carrier's binds up", WAIT, || {
        old.stats().binds == 2
    })
    .await;

    // 1. A carrier added, with a prefix of its own.
    let mut added = cfg.clone();
    let mut carrier = cfg.carriers[0].clone();
    carrier.name = "next".into();
    carrier.binds[0].address = next.local_addr().to_string();
    added.carriers.push(carrier);
    added.routes = vec![
        sluice::config::RouteConfig {
            prefix: "+1415777".into(),
            carriers: vec!["next".into()],
        },
        sluice::config::RouteConfig {
            prefix: "+".into(),
            carriers: vec!["sim".into()],
        },
    ];
    let r = gw.reload(&added);
    assert_eq!(
        r.applied,
        ["carriers.next: added".to_owned(), "routes".to_owned()]
    );
    assert!(r.at_restart.is_empty() && r.refused.is_empty(), "{r:?}");
    assert!(gw.reload(&added).applied.is_empty(), "the same file again");
    eventually("the new carrier's binds up", WAIT, || {
        next.stats().binds == 2
    })
    .await;
    let routed = accepted_ids(
        &client
            .submit(vec![
                msg("to-next", "+14157770001", "by the new route"),
                msg("to-old", "+14156660001", "by the old route"),
            ])
            .await
            .unwrap(),
    );
    eventually("both routed messages delivered", WAIT, || {
        routed
            .iter()
            .all(|id| got.state_of(*id) == Some(pb::DeliveryState::StateDelivered))
    })
    .await;
    assert_eq!((old.stats().messages, next.stats().messages), (1, 1));

    // 2. The carrier in use removed while messages flow to it.
    let n = 4000;
    let sending = send_in_background(&client, n, "move");
    eventually("messages flowing to the old carrier", WAIT, || {
        old.stats().messages >= 500
    })
    .await;
    let mut removed = added.clone();
    removed.carriers.retain(|c| c.name != "sim");
    removed.routes.clear();
    let r = gw.reload(&removed);
    assert_eq!(
        r.applied,
        ["routes".to_owned(), "carriers.sim: removed".to_owned()]
    );
    assert!(r.at_restart.is_empty() && r.refused.is_empty(), "{r:?}");
    assert!(
        gw.reload(&removed).applied.is_empty(),
        "the same file again"
    );
    eventually("the old carrier's binds unbound", WAIT, || {
        old.stats().unbinds == 2
    })
    .await;
    let ids = sending.await.unwrap();
    assert_eq!(ids.len(), n);
    eventually("every message final", WAIT, || {
        got.terminal_count() == n + routed.len()
    })
    .await;
    for id in &ids {
        assert_eq!(
            got.state_of(*id),
            Some(pb::DeliveryState::StateDelivered),
            "message {id:x}: delivered, its receipt received before the binds left"
        );
    }
    let (a, b) = (old.stats(), next.stats());
    assert!(b.messages > 1, "the rest went to the carrier left: {b:?}");
    assert_eq!(a.messages + b.messages, n as u64 + 2, "{a:?} {b:?}");
    assert_eq!((a.duplicates, b.duplicates), (0, 0), "{a:?} {b:?}");
    let mut texts = old.texts();
    texts.extend(next.texts());
    let mut seen = std::collections::HashSet::new();
    for (_, _, text, count) in texts {
        assert_eq!(count, 1, "{text:?} arrived {count} times");
        assert!(seen.insert(text.clone()), "{text:?} reached both SMSCs");
    }
    // The carrier left takes the traffic from here.
    let late = accepted_ids(
        &client
            .submit(vec![msg("late", "+14156669999", "after the removal")])
            .await
            .unwrap(),
    );
    eventually("a message after the removal delivered", WAIT, || {
        got.state_of(late[0]) == Some(pb::DeliveryState::StateDelivered)
    })
    .await;
    assert_eq!(old.stats().messages, a.messages, "nothing more to the old");
    assert_eq!(old.stats().binds, 2, "the old carrier did not bind again");
    gw.shutdown().await;
}

/// A carrier that is down when a reload removes it: everything queued for
/// it, in its queue or already handed to its binds, goes to the carrier
/// left and is delivered; nothing ends `unknown`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carrier_removed_while_down_hands_everything_it_held_to_the_carrier_left() {
    const WAIT: Duration = Duration::from_secs(30);
    let next = smsc(|_| {}).await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &next);
    let mut down = cfg.carriers[0].clone();
    down.name = "down".into();
    down.binds[0].address = dead.to_string();
    cfg.carriers[0].name = "next".into();
    cfg.carriers.push(down);
    cfg.routes = vec![
        sluice::config::RouteConfig {
            prefix: "+1415666".into(),
            carriers: vec!["down".into()],
        },
        sluice::config::RouteConfig {
            prefix: "+".into(),
            carriers: vec!["next".into()],
        },
    ];
    let mut gw = sluice::gateway::start(cfg.clone()).await.unwrap();
    let (client, got) = subscriber(&gw.ingest_addr.to_string()).await;
    let n = 600;
    let batch: Vec<_> = (0..n)
        .map(|i| {
            msg(
                &format!("d-{i}"),
                &format!("+1415666{i:04}"),
                &format!("held {i}"),
            )
        })
        .collect();
    let ids = accepted_ids(&client.submit(batch).await.unwrap());
    eventually("the carrier left up", WAIT, || next.stats().binds == 2).await;
    assert_eq!(got.terminal_count(), 0, "all wait for the carrier down");

    let mut removed = cfg.clone();
    removed.carriers.retain(|c| c.name != "down");
    removed.routes.clear();
    let r = gw.reload(&removed);
    assert_eq!(
        r.applied,
        ["routes".to_owned(), "carriers.down: removed".to_owned()]
    );
    assert!(r.at_restart.is_empty() && r.refused.is_empty(), "{r:?}");
    eventually("every message final", WAIT, || got.terminal_count() == n).await;
    for id in &ids {
        assert_eq!(
            got.state_of(*id),
            Some(pb::DeliveryState::StateDelivered),
            "message {id:x}"
        );
    }
    let stats = next.stats();
    assert_eq!(
        (stats.messages, stats.duplicates),
        (n as u64, 0),
        "{stats:?}"
    );
    gw.shutdown().await;
}

/// A reload that changes how a carrier splits texts (and what it does with
/// unanswered parts, and when it fails over) applies to the next message,
/// without a restart: a long text sent as two UDH parts before is sent as
/// one `message_payload` submit after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_changes_how_a_carrier_splits_the_next_long_text() {
    const WAIT: Duration = Duration::from_secs(30);
    let sim = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &sim);
    assert_eq!(cfg.carriers[0].concat, sluice::config::ConcatMode::Udh8);
    let mut gw = sluice::gateway::start(cfg.clone()).await.unwrap();
    let addr = gw.ingest_addr.to_string();
    let (client, got) = subscriber(&addr).await;
    let long = "a long text that takes more than one part. ".repeat(5);
    assert!(long.len() > 160 && long.len() <= 306);
    let send = |reference: &'static str| {
        let (client, got, long) = (&client, &got, &long);
        async move {
            let id = accepted_ids(
                &client
                    .submit(vec![msg(reference, "+14155550123", long)])
                    .await
                    .unwrap(),
            )[0];
            eventually("the long text delivered", WAIT, || {
                got.state_of(id) == Some(pb::DeliveryState::StateDelivered)
            })
            .await;
        }
    };
    send("before").await;
    assert_eq!((sim.stats().accepted_parts, sim.stats().messages), (2, 1));

    let mut retuned = cfg.clone();
    retuned.carriers[0].concat = sluice::config::ConcatMode::Payload;
    retuned.carriers[0].unanswered = sluice::config::Unanswered::Unknown;
    retuned.carriers[0].failover_after = Duration::from_secs(5);
    let r = gw.reload(&retuned);
    assert_eq!(
        r.applied,
        [
            "carriers.sim.concat",
            "carriers.sim.unanswered",
            "carriers.sim.failover_after"
        ]
    );
    assert!(r.at_restart.is_empty() && r.refused.is_empty(), "{r:?}");
    assert!(
        gw.reload(&retuned).applied.is_empty(),
        "the same file again"
    );
    send("after").await;
    assert_eq!(
        (sim.stats().accepted_parts, sim.stats().messages),
        (3, 2),
        "one message_payload submit"
    );
    assert!(
        sim.texts()
            .iter()
            .all(|(_, _, text, n)| *text == long && *n == 2)
    );
    assert_eq!(sim.stats().binds, 2, "no bind was replaced");
    gw.shutdown().await;
}
