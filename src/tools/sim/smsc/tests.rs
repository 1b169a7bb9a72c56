//! Tests of the SMSC simulator: pure helpers first, then a raw SMPP client
//! (the codec over a TCP socket on 127.0.0.1) against a running simulator.

use std::time::{Duration, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

use super::*;
use crate::smpp::pdu::{Bind, Body, CommandStatus, DeliverSm, Pdu, SubmitSm, Tlv, tag};
use crate::smpp::receipt::{ReceiptState, parse_receipt};
use crate::smpp::text::{Concat, Segment, TextOptions};

// === helpers ===

/// Longest any test waits for a PDU.
const PATIENCE: Duration = Duration::from_secs(30);

thread_local! {
    /// Set by tests on a paused clock: there `recv` must not time out, since
    /// tokio auto-advances a paused clock to the next timer whenever no task
    /// is runnable, even while a socket read is about to complete.
    static CLOCK_PAUSED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks this test's clock as paused (see [`CLOCK_PAUSED`]).
fn clock_paused() {
    CLOCK_PAUSED.with(|p| p.set(true));
}

fn cfg() -> SmscConfig {
    SmscConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        receipt_delay: Duration::ZERO,
        ..SmscConfig::default()
    }
}

/// A raw SMPP client: the codec over a socket, nothing else.
struct Client {
    io: Framed<TcpStream, SmppCodec>,
    seq: u32,
}

impl Client {
    async fn connect(smsc: &Smsc) -> Client {
        let stream = TcpStream::connect(smsc.local_addr()).await.unwrap();
        Client {
            io: Framed::new(stream, SmppCodec::default()),
            seq: 0,
        }
    }

    async fn bound(smsc: &Smsc, bind: fn(Bind) -> Body, id: &str, password: &str) -> Client {
        let mut c = Client::connect(smsc).await;
        let resp = c.bind(bind, id, password).await;
        assert_eq!(resp.command_status, CommandStatus::ESME_ROK, "{resp:?}");
        c
    }

    /// Sends a request with the next sequence number; returns that number.
    async fn send(&mut self, body: Body) -> u32 {
        self.seq += 1;
        self.io.send(Pdu::new(self.seq, body)).await.unwrap();
        self.seq
    }

    /// Queues a request without flushing.
    async fn feed(&mut self, body: Body) -> u32 {
        self.seq += 1;
        self.io.feed(Pdu::new(self.seq, body)).await.unwrap();
        self.seq
    }

    async fn answer(&mut self, pdu: Pdu) {
        self.io.send(pdu).await.unwrap();
    }

    /// The next PDU, or `None` when the simulator closed the connection.
    async fn recv_opt(&mut self) -> Option<Pdu> {
        let next = if CLOCK_PAUSED.with(std::cell::Cell::get) {
            Ok(self.io.next().await)
        } else {
            tokio::time::timeout(PATIENCE, self.io.next()).await
        };
        match next {
            Ok(Some(Ok(pdu))) => Some(pdu.expect("the simulator sent a malformed PDU")),
            Ok(Some(Err(e))) if is_reset(&e) => None,
            Ok(Some(Err(e))) => panic!("framing error: {e}"),
            Ok(None) => None,
            Err(_) => panic!("no PDU within {PATIENCE:?}"),
        }
    }

    async fn recv(&mut self) -> Pdu {
        self.recv_opt().await.expect("connection closed")
    }

    async fn bind(&mut self, bind: fn(Bind) -> Body, id: &str, password: &str) -> Pdu {
        let seq = self
            .send(bind(Bind {
                system_id: Bytes::copy_from_slice(id.as_bytes()),
                password: Bytes::copy_from_slice(password.as_bytes()),
                interface_version: 0x34,
                ..Bind::default()
            }))
            .await;
        let resp = self.recv().await;
        assert_eq!(resp.sequence_number, seq);
        resp
    }

    async fn submit(&mut self, sm: SubmitSm) -> Pdu {
        let seq = self.send(Body::SubmitSm(sm)).await;
        let resp = self.recv().await;
        assert_eq!(resp.sequence_number, seq, "{resp:?}");
        resp
    }

    /// Round trip: everything the simulator was sent before has been handled.
    async fn barrier(&mut self) {
        let seq = self.send(Body::EnquireLink).await;
        let resp = self.recv().await;
        assert_eq!(resp.body, Body::EnquireLinkResp, "{resp:?}");
        assert_eq!(resp.sequence_number, seq);
    }

    /// Sends enquire_link and reads until its resp or the end of the
    /// connection, answering deliver_sm on the way.
    async fn barrier_or_closed(&mut self) {
        let seq = self.send(Body::EnquireLink).await;
        while let Some(pdu) = self.recv_opt().await {
            match pdu.body {
                Body::EnquireLinkResp if pdu.sequence_number == seq => return,
                Body::DeliverSm(_) => {
                    self.answer(Pdu::deliver_sm_resp(
                        pdu.sequence_number,
                        CommandStatus::ESME_ROK,
                    ))
                    .await;
                }
                _ => {}
            }
        }
    }

    /// Receives a deliver_sm and answers it.
    async fn take_deliver(&mut self) -> DeliverSm {
        let pdu = self.recv().await;
        let seq = pdu.sequence_number;
        let Body::DeliverSm(sm) = pdu.body else {
            panic!("expected deliver_sm, got {pdu:?}")
        };
        self.answer(Pdu::deliver_sm_resp(seq, CommandStatus::ESME_ROK))
            .await;
        sm
    }
}

fn is_reset(e: &CodecError) -> bool {
    matches!(e, CodecError::Io(io) if io.kind() == std::io::ErrorKind::ConnectionReset)
}

fn sm(src: &str, dst: &str, text: &str) -> SubmitSm {
    SubmitSm {
        source_addr: Bytes::copy_from_slice(src.as_bytes()),
        destination_addr: Bytes::copy_from_slice(dst.as_bytes()),
        short_message: Bytes::copy_from_slice(text.as_bytes()),
        ..SubmitSm::default()
    }
}

/// The submit_sm of one encoded segment, SAR values as TLVs.
fn segment_sm(src: &str, dst: &str, seg: &Segment) -> SubmitSm {
    let mut tlvs = Vec::new();
    if let Some(sar) = seg.sar {
        tlvs.push(Tlv::from_u16(tag::SAR_MSG_REF_NUM, sar.reference));
        tlvs.push(Tlv::from_u8(tag::SAR_TOTAL_SEGMENTS, sar.total));
        tlvs.push(Tlv::from_u8(tag::SAR_SEGMENT_SEQNUM, sar.seq));
    }
    if let Some(payload) = &seg.message_payload {
        tlvs.push(Tlv::new(tag::MESSAGE_PAYLOAD, payload.clone()));
    }
    SubmitSm {
        source_addr: Bytes::copy_from_slice(src.as_bytes()),
        destination_addr: Bytes::copy_from_slice(dst.as_bytes()),
        esm_class: if seg.esm_class_udhi { 0x40 } else { 0 },
        data_coding: seg.data_coding,
        short_message: seg.short_message.clone(),
        tlvs,
        ..SubmitSm::default()
    }
}

fn message_id(resp: &Pdu) -> String {
    assert_eq!(resp.command_status, CommandStatus::ESME_ROK, "{resp:?}");
    let Body::SubmitSmResp(r) = &resp.body else {
        panic!("expected submit_sm_resp, got {resp:?}")
    };
    String::from_utf8(r.message_id.to_vec()).unwrap()
}

fn long_text() -> String {
    (0..40).map(|i| format!("part{i:03} ")).collect()
}

// === config ===

#[derive(Debug, clap::Parser)]
struct Cli {
    #[command(flatten)]
    smsc: SmscConfig,
}

#[test]
fn clap_defaults_match_default() {
    let cli = Cli::try_parse_from(["sim"]).unwrap();
    assert_eq!(cli.smsc, SmscConfig::default());
}

#[test]
fn clap_parses_every_flag() {
    let cli = Cli::try_parse_from([
        "sim",
        "--listen",
        "0.0.0.0:9000",
        "--account",
        "alice:s3:cret",
        "--account",
        "bob:",
        "--receipt-delay",
        "250ms",
        "--outcomes",
        "delivered=3,expired=1",
        "--throttle-fraction",
        "0.25",
        "--throttle-above",
        "50",
        "--disconnect-every",
        "7",
        "--id-format",
        "uuid",
        "--receipt-id-format",
        "hex-upper",
        "--receipt-before-resp",
        "--receipt-tlvs",
        "--part-receipts",
        "last",
        "--gsm7-packed",
    ])
    .unwrap();
    let c = cli.smsc;
    assert_eq!(c.listen, "0.0.0.0:9000".parse().unwrap());
    assert_eq!(
        c.accounts,
        [
            ("alice".to_owned(), "s3:cret".to_owned()),
            ("bob".to_owned(), String::new())
        ]
    );
    assert_eq!(c.receipt_delay, Duration::from_millis(250));
    assert_eq!(c.outcomes.pick(0.7), Outcome::Delivered);
    assert_eq!(c.outcomes.pick(0.8), Outcome::Expired);
    assert_eq!(c.throttle_fraction, 0.25);
    assert_eq!(c.throttle_above, 50);
    assert_eq!(c.disconnect_every, 7);
    assert_eq!(c.id_format, IdFormat::Uuid);
    assert_eq!(c.receipt_id_format, ReceiptIdFormat::HexUpper);
    assert!(c.receipt_before_resp && c.receipt_tlvs && c.gsm7_packed);
    assert_eq!(c.part_receipts, PartReceipts::Last);
    assert!(Cli::try_parse_from(["sim", "--account", "nocolon"]).is_err());
    assert!(Cli::try_parse_from(["sim", "--outcomes", "lost=1"]).is_err());
}

#[test]
fn debug_hides_passwords() {
    let c = SmscConfig {
        accounts: vec![("alice".into(), "hunter2".into())],
        ..SmscConfig::default()
    };
    let shown = format!("{c:?}");
    assert!(shown.contains("alice"), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[test]
fn outcome_mix_parses_and_picks() {
    let mix: OutcomeMix = "delivered=0.9, undeliverable=0.05,expired=0.05"
        .parse()
        .unwrap();
    assert_eq!(mix.pick(0.0), Outcome::Delivered);
    assert_eq!(mix.pick(0.899), Outcome::Delivered);
    assert_eq!(mix.pick(0.92), Outcome::Undeliverable);
    assert_eq!(mix.pick(0.97), Outcome::Expired);
    assert_eq!(mix.pick(0.999_999_999), Outcome::Expired);
    assert_eq!("none".parse::<OutcomeMix>().unwrap().draw(), Outcome::None);
    assert_eq!(
        "REJECTED".parse::<OutcomeMix>().unwrap().draw(),
        Outcome::Rejected
    );
    // Zero weights drop out; weights are normalised.
    let mix: OutcomeMix = "deleted=0,unknown=2".parse().unwrap();
    assert_eq!(mix.pick(0.0), Outcome::Unknown);
    assert_eq!(mix.to_string(), "unknown=1");

    assert_eq!(
        "bogus".parse::<OutcomeMix>(),
        Err(OutcomeMixError::UnknownOutcome("bogus".into()))
    );
    assert_eq!(
        "delivered=x".parse::<OutcomeMix>(),
        Err(OutcomeMixError::BadWeight("x".into()))
    );
    assert!(matches!(
        "delivered=-1".parse::<OutcomeMix>(),
        Err(OutcomeMixError::BadWeight(_))
    ));
    assert!(matches!(
        "delivered=inf".parse::<OutcomeMix>(),
        Err(OutcomeMixError::BadWeight(_))
    ));
    assert_eq!(
        "expired,expired".parse::<OutcomeMix>(),
        Err(OutcomeMixError::Duplicate("expired"))
    );
    assert_eq!("".parse::<OutcomeMix>(), Err(OutcomeMixError::Empty));
    assert_eq!(
        "delivered=0".parse::<OutcomeMix>(),
        Err(OutcomeMixError::Empty)
    );
}

#[test]
fn parse_account_splits_at_the_first_colon() {
    assert_eq!(parse_account("a:b:c"), Ok(("a".into(), "b:c".into())));
    assert!(parse_account(":pw").is_err());
    assert!(parse_account("nopw").is_err());
}

// === ids, dates, snippets ===

#[test]
fn ids_render_per_format() {
    let n = 0xA000_002A;
    let hi = 0x1234_5678_9ABC_4DEF;
    assert_eq!(IdFormat::Hex.render(n, hi), "a000002a");
    assert_eq!(IdFormat::Decimal.render(n, hi), "2684354602");
    let uuid = IdFormat::Uuid.render(n, hi);
    assert_eq!(uuid, "12345678-9abc-4def-8000-0000a000002a");

    let r = |f: ReceiptIdFormat, id: IdFormat| f.render(id, n, hi, &id.render(n, hi));
    assert_eq!(r(ReceiptIdFormat::Same, IdFormat::Hex), "a000002a");
    assert_eq!(r(ReceiptIdFormat::Decimal, IdFormat::Hex), "2684354602");
    assert_eq!(r(ReceiptIdFormat::HexUpper, IdFormat::Hex), "A000002A");
    assert_eq!(r(ReceiptIdFormat::HexUpper, IdFormat::Decimal), "A000002A");
    assert_eq!(
        r(ReceiptIdFormat::ZeroPadded, IdFormat::Hex),
        "00000000a000002a"
    );
    assert_eq!(
        r(ReceiptIdFormat::ZeroPadded, IdFormat::Decimal),
        "00000000002684354602"
    );
    assert_eq!(r(ReceiptIdFormat::ZeroPadded, IdFormat::Uuid), uuid);
    assert_eq!(
        r(ReceiptIdFormat::HexUpper, IdFormat::Uuid),
        uuid.to_uppercase()
    );
    let decimal = r(ReceiptIdFormat::Decimal, IdFormat::Uuid);
    assert_eq!(
        decimal.parse::<u128>().unwrap(),
        u128::from_str_radix(&uuid.replace('-', ""), 16).unwrap()
    );
}

#[test]
fn receipt_dates_are_utc_yymmddhhmm() {
    assert_eq!(receipt_date(UNIX_EPOCH), "7001010000");
    // 2024-02-29 23:59:59 UTC.
    let leap = UNIX_EPOCH + Duration::from_secs(1_709_251_199);
    assert_eq!(receipt_date(leap), "2402292359");
    // 2000-03-01 12:34 UTC.
    let y2k = UNIX_EPOCH + Duration::from_secs(951_914_040);
    assert_eq!(receipt_date(y2k), "0003011234");
}

#[test]
fn snippet_is_gsm_and_ascii_safe() {
    assert_eq!(
        receipt_snippet("Hello, world: 100%!"),
        "Hello, world: 100%!"
    );
    assert_eq!(receipt_snippet("€5 @home_{x} $"), "?5 ?home??x? ?");
    assert_eq!(
        receipt_snippet("ab😀cdefghijklmnopqrstuvwxyz"),
        "ab?cdefghijklmnopqrs"
    );
}

// === binds ===

#[tokio::test]
async fn bind_checks_credentials() {
    let smsc = start(SmscConfig {
        accounts: vec![("alice".into(), "secret".into())],
        ..cfg()
    })
    .await
    .unwrap();

    let mut c = Client::connect(&smsc).await;
    let resp = c.bind(Body::BindTransceiver, "alice", "secret").await;
    assert_eq!(resp.command_status, CommandStatus::ESME_ROK);
    let Body::BindTransceiverResp(r) = &resp.body else {
        panic!("{resp:?}")
    };
    assert_eq!(&r.system_id[..], b"sluicesim");
    // A second bind on the same connection.
    let again = c.bind(Body::BindTransmitter, "alice", "secret").await;
    assert_eq!(again.command_status, CommandStatus::ESME_RALYBND);
    assert!(matches!(again.body, Body::BindTransmitterResp(_)));

    let mut c = Client::connect(&smsc).await;
    let resp = c.bind(Body::BindTransmitter, "bob", "secret").await;
    assert_eq!(resp.command_status, CommandStatus::ESME_RINVSYSID);
    let resp = c.bind(Body::BindReceiver, "alice", "wrong").await;
    assert_eq!(resp.command_status, CommandStatus::ESME_RINVPASWD);
    assert!(matches!(resp.body, Body::BindReceiverResp(_)));
    // Still unbound: a submit is refused.
    let resp = c.submit(sm("1", "2", "hi")).await;
    assert_eq!(resp.body, Body::GenericNack);
    assert_eq!(resp.command_status, CommandStatus::ESME_RINVBNDSTS);
    // ... and the right password works on the same connection.
    let resp = c.bind(Body::BindReceiver, "alice", "secret").await;
    assert_eq!(resp.command_status, CommandStatus::ESME_ROK);

    let s = smsc.stats();
    assert_eq!((s.binds, s.bind_failures), (2, 3));
    assert_eq!(s.generic_nacks, 1);
    assert_eq!(s.submits, 0);
}

#[tokio::test]
async fn any_account_binds_when_none_configured() {
    let smsc = start(cfg()).await.unwrap();
    Client::bound(&smsc, Body::BindTransmitter, "whoever", "").await;
    assert_eq!(smsc.stats().binds, 1);
}

#[tokio::test]
async fn receiver_cannot_submit_and_unbind_closes() {
    let smsc = start(cfg()).await.unwrap();
    let mut c = Client::bound(&smsc, Body::BindReceiver, "acme", "pw").await;
    let resp = c.submit(sm("1", "2", "hi")).await;
    assert_eq!(resp.command_status, CommandStatus::ESME_RINVBNDSTS);
    assert!(matches!(resp.body, Body::SubmitSmResp(_)));
    let seq = c.send(Body::Unbind).await;
    let resp = c.recv().await;
    assert_eq!((resp.body, resp.sequence_number), (Body::UnbindResp, seq));
    assert!(c.recv_opt().await.is_none(), "closed after unbind_resp");
    assert_eq!(smsc.stats().submits, 0);
}

// === submits ===

#[tokio::test]
async fn submit_ids_follow_id_format() {
    for format in [IdFormat::Hex, IdFormat::Decimal, IdFormat::Uuid] {
        let smsc = start(SmscConfig {
            id_format: format,
            outcomes: OutcomeMix::only(Outcome::None),
            ..cfg()
        })
        .await
        .unwrap();
        let mut c = Client::bound(&smsc, Body::BindTransmitter, "acme", "pw").await;
        let a = message_id(&c.submit(sm("1", "2", "one")).await);
        let b = message_id(&c.submit(sm("1", "2", "two")).await);
        assert_ne!(a, b);
        match format {
            IdFormat::Hex => {
                let (a, b) = (
                    u64::from_str_radix(&a, 16).unwrap(),
                    u64::from_str_radix(&b, 16).unwrap(),
                );
                assert_eq!(b, a + 1);
                assert!(a >= FIRST_MESSAGE_ID);
            }
            IdFormat::Decimal => {
                assert_eq!(b.parse::<u64>().unwrap(), a.parse::<u64>().unwrap() + 1);
            }
            IdFormat::Uuid => {
                for id in [&a, &b] {
                    assert_eq!(id.len(), 36, "{id}");
                    let dashes: Vec<usize> = id.match_indices('-').map(|(i, _)| i).collect();
                    assert_eq!(dashes, [8, 13, 18, 23], "{id}");
                    assert_eq!(&id[14..15], "4", "version nibble in {id}");
                }
                assert_eq!(a[..24], b[..24], "same first half");
            }
        }
        let s = smsc.stats();
        assert_eq!((s.submits, s.accepted_parts, s.messages), (2, 2, 2));
    }
}

#[tokio::test]
async fn multipart_udh_and_sar_are_reassembled_once() {
    let smsc = start(SmscConfig {
        outcomes: OutcomeMix::only(Outcome::None),
        ..cfg()
    })
    .await
    .unwrap();
    let mut c = Client::bound(&smsc, Body::BindTransmitter, "acme", "pw").await;
    let text = long_text();
    let mut parts = 0;
    for (concat, dst) in [(Concat::Udh8, "100"), (Concat::Sar, "200")] {
        let opts = TextOptions {
            concat,
            ..TextOptions::default()
        };
        let segments = text::encode(&text, &opts, 7).unwrap();
        assert!(segments.len() >= 3);
        // Out of order, and the second part twice.
        let mut order: Vec<usize> = (0..segments.len()).rev().collect();
        order.insert(1, 1);
        for i in order {
            let resp = c.submit(segment_sm("555", dst, &segments[i])).await;
            message_id(&resp);
            parts += 1;
        }
    }
    // A payload-TLV message and a UCS-2 one.
    let payload = TextOptions {
        concat: Concat::Payload,
        ..TextOptions::default()
    };
    for seg in text::encode(&text, &payload, 0).unwrap() {
        message_id(&c.submit(segment_sm("555", "300", &seg)).await);
        parts += 1;
    }
    let unicode = "Привет, мир! ".repeat(10);
    for seg in text::encode(&unicode, &TextOptions::default(), 9).unwrap() {
        message_id(&c.submit(segment_sm("555", "400", &seg)).await);
        parts += 1;
    }

    let s = smsc.stats();
    assert_eq!(s.accepted_parts, parts);
    assert_eq!(s.messages, 4);
    assert_eq!(s.duplicates, 0);
    assert_eq!(
        smsc.texts(),
        [
            ("555".into(), "100".into(), text.clone(), 1),
            ("555".into(), "200".into(), text.clone(), 1),
            ("555".into(), "300".into(), text, 1),
            ("555".into(), "400".into(), unicode, 1),
        ]
    );
}

#[tokio::test]
async fn same_text_twice_is_a_duplicate() {
    let smsc = start(cfg()).await.unwrap();
    let mut c = Client::bound(&smsc, Body::BindTransmitter, "acme", "pw").await;
    message_id(&c.submit(sm("555", "777", "hello")).await);
    message_id(&c.submit(sm("555", "777", "hello")).await);
    message_id(&c.submit(sm("555", "778", "hello")).await);
    let s = smsc.stats();
    assert_eq!((s.messages, s.duplicates), (3, 1));
    assert_eq!(
        smsc.texts(),
        [
            ("555".into(), "777".into(), "hello".into(), 2),
            ("555".into(), "778".into(), "hello".into(), 1),
        ]
    );
}

#[tokio::test]
async fn undecodable_text_is_rejected() {
    let smsc = start(cfg()).await.unwrap();
    let mut c = Client::bound(&smsc, Body::BindTransmitter, "acme", "pw").await;
    let mut bad = sm("1", "2", "hi");
    bad.data_coding = 0x04;
    let resp = c.submit(bad).await;
    assert_eq!(resp.command_status, CommandStatus::ESME_RINVDCS);
    let mut odd = sm("1", "2", "abc");
    odd.data_coding = 0x08;
    let resp = c.submit(odd).await;
    assert_eq!(resp.command_status, CommandStatus::ESME_RSUBMITFAIL);
    let s = smsc.stats();
    assert_eq!((s.submits, s.rejected, s.accepted_parts), (2, 2, 0));
    assert!(smsc.texts().is_empty());
}

// === throttling ===

#[tokio::test]
async fn throttle_fraction_one_throttles_everything() {
    let smsc = start(SmscConfig {
        throttle_fraction: 1.0,
        ..cfg()
    })
    .await
    .unwrap();
    let mut c = Client::bound(&smsc, Body::BindTransceiver, "acme", "pw").await;
    let resp = c.submit(sm("1", "2", "hi")).await;
    assert_eq!(resp.command_status, CommandStatus::ESME_RTHROTTLED);
    assert_eq!(resp.encoded_len(), 16, "no body");
    c.barrier().await; // and no receipt came before the enquire_link_resp
    let s = smsc.stats();
    assert_eq!((s.submits, s.throttled, s.accepted_parts), (1, 1, 0));
    assert_eq!((s.messages, s.receipts_sent), (0, 0));
    assert!(smsc.texts().is_empty());
}

#[tokio::test(start_paused = true)]
async fn throttle_above_is_a_per_second_limit_per_bind() {
    clock_paused();
    let smsc = start(SmscConfig {
        throttle_above: 2,
        outcomes: OutcomeMix::only(Outcome::None),
        ..cfg()
    })
    .await
    .unwrap();
    let mut a = Client::bound(&smsc, Body::BindTransmitter, "acme", "pw").await;
    let mut b = Client::bound(&smsc, Body::BindTransmitter, "acme", "pw").await;
    let statuses = |rs: &[Pdu]| rs.iter().map(|r| r.command_status).collect::<Vec<_>>();
    let mut got = Vec::new();
    for i in 0..3 {
        got.push(a.submit(sm("1", "2", &format!("a{i}"))).await);
    }
    let ok = CommandStatus::ESME_ROK;
    let throttled = CommandStatus::ESME_RTHROTTLED;
    assert_eq!(statuses(&got), [ok, ok, throttled]);
    // Another bind has its own budget.
    assert_eq!(b.submit(sm("1", "2", "b0")).await.command_status, ok);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(a.submit(sm("1", "2", "a3")).await.command_status, ok);
    let s = smsc.stats();
    assert_eq!((s.submits, s.throttled, s.accepted_parts), (5, 1, 4));
}

// === receipts ===

#[tokio::test(start_paused = true)]
async fn receipt_arrives_after_the_delay() {
    clock_paused();
    let delay = Duration::from_secs(10);
    let smsc = start(SmscConfig {
        receipt_delay: delay,
        outcomes: "undeliverable".parse().unwrap(),
        receipt_id_format: ReceiptIdFormat::Decimal,
        receipt_tlvs: true,
        ..cfg()
    })
    .await
    .unwrap();
    let mut c = Client::bound(&smsc, Body::BindTransceiver, "acme", "pw").await;
    let t0 = Instant::now();
    let mut submit = sm(
        "12345",
        "15551234567",
        "Your code is 1234, valid for 5 minutes",
    );
    submit.source_addr_ton = 3;
    submit.dest_addr_ton = 1;
    submit.dest_addr_npi = 1;
    let id = message_id(&c.submit(submit).await);
    assert_eq!(smsc.stats().receipts_sent, 0);

    let receipt = c.take_deliver().await;
    assert!(t0.elapsed() >= delay, "arrived after {:?}", t0.elapsed());
    assert_eq!(receipt.esm_class, 0x04);
    assert_eq!(receipt.registered_delivery, 0);
    assert_eq!(receipt.data_coding, 0);
    assert_eq!(&receipt.source_addr[..], b"15551234567");
    assert_eq!((receipt.source_addr_ton, receipt.source_addr_npi), (1, 1));
    assert_eq!(&receipt.destination_addr[..], b"12345");
    assert_eq!(receipt.dest_addr_ton, 3);
    let parsed = parse_receipt(&receipt).unwrap();
    let decimal = u64::from_str_radix(&id, 16).unwrap().to_string();
    assert_eq!(&parsed.message_id[..], decimal.as_bytes());
    assert_eq!(parsed.state, ReceiptState::Undeliverable);
    assert_eq!(parsed.error_code, Some(1));
    assert_eq!((parsed.submitted, parsed.delivered), (Some(1), Some(0)));
    assert_eq!(parsed.submit_date.as_ref().map(Bytes::len), Some(10));
    assert_eq!(parsed.done_date.as_ref().map(Bytes::len), Some(10));
    assert_eq!(parsed.text.as_deref(), Some(&b"Your code is 1234, v"[..]));
    assert_eq!(
        receipt.tlv(tag::MESSAGE_STATE).and_then(Tlv::as_u8),
        Some(5)
    );
    let tlv_id = receipt.tlv(tag::RECEIPTED_MESSAGE_ID).unwrap();
    assert_eq!(tlv_id.value.last(), Some(&0), "c-string");
    assert_eq!(&tlv_id.as_c_string()[..], decimal.as_bytes());
    let text = String::from_utf8(receipt.short_message.to_vec()).unwrap();
    assert!(
        text.starts_with(&format!("id:{decimal} sub:001 dlvrd:000 ")),
        "{text}"
    );
    assert!(text.contains(" stat:UNDELIV err:001 "), "{text}");

    c.barrier().await;
    let s = smsc.stats();
    assert_eq!((s.receipts_sent, s.receipts_acked), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn receipts_keep_submit_order() {
    clock_paused();
    let smsc = start(SmscConfig {
        receipt_delay: Duration::from_secs(5),
        outcomes: "delivered=1,expired=1".parse().unwrap(),
        ..cfg()
    })
    .await
    .unwrap();
    let mut c = Client::bound(&smsc, Body::BindTransceiver, "acme", "pw").await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(message_id(&c.submit(sm("1", "2", &format!("m{i}"))).await));
        tokio::time::advance(Duration::from_millis(100)).await;
    }
    let mut got = Vec::new();
    for _ in 0..20 {
        let r = parse_receipt(&c.take_deliver().await).unwrap();
        assert!(matches!(
            r.state,
            ReceiptState::Delivered | ReceiptState::Expired
        ));
        got.push(String::from_utf8(r.message_id.to_vec()).unwrap());
    }
    assert_eq!(got, ids);
    c.barrier().await;
    let s = smsc.stats();
    assert_eq!((s.receipts_sent, s.receipts_acked), (20, 20));
}

#[tokio::test]
async fn registered_delivery_is_honoured() {
    for (outcome, registered_delivery, wanted) in [
        (Outcome::Delivered, 0, false),
        (Outcome::Delivered, 1, true),
        (Outcome::Delivered, 2, false),
        (Outcome::Expired, 2, true),
        (Outcome::Expired, 0, false),
        (Outcome::Delivered, 3, true),
        (Outcome::Expired, 3, false),
    ] {
        let smsc = start(SmscConfig {
            outcomes: OutcomeMix::only(outcome),
            ..cfg()
        })
        .await
        .unwrap();
        let mut c = Client::bound(&smsc, Body::BindTransceiver, "acme", "pw").await;
        let mut submit = sm("1", "2", "hi");
        submit.registered_delivery = registered_delivery;
        message_id(&c.submit(submit).await);
        // With no delay the receipt is written right after the resp.
        if wanted {
            let r = parse_receipt(&c.take_deliver().await).unwrap();
            assert_eq!(r.state.stat_word(), outcome.stat().as_bytes());
        }
        c.barrier().await;
        let sent = smsc.stats().receipts_sent;
        assert_eq!(sent, u64::from(wanted), "{outcome:?} {registered_delivery}");
    }
}

#[tokio::test]
async fn receipt_before_resp_comes_first() {
    let smsc = start(SmscConfig {
        receipt_before_resp: true,
        receipt_delay: Duration::from_secs(3600),
        receipt_id_format: ReceiptIdFormat::HexUpper,
        ..cfg()
    })
    .await
    .unwrap();
    let mut c = Client::bound(&smsc, Body::BindTransceiver, "acme", "pw").await;
    let seq = c.send(Body::SubmitSm(sm("1", "2", "race"))).await;
    let first = c.recv().await;
    let Body::DeliverSm(receipt) = &first.body else {
        panic!("expected the receipt first, got {first:?}")
    };
    let second = c.recv().await;
    assert_eq!(second.sequence_number, seq);
    let id = message_id(&second);
    let parsed = parse_receipt(receipt).unwrap();
    assert_eq!(&parsed.message_id[..], id.to_uppercase().as_bytes());
    assert_eq!(parsed.state, ReceiptState::Delivered);
}

#[tokio::test]
async fn part_receipts_last_sends_one_per_message() {
    let smsc = start(SmscConfig {
        part_receipts: PartReceipts::Last,
        ..cfg()
    })
    .await
    .unwrap();
    let mut c = Client::bound(&smsc, Body::BindTransceiver, "acme", "pw").await;
    let segments = text::encode(&long_text(), &TextOptions::default(), 3).unwrap();
    let mut last_id = String::new();
    for seg in &segments {
        last_id = message_id(&c.submit(segment_sm("1", "2", seg)).await);
    }
    let receipt = parse_receipt(&c.take_deliver().await).unwrap();
    assert_eq!(&receipt.message_id[..], last_id.as_bytes());
    c.barrier().await;
    let s = smsc.stats();
    assert_eq!(
        (s.accepted_parts, s.receipts_sent, s.messages),
        (segments.len() as u64, 1, 1)
    );
}

#[tokio::test]
async fn receipts_wait_for_a_receiver_and_round_robin() {
    let smsc = start(cfg()).await.unwrap();
    let mut tx = Client::bound(&smsc, Body::BindTransmitter, "acme", "pw").await;
    // Another account's receiver gets none of acme's receipts.
    let mut other = Client::bound(&smsc, Body::BindReceiver, "other", "pw").await;
    let first = message_id(&tx.submit(sm("1", "2", "early")).await);

    let mut rx1 = Client::bound(&smsc, Body::BindReceiver, "acme", "pw").await;
    let r = parse_receipt(&rx1.take_deliver().await).unwrap();
    assert_eq!(&r.message_id[..], first.as_bytes());
    let mut rx2 = Client::bound(&smsc, Body::BindTransceiver, "acme", "pw").await;

    let a = message_id(&tx.submit(sm("1", "2", "a")).await);
    let b = message_id(&tx.submit(sm("1", "2", "b")).await);
    let got1 = parse_receipt(&rx1.take_deliver().await).unwrap().message_id;
    let got2 = parse_receipt(&rx2.take_deliver().await).unwrap().message_id;
    let mut got = [
        String::from_utf8(got1.to_vec()).unwrap(),
        String::from_utf8(got2.to_vec()).unwrap(),
    ];
    got.sort();
    let mut want = [a, b];
    want.sort();
    assert_eq!(got, want);
    rx1.barrier().await;
    rx2.barrier().await;
    other.barrier().await;
    let s = smsc.stats();
    assert_eq!((s.receipts_sent, s.receipts_acked), (3, 3));
}

#[tokio::test]
async fn unanswered_receipts_are_requeued_on_disconnect() {
    let smsc = start(cfg()).await.unwrap();
    let mut tx = Client::bound(&smsc, Body::BindTransmitter, "acme", "pw").await;
    let mut rx1 = Client::bound(&smsc, Body::BindReceiver, "acme", "pw").await;
    let id = message_id(&tx.submit(sm("1", "2", "requeue me")).await);
    let pdu = rx1.recv().await;
    let Body::DeliverSm(first) = pdu.body else {
        panic!("{pdu:?}")
    };
    assert_eq!(
        &parse_receipt(&first).unwrap().message_id[..],
        id.as_bytes()
    );
    drop(rx1); // without deliver_sm_resp

    let mut rx2 = Client::bound(&smsc, Body::BindReceiver, "acme", "pw").await;
    let again = rx2.take_deliver().await;
    assert_eq!(again.short_message, first.short_message);
    rx2.barrier().await;
    let s = smsc.stats();
    assert_eq!((s.receipts_sent, s.receipts_acked), (2, 1));
}

// === disconnects ===

#[tokio::test]
async fn disconnect_every_cuts_after_the_nth_pdu() {
    let smsc = start(SmscConfig {
        disconnect_every: 3,
        outcomes: OutcomeMix::only(Outcome::None),
        ..cfg()
    })
    .await
    .unwrap();
    let mut c = Client::connect(&smsc).await;
    c.feed(Body::BindTransmitter(Bind {
        system_id: Bytes::from_static(b"acme"),
        ..Bind::default()
    }))
    .await;
    c.feed(Body::SubmitSm(sm("1", "2", "A"))).await;
    c.feed(Body::SubmitSm(sm("1", "2", "B"))).await;
    c.send(Body::SubmitSm(sm("1", "2", "C"))).await;
    assert!(matches!(c.recv().await.body, Body::BindTransmitterResp(_)));
    message_id(&c.recv().await);
    message_id(&c.recv().await);
    assert!(c.recv_opt().await.is_none(), "closed after the 3rd PDU");
    let s = smsc.stats();
    assert_eq!((s.disconnects, s.submits, s.accepted_parts), (1, 2, 2));

    // The client resends what went unanswered: exactly once overall.
    let mut c = Client::bound(&smsc, Body::BindTransmitter, "acme", "pw").await;
    message_id(&c.submit(sm("1", "2", "C")).await);
    c.barrier().await;
    assert!(c.recv_opt().await.is_none());
    let texts: Vec<(String, u32)> = smsc.texts().into_iter().map(|t| (t.2, t.3)).collect();
    assert_eq!(texts, [("A".into(), 1), ("B".into(), 1), ("C".into(), 1)]);
    assert_eq!(smsc.stats().disconnects, 2);
}

// === malformed input ===

#[tokio::test]
async fn garbage_body_gets_generic_nack_and_bad_length_closes() {
    let smsc = start(cfg()).await.unwrap();
    let mut c = Client::bound(&smsc, Body::BindTransmitter, "acme", "pw").await;
    let mut raw = BytesMut::new();
    raw.put_u32(16 + 3);
    raw.put_u32(0x0000_0004); // submit_sm
    raw.put_u32(0);
    raw.put_u32(77);
    raw.put_slice(b"ABC"); // service_type without its NUL
    c.io.get_mut().write_all(&raw).await.unwrap();
    let nack = c.recv().await;
    assert_eq!(nack.body, Body::GenericNack);
    assert_eq!(nack.sequence_number, 77);
    assert_eq!(nack.command_status, CommandStatus::ESME_RINVCMDLEN);
    c.barrier().await; // the connection carries on

    // Unknown commands.
    let seq = c
        .send(Body::Other {
            command_id: 0x0000_0103, // data_sm
            body: Bytes::from_static(b"\0"),
        })
        .await;
    let nack = c.recv().await;
    assert_eq!(
        (nack.body, nack.sequence_number, nack.command_status),
        (Body::GenericNack, seq, CommandStatus::ESME_RINVCMDID)
    );
    // Unsolicited responses are ignored.
    c.answer(Pdu::deliver_sm_resp(999, CommandStatus::ESME_ROK))
        .await;
    c.barrier().await;
    assert_eq!(smsc.stats().generic_nacks, 2);

    // A command_length below 16 cannot be resynchronised: closed.
    c.io.get_mut()
        .write_all(&[0, 0, 0, 5, 0, 0, 0, 0x15])
        .await
        .unwrap();
    assert!(c.recv_opt().await.is_none());
    // The simulator is still up.
    Client::bound(&smsc, Body::BindTransmitter, "acme", "pw").await;
}

#[tokio::test]
async fn random_bytes_never_break_the_simulator() {
    let smsc = start(cfg()).await.unwrap();
    let mut seed = 0x2545_F491_4F6C_DD1D_u64;
    for _ in 0..50 {
        let mut c = Client::bound(&smsc, Body::BindTransceiver, "acme", "pw").await;
        let mut raw = BytesMut::new();
        for _ in 0..4 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let body_len = (seed % 40) as usize;
            let command_id = [4u32, 9, 5, 0x8000_0005, 0x15, 0x21][(seed >> 8) as usize % 6];
            raw.put_u32(16 + body_len as u32);
            raw.put_u32(command_id);
            raw.put_u32(0);
            raw.put_u32(1000);
            for i in 0..body_len {
                raw.put_u8((seed >> (i % 56)) as u8);
            }
        }
        c.io.get_mut().write_all(&raw).await.unwrap();
        c.barrier_or_closed().await;
    }
    Client::bound(&smsc, Body::BindTransmitter, "acme", "pw").await;
}

// === MO and shutdown ===

#[tokio::test]
async fn inject_mo_reaches_a_transceiver() {
    let smsc = start(cfg()).await.unwrap();
    // Queued before anyone is bound.
    smsc.inject_mo("15551234567", "12345", "STOP").unwrap();
    let mut tx = Client::bound(&smsc, Body::BindTransmitter, "acme", "pw").await;
    tx.barrier().await;
    assert_eq!(smsc.stats().mo_sent, 0, "a transmitter gets no MO");

    let mut c = Client::bound(&smsc, Body::BindTransceiver, "acme", "pw").await;
    let mo = c.take_deliver().await;
    assert_eq!(mo.esm_class, 0);
    assert_eq!(mo.registered_delivery, 0);
    assert_eq!(&mo.source_addr[..], b"15551234567");
    assert_eq!(&mo.destination_addr[..], b"12345");
    assert_eq!(
        text::decode(mo.data_coding, &mo.short_message, false).unwrap(),
        "STOP"
    );

    // A long one arrives in parts that reassemble.
    let long = long_text();
    smsc.inject_mo("15551234567", "12345", &long).unwrap();
    let mut reassembler = Reassembler::new(4);
    let mut whole = None;
    while whole.is_none() {
        let part = c.take_deliver().await;
        assert_eq!(part.esm_class, 0x40);
        whole = reassembler.push((), &incoming(&part, false)).unwrap();
    }
    assert_eq!(whole.unwrap(), long);
    c.barrier().await;
    let s = smsc.stats();
    assert_eq!(s.mo_sent, 4, "{s:?}");
    assert_eq!(s.receipts_sent, 0);
    assert!(smsc.inject_mo("1", "2", &"x".repeat(5000)).is_err());
}

#[tokio::test]
async fn shutdown_unbinds_and_closes() {
    let smsc = start(cfg()).await.unwrap();
    let mut c = Client::bound(&smsc, Body::BindTransceiver, "acme", "pw").await;
    let running = tokio::spawn(smsc.clone().run_until_shutdown());
    smsc.shutdown();
    let pdu = c.recv().await;
    assert_eq!(pdu.body, Body::Unbind);
    c.answer(Pdu::unbind_resp(pdu.sequence_number)).await;
    assert!(c.recv_opt().await.is_none());
    drop(c);
    tokio::time::timeout(PATIENCE, running)
        .await
        .unwrap()
        .unwrap();
    assert!(
        TcpStream::connect(smsc.local_addr()).await.is_err(),
        "the listener is closed"
    );
}

// === throughput ===

/// Prints submits per second through one pipelined transceiver, receipts
/// included (`cargo test --lib sim:: -- --ignored --nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn throughput() {
    let smsc = start(cfg()).await.unwrap();
    let mut c = Client::bound(&smsc, Body::BindTransceiver, "acme", "pw").await;
    let (batches, window) = (50_u32, 1000_u32);
    let started = Instant::now();
    let mut receipts = 0;
    for b in 0..batches {
        for i in 0..window {
            c.feed(Body::SubmitSm(sm("1", "2", &format!("m{b}-{i}"))))
                .await;
        }
        SinkExt::<Pdu>::flush(&mut c.io).await.unwrap();
        let mut resps = 0;
        while resps < window {
            let pdu = c.recv().await;
            match pdu.body {
                Body::SubmitSmResp(_) => resps += 1,
                Body::DeliverSm(_) => {
                    receipts += 1;
                    c.io.feed(Pdu::deliver_sm_resp(
                        pdu.sequence_number,
                        CommandStatus::ESME_ROK,
                    ))
                    .await
                    .unwrap();
                }
                _ => panic!("{pdu:?}"),
            }
        }
    }
    let elapsed = started.elapsed();
    let n = batches * window;
    println!(
        "{n} submits, {receipts} receipts in {elapsed:?}: {:.0} submits/s",
        f64::from(n) / elapsed.as_secs_f64()
    );
    assert_eq!(smsc.stats().accepted_parts, u64::from(n));
}
