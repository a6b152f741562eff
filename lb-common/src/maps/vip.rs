//! `XLB_VIPS`: (address, port, protocol, family) -> VIP.

use core::net::IpAddr;

use super::{flow::FlowKey, PROTO_TCP, PROTO_UDP};
use crate::{
    bytes,
    forwarding::{Forwarding, FORWARDING_IPIP},
    ip::{from_addr16, to_addr16, FAMILY_V4},
};

/// `VipInfo::flags`: hash the source address only (client affinity).
pub const VIP_F_SOURCE_HASH: u32 = 1 << 0;
/// `VipInfo::flags`: never consult or fill the flow table for this VIP.
pub const VIP_F_NO_FLOW_TABLE: u32 = 1 << 1;
/// `VipInfo::flags`: every weighted backend failed its health check, so the
/// table keeps all of them (fail open) and connection-table entries naming an
/// unhealthy backend are still followed. Set by the reconciler, never by the
/// config.
pub const VIP_F_FAIL_OPEN: u32 = 1 << 2;

/// `VipInfo::flags`: the VIP does not ask for echo requests to its address
/// to be answered (`ping = false`). Only address markers are read for
/// pings ([`MARKER_F_PING`]); the flag is kept on the VIP's entry so that
/// the installed state says what the config said. (A high bit: the low ones
/// are the balancing flags.)
pub const VIP_F_NO_PING: u32 = 1 << 8;

/// Address markers' `VipInfo::flags`: the balancer answers echo requests to
/// the address (at least one of its VIPs allows ping).
pub const MARKER_F_PING: u32 = 1 << 16;
/// Address markers' `VipInfo::flags`: TCP fragments to the address go to the
/// VIP at (address, `frag_port_tcp`, TCP), which hashes the source address.
pub const MARKER_F_FRAG_TCP: u32 = 1 << 17;
/// As [`MARKER_F_FRAG_TCP`], for UDP and `frag_port_udp`.
pub const MARKER_F_FRAG_UDP: u32 = 1 << 18;

/// `VipInfo::udp_idle_timeout_ms` when the config does not say.
pub const DEFAULT_UDP_IDLE_TIMEOUT_MS: u32 = 30_000;

/// Key of `XLB_VIPS`: one virtual service, or an address marker.
///
/// The port is big-endian; `0` means "every port of this address and
/// protocol" (the data plane looks up the exact port first, then port 0, see
/// [`crate::decision::lookup_vip`]). Protocol 0 marks an address marker: one
/// entry per VIP address, which lets the data plane recognise traffic to a VIP
/// address that carries no usable ports (fragments, ICMP) and says what to do
/// with it ([`VipInfo::marker`]).
// 4-byte aligned: `serves_exactly` reads the address as words (a map
// value's alignment is what its type says, nothing more).
#[repr(C, align(4))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VipKey {
    /// IPv4 in the first 4 bytes (rest zero), or IPv6.
    addr: [u8; 16],
    port: [u8; 2],
    proto: u8,
    family: u8,
}

impl VipKey {
    /// The VIP `addr:port/proto` (`port` 0: every port).
    pub const fn new(addr: IpAddr, port: u16, proto: u8) -> Self {
        let (addr, family) = to_addr16(addr);
        Self {
            addr,
            port: port.to_be_bytes(),
            proto,
            family,
        }
    }

    /// Whether this is the exact (address, port, protocol, family) of
    /// `flow`'s destination. Compared word by word, without early exits
    /// (no `memcmp` call in BPF).
    #[inline(always)]
    pub fn serves_exactly(&self, flow: &FlowKey) -> bool {
        let same_port = u16::from_ne_bytes(self.port) == u16::from_ne_bytes(flow.dport);
        (same_port & (self.proto == flow.proto) & (self.family == flow.family))
            && bytes::words16(&self.addr) == bytes::words16(flow.dst16())
    }

    /// The address marker of `addr`.
    pub const fn marker(addr: IpAddr) -> Self {
        Self::new(addr, 0, 0)
    }

    /// The address marker of this VIP's address.
    pub const fn to_marker(&self) -> Self {
        Self {
            addr: self.addr,
            port: [0; 2],
            proto: 0,
            family: self.family,
        }
    }

    pub fn addr(&self) -> IpAddr {
        from_addr16(&self.addr, self.family)
    }

    pub const fn port(&self) -> u16 {
        u16::from_be_bytes(self.port)
    }

