use bytes::Bytes;

use super::*;
use crate::smpp::pdu::{Body, Pdu, Tlv};

fn receipt_sm(text: &str) -> DeliverSm {
    DeliverSm {
        esm_class: ESM_DELIVERY_RECEIPT,
        registered_delivery: 0,
        short_message: Bytes::copy_from_slice(text.as_bytes()),
        ..DeliverSm::default()
    }
}

fn parse(text: &str) -> Receipt {
    parse_receipt(&receipt_sm(text)).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

const STANDARD: &str = "id:0123456789 sub:001 dlvrd:001 submit date:2101011200 \
                        done date:2101011201 stat:DELIVRD err:000 text:Hello world";

#[test]
fn standard_receipt() {
    let r = parse(STANDARD);
    assert_eq!(r.message_id.as_ref(), b"0123456789");
    assert_eq!(r.state, ReceiptState::Delivered);
    assert_eq!(r.error_code, Some(0));
    assert_eq!(r.err_raw.as_deref(), Some(&b"000"[..]));
    assert_eq!(r.network_error, None);
    assert_eq!(r.submitted, Some(1));
    assert_eq!(r.delivered, Some(1));
    assert_eq!(r.submit_date.as_deref(), Some(&b"2101011200"[..]));
    assert_eq!(r.done_date.as_deref(), Some(&b"2101011201"[..]));
    assert_eq!(r.text.as_deref(), Some(&b"Hello world"[..]));
    assert!(!r.intermediate);
    assert!(r.is_final());
}

#[test]
fn fields_are_slices_of_the_short_message() {
    let sm = receipt_sm(STANDARD);
    let range = sm.short_message.as_ptr_range();
    let r = parse_receipt(&sm).unwrap();
    for field in [
        Some(&r.message_id),
        r.submit_date.as_ref(),
        r.done_date.as_ref(),
        r.text.as_ref(),
        r.err_raw.as_ref(),
    ] {
        assert!(range.contains(&field.unwrap().as_ptr()));
    }
}

#[test]
fn twelve_digit_dates() {
    let r = parse(
        "id:64567564356765435676 sub:001 dlvrd:001 submit date:190608165232 \
         done date:190608165237 stat:DELIVRD err:000 text:Hello World",
    );
    assert_eq!(r.submit_date.as_deref(), Some(&b"190608165232"[..]));
    assert_eq!(r.done_date.as_deref(), Some(&b"190608165237"[..]));
    assert_eq!(r.message_id.as_ref(), b"64567564356765435676");
}

#[test]
fn capital_text_key() {
    let r = parse(
        "id:IIIIIIIIII sub:001 dlvrd:000 submit date:2101011200 done date:2101011201 \
         stat:UNDELIV err:001 Text:Hi there",
    );
    assert_eq!(r.text.as_deref(), Some(&b"Hi there"[..]));
    assert_eq!(r.state, ReceiptState::Undeliverable);
    assert_eq!(r.error_code, Some(1));
    assert_eq!(r.delivered, Some(0));
}

#[test]
fn missing_text_field() {
    let r = parse(
        "id:42 sub:001 dlvrd:001 submit date:2101011200 done date:2101011201 stat:EXPIRED err:000",
    );
    assert_eq!(r.text, None);
    assert_eq!(r.state, ReceiptState::Expired);
    assert_eq!(r.error_code, Some(0));
    // And an empty text field.
    let r = parse("id:42 stat:DELIVRD err:000 text:");
    assert_eq!(r.text.as_deref(), Some(&b""[..]));
}

#[test]
fn long_ids_of_every_shape() {
    let ids = [
        "0000000012345678",
        "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "9223372036854775807",
        "550e8400-e29b-41d4-a716-446655440000",
        "0A1B2C3D4E5F",
        "7",
    ];
    for id in ids {
        let r = parse(&format!(
            "id:{id} sub:001 dlvrd:001 submit date:2101011200 done date:2101011201 stat:DELIVRD err:000 text:x"
        ));
        assert_eq!(r.message_id.as_ref(), id.as_bytes(), "{id}");
    }
}

#[test]
fn fields_in_another_order_with_unknown_fields_and_odd_case() {
    let r = parse(
        "Stat:REJECTD ERR:0B1 ID:ab-12 foo:bar Done Date:2101011201 SUB:1 \
         Dlvrd:0 Submit_Date:2101011200 x-vendor:7 text:rejected",
    );
    assert_eq!(r.message_id.as_ref(), b"ab-12");
    assert_eq!(r.state, ReceiptState::Rejected);
    assert_eq!(r.error_code, Some(0x0B1));
    assert_eq!(r.submitted, Some(1));
    assert_eq!(r.delivered, Some(0));
    assert_eq!(r.submit_date.as_deref(), Some(&b"2101011200"[..]));
    assert_eq!(r.done_date.as_deref(), Some(&b"2101011201"[..]));
    assert_eq!(r.text.as_deref(), Some(&b"rejected"[..]));
}

#[test]
fn err_decimal_or_hex() {
    for (err, code) in [
        ("000", Some(0)),
        ("001", Some(1)),
        ("255", Some(255)),
        ("1234", Some(1234)),
        ("00B", Some(0x0B)),
        ("0x1F", Some(0x1F)),
        ("FFF", Some(0xFFF)),
        ("n/a", None),
        ("", None),
        ("99999999999", None),
    ] {
        let r = parse(&format!("id:1 stat:UNDELIV err:{err} text:x"));
        assert_eq!(r.error_code, code, "err:{err}");
        assert_eq!(r.err_raw.as_deref(), Some(err.as_bytes()));
    }
}

#[test]
fn stat_words() {
    let cases: &[(&[u8], ReceiptState, bool)] = &[
        (b"DELIVRD", ReceiptState::Delivered, true),
        (b"delivrd", ReceiptState::Delivered, true),
        (b"EXPIRED", ReceiptState::Expired, true),
        (b"DELETED", ReceiptState::Deleted, true),
        (b"UNDELIV", ReceiptState::Undeliverable, true),
        (b"ACCEPTD", ReceiptState::Accepted, false),
        (b"UNKNOWN", ReceiptState::Unknown, true),
        (b"REJECTD", ReceiptState::Rejected, true),
        (b"ENROUTE", ReceiptState::Enroute, false),
        (b"ACKED", ReceiptState::Enroute, false),
        (b"BUFFRED", ReceiptState::Enroute, false),
        (b"Failed", ReceiptState::Undeliverable, true),
        (b"SKIPPED", ReceiptState::Skipped, true),
    ];
    for (word, state, is_final) in cases {
        let got = ReceiptState::from_stat_word(word);
        assert_eq!(&got, state, "{}", String::from_utf8_lossy(word));
        assert_eq!(
            got.is_final(),
            *is_final,
            "{}",
            String::from_utf8_lossy(word)
        );
    }
    let other = ReceiptState::from_stat_word(b"NOCRED");
    assert_eq!(other, ReceiptState::Other(Bytes::from_static(b"NOCRED")));
    assert!(!other.is_final());
    assert_eq!(other.stat_word(), b"NOCRED");
    assert_eq!(ReceiptState::Undeliverable.stat_word(), b"UNDELIV");
}

#[test]
fn message_state_values() {
    let expected = [
        ReceiptState::Enroute,
        ReceiptState::Delivered,
        ReceiptState::Expired,
        ReceiptState::Deleted,
        ReceiptState::Undeliverable,
        ReceiptState::Accepted,
        ReceiptState::Unknown,
        ReceiptState::Rejected,
        ReceiptState::Skipped,
    ];
    for (value, state) in (1u8..=9).zip(expected) {
        assert_eq!(ReceiptState::from_message_state(value), Some(state));
    }
    assert_eq!(ReceiptState::from_message_state(0), None);
    assert_eq!(ReceiptState::from_message_state(10), None);
}

#[test]
fn tlvs_without_text() {
    let sm = DeliverSm {
        esm_class: ESM_DELIVERY_RECEIPT,
        tlvs: vec![
            Tlv::from_c_string(tag::RECEIPTED_MESSAGE_ID, b"A1B2C3"),
            Tlv::from_u8(tag::MESSAGE_STATE, 5),
            Tlv::new(
                tag::NETWORK_ERROR_CODE,
                Bytes::from_static(&[3, 0x00, 0x22]),
            ),
        ],
        ..DeliverSm::default()
    };
    let r = parse_receipt(&sm).unwrap();
    assert_eq!(r.message_id.as_ref(), b"A1B2C3");
    assert_eq!(r.state, ReceiptState::Undeliverable);
    assert_eq!(
        r.network_error,
        Some(NetworkError {
            network_type: 3,
            error_code: 0x22
        })
    );
    assert_eq!(r.error_code, Some(0x22));
    assert_eq!(r.err_raw, None);
    assert_eq!(r.submit_date, None);
    assert_eq!(r.text, None);
}

#[test]
fn tlv_id_wins_over_text_id() {
    let mut sm = receipt_sm(STANDARD);
    sm.tlvs = vec![
        Tlv::from_c_string(tag::RECEIPTED_MESSAGE_ID, b"75BCD15"),
        Tlv::from_u8(tag::MESSAGE_STATE, 8),
    ];
    let r = parse_receipt(&sm).unwrap();
    assert_eq!(r.message_id.as_ref(), b"75BCD15");
    assert_eq!(r.state, ReceiptState::Rejected);
    // Text fields still fill in what the TLVs lack.
    assert_eq!(r.done_date.as_deref(), Some(&b"2101011201"[..]));
    assert_eq!(r.error_code, Some(0));
}

#[test]
fn unusable_tlvs_fall_back_to_text() {
    let mut sm = receipt_sm(STANDARD);
    sm.tlvs = vec![
        Tlv::new(tag::RECEIPTED_MESSAGE_ID, Bytes::from_static(b"\0")),
        Tlv::from_u8(tag::MESSAGE_STATE, 0),
        Tlv::new(tag::NETWORK_ERROR_CODE, Bytes::from_static(&[3, 1])),
    ];
    let r = parse_receipt(&sm).unwrap();
    assert_eq!(r.message_id.as_ref(), b"0123456789");
    assert_eq!(r.state, ReceiptState::Delivered);
    assert_eq!(r.network_error, None);
    // A receipted_message_id without its NUL and with padding.
    sm.tlvs = vec![Tlv::new(
        tag::RECEIPTED_MESSAGE_ID,
        Bytes::from_static(b" abc "),
    )];
    assert_eq!(parse_receipt(&sm).unwrap().message_id.as_ref(), b"abc");
}

#[test]
fn receipt_in_message_payload() {
    let sm = DeliverSm {
        esm_class: ESM_DELIVERY_RECEIPT,
        tlvs: vec![Tlv::new(
            tag::MESSAGE_PAYLOAD,
            Bytes::from_static(STANDARD.as_bytes()),
        )],
        ..DeliverSm::default()
    };
    let r = parse_receipt(&sm).unwrap();
    assert_eq!(r.message_id.as_ref(), b"0123456789");
    assert_eq!(r.state, ReceiptState::Delivered);
}

#[test]
fn intermediate_notification() {
    let mut sm = receipt_sm(
        "id:77 sub:001 dlvrd:000 submit date:2101011200 done date:2101011200 stat:ACCEPTD err:000",
    );
    sm.esm_class = ESM_INTERMEDIATE_NOTIFICATION;
    assert!(is_receipt(&sm));
    let r = parse_receipt(&sm).unwrap();
    assert!(r.intermediate);
    assert!(!r.is_final());
    // Even with a final-looking state.
    sm.short_message = Bytes::from_static(b"id:77 stat:DELIVRD");
    assert!(!parse_receipt(&sm).unwrap().is_final());
}

#[test]
fn is_receipt_reads_the_message_type_bits() {
    let mut sm = receipt_sm(STANDARD);
    for (esm_class, expected) in [
        (0x04, true),
        (0x44, true),
        (0x05, true),
        (0x20, true),
        (0x00, false),
        (0x08, false),
        (0x40, false),
        (0x0C, false),
    ] {
        sm.esm_class = esm_class;
        assert_eq!(is_receipt(&sm), expected, "esm_class {esm_class:#04x}");
    }
}

#[test]
fn whitespace_nuls_and_padding() {
    let r = parse("  id:abc   sub:001  stat:DELIVRD\0");
    assert_eq!(r.message_id.as_ref(), b"abc");
    assert_eq!(r.state, ReceiptState::Delivered);
    let r = parse("id:abc\r\nstat:expired\r\n");
    assert_eq!(r.state, ReceiptState::Expired);
}

#[test]
fn missing_id_or_state() {
    assert_eq!(
        parse_receipt(&receipt_sm("sub:001 stat:DELIVRD")),
        Err(ReceiptError::MissingId)
    );
    assert_eq!(
        parse_receipt(&receipt_sm("id: stat:DELIVRD")),
        Err(ReceiptError::MissingId)
    );
    assert_eq!(
        parse_receipt(&receipt_sm("id:1 sub:001 err:000")),
        Err(ReceiptError::MissingState)
    );
    assert_eq!(parse_receipt(&receipt_sm("")), Err(ReceiptError::MissingId));
    assert_eq!(
        parse_receipt(&receipt_sm("hello, is it me you're looking for")),
        Err(ReceiptError::MissingId)
    );
}

#[test]
fn text_runs_to_the_end() {
    let r = parse("id:1 stat:DELIVRD text:id:2 stat:EXPIRED");
    assert_eq!(r.message_id.as_ref(), b"1");
    assert_eq!(r.state, ReceiptState::Delivered);
    assert_eq!(r.text.as_deref(), Some(&b"id:2 stat:EXPIRED"[..]));
}

#[test]
fn garbage_never_panics() {
    let mut x: u64 = 0x1234_5678_9ABC_DEF1;
    let alphabet = b"id:subdlvrtaeoxTS 0123456789_\0\t";
    for _ in 0..20_000 {
        let len = (x % 90) as usize;
        let text: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                alphabet[(x % alphabet.len() as u64) as usize]
            })
            .collect();
        let _ = parse_receipt(&DeliverSm {
            esm_class: 0x04,
            short_message: Bytes::from(text),
            ..DeliverSm::default()
        });
    }
}

