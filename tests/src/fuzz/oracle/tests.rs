//! The oracle on hand-built frames (etherparse's builder, then byte edits):
//! what it expects, which results it accepts, and that it refuses each way a
//! result can be wrong, including today's known defects (trailing bytes
//! forwarded, the client's TTL copied, a VLAN tag carried to another
//! interface).

use std::net::IpAddr;

use etherparse::{
    IpHeaders, IpNumber, Ipv4Header, Ipv6FlowLabel, Ipv6Header, PacketBuilder, PacketBuilderStep,
    VlanId,
};
use lb_common::Verdict;

use super::{
    expect::{expect, Answer, Expectation},
    judge::{judge, Problem},
    model::{XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_REDIRECT, XDP_TX},
    BackendModel, Iface, Mode, Model, Path, VerdictSet, VipModel,
};

const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xc1];
const INGRESS: Iface = Iface {
    ifindex: 2,
    mac: [2, 0xaa, 0, 0, 0, 2],
    tx_port: false,
};
const REDIRECT: Iface = Iface {
    ifindex: 5,
    mac: [2, 0xaa, 0, 0, 0, 5],
    tx_port: true,
};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn mac_of(addr: IpAddr) -> [u8; 6] {
    let o = match addr {
        IpAddr::V4(a) => a.octets(),
        IpAddr::V6(a) => {
            let o = a.octets();
            [o[12], o[13], o[14], o[15]]
        }
    };
    [2, 0xbe, o[0], o[1], o[2], o[3]]
}

fn backend(addr: &str, weight: u16, path: Path) -> BackendModel {
    BackendModel {
        addr: ip(addr),
        weight,
        healthy: true,
        path,
        on_link: true,
    }
}

fn direct(iface: Iface, addr: &str, mtu: u32) -> Path {
    Path::Direct {
        iface,
        next_hop_mac: mac_of(ip(addr)),
        mtu,
    }
}

const TCP: u8 = 6;
const UDP: u8 = 17;

/// VIPs: 0 10.100.0.1:80/tcp (two IPv4 backends on the ingress, one IPv6,
/// one drained), 1 10.100.0.1:0/udp (one backend behind a transmit port,
/// MTU 1400), 2 [fd00:100::1]:80/tcp (an IPv4 backend), 3 10.100.0.4:9000/tcp
/// (drained only), 4 10.100.0.4:7000/udp (a blackholed and an unresolved
/// backend).
fn model() -> Model {
    let vips = vec![
        VipModel::new(
            ip("10.100.0.1"),
            80,
            TCP,
            false,
            vec![
                backend("10.0.0.10", 100, direct(INGRESS, "10.0.0.10", 1500)),
                backend("10.0.0.11", 100, direct(INGRESS, "10.0.0.11", 1500)),
                backend("fd00::10", 100, direct(INGRESS, "fd00::10", 1500)),
                backend("10.0.0.13", 0, direct(INGRESS, "10.0.0.13", 1500)),
            ],
        ),
        VipModel::new(
            ip("10.100.0.1"),
            0,
            UDP,
            false,
            vec![backend(
                "10.3.0.10",
                100,
                direct(REDIRECT, "10.3.0.10", 1400),
            )],
        ),
        VipModel::new(
            ip("fd00:100::1"),
            80,
            TCP,
            false,
            vec![backend(
                "10.0.0.50",
                100,
                direct(INGRESS, "10.0.0.50", 1500),
            )],
        ),
        VipModel::new(
            ip("10.100.0.4"),
            9000,
            TCP,
            false,
            vec![backend("10.0.0.40", 0, direct(INGRESS, "10.0.0.40", 1500))],
        ),
        VipModel::new(
            ip("10.100.0.4"),
            7000,
            UDP,
            false,
            vec![
                backend("10.9.0.9", 100, Path::Unreachable),
                backend(
                    "10.0.0.250",
                    100,
                    Path::Unresolved {
                        iface: INGRESS,
                        mtu: 1500,
                    },
                ),
            ],
        ),
    ];
    Model {
        ingress: INGRESS,
        vips,
        outer_source_v4: Some("10.0.0.1".parse().expect("v4")),
        outer_source_v6: Some("fd00::1".parse().expect("v6")),
        outer_ttl: 64,
        vlan_error: VerdictSet::EMPTY,
        no_neigh_drop: VerdictSet::EMPTY,
        nat: Default::default(),
    }
}

/// A TCP (or UDP) frame from a client to `dst:dport`, optionally tagged.
fn frame(dst: &str, dport: u16, udp: bool, vlan: Option<u16>, payload: &[u8]) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(CLIENT_MAC, INGRESS.mac);
    let mut out = Vec::new();
    match (ip(dst), vlan) {
        (IpAddr::V4(d), None) => {
            let b = eth.ipv4([192, 0, 2, 7], d.octets(), 9);
            write_l4(b, udp, dport, payload, &mut out);
        }
        (IpAddr::V4(d), Some(v)) => {
            let b = eth.single_vlan(VlanId::try_new(v).expect("vid")).ipv4(
                [192, 0, 2, 7],
                d.octets(),
                9,
            );
            write_l4(b, udp, dport, payload, &mut out);
        }
        (IpAddr::V6(d), None) => {
            let src = ip("2001:db8::7");
            let IpAddr::V6(s) = src else { unreachable!() };
            let b = eth.ipv6(s.octets(), d.octets(), 9);
            write_l4(b, udp, dport, payload, &mut out);
        }
        (IpAddr::V6(_), Some(_)) => unreachable!("not needed"),
    }
    out
}

