//! Fuzz target bodies: one `pub fn(&[u8])` per decoder that reads bytes
//! from the network or from disk ([`TARGETS`]). The libFuzzer targets in
//! `fuzz/fuzz_targets/` are one line each calling these, and
//! `tests/fuzz_corpus.rs` replays every committed seed in
//! `fuzz/seeds/<target>/` through the same functions on stable Rust, so an
//! input that once crashed stays a regression test.
//!
//! "If we panic, we lose": each body feeds its input to the decoder, then
//! asserts what the decoder promises (a decoded value re-encodes to itself,
//! the valid prefix of a log replays the same, answers parse, lengths stay
//! in bounds), so a wrong answer fails like a panic. Where a checksum would
//! stop the fuzzer at the door (journal records, spill batches, dedupe
//! batches), a mode picked by the first input byte frames fuzzed payloads
//! with a correct checksum so the decoding behind it is reached too.
//!
//! Decoders that are private or read files are reached through small
//! `#[doc(hidden)] pub` hooks in their own modules (`fuzz_*`); nothing here
//! changes what they do. Not part of the product: hidden from the docs, and
//! only tests and `fuzz/` call it.

use std::io::{self, BufReader};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Response, StatusCode};
use tokio_util::codec::Decoder;

use crate::config::Config;
use crate::ingest::{codec, pb};
use crate::journal::{self, dedupe_log};
use crate::media::link::LinkSigner;
use crate::media::store::{Media, MediaStore, StoreConfig};
use crate::mm7::Credentials;
use crate::mm7::mime::{self, ContentType, Layout, Part};
use crate::mm7::server::{self, Mm7Inbound, ServerConfig};
use crate::mm7::soap::{self, Encoded, MediaPart, Message, SubmitReq};
use crate::model::Message as SmsMessage;
use crate::smpp::codec::SmppCodec;
use crate::smpp::pdu::{self, DeliverSm, Pdu, Tlv, tag};
use crate::smpp::receipt::{self, Receipt, ReceiptState};
use crate::smpp::text;
use crate::suppression::import::{self, CsvImport, ImportOptions, Parsed};
use crate::suppression::keywords::{self, Keyword, Keywords};

/// A target's body.
pub type Body = fn(&[u8]);

/// Every target: its name (the directory of its seeds, the name of its
/// libFuzzer binary) and its body.
pub const TARGETS: &[(&str, Body)] = &[
    ("smpp_pdu_decode", smpp_pdu_decode),
    ("smpp_receipt", smpp_receipt),
    ("smpp_text", smpp_text),
    ("ingest_frame", ingest_frame),
    ("api_batch", api_batch),
    ("mm7_soap", mm7_soap),
    ("mm7_mime", mm7_mime),
    ("mm7_callback", mm7_callback),
    ("journal_replay", journal_replay),
    ("spill_read", spill_read),
    ("dedupe_log", dedupe_log),
    ("optout_import", optout_import),
    ("landing_page", landing_page),
    ("keywords", keywords),
    ("config", config),
    ("sim_smsc", sim_smsc),
    ("smpp_server_submit", smpp_server_submit),
    ("history_segment", history_segment),
    ("cluster_state", cluster_state),
    ("link_store", link_store),
];

// === input helpers ===

/// The first line (without `\n` and a trailing `\r`) and the rest; no line
/// end: the whole input is the line.
fn line(data: &[u8]) -> (&[u8], &[u8]) {
    let (l, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    (l.strip_suffix(b"\r").unwrap_or(l), rest)
}

/// A little-endian integer of `N` bytes from the front (zero-padded).
fn int<const N: usize>(data: &mut &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = N.min(data.len());
    b[..n].copy_from_slice(&data[..n]);
    *data = &data[n..];
    u64::from_le_bytes(b)
}

/// A runtime for targets whose entry point is async.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    thread_local! {
        static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime");
    }
    RT.with(|rt| rt.block_on(f))
}

// === SMPP ===

/// SMPP PDU decoding as one frame and as a stream; whatever decodes must
/// re-encode to a PDU that decodes to the same value, and what a session
/// answers a malformed PDU with must encode too.
pub fn smpp_pdu_decode(data: &[u8]) {
    if let Ok(pdu) = Pdu::decode(Bytes::copy_from_slice(data)) {
        pdu_round_trip(&pdu);
    }
    let mut codec = SmppCodec::new(4096);
    let mut src = BytesMut::from(data);
    loop {
        match codec.decode(&mut src) {
            Ok(Some(Ok(pdu))) => pdu_round_trip(&pdu),
            Ok(Some(Err(error))) => {
                let nack = error.generic_nack();
                assert_eq!(nack.sequence_number, error.sequence_number().unwrap_or(0));
                pdu_round_trip(&nack);
            }
            Ok(None) | Err(_) => break,
        }
    }
}

fn pdu_round_trip(pdu: &Pdu) {
    let bytes = pdu.to_bytes();
    assert_eq!(bytes.len(), pdu.encoded_len());
    let again = Pdu::decode(bytes).expect("a re-encoded PDU must decode");
    assert_eq!(&again, pdu);
}

