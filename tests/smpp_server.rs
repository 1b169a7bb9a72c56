//! The SMPP server door end to end, with an ESME written against the
//! protocol (sluice's PDU codec on a plain socket): a transceiver binds,
//! submits short, long (three UDH parts), Unicode and `data_sm` texts, is
//! answered once each is durable (every part with its message's id), and
//! receives each receipt it asked for with that id (one asking on success
//! only gets none for a failed message), and an inbound message;
//! a receipt not answered before a restart is sent again after it; bad
//! binds, submits in the wrong state, malformed and unknown PDUs get their
//! status and the session carries on, and the submits read before a
//! broken length are answered before the connection closes; a receipt the
//! ESME keeps failing is dead-lettered and replayed through the admin API;
//! back-pressure is `ESME_RTHROTTLED`.
//! (`tests/interop.rs` drives the same door with node-smpp.)

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::*;
use futures_util::{SinkExt, StreamExt};
use sluice::config::Secret;
use sluice::smpp::codec::SmppCodec;
use sluice::smpp::pdu::{Bind, Body, CommandStatus, DeliverSm, Pdu, SubmitSm, tag};
use sluice::smpp::text::{self, TextOptions};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

const WAIT: Duration = Duration::from_secs(20);
const SYSTEM_ID: &str = "demo";
const PASSWORD: &str = "pw-demo";

fn gateway_config(dir: &std::path::Path, smsc: &sluice::sim::smsc::Smsc) -> sluice::config::Config {
    let mut cfg = config(dir, smsc);
    cfg.smpp_server.listen = Some("127.0.0.1:0".parse().unwrap());
    cfg.tenants[0].smpp_system_id = Some(SYSTEM_ID.into());
    cfg.tenants[0].smpp_password = Some(Secret::new(PASSWORD));
    cfg.http.admin_token = Some(Secret::new(ADMIN));
    cfg.tenants[0].admin_token = Some(Secret::new(TENANT_ADMIN));
    cfg
}

/// The tenant's SMPP events: ready + in flight.
fn smpp_events_held(gw: &sluice::gateway::Running) -> usize {
    use sluice::ingest::Backend;
    let ep = gw
        .gateway
        .events()
        .endpoint(TENANT, sluice::smpp_server::ENDPOINT)
        .expect("the tenant has an SMPP destination");
    let c = ep.counts();
    c.ready + c.in_flight
}

/// A minimal ESME: sends requests, collects what comes back.
struct Esme {
    io: Framed<TcpStream, SmppCodec>,
    seq: u32,
    /// Requests from sluice not yet looked at (deliver_sm, enquire_link).
    inbox: Vec<Pdu>,
}

impl Esme {
    async fn connect(addr: SocketAddr) -> Esme {
        let tcp = TcpStream::connect(addr).await.unwrap();
        Esme {
            io: Framed::new(tcp, SmppCodec::default()),
            seq: 0,
            inbox: Vec::new(),
        }
    }

    async fn send(&mut self, body: Body) -> u32 {
        self.seq += 1;
        self.io.send(&Pdu::new(self.seq, body)).await.unwrap();
        self.seq
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.io.get_mut().write_all(bytes).await.unwrap();
    }

    /// The next PDU; `None` when the connection closed.
    async fn next(&mut self) -> Option<Pdu> {
        match tokio::time::timeout(WAIT, self.io.next()).await {
            Ok(Some(Ok(Ok(p)))) => Some(p),
            Ok(Some(Ok(Err(e)))) => panic!("sluice sent a malformed PDU: {e}"),
            Ok(Some(Err(_))) | Ok(None) => None,
            Err(_) => panic!("nothing from sluice within {WAIT:?}"),
        }
    }

    /// The response to `seq`, keeping requests from sluice in the inbox.
    async fn resp(&mut self, seq: u32) -> Pdu {
        loop {
            let p = self.next().await.expect("the connection stays open");
            if p.is_response() && p.sequence_number == seq {
                return p;
            }
            if matches!(p.body, Body::EnquireLink) {
                self.io
                    .send(&Pdu::enquire_link_resp(p.sequence_number))
                    .await
                    .unwrap();
                continue;
            }
            self.inbox.push(p);
        }
    }

    async fn bind(&mut self, system_id: &str, password: &str) -> Pdu {
        let seq = self
            .send(Body::BindTransceiver(Bind {
                system_id: Bytes::from(system_id.to_owned()),
                password: Bytes::from(password.to_owned()),
                interface_version: 0x34,
                ..Bind::default()
            }))
            .await;
        self.resp(seq).await
    }

