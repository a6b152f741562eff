//! Encapsulation toward a backend (direct server return), IP-in-IP or GUE:
//! the outer header family follows the backend (IPv4 or IPv6), the inner
//! packet is left byte-for-byte as the client sent it, and the new Ethernet
//! header carries the next hop's MAC from the kernel FIB. GUE (variant 1,
//! see `lb_common::forwarding::gue`) is the IP-in-IP frame with a UDP header
//! between the outer IP header and the inner packet.
//!
//! Headers are written field by field straight into the packet: the BPF stack
//! is 512 bytes and the verifier counts every temporary array.

use aya_ebpf::{
    bindings::bpf_fib_lookup as FibParams,
    helpers::generated::{bpf_fib_lookup, bpf_xdp_adjust_head, bpf_xdp_adjust_tail},
    programs::XdpContext,
    EbpfContext,
};
use lb_common::{
    bytes, checksum,
    forwarding::{gue, FORWARDING_GUE, FORWARDING_IPIP},
    MacPair, VlanDevice, FAMILY_V4, PROTO_UDP,
};
use network_types::{
    eth::EthHdr,
    ip::{Ipv4Hdr, Ipv6Hdr},
    udp::UdpHdr,
    vlan::VlanHdr,
};

use crate::{
    mem,
    packet::{self, mut_at},
    parse::{ETH_P_IPV4, ETH_P_IPV6, IPPROTO_IPIP, IPPROTO_IPV6, L2},
};

pub const IPV4_HDR_LEN: usize = 20;
pub const IPV6_HDR_LEN: usize = 40;

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// `bpf_fib_lookup` return codes (include/uapi/linux/bpf.h).
pub mod fib_rc {
    pub const SUCCESS: i64 = 0;
    pub const BLACKHOLE: i64 = 1;
    pub const UNREACHABLE: i64 = 2;
    pub const PROHIBIT: i64 = 3;
    pub const NOT_FWDED: i64 = 4;
    pub const FWD_DISABLED: i64 = 5;
    pub const UNSUPP_LWT: i64 = 6;
    pub const NO_NEIGH: i64 = 7;
    pub const FRAG_NEEDED: i64 = 8;
}

/// What the outer header needs, gathered before the packet is moved. Addresses
/// are references into map values (valid for the whole program run).
#[derive(Clone, Copy)]
pub struct Outer<'a> {
    /// Family of the outer header (the backend's).
    pub family: u8,
    pub src: &'a [u8; 16],
    pub dst: &'a [u8; 16],
    /// DSCP/ECN, copied from the inner header.
    pub tos: u8,
    /// TTL / hop limit: the configured outer TTL, never the client's (a
    /// packet that arrived with TTL 1 must still reach the backend).
    pub ttl: u8,
    /// IPv6 flow label (20 bits), from the flow hash: gives ECMP in the fabric
    /// per-flow entropy without anyone parsing the inner packet.
    pub flow_label: u32,
    /// Family of the inner packet: picks IPIP (4) or IPv6 (41) as next protocol.
    pub inner_family: u8,
    /// Length of the inner IP packet (header + payload, no L2 padding).
    pub inner_len: usize,
    /// The UDP header's length: 8 for GUE, 0 for IP-in-IP. A length rather
    /// than a flag: the header lengths stay one value range for the
    /// verifier, so the FIB, the cache and the push are verified once for
    /// both modes instead of once per mode (see [`udp_len_of`]).
    pub udp_len: usize,
    /// GUE: the outer UDP destination port as on the wire.
    pub udp_dport: [u8; 2],
    /// GUE: the outer UDP source port (the flow's entropy).
    pub udp_sport: u16,
}

/// The UDP header length of an encapsulating mode's `FORWARDING_*` byte,
/// computed without a branch: GUE is the encapsulating mode with bit 0 set.
#[inline(always)]
pub fn udp_len_of(forwarding: u8) -> usize {
    const _: () =
        assert!(FORWARDING_GUE & 1 == 1 && FORWARDING_IPIP & 1 == 0 && gue::UDP_HEADER_LEN == 8);
    usize::from(forwarding & 1) << 3
}

/// The outer header's length toward a backend of `family`: the IP header
/// plus `udp_len` (GUE).
#[inline(always)]
pub fn header_len(family: u8, udp_len: usize) -> usize {
    let ip = if family == FAMILY_V4 {
        IPV4_HDR_LEN
    } else {
        IPV6_HDR_LEN
    };
    ip + udp_len
}

