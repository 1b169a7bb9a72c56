//! Tests of the MM7 codec (schema validation with xmllint — skipped, and
//! said so, where it is not installed — round trips,
//! hand-written messages from other implementations, malformed input) and
//! of the receiver over real HTTP.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::mime::{self, ContentType, MimeError, Part};
use super::soap::{format_date_time, parse_date_time};
use super::status::{self, Class, classify, classify_http};
use super::*;

// === helpers ===

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mm7")
}

/// True when xmllint is on PATH. Without it the schema checks are skipped
/// and the test says so (`crate::external`); under `.ci/run`
/// (`SLUICE_REQUIRE_EXTERNAL=1`) a missing xmllint fails the test.
fn xmllint() -> bool {
    crate::external::require(&[&crate::external::XMLLINT])
}

/// [`validate`], panicking on an invalid document, when xmllint is here.
fn schema_check(schema: &str, xml: &str) {
    if xmllint() {
        validate(schema, xml).unwrap();
    }
}

/// Validates `xml` against `tests/data/mm7/<schema>.xsd` with xmllint,
/// offline (`--nonet`), the SOAP envelope schema mapped to the local copy
/// by a temporary XML catalog. Call [`xmllint`] first.
fn validate(schema: &str, xml: &str) -> Result<(), String> {
    assert!(
        crate::external::have(&crate::external::XMLLINT),
        "validate() without xmllint: guard the test with xmllint()"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let envelope_xsd = data_dir().join("soapEnvelope.xsd");
    let catalog = dir.path().join("catalog.xml");
    let target = format!("file://{}", envelope_xsd.display());
    std::fs::write(
        &catalog,
        format!(
            r#"<?xml version="1.0"?>
<catalog xmlns="urn:oasis:names:tc:entity:xmlns:xml:catalog">
  <system systemId="http://schemas.xmlsoap.org/soap/envelope/" uri="{target}"/>
  <uri name="http://schemas.xmlsoap.org/soap/envelope/" uri="{target}"/>
</catalog>
"#
        ),
    )
    .expect("write catalog");
    let doc = dir.path().join("doc.xml");
    std::fs::write(&doc, xml).expect("write document");
    let out = Command::new("xmllint")
        .env("XML_CATALOG_FILES", &catalog)
        .arg("--nonet")
        .arg("--noout")
        .arg("--schema")
        .arg(data_dir().join(format!("{schema}.xsd")))
        .arg(&doc)
        .output()
        .expect("run xmllint");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("Skipping the import") && !stderr.contains("network entity"),
        "the SOAP envelope schema was not resolved through the catalog: {stderr}"
    );
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}\n--- document ---\n{xml}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn recipients() -> Vec<Address> {
    vec![
        Address::Number("+15551230001".into()),
        Address::Number("+15551230002".into()),
    ]
}

const JPEG: &[u8] = b"\xFF\xD8\xFF\xE0\x00\x10JFIF\x00\r\n--not-a-boundary\r\n\x00\xFF\xD9";

fn submit_req<'a>(
    version: Version,
    recipients: &'a [Address],
    sender: &'a Address,
    media: &'a [MediaPart<'a>],
) -> SubmitReq<'a> {
    SubmitReq {
        transaction_id: "tx-1 <&>",
        version,
        vasp_id: Some("vasp"),
        vas_id: Some("vas"),
        sender: Some(sender),
        recipients,
        recipient_field: RecipientField::To,
        reply_charging: None,
        service_code: Some("svc"),
        linked_id: Some("linked-1"),
        message_class: Some(MessageClass::Informational),
        time_stamp: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
        expiry: Some(Expiry::Relative(Duration::from_secs(3600))),
        delivery_report: true,
        priority: Some(Priority::Normal),
        subject: Some("Hello & <welcome>"),
        text: "Hi there ✓ — 10% off",
        media,
        media_encoding: MediaEncoding::Binary,
        presentation: Presentation::None,
        earliest_delivery: None,
        read_reply: None,
        charged_party: None,
        distribution_indicator: None,
    }
}

fn image() -> Vec<MediaPart<'static>> {
    vec![MediaPart {
        content_type: "image/jpeg",
        content_id: "img1@sluice",
        bytes: Bytes::from_static(JPEG),
    }]
}

/// The SOAP part of an encoded multipart body.
fn soap_part(enc: &Encoded) -> String {
    let ct = ContentType::parse(&enc.content_type);
    let parts = mime::parse_multipart(&enc.body, ct.param("boundary").unwrap()).unwrap();
    String::from_utf8(parts[0].body.to_vec()).unwrap()
}

fn text_of(enc: &Encoded) -> String {
    String::from_utf8(enc.body.to_vec()).unwrap()
}

// === schema validation ===

#[test]
fn submit_req_validates_against_every_schema() {
    if !xmllint() {
        return;
    }
    let to = recipients();
    let from = Address::ShortCode("12345".into());
    let media = image();
    for v in Version::ALL {
        let enc = submit_req(v, &to, &from, &media).encode();
        let xml = soap_part(&enc);
        assert!(xml.contains(&format!("<MM7Version>{}</MM7Version>", v.mm7_version())));
        assert!(xml.contains(v.namespace()));
        validate(v.name(), &xml).unwrap_or_else(|e| panic!("{v}: {e}"));
        // The minimal request too (no optional element).
        let minimal = SubmitReq {
            transaction_id: "t",
            version: v,
            recipients: &to,
            text: "x",
            ..SubmitReq::default()
        };
        validate(v.name(), &minimal.envelope()).unwrap_or_else(|e| panic!("{v} minimal: {e}"));
        // And an absolute expiry and an e-mail sender.
        let email = Address::Email("news@example.com".into());
        let abs = SubmitReq {
            expiry: Some(Expiry::Absolute(
                UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            )),
            sender: Some(&email),
            ..minimal
        };
        validate(v.name(), &abs.envelope()).unwrap_or_else(|e| panic!("{v} absolute: {e}"));
        // Several recipients under Bcc.
        let bcc = SubmitReq {
            recipient_field: RecipientField::Bcc,
            ..minimal
        };
        let xml = bcc.envelope();
        assert!(xml.contains("<Recipients><Bcc>"), "{xml}");
        validate(v.name(), &xml).unwrap_or_else(|e| panic!("{v} bcc: {e}"));
    }
}

#[test]
fn the_validator_rejects_what_the_schema_forbids() {
    if !xmllint() {
        return;
    }
    // Guards the catalog set-up: if the schema were not really applied,
    // every test above would pass vacuously.
    let to = recipients();
    let req = SubmitReq {
        transaction_id: "t",
        version: Version::Rel6Mm7_1_4,
        recipients: &to,
        subject: Some("s"),
        ..SubmitReq::default()
    };
    let good = req.envelope();
    validate("REL-6-MM7-1-4", &good).unwrap();
    // Subject before DeliveryReport is out of sequence.
    let swapped = good
        .replace("<DeliveryReport>false</DeliveryReport>", "")
        .replace(
            "<Subject>s</Subject>",
            "<Subject>s</Subject><DeliveryReport>false</DeliveryReport>",
        );
    assert!(validate("REL-6-MM7-1-4", &swapped).is_err());
    // A REL-5 schema does not accept 6.8.0.
    let wrong_version = good.replace("REL-6-MM7-1-4", "REL-5-MM7-1-2");
    assert!(validate("REL-5-MM7-1-2", &wrong_version).is_err());
    // The envelope itself is checked (imported schema resolved offline).
    let bad_env = good.replace("env:mustUnderstand=\"1\"", "env:mustUnderstand=\"yes\"");
    assert!(validate("REL-6-MM7-1-4", &bad_env).is_err());
}

#[test]
fn responses_validate_against_every_schema() {
    if !xmllint() {
        return;
    }
    for v in Version::ALL {
        let dr = Rsp::delivery_report("tx-9", v, Status::success()).encode();
        validate(v.name(), &text_of(&dr)).unwrap_or_else(|e| panic!("{v} DeliveryReportRsp: {e}"));
        assert!(text_of(&dr).contains("<mm7:TransactionID"));
        assert!(text_of(&dr).contains(">tx-9</mm7:TransactionID>"));

        let d = Rsp::deliver("tx-10", v, Status::success()).encode();
        validate(v.name(), &text_of(&d)).unwrap_or_else(|e| panic!("{v} DeliverRsp: {e}"));

        let s = SubmitRsp {
            transaction_id: "tx-11".into(),
            version: Some(v),
            mm7_version: String::new(),
            status: Status::success(),
            message_id: Some("M1".into()),
        }
        .encode();
        validate(v.name(), &text_of(&s)).unwrap_or_else(|e| panic!("{v} SubmitRsp: {e}"));

        for kind in [ErrorRspKind::Rs, ErrorRspKind::Vasp] {
            let f = Fault::new(
                Some("tx-12"),
                v,
                kind,
                Status::new(status::VALIDATION_ERROR).with_details("line 3: <oops> & more"),
            )
            .encode();
            validate(v.name(), &text_of(&f)).unwrap_or_else(|e| panic!("{v} Fault: {e}"));
        }
    }
}

#[test]
fn callbacks_validate_against_every_schema() {
    if !xmllint() {
        return;
    }
    let statuses = [
        MmStatus::Retrieved,
        MmStatus::Rejected,
        MmStatus::Expired,
        MmStatus::Indeterminate,
        MmStatus::Forwarded,
        MmStatus::Unrecognised,
        MmStatus::Deferred,
        MmStatus::DeliveryConditionNotMet,
    ];
    for v in Version::ALL {
        for s in &statuses {
            let r = DeliveryReportReq {
                transaction_id: "dr-1".into(),
                version: Some(v),
                message_id: "M1".into(),
                recipient: Address::Number("+15551230001".into()),
                sender: Address::ShortCode("12345".into()),
                date: Some("2024-05-06T07:08:09Z".into()),
                mm_status: s.clone(),
                status_text: Some("ok".into()),
                relay_server_id: Some("mmsc".into()),
                ..DeliveryReportReq::default()
            };
            let xml = text_of(&r.encode());
            assert!(xml.contains(&format!("<{}>", v.delivery_report_date_element())));
            validate(v.name(), &xml).unwrap_or_else(|e| panic!("{v} {s}: {e}"));
        }
        let d = DeliverReq {
            transaction_id: "mo-1".into(),
            version: Some(v),
            linked_id: Some("L1".into()),
            sender: Address::Number("+15551230001".into()),
            recipients: vec![Address::ShortCode("12345".into())],
            time_stamp: Some("2024-05-06T07:08:09Z".into()),
            subject: Some("re".into()),
            text: "STOP".into(),
            ..DeliverReq::default()
        };
        let enc = d.encode();
        validate(v.name(), &soap_part(&enc)).unwrap_or_else(|e| panic!("{v} DeliverReq: {e}"));
    }
}

