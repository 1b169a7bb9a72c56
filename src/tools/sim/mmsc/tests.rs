//! Tests of the MMSC simulator and, through it, of [`crate::mm7::Mm7Client`]
//! and [`crate::mm7::serve`] over real HTTP on 127.0.0.1.

use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::*;
use crate::mm7::{
    Class, Encoded, IpNet, MediaPart, Mm7Inbound, Mm7Server, ServerConfig, SubmitOutcome,
    SubmitReq, serve,
};

// === helpers ===

/// Longest any test waits for something to happen.
const PATIENCE: Duration = Duration::from_secs(30);

async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, f)
        .await
        .expect("timed out waiting")
}

fn cfg() -> MmscConfig {
    MmscConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        report_delay: Duration::ZERO,
        report_retry_delay: Duration::from_millis(10),
        ..MmscConfig::default()
    }
}

fn client(mmsc: &Mmsc, credentials: Option<Credentials>) -> Mm7Client {
    Mm7Client::new(ClientConfig {
        url: mmsc.url(),
        credentials,
        request_timeout: Duration::from_secs(10),
        ..ClientConfig::default()
    })
    .unwrap()
}

fn to() -> Vec<Address> {
    vec![
        Address::Number("+15551230001".into()),
        Address::Number("+15551230002".into()),
    ]
}

fn sender() -> Address {
    Address::ShortCode("12345".into())
}

fn media() -> Vec<MediaPart<'static>> {
    vec![MediaPart {
        content_type: "image/png",
        content_id: "logo",
        bytes: Bytes::from_static(b"\x89PNG\r\n\x1a\n....."),
    }]
}

fn req<'a>(
    tid: &'a str,
    text: &'a str,
    to: &'a [Address],
    sender: &'a Address,
    media: &'a [MediaPart<'a>],
) -> SubmitReq<'a> {
    SubmitReq {
        transaction_id: tid,
        version: Version::Rel6Mm7_1_4,
        vasp_id: Some("vasp"),
        vas_id: Some("vas"),
        sender: Some(sender),
        recipients: to,
        subject: Some("Hello"),
        delivery_report: true,
        text,
        media,
        ..SubmitReq::default()
    }
}

/// A handler that forwards what it gets and fails the first `fail` calls.
#[derive(Debug)]
struct Sink {
    reports: mpsc::UnboundedSender<DeliveryReportReq>,
    delivers: mpsc::UnboundedSender<DeliverReq>,
    fail: AtomicU64,
}

impl Mm7Inbound for Sink {
    async fn delivery_report(
        &self,
        r: DeliveryReportReq,
    ) -> Result<Status, crate::mm7::server::HandlerError> {
        if self
            .fail
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err("not now".into());
        }
        let _ = self.reports.send(r);
        Ok(Status::success())
    }

    async fn deliver(&self, d: DeliverReq) -> Result<(), crate::mm7::server::HandlerError> {
        let _ = self.delivers.send(d);
        Ok(())
    }
}

struct Vasp {
    server: Mm7Server,
    reports: mpsc::UnboundedReceiver<DeliveryReportReq>,
    delivers: mpsc::UnboundedReceiver<DeliverReq>,
}

/// The gateway side: a receiver with basic auth `vasp:cb-pw`.
async fn vasp(fail: u64) -> Vasp {
    let (rt, reports) = mpsc::unbounded_channel();
    let (dt, delivers) = mpsc::unbounded_channel();
    let server = serve(
        ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            credentials: Some(Credentials::new("vasp", "cb-pw")),
            allow: vec!["127.0.0.1".parse::<IpNet>().unwrap()],
            ..ServerConfig::default()
        },
        Arc::new(Sink {
            reports: rt,
            delivers: dt,
            fail: AtomicU64::new(fail),
        }),
    )
    .await
    .unwrap();
    Vasp {
        server,
        reports,
        delivers,
    }
}

