//! The oracle's ICMP and fragment rules, restated from the README's "MTU,
//! ICMP, ping and fragments" section (never from the data plane's code):
//!
//! - a fragment to a VIP address goes to the address's only VIP of its
//!   protocol when that VIP hashes the source address (`fragment_to_backend`),
//!   else it is dropped (`fragment`);
//! - an ICMP / ICMPv6 echo request to a VIP address (bare IP header, a
//!   unicast source) is answered with an echo reply or dropped by the rate
//!   limit; with options or extension headers, or from a source that gets
//!   no ICMP, it is the kernel's (`not_vip`);
//! - an ICMP error to a VIP address quoting a TCP/UDP packet the address
//!   sent goes to the backend of the quoted flow, reversed
//!   (`icmp_to_backend`); a quote that cannot be read is dropped
//!   (`icmp_malformed`); other ICMP is the kernel's;
//! - a packet too big for its backend's path, IPv4 with DF (not a later
//!   fragment) or IPv6, not ICMP, from a unicast source, may be answered with
//!   "fragmentation needed" / "packet too big" carrying the path MTU minus
//!   the outer header (at least 68 / 1,280), quoting the IPv4 header and 8
//!   bytes / 1,232 bytes; checked byte for byte.

use std::net::IpAddr;

use etherparse::PacketBuilder;
use lb_common::Verdict;

use super::{
    expect::{balanced, Answer, Expectation, FlowId, Forward, Ip},
    model::{Model, Tag, VerdictSet, PROTO_TCP, PROTO_UDP},
};

const PROTO_ICMP: u8 = 1;
const PROTO_ICMPV6: u8 = 58;

/// A fragment (`proto`: the protocol it carries) to the address `ip.dst`.
pub(super) fn fragment(
    model: &Model,
    frame: &[u8],
    ip: &Ip,
    proto: u8,
    why: &'static str,
) -> Expectation {
    if !model.is_vip_address(ip.dst) {
        return Expectation::pass_as(Verdict::NotVip, why);
    }
    let Some(vip) = model.fragment_vip(ip.dst, proto) else {
        return Expectation::drop_as(Verdict::Fragment, why);
    };
    let flow = FlowId {
        vip,
        src: ip.src,
        rest: None,
    };
    let answerable = answers_too_big(frame, ip);
    balanced(
        model,
        ip,
        tag_of(frame),
        flow,
        Some(Verdict::FragmentToBackend),
        answerable,
        "fragment to a source-ip VIP",
    )
}

/// Any protocol other than TCP/UDP (`ip.proto`) after the IP header.
pub(super) fn message(model: &Model, frame: &[u8], ip: &Ip, tag: Option<Tag>) -> Expectation {
    let not_ours = Expectation::pass_as(Verdict::NotVip, "neither TCP nor UDP");
    let icmp_proto = if ip.v4 { PROTO_ICMP } else { PROTO_ICMPV6 };
    let bare = ip.v4 || ip.l4_off == ip.l3_off + 40;
    if ip.proto != icmp_proto || !bare || !model.is_vip_address(ip.dst) {
        return not_ours;
    }
    if ip.l4_off + 8 > ip.end {
        return Expectation::pass_as(Verdict::Malformed, "ICMP header cut short");
    }
    let icmp_type = frame[ip.l4_off];
    let (echo, errors): (u8, &[u8]) = if ip.v4 {
        (8, &[3, 11, 12])
    } else {
        (128, &[1, 2, 3, 4])
    };
    if icmp_type == echo {
        let options = ip.v4 && ip.l4_off != ip.l3_off + 20;
        if options || !may_answer(ip.src) || !model.ping(ip.dst) {
            return Expectation::pass_as(Verdict::NotVip, "echo request xlb does not answer");
        }
        let mut e = Expectation::drop_as(Verdict::IcmpEchoLimited, "echo request to a VIP");
        e.answer = Some(Answer::Echo {
            l3_off: ip.l3_off,
            ip_len: ip.end - ip.l3_off,
        });
        return e;
    }
    if !errors.contains(&icmp_type) {
        return Expectation::pass_as(Verdict::NotVip, "ICMP that is neither echo nor error");
    }
    let Some((client, cport, vport, proto)) = quoted(frame, ip) else {
        return Expectation::drop_as(
            Verdict::IcmpMalformed,
            "ICMP error with an unreadable quote",
        );
    };
    let Some(vip) = model.vip_for(ip.dst, vport, proto) else {
        return Expectation::pass_as(Verdict::NotVip, "ICMP error about no VIP");
    };
    let flow = FlowId {
        vip,
        src: client,
        rest: (!model.vips[vip].source_hash).then_some((ip.dst, cport, vport)),
    };
    balanced(
        model,
        ip,
        tag,
        flow,
        Some(Verdict::IcmpToBackend),
        false,
        "ICMP error about a VIP's flow",
    )
}

