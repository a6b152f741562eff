//! The arithmetic of the per-VIP policy and of flood mode, as pure functions
//! that the data plane (`lb-ebpf/src/policy.rs`) and userspace (`xlb
//! explain`, metrics, tests) both call: whether a source may reach a VIP,
//! whether a token bucket admits one more new connection, and whether a CPU
//! is flooding. Time is always an argument, so every rule is tested here
//! with the clock in the test's hand.

use crate::maps::{FloodState, FlowValue, Gcra, VipPolicy, FLOOD_WINDOW_NS, PREFIX_DENY};

/// What the source ranges of a VIP say about one source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SourceAccess {
    /// No prefix refuses it.
    Allowed,
    /// Its longest matching prefix is a deny prefix (`source_denied`).
    Denied,
    /// The VIP has an allow list and no prefix matches (`source_not_allowed`).
    NotAllowed,
}

/// The source's access to a VIP with `policy`, given the value of its
/// longest matching trie entry (`PREFIX_ALLOW`/`PREFIX_DENY`), if any.
///
/// Deny wins over allow because userspace never installs an allow prefix
/// inside a deny prefix of the same VIP (it would be dead anyway), so the
/// longest match of an address that any deny prefix covers is a deny
/// prefix; an allow prefix that contains a deny prefix is kept, and the
/// more specific deny prefix wins inside it.
#[inline(always)]
pub const fn source_access(policy: &VipPolicy, matched: Option<u32>) -> SourceAccess {
    match matched {
        Some(PREFIX_DENY) => SourceAccess::Denied,
        Some(_) => SourceAccess::Allowed,
        None if policy.has_allow_list() => SourceAccess::NotAllowed,
        None => SourceAccess::Allowed,
    }
}

/// Whether the flow of connection-table entry `entry` may skip the source
/// check: the VIP has no prefixes (nothing to look up), or the entry's
/// source was found allowed under the VIP's current access generation
/// (userspace changes the generation after every change of the VIP's
/// prefixes, so an entry checked under it was checked against the tries as
/// they are). Generation 0 is never current: a record written without one
/// keeps checking every packet.
#[inline(always)]
pub const fn source_access_current(policy: &VipPolicy, entry: &FlowValue) -> bool {
    !policy.has_prefixes()
        || (policy.access_generation != 0 && entry.access_generation == policy.access_generation)
}

/// The generic cell rate algorithm (a token bucket kept as one number, the
/// "theoretical arrival time" `tat`): returns the bucket's new `tat` if one
/// more admission at `now_ns` conforms to `rate`, else `None` (the bucket
/// is left as it was). A bucket never used has `tat` 0.
///
/// Conforming means `max(tat, now) - now <= tolerance`: a full bucket
/// admits `burst` at once, then one per `interval`.
#[inline(always)]
pub const fn gcra(tat: u64, now_ns: u64, rate: &Gcra) -> Option<u64> {
    let start = if tat > now_ns { tat } else { now_ns };
    if start - now_ns > rate.tolerance_ns {
        None
    } else {
        Some(start + rate.interval_ns)
    }
}

/// Misses one CPU may see in one flood window before it floods: its share
/// of `threshold` misses per second, rounded up (0: flood mode is off).
#[inline(always)]
pub const fn flood_window_budget(threshold: u32) -> u64 {
    let windows_per_s = 1_000_000_000 / FLOOD_WINDOW_NS;
    (threshold as u64).div_ceil(windows_per_s)
}

/// Counts one connection-table miss (a packet that would insert an entry)
/// on this CPU at `now_ns` and says whether it may insert. A window longer
/// than `FLOOD_WINDOW_NS` ago starts a new one; within a window the first
/// `flood_window_budget(threshold)` misses insert and the rest do not (the
/// CPU is flooding until the window ends). Threshold 0: always insert.
#[inline(always)]
pub fn flood_admits_insert(state: &mut FloodState, now_ns: u64, threshold: u32) -> bool {
    if threshold == 0 {
        return true;
    }
    if now_ns.wrapping_sub(state.window_start_ns) >= FLOOD_WINDOW_NS {
        state.window_start_ns = now_ns;
        state.window_misses = 0;
    }
    state.window_misses += 1;
    let budget = flood_window_budget(threshold);
    if state.window_misses <= budget {
        return true;
    }
    if state.window_misses == budget + 1 {
        state.flood_windows += 1;
    }
    state.skipped_inserts += 1;
    false
}

/// Whether the CPU whose state is `state` is flooding at `now_ns`: its
/// current window is still running and went over the budget.
pub const fn is_flooding(state: &FloodState, now_ns: u64, threshold: u32) -> bool {
    threshold != 0
        && now_ns.wrapping_sub(state.window_start_ns) < FLOOD_WINDOW_NS
        && state.window_misses > flood_window_budget(threshold)
}

