//! What the documented behaviour allows for one input frame, decided from the
//! frame (parsed with etherparse) and the installed configuration ([`Model`]).
//!
//! The rules are the README's verdict table and the requirements,
//! restated independently of the data plane:
//!
//! - not IPv4/IPv6 (other EtherTypes, two VLAN tags): pass untouched, `not_ip`;
//! - headers cut short or lengths that disagree with the frame (IPv4 IHL and
//!   total length, IPv6 payload length, the fixed TCP/UDP header inside the IP
//!   packet): pass untouched, `malformed`;
//! - IPv4 fragments and IPv6 fragment headers: dropped (`fragment`) when sent
//!   to a VIP address, else passed (`not_vip`);
//! - IPv6 behind more than three extension headers, or a routing header with
//!   segments left: dropped (`ipv6_ext_unsupported`) when sent to a VIP
//!   address, else passed;
//! - anything else not sent to a VIP's (address, port or port 0, protocol):
//!   pass untouched, `not_vip`;
//! - VIP traffic: forwarded to one of the VIP's eligible backends, or dropped
//!   for a reason that holds for one of them (no backend at all, no route,
//!   too big for its path, an unresolved neighbour if the data plane drops
//!   those, a tagged frame that cannot leave on its VLAN);
//! - VIP traffic from a source the VIP's allow/deny ranges refuse: dropped
//!   (`source_denied`, `source_not_allowed`), whatever the packet; a bare
//!   SYN to a VIP with rate limits may also be dropped
//!   (`vip_rate_limited`, `source_rate_limited`), no other packet.
//!
//! Where the documentation leaves a choice (a TCP data offset the data plane
//! need not read, an extension chain that runs past the packet), every
//! documented answer is accepted; where it is precise, only that answer is.

use std::net::IpAddr;

use etherparse::{
    Ethernet2HeaderSlice, Ipv4HeaderSlice, Ipv6HeaderSlice, Ipv6RawExtHeaderSlice,
    SingleVlanHeaderSlice,
};
use lb_common::Verdict;

use super::{
    icmp,
    model::{Mode, Model, Path, Tag, VerdictSet, PROTO_TCP, PROTO_UDP},
};

pub const ETH_P_IPV4: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88a8;

const ETH_LEN: usize = 14;
const VLAN_LEN: usize = 4;
/// IPv6 extension headers the README promises to walk.
const MAX_IPV6_EXT: usize = 3;
const TCP_SYN: u8 = 0x02;
const TCP_ACK: u8 = 0x10;

/// What may happen to one frame. At least one of the three is allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expectation {
    /// Reasons under which it may leave with XDP_PASS, byte-identical.
    pub pass: VerdictSet,
    /// Reasons under which it may be dropped.
    pub drop: VerdictSet,
    /// How it must look if it is encapsulated toward a backend.
    pub forward: Option<Forward>,
    /// The ICMP message the balancer may answer it with itself (XDP_TX).
    pub answer: Option<Answer>,
    /// The oracle's reading of the frame, for reports.
    pub why: &'static str,
}

/// VIP traffic: what its encapsulated form must carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forward {
    /// Index into `Model::vips`.
    pub vip: usize,
    /// Where the client's IP packet starts in the input frame.
    pub l3_off: usize,
    /// Its length according to its own header (IPv4 total length, or 40 +
    /// IPv6 payload length): what must be sent, nothing after it.
    pub ip_len: usize,
    pub inner_v4: bool,
    /// IPv4 TOS / IPv6 traffic class of the inner packet.
    pub tos: u8,
    /// The input's VLAN tag.
    pub tag: Option<Tag>,
    /// What must keep reaching the same backend.
    pub flow: FlowId,
    /// The reason it is counted under when sent (an ICMP error or a
    /// fragment), instead of `tx` / `redirect` / `fib_no_neigh`.
    pub counted_as: Option<Verdict>,
    /// Where its transport header starts in the input frame, and its
    /// protocol (what `nat` rewrites).
    pub l4_off: usize,
    pub proto: u8,
}

