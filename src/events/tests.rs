use super::*;
use crate::ingest::event_wire::WireEvents;
use crate::ingest::pb;
use crate::model::DeliveryState;
use crate::settings::JournalConfig;
use prost::Message as _;

fn hub() -> (Arc<EventHub>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(dir.path(), &JournalConfig::default()).unwrap();
    (
        Arc::new(EventHub::new(j, ["t".into()], Arc::new(WireEvents))),
        dir,
    )
}

fn inbound(text: &str) -> Notice {
    Notice::Inbound(InboundEvent {
        from: "+14155550100".into(),
        to: "12345".into(),
        text: text.into(),
        at_ms: 1,
        carrier: "smsc".into(),
        linked_id: String::new(),
    })
}

#[tokio::test]
async fn events_are_visible_only_when_durable_and_come_back_when_a_connection_drops() {
    let (h, _d) = hub();
    let p = h.publish_notice("t", &inbound("a"));
    assert!(h.take("t", 1, 10).is_empty(), "not durable yet");
    assert_eq!(h.snapshot().len(), 1, "compaction sees it already");
    p.wait().await.unwrap();
    h.publish_notice("t", &inbound("b")).wait().await.unwrap();
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

#[test]
fn hand_encoded_delivery_events_decode_as_prost_would_encode_them() {
    use crate::ledger::Finalized;
    use crate::model::{ChannelPref, FallbackPolicy, Message, MessageId, Msisdn, Priority, Sender};
    let m = Arc::new(Message {
        id: MessageId(77),
        tenant: "t".into(),
        client_ref: "ref-1".into(),
        to: Msisdn::parse("+14155550100").unwrap(),
        from: Sender::parse("12345").unwrap(),
        text: "x".into(),
        media: Box::default(),
        channel: ChannelPref::Auto,
        fallback: FallbackPolicy::SmsTextOnly,
        campaign_id: "bf".into(),
        expires_at_ms: 0,
        priority: Priority::Marketing,
        tags: Box::default(),
        accepted_at_ms: 0,
        auto_reply: false,
        mms: None,
    });
    let (h, _d) = hub();
    let h = Arc::try_unwrap(h)
        .unwrap()
        .with_mms_carriers([Arc::<str>::from("mmsc")]);
    for (carrier, note, state) in [
        (Some("smsc"), None, DeliveryState::Delivered),
        (
            Some("mmsc"),
            Some("fallback to SMS with a link: x"),
            DeliveryState::Failed,
        ),
        (None, None, DeliveryState::Expired),
    ] {
        let f = Finalized {
            message: m.clone(),
            state,
            error_code: 7,
            reason: "why".into(),
            carrier: carrier.map(Arc::from),
            parts: 3,
            carrier_ids: vec![],
            note: note.map(Arc::from),
        };
        let bytes = h.encoder.delivery(9, &f, h.channel(&f), 1234);
        let decoded = pb::Event::decode(bytes.clone()).unwrap();
        assert_eq!(bytes, decoded.encode_to_vec(), "prost's bytes");
        let Some(pb::event::Kind::Delivery(d)) = decoded.kind else {
            panic!()
        };
        assert_eq!(decoded.event_id, 9);
        assert_eq!(
            (d.message_id, d.client_ref.as_str(), d.reason.as_str()),
            (77, "ref-1", "why")
        );
        assert_eq!((d.error_code, d.at_ms, d.segments), (7, 1234, 3));
        assert_eq!(d.carrier, carrier.unwrap_or_default());
        assert_eq!(d.campaign_id, "bf");
        assert_eq!(d.channel_reason, note.unwrap_or_default());
        let want_channel = match carrier {
            Some("mmsc") => pb::Channel::MmsUsed,
            Some(_) => pb::Channel::SmsUsed,
            None => pb::Channel::Unspecified,
        };
        assert_eq!(d.channel, want_channel as i32);
        let want_state = match state {
            DeliveryState::Delivered => pb::DeliveryState::StateDelivered,
            DeliveryState::Failed => pb::DeliveryState::StateFailed,
            _ => pb::DeliveryState::StateExpired,
        };
        assert_eq!(d.state, want_state as i32);
    }
}

/// Every field zero or empty, then every field at its largest: the hand
/// encoder writes prost's bytes, in a buffer of exactly their size.
#[test]
fn delivery_events_at_the_edges_are_prosts_bytes() {
    use crate::ingest::event_wire::delivery_event;
    use crate::ledger::Finalized;
    let mut bare = finished(0);
    Arc::get_mut(&mut bare.message).unwrap().client_ref = Box::default();
    let bare = Finalized {
        reason: "".into(),
        carrier: None,
        parts: 0,
        ..bare
    };
    let mut full = finished(u64::MAX);
    {
        let m = Arc::get_mut(&mut full.message).unwrap();
        m.client_ref = "r".repeat(300).into();
        m.campaign_id = "c".repeat(128).into();
    }
    let full = Finalized {
        error_code: u32::MAX,
        reason: "why".repeat(100).into(),
        carrier: Some(Arc::from("smsc")),
        parts: u32::MAX,
        note: Some(Arc::from("n".repeat(200))),
        ..full
    };
    for (f, event_id, at) in [(&bare, 0, 0), (&full, u64::MAX, u64::MAX)] {
        for channel in [Channel::Unspecified, Channel::Sms, Channel::Mms] {
            let bytes = delivery_event(event_id, f, channel, at);
            let decoded = pb::Event::decode(bytes.clone()).unwrap();
            assert_eq!(bytes, decoded.encode_to_vec());
            assert!(matches!(decoded.kind, Some(pb::event::Kind::Delivery(_))));
        }
    }
}

fn finished(id: u64) -> crate::ledger::Finalized {
    use crate::model::{ChannelPref, FallbackPolicy, Message, Msisdn, Priority, Sender};
    crate::ledger::Finalized {
        message: Arc::new(Message {
            id: MessageId(id),
            tenant: "t".into(),
            client_ref: format!("ref-{id}").into(),
            to: Msisdn::parse("+14155550100").unwrap(),
            from: Sender::parse("12345").unwrap(),
            text: "x".into(),
            media: Box::default(),
            channel: ChannelPref::Auto,
            fallback: FallbackPolicy::SmsTextOnly,
            campaign_id: Box::default(),
            expires_at_ms: 0,
            priority: Priority::Marketing,
            tags: Box::default(),
            accepted_at_ms: 0,
            auto_reply: false,
            mms: None,
        }),
        state: DeliveryState::Delivered,
        error_code: 0,
        reason: "DELIVRD".into(),
        carrier: Some("smsc".into()),
        parts: 1,
        carrier_ids: vec![],
        note: None,
    }
}

fn ids(events: &[Arc<PendingEvent>]) -> Vec<u64> {
    events.iter().map(|e| e.message_id.0).collect()
}

#[tokio::test]
async fn a_connection_scoped_subscriber_gets_only_its_own_messages() {
    let (h, _d) = hub();
    const CAMPAIGN: ConnId = 1;
    const CLI: ConnId = 2;
    h.subscribe_connection("t", CLI);
    // The CLI's message is claimed at submission; the campaign's are not,
    // and claims by a tenant-scoped connection do nothing.
    h.claim("t", CLI, [MessageId(10)]);
    h.claim("t", CAMPAIGN, [MessageId(11)]);
    h.publish_notice("t", &inbound("STOP"))
        .wait()
        .await
        .unwrap();
    h.publish_final(&[finished(11), finished(10), finished(12)])
        .wait()
        .await
        .unwrap();
    // The CLI sees its message only, even though it asks first.
    let mine = h.take("t", CLI, 100);
    assert_eq!(ids(&mine), vec![10]);
    // The campaign system sees everything else: the inbound and two deliveries.
    let theirs = h.take("t", CAMPAIGN, 100);
    assert_eq!(ids(&theirs), vec![0, 11, 12]);
    assert!(h.take("t", CLI, 100).is_empty());
    // Neither can acknowledge the other's events.
    assert_eq!(h.ack("t", CAMPAIGN, &[mine[0].event_id]), 0);
    assert_eq!(h.ack("t", CLI, &[mine[0].event_id]), 1);
    assert_eq!(
        h.snapshot().len(),
        3,
        "the campaign's three are unacknowledged"
    );
}

#[tokio::test]
async fn a_scoped_connection_that_goes_away_hands_everything_to_the_tenant_stream() {
    let (h, _d) = hub();
    const CLI: ConnId = 7;
    const CAMPAIGN: ConnId = 8;
    h.subscribe_connection("t", CLI);
    h.claim("t", CLI, [MessageId(1), MessageId(2), MessageId(3)]);
    h.publish_final(&[finished(1), finished(2)])
        .wait()
        .await
        .unwrap();
    // One taken (not acknowledged), one still queued for the CLI, one in flight.
    let taken = h.take("t", CLI, 1);
    assert_eq!(ids(&taken), vec![1]);
    assert!(
        h.take("t", CAMPAIGN, 10).is_empty(),
        "claimed events are not shared"
    );
    h.release("t", CLI);
    assert_eq!(
        ids(&h.take("t", CAMPAIGN, 10)),
        vec![1, 2],
        "in event order"
    );
    // Message 3 finishes after the CLI left: the tenant stream gets it.
    h.publish_final(&[finished(3)]).wait().await.unwrap();
    assert_eq!(ids(&h.take("t", CAMPAIGN, 10)), vec![3]);
    assert!(h.take("t", CLI, 10).is_empty());
}

#[tokio::test]
async fn a_scoped_subscriber_waits_for_its_own_events_only() {
    let (h, _d) = hub();
    h.subscribe_connection("t", 5);
    h.claim("t", 5, [MessageId(42)]);
    h.publish_notice("t", &inbound("not yours"))
        .wait()
        .await
        .unwrap();
    // A tenant-scoped connection is woken at once; the scoped one is not.
    tokio::time::timeout(std::time::Duration::from_secs(5), h.wait("t", 6))
        .await
        .expect("the tenant stream has an event");
    let waiter = {
        let h = h.clone();
        tokio::spawn(async move { h.wait("t", 5).await })
    };
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished());
    h.publish_final(&[finished(42)]).wait().await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
        .await
        .expect("woken by its own event")
        .unwrap();
    h.unclaim("t", [MessageId(42)]);
}

