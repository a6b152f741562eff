//! The balancer's output, byte for byte: IP-in-IP toward the chosen backend in
//! every family combination, VLAN and IPv4 options, DSCP/ECN and TTL copying,
//! and what happens on each FIB outcome. Runs the real object through
//! BPF_PROG_TEST_RUN (root).

use std::net::{IpAddr, Ipv4Addr};

use lb_common::{
    Forwarding, GlobalConfig, Verdict, DEFAULT_OUTER_TTL, FAMILY_V4, PROTO_TCP, PROTO_UDP,
};
use xlb_tests::{
    balancer_fixture::{backend_mac, BalancerFixture, IFACE},
    expect::{
        assert_encapsulated, assert_passed_unchanged, Encapsulated, XDP_DROP, XDP_PASS,
        XDP_REDIRECT, XDP_TX,
    },
    frames::{with_flags, Frame, L4, TCP_ACK, TCP_PSH, TCP_SYN},
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

fn bal_v6_addr() -> std::net::Ipv6Addr {
    "fd00::1".parse().unwrap_or_else(|e| panic!("{e}"))
}

/// The expectation for a frame sent to a single-backend VIP.
fn expect<'a>(
    f: &BalancerFixture,
    input: &'a [u8],
    frame: &Frame,
    backend: IpAddr,
) -> Encapsulated<'a> {
    Encapsulated::toward(f, input, frame, backend)
}

fn verdict_count(f: &BalancerFixture, v: Verdict) -> u64 {
    f.dp.verdicts().unwrap_or_else(|e| panic!("{e}"))[v as usize]
}

/// Pins the test's thread to CPU 0. The next-hop cache is per CPU and a
/// test run executes on the caller's CPU: a flow's later packets find the
/// hop its first one cached (and take the short path) only on the same CPU.
fn stay_on_one_cpu() {
    let mut cpus = nix::sched::CpuSet::new();
    cpus.set(0).unwrap_or_else(|e| panic!("{e}"));
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &cpus)
        .unwrap_or_else(|e| panic!("pinning to CPU 0: {e}"));
}

#[test]
fn tcp_to_ipv4_vip_is_encapsulated_ipip_to_the_backend() {
    let Some(mut f) = BalancerFixture::new("tcp_to_ipv4_vip") else {
        return;
    };
    f.add_vip(ip(VIP4), 80, PROTO_TCP, 0, &[ip(B4)]);
    for flags in [0x02, TCP_ACK | TCP_PSH] {
        let mut fr = Frame::tcp(ip(CLIENT4), 40000, ip(VIP4), 80, f.if_mac);
        fr.l4 = L4::Tcp { flags };
        fr.payload = b"GET / HTTP/1.1\r\n\r\n".to_vec();
        let input = fr.build();
        let r = f.run(&input);
        assert_eq!(r.action, XDP_TX, "flags {flags:#x}");
        assert_encapsulated(&r.out, &expect(&f, &input, &fr, ip(B4)), "tcp v4");
    }
    assert_eq!(verdict_count(&f, Verdict::Tx), 2);
}

#[test]
fn udp_to_ipv4_vip_is_encapsulated_ipip_to_the_backend() {
    let Some(mut f) = BalancerFixture::new("udp_to_ipv4_vip") else {
        return;
    };
    f.add_vip(ip(VIP4), 53, PROTO_UDP, 0, &[ip(B4)]);
    let fr = Frame::udp(ip(CLIENT4), 5353, ip(VIP4), 53, f.if_mac);
    let input = fr.build();
    let r = f.run(&input);
    assert_eq!(r.action, XDP_TX);
    assert_encapsulated(&r.out, &expect(&f, &input, &fr, ip(B4)), "udp v4");
}

