//! The benchmark scenarios: the VIPs the control plane installs and the frames
//! each scenario sends, with what the first run must return (so a broken setup
//! fails instead of reporting a fast number).
//!
//! VIPs (100 backends each, weight 100, table of 65537 slots):
//! - 10.100.0.1 TCP 80: the flow-table path (`v4_tcp_flow_hit`, `_flow_miss`)
//! - 10.100.0.1 TCP 81, `VIP_F_NO_FLOW_TABLE`: always Maglev (`v4_tcp_new_flow`)
//! - 10.100.0.1 UDP 53 (`v4_udp`)
//! - fd00:100::1 TCP 80 (`v6_tcp_flow_hit`)
//! - 10.100.0.3 TCP 80, backends on VLAN 100 (`v4_tcp_vlan`: a tagged packet
//!   leaves only on its own VLAN)
//! - 10.100.0.4 TCP 80 with a policy: 1,000 source prefixes (allow and deny)
//!   and both rate limits, so high they never refuse (`v4_tcp_policy_hit`,
//!   `v4_tcp_syn_policy`: the policy's cost next to `v4_tcp_flow_hit` and
//!   `v4_tcp_syn`)
//! - 10.100.0.5 TCP 80, `forwarding = "gue"` (`v4_tcp_gue`: IPv4 + UDP
//!   pushed, 28 bytes)
//! - 10.100.0.6 TCP 80, `forwarding = "l2-dsr"` (`v4_tcp_l2_dsr`: only the
//!   MACs rewritten)
//! - 10.100.0.7 TCP 80, `forwarding = "nat"`, one backend (10.0.0.10):
//!   `v4_tcp_nat` (an established session: tail call, session lookup,
//!   rewrite with checksums) and `v4_tcp_nat_reply` (the backend's reply to
//!   that session, from 10.0.0.10:80 to the NAT address and port: tail
//!   call, reverse lookup, uncached FIB lookup toward the client, rewrite);
//!   the reply scenario runs after the forward one, which made the session
//!
//! SYN scenarios (`v4_tcp_syn`, `_policy`) cycle through 4,096 spoofed
//! sources and ports: a bare SYN is balanced without a connection-table
//! lookup or insert; in live mode `v4_tcp_syn` is the spoofed SYN flood
//! one core absorbs. `v4_tcp_flow_miss` sends ACKs of connections the table
//! has never seen (lookup miss, Maglev, LRU insert); flood mode is off in
//! the benchmarks (`env::global_config`) so that every one inserts.
//!
//! The essential-work floors `floor_lb` and `floor_lb16` (`xlb_floor_lb`,
//! `xlb_floor_lb16`: VIP lookup, connection lookup with a 40- or 16-byte key,
//! backend read, IP-in-IP push, XDP_TX; see `lb_common::floor_lb`) and
//! `floor_entry` (`xlb_floor_entry`: the same in xlb's order, the VIP
//! through the connection's backend instead of its own hash lookup) and
//! `floor_min` (`xlb_floor_min`: the least of them, a 16-byte key's entry,
//! its backend, the backend's VIP from an array, the push) and `floor_full`
//! (`xlb_floor_full`: `floor_entry` plus every duty the balancer has on
//! that path, written straight for it) get
//! `v4_tcp_flow_hit`'s packet, their own maps filled for its flow
//! ([`floor_lb_flow`]); `floor_min6` (`xlb_floor_min6`, the same for IPv6)
//! and `floor_full6` (`xlb_floor_full` on it) get `v6_tcp_flow_hit`'s
//! ([`floor_lb_flow6`]).
//!
//! IPv4 backends are 10.0.0.10-109 (shared by the IPv4 VIPs, each with its own
//! backend ids), IPv6 ones fd00::100-163, all on `xlbl0`'s subnets; the VLAN
//! VIP's are 10.1.100.10-109, behind `xlbl0`'s VLAN 100 (`env::VLAN_DEV`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use lb_common::{
    floor_lb::{self, FloorLbHop},
    program_names, Forwarding, Gcra, Verdict, VipKey, PREFIX_ALLOW, PREFIX_DENY, PROTO_TCP,
    PROTO_UDP, VIP_F_NO_FLOW_TABLE,
};
use lb_userspace::reconcile::{DesiredBackend, DesiredPolicy, DesiredState, DesiredVip, Prefixes};

