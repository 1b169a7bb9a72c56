use std::time::Duration;

use super::record::{self, MAGIC, Record, Step};
use super::store::{self, Segments};
use super::*;
use crate::model::test_message;

fn all_kinds(id: u64, at: u64) -> Vec<Record> {
    let r = |step| Record {
        id: MessageId(id),
        at_ms: at,
        step,
    };
    vec![
        r(Step::Accepted {
            tenant: "acme".into(),
            campaign: "spring".into(),
            client_ref: "order-1".into(),
            to: 14155550100,
            from: "12345".into(),
        }),
        r(Step::Dispatched {
            carrier: "smsc-a".into(),
            parts: 3,
        }),
        r(Step::Wait {
            part: 1,
            cause: "carrier refused for now: ESME_RTHROTTLED".into(),
        }),
        r(Step::Answer {
            part: 2,
            carrier: "smsc-a".into(),
            carrier_id: "abc123".into(),
        }),
        r(Step::PartFailed {
            part: 0,
            state: DeliveryState::Rejected,
            code: 0x45,
            reason: "carrier refused".into(),
        }),
        r(Step::Receipt {
            part: 2,
            state: DeliveryState::Delivered,
            code: 0,
            stat: "DELIVRD".into(),
        }),
        r(Step::Requeued {
            reason: "failover".into(),
        }),
        r(Step::Fallback {
            how: "sms with a link".into(),
            reason: "not reachable by MMS".into(),
        }),
        r(Step::Final {
            state: DeliveryState::Delivered,
            code: 0,
            carrier: "smsc-a".into(),
            reason: "DELIVRD".into(),
        }),
        r(Step::EventAcked {
            event_id: 77,
            sink: String::new(),
        }),
    ]
}

#[test]
fn every_kind_round_trips_and_a_torn_tail_ends_the_segment() {
    let records = all_kinds(42, 1_700_000_000_123);
    let mut seg = MAGIC.to_vec();
    for r in &records {
        record::encode(&mut seg, r);
    }
    let (back, valid) = record::decode_segment(&seg);
    assert_eq!(back, records);
    assert_eq!(valid, seg.len());
    // Cut anywhere inside the last record: the others still read, and the
    // valid length stops before it.
    let last_len = {
        let mut b = Vec::new();
        record::encode(&mut b, records.last().unwrap());
        b.len()
    };
    for cut in 1..last_len {
        let torn = &seg[..seg.len() - cut];
        let (back, valid) = record::decode_segment(torn);
        assert_eq!(back.len(), records.len() - 1, "cut {cut}");
        assert_eq!(valid, seg.len() - last_len);
    }
    // A wrong magic: nothing.
    assert_eq!(record::decode_segment(b"NOTHIST!xx").1, 0);
}

#[test]
fn strings_are_cut_at_255_bytes_on_a_character_boundary() {
    let mut b = Vec::new();
    let long = "é".repeat(200); // 400 bytes
    record::put_str(&mut b, &long);
    assert_eq!(b[0] as usize, 254);
    assert!(std::str::from_utf8(&b[1..]).is_ok());
}

#[test]
fn accepted_records_carry_the_message_fields_without_allocating_a_string() {
    let m = test_message(9, "hi", u64::MAX);
    let mut b = Vec::new();
    let s = record::begin(&mut b, record::Kind::Accepted, m.id, 5);
    record::put_accepted(&mut b, &m);
    record::finish(&mut b, s);
    let (r, n) = record::decode(&b).unwrap();
    assert_eq!(n, b.len());
    match r.step {
        Step::Accepted {
            tenant,
            client_ref,
            to,
            from,
            ..
        } => {
            assert_eq!(tenant, &*m.tenant);
            assert_eq!(client_ref, &*m.client_ref);
            assert_eq!(to, m.to.as_u64());
            assert_eq!(from, m.from.to_string());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn decoding_garbage_never_panics() {
    // A cheap in-test sweep (the fuzz target does the rest).
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for len in 0..400 {
        let mut bytes = MAGIC.to_vec();
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            bytes.push(x as u8);
        }
        let _ = record::decode_segment(&bytes);
        let _ = record::decode(&bytes[8..]);
    }
}

fn cfg(max_bytes: u64) -> HistoryConfig {
    HistoryConfig {
        enabled: true,
        retention: Duration::from_secs(3600),
        max_bytes,
        path: None,
    }
}

fn encoded(id: u64, at: u64) -> Vec<u8> {
    let mut b = Vec::new();
    for r in all_kinds(id, at) {
        record::encode(&mut b, &r);
    }
    b
}

#[test]
fn segments_rotate_at_their_size_and_are_named_by_their_contents() {
    let dir = tempfile::tempdir().unwrap();
    let now = crate::model::now_ms();
    let mut segs = Segments::open(dir.path(), &cfg(1 << 20)).unwrap();
    let seg_bytes = store::segment_bytes(1 << 20);
    let mut written = 0u64;
    let mut id = 1;
    while written < 3 * seg_bytes {
        let b = encoded(id, now + id);
        written += b.len() as u64;
        segs.append(&b).unwrap();
        id += 1;
    }
    let closed: Vec<_> = segs.closed().cloned().collect();
    assert!(closed.len() >= 2, "{closed:?}");
    for (i, c) in closed.iter().enumerate() {
        assert!(c.bytes <= seg_bytes, "{c:?}");
        assert!(c.min_ms <= c.max_ms && c.min_id <= c.max_id);
        if i > 0 {
            assert!(c.min_id >= closed[i - 1].max_id, "{closed:?}");
        }
        // Whole records only: the file reads to its end.
        let bytes = std::fs::read(&c.path).unwrap();
        assert_eq!(record::decode_segment(&bytes).1, bytes.len());
    }
    segs.close_head();
    // Every record is somewhere, once.
    let t = query::run(dir.path(), &Query::Message(MessageId(5))).unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].records, all_kinds(5, now + 5));
}

