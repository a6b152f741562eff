//! ICMP and fragments, byte for byte: "fragmentation needed" / "packet too
//! big" generated for packets too big once encapsulated (quote, MTU,
//! checksums, rate limit), ICMP errors balanced as the flow they quote
//! (flow table, Maglev, a flow whose backend changed, unreadable quotes),
//! echo requests answered for VIP addresses, fragments of source-ip VIPs;
//! errors and fragments leave by their VIP's forwarding mode.
//! Expected frames are built independently with etherparse.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::PacketBuilder;
use lb_common::{
    Forwarding, GlobalConfig, Verdict, PROTO_TCP, PROTO_UDP, VIP_F_NO_FLOW_TABLE, VIP_F_SOURCE_HASH,
};
use xlb_tests::{
    balancer_fixture::{backend_mac, BalancerFixture, BALANCER_V4, BALANCER_V6, IFACE},
    expect::{
        assert_encapsulated, assert_passed_unchanged, outer_destination, Encapsulated, XDP_DROP,
        XDP_PASS, XDP_TX,
    },
    frames::{fix_ipv4_checksum, Frame, CLIENT_MAC, TCP_ACK},
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

const CLIENT4: [u8; 4] = [192, 0, 2, 7];
const CLIENT6: &str = "2001:db8::7";
const ROUTER4: [u8; 4] = [198, 51, 100, 1];
const ROUTER6: &str = "2001:db8:ffff::1";
const VIP4: [u8; 4] = [10, 100, 0, 1];
const VIP6: &str = "fd00:100::1";
const B4: [&str; 3] = ["10.0.0.11", "10.0.0.12", "10.0.0.13"];
const B6: [&str; 2] = ["fd00::11", "fd00::12"];

fn v6(s: &str) -> [u8; 16] {
    s.parse::<Ipv6Addr>()
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .octets()
}

fn backends(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|b| ip(b)).collect()
}

fn verdict_count(f: &BalancerFixture, v: Verdict) -> u64 {
    f.dp.verdicts().unwrap_or_else(|e| panic!("{e}"))[v as usize]
}

fn set_icmp_rate(f: &mut BalancerFixture, rate: u32) {
    f.dp.set_global_config(
        &GlobalConfig::new(
            Some(Ipv4Addr::from(BALANCER_V4)),
            Some(Ipv6Addr::from(BALANCER_V6)),
        )
        .with_icmp_rate(rate),
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

/// The per-CPU buckets: a test run executes on the caller's CPU; stay on one.
fn pin_to_cpu0() {
    let mut cpus = nix::sched::CpuSet::new();
    cpus.set(0).unwrap_or_else(|e| panic!("{e}"));
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &cpus)
        .unwrap_or_else(|e| panic!("pinning to CPU 0: {e}"));
}

/// What an encapsulated ICMP (or any non-`Frame`) input must become toward
/// `backend`.
fn toward<'a>(f: &BalancerFixture, input: &'a [u8], backend: IpAddr) -> Encapsulated<'a> {
    let inner_len = if input[14] >> 4 == 4 {
        usize::from(u16::from_be_bytes([input[16], input[17]]))
    } else {
        40 + usize::from(u16::from_be_bytes([input[18], input[19]]))
    };
    Encapsulated {
        input,
        l2_len: 14,
        inner_len,
        src_mac: f.if_mac,
        dst_mac: backend_mac(backend),
        outer_src: if backend.is_ipv4() {
            IpAddr::from(BALANCER_V4)
        } else {
            IpAddr::from(BALANCER_V6)
        },
        outer_dst: backend,
        tos: tos_of(input),
        ttl: lb_common::DEFAULT_OUTER_TTL,
        gue_dport: None,
        gue_sport: None,
    }
}

fn tos_of(input: &[u8]) -> u8 {
    if input[14] >> 4 == 4 {
        input[15]
    } else {
        (input[14] << 4) | (input[15] >> 4)
    }
}

// ---------------------------------------------------------------------------
// Generated too-big errors.