/// The strict check of an encoded body: every leaf part holds only what its
/// `Content-Transfer-Encoding` allows unencoded (RFC 2045: none declared
/// means 7bit), and the SOAP part validates against `v`'s schema.
fn strict_check(v: Version, enc: &Encoded) -> Result<(), String> {
    fn leaves(p: &Part, out: &mut Vec<Part>) -> Result<(), String> {
        let ct = p.content_type();
        if !ct.is_multipart() {
            out.push(p.clone());
            return Ok(());
        }
        let boundary = ct.param("boundary").ok_or("multipart without boundary")?;
        for inner in mime::parse_multipart(&p.body, boundary).map_err(|e| e.to_string())? {
            leaves(&inner, out)?;
        }
        Ok(())
    }
    let ct = ContentType::parse(&enc.content_type);
    let top = mime::parse_multipart(&enc.body, ct.param("boundary").ok_or("no boundary")?)
        .map_err(|e| e.to_string())?;
    let mut all = Vec::new();
    for p in &top {
        leaves(p, &mut all)?;
    }
    for p in &all {
        let header = p.header("content-transfer-encoding");
        let declared = mime::TransferEncoding::declared(header)
            .ok_or_else(|| format!("unexpected transfer encoding {header:?}"))?;
        let needed = mime::TransferEncoding::of(&p.body);
        if needed > declared {
            return Err(format!(
                "part {:?} holds {} data but declares {}",
                p.content_id(),
                needed.as_str(),
                declared.as_str()
            ));
        }
    }
    if xmllint() {
        validate(v.name(), &soap_part(enc))?;
    }
    Ok(())
}

#[test]
fn transfer_encodings_follow_rfc_2045() {
    use mime::TransferEncoding as Te;
    assert_eq!(Te::of(b""), Te::SevenBit);
    assert_eq!(Te::of(b"plain\r\nlines\r\n"), Te::SevenBit);
    assert_eq!(Te::of("Gr\u{fc}\u{df}e".as_bytes()), Te::EightBit);
    assert_eq!(Te::of(b"bare\nfeed"), Te::Binary);
    assert_eq!(Te::of(b"bare\rreturn"), Te::Binary);
    assert_eq!(Te::of(b"nul\0"), Te::Binary);
    assert_eq!(Te::of(&[b'x'; 998]), Te::SevenBit);
    assert_eq!(Te::of(&[b'x'; 999]), Te::Binary);
    let mut two_lines = vec![b'x'; 998];
    two_lines.extend_from_slice(b"\r\n");
    two_lines.extend_from_slice(&[b'y'; 998]);
    assert_eq!(Te::of(&two_lines), Te::SevenBit);
    assert_eq!(Te::declared(None), Some(Te::SevenBit));
    assert_eq!(Te::declared(Some(" 8BIT ")), Some(Te::EightBit));
    assert_eq!(Te::declared(Some("binary")), Some(Te::Binary));
    assert_eq!(Te::declared(Some("base64")), None);
}

#[test]
fn non_ascii_subjects_are_declared_and_pass_the_strict_check_in_every_version() {
    let to = [Address::Number("+15551230001".into())];
    let from = Address::ShortCode("12345".into());
    let media = image();
    let long: String = "Grüße ✓ ".repeat(24) + "Ende";
    for v in Version::ALL {
        for subject in ["Grüße — 20 % Rabatt ✓", "😀", long.as_str()] {
            let req = SubmitReq {
                transaction_id: "t-utf8",
                version: v,
                recipients: &to,
                sender: Some(&from),
                subject: Some(subject),
                text: "Schöne Tage\nund mehr",
                media: &media,
                ..SubmitReq::default()
            };
            let enc = req.encode();
            strict_check(v, &enc).unwrap_or_else(|e| panic!("{v} {subject:?}: {e}"));
            let Message::SubmitReq(back) = decode(Some(&enc.content_type), &enc.body).unwrap()
            else {
                panic!("not a SubmitReq")
            };
            assert_eq!(back.subject.as_deref(), Some(subject));
            assert_eq!(back.text, "Schöne Tage\nund mehr");
        }
        // An ASCII envelope short enough for 7bit keeps its header block.
        let plain = SubmitReq {
            transaction_id: "t",
            version: v,
            recipients: &to,
            subject: Some("Hello"),
            text: "x",
            ..SubmitReq::default()
        }
        .encode();
        strict_check(v, &plain).unwrap_or_else(|e| panic!("{v} ascii: {e}"));
        let soap_headers = text_of(&plain);
        let soap_headers = soap_headers.split("<?xml").next().unwrap();
        assert!(
            !soap_headers.contains("Content-Transfer-Encoding"),
            "{soap_headers}"
        );
        // A DeliverReq (what the simulator sends) with an accented subject too.
        let d = DeliverReq {
            transaction_id: "mo-utf8".into(),
            version: Some(v),
            sender: Address::Number("+15551230001".into()),
            recipients: vec![Address::ShortCode("12345".into())],
            subject: Some("Réponse".into()),
            text: "ARRÊT".into(),
            ..DeliverReq::default()
        };
        strict_check(v, &d.encode()).unwrap_or_else(|e| panic!("{v} DeliverReq: {e}"));
    }
}

// === encoding ===