#[test]
fn ipv6_vip_to_ipv6_backend_is_ip6ip6() {
    let Some(mut f) = BalancerFixture::new("ipv6_vip_ipv6_backend") else {
        return;
    };
    f.add_vip(ip(VIP6), 443, PROTO_TCP, 0, &[ip(B6)]);
    let fr = Frame::tcp(ip(CLIENT6), 40000, ip(VIP6), 443, f.if_mac);
    let input = fr.build();
    let r = f.run(&input);
    assert_eq!(r.action, XDP_TX);
    assert_encapsulated(&r.out, &expect(&f, &input, &fr, ip(B6)), "v6 in v6");
    // The flow label carries the flow hash (fabric ECMP entropy): non-zero and
    // stable for the flow, also once its packets follow their entry (the
    // handshake's ACK makes it, the data packet follows it).
    let label_of = |out: &[u8]| u32::from_be_bytes([0, out[15] & 0x0f, out[16], out[17]]);
    let label = label_of(&r.out);
    assert_ne!(label, 0, "flow label should carry the flow hash");
    for flags in [TCP_SYN, TCP_ACK, TCP_ACK | TCP_PSH] {
        let again = f.run(&with_flags(&fr, flags).build());
        assert_eq!(again.action, XDP_TX);
        assert_eq!(label_of(&again.out), label, "flags {flags:#x}");
    }
}

#[test]
fn ipv4_vip_to_ipv6_backend_is_ipv4_in_ipv6() {
    let Some(mut f) = BalancerFixture::new("ipv4_vip_ipv6_backend") else {
        return;
    };
    f.add_vip(ip(VIP4), 80, PROTO_TCP, 0, &[ip(B6)]);
    let fr = Frame::tcp(ip(CLIENT4), 40001, ip(VIP4), 80, f.if_mac);
    let input = fr.build();
    let r = f.run(&input);
    assert_eq!(r.action, XDP_TX);
    assert_encapsulated(&r.out, &expect(&f, &input, &fr, ip(B6)), "v4 in v6");
    assert_eq!(r.out[14 + 6], 4, "next header must be IPIP (4)");
}

#[test]
fn ipv6_vip_to_ipv4_backend_is_ipv6_in_ipv4() {
    let Some(mut f) = BalancerFixture::new("ipv6_vip_ipv4_backend") else {
        return;
    };
    f.add_vip(ip(VIP6), 80, PROTO_UDP, 0, &[ip(B4)]);
    let fr = Frame::udp(ip(CLIENT6), 40001, ip(VIP6), 80, f.if_mac);
    let input = fr.build();
    let r = f.run(&input);
    assert_eq!(r.action, XDP_TX);
    assert_encapsulated(&r.out, &expect(&f, &input, &fr, ip(B4)), "v6 in v4");
    assert_eq!(r.out[14 + 9], 41, "protocol must be IPv6 (41)");
}

#[test]
fn double_tagged_frames_are_not_parsed() {
    let Some(mut f) = BalancerFixture::new("double_tagged") else {
        return;
    };
    f.add_vip(ip(VIP4), 80, PROTO_TCP, 0, &[ip(B4)]);
    let mut fr = Frame::tcp(ip(CLIENT4), 41000, ip(VIP4), 80, f.if_mac);
    fr.vlan = Some(100);
    let mut input = fr.build();
    // Insert a second 802.1Q tag after the first.
    input.splice(16..16, [0x81, 0x00, 0x00, 0xc8]);
    let r = f.run(&input);
    assert_passed_unchanged(&r, &input, "Q-in-Q");
    assert_eq!(verdict_count(&f, Verdict::NotIp), 1);
}

#[test]
fn ipv4_with_options_is_balanced_and_options_survive() {
    let Some(mut f) = BalancerFixture::new("ipv4_options") else {
        return;
    };
    f.add_vip(ip(VIP4), 80, PROTO_TCP, 0, &[ip(B4)]);
    // Record-route (7) with room for 2 addresses, then the longest legal header.
    for opts in [vec![7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0], vec![1; 40]] {
        let mut fr = Frame::tcp(ip(CLIENT4), 42000, ip(VIP4), 80, f.if_mac);
        fr.ipv4_options = opts.clone();
        fr.payload = b"data".to_vec();
        let input = fr.build();
        assert!(input[14] & 0x0f > 5, "the frame really has options");
        let r = f.run(&input);
        assert_eq!(r.action, XDP_TX, "options {opts:?}");
        assert_encapsulated(&r.out, &expect(&f, &input, &fr, ip(B4)), "ipv4 options");
    }
}

