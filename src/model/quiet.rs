//! Quiet hours: whether a marketing message may reach a NANP handset now, in
//! the recipient's local time, and if not, when the quiet period ends.
//!
//! Local time comes from the area code alone: `data/nanp_timezones.csv` maps
//! every geographic NANP area code (US, Canada, the Caribbean and Pacific
//! members) to a standard UTC offset and a DST rule, and is compiled in and
//! parsed once into a 1000-entry array indexed by area code. Two rules exist:
//! `us` (second Sunday of March 02:00 local to first Sunday of November 02:00
//! local, as in the US and most of Canada since 2007) and `none`.
//!
//! What the table cannot know, it says in its `note` column:
//! - An area code spanning two zones takes the zone where most of its people
//!   live (850 Florida panhandle → Central, 812 Indiana → Eastern, 208 Idaho
//!   → Mountain, 867 Canadian north → Yukon…).
//! - A ported or roaming handset keeps its area code but not its location.
//! - British Columbia (permanent UTC-7) and Alberta (permanent UTC-6) stopped
//!   changing clocks after 2026-03-08 (tzdb 2026b and 2026c): they are `none`
//!   rows with the new offsets, right from 2026-03-08 on and an hour off for
//!   earlier winter instants.
//! - Non-geographic codes (toll-free, 5XX personal, 600, 700, 900…) have no
//!   place, so no local time.
//!
//! Where the local time is unknown (non-NANP, unlisted code), [`QuietHours::quiet_until`]
//! returns `None` and callers send without holding: holding needs a reason.
//!
//! **Departure:** no `chrono-tz`/`jiff`: the rule set is two rules and the
//! table is reviewable data, so the civil-date arithmetic is the few lines
//! of [`crate::model::calendar`].

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use crate::model::Msisdn;
use crate::model::calendar::{civil_from_days, days_from_civil, weekday};

#[cfg(test)]
mod tests;

/// The area code table (see the module docs and the file's header).
const TABLE_CSV: &str = include_str!("../../data/nanp_timezones.csv");

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Latest instant handled: 9999-12-31T23:59:59.999Z.
const MAX_MS: u64 = 253_402_300_799_999;

// === impl QuietHours ===

/// A daily quiet period in the recipient's local time, `[start, end)`.
///
/// When `start > end` the period wraps midnight (the usual 21:00 → 08:00);
/// when `start == end` it is empty (never quiet).
///
/// # Defaults
/// 21:00 → 08:00, the common "8 am to 9 pm" sending window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QuietHours {
    start_minute: u16,
    end_minute: u16,
}

impl Default for QuietHours {
    fn default() -> Self {
        QuietHours::new((21, 0), (8, 0))
    }
}

impl QuietHours {
    /// Quiet from `start` (hour, minute) until `end` (hour, minute), local time.
    ///
    /// # Panics
    /// When an hour is above 23 or a minute above 59.
    pub const fn new(start: (u8, u8), end: (u8, u8)) -> QuietHours {
        assert!(
            start.0 < 24 && start.1 < 60 && end.0 < 24 && end.1 < 60,
            "quiet hours: hour must be 0-23 and minute 0-59"
        );
        QuietHours {
            start_minute: start.0 as u16 * 60 + start.1 as u16,
            end_minute: end.0 as u16 * 60 + end.1 as u16,
        }
    }

    /// Parses `"21:00-08:00"` (`H:MM` or `HH:MM`, 24-hour, start then end).
    ///
    /// # Errors
    /// [`QuietHoursError`] naming the input when it is not two `HH:MM` times
    /// joined by `-`, a time is out of range, or start equals end (an empty
    /// period is almost certainly a typo; use [`QuietHours::new`] to build
    /// one).
    pub fn parse(s: &str) -> Result<QuietHours, QuietHoursError> {
        let bad = |why: String| QuietHoursError {
            input: s.to_owned(),
            why,
        };
        let (start, end) = s.split_once('-').ok_or_else(|| bad("no '-'".into()))?;
        let start = parse_hhmm(start.trim()).map_err(bad)?;
        let end = parse_hhmm(end.trim()).map_err(bad)?;
        if start == end {
            return Err(bad("start equals end".into()));
        }
        Ok(QuietHours::new(start, end))
    }

    /// Start, in minutes after local midnight.
    pub fn start_minute(&self) -> u16 {
        self.start_minute
    }

    /// End (first minute allowed again), in minutes after local midnight.
    pub fn end_minute(&self) -> u16 {
        self.end_minute
    }

