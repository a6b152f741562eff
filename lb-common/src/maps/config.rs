//! `XLB_CONFIG` (global settings) and `XLB_NEXTHOPS` (the next-hop cache).

use core::net::{Ipv4Addr, Ipv6Addr};

use super::{icmp::DEFAULT_ICMP_RATE, nat::NatConfig, vlan::VlanDevice};
use crate::{flow_hash::DEFAULT_HASH_SEED, mac_pair::MacPair};

/// `GlobalConfig::flags`: `src_v4` is set (IPv4 outer headers can be built).
pub const CONFIG_F_SRC_V4: u32 = 1 << 0;
/// `GlobalConfig::flags`: `src_v6` is set (IPv6 outer headers can be built).
pub const CONFIG_F_SRC_V6: u32 = 1 << 1;

/// The outer header's TTL / hop limit when the config does not say. Fixed,
/// not copied from the client's packet: a packet that arrives with TTL 1
/// must still cross the routers between the balancer and the backend.
pub const DEFAULT_OUTER_TTL: u8 = 64;

/// Flood mode's threshold when the config does not say: connection-table
/// misses per second on one CPU. A CPU of a busy edge balancer sees tens of
/// thousands of genuinely new connections per second; a spoofed flood
/// millions.
pub const DEFAULT_FLOOD_THRESHOLD: u32 = 100_000;

/// The single entry of `XLB_CONFIG`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GlobalConfig {
    /// Outer source address for IPv6 encapsulation.
    src_v6: [u8; 16],
    /// Outer source address for IPv4 encapsulation.
    src_v4: [u8; 4],
    flags: u32,
    /// TTL (IPv4) / hop limit (IPv6) of every outer header.
    outer_ttl: u8,
    _pad: [u8; 3],
    /// Seed of the flow hash (`global.hash_seed`).
    hash_seed: u32,
    /// Connection-table misses per second on one CPU above which that CPU
    /// stops inserting entries for unknown flows (flood mode); 0: never.
    flood_threshold: u32,
    /// ICMP messages of each kind (too-big errors, echo replies) the
    /// balancer may send per second per CPU (`IcmpBucket`); 0: none.
    icmp_rate: u32,
    /// Full NAT's addresses, ports and timeouts (`forwarding = "nat"`).
    nat: NatConfig,
}

impl Default for GlobalConfig {
    /// No outer source, the default outer TTL and ICMP rate.
    fn default() -> Self {
        Self::new(None, None)
    }
}

impl GlobalConfig {
    /// Outer source addresses; a family without one cannot reach backends
    /// of that family. The outer TTL is [`DEFAULT_OUTER_TTL`], the ICMP rate
    /// [`DEFAULT_ICMP_RATE`].
    pub const fn new(src_v4: Option<Ipv4Addr>, src_v6: Option<Ipv6Addr>) -> Self {
        let mut c = Self {
            src_v6: [0; 16],
            src_v4: [0; 4],
            flags: 0,
            outer_ttl: DEFAULT_OUTER_TTL,
            _pad: [0; 3],
            hash_seed: DEFAULT_HASH_SEED,
            flood_threshold: DEFAULT_FLOOD_THRESHOLD,
            icmp_rate: DEFAULT_ICMP_RATE,
            nat: NatConfig::DEFAULT,
        };
        if let Some(a) = src_v4 {
            c.src_v4 = a.octets();
            c.flags |= CONFIG_F_SRC_V4;
        }
        if let Some(a) = src_v6 {
            c.src_v6 = a.octets();
            c.flags |= CONFIG_F_SRC_V6;
        }
        c
    }

    /// The same settings with outer headers carrying `ttl` (1..=255; the
    /// config refuses 0, which the first router would drop).
    pub const fn with_outer_ttl(self, ttl: u8) -> Self {
        Self {
            outer_ttl: ttl,
            ..self
        }
    }

    /// The same settings with the flow hash seeded by `seed`.
    pub const fn with_hash_seed(self, seed: u32) -> Self {
        Self {
            hash_seed: seed,
            ..self
        }
    }

    /// The same settings with flood mode starting above `misses_per_s`
    /// connection-table misses per second on one CPU (0: never).
    pub const fn with_flood_threshold(self, misses_per_s: u32) -> Self {
        Self {
            flood_threshold: misses_per_s,
            ..self
        }
    }

    #[inline(always)]
    pub const fn outer_ttl(&self) -> u8 {
        self.outer_ttl
    }

    #[inline(always)]
    pub const fn hash_seed(&self) -> u32 {
        self.hash_seed
    }

    #[inline(always)]
    pub const fn flood_threshold(&self) -> u32 {
        self.flood_threshold
    }

