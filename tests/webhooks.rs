//! Signed webhooks end to end: a receiver started by the test gets every
//! event of a tenant (deliveries of messages posted over the HTTP API,
//! inbound messages, opt-outs), signed as documented, exactly once after
//! dropping repeated event ids, even when it fails for a while, when the
//! gateway is killed while it retries, and after dead-lettering and an
//! admin replay.

mod common;
#[path = "../src/tls/testpki.rs"]
mod testpki;

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use parking_lot::Mutex;
use serde_json::{Value, json};
use sha2::Sha256;

const SECRET: &str = "whsec-test-0123456789";
const ADMIN: &str = "operator-token-0001";

/// What the receiver saw: every request (status it answered, events), and
/// the events of the requests it answered 2xx.
#[derive(Default)]
struct Seen {
    /// Requests answered with a failure.
    refused: AtomicUsize,
    /// Every event of every request, by event id (at least once on the wire).
    on_wire: Mutex<Vec<Value>>,
    /// Events of requests answered 2xx, by event id (deduplicated).
    accepted: Mutex<HashMap<u64, Value>>,
    /// Signatures that did not verify.
    bad_signatures: AtomicUsize,
    /// The secret signatures are verified with.
    secret: Mutex<String>,
}

/// A webhook receiver: fails while `failing` (or for its first `fail_first`
/// requests), verifies each signature with the documented algorithm.
struct Receiver {
    addr: SocketAddr,
    failing: Arc<AtomicBool>,
    fail_first: Arc<AtomicUsize>,
    seen: Arc<Seen>,
}

impl Receiver {
    async fn start() -> Receiver {
        Receiver::start_with(None).await
    }

    /// A receiver over TLS with `leaf` as its certificate.
    async fn start_tls(leaf: &testpki::Leaf) -> Receiver {
        use tokio_rustls::rustls::{
            self,
            pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
        };
        let chain = vec![CertificateDer::from_pem_slice(leaf.cert.as_bytes()).unwrap()];
        let key = PrivateKeyDer::from_pem_slice(leaf.key.as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        Receiver::start_with(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))).await
    }

    async fn start_with(tls: Option<tokio_rustls::TlsAcceptor>) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let failing = Arc::new(AtomicBool::new(false));
        let fail_first = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Seen {
            secret: Mutex::new(SECRET.into()),
            ..Seen::default()
        });
        let (f, ff, s) = (failing.clone(), fail_first.clone(), seen.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (f, ff, s) = (f.clone(), ff.clone(), s.clone());
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let (f, ff, s) = (f.clone(), ff.clone(), s.clone());
                            async move { Ok::<_, Infallible>(receive(req, &f, &ff, &s).await) }
                        });
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        None => {
                            let _ = http
                                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                                .await;
                        }
                        Some(tls) => {
                            let Ok(stream) = tls.accept(stream).await else {
                                return;
                            };
                            let _ = http
                                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                                .await;
                        }
                    }
                });
            }
        });
        Receiver {
            addr,
            failing,
            fail_first,
            seen,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hooks/sluice", self.addr)
    }

    fn https_url(&self) -> String {
        format!("https://{}/hooks/sluice", self.addr)
    }

    fn accepted(&self) -> HashMap<u64, Value> {
        self.seen.accepted.lock().clone()
    }

    /// Delivery events accepted, per message id.
    fn deliveries(&self) -> HashMap<String, Vec<Value>> {
        let mut out: HashMap<String, Vec<Value>> = HashMap::new();
        for e in self.accepted().into_values() {
            if e["type"] == "delivery" {
                out.entry(e["message_id"].as_str().unwrap().to_owned())
                    .or_default()
                    .push(e);
            }
        }
        out
    }
}

