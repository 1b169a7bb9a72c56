//! The fair queue on tokio's paused clock: every limit level holds its cap
//! (within 5% over 10 s, never above it in any 1 s window), nothing blocks
//! behind a waiting sender, and priorities, weights and campaigns interleave.

use super::*;
use crate::model::{ChannelPref, FallbackPolicy, MessageId, Msisdn};
use crate::settings::{BrandConfig, SenderOverride};

fn tenant(name: &str, weight: u32, rate: f64) -> TenantConfig {
    TenantConfig {
        name: name.into(),
        token: crate::settings::Secret::new("0123456789"),
        default_validity: Duration::from_secs(60),
        weight,
        rate,
        ..TenantConfig::default()
    }
}

fn item(id: u64, tenant: &str, from: &str, campaign: &str, p: Priority) -> Item {
    Item {
        message: Arc::new(Message {
            id: MessageId(id),
            tenant: tenant.into(),
            client_ref: id.to_string().into(),
            to: Msisdn::parse("+14155550100").unwrap(),
            from: Sender::parse(from).unwrap(),
            text: "x".into(),
            media: Box::default(),
            channel: ChannelPref::Auto,
            fallback: FallbackPolicy::SmsTextOnly,
            campaign_id: campaign.into(),
            expires_at_ms: u64::MAX,
            priority: p,
            tags: Box::default(),
            accepted_at_ms: 0,
            auto_reply: false,
            mms: None,
        }),
        permits: 1,
    }
}

/// Pops until `horizon` of virtual time passes or the queue empties;
/// returns (time since start, item) for each pop.
async fn drive(
    q: &mut FairQueue,
    limits: &mut SenderLimits,
    horizon: Duration,
) -> Vec<(Duration, Item)> {
    let t0 = Instant::now();
    let base_ms = 1_000_000_000u64; // an arbitrary UTC day boundary offset
    let mut out = Vec::new();
    loop {
        let now = Instant::now();
        if now - t0 >= horizon {
            return out;
        }
        let now_ms = base_ms + (now - t0).as_millis() as u64;
        match q.pop(now, now_ms, limits) {
            Pop::Item(i) => out.push((now - t0, i)),
            Pop::WaitUntil(at) => tokio::time::sleep_until(at.min(t0 + horizon)).await,
            Pop::Empty => return out,
        }
    }
}

/// Asserts `times` over 10 s hold `cap`/s: within 5% of 10×cap overall and
/// never more than `cap` in any 1 s window.
fn assert_rate(times: &[Duration], cap: usize) {
    let total = times
        .iter()
        .filter(|t| **t < Duration::from_secs(10))
        .count();
    let want = cap * 10;
    assert!(
        (total as f64 - want as f64).abs() <= want as f64 * 0.05,
        "{total} in 10 s, cap {cap}/s"
    );
    for (i, t) in times.iter().enumerate() {
        let window = times[i..]
            .iter()
            .take_while(|u| **u - *t < Duration::from_secs(1))
            .count();
        assert!(
            window <= cap,
            "{window} in the second after {t:?} (cap {cap})"
        );
    }
}

fn no_limits() -> SenderLimits {
    SenderLimits::new(SendersConfig::default())
}

#[tokio::test(start_paused = true)]
async fn sender_rate_holds() {
    let mut limits = SenderLimits::new(SendersConfig {
        short_code_rate: 50.0,
        ..SendersConfig::default()
    });
    let mut q = FairQueue::new([&tenant("a", 1, 0.0)], 0.0);
    for i in 0..2000 {
        q.push(
            item(i, "a", "12345", "c", Priority::Marketing),
            false,
            Instant::now(),
        );
    }
    let got = drive(&mut q, &mut limits, Duration::from_secs(10)).await;
    assert_rate(&got.iter().map(|g| g.0).collect::<Vec<_>>(), 50);
    let waits = q.take_waits();
    assert!(waits[Level::Sender as usize] >= 400, "{waits:?}");
    assert_eq!(
        waits[Level::Tenant as usize] + waits[Level::Carrier as usize],
        0
    );
    assert_eq!(q.take_waits(), [0; 4], "taken once");
}