fn write_l4(
    b: PacketBuilderStep<IpHeaders>,
    udp: bool,
    dport: u16,
    payload: &[u8],
    out: &mut Vec<u8>,
) {
    if udp {
        b.udp(40000, dport).write(out, payload).expect("write");
    } else {
        b.tcp(40000, dport, 1, 1000)
            .write(out, payload)
            .expect("write");
    }
}

/// What a correct balancer sends for `input` toward `backend`: the next
/// hop's MACs, the input's tag if `tag`, an outer header with the configured
/// TTL, and exactly the input's IP packet.
fn encapsulated(
    input: &[u8],
    l3: usize,
    ip_len: usize,
    backend: &str,
    iface: Iface,
    tag: Option<[u8; 4]>,
) -> Vec<u8> {
    let inner = &input[l3..l3 + ip_len];
    let inner_v4 = inner[0] >> 4 == 4;
    let tos = if inner_v4 {
        inner[1]
    } else {
        (u16::from_be_bytes([inner[0], inner[1]]) >> 4) as u8
    };
    let proto = if inner_v4 {
        IpNumber::IPV4
    } else {
        IpNumber::IPV6
    };
    let dst = ip(backend);
    let mut out = Vec::new();
    out.extend_from_slice(&mac_of(dst));
    out.extend_from_slice(&iface.mac);
    if let Some(t) = tag {
        out.extend_from_slice(&t);
    }
    match dst {
        IpAddr::V4(d) => {
            out.extend_from_slice(&0x0800u16.to_be_bytes());
            let mut h = Ipv4Header::new(ip_len as u16, 64, proto, [10, 0, 0, 1], d.octets())
                .expect("header");
            h.dont_fragment = true;
            h.identification = 0;
            h.dscp = etherparse::IpDscp::try_new(tos >> 2).expect("dscp");
            h.ecn = etherparse::IpEcn::try_new(tos & 3).expect("ecn");
            h.header_checksum = h.calc_header_checksum();
            out.extend_from_slice(&h.to_bytes());
        }
        IpAddr::V6(d) => {
            out.extend_from_slice(&0x86ddu16.to_be_bytes());
            let h = Ipv6Header {
                traffic_class: tos,
                flow_label: Ipv6FlowLabel::try_new(0x12345).expect("label"),
                payload_length: ip_len as u16,
                next_header: proto,
                hop_limit: 64,
                source: ip6("fd00::1"),
                destination: d.octets(),
            };
            out.extend_from_slice(&h.to_bytes());
        }
    }
    out.extend_from_slice(inner);
    out
}

fn ip6(s: &str) -> [u8; 16] {
    match ip(s) {
        IpAddr::V6(a) => a.octets(),
        IpAddr::V4(_) => unreachable!(),
    }
}

fn whats(r: Result<super::Accepted, Vec<Problem>>) -> Vec<&'static str> {
    match r {
        Ok(a) => panic!("accepted: {a:?}"),
        Err(p) => p.into_iter().map(|p| p.what).collect(),
    }
}

fn only(v: Verdict) -> VerdictSet {
    VerdictSet::of(v)
}

#[test]
fn non_vip_traffic_must_pass_unchanged() {
    let m = model();
    let f = frame("10.100.0.9", 80, false, None, b"hi");
    let e = expect(&m, &f);
    assert_eq!(
        (e.pass, e.drop, e.forward),
        (only(Verdict::NotVip), VerdictSet::EMPTY, None)
    );
    let ok = judge(&m, &f, &e, XDP_PASS, &f).expect("unchanged pass");
    assert_eq!(ok.verdicts, only(Verdict::NotVip));
    let mut changed = f.clone();
    changed[30] ^= 1;
    assert_eq!(
        whats(judge(&m, &f, &e, XDP_PASS, &changed)),
        ["passed frame modified"]
    );
    assert_eq!(
        whats(judge(&m, &f, &e, XDP_DROP, &f)),
        ["dropped without a documented reason"]
    );
    assert_eq!(
        whats(judge(&m, &f, &e, XDP_TX, &f)),
        ["transmitted a frame that is not VIP traffic"]
    );
    assert_eq!(whats(judge(&m, &f, &e, XDP_ABORTED, &f)), ["XDP_ABORTED"]);
    assert_eq!(whats(judge(&m, &f, &e, 7, &f)), ["unknown XDP action"]);

    // A VIP address, but another port or protocol.
    assert_eq!(
        expect(&m, &frame("10.100.0.1", 81, false, None, b"")).pass,
        only(Verdict::NotVip)
    );
    assert_eq!(
        expect(&m, &frame("10.100.0.4", 7001, true, None, b"")).pass,
        only(Verdict::NotVip)
    );
}

#[test]
fn not_ip_frames() {
    let m = model();
    let mut arp = frame("10.100.0.1", 80, false, None, b"");
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    assert_eq!(expect(&m, &arp).pass, only(Verdict::NotIp));
    // Two tags (QinQ) in front of a VIP packet.
    let mut qinq = frame("10.100.0.1", 80, false, Some(100), b"");
    qinq.splice(12..12, [0x88, 0xa8, 0x00, 0x07]);
    let e = expect(&m, &qinq);
    assert_eq!((e.pass, e.forward), (only(Verdict::NotIp), None));
    // A tag cut short.
    let cut = &frame("10.100.0.1", 80, false, Some(100), b"")[..16];
    assert!(expect(&m, cut).pass.contains(Verdict::Malformed));
    assert!(expect(&m, &cut[..14]).drop.is_empty());
}

