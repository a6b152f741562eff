//! Zeroing and copying without libcalls. For a `[u8; N]` copy or a struct
//! zero-initialisation, LLVM emits `memcpy`/`memset` calls, which the BPF
//! target implements as separate byte-at-a-time loop functions: slow on the
//! fast path (a call and a loop iteration per byte). Volatile stores at fixed
//! indexes are unrolled inline and cannot be turned back into such calls.

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

/// Copies `N` bytes with fixed-index stores.
///
/// # Safety
/// `dst` must be valid for writing `N` bytes (a packet pointer checked by
/// `ptr_at`, or a reference).
#[inline(always)]
pub unsafe fn copy<const N: usize>(dst: *mut [u8; N], src: &[u8; N]) {
    let d = dst.cast::<u8>();
    let mut i = 0;
    while i < N {
        // SAFETY: `i < N` stays inside `dst` by the caller's contract.
        unsafe { core::ptr::write_volatile(d.add(i), src[i]) };
        i += 1;
    }
}
