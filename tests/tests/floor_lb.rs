//! The essential-work balancer floors `xlb_floor_lb` (40-byte connection key),
//! `xlb_floor_lb16` (16-byte key) and `xlb_floor_entry` (the VIP through the
//! connection's backend) of lb-ebpf's `aux_programs.rs`, run
//! through BPF_PROG_TEST_RUN (root) with their maps filled for one flow
//! (`xlb_tests::floor_lb`): the flow's packet leaves with XDP_TX as an
//! IP-in-IP packet toward its backend, byte for byte the frame etherparse
//! builds (outer IPv4 header and its checksum, the hop's MACs, the inner
//! packet untouched); any other packet passes unmodified. The end-to-end
//! floor `xlb_floor_e2e` learns flows and redirects them.

use std::net::{IpAddr, Ipv4Addr};

use aya::{
    maps::{Array, DevMap, HashMap, MapData},
    Ebpf,
};
use etherparse::{
    EtherType, Ethernet2Header, IpDscp, IpEcn, IpNumber, Ipv4Header, Ipv6FlowLabel, Ipv6Header,
};
use lb_common::{
    floor_lb::{self, FloorLbHop, FlowKey16},
    forwarding::Forwarding,
    fwd_floor, FlowKey, FlowValue, VipInfo, VipKey, VipSlot, DEFAULT_OUTER_TTL, PROTO_TCP,
    PROTO_UDP,
};
use xlb_tests::{
    aux_object,
    balancer_fixture::run_program,
    expect::{assert_passed_unchanged, XDP_REDIRECT, XDP_TX},
    floor_lb::{install, install6, OneFlow, OneFlow6, CFG_INDEX, VIP_ID as BACKEND_VIP_ID},
    frames::{Frame, L4, TCP_ACK, TCP_PSH},
    privileged::require_root,
};

const DMAC: [u8; 6] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
const SMAC: [u8; 6] = [0x02, 0x66, 0x77, 0x88, 0x99, 0xaa];
const OUTER_SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

const FLOORS: [&str; 5] = [
    floor_lb::PROGRAM,
    floor_lb::PROGRAM16,
    floor_lb::PROGRAM_ENTRY,
    floor_lb::PROGRAM_MIN,
    floor_lb::PROGRAM_FULL,
];

fn flow() -> OneFlow {
    OneFlow {
        client: Ipv4Addr::new(192, 0, 2, 7),
        sport: 40000,
        vip: Ipv4Addr::new(10, 100, 0, 1),
        dport: 80,
        backend: Ipv4Addr::new(10, 0, 0, 10),
        hop: FloorLbHop::new(OUTER_SRC, DMAC, SMAC),
        // A test run without a context arrives on the loopback.
        ifindex: 1,
    }
}

fn load() -> Ebpf {
    let mut ebpf = aux_object::load(&FLOORS);
    install(&mut ebpf, &flow()).unwrap_or_else(|e| panic!("{e:#}"));
    ebpf
}

/// A data packet of the flow, with a DSCP/ECN byte the outer header must copy.
fn packet(sport: u16, dport: u16) -> Frame {
    let f = flow();
    let mut fr = Frame::tcp(
        IpAddr::V4(f.client),
        sport,
        IpAddr::V4(f.vip),
        dport,
        [0x02, 0, 0, 0, 0, 0x01],
    );
    fr.l4 = L4::Tcp {
        flags: TCP_ACK | TCP_PSH,
    };
    fr.tos = (10 << 2) | 1;
    fr.payload = b"xlbxlb".to_vec();
    fr
}