#[test]
fn too_big_ipv4_is_answered_with_fragmentation_needed() {
    let Some(mut f) = BalancerFixture::new("icmp_too_big_v4") else {
        return;
    };
    f.ns.ip(&format!("link set {IFACE} mtu 1400"));
    f.add_vip(IpAddr::from(VIP4), 80, PROTO_TCP, 0, &[ip(B4[0])]);
    let mut fr = Frame::tcp(
        IpAddr::from(CLIENT4),
        40000,
        IpAddr::from(VIP4),
        80,
        f.if_mac,
    );
    fr.l4 = xlb_tests::frames::L4::Tcp { flags: TCP_ACK };
    fr.payload = (0..1400 - 40).map(|i| i as u8).collect();
    let input = fr.build();
    let r = f.run(&input);
    assert_eq!(r.action, XDP_TX);
    assert_eq!(verdict_count(&f, Verdict::IcmpTooBigSent), 1);

    // RFC 792/1191: the IP header and 8 bytes; MTU = 1400 - 20 (IPv4 outer).
    let quote = &input[14..14 + 28];
    let mut expected = Vec::new();
    PacketBuilder::ethernet2(f.if_mac, CLIENT_MAC)
        .ipv4(VIP4, CLIENT4, 64)
        .icmpv4_raw(3, 4, [0, 0, 0x05, 0x64])
        .write(&mut expected, quote)
        .unwrap_or_else(|e| panic!("{e}"));
    expected[15] = 0xc0; // precedence "internetwork control"
    fix_ipv4_checksum(&mut expected, 14);
    assert_eq!(r.out, expected, "fragmentation needed, byte for byte");
    assert_eq!(
        u16::from_be_bytes([r.out[40], r.out[41]]),
        1380,
        "next-hop MTU"
    );

    // With IPv4 options the whole header is quoted.
    fr.ipv4_options = vec![0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x00];
    fr.payload.truncate(1400 - 48);
    let input = fr.build();
    let r = f.run(&input);
    assert_eq!(r.action, XDP_TX);
    let quote = &input[14..14 + 28 + 8];
    let mut expected = Vec::new();
    PacketBuilder::ethernet2(f.if_mac, CLIENT_MAC)
        .ipv4(VIP4, CLIENT4, 64)
        .icmpv4_raw(3, 4, [0, 0, 0x05, 0x64])
        .write(&mut expected, quote)
        .unwrap_or_else(|e| panic!("{e}"));
    expected[15] = 0xc0;
    fix_ipv4_checksum(&mut expected, 14);
    assert_eq!(r.out, expected, "options quoted");
}

#[test]
fn too_big_ipv6_is_answered_with_packet_too_big() {
    let Some(mut f) = BalancerFixture::new("icmp_too_big_v6") else {
        return;
    };
    f.ns.ip(&format!("link set {IFACE} mtu 1400"));
    f.add_vip(ip(VIP6), 53, PROTO_UDP, 0, &[ip(B6[0])]);
    let mut fr = Frame::udp(ip(CLIENT6), 5353, ip(VIP6), 53, f.if_mac);
    fr.payload = (0..1400 - 48).map(|i| (i * 7) as u8).collect();
    let input = fr.build();
    let r = f.run(&input);
    assert_eq!(r.action, XDP_TX);
    assert_eq!(verdict_count(&f, Verdict::IcmpTooBigSent), 1);
    // RFC 4443: as much as fits in 1,280 bytes; MTU = 1400 - 40 (IPv6 outer).
    let quote = &input[14..14 + 1232];
    let mut expected = Vec::new();
    PacketBuilder::ethernet2(f.if_mac, CLIENT_MAC)
        .ipv6(v6(VIP6), v6(CLIENT6), 64)
        .icmpv6_raw(2, 0, 1360u32.to_be_bytes())
        .write(&mut expected, quote)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.out.len(), 14 + 1280, "the error is the minimum MTU");
    assert_eq!(r.out, expected, "packet too big, byte for byte");

    // A path whose MTU minus the outer header is below 1,280 gets no error.
    f.ns.ip(&format!("link set {IFACE} mtu 1300"));
    assert_eq!(f.run(&input).action, XDP_DROP);
    assert_eq!(verdict_count(&f, Verdict::TooBig), 1);
}

