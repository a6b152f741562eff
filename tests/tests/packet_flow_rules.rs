//! When the connection table is followed, and when a packet goes through the
//! VIP's table instead (`lb_common::decision::flow_entry_use`): a backend that
//! failed its health check loses its flows unless the VIP fails open; a
//! drained backend keeps its established flows but never gets a SYN; UDP
//! entries expire after the VIP's idle timeout; a RST never creates an entry.
//! Runs the real object through BPF_PROG_TEST_RUN (root); forwarded frames are
//! checked byte for byte.

use std::{net::IpAddr, time::Duration};

use lb_common::{Backend, FlowValue, VipInfo, PROTO_TCP, PROTO_UDP, VIP_F_FAIL_OPEN};
use lb_userspace::explain::coarse_now_ns;
use xlb_tests::{
    balancer_fixture::{BalancerFixture, TestVip},
    expect::{assert_encapsulated, Encapsulated, XDP_TX},
    frames::{key_of, with_flags, Frame, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN},
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

const CLIENT: &str = "192.0.2.7";
const VIP: &str = "10.100.0.1";
const B0: &str = "10.0.0.20";
const B1: &str = "10.0.0.21";

/// Sends `fr`, checks it left encapsulated toward `backend`, byte for byte.
fn assert_sent_to(f: &mut BalancerFixture, fr: &Frame, backend: IpAddr, what: &str) {
    let input = fr.build();
    let r = f.run(&input);
    assert_eq!(r.action, XDP_TX, "{what}");
    assert_encapsulated(&r.out, &Encapsulated::toward(f, &input, fr, backend), what);
}

/// The flow's connection-table entry, if it has one.
fn entry(f: &BalancerFixture, fr: &Frame) -> Option<FlowValue> {
    f.dp.flow(&key_of(fr)).unwrap_or_else(|e| panic!("{e}"))
}

/// A two-backend VIP whose table sends every flow to backend 0.
fn vip_on_b0(f: &mut BalancerFixture, proto: u8, port: u16) -> TestVip {
    f.add_vip_with_table(ip(VIP), port, proto, 0, &[ip(B0), ip(B1)], |_| 0)
}

/// Rewrites backend `i` of `vip` with `weight` and `healthy`, as the
/// reconciler records a drain or a failed check.
fn set_backend(f: &mut BalancerFixture, vip: &TestVip, i: usize, weight: u16, healthy: bool) {
    let b = Backend::new(vip.backends[i], vip.info.vip_id, weight, healthy);
    f.dp.set_backend(vip.backend_ids[i], &b)
        .unwrap_or_else(|e| panic!("{e}"));
}

fn set_vip(f: &mut BalancerFixture, vip: &TestVip, info: VipInfo) {
    f.dp.set_vip(&vip.key, &info)
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_failed_backend_loses_its_flows_unless_the_vip_fails_open() {
    let Some(mut f) = BalancerFixture::new("failed_backend_flows") else {
        return;
    };
    let tcp = vip_on_b0(&mut f, PROTO_TCP, 80);
    let a = Frame::tcp(ip(CLIENT), 40000, ip(VIP), 80, f.if_mac);
    let b = Frame::tcp(ip(CLIENT), 40001, ip(VIP), 80, f.if_mac);
    for fr in [&a, &b] {
        assert_sent_to(&mut f, fr, ip(B0), "SYN, pinned to b0");
        assert_sent_to(&mut f, &with_flags(fr, TCP_ACK), ip(B0), "handshake ACK");
    }
    let udp = vip_on_b0(&mut f, PROTO_UDP, 53);
    let u = Frame::udp(ip(CLIENT), 5353, ip(VIP), 53, f.if_mac);
    assert_sent_to(&mut f, &u, ip(B0), "udp, pinned to b0");

    // b0 fails its check: the reconciler takes it out of the tables, then
    // flags it unhealthy.
    f.set_table(&tcp, |_| 1);
    f.set_table(&udp, |_| 1);
    set_backend(&mut f, &tcp, 0, 100, false);
    set_backend(&mut f, &udp, 0, 100, false);
    for flags in [TCP_ACK, TCP_ACK | TCP_PSH] {
        assert_sent_to(
            &mut f,
            &with_flags(&a, flags),
            ip(B1),
            "established flow of a failed backend",
        );
    }
    assert_eq!(
        entry(&f, &a).map(|e| e.backend_id),
        Some(tcp.backend_ids[1]),
        "the entry is replaced"
    );
    assert_sent_to(&mut f, &u, ip(B1), "udp flow of a failed backend");
    assert_eq!(
        entry(&f, &u).map(|e| e.backend_id),
        Some(udp.backend_ids[1])
    );

    // Every backend fails: the VIP fails open and follows its flows again,
    // wherever the table points.
    set_backend(&mut f, &tcp, 1, 100, false);
    let mut failing_open = tcp.info;
    failing_open.flags = VIP_F_FAIL_OPEN;
    set_vip(&mut f, &tcp, failing_open);
    assert_sent_to(
        &mut f,
        &with_flags(&b, TCP_ACK),
        ip(B0),
        "failing open, the flow keeps its unhealthy backend",
    );
    assert_sent_to(
        &mut f,
        &with_flags(&a, TCP_ACK),
        ip(B1),
        "and the moved flow its new one",
    );
}

#[test]
fn a_drained_backend_keeps_established_flows_but_never_takes_a_syn() {
    let Some(mut f) = BalancerFixture::new("drained_backend_flows") else {
        return;
    };
    let vip = vip_on_b0(&mut f, PROTO_TCP, 80);
    let flows: Vec<Frame> = (0..4)
        .map(|i| Frame::tcp(ip(CLIENT), 41000 + i, ip(VIP), 80, f.if_mac))
        .collect();
    for fr in &flows {
        assert_sent_to(&mut f, fr, ip(B0), "SYN, pinned to b0");
        assert_sent_to(&mut f, &with_flags(fr, TCP_ACK), ip(B0), "handshake ACK");
    }
    // b0 is drained: weight 0, out of the table, healthy.
    f.set_table(&vip, |_| 1);
    set_backend(&mut f, &vip, 0, 0, true);
    let established = [
        TCP_ACK,
        TCP_ACK | TCP_PSH,
        TCP_ACK | TCP_FIN,
        TCP_SYN | TCP_ACK,
    ];
    for (fr, flags) in flows.iter().zip(established) {
        assert_sent_to(
            &mut f,
            &with_flags(fr, flags),
            ip(B0),
            &format!("flags {flags:#04x} of an established flow stay on the drained backend"),
        );
    }
    // A SYN on the same 5-tuple (a retransmit, or the port re-used for a new
    // connection) takes the table and re-points the old entry, so the
    // handshake's ACK follows it to the SYN's backend.
    assert_sent_to(&mut f, &flows[0], ip(B1), "a bare SYN never follows");
    assert_eq!(
        entry(&f, &flows[0]).map(|e| e.backend_id),
        Some(vip.backend_ids[1])
    );
    assert_sent_to(
        &mut f,
        &with_flags(&flows[0], TCP_ACK),
        ip(B1),
        "the new connection stays on its backend",
    );
    let s =
        f.dp.vip_stats(vip.info.vip_id)
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        s.new_flows, 4,
        "4 new flows (entries created): the re-used 5-tuple is not a new one"
    );
}

#[test]
fn a_reset_never_creates_a_flow_entry() {
    let Some(mut f) = BalancerFixture::new("reset_no_entry") else {
        return;
    };
    let vip = vip_on_b0(&mut f, PROTO_TCP, 80);
    let fr = Frame::tcp(ip(CLIENT), 42000, ip(VIP), 80, f.if_mac);
    for flags in [TCP_RST, TCP_RST | TCP_ACK] {
        assert_sent_to(
            &mut f,
            &with_flags(&fr, flags),
            ip(B0),
            "RST through the table",
        );
        assert_eq!(entry(&f, &fr), None, "flags {flags:#04x} left an entry");
    }
    assert_eq!(
        f.dp.vip_stats(vip.info.vip_id)
            .unwrap_or_else(|e| panic!("{e}"))
            .new_flows,
        0
    );
    // A RST follows an existing entry (and leaves it in place).
    assert_sent_to(&mut f, &with_flags(&fr, TCP_ACK), ip(B0), "ACK: pinned");
    f.set_table(&vip, |_| 1);
    assert_sent_to(&mut f, &with_flags(&fr, TCP_RST), ip(B0), "RST follows");
    assert_eq!(
        entry(&f, &fr).map(|e| e.backend_id),
        Some(vip.backend_ids[0])
    );
}

/// Deterministic: the entry's time is set back from userspace (the data
/// plane's clock is CLOCK_MONOTONIC_COARSE), around the default 30 s.
#[test]
fn udp_entries_expire_after_the_idle_timeout_and_active_ones_are_refreshed() {
    let Some(mut f) = BalancerFixture::new("udp_expiry") else {
        return;
    };
    let vip = vip_on_b0(&mut f, PROTO_UDP, 53);
    let fr = Frame::udp(ip(CLIENT), 5353, ip(VIP), 53, f.if_mac);
    assert_sent_to(&mut f, &fr, ip(B0), "first datagram");
    let created = entry(&f, &fr).unwrap_or_else(|| panic!("no entry"));
    let now = coarse_now_ns();
    assert!(
        created.last_seen_ns.abs_diff(now) < 1_000_000_000,
        "the entry's time is the coarse monotonic clock: {} vs {now}",
        created.last_seen_ns
    );
    f.set_table(&vip, |_| 1);
    let age = |f: &mut BalancerFixture, secs: u64| {
        let ago = coarse_now_ns().saturating_sub(secs * 1_000_000_000);
        f.dp.insert_flow(&key_of(&fr), &FlowValue::new(vip.backend_ids[0], ago))
            .unwrap_or_else(|e| panic!("{e}"));
        ago
    };

    // Idle 5 s (over 1/8 of 30 s): followed, and its time moves to now.
    let ago = age(&mut f, 5);
    assert_sent_to(&mut f, &fr, ip(B0), "idle 5 s: still pinned");
    let refreshed = entry(&f, &fr).unwrap_or_else(|| panic!("no entry"));
    assert!(refreshed.last_seen_ns >= ago + 4_000_000_000, "refreshed");
    // Idle 2 s (under 1/8): followed, not written.
    let ago = age(&mut f, 2);
    assert_sent_to(&mut f, &fr, ip(B0), "idle 2 s: still pinned");
    assert_eq!(entry(&f, &fr).map(|e| e.last_seen_ns), Some(ago));
    // Idle 29 s: still pinned.
    age(&mut f, 29);
    assert_sent_to(&mut f, &fr, ip(B0), "idle 29 s: still pinned");
    // Idle 31 s: expired, through the table, and a fresh entry.
    age(&mut f, 31);
    assert_sent_to(&mut f, &fr, ip(B1), "idle 31 s: expired");
    let fresh = entry(&f, &fr).unwrap_or_else(|| panic!("no entry"));
    assert_eq!(fresh.backend_id, vip.backend_ids[1]);
    assert!(fresh.last_seen_ns.abs_diff(coarse_now_ns()) < 1_000_000_000);

    // TCP entries do not expire.
    let tcp = vip_on_b0(&mut f, PROTO_TCP, 80);
    let t = Frame::tcp(ip(CLIENT), 5353, ip(VIP), 80, f.if_mac);
    assert_sent_to(&mut f, &t, ip(B0), "SYN");
    f.set_table(&tcp, |_| 1);
    f.dp.insert_flow(&key_of(&t), &FlowValue::new(tcp.backend_ids[0], 0))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_sent_to(&mut f, &with_flags(&t, TCP_ACK), ip(B0), "an old TCP entry");
}

/// The same in real time, with the VIP's own timeout: a VIP with a 1 s
/// timeout forgets a flow after 1.3 s of silence.
#[test]
fn a_vips_udp_idle_timeout_is_its_own() {
    let Some(mut f) = BalancerFixture::new("udp_timeout_per_vip") else {
        return;
    };
    let vip = vip_on_b0(&mut f, PROTO_UDP, 53);
    set_vip(&mut f, &vip, vip.info.with_udp_idle_timeout_ms(1_000));
    let fr = Frame::udp(ip(CLIENT), 6000, ip(VIP), 53, f.if_mac);
    assert_sent_to(&mut f, &fr, ip(B0), "first datagram");
    f.set_table(&vip, |_| 1);
    // Active (every 300 ms, longer than the 125 ms refresh step): pinned.
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(300));
        assert_sent_to(&mut f, &fr, ip(B0), "active flow");
    }
    std::thread::sleep(Duration::from_millis(1300));
    assert_sent_to(&mut f, &fr, ip(B1), "silent for 1.3 s with a 1 s timeout");
}
