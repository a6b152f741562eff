//! Why the balancer let a packet go the way it did: one per-CPU counter slot in
//! `XLB_VERDICTS` per reason. The XDP action each reason maps to is fixed here so
//! the data plane, the docs and the metrics agree.

/// One slot of `XLB_VERDICTS`. Discriminants are the map indexes: append only.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Not IPv4/IPv6 (ARP, LLDP, double-tagged frames, ...): XDP_PASS.
    NotIp = 0,
    /// IP, but not to a VIP (address, port, protocol): XDP_PASS.
    NotVip = 1,
    /// Headers truncated or inconsistent (bad IHL, length fields beyond the frame,
    /// L4 header cut short): XDP_PASS, the kernel's own checks deal with it and we
    /// never drop traffic we cannot prove is ours.
    Malformed = 2,
    /// IPv4 fragment or IPv6 fragment header to a VIP address whose
    /// fragments of that protocol no source-hashed VIP takes: XDP_DROP.
    /// Non-first fragments carry no ports, so a VIP that hashes the 5-tuple
    /// cannot balance them consistently (see `FragmentToBackend`).
    Fragment = 3,
    /// IPv6 to a VIP behind more extension headers than the parser walks (or an
    /// unknown one): XDP_DROP.
    Ipv6ExtUnsupported = 4,
    /// VIP with no backend in its table slot (empty table): XDP_DROP.
    NoBackend = 5,
    /// Encapsulated, but the kernel has no neighbour entry for the next hop yet:
    /// XDP_PASS of the encapsulated packet, so the kernel forwards it and resolves
    /// the neighbour (needs IP forwarding on the balancer).
    FibNoNeigh = 6,
    /// No route to the backend (unreachable, blackhole, prohibited, ...): XDP_DROP.
    FibUnreachable = 7,
    /// Encapsulated packet larger than the egress MTU, and no ICMP error can
    /// tell the client (an IPv4 packet without DF or a non-first IPv4
    /// fragment, an ICMP error being forwarded, a source that gets no ICMP,
    /// a path below the protocol's minimum MTU): XDP_DROP. The other
    /// oversized packets are answered (`IcmpTooBigSent`).
    TooBig = 8,
    /// The backend's family has no outer source address configured: XDP_DROP.
    NoOuterSource = 9,
    /// Encapsulated and sent back out of the ingress interface: XDP_TX.
    Tx = 10,
    /// Encapsulated and redirected to another interface: XDP_REDIRECT. The
    /// kernel may still drop it after the program returns (the target has
    /// no XDP transmit support, is down, its ring is full): such drops show
    /// only in the driver's counters.
    Redirect = 11,
    /// The egress interface is not in `XLB_TX_PORTS`: XDP_DROP.
    RedirectFailed = 12,
    /// A map the program needs is missing an entry (never expected): XDP_DROP.
    Internal = 13,
    /// The route to the backend leaves on another VLAN than the packet came
    /// in on (a tagged packet routed to an untagged interface or to another
    /// VLAN, an untagged one routed to a VLAN device): XDP_DROP, never sent
    /// with a wrong tag (`decision::egress`).
    VlanMismatch = 14,
    /// The source matched a deny prefix of the VIP (`xlb vip deny`):
    /// XDP_DROP.
    SourceDenied = 15,
    /// The VIP has an allow list and the source matched none of it:
    /// XDP_DROP.
    SourceNotAllowed = 16,
    /// A new connection (bare TCP SYN, UDP flow without an entry) over the
    /// VIP's new-connection rate: XDP_DROP.
    VipRateLimited = 17,
    /// A new connection over the rate of its source prefix for this VIP:
    /// XDP_DROP.
    SourceRateLimited = 18,
    /// Too big for the path to its backend once encapsulated: answered with
    /// ICMP "fragmentation needed" / ICMPv6 "packet too big" carrying the
    /// MTU the client must use, sent back out of the ingress interface:
    /// XDP_TX.
    IcmpTooBigSent = 19,
    /// As `IcmpTooBigSent`, but this CPU's ICMP rate limit was reached: no
    /// error sent, XDP_DROP.
    IcmpTooBigLimited = 20,
    /// An ICMP / ICMPv6 echo request to a VIP address that allows ping,
    /// answered by the balancer: XDP_TX.
    IcmpEchoReply = 21,
    /// As `IcmpEchoReply`, but this CPU's ICMP rate limit was reached:
    /// XDP_DROP.
    IcmpEchoLimited = 22,
    /// An ICMP error about a VIP's flow (destination unreachable, time
    /// exceeded, parameter problem, packet too big), encapsulated toward the
    /// flow's backend. It leaves as the flow's packets would: XDP_TX, or
    /// XDP_REDIRECT / XDP_PASS where they are counted `redirect` /
    /// `fib_no_neigh`.
    IcmpToBackend = 23,
    /// An ICMP error to a VIP address whose quoted packet cannot be read
    /// (cut short, lying lengths or version, not TCP/UDP, a non-first
    /// fragment, a source other than the address it was sent to): XDP_DROP,
    /// never sent to a backend it may not belong to.
    IcmpMalformed = 24,
    /// A fragment (first or later) to a VIP that hashes the source address,
    /// encapsulated toward the backend of that source. It leaves as other
    /// packets would: XDP_TX, or XDP_REDIRECT / XDP_PASS where those are
    /// counted `redirect` / `fib_no_neigh`.
    FragmentToBackend = 25,
    /// An `l2-dsr` VIP's backend is not on-link: the FIB routes to it
    /// through a gateway, so rewriting the MACs would hand the packet to
    /// the gateway: XDP_DROP.
    L2OffLink = 26,
    /// An `l2-dsr` VIP's backend has no neighbour entry yet: XDP_DROP (the
    /// kernel would route the VIP packet by its own table; the daemon keeps
    /// `l2-dsr` backends' neighbours resolved).
    L2NoNeigh = 27,
    /// A new `nat` session found no free NAT port: every candidate port
    /// (`lb_common::nat::PORT_TRIES` of them) of its NAT address toward its
    /// backend is held by a live session: XDP_DROP.
    NatExhausted = 28,
    /// Sent to one of the NAT addresses but no NAT session's reply: XDP_PASS
    /// to the kernel (it may be the host's own traffic).
    NatReplyUnknown = 29,
    /// An ICMP error or a fragment to a `nat` VIP: the NAT translates only
    /// the TCP/UDP packets of a session: XDP_DROP.
    NatUntranslatable = 30,
}