#[test]
fn too_big_errors_are_rate_limited_per_cpu() {
    let Some(mut f) = BalancerFixture::new("icmp_too_big_limit") else {
        return;
    };
    pin_to_cpu0();
    f.ns.ip(&format!("link set {IFACE} mtu 1400"));
    f.add_vip(IpAddr::from(VIP4), 53, PROTO_UDP, 0, &[ip(B4[0])]);
    set_icmp_rate(&mut f, 3);
    let mut fr = Frame::udp(
        IpAddr::from(CLIENT4),
        5000,
        IpAddr::from(VIP4),
        53,
        f.if_mac,
    );
    fr.payload = vec![0xab; 1400 - 28];
    let input = fr.build();
    for i in 0..3 {
        assert_eq!(f.run(&input).action, XDP_TX, "error {i} within the burst");
    }
    assert_eq!(f.run(&input).action, XDP_DROP, "the burst is spent");
    assert_eq!(verdict_count(&f, Verdict::IcmpTooBigSent), 3);
    assert_eq!(verdict_count(&f, Verdict::IcmpTooBigLimited), 1);
    set_icmp_rate(&mut f, 0);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(f.run(&input).action, XDP_DROP, "rate 0 sends none");
    assert_eq!(verdict_count(&f, Verdict::IcmpTooBigLimited), 2);
}

// ---------------------------------------------------------------------------
// ICMP errors to the flow's backend.

/// The backend's reply of flow client:cport -> VIP:vport, as a router
/// quotes it: the IP header and `extra` bytes of transport header.
fn quoted_reply_v4(proto: u8, cport: u16, vport: u16, extra: usize) -> Vec<u8> {
    let mut q = Vec::new();
    let b = PacketBuilder::ipv4(VIP4, CLIENT4, 61);
    let payload = [0x5a; 64];
    if proto == PROTO_TCP {
        b.tcp(vport, cport, 7777, 1000)
            .write(&mut q, &payload)
            .unwrap_or_else(|e| panic!("{e}"));
    } else {
        b.udp(vport, cport)
            .write(&mut q, &payload)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    q.truncate(20 + extra);
    q
}

fn quoted_reply_v6(proto: u8, cport: u16, vport: u16, extra: usize) -> Vec<u8> {
    let mut q = Vec::new();
    let b = PacketBuilder::ipv6(v6(VIP6), v6(CLIENT6), 61);
    let payload = [0x5a; 64];
    if proto == PROTO_TCP {
        b.tcp(vport, cport, 7777, 1000)
            .write(&mut q, &payload)
            .unwrap_or_else(|e| panic!("{e}"));
    } else {
        b.udp(vport, cport)
            .write(&mut q, &payload)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    q.truncate(40 + extra);
    q
}

fn icmp4_error(f: &BalancerFixture, t: u8, code: u8, rest: [u8; 4], quote: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, f.if_mac)
        .ipv4(ROUTER4, VIP4, 60)
        .icmpv4_raw(t, code, rest)
        .write(&mut out, quote)
        .unwrap_or_else(|e| panic!("{e}"));
    out
}

fn icmp6_error(f: &BalancerFixture, t: u8, code: u8, rest: [u8; 4], quote: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, f.if_mac)
        .ipv6(v6(ROUTER6), v6(VIP6), 60)
        .icmpv6_raw(t, code, rest)
        .write(&mut out, quote)
        .unwrap_or_else(|e| panic!("{e}"));
    out
}

/// Where the client's own packet of the flow goes (one through the table).
fn forward_backend(f: &mut BalancerFixture, fr: &Frame) -> IpAddr {
    let r = f.run(&fr.build());
    assert_eq!(r.action, XDP_TX, "the flow's own packet");
    outer_destination(&r.out, 14)
}

