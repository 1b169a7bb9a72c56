//! Opt-out compliance end to end: STOP/START/HELP from a handset through the
//! SMSC simulator, scopes, the second check at dispatch, restart, bulk
//! import through the admin API, and the admin API's auth.

mod common;

use std::time::Duration;

use common::*;
use sluice::config::{Config, ProgramConfig, Secret, StopCovers};
use sluice::ingest::pb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ADMIN: &str = "admin-token-1234";
const HANDSET: &str = "14155550777";

fn programs(cfg: &mut Config) {
    let t = &mut cfg.tenants[0];
    t.senders = vec!["12345".into(), "67890".into()];
    t.programs = vec![
        ProgramConfig {
            name: "alerts".into(),
            senders: vec!["12345".into()],
            help_text: "ACME alerts: reply STOP to cancel.".into(),
            opt_out_text: "ACME alerts: you are unsubscribed.".into(),
            opt_in_text: "ACME alerts: welcome back.".into(),
            stop_covers: StopCovers::Program,
            keywords: [("ARRET".to_string(), "opt-out".to_string())].into(),
        },
        ProgramConfig {
            name: "promos".into(),
            senders: vec!["67890".into()],
            help_text: "ACME promos help".into(),
            opt_out_text: "ACME promos: unsubscribed.".into(),
            opt_in_text: "ACME promos: subscribed.".into(),
            stop_covers: StopCovers::Program,
            keywords: Default::default(),
        },
    ];
    cfg.http.admin_token = Some(Secret::new(ADMIN));
}

