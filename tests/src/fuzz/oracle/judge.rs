//! Judges what the data plane did with a frame against the [`Expectation`]:
//! the XDP action, and for encapsulated frames every byte of the result (the
//! outer Ethernet, VLAN and IP headers, parsed with etherparse, and the inner
//! packet compared with the input).

use std::net::IpAddr;

use etherparse::{Ethernet2HeaderSlice, Ipv4HeaderSlice, Ipv6HeaderSlice, SingleVlanHeaderSlice};
use lb_common::Verdict;

use super::{
    super::wire::{finish, sum},
    expect::{Expectation, Forward, ETH_P_8021AD, ETH_P_8021Q, ETH_P_IPV4, ETH_P_IPV6},
    model::{
        outer_header_len, BackendModel, Mode, Model, Path, Tag, VerdictSet, XDP_ABORTED, XDP_DROP,
        XDP_PASS, XDP_REDIRECT, XDP_TX,
    },
};

const IPPROTO_IPIP: u8 = 4;
const IPPROTO_IPV6: u8 = 41;
const IPPROTO_UDP: u8 = 17;

/// One thing wrong with a result. `what` is a fixed category (reports count
/// and group by it); `detail` says what was expected and what was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub what: &'static str,
    pub detail: String,
}

impl Problem {
    fn new(what: &'static str, detail: impl Into<String>) -> Self {
        Self {
            what,
            detail: detail.into(),
        }
    }
}

/// An accepted result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The reasons the data plane may have counted the frame under.
    pub verdicts: VerdictSet,
    /// The backend an encapsulated frame went to.
    pub backend: Option<IpAddr>,
}

/// Checks the data plane's `action` and `output` for `input`.
pub fn judge(
    model: &Model,
    input: &[u8],
    exp: &Expectation,
    action: u32,
    output: &[u8],
) -> Result<Accepted, Vec<Problem>> {
    let verdicts_only = |verdicts| Accepted {
        verdicts,
        backend: None,
    };
    let refuse = |what, found: &str| {
        Err(vec![Problem::new(
            what,
            format!("{found}; expected: {}", exp.describe(model)),
        )])
    };
    match action {
        XDP_PASS if output == input => {
            if !exp.pass.is_empty() {
                Ok(verdicts_only(exp.pass))
            } else if exp.forward.is_some() {
                refuse(
                    "VIP traffic passed to the kernel untouched",
                    "XDP_PASS, unchanged",
                )
            } else {
                refuse("passed a frame that must be dropped", "XDP_PASS, unchanged")
            }
        }
        XDP_PASS => match &exp.forward {
            // The only documented pass of a rewritten frame: encapsulated
            // toward a backend whose neighbour is unresolved (`fib_no_neigh`).
            Some(f) => forwarded(model, input, f, action, output),
            None => refuse("passed frame modified", "XDP_PASS with different bytes"),
        },
        XDP_DROP if !exp.drop.is_empty() => Ok(verdicts_only(exp.drop)),
        XDP_DROP => refuse("dropped without a documented reason", "XDP_DROP"),
        XDP_TX if super::icmp::answered(model, input, exp, output).is_some() => {
            let a = super::icmp::answered(model, input, exp, output);
            Ok(verdicts_only(a.unwrap_or(VerdictSet::EMPTY)))
        }
        XDP_TX | XDP_REDIRECT => match &exp.forward {
            Some(f) => forwarded(model, input, f, action, output),
            None => refuse(
                "transmitted a frame that is not VIP traffic",
                &format!("XDP action {}", action_name(action)),
            ),
        },
        XDP_ABORTED => refuse("XDP_ABORTED", "XDP_ABORTED"),
        other => refuse("unknown XDP action", &format!("action {other}")),
    }
}

pub fn action_name(action: u32) -> &'static str {
    match action {
        XDP_ABORTED => "XDP_ABORTED",
        XDP_DROP => "XDP_DROP",
        XDP_PASS => "XDP_PASS",
        XDP_TX => "XDP_TX",
        XDP_REDIRECT => "XDP_REDIRECT",
        _ => "unknown",
    }
}