#[test]
fn retention_drops_the_oldest_segments_past_max_bytes_and_past_age() {
    let dir = tempfile::tempdir().unwrap();
    let now = crate::model::now_ms();
    let max = 64 << 10;
    let mut segs = Segments::open(dir.path(), &cfg(max)).unwrap();
    for id in 1..2000 {
        segs.append(&encoded(id, now)).unwrap();
        segs.retain(now);
    }
    assert!(segs.total_bytes() <= max, "{}", segs.total_bytes());
    let oldest = segs.closed().next().unwrap().min_id;
    assert!(oldest > 1, "the first messages' segments went");
    assert!(
        query::run(dir.path(), &Query::Message(MessageId(1)))
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        query::run(dir.path(), &Query::Message(MessageId(1999)))
            .unwrap()
            .len(),
        1
    );
    // Past retention: every closed segment goes.
    segs.retain(now + 3600 * 1000 + 1);
    assert_eq!(segs.closed().count(), 0);
}

#[test]
fn a_head_segment_left_by_a_crash_is_cut_after_its_last_record_and_closed() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = MAGIC.to_vec();
    bytes.extend(encoded(7, crate::model::now_ms()));
    bytes.extend_from_slice(&[40, 0, 1, 2, 3]); // torn
    std::fs::write(dir.path().join(format!("{:016x}.open", 3)), &bytes).unwrap();
    let segs = Segments::open(dir.path(), &cfg(1 << 30)).unwrap();
    let c: Vec<_> = segs.closed().cloned().collect();
    assert_eq!(c.len(), 1);
    assert_eq!((c[0].seq, c[0].min_id, c[0].max_id), (3, 7, 7));
    assert_eq!(c[0].bytes as usize, bytes.len() - 5);
    let t = query::run(dir.path(), &Query::Message(MessageId(7))).unwrap();
    assert_eq!(t[0].records.len(), 10);
}

#[test]
fn lookups_by_client_ref_carrier_id_and_recipient_find_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut segs = Segments::open(dir.path(), &cfg(1 << 20)).unwrap();
    for id in 1..500u64 {
        segs.append(&encoded(id, 10_000 + id)).unwrap();
    }
    segs.close_head();
    let by_ref = query::run(
        dir.path(),
        &Query::ClientRef {
            tenant: "acme".into(),
            client_ref: "order-1".into(),
        },
    )
    .unwrap();
    assert_eq!(by_ref.len(), query::MAX_MESSAGES);
    assert_eq!(by_ref[0].id, MessageId(499), "newest first");
    let by_carrier = query::run(
        dir.path(),
        &Query::CarrierId {
            carrier: "smsc-a".into(),
            id: query::normalize_carrier_id("00ABC123"),
        },
    )
    .unwrap();
    assert!(!by_carrier.is_empty());
    let by_to = query::run(
        dir.path(),
        &Query::Recipient {
            to: 14155550100,
            since_ms: 10_100,
            until_ms: 10_109,
        },
    )
    .unwrap();
    let ids: Vec<u64> = by_to.iter().map(|t| t.id.0).collect();
    assert_eq!(ids, (100..110).rev().collect::<Vec<_>>());
    assert!(by_to.iter().all(|t| t.records.len() == 10));
    assert_eq!(by_to[0].tenant(), Some("acme"));
    let json = by_to[0].to_json();
    assert_eq!(json["state"], "delivered");
    assert_eq!(json["events"][0]["step"], "accepted");
    let text = query::render(&serde_json::json!({ "messages": [json] }));
    assert!(
        text.contains("carrier_accepted") && text.contains("abc123"),
        "{text}"
    );
}

