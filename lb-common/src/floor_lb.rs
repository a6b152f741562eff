//! The per-packet benchmark's "essential work" balancer floors in the
//! auxiliary object (lb-ebpf's `aux_programs.rs`): what any hash-map-based L4
//! balancer must do for an established IPv4 TCP flow, and nothing more. Parse
//! Ethernet/IPv4/TCP, one lookup of the VIP ([`VIPS_MAP`], xlb's `VipKey`),
//! one of the connection ([`FLOWS_MAP`] or [`FLOWS16_MAP`]), one backend read
//! ([`BACKENDS_MAP`]), push an IP-in-IP header toward the backend with the
//! MACs and outer source of [`HOP_MAP`], XDP_TX. Any miss: XDP_PASS. No
//! stats, clock, policy or FIB. The benchmark fills the maps.
//!
//! The two programs differ only in the connection-table key: `xlb_floor_lb`
//! uses the balancer's 40-byte [`FlowKey`](crate::FlowKey) (both families in
//! one map), `xlb_floor_lb16` a 16-byte IPv4-only [`FlowKey16`]: side by side
//! they measure what a compact IPv4 key in its own map would save.
//!
//! A third, `xlb_floor_entry`, is the essential work of xlb's own design:
//! the connection first (40-byte key), its backend, and the VIP through the
//! backend's VIP id (its index in [`CFG_IX_MAP`], a
//! [`VipSlot`](crate::VipSlot) in [`CFG_MAP`] checked to be the packet's
//! exact VIP) instead of a hash lookup of the VIP key.
//!
//! A fourth, `xlb_floor_min`, is the least any balancer with a connection
//! table does: the 16-byte key's entry, its backend, that backend's VIP read
//! from an array by id ([`VIPARR_MAP`]: no helper call, no exact-VIP check),
//! the push.

use core::net::Ipv4Addr;

use crate::{bytes, ip::to_addr16};