use super::{
    env::{global_config, Program},
    testrun::{XDP_PASS, XDP_TX},
};
use crate::{
    balancer_fixture::{backend_mac, BALANCER_V4, BALANCER_V6},
    floor_lb::{OneFlow, OneFlow6},
    frames::{Frame, TCP_ACK, TCP_PSH, TCP_SYN},
};

pub const BACKENDS_PER_VIP: u32 = 100;

pub const CLIENT4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);
pub const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7);
pub const VIP4: Ipv4Addr = Ipv4Addr::new(10, 100, 0, 1);
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x100, 0, 0, 0, 0, 0, 1);
/// The VIP whose backends are on VLAN 100.
pub const VIP4_VLAN: Ipv4Addr = Ipv4Addr::new(10, 100, 0, 3);
/// The VIP with 1,000 source prefixes and rate limits.
pub const VIP4_POLICY: Ipv4Addr = Ipv4Addr::new(10, 100, 0, 4);
/// Source prefixes of the policy VIP.
pub const POLICY_PREFIXES: usize = 1_000;
/// The GUE VIP and the l2-dsr VIP.
pub const VIP4_GUE: Ipv4Addr = Ipv4Addr::new(10, 100, 0, 5);
pub const VIP4_L2_DSR: Ipv4Addr = Ipv4Addr::new(10, 100, 0, 6);
/// The nat VIP (one backend, so the reply's source is known).
pub const VIP4_NAT: Ipv4Addr = Ipv4Addr::new(10, 100, 0, 7);
/// An address next to the VIP that no VIP uses.
pub const NON_VIP4: Ipv4Addr = Ipv4Addr::new(10, 100, 0, 2);
pub const PORT_TCP: u16 = 80;
pub const PORT_TCP_NO_FLOWS: u16 = 81;
pub const PORT_UDP: u16 = 53;
const CLIENT_PORT: u16 = 40000;
/// Distinct source ports `v4_tcp_new_flow` cycles through (spreads the Maglev
/// lookups over the table as new connections do).
pub const NEW_FLOW_TUPLES: u16 = 4096;
/// 60-byte IPv4/TCP frames (the minimum Ethernet frame without FCS).
const TCP_PAYLOAD: &[u8] = b"xlbxlb";

/// Scenario names in display order.
pub const ORDER: &[&str] = &[
    "floor_pass",
    "floor_tx",
    "floor_tx_recycled",
    "floor_lb",
    "floor_lb16",
    "floor_entry",
    "floor_min",
    "floor_min6",
    "floor_full",
    "floor_full6",
    "non_vip",
    "v4_tcp_flow_hit",
    "v4_tcp_new_flow",
    "v4_tcp_flow_miss",
    "v4_tcp_syn",
    "v4_tcp_syn_policy",
    "v4_tcp_policy_hit",
    "v6_tcp_flow_hit",
    "v4_udp",
    "v4_tcp_vlan",
    "v4_tcp_gue",
    "v4_tcp_l2_dsr",
    "v4_tcp_nat",
    "v4_tcp_nat_reply",
];

/// What the connection-table counters of the scenario's VIP must show over the
/// measured calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NewFlows {
    /// Not a VIP scenario.
    NotApplicable,
    /// None: every packet hit the flow table, or was a SYN to a VIP with a
    /// connection table (it creates no entry, which is what is counted).
    None,
    /// One per packet: every packet was a new flow.
    Every,
}

#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: &'static str,
    pub program: Program,
    /// Frames sent in turn, call `i` sends `frames[i % len]`. A scenario
    /// whose frames must all be distinct says so with `unique_frames`.
    pub frames: Vec<Vec<u8>>,
    pub unique_frames: bool,
    /// The XDP action every call must return.
    pub action: u32,
    /// The balancer's verdict counter every call must bump.
    pub verdict: Option<Verdict>,
    pub vip: Option<VipKey>,
    pub new_flows: NewFlows,
    /// Bytes the output frame must have gained (the outer header).
    pub growth: usize,
    /// Also run in live-frames mode (scenarios whose packets are transmitted).
    pub live: bool,
}

