//! The tenants' HTTP/JSON API end to end: a batch posted over HTTP is
//! durable when answered, reaches the SMSC once, ends with one event on the
//! framed protocol's subscription, and a repeat of its client_ref sends
//! nothing more.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use sluice::ingest::pb;

/// A request to the API with a JSON body and, when given, a bearer token.
async fn request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String, String) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("authorization", a));
    }
    http(addr, method, path, &headers, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_posted_over_http_is_sent_once_and_ends_with_one_event() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &smsc);
    cfg.api.listen = Some("127.0.0.1:0".parse().unwrap());
    let gw = sluice::gateway::start(cfg).await.unwrap();
    let api = gw.api_addr.expect("the API door is on");
    let (_sub, got) = subscriber(&gw.ingest_addr.to_string()).await;

    let batch = json!({ "messages": [
        { "client_ref": "h-1", "to": "+14155550100", "from": "12345", "text": "over http" },
        { "client_ref": "h-2", "to": "+14155550101", "from": "12345", "text": "second", "priority": "transactional" },
        { "client_ref": "h-3", "to": "not a number", "from": "12345", "text": "refused" },
    ]})
    .to_string();
    let (status, _, body) = request(api, "POST", "/v1/messages", Some(TOKEN), &batch).await;
    assert_eq!(status, 202, "{body}");
    let reply: Value = serde_json::from_str(&body).unwrap();
    let results = reply["results"].as_array().unwrap();
    assert_eq!(results[0]["status"], "accepted");
    assert_eq!(results[1]["status"], "accepted");
    assert_eq!(results[2]["status"], "rejected");
    assert_eq!(results[2]["reason"], "INVALID_NUMBER");
    let ids: Vec<u64> = results[..2]
        .iter()
        .map(|r| u64::from_str_radix(r["id"].as_str().unwrap(), 16).unwrap())
        .collect();
    // Accepted means durable: the ledger holds them (or they already ended).
    eventually("both delivered", Duration::from_secs(20), || {
        ids.iter()
            .all(|id| got.state_of(*id) == Some(pb::DeliveryState::StateDelivered))
    })
    .await;

    // The same client_ref again: the original id, nothing sent again.
    let again = json!({ "messages": [
        { "client_ref": "h-1", "to": "+14155550100", "from": "12345", "text": "over http" },
    ]})
    .to_string();
    let (status, _, body) = request(api, "POST", "/v1/messages", Some(TOKEN), &again).await;
    assert_eq!(status, 202, "{body}");
    let reply: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["results"][0]["status"], "duplicate");
    assert_eq!(
        reply["results"][0]["id"].as_str().unwrap(),
        format!("{:016x}", ids[0])
    );
    // A finished message is no longer live.
    let (status, _, _) = request(
        api,
        "GET",
        &format!("/v1/messages/{:016x}", ids[0]),
        Some(TOKEN),
        "",
    )
    .await;
    assert_eq!(status, 404);
    drained(&gw, Duration::from_secs(10)).await;
    assert_eq!(
        smsc.stats().messages,
        2,
        "each message reached the SMSC once"
    );
    assert_eq!(smsc.stats().duplicates, 0);
    assert_eq!(
        got.states.lock().values().map(Vec::len).sum::<usize>(),
        2,
        "one event each"
    );

    // The contract is served without a token; the rest needs one.
    let (status, _, doc) = request(api, "GET", "/v1/openapi.json", None, "").await;
    assert_eq!(status, 200);
    assert!(doc.contains("\"openapi\": \"3.1.0\""));
    let (status, headers, _) = request(api, "POST", "/v1/messages", Some("wrong"), &again).await;
    assert_eq!(status, 401);
    assert!(headers.contains("www-authenticate: bearer"), "{headers}");
}
