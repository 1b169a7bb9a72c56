//! Every message's history (issue 15, part 2), end to end: a multi-part
//! message delivered through the SMSC simulator has a timeline with every
//! step and its time (accepted, dispatched with its carrier and parts, each
//! part's carrier id, each receipt, delivered, the event acknowledged),
//! still there after a restart, found by client_ref and by carrier id, and
//! printed by `sluice trace`; a tenant's admin token cannot read another
//! tenant's; a tiny `max_bytes` drops the oldest segments and counts them.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use sluice::config::{Secret, TenantConfig};

const OPERATOR: &str = "operator-token-0001";
const DEMO_ADMIN: &str = "demo-admin-token-01";
const GLOBEX_ADMIN: &str = "globex-admin-token1";

fn tenant(name: &str, token: &str, admin: &str, sender: &str) -> TenantConfig {
    TenantConfig {
        name: name.into(),
        token: Secret::new(token),
        admin_token: Some(Secret::new(admin)),
        senders: vec![sender.into()],
        default_validity: Duration::from_secs(3600),
        ..TenantConfig::default()
    }
}

/// GET with a bearer token: status and JSON body.
async fn get(addr: SocketAddr, path: &str, token: &str) -> (u16, serde_json::Value) {
    let (status, _, body) = http(
        addr,
        "GET",
        path,
        &[("authorization", &format!("Bearer {token}"))],
        "",
    )
    .await;
    (
        status,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    )
}

