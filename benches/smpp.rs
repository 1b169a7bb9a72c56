//! SMPP wire cost: `submit_sm` encode and decode, sluice against the `rusmpp`
//! crate in the same groups so the ratio reads off one report, plus the decode
//! of receipt `deliver_sm`s.
//!
//! Both sides go through their `tokio_util` codecs, the path a session takes,
//! with the same buffer discipline: encode appends to a reused `BytesMut`
//! (cleared each time); decode appends the PDU's octets to a reused read
//! buffer, decodes it off the front and drops the result, as a session's read
//! loop does. Each timed iteration is one PDU, caches warm. The rusmpp
//! `Command` is obtained by decoding sluice's bytes, and the setup asserts
//! that rusmpp re-encodes them octet for octet, so both sides handle the same
//! PDU.
//!
//! Criterion runs one function after another, so on a shared machine the
//! sluice/rusmpp ratio moves with whatever else runs meanwhile. The last
//! "bench" ([`bench_paired`]) therefore also times both sides in alternating
//! rounds and prints the fastest and median round of each and their ratio.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice::smpp::codec::SmppCodec;
use sluice::smpp::pdu::{Body, DeliverSm, Pdu, SubmitSm, Tlv, tag};
use sluice::smpp::receipt::{format_receipt_text, parse_receipt};
use tokio::time::Instant;
use tokio_util::codec::{Decoder, Encoder};

/// 60 GSM-7 characters, one septet per octet.
const TEXT: &str = "Your ACME code is 481516. It expires in 10 minutes. Thanks!!";

fn submit_sm() -> Pdu {
    assert_eq!(TEXT.len(), 60);
    Pdu::new(
        7_001,
        Body::SubmitSm(SubmitSm {
            source_addr_ton: 3,
            source_addr_npi: 0,
            source_addr: Bytes::from_static(b"22395"),
            dest_addr_ton: 1,
            dest_addr_npi: 1,
            destination_addr: Bytes::from_static(b"14155550123"),
            registered_delivery: 1,
            data_coding: 0,
            short_message: Bytes::from_static(TEXT.as_bytes()),
            ..SubmitSm::default()
        }),
    )
}

/// A text-only receipt (SMPP 3.4 Appendix B) as most SMSCs send it.
fn receipt_text_only() -> Pdu {
    let text = format_receipt_text(
        "7f3a9c21e0",
        1,
        1,
        "2611271405",
        "2611271405",
        "DELIVRD",
        0,
        TEXT,
    );
    Pdu::new(
        90_001,
        Body::DeliverSm(DeliverSm {
            source_addr_ton: 1,
            source_addr_npi: 1,
            source_addr: Bytes::from_static(b"14155550123"),
            dest_addr_ton: 3,
            dest_addr_npi: 0,
            destination_addr: Bytes::from_static(b"22395"),
            esm_class: 0x04,
            registered_delivery: 0,
            short_message: Bytes::from(text),
            ..DeliverSm::default()
        }),
    )
}

/// A receipt with the SMPP 3.4 receipt TLVs as well as the text.
fn receipt_with_tlvs() -> Pdu {
    let mut pdu = receipt_text_only();
    if let Body::DeliverSm(sm) = &mut pdu.body {
        sm.tlvs = vec![
            Tlv::from_c_string(tag::RECEIPTED_MESSAGE_ID, b"7f3a9c21e0"),
            Tlv::from_u8(tag::MESSAGE_STATE, 2),
            Tlv::new(tag::NETWORK_ERROR_CODE, Bytes::from_static(&[3, 0, 0])),
        ];
    }
    pdu
}

fn rusmpp_command(wire: &[u8]) -> rusmpp::Command {
    let cmd = rusmpp::tokio_codec::CommandCodec::new()
        .decode(&mut BytesMut::from(wire))
        .expect("rusmpp decodes sluice's PDU")
        .expect("whole PDU");
    let mut again = BytesMut::new();
    rusmpp::tokio_codec::CommandCodec::new()
        .encode(&cmd, &mut again)
        .expect("rusmpp encodes");
    assert_eq!(&again[..], wire, "rusmpp re-encodes the same octets");
    cmd
}

