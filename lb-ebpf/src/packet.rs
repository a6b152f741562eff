//! The one bounds-checked accessor for packet memory. Every read or write of
//! packet bytes in xlb goes through [`ptr_at`], so there is one place where the
//! verifier's packet-bounds proof is made.

use aya_ebpf::programs::XdpContext;
use core::mem::size_of;

/// A pointer to a `T` at `offset` bytes from the start of the packet, or `None`
/// when `[offset, offset + size_of::<T>())` is not entirely inside the packet.
///
/// The comparison against `data_end` is exactly the form the verifier needs to
/// mark the returned pointer as safe for `size_of::<T>()` bytes; `offset` must be
/// bounded (a constant, or derived from masked header fields) for the proof to go
/// through.
///
/// # Safety
/// The pointer is valid only until the next call that moves packet data
/// (`bpf_xdp_adjust_head`/`_tail`); `T` must be a plain-old-data type with
/// alignment 1 (network headers as byte arrays), since packet data has no
/// alignment guarantee.
#[inline(always)]
pub unsafe fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Option<*mut T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *mut T)
}

/// Length of the packet in bytes.
#[inline(always)]
pub fn len(ctx: &XdpContext) -> usize {
    ctx.data_end() - ctx.data()
}
