//! The gRPC door end to end: a batch submitted over gRPC ends with one
//! acknowledged event on the Events stream and reaches the SMSC once (a
//! repeat gets the same ids and sends nothing); unacknowledged events go
//! back when their call ends; a wrong token is UNAUTHENTICATED; another
//! tenant's message is NOT_FOUND like an unknown one; back-pressure is
//! RESOURCE_EXHAUSTED with a retry hint; health says SERVING and reflection
//! lists the service; over mutual TLS (ALPN h2) the client certificate binds
//! calls to its tenant; media uploads whole or in chunks.

mod common;
#[path = "../src/tls/testpki.rs"]
mod pki;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use sluice::config::{Secret, TenantConfig};
use sluice::grpc::GatewayClient;
use sluice::ingest::{Backend, pb};
use tokio::sync::mpsc;
use tonic::transport::Channel;
use tonic::{Code, Request, Streaming};

const WAIT: Duration = Duration::from_secs(20);

async fn gateway(
    smsc: &sluice::sim::smsc::Smsc,
    dir: &std::path::Path,
    f: impl FnOnce(&mut sluice::config::Config),
) -> sluice::gateway::Running {
    let mut cfg = config(dir, smsc);
    cfg.grpc.listen = Some("127.0.0.1:0".parse().unwrap());
    f(&mut cfg);
    sluice::gateway::start(cfg).await.unwrap()
}

async fn channel(addr: SocketAddr) -> Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn client(gw: &sluice::gateway::Running) -> GatewayClient<Channel> {
    GatewayClient::new(channel(gw.grpc_addr.expect("the gRPC door is on")).await)
}