fn bench_submit_sm(c: &mut Criterion) {
    let pdu = submit_sm();
    let wire = pdu.to_bytes();
    let cmd = rusmpp_command(&wire);
    eprintln!("smpp/submit_sm: PDU is {} octets", wire.len());

    let mut g = c.benchmark_group("smpp/submit_sm");
    g.throughput(Throughput::Elements(1));

    g.bench_function("encode/sluice", |b| {
        let mut codec = SmppCodec::default();
        let mut buf = BytesMut::with_capacity(1024);
        b.iter(|| {
            buf.clear();
            codec.encode(black_box(&pdu), &mut buf).expect("encodes");
            black_box(buf.len())
        })
    });
    g.bench_function("encode/rusmpp", |b| {
        let mut codec = rusmpp::tokio_codec::CommandCodec::new();
        let mut buf = BytesMut::with_capacity(1024);
        b.iter(|| {
            buf.clear();
            codec.encode(black_box(&cmd), &mut buf).expect("encodes");
            black_box(buf.len())
        })
    });

    g.bench_function("decode/sluice", |b| {
        let mut codec = SmppCodec::default();
        let mut buf = BytesMut::with_capacity(1024);
        b.iter(|| {
            buf.extend_from_slice(black_box(&wire));
            codec
                .decode(&mut buf)
                .expect("frame")
                .expect("whole")
                .expect("valid")
        })
    });
    g.bench_function("decode/rusmpp", |b| {
        let mut codec = rusmpp::tokio_codec::CommandCodec::new();
        let mut buf = BytesMut::with_capacity(1024);
        b.iter(|| {
            buf.extend_from_slice(black_box(&wire));
            codec.decode(&mut buf).expect("valid").expect("whole")
        })
    });

    // Both directions in one number: encode into the read buffer, decode it
    // back, drop the result.
    g.bench_function("encode_decode/sluice", |b| {
        let mut codec = SmppCodec::default();
        let mut buf = BytesMut::with_capacity(1024);
        b.iter(|| {
            codec.encode(black_box(&pdu), &mut buf).expect("encodes");
            codec
                .decode(&mut buf)
                .expect("frame")
                .expect("whole")
                .expect("valid")
        })
    });
    g.bench_function("encode_decode/rusmpp", |b| {
        let mut codec = rusmpp::tokio_codec::CommandCodec::new();
        let mut buf = BytesMut::with_capacity(1024);
        b.iter(|| {
            codec.encode(black_box(&cmd), &mut buf).expect("encodes");
            codec.decode(&mut buf).expect("valid").expect("whole")
        })
    });

    // Sluice's PDU parse alone, from a frame already cut off the stream (what
    // `SmppCodec` hands to `Pdu::decode`); rusmpp has no such entry point
    // (its decoder consumes a `BytesMut`), so this one has no counterpart.
    let frame = BytesMut::from(&wire[..]).freeze();
    g.bench_function("parse_frame/sluice", |b| {
        b.iter(|| Pdu::decode(black_box(&frame).clone()).expect("valid"))
    });
    g.finish();
}

fn bench_receipts(c: &mut Criterion) {
    let mut g = c.benchmark_group("smpp/deliver_sm_receipt");
    g.throughput(Throughput::Elements(1));
    for (name, pdu) in [("text", receipt_text_only()), ("tlv", receipt_with_tlvs())] {
        let wire = pdu.to_bytes();
        let _ = rusmpp_command(&wire);
        eprintln!(
            "smpp/deliver_sm_receipt/{name}: PDU is {} octets",
            wire.len()
        );
        g.bench_function(format!("decode/sluice/{name}"), |b| {
            let mut codec = SmppCodec::default();
            let mut buf = BytesMut::with_capacity(1024);
            b.iter(|| {
                buf.extend_from_slice(black_box(&wire));
                codec
                    .decode(&mut buf)
                    .expect("frame")
                    .expect("whole")
                    .expect("valid")
            })
        });
        g.bench_function(format!("decode/rusmpp/{name}"), |b| {
            let mut codec = rusmpp::tokio_codec::CommandCodec::new();
            let mut buf = BytesMut::with_capacity(1024);
            b.iter(|| {
                buf.extend_from_slice(black_box(&wire));
                codec.decode(&mut buf).expect("valid").expect("whole")
            })
        });
        // What the session does with a receipt: decode, then read it
        // (rusmpp has no receipt parser, so this one is sluice only).
        g.bench_function(format!("decode_parse/sluice/{name}"), |b| {
            let mut codec = SmppCodec::default();
            let mut buf = BytesMut::with_capacity(1024);
            b.iter(|| {
                buf.extend_from_slice(black_box(&wire));
                let pdu = codec
                    .decode(&mut buf)
                    .expect("frame")
                    .expect("whole")
                    .expect("valid");
                match pdu.body {
                    Body::DeliverSm(sm) => parse_receipt(&sm).expect("a receipt"),
                    _ => unreachable!("a deliver_sm"),
                }
            })
        });
    }
    g.finish();
}