/// What the floors must send for `input` (an untagged IPv4 frame without
/// padding): the hop's MACs, an outer IPv4 header from `OUTER_SRC` to the
/// backend (protocol 4, DF, ID 0, the default outer TTL, the inner DSCP/ECN),
/// then the inner packet as it came.
fn expected(input: &[u8]) -> Vec<u8> {
    let inner = &input[14..];
    let tos = inner[1];
    let mut ip = Ipv4Header::new(
        inner.len() as u16,
        DEFAULT_OUTER_TTL,
        IpNumber::IPV4,
        OUTER_SRC.octets(),
        flow().backend.octets(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    ip.dont_fragment = true;
    ip.identification = 0;
    ip.dscp = IpDscp::try_new(tos >> 2).unwrap_or_else(|e| panic!("{e}"));
    ip.ecn = IpEcn::try_new(tos & 3).unwrap_or_else(|e| panic!("{e}"));
    ip.header_checksum = ip.calc_header_checksum();
    let eth = Ethernet2Header {
        source: SMAC,
        destination: DMAC,
        ether_type: EtherType::IPV4,
    };
    let mut out = eth.to_bytes().to_vec();
    out.extend_from_slice(&ip.to_bytes());
    out.extend_from_slice(inner);
    out
}

#[test]
fn both_floors_encapsulate_the_flow_toward_its_backend() {
    if !require_root("both_floors_encapsulate_the_flow_toward_its_backend") {
        return;
    }
    let ebpf = load();
    let input = packet(40000, 80).build();
    let want = expected(&input);
    for name in FLOORS {
        let r = run_program(aux_object::xdp(&ebpf, name), &input);
        assert_eq!(r.action, XDP_TX, "{name}: action");
        assert_eq!(r.out, want, "{name}: the frame sent");
    }
}

#[test]
fn packets_without_a_vip_or_a_flow_entry_pass_unmodified() {
    if !require_root("packets_without_a_vip_or_a_flow_entry_pass_unmodified") {
        return;
    }
    let ebpf = load();
    for (what, fr) in [
        // A VIP, but no connection-table entry.
        ("another flow to the VIP", packet(40001, 80)),
        // No VIP at this port (the flow tables are never asked).
        ("no VIP at the port", packet(40000, 81)),
    ] {
        let input = fr.build();
        for name in FLOORS {
            let r = run_program(aux_object::xdp(&ebpf, name), &input);
            assert_passed_unchanged(&r, &input, &format!("{name}: {what}"));
        }
    }
}

/// Each floor reads its own connection table with its own key: without the
/// flow's 40-byte entry only `xlb_floor_lb` passes, without the 16-byte one
/// only `xlb_floor_lb16`.
#[test]
fn each_floor_finds_the_flow_by_its_own_key() {
    if !require_root("each_floor_finds_the_flow_by_its_own_key") {
        return;
    }
    let f = flow();
    let input = packet(f.sport, f.dport).build();
    let (client, vip) = (IpAddr::V4(f.client), IpAddr::V4(f.vip));
    let remove = |ebpf: &mut Ebpf, map: &str| {
        let m = ebpf.map_mut(map).unwrap_or_else(|| panic!("no {map}"));
        if map == floor_lb::FLOWS_MAP {
            let mut h: HashMap<&mut MapData, FlowKey, FlowValue> =
                HashMap::try_from(m).unwrap_or_else(|e| panic!("{e}"));
            let k = FlowKey::new(client, f.sport, vip, f.dport, PROTO_TCP)
                .unwrap_or_else(|e| panic!("{e}"));
            h.remove(&k).unwrap_or_else(|e| panic!("{map}: {e}"));
        } else {
            let mut h: HashMap<&mut MapData, FlowKey16, FlowValue> =
                HashMap::try_from(m).unwrap_or_else(|e| panic!("{e}"));
            let k = FlowKey16::new(f.client, f.sport, f.vip, f.dport, PROTO_TCP);
            h.remove(&k).unwrap_or_else(|e| panic!("{map}: {e}"));
        }
    };
    for (map, pass, send) in [
        (
            floor_lb::FLOWS_MAP,
            &[floor_lb::PROGRAM, floor_lb::PROGRAM_ENTRY][..],
            &[floor_lb::PROGRAM16, floor_lb::PROGRAM_MIN][..],
        ),
        (
            floor_lb::FLOWS16_MAP,
            &[floor_lb::PROGRAM16, floor_lb::PROGRAM_MIN][..],
            &[floor_lb::PROGRAM, floor_lb::PROGRAM_ENTRY][..],
        ),
    ] {
        let mut ebpf = load();
        remove(&mut ebpf, map);
        for passes in pass {
            let r = run_program(aux_object::xdp(&ebpf, passes), &input);
            assert_passed_unchanged(&r, &input, &format!("{passes} without its entry"));
        }
        for sends in send {
            let r = run_program(aux_object::xdp(&ebpf, sends), &input);
            assert_eq!(r.action, XDP_TX, "{sends} keeps its own entry");
        }
    }
}

/// `xlb_floor_min` reads its VIP from the array by the backend's VIP id
/// and sends only for an IP-in-IP VIP: the VIP's mode changed, the packet
/// is left alone.
#[test]
fn the_least_floor_reads_the_vip_of_its_backend() {
    if !require_root("the_least_floor_reads_the_vip_of_its_backend") {
        return;
    }
    let mut ebpf = load();
    let f = flow();
    let input = packet(f.sport, f.dport).build();
    let r = run_program(aux_object::xdp(&ebpf, floor_lb::PROGRAM_MIN), &input);
    assert_eq!(r.action, XDP_TX, "the flow's VIP is IP-in-IP");
    let m = ebpf
        .map_mut(floor_lb::VIPARR_MAP)
        .unwrap_or_else(|| panic!("no {}", floor_lb::VIPARR_MAP));
    let mut vips: Array<&mut MapData, VipInfo> =
        Array::try_from(m).unwrap_or_else(|e| panic!("{e}"));
    let gue = vips
        .get(&BACKEND_VIP_ID, 0)
        .unwrap_or_else(|e| panic!("{e}"))
        .with_forwarding(Forwarding::Gue, 6080);
    vips.set(BACKEND_VIP_ID, gue, 0)
        .unwrap_or_else(|e| panic!("{e}"));
    let r = run_program(aux_object::xdp(&ebpf, floor_lb::PROGRAM_MIN), &input);
    assert_passed_unchanged(&r, &input, "a GUE VIP");
}

/// `xlb_floor_entry` takes the VIP from its backend's VIP id only when that
/// slot holds the packet's exact VIP, as the balancer does: a slot naming
/// another port (the id handed to another VIP) leaves the packet alone.
#[test]
fn the_entry_floor_takes_only_a_slot_that_names_the_packets_vip() {
    if !require_root("the_entry_floor_takes_only_a_slot_that_names_the_packets_vip") {
        return;
    }
    let mut ebpf = load();
    let f = flow();
    let input = packet(f.sport, f.dport).build();
    let r = run_program(aux_object::xdp(&ebpf, floor_lb::PROGRAM_ENTRY), &input);
    assert_eq!(r.action, XDP_TX, "the installed slot names the flow's VIP");
    let m = ebpf
        .map_mut(floor_lb::CFG_MAP)
        .unwrap_or_else(|| panic!("no {}", floor_lb::CFG_MAP));
    let mut configs: Array<&mut MapData, VipSlot> =
        Array::try_from(m).unwrap_or_else(|e| panic!("{e}"));
    let slot = configs.get(&CFG_INDEX, 0).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(slot.key.port(), f.dport, "the flow's VIP's slot");
    let other = VipKey::new(IpAddr::V4(f.vip), f.dport + 1, PROTO_TCP);
    configs
        .set(CFG_INDEX, VipSlot::new(other, slot.info), 0)
        .unwrap_or_else(|e| panic!("{e}"));
    let r = run_program(aux_object::xdp(&ebpf, floor_lb::PROGRAM_ENTRY), &input);
    assert_passed_unchanged(&r, &input, "a slot naming another VIP");
}

/// `xlb_floor_e2e`, the end-to-end benchmark's connection-table floor:
/// a flow without an entry gets one (backend 1 + source port mod 3), and
/// its packets, TCP or UDP, leave encapsulated toward that backend, byte
/// for byte, redirected to the port of `xlb_fwd_floor`.
#[test]
fn the_e2e_floor_learns_each_flow_and_redirects_it_encapsulated() {
    if !require_root("the_e2e_floor_learns_each_flow_and_redirects_it_encapsulated") {
        return;
    }
    let mut ebpf = aux_object::load(&[floor_lb::PROGRAM_E2E]);
    install(&mut ebpf, &flow()).unwrap_or_else(|e| panic!("{e:#}"));
    let mut port: DevMap<&mut MapData> = DevMap::try_from(
        ebpf.map_mut(fwd_floor::PORT_MAP)
            .unwrap_or_else(|| panic!("no {}", fwd_floor::PORT_MAP)),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // Loopback exists in every namespace; a test run does not transmit.
    port.set(0, 1, None, 0).unwrap_or_else(|e| panic!("{e}"));

    // 40002 mod 3 = 0: backend 1, the one `install` wrote.
    let f = flow();
    let sport = 40002;
    let tcp = packet(sport, f.dport);
    let mut udp = tcp.clone();
    udp.l4 = L4::Udp;
    for (what, fr, proto) in [("tcp", &tcp, PROTO_TCP), ("udp", &udp, PROTO_UDP)] {
        let input = fr.build();
        for round in ["learns", "follows"] {
            let r = run_program(aux_object::xdp(&ebpf, floor_lb::PROGRAM_E2E), &input);
            assert_eq!(r.action, XDP_REDIRECT, "{what}, {round}");
            assert_eq!(r.out, expected(&input), "{what}, {round}: the frame sent");
        }
        let flows: HashMap<&MapData, FlowKey16, FlowValue> = HashMap::try_from(
            ebpf.map(floor_lb::E2E_FLOWS_MAP)
                .unwrap_or_else(|| panic!("no {}", floor_lb::E2E_FLOWS_MAP)),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let key = FlowKey16::new(f.client, sport, f.vip, f.dport, proto);
        let entry = flows.get(&key, 0).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(entry.backend_id, 1, "{what}: the entry names backend 1");
    }
}

/// `xlb_floor_min6`: an IPv6 flow's data packet leaves with XDP_TX behind
/// a 40-byte IPv6 outer header toward its backend (next header 41, the
/// inner traffic class, flow label 0, the default hop limit) and the hop's
/// MACs, byte for byte; another flow's packet passes unmodified.
#[test]
fn the_ipv6_floor_encapsulates_its_flow_toward_its_backend() {
    if !require_root("the_ipv6_floor_encapsulates_its_flow_toward_its_backend") {
        return;
    }
    let flow6 = OneFlow6 {
        client: "2001:db8::7".parse().unwrap_or_else(|e| panic!("{e}")),
        sport: 40000,
        vip: "fd00:100::1".parse().unwrap_or_else(|e| panic!("{e}")),
        dport: 80,
        backend: "fd00::100".parse().unwrap_or_else(|e| panic!("{e}")),
        hop: FloorLbHop::new_v6(
            "fd00::1".parse().unwrap_or_else(|e| panic!("{e}")),
            DMAC,
            SMAC,
        ),
        ifindex: 1,
    };
    let mut ebpf = aux_object::load(&[floor_lb::PROGRAM_MIN6, floor_lb::PROGRAM_FULL]);
    install6(&mut ebpf, &flow6).unwrap_or_else(|e| panic!("{e:#}"));
    let frame = |sport| {
        let mut fr = Frame::tcp(
            IpAddr::V6(flow6.client),
            sport,
            IpAddr::V6(flow6.vip),
            flow6.dport,
            [0x02, 0, 0, 0, 0, 0x01],
        );
        fr.l4 = L4::Tcp {
            flags: TCP_ACK | TCP_PSH,
        };
        fr.tos = (10 << 2) | 1;
        fr.payload = b"xlbxlb".to_vec();
        fr.build()
    };
    let input = frame(flow6.sport);
    let inner = &input[14..];
    let mut outer = Ipv6Header {
        traffic_class: (10 << 2) | 1,
        flow_label: Ipv6FlowLabel::ZERO,
        payload_length: inner.len() as u16,
        next_header: IpNumber::IPV6,
        hop_limit: DEFAULT_OUTER_TTL,
        source: "fd00::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap_or_else(|e| panic!("{e}"))
            .octets(),
        destination: flow6.backend.octets(),
    };
    let eth = Ethernet2Header {
        source: SMAC,
        destination: DMAC,
        ether_type: EtherType::IPV6,
    };
    let mut want = eth.to_bytes().to_vec();
    want.extend_from_slice(&outer.to_bytes());
    want.extend_from_slice(inner);
    let r = run_program(aux_object::xdp(&ebpf, floor_lb::PROGRAM_MIN6), &input);
    assert_eq!(r.action, XDP_TX);
    assert_eq!(r.out, want, "the frame sent");
    let other = frame(flow6.sport + 1);
    let r = run_program(aux_object::xdp(&ebpf, floor_lb::PROGRAM_MIN6), &other);
    assert_passed_unchanged(&r, &other, "another flow");

    // `xlb_floor_full` sends the same, with the flow hash (under the
    // seed of the config `install6` writes) as the flow label, as the
    // balancer does.
    let key = FlowKey::new(
        IpAddr::V6(flow6.client),
        flow6.sport,
        IpAddr::V6(flow6.vip),
        flow6.dport,
        PROTO_TCP,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let seed = lb_common::GlobalConfig::new(None, None).hash_seed();
    let label = lb_common::flow_hash(seed, &key) & 0x000f_ffff;
    outer.flow_label = Ipv6FlowLabel::try_new(label).unwrap_or_else(|e| panic!("{e}"));
    let mut want = eth.to_bytes().to_vec();
    want.extend_from_slice(&outer.to_bytes());
    want.extend_from_slice(inner);
    let r = run_program(aux_object::xdp(&ebpf, floor_lb::PROGRAM_FULL), &input);
    assert_eq!(r.action, XDP_TX, "{}", floor_lb::PROGRAM_FULL);
    assert_eq!(r.out, want, "{}: the frame sent", floor_lb::PROGRAM_FULL);
    let r = run_program(aux_object::xdp(&ebpf, floor_lb::PROGRAM_FULL), &other);
    assert_passed_unchanged(&r, &other, "another flow");
}
