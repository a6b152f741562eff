//! Everything that is not a clean TCP/UDP packet to a VIP: traffic that is not
//! ours passes untouched after one counter bump; truncated, fragmented or
//! extension-header packets get one documented verdict each and never a
//! malformed output.

use std::net::IpAddr;

use lb_common::{Verdict, PROTO_TCP, PROTO_UDP, TPID_8021Q};
use xlb_tests::{
    balancer_fixture::{BalancerFixture, IFACE},
    expect::{assert_passed_unchanged, XDP_DROP, XDP_PASS, XDP_TX},
    frames::{arp_request, lldp_frame, Frame},
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

const CLIENT4: &str = "192.0.2.7";
const CLIENT6: &str = "2001:db8::7";
const VIP4: &str = "10.100.0.1";
const VIP6: &str = "fd00:100::1";

fn verdicts(f: &BalancerFixture) -> [u64; Verdict::COUNT as usize] {
    f.dp.verdicts().unwrap_or_else(|e| panic!("{e}"))
}

/// Asserts exactly these verdict counters are non-zero, with these counts.
fn assert_verdicts(f: &BalancerFixture, expected: &[(Verdict, u64)]) {
    let got = verdicts(f);
    for v in Verdict::ALL {
        let want = expected
            .iter()
            .find(|(e, _)| *e == v)
            .map(|(_, n)| *n)
            .unwrap_or(0);
        assert_eq!(got[v as usize], want, "verdict counter {}", v.as_str());
    }
}

fn fixture_with_vips(test: &str) -> Option<BalancerFixture> {
    let mut f = BalancerFixture::new(test)?;
    f.add_vip(ip(VIP4), 80, PROTO_TCP, 0, &[ip("10.0.0.11")]);
    f.add_vip(ip(VIP4), 53, PROTO_UDP, 0, &[ip("10.0.0.11")]);
    f.add_vip(ip(VIP6), 80, PROTO_TCP, 0, &[ip("fd00::11")]);
    Some(f)
}

#[test]
fn non_vip_traffic_passes_unchanged_with_one_counter() {
    let Some(mut f) = fixture_with_vips("non_vip_traffic") else {
        return;
    };
    let mac = f.if_mac;
    let frames: Vec<(&str, Vec<u8>, Verdict)> = vec![
        (
            "ipv4 to another address",
            Frame::tcp(ip(CLIENT4), 1000, ip("10.0.0.1"), 22, mac).build(),
            Verdict::NotVip,
        ),
        (
            "ipv4 to the vip address, other port",
            Frame::tcp(ip(CLIENT4), 1000, ip(VIP4), 81, mac).build(),
            Verdict::NotVip,
        ),
        (
            "udp to a tcp vip's port",
            Frame::udp(ip(CLIENT4), 1000, ip(VIP4), 80, mac).build(),
            Verdict::NotVip,
        ),
        (
            "ipv6 to another address",
            Frame::tcp(ip(CLIENT6), 1000, ip("fd00::1"), 22, mac).build(),
            Verdict::NotVip,
        ),
        (
            "ipv6 udp to the vip address",
            Frame::udp(ip(CLIENT6), 1000, ip(VIP6), 80, mac).build(),
            Verdict::NotVip,
        ),
        (
            "arp",
            arp_request(mac, [10, 0, 0, 2], [10, 0, 0, 1]),
            Verdict::NotIp,
        ),
        ("lldp", lldp_frame(mac), Verdict::NotIp),
    ];
    for (what, frame, _) in &frames {
        let r = f.run(frame);
        assert_passed_unchanged(&r, frame, what);
    }
    // ICMP echo to the VIP address: not TCP/UDP, the kernel's business.
    let mut icmp = Frame::udp(ip(CLIENT4), 0, ip(VIP4), 0, mac).build();
    icmp[23] = 1; // protocol ICMP
    xlb_tests::frames::fix_ipv4_checksum(&mut icmp, 14);
    assert_passed_unchanged(&f.run(&icmp), &icmp, "icmp to the vip address");

    let not_vip = frames.iter().filter(|f| f.2 == Verdict::NotVip).count() as u64 + 1;
    let not_ip = frames.iter().filter(|f| f.2 == Verdict::NotIp).count() as u64;
    assert_verdicts(&f, &[(Verdict::NotVip, not_vip), (Verdict::NotIp, not_ip)]);
    // Nothing was counted against a VIP.
    for id in 0..3 {
        assert_eq!(
            f.dp.vip_stats(id).unwrap_or_else(|e| panic!("{e}")).packets,
            0
        );
    }
}

/// Every prefix of a valid VIP frame gets a safe verdict: XDP_PASS with the
/// bytes untouched (the kernel drops runts itself), never an encapsulated
/// partial packet. The whole frame is balanced. Frames shorter than an
/// Ethernet header never reach XDP (the kernel refuses even to test-run them),
/// which the test asserts rather than assumes.
#[test]
fn every_truncation_of_a_vip_packet_is_passed_untouched() {
    let Some(mut f) = fixture_with_vips("every_truncation") else {
        return;
    };
    let mac = f.if_mac;
    // A tagged packet leaves only on its own VLAN: a VIP whose backend is on
    // (a stand-in for) VLAN 7 of the balancer's interface.
    f.add_vlan_standin("xlbv7", IFACE, 7, TPID_8021Q, &["10.7.7.1/24"]);
    f.add_neighbour_on(ip("10.7.7.11"), "xlbv7");
    f.add_vip(ip("10.100.0.7"), 80, PROTO_TCP, 0, &[ip("10.7.7.11")]);
    let mut v4_vlan = Frame::tcp(ip(CLIENT4), 2000, ip("10.100.0.7"), 80, mac);
    v4_vlan.vlan = Some(7);
    let mut v4_opts = Frame::tcp(ip(CLIENT4), 2001, ip(VIP4), 80, mac);
    v4_opts.ipv4_options = vec![1, 1, 1, 1, 1, 1, 1, 0];
    let mut v6_ext = Frame::tcp(ip(CLIENT6), 2002, ip(VIP6), 80, mac);
    v6_ext.ipv6_ext = vec![(0, 8), (60, 16)];
    let cases = [
        ("tcp v4", Frame::tcp(ip(CLIENT4), 2003, ip(VIP4), 80, mac)),
        ("udp v4", Frame::udp(ip(CLIENT4), 2004, ip(VIP4), 53, mac)),
        ("tcp v6", Frame::tcp(ip(CLIENT6), 2005, ip(VIP6), 80, mac)),
        ("tcp v4 vlan", v4_vlan),
        ("tcp v4 options", v4_opts),
        ("tcp v6 ext headers", v6_ext),
    ];
    for (what, fr) in cases {
        let mut fr = fr;
        fr.payload = b"payload!".to_vec();
        let full = fr.build();
        for len in 0..full.len() {
            let cut = &full[..len];
            if len < 14 {
                assert!(
                    f.try_run(cut).is_err(),
                    "the kernel runs XDP on a {len}-byte frame"
                );
                continue;
            }
            let r = f.run(cut);
            assert_eq!(r.action, XDP_PASS, "{what}: {len} of {} bytes", full.len());
            assert_eq!(r.out, cut, "{what}: {len} bytes must pass untouched");
        }
        assert_eq!(
            f.run(&full).action,
            XDP_TX,
            "{what}: the whole frame is balanced"
        );
    }
    let v = verdicts(&f);
    assert_eq!(v[Verdict::Tx as usize], 6);
    assert_eq!(
        v[Verdict::Internal as usize] + v[Verdict::NoBackend as usize],
        0,
        "truncations never reach backend selection"
    );
}

#[test]
fn inconsistent_length_fields_are_malformed() {
    let Some(mut f) = fixture_with_vips("inconsistent_lengths") else {
        return;
    };
    let mac = f.if_mac;
    let good = Frame::tcp(ip(CLIENT4), 3000, ip(VIP4), 80, mac).build();
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut ihl_small = good.clone();
    ihl_small[14] = 0x44;
    cases.push(("IHL below 5", ihl_small));
    let mut tot_big = good.clone();
    tot_big[16..18].copy_from_slice(&1500u16.to_be_bytes());
    cases.push(("total length beyond the frame", tot_big));
    let mut tot_small = good.clone();
    tot_small[16..18].copy_from_slice(&30u16.to_be_bytes());
    cases.push(("total length cuts the TCP header", tot_small));
    let mut version = good.clone();
    version[14] = 0x55;
    cases.push(("version 5 with an IPv4 EtherType", version));
    let good6 = Frame::tcp(ip(CLIENT6), 3000, ip(VIP6), 80, mac).build();
    let mut plen0 = good6.clone();
    plen0[18..20].copy_from_slice(&0u16.to_be_bytes());
    cases.push(("IPv6 payload length 0 (jumbogram)", plen0));
    let mut plen_big = good6;
    plen_big[18..20].copy_from_slice(&900u16.to_be_bytes());
    cases.push(("IPv6 payload beyond the frame", plen_big));
    for (what, frame) in &cases {
        assert_passed_unchanged(&f.run(frame), frame, what);
    }
    assert_verdicts(&f, &[(Verdict::Malformed, cases.len() as u64)]);
}

#[test]
fn ipv4_fragments_to_a_vip_are_dropped_others_pass() {
    let Some(mut f) = fixture_with_vips("ipv4_fragments") else {
        return;
    };
    let mac = f.if_mac;
    // First fragment (MF, offset 0), a middle one and the last one.
    for (more, offset) in [(true, 0), (true, 185), (false, 370)] {
        let mut fr = Frame::udp(ip(CLIENT4), 4000, ip(VIP4), 53, mac);
        fr.fragment = Some((more, offset));
        let frame = fr.build();
        assert_eq!(
            f.run(&frame).action,
            XDP_DROP,
            "fragment MF={more} offset={offset}"
        );
        // The same fragment to an address that is no VIP is not ours.
        let mut other = fr.clone();
        other.dst = ip("10.0.0.50");
        let frame = other.build();
        assert_passed_unchanged(&f.run(&frame), &frame, "fragment to a non-vip");
    }
    // DF alone is not a fragment: balanced.
    let frame = Frame::udp(ip(CLIENT4), 4000, ip(VIP4), 53, mac).build();
    assert_eq!(frame[20] & 0x40, 0x40, "etherparse sets DF");
    assert_eq!(f.run(&frame).action, XDP_TX);
    assert_verdicts(
        &f,
        &[
            (Verdict::Fragment, 3),
            (Verdict::NotVip, 3),
            (Verdict::Tx, 1),
        ],
    );
}

#[test]
fn ipv6_fragment_headers_to_a_vip_are_dropped() {
    let Some(mut f) = fixture_with_vips("ipv6_fragments") else {
        return;
    };
    let mac = f.if_mac;
    let mut fr = Frame::tcp(ip(CLIENT6), 5000, ip(VIP6), 80, mac);
    fr.fragment = Some((true, 0));
    assert_eq!(f.run(&fr.build()).action, XDP_DROP);
    // Behind a hop-by-hop header too.
    fr.ipv6_ext = vec![(0, 8)];
    assert_eq!(f.run(&fr.build()).action, XDP_DROP);
    let mut other = fr.clone();
    other.dst = ip("fd00::99");
    let frame = other.build();
    assert_passed_unchanged(&f.run(&frame), &frame, "fragment to a non-vip");
    assert_verdicts(&f, &[(Verdict::Fragment, 2), (Verdict::NotVip, 1)]);
}

#[test]
fn ipv6_extension_headers_are_walked_up_to_three() {
    let Some(mut f) = fixture_with_vips("ipv6_extensions") else {
        return;
    };
    let mac = f.if_mac;
    let walked = [
        vec![(0, 8)],
        vec![(60, 24)],
        vec![(0, 8), (60, 8)],
        vec![(0, 8), (60, 8), (60, 16)],
    ];
    for exts in walked {
        let mut fr = Frame::tcp(ip(CLIENT6), 6000, ip(VIP6), 80, mac);
        fr.ipv6_ext = exts.clone();
        let frame = fr.build();
        let r = f.run(&frame);
        assert_eq!(r.action, XDP_TX, "extension headers {exts:?}");
        assert_eq!(&r.out[14 + 40..], &frame[14..], "inner packet unchanged");
    }
    // Four are more than the parser walks: dropped as unsupported if to a VIP.
    let mut fr = Frame::tcp(ip(CLIENT6), 6000, ip(VIP6), 80, mac);
    fr.ipv6_ext = vec![(0, 8), (60, 8), (60, 8), (60, 8)];
    assert_eq!(f.run(&fr.build()).action, XDP_DROP);
    // A routing header with segments left: the VIP is only a waypoint.
    let mut rh = Frame::tcp(ip(CLIENT6), 6000, ip(VIP6), 80, mac).build();
    let tcp = rh[14 + 6];
    rh.splice(54..54, [tcp, 0, 0, 1, 0, 0, 0, 0]); // type 0, segments left 1
    rh[14 + 6] = 43;
    let plen = u16::from_be_bytes([rh[18], rh[19]]) + 8;
    rh[18..20].copy_from_slice(&plen.to_be_bytes());
    assert_eq!(f.run(&rh).action, XDP_DROP);
    // An exhausted routing header (segments left 0) is walked.
    rh[57] = 0;
    assert_eq!(f.run(&rh).action, XDP_TX);
    assert_verdicts(&f, &[(Verdict::Tx, 5), (Verdict::Ipv6ExtUnsupported, 2)]);
}
