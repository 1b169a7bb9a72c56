//! The operator's edges (issue 12), end to end: recipient numbers held to
//! the numbering plan, `sluice send --wait` beside a live campaign
//! subscriber, `/readyz` following the binds and the drain, bind refusals
//! counted, and `sluice check-config` listing every mistake at once.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use sluice::config::Secret;
use sluice::ingest::Backend as _;
use sluice::ingest::client::Client;
use sluice::ingest::pb;

/// A raw HTTP/1.1 GET: (status, body).
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let (status, _, body) = http(addr, "GET", path, &[], "").await;
    (status, body)
}

// === numbers ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipients_are_e164_unless_the_tenant_has_a_default_country_and_events_carry_e164() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &smsc);
    let mut national = cfg.tenants[0].clone();
    national.name = "national".into();
    national.token = Secret::new("national-token-1");
    national.senders = vec!["23456".into()];
    national.default_country = Some("US".into());
    cfg.tenants.push(national);
    let gw = sluice::gateway::start(cfg).await.unwrap();
    let addr = gw.ingest_addr.to_string();
    let (client, got) = subscriber(&addr).await;

    // The issue's cases: no '+' (was delivered to Switzerland), spaces, and a
    // +41 number too short for the Swiss plan.
    let ack = client
        .submit(vec![
            msg("no-plus", "4155550100", "x"),
            msg("spaces", " +447700900123", "x"),
            msg("swiss", "+4155550100", "x"),
            msg("inner", "+44 7700 900123", "x"),
            msg("fine", "+447700900123", "x"),
        ])
        .await
        .unwrap();
    let r = &ack.results;
    for bad in &r[..4] {
        assert_eq!(
            bad.reason,
            pb::RejectReason::InvalidNumber as i32,
            "{bad:?}"
        );
    }
    assert!(
        r[0].detail.contains("'+'") && r[0].detail.contains("default_country"),
        "{}",
        r[0].detail
    );
    assert!(
        r[2].detail.contains("+41 (CH)") && r[2].detail.contains("allows 9"),
        "{}",
        r[2].detail
    );
    assert!(r[3].detail.contains("only digits"), "{}", r[3].detail);
    assert_eq!(r[4].reason, 0, "{:?}", r[4]);

    // A tenant with default_country = "US" may write national numbers.
    let (nat, nat_got) = subscriber_as(&addr, "national", "national-token-1").await;
    let from_own_sender = |mut m: pb::SubmitMessage| {
        m.from = "23456".into();
        m
    };
    let ack = nat
        .submit(vec![
            from_own_sender(msg("n-1", "(415) 555-0101", "national form")),
            from_own_sender(msg("n-2", "+14155550102", "e164 form")),
        ])
        .await
        .unwrap();
    let ids = accepted_ids(&ack);
    eventually("national messages end", Duration::from_secs(20), || {
        ids.iter().all(|id| nat_got.state_of(*id).is_some())
    })
    .await;
    let texts = smsc.texts();
    assert!(
        texts
            .iter()
            .any(|(_, dst, text, _)| dst == "14155550101" && text == "national form"),
        "normalised to +1 415 555 0101: {texts:?}"
    );

    // Handset numbers from the SMSC come without '+'; events carry E.164.
    smsc.inject_mo("14155550123", "12345", "hello there")
        .unwrap();
    smsc.inject_mo("14155550124", "12345", "STOP").unwrap();
    eventually(
        "inbound and opt-out events",
        Duration::from_secs(20),
        || !got.inbound.lock().is_empty() && !got.opts.lock().is_empty(),
    )
    .await;
    let inbound = got.inbound.lock()[0].clone();
    assert_eq!(
        (inbound.from.as_str(), inbound.to.as_str()),
        ("+14155550123", "12345")
    );
    assert_eq!(got.opts.lock()[0].number, "+14155550124");
    gw.shutdown().await;
}

