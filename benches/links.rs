//! Tracked links: the code permutation and the text rewrite (criterion),
//! then redirects per second over real HTTP on loopback (printed): 64
//! keep-alive connections asking for 10,000 stored links, each answer a
//! 302 sent only after its click is synced to the link store and its click
//! event to the journal (group commit). The load client runs on the same
//! two cores, so the figure is a floor for the server alone.
//!
//! `cargo bench --bench links`

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use sluice::links::rewrite;
use sluice::links::{Codec, LinkStore};
use sluice::model::{ChannelPref, FallbackPolicy, Message, MessageId, Msisdn, Priority, Sender};

const SECRET: &[u8] = b"bench secret, thirty-two bytes!!";
const TEXT: &str = "Spring sale! Jackets 30% off: https://shop.example/spring/jackets?utm_source=sms Returns: https://shop.example/help Reply STOP to opt out";
const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";

fn codes(c: &mut Criterion) {
    let codec = Codec::new(SECRET);
    let mut g = c.benchmark_group("links");
    g.throughput(Throughput::Elements(1));
    g.bench_function("code_encode", |b| {
        let mut n = 0u64;
        b.iter(|| {
            n += 1;
            black_box(codec.encode(black_box(n)))
        })
    });
    let code = String::from_utf8(codec.encode(123_456).to_vec()).unwrap();
    g.bench_function("code_decode", |b| {
        b.iter(|| black_box(codec.decode(black_box(&code))))
    });
    g.bench_function("plan_text_with_two_links", |b| {
        b.iter(|| black_box(rewrite::plan(black_box(TEXT), "https://acme.link")))
    });
    g.finish();
}

criterion_group!(benches, codes);

fn message(id: u64, text: String) -> Message {
    Message {
        id: MessageId(id),
        tenant: "t".into(),
        client_ref: format!("r-{id}").into(),
        to: Msisdn::parse("+14155550100").unwrap(),
        from: Sender::parse("12345").unwrap(),
        text: text.into(),
        media: Box::default(),
        channel: ChannelPref::Sms,
        fallback: FallbackPolicy::None,
        campaign_id: "spring".into(),
        expires_at_ms: u64::MAX,
        priority: Priority::Marketing,
        tags: Box::default(),
        accepted_at_ms: sluice::model::now_ms(),
        auto_reply: false,
        mms: None,
    }
}

/// Redirects per second: `n` GETs over `connections` keep-alive
/// connections, spread over `links` stored links.
async fn redirects(n: usize, connections: usize, links: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) =
        sluice::journal::Journal::open(&dir.path().join("journal"), &Default::default()).unwrap();
    let hub = Arc::new(sluice::events::EventHub::new(
        journal,
        ["t".into()],
        Arc::new(sluice::ingest::event_wire::WireEvents),
    ));
    let store = LinkStore::open(
        &dir.path().join("links"),
        SECRET,
        Duration::from_secs(86_400),
    )
    .unwrap();
    let mut paths = Vec::with_capacity(links);
    let mut last = None;
    for id in 0..links as u64 {
        let plan = rewrite::plan(TEXT, "https://acme.link").unwrap();
        let mut m = message(id, plan.text.clone());
        last = Some(store.shorten(&mut m, &plan.links));
        let at = plan.links[0].at;
        paths.push(format!("/{}", &m.text[at..at + sluice::links::CODE_CHARS]));
    }
    store.durable(last.unwrap()).await.unwrap();
    let redirects = Arc::new(sluice::links::serve::Redirects {
        store: store.clone(),
        hub,
        hosts: Default::default(),
        default_host: None,
    });
    let router = sluice::links::serve::router(redirects);
    let door = sluice::door::Door::bind("public", "127.0.0.1:0".parse().unwrap(), None, 1024)
        .await
        .unwrap();
    let addr = door.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(sluice::httpd::serve_router(
        door,
        Default::default(),
        router,
        stop.clone(),
    ));
    let paths = Arc::new(paths);
    let started = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for c in 0..connections {
        let paths = paths.clone();
        let per = n / connections;
        tasks.push(tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .unwrap();
            tokio::spawn(conn);
            let mut ok = 0;
            for i in 0..per {
                let path = &paths[(c * per + i) % paths.len()];
                let req = hyper::Request::get(path.as_str())
                    .header("host", "acme.link")
                    .header("user-agent", IPHONE)
                    .body(Empty::<Bytes>::new())
                    .unwrap();
                let resp = send.send_request(req).await.unwrap();
                ok += usize::from(resp.status() == hyper::StatusCode::FOUND);
            }
            ok
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    stop.cancel();
    assert_eq!(
        ok,
        n / connections * connections,
        "every request redirected"
    );
    let clicks = store.campaign("t", "spring");
    assert_eq!(clicks.clicks as usize, ok, "every click recorded");
    ok as f64 / secs
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for connections in [16, 64, 256] {
        let rate = rt.block_on(redirects(100_000, connections, 10_000));
        println!(
            "links/redirects: 100,000 GETs of 10,000 links over {connections} keep-alive connections, clicks synced: {rate:.0} redirects/s"
        );
    }
}