/// A raw HTTP/1.1 request; returns (status, body).
async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = token
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: x\r\n{auth}content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn replies_to(smsc: &sluice::sim::smsc::Smsc, handset: &str) -> Vec<(String, String, u32)> {
    smsc.texts()
        .into_iter()
        .filter(|(_, to, _, _)| to == handset)
        .map(|(from, _, text, n)| (from, text, n))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_start_help_from_a_handset() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &smsc);
    programs(&mut cfg);
    let gw = sluice::gateway::start(cfg.clone()).await.unwrap();
    let (client, got) = subscriber(&gw.ingest_addr.to_string()).await;
    eventually("bound", Duration::from_secs(5), || smsc.stats().binds >= 2).await;
    let http_addr = gw.http_addr.unwrap();

    // Messages queued for the handset while the carrier is paused...
    let (st, _) = http(
        http_addr,
        "POST",
        "/admin/carriers/sim/pause",
        Some(ADMIN),
        b"",
    )
    .await;
    assert_eq!(st, 200);
    let queued = accepted_ids(
        &client
            .submit(vec![msg(
                "before-1",
                &format!("+{HANDSET}"),
                "queued before the STOP",
            )])
            .await
            .unwrap(),
    );

    // ...then the handset texts STOP to the alerts short code.
    smsc.inject_mo(HANDSET, "12345", " Stop. ").unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = http(
            http_addr,
            "GET",
            &format!("/admin/optouts/{HANDSET}"),
            Some(ADMIN),
            b"",
        )
        .await;
        if body.contains("program:demo:alerts") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the STOP was never applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (st, _) = http(
        http_addr,
        "POST",
        "/admin/carriers/sim/resume",
        Some(ADMIN),
        b"",
    )
    .await;
    assert_eq!(st, 200);
    eventually("queued message ends", Duration::from_secs(10), || {
        got.state_of(queued[0]).is_some()
    })
    .await;
    eventually("confirmation", Duration::from_secs(10), || {
        !replies_to(&smsc, HANDSET).is_empty()
    })
    .await;
    assert_eq!(
        got.state_of(queued[0]),
        Some(pb::DeliveryState::StateSuppressed)
    );
    let replies = replies_to(&smsc, HANDSET);
    assert_eq!(
        replies,
        vec![(
            "12345".into(),
            "ACME alerts: you are unsubscribed.".into(),
            1
        )]
    );

    // A second STOP: no second confirmation. Its opt event (published
    // after the opt-out was journaled, before any reply is queued) says it
    // was handled; once the gateway holds nothing more to send, a reply it
    // queued would have reached the SMSC.
    eventually(
        "the first STOP's opt event",
        Duration::from_secs(10),
        || got.opts.lock().len() == 1,
    )
    .await;
    smsc.inject_mo(HANDSET, "12345", "STOP").unwrap();
    eventually(
        "the second STOP's opt event",
        Duration::from_secs(10),
        || got.opts.lock().len() == 2,
    )
    .await;
    let second = got.opts.lock()[1].clone();
    assert!(second.opted_out && second.keyword == "STOP", "{second:?}");
    // The gateway answers an MO once it has handled it, a reply queued
    // included; then, with nothing more to send, a reply would have gone.
    eventually("both STOPs answered", Duration::from_secs(10), || {
        smsc.stats().mo_acked >= 2
    })
    .await;
    drained(&gw, Duration::from_secs(10)).await;
    assert_eq!(replies_to(&smsc, HANDSET).len(), 1);
    // Nor the same confirmation twice (one entry, arrived once).
    assert_eq!(
        replies_to(&smsc, HANDSET),
        vec![(
            "12345".into(),
            "ACME alerts: you are unsubscribed.".into(),
            1
        )]
    );

    // A later submit is rejected `suppressed`.
    let ack = client
        .submit(vec![msg("after-1", &format!("+{HANDSET}"), "after")])
        .await
        .unwrap();
    assert_eq!(
        ack.results[0].reason,
        pb::RejectReason::Suppressed as i32,
        "{:?}",
        ack.results[0]
    );
    // The other program's sender is not affected.
    let mut other = msg("other-1", &format!("+{HANDSET}"), "promo");
    other.from = "67890".into();
    assert_eq!(
        client.submit(vec![other]).await.unwrap().results[0].reason,
        0
    );

    // The audit shows proof.
    let (st, body) = http(
        http_addr,
        "GET",
        &format!("/admin/optouts/%2B{HANDSET}"),
        Some(ADMIN),
        b"",
    )
    .await;
    assert_eq!(st, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["suppressed"], serde_json::json!(["program:demo:alerts"]));
    assert_eq!(v["audit"][0]["keyword"], "STOP");
    assert_eq!(v["audit"][0]["sender"], "12345");
    assert_eq!(v["audit"][0]["carrier"], "sim");
    assert_eq!(v["audit"][0]["source"], "sms");

    // HELP replies and changes nothing; "Stop please" is just an inbound message.
    smsc.inject_mo(HANDSET, "12345", "help").unwrap();
    smsc.inject_mo(HANDSET, "12345", "Stop please").unwrap();
    eventually("help reply", Duration::from_secs(10), || {
        replies_to(&smsc, HANDSET)
            .iter()
            .any(|r| r.1.contains("reply STOP to cancel"))
    })
    .await;
    eventually("inbound forwarded", Duration::from_secs(10), || {
        got.inbound.lock().iter().any(|m| m.text == "Stop please")
    })
    .await;
    gw.shutdown().await;

    // A restart keeps the opt-out.
    let gw = sluice::gateway::start(cfg.clone()).await.unwrap();
    let (client, _got2) = subscriber(&gw.ingest_addr.to_string()).await;
    let ack = client
        .submit(vec![msg(
            "after-2",
            &format!("+{HANDSET}"),
            "after restart",
        )])
        .await
        .unwrap();
    assert_eq!(ack.results[0].reason, pb::RejectReason::Suppressed as i32);

    // START restores (and confirms).
    eventually("bound again", Duration::from_secs(5), || {
        smsc.stats().binds >= 4
    })
    .await;
    smsc.inject_mo(HANDSET, "12345", "START").unwrap();
    eventually("welcome back", Duration::from_secs(10), || {
        replies_to(&smsc, HANDSET)
            .iter()
            .any(|r| r.1.contains("welcome back"))
    })
    .await;
    let ack = client
        .submit(vec![msg("after-3", &format!("+{HANDSET}"), "welcome")])
        .await
        .unwrap();
    assert_eq!(ack.results[0].reason, 0, "{:?}", ack.results[0]);
    gw.shutdown().await;
}