    /// The next `deliver_sm` (from the inbox first), unanswered.
    async fn deliver_sm(&mut self) -> (u32, DeliverSm) {
        loop {
            let p = match self.inbox.is_empty() {
                false => self.inbox.remove(0),
                true => self.next().await.expect("the connection stays open"),
            };
            match p.body {
                Body::DeliverSm(sm) => return (p.sequence_number, sm),
                Body::EnquireLink => {
                    self.io
                        .send(&Pdu::enquire_link_resp(p.sequence_number))
                        .await
                        .unwrap();
                }
                other => panic!("expected a deliver_sm, got {other:?}"),
            }
        }
    }

    /// Sends a submit_sm (see [`submit`]); its sequence number.
    async fn send_submit(
        &mut self,
        to: &str,
        text_bytes: Bytes,
        data_coding: u8,
        receipt: u8,
    ) -> u32 {
        self.send(Body::SubmitSm(submit(to, text_bytes, data_coding, receipt)))
            .await
    }

    /// Submits `text` asking for a receipt, and takes that receipt (checked
    /// to name the message's id), unanswered: its sequence number, the
    /// `deliver_sm` and the id.
    async fn submit_and_take_receipt(&mut self, text: &'static str) -> (u32, DeliverSm, String) {
        let seq = self
            .send_submit("14155550100", Bytes::from_static(text.as_bytes()), 0, 1)
            .await;
        let id = id_of(&self.resp(seq).await);
        let (seq, sm) = self.deliver_sm().await;
        assert_eq!(sm.esm_class & 0x3C, 0x04, "a receipt: {sm:?}");
        assert_eq!(receipted_id(&sm), id);
        (seq, sm, id)
    }

    /// Three submit_sm encoded back to back (not sent), and their sequence
    /// numbers.
    fn three_submits(&mut self, text: &str) -> (BytesMut, Vec<u32>) {
        let mut raw = BytesMut::new();
        let mut seqs = Vec::new();
        for n in 0..3 {
            self.seq += 1;
            seqs.push(self.seq);
            let text = Bytes::from(format!("{text} {n}"));
            Pdu::new(self.seq, Body::SubmitSm(submit("14155550100", text, 0, 0))).encode(&mut raw);
        }
        (raw, seqs)
    }

    async fn answer(&mut self, seq: u32) {
        self.io
            .send(&Pdu::deliver_sm_resp(seq, CommandStatus::ESME_ROK))
            .await
            .unwrap();
    }
}

fn submit(to: &str, text_bytes: Bytes, data_coding: u8, receipt: u8) -> SubmitSm {
    SubmitSm {
        source_addr_ton: 3,
        source_addr: Bytes::from_static(b"12345"),
        dest_addr_ton: 1,
        dest_addr_npi: 1,
        destination_addr: Bytes::from(to.to_owned()),
        registered_delivery: receipt,
        data_coding,
        short_message: text_bytes,
        ..SubmitSm::default()
    }
}

/// The body of a data_sm carrying `text` (GSM-7 unpacked) in `message_payload`.
fn data_sm_body(to: &str, text: &str, receipt: u8) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u8(0); // service_type
    b.put_slice(&[3, 0]);
    b.put_slice(b"12345\0");
    b.put_slice(&[1, 1]);
    b.put_slice(to.as_bytes());
    b.put_u8(0);
    b.put_slice(&[0, receipt, 0]); // esm_class, registered_delivery, data_coding
    b.put_u16(tag::MESSAGE_PAYLOAD);
    b.put_u16(text.len() as u16);
    b.put_slice(text.as_bytes());
    b.freeze()
}

/// The `receipted_message_id` a receipt names.
fn receipted_id(sm: &DeliverSm) -> String {
    let id = sm
        .tlv(tag::RECEIPTED_MESSAGE_ID)
        .expect("receipted_message_id")
        .as_c_string();
    String::from_utf8(id.to_vec()).unwrap()
}

