//! Delivery times as attribution keeps them: in ticks of 1/1,280 of the
//! window (a second at least; 473 s of 7 days), modulo [`TICKS`], so that
//! a campaign and a time fit in one `u32` tag (21 bits and 11) of the
//! attribution table.
//!
//! - An entry is within the window while its age in ticks is at most the
//!   window's ([`Clock::within`]): an opt-out less than two ticks past the
//!   window (at 7 days, up to 640 s) may still be attributed.
//! - Ages wrap at [`TICKS`]: the sweep drops entries past the window
//!   every five minutes, long before their tick can come round again. A
//!   longer gap between two sweeps than [`Clock::safe_gap_s`] (the process
//!   stopped, `SIGSTOP` or a paused container, or the sweep starved) may
//!   have let old entries look young: the caller drops the table then.
//!   (Times come from `model::now_ms`, which moves with the monotonic
//!   clock: a wall-clock step does not reach them.)
//! - A time less than 256 ticks ahead of now is taken as now; further
//!   ahead, as old.

/// Ticks a tag's time counts in (its low 11 bits).
const TICKS: u32 = 1 << TICK_BITS;
const TICK_BITS: u32 = 11;
/// Campaigns a tag tells apart (its other 21 bits).
pub(super) const MAX_CAMPAIGNS: u32 = 1 << (32 - TICK_BITS);
/// Ages of more ticks than this are times ahead of now: taken as now.
const MAX_AGE: u32 = TICKS - 256;
/// Ticks in a window.
const WINDOW_TICKS: u64 = 1_280;

/// Ticks of one window (see the module doc).
#[derive(Debug, Clone, Copy)]
pub(super) struct Clock {
    /// Seconds per tick.
    pub(super) tick_s: u64,
    /// Ticks in the window (at most [`WINDOW_TICKS`]).
    pub(super) window_ticks: u32,
}

impl Clock {
    /// The clock of a window of `window_s` seconds.
    pub(super) fn new(window_s: u32) -> Clock {
        let tick_s = u64::from(window_s).div_ceil(WINDOW_TICKS).max(1);
        Clock {
            tick_s,
            window_ticks: u64::from(window_s).div_ceil(tick_s) as u32,
        }
    }

    fn tick(&self, at_s: u64) -> u32 {
        (at_s / self.tick_s) as u32 % TICKS
    }

    /// The tag of campaign `c` delivered at `at_s`; `None` past
    /// [`MAX_CAMPAIGNS`].
    pub(super) fn tag(&self, c: u32, at_s: u64) -> Option<u32> {
        (c < MAX_CAMPAIGNS).then(|| (c << TICK_BITS) | self.tick(at_s))
    }

    /// The campaign of a tag.
    pub(super) fn campaign(tag: u32) -> u32 {
        tag >> TICK_BITS
    }

    /// Age in ticks at `now_s` of a tag.
    fn age(&self, tag: u32, now_s: u64) -> u32 {
        let age = self.tick(now_s).wrapping_sub(tag) % TICKS;
        if age > MAX_AGE { 0 } else { age }
    }

    /// The tag's delivery was within the window at `now_s`.
    pub(super) fn within(&self, tag: u32, now_s: u64) -> bool {
        self.age(tag, now_s) <= self.window_ticks
    }

    /// The tag's delivery time, to the tick, seen at `now_s`.
    pub(super) fn at(&self, tag: u32, now_s: u64) -> u64 {
        (now_s / self.tick_s).saturating_sub(u64::from(self.age(tag, now_s))) * self.tick_s
    }

    /// Ticks from `at_s` to `now_s` (not modulo; a time ahead of now is
    /// now).
    pub(super) fn ticks_since(&self, at_s: u64, now_s: u64) -> u64 {
        now_s / self.tick_s - at_s.min(now_s) / self.tick_s
    }

    /// The longest gap between two sweeps after which every entry's age is
    /// still told right: those within the window at the first are at most
    /// [`MAX_AGE`] ticks old at the second.
    pub(super) fn safe_gap_s(&self) -> u64 {
        u64::from(MAX_AGE - self.window_ticks - 1) * self.tick_s
    }
}

#[cfg(test)]
mod tests;
