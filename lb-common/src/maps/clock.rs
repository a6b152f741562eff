//! `XLB_CLOCK`: this CPU's last reading of the coarse monotonic clock.
//!
//! `bpf_ktime_get_coarse_ns` is a helper call (~15 ns in the flow-hit
//! profile, 9% of the path), yet its value only moves once per scheduler
//! tick, when the timekeeper advances, and `jiffies` moves on the same
//! tick. The kernel inlines `bpf_jiffies64` into one load, so a packet
//! reads jiffies and re-reads the clock only when jiffies moved since this
//! CPU's last reading.
//!
//! The kernel advances jiffies just before the timekeeper within a tick, so
//! a reading taken in between is the previous tick's time, and this CPU
//! keeps it until jiffies moves again: this CPU's clock may then lag by
//! one tick (the coarse clock's own resolution, 1-10 ms) for one tick.
//! Readings still never go backwards on one CPU; between CPUs every user of
//! the time (entry ages, token buckets, next-hop ages) already tolerates
//! a stamp from the future (`saturating_sub`, GCRA's `max`).

/// Per-CPU value of `XLB_CLOCK` (one entry).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ClockCache {
    /// `jiffies` when `now_ns` was read.
    jiffies: u64,
    /// The coarse monotonic clock read at `jiffies`; 0: never read.
    now_ns: u64,
}

impl ClockCache {
    /// The time this CPU read while jiffies was `jiffies`, if it is still
    /// the current tick's reading.
    #[inline(always)]
    pub const fn reading_at(&self, jiffies: u64) -> Option<u64> {
        if self.now_ns != 0 && self.jiffies == jiffies {
            Some(self.now_ns)
        } else {
            None
        }
    }

    /// Remembers `now_ns`, read from the clock while jiffies was `jiffies`.
    #[inline(always)]
    pub const fn remember(&mut self, jiffies: u64, now_ns: u64) {
        self.jiffies = jiffies;
        self.now_ns = now_ns;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_pinned() {
        assert_eq!(core::mem::size_of::<ClockCache>(), 16);
        assert_eq!(core::mem::align_of::<ClockCache>(), 8);
    }

    #[test]
    fn a_reading_holds_for_its_tick_only() {
        let mut c = ClockCache::default();
        assert_eq!(c.reading_at(0), None, "an all-zero entry was never read");
        c.remember(4_295_000_000, 7_000_000);
        assert_eq!(c.reading_at(4_295_000_000), Some(7_000_000));
        assert_eq!(c.reading_at(4_295_000_001), None, "jiffies moved");
        assert_eq!(c.reading_at(4_294_999_999), None);
    }

    #[test]
    fn a_zero_time_is_never_taken_as_a_reading() {
        let mut c = ClockCache::default();
        c.remember(5, 0);
        assert_eq!(c.reading_at(5), None);
    }
}