#[test]
fn format_round_trips_through_parse() {
    let text = format_receipt_text(
        "0A1B2C",
        1,
        1,
        "2101011200",
        "2101011201",
        "DELIVRD",
        0,
        "Hello, this is a long message text",
    );
    assert_eq!(
        text,
        "id:0A1B2C sub:001 dlvrd:001 submit date:2101011200 done date:2101011201 \
         stat:DELIVRD err:000 text:Hello, this is a lon"
    );
    let r = parse(&text);
    assert_eq!(r.message_id.as_ref(), b"0A1B2C");
    assert_eq!(r.state, ReceiptState::Delivered);
    assert_eq!(r.text.as_deref(), Some("Hello, this is a lon".as_bytes()));
    // Multi-byte characters are cut on a character boundary.
    let text = format_receipt_text(
        "1",
        1,
        0,
        "",
        "",
        "UNDELIV",
        1234,
        "ééééééééééééééééééééééé",
    );
    assert!(
        text.ends_with("err:1234 text:éééééééééééééééééééé"),
        "{text}"
    );
}

#[test]
fn receipt_from_a_decoded_deliver_sm() {
    let sm = receipt_sm(STANDARD);
    let wire = Pdu::new(9, Body::DeliverSm(sm)).to_bytes();
    let Body::DeliverSm(sm) = Pdu::decode(wire).unwrap().body else {
        panic!()
    };
    assert!(is_receipt(&sm));
    assert_eq!(parse_receipt(&sm).unwrap().state, ReceiptState::Delivered);
}

