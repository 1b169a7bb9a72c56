use std::sync::Arc;

use super::*;
use crate::model::{ChannelPref, Message, Msisdn};

fn route(prefix: &str, carriers: &[&str]) -> RouteConfig {
    RouteConfig {
        prefix: prefix.into(),
        carriers: carriers.iter().map(|c| (*c).to_owned()).collect(),
    }
}

fn n(s: &str) -> Msisdn {
    Msisdn::parse(s).unwrap()
}

fn all(names: &[&str]) -> Vec<Arc<str>> {
    names.iter().map(|n| Arc::from(*n)).collect()
}

fn mms_to(to: &str, channel: ChannelPref) -> Message {
    let mut m = (*crate::model::test_message(1, "hi", u64::MAX)).clone();
    m.to = n(to);
    m.media = Box::new(["m1".into()]);
    m.channel = channel;
    m
}

#[test]
fn without_a_table_every_carrier_takes_everything_in_order() {
    let routes = Routes::new(&[], all(&["a", "b"]));
    assert_eq!(&**routes.pick(n("+441234567890"), |_| true).unwrap(), "a");
    assert_eq!(
        &**routes.pick(n("+441234567890"), |c| c == "b").unwrap(),
        "b"
    );
}

#[test]
fn the_first_matching_route_wins_and_prefers_a_carrier_that_is_up() {
    let routes = Routes::new(
        &[route("+44", &["uk1", "uk2"]), route("", &["world"])],
        all(&["uk1", "uk2", "world"]),
    );
    let uk = n("+447700900123");
    assert_eq!(&**routes.pick(uk, |_| true).unwrap(), "uk1");
    assert_eq!(&**routes.pick(uk, |c| c == "uk2").unwrap(), "uk2");
    // Nothing up: the route's first carrier holds the traffic.
    assert_eq!(&**routes.pick(uk, |_| false).unwrap(), "uk1");
    // Another route's carrier being up does not matter.
    assert_eq!(&**routes.pick(uk, |c| c == "world").unwrap(), "uk1");
    assert_eq!(
        &**routes.pick(n("+14155550100"), |_| false).unwrap(),
        "world"
    );
}

#[test]
fn no_matching_route_is_no_carrier() {
    let routes = Routes::new(&[route("+44", &["uk1"])], all(&["uk1"]));
    assert!(routes.pick(n("+14155550100"), |_| true).is_none());
}

#[test]
fn mms_says_why_a_message_cannot_go_as_mms() {
    let none = MmsRoutes::new(&["+1".into()], &[], Vec::new());
    assert_eq!(
        none.pick(&mms_to("+14155550100", ChannelPref::Auto), |_| true),
        Err(NoMms::NoMmsc)
    );
    let routes = MmsRoutes::new(
        &["+1".into()],
        &[route("+1415", &["west"])],
        all(&["east", "west"]),
    );
    assert_eq!(
        routes.pick(&mms_to("+14155550100", ChannelPref::Sms), |_| true),
        Err(NoMms::SmsRequested)
    );
    let uk = mms_to("+447700900123", ChannelPref::Auto);
    assert_eq!(routes.pick(&uk, |_| true), Err(NoMms::Unreachable(uk.to)));
    let ny = mms_to("+12125550100", ChannelPref::Auto);
    assert_eq!(routes.pick(&ny, |_| true), Err(NoMms::NoRoute(ny.to)));
    assert_eq!(
        NoMms::NoRoute(ny.to).to_string(),
        "no MMS route reaches +12125550100"
    );
}

#[test]
fn mms_prefers_an_mmsc_taking_traffic_else_the_routes_first() {
    let routes = MmsRoutes::new(&["+1".into()], &[], all(&["east", "west"]));
    let m = mms_to("+14155550100", ChannelPref::Auto);
    assert_eq!(&*routes.pick(&m, |c| c == "west").unwrap(), "west");
    assert_eq!(&*routes.pick(&m, |_| false).unwrap(), "east");
    // A route naming an MMSC that does not exist skips it.
    let routes = MmsRoutes::new(
        &["+1".into()],
        &[route("+1", &["gone", "west"])],
        all(&["east", "west"]),
    );
    assert_eq!(&*routes.pick(&m, |_| false).unwrap(), "west");
    assert_eq!(routes.candidates(m.to), vec![&Arc::<str>::from("west")]);
}