fn delivery_final(id: u64) -> crate::ledger::Finalized {
    use crate::model::{ChannelPref, FallbackPolicy, Message, MessageId, Msisdn, Priority, Sender};
    crate::ledger::Finalized {
        message: Arc::new(Message {
            id: MessageId(id),
            tenant: "t".into(),
            client_ref: format!("ref-{id}").into(),
            to: Msisdn::parse("+14155550100").unwrap(),
            from: Sender::parse("12345").unwrap(),
            text: "x".into(),
            media: Box::default(),
            channel: ChannelPref::Auto,
            fallback: FallbackPolicy::SmsTextOnly,
            campaign_id: "bf".into(),
            expires_at_ms: 0,
            priority: Priority::Marketing,
            tags: Box::default(),
            accepted_at_ms: 0,
            auto_reply: false,
            mms: None,
        }),
        state: DeliveryState::Delivered,
        error_code: 0,
        reason: "".into(),
        carrier: Some("smsc".into()),
        parts: 1,
        carrier_ids: vec![],
        note: None,
    }
}

/// A hub whose tenant `t` has webhook endpoints `a` (every kind) and
/// `b` (deliveries only), with its stream on or off.
fn hub_with_endpoints(
    dir: &std::path::Path,
    stream: bool,
) -> (Arc<EventHub>, crate::journal::Recovered) {
    let (j, rec) = Journal::open(dir, &JournalConfig::default()).unwrap();
    let all = EventKinds {
        delivery: true,
        inbound: true,
        opt: true,
        click: true,
    };
    let deliveries = EventKinds {
        delivery: true,
        ..EventKinds::default()
    };
    let hub = EventHub::new(j, Vec::<Arc<str>>::new(), Arc::new(WireEvents));
    let json: Arc<dyn crate::events::EventEncoder> = Arc::new(crate::webhooks::json::JsonEvents);
    let endpoints = [("a", all), ("b", deliveries)].map(|(name, kinds)| Destination {
        name: name.into(),
        kinds,
        encoder: json.clone(),
    });
    assert!(hub.add_tenant(
        "t",
        TenantSettings {
            stream,
            endpoints: endpoints.into(),
        }
    ));
    (Arc::new(hub), rec)
}