#[test]
fn date_keys_take_any_run_of_spaces_tabs_or_underscores() {
    // Keys longer than their plain spelling still match (the key is
    // compared after its length is checked), and a key that only looks
    // like one does not.
    let r = parse(
        "id:7  sub:001 dlvrd:001 submit__date:2101011200 \
         DONE \t  DATE:2101011201 stat:delivrd err:000 text:x",
    );
    assert_eq!(r.message_id.as_ref(), b"7");
    assert_eq!(r.submit_date.as_deref(), Some(&b"2101011200"[..]));
    assert_eq!(r.done_date.as_deref(), Some(&b"2101011201"[..]));
    assert_eq!(r.state, ReceiptState::Delivered);
    let r = parse("id:7 submitdate:2101011200 done-date:2101011201 stats:x stat:UNDELIV");
    assert_eq!(r.submit_date, None);
    assert_eq!(r.done_date, None);
    assert_eq!(r.state, ReceiptState::Undeliverable);
}

/// Case-insensitive key comparison where `_` (and any run of spaces) in the
/// text matches a space in `want`.
fn key_is(key: &[u8], want: &[u8]) -> bool {
    let mut k = key.iter().copied().peekable();
    for &w in want {
        if w == b' ' {
            let mut any = false;
            while let Some(b' ' | b'\t' | b'_') = k.peek() {
                k.next();
                any = true;
            }
            if !any {
                return false;
            }
        } else if k.next().map(|b| b.to_ascii_lowercase()) != Some(w) {
            return false;
        }
    }
    k.next().is_none()
}

