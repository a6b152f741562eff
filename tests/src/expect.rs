//! Checks on the balancer's output frames, decoded independently of the data
//! plane with etherparse: the outer header's fields and checksum, the next
//! hop's MACs, and that the inner packet is exactly what the client sent.

use std::net::IpAddr;

use etherparse::{IpNumber, Ipv4HeaderSlice, Ipv6HeaderSlice, UdpHeaderSlice};

use crate::{
    balancer_fixture::{backend_mac, BalancerFixture, RunResult, BALANCER_V4, BALANCER_V6},
    frames::Frame,
};

pub const XDP_ABORTED: u32 = 0;
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;
pub const XDP_REDIRECT: u32 = 4;

/// The frame left untouched with XDP_PASS.
pub fn assert_passed_unchanged(r: &RunResult, frame: &[u8], what: &str) {
    assert_eq!(r.action, XDP_PASS, "{what}: expected XDP_PASS");
    assert_eq!(
        r.out, frame,
        "{what}: XDP_PASS must leave the frame unchanged"
    );
}

/// What an encapsulated output frame must look like.
pub struct Encapsulated<'a> {
    /// The frame the client sent (its L2 header is replaced, the rest kept).
    pub input: &'a [u8],
    /// Length of the input's link-layer header (14, or 18 with a VLAN tag).
    pub l2_len: usize,
    /// The inner IP packet's length (no Ethernet padding).
    pub inner_len: usize,
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub outer_src: IpAddr,
    pub outer_dst: IpAddr,
    /// TOS/traffic class the outer header must carry (copied from the inner).
    pub tos: u8,
    /// TTL/hop limit the outer header must carry (the configured outer TTL,
    /// whatever the inner packet's).
    pub ttl: u8,
    /// GUE: the UDP header between the outer IP header and the inner packet
    /// must go to this port, from the source port in `gue_sport`; `None`:
    /// IP-in-IP.
    pub gue_dport: Option<u16>,
    /// GUE: the UDP source port (`None`: any, checked by the caller).
    pub gue_sport: Option<u16>,
}

impl<'a> Encapsulated<'a> {
    /// What `input` (built from `frame`) must become when the fixture sends
    /// it to `backend` through the egress it arrived on, with the default
    /// outer TTL.
    pub fn toward(f: &BalancerFixture, input: &'a [u8], frame: &Frame, backend: IpAddr) -> Self {
        let l2 = frame.l3_offset();
        let inner_len = match frame.src {
            IpAddr::V4(_) => usize::from(u16::from_be_bytes([input[l2 + 2], input[l2 + 3]])),
            IpAddr::V6(_) => 40 + usize::from(u16::from_be_bytes([input[l2 + 4], input[l2 + 5]])),
        };
        Self {
            input,
            l2_len: l2,
            inner_len,
            src_mac: f.if_mac,
            dst_mac: backend_mac(backend),
            outer_src: if backend.is_ipv4() {
                IpAddr::from(BALANCER_V4)
            } else {
                IpAddr::from(BALANCER_V6)
            },
            outer_dst: backend,
            tos: frame.tos,
            ttl: lb_common::DEFAULT_OUTER_TTL,
            gue_dport: None,
            gue_sport: None,
        }
    }

    /// The same expectation for GUE to `dport`, from source port `sport`.
    pub fn gue(self, dport: u16, sport: u16) -> Self {
        Self {
            gue_dport: Some(dport),
            gue_sport: Some(sport),
            ..self
        }
    }
}

