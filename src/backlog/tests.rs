use std::sync::Arc;

use super::*;

pub(crate) mod kit;

use crate::model::{FallbackPolicy, Message, MessageId, Msisdn};
use kit::for_tests;

fn messages(first: u64, n: u64, to: &str) -> Vec<Arc<Message>> {
    (first..first + n)
        .map(|i| {
            let mut m = (*crate::model::test_message(i, "hello", u64::MAX)).clone();
            m.to = Msisdn::parse(to).unwrap();
            Arc::new(m)
        })
        .collect()
}

#[tokio::test]
async fn beyond_the_budget_messages_wait_on_disk_and_page_back_in() {
    let dir = tempfile::tempdir().unwrap();
    let (backlog, ledger, scheduler, _) = for_tests(dir.path(), 16);
    let ms = messages(1, 40, "+14155550100");
    ledger.admit(&ms);
    backlog.enqueue_or_spill(&ms);
    assert_eq!(scheduler.in_memory(), 16);
    assert_eq!(backlog.spill().len(), 24);
    // Spilled messages leave the ledger (they live on disk).
    assert_eq!(ledger.live(), 16);

    // No room: nothing pages in.
    backlog.page_in().await;
    assert_eq!(backlog.spill().len(), 24);

    // The queue drains; the spill comes back in order, within the budget.
    let q = scheduler.queue("c").unwrap();
    let drained: Vec<u64> = q.drain().iter().map(|i| i.message.id.0).collect();
    assert_eq!(drained, (1..=16).collect::<Vec<_>>());
    backlog.page_in().await;
    assert!(scheduler.in_memory() <= 16, "{}", scheduler.in_memory());
    let mut seen: Vec<u64> = Vec::new();
    while scheduler.in_memory() > 0 {
        seen.extend(q.drain().iter().map(|i| i.message.id.0));
        backlog.page_in().await;
    }
    assert_eq!(seen, (17..=40).collect::<Vec<_>>());
    assert!(backlog.spill().is_empty());
}

#[tokio::test]
async fn transactional_traffic_has_room_beyond_a_full_budget() {
    let dir = tempfile::tempdir().unwrap();
    let (backlog, ledger, scheduler, _) = for_tests(dir.path(), 16);
    let blast = messages(1, 20, "+14155550100");
    ledger.admit(&blast);
    backlog.enqueue_or_spill(&blast);
    assert_eq!(scheduler.in_memory(), 16);
    let reset: Vec<Arc<Message>> = messages(100, 1, "+14155550101")
        .into_iter()
        .map(|m| {
            Arc::new(Message {
                priority: Priority::Transactional,
                tenant: "other".into(),
                ..(*m).clone()
            })
        })
        .collect();
    ledger.admit(&reset);
    backlog.enqueue_or_spill(&reset);
    assert_eq!(scheduler.in_memory(), 17, "the reset stays in memory");
    assert_eq!(backlog.spill().len(), 4);
}

#[tokio::test]
async fn a_message_no_route_takes_any_more_ends_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (backlog, ledger, scheduler, _) = for_tests(dir.path(), 16);
    let ms = messages(1, 1, "+447700900123");
    ledger.admit(&ms);
    backlog.enqueue(&ms);
    assert_eq!(scheduler.in_memory(), 0);
    assert!(ledger.get(MessageId(1)).is_none(), "ended, not live");
}

/// A fallback for a message that has already ended (expired or suppressed
/// before its SMS could be queued, e.g. while its landing page or short
/// link was being stored) queues nothing: its final is already out.
#[tokio::test]
async fn a_fallback_for_a_message_that_has_ended_queues_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (backlog, ledger, scheduler, receipts) = for_tests(dir.path(), 16);
    let mut m = (*messages(5, 1, "+14155550100")[0]).clone();
    m.media = Box::new(["abc".into()]);
    m.fallback = FallbackPolicy::SmsWithLink;
    let m = Arc::new(m);
    ledger.admit([&m]);
    receipts.end(m.id, DeliveryState::Expired, &"expired".into());
    assert!(ledger.get(m.id).is_none());
    backlog.fallback(m.clone(), "the MMSC refused it".into(), None);
    assert_eq!(scheduler.queue("c").unwrap().len(), 0, "nothing to send");
}

#[tokio::test]
async fn media_that_may_not_go_as_mms_falls_back_to_sms_with_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let (backlog, ledger, scheduler, _) = for_tests(dir.path(), 16);
    let mut m = (*messages(5, 1, "+14155550100")[0]).clone();
    m.media = Box::new(["abc".into()]);
    // MMS reaches +1 through `mm`, but the message asks for SMS.
    m.channel = crate::model::ChannelPref::Sms;
    m.fallback = FallbackPolicy::SmsWithLink;
    let m = Arc::new(m);
    ledger.admit([&m]);
    backlog.enqueue(std::slice::from_ref(&m));
    let items = scheduler.queue("c").unwrap().drain();
    assert_eq!(items.len(), 1);
    let sms = &items[0].message;
    assert!(sms.media.is_empty());
    assert!(
        sms.text
            .starts_with("hello\nhttps://m.example.com/m/0000000000000005/abc/"),
        "{}",
        sms.text
    );
}