/// The parser before the single pass (one scan to skip spaces, one for the
/// colon, every key compared with `key_is`), kept as the oracle of
/// [`the_one_pass_scan_finds_what_the_old_scan_found`].
fn old_parse(s: &[u8]) -> TextFields {
    let mut fields = TextFields::default();
    let mut pos = 0;
    while pos < s.len() {
        while pos < s.len() && is_space(s[pos]) {
            pos += 1;
        }
        let Some(colon) = s[pos..].iter().position(|&b| b == b':').map(|i| pos + i) else {
            break;
        };
        let key = key_before(&s[pos..colon]);
        let start = colon + 1;
        if key_is(key, b"text") {
            fields.text.get_or_insert(start..s.len());
            break;
        }
        let end = s[start..]
            .iter()
            .position(|&b| is_space(b))
            .map_or(s.len(), |i| start + i);
        let slot = if key_is(key, b"id") {
            &mut fields.id
        } else if key_is(key, b"sub") {
            &mut fields.sub
        } else if key_is(key, b"err") {
            &mut fields.err
        } else if key_is(key, b"stat") {
            &mut fields.stat
        } else if key_is(key, b"dlvrd") {
            &mut fields.dlvrd
        } else if key_is(key, b"done date") {
            &mut fields.done_date
        } else if key_is(key, b"submit date") {
            &mut fields.submit_date
        } else {
            pos = end;
            continue;
        };
        slot.get_or_insert(start..end);
        pos = end;
    }
    fields
}

