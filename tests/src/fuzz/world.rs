//! The fuzzer's world: the real balancer in the fixture's namespace, its maps
//! filled by the reconciler (as the daemon fills them), and around it the
//! routes and neighbours that give every kind of backend path:
//!
//! | net | addresses | reached |
//! |---|---|---|
//! | ingress | 10.0.0.0/24, fd00::/64 on `xlbp0` (MTU 1500) | XDP_TX |
//! | redirect | 10.3.0.0/24, fd03::/64 on `xlbp2` (MTU 1400, a transmit port) | XDP_REDIRECT |
//! | not a port | 10.4.0.0/24, fd04::/64 on `xlbp4` (not a transmit port) | `redirect_failed` |
//! | gateway | 10.5.0.0/24 via 10.0.0.254, fd05::/64 via fd00::254 | XDP_TX to the gateway's MAC |
//! | low MTU | 10.6.0.0/24, fd06::/64 on `xlbp0`, locked route MTU 1300 | XDP_TX |
//! | blackhole | 10.9.0.0/24, fd09::/64 | `fib_unreachable` |
//! | unresolved | 10.0.0.250, fd00::fa on `xlbp0`, no neighbour entries | `fib_no_neigh` |
//!
//! The VIPs ([`VIPS`]) cover IPv4 and IPv6, TCP and UDP, exact ports and
//! port 0 (with an exact port beside it), client affinity, no connection
//! table, drained, unhealthy and failed-open backends, a VIP whose backends
//! are all drained (no table), backends of the other family, and policies
//! (allow and deny ranges, rate limits: [`policy_of`]). VLAN
//! sub-interfaces do not exist on the kernels this runs on (no 8021q), so
//! tagged frames only meet untagged egress interfaces. The route MTU is
//! locked: the kernel applies an unlocked route MTU to the packets a host
//! sends, not to those it forwards (`ip_mtu_from_fib_result`), and
//! `bpf_fib_lookup` checks as forwarding does.
//!
//! The oracle's [`Model`] is built from the same description and from what
//! was read back after installing (interface indexes and MACs, the global
//! configuration in `XLB_CONFIG`).

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use anyhow::{bail, Context, Result};
use lb_common::{
    Gcra, GlobalConfig, Verdict, VipKey, PREFIX_ALLOW, PREFIX_DENY, PROTO_TCP, PROTO_UDP,
    VIP_F_NO_FLOW_TABLE, VIP_F_SOURCE_HASH,
};
use lb_userspace::{
    dataplane::Sizes,
    reconcile::{DesiredBackend, DesiredPolicy, DesiredState, DesiredVip, Prefixes, Reconciler},
};

use super::oracle::{
    BackendModel, Iface, Mode, Model, NatModel, Path, PolicyModel, VerdictSet, VipModel,
};
use crate::{
    balancer_fixture::{backend_mac, BalancerFixture, BALANCER_V4, BALANCER_V6, IFACE},
    netns::NetNs,
};

pub const SIZES: Sizes = Sizes {
    max_vips: 20,
    max_backends: 64,
    // A small prime: tables build in no time; the fuzzer tests packets.
    table_size: 1021,
    flow_table_size: 65536,
    nat_table_size: 4096,
};

/// The outer TTL the fuzzed balancer is configured with: not the default
/// 64, so a data plane that ignored the setting (or copied the client's TTL)
/// shows.
pub const FUZZ_OUTER_TTL: u8 = 77;

/// The outer TTL the installed global configuration asks for.
pub fn configured_outer_ttl(installed: &GlobalConfig) -> u8 {
    installed.outer_ttl()
}

const INGRESS_MAC: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 0x01];
const REDIRECT_IF: (&str, &str) = ("xlbp2", "xlbp3");
const NOT_PORT_IF: (&str, &str) = ("xlbp4", "xlbp5");
const INGRESS_MTU: u32 = 1500;
const REDIRECT_MTU: u32 = 1400;
const LOW_ROUTE_MTU: u32 = 1300;

