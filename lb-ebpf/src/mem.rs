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

/// Copies `src` into `buf` with 4-byte stores and returns the copy. A value
/// that may come from either of two maps becomes one stack value: the
/// verifier then walks the code that uses it once, not once per map (map
/// value pointers of different maps never prune each other's states).
///
/// `T` must be at least 4-byte aligned and a multiple of 4 bytes long
/// (checked at compile time), and hold plain integers and byte arrays.
#[inline(always)]
pub fn copied<'a, T: Copy>(buf: &'a mut MaybeUninit<Aligned<T>>, src: &T) -> &'a T {
    const {
        assert!(core::mem::align_of::<T>() >= 4 && core::mem::size_of::<T>().is_multiple_of(4));
    }
    let d = buf.as_mut_ptr().cast::<u32>();
    let s = (src as *const T).cast::<u32>();
    let words = core::mem::size_of::<T>() / 4;
    let mut i = 0;
    while i < words {
        // SAFETY: `i < words` stays inside both `src` (a valid `T`, 4-byte
        // aligned) and `buf` (8-byte aligned, at least as long).
        unsafe { core::ptr::write_volatile(d.add(i), core::ptr::read_volatile(s.add(i))) };
        i += 1;
    }
    // SAFETY: the first `size_of::<T>()` bytes are now a copy of a valid `T`.
    unsafe { &(*buf.as_ptr()).0 }
}