#[test]
fn icmpv4_errors_reach_the_flows_backend() {
    let Some(mut f) = BalancerFixture::new("icmp_err_v4") else {
        return;
    };
    let bes = backends(&B4);
    let tcp = f.add_vip(IpAddr::from(VIP4), 80, PROTO_TCP, 0, &bes);
    f.add_vip(IpAddr::from(VIP4), 53, PROTO_UDP, 0, &bes);
    let kinds: [(u8, u8, [u8; 4]); 6] = [
        (3, 4, [0, 0, 0x05, 0x00]), // fragmentation needed, MTU 1280
        (3, 0, [0; 4]),
        (3, 1, [0; 4]),
        (3, 3, [0; 4]),
        (11, 0, [0; 4]),
        (12, 0, [20, 0, 0, 0]),
    ];
    let mut sent = 0;
    for proto in [PROTO_TCP, PROTO_UDP] {
        let vport = if proto == PROTO_TCP { 80 } else { 53 };
        for cport in 41000..41012u16 {
            let fr = if proto == PROTO_TCP {
                Frame::tcp(
                    IpAddr::from(CLIENT4),
                    cport,
                    IpAddr::from(VIP4),
                    vport,
                    f.if_mac,
                )
            } else {
                Frame::udp(
                    IpAddr::from(CLIENT4),
                    cport,
                    IpAddr::from(VIP4),
                    vport,
                    f.if_mac,
                )
            };
            // Maglev path: no entry yet for this flow.
            let (t, code, rest) = kinds[usize::from(cport - 41000) % kinds.len()];
            let input = icmp4_error(&f, t, code, rest, &quoted_reply_v4(proto, cport, vport, 8));
            let r = f.run(&input);
            assert_eq!(r.action, XDP_TX, "type {t} code {code}");
            let to = outer_destination(&r.out, 14);
            assert_encapsulated(&r.out, &toward(&f, &input, to), "icmp error");
            sent += 1;
            // The flow's own packet (which creates its entry) goes there too.
            assert_eq!(
                forward_backend(&mut f, &fr),
                to,
                "proto {proto} port {cport}"
            );
        }
    }
    assert_eq!(verdict_count(&f, Verdict::IcmpToBackend), sent);

    // A flow whose backend changed: the table now sends everything to the
    // last backend, but the flow's entry (and its errors) stay.
    let fr = Frame::tcp(
        IpAddr::from(CLIENT4),
        41001,
        IpAddr::from(VIP4),
        80,
        f.if_mac,
    );
    let mut fr_ack = fr.clone();
    fr_ack.l4 = xlb_tests::frames::L4::Tcp { flags: TCP_ACK };
    let before = forward_backend(&mut f, &fr_ack);
    let other = (0..bes.len()).find(|i| bes[*i] != before).unwrap_or(0);
    f.set_table(&tcp, |_| other);
    let input = icmp4_error(
        &f,
        3,
        4,
        [0, 0, 5, 0],
        &quoted_reply_v4(PROTO_TCP, 41001, 80, 8),
    );
    let r = f.run(&input);
    assert_eq!(r.action, XDP_TX);
    assert_encapsulated(&r.out, &toward(&f, &input, before), "entry followed");
    assert_eq!(forward_backend(&mut f, &fr_ack), before, "the flow stays");
    // A flow without entry follows the new table.
    let input = icmp4_error(
        &f,
        3,
        4,
        [0, 0, 5, 0],
        &quoted_reply_v4(PROTO_TCP, 45000, 80, 8),
    );
    let r = f.run(&input);
    assert_encapsulated(&r.out, &toward(&f, &input, bes[other]), "table followed");
}

#[test]
fn icmpv6_errors_reach_the_flows_backend() {
    let Some(mut f) = BalancerFixture::new("icmp_err_v6") else {
        return;
    };
    let bes = backends(&B6);
    f.add_vip(ip(VIP6), 443, PROTO_TCP, 0, &bes);
    f.add_vip(ip(VIP6), 0, PROTO_UDP, VIP_F_NO_FLOW_TABLE, &bes);
    let kinds: [(u8, u8, [u8; 4]); 5] = [
        (2, 0, 1400u32.to_be_bytes()),
        (1, 4, [0; 4]),
        (1, 0, [0; 4]),
        (3, 0, [0; 4]),
        (4, 0, [0, 0, 0, 40]),
    ];
    let mut sent = 0;
    for proto in [PROTO_TCP, PROTO_UDP] {
        let vport = if proto == PROTO_TCP { 443 } else { 4500 };
        for cport in 50000..50010u16 {
            let (t, code, rest) = kinds[usize::from(cport - 50000) % kinds.len()];
            let input = icmp6_error(&f, t, code, rest, &quoted_reply_v6(proto, cport, vport, 8));
            let r = f.run(&input);
            assert_eq!(r.action, XDP_TX, "type {t} code {code}");
            let to = outer_destination(&r.out, 14);
            assert_encapsulated(&r.out, &toward(&f, &input, to), "icmpv6 error");
            sent += 1;
            let fr = if proto == PROTO_TCP {
                Frame::tcp(ip(CLIENT6), cport, ip(VIP6), vport, f.if_mac)
            } else {
                Frame::udp(ip(CLIENT6), cport, ip(VIP6), vport, f.if_mac)
            };
            assert_eq!(
                forward_backend(&mut f, &fr),
                to,
                "proto {proto} port {cport}"
            );
        }
    }
    // A long quote (as much as fits in 1,280 bytes) is carried whole.
    let mut long = quoted_reply_v6(PROTO_TCP, 50001, 443, 8);
    long.extend(std::iter::repeat_n(0x33, 1000));
    let input = icmp6_error(&f, 2, 0, 1300u32.to_be_bytes(), &long);
    let r = f.run(&input);
    assert_eq!(r.action, XDP_TX);
    let to = outer_destination(&r.out, 14);
    assert_encapsulated(&r.out, &toward(&f, &input, to), "long quote");
    assert_eq!(verdict_count(&f, Verdict::IcmpToBackend), sent + 1);
}