/// How a backend is reached (see the table above).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Net {
    Ingress,
    Redirect,
    NotPort,
    Gateway,
    LowMtu,
    Blackhole,
    Unresolved,
}

impl Net {
    /// The third IPv4 byte / second IPv6 group of the net's prefix.
    const fn prefix(self) -> u8 {
        match self {
            Net::Ingress | Net::Unresolved => 0,
            Net::Redirect => 3,
            Net::NotPort => 4,
            Net::Gateway => 5,
            Net::LowMtu => 6,
            Net::Blackhole => 9,
        }
    }

    fn addr(self, v6: bool, host: u8) -> IpAddr {
        let host = if self == Net::Unresolved {
            250 + host
        } else {
            host
        };
        if v6 {
            IpAddr::V6(Ipv6Addr::new(
                0xfd00 | u16::from(self.prefix()),
                0,
                0,
                0,
                0,
                0,
                0,
                u16::from(host),
            ))
        } else {
            IpAddr::V4(Ipv4Addr::new(10, self.prefix(), 0, host))
        }
    }
}

#[derive(Clone, Copy)]
struct BackendSpec {
    net: Net,
    v6: bool,
    host: u8,
    weight: u16,
    healthy: bool,
}

const fn be(net: Net, v6: bool, host: u8) -> BackendSpec {
    BackendSpec {
        net,
        v6,
        host,
        weight: 100,
        healthy: true,
    }
}

const fn drained(net: Net, v6: bool, host: u8) -> BackendSpec {
    BackendSpec {
        weight: 0,
        ..be(net, v6, host)
    }
}

const fn failed(net: Net, v6: bool, host: u8) -> BackendSpec {
    BackendSpec {
        healthy: false,
        ..be(net, v6, host)
    }
}

struct VipSpec {
    /// IPv4 10.100.0.N, or IPv6 fd00:100::N.
    v6: bool,
    n: u8,
    port: u16,
    proto: u8,
    flags: u32,
    backends: &'static [BackendSpec],
}

impl VipSpec {
    fn addr(&self) -> IpAddr {
        if self.v6 {
            IpAddr::V6(Ipv6Addr::new(
                0xfd00,
                0x100,
                0,
                0,
                0,
                0,
                0,
                u16::from(self.n),
            ))
        } else {
            IpAddr::V4(Ipv4Addr::new(10, 100, 0, self.n))
        }
    }
}

use Net::*;

const TCP: u8 = PROTO_TCP;
const UDP: u8 = PROTO_UDP;
const AFFINITY: u32 = VIP_F_SOURCE_HASH;
const NO_FLOWS: u32 = VIP_F_NO_FLOW_TABLE;

