//! How the balancer hands a VIP's packets to the chosen backend (`forwarding`
//! in a `[[vip]]`), and the pure parts of each mode's output format.
//!
//! | mode | on the wire | the backend needs |
//! |---|---|---|
//! | `ipip` | outer IPv4/IPv6 header, protocol 4 / 41 | decapsulation, the VIP on `lo` |
//! | `gue` | outer IP + UDP (GUE variant 1: the inner IP packet right after the UDP header) | decapsulation on the GUE port, the VIP on `lo` |
//! | `l2-dsr` | the client's packet, only the MACs rewritten | to be on-link, the VIP on `lo` (ARP silenced) |
//! | `nat` | the client's packet to the backend's address, from a NAT address and port of the balancer (`crate::nat`) | nothing: replies come back through the balancer |
//!
//! The data plane reads the mode from `VipInfo::forwarding` as one of the
//! `FORWARDING_*` bytes; userspace speaks [`Forwarding`].

/// IP-in-IP (the default).
pub const FORWARDING_IPIP: u8 = 0;
/// UDP encapsulation, GUE variant 1 ("direct IP encapsulation").
pub const FORWARDING_GUE: u8 = 1;
/// Layer-2 direct server return: only the MACs change.
pub const FORWARDING_L2_DSR: u8 = 2;
/// Full NAT: destination rewritten to the backend, source to one of the
/// balancer's NAT addresses and a port it allocates; replies are
/// translated back (`crate::nat`).
pub const FORWARDING_NAT: u8 = 3;

/// A VIP's forwarding mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Forwarding {
    #[default]
    Ipip,
    Gue,
    L2Dsr,
    Nat,
}

impl Forwarding {
    pub const ALL: [Forwarding; 4] = [
        Forwarding::Ipip,
        Forwarding::Gue,
        Forwarding::L2Dsr,
        Forwarding::Nat,
    ];

    /// The byte `VipInfo::forwarding` holds.
    pub const fn to_wire(self) -> u8 {
        match self {
            Forwarding::Ipip => FORWARDING_IPIP,
            Forwarding::Gue => FORWARDING_GUE,
            Forwarding::L2Dsr => FORWARDING_L2_DSR,
            Forwarding::Nat => FORWARDING_NAT,
        }
    }

    /// The mode a `VipInfo::forwarding` byte names (`None` for a byte no
    /// mode has: the data plane drops such a VIP's packets as `internal`).
    pub const fn from_wire(b: u8) -> Option<Self> {
        match b {
            FORWARDING_IPIP => Some(Forwarding::Ipip),
            FORWARDING_GUE => Some(Forwarding::Gue),
            FORWARDING_L2_DSR => Some(Forwarding::L2Dsr),
            FORWARDING_NAT => Some(Forwarding::Nat),
            _ => None,
        }
    }

    /// The config's spelling (`forwarding = "l2-dsr"`), also the metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Forwarding::Ipip => "ipip",
            Forwarding::Gue => "gue",
            Forwarding::L2Dsr => "l2-dsr",
            Forwarding::Nat => "nat",
        }
    }

    /// Whether packets reach the backend inside an outer IP header (whose
    /// source is `outer_source_v4`/`_v6`).
    pub const fn encapsulates(self) -> bool {
        matches!(self, Forwarding::Ipip | Forwarding::Gue)
    }

    /// Bytes the mode adds in front of the client's IP packet toward a
    /// backend of family `backend_v4` (IPv4) or IPv6.
    pub const fn overhead(self, backend_v4: bool) -> usize {
        let ip = if backend_v4 { 20 } else { 40 };
        match self {
            Forwarding::Ipip => ip,
            Forwarding::Gue => ip + gue::UDP_HEADER_LEN,
            Forwarding::L2Dsr | Forwarding::Nat => 0,
        }
    }

    /// Whether the backend sees the client's address as the packet's
    /// source (every mode but `nat`, whose backends see a NAT address).
    pub const fn keeps_client_address(self) -> bool {
        !matches!(self, Forwarding::Nat)
    }
}