/// The flow an ICMP error quotes, as (client, client port, VIP port,
/// protocol): the quoted packet is the VIP's reply to the client.
fn quoted(frame: &[u8], ip: &Ip) -> Option<(IpAddr, u16, u16, u8)> {
    let off = ip.l4_off + 8;
    let q = frame.get(off..ip.end)?;
    let (src, dst, proto, hlen) = if ip.v4 {
        let h = q.get(..20)?;
        let ihl = usize::from(h[0] & 0x0f) * 4;
        let offset = u16::from_be_bytes([h[6], h[7]]) & 0x1fff;
        if h[0] >> 4 != 4 || ihl < 20 || offset != 0 {
            return None;
        }
        let src: [u8; 4] = h[12..16].try_into().ok()?;
        let dst: [u8; 4] = h[16..20].try_into().ok()?;
        (IpAddr::from(src), IpAddr::from(dst), h[9], ihl)
    } else {
        let h = q.get(..40)?;
        if h[0] >> 4 != 6 {
            return None;
        }
        let src: [u8; 16] = h[8..24].try_into().ok()?;
        let dst: [u8; 16] = h[24..40].try_into().ok()?;
        (IpAddr::from(src), IpAddr::from(dst), h[6], 40)
    };
    let ports = q.get(hlen..hlen + 8)?;
    if src != ip.dst || (proto != PROTO_TCP && proto != PROTO_UDP) {
        return None;
    }
    let sport = u16::from_be_bytes([ports[0], ports[1]]);
    let dport = u16::from_be_bytes([ports[2], ports[3]]);
    Some((dst, dport, sport, proto))
}

/// Whether a packet too big for its path may be answered: not ICMP (the IP
/// header's own protocol / next header), IPv4 only with DF and not a later
/// fragment, from a source that may get ICMP.
pub(super) fn answers_too_big(frame: &[u8], ip: &Ip) -> bool {
    let h = &frame[ip.l3_off..];
    if !may_answer(ip.src) {
        return false;
    }
    if ip.v4 {
        let flags = u16::from_be_bytes([h[6], h[7]]);
        h[9] != PROTO_ICMP && flags & 0x4000 != 0 && flags & 0x1fff == 0
    } else {
        h[6] != PROTO_ICMPV6
    }
}

/// The MTU a too-big error carries for a path of `path_mtu` with
/// `outer_len` bytes of outer header: none below the family's minimum.
pub(super) fn too_big_mtu(v4: bool, path_mtu: u32, outer_len: usize) -> Option<u32> {
    let mtu = path_mtu.checked_sub(outer_len as u32)?;
    let min = if v4 { 68 } else { 1280 };
    (mtu >= min).then_some(mtu)
}

/// Unicast sources only: not 0/8, 127/8, multicast or 240/4; not ::, ::1
/// or ff00::/8.
fn may_answer(src: IpAddr) -> bool {
    match src {
        IpAddr::V4(a) => {
            let o = a.octets();
            o[0] != 0 && o[0] != 127 && o[0] < 224
        }
        IpAddr::V6(a) => !a.is_unspecified() && !a.is_loopback() && !a.is_multicast(),
    }
}

fn tag_of(frame: &[u8]) -> Option<Tag> {
    let tpid = u16::from_be_bytes([frame[12], frame[13]]);
    (tpid == 0x8100 || tpid == 0x88a8).then(|| Tag {
        tpid,
        tci: u16::from_be_bytes([frame[14], frame[15]]),
    })
}

