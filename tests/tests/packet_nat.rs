//! Full NAT (`forwarding = "nat"`) byte for byte, through the real objects
//! (`xlb_balancer` tail-calling `xlb_nat`) with BPF_PROG_TEST_RUN (root):
//! both directions in both families for TCP and UDP against frames built
//! from scratch by etherparse (so every checksum is checked against one
//! computed independently), UDP checksum 0 over IPv4, port allocation
//! (colliding candidates, exhaustion, reclaiming an expired session),
//! session states by TCP flags, and what happens to unknown replies.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use lb_common::{
    flow_hash,
    nat::{self, port_candidate, PORT_TRIES},
    FlowKey, Forwarding, GlobalConfig, NatConfig, NatEntry, NatTimeouts, Verdict, PROTO_TCP,
    PROTO_UDP,
};
use lb_userspace::explain::coarse_now_ns;
use xlb_tests::{
    balancer_fixture::{backend_mac, BalancerFixture, TestVip, BALANCER_V4, BALANCER_V6, IFACE},
    expect::{XDP_DROP, XDP_PASS, XDP_TX},
    frames::{Frame, L4, TCP_ACK, TCP_FIN, TCP_PSH, TCP_SYN},
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
/// The routers toward the clients (static neighbours with known MACs).
const GW4: &str = "10.0.0.254";
const GW6: &str = "fd00::fe";
const VPORT: u16 = 80;
const PORTS: (u16, u16) = (20000, 60000);

fn nat4() -> IpAddr {
    IpAddr::from(BALANCER_V4)
}

fn nat6() -> IpAddr {
    IpAddr::from(BALANCER_V6)
}

fn verdict_count(f: &BalancerFixture, v: Verdict) -> u64 {
    f.dp.verdicts().unwrap_or_else(|e| panic!("{e}"))[v as usize]
}

/// A fixture whose NAT addresses are the balancer's own (10.0.0.1, fd00::1),
/// with `ports` and `timeouts`, and routes toward the clients' networks.
fn nat_fixture(test: &str, ports: (u16, u16), timeouts: NatTimeouts) -> Option<BalancerFixture> {
    let f = BalancerFixture::new(test)?;
    let nat = NatConfig::new(
        &[Ipv4Addr::from(BALANCER_V4)],
        &[Ipv6Addr::from(BALANCER_V6)],
        ports,
    )
    .unwrap_or_else(|e| panic!("{e:?}"))
    .with_timeouts(timeouts);
    let cfg = GlobalConfig::new(
        Some(Ipv4Addr::from(BALANCER_V4)),
        Some(Ipv6Addr::from(BALANCER_V6)),
    )
    .with_nat(nat);
    let mut f = f;
    // As the control plane does: the NAT addresses' filter bits first (the
    // data plane looks for replies only among what the filter lets on).
    f.set_filter_bit(IpAddr::from(BALANCER_V4));
    f.set_filter_bit(IpAddr::from(BALANCER_V6));
    f.dp.set_global_config(&cfg)
        .unwrap_or_else(|e| panic!("{e}"));
    f.add_neighbour(ip(GW4));
    f.add_neighbour(ip(GW6));
    f.ns.ip(&format!("route add 192.0.2.0/24 via {GW4}"));
    f.ns.ip(&format!("-6 route add 2001:db8::/64 via {GW6}"));
    Some(f)
}

fn nat_vip(f: &mut BalancerFixture, addr: &str, proto: u8, backends: &[&str]) -> TestVip {
    let backends: Vec<IpAddr> = backends.iter().map(|b| ip(b)).collect();
    let mut v = f.add_vip(ip(addr), VPORT, proto, 0, &backends);
    f.set_forwarding(&mut v, Forwarding::Nat, 0);
    v
}

fn proto_of(fr: &Frame) -> u8 {
    match fr.l4 {
        L4::Tcp { .. } => PROTO_TCP,
        L4::Udp => PROTO_UDP,
    }
}

fn key_of(fr: &Frame) -> FlowKey {
    FlowKey::new(fr.src, fr.sport, fr.dst, fr.dport, proto_of(fr)).unwrap_or_else(|e| panic!("{e}"))
}

/// The NAT port try `attempt` of `fr`'s flow gives (`lb_common::nat`).
fn candidate(f: &BalancerFixture, fr: &Frame, attempt: u32) -> u16 {
    let seed =
        f.dp.global_config()
            .unwrap_or_else(|e| panic!("{e}"))
            .hash_seed();
    let cfg = f.dp.global_config().unwrap_or_else(|e| panic!("{e}"));
    let (min, max) = cfg.nat().port_range();
    port_candidate(flow_hash(seed, &key_of(fr)), attempt, min, max)
}

/// The NAT address of `fr`'s family.
fn nat_of(fr: &Frame) -> IpAddr {
    if fr.src.is_ipv4() {
        nat4()
    } else {
        nat6()
    }
}

/// What the client's frame `fr` must become toward `backend` from NAT port
/// `port`: built from scratch (every checksum computed by etherparse), from
/// the balancer's interface to the backend's MAC.
fn expected_forward(f: &BalancerFixture, fr: &Frame, backend: &str, port: u16) -> Vec<u8> {
    let mut out = fr.clone();
    out.src_mac = f.if_mac;
    out.dst_mac = backend_mac(ip(backend));
    out.src = nat_of(fr);
    out.sport = port;
    out.dst = ip(backend);
    out.build()
}

/// The backend's reply to `fr` (sent to the NAT address and port).
fn reply_to(f: &BalancerFixture, fr: &Frame, backend: &str, port: u16, l4: L4) -> Frame {
    let mut r = fr.clone();
    r.src_mac = backend_mac(ip(backend));
    r.dst_mac = f.if_mac;
    r.src = ip(backend);
    r.sport = fr.dport;
    r.dst = nat_of(fr);
    r.dport = port;
    r.l4 = l4;
    r.payload = b"reply bytes".to_vec();
    r
}

/// What a reply must become: from the VIP to the client, toward the
/// client's router.
fn expected_reply(f: &BalancerFixture, reply: &Frame, client: &Frame) -> Vec<u8> {
    let mut out = reply.clone();
    out.src_mac = f.if_mac;
    out.dst_mac = backend_mac(ip(if client.src.is_ipv4() { GW4 } else { GW6 }));
    out.src = client.dst;
    out.sport = client.dport;
    out.dst = client.src;
    out.dport = client.sport;
    out.build()
}

/// The reverse-map key of `fr`'s session toward `backend` from `port`.
fn reply_key(fr: &Frame, backend: &str, port: u16) -> FlowKey {
    FlowKey::new(ip(backend), fr.dport, nat_of(fr), port, proto_of(fr))
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn both_directions_are_byte_exact_for_tcp_and_udp_in_both_families() {
    let Some(mut f) = nat_fixture("nat_byte_exact", PORTS, NatTimeouts::DEFAULT) else {
        return;
    };
    let cases = [
        ("v4 tcp", VIP4, CLIENT4, B4, PROTO_TCP),
        ("v4 udp", VIP4, CLIENT4, B4, PROTO_UDP),
        ("v6 tcp", VIP6, CLIENT6, B6, PROTO_TCP),
        ("v6 udp", VIP6, CLIENT6, B6, PROTO_UDP),
    ];
    let mut replies = 0;
    for (what, vip_addr, client, backend, proto) in cases {
        nat_vip(&mut f, vip_addr, proto, &[backend]);
        let mut fr = if proto == PROTO_TCP {
            Frame::tcp(ip(client), 40000, ip(vip_addr), VPORT, f.if_mac)
        } else {
            Frame::udp(ip(client), 40000, ip(vip_addr), VPORT, f.if_mac)
        };
        fr.tos = (10 << 2) | 1;
        fr.payload = b"GET / HTTP/1.1\r\n\r\n".to_vec();
        let port = candidate(&f, &fr, 0);
        let r = f.run(&fr.build());
        assert_eq!(r.action, XDP_TX, "{what}: forward");
        assert_eq!(
            r.out,
            expected_forward(&f, &fr, backend, port),
            "{what}: forward frame"
        );
        let session =
            f.dp.nat_session(&key_of(&fr))
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|| panic!("{what}: no session"));
        assert_eq!(session.nat_port(), port, "{what}");

        // The same flow's next packet keeps its port.
        let mut data = fr.clone();
        if proto == PROTO_TCP {
            data.l4 = L4::Tcp {
                flags: TCP_ACK | TCP_PSH,
            };
        }
        let r = f.run(&data.build());
        assert_eq!(
            r.out,
            expected_forward(&f, &data, backend, port),
            "{what}: 2nd packet"
        );

        let l4 = if proto == PROTO_TCP {
            L4::Tcp {
                flags: TCP_SYN | TCP_ACK,
            }
        } else {
            L4::Udp
        };
        let reply = reply_to(&f, &fr, backend, port, l4);
        let r = f.run(&reply.build());
        assert_eq!(r.action, XDP_TX, "{what}: reply");
        assert_eq!(
            r.out,
            expected_reply(&f, &reply, &fr),
            "{what}: reply frame"
        );
        replies += 1;
    }
    assert_eq!(verdict_count(&f, Verdict::Tx), 12);
    let stats = f.dp.nat_stats().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((stats.sessions, stats.replies), (4, replies));
    assert_eq!(
        f.dp.nat_session_count().unwrap_or_else(|e| panic!("{e}")),
        4
    );
}

#[test]
fn a_udp_checksum_of_zero_over_ipv4_stays_zero_both_ways() {
    let Some(mut f) = nat_fixture("nat_udp_zero", PORTS, NatTimeouts::DEFAULT) else {
        return;
    };
    nat_vip(&mut f, VIP4, PROTO_UDP, &[B4]);
    let fr = Frame::udp(ip(CLIENT4), 40000, ip(VIP4), VPORT, f.if_mac);
    // Ethernet 14 + IPv4 20 + 6: the UDP checksum.
    let without_checksum = |mut b: Vec<u8>| {
        b[40] = 0;
        b[41] = 0;
        b
    };
    let port = candidate(&f, &fr, 0);
    let r = f.run(&without_checksum(fr.build()));
    assert_eq!(r.action, XDP_TX);
    assert_eq!(r.out, without_checksum(expected_forward(&f, &fr, B4, port)));

    let reply = reply_to(&f, &fr, B4, port, L4::Udp);
    let r = f.run(&without_checksum(reply.build()));
    assert_eq!(r.action, XDP_TX);
    assert_eq!(r.out, without_checksum(expected_reply(&f, &reply, &fr)));
}

/// Two flows of `vip_addr` whose first NAT port candidates are equal.
fn colliding_flows(f: &BalancerFixture, client: &str, vip_addr: &str) -> (Frame, Frame) {
    let a = Frame::tcp(ip(client), 40000, ip(vip_addr), VPORT, f.if_mac);
    let first = candidate(f, &a, 0);
    let b = (1..=u16::MAX)
        .filter(|p| *p != 40000)
        .map(|p| Frame::tcp(ip(client), p, ip(vip_addr), VPORT, f.if_mac))
        .find(|b| candidate(f, b, 0) == first)
        .unwrap_or_else(|| panic!("no client port collides with {first}"));
    (a, b)
}

#[test]
fn flows_whose_candidate_ports_collide_get_different_ports() {
    let Some(mut f) = nat_fixture("nat_collide", PORTS, NatTimeouts::DEFAULT) else {
        return;
    };
    nat_vip(&mut f, VIP4, PROTO_TCP, &[B4]);
    let (a, b) = colliding_flows(&f, CLIENT4, VIP4);
    let (pa, pb0, pb1) = (
        candidate(&f, &a, 0),
        candidate(&f, &b, 0),
        candidate(&f, &b, 1),
    );
    assert_eq!(pa, pb0);
    assert_ne!(pb0, pb1);
    let r = f.run(&a.build());
    assert_eq!(r.out, expected_forward(&f, &a, B4, pa));
    let r = f.run(&b.build());
    assert_eq!(r.action, XDP_TX);
    assert_eq!(
        r.out,
        expected_forward(&f, &b, B4, pb1),
        "the second candidate"
    );
    // Each reply reaches its own client.
    for (fr, port) in [(&a, pa), (&b, pb1)] {
        let reply = reply_to(&f, fr, B4, port, L4::Tcp { flags: TCP_ACK });
        assert_eq!(f.run(&reply.build()).out, expected_reply(&f, &reply, fr));
    }
}

#[test]
fn a_flow_whose_candidates_are_all_taken_is_dropped_as_exhausted() {
    let Some(mut f) = nat_fixture("nat_exhausted", PORTS, NatTimeouts::DEFAULT) else {
        return;
    };
    nat_vip(&mut f, VIP4, PROTO_TCP, &[B4]);
    let fr = Frame::tcp(ip(CLIENT4), 40000, ip(VIP4), VPORT, f.if_mac);
    let other = FlowKey::new(ip("198.51.100.9"), 1234, ip(VIP4), VPORT, PROTO_TCP)
        .unwrap_or_else(|e| panic!("{e}"));
    let now = coarse_now_ns();
    for attempt in 0..PORT_TRIES {
        let port = candidate(&f, &fr, attempt);
        let live = NatEntry::new(&other, nat::STATE_TCP_ESTABLISHED, now);
        f.dp.insert_nat_entry(&reply_key(&fr, B4, port), &live)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let r = f.run(&fr.build());
    assert_eq!(r.action, XDP_DROP);
    assert_eq!(verdict_count(&f, Verdict::NatExhausted), 1);
    assert_eq!(
        f.dp.nat_session(&key_of(&fr))
            .unwrap_or_else(|e| panic!("{e}")),
        None
    );
    // Another backend's ports are not taken: a flow to it is served.
    let g = Frame::tcp(ip(CLIENT4), 40000, ip("10.100.0.2"), VPORT, f.if_mac);
    nat_vip(&mut f, "10.100.0.2", PROTO_TCP, &["10.0.0.12"]);
    let port = candidate(&f, &g, 0);
    assert_eq!(
        f.run(&g.build()).out,
        expected_forward(&f, &g, "10.0.0.12", port)
    );
}

#[test]
fn an_expired_session_gives_its_port_up_and_a_live_one_does_not() {
    let t = NatTimeouts {
        tcp_syn_s: 2,
        tcp_established_s: 100,
        tcp_closing_s: 2,
        udp_s: 2,
    };
    let Some(mut f) = nat_fixture("nat_reclaim", PORTS, t) else {
        return;
    };
    nat_vip(&mut f, VIP4, PROTO_TCP, &[B4]);
    let other = FlowKey::new(ip("198.51.100.9"), 1234, ip(VIP4), VPORT, PROTO_TCP)
        .unwrap_or_else(|e| panic!("{e}"));
    let now = coarse_now_ns();
    // Closing for 3 s (timeout 2 s): expired. Established for 3 s (100 s):
    // live.
    let cases = [
        (40000, nat::STATE_TCP_CLOSING, 0, 1),
        (40001, nat::STATE_TCP_ESTABLISHED, 1, 1),
    ];
    for (cport, state, want_attempt, reclaimed) in cases {
        let fr = Frame::tcp(ip(CLIENT4), cport, ip(VIP4), VPORT, f.if_mac);
        let taken = candidate(&f, &fr, 0);
        let old = NatEntry::new(&other, state, now.saturating_sub(3_000_000_000));
        f.dp.insert_nat_entry(&reply_key(&fr, B4, taken), &old)
            .unwrap_or_else(|e| panic!("{e}"));
        let r = f.run(&fr.build());
        let port = candidate(&f, &fr, want_attempt);
        assert_eq!(r.out, expected_forward(&f, &fr, B4, port), "state {state}");
        let stats = f.dp.nat_stats().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(stats.reclaimed, reclaimed, "state {state}");
        let entry =
            f.dp.nat_entry(&reply_key(&fr, B4, port))
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|| panic!("no entry"));
        assert!(entry.belongs_to(&key_of(&fr)), "state {state}");
    }
}

#[test]
fn tcp_flags_in_either_direction_move_the_session_state() {
    let Some(mut f) = nat_fixture("nat_states", PORTS, NatTimeouts::DEFAULT) else {
        return;
    };
    nat_vip(&mut f, VIP6, PROTO_TCP, &[B6]);
    let fr = Frame::tcp(ip(CLIENT6), 40000, ip(VIP6), VPORT, f.if_mac);
    let port = candidate(&f, &fr, 0);
    let key = reply_key(&fr, B6, port);
    let state = |f: &BalancerFixture| {
        f.dp.nat_entry(&key)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no entry"))
            .state
    };
    let flags = |fr: &Frame, flags| Frame {
        l4: L4::Tcp { flags },
        ..fr.clone()
    };
    f.run(&fr.build());
    assert_eq!(state(&f), nat::STATE_TCP_SYN);
    let if_mac = f.if_mac;
    let reply = |flags| {
        let mut r = fr.clone();
        r.src_mac = xlb_tests::balancer_fixture::backend_mac(ip(B6));
        r.dst_mac = if_mac;
        r.src = ip(B6);
        r.sport = VPORT;
        r.dst = nat6();
        r.dport = port;
        r.l4 = L4::Tcp { flags };
        r
    };
    let syn_ack = reply(TCP_SYN | TCP_ACK);
    assert_eq!(f.run(&syn_ack.build()).action, XDP_TX);
    assert_eq!(state(&f), nat::STATE_TCP_SYN);
    f.run(&flags(&fr, TCP_ACK).build());
    assert_eq!(state(&f), nat::STATE_TCP_ESTABLISHED);
    // The backend closes first.
    let fin = reply(TCP_FIN | TCP_ACK);
    assert_eq!(f.run(&fin.build()).action, XDP_TX);
    assert_eq!(state(&f), nat::STATE_TCP_CLOSING);
    f.run(&flags(&fr, TCP_ACK).build());
    assert_eq!(state(&f), nat::STATE_TCP_CLOSING, "closing stays closing");
}

#[test]
fn replies_without_a_session_pass_and_are_counted_only_at_nat_addresses() {
    let Some(mut f) = nat_fixture("nat_unknown", PORTS, NatTimeouts::DEFAULT) else {
        return;
    };
    nat_vip(&mut f, VIP4, PROTO_UDP, &[B4]);
    for (what, dst) in [("v4", nat4()), ("v6", nat6())] {
        let src = if dst.is_ipv4() { ip(B4) } else { ip(B6) };
        let fr = Frame::udp(src, 80, dst, 33333, f.if_mac);
        let bytes = fr.build();
        let r = f.run(&bytes);
        assert_eq!(r.action, XDP_PASS, "{what}");
        assert_eq!(r.out, bytes, "{what}: untouched");
    }
    assert_eq!(verdict_count(&f, Verdict::NatReplyUnknown), 2);
    // Another address of the host is not a NAT address: not ours.
    let fr = Frame::udp(ip(B4), 80, ip("10.0.0.99"), 33333, f.if_mac);
    assert_eq!(f.run(&fr.build()).action, XDP_PASS);
    assert_eq!(verdict_count(&f, Verdict::NatReplyUnknown), 2);
    assert_eq!(verdict_count(&f, Verdict::NotVip), 1);
}

#[test]
fn without_nat_sources_packets_to_no_vip_are_not_looked_at() {
    let Some(mut f) = BalancerFixture::new("nat_off") else {
        return;
    };
    let fr = Frame::udp(ip(B4), 80, nat4(), 33333, f.if_mac);
    assert_eq!(f.run(&fr.build()).action, XDP_PASS);
    assert_eq!(verdict_count(&f, Verdict::NotVip), 1);
    assert_eq!(verdict_count(&f, Verdict::NatReplyUnknown), 0);
}

#[test]
fn icmp_errors_and_fragments_to_a_nat_vip_are_dropped_as_untranslatable() {
    let Some(mut f) = nat_fixture("nat_untranslatable", PORTS, NatTimeouts::DEFAULT) else {
        return;
    };
    let mut v = f.add_vip(
        ip(VIP4),
        VPORT,
        PROTO_UDP,
        lb_common::VIP_F_SOURCE_HASH,
        &[ip(B4)],
    );
    f.set_forwarding(&mut v, Forwarding::Nat, 0);
    f.write_marker(ip(VIP4), true);
    let mut frag = Frame::udp(ip(CLIENT4), 40000, ip(VIP4), VPORT, f.if_mac);
    frag.fragment = Some((false, 10));
    let r = f.run(&frag.build());
    assert_eq!(r.action, XDP_DROP);
    assert_eq!(verdict_count(&f, Verdict::NatUntranslatable), 1);
}

/// A packet too big for the egress toward where it is translated to (NAT
/// adds no byte: the egress MTU is below the ingress one) is answered as in
/// every other mode, with the egress MTU: a client's packet from the VIP, a
/// backend's reply from the NAT address (whose socket that is). One that
/// fits exactly is translated. Before, both were dropped without an answer,
/// and path MTU discovery through a NAT VIP never converged.
#[test]
fn packets_too_big_for_the_egress_are_answered_in_both_directions() {
    let Some(mut f) = nat_fixture("nat_too_big", PORTS, NatTimeouts::DEFAULT) else {
        return;
    };
    f.ns.ip(&format!("link set {IFACE} mtu 1400"));
    let cases = [("v4", VIP4, CLIENT4, B4, 28), ("v6", VIP6, CLIENT6, B6, 48)];
    for (what, vip_addr, client, backend, headers) in cases {
        nat_vip(&mut f, vip_addr, PROTO_UDP, &[backend]);
        let mut fr = Frame::udp(ip(client), 40000, ip(vip_addr), VPORT, f.if_mac);
        fr.payload = vec![0xab; 1401 - headers];
        let r = f.run(&fr.build());
        assert_eq!(r.action, XDP_TX, "{what}: client's packet");
        assert_too_big(
            &r.out,
            ip(vip_addr),
            ip(client),
            1400,
            &format!("{what}: to the client"),
        );

        fr.payload = vec![0xab; 1400 - headers];
        let port = candidate(&f, &fr, 0);
        let r = f.run(&fr.build());
        assert_eq!(r.action, XDP_TX, "{what}: exactly the MTU");
        assert_eq!(
            r.out,
            expected_forward(&f, &fr, backend, port),
            "{what}: translated"
        );

        let mut reply = reply_to(&f, &fr, backend, port, L4::Udp);
        reply.payload = vec![0xcd; 1401 - headers];
        let r = f.run(&reply.build());
        assert_eq!(r.action, XDP_TX, "{what}: backend's reply");
        assert_too_big(
            &r.out,
            nat_of(&fr),
            ip(backend),
            1400,
            &format!("{what}: to the backend"),
        );
    }
    assert_eq!(verdict_count(&f, Verdict::IcmpTooBigSent), 4);
    assert_eq!(verdict_count(&f, Verdict::TooBig), 0);
}

/// `out` is an ICMP "fragmentation needed" (IPv4) or "packet too big"
/// (IPv6) from `from` to `to` telling `mtu`.
fn assert_too_big(out: &[u8], from: IpAddr, to: IpAddr, mtu: u32, what: &str) {
    match (from, to) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            assert_eq!(out[23], 1, "{what}: ICMP");
            assert_eq!(
                (&out[26..30], &out[30..34]),
                (&s.octets()[..], &d.octets()[..]),
                "{what}"
            );
            assert_eq!((out[34], out[35]), (3, 4), "{what}: fragmentation needed");
            assert_eq!(
                u32::from(u16::from_be_bytes([out[40], out[41]])),
                mtu,
                "{what}: MTU"
            );
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            assert_eq!(out[20], 58, "{what}: ICMPv6");
            assert_eq!(
                (&out[22..38], &out[38..54]),
                (&s.octets()[..], &d.octets()[..]),
                "{what}"
            );
            assert_eq!((out[54], out[55]), (2, 0), "{what}: packet too big");
            assert_eq!(
                u32::from_be_bytes([out[58], out[59], out[60], out[61]]),
                mtu,
                "{what}: MTU"
            );
        }
        _ => panic!("{what}: mixed families"),
    }
}