async fn receive(
    req: Request<hyper::body::Incoming>,
    failing: &AtomicBool,
    fail_first: &AtomicUsize,
    seen: &Seen,
) -> Response<Full<Bytes>> {
    let signature = req
        .headers()
        .get("sluice-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let secret = seen.secret.lock().clone();
    if !verify(&signature, &body, &secret) {
        seen.bad_signatures.fetch_add(1, Ordering::Relaxed);
    }
    let events: Value = serde_json::from_slice(&body).expect("the body is JSON");
    let events = events["events"].as_array().unwrap().clone();
    seen.on_wire.lock().extend(events.iter().cloned());
    let fail = failing.load(Ordering::Relaxed)
        || fail_first
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
    if fail {
        seen.refused.fetch_add(1, Ordering::Relaxed);
        return Response::builder()
            .status(503)
            .body(Full::new(Bytes::from_static(b"busy")))
            .unwrap();
    }
    let mut accepted = seen.accepted.lock();
    for e in events {
        accepted.insert(e["id"].as_u64().unwrap(), e);
    }
    Response::new(Full::new(Bytes::new()))
}

/// The receiver's side of the documented signature: `t=<secs>,v1=<hex>`,
/// HMAC-SHA256 with `secret` over `"<t>.<body>"`, `t` within 5 minutes.
fn verify(header: &str, body: &[u8], secret: &str) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.parse::<u64>().ok(),
            Some(("v1", v)) => v1 = Some(v.to_owned()),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if now.abs_diff(t) > 300 {
        return false;
    }
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    expected == v1
}

fn webhook(url: &str, dead_letter_after: Duration) -> sluice::settings::WebhookConfig {
    toml::from_str(&format!(
        r#"
name = "crm"
url = "{url}"
secret = "{SECRET}"
concurrency = 2
batch = 10
retry_min = "20ms"
retry_max = "200ms"
dead_letter_after = "{}"
"#,
        humantime::format_duration(dead_letter_after)
    ))
    .unwrap()
}

async fn post_messages(api: SocketAddr, prefix: &str, n: usize) -> Vec<String> {
    let messages: Vec<Value> = (0..n)
        .map(|i| {
            json!({ "client_ref": format!("{prefix}-{i}"), "to": format!("+1416555{i:04}"),
                "from": "12345", "text": format!("hook {i}") })
        })
        .collect();
    let body = json!({ "messages": messages }).to_string();
    let bearer = format!("Bearer {TOKEN}");
    let (status, _, reply) = http(
        api,
        "POST",
        "/v1/messages",
        &[
            ("content-type", "application/json"),
            ("authorization", &bearer),
        ],
        &body,
    )
    .await;
    assert_eq!(status, 202, "{reply}");
    let reply: Value = serde_json::from_str(&reply).unwrap();
    reply["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["status"], "accepted", "{r}");
            r["id"].as_str().unwrap().to_owned()
        })
        .collect()
}

