//! `xlb_decap`: runs on backends. Strips the outer header of IP-in-IP packets
//! (IPv4 or IPv6 outer, IPv4 or IPv6 inner) addressed to one of this host's
//! tunnel addresses in `XLB_DECAP_ADDRS` and passes the inner packet up the
//! stack, as the kernel's ipip/ip6_tunnel/sit modules would, propagating a
//! Congestion Experienced mark from the outer header (RFC 6040). GUE packets
//! (variant 1: UDP to one of the ports in `XLB_DECAP_GUE`, the inner IP
//! packet right after the UDP header, see `lb_common::forwarding::gue`) lose
//! their outer IP and UDP headers the same way, as the kernel's `fou` module
//! in `gue` mode would strip them.
//!
//! It is not an open relay: a tunnel packet is stripped only when its outer
//! source is one of the balancers in `XLB_DECAP_SRCS` and its inner
//! destination one of the VIPs in `XLB_DECAP_VIPS`. Otherwise anyone could
//! send a packet with a forged inner source past the backend's firewall (the
//! class of CVE-2020-10136); such packets go to the kernel untouched (which
//! has no tunnel for them) and are counted. Everything else passes unchanged.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

use core::mem::MaybeUninit;

use aya_ebpf::{
    bindings::xdp_action,
    helpers::generated::bpf_xdp_adjust_head,
    macros::{map, xdp},
    maps::{HashMap, PerCpuArray},
    programs::XdpContext,
    EbpfContext,
};
use lb_common::{
    bytes, checksum, decap_stat,
    ecn::{self, DecapEcn},
    forwarding::gue,
    DecapKey, FAMILY_V4, FAMILY_V6, MAX_DECAP_ADDRS, MAX_DECAP_GUE_PORTS, MAX_DECAP_SOURCES,
    MAX_DECAP_VIPS, PROTO_UDP,
};
use lb_ebpf::{
    mem,
    packet::{mut_at, ref_at},
    parse::{self, ETH_P_IPV4, ETH_P_IPV6, IPPROTO_IPIP, IPPROTO_IPV6, L2},
};
use network_types::{
    eth::EthHdr,
    ip::{Ipv4Hdr, Ipv6Hdr},
    udp::UdpHdr,
    vlan::VlanHdr,
};

/// Outer destination addresses this host terminates tunnels for.
#[map]
static XLB_DECAP_ADDRS: HashMap<DecapKey, u32> = HashMap::with_max_entries(MAX_DECAP_ADDRS, 0);

/// Outer source addresses of the balancers this host accepts tunnels from.
#[map]
static XLB_DECAP_SRCS: HashMap<DecapKey, u32> = HashMap::with_max_entries(MAX_DECAP_SOURCES, 0);

/// Inner destinations (the VIPs this host serves) a tunnel may carry.
#[map]
static XLB_DECAP_VIPS: HashMap<DecapKey, u32> = HashMap::with_max_entries(MAX_DECAP_VIPS, 0);

/// UDP destination ports (host order) this host takes GUE on; empty: GUE
/// is not decapsulated.
#[map]
static XLB_DECAP_GUE: HashMap<u16, u32> = HashMap::with_max_entries(MAX_DECAP_GUE_PORTS, 0);

/// Per-CPU packet counters, slots in `lb_common::decap_stat`.
#[map]
static XLB_DECAP_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(decap_stat::COUNT, 0);

#[xdp]
// Inlined into aya's entry wrapper, as `xlb_balancer` is (see there).
#[inline(always)]
pub fn xlb_decap(ctx: XdpContext) -> u32 {
    let (slot, action) = decap(&ctx);
    if let Some(c) = XLB_DECAP_STATS.get_ptr_mut(slot) {
        // SAFETY: per-CPU slot.
        unsafe { *c += 1 };
    }
    action
}

const PASSED: (u32, u32) = (decap_stat::PASSED, xdp_action::XDP_PASS);
const MALFORMED: (u32, u32) = (decap_stat::MALFORMED, xdp_action::XDP_DROP);

