//! What the oracle knows: the configuration the fuzzer installed (VIPs,
//! backends with weight and health, outer sources and TTL) and how the
//! balancer host reaches each backend (the routes and neighbours the fuzzer
//! created). Nothing here is read from the data plane's decision code.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use lb_common::Verdict;

/// XDP actions (`enum xdp_action`).
pub const XDP_ABORTED: u32 = 0;
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;
pub const XDP_REDIRECT: u32 = 4;

pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

/// A set of verdict reasons (bit `v as u32`).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct VerdictSet(u32);

impl VerdictSet {
    pub const EMPTY: Self = Self(0);
    /// Every reason: what a frame already reported as a violation may be
    /// counted under (it is not reported twice).
    pub const ALL: Self = Self((1 << Verdict::COUNT) - 1);

    pub const fn of(v: Verdict) -> Self {
        Self(1 << v as u32)
    }

    pub const fn with(self, v: Verdict) -> Self {
        Self(self.0 | 1 << v as u32)
    }

    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    pub const fn contains(self, v: Verdict) -> bool {
        self.0 & (1 << v as u32) != 0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The only reason in the set, if it has exactly one.
    pub fn single(self) -> Option<Verdict> {
        (self.0.count_ones() == 1).then(|| Verdict::ALL[self.0.trailing_zeros() as usize])
    }

    pub fn iter(self) -> impl Iterator<Item = Verdict> {
        Verdict::ALL.into_iter().filter(move |v| self.contains(*v))
    }

    /// The drop reasons whose name contains `word`: how the oracle accepts a
    /// reason the issue asks for but does not name (an explicit VLAN error
    /// counter), whatever the data plane ends up calling it.
    pub fn drops_named_like(word: &str) -> Self {
        Verdict::ALL
            .into_iter()
            .filter(|v| v.as_str().contains(word) && v.xdp_action() == XDP_DROP)
            .fold(Self::EMPTY, Self::with)
    }
}

impl std::fmt::Debug for VerdictSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::fmt::Display for VerdictSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.iter().map(Verdict::as_str).collect();
        write!(f, "{{{}}}", names.join(", "))
    }
}

/// A 802.1Q / 802.1ad tag as it appears on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tag {
    pub tpid: u16,
    /// PCP (3 bits), DEI (1), VLAN id (12).
    pub tci: u16,
}

/// An interface of the balancer host that backends are reached through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Iface {
    pub ifindex: u32,
    pub mac: [u8; 6],
    /// Whether it is in `XLB_TX_PORTS` (`egress_interfaces`): frames may be
    /// redirected to it. The ingress interface itself is reached by XDP_TX.
    pub tx_port: bool,
}

/// How the host reaches a backend (its route and neighbour).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// Out of `iface` to the next hop's MAC; `mtu` is the route's (or the
    /// device's) MTU, which the encapsulated packet must fit.
    Direct {
        iface: Iface,
        next_hop_mac: [u8; 6],
        mtu: u32,
    },
    /// Routed out of `iface`, but no neighbour entry for the next hop.
    Unresolved { iface: Iface, mtu: u32 },
    /// A blackhole route: no way to the backend.
    Unreachable,
}