/// Clears the bits of `addr` past its first `len` (a source prefix).
#[inline(always)]
pub fn mask_prefix(addr: &mut [u8; 16], len: u8) {
    let mut i = 0;
    while i < 16 {
        let first_bit = (i * 8) as u32;
        let keep = (len as u32).saturating_sub(first_bit);
        if keep < 8 {
            // `keep` leading bits of this byte stay.
            addr[i] &= !(0xffu8 >> keep);
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maps::{VipPolicy, PREFIX_ALLOW};

    #[test]
    fn deny_refuses_allow_list_refuses_the_rest() {
        let open = VipPolicy::NONE.with_prefixes(true, false);
        assert_eq!(source_access(&open, None), SourceAccess::Allowed);
        assert_eq!(
            source_access(&open, Some(PREFIX_DENY)),
            SourceAccess::Denied
        );
        let listed = VipPolicy::NONE.with_prefixes(true, true);
        assert_eq!(source_access(&listed, None), SourceAccess::NotAllowed);
        assert_eq!(
            source_access(&listed, Some(PREFIX_ALLOW)),
            SourceAccess::Allowed
        );
        assert_eq!(
            source_access(&listed, Some(PREFIX_DENY)),
            SourceAccess::Denied
        );
    }

    #[test]
    fn an_entry_skips_the_source_check_only_under_the_current_generation() {
        let entry = FlowValue::new(3, 0);
        // No prefixes: nothing to look up, whatever the generations.
        assert!(source_access_current(&VipPolicy::NONE, &entry));
        let checked = VipPolicy::NONE.with_prefixes(true, true);
        assert!(
            !source_access_current(&checked, &entry),
            "generation 0 is never current, even for an unstamped entry"
        );
        let g7 = checked.with_access_generation(7);
        assert!(!source_access_current(&g7, &entry));
        assert!(source_access_current(&g7, &entry.with_access_generation(7)));
        assert!(
            !source_access_current(
                &g7.with_access_generation(8),
                &entry.with_access_generation(7)
            ),
            "a changed generation re-checks"
        );
    }

    const MS: u64 = 1_000_000;

    #[test]
    fn a_bucket_admits_its_burst_then_its_rate() {
        let rate = Gcra::new(10, 3); // one per 100 ms, 3 at once
        let now = 5_000 * MS;
        let mut tat = 0;
        for i in 0..3 {
            tat = gcra(tat, now, &rate).unwrap_or_else(|| panic!("burst packet {i}"));
        }
        assert_eq!(gcra(tat, now, &rate), None, "the 4th at once is over");
        // 99 ms later nothing has refilled; at 100 ms one token has.
        assert_eq!(gcra(tat, now + 99 * MS, &rate), None);
        let t2 = gcra(tat, now + 100 * MS, &rate).expect("refilled");
        assert_eq!(gcra(t2, now + 100 * MS, &rate), None);
        // A long pause refills to the burst, never beyond.
        let mut t = t2;
        for _ in 0..3 {
            t = gcra(t, now + 10_000 * MS, &rate).expect("full bucket");
        }
        assert_eq!(gcra(t, now + 10_000 * MS, &rate), None);
    }

    #[test]
    fn a_bucket_at_its_rate_admits_exactly_the_rate() {
        let rate = Gcra::new(50, 1);
        let mut tat = 0;
        let mut admitted = 0;
        // Offered every 1 ms for 10 s: 500 admitted (+1 for the first).
        for ms in 0..10_000 {
            if let Some(t) = gcra(tat, 1_000 * MS + ms * MS, &rate) {
                tat = t;
                admitted += 1;
            }
        }
        assert_eq!(admitted, 500);
    }

    #[test]
    fn flood_mode_starts_over_the_threshold_and_ends_with_the_window() {
        let mut s = FloodState::default();
        let start = 1_000 * MS;
        // 50/s per CPU: 5 misses per 100 ms window.
        for i in 0..5 {
            assert!(flood_admits_insert(&mut s, start + i, 50), "miss {i}");
        }
        assert!(!is_flooding(&s, start + 5, 50));
        assert!(!flood_admits_insert(&mut s, start + 5, 50));
        assert!(!flood_admits_insert(&mut s, start + 6, 50));
        assert!(is_flooding(&s, start + 7, 50));
        assert_eq!((s.skipped_inserts, s.flood_windows), (2, 1));
        // The window ends: inserting again, and no longer flooding.
        assert!(!is_flooding(&s, start + FLOOD_WINDOW_NS, 50));
        assert!(flood_admits_insert(&mut s, start + FLOOD_WINDOW_NS, 50));
        assert_eq!(s.window_misses, 1);
        // Threshold 0: flood mode off.
        let mut off = FloodState::default();
        for _ in 0..1000 {
            assert!(flood_admits_insert(&mut off, start, 0));
        }
        assert_eq!(flood_window_budget(100_000), 10_000);
        assert_eq!(flood_window_budget(1), 1);
    }

    #[test]
    fn prefixes_are_masked() {
        let mut a = [0xffu8; 16];
        mask_prefix(&mut a, 20);
        assert_eq!(&a[..4], &[0xff, 0xff, 0xf0, 0]);
        assert!(a[4..].iter().all(|&b| b == 0));
        let mut v6 = [0xabu8; 16];
        mask_prefix(&mut v6, 64);
        assert_eq!(&v6[..8], &[0xab; 8]);
        assert_eq!(&v6[8..], &[0; 8]);
        let mut all = [0x5au8; 16];
        mask_prefix(&mut all, 128);
        assert_eq!(all, [0x5a; 16]);
        mask_prefix(&mut all, 0);
        assert_eq!(all, [0; 16]);
    }
}
