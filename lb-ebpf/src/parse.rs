//! Header parsing for the XDP programs: Ethernet with at most one VLAN tag,
//! IPv4 (any IHL) and IPv6 (a few extension headers), then TCP/UDP ports.
//!
//! Headers are `network-types` structs read through [`ref_at`]; multi-byte
//! fields stay big-endian byte arrays until a comparison needs them. Nothing here
//! writes to the packet or touches maps.

use aya_ebpf::programs::XdpContext;
use lb_common::{FlowKey, FAMILY_V4, FAMILY_V6, PROTO_TCP, PROTO_UDP};
use network_types::{
    eth::EthHdr,
    ip::{Ipv4Hdr, Ipv6Hdr},
    tcp::TcpHdr,
    udp::UdpHdr,
    vlan::VlanHdr,
};

use crate::packet::{self, ref_at, OutOfBounds};

pub const ETH_P_IPV4: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88a8;

pub const IPPROTO_HOPOPTS: u8 = 0;
pub const IPPROTO_IPIP: u8 = 4;
pub const IPPROTO_IPV6: u8 = 41;
pub const IPPROTO_ROUTING: u8 = 43;
pub const IPPROTO_FRAGMENT: u8 = 44;
pub const IPPROTO_DSTOPTS: u8 = 60;

/// IPv6 extension headers walked before giving up. Real traffic to a VIP carries
/// none; three covers hop-by-hop + destination options + routing in any order.
const MAX_IPV6_EXT_HEADERS: usize = 3;

/// Why a frame could not be parsed far enough.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Not IPv4/IPv6 (or more than one VLAN tag).
    NotIp,
    /// A header is cut short or a length field disagrees with the frame.
    Malformed,
}

impl From<OutOfBounds> for ParseError {
    #[inline(always)]
    fn from(_: OutOfBounds) -> Self {
        ParseError::Malformed
    }
}

/// The link layer: where the IP header starts and the VLAN tag, if any, which an
/// encapsulated packet keeps (it leaves on the VLAN it came in on).
#[derive(Clone, Copy)]
pub struct L2 {
    pub l3_off: usize,
    /// Host-order EtherType of the IP header (after the tag).
    pub ether_type: u16,
    /// Host-order TPID of the tag (0x8100/0x88a8), 0 when untagged.
    pub vlan_tpid: u16,
    pub vlan_tci: [u8; 2],
}

/// Where the transport header is, as far as IP parsing can tell.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum L4Status {
    /// TCP or UDP at `Ip::l4_off`.
    TcpUdp,
    /// An IPv4 fragment or an IPv6 fragment header: no reliable ports.
    Fragment,
    /// IPv6 extension headers the parser does not walk past.
    UnsupportedExt,
    /// Any other protocol (ICMP, ESP, ...): never a VIP.
    Other,
}

/// The IP layer of a frame, validated against the frame length.
#[derive(Clone, Copy)]
pub struct Ip {
    pub family: u8,
    pub l3_off: usize,
    pub l4_off: usize,
    /// Transport protocol (after IPv6 extension headers).
    pub proto: u8,
    pub l4: L4Status,
    /// Length of the whole IP packet, header included. Never more than the
    /// frame holds; the frame may be longer (Ethernet padding).
    pub ip_len: usize,
    /// IPv4 TOS / IPv6 traffic class (DSCP + ECN).
    pub tos: u8,
}

/// Parses Ethernet and at most one 802.1Q/802.1ad tag.
#[inline(always)]
pub fn parse_l2(ctx: &XdpContext) -> Result<L2, ParseError> {
    // SAFETY: EthHdr is plain data at offset 0 (aligned), nothing else
    // references the packet.
    let eth = unsafe { ref_at::<EthHdr>(ctx, 0) }?;
    let ether_type = u16::from_be(eth.ether_type);
    if ether_type != ETH_P_8021Q && ether_type != ETH_P_8021AD {
        return Ok(L2 {
            l3_off: EthHdr::LEN,
            ether_type,
            vlan_tpid: 0,
            vlan_tci: [0; 2],
        });
    }
    // SAFETY: VlanHdr is plain data at offset 14 (even), shared references only.
    let vlan = unsafe { ref_at::<VlanHdr>(ctx, EthHdr::LEN) }?;
    let inner = u16::from_be(vlan.ether_type);
    if inner == ETH_P_8021Q || inner == ETH_P_8021AD {
        // Q-in-Q: not ours to balance; the kernel handles it.
        return Err(ParseError::NotIp);
    }
    Ok(L2 {
        l3_off: EthHdr::LEN + VlanHdr::LEN,
        ether_type: inner,
        vlan_tpid: ether_type,
        vlan_tci: vlan.tci,
    })
}