/// DSCP/ECN are copied from the inner header; the outer TTL / hop limit is
/// the configured one (64 unless set), never the client's: a packet that
/// arrives with TTL 1 must still reach the backend. The inner TTL is untouched
/// (`assert_encapsulated` compares the inner packet byte for byte).
#[test]
fn dscp_ecn_are_copied_and_the_outer_ttl_is_fixed() {
    let Some(mut f) = BalancerFixture::new("dscp_ecn_ttl") else {
        return;
    };
    f.add_vip(ip(VIP4), 80, PROTO_TCP, 0, &[ip(B4)]);
    f.add_vip(ip(VIP6), 80, PROTO_TCP, 0, &[ip(B6)]);
    let configured = GlobalConfig::new(Some(Ipv4Addr::new(10, 0, 0, 1)), Some(bal_v6_addr()));
    for (outer_ttl, config) in [
        (DEFAULT_OUTER_TTL, configured),
        (200, configured.with_outer_ttl(200)),
        (1, configured.with_outer_ttl(1)),
    ] {
        f.dp.set_global_config(&config)
            .unwrap_or_else(|e| panic!("{e}"));
        for (client, vip, backend) in [(CLIENT4, VIP4, B4), (CLIENT6, VIP6, B6)] {
            for inner_ttl in [1, 17, 255] {
                let mut fr = Frame::tcp(ip(client), 43000, ip(vip), 80, f.if_mac);
                fr.tos = (46 << 2) | 0b10; // EF, ECT(0)
                fr.ttl = inner_ttl;
                let input = fr.build();
                let r = f.run(&input);
                assert_eq!(r.action, XDP_TX);
                let e = Encapsulated {
                    ttl: outer_ttl,
                    ..expect(&f, &input, &fr, ip(backend))
                };
                assert_encapsulated(
                    &r.out,
                    &e,
                    &format!("{vip} inner ttl {inner_ttl}, outer ttl {outer_ttl}"),
                );
            }
        }
    }
}

/// Ethernet padding (a minimum-size frame) is neither counted in the outer
/// length nor sent.
#[test]
fn ethernet_padding_is_trimmed() {
    let Some(mut f) = BalancerFixture::new("ethernet_padding") else {
        return;
    };
    f.add_vip(ip(VIP4), 53, PROTO_UDP, 0, &[ip(B4)]);
    let mut fr = Frame::udp(ip(CLIENT4), 5000, ip(VIP4), 53, f.if_mac);
    fr.payload = vec![];
    let mut input = fr.build();
    input.resize(60, 0); // a minimum-size frame: 18 bytes of padding
    stay_on_one_cpu();
    // The second packet follows the entry and the cached hop (the short path).
    for packet in ["first", "second"] {
        let r = f.run(&input);
        assert_eq!(r.action, XDP_TX, "{packet}");
        let e = Encapsulated {
            inner_len: 28,
            ..expect(&f, &input, &fr, ip(B4))
        };
        assert_encapsulated(&r.out, &e, &format!("{packet} padded frame"));
        assert_eq!(r.out.len(), 14 + 20 + 28, "{packet}");
    }
}