#[tokio::test(start_paused = true)]
async fn tenant_rate_holds_across_its_senders() {
    let mut q = FairQueue::new([&tenant("a", 1, 30.0)], 0.0);
    for i in 0..2000 {
        let from = ["12345", "23456", "34567"][i as usize % 3];
        q.push(
            item(i, "a", from, "c", Priority::Marketing),
            false,
            Instant::now(),
        );
    }
    let got = drive(&mut q, &mut no_limits(), Duration::from_secs(10)).await;
    assert_rate(&got.iter().map(|g| g.0).collect::<Vec<_>>(), 30);
    let waits = q.take_waits();
    assert!(waits[Level::Tenant as usize] >= 200, "{waits:?}");
    assert_eq!(waits[Level::Sender as usize], 0, "{waits:?}");
}

#[tokio::test(start_paused = true)]
async fn carrier_rate_holds_across_tenants() {
    let mut q = FairQueue::new([&tenant("a", 1, 0.0), &tenant("b", 1, 0.0)], 80.0);
    for i in 0..2000 {
        let t = if i % 2 == 0 { "a" } else { "b" };
        q.push(
            item(i, t, "12345", "c", Priority::Marketing),
            false,
            Instant::now(),
        );
    }
    let got = drive(&mut q, &mut no_limits(), Duration::from_secs(10)).await;
    assert_rate(&got.iter().map(|g| g.0).collect::<Vec<_>>(), 80);
    let waits = q.take_waits();
    assert!(waits[Level::Carrier as usize] >= 700, "{waits:?}");
}

#[tokio::test(start_paused = true)]
async fn segments_count_against_limits() {
    let mut limits = SenderLimits::new(SendersConfig {
        short_code_rate: 30.0,
        ..SendersConfig::default()
    });
    let mut q = FairQueue::new([&tenant("a", 1, 0.0)], 0.0);
    for i in 0..500 {
        let mut it = item(i, "a", "12345", "c", Priority::Marketing);
        it.permits = 3;
        q.push(it, false, Instant::now());
    }
    let got = drive(&mut q, &mut limits, Duration::from_secs(10)).await;
    // 30 segments/s = 10 three-part messages/s.
    assert_rate(&got.iter().map(|g| g.0).collect::<Vec<_>>(), 10);
}

#[tokio::test(start_paused = true)]
async fn daily_and_brand_caps_hold_until_the_next_utc_day() {
    let mut limits = SenderLimits::new(SendersConfig {
        daily_cap: 5,
        overrides: vec![SenderOverride {
            sender: "23456".into(),
            rate: None,
            daily_cap: Some(100),
            brand: Some("acme".into()),
        }],
        brands: vec![BrandConfig {
            name: "acme".into(),
            daily_cap: 3,
        }],
        ..SendersConfig::default()
    });
    let mut q = FairQueue::new([&tenant("a", 1, 0.0)], 0.0);
    for i in 0..10 {
        q.push(
            item(i, "a", "12345", "c", Priority::Marketing),
            false,
            Instant::now(),
        );
        q.push(
            item(100 + i, "a", "23456", "c", Priority::Marketing),
            false,
            Instant::now(),
        );
    }
    let got = drive(&mut q, &mut limits, Duration::from_secs(3600)).await;
    let by = |s: &str| {
        got.iter()
            .filter(|g| g.1.message.from.to_string() == s)
            .count()
    };
    assert_eq!(by("12345"), 5, "sender daily cap");
    assert_eq!(by("23456"), 3, "brand daily cap");
    assert!(q.take_waits()[Level::DailyCap as usize] >= 2);
    let now = Instant::now();
    let Pop::WaitUntil(at) = q.pop(now, 1_000_000_000 + 3_600_000, &mut limits) else {
        panic!()
    };
    // The test's wall clock reads 1,003,600,000 ms (unix); the next UTC
    // midnight is at 1,036,800,000 ms (day 12).
    let wait = at - now;
    assert_eq!(wait, Duration::from_millis(1_036_800_000 - 1_003_600_000));
}