impl Verdict {
    pub const COUNT: u32 = 31;

    pub const ALL: [Verdict; Self::COUNT as usize] = [
        Verdict::NotIp,
        Verdict::NotVip,
        Verdict::Malformed,
        Verdict::Fragment,
        Verdict::Ipv6ExtUnsupported,
        Verdict::NoBackend,
        Verdict::FibNoNeigh,
        Verdict::FibUnreachable,
        Verdict::TooBig,
        Verdict::NoOuterSource,
        Verdict::Tx,
        Verdict::Redirect,
        Verdict::RedirectFailed,
        Verdict::Internal,
        Verdict::VlanMismatch,
        Verdict::SourceDenied,
        Verdict::SourceNotAllowed,
        Verdict::VipRateLimited,
        Verdict::SourceRateLimited,
        Verdict::IcmpTooBigSent,
        Verdict::IcmpTooBigLimited,
        Verdict::IcmpEchoReply,
        Verdict::IcmpEchoLimited,
        Verdict::IcmpToBackend,
        Verdict::IcmpMalformed,
        Verdict::FragmentToBackend,
        Verdict::L2OffLink,
        Verdict::L2NoNeigh,
        Verdict::NatExhausted,
        Verdict::NatReplyUnknown,
        Verdict::NatUntranslatable,
    ];