/// Verifies every byte of an encapsulated frame, and that nothing follows the
/// inner packet; returns the outer header length.
pub fn assert_encapsulated(out: &[u8], e: &Encapsulated, what: &str) -> usize {
    assert_eq!(&out[0..6], &e.dst_mac, "{what}: destination MAC (next hop)");
    assert_eq!(
        &out[6..12],
        &e.src_mac,
        "{what}: source MAC (egress interface)"
    );
    let inner_v4 = e.input[e.l2_len] >> 4 == 4;
    let outer_type: u16 = if e.outer_dst.is_ipv4() {
        0x0800
    } else {
        0x86dd
    };
    if e.l2_len == 18 {
        assert_eq!(&out[12..14], &e.input[12..14], "{what}: VLAN TPID kept");
        assert_eq!(&out[14..16], &e.input[14..16], "{what}: VLAN TCI kept");
        assert_eq!(
            u16::from_be_bytes([out[16], out[17]]),
            outer_type,
            "{what}: EtherType in tag"
        );
    } else {
        assert_eq!(
            u16::from_be_bytes([out[12], out[13]]),
            outer_type,
            "{what}: EtherType"
        );
    }
    let l3 = e.l2_len;
    let udp_len = if e.gue_dport.is_some() { 8 } else { 0 };
    let expected_next = if e.gue_dport.is_some() {
        IpNumber::UDP
    } else if inner_v4 {
        IpNumber::IPV4
    } else {
        IpNumber::IPV6
    };
    let outer_len = match (e.outer_src, e.outer_dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let h = Ipv4HeaderSlice::from_slice(&out[l3..])
                .unwrap_or_else(|err| panic!("{what}: outer IPv4 header does not parse: {err}"))
                .to_header();
            assert_eq!(h.header_len(), 20, "{what}: outer IHL");
            assert_eq!(
                h.header_checksum,
                h.calc_header_checksum(),
                "{what}: outer checksum"
            );
            assert_eq!(
                usize::from(h.total_len),
                20 + udp_len + e.inner_len,
                "{what}: outer total length"
            );
            assert_eq!(h.protocol, expected_next, "{what}: outer protocol");
            assert_eq!(h.source, src.octets(), "{what}: outer source");
            assert_eq!(h.destination, dst.octets(), "{what}: outer destination");
            assert_eq!(h.time_to_live, e.ttl, "{what}: outer TTL");
            assert_eq!(
                (h.dscp.value() << 2) | h.ecn.value(),
                e.tos,
                "{what}: outer DSCP/ECN"
            );
            assert!(
                h.dont_fragment && !h.more_fragments,
                "{what}: outer DF set, not a fragment"
            );
            assert_eq!(
                h.fragment_offset.value(),
                0,
                "{what}: outer fragment offset"
            );
            20
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let h = Ipv6HeaderSlice::from_slice(&out[l3..])
                .unwrap_or_else(|err| panic!("{what}: outer IPv6 header does not parse: {err}"))
                .to_header();
            assert_eq!(
                usize::from(h.payload_length),
                udp_len + e.inner_len,
                "{what}: outer payload length"
            );
            assert_eq!(h.next_header, expected_next, "{what}: outer next header");
            assert_eq!(h.source, src.octets(), "{what}: outer source");
            assert_eq!(h.destination, dst.octets(), "{what}: outer destination");
            assert_eq!(h.hop_limit, e.ttl, "{what}: outer hop limit");
            assert_eq!(h.traffic_class, e.tos, "{what}: outer traffic class");
            40
        }
        _ => panic!("{what}: outer source and destination families differ"),
    };
    if let Some(dport) = e.gue_dport {
        let udp = UdpHeaderSlice::from_slice(&out[l3 + outer_len..])
            .unwrap_or_else(|err| panic!("{what}: GUE UDP header does not parse: {err}"));
        assert_eq!(
            udp.destination_port(),
            dport,
            "{what}: GUE destination port"
        );
        if let Some(sport) = e.gue_sport {
            assert_eq!(udp.source_port(), sport, "{what}: GUE source port");
        }
        assert!(
            udp.source_port() >= 49152,
            "{what}: GUE source port {} outside the dynamic range",
            udp.source_port()
        );
        assert_eq!(
            usize::from(udp.length()),
            8 + e.inner_len,
            "{what}: UDP length"
        );
        assert_eq!(udp.checksum(), 0, "{what}: UDP checksum (zero: none)");
    }
    let outer_len = outer_len + udp_len;
    assert_eq!(
        out.len(),
        l3 + outer_len + e.inner_len,
        "{what}: the frame must end with the inner packet (no padding or trailing bytes)"
    );
    assert_eq!(
        &out[l3 + outer_len..],
        &e.input[e.l2_len..e.l2_len + e.inner_len],
        "{what}: the inner packet must be unchanged"
    );
    outer_len
}

/// The outer destination address of an encapsulated frame.
pub fn outer_destination(out: &[u8], l2_len: usize) -> IpAddr {
    match out[l2_len] >> 4 {
        4 => {
            let d: [u8; 4] = out[l2_len + 16..l2_len + 20].try_into().unwrap_or([0; 4]);
            IpAddr::from(d)
        }
        6 => {
            let d: [u8; 16] = out[l2_len + 24..l2_len + 40].try_into().unwrap_or([0; 16]);
            IpAddr::from(d)
        }
        v => panic!("output is not IP after the link layer (version nibble {v})"),
    }
}