// === send --wait beside a live subscriber ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_wait_prints_its_own_event_and_leaves_the_others_to_the_subscriber() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = sluice::gateway::start(config(dir.path(), &smsc))
        .await
        .unwrap();
    let addr = gw.ingest_addr.to_string();

    // The campaign system's traffic: 20 messages and 4 inbound messages,
    // whose events wait in the tenant stream.
    let (campaign, mut events) = Client::connect(&addr, TENANT, TOKEN).await.unwrap();
    let batch: Vec<_> = (0..20)
        .map(|i| {
            msg(
                &format!("c-{i}"),
                &format!("+1415555{:04}", 1000 + i),
                "promo",
            )
        })
        .collect();
    let campaign_ids: HashSet<u64> = accepted_ids(&campaign.submit(batch).await.unwrap())
        .into_iter()
        .collect();
    for i in 0..4 {
        smsc.inject_mo(&format!("1415555{:04}", 2000 + i), "12345", "hi back")
            .unwrap();
    }
    let hub = gw.gateway.events().clone();
    eventually("24 events waiting", Duration::from_secs(30), || {
        hub.pending() == 24
    })
    .await;

    // The campaign system is subscribed (one event in flight, unacknowledged
    // while `send` runs) when an operator runs `sluice send --wait`.
    campaign.subscribe(1).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .unwrap()
        .unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "send",
            "--gateway",
            &addr,
            "--tenant",
            TENANT,
            "--token",
            TOKEN,
            "--to",
            "+14155559999",
            "--text",
            "from the operator",
            "--wait",
            "--timeout",
            "30s",
        ])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "send --wait failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let own_id = u64::from_str_radix(lines[0].split('\t').nth(1).unwrap(), 16).unwrap();
    let event: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(event["message_id"], format!("{own_id:016x}"));
    assert_eq!(event["state"], "delivered");

    // The campaign system still gets every one of its events, and not the
    // operator's.
    let mut seen_messages = HashSet::new();
    let mut inbound = 0;
    let mut next = Some(first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while seen_messages.len() < 20 || inbound < 4 {
        let e = match next.take() {
            Some(e) => e,
            None => tokio::time::timeout_at(deadline, events.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "only {} deliveries and {inbound} inbound",
                        seen_messages.len()
                    )
                })
                .unwrap(),
        };
        campaign.ack(vec![e.event_id]).await.unwrap();
        match e.kind {
            Some(pb::event::Kind::Delivery(d)) => {
                assert_ne!(
                    d.message_id, own_id,
                    "the operator's event reached the campaign"
                );
                assert!(campaign_ids.contains(&d.message_id));
                seen_messages.insert(d.message_id);
            }
            Some(pb::event::Kind::Inbound(_)) => inbound += 1,
            other => panic!("{other:?}"),
        }
    }
    campaign.ping().await.unwrap();
    eventually("nothing left", Duration::from_secs(10), || {
        hub.pending() == 0
    })
    .await;
    gw.shutdown().await;
}

// === readiness and bind refusals ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_the_binds_and_the_drain_and_refused_binds_are_counted() {
    // Wrong password: every bind is refused.
    let smsc_down = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &smsc_down);
    for b in &mut cfg.carriers[0].binds {
        b.password = Secret::new("wrong");
    }
    let gw = sluice::gateway::start(cfg).await.unwrap();
    let http = gw.http_addr.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let text = metrics_text(http).await;
        let refused = text.lines().any(|l| {
            l.starts_with("sluice_smpp_bind_failures_total{")
                && l.contains("carrier=\"sim\"")
                && l.contains("status=\"ESME_RINVPASWD\"")
        });
        if refused {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no refusal counted:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = get(http, "/readyz").await;
    assert_eq!(
        (status, body.as_str()),
        (503, "not ready: no bind up to carrier sim\n")
    );
    gw.shutdown().await;

    // Right password: ready once bound; not ready when the SMSC goes away,
    // nor while draining.
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = sluice::gateway::start(config(dir.path(), &smsc))
        .await
        .unwrap();
    let http = gw.http_addr.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while get(http, "/readyz").await.0 != 200 {
        assert!(tokio::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gw.health().is_ready());
    gw.begin_drain();
    assert_eq!(
        get(http, "/readyz").await,
        (503, "not ready: draining (shutting down)\n".to_owned())
    );
    gw.shutdown().await;

    let dir = tempfile::tempdir().unwrap();
    let gw = sluice::gateway::start(config(dir.path(), &smsc))
        .await
        .unwrap();
    let http = gw.http_addr.unwrap();
    eventually("bound", Duration::from_secs(20), || gw.health().is_ready()).await;
    smsc.shutdown();
    eventually("binds down", Duration::from_secs(20), || {
        !gw.health().is_ready()
    })
    .await;
    assert_eq!(get(http, "/readyz").await.0, 503);
    gw.shutdown().await;
}

// === check-config ===

const MISTAKES: &str = r#"node_id = "n1"

[ingest]
listen_adr = "127.0.0.1:7700"

[[tenants]]
name = "acme"
token = "short"

[[carriers]]
name = "c"

[[carriers.binds]]
address = "127.0.0.1:2775"
system_id = "sluice"
password = "pw"
window = "big"
"#;

#[tokio::test]
async fn check_config_lists_every_mistake_in_one_run_and_run_uses_the_same_checks() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, MISTAKES).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["check-config", bad.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "3 problems",
        "line 4: unknown key `ingest.listen_adr`; did you mean `ingest.listen`?",
        "line 17: invalid type: string \"big\", expected u32",
        "tenant \"acme\": token must have at least 8 characters",
    ] {
        assert!(
            report.contains(expected),
            "{expected:?} missing in:\n{report}"
        );
    }

    // `sluice run` refuses the file with the same report, before starting.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", "--config", bad.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `ingest.listen`?"));

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "check-config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/sluice.toml"),
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(": ok"));
}