#[test]
fn vip_traffic_encapsulated_correctly_is_accepted() {
    let m = model();
    let f = frame("10.100.0.1", 80, false, None, b"hello");
    let e = expect(&m, &f);
    let fwd = e.forward.expect("VIP traffic");
    assert_eq!((fwd.vip, fwd.l3_off, fwd.ip_len), (0, 14, f.len() - 14));
    assert!(e.pass.is_empty() && e.drop.is_empty(), "{e:?}");
    for backend in ["10.0.0.10", "10.0.0.11", "fd00::10"] {
        let out = encapsulated(&f, 14, f.len() - 14, backend, INGRESS, None);
        let ok = judge(&m, &f, &e, XDP_TX, &out).unwrap_or_else(|p| panic!("{backend}: {p:?}"));
        assert_eq!(ok.verdicts, only(Verdict::Tx));
        assert_eq!(ok.backend, Some(ip(backend)));
    }
    // IPv6 to an IPv4 backend.
    let f6 = frame("fd00:100::1", 80, false, None, b"six");
    let e6 = expect(&m, &f6);
    let out = encapsulated(&f6, 14, f6.len() - 14, "10.0.0.50", INGRESS, None);
    judge(&m, &f6, &e6, XDP_TX, &out).expect("v6 in v4");
    // A port-0 VIP behind a transmit port: redirected.
    let u = frame("10.100.0.1", 12345, true, None, b"udp");
    let eu = expect(&m, &u);
    assert_eq!(eu.forward.map(|f| f.vip), Some(1));
    let out = encapsulated(&u, 14, u.len() - 14, "10.3.0.10", REDIRECT, None);
    let ok = judge(&m, &u, &eu, XDP_REDIRECT, &out).expect("redirect");
    assert_eq!(ok.verdicts, only(Verdict::Redirect));
    assert_eq!(
        whats(judge(&m, &u, &eu, XDP_TX, &out)),
        ["wrong transmit action for the backend's interface"]
    );
}

#[test]
fn trailing_bytes_must_not_be_forwarded() {
    // Defect 5: Ethernet padding after a 40-byte IP packet.
    let m = model();
    let mut f = frame("10.100.0.1", 80, false, None, b"");
    let ip_len = f.len() - 14;
    f.resize(60, 0);
    let e = expect(&m, &f);
    assert_eq!(e.forward.map(|x| x.ip_len), Some(ip_len));
    let right = encapsulated(&f, 14, ip_len, "10.0.0.10", INGRESS, None);
    judge(&m, &f, &e, XDP_TX, &right).expect("tail trimmed");
    // Today's data plane: outer length of the IP packet, the tail still sent.
    let mut wrong = right.clone();
    wrong.extend_from_slice(&f[14 + ip_len..]);
    assert_eq!(
        whats(judge(&m, &f, &e, XDP_TX, &wrong)),
        [
            "outer length differs from what is sent",
            "bytes past the inner IP packet forwarded"
        ]
    );
}

#[test]
fn the_outer_ttl_is_the_configured_one() {
    // Defect 6: the client's TTL (9 here) copied into the outer header.
    let m = model();
    let f = frame("10.100.0.1", 80, false, None, b"x");
    let e = expect(&m, &f);
    for backend in ["10.0.0.10", "fd00::10"] {
        let mut out = encapsulated(&f, 14, f.len() - 14, backend, INGRESS, None);
        if backend.contains(':') {
            out[14 + 7] = 9;
        } else {
            out[14 + 8] = 9;
            fix_outer_checksum(&mut out);
        }
        assert_eq!(
            whats(judge(&m, &f, &e, XDP_TX, &out)),
            ["outer TTL / hop limit is not the configured one"],
            "{backend}"
        );
    }
    let m32 = Model {
        outer_ttl: 32,
        ..model()
    };
    let out = encapsulated(&f, 14, f.len() - 14, "10.0.0.10", INGRESS, None);
    assert_eq!(
        whats(judge(&m32, &f, &e, XDP_TX, &out)),
        ["outer TTL / hop limit is not the configured one"],
        "the TTL comes from the model"
    );
}

