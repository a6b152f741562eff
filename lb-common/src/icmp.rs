//! ICMP and ICMPv6 as the balancer speaks them: which messages sent to a VIP
//! address it answers (echo requests), hands to a flow's backend (errors
//! quoting a VIP's packet) or leaves to the kernel; the MTU a generated
//! "fragmentation needed" / "packet too big" tells the client and how much
//! of the offending packet it quotes; the header fields and checksums of
//! what it writes; which clients may be sent ICMP at all. Pure and
//! `no_std`, shared by the XDP program and the tests, and unit-tested
//! against etherparse. The per-CPU rate limit is [`crate::IcmpBucket`].
//!
//! Checksums here take the quoted bytes' contribution as an unfolded
//! big-endian one's-complement sum (`quote_sum`): the XDP program gets it
//! from `bpf_csum_diff` over the packet, the tests from
//! [`checksum::sum_bytes`].

use crate::{
    checksum,
    ip::{FAMILY_V4, FAMILY_V6},
};

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_ICMPV6: u8 = 58;

/// ICMPv4 types and codes (RFC 792, RFC 1191).
pub mod v4 {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACH: u8 = 3;
    /// Code of `DEST_UNREACH`: fragmentation needed and DF set.
    pub const FRAG_NEEDED: u8 = 4;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const PARAMETER_PROBLEM: u8 = 12;
}

/// ICMPv6 types (RFC 4443).
pub mod v6 {
    pub const DEST_UNREACH: u8 = 1;
    pub const PACKET_TOO_BIG: u8 = 2;
    pub const TIME_EXCEEDED: u8 = 3;
    pub const PARAMETER_PROBLEM: u8 = 4;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
}

/// Type, code, checksum and the 4 type-specific bytes: what every ICMP and
/// ICMPv6 message starts with, and what precedes an error's quote.
pub const HEADER_LEN: usize = 8;

/// What the balancer does with an ICMP message sent to a VIP address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Answered by the balancer (when the address allows ping).
    EchoRequest,
    /// An error quoting a packet the VIP sent (its backend's reply): goes
    /// to the backend of that flow.
    Error,
    /// Anything else (replies, redirects, neighbour discovery, ...): left
    /// to the kernel, as before xlb looked at ICMP.
    Other,
}

/// The role of ICMP type `icmp_type` of family `family`: destination
/// unreachable (every code, "fragmentation needed" included), time exceeded
/// and parameter problem, and ICMPv6 packet too big, are errors.
#[inline(always)]
pub const fn role(family: u8, icmp_type: u8) -> Role {
    if family == FAMILY_V4 {
        match icmp_type {
            v4::ECHO_REQUEST => Role::EchoRequest,
            v4::DEST_UNREACH | v4::TIME_EXCEEDED | v4::PARAMETER_PROBLEM => Role::Error,
            _ => Role::Other,
        }
    } else {
        match icmp_type {
            v6::ECHO_REQUEST => Role::EchoRequest,
            v6::DEST_UNREACH | v6::PACKET_TOO_BIG | v6::TIME_EXCEEDED | v6::PARAMETER_PROBLEM => {
                Role::Error
            }
            _ => Role::Other,
        }
    }
}

/// The ICMP protocol number of family `family` (ICMP for IPv4, ICMPv6 for
/// IPv6): an ICMPv6 message in IPv4 (or the reverse) is not ICMP to xlb.
#[inline(always)]
pub const fn proto_of(family: u8) -> u8 {
    if family == FAMILY_V4 {
        PROTO_ICMP
    } else {
        PROTO_ICMPV6
    }
}

/// The smallest MTU an IPv4 host accepts (RFC 791; RFC 1191 hosts never go
/// below it).
pub const IPV4_MIN_MTU: u32 = 68;
/// The smallest MTU of any IPv6 link (RFC 8200): hosts ignore a "packet
/// too big" below it.
pub const IPV6_MIN_MTU: u32 = 1280;