impl Outer<'_> {
    /// The outer IP header plus, for GUE, the UDP header.
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        header_len(self.family, self.udp_len)
    }

    /// What follows the outer IP header: UDP for GUE, else the inner
    /// packet itself (IPIP or IPv6).
    #[inline(always)]
    fn next_proto(&self) -> u8 {
        if self.udp_len != 0 {
            PROTO_UDP
        } else if self.inner_family == FAMILY_V4 {
            IPPROTO_IPIP
        } else {
            IPPROTO_IPV6
        }
    }

    /// Bytes after the outer IP header: the UDP header (GUE) and the inner
    /// packet.
    #[inline(always)]
    fn ip_payload_len(&self) -> usize {
        self.udp_len + self.inner_len
    }
}

/// An IPv6 address as the FIB wants it (network order in memory).
#[inline(always)]
fn addr_words(a: &[u8; 16]) -> [u32; 4] {
    let w = |i: usize| u32::from_ne_bytes([a[i], a[i + 1], a[i + 2], a[i + 3]]);
    [w(0), w(4), w(8), w(12)]
}

/// Result of a FIB lookup: where the frame goes.
#[derive(Clone, Copy)]
pub struct NextHop {
    pub ifindex: u32,
    /// The egress interface's MAC (source) and the next hop's.
    pub macs: MacPair,
    /// The egress device's VLAN, if it is a VLAN device (the FIB does not
    /// say: [`fib_lookup`] leaves it `NONE`, the caller fills it in).
    pub vlan: VlanDevice,
    /// 0 when the destination itself is the next hop (no gateway on the
    /// route: what layer-2 forwarding needs), non-zero when the route goes
    /// through a gateway. A byte rather than a bool: computed and cached
    /// without a branch, so only the mode that asks pays a verifier path.
    pub off_link: u8,
    /// On `FRAG_NEEDED`: the egress MTU the packet did not fit (the
    /// kernel's `mtu_result`); 0 otherwise.
    pub mtu: u32,
}

/// One question for the FIB: the route from `src` to `dst` for a packet of
/// `len` bytes (the kernel checks the egress MTU against it). Addresses are
/// references into map values or the stack (valid for the program run).
#[derive(Clone, Copy)]
pub struct Route<'a> {
    pub family: u8,
    pub src: &'a [u8; 16],
    pub dst: &'a [u8; 16],
    pub tos: u8,
    pub len: usize,
}

impl Outer<'_> {
    /// The route the encapsulated packet takes.
    #[inline(always)]
    pub fn route(&self) -> Route<'_> {
        Route {
            family: self.family,
            src: self.src,
            dst: self.dst,
            tos: self.tos,
            len: self.header_len() + self.inner_len,
        }
    }
}

/// Asks the kernel FIB for the route and neighbour toward the outer destination.
/// `tot_len` makes the kernel check the egress MTU for the encapsulated size.
/// Returns the raw return code and the next hop (filled on SUCCESS only; on
/// FRAG_NEEDED, its `mtu`).
#[inline(always)]
pub fn fib_lookup(ctx: &XdpContext, outer: &Outer, ingress_ifindex: u32) -> (i64, NextHop) {
    fib_lookup_route(ctx, &outer.route(), ingress_ifindex)
}

/// Asks the kernel FIB for the route and neighbour toward `r.dst`, as if the
/// packet arrived on `ingress_ifindex`. Returns the raw return code and the
/// next hop (filled on SUCCESS only).
#[inline(always)]
pub fn fib_lookup_route(ctx: &XdpContext, r: &Route, ingress_ifindex: u32) -> (i64, NextHop) {
    let mut buf = core::mem::MaybeUninit::<mem::Aligned<FibParams>>::uninit();
    // SAFETY: bpf_fib_lookup is a plain C struct of integers and unions of
    // integers, for which all-zero is a valid value.
    let p: &mut FibParams = unsafe { mem::zeroed(&mut buf) };
    p.__bindgen_anon_1.tot_len = r.len as u16;
    p.ifindex = ingress_ifindex;
    let (s, d) = (r.src, r.dst);
    let (dst4, dst6) = (u32::from_ne_bytes([d[0], d[1], d[2], d[3]]), addr_words(d));
    if r.family == FAMILY_V4 {
        p.family = AF_INET;
        p.__bindgen_anon_2.tos = r.tos;
        p.__bindgen_anon_3.ipv4_src = u32::from_ne_bytes([s[0], s[1], s[2], s[3]]);
        p.__bindgen_anon_4.ipv4_dst = dst4;
    } else {
        p.family = AF_INET6;
        p.__bindgen_anon_3.ipv6_src = addr_words(s);
        p.__bindgen_anon_4.ipv6_dst = dst6;
    }
    // SAFETY: the helper reads and writes only `p`, whose size we pass.
    let rc =
        unsafe { bpf_fib_lookup(ctx.as_ptr(), p, core::mem::size_of::<FibParams>() as i32, 0) };
    // On success the kernel replaces the destination with the route's
    // gateway, if it has one: the destination is on-link when it is kept.
    // SAFETY: reading the union members the family wrote (plain integers).
    let diff = unsafe {
        if r.family == FAMILY_V4 {
            p.__bindgen_anon_4.ipv4_dst ^ dst4
        } else {
            let w = p.__bindgen_anon_4.ipv6_dst;
            (w[0] ^ dst6[0]) | (w[1] ^ dst6[1]) | (w[2] ^ dst6[2]) | (w[3] ^ dst6[3])
        }
    };
    // Any bit of the difference survives the fold into one byte.
    let off_link = (diff | diff >> 8 | diff >> 16 | diff >> 24) as u8;
    let mtu = if rc == fib_rc::FRAG_NEEDED {
        // SAFETY: on FRAG_NEEDED the kernel stores the MTU in this union
        // (`mtu_result` shares its bytes with `tot_len`); a u16 either way.
        u32::from(unsafe { p.__bindgen_anon_1.mtu_result })
    } else {
        0
    };
    (
        rc,
        NextHop {
            ifindex: p.ifindex,
            macs: MacPair::new(&p.smac, &p.dmac),
            vlan: VlanDevice::NONE,
            off_link,
            mtu,
        },
    )
}