/// Parses the IP header after `l2`, dispatching on the EtherType. Addresses,
/// protocol and family go straight into `key` (IPv4 addresses in the first 4
/// bytes; `key` must start zeroed) so they are copied out of the packet once.
#[inline(always)]
pub fn parse_ip(ctx: &XdpContext, l2: &L2, key: &mut FlowKey) -> Result<Ip, ParseError> {
    match l2.ether_type {
        ETH_P_IPV4 => parse_ipv4(ctx, l2.l3_off, key),
        ETH_P_IPV6 => parse_ipv6(ctx, l2.l3_off, key),
        _ => Err(ParseError::NotIp),
    }
}

#[inline(always)]
fn parse_ipv4(ctx: &XdpContext, l3_off: usize, key: &mut FlowKey) -> Result<Ip, ParseError> {
    // SAFETY: Ipv4Hdr is byte arrays (alignment 1), shared references only.
    let ip = unsafe { ref_at::<Ipv4Hdr>(ctx, l3_off) }?;
    if ip.vihl >> 4 != 4 {
        return Err(ParseError::Malformed);
    }
    // Masking keeps the offset provably bounded (<= 60) for the verifier.
    let ihl = ((ip.vihl & 0x0f) as usize) * 4;
    let ip_len = u16::from_be_bytes(ip.tot_len) as usize;
    if ihl < Ipv4Hdr::LEN || ip_len < ihl || l3_off + ip_len > packet::len(ctx) {
        return Err(ParseError::Malformed);
    }
    // MF flag or a non-zero offset: a fragment (the DF bit alone is not).
    let frags = u16::from_be_bytes(ip.frags);
    let l4 = if frags & 0x3fff != 0 {
        L4Status::Fragment
    } else if ip.proto == PROTO_TCP || ip.proto == PROTO_UDP {
        L4Status::TcpUdp
    } else {
        L4Status::Other
    };
    key.set_v4(&ip.src_addr, &ip.dst_addr);
    key.set_proto(ip.proto);
    Ok(Ip {
        family: FAMILY_V4,
        l3_off,
        l4_off: l3_off + ihl,
        proto: ip.proto,
        l4,
        ip_len,
        tos: ip.tos,
    })
}

#[inline(always)]
fn parse_ipv6(ctx: &XdpContext, l3_off: usize, key: &mut FlowKey) -> Result<Ip, ParseError> {
    // SAFETY: Ipv6Hdr is byte arrays (alignment 1), shared references only.
    let ip = unsafe { ref_at::<Ipv6Hdr>(ctx, l3_off) }?;
    if ip.vcf[0] >> 4 != 6 {
        return Err(ParseError::Malformed);
    }
    let payload_len = u16::from_be_bytes(ip.payload_len) as usize;
    let ip_len = Ipv6Hdr::LEN + payload_len;
    // payload_len 0 would be a jumbogram (hop-by-hop option): not supported.
    if payload_len == 0 || l3_off + ip_len > packet::len(ctx) {
        return Err(ParseError::Malformed);
    }
    let tos = (ip.vcf[0] << 4) | (ip.vcf[1] >> 4);
    let (proto, l4_off, l4) = walk_ipv6_ext(ctx, ip.next_hdr, l3_off + Ipv6Hdr::LEN)?;
    key.set_v6(&ip.src_addr, &ip.dst_addr);
    key.set_proto(proto);
    Ok(Ip {
        family: FAMILY_V6,
        l3_off,
        l4_off,
        proto,
        l4,
        ip_len,
        tos,
    })
}

/// Skips hop-by-hop, destination-options and (exhausted) routing headers.
/// A routing header with segments left means the destination address is only a
/// waypoint, so the packet is not (yet) for a VIP: reported as unsupported.
#[inline(always)]
fn walk_ipv6_ext(
    ctx: &XdpContext,
    mut next: u8,
    mut off: usize,
) -> Result<(u8, usize, L4Status), ParseError> {
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        match next {
            PROTO_TCP | PROTO_UDP => return Ok((next, off, L4Status::TcpUdp)),
            IPPROTO_FRAGMENT => return Ok((next, off, L4Status::Fragment)),
            IPPROTO_HOPOPTS | IPPROTO_DSTOPTS | IPPROTO_ROUTING => {
                // SAFETY: 4 plain bytes, shared references only. Every extension
                // header is at least 8 bytes long: reading 4 never overreads one.
                let ext = *unsafe { ref_at::<[u8; 4]>(ctx, off) }?;
                if next == IPPROTO_ROUTING && ext[3] != 0 {
                    return Ok((next, off, L4Status::UnsupportedExt));
                }
                next = ext[0];
                off += (ext[1] as usize + 1) * 8;
            }
            _ => return Ok((next, off, L4Status::Other)),
        }
    }
    let l4 = match next {
        PROTO_TCP | PROTO_UDP => L4Status::TcpUdp,
        IPPROTO_FRAGMENT => L4Status::Fragment,
        IPPROTO_HOPOPTS | IPPROTO_DSTOPTS | IPPROTO_ROUTING => L4Status::UnsupportedExt,
        _ => L4Status::Other,
    };
    Ok((next, off, l4))
}