    pub const fn proto(&self) -> u8 {
        self.proto
    }

    pub const fn family(&self) -> u8 {
        self.family
    }

    pub const fn is_marker(&self) -> bool {
        self.proto == 0
    }

    /// The key of the VIP a flow is sent to (its exact port): the first key
    /// the data plane looks up.
    pub fn of_flow(flow: &FlowKey) -> Self {
        let mut k = Self::marker(IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED));
        k.set_to_flow_destination(flow);
        k
    }

    /// Turns `self` into [`VipKey::of_flow`] in place (the data plane builds
    /// keys in zeroed stack memory: no struct copy, no libcall).
    #[inline(always)]
    pub fn set_to_flow_destination(&mut self, flow: &FlowKey) {
        bytes::copy(&mut self.addr, flow.dst16());
        self.port = flow.dport_be();
        self.proto = flow.proto();
        self.family = flow.family();
    }

    /// Turns `self` (zeroed) into the key of the IPv4 VIP `dst:dport/proto`
    /// in place: [`VipKey::set_to_flow_destination`] for a key that holds
    /// only IPv4 (`crate::floor_lb::FlowKey16`).
    #[inline(always)]
    pub fn set_v4_destination(&mut self, dst: &[u8; 4], dport: [u8; 2], proto: u8) {
        bytes::copy_v4(&mut self.addr, dst);
        self.port = dport;
        self.proto = proto;
        self.family = FAMILY_V4;
    }

    /// Turns `self` into the same address's port-0 (every port) VIP key.
    #[inline(always)]
    pub fn set_any_port(&mut self) {
        self.port = [0; 2];
    }

    /// Turns `self` into its address marker in place.
    #[inline(always)]
    pub fn set_to_marker(&mut self) {
        self.port = [0; 2];
        self.proto = 0;
    }

    /// Turns `self` (a key of the same address) into the key of the VIP at
    /// `port` (as on the wire) and `proto`.
    #[inline(always)]
    pub fn set_port_proto(&mut self, port: [u8; 2], proto: u8) {
        self.port = port;
        self.proto = proto;
    }
}

/// Value of `XLB_VIPS`.
///
/// The VIP's Maglev table is `XLB_MAGLEV[table_offset .. table_offset + table_size]`
/// (in slots); `table_size` 0 means the VIP has no usable backend. An
/// address marker's value says what the balancer does with the address's
/// portless traffic ([`VipInfo::marker`]): `MARKER_F_*` flags and the
/// fragment ports; its other fields are zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct VipInfo {
    /// Index into `XLB_VIP_STATS`, and the owner tag stored in each backend.
    pub vip_id: u32,
    /// `VIP_F_*`.
    pub flags: u32,
    pub table_offset: u32,
    pub table_size: u32,
    /// A UDP connection-table entry idle longer than this is expired (the
    /// next packet of the flow goes through the table again).
    pub udp_idle_timeout_ms: u32,
    /// How packets reach the backends: a `FORWARDING_*` byte.
    forwarding: u8,
    _pad: u8,
    /// GUE VIPs: the outer UDP destination port (big-endian).
    gue_port: [u8; 2],
    /// Address markers only: the port (as on the wire) of the VIP that takes
    /// the address's TCP fragments, valid with `MARKER_F_FRAG_TCP`.
    pub frag_port_tcp: [u8; 2],
    /// As `frag_port_tcp`, for UDP (`MARKER_F_FRAG_UDP`).
    pub frag_port_udp: [u8; 2],
}

impl VipInfo {
    /// The value of an address marker: whether the balancer answers echo
    /// requests to the address, and the ports of the (source-hashed) VIPs
    /// that take its TCP and UDP fragments, if any. (A marker forwards
    /// nothing itself: fragments go out with their VIP's mode.)
    pub const fn marker(ping: bool, frag_tcp: Option<u16>, frag_udp: Option<u16>) -> Self {
        let mut m = Self {
            vip_id: 0,
            flags: if ping { MARKER_F_PING } else { 0 },
            table_offset: 0,
            table_size: 0,
            udp_idle_timeout_ms: 0,
            forwarding: FORWARDING_IPIP,
            _pad: 0,
            gue_port: [0; 2],
            frag_port_tcp: [0; 2],
            frag_port_udp: [0; 2],
        };
        if let Some(port) = frag_tcp {
            m.flags |= MARKER_F_FRAG_TCP;
            m.frag_port_tcp = port.to_be_bytes();
        }
        if let Some(port) = frag_udp {
            m.flags |= MARKER_F_FRAG_UDP;
            m.frag_port_udp = port.to_be_bytes();
        }
        m
    }