/// An ICMP message the balancer sends back out of the ingress interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// "Fragmentation needed" / "packet too big" for the packet that the
    /// expectation's [`Forward`] describes, with the MTU of one of the VIP's
    /// eligible backends' paths it does not fit.
    TooBig,
    /// The echo reply to the request at `l3_off` of `ip_len` bytes.
    Echo { l3_off: usize, ip_len: usize },
}

/// A flow as the VIP balances it: its 5-tuple, or only its source address for
/// a VIP with client affinity. A static configuration sends every packet of
/// one flow to one backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowId {
    pub vip: usize,
    pub src: IpAddr,
    /// `None` for a source-hashed VIP.
    pub rest: Option<(IpAddr, u16, u16)>,
}

impl Expectation {
    fn pass(reasons: VerdictSet, why: &'static str) -> Self {
        Self {
            pass: reasons,
            drop: VerdictSet::EMPTY,
            forward: None,
            answer: None,
            why,
        }
    }

    pub(super) fn pass_as(v: Verdict, why: &'static str) -> Self {
        Self::pass(VerdictSet::of(v), why)
    }

    pub(super) fn drop_as(v: Verdict, why: &'static str) -> Self {
        Self {
            pass: VerdictSet::EMPTY,
            drop: VerdictSet::of(v),
            forward: None,
            answer: None,
            why,
        }
    }

    /// Human-readable summary of what is allowed.
    pub fn describe(&self, model: &Model) -> String {
        let mut parts = Vec::new();
        if !self.pass.is_empty() {
            parts.push(format!("pass unchanged as {}", self.pass));
        }
        if !self.drop.is_empty() {
            parts.push(format!("drop as {}", self.drop));
        }
        if let Some(f) = &self.forward {
            let vip = &model.vips[f.vip];
            let backends: Vec<String> = vip.eligible().map(|b| b.addr.to_string()).collect();
            parts.push(format!(
                "encapsulate the {}-byte IP packet at offset {} toward one of [{}] (VIP {})",
                f.ip_len,
                f.l3_off,
                backends.join(", "),
                vip.describe()
            ));
        }
        match self.answer {
            Some(Answer::TooBig) => parts.push("answer with an ICMP too-big error".into()),
            Some(Answer::Echo { .. }) => parts.push("answer with an echo reply".into()),
            None => {}
        }
        format!("{} ({})", parts.join(", or "), self.why)
    }
}

/// The frame as far as the IP layer, for everything after it.
pub(super) struct Ip {
    pub l3_off: usize,
    /// End of the IP packet (by its own length field) in the frame.
    pub end: usize,
    pub l4_off: usize,
    pub proto: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub tos: u8,
    pub v4: bool,
}

/// What the documented behaviour allows for `frame`.
pub fn expect(model: &Model, frame: &[u8]) -> Expectation {
    let not_ip = VerdictSet::of(Verdict::NotIp);
    let Ok(eth) = Ethernet2HeaderSlice::from_slice(frame) else {
        return Expectation::pass(not_ip.with(Verdict::Malformed), "no Ethernet header");
    };
    let mut ether_type = eth.ether_type().0;
    let mut l3_off = ETH_LEN;
    let mut tag = None;
    if is_tpid(ether_type) {
        let Ok(vlan) = SingleVlanHeaderSlice::from_slice(&frame[ETH_LEN..]) else {
            return Expectation::pass(not_ip.with(Verdict::Malformed), "VLAN tag cut short");
        };
        let s = vlan.slice();
        tag = Some(Tag {
            tpid: ether_type,
            tci: u16::from_be_bytes([s[0], s[1]]),
        });
        ether_type = vlan.ether_type().0;
        l3_off += VLAN_LEN;
        if is_tpid(ether_type) {
            return Expectation::pass_as(Verdict::NotIp, "two VLAN tags");
        }
    }
    let ip = match ether_type {
        ETH_P_IPV4 => ipv4(model, frame, l3_off),
        ETH_P_IPV6 => ipv6(model, frame, l3_off),
        _ => return Expectation::pass_as(Verdict::NotIp, "not IPv4 or IPv6"),
    };
    match ip {
        Ok(ip) => transport(model, frame, &ip, tag),
        Err(e) => e,
    }
}