#[test]
fn submit_req_layout() {
    let to = recipients();
    let from = Address::ShortCode("12345".into());
    let media = image();
    let req = submit_req(Version::Rel6Mm7_1_4, &to, &from, &media);
    let enc = req.encode();
    let ct = ContentType::parse(&enc.content_type);
    assert_eq!(ct.mime, "multipart/related");
    assert_eq!(ct.param("type"), Some("text/xml"));
    assert_eq!(ct.param("start"), Some("<mm7-soap@sluice>"));
    let parts = mime::parse_multipart(&enc.body, ct.param("boundary").unwrap()).unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].content_id(), Some("mm7-soap@sluice"));
    assert_eq!(
        parts[0].header("content-type"),
        Some("text/xml; charset=utf-8")
    );
    let xml = String::from_utf8(parts[0].body.to_vec()).unwrap();
    assert!(xml.contains(r#"<Content href="cid:mm7-content@sluice"/>"#));
    assert!(xml.contains(r#"env:mustUnderstand="1""#));
    assert!(xml.contains("<Subject>Hello &amp; &lt;welcome&gt;</Subject>"));
    assert!(xml.contains("<TimeStamp>2023-11-14T22:13:20Z</TimeStamp>"));
    assert!(xml.contains("<ExpiryDate>PT3600S</ExpiryDate>"));
    assert_eq!(parts[1].content_id(), Some("mm7-content@sluice"));
    assert_eq!(parts[1].content_type().mime, "multipart/mixed");
    let leaves = mime::leaves(parts[1].clone()).unwrap();
    assert_eq!(leaves.len(), 2);
    assert_eq!(leaves[0].content_type().mime, "text/plain");
    assert_eq!(leaves[0].text(), "Hi there ✓ — 10% off");
    assert_eq!(leaves[1].header("content-type"), Some("image/jpeg"));
    assert_eq!(leaves[1].content_id(), Some("img1@sluice"));
    assert_eq!(
        leaves[1].header("content-transfer-encoding"),
        Some("binary")
    );
    assert_eq!(&leaves[1].body[..], JPEG);
    // The length is the body's length (what size limits apply to).
    assert_eq!(enc.len(), enc.body.len());
}

#[test]
fn boundaries_never_occur_in_the_content() {
    // Media that contains text looking like our boundaries.
    let nasty = Bytes::from_static(b"--sluice-rel-0000000000000000\r\n--sluice-mix-");
    let media = [MediaPart {
        content_type: "application/octet-stream",
        content_id: "<x@y>",
        bytes: nasty.clone(),
    }];
    let to = recipients();
    for _ in 0..50 {
        let enc = SubmitReq {
            transaction_id: "t",
            recipients: &to,
            media: &media,
            ..SubmitReq::default()
        }
        .encode();
        let Message::SubmitReq(r) = decode(Some(&enc.content_type), &enc.body).unwrap() else {
            panic!("not a SubmitReq");
        };
        assert_eq!(r.media.len(), 1);
        assert_eq!(r.media[0].body, nasty);
        // Empty text with media: no text part.
        assert_eq!(r.text, "");
    }
}

#[test]
fn header_injection_is_stripped() {
    let media = [MediaPart {
        content_type: "image/png\r\nX-Evil: 1",
        content_id: "a\r\nb",
        bytes: Bytes::from_static(b"png"),
    }];
    let to = recipients();
    let enc = SubmitReq {
        transaction_id: "t",
        recipients: &to,
        text: "t",
        media: &media,
        ..SubmitReq::default()
    }
    .encode();
    let Message::SubmitReq(r) = decode(Some(&enc.content_type), &enc.body).unwrap() else {
        panic!()
    };
    assert_eq!(
        r.media[0].header("content-type"),
        Some("image/pngX-Evil: 1")
    );
    assert!(r.media[0].header("x-evil").is_none());
}

#[test]
fn xml_illegal_characters_are_replaced() {
    let to = recipients();
    let xml = SubmitReq {
        transaction_id: "t\u{1}",
        recipients: &to,
        subject: Some("a\u{0}b\u{1B}c"),
        ..SubmitReq::default()
    }
    .envelope();
    assert!(xml.contains("<Subject>a\u{FFFD}b\u{FFFD}c</Subject>"));
    schema_check("REL-6-MM7-1-4", &xml);
}

// === round trips ===

#[test]
fn submit_req_round_trip() {
    let to = recipients();
    let from = Address::ShortCode("12345".into());
    let media = image();
    for v in Version::ALL {
        let enc = submit_req(v, &to, &from, &media).encode();
        let Message::SubmitReq(r) = decode(Some(&enc.content_type), &enc.body).unwrap() else {
            panic!("not a SubmitReq");
        };
        assert_eq!(r.transaction_id, "tx-1 <&>");
        assert_eq!(r.version, Some(v));
        assert_eq!(r.namespace.as_deref(), Some(v.namespace()));
        assert_eq!(r.mm7_version, v.mm7_version());
        assert_eq!(r.vasp_id.as_deref(), Some("vasp"));
        assert_eq!(r.vas_id.as_deref(), Some("vas"));
        assert_eq!(r.sender, Some(from.clone()));
        assert_eq!(r.recipients, to);
        assert_eq!(r.service_code.as_deref(), Some("svc"));
        assert_eq!(r.linked_id.as_deref(), Some("linked-1"));
        assert!(r.delivery_report);
        assert_eq!(r.expiry.as_deref(), Some("PT3600S"));
        assert_eq!(r.subject.as_deref(), Some("Hello & <welcome>"));
        assert_eq!(r.content_href.as_deref(), Some("cid:mm7-content@sluice"));
        assert_eq!(r.text, "Hi there ✓ — 10% off");
        assert_eq!(r.media.len(), 1);
        assert_eq!(&r.media[0].body[..], JPEG);
        assert_eq!(r.blind, [false, false]);
        // The same recipients under Bcc.
        let enc = SubmitReq {
            recipient_field: RecipientField::Bcc,
            ..submit_req(v, &to, &from, &media)
        }
        .encode();
        let Message::SubmitReq(r) = decode(Some(&enc.content_type), &enc.body).unwrap() else {
            panic!("not a SubmitReq");
        };
        assert_eq!((r.recipients, r.blind), (to.clone(), vec![true, true]));
    }
}

#[test]
fn recipients_under_to_cc_and_bcc_in_any_order_keep_their_field() {
    // The schema's recipientsType is a sequence of To, Cc and Bcc in any
    // order.
    let from = Address::ShortCode("1".into());
    let enc = submit_req(Version::default(), &recipients(), &from, &[]).encode();
    let body = String::from_utf8(enc.body.to_vec()).unwrap().replace(
        "<Recipients><To><Number>+15551230001</Number><Number>+15551230002</Number></To></Recipients>",
        "<Recipients><Bcc><Number>+15551230001</Number></Bcc><To><Number>+15551230002</Number></To><Bcc><Number>+15551230003</Number><Number>+15551230004</Number></Bcc></Recipients>",
    );
    assert!(body.contains("<Bcc>"), "{body}");
    let Message::SubmitReq(r) = decode(Some(&enc.content_type), &Bytes::from(body)).unwrap() else {
        panic!("not a SubmitReq");
    };
    let numbers: Vec<&str> = r.recipients.iter().map(Address::value).collect();
    assert_eq!(
        numbers,
        [
            "+15551230001",
            "+15551230002",
            "+15551230003",
            "+15551230004"
        ]
    );
    assert_eq!(r.blind, [true, false, true, true]);
}

#[test]
fn responses_round_trip() {
    let rsp = SubmitRsp {
        transaction_id: "t1".into(),
        version: Some(Version::Rel5Mm7_1_2),
        mm7_version: "5.3.0".into(),
        status: Status::new(status::PARTIAL_SUCCESS).with_details("one address failed"),
        message_id: Some("ABC".into()),
    };
    let enc = rsp.encode();
    assert_eq!(
        decode(Some(&enc.content_type), &enc.body).unwrap(),
        Message::SubmitRsp(rsp)
    );

    let r = Rsp::deliver("t2", Version::Rel6Mm7_1_1, Status::success());
    let enc = r.encode();
    let Message::Rsp(back) = decode(Some(&enc.content_type), &enc.body).unwrap() else {
        panic!()
    };
    assert_eq!(back.kind, RspKind::Deliver);
    assert_eq!(back.transaction_id, "t2");
    assert_eq!(back.mm7_version, "6.4.0");
    assert_eq!(back.status, Status::success());

    let f = Fault::new(
        Some("t3"),
        Version::Rel6Mm7_1_4,
        ErrorRspKind::Rs,
        Status::new(status::SERVICE_UNAVAILABLE),
    );
    assert_eq!(f.faultcode, "Server");
    let enc = f.encode();
    let Message::Fault(back) = decode(None, &enc.body).unwrap() else {
        panic!()
    };
    assert_eq!(back.transaction_id.as_deref(), Some("t3"));
    assert_eq!(back.faultcode, "env:Server");
    assert_eq!(back.error_rsp, Some(ErrorRspKind::Rs));
    assert_eq!(back.version, Some(Version::Rel6Mm7_1_4));
    assert_eq!(back.status, Some(Status::new(4006)));
}

#[test]
fn delivery_report_and_deliver_round_trip() {
    for v in Version::ALL {
        let r = DeliveryReportReq {
            transaction_id: "dr".into(),
            version: Some(v),
            mm7_version: String::new(),
            relay_server_id: None,
            message_id: "M-1".into(),
            recipient: Address::Number("+15551230001".into()),
            sender: Address::ShortCode("12345".into()),
            date: Some("2024-05-06T07:08:09Z".into()),
            mm_status: MmStatus::Unrecognised,
            status_text: None,
        };
        let enc = r.encode();
        let Message::DeliveryReportReq(back) = decode(Some(&enc.content_type), &enc.body).unwrap()
        else {
            panic!()
        };
        let expected = MmStatus::Unrecognised.for_version(v);
        assert_eq!(back.mm_status, expected, "{v}");
        assert_eq!(back.date.as_deref(), Some("2024-05-06T07:08:09Z"));
        assert_eq!(back.message_id, "M-1");
        assert_eq!(back.mm7_version, v.mm7_version());
    }

    let d = DeliverReq {
        transaction_id: "mo".into(),
        version: Some(Version::Rel5Mm7_1_3),
        sender: Address::Number("+15551230001".into()),
        recipients: vec![Address::ShortCode("12345".into())],
        subject: Some("s".into()),
        text: "Stop".into(),
        media: vec![Part {
            headers: vec![
                ("Content-Type".into(), "image/gif".into()),
                ("Content-ID".into(), "<g1>".into()),
            ],
            body: Bytes::from_static(b"GIF89a"),
        }],
        ..DeliverReq::default()
    };
    let enc = d.encode();
    let Message::DeliverReq(back) = decode(Some(&enc.content_type), &enc.body).unwrap() else {
        panic!()
    };
    assert_eq!(back.text, "Stop");
    assert_eq!(back.sender, d.sender);
    assert_eq!(back.recipients, d.recipients);
    assert_eq!(back.media.len(), 1);
    assert_eq!(back.media[0].content_id(), Some("g1"));
    assert_eq!(&back.media[0].body[..], b"GIF89a");
}

// === decoding what others write ===

const NS6: &str = "http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/REL-6-MM7-1-4";

#[test]
fn decodes_submit_rsp_with_any_prefixes() {
    let xml = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/">
  <SOAP-ENV:Header>
    <x:TransactionID xmlns:x="{NS6}" SOAP-ENV:mustUnderstand="1">abc-123</x:TransactionID>
  </SOAP-ENV:Header>
  <SOAP-ENV:Body>
    <m:SubmitRsp xmlns:m="{NS6}">
      <m:MM7Version>6.8.0</m:MM7Version>
      <m:Status>
        <m:StatusText>Success</m:StatusText>
        <m:StatusCode> 1000 </m:StatusCode>
      </m:Status>
      <m:Unknown><m:Nested/></m:Unknown>
      <m:MessageID>0412345678</m:MessageID>
    </m:SubmitRsp>
  </SOAP-ENV:Body>
</SOAP-ENV:Envelope>"#
    );
    let m = decode(Some("text/xml; charset=\"utf-8\""), &Bytes::from(xml)).unwrap();
    let Message::SubmitRsp(r) = m else {
        panic!("{m:?}")
    };
    assert_eq!(r.transaction_id, "abc-123");
    assert_eq!(r.version, Some(Version::Rel6Mm7_1_4));
    assert_eq!(r.status.code, 1000);
    assert_eq!(r.status.text, "Success");
    assert_eq!(r.message_id.as_deref(), Some("0412345678"));
}

#[test]
fn decodes_unknown_namespace_without_version() {
    let xml = r#"<Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/"><Body>
        <SubmitRsp xmlns="http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/REL-5-MM7-1-0">
        <MM7Version>5.3.0</MM7Version><Status><StatusCode>1000</StatusCode><StatusText>ok</StatusText></Status>
        <MessageID>m</MessageID></SubmitRsp></Body></Envelope>"#;
    let Message::SubmitRsp(r) = decode(None, &Bytes::from_static(xml.as_bytes())).unwrap() else {
        panic!()
    };
    assert_eq!(r.version, None);
    assert_eq!(r.transaction_id, "");
    assert_eq!(r.message_id.as_deref(), Some("m"));
}

#[test]
fn decodes_fault_with_rs_error_rsp() {
    let xml = format!(
        r#"<env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/">
<env:Header><mm7:TransactionID xmlns:mm7="{NS6}" env:mustUnderstand="1">T-77</mm7:TransactionID></env:Header>
<env:Body><env:Fault>
  <faultcode>env:Client</faultcode>
  <faultstring>Address Error</faultstring>
  <detail>
    <RSErrorRsp xmlns="{NS6}">
      <MM7Version>6.8.0</MM7Version>
      <Status><StatusCode>2002</StatusCode><StatusText>Address Error</StatusText>
        <Details><Reason>+1555 is not ours</Reason></Details></Status>
    </RSErrorRsp>
  </detail>
</env:Fault></env:Body></env:Envelope>"#
    );
    let Message::Fault(f) = decode(Some("text/xml"), &Bytes::from(xml)).unwrap() else {
        panic!()
    };
    assert_eq!(f.transaction_id.as_deref(), Some("T-77"));
    assert_eq!(f.faultcode, "env:Client");
    assert_eq!(f.faultstring, "Address Error");
    assert_eq!(f.error_rsp, Some(ErrorRspKind::Rs));
    let s = f.status.unwrap();
    assert_eq!(s.code, 2002);
    assert_eq!(s.details.as_deref(), Some("+1555 is not ours"));
    assert_eq!(s.class(), Class::Permanent);
}

#[test]
fn decodes_bare_error_rsp_and_status_without_wrapper() {
    let xml = format!(
        r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
<VASPErrorRsp xmlns="{NS6}"><MM7Version>6.8.0</MM7Version>
<Status><StatusCode>4006</StatusCode><StatusText>busy</StatusText></Status></VASPErrorRsp>
</s:Body></s:Envelope>"#
    );
    let Message::Fault(f) = decode(None, &Bytes::from(xml)).unwrap() else {
        panic!()
    };
    assert_eq!(f.error_rsp, Some(ErrorRspKind::Vasp));
    assert_eq!(f.status.unwrap().class(), Class::Temporary);

    // A fault whose detail has only StatusCode/StatusText.
    let xml = r#"<Envelope><Body><Fault><faultcode>Server</faultcode><faultstring>x</faultstring>
<detail><StatusCode>3000</StatusCode><StatusText>oops</StatusText></detail></Fault></Body></Envelope>"#;
    let Message::Fault(f) = decode(None, &Bytes::from_static(xml.as_bytes())).unwrap() else {
        panic!()
    };
    assert_eq!(
        f.status,
        Some(Status {
            code: 3000,
            text: "oops".into(),
            details: None
        })
    );
}

#[test]
fn decodes_delivery_report_in_both_date_spellings() {
    for (ns, date_el) in [("REL-5-MM7-1-2", "Date"), ("REL-6-MM7-1-1", "TimeStamp")] {
        let xml = format!(
            r#"<?xml version="1.0"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">
<soap:Header><TransactionID xmlns="http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/{ns}">dr-5</TransactionID></soap:Header>
<soap:Body><DeliveryReportReq xmlns="http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/{ns}">
<MM7Version>5.3.0</MM7Version><MMSRelayServerID>mmsc-1</MMSRelayServerID>
<MessageID>ABC123</MessageID>
<Recipient><Number>+15551230001</Number></Recipient>
<Sender><ShortCode>12345</ShortCode></Sender>
<{date_el}>2024-05-06T07:08:09+02:00</{date_el}>
<MMStatus>Retrieved</MMStatus>
<MMStatusExtension>RejectionByMMSRecipient</MMStatusExtension>
<StatusText>Delivered &amp; read</StatusText>
<UACapabilities UAProf="x"/>
</DeliveryReportReq></soap:Body></soap:Envelope>"#
        );
        let Message::DeliveryReportReq(r) = decode(Some("text/xml"), &Bytes::from(xml)).unwrap()
        else {
            panic!()
        };
        assert_eq!(r.transaction_id, "dr-5");
        assert_eq!(r.version.unwrap().name(), ns);
        assert_eq!(r.relay_server_id.as_deref(), Some("mmsc-1"));
        assert_eq!(r.message_id, "ABC123");
        assert_eq!(r.recipient, Address::Number("+15551230001".into()));
        assert_eq!(r.sender, Address::ShortCode("12345".into()));
        assert_eq!(r.mm_status, MmStatus::Retrieved);
        assert_eq!(r.status_text.as_deref(), Some("Delivered & read"));
        let date = r.date.as_deref().unwrap();
        assert_eq!(
            parse_date_time(date),
            Some(UNIX_EPOCH + Duration::from_secs(1_714_972_089))
        );
    }
}

#[test]
fn mm_status_spellings() {
    assert_eq!(MmStatus::parse("retrieved"), MmStatus::Retrieved);
    assert_eq!(MmStatus::parse(" Unrecognized "), MmStatus::Unrecognised);
    assert_eq!(MmStatus::parse("DeferredRetrieval"), MmStatus::Deferred);
    assert_eq!(MmStatus::parse("Weird"), MmStatus::Other("Weird".into()));
    assert!(!MmStatus::Deferred.is_final());
    assert_eq!(
        MmStatus::DeliveryConditionNotMet.for_version(Version::Rel6Mm7_1_2),
        MmStatus::Indeterminate
    );
    assert_eq!(
        MmStatus::Deferred.for_version(Version::Rel6Mm7_1_1),
        MmStatus::Deferred
    );
}

/// A DeliverReq as an MMSC might write it: LF line ends, a quoted boundary,
/// `start` naming the SOAP part (which comes second), nested
/// multipart/related with SMIL, base64 text in UTF-16 and quoted-printable
/// Latin-1 text.
#[test]
fn decodes_multipart_deliver_req() {
    let utf16: Vec<u8> = [0xFEu8, 0xFF]
        .into_iter()
        .chain("STOP ✓".encode_utf16().flat_map(u16::to_be_bytes))
        .collect();
    let b64 = base64::encode(&utf16);
    let body = format!(
        "preamble\n\
--outer\n\
Content-Type: multipart/related; type=\"application/smil\"; boundary=\"in;ner\"\n\
Content-ID: <content-1>\n\
\n\
--in;ner\n\
Content-Type: application/smil\n\
Content-ID: <smil>\n\
\n\
<smil/>\n\
--in;ner\n\
Content-Type: text/plain; charset=utf-16\n\
Content-Transfer-Encoding: base64\n\
\n\
{b64}\n\
--in;ner\n\
Content-Type: text/plain; charset=iso-8859-1\n\
Content-Transfer-Encoding: quoted-printable\n\
\n\
caf=E9 =\n\
ok\n\
--in;ner--\n\
\n\
--outer\n\
Content-Type: text/xml\n\
Content-ID: <soap-1>\n\
\n\
<env:Envelope xmlns:env=\"http://schemas.xmlsoap.org/soap/envelope/\"><env:Header>\
<mm7:TransactionID xmlns:mm7=\"{NS6}\">mo-9</mm7:TransactionID></env:Header><env:Body>\
<mm7:DeliverReq xmlns:mm7=\"{NS6}\"><mm7:MM7Version>6.8.0</mm7:MM7Version>\
<mm7:LinkedID>L-1</mm7:LinkedID>\
<mm7:Sender><mm7:Number>+15551230001</mm7:Number></mm7:Sender>\
<mm7:Recipients><mm7:To><mm7:ShortCode>12345</mm7:ShortCode></mm7:To><mm7:Cc><mm7:Number>+1999</mm7:Number></mm7:Cc></mm7:Recipients>\
<mm7:Subject>hi</mm7:Subject>\
<mm7:Content href=\"cid:content-1\" allowAdaptations=\"true\"/>\
</mm7:DeliverReq></env:Body></env:Envelope>\n\
--outer--\n\
epilogue"
    );
    let ct = "Multipart/Related; boundary=\"outer\"; type=text/xml; start=\"<soap-1>\"";
    let m = decode(Some(ct), &Bytes::from(body)).unwrap();
    let Message::DeliverReq(d) = m else {
        panic!("{m:?}")
    };
    assert_eq!(d.transaction_id, "mo-9");
    assert_eq!(d.version, Some(Version::Rel6Mm7_1_4));
    assert_eq!(d.linked_id.as_deref(), Some("L-1"));
    assert_eq!(d.sender, Address::Number("+15551230001".into()));
    assert_eq!(
        d.recipients,
        vec![
            Address::ShortCode("12345".into()),
            Address::Number("+1999".into())
        ]
    );
    assert_eq!(d.subject.as_deref(), Some("hi"));
    assert_eq!(d.text, "STOP ✓\ncafé ok");
    // The SMIL is the layout, not content.
    assert!(d.media.is_empty(), "{:?}", d.media);
}

#[test]
fn decodes_multipart_sent_as_text_xml() {
    let d = DeliverReq {
        transaction_id: "mo".into(),
        sender: Address::Number("1".into()),
        text: "hello".into(),
        ..DeliverReq::default()
    };
    let enc = d.encode();
    for ct in [Some("text/xml"), None] {
        let Message::DeliverReq(back) = decode(ct, &enc.body).unwrap() else {
            panic!()
        };
        assert_eq!(back.text, "hello");
    }
}

#[test]
fn decodes_plain_deliver_req_without_content() {
    let xml = format!(
        r#"<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body>
<DeliverReq xmlns="{NS6}"><MM7Version>6.8.0</MM7Version>
<Sender><Number>+15551230001</Number></Sender></DeliverReq></e:Body></e:Envelope>"#
    );
    let Message::DeliverReq(d) = decode(Some("text/xml"), &Bytes::from(xml)).unwrap() else {
        panic!()
    };
    assert_eq!(d.text, "");
    assert!(d.recipients.is_empty());
    assert_eq!(d.content_href, None);
}

#[test]
fn content_href_by_location_and_percent_encoding() {
    let parts = vec![
        Part {
            headers: vec![("Content-Location".into(), "text.txt".into())],
            body: Bytes::from_static(b"a"),
        },
        Part {
            headers: vec![("Content-ID".into(), "<a b@c>".into())],
            body: Bytes::from_static(b"b"),
        },
    ];
    assert_eq!(&mime::find_part(&parts, "text.txt").unwrap().body[..], b"a");
    assert_eq!(
        &mime::find_part(&parts, "cid:a%20b@c").unwrap().body[..],
        b"b"
    );
    assert_eq!(
        &mime::find_part(&parts, "CID:A%20B@C").unwrap().body[..],
        b"b"
    );
    assert!(mime::find_part(&parts, "cid:zzz").is_none());
}

// === malformed input ===

fn decode_str(ct: Option<&str>, body: &str) -> Result<Message, Mm7Error> {
    decode(ct, &Bytes::from(body.to_owned()))
}

#[test]
fn malformed_xml_is_an_error() {
    let cases = [
        "",
        "not xml",
        "<Envelope><Body><SubmitRsp>",
        "<Envelope><Body></Envelope>",
        "<a/><b/>",
        "<Envelope><Body><X>&bogus;</X></Body></Envelope>",
        "<!DOCTYPE x [<!ENTITY a 'b'>]><Envelope/>",
        "<Envelope attr=\"1\" attr=\"2\"><Body/></Envelope>",
        "\u{FEFF}<Envelope><Body><SubmitRsp><Status><StatusCode>x</StatusCode></Status></SubmitRsp></Body></Envelope>",
    ];
    for c in cases {
        let r = decode_str(Some("text/xml"), c);
        assert!(r.is_err(), "{c:?} decoded as {r:?}");
    }
    assert!(matches!(
        decode(None, &Bytes::from_static(b"\xFF\xFE<")),
        Err(Mm7Error::Xml(_))
    ));
    assert!(matches!(
        decode_str(None, "<Other/>"),
        Err(Mm7Error::NotSoap(_))
    ));
    assert!(matches!(
        decode_str(None, "<Envelope><Header/></Envelope>"),
        Err(Mm7Error::NotSoap(_))
    ));
    assert!(matches!(
        decode_str(None, "<Envelope><Body><SubmitRsp/></Body></Envelope>"),
        Err(Mm7Error::Missing("Status"))
    ));
    assert!(matches!(
        decode_str(
            None,
            "<Envelope><Body><DeliveryReportReq><MessageID>1</MessageID></DeliveryReportReq></Body></Envelope>"
        ),
        Err(Mm7Error::Missing("Recipient"))
    ));
    let deep = "<a>".repeat(100) + &"</a>".repeat(100);
    assert!(decode_str(None, &deep).is_err());
}

#[test]
fn malformed_mime_is_an_error() {
    let soap = "Content-Type: text/xml\r\n\r\n<Envelope><Body/></Envelope>";
    let truncated = format!("--b\r\n{soap}\r\n--b\r\nContent-Type: text/plain\r\n\r\nhal");
    assert_eq!(
        decode_str(Some("multipart/related; boundary=b"), &truncated),
        Err(Mm7Error::Mime(MimeError::Truncated))
    );
    assert_eq!(
        decode_str(Some("multipart/related"), &truncated),
        Err(Mm7Error::Mime(MimeError::MissingBoundary))
    );
    assert_eq!(
        decode_str(Some("multipart/related; boundary=zz"), &truncated),
        Err(Mm7Error::Mime(MimeError::BoundaryNotFound))
    );
    assert_eq!(
        decode_str(Some("multipart/related; boundary=b"), "--b--\r\n"),
        Err(Mm7Error::Mime(MimeError::NoParts))
    );
    assert_eq!(
        decode_str(Some("multipart/related; boundary=b"), "--b"),
        Err(Mm7Error::Mime(MimeError::Truncated))
    );
    let bad_b64 = format!(
        "--b\r\n{soap}\r\n--b\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!\r\n--b--\r\n"
    );
    // Every part's transfer encoding is undone while parsing, used or not.
    assert_eq!(
        decode_str(Some("multipart/related; boundary=b"), &bad_b64),
        Err(Mm7Error::Mime(MimeError::BadBase64))
    );
    let unknown_cte = format!(
        "--b\r\n{soap}\r\n--b\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nx\r\n--b--\r\n"
    );
    assert!(matches!(
        decode_str(Some("multipart/related; boundary=b"), &unknown_cte),
        Err(Mm7Error::Mime(MimeError::UnsupportedEncoding(_)))
    ));
    // Content href naming nothing.
    let env = format!(
        "<Envelope><Body><DeliverReq xmlns=\"{NS6}\"><Sender><Number>1</Number></Sender><Content href=\"cid:nope\"/></DeliverReq></Body></Envelope>"
    );
    let body = format!("--b\r\nContent-Type: text/xml\r\n\r\n{env}\r\n--b--\r\n");
    let err = decode_str(Some("multipart/related; boundary=b"), &body).unwrap_err();
    assert_eq!(err, Mm7Error::ContentNotFound("cid:nope".into()));
    assert_eq!(err.status_code(), status::MULTIMEDIA_CONTENT_REFUSED);
    // Nesting too deep.
    let mut inner = "--b0\r\n\r\nx\r\n--b0--".to_owned();
    for i in 1..12 {
        inner = format!(
            "--b{i}\r\nContent-Type: multipart/mixed; boundary=b{}\r\n\r\n{inner}\r\n--b{i}--",
            i - 1
        );
    }
    let part = Part {
        headers: vec![(
            "Content-Type".into(),
            "multipart/mixed; boundary=b11".into(),
        )],
        body: Bytes::from(inner),
    };
    assert_eq!(mime::leaves(part), Err(MimeError::TooDeep));
}

/// A tiny deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn random_bytes_never_panic() {
    let to = recipients();
    let from = Address::ShortCode("1".into());
    let media = image();
    let valid = submit_req(Version::Rel6Mm7_1_4, &to, &from, &media).encode();
    let fault = Fault::new(
        None,
        Version::Rel5Mm7_1_2,
        ErrorRspKind::Rs,
        Status::new(2000),
    )
    .encode();
    let alphabet: &[u8] = b"<>/=\"' :-\r\n\t&;#xabcdefEnvelopBdyStausCo0123456789--b";
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    for round in 0..3000 {
        let base: Vec<u8> = match round % 3 {
            0 => valid.body.to_vec(),
            1 => fault.body.to_vec(),
            _ => (0..rng.below(300))
                .map(|_| alphabet[rng.below(alphabet.len())])
                .collect(),
        };
        let mut bytes = base;
        // Mutate: flip, insert, truncate.
        for _ in 0..rng.below(8) {
            if bytes.is_empty() {
                break;
            }
            let i = rng.below(bytes.len());
            match rng.below(3) {
                0 => bytes[i] = rng.next() as u8,
                1 => bytes.insert(i, alphabet[rng.below(alphabet.len())]),
                _ => bytes.truncate(i),
            }
        }
        let body = Bytes::from(bytes);
        let _ = decode(Some(&valid.content_type), &body);
        let _ = decode(Some("text/xml"), &body);
        let _ = decode(Some("multipart/related; boundary=b"), &body);
        let _ = decode(None, &body);
        let _ = base64::decode(&body);
        let _ = mime::decode_quoted_printable(&body);
        let _ = mime::decode_charset(&body, "utf-16");
        if let Ok(text) = std::str::from_utf8(&body) {
            let _ = ContentType::parse(text);
            let _ = parse_date_time(text);
        }
    }
}

// === small pieces ===

#[test]
fn base64_vectors() {
    for (raw, enc) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
        ("user:pa:ss", "dXNlcjpwYTpzcw=="),
    ] {
        assert_eq!(base64::encode(raw.as_bytes()), enc);
        assert_eq!(base64::decode(enc.as_bytes()).unwrap(), raw.as_bytes());
    }
    let all: Vec<u8> = (0..=255).collect();
    assert_eq!(
        base64::decode(base64::encode(&all).as_bytes()).unwrap(),
        all
    );
    assert_eq!(base64::decode(b"Zm9v\r\nYmFy").unwrap(), b"foobar");
    assert_eq!(base64::decode(b"Zm9vYg").unwrap(), b"foob");
    assert!(base64::decode(b"Zm9v!").is_none());
    assert!(base64::decode(b"Zg==Zg").is_none());
    assert!(base64::decode(b"Z").is_none());
}