/// `msg` with `authorization: Bearer <token>`.
fn authed<T>(msg: T, token: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

/// An Events call: the sender of its requests and its batches.
struct EventsCall {
    send: mpsc::Sender<pb::EventsRequest>,
    batches: Streaming<pb::EventBatch>,
    subscription: Option<String>,
}

impl EventsCall {
    async fn open(c: &mut GatewayClient<Channel>, token: &str, scope: pb::SubscribeScope) -> Self {
        let (send, rx) = mpsc::channel(16);
        send.send(pb::EventsRequest {
            body: Some(pb::events_request::Body::Subscribe(pb::Subscribe {
                max_in_flight: 0,
                scope: scope as i32,
            })),
        })
        .await
        .unwrap();
        let requests =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|r| (r, rx)) },
            );
        let resp = c.events(authed(requests, token)).await.unwrap();
        let subscription = resp
            .metadata()
            .get(sluice::grpc::SUBSCRIPTION_HEADER)
            .map(|v| v.to_str().unwrap().to_owned());
        EventsCall {
            send,
            batches: resp.into_inner(),
            subscription,
        }
    }

    /// Delivery events until `want` terminal ones came (acknowledging each
    /// batch when `ack`): (message id, state, event id).
    async fn terminal(&mut self, want: usize, ack: bool) -> Vec<(u64, i32, u64)> {
        let mut got = Vec::new();
        while got.len() < want {
            let batch = tokio::time::timeout(WAIT, self.batches.message())
                .await
                .expect("events in time")
                .unwrap()
                .expect("the stream goes on");
            let mut ids = Vec::new();
            for e in batch.events {
                ids.push(e.event_id);
                if let Some(pb::event::Kind::Delivery(d)) = e.kind
                    && d.state != pb::DeliveryState::StateSubmitted as i32
                {
                    got.push((d.message_id, d.state, e.event_id));
                }
            }
            if ack {
                self.ack(ids).await;
            }
        }
        got
    }

    async fn ack(&self, event_ids: Vec<u64>) {
        self.send
            .send(pb::EventsRequest {
                body: Some(pb::events_request::Body::Ack(pb::EventAck { event_ids })),
            })
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_over_grpc_is_sent_once_and_ends_with_one_acknowledged_event() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(&smsc, dir.path(), |_| {}).await;
    let mut c = client(&gw).await;

    // Only this call's messages: its id goes on the SubmitBatch.
    let mut events = EventsCall::open(&mut c, TOKEN, pb::SubscribeScope::ScopeConnection).await;
    let sub = events
        .subscription
        .clone()
        .expect("a connection-scoped call has an id");
    let batch = pb::SubmitBatch {
        messages: vec![
            msg("g-1", "+14155550100", "over grpc"),
            msg("g-2", "+14155550101", "second"),
            msg("g-3", "not a number", "refused"),
        ],
    };
    let mut req = authed(batch.clone(), TOKEN);
    req.metadata_mut()
        .insert(sluice::grpc::SUBSCRIPTION_HEADER, sub.parse().unwrap());
    let ack = c.submit_batch(req).await.unwrap().into_inner();
    let reasons: Vec<i32> = ack.results.iter().map(|r| r.reason).collect();
    assert_eq!(
        reasons,
        vec![
            pb::RejectReason::RejectNone as i32,
            pb::RejectReason::RejectNone as i32,
            pb::RejectReason::InvalidNumber as i32
        ]
    );
    let mut ids: Vec<u64> = ack.results[..2].iter().map(|r| r.message_id).collect();
    ids.sort_unstable();

    let got = events.terminal(2, true).await;
    let mut ended: Vec<u64> = got.iter().map(|g| g.0).collect();
    ended.sort_unstable();
    assert_eq!(ended, ids, "one terminal event per accepted message");
    assert!(
        got.iter()
            .all(|g| g.1 == pb::DeliveryState::StateDelivered as i32)
    );
    // Acknowledged: the hub holds nothing more.
    eventually("events acknowledged", WAIT, || {
        gw.gateway.events().pending() == 0
    })
    .await;

    // The same client_refs again (without the subscription): the original
    // ids, marked duplicate, nothing sent.
    let again = c
        .submit_batch(authed(
            pb::SubmitBatch {
                messages: batch.messages[..2].to_vec(),
            },
            TOKEN,
        ))
        .await
        .unwrap()
        .into_inner();
    let mut again_ids: Vec<u64> = again.results.iter().map(|r| r.message_id).collect();
    again_ids.sort_unstable();
    assert_eq!(again_ids, ids);
    assert!(again.results.iter().all(|r| r.duplicate));
    drained(&gw, WAIT).await;
    assert_eq!(
        smsc.stats().messages,
        2,
        "each message reached the SMSC once"
    );
    assert_eq!(smsc.stats().duplicates, 0);

    // A subscription that is not a live call of the tenant is refused.
    let mut req = authed(batch.clone(), TOKEN);
    req.metadata_mut()
        .insert(sluice::grpc::SUBSCRIPTION_HEADER, "12".parse().unwrap());
    let err = c.submit_batch(req).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    drop(events);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_not_acknowledged_go_back_when_their_call_ends() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(&smsc, dir.path(), |_| {}).await;
    let mut c = client(&gw).await;
    let mut first = EventsCall::open(&mut c, TOKEN, pb::SubscribeScope::ScopeTenant).await;
    assert!(first.subscription.is_none());
    let ack = c
        .submit_batch(authed(
            pb::SubmitBatch {
                messages: vec![msg("r-1", "+14155550110", "once")],
            },
            TOKEN,
        ))
        .await
        .unwrap()
        .into_inner();
    let id = ack.results[0].message_id;
    let seen = first.terminal(1, false).await;
    assert_eq!(seen[0].0, id);
    // The call ends without acknowledging: the event goes to the next
    // subscriber of the tenant's stream, with the same id.
    drop(first);
    let mut second = EventsCall::open(&mut c, TOKEN, pb::SubscribeScope::ScopeTenant).await;
    let again = second.terminal(1, true).await;
    assert_eq!((again[0].0, again[0].2), (id, seen[0].2));
    eventually("event acknowledged", WAIT, || {
        gw.gateway.events().pending() == 0
    })
    .await;
    assert_eq!(smsc.stats().messages, 1);
    drop(second);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_unauthenticated_and_another_tenants_message_not_found() {
    // Receipts far off: messages stay live (dispatched) for the lookups.
    let smsc = smsc(|s| s.receipt_delay = Duration::from_secs(60)).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(&smsc, dir.path(), |cfg| {
        cfg.tenants.push(TenantConfig {
            name: "globex".into(),
            token: Secret::new("globex-token-1"),
            senders: vec!["67890".into()],
            ..TenantConfig::default()
        });
    })
    .await;
    let mut c = client(&gw).await;

    let batch = pb::SubmitBatch {
        messages: vec![msg("n-1", "+14155550120", "live")],
    };
    for bad in [
        authed(batch.clone(), "wrong-token"),
        Request::new(batch.clone()),
    ] {
        let err = c.submit_batch(bad).await.unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    }
    let err = c
        .get_message(authed(
            pb::GetMessageRequest { message_id: 1 },
            "wrong-token",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    let ack = c
        .submit_batch(authed(batch, TOKEN))
        .await
        .unwrap()
        .into_inner();
    let id = ack.results[0].message_id;
    assert_ne!(id, 0, "{ack:?}");
    let mine = c
        .get_message(authed(pb::GetMessageRequest { message_id: id }, TOKEN))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((mine.message_id, mine.client_ref.as_str()), (id, "n-1"));
    assert_eq!(mine.to, "+14155550120");

    let theirs = c
        .get_message(authed(
            pb::GetMessageRequest { message_id: id },
            "globex-token-1",
        ))
        .await
        .unwrap_err();
    let unknown = c
        .get_message(authed(
            pb::GetMessageRequest {
                message_id: id ^ 0xffff,
            },
            TOKEN,
        ))
        .await
        .unwrap_err();
    assert_eq!(theirs.code(), Code::NotFound);
    assert_eq!(unknown.code(), Code::NotFound);
    assert_eq!(theirs.message(), unknown.message(), "alike, no oracle");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_pressure_is_resource_exhausted_with_a_retry_hint() {
    let smsc = smsc(|s| s.receipt_delay = Duration::from_secs(60)).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(&smsc, dir.path(), |cfg| cfg.journal.max_live_messages = 2).await;
    let mut c = client(&gw).await;
    let two = pb::SubmitBatch {
        messages: vec![
            msg("b-1", "+14155550130", "one"),
            msg("b-2", "+14155550131", "two"),
        ],
    };
    let ack = c
        .submit_batch(authed(two, TOKEN))
        .await
        .unwrap()
        .into_inner();
    assert!(ack.results.iter().all(|r| r.message_id != 0), "{ack:?}");
    let err = c
        .submit_batch(authed(
            pb::SubmitBatch {
                messages: vec![msg("b-3", "+14155550132", "three")],
            },
            TOKEN,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert_eq!(
        sluice::grpc::retry_delay(&err),
        Some(Duration::from_secs(1))
    );
    assert_eq!(gw.gateway.ledger().live(), 2, "nothing of it admitted");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_says_serving_and_reflection_lists_the_service() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(&smsc, dir.path(), |_| {}).await;
    let ch = channel(gw.grpc_addr.unwrap()).await;

    let mut health = HealthClient::new(ch.clone());
    for service in ["", "sluice.v1.Gateway"] {
        let r = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status, ServingStatus::Serving as i32, "{service:?}");
    }

    let mut reflection = ServerReflectionClient::new(ch);
    let ask = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(futures_util::stream::iter([ask]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("not a service list: {answer:?}");
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"sluice.v1.Gateway"), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_mutual_tls_the_certificate_binds_calls_to_its_tenant() {
    use tokio_rustls::rustls::pki_types::ServerName;

    let certs = tempfile::tempdir().unwrap();
    let ca = pki::Ca::new("sluice test CA");
    let clients = pki::Ca::new("sluice client CA");
    let ca_file = ca.write(certs.path(), "ca.pem");
    let client_ca = clients.write(certs.path(), "client-ca.pem");
    let (cert, key) = ca.server("gateway").write(certs.path(), "server");
    let (demo_cert, demo_key) = clients
        .client(Some(TENANT), &[])
        .write(certs.path(), "demo");

    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(&smsc, dir.path(), |cfg| {
        cfg.grpc.tls_cert_file = Some(cert);
        cfg.grpc.tls_key_file = Some(key);
        cfg.grpc.tls_client_ca_file = Some(client_ca);
        cfg.tenants.push(TenantConfig {
            name: "globex".into(),
            token: Secret::new("globex-token-1"),
            senders: vec!["67890".into()],
            ..TenantConfig::default()
        });
    })
    .await;
    let addr = gw.grpc_addr.unwrap();

    let mut tls =
        sluice::tls::client_config(Some(&ca_file), Some((&demo_cert, &demo_key))).unwrap();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let tls = std::sync::Arc::new(tls);
    let connector = tower::service_fn(move |_: tonic::transport::Uri| {
        let tls = tls.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await?;
            let name = ServerName::try_from("localhost").unwrap();
            let stream = tokio_rustls::TlsConnector::from(tls)
                .connect(name, tcp)
                .await?;
            assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
        }
    });
    let channel = tonic::transport::Endpoint::from_static("http://localhost")
        .connect_with_connector(connector)
        .await
        .unwrap();
    let mut c = GatewayClient::new(channel);
    let batch = |r: &str, from: &str| pb::SubmitBatch {
        messages: vec![pb::SubmitMessage {
            from: from.into(),
            ..msg(r, "+14155550140", "over tls")
        }],
    };
    let ack = c
        .submit_batch(authed(batch("t-1", "12345"), TOKEN))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(ack.results[0].message_id, 0, "{ack:?}");
    // globex's own right token, on demo's certificate: refused like a wrong one.
    let err = c
        .submit_batch(authed(batch("t-2", "67890"), "globex-token-1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");

    // Plaintext gets no answer.
    let plain = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5))
        .connect()
        .await;
    if let Ok(ch) = plain {
        let err = GatewayClient::new(ch)
            .submit_batch(authed(batch("t-3", "12345"), TOKEN))
            .await
            .unwrap_err();
        assert_ne!(err.code(), Code::Ok);
    }
    drained(&gw, WAIT).await;
    assert_eq!(smsc.stats().messages, 1);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_uploads_whole_or_in_chunks_and_a_lie_is_refused() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(&smsc, dir.path(), |_| {}).await;
    let mut c = client(&gw).await;
    let png = bytes::Bytes::from_static(include_bytes!("../data/demo/sample.png"));

    let whole = pb::PutMedia {
        content_type: "image/png".into(),
        total_size: png.len() as u64,
        data: png.clone(),
        last: true,
        ..Default::default()
    };
    let ok = c
        .put_media(authed(futures_util::stream::iter([whole]), TOKEN))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.media_id.len(), 64, "{ok:?}");
    assert_eq!(ok.size, png.len() as u64);

    let half = png.len() / 2;
    let chunks = [
        pb::PutMedia {
            upload_id: "u-1".into(),
            content_type: "image/png".into(),
            total_size: png.len() as u64,
            offset: 0,
            data: png.slice(..half),
            last: false,
        },
        pb::PutMedia {
            upload_id: "u-1".into(),
            offset: half as u64,
            data: png.slice(half..),
            last: true,
            ..Default::default()
        },
    ];
    let chunked = c
        .put_media(authed(futures_util::stream::iter(chunks), TOKEN))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(chunked.media_id, ok.media_id, "the same bytes, the same id");

    let lie = pb::PutMedia {
        content_type: "image/png".into(),
        total_size: 17,
        data: bytes::Bytes::from_static(b"GIF89a not really"),
        last: true,
        ..Default::default()
    };
    let err = c
        .put_media(authed(futures_util::stream::iter([lie]), TOKEN))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let unfinished = pb::PutMedia {
        upload_id: "u-2".into(),
        content_type: "image/png".into(),
        total_size: png.len() as u64,
        data: png.slice(..half),
        ..Default::default()
    };
    let err = c
        .put_media(authed(futures_util::stream::iter([unfinished]), TOKEN))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_without_calls_is_closed_and_one_with_a_call_is_kept() {
    use tokio::io::AsyncReadExt;
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let idle = Duration::from_millis(400);
    let gw = gateway(&smsc, dir.path(), |c| c.grpc.idle_timeout = idle).await;
    let addr = gw.grpc_addr.unwrap();
    // A call that stays open (an Events call waiting for events).
    let mut c = client(&gw).await;
    let mut events = EventsCall::open(&mut c, TOKEN, pb::SubscribeScope::ScopeTenant).await;

    // A connection that never calls: closed once the idle timeout passed.
    let opened = tokio::time::Instant::now();
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match silent.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the silent connection was never closed");
    let after = opened.elapsed();
    assert!(
        after >= idle,
        "closed after {after:?}, before the idle timeout"
    );

    // By now the Events call's connection has been without traffic for
    // longer than the idle timeout too, but its call holds it open: the
    // event of a message submitted now arrives on it.
    let mut other = client(&gw).await;
    other
        .submit_batch(authed(
            pb::SubmitBatch {
                messages: vec![msg("idle-1", "+14155550190", "still here")],
            },
            TOKEN,
        ))
        .await
        .unwrap();
    let got = events.terminal(1, true).await;
    assert_eq!(got.len(), 1);
    gw.shutdown().await;
}

/// A reload that replaces the tenant's token ends an Events stream opened
/// with the old one (`UNAUTHENTICATED`); the new token opens one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_events_stream_on_a_replaced_token_ends_at_the_reload() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &smsc);
    cfg.grpc.listen = Some("127.0.0.1:0".parse().unwrap());
    let mut gw = sluice::gateway::start(cfg.clone()).await.unwrap();
    let mut c = client(&gw).await;
    let mut old = EventsCall::open(&mut c, TOKEN, pb::SubscribeScope::ScopeTenant).await;
    let mut new = cfg.clone();
    new.tenants[0].token = sluice::config::Secret::new("demo-token-0002");
    assert_eq!(gw.reload(&new).applied, [format!("tenants.{TENANT}.token")]);
    let end = tokio::time::timeout(WAIT, old.batches.message())
        .await
        .expect("the stream ends in time");
    assert_eq!(end.unwrap_err().code(), Code::Unauthenticated);
    let mut fresh =
        EventsCall::open(&mut c, "demo-token-0002", pb::SubscribeScope::ScopeTenant).await;
    // The new stream gets the events of a message sent now.
    let ack = c
        .submit_batch(authed(
            pb::SubmitBatch {
                messages: vec![msg("after", "+14155550100", "after the reload")],
            },
            "demo-token-0002",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(accepted_ids(&ack).len(), 1);
    assert_eq!(fresh.terminal(1, true).await.len(), 1);
    gw.shutdown().await;
}