/// A full-size frame whose IP packet is only 60 bytes long leaves as the
/// outer header plus those 60 bytes, whatever the families, and the MTU check
/// is about that length: the trailing bytes neither leave nor make the packet
/// "too big".
#[test]
fn trailing_bytes_beyond_the_ip_length_are_trimmed() {
    let Some(mut f) = BalancerFixture::new("trailing_bytes") else {
        return;
    };
    f.ns.ip(&format!("link set {IFACE} mtu 1400"));
    f.add_vip(ip(VIP4), 53, PROTO_UDP, 0, &[ip(B4)]);
    f.add_vip(ip(VIP6), 53, PROTO_UDP, 0, &[ip(B6)]);
    f.add_vip(ip(VIP4), 54, PROTO_UDP, 0, &[ip(B6)]);
    for (client, vip, port, backend) in [
        (CLIENT4, VIP4, 53, B4),
        (CLIENT6, VIP6, 53, B6),
        (CLIENT4, VIP4, 54, B6),
    ] {
        let mut fr = Frame::udp(ip(client), 5000, ip(vip), port, f.if_mac);
        // 60 bytes of IP: 20 (IPv4) or 40 (IPv6) header, 8 UDP, the rest payload.
        let ip_header = if fr.src.is_ipv4() { 20 } else { 40 };
        fr.payload = vec![0x5a; 60 - ip_header - 8];
        let mut input = fr.build();
        assert_eq!(input.len(), 14 + 60);
        input.resize(1514, 0xee);
        let r = f.run(&input);
        let what = format!("{vip}:{port} -> {backend}");
        assert_eq!(r.action, XDP_TX, "{what}");
        let e = Encapsulated {
            inner_len: 60,
            ..expect(&f, &input, &fr, ip(backend))
        };
        let outer_len = assert_encapsulated(&r.out, &e, &what);
        assert_eq!(r.out.len(), 14 + outer_len + 60, "{what}: frame length");
    }
    assert_eq!(verdict_count(&f, Verdict::TooBig), 0);
}

#[test]
fn port_zero_vip_matches_every_port_and_exact_port_wins() {
    let Some(mut f) = BalancerFixture::new("port_zero_vip") else {
        return;
    };
    let any = ip("10.0.0.12");
    let exact = ip("10.0.0.13");
    f.add_vip(ip(VIP4), 0, PROTO_TCP, 0, &[any]);
    f.add_vip(ip(VIP4), 443, PROTO_TCP, 0, &[exact]);
    for (port, backend) in [(80, any), (8080, any), (1, any), (443, exact)] {
        let fr = Frame::tcp(ip(CLIENT4), 44000, ip(VIP4), port, f.if_mac);
        let input = fr.build();
        let r = f.run(&input);
        assert_eq!(r.action, XDP_TX, "port {port}");
        assert_encapsulated(&r.out, &expect(&f, &input, &fr, backend), "port-0 vip");
    }
    // The port-0 VIP is TCP only: UDP to the same address is not a VIP.
    let fr = Frame::udp(ip(CLIENT4), 44000, ip(VIP4), 80, f.if_mac);
    let input = fr.build();
    assert_passed_unchanged(&f.run(&input), &input, "udp to a tcp port-0 vip");
}

/// The VIP-address filter is asked before any VIP lookup: with its bit
/// clear a VIP's own address is passed as not ours (which shows the lookups
/// were skipped), and an address that shares a VIP's bit is still decided by
/// the lookups (passed, not dropped or balanced).
#[test]
fn the_vip_address_filter_decides_before_the_vip_lookups() {
    let Some(mut f) = BalancerFixture::new("vip_filter") else {
        return;
    };
    let backend = ip("10.0.0.12");
    f.add_vip(ip(VIP4), 80, PROTO_TCP, 0, &[backend]);
    let fr = Frame::tcp(ip(CLIENT4), 44000, ip(VIP4), 80, f.if_mac);
    let input = fr.build();
    assert_eq!(f.run(&input).action, XDP_TX, "bit set: balanced");

    // Another address with the VIP's bit: found by search, as rare as the
    // filter makes it.
    let (word, mask) = lb_common::vip_filter_slot_of(ip(VIP4));
    let twin = (0..=u32::MAX)
        .map(|i| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | i)))
        .find(|a| *a != ip(VIP4) && lb_common::vip_filter_slot_of(*a) == (word, mask))
        .unwrap_or_else(|| panic!("no address shares the VIP's bit"));
    let other = Frame::tcp(ip(CLIENT4), 44000, twin, 80, f.if_mac).build();
    assert_passed_unchanged(&f.run(&other), &other, "a twin of the VIP's bit");

    let passed = verdict_count(&f, Verdict::NotVip);
    f.dp.set_vip_filter_word(word, 0)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_passed_unchanged(&f.run(&input), &input, "bit clear: not a VIP address");
    assert_eq!(verdict_count(&f, Verdict::NotVip), passed + 1);
}