fn is_tpid(ether_type: u16) -> bool {
    ether_type == ETH_P_8021Q || ether_type == ETH_P_8021AD
}

#[expect(
    clippy::result_large_err,
    reason = "one call per frame; the expectation is the oracle's answer, not an error path"
)]
fn ipv4(model: &Model, frame: &[u8], l3_off: usize) -> Result<Ip, Expectation> {
    let malformed = |why| Err(Expectation::pass_as(Verdict::Malformed, why));
    let avail = &frame[l3_off..];
    let h = match Ipv4HeaderSlice::from_slice(avail) {
        Ok(h) => h,
        Err(_) => return malformed("IPv4 header cut short, version not 4 or IHL under 5"),
    };
    let header_len = usize::from(h.ihl()) * 4;
    let total = usize::from(h.total_len());
    if total < header_len {
        return malformed("IPv4 total length shorter than its header");
    }
    if total > avail.len() {
        return malformed("IPv4 total length beyond the frame");
    }
    let dst = IpAddr::V4(h.destination_addr());
    let ip = Ip {
        l3_off,
        end: l3_off + total,
        l4_off: l3_off + header_len,
        proto: h.protocol().0,
        src: IpAddr::V4(h.source_addr()),
        dst,
        tos: avail[1],
        v4: true,
    };
    if h.more_fragments() || h.fragments_offset().value() != 0 {
        return Err(icmp::fragment(model, frame, &ip, ip.proto, "IPv4 fragment"));
    }
    Ok(ip)
}

