//! Scoped admin tokens: a tenant's admin token sees and changes only its
//! own opt-outs and messages (403 for another tenant's, and for operator
//! routes), the operator's sees everything; `bearer` in any letter case; a
//! `+` in a path stays a `+`; admin bodies are capped.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use sluice::config::{ProgramConfig, Secret, TenantConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const OPERATOR: &str = "operator-token-0001";
const DEMO_ADMIN: &str = "demo-admin-token-01";
const GLOBEX_ADMIN: &str = "globex-admin-token1";
const HANDSET: &str = "+14155550100";

/// One request; status and body.
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: &str,
) -> (u16, serde_json::Value) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = auth
        .map(|a| format!("authorization: {a}\r\n"))
        .unwrap_or_default();
    s.write_all(
        format!(
            "{method} {path} HTTP/1.1\r\nhost: x\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default();
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

fn tenant(name: &str, token: &str, admin: &str, sender: &str) -> TenantConfig {
    TenantConfig {
        name: name.into(),
        token: Secret::new(token),
        admin_token: Some(Secret::new(admin)),
        senders: vec![sender.into()],
        default_validity: Duration::from_secs(3600),
        programs: vec![ProgramConfig {
            name: "alerts".into(),
            senders: vec![sender.into()],
            help_text: sluice::config::default_help_text(),
            opt_out_text: sluice::config::default_opt_out_text(),
            opt_in_text: sluice::config::default_opt_in_text(),
            stop_covers: Default::default(),
            keywords: Default::default(),
        }],
        ..TenantConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_admin_tokens_see_only_their_tenant() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &smsc);
    cfg.http.admin_token = Some(Secret::new(OPERATOR));
    cfg.tenants = vec![
        tenant(TENANT, TOKEN, DEMO_ADMIN, "12345"),
        tenant("globex", "globex-token-0001", GLOBEX_ADMIN, "67890"),
    ];
    let gw = sluice::gateway::start(cfg).await.unwrap();
    let http = gw.http_addr.unwrap();
    let op = bearer(OPERATOR);
    let demo = bearer(DEMO_ADMIN);
    let globex = bearer(GLOBEX_ADMIN);

    // Each tenant opts the handset out in its own scopes.
    for (auth, scope) in [
        (&demo, "tenant:demo"),
        (&demo, "program:demo:alerts"),
        (&globex, "program:globex:alerts"),
        (&op, "global"),
    ] {
        let (st, v) = call(
            http,
            "POST",
            "/admin/optouts",
            Some(auth),
            &format!(r#"{{"number":"{HANDSET}","scope":"{scope}"}}"#),
        )
        .await;
        assert_eq!(st, 200, "{scope}: {v}");
    }
    // ...but not in another's, nor the global one.
    for scope in [
        "tenant:demo",
        "program:demo:alerts",
        "global",
        "tenant:nobody",
    ] {
        let (st, v) = call(
            http,
            "POST",
            "/admin/optouts",
            Some(&globex),
            &format!(r#"{{"number":"{HANDSET}","scope":"{scope}"}}"#),
        )
        .await;
        assert_eq!(st, 403, "{scope}: {v}");
    }
    let (st, _) = call(
        http,
        "DELETE",
        &format!("/admin/optouts/{HANDSET}?scope=tenant:demo"),
        Some(&globex),
        "",
    )
    .await;
    assert_eq!(st, 403);

    // A `+` in the path stays a `+`; each sees its own scopes only.
    let path = format!("/admin/optouts/{HANDSET}");
    let (st, v) = call(http, "GET", &path, Some(&globex), "").await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["number"], HANDSET);
    assert_eq!(
        v["suppressed"],
        serde_json::json!(["program:globex:alerts"])
    );
    assert!(
        v["audit"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["scope"] == "program:globex:alerts"),
        "{v}"
    );
    let (_, v) = call(http, "GET", &path, Some(&demo), "").await;
    assert_eq!(
        v["suppressed"],
        serde_json::json!(["program:demo:alerts", "tenant:demo"])
    );
    let (_, v) = call(http, "GET", &path, Some(&op), "").await;
    assert_eq!(v["suppressed"].as_array().unwrap().len(), 4, "{v}");

    // Counts and exports of another tenant's scope.
    for path in [
        "/admin/optouts/count?scope=tenant:demo",
        "/admin/optouts/export?scope=tenant:demo",
        "/admin/optouts/count",
        "/admin/queues",
    ] {
        assert_eq!(
            call(http, "GET", path, Some(&globex), "").await.0,
            403,
            "{path}"
        );
    }
    let (st, v) = call(
        http,
        "GET",
        "/admin/optouts/count?scope=program:globex:alerts",
        Some(&globex),
        "",
    )
    .await;
    assert_eq!((st, v["count"].as_u64()), (200, Some(1)));
    assert_eq!(
        call(
            http,
            "POST",
            "/admin/optouts/import?scope=tenant:demo",
            Some(&globex),
            "+14155550111\n"
        )
        .await
        .0,
        403
    );
    assert_eq!(
        call(http, "POST", "/admin/carriers/sim/pause", Some(&globex), "")
            .await
            .0,
        403
    );

    // Messages: hold the carrier so they stay live.
    assert_eq!(
        call(http, "POST", "/admin/carriers/sim/pause", Some(&op), "")
            .await
            .0,
        200
    );
    let (client, _events) =
        sluice::ingest::client::Client::connect(&gw.ingest_addr.to_string(), TENANT, TOKEN)
            .await
            .unwrap();
    let id = accepted_ids(
        &client
            .submit(vec![msg("held", "+14155550199", "hi")])
            .await
            .unwrap(),
    )[0];
    let path = format!("/admin/messages/{id:016x}");
    let (st, v) = call(http, "GET", &path, Some(&globex), "").await;
    assert_eq!(st, 403, "{v}");
    let (st, v) = call(http, "GET", &path, Some(&demo), "").await;
    assert_eq!((st, v["tenant"].as_str()), (200, Some(TENANT)), "{v}");
    let (st, v) = call(http, "GET", &path, Some(&op), "").await;
    assert_eq!((st, v["stage"].as_str()), (200, Some("queued")), "{v}");

    // The scheme in any letter case; no token 401, a wrong one 403.
    let lower = format!("bearer {DEMO_ADMIN}");
    assert_eq!(call(http, "GET", &path, Some(&lower), "").await.0, 200);
    assert_eq!(
        call(http, "GET", &path, Some(&format!("BEARER {OPERATOR}")), "")
            .await
            .0,
        200
    );
    assert_eq!(call(http, "GET", &path, None, "").await.0, 401);
    assert_eq!(
        call(http, "GET", &path, Some("Bearer not-a-token-at-all"), "")
            .await
            .0,
        403
    );
    assert_eq!(
        call(http, "GET", &path, Some(&format!("Basic {OPERATOR}")), "")
            .await
            .0,
        401
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_bodies_are_capped() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &smsc);
    cfg.http.admin_token = Some(Secret::new(OPERATOR));
    cfg.http.max_body_bytes = 1024;
    cfg.http.max_import_bytes = 4096;
    let gw = sluice::gateway::start(cfg).await.unwrap();
    let http = gw.http_addr.unwrap();
    let op = bearer(OPERATOR);
    let big = format!(
        r#"{{"number":"{HANDSET}","scope":"global","note":"{}"}}"#,
        "x".repeat(2000)
    );
    let (st, v) = call(http, "POST", "/admin/optouts", Some(&op), &big).await;
    assert_eq!(st, 413, "{v}");
    // An import may be larger than a JSON body, within its own cap.
    let rows: String = (0..150).map(|i| format!("+1415555{i:04}\n")).collect();
    assert!(rows.len() > 1024 && rows.len() < 4096);
    let (st, v) = call(
        http,
        "POST",
        "/admin/optouts/import?scope=global",
        Some(&op),
        &rows,
    )
    .await;
    assert_eq!((st, v["imported"].as_u64()), (200, Some(150)), "{v}");
    let rows: String = (0..400).map(|i| format!("+1415556{i:04}\n")).collect();
    let (st, _) = call(
        http,
        "POST",
        "/admin/optouts/import?scope=global",
        Some(&op),
        &rows,
    )
    .await;
    assert_eq!(st, 413);
    gw.shutdown().await;
}
