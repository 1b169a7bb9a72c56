//! Message text: GSM-7 and UCS-2 encoding into `submit_sm` parts
//! (`smpp::text::encode` with the default options: 8-bit UDH concatenation,
//! unpacked GSM-7) and the cost estimate `plan`.
//!
//! Times are per message (all of its parts); the setup prints each text's
//! plan so the part counts are on record.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice::smpp::text::{TextOptions, encode, plan};

/// 1 part, GSM-7, 136 characters.
const GSM_1: &str = "ACME: your order #204871 has shipped and arrives Tue 2 Dec. \
Track it at https://acme.example/t/9f2c or reply HELP for help. STOP to end.";

/// A 3-part GSM-7 text (one `€`, an extension character).
fn gsm_3() -> String {
    let para = "Dear customer, your monthly statement is ready. The balance due is €182.40 and \
the payment date is 15 December. Pay online, by phone or at any branch; ";
    let mut s = String::new();
    while s.chars().count() < 430 {
        s.push_str(para);
    }
    s.chars().take(430).collect()
}

/// UCS-2 because of the emoji (surrogate pairs): 1 part of at most 70 units.
const UCS2_1: &str = "Hi Ana 👋 table for 4 confirmed 19:30 🍝 Reply C to cancel";

/// UCS-2, 2 parts (accents outside GSM 03.38 plus emoji).
const UCS2_2: &str = "Olá Łukasz! Twoja paczka 📦 została nadana i dotrze jutro między 9:00 a 12:00. \
Śledź przesyłkę w aplikacji 🚚";

fn bench_text(c: &mut Criterion) {
    let gsm_3 = gsm_3();
    let cases: [(&str, &str); 4] = [
        ("gsm7_1part", GSM_1),
        ("gsm7_3part", &gsm_3),
        ("ucs2_emoji_1part", UCS2_1),
        ("ucs2_emoji_2part", UCS2_2),
    ];
    let opts = TextOptions::default();
    for (name, text) in cases {
        let p = plan(text).expect("plannable");
        eprintln!(
            "text/{name}: {} chars, {:?}, {} units, {} segments",
            text.chars().count(),
            p.encoding,
            p.units,
            p.segments
        );
    }

    let mut g = c.benchmark_group("text/encode");
    g.throughput(Throughput::Elements(1));
    for (name, text) in cases {
        g.bench_function(name, |b| {
            b.iter(|| encode(black_box(text), &opts, 0x2a).expect("encodes"))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("text/plan");
    g.throughput(Throughput::Elements(1));
    for (name, text) in cases {
        g.bench_function(name, |b| b.iter(|| plan(black_box(text)).expect("plans")));
    }
    g.finish();
}

criterion_group!(benches, bench_text);
criterion_main!(benches);
