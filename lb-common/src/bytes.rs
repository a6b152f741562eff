//! Byte copies that stay inline in BPF. For a `[u8; N]` assignment LLVM may
//! emit a `memcpy` call, which the BPF target turns into a separate
//! byte-at-a-time loop function: slow on the fast path (a call and a loop
//! iteration per byte). Volatile stores at fixed indexes are unrolled inline
//! and cannot be turned back into such a call. In userspace they are merely
//! plain stores.

/// Copies `N` bytes with fixed-index stores.
#[inline(always)]
pub fn copy<const N: usize>(dst: &mut [u8; N], src: &[u8; N]) {
    let d = dst.as_mut_ptr();
    let mut i = 0;
    while i < N {
        // SAFETY: `i < N` stays inside `dst`, a valid, exclusive `[u8; N]`.
        unsafe { core::ptr::write_volatile(d.add(i), src[i]) };
        i += 1;
    }
}

/// Copies an IPv4 address into the first 4 bytes of a 16-byte address field.
#[inline(always)]
pub fn copy_v4(dst: &mut [u8; 16], src: &[u8; 4]) {
    let d = dst.as_mut_ptr();
    let mut i = 0;
    while i < 4 {
        // SAFETY: `i < 4 < 16` stays inside `dst`, a valid, exclusive `[u8; 16]`.
        unsafe { core::ptr::write_volatile(d.add(i), src[i]) };
        i += 1;
    }
}

/// Whether two 16-byte addresses are equal: four 32-bit words XORed and
/// ORed together, no early exit (the verifier walks one path, and LLVM
/// cannot turn it into a `memcmp` call).
#[inline(always)]
pub fn eq16(a: &[u8; 16], b: &[u8; 16]) -> bool {
    let mut diff = 0u32;
    let mut i = 0;
    while i < 16 {
        diff |= u32::from_ne_bytes([a[i], a[i + 1], a[i + 2], a[i + 3]])
            ^ u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        i += 4;
    }
    diff == 0
}

/// A 16-byte address field of a 4-byte aligned struct (`VipKey`,
/// `FlowKey`, at an offset that is a multiple of 4) as four words: four
/// loads instead of the sixteen byte loads, shifts and ORs LLVM's BPF
/// target emits for a byte array it cannot prove aligned (a map value's
/// pointer says nothing of its alignment beyond its type's).
///
/// Only for such fields: the caller's reference must be 4-byte aligned
/// (checked in debug builds).
#[inline(always)]
pub fn words16(a: &[u8; 16]) -> [u32; 4] {
    let p = a.as_ptr().cast::<[u32; 4]>();
    debug_assert!(p.is_aligned());
    // SAFETY: 16 readable bytes, 4-byte aligned (callers pass fields of
    // `align(4)` structs at offsets that are multiples of 4); any bits are
    // a valid `u32`.
    unsafe { p.read() }
}

#[cfg(test)]
mod tests {
    #[test]
    fn eq16_compares_every_byte() {
        let a: [u8; 16] = core::array::from_fn(|i| i as u8);
        assert!(super::eq16(&a, &a));
        for i in 0..16 {
            let mut b = a;
            b[i] ^= 0x80;
            assert!(!super::eq16(&a, &b), "byte {i}");
        }
    }

    #[test]
    fn words16_reads_the_bytes_as_native_words() {
        #[repr(C, align(4))]
        struct Aligned([u8; 16]);
        let a = Aligned(core::array::from_fn(|i| i as u8));
        let w = super::words16(&a.0);
        for (i, word) in w.iter().enumerate() {
            let b = &a.0[i * 4..i * 4 + 4];
            assert_eq!(*word, u32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
        }
    }

    #[test]
    fn copies_every_byte() {
        let src: [u8; 16] = core::array::from_fn(|i| i as u8 + 1);
        let mut dst = [0u8; 16];
        super::copy(&mut dst, &src);
        assert_eq!(dst, src);
    }

    #[test]
    fn copies_v4_into_the_prefix() {
        let mut dst = [0xffu8; 16];
        super::copy_v4(&mut dst, &[1, 2, 3, 4]);
        assert_eq!(dst[..4], [1, 2, 3, 4]);
        assert!(dst[4..].iter().all(|b| *b == 0xff));
    }
}