/// Cuts the frame after its first `len` bytes: Ethernet padding or any bytes
/// beyond the IP packet's own length would otherwise be sent inside the
/// tunnel, after the packet the outer header describes (and count against the
/// egress MTU, which the FIB checked for the IP length only). Returns false
/// if the kernel refused.
#[inline(always)]
pub fn trim_to(ctx: &XdpContext, len: usize) -> bool {
    let frame = packet::len(ctx);
    if frame <= len {
        return true;
    }
    let excess = (frame - len) as i32;
    // SAFETY: shrinking the tail is always memory-safe; every packet pointer
    // taken before this call is dead from here on (only offsets are reused).
    unsafe { bpf_xdp_adjust_tail(ctx.as_ptr() as *mut _, -excess) == 0 }
}

/// Grows the frame at the front by the outer header and writes Ethernet (+ the
/// original VLAN tag) and the outer IP header in front of the untouched inner
/// packet. Returns false if the kernel refused to grow the headroom.
#[inline(always)]
pub fn push_outer(ctx: &XdpContext, l2: &L2, outer: &Outer, macs: &impl FrameMacs) -> bool {
    let hdr_len = outer.header_len();
    // SAFETY: moving data start is always memory-safe; every packet pointer taken
    // before this call is dead from here on (only offsets are reused).
    if unsafe { bpf_xdp_adjust_head(ctx.as_ptr() as *mut _, -(hdr_len as i32)) } != 0 {
        return false;
    }
    if !write_l2(ctx, l2, macs, outer.family) {
        return false;
    }
    let (ip_written, ip_len) = if outer.family == FAMILY_V4 {
        (write_ipv4(ctx, l2.l3_off, outer), IPV4_HDR_LEN)
    } else {
        (write_ipv6(ctx, l2.l3_off, outer), IPV6_HDR_LEN)
    };
    if !ip_written {
        return false;
    }
    outer.udp_len == 0 || write_udp(ctx, l2.l3_off + ip_len, outer)
}

/// The MAC addresses a frame leaves with, written into its Ethernet header.
pub trait FrameMacs {
    fn write_into(&self, eth: &mut EthHdr);
}

/// The balancer's: from the next-hop cache as words, one shift per byte.
impl FrameMacs for MacPair {
    #[inline(always)]
    fn write_into(&self, eth: &mut EthHdr) {
        let mut i = 0;
        while i < 6 {
            eth.dst_addr[i] = self.dst(i);
            eth.src_addr[i] = self.src(i);
            i += 1;
        }
    }
}

/// (source, destination) as bytes: the floors' fixed hops.
impl FrameMacs for (&[u8; 6], &[u8; 6]) {
    #[inline(always)]
    fn write_into(&self, eth: &mut EthHdr) {
        bytes::copy(&mut eth.dst_addr, self.1);
        bytes::copy(&mut eth.src_addr, self.0);
    }
}

