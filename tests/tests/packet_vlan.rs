//! VLAN egress (`lb_common::decision::egress`): a tagged packet keeps its tag
//! and leaves by the ingress interface only when the route to the backend
//! goes through a VLAN device of that interface with the same tag; every
//! other combination (another VLAN, another parent, an untagged interface for
//! a tagged packet, a VLAN device for an untagged one) is dropped as
//! `vlan_mismatch`, never sent with a wrong tag or redirected to a VLAN
//! device. Runs the real object through BPF_PROG_TEST_RUN (root); forwarded
//! frames are checked byte for byte.
//!
//! Stand-ins: the test kernel has no 802.1Q support (`CONFIG_VLAN_8021Q` is
//! not set, `ip link add ... type vlan` fails with "Unknown device type"), so
//! each "VLAN device" here is a veth with the routes and neighbours a VLAN
//! sub-interface would have, and the `XLB_VLANS` entry the daemon records for
//! a real one (parent ifindex, VLAN id, protocol;
//! `BalancerFixture::add_vlan_standin`). The data plane knows VLAN devices
//! only through that map; how the daemon reads them from netlink is tested in
//! `lb_userspace::vlan_devices` against kernel-format messages.

use std::{collections::BTreeMap, net::IpAddr};

use lb_common::{Verdict, VlanDevice, PROTO_TCP, TPID_8021AD, TPID_8021Q};
use xlb_tests::{
    balancer_fixture::{BalancerFixture, IFACE},
    expect::{assert_encapsulated, Encapsulated, XDP_DROP, XDP_TX},
    frames::{key_of, Frame, L4, TCP_ACK, TCP_PSH, TCP_SYN},
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

const CLIENT4: &str = "192.0.2.7";
const CLIENT6: &str = "2001:db8::7";

/// The stand-in VLAN devices and a backend behind each.
const V100: &str = "xlbv100"; // id 100 on xlbp0
const V200: &str = "xlbv200"; // id 200 on xlbp0
const OTHER_V100: &str = "xlbv2100"; // id 100 on xlbp2
const AD300: &str = "xlbad300"; // 802.1ad id 300 on xlbp0
const B_V100: &str = "10.1.100.5";
const B6_V100: &str = "fd01:100::5";
const B_V200: &str = "10.1.200.5";
const B_OTHER_V100: &str = "10.2.100.5";
const B_AD300: &str = "10.1.44.5";
const B_UNTAGGED: &str = "10.0.0.11";

/// What `XLB_VLANS` holds for the stand-ins.
fn vlan_map(f: &BalancerFixture) -> BTreeMap<u32, VlanDevice> {
    let idx = |dev: &str| f.ns.ifindex(dev);
    BTreeMap::from([
        (idx(V100), VlanDevice::new(idx(IFACE), 100, TPID_8021Q)),
        (idx(V200), VlanDevice::new(idx(IFACE), 200, TPID_8021Q)),
        (
            idx(OTHER_V100),
            VlanDevice::new(idx("xlbp2"), 100, TPID_8021Q),
        ),
        (idx(AD300), VlanDevice::new(idx(IFACE), 300, TPID_8021AD)),
    ])
}

/// Adds the stand-in VLAN devices (recorded in `XLB_VLANS`) and the
/// backends' neighbours on them.
fn vlan_fixture(test: &str) -> Option<BalancerFixture> {
    let mut f = BalancerFixture::new(test)?;
    f.ns.ip("link add xlbp2 type veth peer name xlbp3");
    f.ns.ip("link set xlbp2 up");
    f.ns.ip("link set xlbp3 up");
    f.add_vlan_standin(
        V100,
        IFACE,
        100,
        TPID_8021Q,
        &["10.1.100.1/24", "fd01:100::1/64"],
    );
    f.add_vlan_standin(V200, IFACE, 200, TPID_8021Q, &["10.1.200.1/24"]);
    f.add_vlan_standin(OTHER_V100, "xlbp2", 100, TPID_8021Q, &["10.2.100.1/24"]);
    f.add_vlan_standin(AD300, IFACE, 300, TPID_8021AD, &["10.1.44.1/24"]);
    for (backend, dev) in [
        (B_V100, V100),
        (B6_V100, V100),
        (B_V200, V200),
        (B_OTHER_V100, OTHER_V100),
        (B_AD300, AD300),
    ] {
        f.add_neighbour_on(ip(backend), dev);
    }
    Some(f)
}

fn verdict_count(f: &BalancerFixture, v: Verdict) -> u64 {
    f.dp.verdicts().unwrap_or_else(|e| panic!("{e}"))[v as usize]
}

/// A frame from `client` to `vip`:80, tagged `(tpid, tci)` if given.
fn frame(f: &BalancerFixture, client: &str, vip: &str, tag: Option<(u16, u16)>) -> Vec<u8> {
    frame_with_flags(f, client, vip, tag, TCP_SYN)
}

/// [`frame`] with the TCP flags `flags`.
fn frame_with_flags(
    f: &BalancerFixture,
    client: &str,
    vip: &str,
    tag: Option<(u16, u16)>,
    flags: u8,
) -> Vec<u8> {
    let mut fr = Frame::tcp(ip(client), 40000, ip(vip), 80, f.if_mac);
    fr.l4 = L4::Tcp { flags };
    fr.vlan = tag.map(|(_, tci)| tci & 0x0fff);
    fr.vlan_qinq_tpid = matches!(tag, Some((TPID_8021AD, _)));
    let mut bytes = fr.build();
    if let Some((_, tci)) = tag {
        // Priority and DEI bits, which the builder leaves 0.
        bytes[14..16].copy_from_slice(&tci.to_be_bytes());
    }
    bytes
}

fn parse_frame(f: &BalancerFixture, client: &str, vip: &str, tagged: bool) -> Frame {
    let mut fr = Frame::tcp(ip(client), 40000, ip(vip), 80, f.if_mac);
    fr.vlan = tagged.then_some(1);
    fr
}

/// `sync_vlans` makes the map equal to what it is given (stale entries
/// removed, changed ones rewritten); the daemon's netlink read finds no VLAN
/// device among ordinary ones (and so clears the stand-ins).
#[test]
fn xlb_vlans_follows_the_devices_it_is_given() {
    let Some(mut f) = vlan_fixture("vlan_map") else {
        return;
    };
    let mut map = vlan_map(&f);
    assert_eq!(f.dp.vlan_devices().unwrap_or_else(|e| panic!("{e}")), map);
    let v200 = f.ns.ifindex(V200);
    let v100 = f.ns.ifindex(V100);
    map.remove(&v200);
    map.insert(v100, VlanDevice::new(f.ns.ifindex(IFACE), 101, TPID_8021Q));
    let sync = f.dp.sync_vlans(&map).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((sync.added_or_changed, sync.removed), (1, 1));
    assert_eq!(f.dp.vlan_devices().unwrap_or_else(|e| panic!("{e}")), map);
    assert_eq!(f.sync_vlans(), 0, "veths are not VLAN devices");
    assert!(f
        .dp
        .vlan_devices()
        .unwrap_or_else(|e| panic!("{e}"))
        .is_empty());
}

/// Same VLAN: XDP_TX out of the physical interface, the tag (TPID, priority,
/// id) exactly as it came in.
#[test]
fn a_tagged_packet_to_a_backend_on_its_own_vlan_keeps_its_tag() {
    let Some(mut f) = vlan_fixture("vlan_same") else {
        return;
    };
    f.add_vip(ip("10.100.0.1"), 80, PROTO_TCP, 0, &[ip(B_V100)]);
    f.add_vip(ip("fd00:100::1"), 80, PROTO_TCP, 0, &[ip(B6_V100)]);
    f.add_vip(ip("10.100.0.5"), 80, PROTO_TCP, 0, &[ip(B_AD300)]);
    let cases = [
        (CLIENT4, "10.100.0.1", B_V100, (TPID_8021Q, 100)),
        (CLIENT4, "10.100.0.1", B_V100, (TPID_8021Q, 0xb000 | 100)),
        (CLIENT6, "fd00:100::1", B6_V100, (TPID_8021Q, 100)),
        (CLIENT4, "10.100.0.5", B_AD300, (TPID_8021AD, 0x2000 | 300)),
    ];
    for (client, vip, backend, tag) in cases {
        let input = frame(&f, client, vip, Some(tag));
        let r = f.run(&input);
        let what = format!("{vip} tagged {tag:04x?} -> {backend}");
        assert_eq!(r.action, XDP_TX, "{what}");
        let fr = parse_frame(&f, client, vip, true);
        let e = Encapsulated {
            src_mac: f.ns.mac(if backend == B_AD300 { AD300 } else { V100 }),
            ..Encapsulated::toward(&f, &input, &fr, ip(backend))
        };
        assert_encapsulated(&r.out, &e, &what);
        assert_eq!(&r.out[12..16], &input[12..16], "{what}: TPID and TCI kept");
    }
    assert_eq!(verdict_count(&f, Verdict::Tx), cases.len() as u64);
    assert_eq!(verdict_count(&f, Verdict::VlanMismatch), 0);
}

/// An established tagged flow: the handshake's ACK makes its entry, the
/// data packet after it finds its VIP through the entry (`XLB_VIP_CFG`)
/// and leaves with its tag exactly as the first did.
#[test]
fn an_established_tagged_flow_keeps_its_tag() {
    let Some(mut f) = vlan_fixture("vlan_established") else {
        return;
    };
    f.add_vip(ip("10.100.0.1"), 80, PROTO_TCP, 0, &[ip(B_V100)]);
    f.add_vip(ip("fd00:100::1"), 80, PROTO_TCP, 0, &[ip(B6_V100)]);
    let cases = [
        (CLIENT4, "10.100.0.1", B_V100),
        (CLIENT6, "fd00:100::1", B6_V100),
    ];
    for (client, vip, backend) in cases {
        let fr = parse_frame(&f, client, vip, true);
        for flags in [TCP_ACK, TCP_ACK | TCP_PSH] {
            let input = frame_with_flags(&f, client, vip, Some((TPID_8021Q, 100)), flags);
            let r = f.run(&input);
            let what = format!("{vip} tagged, flags {flags:#x} -> {backend}");
            assert_eq!(r.action, XDP_TX, "{what}");
            let e = Encapsulated {
                src_mac: f.ns.mac(V100),
                ..Encapsulated::toward(&f, &input, &fr, ip(backend))
            };
            assert_encapsulated(&r.out, &e, &what);
            assert_eq!(&r.out[12..16], &input[12..16], "{what}: TPID and TCI kept");
        }
        assert!(
            f.dp.flow(&key_of(&fr))
                .unwrap_or_else(|e| panic!("{e}"))
                .is_some(),
            "{vip}: the ACK made the flow's entry"
        );
    }
    assert_eq!(verdict_count(&f, Verdict::Tx), 4);
}

/// Every other combination is dropped and counted, never sent.
#[test]
fn packets_routed_off_their_vlan_are_dropped_as_vlan_mismatch() {
    let Some(mut f) = vlan_fixture("vlan_mismatch") else {
        return;
    };
    // Redirecting to the VLAN device must not happen even if it is an
    // allowed transmit port.
    let v100 = f.ns.ifindex(V100);
    let allowed = f.dp.add_tx_port(v100).is_ok();
    for (i, backend) in [B_V100, B_V200, B_OTHER_V100, B_UNTAGGED, B_AD300]
        .iter()
        .enumerate()
    {
        f.add_vip(
            IpAddr::from([10, 100, 0, 10 + i as u8]),
            80,
            PROTO_TCP,
            0,
            &[ip(backend)],
        );
    }
    let cases = [
        (
            "10.100.0.11",
            Some((TPID_8021Q, 100)),
            "tagged 100 -> VLAN 200 of the same parent",
        ),
        (
            "10.100.0.12",
            Some((TPID_8021Q, 100)),
            "tagged 100 -> VLAN 100 of another parent",
        ),
        (
            "10.100.0.13",
            Some((TPID_8021Q, 100)),
            "tagged 100 -> the untagged interface",
        ),
        ("10.100.0.10", None, "untagged -> a VLAN device"),
        (
            "10.100.0.14",
            Some((TPID_8021Q, 300)),
            "802.1Q 300 -> the 802.1ad device 300",
        ),
        (
            "10.100.0.10",
            Some((TPID_8021Q, 101)),
            "tagged 101 -> VLAN 100",
        ),
    ];
    for (n, (vip, tag, what)) in cases.iter().enumerate() {
        let input = frame(&f, CLIENT4, vip, *tag);
        let r = f.run(&input);
        assert_eq!(
            r.action, XDP_DROP,
            "{what} (transmit port allowed: {allowed})"
        );
        assert_eq!(
            verdict_count(&f, Verdict::VlanMismatch),
            n as u64 + 1,
            "{what}"
        );
    }
    assert_eq!(verdict_count(&f, Verdict::Redirect), 0);
    assert_eq!(verdict_count(&f, Verdict::Tx), 0);

    // Untagged to an ordinary interface still works.
    let input = frame(&f, CLIENT4, "10.100.0.13", None);
    let r = f.run(&input);
    assert_eq!(r.action, XDP_TX);
    let fr = parse_frame(&f, CLIENT4, "10.100.0.13", false);
    assert_encapsulated(
        &r.out,
        &Encapsulated::toward(&f, &input, &fr, ip(B_UNTAGGED)),
        "untagged",
    );
}
