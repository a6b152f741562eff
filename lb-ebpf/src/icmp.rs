//! ICMP in the XDP fast path; the rules and arithmetic are
//! `lb_common::icmp`, the decisions about what to do with a message are the
//! balancer's (`balancer.rs`). Here:
//!
//! - [`message`]: the type and code of an ICMP message;
//! - [`quoted_flow`]: the flow an ICMP error is about, read from the packet
//!   it quotes (the VIP's reply), reversed into the client's direction;
//! - [`answer_echo`]: an echo request turned into its reply, in place;
//! - [`send_too_big`]: an oversized packet turned into the "fragmentation
//!   needed" / "packet too big" error that tells its sender the MTU.
//!
//! Replies go back the way the packet came: Ethernet addresses swapped, the
//! VLAN tag kept, out of the ingress interface (XDP_TX).

use aya_ebpf::{
    helpers::generated::{bpf_csum_diff, bpf_xdp_adjust_head},
    programs::XdpContext,
    EbpfContext,
};
use lb_common::{
    bytes, checksum,
    icmp::{self, V6_MAX_QUOTE},
    FlowKey, FAMILY_V4, PROTO_TCP, PROTO_UDP,
};
use network_types::{
    eth::EthHdr,
    ip::{Ipv4Hdr, Ipv6Hdr},
};

use crate::{
    encap,
    packet::{mut_at, ref_at},
    parse::{Ip, ParseError, L2},
};

/// The first bytes of an ICMP / ICMPv6 message.
#[derive(Clone, Copy)]
pub struct Message {
    pub icmp_type: u8,
    pub code: u8,
}

/// The type and code of the ICMP message at `ip.l4_off`; its whole 8-byte
/// header must lie inside the IP packet.
#[inline(always)]
pub fn message(ctx: &XdpContext, ip: &Ip) -> Result<Message, ParseError> {
    if ip.l4_off + icmp::HEADER_LEN > ip.l3_off + ip.ip_len {
        return Err(ParseError::Malformed);
    }
    // SAFETY: 2 plain bytes, shared references only.
    let h = unsafe { ref_at::<[u8; 2]>(ctx, ip.l4_off) }?;
    Ok(Message {
        icmp_type: h[0],
        code: h[1],
    })
}

/// An ICMP error whose quoted packet cannot be read as a VIP's TCP or UDP
/// packet (`icmp_malformed`).
pub struct Unreadable;

impl From<crate::packet::OutOfBounds> for Unreadable {
    #[inline(always)]
    fn from(_: crate::packet::OutOfBounds) -> Self {
        Unreadable
    }
}

/// Reads the packet an ICMP error (at `ip`) quotes and turns `key` into the
/// flow it belongs to. The quoted packet is the VIP's reply (VIP:port ->
/// client:port), so the flow is its reverse: client -> VIP, as the client's
/// own packets are keyed. On entry `key` holds the error's own addresses
/// (sender -> VIP address); the quoted source must be that VIP address.
///
/// Only what the error carries is trusted: the quoted header and the first
/// 8 bytes after it (the ports) must lie inside the error's IP packet; the
/// quoted length fields describe the original packet, not the quote, and
/// are not read. Refused: a quote cut short, a wrong version or IHL, another
/// source, a transport other than TCP/UDP, an IPv6 extension header, a
/// non-first IPv4 fragment (no ports).
#[inline(always)]
pub fn quoted_flow(ctx: &XdpContext, ip: &Ip, key: &mut FlowKey) -> Result<(), Unreadable> {
    let off = ip.l4_off + icmp::HEADER_LEN;
    let end = ip.l3_off + ip.ip_len;
    let dst = key.dst16();
    let ports_off = if ip.family == FAMILY_V4 {
        // SAFETY: Ipv4Hdr is byte arrays (alignment 1), shared references only.
        let q = unsafe { ref_at::<Ipv4Hdr>(ctx, off) }?;
        let ihl = ((q.vihl & 0x0f) as usize) * 4;
        let transport = q.proto == PROTO_TCP || q.proto == PROTO_UDP;
        let first_fragment = u16::from_be_bytes(q.frags) & 0x1fff == 0;
        let src = q.src_addr;
        if q.vihl >> 4 != 4
            || ihl < Ipv4Hdr::LEN
            || off + ihl + 8 > end
            || !transport
            || !first_fragment
            || src != [dst[0], dst[1], dst[2], dst[3]]
        {
            return Err(Unreadable);
        }
        key.set_v4(&q.dst_addr, &q.src_addr);
        key.set_proto(q.proto);
        off + ihl
    } else {
        // SAFETY: Ipv6Hdr is byte arrays (alignment 1), shared references only.
        let q = unsafe { ref_at::<Ipv6Hdr>(ctx, off) }?;
        let transport = q.next_hdr == PROTO_TCP || q.next_hdr == PROTO_UDP;
        if q.vcf[0] >> 4 != 6
            || off + Ipv6Hdr::LEN + 8 > end
            || !transport
            || !same_addr16(&q.src_addr, dst)
        {
            return Err(Unreadable);
        }
        key.set_v6(&q.dst_addr, &q.src_addr);
        key.set_proto(q.next_hdr);
        off + Ipv6Hdr::LEN
    };
    // SAFETY: 4 plain bytes (the quoted source and destination ports),
    // shared references only.
    let ports = unsafe { ref_at::<[u8; 4]>(ctx, ports_off) }?;
    key.set_ports([ports[2], ports[3]], [ports[0], ports[1]]);
    Ok(())
}