fn endpoint(h: &EventHub, name: &str) -> Arc<Endpoint> {
    h.endpoints()
        .into_iter()
        .find(|e| &**e.name() == name)
        .unwrap()
}

#[tokio::test]
async fn each_endpoint_and_the_stream_get_their_own_copy_acknowledged_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let (h, _) = hub_with_endpoints(dir.path(), true);
    h.publish_final(&[delivery_final(9)]).wait().await.unwrap();
    h.publish_notice("t", &inbound("hello"))
        .wait()
        .await
        .unwrap();
    // Stream: the delivery and the inbound; `a`: both; `b`: the delivery.
    assert_eq!(h.pending(), 5);
    let (a, b) = (endpoint(&h, "a"), endpoint(&h, "b"));
    assert_eq!(a.counts().ready, 2);
    assert_eq!(b.counts().ready, 1);
    let from_a = a.take(10);
    let json: serde_json::Value = serde_json::from_slice(&from_a[0].payload).unwrap();
    assert_eq!(json["type"], "delivery");
    assert_eq!(json["client_ref"], "ref-9");
    assert_eq!(json["id"], from_a[0].event_id);
    let stream = h.take("t", 1, 10);
    assert_eq!(stream.len(), 2);
    let ids: std::collections::HashSet<u64> =
        stream.iter().chain(&from_a).map(|e| e.event_id).collect();
    assert_eq!(ids.len(), 4, "every copy has its own id");
    assert!(pb::Event::decode(stream[0].payload.clone()).is_ok());
    // The stream's ack leaves the endpoints' copies alone.
    h.ack(
        "t",
        1,
        &stream.iter().map(|e| e.event_id).collect::<Vec<_>>(),
    );
    assert_eq!(h.pending(), 3);
    a.ack(&from_a);
    assert_eq!(h.pending(), 1);
    assert_eq!(h.snapshot().len(), 1, "b's copy is still carried");
    assert_eq!(b.counts().ready, 1);
}

