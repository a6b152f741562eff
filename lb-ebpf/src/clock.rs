//! The data plane's clock: the coarse monotonic clock, read through this
//! CPU's cache of it (`lb_common::ClockCache` says why and what it costs).

use aya_ebpf::{
    helpers::generated::{bpf_jiffies64, bpf_ktime_get_coarse_ns},
    maps::PerCpuArray,
};
use lb_common::ClockCache;

/// The coarse monotonic clock in nanoseconds. The helper is called once per
/// tick per CPU; every other packet of the tick pays one inlined load of
/// jiffies and one per-CPU array read.
#[inline(always)]
pub fn now_ns(cache: &PerCpuArray<ClockCache>) -> u64 {
    // SAFETY: reads jiffies (inlined by the verifier into one load); no arguments.
    let jiffies = unsafe { bpf_jiffies64() };
    let Some(c) = cache.get_ptr_mut(0) else {
        // SAFETY: reads the coarse monotonic clock; no arguments.
        return unsafe { bpf_ktime_get_coarse_ns() };
    };
    // SAFETY: this CPU's own slot; nothing else writes it while we run.
    unsafe {
        if let Some(t) = (*c).reading_at(jiffies) {
            return t;
        }
        let t = bpf_ktime_get_coarse_ns();
        (*c).remember(jiffies, t);
        t
    }
}
