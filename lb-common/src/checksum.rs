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
    fn fold_handles_double_carry() {
        assert_eq!(fold(0x0001_fffe), !0xffffu16);
        assert_eq!(fold(0xffff_ffff), 0);
    }
}