/// The MTU a client of family `family` must use so that its packets still
/// fit an egress of `egress_mtu` bytes once `outer_len` bytes of outer
/// header are added; `None` when that is below the family's minimum MTU,
/// which no client would adopt (then no error is sent: the path between
/// the balancer and the backend must carry the minimum plus the outer
/// header).
#[inline(always)]
pub const fn too_big_mtu(family: u8, egress_mtu: u32, outer_len: u32) -> Option<u32> {
    let min = if family == FAMILY_V4 {
        IPV4_MIN_MTU
    } else {
        IPV6_MIN_MTU
    };
    if egress_mtu < min + outer_len {
        return None;
    }
    Some(egress_mtu - outer_len)
}

/// Bytes of the offending IPv4 packet a "fragmentation needed" quotes: its
/// header, options included (`ihl_bytes`), and the first 8 bytes of its
/// payload, which hold the ports (RFC 792, RFC 1191).
#[inline(always)]
pub const fn v4_quote_len(ihl_bytes: usize) -> usize {
    ihl_bytes + 8
}

/// Most bytes of the offending packet an ICMPv6 error quotes: the error may
/// not exceed the minimum IPv6 MTU (RFC 4443 2.4(c)), 40 bytes of IPv6
/// header and 8 of ICMPv6 header included.
pub const V6_MAX_QUOTE: usize = IPV6_MIN_MTU as usize - 40 - HEADER_LEN;

/// Bytes of a `ip_len`-byte IPv6 packet an ICMPv6 error quotes: as much of
/// it as fits ([`V6_MAX_QUOTE`]). A packet too big for an MTU of at least
/// 1280 always fills it.
#[inline(always)]
pub const fn v6_quote_len(ip_len: usize) -> usize {
    if ip_len < V6_MAX_QUOTE {
        ip_len
    } else {
        V6_MAX_QUOTE
    }
}

/// TTL / hop limit of every message the balancer sends.
pub const REPLY_TTL: u8 = 64;
/// TOS of a generated ICMPv4 error: precedence "internetwork control"
/// (RFC 1812 4.3.2.5, and what Linux sends).
pub const ERROR_TOS: u8 = 0xc0;
/// Flags of a generated ICMPv4 error: DF, identification 0 (an atomic
/// datagram, RFC 6864).
pub const ERROR_FLAGS: u16 = 0x4000;

/// Checksum of the 20-byte IPv4 header of a generated error from `src` (the
/// VIP) to `dst` (the client): version 4, IHL 5, [`ERROR_TOS`], `tot_len`,
/// identification 0, [`ERROR_FLAGS`], [`REPLY_TTL`], protocol ICMP.
#[inline(always)]
pub const fn error_ipv4_checksum(tot_len: u16, src: &[u8; 4], dst: &[u8; 4]) -> u16 {
    let sum = u16::from_be_bytes([0x45, ERROR_TOS]) as u32
        + tot_len as u32
        + ERROR_FLAGS as u32
        + u16::from_be_bytes([REPLY_TTL, PROTO_ICMP]) as u32;
    checksum::fold(checksum::add_addr4(checksum::add_addr4(sum, src), dst))
}

/// Checksum of an ICMPv4 "fragmentation needed" (type 3, code 4, 2 unused
/// bytes, the next-hop `mtu`) followed by quoted bytes summing to
/// `quote_sum`.
#[inline(always)]
pub const fn frag_needed_checksum(mtu: u16, quote_sum: u64) -> u16 {
    let header = u16::from_be_bytes([v4::DEST_UNREACH, v4::FRAG_NEEDED]) as u64 + mtu as u64;
    checksum::fold(checksum::fold_sum(header + quote_sum) as u32)
}

