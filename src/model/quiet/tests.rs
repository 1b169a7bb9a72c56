use super::*;

/// A NANP number with area code `npa`.
fn nanp(npa: u16) -> Msisdn {
    Msisdn::parse(&format!("+1{npa}5550100")).unwrap()
}

/// Unix ms of a UTC civil time.
fn utc(y: i64, mo: u32, d: u32, h: i64, mi: i64) -> u64 {
    (days_from_civil(y, mo, d) * DAY_MS + h * HOUR_MS + mi * MINUTE_MS) as u64
}

/// Unix ms of a wall time in New York, given the offset (hours) in force.
fn ny(y: i64, mo: u32, d: u32, h: i64, mi: i64, offset_h: i64) -> u64 {
    (utc(y, mo, d, h, mi) as i64 - offset_h * HOUR_MS) as u64
}

const NYC: u16 = 212;

// === table ===

#[test]
fn table_parses_with_over_300_unique_codes() {
    let t = Table::parse(TABLE_CSV).expect("table parses");
    let codes: Vec<u16> = t.codes().collect();
    assert!(codes.len() > 300, "only {} codes", codes.len());
    // Parse rejects duplicates; the count matches the data rows.
    let rows = TABLE_CSV
        .lines()
        .filter(|l| {
            let l = l.trim();
            !l.is_empty() && !l.starts_with('#') && !l.starts_with("area_code,")
        })
        .count();
    assert_eq!(rows, codes.len());
    assert!(t.zones.len() < 64, "{} distinct zones", t.zones.len());
}

#[test]
fn duplicates_and_bad_rows_are_rejected() {
    let dup = "212,America/New_York,-300,us,\n212,America/New_York,-300,us,\n";
    assert!(Table::parse(dup).unwrap_err().contains("duplicate"));
    for bad in [
        "21,America/X,-300,us",
        "2120,America/X,-300,us",
        "112,America/X,-300,us",
        "212,,-300,us",
        "212,America/X,-3000,us",
        "212,America/X,-300,eu",
        "212,America/X,-300",
    ] {
        assert!(Table::parse(bad).is_err(), "{bad:?} accepted");
    }
    let ok = Table::parse("# c\n\narea_code,zone,utc_offset_minutes,dst,note\n212,America/New_York,-300,us,a, note, with commas\n").unwrap();
    assert_eq!(ok.codes().collect::<Vec<_>>(), [212]);
}

#[test]
fn listed_codes_are_geographic_shaped() {
    // N11 service codes, easily recognisable codes (x88, x00: toll-free and
    // the like) and the reserved 9 second digit are never geographic.
    for c in table().codes() {
        let (d1, d2, d3) = (c / 100, c / 10 % 10, c % 10);
        assert!((2..=9).contains(&d1), "{c}");
        assert_ne!(d2, d3, "{c} is an easily recognisable code");
        assert_ne!(d2, 9, "{c} has the reserved 9 second digit");
    }
    // 5XX personal-communications codes skip 530 (California) and 531 (Nebraska).
    let non_geographic = [
        500, 544, 566, 577, 588, 600, 622, 633, 700, 710, 800, 833, 844, 855, 866, 877, 888, 900,
        211, 311, 411, 911,
    ];
    for c in non_geographic.into_iter().chain(521..=529).chain(532..=533) {
        assert!(table().get(c).is_none(), "{c} is listed");
        assert_eq!(zone_of(nanp(c)), None);
    }
}