fn id_of(p: &Pdu) -> String {
    assert_eq!(p.command_status, CommandStatus::ESME_ROK, "{p:?}");
    match &p.body {
        Body::SubmitSmResp(r) => String::from_utf8(r.message_id.to_vec()).unwrap(),
        Body::Other { body, .. } => {
            String::from_utf8(body.split(|&b| b == 0).next().unwrap().to_vec()).unwrap()
        }
        other => panic!("not a submit answer: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_esme_submits_short_long_unicode_and_data_sm_texts_and_gets_its_receipts() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = sluice::gateway::start(gateway_config(dir.path(), &smsc))
        .await
        .unwrap();
    let mut esme = Esme::connect(gw.smpp_server_addr.expect("the SMPP door is on")).await;
    let bound = esme.bind(SYSTEM_ID, PASSWORD).await;
    assert_eq!(bound.command_status, CommandStatus::ESME_ROK);
    let Body::BindTransceiverResp(r) = &bound.body else {
        panic!("{bound:?}")
    };
    assert_eq!(&r.system_id[..], b"sluice");

    // Short GSM-7 text.
    let short = esme
        .send_submit(
            "14155550100",
            Bytes::from_static(b"Hello from an ESME"),
            0,
            1,
        )
        .await;
    // A long text in three parts with an 8-bit UDH.
    let long_text = "Long text in parts. ".repeat(20);
    let parts = text::encode(&long_text, &TextOptions::default(), 7).unwrap();
    assert_eq!(parts.len(), 3);
    let mut long = Vec::new();
    for seg in &parts {
        let mut sm = submit("14155550101", seg.short_message.clone(), seg.data_coding, 1);
        sm.esm_class = 0x40;
        long.push(esme.send(Body::SubmitSm(sm)).await);
    }
    // UCS-2, asking for a receipt on success only (`registered_delivery`
    // 3, SMPP 5.0): it is delivered, so it gets one.
    let unicode_text = "Grüße 😀 from sluice";
    let ucs2: Vec<u8> = unicode_text
        .encode_utf16()
        .flat_map(u16::to_be_bytes)
        .collect();
    let unicode = esme
        .send_submit("14155550102", Bytes::from(ucs2), 8, 3)
        .await;
    // data_sm.
    let data = esme
        .send(Body::Other {
            command_id: 0x0000_0103,
            body: data_sm_body("14155550103", "via data sm", 1),
        })
        .await;
    // No receipt asked for.
    let quiet = esme
        .send_submit(
            "14155550104",
            Bytes::from_static(b"no receipt please"),
            0,
            0,
        )
        .await;

    let short_id = id_of(&esme.resp(short).await);
    let mut long_ids = Vec::new();
    for seq in long {
        long_ids.push(id_of(&esme.resp(seq).await));
    }
    assert!(
        long_ids.iter().all(|i| *i == long_ids[0]),
        "every part is answered with its message's id: {long_ids:?}"
    );
    let unicode_id = id_of(&esme.resp(unicode).await);
    let data_resp = esme.resp(data).await;
    assert!(matches!(
        data_resp.body,
        Body::Other {
            command_id: 0x8000_0103,
            ..
        }
    ));
    let data_id = id_of(&data_resp);
    let quiet_id = id_of(&esme.resp(quiet).await);
    let ids = [&short_id, &long_ids[0], &unicode_id, &data_id, &quiet_id];
    let distinct: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), 5, "{ids:?}");

    // One receipt per message that asked, naming the id it was answered with.
    let mut receipts = std::collections::HashMap::new();
    while receipts.len() < 4 {
        let (seq, sm) = esme.deliver_sm().await;
        assert_eq!(sm.esm_class & 0x3C, 0x04, "a receipt: {sm:?}");
        let id = receipted_id(&sm);
        assert_eq!(
            sm.tlv(tag::MESSAGE_STATE).and_then(|t| t.as_u8()),
            Some(2),
            "DELIVERED"
        );
        let body = String::from_utf8(sm.short_message.to_vec()).unwrap();
        assert!(
            body.starts_with(&format!("id:{id} sub:001 dlvrd:001 ")),
            "{body}"
        );
        assert!(body.contains(" stat:DELIVRD err:000 text:"), "{body}");
        esme.answer(seq).await;
        assert!(
            receipts.insert(id, body).is_none(),
            "one receipt per message"
        );
    }
    for id in [&short_id, &long_ids[0], &unicode_id, &data_id] {
        assert!(
            receipts.contains_key(id),
            "no receipt for {id}: {receipts:?}"
        );
    }
    drained(&gw, WAIT).await;
    eventually("every receipt answered", WAIT, || {
        smpp_events_held(&gw) == 0
    })
    .await;
    assert!(
        !receipts.contains_key(&quiet_id),
        "a submit without registered_delivery gets no receipt"
    );

    // The SMSC got the texts whole.
    let texts: Vec<String> = smsc.texts().into_iter().map(|t| t.2).collect();
    for t in [
        "Hello from an ESME",
        long_text.as_str(),
        unicode_text,
        "via data sm",
    ] {
        assert!(texts.iter().any(|x| x == t), "{t:?} not in {texts:?}");
    }

    // An inbound message for the tenant's sender reaches the bind.
    smsc.inject_mo("+14155550199", "12345", "hello upstream")
        .unwrap();
    let (seq, mo) = esme.deliver_sm().await;
    assert_eq!(mo.esm_class, 0);
    assert_eq!(&mo.source_addr[..], b"14155550199");
    assert_eq!(&mo.destination_addr[..], b"12345");
    assert_eq!(
        text::decode(mo.data_coding, &mo.short_message, false).unwrap(),
        "hello upstream"
    );
    esme.answer(seq).await;
    eventually("the inbound message answered", WAIT, || {
        smpp_events_held(&gw) == 0
    })
    .await;

    let unbind = esme.send(Body::Unbind).await;
    assert!(matches!(esme.resp(unbind).await.body, Body::UnbindResp));
    assert!(esme.next().await.is_none(), "closed after unbind");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_unanswered_before_a_restart_is_sent_again_after_it() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = sluice::gateway::start(gateway_config(dir.path(), &smsc))
        .await
        .unwrap();
    let mut esme = Esme::connect(gw.smpp_server_addr.unwrap()).await;
    assert!(esme.bind(SYSTEM_ID, PASSWORD).await.command_status.is_ok());
    let (_unanswered, first, _) = esme
        .submit_and_take_receipt("receipt across a restart")
        .await;
    drop(esme);
    gw.shutdown().await;

    let gw = sluice::gateway::start(gateway_config(dir.path(), &smsc))
        .await
        .unwrap();
    assert_eq!(smpp_events_held(&gw), 1, "the receipt is restored");
    let mut esme = Esme::connect(gw.smpp_server_addr.unwrap()).await;
    assert!(esme.bind(SYSTEM_ID, PASSWORD).await.command_status.is_ok());
    let (seq, again) = esme.deliver_sm().await;
    assert_eq!(again.short_message, first.short_message, "the same receipt");
    esme.answer(seq).await;
    eventually("the receipt answered", WAIT, || smpp_events_held(&gw) == 0).await;
    drop(esme);
    gw.shutdown().await;

    let gw = sluice::gateway::start(gateway_config(dir.path(), &smsc))
        .await
        .unwrap();
    assert_eq!(
        smpp_events_held(&gw),
        0,
        "an answered receipt is not sent again"
    );
    gw.shutdown().await;
}