/// Delivery receipts: text in `short_message`, in `message_payload` beside
/// fuzzed receipt TLVs, and a stat word (first byte: `esm_class`).
pub fn smpp_receipt(data: &[u8]) {
    let Some((&esm_class, rest)) = data.split_first() else {
        return;
    };
    let rest = Bytes::copy_from_slice(rest);
    let sm = DeliverSm {
        esm_class,
        short_message: rest.slice(..rest.len().min(255)),
        ..DeliverSm::default()
    };
    let _ = receipt::is_receipt(&sm);
    assert!(
        receipt::fuzz_standard_layout_agrees(&rest),
        "the standard layout's reader and the scan disagree"
    );
    if let Ok(r) = receipt::parse_receipt(&sm) {
        check_receipt(&r, esm_class);
    }
    let field = |i: usize, len: usize| rest.slice(rest.len().min(i)..rest.len().min(i + len));
    let sm = DeliverSm {
        esm_class,
        tlvs: vec![
            Tlv::new(tag::RECEIPTED_MESSAGE_ID, field(0, 8)),
            Tlv::new(tag::MESSAGE_STATE, field(8, 1)),
            Tlv::new(tag::NETWORK_ERROR_CODE, field(9, 3)),
            Tlv::new(tag::MESSAGE_PAYLOAD, field(12, usize::MAX / 2)),
        ],
        ..DeliverSm::default()
    };
    if let Ok(r) = receipt::parse_receipt(&sm) {
        check_receipt(&r, esm_class);
    }
    let state = ReceiptState::from_stat_word(&rest);
    assert_eq!(ReceiptState::from_stat_word(state.stat_word()), state);
}

fn check_receipt(r: &Receipt, esm_class: u8) {
    let id = &r.message_id;
    assert!(!id.is_empty());
    assert!(!id[0].is_ascii_whitespace() && id[0] != 0);
    assert!(!id[id.len() - 1].is_ascii_whitespace() && id[id.len() - 1] != 0);
    assert_eq!(r.intermediate, esm_class & 0x3C == 0x20);
    if r.intermediate {
        assert!(!r.is_final());
    }
}

/// Inbound message text with every `data_coding`, UDH flag and packing
/// (first two bytes), and the text encoder on what is valid UTF-8.
pub fn smpp_text(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let (head, body) = data.split_at(2);
    let incoming = text::Incoming {
        data_coding: head[0],
        esm_class_udhi: head[1] & 1 != 0,
        short_message: body,
        sar: None,
        message_payload: None,
        gsm7_packed: head[1] & 2 != 0,
    };
    let _ = incoming.decode();
    let _ = text::parse_udh(body);
    if let Ok(s) = std::str::from_utf8(body) {
        for concat in [
            text::Concat::Udh8,
            text::Concat::Udh16,
            text::Concat::Sar,
            text::Concat::Payload,
        ] {
            let opts = text::TextOptions {
                concat,
                gsm7_packed: head[1] & 2 != 0,
            };
            if let Ok(parts) = text::encode(s, &opts, 7) {
                assert!(!parts.is_empty());
            }
        }
    }
}

/// The ingest protocol: length-delimited frames, the protobuf frame decoder,
/// and admission of every message of a batch.
pub fn ingest_frame(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    let mut c = codec::length_codec(64 * 1024);
    while let Ok(Some(frame)) = c.decode(&mut buf) {
        if let Ok((_, pb::frame::Body::SubmitBatch(b))) = codec::decode_frame(frame.freeze()) {
            let tenant: Arc<str> = "fuzz".into();
            for m in b.messages {
                let m = crate::ingest::convert::submission(m);
                let _ = crate::admission::validate(&tenant, m, Duration::from_secs(60), 0);
            }
        }
    }
    let _ = codec::decode_frame(Bytes::copy_from_slice(data));
}

/// The HTTP API's `POST /v1/messages` body: JSON decoding into the
/// domain's submissions, then admission's checks of every message.
pub fn api_batch(data: &[u8]) {
    if let Ok(batch) = crate::api::decode_batch(data) {
        let tenant: Arc<str> = "fuzz".into();
        for m in batch {
            let _ = crate::admission::validate(&tenant, m, Duration::from_secs(60), 0);
        }
    }
}

/// The SMSC simulator's own path for a stream of PDUs: each `submit_sm`
/// through its text decoding, SAR checks and reassembly; the receipt text
/// it would write for an accepted text must parse back to its id and state.
pub fn sim_smsc(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut codec = SmppCodec::new(64 * 1024);
    let mut src = BytesMut::from(rest);
    let mut reassembler = text::Reassembler::new(4);
    while let Ok(Some(frame)) = codec.decode(&mut src) {
        let Ok(Pdu {
            body: pdu::Body::SubmitSm(sm),
            ..
        }) = frame
        else {
            continue;
        };
        let done = crate::tools::sim::smsc::fuzz_submit(&sm, flags & 1 != 0, &mut reassembler);
        assert!(reassembler.len() <= 4);
        let Ok(Some(text)) = done else { continue };
        let r = receipt::format_receipt_text(
            "a0000001",
            1,
            1,
            "2601011200",
            "2601011201",
            "DELIVRD",
            0,
            &text,
        );
        let sm = DeliverSm {
            esm_class: receipt::ESM_DELIVERY_RECEIPT,
            short_message: Bytes::from(r),
            ..DeliverSm::default()
        };
        let parsed = receipt::parse_receipt(&sm).expect("the simulator's receipts parse");
        assert_eq!(&parsed.message_id[..], b"a0000001");
        assert_eq!(parsed.state, ReceiptState::Delivered);
    }
}

// === MM7 ===

/// An MM7 body as [`soap::decode`] reads it (first line: the
/// `Content-Type`, empty for none). What decodes and can be encoded again
/// must decode again, and after one round it is a fixed point.
pub fn mm7_soap(data: &[u8]) {
    let (ct, body) = line(data);
    let ct = std::str::from_utf8(ct).ok().filter(|s| !s.is_empty());
    let Ok(m0) = soap::decode(ct, &Bytes::copy_from_slice(body)) else {
        return;
    };
    let _ = (m0.name(), m0.transaction_id(), m0.version());
    mm7_fixed_point(&m0);
}