/// A tunnel packet for us: its outer header length, the inner family, whether
/// a balancer sent it and the outer ECN field.
struct Tunnel {
    outer_len: usize,
    inner_family: u8,
    from_balancer: bool,
    ecn: u8,
}

/// What the decapsulator needs of the inner header.
struct Inner {
    to_vip: bool,
    ecn: u8,
}

#[inline(always)]
fn decap(ctx: &XdpContext) -> (u32, u32) {
    let Ok(l2) = parse::parse_l2(ctx) else {
        return PASSED;
    };
    let tunnel = match l2.ether_type {
        ETH_P_IPV4 => outer_ipv4(ctx, l2.l3_off),
        ETH_P_IPV6 => outer_ipv6(ctx, l2.l3_off),
        _ => None,
    };
    let Some(t) = tunnel else {
        return PASSED;
    };
    // Checked before anything of the inner packet is read: from anyone else,
    // a tunnel packet is none of our business.
    if !t.from_balancer {
        return (decap_stat::REFUSED_SOURCE, xdp_action::XDP_PASS);
    }
    let inner_off = l2.l3_off + t.outer_len;
    let Some(inner) = inner_header(ctx, inner_off, t.inner_family) else {
        return MALFORMED;
    };
    if !inner.to_vip {
        return (decap_stat::REFUSED_INNER_DST, xdp_action::XDP_PASS);
    }
    match ecn::decap_ecn(t.ecn, inner.ecn) {
        DecapEcn::Keep => {}
        DecapEcn::MarkCe => {
            if !mark_ce(ctx, inner_off, t.inner_family) {
                return MALFORMED;
            }
        }
        DecapEcn::Drop => return (decap_stat::ECN_DROPPED, xdp_action::XDP_DROP),
    }
    if strip(ctx, &l2, &t) {
        (decap_stat::DECAPSULATED, xdp_action::XDP_PASS)
    } else {
        MALFORMED
    }
}

#[inline(always)]
fn inner_family(proto: u8) -> Option<u8> {
    match proto {
        IPPROTO_IPIP => Some(FAMILY_V4),
        IPPROTO_IPV6 => Some(FAMILY_V6),
        _ => None,
    }
}

/// Whether IPv4 address `addr` is in `set`.
#[inline(always)]
fn has_v4(set: &HashMap<DecapKey, u32>, addr: &[u8; 4]) -> bool {
    let mut buf = MaybeUninit::<mem::Aligned<DecapKey>>::uninit();
    // SAFETY: DecapKey is byte arrays and bytes: all-zero is valid.
    let key = unsafe { mem::zeroed(&mut buf) };
    key.set_v4_of_zeroed(addr);
    // SAFETY: u32 values, replaced whole by updates; only presence is read.
    unsafe { set.get(key) }.is_some()
}

/// Whether IPv6 address `addr` is in `set`.
#[inline(always)]
fn has_v6(set: &HashMap<DecapKey, u32>, addr: &[u8; 16]) -> bool {
    let mut buf = MaybeUninit::<mem::Aligned<DecapKey>>::uninit();
    // SAFETY: as in `has_v4`.
    let key = unsafe { mem::zeroed(&mut buf) };
    key.set_v6(addr);
    // SAFETY: as in `has_v4`.
    unsafe { set.get(key) }.is_some()
}