/// A receipt the ESME answers with `ESME_RSYSERR` (a passing fault in
/// practice) or with a `generic_nack` that names no error is sent again,
/// not dropped; one answered `ESME_ROK` is done. One that keeps failing is
/// dead-lettered after its third such answer, not retried for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_answered_with_a_passing_error_or_an_empty_nack_comes_again() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = sluice::gateway::start(gateway_config(dir.path(), &smsc))
        .await
        .unwrap();
    let mut esme = Esme::connect(gw.smpp_server_addr.unwrap()).await;
    assert!(esme.bind(SYSTEM_ID, PASSWORD).await.command_status.is_ok());
    let (seq, first, _) = esme.submit_and_take_receipt("receipt answered badly").await;
    esme.io
        .send(&Pdu::deliver_sm_resp(seq, CommandStatus::ESME_RSYSERR))
        .await
        .unwrap();
    let (seq, again) = esme.deliver_sm().await;
    assert_eq!(again.short_message, first.short_message, "the same receipt");
    esme.io
        .send(&Pdu::generic_nack(seq, CommandStatus::ESME_ROK))
        .await
        .unwrap();
    let (seq, third) = esme.deliver_sm().await;
    assert_eq!(third.short_message, first.short_message, "the same receipt");
    esme.answer(seq).await;
    eventually("the receipt answered", WAIT, || smpp_events_held(&gw) == 0).await;

    // Another receipt the ESME fails three times is set aside.
    let seq = esme
        .send_submit(
            "14155550100",
            Bytes::from_static(b"receipt failed for good"),
            0,
            1,
        )
        .await;
    let failed_id = id_of(&esme.resp(seq).await);
    for _ in 0..3 {
        let (seq, _) = esme.deliver_sm().await;
        esme.io
            .send(&Pdu::deliver_sm_resp(seq, CommandStatus::ESME_RSYSERR))
            .await
            .unwrap();
    }
    eventually("the receipt dead-lettered", WAIT, || {
        smpp_events_held(&gw) == 0
    })
    .await;
    use sluice::ingest::Backend;
    let ep = gw
        .gateway
        .events()
        .endpoint(TENANT, sluice::smpp_server::ENDPOINT)
        .unwrap();
    assert_eq!(ep.counts().dead, 1);

    // The operator sees it and puts it back; the bind takes it again.
    let http = gw.http_addr.unwrap();
    let (status, v) = admin(http, "GET", "/admin/smpp").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["tenants"],
        serde_json::json!([{"tenant": TENANT, "ready": 0, "in_flight": 0, "dead": 1}])
    );
    let (status, _) = admin(http, "POST", "/admin/smpp/nobody/replay").await;
    assert_eq!(status, 404);
    // The tenant's own token sees its own and may replay only its own.
    let (status, mine) = admin_as(TENANT_ADMIN, http, "GET", "/admin/smpp").await;
    assert_eq!((status, &mine["tenants"]), (200, &v["tenants"]));
    let (status, _) = admin_as(TENANT_ADMIN, http, "POST", "/admin/smpp/other/replay").await;
    assert_eq!(status, 403);
    let (status, v) = admin(http, "POST", &format!("/admin/smpp/{TENANT}/replay")).await;
    assert_eq!(
        (status, &v["replayed"]),
        (200, &serde_json::json!(1)),
        "{v}"
    );
    let (seq, back) = esme.deliver_sm().await;
    assert_eq!(receipted_id(&back), failed_id, "the dead-lettered receipt");
    esme.answer(seq).await;
    eventually("the replayed receipt answered", WAIT, || {
        smpp_events_held(&gw) == 0 && ep.counts().dead == 0
    })
    .await;
    drop(esme);
    gw.shutdown().await;
}