#[test]
fn known_samples() {
    let cases: [(u16, &str, i16, Dst); 21] = [
        (212, "America/New_York", -300, Dst::Us),
        (332, "America/New_York", -300, Dst::Us),
        (347, "America/New_York", -300, Dst::Us),
        (646, "America/New_York", -300, Dst::Us),
        (917, "America/New_York", -300, Dst::Us),
        (929, "America/New_York", -300, Dst::Us),
        (213, "America/Los_Angeles", -480, Dst::Us),
        (312, "America/Chicago", -360, Dst::Us),
        (303, "America/Denver", -420, Dst::Us),
        (602, "America/Phoenix", -420, Dst::None),
        (808, "Pacific/Honolulu", -600, Dst::None),
        (907, "America/Anchorage", -540, Dst::Us),
        (787, "America/Puerto_Rico", -240, Dst::None),
        (306, "America/Regina", -360, Dst::None),
        (416, "America/Toronto", -300, Dst::Us),
        (709, "America/St_Johns", -210, Dst::Us),
        (441, "Atlantic/Bermuda", -240, Dst::Us),
        (876, "America/Jamaica", -300, Dst::None),
        (671, "Pacific/Guam", 600, Dst::None),
        (684, "Pacific/Pago_Pago", -660, Dst::None),
        (850, "America/Chicago", -360, Dst::Us),
    ];
    for (npa, name, off, dst) in cases {
        let z = table().get(npa).unwrap_or_else(|| panic!("{npa} missing"));
        assert_eq!((z.name, z.std_offset_min, z.dst), (name, off, dst), "{npa}");
        assert_eq!(zone_of(nanp(npa)), Some(name));
    }
}

#[test]
fn non_nanp_and_unlisted_are_unknown() {
    let now = utc(2026, 1, 15, 3, 0);
    let q = QuietHours::default();
    for to in [
        Msisdn::parse("+447700900123").unwrap(), // UK
        Msisdn::parse("+61412345678").unwrap(),  // Australia
        Msisdn::parse("+18005550100").unwrap(),  // toll-free
        Msisdn::parse("+15005550100").unwrap(),  // personal communications
        Msisdn::parse("+1212555010").unwrap(),   // 10 digits: not NANP
    ] {
        assert_eq!(zone_of(to), None, "{to}");
        assert_eq!(utc_offset_minutes(to, now), None, "{to}");
        assert_eq!(q.quiet_until(to, now), None, "{to}");
    }
    assert_eq!(q.quiet_until(nanp(NYC), MAX_MS + 1), None);
}

// === civil dates and DST ===

#[test]
fn civil_date_conversions() {
    assert_eq!(days_from_civil(1970, 1, 1), 0);
    assert_eq!(days_from_civil(2000, 3, 1) * DAY_MS, 951_868_800_000);
    assert_eq!(civil_from_days(0), (1970, 1, 1));
    assert_eq!(civil_from_days(-1), (1969, 12, 31));
    assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
    // Round trip over 1900..2400, with leap days and century rules.
    let (from, to) = (days_from_civil(1900, 1, 1), days_from_civil(2400, 12, 31));
    let mut prev = civil_from_days(from - 1);
    for z in from..=to {
        let (y, m, d) = civil_from_days(z);
        assert_eq!(days_from_civil(y, m, d), z);
        assert!((y, m, d) > prev);
        prev = (y, m, d);
    }
    assert_eq!(weekday(days_from_civil(2026, 11, 27)), 5); // a Friday
}

#[test]
fn dst_sundays() {
    assert_eq!(nth_sunday(2026, 3, 2), 8);
    assert_eq!(nth_sunday(2026, 11, 1), 1);
    assert_eq!(nth_sunday(2027, 3, 2), 14);
    assert_eq!(nth_sunday(2027, 11, 1), 7);
    assert_eq!(nth_sunday(2020, 3, 2), 8);
    assert_eq!(nth_sunday(2020, 11, 1), 1);
    assert_eq!(nth_sunday(2024, 3, 2), 10);
    assert_eq!(nth_sunday(2024, 11, 1), 3);
}

#[test]
fn new_york_dst_boundaries_2026() {
    let to = nanp(NYC);
    // Spring: 2026-03-08 07:00 UTC (02:00 EST).
    let spring = 1_772_953_200_000;
    assert_eq!(spring, utc(2026, 3, 8, 7, 0));
    assert_eq!(utc_offset_minutes(to, spring - 1), Some(-300));
    assert_eq!(utc_offset_minutes(to, spring), Some(-240));
    // Autumn: 2026-11-01 06:00 UTC (02:00 EDT).
    let autumn = 1_793_512_800_000;
    assert_eq!(autumn, utc(2026, 11, 1, 6, 0));
    assert_eq!(utc_offset_minutes(to, autumn - 1), Some(-240));
    assert_eq!(utc_offset_minutes(to, autumn), Some(-300));
    // Mid-season.
    assert_eq!(utc_offset_minutes(to, utc(2026, 7, 4, 12, 0)), Some(-240));
    assert_eq!(utc_offset_minutes(to, utc(2026, 12, 25, 12, 0)), Some(-300));
}