fn mm7_fixed_point(m0: &Message) {
    let Some(e1) = mm7_encode(m0) else { return };
    let m1 = mm7_decode_own(&e1);
    assert_eq!(m1.name(), m0.name());
    match (m0, &m1) {
        (Message::SubmitRsp(a), Message::SubmitRsp(b)) => assert_eq!(a.status.code, b.status.code),
        (Message::Rsp(a), Message::Rsp(b)) => assert_eq!(a.status.code, b.status.code),
        (Message::DeliveryReportReq(a), Message::DeliveryReportReq(b)) => {
            assert_eq!(a.mm_status.is_final(), b.mm_status.is_final());
        }
        _ => {}
    }
    let e2 = mm7_encode(&m1).expect("encodable once");
    let m2 = mm7_decode_own(&e2);
    assert_eq!(m1, m2, "a decoded MM7 message re-encodes to itself");
}

fn mm7_decode_own(e: &Encoded) -> Message {
    soap::decode(Some(&e.content_type), &e.body).unwrap_or_else(|err| {
        panic!(
            "what sluice encodes must decode: {err}\n{}",
            String::from_utf8_lossy(&e.body)
        )
    })
}

fn mm7_encode(m: &Message) -> Option<Encoded> {
    Some(match m {
        Message::SubmitRsp(r) => r.encode(),
        Message::Rsp(r) => r.encode(),
        Message::Fault(f) => f.encode(),
        Message::DeliveryReportReq(r) => r.encode(),
        Message::DeliverReq(r) => r.encode(),
        Message::SubmitReq(r) => {
            let ids: Vec<String> = (0..r.media.len()).map(|i| format!("m{i}@fuzz")).collect();
            let media: Vec<MediaPart<'_>> = r
                .media
                .iter()
                .zip(&ids)
                .map(|(p, id)| MediaPart {
                    content_type: p
                        .header("content-type")
                        .unwrap_or("application/octet-stream"),
                    content_id: id,
                    bytes: p.body.clone(),
                })
                .collect();
            SubmitReq {
                transaction_id: &r.transaction_id,
                version: r.version.unwrap_or_default(),
                vasp_id: r.vasp_id.as_deref(),
                vas_id: r.vas_id.as_deref(),
                sender: r.sender.as_ref(),
                recipients: &r.recipients,
                service_code: r.service_code.as_deref(),
                linked_id: r.linked_id.as_deref(),
                delivery_report: r.delivery_report,
                subject: r.subject.as_deref(),
                text: &r.text,
                media: &media,
                ..SubmitReq::default()
            }
            .encode()
        }
        _ => return None,
    })
}

/// MIME as MM7 receives it (first line: the `Content-Type`). Parts of a
/// multipart laid out again by sluice's own writer parse back the same;
/// every leaf is a single part; a part is found by its own `cid:`.
pub fn mm7_mime(data: &[u8]) {
    let (ct, body) = line(data);
    let ct = ContentType::parse(&String::from_utf8_lossy(ct));
    assert_eq!(ct.mime, ct.mime.to_ascii_lowercase());
    assert!(mime::decode_quoted_printable(body).len() <= body.len());
    let body = Bytes::copy_from_slice(body);
    let _ = mime::decode_charset(&body, ct.param("charset").unwrap_or(""));
    let Some(boundary) = ct.param("boundary") else {
        return;
    };
    let Ok(parts) = mime::parse_multipart(&body, boundary) else {
        return;
    };
    assert!(!parts.is_empty() && parts.len() <= mime::MAX_PARTS);
    for p in &parts {
        let _ = (p.text(), p.content_location());
        if let Some(id) = p.content_id()
            && !id.is_empty()
            && id == id.trim()
            && !id.contains('%')
        {
            let found = mime::find_part(&parts, &format!("cid:{id}")).expect("a part by its cid");
            assert!(
                found
                    .content_id()
                    .is_some_and(|f| f.eq_ignore_ascii_case(id))
            );
        }
        if let Ok(leaves) = mime::leaves(p.clone()) {
            assert!(!leaves.is_empty() && leaves.len() <= mime::MAX_PARTS + 1);
            assert!(leaves.iter().all(|l| !l.content_type().is_multipart()));
        }
    }
    if let Some((boundary, again)) = relayout(&parts) {
        let back = mime::parse_multipart(&again, &boundary).expect("a laid-out multipart parses");
        assert_eq!(back, parts, "parts laid out again parse back the same");
    }
}

/// The parts written by [`Layout`] under a boundary found in none of them;
/// `None` when a part had a transfer encoding (its body was decoded).
fn relayout(parts: &[Part]) -> Option<(String, Bytes)> {
    let identity = |p: &Part| {
        p.header("content-transfer-encoding").is_none_or(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "" | "7bit" | "8bit" | "binary"
            )
        })
    };
    if !parts.iter().all(identity) {
        return None;
    }
    let boundary = (0u32..)
        .map(|i| format!("fz{i}"))
        .find(|b| {
            !parts.iter().any(|p| {
                mime::collides(&p.body, b)
                    || p.headers
                        .iter()
                        .any(|(n, v)| n.contains(b.as_str()) || v.contains(b.as_str()))
            })
        })
        .expect("some boundary is free");
    let mut l = Layout::default();
    for p in parts {
        let headers: Vec<(&str, &str)> = p
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        l.begin_part(&boundary, &headers);
        l.bytes(&p.body);
        l.end_part();
    }
    l.close(&boundary);
    Some((boundary, l.finish()))
}

/// A handler that records nothing and fails when told to.
#[derive(Debug)]
struct FuzzInbound {
    fail: bool,
}