    /// An IP-in-IP VIP with the default UDP idle timeout.
    pub const fn new(vip_id: u32, flags: u32, table_offset: u32, table_size: u32) -> Self {
        Self {
            vip_id,
            flags,
            table_offset,
            table_size,
            udp_idle_timeout_ms: DEFAULT_UDP_IDLE_TIMEOUT_MS,
            forwarding: FORWARDING_IPIP,
            _pad: 0,
            gue_port: [0; 2],
            frag_port_tcp: [0; 2],
            frag_port_udp: [0; 2],
        }
    }

    /// An address marker's port (as on the wire) of the VIP that takes the
    /// address's fragments of `proto`, if one does.
    #[inline(always)]
    pub const fn fragment_port(&self, proto: u8) -> Option<[u8; 2]> {
        if proto == PROTO_TCP && self.flags & MARKER_F_FRAG_TCP != 0 {
            Some(self.frag_port_tcp)
        } else if proto == PROTO_UDP && self.flags & MARKER_F_FRAG_UDP != 0 {
            Some(self.frag_port_udp)
        } else {
            None
        }
    }

    /// The same VIP forwarding its packets by `mode`; `gue_port` is the
    /// outer UDP destination port of a GUE VIP (ignored by other modes,
    /// stored as 0).
    pub const fn with_forwarding(self, mode: Forwarding, gue_port: u16) -> Self {
        let gue_port = match mode {
            Forwarding::Gue => gue_port.to_be_bytes(),
            _ => [0; 2],
        };
        Self {
            forwarding: mode.to_wire(),
            gue_port,
            ..self
        }
    }

    /// The `FORWARDING_*` byte (the data plane matches on it).
    #[inline(always)]
    pub const fn forwarding_byte(&self) -> u8 {
        self.forwarding
    }

    /// The forwarding mode; `None` for a byte no mode has.
    pub const fn forwarding(&self) -> Option<Forwarding> {
        Forwarding::from_wire(self.forwarding)
    }

    /// A GUE VIP's outer UDP destination port as on the wire.
    #[inline(always)]
    pub const fn gue_port_be(&self) -> [u8; 2] {
        self.gue_port
    }

    pub const fn gue_port(&self) -> u16 {
        u16::from_be_bytes(self.gue_port)
    }

    /// The same VIP with UDP flows expiring after `ms` of silence.
    pub const fn with_udp_idle_timeout_ms(self, ms: u32) -> Self {
        Self {
            udp_idle_timeout_ms: ms,
            ..self
        }
    }

    /// The UDP idle timeout in nanoseconds (the data plane's clock unit).
    #[inline(always)]
    pub const fn udp_idle_timeout_ns(&self) -> u64 {
        self.udp_idle_timeout_ms as u64 * 1_000_000
    }
}

#[cfg(feature = "user")]
// SAFETY: `#[repr(C)]`, `Copy`, integers and byte arrays only, no implicit
// padding (pinned by `layout` below).
unsafe impl aya::Pod for VipKey {}
#[cfg(feature = "user")]
// SAFETY: as above.
unsafe impl aya::Pod for VipInfo {}

#[cfg(test)]
mod layout {
    use core::mem::{align_of, offset_of, size_of};

    use super::*;
    use crate::ip::FAMILY_V4;

    #[test]
    fn vip_key() {
        assert_eq!(size_of::<VipKey>(), 20);
        assert_eq!(align_of::<VipKey>(), 4);
        assert_eq!(offset_of!(VipKey, port), 16);
        assert_eq!(offset_of!(VipKey, proto), 18);
        assert_eq!(offset_of!(VipKey, family), 19);
    }

