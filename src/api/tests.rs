//! The API's routes against a backend made for the test (no sockets), and
//! the committed OpenAPI document against the routes.

use std::sync::atomic::{AtomicU64, Ordering};

use http_body_util::BodyExt;
use parking_lot::Mutex;
use tower::ServiceExt;

use super::*;
use crate::model::submit::{Accepted, Rejection};

const TOKEN: &str = "acme-token-123";

/// Accepts every message to a `+1` number (a repeated client_ref is a
/// duplicate), refuses the rest as INVALID_NUMBER; or, when `broken`, fails
/// every one as UNAVAILABLE.
struct Fake {
    headroom: AtomicU64,
    seen: Mutex<Vec<(String, Submission)>>,
    broken: bool,
}

impl Fake {
    fn new() -> Arc<Fake> {
        Arc::new(Fake {
            headroom: AtomicU64::new(1000),
            seen: Mutex::new(Vec::new()),
            broken: false,
        })
    }
}

impl ApiBackend for Fake {
    fn tenant_of(&self, token: &str) -> Option<Arc<str>> {
        (token == TOKEN).then(|| Arc::from("acme"))
    }

    fn submit(
        &self,
        tenant: &Arc<str>,
        messages: Vec<Submission>,
    ) -> Pin<Box<dyn Future<Output = Vec<SubmitResult>> + Send>> {
        let mut seen = self.seen.lock();
        let results = messages
            .into_iter()
            .map(|m| {
                let outcome = if self.broken {
                    Err(Rejection {
                        reason: RejectReason::Unavailable,
                        detail: "journal down".into(),
                    })
                } else if !m.to.starts_with("+1") {
                    Err(Rejection {
                        reason: RejectReason::InvalidNumber,
                        detail: "not a number".into(),
                    })
                } else {
                    let before = seen.iter().position(|(_, s)| s.client_ref == m.client_ref);
                    Ok(Accepted {
                        id: MessageId(before.unwrap_or(seen.len()) as u64 + 1),
                        duplicate: before.is_some(),
                    })
                };
                let client_ref = m.client_ref.clone();
                if outcome.as_ref().is_ok_and(|a| !a.duplicate) {
                    seen.push((tenant.to_string(), m));
                }
                SubmitResult {
                    client_ref,
                    outcome,
                }
            })
            .collect();
        Box::pin(std::future::ready(results))
    }

    fn put_media(
        &self,
        _tenant: &Arc<str>,
        media: MediaChunk,
    ) -> Pin<Box<dyn Future<Output = Result<MediaStored, MediaRefused>> + Send>> {
        let out = if media.data.starts_with(b"\x89PNG") {
            Ok(MediaStored {
                media_id: "ab".repeat(32),
                size: media.data.len() as u64,
                content_type: "image/png".into(),
            })
        } else {
            Err("not a media type the store takes".into())
        };
        Box::pin(std::future::ready(out))
    }

    fn headroom(&self) -> u64 {
        self.headroom.load(Ordering::Relaxed)
    }

    fn message(&self, tenant: &str, id: MessageId) -> Option<Value> {
        let seen = self.seen.lock();
        let (owner, m) = seen.get((id.0 as usize).checked_sub(1)?)?;
        (owner == tenant)
            .then(|| json!({ "id": id.to_string(), "client_ref": m.client_ref, "state": "queued" }))
    }
}

fn limits() -> ApiLimits {
    ApiLimits {
        max_body_bytes: 64 << 10,
        max_media_bytes: 1 << 10,
        body_timeout: Duration::from_secs(5),
        max_batch: 3,
        auth: ThrottleConfig {
            delay: Duration::from_millis(1),
            delay_max: Duration::from_millis(4),
            per_minute: 3,
        },
    }
}