fn steps(t: &serde_json::Value) -> Vec<String> {
    t["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["step"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits (bounded, polling the admin API) until the message's timeline has
/// its event acknowledged; returns the timeline.
async fn acked_timeline(http: SocketAddr, id: u64) -> serde_json::Value {
    let path = format!("/admin/messages/{id:016x}/history");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (st, t) = get(http, &path, OPERATOR).await;
        if st == 200 && steps(&t).iter().any(|s| s == "event_acked") {
            return t;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no acknowledged timeline: {st} {t}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The timeline of a 3-part message delivered by the simulator, checked
/// step by step; returns the carrier ids of its parts.
fn check_delivered_three_parts(t: &serde_json::Value, id: u64) -> Vec<String> {
    assert_eq!(t["id"], format!("{id:016x}"));
    assert_eq!(t["tenant"], TENANT);
    assert_eq!(t["client_ref"], "long-1");
    assert_eq!(t["to"], "+14155550100");
    assert_eq!(t["state"], "delivered", "{t}");
    let events = t["events"].as_array().unwrap();
    let s = steps(t);
    assert_eq!(s[0], "accepted", "{s:?}");
    assert_eq!(s[1], "dispatched", "{s:?}");
    assert_eq!(events[1]["carrier"], "sim");
    assert_eq!(events[1]["parts"], 3);
    let answers: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["step"] == "carrier_accepted")
        .collect();
    let mut parts: Vec<u64> = answers
        .iter()
        .map(|e| e["part"].as_u64().unwrap())
        .collect();
    parts.sort();
    assert_eq!(parts, [0, 1, 2], "{s:?}");
    let ids: Vec<String> = answers
        .iter()
        .map(|e| e["carrier_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(ids.iter().all(|i| !i.is_empty()), "{ids:?}");
    let receipts: Vec<&serde_json::Value> =
        events.iter().filter(|e| e["step"] == "receipt").collect();
    assert_eq!(receipts.len(), 3, "{s:?}");
    for r in &receipts {
        assert_eq!(r["state"], "delivered");
        assert_eq!(r["stat"], "DELIVRD");
    }
    let fin = s.iter().position(|x| x == "final").expect("a final step");
    assert_eq!(events[fin]["state"], "delivered");
    assert!(s.iter().position(|x| x == "event_acked").unwrap() > fin);
    // Every step has a time, in order, and a readable one.
    let times: Vec<u64> = events
        .iter()
        .map(|e| e["at_ms"].as_u64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert!(
        events
            .iter()
            .all(|e| e["at"].as_str().unwrap().ends_with('Z'))
    );
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivered_multipart_message_has_its_whole_timeline_after_a_restart_too() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &smsc);
    cfg.http.admin_token = Some(Secret::new(OPERATOR));
    cfg.tenants = vec![
        tenant(TENANT, TOKEN, DEMO_ADMIN, "12345"),
        tenant("globex", "globex-token-0001", GLOBEX_ADMIN, "67890"),
    ];
    let gw = sluice::gateway::start(cfg.clone()).await.unwrap();
    let http = gw.http_addr.unwrap();
    let addr = gw.ingest_addr.to_string();
    let (client, got) = subscriber(&addr).await;
    // 400 GSM-7 characters: three parts of 153.
    let text = "Your order has shipped. ".repeat(17);
    assert!(text.len() > 306 && text.len() <= 459);
    let ack = client
        .submit(vec![msg("long-1", "+14155550100", &text)])
        .await
        .unwrap();
    let id = accepted_ids(&ack)[0];
    eventually("delivered", Duration::from_secs(20), || {
        got.state_of(id) == Some(sluice::ingest::pb::DeliveryState::StateDelivered)
    })
    .await;
    let t = acked_timeline(http, id).await;
    let carrier_ids = check_delivered_three_parts(&t, id);

    // By client_ref and by carrier id.
    let (st, v) = get(http, "/admin/history?client_ref=demo:long-1", OPERATOR).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["messages"].as_array().unwrap().len(), 1);
    assert_eq!(v["messages"][0]["id"], t["id"]);
    let (st, v) = get(
        http,
        &format!("/admin/history?carrier_id=sim:{}", carrier_ids[1]),
        OPERATOR,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["messages"][0]["id"], t["id"]);
    // By recipient within the last hour (the `+` percent-encoded).
    let (st, v) = get(http, "/admin/history?to=%2B14155550100&since=1h", OPERATOR).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["messages"][0]["id"], t["id"]);

    // The tenant sees its own; another tenant gets 404, as for an unknown id.
    let path = format!("/admin/messages/{id:016x}/history");
    assert_eq!(get(http, &path, DEMO_ADMIN).await.0, 200);
    let (st, v) = get(http, &path, GLOBEX_ADMIN).await;
    assert_eq!(st, 404, "{v}");
    let (st_unknown, _) = get(
        http,
        "/admin/messages/00000000deadbeef/history",
        GLOBEX_ADMIN,
    )
    .await;
    assert_eq!(st_unknown, 404);
    let (st, v) = get(http, "/admin/history?client_ref=demo:long-1", GLOBEX_ADMIN).await;
    assert_eq!(st, 404, "{v}");
    assert!(v["messages"].as_array().unwrap().is_empty());

    // `sluice trace` prints the timeline.
    let out = trace(&[
        &format!("{id:016x}"),
        "--admin",
        &format!("http://{http}"),
        "--admin-token",
        OPERATOR,
    ])
    .await;
    for want in [
        "accepted",
        "dispatched",
        "carrier_accepted",
        "receipt",
        "final",
        "event_acked",
        "DELIVRD",
        &carrier_ids[0],
    ] {
        assert!(out.contains(want), "{want} missing in:\n{out}");
    }
    let out = trace(&[
        "--client-ref",
        "demo:long-1",
        "--json",
        "--admin",
        &format!("http://{http}"),
        "--admin-token",
        OPERATOR,
    ])
    .await;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["messages"][0]["id"], t["id"]);

    // After a restart the timeline is read back from disk.
    drop(client);
    gw.shutdown().await;
    let gw = sluice::gateway::start(cfg).await.unwrap();
    let http = gw.http_addr.unwrap();
    let (st, again) = get(http, &path, OPERATOR).await;
    assert_eq!(st, 200, "{again}");
    assert_eq!(again, t, "the same timeline after a restart");
    let (st, v) = get(
        http,
        &format!("/admin/history?carrier_id=sim:{}", carrier_ids[2]),
        DEMO_ADMIN,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["messages"][0]["id"], t["id"]);
    gw.shutdown().await;
}

/// Runs `sluice trace ARGS`; its stdout.
async fn trace(args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("trace")
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sluice trace failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_max_bytes_drops_the_oldest_segments_and_counts_them() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &smsc);
    cfg.http.admin_token = Some(Secret::new(OPERATOR));
    let max = 64 << 10;
    cfg.history.max_bytes = max;
    let gw = sluice::gateway::start(cfg).await.unwrap();
    let http = gw.http_addr.unwrap();
    let addr = gw.ingest_addr.to_string();
    let (client, got) = subscriber(&addr).await;
    let before = counter_sum(
        &metrics_text(http).await,
        "sluice_history_segments_dropped_total",
    );
    // ~250 bytes of history each: 2000 messages are ~8 times max_bytes.
    let mut ids = Vec::new();
    for batch in 0..20 {
        let msgs = (0..100)
            .map(|i| msg(&format!("r{batch}-{i}"), "+14155550100", "hello"))
            .collect();
        ids.extend(accepted_ids(&client.submit(msgs).await.unwrap()));
    }
    eventually("all final", Duration::from_secs(30), || {
        got.terminal_count() == ids.len()
    })
    .await;
    // A lookup makes the writer take what its buffers hold (the oldest
    // go), and a message sent after that is kept: within one round of
    // writing, records are ordered by buffer, not by time...
    let (st, _) = get(
        http,
        &format!("/admin/messages/{:016x}/history", ids[0]),
        OPERATOR,
    )
    .await;
    assert_eq!(st, 404, "the first messages' history went");
    let late = client
        .submit(vec![msg("late", "+14155550100", "hello")])
        .await
        .unwrap();
    let last = accepted_ids(&late)[0];
    eventually("the late one final", Duration::from_secs(30), || {
        got.state_of(last).is_some()
    })
    .await;
    let (st, v) = get(
        http,
        &format!("/admin/messages/{last:016x}/history"),
        OPERATOR,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    // ...the segments dropped are counted, and the directory stays within
    // max_bytes (plus the head segment being written).
    let after = counter_sum(
        &metrics_text(http).await,
        "sluice_history_segments_dropped_total",
    );
    assert!(after > before, "{before} -> {after}");
    let on_disk: u64 = std::fs::read_dir(dir.path().join("history"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(on_disk <= max + max / 8, "{on_disk} bytes on disk");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_the_carrier_throttled_shows_its_wait_and_cause() {
    // Every other submit answered ESME_RTHROTTLED: some part waits.
    let smsc = smsc(|c| c.throttle_fraction = 0.5).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &smsc);
    cfg.http.admin_token = Some(Secret::new(OPERATOR));
    let gw = sluice::gateway::start(cfg).await.unwrap();
    let http = gw.http_addr.unwrap();
    let (client, got) = subscriber(&gw.ingest_addr.to_string()).await;
    let msgs = (0..20)
        .map(|i| msg(&format!("t{i}"), "+14155550100", "hello"))
        .collect();
    let ids = accepted_ids(&client.submit(msgs).await.unwrap());
    eventually("all final", Duration::from_secs(30), || {
        got.terminal_count() == ids.len()
    })
    .await;
    let mut waits = Vec::new();
    for id in &ids {
        let (st, t) = get(
            http,
            &format!("/admin/messages/{id:016x}/history"),
            OPERATOR,
        )
        .await;
        assert_eq!(st, 200, "{t}");
        for e in t["events"].as_array().unwrap() {
            if e["step"] == "wait" {
                waits.push(e["cause"].as_str().unwrap().to_owned());
            }
        }
    }
    assert!(!waits.is_empty(), "no wait recorded");
    assert!(
        waits
            .iter()
            .all(|c| c == "carrier refused for now: ESME_RTHROTTLED"),
        "{waits:?}"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_written_before_a_sigkill_is_read_back_after_the_restart() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("sluice.toml");
    std::fs::write(
        &cfg_path,
        format!(
            r#"
data_dir = "{data}"
[ingest]
listen = "127.0.0.1:0"
[http]
listen = "127.0.0.1:0"
admin_token = "{OPERATOR}"
[public]
listen = "127.0.0.1:0"
[[tenants]]
name = "{TENANT}"
token = "{TOKEN}"
senders = ["12345"]
[[carriers]]
name = "sim"
[[carriers.binds]]
address = "{smsc}"
system_id = "sluice"
password = "pw"
"#,
            data = dir.path().join("data").display(),
            smsc = smsc.local_addr(),
        ),
    )
    .unwrap();
    let (mut child, started) = spawn_gateway_started(&cfg_path).await;
    let http = started.http.unwrap();
    let (client, got) = subscriber(&started.ingest.to_string()).await;
    let text = "Your order has shipped. ".repeat(17);
    let ack = client
        .submit(vec![msg("long-1", "+14155550100", &text)])
        .await
        .unwrap();
    let id = accepted_ids(&ack)[0];
    eventually("delivered", Duration::from_secs(20), || {
        got.state_of(id) == Some(sluice::ingest::pb::DeliveryState::StateDelivered)
    })
    .await;
    // The lookup flushed it to the head segment (not synced, not closed).
    let before = acked_timeline(http, id).await;
    check_delivered_three_parts(&before, id);
    drop(client);
    child.kill(); // SIGKILL: the head segment stays `.open`
    let heads = |d: &std::path::Path| {
        std::fs::read_dir(d)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".open")
            })
            .count()
    };
    let hist = dir.path().join("data/history");
    assert_eq!(heads(&hist), 1, "the killed gateway's head segment");
    let (_child, started) = spawn_gateway_started(&cfg_path).await;
    let (st, after) = get(
        started.http.unwrap(),
        &format!("/admin/messages/{id:016x}/history"),
        OPERATOR,
    )
    .await;
    assert_eq!(st, 200, "{after}");
    assert_eq!(after, before, "the same timeline after SIGKILL and restart");
}