fn fix_outer_checksum(out: &mut [u8]) {
    let h = etherparse::Ipv4HeaderSlice::from_slice(&out[14..]).expect("outer");
    let c = h.to_header().calc_header_checksum();
    out[24..26].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn tagged_packets_never_leave_off_their_vlan() {
    // Defect 7: the tag followed the frame back out of a plain interface, or
    // onto another one. The model's backends are on plain interfaces only.
    let m = Model {
        vlan_error: only(Verdict::VlanMismatch),
        ..model()
    };
    let tag = [0x81, 0x00, 0x00, 100];
    let f = frame("10.100.0.1", 80, false, Some(100), b"t");
    let e = expect(&m, &f);
    assert!(e.drop.contains(Verdict::VlanMismatch), "{e:?}");
    let kept = encapsulated(&f, 18, f.len() - 18, "10.0.0.10", INGRESS, Some(tag));
    assert_eq!(
        whats(judge(&m, &f, &e, XDP_TX, &kept)),
        ["tagged packet transmitted toward a backend off its VLAN"]
    );
    let u = frame("10.100.0.1", 53, true, Some(100), b"u");
    let eu = expect(&m, &u);
    assert!(eu.drop.contains(Verdict::VlanMismatch), "{eu:?}");
    let carried = encapsulated(&u, 18, u.len() - 18, "10.3.0.10", REDIRECT, Some(tag));
    assert_eq!(
        whats(judge(&m, &u, &eu, XDP_REDIRECT, &carried)),
        ["tagged packet transmitted toward a backend off its VLAN"]
    );
    let untagged = encapsulated(&u, 18, u.len() - 18, "10.3.0.10", REDIRECT, None);
    assert_eq!(
        whats(judge(&m, &u, &eu, XDP_REDIRECT, &untagged)),
        ["tagged packet transmitted toward a backend off its VLAN"]
    );
    // Untagged frames get no tag.
    let plain = frame("10.100.0.1", 80, false, None, b"p");
    let ep = expect(&m, &plain);
    let tagged_out = encapsulated(
        &plain,
        14,
        plain.len() - 14,
        "10.0.0.10",
        INGRESS,
        Some(tag),
    );
    assert_eq!(
        whats(judge(&m, &plain, &ep, XDP_TX, &tagged_out)),
        ["VLAN tag added to an untagged packet"]
    );
}

#[test]
fn every_broken_outer_header_is_refused() {
    let m = model();
    let f = frame("10.100.0.1", 80, false, None, b"body");
    let e = expect(&m, &f);
    let good = encapsulated(&f, 14, f.len() - 14, "10.0.0.10", INGRESS, None);
    type Breaker = fn(&mut Vec<u8>);
    let cases: [(&str, Breaker); 8] = [
        ("outer IPv4 header checksum wrong", |o| o[24] ^= 1),
        ("outer IPv4 header is not DF, unfragmented", |o| {
            o[20] = 0;
            fix_outer_checksum(o);
        }),
        ("outer protocol does not match the inner family", |o| {
            o[23] = 41;
            fix_outer_checksum(o);
        }),
        ("outer source is not the configured one", |o| {
            o[29] = 2;
            fix_outer_checksum(o);
        }),
        (
            "outer TOS / traffic class differs from the inner packet's",
            |o| {
                o[15] = 4;
                fix_outer_checksum(o);
            },
        ),
        ("wrong MAC addresses on the encapsulated frame", |o| {
            o[0] ^= 2
        }),
        ("inner packet altered or cut", |o| {
            let n = o.len();
            o[n - 1] ^= 1;
        }),
        ("outer length differs from what is sent", |o| {
            o[17] += 1;
            fix_outer_checksum(o);
        }),
    ];
    for (what, break_it) in cases {
        let mut out = good.clone();
        break_it(&mut out);
        assert!(
            whats(judge(&m, &f, &e, XDP_TX, &out)).contains(&what),
            "{what}"
        );
    }
    // The drained backend, and an address of no backend.
    for wrong in ["10.0.0.13", "10.0.0.99"] {
        let out = encapsulated(&f, 14, f.len() - 14, wrong, INGRESS, None);
        assert_eq!(
            whats(judge(&m, &f, &e, XDP_TX, &out)),
            ["outer destination is not an eligible backend of the VIP"]
        );
    }
    let mut cut = good.clone();
    cut.pop();
    assert!(whats(judge(&m, &f, &e, XDP_TX, &cut)).contains(&"inner packet altered or cut"));
    // Dropping or passing VIP traffic without a reason.
    assert_eq!(
        whats(judge(&m, &f, &e, XDP_DROP, &f)),
        ["dropped without a documented reason"]
    );
    assert_eq!(
        whats(judge(&m, &f, &e, XDP_PASS, &f)),
        ["VIP traffic passed to the kernel untouched"]
    );
}

#[test]
fn fragments_and_unbalanceable_packets_to_vip_addresses_drop() {
    let m = model();
    let mut frag = frame("10.100.0.1", 80, false, None, b"f");
    frag[14 + 6] = 0x20; // MF
    assert_eq!(expect(&m, &frag).drop, only(Verdict::Fragment));
    frag[14 + 6] = 0x40; // DF alone is no fragment
    assert!(expect(&m, &frag).forward.is_some());
    let mut later = frame("10.100.0.4", 1, true, None, b"f");
    later[14 + 7] = 1; // offset 8
    assert_eq!(expect(&m, &later).drop, only(Verdict::Fragment), "any port");
    let mut elsewhere = frame("10.100.0.9", 80, false, None, b"f");
    elsewhere[14 + 6] = 0x20;
    let e = expect(&m, &elsewhere);
    assert_eq!((e.pass, e.drop), (only(Verdict::NotVip), VerdictSet::EMPTY));
    // ICMP to a VIP address is not ours.
    let mut icmp = frame("10.100.0.1", 80, false, None, b"");
    icmp[14 + 9] = 1;
    assert_eq!(expect(&m, &icmp).pass, only(Verdict::NotVip));
    // A VIP whose backends are all drained.
    let e = expect(&m, &frame("10.100.0.4", 9000, false, None, b""));
    assert_eq!((e.drop, e.forward), (only(Verdict::NoBackend), None));
}

#[test]
fn lying_lengths_are_malformed() {
    let m = model();
    let f = frame("10.100.0.1", 80, false, None, b"abcdef");
    let malformed = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut g = f.clone();
        edit(&mut g);
        let e: Expectation = expect(&m, &g);
        assert_eq!(
            (e.pass, e.drop, e.forward),
            (only(Verdict::Malformed), VerdictSet::EMPTY, None)
        );
    };
    let total = f.len() as u16 - 14;
    malformed(&|g| g[16..18].copy_from_slice(&(total + 1).to_be_bytes()));
    malformed(&|g| g[16..18].copy_from_slice(&19u16.to_be_bytes()));
    malformed(&|g| g[14] = 0x44);
    malformed(&|g| g[14] = 0x55);
    malformed(&|g| g.truncate(14 + 19));
    // Total length cutting the TCP header.
    malformed(&|g| g[16..18].copy_from_slice(&39u16.to_be_bytes()));
    // A shorter total length is fine: the rest is a tail.
    let mut g = f.clone();
    g[16..18].copy_from_slice(&40u16.to_be_bytes());
    assert_eq!(expect(&m, &g).forward.map(|x| x.ip_len), Some(40));
    // A TCP data offset that disagrees: malformed or balanced.
    let mut g = f.clone();
    g[14 + 20 + 12] = 0xf0;
    let e = expect(&m, &g);
    assert_eq!(e.pass, only(Verdict::Malformed));
    assert!(e.forward.is_some());

    let f6 = frame("fd00:100::1", 80, false, None, b"abc");
    let mut g = f6.clone();
    let payload = (f6.len() - 54) as u16;
    g[18..20].copy_from_slice(&(payload + 1).to_be_bytes());
    assert_eq!(expect(&m, &g).pass, only(Verdict::Malformed));
    g[18..20].copy_from_slice(&0u16.to_be_bytes());
    assert!(expect(&m, &g).pass.contains(Verdict::Malformed));
    assert!(expect(&m, &g).forward.is_none());
}

