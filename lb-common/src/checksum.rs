//! Internet checksum (RFC 1071) arithmetic for the headers the data plane
//! writes. Pure and `no_std`, unit-tested on the host; the packet tests verify
//! its output independently with a packet library.

/// Folds a 32-bit one's-complement accumulator into the final 16-bit checksum.
#[inline(always)]
pub const fn fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}

/// Folds a one's-complement accumulator into its 16-bit sum (not
/// complemented): what [`fold`] inverts, and what partial sums combine as.
#[inline(always)]
pub const fn fold_sum(mut sum: u64) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// Adds the eight big-endian words of a 16-byte address (an IPv6 address,
/// or an IPv4 one in the first four bytes, the rest zero) to `sum`.
#[inline(always)]
pub const fn add_addr16(mut sum: u32, a: &[u8; 16]) -> u32 {
    let mut i = 0;
    while i < 16 {
        sum += u16::from_be_bytes([a[i], a[i + 1]]) as u32;
        i += 2;
    }
    sum
}

/// Adds the two big-endian words of an IPv4 address to `sum`.
#[inline(always)]
pub const fn add_addr4(sum: u32, a: &[u8; 4]) -> u32 {
    sum + u16::from_be_bytes([a[0], a[1]]) as u32 + u16::from_be_bytes([a[2], a[3]]) as u32
}

/// The one's-complement sum of `bytes` as big-endian 16-bit words (an odd
/// last byte padded with zero), unfolded: the host-side counterpart of what
/// the XDP program gets from `bpf_csum_diff` over packet bytes.
pub const fn sum_bytes(bytes: &[u8]) -> u64 {
    let mut sum = 0u64;
    let mut i = 0;
    while i + 1 < bytes.len() {
        sum += u16::from_be_bytes([bytes[i], bytes[i + 1]]) as u64;
        i += 2;
    }
    if i < bytes.len() {
        sum += (bytes[i] as u64) << 8;
    }
    sum
}

/// Checksum of a 20-byte IPv4 header (no options) whose checksum field is zero.
#[inline(always)]
pub const fn ipv4_header(h: &[u8; 20]) -> u16 {
    let mut sum = 0u32;
    let mut i = 0;
    while i < 20 {
        sum += u16::from_be_bytes([h[i], h[i + 1]]) as u32;
        i += 2;
    }
    fold(sum)
}

/// The checksum of a header after one of its 16-bit words changed from `old`
/// to `new` (RFC 1624, equation 3: `HC' = ~(~HC + ~m + m')`), without
/// reading the rest of the header.
#[inline(always)]
pub const fn update_word(check: u16, old: u16, new: u16) -> u16 {
    fold(!check as u32 + !old as u32 + new as u32)
}

/// The checksum after words summing to `old` were replaced by words summing
/// to `new` (both one's-complement sums, unfolded: e.g. [`add_addr16`] of
/// the old and new addresses plus the old and new ports), without reading
/// the rest of what the checksum covers: RFC 1624 equation 3 over several
/// words, `HC' = ~(~HC + ~m + m')`.
#[inline(always)]
pub const fn replace(check: u16, old: u32, new: u32) -> u16 {
    let old = fold_sum(old as u64);
    let new = fold_sum(new as u64);
    fold(!check as u32 + !old as u32 + new as u32)
}

/// [`replace`] for a UDP checksum: over IPv4 a checksum of 0 means "none"
/// and stays 0; a computed 0 is sent as 0xffff (RFC 768), since 0 would
/// read as "none".
#[inline(always)]
pub const fn replace_udp(check: u16, old: u32, new: u32, v4: bool) -> u16 {
    if v4 && check == 0 {
        return 0;
    }
    match replace(check, old, new) {
        0 => 0xffff,
        c => c,
    }
}

#[cfg(test)]
mod tests {
    /// The checksum of `data` (its checksum field zero) from scratch.
    fn from_scratch(data: &[u8]) -> u16 {
        super::fold(super::fold_sum(super::sum_bytes(data)) as u32)
    }

