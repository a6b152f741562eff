//! A frame's two MAC addresses carried as three words. As byte arrays
//! (`[u8; 6]` twice) the fast path loaded them byte by byte from the
//! next-hop cache, packed them into registers with shifts, spilled them,
//! and unpacked them again for the byte stores into the frame: ~45
//! instructions per packet. As words they are three aligned loads, and
//! each byte store into the frame takes one shift.

/// Source and destination MAC, in this order, as the 12 bytes of three
/// native-endian words (the layout of `CachedHop::smac`/`dmac`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MacPair([u32; 3]);

impl MacPair {
    /// From the two addresses as bytes (slow paths: a FIB answer, the
    /// frame as received).
    #[inline(always)]
    pub fn new(smac: &[u8; 6], dmac: &[u8; 6]) -> Self {
        let (s, d) = (smac, dmac);
        Self([
            u32::from_ne_bytes([s[0], s[1], s[2], s[3]]),
            u32::from_ne_bytes([s[4], s[5], d[0], d[1]]),
            u32::from_ne_bytes([d[2], d[3], d[4], d[5]]),
        ])
    }

    /// From the three words of a `CachedHop`'s two MAC fields.
    pub(crate) const fn from_words(words: [u32; 3]) -> Self {
        Self(words)
    }

    /// Byte `i` (0..12) of source then destination; one shift.
    #[inline(always)]
    const fn byte(&self, i: usize) -> u8 {
        self.0[i / 4].to_ne_bytes()[i % 4]
    }

    /// Byte `i` (0..6) of the source MAC.
    #[inline(always)]
    pub const fn src(&self, i: usize) -> u8 {
        self.byte(i)
    }

    /// Byte `i` (0..6) of the destination MAC.
    #[inline(always)]
    pub const fn dst(&self, i: usize) -> u8 {
        self.byte(6 + i)
    }

    /// The source MAC.
    pub fn smac(&self) -> [u8; 6] {
        core::array::from_fn(|i| self.src(i))
    }

    /// The destination MAC.
    pub fn dmac(&self) -> [u8; 6] {
        core::array::from_fn(|i| self.dst(i))
    }

    /// The three words (stored into a `CachedHop`).
    pub(crate) const fn words(&self) -> [u32; 3] {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carries_both_addresses_byte_for_byte() {
        let s = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
        let d = [0x0a, 0xbb, 0xcc, 0xdd, 0xee, 0xff];
        let m = MacPair::new(&s, &d);
        assert_eq!((m.smac(), m.dmac()), (s, d));
        for i in 0..6 {
            assert_eq!((m.src(i), m.dst(i)), (s[i], d[i]), "byte {i}");
        }
        // The words hold the 12 bytes in memory order: source, destination.
        // SAFETY: 12 bytes of integers reinterpreted as 12 bytes.
        let bytes: [u8; 12] = unsafe { core::mem::transmute(m.words()) };
        assert_eq!(bytes[..6], s);
        assert_eq!(bytes[6..], d);
    }
}