/// An encapsulated frame: outer L2, outer IP header, inner packet, backend.
fn forwarded(
    model: &Model,
    input: &[u8],
    f: &Forward,
    action: u32,
    out: &[u8],
) -> Result<Accepted, Vec<Problem>> {
    let mut problems = Vec::new();
    let Ok(eth) = Ethernet2HeaderSlice::from_slice(out) else {
        return Err(vec![Problem::new(
            "encapsulated frame without an Ethernet header",
            format!("{} bytes", out.len()),
        )]);
    };
    let mut ether_type = eth.ether_type().0;
    let mut off = 14;
    let mut out_tag = None;
    if ether_type == ETH_P_8021Q || ether_type == ETH_P_8021AD {
        let Ok(vlan) = SingleVlanHeaderSlice::from_slice(&out[14..]) else {
            return Err(vec![Problem::new(
                "encapsulated frame with a cut VLAN tag",
                format!("{} bytes", out.len()),
            )]);
        };
        let s = vlan.slice();
        out_tag = Some(Tag {
            tpid: ether_type,
            tci: u16::from_be_bytes([s[0], s[1]]),
        });
        ether_type = vlan.ether_type().0;
        off += 4;
    }
    let rest = &out[off..];
    let mode = model.vips[f.vip].mode;
    if mode == Mode::Nat {
        return translated(model, input, f, action, &eth, out_tag, ether_type, rest);
    }
    if mode == Mode::L2Dsr {
        return rewritten(
            model, input, f, action, out, &eth, out_tag, ether_type, rest,
        );
    }
    let outer = match ether_type {
        ETH_P_IPV4 => outer_v4(model, input, f, rest, &mut problems),
        ETH_P_IPV6 => outer_v6(model, input, f, rest, &mut problems),
        other => {
            problems.push(Problem::new(
                "outer EtherType is not IPv4/IPv6",
                format!("EtherType {other:#06x}"),
            ));
            None
        }
    };
    let Some(dst) = outer else {
        return Err(problems);
    };
    let after_ip = &rest[outer_header_len(dst).min(rest.len())..];
    let inner = match mode {
        Mode::Gue { port } => {
            gue_header(f, port, after_ip, &mut problems);
            &after_ip[8.min(after_ip.len())..]
        }
        _ => after_ip,
    };
    inner_packet(input, f, inner, &mut problems);

    let vip = &model.vips[f.vip];
    let Some(backend) = vip.eligible().find(|b| b.addr == dst) else {
        let eligible: Vec<String> = vip.eligible().map(|b| b.addr.to_string()).collect();
        problems.push(Problem::new(
            "outer destination is not an eligible backend of the VIP",
            format!(
                "outer destination {dst}, VIP {} takes new connections on [{}]",
                vip.describe(),
                eligible.join(", ")
            ),
        ));
        return Err(problems);
    };
    let verdict = path(model, f, backend, action, &eth, out_tag, &mut problems);
    let verdict = f.counted_as.unwrap_or(verdict);
    if problems.is_empty() {
        Ok(Accepted {
            verdicts: VerdictSet::of(verdict),
            backend: Some(dst),
        })
    } else {
        Err(problems)
    }
}

/// An `l2-dsr` frame: the client's packet behind new MACs; the backend is
/// the eligible one whose next hop has the destination MAC.
#[expect(clippy::too_many_arguments, reason = "the parsed pieces of one frame")]
fn rewritten(
    model: &Model,
    input: &[u8],
    f: &Forward,
    action: u32,
    out: &[u8],
    eth: &Ethernet2HeaderSlice,
    out_tag: Option<Tag>,
    ether_type: u16,
    rest: &[u8],
) -> Result<Accepted, Vec<Problem>> {
    let mut problems = Vec::new();
    let want_type = if f.inner_v4 { ETH_P_IPV4 } else { ETH_P_IPV6 };
    if ether_type != want_type {
        problems.push(Problem::new(
            "l2-dsr frame's EtherType is not the client packet's",
            format!("EtherType {ether_type:#06x}, expected {want_type:#06x}"),
        ));
    }
    inner_packet(input, f, rest, &mut problems);
    let vip = &model.vips[f.vip];
    let dmac = eth.destination();
    let Some(backend) = vip.eligible().find(|b| match b.path {
        Path::Direct { next_hop_mac, .. } => next_hop_mac == dmac,
        _ => false,
    }) else {
        problems.push(Problem::new(
            "l2-dsr frame not addressed to an eligible backend's MAC",
            format!(
                "destination MAC {} ({} bytes), VIP {}",
                mac(&dmac),
                out.len(),
                vip.describe()
            ),
        ));
        return Err(problems);
    };
    let verdict = path(model, f, backend, action, eth, out_tag, &mut problems);
    // ICMP errors and fragments leave by the VIP's mode too, counted as such.
    let verdict = f.counted_as.unwrap_or(verdict);
    if problems.is_empty() {
        Ok(Accepted {
            verdicts: VerdictSet::of(verdict),
            backend: Some(backend.addr),
        })
    } else {
        Err(problems)
    }
}