/// The one-pass scan finds the same ranges as the old one for the standard
/// layout and for 50,000 texts drawn from keys in odd case, separators
/// (spaces, tabs, `_`, NUL, CR, LF, form feed, the vertical tab), stray
/// colons, words and non-ASCII bytes (a Latin-1 byte, the Kelvin sign).
#[test]
fn the_one_pass_scan_finds_what_the_old_scan_found() {
    use rand::{RngExt, SeedableRng};
    let fixed: [&[u8]; 6] = [
        STANDARD.as_bytes(),
        b"",
        b":::",
        b"id:1 SUBMIT__DATE:2 Done \t Date:3 stat: x text:",
        b"  junk words id :7 stat:DELIVRD\0\0",
        b"text",
    ];
    for text in fixed {
        assert_eq!(TextFields::scan(text), old_parse(text), "{text:?}");
    }
    let pieces: [&[u8]; 26] = [
        b"id",
        b"ID",
        b"sub",
        b"Sub",
        b"dlvrd",
        b"DLVRD",
        b"submit",
        b"SUBMIT",
        b"done",
        b"Done",
        b"date",
        b"DATE",
        b"stat",
        b"STAT",
        b"err",
        b"ERR",
        b"text",
        b"Text",
        b"idd",
        b"stats",
        b"0A1B",
        b"DELIVRD",
        b"2101011200",
        b"x",
        b"txt",
        b"dat",
    ];
    let gaps: [&[u8]; 14] = [
        b" ",
        b"  ",
        b"_",
        b"\t",
        b"\0",
        b"\n",
        b"\r",
        b"\x0b",
        b"\x0c",
        b":",
        b"",
        b" :",
        b"\xc4",
        "\u{212A}".as_bytes(),
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5EC0_11DE);
    for _ in 0..50_000 {
        let mut text = Vec::new();
        for _ in 0..rng.random_range(0..14) {
            text.extend_from_slice(pieces[rng.random_range(0..pieces.len())]);
            text.extend_from_slice(gaps[rng.random_range(0..gaps.len())]);
        }
        assert_eq!(TextFields::scan(&text), old_parse(&text), "{text:?}");
    }
}