#[test]
fn unreadable_or_foreign_quotes_are_never_sent_to_a_backend() {
    let Some(mut f) = BalancerFixture::new("icmp_err_bad") else {
        return;
    };
    f.add_vip(IpAddr::from(VIP4), 80, PROTO_TCP, 0, &backends(&B4));
    f.add_vip(ip(VIP6), 80, PROTO_TCP, 0, &backends(&B6));
    let good4 = quoted_reply_v4(PROTO_TCP, 40000, 80, 8);
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    // Cut short: the ports are not all there.
    cases.push(("truncated", icmp4_error(&f, 3, 4, [0; 4], &good4[..24])));
    cases.push(("header only", icmp4_error(&f, 3, 4, [0; 4], &good4[..20])));
    // Lying IHL: claims 60 bytes of header, 28 are quoted.
    let mut lying = good4.clone();
    lying[0] = 0x4f;
    cases.push(("lying ihl", icmp4_error(&f, 3, 4, [0; 4], &lying)));
    let mut short_ihl = good4.clone();
    short_ihl[0] = 0x44;
    cases.push(("ihl below 5", icmp4_error(&f, 3, 4, [0; 4], &short_ihl)));
    let mut version = good4.clone();
    version[0] = 0x65;
    cases.push(("wrong version", icmp4_error(&f, 3, 4, [0; 4], &version)));
    // Not a VIP's packet: another source than the address the error is for.
    let mut foreign = good4.clone();
    foreign[12..16].copy_from_slice(&[10, 200, 0, 9]);
    cases.push(("foreign source", icmp4_error(&f, 3, 4, [0; 4], &foreign)));
    // Not TCP/UDP.
    let mut other = good4.clone();
    other[9] = 47;
    cases.push(("gre quoted", icmp4_error(&f, 11, 0, [0; 4], &other)));
    // A non-first fragment (no ports).
    let mut later = good4.clone();
    later[6..8].copy_from_slice(&[0x00, 0x10]);
    cases.push(("later fragment", icmp4_error(&f, 3, 4, [0; 4], &later)));
    let good6 = quoted_reply_v6(PROTO_TCP, 40000, 80, 8);
    cases.push(("v6 truncated", icmp6_error(&f, 2, 0, [0; 4], &good6[..44])));
    let mut foreign6 = good6.clone();
    foreign6[8] = 0x20;
    cases.push((
        "v6 foreign source",
        icmp6_error(&f, 1, 0, [0; 4], &foreign6),
    ));
    let mut ext6 = good6.clone();
    ext6[6] = 0; // hop-by-hop options before the transport header
    cases.push(("v6 extension header", icmp6_error(&f, 1, 0, [0; 4], &ext6)));
    let n = cases.len() as u64;
    for (what, input) in &cases {
        assert_eq!(f.run(input).action, XDP_DROP, "{what}");
    }
    assert_eq!(verdict_count(&f, Verdict::IcmpMalformed), n);
    assert_eq!(verdict_count(&f, Verdict::IcmpToBackend), 0);

    // The VIP's address, but a port no VIP serves: not ours.
    let input = icmp4_error(&f, 3, 4, [0; 4], &quoted_reply_v4(PROTO_TCP, 40000, 81, 8));
    assert_passed_unchanged(&f.run(&input), &input, "no VIP at that port");
    // Other ICMP to a VIP address (an echo reply) and errors to other
    // addresses stay the kernel's.
    let mut reply = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, f.if_mac)
        .ipv4(ROUTER4, VIP4, 60)
        .icmpv4_echo_reply(1, 1)
        .write(&mut reply, b"hi")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_passed_unchanged(&f.run(&reply), &reply, "echo reply");
    let mut elsewhere = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, f.if_mac)
        .ipv4(ROUTER4, [10, 0, 0, 1], 60)
        .icmpv4_raw(3, 4, [0; 4])
        .write(&mut elsewhere, &good4)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_passed_unchanged(&f.run(&elsewhere), &elsewhere, "not a VIP address");
}