    /// Stable snake_case name, used as the `reason` label in metrics and the CLI.
    pub const fn as_str(self) -> &'static str {
        match self {
            Verdict::NotIp => "not_ip",
            Verdict::NotVip => "not_vip",
            Verdict::Malformed => "malformed",
            Verdict::Fragment => "fragment",
            Verdict::Ipv6ExtUnsupported => "ipv6_ext_unsupported",
            Verdict::NoBackend => "no_backend",
            Verdict::FibNoNeigh => "fib_no_neigh",
            Verdict::FibUnreachable => "fib_unreachable",
            Verdict::TooBig => "too_big",
            Verdict::NoOuterSource => "no_outer_source",
            Verdict::Tx => "tx",
            Verdict::Redirect => "redirect",
            Verdict::RedirectFailed => "redirect_failed",
            Verdict::Internal => "internal",
            Verdict::VlanMismatch => "vlan_mismatch",
            Verdict::SourceDenied => "source_denied",
            Verdict::SourceNotAllowed => "source_not_allowed",
            Verdict::VipRateLimited => "vip_rate_limited",
            Verdict::SourceRateLimited => "source_rate_limited",
            Verdict::IcmpTooBigSent => "icmp_too_big_sent",
            Verdict::IcmpTooBigLimited => "icmp_too_big_limited",
            Verdict::IcmpEchoReply => "icmp_echo_reply",
            Verdict::IcmpEchoLimited => "icmp_echo_limited",
            Verdict::IcmpToBackend => "icmp_to_backend",
            Verdict::IcmpMalformed => "icmp_malformed",
            Verdict::FragmentToBackend => "fragment_to_backend",
            Verdict::L2OffLink => "l2_off_link",
            Verdict::L2NoNeigh => "l2_no_neigh",
            Verdict::NatExhausted => "nat_exhausted",
            Verdict::NatReplyUnknown => "nat_reply_unknown",
            Verdict::NatUntranslatable => "nat_untranslatable",
        }
    }

    /// The XDP action (`xdp_action` value) the data plane returns for this
    /// reason. Encapsulated packets of the ICMP-error and fragment paths
    /// (`IcmpToBackend`, `FragmentToBackend`) are listed under XDP_TX; like
    /// any encapsulated packet they may instead be redirected, or passed
    /// when the next hop's neighbour is unresolved.
    pub const fn xdp_action(self) -> u32 {
        const XDP_DROP: u32 = 1;
        const XDP_PASS: u32 = 2;
        const XDP_TX: u32 = 3;
        const XDP_REDIRECT: u32 = 4;
        match self {
            Verdict::NotIp
            | Verdict::NotVip
            | Verdict::Malformed
            | Verdict::FibNoNeigh
            | Verdict::NatReplyUnknown => XDP_PASS,
            Verdict::Tx
            | Verdict::IcmpTooBigSent
            | Verdict::IcmpEchoReply
            | Verdict::IcmpToBackend
            | Verdict::FragmentToBackend => XDP_TX,
            Verdict::Redirect => XDP_REDIRECT,
            Verdict::Fragment
            | Verdict::Ipv6ExtUnsupported
            | Verdict::NoBackend
            | Verdict::FibUnreachable
            | Verdict::TooBig
            | Verdict::NoOuterSource
            | Verdict::RedirectFailed
            | Verdict::Internal
            | Verdict::VlanMismatch
            | Verdict::SourceDenied
            | Verdict::SourceNotAllowed
            | Verdict::VipRateLimited
            | Verdict::SourceRateLimited
            | Verdict::IcmpTooBigLimited
            | Verdict::IcmpEchoLimited
            | Verdict::IcmpMalformed
            | Verdict::L2OffLink
            | Verdict::L2NoNeigh
            | Verdict::NatExhausted
            | Verdict::NatUntranslatable => XDP_DROP,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_slot_in_order() {
        for (i, v) in Verdict::ALL.iter().enumerate() {
            assert_eq!(*v as u32, i as u32, "{v:?} is out of order in ALL");
        }
    }

    #[test]
    fn names_are_unique() {
        for (i, a) in Verdict::ALL.iter().enumerate() {
            for b in &Verdict::ALL[i + 1..] {
                assert_ne!(a.as_str(), b.as_str());
            }
        }
    }
}