/// A date key is its first word, a run of at least one space, tab or `_`,
/// and `date`, in any letter case; nothing else.
#[test]
fn date_keys_need_a_run_between_their_words() {
    for key in [&b"done date"[..], b"Done_\tDATE", b"done  __ date"] {
        assert!(date_key(key, b"done"), "{key:?}");
    }
    for key in [
        &b"donedate"[..],
        b"done\0date",
        b"done\ndate",
        b"done date ",
        b"don date",
    ] {
        assert!(!date_key(key, b"done"), "{key:?}");
    }
    assert!(date_key(b"SUBMIT_date", b"submit"));
    assert!(!date_key(b"submitdate", b"submit"));
}

/// A text in Appendix B's layout is read by the fast path, with the
/// ranges the scan finds; so is each of 50,000 such texts with random
/// values (colons, NULs and other bytes in them, values missing) and one
/// byte replaced, added or taken out at random: wherever the fast path
/// answers, its answer is the scan's, and a layout it does not know goes
/// to the scan.
#[test]
fn the_standard_layout_takes_the_fast_path_to_the_scans_ranges() {
    use rand::{RngExt, SeedableRng};
    let simulator = format_receipt_text(
        "0a1b2c3d4e5f6071",
        1,
        1,
        "2612080012",
        "2612080013",
        "DELIVRD",
        0,
        "Hello: a text",
    );
    for text in [
        STANDARD.as_bytes(),
        simulator.as_bytes(),
        &STANDARD.as_bytes()[..95],
    ] {
        let fast = TextFields::standard(text);
        assert!(fast.is_some(), "{:?}", String::from_utf8_lossy(text));
        assert_eq!(fast.unwrap(), TextFields::scan(text));
    }
    let values: [&[u8]; 10] = [
        b"",
        b"0A1B",
        b"001",
        b"2101011200",
        b"DELIVRD",
        b"a:b",
        b"x\0",
        b"\xc4",
        b"id:7",
        b"TEXT:",
    ];
    let edits: [u8; 9] = [b' ', b'\t', b'\0', b':', b'_', b'\n', b'S', b'x', 0xC4];
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xFA57_9A7E);
    let (mut fast_taken, mut scanned) = (0, 0);
    for round in 0..50_000 {
        let mut text = Vec::new();
        for key in STANDARD_KEYS {
            text.extend_from_slice(key);
            text.extend_from_slice(values[rng.random_range(0..values.len())]);
        }
        if rng.random_bool(0.7) {
            text.extend_from_slice(b" text:");
            text.extend_from_slice(values[rng.random_range(0..values.len())]);
        }
        // One text in four as generated; the others edited once.
        if round % 4 != 0 {
            let at = rng.random_range(0..text.len());
            let b = edits[rng.random_range(0..edits.len())];
            match rng.random_range(0..3) {
                0 => text[at] = b,
                // Anywhere, the end included.
                1 => text.insert(rng.random_range(0..=text.len()), b),
                _ => {
                    text.remove(at);
                }
            }
        }
        let scan = TextFields::scan(&text);
        match TextFields::standard(&text) {
            Some(fast) => {
                assert_eq!(fast, scan, "{:?}", String::from_utf8_lossy(&text));
                fast_taken += 1;
            }
            None => scanned += 1,
        }
        assert_eq!(TextFields::parse(&text), scan);
    }
    // Both paths were taken, often.
    assert!(
        fast_taken > 5_000 && scanned > 5_000,
        "{fast_taken} fast, {scanned} scanned"
    );
}
