//! Which backend a packet goes to: the same one userspace computes from the
//! shared hash and the installed table, spread in proportion to the table,
//! pinned by the connection table across table changes (unless the VIP
//! bypasses it), and counted correctly.

use std::{collections::HashMap, net::IpAddr};

use lb_common::{
    flow_hash, source_hash, Backend, FlowKey, FlowValue, Verdict, DEFAULT_HASH_SEED, PROTO_TCP,
    PROTO_UDP, VIP_F_NO_FLOW_TABLE, VIP_F_SOURCE_HASH,
};
use lb_userspace::explain::coarse_now_ns;
use xlb_tests::{
    balancer_fixture::{BalancerFixture, TestVip},
    expect::{outer_destination, XDP_TX},
    frames::{Frame, L4, TCP_ACK},
    test_rng::TestRng,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn backends4(n: usize) -> Vec<IpAddr> {
    (0..n)
        .map(|i| IpAddr::from([10, 0, 0, 20 + i as u8]))
        .collect()
}

fn backends6(n: usize) -> Vec<IpAddr> {
    (0..n)
        .map(|i| {
            IpAddr::from([
                0xfd,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0x20 + i as u8,
            ])
        })
        .collect()
}

/// A scattered assignment (no long runs): slot -> backend index.
fn scattered(n: usize) -> impl Fn(usize) -> usize {
    move |slot| (slot.wrapping_mul(2_654_435_761) >> 7) % n
}

fn key(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, proto: u8) -> FlowKey {
    FlowKey::new(src, sport, dst, dport, proto).unwrap_or_else(|e| panic!("{e}"))
}

/// The backend userspace computes: hash -> slot in the installed table -> id.
fn userspace_choice(f: &BalancerFixture, vip: &TestVip, k: &FlowKey) -> IpAddr {
    // The seed the data plane hashes with: the live config's.
    let seed =
        f.dp.global_config()
            .unwrap_or_else(|e| panic!("{e}"))
            .hash_seed();
    let h = if vip.info.flags & VIP_F_SOURCE_HASH != 0 {
        source_hash(seed, k)
    } else {
        flow_hash(seed, k)
    };
    let slot = vip.info.table_offset + h % vip.info.table_size;
    let id = f.dp.maglev_ref().read(slot, 1)[0];
    let i = vip
        .backend_ids
        .iter()
        .position(|b| *b == id)
        .unwrap_or_else(|| panic!("slot {slot} holds unknown id {id}"));
    vip.backends[i]
}

fn send(f: &mut BalancerFixture, fr: &Frame) -> IpAddr {
    let r = f.run(&fr.build());
    assert_eq!(r.action, XDP_TX, "{fr:?}");
    outer_destination(&r.out, fr.l3_offset())
}

#[test]
fn every_flow_goes_where_userspace_computes_and_stays_there() {
    let Some(mut f) = BalancerFixture::new("userspace_agrees") else {
        return;
    };
    let mac = f.if_mac;
    let v4 = f.add_vip_with_table(
        ip("10.100.0.1"),
        80,
        PROTO_TCP,
        0,
        &backends4(7),
        scattered(7),
    );
    let v6 = f.add_vip_with_table(
        ip("fd00:100::1"),
        0,
        PROTO_UDP,
        0,
        &backends6(5),
        scattered(5),
    );
    let aff = f.add_vip_with_table(
        ip("10.100.0.2"),
        443,
        PROTO_TCP,
        VIP_F_SOURCE_HASH,
        &backends4(4),
        scattered(4),
    );
    let mut rng = TestRng::new(0x1234_5678);
    for i in 0..1500 {
        let r = rng.next_u64();
        let (vip, fr) = match i % 3 {
            0 => {
                let src = IpAddr::from((r as u32).to_be_bytes());
                (
                    &v4,
                    Frame::tcp(src, (r >> 32) as u16, ip("10.100.0.1"), 80, mac),
                )
            }
            1 => {
                let mut a = [0u8; 16];
                a[..8].copy_from_slice(&r.to_be_bytes());
                a[8..].copy_from_slice(&rng.next_u64().to_be_bytes());
                (
                    &v6,
                    Frame::udp(
                        IpAddr::from(a),
                        (r >> 16) as u16,
                        ip("fd00:100::1"),
                        (r >> 40) as u16,
                        mac,
                    ),
                )
            }
            _ => {
                let src = IpAddr::from((r as u32).to_be_bytes());
                (
                    &aff,
                    Frame::tcp(src, (r >> 32) as u16, ip("10.100.0.2"), 443, mac),
                )
            }
        };
        let proto = if matches!(fr.l4, L4::Udp) {
            PROTO_UDP
        } else {
            PROTO_TCP
        };
        let expected = userspace_choice(&f, vip, &key(fr.src, fr.sport, fr.dst, fr.dport, proto));
        assert_eq!(send(&mut f, &fr), expected, "first packet of {fr:?}");
        // The second packet (a flow-table hit) goes to the same backend.
        let mut again = fr.clone();
        if let L4::Tcp { .. } = again.l4 {
            again.l4 = L4::Tcp { flags: TCP_ACK };
        }
        assert_eq!(send(&mut f, &again), expected, "second packet of {fr:?}");
    }
}

#[test]
fn source_ip_affinity_sends_every_connection_of_a_client_to_one_backend() {
    let Some(mut f) = BalancerFixture::new("source_affinity") else {
        return;
    };
    let mac = f.if_mac;
    f.add_vip_with_table(
        ip("10.100.0.1"),
        0,
        PROTO_TCP,
        VIP_F_SOURCE_HASH,
        &backends4(6),
        scattered(6),
    );
    let mut seen_backends = HashMap::new();
    for client in 1..=40u8 {
        let src = IpAddr::from([198, 51, 100, client]);
        let first = send(&mut f, &Frame::tcp(src, 1024, ip("10.100.0.1"), 80, mac));
        for sport in [1025u16, 2000, 40000, 65535] {
            for dport in [80u16, 443, 8080] {
                let b = send(
                    &mut f,
                    &Frame::tcp(src, sport, ip("10.100.0.1"), dport, mac),
                );
                assert_eq!(b, first, "client {src} port {sport}->{dport} moved");
            }
        }
        *seen_backends.entry(first).or_insert(0) += 1;
    }
    assert!(
        seen_backends.len() >= 4,
        "40 clients should spread over most of 6 backends: {seen_backends:?}"
    );
}

#[test]
fn one_hundred_thousand_flows_spread_in_proportion_to_the_table() {
    let Some(mut f) = BalancerFixture::new("distribution_100k") else {
        return;
    };
    let mac = f.if_mac;
    // Shares 1/10, 2/10, 3/10, 4/10, assigned in a scattered order.
    let weights = [1usize, 2, 3, 4];
    let pattern: Vec<usize> = weights
        .iter()
        .enumerate()
        .flat_map(|(i, w)| std::iter::repeat_n(i, *w))
        .collect();
    let assign = move |slot: usize| pattern[scattered(10)(slot)];
    let vip = f.add_vip_with_table(
        ip("10.100.0.1"),
        80,
        PROTO_TCP,
        VIP_F_NO_FLOW_TABLE,
        &backends4(4),
        assign,
    );
    let table =
        f.dp.maglev_ref()
            .read(vip.info.table_offset, vip.info.table_size);
    let table_share: Vec<f64> = vip
        .backend_ids
        .iter()
        .map(|id| table.iter().filter(|s| *s == id).count() as f64 / table.len() as f64)
        .collect();

    const FLOWS: u32 = 100_000;
    let mut counts: HashMap<IpAddr, u32> = HashMap::new();
    for i in 0..FLOWS {
        let src = IpAddr::from([172, 16 + (i >> 16) as u8, (i >> 8) as u8, i as u8]);
        let sport = 1024 + (i % 50_000) as u16;
        *counts
            .entry(send(
                &mut f,
                &Frame::tcp(src, sport, ip("10.100.0.1"), 80, mac),
            ))
            .or_insert(0) += 1;
    }
    for (i, b) in vip.backends.iter().enumerate() {
        let share = f64::from(counts.get(b).copied().unwrap_or(0)) / f64::from(FLOWS);
        let want = table_share[i];
        assert!(
            (share - want).abs() <= 0.02 * want,
            "backend {b}: {:.4} of flows vs {:.4} of the table (allowed 2% of it)",
            share,
            want
        );
    }
}

#[test]
fn established_flows_keep_their_backend_when_the_table_changes() {
    let Some(mut f) = BalancerFixture::new("flows_survive_change") else {
        return;
    };
    let mac = f.if_mac;
    let pinned = f.add_vip_with_table(
        ip("10.100.0.1"),
        80,
        PROTO_TCP,
        0,
        &backends4(4),
        scattered(4),
    );
    let bypass = f.add_vip_with_table(
        ip("10.100.0.2"),
        80,
        PROTO_TCP,
        VIP_F_NO_FLOW_TABLE,
        &backends4(4),
        scattered(4),
    );
    let flows: Vec<Frame> = (0..300u16)
        .map(|i| {
            Frame::tcp(
                IpAddr::from([198, 18, (i >> 8) as u8, i as u8]),
                30000 + i,
                ip("10.100.0.1"),
                80,
                mac,
            )
        })
        .collect();
    // SYN, then the handshake's ACK (which creates the entry).
    let before: Vec<IpAddr> = flows
        .iter()
        .map(|fr| {
            let to = send(&mut f, fr);
            let ack = Frame {
                l4: L4::Tcp { flags: TCP_ACK },
                ..fr.clone()
            };
            assert_eq!(send(&mut f, &ack), to, "the ACK follows its SYN");
            to
        })
        .collect();
    let bypass_flows: Vec<Frame> = flows
        .iter()
        .map(|fr| Frame {
            dst: ip("10.100.0.2"),
            ..fr.clone()
        })
        .collect();
    for fr in &bypass_flows {
        send(&mut f, fr);
    }

    // New tables: every slot moves to the next backend.
    f.set_table(&pinned, |s| (scattered(4)(s) + 1) % 4);
    f.set_table(&bypass, |s| (scattered(4)(s) + 1) % 4);

    for (fr, b) in flows.iter().zip(&before) {
        let mut data = fr.clone();
        data.l4 = L4::Tcp { flags: TCP_ACK };
        assert_eq!(send(&mut f, &data), *b, "established flow {fr:?} moved");
    }
    // New flows follow the new table.
    for i in 0..300u16 {
        let fr = Frame::tcp(
            IpAddr::from([198, 19, (i >> 8) as u8, i as u8]),
            31000 + i,
            ip("10.100.0.1"),
            80,
            mac,
        );
        let k = key(fr.src, fr.sport, fr.dst, fr.dport, PROTO_TCP);
        assert_eq!(send(&mut f, &fr), userspace_choice(&f, &pinned, &k));
    }
    // With the bypass flag every packet follows the table: all of them moved.
    for fr in &bypass_flows {
        let k = key(fr.src, fr.sport, fr.dst, fr.dport, PROTO_TCP);
        let now = send(&mut f, fr);
        assert_eq!(now, userspace_choice(&f, &bypass, &k));
    }
    let moved = bypass_flows
        .iter()
        .zip(&before)
        .filter(|(fr, _)| {
            let k = key(fr.src, fr.sport, fr.dst, fr.dport, PROTO_TCP);
            let h = flow_hash(DEFAULT_HASH_SEED, &k) % bypass.info.table_size;
            let was = bypass.backend_ids[scattered(4)(h as usize)];
            let now = bypass.backend_ids[(scattered(4)(h as usize) + 1) % 4];
            was != now
        })
        .count();
    assert_eq!(
        moved,
        bypass_flows.len(),
        "every bypass flow's slot changed backend"
    );
}

#[test]
fn a_flow_whose_backend_was_removed_falls_back_to_the_table() {
    let Some(mut f) = BalancerFixture::new("removed_backend") else {
        return;
    };
    let mac = f.if_mac;
    let vip = f.add_vip_with_table(
        ip("10.100.0.1"),
        80,
        PROTO_TCP,
        0,
        &backends4(3),
        scattered(3),
    );
    // Find a flow on backend 0, then remove backend 0 the way the control plane
    // does: the table stops naming it, then its slot is cleared.
    let mut on_zero = None;
    for i in 0..200u16 {
        let fr = Frame::tcp(
            IpAddr::from([198, 20, 0, i as u8]),
            20000 + i,
            ip("10.100.0.1"),
            80,
            mac,
        );
        if send(&mut f, &fr) == vip.backends[0] {
            on_zero = Some(fr);
            break;
        }
    }
    let fr = on_zero.unwrap_or_else(|| panic!("no flow landed on backend 0"));
    f.set_table(&vip, |s| 1 + s % 2);
    f.dp.set_backend(vip.backend_ids[0], &Backend::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let now = send(&mut f, &fr);
    assert_ne!(
        now, vip.backends[0],
        "a removed backend must not get traffic"
    );
    assert_eq!(
        now,
        userspace_choice(
            &f,
            &vip,
            &key(fr.src, fr.sport, fr.dst, fr.dport, PROTO_TCP)
        )
    );
}

#[test]
fn a_flow_entry_naming_another_vips_backend_is_ignored() {
    let Some(mut f) = BalancerFixture::new("foreign_flow_entry") else {
        return;
    };
    let mac = f.if_mac;
    let a = f.add_vip(ip("10.100.0.1"), 80, PROTO_TCP, 0, &[ip("10.0.0.30")]);
    let b = f.add_vip(ip("10.100.0.2"), 80, PROTO_TCP, 0, &[ip("10.0.0.31")]);
    let fr = Frame::tcp(ip("198.51.100.9"), 5555, ip("10.100.0.1"), 80, mac);
    // A stale entry (e.g. an id recycled from VIP b) must not divert VIP a's flow.
    f.dp.insert_flow(
        &key(fr.src, fr.sport, fr.dst, fr.dport, PROTO_TCP),
        &FlowValue::new(b.backend_ids[0], coarse_now_ns()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(send(&mut f, &fr), a.backends[0]);
    // ... and the flow entry now names VIP a's backend.
    let v =
        f.dp.flow(&key(fr.src, fr.sport, fr.dst, fr.dport, PROTO_TCP))
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v.map(|v| v.backend_id), Some(a.backend_ids[0]));
}

#[test]
fn counters_match_what_was_sent() {
    let Some(mut f) = BalancerFixture::new("counters_match") else {
        return;
    };
    let mac = f.if_mac;
    let tcp = f.add_vip_with_table(
        ip("10.100.0.1"),
        80,
        PROTO_TCP,
        0,
        &backends4(3),
        scattered(3),
    );
    let udp = f.add_vip(ip("fd00:100::1"), 53, PROTO_UDP, 0, &backends6(2));
    let bypass = f.add_vip(
        ip("10.100.0.2"),
        80,
        PROTO_TCP,
        VIP_F_NO_FLOW_TABLE,
        &[ip("10.0.0.40")],
    );

    let mut per_backend: HashMap<IpAddr, (u64, u64)> = HashMap::new();
    let mut tcp_bytes = 0u64;
    // 50 TCP flows, each a SYN then 3 data packets.
    for i in 0..50u16 {
        let mut fr = Frame::tcp(
            IpAddr::from([198, 21, 0, i as u8]),
            10000 + i,
            ip("10.100.0.1"),
            80,
            mac,
        );
        for p in 0..4 {
            if p > 0 {
                fr.l4 = L4::Tcp { flags: TCP_ACK };
                fr.payload = vec![7; 100 * p];
            }
            let frame = fr.build();
            let len = (frame.len() - 14) as u64;
            tcp_bytes += len;
            let b = send(&mut f, &fr);
            let e = per_backend.entry(b).or_default();
            e.0 += 1;
            e.1 += len;
        }
    }
    // 20 UDP datagrams on 10 flows.
    let mut udp_bytes = 0u64;
    for i in 0..20u16 {
        let fr = Frame::udp(ip("2001:db8::9"), 7000 + i % 10, ip("fd00:100::1"), 53, mac);
        udp_bytes += (fr.build().len() - 14) as u64;
        send(&mut f, &fr);
    }
    // The bypass VIP: 5 SYNs and 5 ACKs on 5 flows.
    for i in 0..5u16 {
        let mut fr = Frame::tcp(ip("198.51.100.1"), 9000 + i, ip("10.100.0.2"), 80, mac);
        send(&mut f, &fr);
        fr.l4 = L4::Tcp { flags: TCP_ACK };
        send(&mut f, &fr);
    }
    // And 7 packets that are not for a VIP.
    for i in 0..7u16 {
        let frame = Frame::tcp(ip("198.51.100.1"), i, ip("10.0.0.1"), 22, mac).build();
        f.run(&frame);
    }

    let s =
        f.dp.vip_stats(tcp.info.vip_id)
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (s.packets, s.bytes, s.new_flows),
        (200, tcp_bytes, 50),
        "tcp vip stats"
    );
    let s =
        f.dp.vip_stats(udp.info.vip_id)
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (s.packets, s.bytes, s.new_flows),
        (20, udp_bytes, 10),
        "udp vip stats"
    );
    let s =
        f.dp.vip_stats(bypass.info.vip_id)
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (s.packets, s.new_flows),
        (10, 5),
        "bypass vip counts SYNs as new flows"
    );

    for (i, id) in tcp.backend_ids.iter().enumerate() {
        let bs = f.dp.backend_stats(*id).unwrap_or_else(|e| panic!("{e}"));
        let want = per_backend
            .get(&tcp.backends[i])
            .copied()
            .unwrap_or_default();
        assert_eq!((bs.packets, bs.bytes), want, "backend {}", tcp.backends[i]);
    }
    let udp_total: u64 = udp
        .backend_ids
        .iter()
        .map(|id| f.dp.backend_stats(*id).map(|s| s.packets).unwrap_or(0))
        .sum();
    assert_eq!(udp_total, 20);

    let v = f.dp.verdicts().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v[Verdict::Tx as usize], 230);
    assert_eq!(v[Verdict::NotVip as usize], 7);
    assert_eq!(
        v.iter().sum::<u64>(),
        237,
        "every packet counted exactly once"
    );
}