    #[test]
    fn the_v4_destination_setter_builds_the_vip_key() {
        let mut k = VipKey::marker(IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED));
        k.set_v4_destination(&[10, 100, 0, 1], 80u16.to_be_bytes(), PROTO_TCP);
        assert_eq!(k, VipKey::new(IpAddr::from([10, 100, 0, 1]), 80, PROTO_TCP));
        assert_eq!(k.family(), FAMILY_V4);
    }

    #[test]
    fn vip_info() {
        assert_eq!(size_of::<VipInfo>(), 28);
        assert_eq!(offset_of!(VipInfo, flags), 4);
        assert_eq!(offset_of!(VipInfo, table_offset), 8);
        assert_eq!(offset_of!(VipInfo, table_size), 12);
        assert_eq!(offset_of!(VipInfo, udp_idle_timeout_ms), 16);
        assert_eq!(offset_of!(VipInfo, forwarding), 20);
        assert_eq!(offset_of!(VipInfo, _pad), 21);
        assert_eq!(offset_of!(VipInfo, gue_port), 22);
        assert_eq!(offset_of!(VipInfo, frag_port_tcp), 24);
        assert_eq!(offset_of!(VipInfo, frag_port_udp), 26);
        let v = VipInfo::new(1, 0, 0, 7);
        assert_eq!(v.udp_idle_timeout_ms, DEFAULT_UDP_IDLE_TIMEOUT_MS);
        assert_eq!(v.forwarding(), Some(Forwarding::Ipip));
        let g = v.with_forwarding(Forwarding::Gue, 6080);
        assert_eq!(
            (g.forwarding(), g.gue_port()),
            (Some(Forwarding::Gue), 6080)
        );
        assert_eq!(g.gue_port_be(), [0x17, 0xc0]);
        let n = g.with_forwarding(Forwarding::L2Dsr, 6080);
        assert_eq!((n.forwarding(), n.gue_port()), (Some(Forwarding::L2Dsr), 0));
        assert_eq!(
            VipInfo::marker(false, None, None).forwarding(),
            Some(Forwarding::Ipip)
        );
        assert_eq!(
            v.with_udp_idle_timeout_ms(1500).udp_idle_timeout_ns(),
            1_500_000_000
        );
    }

    #[test]
    fn markers() {
        let m = VipInfo::marker(true, None, Some(53));
        assert_eq!(m.flags, MARKER_F_PING | MARKER_F_FRAG_UDP);
        assert_eq!(m.fragment_port(PROTO_UDP), Some([0, 53]));
        assert_eq!(m.fragment_port(PROTO_TCP), None);
        assert_eq!(m.fragment_port(1), None);
        let m = VipInfo::marker(false, Some(0), None);
        assert_eq!(m.flags, MARKER_F_FRAG_TCP);
        assert_eq!(m.fragment_port(PROTO_TCP), Some([0, 0]), "a port-0 VIP");
        assert_eq!((m.vip_id, m.table_size), (0, 0));
        assert_eq!(VipInfo::marker(false, None, None), VipInfo::default());
        // Marker flags and VIP flags do not overlap.
        let vip_flags = VIP_F_SOURCE_HASH | VIP_F_NO_FLOW_TABLE | VIP_F_FAIL_OPEN | VIP_F_NO_PING;
        assert_eq!(
            vip_flags & (MARKER_F_PING | MARKER_F_FRAG_TCP | MARKER_F_FRAG_UDP),
            0
        );
        let mut k = VipKey::marker(IpAddr::from([10, 0, 0, 1]));
        k.set_port_proto([1, 187], PROTO_TCP);
        assert_eq!(k, VipKey::new(IpAddr::from([10, 0, 0, 1]), 443, PROTO_TCP));
    }

    #[test]
    fn port_is_big_endian() {
        let k = VipKey::new(IpAddr::from([10, 0, 0, 1]), 443, PROTO_TCP);
        assert_eq!(k.port, [0x01, 0xbb]);
        assert_eq!(k.port(), 443);
        assert_eq!(k.family(), FAMILY_V4);
        assert_eq!(k.addr(), IpAddr::from([10, 0, 0, 1]));
    }

    #[test]
    fn marker_and_flow_keys() {
        let vip = IpAddr::from([10, 100, 0, 1]);
        let k = VipKey::new(vip, 80, PROTO_TCP);
        assert_eq!(k.to_marker(), VipKey::marker(vip));
        assert!(k.to_marker().is_marker() && !k.is_marker());
        let flow = FlowKey::new(IpAddr::from([192, 0, 2, 1]), 4000, vip, 80, PROTO_TCP)
            .expect("same family");
        assert_eq!(VipKey::of_flow(&flow), k);
        let mut any = k;
        any.set_any_port();
        assert_eq!(any, VipKey::new(vip, 0, PROTO_TCP));
        let mut m = k;
        m.set_to_marker();
        assert_eq!(m, VipKey::marker(vip));
    }
}