impl Mm7Inbound for FuzzInbound {
    async fn delivery_report(
        &self,
        report: soap::DeliveryReportReq,
    ) -> Result<crate::mm7::status::Status, crate::mm7::server::HandlerError> {
        let _ = report.mm_status.is_final();
        if self.fail {
            Err("told to".into())
        } else {
            Ok(crate::mm7::status::Status::success())
        }
    }

    async fn deliver(
        &self,
        deliver: soap::DeliverReq,
    ) -> Result<(), crate::mm7::server::HandlerError> {
        let _ = keywords::normalize(&deliver.text);
        if self.fail {
            Err("told to".into())
        } else {
            Ok(())
        }
    }
}

/// The user and password of [`mm7_callback`]'s receiver.
const MMSC_USER: &str = "mmsc";
const MMSC_PASSWORD: &str = "s3cret";

/// An MMSC callback request as a whole, through the receiver's live path
/// (admission, basic auth, body, decoding, handler, answer). First byte:
/// bits 0-1 the method, 2-3 the `Authorization` (none, right, the fuzzed
/// second line, right with the scheme in upper case), bit 4 a failing
/// handler; then a `Content-Type` line, an `Authorization` line, the body.
/// Every answer is one the table of `mm7::server` allows, and its SOAP body
/// parses as the answer it claims to be.
pub fn mm7_callback(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (ct, rest) = line(rest);
    let (auth, body) = line(rest);
    let method =
        [Method::POST, Method::POST, Method::GET, Method::PUT][usize::from(flags & 3)].clone();
    let creds = Credentials::new(MMSC_USER, MMSC_PASSWORD);
    let mut b = Request::builder().method(method.clone()).uri("/mm7");
    if !ct.is_empty() {
        b = b.header(hyper::header::CONTENT_TYPE, ct);
    }
    let authorized = match (flags >> 2) & 3 {
        0 => false,
        1 => {
            b = b.header(hyper::header::AUTHORIZATION, creds.header_value());
            true
        }
        2 => {
            b = b.header(hyper::header::AUTHORIZATION, auth);
            creds.matches(auth)
        }
        _ => {
            let v = creds.header_value().replacen("Basic", "BASIC", 1);
            b = b.header(hyper::header::AUTHORIZATION, v);
            true
        }
    };
    let Ok(req) = b.body(Full::new(Bytes::copy_from_slice(body))) else {
        return;
    };
    let cfg = ServerConfig {
        credentials: Some(creds),
        max_body: 256 * 1024,
        ..ServerConfig::default()
    };
    let handler = Arc::new(FuzzInbound {
        fail: flags & 0x10 != 0,
    });
    let peer = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let (status, ct, answer) = block_on(async {
        let resp = server::fuzz_callback(cfg, handler, peer, req).await;
        let ct = resp
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let status = resp.status();
        let body = resp.into_body().collect().await.map(|b| b.to_bytes());
        (status, ct, body.expect("answers are in memory"))
    });
    if !authorized {
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        return;
    }
    if method != Method::POST {
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        return;
    }
    match status {
        StatusCode::OK => match soap::decode(ct.as_deref(), &answer) {
            Ok(Message::Rsp(r)) => assert_eq!(r.status.code, 1000),
            other => panic!("200 must carry a success Rsp: {other:?}"),
        },
        StatusCode::BAD_REQUEST | StatusCode::INTERNAL_SERVER_ERROR => {
            match soap::decode(ct.as_deref(), &answer) {
                Ok(Message::Fault(f)) => assert!(f.status.is_some()),
                other => panic!("{status} must carry a Fault: {other:?}"),
            }
        }
        StatusCode::PAYLOAD_TOO_LARGE => assert!(body.len() > 256 * 1024),
        other => panic!("unexpected answer {other}"),
    }
}

// === disk ===

/// Frames `(kind, payload)` chunks as journal records with a correct CRC:
/// `[kind u8][len u16 LE][payload]` each, until the input ends.
fn journal_records(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let kind = int::<1>(&mut data) as u8;
        let len = (int::<2>(&mut data) as usize).min(data.len());
        let (payload, rest) = data.split_at(len);
        data = rest;
        let start = out.len();
        out.extend_from_slice(&((payload.len() + 1) as u32).to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.push(kind);
        out.extend_from_slice(payload);
        let crc = crc32fast::hash(&out[start + 8..]);
        out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    }
    out
}

/// Journal segment replay (`journal::replay` + `record`). First byte even:
/// the rest is a segment as read from disk; odd: `(kind, payload)` records
/// framed with correct CRCs. The valid prefix replays to the same records;
/// recovered messages survive the journal's message format; allocated ids
/// stay above every recovered one.
pub fn journal_replay(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let segment = Bytes::from(if mode & 1 == 0 {
        rest.to_vec()
    } else {
        journal_records(rest)
    });
    // What `journal check` and `salvage` see: spans that tile the segment,
    // the first ones being the valid prefix replay stops after.
    let spans = journal::scan(&segment);
    let mut at = 0;
    for s in &spans {
        let (journal::Span::Record { offset, len } | journal::Span::Damaged { offset, len }) = *s;
        assert_eq!(offset, at, "spans are contiguous");
        assert!(len > 0);
        at += len;
    }
    assert_eq!(at, segment.len(), "spans cover the segment");
    let prefix: usize = spans
        .iter()
        .map_while(|s| match s {
            journal::Span::Record { len, .. } => Some(*len),
            journal::Span::Damaged { .. } => None,
        })
        .sum();
    let Ok((rec, valid)) = journal::fuzz_replay(segment.clone()) else {
        return;
    };
    assert!(valid <= segment.len());
    assert_eq!(valid, prefix, "replay stops where the first damage starts");
    let (again, valid_again) =
        journal::fuzz_replay(segment.slice(..valid)).expect("the valid prefix replays");
    assert_eq!(valid_again, valid);
    assert_eq!(again.records, rec.records);
    assert_eq!(again.messages.len(), rec.messages.len());
    // A live message whose stored form does not decode whole is a problem
    // the restart reports; its head (id, key) decoded during replay.
    let messages: Vec<SmsMessage> = rec
        .messages
        .iter()
        .filter_map(|m| m.message().ok())
        .collect();
    messages_round_trip(&messages);
    for m in &rec.messages {
        let decoded = m.message();
        assert_eq!(
            journal::check_stored(&m.stored).is_ok(),
            decoded.is_ok(),
            "the in-place check agrees with the decoder"
        );
        assert_eq!(m.decodes, decoded.is_ok(), "replay's check agrees too");
        if let Ok(d) = decoded {
            assert_eq!((d.id, &d.tenant, d.priority), (m.id, &m.tenant, m.priority));
        }
        let id = m.id.0;
        assert!(id < rec.next_message_id || rec.next_message_id == u64::MAX);
    }
    for e in &rec.events {
        assert!(e.event_id < rec.next_event_id || rec.next_event_id == u64::MAX);
    }
}