const ADMIN: &str = "operator-token-0001";
const TENANT_ADMIN: &str = "tenant-token-0001";

/// An admin call with the operator's token: its status and JSON body.
async fn admin(addr: SocketAddr, method: &str, path: &str) -> (u16, serde_json::Value) {
    admin_as(ADMIN, addr, method, path).await
}

/// An admin call with `token`.
async fn admin_as(
    token: &str,
    addr: SocketAddr,
    method: &str,
    path: &str,
) -> (u16, serde_json::Value) {
    let bearer = format!("Bearer {token}");
    let (status, _, body) = http(addr, method, path, &[("authorization", &bearer)], "").await;
    (status, serde_json::from_str(&body).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_binds_wrong_states_and_malformed_pdus_get_their_status() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = sluice::gateway::start(gateway_config(dir.path(), &smsc))
        .await
        .unwrap();
    let addr = gw.smpp_server_addr.unwrap();

    // Before a bind: enquire_link is answered, a submit is not.
    let mut esme = Esme::connect(addr).await;
    let seq = esme.send(Body::EnquireLink).await;
    assert!(esme.resp(seq).await.command_status.is_ok());
    let seq = esme
        .send_submit("14155550100", Bytes::from_static(b"x"), 0, 1)
        .await;
    let p = esme.resp(seq).await;
    assert!(matches!(p.body, Body::GenericNack));
    assert_eq!(p.command_status, CommandStatus::ESME_RINVBNDSTS);
    // A wrong password, then the connection closes.
    let p = esme.bind(SYSTEM_ID, "nope").await;
    assert_eq!(p.command_status, CommandStatus::ESME_RINVPASWD);
    assert!(esme.next().await.is_none());
    // An unknown system id.
    let mut esme = Esme::connect(addr).await;
    assert_eq!(
        esme.bind("nobody", PASSWORD).await.command_status,
        CommandStatus::ESME_RINVSYSID
    );

    // A receiver cannot submit; a second bind is refused.
    let mut rx = Esme::connect(addr).await;
    let seq = rx
        .send(Body::BindReceiver(Bind {
            system_id: Bytes::from_static(SYSTEM_ID.as_bytes()),
            password: Bytes::from_static(PASSWORD.as_bytes()),
            interface_version: 0x34,
            ..Bind::default()
        }))
        .await;
    assert!(rx.resp(seq).await.command_status.is_ok());
    let seq = rx
        .send_submit("14155550100", Bytes::from_static(b"x"), 0, 1)
        .await;
    assert_eq!(
        rx.resp(seq).await.command_status,
        CommandStatus::ESME_RINVBNDSTS
    );
    assert_eq!(
        rx.bind(SYSTEM_ID, PASSWORD).await.command_status,
        CommandStatus::ESME_RALYBND
    );

    let mut esme = Esme::connect(addr).await;
    assert!(esme.bind(SYSTEM_ID, PASSWORD).await.command_status.is_ok());
    // An unknown command.
    let seq = esme
        .send(Body::Other {
            command_id: 0x0000_0099,
            body: Bytes::new(),
        })
        .await;
    let p = esme.resp(seq).await;
    assert!(matches!(p.body, Body::GenericNack));
    assert_eq!(p.command_status, CommandStatus::ESME_RINVCMDID);
    // A submit_sm whose body stops in the middle of an address.
    let mut raw = BytesMut::new();
    raw.put_u32(16 + 5);
    raw.put_u32(0x0000_0004);
    raw.put_u32(0);
    raw.put_u32(900);
    raw.put_slice(&[0, 1, 1, b'1', b'2']);
    esme.send_raw(&raw).await;
    let p = esme.resp(900).await;
    assert!(matches!(p.body, Body::GenericNack), "{p:?}");
    assert!(!p.command_status.is_ok());
    // Refusals by field.
    let cases: Vec<(SubmitSm, CommandStatus)> = vec![
        (
            SubmitSm {
                schedule_delivery_time: Bytes::from_static(b"000000000100000R"),
                ..submit("14155550100", Bytes::from_static(b"later"), 0, 1)
            },
            CommandStatus::ESME_RINVSCHED,
        ),
        (
            submit("14155550100", Bytes::from_static(b"\x01\x02"), 0x04, 1),
            CommandStatus::ESME_RINVDCS,
        ),
        (
            SubmitSm {
                validity_period: Bytes::from_static(b"garbage"),
                ..submit("14155550100", Bytes::from_static(b"x"), 0, 1)
            },
            CommandStatus::ESME_RINVEXPIRY,
        ),
        (
            submit("not-a-number", Bytes::from_static(b"x"), 0, 1),
            CommandStatus::ESME_RINVDSTADR,
        ),
        (
            SubmitSm {
                source_addr: Bytes::from_static(b"99999"),
                ..submit("14155550100", Bytes::from_static(b"x"), 0, 1)
            },
            CommandStatus::ESME_RINVSRCADR,
        ),
    ];
    for (sm, status) in cases {
        let seq = esme.send(Body::SubmitSm(sm.clone())).await;
        assert_eq!(esme.resp(seq).await.command_status, status, "{sm:?}");
    }
    // The session carries on.
    let seq = esme
        .send_submit("14155550100", Bytes::from_static(b"still fine"), 0, 0)
        .await;
    id_of(&esme.resp(seq).await);
    // Three submits and a length no PDU has, in one write: each submit is
    // answered with its id (they were made durable, an ESME must not send
    // them again), the length gets a generic_nack, then the connection
    // closes.
    let (mut raw, sent) = esme.three_submits("before the break");
    raw.put_slice(&[0, 0, 0, 8, 0, 0, 0, 4]);
    esme.send_raw(&raw).await;
    let mut answered = Vec::new();
    let mut nacked = 0;
    while let Some(p) = esme.next().await {
        match p.body {
            Body::GenericNack => {
                assert_eq!(p.command_status, CommandStatus::ESME_RINVCMDLEN);
                nacked += 1;
            }
            Body::SubmitSmResp(_) => {
                id_of(&p);
                answered.push(p.sequence_number);
            }
            other => panic!("unexpected before the close: {other:?}"),
        }
    }
    answered.sort_unstable();
    assert_eq!(answered, sent, "every submit before the break is answered");
    assert_eq!(nacked, 1);
    // Three submits, then the ESME closes its end: each is answered before
    // the connection closes.
    let mut esme = Esme::connect(addr).await;
    assert!(esme.bind(SYSTEM_ID, PASSWORD).await.command_status.is_ok());
    let (raw, sent) = esme.three_submits("before the end");
    {
        use tokio::io::AsyncWriteExt;
        let tcp = esme.io.get_mut();
        tcp.write_all(&raw).await.unwrap();
        tcp.shutdown().await.unwrap();
    }
    let mut answered = Vec::new();
    while let Some(p) = esme.next().await {
        id_of(&p);
        answered.push(p.sequence_number);
    }
    answered.sort_unstable();
    assert_eq!(answered, sent, "every submit before the end is answered");
    drop(rx);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_pressure_is_answered_throttled_and_admits_nothing() {
    // Receipts take an hour: admitted messages stay live.
    let smsc = smsc(|c| c.receipt_delay = Duration::from_secs(3600)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = gateway_config(dir.path(), &smsc);
    cfg.journal.max_live_messages = 3;
    let gw = sluice::gateway::start(cfg).await.unwrap();
    let mut esme = Esme::connect(gw.smpp_server_addr.unwrap()).await;
    assert!(esme.bind(SYSTEM_ID, PASSWORD).await.command_status.is_ok());
    let mut seqs = Vec::new();
    for i in 0..3 {
        seqs.push(
            esme.send_submit(&format!("1415555010{i}"), Bytes::from_static(b"fits"), 0, 1)
                .await,
        );
    }
    for seq in seqs {
        id_of(&esme.resp(seq).await);
    }
    for i in 0..3 {
        let seq = esme
            .send_submit(
                &format!("1415555011{i}"),
                Bytes::from_static(b"too many"),
                0,
                1,
            )
            .await;
        assert_eq!(
            esme.resp(seq).await.command_status,
            CommandStatus::ESME_RTHROTTLED
        );
    }
    assert_eq!(gw.gateway.ledger().live(), 3, "nothing more admitted");
    gw.shutdown().await;
}

/// SIGHUP's reload (`Running::reload`) replaces a tenant's token, SMPP
/// password and senders at once: the framed session and the SMPP bind made
/// with the old ones are closed (GoAway; unbind), the old token and
/// password are refused, the new ones work, a sender no longer the
/// tenant's is refused, and the message accepted before is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_replaces_credentials_and_senders_and_ends_sessions_made_with_the_old_ones() {
    use sluice::ingest::client::{Client, ClientError};
    use sluice::ingest::pb;
    const NEW_TOKEN: &str = "demo-token-0002";
    const NEW_PASSWORD: &str = "pw-new";
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = gateway_config(dir.path(), &smsc);
    let mut gw = sluice::gateway::start(cfg.clone()).await.unwrap();
    let smpp = gw.smpp_server_addr.unwrap();
    let ingest = gw.ingest_addr.to_string();
    let mut esme = Esme::connect(smpp).await;
    assert_eq!(
        esme.bind(SYSTEM_ID, PASSWORD).await.command_status,
        CommandStatus::ESME_ROK
    );
    let (client, mut events) = Client::connect(&ingest, TENANT, TOKEN).await.unwrap();
    accepted_ids(
        &client
            .submit(vec![msg("before", "+14155550100", "before the reload")])
            .await
            .unwrap(),
    );

    let mut new = cfg.clone();
    new.tenants[0].token = Secret::new(NEW_TOKEN);
    new.tenants[0].smpp_password = Some(Secret::new(NEW_PASSWORD));
    new.tenants[0].senders = vec!["54321".into()];
    let r = gw.reload(&new);
    assert_eq!(
        r.applied,
        [
            format!("tenants.{TENANT}.token"),
            format!("tenants.{TENANT}.senders"),
            format!("tenants.{TENANT}.smpp_system_id/smpp_password"),
        ]
    );
    assert!(r.at_restart.is_empty(), "{:?}", r.at_restart);

    // The framed session on the old token ends.
    tokio::time::timeout(WAIT, async { while events.recv().await.is_some() {} })
        .await
        .expect("the session on the old token is closed");
    // The SMPP session bound with the old password is unbound, then closed.
    let mut unbound = false;
    while let Some(p) = esme.next().await {
        if matches!(p.body, Body::Unbind) {
            unbound = true;
        }
    }
    assert!(unbound, "sluice unbinds the session before closing it");

    // Old credentials are refused, new ones work.
    match Client::connect(&ingest, TENANT, TOKEN).await {
        Err(ClientError::Server { code, .. }) => assert_eq!(code, pb::ErrorCode::AuthFailed),
        other => panic!("the old token: {:?}", other.map(|_| ())),
    }
    let mut esme = Esme::connect(smpp).await;
    assert_eq!(
        esme.bind(SYSTEM_ID, PASSWORD).await.command_status,
        CommandStatus::ESME_RINVPASWD
    );
    let mut esme = Esme::connect(smpp).await;
    assert_eq!(
        esme.bind(SYSTEM_ID, NEW_PASSWORD).await.command_status,
        CommandStatus::ESME_ROK
    );
    let (client, _events) = Client::connect(&ingest, TENANT, NEW_TOKEN).await.unwrap();
    let ack = client
        .submit(vec![msg("after", "+14155550101", "after the reload")])
        .await
        .unwrap();
    assert_eq!(
        ack.results[0].reason,
        pb::RejectReason::SenderNotAllowed as i32,
        "12345 is no longer the tenant's: {ack:?}"
    );
    let mut from_new = msg("after-new", "+14155550102", "from the new sender");
    from_new.from = "54321".into();
    accepted_ids(&client.submit(vec![from_new]).await.unwrap());
    // A STOP sent to the sender the tenant just got is the tenant's.
    smsc.inject_mo("+14155550103", "54321", "STOP").unwrap();
    let (new_sender, handset) = (
        sluice::model::Sender::parse("54321").unwrap(),
        sluice::model::Msisdn::parse("+14155550103").unwrap(),
    );
    eventually("the STOP is recorded for the tenant", WAIT, || {
        gw.gateway
            .compliance()
            .check(TENANT, &new_sender, handset)
            .is_some()
    })
    .await;
    let mut stopped = msg("stopped", "+14155550103", "after the STOP");
    stopped.from = "54321".into();
    let ack = client.submit(vec![stopped]).await.unwrap();
    assert_eq!(
        ack.results[0].reason,
        pb::RejectReason::Suppressed as i32,
        "{ack:?}"
    );
    // Nothing accepted was lost on the way.
    eventually("both delivered to the SMSC", WAIT, || {
        let texts: Vec<String> = smsc.texts().into_iter().map(|t| t.2).collect();
        texts.iter().any(|t| t == "before the reload")
            && texts.iter().any(|t| t == "from the new sender")
    })
    .await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_given_smpp_credentials_by_a_reload_gets_its_receipts_on_its_binds() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let (mut gw, _) = started_without_smpp_credentials(dir.path(), &smsc).await;
    let smpp = gw.smpp_server_addr.unwrap();
    let mut esme = Esme::connect(smpp).await;
    assert_ne!(
        esme.bind(SYSTEM_ID, PASSWORD).await.command_status,
        CommandStatus::ESME_ROK,
        "no account before the reload"
    );

    let new = gateway_config(dir.path(), &smsc);
    let r = gw.reload(&new);
    assert_eq!(
        r.applied,
        [format!("tenants.{TENANT}.smpp_system_id/smpp_password")]
    );
    assert!(r.at_restart.is_empty(), "{:?}", r.at_restart);

    // Bound with the new account, the receipt it asks for reaches it.
    bind_submit_and_get_the_receipt(smpp, "after the reload").await;
    eventually("the receipt is acknowledged", WAIT, || {
        smpp_events_held(&gw) == 0
    })
    .await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_removed_then_added_back_with_smpp_credentials_gets_its_receipts() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let (mut gw, cfg) = started_without_smpp_credentials(dir.path(), &smsc).await;
    let smpp = gw.smpp_server_addr.unwrap();
    let mut gone = cfg.clone();
    gone.tenants.clear();
    assert_eq!(
        gw.reload(&gone).applied,
        [format!("tenants.{TENANT}: removed")]
    );
    let back = gateway_config(dir.path(), &smsc);
    assert_eq!(
        gw.reload(&back).applied,
        [format!("tenants.{TENANT}: added")]
    );

    bind_submit_and_get_the_receipt(smpp, "back again").await;
    gw.shutdown().await;
}

/// Every message fails at the carrier: a submit asking for a receipt on
/// success only (`registered_delivery` 3) gets none, while ones asking
/// always (1) or on failure only (2) get theirs, `UNDELIV`. (A delivered
/// message asking 3 gets its receipt in the first test.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_on_success_only_is_not_sent_for_a_failed_message() {
    let smsc = smsc(|c| {
        c.outcomes = sluice::sim::smsc::OutcomeMix::only(sluice::sim::smsc::Outcome::Undeliverable)
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let gw = sluice::gateway::start(gateway_config(dir.path(), &smsc))
        .await
        .unwrap();
    let mut esme = Esme::connect(gw.smpp_server_addr.expect("the SMPP door is on")).await;
    assert_eq!(
        esme.bind(SYSTEM_ID, PASSWORD).await.command_status,
        CommandStatus::ESME_ROK
    );
    let mut seqs = Vec::new();
    for (to, receipt) in [("14155550110", 3), ("14155550111", 1), ("14155550112", 2)] {
        let text = Bytes::from(format!("receipt request {receipt}"));
        seqs.push(esme.send_submit(to, text, 0, receipt).await);
    }
    let mut ids = Vec::new();
    for seq in seqs {
        ids.push(id_of(&esme.resp(seq).await));
    }
    let (success_only, wanted) = (&ids[0], &ids[1..]);
    // Takes receipts (answering each) until `until` has had its own; none
    // may be for the success-only message.
    async fn receipts_until(esme: &mut Esme, success_only: &str, until: &[&str]) -> Vec<String> {
        let mut receipted = Vec::new();
        while !until.iter().all(|u| receipted.iter().any(|r| r == u)) {
            let (seq, sm) = esme.deliver_sm().await;
            let id = receipted_id(&sm);
            assert_ne!(
                id, success_only,
                "a failed message asked receipts on success only"
            );
            let body = String::from_utf8(sm.short_message.to_vec()).unwrap();
            assert!(body.contains(" stat:UNDELIV "), "{body}");
            esme.answer(seq).await;
            receipted.push(id);
        }
        receipted
    }
    let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
    let mut receipted = receipts_until(&mut esme, success_only, &wanted).await;
    receipted.sort();
    assert_eq!(receipted, wanted);
    // Every message ended. A receipt for the first would be published with
    // its end, before anything that ends later: one more message asking for
    // its receipt is a marker, read up to with none for the first on the way.
    drained(&gw, WAIT).await;
    let marker = esme
        .send_submit("14155550113", Bytes::from_static(b"marker"), 0, 1)
        .await;
    let marker = id_of(&esme.resp(marker).await);
    let after = receipts_until(&mut esme, success_only, &[marker.as_str()]).await;
    assert_eq!(
        after,
        [marker],
        "nothing but the marker's receipt after the three"
    );
    eventually("every receipt answered", WAIT, || {
        smpp_events_held(&gw) == 0
    })
    .await;
    gw.shutdown().await;
}

/// Binds as the tenant, submits `text` asking for a receipt, and checks
/// that the receipt names the id the submit was answered with (answering
/// it).
async fn bind_submit_and_get_the_receipt(smpp: SocketAddr, text: &'static str) {
    let mut esme = Esme::connect(smpp).await;
    assert_eq!(
        esme.bind(SYSTEM_ID, PASSWORD).await.command_status,
        CommandStatus::ESME_ROK
    );
    let (seq, _, _) = esme.submit_and_take_receipt(text).await;
    esme.answer(seq).await;
}

/// A gateway with the SMPP door on and the tenant without SMPP credentials,
/// and its configuration.
async fn started_without_smpp_credentials(
    dir: &std::path::Path,
    smsc: &sluice::sim::smsc::Smsc,
) -> (sluice::gateway::Running, sluice::config::Config) {
    let mut cfg = gateway_config(dir, smsc);
    cfg.tenants[0].smpp_system_id = None;
    cfg.tenants[0].smpp_password = None;
    let gw = sluice::gateway::start(cfg.clone()).await.unwrap();
    (gw, cfg)
}
