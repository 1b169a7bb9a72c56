//! The snapshot written while campaigns appear.

use super::*;

#[test]
fn a_save_skips_entries_of_campaigns_first_seen_while_it_writes() {
    // The head is encoded under the figures' lock, the table after it:
    // a campaign and a program first seen in between have entries the
    // head does not name. Written as they were, the snapshot did not load.
    let clock = Clock::new(86_400);
    let now_s = 1_764_950_000;
    let mut inner = Inner::default();
    let (c0, p0) = (inner.campaign("t", "a"), inner.program(&"tenant:t".into()));
    let known = Known::of(&inner);
    let head = encode_head(&inner);
    let (c1, p1) = (inner.campaign("t", "b"), inner.program(&"tenant:u".into()));
    let last = Last::default();
    let tag = |c| clock.tag(c, now_s).unwrap();
    last.insert(key(p0, 14155550100).unwrap(), tag(c0));
    last.insert(key(p0, 14155550101).unwrap(), tag(c1));
    last.insert(key(p1, 14155550102).unwrap(), tag(c0));
    let mut bytes = Vec::new();
    write_snapshot(&head, known, &last, clock, now_s, &mut bytes).unwrap();
    let read = Last::default();
    let again = decode(&bytes, &read, clock, now_s).expect("the snapshot loads");
    assert_eq!(again.names.len(), 1);
    assert_eq!(read.sorted(), [(key(p0, 14155550100).unwrap(), tag(c0))]);
}

/// A snapshot whose head names a campaign (tenant and name) or a program
/// twice is refused, not merged; one name under two tenants is two
/// campaigns and loads.
#[test]
fn a_snapshot_naming_a_campaign_or_program_twice_is_refused() {
    // Entries name campaigns and programs by their place in the head. A
    // head that names one twice (whole, its CRC right) used to load with
    // the two merged, every later place shifted by one: the figures and
    // entries of one campaign counted as another's.
    let clock = Clock::new(86_400);
    let now_s = 1_764_950_000;
    let snapshot = |inner: &Inner| {
        let mut bytes = Vec::new();
        write_snapshot(
            &encode_head(inner),
            Known::of(inner),
            &Last::default(),
            clock,
            now_s,
            &mut bytes,
        )
        .unwrap();
        bytes
    };
    let mut inner = Inner::default();
    inner.campaign("t", "a");
    inner.campaign("t", "b");
    inner.campaign("u", "a");
    inner.program(&"tenant:t".into());
    let loaded = decode(&snapshot(&inner), &Last::default(), clock, now_s);
    assert_eq!(loaded.expect("names given once load").names.len(), 3);

    let mut twice = Inner::default();
    twice.campaign("t", "a");
    twice.campaign("t", "b");
    twice.names.insert(1, ("t".into(), "a".into()));
    twice.figures.push(CampaignFigures::default());
    twice.program(&"tenant:t".into());
    assert!(decode(&snapshot(&twice), &Last::default(), clock, now_s).is_none());

    let mut last_twice = Inner::default();
    last_twice.campaign("t", "a");
    last_twice.names.push(("t".into(), "a".into()));
    last_twice.figures.push(CampaignFigures::default());
    last_twice.program(&"tenant:t".into());
    assert!(decode(&snapshot(&last_twice), &Last::default(), clock, now_s).is_none());

    let mut twice = Inner::default();
    twice.campaign("t", "a");
    twice.program(&"tenant:t".into());
    twice.program_names.push("tenant:t".into());
    assert!(decode(&snapshot(&twice), &Last::default(), clock, now_s).is_none());
}