#[inline(always)]
fn outer_ipv4(ctx: &XdpContext, off: usize) -> Option<Tunnel> {
    // SAFETY: Ipv4Hdr is byte arrays (alignment 1), shared references only.
    let ip = unsafe { ref_at::<Ipv4Hdr>(ctx, off) }.ok()?;
    let proto = ip.proto;
    // A fragmented tunnel packet cannot be stripped piecewise; the kernel
    // reassembles it (and, without an ipip module, drops it).
    if ip.vihl >> 4 != 4 || u16::from_be_bytes(ip.frags) & 0x3fff != 0 {
        return None;
    }
    let ihl = ((ip.vihl & 0x0f) as usize) * 4;
    if ihl < Ipv4Hdr::LEN {
        return None;
    }
    // The protocol (and a GUE port) first: the host's other traffic pays
    // no map lookup. (`ip` stays a shared reference into the packet.)
    let (outer_len, inner_family) = tunnel_after_ip(ctx, proto, off + ihl)?;
    if !has_v4(&XLB_DECAP_ADDRS, &ip.dst_addr) {
        return None;
    }
    let from_balancer = has_v4(&XLB_DECAP_SRCS, &ip.src_addr);
    let ecn = ip.tos & ecn::ECN_MASK;
    Some(Tunnel {
        outer_len: ihl + outer_len,
        inner_family,
        from_balancer,
        ecn,
    })
}

/// What follows an outer IP header at `off` whose protocol is `proto`,
/// when it is a tunnel xlb strips: the bytes to strip after the IP header
/// (0 for IP-in-IP, the UDP header for GUE) and the inner family.
#[inline(always)]
fn tunnel_after_ip(ctx: &XdpContext, proto: u8, off: usize) -> Option<(usize, u8)> {
    if proto != PROTO_UDP {
        return inner_family(proto).map(|f| (0, f));
    }
    // SAFETY: UdpHdr is byte arrays (alignment 1), shared references only.
    let udp = unsafe { ref_at::<UdpHdr>(ctx, off) }.ok()?;
    let port = u16::from_be_bytes(udp.dst);
    // SAFETY: u32 values, replaced whole by updates; only presence is read.
    unsafe { XLB_DECAP_GUE.get(port) }?;
    // Variant 1: the inner packet's version nibble follows the UDP header.
    // Anything else (a GUE variant 0 header) is left to the kernel.
    // SAFETY: one plain byte, shared references only.
    let first = *unsafe { ref_at::<u8>(ctx, off + gue::UDP_HEADER_LEN) }.ok()?;
    gue::inner_family(first).map(|f| (gue::UDP_HEADER_LEN, f))
}

#[inline(always)]
fn outer_ipv6(ctx: &XdpContext, off: usize) -> Option<Tunnel> {
    // SAFETY: Ipv6Hdr is byte arrays (alignment 1), shared references only.
    let ip = unsafe { ref_at::<Ipv6Hdr>(ctx, off) }.ok()?;
    if ip.vcf[0] >> 4 != 6 {
        return None;
    }
    // The protocol (and a GUE port) first: the host's other traffic pays
    // no map lookup. (`ip` stays a shared reference into the packet.)
    let (outer_len, inner_family) = tunnel_after_ip(ctx, ip.next_hdr, off + Ipv6Hdr::LEN)?;
    if !has_v6(&XLB_DECAP_ADDRS, &ip.dst_addr) {
        return None;
    }
    let from_balancer = has_v6(&XLB_DECAP_SRCS, &ip.src_addr);
    let ecn = ipv6_ecn(ip);
    Some(Tunnel {
        outer_len: Ipv6Hdr::LEN + outer_len,
        inner_family,
        from_balancer,
        ecn,
    })
}

/// The ECN bits of an IPv6 header: the low two bits of the traffic class,
/// which spans the first two bytes (`vvvv tttt | tttt ffff`).
#[inline(always)]
fn ipv6_ecn(ip: &Ipv6Hdr) -> u8 {
    (ip.vcf[1] >> 4) & ecn::ECN_MASK
}

/// The inner header, which must at least be a whole IP header of the
/// announced family; `None` when it is not.
#[inline(always)]
fn inner_header(ctx: &XdpContext, off: usize, family: u8) -> Option<Inner> {
    if family == FAMILY_V4 {
        // SAFETY: Ipv4Hdr is byte arrays (alignment 1), shared references only.
        let ip = unsafe { ref_at::<Ipv4Hdr>(ctx, off) }.ok()?;
        if ip.vihl >> 4 != 4 || ip.vihl & 0x0f < 5 {
            return None;
        }
        Some(Inner {
            to_vip: has_v4(&XLB_DECAP_VIPS, &ip.dst_addr),
            ecn: ip.tos & ecn::ECN_MASK,
        })
    } else {
        // SAFETY: as above, for Ipv6Hdr.
        let ip = unsafe { ref_at::<Ipv6Hdr>(ctx, off) }.ok()?;
        if ip.vcf[0] >> 4 != 6 {
            return None;
        }
        Some(Inner {
            to_vip: has_v6(&XLB_DECAP_VIPS, &ip.dst_addr),
            ecn: ipv6_ecn(ip),
        })
    }
}