#[test]
fn vip_without_backends_drops_and_counts() {
    let Some(mut f) = BalancerFixture::new("vip_no_backends") else {
        return;
    };
    f.add_vip(ip(VIP4), 80, PROTO_TCP, 0, &[]);
    let input = Frame::tcp(ip(CLIENT4), 45000, ip(VIP4), 80, f.if_mac).build();
    assert_eq!(f.run(&input).action, XDP_DROP);
    assert_eq!(verdict_count(&f, Verdict::NoBackend), 1);
}

#[test]
fn missing_outer_source_drops_and_counts() {
    let Some(mut f) = BalancerFixture::new("missing_outer_source") else {
        return;
    };
    f.add_vip(ip(VIP6), 80, PROTO_TCP, 0, &[ip(B6)]);
    f.dp.set_global_config(&GlobalConfig::new(Some(Ipv4Addr::new(10, 0, 0, 1)), None))
        .unwrap_or_else(|e| panic!("{e}"));
    let input = Frame::tcp(ip(CLIENT6), 45000, ip(VIP6), 80, f.if_mac).build();
    assert_eq!(f.run(&input).action, XDP_DROP);
    assert_eq!(verdict_count(&f, Verdict::NoOuterSource), 1);
}

#[test]
fn unresolved_neighbour_passes_the_encapsulated_packet_to_the_kernel() {
    let Some(mut f) = BalancerFixture::new("unresolved_neighbour") else {
        return;
    };
    // 10.0.0.99 is on the link but has no neighbour entry.
    let vip = f.add_vip(ip(VIP4), 80, PROTO_TCP, 0, &[ip(B4)]);
    f.ns.ip(&format!("neigh del {B4} dev {IFACE}"));
    let _ = vip;
    // An established flow (an ACK makes its entry): its later packets, on
    // the same CPU, must not take the short path either, since no next
    // hop was cached for them.
    let mut fr = Frame::tcp(ip(CLIENT4), 46000, ip(VIP4), 80, f.if_mac);
    fr.l4 = L4::Tcp {
        flags: TCP_ACK | TCP_PSH,
    };
    let input = fr.build();
    stay_on_one_cpu();
    for n in 1..=2 {
        let r = f.run(&input);
        assert_eq!(
            r.action, XDP_PASS,
            "packet {n}, no neighbour: the kernel must resolve it"
        );
        // Encapsulated, but addressed to this host's own MAC so the stack takes it.
        let e = Encapsulated {
            src_mac: fr.src_mac,
            dst_mac: fr.dst_mac,
            ..expect(&f, &input, &fr, ip(B4))
        };
        assert_encapsulated(&r.out, &e, &format!("packet {n}, no neighbour"));
        assert_eq!(verdict_count(&f, Verdict::FibNoNeigh), n, "packet {n}");
    }
}

#[test]
fn unroutable_backend_drops_and_counts() {
    let Some(mut f) = BalancerFixture::new("unroutable_backend") else {
        return;
    };
    f.ns.ip("route add blackhole 203.0.113.0/24");
    f.add_vip(ip(VIP4), 80, PROTO_TCP, 0, &[ip("203.0.113.5")]);
    let input = Frame::tcp(ip(CLIENT4), 47000, ip(VIP4), 80, f.if_mac).build();
    assert_eq!(f.run(&input).action, XDP_DROP);
    assert_eq!(verdict_count(&f, Verdict::FibUnreachable), 1);
}

