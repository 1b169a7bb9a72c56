//! Tenants are isolated (guarantee 7): a tenant sends only from its own
//! senders, so it can neither spend another tenant's limits nor bypass that
//! tenant's opt-outs by borrowing its short code.

mod common;

use std::time::Duration;

use common::*;
use sluice::config::{ProgramConfig, Secret, StopCovers, TenantConfig};
use sluice::ingest::pb;
use sluice::journal::OptChange;

const HANDSET: &str = "+14155550123";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_cannot_send_from_another_tenants_sender() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &smsc);
    // acme (the demo tenant) owns 12345 with its "alerts" program.
    cfg.tenants[0].programs = vec![ProgramConfig {
        name: "alerts".into(),
        senders: vec!["12345".into()],
        help_text: "help".into(),
        opt_out_text: "bye".into(),
        opt_in_text: "hi".into(),
        stop_covers: StopCovers::Program,
        keywords: Default::default(),
    }];
    cfg.tenants.push(TenantConfig {
        name: "globex".into(),
        token: Secret::new("globex-token-1"),
        senders: vec!["67890".into()],
        ..TenantConfig::default()
    });
    let gw = sluice::gateway::start(cfg).await.unwrap();
    let addr = gw.ingest_addr.to_string();
    let number = sluice::model::Msisdn::parse(HANDSET).unwrap();
    for scope in ["program:demo:alerts", "tenant:demo"] {
        gw.gateway
            .compliance()
            .change(OptChange {
                number: number.as_u64(),
                scope: scope.into(),
                opted_out: true,
                source: "sms".into(),
                keyword: "STOP".into(),
                ..OptChange::default()
            })
            .await
            .unwrap();
    }
    let (globex, got) = subscriber_as(&addr, "globex", "globex-token-1").await;

    // globex borrows acme's short code: refused, whatever the recipient.
    let mut borrowed = msg("g-1", HANDSET, "from acme's code");
    borrowed.from = "12345".into();
    let mut borrowed_elsewhere = msg("g-2", "+14155550124", "also from acme's code");
    borrowed_elsewhere.from = "12345".into();
    let ack = globex
        .submit(vec![borrowed, borrowed_elsewhere])
        .await
        .unwrap();
    for r in &ack.results {
        assert_eq!(r.reason, pb::RejectReason::SenderNotAllowed as i32, "{r:?}");
        assert_eq!(r.message_id, 0);
        assert!(
            r.detail.contains("12345") && r.detail.contains("globex"),
            "{}",
            r.detail
        );
    }

    // From its own sender globex reaches the number (acme's opt-outs are
    // acme's); acme itself is held to them.
    let mut own = msg("g-3", HANDSET, "from globex");
    own.from = "67890".into();
    let ids = accepted_ids(&globex.submit(vec![own]).await.unwrap());
    let (acme, _) = subscriber(&addr).await;
    let ack = acme
        .submit(vec![msg("a-1", HANDSET, "from acme")])
        .await
        .unwrap();
    assert_eq!(ack.results[0].reason, pb::RejectReason::Suppressed as i32);

    eventually(
        "globex's own message delivered",
        Duration::from_secs(10),
        || got.state_of(ids[0]) == Some(pb::DeliveryState::StateDelivered),
    )
    .await;
    let sent: Vec<(String, String, String, u32)> = smsc.texts();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].0, "67890");
    gw.shutdown().await;
}
