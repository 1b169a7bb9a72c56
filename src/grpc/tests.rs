use std::time::Duration;

use tonic::metadata::MetadataMap;

use super::*;

fn with_auth(v: &str) -> MetadataMap {
    let mut m = MetadataMap::new();
    m.insert("authorization", v.parse().unwrap());
    m
}

#[test]
fn the_bearer_token_is_read_in_any_letter_case_and_nothing_else_is() {
    assert_eq!(bearer(&with_auth("Bearer abc")), Some("abc"));
    assert_eq!(bearer(&with_auth("bearer  abc ")), Some("abc"));
    assert_eq!(bearer(&with_auth("BEARER abc")), Some("abc"));
    assert_eq!(bearer(&with_auth("Basic abc")), None);
    assert_eq!(bearer(&with_auth("Bearer ")), None);
    assert_eq!(bearer(&with_auth("abc")), None);
    assert_eq!(bearer(&MetadataMap::new()), None);
}

#[test]
fn back_pressure_carries_a_retry_hint_clients_can_read() {
    let s = retry_status(Code::ResourceExhausted, "full", Duration::from_millis(1500));
    assert_eq!(s.code(), Code::ResourceExhausted);
    assert_eq!(s.message(), "full");
    assert_eq!(retry_delay(&s), Some(Duration::from_millis(1500)));
    assert_eq!(
        s.metadata()
            .get("grpc-retry-pushback-ms")
            .and_then(|v| v.to_str().ok()),
        Some("1500")
    );
    let details = RpcStatus::decode(s.details()).unwrap();
    assert_eq!(details.code, Code::ResourceExhausted as i32);
    assert_eq!(details.details[0].type_url, RETRY_INFO_TYPE);
    assert_eq!(retry_delay(&Status::unavailable("x")), None);
}

#[test]
fn the_window_is_what_the_client_asks_within_the_servers() {
    assert_eq!(window(0, 20_000), 20_000);
    assert_eq!(window(100, 20_000), 100);
    assert_eq!(window(50_000, 20_000), 20_000);
    assert_eq!(window(0, 0), 1);
}

#[test]
fn grpc_connection_ids_never_meet_the_framed_doors_or_the_apis() {
    let a = next_conn();
    let b = next_conn();
    assert!(a >= GRPC_CONN_BASE && b > a);
}

#[test]
fn scopes_outside_the_protocol_are_invalid_arguments() {
    assert_eq!(
        subscribe_scope(1).unwrap(),
        pb::SubscribeScope::ScopeConnection
    );
    assert_eq!(
        subscribe_scope(7).unwrap_err().code(),
        Code::InvalidArgument
    );
}

#[test]
fn a_live_message_reads_as_its_stage() {
    let queued = message_state(LiveMessage {
        id: MessageId(7),
        client_ref: "r".into(),
        ..LiveMessage::default()
    });
    assert_eq!(queued.stage, pb::MessageStage::StageQueued as i32);
    assert_eq!((queued.message_id, queued.parts), (7, 0));
    let sent = message_state(LiveMessage {
        dispatched: Some((Arc::from("att"), 3)),
        ..LiveMessage::default()
    });
    assert_eq!(sent.stage, pb::MessageStage::StageDispatched as i32);
    assert_eq!((sent.carrier.as_str(), sent.parts), ("att", 3));
}

#[test]
fn the_committed_descriptor_set_names_the_service() {
    let fds = prost_types_free_check(FILE_DESCRIPTOR_SET);
    assert!(fds, "sluice.v1.Gateway is not in the descriptor set");
}

/// The descriptor set holds the service's name (no prost-types needed: the
/// name appears verbatim in the encoded bytes).
fn prost_types_free_check(bytes: &[u8]) -> bool {
    bytes.windows(b"Gateway".len()).any(|w| w == b"Gateway")
        && bytes
            .windows(b"sluice/v1/gateway.proto".len())
            .any(|w| w == b"sluice/v1/gateway.proto")
}