fn messages_round_trip(messages: &[SmsMessage]) {
    let mut buf = BytesMut::new();
    journal::encode_messages(&mut buf, messages);
    let back = journal::decode_messages(&buf).expect("encoded messages decode");
    assert_eq!(back, messages, "messages survive the journal's format");
}

/// Spill file read-back. First byte even: the rest is a batch as read from
/// disk (a count of 1..=8 from the second byte); odd: the rest is a fuzzed
/// payload framed with a correct CRC. Messages read back have the count the
/// descriptor says and survive the format again.
pub fn spill_read(data: &[u8]) {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let count = (int::<1>(&mut rest) % 8 + 1) as u32;
    let batch = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        let mut b = Vec::with_capacity(rest.len() + 8);
        b.extend_from_slice(&(rest.len() as u32).to_le_bytes());
        b.extend_from_slice(&crc32fast::hash(rest).to_le_bytes());
        b.extend_from_slice(rest);
        b
    };
    if let Ok(messages) = crate::spill::fuzz_read_batch(&batch, count) {
        assert_eq!(messages.len(), count as usize);
        messages_round_trip(&messages);
    }
}

/// Dedupe log load. Input: the file's hour, now and the window (u64 LE
/// each, window cut to 400 days), a mode byte, then the file: as read from
/// disk (even mode), or 32-byte entries framed into batches of 1..=4 with
/// correct CRCs (odd). Entries kept are within the window; framed ones are
/// all kept that are.
pub fn dedupe_log(data: &[u8]) {
    let mut d = data;
    let hour = int::<8>(&mut d);
    let now = int::<8>(&mut d);
    let window = int::<8>(&mut d) % (400 * 86_400_000);
    let mode = int::<1>(&mut d);
    let (file, expected) = if mode & 1 == 0 {
        (d.to_vec(), None)
    } else {
        let mut file = Vec::new();
        let mut expected = Vec::new();
        let entries: Vec<&[u8]> = d.chunks_exact(32).collect();
        for batch in entries.chunks(usize::try_from(mode >> 1).unwrap_or(0) % 4 + 1) {
            let body: Vec<u8> = batch.concat();
            file.extend_from_slice(&(batch.len() as u32).to_le_bytes());
            file.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
            file.extend_from_slice(&body);
            for e in batch {
                let at = u64::from_le_bytes(e[24..32].try_into().expect("8 bytes"));
                if at.saturating_add(window) >= now {
                    expected.push((
                        u128::from_le_bytes(e[..16].try_into().expect("16 bytes")),
                        u64::from_le_bytes(e[16..24].try_into().expect("8 bytes")),
                        at,
                    ));
                }
            }
        }
        (file, Some(expected))
    };
    let got = dedupe_log::fuzz_load(hour, &file, now, window);
    assert!(got.len() <= file.len() / 32);
    for &(_, _, at) in &got {
        assert!(at.saturating_add(window) >= now);
    }
    let in_window = (hour.saturating_add(1))
        .saturating_mul(3_600_000)
        .saturating_add(window)
        >= now;
    if let Some(expected) = expected
        && in_window
    {
        assert_eq!(got, expected);
    }
}

/// The opt-out CSV import. First byte: the reader's buffer size and the
/// line limit; the rest is the file. Reading in small chunks gives what
/// reading at once gives; the iterator and [`import::read_all`] agree; the
/// good rows exported and imported again are the same rows, with no bad one.
pub fn optout_import(data: &[u8]) {
    let Some((&b, csv)) = data.split_first() else {
        return;
    };
    let opts = ImportOptions {
        max_bad_rows: 64,
        max_line_bytes: [32, 256, 4096][usize::from(b % 3)],
        progress_every: u64::from(b % 5) + 1,
    };
    let mut ticks = 0u64;
    let whole = import::read_all(csv, opts.clone(), |_| ticks += 1).expect("a slice reads");
    assert!(ticks >= 1);
    let cap = usize::from(b >> 3) + 1;
    let chunked = import::read_all(BufReader::with_capacity(cap, csv), opts.clone(), |_| {})
        .expect("a slice reads");
    assert_eq!(chunked.unscoped, whole.unscoped);
    assert_eq!(chunked.scoped, whole.scoped);
    assert_eq!(chunked.header, whole.header);
    assert_eq!(chunked.bad, whole.bad);
    assert_eq!(chunked.progress, whole.progress);
    let rows: Vec<Parsed> = CsvImport::with_options(csv, opts)
        .collect::<io::Result<_>>()
        .expect("a slice reads");
    let good: Vec<(crate::model::Msisdn, String)> = rows
        .iter()
        .filter_map(|p| match p {
            Parsed::Row(r) => Some((r.number, r.scope.clone().unwrap_or_default())),
            Parsed::Bad(_) => None,
        })
        .collect();
    let bad = rows.len() - good.len();
    assert_eq!(good.len() as u64, whole.progress.rows);
    assert_eq!(bad as u64, whole.progress.bad);
    assert_eq!(
        whole.unscoped.len() + whole.scoped.values().map(Vec::len).sum::<usize>(),
        good.len()
    );
    let mut out = Vec::new();
    let n = import::export(&mut out, good.iter().map(|(n, s)| (*n, s.as_str()))).expect("export");
    assert_eq!(n, good.len() as u64);
    let opts = ImportOptions {
        max_line_bytes: usize::MAX,
        ..ImportOptions::default()
    };
    let again: Vec<(crate::model::Msisdn, String)> = CsvImport::with_options(&out[..], opts)
        .map(|p| match p.expect("a slice reads") {
            Parsed::Row(r) => (r.number, r.scope.unwrap_or_default()),
            Parsed::Bad(bad) => panic!("an exported row reads back: {bad}"),
        })
        .collect();
    assert_eq!(again, good, "exported rows import as the same rows");
}

