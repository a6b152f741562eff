//! The one bounds-checked accessor for packet memory. Every read or write of
//! packet bytes in xlb goes through [`ref_at`] or [`mut_at`], so there is one
//! place where the verifier's packet-bounds proof is made, and each header
//! costs its caller exactly one `unsafe` (with its `// SAFETY:` line).

use core::mem::size_of;

use aya_ebpf::programs::XdpContext;

/// `[offset, offset + size_of::<T>())` is not entirely inside the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfBounds;

/// The address of a `T` at `offset` bytes into the packet, checked against
/// `data_end` in exactly the form the verifier needs to mark it safe for
/// `size_of::<T>()` bytes. `offset` must be bounded (a constant, or derived from
/// masked header fields) for the proof to go through.
#[inline(always)]
fn checked<T>(ctx: &XdpContext, offset: usize) -> Result<usize, OutOfBounds> {
    let start = ctx.data();
    if start + offset + size_of::<T>() > ctx.data_end() {
        return Err(OutOfBounds);
    }
    Ok(start + offset)
}

/// A shared reference to the `T` at `offset` bytes into the packet.
///
/// # Safety
/// - `T` is plain old data (every bit pattern valid): a network header made of
///   byte arrays and integers;
/// - `T`'s alignment is 1, or `offset` is a multiple of it from the frame's
///   start (XDP starts frames at an aligned headroom: Ethernet and VLAN headers,
///   with their `u16` EtherTypes, sit at even offsets);
/// - the reference is not used after a call that moves packet data
///   (`bpf_xdp_adjust_head`/`_tail`), and no `&mut` to overlapping bytes is
///   alive at the same time.
#[inline(always)]
pub unsafe fn ref_at<T>(ctx: &XdpContext, offset: usize) -> Result<&T, OutOfBounds> {
    let addr = checked::<T>(ctx, offset)?;
    // SAFETY: `addr .. addr + size_of::<T>()` lies inside the packet (checked
    // above); validity, alignment and aliasing are the caller's contract.
    Ok(unsafe { &*(addr as *const T) })
}

/// An exclusive reference to the `T` at `offset` bytes into the packet.
///
/// # Safety
/// As [`ref_at`], and no other reference to overlapping bytes is alive while
/// the returned one is.
#[inline(always)]
#[expect(
    clippy::mut_from_ref,
    reason = "packet memory belongs to the context, not to the `&XdpContext` borrow; \
              exclusivity is the caller's contract"
)]
pub unsafe fn mut_at<T>(ctx: &XdpContext, offset: usize) -> Result<&mut T, OutOfBounds> {
    let addr = checked::<T>(ctx, offset)?;
    // SAFETY: inside the packet (checked above); the rest is the caller's
    // contract.
    Ok(unsafe { &mut *(addr as *mut T) })
}

/// Length of the packet in bytes.
#[inline(always)]
pub fn len(ctx: &XdpContext) -> usize {
    ctx.data_end() - ctx.data()
}