/// The floor keyed by the balancer's 40-byte `FlowKey`.
pub const PROGRAM: &str = "xlb_floor_lb";
/// The floor keyed by [`FlowKey16`].
pub const PROGRAM16: &str = "xlb_floor_lb16";
/// The floor that finds the VIP through the connection's backend.
pub const PROGRAM_ENTRY: &str = "xlb_floor_entry";
/// The least work of a balancer with a connection table: the 16-byte
/// key's entry, its backend, the backend's VIP by id from an array
/// ([`VIPARR_MAP`]), the push.
pub const PROGRAM_MIN: &str = "xlb_floor_min";
/// `xlb_floor_min` for an IPv6 flow: the 40-byte key (the smallest that
/// holds two IPv6 addresses) in `xlb_floor_lb`'s table, its backend and
/// VIP from arrays, a 40-byte IPv6 outer header (flow label 0), XDP_TX.
pub const PROGRAM_MIN6: &str = "xlb_floor_min6";
/// The balancer's required work for an established TCP flow to an IP-in-IP
/// VIP (either family), written straight for that one case:
/// `xlb_floor_entry` plus the full parse, the VIP-address filter, the
/// entry's checks and policy generation, the clock, one counter write
/// besides the outcome counter, the config's outer source and TTL, this
/// CPU's cached next hop kept on the ingress VLAN, the padding trim, an
/// IPv6 outer header's flow label from the flow hash. The floor of the
/// flow hit for a balancer with xlb's duties (lb-ebpf's `aux_programs.rs`
/// says which issue asks for each).
pub const PROGRAM_FULL: &str = "xlb_floor_full";
/// `xlb_floor_full`'s VIP-address filter (`lb_common::vip_filter_slot`).
pub const FULL_FILTER_MAP: &str = "XLB_FLB_FILTER";
/// `xlb_floor_full`'s `VipPolicy` by VIP id.
pub const FULL_POLICY_MAP: &str = "XLB_FLB_POLICY";
/// `xlb_floor_full`'s `GlobalConfig` (one slot).
pub const FULL_CONFIG_MAP: &str = "XLB_FLB_CONFIG";
/// `xlb_floor_full`'s per-CPU `CachedHop` by backend id.
pub const FULL_NEXTHOPS_MAP: &str = "XLB_FLB_NHOPS";
/// [`HOP_MAP`]'s slot of the IPv6 floor's hop (IPv6 outer source).
pub const HOP_SLOT_V6: u32 = 1;
/// `xlb_floor_min`'s work on TCP and UDP, redirected to `xlb_fwd_floor`'s
/// egress port: the end-to-end benchmark's floor of a balancer with a
/// connection table ([`E2E_FLOWS_MAP`], the backends, VIPs and hop of the
/// other floors).
pub const PROGRAM_E2E: &str = "xlb_floor_e2e";
/// LRU hash (`BPF_F_NO_COMMON_LRU`) `FlowKey16 -> FlowValue` of
/// `xlb_floor_e2e`, sized at load time, filled by the packets.
pub const E2E_FLOWS_MAP: &str = "XLB_FLB_E2EFL";
/// Backends `xlb_floor_e2e` spreads new flows over (ids 1 to this, by
/// source port).
pub const FLOOR_E2E_BACKENDS: u32 = 3;
/// Array of `VipInfo` by VIP id, `xlb_floor_min`'s VIPs.
pub const VIPARR_MAP: &str = "XLB_FLB_VIPARR";
/// Array of `u64` config indexes by VIP id, `xlb_floor_entry`'s.
pub const CFG_IX_MAP: &str = "XLB_FLB_CFG_IX";
/// Array of `VipSlot` by config index, `xlb_floor_entry`'s VIPs.
pub const CFG_MAP: &str = "XLB_FLB_CFG";
/// Hash `VipKey -> VipInfo`, the VIPs of `xlb_floor_lb` and `xlb_floor_lb16`.
pub const VIPS_MAP: &str = "XLB_FLB_VIPS";
/// LRU hash (`BPF_F_NO_COMMON_LRU`) `FlowKey -> FlowValue` of `xlb_floor_lb`.
pub const FLOWS_MAP: &str = "XLB_FLB_FLOWS";
/// LRU hash (`BPF_F_NO_COMMON_LRU`) `FlowKey16 -> FlowValue` of `xlb_floor_lb16`.
pub const FLOWS16_MAP: &str = "XLB_FLB_FLOWS16";
/// Array of `Backend` by id, shared by every floor.
pub const BACKENDS_MAP: &str = "XLB_FLB_BES";
/// Array, one slot: the [`FloorLbHop`] of every packet.
pub const HOP_MAP: &str = "XLB_FLB_HOP";

/// A connection-table key of IPv4 only: 16 bytes instead of `FlowKey`'s 40
/// (no room for IPv6 addresses, no family byte). Addresses and ports as on the
/// wire.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FlowKey16 {
    src: [u8; 4],
    dst: [u8; 4],
    sport: [u8; 2],
    dport: [u8; 2],
    proto: u8,
    _pad: [u8; 3],
}

impl FlowKey16 {
    /// The flow `src:sport -> dst:dport` of IP protocol `proto`.
    pub const fn new(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, proto: u8) -> Self {
        Self {
            src: src.octets(),
            dst: dst.octets(),
            sport: sport.to_be_bytes(),
            dport: dport.to_be_bytes(),
            proto,
            _pad: [0; 3],
        }
    }

    /// Fills addresses, protocol and ports from the headers (`self` must
    /// start zeroed: the padding stays zero, as the map's keys need).
    #[inline(always)]
    pub fn set(&mut self, src: &[u8; 4], dst: &[u8; 4], proto: u8, sport: [u8; 2], dport: [u8; 2]) {
        bytes::copy(&mut self.src, src);
        bytes::copy(&mut self.dst, dst);
        self.proto = proto;
        self.sport = sport;
        self.dport = dport;
    }

    #[inline(always)]
    pub const fn dst(&self) -> &[u8; 4] {
        &self.dst
    }

    /// The destination port as on the wire.
    #[inline(always)]
    pub const fn dport_be(&self) -> [u8; 2] {
        self.dport
    }

    pub const fn proto(&self) -> u8 {
        self.proto
    }
}

/// [`HOP_MAP`]'s value: the outer header's source and the Ethernet addresses
/// of every packet the floors send (they ask no FIB).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FloorLbHop {
    /// IPv4 in the first 4 bytes, the rest zero: the form the balancer's
    /// outer-header writer takes.
    outer_src: [u8; 16],
    dmac: [u8; 6],
    smac: [u8; 6],
    _pad: [u8; 4],
}