#[rustfmt::skip]
const VIPS: &[VipSpec] = &[
    VipSpec { v6: false, n: 1, port: 80, proto: TCP, flags: 0, backends: &[
        be(Ingress, false, 10), be(Ingress, false, 11), be(Ingress, false, 12),
        be(Ingress, true, 10), drained(Ingress, false, 13), failed(Ingress, false, 14),
    ] },
    VipSpec { v6: false, n: 1, port: 53, proto: UDP, flags: 0, backends: &[
        be(Ingress, false, 20), be(Ingress, false, 21), be(LowMtu, false, 20),
    ] },
    VipSpec { v6: false, n: 2, port: 0, proto: TCP, flags: 0, backends: &[
        be(Ingress, true, 20), be(Ingress, true, 21),
    ] },
    VipSpec { v6: false, n: 2, port: 443, proto: TCP, flags: 0, backends: &[
        be(Redirect, false, 10), be(Redirect, false, 11),
    ] },
    VipSpec { v6: false, n: 3, port: 0, proto: UDP, flags: AFFINITY, backends: &[
        be(Gateway, false, 10), be(Gateway, false, 11), be(Gateway, true, 10),
    ] },
    VipSpec { v6: false, n: 1, port: 8080, proto: TCP, flags: NO_FLOWS, backends: &[
        be(Ingress, false, 30), be(Redirect, true, 30),
    ] },
    VipSpec { v6: false, n: 4, port: 9000, proto: TCP, flags: 0, backends: &[
        drained(Ingress, false, 40), drained(Ingress, false, 41),
    ] },
    VipSpec { v6: false, n: 4, port: 7000, proto: UDP, flags: 0, backends: &[
        be(Blackhole, false, 9), be(Unresolved, false, 0), be(NotPort, false, 10),
    ] },
    VipSpec { v6: false, n: 5, port: 80, proto: TCP, flags: 0, backends: &[
        failed(Ingress, false, 60), failed(Ingress, false, 61),
    ] },
    VipSpec { v6: true, n: 1, port: 80, proto: TCP, flags: 0, backends: &[
        be(Ingress, true, 50), be(Ingress, true, 51), be(Ingress, false, 50),
    ] },
    // Source-hashed and l2-dsr (`mode_of`): its address's UDP fragments
    // leave as the client sent them, behind new MACs.
    VipSpec { v6: true, n: 1, port: 53, proto: UDP, flags: AFFINITY, backends: &[
        be(Redirect, true, 60), be(Redirect, true, 61),
    ] },
    VipSpec { v6: true, n: 2, port: 0, proto: TCP, flags: AFFINITY, backends: &[
        be(LowMtu, true, 70), be(LowMtu, false, 70), be(Gateway, true, 71),
    ] },
    VipSpec { v6: true, n: 2, port: 0, proto: UDP, flags: NO_FLOWS, backends: &[
        be(Ingress, true, 80), be(Ingress, true, 81),
    ] },
    VipSpec { v6: true, n: 3, port: 9000, proto: TCP, flags: 0, backends: &[
        drained(Ingress, true, 90),
    ] },
    VipSpec { v6: true, n: 3, port: 7000, proto: UDP, flags: 0, backends: &[
        be(Blackhole, true, 9), be(Unresolved, true, 0), be(NotPort, true, 10),
    ] },
    VipSpec { v6: false, n: 6, port: 80, proto: TCP, flags: 0, backends: &[
        be(Gateway, false, 20), be(Ingress, false, 70),
    ] },
    // nat (`mode_of`): TCP to on-link, gateway and low-MTU backends; UDP
    // hashed by source (its address's fragments reach it, untranslatable)
    // to on-link, redirected and unresolved backends.
    VipSpec { v6: false, n: 7, port: 8443, proto: TCP, flags: 0, backends: &[
        be(Ingress, false, 25), be(Gateway, false, 25), be(LowMtu, false, 25),
    ] },
    VipSpec { v6: true, n: 4, port: 5353, proto: UDP, flags: AFFINITY, backends: &[
        be(Ingress, true, 25), be(Redirect, true, 25), be(Unresolved, true, 0),
    ] },
];

/// The forwarding mode of `VIPS[i]`: GUE on two ports for a redirected
/// VIP, one behind blackholes / unresolved / non-port paths and one of
/// mixed families on low-MTU and gateway paths; `l2-dsr` for three VIPs
/// whose backends are all of their family (as the config demands), on
/// ingress, low-MTU, redirect, blackhole, unresolved and non-port paths,
/// and one with a backend behind a gateway (`l2_off_link`);
/// `ipip` for the others.
fn mode_of(i: usize) -> Mode {
    match i {
        3 | 7 => Mode::Gue { port: 6080 },
        11 => Mode::Gue { port: 6081 },
        1 | 10 | 14 | 15 => Mode::L2Dsr,
        16 | 17 => Mode::Nat,
        _ => Mode::Ipip,
    }
}

fn forwarding_of(mode: Mode) -> (lb_common::Forwarding, u16) {
    match mode {
        Mode::Ipip => (lb_common::Forwarding::Ipip, 0),
        Mode::Gue { port } => (lb_common::Forwarding::Gue, port),
        Mode::L2Dsr => (lb_common::Forwarding::L2Dsr, 0),
        Mode::Nat => (lb_common::Forwarding::Nat, 0),
    }
}