/// Whether `out` is the answer `a` allows to `input`; the reason it is
/// counted under.
pub(super) fn answered(
    model: &Model,
    input: &[u8],
    e: &Expectation,
    out: &[u8],
) -> Option<VerdictSet> {
    match e.answer? {
        Answer::Echo { l3_off, ip_len } => (out == echo_reply(input, l3_off, ip_len))
            .then(|| VerdictSet::of(Verdict::IcmpEchoReply)),
        Answer::TooBig => {
            let f = e.forward?;
            let vip = &model.vips[f.vip];
            vip.eligible()
                .filter_map(|b| {
                    // The answer's MTU leaves room for what the VIP's mode
                    // puts in front (nothing for l2-dsr).
                    too_big_mtu(f.inner_v4, b.path.mtu()?, vip.mode.overhead(b.addr))
                })
                .any(|mtu| out == too_big(input, &f, mtu))
                .then(|| VerdictSet::of(Verdict::IcmpTooBigSent))
        }
    }
}

/// The link-layer header of an answer: addresses swapped, tag kept.
fn reply_l2(input: &[u8], l3_off: usize) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&input[6..12]);
    out.extend_from_slice(&input[0..6]);
    out.extend_from_slice(&input[12..l3_off]);
    out
}

/// RFC 1624: a checksum after one 16-bit word changed from `old` to `new`.
fn update(check: u16, old: u16, new: u16) -> u16 {
    let mut sum = u32::from(!check) + u32::from(!old) + u32::from(new);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn echo_reply(input: &[u8], l3_off: usize, ip_len: usize) -> Vec<u8> {
    let mut out = reply_l2(input, l3_off);
    let mut ip = input[l3_off..l3_off + ip_len].to_vec();
    let l4 = if ip[0] >> 4 == 4 {
        let (src, dst) = (ip[12..16].to_vec(), ip[16..20].to_vec());
        ip[12..16].copy_from_slice(&dst);
        ip[16..20].copy_from_slice(&src);
        let check = u16::from_be_bytes([ip[10], ip[11]]);
        let new = update(
            check,
            u16::from_be_bytes([ip[8], ip[9]]),
            u16::from_be_bytes([64, ip[9]]),
        );
        ip[10..12].copy_from_slice(&new.to_be_bytes());
        ip[8] = 64;
        20
    } else {
        let (src, dst) = (ip[8..24].to_vec(), ip[24..40].to_vec());
        ip[8..24].copy_from_slice(&dst);
        ip[24..40].copy_from_slice(&src);
        ip[7] = 64;
        40
    };
    let reply_type = if l4 == 20 { 0 } else { 129 };
    let check = u16::from_be_bytes([ip[l4 + 2], ip[l4 + 3]]);
    let new = update(
        check,
        u16::from_be_bytes([ip[l4], ip[l4 + 1]]),
        u16::from_be_bytes([reply_type, ip[l4 + 1]]),
    );
    ip[l4] = reply_type;
    ip[l4 + 2..l4 + 4].copy_from_slice(&new.to_be_bytes());
    out.extend_from_slice(&ip);
    out
}

fn too_big(input: &[u8], f: &Forward, mtu: u32) -> Vec<u8> {
    let l3 = f.l3_off;
    let mut out = reply_l2(input, l3);
    let pkt = &input[l3..];
    let mut ip = Vec::new();
    if f.inner_v4 {
        let ihl = usize::from(pkt[0] & 0x0f) * 4;
        let quote = &pkt[..ihl + 8];
        let src: [u8; 4] = pkt[16..20].try_into().unwrap_or_default();
        let dst: [u8; 4] = pkt[12..16].try_into().unwrap_or_default();
        let m = (mtu as u16).to_be_bytes();
        let written = PacketBuilder::ipv4(src, dst, 64)
            .icmpv4_raw(3, 4, [0, 0, m[0], m[1]])
            .write(&mut ip, quote);
        if written.is_err() {
            return Vec::new();
        }
        ip[1] = 0xc0;
        crate::frames::fix_ipv4_checksum(&mut ip, 0);
    } else {
        let quote = &pkt[..1232.min(pkt.len())];
        let src: [u8; 16] = pkt[24..40].try_into().unwrap_or_default();
        let dst: [u8; 16] = pkt[8..24].try_into().unwrap_or_default();
        let written = PacketBuilder::ipv6(src, dst, 64)
            .icmpv6_raw(2, 0, mtu.to_be_bytes())
            .write(&mut ip, quote);
        if written.is_err() {
            return Vec::new();
        }
    }
    // The EtherType (inside the tag, if any) names the error's family: the
    // packet's own.
    out.extend_from_slice(&ip);
    out
}