fn with_callback(vasp: &Vasp, password: &str) -> MmscConfig {
    MmscConfig {
        callback_url: Some(format!("http://{}/mm7", vasp.server.local_addr())),
        callback_username: Some("vasp".into()),
        callback_password: Some(password.into()),
        ..cfg()
    }
}

// === configuration ===

#[derive(Debug, clap::Parser)]
struct Cli {
    #[command(flatten)]
    mmsc: MmscConfig,
}

#[test]
fn config_parses_from_the_command_line() {
    let cli = Cli::try_parse_from([
        "mmsc",
        "--listen",
        "0.0.0.0:9000",
        "--username",
        "u",
        "--password",
        "secret-1",
        "--callback-url",
        "http://127.0.0.1:1/x",
        "--callback-password",
        "secret-2",
        "--report-delay",
        "250ms",
        "--outcomes",
        "retrieved=0.9,rejected=0.05,expired=0.05",
        "--fail-status",
        "4006",
        "--fail-fraction",
        "0.1",
        "--http-error",
        "503",
        "--http-error-fraction",
        "0.2",
        "--max-size",
        "300000",
        "--mm7-version",
        "REL-5-MM7-1-2",
    ])
    .unwrap();
    let c = cli.mmsc;
    assert_eq!(c.listen, "0.0.0.0:9000".parse().unwrap());
    assert_eq!(c.report_delay, Duration::from_millis(250));
    assert_eq!(c.fail_status, Some(4006));
    assert_eq!(c.fail_fraction, 0.1);
    assert_eq!(c.http_error, Some(503));
    assert_eq!(c.max_size, Some(300_000));
    assert_eq!(c.expect_version, Some(Version::Rel5Mm7_1_2));
    assert_eq!(c.outcomes.pick(0.0), ReportOutcome::Retrieved);
    assert_eq!(c.outcomes.pick(0.92), ReportOutcome::Rejected);
    assert_eq!(c.outcomes.pick(0.99), ReportOutcome::Expired);
    let debug = format!("{c:?}");
    assert!(!debug.contains("secret"), "{debug}");

    let d = Cli::try_parse_from(["mmsc"]).unwrap().mmsc;
    assert_eq!(d, MmscConfig::default());
    assert!(Cli::try_parse_from(["mmsc", "--mm7-version", "REL-9"]).is_err());
    assert!(Cli::try_parse_from(["mmsc", "--outcomes", "delivered=1"]).is_err());
}

#[test]
fn report_mix_parsing() {
    assert_eq!(
        "none".parse::<ReportMix>().unwrap(),
        ReportMix::only(ReportOutcome::None)
    );
    assert_eq!(
        "rejected=0,expired=2"
            .parse::<ReportMix>()
            .unwrap()
            .to_string(),
        "expired=1"
    );
    assert_eq!(
        "x=1".parse::<ReportMix>(),
        Err(ReportMixError::UnknownOutcome("x".into()))
    );
    assert_eq!(
        "expired=-1".parse::<ReportMix>(),
        Err(ReportMixError::BadWeight("-1".into()))
    );
    assert_eq!("".parse::<ReportMix>(), Err(ReportMixError::Empty));
}

// === submits ===

