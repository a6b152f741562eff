//! `XLB_VIP_FILTER`: a bitmap over hashed destination addresses, one bit
//! set for every VIP address (and address marker). A packet whose
//! destination's bit is clear is not for a VIP: the balancer passes it after
//! one array read, without hashing the 20-byte VIP key twice (exact port,
//! then port 0). A set bit only means "maybe": the VIP lookups decide.
//!
//! 65,536 bits (8 KiB): with 64 VIP addresses (the default `max_vips`) 0.1%
//! of other addresses share a bit with one; at 4,096, 6%.

use core::net::IpAddr;

use crate::ip::to_addr16;

/// 64-bit words of the bitmap (the map's entries).
pub const VIP_FILTER_WORDS: u32 = 1024;
/// Bits of the bitmap.
pub const VIP_FILTER_BITS: u32 = VIP_FILTER_WORDS * 64;

/// The bit of destination address `addr` (the 16-byte form: IPv4 in the
/// first four bytes, the rest zero): (word index, mask). The four 32-bit
/// words of the address are XORed (an IPv4 address is its own fold) and
/// multiplied by a golden-ratio constant; the product's top 16 bits choose
/// the bit, so neighbouring addresses land far apart.
#[inline(always)]
pub const fn vip_filter_slot(addr: &[u8; 16]) -> (u32, u64) {
    let mut h = 0u32;
    let mut i = 0;
    while i < 16 {
        h ^= u32::from_le_bytes([addr[i], addr[i + 1], addr[i + 2], addr[i + 3]]);
        i += 4;
    }
    let bit = h.wrapping_mul(0x9e37_79b1) >> 16;
    (bit >> 6, 1u64 << (bit & 63))
}

/// The slot of `addr`, for userspace.
pub fn vip_filter_slot_of(addr: IpAddr) -> (u32, u64) {
    vip_filter_slot(&to_addr16(addr).0)
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn slots_are_in_range_and_spread() {
        let mut bits = BTreeSet::new();
        for i in 0..4096u32 {
            let a = IpAddr::from([10, 100, (i >> 8) as u8, i as u8]);
            let (word, mask) = vip_filter_slot_of(a);
            assert!(word < VIP_FILTER_WORDS);
            assert_eq!(mask.count_ones(), 1);
            bits.insert((word, mask));
        }
        // 4,096 consecutive addresses: a good hash leaves few collisions
        // among 65,536 bits (about 120 expected for a random one).
        assert!(bits.len() > 3_900, "{} distinct bits", bits.len());
        let v6: BTreeSet<(u32, u64)> = (0..4096u16)
            .map(|i| vip_filter_slot_of(IpAddr::from([0xfd10, 0, 0, 0, 0, 0, 0, i])))
            .collect();
        assert!(v6.len() > 3_900, "{} distinct bits (IPv6)", v6.len());
    }

    #[test]
    fn an_ipv4_address_is_its_own_fold() {
        let a = [192, 0, 2, 1];
        let mut a16 = [0u8; 16];
        a16[..4].copy_from_slice(&a);
        let h = u32::from_le_bytes(a).wrapping_mul(0x9e37_79b1) >> 16;
        assert_eq!(vip_filter_slot(&a16), (h >> 6, 1 << (h & 63)));
    }
}