    /// True when `local_minute` (minutes after local midnight) is quiet.
    pub fn contains(&self, local_minute: u16) -> bool {
        let (s, e) = (self.start_minute, self.end_minute);
        if s <= e {
            (s..e).contains(&local_minute)
        } else {
            local_minute >= s || local_minute < e
        }
    }

    /// Whether `to` is in its quiet period at `now_ms` (unix ms):
    /// - `None`: its local time is unknown (non-NANP number, non-geographic or
    ///   unlisted area code, or `now_ms` beyond year 9999): callers don't hold.
    /// - `Some(None)`: not quiet now.
    /// - `Some(Some(ms))`: quiet; `ms` is the unix ms when the period ends, the
    ///   next local `end` time, with the offset in force then (a DST change
    ///   during the night still releases at `end` local). A local `end` skipped
    ///   by the spring change resolves one hour later.
    pub fn quiet_until(&self, to: Msisdn, now_ms: u64) -> Option<Option<u64>> {
        let zone = lookup(to)?;
        if now_ms > MAX_MS {
            return None;
        }
        let now = now_ms as i64;
        let local = now + i64::from(zone.offset_at(now)) * MINUTE_MS;
        let day = local.div_euclid(DAY_MS);
        let minute = (local.rem_euclid(DAY_MS) / MINUTE_MS) as u16;
        if !self.contains(minute) {
            return Some(None);
        }
        // Quiet: the end is today if it is still ahead, else tomorrow.
        let release_day = if minute < self.end_minute {
            day
        } else {
            day + 1
        };
        let release_local = release_day * DAY_MS + i64::from(self.end_minute) * MINUTE_MS;
        // Strictly after now even in pathological DST corners.
        let release = zone.local_to_utc(release_local).max(now + 1);
        Some(Some(release as u64))
    }
}

impl fmt::Display for QuietHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start_minute / 60,
            self.start_minute % 60,
            self.end_minute / 60,
            self.end_minute % 60
        )
    }
}

/// Why a quiet-hours text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid quiet hours {input:?}: {why} (expected e.g. \"21:00-08:00\")")]
pub struct QuietHoursError {
    input: String,
    why: String,
}

impl FromStr for QuietHours {
    type Err = QuietHoursError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        QuietHours::parse(s)
    }
}

/// `H:MM` or `HH:MM` → (hour, minute); the error says why not.
fn parse_hhmm(s: &str) -> Result<(u8, u8), String> {
    let (h, m) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} has no ':'"))?;
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if !digits(h) || h.len() > 2 || !digits(m) || m.len() != 2 {
        return Err(format!("{s:?} is not HH:MM"));
    }
    let (h, m): (u8, u8) = (h.parse().unwrap_or(u8::MAX), m.parse().unwrap_or(u8::MAX));
    if h > 23 || m > 59 {
        return Err(format!("{s:?} is out of range (00:00-23:59)"));
    }
    Ok((h, m))
}

// === lookups ===

/// The UTC offset (minutes, DST included) of `to`'s local time at `now_ms`;
/// `None` when its local time is unknown (see [`QuietHours::quiet_until`]).
pub fn utc_offset_minutes(to: Msisdn, now_ms: u64) -> Option<i32> {
    let zone = lookup(to)?;
    if now_ms > MAX_MS {
        return None;
    }
    Some(zone.offset_at(now_ms as i64))
}

/// The IANA zone name the table gives `to`'s area code (documentation only:
/// offsets come from the table's own columns); `None` when unlisted.
pub fn zone_of(to: Msisdn) -> Option<&'static str> {
    lookup(to).map(|z| z.name)
}

/// The zone of a NANP number's area code.
fn lookup(to: Msisdn) -> Option<&'static Zone> {
    if !to.is_nanp() {
        return None;
    }
    let npa = (to.as_u64() / 10_000_000 % 1000) as u16;
    table().get(npa)
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| match Table::parse(TABLE_CSV) {
        Ok(t) => t,
        // The file is compiled in and the unit tests parse it.
        Err(e) => panic!("data/nanp_timezones.csv: {e}"),
    })
}

// === impl Zone ===

/// How a zone moves its clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dst {
    /// US/Canada rule since 2007.
    Us,
    /// Standard time all year.
    None,
}

/// One distinct row shape: name, standard offset, rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Zone {
    name: &'static str,
    std_offset_min: i16,
    dst: Dst,
}