/// Writes the link-layer header at the front of the frame: `macs`,
/// the VLAN tag of `l2` if it had one (TPID and TCI kept), and the
/// EtherType of an IP header of `family`. Returns false if the frame is too
/// short (never, after the caller grew it).
#[inline(always)]
pub fn write_l2(ctx: &XdpContext, l2: &L2, macs: &impl FrameMacs, family: u8) -> bool {
    let ip_type = if family == FAMILY_V4 {
        ETH_P_IPV4
    } else {
        ETH_P_IPV6
    };
    let eth_type = if l2.vlan_tpid != 0 {
        l2.vlan_tpid
    } else {
        ip_type
    };
    // SAFETY: EthHdr is plain data at offset 0 (aligned); the only reference
    // into the packet while it lives.
    let Ok(eth) = (unsafe { mut_at::<EthHdr>(ctx, 0) }) else {
        return false;
    };
    macs.write_into(eth);
    eth.ether_type = eth_type.to_be();
    if l2.vlan_tpid != 0 {
        // SAFETY: VlanHdr is plain data at offset 14 (even), after `eth`'s
        // bytes; `eth` is no longer used.
        let Ok(vlan) = (unsafe { mut_at::<VlanHdr>(ctx, EthHdr::LEN) }) else {
            return false;
        };
        vlan.tci = l2.vlan_tci;
        vlan.ether_type = ip_type.to_be();
    }
    true
}

/// The GUE UDP header. Checksum 0: for IPv4 "no checksum"; for IPv6 the
/// zero checksum RFC 6935/6936 allow for tunnel protocols (the inner packet
/// carries its own checksums; Linux's fou sockets accept it by default, and
/// `xlb decap` never checks it). Computing a real one would mean summing the
/// whole packet in XDP.
#[inline(always)]
fn write_udp(ctx: &XdpContext, off: usize, o: &Outer) -> bool {
    // SAFETY: UdpHdr is byte arrays (alignment 1); the only reference into
    // the packet while it lives.
    let Ok(u) = (unsafe { mut_at::<UdpHdr>(ctx, off) }) else {
        return false;
    };
    u.src = o.udp_sport.to_be_bytes();
    u.dst = o.udp_dport;
    u.len = ((gue::UDP_HEADER_LEN + o.inner_len) as u16).to_be_bytes();
    u.check = [0, 0];
    true
}

#[inline(always)]
fn write_ipv4(ctx: &XdpContext, off: usize, o: &Outer) -> bool {
    // SAFETY: Ipv4Hdr is byte arrays (alignment 1); the only reference into
    // the packet while it lives.
    let Ok(h) = (unsafe { mut_at::<Ipv4Hdr>(ctx, off) }) else {
        return false;
    };
    let tot_len = (IPV4_HDR_LEN + o.ip_payload_len()) as u16;
    let proto = o.next_proto();
    let (s, d) = (o.src, o.dst);
    // The checksum is the folded sum of the header's 16-bit words, computed from
    // the values rather than re-read from the packet. ID 0 with DF set: an
    // atomic datagram (RFC 6864); the outer packet is never fragmented.
    const VER_IHL: u8 = 0x45;
    const FLAGS_DF: u16 = 0x4000;
    let sum = u32::from(u16::from_be_bytes([VER_IHL, o.tos]))
        + u32::from(tot_len)
        + u32::from(FLAGS_DF)
        + u32::from(u16::from_be_bytes([o.ttl, proto]))
        + u32::from(u16::from_be_bytes([s[0], s[1]]))
        + u32::from(u16::from_be_bytes([s[2], s[3]]))
        + u32::from(u16::from_be_bytes([d[0], d[1]]))
        + u32::from(u16::from_be_bytes([d[2], d[3]]));
    h.vihl = VER_IHL;
    h.tos = o.tos;
    h.tot_len = tot_len.to_be_bytes();
    h.id = [0, 0];
    h.frags = FLAGS_DF.to_be_bytes();
    h.ttl = o.ttl;
    h.proto = proto;
    h.check = checksum::fold(sum).to_be_bytes();
    h.src_addr = [s[0], s[1], s[2], s[3]];
    h.dst_addr = [d[0], d[1], d[2], d[3]];
    true
}

#[inline(always)]
fn write_ipv6(ctx: &XdpContext, off: usize, o: &Outer) -> bool {
    // SAFETY: Ipv6Hdr is byte arrays (alignment 1); the only reference into
    // the packet while it lives.
    let Ok(h) = (unsafe { mut_at::<Ipv6Hdr>(ctx, off) }) else {
        return false;
    };
    let fl = o.flow_label;
    h.vcf = [
        0x60 | (o.tos >> 4),
        (o.tos << 4) | ((fl >> 16) as u8 & 0x0f),
        (fl >> 8) as u8,
        fl as u8,
    ];
    h.payload_len = (o.ip_payload_len() as u16).to_be_bytes();
    h.next_hdr = o.next_proto();
    h.hop_limit = o.ttl;
    bytes::copy(&mut h.src_addr, o.src);
    bytes::copy(&mut h.dst_addr, o.dst);
    true
}