    #[test]
    fn replaced_words_give_the_recomputed_checksum() {
        // A pseudo-header-like block: two addresses and two ports, then payload.
        let mut rng = 0x1234_5678u32;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            rng
        };
        for _ in 0..2000 {
            let mut data = [0u8; 48];
            for b in data.iter_mut() {
                *b = next() as u8;
            }
            let check = from_scratch(&data);
            let mut changed = data;
            for b in changed[..36].iter_mut() {
                *b = next() as u8;
            }
            let old = super::sum_bytes(&data[..36]) as u32;
            let new = super::sum_bytes(&changed[..36]) as u32;
            let got = super::replace(check, old, new);
            let want = from_scratch(&changed);
            // 0x0000 and 0xffff are the same one's-complement number.
            assert!(
                got == want || (got == 0 && want == 0xffff) || (got == 0xffff && want == 0),
                "{got:#x} != {want:#x}"
            );
        }
        assert_eq!(
            super::replace_udp(0, 1, 2, true),
            0,
            "no checksum stays none"
        );
        assert_ne!(super::replace_udp(0, 1, 2, false), 0, "IPv6 always has one");
        // A result of 0 (here: nothing changed in a block whose checksum
        // is 0, which IPv6 UDP may compute) is sent as 0xffff.
        assert_eq!(super::replace(0, 0, 0), 0);
        assert_eq!(super::replace_udp(0, 0, 0, false), 0xffff);
    }

    use super::*;

    /// Checksum of `h` with its checksum field (bytes 10-11) taken as zero.
    fn full(h: &[u8; 20]) -> u16 {
        let mut z = *h;
        z[10] = 0;
        z[11] = 0;
        ipv4_header(&z)
    }

    #[test]
    fn an_updated_word_gives_the_recomputed_checksum() {
        let headers = [
            [
                0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0, 0, 0xc0, 0xa8, 0x00,
                0x01, 0xc0, 0xa8, 0x00, 0xc7,
            ],
            // A checksum close to the one's-complement wrap (0xffff / 0x0000).
            [
                0x45, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0xff, 0xff, 0xff,
                0xff, 0xff, 0xff, 0xff, 0xff,
            ],
            [
                0x45, 0x01, 0x00, 0x14, 0, 0, 0, 0, 0x01, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
            ],
        ];
        for mut h in headers {
            let before = full(&h);
            h[10..12].copy_from_slice(&before.to_be_bytes());
            for tos in 0..=255u8 {
                let old = u16::from_be_bytes([h[0], h[1]]);
                let new = u16::from_be_bytes([h[0], tos]);
                let mut changed = h;
                changed[1] = tos;
                let check = update_word(u16::from_be_bytes([h[10], h[11]]), old, new);
                changed[10..12].copy_from_slice(&check.to_be_bytes());
                // Valid when the whole header, checksum included, folds to 0.
                let mut sum = 0u32;
                for c in changed.chunks(2) {
                    sum += u16::from_be_bytes([c[0], c[1]]) as u32;
                }
                assert_eq!(fold(sum), 0, "tos {tos:#x} from {:#x}", h[1]);
            }
        }
    }

    #[test]
    fn rfc1071_example_header() {
        // A well-known header from the IPv4 checksum literature: checksum 0xb861.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(ipv4_header(&h), 0xb861);
        h[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        // A header including its correct checksum sums to 0xffff, i.e. folds to 0.
        let mut sum = 0u32;
        for c in h.chunks(2) {
            sum += u16::from_be_bytes([c[0], c[1]]) as u32;
        }
        assert_eq!(fold(sum), 0);
    }

    #[test]
    fn partial_sums_combine() {
        let bytes: [u8; 7] = [0xff, 0xfe, 0x12, 0x34, 0xab, 0xcd, 0x80];
        let whole = fold_sum(sum_bytes(&bytes));
        let split = fold_sum(sum_bytes(&bytes[..4]) + sum_bytes(&bytes[4..]));
        assert_eq!(whole, split);
        assert_eq!(fold_sum(0xffff_ffff_ffff), 0xffff);
        let a: [u8; 16] = core::array::from_fn(|i| (i * 17) as u8);
        assert_eq!(u64::from(add_addr16(0, &a)), sum_bytes(&a));
        assert_eq!(
            u64::from(add_addr4(5, &[1, 2, 3, 4])),
            5 + sum_bytes(&[1, 2, 3, 4])
        );
    }

    #[test]
    fn fold_handles_double_carry() {
        assert_eq!(fold(0x0001_fffe), !0xffffu16);
        assert_eq!(fold(0xffff_ffff), 0);
    }
}