// ---------------------------------------------------------------------------
// Ping.

#[test]
fn echo_requests_to_a_vip_are_answered() {
    let Some(mut f) = BalancerFixture::new("icmp_ping") else {
        return;
    };
    f.add_vip(IpAddr::from(VIP4), 80, PROTO_TCP, 0, &backends(&B4));
    f.add_vip(ip(VIP6), 80, PROTO_TCP, 0, &backends(&B6));
    let payload: Vec<u8> = (0..56).collect();

    let mut req = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, f.if_mac)
        .ipv4(CLIENT4, VIP4, 50)
        .icmpv4_echo_request(0x1234, 7)
        .write(&mut req, &payload)
        .unwrap_or_else(|e| panic!("{e}"));
    let r = f.run(&req);
    assert_eq!(r.action, XDP_TX);
    let mut expected = Vec::new();
    PacketBuilder::ethernet2(f.if_mac, CLIENT_MAC)
        .ipv4(VIP4, CLIENT4, 64)
        .icmpv4_echo_reply(0x1234, 7)
        .write(&mut expected, &payload)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.out, expected, "echo reply, byte for byte");

    let mut req6 = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, f.if_mac)
        .ipv6(v6(CLIENT6), v6(VIP6), 50)
        .icmpv6_echo_request(0xbeef, 9)
        .write(&mut req6, &payload)
        .unwrap_or_else(|e| panic!("{e}"));
    let r = f.run(&req6);
    assert_eq!(r.action, XDP_TX);
    let mut expected6 = Vec::new();
    PacketBuilder::ethernet2(f.if_mac, CLIENT_MAC)
        .ipv6(v6(VIP6), v6(CLIENT6), 64)
        .icmpv6_echo_reply(0xbeef, 9)
        .write(&mut expected6, &payload)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.out, expected6, "ICMPv6 echo reply, byte for byte");
    assert_eq!(verdict_count(&f, Verdict::IcmpEchoReply), 2);

    // `ping = false` on every VIP of the address: the kernel's.
    f.write_marker(IpAddr::from(VIP4), false);
    assert_passed_unchanged(&f.run(&req), &req, "ping off");
    // Not a VIP address: the kernel's.
    let mut other = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, f.if_mac)
        .ipv4(CLIENT4, [10, 0, 0, 1], 50)
        .icmpv4_echo_request(1, 1)
        .write(&mut other, &payload)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_passed_unchanged(&f.run(&other), &other, "not a VIP");
}

#[test]
fn echo_replies_are_rate_limited() {
    let Some(mut f) = BalancerFixture::new("icmp_ping_limit") else {
        return;
    };
    pin_to_cpu0();
    f.add_vip(IpAddr::from(VIP4), 80, PROTO_TCP, 0, &backends(&B4));
    set_icmp_rate(&mut f, 2);
    let mut req = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, f.if_mac)
        .ipv4(CLIENT4, VIP4, 50)
        .icmpv4_echo_request(1, 1)
        .write(&mut req, b"ping")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(f.run(&req).action, XDP_TX);
    assert_eq!(f.run(&req).action, XDP_TX);
    assert_eq!(f.run(&req).action, XDP_DROP);
    assert_eq!(verdict_count(&f, Verdict::IcmpEchoReply), 2);
    assert_eq!(verdict_count(&f, Verdict::IcmpEchoLimited), 1);
}

// ---------------------------------------------------------------------------
// Fragments.