#[tokio::test]
async fn the_handle_records_through_the_writer_thread_and_close_seals_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let h = History::open(dir.path().to_path_buf(), &cfg(1 << 20)).unwrap();
    let m = test_message(3, "hi", u64::MAX);
    h.accepted(std::slice::from_ref(&m));
    h.dispatched(m.id, "smsc-a", 2);
    h.answered(m.id, "smsc-a", 0, "c0");
    h.answered(m.id, "smsc-a", 1, "c1");
    h.receipt(m.id, 0, DeliveryState::Delivered, 0, "DELIVRD");
    h.finished(m.id, DeliveryState::Delivered, 0, Some("smsc-a"), "DELIVRD");
    h.event_acked(m.id, 9, "");
    let t = h.lookup(Query::Message(m.id)).await.unwrap();
    let json = t[0].to_json();
    let steps: Vec<&str> = json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "accepted",
            "dispatched",
            "carrier_accepted",
            "carrier_accepted",
            "receipt",
            "final",
            "event_acked"
        ]
    );
    h.close().await;
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| n.ends_with(".seg")),
        "closed: {names:?}"
    );
}

#[tokio::test]
async fn steps_after_a_round_that_rotated_many_segments_are_still_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let h = History::open(dir.path().to_path_buf(), &cfg(64 << 10)).unwrap();
    for id in 1..2000u64 {
        let m = test_message(id, "hi", u64::MAX);
        h.accepted(std::slice::from_ref(&m));
        h.dispatched(m.id, "smsc-a", 1);
        h.answered(m.id, "smsc-a", 0, "c0");
        h.finished(m.id, DeliveryState::Delivered, 0, Some("smsc-a"), "DELIVRD");
    }
    h.flush().await;
    let m = test_message(5000, "hi", u64::MAX);
    h.accepted(std::slice::from_ref(&m));
    h.dispatched(m.id, "smsc-a", 1);
    let t = h.lookup(Query::Message(m.id)).await.unwrap();
    assert_eq!(t.len(), 1);
}

/// How long lookups take over ~256 MiB of history (run by hand:
/// `cargo test --release --lib history::tests::scan_speed -- --ignored --nocapture`).
#[test]
#[ignore = "a timing, run by hand"]
fn scan_speed() {
    let dir = tempfile::tempdir().unwrap();
    let now = crate::model::now_ms();
    let mut segs = Segments::open(dir.path(), &cfg(1 << 30)).unwrap();
    let mut id = 1u64;
    while segs.total_bytes() < 256 << 20 {
        let mut b = Vec::new();
        for _ in 0..1000 {
            b.extend(encoded(id, now));
            id += 1;
        }
        segs.append(&b).unwrap();
    }
    segs.close_head();
    let bytes = segs.total_bytes();
    for q in [
        Query::Message(MessageId(id / 2)),
        Query::ClientRef {
            tenant: "acme".into(),
            client_ref: "nope".into(),
        },
        Query::CarrierId {
            carrier: "smsc-a".into(),
            id: "nope".into(),
        },
    ] {
        let t = std::time::SystemTime::now();
        let n = query::run(dir.path(), &q).unwrap().len();
        let s = t.elapsed().unwrap().as_secs_f64();
        eprintln!(
            "{q:?}: {n} found, {:.2} s for {} MiB = {:.2} s/GiB",
            s,
            bytes >> 20,
            s / (bytes as f64 / (1u64 << 30) as f64)
        );
    }
}

#[test]
fn the_fuzz_body_survives_mutations_of_a_valid_segment() {
    let valid = {
        let mut b = vec![0u8];
        b.extend(encoded(42, 1_733_330_000_123));
        b
    };
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..20_000 {
        let mut d = valid.clone();
        for _ in 0..(next() % 4 + 1) {
            let i = (next() as usize) % d.len();
            d[i] = next() as u8;
        }
        let cut = (next() as usize) % (d.len() + 1);
        crate::fuzzing::history_segment(&d[..cut.max(1)]);
        crate::fuzzing::history_segment(&d);
    }
}

#[test]
fn a_string_of_invalid_utf8_decodes_to_one_that_survives_the_format() {
    let mut seg = vec![0u8];
    let s = record::begin(&mut seg, record::Kind::Requeued, MessageId(1), 2);
    seg.push(255);
    seg.extend(std::iter::repeat_n(0xff, 255));
    record::finish(&mut seg, s);
    crate::fuzzing::history_segment(&seg);
}

#[test]
fn a_tiny_max_bytes_or_retention_is_a_config_problem() {
    assert!(HistoryConfig::default().problems().is_empty());
    let mut c = HistoryConfig {
        max_bytes: 1000,
        ..HistoryConfig::default()
    };
    assert_eq!(c.problems().len(), 1);
    c.retention = Duration::ZERO;
    assert_eq!(c.problems().len(), 2);
    c.enabled = false;
    assert!(c.problems().is_empty(), "off: nothing to check");
}