#[tokio::test]
async fn a_restart_restores_what_each_destination_still_owes() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (h, _) = hub_with_endpoints(dir.path(), true);
        h.publish_final(&[delivery_final(1), delivery_final(2)])
            .wait()
            .await
            .unwrap();
        let a = endpoint(&h, "a");
        let first = a.take(1);
        a.ack(&first);
        let b = endpoint(&h, "b");
        let taken = b.take(10);
        b.dead_letter(&taken);
        assert_eq!(b.counts().dead, 2);
        let stream = h.take("t", 1, 10);
        h.ack("t", 1, &[stream[0].event_id]);
        // Acknowledgements reach the journal with the next record.
        h.publish_notice("t", &inbound("flush"))
            .wait()
            .await
            .unwrap();
    }
    let (h, rec) = hub_with_endpoints(dir.path(), true);
    let mut by_sink: Vec<(String, u64)> = rec
        .events
        .iter()
        .map(|e| (e.sink.clone(), e.message_id.0))
        .collect();
    by_sink.sort();
    assert_eq!(
        by_sink,
        vec![
            (String::new(), 0),
            (String::new(), 2),
            ("a".into(), 0),
            ("a".into(), 2),
            ("b".into(), 1),
            ("b".into(), 2),
        ]
    );
    h.restore(rec.events);
    assert_eq!(endpoint(&h, "a").counts().ready, 2);
    assert_eq!(
        endpoint(&h, "b").counts().ready,
        2,
        "dead letters are tried again after a restart"
    );
    assert_eq!(h.take("t", 1, 10).len(), 2);
}

#[tokio::test]
async fn dead_letters_wait_until_replayed_with_a_fresh_clock() {
    let dir = tempfile::tempdir().unwrap();
    let (h, _) = hub_with_endpoints(dir.path(), true);
    h.publish_final(&[delivery_final(1)]).wait().await.unwrap();
    let b = endpoint(&h, "b");
    let taken = b.take(10);
    let created = taken[0].created_ms;
    assert_eq!(b.since_ms(&taken[0]), created);
    b.dead_letter(&taken);
    assert_eq!(b.take(10).len(), 0, "dead letters are not sent");
    assert_eq!(h.snapshot().len(), 3, "but still carried");
    assert_eq!(b.replay(), 1);
    let again = b.take(10);
    assert_eq!(again.len(), 1);
    assert!(b.since_ms(&again[0]) >= created);
    b.ack(&again);
    assert_eq!(b.counts(), EndpointCounts::default());
}

#[tokio::test]
async fn without_a_stream_only_claimed_stream_events_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (h, _) = hub_with_endpoints(dir.path(), false);
    h.subscribe_connection("t", 7);
    h.claim("t", 7, [crate::model::MessageId(2)]);
    h.publish_final(&[delivery_final(1), delivery_final(2)])
        .wait()
        .await
        .unwrap();
    h.publish_notice("t", &inbound("hi")).wait().await.unwrap();
    // Message 1's stream event was acknowledged at once; 2's went to its
    // claimant; the inbound went to `a` only.
    assert!(h.take("t", 1, 10).is_empty());
    let own = h.take("t", 7, 10);
    assert_eq!(own.len(), 1);
    assert_eq!(own[0].message_id, crate::model::MessageId(2));
    assert_eq!(endpoint(&h, "a").counts().ready, 3);
    assert_eq!(endpoint(&h, "b").counts().ready, 2);
    assert_eq!(h.pending(), 1 + 3 + 2);
    // The claimant goes away unacknowledged: with no stream, it is done.
    h.release("t", 7);
    assert_eq!(h.pending(), 5);
    assert!(h.take("t", 1, 10).is_empty());
}