#[test]
fn backend_behind_another_interface_is_redirected_through_the_devmap() {
    let Some(mut f) = BalancerFixture::new("redirect_other_iface") else {
        return;
    };
    f.ns.ip("link add xlbp2 type veth peer name xlbp3");
    f.ns.ip("addr add 10.9.0.1/24 dev xlbp2");
    f.ns.ip("link set xlbp2 up");
    f.ns.ip("link set xlbp3 up");
    let backend = ip("10.9.0.5");
    f.ns.ip("neigh replace 10.9.0.5 lladdr 02:be:0a:09:00:05 dev xlbp2 nud permanent");
    let egress = f.ns.ifindex("xlbp2");
    let egress_mac = f.ns.mac("xlbp2");
    f.add_vip(ip(VIP4), 80, PROTO_TCP, 0, &[backend]);
    // An ACK: the first packet makes the flow's entry, and the later ones
    // take the short path (the entry and the hop the first one cached):
    // it must redirect, and fail, alike.
    let mut fr = Frame::tcp(ip(CLIENT4), 48000, ip(VIP4), 80, f.if_mac);
    fr.l4 = L4::Tcp {
        flags: TCP_ACK | TCP_PSH,
    };
    let input = fr.build();
    stay_on_one_cpu();

    // Not an allowed transmit port yet: dropped, never sent somewhere unexpected.
    for n in 1..=2 {
        assert_eq!(f.run(&input).action, XDP_DROP, "packet {n}");
        assert_eq!(verdict_count(&f, Verdict::RedirectFailed), n, "packet {n}");
    }

    f.dp.add_tx_port(egress).unwrap_or_else(|e| panic!("{e}"));
    for n in 1..=2 {
        let r = f.run(&input);
        assert_eq!(r.action, XDP_REDIRECT, "packet {n}");
        let e = Encapsulated {
            src_mac: egress_mac,
            ..expect(&f, &input, &fr, backend)
        };
        assert_encapsulated(&r.out, &e, &format!("redirected packet {n}"));
        assert_eq!(verdict_count(&f, Verdict::Redirect), n, "packet {n}");
    }
}

/// Too big once encapsulated: with DF clear (the sender does no path MTU
/// discovery) the packet is dropped and counted; with DF set it is answered
/// (`packet_icmp` checks the error byte for byte).
#[test]
fn packets_too_big_for_the_egress_mtu_after_encapsulation() {
    let Some(mut f) = BalancerFixture::new("too_big") else {
        return;
    };
    f.ns.ip(&format!("link set {IFACE} mtu 1400"));
    f.add_vip(ip(VIP4), 53, PROTO_UDP, 0, &[ip(B4)]);
    let mut fr = Frame::udp(ip(CLIENT4), 5000, ip(VIP4), 53, f.if_mac);
    // 1400-byte inner packet: fits the link, not with 20 more bytes.
    fr.payload = vec![0xab; 1400 - 28];
    let mut no_df = fr.build();
    no_df[14 + 6] &= !0x40;
    xlb_tests::frames::fix_ipv4_checksum(&mut no_df, 14);
    assert_eq!(f.run(&no_df).action, XDP_DROP, "DF clear: dropped");
    assert_eq!(verdict_count(&f, Verdict::TooBig), 1);
    assert_eq!(f.run(&fr.build()).action, XDP_TX, "DF set: answered");
    assert_eq!(verdict_count(&f, Verdict::IcmpTooBigSent), 1);
    fr.payload = vec![0xab; 1380 - 28];
    let input = fr.build();
    let r = f.run(&input);
    assert_eq!(r.action, XDP_TX, "exactly MTU after encapsulation fits");
    assert_encapsulated(&r.out, &expect(&f, &input, &fr, ip(B4)), "fits");
    assert_eq!(verdict_count(&f, Verdict::Tx), 1);
    let _ = FAMILY_V4;
}