/// `f6` with extension headers (type, length) inserted before TCP.
fn with_extensions(f6: &[u8], exts: &[(u8, u8, u8)]) -> Vec<u8> {
    let mut g = f6[..54].to_vec();
    let mut next_at = 14 + 6;
    for &(kind, len_units, last_byte) in exts {
        g[next_at] = kind;
        next_at = g.len();
        let len = 8 * (usize::from(len_units) + 1);
        let start = g.len();
        g.resize(start + len, 0);
        g[start + 1] = if kind == 44 { 0 } else { len_units };
        g[start + 3] = last_byte;
    }
    g[next_at] = TCP;
    g.extend_from_slice(&f6[54..]);
    let payload = (g.len() - 54) as u16;
    g[18..20].copy_from_slice(&payload.to_be_bytes());
    g
}

#[test]
fn ipv6_extension_chains() {
    let m = model();
    let f6 = frame("fd00:100::1", 80, false, None, b"x");
    let e = expect(
        &m,
        &with_extensions(&f6, &[(0, 0, 0), (60, 1, 0), (43, 0, 0)]),
    );
    assert!(e.forward.is_some(), "three walked: {e:?}");
    let four = with_extensions(&f6, &[(0, 0, 0), (60, 0, 0), (60, 0, 0), (60, 0, 0)]);
    assert_eq!(expect(&m, &four).drop, only(Verdict::Ipv6ExtUnsupported));
    let routing = with_extensions(&f6, &[(43, 0, 2)]);
    assert_eq!(expect(&m, &routing).drop, only(Verdict::Ipv6ExtUnsupported));
    let fragment = with_extensions(&f6, &[(60, 0, 0), (44, 0, 0)]);
    assert_eq!(expect(&m, &fragment).drop, only(Verdict::Fragment));
    let fourth_is_fragment = with_extensions(&f6, &[(0, 0, 0), (0, 0, 0), (0, 0, 0), (44, 0, 0)]);
    assert_eq!(
        expect(&m, &fourth_is_fragment).drop,
        only(Verdict::Fragment).with(Verdict::Ipv6ExtUnsupported)
    );
    // The same to an address that is no VIP's: passed.
    let mut other = routing.clone();
    other[14 + 24 + 15] = 9;
    let e = expect(&m, &other);
    assert_eq!((e.pass, e.drop), (only(Verdict::NotVip), VerdictSet::EMPTY));
    // A header longer than the packet.
    let mut overrun = with_extensions(&f6, &[(0, 0, 0)]);
    overrun[54 + 1] = 200;
    let e = expect(&m, &overrun);
    assert!(e.pass.contains(Verdict::Malformed) && e.forward.is_none());
    // The forwarded packet carries the extension headers untouched.
    let g = with_extensions(&f6, &[(0, 0, 0)]);
    let e = expect(&m, &g);
    let out = encapsulated(&g, 14, g.len() - 14, "10.0.0.50", INGRESS, None);
    judge(&m, &g, &e, XDP_TX, &out).expect("with a hop-by-hop header");
}

#[test]
fn too_big_for_the_path() {
    let m = model();
    // VIP 1's only backend is behind MTU 1400: an IP packet of 1380 bytes
    // fits with its 20-byte outer header, 1381 does not.
    let fits = frame("10.100.0.1", 5, true, None, &[7; 1380 - 28]);
    let e = expect(&m, &fits);
    assert!(e.drop.is_empty(), "{e:?}");
    let over = frame("10.100.0.1", 5, true, None, &[7; 1381 - 28]);
    let e = expect(&m, &over);
    // DF set: answered with "fragmentation needed" (or rate-limited).
    assert_eq!(e.drop, only(Verdict::IcmpTooBigLimited));
    let out = encapsulated(&over, 14, over.len() - 14, "10.3.0.10", REDIRECT, None);
    assert_eq!(
        whats(judge(&m, &over, &e, XDP_REDIRECT, &out)),
        ["encapsulated packet larger than the path MTU sent"]
    );
    let answer = |mtu: u16| {
        let mut a = Vec::new();
        PacketBuilder::ethernet2(INGRESS.mac, CLIENT_MAC)
            .ipv4([10, 100, 0, 1], [192, 0, 2, 7], 64)
            .icmpv4_raw(3, 4, [0, 0, (mtu >> 8) as u8, mtu as u8])
            .write(&mut a, &over[14..14 + 28])
            .expect("write");
        a[15] = 0xc0;
        crate::frames::fix_ipv4_checksum(&mut a, 14);
        a
    };
    let ok = judge(&m, &over, &e, XDP_TX, &answer(1380)).expect("the MTU 1400 - 20");
    assert_eq!(ok.verdicts, only(Verdict::IcmpTooBigSent));
    assert!(
        judge(&m, &over, &e, XDP_TX, &answer(1400)).is_err(),
        "wrong MTU"
    );
    // DF clear: no error may be sent.
    let mut no_df = over.clone();
    no_df[14 + 6] = 0;
    crate::frames::fix_ipv4_checksum(&mut no_df, 14);
    let e = expect(&m, &no_df);
    assert_eq!((e.drop, e.answer), (only(Verdict::TooBig), None));
}