pub fn vip4_tcp() -> VipKey {
    vip_key(IpAddr::V4(VIP4), PORT_TCP, PROTO_TCP)
}
pub fn vip4_tcp_no_flows() -> VipKey {
    vip_key(IpAddr::V4(VIP4), PORT_TCP_NO_FLOWS, PROTO_TCP)
}
pub fn vip4_udp() -> VipKey {
    vip_key(IpAddr::V4(VIP4), PORT_UDP, PROTO_UDP)
}
pub fn vip6_tcp() -> VipKey {
    vip_key(IpAddr::V6(VIP6), PORT_TCP, PROTO_TCP)
}
pub fn vip4_vlan() -> VipKey {
    vip_key(IpAddr::V4(VIP4_VLAN), PORT_TCP, PROTO_TCP)
}
pub fn vip4_policy() -> VipKey {
    vip_key(IpAddr::V4(VIP4_POLICY), PORT_TCP, PROTO_TCP)
}

/// The policy VIP's: allow 192.0.2.0/24 (the client) and 198.18.0.0/15 (the
/// SYN scenarios' sources) but deny 192.0.2.128/25, 499 more allow /24s and
/// 498 deny /24s elsewhere; per-VIP and per-/24 limits of 100 million new
/// connections per second (never reached: the rate-limit work is done, no
/// packet refused).
pub fn policy() -> DesiredPolicy {
    let mut prefixes = Prefixes::new();
    let v4 = |a, b, c, d| IpAddr::V4(Ipv4Addr::new(a, b, c, d));
    prefixes.insert((v4(192, 0, 2, 0), 24), PREFIX_ALLOW);
    prefixes.insert((v4(198, 18, 0, 0), 15), PREFIX_ALLOW);
    prefixes.insert((v4(192, 0, 2, 128), 25), PREFIX_DENY);
    for i in 0..499u32 {
        let (b, c) = ((i / 256) as u8, (i % 256) as u8);
        prefixes.insert((v4(100, 64 + b, c, 0), 24), PREFIX_ALLOW);
        if i < 498 {
            prefixes.insert((v4(100, 96 + b, c, 0), 24), PREFIX_DENY);
        }
    }
    let never = Gcra::new(100_000_000, 100_000_000);
    DesiredPolicy {
        prefixes,
        allow_list: true,
        vip_rate: Some(never),
        source_rate: Some((never, 24)),
    }
}
pub fn vip4_gue() -> VipKey {
    vip_key(IpAddr::V4(VIP4_GUE), PORT_TCP, PROTO_TCP)
}
pub fn vip4_l2_dsr() -> VipKey {
    vip_key(IpAddr::V4(VIP4_L2_DSR), PORT_TCP, PROTO_TCP)
}
pub fn vip4_nat() -> VipKey {
    vip_key(IpAddr::V4(VIP4_NAT), PORT_TCP, PROTO_TCP)
}

/// The nat VIP's one backend.
pub fn nat_backend() -> IpAddr {
    v4_backends()[0]
}

fn vip_key(addr: IpAddr, port: u16, proto: u8) -> VipKey {
    VipKey::new(addr, port, proto)
}

pub fn v4_backends() -> Vec<IpAddr> {
    (0..BACKENDS_PER_VIP)
        .map(|i| IpAddr::V4(Ipv4Addr::new(10, 0, 0, 10 + i as u8)))
        .collect()
}

/// Backends on VLAN 100 (the stand-in `env::VLAN_DEV`'s subnet).
pub fn vlan_backends() -> Vec<IpAddr> {
    (0..BACKENDS_PER_VIP)
        .map(|i| IpAddr::V4(Ipv4Addr::new(10, 1, 100, 10 + i as u8)))
        .collect()
}

pub fn v6_backends() -> Vec<IpAddr> {
    (0..BACKENDS_PER_VIP)
        .map(|i| IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x100 + i as u16)))
        .collect()
}