/// Checksum of an ICMPv6 "packet too big" (type 2, code 0, the 32-bit
/// `mtu`) from `src` (the VIP) to `dst` (the client), followed by
/// `quote_len` quoted bytes summing to `quote_sum`; the IPv6 pseudo-header
/// (RFC 8200 8.1) is included.
#[inline(always)]
pub const fn packet_too_big_checksum(
    src: &[u8; 16],
    dst: &[u8; 16],
    mtu: u32,
    quote_len: u32,
    quote_sum: u64,
) -> u16 {
    let upper_len = HEADER_LEN as u32 + quote_len;
    let pseudo = checksum::add_addr16(checksum::add_addr16(0, src), dst)
        + (upper_len >> 16)
        + (upper_len & 0xffff)
        + PROTO_ICMPV6 as u32;
    let header = u16::from_be_bytes([v6::PACKET_TOO_BIG, 0]) as u32 + (mtu >> 16) + (mtu & 0xffff);
    checksum::fold(checksum::fold_sum(pseudo as u64 + header as u64 + quote_sum) as u32)
}

/// The type of the echo reply to an echo request of family `family`.
#[inline(always)]
pub const fn echo_reply_type(family: u8) -> u8 {
    if family == FAMILY_V4 {
        v4::ECHO_REPLY
    } else {
        v6::ECHO_REPLY
    }
}

/// The checksum of an echo reply made from a request in place: only the
/// type changes (addresses swap, which leaves the ICMPv6 pseudo-header's
/// sum alone), so the request's checksum is updated for it (RFC 1624). A
/// request whose checksum was wrong gets a reply whose checksum is wrong by
/// as much: its sender discards it, as it should.
#[inline(always)]
pub const fn echo_reply_checksum(family: u8, code: u8, request_checksum: u16) -> u16 {
    let (request, reply) = if family == FAMILY_V4 {
        (v4::ECHO_REQUEST, v4::ECHO_REPLY)
    } else {
        (v6::ECHO_REQUEST, v6::ECHO_REPLY)
    };
    checksum::update_word(
        request_checksum,
        u16::from_be_bytes([request, code]),
        u16::from_be_bytes([reply, code]),
    )
}

/// The IPv4 header checksum of an echo reply made from a request's header
/// (`check`, `ttl`, `proto`) in place: the addresses swap (same sum) and
/// the TTL becomes [`REPLY_TTL`].
#[inline(always)]
pub const fn echo_reply_ipv4_checksum(check: u16, ttl: u8, proto: u8) -> u16 {
    checksum::update_word(
        check,
        u16::from_be_bytes([ttl, proto]),
        u16::from_be_bytes([REPLY_TTL, proto]),
    )
}

/// Whether the balancer may send ICMP to IPv4 source `src`: not to
/// "this network" (0/8), loopback (127/8), multicast (224/4) or the
/// reserved and broadcast block (240/4) (RFC 1122 3.2.2, RFC 1812 4.3.2.7).
#[inline(always)]
pub const fn may_answer_v4(src: &[u8; 4]) -> bool {
    src[0] != 0 && src[0] != 127 && src[0] < 224
}

/// Whether the balancer may send ICMPv6 to IPv6 source `src`: not to the
/// unspecified or loopback address, nor to a multicast one (RFC 4443
/// 2.4(e)).
#[inline(always)]
pub const fn may_answer_v6(src: &[u8; 16]) -> bool {
    // Whole words, no loop: every early exit would be one more path for
    // the verifier to walk.
    let unspecified_or_loopback =
        word(src, 0) | word(src, 4) | word(src, 8) == 0 && word(src, 12) <= 1;
    src[0] != 0xff && !unspecified_or_loopback
}

#[inline(always)]
const fn word(a: &[u8; 16], i: usize) -> u32 {
    u32::from_be_bytes([a[i], a[i + 1], a[i + 2], a[i + 3]])
}