/// GUE as xlb sends it: variant 1 of draft-ietf-intarea-gue ("direct IP
/// encapsulation", what Katran sends): an outer IP header, a UDP header to
/// the GUE port, then the client's IP packet with no GUE header at all. The
/// receiver tells the inner family from its first nibble (4 or 6; both have
/// the top bits `01`, which is what marks variant 1). Linux's `fou` module in
/// `gue` mode decapsulates it on one port for both inner families.
pub mod gue {
    /// The destination port when the config does not say (Katran's).
    pub const DEFAULT_PORT: u16 = 6080;
    pub const UDP_HEADER_LEN: usize = 8;
    /// Source ports come from the dynamic range (RFC 6335), as RFC 8086
    /// recommends for UDP encapsulations: `0xc000 | 14 bits of the hash`.
    pub const SOURCE_PORT_BASE: u16 = 0xc000;
    pub const SOURCE_PORT_MASK: u32 = 0x3fff;

    /// The outer UDP source port of a flow with flow hash `hash`: constant
    /// for the flow (its packets stay in order on one path), different
    /// between flows, so NICs (RSS) and fabrics (ECMP) that hash the outer
    /// 5-tuple spread flows to one backend over queues and paths.
    #[inline(always)]
    pub const fn source_port(hash: u32) -> u16 {
        SOURCE_PORT_BASE | (hash & SOURCE_PORT_MASK) as u16
    }

    /// The inner family a GUE variant 1 payload starts with (its first
    /// byte), as `FAMILY_V4`/`FAMILY_V6`; `None` for anything else
    /// (a variant 0 GUE header, which xlb does not decapsulate).
    #[inline(always)]
    pub const fn inner_family(first_byte: u8) -> Option<u8> {
        match first_byte >> 4 {
            4 => Some(crate::ip::FAMILY_V4),
            6 => Some(crate::ip::FAMILY_V6),
            _ => None,
        }
    }
}

/// Whether mode `forwarding` puts the flow hash in the outer header of a
/// packet toward a backend of `family`: GUE's UDP source port, the IPv6
/// outer header's flow label (receive-side scaling and ECMP on the way see
/// distinct flows). IPv4 IP-in-IP, l2-dsr and nat carry none, so a packet
/// of theirs that follows its connection-table entry skips the hash.
#[inline(always)]
pub const fn outer_uses_hash(forwarding: u8, family: u8) -> bool {
    forwarding == FORWARDING_GUE
        || (forwarding == FORWARDING_IPIP && family == crate::ip::FAMILY_V6)
}