/// The state the control plane would install for these scenarios.
pub fn desired_state() -> DesiredState {
    let moded =
        |key: VipKey, name: &str, flags: u32, backends: Vec<IpAddr>, forwarding: Forwarding| {
            DesiredVip {
                key,
                name: name.to_string(),
                flags,
                udp_idle_timeout_ms: lb_common::DEFAULT_UDP_IDLE_TIMEOUT_MS,
                forwarding,
                gue_port: lb_common::forwarding::gue::DEFAULT_PORT,
                policy: Default::default(),
                backends: backends
                    .into_iter()
                    .map(|addr| DesiredBackend {
                        addr,
                        weight: 100,
                        healthy: true,
                    })
                    .collect(),
            }
        };
    let vip = |key, name, flags, backends| moded(key, name, flags, backends, Forwarding::Ipip);
    DesiredState {
        global: global_config(),
        tx_ports: Default::default(),
        vips: vec![
            vip(vip4_tcp(), "v4-tcp", 0, v4_backends()),
            vip(
                vip4_tcp_no_flows(),
                "v4-tcp-no-flows",
                VIP_F_NO_FLOW_TABLE,
                v4_backends(),
            ),
            vip(vip4_udp(), "v4-udp", 0, v4_backends()),
            vip(vip6_tcp(), "v6-tcp", 0, v6_backends()),
            vip(vip4_vlan(), "v4-tcp-vlan", 0, vlan_backends()),
            DesiredVip {
                policy: policy(),
                ..vip(vip4_policy(), "v4-tcp-policy", 0, v4_backends())
            },
            moded(vip4_gue(), "v4-tcp-gue", 0, v4_backends(), Forwarding::Gue),
            moded(
                vip4_l2_dsr(),
                "v4-tcp-l2-dsr",
                0,
                v4_backends(),
                Forwarding::L2Dsr,
            ),
            moded(
                vip4_nat(),
                "v4-tcp-nat",
                0,
                vec![nat_backend()],
                Forwarding::Nat,
            ),
        ],
    }
}

fn tcp4(dst: Ipv4Addr, sport: u16, dport: u16, flags: u8, if_mac: [u8; 6]) -> Frame {
    let mut f = Frame::tcp(IpAddr::V4(CLIENT4), sport, IpAddr::V4(dst), dport, if_mac);
    f.l4 = crate::frames::L4::Tcp { flags };
    f.payload = TCP_PAYLOAD.to_vec();
    f
}

/// An established connection's data packet to the IPv4 TCP VIP.
pub fn v4_tcp_frame(if_mac: [u8; 6]) -> Vec<u8> {
    tcp4(VIP4, CLIENT_PORT, PORT_TCP, TCP_ACK | TCP_PSH, if_mac).build()
}

/// The flow of [`v4_tcp_frame`] as the essential-work floors' maps hold it:
/// the VIP, the entry naming the first IPv4 backend, and the hop the balancer
/// would use (its own address as outer source, the backend's MAC).
pub fn floor_lb_flow(if_mac: [u8; 6], ifindex: u32) -> OneFlow {
    let backend = Ipv4Addr::new(10, 0, 0, 10);
    OneFlow {
        client: CLIENT4,
        sport: CLIENT_PORT,
        vip: VIP4,
        dport: PORT_TCP,
        backend,
        hop: FloorLbHop::new(
            Ipv4Addr::from(BALANCER_V4),
            backend_mac(IpAddr::V4(backend)),
            if_mac,
        ),
        ifindex,
    }
}

/// `xlb_floor_min6`'s flow: `v6_tcp_flow_hit`'s, to its first backend.
pub fn floor_lb_flow6(if_mac: [u8; 6], ifindex: u32) -> OneFlow6 {
    let backend = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x100);
    OneFlow6 {
        client: CLIENT6,
        sport: CLIENT_PORT,
        vip: VIP6,
        dport: PORT_TCP,
        backend,
        hop: FloorLbHop::new_v6(
            Ipv6Addr::from(BALANCER_V6),
            backend_mac(IpAddr::V6(backend)),
            if_mac,
        ),
        ifindex,
    }
}