/// What [`landing_page`] serves: a store holding a few media in its cache
/// (the files are deleted at once: every lookup is a cache hit or a miss)
/// and the signer of their links.
struct Landing {
    store: Arc<MediaStore>,
    signer: LinkSigner,
    media: Vec<Media>,
    /// A landing page of both media.
    code: String,
    /// The store's directory, kept while the process runs.
    _dir: tempfile::TempDir,
}

fn landing() -> &'static Landing {
    static ENV: OnceLock<Landing> = OnceLock::new();
    ENV.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = Arc::new(MediaStore::open(StoreConfig::new(dir.path())).expect("a store"));
        let mut gif = b"GIF89a".to_vec();
        gif.extend((0..=255u8).cycle().take(994));
        let inputs: [(&str, Vec<u8>); 2] = [
            ("text/plain", b"hello <b>&\"'</b> from the fuzzer".to_vec()),
            ("image/gif", gif),
        ];
        let media = inputs
            .into_iter()
            .map(|(ct, bytes)| {
                let info = store.put("fuzz", ct, Bytes::from(bytes)).expect("media");
                store.get_cached(info.id).expect("cached")
            })
            .collect::<Vec<Media>>();
        let signer = LinkSigner::new(&[7u8; 32]);
        let page = crate::media::LandingPage {
            from: "Fuzz <b>".into(),
            subject: "<b>".into(),
            text: "hi <b> http://x.example/<b>".into(),
            media: media.iter().map(|m| m.id.to_hex()).collect(),
        };
        let code = signer.landing_code("fuzz", &page);
        store.put_landing(&code, &page).expect("a landing record");
        Landing {
            store,
            signer,
            media,
            code,
            _dir: dir,
        }
    })
}

/// The landing page of an SMS fallback link: path verification and the
/// `Range` / `If-None-Match` / `If-Range` handling of the raw bytes. First
/// byte: bits 0-1 the method, bit 2 a signed path for the second byte's
/// media, bit 3 `/raw` (on a landing page: the item), bit 4 `If-None-Match`
/// with the right ETag, bit 5 `If-Range` with it, bit 6 the landing page
/// of both media (`/p/{code}`); then lines: the path (unless signed), `Range`,
/// `If-None-Match`. Signed links never 404; partial answers are the bytes
/// their `Content-Range` names; HEAD gets no body but with a 404; a verified path is the
/// one spelling the signer makes.
pub fn landing_page(data: &[u8]) {
    let mut d = data;
    let flags = int::<1>(&mut d) as u8;
    let pick = int::<1>(&mut d) as usize;
    let (path_line, rest) = line(d);
    let (range, rest) = line(rest);
    let (inm, _) = line(rest);
    let env = landing();
    let n = pick % env.media.len();
    let media = &env.media[n];
    let etag = format!("\"{}\"", media.id);
    let on_landing = flags & 0x40 != 0;
    let signed = flags & 4 != 0 || on_landing;
    let raw = flags & 8 != 0;
    let link = if on_landing {
        crate::media::link::landing_path(&env.code)
    } else if signed {
        env.signer
            .path((u64::from(flags) << 8) | pick as u64, &media.id.to_hex())
    } else {
        String::from_utf8_lossy(path_line).into_owned()
    };
    if let Some((id, m)) = env.signer.verify(&link) {
        assert_eq!(env.signer.path(id, &m), link, "one spelling per link");
    } else {
        assert!(!signed || on_landing, "a signed path verifies");
    }
    if let Some(id) = env.signer.verify_page(&link) {
        assert_eq!(env.signer.page_path(id), link, "one spelling per page link");
    }
    // The same bytes as a message page's file and as a landing record.
    let ids = crate::media::store::fuzz_page(&String::from_utf8_lossy(path_line));
    assert!(ids <= path_line.len() / 64);
    crate::media::landing::fuzz_record(path_line);
    let path = match (raw, on_landing) {
        (true, true) => format!("{link}/{}", n + 1),
        (true, false) => format!("{link}/raw"),
        (false, _) => link,
    };
    let method =
        [Method::GET, Method::HEAD, Method::POST, Method::GET][usize::from(flags & 3)].clone();
    let mut b = Request::builder().method(method.clone()).uri(path.as_str());
    if !range.is_empty() {
        b = b.header(hyper::header::RANGE, range);
    }
    if flags & 0x10 != 0 {
        b = b.header(hyper::header::IF_NONE_MATCH, etag.as_str());
    } else if !inm.is_empty() {
        b = b.header(hyper::header::IF_NONE_MATCH, inm);
    }
    if flags & 0x20 != 0 {
        b = b.header(hyper::header::IF_RANGE, etag.as_str());
    }
    let Ok(req) = b.body(()) else { return };
    if req.uri().path() != path {
        return;
    }
    let (resp, body) = block_on(async {
        let resp = crate::media::page::serve(req, &env.store, &env.signer).await;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.expect("in memory").to_bytes();
        (Response::from_parts(parts, ()), body)
    });
    check_landing(&resp, &body, &method, signed, raw, media);
}