#[expect(
    clippy::result_large_err,
    reason = "one call per frame; the expectation is the oracle's answer, not an error path"
)]
fn ipv6(model: &Model, frame: &[u8], l3_off: usize) -> Result<Ip, Expectation> {
    let avail = &frame[l3_off..];
    let h = match Ipv6HeaderSlice::from_slice(avail) {
        Ok(h) => h,
        Err(_) => {
            return Err(Expectation::pass_as(
                Verdict::Malformed,
                "IPv6 header cut short or version not 6",
            ))
        }
    };
    let payload = usize::from(h.payload_length());
    if payload == 0 {
        // A jumbogram or an empty packet: nothing a VIP serves.
        return Err(Expectation::pass(
            VerdictSet::of(Verdict::Malformed).with(Verdict::NotVip),
            "IPv6 payload length 0",
        ));
    }
    if 40 + payload > avail.len() {
        return Err(Expectation::pass_as(
            Verdict::Malformed,
            "IPv6 payload length beyond the frame",
        ));
    }
    let dst = IpAddr::V6(h.destination_addr());
    let end = l3_off + 40 + payload;
    let (proto, l4_off) = match walk_extensions(frame, h.next_header().0, l3_off + 40, end) {
        Chain::Transport { proto, off } => (proto, off),
        Chain::Fragment if h.next_header().0 == FRAGMENT => {
            // Right after the IPv6 header: a source-ip VIP may take it.
            let vcf = u16::from_be_bytes([avail[0], avail[1]]);
            let ip = Ip {
                l3_off,
                end,
                l4_off: l3_off + 40,
                proto: FRAGMENT,
                src: IpAddr::V6(h.source_addr()),
                dst,
                tos: (vcf >> 4) as u8,
                v4: false,
            };
            let Some(&proto) = frame.get(l3_off + 40) else {
                return Err(unbalanceable(
                    model,
                    dst,
                    Verdict::Fragment,
                    "IPv6 fragment header cut",
                ));
            };
            let mut e = icmp::fragment(model, frame, &ip, proto, "IPv6 fragment header");
            if l3_off + 48 > end && model.is_vip_address(dst) {
                // A fragment header cut by the packet's end: refusing it is
                // as documented as taking it.
                e.drop = e.drop.with(Verdict::Fragment);
            }
            return Err(e);
        }
        Chain::Fragment => {
            return Err(unbalanceable(
                model,
                dst,
                Verdict::Fragment,
                "IPv6 fragment header after another extension header",
            ))
        }
        Chain::Unsupported(why) => {
            return Err(unbalanceable(model, dst, Verdict::Ipv6ExtUnsupported, why))
        }
        Chain::FragmentAfterLimit => {
            let mut e = unbalanceable(
                model,
                dst,
                Verdict::Ipv6ExtUnsupported,
                "fragment header after three extension headers",
            );
            if !e.drop.is_empty() {
                e.drop = e.drop.with(Verdict::Fragment);
            }
            return Err(e);
        }
        Chain::UnknownExtension => {
            // An extension header xlb does not walk (AH, ESP, mobility...):
            // not balanceable; passing it is as documented as dropping it.
            let mut e = unbalanceable(
                model,
                dst,
                Verdict::Ipv6ExtUnsupported,
                "IPv6 extension header xlb does not walk",
            );
            e.pass = VerdictSet::of(Verdict::NotVip);
            return Err(e);
        }
        Chain::Overrun => {
            // The chain runs past the packet: malformed, or (bytes after the
            // packet read as headers) not ours, a fragment or unsupported.
            let mut e = Expectation::pass(
                VerdictSet::of(Verdict::Malformed).with(Verdict::NotVip),
                "IPv6 extension headers run past the packet",
            );
            if model.is_vip_address(dst) {
                e.drop = VerdictSet::of(Verdict::Fragment).with(Verdict::Ipv6ExtUnsupported);
            }
            return Err(e);
        }
    };
    let vcf = u16::from_be_bytes([avail[0], avail[1]]);
    Ok(Ip {
        l3_off,
        end,
        l4_off,
        proto,
        src: IpAddr::V6(h.source_addr()),
        dst,
        tos: (vcf >> 4) as u8,
        v4: false,
    })
}