#[test]
fn other_zones_follow_their_rules() {
    let summer = utc(2026, 7, 1, 12, 0);
    let winter = utc(2026, 1, 1, 12, 0);
    for (npa, w, s) in [
        (213, -480, -420), // Los Angeles
        (907, -540, -480), // Anchorage
        (709, -210, -150), // St. John's
        (602, -420, -420), // Phoenix
        (808, -600, -600), // Honolulu
        (306, -360, -360), // Saskatchewan
        (787, -240, -240), // Puerto Rico
        (671, 600, 600),   // Guam
    ] {
        assert_eq!(utc_offset_minutes(nanp(npa), winter), Some(w), "{npa}");
        assert_eq!(utc_offset_minutes(nanp(npa), summer), Some(s), "{npa}");
    }
    // Los Angeles changes at 02:00 local too: 10:00 UTC in spring.
    let la = nanp(213);
    assert_eq!(utc_offset_minutes(la, utc(2026, 3, 8, 9, 59)), Some(-480));
    assert_eq!(utc_offset_minutes(la, utc(2026, 3, 8, 10, 0)), Some(-420));
}

#[test]
fn local_to_utc_resolves_gaps_and_overlaps() {
    let z = *table().get(NYC).unwrap();
    let local = |y, mo, d, h, mi| utc(y, mo, d, h, mi) as i64;
    // Ordinary times.
    assert_eq!(
        z.local_to_utc(local(2026, 1, 16, 8, 0)),
        utc(2026, 1, 16, 13, 0) as i64
    );
    assert_eq!(
        z.local_to_utc(local(2026, 7, 16, 8, 0)),
        utc(2026, 7, 16, 12, 0) as i64
    );
    // 02:30 does not exist on 2026-03-08: one hour later on the wall (03:30 EDT).
    assert_eq!(
        z.local_to_utc(local(2026, 3, 8, 2, 30)),
        utc(2026, 3, 8, 7, 30) as i64
    );
    // 01:30 happens twice on 2026-11-01: the later (EST) one.
    assert_eq!(
        z.local_to_utc(local(2026, 11, 1, 1, 30)),
        utc(2026, 11, 1, 6, 30) as i64
    );
}

// === QuietHours ===

#[test]
fn parse_and_display() {
    assert_eq!(QuietHours::parse("21:00-08:00"), Ok(QuietHours::default()));
    assert_eq!(
        QuietHours::parse(" 9:30 - 7:05 "),
        Ok(QuietHours::new((9, 30), (7, 5)))
    );
    assert_eq!("12:00-13:00".parse(), Ok(QuietHours::new((12, 0), (13, 0))));
    assert_eq!(QuietHours::default().to_string(), "21:00-08:00");
    assert_eq!(QuietHours::new((9, 5), (23, 59)).to_string(), "09:05-23:59");
    let d = QuietHours::default();
    assert_eq!((d.start_minute(), d.end_minute()), (1260, 480));
    for bad in [
        "",
        "21:00",
        "21:00-",
        "-08:00",
        "24:00-08:00",
        "21:60-08:00",
        "21:0-08:00",
        "2100-0800",
        "21:00-08:00-09:00",
        "+1:00-08:00",
        "08:00-08:00",
        "ab:cd-08:00",
        "021:00-08:00",
    ] {
        let e = QuietHours::parse(bad).expect_err(bad);
        assert!(e.to_string().contains("invalid quiet hours"), "{e}");
    }
}

#[test]
#[should_panic(expected = "hour must be 0-23")]
fn new_rejects_out_of_range() {
    let _ = QuietHours::new((24, 0), (8, 0));
}