/// Whether two 16-byte addresses are equal, compared as 4 words.
#[inline(always)]
fn same_addr16(a: &[u8; 16], b: &[u8; 16]) -> bool {
    let w = |x: &[u8; 16], i: usize| u32::from_ne_bytes([x[i], x[i + 1], x[i + 2], x[i + 3]]);
    w(a, 0) == w(b, 0) && w(a, 4) == w(b, 4) && w(a, 8) == w(b, 8) && w(a, 12) == w(b, 12)
}

/// Whether an echo request is one the balancer answers itself: a bare IP
/// header (IPv4 without options, IPv6 without extension headers), so the
/// reply is the request with its addresses swapped.
#[inline(always)]
pub fn answerable_echo(ip: &Ip) -> bool {
    let bare = if ip.family == FAMILY_V4 {
        Ipv4Hdr::LEN
    } else {
        Ipv6Hdr::LEN
    };
    ip.l4_off == ip.l3_off + bare
}

/// Turns the echo request at `ip` into its reply, in place: Ethernet
/// addresses and IP addresses swapped, TTL / hop limit `REPLY_TTL`, type
/// echo reply, checksums updated for what changed, and the frame cut after
/// the IP packet. Returns false if the frame could not be rewritten.
#[inline(always)]
pub fn answer_echo(ctx: &XdpContext, ip: &Ip) -> bool {
    if !swap_macs(ctx) {
        return false;
    }
    if ip.family == FAMILY_V4 {
        // SAFETY: Ipv4Hdr is byte arrays (alignment 1); the only reference
        // into the packet while it lives.
        let Ok(h) = (unsafe { mut_at::<Ipv4Hdr>(ctx, ip.l3_off) }) else {
            return false;
        };
        let (mut src, mut dst) = ([0u8; 4], [0u8; 4]);
        bytes::copy(&mut src, &h.src_addr);
        bytes::copy(&mut dst, &h.dst_addr);
        bytes::copy(&mut h.src_addr, &dst);
        bytes::copy(&mut h.dst_addr, &src);
        let check = icmp::echo_reply_ipv4_checksum(u16::from_be_bytes(h.check), h.ttl, h.proto);
        h.check = check.to_be_bytes();
        h.ttl = icmp::REPLY_TTL;
    } else {
        // SAFETY: as above, for Ipv6Hdr.
        let Ok(h) = (unsafe { mut_at::<Ipv6Hdr>(ctx, ip.l3_off) }) else {
            return false;
        };
        let (mut src, mut dst) = ([0u8; 16], [0u8; 16]);
        bytes::copy(&mut src, &h.src_addr);
        bytes::copy(&mut dst, &h.dst_addr);
        bytes::copy(&mut h.src_addr, &dst);
        bytes::copy(&mut h.dst_addr, &src);
        h.hop_limit = icmp::REPLY_TTL;
    }
    // SAFETY: type, code and checksum (4 plain bytes) after the IP header;
    // the header's reference above is gone.
    let Ok(m) = (unsafe { mut_at::<[u8; 4]>(ctx, ip.l4_off) }) else {
        return false;
    };
    let check = icmp::echo_reply_checksum(ip.family, m[1], u16::from_be_bytes([m[2], m[3]]));
    m[0] = icmp::echo_reply_type(ip.family);
    [m[2], m[3]] = check.to_be_bytes();
    encap::trim_to(ctx, ip.l3_off + ip.ip_len)
}