/// Where an IPv6 extension chain leads.
enum Chain {
    /// An upper-layer header (any protocol) at `off`.
    Transport {
        proto: u8,
        off: usize,
    },
    Fragment,
    Unsupported(&'static str),
    FragmentAfterLimit,
    UnknownExtension,
    Overrun,
}

const HOP_BY_HOP: u8 = 0;
const ROUTING: u8 = 43;
const FRAGMENT: u8 = 44;
const DEST_OPTS: u8 = 60;

/// Extension headers by IANA's list other than those xlb walks.
fn is_other_extension(next: u8) -> bool {
    matches!(next, 50 | 51 | 135 | 139 | 140 | 253 | 254)
}

fn walk_extensions(frame: &[u8], mut next: u8, mut off: usize, end: usize) -> Chain {
    let mut walked = 0;
    loop {
        match next {
            FRAGMENT if walked < MAX_IPV6_EXT => return Chain::Fragment,
            FRAGMENT => return Chain::FragmentAfterLimit,
            HOP_BY_HOP | DEST_OPTS | ROUTING => {
                if walked == MAX_IPV6_EXT {
                    return Chain::Unsupported("more than three IPv6 extension headers");
                }
                let Ok(ext) = Ipv6RawExtHeaderSlice::from_slice(&frame[off..end]) else {
                    return Chain::Overrun;
                };
                if next == ROUTING && ext.slice()[3] != 0 {
                    return Chain::Unsupported("IPv6 routing header with segments left");
                }
                next = ext.next_header().0;
                off += ext.slice().len();
                walked += 1;
            }
            n if is_other_extension(n) => return Chain::UnknownExtension,
            proto => return Chain::Transport { proto, off },
        }
    }
}

/// A packet without usable ports: dropped as `reason` if sent to a VIP
/// address, else passed as not ours.
fn unbalanceable(model: &Model, dst: IpAddr, reason: Verdict, why: &'static str) -> Expectation {
    if model.is_vip_address(dst) {
        Expectation::drop_as(reason, why)
    } else {
        Expectation::pass_as(Verdict::NotVip, why)
    }
}

fn transport(model: &Model, frame: &[u8], ip: &Ip, tag: Option<Tag>) -> Expectation {
    let l4 = &frame[ip.l4_off..ip.end];
    // `loose`: the fixed header is there but the rest is inconsistent (a TCP
    // data offset or UDP length that disagrees): the data plane may call it
    // malformed or balance it, both documented.
    let (sport, dport, loose) = match ip.proto {
        PROTO_TCP => {
            if l4.len() < 20 {
                return Expectation::pass_as(Verdict::Malformed, "TCP header cut short");
            }
            let data_off = usize::from(l4[12] >> 4) * 4;
            (
                port(l4, 0),
                port(l4, 2),
                data_off < 20 || data_off > l4.len(),
            )
        }
        PROTO_UDP => {
            if l4.len() < 8 {
                return Expectation::pass_as(Verdict::Malformed, "UDP header cut short");
            }
            (
                port(l4, 0),
                port(l4, 2),
                usize::from(port(l4, 4)) != l4.len(),
            )
        }
        _ => return icmp::message(model, frame, ip, tag),
    };
    let loose_pass = if loose {
        VerdictSet::of(Verdict::Malformed)
    } else {
        VerdictSet::EMPTY
    };
    let Some(vip_index) = model.vip_for(ip.dst, dport, ip.proto) else {
        if model.nat.is_source(ip.dst) {
            // To a NAT address: a NAT session's reply, or the kernel's.
            return Expectation::pass(
                loose_pass.with(Verdict::NatReplyUnknown),
                "TCP/UDP to a NAT address that is no session's reply",
            );
        }
        return Expectation::pass(
            loose_pass.with(Verdict::NotVip),
            "TCP/UDP not to a VIP (address, port, protocol)",
        );
    };
    let vip = &model.vips[vip_index];
    // A bare SYN opens a connection: the VIP's rate limits may refuse it
    // (TCP packets that are not a bare SYN are never limited).
    let opens = ip.proto == PROTO_TCP && l4[13] & (TCP_SYN | TCP_ACK) == TCP_SYN;
    let rate_drops = if opens {
        vip.policy.rate_drops()
    } else {
        VerdictSet::EMPTY
    };
    let why = if loose {
        "VIP traffic with an inconsistent TCP data offset or UDP length"
    } else {
        "VIP traffic"
    };
    let source_hash = model.vips[vip_index].source_hash;
    let flow = FlowId {
        vip: vip_index,
        src: ip.src,
        rest: (!source_hash).then_some((ip.dst, sport, dport)),
    };
    let answerable = icmp::answers_too_big(frame, ip);
    let mut e = balanced(model, ip, tag, flow, None, answerable, why);
    e.pass = e.pass.union(loose_pass);
    if e.forward.is_some() {
        e.drop = e.drop.union(rate_drops);
    }
    e
}

/// A packet balanced as `flow` of VIP `flow.vip`: encapsulated toward one
/// of its eligible backends (counted as `counted_as` when given), or dropped
/// for a reason one of them has; when it is too big for a backend's path and
/// `answerable`, it may instead be answered with an ICMP too-big error.
pub(super) fn balanced(
    model: &Model,
    ip: &Ip,
    tag: Option<Tag>,
    flow: FlowId,
    counted_as: Option<Verdict>,
    answerable: bool,
    why: &'static str,
) -> Expectation {
    let vip_index = flow.vip;
    let vip = &model.vips[vip_index];
    // The VIP's source ranges come first, for every packet balanced as one
    // of its flows (an ICMP error: the flow it quotes, whose source is the
    // client).
    if let Some(reason) = vip.policy.refusal(flow.src) {
        return Expectation {
            pass: VerdictSet::EMPTY,
            drop: VerdictSet::of(reason),
            forward: None,
            answer: None,
            why: "VIP traffic from a source the VIP's ranges refuse",
        };
    }
    if vip.eligible.is_empty() {
        return Expectation {
            pass: VerdictSet::EMPTY,
            drop: VerdictSet::of(Verdict::NoBackend),
            forward: None,
            answer: None,
            why: "VIP traffic to a VIP without a backend that takes connections",
        };
    }
    if vip.mode == Mode::Nat && counted_as.is_some() {
        return Expectation {
            pass: VerdictSet::EMPTY,
            drop: VerdictSet::of(Verdict::NatUntranslatable),
            forward: None,
            answer: None,
            why: "an ICMP error or a fragment of a nat VIP's flow: not translated",
        };
    }
    let ip_len = ip.end - ip.l3_off;
    let forward = Forward {
        vip: vip_index,
        l3_off: ip.l3_off,
        ip_len,
        inner_v4: ip.v4,
        tos: ip.tos,
        tag,
        flow,
        counted_as,
        l4_off: ip.l4_off,
        proto: ip.proto,
    };
    let mut answer = None;
    let mut drop = VerdictSet::EMPTY;
    if vip.mode == Mode::Nat {
        // A new connection may find every candidate port taken.
        drop = drop.with(Verdict::NatExhausted);
    }
    for b in vip.eligible() {
        if vip.mode.encapsulates() && model.outer_source(b.addr).is_none() {
            drop = drop.with(Verdict::NoOuterSource);
            continue;
        }
        let outer_len = vip.mode.overhead(b.addr) + ip_len;
        match b.path {
            Path::Unreachable => drop = drop.with(Verdict::FibUnreachable),
            p if p.mtu().is_some_and(|m| outer_len as u64 > u64::from(m)) => {
                let mtu = p.mtu().unwrap_or(0);
                // Every mode, nat included, answers what it may answer.
                if answerable && icmp::too_big_mtu(ip.v4, mtu, vip.mode.overhead(b.addr)).is_some()
                {
                    answer = Some(Answer::TooBig);
                    drop = drop.with(Verdict::IcmpTooBigLimited);
                } else {
                    drop = drop.with(Verdict::TooBig);
                }
            }
            // l2-dsr cannot let the kernel resolve the MAC: the kernel would
            // route the VIP packet by its own table.
            Path::Unresolved { .. } if vip.mode == Mode::L2Dsr => {
                drop = drop.with(Verdict::L2NoNeigh);
            }
            Path::Unresolved { .. } => drop = drop.union(model.no_neigh_drop),
            // The VLAN rule comes first (the frame may not leave at all),
            // then l2-dsr's own: no MAC rewrite toward a gateway.
            Path::Direct { .. } if vip.mode == Mode::L2Dsr && !b.on_link && tag.is_none() => {
                drop = drop.with(Verdict::L2OffLink);
            }
            Path::Direct { iface, .. } => {
                if tag.is_some() {
                    // A tagged packet may leave only on its own VLAN, through
                    // a VLAN device of the ingress interface with its id; the
                    // model's backends are reached through plain interfaces
                    // (the ingress one included), so this one is a mismatch.
                    drop = drop.union(model.vlan_error);
                } else if iface.ifindex != model.ingress.ifindex && !iface.tx_port {
                    drop = drop.with(Verdict::RedirectFailed);
                }
            }
        }
    }
    Expectation {
        pass: VerdictSet::EMPTY,
        drop,
        forward: Some(forward),
        answer,
        why,
    }
}

fn port(l4: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([l4[at], l4[at + 1]])
}