#[tokio::test]
async fn submit_gets_a_message_id_over_a_kept_alive_connection() {
    let mmsc = start(MmscConfig {
        username: Some("vasp".into()),
        password: Some("pw".into()),
        ..cfg()
    })
    .await
    .unwrap();
    let c = client(&mmsc, Some(Credentials::new("vasp", "pw")));
    let (to, from, media) = (to(), sender(), media());
    let mut ids = Vec::new();
    for i in 0..5 {
        let tid = format!("t{i}");
        let text = format!("hello {i}");
        let out = c
            .submit(&req(&tid, &text, &to, &from, &media))
            .await
            .unwrap();
        let SubmitOutcome::Accepted { message_id, status } = out else {
            panic!("{out:?}")
        };
        assert_eq!(status.code, 1000);
        ids.push(message_id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 5);
    let s = mmsc.stats();
    assert_eq!(s.connections, 1, "keep-alive: one connection for all");
    assert_eq!((s.submits, s.accepted, s.refused), (5, 5, 0));
    assert_eq!(s.by_status.get(&1000), Some(&5));
    assert!(s.bytes_received > 5 * 1000);
    let texts = mmsc.texts();
    assert_eq!(texts.len(), 10);
    assert_eq!(
        texts[0],
        ("+15551230001".to_owned(), "hello 0".to_owned(), 1)
    );
    // The same text again counts as a duplicate.
    c.submit(&req("again", "hello 0", &to, &from, &media))
        .await
        .unwrap();
    assert_eq!(mmsc.stats().duplicates, 2);
}

#[tokio::test]
async fn concurrent_submits_share_a_bounded_pool() {
    let mmsc = start(cfg()).await.unwrap();
    let c = Mm7Client::new(ClientConfig {
        url: mmsc.url(),
        max_connections: 4,
        ..ClientConfig::default()
    })
    .unwrap();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let (to, from) = (to(), sender());
            let tid = format!("t{i}");
            let text = format!("n{i}");
            c.submit(&req(&tid, &text, &to, &from, &[])).await
        }));
    }
    for t in tasks {
        let out = within(t).await.unwrap().unwrap();
        assert_eq!(out.class(), Class::Success);
    }
    let s = mmsc.stats();
    assert_eq!(s.accepted, 40);
    assert!(s.connections <= 4, "{} connections", s.connections);
}

#[tokio::test]
async fn injected_4006_is_temporary_as_rsp_and_as_fault() {
    for as_fault in [false, true] {
        let mmsc = start(MmscConfig {
            fail_status: Some(4006),
            fail_as_fault: as_fault,
            ..cfg()
        })
        .await
        .unwrap();
        let (to, from) = (to(), sender());
        let out = client(&mmsc, None)
            .submit(&req("t", "x", &to, &from, &[]))
            .await
            .unwrap();
        let SubmitOutcome::Refused {
            status,
            http_status,
        } = &out
        else {
            panic!("{out:?}")
        };
        assert_eq!(status.code, 4006);
        assert_eq!(*http_status, if as_fault { 500 } else { 200 });
        assert_eq!(out.class(), Class::Temporary);
        let s = mmsc.stats();
        assert_eq!((s.submits, s.accepted, s.refused), (1, 0, 1));
        assert_eq!(s.by_status.get(&4006), Some(&1));
        assert!(mmsc.texts().is_empty());
    }
}

#[tokio::test]
async fn size_limits_on_both_sides() {
    let mmsc = start(MmscConfig {
        max_size: Some(2_000),
        ..cfg()
    })
    .await
    .unwrap();
    let (to, from) = (to(), sender());
    let big = [MediaPart {
        content_type: "image/jpeg",
        content_id: "big",
        bytes: Bytes::from(vec![0xAB; 5_000]),
    }];
    let r = req("t", "x", &to, &from, &big);
    let encoded = r.encode();

    // The client refuses before sending: the whole body counts.
    let limited = Mm7Client::new(ClientConfig {
        url: mmsc.url(),
        max_message_size: Some(encoded.len() - 1),
        ..ClientConfig::default()
    })
    .unwrap();
    let err = limited.submit(&r).await.unwrap_err();
    assert_eq!(
        err,
        Mm7Error::TooLarge {
            size: encoded.len(),
            max: encoded.len() - 1
        }
    );
    assert_eq!(err.class(), Class::Permanent);
    assert_eq!(mmsc.stats().requests, 0);

    // The simulator refuses with 2004 in a Fault.
    let out = client(&mmsc, None).submit_encoded(&encoded).await.unwrap();
    let SubmitOutcome::Refused { status, .. } = &out else {
        panic!("{out:?}")
    };
    assert_eq!(status.code, crate::mm7::status::MULTIMEDIA_CONTENT_REFUSED);
    assert_eq!(out.class(), Class::Permanent);
    // A small one passes.
    let out = client(&mmsc, None)
        .submit(&req("t2", "x", &to, &from, &[]))
        .await
        .unwrap();
    assert_eq!(out.class(), Class::Success);
}