#[test]
fn contains_wrapping_and_plain_windows() {
    let night = QuietHours::default();
    assert!(night.contains(21 * 60));
    assert!(night.contains(23 * 60 + 59));
    assert!(night.contains(0));
    assert!(night.contains(7 * 60 + 59));
    assert!(!night.contains(8 * 60));
    assert!(!night.contains(20 * 60 + 59));
    let noon = QuietHours::new((12, 0), (13, 0));
    assert!(!noon.contains(11 * 60 + 59));
    assert!(noon.contains(12 * 60));
    assert!(noon.contains(12 * 60 + 59));
    assert!(!noon.contains(13 * 60));
    let empty = QuietHours::new((8, 0), (8, 0));
    assert!((0..24 * 60).all(|m| !empty.contains(m)));
}

#[test]
fn quiet_until_new_york_winter() {
    let q = QuietHours::default();
    let to = nanp(NYC);
    // 23:00 local → 08:00 next day local.
    let at = 1_768_536_000_000; // 2026-01-16T04:00Z = 2026-01-15 23:00 EST
    assert_eq!(at, ny(2026, 1, 15, 23, 0, -5));
    assert_eq!(q.quiet_until(to, at), Some(Some(1_768_568_400_000))); // 2026-01-16T13:00Z
    // 07:59 → 08:00 the same day.
    assert_eq!(
        q.quiet_until(to, ny(2026, 1, 16, 7, 59, -5)),
        Some(Some(ny(2026, 1, 16, 8, 0, -5)))
    );
    // Mid-minute still counts as that minute.
    assert_eq!(
        q.quiet_until(to, ny(2026, 1, 16, 7, 59, -5) + 59_999),
        Some(Some(ny(2026, 1, 16, 8, 0, -5)))
    );
    // 00:00 → 08:00 the same day.
    assert_eq!(
        q.quiet_until(to, ny(2026, 1, 16, 0, 0, -5)),
        Some(Some(ny(2026, 1, 16, 8, 0, -5)))
    );
    // 08:00 and 20:59 are not quiet; 21:00 is.
    assert_eq!(q.quiet_until(to, ny(2026, 1, 16, 8, 0, -5)), Some(None));
    assert_eq!(q.quiet_until(to, ny(2026, 1, 16, 20, 59, -5)), Some(None));
    assert_eq!(
        q.quiet_until(to, ny(2026, 1, 16, 20, 59, -5) + 59_999),
        Some(None)
    );
    assert_eq!(
        q.quiet_until(to, ny(2026, 1, 16, 21, 0, -5)),
        Some(Some(ny(2026, 1, 17, 8, 0, -5)))
    );
}

#[test]
fn quiet_until_in_summer_and_other_zones() {
    let q = QuietHours::default();
    // New York in July (EDT).
    assert_eq!(
        q.quiet_until(nanp(917), ny(2026, 7, 10, 22, 15, -4)),
        Some(Some(ny(2026, 7, 11, 8, 0, -4)))
    );
    // 06:00 UTC is 23:00 in Los Angeles (PDT), 20:00 in Honolulu: one held, one not.
    let now = utc(2026, 7, 10, 6, 0);
    assert_eq!(
        q.quiet_until(nanp(213), now),
        Some(Some(utc(2026, 7, 10, 15, 0)))
    );
    assert_eq!(q.quiet_until(nanp(808), now), Some(None));
    // Guam (UTC+10): 06:00 UTC is 16:00 local.
    assert_eq!(q.quiet_until(nanp(671), now), Some(None));
    // 23:00 UTC is 09:00 next day in Guam: fine; 12:00 UTC is 22:00: held till 22:00 UTC.
    assert_eq!(
        q.quiet_until(nanp(671), utc(2026, 7, 10, 12, 0)),
        Some(Some(utc(2026, 7, 10, 22, 0)))
    );
    // Newfoundland (UTC-2:30 in summer): 01:00 UTC is 22:30 local.
    assert_eq!(
        q.quiet_until(nanp(709), utc(2026, 7, 11, 1, 0)),
        Some(Some(utc(2026, 7, 11, 10, 30)))
    );
}