/// The next opt-out/opt-in event, acknowledging everything on the way.
async fn next_opt_event(
    client: &sluice::ingest::client::Client,
    events: &mut tokio::sync::mpsc::Receiver<pb::Event>,
) -> pb::OptEvent {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let e = events.recv().await.unwrap();
            client.ack(vec![e.event_id]).await.unwrap();
            if let Some(pb::event::Kind::Opt(o)) = e.kind {
                return o;
            }
        }
    })
    .await
    .expect("an opt event in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopall_covers_every_program_and_events_reach_upstream() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &smsc);
    programs(&mut cfg);
    let gw = sluice::gateway::start(cfg).await.unwrap();
    let (client, mut events) =
        sluice::ingest::client::Client::connect(&gw.ingest_addr.to_string(), TENANT, TOKEN)
            .await
            .unwrap();
    client.subscribe(0).await.unwrap();
    eventually("bound", Duration::from_secs(5), || smsc.stats().binds >= 2).await;
    smsc.inject_mo("14155550888", "67890", "STOPALL").unwrap();
    let ev = next_opt_event(&client, &mut events).await;
    assert!(ev.opted_out);
    assert_eq!(ev.scope, "tenant:demo");
    assert_eq!(ev.keyword, "STOPALL");
    for from in ["12345", "67890"] {
        let mut m = msg(&format!("all-{from}"), "+14155550888", "x");
        m.from = from.into();
        assert_eq!(
            client.submit(vec![m]).await.unwrap().results[0].reason,
            pb::RejectReason::Suppressed as i32
        );
    }
    // A configured extra keyword (ARRET) opts out of its program only.
    smsc.inject_mo("14155550999", "12345", "Arret!").unwrap();
    let ev = next_opt_event(&client, &mut events).await;
    assert_eq!(
        (ev.keyword.as_str(), ev.scope.as_str()),
        ("ARRET", "program:demo:alerts")
    );
    let mut promo = msg("arret-2", "+14155550999", "x");
    promo.from = "67890".into();
    assert_eq!(
        client.submit(vec![promo]).await.unwrap().results[0].reason,
        0
    );
    let ack = client
        .submit(vec![msg("arret-1", "+14155550999", "x")])
        .await
        .unwrap();
    assert_eq!(ack.results[0].reason, pb::RejectReason::Suppressed as i32);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_import_and_admin_auth() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &smsc);
    programs(&mut cfg);
    let gw = sluice::gateway::start(cfg.clone()).await.unwrap();
    let http_addr = gw.http_addr.unwrap();

    // Auth: none → 401, wrong → 403.
    assert_eq!(
        http(http_addr, "GET", "/admin/optouts/count", None, b"")
            .await
            .0,
        401
    );
    assert_eq!(
        http(http_addr, "GET", "/admin/optouts/count", Some("nope"), b"")
            .await
            .0,
        403
    );

    // 1,000,000 numbers with a few malformed lines.
    let mut csv = String::with_capacity(16 << 20);
    csv.push_str("number\n");
    let bad_lines = [1000usize, 250_000, 999_999];
    for i in 0..1_000_000usize {
        if bad_lines.contains(&(i + 2)) {
            csv.push_str("+1-not-a-number\n");
        } else {
            csv.push_str(&format!("+1212{:07}\n", i));
        }
    }
    csv.push_str("\"unterminated,quote\n");
    let (st, body) = http(
        http_addr,
        "POST",
        "/admin/optouts/import?scope=global",
        Some(ADMIN),
        csv.as_bytes(),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let lines: Vec<u64> = v["bad_rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, vec![1000, 250_000, 999_999, 1_000_002], "{body}");
    assert_eq!(v["imported"], 1_000_000 - 3);
    let (_, body) = http(
        http_addr,
        "GET",
        "/admin/optouts/count?scope=global",
        Some(ADMIN),
        b"",
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["count"], 1_000_000 - 3);
    let per_entry = v["memory_bytes"].as_f64().unwrap() / 999_997.0;
    assert!(per_entry < 16.0, "{per_entry} bytes per entry");

    // The imported numbers are suppressed, across a restart too.
    let (client, _) =
        sluice::ingest::client::Client::connect(&gw.ingest_addr.to_string(), TENANT, TOKEN)
            .await
            .unwrap();
    let ack = client
        .submit(vec![msg("imp-1", "+12120000042", "x")])
        .await
        .unwrap();
    assert_eq!(ack.results[0].reason, pb::RejectReason::Suppressed as i32);
    gw.shutdown().await;
    let gw = sluice::gateway::start(cfg).await.unwrap();
    let (client, _) =
        sluice::ingest::client::Client::connect(&gw.ingest_addr.to_string(), TENANT, TOKEN)
            .await
            .unwrap();
    let ack = client
        .submit(vec![msg("imp-2", "+12120999998", "x")])
        .await
        .unwrap();
    assert_eq!(ack.results[0].reason, pb::RejectReason::Suppressed as i32);
    // An API opt-in lifts it; an unknown scope is refused clearly.
    let (st, _) = http(
        gw.http_addr.unwrap(),
        "DELETE",
        "/admin/optouts/%2B12120999998?scope=global",
        Some(ADMIN),
        b"",
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(
        client
            .submit(vec![msg("imp-3", "+12120999998", "x")])
            .await
            .unwrap()
            .results[0]
            .reason,
        0
    );
    let (st, body) = http(
        gw.http_addr.unwrap(),
        "POST",
        "/admin/optouts",
        Some(ADMIN),
        br#"{"number":"+12125550100","scope":"nope"}"#,
    )
    .await;
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("unknown scope"));
    let (st, body) = http(
        gw.http_addr.unwrap(),
        "POST",
        "/admin/optouts",
        Some(ADMIN),
        b"{not json",
    )
    .await;
    assert_eq!(st, 400, "{body}");
    gw.shutdown().await;
}