#[tokio::test]
async fn a_destination_removed_drops_what_it_held_and_takes_nothing_more() {
    let dir = tempfile::tempdir().unwrap();
    let (h, _) = hub_with_endpoints(dir.path(), true);
    h.publish_final(&[delivery_final(1), delivery_final(2), delivery_final(3)])
        .wait()
        .await
        .unwrap();
    let a = endpoint(&h, "a");
    let in_flight = a.take(1);
    a.dead_letter(&a.take(1));
    assert_eq!(a.counts().ready, 1);
    // Stream 3, `a` 3, `b` 3.
    assert_eq!(h.pending(), 9);
    // A copy for `a` made before the removal, durable after it.
    let late = h.publish_final(&[delivery_final(4)]);
    assert_eq!(h.remove_destination("t", "a"), Some(3));
    late.wait().await.unwrap();
    assert!(h.endpoint("t", "a").is_none());
    assert_eq!(a.counts(), EndpointCounts::default());
    // Its late copy was acknowledged when durable: stream 4, `b` 4.
    assert_eq!(h.pending(), 8);
    // Its sender's answer to what it had in flight changes nothing.
    a.ack(&in_flight);
    assert_eq!(h.pending(), 8);
    h.publish_final(&[delivery_final(5)]).wait().await.unwrap();
    assert_eq!(h.pending(), 10, "no copy for `a` any more");
    assert_eq!(h.snapshot().len(), 10);
    assert_eq!(h.remove_destination("t", "a"), None);
    assert_eq!(h.remove_destination("nobody", "b"), None);
}

#[tokio::test]
async fn an_endpoint_takes_the_kinds_a_reload_sets() {
    let dir = tempfile::tempdir().unwrap();
    let (h, _) = hub_with_endpoints(dir.path(), true);
    let b = endpoint(&h, "b");
    h.publish_notice("t", &inbound("before"))
        .wait()
        .await
        .unwrap();
    assert_eq!(b.counts().ready, 0, "`b` takes deliveries only");
    let inbound_only = EventKinds {
        inbound: true,
        ..EventKinds::default()
    };
    assert!(h.set_kinds("t", "b", inbound_only));
    assert_eq!(b.kinds(), inbound_only);
    h.publish_notice("t", &inbound("after"))
        .wait()
        .await
        .unwrap();
    h.publish_final(&[delivery_final(1)]).wait().await.unwrap();
    let got = b.take(10);
    assert_eq!(got.len(), 1);
    let json: serde_json::Value = serde_json::from_slice(&got[0].payload).unwrap();
    assert_eq!(json["type"], "inbound");
    assert!(!h.set_kinds("t", "nope", inbound_only));
}

#[tokio::test]
async fn the_stream_switched_off_drops_what_no_connection_took_and_switched_on_holds_again() {
    let dir = tempfile::tempdir().unwrap();
    let (h, _) = hub_with_endpoints(dir.path(), true);
    h.publish_final(&[delivery_final(1), delivery_final(2), delivery_final(3)])
        .wait()
        .await
        .unwrap();
    let taken = h.take("t", 1, 1);
    assert_eq!(taken.len(), 1);
    // Stream 3, `a` 3, `b` 3.
    assert_eq!(h.pending(), 9);
    assert_eq!(h.set_stream("t", false), 2, "the two no connection took");
    assert_eq!(h.pending(), 7);
    // The connection's answer still counts; one it gives back is done.
    h.release("t", 1);
    assert_eq!(h.pending(), 6);
    h.publish_final(&[delivery_final(4)]).wait().await.unwrap();
    assert!(h.take("t", 1, 10).is_empty());
    assert_eq!(h.pending(), 8, "copies for `a` and `b` only");
    assert_eq!(h.set_stream("t", true), 0);
    h.publish_final(&[delivery_final(5)]).wait().await.unwrap();
    let stream = h.take("t", 1, 10);
    assert_eq!(stream.len(), 1);
    assert_eq!(stream[0].message_id, crate::model::MessageId(5));
    assert_eq!(h.set_stream("nobody", false), 0);
}