/// The one's-complement sum of `bytes` folded to 16 bits, 0xffff read as 0
/// (both are zero in one's complement).
fn residue(bytes: &[&[u8]]) -> u16 {
    let s = !finish(bytes.iter().fold(0, |acc, b| sum(acc, b)));
    if s == 0xffff {
        0
    } else {
        s
    }
}

/// A `nat` frame: the client's IP packet with its destination the backend's
/// address, its source a NAT address and a port of the NAT range, the
/// destination port kept, every other byte unchanged but the checksums;
/// each checksum updated so that what it covers still sums as before (an
/// input checksum that was wrong stays as wrong; a UDP checksum of 0 over
/// IPv4 stays 0).
#[expect(clippy::too_many_arguments, reason = "the parsed pieces of one frame")]
fn translated(
    model: &Model,
    input: &[u8],
    f: &Forward,
    action: u32,
    eth: &Ethernet2HeaderSlice,
    out_tag: Option<Tag>,
    ether_type: u16,
    rest: &[u8],
) -> Result<Accepted, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut bad = |what, detail: String| problems.push(Problem::new(what, detail));
    let want_type = if f.inner_v4 { ETH_P_IPV4 } else { ETH_P_IPV6 };
    let inp = &input[f.l3_off..f.l3_off + f.ip_len];
    if ether_type != want_type || rest.len() != inp.len() {
        bad(
            "nat frame is not the client's IP packet",
            format!(
                "EtherType {ether_type:#06x} (expected {want_type:#06x}), {} bytes (expected {})",
                rest.len(),
                inp.len()
            ),
        );
        return Err(problems);
    }
    let out = rest;
    // (source, destination) address ranges, IP header checksum, where the
    // transport header starts.
    let (src_r, dst_r) = if f.inner_v4 {
        (12..16, 16..20)
    } else {
        (8..24, 24..40)
    };
    let l4 = f.l4_off - f.l3_off;
    let addr = |b: &[u8]| -> IpAddr {
        if f.inner_v4 {
            IpAddr::from(<[u8; 4]>::try_from(b).unwrap_or_default())
        } else {
            IpAddr::from(<[u8; 16]>::try_from(b).unwrap_or_default())
        }
    };
    let (src, dst) = (addr(&out[src_r.clone()]), addr(&out[dst_r.clone()]));
    if !model.nat.is_source(src) {
        bad(
            "nat frame's source is not a NAT address",
            format!("source {src}, NAT addresses {:?}", model.nat.sources),
        );
    }
    // Everything but the addresses, the ports and the checksums as sent.
    let check_at = l4 + if f.proto == PROTO_UDP_ORACLE { 6 } else { 16 };
    let v4_check = 10..12;
    for i in 0..out.len() {
        let changes = src_r.contains(&i)
            || dst_r.contains(&i)
            || (l4..l4 + 2).contains(&i)
            || (check_at..check_at + 2).contains(&i)
            || (f.inner_v4 && v4_check.contains(&i));
        if !changes && out[i] != inp[i] {
            bad(
                "nat frame altered beyond addresses, source port and checksums",
                format!("first difference at IP packet offset {i}"),
            );
            break;
        }
    }
    let sport = u16::from_be_bytes([out[l4], out[l4 + 1]]);
    let (lo, hi) = model.nat.ports;
    if !(lo..=hi).contains(&sport) {
        bad(
            "nat source port outside the NAT range",
            format!("source port {sport}, range {lo}-{hi}"),
        );
    }
    if f.inner_v4 {
        let hl = l4;
        if residue(&[&out[..hl]]) != residue(&[&inp[..hl]]) {
            bad(
                "nat IPv4 header checksum not updated for the new addresses",
                format!("header sums differ ({} bytes)", hl),
            );
        }
    }
    let (in_check, out_check) = (
        u16::from_be_bytes([inp[check_at], inp[check_at + 1]]),
        u16::from_be_bytes([out[check_at], out[check_at + 1]]),
    );
    let udp_none = f.proto == PROTO_UDP_ORACLE && f.inner_v4 && in_check == 0;
    if udp_none {
        if out_check != 0 {
            bad(
                "nat UDP checksum 0 over IPv4 not kept",
                format!("checksum {out_check:#06x}"),
            );
        }
    } else {
        let covered = |p: &[u8]| residue(&[&p[src_r.clone()], &p[dst_r.clone()], &p[l4..]]);
        if covered(out) != covered(inp) {
            bad(
                "nat transport checksum not updated for the new addresses and port",
                format!("checksum {in_check:#06x} -> {out_check:#06x}"),
            );
        }
    }
    let vip = &model.vips[f.vip];
    let Some(backend) = vip.eligible().find(|b| b.addr == dst) else {
        problems.push(Problem::new(
            "nat destination is not an eligible backend of the VIP",
            format!("destination {dst}, VIP {}", vip.describe()),
        ));
        return Err(problems);
    };
    let verdict = path(model, f, backend, action, eth, out_tag, &mut problems);
    if problems.is_empty() {
        Ok(Accepted {
            verdicts: VerdictSet::of(verdict),
            backend: Some(dst),
        })
    } else {
        Err(problems)
    }
}

