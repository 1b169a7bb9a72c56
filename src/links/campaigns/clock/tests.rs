//! The clock's ticks against the exact arithmetic, across wraps.

use super::*;

#[test]
fn the_clock_tells_the_window_to_a_tick_through_every_wrap() {
    // Windows of a second to the widest; deliveries across several
    // wraps of the 11-bit tick; ages up to the longest safe gap between
    // sweeps past the window, and a clock stepped back by up to 200 ticks.
    for window_s in [1, 90, 1_280, 3_600, 86_400, 7 * 86_400, u32::MAX] {
        let clock = Clock::new(window_s);
        let u = clock.tick_s;
        assert!(u64::from(clock.window_ticks) * u >= u64::from(window_s));
        assert!(clock.window_ticks <= 1_280);
        // The sweep runs every 300 s.
        assert!(clock.safe_gap_s() >= 500, "window {window_s}");
        for k in 0..40u64 {
            let at = 1_764_950_000 + k * 977 * u;
            let tag = clock.tag(7, at).unwrap();
            assert_eq!(Clock::campaign(tag), 7);
            let limit = u64::from(window_s) + clock.safe_gap_s();
            let mut d = 0;
            while d <= limit {
                let now = at + d;
                let ticks = clock.ticks_since(at, now);
                assert_eq!(ticks, now / u - at / u);
                assert_eq!(
                    clock.within(tag, now),
                    ticks <= u64::from(clock.window_ticks),
                    "window {window_s} at {at} + {d}"
                );
                // Attributed within the window, never past it by two ticks.
                if d <= u64::from(window_s) {
                    assert!(clock.within(tag, now));
                }
                if d >= u64::from(window_s) + 2 * u {
                    assert!(!clock.within(tag, now));
                }
                // The time survives a save to a tick.
                if clock.within(tag, now) {
                    assert_eq!(clock.at(tag, now) / u, at / u);
                }
                d += (u * 7).max(1).min(limit / 50 + 1);
            }
            assert!(clock.within(tag, at + u64::from(window_s)));
            assert!(!clock.within(tag, at + u64::from(window_s) + 2 * u));
            assert!(
                clock.within(tag, at.saturating_sub(200 * u)),
                "clock stepped back"
            );
        }
    }
    assert_eq!(Clock::new(7 * 86_400).tick_s, 473);
    assert_eq!(Clock::new(1).tag(MAX_CAMPAIGNS, 0), None);
}

#[test]
fn past_the_safe_gap_an_old_entry_can_look_young() {
    // Why the table is dropped after a long gap between sweeps: a
    // delivery 2,048 ticks and a few old reads as a few ticks old.
    let clock = Clock::new(7 * 86_400);
    let at = 1_764_950_000;
    let tag = clock.tag(3, at).unwrap();
    let aliased = at + (2_048 + 5) * clock.tick_s;
    assert!(aliased - at > clock.safe_gap_s());
    assert!(clock.within(tag, aliased));
    assert!(!clock.within(
        tag,
        at + clock.safe_gap_s() + u64::from(clock.window_ticks) * clock.tick_s
    ));
}

#[test]
fn the_safe_gap_is_safe_to_the_second_at_every_offset_in_a_tick() {
    // The oldest entry a sweep keeps is `window_ticks` old; at the next
    // sweep, `safe_gap_s` later, its age must still be told right, from
    // any second within its tick and the sweep's.
    for window_s in [1, 90, 1_280, 3_600, 7 * 86_400] {
        let clock = Clock::new(window_s);
        let u = clock.tick_s;
        let step = (u / 13).max(1);
        let mut off = 0;
        while off < u {
            let at = 1_764_950_000 / u * u + off;
            let tag = clock.tag(1, at).unwrap();
            // The last second the sweep keeps it.
            let mut swept = at;
            while clock.within(tag, swept + 1) {
                swept += 1.max(u / 7);
            }
            let now = swept + clock.safe_gap_s();
            assert!(!clock.within(tag, now), "window {window_s}, offset {off}");
            assert!(clock.ticks_since(at, now) <= u64::from(MAX_AGE));
            off += step;
        }
    }
}