/// Swaps the frame's Ethernet addresses: the reply goes back to the
/// neighbour the request came from.
#[inline(always)]
fn swap_macs(ctx: &XdpContext) -> bool {
    // SAFETY: EthHdr is plain data at offset 0 (aligned); the only reference
    // into the packet while it lives.
    let Ok(eth) = (unsafe { mut_at::<EthHdr>(ctx, 0) }) else {
        return false;
    };
    let (mut s, mut d) = ([0u8; 6], [0u8; 6]);
    bytes::copy(&mut s, &eth.src_addr);
    bytes::copy(&mut d, &eth.dst_addr);
    bytes::copy(&mut eth.src_addr, &d);
    bytes::copy(&mut eth.dst_addr, &s);
    true
}

/// Whether a packet too big for its path may be answered with an ICMP
/// error: never an ICMP message (the balancer forwards only ICMP errors,
/// and an error about an error is forbidden, RFC 1122 3.2.2, RFC 4443
/// 2.4(e)); for IPv4 only with DF set (a sender that allows fragmentation
/// does no path MTU discovery) and not for a later fragment (RFC 792:
/// errors are about fragment zero only). Read from the packet's header.
#[inline(always)]
pub fn wants_too_big(ctx: &XdpContext, ip: &Ip) -> bool {
    if ip.family != FAMILY_V4 {
        // SAFETY: Ipv6Hdr is byte arrays (alignment 1), shared references only.
        return match unsafe { ref_at::<Ipv6Hdr>(ctx, ip.l3_off) } {
            Ok(h) => h.next_hdr != icmp::PROTO_ICMPV6,
            Err(_) => false,
        };
    }
    // SAFETY: Ipv4Hdr is byte arrays (alignment 1), shared references only.
    let Ok(h) = (unsafe { ref_at::<Ipv4Hdr>(ctx, ip.l3_off) }) else {
        return false;
    };
    let frags = u16::from_be_bytes(h.frags);
    h.proto != icmp::PROTO_ICMP && frags & 0x4000 != 0 && frags & 0x1fff == 0
}

/// IPv4 + ICMP header in front of the quote of a "fragmentation needed".
const V4_GROW: usize = Ipv4Hdr::LEN + icmp::HEADER_LEN;
/// IPv6 + ICMPv6 header in front of the quote of a "packet too big".
const V6_GROW: usize = Ipv6Hdr::LEN + icmp::HEADER_LEN;
/// Largest IPv4 quote: a 60-byte header and 8 bytes.
const V4_MAX_QUOTE: usize = 68;
/// `bpf_csum_diff` sums at most 512 bytes per call (older kernels).
const CSUM_CHUNK: usize = 512;

/// Turns the packet at `ip` into the ICMP error that tells its sender (the
/// client) to use `mtu`: the frame grows at the front by the error's IP and
/// ICMP headers, so the original packet is already where the quote goes,
/// and is cut after the quote. IPv4: "fragmentation needed" quoting the
/// header and 8 bytes; IPv6: "packet too big" quoting 1,232 bytes (the
/// error is 1,280 bytes, the minimum MTU; a packet too big for an MTU of at
/// least 1,280 always has them). Source: the VIP (the packet's
/// destination). Returns false if the frame could not be rewritten; the
/// packet is then lost.
#[inline(always)]
pub fn send_too_big(ctx: &XdpContext, l2: &L2, ip: &Ip, mtu: u32) -> bool {
    if ip.family == FAMILY_V4 {
        too_big_v4(ctx, l2, ip, mtu as u16)
    } else {
        too_big_v6(ctx, l2, ip, mtu)
    }
}