// === paired comparison ===

/// Iterations per timed round of [`paired`].
const ROUND: u32 = 2_000;
/// Rounds per side.
const ROUNDS: usize = 300;

/// ns per iteration of `f` over one round.
fn round(f: &mut impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..ROUND {
        f();
    }
    t.elapsed().as_nanos() as f64 / f64::from(ROUND)
}

/// Runs `a` and `b` in alternating rounds so that both see the same
/// interference from other processes (the build machines are shared), and
/// returns each side's (fastest round, median round) in ns per iteration.
fn paired(mut a: impl FnMut(), mut b: impl FnMut()) -> ((f64, f64), (f64, f64)) {
    let (mut ta, mut tb) = (Vec::with_capacity(ROUNDS), Vec::with_capacity(ROUNDS));
    for _ in 0..ROUNDS / 10 {
        round(&mut a);
        round(&mut b);
    }
    for _ in 0..ROUNDS {
        ta.push(round(&mut a));
        tb.push(round(&mut b));
    }
    let stats = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[0], v[v.len() / 2])
    };
    (stats(ta), stats(tb))
}

/// Prints sluice against rusmpp on `submit_sm`, measured in alternating
/// rounds: criterion's groups run one function after the other, so on a
/// loaded machine their ratio moves with the load; this one does not.
fn bench_paired(_: &mut Criterion) {
    let pdu = submit_sm();
    let wire = pdu.to_bytes();
    let cmd = rusmpp_command(&wire);
    let (mut sc, mut rc) = (
        SmppCodec::default(),
        rusmpp::tokio_codec::CommandCodec::new(),
    );
    let (mut sbuf, mut rbuf) = (BytesMut::with_capacity(1024), BytesMut::with_capacity(1024));
    let mut total = [[0.0; 2]; 2];
    for (what, (s, r)) in [
        (
            "encode",
            paired(
                || {
                    sbuf.clear();
                    sc.encode(black_box(&pdu), &mut sbuf).expect("encodes");
                },
                || {
                    rbuf.clear();
                    rc.encode(black_box(&cmd), &mut rbuf).expect("encodes");
                },
            ),
        ),
        (
            "decode",
            paired(
                || {
                    sbuf.clear();
                    sbuf.extend_from_slice(black_box(&wire));
                    black_box(sc.decode(&mut sbuf).expect("frame"));
                },
                || {
                    rbuf.clear();
                    rbuf.extend_from_slice(black_box(&wire));
                    black_box(rc.decode(&mut rbuf).expect("valid"));
                },
            ),
        ),
    ] {
        total[0][0] += s.0;
        total[0][1] += s.1;
        total[1][0] += r.0;
        total[1][1] += r.1;
        eprintln!(
            "smpp/paired/submit_sm/{what}: sluice {:.1} ns (median {:.1}), rusmpp {:.1} ns \
             (median {:.1}); rusmpp/sluice {:.2}x (medians {:.2}x)",
            s.0,
            s.1,
            r.0,
            r.1,
            r.0 / s.0,
            r.1 / s.1
        );
    }
    eprintln!(
        "smpp/paired/submit_sm/encode+decode: sluice {:.1} ns, rusmpp {:.1} ns; \
         rusmpp/sluice {:.2}x (medians {:.2}x)",
        total[0][0],
        total[1][0],
        total[1][0] / total[0][0],
        total[1][1] / total[0][1]
    );
}

criterion_group!(benches, bench_submit_sm, bench_receipts, bench_paired);
criterion_main!(benches);
