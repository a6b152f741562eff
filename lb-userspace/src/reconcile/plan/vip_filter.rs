//! The planner's steps for `XLB_VIP_FILTER`, the bitmap of VIP addresses the
//! data plane reads before any VIP lookup (a clear bit: not a VIP address,
//! passed at once). The bitmap is a function of the set of VIP addresses;
//! it changes in two steps around everything else a plan writes, so that at
//! every write each address with a VIP entry or marker has its bit set:
//! first the words gain the new addresses' bits (the union of old and new),
//! before any VIP or marker appears; last, once the old VIPs and markers are
//! gone, they lose the bits only old addresses used.

use std::{collections::BTreeMap, net::IpAddr};

use lb_common::vip_filter_slot_of;

use super::{Op, Planner};

/// The bitmap's non-zero words for `addrs`.
pub fn filter_words(addrs: impl IntoIterator<Item = IpAddr>) -> BTreeMap<u32, u64> {
    let mut words = BTreeMap::new();
    for a in addrs {
        let (index, mask) = vip_filter_slot_of(a);
        *words.entry(index).or_insert(0) |= mask;
    }
    words
}

impl Planner {
    /// Step 1: sets the bits of `want` the installed words lack; the plan's
    /// words become the union of both.
    pub(super) fn widen_vip_filter(&mut self, want: &BTreeMap<u32, u64>) {
        for (&index, &bits) in want {
            let have = self.plan.next.vip_filter.get(&index).copied().unwrap_or(0);
            if have | bits != have {
                self.push(Op::SetFilterWord {
                    index,
                    word: have | bits,
                });
                self.plan.next.vip_filter.insert(index, have | bits);
            }
        }
    }

    /// Step 2: brings every word to `want` (clearing the bits of addresses
    /// no VIP uses any more).
    pub(super) fn narrow_vip_filter(&mut self, want: &BTreeMap<u32, u64>) {
        let indexes: Vec<u32> = self.plan.next.vip_filter.keys().copied().collect();
        for index in indexes {
            let word = want.get(&index).copied().unwrap_or(0);
            if self.plan.next.vip_filter.get(&index) != Some(&word) {
                self.push(Op::SetFilterWord { index, word });
            }
        }
        self.plan.next.vip_filter = want.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_hold_one_bit_per_address() {
        let a = IpAddr::from([10, 100, 0, 1]);
        let b = IpAddr::from([0xfd10, 0, 0, 0, 0, 0, 0, 1]);
        let w = filter_words([a, b, a]);
        let bits: u32 = w.values().map(|w| w.count_ones()).sum();
        assert_eq!(bits, 2);
        for x in [a, b] {
            let (i, m) = vip_filter_slot_of(x);
            assert_ne!(w[&i] & m, 0, "{x}");
        }
        assert!(filter_words([]).is_empty());
    }
}
