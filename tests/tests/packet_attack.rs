//! The balancer under attack (issue 12), packet by packet through
//! BPF_PROG_TEST_RUN (root): a bare SYN creates no connection-table entry
//! and the handshake's ACK does; flood mode stops inserting over its
//! threshold and resumes when its window ends; per-VIP allow and deny
//! prefixes (overlapping, both families) refuse the sources they name; new
//! connections are limited per VIP and per source prefix at the bucket's
//! boundary, established flows never are.
//!
//! The data plane's clock is CLOCK_MONOTONIC_COARSE; flood windows are set
//! from userspace with the same clock, and token refills are measured
//! across sleeps far longer than the clock's granularity.

use std::{net::IpAddr, thread::sleep, time::Duration};

use lb_common::{
    FloodState, FlowValue, Gcra, PolicyStats, VipPolicy, FLOOD_WINDOW_NS, PREFIX_ALLOW,
    PREFIX_DENY, PROTO_TCP, PROTO_UDP,
};
use lb_userspace::{dataplane::SourcePrefix, explain::coarse_now_ns};
use xlb_tests::{
    balancer_fixture::{BalancerFixture, TestVip},
    expect::{assert_encapsulated, Encapsulated, XDP_DROP, XDP_TX},
    frames::{key_of, with_flags, Frame, TCP_ACK, TCP_RST},
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

const VIP4: &str = "10.100.0.1";
const VIP6: &str = "fd10::1";
const B0: &str = "10.0.0.20";
const B1: &str = "10.0.0.21";
const B0_6: &str = "fd00::20";
const B1_6: &str = "fd00::21";

fn entry(f: &BalancerFixture, fr: &Frame) -> Option<FlowValue> {
    f.dp.flow(&key_of(fr)).unwrap_or_else(|e| panic!("{e}"))
}

fn assert_sent_to(f: &mut BalancerFixture, fr: &Frame, backend: IpAddr, what: &str) {
    let input = fr.build();
    let r = f.run(&input);
    assert_eq!(r.action, XDP_TX, "{what}");
    assert_encapsulated(&r.out, &Encapsulated::toward(f, &input, fr, backend), what);
}

fn action(f: &mut BalancerFixture, fr: &Frame) -> u32 {
    f.run(&fr.build()).action
}

fn policy_stats(f: &BalancerFixture, vip: &TestVip) -> PolicyStats {
    f.dp.policy_stats(vip.info.vip_id)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn set_policy(f: &mut BalancerFixture, vip: &TestVip, p: &VipPolicy) {
    f.dp.set_vip_policy(vip.info.vip_id, p)
        .unwrap_or_else(|e| panic!("{e}"));
}

fn set_prefix(f: &mut BalancerFixture, vip: &TestVip, cidr: &str, value: u32) {
    let (addr, len) = cidr.split_once('/').unwrap_or_else(|| panic!("{cidr}"));
    let p = SourcePrefix {
        vip_id: vip.info.vip_id,
        addr: ip(addr),
        len: len.parse().unwrap_or_else(|e| panic!("{cidr}: {e}")),
    };
    f.dp.set_source_prefix(&p, value)
        .unwrap_or_else(|e| panic!("{e}"));
}

/// A two-backend VIP whose table sends every flow to backend 0.
fn vip_on_b0(f: &mut BalancerFixture, addr: &str, proto: u8, port: u16) -> TestVip {
    let (b0, b1) = if ip(addr).is_ipv4() {
        (B0, B1)
    } else {
        (B0_6, B1_6)
    };
    f.add_vip_with_table(ip(addr), port, proto, 0, &[ip(b0), ip(b1)], |_| 0)
}

#[test]
fn a_bare_syn_creates_no_entry_and_the_handshakes_ack_does() {
    let Some(mut f) = BalancerFixture::new("syn_no_entry") else {
        return;
    };
    let mac = f.if_mac;
    for (vip_addr, client, b0) in [(VIP4, "192.0.2.7", B0), (VIP6, "2001:db8::7", B0_6)] {
        let vip = vip_on_b0(&mut f, vip_addr, PROTO_TCP, 80);
        let syn = Frame::tcp(ip(client), 40000, ip(vip_addr), 80, mac);
        for n in 0..3 {
            assert_sent_to(&mut f, &syn, ip(b0), "SYN through the table");
            assert_eq!(entry(&f, &syn), None, "SYN {n} left an entry");
        }
        // A flood of spoofed SYNs from 500 sources leaves the table empty.
        for i in 0..500u16 {
            let src = if ip(client).is_ipv4() {
                IpAddr::from([198, 18, (i >> 8) as u8, i as u8])
            } else {
                IpAddr::from([0x2001, 0xdb8, 0x18, 0, 0, 0, 0, i])
            };
            let spoofed = Frame::tcp(src, 1024 + i, ip(vip_addr), 80, mac);
            assert_eq!(action(&mut f, &spoofed), XDP_TX);
            assert_eq!(entry(&f, &spoofed), None, "spoofed SYN {i} left an entry");
        }
        let new_flows = |f: &BalancerFixture| {
            f.dp.vip_stats(vip.info.vip_id)
                .unwrap_or_else(|e| panic!("{e}"))
                .new_flows
        };
        assert_eq!(new_flows(&f), 0, "SYNs create no flow");
        // A RST of an unknown flow leaves none either; the handshake's ACK
        // creates the entry on the SYN's backend.
        let rst = Frame::tcp(ip(client), 40001, ip(vip_addr), 80, mac);
        assert_sent_to(&mut f, &with_flags(&rst, TCP_RST), ip(b0), "RST");
        assert_eq!(entry(&f, &rst), None, "RST left an entry");
        assert_sent_to(&mut f, &with_flags(&syn, TCP_ACK), ip(b0), "ACK");
        assert_eq!(
            entry(&f, &syn).map(|e| e.backend_id),
            Some(vip.backend_ids[0]),
            "the ACK created the entry"
        );
        assert_eq!(new_flows(&f), 1, "the entry is the new flow");
        // The entry holds the connection when the table moves.
        f.set_table(&vip, |_| 1);
        assert_sent_to(&mut f, &with_flags(&syn, TCP_ACK), ip(b0), "established");
    }
}

/// Flood mode at a threshold of 50 misses/s: 5 per CPU per 100 ms window.
/// Every CPU gets the same state before each packet, so the result does not
/// depend on the CPU the test run lands on.
#[test]
fn flood_mode_stops_inserting_over_its_threshold_and_resumes_with_the_next_window() {
    let Some(mut f) = BalancerFixture::new("flood_mode") else {
        return;
    };
    let mac = f.if_mac;
    let cfg = f.dp.global_config().unwrap_or_else(|e| panic!("{e}"));
    f.dp.set_global_config(&cfg.with_flood_threshold(50))
        .unwrap_or_else(|e| panic!("{e}"));
    let vip = vip_on_b0(&mut f, VIP4, PROTO_TCP, 80);
    let ack = |port: u16, mac| {
        with_flags(
            &Frame::tcp(ip("192.0.2.9"), port, ip(VIP4), 80, mac),
            TCP_ACK,
        )
    };
    let window = |f: &mut BalancerFixture, start_ns: u64, misses: u64| {
        f.dp.set_flood_states(FloodState {
            window_start_ns: start_ns,
            window_misses: misses,
            ..FloodState::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
    };

    // 4 misses so far: the 5th (at the threshold) still inserts.
    let established = ack(50000, mac);
    window(&mut f, coarse_now_ns(), 4);
    assert_sent_to(&mut f, &established, ip(B0), "5th miss");
    assert!(
        entry(&f, &established).is_some(),
        "at the threshold: inserted"
    );

    // 5 misses so far: the 6th is over it, follows Maglev, leaves no entry.
    let unknown = ack(50001, mac);
    window(&mut f, coarse_now_ns(), 5);
    assert_sent_to(&mut f, &unknown, ip(B0), "6th miss, balanced by the table");
    assert_eq!(entry(&f, &unknown), None, "over the threshold: no insert");
    let states = f.dp.flood_states().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(states.iter().map(|s| s.skipped_inserts).sum::<u64>(), 1);
    assert_eq!(states.iter().map(|s| s.flood_windows).sum::<u64>(), 1);
    assert!(states
        .iter()
        .any(|s| lb_common::policy::is_flooding(s, coarse_now_ns(), 50)));

    // While flooding, established entries stay followed.
    f.set_table(&vip, |_| 1);
    window(&mut f, coarse_now_ns(), 1000);
    assert_sent_to(&mut f, &established, ip(B0), "established, while flooding");
    assert_sent_to(&mut f, &unknown, ip(B1), "unknown, follows the table");
    assert_eq!(entry(&f, &unknown), None);

    // The window is over: inserting again.
    window(&mut f, coarse_now_ns() - 2 * FLOOD_WINDOW_NS, 1000);
    assert_sent_to(&mut f, &unknown, ip(B1), "new window");
    assert!(entry(&f, &unknown).is_some(), "inserted after the flood");

    // Threshold 0: flood mode off, whatever the window says.
    f.dp.set_global_config(&cfg.with_flood_threshold(0))
        .unwrap_or_else(|e| panic!("{e}"));
    let other = ack(50002, mac);
    window(&mut f, coarse_now_ns(), 1_000_000);
    assert_sent_to(&mut f, &other, ip(B1), "flood mode off");
    assert!(entry(&f, &other).is_some(), "flood mode off: inserted");
}

#[test]
fn overlapping_allow_and_deny_prefixes_refuse_the_sources_they_name() {
    let Some(mut f) = BalancerFixture::new("source_ranges") else {
        return;
    };
    let mac = f.if_mac;
    // Per family: an allow list with a deny prefix inside its allow
    // prefix, and a second allow prefix inside a wider deny one is never
    // installed (deny wins: userspace drops it), so only the outer deny is.
    let cases = [
        (
            VIP4,
            B0,
            ["192.0.2.0/24", "192.0.2.128/25", "198.51.100.0/24"],
            [
                ("192.0.2.7", None),
                ("192.0.2.127", None),
                ("192.0.2.128", Some(true)),
                ("192.0.2.255", Some(true)),
                ("198.51.100.9", Some(true)),
                ("203.0.113.1", Some(false)),
            ],
        ),
        (
            VIP6,
            B0_6,
            ["2001:db8::/32", "2001:db8:bad::/48", "2001:db9::/32"],
            [
                ("2001:db8::7", None),
                ("2001:db8:bac:ffff::1", None),
                ("2001:db8:bad::1", Some(true)),
                ("2001:db8:bad:ffff:ffff:ffff:ffff:ffff", Some(true)),
                ("2001:db9::1", Some(true)),
                ("2001:dba::1", Some(false)),
            ],
        ),
    ];
    for (vip_addr, b0, [allow, deny, deny_outer], sources) in cases {
        let vip = vip_on_b0(&mut f, vip_addr, PROTO_TCP, 80);
        // A second VIP of the same family without prefixes: unaffected.
        let open = vip_on_b0(&mut f, vip_addr, PROTO_TCP, 81);
        set_prefix(&mut f, &vip, allow, PREFIX_ALLOW);
        set_prefix(&mut f, &vip, deny, PREFIX_DENY);
        set_prefix(&mut f, &vip, deny_outer, PREFIX_DENY);
        set_policy(&mut f, &vip, &VipPolicy::NONE.with_prefixes(true, true));
        let mut expected = PolicyStats::default();
        for (src, refused) in sources {
            let fr = Frame::tcp(ip(src), 40000, ip(vip_addr), 80, mac);
            match refused {
                None => assert_sent_to(&mut f, &fr, ip(b0), src),
                Some(denied) => {
                    assert_eq!(action(&mut f, &fr), XDP_DROP, "{src} refused");
                    if denied {
                        expected.denied += 1;
                    } else {
                        expected.not_allowed += 1;
                    }
                }
            }
            let to_open = Frame { dport: 81, ..fr };
            assert_sent_to(&mut f, &to_open, ip(b0), "another VIP has no policy");
        }
        assert_eq!(policy_stats(&f, &vip), expected, "{vip_addr}");
        assert_eq!(policy_stats(&f, &open), PolicyStats::default());

        // A deny added at run time also cuts an established flow.
        let est = Frame::tcp(ip(sources[0].0), 40010, ip(vip_addr), 80, mac);
        assert_sent_to(&mut f, &with_flags(&est, TCP_ACK), ip(b0), "established");
        assert!(entry(&f, &est).is_some());
        let host = if ip(vip_addr).is_ipv4() { 32 } else { 128 };
        set_prefix(
            &mut f,
            &vip,
            &format!("{}/{host}", sources[0].0),
            PREFIX_DENY,
        );
        assert_eq!(action(&mut f, &with_flags(&est, TCP_ACK)), XDP_DROP);

        // Without an allow list, only the deny prefixes refuse.
        set_policy(&mut f, &vip, &VipPolicy::NONE.with_prefixes(true, false));
        let outsider = Frame::tcp(ip(sources[5].0), 40000, ip(vip_addr), 80, mac);
        assert_sent_to(&mut f, &outsider, ip(b0), "no allow list");
        let denied = Frame::tcp(ip(sources[2].0), 40000, ip(vip_addr), 80, mac);
        assert_eq!(action(&mut f, &denied), XDP_DROP, "deny still refuses");
    }
}

/// An established flow asks the tries once per access generation: while
/// its entry holds the VIP's current generation its packets skip the
/// lookup (a prefix written without a new generation does not reach it),
/// and the next generation sends it back to the tries, which now refuse
/// it; allowed again under a later generation, its entry is stamped anew.
#[test]
fn established_flows_skip_the_trie_until_the_access_generation_changes() {
    let Some(mut f) = BalancerFixture::new("access_gen") else {
        return;
    };
    let mac = f.if_mac;
    for (vip_addr, b0, client, net, host) in [
        (VIP4, B0, "192.0.2.7", "192.0.2.0/24", "192.0.2.7/32"),
        (
            VIP6,
            B0_6,
            "2001:db8::7",
            "2001:db8::/64",
            "2001:db8::7/128",
        ),
    ] {
        let vip = vip_on_b0(&mut f, vip_addr, PROTO_TCP, 80);
        let listed = VipPolicy::NONE.with_prefixes(true, true);
        set_prefix(&mut f, &vip, net, PREFIX_ALLOW);
        set_policy(&mut f, &vip, &listed.with_access_generation(5));
        let est = with_flags(
            &Frame::tcp(ip(client), 40000, ip(vip_addr), 80, mac),
            TCP_ACK,
        );
        assert_sent_to(&mut f, &est, ip(b0), "allowed, entry created");
        assert_eq!(entry(&f, &est).map(|e| e.access_generation), Some(5));

        set_prefix(&mut f, &vip, host, PREFIX_DENY);
        assert_sent_to(&mut f, &est, ip(b0), "current generation: no lookup");
        let newcomer = Frame::tcp(ip(client), 40001, ip(vip_addr), 80, mac);
        assert_eq!(
            action(&mut f, &newcomer),
            XDP_DROP,
            "a new flow is looked up"
        );

        set_policy(&mut f, &vip, &listed.with_access_generation(6));
        assert_eq!(action(&mut f, &est), XDP_DROP, "new generation: looked up");
        assert_eq!(
            entry(&f, &est).map(|e| e.access_generation),
            Some(5),
            "a refused flow's entry is not stamped"
        );

        let p = SourcePrefix {
            vip_id: vip.info.vip_id,
            addr: ip(host.split_once('/').map_or(host, |(a, _)| a)),
            len: if ip(client).is_ipv4() { 32 } else { 128 },
        };
        f.dp.remove_source_prefix(&p)
            .unwrap_or_else(|e| panic!("{e}"));
        set_policy(&mut f, &vip, &listed.with_access_generation(7));
        assert_sent_to(&mut f, &est, ip(b0), "allowed again");
        assert_eq!(entry(&f, &est).map(|e| e.access_generation), Some(7));

        // Generation 0 is never current: every packet is looked up.
        set_policy(&mut f, &vip, &listed);
        set_prefix(&mut f, &vip, host, PREFIX_DENY);
        f.dp.insert_flow(
            &key_of(&est),
            &FlowValue::new(vip.backend_ids[0], coarse_now_ns()),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(action(&mut f, &est), XDP_DROP, "generation 0: looked up");
    }
}

/// The VIP's bucket: 10 new connections/s, bursts of 3. Established flows
/// (and TCP packets that are not a bare SYN) are never limited.
#[test]
fn a_vips_rate_admits_its_burst_then_refills_with_time() {
    let Some(mut f) = BalancerFixture::new("vip_rate") else {
        return;
    };
    let mac = f.if_mac;
    let vip = vip_on_b0(&mut f, VIP4, PROTO_TCP, 80);
    set_policy(
        &mut f,
        &vip,
        &VipPolicy::NONE.with_vip_rate(Gcra::new(10, 3)),
    );
    let syn = |i: u8, mac| Frame::tcp(ip(&format!("192.0.2.{i}")), 40000, ip(VIP4), 80, mac);
    for i in 1..=3 {
        assert_sent_to(&mut f, &syn(i, mac), ip(B0), "within the burst");
    }
    let est = syn(1, mac);
    assert_sent_to(&mut f, &with_flags(&est, TCP_ACK), ip(B0), "handshake ACK");
    assert_eq!(action(&mut f, &syn(4, mac)), XDP_DROP, "over the burst");
    assert_eq!(action(&mut f, &syn(5, mac)), XDP_DROP, "still over");
    assert_sent_to(
        &mut f,
        &with_flags(&est, TCP_ACK),
        ip(B0),
        "established: never limited",
    );
    let unknown_ack = with_flags(&syn(6, mac), TCP_ACK);
    assert_sent_to(&mut f, &unknown_ack, ip(B0), "not a new connection");
    assert_eq!(policy_stats(&f, &vip).vip_rate_limited, 2);

    // 100 ms refills one token: after 150 ms one SYN passes, the next not.
    sleep(Duration::from_millis(150));
    assert_sent_to(&mut f, &syn(7, mac), ip(B0), "refilled");
    assert_eq!(action(&mut f, &syn(8, mac)), XDP_DROP, "one token only");
    // A long pause refills to the burst, never beyond.
    sleep(Duration::from_millis(1_000));
    for i in 9..12 {
        assert_sent_to(&mut f, &syn(i, mac), ip(B0), "full bucket");
    }
    assert_eq!(
        action(&mut f, &syn(12, mac)),
        XDP_DROP,
        "no more than the burst"
    );
    assert_eq!(policy_stats(&f, &vip).vip_rate_limited, 4);
}

/// Per source prefix (/24 and /64): 10/s, bursts of 2, per bucket; another
/// prefix has its own bucket, and a source over its rate takes nothing from
/// the VIP's.
#[test]
fn a_source_prefix_rate_limits_that_prefix_only() {
    let Some(mut f) = BalancerFixture::new("source_rate") else {
        return;
    };
    let mac = f.if_mac;
    for (vip_addr, b0, prefix, same, other) in [
        (
            VIP4,
            B0,
            24,
            ["192.0.2.1", "192.0.2.2", "192.0.2.250"],
            "192.0.3.1",
        ),
        (
            VIP6,
            B0_6,
            64,
            ["2001:db8::1", "2001:db8::2", "2001:db8::ffff:1"],
            "2001:db8:0:1::1",
        ),
    ] {
        let vip = vip_on_b0(&mut f, vip_addr, PROTO_TCP, 80);
        set_policy(
            &mut f,
            &vip,
            &VipPolicy::NONE
                .with_source_rate(Gcra::new(10, 2), prefix)
                .with_vip_rate(Gcra::new(10, 3)),
        );
        let syn = |s: &str, mac| Frame::tcp(ip(s), 40000, ip(vip_addr), 80, mac);
        assert_sent_to(&mut f, &syn(same[0], mac), ip(b0), "1st of the prefix");
        assert_sent_to(&mut f, &syn(same[1], mac), ip(b0), "2nd of the prefix");
        for _ in 0..5 {
            assert_eq!(
                action(&mut f, &syn(same[2], mac)),
                XDP_DROP,
                "3rd source of the same prefix: over its rate"
            );
        }
        // The over-limit SYNs took nothing from the VIP's bucket (burst 3).
        assert_sent_to(&mut f, &syn(other, mac), ip(b0), "another prefix");
        let s = policy_stats(&f, &vip);
        assert_eq!((s.source_rate_limited, s.vip_rate_limited), (5, 0));
        // Now the VIP's bucket is empty: the other prefix's next is refused
        // by the VIP's rate.
        let again = Frame {
            sport: 40001,
            ..syn(other, mac)
        };
        assert_eq!(action(&mut f, &again), XDP_DROP);
        assert_eq!(policy_stats(&f, &vip).vip_rate_limited, 1);
    }
}

/// UDP: a new flow is a new connection (its first packet without an
/// entry); the flow's later packets follow their entry and are not limited.
#[test]
fn new_udp_flows_are_limited_and_their_later_packets_are_not() {
    let Some(mut f) = BalancerFixture::new("udp_rate") else {
        return;
    };
    let mac = f.if_mac;
    let vip = vip_on_b0(&mut f, VIP4, PROTO_UDP, 53);
    set_policy(
        &mut f,
        &vip,
        &VipPolicy::NONE.with_vip_rate(Gcra::new(1, 1)),
    );
    let first = Frame::udp(ip("192.0.2.1"), 5353, ip(VIP4), 53, mac);
    assert_sent_to(&mut f, &first, ip(B0), "first flow");
    assert!(entry(&f, &first).is_some());
    let second = Frame::udp(ip("192.0.2.2"), 5353, ip(VIP4), 53, mac);
    assert_eq!(action(&mut f, &second), XDP_DROP, "second new flow");
    assert_eq!(entry(&f, &second), None);
    for _ in 0..10 {
        assert_sent_to(&mut f, &first, ip(B0), "the admitted flow goes on");
    }
    assert_eq!(policy_stats(&f, &vip).vip_rate_limited, 1);
}
