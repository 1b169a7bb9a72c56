//! Nothing leaves after a STOP (guarantee 5): a message that passed its
//! dispatch check and then waited — for a part permit, for the bind's
//! pacing, for the journal — gets one more look right before it is written,
//! and ends `suppressed` if its recipient opted out meanwhile.

mod common;

use std::time::Duration;

use common::*;
use sluice::ingest::pb;
use sluice::journal::OptChange;

const HANDSET: &str = "+14155550142";

/// A bind paced at 50 submits/s, 400 messages queued to one number, an
/// opt-out recorded after a second: past that moment at most what was
/// already on the wire reaches the SMSC; the rest ends `suppressed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_reaches_messages_waiting_on_pacing() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &smsc);
    cfg.carriers[0].binds[0].count = 1;
    cfg.carriers[0].binds[0].rate = 50;
    let gw = sluice::gateway::start(cfg).await.unwrap();
    let addr = gw.ingest_addr.to_string();
    let (client, got) = subscriber(&addr).await;
    let batch: Vec<_> = (0..400)
        .map(|i| msg(&format!("race-{i}"), HANDSET, &format!("offer {i}")))
        .collect();
    let ids = accepted_ids(&client.submit(batch).await.unwrap());
    eventually("the bind to send some", Duration::from_secs(10), || {
        smsc.stats().messages >= 20
    })
    .await;

    let number = sluice::model::Msisdn::parse(HANDSET).unwrap();
    gw.gateway
        .compliance()
        .change(OptChange {
            number: number.as_u64(),
            scope: "global".into(),
            opted_out: true,
            source: "api".into(),
            keyword: "STOP".into(),
            at_ms: sluice::model::now_ms(),
            ..OptChange::default()
        })
        .await
        .unwrap();
    let at_stop = smsc.stats().messages;

    eventually("every message ended", Duration::from_secs(30), || {
        got.terminal_count() == 400
    })
    .await;
    let after = smsc.stats().messages - at_stop;
    let delivered = ids
        .iter()
        .filter(|id| got.state_of(**id) == Some(pb::DeliveryState::StateDelivered))
        .count();
    let suppressed = ids
        .iter()
        .filter(|id| got.state_of(**id) == Some(pb::DeliveryState::StateSuppressed))
        .count();
    eprintln!("at stop {at_stop}, after {after}, delivered {delivered}, suppressed {suppressed}");
    assert!(
        after <= 2,
        "{after} messages reached the SMSC after the opt-out was recorded"
    );
    assert_eq!(delivered + suppressed, 400);
    assert_eq!(delivered as u64, smsc.stats().messages);
    assert!(suppressed >= 300, "{suppressed}");
    gw.shutdown().await;
}