const PROTO_UDP_ORACLE: u8 = 17;

/// Checks a GUE UDP header (the bytes after the outer IP header).
fn gue_header(f: &Forward, port: u16, udp: &[u8], problems: &mut Vec<Problem>) {
    if udp.len() < 8 {
        problems.push(Problem::new(
            "GUE frame cut inside its UDP header",
            format!("{} bytes after the outer IP header", udp.len()),
        ));
        return;
    }
    let word = |at: usize| u16::from_be_bytes([udp[at], udp[at + 1]]);
    let (sport, dport, len, check) = (word(0), word(2), word(4), word(6));
    let mut bad = |what, detail: String| problems.push(Problem::new(what, detail));
    if dport != port {
        bad(
            "GUE destination port is not the VIP's",
            format!("port {dport}, configured {port}"),
        );
    }
    if sport < 0xc000 {
        bad(
            "GUE source port outside the dynamic range",
            format!("source port {sport}"),
        );
    }
    if usize::from(len) != 8 + f.ip_len {
        bad(
            "GUE UDP length is not the UDP header plus the client's packet",
            format!("UDP length {len}, client packet {} bytes", f.ip_len),
        );
    }
    if check != 0 {
        bad(
            "GUE UDP checksum is not zero",
            format!("checksum {check:#06x}"),
        );
    }
}

/// Checks an outer IPv4 header; returns the outer destination.
fn outer_v4(
    model: &Model,
    input: &[u8],
    f: &Forward,
    rest: &[u8],
    problems: &mut Vec<Problem>,
) -> Option<IpAddr> {
    let Ok(h) = Ipv4HeaderSlice::from_slice(rest) else {
        problems.push(Problem::new(
            "outer IPv4 header invalid",
            "cut short, version not 4 or IHL under 5",
        ));
        return None;
    };
    let mut bad = |what, detail: String| problems.push(Problem::new(what, detail));
    if h.ihl() != 5 {
        bad("outer IPv4 header has options", format!("IHL {}", h.ihl()));
    }
    if usize::from(h.total_len()) != rest.len() {
        bad(
            "outer length differs from what is sent",
            format!(
                "outer IPv4 total length {}, {} bytes sent after the Ethernet header",
                h.total_len(),
                rest.len()
            ),
        );
    }
    // The one's-complement sum of a header with a correct checksum is
    // all ones (etherparse's own computation ignores the reserved flag bit).
    if finish(sum(0, h.slice())) != 0 {
        bad(
            "outer IPv4 header checksum wrong",
            format!("{:#06x} does not sum to zero", h.header_checksum()),
        );
    }
    let flags = u16::from_be_bytes([rest[6], rest[7]]);
    if flags != 0x4000 {
        bad(
            "outer IPv4 header is not DF, unfragmented",
            format!("flags and fragment offset {flags:#06x}, expected DF alone (0x4000)"),
        );
    }
    let proto = next_protocol(model, f);
    if h.protocol().0 != proto {
        bad(
            "outer protocol does not match the inner family",
            format!("protocol {}, expected {proto}", h.protocol().0),
        );
    }
    if h.ttl() != model.outer_ttl {
        bad(
            "outer TTL / hop limit is not the configured one",
            format!(
                "outer TTL {}, the client's TTL was {}; configured outer TTL {}",
                h.ttl(),
                inner_ttl(input, f),
                model.outer_ttl
            ),
        );
    }
    let src = IpAddr::V4(h.source_addr());
    if Some(src) != model.outer_source_v4.map(IpAddr::V4) {
        bad(
            "outer source is not the configured one",
            format!("{src}, configured {:?}", model.outer_source_v4),
        );
    }
    if rest[1] != f.tos {
        bad(
            "outer TOS / traffic class differs from the inner packet's",
            format!("outer {:#04x}, inner {:#04x}", rest[1], f.tos),
        );
    }
    Some(IpAddr::V4(h.destination_addr()))
}

