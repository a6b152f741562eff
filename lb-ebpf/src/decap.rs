//! `xlb_decap`: runs on backends. Strips the outer header of IP-in-IP packets
//! (IPv4 or IPv6 outer, IPv4 or IPv6 inner) addressed to one of this host's
//! tunnel addresses in `XLB_DECAP_ADDRS` and passes the inner packet up the
//! stack, as the kernel's ipip/ip6_tunnel/sit modules would. Everything else
//! passes unchanged.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

use aya_ebpf::{
    bindings::xdp_action,
    helpers::generated::bpf_xdp_adjust_head,
    macros::{map, xdp},
    maps::{HashMap, PerCpuArray},
    programs::XdpContext,
    EbpfContext,
};
use lb_common::{decap_stat, DecapKey, FAMILY_V4, FAMILY_V6, MAX_DECAP_ADDRS};
use lb_ebpf::{
    packet::{mut_at, ref_at},
    parse::{self, ETH_P_IPV4, ETH_P_IPV6, IPPROTO_IPIP, IPPROTO_IPV6, L2},
};
use network_types::{
    eth::EthHdr,
    ip::{Ipv4Hdr, Ipv6Hdr},
    vlan::VlanHdr,
};

/// Outer destination addresses this host terminates tunnels for.
#[map]
static XLB_DECAP_ADDRS: HashMap<DecapKey, u32> = HashMap::with_max_entries(MAX_DECAP_ADDRS, 0);

/// Per-CPU packet counters, slots in `lb_common::decap_stat`.
#[map]
static XLB_DECAP_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(decap_stat::COUNT, 0);

#[xdp]
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

/// A tunnel packet for us: its outer header length and the inner family.
struct Tunnel {
    outer_len: usize,
    inner_family: u8,
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
    if !inner_is_valid(ctx, l2.l3_off + t.outer_len, t.inner_family) {
        return MALFORMED;
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

#[inline(always)]
fn is_ours(key: DecapKey) -> bool {
    // SAFETY: u32 values, replaced whole by updates.
    unsafe { XLB_DECAP_ADDRS.get(key) }.is_some()
}

#[inline(always)]
fn outer_ipv4(ctx: &XdpContext, off: usize) -> Option<Tunnel> {
    // SAFETY: Ipv4Hdr is byte arrays (alignment 1), shared references only.
    let ip = unsafe { ref_at::<Ipv4Hdr>(ctx, off) }.ok()?;
    let inner_family = inner_family(ip.proto)?;
    // A fragmented tunnel packet cannot be stripped piecewise; the kernel
    // reassembles it (and, without an ipip module, drops it).
    if ip.vihl >> 4 != 4 || u16::from_be_bytes(ip.frags) & 0x3fff != 0 {
        return None;
    }
    let ihl = ((ip.vihl & 0x0f) as usize) * 4;
    if ihl < Ipv4Hdr::LEN {
        return None;
    }
    if !is_ours(DecapKey::from_v4_octets(ip.dst_addr)) {
        return None;
    }
    Some(Tunnel {
        outer_len: ihl,
        inner_family,
    })
}

#[inline(always)]
fn outer_ipv6(ctx: &XdpContext, off: usize) -> Option<Tunnel> {
    // SAFETY: Ipv6Hdr is byte arrays (alignment 1), shared references only.
    let ip = unsafe { ref_at::<Ipv6Hdr>(ctx, off) }.ok()?;
    let inner_family = inner_family(ip.next_hdr)?;
    if ip.vcf[0] >> 4 != 6 || !is_ours(DecapKey::from_v6_octets(ip.dst_addr)) {
        return None;
    }
    Some(Tunnel {
        outer_len: Ipv6Hdr::LEN,
        inner_family,
    })
}

/// The inner header must at least be a whole IP header of the announced family.
#[inline(always)]
fn inner_is_valid(ctx: &XdpContext, off: usize, family: u8) -> bool {
    if family == FAMILY_V4 {
        // SAFETY: Ipv4Hdr is byte arrays (alignment 1), shared references only.
        match unsafe { ref_at::<Ipv4Hdr>(ctx, off) } {
            Ok(ip) => ip.vihl >> 4 == 4 && ip.vihl & 0x0f >= 5,
            Err(_) => false,
        }
    } else {
        // SAFETY: as above, for Ipv6Hdr.
        match unsafe { ref_at::<Ipv6Hdr>(ctx, off) } {
            Ok(ip) => ip.vcf[0] >> 4 == 6,
            Err(_) => false,
        }
    }
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
    let (dst, src) = (old.dst_addr, old.src_addr);
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
    eth.dst_addr = dst;
    eth.src_addr = src;
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
