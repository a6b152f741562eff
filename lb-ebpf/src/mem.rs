//! Zeroed stack values without libcalls. For a struct zero-initialisation
//! LLVM emits a `memset` call, which the BPF target implements as a separate
//! byte-at-a-time loop function: slow on the fast path. Volatile 8-byte
//! stores are unrolled inline and cannot be turned back into such a call.
//! (Byte copies: `lb_common::bytes`.)

use core::mem::MaybeUninit;

/// Stack storage aligned for 8-byte stores.
#[repr(C, align(8))]
pub struct Aligned<T>(pub T);

/// Zeroes `buf` with 8-byte stores and returns the value inside.
///
/// # Safety
/// All-zero bytes must be a valid `T` (plain integers and byte arrays).
#[inline(always)]
pub unsafe fn zeroed<T>(buf: &mut MaybeUninit<Aligned<T>>) -> &mut T {
    let p = buf.as_mut_ptr().cast::<u64>();
    let words = core::mem::size_of::<Aligned<T>>() / 8;
    let mut i = 0;
    while i < words {
        // SAFETY: `i < words` stays inside `buf`, which is 8-byte aligned and a
        // multiple of 8 bytes long (align(8) rounds the size up).
        unsafe { core::ptr::write_volatile(p.add(i), 0) };
        i += 1;
    }
    // SAFETY: every byte is now initialised to zero, a valid `T` by contract.
    unsafe { &mut (*buf.as_mut_ptr()).0 }
}