fn check_landing(
    resp: &Response<()>,
    body: &Bytes,
    method: &Method,
    signed: bool,
    raw: bool,
    media: &Media,
) {
    let header = |name| {
        resp.headers()
            .get(name)
            .and_then(|v: &hyper::header::HeaderValue| v.to_str().ok())
    };
    let status = resp.status();
    if *method == Method::POST {
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        return;
    }
    if *method == Method::HEAD && status != StatusCode::NOT_FOUND {
        // (hyper drops any body of an answer to HEAD on the wire; the
        // handler itself empties every answer but the shared 404.)
        assert!(body.is_empty(), "HEAD has no body");
    }
    let get = *method == Method::GET;
    let total = media.bytes.len();
    match status {
        StatusCode::NOT_FOUND => assert!(!signed, "a signed link is found"),
        StatusCode::OK if raw => {
            assert!(!get || *body == media.bytes);
        }
        StatusCode::OK => {
            let html = String::from_utf8_lossy(body);
            assert!(!html.contains("<b>"), "media text is escaped");
        }
        StatusCode::PARTIAL_CONTENT => {
            assert!(raw);
            let cr = header(hyper::header::CONTENT_RANGE).expect("Content-Range");
            let spec = cr.strip_prefix("bytes ").expect("bytes unit");
            let (range, len) = spec.split_once('/').expect("a length");
            assert_eq!(len.parse::<usize>().ok(), Some(total));
            let (s, e) = range.split_once('-').expect("a range");
            let (s, e): (usize, usize) = (s.parse().expect("start"), e.parse().expect("end"));
            assert!(s <= e && e < total);
            assert!(!get || *body == media.bytes.slice(s..=e));
        }
        StatusCode::RANGE_NOT_SATISFIABLE => {
            assert!(raw);
            assert_eq!(
                header(hyper::header::CONTENT_RANGE),
                Some(format!("bytes */{total}").as_str())
            );
        }
        StatusCode::NOT_MODIFIED => assert!(raw && body.is_empty()),
        other => panic!("unexpected status {other}"),
    }
}

// === policy inputs ===

/// The inbound keyword classifier. First byte: a keyword kind; then a word
/// to configure, NUL, the message. The ASCII fast path and the general
/// path agree; edge punctuation does not change a match; a configured word
/// matches itself.
pub fn keywords(data: &[u8]) {
    let Some((&b, rest)) = data.split_first() else {
        return;
    };
    let (word, text) = match rest.iter().position(|&c| c == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&[][..], rest),
    };
    let word = String::from_utf8_lossy(word);
    let text = String::from_utf8_lossy(text);
    let kind = [
        Keyword::OptOut { all: false },
        Keyword::OptOut { all: true },
        Keyword::OptIn,
        Keyword::Help,
    ][usize::from(b % 4)];
    let mut k = Keywords::new();
    check_keywords(&k, &text);
    match k.add(&word, kind) {
        Ok(()) => {
            assert_eq!(
                k.classify(&word),
                Some(kind),
                "a configured word matches itself"
            );
            check_keywords(&k, &text);
        }
        Err(keywords::KeywordError::Empty(_)) => assert!(keywords::normalize(&word).is_none()),
        Err(_) => assert!(!matches!(kind, Keyword::OptOut { .. })),
    }
}

fn check_keywords(k: &Keywords, text: &str) {
    let m = k.matched(text);
    assert_eq!(m, k.fuzz_matched_slow(text), "fast and general paths agree");
    assert_eq!(
        k.classify(&format!(" ¡{text}!! ")),
        m.map(|m| m.keyword),
        "edge punctuation changes nothing"
    );
    if text.is_ascii() {
        assert_eq!(k.classify(&text.to_ascii_uppercase()), m.map(|m| m.keyword));
    }
}

/// The configuration file: never a panic, errors name the file, and what
/// is accepted builds the scheduler and every program's keywords.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, Path::new("fuzz.toml")) {
        Ok(c) => {
            assert!(c.problems().is_empty());
            let _ = c.journal_dir();
            let _ = crate::schedule::Scheduler::new(&c);
            for t in &c.tenants {
                for p in &t.programs {
                    let mut k = Keywords::new();
                    for (word, kind) in &p.keywords {
                        if let Ok(kind) = kind.parse::<Keyword>() {
                            let _ = k.add(word, kind);
                        }
                    }
                }
            }
        }
        Err(e) => assert!(e.to_string().starts_with("fuzz.toml")),
    }
}

/// The SMPP server's submit path: SMPP PDUs (back to back, as on the wire)
/// through data_sm decoding, address and validity checks, text decoding
/// and the reassembly of parts (`crate::smpp_server::fuzz_submits`).
pub fn smpp_server_submit(data: &[u8]) {
    crate::smpp_server::fuzz_submits(data);
}

// === history ===