impl Path {
    pub fn mtu(&self) -> Option<u32> {
        match *self {
            Path::Direct { mtu, .. } | Path::Unresolved { mtu, .. } => Some(mtu),
            Path::Unreachable => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendModel {
    pub addr: IpAddr,
    pub weight: u16,
    pub healthy: bool,
    pub path: Path,
    /// Whether the route to it has no gateway (the backend itself is the
    /// next hop): what `l2-dsr` needs, else it drops (`l2_off_link`).
    pub on_link: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VipModel {
    pub addr: IpAddr,
    /// 0: every port.
    pub port: u16,
    pub proto: u8,
    /// Balanced by the source address alone (client affinity).
    pub source_hash: bool,
    pub backends: Vec<BackendModel>,
    /// Indexes into `backends` of those new connections may go to.
    pub eligible: Vec<usize>,
    /// How packets reach the backends.
    pub mode: Mode,
    /// Source ranges and new-connection limits.
    pub policy: PolicyModel,
}

/// A VIP's forwarding mode, as the README's "Choosing a forwarding mode"
/// describes what each puts on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Outer IP header, protocol 4 / 41.
    Ipip,
    /// Outer IP header, a UDP header to `port` (source port from the
    /// dynamic range, checksum 0), then the client's packet.
    Gue { port: u16 },
    /// The client's packet, only the MACs rewritten; unresolved backends
    /// are dropped (`l2_no_neigh`), never handed to the kernel.
    L2Dsr,
    /// Full NAT: the client's packet to the backend's address from a NAT
    /// address ([`NatModel`]) and a port of its range, the rest unchanged,
    /// checksums updated; ICMP errors and fragments are not translated.
    Nat,
}

/// Full NAT's settings (`[nat]`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NatModel {
    pub sources: Vec<IpAddr>,
    /// NAT ports, both ends included.
    pub ports: (u16, u16),
}

impl NatModel {
    pub fn is_source(&self, addr: IpAddr) -> bool {
        self.sources.contains(&addr)
    }
}

impl Mode {
    /// Bytes the mode puts in front of the client's IP packet toward
    /// `backend`.
    pub fn overhead(self, backend: IpAddr) -> usize {
        match self {
            Mode::Ipip => outer_header_len(backend),
            Mode::Gue { .. } => outer_header_len(backend) + 8,
            Mode::L2Dsr | Mode::Nat => 0,
        }
    }

    /// Whether the mode builds an outer header (and needs an outer source).
    pub fn encapsulates(self) -> bool {
        !matches!(self, Mode::L2Dsr | Mode::Nat)
    }
}

/// A VIP's policy as the README states it: a source in any deny prefix is
/// refused (deny wins); with an allow list, a source in none of its prefixes
/// is refused; every packet is checked. Rate limits refuse only new
/// connections (for TCP a bare SYN), never other packets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyModel {
    pub allow: Vec<(IpAddr, u8)>,
    pub deny: Vec<(IpAddr, u8)>,
    pub vip_rate: bool,
    pub source_rate: bool,
}

impl PolicyModel {
    /// Why `src` may not reach the VIP at all, if it may not.
    pub fn refusal(&self, src: IpAddr) -> Option<Verdict> {
        if self.deny.iter().any(|&(p, len)| in_prefix(src, p, len)) {
            Some(Verdict::SourceDenied)
        } else if !self.allow.is_empty()
            && !self.allow.iter().any(|&(p, len)| in_prefix(src, p, len))
        {
            Some(Verdict::SourceNotAllowed)
        } else {
            None
        }
    }

    /// The drops a new connection of a source the ranges let through may
    /// meet (its buckets may be empty).
    pub fn rate_drops(&self) -> VerdictSet {
        let mut v = VerdictSet::EMPTY;
        if self.vip_rate {
            v = v.with(Verdict::VipRateLimited);
        }
        if self.source_rate {
            v = v.with(Verdict::SourceRateLimited);
        }
        v
    }
}

/// Whether `addr` lies in `prefix/len` (of the same family).
fn in_prefix(addr: IpAddr, prefix: IpAddr, len: u8) -> bool {
    match (addr, prefix) {
        (IpAddr::V4(a), IpAddr::V4(p)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(a) & mask == u32::from(p) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(p)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(a) & mask == u128::from(p) & mask
        }
        _ => false,
    }
}

impl VipModel {
    pub fn new(
        addr: IpAddr,
        port: u16,
        proto: u8,
        source_hash: bool,
        backends: Vec<BackendModel>,
    ) -> Self {
        let eligible = eligible(&backends);
        Self {
            addr,
            port,
            proto,
            source_hash,
            backends,
            eligible,
            mode: Mode::Ipip,
            policy: PolicyModel::default(),
        }
    }

    /// The same VIP forwarding by `mode`.
    pub fn with_mode(self, mode: Mode) -> Self {
        Self { mode, ..self }
    }

    /// The same VIP with `policy`.
    pub fn with_policy(self, policy: PolicyModel) -> Self {
        Self { policy, ..self }
    }

    pub fn eligible(&self) -> impl Iterator<Item = &BackendModel> {
        self.eligible.iter().map(|&i| &self.backends[i])
    }

    pub fn describe(&self) -> String {
        let proto = match self.proto {
            PROTO_TCP => "tcp",
            PROTO_UDP => "udp",
            _ => "?",
        };
        match self.addr {
            IpAddr::V4(a) => format!("{a}:{}/{proto}", self.port),
            IpAddr::V6(a) => format!("[{a}]:{}/{proto}", self.port),
        }
    }
}

/// The README's rule, restated: backends with a weight take new connections;
/// of those only the healthy ones, unless none is healthy (fail open).
fn eligible(backends: &[BackendModel]) -> Vec<usize> {
    let weighted = || backends.iter().enumerate().filter(|(_, b)| b.weight > 0);
    let any_healthy = weighted().any(|(_, b)| b.healthy);
    weighted()
        .filter(|(_, b)| b.healthy || !any_healthy)
        .map(|(i, _)| i)
        .collect()
}

/// Everything the oracle judges against.
#[derive(Clone, Debug)]
pub struct Model {
    /// The interface frames arrive on.
    pub ingress: Iface,
    pub vips: Vec<VipModel>,
    pub outer_source_v4: Option<Ipv4Addr>,
    pub outer_source_v6: Option<Ipv6Addr>,
    /// TTL / hop limit of every outer header.
    pub outer_ttl: u8,
    /// Drop reasons of a tagged frame whose backend is not on its VLAN (the
    /// model has no VLAN devices: every tagged frame with a resolved backend).
    pub vlan_error: VerdictSet,
    /// Drop reasons accepted for a backend whose neighbour is unresolved (the
    /// issue allows dropping "only if nothing else works").
    pub no_neigh_drop: VerdictSet,
    /// Full NAT's addresses and ports.
    pub nat: NatModel,
}

impl Model {
    /// Whether `addr` is the address of any VIP (any port or protocol).
    pub fn is_vip_address(&self, addr: IpAddr) -> bool {
        self.vips.iter().any(|v| v.addr == addr)
    }

