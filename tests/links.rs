//! Tracked links end to end: a tenant with `track_links` sends a text with
//! two links; the SMSC gets two short links on the tenant's domain in one
//! segment; following one redirects to its original and sends one click
//! event (first, then repeat); preview fetchers and HEAD are not clicks;
//! unknown codes, other hosts and another tenant's domain answer 404; the
//! links and their click counts survive a restart; past their retention
//! they answer 410.

mod common;

use std::time::Duration;

use common::*;
use sluice::config::Config;
use sluice::ingest::pb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
const LONG: &str =
    "https://shop.example/spring-collection/outdoor/jackets?utm_source=sms&utm_campaign=spring";
const HELP: &str = "https://shop.example/help/returns-and-exchanges";

/// One request with `host` and `agent`: (status, headers in lower case).
async fn get(
    addr: std::net::SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    agent: Option<&str>,
) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n");
    if let Some(a) = agent {
        head.push_str(&format!("user-agent: {a}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let out = String::from_utf8_lossy(&out).into_owned();
    let status = out[9..12].parse().unwrap();
    let headers = out.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
    (status, headers)
}

/// `GET /admin/campaigns/{campaign}?tenant=demo` as the operator.
async fn figures(http_addr: std::net::SocketAddr, campaign: &str) -> serde_json::Value {
    let auth = format!("Bearer {OPERATOR}");
    let path = format!("/admin/campaigns/{campaign}?tenant=demo");
    let (st, _, body) = http(http_addr, "GET", &path, &[("authorization", &auth)], "").await;
    assert_eq!(st, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn location(headers: &str) -> Option<&str> {
    headers.lines().find_map(|l| l.strip_prefix("location: "))
}

const OPERATOR: &str = "operator-token-0001";
const OTHER_ADMIN: &str = "other-admin-token-0001";

fn tracked_config(dir: &std::path::Path, smsc: &sluice::sim::smsc::Smsc) -> Config {
    let mut c = config(dir, smsc);
    c.http.admin_token = Some(sluice::model::Secret::new(OPERATOR));
    c.tenants[0].track_links = true;
    c.tenants[0].link_url = Some("https://go.acme.test".into());
    // A second tenant with a domain of its own.
    let mut other = c.tenants[0].clone();
    other.name = "other".into();
    other.token = sluice::model::Secret::new("other-token-0001");
    other.senders = vec!["22222".into()];
    other.link_url = Some("https://other.test".into());
    other.smpp_system_id = None;
    other.smpp_password = None;
    other.admin_token = Some(sluice::model::Secret::new(OTHER_ADMIN));
    c.tenants.push(other);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracked_links_redirect_count_clicks_and_outlive_a_restart() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = sluice::gateway::start(tracked_config(dir.path(), &smsc))
        .await
        .unwrap();
    let (client, got) = subscriber(&gw.ingest_addr.to_string()).await;
    // 178 characters as written: two segments; one once shortened.
    let text = format!("Spring sale! Jackets: {LONG} Returns: {HELP} Reply STOP to opt out");
    assert!(text.chars().count() > 160);
    let mut m = msg("spring-1", "+14155550100", &text);
    m.campaign_id = "spring".into();
    let id = accepted_ids(&client.submit(vec![m]).await.unwrap())[0];
    eventually("delivered", Duration::from_secs(20), || {
        got.terminal_count() == 1
    })
    .await;
    assert_eq!(got.state_of(id), Some(pb::DeliveryState::StateDelivered));
    let texts = smsc.texts();
    assert_eq!(texts.len(), 1);
    let sent = &texts[0].2;
    assert_eq!(smsc.stats().submits, 1, "one segment: {sent}");
    let codes: Vec<String> = sent
        .split("https://go.acme.test/")
        .skip(1)
        .map(|rest| rest[..11].to_owned())
        .collect();
    assert_eq!(codes.len(), 2, "{sent}");
    assert!(!sent.contains("shop.example"), "{sent}");
    assert!(sent.ends_with("Reply STOP to opt out"), "{sent}");

    let public = gw.public_addr.unwrap();
    let host = "go.acme.test";
    // A click: redirected, one event, first.
    let (st, h) = get(public, "GET", host, &format!("/{}", codes[0]), Some(IPHONE)).await;
    assert_eq!((st, location(&h)), (302, Some(LONG)), "{h}");
    assert!(h.contains("cache-control: no-store"), "{h}");
    eventually("a click event", Duration::from_secs(10), || {
        got.clicks.lock().len() == 1
    })
    .await;
    {
        let c = got.clicks.lock()[0].clone();
        assert_eq!(
            (
                c.message_id,
                c.client_ref.as_str(),
                c.campaign_id.as_str(),
                c.link_index
            ),
            (id, "spring-1", "spring", 0)
        );
        assert!(c.first);
        assert_eq!((c.url.as_str(), c.number.as_str()), (LONG, "+14155550100"));
        assert_eq!(c.user_agent, IPHONE);
        assert_eq!(c.ip_class, "127.0.0.0/24");
    }
    // A preview bot's GET and a HEAD: redirected, no event.
    let (st, _) = get(
        public,
        "GET",
        host,
        &format!("/{}", codes[1]),
        Some("facebookexternalhit/1.1"),
    )
    .await;
    assert_eq!(st, 302);
    let (st, _) = get(
        public,
        "HEAD",
        host,
        &format!("/{}", codes[1]),
        Some(IPHONE),
    )
    .await;
    assert_eq!(st, 302);
    // A repeat click, then the second link.
    let (st, _) = get(public, "GET", host, &format!("/{}", codes[0]), Some(IPHONE)).await;
    assert_eq!(st, 302);
    let (st, h) = get(public, "GET", host, &format!("/{}", codes[1]), Some(IPHONE)).await;
    assert_eq!((st, location(&h)), (302, Some(HELP)), "{h}");
    eventually("three click events", Duration::from_secs(10), || {
        got.clicks.lock().len() >= 3
    })
    .await;
    {
        let clicks = got.clicks.lock().clone();
        assert_eq!(clicks.len(), 3, "previews are not clicks: {clicks:?}");
        let seen: Vec<(u32, bool)> = clicks.iter().map(|c| (c.link_index, c.first)).collect();
        assert_eq!(seen, [(0, true), (0, false), (1, true)]);
    }
    // Nothing for codes that name no link, the wrong host, or another
    // tenant's domain.
    for (host, path) in [
        (host, "/00000000000".to_owned()),
        (host, "/nope".to_owned()),
        (host, format!("/{}x", codes[0])),
        ("other.test", format!("/{}", codes[0])),
        ("x", format!("/{}", codes[0])),
    ] {
        let (st, h) = get(public, "GET", host, &path, Some(IPHONE)).await;
        assert_eq!(st, 404, "{host}{path}: {h}");
    }
    let metrics = http(gw.http_addr.unwrap(), "GET", "/metrics", &[], "")
        .await
        .2;
    assert!(
        metrics.contains("sluice_clicks_total{campaign=\"spring\",tenant=\"demo\"} 3")
            || metrics.contains("sluice_clicks_total{tenant=\"demo\",campaign=\"spring\"} 3"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("click"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(metrics.contains("sluice_link_previews_total{tenant=\"demo\"} 2"));

    // A STOP from the recipient is the campaign's opt-out.
    smsc.inject_mo("14155550100", "12345", "STOP").unwrap();
    eventually("the opt-out event", Duration::from_secs(10), || {
        !got.opts.lock().is_empty()
    })
    .await;
    assert_eq!(got.opts.lock()[0].campaign_id, "spring");
    let v = figures(gw.http_addr.unwrap(), "spring").await;
    assert_eq!(
        (
            &v["delivered"],
            &v["clicks"],
            &v["clickers"],
            &v["previews"],
            &v["optouts"]
        ),
        (&1.into(), &3.into(), &1.into(), &2.into(), &1.into()),
        "{v}"
    );
    assert_eq!(
        (&v["click_through_rate"], &v["optout_rate"]),
        (&1.0.into(), &1.0.into()),
        "{v}"
    );
    // The same figures from the command line.
    let addr = format!("http://{}", gw.http_addr.unwrap());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["trace", "--campaign", "demo:spring", "--admin", &addr])
            .args(["--admin-token", OPERATOR])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        printed.contains("delivered 1, clicks 3 by 1 recipients (click-through 100.0%), previews 2, opt-outs 1 (opt-out rate 100.0%)"),
        "{printed}"
    );
    // Another tenant's admin token reads its own campaigns, not these.
    let other = format!("Bearer {OTHER_ADMIN}");
    let auth = [("authorization", other.as_str())];
    let (st, _, body) = http(
        gw.http_addr.unwrap(),
        "GET",
        "/admin/campaigns/spring?tenant=demo",
        &auth,
        "",
    )
    .await;
    assert_eq!(st, 403, "{body}");
    let (st, _, body) = http(
        gw.http_addr.unwrap(),
        "GET",
        "/admin/campaigns/spring",
        &auth,
        "",
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("\"delivered\":0"), "{body}");
    drop(client);
    gw.shutdown().await;

    // A restart keeps the links.
    let gw = sluice::gateway::start(tracked_config(dir.path(), &smsc))
        .await
        .unwrap();
    let public = gw.public_addr.unwrap();
    let (st, h) = get(public, "GET", host, &format!("/{}", codes[1]), Some(IPHONE)).await;
    assert_eq!((st, location(&h)), (302, Some(HELP)), "{h}");
    // And the campaign's figures: clicks from the link store, deliveries
    // and opt-outs from the snapshot saved at the clean stop.
    let v = figures(gw.http_addr.unwrap(), "spring").await;
    assert_eq!(
        (&v["delivered"], &v["clicks"], &v["clickers"], &v["optouts"]),
        (&1.into(), &4.into(), &1.into(), &1.into()),
        "{v}"
    );
    gw.shutdown().await;

    // Past their retention they answer 410.
    let mut cfg = tracked_config(dir.path(), &smsc);
    cfg.links.retention = Duration::from_millis(1);
    let gw = sluice::gateway::start(cfg).await.unwrap();
    let (st, h) = get(
        gw.public_addr.unwrap(),
        "GET",
        host,
        &format!("/{}", codes[0]),
        Some(IPHONE),
    )
    .await;
    assert_eq!(st, 410, "{h}");
    gw.shutdown().await;
}