/// The policies of some VIPs (the generator's clients are mostly
/// 192.0.2.0-63 and 2001:db8::0-3f, so the ranges split them): an allow
/// list with a deny prefix inside it, a deny list alone, an allow list with
/// a deny prefix on a client-affinity VIP, and rate limits low enough that
/// the fuzzer's SYNs exceed them (per VIP on a VIP without connection
/// table, per /64 source prefix on another).
fn policy_of(v: &VipSpec) -> (DesiredPolicy, PolicyModel) {
    let p = |s: &str| -> IpAddr { s.parse().unwrap_or_else(|e| panic!("{s}: {e}")) };
    type Ranges<'a> = &'a [(&'a str, u8)];
    let (allow, deny, vip_rate, source_rate): (Ranges, Ranges, bool, bool) =
        match (v.v6, v.n, v.port, v.proto) {
            (false, 2, 443, TCP) => (&[("192.0.2.0", 26)], &[("192.0.2.32", 28)], false, false),
            (true, 1, 53, UDP) => (&[], &[("2001:db8::", 123)], false, false),
            (true, 2, 0, TCP) => (
                &[("2001:db8::", 32)],
                &[("2001:db8::20", 124)],
                false,
                false,
            ),
            (false, 1, 8080, TCP) => (&[], &[], true, false),
            (true, 1, 80, TCP) => (&[], &[], false, true),
            _ => (&[], &[], false, false),
        };
    let mut prefixes = Prefixes::new();
    for &(a, len) in deny {
        prefixes.insert((p(a), len), PREFIX_DENY);
    }
    for &(a, len) in allow {
        prefixes.insert((p(a), len), PREFIX_ALLOW);
    }
    let rate = Gcra::new(100, 20);
    let desired = DesiredPolicy {
        prefixes,
        allow_list: !allow.is_empty(),
        vip_rate: vip_rate.then_some(rate),
        source_rate: source_rate.then_some((rate, if v.v6 { 64 } else { 24 })),
    };
    let model = PolicyModel {
        allow: allow.iter().map(|&(a, len)| (p(a), len)).collect(),
        deny: deny.iter().map(|&(a, len)| (p(a), len)).collect(),
        vip_rate,
        source_rate,
    };
    (desired, model)
}

/// The outer sources: the balancer's own addresses on `xlbp0`.
fn global_config() -> GlobalConfig {
    GlobalConfig::new(
        Some(Ipv4Addr::from(BALANCER_V4)),
        Some(Ipv6Addr::from(BALANCER_V6)),
    )
    .with_outer_ttl(FUZZ_OUTER_TTL)
    .with_nat(
        lb_common::NatConfig::new(
            &[Ipv4Addr::from(BALANCER_V4)],
            &[Ipv6Addr::from(BALANCER_V6)],
            FUZZ_NAT_PORTS,
        )
        .unwrap_or_default(),
    )
}

/// The NAT ports of the nat VIPs.
const FUZZ_NAT_PORTS: (u16, u16) = (20000, 30000);

fn desired_state(tx_ports: BTreeSet<u32>) -> DesiredState {
    let vips = VIPS
        .iter()
        .enumerate()
        .map(|(i, v)| DesiredVip {
            key: VipKey::new(v.addr(), v.port, v.proto),
            name: format!("fuzz{}", v.n),
            flags: v.flags,
            udp_idle_timeout_ms: lb_common::DEFAULT_UDP_IDLE_TIMEOUT_MS,
            forwarding: forwarding_of(mode_of(i)).0,
            gue_port: forwarding_of(mode_of(i)).1,
            policy: policy_of(v).0,
            backends: v
                .backends
                .iter()
                .map(|b| DesiredBackend {
                    addr: b.net.addr(b.v6, b.host),
                    weight: b.weight,
                    healthy: b.healthy,
                })
                .collect(),
        })
        .collect();
    DesiredState {
        global: global_config(),
        tx_ports,
        vips,
    }
}

pub struct World {
    pub fixture: BalancerFixture,
    pub model: Model,
}

impl World {
    /// Creates the namespace and links, loads the balancer, installs the
    /// VIPs through the reconciler and reads back what the oracle needs.
    /// Moves this thread into the namespace for the world's lifetime.
    pub fn setup() -> Result<Self> {
        let Some(mut fixture) = BalancerFixture::with_sizes("fuzz", SIZES) else {
            bail!("the fuzzer needs root (BPF, network namespaces)");
        };
        let ns = &fixture.ns;
        // Fixed MACs (veth picks random ones): a seed then gives the same
        // frames, and the same output bytes, on every run.
        ns.ip(&format!(
            "link set {IFACE} address {}",
            mac_text(INGRESS_MAC)
        ));
        fixture.if_mac = INGRESS_MAC;
        let ns = &fixture.ns;
        links_and_routes(ns);

        let ingress = Iface {
            ifindex: fixture.ifindex,
            mac: fixture.if_mac,
            tx_port: false,
        };
        let redirect = Iface {
            ifindex: ns.ifindex(REDIRECT_IF.0),
            mac: ns.mac(REDIRECT_IF.0),
            tx_port: true,
        };
        let not_port = Iface {
            ifindex: ns.ifindex(NOT_PORT_IF.0),
            mac: ns.mac(NOT_PORT_IF.0),
            tx_port: false,
        };
        let path_of = |b: &BackendSpec| {
            let addr = b.net.addr(b.v6, b.host);
            let direct = |iface, mtu| Path::Direct {
                iface,
                next_hop_mac: backend_mac(addr),
                mtu,
            };
            match b.net {
                Ingress => direct(ingress, INGRESS_MTU),
                Redirect => direct(redirect, REDIRECT_MTU),
                NotPort => direct(not_port, INGRESS_MTU),
                LowMtu => direct(ingress, LOW_ROUTE_MTU),
                Gateway => Path::Direct {
                    iface: ingress,
                    next_hop_mac: backend_mac(gateway_of(addr)),
                    mtu: INGRESS_MTU,
                },
                Blackhole => Path::Unreachable,
                Unresolved => Path::Unresolved {
                    iface: ingress,
                    mtu: INGRESS_MTU,
                },
            }
        };
        for b in VIPS.iter().flat_map(|v| v.backends) {
            let dev = match b.net {
                Ingress | LowMtu => IFACE,
                Redirect => REDIRECT_IF.0,
                NotPort => NOT_PORT_IF.0,
                Gateway | Blackhole | Unresolved => continue,
            };
            add_neighbour(&fixture.ns, b.net.addr(b.v6, b.host), dev);
        }

        let desired = desired_state(BTreeSet::from([redirect.ifindex]));
        let mut reconciler = Reconciler::new(SIZES);
        let plan = reconciler
            .plan(&desired)
            .context("planning the fuzzer's VIPs")?;
        reconciler
            .apply(plan, &mut fixture.dp)
            .context("installing the fuzzer's VIPs")?;
        let installed = fixture
            .dp
            .global_config()
            .context("reading back XLB_CONFIG")?;

        let vips = VIPS
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let backends = v
                    .backends
                    .iter()
                    .map(|b| BackendModel {
                        addr: b.net.addr(b.v6, b.host),
                        weight: b.weight,
                        healthy: b.healthy,
                        path: path_of(b),
                        on_link: b.net != Gateway,
                    })
                    .collect();
                VipModel::new(v.addr(), v.port, v.proto, v.flags & AFFINITY != 0, backends)
                    .with_mode(mode_of(i))
                    .with_policy(policy_of(v).1)
            })
            .collect();
        let model = Model {
            ingress,
            vips,
            outer_source_v4: installed.src_v4(),
            outer_source_v6: installed.src_v6(),
            outer_ttl: configured_outer_ttl(&installed),
            vlan_error: VerdictSet::drops_named_like("vlan"),
            no_neigh_drop: VerdictSet::drops_named_like("neigh"),
            nat: NatModel {
                sources: installed
                    .nat()
                    .sources_v4()
                    .map(IpAddr::V4)
                    .chain(installed.nat().sources_v6().map(IpAddr::V6))
                    .collect(),
                ports: installed.nat().port_range(),
            },
        };
        Ok(Self { fixture, model })
    }

    /// Runs the balancer once on `frame` (arriving on `xlbp0`); the output
    /// frame goes into `out`. Returns the action and the output length.
    pub fn run(&mut self, frame: &[u8], out: &mut [u8]) -> Result<(u32, usize)> {
        self.fixture
            .try_run_into(frame, out)
            .with_context(|| format!("BPF_PROG_TEST_RUN on a {}-byte frame", frame.len()))
    }

    /// Packets counted per verdict so far (all CPUs).
    pub fn verdicts(&self) -> Result<[u64; Verdict::COUNT as usize]> {
        self.fixture.dp.verdicts().context("reading XLB_VERDICTS")
    }

    pub fn namespace(&self) -> &str {
        self.fixture.ns.name()
    }
}