#[test]
fn fragments_of_source_ip_vips_go_to_the_sources_backend() {
    let Some(mut f) = BalancerFixture::new("icmp_frags") else {
        return;
    };
    f.add_vip(
        IpAddr::from(VIP4),
        5000,
        PROTO_UDP,
        VIP_F_SOURCE_HASH,
        &backends(&B4),
    );
    f.add_vip(ip(VIP6), 5000, PROTO_UDP, VIP_F_SOURCE_HASH, &backends(&B6));
    f.add_vip(IpAddr::from(VIP4), 80, PROTO_TCP, 0, &backends(&B4));
    for (src, dst) in [
        (IpAddr::from(CLIENT4), IpAddr::from(VIP4)),
        (ip(CLIENT6), ip(VIP6)),
    ] {
        let whole = Frame::udp(src, 6000, dst, 5000, f.if_mac);
        let to = forward_backend(&mut f, &whole);
        for frag in [(true, 0), (true, 185), (false, 370)] {
            let mut fr = whole.clone();
            fr.payload = vec![0x77; 400];
            fr.fragment = Some(frag);
            let input = fr.build();
            let r = f.run(&input);
            assert_eq!(r.action, XDP_TX, "{src} fragment {frag:?}");
            assert_encapsulated(&r.out, &toward(&f, &input, to), "fragment");
        }
    }
    assert_eq!(verdict_count(&f, Verdict::FragmentToBackend), 6);
    // A five-tuple VIP's fragments are dropped.
    let mut fr = Frame::tcp(
        IpAddr::from(CLIENT4),
        6000,
        IpAddr::from(VIP4),
        80,
        f.if_mac,
    );
    fr.fragment = Some((true, 0));
    assert_eq!(f.run(&fr.build()).action, XDP_DROP);
    assert_eq!(verdict_count(&f, Verdict::Fragment), 1);
    let _ = XDP_PASS;
}

#[test]
fn icmp_errors_and_fragments_leave_by_their_vips_mode() {
    let Some(mut f) = BalancerFixture::new("icmp_modes") else {
        return;
    };
    let bes = backends(&B4);
    let mut tcp = f.add_vip(IpAddr::from(VIP4), 80, PROTO_TCP, 0, &bes);
    f.set_forwarding(&mut tcp, Forwarding::Gue, 6080);
    let mut udp = f.add_vip(IpAddr::from(VIP4), 5000, PROTO_UDP, VIP_F_SOURCE_HASH, &bes);
    f.set_forwarding(&mut udp, Forwarding::L2Dsr, 0);

    // GUE: an error quoting a TCP flow reaches the flow's backend inside
    // outer IPv4 + UDP to the VIP's GUE port, like the flow's packets.
    let fr = Frame::tcp(
        IpAddr::from(CLIENT4),
        41000,
        IpAddr::from(VIP4),
        80,
        f.if_mac,
    );
    let to = forward_backend(&mut f, &fr);
    let quote = quoted_reply_v4(PROTO_TCP, 41000, 80, 8);
    let input = icmp4_error(&f, 3, 4, [0, 0, 0x05, 0x00], &quote);
    let r = f.run(&input);
    assert_eq!(r.action, XDP_TX);
    let want = Encapsulated {
        gue_dport: Some(6080),
        ..toward(&f, &input, to)
    };
    assert_encapsulated(&r.out, &want, "ICMP error by GUE");
    assert_eq!(verdict_count(&f, Verdict::IcmpToBackend), 1);

    // l2-dsr: a source-ip VIP's fragments are the client's own fragments
    // behind the MAC of the source's backend.
    let whole = Frame::udp(
        IpAddr::from(CLIENT4),
        6000,
        IpAddr::from(VIP4),
        5000,
        f.if_mac,
    );
    let r = f.run(&whole.build());
    assert_eq!(r.action, XDP_TX);
    let dmac: [u8; 6] = r.out[..6].try_into().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        bes.iter().any(|&b| backend_mac(b) == dmac),
        "to a backend's MAC"
    );
    for frag in [(true, 0), (false, 185)] {
        let mut fr = whole.clone();
        fr.payload = vec![0x77; 400];
        fr.fragment = Some(frag);
        let input = fr.build();
        let r = f.run(&input);
        assert_eq!(r.action, XDP_TX, "fragment {frag:?}");
        let mut want = input.clone();
        want[..6].copy_from_slice(&dmac);
        want[6..12].copy_from_slice(&f.if_mac);
        assert_eq!(r.out, want, "fragment {frag:?} by l2-dsr");
    }
    assert_eq!(verdict_count(&f, Verdict::FragmentToBackend), 2);
}
