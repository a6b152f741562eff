//! Byte-level helpers for writing frames: big-endian fields and the Internet
//! checksum (RFC 1071), for the generator and the oracle's tests.

/// Writes `v` big-endian at `at`.
pub fn put16(buf: &mut [u8], at: usize, v: u16) {
    buf[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

pub fn get16(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([buf[at], buf[at + 1]])
}

/// Adds `bytes` (as big-endian 16-bit words, an odd last byte padded with
/// zero) to a one's-complement running sum.
pub fn sum(mut acc: u32, bytes: &[u8]) -> u32 {
    let mut chunks = bytes.chunks_exact(2);
    for c in &mut chunks {
        acc = acc.wrapping_add(u32::from(u16::from_be_bytes([c[0], c[1]])));
    }
    if let [last] = chunks.remainder() {
        acc = acc.wrapping_add(u32::from(*last) << 8);
    }
    acc
}

/// The checksum field value for a running sum.
pub fn finish(mut acc: u32) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: the sum of these words is 0xddf2.
        let words = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(finish(sum(0, &words)), !0xddf2);
        assert_eq!(finish(sum(0, &[0xff])), !0xff00);
    }

    #[test]
    fn agrees_with_etherparse_on_an_ipv4_header() {
        let h = etherparse::Ipv4Header::new(
            100,
            64,
            etherparse::IpNumber::TCP,
            [192, 0, 2, 1],
            [10, 0, 0, 1],
        )
        .expect("valid header");
        let mut bytes = h.to_bytes().to_vec();
        put16(&mut bytes, 10, 0);
        assert_eq!(finish(sum(0, &bytes)), h.calc_header_checksum());
    }
}