/// The other interfaces, the routes (gateway, locked low MTU, blackholes)
/// and the gateways' neighbour entries (see the table at the top).
fn links_and_routes(ns: &NetNs) {
    for (dev, peer, addr4, addr6, mtu) in [
        (
            REDIRECT_IF.0,
            REDIRECT_IF.1,
            "10.3.0.1/24",
            "fd03::1/64",
            REDIRECT_MTU,
        ),
        (
            NOT_PORT_IF.0,
            NOT_PORT_IF.1,
            "10.4.0.1/24",
            "fd04::1/64",
            INGRESS_MTU,
        ),
    ] {
        ns.ip(&format!(
            "link add {dev} mtu {mtu} type veth peer name {peer}"
        ));
        ns.ip(&format!(
            "link set {dev} address {}",
            mac_text(fixed_mac(dev))
        ));
        ns.ip(&format!("addr add {addr4} dev {dev}"));
        ns.ip(&format!("addr add {addr6} dev {dev} nodad"));
        ns.ip(&format!("link set {dev} up"));
        ns.ip(&format!("link set {peer} up"));
    }
    ns.ip(&format!("link set {IFACE} mtu {INGRESS_MTU}"));
    ns.ip(&format!("route add 10.5.0.0/24 via 10.0.0.254 dev {IFACE}"));
    ns.ip(&format!("-6 route add fd05::/64 via fd00::254 dev {IFACE}"));
    ns.ip(&format!(
        "route add 10.6.0.0/24 dev {IFACE} mtu lock {LOW_ROUTE_MTU}"
    ));
    ns.ip(&format!(
        "-6 route add fd06::/64 dev {IFACE} mtu lock {LOW_ROUTE_MTU}"
    ));
    ns.ip("route add blackhole 10.9.0.0/24");
    ns.ip("-6 route add blackhole fd09::/64");
    for family_member in [Gateway.addr(false, 1), Gateway.addr(true, 1)] {
        add_neighbour(ns, gateway_of(family_member), IFACE);
    }
}

/// The gateway of a gateway-net address (10.0.0.254 / fd00::254).
fn gateway_of(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::new(10, 0, 0, 254)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x254)),
    }
}

/// The fixed MAC of the fuzzer's other balancer interfaces: 02:aa:..:<n>
/// for `xlbp<n>`.
fn fixed_mac(dev: &str) -> [u8; 6] {
    let n = dev.trim_start_matches("xlbp").parse().unwrap_or(0xff);
    [0x02, 0xaa, 0, 0, 0, n]
}

fn mac_text(mac: [u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}

fn add_neighbour(ns: &NetNs, addr: IpAddr, dev: &str) {
    let mac = mac_text(backend_mac(addr));
    ns.ip(&format!(
        "neigh replace {addr} lladdr {mac} dev {dev} nud permanent"
    ));
}