/// Whether the IP header is bare: an IPv4 header (options or not), or an
/// IPv6 header whose next header is the upper layer (or the fragment
/// header) itself, with no extension header before it.
#[inline(always)]
pub fn bare_header(ip: &Ip) -> bool {
    ip.family == FAMILY_V4 || ip.l4_off == ip.l3_off + Ipv6Hdr::LEN
}

/// The IP header's protocol (IPv6: next header) and whether the packet is
/// a fragment (IPv4 MF or offset; an IPv6 fragment header right after the
/// header), read again from the header at `l3_off` of family `family`;
/// (0, false) if it is not there.
#[inline(always)]
pub fn proto_and_fragment(ctx: &XdpContext, l3_off: usize, family: u8) -> (u8, bool) {
    if family == FAMILY_V4 {
        // SAFETY: Ipv4Hdr is byte arrays (alignment 1), shared references only.
        match unsafe { ref_at::<Ipv4Hdr>(ctx, l3_off) } {
            Ok(h) => (h.proto, u16::from_be_bytes(h.frags) & 0x3fff != 0),
            Err(_) => (0, false),
        }
    } else {
        // SAFETY: as above, for Ipv6Hdr.
        match unsafe { ref_at::<Ipv6Hdr>(ctx, l3_off) } {
            Ok(h) => (h.next_hdr, h.next_hdr == IPPROTO_FRAGMENT),
            Err(_) => (0, false),
        }
    }
}

/// The upper-layer protocol of a fragment (`ip.l4` is `Fragment`): the IPv4
/// header's, or the next header named by the IPv6 fragment header (for a
/// later fragment, all that says what it carries).
#[inline(always)]
pub fn fragment_proto(ctx: &XdpContext, ip: &Ip) -> Result<u8, ParseError> {
    if ip.family == FAMILY_V4 {
        return Ok(ip.proto);
    }
    // SAFETY: plain bytes, shared references only: the fragment header's
    // "next header" and reserved byte (walk_ipv6_ext stopped at the
    // header). Two bytes, not one: a 1-byte bounds check compiles to a
    // comparison the verifier draws no packet range from.
    Ok(unsafe { ref_at::<[u8; 2]>(ctx, ip.l4_off) }?[0])
}

/// The fixed TCP header as xlb reads it: network-types' `TcpHdr` exposes the
/// flags byte (CWR..FIN, byte 13) only through bitfield accessors.
#[repr(C)]
struct TcpFixed {
    source: [u8; 2],
    dest: [u8; 2],
    _seq_ack: [u8; 8],
    _data_offset: u8,
    flags: u8,
    _window_check_urgent: [u8; 6],
}

const _: () = assert!(core::mem::size_of::<TcpFixed>() == TcpHdr::LEN);

/// Reads the ports of a TCP/UDP packet into `key` and returns the TCP flags
/// byte (0 for UDP). The whole fixed transport header must lie inside both the
/// frame and the IP packet's own length.
#[inline(always)]
pub fn parse_ports(ctx: &XdpContext, ip: &Ip, key: &mut FlowKey) -> Result<u8, ParseError> {
    let ip_end = ip.l3_off + ip.ip_len;
    if ip.proto == PROTO_TCP {
        if ip.l4_off + TcpHdr::LEN > ip_end {
            return Err(ParseError::Malformed);
        }
        // SAFETY: TcpFixed is byte arrays (alignment 1), shared references only.
        let tcp = unsafe { ref_at::<TcpFixed>(ctx, ip.l4_off) }?;
        key.set_ports(tcp.source, tcp.dest);
        Ok(tcp.flags)
    } else {
        if ip.l4_off + UdpHdr::LEN > ip_end {
            return Err(ParseError::Malformed);
        }
        // SAFETY: UdpHdr is byte arrays (alignment 1), shared references only.
        let udp = unsafe { ref_at::<UdpHdr>(ctx, ip.l4_off) }?;
        key.set_ports(udp.src, udp.dst);
        Ok(0)
    }
}