/// The per-CPU next-hop cache: reused while fresh, refreshed after
/// `NEXTHOP_TTL_NS` (a neighbour change takes effect), bypassed for packets
/// longer than the MTU check covered, and forgotten when the daemon resets an
/// id for a new backend.
#[test]
fn cached_next_hops_expire_respect_the_mtu_and_reset() {
    let Some(mut f) = BalancerFixture::new("next_hop_cache") else {
        return;
    };
    stay_on_one_cpu();
    let vip = f.add_vip(ip(VIP4), 53, PROTO_UDP, 0, &[ip(B4)]);
    let mut fr = Frame::udp(ip(CLIENT4), 5000, ip(VIP4), 53, f.if_mac);
    fr.payload = vec![1; 100];
    let small = fr.build();
    assert_eq!(
        &f.run(&small).out[0..6],
        &backend_mac(ip(B4)),
        "first packet: the FIB's MAC"
    );

    // The neighbour changes MAC: the cached answer stays in use for now...
    let new_mac = "02:be:99:99:99:99";
    f.ns.ip(&format!(
        "neigh replace {B4} lladdr {new_mac} dev {IFACE} nud permanent"
    ));
    assert_eq!(
        &f.run(&small).out[0..6],
        &backend_mac(ip(B4)),
        "within the TTL the cache answers"
    );
    // ...and is replaced once the entry expires.
    std::thread::sleep(std::time::Duration::from_nanos(
        lb_common::NEXTHOP_TTL_NS + 50_000_000,
    ));
    assert_eq!(
        &f.run(&small).out[0..6],
        &[0x02, 0xbe, 0x99, 0x99, 0x99, 0x99],
        "after the TTL the FIB answers again"
    );

    // A packet longer than any the FIB checked is checked again: too big now.
    f.ns.ip(&format!("link set {IFACE} mtu 1300"));
    fr.payload = vec![2; 1290];
    f.run(&fr.build());
    assert_eq!(
        verdict_count(&f, Verdict::IcmpTooBigSent),
        1,
        "a longer packet must not skip the MTU check"
    );

    // reset_next_hop (done by the reconciler when it reassigns an id) forgets it.
    f.ns.ip(&format!(
        "neigh replace {B4} lladdr 02:be:88:88:88:88 dev {IFACE} nud permanent"
    ));
    f.dp.reset_next_hop(vip.backend_ids[0])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        &f.run(&small).out[0..6],
        &[0x02, 0xbe, 0x88, 0x88, 0x88, 0x88],
        "a reset entry asks the FIB"
    );
}

/// An established flow's packets after its first take the balancer's short
/// path (`established`: the entry followed, the next hop cached), the first
/// the general one (FIB lookup, entry created): both must send the same
/// frame and count alike (verdict, the VIP's and the backend's packets and
/// bytes), in every encapsulating mode and family combination.
#[test]
fn an_established_flow_leaves_alike_by_the_general_and_the_short_path() {
    let Some(mut f) = BalancerFixture::new("short_path_alike") else {
        return;
    };
    stay_on_one_cpu();
    let cases = [
        (
            "ipip v4 tcp",
            VIP4,
            CLIENT4,
            B4,
            PROTO_TCP,
            Forwarding::Ipip,
        ),
        (
            "ipip v6 udp",
            VIP6,
            CLIENT6,
            B6,
            PROTO_UDP,
            Forwarding::Ipip,
        ),
        (
            "ipip v4 in v6",
            "10.100.0.2",
            CLIENT4,
            "fd00::12",
            PROTO_TCP,
            Forwarding::Ipip,
        ),
        (
            "gue v4 udp",
            "10.100.0.3",
            CLIENT4,
            "10.0.0.13",
            PROTO_UDP,
            Forwarding::Gue,
        ),
        (
            "gue v6 in v4",
            "fd00:100::3",
            CLIENT6,
            "10.0.0.14",
            PROTO_TCP,
            Forwarding::Gue,
        ),
    ];
    const PACKETS: u64 = 4;
    for (what, vip_addr, client, backend, proto, mode) in cases {
        let mut v = f.add_vip(ip(vip_addr), 80, proto, 0, &[ip(backend)]);
        f.set_forwarding(&mut v, mode, 6081);
        let mut fr = if proto == PROTO_TCP {
            let mut fr = Frame::tcp(ip(client), 40000, ip(vip_addr), 80, f.if_mac);
            fr.l4 = L4::Tcp {
                flags: TCP_ACK | TCP_PSH,
            };
            fr
        } else {
            Frame::udp(ip(client), 40000, ip(vip_addr), 80, f.if_mac)
        };
        fr.payload = b"xlb short path".to_vec();
        let input = fr.build();
        let tx_before = verdict_count(&f, Verdict::Tx);
        let first = f.run(&input);
        assert_eq!(first.action, XDP_TX, "{what}: first packet");
        for n in 1..PACKETS {
            let r = f.run(&input);
            assert_eq!(r.action, XDP_TX, "{what}: packet {n}");
            assert_eq!(
                r.out, first.out,
                "{what}: packet {n} differs from the first"
            );
        }
        assert_eq!(
            verdict_count(&f, Verdict::Tx) - tx_before,
            PACKETS,
            "{what}: tx"
        );
        let ip_len = (input.len() - 14) as u64;
        let vs =
            f.dp.vip_stats(v.info.vip_id)
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (vs.packets, vs.bytes),
            (PACKETS, PACKETS * ip_len),
            "{what}: VIP stats"
        );
        let bs =
            f.dp.backend_stats(v.backend_ids[0])
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (bs.packets, bs.bytes),
            (PACKETS, PACKETS * ip_len),
            "{what}: backend stats"
        );
    }
}

