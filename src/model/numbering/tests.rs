use super::*;

fn country(s: &str) -> Option<Country> {
    Some(s.parse().unwrap())
}

#[test]
fn e164_numbers_of_real_plans_are_accepted() {
    for (input, value) in [
        ("+14155550100", 14_155_550_100u64),
        ("+447700900123", 447_700_900_123),
        ("+41445554411", 41_445_554_411),
        ("+61412345678", 61_412_345_678),
        ("+4915123456789", 4_915_123_456_789),
        ("+80012345678", 80_012_345_678), // international freephone (non-geographic)
    ] {
        let m = parse_e164(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(m.as_u64(), value, "{input}");
        assert_eq!(m.to_string(), input, "events carry +E.164");
    }
}

#[test]
fn national_digits_without_plus_are_refused_without_default_country() {
    // The case: read as +41… (Switzerland) before.
    assert_eq!(parse_e164("4155550100"), Err(NumberError::NotE164));
    assert_eq!(
        parse_recipient("4155550100", None),
        Err(NumberError::NotE164)
    );
    let text = NumberError::NotE164.to_string();
    assert!(
        text.contains("'+'") && text.contains("default_country"),
        "{text}"
    );
}

#[test]
fn spaces_and_punctuation_are_refused_in_e164() {
    // Leading space: not E.164 (and not national either without a country).
    assert_eq!(
        parse_recipient(" +447700900123", None),
        Err(NumberError::NotE164)
    );
    assert_eq!(parse_e164("+44 7700 900123"), Err(NumberError::NotDigits));
    assert_eq!(parse_e164("+1-415-555-0100"), Err(NumberError::NotDigits));
    assert_eq!(parse_e164("+447700900123 "), Err(NumberError::NotDigits));
    assert_eq!(parse_e164("+"), Err(NumberError::Empty));
    assert_eq!(parse_e164(""), Err(NumberError::Empty));
}

#[test]
fn country_code_and_length_come_from_the_plan() {
    // +41 is Switzerland, whose numbers have 9 digits after the code.
    match parse_e164("+4155550100") {
        Err(NumberError::Length {
            code: 41,
            region: "CH",
            national: 8,
            allowed,
        }) => assert!(allowed.contains('9'), "{allowed}"),
        other => panic!("{other:?}"),
    }
    // NANP: 10 digits after +1 (7: Canada's universal access numbers).
    let e = parse_e164("+1415555010").unwrap_err();
    assert!(
        e.to_string()
            .contains("9 digits after country code +1 (US); that plan allows 7 or 10"),
        "{e}"
    );
    assert!(parse_e164("+141555501001").is_err());
    // No country uses +28x or +0.
    assert_eq!(
        parse_e164("+28123456789"),
        Err(NumberError::UnknownCountryCode("281".into()))
    );
    assert_eq!(
        parse_e164("+0123456789"),
        Err(NumberError::UnknownCountryCode("012".into()))
    );
    assert_eq!(
        parse_e164("+1234567890123456"),
        Err(NumberError::TooLong(16))
    );
}

#[test]
fn default_country_reads_national_numbers_and_normalises_them() {
    let us = country("US");
    for input in [
        "4155550100",
        "(415) 555-0100",
        "1 415 555 0100",
        "415.555.0100",
    ] {
        assert_eq!(
            parse_recipient(input, us).map(|m| m.to_string()),
            Ok("+14155550100".to_owned()),
            "{input}"
        );
    }
    // Trunk prefix 0 dropped (UK), leading zero kept where the plan keeps it (Italy).
    assert_eq!(
        parse_recipient("07700 900123", country("GB"))
            .unwrap()
            .to_string(),
        "+447700900123"
    );
    assert_eq!(
        parse_recipient("06 1234 5678", country("IT"))
            .unwrap()
            .to_string(),
        "+390612345678"
    );
    // E.164 input stays strict even with a default country.
    assert_eq!(
        parse_recipient("+44 7700 900123", country("GB")),
        Err(NumberError::NotDigits)
    );
    assert_eq!(
        parse_recipient("+447700900123", country("US"))
            .unwrap()
            .to_string(),
        "+447700900123"
    );
}

#[test]
fn bad_national_numbers_say_why() {
    let us = country("US");
    let e = parse_recipient("415555", us).unwrap_err();
    assert!(
        matches!(&e, NumberError::National { country, .. } if country.to_string() == "US"),
        "{e:?}"
    );
    assert!(e.to_string().contains("\"415555\""), "{e}");
    let e = parse_recipient("1-800-FLOWERS", us).unwrap_err();
    assert!(e.to_string().contains("digits, spaces, dashes"), "{e}");
    let e = parse_recipient(&"5".repeat(500), us).unwrap_err();
    assert!(
        e.to_string().len() < 250,
        "peer input is shortened in the detail: {e}"
    );
    assert_eq!(parse_recipient("  ", us), Err(NumberError::Empty));
}

#[test]
fn countries_are_iso_codes_with_a_plan() {
    assert_eq!("us".parse::<Country>().unwrap().to_string(), "US");
    assert_eq!("GB".parse::<Country>().unwrap().to_string(), "GB");
    for bad in ["", "USA", "XX", "U1", "001", "🇺🇸"] {
        assert!(bad.parse::<Country>().is_err(), "{bad:?}");
    }
}

#[test]
fn allowed_lengths_read_naturally() {
    assert_eq!(allowed(1 << 10), "10");
    assert_eq!(allowed((1 << 9) | (1 << 10)), "9 or 10");
    assert_eq!(allowed((1 << 5) | (1 << 6) | (1 << 7)), "5, 6 or 7");
}

/// Neither parser panics on arbitrary input (deterministic pseudo-random
/// strings over the characters that matter, and raw bytes).
#[test]
fn no_input_panics() {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let alphabet: Vec<char> = "0123456789+ -.()#*xX;ext=,éa\u{0}".chars().collect();
    let countries = [
        country("US"),
        country("GB"),
        country("IT"),
        country("DE"),
        None,
    ];
    for _ in 0..20_000 {
        let len = (next() % 24) as usize;
        let s: String = (0..len)
            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
            .collect();
        let c = countries[(next() % countries.len() as u64) as usize];
        if let Ok(m) = parse_recipient(&s, c) {
            let again = parse_e164(&m.to_string()).expect("normalised output is valid E.164");
            assert_eq!(again, m, "{s:?}");
        }
    }
}