/// Grows the frame at the front by `grow` bytes and writes the Ethernet
/// header (and VLAN tag) of the reply there: the original one, now `grow`
/// bytes in, with its addresses swapped.
#[inline(always)]
fn grow_reply_l2(ctx: &XdpContext, l2: &L2, grow: usize, family: u8) -> bool {
    // SAFETY: moving data start is always memory-safe; every packet pointer
    // taken before this call is dead from here on (only offsets are reused).
    if unsafe { bpf_xdp_adjust_head(ctx.as_ptr() as *mut _, -(grow as i32)) } != 0 {
        return false;
    }
    let (mut s, mut d) = ([0u8; 6], [0u8; 6]);
    {
        // SAFETY: EthHdr is plain data at an even offset, shared references
        // only while it lives.
        let Ok(old) = (unsafe { ref_at::<EthHdr>(ctx, grow) }) else {
            return false;
        };
        bytes::copy(&mut s, &old.src_addr);
        bytes::copy(&mut d, &old.dst_addr);
    }
    // Swapped: the answer goes back to the sender.
    encap::write_l2(ctx, l2, &(&d, &s), family)
}

#[inline(always)]
fn too_big_v4(ctx: &XdpContext, l2: &L2, ip: &Ip, mtu: u16) -> bool {
    let l3 = ip.l3_off;
    let quote_off = l3 + V4_GROW;
    if !grow_reply_l2(ctx, l2, V4_GROW, FAMILY_V4) {
        return false;
    }
    // SAFETY: Ipv4Hdr is byte arrays (alignment 1); shared references only
    // to the quoted header, which `h` below does not overlap.
    let Ok(orig) = (unsafe { ref_at::<Ipv4Hdr>(ctx, quote_off) }) else {
        return false;
    };
    let quote_len = icmp::v4_quote_len(((orig.vihl & 0x0f) as usize) * 4);
    let tot_len = (V4_GROW + quote_len) as u16;
    let check = icmp::error_ipv4_checksum(tot_len, &orig.dst_addr, &orig.src_addr);
    // SAFETY: the error's IPv4 header, bytes l3..l3 + 20, before the quote
    // (`orig` starts 28 bytes later); no other mutable reference.
    let Ok(h) = (unsafe { mut_at::<Ipv4Hdr>(ctx, l3) }) else {
        return false;
    };
    h.vihl = 0x45;
    h.tos = icmp::ERROR_TOS;
    h.tot_len = tot_len.to_be_bytes();
    h.id = [0, 0];
    h.frags = icmp::ERROR_FLAGS.to_be_bytes();
    h.ttl = icmp::REPLY_TTL;
    h.proto = icmp::PROTO_ICMP;
    h.check = check.to_be_bytes();
    bytes::copy(&mut h.src_addr, &orig.dst_addr);
    bytes::copy(&mut h.dst_addr, &orig.src_addr);
    let Some(sum) = quote_sum_v4(ctx, quote_off, quote_len) else {
        return false;
    };
    // SAFETY: the ICMP header, 8 plain bytes between the IP header and the
    // quote; the references above are no longer used.
    let Ok(m) = (unsafe { mut_at::<[u8; 8]>(ctx, l3 + Ipv4Hdr::LEN) }) else {
        return false;
    };
    let [c0, c1] = icmp::frag_needed_checksum(mtu, sum).to_be_bytes();
    let [m0, m1] = mtu.to_be_bytes();
    *m = [
        icmp::v4::DEST_UNREACH,
        icmp::v4::FRAG_NEEDED,
        c0,
        c1,
        0,
        0,
        m0,
        m1,
    ];
    encap::trim_to(ctx, quote_off + quote_len)
}

/// The big-endian one's-complement sum of the `len` (28..=68, a multiple of
/// 4) quoted bytes at `off`.
#[inline(always)]
fn quote_sum_v4(ctx: &XdpContext, off: usize, len: usize) -> Option<u64> {
    // The packet is longer than the MTU it is too big for (>= 68 bytes
    // of IP): the longest quote lies inside it.
    // SAFETY: plain bytes, shared references only; the helper only reads.
    let q = unsafe { ref_at::<[u8; V4_MAX_QUOTE]>(ctx, off) }.ok()?;
    partial_sum(q.as_ptr(), len.min(V4_MAX_QUOTE))
}