// === reload ===

/// The operator's config file for a gateway process: carrier `rate`, bind
/// `window`.
fn reload_config(
    dir: &std::path::Path,
    smsc: &sluice::sim::smsc::Smsc,
    rate: u32,
    window: u32,
) -> String {
    format!(
        r#"
data_dir = "{data}"
[ingest]
listen = "127.0.0.1:0"
[http]
listen = "127.0.0.1:0"
admin_token = "operator-token-0001"
[public]
listen = "127.0.0.1:0"
[[tenants]]
name = "{TENANT}"
token = "{TOKEN}"
senders = ["12345"]
[[carriers]]
name = "sim"
rate = {rate}
[[carriers.binds]]
address = "{smsc}"
system_id = "sluice"
password = "pw"
window = {window}
count = 1
"#,
        data = dir.join("data").display(),
        smsc = smsc.local_addr(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_new_limits_at_once_and_replaces_changed_binds() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sluice.toml");
    std::fs::write(&path, reload_config(dir.path(), &smsc, 100, 64)).unwrap();
    let (gateway, log, started) = spawn_gateway_logged(&path).await;
    let http = started.http.unwrap();
    let rate = || async move {
        let (status, _, body) = common::http(
            http,
            "GET",
            "/admin/queues",
            &[("authorization", "Bearer operator-token-0001")],
            "",
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["carriers"]["sim"]["carrier_rate"].as_f64()
    };
    eventually("bound", Duration::from_secs(10), || smsc.stats().binds == 1).await;
    assert_eq!(rate().await, Some(100.0));
    let hup = || {
        let ok = std::process::Command::new("kill")
            .args(["-HUP", &gateway.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -HUP");
    };
    let logged = |needle: &str| {
        log.lines
            .lock()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    };

    let reload_line = |n: usize| {
        log.lines
            .lock()
            .iter()
            .filter(|l| l.contains("SIGHUP: configuration reloaded"))
            .nth(n)
            .cloned()
            .unwrap()
    };

    // A lower carrier rate applies now, without touching the bind.
    std::fs::write(&path, reload_config(dir.path(), &smsc, 40, 64)).unwrap();
    hup();
    eventually("reloaded", Duration::from_secs(10), || {
        logged("SIGHUP: configuration reloaded") == 1
    })
    .await;
    assert_eq!(rate().await, Some(40.0));
    let line = reload_line(0);
    assert!(line.contains("carriers.sim.rate: 100 → 40"), "{line}");
    assert!(line.trim_end().ends_with("at_restart="), "{line}");
    assert_eq!(smsc.stats().binds, 1);
    // A bind's window: the bind is replaced, the new one bound before the
    // old one unbinds.
    std::fs::write(&path, reload_config(dir.path(), &smsc, 40, 32)).unwrap();
    hup();
    eventually("reloaded again", Duration::from_secs(10), || {
        logged("SIGHUP: configuration reloaded") == 2
    })
    .await;
    let line = reload_line(1);
    assert!(line.contains("applied=carriers.sim.binds"), "{line}");
    eventually("rebound", Duration::from_secs(10), || {
        let s = smsc.stats();
        s.binds == 2 && s.unbinds == 1
    })
    .await;
    // A file that does not load changes nothing, and the gateway runs on.
    std::fs::write(&path, "[[carriers]]\nname = 3\n").unwrap();
    hup();
    eventually("refused", Duration::from_secs(10), || {
        logged("does not load; nothing changed") == 1
    })
    .await;
    assert_eq!(rate().await, Some(40.0));
    let s = smsc.stats();
    assert_eq!((s.binds, s.unbinds), (2, 1), "{s:?}");
    drop(gateway);
}