/// [`may_answer_v4`] / [`may_answer_v6`] on a 16-byte address of `family`.
#[inline(always)]
pub const fn may_answer(family: u8, src: &[u8; 16]) -> bool {
    if family == FAMILY_V6 {
        may_answer_v6(src)
    } else {
        may_answer_v4(&[src[0], src[1], src[2], src[3]])
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use etherparse::{
        icmpv4::DestUnreachableHeader, Icmpv4Header, Icmpv4Type, Icmpv6Header, Icmpv6Type,
        IpNumber, Ipv4Header,
    };

    use super::*;

    const VIP4: [u8; 4] = [10, 100, 0, 1];
    const CLIENT4: [u8; 4] = [192, 0, 2, 7];
    const VIP6: [u8; 16] = [0xfd, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const CLIENT6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];

    /// Bytes that look like a quoted packet (odd values, every byte used).
    fn quote(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 37 + 11) as u8).collect()
    }

    #[test]
    fn roles() {
        assert_eq!(role(FAMILY_V4, 8), Role::EchoRequest);
        for t in [3, 11, 12] {
            assert_eq!(role(FAMILY_V4, t), Role::Error, "v4 type {t}");
        }
        for t in [0, 4, 5, 13, 128, 2] {
            assert_eq!(role(FAMILY_V4, t), Role::Other, "v4 type {t}");
        }
        assert_eq!(role(FAMILY_V6, 128), Role::EchoRequest);
        for t in 1..=4 {
            assert_eq!(role(FAMILY_V6, t), Role::Error, "v6 type {t}");
        }
        for t in [129, 133, 134, 135, 136, 137, 8, 3 + 128] {
            assert_eq!(role(FAMILY_V6, t), Role::Other, "v6 type {t}");
        }
        assert_eq!(proto_of(FAMILY_V4), 1);
        assert_eq!(proto_of(FAMILY_V6), 58);
    }

    #[test]
    fn too_big_mtus_never_go_below_the_minimum() {
        assert_eq!(too_big_mtu(FAMILY_V4, 1500, 20), Some(1480));
        assert_eq!(too_big_mtu(FAMILY_V4, 1500, 40), Some(1460));
        assert_eq!(too_big_mtu(FAMILY_V6, 1500, 40), Some(1460));
        assert_eq!(too_big_mtu(FAMILY_V6, 1320, 40), Some(1280));
        assert_eq!(too_big_mtu(FAMILY_V6, 1319, 40), None);
        assert_eq!(too_big_mtu(FAMILY_V6, 1300, 20), Some(1280));
        assert_eq!(too_big_mtu(FAMILY_V4, 88, 20), Some(68));
        assert_eq!(too_big_mtu(FAMILY_V4, 87, 20), None);
        assert_eq!(too_big_mtu(FAMILY_V4, 0, 20), None);
    }

    #[test]
    fn quote_lengths() {
        assert_eq!(v4_quote_len(20), 28);
        assert_eq!(v4_quote_len(60), 68);
        assert_eq!(V6_MAX_QUOTE, 1232);
        assert_eq!(v6_quote_len(1500), 1232);
        assert_eq!(v6_quote_len(1232), 1232);
        assert_eq!(v6_quote_len(100), 100);
    }

    #[test]
    fn frag_needed_checksum_matches_etherparse() {
        for (mtu, ihl) in [(1480u16, 20usize), (1460, 60), (68, 24), (65535, 20)] {
            let q = quote(v4_quote_len(ihl));
            let ours = frag_needed_checksum(mtu, checksum::sum_bytes(&q));
            let theirs = Icmpv4Header::with_checksum(
                Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded {
                    next_hop_mtu: mtu,
                }),
                &q,
            );
            assert_eq!(ours, theirs.checksum, "mtu {mtu}, ihl {ihl}");
        }
    }

    #[test]
    fn error_ipv4_header_checksum_matches_etherparse() {
        for len in [56u16, 96] {
            let mut h = Ipv4Header::new(len - 20, REPLY_TTL, IpNumber::ICMP, VIP4, CLIENT4)
                .expect("valid header");
            h.dont_fragment = true;
            h.dscp = etherparse::IpDscp::try_new(ERROR_TOS >> 2).expect("dscp");
            let bytes = h.to_bytes();
            assert_eq!(u16::from_be_bytes([bytes[6], bytes[7]]), ERROR_FLAGS);
            assert_eq!(bytes[1], ERROR_TOS);
            assert_eq!(
                error_ipv4_checksum(len, &VIP4, &CLIENT4),
                h.calc_header_checksum()
            );
        }
    }

    #[test]
    fn packet_too_big_checksum_matches_etherparse() {
        for (mtu, len) in [(1280u32, V6_MAX_QUOTE), (1460, V6_MAX_QUOTE), (9000, 7)] {
            let q = quote(len);
            let ours =
                packet_too_big_checksum(&VIP6, &CLIENT6, mtu, len as u32, checksum::sum_bytes(&q));
            let theirs =
                Icmpv6Header::with_checksum(Icmpv6Type::PacketTooBig { mtu }, VIP6, CLIENT6, &q)
                    .expect("fits");
            assert_eq!(ours, theirs.checksum, "mtu {mtu}, {len} bytes");
        }
    }

    #[test]
    fn echo_replies_keep_a_valid_checksum_valid() {
        let payload = quote(56);
        for (id, seq) in [(0u16, 0u16), (0x1234, 7), (0xffff, 0xffff), (1, 0xf7ff)] {
            let req4 = Icmpv4Header::with_checksum(
                Icmpv4Type::EchoRequest(etherparse::IcmpEchoHeader { id, seq }),
                &payload,
            );
            let rep4 = Icmpv4Header::with_checksum(
                Icmpv4Type::EchoReply(etherparse::IcmpEchoHeader { id, seq }),
                &payload,
            );
            assert_eq!(
                echo_reply_checksum(FAMILY_V4, 0, req4.checksum),
                rep4.checksum
            );
            let echo = etherparse::IcmpEchoHeader { id, seq };
            let req6 =
                Icmpv6Header::with_checksum(Icmpv6Type::EchoRequest(echo), CLIENT6, VIP6, &payload)
                    .expect("fits");
            // The reply travels the other way: the pseudo-header's addresses
            // swap, which does not change its sum.
            let rep6 =
                Icmpv6Header::with_checksum(Icmpv6Type::EchoReply(echo), VIP6, CLIENT6, &payload)
                    .expect("fits");
            assert_eq!(
                echo_reply_checksum(FAMILY_V6, 0, req6.checksum),
                rep6.checksum
            );
        }
        assert_eq!(echo_reply_type(FAMILY_V4), 0);
        assert_eq!(echo_reply_type(FAMILY_V6), 129);
    }

    #[test]
    fn echo_reply_ipv4_header_checksum() {
        for ttl in [1u8, 63, 64, 255] {
            let req = Ipv4Header::new(84, ttl, IpNumber::ICMP, CLIENT4, VIP4).expect("valid");
            let mut rep =
                Ipv4Header::new(84, REPLY_TTL, IpNumber::ICMP, VIP4, CLIENT4).expect("valid");
            rep.identification = req.identification;
            assert_eq!(
                echo_reply_ipv4_checksum(req.calc_header_checksum(), ttl, 1),
                rep.calc_header_checksum(),
                "ttl {ttl}"
            );
        }
    }

    #[test]
    fn who_may_be_answered() {
        assert!(may_answer_v4(&CLIENT4));
        assert!(may_answer_v4(&[10, 0, 0, 1]));
        assert!(may_answer_v4(&[223, 255, 255, 254]));
        for bad in [
            [0, 0, 0, 0],
            [0, 1, 2, 3],
            [127, 0, 0, 1],
            [224, 0, 0, 1],
            [239, 1, 1, 1],
        ] {
            assert!(!may_answer_v4(&bad), "{bad:?}");
        }
        assert!(!may_answer_v4(&[255, 255, 255, 255]));
        assert!(!may_answer_v4(&[240, 0, 0, 1]));
        assert!(may_answer_v6(&CLIENT6));
        let mut a = [0u8; 16];
        assert!(!may_answer_v6(&a), "unspecified");
        a[15] = 1;
        assert!(!may_answer_v6(&a), "loopback");
        a[15] = 2;
        assert!(may_answer_v6(&a));
        a[0] = 0xff;
        assert!(!may_answer_v6(&a), "multicast");
        let mut v4 = [0u8; 16];
        v4[..4].copy_from_slice(&CLIENT4);
        assert!(may_answer(FAMILY_V4, &v4));
        assert!(may_answer(FAMILY_V6, &CLIENT6));
    }
}
