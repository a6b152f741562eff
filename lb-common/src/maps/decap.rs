//! The backend-side decapsulator's maps: its tunnel addresses
//! (`XLB_DECAP_ADDRS`), the balancers it accepts tunnels from
//! (`XLB_DECAP_SRCS`), the VIPs inner packets may be addressed to
//! (`XLB_DECAP_VIPS`), the GUE ports it takes (`XLB_DECAP_GUE`) and
//! its counters (`XLB_DECAP_STATS`).

use core::net::IpAddr;

use crate::{
    bytes,
    ip::{to_addr16, v4_addr16, FAMILY_V4, FAMILY_V6},
};

pub const MAX_DECAP_ADDRS: u32 = 64;
/// Balancer outer source addresses one backend accepts tunnels from.
pub const MAX_DECAP_SOURCES: u32 = 256;
/// VIP addresses one backend serves.
pub const MAX_DECAP_VIPS: u32 = 1024;
/// GUE ports one backend takes (`XLB_DECAP_GUE`, keyed by the port in
/// host order).
pub const MAX_DECAP_GUE_PORTS: u32 = 16;

/// Key of the decap address sets (`XLB_DECAP_ADDRS`: outer destinations,
/// `XLB_DECAP_SRCS`: allowed outer sources, `XLB_DECAP_VIPS`: allowed inner
/// destinations): one address with its family. The value is unused (1).
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

    /// The key of an IPv4 header's address.
    #[inline(always)]
    pub const fn from_v4_octets(addr: [u8; 4]) -> Self {
        Self {
            addr: v4_addr16(addr),
            family: FAMILY_V4,
            _pad: [0; 3],
        }
    }

    /// The key of an IPv6 header's address.
    #[inline(always)]
    pub const fn from_v6_octets(addr: [u8; 16]) -> Self {
        Self {
            addr,
            family: FAMILY_V6,
            _pad: [0; 3],
        }
    }

    /// Turns an all-zero key into [`from_v4_octets`](Self::from_v4_octets)
    /// in place: the data plane builds keys in zeroed stack memory, where a
    /// constructed value would cost `memset`/`memcpy` libcalls.
    #[inline(always)]
    pub fn set_v4_of_zeroed(&mut self, addr: &[u8; 4]) {
        bytes::copy_v4(&mut self.addr, addr);
        self.family = FAMILY_V4;
    }

    /// Turns a key into [`from_v6_octets`](Self::from_v6_octets) in place.
    #[inline(always)]
    pub fn set_v6(&mut self, addr: &[u8; 16]) {
        bytes::copy(&mut self.addr, addr);
        self.family = FAMILY_V6;
    }
}

/// Slots of `XLB_DECAP_STATS` (per-CPU `u64` packet counters).
pub mod decap_stat {
    /// Outer header stripped, inner packet passed up.
    pub const DECAPSULATED: u32 = 0;
    /// Not IP-in-IP or GUE for one of our addresses: passed unchanged.
    pub const PASSED: u32 = 1;
    /// IP-in-IP to us, but the inner packet is truncated or not IP: dropped.
    pub const MALFORMED: u32 = 2;
    /// IP-in-IP to us from an outer source not in `XLB_DECAP_SRCS` (not one
    /// of our balancers: maybe spoofed): passed to the kernel unchanged.
    pub const REFUSED_SOURCE: u32 = 3;
    /// IP-in-IP to us from a balancer, but the inner destination is not in
    /// `XLB_DECAP_VIPS`: passed to the kernel unchanged.
    pub const REFUSED_INNER_DST: u32 = 4;
    /// Outer header marked CE over a Not-ECT inner packet: dropped (RFC 6040).
    pub const ECN_DROPPED: u32 = 5;
    pub const COUNT: u32 = 6;
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

    #[test]
    fn in_place_setters_agree_with_the_constructors() {
        let mut k = DecapKey::default();
        k.set_v4_of_zeroed(&[192, 0, 2, 1]);
        assert_eq!(k, DecapKey::from_v4_octets([192, 0, 2, 1]));
        let v6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
        let mut k = DecapKey::default();
        k.set_v6(&v6);
        assert_eq!(k, DecapKey::from_v6_octets(v6));
    }

    #[test]
    fn the_family_tells_keys_with_the_same_bytes_apart() {
        // 10.0.0.11 and a:b:: share their 16-byte form.
        let v4 = DecapKey::from_v4_octets([10, 0, 0, 11]);
        let v6 = DecapKey::new(IpAddr::from([0x0a00, 0x000b, 0, 0, 0, 0, 0, 0]));
        assert_eq!(v4.addr, v6.addr, "same 16-byte form");
        assert_ne!(v4, v6);
    }
}