#[test]
fn status_classification() {
    for (code, class) in [
        (1000, Class::Success),
        (1100, Class::Success),
        (2000, Class::Permanent),
        (2002, Class::Permanent),
        (2004, Class::Permanent),
        (3000, Class::Temporary),
        (3001, Class::Permanent),
        (3002, Class::Permanent),
        (3003, Class::Permanent),
        (3099, Class::Temporary),
        (4000, Class::Permanent),
        (4001, Class::Permanent),
        (4004, Class::Permanent),
        (4005, Class::Permanent),
        (4006, Class::Temporary),
        (4007, Class::Permanent),
        (4999, Class::Permanent),
        (0, Class::Permanent),
        (9999, Class::Permanent),
    ] {
        assert_eq!(classify(code), class, "{code}");
    }
    for (http, class) in [
        (200, Class::Success),
        (301, Class::Permanent),
        (400, Class::Permanent),
        (401, Class::Permanent),
        (404, Class::Permanent),
        (408, Class::Temporary),
        (429, Class::Temporary),
        (500, Class::Temporary),
        (501, Class::Permanent),
        (502, Class::Temporary),
        (503, Class::Temporary),
        (504, Class::Temporary),
    ] {
        assert_eq!(classify_http(http), class, "{http}");
    }
    assert_eq!(Status::new(4006).text, "Service unavailable");
    assert_eq!(Status::new(4242).text, "Status 4242");
    assert_eq!(Mm7Error::Http { status: 503 }.class(), Class::Temporary);
    assert_eq!(Mm7Error::Http { status: 404 }.class(), Class::Permanent);
    assert_eq!(
        Mm7Error::Unauthorized { status: 401 }.class(),
        Class::Permanent
    );
    assert_eq!(
        Mm7Error::Fault {
            code: "soap:Server".into(),
            string: String::new(),
            http_status: 500
        }
        .class(),
        Class::Temporary
    );
    assert_eq!(
        Mm7Error::TooLarge { size: 2, max: 1 }.class(),
        Class::Permanent
    );
    assert_eq!(Mm7Error::Timeout(Duration::ZERO).class(), Class::Temporary);
}