/// Marks the inner header Congestion Experienced; for IPv4 the header
/// checksum is updated for the changed word rather than recomputed (the
/// header may carry options).
#[inline(always)]
fn mark_ce(ctx: &XdpContext, off: usize, family: u8) -> bool {
    if family == FAMILY_V4 {
        // SAFETY: Ipv4Hdr is byte arrays (alignment 1); the only reference
        // into the packet alive here.
        let Ok(ip) = (unsafe { mut_at::<Ipv4Hdr>(ctx, off) }) else {
            return false;
        };
        let old = u16::from_be_bytes([ip.vihl, ip.tos]);
        ip.tos |= ecn::CE;
        let new = u16::from_be_bytes([ip.vihl, ip.tos]);
        let check = checksum::update_word(u16::from_be_bytes(ip.check), old, new);
        ip.check = check.to_be_bytes();
    } else {
        // SAFETY: as above, for Ipv6Hdr.
        let Ok(ip) = (unsafe { mut_at::<Ipv6Hdr>(ctx, off) }) else {
            return false;
        };
        ip.vcf[1] |= ecn::CE << 4;
    }
    true
}

/// Moves the link-layer header forward over the outer IP header, fixes its
/// EtherType for the inner family, and shrinks the frame from the front.
#[inline(always)]
fn strip(ctx: &XdpContext, l2: &L2, t: &Tunnel) -> bool {
    let inner_type = if t.inner_family == FAMILY_V4 {
        ETH_P_IPV4
    } else {
        ETH_P_IPV6
    };
    // SAFETY: EthHdr is plain data at offset 0, read by value; no other
    // reference into the packet is alive.
    let Ok(old) = (unsafe { ref_at::<EthHdr>(ctx, 0) }) else {
        return false;
    };
    // Copied out with fixed-index stores: a plain array copy here becomes a
    // byte-loop `memmove` call.
    let (mut dst, mut src) = ([0u8; 6], [0u8; 6]);
    bytes::copy(&mut dst, &old.dst_addr);
    bytes::copy(&mut src, &old.src_addr);
    // The new link-layer header ends where the inner packet starts. The outer
    // header is at least 20 bytes, so it never overlaps the old one (<= 18).
    let new_off = t.outer_len;
    // SAFETY: EthHdr is plain data at an even offset (IPv4 options come in
    // 4-byte units); `old` is no longer used.
    let Ok(eth) = (unsafe { mut_at::<EthHdr>(ctx, new_off) }) else {
        return false;
    };
    let eth_type = if l2.vlan_tpid != 0 {
        l2.vlan_tpid
    } else {
        inner_type
    };
    bytes::copy(&mut eth.dst_addr, &dst);
    bytes::copy(&mut eth.src_addr, &src);
    eth.ether_type = eth_type.to_be();
    if l2.vlan_tpid != 0 {
        // SAFETY: VlanHdr is plain data at an even offset, after `eth`'s bytes;
        // `eth` is no longer used.
        let Ok(vlan) = (unsafe { mut_at::<VlanHdr>(ctx, new_off + EthHdr::LEN) }) else {
            return false;
        };
        vlan.tci = l2.vlan_tci;
        vlan.ether_type = inner_type.to_be();
    }
    // SAFETY: shrinking the front by the outer header length, which lies inside
    // the packet (checked by the reads above).
    unsafe { bpf_xdp_adjust_head(ctx.as_ptr() as *mut _, t.outer_len as i32) == 0 }
}

lb_ebpf::xdp_object!();
