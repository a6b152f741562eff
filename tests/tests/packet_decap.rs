//! `xlb_decap`, the backend side: IP-in-IP addressed to one of the host's
//! tunnel addresses comes out as the inner packet (link-layer header kept,
//! EtherType fixed), anything else passes unchanged.

use std::net::IpAddr;

use etherparse::{IpNumber, Ipv4Header, Ipv6FlowLabel, Ipv6Header};
use lb_common::{PROTO_TCP, TPID_8021Q};
use lb_userspace::dataplane::decap::{Decap, DecapStats};
use xlb_tests::{
    balancer_fixture::{run_program, BalancerFixture, IFACE},
    expect::{assert_passed_unchanged, XDP_DROP, XDP_PASS, XDP_TX},
    frames::{Frame, CLIENT_MAC},
    privileged::require_root,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

const LB_MAC: [u8; 6] = [0x02, 0x1b, 0, 0, 0, 1];
const BE_MAC: [u8; 6] = [0x02, 0xbe, 0, 0, 0, 2];
const TUNNEL_V4: &str = "10.0.0.11";
const TUNNEL_V6: &str = "fd00::11";
/// A backend on (stand-in) VLAN 9 of the balancer's interface.
const TUNNEL_V4_VLAN9: &str = "10.9.9.11";

fn decap() -> Option<Decap> {
    if !require_root("packet_decap") {
        return None;
    }
    let mut d = Decap::load().unwrap_or_else(|e| panic!("loading xlb_decap: {e:#}"));
    d.add_address(ip(TUNNEL_V4))
        .unwrap_or_else(|e| panic!("{e}"));
    d.add_address(ip(TUNNEL_V6))
        .unwrap_or_else(|e| panic!("{e}"));
    Some(d)
}

/// The inner IP packet of a client frame (without its Ethernet header).
fn inner(fr: &Frame) -> Vec<u8> {
    fr.build()[fr.l3_offset()..].to_vec()
}

/// Ethernet (+ optional tag) + an outer header built by etherparse + `inner`.
fn tunnel(outer_dst: IpAddr, inner: &[u8], vlan: Option<u16>, ipv4_options: &[u8]) -> Vec<u8> {
    let next = if inner[0] >> 4 == 4 {
        IpNumber::IPV4
    } else {
        IpNumber::IPV6
    };
    let mut f = Vec::new();
    f.extend_from_slice(&BE_MAC);
    f.extend_from_slice(&LB_MAC);
    let outer_type: u16 = if outer_dst.is_ipv4() { 0x0800 } else { 0x86dd };
    if let Some(v) = vlan {
        f.extend_from_slice(&0x8100u16.to_be_bytes());
        f.extend_from_slice(&v.to_be_bytes());
    }
    f.extend_from_slice(&outer_type.to_be_bytes());
    match outer_dst {
        IpAddr::V4(d) => {
            let mut h = Ipv4Header::new(inner.len() as u16, 64, next, [10, 0, 0, 1], d.octets())
                .unwrap_or_else(|e| panic!("{e}"));
            h.options = ipv4_options.try_into().unwrap_or_else(|e| panic!("{e:?}"));
            h.set_payload_len(inner.len())
                .unwrap_or_else(|e| panic!("{e}"));
            h.header_checksum = h.calc_header_checksum();
            h.write(&mut f).unwrap_or_else(|e| panic!("{e}"));
        }
        IpAddr::V6(d) => {
            let h = Ipv6Header {
                traffic_class: 0,
                flow_label: Ipv6FlowLabel::ZERO,
                payload_length: inner.len() as u16,
                next_header: next,
                hop_limit: 64,
                source: ip("fd00::1")
                    .to_string()
                    .parse::<std::net::Ipv6Addr>()
                    .map(|a| a.octets())
                    .unwrap_or([0; 16]),
                destination: d.octets(),
            };
            h.write(&mut f).unwrap_or_else(|e| panic!("{e}"));
        }
    }
    f.extend_from_slice(inner);
    f
}

/// What decapsulation must produce: the same link-layer header (EtherType of
/// the inner family) followed by the inner packet.
fn decapsulated(inner: &[u8], vlan: Option<u16>) -> Vec<u8> {
    let inner_type: u16 = if inner[0] >> 4 == 4 { 0x0800 } else { 0x86dd };
    let mut f = Vec::new();
    f.extend_from_slice(&BE_MAC);
    f.extend_from_slice(&LB_MAC);
    if let Some(v) = vlan {
        f.extend_from_slice(&0x8100u16.to_be_bytes());
        f.extend_from_slice(&v.to_be_bytes());
    }
    f.extend_from_slice(&inner_type.to_be_bytes());
    f.extend_from_slice(inner);
    f
}

fn stats(d: &Decap) -> DecapStats {
    d.stats().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn tunnel_packets_for_us_come_out_as_the_inner_packet() {
    let Some(mut d) = decap() else { return };
    let in4 = inner(&Frame::tcp(
        ip("192.0.2.7"),
        40000,
        ip("10.100.0.1"),
        80,
        [0; 6],
    ));
    let in6 = inner(&Frame::udp(
        ip("2001:db8::7"),
        40000,
        ip("fd00:100::1"),
        53,
        [0; 6],
    ));
    let cases = [
        ("ipv4 in ipv4", TUNNEL_V4, &in4, None, &[][..]),
        ("ipv6 in ipv6", TUNNEL_V6, &in6, None, &[][..]),
        ("ipv4 in ipv6", TUNNEL_V6, &in4, None, &[][..]),
        ("ipv6 in ipv4", TUNNEL_V4, &in6, None, &[][..]),
        ("vlan tagged", TUNNEL_V4, &in4, Some(42), &[][..]),
        (
            "outer ipv4 options",
            TUNNEL_V4,
            &in4,
            None,
            &[1, 1, 1, 1, 1, 1, 1, 0][..],
        ),
    ];
    let prog = d.program().unwrap_or_else(|e| panic!("{e}"));
    for (what, dst, inner, vlan, opts) in cases {
        let frame = tunnel(ip(dst), inner, vlan, opts);
        let r = run_program(prog, &frame);
        assert_eq!(r.action, XDP_PASS, "{what}");
        assert_eq!(
            r.out,
            decapsulated(inner, vlan),
            "{what}: output must be the inner packet"
        );
    }
    assert_eq!(
        stats(&d),
        DecapStats {
            decapsulated: 6,
            passed: 0,
            malformed: 0
        }
    );
}

#[test]
fn everything_else_passes_unchanged() {
    let Some(mut d) = decap() else { return };
    let in4 = inner(&Frame::tcp(
        ip("192.0.2.7"),
        40000,
        ip("10.100.0.1"),
        80,
        [0; 6],
    ));
    let not_ours = tunnel(ip("10.0.0.99"), &in4, None, &[]);
    let plain = Frame::tcp(ip("192.0.2.7"), 40000, ip(TUNNEL_V4), 80, BE_MAC).build();
    let mut fragment = tunnel(ip(TUNNEL_V4), &in4, None, &[]);
    fragment[20] |= 0x20; // MF
    xlb_tests::frames::fix_ipv4_checksum(&mut fragment, 14);
    let arp = xlb_tests::frames::arp_request(CLIENT_MAC, [10, 0, 0, 2], [10, 0, 0, 11]);
    let prog = d.program().unwrap_or_else(|e| panic!("{e}"));
    for (what, frame) in [
        ("tunnel to another host", &not_ours),
        ("plain tcp", &plain),
        ("fragmented tunnel packet", &fragment),
        ("arp", &arp),
    ] {
        assert_passed_unchanged(&run_program(prog, frame), frame, what);
    }
    assert_eq!(
        stats(&d),
        DecapStats {
            decapsulated: 0,
            passed: 4,
            malformed: 0
        }
    );
}

#[test]
fn a_broken_inner_packet_is_dropped() {
    let Some(mut d) = decap() else { return };
    let in4 = inner(&Frame::tcp(
        ip("192.0.2.7"),
        40000,
        ip("10.100.0.1"),
        80,
        [0; 6],
    ));
    let truncated = tunnel(ip(TUNNEL_V4), &in4[..10], None, &[]);
    // Version 7: no such IP. (The outer header then announces IPv6.)
    let mut wrong_version = in4.clone();
    wrong_version[0] = 0x75;
    let wrong = tunnel(ip(TUNNEL_V4), &wrong_version, None, &[]);
    let prog = d.program().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(run_program(prog, &truncated).action, XDP_DROP);
    assert_eq!(run_program(prog, &wrong).action, XDP_DROP);
    assert_eq!(
        stats(&d),
        DecapStats {
            decapsulated: 0,
            passed: 0,
            malformed: 2
        }
    );
}

#[test]
fn balancer_output_decapsulates_to_the_client_packet() {
    let Some(mut f) = BalancerFixture::new("decap_round_trip") else {
        return;
    };
    let mut d = Decap::load().unwrap_or_else(|e| panic!("{e:#}"));
    d.add_address(ip(TUNNEL_V4))
        .unwrap_or_else(|e| panic!("{e}"));
    d.add_address(ip(TUNNEL_V6))
        .unwrap_or_else(|e| panic!("{e}"));
    f.add_vip(ip("10.100.0.1"), 80, PROTO_TCP, 0, &[ip(TUNNEL_V4)]);
    f.add_vip(ip("fd00:100::1"), 80, PROTO_TCP, 0, &[ip(TUNNEL_V6)]);
    // A tagged packet leaves only on its own VLAN: VLAN 9's backend.
    f.add_vlan_standin("xlbv9", IFACE, 9, TPID_8021Q, &["10.9.9.1/24"]);
    f.add_neighbour_on(ip(TUNNEL_V4_VLAN9), "xlbv9");
    d.add_address(ip(TUNNEL_V4_VLAN9))
        .unwrap_or_else(|e| panic!("{e}"));
    f.add_vip(ip("10.100.0.9"), 80, PROTO_TCP, 0, &[ip(TUNNEL_V4_VLAN9)]);
    for fr in [
        Frame::tcp(ip("192.0.2.7"), 1234, ip("10.100.0.1"), 80, f.if_mac),
        Frame::tcp(ip("2001:db8::7"), 1234, ip("fd00:100::1"), 80, f.if_mac),
        Frame {
            vlan: Some(9),
            ..Frame::tcp(ip("192.0.2.7"), 1235, ip("10.100.0.9"), 80, f.if_mac)
        },
    ] {
        let client = fr.build();
        let r = f.run(&client);
        assert_eq!(r.action, XDP_TX);
        let back = run_program(d.program().unwrap_or_else(|e| panic!("{e}")), &r.out);
        assert_eq!(back.action, XDP_PASS);
        // The backend sees the client's packet, behind the balancer's MACs.
        assert_eq!(
            &back.out[12..],
            &client[12..],
            "inner frame differs after the round trip"
        );
        assert_eq!(&back.out[..12], &r.out[..12]);
    }
}
