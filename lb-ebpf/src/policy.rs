//! The policy machinery of the fast path: source-prefix lookups, token
//! buckets shared by every CPU, and flood mode's per-CPU counter. The maps
//! are declared in `balancer.rs` (where the fast path names every map it
//! touches) and passed in; the rules themselves are `lb_common::policy`'s.

use core::mem::MaybeUninit;
#[cfg(not(target_arch = "bpf"))]
use core::sync::atomic::{AtomicU64, Ordering};

use aya_ebpf::maps::{lpm_trie::Key, Array, LpmTrie, LruHashMap, PerCpuArray};
use lb_common::{
    policy::{self, SourceAccess},
    FloodState, FlowKey, Gcra, SourceBucketKey, SourceV4, SourceV6, Verdict, VipPolicy, FAMILY_V4,
    SOURCE_KEY_VIP_BITS,
};

use crate::mem;

/// What the VIP's source prefixes say about the flow's source: one lookup
/// in the trie of the flow's family (keys are vip id then address, so one
/// trie serves every VIP). A VIP without prefixes costs no lookup.
#[inline(always)]
pub fn source_access(
    v4: &LpmTrie<SourceV4, u32>,
    v6: &LpmTrie<SourceV6, u32>,
    vip_id: u32,
    p: &VipPolicy,
    key: &FlowKey,
) -> SourceAccess {
    if !p.has_prefixes() {
        return policy::source_access(p, None);
    }
    let matched = if key.family() == FAMILY_V4 {
        let mut buf = MaybeUninit::<mem::Aligned<Key<SourceV4>>>::uninit();
        // SAFETY: a prefix length and byte arrays: all-zero is valid.
        let k = unsafe { mem::zeroed(&mut buf) };
        k.prefix_len = SOURCE_KEY_VIP_BITS + 32;
        k.data.set(vip_id, key);
        v4.get(&*k).copied()
    } else {
        let mut buf = MaybeUninit::<mem::Aligned<Key<SourceV6>>>::uninit();
        // SAFETY: as above.
        let k = unsafe { mem::zeroed(&mut buf) };
        k.prefix_len = SOURCE_KEY_VIP_BITS + 128;
        k.data.set(vip_id, key);
        v6.get(&*k).copied()
    };
    policy::source_access(p, matched)
}

/// Whether a new connection to VIP `vip_id` stays within its source
/// prefix's rate, then within the VIP's rate (a source over its own rate
/// takes nothing from the VIP's bucket).
#[inline(always)]
#[expect(
    clippy::needless_borrows_for_generic_args,
    reason = "the key stays in its zeroed stack slot: passing it by value would copy it"
)]
pub fn admit_new_connection(
    vip_buckets: &Array<u64>,
    source_buckets: &LruHashMap<SourceBucketKey, u64>,
    vip_id: u32,
    p: &VipPolicy,
    key: &FlowKey,
    now_ns: u64,
) -> Result<(), Verdict> {
    if p.limits_sources() {
        let mut buf = MaybeUninit::<mem::Aligned<SourceBucketKey>>::uninit();
        // SAFETY: integers and byte arrays: all-zero is valid.
        let k = unsafe { mem::zeroed(&mut buf) };
        k.set(vip_id, key, p);
        let admitted = match source_buckets.get_ptr_mut(&*k) {
            Some(tat) => take_token(tat, now_ns, &p.source_rate),
            // A source's first connection: its bucket starts full, minus
            // this one. A failed insert (a racing CPU created it) only
            // forgets this admission.
            None => match policy::gcra(0, now_ns, &p.source_rate) {
                Some(tat) => {
                    let _ = source_buckets.insert(&*k, tat, 0);
                    true
                }
                None => false,
            },
        };
        if !admitted {
            return Err(Verdict::SourceRateLimited);
        }
    }
    if p.limits_vip() {
        let Some(tat) = vip_buckets.get_ptr_mut(vip_id) else {
            return Err(Verdict::Internal);
        };
        if !take_token(tat, now_ns, &p.vip_rate) {
            return Err(Verdict::VipRateLimited);
        }
    }
    Ok(())
}

/// Takes one admission from the bucket at `tat` (shared by every CPU) if
/// `lb_common::policy::gcra` allows it. Lock-free: the new state is
/// installed with a compare-and-swap; when another CPU changed the bucket in
/// between, the rule is applied once more to what it wrote, and a second
/// lost race refuses (only a bucket being drained by several CPUs at once
/// loses twice in a row, so the refusal is almost always right anyway).
#[inline(always)]
fn take_token(tat: *mut u64, now_ns: u64, rate: &Gcra) -> bool {
    // SAFETY: `tat` points into a map value (8-byte aligned, valid for the
    // whole run); every writer uses `compare_exchange`, and an aligned
    // 8-byte load is never torn (BPF has no atomic-load instruction at this
    // CPU version: a volatile load is the same instruction).
    let mut seen = unsafe { core::ptr::read_volatile(tat) };
    let mut tries = 0;
    while tries < 2 {
        let Some(next) = policy::gcra(seen, now_ns, rate) else {
            return false;
        };
        match compare_exchange(tat, seen, next) {
            Ok(()) => return true,
            Err(now_there) => seen = now_there,
        }
        tries += 1;
    }
    false
}

/// Replaces `*cell` by `new` if it still holds `old` (one BPF_CMPXCHG),
/// else returns what it holds.
#[inline(always)]
fn compare_exchange(cell: *mut u64, old: u64, new: u64) -> Result<(), u64> {
    #[cfg(target_arch = "bpf")]
    {
        use core::intrinsics::{atomic_cxchg, AtomicOrdering::Relaxed};
        // SAFETY: `cell` is an aligned map value (see `take_token`).
        let (was, swapped) =
            unsafe { atomic_cxchg::<u64, { Relaxed }, { Relaxed }>(cell, old, new) };
        if swapped {
            Ok(())
        } else {
            Err(was)
        }
    }
    #[cfg(not(target_arch = "bpf"))]
    {
        // The host build only type-checks this crate.
        // SAFETY: as above.
        unsafe { AtomicU64::from_ptr(cell) }
            .compare_exchange(old, new, Ordering::Relaxed, Ordering::Relaxed)
            .map(|_| ())
    }
}

/// Counts a connection-table miss on this CPU and says whether it may
/// insert an entry (`lb_common::policy::flood_admits_insert`). Without its
/// state (never expected) it inserts, as before flood mode existed.
#[inline(always)]
pub fn flood_admits_insert(flood: &PerCpuArray<FloodState>, now_ns: u64, threshold: u32) -> bool {
    match flood.get_ptr_mut(0) {
        // SAFETY: this CPU's own slot; nothing else writes it while we run.
        Some(s) => policy::flood_admits_insert(unsafe { &mut *s }, now_ns, threshold),
        None => true,
    }
}