#[tokio::test(start_paused = true)]
async fn reloaded_limits_keep_todays_counts_and_apply_from_the_next_message() {
    let caps = |sender_cap: u64, brand_cap: u64| SendersConfig {
        daily_cap: sender_cap,
        overrides: vec![SenderOverride {
            sender: "23456".into(),
            rate: None,
            daily_cap: Some(100),
            brand: Some("acme".into()),
        }],
        brands: vec![BrandConfig {
            name: "acme".into(),
            daily_cap: brand_cap,
        }],
        ..SendersConfig::default()
    };
    let mut limits = SenderLimits::new(caps(10, 10));
    let mut q = FairQueue::new([&tenant("a", 1, 0.0)], 0.0);
    let push = |q: &mut FairQueue, from: u64, n: u64| {
        for i in 0..n {
            q.push(
                item(
                    from + i,
                    "a",
                    if from < 100 { "12345" } else { "23456" },
                    "c",
                    Priority::Marketing,
                ),
                false,
                Instant::now(),
            );
        }
    };
    push(&mut q, 0, 4);
    push(&mut q, 100, 4);
    assert_eq!(
        drive(&mut q, &mut limits, Duration::from_secs(60))
            .await
            .len(),
        8
    );
    // Lowered to 6 (sender) and 5 (brand): 2 and 1 more today, not 6 and 5.
    limits.set_config(caps(6, 5));
    q.set_limits([&tenant("a", 1, 0.0)], 0.0);
    push(&mut q, 10, 10);
    push(&mut q, 110, 10);
    let got = drive(&mut q, &mut limits, Duration::from_secs(3600)).await;
    let by = |s: &str| {
        got.iter()
            .filter(|g| g.1.message.from.to_string() == s)
            .count()
    };
    assert_eq!((by("12345"), by("23456")), (2, 1));
    // A carrier rate switched on by a reload paces the next messages.
    q.set_limits([&tenant("a", 1, 0.0)], 2.0);
    limits.set_config(caps(0, 0));
    let got = drive(&mut q, &mut limits, Duration::from_millis(2_900)).await;
    assert_eq!(got.len(), 6, "2/s for 2.9 s");
}

#[tokio::test(start_paused = true)]
async fn a_waiting_sender_blocks_no_other_sender() {
    let mut limits = SenderLimits::new(SendersConfig {
        overrides: vec![SenderOverride {
            sender: "12345".into(),
            rate: Some(1.0),
            daily_cap: None,
            brand: None,
        }],
        ..SendersConfig::default()
    });
    let mut q = FairQueue::new([&tenant("a", 1, 0.0)], 0.0);
    for i in 0..100 {
        q.push(
            item(i, "a", "12345", "c", Priority::Marketing),
            false,
            Instant::now(),
        );
    }
    for i in 0..100 {
        q.push(
            item(1000 + i, "a", "23456", "c", Priority::Marketing),
            false,
            Instant::now(),
        );
    }
    let got = drive(&mut q, &mut limits, Duration::from_millis(500)).await;
    // All of the unlimited sender's messages go at once; the limited one sent one.
    assert_eq!(got.iter().filter(|g| g.1.message.id.0 >= 1000).count(), 100);
    assert!(got.iter().all(|g| g.0 == Duration::ZERO));
    assert_eq!(got.iter().filter(|g| g.1.message.id.0 < 1000).count(), 1);
}

/// Fairness bound: a tenant's transactional message is served before any
/// marketing message queued earlier by anyone; with equal weights a second
/// tenant's marketing message waits at most one turn (one message of each
/// other active tenant).
#[tokio::test(start_paused = true)]
async fn one_tenants_blast_does_not_delay_another() {
    let mut q = FairQueue::new([&tenant("a", 1, 0.0), &tenant("b", 1, 0.0)], 0.0);
    let now = Instant::now();
    for i in 0..1_000_000 {
        q.push(
            item(i, "a", "12345", "blast", Priority::Marketing),
            false,
            now,
        );
    }
    for i in 0..10 {
        q.push(
            item(
                2_000_000 + i,
                "b",
                "55555",
                "reset",
                Priority::Transactional,
            ),
            false,
            now,
        );
    }
    for i in 0..10 {
        q.push(
            item(3_000_000 + i, "b", "55555", "promo", Priority::Marketing),
            false,
            now,
        );
    }
    let mut limits = no_limits();
    let mut order = Vec::new();
    for _ in 0..40 {
        let Pop::Item(i) = q.pop(now, 0, &mut limits) else {
            panic!()
        };
        order.push(i.message.id.0);
    }
    // The 10 transactional messages go first.
    assert!(
        order[..10]
            .iter()
            .all(|id| (2_000_000..2_000_010).contains(id)),
        "{order:?}"
    );
    // Then b's marketing alternates with a's blast: all 10 within 20 pops.
    let b_marketing: Vec<usize> = order
        .iter()
        .enumerate()
        .filter(|(_, id)| (3_000_000..3_000_010).contains(*id))
        .map(|(k, _)| k)
        .collect();
    assert_eq!(b_marketing.len(), 10);
    assert!(*b_marketing.last().unwrap() < 10 + 20, "{b_marketing:?}");
}

