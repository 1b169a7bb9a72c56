//! Replays every committed fuzz seed (`fuzz/seeds/<target>/*`) through the
//! body its libFuzzer target runs ([`sluice::fuzzing::TARGETS`]), on stable
//! Rust and without cargo-fuzz: every crash once found, and every example
//! the corpora start from, stays a regression test.

use std::path::{Path, PathBuf};

use sluice::fuzzing::TARGETS;

fn seeds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds")
}

/// The files of one target's seed directory, sorted.
fn seeds(target: &str) -> Vec<PathBuf> {
    let dir = seeds_dir().join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_seed_replays_through_its_target() {
    let mut total = 0;
    for &(name, body) in TARGETS {
        let files = seeds(name);
        assert!(!files.is_empty(), "fuzz/seeds/{name} holds no seed");
        for path in files {
            let data = std::fs::read(&path).expect("a seed");
            let outcome = std::panic::catch_unwind(|| body(&data));
            assert!(outcome.is_ok(), "{} fails target {name}", path.display());
            total += 1;
        }
    }
    eprintln!("replayed {total} seeds through {} targets", TARGETS.len());
}

#[test]
fn every_seed_directory_names_a_target_and_every_target_has_a_binary() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for entry in std::fs::read_dir(seeds_dir()).expect("fuzz/seeds") {
        let name = entry.expect("an entry").file_name();
        let name = name.to_string_lossy();
        assert!(
            TARGETS.iter().any(|(t, _)| *t == name),
            "fuzz/seeds/{name} is no target"
        );
    }
    let manifest = std::fs::read_to_string(fuzz.join("Cargo.toml")).expect("fuzz/Cargo.toml");
    for (name, _) in TARGETS {
        assert!(
            fuzz.join(format!("fuzz_targets/{name}.rs")).is_file(),
            "no fuzz/fuzz_targets/{name}.rs"
        );
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml has no [[bin]] {name}"
        );
    }
}

/// Writes the example seeds (`ex-*` files) of every target from what the
/// code itself emits and parses in its tests: run by hand after a format
/// changes, `cargo test --release --test fuzz_corpus -- --ignored`. The
/// other files in `fuzz/seeds/` are inputs the fuzzer found (minimised).
#[tokio::test]
#[ignore = "writes fuzz/seeds; run by hand"]
async fn write_example_seeds() {
    examples::write_all().await;
}

mod examples {
    use std::path::Path;
    use std::sync::Arc;

    use bytes::{Bytes, BytesMut};
    use sluice::ingest::{codec, pb};
    use sluice::journal::dedupe_log::DedupeLog;
    use sluice::journal::{CarriedMessage, Journal, OptChange, PendingEvent};
    use sluice::mm7::soap::{
        Address, DeliverReq, DeliveryReportReq, ErrorRspKind, Fault, MediaPart, MmStatus, Rsp,
        SubmitReq, SubmitRsp,
    };
    use sluice::mm7::{Credentials, Status, Version};
    use sluice::model::{
        ChannelPref, FallbackPolicy, Message, MessageId, Msisdn, Priority, Sender,
    };
    use sluice::smpp::pdu::{Bind, Body, DeliverSm, Pdu, SubmitSm, Tlv, tag};
    use sluice::smpp::receipt::format_receipt_text;
    use sluice::smpp::text::{self, Concat, TextOptions};

    use super::seeds_dir;

