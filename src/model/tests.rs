use super::*;

#[test]
fn msisdn_parses_e164() {
    let m = Msisdn::parse("+14155550100").unwrap();
    assert_eq!(m.as_u64(), 14_155_550_100);
    assert!(m.is_nanp());
    assert_eq!(m.to_string(), "+14155550100");
    for n in [m, Msisdn::parse("+1234567").unwrap(), Msisdn(u64::MAX)] {
        assert_eq!(n.e164().as_str(), n.to_string());
    }
    assert_eq!(
        Msisdn::parse("447700900123").unwrap().digits(),
        "447700900123"
    );
    assert!(!Msisdn::parse("+447700900123").unwrap().is_nanp());
}

#[test]
fn msisdn_rejects_bad_input() {
    assert_eq!(Msisdn::parse(""), Err(MsisdnError::Empty));
    assert_eq!(Msisdn::parse("+"), Err(MsisdnError::Empty));
    assert_eq!(Msisdn::parse("+1415-555"), Err(MsisdnError::NotDigits));
    assert_eq!(Msisdn::parse("+04155550100"), Err(MsisdnError::LeadingZero));
    assert_eq!(Msisdn::parse("+123456"), Err(MsisdnError::Length(6)));
    assert_eq!(
        Msisdn::parse("+1234567890123456"),
        Err(MsisdnError::Length(16))
    );
    assert!(Msisdn::parse("+999999999999999").is_ok());
    assert!(Msisdn::from_u64(12).is_err());
}

#[test]
fn sender_forms() {
    assert_eq!(
        Sender::parse("12345").unwrap(),
        Sender::ShortCode("12345".into())
    );
    assert!(matches!(
        Sender::parse("+18005550199").unwrap(),
        Sender::LongCode(_)
    ));
    assert!(matches!(
        Sender::parse("18005550199").unwrap(),
        Sender::LongCode(_)
    ));
    assert_eq!(
        Sender::parse("ACME Shop").unwrap(),
        Sender::Alphanumeric("ACME Shop".into())
    );
    assert!(Sender::parse("").is_err());
    assert!(Sender::parse("12").is_err());
    assert!(Sender::parse("TooLongSenderId").is_err());
    assert!(Sender::parse("bad$char").is_err());
}

/// A sender's wire address: a number's digits without `+`, the others as
/// given (opt-out programs are looked up by it).
#[test]
fn sender_address_is_the_wire_form() {
    for (given, address) in [
        ("12345", "12345"),
        ("+18005550199", "18005550199"),
        ("18005550199", "18005550199"),
        ("ACME Shop", "ACME Shop"),
        ("+999999999999999", "999999999999999"),
    ] {
        assert_eq!(
            &*Sender::parse(given).unwrap().address(),
            address,
            "{given}"
        );
    }
}

#[test]
fn message_id_round_trips_hex() {
    let id = MessageId(0x1234_abcd);
    assert_eq!(id.to_string(), "000000001234abcd");
    assert_eq!(id.to_string().parse::<MessageId>().unwrap(), id);
}

#[test]
fn terminal_states() {
    assert!(!DeliveryState::Submitted.is_terminal());
    assert!(DeliveryState::Delivered.is_terminal());
    assert!(DeliveryState::Suppressed.is_terminal());
}

/// A message keeps its strings boxed at their exact length: a decoder's
/// growth slack (four tags' room for one) is not kept for hours in a queue,
/// and the struct with its `Arc` counts stays within mimalloc's 192-byte
/// size class (`queue_memory`; the next class is 224 bytes).
#[test]
fn a_message_keeps_no_spare_room() {
    assert!(size_of::<Message>() + 16 <= 192, "{}", size_of::<Message>());
    let mut tags = Vec::with_capacity(8);
    tags.extend(["promo", "spring", "", "vip"].map(str::to_owned));
    let kept = boxed_strs(tags);
    assert_eq!(
        kept.iter().map(|t| &**t).collect::<Vec<_>>(),
        ["promo", "spring", "", "vip"],
        "every tag kept, in order"
    );
    assert!(boxed_strs(Vec::new()).is_empty());
}
