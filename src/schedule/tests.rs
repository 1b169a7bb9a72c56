//! Quiet hours at the carrier queue, on tokio's paused clock (which
//! `model::now_ms` follows).

use std::time::Duration;

use super::*;
use crate::model::{ChannelPref, FallbackPolicy, MessageId, Msisdn, Priority, Sender};

/// A config whose tenant's quiet window is placed so that, for a New York
/// number, it is now 23:00 of a 21:00–08:00 night: it started two hours ago
/// and ends in nine.
fn config_with_night_now(ny: Msisdn) -> Config {
    let now = now_ms();
    let offset = crate::model::quiet::utc_offset_minutes(ny, now).unwrap() as i64;
    let local_min = ((now as i64 / 60_000 + offset).rem_euclid(1440)) as u16;
    let at = |m: i64| {
        let m = m.rem_euclid(1440);
        format!("{:02}:{:02}", m / 60, m % 60)
    };
    let window = format!(
        "{}-{}",
        at(local_min as i64 - 120),
        at(local_min as i64 + 540)
    );
    let mut c: Config = toml::from_str(&format!(
        r#"
        [[tenants]]
        name = "t"
        token = "0123456789"
        quiet_hours = "{window}"
        [[carriers]]
        name = "c"
        [[carriers.binds]]
        address = "127.0.0.1:1"
        system_id = "s"
        password = "p"
        "#
    ))
    .unwrap();
    c.data_dir = std::env::temp_dir();
    c
}

fn message(id: u64, to: Msisdn, p: Priority) -> Item {
    Item {
        message: Arc::new(Message {
            id: MessageId(id),
            tenant: "t".into(),
            client_ref: id.to_string().into(),
            to,
            from: Sender::parse("12345").unwrap(),
            text: "hi".into(),
            media: Box::default(),
            channel: ChannelPref::Auto,
            fallback: FallbackPolicy::SmsTextOnly,
            campaign_id: Box::default(),
            expires_at_ms: now_ms() + 48 * 3600 * 1000,
            priority: p,
            tags: Box::default(),
            accepted_at_ms: now_ms(),
            auto_reply: false,
            mms: None,
        }),
        permits: 1,
    }
}

#[tokio::test(start_paused = true)]
async fn marketing_waits_for_the_local_morning_and_transactional_goes_at_once() {
    let ny = Msisdn::parse("+12125550100").unwrap();
    let s = Scheduler::new(&config_with_night_now(ny));
    let q = s.queue("c").unwrap();
    let start = now_ms();

    assert!(matches!(
        q.quiet_check(message(1, ny, Priority::Transactional), start),
        QuietCheck::Go(_)
    ));
    let QuietCheck::Held(until) = q.quiet_check(message(2, ny, Priority::Marketing), start) else {
        panic!("held at night");
    };
    // 08:00 local is nine hours (less the seconds already into this minute) away.
    let wait = until - start;
    assert!(
        wait > 9 * 3600 * 1000 - 60_000 && wait <= 9 * 3600 * 1000,
        "{wait} ms"
    );
    // A non-NANP recipient's local time is unknown: it is not held.
    let uk = Msisdn::parse("+447700900123").unwrap();
    assert!(matches!(
        q.quiet_check(message(3, uk, Priority::Marketing), start),
        QuietCheck::Go(_)
    ));

    // Nothing is released before the morning...
    tokio::time::advance(Duration::from_secs(8 * 3600)).await;
    assert_eq!(q.release_held(now_ms()), Some(until));
    assert!(q.is_empty());
    assert_eq!(q.held(), 1);
    // ...and at 08:00 it is back in the queue.
    tokio::time::advance(Duration::from_millis(until - now_ms())).await;
    assert_eq!(q.release_held(now_ms()), None);
    assert_eq!(q.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_held_message_whose_validity_ends_first_expires() {
    let ny = Msisdn::parse("+12125550100").unwrap();
    let s = Scheduler::new(&config_with_night_now(ny));
    let q = s.queue("c").unwrap();
    let mut item = message(1, ny, Priority::Marketing);
    Arc::get_mut(&mut item.message).unwrap().expires_at_ms = now_ms() + 3600 * 1000;
    assert!(matches!(
        q.quiet_check(item, now_ms()),
        QuietCheck::Expires(_)
    ));
}
