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

#[cfg(test)]
mod tests {
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