/// Checks an outer IPv6 header; returns the outer destination.
fn outer_v6(
    model: &Model,
    input: &[u8],
    f: &Forward,
    rest: &[u8],
    problems: &mut Vec<Problem>,
) -> Option<IpAddr> {
    let Ok(h) = Ipv6HeaderSlice::from_slice(rest) else {
        problems.push(Problem::new(
            "outer IPv6 header invalid",
            "cut short or version not 6",
        ));
        return None;
    };
    let mut bad = |what, detail: String| problems.push(Problem::new(what, detail));
    if usize::from(h.payload_length()) + 40 != rest.len() {
        bad(
            "outer length differs from what is sent",
            format!(
                "outer IPv6 payload length {}, {} bytes sent after the outer header",
                h.payload_length(),
                rest.len() - 40
            ),
        );
    }
    let next = next_protocol(model, f);
    if h.next_header().0 != next {
        bad(
            "outer protocol does not match the inner family",
            format!("next header {}, expected {next}", h.next_header().0),
        );
    }
    if h.hop_limit() != model.outer_ttl {
        bad(
            "outer TTL / hop limit is not the configured one",
            format!(
                "outer hop limit {}, the client's TTL was {}; configured outer TTL {}",
                h.hop_limit(),
                inner_ttl(input, f),
                model.outer_ttl
            ),
        );
    }
    let src = IpAddr::V6(h.source_addr());
    if Some(src) != model.outer_source_v6.map(IpAddr::V6) {
        bad(
            "outer source is not the configured one",
            format!("{src}, configured {:?}", model.outer_source_v6),
        );
    }
    if h.traffic_class() != f.tos {
        bad(
            "outer TOS / traffic class differs from the inner packet's",
            format!("outer {:#04x}, inner {:#04x}", h.traffic_class(), f.tos),
        );
    }
    Some(IpAddr::V6(h.destination_addr()))
}

/// What the outer IP header must say follows it.
fn next_protocol(model: &Model, f: &Forward) -> u8 {
    match model.vips[f.vip].mode {
        Mode::Gue { .. } => IPPROTO_UDP,
        _ if f.inner_v4 => IPPROTO_IPIP,
        _ => IPPROTO_IPV6,
    }
}

fn inner_ttl(input: &[u8], f: &Forward) -> u8 {
    input[f.l3_off + if f.inner_v4 { 8 } else { 7 }]
}

/// The payload after the outer header must be exactly the client's packet.
fn inner_packet(input: &[u8], f: &Forward, payload: &[u8], problems: &mut Vec<Problem>) {
    let inner = &input[f.l3_off..f.l3_off + f.ip_len];
    if payload == inner {
        return;
    }
    if payload.len() > inner.len() && payload.starts_with(inner) {
        problems.push(Problem::new(
            "bytes past the inner IP packet forwarded",
            format!(
                "the {}-byte IP packet is followed by {} more bytes of the input frame \
                 ({} bytes of the frame lie after the IP packet)",
                inner.len(),
                payload.len() - inner.len(),
                input.len() - f.l3_off - f.ip_len
            ),
        ));
    } else {
        let at = payload
            .iter()
            .zip(inner)
            .position(|(a, b)| a != b)
            .unwrap_or(payload.len().min(inner.len()));
        problems.push(Problem::new(
            "inner packet altered or cut",
            format!(
                "{} bytes after the outer header, the IP packet has {}; first difference at \
                 inner offset {at}",
                payload.len(),
                inner.len()
            ),
        ));
    }
}