#[test]
fn fallback_text_trims_the_text_never_the_link() {
    let links = LinkSigner::new(&[1; 32]);
    let mut m = (*crate::model::test_message(9, &"x".repeat(2000), u64::MAX)).clone();
    m.media = Box::new(["a".into(), "b".into()]);
    m.fallback = FallbackPolicy::SmsWithLink;
    let text = fallback_text(&m, "https://m.example.com", &links, None).unwrap();
    assert_eq!(text.chars().count(), crate::model::MAX_TEXT_CHARS);
    let link = format!("https://m.example.com{}", links.path(9, "b"));
    assert!(text.ends_with(&link), "{text}");
    // With its landing page recorded, one short link for both media.
    m.text = "Look!".into();
    let page = super::fallback::landing_page(&m, Some("Acme"));
    let code = links.landing_code(&m.tenant, &page);
    let text = fallback_text(&m, "https://m.example.com", &links, Some(&code)).unwrap();
    assert_eq!(text, format!("Look!\nhttps://m.example.com/p/{code}"));
    assert!(text.chars().count() <= 160, "one segment: {text}");
    // Trimmed for the link when the text is long.
    m.text = "y".repeat(2000).into();
    let text = fallback_text(&m, "https://m.example.com", &links, Some(&code)).unwrap();
    assert_eq!(text.chars().count(), crate::model::MAX_TEXT_CHARS);
    assert!(text.ends_with(&format!("\nhttps://m.example.com/p/{code}")));

    m.fallback = FallbackPolicy::None;
    assert_eq!(
        fallback_text(&m, "", &links, None),
        Err("the fallback policy is none")
    );
    m.fallback = FallbackPolicy::SmsTextOnly;
    m.text = "  ".into();
    assert_eq!(
        fallback_text(&m, "", &links, None),
        Err("there is no text for SMS")
    );
}

#[tokio::test]
async fn a_carrier_a_reload_removes_hands_what_it_queued_to_the_routes_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let (backlog, ledger, scheduler, receipts) = for_tests(dir.path(), 1000);
    let ms = messages(1, 5, "+14155550100");
    ledger.admit(&ms);
    backlog.enqueue(&ms);
    let old = scheduler.queue("c").unwrap();
    assert_eq!(old.len(), 5);
    let removed = backlog.router().sms().carriers()["c"].clone();

    // What a reload does (`gateway::carriers`): carrier `d` added, its
    // queue first, then routes naming only it; then `c`'s queue out.
    let mut config = kit::config(dir.path(), 1000);
    config.carriers[0].name = "d".into();
    config.routes[0].carriers = vec!["d".into()];
    let queue = scheduler.add_sms_carrier(&config.carriers[0], &config.tenants);
    let d = crate::carrier::smpp::SmppCarrier::new(&config.carriers[0], receipts, None);
    let carriers = crate::model::hashing::FastMap::from_iter([(d.name().clone(), d)]);
    backlog.router().replace_sms(crate::route::SmsTable::new(
        &config.routes,
        [Arc::from("d")],
        carriers,
    ));
    let q = scheduler.remove("c").unwrap();
    backlog.retire_carrier(removed, q);

    assert_eq!(old.len(), 0);
    let moved: Vec<u64> = queue.drain().iter().map(|i| i.message.id.0).collect();
    assert_eq!(moved, vec![1, 2, 3, 4, 5], "in order, all still live");
    assert_eq!(ledger.live(), 5);
    assert_eq!(backlog.retired_carriers(), vec![Arc::<str>::from("c")]);
    // A batch routed by the table of before the reload still lands in the
    // removed queue: the next sweep moves it too.
    old.push(messages(6, 1, "+14155550100").iter());
    backlog.failover();
    assert_eq!(queue.len(), 1);
}

fn stored(ms: &[Arc<Message>]) -> Vec<crate::spill::StoredQueued> {
    ms.iter()
        .map(|m| crate::spill::StoredQueued {
            id: m.id,
            tenant: m.tenant.clone(),
            priority: m.priority,
            stored: crate::journal::stored_form(m),
        })
        .collect()
}

/// A restart restores its queued messages slice by slice; when the spill
/// cannot be written for a later slice, what earlier slices spilled comes
/// back in front of it, so the tenant's order holds.
#[tokio::test]
async fn a_spill_failure_mid_restore_keeps_the_order() {
    let dir = tempfile::tempdir().unwrap();
    let (backlog, _ledger, scheduler, _) = for_tests(dir.path(), 16);
    let first = messages(1, 1_000, "+14155550100");
    assert!(backlog.restore_queued(stored(&first)).is_empty());
    assert_eq!(backlog.spill().len(), 984);
    // The disk fills up.
    backlog
        .spill()
        .fail_writes
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let second = messages(1_001, 100, "+14155550100");
    assert!(backlog.restore_queued(stored(&second)).is_empty());
    assert_eq!(backlog.spill().len(), 0);
    let q = scheduler.queue("c").unwrap();
    let drained: Vec<u64> = q.drain().iter().map(|i| i.message.id.0).collect();
    assert_eq!(drained, (1..=1_100).collect::<Vec<_>>());
}