impl FloorLbHop {
    pub const fn new(outer_src: Ipv4Addr, dmac: [u8; 6], smac: [u8; 6]) -> Self {
        Self {
            outer_src: to_addr16(core::net::IpAddr::V4(outer_src)).0,
            dmac,
            smac,
            _pad: [0; 4],
        }
    }

    /// The hop of an IPv6 floor: outer source `outer_src`.
    pub const fn new_v6(outer_src: core::net::Ipv6Addr, dmac: [u8; 6], smac: [u8; 6]) -> Self {
        Self {
            outer_src: outer_src.octets(),
            dmac,
            smac,
            _pad: [0; 4],
        }
    }

    #[inline(always)]
    pub const fn outer_src16(&self) -> &[u8; 16] {
        &self.outer_src
    }

    #[inline(always)]
    pub const fn dmac(&self) -> &[u8; 6] {
        &self.dmac
    }

    #[inline(always)]
    pub const fn smac(&self) -> &[u8; 6] {
        &self.smac
    }
}

#[cfg(feature = "user")]
// SAFETY: `#[repr(C)]`, `Copy`, byte arrays only, no implicit padding (pinned
// by `layout` below).
unsafe impl aya::Pod for FlowKey16 {}
#[cfg(feature = "user")]
// SAFETY: as above.
unsafe impl aya::Pod for FloorLbHop {}

#[cfg(test)]
mod layout {
    use core::mem::{align_of, offset_of, size_of};

    use super::*;
    use crate::PROTO_TCP;

    #[test]
    fn flow_key16_and_hop() {
        assert_eq!(size_of::<FlowKey16>(), 16);
        assert_eq!(align_of::<FlowKey16>(), 1);
        assert_eq!(offset_of!(FlowKey16, dst), 4);
        assert_eq!(offset_of!(FlowKey16, sport), 8);
        assert_eq!(offset_of!(FlowKey16, dport), 10);
        assert_eq!(offset_of!(FlowKey16, proto), 12);
        assert_eq!(size_of::<FloorLbHop>(), 32);
        assert_eq!(offset_of!(FloorLbHop, dmac), 16);
        assert_eq!(offset_of!(FloorLbHop, smac), 22);
    }

    #[test]
    fn constructor_and_setter_agree() {
        let (src, dst) = (Ipv4Addr::new(192, 0, 2, 7), Ipv4Addr::new(10, 100, 0, 1));
        let k = FlowKey16::new(src, 40000, dst, 80, PROTO_TCP);
        let mut parsed = FlowKey16::default();
        parsed.set(
            &src.octets(),
            &dst.octets(),
            PROTO_TCP,
            40000u16.to_be_bytes(),
            80u16.to_be_bytes(),
        );
        assert_eq!(parsed, k);
        assert_eq!(k.dst(), &dst.octets());
        assert_eq!(k.dport_be(), 80u16.to_be_bytes());
        assert_eq!(k.proto(), PROTO_TCP);
    }

    #[test]
    fn the_hop_keeps_the_source_in_the_16_byte_form() {
        let h = FloorLbHop::new(Ipv4Addr::new(10, 0, 0, 1), [1; 6], [2; 6]);
        assert_eq!(h.outer_src16()[..4], [10, 0, 0, 1]);
        assert!(h.outer_src16()[4..].iter().all(|b| *b == 0));
        assert_eq!((h.dmac(), h.smac()), (&[1; 6], &[2; 6]));
    }

    #[test]
    fn names_fit_the_kernel_limit() {
        for n in [
            PROGRAM,
            PROGRAM16,
            PROGRAM_ENTRY,
            PROGRAM_MIN,
            PROGRAM_MIN6,
            PROGRAM_E2E,
            E2E_FLOWS_MAP,
            VIPARR_MAP,
            CFG_IX_MAP,
            CFG_MAP,
            VIPS_MAP,
            FLOWS_MAP,
            FLOWS16_MAP,
            BACKENDS_MAP,
            HOP_MAP,
        ] {
            assert!(n.len() <= 15, "{n}");
        }
    }
}
