//! `xlb explain` and the XDP program decide alike. The same flows go through
//! BPF_PROG_TEST_RUN and through `explain::trace` (the data plane's decision
//! functions run from userspace against the live maps): before each packet,
//! the trace predicts the verdict and the backend; after it, the flow-table
//! entry the packet left. Then the reconciler changes the backend set under
//! established flows and every flow is checked again.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use lb_common::{
    decision::{FlowEntryUse, PacketFacts},
    FlowKey, FlowValue, GlobalConfig, VipKey, PROTO_TCP, PROTO_UDP, VIP_F_NO_FLOW_TABLE,
    VIP_F_SOURCE_HASH,
};
use lb_userspace::{
    explain::{coarse_now_ns, trace, Path, Trace},
    reconcile::{DesiredBackend, DesiredState, DesiredVip, Reconciler},
};
use xlb_tests::{
    balancer_fixture::{BalancerFixture, BALANCER_V4, BALANCER_V6, TEST_SIZES},
    expect::{outer_destination, XDP_DROP, XDP_PASS, XDP_TX},
    frames::{Frame, L4, TCP_ACK, TCP_RST, TCP_SYN},
    test_rng::TestRng,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn vip(addr: &str, port: u16, proto: u8, flags: u32, backends: &[(&str, u16)]) -> DesiredVip {
    DesiredVip {
        key: VipKey::new(ip(addr), port, proto),
        name: format!("{addr}:{port}/{proto}"),
        flags,
        udp_idle_timeout_ms: lb_common::DEFAULT_UDP_IDLE_TIMEOUT_MS,
        forwarding: lb_common::Forwarding::Ipip,
        gue_port: 0,
        policy: Default::default(),
        backends: backends
            .iter()
            .map(|(a, w)| DesiredBackend {
                addr: ip(a),
                weight: *w,
                healthy: true,
            })
            .collect(),
    }
}

fn state(vips: Vec<DesiredVip>) -> DesiredState {
    DesiredState {
        global: GlobalConfig::new(
            Some(Ipv4Addr::from(BALANCER_V4)),
            Some(Ipv6Addr::from(BALANCER_V6)),
        ),
        tx_ports: Default::default(),
        vips,
    }
}

/// The VIPs before the change: every kind of lookup and hashing.
fn first_vips() -> Vec<DesiredVip> {
    vec![
        vip(
            "10.100.0.1",
            80,
            PROTO_TCP,
            0,
            &[
                ("10.0.0.20", 100),
                ("10.0.0.21", 200),
                ("10.0.0.22", 100),
                ("10.0.0.23", 300),
            ],
        ),
        // Port 0: every UDP port of the address; client affinity.
        vip(
            "10.100.0.2",
            0,
            PROTO_UDP,
            VIP_F_SOURCE_HASH,
            &[("10.0.0.24", 100), ("fd00::24", 100)],
        ),
        vip(
            "fd00:100::1",
            443,
            PROTO_TCP,
            0,
            &[("fd00::20", 100), ("fd00::21", 100), ("10.0.0.25", 100)],
        ),
        vip(
            "10.100.0.3",
            53,
            PROTO_UDP,
            VIP_F_NO_FLOW_TABLE,
            &[("10.0.0.26", 1), ("10.0.0.27", 1)],
        ),
        // Every backend drained: no table, packets dropped.
        vip("10.100.0.4", 80, PROTO_TCP, 0, &[("10.0.0.28", 0)]),
    ]
}

/// After the change: a backend removed, one added, weights changed.
fn second_vips() -> Vec<DesiredVip> {
    let mut v = first_vips();
    v[0] = vip(
        "10.100.0.1",
        80,
        PROTO_TCP,
        0,
        &[
            ("10.0.0.20", 100),
            ("10.0.0.22", 50),
            ("10.0.0.23", 300),
            ("10.0.0.30", 200),
        ],
    );
    v[2] = vip(
        "fd00:100::1",
        443,
        PROTO_TCP,
        0,
        &[("fd00::20", 100), ("10.0.0.25", 300)],
    );
    v
}

/// A random flow toward one of the VIP addresses (or a near miss).
fn random_flow(rng: &mut TestRng) -> (IpAddr, u16, IpAddr, u16, u8) {
    let r = rng.next_u64();
    let sport = 1024 + (r >> 16) as u16 % 60000;
    let src4 = IpAddr::from(((r >> 32) as u32 | 0x0100_0000).to_be_bytes());
    let src6 = IpAddr::from(Ipv6Addr::new(
        0x2001,
        0xdb8,
        0,
        0,
        0,
        0,
        (r >> 32) as u16,
        r as u16,
    ));
    match r % 8 {
        0 | 1 => (src4, sport, ip("10.100.0.1"), 80, PROTO_TCP),
        2 => (src4, sport, ip("10.100.0.2"), (r >> 8) as u16, PROTO_UDP),
        3 | 4 => (src6, sport, ip("fd00:100::1"), 443, PROTO_TCP),
        5 => (src4, sport, ip("10.100.0.3"), 53, PROTO_UDP),
        6 => (src4, sport, ip("10.100.0.4"), 80, PROTO_TCP),
        // Not a VIP: a VIP address with another port or protocol.
        _ => (src4, sport, ip("10.100.0.1"), 81, PROTO_TCP),
    }
}

fn frame(f: &BalancerFixture, flow: (IpAddr, u16, IpAddr, u16, u8), tcp_flags: u8) -> Frame {
    let (src, sport, dst, dport, proto) = flow;
    if proto == PROTO_TCP {
        let mut fr = Frame::tcp(src, sport, dst, dport, f.if_mac);
        fr.l4 = L4::Tcp { flags: tcp_flags };
        fr
    } else {
        Frame::udp(src, sport, dst, dport, f.if_mac)
    }
}

/// The facts of a packet of `flow` with `tcp_flags`, now.
fn packet(flow: (IpAddr, u16, IpAddr, u16, u8), tcp_flags: u8) -> PacketFacts {
    let proto = flow.4;
    PacketFacts {
        proto,
        tcp_flags: if proto == PROTO_TCP { tcp_flags } else { 0 },
        now_ns: coarse_now_ns(),
    }
}

fn flow_key(flow: (IpAddr, u16, IpAddr, u16, u8)) -> FlowKey {
    let (src, sport, dst, dport, proto) = flow;
    FlowKey::new(src, sport, dst, dport, proto).unwrap_or_else(|e| panic!("{e}"))
}

/// Sends one packet of `flow` (TCP with `tcp_flags`) and checks it against
/// the trace taken just before. Returns the trace and where the packet went.
fn send_and_compare(
    f: &mut BalancerFixture,
    flow: (IpAddr, u16, IpAddr, u16, u8),
    tcp_flags: u8,
) -> (Trace, Option<IpAddr>) {
    let key = flow_key(flow);
    let t = trace(&f.dp, &key, &packet(flow, tcp_flags))
        .unwrap_or_else(|e| panic!("explain {flow:?}: {e}"));
    let fr = frame(f, flow, tcp_flags);
    let r = f.run(&fr.build());
    let went = match t.path {
        Path::NotVip => {
            assert_eq!(r.action, XDP_PASS, "{flow:?}: explain said not a VIP");
            None
        }
        Path::NoBackend => {
            assert_eq!(r.action, XDP_DROP, "{flow:?}: explain said no backend");
            None
        }
        Path::Refused(reason) => {
            assert_eq!(r.action, XDP_DROP, "{flow:?}: explain said {reason:?}");
            None
        }
        Path::FlowTable | Path::Maglev => {
            assert_eq!(r.action, XDP_TX, "{flow:?}: explain said {:?}", t.path);
            let to = outer_destination(&r.out, fr.l3_offset());
            let (_, predicted) = t
                .backend
                .unwrap_or_else(|| panic!("{flow:?}: no backend in {t:?}"));
            assert_eq!(to, predicted.addr(), "{flow:?}: explain predicted {t:?}");
            Some(to)
        }
    };
    // What the packet left behind is what the next trace (of a packet of
    // the established flow) reads.
    let after = trace(&f.dp, &key, &packet(flow, TCP_ACK))
        .unwrap_or_else(|e| panic!("explain {flow:?}: {e}"));
    if t.creates_flow_entry() || t.repins_flow_entry() {
        assert_eq!(
            after.path,
            Path::FlowTable,
            "{flow:?}: no entry after {t:?}"
        );
        assert_eq!(after.backend, t.backend, "{flow:?}");
    } else if t.path != Path::FlowTable {
        assert_ne!(
            after.path,
            Path::FlowTable,
            "{flow:?}: an entry appeared after {t:?}"
        );
    }
    (t, went)
}

#[test]
fn explain_and_the_data_plane_agree_before_and_after_a_backend_change() {
    let Some(mut f) = BalancerFixture::new("explain_agrees") else {
        return;
    };
    for v in first_vips().iter().chain(second_vips().iter()) {
        for b in &v.backends {
            f.add_neighbour(b.addr);
        }
    }
    let mut rec = Reconciler::new(TEST_SIZES);
    let plan = rec
        .plan(&state(first_vips()))
        .unwrap_or_else(|e| panic!("{e}"));
    rec.apply(plan, &mut f.dp).unwrap_or_else(|e| panic!("{e}"));

    let mut rng = TestRng::new(0x5eed_e8a1);
    let flows: Vec<_> = (0..600).map(|_| random_flow(&mut rng)).collect();
    let mut first: HashMap<usize, IpAddr> = HashMap::new();
    let mut paths: HashMap<Path, usize> = HashMap::new();
    for (i, flow) in flows.iter().enumerate() {
        let (t, went) = send_and_compare(&mut f, *flow, TCP_ACK);
        *paths.entry(t.path).or_default() += 1;
        if let Some(to) = went {
            first.insert(i, to);
        }
    }
    for p in [Path::NotVip, Path::NoBackend, Path::Maglev] {
        assert!(
            paths.get(&p).copied().unwrap_or(0) > 20,
            "too few {p:?}: {paths:?}"
        );
    }

    // The change, with every flow-table VIP's flows established.
    let plan = rec
        .plan(&state(second_vips()))
        .unwrap_or_else(|e| panic!("{e}"));
    rec.apply(plan, &mut f.dp).unwrap_or_else(|e| panic!("{e}"));
    let removed = [ip("10.0.0.21"), ip("fd00::21")];

    let (mut kept, mut moved_off_removed) = (0, 0);
    for (i, flow) in flows.iter().enumerate() {
        let (t, went) = send_and_compare(&mut f, *flow, TCP_ACK);
        let Some(before) = first.get(&i) else {
            continue;
        };
        let Some((_, info)) = t.vip else { continue };
        if info.flags & VIP_F_NO_FLOW_TABLE != 0 {
            continue;
        }
        if removed.contains(before) {
            // Its backend is gone: explain and the packet both fall back to
            // the new table.
            assert_eq!(t.path, Path::Maglev, "{flow:?} was on removed {before}");
            assert!(went.is_some_and(|w| !removed.contains(&w)), "{flow:?}");
            moved_off_removed += 1;
        } else {
            // Established: it stays where it was, whatever the new table says.
            assert_eq!(t.path, Path::FlowTable, "{flow:?}");
            assert_eq!(went, Some(*before), "{flow:?} moved");
            kept += 1;
        }
    }
    assert!(
        kept > 100 && moved_off_removed > 20,
        "kept {kept}, moved {moved_off_removed}"
    );
}

/// Sets every backend of `vip` at `addrs` to `healthy`.
fn set_health(vips: &mut [DesiredVip], vip: usize, addrs: &[&str], healthy: bool) {
    for b in &mut vips[vip].backends {
        if addrs.iter().any(|a| ip(a) == b.addr) {
            b.healthy = healthy;
        }
    }
}

/// The connection-table rules, from both sides: SYNs take the current table,
/// RSTs leave no entry, a failed backend's flows move (unless its VIP fails
/// open), a drained backend's established flows stay, an idle UDP entry
/// expires. Explain and the data plane must agree on every packet.
#[test]
fn explain_and_the_data_plane_agree_on_syn_rst_health_drain_and_expiry() {
    let Some(mut f) = BalancerFixture::new("explain_rules") else {
        return;
    };
    for v in first_vips() {
        for b in &v.backends {
            f.add_neighbour(b.addr);
        }
    }
    let mut rec = Reconciler::new(TEST_SIZES);
    let mut vips = first_vips();
    let plan = rec
        .plan(&state(vips.clone()))
        .unwrap_or_else(|e| panic!("{e}"));
    rec.apply(plan, &mut f.dp).unwrap_or_else(|e| panic!("{e}"));

    let mut rng = TestRng::new(0x0bad_5eed);
    let flows: Vec<_> = (0..500).map(|_| random_flow(&mut rng)).collect();
    let flags = |r: u64| match r % 8 {
        0 => TCP_SYN,
        1 => TCP_RST,
        2 => TCP_RST | TCP_ACK,
        3 => TCP_SYN | TCP_ACK,
        _ => TCP_ACK,
    };
    let mut first: HashMap<usize, IpAddr> = HashMap::new();
    for (i, flow) in flows.iter().enumerate() {
        let (_, went) = send_and_compare(&mut f, *flow, flags(rng.next_u64()));
        if let Some(to) = went {
            first.insert(i, to);
        }
    }

    // 10.0.0.21 fails its check, 10.0.0.22 is drained; every backend of the
    // IPv6 VIP fails (it fails open).
    set_health(&mut vips, 0, &["10.0.0.21"], false);
    vips[0].backends[2].weight = 0;
    set_health(&mut vips, 2, &["fd00::20", "fd00::21", "10.0.0.25"], false);
    let plan = rec
        .plan(&state(vips.clone()))
        .unwrap_or_else(|e| panic!("{e}"));
    rec.apply(plan, &mut f.dp).unwrap_or_else(|e| panic!("{e}"));

    // Age a third of the UDP entries past the default 30 s idle timeout.
    let mut aged = 0;
    for flow in flows.iter().filter(|fl| fl.4 == PROTO_UDP).step_by(3) {
        let key = flow_key(*flow);
        if let Some(mut v) = f.dp.flow(&key).unwrap_or_else(|e| panic!("{e}")) {
            v.last_seen_ns = coarse_now_ns().saturating_sub(31_000_000_000);
            f.dp.insert_flow(&key, &FlowValue::new(v.backend_id, v.last_seen_ns))
                .unwrap_or_else(|e| panic!("{e}"));
            aged += 1;
        }
    }
    assert!(aged > 5, "too few UDP entries to age: {aged}");

    let mut reasons: HashMap<FlowEntryUse, usize> = HashMap::new();
    let (mut kept_on_drained, mut kept_failing_open) = (0, 0);
    for (i, flow) in flows.iter().enumerate() {
        let tcp_flags = flags(rng.next_u64());
        let (t, went) = send_and_compare(&mut f, *flow, tcp_flags);
        if let Some((_, why)) = t.flow_entry {
            *reasons.entry(why).or_default() += 1;
        }
        let (Some(before), Some(went)) = (first.get(&i), went) else {
            continue;
        };
        if *before == ip("10.0.0.21") && t.flow_entry.is_some() {
            assert_ne!(went, *before, "{flow:?}: a failed backend got a packet");
        }
        if *before == ip("10.0.0.22") && t.path == Path::FlowTable {
            assert_eq!(went, *before);
            kept_on_drained += 1;
        }
        if flow.2 == ip("fd00:100::1") && t.path == Path::FlowTable {
            assert_eq!(went, *before, "{flow:?}: fail open keeps flows");
            kept_failing_open += 1;
        }
    }
    for why in [
        FlowEntryUse::Follow,
        FlowEntryUse::BackendUnhealthy,
        FlowEntryUse::NewConnection,
        FlowEntryUse::Expired,
    ] {
        assert!(
            reasons.get(&why).copied().unwrap_or(0) > 3,
            "too few {why:?}: {reasons:?}"
        );
    }
    assert!(
        kept_on_drained > 3 && kept_failing_open > 3,
        "drained {kept_on_drained}, failing open {kept_failing_open}"
    );
}