#[test]
fn echo_requests_and_icmp_errors_to_vip_addresses() {
    let m = model();
    let mut req = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, INGRESS.mac)
        .ipv4([192, 0, 2, 7], [10, 100, 0, 1], 9)
        .icmpv4_echo_request(7, 1)
        .write(&mut req, b"ping")
        .expect("write");
    let e = expect(&m, &req);
    assert_eq!(e.drop, only(Verdict::IcmpEchoLimited));
    let mut reply = Vec::new();
    PacketBuilder::ethernet2(INGRESS.mac, CLIENT_MAC)
        .ipv4([10, 100, 0, 1], [192, 0, 2, 7], 64)
        .icmpv4_echo_reply(7, 1)
        .write(&mut reply, b"ping")
        .expect("write");
    let ok = judge(&m, &req, &e, XDP_TX, &reply).expect("echo reply");
    assert_eq!(ok.verdicts, only(Verdict::IcmpEchoReply));
    assert!(
        judge(&m, &req, &e, XDP_TX, &req).is_err(),
        "the request back"
    );

    // An error quoting VIP 10.100.0.1:5/udp's reply to 192.0.2.7:40000.
    let mut quote = Vec::new();
    PacketBuilder::ipv4([10, 100, 0, 1], [192, 0, 2, 7], 60)
        .udp(5, 40000)
        .write(&mut quote, b"reply")
        .expect("write");
    let err = |q: &[u8]| {
        let mut f = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC, INGRESS.mac)
            .ipv4([198, 51, 100, 1], [10, 100, 0, 1], 9)
            .icmpv4_raw(3, 4, [0, 0, 5, 0])
            .write(&mut f, q)
            .expect("write");
        f
    };
    let f = err(&quote);
    let e = expect(&m, &f);
    let fw = e.forward.expect("to the flow's backend");
    assert_eq!(fw.counted_as, Some(Verdict::IcmpToBackend));
    let client = frame("10.100.0.1", 5, true, None, b"x");
    assert_eq!(
        Some(fw.flow),
        expect(&m, &client).forward.map(|c| c.flow),
        "the quoted flow, reversed"
    );
    let e = expect(&m, &err(&quote[..24]));
    assert_eq!(e.drop, only(Verdict::IcmpMalformed), "cut short");
    let mut foreign = quote.clone();
    foreign[12] = 11;
    assert_eq!(
        expect(&m, &err(&foreign)).drop,
        only(Verdict::IcmpMalformed)
    );
}

#[test]
fn unreachable_and_unresolved_backends() {
    let m = model();
    let f = frame("10.100.0.4", 7000, true, None, b"dns");
    let e = expect(&m, &f);
    assert_eq!(e.drop, only(Verdict::FibUnreachable));
    assert!(judge(&m, &f, &e, XDP_DROP, &f).is_ok());
    // Handed to the kernel encapsulated toward the unresolved backend.
    let mut out = encapsulated(&f, 14, f.len() - 14, "10.0.0.250", INGRESS, None);
    out[..12].copy_from_slice(&f[..12]);
    let ok = judge(&m, &f, &e, XDP_PASS, &out).expect("fib_no_neigh");
    assert_eq!(ok.verdicts, only(Verdict::FibNoNeigh));
    assert_eq!(
        whats(judge(&m, &f, &e, XDP_TX, &out)),
        ["transmitted toward an unresolved neighbour"]
    );
    let blackholed = encapsulated(&f, 14, f.len() - 14, "10.9.0.9", INGRESS, None);
    assert_eq!(
        whats(judge(&m, &f, &e, XDP_TX, &blackholed)),
        ["encapsulated toward a backend without a route"]
    );
}

/// The model with VIP 0 forwarded by `mode`.
/// nat adds no byte: a packet larger than the path MTU itself is answered
/// with that MTU like every other mode's (it used to be dropped
/// unanswered).
#[test]
fn nat_answers_too_big_with_the_path_mtu() {
    // VIP 1, the UDP one behind MTU 1400, in nat mode.
    let mut m = model();
    let v = m.vips.remove(1).with_mode(Mode::Nat);
    m.vips.insert(1, v);
    let fits = frame("10.100.0.1", 5, true, None, &[7; 1400 - 28]);
    let e = expect(&m, &fits);
    assert!(!e.drop.contains(Verdict::TooBig), "{e:?}");
    let over = frame("10.100.0.1", 5, true, None, &[7; 1401 - 28]);
    let e = expect(&m, &over);
    assert_eq!(e.answer, Some(Answer::TooBig), "{e:?}");
    assert!(e.drop.contains(Verdict::IcmpTooBigLimited), "{e:?}");
    assert!(!e.drop.contains(Verdict::TooBig), "{e:?}");
    let mut answer = Vec::new();
    PacketBuilder::ethernet2(INGRESS.mac, CLIENT_MAC)
        .ipv4([10, 100, 0, 1], [192, 0, 2, 7], 64)
        .icmpv4_raw(3, 4, [0, 0, 0x05, 0x78])
        .write(&mut answer, &over[14..14 + 28])
        .expect("write");
    answer[15] = 0xc0;
    crate::frames::fix_ipv4_checksum(&mut answer, 14);
    let ok = judge(&m, &over, &e, XDP_TX, &answer).expect("the path MTU, 1400");
    assert_eq!(ok.verdicts, only(Verdict::IcmpTooBigSent));
}

fn model_with(mode: Mode) -> Model {
    let mut m = model();
    let v = m.vips.remove(0).with_mode(mode);
    m.vips.insert(0, v);
    m
}