    /// The same settings with at most `per_second` ICMP messages of each
    /// kind per second per CPU (0: the balancer sends no ICMP).
    pub const fn with_icmp_rate(self, per_second: u32) -> Self {
        Self {
            icmp_rate: per_second,
            ..self
        }
    }

    #[inline(always)]
    pub const fn icmp_rate(&self) -> u32 {
        self.icmp_rate
    }

    /// The same settings with full NAT's `nat`.
    pub const fn with_nat(self, nat: NatConfig) -> Self {
        Self { nat, ..self }
    }

    #[inline(always)]
    pub const fn nat(&self) -> &NatConfig {
        &self.nat
    }

    pub fn src_v4(&self) -> Option<Ipv4Addr> {
        self.src_v4_octets().map(|a| Ipv4Addr::from(*a))
    }

    pub fn src_v6(&self) -> Option<Ipv6Addr> {
        self.src_v6_octets().map(|a| Ipv6Addr::from(*a))
    }

    #[inline(always)]
    pub const fn src_v4_octets(&self) -> Option<&[u8; 4]> {
        if self.flags & CONFIG_F_SRC_V4 != 0 {
            Some(&self.src_v4)
        } else {
            None
        }
    }

    #[inline(always)]
    pub const fn src_v6_octets(&self) -> Option<&[u8; 16]> {
        if self.flags & CONFIG_F_SRC_V6 != 0 {
            Some(&self.src_v6)
        } else {
            None
        }
    }
}

/// How long the data plane reuses a FIB answer for a backend before asking the
/// kernel again: route and neighbour changes take effect within this time.
pub const NEXTHOP_TTL_NS: u64 = 100_000_000;

/// Per-CPU value of `XLB_NEXTHOPS`, indexed by backend id: the last FIB answer
/// toward that backend. Only the data plane fills it; an empty entry
/// (`expires_ns` 0, `CachedHop::default()`) is how the daemon resets an id's
/// entries whenever it (re)assigns the id, so a recycled id never inherits
/// another backend's next hop.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CachedHop {
    /// Coarse monotonic time (ns) after which the entry must be refreshed.
    pub expires_ns: u64,
    pub ifindex: u32,
    /// Largest outer packet length the FIB's MTU check accepted for this
    /// entry; longer packets ask the FIB again.
    pub checked_len: u16,
    _pad: [u8; 2],
    pub smac: [u8; 6],
    pub dmac: [u8; 6],
    /// 0 when the backend itself is the next hop, non-zero when the route
    /// goes through a gateway (layer-2 forwarding, `l2-dsr`, needs 0).
    pub off_link: u8,
    _pad2: [u8; 3],
    /// The egress device's `XLB_VLANS` entry, looked up with the FIB
    /// answer; `VlanDevice::NONE` for an ordinary device.
    pub egress_vlan: VlanDevice,
}

impl CachedHop {
    /// Whether this answer may be used at `now_ns` for an outer packet of
    /// `len` bytes: not expired, and no longer than a packet the FIB's MTU
    /// check accepted (a longer one must ask the FIB, which may answer
    /// "fragmentation needed").
    #[inline(always)]
    pub const fn serves(&self, now_ns: u64, len: usize) -> bool {
        now_ns < self.expires_ns && len <= self.checked_len as usize
    }

    /// `smac` and `dmac` as three aligned word loads: the 12 bytes from
    /// offset 16 of this 8-byte aligned struct (pinned by `layout`).
    #[inline(always)]
    pub fn macs(&self) -> MacPair {
        // SAFETY: `smac` and `dmac` are the 12 contiguous bytes at offset
        // 16 (a multiple of 4, in an 8-aligned struct); the pointer comes
        // from the whole struct; any bits are a valid `u32`.
        let words = unsafe {
            (self as *const Self)
                .cast::<u8>()
                .add(core::mem::offset_of!(CachedHop, smac))
                .cast::<[u32; 3]>()
                .read()
        };
        MacPair::from_words(words)
    }

    /// Stores `macs` into `smac` and `dmac` (three word stores).
    #[inline(always)]
    pub fn set_macs(&mut self, macs: &MacPair) {
        // SAFETY: as in `macs`, for writing through an exclusive reference.
        unsafe {
            (self as *mut Self)
                .cast::<u8>()
                .add(core::mem::offset_of!(CachedHop, smac))
                .cast::<[u32; 3]>()
                .write(macs.words());
        }
    }
}

#[cfg(feature = "user")]
// SAFETY: `#[repr(C)]`, `Copy`, integers and byte arrays only, no implicit
// padding (pinned by `layout` below).
unsafe impl aya::Pod for GlobalConfig {}
#[cfg(feature = "user")]
// SAFETY: as above.
unsafe impl aya::Pod for CachedHop {}