    fn put(target: &str, name: &str, data: impl AsRef<[u8]>) {
        let dir = seeds_dir().join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("ex-{name}")), data).unwrap();
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    pub async fn write_all() {
        smpp();
        ingest();
        mm7();
        journal().await;
        spill();
        dedupe();
        optout();
        landing();
        keywords();
        config();
        history();
    }

    // === SMPP ===

    fn submit(seq: u32, seg: &text::Segment) -> Pdu {
        let mut tlvs = Vec::new();
        if let Some(sar) = seg.sar {
            tlvs.push(Tlv::new(
                tag::SAR_MSG_REF_NUM,
                sar.reference.to_be_bytes().to_vec(),
            ));
            tlvs.push(Tlv::new(tag::SAR_TOTAL_SEGMENTS, vec![sar.total]));
            tlvs.push(Tlv::new(tag::SAR_SEGMENT_SEQNUM, vec![sar.seq]));
        }
        if let Some(p) = &seg.message_payload {
            tlvs.push(Tlv::new(tag::MESSAGE_PAYLOAD, p.clone()));
        }
        Pdu::new(
            seq,
            Body::SubmitSm(SubmitSm {
                source_addr: Bytes::from_static(b"12345"),
                destination_addr: Bytes::from_static(b"14155550100"),
                esm_class: if seg.esm_class_udhi { 0x40 } else { 0 },
                registered_delivery: 1,
                data_coding: seg.data_coding,
                short_message: seg.short_message.clone(),
                tlvs,
                ..SubmitSm::default()
            }),
        )
    }

    fn stream(pdus: &[Pdu]) -> Vec<u8> {
        let mut b = BytesMut::new();
        for p in pdus {
            p.encode(&mut b);
        }
        b.to_vec()
    }

    fn smpp() {
        let bind = Pdu::new(
            1,
            Body::BindTransceiver(Bind {
                system_id: Bytes::from_static(b"sluice"),
                password: Bytes::from_static(b"secret1"),
                interface_version: 0x34,
                ..Bind::default()
            }),
        );
        let texts = [
            ("gsm", "Hello from sluice", Concat::Udh8),
            ("gsm-ext", "Price: 5€ [promo] {x} ~ ^ | \\", Concat::Udh8),
            ("ucs2", "Привет 👋 surrogate", Concat::Udh16),
            (
                "long-udh8",
                &"long text for three parts ".repeat(14),
                Concat::Udh8,
            ),
            (
                "long-sar",
                &"SAR concatenated message ".repeat(8),
                Concat::Sar,
            ),
            ("payload", &"payload TLV text ".repeat(12), Concat::Payload),
            ("long-ucs2-udh16", &"ünïcödé ✓ ".repeat(20), Concat::Udh16),
        ];
        let receipt = format_receipt_text(
            "a0000001",
            1,
            1,
            "2601011200",
            "2601011201",
            "DELIVRD",
            0,
            "Hello",
        );
        let receipt_pdu = Pdu::new(
            9,
            Body::DeliverSm(DeliverSm {
                source_addr: Bytes::from_static(b"14155550100"),
                destination_addr: Bytes::from_static(b"12345"),
                esm_class: 0x04,
                short_message: Bytes::from(receipt.clone()),
                tlvs: vec![
                    Tlv::from_c_string(tag::RECEIPTED_MESSAGE_ID, b"a0000001"),
                    Tlv::new(tag::MESSAGE_STATE, vec![2]),
                ],
                ..DeliverSm::default()
            }),
        );
        put("smpp_pdu_decode", "bind", bind.to_bytes());
        put("smpp_pdu_decode", "receipt", receipt_pdu.to_bytes());
        put(
            "smpp_pdu_decode",
            "session",
            stream(&[
                bind.clone(),
                Pdu::enquire_link(2),
                Pdu::submit_sm_resp(3, sluice::smpp::pdu::CommandStatus::ESME_ROK, "a0000001"),
                Pdu::generic_nack(4, sluice::smpp::pdu::CommandStatus::ESME_RINVCMDLEN),
                Pdu::unbind(5),
            ]),
        );
        // A header announcing more than the frame holds, and an unknown command.
        put(
            "smpp_pdu_decode",
            "short-frame",
            [0, 0, 0, 64, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 1],
        );
        put(
            "smpp_pdu_decode",
            "unknown-command",
            [0, 0, 0, 16, 0, 0, 0x7F, 0x7F, 0, 0, 0, 0, 0, 0, 0, 9],
        );

        let mut sim = vec![bind.clone()];
        let mut seq = 2;
        for (name, t, concat) in &texts {
            let opts = TextOptions {
                concat: *concat,
                gsm7_packed: false,
            };
            let segs = text::encode(t, &opts, 42).unwrap();
            let pdus: Vec<Pdu> = segs
                .iter()
                .map(|s| {
                    seq += 1;
                    submit(seq, s)
                })
                .collect();
            put("smpp_pdu_decode", &format!("submit-{name}"), stream(&pdus));
            put(
                "sim_smsc",
                name,
                cat(&[&[0], &stream(std::slice::from_ref(&bind)), &stream(&pdus)]),
            );
            sim.extend(pdus);
            for s in &segs {
                let mut head = vec![s.data_coding, u8::from(s.esm_class_udhi)];
                head.extend_from_slice(&s.short_message);
                put(
                    "smpp_text",
                    &format!("{name}-{}", s.short_message.len()),
                    head,
                );
            }
            let packed = text::encode(
                t,
                &TextOptions {
                    concat: *concat,
                    gsm7_packed: true,
                },
                43,
            )
            .unwrap();
            let s = &packed[0];
            let mut head = vec![s.data_coding, u8::from(s.esm_class_udhi) | 2];
            head.extend_from_slice(&s.short_message);
            put("smpp_text", &format!("{name}-packed"), head);
            if packed.len() == 1 {
                put(
                    "sim_smsc",
                    &format!("{name}-packed"),
                    cat(&[&[1], &stream(&[submit(3, s)])]),
                );
            }
        }
        put("sim_smsc", "session", cat(&[&[0], &stream(&sim)]));
        // A SAR part numbered outside 1..=total, and an unknown data_coding.
        let bad_sar = text::Segment {
            data_coding: 0,
            esm_class_udhi: false,
            short_message: Bytes::from_static(b"part"),
            sar: Some(text::ConcatInfo {
                reference: 1,
                total: 2,
                seq: 3,
            }),
            message_payload: None,
        };
        let bad_dcs = text::Segment {
            data_coding: 0x05,
            ..bad_sar.clone()
        };
        put(
            "sim_smsc",
            "bad-sar",
            cat(&[&[0], &stream(&[submit(2, &bad_sar)])]),
        );
        put(
            "sim_smsc",
            "bad-dcs",
            cat(&[&[0], &stream(&[submit(2, &bad_dcs)])]),
        );
        for dc in [0x01u8, 0x03, 0x04] {
            put(
                "smpp_text",
                &format!("dcs-{dc:02x}"),
                cat(&[&[dc, 0], b"caf\xE9 ok"]),
            );
        }

        let receipts = [
            receipt.as_str(),
            "id:1234567890 sub:001 dlvrd:000 submit date:2601011200 done date:2601011201 stat:UNDELIV err:034 Text:x",
            "id:ABCDEF sub:1 dlvrd:1 submit_date:260101120000 done_date:260101120100 stat:ENROUTE err:0",
            "stat:EXPIRED id:  0042  err:000 text:stat:DELIVRD id:9",
            "id:77 stat:BUFFRED",
            // The standard layout: colons in values, one value empty and
            // no text; then with a text.
            "id:a:b sub: dlvrd:001 submit date:2612080012 done date:2612080013 stat:TEXT: err:000",
            "id:0a1b2c3d sub:001 dlvrd:001 submit date:2612080012 done date:2612080013 stat:DELIVRD err:000 text:Hi: there",
        ];
        for (i, r) in receipts.iter().enumerate() {
            put(
                "smpp_receipt",
                &format!("text-{i}"),
                cat(&[&[0x04], r.as_bytes()]),
            );
        }
        put(
            "smpp_receipt",
            "intermediate",
            cat(&[&[0x20], receipts[4].as_bytes()]),
        );
        // TLVs cut from the input: 8-byte id, state 2 (delivered), error code.
        put(
            "smpp_receipt",
            "tlvs",
            cat(&[&[0x04], b"a0000001", &[2], &[3, 0, 1], b"stat:DELIVRD"]),
        );
    }

    // === ingest ===

    fn ingest() {
        let msg = |i: u32, text: &str| pb::SubmitMessage {
            client_ref: format!("order-{i}"),
            to: "+14155550100".into(),
            from: "12345".into(),
            text: text.into(),
            validity_seconds: 3600,
            ..pb::SubmitMessage::default()
        };
        let batch = pb::frame::Body::SubmitBatch(pb::SubmitBatch {
            messages: vec![
                msg(1, "hello"),
                msg(2, "ünïcödé ✓"),
                pb::SubmitMessage {
                    to: "not a number".into(),
                    ..msg(3, "")
                },
            ],
        });
        put("ingest_frame", "submit-batch", codec::frame_bytes(7, batch));
        let hello = pb::frame::Body::Hello(pb::Hello {
            tenant: "acme".into(),
            token: "change-me-acme-token".into(),
            ..pb::Hello::default()
        });
        let mut two = codec::frame_bytes(1, hello).to_vec();
        two.extend_from_slice(&codec::frame_bytes(
            2,
            pb::frame::Body::Ping(pb::Ping::default()),
        ));
        put("ingest_frame", "hello-ping", two);
    }

    // === MM7 ===

    const NS6: &str = "http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/REL-6-MM7-1-4";
    const NS5: &str = "http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/REL-5-MM7-1-2";

    fn with_ct(ct: &str, body: &[u8]) -> Vec<u8> {
        cat(&[ct.as_bytes(), b"\n", body])
    }

    fn report(v: Version, status: MmStatus) -> DeliveryReportReq {
        DeliveryReportReq {
            transaction_id: "tx-42".into(),
            version: Some(v),
            message_id: "mmsc-0001".into(),
            recipient: Address::Number("+14155550100".into()),
            sender: Address::ShortCode("12345".into()),
            date: Some("2026-01-01T12:00:00Z".into()),
            mm_status: status,
            status_text: Some("ok".into()),
            ..DeliveryReportReq::default()
        }
    }

    fn mm7() {
        let png = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/media/sample.png"),
        )
        .unwrap();
        let png = Bytes::from(png[..png.len().min(600)].to_vec());
        let recipients = [
            Address::Number("+14155550100".into()),
            Address::ShortCode("12345".into()),
            Address::Email("a@example.com".into()),
        ];
        let media = [MediaPart {
            content_type: "image/png",
            content_id: "img-1@sluice",
            bytes: png.clone(),
        }];
        let sender = Address::ShortCode("12345".into());
        let mut encoded = Vec::new();
        for v in [Version::Rel5Mm7_1_2, Version::Rel6Mm7_1_4] {
            let req = SubmitReq {
                transaction_id: "tx-1",
                version: v,
                vasp_id: Some("vasp"),
                vas_id: Some("vas"),
                sender: Some(&sender),
                recipients: &recipients,
                delivery_report: true,
                subject: Some("Sale ✓ <now>"),
                text: "Hello & welcome",
                media: &media,
                ..SubmitReq::default()
            };
            encoded.push((format!("submit-req-{v:?}"), req.encode()));
            encoded.push((
                format!("report-{v:?}"),
                report(v, MmStatus::Retrieved).encode(),
            ));
        }
        encoded.push((
            "report-deferred".into(),
            report(Version::Rel6Mm7_1_4, MmStatus::Deferred).encode(),
        ));
        let deliver = DeliverReq {
            transaction_id: "mo-1".into(),
            version: Some(Version::Rel6Mm7_1_4),
            linked_id: Some("L-1".into()),
            sender: Address::Number("+14155550100".into()),
            recipients: vec![Address::ShortCode("12345".into())],
            subject: Some("stop".into()),
            text: "STOP".into(),
            ..DeliverReq::default()
        };
        encoded.push(("deliver-stop".into(), deliver.encode()));
        encoded.push((
            "submit-rsp".into(),
            SubmitRsp {
                transaction_id: "tx-1".into(),
                version: Some(Version::Rel6Mm7_1_4),
                status: Status::success(),
                message_id: Some("mmsc-0001".into()),
                ..SubmitRsp::default()
            }
            .encode(),
        ));
        encoded.push((
            "rsp".into(),
            Rsp::delivery_report("tx-42", Version::Rel5Mm7_1_2, Status::success()).encode(),
        ));
        encoded.push((
            "fault".into(),
            Fault::new(
                Some("tx-1"),
                Version::Rel6Mm7_1_4,
                ErrorRspKind::Rs,
                Status::new(3000).with_details("busy"),
            )
            .encode(),
        ));
        for (name, e) in &encoded {
            let seed = with_ct(&e.content_type, &e.body);
            put("mm7_soap", name, &seed);
            if e.content_type.starts_with("multipart/") {
                put("mm7_mime", name, &seed);
            }
        }
        let xml = |name: &str, body: String| {
            put(
                "mm7_soap",
                name,
                with_ct("text/xml; charset=utf-8", body.as_bytes()),
            );
        };
        xml(
            "prefixes",
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/">
  <SOAP-ENV:Header><x:TransactionID xmlns:x="{NS6}" SOAP-ENV:mustUnderstand="1">abc-123</x:TransactionID></SOAP-ENV:Header>
  <SOAP-ENV:Body><m:SubmitRsp xmlns:m="{NS6}"><m:MM7Version>6.8.0</m:MM7Version>
    <m:Status><m:StatusText>Success</m:StatusText><m:StatusCode> 1000 </m:StatusCode></m:Status>
    <m:Unknown><m:Nested/></m:Unknown><m:MessageID>0412345678</m:MessageID></m:SubmitRsp></SOAP-ENV:Body>
</SOAP-ENV:Envelope>"#
            ),
        );
        xml(
            "bare-error-rsp",
            format!(
                r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><RSErrorRsp xmlns="{NS5}"><MM7Version>5.3.0</MM7Version><Status><StatusCode>4006</StatusCode><StatusText>Service unavailable</StatusText><Details><a>x</a> y</Details></Status></RSErrorRsp></s:Body></s:Envelope>"#
            ),
        );
        xml(
            "report-timestamp-cdata-refs",
            format!(
                r#"<Envelope><Header><TransactionID>t&amp;1&#x41;</TransactionID></Header><Body><DeliveryReportReq xmlns="{NS5}"><MessageID><![CDATA[id<1>]]></MessageID><Recipient><Number>1</Number></Recipient><TimeStamp>2026-01-01T00:00:00+02:00</TimeStamp><MMStatus>unrecognized</MMStatus></DeliveryReportReq></Body></Envelope>"#
            ),
        );
        // Hostile XML: every shape must be refused, never expanded.
        let hostile = [
            ("xxe-file", r#"<?xml version="1.0"?><!DOCTYPE e [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><Envelope><Body><X>&xxe;</X></Body></Envelope>"#.to_owned()),
            ("xxe-parameter", r#"<!DOCTYPE e [<!ENTITY % p SYSTEM "http://127.0.0.1/e.dtd"> %p;]><Envelope/>"#.to_owned()),
            ("billion-laughs", format!(
                "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">{}]><Envelope><Body><X>&lol9;</X></Body></Envelope>",
                (1..10).map(|i| format!("<!ENTITY lol{i} \"{}\">", format!("&lol{};", if i == 1 { String::new() } else { (i - 1).to_string() }).repeat(10))).collect::<String>()
            )),
            ("undeclared-entity", "<Envelope><Body><X>&xxe;</X></Body></Envelope>".to_owned()),
            ("deep", "<a>".repeat(100) + &"</a>".repeat(100)),
            ("many-nodes", format!("<Envelope><Body>{}</Body></Envelope>", "<x/>".repeat(3000))),
            ("char-refs", "<Envelope><Body><DeliverReq><Sender>&#0;&#xD800;&#1114112;</Sender></DeliverReq></Body></Envelope>".to_owned()),
        ];
        for (name, body) in hostile {
            xml(name, body);
        }
        let deliver_mp = format!(
            "preamble\n--outer\nContent-Type: multipart/related; type=\"application/smil\"; boundary=\"in;ner\"\nContent-ID: <content-1>\n\n--in;ner\nContent-Type: application/smil\nContent-ID: <smil>\n\n<smil/>\n--in;ner\nContent-Type: text/plain; charset=utf-16\nContent-Transfer-Encoding: base64\n\n/v8AUwBUAE8AUAAgJxM=\n--in;ner\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\ncaf=E9 =\nok\n--in;ner--\n\n--outer\nContent-Type: text/xml\nContent-ID: <soap-1>\n\n<env:Envelope xmlns:env=\"http://schemas.xmlsoap.org/soap/envelope/\"><env:Header><mm7:TransactionID xmlns:mm7=\"{NS6}\">mo-9</mm7:TransactionID></env:Header><env:Body><mm7:DeliverReq xmlns:mm7=\"{NS6}\"><mm7:MM7Version>6.8.0</mm7:MM7Version><mm7:LinkedID>L-1</mm7:LinkedID><mm7:Sender><mm7:Number>+15551230001</mm7:Number></mm7:Sender><mm7:Recipients><mm7:To><mm7:ShortCode>12345</mm7:ShortCode></mm7:To><mm7:Cc><mm7:Number>+1999</mm7:Number></mm7:Cc></mm7:Recipients><mm7:Subject>hi</mm7:Subject><mm7:Content href=\"cid:content-1\" allowAdaptations=\"true\"/></mm7:DeliverReq></env:Body></env:Envelope>\n--outer--\nepilogue"
        );
        let ct = "Multipart/Related; boundary=\"outer\"; type=text/xml; start=\"<soap-1>\"";
        put(
            "mm7_soap",
            "deliver-nested-lf",
            with_ct(ct, deliver_mp.as_bytes()),
        );
        put(
            "mm7_mime",
            "deliver-nested-lf",
            with_ct(ct, deliver_mp.as_bytes()),
        );
        put(
            "mm7_soap",
            "multipart-as-text-xml",
            with_ct(
                "text/xml",
                deliver_mp.trim_start_matches("preamble\n").as_bytes(),
            ),
        );
        put(
            "mm7_mime",
            "crlf-qp-base64",
            with_ct(
                "multipart/mixed; boundary=b",
                b"--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\nContent-Location: a%20b.txt\r\n\r\nsoft=\r\nbreak =3D\r\n--b\r\nContent-ID: <x%y>\r\nContent-Transfer-Encoding: base64\r\n\r\naGVs\r\nbG8=\r\n--b\r\n\r\nno headers\r\n--b--\r\n",
            ),
        );
        put(
            "mm7_mime",
            "truncated",
            with_ct(
                "multipart/related; boundary=b",
                b"--b\r\nContent-Type: text/plain\r\n\r\nhal",
            ),
        );

        // Callbacks: flags (bits 0-1 method, 2-3 auth, 4 failing handler),
        // Content-Type line, Authorization line, body.
        let right = Credentials::new("mmsc", "s3cret").header_value();
        let cb = |name: &str, flags: u8, e: &sluice::mm7::soap::Encoded, auth: &str| {
            put(
                "mm7_callback",
                name,
                cat(&[
                    &[flags],
                    e.content_type.as_bytes(),
                    b"\n",
                    auth.as_bytes(),
                    b"\n",
                    &e.body,
                ]),
            );
        };
        let rep = report(Version::Rel6Mm7_1_4, MmStatus::Retrieved).encode();
        cb("report", 1 << 2, &rep, "");
        cb("report-fuzzed-auth", 2 << 2, &rep, &right);
        cb("report-upper-scheme", 3 << 2, &rep, "");
        cb("report-handler-fails", (1 << 2) | 0x10, &rep, "");
        cb("report-no-auth", 0, &rep, "");
        cb("report-wrong-auth", 2 << 2, &rep, "Basic bW1zYzp3cm9uZw==");
        cb("report-get", 2 | (1 << 2), &rep, "");
        cb("deliver", 1 << 2, &deliver.encode(), "");
        cb("submit-unsupported", 1 << 2, &encoded[0].1, "");
        let garbage = sluice::mm7::soap::Encoded {
            content_type: "text/xml".into(),
            body: Bytes::from_static(b"<Envelope><Body><DeliveryReportReq/></Body></Envelope>"),
        };
        cb("invalid", 1 << 2, &garbage, "");
    }

    // === disk ===

    fn message(id: u64, text: &str, from: Sender) -> Message {
        Message {
            id: MessageId(id),
            tenant: "acme".into(),
            client_ref: format!("order-{id}").into(),
            to: Msisdn::parse("+14155550100").unwrap(),
            from,
            text: text.into(),
            media: Box::default(),
            channel: ChannelPref::Auto,
            fallback: FallbackPolicy::SmsWithLink,
            campaign_id: "bf".into(),
            expires_at_ms: 1_800_000_000_000,
            priority: Priority::Marketing,
            tags: Box::new(["a".into()]),
            accepted_at_ms: 1_700_000_000_000,
            auto_reply: false,
            mms: None,
        }
    }

    fn messages() -> Vec<Message> {
        vec![
            message(1, "hello", Sender::ShortCode("12345".into())),
            Message {
                media: Box::new(["ab".repeat(32).into()]),
                mms: Some(Box::new(sluice::model::MmsFields {
                    subject: Some("pic".into()),
                    ..Default::default()
                })),
                channel: ChannelPref::Mms,
                priority: Priority::Transactional,
                ..message(
                    2,
                    "ünïcödé",
                    Sender::LongCode(Msisdn::parse("+14155550199").unwrap()),
                )
            },
            Message {
                fallback: FallbackPolicy::None,
                auto_reply: true,
                mms: None,
                ..message(3, "", Sender::Alphanumeric("Sluice".into()))
            },
        ]
    }

    /// Converts a framed segment into the structured mode's
    /// `[kind][len u16][payload]` chunks.
    fn unframe(seg: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut off = 0;
        while off + 9 <= seg.len() {
            let len = u32::from_le_bytes(seg[off..off + 4].try_into().unwrap()) as usize;
            let payload = &seg[off + 9..off + 8 + len];
            out.push(seg[off + 8]);
            out.extend_from_slice(&(payload.len().min(65535) as u16).to_le_bytes());
            out.extend_from_slice(&payload[..payload.len().min(65535)]);
            off += 8 + len;
        }
        out
    }

    async fn journal() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = sluice::config::JournalConfig::default();
        let (j, _) = Journal::open(dir.path(), &cfg).unwrap();
        let ms = messages();
        j.accept(&ms).wait().await.unwrap();
        j.written("smsc", [(MessageId(1), 0, 2), (MessageId(1), 1, 2)])
            .wait()
            .await
            .unwrap();
        j.written("mmsc", [(MessageId(2), 0, 1)])
            .wait()
            .await
            .unwrap();
        j.submitted([(MessageId(1), 0, "a0000001"), (MessageId(1), 1, "a0000002")]);
        j.undispatch([MessageId(2)]);
        let ev = PendingEvent {
            event_id: 5,
            message_id: MessageId(3),
            tenant: "acme".into(),
            payload: Bytes::from_static(b"\x08\x01"),
            sink: String::new(),
            created_ms: 0,
        };
        j.events([&ev]).wait().await.unwrap();
        j.event_ack(&[5]);
        let ids = ["a0000001".to_owned(), String::new()];
        j.carry([CarriedMessage {
            message: &ms[0],
            carrier: Some("smsc"),
            parts: 2,
            carrier_ids: &ids,
            written: true,
        }])
        .wait()
        .await
        .unwrap();
        j.remember([("acme", "order-9", MessageId(9), 1_700_000_000_000)])
            .wait()
            .await
            .unwrap();
        j.opt_change(&OptChange {
            number: 14155550100,
            scope: "program:acme:alerts".into(),
            opted_out: true,
            source: "sms".into(),
            keyword: "STOP".into(),
            sender: "12345".into(),
            carrier: "smsc".into(),
            at_ms: 1_700_000_000_000,
            origin: String::new(),
        })
        .wait()
        .await
        .unwrap();
        drop(j);
        let mut segs: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        segs.sort();
        let seg = std::fs::read(&segs[0]).unwrap();
        put("journal_replay", "segment", cat(&[&[0], &seg]));
        put(
            "journal_replay",
            "torn-tail",
            cat(&[&[0], &seg[..seg.len() - 5]]),
        );
        put("journal_replay", "records", cat(&[&[1], &unframe(&seg)]));
        // Records framed right that say the wrong things.
        put(
            "journal_replay",
            "unknown-kind",
            cat(&[&[1], &[6, 2, 0, 8, 1]]),
        );
        put(
            "journal_replay",
            "huge-ids",
            cat(&[
                &[1],
                &[
                    2, 13, 0, 10, 11, 8, 255, 255, 255, 255, 255, 255, 255, 255, 255, 1, 7, 8, 255,
                    255, 255, 255, 255, 255, 255, 255, 255, 1,
                ],
            ]),
        );
    }

    fn spill() {
        let dir = tempfile::tempdir().unwrap();
        let s = sluice::spill::Spill::open(dir.path(), 1 << 20).unwrap();
        let ms: Vec<Arc<Message>> = messages()
            .into_iter()
            .map(|mut m| {
                m.priority = Priority::Marketing;
                Arc::new(m)
            })
            .collect();
        s.push(&ms).unwrap();
        let file = std::fs::read(dir.path().join("00000000.spill")).unwrap();
        put("spill_read", "batch", cat(&[&[0, 2], &file]));
        let mut payload = BytesMut::new();
        sluice::journal::encode_messages(&mut payload, ms.iter().map(|m| &**m));
        put("spill_read", "payload", cat(&[&[1, 2], &payload]));
        put("spill_read", "count-mismatch", cat(&[&[1, 0], &payload]));
    }

    fn history() {
        use sluice::history::record::{self, Record, Step};
        use sluice::model::DeliveryState;
        let r = |step| Record {
            id: MessageId(42),
            at_ms: 1_733_330_000_123,
            step,
        };
        let steps = vec![
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
                part: 0,
                carrier: "smsc-a".into(),
                carrier_id: "1a2b3c".into(),
            }),
            r(Step::PartFailed {
                part: 2,
                state: DeliveryState::Rejected,
                code: 0x45,
                reason: "carrier refused: ESME_RSUBMITFAIL".into(),
            }),
            r(Step::Receipt {
                part: 0,
                state: DeliveryState::Delivered,
                code: 0,
                stat: "DELIVRD".into(),
            }),
            r(Step::Requeued {
                reason: "failover".into(),
            }),
            r(Step::Fallback {
                how: "with a link".into(),
                reason: "not reachable by MMS".into(),
            }),
            r(Step::Final {
                state: DeliveryState::Delivered,
                code: 0,
                carrier: "smsc-a".into(),
                reason: "DELIVRD".into(),
            }),
            r(Step::EventAcked {
                event_id: 7,
                sink: String::new(),
            }),
        ];
        let mut body = Vec::new();
        for s in &steps {
            record::encode(&mut body, s);
        }
        put("history_segment", "records", cat(&[&[0], &body]));
        put(
            "history_segment",
            "file",
            cat(&[&[1], &record::MAGIC[..], &body]),
        );
        put(
            "history_segment",
            "torn",
            cat(&[&[0], &body[..body.len() - 3]]),
        );
        let mut bad_state = Vec::new();
        record::encode(&mut bad_state, &steps[5]);
        bad_state[2 + 1 + 16 + 2] = 0xff;
        put("history_segment", "bad-state", cat(&[&[0], &bad_state]));
    }

    fn dedupe() {
        let hour_ms = 3_600_000u64;
        let now = 100 * hour_ms;
        let dir = tempfile::tempdir().unwrap();
        let log = DedupeLog::open(dir.path()).unwrap();
        log.append(&[
            (1, 10, now - 1000),
            (u128::MAX, 30, now),
            (7, 7, now - 2000),
        ])
        .unwrap();
        let file = std::fs::read(dir.path().join(format!("{:010}.log", now / hour_ms - 1)))
            .or_else(|_| std::fs::read(dir.path().join(format!("{:010}.log", now / hour_ms))))
            .unwrap();
        let head = |hour: u64, mode: u8| {
            cat(&[
                &hour.to_le_bytes(),
                &now.to_le_bytes(),
                &(24 * hour_ms).to_le_bytes(),
                &[mode],
            ])
        };
        put("dedupe_log", "file", cat(&[&head(99, 0), &file]));
        put(
            "dedupe_log",
            "torn",
            cat(&[&head(99, 0), &file, &[5, 0, 0, 0, 1, 2, 3]]),
        );
        let entries: Vec<u8> = file[8..].to_vec();
        put("dedupe_log", "entries", cat(&[&head(99, 3), &entries]));
        put("dedupe_log", "old-hour", cat(&[&head(10, 1), &entries]));
    }

    // === policy inputs ===

    fn optout() {
        let files: [(&str, &[u8]); 6] = [
            ("plain", b"+14155550100\n+14155550101,program:acme:alerts\n"),
            ("header-crlf-bom", b"\xEF\xBB\xBFnumber,scope\r\n+14155550100,tenant:acme\r\n\r\n  +447700900123 , global \r\n"),
            ("quotes", b"\"+14155550100\",\"program \"\"a\"\"\"\n\"+14155550101\" , x\n\"unbalanced,1\n\"+14155550102\"x,1\n"),
            ("bad-rows", b"(415) 555-0100\n1.41555E+10\n+1415555010,a,b,c\n+14155550100,,\n\xFF\xFE\n0123456789\n"),
            ("long-line", b"+14155550100,aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n+14155550101"),
            ("scope-with-cr", b"+14155550100,a\rb\n+14155550101,\"c,d\"\n"),
        ];
        for (i, (name, body)) in files.iter().enumerate() {
            put("optout_import", name, cat(&[&[i as u8 * 37], body]));
        }
    }

    fn landing() {
        // flags: bits 0-1 method, 2 signed, 3 raw, 4 If-None-Match, 5
        // If-Range; media pick; path line; Range line; If-None-Match line.
        let seeds: [(&str, u8, u8, &str); 12] = [
            ("page-text", 4, 0, "\n\n"),
            ("page-gif-head", 4 | 1, 1, "\n\n"),
            ("raw-whole", 4 | 8, 1, "\n\n"),
            ("raw-range", 4 | 8, 1, "\nbytes=0-1\n"),
            ("raw-open-range", 4 | 8, 1, "\nbytes=10-\n"),
            ("raw-suffix", 4 | 8, 1, "\nbytes=-5\n"),
            ("raw-unsatisfiable", 4 | 8, 0, "\nbytes=99999-\n"),
            ("raw-multi", 4 | 8, 1, "\nbytes=0-0,2-3\n"),
            ("raw-not-modified", 4 | 8 | 0x10, 1, "\n\n"),
            ("raw-if-range", 4 | 8 | 0x20, 1, "\nbytes=5-2\n"),
            ("post", 4 | 2, 0, "\n\n"),
            (
                "unsigned",
                8,
                0,
                "/m/000000000000004d/0000000000000000000000000000000000000000000000000000000000000000/aaaaaaaaaaaaaaaaaaaaaaaaaa\nbytes=0-1\nW/\"x\", *\n",
            ),
        ];
        for (name, flags, pick, rest) in seeds {
            put(
                "landing_page",
                name,
                cat(&[&[flags, pick], rest.as_bytes()]),
            );
        }
    }

    fn keywords() {
        let seeds: [(&str, u8, &str, &str); 10] = [
            ("stop", 0, "", "STOP"),
            ("stop-all", 1, "", "  stop   all "),
            ("edges", 0, "", "¡STOP! 🛑"),
            ("fullwidth", 0, "", "ＳＴＯＰ"),
            ("not-a-keyword", 0, "", "Stop please"),
            ("custom-french", 0, "ARRET", "arret."),
            ("custom-phrase", 0, "STOP PLEASE", "stop please"),
            ("weaken", 2, "STOP", "stop"),
            ("dash", 0, "", "OPT–OUT"),
            ("sharp-s", 3, "HILFE ß", "hilfe SS"),
        ];
        for (name, kind, word, text) in seeds {
            put(
                "keywords",
                name,
                cat(&[&[kind], word.as_bytes(), &[0], text.as_bytes()]),
            );
        }
    }

    fn config() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for name in ["sluice.toml", "local.toml"] {
            if let Ok(text) = std::fs::read(root.join("deploy").join(name)) {
                put("config", name, text);
            }
        }
        let small = [
            ("empty", ""),
            (
                "tenant",
                "[[tenants]]\nname = \"acme\"\ntoken = \"change-me-acme-token\"\nsenders = [\"12345\"]\nquiet_hours = \"21:00-08:00\"\n",
            ),
            ("bad-duration", "[ingest]\nhello_timeout = \"10 parsecs\"\n"),
            ("unknown-key", "nope = 1\n"),
        ];
        for (name, text) in small {
            put("config", name, text);
        }
    }
}
