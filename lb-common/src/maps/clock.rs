//! `XLB_CLOCK`: this CPU's last reading of the coarse monotonic clock.
//!
//! `bpf_ktime_get_coarse_ns` is a helper call (~15 ns in the flow-hit
//! profile, 9% of the path), yet its value only moves once per scheduler
//! tick, when the timekeeper advances, and `jiffies` moves on the same
//! tick. The kernel inlines `bpf_jiffies64` into one load, so a packet
//! reads jiffies and re-reads the clock only when jiffies moved since this
//! CPU's last reading.
//!
//! The kernel advances jiffies just before the timekeeper, so a reading
//! taken in between is the time before the update. After one tick that is
//! one tick old (the coarse clock's own resolution, 1-10 ms), and this CPU
//! may keep it for that tick. After an idle stretch (NOHZ: jiffies jumps by
//! many ticks at once) it could be as old as the stretch, so a reading is
//! kept only when jiffies moved by exactly one tick since this CPU's last
//! one ([`ClockCache::remember`]); otherwise the packets of that tick read
//! the clock themselves, as before the cache. Readings never go backwards
//! on one CPU; between CPUs every user of the time (entry ages, token
//! buckets, next-hop ages) already tolerates a stamp from the future
//! (`saturating_sub`, GCRA's `max`).

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

    /// Remembers `now_ns`, read from the clock while jiffies was `jiffies`,
    /// for the rest of the tick when jiffies moved by exactly one tick since
    /// the last reading; after a larger jump it is not kept (it may predate
    /// the timekeeper's catch-up), only the tick is.
    #[inline(always)]
    pub const fn remember(&mut self, jiffies: u64, now_ns: u64) {
        let one_tick = jiffies == self.jiffies.wrapping_add(1);
        self.jiffies = jiffies;
        self.now_ns = if one_tick { now_ns } else { 0 };
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
        c.remember(4_295_000_000, 6_996_000);
        c.remember(4_295_000_001, 7_000_000);
        assert_eq!(c.reading_at(4_295_000_001), Some(7_000_000));
        assert_eq!(c.reading_at(4_295_000_002), None, "jiffies moved");
        assert_eq!(c.reading_at(4_295_000_000), None);
    }

    #[test]
    fn a_reading_after_a_jump_of_jiffies_is_not_kept() {
        let mut c = ClockCache::default();
        c.remember(1_000, 5_000_000);
        c.remember(1_001, 5_004_000);
        assert_eq!(c.reading_at(1_001), Some(5_004_000));
        // Idle for 500 ticks: the first reading may predate the timekeeper's
        // catch-up, so every packet of this tick reads the clock itself.
        c.remember(1_501, 5_004_000);
        assert_eq!(c.reading_at(1_501), None);
        c.remember(1_501, 7_004_000);
        assert_eq!(c.reading_at(1_501), None, "still the tick after the jump");
        // The next tick is one tick on: kept again.
        c.remember(1_502, 7_008_000);
        assert_eq!(c.reading_at(1_502), Some(7_008_000));
    }

    #[test]
    fn a_zero_time_is_never_taken_as_a_reading() {
        let mut c = ClockCache::default();
        c.remember(4, 1);
        c.remember(5, 0);
        assert_eq!(c.reading_at(5), None);
    }
}