#[tokio::test]
async fn http_503_is_temporary() {
    let mmsc = start(MmscConfig {
        http_error: Some(503),
        ..cfg()
    })
    .await
    .unwrap();
    let (to, from) = (to(), sender());
    let err = client(&mmsc, None)
        .submit(&req("t", "x", &to, &from, &[]))
        .await
        .unwrap_err();
    assert_eq!(err, Mm7Error::Http { status: 503 });
    assert_eq!(err.class(), Class::Temporary);
    let s = mmsc.stats();
    assert_eq!((s.http_errors, s.submits), (1, 0));
}

#[tokio::test]
async fn wrong_credentials_are_a_permanent_clear_error() {
    let mmsc = start(MmscConfig {
        username: Some("vasp".into()),
        password: Some("pw".into()),
        ..cfg()
    })
    .await
    .unwrap();
    let (to, from) = (to(), sender());
    for creds in [None, Some(Credentials::new("vasp", "wrong"))] {
        let err = client(&mmsc, creds)
            .submit(&req("t", "x", &to, &from, &[]))
            .await
            .unwrap_err();
        assert_eq!(err, Mm7Error::Unauthorized { status: 401 });
        assert_eq!(err.class(), Class::Permanent);
        assert!(err.to_string().contains("credentials"));
    }
    let s = mmsc.stats();
    assert_eq!((s.unauthorized, s.submits), (2, 0));
}

#[tokio::test]
async fn versions_are_checked_against_the_namespace() {
    let mmsc = start(MmscConfig {
        expect_version: Some(Version::Rel5Mm7_1_2),
        ..cfg()
    })
    .await
    .unwrap();
    let c = client(&mmsc, None);
    let (to, from) = (to(), sender());
    let mut r = req("t", "x", &to, &from, &[]);
    r.version = Version::Rel5Mm7_1_2;
    assert_eq!(c.submit(&r).await.unwrap().class(), Class::Success);
    // Another version than the one configured.
    r.version = Version::Rel6Mm7_1_4;
    let out = c.submit(&r).await.unwrap();
    let SubmitOutcome::Refused { status, .. } = &out else {
        panic!("{out:?}")
    };
    assert_eq!(status.code, crate::mm7::status::UNSUPPORTED_VERSION);
    assert_eq!(out.class(), Class::Permanent);
    // MM7Version that the namespace's schema does not list.
    r.version = Version::Rel5Mm7_1_2;
    let xml = r.encode();
    let body = String::from_utf8_lossy(&xml.body).replace(
        "<MM7Version>5.3.0</MM7Version>",
        "<MM7Version>6.8.0</MM7Version>",
    );
    let out = c
        .submit_encoded(&Encoded {
            content_type: xml.content_type.clone(),
            body: Bytes::from(body),
        })
        .await
        .unwrap();
    let SubmitOutcome::Refused { status, .. } = out else {
        panic!()
    };
    assert_eq!(status.code, crate::mm7::status::UNSUPPORTED_VERSION);
    assert!(status.details.unwrap().contains("does not match"));
}