async fn admin(addr: SocketAddr, method: &str, path: &str) -> (u16, Value) {
    let bearer = format!("Bearer {ADMIN}");
    let (status, _, body) = http(addr, method, path, &[("authorization", &bearer)], "").await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_fails_for_a_while_gets_every_event_once_after_dedupe() {
    let smsc = smsc(|_| {}).await;
    let receiver = Receiver::start().await;
    receiver.fail_first.store(6, Ordering::Relaxed);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &smsc);
    cfg.api.listen = Some("127.0.0.1:0".parse().unwrap());
    cfg.tenants[0].stream_events = false;
    cfg.tenants[0]
        .webhooks
        .push(webhook(&receiver.url(), Duration::from_secs(3600)));
    let gw = sluice::gateway::start(cfg).await.unwrap();
    let api = gw.api_addr.unwrap();

    let ids = post_messages(api, "hook", 30).await;
    smsc.inject_mo("14165550199", "12345", "hello there")
        .unwrap();
    smsc.inject_mo("14165550198", "12345", "STOP").unwrap();
    let kinds = || {
        let got = receiver.accepted();
        let of = |k: &str| got.values().filter(|e| e["type"] == k).count();
        (of("delivery"), of("inbound"), of("opt_out"))
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    // 31 deliveries: the 30 posted and the STOP's confirmation.
    while kinds() != (31, 1, 1) {
        let others: Vec<Value> = receiver
            .accepted()
            .into_values()
            .filter(|e| e["type"] != "delivery")
            .collect();
        assert!(
            tokio::time::Instant::now() < deadline,
            "(deliveries, inbound, opt-outs) = {:?}: {others:?}",
            kinds()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deliveries = receiver.deliveries();
    for id in &ids {
        let d = &deliveries[id];
        assert_eq!(d.len(), 1, "one delivery event (after dedupe) for {id}");
        assert_eq!(d[0]["state"], "delivered");
        assert_eq!(d[0]["channel"], "sms");
    }
    let got = receiver.accepted();
    let inbound = got.values().find(|e| e["type"] == "inbound").unwrap();
    assert_eq!(inbound["text"], "hello there");
    let opt = got.values().find(|e| e["type"] == "opt_out").unwrap();
    assert_eq!(opt["opted_out"], true);
    assert_eq!(receiver.seen.bad_signatures.load(Ordering::Relaxed), 0);
    assert_eq!(
        receiver.seen.refused.load(Ordering::Relaxed),
        6,
        "it failed, then recovered"
    );
    let wire = receiver.seen.on_wire.lock().len();
    assert!(
        wire > 33,
        "the refused events were sent again: {wire} on the wire"
    );
    // Nothing is left to send or to keep: the stream is off, so the
    // stream's copies were acknowledged at once.
    drained(&gw, Duration::from_secs(10)).await;
    assert_eq!(smsc.stats().messages, 31);
    eventually("no event left pending", Duration::from_secs(10), || {
        sluice::ingest::Backend::events(&*gw.gateway).pending() == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_wait_for_an_admin_replay() {
    let smsc = smsc(|_| {}).await;
    let receiver = Receiver::start().await;
    receiver.failing.store(true, Ordering::Relaxed);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &smsc);
    cfg.api.listen = Some("127.0.0.1:0".parse().unwrap());
    cfg.http.admin_token = Some(sluice::settings::Secret::new(ADMIN));
    cfg.tenants[0].stream_events = false;
    cfg.tenants[0]
        .webhooks
        .push(webhook(&receiver.url(), Duration::from_millis(300)));
    let gw = sluice::gateway::start(cfg).await.unwrap();
    let http_addr = gw.http_addr.unwrap();
    let ids = post_messages(gw.api_addr.unwrap(), "dead", 3).await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, v) = admin(http_addr, "GET", "/admin/webhooks").await;
        assert_eq!(status, 200);
        let ep = &v["endpoints"][0];
        if ep["dead"] == 3 {
            assert_eq!(
                (ep["tenant"].as_str(), ep["endpoint"].as_str()),
                (Some(TENANT), Some("crm"))
            );
            assert_eq!(
                (ep["ready"].as_u64(), ep["in_flight"].as_u64()),
                (Some(0), Some(0))
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never dead-lettered: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = metrics_text(http_addr).await;
    assert_eq!(counter_sum(&metrics, "sluice_webhook_dead_letters"), 3.0);
    assert_eq!(
        counter_sum(&metrics, "sluice_webhook_dead_lettered_total"),
        3.0
    );
    // Dead letters are not retried...
    let attempts = receiver.seen.refused.load(Ordering::Relaxed);
    let (status, _) = admin(http_addr, "GET", "/admin/webhooks").await;
    assert_eq!(status, 200);
    assert_eq!(receiver.seen.refused.load(Ordering::Relaxed), attempts);
    // ...until replayed.
    receiver.failing.store(false, Ordering::Relaxed);
    let (status, _) = admin(http_addr, "POST", "/admin/webhooks/demo/nope/replay").await;
    assert_eq!(status, 404);
    let (status, v) = admin(http_addr, "POST", "/admin/webhooks/demo/crm/replay").await;
    assert_eq!((status, &v), (200, &json!({ "replayed": 3 })));
    eventually(
        "3 deliveries after the replay",
        Duration::from_secs(10),
        || receiver.deliveries().len() == 3,
    )
    .await;
    let deliveries = receiver.deliveries();
    assert!(ids.iter().all(|id| deliveries.contains_key(id)));
    let (_, v) = admin(http_addr, "GET", "/admin/webhooks").await;
    assert_eq!(v["endpoints"][0]["dead"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_while_it_retries_loses_no_webhook() {
    let smsc = smsc(|_| {}).await;
    let receiver = Receiver::start().await;
    receiver.failing.store(true, Ordering::Relaxed);
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
admin_token = "{ADMIN}"
[api]
listen = "127.0.0.1:0"
[public]
listen = "127.0.0.1:0"
[[tenants]]
name = "{TENANT}"
token = "{TOKEN}"
senders = ["12345"]
stream_events = false
[[tenants.webhooks]]
name = "crm"
url = "{url}"
secret = "{SECRET}"
batch = 7
retry_min = "20ms"
retry_max = "100ms"
[[carriers]]
name = "sim"
[[carriers.binds]]
address = "{smsc}"
system_id = "sluice"
password = "pw"
"#,
            data = dir.path().join("data").display(),
            url = receiver.url(),
            smsc = smsc.local_addr(),
        ),
    )
    .unwrap();
    let (child, started) = spawn_gateway_started(&cfg_path).await;
    let ids = post_messages(started.api.expect("the API door is on"), "kill", 40).await;
    // Every delivery event is durable and held for the endpoint, which has
    // refused what it was offered (retries hold the first batches; the
    // rest wait behind them).
    let http_addr = started.http.expect("the internal door is on");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, v) = admin(http_addr, "GET", "/admin/webhooks").await;
        let ep = &v["endpoints"][0];
        let held = ep["ready"].as_u64().unwrap_or(0) + ep["in_flight"].as_u64().unwrap_or(0);
        if held == 40 && receiver.seen.refused.load(Ordering::Relaxed) >= 3 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not all held: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let offered: HashSet<String> = receiver
        .seen
        .on_wire
        .lock()
        .iter()
        .filter_map(|e| e["message_id"].as_str().map(str::to_owned))
        .collect();
    assert!(
        !offered.is_empty() && offered.len() <= 28,
        "{} offered",
        offered.len()
    );
    assert!(receiver.accepted().is_empty());
    drop(child);

    receiver.failing.store(false, Ordering::Relaxed);
    let (_child, _) = spawn_gateway_started(&cfg_path).await;
    eventually(
        "all 40 delivered after the restart",
        Duration::from_secs(30),
        || receiver.deliveries().len() == 40,
    )
    .await;
    let deliveries = receiver.deliveries();
    for id in &ids {
        assert_eq!(deliveries[id].len(), 1, "{id}: one event after dedupe");
    }
    assert_eq!(receiver.seen.bad_signatures.load(Ordering::Relaxed), 0);
    assert_eq!(smsc.stats().messages, 40, "and nothing was sent twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_endpoint_is_trusted_only_through_its_ca() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = testpki::Ca::new("hooks CA");
    let receiver = Receiver::start_tls(&ca.server("hooks")).await;
    // A second receiver whose certificate another CA signed.
    let stranger = Receiver::start_tls(&testpki::Ca::new("other CA").server("hooks")).await;
    let mut cfg = config(dir.path(), &smsc);
    cfg.api.listen = Some("127.0.0.1:0".parse().unwrap());
    cfg.http.admin_token = Some(sluice::settings::Secret::new(ADMIN));
    cfg.tenants[0].stream_events = false;
    let mut good = webhook(&receiver.https_url(), Duration::from_secs(3600));
    good.ca_file = Some(ca.write(dir.path(), "hooks-ca.pem"));
    let mut bad = webhook(&stranger.https_url(), Duration::from_secs(3600));
    bad.name = "stranger".into();
    bad.ca_file = good.ca_file.clone();
    cfg.tenants[0].webhooks = vec![good, bad];
    let gw = sluice::gateway::start(cfg).await.unwrap();
    let ids = post_messages(gw.api_addr.unwrap(), "tls", 5).await;
    eventually("5 deliveries over TLS", Duration::from_secs(20), || {
        receiver.deliveries().len() == 5
    })
    .await;
    let deliveries = receiver.deliveries();
    assert!(ids.iter().all(|id| deliveries.contains_key(id)));
    assert_eq!(receiver.seen.bad_signatures.load(Ordering::Relaxed), 0);
    // The stranger's certificate is refused: nothing reaches it, its
    // events wait (journaled) and the failures are counted.
    let http_addr = gw.http_addr.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = metrics_text(http_addr).await;
        let failed = metrics
            .lines()
            .filter(|l| {
                l.starts_with("sluice_webhook_requests_total")
                    && l.contains("endpoint=\"stranger\"")
                    && l.contains("outcome=\"failed\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
        if failed >= 2.0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(stranger.seen.on_wire.lock().is_empty());
    let (_, v) = admin(http_addr, "GET", "/admin/webhooks").await;
    let held: u64 = v["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["endpoint"] == "stranger")
        .map(|e| e["ready"].as_u64().unwrap() + e["in_flight"].as_u64().unwrap())
        .sum();
    assert_eq!(held, 5, "{v}");
}

/// A tenant added by a reload (SIGHUP) works at once like one configured at
/// the start: it authenticates, sends, gets its events on its stream and at
/// its webhook, and a STOP to its program's sender is its own. A tenant
/// removed is closed out: its session ends and its token is refused, but
/// what it had queued is still sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_added_by_a_reload_works_at_once_and_one_removed_keeps_its_queue() {
    use sluice::config::{ProgramConfig, Secret, StopCovers, TenantConfig};
    use sluice::ingest::client::{Client, ClientError};
    use sluice::ingest::pb;
    const WAIT: Duration = Duration::from_secs(20);
    const GLOBEX_TOKEN: &str = "globex-token-0123456789";
    const GLOBEX_ADMIN: &str = "globex-admin-token-0123456789";
    let smsc = smsc(|_| {}).await;
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &smsc);
    // The demo tenant's queue drains for about two seconds.
    cfg.tenants[0].rate = 20.0;
    let mut gw = sluice::gateway::start(cfg.clone()).await.unwrap();
    let ingest = gw.ingest_addr.to_string();
    match Client::connect(&ingest, "globex", GLOBEX_TOKEN).await {
        Err(ClientError::Server { code, .. }) => assert_eq!(code, pb::ErrorCode::AuthFailed),
        other => panic!("globex before the reload: {:?}", other.map(|_| ())),
    }
    let (demo, mut demo_events) = Client::connect(&ingest, TENANT, TOKEN).await.unwrap();
    let queued: Vec<_> = (0..40)
        .map(|i| {
            msg(
                &format!("d-{i}"),
                &format!("+1415555{:04}", 2000 + i),
                "queued before the removal",
            )
        })
        .collect();
    let submitted = tokio::time::Instant::now();
    assert_eq!(accepted_ids(&demo.submit(queued).await.unwrap()).len(), 40);

    let mut new = cfg.clone();
    new.tenants.retain(|t| t.name != TENANT);
    new.tenants.push(TenantConfig {
        name: "globex".into(),
        token: Secret::new(GLOBEX_TOKEN),
        senders: vec!["67890".into()],
        programs: vec![ProgramConfig {
            name: "alerts".into(),
            senders: vec!["67890".into()],
            help_text: "help".into(),
            opt_out_text: "bye".into(),
            opt_in_text: "hi".into(),
            stop_covers: StopCovers::Program,
            keywords: Default::default(),
        }],
        webhooks: vec![webhook(&receiver.url(), Duration::from_secs(3600))],
        admin_token: Some(Secret::new(GLOBEX_ADMIN)),
        ..TenantConfig::default()
    });
    let r = gw.reload(&new);
    assert_eq!(
        r.applied,
        [
            format!("tenants.{TENANT}: removed"),
            "tenants.globex: added".to_owned()
        ]
    );
    assert!(r.at_restart.is_empty(), "{:?}", r.at_restart);
    assert!(r.refused.is_empty(), "{:?}", r.refused);

    // The removed tenant's session ends and its token is refused.
    tokio::time::timeout(WAIT, async { while demo_events.recv().await.is_some() {} })
        .await
        .expect("the removed tenant's session is closed");
    match Client::connect(&ingest, TENANT, TOKEN).await {
        Err(ClientError::Server { code, .. }) => assert_eq!(code, pb::ErrorCode::AuthFailed),
        other => panic!("the removed tenant: {:?}", other.map(|_| ())),
    }

    // The added one sends at once; its events reach its stream and its
    // webhook.
    let (globex, got) = subscriber_as(&ingest, "globex", GLOBEX_TOKEN).await;
    let mut hello = msg("g-1", "+14155550100", "hello from globex");
    hello.from = "67890".into();
    let ids = accepted_ids(&globex.submit(vec![hello]).await.unwrap());
    eventually("globex's delivery on its stream", WAIT, || {
        got.state_of(ids[0]) == Some(pb::DeliveryState::StateDelivered)
    })
    .await;
    eventually("globex's delivery at its webhook", WAIT, || {
        receiver
            .deliveries()
            .contains_key(&format!("{:016x}", ids[0]))
    })
    .await;
    assert_eq!(receiver.seen.bad_signatures.load(Ordering::Relaxed), 0);

    // A STOP to its program's sender is its own, and holds at once.
    smsc.inject_mo("+14155550101", "67890", "STOP").unwrap();
    let (sender, handset) = (
        sluice::model::Sender::parse("67890").unwrap(),
        sluice::model::Msisdn::parse("+14155550101").unwrap(),
    );
    eventually("the STOP is globex's", WAIT, || {
        gw.gateway
            .compliance()
            .check("globex", &sender, handset)
            .as_deref()
            == Some("program:globex:alerts")
    })
    .await;
    let mut stopped = msg("g-2", "+14155550101", "after the STOP");
    stopped.from = "67890".into();
    let ack = globex.submit(vec![stopped]).await.unwrap();
    assert_eq!(
        ack.results[0].reason,
        pb::RejectReason::Suppressed as i32,
        "{ack:?}"
    );
    eventually("globex's opt-out at its webhook", WAIT, || {
        receiver
            .accepted()
            .values()
            .any(|e| e["type"] == "opt_out" && e["opted_out"] == true)
    })
    .await;
    // Its admin token sees its own scopes, and only those.
    let bearer = format!("Bearer {GLOBEX_ADMIN}");
    let count = |scope: &str| {
        let (bearer, path) = (
            bearer.clone(),
            format!("/admin/optouts/count?scope={scope}"),
        );
        let http_addr = gw.http_addr.unwrap();
        async move {
            let (status, _, body) =
                http(http_addr, "GET", &path, &[("authorization", &bearer)], "").await;
            (
                status,
                serde_json::from_str::<Value>(&body).unwrap_or(Value::Null),
            )
        }
    };
    let (status, v) = count("program:globex:alerts").await;
    assert_eq!((status, v["count"].as_u64()), (200, Some(1)), "{v}");
    assert_eq!(count("tenant:demo").await.0, 403);

    // What the removed tenant had queued was still sent, at its rate.
    eventually("the removed tenant's queue drained", WAIT, || {
        smsc.texts()
            .iter()
            .filter(|t| t.2 == "queued before the removal")
            .count()
            == 40
    })
    .await;
    let took = submitted.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "40 messages at 20/s took {took:?}: the removed tenant's rate was dropped"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_a_reload_gives_a_tenant_takes_its_events_at_once() {
    const WAIT: Duration = Duration::from_secs(20);
    let smsc = smsc(|_| {}).await;
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &smsc);
    cfg.http.admin_token = Some(sluice::settings::Secret::new(ADMIN));
    assert!(cfg.tenants[0].webhooks.is_empty());
    let mut gw = sluice::gateway::start(cfg.clone()).await.unwrap();
    let ingest = gw.ingest_addr.to_string();
    let (client, got) = subscriber_as(&ingest, TENANT, TOKEN).await;
    let before = accepted_ids(
        &client
            .submit(vec![msg("before", "+14155550100", "before the reload")])
            .await
            .unwrap(),
    );
    eventually("the first delivery on the stream", WAIT, || {
        got.state_of(before[0]).is_some()
    })
    .await;

    let mut new = cfg.clone();
    new.tenants[0].webhooks = vec![webhook(&receiver.url(), Duration::from_secs(3600))];
    let r = gw.reload(&new);
    assert_eq!(r.applied, [format!("tenants.{TENANT}.webhooks.crm: added")]);
    assert!(r.at_restart.is_empty(), "{:?}", r.at_restart);
    assert!(r.refused.is_empty(), "{:?}", r.refused);
    // The same file again changes nothing.
    let again = gw.reload(&new);
    assert!(again.applied.is_empty(), "{again:?}");
    assert!(again.at_restart.is_empty(), "{again:?}");

    // Events from now on reach the endpoint, signed, and still the stream.
    let after = accepted_ids(
        &client
            .submit(vec![msg("after", "+14155550101", "after the reload")])
            .await
            .unwrap(),
    );
    eventually("the delivery at the endpoint added", WAIT, || {
        receiver
            .deliveries()
            .contains_key(&format!("{:016x}", after[0]))
    })
    .await;
    eventually("the delivery on the stream", WAIT, || {
        got.state_of(after[0]).is_some()
    })
    .await;
    assert_eq!(receiver.seen.bad_signatures.load(Ordering::Relaxed), 0);
    assert!(
        !receiver
            .deliveries()
            .contains_key(&format!("{:016x}", before[0])),
        "an event from before the endpoint was added is not sent to it"
    );
    // The admin API lists it.
    let (status, v) = admin(gw.http_addr.unwrap(), "GET", "/admin/webhooks").await;
    assert_eq!(status, 200, "{v}");
    assert!(v.to_string().contains("\"crm\""), "{v}");
    gw.shutdown().await;
}

/// Waits for `what`, failing if a task of the gateway ends meanwhile (the
/// gateway would stop).
async fn while_running<T>(
    gw: &mut sluice::gateway::Running,
    what: impl std::future::Future<Output = T>,
) -> T {
    tokio::select! {
        biased;
        _ = gw.wait() => panic!("a task of the gateway ended: it would stop"),
        out = what => out,
    }
}

/// A reload that moves an endpoint to another URL with a rotated secret
/// sends what it held, and what comes next, there, signed with the new
/// secret; one that removes it drops what it held, and the admin API no
/// longer lists it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_a_reload_changes_or_removes_takes_it_at_once() {
    const WAIT: Duration = Duration::from_secs(20);
    const ROTATED: &str = "whsec-rotated-9876543210";
    let smsc = smsc(|_| {}).await;
    let old = Receiver::start().await;
    old.failing.store(true, Ordering::Relaxed);
    let moved_to = Receiver::start().await;
    *moved_to.seen.secret.lock() = ROTATED.into();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &smsc);
    cfg.http.admin_token = Some(sluice::settings::Secret::new(ADMIN));
    cfg.tenants[0].webhooks = vec![webhook(&old.url(), Duration::from_secs(3600))];
    let mut gw = sluice::gateway::start(cfg.clone()).await.unwrap();
    let ingest = gw.ingest_addr.to_string();
    let (client, got) = subscriber_as(&ingest, TENANT, TOKEN).await;
    let submit = |reference: &'static str, to: &'static str| {
        let client = &client;
        async move {
            accepted_ids(
                &client
                    .submit(vec![msg(reference, to, "a reload moves the hook")])
                    .await
                    .unwrap(),
            )[0]
        }
    };
    let on_wire = |r: &Receiver, id: u64| {
        let id = format!("{id:016x}");
        r.seen
            .on_wire
            .lock()
            .iter()
            .any(|e| e["type"] == "delivery" && e["message_id"] == id.as_str())
    };
    let held = submit("held", "+14155550110").await;
    eventually("the old endpoint refuses the delivery", WAIT, || {
        on_wire(&old, held)
    })
    .await;

    let mut moved = cfg.clone();
    moved.tenants[0].webhooks[0].url = moved_to.url();
    moved.tenants[0].webhooks[0].secret = sluice::settings::Secret::new(ROTATED);
    let r = gw.reload(&moved);
    assert_eq!(
        r.applied,
        [format!("tenants.{TENANT}.webhooks.crm: changed")]
    );
    assert!(r.at_restart.is_empty(), "{r:?}");
    assert!(r.refused.is_empty(), "{r:?}");
    let again = gw.reload(&moved);
    assert!(
        again.applied.is_empty() && again.at_restart.is_empty(),
        "{again:?}"
    );
    // What the endpoint held goes to its new URL, signed with the new
    // secret; so does what comes next.
    while_running(
        &mut gw,
        eventually("the held delivery at the new URL", WAIT, || {
            moved_to.deliveries().contains_key(&format!("{held:016x}"))
        }),
    )
    .await;
    let next = submit("next", "+14155550111").await;
    while_running(
        &mut gw,
        eventually("the next delivery at the new URL", WAIT, || {
            moved_to.deliveries().contains_key(&format!("{next:016x}"))
        }),
    )
    .await;
    assert_eq!(moved_to.seen.bad_signatures.load(Ordering::Relaxed), 0);
    let (status, v) = admin(gw.http_addr.unwrap(), "GET", "/admin/webhooks").await;
    assert_eq!(status, 200, "{v}");
    assert!(v.to_string().contains(&moved_to.addr.to_string()), "{v}");

    // Removed while it holds a delivery it refuses: the delivery is
    // dropped, the endpoint is gone.
    moved_to.failing.store(true, Ordering::Relaxed);
    let last = submit("last", "+14155550112").await;
    eventually("the new URL refuses the last delivery", WAIT, || {
        on_wire(&moved_to, last)
    })
    .await;
    let mut removed = moved.clone();
    removed.tenants[0].webhooks.clear();
    let r = gw.reload(&removed);
    // The last delivery at least (an earlier one whose 2xx its sender has
    // not yet recorded would be counted too).
    assert_eq!(r.applied.len(), 1, "{r:?}");
    let dropped: usize = r.applied[0]
        .strip_prefix(&format!("tenants.{TENANT}.webhooks.crm: removed ("))
        .and_then(|rest| rest.strip_suffix(" events it held dropped)"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{r:?}"));
    assert!(dropped >= 1, "{r:?}");
    assert!(r.at_restart.is_empty(), "{r:?}");
    let (status, v) = admin(gw.http_addr.unwrap(), "GET", "/admin/webhooks").await;
    assert_eq!(status, 200, "{v}");
    assert!(!v.to_string().contains("\"crm\""), "{v}");
    // The stream still gets every delivery, and the retired senders'
    // tasks stay until shutdown.
    while_running(
        &mut gw,
        eventually("every delivery on the stream", WAIT, || {
            [held, next, last]
                .iter()
                .all(|id| got.state_of(*id).is_some())
        }),
    )
    .await;
    gw.shutdown().await;
}