async fn call(
    backend: &Arc<Fake>,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> (StatusCode, hyper::HeaderMap, Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header(AUTHORIZATION, format!("Bearer {t}"));
    }
    if let Some(ct) = content_type {
        req = req.header(CONTENT_TYPE, ct);
    }
    let res = router(backend.clone(), limits())
        .oneshot(req.body(body.into()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, json)
}

async fn post_json(backend: &Arc<Fake>, body: Value) -> (StatusCode, hyper::HeaderMap, Value) {
    call(
        backend,
        "POST",
        "/v1/messages",
        Some(TOKEN),
        Some("application/json"),
        body.to_string(),
    )
    .await
}

fn msg(client_ref: &str, to: &str) -> Value {
    json!({ "client_ref": client_ref, "to": to, "from": "12345", "text": "hi" })
}

#[tokio::test]
async fn a_batch_is_accepted_per_message_and_a_repeat_is_a_duplicate() {
    let b = Fake::new();
    let (status, _, body) = post_json(
        &b,
        json!({ "messages": [msg("a", "+14155550100"), msg("b", "12")] }),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let r = &body["results"];
    assert_eq!(r[0]["status"], "accepted");
    assert_eq!(r[0]["id"], "0000000000000001");
    assert_eq!(r[1]["status"], "rejected");
    assert_eq!(r[1]["reason"], "INVALID_NUMBER");
    let (status, _, body) = post_json(&b, json!({ "messages": [msg("a", "+14155550100")] })).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["results"][0]["status"], "duplicate");
    assert_eq!(body["results"][0]["id"], "0000000000000001");
    assert_eq!(b.seen.lock().len(), 1, "the repeat was not submitted again");
}

#[tokio::test]
async fn every_field_reaches_admission_as_the_domain_says() {
    let b = Fake::new();
    let m = json!({
        "client_ref": "full", "to": "+14155550100", "from": "12345", "text": "t",
        "media": ["ab".repeat(32)], "subject": "s", "channel": "mms", "fallback": "none",
        "campaign_id": "c", "validity_seconds": 60, "priority": "transactional", "tags": ["x"]
    });
    let (status, _, _) = post_json(&b, json!({ "messages": [m] })).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (tenant, s) = b.seen.lock()[0].clone();
    assert_eq!(tenant, "acme");
    assert_eq!(
        s,
        Submission {
            client_ref: "full".into(),
            to: "+14155550100".into(),
            from: "12345".into(),
            text: "t".into(),
            media: vec!["ab".repeat(32)],
            subject: "s".into(),
            channel: ChannelPref::Mms,
            fallback: FallbackPolicy::None,
            campaign_id: "c".into(),
            validity_seconds: 60,
            priority: Priority::Transactional,
            tags: vec!["x".into()],
            mms_service_code: String::new(),
            mms_linked_id: String::new(),
            ..Submission::default()
        }
    );
}

#[tokio::test]
async fn bad_requests_get_clear_json_errors_and_nothing_is_submitted() {
    let b = Fake::new();
    // Nothing accepted: 422 with the reasons.
    let (status, _, body) = post_json(&b, json!({ "messages": [msg("x", "12")] })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["results"][0]["reason"], "INVALID_NUMBER");
    for (body, status, says) in [
        (
            json!({ "messages": [] }),
            StatusCode::BAD_REQUEST,
            "at least one",
        ),
        (
            json!({ "msgs": [] }),
            StatusCode::BAD_REQUEST,
            "unknown field",
        ),
        (
            json!({ "messages": [{ "client_ref": "x", "to": "+14155550100" }] }),
            StatusCode::BAD_REQUEST,
            "missing field `from`",
        ),
        (
            json!({ "messages": [{ "client_ref": "x", "to": "+1", "from": "1", "channel": "fax" }] }),
            StatusCode::BAD_REQUEST,
            "unknown variant",
        ),
        (
            json!({ "messages": [msg("1", "+1"), msg("2", "+1"), msg("3", "+1"), msg("4", "+1")] }),
            StatusCode::PAYLOAD_TOO_LARGE,
            "at most 3",
        ),
    ] {
        let (got, _, reply) = post_json(&b, body.clone()).await;
        assert_eq!(got, status, "{body}: {reply}");
        let error = reply["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{body}: {error}");
    }
    let (status, _, body) = call(
        &b,
        "POST",
        "/v1/messages",
        Some(TOKEN),
        Some("application/json"),
        "{not json",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _, _) = call(
        &b,
        "POST",
        "/v1/messages",
        Some(TOKEN),
        Some("text/plain"),
        "x",
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let big = format!(
        "{{\"messages\": [], \"pad\": \"{}\"}}",
        "x".repeat(70 << 10)
    );
    let (status, _, _) = call(
        &b,
        "POST",
        "/v1/messages",
        Some(TOKEN),
        Some("application/json"),
        big,
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(b.seen.lock().is_empty());
}

#[tokio::test]
async fn without_a_known_token_nothing_but_the_contract_answers() {
    let b = Fake::new();
    for token in [None, Some("wrong-token")] {
        let (status, headers, body) = call(
            &b,
            "POST",
            "/v1/messages",
            token,
            Some("application/json"),
            json!({ "messages": [msg("a", "+14155550100")] }).to_string(),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(headers.contains_key(WWW_AUTHENTICATE));
        let (status, _, _) =
            call(&b, "GET", "/v1/messages/0000000000000001", token, None, "").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert!(b.seen.lock().is_empty());
    let (status, _, doc) = call(&b, "GET", "/v1/openapi.json", None, None, "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let (status, _, body) = call(&b, "GET", "/v1/nothing", Some(TOKEN), None, "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].is_string());
}

#[tokio::test]
async fn back_pressure_is_429_and_a_journal_failure_is_503_both_with_retry_after() {
    let b = Fake::new();
    b.headroom.store(1, Ordering::Relaxed);
    let (status, headers, _) = post_json(
        &b,
        json!({ "messages": [msg("a", "+14155550100"), msg("b", "+14155550101")] }),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers[RETRY_AFTER], "1");
    assert!(b.seen.lock().is_empty(), "nothing taken past the headroom");
    let broken = Arc::new(Fake {
        broken: true,
        ..Arc::into_inner(Fake::new()).unwrap()
    });
    let (status, headers, body) =
        post_json(&broken, json!({ "messages": [msg("a", "+14155550100")] })).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers[RETRY_AFTER], "1");
    assert_eq!(body["results"][0]["reason"], "UNAVAILABLE");
}

#[tokio::test]
async fn a_tenant_sees_its_own_live_message_and_no_other() {
    let b = Fake::new();
    post_json(&b, json!({ "messages": [msg("a", "+14155550100")] })).await;
    let (status, _, body) = call(
        &b,
        "GET",
        "/v1/messages/0000000000000001",
        Some(TOKEN),
        None,
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["client_ref"], "a");
    b.seen.lock()[0].0 = "globex".into();
    let (status, _, _) = call(
        &b,
        "GET",
        "/v1/messages/0000000000000001",
        Some(TOKEN),
        None,
        "",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another tenant's is unknown");
    for bad in ["1", "zzzzzzzzzzzzzzzz", "00000000000000001"] {
        let (status, _, _) = call(
            &b,
            "GET",
            &format!("/v1/messages/{bad}"),
            Some(TOKEN),
            None,
            "",
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test]
async fn media_is_stored_or_refused_with_the_reason() {
    let b = Fake::new();
    let png = b"\x89PNG\r\n\x1a\n-rest".to_vec();
    let (status, _, body) =
        call(&b, "POST", "/v1/media", Some(TOKEN), Some("image/png"), png).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["media_id"], "ab".repeat(32));
    let (status, _, body) = call(
        &b,
        "POST",
        "/v1/media",
        Some(TOKEN),
        Some("image/png"),
        "GIF89a",
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["error"].as_str().unwrap().contains("not a media type"));
    let (status, _, _) = call(&b, "POST", "/v1/media", Some(TOKEN), None, "x").await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, _, _) = call(
        &b,
        "POST",
        "/v1/media",
        Some(TOKEN),
        Some("image/png"),
        vec![0u8; 2 << 10],
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn unknown_tokens_are_throttled_per_address_and_then_refused_unchecked() {
    let b = Fake::new();
    let app = router(b.clone(), limits());
    let from = |ip: &str, token: &str| {
        let mut req = Request::builder()
            .method("GET")
            .uri("/v1/messages/0000000000000001")
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        req.extensions_mut().insert(ConnInfo {
            peer: format!("{ip}:5000").parse().unwrap(),
            identity: None,
        });
        req
    };
    for _ in 0..3 {
        let res = app
            .clone()
            .oneshot(from("192.0.2.9", "guess"))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    // Locked out: even the right token is not looked at.
    let res = app.clone().oneshot(from("192.0.2.9", TOKEN)).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.headers()[RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Another address is not.
    let res = app
        .clone()
        .oneshot(from("192.0.2.10", TOKEN))
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::NOT_FOUND,
        "authenticated: no such message"
    );
}

/// Every operation of the committed document answers with a status it
/// documents (its example request for POST /v1/messages is accepted), and
/// the document lists exactly the routes [`router`] registers (kept by hand
/// in `routes` below: axum cannot list a router's routes).
#[tokio::test]
async fn the_contract_matches_the_routes() {
    let doc: Value = serde_json::from_str(OPENAPI).expect("the contract is JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = Vec::new();
    for (path, ops) in paths {
        for (method, op) in ops.as_object().unwrap() {
            let documented: Vec<u16> = op["responses"]
                .as_object()
                .unwrap()
                .keys()
                .map(|k| k.parse().unwrap())
                .collect();
            operations.push((path.clone(), method.to_uppercase(), documented, op.clone()));
        }
    }
    let routes = [
        ("/v1/messages", "POST"),
        ("/v1/messages/{id}", "GET"),
        ("/v1/media", "POST"),
        ("/v1/openapi.json", "GET"),
    ];
    let mut listed: Vec<(&str, &str)> = operations
        .iter()
        .map(|(p, m, _, _)| (p.as_str(), m.as_str()))
        .collect();
    listed.sort();
    let mut served = routes.to_vec();
    served.sort();
    assert_eq!(
        listed, served,
        "the document lists exactly the served routes"
    );
    let b = Fake::new();
    for (path, method, documented, op) in &operations {
        let example = &op["requestBody"]["content"]["application/json"]["example"];
        let (uri, ct, body): (String, Option<&str>, Vec<u8>) =
            match (path.as_str(), method.as_str()) {
                ("/v1/messages", "POST") => (
                    path.clone(),
                    Some("application/json"),
                    example.to_string().into_bytes(),
                ),
                ("/v1/media", "POST") => (path.clone(), Some("image/png"), b"\x89PNG....".to_vec()),
                (p, _) => (p.replace("{id}", "0000000000000001"), None, Vec::new()),
            };
        let (status, _, reply) = call(&b, method, &uri, Some(TOKEN), ct, body).await;
        assert!(
            documented.contains(&status.as_u16()),
            "{method} {path}: {status} is not documented ({documented:?}): {reply}"
        );
        assert!(status.is_success(), "{method} {path}: {status} {reply}");
        // And without a token: 401 where the document says a token is needed.
        let open = op
            .get("security")
            .is_some_and(|s| s.as_array().is_some_and(|a| a.is_empty()));
        let (status, _, _) = call(&b, method, &uri, None, ct, "").await;
        assert_eq!(open, status != StatusCode::UNAUTHORIZED, "{method} {path}");
        if !open {
            assert!(
                documented.contains(&401),
                "{method} {path} documents its 401"
            );
        }
    }
}