/// Every scenario. `flow_miss_frames` is how many distinct connections
/// `v4_tcp_flow_miss` needs (one per call it will make).
pub fn all(if_mac: [u8; 6], flow_miss_frames: usize) -> Vec<Scenario> {
    let established = v4_tcp_frame(if_mac);
    let balancer = |name, frames: Vec<Vec<u8>>, vip: VipKey, new_flows, growth| Scenario {
        name,
        program: Program::Balancer,
        frames,
        unique_frames: false,
        action: XDP_TX,
        verdict: Some(Verdict::Tx),
        vip: Some(vip),
        new_flows,
        growth,
        live: true,
    };

    let floor = |name, prog, action, live| Scenario {
        name,
        program: Program::Aux(prog),
        frames: vec![established.clone()],
        unique_frames: false,
        action,
        verdict: None,
        vip: None,
        new_flows: NewFlows::NotApplicable,
        growth: 0,
        live,
    };

    let non_vip = Scenario {
        name: "non_vip",
        program: Program::Balancer,
        frames: vec![tcp4(NON_VIP4, CLIENT_PORT, PORT_TCP, TCP_ACK | TCP_PSH, if_mac).build()],
        unique_frames: false,
        action: XDP_PASS,
        verdict: Some(Verdict::NotVip),
        vip: None,
        new_flows: NewFlows::NotApplicable,
        growth: 0,
        live: false,
    };

    let new_flow: Vec<Vec<u8>> = (0..NEW_FLOW_TUPLES)
        .map(|i| tcp4(VIP4, 10_000 + i, PORT_TCP_NO_FLOWS, TCP_SYN, if_mac).build())
        .collect();

    // Distinct clients 198.18.0.0/15 x ports: every call an ACK of a
    // connection the flow table has never seen (lookup miss, Maglev, LRU
    // insert).
    let flow_miss: Vec<Vec<u8>> = (0..flow_miss_frames)
        .map(|i| {
            let host = (i / 50_000) as u32;
            let port = 10_000 + (i % 50_000) as u16;
            let src = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 1)) + host);
            let mut f = tcp4(VIP4, port, PORT_TCP, TCP_ACK, if_mac);
            f.src = IpAddr::V4(src);
            f.build()
        })
        .collect();

    // Spoofed SYNs: 4,096 sources in 198.18.0.0/20, each its own port.
    let syns = |dst: Ipv4Addr| -> Vec<Vec<u8>> {
        (0..NEW_FLOW_TUPLES)
            .map(|i| {
                let mut f = tcp4(dst, 10_000 + i, PORT_TCP, TCP_SYN, if_mac);
                f.src = IpAddr::V4(Ipv4Addr::new(198, 18, (i >> 8) as u8, i as u8));
                f.build()
            })
            .collect()
    };

    let mut v6 = Frame::tcp(
        IpAddr::V6(CLIENT6),
        CLIENT_PORT,
        IpAddr::V6(VIP6),
        PORT_TCP,
        if_mac,
    );
    v6.l4 = crate::frames::L4::Tcp {
        flags: TCP_ACK | TCP_PSH,
    };
    v6.payload = TCP_PAYLOAD.to_vec();

    let udp = Frame::udp(
        IpAddr::V4(CLIENT4),
        CLIENT_PORT,
        IpAddr::V4(VIP4),
        PORT_UDP,
        if_mac,
    );

    // The nat VIP's established flow, and its backend's reply to the NAT
    // address and the port the session gets (the first candidate of a
    // fresh map: `lb_common::nat`).
    let nat_frame = tcp4(VIP4_NAT, CLIENT_PORT, PORT_TCP, TCP_ACK | TCP_PSH, if_mac);
    let nat_port = {
        let cfg = global_config();
        let key = lb_common::FlowKey::new(
            IpAddr::V4(CLIENT4),
            CLIENT_PORT,
            IpAddr::V4(VIP4_NAT),
            PORT_TCP,
            PROTO_TCP,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let (min, max) = cfg.nat().port_range();
        lb_common::nat::port_candidate(lb_common::flow_hash(cfg.hash_seed(), &key), 0, min, max)
    };
    let mut nat_reply = tcp4(VIP4_NAT, PORT_TCP, nat_port, TCP_ACK | TCP_PSH, if_mac);
    nat_reply.src = nat_backend();
    nat_reply.dst = IpAddr::V4(Ipv4Addr::from(crate::balancer_fixture::BALANCER_V4));

    let mut vlan = tcp4(VIP4_VLAN, CLIENT_PORT, PORT_TCP, TCP_ACK | TCP_PSH, if_mac);
    vlan.vlan = Some(super::env::VLAN_ID);

    vec![
        floor("floor_pass", program_names::PASS, XDP_PASS, false),
        floor("floor_tx", program_names::FLOOR_TX, XDP_TX, true),
        Scenario {
            growth: 20,
            ..floor("floor_lb", floor_lb::PROGRAM, XDP_TX, true)
        },
        Scenario {
            growth: 20,
            ..floor("floor_lb16", floor_lb::PROGRAM16, XDP_TX, true)
        },
        Scenario {
            growth: 20,
            ..floor("floor_entry", floor_lb::PROGRAM_ENTRY, XDP_TX, true)
        },
        Scenario {
            growth: 20,
            ..floor("floor_min", floor_lb::PROGRAM_MIN, XDP_TX, true)
        },
        Scenario {
            growth: 20,
            ..floor("floor_full", floor_lb::PROGRAM_FULL, XDP_TX, true)
        },
        Scenario {
            growth: 40,
            frames: vec![v6.build()],
            ..floor("floor_min6", floor_lb::PROGRAM_MIN6, XDP_TX, true)
        },
        Scenario {
            growth: 40,
            frames: vec![v6.build()],
            ..floor("floor_full6", floor_lb::PROGRAM_FULL, XDP_TX, true)
        },
        non_vip,
        balancer(
            "v4_tcp_flow_hit",
            vec![established.clone()],
            vip4_tcp(),
            NewFlows::None,
            20,
        ),
        balancer(
            "v4_tcp_new_flow",
            new_flow,
            vip4_tcp_no_flows(),
            NewFlows::Every,
            20,
        ),
        Scenario {
            unique_frames: true,
            live: false,
            ..balancer(
                "v4_tcp_flow_miss",
                flow_miss,
                vip4_tcp(),
                NewFlows::Every,
                20,
            )
        },
        balancer("v4_tcp_syn", syns(VIP4), vip4_tcp(), NewFlows::None, 20),
        balancer(
            "v4_tcp_syn_policy",
            syns(VIP4_POLICY),
            vip4_policy(),
            NewFlows::None,
            20,
        ),
        balancer(
            "v4_tcp_policy_hit",
            vec![tcp4(
                VIP4_POLICY,
                CLIENT_PORT,
                PORT_TCP,
                TCP_ACK | TCP_PSH,
                if_mac,
            )
            .build()],
            vip4_policy(),
            NewFlows::None,
            20,
        ),
        balancer(
            "v6_tcp_flow_hit",
            vec![v6.build()],
            vip6_tcp(),
            NewFlows::None,
            40,
        ),
        balancer("v4_udp", vec![udp.build()], vip4_udp(), NewFlows::None, 20),
        balancer(
            "v4_tcp_vlan",
            vec![vlan.build()],
            vip4_vlan(),
            NewFlows::None,
            20,
        ),
        balancer(
            "v4_tcp_gue",
            vec![tcp4(VIP4_GUE, CLIENT_PORT, PORT_TCP, TCP_ACK | TCP_PSH, if_mac).build()],
            vip4_gue(),
            NewFlows::None,
            28,
        ),
        balancer(
            "v4_tcp_l2_dsr",
            vec![tcp4(
                VIP4_L2_DSR,
                CLIENT_PORT,
                PORT_TCP,
                TCP_ACK | TCP_PSH,
                if_mac,
            )
            .build()],
            vip4_l2_dsr(),
            NewFlows::None,
            0,
        ),
        Scenario {
            live: false,
            ..balancer(
                "v4_tcp_nat",
                vec![nat_frame.build()],
                vip4_nat(),
                NewFlows::None,
                0,
            )
        },
        Scenario {
            name: "v4_tcp_nat_reply",
            program: Program::Balancer,
            frames: vec![nat_reply.build()],
            unique_frames: false,
            action: XDP_TX,
            verdict: Some(Verdict::Tx),
            vip: None,
            new_flows: NewFlows::NotApplicable,
            growth: 0,
            live: false,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_is_in_the_display_order_and_frames_are_sane() {
        let s = all([2, 0, 0, 0, 0, 1], 10);
        // Every scenario but the live-only recycled floor.
        assert_eq!(s.len(), ORDER.len() - 1);
        for sc in &s {
            assert!(ORDER.contains(&sc.name), "{}", sc.name);
            assert!(!sc.frames.is_empty(), "{}", sc.name);
            assert!(sc.frames.iter().all(|f| f.len() >= 54), "{}", sc.name);
        }
        let miss = s.iter().find(|s| s.name == "v4_tcp_flow_miss").unwrap();
        let distinct: std::collections::BTreeSet<_> = miss.frames.iter().collect();
        assert_eq!(distinct.len(), 10);
    }

    #[test]
    fn desired_state_has_nine_vips_of_100_backends_but_nat() {
        let d = desired_state();
        assert_eq!(d.vips.len(), 9);
        assert_eq!(policy().prefixes.len(), POLICY_PREFIXES);
        assert!(d
            .vips
            .iter()
            .filter(|v| v.forwarding != Forwarding::Nat)
            .all(|v| v.backends.len() == BACKENDS_PER_VIP as usize));
    }
}
