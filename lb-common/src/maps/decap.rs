//! The backend-side decapsulator's maps: `XLB_DECAP_ADDRS` and `XLB_DECAP_STATS`.

use core::net::IpAddr;

use crate::ip::{to_addr16, v4_addr16, FAMILY_V4, FAMILY_V6};

pub const MAX_DECAP_ADDRS: u32 = 64;

/// Key of `XLB_DECAP_ADDRS`: an outer destination the decap program accepts.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct DecapKey {
    addr: [u8; 16],
    family: u8,
    _pad: [u8; 3],
}

impl DecapKey {
    pub const fn new(addr: IpAddr) -> Self {
        let (addr, family) = to_addr16(addr);
        Self {
            addr,
            family,
            _pad: [0; 3],
        }
    }

    /// The key of an IPv4 header's destination.
    #[inline(always)]
    pub const fn from_v4_octets(addr: [u8; 4]) -> Self {
        Self {
            addr: v4_addr16(addr),
            family: FAMILY_V4,
            _pad: [0; 3],
        }
    }

    /// The key of an IPv6 header's destination.
    #[inline(always)]
    pub const fn from_v6_octets(addr: [u8; 16]) -> Self {
        Self {
            addr,
            family: FAMILY_V6,
            _pad: [0; 3],
        }
    }
}

/// Slots of `XLB_DECAP_STATS` (per-CPU `u64` packet counters).
pub mod decap_stat {
    /// Outer header stripped, inner packet passed up.
    pub const DECAPSULATED: u32 = 0;
    /// Not IP-in-IP for one of our addresses: passed unchanged.
    pub const PASSED: u32 = 1;
    /// IP-in-IP to us, but the inner packet is truncated or not IP: dropped.
    pub const MALFORMED: u32 = 2;
    pub const COUNT: u32 = 3;
}

#[cfg(feature = "user")]
// SAFETY: `#[repr(C)]`, `Copy`, byte arrays only, no implicit padding (pinned
// by `layout` below).
unsafe impl aya::Pod for DecapKey {}

#[cfg(test)]
mod layout {
    use core::mem::{offset_of, size_of};

    use super::*;

    #[test]
    fn decap_key() {
        assert_eq!(size_of::<DecapKey>(), 20);
        assert_eq!(offset_of!(DecapKey, family), 16);
    }

    #[test]
    fn constructors_agree() {
        assert_eq!(
            DecapKey::new(IpAddr::from([10, 0, 0, 11])),
            DecapKey::from_v4_octets([10, 0, 0, 11])
        );
        let v6 = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11];
        assert_eq!(
            DecapKey::new(IpAddr::from(v6)),
            DecapKey::from_v6_octets(v6)
        );
    }
}