#[tokio::test]
async fn malformed_submits_are_refused_with_a_status() {
    let mmsc = start(cfg()).await.unwrap();
    let c = client(&mmsc, None);
    let (to, from) = (to(), sender());
    // Content href naming no part.
    let good = req("t", "x", &to, &from, &[]).encode();
    let body = String::from_utf8_lossy(&good.body).replace("cid:mm7-content@sluice", "cid:gone");
    let out = c
        .submit_encoded(&Encoded {
            content_type: good.content_type.clone(),
            body: Bytes::from(body),
        })
        .await
        .unwrap();
    let SubmitOutcome::Refused { status, .. } = &out else {
        panic!("{out:?}")
    };
    assert_eq!(status.code, crate::mm7::status::MULTIMEDIA_CONTENT_REFUSED);
    // No recipient.
    let out = c.submit(&req("t", "x", &[], &from, &[])).await.unwrap();
    let SubmitOutcome::Refused { status, .. } = &out else {
        panic!("{out:?}")
    };
    assert_eq!(status.code, crate::mm7::status::VALIDATION_ERROR);
    // Not XML at all; truncated MIME.
    for (ct, body) in [
        ("text/xml", &b"hello"[..]),
        ("multipart/related; boundary=x", &b"--x\r\n\r\n<a/>"[..]),
    ] {
        let out = c
            .submit_encoded(&Encoded {
                content_type: ct.into(),
                body: Bytes::from_static(body),
            })
            .await
            .unwrap();
        assert_eq!(out.class(), Class::Permanent, "{out:?}");
    }
    let s = mmsc.stats();
    assert_eq!((s.submits, s.refused, s.malformed), (4, 4, 3));
}

// === transport failures ===

#[tokio::test]
async fn connection_refused_and_silence_are_temporary() {
    // A port nobody listens on.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let c = Mm7Client::new(ClientConfig {
        url: format!("http://{addr}/mm7"),
        ..ClientConfig::default()
    })
    .unwrap();
    let (to, from) = (to(), sender());
    let err = c.submit(&req("t", "x", &to, &from, &[])).await.unwrap_err();
    assert!(matches!(err, Mm7Error::Connect { .. }), "{err:?}");
    assert_eq!(err.class(), Class::Temporary);

    // A peer that accepts and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let c = Mm7Client::new(ClientConfig {
        url: format!("http://{addr}/mm7"),
        request_timeout: Duration::from_millis(300),
        ..ClientConfig::default()
    })
    .unwrap();
    let err = c.submit(&req("t", "x", &to, &from, &[])).await.unwrap_err();
    assert_eq!(err, Mm7Error::Timeout(Duration::from_millis(300)));
    assert_eq!(err.class(), Class::Temporary);
    hold.abort();
}

#[test]
fn client_config_errors() {
    for url in [
        "",
        "ftp://x/",
        "http://",
        "http://user:pw@host/",
        "not a url",
    ] {
        let r = Mm7Client::new(ClientConfig {
            url: url.into(),
            ..ClientConfig::default()
        });
        assert!(matches!(r, Err(Mm7Error::Config(_))), "{url}: {r:?}");
    }
    let c = Mm7Client::new(ClientConfig {
        url: "http://[::1]:8080/mm7?x=1".into(),
        credentials: Some(Credentials::new("u", "hidden-pw")),
        ..ClientConfig::default()
    })
    .unwrap();
    assert!(!format!("{c:?}").contains("hidden-pw"));
}

// === callbacks: delivery reports and MO ===

#[tokio::test]
async fn delivery_reports_reach_the_receiver() {
    let mut vasp = vasp(0).await;
    let mmsc = start(MmscConfig {
        outcomes: "rejected".parse().unwrap(),
        ..with_callback(&vasp, "cb-pw")
    })
    .await
    .unwrap();
    let (to, from) = (to(), sender());
    let out = client(&mmsc, None)
        .submit(&req("t", "x", &to, &from, &[]))
        .await
        .unwrap();
    let SubmitOutcome::Accepted { message_id, .. } = out else {
        panic!("{out:?}")
    };
    let mut seen = Vec::new();
    for _ in 0..2 {
        let r = within(vasp.reports.recv()).await.unwrap();
        assert_eq!(r.message_id, message_id);
        assert_eq!(r.mm_status, MmStatus::Rejected);
        assert_eq!(r.sender, from);
        assert_eq!(r.version, Some(Version::Rel6Mm7_1_4));
        seen.push(r.recipient);
    }
    seen.sort();
    assert_eq!(seen, to);
    within(mmsc.wait_until(|s| s.reports_acked == 2)).await;
    assert_eq!(mmsc.stats().reports_sent, 2);

    // No report when none was asked for.
    let mut r = req("t2", "y", &to, &from, &[]);
    r.delivery_report = false;
    client(&mmsc, None).submit(&r).await.unwrap();
    assert_eq!(mmsc.stats().reports_sent, 2);
}

