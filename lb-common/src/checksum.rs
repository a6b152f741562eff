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

#[cfg(test)]
mod tests {
    use super::*;

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