    /// The VIP a packet to `addr:port/proto` is for: the exact port first,
    /// then the address's every-port VIP.
    pub fn vip_for(&self, addr: IpAddr, port: u16, proto: u8) -> Option<usize> {
        let find = |p: u16| {
            self.vips
                .iter()
                .position(|v| v.addr == addr && v.proto == proto && v.port == p)
        };
        find(port).or_else(|| find(0))
    }

    /// The VIP that takes fragments of `proto` sent to `addr`: the
    /// address's only VIP of that protocol, when it hashes the source.
    pub fn fragment_vip(&self, addr: IpAddr, proto: u8) -> Option<usize> {
        let mut of_proto = self
            .vips
            .iter()
            .enumerate()
            .filter(|(_, v)| v.addr == addr && v.proto == proto);
        let (i, v) = of_proto.next()?;
        (of_proto.next().is_none() && v.source_hash).then_some(i)
    }

    /// Whether echo requests to `addr` are answered: the fuzzer's VIPs
    /// keep the default (`ping = true`), so every VIP address is.
    pub fn ping(&self, addr: IpAddr) -> bool {
        self.is_vip_address(addr)
    }

    pub fn outer_source(&self, backend: IpAddr) -> Option<IpAddr> {
        match backend {
            IpAddr::V4(_) => self.outer_source_v4.map(IpAddr::V4),
            IpAddr::V6(_) => self.outer_source_v6.map(IpAddr::V6),
        }
    }
}

/// Bytes of the outer IP header toward `backend`.
pub fn outer_header_len(backend: IpAddr) -> usize {
    match backend {
        IpAddr::V4(_) => 20,
        IpAddr::V6(_) => 40,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(last: u8, weight: u16, healthy: bool) -> BackendModel {
        BackendModel {
            addr: IpAddr::from([10, 0, 0, last]),
            weight,
            healthy,
            path: Path::Unreachable,
            on_link: true,
        }
    }

    #[test]
    fn eligible_backends_follow_weight_and_health_with_fail_open() {
        let v = eligible(&[
            backend(1, 100, true),
            backend(2, 0, true),
            backend(3, 100, false),
        ]);
        assert_eq!(v, [0]);
        let all_failed = eligible(&[backend(1, 100, false), backend(2, 5, false)]);
        assert_eq!(all_failed, [0, 1], "fail open");
        assert!(eligible(&[backend(1, 0, true)]).is_empty());
    }

    #[test]
    fn verdict_sets() {
        let s = VerdictSet::of(Verdict::NotVip).with(Verdict::Malformed);
        assert!(s.contains(Verdict::NotVip) && !s.contains(Verdict::Tx));
        assert_eq!(s.single(), None);
        assert_eq!(VerdictSet::of(Verdict::Tx).single(), Some(Verdict::Tx));
        assert_eq!(s.to_string(), "{not_vip, malformed}");
        assert_eq!(
            VerdictSet::drops_named_like("redirect"),
            VerdictSet::of(Verdict::RedirectFailed),
            "only drop reasons"
        );
        assert_eq!(VerdictSet::ALL.iter().count(), Verdict::COUNT as usize);
    }

    #[test]
    fn port_zero_vips_come_after_exact_ports() {
        let a = IpAddr::from([10, 100, 0, 1]);
        let vip = |port| VipModel::new(a, port, PROTO_TCP, false, vec![]);
        let m = Model {
            ingress: Iface {
                ifindex: 1,
                mac: [0; 6],
                tx_port: false,
            },
            vips: vec![vip(0), vip(80)],
            outer_source_v4: None,
            outer_source_v6: None,
            outer_ttl: 64,
            vlan_error: VerdictSet::EMPTY,
            no_neigh_drop: VerdictSet::EMPTY,
            nat: Default::default(),
        };
        assert_eq!(m.vip_for(a, 80, PROTO_TCP), Some(1));
        assert_eq!(m.vip_for(a, 81, PROTO_TCP), Some(0));
        assert_eq!(m.vip_for(a, 80, PROTO_UDP), None);
        assert!(m.is_vip_address(a));
        assert!(!m.is_vip_address(IpAddr::from([10, 100, 0, 2])));
    }
}
