//! MM7: encoding a SubmitReq with a 100 KB image (criterion), then MM7
//! submits per second through the MMSC simulator over real HTTP with the
//! pooled client (printed; the same media for every recipient, encoded per
//! request as the gateway does): without presentation and binary media
//! (the previous figure), with SMIL, and with SMIL and base64 media; then
//! SMIL with 10 recipients per request (`mmsc.max_recipients`), counted
//! per recipient.
//!
//! `cargo bench --bench mm7`

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group};
use sluice::mm7::Version;
use sluice::mm7::client::{ClientConfig, Mm7Client, SubmitOutcome};
use sluice::mm7::soap::{
    Address, MediaEncoding, MediaPart, Presentation, RecipientField, SubmitReq,
};

fn image() -> Bytes {
    // 100 KB of incompressible bytes behind a JPEG header: the MMSC
    // simulator does not decode images, the size is what matters here.
    let mut v = vec![0xFF, 0xD8, 0xFF, 0xE0];
    let mut x: u32 = 7;
    while v.len() < 100 * 1024 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        v.push(x as u8);
    }
    Bytes::from(v)
}

fn encode(c: &mut Criterion) {
    let img = image();
    let sender = Address::ShortCode("12345".into());
    let to = [Address::Number("+14155550100".into())];
    let media = [MediaPart {
        content_type: "image/jpeg",
        content_id: "img-1",
        bytes: img.clone(),
    }];
    let mut g = c.benchmark_group("mm7");
    g.throughput(Throughput::Elements(1));
    for (name, presentation, media_encoding) in VARIANTS {
        let bench = match name {
            "plain" => "submit_req_encode_100k_image".to_owned(),
            other => format!("submit_req_encode_100k_image_{other}"),
        };
        g.bench_function(bench, |b| {
            b.iter(|| {
                let req = SubmitReq {
                    transaction_id: "0000000000000001-0",
                    version: Version::default(),
                    vasp_id: Some("sluice"),
                    sender: Some(&sender),
                    recipients: &to,
                    delivery_report: true,
                    subject: Some("Black Friday"),
                    text: "Look at this!",
                    media: &media,
                    presentation,
                    media_encoding,
                    ..SubmitReq::default()
                };
                black_box(req.encode().body.len())
            })
        });
    }
    g.finish();
}

/// Layouts compared: none and binary (the earlier default), SMIL, SMIL
/// with base64 media.
const VARIANTS: [(&str, Presentation, MediaEncoding); 3] = [
    ("plain", Presentation::None, MediaEncoding::Binary),
    ("smil", Presentation::Smil, MediaEncoding::Binary),
    ("smil_base64", Presentation::Smil, MediaEncoding::Base64),
];

criterion_group!(benches, encode);

/// Submits `n` requests of `recipients` recipients each with
/// `concurrency` in flight through the simulator: MMS (recipients) per
/// second.
async fn throughput(
    n: usize,
    recipients: usize,
    concurrency: usize,
    presentation: Presentation,
    media_encoding: MediaEncoding,
) -> f64 {
    let mmsc = sluice::sim::mmsc::start(sluice::sim::mmsc::MmscConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    })
    .await
    .unwrap();
    let client = Arc::new(
        Mm7Client::new(ClientConfig {
            url: mmsc.url(),
            max_connections: concurrency,
            request_timeout: Duration::from_secs(30),
            ..ClientConfig::default()
        })
        .unwrap(),
    );
    let img = image();
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let started = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let (client, img) = (client.clone(), img.clone());
        tasks.push(tokio::spawn(async move {
            let sender = Address::ShortCode("12345".into());
            let to: Vec<Address> = (0..recipients)
                .map(|r| Address::Number(format!("+1415{:07}", i * recipients + r)))
                .collect();
            let media = [MediaPart {
                content_type: "image/jpeg",
                content_id: "img-1",
                bytes: img,
            }];
            let tid = format!("{i:016x}-0");
            let req = SubmitReq {
                transaction_id: &tid,
                sender: Some(&sender),
                recipients: &to,
                recipient_field: if recipients > 1 {
                    RecipientField::Bcc
                } else {
                    RecipientField::To
                },
                delivery_report: true,
                text: "Look at this!",
                media: &media,
                presentation,
                media_encoding,
                ..SubmitReq::default()
            };
            let r = client.submit(&req).await;
            drop(permit);
            matches!(r, Ok(SubmitOutcome::Accepted { .. }))
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += usize::from(t.await.unwrap());
    }
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(ok, n, "every submit accepted");
    assert_eq!(mmsc.stats().accepted as usize, n);
    assert_eq!(mmsc.stats().recipients as usize, n * recipients);
    (n * recipients) as f64 / secs
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
    for (name, presentation, encoding) in VARIANTS {
        for concurrency in [8, 32] {
            let rate = rt.block_on(throughput(4000, 1, concurrency, presentation, encoding));
            println!(
                "mm7/throughput {name}: 4000 submits of a 100 KB image, {concurrency} in flight: {rate:.0} MMS/s"
            );
        }
    }
    for concurrency in [8, 32] {
        let rate = rt.block_on(throughput(
            400,
            10,
            concurrency,
            Presentation::Smil,
            MediaEncoding::Binary,
        ));
        println!(
            "mm7/throughput smil, 10 recipients per request: 400 submits of a 100 KB image, {concurrency} in flight: {rate:.0} MMS/s"
        );
    }
}