/// Checks the action, MACs, VLAN tag and MTU against the backend's path;
/// returns the verdict the data plane must have counted.
fn path(
    model: &Model,
    f: &Forward,
    backend: &BackendModel,
    action: u32,
    eth: &Ethernet2HeaderSlice,
    out_tag: Option<Tag>,
    problems: &mut Vec<Problem>,
) -> Verdict {
    let mode = model.vips[f.vip].mode;
    let outer_len = mode.overhead(backend.addr) + f.ip_len;
    if let Some(mtu) = backend.path.mtu() {
        if outer_len as u64 > u64::from(mtu) {
            problems.push(Problem::new(
                "encapsulated packet larger than the path MTU sent",
                format!(
                    "{outer_len}-byte outer packet toward {}, MTU {mtu}",
                    backend.addr
                ),
            ));
        }
    }
    let mut bad = |what, detail: String| problems.push(Problem::new(what, detail));
    match backend.path {
        Path::Unreachable => {
            bad(
                "encapsulated toward a backend without a route",
                format!("{} is behind a blackhole route", backend.addr),
            );
            Verdict::FibUnreachable
        }
        Path::Unresolved { .. } if mode == Mode::L2Dsr => {
            bad(
                "l2-dsr frame sent toward an unresolved neighbour",
                format!(
                    "{} toward {}, which has no neighbour entry: expected an l2_no_neigh drop",
                    action_name(action),
                    backend.addr
                ),
            );
            Verdict::L2NoNeigh
        }
        Path::Unresolved { .. } => {
            if action != XDP_PASS {
                bad(
                    "transmitted toward an unresolved neighbour",
                    format!(
                        "{} toward {}, which has no neighbour entry",
                        action_name(action),
                        backend.addr
                    ),
                );
            }
            Verdict::FibNoNeigh
        }
        Path::Direct { .. } if mode == Mode::L2Dsr && !backend.on_link => {
            bad(
                "l2-dsr frame sent toward a backend behind a gateway",
                format!(
                    "{} toward {}, whose route goes through a gateway: expected an l2_off_link \
                     drop",
                    action_name(action),
                    backend.addr
                ),
            );
            Verdict::L2OffLink
        }
        Path::Direct {
            iface,
            next_hop_mac,
            ..
        } => {
            let same = iface.ifindex == model.ingress.ifindex;
            let (want, verdict) = if same {
                (XDP_TX, Verdict::Tx)
            } else {
                (XDP_REDIRECT, Verdict::Redirect)
            };
            if !same && !iface.tx_port {
                bad(
                    "transmitted toward an interface that is not a transmit port",
                    format!(
                        "{} toward {} out of ifindex {}",
                        action_name(action),
                        backend.addr,
                        iface.ifindex
                    ),
                );
            } else if action != want {
                bad(
                    "wrong transmit action for the backend's interface",
                    format!(
                        "{} toward {} (ifindex {}, ingress {}), expected {}",
                        action_name(action),
                        backend.addr,
                        iface.ifindex,
                        model.ingress.ifindex,
                        action_name(want)
                    ),
                );
            }
            if eth.destination() != next_hop_mac || eth.source() != iface.mac {
                bad(
                    "wrong MAC addresses on the encapsulated frame",
                    format!(
                        "dst {} src {}, expected dst {} (next hop of {}) src {}",
                        mac(&eth.destination()),
                        mac(&eth.source()),
                        mac(&next_hop_mac),
                        backend.addr,
                        mac(&iface.mac)
                    ),
                );
            }
            if f.tag.is_some() {
                bad(
                    "tagged packet transmitted toward a backend off its VLAN",
                    format!(
                        "tag in {}, tag out {}, backend {} on plain interface {}: expected a \
                         vlan_mismatch drop",
                        tag(f.tag),
                        tag(out_tag),
                        backend.addr,
                        iface.ifindex
                    ),
                );
            } else if out_tag.is_some() {
                bad(
                    "VLAN tag added to an untagged packet",
                    format!(
                        "tag out {} toward {} on ifindex {}",
                        tag(out_tag),
                        backend.addr,
                        iface.ifindex
                    ),
                );
            }
            if action == XDP_PASS {
                // Already reported above; the data plane counted a pass.
                return Verdict::FibNoNeigh;
            }
            verdict
        }
    }
}

fn mac(m: &[u8; 6]) -> String {
    m.map(|b| format!("{b:02x}")).join(":")
}

fn tag(t: Option<Tag>) -> String {
    match t {
        None => "none".to_string(),
        Some(t) => format!("{:#06x} vid {} pcp {}", t.tpid, t.tci & 0x0fff, t.tci >> 13),
    }
}