/// `encapsulated` made GUE: a UDP header (to `port`, from `sport`, checksum
/// 0) between the outer IPv4 header and the inner packet.
fn gue_v4(input: &[u8], backend: &str, port: u16, sport: u16) -> Vec<u8> {
    let ip_len = input.len() - 14;
    let mut out = encapsulated(input, 14, ip_len, backend, INGRESS, None);
    let udp_len = (8 + ip_len) as u16;
    let mut udp = Vec::new();
    udp.extend_from_slice(&sport.to_be_bytes());
    udp.extend_from_slice(&port.to_be_bytes());
    udp.extend_from_slice(&udp_len.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    out.splice(34..34, udp);
    out[14 + 9] = 17;
    let total = (20 + 8 + ip_len) as u16;
    out[16..18].copy_from_slice(&total.to_be_bytes());
    fix_outer_checksum(&mut out);
    out
}

#[test]
fn gue_frames_are_judged_by_their_udp_header() {
    let m = model_with(Mode::Gue { port: 6080 });
    let f = frame("10.100.0.1", 80, false, None, b"hello");
    let e = expect(&m, &f);
    let good = gue_v4(&f, "10.0.0.10", 6080, 0xc123);
    let ok = judge(&m, &f, &e, XDP_TX, &good).unwrap_or_else(|p| panic!("{p:?}"));
    assert_eq!(ok.backend, Some(ip("10.0.0.10")));
    assert_eq!(
        whats(judge(
            &m,
            &f,
            &e,
            XDP_TX,
            &gue_v4(&f, "10.0.0.10", 6081, 0xc123)
        )),
        ["GUE destination port is not the VIP's"]
    );
    assert_eq!(
        whats(judge(
            &m,
            &f,
            &e,
            XDP_TX,
            &gue_v4(&f, "10.0.0.10", 6080, 1234)
        )),
        ["GUE source port outside the dynamic range"]
    );
    let mut summed = good.clone();
    summed[40] = 0x12;
    assert_eq!(
        whats(judge(&m, &f, &e, XDP_TX, &summed)),
        ["GUE UDP checksum is not zero"]
    );
    // Plain IP-in-IP where GUE is configured.
    let ipip = encapsulated(&f, 14, f.len() - 14, "10.0.0.10", INGRESS, None);
    assert!(whats(judge(&m, &f, &e, XDP_TX, &ipip))
        .contains(&"outer protocol does not match the inner family"));
}

#[test]
fn gue_counts_eight_more_bytes_against_the_mtu() {
    // VIP 1 is behind a 1400-byte path: a 1373-byte packet fits with
    // IP-in-IP's 20 bytes but not with GUE's 28.
    let mut m = model();
    let v = m.vips.remove(1).with_mode(Mode::Gue { port: 6080 });
    m.vips.insert(1, v);
    let f = frame("10.100.0.1", 5000, true, None, &vec![0; 1373 - 28]);
    // Too big: answered with a too-big error (or not, over the ICMP rate).
    let e = expect(&m, &f);
    assert_eq!(e.drop, only(Verdict::IcmpTooBigLimited));
    assert_eq!(e.answer, Some(Answer::TooBig));
    // The MTU it tells the client leaves room for GUE's 28 bytes.
    let answer = |mtu: u16| {
        let mut a = Vec::new();
        PacketBuilder::ethernet2(INGRESS.mac, CLIENT_MAC)
            .ipv4([10, 100, 0, 1], [192, 0, 2, 7], 64)
            .icmpv4_raw(3, 4, [0, 0, (mtu >> 8) as u8, mtu as u8])
            .write(&mut a, &f[14..14 + 28])
            .expect("write");
        a[15] = 0xc0;
        crate::frames::fix_ipv4_checksum(&mut a, 14);
        a
    };
    let ok = judge(&m, &f, &e, XDP_TX, &answer(1372)).expect("the MTU 1400 - 28");
    assert_eq!(ok.verdicts, only(Verdict::IcmpTooBigSent));
    assert!(
        judge(&m, &f, &e, XDP_TX, &answer(1380)).is_err(),
        "IP-in-IP's MTU for a GUE VIP"
    );
    let e = expect(&model(), &f);
    assert!(e.drop.is_empty() && e.answer.is_none());
}

#[test]
fn l2_dsr_frames_are_the_clients_packet_behind_new_macs() {
    let m = model_with(Mode::L2Dsr);
    let f = frame("10.100.0.1", 80, false, None, b"hello");
    let e = expect(&m, &f);
    let rewrite = |dmac: [u8; 6], smac: [u8; 6]| {
        let mut out = f.clone();
        out[..6].copy_from_slice(&dmac);
        out[6..12].copy_from_slice(&smac);
        out
    };
    let good = rewrite(mac_of(ip("10.0.0.11")), INGRESS.mac);
    let ok = judge(&m, &f, &e, XDP_TX, &good).unwrap_or_else(|p| panic!("{p:?}"));
    assert_eq!(
        (ok.backend, ok.verdicts),
        (Some(ip("10.0.0.11")), only(Verdict::Tx))
    );
    // The drained backend's MAC, a stranger's, the wrong source MAC.
    assert_eq!(
        whats(judge(
            &m,
            &f,
            &e,
            XDP_TX,
            &rewrite(mac_of(ip("10.0.0.13")), INGRESS.mac)
        )),
        ["l2-dsr frame not addressed to an eligible backend's MAC"]
    );
    assert_eq!(
        whats(judge(
            &m,
            &f,
            &e,
            XDP_TX,
            &rewrite(mac_of(ip("10.0.0.11")), CLIENT_MAC)
        )),
        ["wrong MAC addresses on the encapsulated frame"]
    );
    // An outer header where none belongs.
    let ipip = encapsulated(&f, 14, f.len() - 14, "10.0.0.11", INGRESS, None);
    assert!(judge(&m, &f, &e, XDP_TX, &ipip).is_err());
    // A full-size packet fits: no overhead.
    let big = frame("10.100.0.1", 80, false, None, &vec![0; 1500 - 40]);
    assert!(expect(&m, &big).drop.is_empty());
}

#[test]
fn l2_dsr_drops_unresolved_backends() {
    let mut m = model();
    let v = m.vips.remove(4).with_mode(Mode::L2Dsr);
    m.vips.insert(4, v);
    let f = frame("10.100.0.4", 7000, true, None, b"dns");
    let e = expect(&m, &f);
    assert_eq!(
        e.drop,
        VerdictSet::of(Verdict::FibUnreachable).with(Verdict::L2NoNeigh)
    );
    // Handing it to the kernel is wrong for l2-dsr.
    let mut out = f.clone();
    out[..6].copy_from_slice(&mac_of(ip("10.0.0.250")));
    assert!(judge(&m, &f, &e, XDP_PASS, &out).is_err());
}

#[test]
fn l2_dsr_drops_backends_behind_a_gateway() {
    let mut m = model_with(Mode::L2Dsr);
    for b in &mut m.vips[0].backends {
        b.on_link = false;
    }
    let f = frame("10.100.0.1", 80, false, None, b"hello");
    let e = expect(&m, &f);
    assert_eq!(e.drop, only(Verdict::L2OffLink));
    let mut out = f.clone();
    out[..6].copy_from_slice(&mac_of(ip("10.0.0.10")));
    out[6..12].copy_from_slice(&INGRESS.mac);
    assert_eq!(
        whats(judge(&m, &f, &e, XDP_TX, &out)),
        ["l2-dsr frame sent toward a backend behind a gateway"]
    );
    // Tagged: the VLAN rule decides first.
    let tagged = frame("10.100.0.1", 80, false, Some(7), b"hello");
    assert!(!expect(&m, &tagged).drop.contains(Verdict::L2OffLink));
}

/// `input` (an IPv4 TCP frame) as `nat` sends it: from `src:sport` to
/// `dst`, checksums computed from scratch, the MACs of `dst` on the ingress.
fn nat_translated(input: &[u8], src: &str, sport: u16, dst: &str) -> Vec<u8> {
    let mut out = input.to_vec();
    out[0..6].copy_from_slice(&mac_of(ip(dst)));
    out[6..12].copy_from_slice(&INGRESS.mac);
    let (IpAddr::V4(s), IpAddr::V4(d)) = (ip(src), ip(dst)) else {
        unreachable!("IPv4 only")
    };
    out[26..30].copy_from_slice(&s.octets());
    out[30..34].copy_from_slice(&d.octets());
    out[34..36].copy_from_slice(&sport.to_be_bytes());
    let h = etherparse::Ipv4HeaderSlice::from_slice(&out[14..])
        .expect("IPv4")
        .to_header();
    out[24..26].copy_from_slice(&h.calc_header_checksum().to_be_bytes());
    let tcp = etherparse::TcpHeaderSlice::from_slice(&out[34..])
        .expect("TCP")
        .to_header();
    let payload = out[34 + tcp.header_len()..].to_vec();
    let c = tcp.calc_checksum_ipv4(&h, &payload).expect("checksum");
    out[50..52].copy_from_slice(&c.to_be_bytes());
    out
}

#[test]
fn nat_frames_need_a_nat_source_a_range_port_and_updated_checksums() {
    let mut m = model_with(Mode::Nat);
    m.nat = super::NatModel {
        sources: vec![ip("10.0.0.1")],
        ports: (20000, 30000),
    };
    let f = frame("10.100.0.1", 80, false, None, b"nat payload");
    let e = expect(&m, &f);
    assert!(
        e.forward.is_some() && e.drop.contains(Verdict::NatExhausted),
        "{e:?}"
    );
    let good = nat_translated(&f, "10.0.0.1", 25000, "10.0.0.10");
    assert_eq!(
        judge(&m, &f, &e, XDP_TX, &good).map(|a| a.verdicts),
        Ok(only(Verdict::Tx))
    );
    let mut bad = good.clone();
    bad[51] ^= 1;
    assert_eq!(
        whats(judge(&m, &f, &e, XDP_TX, &bad)),
        ["nat transport checksum not updated for the new addresses and port"]
    );
    let mut bad = good.clone();
    bad[25] ^= 1;
    assert_eq!(
        whats(judge(&m, &f, &e, XDP_TX, &bad)),
        ["nat IPv4 header checksum not updated for the new addresses"]
    );
    let other = nat_translated(&f, "10.0.0.99", 25000, "10.0.0.10");
    assert_eq!(
        whats(judge(&m, &f, &e, XDP_TX, &other)),
        ["nat frame's source is not a NAT address"]
    );
    let low = nat_translated(&f, "10.0.0.1", 5000, "10.0.0.10");
    assert_eq!(
        whats(judge(&m, &f, &e, XDP_TX, &low)),
        ["nat source port outside the NAT range"]
    );
    let mut ttl = good.clone();
    ttl[22] = 1;
    assert!(whats(judge(&m, &f, &e, XDP_TX, &ttl))
        .contains(&"nat frame altered beyond addresses, source port and checksums"));
    // To a NAT address, not a VIP: a reply without session passes.
    let reply = frame("10.0.0.1", 25000, false, None, b"r");
    assert_eq!(expect(&m, &reply).pass, only(Verdict::NatReplyUnknown));
}