#[test]
fn versions() {
    assert_eq!(Version::default(), Version::Rel6Mm7_1_4);
    let expected = [
        ("REL-5-MM7-1-2", "5.3.0"),
        ("REL-5-MM7-1-3", "5.6.0"),
        ("REL-5-MM7-1-4", "5.8.0"),
        ("REL-6-MM7-1-0", "6.3.0"),
        ("REL-6-MM7-1-1", "6.4.0"),
        ("REL-6-MM7-1-2", "6.5.0"),
        ("REL-6-MM7-1-3", "6.6.0"),
        ("REL-6-MM7-1-4", "6.8.0"),
    ];
    for (v, (name, mm7)) in Version::ALL.into_iter().zip(expected) {
        assert_eq!(v.name(), name);
        assert_eq!(v.mm7_version(), mm7);
        assert_eq!(v.namespace(), format!("{}{name}", version::NAMESPACE_BASE));
        assert_eq!(Version::from_namespace(v.namespace()), Some(v));
        assert_eq!(name.parse::<Version>(), Ok(v));
        assert_eq!(name.to_lowercase().parse::<Version>(), Ok(v));
        assert_eq!(v.namespace().parse::<Version>(), Ok(v));
        assert!(v.accepts(mm7));
        assert!(v.accepts("5.3.0"));
        assert!(!v.accepts("7.0.0"));
        // Each schema's versionType lists exactly accepted_mm7_versions().
        let xsd = std::fs::read_to_string(data_dir().join(format!("{name}.xsd"))).unwrap();
        let start = xsd.find("name=\"versionType\"").unwrap();
        let end = start + xsd[start..].find("</xs:simpleType>").unwrap();
        let listed: Vec<&str> = xsd[start..end]
            .split("<xs:enumeration value=\"")
            .skip(1)
            .map(|s| s.split('"').next().unwrap())
            .collect();
        assert_eq!(listed, v.accepted_mm7_versions(), "{name}");
    }
    assert!(!Version::Rel5Mm7_1_2.accepts("5.6.0"));
    assert!(Version::from_namespace("urn:other").is_none());
    assert!("REL-5-MM7-1-0".parse::<Version>().is_err());
}

#[test]
fn content_type_parsing() {
    let ct = ContentType::parse(
        "Multipart/Related; type=\"text/xml\"; start=\"<a;b>\"; boundary=\"x \\\"y\\\"\"",
    );
    assert_eq!(ct.mime, "multipart/related");
    assert_eq!(ct.param("TYPE"), Some("text/xml"));
    assert_eq!(ct.param("start"), Some("<a;b>"));
    assert_eq!(ct.param("boundary"), Some("x \"y\""));
    assert!(ct.is_multipart());
    assert_eq!(ContentType::parse("").mime, "");
}

