//! `xlb_decap`, the backend side: IP-in-IP addressed to one of the host's
//! tunnel addresses, sent by an allowed balancer and carrying a packet for a
//! VIP, comes out as the inner packet (link-layer header kept, EtherType
//! fixed, a CE mark of the outer header carried over); any other tunnel
//! packet passes untouched and is counted; anything else passes unchanged.

use std::net::IpAddr;

use etherparse::{IpEcn, IpNumber, Ipv4HeaderSlice, Ipv6FlowLabel, Ipv6Header, Ipv6HeaderSlice};
use lb_common::{PROTO_TCP, TPID_8021Q};
use lb_userspace::dataplane::decap::{Decap, DecapStats};
use xlb_tests::{
    balancer_fixture::{run_program, BalancerFixture, BALANCER_V4, BALANCER_V6, IFACE},
    expect::{assert_passed_unchanged, XDP_DROP, XDP_PASS, XDP_TX},
    frames::{fix_ipv4_checksum, Frame, CLIENT_MAC},
    privileged::require_root,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

const LB_MAC: [u8; 6] = [0x02, 0x1b, 0, 0, 0, 1];
const BE_MAC: [u8; 6] = [0x02, 0xbe, 0, 0, 0, 2];
const TUNNEL_V4: &str = "10.0.0.11";
const TUNNEL_V6: &str = "fd00::11";
/// The balancer's outer sources: allowed.
const LB_V4: &str = "10.0.0.1";
const LB_V6: &str = "fd00::1";
/// Somebody else's: refused.
const SPOOF_V4: &str = "203.0.113.66";
const SPOOF_V6: &str = "2001:db8:bad::66";
const VIP4: &str = "10.100.0.1";
const VIP6: &str = "fd00:100::1";

const NOT_ECT: u8 = 0b00;
const ECT_1: u8 = 0b01;
const ECT_0: u8 = 0b10;
const CE: u8 = 0b11;
/// A DSCP (AF41) in the upper six bits, which ECN handling must keep.
const AF41: u8 = 34 << 2;

/// Adds the test's tunnel addresses, balancer sources and VIPs.
fn allow_test_traffic(d: &mut Decap) {
    for a in [TUNNEL_V4, TUNNEL_V6] {
        d.add_address(ip(a)).unwrap_or_else(|e| panic!("{e}"));
    }
    for a in [LB_V4, LB_V6] {
        d.add_allowed_source(ip(a))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    for a in [VIP4, VIP6] {
        d.add_vip(ip(a)).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// A backend on (stand-in) VLAN 9 of the balancer's interface, and its VIP.
const TUNNEL_V4_VLAN9: &str = "10.9.9.11";
const VIP4_VLAN9: &str = "10.100.0.9";

fn decap() -> Option<Decap> {
    if !require_root("packet_decap") {
        return None;
    }
    let mut d = Decap::load().unwrap_or_else(|e| panic!("loading xlb_decap: {e:#}"));
    allow_test_traffic(&mut d);
    Some(d)
}

/// The inner IP packet of a client frame (without its Ethernet header).
fn inner(fr: &Frame) -> Vec<u8> {
    fr.build()[fr.l3_offset()..].to_vec()
}

/// A TCP packet for the IPv6 (else IPv4) VIP with the given ECN bits.
fn to_vip(v6: bool, ecn: u8) -> Vec<u8> {
    let (src, dst) = if v6 {
        ("2001:db8::7", VIP6)
    } else {
        ("192.0.2.7", VIP4)
    };
    inner(&Frame {
        tos: AF41 | ecn,
        ..Frame::tcp(ip(src), 40000, ip(dst), 80, [0; 6])
    })
}

/// The outer header of a test tunnel packet.
#[derive(Clone, Copy)]
struct Outer {
    src: IpAddr,
    dst: IpAddr,
    /// DSCP << 2 | ECN (IPv4 TOS / IPv6 traffic class).
    tos: u8,
}

impl Outer {
    /// From the balancer to `dst`'s tunnel address, Not-ECT.
    fn to(dst: &str) -> Self {
        let dst = ip(dst);
        let src = if dst.is_ipv4() { LB_V4 } else { LB_V6 };
        Self {
            src: ip(src),
            dst,
            tos: 0,
        }
    }

    fn from(self, src: &str) -> Self {
        Self {
            src: ip(src),
            ..self
        }
    }

    fn tos(self, tos: u8) -> Self {
        Self { tos, ..self }
    }
}

/// The four outer/inner family combinations: (name, outer, inner is IPv6).
fn families() -> [(&'static str, Outer, bool); 4] {
    [
        ("ipv4 in ipv4", Outer::to(TUNNEL_V4), false),
        ("ipv6 in ipv6", Outer::to(TUNNEL_V6), true),
        ("ipv4 in ipv6", Outer::to(TUNNEL_V6), false),
        ("ipv6 in ipv4", Outer::to(TUNNEL_V4), true),
    ]
}

/// Ethernet (+ optional tag) + an outer header built by etherparse + `inner`.
fn tunnel(outer: Outer, inner: &[u8], vlan: Option<u16>, ipv4_options: &[u8]) -> Vec<u8> {
    let next = if inner[0] >> 4 == 4 {
        IpNumber::IPV4
    } else {
        IpNumber::IPV6
    };
    let mut f = Vec::new();
    f.extend_from_slice(&BE_MAC);
    f.extend_from_slice(&LB_MAC);
    let outer_type: u16 = if outer.dst.is_ipv4() { 0x0800 } else { 0x86dd };
    if let Some(v) = vlan {
        f.extend_from_slice(&0x8100u16.to_be_bytes());
        f.extend_from_slice(&v.to_be_bytes());
    }
    f.extend_from_slice(&outer_type.to_be_bytes());
    let l3 = f.len();
    match (outer.src, outer.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut h =
                etherparse::Ipv4Header::new(inner.len() as u16, 64, next, s.octets(), d.octets())
                    .unwrap_or_else(|e| panic!("{e}"));
            h.options = ipv4_options.try_into().unwrap_or_else(|e| panic!("{e:?}"));
            h.set_payload_len(inner.len())
                .unwrap_or_else(|e| panic!("{e}"));
            h.write(&mut f).unwrap_or_else(|e| panic!("{e}"));
            f[l3 + 1] = outer.tos;
            fix_ipv4_checksum(&mut f, l3);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let h = Ipv6Header {
                traffic_class: outer.tos,
                flow_label: Ipv6FlowLabel::ZERO,
                payload_length: inner.len() as u16,
                next_header: next,
                hop_limit: 64,
                source: s.octets(),
                destination: d.octets(),
            };
            h.write(&mut f).unwrap_or_else(|e| panic!("{e}"));
        }
        _ => panic!("mixed outer families"),
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
    let in4 = inner(&Frame::tcp(ip("192.0.2.7"), 40000, ip(VIP4), 80, [0; 6]));
    let in6 = inner(&Frame::udp(ip("2001:db8::7"), 40000, ip(VIP6), 53, [0; 6]));
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
        let frame = tunnel(Outer::to(dst), inner, vlan, opts);
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
            ..DecapStats::default()
        }
    );
}

#[test]
fn everything_else_passes_unchanged() {
    let Some(mut d) = decap() else { return };
    let in4 = inner(&Frame::tcp(ip("192.0.2.7"), 40000, ip(VIP4), 80, [0; 6]));
    let not_ours = tunnel(Outer::to("10.0.0.99"), &in4, None, &[]);
    let plain = Frame::tcp(ip("192.0.2.7"), 40000, ip(TUNNEL_V4), 80, BE_MAC).build();
    let mut fragment = tunnel(Outer::to(TUNNEL_V4), &in4, None, &[]);
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
            passed: 4,
            ..DecapStats::default()
        }
    );
}

#[test]
fn a_broken_inner_packet_is_dropped() {
    let Some(mut d) = decap() else { return };
    let in4 = inner(&Frame::tcp(ip("192.0.2.7"), 40000, ip(VIP4), 80, [0; 6]));
    let truncated = tunnel(Outer::to(TUNNEL_V4), &in4[..10], None, &[]);
    // Version 7: no such IP. (The outer header then announces IPv6.)
    let mut wrong_version = in4.clone();
    wrong_version[0] = 0x75;
    let wrong = tunnel(Outer::to(TUNNEL_V4), &wrong_version, None, &[]);
    let prog = d.program().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(run_program(prog, &truncated).action, XDP_DROP);
    assert_eq!(run_program(prog, &wrong).action, XDP_DROP);
    assert_eq!(
        stats(&d),
        DecapStats {
            malformed: 2,
            ..DecapStats::default()
        }
    );
}

#[test]
fn balancer_output_decapsulates_to_the_client_packet() {
    let Some(mut f) = BalancerFixture::new("decap_round_trip") else {
        return;
    };
    let mut d = Decap::load().unwrap_or_else(|e| panic!("{e:#}"));
    allow_test_traffic(&mut d);
    // The decapsulator accepts exactly what the balancer sends.
    assert_eq!(ip(LB_V4), IpAddr::from(BALANCER_V4));
    assert_eq!(ip(LB_V6), IpAddr::from(BALANCER_V6));
    f.add_vip(ip(VIP4), 80, PROTO_TCP, 0, &[ip(TUNNEL_V4)]);
    f.add_vip(ip(VIP6), 80, PROTO_TCP, 0, &[ip(TUNNEL_V6)]);
    // A tagged packet leaves only on its own VLAN: VLAN 9's backend.
    f.add_vlan_standin("xlbv9", IFACE, 9, TPID_8021Q, &["10.9.9.1/24"]);
    f.add_neighbour_on(ip(TUNNEL_V4_VLAN9), "xlbv9");
    d.add_address(ip(TUNNEL_V4_VLAN9))
        .unwrap_or_else(|e| panic!("{e}"));
    d.add_vip(ip(VIP4_VLAN9)).unwrap_or_else(|e| panic!("{e}"));
    f.add_vip(ip(VIP4_VLAN9), 80, PROTO_TCP, 0, &[ip(TUNNEL_V4_VLAN9)]);
    for fr in [
        Frame::tcp(ip("192.0.2.7"), 1234, ip(VIP4), 80, f.if_mac),
        Frame::tcp(ip("2001:db8::7"), 1234, ip(VIP6), 80, f.if_mac),
        Frame {
            vlan: Some(9),
            ..Frame::tcp(ip("192.0.2.7"), 1235, ip(VIP4_VLAN9), 80, f.if_mac)
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

#[test]
fn tunnels_from_anyone_but_a_balancer_pass_untouched_and_are_counted() {
    let Some(mut d) = decap() else { return };
    let prog = d.program().unwrap_or_else(|e| panic!("{e}"));
    let mut sent = 0;
    for (what, outer, v6_inner) in families() {
        let spoof = if outer.dst.is_ipv4() {
            SPOOF_V4
        } else {
            SPOOF_V6
        };
        let frame = tunnel(outer.from(spoof), &to_vip(v6_inner, NOT_ECT), None, &[]);
        assert_passed_unchanged(&run_program(prog, &frame), &frame, what);
        sent += 1;
    }
    // The other family's balancer address is no excuse, nor is the host's
    // own tunnel address as a source.
    for (what, outer) in [
        (
            "the balancer's IPv4 source written as ::ffff:a.b.c.d",
            Outer::to(TUNNEL_V6).from("::ffff:10.0.0.1"),
        ),
        ("our own address", Outer::to(TUNNEL_V4).from(TUNNEL_V4)),
    ] {
        let frame = tunnel(outer, &to_vip(false, NOT_ECT), None, &[]);
        assert_passed_unchanged(&run_program(prog, &frame), &frame, what);
        sent += 1;
    }
    // Nothing of the inner packet is judged for a stranger: not even a
    // broken one is dropped.
    let broken = tunnel(
        Outer::to(TUNNEL_V4).from(SPOOF_V4),
        &to_vip(false, NOT_ECT)[..10],
        None,
        &[],
    );
    assert_passed_unchanged(
        &run_program(prog, &broken),
        &broken,
        "broken, from a stranger",
    );
    sent += 1;
    assert_eq!(
        stats(&d),
        DecapStats {
            refused_source: sent,
            ..DecapStats::default()
        }
    );
}

#[test]
fn tunnels_to_an_inner_destination_that_is_not_a_vip_pass_untouched_and_are_counted() {
    let Some(mut d) = decap() else { return };
    let prog = d.program().unwrap_or_else(|e| panic!("{e}"));
    let mut sent = 0;
    for (what, outer, v6_inner) in families() {
        // The host's own address (its ssh, say) and a third party's.
        let targets = if v6_inner {
            [TUNNEL_V6, "2001:db8::99"]
        } else {
            [TUNNEL_V4, "198.51.100.99"]
        };
        let src = if v6_inner { "2001:db8::7" } else { "192.0.2.7" };
        for target in targets {
            let inner = inner(&Frame::tcp(ip(src), 40000, ip(target), 22, [0; 6]));
            let frame = tunnel(outer, &inner, None, &[]);
            assert_passed_unchanged(
                &run_program(prog, &frame),
                &frame,
                &format!("{what} to {target}"),
            );
            sent += 1;
        }
    }
    assert_eq!(
        stats(&d),
        DecapStats {
            refused_inner_dst: sent,
            ..DecapStats::default()
        }
    );
}

/// `inner` with its ECN field set to CE (IPv4 checksum recomputed by
/// etherparse).
fn marked_ce(inner: &[u8]) -> Vec<u8> {
    let mut out = inner.to_vec();
    if out[0] >> 4 == 4 {
        out[1] |= CE;
        fix_ipv4_checksum(&mut out, 0);
    } else {
        out[1] |= CE << 4;
    }
    out
}

/// The ECN field of the inner packet of a decapsulated frame, read by
/// etherparse; for IPv4 also checks the header checksum and the DSCP.
fn inner_ecn(out: &[u8], what: &str) -> u8 {
    let l3 = &out[14..];
    if l3[0] >> 4 == 4 {
        let h = Ipv4HeaderSlice::from_slice(l3)
            .unwrap_or_else(|e| panic!("{what}: {e}"))
            .to_header();
        assert_eq!(
            h.header_checksum,
            h.calc_header_checksum(),
            "{what}: IPv4 header checksum"
        );
        assert_eq!(h.dscp.value(), AF41 >> 2, "{what}: DSCP kept");
        h.ecn.value()
    } else {
        let h = Ipv6HeaderSlice::from_slice(l3)
            .unwrap_or_else(|e| panic!("{what}: {e}"))
            .to_header();
        assert_eq!(h.traffic_class >> 2, AF41 >> 2, "{what}: DSCP kept");
        h.traffic_class & 0b11
    }
}

#[test]
fn congestion_experienced_reaches_an_ecn_capable_inner_packet() {
    let Some(mut d) = decap() else { return };
    let prog = d.program().unwrap_or_else(|e| panic!("{e}"));
    let mut sent = 0;
    for (what, outer, v6_inner) in families() {
        for inner_ecn_bits in [ECT_0, ECT_1] {
            let inner = to_vip(v6_inner, inner_ecn_bits);
            let frame = tunnel(outer.tos(AF41 | CE), &inner, None, &[]);
            let r = run_program(prog, &frame);
            let what = format!("{what}, inner ECN {inner_ecn_bits:#04b}");
            assert_eq!(r.action, XDP_PASS, "{what}");
            assert_eq!(
                inner_ecn(&r.out, &what),
                IpEcn::CongestionExperienced.value(),
                "{what}"
            );
            assert_eq!(r.out, decapsulated(&marked_ce(&inner), None), "{what}");
            sent += 1;
        }
    }
    // With IPv4 options the checksum covers more than 20 bytes.
    let with_options = inner(&Frame {
        tos: AF41 | ECT_0,
        ipv4_options: vec![1, 1, 1, 0],
        ..Frame::tcp(ip("192.0.2.7"), 40001, ip(VIP4), 80, [0; 6])
    });
    let frame = tunnel(Outer::to(TUNNEL_V4).tos(CE), &with_options, None, &[]);
    let r = run_program(prog, &frame);
    assert_eq!(r.action, XDP_PASS);
    assert_eq!(inner_ecn(&r.out, "inner ipv4 options"), CE);
    assert_eq!(r.out, decapsulated(&marked_ce(&with_options), None));
    sent += 1;
    assert_eq!(
        stats(&d),
        DecapStats {
            decapsulated: sent,
            ..DecapStats::default()
        }
    );
}

#[test]
fn congestion_experienced_over_a_not_ect_inner_packet_is_dropped() {
    let Some(mut d) = decap() else { return };
    let prog = d.program().unwrap_or_else(|e| panic!("{e}"));
    for (what, outer, v6_inner) in families() {
        let frame = tunnel(outer.tos(CE), &to_vip(v6_inner, NOT_ECT), None, &[]);
        assert_eq!(run_program(prog, &frame).action, XDP_DROP, "{what}");
    }
    assert_eq!(
        stats(&d),
        DecapStats {
            ecn_dropped: 4,
            ..DecapStats::default()
        }
    );
}

#[test]
fn other_ecn_combinations_leave_the_inner_packet_as_it_is() {
    let Some(mut d) = decap() else { return };
    let prog = d.program().unwrap_or_else(|e| panic!("{e}"));
    let mut sent = 0;
    for (what, outer, v6_inner) in families() {
        for (outer_ecn, inner_ecn_bits) in [
            (NOT_ECT, NOT_ECT),
            (ECT_0, NOT_ECT),
            (ECT_1, NOT_ECT),
            (NOT_ECT, ECT_0),
            (ECT_1, ECT_0),
            (ECT_0, ECT_1),
            (NOT_ECT, CE),
            (CE, CE),
        ] {
            let inner = to_vip(v6_inner, inner_ecn_bits);
            let frame = tunnel(outer.tos(outer_ecn), &inner, None, &[]);
            let r = run_program(prog, &frame);
            let what = format!("{what}, outer {outer_ecn:#04b} inner {inner_ecn_bits:#04b}");
            assert_eq!(r.action, XDP_PASS, "{what}");
            assert_eq!(r.out, decapsulated(&inner, None), "{what}");
            sent += 1;
        }
    }
    assert_eq!(
        stats(&d),
        DecapStats {
            decapsulated: sent,
            ..DecapStats::default()
        }
    );
}
