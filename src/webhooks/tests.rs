//! Webhook signing and encoding, without sockets.

use super::*;

#[test]
fn the_signature_is_the_documented_hmac() {
    // Computed outside Rust: Python's hmac.new(b"whsec_0123456789abcdef",
    // b'1733330000.{"events":[]}', hashlib.sha256).hexdigest().
    let header = sign::signature(b"whsec_0123456789abcdef", 1_733_330_000, b"{\"events\":[]}");
    assert_eq!(
        header,
        "t=1733330000,v1=c61280df593cecdd32a51544a5fd514043269d77b458f8030c8c6dca3e260ad3"
    );
    let key = b"whsec_0123456789abcdef";
    let body = b"{\"events\":[]}";
    assert_eq!(sign::verify(key, &header, body, 1_733_330_100, 300), Ok(()));
    assert_eq!(
        sign::verify(key, &header, body, 1_733_330_301, 300),
        Err(sign::VerifyError::Stale(301))
    );
    assert_eq!(
        sign::verify(key, &header, b"{\"events\":[1]}", 1_733_330_000, 300),
        Err(sign::VerifyError::Mismatch)
    );
    assert_eq!(
        sign::verify(b"another key", &header, body, 1_733_330_000, 300),
        Err(sign::VerifyError::Mismatch)
    );
    for bad in ["", "t=1", "v1=00", "t=x,v1=00", "t=1733330000,v1=zz"] {
        assert_eq!(
            sign::verify(key, bad, body, 1_733_330_000, 300),
            Err(sign::VerifyError::Malformed),
            "{bad:?}"
        );
    }
}

#[test]
fn a_body_wraps_the_encoded_events_and_parses() {
    let notice = crate::events::Notice::Opt(crate::events::OptEvent {
        number: "+14155550100".into(),
        scope: "brand\"\n".into(),
        opted_out: true,
        keyword: "STOP".into(),
        at_ms: 7,
        campaign: String::new(),
    });
    let a = crate::events::EventEncoder::notice(&json::JsonEvents, 1, &notice);
    let b = crate::events::EventEncoder::notice(
        &json::JsonEvents,
        2,
        &crate::events::Notice::Inbound(crate::events::InboundEvent {
            from: "+14155550100".into(),
            to: "12345".into(),
            text: "hi \u{1F600}".into(),
            at_ms: 8,
            carrier: "smsc".into(),
            linked_id: String::new(),
        }),
    );
    let body = json::body([&a[..], &b[..]]);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let events = v["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["type"], "opt_out");
    assert_eq!(events[0]["scope"], "brand\"\n");
    assert_eq!(events[0]["opted_out"], true);
    assert_eq!(events[1]["id"], 2);
    assert_eq!(events[1]["text"], "hi \u{1F600}");
    let click = crate::events::EventEncoder::notice(
        &json::JsonEvents,
        3,
        &crate::events::Notice::Click(crate::events::ClickEvent {
            message_id: 42,
            client_ref: "r-1".into(),
            campaign: "spring".into(),
            number: "+14155550100".into(),
            link_index: 0,
            url: "https://shop.example/a?x=\"1\"".into(),
            first: false,
            at_ms: 9,
            user_agent: "Mozilla/5.0".into(),
            ip_class: "203.0.113.0/24".into(),
        }),
    );
    let v: serde_json::Value = serde_json::from_slice(&click).unwrap();
    assert_eq!(
        (
            &v["type"],
            &v["message_id"],
            &v["campaign_id"],
            &v["first"],
            &v["url"]
        ),
        (
            &serde_json::json!("click"),
            &serde_json::json!("42"),
            &serde_json::json!("spring"),
            &serde_json::json!(false),
            &serde_json::json!("https://shop.example/a?x=\"1\""),
        )
    );
    let empty: serde_json::Value = serde_json::from_slice(&json::body([])).unwrap();
    assert_eq!(empty, serde_json::json!({ "events": [] }));
}

#[test]
fn targets_parse_http_and_refuse_others() {
    let t = Target::parse("http://127.0.0.1:8080/hooks?x=1", None).unwrap();
    assert_eq!(t.addr(), "127.0.0.1:8080");
    let t = Target::parse("http://example.com/", None).unwrap();
    assert_eq!(t.addr(), "example.com:80");
    assert!(Target::parse("ftp://example.com/", None).is_err());
    assert!(Target::parse("/relative", None).is_err());
    assert!(
        Target::parse("https://example.com/", None).is_err(),
        "https needs TLS"
    );
}