#[test]
fn boundary_prefixes_and_lf_line_ends() {
    // A delimiter of a longer boundary sharing the prefix is not ours.
    let body = Bytes::from_static(
        b"--b\nContent-Type: text/plain\n\none\n--bb\nnot a delimiter\n--b\n\ntwo\n--b--",
    );
    let parts = mime::parse_multipart(&body, "b").unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(&parts[0].body[..], b"one\n--bb\nnot a delimiter");
    assert_eq!(&parts[1].body[..], b"two");
    assert!(parts[1].headers.is_empty());
    // Folded headers.
    let body = Bytes::from_static(
        b"--b\r\nContent-Type: text/plain;\r\n charset=latin1\r\n\r\n\xE9\r\n--b--\r\n",
    );
    let parts = mime::parse_multipart(&body, "b").unwrap();
    assert_eq!(parts[0].text(), "é");
}

#[test]
fn dates() {
    let t = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
    assert_eq!(format_date_time(t), "2000-02-29T00:00:00Z");
    assert_eq!(parse_date_time("2000-02-29T00:00:00Z"), Some(t));
    assert_eq!(parse_date_time("2000-02-29T00:00:00"), Some(t));
    assert_eq!(parse_date_time("2000-02-29T01:30:00+01:30"), Some(t));
    assert_eq!(
        parse_date_time("2000-02-29T00:00:00.25Z"),
        Some(t + Duration::from_millis(250))
    );
    assert_eq!(parse_date_time("2000-13-01T00:00:00Z"), None);
    assert_eq!(parse_date_time("2000-02-29 00:00:00"), None);
    assert_eq!(parse_date_time("1969-12-31T23:59:59Z"), None);
    assert_eq!(parse_date_time("2000-02-29T00:00:00.Z"), None);
    // Multi-byte characters where ASCII is expected must not panic.
    assert_eq!(parse_date_time("2000-02-29T00:00:00+0\u{e9}:0"), None);
    assert_eq!(parse_date_time("2000-02-29T00:00:0\u{e9}"), None);
    assert_eq!(parse_date_time("\u{e9}000-02-29T00:00:00Z"), None);
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).unwrap().as_secs();
    assert_eq!(
        parse_date_time(&format_date_time(now)),
        Some(UNIX_EPOCH + Duration::from_secs(secs))
    );
}

#[test]
fn credentials_and_allow_lists() {
    let c = Credentials::new("vasp", "s3cr:et");
    assert!(!format!("{c:?}").contains("s3cr"));
    let h = c.header_value();
    assert!(c.matches(h.as_bytes()));
    assert!(c.matches(h.replace("Basic", "basic").as_bytes()));
    assert!(!Credentials::new("vasp", "s3cr:eT").matches(h.as_bytes()));
    assert!(!c.matches(b"Bearer abc"));
    assert!(!c.matches(b"Basic !!!"));
    assert!(!c.matches(b"\xFF"));

    let net: IpNet = "10.0.0.0/8".parse().unwrap();
    assert!(net.contains(IpAddr::V4(Ipv4Addr::new(10, 9, 8, 7))));
    assert!(!net.contains(IpAddr::V4(Ipv4Addr::new(11, 0, 0, 1))));
    assert!(net.contains("::ffff:10.1.2.3".parse().unwrap()));
    let one: IpNet = "192.0.2.7".parse().unwrap();
    assert!(one.contains("192.0.2.7".parse().unwrap()));
    assert!(!one.contains("192.0.2.8".parse().unwrap()));
    let v6: IpNet = "2001:db8::/32".parse().unwrap();
    assert!(v6.contains("2001:db8::1".parse().unwrap()));
    assert!(!v6.contains(IpAddr::V6(Ipv6Addr::LOCALHOST)));
    let any: IpNet = "0.0.0.0/0".parse().unwrap();
    assert!(any.contains("8.8.8.8".parse().unwrap()));
    assert!("10.0.0.0/33".parse::<IpNet>().is_err());
    assert!("nope".parse::<IpNet>().is_err());
}

// === the receiver over HTTP ===

/// Records what it receives; fails when told to.
#[derive(Debug)]
struct Recorder {
    reports: mpsc::UnboundedSender<DeliveryReportReq>,
    delivers: mpsc::UnboundedSender<DeliverReq>,
    fail: bool,
}

impl Mm7Inbound for Recorder {
    async fn delivery_report(
        &self,
        r: DeliveryReportReq,
    ) -> Result<Status, crate::mm7::server::HandlerError> {
        let _ = self.reports.send(r);
        if self.fail {
            Err("store down".into())
        } else {
            Ok(Status::success())
        }
    }

    async fn deliver(&self, d: DeliverReq) -> Result<(), crate::mm7::server::HandlerError> {
        let _ = self.delivers.send(d);
        if self.fail {
            Err("store down".into())
        } else {
            Ok(())
        }
    }
}

struct Receiver {
    server: Mm7Server,
    reports: mpsc::UnboundedReceiver<DeliveryReportReq>,
    delivers: mpsc::UnboundedReceiver<DeliverReq>,
}

async fn receiver(cfg: ServerConfig, fail: bool) -> Receiver {
    let (rt, reports) = mpsc::unbounded_channel();
    let (dt, delivers) = mpsc::unbounded_channel();
    let handler = Arc::new(Recorder {
        reports: rt,
        delivers: dt,
        fail,
    });
    let cfg = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..cfg
    };
    Receiver {
        server: serve(cfg, handler).await.unwrap(),
        reports,
        delivers,
    }
}

fn client_for(server: &Mm7Server, credentials: Option<Credentials>) -> Mm7Client {
    Mm7Client::new(ClientConfig {
        url: format!("http://{}/mm7/callback", server.local_addr()),
        credentials,
        request_timeout: Duration::from_secs(10),
        ..ClientConfig::default()
    })
    .unwrap()
}

fn report(v: Version) -> DeliveryReportReq {
    DeliveryReportReq {
        transaction_id: "dr-42".into(),
        version: Some(v),
        message_id: "M42".into(),
        recipient: Address::Number("+15551230001".into()),
        sender: Address::ShortCode("12345".into()),
        mm_status: MmStatus::Expired,
        ..DeliveryReportReq::default()
    }
}

#[tokio::test]
async fn receiver_hands_reports_and_messages_to_the_handler() {
    let mut r = receiver(
        ServerConfig {
            credentials: Some(Credentials::new("mmsc", "pw")),
            allow: vec!["127.0.0.0/8".parse().unwrap()],
            ..ServerConfig::default()
        },
        false,
    )
    .await;
    let client = client_for(&r.server, Some(Credentials::new("mmsc", "pw")));
    for v in [Version::Rel5Mm7_1_2, Version::Rel6Mm7_1_4] {
        let status = client.delivery_report(&report(v)).await.unwrap();
        assert_eq!(status, Status::success());
        let got = r.reports.recv().await.unwrap();
        assert_eq!(got.message_id, "M42");
        assert_eq!(got.version, Some(v));
        assert_eq!(got.mm_status, MmStatus::Expired);
    }
    // The raw answer echoes the TransactionID in the request's namespace.
    let reply = client
        .post(&report(Version::Rel6Mm7_1_1).encode())
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    let Message::Rsp(rsp) = reply.decode().unwrap() else {
        panic!()
    };
    assert_eq!(rsp.kind, RspKind::DeliveryReport);
    assert_eq!(rsp.transaction_id, "dr-42");
    assert_eq!(rsp.version, Some(Version::Rel6Mm7_1_1));
    schema_check("REL-6-MM7-1-1", std::str::from_utf8(&reply.body).unwrap());
    let _ = r.reports.recv().await.unwrap();

    let d = DeliverReq {
        transaction_id: "mo-1".into(),
        version: Some(Version::Rel6Mm7_1_4),
        sender: Address::Number("+15551230009".into()),
        recipients: vec![Address::ShortCode("12345".into())],
        text: "STOP".into(),
        ..DeliverReq::default()
    };
    assert_eq!(client.deliver(&d).await.unwrap(), Status::success());
    let got = r.delivers.recv().await.unwrap();
    assert_eq!(got.text, "STOP");
    assert_eq!(got.sender, Address::Number("+15551230009".into()));
    r.server.shutdown();
    r.server.run_until_shutdown().await;
}

#[tokio::test]
async fn receiver_refuses_wrong_credentials_addresses_and_garbage() {
    let r = receiver(
        ServerConfig {
            credentials: Some(Credentials::new("mmsc", "pw")),
            max_body: 10_000,
            ..ServerConfig::default()
        },
        false,
    )
    .await;
    let wrong = client_for(&r.server, Some(Credentials::new("mmsc", "nope")));
    let err = wrong
        .delivery_report(&report(Version::default()))
        .await
        .unwrap_err();
    assert_eq!(err, Mm7Error::Unauthorized { status: 401 });
    assert_eq!(err.class(), Class::Permanent);
    let none = client_for(&r.server, None);
    let reply = none
        .post(&report(Version::default()).encode())
        .await
        .unwrap();
    assert_eq!(reply.status, 401);

    let good = client_for(&r.server, Some(Credentials::new("mmsc", "pw")));
    let garbage = Encoded {
        content_type: "text/xml".into(),
        body: Bytes::from_static(b"<Envelope><Body><Unclosed></Body>"),
    };
    let reply = good.post(&garbage).await.unwrap();
    assert_eq!(reply.status, 400);
    let Message::Fault(f) = reply.decode().unwrap() else {
        panic!()
    };
    assert_eq!(f.status.unwrap().code, status::VALIDATION_ERROR);
    assert_eq!(f.error_rsp, Some(ErrorRspKind::Vasp));

    let truncated = Encoded {
        content_type: "multipart/related; boundary=b".into(),
        body: Bytes::from_static(b"--b\r\n\r\n<Envelope/>\r\n--b\r\n"),
    };
    let reply = good.post(&truncated).await.unwrap();
    assert_eq!(reply.status, 400);
    let Message::Fault(f) = reply.decode().unwrap() else {
        panic!()
    };
    assert_eq!(f.status.unwrap().code, status::MULTIMEDIA_CONTENT_REFUSED);

    let big = Encoded {
        content_type: "text/xml".into(),
        body: Bytes::from(vec![b' '; 20_000]),
    };
    assert_eq!(good.post(&big).await.unwrap().status, 413);

    // Another request type: a Fault with 4003.
    let to = recipients();
    let submit = SubmitReq {
        transaction_id: "s-1",
        recipients: &to,
        text: "x",
        ..SubmitReq::default()
    };
    let reply = good.post(&submit.encode()).await.unwrap();
    assert_eq!(reply.status, 500);
    let Message::Fault(f) = reply.decode().unwrap() else {
        panic!()
    };
    assert_eq!(f.transaction_id.as_deref(), Some("s-1"));
    assert_eq!(f.status.unwrap().code, status::UNSUPPORTED_OPERATION);

    // Source allow-list.
    let far = receiver(
        ServerConfig {
            allow: vec!["192.0.2.0/24".parse().unwrap()],
            ..ServerConfig::default()
        },
        false,
    )
    .await;
    let c = client_for(&far.server, None);
    assert_eq!(
        c.delivery_report(&report(Version::default()))
            .await
            .unwrap_err(),
        Mm7Error::Unauthorized { status: 403 }
    );
}