#[inline(always)]
fn too_big_v6(ctx: &XdpContext, l2: &L2, ip: &Ip, mtu: u32) -> bool {
    if ip.ip_len < V6_MAX_QUOTE {
        return false;
    }
    let l3 = ip.l3_off;
    let quote_off = l3 + V6_GROW;
    if !grow_reply_l2(ctx, l2, V6_GROW, lb_common::FAMILY_V6) {
        return false;
    }
    let Some(sum) = quote_sum_v6(ctx, quote_off) else {
        return false;
    };
    // SAFETY: the quoted IPv6 header, shared references only; `h` below
    // (bytes l3..l3 + 40) ends before it.
    let Ok(orig) = (unsafe { ref_at::<Ipv6Hdr>(ctx, quote_off) }) else {
        return false;
    };
    let check = icmp::packet_too_big_checksum(
        &orig.dst_addr,
        &orig.src_addr,
        mtu,
        V6_MAX_QUOTE as u32,
        sum,
    );
    // SAFETY: the error's IPv6 header; no other mutable reference.
    let Ok(h) = (unsafe { mut_at::<Ipv6Hdr>(ctx, l3) }) else {
        return false;
    };
    h.vcf = [0x60, 0, 0, 0];
    h.payload_len = ((icmp::HEADER_LEN + V6_MAX_QUOTE) as u16).to_be_bytes();
    h.next_hdr = icmp::PROTO_ICMPV6;
    h.hop_limit = icmp::REPLY_TTL;
    bytes::copy(&mut h.src_addr, &orig.dst_addr);
    bytes::copy(&mut h.dst_addr, &orig.src_addr);
    // SAFETY: the ICMPv6 header, 8 plain bytes between the IPv6 header and
    // the quote; the references above are no longer used.
    let Ok(m) = (unsafe { mut_at::<[u8; 8]>(ctx, l3 + Ipv6Hdr::LEN) }) else {
        return false;
    };
    let [c0, c1] = check.to_be_bytes();
    let [m0, m1, m2, m3] = mtu.to_be_bytes();
    *m = [icmp::v6::PACKET_TOO_BIG, 0, c0, c1, m0, m1, m2, m3];
    encap::trim_to(ctx, quote_off + V6_MAX_QUOTE)
}

/// The big-endian one's-complement sum of the 1,232 quoted bytes at `off`,
/// in chunks `bpf_csum_diff` takes.
#[inline(always)]
fn quote_sum_v6(ctx: &XdpContext, off: usize) -> Option<u64> {
    const LAST: usize = V6_MAX_QUOTE - 2 * CSUM_CHUNK;
    // SAFETY: plain bytes, shared references only; the helper only reads.
    let a = unsafe { ref_at::<[u8; CSUM_CHUNK]>(ctx, off) }.ok()?;
    // SAFETY: as above.
    let b = unsafe { ref_at::<[u8; CSUM_CHUNK]>(ctx, off + CSUM_CHUNK) }.ok()?;
    // SAFETY: as above.
    let c = unsafe { ref_at::<[u8; LAST]>(ctx, off + 2 * CSUM_CHUNK) }.ok()?;
    Some(
        partial_sum(a.as_ptr(), CSUM_CHUNK)?
            + partial_sum(b.as_ptr(), CSUM_CHUNK)?
            + partial_sum(c.as_ptr(), LAST)?,
    )
}

/// The one's-complement sum of `len` bytes (a multiple of 4, at most 512)
/// at `p`, as big-endian words (`checksum` arithmetic), from
/// `bpf_csum_diff`. The helper sums in the CPU's byte order and returns the
/// sum folded to 16 bits on recent kernels, unfolded on older ones: folded
/// here, it is byte-swapped into network order.
#[inline(always)]
fn partial_sum(p: *const u8, len: usize) -> Option<u64> {
    // SAFETY: the helper only reads `len` bytes at `p`, which the caller
    // proved to be inside the packet; no `from` buffer.
    let r = unsafe { bpf_csum_diff(core::ptr::null_mut(), 0, p as *mut u32, len as u32, 0) };
    if r < 0 {
        return None;
    }
    let native = checksum::fold_sum(r as u64);
    Some(u64::from(u16::from_be(native)))
}