/// History segments as read back from disk (lookups, and a head segment
/// left by a crash). First byte even: the rest follows the segment magic;
/// odd: the rest is the whole file (magic or not). Every record read
/// encodes to bytes that decode to the same record, the valid length
/// stays within the file, the records read are those of the valid prefix,
/// and the lookups' filtered scan reads the same ones.
pub fn history_segment(data: &[u8]) {
    use crate::history::record;
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let file = if mode & 1 == 0 {
        [&record::MAGIC[..], rest].concat()
    } else {
        rest.to_vec()
    };
    let (records, valid) = record::decode_segment(&file);
    assert!(valid <= file.len());
    let mut again = record::MAGIC.to_vec();
    for r in &records {
        let mut one = Vec::new();
        record::encode(&mut one, r);
        let (back, n) = record::decode(&one).expect("an encoded record decodes");
        assert_eq!(n, one.len());
        assert_eq!(&back, r, "a record survives the format");
        again.extend_from_slice(&one);
    }
    if valid > 0 {
        let (same, _) = record::decode_segment(&file[..valid]);
        assert_eq!(same, records, "the valid prefix reads the same");
    }
    // The lookups' scan: wanting everything reads what the plain read
    // reads; wanting some kinds skips the rest by length, never panicking.
    let mut all = Vec::new();
    record::for_each_where(&file, |_, _, _| true, |r| all.push(r));
    assert_eq!(all, records, "the lookups' scan reads the same records");
    record::for_each_where(&file, |kind, _, _| kind % 2 == 0, |_| {});
    let _ = record::decode(rest);
    let _ = record::peek(rest);
}

// === tracked links ===

/// What the tracked links read: a code from a URL path, a text to shorten,
/// a record body, and a store's files. First byte 0: the rest is a code
/// (one that decodes encodes back to itself); 1: a text (every planned
/// placeholder sits where the plan says and fills); 2: a record body (one
/// that decodes re-encodes to the same bytes); 3: a campaign snapshot (one
/// that reads back re-encodes to the same figures); anything else: the rest,
/// cut in three by two 2-byte lengths, is a segment's `.links`, `.index`
/// and `.clicks` files, which a store opens and looks codes up in without
/// panicking.
pub fn link_store(data: &[u8]) {
    use crate::links::{Codec, rewrite, store};
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let codec = Codec::new(b"fuzzing secret, thirty-two bytes");
    match mode {
        0 => {
            if let Ok(code) = std::str::from_utf8(rest)
                && let Some(n) = codec.decode(code)
            {
                assert_eq!(codec.encode(n), code.as_bytes(), "a code round-trips");
            }
        }
        1 => {
            let text = String::from_utf8_lossy(rest);
            if let Some(mut plan) = rewrite::plan(&text, "https://a.link") {
                assert!(plan.links.len() <= rewrite::MAX_LINKS);
                for (i, l) in plan.links.iter().enumerate() {
                    assert!(text.contains(&l.url), "a planned URL is the text's");
                    let code = codec.encode(i as u64);
                    assert!(
                        rewrite::fill(&mut plan.text, l.at, &code),
                        "a placeholder fills"
                    );
                }
            }
        }
        2 => {
            if let Some(body) = store::Body::decode(rest) {
                assert_eq!(body.encode(), rest, "a body re-encodes to itself");
            }
        }
        3 => crate::links::campaigns::fuzz_snapshot(rest),
        _ => {
            let mut rest = rest;
            let a = (int::<2>(&mut rest) as usize).min(rest.len());
            let (links, rest) = rest.split_at(a);
            let mut rest = rest;
            let b = (int::<2>(&mut rest) as usize).min(rest.len());
            let (index, clicks) = rest.split_at(b);
            let Ok(dir) = tempfile::tempdir() else { return };
            for (ext, bytes) in [("links", links), ("index", index), ("clicks", clicks)] {
                if std::fs::write(dir.path().join(format!("0000000000.{ext}")), bytes).is_err() {
                    return;
                }
            }
            let secret = b"fuzzing secret, thirty-two bytes";
            let Ok(s) = store::LinkStore::open(dir.path(), secret, Duration::from_secs(3600))
            else {
                return;
            };
            for n in 0..s.issued().min(8) {
                let code = s.codec().encode(n);
                let _ = s.lookup(std::str::from_utf8(&code).unwrap_or(""), 0);
            }
        }
    }
}

// === cluster ===

/// What cluster mode reads back from its outbox file and from Redis. First
/// byte 0: the rest is an opt-out outbox file (a restart's read: whole
/// records only, each re-encoding to itself); 1: an orphan-receipt stream
/// entry (whole receipts only, each re-encoding to itself); anything else:
/// the rest is an opt-out hash value and a stream id.
pub fn cluster_state(data: &[u8]) {
    use crate::cluster::{optouts, receipts};
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode {
        0 => {
            let (n, m) = optouts::fuzz_outbox(rest);
            assert_eq!(n, m);
        }
        1 => {
            let orphans = receipts::decode(rest);
            let mut again = Vec::new();
            for o in &orphans {
                receipts::encode(o, &mut again);
            }
            assert!(again.len() <= rest.len(), "re-encoded orphans grew");
            assert_eq!(
                receipts::decode(&again),
                orphans,
                "orphans survive their format"
            );
        }
        _ => {
            let text = String::from_utf8_lossy(rest);
            if let Some((_, at, node)) = optouts::fuzz_state(&text) {
                assert!(text.contains(&at.to_string()) && text.ends_with(node.as_str()));
            }
            let (outs, ins) = optouts::fuzz_seeded(&text);
            assert!(outs + ins <= text.len(), "more seeded numbers than bytes");
            if let Some(id) = crate::cluster::stream::StreamId::parse(&text) {
                assert_eq!(
                    crate::cluster::stream::StreamId::parse(&id.to_string()),
                    Some(id)
                );
                assert!(
                    id.next() > id || id == crate::cluster::stream::StreamId(u64::MAX, u64::MAX)
                );
            }
        }
    }
}
