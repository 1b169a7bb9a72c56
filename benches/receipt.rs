//! Receipt reading and correlation keys: `smpp::receipt::parse_receipt` on an
//! already decoded `deliver_sm` (text-only and TLV receipts), and
//! `receipts::normalize_id` / `candidate_ids` on the id forms SMSCs send.
//!
//! The decode of the PDU itself is in `benches/smpp.rs`.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice::receipts::{candidate_ids, normalize_id};
use sluice::smpp::pdu::{DeliverSm, Tlv, tag};
use sluice::smpp::receipt::{format_receipt_text, parse_receipt};

fn receipt(tlvs: bool) -> DeliverSm {
    let text = format_receipt_text(
        "7f3a9c21e0",
        1,
        1,
        "2611271405",
        "2611271405",
        "DELIVRD",
        0,
        "Your ACME code is 481516. It expires in 10 minutes.",
    );
    DeliverSm {
        source_addr_ton: 1,
        source_addr_npi: 1,
        source_addr: Bytes::from_static(b"14155550123"),
        dest_addr_ton: 3,
        dest_addr_npi: 0,
        destination_addr: Bytes::from_static(b"22395"),
        esm_class: 0x04,
        registered_delivery: 0,
        short_message: Bytes::from(text),
        tlvs: if tlvs {
            vec![
                Tlv::from_c_string(tag::RECEIPTED_MESSAGE_ID, b"7f3a9c21e0"),
                Tlv::from_u8(tag::MESSAGE_STATE, 2),
                Tlv::new(tag::NETWORK_ERROR_CODE, Bytes::from_static(&[3, 0, 0])),
            ]
        } else {
            Vec::new()
        },
        ..DeliverSm::default()
    }
}

fn bench_parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("receipt/parse");
    g.throughput(Throughput::Elements(1));
    for (name, sm) in [("text", receipt(false)), ("tlv", receipt(true))] {
        g.bench_function(name, |b| {
            b.iter(|| parse_receipt(black_box(&sm)).expect("a receipt"))
        });
    }
    g.finish();
}

fn bench_ids(c: &mut Criterion) {
    // Hex id with leading zeros and upper case; a decimal id (both
    // conversions apply); a UUID-style id (no conversion).
    let ids: [(&str, &[u8]); 3] = [
        ("hex", b"007F3A9C21E0"),
        ("decimal", b"0004712093387"),
        ("uuid", b"3f2b8c1e-9d4a-4b7e-a1c2-5e6f7a8b9c0d"),
    ];
    let mut g = c.benchmark_group("receipt/ids");
    g.throughput(Throughput::Elements(1));
    for (name, id) in ids {
        g.bench_function(format!("normalize_id/{name}"), |b| {
            b.iter(|| normalize_id(black_box(id)))
        });
        g.bench_function(format!("candidate_ids/{name}"), |b| {
            b.iter(|| candidate_ids(black_box(id)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_parse, bench_ids);
criterion_main!(benches);