#[tokio::test]
async fn delivery_reports_are_retried_until_acknowledged() {
    let mut vasp = vasp(2).await;
    let mmsc = start(with_callback(&vasp, "cb-pw")).await.unwrap();
    let to = vec![Address::Number("+15551230001".into())];
    let from = sender();
    client(&mmsc, None)
        .submit(&req("t", "x", &to, &from, &[]))
        .await
        .unwrap();
    let r = within(vasp.reports.recv()).await.unwrap();
    assert_eq!(r.mm_status, MmStatus::Retrieved);
    within(mmsc.wait_until(|s| s.reports_acked == 1)).await;
    let s = mmsc.stats();
    assert_eq!((s.reports_sent, s.reports_failed), (3, 0));
}

#[tokio::test]
async fn reports_with_wrong_callback_credentials_are_refused() {
    let vasp = vasp(0).await;
    let mmsc = start(MmscConfig {
        report_retries: 1,
        ..with_callback(&vasp, "wrong")
    })
    .await
    .unwrap();
    let to = vec![Address::Number("+15551230001".into())];
    let from = sender();
    client(&mmsc, None)
        .submit(&req("t", "x", &to, &from, &[]))
        .await
        .unwrap();
    within(mmsc.wait_until(|s| s.reports_failed == 1)).await;
    let s = mmsc.stats();
    assert_eq!((s.reports_sent, s.reports_acked), (2, 0));
}

#[tokio::test]
async fn reports_follow_the_submit_version() {
    let mut vasp = vasp(0).await;
    let mmsc = start(with_callback(&vasp, "cb-pw")).await.unwrap();
    let to = vec![Address::Number("+15551230001".into())];
    let from = sender();
    for v in [
        Version::Rel5Mm7_1_4,
        Version::Rel6Mm7_1_1,
        Version::Rel6Mm7_1_3,
    ] {
        let mut r = req("t", "x", &to, &from, &[]);
        r.version = v;
        client(&mmsc, None).submit(&r).await.unwrap();
        let got = within(vasp.reports.recv()).await.unwrap();
        assert_eq!(got.version, Some(v));
        assert_eq!(got.mm7_version, v.mm7_version());
        assert!(got.date.is_some());
    }
}

#[tokio::test]
async fn inject_mo_delivers_to_the_receiver() {
    let mut vasp = vasp(0).await;
    let mmsc = start(with_callback(&vasp, "cb-pw")).await.unwrap();
    let status = mmsc
        .inject_mo("+15551230009", "12345", "STOP")
        .await
        .unwrap();
    assert_eq!(status.code, 1000);
    let d = within(vasp.delivers.recv()).await.unwrap();
    assert_eq!(d.text, "STOP");
    assert_eq!(d.sender, Address::Number("+15551230009".into()));
    assert_eq!(d.recipients, vec![Address::ShortCode("12345".into())]);
    assert!(d.linked_id.is_some());
    let s = mmsc.stats();
    assert_eq!((s.mo_sent, s.mo_acked), (1, 1));

    let alone = start(cfg()).await.unwrap();
    assert!(matches!(
        alone.inject_mo("1", "2", "x").await,
        Err(Mm7Error::Config(_))
    ));
}

#[tokio::test]
async fn shutdown_stops_the_listener() {
    let mmsc = start(cfg()).await.unwrap();
    let url = mmsc.url();
    let handle = mmsc.clone();
    let run = tokio::spawn(mmsc.run_until_shutdown());
    handle.shutdown();
    drop(handle);
    within(run).await.unwrap();
    let c = Mm7Client::new(ClientConfig {
        url,
        ..ClientConfig::default()
    })
    .unwrap();
    let (to, from) = (to(), sender());
    let err = c.submit(&req("t", "x", &to, &from, &[])).await.unwrap_err();
    assert_eq!(err.class(), Class::Temporary);
}
