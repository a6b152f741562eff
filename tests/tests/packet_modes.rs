//! The forwarding modes other than IP-in-IP, byte for byte: `gue` (outer IP +
//! UDP to the VIP's GUE port, the source port from the flow hash) and
//! `l2-dsr` (the client's packet, only the MACs rewritten), in both families,
//! against frames built independently with etherparse; what each mode does
//! on the FIB outcomes that concern it; and `xlb_decap` taking the
//! balancer's GUE output apart again. Runs the real objects through
//! BPF_PROG_TEST_RUN (root).

use std::net::IpAddr;

use etherparse::{
    EtherType, Ethernet2Header, IpNumber, Ipv4Header, Ipv6FlowLabel, Ipv6Header, UdpHeader,
};
use lb_common::{
    decision::{self, PacketFacts},
    forwarding::gue,
    FlowKey, Forwarding, Verdict, DEFAULT_OUTER_TTL, PROTO_TCP, PROTO_UDP,
};
use lb_userspace::{
    dataplane::decap::Decap,
    explain::{coarse_now_ns, trace, Explanation},
};
use xlb_tests::{
    balancer_fixture::{
        backend_mac, run_program, BalancerFixture, TestVip, BALANCER_V4, BALANCER_V6, IFACE,
    },
    expect::{XDP_DROP, XDP_PASS, XDP_TX},
    frames::{Frame, L4, TCP_ACK, TCP_PSH},
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

const CLIENT4: &str = "192.0.2.7";
const CLIENT6: &str = "2001:db8::7";
const VIP4: &str = "10.100.0.1";
const VIP6: &str = "fd00:100::1";
const B4: &str = "10.0.0.11";
const B6: &str = "fd00::11";
const GUE_PORT: u16 = 6081;

fn verdict_count(f: &BalancerFixture, v: Verdict) -> u64 {
    f.dp.verdicts().unwrap_or_else(|e| panic!("{e}"))[v as usize]
}

/// A VIP of `mode` with one backend.
fn vip(
    f: &mut BalancerFixture,
    addr: &str,
    port: u16,
    proto: u8,
    backend: &str,
    mode: Forwarding,
) -> TestVip {
    let mut v = f.add_vip(ip(addr), port, proto, 0, &[ip(backend)]);
    f.set_forwarding(&mut v, mode, GUE_PORT);
    v
}

/// The IP packet of a frame (what follows its Ethernet header).
fn ip_packet(fr: &Frame) -> Vec<u8> {
    fr.build()[fr.l3_offset()..].to_vec()
}

/// The flow hash the balancer computes for `fr` toward `v`.
fn vip_hash(f: &BalancerFixture, v: &TestVip, fr: &Frame, proto: u8) -> u32 {
    let key =
        FlowKey::new(fr.src, fr.sport, fr.dst, fr.dport, proto).unwrap_or_else(|e| panic!("{e:?}"));
    // The seed the data plane hashes with: the live config's.
    let seed =
        f.dp.global_config()
            .unwrap_or_else(|e| panic!("{e}"))
            .hash_seed();
    decision::vip_hash(seed, v.info.flags, &key)
}

/// What a GUE frame toward `backend` must be, from etherparse: Ethernet from
/// the balancer's interface to the backend's MAC, an outer IP header from
/// the balancer's outer source (the client's DSCP/ECN, the fixed outer TTL,
/// IPv4: ID 0 and DF, IPv6: the flow hash as flow label), a UDP header from
/// `sport` to the GUE port with checksum 0, then the client's IP packet.
fn expected_gue(f: &BalancerFixture, fr: &Frame, backend: &str, sport: u16, hash: u32) -> Vec<u8> {
    let inner = ip_packet(fr);
    let backend = ip(backend);
    let udp_len = 8 + inner.len();
    let mut out = Vec::new();
    let ether_type = if backend.is_ipv4() {
        EtherType::IPV4
    } else {
        EtherType::IPV6
    };
    Ethernet2Header {
        source: f.if_mac,
        destination: backend_mac(backend),
        ether_type,
    }
    .write(&mut out)
    .unwrap_or_else(|e| panic!("{e}"));
    match backend {
        IpAddr::V4(b) => {
            let mut h = Ipv4Header::new(
                udp_len as u16,
                DEFAULT_OUTER_TTL,
                IpNumber::UDP,
                BALANCER_V4,
                b.octets(),
            )
            .unwrap_or_else(|e| panic!("{e}"));
            h.dont_fragment = true;
            h.identification = 0;
            h.dscp = etherparse::IpDscp::try_new(fr.tos >> 2).unwrap_or_else(|e| panic!("{e}"));
            h.ecn = etherparse::IpEcn::try_new(fr.tos & 3).unwrap_or_else(|e| panic!("{e}"));
            h.header_checksum = h.calc_header_checksum();
            h.write(&mut out).unwrap_or_else(|e| panic!("{e}"));
        }
        IpAddr::V6(b) => Ipv6Header {
            traffic_class: fr.tos,
            flow_label: Ipv6FlowLabel::try_new(hash & 0x000f_ffff)
                .unwrap_or_else(|e| panic!("{e}")),
            payload_length: udp_len as u16,
            next_header: IpNumber::UDP,
            hop_limit: DEFAULT_OUTER_TTL,
            source: BALANCER_V6,
            destination: b.octets(),
        }
        .write(&mut out)
        .unwrap_or_else(|e| panic!("{e}")),
    }
    UdpHeader {
        source_port: sport,
        destination_port: GUE_PORT,
        length: udp_len as u16,
        checksum: 0,
    }
    .write(&mut out)
    .unwrap_or_else(|e| panic!("{e}"));
    out.extend_from_slice(&inner);
    out
}

/// What an `l2-dsr` frame toward `backend` must be: the client's IP packet
/// unchanged behind an Ethernet header from the balancer's interface to the
/// backend's MAC.
fn expected_l2(f: &BalancerFixture, fr: &Frame, backend: &str) -> Vec<u8> {
    let ether_type = if fr.dst.is_ipv4() {
        EtherType::IPV4
    } else {
        EtherType::IPV6
    };
    let mut out = Vec::new();
    Ethernet2Header {
        source: f.if_mac,
        destination: backend_mac(ip(backend)),
        ether_type,
    }
    .write(&mut out)
    .unwrap_or_else(|e| panic!("{e}"));
    out.extend_from_slice(&ip_packet(fr));
    out
}

#[test]
fn gue_frames_are_byte_exact_in_every_family_combination() {
    let Some(mut f) = BalancerFixture::new("gue_byte_exact") else {
        return;
    };
    let cases = [
        ("v4 in v4", VIP4, CLIENT4, B4, PROTO_TCP),
        ("v6 in v6", VIP6, CLIENT6, B6, PROTO_UDP),
        ("v4 in v6", "10.100.0.2", CLIENT4, "fd00::12", PROTO_UDP),
        ("v6 in v4", "fd00:100::2", CLIENT6, "10.0.0.12", PROTO_TCP),
    ];
    for (what, vip_addr, client, backend, proto) in cases {
        let v = vip(&mut f, vip_addr, 80, proto, backend, Forwarding::Gue);
        let mut fr = if proto == PROTO_TCP {
            Frame::tcp(ip(client), 40000, ip(vip_addr), 80, f.if_mac)
        } else {
            Frame::udp(ip(client), 40000, ip(vip_addr), 80, f.if_mac)
        };
        // DSCP AF41 with ECT(0): copied to the outer header.
        fr.tos = (34 << 2) | 0b10;
        fr.payload = b"GET / HTTP/1.1\r\n\r\n".to_vec();
        let hash = vip_hash(&f, &v, &fr, proto);
        let sport = gue::source_port(hash);
        assert!(sport >= 49152, "{what}: source port {sport}");
        // Twice: a UDP flow's second packet follows the entry its first
        // made, and the outer header still carries the flow hash.
        for packet in ["first packet", "again"] {
            let r = f.run(&fr.build());
            assert_eq!(r.action, XDP_TX, "{what}, {packet}");
            assert_eq!(
                r.out,
                expected_gue(&f, &fr, backend, sport, hash),
                "{what}, {packet}: GUE frame"
            );
        }
    }
    assert_eq!(verdict_count(&f, Verdict::Tx), 8);
}

#[test]
fn gue_source_ports_follow_the_flow_and_spread_flows() {
    let Some(mut f) = BalancerFixture::new("gue_source_ports") else {
        return;
    };
    let v = vip(&mut f, VIP4, 80, PROTO_TCP, B4, Forwarding::Gue);
    let sport_of = |f: &mut BalancerFixture, client_port: u16, flags: u8| {
        let mut fr = Frame::tcp(ip(CLIENT4), client_port, ip(VIP4), 80, f.if_mac);
        fr.l4 = L4::Tcp { flags };
        let r = f.run(&fr.build());
        assert_eq!(r.action, XDP_TX);
        // Ethernet 14 + IPv4 20: the UDP source port.
        let sport = u16::from_be_bytes([r.out[34], r.out[35]]);
        assert_eq!(sport, gue::source_port(vip_hash(f, &v, &fr, PROTO_TCP)));
        sport
    };
    // One flow: the same port for its SYN and its data packets (they stay
    // in order on one path).
    let first = sport_of(&mut f, 40000, 0x02);
    assert_eq!(sport_of(&mut f, 40000, TCP_ACK | TCP_PSH), first);
    // Established: the data packet follows the entry the first one made.
    assert_eq!(sport_of(&mut f, 40000, TCP_ACK | TCP_PSH), first);
    // 200 flows to the one backend: IP-in-IP gives them one outer 5-tuple,
    // GUE gives them (nearly) 200.
    let mut ports: Vec<u16> = (41000..41200).map(|p| sport_of(&mut f, p, 0x02)).collect();
    ports.sort_unstable();
    ports.dedup();
    assert!(
        ports.len() > 190,
        "200 flows on {} source ports",
        ports.len()
    );
}

#[test]
fn gue_counts_its_udp_header_against_the_egress_mtu() {
    let Some(mut f) = BalancerFixture::new("gue_mtu") else {
        return;
    };
    f.ns.ip(&format!("link set {IFACE} mtu 1400"));
    vip(&mut f, VIP4, 53, PROTO_UDP, B4, Forwarding::Gue);
    let mut fr = Frame::udp(ip(CLIENT4), 5000, ip(VIP4), 53, f.if_mac);
    // 1373-byte inner packet: 1401 with 28 bytes of IPv4 + UDP.
    // Too big: the client is told an MTU that leaves room for GUE's 28
    // bytes (IP-in-IP would say 1380).
    fr.payload = vec![0xab; 1373 - 28];
    let r = f.run(&fr.build());
    assert_eq!(r.action, XDP_TX);
    assert_eq!(verdict_count(&f, Verdict::IcmpTooBigSent), 1);
    assert_eq!((r.out[34], r.out[35]), (3, 4), "fragmentation needed");
    assert_eq!(u16::from_be_bytes([r.out[40], r.out[41]]), 1372, "MTU");
    fr.payload = vec![0xab; 1372 - 28];
    assert_eq!(f.run(&fr.build()).action, XDP_TX, "exactly the MTU fits");
    assert_eq!(verdict_count(&f, Verdict::Tx), 1);
}

#[test]
fn l2_dsr_tells_clients_the_egress_mtu_itself() {
    let Some(mut f) = BalancerFixture::new("l2_dsr_mtu") else {
        return;
    };
    f.ns.ip(&format!("link set {IFACE} mtu 1400"));
    vip(&mut f, VIP4, 53, PROTO_UDP, B4, Forwarding::L2Dsr);
    let mut fr = Frame::udp(ip(CLIENT4), 5000, ip(VIP4), 53, f.if_mac);
    // Nothing is put in front of the client's packet: 1401 bytes do not
    // fit, and the MTU to use is the egress MTU itself.
    fr.payload = vec![0xab; 1401 - 28];
    let r = f.run(&fr.build());
    assert_eq!(r.action, XDP_TX);
    assert_eq!(verdict_count(&f, Verdict::IcmpTooBigSent), 1);
    assert_eq!((r.out[34], r.out[35]), (3, 4), "fragmentation needed");
    assert_eq!(u16::from_be_bytes([r.out[40], r.out[41]]), 1400, "MTU");
    fr.payload = vec![0xab; 1400 - 28];
    assert_eq!(f.run(&fr.build()).action, XDP_TX, "exactly the MTU fits");
    assert_eq!(verdict_count(&f, Verdict::Tx), 1);
}

#[test]
fn l2_dsr_frames_are_the_clients_packet_with_new_macs() {
    let Some(mut f) = BalancerFixture::new("l2_dsr_byte_exact") else {
        return;
    };
    let cases = [
        ("tcp v4", VIP4, CLIENT4, B4, PROTO_TCP),
        ("udp v4", "10.100.0.2", CLIENT4, "10.0.0.12", PROTO_UDP),
        ("tcp v6", VIP6, CLIENT6, B6, PROTO_TCP),
        ("udp v6", "fd00:100::2", CLIENT6, "fd00::12", PROTO_UDP),
    ];
    for (what, vip_addr, client, backend, proto) in cases {
        vip(&mut f, vip_addr, 80, proto, backend, Forwarding::L2Dsr);
        let mut fr = if proto == PROTO_TCP {
            Frame::tcp(ip(client), 40000, ip(vip_addr), 80, f.if_mac)
        } else {
            Frame::udp(ip(client), 40000, ip(vip_addr), 80, f.if_mac)
        };
        fr.tos = (10 << 2) | 0b01;
        fr.payload = vec![0x5a; 300];
        let r = f.run(&fr.build());
        assert_eq!(r.action, XDP_TX, "{what}");
        assert_eq!(r.out, expected_l2(&f, &fr, backend), "{what}: l2-dsr frame");
    }
    assert_eq!(verdict_count(&f, Verdict::Tx), 4);
}

#[test]
fn l2_dsr_trims_ethernet_padding() {
    let Some(mut f) = BalancerFixture::new("l2_dsr_padding") else {
        return;
    };
    vip(&mut f, VIP4, 80, PROTO_TCP, B4, Forwarding::L2Dsr);
    let fr = Frame::tcp(ip(CLIENT4), 40001, ip(VIP4), 80, f.if_mac);
    let mut input = fr.build();
    // A minimum-size frame's padding: not part of the IP packet, not sent on.
    input.extend_from_slice(&[0; 6]);
    let r = f.run(&input);
    assert_eq!(r.action, XDP_TX);
    assert_eq!(r.out, expected_l2(&f, &fr, B4));
}

#[test]
fn l2_dsr_has_no_mtu_overhead() {
    let Some(mut f) = BalancerFixture::new("l2_dsr_no_overhead") else {
        return;
    };
    f.ns.ip(&format!("link set {IFACE} mtu 1400"));
    vip(&mut f, VIP4, 53, PROTO_UDP, B4, Forwarding::L2Dsr);
    let mut fr = Frame::udp(ip(CLIENT4), 5000, ip(VIP4), 53, f.if_mac);
    // A full-MTU packet goes as it is (IP-in-IP or GUE would not fit).
    fr.payload = vec![0xab; 1400 - 28];
    let r = f.run(&fr.build());
    assert_eq!(r.action, XDP_TX);
    assert_eq!(r.out, expected_l2(&f, &fr, B4));
}

#[test]
fn l2_dsr_refuses_backends_behind_a_gateway_and_unresolved_ones() {
    let Some(mut f) = BalancerFixture::new("l2_dsr_off_link") else {
        return;
    };
    // 203.0.113.5 is reached through the router 10.0.0.254 (resolved): IP
    // routing would work, but its MAC is the router's.
    f.ns.ip("route add 203.0.113.0/24 via 10.0.0.254");
    f.add_neighbour(ip("10.0.0.254"));
    let mut v = f.add_vip(ip(VIP4), 80, PROTO_TCP, 0, &[ip("203.0.113.5")]);
    let input = Frame::tcp(ip(CLIENT4), 40002, ip(VIP4), 80, f.if_mac).build();
    assert_eq!(f.run(&input).action, XDP_TX, "ipip goes through the router");
    f.set_forwarding(&mut v, Forwarding::L2Dsr, 0);
    assert_eq!(f.run(&input).action, XDP_DROP);
    assert_eq!(verdict_count(&f, Verdict::L2OffLink), 1);

    // On-link but no neighbour entry: dropped (handing it to the kernel
    // would route the VIP packet by the host's own table).
    let mut w = vip(&mut f, VIP6, 80, PROTO_TCP, B6, Forwarding::Ipip);
    f.ns.ip(&format!("neigh del {B6} dev {IFACE}"));
    let input6 = Frame::tcp(ip(CLIENT6), 40003, ip(VIP6), 80, f.if_mac).build();
    assert_eq!(f.run(&input6).action, XDP_PASS, "ipip: the kernel resolves");
    f.set_forwarding(&mut w, Forwarding::L2Dsr, 0);
    assert_eq!(f.run(&input6).action, XDP_DROP);
    assert_eq!(verdict_count(&f, Verdict::L2NoNeigh), 1);
    // Once resolved it is sent.
    f.add_neighbour(ip(B6));
    assert_eq!(f.run(&input6).action, XDP_TX);
}

#[test]
fn decap_takes_the_balancers_gue_apart_on_its_ports_only() {
    let Some(mut f) = BalancerFixture::new("gue_round_trip") else {
        return;
    };
    let mut d = Decap::load().unwrap_or_else(|e| panic!("loading xlb_decap: {e:#}"));
    for a in [B4, B6] {
        d.add_address(ip(a)).unwrap_or_else(|e| panic!("{e}"));
    }
    for a in [IpAddr::from(BALANCER_V4), IpAddr::from(BALANCER_V6)] {
        d.add_allowed_source(a).unwrap_or_else(|e| panic!("{e}"));
    }
    for a in [VIP4, VIP6] {
        d.add_vip(ip(a)).unwrap_or_else(|e| panic!("{e}"));
    }
    vip(&mut f, VIP4, 80, PROTO_TCP, B6, Forwarding::Gue);
    vip(&mut f, VIP6, 53, PROTO_UDP, B4, Forwarding::Gue);
    let frames = [
        Frame::tcp(ip(CLIENT4), 40000, ip(VIP4), 80, f.if_mac),
        Frame::udp(ip(CLIENT6), 40000, ip(VIP6), 53, f.if_mac),
    ];
    let mut tunnels = Vec::new();
    for fr in &frames {
        let r = f.run(&fr.build());
        assert_eq!(r.action, XDP_TX);
        tunnels.push(r.out);
    }
    let prog = d.program().unwrap_or_else(|e| panic!("{e}"));
    // GUE to a port the host does not take: somebody else's UDP, unchanged.
    for t in &tunnels {
        let r = run_program(prog, t);
        assert_eq!((r.action, &r.out), (XDP_PASS, t), "port not taken");
    }
    d.add_gue_port(GUE_PORT).unwrap_or_else(|e| panic!("{e}"));
    let prog = d.program().unwrap_or_else(|e| panic!("{e}"));
    for (fr, t) in frames.iter().zip(&tunnels) {
        let r = run_program(prog, t);
        assert_eq!(r.action, XDP_PASS);
        // The backend's link-layer header with the inner family's type, then
        // the client's packet exactly.
        let mut want = t[..12].to_vec();
        let ether_type: u16 = if fr.dst.is_ipv4() { 0x0800 } else { 0x86dd };
        want.extend_from_slice(&ether_type.to_be_bytes());
        want.extend_from_slice(&ip_packet(fr));
        assert_eq!(r.out, want, "decapsulated GUE");
    }
    // A GUE variant 0 header (first bits 00) after the UDP header is not
    // xlb's: passed to the kernel untouched.
    let mut variant0 = tunnels[0].clone();
    let udp_payload = 14 + 40 + 8;
    variant0[udp_payload] = 0x00;
    let r = run_program(prog, &variant0);
    assert_eq!((r.action, &r.out), (XDP_PASS, &variant0), "variant 0");
    let s = d.stats().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((s.decapsulated, s.passed), (2, 3), "{s:?}");
}

#[test]
fn explain_names_the_mode_and_the_gue_source_port_the_data_plane_uses() {
    let Some(mut f) = BalancerFixture::new("explain_modes") else {
        return;
    };
    vip(&mut f, VIP4, 80, PROTO_TCP, B4, Forwarding::Gue);
    vip(&mut f, VIP6, 80, PROTO_TCP, B6, Forwarding::L2Dsr);
    for sport in [40000u16, 40001, 52000] {
        let fr = Frame::tcp(ip(CLIENT4), sport, ip(VIP4), 80, f.if_mac);
        let key = FlowKey::new(fr.src, fr.sport, fr.dst, fr.dport, PROTO_TCP)
            .unwrap_or_else(|e| panic!("{e:?}"));
        let facts = PacketFacts {
            proto: PROTO_TCP,
            tcp_flags: 0x02,
            now_ns: coarse_now_ns(),
        };
        let t = trace(&f.dp, &key, &facts).unwrap_or_else(|e| panic!("{e}"));
        let words = Explanation::new(&t, None)
            .forwarding
            .unwrap_or_else(|| panic!("no forwarding words"));
        let r = f.run(&fr.build());
        assert_eq!(r.action, XDP_TX);
        let sent_from = u16::from_be_bytes([r.out[34], r.out[35]]);
        assert_eq!(
            words,
            format!("gue: UDP from source port {sent_from} (the flow hash) to {B4}:{GUE_PORT}")
        );
    }
    let key = FlowKey::new(ip(CLIENT6), 40000, ip(VIP6), 80, PROTO_TCP)
        .unwrap_or_else(|e| panic!("{e:?}"));
    let facts = PacketFacts {
        proto: PROTO_TCP,
        tcp_flags: 0x02,
        now_ns: coarse_now_ns(),
    };
    let t = trace(&f.dp, &key, &facts).unwrap_or_else(|e| panic!("{e}"));
    let words = Explanation::new(&t, None).forwarding;
    assert_eq!(
        words.as_deref(),
        Some("l2-dsr: the client's packet itself, only its MACs rewritten toward fd00::11")
    );
}

/// Found by the fuzzer: the route toward an l2-dsr backend does not depend
/// on the client's source address, whatever it is (the kernel's FIB refuses
/// lookups from an IPv6 multicast source, which the VIP's packets may
/// carry); and a packet too big for the path is `too_big`.
#[test]
fn l2_dsr_ignores_the_clients_source_in_the_route_lookup() {
    let Some(mut f) = BalancerFixture::new("l2_dsr_odd_source") else {
        return;
    };
    vip(&mut f, VIP6, 53, PROTO_UDP, B6, Forwarding::L2Dsr);
    vip(&mut f, VIP4, 53, PROTO_UDP, B4, Forwarding::L2Dsr);
    for (what, client, vip_addr, backend) in [
        ("ipv6 multicast source", "ff02::1", VIP6, B6),
        ("ipv6 unspecified source", "::", VIP6, B6),
        ("ipv4 broadcast source", "255.255.255.255", VIP4, B4),
        ("ipv4 multicast source", "224.0.0.1", VIP4, B4),
    ] {
        let fr = Frame::udp(ip(client), 5000, ip(vip_addr), 53, f.if_mac);
        let r = f.run(&fr.build());
        assert_eq!(r.action, XDP_TX, "{what}");
        assert_eq!(r.out, expected_l2(&f, &fr, backend), "{what}");
    }
    f.ns.ip(&format!("link set {IFACE} mtu 1400"));
    let mut big = Frame::udp(ip("ff02::1"), 5000, ip(VIP6), 53, f.if_mac);
    big.payload = vec![0; 1401 - 48];
    assert_eq!(f.run(&big.build()).action, XDP_DROP);
    assert_eq!(verdict_count(&f, Verdict::TooBig), 1);
}