/// A flow's packets spread over CPUs (RSS, a moved queue): the next-hop
/// cache is per CPU, so a packet on a CPU that has not seen the flow yet
/// takes the general path and the next one there the short path; every
/// packet leaves alike and is counted once, whichever CPU and path.
#[test]
fn an_established_flow_leaves_alike_on_every_cpu() {
    let Some(mut f) = BalancerFixture::new("short_path_cpus") else {
        return;
    };
    let allowed = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))
        .unwrap_or_else(|e| panic!("{e}"));
    let cpus: Vec<usize> = (0..nix::sched::CpuSet::count())
        .filter(|&c| allowed.is_set(c).unwrap_or(false))
        .take(4)
        .collect();
    if cpus.len() < 2 {
        eprintln!("an_established_flow_leaves_alike_on_every_cpu: one CPU here, only it is tried");
    }
    let v = f.add_vip(ip(VIP4), 80, PROTO_TCP, 0, &[ip(B4)]);
    let mut fr = Frame::tcp(ip(CLIENT4), 47000, ip(VIP4), 80, f.if_mac);
    fr.l4 = L4::Tcp {
        flags: TCP_ACK | TCP_PSH,
    };
    let input = fr.build();
    let mut first: Option<Vec<u8>> = None;
    let mut sent = 0u64;
    // Each CPU twice in a row (general path, then short), then the first
    // CPU again (short path on a hop cached long before).
    let order: Vec<usize> = cpus.iter().flat_map(|&c| [c, c]).chain([cpus[0]]).collect();
    for cpu in order {
        let mut set = nix::sched::CpuSet::new();
        set.set(cpu).unwrap_or_else(|e| panic!("{e}"));
        nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
            .unwrap_or_else(|e| panic!("pinning to CPU {cpu}: {e}"));
        let r = f.run(&input);
        sent += 1;
        assert_eq!(r.action, XDP_TX, "CPU {cpu}, packet {sent}");
        match &first {
            None => {
                assert_encapsulated(&r.out, &expect(&f, &input, &fr, ip(B4)), "first packet");
                first = Some(r.out);
            }
            Some(out) => assert_eq!(&r.out, out, "CPU {cpu}, packet {sent}"),
        }
    }
    assert_eq!(verdict_count(&f, Verdict::Tx), sent);
    let ip_len = (input.len() - 14) as u64;
    let vs =
        f.dp.vip_stats(v.info.vip_id)
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((vs.packets, vs.bytes), (sent, sent * ip_len), "VIP stats");
    let bs =
        f.dp.backend_stats(v.backend_ids[0])
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (bs.packets, bs.bytes),
        (sent, sent * ip_len),
        "backend stats"
    );
}