#[cfg(test)]
mod layout {
    use core::mem::{align_of, offset_of, size_of};

    use super::*;

    #[test]
    fn global_config() {
        assert_eq!(offset_of!(GlobalConfig, src_v4), 16);
        assert_eq!(offset_of!(GlobalConfig, flags), 20);
        assert_eq!(offset_of!(GlobalConfig, outer_ttl), 24);
        assert_eq!(offset_of!(GlobalConfig, hash_seed), 28);
        assert_eq!(offset_of!(GlobalConfig, flood_threshold), 32);
        let c = GlobalConfig::default()
            .with_hash_seed(7)
            .with_flood_threshold(9);
        assert_eq!((c.hash_seed(), c.flood_threshold()), (7, 9));
        assert_eq!(GlobalConfig::default().hash_seed(), DEFAULT_HASH_SEED);
        assert_eq!(offset_of!(GlobalConfig, icmp_rate), 36);
        assert_eq!(offset_of!(GlobalConfig, nat), 40);
        assert_eq!(size_of::<GlobalConfig>(), 40 + size_of::<NatConfig>());
        assert_eq!(GlobalConfig::default().nat(), &NatConfig::default());
    }

    #[test]
    fn global_config_icmp_rate() {
        assert_eq!(GlobalConfig::default().icmp_rate(), DEFAULT_ICMP_RATE);
        let c = GlobalConfig::new(None, None).with_icmp_rate(0);
        assert_eq!(c.icmp_rate(), 0);
        assert_eq!(c.with_outer_ttl(3).icmp_rate(), 0);
    }

    #[test]
    fn global_config_outer_ttl() {
        assert_eq!(GlobalConfig::default().outer_ttl(), DEFAULT_OUTER_TTL);
        assert_eq!(GlobalConfig::new(None, None).outer_ttl(), 64);
        let c = GlobalConfig::new(Some(Ipv4Addr::new(10, 0, 0, 1)), None).with_outer_ttl(9);
        assert_eq!(c.outer_ttl(), 9);
        assert_eq!(c.src_v4(), Some(Ipv4Addr::new(10, 0, 0, 1)));
    }

    #[test]
    fn global_config_sources() {
        let c = GlobalConfig::new(Some(Ipv4Addr::new(10, 0, 0, 1)), None);
        assert_eq!(c.src_v4(), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(c.src_v6(), None);
        assert_eq!(c.flags, CONFIG_F_SRC_V4);
        let v6 = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
        let c = GlobalConfig::new(None, Some(v6));
        assert_eq!((c.src_v4(), c.src_v6()), (None, Some(v6)));
    }

    #[test]
    fn next_hop() {
        assert_eq!(size_of::<CachedHop>(), 40);
        assert_eq!(align_of::<CachedHop>(), 8);
        assert_eq!(offset_of!(CachedHop, egress_vlan), 32);
        assert_eq!(CachedHop::default().egress_vlan, VlanDevice::NONE);
        assert_eq!(offset_of!(CachedHop, ifindex), 8);
        assert_eq!(offset_of!(CachedHop, checked_len), 12);
        assert_eq!(offset_of!(CachedHop, smac), 16);
        assert_eq!(offset_of!(CachedHop, dmac), 22);
        assert_eq!(offset_of!(CachedHop, off_link), 28);
    }

    /// `macs`/`set_macs` read and write exactly the `smac`/`dmac` fields.
    #[test]
    fn next_hop_macs_are_its_mac_fields() {
        let (s, d) = ([2, 0, 0, 0, 0, 0xaa], [0xfe, 1, 2, 3, 4, 5]);
        let mut h = CachedHop {
            checked_len: 0xffff,
            off_link: 7,
            ..CachedHop::default()
        };
        h.set_macs(&MacPair::new(&s, &d));
        assert_eq!((h.smac, h.dmac), (s, d));
        assert_eq!((h.checked_len, h._pad, h.off_link), (0xffff, [0; 2], 7));
        assert_eq!((h.macs().smac(), h.macs().dmac()), (s, d));
    }
}

#[cfg(test)]
mod cached_hop {
    use super::*;

    #[test]
    fn serves_fresh_answers_up_to_the_checked_length_only() {
        let hop = CachedHop {
            expires_ns: 1_000,
            checked_len: 1_500,
            ..CachedHop::default()
        };
        assert!(hop.serves(999, 1_500));
        assert!(hop.serves(0, 20));
        assert!(!hop.serves(1_000, 1_500), "expired at expires_ns");
        assert!(!hop.serves(999, 1_501), "longer than the MTU check covered");
        assert!(!hop.serves(999, 70_000), "beyond any u16 length");
        assert!(
            !CachedHop::default().serves(0, 0),
            "a reset entry serves nothing"
        );
    }
}