#[test]
fn plain_window_not_wrapping_midnight() {
    let q = QuietHours::new((12, 0), (13, 0));
    let to = nanp(NYC);
    assert_eq!(q.quiet_until(to, ny(2026, 1, 16, 11, 59, -5)), Some(None));
    assert_eq!(
        q.quiet_until(to, ny(2026, 1, 16, 12, 0, -5)),
        Some(Some(ny(2026, 1, 16, 13, 0, -5)))
    );
    assert_eq!(
        q.quiet_until(to, ny(2026, 1, 16, 12, 30, -5)),
        Some(Some(ny(2026, 1, 16, 13, 0, -5)))
    );
    assert_eq!(q.quiet_until(to, ny(2026, 1, 16, 13, 0, -5)), Some(None));
    assert_eq!(q.quiet_until(to, ny(2026, 1, 16, 23, 0, -5)), Some(None));
}

#[test]
fn release_is_08_00_local_across_dst_nights() {
    let q = QuietHours::default();
    let to = nanp(NYC);
    // Spring: 23:00 EST on 2026-03-07 → 08:00 EDT on 2026-03-08 = 12:00 UTC.
    let at = 1_772_942_400_000; // 2026-03-08T04:00Z
    assert_eq!(at, ny(2026, 3, 7, 23, 0, -5));
    assert_eq!(q.quiet_until(to, at), Some(Some(1_772_971_200_000))); // 2026-03-08T12:00Z
    // Also from just before and after the change itself.
    assert_eq!(
        q.quiet_until(to, utc(2026, 3, 8, 6, 59)),
        Some(Some(1_772_971_200_000))
    );
    assert_eq!(
        q.quiet_until(to, utc(2026, 3, 8, 7, 0)),
        Some(Some(1_772_971_200_000))
    );
    // Autumn: 23:00 EDT on 2026-10-31 → 08:00 EST on 2026-11-01 = 13:00 UTC.
    let at = 1_793_502_000_000; // 2026-11-01T03:00Z
    assert_eq!(at, ny(2026, 10, 31, 23, 0, -4));
    assert_eq!(q.quiet_until(to, at), Some(Some(1_793_538_000_000))); // 2026-11-01T13:00Z
    // Both 01:30s of the repeated hour release at the same instant.
    assert_eq!(
        q.quiet_until(to, utc(2026, 11, 1, 5, 30)),
        Some(Some(1_793_538_000_000))
    );
    assert_eq!(
        q.quiet_until(to, utc(2026, 11, 1, 6, 30)),
        Some(Some(1_793_538_000_000))
    );
}

#[test]
fn sweep_a_year_every_7_minutes() {
    // Every answer for New York in 2026: quiet exactly when the local time
    // is in 21:00-08:00, and released at 08:00 local, at most 11 h later
    // (12 h across the autumn night).
    let q = QuietHours::default();
    let to = nanp(NYC);
    let z = *table().get(NYC).unwrap();
    let local_minute = |t: u64| {
        let l = t as i64 + i64::from(z.offset_at(t as i64)) * MINUTE_MS;
        (l.rem_euclid(DAY_MS) / MINUTE_MS) as u16
    };
    let (mut t, end) = (utc(2026, 1, 1, 0, 0), utc(2027, 1, 1, 0, 0));
    let mut held = 0;
    while t < end {
        let m = local_minute(t);
        match q.quiet_until(to, t).expect("known zone") {
            None => assert!((480..1260).contains(&m), "{t}: minute {m} not quiet"),
            Some(r) => {
                held += 1;
                assert!(!(480..1260).contains(&m), "{t}: minute {m} quiet");
                assert!(r > t);
                assert!(r - t <= 12 * HOUR_MS as u64, "{t}: held {} ms", r - t);
                assert_eq!(
                    local_minute(r),
                    480,
                    "{t}: released at minute {}",
                    local_minute(r)
                );
                assert!(!q.contains(local_minute(r)));
                // One minute earlier is still quiet, unless that is before now.
                if r - MINUTE_MS as u64 > t {
                    assert!(q.contains(local_minute(r - MINUTE_MS as u64)));
                }
            }
        }
        t += 7 * MINUTE_MS as u64;
    }
    assert!(held > 30_000, "{held}");
}