#[tokio::test]
async fn receiver_answers_a_fault_when_the_handler_fails() {
    let mut r = receiver(ServerConfig::default(), true).await;
    let client = client_for(&r.server, None);
    let reply = client
        .post(&report(Version::Rel6Mm7_1_2).encode())
        .await
        .unwrap();
    assert_eq!(reply.status, 500);
    let Message::Fault(f) = reply.decode().unwrap() else {
        panic!()
    };
    assert_eq!(f.transaction_id.as_deref(), Some("dr-42"));
    assert_eq!(f.faultcode, "env:Server");
    assert_eq!(f.version, Some(Version::Rel6Mm7_1_2));
    let s = f.status.unwrap();
    assert_eq!(s.code, status::SERVER_ERROR);
    assert_eq!(s.class(), Class::Temporary);
    // The handler's reason stays private.
    assert!(!String::from_utf8_lossy(&reply.body).contains("store down"));
    schema_check("REL-6-MM7-1-2", std::str::from_utf8(&reply.body).unwrap());
    assert!(r.reports.recv().await.is_some());
    // Through the typed call the status comes back as is.
    let s = client
        .delivery_report(&report(Version::default()))
        .await
        .unwrap();
    assert_eq!(s.code, status::SERVER_ERROR);
}

/// A peer that accepts connections and, per `close`, reads the first bytes
/// of a request and hangs up without answering, or never answers; says on
/// the channel when a request's first bytes arrived.
async fn silent_peer(close: bool) -> (std::net::SocketAddr, mpsc::UnboundedReceiver<()>) {
    use tokio::io::AsyncReadExt;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = tx.send(());
            if !close {
                open.push(s);
            }
        }
    });
    (addr, rx)
}

fn client_at(addr: std::net::SocketAddr, timeout: Duration) -> Mm7Client {
    Mm7Client::new(ClientConfig {
        url: format!("http://{addr}/mm7"),
        request_timeout: timeout,
        ..ClientConfig::default()
    })
    .unwrap()
}

#[tokio::test]
async fn a_request_that_left_unanswered_is_told_from_one_that_never_left() {
    let to = recipients();
    let req = SubmitReq {
        transaction_id: "t",
        recipients: &to,
        text: "x",
        ..SubmitReq::default()
    };
    // The peer took the request and hung up: it may have processed it.
    let (addr, _arrived) = silent_peer(true).await;
    let e = client_at(addr, Duration::from_secs(10))
        .submit(&req)
        .await
        .unwrap_err();
    assert!(matches!(e, Mm7Error::Transport(_)), "{e:?}");
    assert!(e.maybe_processed());
    // The peer took the request and never answered.
    let (addr, _arrived) = silent_peer(false).await;
    let e = client_at(addr, Duration::from_millis(300))
        .submit(&req)
        .await
        .unwrap_err();
    assert_eq!(e, Mm7Error::Timeout(Duration::from_millis(300)));
    assert!(e.maybe_processed());
    // The deadline passed during the TLS handshake: the request never left.
    let (addr, _arrived) = silent_peer(false).await;
    let tls = Mm7Client::new(ClientConfig {
        url: format!("https://{addr}/mm7"),
        request_timeout: Duration::from_millis(300),
        ..ClientConfig::default()
    })
    .unwrap();
    let e = tls.submit(&req).await.unwrap_err();
    assert!(matches!(e, Mm7Error::NotSent(_)), "{e:?}");
    assert!(!e.maybe_processed());
    assert_eq!(e.class(), Class::Temporary);
    // Nobody listening: nothing left. The port is held bound but not
    // listening (connections are refused), so that no test running beside
    // this one can be given it and answer (a listener bound and dropped
    // left the port free: once, another test's server took it and the
    // connection was made and cut, a transport error).
    let held = tokio::net::TcpSocket::new_v4().unwrap();
    held.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let closed = held.local_addr().unwrap();
    let e = client_at(closed, Duration::from_secs(5))
        .submit(&req)
        .await
        .unwrap_err();
    assert!(matches!(e, Mm7Error::Connect { .. }), "{e:?}");
    assert!(!e.maybe_processed());
    drop(held);
    // A proxy's 504 is an unanswered request too; a 503 is not.
    assert!(Mm7Error::Http { status: 504 }.maybe_processed());
    assert!(!Mm7Error::Http { status: 503 }.maybe_processed());
    assert!(!Mm7Error::Unauthorized { status: 401 }.maybe_processed());
}

/// A handler that knows no report (answers 2005 Message ID Not found).
#[derive(Debug)]
struct KnowsNothing;

impl Mm7Inbound for KnowsNothing {
    async fn delivery_report(
        &self,
        _: DeliveryReportReq,
    ) -> Result<Status, crate::mm7::server::HandlerError> {
        Ok(Status::new(status::MESSAGE_ID_NOT_FOUND))
    }

    async fn deliver(&self, _: DeliverReq) -> Result<(), crate::mm7::server::HandlerError> {
        Ok(())
    }
}

#[tokio::test]
async fn a_report_handler_status_is_answered_in_a_valid_delivery_report_rsp() {
    let server = serve(
        ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..ServerConfig::default()
        },
        Arc::new(KnowsNothing),
    )
    .await
    .unwrap();
    let client = client_for(&server, None);
    for v in Version::ALL {
        let reply = client.post(&report(v).encode()).await.unwrap();
        assert_eq!(reply.status, 200, "{v}");
        let Message::Rsp(rsp) = reply.decode().unwrap() else {
            panic!("{v}: not a response")
        };
        assert_eq!(rsp.kind.element(), "DeliveryReportRsp");
        assert_eq!(rsp.status.code, status::MESSAGE_ID_NOT_FOUND);
        assert_eq!(rsp.status.class(), Class::Permanent);
        if xmllint() {
            validate(v.name(), std::str::from_utf8(&reply.body).unwrap())
                .unwrap_or_else(|e| panic!("{v}: {e}"));
        }
    }
}

/// A handler that panics.
#[derive(Debug)]
struct Panicky;

impl Mm7Inbound for Panicky {
    async fn delivery_report(
        &self,
        _: DeliveryReportReq,
    ) -> Result<Status, crate::mm7::server::HandlerError> {
        panic!("handler bug")
    }

    async fn deliver(&self, _: DeliverReq) -> Result<(), crate::mm7::server::HandlerError> {
        Ok(())
    }
}

#[tokio::test]
async fn a_panicking_handler_gets_the_mmsc_a_fault() {
    let server = serve(
        ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..ServerConfig::default()
        },
        Arc::new(Panicky),
    )
    .await
    .unwrap();
    let client = client_for(&server, None);
    let s = client
        .delivery_report(&report(Version::default()))
        .await
        .unwrap();
    assert_eq!(s.code, status::SERVER_ERROR);
    // The connection and the server survive.
    let d = DeliverReq {
        sender: Address::Number("1".into()),
        ..DeliverReq::default()
    };
    assert_eq!(client.deliver(&d).await.unwrap(), Status::success());
}

// === HTTPS ===

/// A self-signed test certificate for `localhost` and 127.0.0.1, valid
/// 2000-2100 (ECDSA P-256; generated with openssl for these tests only).
const TEST_CERT: &str = "-----BEGIN CERTIFICATE-----\n\
MIIBiTCCAS+gAwIBAgIBATAKBggqhkjOPQQDAjAUMRIwEAYDVQQDDAlsb2NhbGhv\n\
c3QwIBcNMDAwMTAxMDAwMDAwWhgPMjEwMDAxMDEwMDAwMDBaMBQxEjAQBgNVBAMM\n\
CWxvY2FsaG9zdDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABCWPaSPA+kLM0w2w\n\
RiL1VRbKnHLbDfc/9u0tirgO9tricPnjPdHQRe4cM99euHFkJiWNNOScu5JjUTMS\n\
B+2DgICjcDBuMBoGA1UdEQQTMBGCCWxvY2FsaG9zdIcEfwAAATAMBgNVHRMBAf8E\n\
AjAAMA4GA1UdDwEB/wQEAwIHgDATBgNVHSUEDDAKBggrBgEFBQcDATAdBgNVHQ4E\n\
FgQUJQ+KIIIyE2AP7VCIsUFaRwWmhsEwCgYIKoZIzj0EAwIDSAAwRQIhAK8WI84X\n\
RNvdk3eTuTZyL3xFnuShWDiRsosbM/1laUusAiARCDoKjFESBgnkec3negu5ntiL\n\
3QuUeKJbfwvxDBcISw==\n\
-----END CERTIFICATE-----";
const TEST_KEY: &str = "-----BEGIN PRIVATE KEY-----\n\
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgVirgAnnim50H6CRg\n\
idMqcMKm1jUUsEUYZc3DmXkJotKhRANCAAQlj2kjwPpCzNMNsEYi9VUWypxy2w33\n\
P/btLYq4Dvba4nD54z3R0EXuHDPfXrhxZCYljTTknLuSY1EzEgftg4CA\n\
-----END PRIVATE KEY-----";