#[tokio::test(start_paused = true)]
async fn weights_share_turns() {
    let mut q = FairQueue::new([&tenant("a", 3, 0.0), &tenant("b", 1, 0.0)], 0.0);
    let now = Instant::now();
    for i in 0..100 {
        q.push(item(i, "a", "12345", "c", Priority::Marketing), false, now);
        q.push(
            item(1000 + i, "b", "23456", "c", Priority::Marketing),
            false,
            now,
        );
    }
    let mut limits = no_limits();
    let mut a = 0;
    for _ in 0..40 {
        let Pop::Item(i) = q.pop(now, 0, &mut limits) else {
            panic!()
        };
        if &*i.message.tenant == "a" {
            a += 1;
        }
    }
    assert_eq!(a, 30);
}

#[tokio::test(start_paused = true)]
async fn campaigns_interleave_and_front_pushes_keep_their_place() {
    let mut q = FairQueue::new([&tenant("a", 1, 0.0)], 0.0);
    let now = Instant::now();
    for i in 0..5 {
        q.push(item(i, "a", "12345", "x", Priority::Marketing), false, now);
    }
    for i in 0..5 {
        q.push(
            item(10 + i, "a", "12345", "y", Priority::Marketing),
            false,
            now,
        );
    }
    q.push(item(99, "a", "12345", "x", Priority::Marketing), true, now);
    let mut limits = no_limits();
    let mut order = Vec::new();
    while let Pop::Item(i) = q.pop(now, 0, &mut limits) {
        order.push(i.message.id.0);
    }
    assert_eq!(order, vec![99, 10, 0, 11, 1, 12, 2, 13, 3, 14, 4]);
    assert!(q.is_empty());
}

#[test]
fn toll_free_numbers_are_recognised() {
    assert!(is_toll_free(Msisdn::parse("+18005550100").unwrap()));
    assert!(is_toll_free(Msisdn::parse("+18885550100").unwrap()));
    assert!(!is_toll_free(Msisdn::parse("+14155550100").unwrap()));
    assert!(!is_toll_free(Msisdn::parse("+448005550100").unwrap()));
}

/// A shared tenant rate reloaded on a carrier where the tenant has queued
/// nothing yet: the new rate reaches it, and switched off it is dropped
/// (its lease stops) rather than attached to the tenant's next message.
#[test]
fn a_shared_tenant_rate_follows_a_reload_before_any_message() {
    #[derive(Debug, Default)]
    struct Recorded(parking_lot::Mutex<Vec<f64>>);
    impl crate::shaping::shared::SharedPace for Recorded {
        fn ready_at(&self, now: Instant) -> Instant {
            now
        }
        fn commit(&self, _: Instant, _: u32) {}
        fn set_rate(&self, per_second: f64) {
            self.0.lock().push(per_second);
        }
    }
    let mut q = FairQueue::new([&tenant("a", 1, 10.0)], 0.0);
    let shared = Arc::new(Recorded::default());
    q.set_tenant_shared("a", shared.clone());
    q.set_limits([&tenant("a", 1, 20.0)], 0.0);
    assert_eq!(*shared.0.lock(), [20.0]);
    q.set_limits([&tenant("a", 1, 0.0)], 0.0);
    assert_eq!(Arc::strong_count(&shared), 1, "dropped with its rate");
}