impl Zone {
    /// UTC offset in minutes at `utc_ms`.
    fn offset_at(&self, utc_ms: i64) -> i32 {
        let std = i32::from(self.std_offset_min);
        match self.dst {
            Dst::None => std,
            Dst::Us => {
                let std_ms = i64::from(std) * MINUTE_MS;
                // The local year; transitions are far from New Year.
                let (year, _, _) = civil_from_days((utc_ms + std_ms).div_euclid(DAY_MS));
                // 02:00 local standard time → UTC.
                let start = days_from_civil(year, 3, nth_sunday(year, 3, 2)) * DAY_MS + 2 * HOUR_MS
                    - std_ms;
                // 02:00 local daylight time → UTC.
                let end = days_from_civil(year, 11, nth_sunday(year, 11, 1)) * DAY_MS + 2 * HOUR_MS
                    - (std_ms + HOUR_MS);
                if (start..end).contains(&utc_ms) {
                    std + 60
                } else {
                    std
                }
            }
        }
    }

    /// The UTC instant of local wall time `local_ms` (ms since the local epoch).
    /// An ambiguous time (autumn) resolves to the later instant; a skipped one
    /// (spring) to the instant one hour later on the wall clock.
    fn local_to_utc(&self, local_ms: i64) -> i64 {
        let guess = local_ms - i64::from(self.std_offset_min) * MINUTE_MS;
        let o1 = self.offset_at(guess);
        let candidate = local_ms - i64::from(o1) * MINUTE_MS;
        let o2 = self.offset_at(candidate);
        if o1 == o2 {
            candidate
        } else {
            local_ms - i64::from(o2) * MINUTE_MS
        }
    }
}

// === impl Table ===

/// Area code → zone: a byte per area code indexing the distinct zones (0 =
/// unlisted), about 1 KiB in all.
#[derive(Debug)]
struct Table {
    index: [u8; 1000],
    zones: Vec<Zone>,
}

impl Table {
    /// Parses `area_code,zone,utc_offset_minutes,dst[,note]` rows; `#` lines,
    /// blank lines and the header are skipped.
    fn parse(src: &'static str) -> Result<Table, String> {
        let mut t = Table {
            index: [0; 1000],
            zones: Vec::new(),
        };
        for (n, line) in src.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with("area_code,") {
                continue;
            }
            let at = |why: String| format!("line {}: {why}: {line:?}", n + 1);
            let mut cols = line.splitn(5, ',');
            let (Some(code), Some(name), Some(offset), Some(dst)) =
                (cols.next(), cols.next(), cols.next(), cols.next())
            else {
                return Err(at("fewer than 4 columns".into()));
            };
            let code: u16 = match code.trim().parse() {
                Ok(c) if (200..=999).contains(&c) && code.trim().len() == 3 => c,
                _ => return Err(at(format!("bad area code {code:?}"))),
            };
            let name = name.trim();
            if name.is_empty() {
                return Err(at("empty zone".into()));
            }
            let std_offset_min: i16 = match offset.trim().parse() {
                Ok(o) if (-720..=840).contains(&o) => o,
                _ => return Err(at(format!("bad utc_offset_minutes {offset:?}"))),
            };
            let dst = match dst.trim() {
                "us" => Dst::Us,
                "none" => Dst::None,
                other => return Err(at(format!("bad dst {other:?} (us or none)"))),
            };
            if t.index[usize::from(code)] != 0 {
                return Err(at(format!("duplicate area code {code}")));
            }
            let zone = Zone {
                name,
                std_offset_min,
                dst,
            };
            let i = match t.zones.iter().position(|z| *z == zone) {
                Some(i) => i,
                None => {
                    t.zones.push(zone);
                    t.zones.len() - 1
                }
            };
            t.index[usize::from(code)] =
                u8::try_from(i + 1).map_err(|_| at("more than 255 distinct zones".into()))?;
        }
        Ok(t)
    }

    fn get(&self, npa: u16) -> Option<&Zone> {
        match *self.index.get(usize::from(npa))? {
            0 => None,
            i => self.zones.get(usize::from(i) - 1),
        }
    }

    /// Area codes listed, ascending.
    #[cfg(test)]
    fn codes(&self) -> impl Iterator<Item = u16> + '_ {
        (0..1000u16).filter(|&c| self.index[usize::from(c)] != 0)
    }
}

/// Day of the month of the `n`th (1-based) Sunday of `y-m`.
fn nth_sunday(y: i64, m: u32, n: u32) -> u32 {
    let first = weekday(days_from_civil(y, m, 1));
    1 + (7 - first) % 7 + 7 * (n - 1)
}
