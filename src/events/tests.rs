use super::*;
use crate::config::JournalConfig;

fn hub() -> (Arc<EventHub>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(dir.path(), &JournalConfig::default()).unwrap();
    (Arc::new(EventHub::new(j, ["t".into()])), dir)
}

fn inbound(text: &str) -> pb::event::Kind {
    pb::event::Kind::Inbound(pb::InboundMessage {
        text: text.into(),
        ..Default::default()
    })
}

#[tokio::test]
async fn events_are_visible_only_when_durable_and_come_back_when_a_connection_drops() {
    let (h, _d) = hub();
    let p = h.publish_kind("t", inbound("a"));
    assert!(h.take("t", 1, 10).is_empty(), "not durable yet");
    assert_eq!(h.snapshot().len(), 1, "compaction sees it already");
    p.wait().await.unwrap();
    h.publish_kind("t", inbound("b")).wait().await.unwrap();
    let got = h.take("t", 1, 10);
    assert_eq!(got.len(), 2);
    // Connection 1 acks the first, then drops: the second comes back first.
    assert_eq!(h.ack("t", 1, &[got[0].event_id]), 1);
    assert_eq!(
        h.ack("t", 2, &[got[1].event_id]),
        0,
        "another connection cannot ack it"
    );
    h.release("t", 1);
    let again = h.take("t", 2, 10);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].event_id, got[1].event_id);
    assert_eq!(h.pending(), 1);
    assert_eq!(h.ack("t", 2, &[again[0].event_id]), 1);
    assert_eq!(h.pending(), 0);
}