/// [`Forwarding::overhead`] for the data plane: the bytes the mode of a
/// `FORWARDING_*` byte puts in front of the client's IP packet toward a
/// backend of `family` (`FAMILY_V4`/`_V6`; anything but a mode's byte is
/// refused before this matters). Arithmetic only, no branch: the verifier
/// then holds one range rather than a constant per mode and family, and
/// checks the code that follows once.
#[inline(always)]
pub const fn overhead_of(forwarding: u8, family: u8) -> usize {
    const _: () = assert!(
        crate::ip::FAMILY_V4 & 2 == 0
            && crate::ip::FAMILY_V6 & 2 == 2
            && FORWARDING_IPIP & 3 == 0
            && FORWARDING_GUE & 3 == 1
            && FORWARDING_L2_DSR & 2 == 2
            && FORWARDING_NAT & 2 == 2
            && gue::UDP_HEADER_LEN == 8
    );
    // 20 or 40 bytes of IP header, 8 more for GUE (bit 0 of its byte).
    let encap = 20 + (family & 2) as usize * 10 + (((forwarding & 1) as usize) << 3);
    // l2-dsr and nat (bit 1): shifted right by 8 bits, which leaves 0 of a value
    // under 64.
    (encap >> (((forwarding & 2) as usize) << 2)) & 0x3f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ip::{FAMILY_V4, FAMILY_V6};

    #[test]
    fn the_data_planes_overhead_is_each_modes() {
        for mode in Forwarding::ALL {
            for (family, v4) in [(FAMILY_V4, true), (FAMILY_V6, false)] {
                assert_eq!(
                    overhead_of(mode.to_wire(), family),
                    mode.overhead(v4),
                    "{mode:?} toward IPv{}",
                    if v4 { 4 } else { 6 }
                );
            }
        }
    }

    #[test]
    fn only_gue_and_ipv6_ip_in_ip_carry_the_flow_hash() {
        let carries = |mode: Forwarding, family| outer_uses_hash(mode.to_wire(), family);
        assert!(carries(Forwarding::Gue, FAMILY_V4) && carries(Forwarding::Gue, FAMILY_V6));
        assert!(carries(Forwarding::Ipip, FAMILY_V6));
        assert!(!carries(Forwarding::Ipip, FAMILY_V4));
        for family in [FAMILY_V4, FAMILY_V6] {
            assert!(!carries(Forwarding::L2Dsr, family) && !carries(Forwarding::Nat, family));
        }
    }

    #[test]
    fn wire_bytes_round_trip_and_unknown_bytes_are_none() {
        for f in Forwarding::ALL {
            assert_eq!(Forwarding::from_wire(f.to_wire()), Some(f));
        }
        assert_eq!(Forwarding::from_wire(4), None);
        assert_eq!(Forwarding::default().to_wire(), 0, "ipip is the zero byte");
        assert_eq!(
            Forwarding::ALL.map(Forwarding::as_str),
            ["ipip", "gue", "l2-dsr", "nat"]
        );
    }

    #[test]
    fn overheads() {
        assert_eq!(Forwarding::Ipip.overhead(true), 20);
        assert_eq!(Forwarding::Ipip.overhead(false), 40);
        assert_eq!(Forwarding::Gue.overhead(true), 28);
        assert_eq!(Forwarding::Gue.overhead(false), 48);
        assert_eq!(Forwarding::L2Dsr.overhead(true), 0);
        assert_eq!(Forwarding::L2Dsr.overhead(false), 0);
        assert_eq!(Forwarding::Nat.overhead(true), 0);
        assert_eq!(Forwarding::Nat.overhead(false), 0);
        assert!(!Forwarding::Nat.keeps_client_address() && Forwarding::Gue.keeps_client_address());
        assert!(Forwarding::Gue.encapsulates() && !Forwarding::L2Dsr.encapsulates());
    }

    #[test]
    fn gue_source_ports_are_dynamic_and_follow_the_hash() {
        for h in [0, 1, 0x3fff, 0x4000, 0xdead_beef, u32::MAX] {
            let p = gue::source_port(h);
            assert!(p >= 49152, "{h:#x} -> {p}");
            assert_eq!(u32::from(p & 0x3fff), h & 0x3fff);
        }
        // Flows that differ only in a port get different source ports
        // (the hash spreads them): RSS at the backend sees distinct flows.
        let key = |sport| {
            crate::FlowKey::new(
                core::net::IpAddr::from([192, 0, 2, 1]),
                sport,
                core::net::IpAddr::from([10, 100, 0, 1]),
                80,
                crate::PROTO_TCP,
            )
            .expect("same family")
        };
        let mut seen = [false; 16384];
        let mut distinct = 0;
        for sport in 40000..41000 {
            let p = gue::source_port(crate::flow_hash(crate::DEFAULT_HASH_SEED, &key(sport)));
            let slot = usize::from(p & 0x3fff);
            if !seen[slot] {
                seen[slot] = true;
                distinct += 1;
            }
        }
        assert!(distinct > 950, "1000 flows on {distinct} source ports");
    }

    #[test]
    fn gue_inner_family_is_the_first_nibble() {
        assert_eq!(gue::inner_family(0x45), Some(FAMILY_V4));
        assert_eq!(gue::inner_family(0x4f), Some(FAMILY_V4));
        assert_eq!(gue::inner_family(0x60), Some(FAMILY_V6));
        // A GUE variant 0 header starts with 00.
        assert_eq!(gue::inner_family(0x00), None);
        assert_eq!(gue::inner_family(0x20), None);
        assert_eq!(gue::inner_family(0x50), None);
    }
}