#[tokio::test]
async fn submits_over_https() {
    use tokio_rustls::rustls::{
        self,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    };

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(TEST_CERT.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(TEST_KEY.as_bytes()).unwrap();
    let server_cfg = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs.clone(), key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        use http_body_util::BodyExt;
                        let ct = req
                            .headers()
                            .get("content-type")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let Ok(Message::SubmitReq(r)) = decode(ct.as_deref(), &body) else {
                            panic!("not a SubmitReq");
                        };
                        let rsp = SubmitRsp {
                            transaction_id: r.transaction_id.clone(),
                            version: r.version,
                            mm7_version: r.mm7_version.clone(),
                            status: Status::success(),
                            message_id: Some(format!("tls-{}", r.text)),
                        }
                        .encode();
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(
                            http_body_util::Full::new(rsp.body),
                        ))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
            });
        }
    });

    let mut roots = rustls::RootCertStore::empty();
    roots.add(certs[0].clone()).unwrap();
    let client_cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let client = Mm7Client::new(ClientConfig {
        url: format!("https://127.0.0.1:{}/mm7", addr.port()),
        tls: Some(Arc::new(client_cfg)),
        request_timeout: Duration::from_secs(10),
        ..ClientConfig::default()
    })
    .unwrap();
    let to = recipients();
    for text in ["a", "b"] {
        let out = client
            .submit(&SubmitReq {
                transaction_id: "tls-1",
                recipients: &to,
                text,
                ..SubmitReq::default()
            })
            .await
            .unwrap();
        assert_eq!(
            out,
            SubmitOutcome::Accepted {
                message_id: format!("tls-{text}"),
                status: Status::success()
            }
        );
    }
    server.abort();
}

#[test]
fn base64_media_decodes_to_the_original_bytes_in_every_version() {
    // Every byte value, and lengths around the line and group sizes.
    let to = recipients();
    let from = Address::ShortCode("12345".into());
    for len in [0usize, 1, 2, 3, 56, 57, 58, 114, 1000, 65_537] {
        let raw: Vec<u8> = (0..len).map(|i| (i * 7 + i / 256) as u8).collect();
        let media = [MediaPart {
            content_type: "image/png",
            content_id: "<p@x>",
            bytes: Bytes::from(raw.clone()),
        }];
        for v in Version::ALL {
            let enc = SubmitReq {
                media: &media,
                media_encoding: MediaEncoding::Base64,
                ..submit_req(v, &to, &from, &media)
            }
            .encode();
            let text = String::from_utf8(enc.body.to_vec()).expect("base64 bodies are text");
            assert!(text.contains("Content-Transfer-Encoding: base64\r\n"));
            let (_, part) = text.split_once("base64\r\n").unwrap();
            // The transfer encoding is the part's last header.
            let body = part.strip_prefix("\r\n").unwrap();
            let (body, _) = body.split_once("\r\n--").unwrap();
            assert!(
                body.split("\r\n").all(|l| l.len() <= 76),
                "base64 lines of at most 76 characters"
            );
            let Message::SubmitReq(r) = decode(Some(&enc.content_type), &enc.body).unwrap() else {
                panic!("not a SubmitReq");
            };
            assert_eq!(r.media.len(), 1);
            assert_eq!(r.media[0].body, raw, "{len} bytes, {v:?}");
        }
    }
}

#[test]
fn base64_lines_and_budgets_agree() {
    for n in [0usize, 1, 56, 57, 58, 10_000, 600_000] {
        let raw = vec![0xA5u8; n];
        let lines = base64::encode_lines(&raw);
        assert_eq!(lines.len(), base64::encoded_lines_len(n));
        assert!(
            lines
                .split(|b| *b == b'\n')
                .all(|l| l.len() <= base64::LINE + 1)
        );
        assert_eq!(base64::decode(&lines).unwrap(), raw);
    }
    // The budget is the most input whose lines fit.
    for encoded in [0usize, 3, 4, 6, 77, 78, 79, 84, 1_000, 614_400] {
        let n = base64::input_budget(encoded);
        assert!(base64::encoded_lines_len(n) <= encoded, "{encoded}: {n}");
        assert!(
            base64::encoded_lines_len(n + 3) > encoded,
            "{encoded}: {n} is not the most"
        );
    }
}

// === SMIL presentation ===

/// The `src` attributes of a SMIL document (read with quick-xml: it must
/// be well-formed XML).
fn smil_sources(doc: &str) -> Vec<String> {
    let mut r = quick_xml::Reader::from_str(doc);
    let mut out = Vec::new();
    loop {
        match r.read_event().expect("the SMIL is well-formed XML") {
            quick_xml::events::Event::Eof => break,
            quick_xml::events::Event::Empty(e) | quick_xml::events::Event::Start(e) => {
                for a in e.attributes() {
                    let a = a.expect("a well-formed attribute");
                    if a.key.0 == "src" {
                        let v = a
                            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                            .expect("an attribute value");
                        out.push(v.into_owned());
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[test]
fn submit_req_with_smil_validates_and_its_references_resolve() {
    let to = recipients();
    let from = Address::ShortCode("12345".into());
    let media = [
        MediaPart {
            content_type: "image/gif",
            content_id: "3f2a9c",
            bytes: Bytes::from_static(b"GIF89a..."),
        },
        MediaPart {
            content_type: "video/mp4",
            content_id: "<clip@brand.example>",
            bytes: Bytes::from_static(b"\x00\x00\x00\x18ftypmp42"),
        },
    ];
    for v in Version::ALL {
        let enc = SubmitReq {
            presentation: Presentation::Smil,
            ..submit_req(v, &to, &from, &media)
        }
        .encode();
        if xmllint() {
            validate(v.name(), &soap_part(&enc)).unwrap_or_else(|e| panic!("{v}: {e}"));
        }
        let ct = ContentType::parse(&enc.content_type);
        let parts = mime::parse_multipart(&enc.body, ct.param("boundary").unwrap()).unwrap();
        let content = &parts[1];
        assert_eq!(content.content_id(), Some("mm7-content@sluice"));
        let cct = content.content_type();
        assert_eq!(cct.mime, "multipart/related");
        assert_eq!(cct.param("type"), Some("application/smil"));
        assert_eq!(cct.param("start"), Some("<mm7-smil@sluice>"));
        let leaves = mime::leaves(content.clone()).unwrap();
        assert_eq!(leaves.len(), 4, "SMIL, text, two media");
        assert_eq!(leaves[0].content_type().mime, "application/smil");
        assert_eq!(leaves[0].content_id(), Some("mm7-smil@sluice"));
        let doc = leaves[0].text();
        let sources = smil_sources(&doc);
        assert_eq!(sources, ["image1.gif", "text.txt", "video2.mp4"], "{doc}");
        for src in &sources {
            let part = leaves[1..]
                .iter()
                .find(|p| p.content_location() == Some(src.as_str()))
                .unwrap_or_else(|| panic!("{src} names no part"));
            assert!(
                part.content_id().is_some_and(|id| id.contains('@')),
                "Content-ID in <…@domain> form: {:?}",
                part.content_id()
            );
        }
        assert_eq!(leaves[2].content_id(), Some("3f2a9c@sluice"));
        assert_eq!(leaves[3].content_id(), Some("clip@brand.example"));
        // What an MMSC reads: the text and two media, the SMIL left out.
        let Message::SubmitReq(r) = decode(Some(&enc.content_type), &enc.body).unwrap() else {
            panic!("not a SubmitReq");
        };
        assert_eq!(r.text, "Hi there ✓ — 10% off");
        assert_eq!(r.media.len(), 2);
        assert_eq!(&r.media[1].body[..], b"\x00\x00\x00\x18ftypmp42");
    }
}

#[test]
fn a_text_only_smil_has_one_slide_and_an_audio_slide_no_image_region() {
    let text_only = super::soap::smil(true, &[]);
    assert_eq!(smil_sources(&text_only), ["text.txt"]);
    assert!(!text_only.contains("region id=\"Image\""));
    let audio = super::soap::smil(false, &[("audio/amr", "audio1.amr".into())]);
    assert_eq!(smil_sources(&audio), ["audio1.amr"]);
    assert!(!audio.contains("region id=\"Image\""));
    assert!(audio.contains("<audio src=\"audio1.amr\"/>"));
}

#[test]
fn service_fields_are_written_in_schema_order_in_every_version() {
    let to = recipients();
    let from = Address::ShortCode("12345".into());
    let media = image();
    for v in Version::ALL {
        let req = SubmitReq {
            service_code: Some("acme-promo"),
            linked_id: Some("mo-77"),
            message_class: Some(MessageClass::Advertisement),
            earliest_delivery: Some(Expiry::Relative(Duration::from_secs(600))),
            read_reply: Some(true),
            priority: Some(Priority::High),
            charged_party: Some(ChargedParty::Sender),
            distribution_indicator: Some(false),
            reply_charging: Some(ReplyCharging {
                size: Some(2000),
                deadline: Some(Expiry::Relative(Duration::from_secs(3 * 86_400))),
            }),
            ..submit_req(v, &to, &from, &media)
        };
        let xml = req.envelope();
        for element in [
            "<ServiceCode>acme-promo</ServiceCode>",
            "<LinkedID>mo-77</LinkedID>",
            "<MessageClass>Advertisement</MessageClass>",
            "<EarliestDeliveryTime>PT600S</EarliestDeliveryTime>",
            "<ReadReply>true</ReadReply>",
            "<Priority>High</Priority>",
            "<ChargedParty>Sender</ChargedParty>",
            "<DistributionIndicator>false</DistributionIndicator>",
            r#"<ReplyCharging replyChargingSize="2000" replyDeadline="PT259200S"/>"#,
        ] {
            assert!(xml.contains(element), "{v}: {element} missing in {xml}");
        }
        if xmllint() {
            validate(v.name(), &xml).unwrap_or_else(|e| panic!("{v}: {e}"));
        }
        // Reply charging with only a size, or only an absolute deadline.
        for rc in [
            ReplyCharging {
                size: Some(1),
                deadline: None,
            },
            ReplyCharging {
                size: None,
                deadline: Some(Expiry::Absolute(
                    UNIX_EPOCH + Duration::from_secs(1_800_000_000),
                )),
            },
        ] {
            let req = SubmitReq {
                reply_charging: Some(rc),
                ..submit_req(v, &to, &from, &media)
            };
            if xmllint() {
                validate(v.name(), &req.envelope()).unwrap_or_else(|e| panic!("{v} {rc:?}: {e}"));
            }
        }
    }
}

#[test]
fn an_absolute_earliest_delivery_time_is_valid_in_every_version() {
    let to = recipients();
    let from = Address::ShortCode("12345".into());
    let media = image();
    // 2027-01-15T08:00:00Z.
    let at = std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    for v in Version::ALL {
        let req = SubmitReq {
            earliest_delivery: Some(Expiry::Absolute(at)),
            ..submit_req(v, &to, &from, &media)
        };
        let xml = req.envelope();
        assert!(
            xml.contains("<EarliestDeliveryTime>2027-01-15T08:00:00Z</EarliestDeliveryTime>"),
            "{v}: {xml}"
        );
        if xmllint() {
            validate(v.name(), &xml).unwrap_or_else(|e| panic!("{v}: {e}"));
        }
    }
}
