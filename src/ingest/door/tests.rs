use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::FutureExt;

use super::*;

fn cfg() -> DoorConfig {
    DoorConfig {
        max_connections: 10,
        max_connections_per_ip: 3,
        max_unauthenticated: 4,
        auth_failure_delay: Duration::from_millis(200),
        auth_failure_delay_max: Duration::from_secs(5),
        auth_failures_per_minute: 10,
    }
}

fn at(ip: &str) -> SocketAddr {
    SocketAddr::new(ip.parse::<IpAddr>().unwrap(), 40000)
}

/// True when the ticket's eviction has fired.
fn evicted(t: &mut Ticket) -> bool {
    t.evicted().now_or_never().is_some()
}

#[test]
fn the_next_connection_over_the_per_address_cap_is_refused() {
    let door = Door::new(cfg());
    let mut held: Vec<Ticket> = (0..3)
        .map(|_| door.admit(at("10.0.0.1")).unwrap())
        .collect();
    for t in &mut held {
        t.authenticated();
    }
    assert_eq!(
        door.admit(at("10.0.0.1")).unwrap_err(),
        Refusal::PerIp { limit: 3 }
    );
    // Another address is not affected.
    let _other = door.admit(at("10.0.0.2")).unwrap();
    // A closed connection frees its place.
    held.pop();
    let _again = door.admit(at("10.0.0.1")).unwrap();
    assert_eq!(door.connections(), 4);
}

#[test]
fn ipv6_addresses_count_per_64_and_mapped_ipv4_as_ipv4() {
    let door = Door::new(cfg());
    let _a = door.admit(at("2001:db8:1:2::1")).unwrap();
    let _b = door.admit(at("2001:db8:1:2::ffff:1")).unwrap();
    let _c = door.admit(at("2001:db8:1:2:8000::9")).unwrap();
    assert!(matches!(
        door.admit(at("2001:db8:1:2::77")),
        Err(Refusal::PerIp { .. })
    ));
    let _d = door.admit(at("2001:db8:1:3::1")).unwrap();
    let _e = door.admit(at("192.0.2.7")).unwrap();
    let _f = door.admit(at("::ffff:192.0.2.7")).unwrap();
    assert_eq!(
        address_key("::ffff:192.0.2.7".parse().unwrap()),
        "192.0.2.7".parse::<IpAddr>().unwrap()
    );
}

#[test]
fn a_full_unauthenticated_budget_closes_the_oldest_waiting_connection() {
    let door = Door::new(cfg());
    let mut waiting: Vec<Ticket> = (1..=4)
        .map(|i| door.admit(at(&format!("10.0.1.{i}"))).unwrap())
        .collect();
    assert_eq!(door.unauthenticated(), 4);
    assert!(!waiting.iter_mut().any(evicted));
    // A fifth: the oldest waiting one is told to close, the others stay.
    let mut newest = door.admit(at("10.0.1.5")).unwrap();
    assert!(evicted(&mut waiting[0]));
    assert!(!waiting[1..].iter_mut().any(evicted));
    assert!(!evicted(&mut newest));
    assert_eq!(door.unauthenticated(), 4);
    // Authenticated connections are never evicted.
    newest.authenticated();
    for i in 6..=9 {
        let _ = door.admit(at(&format!("10.0.1.{i}"))).unwrap();
    }
    assert!(!evicted(&mut newest));
}

#[test]
fn the_whole_cap_makes_room_from_waiting_connections_else_refuses() {
    let door = Door::new(DoorConfig {
        max_unauthenticated: 10,
        ..cfg()
    });
    let mut all: Vec<Ticket> = (1..=10)
        .map(|i| door.admit(at(&format!("10.0.2.{i}"))).unwrap())
        .collect();
    for t in &mut all[..9] {
        t.authenticated();
    }
    // One connection is still waiting for its Hello: it makes room.
    let mut newcomer = door.admit(at("10.0.2.11")).unwrap();
    assert!(evicted(&mut all[9]));
    drop(all.pop());
    newcomer.authenticated();
    // Every slot authenticated: nobody else gets in.
    assert_eq!(door.connections(), 10);
    assert_eq!(
        door.admit(at("10.0.2.12")).unwrap_err(),
        Refusal::Full { limit: 10 }
    );
}

#[tokio::test(start_paused = true)]
async fn failed_authentication_is_slowed_then_locked_out_per_address() {
    let door = Door::new(cfg());
    let t = door.admit(at("10.0.4.1")).unwrap();
    let delays: Vec<u64> = (0..10)
        .map(|_| {
            assert!(t.check_auth().is_ok());
            t.auth_failed().as_millis() as u64
        })
        .collect();
    assert_eq!(
        delays,
        [200, 400, 800, 1600, 3200, 5000, 5000, 5000, 5000, 5000]
    );
    // Ten failures in the minute: refused without looking at the token.
    assert_eq!(t.check_auth(), Err(FAILURE_WINDOW));
    // Another address is not affected, nor is a new connection from it
    // spared.
    let other = door.admit(at("10.0.4.2")).unwrap();
    assert!(other.check_auth().is_ok());
    let again = door.admit(at("10.0.4.1")).unwrap();
    tokio::time::advance(Duration::from_secs(20)).await;
    assert_eq!(again.check_auth(), Err(Duration::from_secs(40)));
    // A minute after the failures, the address may try again, but the
    // next failure is still slowed by those of the last minute.
    tokio::time::advance(Duration::from_secs(40)).await;
    assert!(again.check_auth().is_ok());
    assert_eq!(again.auth_failed(), Duration::from_millis(200));
}

#[tokio::test(start_paused = true)]
async fn failures_of_many_addresses_are_forgotten_after_the_window() {
    let door = Door::new(cfg());
    for i in 0..5000u32 {
        let ip = IpAddr::from((0x0a00_0000u32 + i).to_be_bytes());
        let t = door.admit(SocketAddr::new(ip, 1)).unwrap();
        t.auth_failed();
    }
    tokio::time::advance(FAILURE_WINDOW).await;
    let t = door.admit(at("10.9.9.9")).unwrap();
    t.auth_failed();
    assert!(door.throttle.tracked() <= 2048);
    assert_eq!(door.connections(), 1);
}

#[test]
fn shedding_closes_the_oldest_waiting_connection_only() {
    let door = Door::new(cfg());
    let mut authed = door.admit(at("10.0.5.1")).unwrap();
    authed.authenticated();
    let mut a = door.admit(at("10.0.5.2")).unwrap();
    let mut b = door.admit(at("10.0.5.3")).unwrap();
    assert!(door.shed());
    assert!(evicted(&mut a));
    assert!(!evicted(&mut b));
    assert!(door.shed());
    assert!(evicted(&mut b));
    // Nothing left waiting: authenticated connections are never shed.
    assert!(!door.shed());
    assert!(!evicted(&mut authed));
}
